//! Synthetic connections built from the crate's encoders and Nix's golden
//! vectors: every protocol version's handshake, the upload and download
//! paths the real transcripts lack, and the ways a connection ends badly.
//! Each is decoded with tiling and re-encoding checked, then its events
//! are compared with what the protocol reference says must happen.

mod session_support;

use nixcap_wire::handshake::{HandshakePiece, Trust};
use nixcap_wire::nar::{NarEvent, NarNodeKind};
use nixcap_wire::ops::{Op, Request};
use nixcap_wire::session::{Direction, EventKind, Limits, PayloadItem, SessionDecoder};
use nixcap_wire::stderr::StderrMessage;
use nixcap_wire::ProtocolVersion;
use session_support::scenarios::{self, basic};
use session_support::*;

const C: Direction = Direction::ClientToDaemon;
const D: Direction = Direction::DaemonToClient;

/// The transcript of a direction after the setup ops (#0 SetOptions and
/// #1 IsValidPath) and the handshake.
fn after_setup(events: &[nixcap_wire::session::Event], direction: Direction) -> Vec<String> {
    let rest: Vec<_> = events
        .iter()
        .filter(|e| {
            !matches!(e.kind, EventKind::Handshake { .. })
                && !matches!(e.kind.seq(), Some(0) | Some(1))
        })
        .cloned()
        .collect();
    transcript(&rest, direction)
}

fn payload_items(events: &[nixcap_wire::session::Event]) -> Vec<PayloadItem> {
    events
        .iter()
        .flat_map(|e| match &e.kind {
            EventKind::FramedData { payload, .. }
            | EventKind::FramedEnd { payload, .. }
            | EventKind::ReadAnswer { payload, .. } => payload.clone(),
            _ => Vec::new(),
        })
        .collect()
}

fn no_undecoded(events: &[nixcap_wire::session::Event]) {
    let undecoded: Vec<String> = events
        .iter()
        .filter(|e| e.kind.is_undecoded())
        .map(line)
        .collect();
    assert!(undecoded.is_empty(), "{undecoded:?}");
}

#[test]
fn every_version_from_1_10_to_1_38_has_its_handshake_pieces() {
    for minor in 10..=38u8 {
        let (events, decoder) = decode_checked(&basic(minor, minor).connection());
        no_undecoded(&events);
        let pieces = |direction| -> Vec<String> {
            transcript(&events, direction)
                .into_iter()
                .filter(|l| l.contains("handshake"))
                .collect()
        };
        let mut client = vec!["C>D handshake clientHello"];
        let mut daemon = vec!["D>C handshake daemonHello"];
        if minor >= 38 {
            client.push("C>D handshake clientFeatures");
            daemon.push("D>C handshake daemonFeatures");
        }
        if minor >= 14 {
            client.push("C>D handshake clientAffinity");
        }
        if minor >= 11 {
            client.push("C>D handshake clientReserveSpace");
        }
        if minor >= 33 {
            daemon.push("D>C handshake daemonNixVersion");
        }
        if minor >= 35 {
            daemon.push("D>C handshake daemonTrust");
        }
        daemon.extend(["D>C handshake daemonStderr", "D>C handshake daemonStderr"]);
        assert_eq!(pieces(C), client, "client at 1.{minor}");
        assert_eq!(pieces(D), daemon, "daemon at 1.{minor}");
        let negotiated = decoder.negotiated().unwrap();
        assert_eq!(negotiated.version, ProtocolVersion::new(1, minor));
        assert!(
            negotiated.features.is_empty(),
            "the two sides offer different features"
        );
        assert_eq!(decoder.daemon_nix_version().is_some(), minor >= 33);
        assert_eq!(decoder.trust(), (minor >= 35).then_some(Trust::Trusted));
        assert_eq!(
            decoder.daemon_features().map(<[String]>::to_vec),
            (minor >= 38).then(|| vec!["daemon-feature".to_string()])
        );
        assert_eq!(
            after_setup(&events, C).len() + after_setup(&events, D).len(),
            0,
            "only the setup ops at 1.{minor}"
        );
        assert_eq!(decoder.ops().len(), 2);
    }
}

