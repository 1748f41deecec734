//! Serve-protocol connections (`nix-store --serve`) through the session decoder: every command
//! with its upload and reply, decoded with no opaque bytes, re-encoded byte for byte, the same
//! however the bytes are split; commands it cannot know and damaged transfers fall back to
//! opaque bytes that still tile the streams.
//!
//! Real serve sessions of Nix 2.8, 2.26 and 2.34 are covered by the `remote` tests of the cli
//! crate; these connections are built with the codec's own encoders from fixed values.

use nixcap_wire::fuzzing::every_serve_command;
use nixcap_wire::primitives::Writer;
use nixcap_wire::serve::ops::ServeCommand;
use nixcap_wire::session::{Direction, Event, EventKind, Protocol, SessionDecoder};
use nixcap_wire::{Negotiated, ProtocolVersion};

const C: Direction = Direction::ClientToDaemon;
const S: Direction = Direction::DaemonToClient;

fn decode(chunks: &[(Direction, Vec<u8>)]) -> (Vec<Event>, SessionDecoder) {
    SessionDecoder::decode_all(chunks.iter().map(|(d, b)| (*d, b.as_slice())))
}

fn stream(chunks: &[(Direction, Vec<u8>)], direction: Direction) -> Vec<u8> {
    chunks
        .iter()
        .filter(|(d, _)| *d == direction)
        .flat_map(|(_, b)| b.iter().copied())
        .collect()
}

/// Every event re-encodes to its bytes, and the events of each direction tile its stream.
fn check_tiling(chunks: &[(Direction, Vec<u8>)], events: &[Event], negotiated: &Negotiated) {
    for direction in [C, S] {
        let bytes = stream(chunks, direction);
        let mut offset = 0u64;
        let mut rebuilt = Vec::new();
        for event in events.iter().filter(|e| e.direction == direction) {
            assert_eq!(event.offset, offset, "{event:?}");
            offset = event.end();
            let encoded = event.kind.to_bytes(negotiated);
            assert_eq!(
                encoded,
                bytes[event.offset as usize..event.end() as usize],
                "{:?}",
                event.kind
            );
            rebuilt.extend_from_slice(&encoded);
        }
        assert_eq!(rebuilt, bytes, "{direction:?}");
    }
}

#[test]
fn every_command_decodes_without_opaque_bytes_and_re_encodes() {
    for minor in [3u8, 5, 7] {
        let chunks = every_serve_command(minor);
        let (events, decoder) = decode(&chunks);
        assert_eq!(decoder.protocol(), Some(Protocol::Serve));
        assert_eq!(
            decoder.client_version(),
            Some(ProtocolVersion::new(2, minor))
        );
        let undecoded: Vec<_> = events.iter().filter(|e| e.kind.is_undecoded()).collect();
        assert!(undecoded.is_empty(), "2.{minor}: {undecoded:?}");
        let negotiated = decoder.negotiated().cloned().unwrap();
        check_tiling(&chunks, &events, &negotiated);
        let commands: Vec<_> = decoder.ops().iter().map(|op| op.serve).collect();
        let expected: Vec<_> = ServeCommand::ALL
            .into_iter()
            .filter(|c| minor < 6 || *c != ServeCommand::BuildDerivation)
            .map(Some)
            .collect();
        assert_eq!(commands, expected, "2.{minor}");
        assert!(decoder.ops().iter().all(|op| op.ended), "2.{minor}");
        let replies = events
            .iter()
            .filter(|e| matches!(e.kind, EventKind::ServeReply { .. }))
            .count();
        // DumpStorePath and ExportPaths answer with a NAR and an export stream.
        assert_eq!(replies, expected.len() - 2, "2.{minor}");
        assert!(events
            .iter()
            .any(|e| matches!(e.kind, EventKind::ExportData { end: true, .. })));
        assert!(events
            .iter()
            .any(|e| matches!(e.kind, EventKind::NarData { end: true, .. })));
    }
}

#[test]
fn events_do_not_depend_on_how_the_bytes_are_split() {
    let chunks = every_serve_command(7);
    let (whole, _) = decode(&chunks);
    let per_direction = |events: &[Event], d: Direction| -> Vec<Event> {
        events
            .iter()
            .filter(|e| e.direction == d)
            .cloned()
            .collect()
    };
    // One byte at a time, in the order sent.
    let mut decoder = SessionDecoder::new();
    let mut events = Vec::new();
    for (direction, bytes) in &chunks {
        for byte in bytes.chunks(1) {
            decoder.feed(*direction, byte);
            events.extend(decoder.drain_events());
        }
    }
    decoder.finish();
    events.extend(decoder.drain_events());
    for d in [C, S] {
        assert_eq!(per_direction(&events, d), per_direction(&whole, d), "{d:?}");
    }
    // The client's whole stream first, then the server's, each cut in two at every offset.
    let client = stream(&chunks, C);
    let server = stream(&chunks, S);
    for cut in (0..client.len()).step_by(7) {
        let split = vec![
            (C, client[..cut].to_vec()),
            (C, client[cut..].to_vec()),
            (S, server[..cut.min(server.len())].to_vec()),
            (S, server[cut.min(server.len())..].to_vec()),
        ];
        let (events, _) = decode(&split);
        for d in [C, S] {
            assert_eq!(
                per_direction(&events, d),
                per_direction(&whole, d),
                "cut {cut} {d:?}"
            );
        }
    }
}

