//! A capture as a Chrome trace (the Trace Event format's JSON object form),
//! for Perfetto UI, speedscope and other trace viewers.
//!
//! Layout, in trace terms (`docs/TRACE.md` has the details):
//!
//! - each connection is a process (`pid` = the connection id) named after
//!   the connection and its peer, with one thread (`tid` 1, "ops");
//! - each op is a `B`/`E` slice on that thread, from the request to the
//!   reply or error; ops of one connection never overlap, as the protocol
//!   is strictly request–reply;
//! - each daemon activity is a nestable async slice (`b`/`e`, category
//!   `activity`) named by its text (or its type when the text is empty),
//!   with its id, type, level, parent and fields as args; an activity whose
//!   parent is open shares the parent's async id, so viewers nest it under
//!   the parent; each result is an async instant (`n`) on the activity's
//!   track, and the last result of each type is also an arg of the end;
//! - each log line (`STDERR_NEXT`) is a thread instant on the ops thread;
//! - the connection's open, handshake and close are instants too, and so is
//!   any stretch of bytes the decoder could not decode.
//!
//! Nesting is kept strict: an async slice never ends while one nested in it
//! is open. When the daemon stops an activity before a child (activities
//! are not bound to nest), the parent's end waits for its last child and
//! says so in its args (`stoppedAtUs`). Everything still open when a
//! connection ends is ended at its close, marked `unfinished`.
//!
//! The export streams: it reads the capture block by block through
//! [`EventStream`] and writes each trace event as soon as it is known,
//! keeping only the open ops and activities in memory. Timestamps are
//! microseconds since the capture start, non-decreasing within each
//! connection.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{self, Read, Write};

use nixcap_capture::{CloseReason, ConnectionClosed, ConnectionOpened, ReadError};
use nixcap_view::display::{key_argument, reply_summary};
use nixcap_view::stream::{EventStream, StreamItem};
use nixcap_wire::handshake::HandshakePiece;
use nixcap_wire::session::{Direction, Event, EventKind};
use nixcap_wire::stderr::{ErrorInfo, Field, StderrMessage};
use serde_json::{json, Map, Value};

/// The thread of every connection's ops, log lines and instants.
const OPS_TID: u64 = 1;
/// The category of activity slices.
const ACTIVITY_CAT: &str = "activity";
/// How many blocks to read between two progress reports.
const PROGRESS_EVERY: u64 = 256;

/// What a trace export wrote.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct TraceSummary {
    /// Connections exported.
    pub connections: u64,
    /// Ops exported (as slices).
    pub ops: u64,
    /// Activities exported (as async slices).
    pub activities: u64,
    /// Log lines exported (as instants).
    pub log_lines: u64,
    /// Trace events written, metadata included.
    pub events: u64,
    /// Where the capture is damaged, if it is; the trace holds what precedes
    /// the damage, every open slice ended there.
    pub damage: Option<ReadError>,
}

/// Why a trace export failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TraceError {
    /// Writing the output failed.
    #[error("writing the trace failed: {source}")]
    Io {
        /// The I/O error.
        #[from]
        source: io::Error,
    },
}

/// An op between its request and its end.
#[derive(Debug)]
struct OpenOp {
    seq: u64,
    name: String,
    client_bytes: u64,
    daemon_bytes: u64,
}

/// An activity between its start and its end.
#[derive(Debug)]
struct Activity {
    /// The async id of its track: its own id, or its open parent's track.
    track: u64,
    /// The parent, when the activity is nested in it.
    parent: Option<u64>,
    name: String,
    /// Activities nested in this one that are still open.
    open_children: u64,
    /// When the daemon stopped it, if it did while children were open.
    stopped_at: Option<u64>,
    /// The last result of each type, by type name.
    results: Map<String, Value>,
}

/// What the handshake has shown so far.
#[derive(Debug, Default)]
struct Handshake {
    args: Map<String, Value>,
    done: bool,
}

/// One connection being exported.
#[derive(Debug)]
struct Conn {
    pid: u64,
    last_t: u64,
    op: Option<OpenOp>,
    activities: HashMap<u64, Activity>,
    handshake: Handshake,
}

