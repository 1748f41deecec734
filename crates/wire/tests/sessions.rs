//! Real client↔daemon connections (`testdata/real-sessions`, recorded from
//! Nix 2.8.0, 2.26.3 and 2.34.8): every connection decodes completely,
//! with its events tiling both byte streams and re-encoding to them,
//! except where a connection really went wrong, and those are checked
//! precisely.

mod session_support;

use std::collections::BTreeMap;

use nixcap_wire::handshake::Trust;
use nixcap_wire::ops::Op;
use nixcap_wire::session::{Direction, Event, EventKind, SessionDecoder};
use nixcap_wire::stderr::StderrMessage;
use nixcap_wire::ProtocolVersion;
use session_support::*;

const C: Direction = Direction::ClientToDaemon;
const D: Direction = Direction::DaemonToClient;

/// What one session file decoded to.
struct FileResult {
    connections: Vec<(Vec<Event>, SessionDecoder)>,
    ops: BTreeMap<String, usize>,
}

fn decode_file(name: &str, n_connections: usize) -> FileResult {
    let connections = load_session(name);
    assert_eq!(connections.len(), n_connections, "{name}: connections");
    let mut ops = BTreeMap::new();
    let mut decoded = Vec::new();
    let mut n_undecoded = 0;
    for connection in &connections {
        let (events, decoder) = decode_checked(connection);
        for record in decoder.ops() {
            let name = record.op.map_or_else(
                || format!("op {}", record.op_word),
                |op| op.name().to_string(),
            );
            *ops.entry(name).or_insert(0) += 1;
        }
        n_undecoded += events.iter().filter(|e| e.kind.is_undecoded()).count();
        decoded.push((events, decoder));
    }
    let total: usize = connections.iter().map(Connection::len).sum();
    println!(
        "{name}: {} connections, {total} bytes, {n_undecoded} undecoded events; ops: {ops:?}",
        connections.len()
    );
    FileResult {
        connections: decoded,
        ops,
    }
}

/// Every connection decodes with no opaque or truncated byte, at the
/// expected version, with the expected daemon.
fn assert_clean(result: &FileResult, version: u8, daemon: &str) {
    for (index, (events, decoder)) in result.connections.iter().enumerate() {
        let undecoded: Vec<String> = events
            .iter()
            .filter(|e| e.kind.is_undecoded())
            .map(line)
            .collect();
        assert!(undecoded.is_empty(), "connection {index}: {undecoded:?}");
        assert_eq!(
            decoder.negotiated().map(|n| n.version),
            Some(ProtocolVersion::new(1, version))
        );
        assert!(decoder.negotiated().is_some_and(|n| n.features.is_empty()));
        assert_eq!(
            decoder
                .daemon_nix_version()
                .map(|v| v.to_string())
                .as_deref(),
            Some(daemon)
        );
        assert_eq!(decoder.trust(), (version >= 35).then_some(Trust::Trusted));
    }
}

/// The ops the README lists for the CLI scenario set.
fn assert_cli_ops(result: &FileResult) {
    for op in [
        "SetOptions",
        "QueryPathInfo",
        "AddToStore",
        "IsValidPath",
        "QueryMissing",
        "BuildPaths",
        "AddTempRoot",
        "QueryDerivationOutputMap",
        "CollectGarbage",
        "AddIndirectRoot",
        "AddToStoreNar",
        "EnsurePath",
        "FindRoots",
        "QueryReferrers",
        "AddMultipleToStore",
        "BuildPathsWithResults",
        "OptimiseStore",
        "VerifyStore",
        "QueryValidPaths",
    ] {
        assert!(result.ops.contains_key(op), "{op} in {:?}", result.ops);
    }
    // Failed builds end their op with STDERR_ERROR and no reply.
    let failed_builds = result
        .connections
        .iter()
        .flat_map(|(events, decoder)| {
            events.iter().filter(move |e| match &e.kind {
                EventKind::Stderr {
                    seq: Some(seq),
                    message: StderrMessage::Error(_),
                } => decoder.ops()[*seq as usize].op == Some(Op::BuildPaths),
                _ => false,
            })
        })
        .count();
    assert!(failed_builds > 0, "a failing build is in the scenario set");
}

#[test]
fn nix_2_8_0_decodes_completely() {
    let result = decode_file("nix-2.8.0.nxsess.zst", 76);
    assert_clean(&result, 34, "2.8.0");
    assert_cli_ops(&result);
}

#[test]
fn nix_2_26_3_decodes_completely() {
    let result = decode_file("nix-2.26.3.nxsess.zst", 77);
    assert_clean(&result, 38, "2.26.3");
    assert_cli_ops(&result);
}

#[test]
fn nix_2_34_8_decodes_completely() {
    let result = decode_file("nix-2.34.8.nxsess.zst", 77);
    assert_clean(&result, 38, "2.34.8");
    assert_cli_ops(&result);
}

