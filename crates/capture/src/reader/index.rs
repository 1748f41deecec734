//! The footer fast path: [`read_index`] reads only the header, the trailer and
//! the footer.

use std::io::{Read, Seek, SeekFrom};

use crate::error::{Location, ReadError, ReadErrorKind};
use crate::format;
use crate::format::{FooterBody, Trailer, BLOCK_FOOTER, ENVELOPE_LEN, TRAILER_LEN, TRAILER_TAG};
use crate::types::{Footer, FormatVersion, Header};

use super::frames::{read_frame_after_tag, read_prelude};

/// Whether the footer could be read by [`read_index`].
#[derive(Debug)]
#[non_exhaustive]
pub enum FooterStatus {
    /// The trailer and footer are intact.
    Present(Footer),
    /// The file does not end with a trailer: the writer did not finish. Scan
    /// the file with [`Reader`] instead.
    Missing,
    /// The file ends with a trailer tag, but the trailer or the footer it
    /// points at is damaged. Scan the file with [`Reader`] instead.
    Damaged(ReadError),
}

/// The header and, when available, the footer of a capture, read without
/// decompressing its block frames.
#[derive(Debug)]
#[non_exhaustive]
pub struct Index {
    /// The format version in the file.
    pub version: FormatVersion,
    /// The file header.
    pub header: Header,
    /// The length of the file.
    pub file_len: u64,
    /// Length of the prelude and header.
    pub header_len: u64,
    /// The footer, if it could be read.
    pub footer: FooterStatus,
}

/// Reads the header, the trailer and the footer of a capture.
///
/// Fails only when the header cannot be read (the same cases as
/// [`Reader::new`]); a missing or damaged footer is reported in
/// [`Index::footer`]. The footer is taken as written: use [`Reader`] to check
/// it against the blocks.
pub fn read_index<R: Read + Seek>(mut input: R) -> Result<Index, ReadError> {
    let io_error = |source, offset| {
        ReadError::new(
            ReadErrorKind::Io { source },
            Location {
                offset,
                ..Location::default()
            },
        )
    };
    input.seek(SeekFrom::Start(0)).map_err(|e| io_error(e, 0))?;
    let (version, header, header_len) = read_prelude(&mut input)?;
    let file_len = input.seek(SeekFrom::End(0)).map_err(|e| io_error(e, 0))?;
    let footer = read_footer_at_end(&mut input, header_len, file_len)?;
    Ok(Index {
        version,
        header,
        file_len,
        header_len,
        footer,
    })
}

fn read_footer_at_end<R: Read + Seek>(
    input: &mut R,
    header_len: u64,
    file_len: u64,
) -> Result<FooterStatus, ReadError> {
    let min_len = header_len + (ENVELOPE_LEN + TRAILER_LEN) as u64;
    if file_len < min_len {
        return Ok(FooterStatus::Missing);
    }
    let trailer_offset = file_len - TRAILER_LEN as u64;
    let io_error = |source, offset| {
        ReadError::new(
            ReadErrorKind::Io { source },
            Location {
                offset,
                ..Location::default()
            },
        )
    };
    input
        .seek(SeekFrom::Start(trailer_offset))
        .map_err(|e| io_error(e, trailer_offset))?;
    let mut bytes = [0u8; TRAILER_LEN];
    input
        .read_exact(&mut bytes)
        .map_err(|e| io_error(e, trailer_offset))?;
    if bytes[..4] != TRAILER_TAG {
        return Ok(FooterStatus::Missing);
    }
    let damaged = |kind, offset| {
        Ok(FooterStatus::Damaged(ReadError::new(
            kind,
            Location {
                offset,
                ..Location::default()
            },
        )))
    };
    let trailer = match Trailer::decode(&bytes) {
        Ok(trailer) => trailer,
        Err(problem) => return damaged(ReadErrorKind::BadTrailer { problem }, trailer_offset),
    };
    if trailer.footer_offset < header_len
        || trailer.footer_offset > trailer_offset - ENVELOPE_LEN as u64
    {
        return damaged(
            ReadErrorKind::BadTrailer {
                problem: format!(
                    "footer offset {} is outside the file's frames",
                    trailer.footer_offset
                ),
            },
            trailer_offset,
        );
    }
    input
        .seek(SeekFrom::Start(trailer.footer_offset + 4))
        .map_err(|e| io_error(e, trailer.footer_offset))?;
    let mut decompressor = zstd::bulk::Decompressor::new().map_err(|e| io_error(e, 0))?;
    let footer_end = trailer_offset - trailer.footer_offset;
    let mut limited = input.take(footer_end - 4);
    let frame = match read_frame_after_tag(&mut limited, &mut decompressor) {
        Ok(frame) => frame,
        Err(kind) => return damaged(kind, trailer.footer_offset),
    };
    if (ENVELOPE_LEN + frame.compressed_len as usize) as u64 != footer_end {
        return damaged(
            ReadErrorKind::BadTrailer {
                problem: "the footer frame does not end at the trailer".to_owned(),
            },
            trailer.footer_offset,
        );
    }
    let payload = frame.payload;
    let bad = |problem: String| {
        damaged(
            ReadErrorKind::BadBlock {
                block_type: payload.first().copied().unwrap_or(0),
                problem,
            },
            trailer.footer_offset,
        )
    };
    if payload.first() != Some(&BLOCK_FOOTER) {
        return bad("the frame the trailer points at does not start with a footer".to_owned());
    }
    let Some((len, used)) = format::get_varint_u32(&payload[1..]) else {
        return bad("malformed body length".to_owned());
    };
    if 1 + used + len as usize != payload.len() {
        return bad("the footer is not alone in its frame".to_owned());
    }
    match postcard::take_from_bytes::<FooterBody>(&payload[1 + used..]) {
        Ok((body, _)) => Ok(FooterStatus::Present(body.into())),
        Err(e) => bad(format!("cannot decode body: {e}")),
    }
}
