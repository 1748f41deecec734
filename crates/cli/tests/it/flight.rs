//! The flight recorder (`nixcap record --listen --keep failed`) in front of
//! real daemons with real clients: passing builds and adds are dropped,
//! failing builds are kept whole.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nixcap_capture::{read_capture_file, Capture};
use nixcap_test_support::{peer_or_skip, Daemon, DaemonOptions, NixVersion, Peer};
use nixcap_view::{decode_connection, Outcome};
use nixcap_wire::ops::{Op, Reply};

const BUILD_NIX: &str = r#"derivation {
  name = "flight-ok";
  system = builtins.currentSystem;
  builder = "/bin/sh";
  args = [ "-c" "echo fine > $out" ];
}
"#;

const FAIL_NIX: &str = r#"derivation {
  name = "flight-fail";
  system = builtins.currentSystem;
  builder = "/bin/sh";
  args = [ "-c" "echo about to fail >&2; exit 1" ];
}
"#;

fn start_recorder(dir: &Path, upstream: &Path, extra: &[&str]) -> Child {
    start_recorder_at(
        &dir.join("capture.nixcap"),
        &dir.join("rec.sock"),
        upstream,
        extra,
    )
}

/// `nixcap record -w OUTPUT --listen SOCKET --upstream UPSTREAM EXTRA…`,
/// once it listens.
fn start_recorder_at(output: &Path, socket: &Path, upstream: &Path, extra: &[&str]) -> Child {
    let mut child = Command::new(env!("CARGO_BIN_EXE_nixcap"))
        .arg("record")
        .arg("-w")
        .arg(output)
        .arg("--listen")
        .arg(socket)
        .arg("--upstream")
        .arg(upstream)
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !socket.exists() {
        if Instant::now() > deadline || child.try_wait().unwrap().is_some() {
            let _ = child.kill();
            let output = child.wait_with_output().unwrap();
            panic!(
                "nixcap record did not listen: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child
}

/// A real daemon of `peer` and a directory for the recorder.
fn daemon_and_dir(peer: &Peer) -> (Daemon, tempfile::TempDir) {
    let daemon = Daemon::start(peer, DaemonOptions::new());
    let dir = tempfile::Builder::new()
        .prefix("nixcap-flight")
        .tempdir_in("/tmp")
        .unwrap();
    (daemon, dir)
}

/// Connections in the (possibly unfinished) capture.
fn kept_so_far(path: &Path) -> usize {
    read_capture_file(path).map_or(0, |c| c.connections.len())
}

/// Whether a decoded connection holds a build op that failed.
fn has_failed_build(capture: &Capture, index: usize) -> bool {
    let decoded = decode_connection(&capture.connections[index]);
    decoded.exchanges.iter().any(|e| match &e.outcome {
        Outcome::Error(_) => matches!(
            e.op,
            Some(Op::BuildPaths | Op::BuildPathsWithResults | Op::BuildDerivation)
        ),
        Outcome::Reply(Reply::BuildDerivation { result }) => !result.status.is_success(),
        Outcome::Reply(Reply::BuildPathsWithResults { results }) => {
            results.iter().any(|r| !r.result.status.is_success())
        }
        _ => false,
    })
}

fn flight_recorder_keeps_exactly_the_failed_builds(version: NixVersion) {
    let Some(peer) = peer_or_skip(version) else {
        return;
    };
    let (daemon, dir) = daemon_and_dir(&peer);
    let work = dir.path().join("work");
    std::fs::create_dir(&work).unwrap();
    std::fs::write(work.join("build.nix"), BUILD_NIX).unwrap();
    std::fs::write(work.join("fail.nix"), FAIL_NIX).unwrap();
    std::fs::write(work.join("hello.txt"), b"hello from the flight recorder\n").unwrap();
    let mut recorder = start_recorder(dir.path(), daemon.socket_path(), &["--keep", "failed"]);
    let socket = dir.path().join("rec.sock");
    let capture_path = dir.path().join("capture.nixcap");
    let run = |peer: &Peer, program: &str, args: &[&str]| {
        peer.command(program)
            .args(args)
            .current_dir(&work)
            .remote(daemon.uri_via(&socket))
            .output()
            .unwrap()
    };
    // (program, args, fails)
    let steps: [(&str, &[&str], bool); 5] = [
        ("nix-build", &["--no-out-link", "build.nix"], false),
        ("nix-build", &["--no-out-link", "fail.nix"], true),
        ("nix-store", &["--add", "hello.txt"], false),
        ("nix-build", &["--no-out-link", "fail.nix"], true),
        ("nix-build", &["--no-out-link", "build.nix"], false),
    ];
    let mut failing_runs = 0;
    for (program, args, fails) in steps {
        let before = kept_so_far(&capture_path);
        let output = run(&peer, program, args);
        assert_eq!(
            !output.status.success(),
            fails,
            "{program} {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        if fails {
            failing_runs += 1;
            // The failed session reaches the file within a flush or two of its close.
            let deadline = Instant::now() + Duration::from_secs(20);
            while kept_so_far(&capture_path) == before {
                assert!(
                    Instant::now() < deadline,
                    "{program} {args:?}: no session kept"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        } else {
            // Several flush intervals: nothing is written for a passing client.
            std::thread::sleep(Duration::from_millis(400));
            assert_eq!(
                kept_so_far(&capture_path),
                before,
                "{program} {args:?}: a passing client's session was kept"
            );
        }
    }
    let _ = Command::new("kill")
        .args(["-INT", &recorder.id().to_string()])
        .status();
    let status = recorder.wait().unwrap();
    assert!(status.success(), "{status:?}");

    let verify = Command::new(env!("CARGO_BIN_EXE_nixcap"))
        .arg("verify")
        .arg(&capture_path)
        .output()
        .unwrap();
    assert!(verify.status.success(), "{verify:?}");
    let capture = read_capture_file(&capture_path).unwrap();
    assert!(capture.damage.is_none(), "{:?}", capture.damage);
    assert!(
        capture.connections.len() >= failing_runs,
        "{} kept for {failing_runs} failing builds",
        capture.connections.len()
    );
    let failed_builds = (0..capture.connections.len())
        .filter(|&i| has_failed_build(&capture, i))
        .count();
    // Exactly the failed builds: each kept session holds one, says so, and is whole.
    assert_eq!(failed_builds, capture.connections.len());
    assert!(failed_builds >= failing_runs);
    for connection in &capture.connections {
        assert_eq!(connection.opened.metadata["kept"], "failed-build");
        let decoded = decode_connection(connection);
        assert!(
            decoded.session.negotiated.is_some(),
            "kept from the handshake on"
        );
        assert!(
            decoded.fully_decoded(),
            "every byte of the session is there"
        );
    }
    let annotations: Vec<&str> = capture
        .annotations
        .iter()
        .map(|(_, a)| a.text.as_str())
        .collect();
    assert!(
        annotations
            .iter()
            .any(|a| a.starts_with("flight recorder: ") && a.contains(" dropped")),
        "{annotations:?}"
    );
}

#[test]
fn nix_2_8_flight_recorder_keeps_exactly_the_failed_builds() {
    flight_recorder_keeps_exactly_the_failed_builds(NixVersion::V2_8);
}

#[test]
fn nix_2_26_flight_recorder_keeps_exactly_the_failed_builds() {
    flight_recorder_keeps_exactly_the_failed_builds(NixVersion::V2_26);
}

#[test]
fn nix_2_34_flight_recorder_keeps_exactly_the_failed_builds() {
    flight_recorder_keeps_exactly_the_failed_builds(NixVersion::V2_34);
}

/// A flight recorder killed with a session open leaves that session in its
/// journal (`-w FILE` → `FILE.pending`), a readable capture; the next
/// recorder refuses to overwrite it without --force, and in a rotation
/// directory takes it in as `recovered-….nixcap`.
#[test]
fn a_killed_flight_recorder_leaves_its_undecided_sessions_in_the_journal() {
    use std::io::{Read, Write};

    let Some(peer) = peer_or_skip(NixVersion::V2_8) else {
        return;
    };
    let (daemon, dir) = daemon_and_dir(&peer);
    let mut recorder = start_recorder(dir.path(), daemon.socket_path(), &["--keep", "failed"]);
    let journal = dir.path().join("capture.nixcap.pending");
    assert!(journal.exists(), "no journal beside the capture");
    // A session the recorder cannot have decided on: the handshake's first
    // half, with the real daemon's answer, and the connection left open.
    let mut client = std::os::unix::net::UnixStream::connect(dir.path().join("rec.sock")).unwrap();
    client.write_all(&0x6e69_7863u64.to_le_bytes()).unwrap();
    let mut hello = [0u8; 16];
    client.read_exact(&mut hello).unwrap();
    assert_eq!(&hello[..8], &0x6478_696fu64.to_le_bytes());
    // Longer than a frame's age, so that the journal's frame is written.
    std::thread::sleep(Duration::from_millis(600));
    recorder.kill().unwrap();
    let _ = recorder.wait();
    drop(client);

    let kept = read_capture_file(&journal).expect("the journal reads as a capture");
    assert_eq!(
        kept.connections.len(),
        1,
        "the open session is in the journal"
    );
    let session = &kept.connections[0];
    assert_eq!(
        session.stream(nixcap_capture::Direction::ClientToServer),
        0x6e69_7863u64.to_le_bytes()
    );
    assert_eq!(
        session.stream(nixcap_capture::Direction::ServerToClient),
        hello
    );
    assert!(kept.header.metadata.contains_key("journal"));
    assert_eq!(
        read_capture_file(dir.path().join("capture.nixcap"))
            .unwrap()
            .connections
            .len(),
        0,
        "the capture itself holds no undecided session"
    );

    // The next recorder does not overwrite a journal unasked.
    let second_journal = dir.path().join("second.nixcap.pending");
    std::fs::copy(&journal, &second_journal).unwrap();
    let refused = Command::new(env!("CARGO_BIN_EXE_nixcap"))
        .arg("record")
        .arg("-w")
        .arg(dir.path().join("second.nixcap"))
        .arg("--listen")
        .arg(dir.path().join("second.sock"))
        .arg("--upstream")
        .arg(daemon.socket_path())
        .args(["--keep", "failed"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("second.nixcap.pending exists"), "{stderr}");
    assert!(!dir.path().join("second.nixcap").exists());
    assert_eq!(
        std::fs::read(&second_journal).unwrap(),
        std::fs::read(&journal).unwrap()
    );

    // In a rotation directory, the journal a killed recorder left becomes a
    // capture of the set when the next recorder starts.
    let set = dir.path().join("set");
    std::fs::create_dir(&set).unwrap();
    std::fs::copy(&journal, set.join("undecided.pending")).unwrap();
    let socket = dir.path().join("set.sock");
    let rotating = start_recorder_at(
        &set,
        &socket,
        daemon.socket_path(),
        &["--keep", "failed", "--rotate-size", "1M"],
    );
    Command::new("kill")
        .args(["-INT", &rotating.id().to_string()])
        .status()
        .unwrap();
    let output = rotating.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("is now"), "{stderr}");
    let recovered: Vec<_> = std::fs::read_dir(&set)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("recovered-"))
        })
        .collect();
    assert_eq!(recovered.len(), 1, "{recovered:?}");
    let taken = read_capture_file(&recovered[0]).unwrap();
    assert_eq!(taken.connections.len(), 1);
    assert_eq!(
        taken.connections[0].stream(nixcap_capture::Direction::ServerToClient),
        hello
    );
    // That recorder finished: its own journal is gone.
    assert!(!set.join("undecided.pending").exists());
}
