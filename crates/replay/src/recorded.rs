//! The capture, prepared for serving: per recorded connection, the daemon's
//! handshake bytes and, per op, the request key, the recorded upload's digest
//! and the daemon bytes to send back.
//!
//! The daemon bytes are slices of the recorded daemon stream, cut at the
//! session decoder's event boundaries, so they are sent verbatim. Daemon
//! events outside any op (such as the second `STDERR_ERROR` of a fatal
//! error) go with the op before them.

use nixcap_capture::Direction as CaptureDirection;
use nixcap_view::display::key_argument;
use nixcap_view::{DecodedCapture, DecodedConnection};
use nixcap_wire::handshake::{HandshakePiece, Trust};
use nixcap_wire::ops::{Op, Reply, Request};
use nixcap_wire::session::{Direction, EventKind, Protocol};
use nixcap_wire::stderr::StderrMessage;
use nixcap_wire::{ByteString, Negotiated, ProtocolVersion};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::key::{neutral_key, serve_key, serve_key_argument};

/// Daemon bytes to send, with the time they were recorded.
#[derive(Debug, Clone)]
pub(crate) struct Send {
    pub bytes: Vec<u8>,
    /// Nanoseconds since the op's request was complete.
    pub after_nanos: u64,
    /// Whether this is a `STDERR_READ`, after which the client answers.
    pub read: bool,
    /// What the bytes decoded to, for re-encoding at another version.
    pub piece: Piece,
}

/// The decoded form of a [`Send`].
#[derive(Debug, Clone)]
pub(crate) enum Piece {
    /// A log message or error.
    Stderr(StderrMessage),
    /// The reply after `STDERR_LAST`.
    Reply(Reply),
    /// Anything else (a NAR being downloaded): the same at every version.
    Verbatim,
}

/// A digest of an upload's payload.
#[derive(Debug, Clone, Default)]
pub(crate) struct UploadDigest {
    pub hasher: Sha256,
    pub len: u64,
}

impl UploadDigest {
    pub fn update(&mut self, data: &[u8]) {
        self.hasher.update(data);
        self.len += data.len() as u64;
    }

    pub fn hex(&self) -> String {
        hex::encode(self.hasher.clone().finalize())
    }
}

/// One recorded op.
#[derive(Debug)]
pub(crate) struct RecExchange {
    pub seq: u64,
    pub op: Option<Op>,
    pub op_name: String,
    /// The recorded request, decoded at the connection's negotiation.
    pub request: Option<Request>,
    pub key: Value,
    pub key_argument: Option<String>,
    pub start_nanos: u64,
    pub sends: Vec<Send>,
    pub upload: UploadDigest,
    /// Why the recorded daemon side of the op is incomplete, if it is.
    pub incomplete: Option<String>,
}

impl RecExchange {
    /// The recorded reply, if the daemon sent one.
    pub fn reply(&self) -> Option<&Reply> {
        self.sends.iter().find_map(|send| match &send.piece {
            Piece::Reply(reply) => Some(reply),
            _ => None,
        })
    }
}

/// One recorded connection.
#[derive(Debug)]
pub(crate) struct RecConn {
    pub conn: u64,
    pub client_version: Option<ProtocolVersion>,
    pub daemon_version: Option<ProtocolVersion>,
    pub negotiated: Option<Negotiated>,
    pub daemon_hello: Option<Vec<u8>>,
    pub daemon_features: Option<Vec<u8>>,
    pub daemon_nix_version: Option<ByteString>,
    pub trust: Option<Trust>,
    /// Whether the connection speaks the serve protocol (`nix-store
    /// --serve`); its `daemon_hello` is then the server's serve hello.
    pub serve: bool,
    /// Nix version, trust and the drain messages, as recorded.
    pub daemon_post: Vec<u8>,
    /// The drain messages alone (the log of the handshake, up to
    /// `STDERR_LAST`), decoded.
    pub drain: Vec<StderrMessage>,
    /// Whether the recorded drain ended with `STDERR_LAST`.
    pub handshake_complete: bool,
    pub exchanges: Vec<RecExchange>,
}

/// The whole capture, prepared.
#[derive(Debug)]
pub(crate) struct Recorded {
    pub connections: Vec<RecConn>,
}

impl Recorded {
    pub fn new(decoded: &DecodedCapture) -> Recorded {
        let connections = decoded
            .connections
            .iter()
            .zip(&decoded.capture.connections)
            .map(|(connection, raw)| {
                let daemon = raw.stream(CaptureDirection::ServerToClient);
                prepare(connection, &daemon)
            })
            .collect();
        Recorded { connections }
    }

    /// The distinct client protocol versions of the recorded connections.
    pub fn client_versions(&self) -> Vec<ProtocolVersion> {
        let mut versions: Vec<ProtocolVersion> = Vec::new();
        for conn in &self.connections {
            if let Some(v) = conn.client_version {
                if !versions.contains(&v) {
                    versions.push(v);
                }
            }
        }
        versions
    }
}

fn slice(stream: &[u8], offset: u64, len: u64) -> Vec<u8> {
    let start = usize::try_from(offset)
        .unwrap_or(usize::MAX)
        .min(stream.len());
    let end = usize::try_from(offset.saturating_add(len))
        .unwrap_or(usize::MAX)
        .min(stream.len());
    stream[start..end].to_vec()
}

