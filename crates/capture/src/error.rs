//! Error types of the writer and the reader.
//!
//! A `ReadError` always says what is wrong (`ReadErrorKind`) and where
//! (`Location`: file offset, frame index, block index, connection), so that a
//! damaged capture can be reported precisely.

use std::fmt;
use std::io;

use crate::types::{Direction, FormatVersion};

/// Why the writer refused or failed an operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WriteError {
    /// Writing to the output failed. The writer is poisoned afterwards.
    #[error("cannot write capture: {source}")]
    Io {
        /// The underlying error.
        #[from]
        source: io::Error,
    },
    /// A block body could not be serialized.
    #[error("cannot encode {what}: {message}")]
    Encode {
        /// What was being encoded.
        what: &'static str,
        /// What postcard said.
        message: String,
    },
    /// `open_connection` was called with an id already used in this capture.
    #[error("connection {conn} was already opened in this capture")]
    DuplicateConnection {
        /// The connection id.
        conn: u64,
    },
    /// A connection id was used that is not currently open.
    #[error("connection {conn} is not open")]
    UnknownConnection {
        /// The connection id.
        conn: u64,
    },
    /// Too many connections are open at once.
    #[error("too many open connections (the limit is {max})")]
    TooManyOpenConnections {
        /// The limit.
        max: usize,
    },
    /// A block (header, metadata or annotation) is larger than the format allows.
    #[error("{what} is too large: {len} bytes, the limit is {max}")]
    TooLarge {
        /// What was too large.
        what: &'static str,
        /// Its encoded length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// An earlier write failed, so the output may hold a partial frame.
    #[error("the capture writer failed earlier and cannot be used any more")]
    Poisoned,
}

/// Where in a file a problem was found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Location {
    /// File offset where the damage starts. For problems inside a frame's
    /// payload this is the offset of that frame's envelope.
    pub offset: u64,
    /// Index of the frame (0 is the first frame after the header), if the
    /// problem is in or at a frame.
    pub frame_index: Option<u64>,
    /// Index of the block within the whole capture (0 is the first block),
    /// if the problem is in a block.
    pub block_index: Option<u64>,
    /// The connection concerned, when known.
    pub conn: Option<u64>,
    /// Timestamp of the last block read intact before the problem.
    pub last_good_t_nanos: Option<u64>,
    /// Connections that were open when reading stopped: their streams are
    /// incomplete.
    pub open_connections: Vec<u64>,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "file offset {}", self.offset)?;
        if let Some(frame) = self.frame_index {
            write!(f, ", frame {frame}")?;
        }
        if let Some(block) = self.block_index {
            write!(f, ", block {block}")?;
        }
        if let Some(conn) = self.conn {
            write!(f, ", connection {conn}")?;
        }
        Ok(())
    }
}

/// Which part of the file a truncation cut into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Part {
    /// The magic number and versions at the start of the file.
    Prelude,
    /// The header body or its checksum.
    Header,
    /// A frame envelope.
    FrameEnvelope,
    /// A frame's compressed payload.
    FramePayload,
    /// The trailer.
    Trailer,
}

impl fmt::Display for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Part::Prelude => "file prelude",
            Part::Header => "header",
            Part::FrameEnvelope => "frame envelope",
            Part::FramePayload => "frame payload",
            Part::Trailer => "trailer",
        })
    }
}

/// What is wrong with a frame.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FrameProblem {
    /// The four bytes where a frame or the trailer should start are neither.
    BadTag {
        /// The bytes found.
        found: [u8; 4],
    },
    /// The envelope's own checksum does not match.
    EnvelopeChecksum {
        /// The checksum stored in the file.
        stored: u32,
        /// The checksum of the bytes read.
        computed: u32,
    },
    /// A length field is above the format's limit.
    TooLarge {
        /// Which length.
        field: &'static str,
        /// Its value.
        len: u32,
        /// The limit.
        max: u32,
    },
    /// The payload checksum does not match: the compressed bytes are damaged.
    PayloadChecksum {
        /// The checksum stored in the envelope.
        stored: u32,
        /// The checksum of the bytes read.
        computed: u32,
    },
    /// zstd could not decompress the payload.
    Decompress {
        /// What zstd said.
        message: String,
    },
    /// The payload decompressed to a different length than the envelope says.
    LengthMismatch {
        /// The envelope's uncompressed length.
        declared: u32,
        /// The actual decompressed length.
        actual: u64,
    },
}

impl fmt::Display for FrameProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameProblem::BadTag { found } => {
                write!(
                    f,
                    "expected a frame or the trailer, found bytes {}",
                    hex_bytes(found)
                )?;
                if found.iter().all(|b| b.is_ascii_graphic()) {
                    write!(f, " (\"{}\")", String::from_utf8_lossy(found))?;
                }
                Ok(())
            }
            FrameProblem::EnvelopeChecksum { stored, computed } => write!(
                f,
                "envelope checksum mismatch (stored {stored:#010x}, computed {computed:#010x})"
            ),
            FrameProblem::TooLarge { field, len, max } => {
                write!(f, "{field} {len} is above the limit {max}")
            }
            FrameProblem::PayloadChecksum { stored, computed } => write!(
                f,
                "payload checksum mismatch (stored {stored:#010x}, computed {computed:#010x})"
            ),
            FrameProblem::Decompress { message } => write!(f, "cannot decompress: {message}"),
            FrameProblem::LengthMismatch { declared, actual } => write!(
                f,
                "payload decompressed to {actual} bytes, the envelope says {declared}"
            ),
        }
    }
}

