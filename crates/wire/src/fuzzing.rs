//! Entry points for the fuzz targets in `fuzz/` (behind the `fuzzing`
//! feature), so that each target is one line.
//!
//! These functions panic when a guarantee of the decoders is broken; that
//! is how a fuzzer notices. They never panic on malformed input as such.
//!
//! # Session input format
//!
//! [`fuzz_session`] reads its input as one flag byte and then a list of
//! chunks, each a 2-byte little-endian header (bit 15: direction, 1 for
//! daemon→client; low 15 bits: length) followed by that many bytes (fewer
//! if the input ends first). Flag bit 0 selects tiny [`Limits`] so that the
//! limit paths are reached with small inputs. [`encode_session_input`]
//! writes this format, for seed corpora.

mod serve_seeds;

pub use serve_seeds::every_serve_command;

use crate::nar::{NarOptions, NarParser, NarStatus};
use crate::session::{check_events, Direction, Event, Limits, SessionDecoder};

/// Limits small enough for fuzz inputs to reach them.
pub const TINY_LIMITS: Limits = Limits {
    max_unit_len: 600,
    piece_len: 40,
    max_payload_token_len: 300,
    backoff_from: 64,
};

/// Largest chunk one header can announce.
pub const MAX_CHUNK_LEN: usize = 0x7fff;

/// Splits fuzz input into its flag byte and chunks (see the module docs).
pub fn parse_session_input(data: &[u8]) -> (u8, Vec<(Direction, &[u8])>) {
    let Some((&flags, mut rest)) = data.split_first() else {
        return (0, Vec::new());
    };
    let mut chunks = Vec::new();
    while rest.len() >= 2 {
        let header = u16::from_le_bytes([rest[0], rest[1]]);
        let direction = if header & 0x8000 != 0 {
            Direction::DaemonToClient
        } else {
            Direction::ClientToDaemon
        };
        let len = usize::from(header & 0x7fff).min(rest.len() - 2);
        chunks.push((direction, &rest[2..2 + len]));
        rest = &rest[2 + len..];
    }
    (flags, chunks)
}

/// Writes chunks in the session input format, splitting long ones.
pub fn encode_session_input(flags: u8, chunks: &[(Direction, &[u8])]) -> Vec<u8> {
    let mut out = vec![flags];
    for (direction, bytes) in chunks {
        for piece in bytes.chunks(MAX_CHUNK_LEN) {
            let mut header = piece.len() as u16;
            if *direction == Direction::DaemonToClient {
                header |= 0x8000;
            }
            out.extend_from_slice(&header.to_le_bytes());
            out.extend_from_slice(piece);
        }
    }
    out
}

fn decode(limits: Limits, chunks: &[(Direction, &[u8])]) -> (Vec<Event>, SessionDecoder) {
    let mut decoder = SessionDecoder::with_limits(limits);
    let mut events = Vec::new();
    for (direction, bytes) in chunks {
        decoder.feed(*direction, bytes);
        events.extend(decoder.drain_events());
    }
    decoder.finish();
    events.extend(decoder.drain_events());
    (events, decoder)
}

fn of(events: &[Event], direction: Direction) -> Vec<&Event> {
    events.iter().filter(|e| e.direction == direction).collect()
}

/// Decodes the chunks as given, checks tiling and re-encoding, and checks
/// that feeding each direction whole (client first, then daemon first)
/// gives the same events for each direction.
pub fn fuzz_session(data: &[u8]) {
    let (flags, chunks) = parse_session_input(data);
    let limits = if flags & 1 != 0 {
        TINY_LIMITS
    } else {
        Limits::default()
    };
    check_session(limits, &chunks);
}

/// [`fuzz_session`] for the serve protocol: the chunks follow both hellos
/// of a serve connection, at version `2.(flags >> 1 & 7)`, so that the
/// fuzzer spends its time on commands, replies and transfers.
pub fn fuzz_serve_session(data: &[u8]) {
    let (flags, chunks) = parse_session_input(data);
    let limits = if flags & 1 != 0 {
        TINY_LIMITS
    } else {
        Limits::default()
    };
    let version = 0x200 | u64::from((flags >> 1) & 7);
    let client_hello: Vec<u8> = [crate::serve::SERVE_MAGIC_1, version]
        .iter()
        .flat_map(|w| w.to_le_bytes())
        .collect();
    let server_hello: Vec<u8> = [crate::serve::SERVE_MAGIC_2, version]
        .iter()
        .flat_map(|w| w.to_le_bytes())
        .collect();
    let mut all: Vec<(Direction, &[u8])> = vec![
        (Direction::ClientToDaemon, &client_hello),
        (Direction::DaemonToClient, &server_hello),
    ];
    all.extend(chunks);
    check_session(limits, &all);
}

