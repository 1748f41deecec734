//! The events a session decodes into: directions, events and their kinds,
//! and what is known about each op.

use super::payload::PayloadItem;
use serde::{Deserialize, Serialize};

use crate::bytes::ByteString;
use crate::handshake::HandshakePiece;
use crate::nar::NarEvent;
use crate::ops::{Op, Reply, Request};
use crate::primitives::Writer;
use crate::serve::ops::{ServeCommand, ServeHello, ServeReply, ServeRequest};
use crate::stderr::StderrMessage;
use crate::version::Negotiated;

/// Which way bytes travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Direction {
    /// From the client (whoever opened the connection) to the daemon.
    ClientToDaemon,
    /// From the daemon to the client.
    DaemonToClient,
}

impl Direction {
    /// The other direction.
    pub fn other(self) -> Direction {
        match self {
            Direction::ClientToDaemon => Direction::DaemonToClient,
            Direction::DaemonToClient => Direction::ClientToDaemon,
        }
    }

    /// A short arrow for transcripts: `C>D` or `D>C`.
    pub fn arrow(self) -> &'static str {
        match self {
            Direction::ClientToDaemon => "C>D",
            Direction::DaemonToClient => "D>C",
        }
    }
}

/// One decoded piece of a connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    /// Which stream the bytes belong to.
    pub direction: Direction,
    /// Offset of the first byte in that direction's stream.
    pub offset: u64,
    /// Number of bytes.
    pub len: u64,
    /// What the bytes are.
    pub kind: EventKind,
}

impl Event {
    /// Offset just past the event's last byte.
    pub fn end(&self) -> u64 {
        self.offset + self.len
    }
}

/// What an event's bytes are.
///
/// `seq` numbers the ops of the connection from 0, in the order the client
/// sent them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum EventKind {
    /// A piece of the handshake (either direction).
    #[serde(rename_all = "camelCase")]
    Handshake {
        /// The piece.
        piece: HandshakePiece,
    },
    /// C→S: an op word and the request's fields.
    #[serde(rename_all = "camelCase")]
    Request {
        /// The op's number in the connection.
        seq: u64,
        /// The request.
        request: Box<Request>,
    },
    /// C→S: a framed chunk's header.
    #[serde(rename_all = "camelCase")]
    FramedHeader {
        /// The op uploading.
        seq: u64,
        /// Data bytes in the chunk.
        len: u64,
    },
    /// C→S: a framed chunk's data, or a piece of it.
    #[serde(rename_all = "camelCase")]
    FramedData {
        /// The op uploading.
        seq: u64,
        /// The bytes.
        data: ByteString,
        /// What these bytes completed in the payload.
        payload: Vec<PayloadItem>,
    },
    /// C→S: the `u64 0` that ends a framed stream.
    #[serde(rename_all = "camelCase")]
    FramedEnd {
        /// The op uploading.
        seq: u64,
        /// Final remarks on the payload (for example, that it was cut short).
        payload: Vec<PayloadItem>,
    },
    /// C→S: one string answering a `STDERR_READ`.
    #[serde(rename_all = "camelCase")]
    ReadAnswer {
        /// The op uploading.
        seq: u64,
        /// The string's contents.
        data: ByteString,
        /// What these bytes completed in the payload.
        payload: Vec<PayloadItem>,
    },
    /// A piece of a NAR streamed without framing: an inline upload (C→S,
    /// AddToStore < 1.25, AddToStoreNar < 1.21) or NarFromPath's download
    /// (S→C).
    #[serde(rename_all = "camelCase")]
    NarData {
        /// The op.
        seq: u64,
        /// The bytes.
        data: ByteString,
        /// Nodes and issues that became known in these bytes; offsets count
        /// from the start of the NAR.
        nar: Vec<NarEvent>,
        /// Whether the NAR ends with this piece.
        end: bool,
    },
    /// S→C: a log-channel message.
    #[serde(rename_all = "camelCase")]
    Stderr {
        /// The op it belongs to; `None` outside any op (for example the
        /// second `STDERR_ERROR` of a fatal error).
        seq: Option<u64>,
        /// The message.
        message: StderrMessage,
    },
    /// S→C: the reply fields after `STDERR_LAST` (possibly none).
    #[serde(rename_all = "camelCase")]
    Reply {
        /// The op.
        seq: u64,
        /// The reply.
        reply: Box<Reply>,
    },
    /// A serve-protocol hello (either direction).
    #[serde(rename_all = "camelCase")]
    ServeHello {
        /// The magic and version.
        hello: ServeHello,
    },
    /// C→S: a serve-protocol command and its fields.
    #[serde(rename_all = "camelCase")]
    ServeRequest {
        /// The command's number in the connection.
        seq: u64,
        /// The request.
        request: Box<ServeRequest>,
    },
    /// S→C: a serve-protocol reply.
    #[serde(rename_all = "camelCase")]
    ServeReply {
        /// The command.
        seq: u64,
        /// The reply.
        reply: Box<ServeReply>,
    },
    /// A piece of an export stream sent raw (serve protocol: ImportPaths'
    /// upload, ExportPaths' download).
    #[serde(rename_all = "camelCase")]
    ExportData {
        /// The command.
        seq: u64,
        /// The bytes.
        data: ByteString,
        /// Whether the export stream ends with this piece.
        end: bool,
    },
    /// Bytes that could not be decoded. Once a direction turns opaque, all
    /// its remaining bytes come as opaque pieces carrying the same reason.
    #[serde(rename_all = "camelCase")]
    Opaque {
        /// Why, with the stream offset where decoding stopped.
        reason: String,
        /// The bytes.
        data: ByteString,
    },
    /// Bytes of a value that the end of the connection cut short.
    #[serde(rename_all = "camelCase")]
    Truncated {
        /// What was being decoded.
        reason: String,
        /// The bytes.
        data: ByteString,
    },
}

