//! Remote stores over SSH, recorded with `nixcap record --stdio` as the remote program.
//!
//! Nix runs the remote program of a store on host `localhost` itself, through `bash -c`, with
//! no `ssh` at all (checked here for 2.8, 2.26 and 2.34: the copies succeed with no `ssh` on
//! `PATH`). Each test copies a path from one real daemon to another through
//! `ssh-ng://localhost?remote-program=W` (`nix-daemon --stdio`, the worker protocol) or
//! `ssh://localhost?remote-program=W` (`nix-store --serve --write`, the serve protocol), where
//! `W` is a script that runs `nixcap record --stdio` in front of the real remote program. The
//! copy must land in the destination store, and the capture directory must hold one capture per
//! session with every byte relayed. The same copy is then run against `nixcap replay --stdio` of
//! that capture as the remote program, and must print and exit as the recorded one did.
//!
//! These tests skip (printing why) when a Nix version is missing, and fail instead when
//! `NIXCAP_REQUIRE_NIX=1` is set.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nixcap_capture::{read_capture_file, Capture, CloseReason, Direction};
use nixcap_test_support::{peer_or_skip, Daemon, DaemonOptions, NixVersion, Peer};
use nixcap_view::DecodedCapture;

use super::replay::{stdio_divergences, stdio_report};

pub(super) const NIXCAP: &str = env!("CARGO_BIN_EXE_nixcap");

/// The first word a worker-protocol client sends.
const WORKER_MAGIC_1: u64 = 0x6e69_7863;
/// The first word a serve-protocol client sends.
const SERVE_MAGIC_1: u64 = 0x390c_9deb;

/// Which kind of SSH store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `ssh-ng://`: `nix-daemon --stdio`, the worker protocol.
    SshNg,
    /// `ssh://`: `nix-store --serve --write`, the serve protocol.
    Ssh,
}

impl Kind {
    fn scheme(self) -> &'static str {
        match self {
            Kind::SshNg => "ssh-ng",
            Kind::Ssh => "ssh",
        }
    }

    fn remote_program(self) -> &'static str {
        match self {
            Kind::SshNg => "nix-daemon",
            Kind::Ssh => "nix-store",
        }
    }

    fn client_magic(self) -> u64 {
        match self {
            Kind::SshNg => WORKER_MAGIC_1,
            Kind::Ssh => SERVE_MAGIC_1,
        }
    }
}

/// A working directory with an input file, a capture directory and remote-program scripts,
/// bound into chroot clients at the same path.
pub(super) struct Work {
    dir: tempfile::TempDir,
}

impl Work {
    pub(super) fn new() -> Work {
        let dir = tempfile::Builder::new()
            .prefix("nixcap-remote-")
            .tempdir_in("/tmp")
            .unwrap();
        fs::write(
            dir.path().join("hello.txt"),
            b"nixcap remote input: copied over a stdio session\n",
        )
        .unwrap();
        fs::create_dir(dir.path().join("captures")).unwrap();
        Work { dir }
    }

    pub(super) fn path(&self) -> &Path {
        self.dir.path()
    }

    pub(super) fn captures_dir(&self) -> PathBuf {
        self.path().join("captures")
    }

