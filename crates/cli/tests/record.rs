//! End-to-end tests of `nixcap record`: the real binary, a scripted upstream
//! daemon (or a real Nix daemon), signals, exit statuses and capture files.

// Test code may unwrap; clippy only knows that inside `#[test]` functions,
// not in the helpers they share.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use nixcap_capture::{read_capture_file, Direction};

const NIXCAP: &str = env!("CARGO_BIN_EXE_nixcap");

/// A scripted daemon: for each connection, reads to end of stream, then
/// sends the bytes back reversed and closes.
struct Reverser {
    path: PathBuf,
}

impl Reverser {
    fn start(dir: &Path) -> Self {
        let path = dir.join("upstream.sock");
        let listener = UnixListener::bind(&path).unwrap();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                std::thread::spawn(move || {
                    let mut data = Vec::new();
                    if stream.read_to_end(&mut data).is_ok() {
                        data.reverse();
                        let _ = stream.write_all(&data);
                    }
                });
            }
        });
        Self { path }
    }
}

fn pseudo_random(len: usize, mut seed: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as u8
        })
        .collect()
}

/// Sends `data` through `socket`, half-closes, and returns the reply.
fn round_trip(socket: &Path, data: &[u8]) -> Vec<u8> {
    let mut stream = UnixStream::connect(socket).unwrap();
    let mut writer = stream.try_clone().unwrap();
    let data = data.to_vec();
    let sender = std::thread::spawn(move || {
        writer.write_all(&data).unwrap();
        writer.shutdown(std::net::Shutdown::Write).unwrap();
    });
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).unwrap();
    sender.join().unwrap();
    reply
}

fn wait_for_socket(path: &Path, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !path.exists() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("nixcap record exited early with {status}");
        }
        assert!(Instant::now() < deadline, "the socket never appeared");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn send_signal(child: &Child, signal: &str) {
    let status = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

fn wait_output(child: Child) -> Output {
    let output = child.wait_with_output().unwrap();
    eprintln!("{}", String::from_utf8_lossy(&output.stderr));
    output
}

#[test]
fn sigint_finishes_a_valid_capture_and_prints_a_summary() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = Reverser::start(dir.path());
    let listen = dir.path().join("rec.sock");
    let capture_path = dir.path().join("out.nixcap");
    let mut child = Command::new(NIXCAP)
        .args(["record", "-w"])
        .arg(&capture_path)
        .arg("--listen")
        .arg(&listen)
        .arg("--upstream")
        .arg(format!("unix://{}", upstream.path.display()))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_socket(&listen, &mut child);
    let meta = std::fs::symlink_metadata(&listen).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o7777, 0o600);

    let data = pseudo_random(1 << 20, 42);
    let reply = round_trip(&listen, &data);
    let mut reversed = data.clone();
    reversed.reverse();
    assert_eq!(reply, reversed);

    send_signal(&child, "-INT");
    let output = wait_output(child);
    assert!(output.status.success(), "{}", output.status);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!(
            "1 connection, {} bytes client to daemon, {} bytes daemon to client",
            data.len(),
            data.len()
        )),
        "{stderr}"
    );
    assert!(!listen.exists(), "the socket is removed");
    let mode = std::fs::metadata(&capture_path)
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);

    let capture = read_capture_file(&capture_path).unwrap();
    assert!(capture.is_intact(), "{:?}", capture.damage);
    assert!(capture.footer.is_some());
    assert_eq!(capture.connections.len(), 1);
    assert_eq!(
        capture.connections[0].stream(Direction::ClientToServer),
        data
    );
    assert_eq!(
        capture.connections[0].stream(Direction::ServerToClient),
        reversed
    );
    let metadata = &capture.header.metadata;
    assert_eq!(metadata["listen"], listen.display().to_string());
    assert_eq!(
        metadata["upstream"],
        format!("unix://{}", upstream.path.display())
    );
    assert!(metadata["argv"].contains("record"), "{}", metadata["argv"]);
}

#[test]
fn wrapper_runs_the_command_against_a_private_socket_and_exits_with_its_status() {
    let dir = tempfile::tempdir().unwrap();
    let capture_path = dir.path().join("out.nixcap");
    let seen = dir.path().join("seen");
    let output = Command::new(NIXCAP)
        .args(["record", "-w"])
        .arg(&capture_path)
        .args([
            "--upstream",
            "unix:///nonexistent/daemon.sock?root=/r",
            "--",
        ])
        .args([
            "sh",
            "-c",
            r#"printf '%s\n%s\n' "$NIX_REMOTE" "$NIX_DAEMON_SOCKET_PATH" > "$1"; exit 7"#,
            "sh",
        ])
        .arg(&seen)
        .env_remove("NIX_REMOTE")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(7), "{output:?}");
    let seen = std::fs::read_to_string(&seen).unwrap();
    let lines: Vec<&str> = seen.lines().collect();
    let socket = Path::new(lines[1]);
    assert_eq!(lines[0], format!("unix://{}?root=/r", socket.display()));
    assert!(
        !socket.parent().unwrap().exists(),
        "the private directory is removed"
    );
    let capture = read_capture_file(&capture_path).unwrap();
    assert!(capture.is_intact(), "{:?}", capture.damage);
    assert!(capture.connections.is_empty());
}

