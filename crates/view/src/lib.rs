//! nixcap-view: a capture, decoded.
//!
//! This crate joins the capture container ([`nixcap_capture`]) and the
//! protocol codec ([`nixcap_wire`]): it feeds each connection's chunks, in
//! capture order, to a [`SessionDecoder`], stamps every event with the time
//! of the chunk that completed it, and groups events into [`Exchange`]s —
//! one per operation: the request, what was uploaded, the log messages, and
//! the reply or error.
//!
//! `show`, `info`, `diff`, `replay` and `redact` read captures through it.
//! Nothing here can lose bytes: the raw chunks stay in the capture, and the
//! events of each direction tile its stream (see `nixcap_wire::session`).

pub mod display;
pub mod internal_json;
pub mod json;
pub mod keep;
pub mod normalise;
pub mod stream;
pub mod summary;
pub mod text;

use std::collections::BTreeMap;

use nixcap_capture::{Capture, ConnectionClosed, ConnectionOpened};
use nixcap_wire::handshake::Trust;
use nixcap_wire::ops::{Op, Reply, Request};
use nixcap_wire::serve::ops::{ServeCommand, ServeReply, ServeRequest};
use nixcap_wire::session::{Direction, Event, EventKind, Protocol, SessionDecoder};
use nixcap_wire::stderr::{ErrorInfo, StderrMessage};
use nixcap_wire::{ByteString, Negotiated, ProtocolVersion};

/// The wire direction of a capture direction: the side that connected to
/// the recorder is the Nix client.
pub fn wire_direction(direction: nixcap_capture::Direction) -> Direction {
    match direction {
        nixcap_capture::Direction::ClientToServer => Direction::ClientToDaemon,
        nixcap_capture::Direction::ServerToClient => Direction::DaemonToClient,
    }
}

/// A decoded event with the time it became complete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimedEvent {
    /// Nanoseconds since the capture start of the chunk that completed the
    /// event.
    pub t_nanos: u64,
    /// The event.
    pub event: Event,
}

/// What the handshake of a connection established.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionInfo {
    /// `serve` for a serve-protocol connection (`nix-store --serve`);
    /// absent for the worker protocol.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol: Option<Protocol>,
    /// The version the client announced.
    pub client_version: Option<ProtocolVersion>,
    /// The version the daemon announced.
    pub daemon_version: Option<ProtocolVersion>,
    /// The version and features in effect.
    pub negotiated: Option<Negotiated>,
    /// The features the client offered (1.38 and later).
    pub client_features: Option<Vec<String>>,
    /// The features the daemon offered (1.38 and later).
    pub daemon_features: Option<Vec<String>>,
    /// The daemon's Nix version string (1.33 and later).
    pub daemon_nix_version: Option<ByteString>,
    /// Whether the daemon trusts the client (1.35 and later).
    pub trust: Option<Trust>,
}

/// How an operation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The daemon sent `STDERR_LAST` and the reply.
    Reply(Reply),
    /// The daemon sent `STDERR_ERROR`.
    Error(ErrorInfo),
    /// The serve-protocol server replied.
    ServeReply(ServeReply),
    /// The serve-protocol server sent the whole NAR or export stream that
    /// is the reply (DumpStorePath, ExportPaths).
    Downloaded,
    /// The connection ended (or the capture was cut) before the op did.
    Unfinished,
}

/// One operation of a connection: the request and everything that belongs
/// to it, in both directions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exchange {
    /// The op's number in its connection, from 0.
    pub seq: u64,
    /// The op word the client sent.
    pub op_word: u64,
    /// The op, if the word names one.
    pub op: Option<Op>,
    /// The request, if it was decoded.
    pub request: Option<Request>,
    /// The serve-protocol command, if the word names one.
    pub serve_command: Option<ServeCommand>,
    /// The serve-protocol request, if it was decoded.
    pub serve_request: Option<ServeRequest>,
    /// When the request was complete.
    pub start_nanos: u64,
    /// When the last event of the op was complete.
    pub end_nanos: u64,
    /// Indices into [`DecodedConnection::events`] of this op's events, in
    /// decoding order.
    pub events: Vec<usize>,
    /// How it ended.
    pub outcome: Outcome,
    /// Bytes of this op sent by the client (request and upload).
    pub client_bytes: u64,
    /// Bytes of this op sent by the daemon (log, reply, download).
    pub daemon_bytes: u64,
    /// Payload bytes uploaded (framed data, inline NAR, STDERR_READ answers).
    pub upload_bytes: u64,
    /// Payload bytes downloaded (NarFromPath's NAR, STDERR_WRITE data).
    pub download_bytes: u64,
}

