//! `nixcap diff` and the engine behind it.
//!
//! - A capture with one reply field changed on purpose (decoded, changed, re-encoded with the
//!   wire encoders, written as a new capture) diffs as exactly that change; exit statuses,
//!   `--json`, `--ignore` and `--baseline` are checked on it.
//! - Every scenario, recorded again through the recorder against a fresh real daemon, diffs
//!   as identical to its committed capture. This needs real Nix: it skips (printing why) when
//!   a version is missing, and fails instead when `NIXCAP_REQUIRE_NIX=1` is set.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers may unwrap; clippy only exempts #[test] functions"
)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use nixcap_capture::{read_capture, read_capture_file, Direction};
use nixcap_diff::{Options, Presence};
use nixcap_record::{BackgroundRecorder, Config, DaemonAddr};
use nixcap_test_support::real_sessions::{
    capture_bytes_from_session, load_real_session, SessionChunk,
};
use nixcap_test_support::scenarios::{Scenario, StoreAccess, Stores, SCENARIOS};
use nixcap_test_support::{peer_or_skip, Daemon, DaemonOptions, NixVersion, Peer};
use nixcap_view::{DecodedCapture, Outcome};
use nixcap_wire::ops::Reply;
use nixcap_wire::primitives::Writer;
use nixcap_wire::session::EventKind;
use serde_json::Value;

/// The real transcript the changed-field tests start from.
const BASE_SESSION: &str = "nix-2.26.3.nxsess.zst";

fn nixcap(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nixcap"))
        .args(args)
        .output()
        .expect("nixcap runs")
}

fn decode(bytes: &[u8]) -> DecodedCapture {
    DecodedCapture::new(read_capture(bytes).unwrap())
}

/// Where the committed captures are: `testdata/captures`, or `NIXCAP_CAPTURES_DIR` to check
/// a freshly recorded set before it is committed.
fn captures_dir() -> PathBuf {
    match std::env::var_os("NIXCAP_CAPTURES_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata/captures"),
    }
}

fn committed_capture(series: &str, scenario: &str) -> PathBuf {
    captures_dir()
        .join(format!("nix-{series}"))
        .join(format!("{scenario}.nixcap"))
}

fn series(version: NixVersion) -> &'static str {
    match version {
        NixVersion::V2_8 => "2.8",
        NixVersion::V2_26 => "2.26",
        _ => "2.34",
    }
}

/// A change to make to the first QueryPathInfo reply of a capture.
type Edit = fn(&mut nixcap_wire::types::UnkeyedValidPathInfo);

/// The base transcript with `edit` applied to the reply of the first
/// QueryPathInfo that found a path, re-encoded with the wire encoders; and
/// the connection and op that were changed.
fn edited_session(edit: Edit) -> (Vec<Vec<SessionChunk>>, u64, u64) {
    let mut connections = load_real_session(BASE_SESSION);
    let decoded = decode(&capture_bytes_from_session(&connections));
    for (index, connection) in decoded.connections.iter().enumerate() {
        for exchange in &connection.exchanges {
            let Outcome::Reply(Reply::QueryPathInfo { info: Some(info) }) = &exchange.outcome
            else {
                continue;
            };
            let mut info = info.clone();
            edit(&mut info);
            let reply = Reply::QueryPathInfo { info: Some(info) };
            let event = exchange
                .events
                .iter()
                .map(|&i| &connection.events[i].event)
                .find(|event| matches!(event.kind, EventKind::Reply { .. }))
                .unwrap();
            let negotiated = connection.session.negotiated.as_ref().unwrap();
            let mut writer = Writer::new();
            reply.encode(&mut writer, negotiated);
            let encoded = writer.into_bytes();
            assert_eq!(
                encoded.len() as u64,
                event.len,
                "the edit keeps the reply's length"
            );

            // Splice the new reply into the daemon's stream and cut the stream back into
            // chunks of the original sizes.
            let chunks = &mut connections[index];
            let mut stream: Vec<u8> = chunks
                .iter()
                .filter(|(d, _)| *d == Direction::ServerToClient)
                .flat_map(|(_, bytes)| bytes.iter().copied())
                .collect();
            let start = event.offset as usize;
            stream[start..start + encoded.len()].copy_from_slice(&encoded);
            let mut rest = &stream[..];
            for (direction, bytes) in chunks.iter_mut() {
                if *direction == Direction::ServerToClient {
                    let (head, tail) = rest.split_at(bytes.len());
                    bytes.copy_from_slice(head);
                    rest = tail;
                }
            }
            return (connections, connection.conn, exchange.seq);
        }
    }
    panic!("{BASE_SESSION} has no QueryPathInfo reply with a path info");
}

