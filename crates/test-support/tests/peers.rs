//! Runs real Nix daemons and clients of every supported version through the harness.
//!
//! Each test skips (printing why) when a Nix version it needs is not installed, and fails
//! instead when `NIXCAP_REQUIRE_NIX=1` is set. Timings are printed to stderr; run with
//! `--nocapture` to see them.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers may unwrap; clippy only exempts #[test] functions"
)]

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nixcap_test_support::{
    assert_host_nix_dir_empty, nix_required, peer_or_skip, wait_until_listening, Daemon,
    DaemonOptions, NixVersion, Peer,
};

/// The content of the file every scenario adds to the store.
const FILE_CONTENT: &[u8] = b"nixcap: a file with fixed content\n";
/// A derivation that builds with nothing but the daemon's `/bin/sh`.
const TRIVIAL_DERIVATION: &str = r#"derivation {
  name = "x";
  system = builtins.currentSystem;
  builder = "/bin/sh";
  args = [ "-c" "echo hi > $out" ];
}
"#;

/// Runs `body`, prints how long it took, and returns its result.
fn timed<T>(label: &str, body: impl FnOnce() -> T) -> T {
    let started = Instant::now();
    let result = body();
    eprintln!(
        "timing: {label}: {:.1} ms",
        started.elapsed().as_secs_f64() * 1000.0
    );
    result
}

fn start_daemon(peer: &Peer, options: DaemonOptions) -> Daemon {
    let daemon = Daemon::start(peer, options);
    eprintln!(
        "timing: start nix-daemon {}: {:.1} ms",
        peer.nix_version(),
        daemon.startup_time().as_secs_f64() * 1000.0
    );
    daemon
}

/// Adds a fixed file twice and checks the path, the stored bytes and the NAR hash.
/// Returns the store path.
fn add_and_query(client: &Peer, daemon: &Daemon, label: &str) -> String {
    let work = tempfile::tempdir().unwrap();
    fs::write(work.path().join("hello.txt"), FILE_CONTENT).unwrap();

    let path = timed(&format!("{label}: nix-store --add"), || {
        client
            .command("nix-store")
            .args(["--add", "hello.txt"])
            .current_dir(work.path())
            .store(daemon)
            .stdout_ok()
    });
    assert!(
        path.starts_with("/nix/store/") && path.ends_with("-hello.txt"),
        "{path}"
    );
    assert_eq!(fs::read(daemon.host_path(&path)).unwrap(), FILE_CONTENT);
    let again = client
        .command("nix-store")
        .args(["--add", "hello.txt"])
        .current_dir(work.path())
        .store(daemon)
        .stdout_ok();
    assert_eq!(again, path, "adding the same file twice must give one path");

    let hash = timed(&format!("{label}: nix-store -q --hash"), || {
        client
            .command("nix-store")
            .args(["-q", "--hash", &path])
            .store(daemon)
            .stdout_ok()
    });
    // `nix-hash` computes the NAR hash locally, without any store.
    let local = client
        .command("nix-hash")
        .args(["--type", "sha256", "--base32", "hello.txt"])
        .current_dir(work.path())
        .stdout_ok();
    assert_eq!(hash, format!("sha256:{local}"));
    path
}

/// Asks the daemon for its version with `nix store ping` (2.8) or `nix store info` (2.26+),
/// which print to stderr.
fn store_info(client: &Peer, daemon: &Daemon, label: &str) -> String {
    let subcommand = if client.at_least(2, 26) {
        "info"
    } else {
        "ping"
    };
    let output = timed(&format!("{label}: nix store {subcommand}"), || {
        client
            .command("nix")
            .args(["store", subcommand])
            .store(daemon)
            .output_ok()
    });
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        stderr.contains(&format!("Version: {}", daemon.peer().nix_version())),
        "{stderr}"
    );
    stderr
}