#[test]
fn client_2_8_0_with_daemon_2_34_8_decodes_completely() {
    let result = decode_file("client-2.8.0-daemon-2.34.8.nxsess.zst", 76);
    assert_clean(&result, 34, "2.34.8");
    assert_cli_ops(&result);
}

#[test]
fn client_2_34_8_with_daemon_2_8_0_decodes_completely() {
    let result = decode_file("client-2.34.8-daemon-2.8.0.nxsess.zst", 77);
    assert_clean(&result, 34, "2.8.0");
    assert_cli_ops(&result);
}

/// The events of op `seq` in one direction, as transcript lines.
fn op_lines(events: &[Event], seq: u64, direction: Direction) -> Vec<String> {
    let of_op: Vec<Event> = events
        .iter()
        .filter(|e| e.kind.seq() == Some(seq))
        .cloned()
        .collect();
    transcript(&of_op, direction)
}

/// Daemon messages outside any op.
fn out_of_op(events: &[Event]) -> Vec<String> {
    let outside: Vec<Event> = events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::Stderr { seq: None, .. }))
        .cloned()
        .collect();
    transcript(&outside, D)
}

fn find_op(result: &FileResult, op_word: u64) -> Vec<(usize, u64)> {
    result
        .connections
        .iter()
        .enumerate()
        .flat_map(|(index, (_, decoder))| {
            decoder
                .ops()
                .iter()
                .filter(move |r| r.op_word == op_word)
                .map(move |r| (index, r.seq))
        })
        .collect()
}

/// What the probe connections must show, on every daemon version.
fn check_probe(name: &str, n_connections: usize, version: u8, daemon: &str) -> FileResult {
    let result = decode_file(name, n_connections);
    let unknown = find_op(&result, 99);
    let clear_failed = find_op(&result, 25);
    assert_eq!((unknown.len(), clear_failed.len()), (1, 1));

    for (index, (events, decoder)) in result.connections.iter().enumerate() {
        assert_eq!(decoder.negotiated().map(|n| n.version.minor), Some(version));
        assert_eq!(
            decoder
                .daemon_nix_version()
                .map(|v| v.to_string())
                .as_deref(),
            Some(daemon)
        );
        let undecoded: Vec<&Event> = events.iter().filter(|e| e.kind.is_undecoded()).collect();
        if index == unknown[0].0 || index == clear_failed[0].0 {
            // The client's request cannot be decoded; nothing else is lost.
            assert_eq!(undecoded.len(), 1, "connection {index}");
            let opaque = undecoded[0];
            assert_eq!(opaque.direction, C);
            let EventKind::Opaque { reason, data } = &opaque.kind else {
                panic!("connection {index}: {opaque:?}");
            };
            let seq = if index == unknown[0].0 {
                unknown[0].1
            } else {
                clear_failed[0].1
            };
            // The opaque bytes start at the op word and run to the end.
            assert_eq!(opaque.end(), decoder.decoded_len(C));
            if index == unknown[0].0 {
                // Unknown op 99: no layout to decode by.
                assert_eq!(data.as_bytes(), 99u64.to_le_bytes());
                assert!(
                    reason.starts_with("unknown operation 99 at offset"),
                    "{reason}"
                );
            } else {
                // ClearFailedPaths (25) takes a path *set* in its 1.x layout;
                // the probe client sent a bare path, which is not one.
                assert_eq!(&data.as_bytes()[..8], 25u64.to_le_bytes());
                assert!(
                    reason.starts_with("the ClearFailedPaths request at offset"),
                    "{reason}"
                );
            }
            // Every daemon refuses the op by number: fatal, two errors.
            assert_eq!(
                op_lines(events, seq, D),
                ["D>C stderr #".to_string() + &seq.to_string() + " error"]
            );
            assert_eq!(out_of_op(events), ["D>C stderr - error"]);
        } else {
            let lines: Vec<String> = undecoded.iter().map(|e| line(e)).collect();
            assert!(lines.is_empty(), "connection {index}: {lines:?}");
        }
    }

    // QueryFailedPaths (24) decodes in its 1.x layout; the daemon refuses
    // it fatally.
    let failed = find_op(&result, 24);
    assert_eq!(failed.len(), 1);
    let (index, seq) = failed[0];
    let events = &result.connections[index].0;
    assert_eq!(
        op_lines(events, seq, C),
        [format!("C>D request #{seq} QueryFailedPaths")]
    );
    assert_eq!(
        op_lines(events, seq, D),
        [format!("D>C stderr #{seq} error")]
    );
    assert_eq!(out_of_op(events), ["D>C stderr - error"]);

    // NarFromPath: once with a NAR, once failing.
    let nar_from_path = find_op(&result, 38);
    assert_eq!(nar_from_path.len(), 2);
    let (index, seq) = nar_from_path[0];
    let lines = op_lines(&result.connections[index].0, seq, D);
    assert_eq!(
        lines[..2],
        [
            format!("D>C stderr #{seq} last"),
            format!("D>C reply #{seq} NarFromPath")
        ]
    );
    assert!(
        lines[2].starts_with(&format!("D>C nar #{seq} ")) && lines[2].ends_with("nodes=1 end=true"),
        "{lines:?}"
    );

    result
}