fn prepare(connection: &DecodedConnection, daemon: &[u8]) -> RecConn {
    let session = &connection.session;
    let mut rec = RecConn {
        conn: connection.conn,
        client_version: session.client_version,
        daemon_version: session.daemon_version,
        negotiated: session.negotiated.clone(),
        daemon_hello: None,
        daemon_features: None,
        daemon_nix_version: session.daemon_nix_version.clone(),
        trust: session.trust,
        serve: session.protocol == Some(Protocol::Serve),
        daemon_post: Vec::new(),
        drain: Vec::new(),
        handshake_complete: false,
        exchanges: connection
            .exchanges
            .iter()
            .map(|exchange| {
                let negotiated = session
                    .negotiated
                    .clone()
                    .unwrap_or_else(|| Negotiated::new(ProtocolVersion::MIN));
                let (key, key_argument) = match (&exchange.request, &exchange.serve_request) {
                    (Some(request), _) => {
                        (neutral_key(request, &negotiated), key_argument(request))
                    }
                    (None, Some(request)) => (serve_key(request), serve_key_argument(request)),
                    (None, None) => (Value::Null, None),
                };
                RecExchange {
                    seq: exchange.seq,
                    op: exchange.op,
                    op_name: exchange.op_name(),
                    request: exchange.request.clone(),
                    key,
                    key_argument,
                    start_nanos: exchange.start_nanos,
                    sends: Vec::new(),
                    upload: UploadDigest::default(),
                    incomplete: Some("the capture ends before the daemon answered".to_owned()),
                }
            })
            .collect(),
    };
    let index_of = |seq: u64, rec: &RecConn| rec.exchanges.iter().position(|e| e.seq == seq);
    let mut current: Option<usize> = None;
    for timed in &connection.events {
        let event = &timed.event;
        if let EventKind::Handshake { piece } = &event.kind {
            let bytes = slice(daemon, event.offset, event.len);
            match piece {
                HandshakePiece::DaemonHello(_) => rec.daemon_hello = Some(bytes),
                HandshakePiece::DaemonFeatures { .. } => rec.daemon_features = Some(bytes),
                HandshakePiece::DaemonNixVersion { .. } | HandshakePiece::DaemonTrust { .. } => {
                    rec.daemon_post.extend_from_slice(&bytes)
                }
                HandshakePiece::DaemonStderr { message } => {
                    rec.daemon_post.extend_from_slice(&bytes);
                    rec.drain.push(message.clone());
                    if matches!(message, StderrMessage::Last) {
                        rec.handshake_complete = true;
                    }
                }
                _ => {}
            }
            continue;
        }
        if let EventKind::ServeHello { .. } = &event.kind {
            if event.direction == Direction::DaemonToClient {
                rec.daemon_hello = Some(slice(daemon, event.offset, event.len));
                // The serve protocol's handshake ends with the hellos.
                rec.handshake_complete = true;
            }
            continue;
        }
        if let Some(seq) = event.kind.seq() {
            current = index_of(seq, &rec);
        }
        let Some(index) = current else {
            continue;
        };
        let exchange = &mut rec.exchanges[index];
        match event.direction {
            Direction::ClientToDaemon => match &event.kind {
                EventKind::FramedData { data, .. }
                | EventKind::ReadAnswer { data, .. }
                | EventKind::NarData { data, .. }
                | EventKind::ExportData { data, .. } => exchange.upload.update(data.as_bytes()),
                _ => {}
            },
            Direction::DaemonToClient => {
                let after_nanos = timed.t_nanos.saturating_sub(exchange.start_nanos);
                let bytes = slice(daemon, event.offset, event.len);
                let mut read = false;
                let mut piece = Piece::Verbatim;
                match &event.kind {
                    EventKind::Stderr { message, .. } => {
                        piece = Piece::Stderr(message.clone());
                        match message {
                            StderrMessage::Read { .. } => read = true,
                            StderrMessage::Error(_) => exchange.incomplete = None,
                            _ => {}
                        }
                    }
                    EventKind::Reply { reply, .. } => {
                        piece = Piece::Reply((**reply).clone());
                        if exchange.op == Some(Op::NarFromPath) {
                            exchange.incomplete = Some(
                                "the capture ends inside the NAR the daemon was sending".to_owned(),
                            );
                        } else {
                            exchange.incomplete = None;
                        }
                    }
                    EventKind::NarData { end: true, .. }
                    | EventKind::ExportData { end: true, .. }
                    | EventKind::ServeReply { .. } => exchange.incomplete = None,
                    EventKind::Truncated { .. } => {
                        exchange.incomplete = Some(
                            "the recorded connection ended in the middle of a daemon message"
                                .to_owned(),
                        );
                        continue;
                    }
                    EventKind::Opaque { reason, .. } => {
                        exchange.incomplete = Some(format!(
                            "the recorded daemon bytes cannot be decoded: {reason}"
                        ));
                    }
                    _ => {}
                }
                exchange.sends.push(Send {
                    bytes,
                    after_nanos,
                    read,
                    piece,
                });
            }
        }
    }
    rec
}