#[test]
fn an_unknown_command_makes_the_rest_opaque_and_says_where() {
    let mut chunks = every_serve_command(7);
    chunks.truncate(4); // Both hellos and QueryValidPaths.
    let mut w = Writer::new();
    w.u64(77).u64(1).u64(2);
    chunks.push((C, w.into_bytes()));
    chunks.push((S, b"stray server bytes".to_vec()));
    let (events, decoder) = decode(&chunks);
    let negotiated = decoder.negotiated().cloned().unwrap();
    check_tiling(&chunks, &events, &negotiated);
    let opaque: Vec<&Event> = events.iter().filter(|e| e.kind.is_undecoded()).collect();
    assert_eq!(opaque.len(), 2, "{opaque:?}");
    let EventKind::Opaque { reason, .. } = &opaque[0].kind else {
        panic!("{opaque:?}")
    };
    assert!(reason.contains("unknown serve command 77"), "{reason}");
    assert_eq!(opaque[0].direction, C);
    assert_eq!(opaque[1].direction, S);
}

#[test]
fn a_connection_cut_mid_nar_is_truncated_and_tiles() {
    let mut chunks = every_serve_command(7);
    // The last client chunk is AddToStoreNar with its NAR: drop the NAR's last 9 bytes and the
    // reply.
    chunks.pop();
    let last = chunks.last_mut().unwrap();
    last.1.truncate(last.1.len() - 9);
    let (events, decoder) = decode(&chunks);
    let negotiated = decoder.negotiated().cloned().unwrap();
    check_tiling(&chunks, &events, &negotiated);
    let last_client = events.iter().rev().find(|e| e.direction == C).unwrap();
    assert!(last_client.kind.is_undecoded(), "{last_client:?}");
}

#[test]
fn a_worker_connection_is_not_taken_for_a_serve_one() {
    let mut w = Writer::new();
    w.u64(0x6e69_7863).u64(0x122);
    let (_, decoder) = decode(&[(C, w.into_bytes())]);
    assert_eq!(decoder.protocol(), Some(Protocol::Worker));
}

#[test]
fn arbitrary_bytes_after_a_serve_hello_never_panic_and_tile() {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for round in 0..200 {
        let mut chunks = every_serve_command(7);
        for (_, bytes) in chunks.iter_mut().skip(2) {
            for _ in 0..(next() % 4) {
                if !bytes.is_empty() {
                    let at = (next() as usize) % bytes.len();
                    bytes[at] = next() as u8;
                }
            }
        }
        let (events, decoder) = decode(&chunks);
        let negotiated = decoder
            .negotiated()
            .cloned()
            .unwrap_or_else(|| panic!("round {round}"));
        check_tiling(&chunks, &events, &negotiated);
    }
}

#[test]
fn a_damaged_export_stream_is_reported_alike_however_its_bytes_arrive() {
    let mut chunks = every_serve_command(7);
    // ExportPaths' reply: after the NAR, the export magic and then the path's length, made
    // absurd.
    let (index, at) = chunks
        .iter()
        .enumerate()
        .filter(|(_, (d, _))| *d == S)
        .find_map(|(i, (_, bytes))| {
            bytes
                .windows(4)
                .position(|w| w == b"NIXE")
                .map(|at| (i, at))
        })
        .expect("an export stream from the server");
    chunks[index].1[at + 8..at + 16].copy_from_slice(&u64::MAX.to_le_bytes());
    let (whole, _) = decode(&chunks);
    let reason_of = |events: &[Event]| -> String {
        events
            .iter()
            .filter(|e| e.direction == S)
            .find_map(|e| match &e.kind {
                EventKind::Opaque { reason, .. } => Some(reason.clone()),
                _ => None,
            })
            .expect("the damage is reported")
    };
    let reason = reason_of(&whole);
    assert!(
        reason.starts_with("the export stream starting at offset "),
        "{reason}"
    );
    // Byte by byte, and each side whole with the server first: the same events.
    let mut decoder = SessionDecoder::new();
    let mut events = Vec::new();
    for (direction, bytes) in &chunks {
        for byte in bytes.chunks(1) {
            decoder.feed(*direction, byte);
            events.extend(decoder.drain_events());
        }
    }
    decoder.finish();
    events.extend(decoder.drain_events());
    let server_first = vec![(S, stream(&chunks, S)), (C, stream(&chunks, C))];
    let (reordered, _) = decode(&server_first);
    for other in [&events, &reordered] {
        let of = |events: &[Event]| -> Vec<Event> {
            events
                .iter()
                .filter(|e| e.direction == S)
                .cloned()
                .collect()
        };
        assert_eq!(of(other), of(&whole));
    }
}