fn bump_nar_size(info: &mut nixcap_wire::types::UnkeyedValidPathInfo) {
    info.nar_size += 6;
}

fn bump_nar_size_and_flip_nar_hash(info: &mut nixcap_wire::types::UnkeyedValidPathInfo) {
    info.nar_size += 6;
    let flipped = if info.nar_hash.starts_with('0') {
        "1"
    } else {
        "0"
    };
    info.nar_hash.replace_range(0..1, flipped);
}

/// Writes the base transcript and edited versions of it as capture files.
struct Files {
    _dir: tempfile::TempDir,
    base: PathBuf,
    nar_size: PathBuf,
    nar_size_and_hash: PathBuf,
}

fn files() -> Files {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, bytes: Vec<u8>| {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    };
    let base = write(
        "base.nixcap",
        capture_bytes_from_session(&load_real_session(BASE_SESSION)),
    );
    let nar_size = write(
        "nar-size.nixcap",
        capture_bytes_from_session(&edited_session(bump_nar_size).0),
    );
    let nar_size_and_hash = write(
        "nar-size-and-hash.nixcap",
        capture_bytes_from_session(&edited_session(bump_nar_size_and_flip_nar_hash).0),
    );
    Files {
        _dir: dir,
        base,
        nar_size,
        nar_size_and_hash,
    }
}

