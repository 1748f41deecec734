//! `nixcap log` against what real Nix clients print with `--log-format internal-json`.
//!
//! For Nix 2.8, 2.26 and 2.34 (client and daemon of the same version), a build whose builder
//! writes to standard output and standard error, with tabs, escapes and non-ASCII text, runs
//! live through the recorder with `nix-build --log-format internal-json -v`. The `@nix` lines
//! the client printed on stderr, less the ones it made up itself (named in
//! [`client_generated`]), must equal `nixcap log` of the capture, line for line.
//!
//! These tests skip (printing why) when a Nix version is missing, and fail instead when
//! `NIXCAP_REQUIRE_NIX=1` is set.

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use nixcap_record::{BackgroundRecorder, Config, DaemonAddr, Options};
use nixcap_test_support::{peer_or_skip, Daemon, DaemonOptions, NixVersion, Peer};

/// A derivation whose builder logs to both of its outputs: a tab, an ANSI escape, a quote,
/// a backslash, non-ASCII text, a blank line and trailing spaces.
const LOGGING_NIX: &str = r#"derivation {
  name = "logging";
  system = builtins.currentSystem;
  builder = "/bin/sh";
  args = [ "-c" ''
    echo "first line on stdout"
    printf 'tab\there \033[1mbold\033[0m "quoted" back\\slash caf\303\251\n' >&2
    echo
    echo "trailing spaces   "
    echo done > $out
  '' ];
}
"#;

/// Whether the client printed `line` of its own accord rather than for a message from the
/// daemon. These are the only lines of the client's stderr that `nixcap log` cannot show:
///
/// - `start`, `stop` and `result` lines of the client's own activities: their ids carry the
///   client's pid in their high 32 bits (Nix numbers activities `pid << 32 | counter`), the
///   daemon's carry the daemon worker's;
/// - `msg` lines of the client's evaluator and front end at `-v`: "evaluating file …",
///   "these derivations will be built:" and the paths listed under it, which never cross
///   the socket.
fn client_generated(line: &str, client_pid: u64) -> bool {
    let Ok(value) = serde_json::from_str::<serde_json::Value>(&line["@nix ".len()..]) else {
        return false;
    };
    if value["action"] == "msg" {
        let msg = value["msg"].as_str().unwrap_or_default();
        return msg.starts_with("evaluating file ")
            || msg.starts_with("these derivations will be built:")
            || msg.starts_with("this derivation will be built:")
            || msg.starts_with("  /nix/store/");
    }
    value["id"]
        .as_u64()
        .is_some_and(|id| id >> 32 == client_pid)
}

fn nixcap_log(capture: &Path, extra: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_nixcap"))
        .arg("log")
        .args(extra)
        .arg(capture)
        .output()
        .unwrap()
}

fn check_log_against_client(peer: &Peer) {
    let work = tempfile::tempdir().unwrap();
    fs::write(work.path().join("logging.nix"), LOGGING_NIX).unwrap();
    let daemon = Daemon::start(peer, DaemonOptions::new());
    let mut config = Config::new(None, DaemonAddr::from_path(daemon.socket_path()));
    config.options = Options {
        shutdown_grace: Duration::from_secs(10),
        ..Options::default()
    };
    let recorder = BackgroundRecorder::start(config, Vec::new()).unwrap();
    let client = peer
        .command("nix-build")
        .args([
            "--log-format",
            "internal-json",
            "-v",
            "--no-out-link",
            "logging.nix",
        ])
        .current_dir(work.path())
        .remote(daemon.uri_via(recorder.socket_path()))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Chroot clients run through `unshare` and `chroot`, which exec the client in place.
    let client_pid = u64::from(client.id());
    let output = client.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "nix-build: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let report = recorder.finish().unwrap();
    assert!(report.capture_complete(), "{:?}", report.capture_problems);
    let capture = work.path().join("build.nixcap");
    fs::write(&capture, report.out.unwrap()).unwrap();

    let logged = nixcap_log(&capture, &[]);
    assert!(
        logged.status.success(),
        "nixcap log: {}\n{}",
        logged.status,
        String::from_utf8_lossy(&logged.stderr)
    );
    let logged = String::from_utf8(logged.stdout).unwrap();
    let logged: Vec<&str> = logged.lines().collect();
    let stderr = String::from_utf8(output.stderr).unwrap();
    let client_lines: Vec<&str> = stderr.lines().collect();
    assert!(
        client_lines.iter().all(|l| l.starts_with("@nix {")),
        "the client printed a line that is not internal-json:\n{stderr}"
    );
    let from_daemon: Vec<&str> = client_lines
        .iter()
        .copied()
        .filter(|line| !client_generated(line, client_pid))
        .collect();
    let version = peer.nix_version();
    if from_daemon != logged {
        panic!(
            "Nix {version}: nixcap log differs from the client's stderr\n--- client (less its own \
             lines)\n{}\n--- nixcap log\n{}\n--- client, everything\n{stderr}",
            from_daemon.join("\n"),
            logged.join("\n")
        );
    }
    // The build's own output is there, escaped as Nix escapes it.
    for expected in [
        r#""fields":["first line on stdout"]"#,
        r#""fields":["tab\there \u001b[1mbold\u001b[0m \"quoted\" back\\slash café"]"#,
        r#""fields":["trailing spaces   "]"#,
    ] {
        assert!(
            logged.iter().any(|l| l.contains(expected)),
            "Nix {version}: no line with {expected}:\n{}",
            logged.join("\n")
        );
    }
    let own = client_lines.len() - from_daemon.len();
    eprintln!(
        "Nix {version}: {} lines from the daemon equal, {own} lines of the client's own left out",
        logged.len()
    );

    // --timestamps adds one key and changes nothing else; --conn of a connection that is not
    // there is refused.
    let stamped = nixcap_log(&capture, &["--timestamps"]);
    let stamped = String::from_utf8(stamped.stdout).unwrap();
    let stamped: Vec<&str> = stamped.lines().collect();
    assert_eq!(stamped.len(), logged.len());
    for (plain, stamped) in logged.iter().zip(&stamped) {
        let cut = stamped.rfind(",\"nixcap\":{").unwrap();
        assert_eq!(format!("{}}}", &stamped[..cut]), *plain);
    }
    let missing = nixcap_log(&capture, &["--conn", "999"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("has no connection 999"));
}

#[test]
fn nix_2_8_log_equals_what_the_client_printed() {
    if let Some(peer) = peer_or_skip(NixVersion::V2_8) {
        check_log_against_client(&peer);
    }
}

#[test]
fn nix_2_26_log_equals_what_the_client_printed() {
    if let Some(peer) = peer_or_skip(NixVersion::V2_26) {
        check_log_against_client(&peer);
    }
}

#[test]
fn nix_2_34_log_equals_what_the_client_printed() {
    if let Some(peer) = peer_or_skip(NixVersion::V2_34) {
        check_log_against_client(&peer);
    }
}
