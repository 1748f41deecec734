//! The values a capture holds: the file header, the blocks, and the footer.
//!
//! These are the public, in-memory forms. Their exact byte encodings are
//! described in `docs/FORMAT.md` and implemented in `crate::format`; where the
//! encoding differs from what serde would derive for the public type (close
//! reasons, data blocks), the conversion lives in `crate::format`.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// The direction of a chunk of bytes within one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Direction {
    /// From the side that connected (the client) to the side that accepted (the server).
    ClientToServer,
    /// From the side that accepted (the server) to the side that connected (the client).
    ServerToClient,
}

impl Direction {
    /// Both directions, client to server first.
    pub const BOTH: [Direction; 2] = [Direction::ClientToServer, Direction::ServerToClient];

    /// The direction's number on disk: 0 for client to server, 1 for server to client.
    pub fn code(self) -> u8 {
        match self {
            Direction::ClientToServer => 0,
            Direction::ServerToClient => 1,
        }
    }

    /// The opposite direction.
    pub fn reverse(self) -> Direction {
        match self {
            Direction::ClientToServer => Direction::ServerToClient,
            Direction::ServerToClient => Direction::ClientToServer,
        }
    }

    /// A short arrow for human output: `c->s` or `s->c`.
    pub fn arrow(self) -> &'static str {
        match self {
            Direction::ClientToServer => "c->s",
            Direction::ServerToClient => "s->c",
        }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Direction::ClientToServer => "client-to-server",
            Direction::ServerToClient => "server-to-client",
        })
    }
}

/// Credentials of the peer process of a Unix socket connection (`SO_PEERCRED`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PeerCred {
    /// Process id, when the platform reports it.
    pub pid: Option<u32>,
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
}

/// The file header: who wrote the capture, when it started, and free metadata.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Header {
    /// The version of the tool that wrote the file, for example `nixcap 0.1.0`.
    pub tool_version: String,
    /// Wall-clock time of the capture start, in nanoseconds since the Unix epoch.
    /// Every other timestamp in the file is relative to this instant.
    pub start_unix_nanos: u64,
    /// Free-form metadata such as `hostname`, `argv`, `listen`, `upstream`.
    pub metadata: BTreeMap<String, String>,
}

/// Why a connection ended.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CloseReason {
    /// Both sides closed their write halves normally.
    CleanEof,
    /// A side reset the connection.
    Reset,
    /// The upstream server could not be reached; the client connection was dropped.
    UpstreamUnreachable {
        /// What the operating system said.
        message: String,
    },
    /// Some other error ended the connection.
    Error {
        /// A human-readable description.
        message: String,
    },
    /// The recorder shut down while the connection was still open.
    Shutdown,
    /// The capture file was rotated while the connection was open: it goes
    /// on in the next file of the set, in a connection with the same `link`
    /// metadata (see `docs/FORMAT.md`, rotated sets).
    Continued,
    /// A reason written by a newer version of the format that this reader does not know.
    Unknown {
        /// The reason code on disk.
        code: u32,
        /// The message stored with it (may be empty).
        message: String,
    },
}

impl CloseReason {
    /// The reason code on disk (see `docs/FORMAT.md`).
    pub fn code(&self) -> u32 {
        match self {
            CloseReason::CleanEof => 0,
            CloseReason::Reset => 1,
            CloseReason::UpstreamUnreachable { .. } => 2,
            CloseReason::Error { .. } => 3,
            CloseReason::Shutdown => 4,
            CloseReason::Continued => 5,
            CloseReason::Unknown { code, .. } => *code,
        }
    }

    /// The message stored with the reason; empty for reasons that carry none.
    pub fn message(&self) -> &str {
        match self {
            CloseReason::UpstreamUnreachable { message }
            | CloseReason::Error { message }
            | CloseReason::Unknown { message, .. } => message,
            CloseReason::CleanEof
            | CloseReason::Reset
            | CloseReason::Shutdown
            | CloseReason::Continued => "",
        }
    }

    /// Rebuilds a reason from its on-disk code and message.
    pub fn from_code(code: u32, message: String) -> CloseReason {
        match code {
            0 => CloseReason::CleanEof,
            1 => CloseReason::Reset,
            2 => CloseReason::UpstreamUnreachable { message },
            3 => CloseReason::Error { message },
            4 => CloseReason::Shutdown,
            5 => CloseReason::Continued,
            _ => CloseReason::Unknown { code, message },
        }
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseReason::CleanEof => f.write_str("clean EOF"),
            CloseReason::Reset => f.write_str("connection reset"),
            CloseReason::UpstreamUnreachable { message } => {
                write!(f, "upstream unreachable: {message}")
            }
            CloseReason::Error { message } => write!(f, "error: {message}"),
            CloseReason::Shutdown => f.write_str("recorder shutdown"),
            CloseReason::Continued => f.write_str("continued in the next file"),
            CloseReason::Unknown { code, message } => {
                write!(f, "unknown reason {code}")?;
                if !message.is_empty() {
                    write!(f, ": {message}")?;
                }
                Ok(())
            }
        }
    }
}

