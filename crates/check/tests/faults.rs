//! `check` against targets that misbehave, without Nix: a replay of the
//! capture (which answers exactly as recorded) behind a small proxy that
//! decodes the replayer's answers and tampers with them — drops the trailing
//! `1` of AddTempRoot (harmonia #954), changes a narSize, closes in the
//! middle of a reply, sends garbage, or goes silent.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers may unwrap; clippy only exempts #[test] functions"
)]

use std::io::{Read, Write};
use std::net::Shutdown;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nixcap_check::{check, CheckReport, Options, ProblemKind, Verdict};
use nixcap_view::DecodedCapture;
use nixcap_wire::ops::{Op, Reply};
use nixcap_wire::session::{Direction, EventKind, SessionDecoder};
use nixcap_wire::{Negotiated, ProtocolVersion};

fn capture_path(series: &str, name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/captures")
        .join(series)
        .join(name)
}

fn load(series: &str, name: &str) -> DecodedCapture {
    DecodedCapture::new(nixcap_capture::read_capture_file(capture_path(series, name)).unwrap())
}

/// What the proxy does to the replayer's answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tamper {
    /// Nothing: the target answers as recorded.
    None,
    /// Drop the reply of AddTempRoot (its `1`).
    DropAddTempRootReply,
    /// Add one to the narSize of every QueryPathInfo reply.
    NarSizePlusOne,
    /// Send half of the first reply of `op`, then close.
    CloseMidReply(Op),
    /// Send garbage instead of the first reply of `op`.
    Garbage(Op),
    /// Send nothing more from the first reply of `op` on.
    Hang(Op),
}

/// A proxy in front of a replay of `capture` that tampers with answers.
struct FakeTarget {
    _dir: tempfile::TempDir,
    socket: PathBuf,
    _replay: nixcap_replay::Server,
}

impl FakeTarget {
    fn start(capture: DecodedCapture, tamper: Tamper) -> FakeTarget {
        let replay =
            nixcap_replay::Server::start(capture, nixcap_replay::Options::default()).unwrap();
        let upstream = replay.socket_path().to_owned();
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("target.sock");
        let listener = UnixListener::bind(&socket).unwrap();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { break };
                let upstream = upstream.clone();
                std::thread::spawn(move || proxy(client, &upstream, tamper));
            }
        });
        FakeTarget {
            _dir: dir,
            socket,
            _replay: replay,
        }
    }

    fn address(&self) -> String {
        format!("unix://{}", self.socket.display())
    }
}

fn proxy(client: UnixStream, upstream: &Path, tamper: Tamper) {
    let Ok(server) = UnixStream::connect(upstream) else {
        return;
    };
    let decoder = Arc::new(Mutex::new(SessionDecoder::new()));
    // Client → replayer, fed to the decoder before it is forwarded, so the
    // decoder knows each request before its reply arrives.
    let (mut from_client, mut to_server) =
        (client.try_clone().unwrap(), server.try_clone().unwrap());
    let up_decoder = Arc::clone(&decoder);
    let up = std::thread::spawn(move || {
        let mut buf = vec![0; 65536];
        loop {
            let n = match from_client.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            up_decoder
                .lock()
                .unwrap()
                .feed(Direction::ClientToDaemon, &buf[..n]);
            if to_server.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = to_server.shutdown(Shutdown::Write);
    });
    let (mut from_server, mut to_client) = (server, client);
    let mut buf = vec![0; 65536];
    let mut done = false;
    'outer: while !done {
        let n = match from_server.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let events: Vec<_> = {
            let mut decoder = decoder.lock().unwrap();
            decoder.feed(Direction::DaemonToClient, &buf[..n]);
            decoder.drain_events().collect()
        };
        let negotiated = decoder
            .lock()
            .unwrap()
            .negotiated()
            .cloned()
            .unwrap_or_else(|| Negotiated::new(ProtocolVersion::LATEST));
        for event in events {
            if event.direction != Direction::DaemonToClient {
                continue;
            }
            let mut bytes = event.kind.to_bytes(&negotiated);
            if let EventKind::Reply { reply, .. } = &event.kind {
                let op = reply.op();
                match tamper {
                    Tamper::DropAddTempRootReply if op == Op::AddTempRoot => bytes.clear(),
                    Tamper::NarSizePlusOne => {
                        if let Reply::QueryPathInfo { info: Some(info) } = &**reply {
                            let mut info = info.clone();
                            info.nar_size += 1;
                            let changed = Reply::QueryPathInfo { info: Some(info) };
                            let mut w = nixcap_wire::primitives::Writer::new();
                            changed.encode(&mut w, &negotiated);
                            bytes = w.into_bytes();
                        }
                    }
                    Tamper::CloseMidReply(target) if op == target => {
                        let _ = to_client.write_all(&bytes[..bytes.len() / 2]);
                        break 'outer;
                    }
                    Tamper::Garbage(target) if op == target => {
                        bytes = vec![0xff; bytes.len().max(8) + 8];
                        done = true;
                    }
                    Tamper::Hang(target) if op == target => {
                        // Keep the connection open, say nothing more.
                        std::thread::sleep(Duration::from_secs(30));
                        break 'outer;
                    }
                    _ => {}
                }
            }
            if to_client.write_all(&bytes).is_err() {
                break 'outer;
            }
            if done {
                break;
            }
        }
    }
    let _ = to_client.shutdown(Shutdown::Both);
    let _ = up.join();
}

fn check_tampered(series: &str, name: &str, tamper: Tamper) -> CheckReport {
    let target = FakeTarget::start(load(series, name), tamper);
    let options = Options::default().with_timeout(Duration::from_secs(3));
    check(&load(series, name), &target.address(), &options)
        .unwrap()
        .report
}

