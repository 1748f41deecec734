//! Real Nix clients and daemons through the recorder.
//!
//! These tests skip (printing why) when a Nix version is not installed, and
//! fail instead when `NIXCAP_REQUIRE_NIX=1` is set.

use nixcap_capture::{Capture, CloseReason, Direction};
use nixcap_record::{BackgroundRecorder, Config, DaemonAddr, Options};
use nixcap_test_support::{peer_or_skip, Daemon, DaemonOptions, NixVersion, Peer};

use crate::support::{parse, Digest256, SharedBuf};

/// The first word a client sends: `WORKER_MAGIC_1`, "nixc".
const WORKER_MAGIC_1: u64 = 0x6e69_7863;
/// The first word a daemon sends: `WORKER_MAGIC_2`, "dxio".
const WORKER_MAGIC_2: u64 = 0x6478_696f;

const TRIVIAL_DERIVATION: &str = r#"derivation {
  name = "nixcap-record-test";
  system = builtins.currentSystem;
  builder = "/bin/sh";
  args = [ "-c" "echo hi > $out" ];
}
"#;

fn recorder_in_front_of(daemon: &Daemon, sink: SharedBuf) -> BackgroundRecorder<SharedBuf> {
    let mut config = Config::new(None, DaemonAddr::from_path(daemon.socket_path()));
    config.options = Options {
        shutdown_grace: std::time::Duration::from_secs(5),
        ..Options::default()
    };
    BackgroundRecorder::start(config, sink).unwrap()
}

/// Runs a client of `peer` in `dir` against the store `uri` and returns its stdout.
fn client(peer: &Peer, dir: &std::path::Path, uri: &str, program: &str, args: &[&str]) -> String {
    peer.command(program)
        .args(args)
        .remote(uri)
        .current_dir(dir)
        .stdout_ok()
}

/// Checks what every real connection in `capture` must look like, and
/// returns the concatenated client-to-daemon bytes.
fn check_connections(capture: &Capture) -> Vec<u8> {
    assert!(capture.is_intact(), "{:?}", capture.damage);
    assert!(capture.footer.is_some());
    let mut all_up = Vec::new();
    for connection in &capture.connections {
        let closed = connection
            .closed
            .as_ref()
            .unwrap_or_else(|| panic!("connection {} was not closed", connection.conn));
        assert_eq!(closed.reason, CloseReason::CleanEof, "{}", connection.conn);
        let up = connection.stream(Direction::ClientToServer);
        let down = connection.stream(Direction::ServerToClient);
        // The close record's digests (computed over what crossed) match the data blocks.
        assert_eq!(
            Digest256::of(&up).sha256,
            closed.client_to_server.sha256,
            "{}",
            connection.conn
        );
        assert_eq!(Digest256::of(&down).sha256, closed.server_to_client.sha256);
        assert_eq!(up[..8], WORKER_MAGIC_1.to_le_bytes());
        assert_eq!(down[..8], WORKER_MAGIC_2.to_le_bytes());
        let peer = connection
            .opened
            .peer
            .expect("peer credentials are recorded");
        assert_eq!(peer.uid, 0);
        all_up.extend_from_slice(&up);
    }
    all_up
}

