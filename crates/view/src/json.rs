//! The JSON Lines view of a capture: one record per event, as `nixcap show
//! --json` prints it.
//!
//! The record types (in `records`) are the schema: `docs/JSON.md` describes them,
//! and every record carries `"v": 1` and a `"type"` discriminator. They
//! derive `Deserialize` with unknown fields denied, so a consumer written in
//! Rust can parse the output strictly, and the tests parse every line of
//! every test capture back into them.
//!
//! Records are built per connection in decoding order and then merged
//! across connections by time, never reordering the records of one
//! connection.

use std::collections::HashMap;
use std::io::{self, Write};

use nixcap_capture::ReadError;
use nixcap_wire::handshake::HandshakePiece;
use nixcap_wire::nar::NarEvent;
use nixcap_wire::session::{Direction, EventKind, PayloadItem};
use nixcap_wire::stderr::StderrMessage;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::text::{Options, Streams};
use crate::{DecodedCapture, DecodedConnection};

/// The record schema version, serialized as the number 1. Deserializing
/// any other number fails, so a reader never misreads a future schema.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct V1;

impl Serialize for V1 {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(1)
    }
}

impl<'de> Deserialize<'de> for V1 {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let v = u64::deserialize(deserializer)?;
        if v == 1 {
            Ok(V1)
        } else {
            Err(serde::de::Error::custom(format!(
                "record version {v} is not supported (this reader knows version 1)"
            )))
        }
    }
}

/// One line of `nixcap show --json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Record {
    /// The capture file's header; always the first record.
    Capture(CaptureRecord),
    /// A note written into the capture by the recorder or a user.
    Annotation(AnnotationRecord),
    /// A connection was opened.
    Open(OpenRecord),
    /// What a connection's handshake established.
    Handshake(HandshakeRecord),
    /// The client sent an operation.
    Request(RequestRecord),
    /// A piece of an upload or download, summarised.
    Payload(PayloadRecord),
    /// A message of the daemon's log channel other than the ones ending an
    /// operation.
    Log(LogRecord),
    /// The daemon finished an operation (`STDERR_LAST` and the reply).
    Reply(ReplyRecord),
    /// The daemon failed an operation (`STDERR_ERROR`).
    Error(ErrorRecord),
    /// The client sent a serve-protocol command.
    ServeRequest(ServeRequestRecord),
    /// The serve-protocol server replied to a command.
    ServeReply(ServeReplyRecord),
    /// Bytes the decoder could not make sense of.
    Opaque(UndecodedRecord),
    /// Bytes of a value that the end of the connection cut short.
    Truncated(UndecodedRecord),
    /// A connection was closed.
    Close(CloseRecord),
    /// The capture file is damaged; nothing after this point was read.
    /// Always the last record when present.
    Damage(DamageRecord),
}

impl Record {
    /// The connection the record belongs to, if any.
    pub fn conn(&self) -> Option<u64> {
        match self {
            Record::Capture(_) | Record::Annotation(_) | Record::Damage(_) => None,
            Record::Open(r) => Some(r.conn),
            Record::Handshake(r) => Some(r.conn),
            Record::Request(r) => Some(r.conn),
            Record::Payload(r) => Some(r.conn),
            Record::Log(r) => Some(r.conn),
            Record::Reply(r) => Some(r.conn),
            Record::Error(r) => Some(r.conn),
            Record::ServeRequest(r) => Some(r.conn),
            Record::ServeReply(r) => Some(r.conn),
            Record::Opaque(r) | Record::Truncated(r) => Some(r.conn),
            Record::Close(r) => Some(r.conn),
        }
    }

    /// The op number the record belongs to, if any.
    pub fn seq(&self) -> Option<u64> {
        match self {
            Record::Request(r) => Some(r.seq),
            Record::Payload(r) => Some(r.seq),
            Record::Log(r) => r.seq,
            Record::Reply(r) => Some(r.seq),
            Record::Error(r) => Some(r.seq),
            Record::ServeRequest(r) => Some(r.seq),
            Record::ServeReply(r) => Some(r.seq),
            _ => None,
        }
    }

    /// Nanoseconds since the capture start.
    pub fn t(&self) -> u64 {
        match self {
            Record::Capture(r) => r.t,
            Record::Annotation(r) => r.t,
            Record::Open(r) => r.t,
            Record::Handshake(r) => r.t,
            Record::Request(r) => r.t,
            Record::Payload(r) => r.t,
            Record::Log(r) => r.t,
            Record::Reply(r) => r.t,
            Record::Error(r) => r.t,
            Record::ServeRequest(r) => r.t,
            Record::ServeReply(r) => r.t,
            Record::Opaque(r) | Record::Truncated(r) => r.t,
            Record::Close(r) => r.t,
            Record::Damage(r) => r.t,
        }
    }
}