/// Builds the trivial derivation with `nix-build` and checks the output and `result` link.
fn build(client: &Peer, daemon: &Daemon, label: &str) {
    let work = tempfile::tempdir().unwrap();
    fs::write(work.path().join("x.nix"), TRIVIAL_DERIVATION).unwrap();
    let out = timed(&format!("{label}: nix-build"), || {
        client
            .command("nix-build")
            .arg("x.nix")
            .current_dir(work.path())
            .store(daemon)
            .stdout_ok()
    });
    assert!(
        out.starts_with("/nix/store/") && out.ends_with("-x"),
        "{out}"
    );
    assert_eq!(fs::read(daemon.host_path(&out)).unwrap(), b"hi\n");
    let link = fs::read_link(work.path().join("result")).unwrap();
    assert_eq!(link, Path::new(&out));
}

/// Runs every scenario with a client of `client`'s version against a daemon of `server`'s.
fn scenarios(client: &Peer, server: &Peer) {
    let label = format!(
        "client {} -> daemon {}",
        client.nix_version(),
        server.nix_version()
    );
    let daemon = start_daemon(server, DaemonOptions::new());
    timed(&format!("{label}: all scenarios"), || {
        add_and_query(client, &daemon, &label);
        store_info(client, &daemon, &label);
        build(client, &daemon, &label);
    });
    let log = daemon.log();
    assert!(log.contains("(trusted)"), "{log}");
    drop(daemon);
    assert_host_nix_dir_empty();
}

fn same_version(version: NixVersion) {
    let Some(peer) = peer_or_skip(version) else {
        return;
    };
    scenarios(&peer, &peer);
}

#[test]
fn nix_2_8_client_and_daemon() {
    same_version(NixVersion::V2_8);
}

#[test]
fn nix_2_26_client_and_daemon() {
    same_version(NixVersion::V2_26);
}

#[test]
fn nix_2_34_client_and_daemon() {
    same_version(NixVersion::V2_34);
}

#[test]
fn nix_2_8_client_with_2_34_daemon() {
    let (Some(client), Some(server)) = (
        peer_or_skip(NixVersion::V2_8),
        peer_or_skip(NixVersion::V2_34),
    ) else {
        return;
    };
    scenarios(&client, &server);
}

#[test]
fn the_same_fixed_file_gets_the_same_path_in_every_version() {
    let mut paths = Vec::new();
    for version in NixVersion::ALL {
        let Some(peer) = peer_or_skip(version) else {
            return;
        };
        let daemon = start_daemon(&peer, DaemonOptions::new());
        let path = add_and_query(
            &peer,
            &daemon,
            &format!("path check {}", peer.nix_version()),
        );
        paths.push(path);
    }
    assert!(paths.windows(2).all(|pair| pair[0] == pair[1]), "{paths:?}");
}

#[test]
fn a_chained_daemon_forwards_to_its_upstream() {
    let (Some(client), Some(proxy_peer), Some(upstream_peer)) = (
        peer_or_skip(NixVersion::V2_26),
        peer_or_skip(NixVersion::V2_34),
        peer_or_skip(NixVersion::V2_8),
    ) else {
        return;
    };
    let upstream = start_daemon(&upstream_peer, DaemonOptions::new());
    let proxy = start_daemon(&proxy_peer, DaemonOptions::new().upstream(&upstream));
    assert_eq!(proxy.store_root(), upstream.store_root());
    let label = format!(
        "client {} -> proxy {} -> daemon {}",
        client.nix_version(),
        proxy_peer.nix_version(),
        upstream_peer.nix_version()
    );
    let path = add_and_query(&client, &proxy, &label);
    // The path was stored by the upstream, and the proxy reports its own version.
    assert!(upstream.host_path(&path).is_file());
    assert!(!proxy.state_dir().join(&path[1..]).exists());
    store_info(&client, &proxy, &label);
    build(&client, &proxy, &label);
    drop(proxy);
    drop(upstream);
    assert_host_nix_dir_empty();
}

