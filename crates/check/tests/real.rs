//! `check` against fresh real daemons: every committed capture of a Nix
//! version checked against a fresh daemon of that version reports no
//! difference; a 2.8 capture checked against a 2.34 daemon reports the known
//! protocol differences and nothing else.
//!
//! Each check gets its own daemon on a private store, as the recorded one
//! had. Without the Nix peers the tests skip, saying so; with
//! `NIXCAP_REQUIRE_NIX=1` they fail instead.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers may unwrap; clippy only exempts #[test] functions"
)]

use std::path::PathBuf;
use std::time::Duration;

use nixcap_check::{check, CheckReport, Options, Verdict};
use nixcap_test_support::scenarios::{source_capture_name, SCENARIOS};
use nixcap_test_support::{peer_or_skip, DaemonOptions, NixVersion, Peer};
use nixcap_view::DecodedCapture;

fn capture_path(series: &str, name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/captures")
        .join(series)
        .join(name)
}

fn load(series: &str, name: &str) -> DecodedCapture {
    let path = capture_path(series, name);
    DecodedCapture::new(nixcap_capture::read_capture_file(&path).unwrap())
}

/// Checks one capture against a fresh daemon of `peer`.
fn check_fresh(peer: &Peer, series: &str, name: &str) -> CheckReport {
    let daemon = peer.start_daemon(DaemonOptions::new());
    let recorded = load(series, name);
    let options = Options::default().with_timeout(Duration::from_secs(60));
    let target = format!("unix://{}", daemon.socket_path().display());
    let report = check(&recorded, &target, &options).unwrap().report;
    if !report.problems.is_empty() {
        println!("{series}/{name}: the daemon's log:\n{}", daemon.log());
    }
    report
}

/// Every capture of `version`'s series: each scenario's, and the source
/// store's of `copy`.
fn captures_of_series() -> Vec<String> {
    let mut names = Vec::new();
    for scenario in SCENARIOS {
        names.push(format!("{}.nixcap", scenario.name));
        if scenario.needs_source {
            names.push(source_capture_name(scenario.name));
        }
    }
    names
}

fn same_version(version: NixVersion, series: &str) {
    let Some(peer) = peer_or_skip(version) else {
        return;
    };
    let mut failures = Vec::new();
    for name in captures_of_series() {
        let report = check_fresh(&peer, series, &name);
        if report.verdict != Verdict::Same {
            failures.push(format!("{series}/{name}:\n{report}"));
        }
        assert!(
            report.connections > 0,
            "{series}/{name}: no connection was played"
        );
        assert_eq!(
            report.ops_sent, report.ops_recorded,
            "{series}/{name}:\n{report}"
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn nix_2_8_captures_match_a_fresh_2_8_daemon() {
    same_version(NixVersion::V2_8, "nix-2.8");
}

#[test]
fn nix_2_26_captures_match_a_fresh_2_26_daemon() {
    same_version(NixVersion::V2_26, "nix-2.26");
}

#[test]
fn nix_2_34_captures_match_a_fresh_2_34_daemon() {
    same_version(NixVersion::V2_34, "nix-2.34");
}

#[test]
fn nix_2_8_captures_against_a_2_34_daemon_show_the_known_differences_only() {
    let Some(peer) = peer_or_skip(NixVersion::V2_34) else {
        return;
    };
    let mut unexpected = Vec::new();
    for name in captures_of_series() {
        let report = check_fresh(&peer, "nix-2.8", &name);
        assert_eq!(report.verdict, Verdict::Different, "{name}:\n{report}");
        assert!(report.problems.is_empty(), "{name}:\n{report}");
        assert_eq!(report.ops_sent, report.ops_recorded, "{name}:\n{report}");
        // The handshake: the daemon's own version and Nix version, and
        // nothing else (the recorded client's 1.34 is what is negotiated).
        let handshake: Vec<(String, String)> = report
            .diff
            .handshake
            .iter()
            .map(|f| (f.path.clone(), f.b.as_ref().unwrap().to_string()))
            .collect();
        assert_eq!(handshake.len(), 2, "{name}:\n{report}");
        assert_eq!(handshake[0].0, "handshake.daemonVersion");
        assert_eq!(handshake[0].1, "\"1.38\"");
        assert_eq!(handshake[1].0, "handshake.daemonNixVersion");
        assert!(handshake[1].1.starts_with("\"2."), "{name}: {handshake:?}");
        for connection in &report.diff.connections {
            for op in &connection.ops {
                assert!(
                    op.notes.is_empty() && op.b_op.is_none(),
                    "{name}: {} was answered as another op:\n{report}",
                    op.op
                );
                assert_eq!(
                    op.presence,
                    nixcap_diff::Presence::Changed,
                    "{name}: an op on one side only:\n{report}"
                );
                for field in &op.fields {
                    // Known behaviour differences of the newer daemon, at
                    // the same protocol: builds report more progress and
                    // word their failure differently, garbage collection
                    // words its log differently. No reply field differs.
                    let known = match op.op.as_str() {
                        "BuildPaths" => {
                            field.path.starts_with("log[") || field.path == "error.message"
                        }
                        "CollectGarbage" => field.path.starts_with("log["),
                        _ => false,
                    };
                    if !known {
                        unexpected.push(format!("{name}: {} {}", op.op, field.path));
                    }
                }
            }
        }
    }
    assert!(unexpected.is_empty(), "{unexpected:#?}");
}