mod records;

pub use records::*;

/// The damage record of a read error.
pub fn damage_record(err: &ReadError, options: &Options) -> DamageRecord {
    let loc = &err.location;
    DamageRecord {
        v: V1,
        t: if options.timestamps {
            loc.last_good_t_nanos.unwrap_or(0)
        } else {
            0
        },
        problem: err.kind.to_string(),
        file_offset: loc.offset,
        frame: loc.frame_index,
        block: loc.block_index,
        conn: loc.conn,
        open_connections: loc.open_connections.clone(),
    }
}

/// Every record of `capture` that `options` selects, in output order.
pub fn records(capture: &DecodedCapture, options: &Options) -> Vec<Record> {
    let mut out = vec![Record::Capture(CaptureRecord {
        v: V1,
        t: 0,
        format: capture.capture.version.to_string(),
        tool_version: capture.capture.header.tool_version.clone(),
        start_unix_nanos: capture.capture.header.start_unix_nanos,
        metadata: capture.capture.header.metadata.clone(),
    })];
    let mut lanes: Vec<Vec<Record>> = Vec::new();
    if options.selects_everything() {
        lanes.push(
            capture
                .capture
                .annotations
                .iter()
                .map(|(_, a)| {
                    Record::Annotation(AnnotationRecord {
                        v: V1,
                        t: a.t_nanos,
                        text: a.text.clone(),
                    })
                })
                .collect(),
        );
    }
    for (connection, raw) in capture.connections.iter().zip(&capture.capture.connections) {
        if !options.selects_conn(connection.conn) {
            continue;
        }
        let streams = options.raw.then(|| Streams::of(raw));
        lanes.push(connection_records(connection, streams.as_ref(), options));
    }
    out.extend(options.interleave(lanes, Record::t));
    if let Some(err) = &capture.capture.damage {
        out.push(Record::Damage(damage_record(err, options)));
    }
    if !options.timestamps {
        for record in &mut out {
            zero_times(record);
        }
    }
    out
}

/// Writes `capture` as JSON Lines.
pub fn write_json_lines(
    out: &mut impl Write,
    capture: &DecodedCapture,
    options: &Options,
) -> io::Result<()> {
    for record in records(capture, options) {
        serde_json::to_writer(&mut *out, &record)?;
        out.write_all(b"\n")?;
    }
    Ok(())
}

fn zero_times(record: &mut Record) {
    match record {
        Record::Capture(r) => r.t = 0,
        Record::Annotation(r) => r.t = 0,
        Record::Open(r) => r.t = 0,
        Record::Handshake(r) => r.t = 0,
        Record::Request(r) => r.t = 0,
        Record::Payload(r) => r.t = 0,
        Record::Log(r) => r.t = 0,
        Record::Reply(r) => {
            r.t = 0;
            r.totals.duration_nanos = 0;
        }
        Record::Error(r) => {
            r.t = 0;
            r.totals.duration_nanos = 0;
        }
        Record::ServeRequest(r) => r.t = 0,
        Record::ServeReply(r) => r.t = 0,
        Record::Opaque(r) | Record::Truncated(r) => r.t = 0,
        Record::Close(r) => r.t = 0,
        Record::Damage(r) => r.t = 0,
    }
}

