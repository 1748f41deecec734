//! `check` against fresh real daemons: every committed capture of a Nix
//! version checked against a fresh daemon of that version reports no
//! difference; checked against a daemon of another version (2.8, 2.26 and
//! 2.34 both ways) it reports the known differences and nothing else: the
//! handshake's, each with the protocol change that explains it, and what
//! Nix itself answers differently (named op by op below). A target that
//! speaks an older minor than the recording (2.8's 1.34 for a capture at
//! 1.38) gets the handshake and requests in its own form, and the report
//! lists the translation.
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
use nixcap_diff::{FieldDiff, Presence};
use nixcap_test_support::scenarios::{source_capture_name, SCENARIOS};
use nixcap_test_support::{peer_or_skip, DaemonOptions, NixVersion, Peer};
use nixcap_view::DecodedCapture;
use nixcap_wire::translate::Action;

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

/// What a check of one series against a daemon of another Nix version
/// reports besides the ops that compare equal.
struct Pairing {
    /// The recording's series.
    series: &'static str,
    /// The target's Nix.
    target: NixVersion,
    /// Every handshake difference, in the report's order.
    handshake: &'static [Expected],
    /// The recording's protocol when the target speaks an older one, so
    /// that every connection is played at the target's.
    translated_from: Option<&'static str>,
    /// Whether one side is Nix 2.34 and the other older: then builds and
    /// garbage collection log differently (see `known_difference`).
    newer_logs: Option<NewerSide>,
}

/// One expected handshake difference: path, recorded value, target value,
/// and the protocol change the report names for it (if any). A value of
/// `None` is the Nix version of that side.
type Expected = (
    &'static str,
    Option<&'static str>,
    Option<&'static str>,
    Option<&'static str>,
);

/// Which side of the comparison is Nix 2.34.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum NewerSide {
    Recorded,
    Target,
}

/// The captures in which Nix 2.34 logs differently from 2.8 and 2.26, with
/// the op: the BuildPaths of every build, the CollectGarbage of
/// export-import.
const LOGS_DIFFER: &[(&str, &str)] = &[
    ("query.nixcap", "BuildPaths"),
    ("build.nixcap", "BuildPaths"),
    ("build-fail.nixcap", "BuildPaths"),
    ("path-info.nixcap", "BuildPaths"),
    ("copy.source.nixcap", "BuildPaths"),
    ("export-import.nixcap", "CollectGarbage"),
];

/// Why a field of an op differs between two Nix versions, or `None` if it
/// is not a known difference of Nix itself. `value` is the entry on the
/// side that has it (for an added or removed log entry).
fn known_difference(pairing: &Pairing, op: &str, field: &FieldDiff) -> Option<&'static str> {
    let one_side = |entry: &Option<serde_json::Value>| entry.as_ref().map(ToString::to_string);
    let (added_on, entry) = match (&field.a, &field.b) {
        (Some(a), None) => (Some(NewerSide::Recorded), Some(a.to_string())),
        (None, Some(b)) => (Some(NewerSide::Target), Some(b.to_string())),
        _ => (None, one_side(&field.a)),
    };
    let is_log_entry = field.path.starts_with("log[") && !field.path.contains('.');
    match op {
        // Each Nix words a failed build its own way: 2.8 "builder for '…'
        // failed with exit code 1", 2.26 "For full logs, run:", 2.34
        // "Cannot build '…'".
        "BuildPaths" if field.path == "error.message" => Some("the build failure's wording"),
        // 2.34 reports a build's progress (resultType 105) and expected
        // counts (106) that 2.8 and 2.26 do not send, and counts the
        // running builds of its own progress results differently.
        "BuildPaths" if pairing.newer_logs.is_some() && is_log_entry => {
            let entry = entry.unwrap_or_default();
            (added_on == pairing.newer_logs
                && entry.contains("\"type\":\"result\"")
                && (entry.contains("\"resultType\":105") || entry.contains("\"resultType\":106")))
            .then_some("2.34's progress and expected-count results")
        }
        "BuildPaths"
            if pairing.newer_logs.is_some()
                && field.path.starts_with("log[")
                && field.path.ends_with("].fields[1]") =>
        {
            Some("a progress result's count")
        }
        // 2.34 also logs the stale temporary roots it removes, and words
        // the hard-linking note differently.
        "CollectGarbage" if pairing.newer_logs.is_some() && is_log_entry => {
            let entry = entry.unwrap_or_default();
            (added_on == pairing.newer_logs
                && entry.contains("removing stale temporary roots file"))
            .then_some("2.34 logs removed temporary roots")
        }
        "CollectGarbage"
            if pairing.newer_logs.is_some()
                && field.path.starts_with("log[")
                && field.path.ends_with("].text") =>
        {
            let both = |v: &Option<serde_json::Value>| {
                v.as_ref()
                    .is_some_and(|v| v.to_string().contains("hard linking"))
            };
            (both(&field.a) && both(&field.b)).then_some("the hard-linking note's wording")
        }
        _ => None,
    }
}