impl EventKind {
    /// The op the event belongs to, if any.
    pub fn seq(&self) -> Option<u64> {
        match self {
            EventKind::Request { seq, .. }
            | EventKind::FramedHeader { seq, .. }
            | EventKind::FramedData { seq, .. }
            | EventKind::FramedEnd { seq, .. }
            | EventKind::ReadAnswer { seq, .. }
            | EventKind::NarData { seq, .. }
            | EventKind::Reply { seq, .. }
            | EventKind::ServeRequest { seq, .. }
            | EventKind::ServeReply { seq, .. }
            | EventKind::ExportData { seq, .. } => Some(*seq),
            EventKind::Stderr { seq, .. } => *seq,
            EventKind::Handshake { .. }
            | EventKind::ServeHello { .. }
            | EventKind::Opaque { .. }
            | EventKind::Truncated { .. } => None,
        }
    }

    /// Whether the event is a piece of the handshake (of either protocol).
    pub fn is_handshake(&self) -> bool {
        matches!(
            self,
            EventKind::Handshake { .. } | EventKind::ServeHello { .. }
        )
    }

    /// Whether the bytes were not decoded ([`EventKind::Opaque`] or
    /// [`EventKind::Truncated`]).
    pub fn is_undecoded(&self) -> bool {
        matches!(self, EventKind::Opaque { .. } | EventKind::Truncated { .. })
    }

    /// Writes the event's bytes. Requests and replies are laid out for
    /// `negotiated` (for the serve protocol, its version); everything else
    /// carries its own layout.
    pub fn encode(&self, negotiated: &Negotiated, w: &mut Writer) {
        match self {
            EventKind::Handshake { piece } => piece.encode(w),
            EventKind::Request { request, .. } => request.encode(w, negotiated),
            EventKind::FramedHeader { len, .. } => {
                w.u64(*len);
            }
            EventKind::FramedData { data, .. }
            | EventKind::NarData { data, .. }
            | EventKind::ExportData { data, .. }
            | EventKind::Opaque { data, .. }
            | EventKind::Truncated { data, .. } => {
                w.raw(data.as_bytes());
            }
            EventKind::FramedEnd { .. } => {
                w.u64(0);
            }
            EventKind::ReadAnswer { data, .. } => {
                w.string(data);
            }
            EventKind::Stderr { message, .. } => message.encode(w),
            EventKind::Reply { reply, .. } => reply.encode(w, negotiated),
            EventKind::ServeHello { hello } => hello.encode(w),
            EventKind::ServeRequest { request, .. } => request.encode(w, negotiated.version),
            EventKind::ServeReply { reply, .. } => reply.encode(w, negotiated.version),
        }
    }

    /// The event's bytes (see [`EventKind::encode`]).
    pub fn to_bytes(&self, negotiated: &Negotiated) -> Vec<u8> {
        let mut w = Writer::new();
        self.encode(negotiated, &mut w);
        w.into_bytes()
    }
}

/// What the decoder knows about one op of the connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct OpRecord {
    /// The op's number in the connection.
    pub seq: u64,
    /// The op word the client sent.
    pub op_word: u64,
    /// The op, if the word names one (worker protocol).
    pub op: Option<Op>,
    /// The command, if the word names one (serve protocol).
    pub serve: Option<ServeCommand>,
    /// `STDERR_READ` messages the daemon sent for it.
    pub reads: u64,
    /// Whether the daemon ended its work phase (`STDERR_LAST` or `STDERR_ERROR`).
    pub ended: bool,
}