/// Writes trace events, separated by commas, inside `traceEvents`.
struct Sink<W: Write> {
    out: W,
    events: u64,
}

impl<W: Write> Sink<W> {
    fn event(&mut self, event: &Value) -> io::Result<()> {
        if self.events > 0 {
            self.out.write_all(b",\n")?;
        }
        serde_json::to_writer(&mut self.out, event)?;
        self.events += 1;
        Ok(())
    }
}

/// Microseconds, as a JSON number with nanosecond precision.
fn ts(nanos: u64) -> Value {
    let micros = serde_json::Number::from_f64(nanos as f64 / 1000.0);
    micros.map_or_else(|| Value::from(nanos / 1000), Value::Number)
}

/// The async id of an activity track: activity ids are unique per daemon
/// worker, and a worker serves one connection, but pids are reused.
fn async_id(conn: u64, activity: u64) -> String {
    format!("{conn}:{activity:#x}")
}

fn field_value(field: &Field) -> Value {
    match field {
        Field::Int(value) => Value::from(*value),
        Field::String(text) => Value::from(text.to_string_lossy().into_owned()),
    }
}

fn fields_value(fields: &[Field]) -> Value {
    Value::Array(fields.iter().map(field_value).collect())
}

fn close_reason(reason: &CloseReason) -> String {
    match reason {
        CloseReason::CleanEof => "clean".to_owned(),
        CloseReason::Reset => "reset".to_owned(),
        CloseReason::UpstreamUnreachable { message } => format!("upstream unreachable: {message}"),
        CloseReason::Error { message } => format!("error: {message}"),
        other => format!("{other:?}"),
    }
}

fn error_message(error: &ErrorInfo) -> String {
    error.message().to_string_lossy().into_owned()
}

/// The exporter's state across connections.
struct Exporter<W: Write> {
    sink: Sink<W>,
    conns: HashMap<u64, Conn>,
    summary: TraceSummary,
}

impl<W: Write> Exporter<W> {
    fn opened(&mut self, opened: &ConnectionOpened) -> io::Result<()> {
        let pid = opened.conn;
        let mut label = format!("conn {}", opened.conn);
        let mut args = Map::new();
        if let Some(peer) = &opened.peer {
            if let Some(peer_pid) = peer.pid {
                let _ = write!(label, " · pid {peer_pid}");
                args.insert("peerPid".into(), Value::from(peer_pid));
            }
            let _ = write!(label, " · uid {}", peer.uid);
            args.insert("peerUid".into(), Value::from(peer.uid));
            args.insert("peerGid".into(), Value::from(peer.gid));
        }
        for (key, value) in &opened.metadata {
            args.insert(key.clone(), Value::from(value.clone()));
        }
        self.sink.event(&json!({
            "ph": "M", "name": "process_name", "pid": pid, "tid": OPS_TID,
            "args": { "name": label },
        }))?;
        self.sink.event(&json!({
            "ph": "M", "name": "process_sort_index", "pid": pid, "tid": OPS_TID,
            "args": { "sort_index": opened.conn },
        }))?;
        self.sink.event(&json!({
            "ph": "M", "name": "thread_name", "pid": pid, "tid": OPS_TID,
            "args": { "name": "ops" },
        }))?;
        self.sink.event(&json!({
            "ph": "i", "s": "t", "name": "open", "cat": "connection", "pid": pid,
            "tid": OPS_TID, "ts": ts(opened.t_nanos), "args": args,
        }))?;
        self.summary.connections += 1;
        self.conns.insert(
            opened.conn,
            Conn {
                pid,
                last_t: opened.t_nanos,
                op: None,
                activities: HashMap::new(),
                handshake: Handshake::default(),
            },
        );
        Ok(())
    }

