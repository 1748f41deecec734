//! Hardening: the recorder and the capture readers under faults, load, hostile input and
//! untrusted peers.
//!
//! * Faults, against a real Nix 2.8 daemon and the `nixcap record --listen` binary: the recorder
//!   SIGKILLed in the middle of a 64 MiB `nix-store --add` leaves a capture whose client stream is
//!   a prefix of what the client sent; the daemon killed in the middle of an op gives the client
//!   an error and the recorder goes on, recording the next connection as upstream-unreachable; a
//!   client killed in the middle of an upload closes the daemon side and is recorded; a capture
//!   file that cannot grow (RLIMIT_FSIZE) breaks neither the client nor its output, and the
//!   recorder says loudly that the capture is incomplete.
//! * Load, through the `nixcap record` binary in front of an echo daemon in this process: 200
//!   concurrent connections of 1 MiB each way, then 10 000 sequential short ones, every stream's
//!   SHA-256 checked at both ends and in the capture, and the recorder's open file descriptors
//!   counted before and after.
//! * Bad input: every command that reads a capture, given truncations at every block boundary
//!   (and a sample of other offsets), bit flips, huge length fields, wrong magic, future
//!   versions, an empty file, a directory, `/dev/null` and a missing file, under a 1 GiB
//!   address-space limit: a documented exit status, a message naming the file, never a panic.
//! * Trust: the recorder and the replayer create files only where they are told (checked with a
//!   fresh `TMPDIR` and working directory), and their sockets and captures are mode 0600.
//!
//! The figures these tests print (`--nocapture`) are collected in `docs/ROBUSTNESS.md`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers may unwrap; clippy only exempts #[test] functions"
)]

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nixcap_capture::{read_capture_file, Capture, CloseReason, Direction};
use nixcap_test_support::scenarios::{pseudo_random_bytes, sha256_hex};
use nixcap_test_support::{peer_or_skip, Daemon, DaemonOptions, NixVersion, Peer};

/// The `nixcap` binary under test.
const NIXCAP: &str = env!("CARGO_BIN_EXE_nixcap");

/// The address-space limit every bad-input run gets.
const MEMORY_LIMIT: u64 = 1 << 30;

/// The size of the large uploads of the fault tests.
const LARGE: usize = 64 << 20;

fn testdata(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata")
        .join(relative)
}

/// A fresh temporary directory under `/tmp`, short enough for socket paths.
fn short_tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("nixcap-hard")
        .tempdir_in("/tmp")
        .unwrap()
}

fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sends `signal` (a name such as `INT` or `KILL`) to `pid`, a process this test started.
fn send_signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(status.success(), "kill -{signal} {pid} failed");
}

/// The pids of the processes below `pid` (children first discovered, then theirs).
fn descendants(pid: u32) -> Vec<u32> {
    let mut parents: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let Some(child) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // The command name is in parentheses and may hold spaces; the parent pid is the
        // second field after it.
        let Some(after) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        if let Some(ppid) = after.split_whitespace().nth(1).and_then(|p| p.parse().ok()) {
            parents.entry(ppid).or_default().push(child);
        }
    }
    let mut out = Vec::new();
    let mut queue = vec![pid];
    while let Some(p) = queue.pop() {
        for &c in parents.get(&p).map(Vec::as_slice).unwrap_or_default() {
            out.push(c);
            queue.push(c);
        }
    }
    out
}

/// SIGKILLs `pid` and every process below it (all started by this test).
fn kill_tree(pid: u32) {
    let mut all = descendants(pid);
    all.reverse();
    all.push(pid);
    for p in all {
        let _ = Command::new("kill")
            .arg("-KILL")
            .arg(p.to_string())
            .status();
    }
}

fn memory_maps(pid: u32) -> usize {
    fs::read_to_string(format!("/proc/{pid}/maps"))
        .unwrap()
        .lines()
        .count()
}

fn open_fds(pid: u32) -> usize {
    fs::read_dir(format!("/proc/{pid}/fd")).unwrap().count()
}

/// A `nixcap record --listen` child process.
struct CliRecorder {
    child: Option<Child>,
    socket: PathBuf,
    capture: PathBuf,
}