/// The byte count and SHA-256 of everything sent in one direction of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct StreamDigest {
    /// Number of bytes.
    pub bytes: u64,
    /// SHA-256 of the concatenated bytes.
    pub sha256: [u8; 32],
}

/// A connection-opened block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionOpened {
    /// The connection id, unique within the capture.
    pub conn: u64,
    /// Nanoseconds since the capture start.
    pub t_nanos: u64,
    /// Credentials of the connecting peer, when known.
    pub peer: Option<PeerCred>,
    /// Free-form metadata (for example the upstream address used).
    pub metadata: BTreeMap<String, String>,
}

/// A data block: bytes seen on one connection in one direction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Data {
    /// The connection id.
    pub conn: u64,
    /// Which way the bytes went.
    pub direction: Direction,
    /// Nanoseconds since the capture start.
    pub t_nanos: u64,
    /// The raw bytes, exactly as they crossed the socket.
    pub bytes: Vec<u8>,
}

/// A connection-closed block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionClosed {
    /// The connection id.
    pub conn: u64,
    /// Nanoseconds since the capture start.
    pub t_nanos: u64,
    /// Why the connection ended.
    pub reason: CloseReason,
    /// Byte count and SHA-256 of the client-to-server stream.
    pub client_to_server: StreamDigest,
    /// Byte count and SHA-256 of the server-to-client stream.
    pub server_to_client: StreamDigest,
}

impl ConnectionClosed {
    /// The digest of one direction.
    pub fn digest(&self, direction: Direction) -> &StreamDigest {
        match direction {
            Direction::ClientToServer => &self.client_to_server,
            Direction::ServerToClient => &self.server_to_client,
        }
    }
}

/// An annotation block: free text at a point in time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Annotation {
    /// Nanoseconds since the capture start.
    pub t_nanos: u64,
    /// The text.
    pub text: String,
}

/// What a store object holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum StoreObjectKind {
    /// The NAR serialisation of a store path.
    Nar,
    /// The build log of a derivation, uncompressed.
    BuildLog,
    /// A kind written by a newer version of the format that this reader does not know.
    Unknown(u32),
}

impl StoreObjectKind {
    /// The kind's number on disk (see `docs/FORMAT.md`).
    pub fn code(self) -> u32 {
        match self {
            StoreObjectKind::Nar => 0,
            StoreObjectKind::BuildLog => 1,
            StoreObjectKind::Unknown(code) => code,
        }
    }

    /// The kind of an on-disk number.
    pub fn from_code(code: u32) -> StoreObjectKind {
        match code {
            0 => StoreObjectKind::Nar,
            1 => StoreObjectKind::BuildLog,
            other => StoreObjectKind::Unknown(other),
        }
    }

    /// A short name for human output: `nar`, `build-log` or `kind-<n>`.
    pub fn name(self) -> String {
        match self {
            StoreObjectKind::Nar => "nar".to_owned(),
            StoreObjectKind::BuildLog => "build-log".to_owned(),
            StoreObjectKind::Unknown(code) => format!("kind-{code}"),
        }
    }
}

/// A store-object block: the contents of a store path (or a build log) that
/// the recorder fetched itself, outside every recorded connection. Its bytes
/// follow in store-object data blocks ([`StoreObjectData`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreObject {
    /// The object id, unique within the capture.
    pub object: u64,
    /// Nanoseconds since the capture start.
    pub t_nanos: u64,
    /// What the contents are.
    pub kind: StoreObjectKind,
    /// The store path (for a NAR) or the derivation's store path (for a build log).
    pub name: String,
    /// Length of the contents; 0 when `missing` is set.
    pub size: u64,
    /// SHA-256 of the contents.
    pub sha256: [u8; 32],
    /// Why the contents could not be fetched; empty when they are present.
    pub missing: String,
}

impl StoreObject {
    /// Whether the contents are present (possibly empty) rather than missing.
    pub fn is_present(&self) -> bool {
        self.missing.is_empty()
    }
}

/// A store-object data block: a piece of a store object's contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreObjectData {
    /// The object id of its store-object block.
    pub object: u64,
    /// The bytes.
    pub bytes: Vec<u8>,
}