#[test]
fn mixed_versions_negotiate_the_lower_one() {
    for (client, daemon) in [(10, 38), (38, 10), (25, 38), (38, 33), (35, 38), (38, 37)] {
        let (events, decoder) = decode_checked(&basic(client, daemon).connection());
        no_undecoded(&events);
        assert_eq!(
            decoder.client_version(),
            Some(ProtocolVersion::new(1, client))
        );
        assert_eq!(
            decoder.daemon_version(),
            Some(ProtocolVersion::new(1, daemon))
        );
        assert_eq!(
            decoder.negotiated().unwrap().version.minor,
            client.min(daemon)
        );
    }
}

#[test]
fn framed_add_to_store_reports_the_nar_inside_the_chunks() {
    let (events, _) = decode_checked(&scenarios::framed_add_to_store().connection());
    no_undecoded(&events);
    let client = after_setup(&events, C);
    assert_eq!(client[0], "C>D request #2 AddToStore");
    assert_eq!(
        client
            .iter()
            .filter(|l| l.contains("framed-header #2 100"))
            .count(),
        8
    );
    assert_eq!(client[client.len() - 2], "C>D framed-end #2 items=0");
    assert_eq!(client[client.len() - 1], "C>D request #3 IsValidPath");
    let items = payload_items(&events);
    let nodes: Vec<String> = items
        .iter()
        .filter_map(|item| match item {
            PayloadItem::Nar {
                nar: NarEvent::Node(node),
            } => Some(node.path.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(nodes, ["", "empty-subdir", "emptyfile", "hello", "link"]);
    assert_eq!(items.last(), Some(&PayloadItem::NarEnd { len: 856 }));
    assert_eq!(
        after_setup(&events, D),
        [
            "D>C stderr #2 next",
            "D>C stderr #2 last",
            "D>C reply #2 AddToStore",
            "D>C stderr #3 last",
            "D>C reply #3 IsValidPath"
        ]
    );
}

#[test]
fn inline_add_to_store_below_1_25_ends_where_the_nar_ends() {
    let (events, _) = decode_checked(&scenarios::inline_add_to_store().connection());
    no_undecoded(&events);
    assert_eq!(
        after_setup(&events, C),
        [
            "C>D request #2 AddToStore",
            "C>D nar #2 2416B nodes=14 end=true",
            "C>D request #3 IsValidPath"
        ]
    );
}

#[test]
fn add_to_store_nar_uses_the_upload_of_its_version() {
    let (events, _) = decode_checked(&scenarios::add_to_store_nar(20).connection());
    no_undecoded(&events);
    assert_eq!(
        after_setup(&events, C),
        [
            "C>D request #2 AddToStoreNar",
            "C>D nar #2 856B nodes=5 end=true",
            "C>D request #3 IsValidPath"
        ]
    );

    let (events, _) = decode_checked(&scenarios::add_to_store_nar(21).connection());
    no_undecoded(&events);
    let client = after_setup(&events, C);
    assert_eq!(
        client
            .iter()
            .filter(|l| l.starts_with("C>D read-answer #2"))
            .count(),
        3
    );
    assert_eq!(client.last().unwrap(), "C>D request #3 IsValidPath");
    assert_eq!(
        payload_items(&events).last(),
        Some(&PayloadItem::NarEnd { len: 856 })
    );
    let reads = after_setup(&events, D)
        .iter()
        .filter(|l| l.ends_with("read"))
        .count();
    assert_eq!(reads, 3, "one answer per STDERR_READ");

    let (events, _) = decode_checked(&scenarios::add_to_store_nar(23).connection());
    no_undecoded(&events);
    assert!(after_setup(&events, C).contains(&"C>D framed-end #2 items=0".to_string()));
    assert_eq!(
        payload_items(&events).last(),
        Some(&PayloadItem::NarEnd { len: 856 })
    );
}

#[test]
fn add_multiple_to_store_lists_each_path_info_and_nar() {
    let (events, _) = decode_checked(&scenarios::add_multiple_to_store().connection());
    no_undecoded(&events);
    let summary: Vec<String> = payload_items(&events)
        .iter()
        .filter_map(|item| match item {
            PayloadItem::PathCount { count } => Some(format!("count {count}")),
            PayloadItem::PathInfo { info } => Some(format!("info {}", info.path.as_str())),
            PayloadItem::NarEnd { len } => Some(format!("nar {len}")),
            PayloadItem::Undecodable { reason } => Some(format!("undecodable {reason}")),
            _ => None,
        })
        .collect();
    assert_eq!(
        summary,
        [
            "count 3",
            "info /nix/store/g1w7hy3qg1w7hy3qg1w7hy3qg1w7hy3q-bar",
            "nar 856",
            "info /nix/store/g1w7hy3qg1w7hy3qg1w7hy3qg1w7hy3q-bar",
            "nar 96",
            "info /nix/store/n5wkd9frr45pa74if5gpz9j7mifg27fh-foo",
            "nar 1928",
        ]
    );
    assert_eq!(
        after_setup(&events, D),
        [
            "D>C stderr #2 startActivity",
            "D>C stderr #2 stopActivity",
            "D>C stderr #2 last",
            "D>C reply #2 AddMultipleToStore"
        ]
    );
}

#[test]
fn import_paths_answers_follow_the_daemons_reads_and_carry_export_records() {
    let (events, _) = decode_checked(&scenarios::import_paths().connection());
    no_undecoded(&events);
    let records: Vec<String> = payload_items(&events)
        .iter()
        .filter_map(|item| match item {
            PayloadItem::ExportRecord { record } => Some(format!(
                "{} nar={} refs={}",
                record.path,
                record.nar_len,
                record.references.len()
            )),
            _ => None,
        })
        .collect();
    assert_eq!(
        records,
        [
            format!("{} nar=120 refs=1", session_support::script::PATH),
            format!("{} nar=96 refs=1", scenarios::DRV),
        ]
    );
    let client = after_setup(&events, C);
    assert_eq!(
        client.iter().filter(|l| l.contains("read-answer")).count(),
        6
    );
    assert_eq!(
        after_setup(&events, D).last().unwrap(),
        "D>C reply #2 ImportPaths"
    );
}

#[test]
fn nar_from_path_streams_its_nar_in_pieces_after_the_empty_reply() {
    let (events, _) = decode_checked(&scenarios::nar_from_path().connection());
    no_undecoded(&events);
    assert_eq!(
        after_setup(&events, D),
        [
            "D>C stderr #2 last",
            "D>C reply #2 NarFromPath",
            "D>C nar #2 65536B nodes=2 end=false",
            "D>C nar #2 65536B nodes=0 end=false",
            "D>C nar #2 65536B nodes=0 end=false",
            "D>C nar #2 3896B nodes=1 end=true",
            "D>C stderr #3 last",
            "D>C reply #3 IsValidPath",
        ]
    );
    let nodes: Vec<NarNodeKind> = events
        .iter()
        .flat_map(|e| match &e.kind {
            EventKind::NarData { nar, .. } => nar.clone(),
            _ => Vec::new(),
        })
        .filter_map(|event| match event {
            NarEvent::Node(node) => Some(node.kind),
            NarEvent::Issue { .. } => None,
        })
        .collect();
    assert_eq!(
        nodes,
        [
            NarNodeKind::Directory,
            NarNodeKind::Regular {
                executable: true,
                size: 200_000
            },
            NarNodeKind::Regular {
                executable: false,
                size: 1
            },
        ]
    );
}

#[test]
fn nar_from_path_failing_after_the_header_gives_the_op_one_error_and_the_connection_one() {
    let (events, _) = decode_checked(&scenarios::nar_from_path_fails_after_header().connection());
    no_undecoded(&events);
    assert_eq!(
        after_setup(&events, D),
        [
            "D>C stderr #2 last",
            "D>C reply #2 NarFromPath",
            "D>C nar #2 24B nodes=0 end=false",
            "D>C stderr #2 error",
            "D>C stderr - error",
        ]
    );
}

#[test]
fn nar_from_path_failing_at_once_has_no_nar_bytes() {
    let (events, _) = decode_checked(&scenarios::nar_from_path_fails_at_start().connection());
    no_undecoded(&events);
    assert_eq!(
        after_setup(&events, D),
        [
            "D>C stderr #2 last",
            "D>C reply #2 NarFromPath",
            "D>C stderr #2 error",
            "D>C stderr - error"
        ]
    );
}

#[test]
fn an_unknown_op_is_opaque_but_both_errors_decode() {
    let (events, decoder) = decode_checked(&scenarios::unknown_op().connection());
    assert_eq!(after_setup(&events, C), ["C>D opaque"]);
    let opaque = events.iter().find(|e| e.kind.is_undecoded()).unwrap();
    let EventKind::Opaque { reason, data } = &opaque.kind else {
        panic!("not opaque: {opaque:?}");
    };
    assert_eq!(data.as_bytes(), 99u64.to_le_bytes());
    assert_eq!(
        reason,
        &format!(
            "unknown operation 99 at offset {}; the rest of the client's stream cannot be decoded",
            opaque.offset
        )
    );
    assert_eq!(
        after_setup(&events, D),
        ["D>C stderr #2 error", "D>C stderr - error"]
    );
    let record = &decoder.ops()[2];
    assert_eq!((record.op_word, record.op, record.ended), (99, None, true));
}

#[test]
fn a_removed_op_decodes_in_its_old_layout_and_ends_fatally() {
    let (events, decoder) = decode_checked(&scenarios::removed_op().connection());
    no_undecoded(&events);
    assert_eq!(after_setup(&events, C), ["C>D request #2 QueryFailedPaths"]);
    assert_eq!(
        after_setup(&events, D),
        ["D>C stderr #2 error", "D>C stderr - error"]
    );
    assert_eq!(decoder.ops()[2].op, Some(Op::QueryFailedPaths));
}

#[test]
fn a_daemon_dying_mid_op_is_a_clean_end() {
    let (events, decoder) = decode_checked(&scenarios::query_realisation_eof().connection());
    no_undecoded(&events);
    assert_eq!(after_setup(&events, C), ["C>D request #2 QueryRealisation"]);
    assert!(after_setup(&events, D).is_empty());
    assert!(!decoder.ops()[2].ended);
}

#[test]
fn errors_before_1_26_use_the_legacy_layout() {
    let (events, _) = decode_checked(&scenarios::legacy_errors_and_activities().connection());
    no_undecoded(&events);
    let error = events
        .iter()
        .find_map(|e| match &e.kind {
            EventKind::Stderr {
                message: StderrMessage::Error(info),
                ..
            } => Some(info.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(
        serde_json::to_value(&error).unwrap(),
        serde_json::json!({"format": "legacy", "message": "path is not valid", "exitStatus": 1})
    );
    assert_eq!(
        after_setup(&events, D),
        [
            "D>C stderr #2 error",
            "D>C stderr #3 startActivity",
            "D>C stderr #3 result",
            "D>C stderr #3 stopActivity",
            "D>C stderr #3 last",
            "D>C reply #3 IsValidPath",
        ]
    );
}

#[test]
fn a_request_cut_by_the_end_of_the_connection_is_truncated() {
    let (events, _) = decode_checked(&scenarios::cut_mid_request().connection());
    assert_eq!(after_setup(&events, C), ["C>D truncated"]);
    let EventKind::Truncated { reason, data } =
        &events.iter().find(|e| e.kind.is_undecoded()).unwrap().kind
    else {
        panic!("not truncated");
    };
    assert_eq!(data.len(), 26);
    assert!(
        reason.starts_with("the connection ended inside a request"),
        "{reason}"
    );
}

#[test]
fn garbage_in_a_request_turns_the_rest_of_the_client_stream_opaque() {
    let (events, _) = decode_checked(&scenarios::garbage_request().connection());
    let client = after_setup(&events, C);
    assert_eq!(client, ["C>D opaque"]);
    let EventKind::Opaque { reason, .. } =
        &events.iter().find(|e| e.kind.is_undecoded()).unwrap().kind
    else {
        panic!("not opaque");
    };
    assert!(reason.contains("non-zero padding"), "{reason}");
    assert_eq!(after_setup(&events, D), ["D>C stderr #2 error"]);
}

#[test]
fn a_value_larger_than_the_limit_is_opaque_without_being_buffered() {
    let mut script = basic(38, 38);
    script.client(|w| {
        w.u64(1).u64(10_000);
    });
    let limits = Limits {
        max_unit_len: 1000,
        piece_len: 512,
        ..Limits::default()
    };
    let mut decoder = SessionDecoder::with_limits(limits);
    for (direction, bytes) in &script.chunks {
        decoder.feed(*direction, bytes);
    }
    // The string's announced length puts the request over the limit once
    // the limit's worth of bytes is there. From then on the client stream
    // is opaque, passed on in pieces, and less than a piece is kept.
    decoder.feed(C, &[b'x'; 1200]);
    let events: Vec<_> = decoder.drain_events().collect();
    let opaque = events
        .iter()
        .find(|e| e.kind.is_undecoded())
        .unwrap_or_else(|| panic!("{:#?}", events.iter().map(line).collect::<Vec<_>>()));
    let EventKind::Opaque { reason, .. } = &opaque.kind else {
        panic!()
    };
    assert!(
        reason.contains("longer than the decoder's limit of 1000 bytes"),
        "{reason}"
    );
    assert_eq!(opaque.offset, 272);
    assert_eq!(opaque.len, 512);
    assert!(decoder.buffered_len() < limits.piece_len);
    decoder.finish();
    let rest: Vec<_> = decoder.drain_events().collect();
    assert_eq!(rest.iter().map(|e| e.len).sum::<u64>(), 16 + 1200 - 1024);
}

#[test]
fn a_one_gib_upload_streams_in_bounded_memory() {
    let mut script = basic(38, 38);
    script.client(|w| {
        w.u64(7).string("big").string("fixed:sha256").u64(0).u64(0);
    });
    let mut decoder = SessionDecoder::new();
    for (direction, bytes) in &script.chunks {
        decoder.feed(*direction, bytes);
    }
    decoder.drain_events().for_each(drop);
    const GIB: u64 = 1 << 30;
    const CHUNK: usize = 32 * 1024;
    let header = (CHUNK as u64).to_le_bytes();
    let data = vec![0xabu8; CHUNK];
    let mut max_buffered = 0;
    let mut data_bytes = 0u64;
    for _ in 0..GIB / CHUNK as u64 {
        decoder.feed(C, &header);
        // Deliver the chunk in two reads, as a socket might.
        decoder.feed(C, &data[..CHUNK / 3]);
        decoder.feed(C, &data[CHUNK / 3..]);
        max_buffered = max_buffered.max(decoder.buffered_len());
        for event in decoder.drain_events() {
            if let EventKind::FramedData { data, .. } = &event.kind {
                data_bytes += data.len() as u64;
            }
        }
    }
    decoder.feed(C, &0u64.to_le_bytes());
    let events: Vec<_> = decoder.drain_events().collect();
    assert!(matches!(
        events.last().map(|e| &e.kind),
        Some(EventKind::FramedEnd { .. })
    ));
    assert_eq!(data_bytes, GIB);
    assert!(
        max_buffered <= CHUNK,
        "at most one piece is held, not {max_buffered} bytes"
    );
}

#[test]
fn each_directions_events_do_not_depend_on_interleaving() {
    for (name, script) in scenarios::all() {
        let connection = script.connection();
        let (events, _) = decode_checked(&connection);
        let client = connection.stream(C);
        let daemon = connection.stream(D);
        for order in [[C, D], [D, C]] {
            let chunks: Vec<(Direction, &[u8])> = order
                .iter()
                .map(|&d| {
                    (
                        d,
                        if d == C {
                            client.as_slice()
                        } else {
                            daemon.as_slice()
                        },
                    )
                })
                .collect();
            let (other, _) = SessionDecoder::decode_all(chunks);
            for direction in [C, D] {
                assert_eq!(
                    of(&events, direction),
                    of(&other, direction),
                    "{name}: {direction:?} fed {order:?}"
                );
            }
        }
    }
}

#[test]
fn requests_keep_their_decoded_fields() {
    let (events, _) = decode_checked(&scenarios::inline_add_to_store().connection());
    let request = events
        .iter()
        .find_map(|e| match &e.kind {
            EventKind::Request { seq: 2, request } => Some(request.clone()),
            _ => None,
        })
        .unwrap();
    assert!(matches!(*request, Request::AddToStore { ref name, .. } if name == "case"));
    let json = serde_json::to_value(&events[0]).unwrap();
    assert_eq!(json["kind"]["kind"], "handshake");
    assert!(matches!(
        events[0].kind,
        EventKind::Handshake {
            piece: HandshakePiece::ClientHello(_) | HandshakePiece::DaemonHello(_)
        }
    ));
}

/// QueryAllValidPaths answered with `n` paths; returns the script and the
/// length of the reply's last daemon chunk.
fn big_reply(n: u64) -> session_support::script::Script {
    let mut script = basic(38, 38);
    script.client(|w| {
        w.u64(23);
    });
    script.last();
    script.daemon(|w| {
        w.u64(n);
        for i in 0..n {
            w.string(format!("/nix/store/{i:032}-package-{i}"));
        }
    });
    script
}

/// Feeds `script` with its daemon chunks cut into reads of `read_len`, and
/// returns the events decoded before `finish` and those after.
fn feed_in_reads(
    script: &session_support::script::Script,
    read_len: usize,
) -> (
    Vec<nixcap_wire::session::Event>,
    Vec<nixcap_wire::session::Event>,
) {
    let mut decoder = SessionDecoder::new();
    let mut before = Vec::new();
    for (direction, bytes) in &script.chunks {
        for read in bytes.chunks(read_len) {
            decoder.feed(*direction, read);
            before.extend(decoder.drain_events());
        }
    }
    decoder.finish();
    (before, decoder.drain_events().collect())
}

#[test]
fn a_large_reply_in_small_reads_is_decoded_when_its_last_short_read_arrives() {
    let script = big_reply(50_000);
    let reply_len = script.chunks.last().unwrap().1.len();
    assert!(reply_len > 3_000_000 && reply_len % 8192 != 0);
    let (before, after) = feed_in_reads(&script, 8192);
    assert!(
        after.is_empty(),
        "the reply came out as soon as it was complete"
    );
    let (whole, _) = decode_checked(&script.connection());
    assert_eq!(before, whole);
}

#[test]
fn a_large_reply_ending_on_a_full_read_comes_out_at_the_latest_at_the_end() {
    let mut script = big_reply(2);
    // A reply of exactly 88 reads of 4 KiB, made of many small strings so
    // that each try only learns that the next one is missing. Past the try
    // at 256 KiB, the next is due at 320 KiB and then at 400 KiB, beyond
    // the reply, and no read is short, so it comes out at the end.
    let reply = {
        let mut w = nixcap_wire::primitives::Writer::new();
        w.u64(5601);
        for _ in 0..5600 {
            w.string([b'p'; 56]);
        }
        w.string(vec![b'q'; 2032]);
        w.into_bytes()
    };
    assert_eq!(reply.len(), 88 * 4096);
    script.chunks.pop();
    script.chunks.push((D, reply));
    let (before, after) = feed_in_reads(&script, 4096);
    assert!(of(&before, D)
        .iter()
        .all(|e| !matches!(e.kind, EventKind::Reply { seq: 2, .. })));
    assert_eq!(transcript(&after, D), ["D>C reply #2 QueryAllValidPaths"]);
    let (whole, _) = decode_checked(&script.connection());
    let mut all = before;
    all.extend(after);
    assert_eq!(of(&all, D), of(&whole, D));
    assert_eq!(of(&all, C), of(&whole, C));
}