impl CliRecorder {
    /// Starts `nixcap record` in `dir`, forwarding to `upstream`, with extra `env`. With
    /// `fsize_limit`, the recorder runs under that RLIMIT_FSIZE with SIGXFSZ ignored, so that
    /// writes past the limit fail with EFBIG instead of killing it.
    fn start(dir: &Path, upstream: &Path, fsize_limit: Option<u64>) -> CliRecorder {
        let socket = dir.join("rec.sock");
        let capture = dir.join("capture.nixcap");
        let mut command = match fsize_limit {
            None => Command::new(NIXCAP),
            Some(limit) => {
                let mut sh = Command::new("sh");
                sh.arg("-c")
                    .arg(r#"trap "" XFSZ; exec prlimit --fsize="$0" -- "$@""#)
                    .arg(limit.to_string())
                    .arg(NIXCAP);
                sh
            }
        };
        command
            .arg("record")
            .arg("-w")
            .arg(&capture)
            .arg("--listen")
            .arg(&socket)
            .arg("--upstream")
            .arg(upstream)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while !socket.exists() {
            if Instant::now() > deadline || child.try_wait().unwrap().is_some() {
                let _ = child.kill();
                let output = child.wait_with_output().unwrap();
                panic!(
                    "nixcap record did not listen: {}\n{}",
                    output.status,
                    String::from_utf8_lossy(&output.stderr)
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        CliRecorder {
            child: Some(child),
            socket,
            capture,
        }
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    fn capture_len(&self) -> u64 {
        fs::metadata(&self.capture).map(|m| m.len()).unwrap_or(0)
    }

    /// Stops the recorder with SIGINT and returns its output.
    fn stop(mut self) -> Output {
        let child = self.child.take().unwrap();
        send_signal(child.id(), "INT");
        child.wait_with_output().unwrap()
    }

    /// Kills the recorder with SIGKILL.
    fn kill(mut self) {
        let mut child = self.child.take().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
    }
}

impl Drop for CliRecorder {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Load
// ---------------------------------------------------------------------------------------------

/// An echo daemon on a Unix socket: every connection gets back exactly what it sent, and the
/// SHA-256 of what each connection sent is kept.
struct EchoDaemon {
    socket: PathBuf,
    received: Arc<Mutex<Vec<String>>>,
}

impl EchoDaemon {
    fn start(dir: &Path) -> EchoDaemon {
        let socket = dir.join("echo.sock");
        let listener = UnixListener::bind(&socket).unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&received);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { break };
                let seen = Arc::clone(&seen);
                std::thread::spawn(move || {
                    let mut all = Vec::new();
                    let mut buf = vec![0u8; 64 << 10];
                    loop {
                        match stream.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => {
                                all.extend_from_slice(&buf[..n]);
                                if stream.write_all(&buf[..n]).is_err() {
                                    break;
                                }
                            }
                        }
                    }
                    let _ = stream.shutdown(std::net::Shutdown::Write);
                    seen.lock().unwrap().push(sha256_hex(&all));
                });
            }
        });
        EchoDaemon { socket, received }
    }
}

/// Sends `data` through `socket`, half-closes, and returns the SHA-256 of what came back.
fn echo_through(socket: &Path, data: &[u8]) -> String {
    let stream = UnixStream::connect(socket).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut writer = stream.try_clone().unwrap();
    let owned = data.to_vec();
    let sender = std::thread::spawn(move || {
        writer.write_all(&owned).unwrap();
        writer.shutdown(std::net::Shutdown::Write).unwrap();
    });
    let mut back = Vec::with_capacity(data.len());
    let mut reader = stream;
    reader.read_to_end(&mut back).unwrap();
    sender.join().unwrap();
    sha256_hex(&back)
}

/// Waits until the recorder holds no more descriptors than `baseline`, and returns the count.
fn settled_fds(pid: u32, baseline: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = open_fds(pid);
        if now <= baseline || Instant::now() > deadline {
            return now;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn load_two_hundred_concurrent_and_ten_thousand_sequential_connections() {
    const CONCURRENT: usize = 200;
    const EACH: usize = 1 << 20;
    const SEQUENTIAL: usize = 10_000;
    let dir = short_tempdir();
    let echo = EchoDaemon::start(dir.path());
    let recorder = CliRecorder::start(dir.path(), &echo.socket, None);
    let pid = recorder.pid();

    // One connection first, so that the runtime's lazily opened descriptors are in the baseline.
    let warm = b"warm-up".to_vec();
    assert_eq!(echo_through(&recorder.socket, &warm), sha256_hex(&warm));
    std::thread::sleep(Duration::from_millis(200));
    let baseline = open_fds(pid);
    let mut expected = vec![sha256_hex(&warm)];

    let started = Instant::now();
    let socket = recorder.socket.clone();
    let clients: Vec<_> = (0..CONCURRENT)
        .map(|i| {
            let socket = socket.clone();
            std::thread::spawn(move || {
                let data = pseudo_random_bytes(EACH, 0x6c6f_6164_0000 + i as u64);
                let sent = sha256_hex(&data);
                let back = echo_through(&socket, &data);
                assert_eq!(back, sent, "connection {i}: bytes came back altered");
                sent
            })
        })
        .collect();
    for client in clients {
        expected.push(client.join().unwrap());
    }
    let concurrent_time = started.elapsed();
    let after_concurrent = settled_fds(pid, baseline);

    let started = Instant::now();
    for i in 0..SEQUENTIAL {
        let data = format!("short connection {i}").into_bytes();
        let sent = sha256_hex(&data);
        assert_eq!(echo_through(&socket, &data), sent, "short connection {i}");
        expected.push(sent);
    }
    let sequential_time = started.elapsed();
    let after_sequential = settled_fds(pid, baseline);

    let output = recorder.stop();
    assert!(
        output.status.success(),
        "recorder: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    eprintln!(
        "load: {CONCURRENT} concurrent × {EACH} B each way in {concurrent_time:.2?}; \
         {SEQUENTIAL} sequential in {sequential_time:.2?}; recorder fds {baseline} before, \
         {after_concurrent} after the concurrent phase, {after_sequential} after the sequential one"
    );
    assert!(
        after_concurrent <= baseline && after_sequential <= baseline,
        "file descriptor leak: {baseline} before, {after_concurrent} and {after_sequential} after"
    );

    // Both ends saw the same streams.
    let mut at_daemon = echo.received.lock().unwrap().clone();
    let mut sent = expected.clone();
    at_daemon.sort();
    sent.sort();
    assert_eq!(
        at_daemon, sent,
        "the daemon did not receive exactly what the clients sent"
    );

    // And so does the capture, both directions of every connection.
    let capture = read_capture_file(dir.path().join("capture.nixcap")).unwrap();
    assert!(capture.damage.is_none(), "{:?}", capture.damage);
    assert!(capture.footer.is_some());
    assert_eq!(capture.connections.len(), 1 + CONCURRENT + SEQUENTIAL);
    let mut recorded_up = Vec::new();
    for connection in &capture.connections {
        let up = sha256_hex(&connection.stream(Direction::ClientToServer));
        let down = sha256_hex(&connection.stream(Direction::ServerToClient));
        assert_eq!(
            up, down,
            "connection {}: echo recorded altered",
            connection.conn
        );
        let closed = connection
            .closed
            .as_ref()
            .expect("every connection is closed");
        assert_eq!(
            closed.reason,
            CloseReason::CleanEof,
            "connection {}",
            connection.conn
        );
        recorded_up.push(up);
    }
    recorded_up.sort();
    assert_eq!(
        recorded_up, sent,
        "the capture does not hold exactly the streams sent"
    );
    // The times are printed above, not asserted: speed is the benchmark's business
    // (`cargo xtask bench`); on a shared machine any bound here would be noise.
}

// ---------------------------------------------------------------------------------------------
// Faults against a real daemon
// ---------------------------------------------------------------------------------------------

/// A working directory holding `big`, 64 MiB of pseudo-random bytes, and `small`.
fn upload_dir() -> tempfile::TempDir {
    let work = short_tempdir();
    fs::write(
        work.path().join("big"),
        pseudo_random_bytes(LARGE, 0x6861_7264_656e),
    )
    .unwrap();
    fs::write(work.path().join("small"), b"a small file\n").unwrap();
    work
}

/// `nix-store --add FILE` through `socket`, started in the background.
fn spawn_add(
    peer: &Peer,
    daemon: &Daemon,
    work: &Path,
    socket: &Path,
    file: &str,
) -> nixcap_test_support::NixChild {
    peer.command("nix-store")
        .args(["--add", file])
        .current_dir(work)
        .remote(daemon.uri_via(socket))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// The client-to-daemon stream of the connection of `capture` that sent the most bytes.
fn largest_upload(capture: &Capture) -> (u64, Vec<u8>) {
    capture
        .connections
        .iter()
        .map(|c| (c.conn, c.stream(Direction::ClientToServer)))
        .max_by_key(|(_, s)| s.len())
        .unwrap()
}

#[test]
fn recorder_killed_mid_upload_leaves_a_prefix_of_what_was_sent() {
    let Some(peer) = peer_or_skip(NixVersion::V2_8) else {
        return;
    };
    let work = upload_dir();

    // A complete run gives the reference: what the client sends for this add.
    let reference = {
        let daemon = Daemon::start(&peer, DaemonOptions::new());
        let dir = short_tempdir();
        let recorder = CliRecorder::start(dir.path(), daemon.socket_path(), None);
        let output = spawn_add(&peer, &daemon, work.path(), &recorder.socket, "big")
            .wait_with_output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let stopped = recorder.stop();
        assert!(stopped.status.success());
        largest_upload(&read_capture_file(dir.path().join("capture.nixcap")).unwrap()).1
    };
    assert!(reference.len() > LARGE);

    let daemon = Daemon::start(&peer, DaemonOptions::new());
    let dir = short_tempdir();
    let recorder = CliRecorder::start(dir.path(), daemon.socket_path(), None);
    let client = spawn_add(&peer, &daemon, work.path(), &recorder.socket, "big");
    wait_for("16 MiB in the capture", Duration::from_secs(60), || {
        recorder.capture_len() > 16 << 20
    });
    let len_at_kill = recorder.capture_len();
    recorder.kill();
    let client_output = client.wait_with_output().unwrap();
    assert!(
        !client_output.status.success(),
        "the client cannot have finished its add"
    );

    let capture = read_capture_file(dir.path().join("capture.nixcap")).unwrap();
    assert!(
        capture.footer.is_none(),
        "a killed recorder writes no footer"
    );
    let (_, recovered) = largest_upload(&capture);
    eprintln!(
        "recorder SIGKILL: capture {len_at_kill} B at the kill; recovered {} B of the {} B client \
         stream (damage: {:?})",
        recovered.len(),
        reference.len(),
        capture.damage.as_ref().map(ToString::to_string)
    );
    assert!(
        reference.starts_with(&recovered),
        "the recovered client stream is not a prefix of what the client sends"
    );
    // Everything up to the frame being written: the file held `len_at_kill` bytes of
    // (incompressible) frames when its length was sampled, and that length may include
    // part of a frame still being written (up to 4 MiB of data in its envelope), which the
    // kill cuts. A killed writer loses at most that frame (ARCHITECTURE.md).
    let frame_bound = (4u64 << 20) + (64 << 10);
    assert!(
        recovered.len() as u64 + frame_bound >= len_at_kill,
        "recovered {} B, but the capture held {len_at_kill} B at the kill: more than one \
         frame lost",
        recovered.len()
    );
}

#[test]
fn daemon_killed_mid_op_gives_the_client_an_error_and_the_recorder_goes_on() {
    let Some(peer) = peer_or_skip(NixVersion::V2_8) else {
        return;
    };
    let work = upload_dir();
    let daemon = Daemon::start(&peer, DaemonOptions::new());
    let daemon_pid = daemon.pid().unwrap();
    let dir = short_tempdir();
    let recorder = CliRecorder::start(dir.path(), daemon.socket_path(), None);
    let client = spawn_add(&peer, &daemon, work.path(), &recorder.socket, "big");
    wait_for("8 MiB in the capture", Duration::from_secs(60), || {
        recorder.capture_len() > 8 << 20
    });
    kill_tree(daemon_pid);
    let started = Instant::now();
    let client_output = client.wait_with_output().unwrap();
    let client_stderr = String::from_utf8_lossy(&client_output.stderr).into_owned();
    assert!(!client_output.status.success());
    assert!(
        !client_stderr.trim().is_empty(),
        "the client got no error message"
    );
    assert!(started.elapsed() < Duration::from_secs(30));

    // The recorder is still serving; the daemon is gone, so the next connection is recorded
    // as upstream-unreachable, and its client fails.
    let again = spawn_add(&peer, &daemon, work.path(), &recorder.socket, "small")
        .wait_with_output()
        .unwrap();
    assert!(!again.status.success());
    let output = recorder.stop();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("with the daemon unreachable"), "{stderr}");
    let capture = read_capture_file(dir.path().join("capture.nixcap")).unwrap();
    assert!(capture.damage.is_none());
    let reasons: Vec<&CloseReason> = capture
        .connections
        .iter()
        .map(|c| &c.closed.as_ref().unwrap().reason)
        .collect();
    eprintln!(
        "daemon SIGKILL: client said {:?}; close reasons {reasons:?}",
        client_stderr.lines().last().unwrap_or_default()
    );
    let (cut, _) = largest_upload(&capture);
    let cut_reason = &capture
        .connection(cut)
        .unwrap()
        .closed
        .as_ref()
        .unwrap()
        .reason;
    assert!(
        matches!(
            cut_reason,
            CloseReason::Reset | CloseReason::Error { .. } | CloseReason::CleanEof
        ),
        "{cut_reason:?}"
    );
    assert!(
        matches!(
            reasons.last(),
            Some(CloseReason::UpstreamUnreachable { .. })
        ),
        "{reasons:?}"
    );
}

#[test]
fn client_killed_mid_upload_closes_the_daemon_side() {
    let Some(peer) = peer_or_skip(NixVersion::V2_8) else {
        return;
    };
    let work = upload_dir();
    let daemon = Daemon::start(&peer, DaemonOptions::new());
    let dir = short_tempdir();
    let recorder = CliRecorder::start(dir.path(), daemon.socket_path(), None);
    let client = spawn_add(&peer, &daemon, work.path(), &recorder.socket, "big");
    wait_for("8 MiB in the capture", Duration::from_secs(60), || {
        recorder.capture_len() > 8 << 20
    });
    let daemon_workers_before = descendants(daemon.pid().unwrap()).len();
    kill_tree(client.id());
    let _ = client.wait();

    // The daemon's worker for that connection ends: the upstream side was closed.
    wait_for(
        "the daemon's worker to end",
        Duration::from_secs(30),
        || descendants(daemon.pid().unwrap()).len() < daemon_workers_before,
    );
    // The daemon and the recorder still serve.
    let output = spawn_add(&peer, &daemon, work.path(), &recorder.socket, "small")
        .wait_with_output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stopped = recorder.stop();
    assert!(
        stopped.status.success(),
        "{}",
        String::from_utf8_lossy(&stopped.stderr)
    );
    let capture = read_capture_file(dir.path().join("capture.nixcap")).unwrap();
    assert!(capture.damage.is_none());
    let (cut, uploaded) = largest_upload(&capture);
    let closed = capture.connection(cut).unwrap().closed.clone().unwrap();
    eprintln!(
        "client SIGKILL: {} B uploaded before the kill, recorded close {:?}",
        uploaded.len(),
        closed.reason
    );
    assert!(uploaded.len() < LARGE);
    assert_eq!(closed.client_to_server.bytes, uploaded.len() as u64);
    assert!(capture.connections.iter().all(|c| c.closed.is_some()));
}

#[test]
fn capture_that_cannot_grow_breaks_neither_the_client_nor_its_output() {
    const LIMIT: u64 = 256 << 10;
    let Some(peer) = peer_or_skip(NixVersion::V2_8) else {
        return;
    };
    let work = short_tempdir();
    fs::write(
        work.path().join("f"),
        pseudo_random_bytes(4 << 20, 0x66_7369_7a65),
    )
    .unwrap();

    // Directly, for the expected output.
    let direct_daemon = Daemon::start(&peer, DaemonOptions::new());
    let direct = peer
        .command("nix-store")
        .args(["--add", "f"])
        .current_dir(work.path())
        .store(&direct_daemon)
        .stdout_ok();

    let daemon = Daemon::start(&peer, DaemonOptions::new());
    let dir = short_tempdir();
    let recorder = CliRecorder::start(dir.path(), daemon.socket_path(), Some(LIMIT));
    let output = spawn_add(&peer, &daemon, work.path(), &recorder.socket, "f")
        .wait_with_output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        direct.trim()
    );
    let stored = fs::read(daemon.host_path(direct.trim())).unwrap();
    assert_eq!(
        sha256_hex(&stored),
        sha256_hex(&fs::read(work.path().join("f")).unwrap())
    );

    let stopped = recorder.stop();
    let stderr = String::from_utf8_lossy(&stopped.stderr);
    eprintln!("capture over RLIMIT_FSIZE: recorder said:\n{stderr}");
    assert_eq!(
        stopped.status.code(),
        Some(1),
        "standalone mode exits 1 for an incomplete capture"
    );
    assert!(stderr.contains("INCOMPLETE"), "{stderr}");
    assert!(
        fs::metadata(dir.path().join("capture.nixcap"))
            .unwrap()
            .len()
            <= LIMIT
    );
}

// ---------------------------------------------------------------------------------------------
// Bad input
// ---------------------------------------------------------------------------------------------

/// The offsets where the parts of a capture start: prelude, header body, header checksum, each
/// frame's envelope and payload, and the end. Follows the format of `docs/FORMAT.md` as far as
/// the bytes allow.
fn block_boundaries(bytes: &[u8]) -> Vec<usize> {
    let u32_at = |at: usize| -> Option<usize> {
        Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?) as usize)
    };
    let mut out = vec![0, 8, 12, 16];
    let Some(header_len) = u32_at(12) else {
        return out;
    };
    out.push(16 + header_len);
    let mut pos = 16 + header_len + 4;
    out.push(pos);
    while bytes.get(pos..pos + 4) == Some(b"NXFR".as_slice()) {
        let Some(len) = u32_at(pos + 4) else { break };
        out.push(pos + 20);
        pos += 20 + len;
        out.push(pos);
    }
    out.push(bytes.len());
    out.retain(|&o| o <= bytes.len());
    out.sort_unstable();
    out.dedup();
    out
}