#[test]
fn a_faithful_target_is_the_same() {
    for series in ["nix-2.8", "nix-2.34"] {
        let report = check_tampered(series, "build.nixcap", Tamper::None);
        assert_eq!(report.verdict, Verdict::Same, "{series}:\n{report}");
        assert_eq!(report.ops_sent, report.ops_recorded);
        assert!(report.ops_sent > 0);
    }
}

#[test]
fn a_dropped_add_temp_root_reply_is_reported_at_that_op() {
    let report = check_tampered("nix-2.26", "build.nixcap", Tamper::DropAddTempRootReply);
    assert_eq!(report.verdict, Verdict::Different, "{report}");
    assert_eq!(report.problems.len(), 1, "{report}");
    let problem = &report.problems[0];
    assert_eq!(problem.op.as_deref(), Some("AddTempRoot"), "{report}");
    assert_eq!(problem.kind, ProblemKind::Hang, "{report}");
    assert!(
        problem.message.contains("the answer to AddTempRoot"),
        "{report}"
    );
    // The diff shows the op unfinished where the recording has its reply.
    let (_, op, field) = report
        .diff
        .field_diffs()
        .find(|(_, op, _)| op.op == "AddTempRoot")
        .unwrap();
    assert_eq!(op.a_seq, problem.seq, "{report}");
    assert_eq!(field.path, "outcome", "{report}");
    let text = report.to_string();
    assert!(
        text.contains("AddTempRoot: no answer from the target within 3 s"),
        "{text}"
    );
}

#[test]
fn a_changed_nar_size_is_reported_at_the_op_and_field() {
    let report = check_tampered("nix-2.34", "path-info.nixcap", Tamper::NarSizePlusOne);
    assert_eq!(report.verdict, Verdict::Different, "{report}");
    assert!(report.problems.is_empty(), "{report}");
    let fields: Vec<_> = report.diff.field_diffs().collect();
    assert!(!fields.is_empty());
    for (_, op, field) in &fields {
        assert_eq!(op.op, "QueryPathInfo", "{report}");
        assert_eq!(field.path, "reply.info.narSize", "{report}");
        let (a, b) = (field.a.as_ref().unwrap(), field.b.as_ref().unwrap());
        assert_eq!(a.as_u64().unwrap() + 1, b.as_u64().unwrap());
    }
    let recorded_valid_infos = load("nix-2.34", "path-info.nixcap")
        .connections
        .iter()
        .flat_map(|c| &c.exchanges)
        .filter(|e| {
            matches!(
                &e.outcome,
                nixcap_view::Outcome::Reply(Reply::QueryPathInfo { info: Some(_) })
            )
        })
        .count();
    assert_eq!(fields.len(), recorded_valid_infos, "{report}");
}

#[test]
fn a_target_closing_mid_reply_is_reported_with_connection_and_op() {
    let report = check_tampered(
        "nix-2.34",
        "path-info.nixcap",
        Tamper::CloseMidReply(Op::QueryPathInfo),
    );
    assert_eq!(report.verdict, Verdict::Different, "{report}");
    let problem = report
        .problems
        .iter()
        .find(|p| p.op.as_deref() == Some("QueryPathInfo"))
        .unwrap_or_else(|| panic!("{report}"));
    assert_eq!(problem.kind, ProblemKind::Closed, "{report}");
    assert!(
        problem.message.contains("closed the connection"),
        "{report}"
    );
    assert!(problem.seq.is_some());
}

#[test]
fn a_target_sending_garbage_is_reported_with_connection_and_op() {
    let report = check_tampered(
        "nix-2.8",
        "path-info.nixcap",
        Tamper::Garbage(Op::QueryPathInfo),
    );
    assert_eq!(report.verdict, Verdict::Different, "{report}");
    let problem = report
        .problems
        .iter()
        .find(|p| p.op.as_deref() == Some("QueryPathInfo"))
        .unwrap_or_else(|| panic!("{report}"));
    assert_eq!(problem.kind, ProblemKind::Undecodable, "{report}");
    assert!(problem.message.contains("cannot be decoded"), "{report}");
}

#[test]
fn a_hung_target_is_reported_not_waited_on() {
    let report = check_tampered("nix-2.26", "add.nixcap", Tamper::Hang(Op::AddToStore));
    assert_eq!(report.verdict, Verdict::Different, "{report}");
    let problem = report
        .problems
        .iter()
        .find(|p| p.op.as_deref() == Some("AddToStore"))
        .unwrap_or_else(|| panic!("{report}"));
    assert_eq!(problem.kind, ProblemKind::Hang, "{report}");
}

#[test]
fn the_system_daemon_socket_is_refused_unless_allowed() {
    let recorded = load("nix-2.8", "store-info.nixcap");
    let error = check(
        &recorded,
        "unix:///nix/var/nix/daemon-socket/socket",
        &Options::default(),
    )
    .unwrap_err();
    assert!(error.to_string().contains("system daemon"), "{error}");
    assert!(nixcap_check::is_system_daemon_socket(Path::new(
        nixcap_check::SYSTEM_DAEMON_SOCKET
    )));
    assert!(!nixcap_check::is_system_daemon_socket(Path::new(
        "/tmp/x.sock"
    )));
}

#[test]
fn an_unreachable_target_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let recorded = load("nix-2.8", "store-info.nixcap");
    let error = check(
        &recorded,
        &format!("unix://{}/none.sock", dir.path().display()),
        &Options::default(),
    )
    .unwrap_err();
    assert!(error.to_string().contains("connecting to"), "{error}");
}
