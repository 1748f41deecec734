//! What goes wrong around the proxy: the daemon is unreachable, the capture
//! is slow or cannot be written, connections outlive the recorder.

use std::time::{Duration, Instant};

use nixcap_capture::{CloseReason, Direction, ReadErrorKind, WriterOptions};
use nixcap_record::Recorder;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

use crate::support::{
    assert_recorded, close_reason, exchange, parse, test_config, Digest256, FullDisk, Script,
    SharedBuf, SlowSink, Upstream,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_daemon_closes_the_client_and_the_recorder_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let upstream_path = dir.path().join("later.sock");
    let sink = SharedBuf::default();
    let recorder = Recorder::start(
        test_config(nixcap_record::DaemonAddr::from_path(&upstream_path)),
        sink.clone(),
    )
    .await
    .unwrap();

    // Nobody listens upstream yet: the client sees end of stream.
    let mut stream = UnixStream::connect(recorder.socket_path()).await.unwrap();
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut rest))
        .await
        .expect("the client was left hanging")
        .unwrap();
    assert!(rest.is_empty());

    // Once the daemon is there, the same recorder serves the next client.
    let mut upstream = Upstream::start_at(&upstream_path, Script::Exchange).await;
    let client = exchange(recorder.socket_path(), 3, 200_000, 300_000).await;
    let seen = upstream.next_seen().await;
    assert_eq!(client.sent, seen.received);
    assert_eq!(client.received, seen.sent);

    let report = recorder.finish().await.unwrap();
    assert!(report.capture_complete());
    assert_eq!(report.stats.connections, 2);
    assert_eq!(report.stats.unreachable, 1);

    let capture = parse(&sink.contents());
    assert!(capture.is_intact(), "{:?}", capture.damage);
    match close_reason(&capture, 1) {
        CloseReason::UpstreamUnreachable { message } => {
            assert!(
                message.contains(&upstream_path.display().to_string()),
                "{message}"
            );
            assert!(message.contains("No such file"), "{message}");
        }
        other => panic!("unexpected close reason {other:?}"),
    }
    assert_recorded(&capture, 1, Digest256::of(b""), Digest256::of(b""));
    assert_recorded(&capture, 2, client.sent, client.received);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_capture_slows_forwarding_down_but_loses_nothing() {
    const SIZE: usize = 6 << 20;
    let mut upstream = Upstream::start(Script::Exchange).await;
    let sink = SharedBuf::default();
    let mut config = test_config(upstream.addr());
    config.options.capture_queue_bytes = 256 << 10;
    config.options.writer = WriterOptions {
        frame_max_bytes: 256 << 10,
        zstd_level: 1,
        ..WriterOptions::default()
    };
    let slow = SlowSink {
        inner: sink.clone(),
        delay: Duration::from_millis(15),
    };
    let recorder = Recorder::start(config, slow).await.unwrap();

    let started = Instant::now();
    let client = exchange(recorder.socket_path(), 11, SIZE, SIZE).await;
    let elapsed = started.elapsed();
    let seen = upstream.next_seen().await;
    assert_eq!(client.sent, seen.received);
    assert_eq!(client.received, seen.sent);

    let report = recorder.finish().await.unwrap();
    assert!(report.capture_complete(), "{:?}", report.capture_problems);
    let capture = parse(&sink.contents());
    assert!(capture.is_intact(), "{:?}", capture.damage);
    assert_recorded(&capture, 1, client.sent, client.received);
    // 12 MiB of incompressible data in frames of at most 256 KiB, each
    // written with a 15 ms delay: forwarding had to wait for the capture.
    let frames = report.summary.as_ref().unwrap().frames;
    assert!(frames >= 40, "{frames} frames");
    assert!(
        elapsed >= Duration::from_millis(15 * 40),
        "the transfer took only {elapsed:?}: the queue was not bounded"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_disk_abandons_the_capture_but_not_the_traffic() {
    const SIZE: usize = 4 << 20;
    let mut upstream = Upstream::start(Script::Exchange).await;
    let sink = SharedBuf::default();
    let mut config = test_config(upstream.addr());
    config.options.writer = WriterOptions {
        frame_max_bytes: 128 << 10,
        ..WriterOptions::default()
    };
    let disk = FullDisk {
        inner: sink.clone(),
        capacity: 300 << 10,
    };
    let recorder = Recorder::start(config, disk).await.unwrap();

    let first = exchange(recorder.socket_path(), 21, SIZE, SIZE).await;
    let seen = upstream.next_seen().await;
    assert_eq!(first.sent, seen.received);
    assert_eq!(first.received, seen.sent);
    // Later connections are forwarded as well.
    let second = exchange(recorder.socket_path(), 22, 1000, 1000).await;
    let seen = upstream.next_seen().await;
    assert_eq!(second.sent, seen.received);
    assert_eq!(second.received, seen.sent);

    let report = recorder.finish().await.unwrap();
    assert!(!report.capture_finished);
    assert!(!report.capture_complete());
    assert!(report.out.is_none());
    assert_eq!(report.stats.connections, 2);
    assert_eq!(report.stats.bytes_daemon_to_client, (SIZE + 1000) as u64);
    let problems = report.capture_problems.join("\n");
    assert!(problems.contains("No space left"), "{problems}");

    // What reached the disk is a readable, unfinished capture.
    let written = sink.contents();
    assert!(written.len() <= 300 << 10);
    let capture = parse(&written);
    assert!(capture.footer.is_none());
    assert!(!capture.connections.is_empty());
    let damage = capture.damage.expect("an unfinished capture is reported");
    assert!(
        matches!(
            damage.kind,
            ReadErrorKind::MissingFooter { .. } | ReadErrorKind::Truncated { .. }
        ),
        "{damage}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_still_open_at_shutdown_are_closed_with_reason_shutdown() {
    let upstream = Upstream::start(Script::CountAfterEof).await;
    let sink = SharedBuf::default();
    let mut config = test_config(upstream.addr());
    config.options.shutdown_grace = Duration::from_millis(200);
    let recorder = Recorder::start(config, sink.clone()).await.unwrap();

    let mut stream = UnixStream::connect(recorder.socket_path()).await.unwrap();
    stream.write_all(b"never finished").await.unwrap();
    // Let the bytes cross before stopping.
    while recorder.stats().bytes_client_to_daemon < 14 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let started = Instant::now();
    let report = recorder.finish().await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(report.capture_complete());

    // The client sees the connection end.
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut rest))
        .await
        .expect("the client was left hanging");
    assert!(read.is_ok() || rest.is_empty());

    let capture = parse(&sink.contents());
    assert!(capture.is_intact(), "{:?}", capture.damage);
    assert_eq!(close_reason(&capture, 1), CloseReason::Shutdown);
    assert_eq!(
        capture.connections[0].stream(Direction::ClientToServer),
        b"never finished"
    );
}