/// The damaged inputs, by name: truncations, bit flips, huge lengths, wrong magic, future
/// versions, and the corrupt files of `testdata/corrupt/`.
fn bad_inputs(dir: &Path) -> Vec<(String, PathBuf)> {
    let original = fs::read(testdata("captures/nix-2.8/build.nixcap")).unwrap();
    let mut inputs: Vec<(String, Vec<u8>)> = Vec::new();
    let boundaries = block_boundaries(&original);
    assert!(boundaries.len() > 8, "{boundaries:?}");
    let mut cuts: Vec<usize> = boundaries
        .iter()
        .flat_map(|&b| [b.saturating_sub(1), b, b + 1])
        .chain((0..original.len()).step_by(97))
        .filter(|&c| c < original.len())
        .collect();
    cuts.sort_unstable();
    cuts.dedup();
    for cut in cuts {
        inputs.push((format!("cut-at-{cut}"), original[..cut].to_vec()));
    }
    for i in 0..32 {
        let at = i * original.len() / 32 + 3;
        let mut flipped = original.clone();
        flipped[at] ^= 1 << (i % 8);
        inputs.push((format!("bitflip-{at}-{}", i % 8), flipped));
    }
    let header_len = u32::from_le_bytes(original[12..16].try_into().unwrap()) as usize;
    let frame = 16 + header_len + 4;
    for (name, at, value) in [
        ("huge-header-len", 12, u32::MAX),
        ("header-len-1mib-plus-1", 12, (1 << 20) + 1),
        ("huge-compressed-len", frame + 4, u32::MAX),
        ("huge-uncompressed-len", frame + 8, u32::MAX),
        ("compressed-len-just-over-limit", frame + 4, 68_157_441),
    ] {
        for reseal in [false, true] {
            let mut bytes = original.clone();
            bytes[at..at + 4].copy_from_slice(&value.to_le_bytes());
            if reseal {
                nixcap_capture::fuzzing::reseal(&mut bytes);
            }
            inputs.push((
                format!("{name}{}", if reseal { "-resealed" } else { "" }),
                bytes,
            ));
        }
    }
    let mut magic = original.clone();
    magic[..8].copy_from_slice(b"NOTACAPT");
    inputs.push(("wrong-magic".into(), magic));
    let mut major = original.clone();
    major[8..10].copy_from_slice(&2u16.to_le_bytes());
    inputs.push(("future-major".into(), major));
    let mut minor = original.clone();
    minor[10..12].copy_from_slice(&99u16.to_le_bytes());
    inputs.push(("future-minor".into(), minor));
    inputs.push(("empty".into(), Vec::new()));
    inputs.push(("zeros-4k".into(), vec![0; 4096]));

    let mut paths: Vec<(String, PathBuf)> = inputs
        .into_iter()
        .map(|(name, bytes)| {
            let path = dir.join(format!("{name}.nixcap"));
            fs::write(&path, bytes).unwrap();
            (name, path)
        })
        .collect();
    for entry in fs::read_dir(testdata("corrupt")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "nixcap") {
            let name = format!("corrupt/{}", path.file_name().unwrap().to_string_lossy());
            paths.push((name, path));
        }
    }
    let a_dir = dir.join("a-directory");
    fs::create_dir(&a_dir).unwrap();
    paths.push(("a directory".into(), a_dir));
    paths.push(("/dev/null".into(), PathBuf::from("/dev/null")));
    paths.push(("missing".into(), dir.join("no-such-file.nixcap")));
    paths
}