fn same_results_direct_and_through_the_recorder(peer: &Peer) {
    let direct = Daemon::start(peer, DaemonOptions::new());
    let recorded = Daemon::start(peer, DaemonOptions::new());
    let sink = SharedBuf::default();
    let recorder = recorder_in_front_of(&recorded, sink.clone());
    let via = recorded.uri_via(recorder.socket_path());

    let work = tempfile::tempdir().unwrap();
    let content = format!(
        "nixcap record test, pid {}, {:?}\n",
        std::process::id(),
        std::time::SystemTime::now()
    );
    std::fs::write(work.path().join("input.txt"), &content).unwrap();
    std::fs::write(work.path().join("default.nix"), TRIVIAL_DERIVATION).unwrap();
    let both = |program: &str, args: &[&str]| {
        let a = client(peer, work.path(), &direct.store_uri(), program, args);
        let b = client(peer, work.path(), &via, program, args);
        assert_eq!(a, b, "{program} {args:?}: direct and recorded differ");
        a
    };

    let added = both("nix-store", &["--add", "input.txt"]);
    assert!(added.starts_with("/nix/store/"), "{added}");
    let hash = both("nix-store", &["-q", "--hash", &added]);
    assert!(hash.starts_with("sha256:"), "{hash}");
    let built = both("nix-build", &["--no-out-link", "default.nix"]);
    assert!(built.starts_with("/nix/store/"), "{built}");
    assert_eq!(
        std::fs::read_to_string(recorded.host_path(&built)).unwrap(),
        "hi\n"
    );
    assert_eq!(
        std::fs::read_to_string(direct.host_path(&built)).unwrap(),
        "hi\n"
    );

    let report = recorder.finish().unwrap();
    assert!(report.capture_complete(), "{:?}", report.capture_problems);
    let capture = parse(&sink.contents());
    assert!(capture.connections.len() >= 3);
    let up = check_connections(&capture);
    // The added file travelled to the daemon inside a NAR, verbatim.
    assert!(
        up.windows(content.len()).any(|w| w == content.as_bytes()),
        "the added file's content is not in the capture"
    );
    let footer = capture.footer.as_ref().unwrap();
    assert_eq!(
        footer.bytes_client_to_server,
        report.stats.bytes_client_to_daemon
    );
    assert_eq!(
        footer.bytes_server_to_client,
        report.stats.bytes_daemon_to_client
    );
}

#[test]
fn nix_2_8_gives_the_same_results_through_the_recorder() {
    if let Some(peer) = peer_or_skip(NixVersion::V2_8) {
        same_results_direct_and_through_the_recorder(&peer);
    }
}

#[test]
fn nix_2_26_gives_the_same_results_through_the_recorder() {
    if let Some(peer) = peer_or_skip(NixVersion::V2_26) {
        same_results_direct_and_through_the_recorder(&peer);
    }
}

#[test]
fn nix_2_34_gives_the_same_results_through_the_recorder() {
    if let Some(peer) = peer_or_skip(NixVersion::V2_34) {
        same_results_direct_and_through_the_recorder(&peer);
    }
}

/// Two recorders in a chain record identical streams: what the first one
/// forwarded is byte for byte what the second one received.
#[test]
fn chained_recorders_record_identical_streams_of_nix_2_8() {
    let Some(peer) = peer_or_skip(NixVersion::V2_8) else {
        return;
    };
    let daemon = Daemon::start(&peer, DaemonOptions::new());
    let inner_sink = SharedBuf::default();
    let inner = recorder_in_front_of(&daemon, inner_sink.clone());
    let outer_sink = SharedBuf::default();
    let mut config = Config::new(None, DaemonAddr::from_path(inner.socket_path()));
    config.options.shutdown_grace = std::time::Duration::from_secs(5);
    let outer = BackgroundRecorder::start(config, outer_sink.clone()).unwrap();

    let work = tempfile::tempdir().unwrap();
    let big: String = (0..20_000).map(|i| format!("line {i}\n")).collect();
    std::fs::write(work.path().join("big.txt"), &big).unwrap();
    let uri = daemon.uri_via(outer.socket_path());
    let added = client(&peer, work.path(), &uri, "nix-store", &["--add", "big.txt"]);
    let hash = client(
        &peer,
        work.path(),
        &uri,
        "nix-store",
        &["-q", "--hash", &added],
    );
    assert!(hash.starts_with("sha256:"));

    let outer_report = outer.finish().unwrap();
    let inner_report = inner.finish().unwrap();
    assert!(outer_report.capture_complete());
    assert!(inner_report.capture_complete());
    let outer_capture = parse(&outer_sink.contents());
    let inner_capture = parse(&inner_sink.contents());
    check_connections(&outer_capture);
    // The inner recorder's peer is the outer recorder, also root.
    check_connections(&inner_capture);
    assert_eq!(
        outer_capture.connections.len(),
        inner_capture.connections.len()
    );
    for (a, b) in outer_capture
        .connections
        .iter()
        .zip(&inner_capture.connections)
    {
        for direction in Direction::BOTH {
            assert_eq!(a.stream(direction), b.stream(direction), "{direction}");
        }
    }
}
