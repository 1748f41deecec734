//! Peer credentials: the daemon sees the recorder's uid, so clients of other
//! users are refused unless explicitly allowed.
//!
//! The other user is `nobody` (65534). These tests need root to start a
//! client as that user; the client is this test binary itself, started again
//! with `PEER_CLIENT_ENV` set, running only the test that started it.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use nixcap_capture::CloseReason;
use nixcap_record::Recorder;

use crate::support::{close_reason, parse, test_config, Script, SharedBuf, Upstream};

const PEER_CLIENT_ENV: &str = "NIXCAP_RECORD_TEST_PEER_CLIENT";
const NOBODY: u32 = 65534;
const RESULT_PREFIX: &str = "peer-client-result: ";

/// In the re-started test binary: connects to the socket named in
/// `PEER_CLIENT_ENV`, sends `hello`, half-closes, reads to end of stream,
/// prints what happened, and exits the process.
fn act_as_peer_client_if_asked() {
    let Ok(socket) = std::env::var(PEER_CLIENT_ENV) else {
        return;
    };
    use std::io::{Read, Write};
    let result = match std::os::unix::net::UnixStream::connect(&socket) {
        Err(e) => format!("connect failed: {:?}", e.kind()),
        Ok(mut stream) => {
            // The recorder may already have closed a refused connection.
            let _ = stream.write_all(b"hello");
            let _ = stream.shutdown(std::net::Shutdown::Write);
            let mut reply = Vec::new();
            match stream.read_to_end(&mut reply) {
                Ok(_) => format!("read {:?}", String::from_utf8_lossy(&reply)),
                Err(e) => format!("read failed: {:?}", e.kind()),
            }
        }
    };
    println!("{RESULT_PREFIX}{result}");
    std::process::exit(0);
}