/// The records of one connection, in decoding order.
fn connection_records(
    connection: &DecodedConnection,
    streams: Option<&Streams>,
    options: &Options,
) -> Vec<Record> {
    let conn = connection.conn;
    let selected_seqs = options.selected_seqs(connection);
    let keep = |seq: Option<u64>| match (&selected_seqs, seq) {
        (None, _) => true,
        (Some(set), Some(seq)) => set.contains(&seq),
        (Some(_), None) => false,
    };
    let everything = selected_seqs.is_none();
    let raw_of = |dir: Direction, offset: u64, len: u64| -> Option<String> {
        streams.map(|s| hex::encode(s.slice(dir, offset, len)))
    };
    let exchanges: HashMap<u64, &crate::Exchange> =
        connection.exchanges.iter().map(|e| (e.seq, e)).collect();
    let op_name = |seq: u64| {
        exchanges
            .get(&seq)
            .map_or_else(|| "unknown".to_owned(), |e| e.op_name())
    };
    let totals = |seq: u64| {
        exchanges.get(&seq).map_or(
            OpTotals {
                duration_nanos: 0,
                client_bytes: 0,
                daemon_bytes: 0,
                upload_bytes: 0,
                download_bytes: 0,
            },
            |e| OpTotals {
                duration_nanos: e.end_nanos.saturating_sub(e.start_nanos),
                client_bytes: e.client_bytes,
                daemon_bytes: e.daemon_bytes,
                upload_bytes: e.upload_bytes,
                download_bytes: e.download_bytes,
            },
        )
    };

    let mut out = Vec::new();
    if everything {
        out.push(Record::Open(OpenRecord {
            v: V1,
            conn,
            t: connection.opened.t_nanos,
            peer: connection.opened.peer,
            metadata: connection.opened.metadata.clone(),
        }));
    }
    // The handshake record comes right after the open record, stamped with
    // the time the last handshake piece was complete.
    let handshake_t = connection
        .events
        .iter()
        .rev()
        .find(|e| e.event.kind.is_handshake())
        .map(|e| e.t_nanos);
    if let (true, Some(t)) = (everything, handshake_t) {
        out.push(Record::Handshake(handshake_record(connection, t, streams)));
    }
    // STDERR_LAST events waiting for their reply, by op.
    let mut pending_last: HashMap<u64, (u64, u64)> = HashMap::new();
    // Bytes of the unframed NAR streamed so far, by op and direction.
    let mut nar_len: HashMap<(u64, Direction), u64> = HashMap::new();
    for timed in &connection.events {
        let event = &timed.event;
        let t = timed.t_nanos;
        let (dir, offset, len) = (event.direction, event.offset, event.len);
        if !keep(event.kind.seq()) {
            continue;
        }
        let payload = |form: PayloadForm, seq: u64, data_len: u64, items: Vec<PayloadItem>| {
            Record::Payload(PayloadRecord {
                v: V1,
                conn,
                t,
                seq,
                dir,
                offset,
                len,
                form,
                data_len,
                items,
                raw: raw_of(dir, offset, len),
            })
        };
        match &event.kind {
            EventKind::Handshake { .. } | EventKind::ServeHello { .. } => {}
            EventKind::ServeRequest { seq, request } => {
                out.push(Record::ServeRequest(ServeRequestRecord {
                    v: V1,
                    conn,
                    t,
                    seq: *seq,
                    command: op_name(*seq),
                    command_word: request.word(),
                    offset,
                    len,
                    request: (**request).clone(),
                    raw: raw_of(dir, offset, len),
                }));
            }
            EventKind::ServeReply { seq, reply } => {
                out.push(Record::ServeReply(ServeReplyRecord {
                    v: V1,
                    conn,
                    t,
                    seq: *seq,
                    command: op_name(*seq),
                    offset,
                    len,
                    reply: (**reply).clone(),
                    raw: raw_of(dir, offset, len),
                }));
            }
            EventKind::ExportData { seq, data, .. } => {
                out.push(payload(
                    PayloadForm::Export,
                    *seq,
                    data.len() as u64,
                    Vec::new(),
                ));
            }
            EventKind::Request { seq, request } => {
                let op_word = exchanges
                    .get(seq)
                    .map_or(request.op().to_wire(), |e| e.op_word);
                out.push(Record::Request(RequestRecord {
                    v: V1,
                    conn,
                    t,
                    seq: *seq,
                    op: request.op().name().to_owned(),
                    op_word,
                    offset,
                    len,
                    request: (**request).clone(),
                    raw: raw_of(dir, offset, len),
                }));
            }
            EventKind::FramedHeader { seq, len: chunk } => {
                out.push(payload(PayloadForm::FramedHeader, *seq, *chunk, Vec::new()));
            }
            EventKind::FramedData {
                seq,
                data,
                payload: items,
            } => out.push(payload(
                PayloadForm::FramedData,
                *seq,
                data.len() as u64,
                items.clone(),
            )),
            EventKind::FramedEnd {
                seq,
                payload: items,
            } => out.push(payload(PayloadForm::FramedEnd, *seq, 0, items.clone())),
            EventKind::ReadAnswer {
                seq,
                data,
                payload: items,
            } => out.push(payload(
                PayloadForm::ReadAnswer,
                *seq,
                data.len() as u64,
                items.clone(),
            )),
            EventKind::NarData {
                seq,
                data,
                nar,
                end,
            } => {
                let total = nar_len.entry((*seq, dir)).or_insert(0);
                *total += data.len() as u64;
                let mut items: Vec<PayloadItem> = nar
                    .iter()
                    .map(|n: &NarEvent| PayloadItem::Nar { nar: n.clone() })
                    .collect();
                if *end {
                    items.push(PayloadItem::NarEnd { len: *total });
                }
                out.push(payload(PayloadForm::Nar, *seq, data.len() as u64, items));
            }
            EventKind::Stderr {
                seq: Some(seq),
                message: StderrMessage::Last,
            } => {
                pending_last.insert(*seq, (offset, len));
            }
            EventKind::Stderr {
                seq: Some(seq),
                message: StderrMessage::Error(error),
            } => out.push(Record::Error(ErrorRecord {
                v: V1,
                conn,
                t,
                seq: *seq,
                op: op_name(*seq),
                offset,
                len,
                error: error.clone(),
                totals: totals(*seq),
                raw: raw_of(dir, offset, len),
            })),
            EventKind::Stderr {
                seq: Some(seq),
                message: StderrMessage::Write { data },
            } => out.push(payload(
                PayloadForm::Write,
                *seq,
                data.len() as u64,
                Vec::new(),
            )),
            EventKind::Stderr { seq, message } => out.push(Record::Log(LogRecord {
                v: V1,
                conn,
                t,
                seq: *seq,
                offset,
                len,
                message: message.clone(),
                raw: raw_of(dir, offset, len),
            })),
            EventKind::Reply { seq, reply } => {
                // The reply's fields follow STDERR_LAST directly.
                let (start, total) = match pending_last.remove(seq) {
                    Some((last_offset, last_len)) if last_offset + last_len == offset => {
                        (last_offset, last_len + len)
                    }
                    _ => (offset, len),
                };
                out.push(Record::Reply(ReplyRecord {
                    v: V1,
                    conn,
                    t,
                    seq: *seq,
                    op: op_name(*seq),
                    offset: start,
                    len: total,
                    reply: (**reply).clone(),
                    totals: totals(*seq),
                    raw: raw_of(dir, start, total),
                }));
            }
            EventKind::Opaque { reason, .. } | EventKind::Truncated { reason, .. } => {
                let record = UndecodedRecord {
                    v: V1,
                    conn,
                    t,
                    dir,
                    offset,
                    len,
                    reason: reason.clone(),
                    raw: raw_of(dir, offset, len),
                };
                out.push(if matches!(event.kind, EventKind::Opaque { .. }) {
                    Record::Opaque(record)
                } else {
                    Record::Truncated(record)
                });
            }
        }
    }
    // A STDERR_LAST whose reply never came is still a message of its op.
    let mut orphans: Vec<(u64, (u64, u64))> = pending_last.into_iter().collect();
    orphans.sort_unstable();
    let end_t = connection
        .events
        .last()
        .map_or(connection.opened.t_nanos, |e| e.t_nanos);
    for (seq, (offset, len)) in orphans {
        out.push(Record::Log(LogRecord {
            v: V1,
            conn,
            t: end_t,
            seq: Some(seq),
            offset,
            len,
            message: StderrMessage::Last,
            raw: raw_of(Direction::DaemonToClient, offset, len),
        }));
    }
    if everything {
        if let Some(closed) = &connection.closed {
            out.push(Record::Close(CloseRecord {
                v: V1,
                conn,
                t: closed.t_nanos,
                reason_code: closed.reason.code(),
                reason: closed.reason.to_string(),
                client_bytes: closed.client_to_server.bytes,
                daemon_bytes: closed.server_to_client.bytes,
            }));
        }
    }
    out
}