#[test]
fn an_unprivileged_client_is_not_trusted() {
    let Some(peer) = peer_or_skip(NixVersion::V2_34) else {
        return;
    };
    let daemon = start_daemon(&peer, DaemonOptions::new());
    let output = timed("untrusted client: nix store info", || {
        peer.command("nix")
            .args(["store", "info"])
            .store(&daemon)
            .untrusted()
            .output_ok()
    });
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("Trusted: 0"), "{stderr}");
    let log = daemon.log();
    assert!(log.contains("user nobody"), "{log}");
    assert!(!log.contains("user nobody (trusted)"), "{log}");
}

#[test]
fn stopping_a_daemon_ends_it_and_removes_its_state() {
    let Some(peer) = peer_or_skip(NixVersion::V2_26) else {
        return;
    };
    let mut daemon = start_daemon(&peer, DaemonOptions::new());
    let pid = daemon.pid().unwrap();
    let state_dir = daemon.state_dir().to_path_buf();
    assert!(daemon.socket_path().starts_with(&state_dir));
    // The daemon handles SIGTERM and exits on its own, so only its end is checked.
    timed("stop nix-daemon", || daemon.stop()).unwrap();
    assert!(!Path::new(&format!("/proc/{pid}")).exists() || is_other_process(pid));
    drop(daemon);
    assert!(!state_dir.exists());
}

/// Tells whether `pid` was reused by a process that is not a Nix daemon.
fn is_other_process(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|comm| comm.trim() != "nix-daemon")
        .unwrap_or(true)
}

#[test]
fn a_client_without_a_store_touches_no_store() {
    let Some(peer) = peer_or_skip(NixVersion::V2_34) else {
        return;
    };
    let output = peer
        .command("nix-store")
        .args([
            "-q",
            "--hash",
            "/nix/store/00000000000000000000000000000000-x",
        ])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert_host_nix_dir_empty();
}

#[test]
fn a_relay_can_sit_between_a_chroot_client_and_a_daemon() {
    let (Some(client), Some(server)) = (
        peer_or_skip(NixVersion::V2_26),
        peer_or_skip(NixVersion::V2_8),
    ) else {
        return;
    };
    let daemon = start_daemon(&server, DaemonOptions::new());
    // A relay on the host, as a recorder would be: the client only gets another socket, and
    // the harness binds that socket's directory into the client's chroot.
    let relay_dir = tempfile::Builder::new()
        .prefix("nixcap-relay-")
        .tempdir()
        .unwrap();
    let relay_socket = relay_dir.path().join("sock");
    let spawned = Command::new("socat")
        .arg(format!("UNIX-LISTEN:{},fork", relay_socket.display()))
        .arg(format!("UNIX-CONNECT:{}", daemon.socket_path().display()))
        .stdin(Stdio::null())
        .spawn();
    let mut relay = match spawned {
        Ok(relay) => relay,
        Err(err) if !nix_required() => {
            eprintln!(
                "skipping: cannot run socat ({err}); `cargo xtask nix-peers install` installs it"
            );
            return;
        }
        Err(err) => panic!("cannot run socat: {err}"),
    };
    assert!(wait_until_listening(&relay_socket, Duration::from_secs(10)));
    let label = format!(
        "client {} -> socat -> daemon {}",
        client.nix_version(),
        server.nix_version()
    );
    let work = tempfile::tempdir().unwrap();
    fs::write(work.path().join("hello.txt"), FILE_CONTENT).unwrap();
    let path = timed(&format!("{label}: nix-store --add"), || {
        client
            .command("nix-store")
            .args(["--add", "hello.txt"])
            .current_dir(work.path())
            .remote(daemon.uri_via(&relay_socket))
            .stdout_ok()
    });
    assert_eq!(fs::read(daemon.host_path(&path)).unwrap(), FILE_CONTENT);
    relay.kill().unwrap();
    relay.wait().unwrap();
}
