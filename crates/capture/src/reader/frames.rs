//! Reading the pieces of a capture file: the prelude, frame envelopes and their
//! decompressed payloads.

use std::io;
use std::io::Read;

use crate::error::{FrameProblem, Location, Part, ReadError, ReadErrorKind};
use crate::format;
use crate::format::{
    HeaderBody, ENVELOPE_LEN, FORMAT_MAJOR, FRAME_TAG, MAGIC, MAX_FRAME_COMPRESSED_LEN,
    MAX_FRAME_UNCOMPRESSED_LEN, MAX_HEADER_BODY_LEN, PRELUDE_LEN,
};
use crate::types::{FormatVersion, FrameIndexEntry, Header};

use super::Reader;

/// Reads until `buf` is full or the input ends; returns the number of bytes read.
pub(super) fn read_full<R: Read>(input: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    Ok(filled)
}

/// Reads the prelude and header; returns the version, the header and the
/// offset just after the header checksum.
pub(super) fn read_prelude<R: Read>(
    input: &mut R,
) -> Result<(FormatVersion, Header, u64), ReadError> {
    let at = |offset: u64| Location {
        offset,
        ..Location::default()
    };
    let io_error = |source| ReadError::new(ReadErrorKind::Io { source }, at(0));
    let mut prelude = [0u8; PRELUDE_LEN];
    let got = read_full(input, &mut prelude).map_err(io_error)?;
    if got == 0 {
        return Err(ReadError::new(ReadErrorKind::Empty, at(0)));
    }
    let magic_got = got.min(MAGIC.len());
    if prelude[..magic_got] != MAGIC[..magic_got] {
        return Err(ReadError::new(
            ReadErrorKind::BadMagic {
                found: prelude[..magic_got].to_vec(),
            },
            at(0),
        ));
    }
    let truncated = |part, needed: usize, got: usize, offset: u64| {
        ReadError::new(
            ReadErrorKind::Truncated {
                part,
                needed: needed as u64,
                got: got as u64,
            },
            at(offset),
        )
    };
    if got < 12 {
        return Err(truncated(Part::Prelude, PRELUDE_LEN, got, 0));
    }
    let major = u16::from_le_bytes([prelude[8], prelude[9]]);
    let minor = u16::from_le_bytes([prelude[10], prelude[11]]);
    let version = FormatVersion { major, minor };
    if major > FORMAT_MAJOR {
        return Err(ReadError::new(
            ReadErrorKind::FutureVersion {
                found: version,
                supported_major: FORMAT_MAJOR,
            },
            at(8),
        ));
    }
    if major < FORMAT_MAJOR {
        return Err(ReadError::new(
            ReadErrorKind::CorruptHeader {
                problem: format!("format version {version} does not exist"),
            },
            at(8),
        ));
    }
    if got < PRELUDE_LEN {
        return Err(truncated(Part::Prelude, PRELUDE_LEN, got, 0));
    }
    let body_len = format::u32_le(&prelude[12..16]);
    if body_len > MAX_HEADER_BODY_LEN {
        return Err(ReadError::new(
            ReadErrorKind::CorruptHeader {
                problem: format!(
                    "header length {body_len} is above the limit {MAX_HEADER_BODY_LEN}"
                ),
            },
            at(12),
        ));
    }
    let mut rest = vec![0u8; body_len as usize + 4];
    let got = read_full(input, &mut rest).map_err(io_error)?;
    if got < rest.len() {
        return Err(truncated(Part::Header, rest.len(), got, PRELUDE_LEN as u64));
    }
    let (body, crc_bytes) = rest.split_at(body_len as usize);
    let stored = format::u32_le(crc_bytes);
    let computed = format::crc32c_update(format::crc32c(&prelude), body);
    if stored != computed {
        return Err(ReadError::new(
            ReadErrorKind::CorruptHeader {
                problem: format!(
                    "checksum mismatch (stored {stored:#010x}, computed {computed:#010x})"
                ),
            },
            at(0),
        ));
    }
    let (header, _) = postcard::take_from_bytes::<HeaderBody>(body).map_err(|e| {
        ReadError::new(
            ReadErrorKind::CorruptHeader {
                problem: format!("cannot decode: {e}"),
            },
            at(PRELUDE_LEN as u64),
        )
    })?;
    let end = (PRELUDE_LEN + rest.len()) as u64;
    Ok((version, header.into(), end))
}

/// A frame read and checked.
pub(super) struct RawFrame {
    pub(super) compressed_len: u32,
    pub(super) payload: Vec<u8>,
}

/// The most of a frame's declared compressed length reserved before its
/// bytes are read: the writer's default frame size, and a bit.
const COMPRESSED_RESERVE_MAX: usize = 4 << 20 | 64 << 10;