#[test]
fn wrapper_takes_the_daemon_and_its_query_from_the_users_nix_remote() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = Reverser::start(dir.path());
    let capture_path = dir.path().join("out.nixcap");
    let seen = dir.path().join("seen");
    let output = Command::new(NIXCAP)
        .args(["record", "-w"])
        .arg(&capture_path)
        .args([
            "--",
            "sh",
            "-c",
            r#"printf '%s' "$NIX_REMOTE" > "$1""#,
            "sh",
        ])
        .arg(&seen)
        .env(
            "NIX_REMOTE",
            format!("unix://{}?root=/q", upstream.path.display()),
        )
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    assert!(std::fs::read_to_string(&seen)
        .unwrap()
        .ends_with("?root=/q"));
    let capture = read_capture_file(&capture_path).unwrap();
    assert_eq!(
        capture.header.metadata["upstream"],
        format!("unix://{}", upstream.path.display())
    );
}

#[test]
fn wrapper_reports_a_signal_killed_command_as_128_plus_the_signal() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(NIXCAP)
        .args(["record", "-w"])
        .arg(dir.path().join("out.nixcap"))
        .args([
            "--upstream",
            "/nonexistent.sock",
            "--",
            "sh",
            "-c",
            "kill -TERM $$",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(128 + 15), "{output:?}");
}