    fn event(&mut self, conn_id: u64, t_nanos: u64, event: &Event) -> io::Result<()> {
        let Some(conn) = self.conns.get_mut(&conn_id) else {
            return Ok(());
        };
        conn.last_t = conn.last_t.max(t_nanos);
        let t = conn.last_t;
        let pid = conn.pid;
        if let Some(op) = &mut conn.op {
            if event.kind.seq() == Some(op.seq) {
                match event.direction {
                    Direction::ClientToDaemon => op.client_bytes += event.len,
                    Direction::DaemonToClient => op.daemon_bytes += event.len,
                }
            }
        }
        match &event.kind {
            EventKind::Handshake { piece } => self.handshake(conn_id, t, piece)?,
            EventKind::Request { seq, request } => {
                let name = request.op().name().to_owned();
                let mut args = Map::new();
                if let Some(key) = key_argument(request) {
                    args.insert("argument".into(), Value::from(key));
                }
                self.begin_op(conn_id, pid, t, *seq, name, args, event.len)?;
            }
            EventKind::Reply { seq, reply }
                if conn.op.as_ref().is_some_and(|op| op.seq == *seq) =>
            {
                self.end_op(conn_id, t, json!({ "reply": reply_summary(reply) }))?;
            }
            // A serve-protocol command is an op like a worker-protocol one; those without a
            // structured reply (a NAR or an export stream) end at the next command or the close.
            EventKind::ServeRequest { seq, request } => {
                let name = request.command().map_or_else(
                    || format!("serve command {}", request.word()),
                    |command| command.name().to_owned(),
                );
                self.begin_op(conn_id, pid, t, *seq, name, Map::new(), event.len)?;
            }
            EventKind::ServeReply { seq, .. }
                if conn.op.as_ref().is_some_and(|op| op.seq == *seq) =>
            {
                self.end_op(conn_id, t, json!({}))?;
            }
            EventKind::Stderr { seq, message } => {
                if let StderrMessage::Error(error) = message {
                    if seq.is_some() && conn.op.as_ref().map(|op| op.seq) == *seq {
                        self.end_op(conn_id, t, json!({ "error": error_message(error) }))?;
                        return Ok(());
                    }
                }
                self.log_message(conn_id, t, message)?;
            }
            EventKind::Opaque { reason, data } | EventKind::Truncated { reason, data } => {
                let name = if matches!(event.kind, EventKind::Opaque { .. }) {
                    "undecoded bytes"
                } else {
                    "truncated bytes"
                };
                self.sink.event(&json!({
                    "ph": "i", "s": "t", "name": name, "cat": "decoder", "pid": pid,
                    "tid": OPS_TID, "ts": ts(t),
                    "args": {
                        "reason": reason, "bytes": data.len(), "offset": event.offset,
                        "direction": event.direction.arrow(),
                    },
                }))?;
            }
            _ => {}
        }
        Ok(())
    }

