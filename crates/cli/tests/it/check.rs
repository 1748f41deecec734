//! `nixcap check`: a committed capture played against a fresh real daemon
//! of its version (exit 0, "verdict: same"), against a newer daemon (exit 1,
//! the handshake differences in text and JSON), against an older daemon
//! (played at its protocol, the translation in text and JSON), against the
//! system daemon's
//! socket (refused, exit 2) and against nothing (exit 2). `--save` writes the
//! target's session as a capture that `nixcap diff` reads. Needs real Nix for
//! the first two: skips without it, fails under `NIXCAP_REQUIRE_NIX=1`.

use std::path::PathBuf;
use std::process::{Command, Output};

use nixcap_test_support::{peer_or_skip, DaemonOptions, NixVersion};
use serde_json::Value;

fn nixcap(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nixcap"))
        .args(args)
        .output()
        .unwrap()
}

fn capture(series: &str, name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/captures")
        .join(series)
        .join(name)
        .display()
        .to_string()
}

#[test]
fn check_against_a_daemon_of_the_capture_s_version_is_the_same() {
    let Some(peer) = peer_or_skip(NixVersion::V2_8) else {
        return;
    };
    let daemon = peer.start_daemon(DaemonOptions::new());
    let dir = tempfile::tempdir().unwrap();
    let saved = dir.path().join("target.nixcap");
    let target = format!("unix://{}", daemon.socket_path().display());
    let recorded = capture("nix-2.8", "path-info.nixcap");
    let out = nixcap(&[
        "check",
        &recorded,
        "--against",
        &target,
        "--save",
        saved.to_str().unwrap(),
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("verdict: same"), "{text}");
    assert!(text.contains("15 of 15 recorded ops sent"), "{text}");
    // The saved session is a capture that diffs as identical to the recording.
    let diff = nixcap(&["diff", &recorded, saved.to_str().unwrap()]);
    assert_eq!(
        diff.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&diff.stdout)
    );
}

#[test]
fn check_against_a_newer_daemon_reports_its_differences() {
    let Some(peer) = peer_or_skip(NixVersion::V2_34) else {
        return;
    };
    let daemon = peer.start_daemon(DaemonOptions::new());
    let target = format!("unix://{}", daemon.socket_path().display());
    let out = nixcap(&[
        "check",
        &capture("nix-2.8", "add.nixcap"),
        "--against",
        &target,
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("handshake.daemonVersion \"1.34\" → \"1.38\""),
        "{text}"
    );
    assert!(text.contains("verdict: different"), "{text}");

    let daemon = peer.start_daemon(DaemonOptions::new());
    let target = format!("unix://{}", daemon.socket_path().display());
    let out = nixcap(&[
        "check",
        &capture("nix-2.8", "add.nixcap"),
        "--against",
        &target,
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["v"], 1);
    assert_eq!(report["verdict"], "different");
    assert_eq!(report["problems"].as_array().unwrap().len(), 0);
    assert_eq!(
        report["diff"]["handshake"][0]["path"],
        "handshake.daemonVersion"
    );
    assert_eq!(report["diff"]["connections"].as_array().unwrap().len(), 0);
}

#[test]
fn check_against_an_older_daemon_translates_and_says_so() {
    let Some(peer) = peer_or_skip(NixVersion::V2_8) else {
        return;
    };
    // A 2.34 build (protocol 1.38) against Nix 2.8, which speaks 1.34.
    let recorded = capture("nix-2.34", "build.nixcap");
    let daemon = peer.start_daemon(DaemonOptions::new());
    let target = format!("unix://{}", daemon.socket_path().display());
    let out = nixcap(&["check", &recorded, "--against", &target]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("10 of 10 recorded ops sent"), "{text}");
    assert!(text.contains("(Nix 2.8.0, protocol 1.34)"), "{text}");
    assert!(
        text.contains("translated for the target's protocol:"),
        "{text}"
    );
    assert!(
        text.contains(
            "handshake version: converted (the recording ran at protocol 1.38; the target speaks 1.34"
        ),
        "{text}"
    );
    assert!(text.contains(" — conn 1\n"), "{text}");
    assert!(
        text.contains("handshake.negotiatedVersion \"1.38\" → \"1.34\""),
        "{text}"
    );
    assert!(
        text.contains(
            "handshake.trust \"trusted\" → \"(not sent)\"  (the daemon says whether it trusts the client from protocol 1.35)"
        ),
        "{text}"
    );
    // What Nix 2.8 answers differently: its build logs no progress results.
    assert!(text.contains("conn 1 · op 6 BuildPaths"), "{text}");
    assert!(text.contains("\"resultType\":105"), "{text}");
    assert!(text.contains("verdict: different"), "{text}");

    let daemon = peer.start_daemon(DaemonOptions::new());
    let target = format!("unix://{}", daemon.socket_path().display());
    let out = nixcap(&["check", &recorded, "--against", &target, "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["verdict"], "different");
    assert_eq!(report["targetProtocols"], serde_json::json!(["1.34"]));
    assert_eq!(report["problems"].as_array().unwrap().len(), 0);
    let translations = report["translations"].as_array().unwrap();
    assert_eq!(translations.len(), 1, "{translations:?}");
    let note = &translations[0];
    assert_eq!(note["conn"], 1);
    assert_eq!(note["seq"], Value::Null);
    assert_eq!(note["subject"], "handshake");
    assert_eq!(note["field"], "version");
    assert_eq!(note["action"], "converted");
    assert!(
        note["detail"]
            .as_str()
            .unwrap()
            .starts_with("the recording ran at protocol 1.38; the target speaks 1.34"),
        "{note}"
    );
    let ops = report["diff"]["connections"][0]["ops"].as_array().unwrap();
    assert_eq!(ops.len(), 1, "{ops:?}");
    assert_eq!(ops[0]["op"], "BuildPaths");
}

#[test]
fn check_refuses_the_system_daemon_and_reports_an_unreachable_target() {
    let recorded = capture("nix-2.8", "store-info.nixcap");
    let out = nixcap(&[
        "check",
        &recorded,
        "--against",
        "unix:///nix/var/nix/daemon-socket/socket",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("system daemon"), "{stderr}");
    assert!(
        stderr.contains("--allow-system-daemon") || stderr.contains("allow it"),
        "{stderr}"
    );

    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("none.sock");
    let out = nixcap(&["check", &recorded, "--against", missing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("connecting to"), "{stderr}");
}
