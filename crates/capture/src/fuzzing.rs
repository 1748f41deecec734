//! Entry points for fuzzing and robustness tests (not a stable API).
//!
//! The fuzz target `capture_read` calls these; the crate's own tests call
//! them on mutated files too, so they run in every `cargo test`.

use std::io::Cursor;

use crate::format::{self, ENVELOPE_LEN, FRAME_TAG, PRELUDE_LEN, TRAILER_LEN, TRAILER_TAG};
use crate::reader::{read_index, Reader};
use crate::types::Block;

/// Reads `data` as a capture through every read path: the streaming reader,
/// `read_capture` and `read_index`. Returns the number of blocks the
/// streaming reader delivered. It must never panic, whatever `data` holds.
pub fn read_everything(data: &[u8]) -> usize {
    let mut blocks = 0;
    if let Ok(reader) = Reader::new(data) {
        for item in reader {
            match item {
                Ok(block) => {
                    if let Block::Unknown { body, .. } = &block {
                        std::hint::black_box(body.len());
                    }
                    blocks += 1;
                }
                Err(err) => {
                    std::hint::black_box(err.to_string());
                    break;
                }
            }
        }
    }
    match crate::capture::read_capture(data) {
        Ok(capture) => {
            for connection in &capture.connections {
                std::hint::black_box(connection.stream(crate::Direction::ClientToServer).len());
            }
            if let Some(damage) = &capture.damage {
                std::hint::black_box(damage.to_string());
            }
        }
        Err(err) => {
            std::hint::black_box(err.to_string());
        }
    }
    if let Ok(index) = read_index(Cursor::new(data)) {
        std::hint::black_box(format!("{:?}", index.footer));
    }
    blocks
}

/// Parses `payload` as the decompressed payload of a frame; returns the
/// number of blocks decoded before the end or the first problem.
pub fn parse_frame_payload(payload: &[u8]) -> usize {
    crate::reader::parse_frame_payload(payload)
}

/// Recomputes every checksum of a (possibly mutated) capture in place, as
/// far as its structure can be followed, so that mutations reach the
/// decoders behind the checksums.
pub fn reseal(data: &mut [u8]) {
    if data.len() < PRELUDE_LEN {
        return;
    }
    let header_len = format::u32_le(&data[12..16]) as usize;
    let Some(header_end) = PRELUDE_LEN.checked_add(header_len) else {
        return;
    };
    if header_end + 4 > data.len() {
        return;
    }
    let crc = format::crc32c(&data[..header_end]);
    data[header_end..header_end + 4].copy_from_slice(&crc.to_le_bytes());
    let mut at = header_end + 4;
    while at + 4 <= data.len() {
        if data[at..at + 4] == FRAME_TAG && at + ENVELOPE_LEN <= data.len() {
            let compressed_len = format::u32_le(&data[at + 4..]) as usize;
            let payload_start = at + ENVELOPE_LEN;
            let payload_end = payload_start.saturating_add(compressed_len).min(data.len());
            let crc = format::crc32c(&data[payload_start..payload_end]);
            data[at + 12..at + 16].copy_from_slice(&crc.to_le_bytes());
            let crc = format::crc32c(&data[at..at + 16]);
            data[at + 16..at + 20].copy_from_slice(&crc.to_le_bytes());
            at = payload_end;
        } else if data[at..at + 4] == TRAILER_TAG && at + TRAILER_LEN <= data.len() {
            let crc = format::crc32c(&data[at..at + 20]);
            data[at + 20..at + 24].copy_from_slice(&crc.to_le_bytes());
            return;
        } else {
            return;
        }
    }
}