fn handshake_record(
    connection: &DecodedConnection,
    t: u64,
    streams: Option<&Streams>,
) -> HandshakeRecord {
    let session = &connection.session;
    let mut messages = Vec::new();
    let mut client_raw = String::new();
    let mut daemon_raw = String::new();
    for timed in &connection.events {
        if timed.event.kind.is_handshake() {
            if let EventKind::Handshake {
                piece: HandshakePiece::DaemonStderr { message },
            } = &timed.event.kind
            {
                if !matches!(message, StderrMessage::Last) {
                    messages.push(message.clone());
                }
            }
            if let Some(streams) = streams {
                let e = &timed.event;
                let bytes = hex::encode(streams.slice(e.direction, e.offset, e.len));
                match e.direction {
                    Direction::ClientToDaemon => client_raw.push_str(&bytes),
                    Direction::DaemonToClient => daemon_raw.push_str(&bytes),
                }
            }
        }
    }
    HandshakeRecord {
        v: V1,
        conn: connection.conn,
        t,
        client_version: session.client_version.map(|v| v.to_string()),
        daemon_version: session.daemon_version.map(|v| v.to_string()),
        version: session.negotiated.as_ref().map(|n| n.version.to_string()),
        features: session
            .negotiated
            .as_ref()
            .map(|n| n.features.clone())
            .unwrap_or_default(),
        client_features: session.client_features.clone(),
        daemon_features: session.daemon_features.clone(),
        nix_version: session.daemon_nix_version.clone(),
        trust: session.trust,
        messages,
        protocol: session.protocol.map(|p| p.name().to_owned()),
        raw: streams.map(|_| HandshakeRaw {
            client: client_raw,
            daemon: daemon_raw,
        }),
    }
}