/// Per-connection entry of the footer index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionSummary {
    /// The connection id.
    pub conn: u64,
    /// When the connection was opened (nanoseconds since the capture start).
    pub opened_nanos: u64,
    /// When it was closed.
    pub closed_nanos: u64,
    /// Why it was closed, as the reason code of `CloseReason::code` (the message is
    /// only in the connection-closed block).
    pub reason_code: u32,
    /// Bytes sent client to server.
    pub bytes_client_to_server: u64,
    /// Bytes sent server to client.
    pub bytes_server_to_client: u64,
    /// Index of the frame holding the connection-opened block.
    pub first_frame: u64,
    /// Index of the frame holding the connection-closed block.
    pub last_frame: u64,
}

/// Per-frame entry of the footer index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameIndexEntry {
    /// File offset of the frame envelope.
    pub offset: u64,
    /// Length of the compressed payload.
    pub compressed_len: u32,
    /// Length of the decompressed payload.
    pub uncompressed_len: u32,
    /// Number of blocks in the frame.
    pub blocks: u32,
    /// Smallest block timestamp in the frame.
    pub first_t_nanos: u64,
    /// Largest block timestamp in the frame.
    pub last_t_nanos: u64,
}

/// The footer: summary statistics and an index, written by a writer that finished.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Footer {
    /// When the capture ended (nanoseconds since the capture start).
    pub end_nanos: u64,
    /// Number of block frames before the footer frame.
    pub frames: u64,
    /// Number of blocks before the footer.
    pub blocks: u64,
    /// Number of annotation blocks.
    pub annotations: u64,
    /// Total decompressed size of the block frames.
    pub uncompressed_bytes: u64,
    /// Total compressed payload size of the block frames.
    pub compressed_bytes: u64,
    /// Total data bytes client to server, over all connections.
    pub bytes_client_to_server: u64,
    /// Total data bytes server to client, over all connections.
    pub bytes_server_to_client: u64,
    /// False when the writer stopped listing connections (see `MAX_INDEXED_CONNECTIONS`).
    pub connections_complete: bool,
    /// One entry per connection, in the order they were opened (may be cut short).
    pub connections: Vec<ConnectionSummary>,
    /// False when the writer stopped recording frame index entries (see `MAX_INDEXED_FRAMES`).
    pub frame_index_complete: bool,
    /// One entry per block frame, in file order (may be cut short).
    pub frame_index: Vec<FrameIndexEntry>,
}

/// One block of a capture, in capture order.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Block {
    /// A connection was opened.
    ConnectionOpened(ConnectionOpened),
    /// Bytes were seen on a connection.
    Data(Data),
    /// A connection was closed.
    ConnectionClosed(ConnectionClosed),
    /// Free text.
    Annotation(Annotation),
    /// Contents the recorder fetched itself: a store object's description.
    StoreObject(StoreObject),
    /// A piece of a store object's contents.
    StoreObjectData(StoreObjectData),
    /// The footer (the last block of a finished capture).
    Footer(Footer),
    /// A block type this reader does not know, kept as raw bytes.
    Unknown {
        /// The block type byte.
        block_type: u8,
        /// The block body.
        body: Vec<u8>,
    },
}

impl Block {
    /// The connection the block belongs to, if any.
    pub fn conn(&self) -> Option<u64> {
        match self {
            Block::ConnectionOpened(b) => Some(b.conn),
            Block::Data(b) => Some(b.conn),
            Block::ConnectionClosed(b) => Some(b.conn),
            Block::Annotation(_)
            | Block::StoreObject(_)
            | Block::StoreObjectData(_)
            | Block::Footer(_)
            | Block::Unknown { .. } => None,
        }
    }

    /// The block's timestamp, if it has one.
    pub fn t_nanos(&self) -> Option<u64> {
        match self {
            Block::ConnectionOpened(b) => Some(b.t_nanos),
            Block::Data(b) => Some(b.t_nanos),
            Block::ConnectionClosed(b) => Some(b.t_nanos),
            Block::Annotation(b) => Some(b.t_nanos),
            Block::StoreObject(b) => Some(b.t_nanos),
            Block::Footer(b) => Some(b.end_nanos),
            Block::StoreObjectData(_) | Block::Unknown { .. } => None,
        }
    }
}

/// A format version: files with the same major version are mutually readable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FormatVersion {
    /// Incremented for changes older readers cannot handle.
    pub major: u16,
    /// Incremented for additions older readers skip safely.
    pub minor: u16,
}

impl fmt::Display for FormatVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}