/// A command that reads a capture, and the exit statuses its `--help` documents.
struct Reader {
    name: &'static str,
    allowed: &'static [i32],
}

const READERS: &[Reader] = &[
    Reader {
        name: "show",
        allowed: &[0, 1, 2],
    },
    Reader {
        name: "info",
        allowed: &[0, 2],
    },
    Reader {
        name: "verify",
        allowed: &[0, 1, 2],
    },
    Reader {
        name: "diff",
        allowed: &[0, 1, 2],
    },
    // Wrapper mode with `true`: the command's status (0), or 2 when the replay cannot run.
    Reader {
        name: "replay",
        allowed: &[0, 2],
    },
    Reader {
        name: "redact",
        allowed: &[0, 2],
    },
    Reader {
        name: "export",
        allowed: &[0, 2],
    },
    Reader {
        name: "export-trace",
        allowed: &[0, 2],
    },
    Reader {
        name: "log",
        allowed: &[0, 1, 2],
    },
];

/// The command words of a reader: its name, or `export --format chrome-trace` for
/// `export-trace`.
fn subcommand(name: &str) -> Vec<&str> {
    match name {
        "export-trace" => vec!["export", "--format", "chrome-trace"],
        other => vec![other],
    }
}

fn run_reader(reader: &Reader, input: &Path, out_dir: &Path, tag: usize) -> Output {
    let mut command = Command::new("prlimit");
    command
        .arg(format!("--as={MEMORY_LIMIT}"))
        .arg("--")
        .arg(NIXCAP)
        .args(subcommand(reader.name));
    match reader.name {
        "show" | "info" | "verify" | "log" => {
            command.arg(input);
        }
        "diff" => {
            command
                .arg(input)
                .arg(testdata("captures/nix-2.8/build.nixcap"));
        }
        "replay" => {
            command.arg(input).arg("--").arg("true");
        }
        "redact" | "export" | "export-trace" => {
            command
                .arg(input)
                .arg("-o")
                .arg(out_dir.join(format!("out-{}-{tag}", reader.name)));
        }
        other => unreachable!("{other}"),
    }
    command
        .env("TMPDIR", out_dir)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn every_capture_reader_survives_bad_input() {
    let dir = short_tempdir();
    let inputs = bad_inputs(dir.path());
    let out_dir = dir.path().join("out");
    fs::create_dir(&out_dir).unwrap();
    let jobs: Vec<(usize, usize)> = (0..READERS.len())
        .flat_map(|r| (0..inputs.len()).map(move |i| (r, i)))
        .collect();
    let jobs = Arc::new(Mutex::new(jobs));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let statuses = Arc::new(Mutex::new(BTreeMap::<(&str, i32), usize>::new()));
    let inputs = Arc::new(inputs);
    let started = Instant::now();
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let (jobs, failures, statuses, inputs) = (
                Arc::clone(&jobs),
                Arc::clone(&failures),
                Arc::clone(&statuses),
                Arc::clone(&inputs),
            );
            let out_dir = out_dir.clone();
            std::thread::spawn(move || loop {
                let Some((r, i)) = jobs.lock().unwrap().pop() else {
                    break;
                };
                let reader = &READERS[r];
                let (name, path) = &inputs[i];
                let output = run_reader(reader, path, &out_dir, r * 10_000 + i);
                let stderr = String::from_utf8_lossy(&output.stderr);
                let code = output.status.code();
                let mut problems = Vec::new();
                match code {
                    None => problems.push(format!("killed by {:?}", output.status)),
                    Some(c) if !reader.allowed.contains(&c) => {
                        problems.push(format!("undocumented exit status {c}"));
                    }
                    _ => {}
                }
                if stderr.contains("panicked") {
                    problems.push("panicked".to_owned());
                }
                if code == Some(2) {
                    // The message (on stderr, or on stdout for `verify`'s verdict) names the
                    // input by its file name.
                    let said = format!("{stderr}{}", String::from_utf8_lossy(&output.stdout));
                    let file = path.file_name().map(|f| f.to_string_lossy().into_owned());
                    let named =
                        file.is_some_and(|f| said.contains(&f)) || said.contains("/dev/null");
                    if !named {
                        problems.push("the error does not name the file".to_owned());
                    }
                }
                if !problems.is_empty() {
                    failures.lock().unwrap().push(format!(
                        "nixcap {} on {name}: {}\nstderr: {stderr}",
                        reader.name,
                        problems.join(", ")
                    ));
                }
                *statuses
                    .lock()
                    .unwrap()
                    .entry((reader.name, code.unwrap_or(-1)))
                    .or_default() += 1;
            })
        })
        .collect();
    for worker in workers {
        worker.join().unwrap();
    }
    eprintln!(
        "bad input: {} inputs × {} commands in {:.1?}; exit statuses {:?}",
        inputs.len(),
        READERS.len(),
        started.elapsed(),
        statuses.lock().unwrap()
    );
    let failures = failures.lock().unwrap();
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn every_capture_reader_documents_its_exit_statuses() {
    let mut undocumented = Vec::new();
    for reader in READERS {
        let output = Command::new(NIXCAP)
            .args(subcommand(reader.name))
            .arg("--help")
            .output()
            .unwrap();
        assert!(output.status.success());
        if !String::from_utf8_lossy(&output.stdout).contains("Exit status") {
            undocumented.push(reader.name);
        }
    }
    assert!(
        undocumented.is_empty(),
        "`--help` says nothing of exit statuses: {undocumented:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Trust
// ---------------------------------------------------------------------------------------------

/// Every path below `dir`, relative to it.
fn tree(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut queue = vec![dir.to_path_buf()];
    while let Some(d) = queue.pop() {
        for entry in fs::read_dir(&d).unwrap().flatten() {
            let path = entry.path();
            out.push(path.strip_prefix(dir).unwrap().to_path_buf());
            if entry.file_type().unwrap().is_dir() {
                queue.push(path);
            }
        }
    }
    out.sort();
    out
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn recorder_creates_only_the_capture_and_its_socket_with_mode_0600() {
    let dir = short_tempdir();
    let echo = EchoDaemon::start(dir.path());
    let (tmp, cwd, out) = (
        dir.path().join("tmp"),
        dir.path().join("cwd"),
        dir.path().join("out"),
    );
    for d in [&tmp, &cwd, &out] {
        fs::create_dir(d).unwrap();
    }
    // Standalone mode.
    let socket = out.join("rec.sock");
    let capture = out.join("cap.nixcap");
    let mut child = Command::new(NIXCAP)
        .args(["record", "-w"])
        .arg(&capture)
        .arg("--listen")
        .arg(&socket)
        .arg("--upstream")
        .arg(&echo.socket)
        .env("TMPDIR", &tmp)
        .current_dir(&cwd)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("the recorder's socket", Duration::from_secs(20), || {
        socket.exists()
    });
    assert_eq!(mode(&socket), 0o600, "socket mode");
    assert_eq!(mode(&capture), 0o600, "capture mode");
    assert_eq!(echo_through(&socket, b"hello"), sha256_hex(b"hello"));
    send_signal(child.id(), "INT");
    assert!(child.wait().unwrap().success());
    assert_eq!(
        tree(&out),
        vec![PathBuf::from("cap.nixcap")],
        "socket left behind or extra files"
    );

    // Wrapper mode: the private socket lives in TMPDIR while the command runs, and goes.
    let capture2 = out.join("cap2.nixcap");
    let probe = r#"s="$NIX_DAEMON_SOCKET_PATH"; stat -c %a "$s"; stat -c %a "$(dirname "$s")""#;
    let output = Command::new(NIXCAP)
        .args(["record", "-w"])
        .arg(&capture2)
        .arg("--upstream")
        .arg(&echo.socket)
        .args(["--", "sh", "-c", probe])
        .env("TMPDIR", &tmp)
        .current_dir(&cwd)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let modes = String::from_utf8_lossy(&output.stdout).into_owned();
    assert_eq!(
        modes.split_whitespace().collect::<Vec<_>>(),
        ["600", "700"],
        "socket and its dir"
    );
    assert!(tree(&tmp).is_empty(), "left in TMPDIR: {:?}", tree(&tmp));
    assert!(
        tree(&cwd).is_empty(),
        "left in the working directory: {:?}",
        tree(&cwd)
    );
    assert_eq!(
        tree(&out),
        vec![PathBuf::from("cap.nixcap"), PathBuf::from("cap2.nixcap")]
    );
}

#[test]
fn replayer_creates_only_what_it_is_told_to_with_mode_0600() {
    let dir = short_tempdir();
    let (tmp, cwd, out) = (
        dir.path().join("tmp"),
        dir.path().join("cwd"),
        dir.path().join("out"),
    );
    for d in [&tmp, &cwd, &out] {
        fs::create_dir(d).unwrap();
    }
    let fixture = testdata("captures/nix-2.8/build.nixcap");

    // Wrapper mode: a private socket and store root in TMPDIR, both gone afterwards.
    let probe = r#"s="$NIX_DAEMON_SOCKET_PATH"; stat -c %a "$s"; stat -c %a "$(dirname "$s")"; echo "$NIX_REMOTE""#;
    let output = Command::new(NIXCAP)
        .arg("replay")
        .arg(&fixture)
        .args(["--", "sh", "-c", probe])
        .env("TMPDIR", &tmp)
        .current_dir(&cwd)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        &lines[..2],
        ["600", "700"],
        "socket and its directory: {stdout}"
    );
    assert!(lines[2].starts_with("unix://"), "{stdout}");
    assert!(tree(&tmp).is_empty(), "left in TMPDIR: {:?}", tree(&tmp));
    assert!(
        tree(&cwd).is_empty(),
        "left in the working directory: {:?}",
        tree(&cwd)
    );

    // Standalone mode with --listen and a report: exactly those, the socket 0600 and removed.
    let socket = out.join("replay.sock");
    let report = out.join("report.json");
    let mut child = Command::new(NIXCAP)
        .arg("replay")
        .arg(&fixture)
        .arg("--listen")
        .arg(&socket)
        .arg("--report")
        .arg(&report)
        .env("TMPDIR", &tmp)
        .current_dir(&cwd)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("the replayer's socket", Duration::from_secs(20), || {
        socket.exists()
    });
    assert_eq!(mode(&socket), 0o600);
    send_signal(child.id(), "INT");
    let status = child.wait().unwrap();
    assert!(status.code().is_some(), "{status}");
    assert!(tree(&tmp).is_empty(), "left in TMPDIR: {:?}", tree(&tmp));
    assert!(
        tree(&cwd).is_empty(),
        "left in the working directory: {:?}",
        tree(&cwd)
    );
    assert_eq!(tree(&out), vec![PathBuf::from("report.json")]);
}

#[test]
fn replayer_does_not_keep_a_descriptor_per_finished_connection() {
    const CONNECTIONS: usize = 200;
    let dir = short_tempdir();
    let socket = dir.path().join("replay.sock");
    let mut child = Command::new(NIXCAP)
        .arg("replay")
        .arg(testdata("captures/nix-2.8/build.nixcap"))
        .arg("--listen")
        .arg(&socket)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for("the replayer's socket", Duration::from_secs(20), || {
        socket.exists()
    });
    // One connection first, so that lazily opened descriptors are in the baseline.
    drop(UnixStream::connect(&socket).unwrap());
    std::thread::sleep(Duration::from_millis(200));
    let baseline = open_fds(child.id());
    let maps_before = memory_maps(child.id());
    for _ in 0..CONNECTIONS {
        drop(UnixStream::connect(&socket).unwrap());
    }
    // Give the accept loop time to take every connection off the backlog before counting.
    std::thread::sleep(Duration::from_secs(1));
    let after = settled_fds(child.id(), baseline);
    let maps_after = memory_maps(child.id());
    send_signal(child.id(), "INT");
    child.wait().unwrap();
    eprintln!(
        "replayer after {CONNECTIONS} short connections: fds {baseline} -> {after}, \
         memory mappings {maps_before} -> {maps_after}"
    );
    // A finished connection thread that is never joined keeps its stack (and guard page)
    // mapped; the fuzzer ran a replayer out of mappings that way after about 32 000
    // connections.
    assert!(
        maps_after < maps_before + CONNECTIONS,
        "the replayer keeps a thread stack per finished connection: {maps_before} mappings \
         before, {maps_after} after"
    );
    assert!(
        after <= baseline,
        "the replayer keeps a descriptor per finished connection: {baseline} before, {after} after"
    );
}