/// Reads the rest of a frame whose four-byte tag was already consumed,
/// checks it, and decompresses it.
pub(super) fn read_frame_after_tag<R: Read>(
    input: &mut R,
    decompressor: &mut zstd::bulk::Decompressor<'static>,
) -> Result<RawFrame, ReadErrorKind> {
    let mut envelope = [0u8; ENVELOPE_LEN];
    envelope[..4].copy_from_slice(&FRAME_TAG);
    let got =
        read_full(input, &mut envelope[4..]).map_err(|source| ReadErrorKind::Io { source })?;
    if got < ENVELOPE_LEN - 4 {
        return Err(ReadErrorKind::Truncated {
            part: Part::FrameEnvelope,
            needed: ENVELOPE_LEN as u64,
            got: (4 + got) as u64,
        });
    }
    let corrupt = |problem| ReadErrorKind::CorruptFrame { problem };
    let stored = format::u32_le(&envelope[16..20]);
    let computed = format::crc32c(&envelope[0..16]);
    if stored != computed {
        return Err(corrupt(FrameProblem::EnvelopeChecksum { stored, computed }));
    }
    let compressed_len = format::u32_le(&envelope[4..8]);
    let uncompressed_len = format::u32_le(&envelope[8..12]);
    let payload_crc = format::u32_le(&envelope[12..16]);
    if compressed_len > MAX_FRAME_COMPRESSED_LEN {
        return Err(corrupt(FrameProblem::TooLarge {
            field: "compressed length",
            len: compressed_len,
            max: MAX_FRAME_COMPRESSED_LEN,
        }));
    }
    if uncompressed_len > MAX_FRAME_UNCOMPRESSED_LEN {
        return Err(corrupt(FrameProblem::TooLarge {
            field: "uncompressed length",
            len: uncompressed_len,
            max: MAX_FRAME_UNCOMPRESSED_LEN,
        }));
    }
    // Up to the writer's default frame size the whole declared length is
    // reserved (a frame is read without growing the buffer by doubling);
    // beyond it the buffer grows with the bytes actually present, so a
    // truncated file never costs more than that reserve.
    let mut compressed = Vec::with_capacity((compressed_len as usize).min(COMPRESSED_RESERVE_MAX));
    input
        .by_ref()
        .take(u64::from(compressed_len))
        .read_to_end(&mut compressed)
        .map_err(|source| ReadErrorKind::Io { source })?;
    if compressed.len() < compressed_len as usize {
        return Err(ReadErrorKind::Truncated {
            part: Part::FramePayload,
            needed: u64::from(compressed_len),
            got: compressed.len() as u64,
        });
    }
    let computed = format::crc32c(&compressed);
    if computed != payload_crc {
        return Err(corrupt(FrameProblem::PayloadChecksum {
            stored: payload_crc,
            computed,
        }));
    }
    let payload = decompress_frame(decompressor, &compressed, uncompressed_len)?;
    Ok(RawFrame {
        compressed_len,
        payload,
    })
}

/// Decompresses one zstd frame of exactly `uncompressed_len` bytes.
fn decompress_frame(
    decompressor: &mut zstd::bulk::Decompressor<'static>,
    compressed: &[u8],
    uncompressed_len: u32,
) -> Result<Vec<u8>, ReadErrorKind> {
    let corrupt = |problem| ReadErrorKind::CorruptFrame { problem };
    match zstd::zstd_safe::find_frame_compressed_size(compressed) {
        Ok(size) if size == compressed.len() => {}
        Ok(size) => {
            return Err(corrupt(FrameProblem::Decompress {
                message: format!(
                    "the zstd frame ends after {size} of {} payload bytes",
                    compressed.len()
                ),
            }))
        }
        Err(code) => {
            return Err(corrupt(FrameProblem::Decompress {
                message: zstd::zstd_safe::get_error_name(code).to_owned(),
            }))
        }
    }
    // Checked against MAX_FRAME_UNCOMPRESSED_LEN by the caller; one spare byte
    // lets an overlong frame show up as a length mismatch.
    let mut payload = Vec::with_capacity(uncompressed_len as usize + 1);
    match decompressor.decompress_to_buffer(compressed, &mut payload) {
        Ok(n) if n == uncompressed_len as usize => Ok(payload),
        Ok(n) => Err(corrupt(FrameProblem::LengthMismatch {
            declared: uncompressed_len,
            actual: n as u64,
        })),
        Err(err) => Err(corrupt(FrameProblem::Decompress {
            message: err.to_string(),
        })),
    }
}

/// Parses `payload` as the decompressed payload of a frame, as if it were
/// the first frame of a capture with an empty header, and returns the number
/// of blocks decoded before the end or the first error. For fuzzing.
pub(crate) fn parse_frame_payload(payload: &[u8]) -> usize {
    let Ok(prelude) = crate::writer::encode_prelude(&Header::default()) else {
        return 0;
    };
    let Ok(mut reader) = Reader::new(&prelude[..]) else {
        return 0;
    };
    reader.frame = payload.to_vec();
    reader.frame_number = Some(0);
    reader.frames_read = 1;
    reader.stats.frames = 1;
    reader.stats.uncompressed_bytes = payload.len() as u64;
    reader.frame_entries.push(FrameIndexEntry {
        offset: reader.offset,
        compressed_len: 0,
        uncompressed_len: payload.len() as u32,
        blocks: 0,
        first_t_nanos: 0,
        last_t_nanos: 0,
    });
    let mut count = 0;
    while reader.frame_pos < reader.frame.len() {
        match reader.next_block() {
            Ok(_) => count += 1,
            Err(err) => {
                let _ = err.to_string();
                break;
            }
        }
    }
    count
}
