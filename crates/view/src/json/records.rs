//! The record types: the schema `docs/JSON.md` describes.

use std::collections::BTreeMap;

use nixcap_capture::PeerCred;
use nixcap_wire::handshake::Trust;
use nixcap_wire::ops::{Reply, Request};
use nixcap_wire::serve::ops::{ServeReply, ServeRequest};
use nixcap_wire::session::{Direction, PayloadItem};
use nixcap_wire::stderr::{ErrorInfo, StderrMessage};
use nixcap_wire::ByteString;
use serde::{Deserialize, Serialize};

use super::V1;

/// `"type": "capture"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CaptureRecord {
    /// Schema version.
    pub v: V1,
    /// Always 0.
    pub t: u64,
    /// The container format version, `major.minor`.
    pub format: String,
    /// The tool that wrote the capture.
    pub tool_version: String,
    /// Wall-clock capture start, nanoseconds since the Unix epoch.
    pub start_unix_nanos: u64,
    /// The header's free metadata.
    pub metadata: BTreeMap<String, String>,
}

/// `"type": "annotation"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AnnotationRecord {
    /// Schema version.
    pub v: V1,
    /// Nanoseconds since the capture start.
    pub t: u64,
    /// The note.
    pub text: String,
}

/// `"type": "open"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OpenRecord {
    /// Schema version.
    pub v: V1,
    /// Connection id.
    pub conn: u64,
    /// Nanoseconds since the capture start.
    pub t: u64,
    /// The client process's credentials, when the recorder got them.
    pub peer: Option<PeerCred>,
    /// The connection's free metadata.
    pub metadata: BTreeMap<String, String>,
}

/// The raw bytes of a handshake, per direction, in hex.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HandshakeRaw {
    /// Client to daemon.
    pub client: String,
    /// Daemon to client.
    pub daemon: String,
}

/// `"type": "handshake"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HandshakeRecord {
    /// Schema version.
    pub v: V1,
    /// Connection id.
    pub conn: u64,
    /// When the last handshake piece was complete.
    pub t: u64,
    /// The version the client announced, such as `"1.38"`.
    pub client_version: Option<String>,
    /// The version the daemon announced.
    pub daemon_version: Option<String>,
    /// The version in effect; `null` if the handshake did not get that far.
    pub version: Option<String>,
    /// The features in effect (both sides offered them).
    pub features: Vec<String>,
    /// The features the client offered (1.38 and later).
    pub client_features: Option<Vec<String>>,
    /// The features the daemon offered (1.38 and later).
    pub daemon_features: Option<Vec<String>>,
    /// The daemon's Nix version (1.33 and later).
    pub nix_version: Option<ByteString>,
    /// Whether the daemon trusts the client (1.35 and later).
    pub trust: Option<Trust>,
    /// Log messages the daemon sent at the end of the handshake, not
    /// counting the final `STDERR_LAST`.
    pub messages: Vec<StderrMessage>,
    /// `"serve"` for a serve-protocol connection; absent for the worker protocol.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    /// The handshake's bytes (only with `--raw`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw: Option<HandshakeRaw>,
}

/// `"type": "request"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RequestRecord {
    /// Schema version.
    pub v: V1,
    /// Connection id.
    pub conn: u64,
    /// Nanoseconds since the capture start.
    pub t: u64,
    /// The op's number in the connection, from 0.
    pub seq: u64,
    /// The op's name, such as `"QueryPathInfo"`.
    pub op: String,
    /// The op's number on the wire.
    pub op_word: u64,
    /// Offset in the client→daemon stream.
    pub offset: u64,
    /// Length in bytes.
    pub len: u64,
    /// Every field of the request.
    pub request: Request,
    /// The bytes in hex (only with `--raw`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw: Option<String>,
}

/// `"type": "serveRequest"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServeRequestRecord {
    /// Schema version.
    pub v: V1,
    /// Connection id.
    pub conn: u64,
    /// Nanoseconds since the capture start.
    pub t: u64,
    /// The command's number in the connection, from 0.
    pub seq: u64,
    /// The command's name, such as `"QueryValidPaths"`.
    pub command: String,
    /// The command's number on the wire.
    pub command_word: u64,
    /// Offset in the client→server stream.
    pub offset: u64,
    /// Length in bytes.
    pub len: u64,
    /// Every field of the request.
    pub request: ServeRequest,
    /// The bytes in hex (only with `--raw`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw: Option<String>,
}

/// `"type": "serveReply"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServeReplyRecord {
    /// Schema version.
    pub v: V1,
    /// Connection id.
    pub conn: u64,
    /// Nanoseconds since the capture start.
    pub t: u64,
    /// The command's number in the connection.
    pub seq: u64,
    /// The command's name.
    pub command: String,
    /// Offset in the server→client stream.
    pub offset: u64,
    /// Length in bytes.
    pub len: u64,
    /// Every field of the reply.
    pub reply: ServeReply,
    /// The bytes in hex (only with `--raw`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw: Option<String>,
}