fn check_session(limits: Limits, chunks: &[(Direction, &[u8])]) {
    let (events, decoder) = decode(limits, chunks);
    let stream = |direction: Direction| -> Vec<u8> {
        chunks
            .iter()
            .filter(|(d, _)| *d == direction)
            .flat_map(|(_, bytes)| bytes.iter().copied())
            .collect()
    };
    let client = stream(Direction::ClientToDaemon);
    let daemon = stream(Direction::DaemonToClient);
    if let Err(error) = check_events(&events, &client, &daemon, decoder.negotiated()) {
        panic!("session invariant broken: {error}");
    }
    for order in [
        [Direction::ClientToDaemon, Direction::DaemonToClient],
        [Direction::DaemonToClient, Direction::ClientToDaemon],
    ] {
        let whole: Vec<(Direction, &[u8])> = order
            .iter()
            .map(|&direction| {
                let bytes: &[u8] = match direction {
                    Direction::ClientToDaemon => &client,
                    Direction::DaemonToClient => &daemon,
                };
                (direction, bytes)
            })
            .collect();
        let (other, _) = decode(limits, &whole);
        for direction in order {
            if of(&events, direction) != of(&other, direction) {
                panic!("{direction:?} events depend on how the input was split or interleaved");
            }
        }
    }
}

/// Parses a NAR in one feed and byte by byte (keeping the unconsumed tail
/// as a caller must), and checks both give the same events, the same
/// status and the same length.
pub fn fuzz_nar(data: &[u8]) {
    let Some((&flags, nar)) = data.split_first() else {
        return;
    };
    let options = NarOptions {
        strict_names: flags & 1 == 0,
        detect_stderr_error: flags & 2 != 0,
        max_depth: 16,
    };
    let mut whole = NarParser::new(options);
    let mut whole_events = Vec::new();
    let whole_progress = whole.feed(nar, &mut whole_events);

    let mut split = NarParser::new(options);
    let mut split_events = Vec::new();
    let mut pending = Vec::new();
    let mut consumed = 0;
    let mut status = NarStatus::NeedMore;
    for &byte in nar {
        pending.push(byte);
        let progress = split.feed(&pending, &mut split_events);
        consumed += progress.consumed;
        pending.drain(..progress.consumed);
        status = progress.status;
        if status != NarStatus::NeedMore {
            break;
        }
    }
    assert_eq!(
        whole_progress.consumed, consumed,
        "NAR consumption depends on the split"
    );
    assert_eq!(
        whole_progress.status, status,
        "NAR status depends on the split"
    );
    assert_eq!(whole_events, split_events, "NAR events depend on the split");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_format_round_trips() {
        let chunks: Vec<(Direction, &[u8])> = vec![
            (Direction::ClientToDaemon, b"abc"),
            (Direction::DaemonToClient, b"xyz"),
            (Direction::ClientToDaemon, b"d"),
        ];
        let encoded = encode_session_input(1, &chunks);
        let (flags, parsed) = parse_session_input(&encoded);
        assert_eq!(flags, 1);
        assert_eq!(parsed, chunks);
    }

    #[test]
    fn arbitrary_bytes_keep_the_invariants() {
        fuzz_session(b"");
        fuzz_session(b"\x00\x05\x00cxin\x00");
        fuzz_session(&[1, 0x10, 0x80, 0xff, 0xff, 0xff]);
        fuzz_nar(b"\x02\x0d\x00\x00\x00\x00\x00\x00\x00nix-archive-1\x00\x00\x00");
        fuzz_serve_session(b"");
        fuzz_serve_session(b"\x0e\x08\x00\x01\x00\x00\x00\x00\x00\x00\x00");
        fuzz_serve_session(&[1, 0x10, 0x80, 0xff, 0xff, 0xff]);
    }
}