/// ImportPaths (sent to 2.8 and 2.26 only) answers its STDERR_READs with
/// an export stream, whose record the payload decoder reads.
fn check_import_paths(result: &FileResult) {
    let import = find_op(result, 27);
    assert_eq!(import.len(), 1);
    let (index, seq) = import[0];
    let events = &result.connections[index].0;
    let lines = op_lines(events, seq, C);
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with(&format!("C>D read-answer #{seq}"))),
        "{lines:?}"
    );
    let records = events
        .iter()
        .flat_map(|e| match &e.kind {
            EventKind::ReadAnswer { payload, .. } => payload.clone(),
            _ => Vec::new(),
        })
        .filter(|item| matches!(item, nixcap_wire::session::PayloadItem::ExportRecord { .. }))
        .count();
    assert_eq!(records, 1);
    let reads = op_lines(events, seq, D)
        .iter()
        .filter(|l| l.ends_with(" read"))
        .count();
    let answers = lines.iter().filter(|l| l.contains("read-answer")).count();
    assert_eq!(reads, answers);
}

/// The failed NarFromPath: after the NAR header on 2.8 and 2.26, at once
/// on 2.34; the op's error, then the connection's.
fn check_failed_nar_from_path(result: &FileResult, header_first: bool) {
    let (index, seq) = find_op(result, 38)[1];
    let events = &result.connections[index].0;
    let mut expected = vec![
        format!("D>C stderr #{seq} last"),
        format!("D>C reply #{seq} NarFromPath"),
    ];
    if header_first {
        expected.push(format!("D>C nar #{seq} 24B nodes=0 end=false"));
    }
    expected.push(format!("D>C stderr #{seq} error"));
    assert_eq!(op_lines(events, seq, D), expected);
    assert_eq!(out_of_op(events), ["D>C stderr - error"]);
}

/// QueryRealisation: 2.8 and 2.26 die without a word (a clean end of the
/// connection, not an error of the decoder); 2.34 replies.
fn check_query_realisation(result: &FileResult, replies: bool) {
    let found = find_op(result, 43);
    assert_eq!(found.len(), 1);
    let (index, seq) = found[0];
    let (events, decoder) = &result.connections[index];
    assert_eq!(
        op_lines(events, seq, C),
        [format!("C>D request #{seq} QueryRealisation")]
    );
    if replies {
        assert_eq!(
            op_lines(events, seq, D),
            [
                format!("D>C stderr #{seq} last"),
                format!("D>C reply #{seq} QueryRealisation")
            ]
        );
    } else {
        assert!(op_lines(events, seq, D).is_empty());
        assert!(!decoder.ops()[seq as usize].ended);
        assert_eq!(
            events.last().map(|e| e.direction),
            Some(C),
            "nothing after the request"
        );
    }
}

#[test]
fn probe_nix_2_8_0_decodes_except_the_deliberately_bad_requests() {
    let result = check_probe("probe-nix-2.8.0.nxsess.zst", 16, 34, "2.8.0");
    check_import_paths(&result);
    check_failed_nar_from_path(&result, true);
    check_query_realisation(&result, false);
    // CollectGarbage right after ExportPath: the 2.8 worker closed the
    // connection without a reply.
    let export = find_op(&result, 16);
    let (index, seq) = export[0];
    let (events, decoder) = &result.connections[index];
    let gc = &decoder.ops()[seq as usize + 1];
    assert_eq!(gc.op, Some(Op::CollectGarbage));
    assert!(op_lines(events, gc.seq, D).is_empty());
    let writes = events
        .iter()
        .filter(|e| matches!(&e.kind, EventKind::Stderr { seq: Some(s), message: StderrMessage::Write { .. } } if *s == seq))
        .count();
    assert!(
        writes > 20,
        "ExportPath sends its record in many STDERR_WRITEs"
    );
}

#[test]
fn probe_nix_2_26_3_decodes_except_the_deliberately_bad_requests() {
    let result = check_probe("probe-nix-2.26.3.nxsess.zst", 16, 38, "2.26.3");
    check_import_paths(&result);
    check_failed_nar_from_path(&result, true);
    check_query_realisation(&result, false);
}

#[test]
fn probe_nix_2_34_8_decodes_except_the_deliberately_bad_requests() {
    let result = check_probe("probe-nix-2.34.8.nxsess.zst", 15, 38, "2.34.8");
    check_failed_nar_from_path(&result, false);
    check_query_realisation(&result, true);
    // 2.34 refuses ExportPath (and the ops it removed) fatally.
    let (index, seq) = find_op(&result, 16)[0];
    let events = &result.connections[index].0;
    assert_eq!(
        op_lines(events, seq, D),
        [format!("D>C stderr #{seq} error")]
    );
    assert_eq!(out_of_op(events), ["D>C stderr - error"]);
}
