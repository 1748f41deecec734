//! The client against scripted fake daemons (faults: errors, cut-off and
//! undecodable replies, silence) and against real daemons of Nix 2.8, 2.26
//! and 2.34 (skipped without them, failing under `NIXCAP_REQUIRE_NIX=1`).

#![allow(clippy::unwrap_used, reason = "tests")]

use std::io::{Read, Write};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::Duration;

use nixcap_client::{socket_path, Client, ClientError, ClientOptions};
use nixcap_test_support::{peer_or_skip, Daemon, DaemonOptions, NixVersion};
use nixcap_wire::handshake::{DaemonHello, DaemonNixVersion};
use nixcap_wire::nar::NarWriter;
use nixcap_wire::ops::{Op, Reply, Request};
use nixcap_wire::primitives::Writer;
use nixcap_wire::stderr::{ErrorInfo, StderrMessage};
use nixcap_wire::types::{StorePath, UnkeyedValidPathInfo};
use nixcap_wire::{ByteString, Negotiated, ProtocolVersion};

const V1_34: ProtocolVersion = ProtocolVersion::new(1, 34);
/// 1.34 is what Nix 2.8 speaks: a Nix version string, but no trust word.
/// What a client at 1.34 sends in the handshake: hello (16), affinity, reserveSpace.
const CLIENT_HANDSHAKE_LEN: usize = 32;
const PATH: &str = "/nix/store/g1w7hy3qg1w7hy3qg1w7hy3qg1w7hy3q-foo";

/// The daemon side of a 2.8-style handshake at 1.34.
fn daemon_handshake() -> Vec<u8> {
    let mut w = Writer::new();
    DaemonHello { version: V1_34 }.encode(&mut w);
    daemon_handshake_rest(&mut w);
    w.into_bytes()
}

/// What the daemon sends after its hello.
fn daemon_handshake_rest(w: &mut Writer) {
    DaemonNixVersion(ByteString::from("2.8.0")).encode(w);
    StderrMessage::Last.encode(w);
}

/// A fake daemon: after the handshake, for each step reads `n` request bytes and answers.
struct Fake {
    socket: PathBuf,
    _dir: tempfile::TempDir,
    thread: Option<JoinHandle<Vec<u8>>>,
}

impl Fake {
    fn start(steps: Vec<(usize, Vec<u8>)>) -> Fake {
        Fake::start_with(steps, false)
    }

    /// Like `start`, but the fake closes the connection after its last step.
    fn start_then_close(steps: Vec<(usize, Vec<u8>)>) -> Fake {
        Fake::start_with(steps, true)
    }

    fn start_with(steps: Vec<(usize, Vec<u8>)>, close: bool) -> Fake {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("fake.sock");
        let listener = UnixListener::bind(&socket).unwrap();
        let thread = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            // As a daemon does: the hello as soon as the client's magic is in.
            let mut received = vec![0u8; CLIENT_HANDSHAKE_LEN];
            stream.read_exact(&mut received[..16]).unwrap();
            let mut w = Writer::new();
            DaemonHello { version: V1_34 }.encode(&mut w);
            stream.write_all(w.as_bytes()).unwrap();
            stream.read_exact(&mut received[16..]).unwrap();
            let mut w = Writer::new();
            daemon_handshake_rest(&mut w);
            stream.write_all(w.as_bytes()).unwrap();
            for (n, answer) in steps {
                let mut request = vec![0u8; n];
                if stream.read_exact(&mut request).is_err() {
                    break;
                }
                received.extend_from_slice(&request);
                if stream.write_all(&answer).is_err() {
                    break;
                }
            }
            if close {
                return received;
            }
            // Hold the connection until the client hangs up.
            let mut rest = Vec::new();
            let _ = stream.read_to_end(&mut rest);
            received.extend_from_slice(&rest);
            received
        });
        Fake {
            socket,
            _dir: dir,
            thread: Some(thread),
        }
    }

    fn connect(&self) -> Client {
        Client::connect_path(
            &self.socket,
            ClientOptions::default().with_timeout(Duration::from_millis(500)),
        )
        .unwrap()
    }

    fn received(mut self) -> Vec<u8> {
        self.thread.take().unwrap().join().unwrap()
    }
}

fn request_len(request: &Request) -> usize {
    let mut w = Writer::new();
    request.encode(&mut w, &Negotiated::new(V1_34));
    w.as_bytes().len()
}

fn info() -> UnkeyedValidPathInfo {
    UnkeyedValidPathInfo {
        deriver: None,
        nar_hash: "ab".repeat(32),
        references: vec![StorePath::new(PATH)],
        registration_time: 1_700_000_000,
        nar_size: 120,
        ultimate: true,
        sigs: vec![],
        ca: None,
    }
}

fn query(path: &str) -> Request {
    Request::QueryPathInfo {
        path: StorePath::new(path),
    }
}