    /// Writes an executable script `name` and returns its path.
    pub(super) fn script(&self, name: &str, body: &str) -> PathBuf {
        let path = self.path().join(name);
        fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    /// A remote program that records into the capture directory in front of `kind`'s real
    /// remote program, which serves the store of `target`.
    fn recording_program(&self, kind: Kind, target: &Daemon) -> PathBuf {
        self.script(
            &format!("record-{}", kind.scheme()),
            &format!(
                "NIX_REMOTE='{}' exec '{NIXCAP}' record --stdio -w '{}' -- {} \"$@\"",
                target.store_uri(),
                self.captures_dir().display(),
                kind.remote_program(),
            ),
        )
    }

    /// A remote program that replays `capture` (`nixcap replay --stdio`), writing its report to
    /// `report`.
    fn replaying_program(&self, kind: Kind, capture: &Path, report: &Path) -> PathBuf {
        self.script(
            &format!("replay-{}", kind.scheme()),
            &format!(
                "exec '{NIXCAP}' replay --stdio --report '{}' '{}'",
                report.display(),
                capture.display(),
            ),
        )
    }

    /// Every capture in the capture directory, by name, once all are finished. The recorder
    /// finishes a capture just after the client is done with the session, so this waits a
    /// little for the footers (and for a capture still being started to be readable).
    pub(super) fn captures(&self) -> Vec<(String, Capture)> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let mut names: Vec<String> = fs::read_dir(self.captures_dir())
                .unwrap()
                .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            // A capture the recorder has only just created may not have its header yet (its
            // writer runs beside the relay): it is read again until the deadline.
            let read: Result<Vec<(String, Capture)>, String> = names
                .into_iter()
                .map(|name| {
                    read_capture_file(self.captures_dir().join(&name))
                        .map(|capture| (name.clone(), capture))
                        .map_err(|err| format!("{name}: {err}"))
                })
                .collect();
            let late = Instant::now() > deadline;
            match read {
                Ok(captures) if late || captures.iter().all(|(_, c)| c.footer.is_some()) => {
                    return captures;
                }
                Err(err) if late => panic!("{err}"),
                _ => {}
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A client of `peer` with `store` as its store, seeing `work` and the nixcap binary.
pub(super) fn client(
    peer: &Peer,
    work: &Work,
    program: &str,
    dirs: &[&Path],
) -> nixcap_test_support::NixCommand {
    let mut command = peer.command(program);
    command.current_dir(work.path()).bind_dir(work.path());
    if let Some(bin_dir) = Path::new(NIXCAP).parent() {
        command.bind_dir(bin_dir);
    }
    for dir in dirs {
        command.bind_dir(*dir);
    }
    command
}

/// Adds the input file to `daemon`'s store and returns its store path.
fn add_input(peer: &Peer, work: &Work, daemon: &Daemon) -> String {
    client(peer, work, "nix-store", &[])
        .store(daemon)
        .args(["--add", "hello.txt"])
        .stdout_ok()
        .trim()
        .to_owned()
}

/// Whether `path` is valid in `daemon`'s store.
fn is_valid(peer: &Peer, work: &Work, daemon: &Daemon, path: &str) -> bool {
    client(peer, work, "nix-store", &[])
        .store(daemon)
        .args(["--check-validity", path])
        .output()
        .unwrap()
        .status
        .success()
}

/// Checks a stdio capture: one connection, cleanly closed, opened with stdio metadata, whose
/// client stream starts with `kind`'s magic.
fn check_capture(name: &str, capture: &Capture, kind: Kind) {
    assert!(capture.footer.is_some(), "{name}: not finished");
    assert_eq!(
        capture.header.metadata.get("transport").map(String::as_str),
        Some("stdio"),
        "{name}"
    );
    assert_eq!(capture.connections.len(), 1, "{name}");
    let connection = &capture.connections[0];
    assert_eq!(
        connection
            .opened
            .metadata
            .get("transport")
            .map(String::as_str),
        Some("stdio"),
        "{name}"
    );
    assert!(
        connection.opened.metadata["command"].starts_with(kind.remote_program()),
        "{name}: {:?}",
        connection.opened.metadata
    );
    let closed = connection.closed.as_ref().expect("closed");
    assert_eq!(closed.reason, CloseReason::CleanEof, "{name}");
    let client_bytes = connection.stream(Direction::ClientToServer);
    assert!(
        client_bytes.len() >= 8,
        "{name}: {} client bytes",
        client_bytes.len()
    );
    let magic = u64::from_le_bytes(client_bytes[..8].try_into().unwrap());
    assert_eq!(magic, kind.client_magic(), "{name}: client magic");
    assert!(
        !connection.stream(Direction::ServerToClient).is_empty(),
        "{name}: the remote program said nothing"
    );
}

/// Asserts that every connection of `capture` decodes with no opaque bytes.
pub(super) fn assert_fully_decoded(name: &str, capture: Capture) {
    let decoded = DecodedCapture::new(capture);
    for connection in &decoded.connections {
        assert!(
            connection.fully_decoded(),
            "{name} connection {}: {:?}",
            connection.conn,
            connection.undecoded().next()
        );
        assert!(!connection.exchanges.is_empty(), "{name}: no operations");
    }
}

/// `show`, `show --json`, `info` and `export` read a stdio capture, naming the commands the
/// client sent.
fn check_commands(file: &Path, kind: Kind) {
    let run = |args: &[&str]| {
        let output = std::process::Command::new(NIXCAP)
            .args(args)
            .arg(file)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "nixcap {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    };
    let text = run(&["show"]);
    eprintln!("{text}");
    assert!(!text.contains("undecodable"), "{text}");
    let expected = match kind {
        Kind::SshNg => ["protocol 1.", "AddMultipleToStore"],
        Kind::Ssh => ["serve protocol 2.", "QueryValidPaths"],
    };
    for word in expected {
        assert!(text.contains(word), "`nixcap show` lacks {word:?}:\n{text}");
    }
    let json = run(&["show", "--json"]);
    let mut types = std::collections::BTreeSet::new();
    for line in json.lines() {
        let value: serde_json::Value = serde_json::from_str(line).unwrap();
        types.insert(value["type"].as_str().unwrap().to_owned());
    }
    if kind == Kind::Ssh {
        assert!(types.contains("serveRequest"), "{types:?}");
        assert!(types.contains("serveReply"), "{types:?}");
    }
    let diff = std::process::Command::new(NIXCAP)
        .arg("diff")
        .arg(file)
        .arg(file)
        .output()
        .unwrap();
    assert_eq!(
        diff.status.code(),
        Some(0),
        "nixcap diff of a capture with itself: {}{}",
        String::from_utf8_lossy(&diff.stdout),
        String::from_utf8_lossy(&diff.stderr)
    );
    let info = run(&["info"]);
    assert!(info.contains("Connections:            1"), "{info}");
    let pcap = file.with_extension("pcapng");
    let output = std::process::Command::new(NIXCAP)
        .arg("export")
        .arg(file)
        .arg("-o")
        .arg(&pcap)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "nixcap export: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(fs::metadata(&pcap).unwrap().len() > 0);
    fs::remove_file(&pcap).unwrap();
}

/// `nix copy --to <kind>://localhost?remote-program=<recorder>` from one daemon to another,
/// then the same copy with `nixcap replay --stdio` of that capture as the remote program: the
/// client must print the same and exit the same, with no remote store at all.
fn copy_is_recorded_and_replayed(version: NixVersion, kind: Kind) {
    let Some(peer) = peer_or_skip(version) else {
        return;
    };
    let source = Daemon::start(&peer, DaemonOptions::new());
    let target = Daemon::start(&peer, DaemonOptions::new());
    let work = Work::new();
    let path = add_input(&peer, &work, &source);
    assert!(!is_valid(&peer, &work, &target, &path));

    let copy = |program: &Path| {
        let uri = format!(
            "{}://localhost?remote-program={}",
            kind.scheme(),
            program.display()
        );
        let output = client(&peer, &work, "nix", &[target.state_dir()])
            .store(&source)
            .args(["copy", "--to", &uri, &path])
            .output()
            .unwrap();
        (uri, output)
    };
    let (uri, recorded) = copy(&work.recording_program(kind, &target));
    assert!(
        recorded.status.success(),
        "nix copy --to {uri} ({}): {}",
        peer.nix_version(),
        String::from_utf8_lossy(&recorded.stderr)
    );
    assert!(
        is_valid(&peer, &work, &target, &path),
        "{path} did not reach the target store"
    );

    let captures = work.captures();
    assert_eq!(captures.len(), 1, "one session, one capture");
    for (name, capture) in captures {
        assert!(
            name.ends_with(".nixcap") && name.len() > 30,
            "capture name {name}"
        );
        check_capture(&name, &capture, kind);
        assert_fully_decoded(&name, capture);
        let file = work.captures_dir().join(&name);
        check_commands(&file, kind);

        let report = work.path().join("replay-report.json");
        let (uri, replayed) = copy(&work.replaying_program(kind, &file, &report));
        assert_eq!(
            (
                replayed.status.code(),
                String::from_utf8_lossy(&replayed.stdout),
                String::from_utf8_lossy(&replayed.stderr)
            ),
            (
                recorded.status.code(),
                String::from_utf8_lossy(&recorded.stdout),
                String::from_utf8_lossy(&recorded.stderr)
            ),
            "nix copy --to {uri} ({}): replayed and recorded runs differ",
            peer.nix_version()
        );
        let report = stdio_report(&report).unwrap_or_else(|err| panic!("{err}"));
        eprintln!("{report:#}");
        assert_eq!(report["connections"], 1, "{report:#}");
        assert!(report["served"].as_u64().unwrap() >= 2, "{report:#}");
        assert_eq!(
            stdio_divergences(&report),
            Vec::<String>::new(),
            "{report:#}"
        );
        assert_eq!(report["unused"], serde_json::json!([]), "{report:#}");
    }
}

#[test]
fn nix_2_8_copy_to_ssh_ng_is_recorded_and_replayed() {
    copy_is_recorded_and_replayed(NixVersion::V2_8, Kind::SshNg);
}

#[test]
fn nix_2_26_copy_to_ssh_ng_is_recorded_and_replayed() {
    copy_is_recorded_and_replayed(NixVersion::V2_26, Kind::SshNg);
}

#[test]
fn nix_2_34_copy_to_ssh_ng_is_recorded_and_replayed() {
    copy_is_recorded_and_replayed(NixVersion::V2_34, Kind::SshNg);
}

#[test]
fn nix_2_8_copy_to_ssh_is_recorded_and_replayed() {
    copy_is_recorded_and_replayed(NixVersion::V2_8, Kind::Ssh);
}

#[test]
fn nix_2_26_copy_to_ssh_is_recorded_and_replayed() {
    copy_is_recorded_and_replayed(NixVersion::V2_26, Kind::Ssh);
}

#[test]
fn nix_2_34_copy_to_ssh_is_recorded_and_replayed() {
    copy_is_recorded_and_replayed(NixVersion::V2_34, Kind::Ssh);
}

/// What Nix does at the end of a session: close the pipes, then SIGKILL the remote program at
/// once. The capture must still be finished, hold every byte relayed, and end cleanly.
#[test]
fn a_recorder_killed_as_nix_does_still_finishes_its_capture() {
    use std::io::{Read, Write};
    use std::process::{Command, Stdio};

    let work = Work::new();
    let mut child = Command::new(NIXCAP)
        .args(["record", "--stdio", "-w"])
        .arg(work.captures_dir())
        .args(["--", "cat"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    stdin.write_all(b"a request").unwrap();
    let mut echoed = [0u8; 9];
    stdout.read_exact(&mut echoed).unwrap();
    assert_eq!(&echoed, b"a request");
    drop(stdin);
    drop(stdout);
    child.kill().unwrap();
    child.wait().unwrap();

    let captures = work.captures();
    assert_eq!(captures.len(), 1);
    let (name, capture) = &captures[0];
    assert!(capture.footer.is_some(), "{name}: not finished");
    let connection = &capture.connections[0];
    assert_eq!(connection.stream(Direction::ClientToServer), b"a request");
    assert_eq!(connection.stream(Direction::ServerToClient), b"a request");
    assert_eq!(
        connection.closed.as_ref().unwrap().reason,
        CloseReason::CleanEof
    );
    assert_eq!(connection.opened.metadata["command"], "cat");
}

/// The recorder writes nothing of its own to stdout, and exits with the program's status.
#[test]
fn the_stdio_recorder_passes_the_exit_status_and_keeps_stdout_clean() {
    use std::process::Command;

    let work = Work::new();
    let capture = work.path().join("one.nixcap");
    let output = Command::new(NIXCAP)
        .args(["record", "--stdio", "-w"])
        .arg(&capture)
        .args(["--", "sh", "-c", "printf out; exit 7"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(7));
    assert_eq!(output.stdout, b"out");
    assert!(
        output.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let capture = read_capture_file(&capture).unwrap();
    assert_eq!(
        capture.connections[0].stream(Direction::ServerToClient),
        b"out"
    );

    let output = Command::new(NIXCAP)
        .args(["record", "--stdio", "-w"])
        .arg(work.path().join("two.nixcap"))
        .args(["--", "/nonexistent/remote-program"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(127));
    assert!(output.stdout.is_empty());
    assert!(!work.path().join("two.nixcap").exists());
}

/// A session the capture cannot answer: `replay --stdio` of a worker-protocol capture to a
/// serve-protocol client closes the session with nothing written to stdout, says why on stderr
/// and in the report, and exits 3; a damaged capture is refused with exit 2, naming the file.
#[test]
fn the_stdio_replayer_reports_a_session_it_cannot_answer() {
    use std::io::Write;
    use std::process::{Command, Stdio};

    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/captures/nix-2.8/add.nixcap");
    let work = Work::new();
    let report = work.path().join("report.json");
    let mut child = Command::new(NIXCAP)
        .args(["replay", "--stdio", "--report"])
        .arg(&report)
        .arg(&fixture)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    // The serve protocol's client hello: magic, then version 2.7.
    let mut hello = SERVE_MAGIC_1.to_le_bytes().to_vec();
    hello.extend_from_slice(&0x207u64.to_le_bytes());
    stdin.write_all(&hello).unwrap();
    drop(stdin);
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(output.stdout.is_empty(), "{:?}", output.stdout);
    assert!(
        stderr.contains("no serve-protocol connection"),
        "stderr: {stderr}"
    );
    let report: serde_json::Value = serde_json::from_slice(&fs::read(&report).unwrap()).unwrap();
    assert_eq!(
        report["problems"].as_array().unwrap().len(),
        1,
        "{report:#}"
    );

    let damaged = work.path().join("damaged.nixcap");
    fs::write(&damaged, b"not a capture").unwrap();
    let output = Command::new(NIXCAP)
        .args(["replay", "--stdio"])
        .arg(&damaged)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(output.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("damaged.nixcap"), "stderr: {stderr}");
}