    fn handshake(&mut self, conn_id: u64, t: u64, piece: &HandshakePiece) -> io::Result<()> {
        let Some(conn) = self.conns.get_mut(&conn_id) else {
            return Ok(());
        };
        let args = &mut conn.handshake.args;
        match piece {
            HandshakePiece::ClientHello(hello) => {
                args.insert(
                    "clientVersion".into(),
                    Value::from(hello.version.to_string()),
                );
            }
            HandshakePiece::DaemonHello(hello) => {
                args.insert(
                    "daemonVersion".into(),
                    Value::from(hello.version.to_string()),
                );
            }
            HandshakePiece::DaemonNixVersion { version } => {
                args.insert(
                    "daemonNixVersion".into(),
                    Value::from(version.to_string_lossy().into_owned()),
                );
            }
            HandshakePiece::DaemonTrust { trust } => {
                args.insert("trust".into(), Value::from(format!("{trust:?}")));
            }
            HandshakePiece::DaemonStderr { message } => {
                if message.ends_work() {
                    if let StderrMessage::Error(error) = message {
                        args.insert("error".into(), Value::from(error_message(error)));
                    }
                    conn.handshake.done = true;
                    let args = std::mem::take(&mut conn.handshake.args);
                    let pid = conn.pid;
                    self.sink.event(&json!({
                        "ph": "i", "s": "t", "name": "handshake", "cat": "connection",
                        "pid": pid, "tid": OPS_TID, "ts": ts(t), "args": args,
                    }))?;
                } else {
                    self.log_message(conn_id, t, message)?;
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Opens op `seq` of a connection (ending one still open as unfinished).
    #[allow(clippy::too_many_arguments)]
    fn begin_op(
        &mut self,
        conn_id: u64,
        pid: u64,
        t: u64,
        seq: u64,
        name: String,
        mut args: Map<String, Value>,
        request_bytes: u64,
    ) -> io::Result<()> {
        if self
            .conns
            .get(&conn_id)
            .is_some_and(|conn| conn.op.is_some())
        {
            self.end_op(conn_id, t, json!({ "unfinished": true }))?;
        }
        args.insert("seq".into(), Value::from(seq));
        self.sink.event(&json!({
            "ph": "B", "name": name, "cat": "op", "pid": pid, "tid": OPS_TID,
            "ts": ts(t), "args": args,
        }))?;
        self.summary.ops += 1;
        if let Some(conn) = self.conns.get_mut(&conn_id) {
            conn.op = Some(OpenOp {
                seq,
                name,
                client_bytes: request_bytes,
                daemon_bytes: 0,
            });
        }
        Ok(())
    }

    fn end_op(&mut self, conn_id: u64, t: u64, extra: Value) -> io::Result<()> {
        let Some(conn) = self.conns.get_mut(&conn_id) else {
            return Ok(());
        };
        let Some(op) = conn.op.take() else {
            return Ok(());
        };
        let mut args = Map::new();
        if let Value::Object(extra) = extra {
            args.extend(extra);
        }
        args.insert("clientBytes".into(), Value::from(op.client_bytes));
        args.insert("daemonBytes".into(), Value::from(op.daemon_bytes));
        let pid = conn.pid;
        self.sink.event(&json!({
            "ph": "E", "name": op.name, "cat": "op", "pid": pid, "tid": OPS_TID,
            "ts": ts(t), "args": args,
        }))
    }

    fn log_message(&mut self, conn_id: u64, t: u64, message: &StderrMessage) -> io::Result<()> {
        let Some(conn) = self.conns.get_mut(&conn_id) else {
            return Ok(());
        };
        let pid = conn.pid;
        match message {
            StderrMessage::Next { text } => {
                let text = text.to_string_lossy();
                self.sink.event(&json!({
                    "ph": "i", "s": "t", "name": text.trim_end(), "cat": "log", "pid": pid,
                    "tid": OPS_TID, "ts": ts(t),
                }))?;
                self.summary.log_lines += 1;
            }
            StderrMessage::StartActivity {
                id,
                level,
                activity_type,
                text,
                fields,
                parent,
            } => {
                let type_name = activity_type.name().map_or_else(
                    || format!("activity type {}", activity_type.0),
                    str::to_owned,
                );
                let text = text.to_string_lossy();
                let name = if text.is_empty() {
                    type_name.clone()
                } else {
                    text.into_owned()
                };
                let nested = conn.activities.get_mut(parent).map(|p| {
                    p.open_children += 1;
                    p.track
                });
                let track = nested.unwrap_or(*id);
                if conn.activities.contains_key(id) {
                    // A second start of an open id: end the first.
                    self.stop_activity(conn_id, t, *id, Some("restarted"))?;
                }
                let Some(conn) = self.conns.get_mut(&conn_id) else {
                    return Ok(());
                };
                conn.activities.insert(
                    *id,
                    Activity {
                        track,
                        parent: nested.map(|_| *parent),
                        name: name.clone(),
                        open_children: 0,
                        stopped_at: None,
                        results: Map::new(),
                    },
                );
                self.sink.event(&json!({
                    "ph": "b", "name": name, "cat": ACTIVITY_CAT, "id": async_id(conn_id, track),
                    "pid": pid, "tid": OPS_TID, "ts": ts(t),
                    "args": {
                        "id": id, "type": type_name, "level": level, "parent": parent,
                        "fields": fields_value(fields),
                    },
                }))?;
                self.summary.activities += 1;
            }
            StderrMessage::StopActivity { id } => self.stop_activity(conn_id, t, *id, None)?,
            StderrMessage::Result {
                id,
                result_type,
                fields,
            } => {
                let Some(activity) = conn.activities.get_mut(id) else {
                    return Ok(());
                };
                let type_name = result_type
                    .name()
                    .map_or_else(|| format!("result type {}", result_type.0), str::to_owned);
                activity
                    .results
                    .insert(type_name.clone(), fields_value(fields));
                let name = match fields.first() {
                    Some(Field::String(line))
                        if matches!(result_type.0, 101 | 104 | 107) && !line.is_empty() =>
                    {
                        line.to_string_lossy().into_owned()
                    }
                    _ => type_name.clone(),
                };
                let track = activity.track;
                self.sink.event(&json!({
                    "ph": "n", "name": name, "cat": ACTIVITY_CAT, "id": async_id(conn_id, track),
                    "pid": pid, "tid": OPS_TID, "ts": ts(t),
                    "args": { "activity": id, "type": type_name, "fields": fields_value(fields) },
                }))?;
            }
            StderrMessage::Error(error) => {
                // An error outside any op, such as the second one of a
                // fatal error.
                self.sink.event(&json!({
                    "ph": "i", "s": "t", "name": "error", "cat": "log", "pid": pid,
                    "tid": OPS_TID, "ts": ts(t), "args": { "message": error_message(error) },
                }))?;
            }
            StderrMessage::Read { .. } | StderrMessage::Write { .. } | StderrMessage::Last => {}
        }
        Ok(())
    }

    /// Ends activity `id`, or marks it stopped while children are open; then
    /// ends any parent that was only waiting for it.
    fn stop_activity(
        &mut self,
        conn_id: u64,
        t: u64,
        id: u64,
        unfinished: Option<&str>,
    ) -> io::Result<()> {
        let Some(conn) = self.conns.get_mut(&conn_id) else {
            return Ok(());
        };
        let pid = conn.pid;
        let mut next = Some(id);
        let mut stopped_now = true;
        while let Some(id) = next.take() {
            let Some(activity) = conn.activities.get_mut(&id) else {
                break;
            };
            if activity.open_children > 0 {
                if stopped_now {
                    activity.stopped_at = Some(t);
                }
                break;
            }
            let Some(activity) = conn.activities.remove(&id) else {
                break;
            };
            let mut args = Map::new();
            if !activity.results.is_empty() {
                args.insert("results".into(), Value::Object(activity.results));
            }
            if let Some(stopped) = activity.stopped_at {
                args.insert("stoppedAtUs".into(), ts(stopped));
            }
            if stopped_now {
                if let Some(why) = unfinished {
                    args.insert("unfinished".into(), Value::from(why));
                }
            }
            self.sink.event(&json!({
                "ph": "e", "name": activity.name, "cat": ACTIVITY_CAT,
                "id": async_id(conn_id, activity.track), "pid": pid, "tid": OPS_TID, "ts": ts(t),
                "args": args,
            }))?;
            // The parent may have been waiting for this child.
            if let Some(parent_id) = activity.parent {
                if let Some(parent) = conn.activities.get_mut(&parent_id) {
                    parent.open_children = parent.open_children.saturating_sub(1);
                    if parent.open_children == 0 && parent.stopped_at.is_some() {
                        next = Some(parent_id);
                        stopped_now = false;
                    }
                }
            }
        }
        Ok(())
    }

    /// Ends everything still open on a connection, then writes its close.
    fn closed(
        &mut self,
        conn_id: u64,
        t_nanos: u64,
        closed: Option<&ConnectionClosed>,
        why: &str,
    ) -> io::Result<()> {
        let Some(conn) = self.conns.get_mut(&conn_id) else {
            return Ok(());
        };
        conn.last_t = conn.last_t.max(t_nanos);
        let t = conn.last_t;
        if conn.op.is_some() {
            self.end_op(conn_id, t, json!({ "unfinished": why }))?;
        }
        // Innermost first: an activity with no open children can end.
        while let Some(id) = self.conns.get(&conn_id).and_then(|conn| {
            conn.activities
                .iter()
                .filter(|(_, a)| a.open_children == 0)
                .map(|(id, _)| *id)
                .min()
        }) {
            self.stop_activity(conn_id, t, id, Some(why))?;
        }
        let Some(conn) = self.conns.remove(&conn_id) else {
            return Ok(());
        };
        if !conn.handshake.done && !conn.handshake.args.is_empty() {
            let mut args = conn.handshake.args;
            args.insert("unfinished".into(), Value::from(why));
            self.sink.event(&json!({
                "ph": "i", "s": "t", "name": "handshake", "cat": "connection",
                "pid": conn.pid, "tid": OPS_TID, "ts": ts(t), "args": args,
            }))?;
        }
        let args = match closed {
            Some(closed) => json!({
                "reason": close_reason(&closed.reason),
                "clientToDaemonBytes": closed.client_to_server.bytes,
                "daemonToClientBytes": closed.server_to_client.bytes,
            }),
            None => json!({ "reason": why }),
        };
        self.sink.event(&json!({
            "ph": "i", "s": "t", "name": "close", "cat": "connection", "pid": conn.pid,
            "tid": OPS_TID, "ts": ts(t), "args": args,
        }))
    }
}

/// Writes the capture read by `stream` as a Chrome trace to `out`.
///
/// `progress` is called now and then with the number of capture bytes read
/// so far. A damaged capture is not an error: what precedes the damage is
/// exported, and the damage is in [`TraceSummary::damage`].
pub fn export_chrome_trace<R: Read, W: Write>(
    mut stream: EventStream<R>,
    mut out: W,
    progress: &mut dyn FnMut(u64),
) -> Result<TraceSummary, TraceError> {
    let header = stream.header().clone();
    let other = json!({
        "tool": header.tool_version,
        "captureStartUnixNanos": header.start_unix_nanos,
        "metadata": header.metadata,
        "exportedBy": format!("nixcap {}", env!("CARGO_PKG_VERSION")),
    });
    out.write_all(b"{\"displayTimeUnit\":\"ms\",\"otherData\":")?;
    serde_json::to_writer(&mut out, &other).map_err(io::Error::from)?;
    out.write_all(b",\"traceEvents\":[\n")?;
    let mut exporter = Exporter {
        sink: Sink { out, events: 0 },
        conns: HashMap::new(),
        summary: TraceSummary::default(),
    };
    let mut items = 0u64;
    while let Some(item) = stream.next() {
        items += 1;
        if items % PROGRESS_EVERY == 0 {
            progress(stream.file_bytes());
        }
        match item {
            Ok(StreamItem::Opened(opened)) => exporter.opened(&opened)?,
            Ok(StreamItem::Event {
                conn,
                t_nanos,
                event,
            }) => exporter.event(conn, t_nanos, &event)?,
            Ok(StreamItem::Closed {
                conn,
                t_nanos,
                closed,
            }) => {
                let why = if closed.is_some() {
                    "connection closed"
                } else {
                    "capture ended"
                };
                exporter.closed(conn, t_nanos, closed.as_ref(), why)?;
            }
            Err(err) => exporter.summary.damage = Some(err),
        }
    }
    progress(stream.file_bytes());
    let mut sink = exporter.sink;
    sink.out.write_all(b"\n]}\n")?;
    sink.out.flush()?;
    let mut summary = exporter.summary;
    summary.events = sink.events;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use nixcap_wire::stderr::ActivityType;
    use nixcap_wire::ByteString;

    fn start(id: u64, parent: u64, text: &str) -> StderrMessage {
        StderrMessage::StartActivity {
            id,
            level: 3,
            activity_type: ActivityType::COPY_PATH,
            text: ByteString::from(text),
            fields: vec![Field::Int(1)],
            parent,
        }
    }

    /// Runs log messages of one connection through an exporter, one per
    /// microsecond, and returns the (phase, name, async id, ts) of each
    /// activity event written, and the events as JSON.
    fn run(messages: &[StderrMessage]) -> Vec<(String, String, String, f64, Value)> {
        let mut exporter = Exporter {
            sink: Sink {
                out: Vec::new(),
                events: 0,
            },
            conns: HashMap::new(),
            summary: TraceSummary::default(),
        };
        let opened = ConnectionOpened {
            conn: 1,
            t_nanos: 0,
            peer: None,
            metadata: Default::default(),
        };
        exporter.opened(&opened).unwrap();
        for (i, message) in messages.iter().enumerate() {
            let event = Event {
                direction: Direction::DaemonToClient,
                offset: 0,
                len: 8,
                kind: EventKind::Stderr {
                    seq: Some(0),
                    message: message.clone(),
                },
            };
            exporter.event(1, (i as u64 + 1) * 1000, &event).unwrap();
        }
        exporter
            .closed(1, 1_000_000, None, "capture ended")
            .unwrap();
        let text = format!("[{}]", String::from_utf8(exporter.sink.out).unwrap());
        let events: Vec<Value> = serde_json::from_str(&text).unwrap();
        events
            .into_iter()
            .filter(|e| e["cat"] == ACTIVITY_CAT)
            .map(|e| {
                (
                    e["ph"].as_str().unwrap().to_owned(),
                    e["name"].as_str().unwrap().to_owned(),
                    e["id"].as_str().unwrap().to_owned(),
                    e["ts"].as_f64().unwrap(),
                    e,
                )
            })
            .collect()
    }

    #[test]
    fn a_child_shares_its_open_parents_track() {
        let events = run(&[
            start(10, 0, "copying paths"),
            start(11, 10, "copying a"),
            StderrMessage::StopActivity { id: 11 },
            StderrMessage::StopActivity { id: 10 },
            start(12, 10, "parent gone"),
            StderrMessage::StopActivity { id: 12 },
        ]);
        let summary: Vec<(&str, &str, &str)> = events
            .iter()
            .map(|(ph, name, id, _, _)| (ph.as_str(), name.as_str(), id.as_str()))
            .collect();
        assert_eq!(
            summary,
            [
                ("b", "copying paths", "1:0xa"),
                ("b", "copying a", "1:0xa"),
                ("e", "copying a", "1:0xa"),
                ("e", "copying paths", "1:0xa"),
                ("b", "parent gone", "1:0xc"),
                ("e", "parent gone", "1:0xc"),
            ]
        );
    }

    #[test]
    fn a_parent_stopped_before_its_child_ends_after_it() {
        let events = run(&[
            start(10, 0, "parent"),
            start(11, 10, "child"),
            StderrMessage::StopActivity { id: 10 },
            StderrMessage::Result {
                id: 11,
                result_type: nixcap_wire::stderr::ResultType::BUILD_LOG_LINE,
                fields: vec![Field::String(ByteString::from("a line"))],
            },
            StderrMessage::StopActivity { id: 11 },
        ]);
        let order: Vec<(&str, &str)> = events
            .iter()
            .map(|(ph, name, ..)| (ph.as_str(), name.as_str()))
            .collect();
        assert_eq!(
            order,
            [
                ("b", "parent"),
                ("b", "child"),
                ("n", "a line"),
                ("e", "child"),
                ("e", "parent"),
            ]
        );
        let parent_end = &events[4];
        // It ends with its child (5 µs) and says when the daemon stopped it (3 µs).
        assert_eq!(parent_end.3, 5.0);
        assert_eq!(parent_end.4["args"]["stoppedAtUs"], 3.0);
        assert_eq!(
            events[3].4["args"]["results"]["resBuildLogLine"][0],
            "a line"
        );
    }

    #[test]
    fn activities_left_open_end_at_the_close_innermost_first() {
        let events = run(&[start(10, 0, "outer"), start(11, 10, "inner")]);
        let order: Vec<(&str, &str, f64)> = events
            .iter()
            .map(|(ph, name, _, ts, _)| (ph.as_str(), name.as_str(), *ts))
            .collect();
        assert_eq!(
            order,
            [
                ("b", "outer", 1.0),
                ("b", "inner", 2.0),
                ("e", "inner", 1000.0),
                ("e", "outer", 1000.0),
            ]
        );
        assert_eq!(events[2].4["args"]["unfinished"], "capture ended");
    }
}
