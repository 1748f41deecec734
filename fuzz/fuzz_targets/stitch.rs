//! Fuzz target for joining a rotated set (`nixcap_capture::stitch`):
//! whatever the files hold (duplicate or missing segments, `link` metadata
//! shared by unrelated connections, pieces out of order, damage), stitching
//! never panics, and it reports what it cannot join instead.
//!
//! The input is a set: captures separated by the 4 bytes `\xffSET`. Each
//! piece gets its checksums recomputed (so that mutations reach the
//! metadata and the blocks), is read as a capture, and the ones that read
//! are stitched in order. Seed it with sets of the fixture captures and of
//! rotated sets from the `capture_fuzz_seeds` example of `nixcap-capture`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use nixcap_capture::{fuzzing, read_capture, stitch};

/// Separates the captures of one input.
const SEPARATOR: &[u8] = b"\xffSET";

fuzz_target!(|data: &[u8]| {
    let mut captures = Vec::new();
    let mut rest = data;
    loop {
        let (piece, next) = match rest.windows(SEPARATOR.len()).position(|w| w == SEPARATOR) {
            Some(at) => (&rest[..at], Some(&rest[at + SEPARATOR.len()..])),
            None => (rest, None),
        };
        let mut piece = piece.to_vec();
        fuzzing::reseal(&mut piece);
        if let Ok(capture) = read_capture(&piece[..]) {
            captures.push(capture);
        }
        match next {
            Some(next) if captures.len() < 16 => rest = next,
            _ => break,
        }
    }
    if let Some(stitched) = stitch(captures) {
        // Every joined connection's streams are whole byte strings.
        for connection in &stitched.capture.connections {
            let _ = connection
                .stream(nixcap_capture::Direction::ClientToServer)
                .len();
        }
    }
});