impl Exchange {
    /// The op's name, or `op <number>` for an unknown op word.
    pub fn op_name(&self) -> String {
        match (self.op, self.serve_command) {
            (Some(op), _) => op.name().to_string(),
            (None, Some(command)) => command.name().to_string(),
            (None, None) => format!("op {}", self.op_word),
        }
    }

    /// The log-channel messages of this op, in order (not counting the
    /// final `STDERR_LAST`/`STDERR_ERROR`, which is in [`Exchange::outcome`]).
    pub fn log_messages<'a>(
        &'a self,
        connection: &'a DecodedConnection,
    ) -> impl Iterator<Item = (u64, &'a StderrMessage)> + 'a {
        self.events.iter().filter_map(move |&index| {
            let timed = &connection.events[index];
            match &timed.event.kind {
                EventKind::Stderr { message, .. } if !message.ends_work() => {
                    Some((timed.t_nanos, message))
                }
                _ => None,
            }
        })
    }
}

/// One connection of a capture, decoded.
#[derive(Debug, Clone)]
pub struct DecodedConnection {
    /// The connection id.
    pub conn: u64,
    /// The connection-opened record.
    pub opened: ConnectionOpened,
    /// The connection-closed record, if the capture has it.
    pub closed: Option<ConnectionClosed>,
    /// Every event of both directions, in decoding order.
    pub events: Vec<TimedEvent>,
    /// What the handshake established.
    pub session: SessionInfo,
    /// The operations, in the order the client sent them.
    pub exchanges: Vec<Exchange>,
}

impl DecodedConnection {
    /// Indices of the events that could not be decoded.
    pub fn undecoded(&self) -> impl Iterator<Item = &TimedEvent> + '_ {
        self.events.iter().filter(|e| e.event.kind.is_undecoded())
    }

    /// Whether every byte of the connection was decoded.
    pub fn fully_decoded(&self) -> bool {
        self.undecoded().next().is_none()
    }

    /// Events outside the handshake and outside any op (for example the
    /// second `STDERR_ERROR` of a fatal error).
    pub fn stray_events(&self) -> impl Iterator<Item = &TimedEvent> + '_ {
        self.events
            .iter()
            .filter(|e| e.event.kind.seq().is_none() && !e.event.kind.is_handshake())
    }
}

/// Decodes one connection of a capture.
pub fn decode_connection(connection: &nixcap_capture::Connection) -> DecodedConnection {
    let mut decoder = SessionDecoder::new();
    let mut events = Vec::new();
    let mut last_t = connection.opened.t_nanos;
    for chunk in &connection.chunks {
        decoder.feed(wire_direction(chunk.direction), &chunk.bytes);
        last_t = chunk.t_nanos;
        events.extend(decoder.drain_events().map(|event| TimedEvent {
            t_nanos: chunk.t_nanos,
            event,
        }));
    }
    decoder.finish();
    let end_t = connection.closed.as_ref().map_or(last_t, |c| c.t_nanos);
    events.extend(decoder.drain_events().map(|event| TimedEvent {
        t_nanos: end_t,
        event,
    }));
    let session = SessionInfo {
        protocol: decoder.protocol().filter(|p| *p == Protocol::Serve),
        client_version: decoder.client_version(),
        daemon_version: decoder.daemon_version(),
        negotiated: decoder.negotiated().cloned(),
        client_features: decoder.client_features().map(<[String]>::to_vec),
        daemon_features: decoder.daemon_features().map(<[String]>::to_vec),
        daemon_nix_version: decoder.daemon_nix_version().cloned(),
        trust: decoder.trust(),
    };
    let exchanges = group_exchanges(&decoder, &events);
    DecodedConnection {
        conn: connection.conn,
        opened: connection.opened.clone(),
        closed: connection.closed.clone(),
        events,
        session,
        exchanges,
    }
}

