//! nixcap-capture: a crash-tolerant, zstd-compressed container for recorded
//! byte streams.
//!
//! A capture file holds a header, then connection-opened, data,
//! connection-closed and annotation blocks in capture order (and store
//! objects the recorder fetched itself, kept apart from every connection), grouped into
//! independently compressed frames, then a footer with statistics and an
//! index, and a fixed-size trailer pointing at the footer. The container knows
//! nothing about the protocol carried in the data blocks, as pcap knows
//! nothing about TCP payloads.
//!
//! - [`Writer`] writes a capture; the caller supplies every timestamp.
//! - [`Reader`] streams the blocks of a capture in order, checking every frame
//!   checksum and every stream's SHA-256 against its close record, and stops
//!   at the first damage with a [`ReadError`] saying what and where.
//! - [`read_capture`] collects a whole capture into a [`Capture`], keeping
//!   everything readable before any damage.
//! - [`read_index`] answers summary questions from the footer without
//!   decompressing the frames.
//! - [`stitch`] joins the files of a rotated set back into one capture.
//!
//! The byte layout is specified in `docs/FORMAT.md`.

mod capture;
mod error;
pub mod format;
#[doc(hidden)]
pub mod fuzzing;
mod reader;
mod stitch;
mod types;
pub mod utc;
mod writer;

pub use capture::{read_capture, read_capture_file, Capture, CapturedObject, Chunk, Connection};
pub use error::{FrameProblem, Location, Part, ReadError, ReadErrorKind, WriteError};
pub use format::{FORMAT_MAJOR, FORMAT_MINOR};
pub use reader::{read_index, FooterStatus, Index, ReadStats, Reader};
pub use stitch::{stitch, StitchProblem, Stitched, LINK_KEY, SEGMENT_KEY};
pub use types::{
    Annotation, Block, CloseReason, ConnectionClosed, ConnectionOpened, ConnectionSummary, Data,
    Direction, Footer, FormatVersion, FrameIndexEntry, Header, PeerCred, StoreObject,
    StoreObjectData, StoreObjectKind, StreamDigest,
};
pub use writer::{Summary, Writer, WriterOptions};