#[test]
fn an_existing_capture_is_kept_unless_forced() {
    let dir = tempfile::tempdir().unwrap();
    let capture_path = dir.path().join("out.nixcap");
    std::fs::write(&capture_path, b"precious").unwrap();
    let output = Command::new(NIXCAP)
        .args(["record", "-w"])
        .arg(&capture_path)
        .args(["--upstream", "/nonexistent.sock", "--", "true"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--force"));
    assert_eq!(std::fs::read(&capture_path).unwrap(), b"precious");

    let output = Command::new(NIXCAP)
        .args(["record", "--force", "-w"])
        .arg(&capture_path)
        .args(["--upstream", "/nonexistent.sock", "--", "true"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    assert!(read_capture_file(&capture_path).unwrap().is_intact());
}

#[test]
fn standalone_mode_needs_a_listen_path() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(NIXCAP)
        .args(["record", "-w"])
        .arg(dir.path().join("out.nixcap"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--listen"));
    assert!(!dir.path().join("out.nixcap").exists());
}

#[test]
fn file_size_limit_breaks_the_capture_loudly_but_not_the_traffic() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = Reverser::start(dir.path());
    let listen = dir.path().join("rec.sock");
    let capture_path = dir.path().join("out.nixcap");
    // 16 blocks of 512 bytes: the header fits, the traffic does not.
    let mut child = Command::new("sh")
        .args([
            "-c",
            r#"ulimit -f 16 && exec "$@""#,
            "sh",
            NIXCAP,
            "record",
            "-w",
        ])
        .arg(&capture_path)
        .arg("--listen")
        .arg(&listen)
        .arg("--upstream")
        .arg(&upstream.path)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_socket(&listen, &mut child);
    for seed in 1..=3 {
        let data = pseudo_random(1 << 20, seed);
        let reply = round_trip(&listen, &data);
        assert_eq!(reply.len(), data.len());
        assert!(reply.iter().rev().eq(data.iter()));
    }
    send_signal(&child, "-INT");
    let output = wait_output(child);
    // The recorder was not killed by SIGXFSZ; it reports an incomplete capture.
    assert_eq!(output.status.code(), Some(1), "{}", output.status);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("ERROR"), "{stderr}");
    assert!(stderr.contains("INCOMPLETE"), "{stderr}");
    assert!(stderr.contains("3 connections"), "{stderr}");
    assert!(std::fs::metadata(&capture_path).unwrap().len() <= 16 * 512);
    let capture = read_capture_file(&capture_path).unwrap();
    assert!(capture.footer.is_none());
    assert!(capture.damage.is_some());
}

#[test]
fn wrapper_records_a_real_nix_2_8_client() {
    use nixcap_test_support::{peer_or_skip, Daemon, DaemonOptions, NixVersion};
    let Some(peer) = peer_or_skip(NixVersion::V2_8) else {
        return;
    };
    let daemon = Daemon::start(&peer, DaemonOptions::new());
    let work = tempfile::tempdir().unwrap();
    std::fs::write(
        work.path().join("input.txt"),
        "recorded through the wrapper\n",
    )
    .unwrap();
    let capture_path = work.path().join("out.nixcap");
    // The wrapper finds the daemon and its `root` in the client's NIX_REMOTE.
    let wrapped = peer
        .command(NIXCAP)
        .args(["record", "-w"])
        .arg(&capture_path)
        .args(["--", "nix-store", "--add", "input.txt"])
        .store(&daemon)
        .current_dir(work.path())
        .stdout_ok();
    assert!(wrapped.starts_with("/nix/store/"), "{wrapped}");
    assert!(daemon.host_path(&wrapped).exists());
    let queried = peer
        .command("nix-store")
        .args(["-q", "--hash", &wrapped])
        .store(&daemon)
        .stdout_ok();
    assert!(queried.starts_with("sha256:"));
    let direct = peer
        .command("nix-store")
        .args(["--add", "input.txt"])
        .store(&daemon)
        .current_dir(work.path())
        .stdout_ok();
    assert_eq!(direct, wrapped);

    let capture = read_capture_file(&capture_path).unwrap();
    assert!(capture.is_intact(), "{:?}", capture.damage);
    assert!(capture.footer.is_some());
    assert!(!capture.connections.is_empty());
    let up: Vec<u8> = capture
        .connections
        .iter()
        .flat_map(|c| c.stream(Direction::ClientToServer))
        .collect();
    let needle = b"recorded through the wrapper\n";
    assert!(up.windows(needle.len()).any(|w| w == needle));
    assert_eq!(
        capture.header.metadata["upstream"],
        format!("unix://{}", daemon.socket_path().display())
    );
}

#[test]
fn a_listen_path_in_use_fails_without_leaving_a_capture_behind() {
    let dir = tempfile::tempdir().unwrap();
    let busy = dir.path().join("busy");
    std::fs::write(&busy, b"not a socket").unwrap();
    let capture_path = dir.path().join("out.nixcap");
    let output = Command::new(NIXCAP)
        .args(["record", "-w"])
        .arg(&capture_path)
        .arg("--listen")
        .arg(&busy)
        .args(["--upstream", "/nonexistent.sock"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stderr).contains("already exists"));
    assert!(!capture_path.exists());
    assert_eq!(std::fs::read(&busy).unwrap(), b"not a socket");
}

#[test]
fn sigterm_is_passed_on_to_the_command_whose_status_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let ready = dir.path().join("ready");
    let mut child = Command::new(NIXCAP)
        .args(["record", "-w"])
        .arg(dir.path().join("out.nixcap"))
        .args(["--upstream", "/nonexistent.sock", "--", "sh", "-c"])
        .arg(r#"trap 'exit 3' TERM; touch "$1"; while :; do sleep 0.05; done"#)
        .arg("sh")
        .arg(&ready)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ready.exists() {
        assert!(Instant::now() < deadline, "the command never started");
        std::thread::sleep(Duration::from_millis(10));
    }
    send_signal(&child, "-TERM");
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(3), "{status}");
}

#[test]
fn a_killed_recorder_leaves_a_readable_capture() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = Reverser::start(dir.path());
    let listen = dir.path().join("rec.sock");
    let capture_path = dir.path().join("out.nixcap");
    let mut child = Command::new(NIXCAP)
        .args(["record", "-w"])
        .arg(&capture_path)
        .arg("--listen")
        .arg(&listen)
        .arg("--upstream")
        .arg(&upstream.path)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_socket(&listen, &mut child);
    let data = pseudo_random(100_000, 9);
    round_trip(&listen, &data);
    // Frames reach the file within 100 ms.
    std::thread::sleep(Duration::from_millis(400));
    child.kill().unwrap();
    child.wait().unwrap();
    let capture = read_capture_file(&capture_path).unwrap();
    assert!(capture.footer.is_none());
    assert_eq!(capture.connections.len(), 1);
    assert_eq!(
        capture.connections[0].stream(Direction::ClientToServer),
        data
    );
    assert_eq!(
        capture.connections[0]
            .stream(Direction::ServerToClient)
            .len(),
        data.len()
    );
}

#[test]
fn allowing_other_uids_makes_the_socket_reachable_for_them() {
    let dir = tempfile::tempdir().unwrap();
    let listen = dir.path().join("rec.sock");
    let mut child = Command::new(NIXCAP)
        .args(["record", "-w"])
        .arg(dir.path().join("out.nixcap"))
        .arg("--listen")
        .arg(&listen)
        .args(["--upstream", "/nonexistent.sock", "--allow-uid", "65534"])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_socket(&listen, &mut child);
    let mode = std::fs::symlink_metadata(&listen)
        .unwrap()
        .permissions()
        .mode()
        & 0o7777;
    send_signal(&child, "-TERM");
    assert!(child.wait().unwrap().success());
    assert_eq!(mode, 0o666);
}
