//! The streaming contract: feeding a connection's bytes split at any
//! offsets gives each direction the same events as feeding them whole.
//! Checked on every real connection (every offset for the small ones, a
//! fixed sample of offsets for the large ones, and always one byte at a
//! time) and on every synthetic scenario at every offset.

mod session_support;

use nixcap_wire::session::{Direction, Event, SessionDecoder};
use session_support::*;

const C: Direction = Direction::ClientToDaemon;
const D: Direction = Direction::DaemonToClient;

/// Connections up to this size are split at every offset.
const EVERY_OFFSET_UP_TO: usize = 2048;
/// Split points tried in larger connections.
const SAMPLED_OFFSETS: usize = 48;

/// The connection's bytes in order, with same-direction chunks merged and
/// a cut added at each global offset in `cuts` (sorted).
fn rechunk(connection: &Connection, cuts: &[usize]) -> Vec<(Direction, Vec<u8>)> {
    let mut out: Vec<(Direction, Vec<u8>)> = Vec::new();
    let mut position = 0;
    let mut next_cut = cuts.iter().copied().peekable();
    for (direction, bytes) in &connection.chunks {
        let mut rest = bytes.as_slice();
        while !rest.is_empty() {
            while next_cut.peek().is_some_and(|&cut| cut <= position) {
                next_cut.next();
                out.push((*direction, Vec::new()));
            }
            let take = match next_cut.peek() {
                Some(&cut) => (cut - position).min(rest.len()),
                None => rest.len(),
            };
            match out.last_mut() {
                Some((last, buf)) if *last == *direction => buf.extend_from_slice(&rest[..take]),
                _ => out.push((*direction, rest[..take].to_vec())),
            }
            position += take;
            rest = &rest[take..];
        }
    }
    out
}

fn decode_chunks(chunks: &[(Direction, Vec<u8>)]) -> Vec<Event> {
    SessionDecoder::decode_all(chunks.iter().map(|(d, b)| (*d, b.as_slice()))).0
}

fn byte_at_a_time(connection: &Connection) -> Vec<Event> {
    let mut decoder = SessionDecoder::new();
    let mut events = Vec::new();
    for (direction, bytes) in &connection.chunks {
        for byte in bytes.chunks(1) {
            decoder.feed(*direction, byte);
            events.extend(decoder.drain_events());
        }
    }
    decoder.finish();
    events.extend(decoder.drain_events());
    events
}

fn assert_same(reference: &[Event], other: &[Event], what: &str) {
    for direction in [C, D] {
        let (a, b) = (of(reference, direction), of(other, direction));
        if a != b {
            let first = a
                .iter()
                .zip(&b)
                .position(|(x, y)| x != y)
                .unwrap_or(a.len().min(b.len()));
            panic!(
                "{what}: {direction:?} events differ at event {first}: {:?} vs {:?}",
                a.get(first).map(line),
                b.get(first).map(line)
            );
        }
    }
}

/// Deterministic offsets spread over `1..len`.
fn sample_offsets(len: usize, count: usize, seed: u64) -> Vec<usize> {
    let mut state = seed | 1;
    let mut offsets: Vec<usize> = (0..count)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            1 + (state >> 33) as usize % len.saturating_sub(1).max(1)
        })
        .collect();
    offsets.sort_unstable();
    offsets
}

fn check_connection(connection: &Connection, what: &str, every_offset_up_to: usize) {
    let (reference, _) = decode(connection);
    assert_same(
        &reference,
        &decode_chunks(&rechunk(connection, &[])),
        &format!("{what}, runs merged"),
    );
    assert_same(
        &reference,
        &byte_at_a_time(connection),
        &format!("{what}, one byte at a time"),
    );
    let len = connection.len();
    let offsets: Vec<usize> = if len <= every_offset_up_to {
        (1..len).collect()
    } else {
        sample_offsets(len, SAMPLED_OFFSETS, len as u64)
    };
    for offset in offsets {
        let events = decode_chunks(&rechunk(connection, &[offset]));
        assert_same(&reference, &events, &format!("{what}, split at {offset}"));
    }
}

fn check_file(name: &str) {
    for (index, connection) in load_session(name).iter().enumerate() {
        check_connection(
            connection,
            &format!("{name} connection {index}"),
            EVERY_OFFSET_UP_TO,
        );
    }
}

#[test]
fn nix_2_8_0_splits_anywhere() {
    check_file("nix-2.8.0.nxsess.zst");
}

#[test]
fn nix_2_26_3_splits_anywhere() {
    check_file("nix-2.26.3.nxsess.zst");
}

#[test]
fn nix_2_34_8_splits_anywhere() {
    check_file("nix-2.34.8.nxsess.zst");
}

#[test]
fn client_2_8_0_daemon_2_34_8_splits_anywhere() {
    check_file("client-2.8.0-daemon-2.34.8.nxsess.zst");
}

#[test]
fn client_2_34_8_daemon_2_8_0_splits_anywhere() {
    check_file("client-2.34.8-daemon-2.8.0.nxsess.zst");
}

#[test]
fn probe_sessions_split_anywhere() {
    for name in [
        "probe-nix-2.8.0.nxsess.zst",
        "probe-nix-2.26.3.nxsess.zst",
        "probe-nix-2.34.8.nxsess.zst",
    ] {
        check_file(name);
    }
}

#[test]
fn synthetic_sessions_split_at_every_offset() {
    for (name, script) in scenarios::all() {
        let connection = script.connection();
        // The big NarFromPath scenario is sampled; the others are small.
        check_connection(&connection, &name, 8192);
    }
}

#[test]
fn rechunking_keeps_every_byte_in_order() {
    let connection = Connection {
        chunks: vec![
            (C, b"abc".to_vec()),
            (C, b"de".to_vec()),
            (D, b"xy".to_vec()),
            (C, b"f".to_vec()),
        ],
    };
    assert_eq!(
        rechunk(&connection, &[1, 4, 5]),
        vec![
            (C, b"a".to_vec()),
            (C, b"bcd".to_vec()),
            (C, b"e".to_vec()),
            (D, b"xy".to_vec()),
            (C, b"f".to_vec()),
        ]
    );
}