fn reply_bytes(logs: &[StderrMessage], reply: &Reply) -> Vec<u8> {
    let mut w = Writer::new();
    for message in logs {
        message.encode(&mut w);
    }
    StderrMessage::Last.encode(&mut w);
    reply.encode(&mut w, &Negotiated::new(V1_34));
    w.into_bytes()
}

fn daemon_error(message: &str) -> Vec<u8> {
    let mut w = Writer::new();
    StderrMessage::Error(ErrorInfo::Structured {
        level: 0,
        name: ByteString::from("Error"),
        message: ByteString::from(message),
        traces: vec![],
    })
    .encode(&mut w);
    w.into_bytes()
}

#[test]
fn handshake_request_logs_and_reply() {
    let log = StderrMessage::Next {
        text: ByteString::from("hello\n"),
    };
    let reply = Reply::QueryPathInfo { info: Some(info()) };
    let fake = Fake::start(vec![(
        request_len(&query(PATH)),
        reply_bytes(std::slice::from_ref(&log), &reply),
    )]);
    let mut client = fake.connect();
    assert_eq!(client.version(), V1_34);
    assert_eq!(client.daemon().nix_version.as_deref(), Some("2.8.0"));
    assert_eq!(client.daemon().trust, None);
    let response = client.request(&query(PATH)).unwrap();
    assert_eq!(response.logs, vec![log]);
    assert_eq!(response.reply, reply);
    drop(client);
    let received = fake.received();
    // The client announced 1.38 and sent the request encoded at 1.34.
    assert_eq!(&received[8..16], &0x126u64.to_le_bytes());
    assert_eq!(&received[CLIENT_HANDSHAKE_LEN..][..8], &26u64.to_le_bytes());
}

#[test]
fn a_daemon_error_names_the_op_and_leaves_the_connection_usable() {
    let n = request_len(&query(PATH));
    let fake = Fake::start(vec![
        (n, daemon_error("path is not valid")),
        (n, reply_bytes(&[], &Reply::QueryPathInfo { info: None })),
    ]);
    let mut client = fake.connect();
    let error = client.query_path_info(PATH).unwrap_err();
    assert!(error.is_daemon_error());
    assert_eq!(
        error.to_string(),
        "the daemon refused QueryPathInfo: path is not valid"
    );
    assert_eq!(client.query_path_info(PATH).unwrap(), None);
}

#[test]
fn a_reply_cut_short_says_where_the_stream_ended() {
    let mut answer = reply_bytes(&[], &Reply::QueryPathInfo { info: Some(info()) });
    let full = answer.len();
    answer.truncate(full - 20);
    let cut = answer.len() as u64;
    let fake = Fake::start_then_close(vec![(request_len(&query(PATH)), answer)]);
    let mut client = fake.connect();
    let error = client.query_path_info(PATH);
    match error {
        Err(ClientError::Closed { what, offset }) => {
            assert_eq!(what, "the QueryPathInfo reply");
            assert_eq!(offset, daemon_handshake().len() as u64 + cut);
        }
        other => panic!("expected Closed, got {other:?}"),
    }
}

#[test]
fn undecodable_bytes_are_an_error_with_their_offset() {
    let mut w = Writer::new();
    StderrMessage::Last.encode(&mut w);
    w.u64(7); // a bool that is neither 0 nor 1
    let fake = Fake::start(vec![(request_len(&query(PATH)), w.into_bytes())]);
    let mut client = fake.connect();
    let error = client.query_path_info(PATH).unwrap_err();
    match &error {
        ClientError::Decode { what, offset, .. } => {
            assert_eq!(what, "the QueryPathInfo reply");
            assert_eq!(*offset, daemon_handshake().len() as u64 + 8);
        }
        other => panic!("expected Decode, got {other:?}"),
    }
    assert!(error.to_string().contains("not 0 or 1"), "{error}");
}

#[test]
fn a_silent_daemon_times_out() {
    // The fake reads the request and never answers.
    let fake = Fake::start(vec![(request_len(&query(PATH)), Vec::new())]);
    let mut client = fake.connect();
    let error = client.query_path_info(PATH).unwrap_err();
    assert!(
        matches!(&error, ClientError::Timeout { what, .. } if what == "the QueryPathInfo log stream"),
        "{error:?}"
    );
}

#[test]
fn nar_from_path_reads_exactly_the_nar() {
    let nar = NarWriter::new().regular(true, &[7u8; 100_000]).finish();
    let nar_request = Request::NarFromPath {
        path: StorePath::new(PATH),
    };
    let mut answer = reply_bytes(&[], &Reply::NarFromPath {});
    answer.extend_from_slice(&nar);
    let n = request_len(&query(PATH));
    let fake = Fake::start(vec![
        (request_len(&nar_request), answer),
        (n, reply_bytes(&[], &Reply::QueryPathInfo { info: None })),
    ]);
    let mut client = fake.connect();
    assert_eq!(client.nar_from_path(PATH).unwrap(), nar);
    // The bytes after the NAR belong to the next reply.
    assert_eq!(client.query_path_info(PATH).unwrap(), None);
}