/// Checks every capture of `pairing.series` against a fresh daemon of
/// `pairing.target` and asserts exactly what is reported.
fn cross_version(pairing: &Pairing) {
    let Some(peer) = peer_or_skip(pairing.target) else {
        return;
    };
    let mut unexpected = Vec::new();
    for name in captures_of_series() {
        let report = check_fresh(&peer, pairing.series, &name);
        let context = format!(
            "{}/{name} against {:?}:\n{report}",
            pairing.series, pairing.target
        );
        assert_eq!(report.verdict, Verdict::Different, "{context}");
        assert!(report.problems.is_empty(), "{context}");
        assert_eq!(report.ops_sent, report.ops_recorded, "{context}");
        let target_nix = report.target_nix_version.clone().unwrap();
        let recorded_nix = report.diff.a.daemon_nix_versions.join(" | ");

        // The handshake: exactly the expected fields, values and notes.
        let handshake: Vec<_> = report
            .diff
            .handshake
            .iter()
            .map(|f| {
                (
                    f.path.as_str(),
                    f.a.as_ref().map(ToString::to_string),
                    f.b.as_ref().map(ToString::to_string),
                    f.note.as_deref(),
                )
            })
            .collect();
        let expected: Vec<_> = pairing
            .handshake
            .iter()
            .map(|(path, a, b, note)| {
                let quoted = |v: &str| format!("{v:?}");
                (
                    *path,
                    Some(a.map_or_else(|| quoted(&recorded_nix), quoted)),
                    Some(b.map_or_else(|| quoted(&target_nix), quoted)),
                    *note,
                )
            })
            .collect();
        assert_eq!(handshake.len(), expected.len(), "{context}");
        for (got, want) in handshake.iter().zip(&expected) {
            assert_eq!(got.0, want.0, "{context}");
            assert_eq!(got.1, want.1, "{context}");
            assert_eq!(got.2, want.2, "{context}");
            match want.3 {
                Some(note) => assert!(
                    got.3.is_some_and(|n| n.contains(note)),
                    "{}: note {:?}, expected {note:?}\n{context}",
                    got.0,
                    got.3
                ),
                None => assert_eq!(got.3, None, "{context}"),
            }
        }

        // The translation: one handshake note per connection when the
        // target speaks an older minor; the requests of these captures are
        // the same at 1.34 and 1.38, so no request needed a change.
        match pairing.translated_from {
            Some(from) => {
                assert_eq!(report.translations.len(), report.connections, "{context}");
                for note in &report.translations {
                    assert_eq!(note.seq, None, "{context}");
                    assert_eq!(note.change.subject, "handshake");
                    assert_eq!(note.change.field, "version");
                    assert_eq!(note.change.action, Action::Converted);
                    assert!(
                        note.change.detail.starts_with(&format!(
                            "the recording ran at protocol {from}; the target speaks 1.34"
                        )),
                        "{context}"
                    );
                }
                let text = report.to_string();
                assert!(
                    text.contains("translated for the target's protocol:"),
                    "{context}"
                );
                assert_eq!(
                    report.target_protocols,
                    vec!["1.34".to_owned()],
                    "{context}"
                );
            }
            None => assert!(report.translations.is_empty(), "{context}"),
        }

        // The ops: every op is paired with the same op; those that differ
        // are exactly the known ones, in every field.
        let mut differing = Vec::new();
        for connection in &report.diff.connections {
            for op in &connection.ops {
                assert!(
                    op.notes.is_empty() && op.b_op.is_none(),
                    "{}: answered as another op\n{context}",
                    op.op
                );
                assert_eq!(op.presence, Presence::Changed, "{context}");
                differing.push(op.op.clone());
                for field in &op.fields {
                    if known_difference(pairing, &op.op, field).is_none() {
                        unexpected.push(format!(
                            "{}/{name}: {} {} {:?} → {:?}",
                            pairing.series, op.op, field.path, field.a, field.b
                        ));
                    }
                }
            }
        }
        let mut expected_ops: Vec<String> = Vec::new();
        if pairing.newer_logs.is_some() {
            expected_ops.extend(
                LOGS_DIFFER
                    .iter()
                    .filter(|(capture, _)| *capture == name)
                    .map(|(_, op)| (*op).to_owned()),
            );
        } else if name == "build-fail.nixcap" {
            expected_ops.push("BuildPaths".to_owned());
        }
        assert_eq!(differing, expected_ops, "{context}");
        assert_eq!(
            report.diff.identical_ops + differing.len(),
            report.ops_recorded,
            "{context}"
        );
        // A failed build's error is worded differently by every pair of
        // versions, and always reported.
        if name == "build-fail.nixcap" {
            assert!(
                report
                    .diff
                    .field_diffs()
                    .any(|(_, op, f)| op.op == "BuildPaths" && f.path == "error.message"),
                "{context}"
            );
        }
    }
    assert!(unexpected.is_empty(), "{unexpected:#?}");
}