fn group_exchanges(decoder: &SessionDecoder, events: &[TimedEvent]) -> Vec<Exchange> {
    let mut exchanges: BTreeMap<u64, Exchange> = decoder
        .ops()
        .iter()
        .map(|record| {
            (
                record.seq,
                Exchange {
                    seq: record.seq,
                    op_word: record.op_word,
                    op: record.op,
                    request: None,
                    serve_command: record.serve,
                    serve_request: None,
                    start_nanos: 0,
                    end_nanos: 0,
                    events: Vec::new(),
                    outcome: Outcome::Unfinished,
                    client_bytes: 0,
                    daemon_bytes: 0,
                    upload_bytes: 0,
                    download_bytes: 0,
                },
            )
        })
        .collect();
    for (index, timed) in events.iter().enumerate() {
        let Some(seq) = timed.event.kind.seq() else {
            continue;
        };
        let Some(exchange) = exchanges.get_mut(&seq) else {
            continue;
        };
        if exchange.events.is_empty() {
            exchange.start_nanos = timed.t_nanos;
        }
        exchange.events.push(index);
        exchange.end_nanos = exchange.end_nanos.max(timed.t_nanos);
        match timed.event.direction {
            Direction::ClientToDaemon => exchange.client_bytes += timed.event.len,
            Direction::DaemonToClient => exchange.daemon_bytes += timed.event.len,
        }
        match &timed.event.kind {
            EventKind::Request { request, .. } => {
                exchange.request = Some((**request).clone());
                exchange.start_nanos = timed.t_nanos;
            }
            EventKind::FramedData { data, .. } | EventKind::ReadAnswer { data, .. } => {
                exchange.upload_bytes += data.len() as u64;
            }
            EventKind::NarData { data, end, .. } => match timed.event.direction {
                Direction::ClientToDaemon => exchange.upload_bytes += data.len() as u64,
                Direction::DaemonToClient => {
                    exchange.download_bytes += data.len() as u64;
                    if *end && exchange.serve_command.is_some() {
                        exchange.outcome = Outcome::Downloaded;
                    }
                }
            },
            EventKind::Stderr { message, .. } => match message {
                StderrMessage::Write { data } => exchange.download_bytes += data.len() as u64,
                StderrMessage::Error(error) => {
                    if matches!(exchange.outcome, Outcome::Unfinished) {
                        exchange.outcome = Outcome::Error(error.clone());
                    }
                }
                _ => {}
            },
            EventKind::Reply { reply, .. } => {
                exchange.outcome = Outcome::Reply((**reply).clone());
            }
            EventKind::ServeRequest { request, .. } => {
                exchange.serve_request = Some((**request).clone());
                exchange.start_nanos = timed.t_nanos;
            }
            EventKind::ServeReply { reply, .. } => {
                exchange.outcome = Outcome::ServeReply((**reply).clone());
            }
            EventKind::ExportData { data, end, .. } => match timed.event.direction {
                Direction::ClientToDaemon => exchange.upload_bytes += data.len() as u64,
                Direction::DaemonToClient => {
                    exchange.download_bytes += data.len() as u64;
                    if *end {
                        exchange.outcome = Outcome::Downloaded;
                    }
                }
            },
            _ => {}
        }
    }
    exchanges.into_values().collect()
}

/// A whole capture, decoded.
#[derive(Debug)]
pub struct DecodedCapture {
    /// The capture as read (header, footer, damage, raw chunks).
    pub capture: Capture,
    /// Its connections, decoded, in the order they were opened.
    pub connections: Vec<DecodedConnection>,
}

impl DecodedCapture {
    /// Decodes every connection of `capture`.
    pub fn new(capture: Capture) -> Self {
        let connections = capture.connections.iter().map(decode_connection).collect();
        DecodedCapture {
            capture,
            connections,
        }
    }

    /// How many times each op was sent, by op name.
    pub fn op_histogram(&self) -> BTreeMap<String, u64> {
        let mut histogram = BTreeMap::new();
        for connection in &self.connections {
            for exchange in &connection.exchanges {
                *histogram.entry(exchange.op_name()).or_insert(0) += 1;
            }
        }
        histogram
    }

    /// The distinct (client version, daemon version, daemon Nix version)
    /// combinations seen, for summaries.
    pub fn versions(&self) -> Vec<SessionInfo> {
        let mut seen: Vec<SessionInfo> = Vec::new();
        for connection in &self.connections {
            if !seen.contains(&connection.session) {
                seen.push(connection.session.clone());
            }
        }
        seen
    }
}

#[cfg(test)]
mod tests;