/// Runs test `test_name` of this binary as `nobody`, in peer-client mode.
fn run_peer_client_as_nobody(test_name: &str, socket: &Path) -> String {
    // The test binary may sit below a directory `nobody` cannot enter (a
    // clone in a 0700 temporary directory, a home directory): run a copy
    // from a directory everyone can read.
    let exe_dir = tempfile::Builder::new()
        .prefix("nixcap-peer-client")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(exe_dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let exe = exe_dir.path().join("peer-client");
    std::fs::copy(std::env::current_exe().unwrap(), &exe).unwrap();
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
    // Another test thread may fork while the copy's write descriptor is
    // open, and the child holds it until it execs: until then exec fails
    // with ETXTBSY. Retry, as the descriptor goes away within moments.
    let mut attempts = 0;
    let output = loop {
        let run = Command::new(&exe)
            .args([test_name, "--exact", "--nocapture", "--test-threads=1"])
            .env(PEER_CLIENT_ENV, socket)
            .uid(NOBODY)
            .gid(NOBODY)
            .current_dir("/")
            .output();
        match run {
            Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy && attempts < 100 => {
                attempts += 1;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => break other.unwrap(),
        }
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    stdout
        .lines()
        .find_map(|line| line.split_once(RESULT_PREFIX).map(|(_, result)| result))
        .map(str::to_owned)
        .unwrap_or_else(|| {
            panic!(
                "the peer client printed no result ({}):\n{stdout}\n{}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            )
        })
}

/// True when this process can start a client as another user; prints why
/// the test cannot run otherwise.
fn can_switch_users() -> bool {
    // `/proc/self` is owned by the process's effective uid.
    let uid = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata("/proc/self").unwrap());
    if uid != 0 {
        eprintln!("skipping: starting a client as another user needs root (running as uid {uid})");
        return false;
    }
    true
}

/// A directory `nobody` can traverse, holding the recorder's socket.
fn reachable_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_uid_cannot_even_connect_to_the_default_0600_socket() {
    act_as_peer_client_if_asked();
    if !can_switch_users() {
        return;
    }
    let upstream = Upstream::start(Script::CountAfterEof).await;
    let dir = reachable_dir();
    let mut config = test_config(upstream.addr());
    config.listen = Some(dir.path().join("rec.sock"));
    let recorder = Recorder::start(config, SharedBuf::default()).await.unwrap();
    let result = run_peer_client_as_nobody(
        "peers::other_uid_cannot_even_connect_to_the_default_0600_socket",
        recorder.socket_path(),
    );
    assert_eq!(result, "connect failed: PermissionDenied");
    let report = recorder.finish().await.unwrap();
    assert_eq!(report.stats.connections, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_uid_is_refused_by_default_even_when_it_can_reach_the_socket() {
    act_as_peer_client_if_asked();
    if !can_switch_users() {
        return;
    }
    let mut upstream = Upstream::start(Script::CountAfterEof).await;
    let dir = reachable_dir();
    let sink = SharedBuf::default();
    let mut config = test_config(upstream.addr());
    config.listen = Some(dir.path().join("rec.sock"));
    // Anyone may connect to the socket; the uid check must still refuse.
    config.socket_mode = 0o666;
    let recorder = Recorder::start(config, sink.clone()).await.unwrap();
    let result = run_peer_client_as_nobody(
        "peers::other_uid_is_refused_by_default_even_when_it_can_reach_the_socket",
        recorder.socket_path(),
    );
    // Closing a socket with unread data resets it, so the client may see
    // a reset rather than end of stream; either way it got nothing.
    assert!(
        result == "read \"\"" || result == "read failed: ConnectionReset",
        "{result}"
    );
    let report = recorder.finish().await.unwrap();
    assert_eq!(report.stats.connections, 1);
    assert_eq!(report.stats.refused, 1);
    assert_eq!(report.stats.bytes_client_to_daemon, 0);
    assert!(
        upstream.seen.try_recv().is_err(),
        "the daemon saw a connection"
    );

    let capture = parse(&sink.contents());
    assert!(capture.is_intact(), "{:?}", capture.damage);
    let opened = &capture.connections[0].opened;
    let peer = opened
        .peer
        .expect("the refused peer's credentials are recorded");
    assert_eq!((peer.uid, peer.gid), (NOBODY, NOBODY));
    assert!(peer.pid.is_some());
    assert!(opened.metadata["refused"].contains("65534"));
    match close_reason(&capture, 1) {
        CloseReason::Error { message } => assert!(message.starts_with("refused"), "{message}"),
        other => panic!("unexpected close reason {other:?}"),
    }
    assert!(capture.connections[0].chunks.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allowed_uid_is_served_and_its_credentials_recorded() {
    act_as_peer_client_if_asked();
    if !can_switch_users() {
        return;
    }
    let mut upstream = Upstream::start(Script::CountAfterEof).await;
    let dir = reachable_dir();
    let sink = SharedBuf::default();
    let mut config = test_config(upstream.addr());
    config.listen = Some(dir.path().join("rec.sock"));
    config.socket_mode = 0o666;
    config.allow_uids = vec![NOBODY];
    let recorder = Recorder::start(config, sink.clone()).await.unwrap();
    let result = run_peer_client_as_nobody(
        "peers::allowed_uid_is_served_and_its_credentials_recorded",
        recorder.socket_path(),
    );
    assert_eq!(result, "read \"received 5 bytes\"");
    assert_eq!(upstream.next_seen().await.received.bytes, 5);
    let report = recorder.finish().await.unwrap();
    assert_eq!(report.stats.refused, 0);

    let capture = parse(&sink.contents());
    let connection = &capture.connections[0];
    let peer = connection.opened.peer.unwrap();
    assert_eq!((peer.uid, peer.gid), (NOBODY, NOBODY));
    assert!(connection.opened.metadata.is_empty());
    assert_eq!(close_reason(&capture, 1), CloseReason::CleanEof);
}