/// The handshake differences of a recording at 1.38 (Nix 2.26, 2.34)
/// checked against Nix 2.8, which speaks 1.34.
const FROM_1_38_TO_1_34: &[Expected] = &[
    ("handshake.daemonVersion", Some("1.38"), Some("1.34"), None),
    (
        "handshake.negotiatedVersion",
        Some("1.38"),
        Some("1.34"),
        None,
    ),
    (
        "handshake.clientFeatures",
        Some("(none)"),
        Some("(not sent)"),
        Some("feature negotiation was added in protocol 1.38"),
    ),
    (
        "handshake.daemonFeatures",
        Some("(none)"),
        Some("(not sent)"),
        Some("feature negotiation was added in protocol 1.38"),
    ),
    ("handshake.daemonNixVersion", None, None, None),
    (
        "handshake.trust",
        Some("trusted"),
        Some("(not sent)"),
        Some("from protocol 1.35"),
    ),
];

/// The handshake differences of a recording at 1.34 (Nix 2.8) checked
/// against a daemon of 1.38: the daemon's own version and Nix version; the
/// recorded client's 1.34 is what is negotiated.
const FROM_1_34_TO_1_38: &[Expected] = &[
    ("handshake.daemonVersion", Some("1.34"), Some("1.38"), None),
    ("handshake.daemonNixVersion", None, None, None),
];

#[test]
fn nix_2_8_captures_against_a_2_34_daemon_show_the_known_differences_only() {
    cross_version(&Pairing {
        series: "nix-2.8",
        target: NixVersion::V2_34,
        handshake: FROM_1_34_TO_1_38,
        translated_from: None,
        newer_logs: Some(NewerSide::Target),
    });
}

#[test]
fn nix_2_34_captures_against_a_2_8_daemon_are_translated_to_1_34_and_show_the_known_differences_only(
) {
    cross_version(&Pairing {
        series: "nix-2.34",
        target: NixVersion::V2_8,
        handshake: FROM_1_38_TO_1_34,
        translated_from: Some("1.38"),
        newer_logs: Some(NewerSide::Recorded),
    });
}

#[test]
fn nix_2_26_captures_against_a_2_8_daemon_are_translated_to_1_34_and_show_the_known_differences_only(
) {
    cross_version(&Pairing {
        series: "nix-2.26",
        target: NixVersion::V2_8,
        handshake: FROM_1_38_TO_1_34,
        translated_from: Some("1.38"),
        newer_logs: None,
    });
}

#[test]
fn nix_2_8_captures_against_a_2_26_daemon_show_the_known_differences_only() {
    cross_version(&Pairing {
        series: "nix-2.8",
        target: NixVersion::V2_26,
        handshake: FROM_1_34_TO_1_38,
        translated_from: None,
        newer_logs: None,
    });
}

#[test]
fn nix_2_34_captures_against_a_2_26_daemon_show_the_known_differences_only() {
    // Both speak 1.38 with no features: only the Nix version differs in the
    // handshake.
    cross_version(&Pairing {
        series: "nix-2.34",
        target: NixVersion::V2_26,
        handshake: &[("handshake.daemonNixVersion", None, None, None)],
        translated_from: None,
        newer_logs: Some(NewerSide::Recorded),
    });
}

#[test]
fn setup_against_a_newer_daemon_lists_what_it_cannot_import_and_changes_nothing_else() {
    let Some(peer) = peer_or_skip(NixVersion::V2_34) else {
        return;
    };
    // No committed capture needs --setup: each was recorded from an empty
    // store, and no NAR crossed the wire (clients of a unix:// store read
    // store files from disk). So the setup finds the paths that
    // QueryPathInfo answered about, none of them importable, and the check
    // reports what it reports without it.
    let daemon = peer.start_daemon(DaemonOptions::new());
    let recorded = load("nix-2.8", "path-info.nixcap");
    let mut asked: Vec<String> = recorded
        .connections
        .iter()
        .flat_map(|c| &c.exchanges)
        .filter_map(|e| match (&e.request, &e.outcome) {
            (
                Some(nixcap_wire::ops::Request::QueryPathInfo { path }),
                nixcap_view::Outcome::Reply(nixcap_wire::ops::Reply::QueryPathInfo {
                    info: Some(_),
                }),
            ) => Some(path.as_str().to_owned()),
            _ => None,
        })
        .collect();
    asked.sort();
    asked.dedup();
    assert!(!asked.is_empty());
    let options = Options::default()
        .with_timeout(Duration::from_secs(60))
        .with_setup(true);
    let target = format!("unix://{}", daemon.socket_path().display());
    let report = check(&recorded, &target, &options).unwrap().report;
    let setup = report.setup.clone().unwrap();
    assert!(setup.imported.is_empty(), "{report}");
    assert!(setup.present.is_empty(), "{report}");
    let mut missing = setup.missing.clone();
    missing.sort();
    assert_eq!(missing, asked, "{report}");
    assert!(report.problems.is_empty(), "{report}");
    assert!(
        report.to_string().contains(&format!(
            "setup: 0 store paths imported, 0 already present, {} not importable",
            asked.len()
        )),
        "{report}"
    );
    assert_eq!(report.verdict, Verdict::Different, "{report}");
    let differing: Vec<&str> = report
        .diff
        .connections
        .iter()
        .flat_map(|c| &c.ops)
        .map(|op| op.op.as_str())
        .collect();
    assert_eq!(differing, ["BuildPaths"], "{report}");
}