/// What part of a transfer a payload record describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum PayloadForm {
    /// A framed chunk's length word; `dataLen` is the announced length.
    FramedHeader,
    /// Data of a framed chunk.
    FramedData,
    /// The zero length word that ends a framed stream.
    FramedEnd,
    /// A string the client sent to answer `STDERR_READ`.
    ReadAnswer,
    /// NAR bytes sent without framing.
    Nar,
    /// Export-stream bytes sent raw (serve protocol).
    Export,
    /// Data the daemon sent with `STDERR_WRITE`.
    Write,
}

/// `"type": "payload"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PayloadRecord {
    /// Schema version.
    pub v: V1,
    /// Connection id.
    pub conn: u64,
    /// Nanoseconds since the capture start.
    pub t: u64,
    /// The op transferring.
    pub seq: u64,
    /// Which stream.
    pub dir: Direction,
    /// Offset in that stream.
    pub offset: u64,
    /// Length in bytes on the wire.
    pub len: u64,
    /// What part of the transfer this is.
    pub form: PayloadForm,
    /// Payload bytes carried (for `framedHeader`, the announced length).
    pub data_len: u64,
    /// What these bytes completed inside the payload (NAR nodes, path
    /// infos, export records, the end of a NAR, or why the payload could
    /// not be decoded).
    pub items: Vec<PayloadItem>,
    /// The bytes in hex (only with `--raw`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw: Option<String>,
}

/// `"type": "log"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LogRecord {
    /// Schema version.
    pub v: V1,
    /// Connection id.
    pub conn: u64,
    /// Nanoseconds since the capture start.
    pub t: u64,
    /// The op it belongs to; absent outside any op.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// Offset in the daemon→client stream.
    pub offset: u64,
    /// Length in bytes.
    pub len: u64,
    /// The message.
    pub message: StderrMessage,
    /// The bytes in hex (only with `--raw`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw: Option<String>,
}

/// Totals of an operation, carried by its `reply` or `error` record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OpTotals {
    /// From the request to the end of the op, in nanoseconds.
    pub duration_nanos: u64,
    /// Bytes the client sent for the op (request and upload).
    pub client_bytes: u64,
    /// Bytes the daemon sent for the op (log, reply, download).
    pub daemon_bytes: u64,
    /// Payload bytes uploaded.
    pub upload_bytes: u64,
    /// Payload bytes downloaded.
    pub download_bytes: u64,
}

/// `"type": "reply"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReplyRecord {
    /// Schema version.
    pub v: V1,
    /// Connection id.
    pub conn: u64,
    /// Nanoseconds since the capture start.
    pub t: u64,
    /// The op.
    pub seq: u64,
    /// The op's name.
    pub op: String,
    /// Offset of `STDERR_LAST` in the daemon→client stream.
    pub offset: u64,
    /// Length of `STDERR_LAST` and the reply fields.
    pub len: u64,
    /// Every field of the reply.
    pub reply: Reply,
    /// Totals of the op.
    pub totals: OpTotals,
    /// The bytes in hex (only with `--raw`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw: Option<String>,
}

/// `"type": "error"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ErrorRecord {
    /// Schema version.
    pub v: V1,
    /// Connection id.
    pub conn: u64,
    /// Nanoseconds since the capture start.
    pub t: u64,
    /// The op.
    pub seq: u64,
    /// The op's name.
    pub op: String,
    /// Offset in the daemon→client stream.
    pub offset: u64,
    /// Length in bytes.
    pub len: u64,
    /// The error.
    pub error: ErrorInfo,
    /// Totals of the op.
    pub totals: OpTotals,
    /// The bytes in hex (only with `--raw`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw: Option<String>,
}

/// `"type": "opaque"` and `"type": "truncated"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UndecodedRecord {
    /// Schema version.
    pub v: V1,
    /// Connection id.
    pub conn: u64,
    /// Nanoseconds since the capture start.
    pub t: u64,
    /// Which stream.
    pub dir: Direction,
    /// Offset in that stream.
    pub offset: u64,
    /// Length in bytes.
    pub len: u64,
    /// Why the bytes were not decoded.
    pub reason: String,
    /// The bytes in hex (only with `--raw`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw: Option<String>,
}

/// `"type": "close"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CloseRecord {
    /// Schema version.
    pub v: V1,
    /// Connection id.
    pub conn: u64,
    /// Nanoseconds since the capture start.
    pub t: u64,
    /// The close reason code of the capture format (0 is a clean EOF).
    pub reason_code: u32,
    /// The reason in words.
    pub reason: String,
    /// Bytes the client sent on the connection.
    pub client_bytes: u64,
    /// Bytes the daemon sent on the connection.
    pub daemon_bytes: u64,
}

/// `"type": "damage"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DamageRecord {
    /// Schema version.
    pub v: V1,
    /// Time of the last block read intact (0 if none).
    pub t: u64,
    /// What is wrong.
    pub problem: String,
    /// File offset where the damage starts.
    pub file_offset: u64,
    /// The frame, if the damage is in or at one.
    pub frame: Option<u64>,
    /// The block, if the damage is in one.
    pub block: Option<u64>,
    /// The connection concerned, when known.
    pub conn: Option<u64>,
    /// Connections that were open at that point: their streams end early.
    pub open_connections: Vec<u64>,
}