/// Formats bytes as space-separated hex pairs: `89 4e 49`.
fn hex_bytes(bytes: &[u8]) -> String {
    let pairs: Vec<String> = bytes.iter().map(|b| format!("{b:02x}")).collect();
    pairs.join(" ")
}

/// What is wrong with a capture.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadErrorKind {
    /// Reading the input failed.
    #[error("I/O error: {source}")]
    Io {
        /// The underlying error.
        source: io::Error,
    },
    /// The input is empty.
    #[error("the file is empty (not a nixcap capture)")]
    Empty,
    /// The input does not start with the capture magic number.
    #[error("not a nixcap capture (the file starts with {})", hex_bytes(found))]
    BadMagic {
        /// The first bytes of the input (at most eight).
        found: Vec<u8>,
    },
    /// The file was written with a newer major format version.
    #[error("format {found} is newer than this nixcap supports ({supported_major}.x)")]
    FutureVersion {
        /// The version in the file.
        found: FormatVersion,
        /// The major version this reader supports.
        supported_major: u16,
    },
    /// The file ends in the middle of something.
    #[error("the file is truncated in the {part} ({got} of {needed} bytes present)")]
    Truncated {
        /// What was cut.
        part: Part,
        /// Bytes needed to finish it.
        needed: u64,
        /// Bytes present.
        got: u64,
    },
    /// The header is damaged.
    #[error("damaged header: {problem}")]
    CorruptHeader {
        /// What is wrong.
        problem: String,
    },
    /// A frame is damaged.
    #[error("damaged frame: {problem}")]
    CorruptFrame {
        /// What is wrong.
        problem: FrameProblem,
    },
    /// A block inside an intact frame cannot be decoded.
    #[error("bad block of type {block_type:#04x}: {problem}")]
    BadBlock {
        /// The block type byte.
        block_type: u8,
        /// What is wrong.
        problem: String,
    },
    /// The blocks contradict each other (for example data on a connection that was never opened).
    #[error("inconsistent capture: {problem}")]
    Inconsistent {
        /// What is wrong.
        problem: String,
    },
    /// A stream's byte count differs from its connection-closed record.
    #[error(
        "connection {conn} {direction}: {actual} bytes read, the close record says {expected}"
    )]
    ByteCountMismatch {
        /// The connection.
        conn: u64,
        /// The direction.
        direction: Direction,
        /// The count in the close record.
        expected: u64,
        /// The count of bytes read.
        actual: u64,
    },
    /// A stream's SHA-256 differs from its connection-closed record.
    #[error(
        "connection {conn} {direction}: SHA-256 of the bytes read does not match the close record"
    )]
    HashMismatch {
        /// The connection.
        conn: u64,
        /// The direction.
        direction: Direction,
        /// The hash in the close record.
        expected: [u8; 32],
        /// The hash of the bytes read.
        actual: [u8; 32],
    },
    /// A store object's contents disagree with its store-object block.
    #[error("store object {object} ({name}): {problem}")]
    StoreObjectMismatch {
        /// The object id.
        object: u64,
        /// Its store path or derivation.
        name: String,
        /// What differs.
        problem: String,
    },
    /// The footer's statistics disagree with the blocks.
    #[error("the footer disagrees with the blocks: {problem}")]
    FooterMismatch {
        /// What differs.
        problem: String,
    },
    /// The file ends cleanly after a frame but has no footer: the writer did not finish
    /// (it was killed, crashed, or is still running).
    #[error("the capture was not finished: it ends after {frames} intact frames without a footer")]
    MissingFooter {
        /// Frames read.
        frames: u64,
    },
    /// The trailer is damaged or does not point at the footer.
    #[error("bad trailer: {problem}")]
    BadTrailer {
        /// What is wrong.
        problem: String,
    },
    /// Bytes follow the trailer.
    #[error("{len} unexpected bytes after the trailer")]
    TrailingData {
        /// How many (at most the first few are counted exactly).
        len: u64,
    },
}

/// A problem reading a capture: what and where.
#[derive(Debug, thiserror::Error)]
#[error("{kind}, at {location}")]
pub struct ReadError {
    /// What is wrong.
    pub kind: ReadErrorKind,
    /// Where (boxed, to keep `Result<_, ReadError>` small).
    pub location: Box<Location>,
}

impl ReadError {
    /// Creates an error.
    pub fn new(kind: ReadErrorKind, location: Location) -> ReadError {
        ReadError {
            kind,
            location: Box::new(location),
        }
    }

    /// True when the input cannot be read as a capture at all: it is not a
    /// capture (including a file too short to hold the magic number), it has a
    /// newer major version, or reading it failed. False when it is a capture
    /// with damage (truncation, corruption, inconsistency).
    pub fn is_unreadable(&self) -> bool {
        matches!(
            self.kind,
            ReadErrorKind::Io { .. }
                | ReadErrorKind::Empty
                | ReadErrorKind::BadMagic { .. }
                | ReadErrorKind::FutureVersion { .. }
        ) || matches!(
            self.kind,
            ReadErrorKind::Truncated {
                part: Part::Prelude,
                got,
                ..
            } if got < crate::format::MAGIC.len() as u64
        )
    }
}