#[test]
fn a_dump_that_fails_midway_is_the_daemons_error() {
    let nar_request = Request::NarFromPath {
        path: StorePath::new(PATH),
    };
    let mut answer = reply_bytes(&[], &Reply::NarFromPath {});
    let nar = NarWriter::new().regular(false, b"abc").finish();
    answer.extend_from_slice(&nar[..24]); // magic, then the error where "(" belongs
    answer.extend_from_slice(&daemon_error("cannot read file"));
    let fake = Fake::start(vec![(request_len(&nar_request), answer)]);
    let mut client = fake.connect();
    let error = client.nar_from_path(PATH).unwrap_err();
    assert_eq!(
        error.to_string(),
        format!("the daemon failed to send the NAR of {PATH}: cannot read file")
    );
    assert!(
        !error.is_daemon_error(),
        "the connection is not usable any more"
    );
}

#[test]
fn an_op_with_an_upload_is_not_sent_by_request() {
    let fake = Fake::start(vec![]);
    let mut client = fake.connect();
    let error = client
        .request(&Request::AddBuildLog {
            base_name: "x.drv".into(),
        })
        .unwrap_err();
    assert!(matches!(error, ClientError::Unsupported { .. }), "{error}");
    assert_eq!(Op::AddBuildLog.name(), "AddBuildLog");
}

#[test]
fn store_addresses() {
    assert_eq!(
        socket_path("unix:///run/s?root=/r").unwrap(),
        Path::new("/run/s")
    );
    assert_eq!(socket_path("unix:/run/s").unwrap(), Path::new("/run/s"));
    assert_eq!(socket_path("/run/s").unwrap(), Path::new("/run/s"));
    assert!(socket_path("daemon").is_err());
    assert!(socket_path("unix://relative").is_err());
    let error = Client::connect("/nonexistent/socket", ClientOptions::default()).unwrap_err();
    assert!(matches!(error, ClientError::Connect { .. }), "{error}");
}

/// Against a real daemon: the path info and NAR of an added file equal what the version's own
/// client reports, an unknown path is `None`, and a build log added with AddBuildLog is what
/// `nix-store --read-log` prints.
fn real_daemon(version: NixVersion) {
    let Some(peer) = peer_or_skip(version) else {
        return;
    };
    let daemon = Daemon::start(&peer, DaemonOptions::new());
    let work = tempfile::tempdir().unwrap();
    std::fs::write(
        work.path().join("hello.txt"),
        "hello from the client test\n",
    )
    .unwrap();
    let path = peer
        .command("nix-store")
        .args(["--add", "hello.txt"])
        .store(&daemon)
        .current_dir(work.path())
        .stdout_ok();
    let path = path.trim();
    let dumped = NarWriter::new()
        .regular(false, b"hello from the client test\n")
        .finish();
    let hash = peer
        .command("nix-store")
        .args(["-q", "--hash", path])
        .store(&daemon)
        .stdout_ok();

    let mut client = Client::connect_path(daemon.socket_path(), ClientOptions::default()).unwrap();
    assert_eq!(
        client.daemon().nix_version.as_deref(),
        Some(peer.nix_version())
    );
    let info = client.query_path_info(path).unwrap().unwrap();
    assert_eq!(info.nar_size, dumped.len() as u64);
    let nar = client.nar_from_path(path).unwrap();
    assert_eq!(nar, dumped);
    use sha2::Digest;
    assert_eq!(hex::encode(sha2::Sha256::digest(&nar)), info.nar_hash);
    assert!(hash.starts_with("sha256:"), "{hash}");
    // The same name under another hash: valid syntax, not in the store.
    let missing = format!("/nix/store/{}-hello.txt", "x".repeat(32));
    // Real daemons answer with an error rather than "not valid"; either way the connection
    // goes on.
    match client.query_path_info(&missing) {
        Ok(None) => {}
        Err(error) if error.is_daemon_error() => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(client.query_path_info(path).unwrap(), Some(info.clone()));
    // The daemon fails after it has ended the work phase, and closes the connection.
    let error = client.nar_from_path(&missing).unwrap_err();
    assert!(matches!(error, ClientError::DumpFailed { .. }), "{error}");
    let mut client = Client::connect_path(daemon.socket_path(), ClientOptions::default()).unwrap();
    assert_eq!(client.query_path_info(path).unwrap(), Some(info));

    let drv = format!("{}-client-test.drv", "1".repeat(32));
    client.add_build_log(&drv, b"line one\nline two\n").unwrap();
    let log = peer
        .command("nix-store")
        .args(["--read-log", &format!("/nix/store/{drv}")])
        .store(&daemon)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&log.stdout),
        "line one\nline two\n",
        "{}",
        String::from_utf8_lossy(&log.stderr)
    );
}

#[test]
fn real_daemon_2_8() {
    real_daemon(NixVersion::V2_8);
}

#[test]
fn real_daemon_2_26() {
    real_daemon(NixVersion::V2_26);
}

#[test]
fn real_daemon_2_34() {
    real_daemon(NixVersion::V2_34);
}