fn arg(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn a_changed_reply_field_is_found_and_nothing_else() {
    let (edited, conn, seq) = edited_session(bump_nar_size);
    let base = decode(&capture_bytes_from_session(&load_real_session(
        BASE_SESSION,
    )));
    let edited = decode(&capture_bytes_from_session(&edited));
    let report = nixcap_diff::diff(&base, &edited, &Options::default());
    assert!(report.handshake.is_empty(), "{report}");
    let diffs: Vec<_> = report.field_diffs().collect();
    assert_eq!(diffs.len(), 1, "{report}");
    let (connection, op, field) = diffs[0];
    assert_eq!(
        (connection.a_conn, connection.b_conn),
        (Some(conn), Some(conn))
    );
    assert_eq!((op.a_seq, op.b_seq), (Some(seq), Some(seq)));
    assert_eq!(op.op, "QueryPathInfo");
    assert_eq!(field.path, "reply.info.narSize");
    let (a, b) = (
        field.a.as_ref().unwrap().as_u64().unwrap(),
        field.b.as_ref().unwrap().as_u64().unwrap(),
    );
    assert_eq!(b, a + 6);
    assert_eq!(report.connections.len(), 1);
    assert!(report.connections[0]
        .ops
        .iter()
        .all(|op| op.presence == Presence::Changed));
    let text = report.to_string();
    assert!(
        text.contains(&format!(
            "conn {conn} · op {seq} QueryPathInfo /nix/store/…-"
        )) && text.contains(&format!("reply.info.narSize {a} → {b}")),
        "{text}"
    );
}

#[test]
fn exit_status_is_0_for_the_same_1_for_different_2_for_trouble() {
    let files = files();
    let same = nixcap(&["diff", arg(&files.base), arg(&files.base)]);
    assert_eq!(same.status.code(), Some(0), "{same:?}");
    assert!(String::from_utf8_lossy(&same.stdout).contains("identical"));

    let different = nixcap(&["diff", arg(&files.base), arg(&files.nar_size)]);
    assert_eq!(different.status.code(), Some(1), "{different:?}");
    assert!(String::from_utf8_lossy(&different.stdout).contains("reply.info.narSize"));

    let missing = files.base.with_file_name("missing.nixcap");
    let trouble = nixcap(&["diff", arg(&files.base), arg(&missing)]);
    assert_eq!(trouble.status.code(), Some(2), "{trouble:?}");
    assert!(String::from_utf8_lossy(&trouble.stderr).contains("missing.nixcap"));

    let not_a_capture = files.base.with_file_name("text.nixcap");
    std::fs::write(&not_a_capture, "not a capture").unwrap();
    let trouble = nixcap(&["diff", arg(&not_a_capture), arg(&files.base)]);
    assert_eq!(trouble.status.code(), Some(2), "{trouble:?}");
}

#[test]
fn json_output_parses_and_holds_the_difference() {
    let files = files();
    let output = nixcap(&["diff", "--json", arg(&files.base), arg(&files.nar_size)]);
    assert_eq!(output.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    let connections = report["connections"].as_array().unwrap();
    assert_eq!(connections.len(), 1);
    let ops = connections[0]["ops"].as_array().unwrap();
    assert_eq!(ops.len(), 1);
    assert_eq!(ops[0]["op"], "QueryPathInfo");
    assert_eq!(ops[0]["presence"], "changed");
    let fields = ops[0]["fields"].as_array().unwrap();
    assert_eq!(fields.len(), 1);
    assert_eq!(fields[0]["path"], "reply.info.narSize");
    assert_eq!(
        fields[0]["b"].as_u64().unwrap(),
        fields[0]["a"].as_u64().unwrap() + 6
    );

    let same = nixcap(&["diff", "--json", arg(&files.base), arg(&files.base)]);
    assert_eq!(same.status.code(), Some(0));
    let report: Value = serde_json::from_slice(&same.stdout).unwrap();
    assert_eq!(report["connections"], Value::Array(Vec::new()));
    assert_eq!(report["handshake"], Value::Array(Vec::new()));
}

#[test]
fn ignore_drops_the_field_it_names_and_only_that() {
    let files = files();
    for pattern in [
        "reply.narSize",
        "QueryPathInfo:reply.info.narSize",
        "narSize",
        "QueryPathInfo",
    ] {
        let output = nixcap(&[
            "diff",
            "--ignore",
            pattern,
            arg(&files.base),
            arg(&files.nar_size),
        ]);
        assert_eq!(
            output.status.code(),
            Some(0),
            "--ignore {pattern}: {output:?}"
        );
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(
            text.contains("1 differences ignored"),
            "--ignore {pattern}: {text}"
        );
    }
    for pattern in [
        "request.narSize",
        "AddToStore:reply.info.narSize",
        "narHash",
    ] {
        let output = nixcap(&[
            "diff",
            "--ignore",
            pattern,
            arg(&files.base),
            arg(&files.nar_size),
        ]);
        assert_eq!(
            output.status.code(),
            Some(1),
            "--ignore {pattern}: {output:?}"
        );
    }
    // Repeated: both changed fields of the second edit.
    let output = nixcap(&[
        "diff",
        "--ignore",
        "reply.narSize",
        "--ignore",
        "reply.narHash",
        arg(&files.base),
        arg(&files.nar_size_and_hash),
    ]);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
}

#[test]
fn a_baseline_teaches_noise_and_real_changes_remain() {
    let files = files();
    // The baseline differs from A in narSize only: that is learned as noise. B differs from A
    // in narSize and narHash: only narHash is reported.
    let output = nixcap(&[
        "diff",
        "--json",
        "--baseline",
        arg(&files.nar_size),
        arg(&files.base),
        arg(&files.nar_size_and_hash),
    ]);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        report["learned"],
        serde_json::json!(["QueryPathInfo:reply.info.narSize"])
    );
    let paths: Vec<&str> = report["connections"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["ops"].as_array().unwrap())
        .flat_map(|op| op["fields"].as_array().unwrap())
        .map(|field| field["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["reply.info.narHash"]);

    let text = nixcap(&[
        "diff",
        "--baseline",
        arg(&files.nar_size),
        arg(&files.base),
        arg(&files.nar_size_and_hash),
    ]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("learned from the baseline as noise: QueryPathInfo:reply.info.narSize"),
        "{text}"
    );

    // A baseline equal to A learns nothing.
    let output = nixcap(&[
        "diff",
        "--baseline",
        arg(&files.base),
        arg(&files.base),
        arg(&files.nar_size),
    ]);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stdout).contains("learned from the baseline: nothing"));
}

#[test]
fn timing_shows_times_only_when_asked() {
    let files = files();
    // The transcripts carry real registration times; two different transcripts differ in
    // them. Without --timing they are placeholders on both sides.
    let base = decode(&std::fs::read(&files.base).unwrap());
    let other = decode(&capture_bytes_from_session(&load_real_session(
        "nix-2.34.8.nxsess.zst",
    )));
    let plain = nixcap_diff::diff(&base, &other, &Options::default());
    assert!(
        plain
            .field_diffs()
            .all(|(_, _, f)| !f.path.ends_with("registrationTime")),
        "{plain}"
    );
    let timed = nixcap_diff::diff(
        &base,
        &other,
        &Options {
            timing: true,
            ..Options::default()
        },
    );
    assert!(
        timed
            .field_diffs()
            .any(|(_, _, f)| f.path.ends_with("registrationTime")),
        "{timed}"
    );
}

/// Records `scenario` with `peer`'s client against fresh daemons of `peer`, through the
/// recorder library, and returns the capture.
fn record(peer: &Peer, scenario: &Scenario) -> DecodedCapture {
    let daemon = Daemon::start(peer, DaemonOptions::new());
    let source = scenario
        .needs_source
        .then(|| Daemon::start(peer, DaemonOptions::new()));
    let mut config = Config::new(None, DaemonAddr::from_path(daemon.socket_path()));
    config.options.shutdown_grace = Duration::from_secs(10);
    let recorder = BackgroundRecorder::start(config, Vec::new()).unwrap();
    let main = StoreAccess::via(&daemon, recorder.socket_path());
    let stores = match &source {
        Some(source) => Stores::with_source(main, StoreAccess::direct(source)),
        None => Stores::main(main),
    };
    let work = tempfile::tempdir().unwrap();
    let run = scenario.run(peer, work.path(), &stores);
    let report = recorder.finish().unwrap();
    let run = run.unwrap_or_else(|err| panic!("{}: {err}", scenario.name));
    assert!(
        run.unexpected_outcomes().is_empty(),
        "{}: {:?}",
        scenario.name,
        run.unexpected_outcomes()
    );
    assert!(report.capture_complete(), "{:?}", report.capture_problems);
    decode(&report.out.unwrap())
}

/// Every scenario recorded again diffs as identical to its committed capture (or, for a
/// scenario whose capture is not committed, to a second fresh recording).
fn recorded_again_is_identical(version: NixVersion) {
    let Some(peer) = peer_or_skip(version) else {
        return;
    };
    let mut failures = Vec::new();
    for scenario in SCENARIOS {
        let path = committed_capture(series(version), scenario.name);
        let committed = if path.is_file() {
            DecodedCapture::new(
                read_capture_file(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display())),
            )
        } else {
            eprintln!(
                "{} is not committed: comparing two fresh recordings",
                path.display()
            );
            record(&peer, scenario)
        };
        let fresh = record(&peer, scenario);
        let report = nixcap_diff::diff(&committed, &fresh, &Options::default());
        eprintln!(
            "nix-{}/{}: {} connections, {} ops: {}",
            series(version),
            scenario.name,
            fresh.connections.len(),
            report.identical_ops,
            if report.is_identical() {
                "identical"
            } else {
                "DIFFERENT"
            }
        );
        if !report.is_identical() {
            failures.push(format!(
                "nix-{}/{}:\n{report}",
                series(version),
                scenario.name
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn nix_2_8_scenarios_recorded_again_diff_as_identical() {
    recorded_again_is_identical(NixVersion::V2_8);
}

#[test]
fn nix_2_26_scenarios_recorded_again_diff_as_identical() {
    recorded_again_is_identical(NixVersion::V2_26);
}

#[test]
fn nix_2_34_scenarios_recorded_again_diff_as_identical() {
    recorded_again_is_identical(NixVersion::V2_34);
}
