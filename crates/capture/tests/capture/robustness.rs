//! Random damage never makes the reader panic, with or without valid checksums.
//!
//! These run the same entry points as the `capture_read` fuzz target, on
//! mutations of the reference file, in every `cargo test`.

use nixcap_capture::format::{self, Envelope};
use nixcap_capture::fuzzing;
use nixcap_capture::{read_index, FooterStatus, Reader};
use proptest::prelude::*;
use std::io::Cursor;

use crate::corrupt::{corrupt_dir, raw_zstd_frame};

fn valid() -> Vec<u8> {
    std::fs::read(corrupt_dir().join("valid.nixcap")).unwrap()
}

/// The decompressed payloads of every frame of `file`, the footer frame last.
fn payloads(file: &[u8]) -> Vec<Vec<u8>> {
    let index = read_index(Cursor::new(file)).unwrap();
    let FooterStatus::Present(footer) = index.footer else {
        panic!("no footer");
    };
    let mut offsets: Vec<u64> = footer.frame_index.iter().map(|e| e.offset).collect();
    let trailer = file.len() - format::TRAILER_LEN;
    let last = footer.frame_index.last().unwrap();
    offsets.push(last.offset + format::ENVELOPE_LEN as u64 + u64::from(last.compressed_len));
    offsets
        .iter()
        .map(|&offset| {
            let at = offset as usize;
            let compressed_len = format::u32_le(&file[at + 4..]) as usize;
            let uncompressed_len = format::u32_le(&file[at + 8..]) as usize;
            let end = (at + format::ENVELOPE_LEN + compressed_len).min(trailer);
            zstd::bulk::decompress(&file[at + format::ENVELOPE_LEN..end], uncompressed_len).unwrap()
        })
        .collect()
}

/// Rebuilds a file from a header and frame payloads (stored as raw zstd
/// blocks), with valid checksums and a trailer pointing at the last frame.
fn rebuild(header: &[u8], payloads: &[Vec<u8>]) -> Vec<u8> {
    let mut file = header.to_vec();
    let mut last_offset = 0;
    for payload in payloads {
        let compressed = raw_zstd_frame(payload);
        let envelope = Envelope {
            compressed_len: compressed.len() as u32,
            uncompressed_len: payload.len() as u32,
            payload_crc: format::crc32c(&compressed),
        };
        last_offset = file.len() as u64;
        file.extend_from_slice(&envelope.encode());
        file.extend_from_slice(&compressed);
    }
    let trailer = format::Trailer {
        footer_offset: last_offset,
        frames: payloads.len() as u64,
    };
    file.extend_from_slice(&trailer.encode());
    file
}

#[test]
fn rebuilt_reference_file_differs_only_in_frame_sizes() {
    // The rebuilding helper is faithful: every block reads back, and only the
    // footer notices that the frames (now stored raw) changed size. So the
    // mutations below are the only source of other damage.
    let file = valid();
    let header_len = format::u32_le(&file[12..]) as usize + format::PRELUDE_LEN + 4;
    let rebuilt = rebuild(&file[..header_len], &payloads(&file));
    let mut blocks = 0;
    let mut error = None;
    for item in Reader::new(&rebuilt[..]).unwrap() {
        match item {
            Ok(_) => blocks += 1,
            Err(err) => error = Some(err),
        }
    }
    assert_eq!(blocks, 16);
    let error = error.unwrap();
    assert!(
        matches!(&error.kind, nixcap_capture::ReadErrorKind::FooterMismatch { problem } if problem.contains("compressed bytes")),
        "{error}"
    );
}

/// 256 cases per property by default; set `NIXCAP_ROBUSTNESS_CASES` for a longer run.
fn config() -> ProptestConfig {
    let cases = std::env::var("NIXCAP_ROBUSTNESS_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    ProptestConfig::with_cases(cases)
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn mutated_files_never_panic(
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in prop::option::of(any::<prop::sample::Index>()),
        reseal in any::<bool>(),
    ) {
        let mut file = valid();
        for (index, byte) in edits {
            let at = index.index(file.len());
            file[at] = byte;
        }
        if let Some(cut) = cut {
            file.truncate(cut.index(file.len()));
        }
        if reseal {
            fuzzing::reseal(&mut file);
        }
        fuzzing::read_everything(&file);
    }

    #[test]
    fn mutated_frame_contents_never_panic(
        frame in any::<prop::sample::Index>(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in prop::option::of(any::<prop::sample::Index>()),
    ) {
        let file = valid();
        let header_len = format::u32_le(&file[12..]) as usize + format::PRELUDE_LEN + 4;
        let mut payloads = payloads(&file);
        let frame = frame.index(payloads.len());
        let payload = &mut payloads[frame];
        for (index, byte) in edits {
            let at = index.index(payload.len());
            payload[at] = byte;
        }
        if let Some(cut) = cut {
            payload.truncate(cut.index(payload.len()));
        }
        fuzzing::parse_frame_payload(payload);
        let rebuilt = rebuild(&file[..header_len], &payloads);
        fuzzing::read_everything(&rebuilt);
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..512)) {
        fuzzing::read_everything(&data);
        fuzzing::parse_frame_payload(&data);
        let mut with_magic = format::MAGIC.to_vec();
        with_magic.extend_from_slice(&[1, 0, 0, 0]);
        with_magic.extend_from_slice(&data);
        fuzzing::reseal(&mut with_magic);
        fuzzing::read_everything(&with_magic);
    }
}
