//! Byte-exact forwarding and recording, concurrency, half-close, and the
//! listening socket's mode and lifetime.

use std::collections::BTreeSet;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::time::Duration;

use nixcap_capture::{CloseReason, Direction};
use nixcap_record::Recorder;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

use crate::support::{
    assert_recorded, close_reason, exchange, parse, test_config, Script, SharedBuf, Upstream,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_payloads_cross_unchanged_and_are_recorded_exactly() {
    let mut upstream = Upstream::start(Script::Exchange).await;
    let sink = SharedBuf::default();
    let recorder = Recorder::start(test_config(upstream.addr()), sink.clone())
        .await
        .unwrap();

    let client = exchange(recorder.socket_path(), 7, 3 << 20, 5 << 20).await;
    let server = upstream.next_seen().await;
    assert_eq!(client.sent, server.received);
    assert_eq!(client.received, server.sent);
    assert_eq!(client.received.bytes, 5 << 20);

    let listen = recorder.socket_path().to_owned();
    let report = recorder.finish().await.unwrap();
    assert!(report.capture_complete(), "{:?}", report.capture_problems);
    assert_eq!(report.stats.connections, 1);
    assert_eq!(report.stats.bytes_client_to_daemon, client.sent.bytes);
    assert_eq!(report.stats.bytes_daemon_to_client, client.received.bytes);

    let capture = parse(&sink.contents());
    assert!(capture.is_intact(), "{:?}", capture.damage);
    assert!(capture.footer.is_some());
    assert_eq!(capture.connections.len(), 1);
    assert_recorded(&capture, 1, client.sent, client.received);
    assert_eq!(close_reason(&capture, 1), CloseReason::CleanEof);

    // The recorder's own uid and pid are the peer here.
    let opened = &capture.connections[0].opened;
    let peer = opened.peer.expect("peer credentials are recorded");
    assert_eq!(peer.pid, Some(std::process::id()));
    assert!(opened.metadata.is_empty());

    let metadata = &capture.header.metadata;
    assert_eq!(metadata["listen"], listen.display().to_string());
    assert_eq!(metadata["upstream"], upstream.addr().store_uri());
    assert_eq!(metadata["version"], env!("CARGO_PKG_VERSION"));
    assert!(!metadata["hostname"].is_empty());
    assert!(!metadata["argv"].is_empty());
    assert!(capture.header.tool_version.starts_with("nixcap "));

    // Timestamps never go backwards within a direction.
    for direction in Direction::BOTH {
        let times: Vec<u64> = capture.connections[0]
            .chunks_in(direction)
            .map(|c| c.t_nanos)
            .collect();
        assert!(times.windows(2).all(|w| w[0] <= w[1]), "{direction}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_connections_of_a_mebibyte_each_way() {
    const CONNECTIONS: u64 = 50;
    const SIZE: usize = 1 << 20;
    let mut upstream = Upstream::start(Script::Exchange).await;
    let sink = SharedBuf::default();
    let recorder = Recorder::start(test_config(upstream.addr()), sink.clone())
        .await
        .unwrap();
    let socket = recorder.socket_path().to_owned();

    let clients: Vec<_> = (0..CONNECTIONS)
        .map(|i| {
            let socket = socket.clone();
            tokio::spawn(async move { exchange(&socket, 1000 + i, SIZE, SIZE).await })
        })
        .collect();
    let mut client_pairs = BTreeSet::new();
    for client in clients {
        let client = client.await.unwrap();
        assert_eq!(client.sent.bytes, SIZE as u64 + 16);
        assert_eq!(client.received.bytes, SIZE as u64);
        client_pairs.insert((client.sent.sha256, client.received.sha256));
    }
    let mut server_pairs = BTreeSet::new();
    for _ in 0..CONNECTIONS {
        let seen = upstream.next_seen().await;
        server_pairs.insert((seen.received.sha256, seen.sent.sha256));
    }
    assert_eq!(client_pairs.len(), CONNECTIONS as usize);
    assert_eq!(client_pairs, server_pairs);

    let report = recorder.finish().await.unwrap();
    assert!(report.capture_complete(), "{:?}", report.capture_problems);
    assert_eq!(report.stats.connections, CONNECTIONS);

    let capture = parse(&sink.contents());
    assert!(capture.is_intact(), "{:?}", capture.damage);
    let ids: Vec<u64> = capture.connections.iter().map(|c| c.conn).collect();
    assert_eq!(ids, (1..=CONNECTIONS).collect::<Vec<_>>());
    let mut captured_pairs = BTreeSet::new();
    for connection in &capture.connections {
        let closed = connection.closed.as_ref().unwrap();
        assert_eq!(closed.reason, CloseReason::CleanEof);
        let up = crate::support::Digest256::of(&connection.stream(Direction::ClientToServer));
        let down = crate::support::Digest256::of(&connection.stream(Direction::ServerToClient));
        assert_eq!(up.sha256, closed.client_to_server.sha256);
        assert_eq!(down.sha256, closed.server_to_client.sha256);
        captured_pairs.insert((up.sha256, down.sha256));
    }
    assert_eq!(captured_pairs, client_pairs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_half_close_reaches_the_daemon() {
    let mut upstream = Upstream::start(Script::CountAfterEof).await;
    let sink = SharedBuf::default();
    let recorder = Recorder::start(test_config(upstream.addr()), sink.clone())
        .await
        .unwrap();

    let mut stream = UnixStream::connect(recorder.socket_path()).await.unwrap();
    stream.write_all(b"ping pong").await.unwrap();
    // The daemon answers only after it sees end of stream, so this
    // completes only if the recorder passes the half-close on.
    stream.shutdown().await.unwrap();
    let mut reply = String::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_string(&mut reply))
        .await
        .expect("the half-close did not reach the daemon")
        .unwrap();
    assert_eq!(reply, "received 9 bytes");
    assert_eq!(upstream.next_seen().await.received.bytes, 9);
    drop(stream);

    let report = recorder.finish().await.unwrap();
    assert!(report.capture_complete());
    let capture = parse(&sink.contents());
    let connection = &capture.connections[0];
    assert_eq!(connection.stream(Direction::ClientToServer), b"ping pong");
    assert_eq!(
        connection.stream(Direction::ServerToClient),
        b"received 9 bytes"
    );
    assert_eq!(close_reason(&capture, 1), CloseReason::CleanEof);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemon_half_close_reaches_the_client_and_the_client_can_still_send() {
    let mut upstream = Upstream::start(Script::GreetThenRead).await;
    let sink = SharedBuf::default();
    let recorder = Recorder::start(test_config(upstream.addr()), sink.clone())
        .await
        .unwrap();

    let mut stream = UnixStream::connect(recorder.socket_path()).await.unwrap();
    let mut greeting = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut greeting))
        .await
        .expect("the daemon's half-close did not reach the client")
        .unwrap();
    assert_eq!(greeting, b"hello");
    // The other direction is still open.
    let payload = vec![0x5a; 100_000];
    stream.write_all(&payload).await.unwrap();
    stream.shutdown().await.unwrap();
    let seen = upstream.next_seen().await;
    assert_eq!(seen.received, crate::support::Digest256::of(&payload));
    drop(stream);

    let report = recorder.finish().await.unwrap();
    assert!(report.capture_complete());
    let capture = parse(&sink.contents());
    assert_recorded(
        &capture,
        1,
        crate::support::Digest256::of(&payload),
        crate::support::Digest256::of(b"hello"),
    );
    assert_eq!(close_reason(&capture, 1), CloseReason::CleanEof);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socket_is_0600_and_removed_after_finish() {
    let upstream = Upstream::start(Script::Exchange).await;
    let dir = tempfile::tempdir().unwrap();
    let listen = dir.path().join("rec.sock");
    let mut config = test_config(upstream.addr());
    config.listen = Some(listen.clone());
    let recorder = Recorder::start(config, SharedBuf::default()).await.unwrap();
    assert_eq!(recorder.socket_path(), listen);
    let meta = std::fs::symlink_metadata(&listen).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o7777, 0o600);
    // Nothing but the socket was left in the directory.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    recorder.finish().await.unwrap();
    assert!(!listen.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_socket_carries_the_upstream_query_into_the_client_uri() {
    let upstream = Upstream::start(Script::Exchange).await;
    let addr = upstream.addr().with_query(Some("root=/r".to_owned()));
    let recorder = Recorder::start(test_config(addr), SharedBuf::default())
        .await
        .unwrap();
    let socket = recorder.socket_path().to_owned();
    let dir = socket.parent().unwrap().to_owned();
    let dir_mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o7777;
    assert_eq!(dir_mode, 0o700);
    assert_eq!(
        recorder.client_store_uri(),
        format!("unix://{}?root=/r", socket.display())
    );
    recorder.finish().await.unwrap();
    assert!(!dir.exists(), "the private directory is removed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_reach_the_output_within_a_fraction_of_a_second() {
    let upstream = Upstream::start(Script::GreetThenRead).await;
    let sink = SharedBuf::default();
    let recorder = Recorder::start(test_config(upstream.addr()), sink.clone())
        .await
        .unwrap();
    let mut stream = UnixStream::connect(recorder.socket_path()).await.unwrap();
    stream.write_all(b"early bytes").await.unwrap();
    let mut greeting = [0u8; 5];
    stream.read_exact(&mut greeting).await.unwrap();
    // Both chunks must be in the output well before the recorder finishes.
    let mut found = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let capture = parse(&sink.contents());
        if let Some(connection) = capture.connections.first() {
            if connection.stream(Direction::ClientToServer) == b"early bytes"
                && connection.stream(Direction::ServerToClient) == b"hello"
            {
                found = true;
                break;
            }
        }
    }
    assert!(found, "the chunks were not flushed within 1 s");
    drop(stream);
    recorder.finish().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarding_to_its_own_socket_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let listen = dir.path().join("loop.sock");
    let mut config = test_config(nixcap_record::DaemonAddr::from_path(&listen));
    config.listen = Some(listen.clone());
    let Err(error) = Recorder::start(config, SharedBuf::default()).await else {
        panic!("a recorder forwarding to itself was started");
    };
    assert!(
        matches!(error, nixcap_record::Error::UpstreamIsListen { .. }),
        "{error}"
    );
    assert!(!listen.exists(), "the socket is removed again");
}
