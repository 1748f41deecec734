//! The text view of a capture: one line per operation, as `nixcap show`
//! prints it, with optional detail (`verbose`) and hex dumps (`raw`).
//!
//! ```text
//!    1  0.000012  open  pid 4242, uid 1000, gid 100
//!    1  0.000340  handshake  protocol 1.38 (client 1.38, daemon 1.38), Nix 2.26.3, trusted
//!    1  0.000410  #0 SetOptions → ok (62µs, ↑196 B ↓8 B)
//!    1  0.000520  #1 QueryPathInfo /nix/store/6vcyk9z…-hello-2.12.1 → valid, narSize 226560 (31µs, ↑56 B ↓512 B)
//! ```
//!
//! Each connection's lines are in decoding order; the lines of different
//! connections are merged by time (or, without timestamps, shown one
//! connection after the other). Text that comes from the capture (log
//! lines, error messages, paths) is cleaned of terminal escape sequences
//! and control characters before it is printed.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap};
use std::fmt::Write as _;
use std::io::{self, Write};

use nixcap_wire::handshake::Trust;
use nixcap_wire::ops::Op;
use nixcap_wire::session::{Direction, EventKind};
use nixcap_wire::stderr::{ErrorInfo, StderrMessage};
use serde_json::Value;

mod describe;

use crate::display::{key_argument, reply_summary, serve_reply_summary, serve_request_summary};
use crate::{DecodedCapture, DecodedConnection, Exchange, Outcome};

/// Kept here too for callers of the text view; they live in [`crate::display`].
pub use crate::display::{clean, shorten_store_paths, shorten_store_paths_keeping};
pub use describe::{damage_report, hex_dump};

use describe::{
    duration, first_line, items_text, kind_name, message_text, nar_text, piece_text, scalar,
    seconds, size,
};

/// What to show and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Show times and durations. Off makes the output independent of
    /// timing (for tests and for comparing captures): JSON times become 0,
    /// and connections are shown one after the other instead of merged by
    /// time.
    pub timestamps: bool,
    /// Show every field of requests and replies and every log message
    /// (text only; JSON always has everything).
    pub verbose: bool,
    /// Show each event's bytes: a hex dump in text, a `raw` hex field in
    /// JSON.
    pub raw: bool,
    /// Use ANSI colours (text only).
    pub color: bool,
    /// Only these connections; empty means all.
    pub conns: Vec<u64>,
    /// Only these ops; empty means all.
    pub ops: Vec<Op>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            timestamps: true,
            verbose: false,
            raw: false,
            color: false,
            conns: Vec::new(),
            ops: Vec::new(),
        }
    }
}

impl Options {
    /// Whether nothing is filtered out.
    pub fn selects_everything(&self) -> bool {
        self.conns.is_empty() && self.ops.is_empty()
    }

    /// Whether connection `conn` is shown.
    pub fn selects_conn(&self, conn: u64) -> bool {
        self.conns.is_empty() || self.conns.contains(&conn)
    }

    /// Whether an op is shown.
    pub fn selects_op(&self, op: Option<Op>) -> bool {
        self.ops.is_empty() || op.is_some_and(|op| self.ops.contains(&op))
    }

    /// Puts the lanes (annotations, then one per connection) in output
    /// order: merged by time, or one after the other without timestamps,
    /// so that the output does not depend on timing at all.
    pub(crate) fn interleave<T>(&self, lanes: Vec<Vec<T>>, time: impl Fn(&T) -> u64) -> Vec<T> {
        if self.timestamps {
            merge_by_time(lanes, time)
        } else {
            lanes.into_iter().flatten().collect()
        }
    }

    /// The op numbers of `connection` that are shown, or `None` when no op
    /// filter is active (then events outside ops are shown too).
    pub(crate) fn selected_seqs(&self, connection: &DecodedConnection) -> Option<BTreeSet<u64>> {
        if self.ops.is_empty() {
            return None;
        }
        Some(
            connection
                .exchanges
                .iter()
                .filter(|e| self.selects_op(e.op))
                .map(|e| e.seq)
                .collect(),
        )
    }
}

/// Both byte streams of a connection, for raw dumps.
#[derive(Debug)]
pub(crate) struct Streams {
    client: Vec<u8>,
    daemon: Vec<u8>,
}

impl Streams {
    pub(crate) fn of(connection: &nixcap_capture::Connection) -> Streams {
        Streams {
            client: connection.stream(nixcap_capture::Direction::ClientToServer),
            daemon: connection.stream(nixcap_capture::Direction::ServerToClient),
        }
    }

    /// The bytes of `dir` at `offset..offset + len`, cut to what exists.
    pub(crate) fn slice(&self, dir: Direction, offset: u64, len: u64) -> &[u8] {
        let stream = match dir {
            Direction::ClientToDaemon => &self.client,
            Direction::DaemonToClient => &self.daemon,
        };
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(stream.len());
        let end = usize::try_from(offset.saturating_add(len))
            .unwrap_or(usize::MAX)
            .min(stream.len());
        &stream[start..end]
    }
}

/// Merges lanes (one per connection) by time: repeatedly takes the head
/// with the smallest time, earlier lanes first on ties. The items of one
/// lane keep their order.
pub(crate) fn merge_by_time<T>(lanes: Vec<Vec<T>>, time: impl Fn(&T) -> u64) -> Vec<T> {
    let total = lanes.iter().map(Vec::len).sum();
    let mut iters: Vec<std::iter::Peekable<std::vec::IntoIter<T>>> = lanes
        .into_iter()
        .map(|l| l.into_iter().peekable())
        .collect();
    let mut heap = BinaryHeap::new();
    for (lane, iter) in iters.iter_mut().enumerate() {
        if let Some(head) = iter.peek() {
            heap.push(Reverse((time(head), lane)));
        }
    }
    let mut out = Vec::with_capacity(total);
    while let Some(Reverse((_, lane))) = heap.pop() {
        if let Some(item) = iters[lane].next() {
            out.push(item);
        }
        if let Some(head) = iters[lane].peek() {
            heap.push(Reverse((time(head), lane)));
        }
    }
    out
}

const BOLD: &str = "\x1b[1m";
const DIM: &str = "\x1b[2m";
const RED: &str = "\x1b[31m";
const YELLOW: &str = "\x1b[33m";
const CYAN: &str = "\x1b[36m";
const RESET: &str = "\x1b[0m";

/// What one line of the text view is about.
#[derive(Debug, Clone, Copy)]
enum Item {
    Annotation(usize),
    Open(usize),
    Handshake(usize),
    Exchange(usize, usize),
    /// An opaque or truncated run of one direction: connection, the
    /// indices of its events.
    Undecoded(usize, usize),
    Stray(usize, usize),
    Close(usize),
}

/// Writes the text view of `capture`.
pub fn write_text(
    out: &mut impl Write,
    capture: &DecodedCapture,
    options: &Options,
) -> io::Result<()> {
    let mut lanes: Vec<Vec<(u64, Item)>> = Vec::new();
    if options.selects_everything() {
        lanes.push(
            capture
                .capture
                .annotations
                .iter()
                .enumerate()
                .map(|(i, (_, a))| (a.t_nanos, Item::Annotation(i)))
                .collect(),
        );
    }
    let mut runs: Vec<Vec<Vec<usize>>> = Vec::new();
    for (k, connection) in capture.connections.iter().enumerate() {
        let (lane, conn_runs) = if options.selects_conn(connection.conn) {
            connection_items(k, connection, options)
        } else {
            (Vec::new(), Vec::new())
        };
        lanes.push(lane);
        runs.push(conn_runs);
    }
    let items = options.interleave(lanes, |(t, _)| *t);
    let mut r = Renderer {
        capture,
        options,
        streams: Vec::new(),
        buf: String::new(),
    };
    if options.raw {
        r.streams = capture
            .capture
            .connections
            .iter()
            .map(Streams::of)
            .collect();
    }
    for (t, item) in items {
        r.buf.clear();
        match item {
            Item::Annotation(i) => {
                if let Some((_, a)) = capture.capture.annotations.get(i) {
                    r.prefix("-", t);
                    let text = clean(&a.text);
                    r.push_str(&format!("note: {text}"));
                    r.newline();
                }
            }
            Item::Open(k) => r.open(k, t),
            Item::Handshake(k) => r.handshake(k, t),
            Item::Exchange(k, e) => r.exchange(k, e),
            Item::Undecoded(k, run) => r.undecoded(k, &runs[k][run], t),
            Item::Stray(k, index) => r.stray(k, index, t),
            Item::Close(k) => r.close(k, t),
        }
        out.write_all(r.buf.as_bytes())?;
    }
    Ok(())
}

/// The lines of one connection, with the runs of undecoded events they
/// refer to.
fn connection_items(
    k: usize,
    connection: &DecodedConnection,
    options: &Options,
) -> (Vec<(u64, Item)>, Vec<Vec<usize>>) {
    let mut items = Vec::new();
    let mut runs: Vec<Vec<usize>> = Vec::new();
    let everything = options.ops.is_empty();
    if everything {
        items.push((connection.opened.t_nanos, Item::Open(k)));
    }
    let exchange_at: std::collections::HashMap<usize, usize> = connection
        .exchanges
        .iter()
        .enumerate()
        .filter(|(_, e)| options.selects_op(e.op))
        .filter_map(|(i, e)| e.events.first().map(|&first| (first, i)))
        .collect();
    // The handshake line comes first, stamped with the time the handshake
    // was complete.
    let handshake_t = connection
        .events
        .iter()
        .rev()
        .find(|e| e.event.kind.is_handshake())
        .map(|e| e.t_nanos);
    if let (true, Some(t)) = (everything, handshake_t) {
        items.push((t, Item::Handshake(k)));
    }
    // The open run of undecoded events per direction: index into `runs`.
    let mut open_run: [Option<usize>; 2] = [None, None];
    for (index, timed) in connection.events.iter().enumerate() {
        if let Some(&e) = exchange_at.get(&index) {
            items.push((connection.exchanges[e].start_nanos, Item::Exchange(k, e)));
        }
        if !everything {
            continue;
        }
        let kind = &timed.event.kind;
        let lane = match timed.event.direction {
            Direction::ClientToDaemon => 0,
            Direction::DaemonToClient => 1,
        };
        match kind {
            EventKind::Opaque { .. } | EventKind::Truncated { .. } => {
                let same_kind = open_run[lane].is_some_and(|run| {
                    runs[run].last().is_some_and(|&prev| {
                        std::mem::discriminant(&connection.events[prev].event.kind)
                            == std::mem::discriminant(kind)
                    })
                });
                match open_run[lane] {
                    Some(run) if same_kind => runs[run].push(index),
                    _ => {
                        runs.push(vec![index]);
                        open_run[lane] = Some(runs.len() - 1);
                        items.push((timed.t_nanos, Item::Undecoded(k, runs.len() - 1)));
                    }
                }
                continue;
            }
            EventKind::Stderr { seq: None, .. } => {
                items.push((timed.t_nanos, Item::Stray(k, index)));
            }
            _ => {}
        }
        open_run[lane] = None;
    }
    if everything {
        if let Some(closed) = &connection.closed {
            items.push((closed.t_nanos, Item::Close(k)));
        }
    }
    (items, runs)
}

struct Renderer<'a> {
    capture: &'a DecodedCapture,
    options: &'a Options,
    streams: Vec<Streams>,
    buf: String,
}

impl Renderer<'_> {
    fn push_str(&mut self, s: &str) {
        self.buf.push_str(s);
    }

    fn newline(&mut self) {
        self.buf.push('\n');
    }

    fn paint(&mut self, color: &str, text: &str) {
        if self.options.color {
            self.buf.push_str(color);
            self.buf.push_str(text);
            self.buf.push_str(RESET);
        } else {
            self.buf.push_str(text);
        }
    }

    fn prefix(&mut self, conn: &str, t: u64) {
        let mut head = format!("{conn:>4}");
        if self.options.timestamps {
            let _ = write!(head, " {:>11}", seconds(t));
        }
        head.push_str("  ");
        self.paint(DIM, &head);
    }

    /// Indentation of detail lines: under the start of the line's body.
    fn indent(&self) -> usize {
        if self.options.timestamps {
            4 + 1 + 11 + 2 + 2
        } else {
            4 + 2 + 2
        }
    }

    fn detail(&mut self, depth: usize, text: &str) {
        let pad = self.indent() + depth * 2;
        let _ = writeln!(self.buf, "{:pad$}{text}", "");
    }

    fn open(&mut self, k: usize, t: u64) {
        let connection = &self.capture.connections[k];
        self.prefix(&connection.conn.to_string(), t);
        self.paint(CYAN, "open");
        let mut parts = Vec::new();
        if let Some(peer) = &connection.opened.peer {
            if let Some(pid) = peer.pid {
                parts.push(format!("pid {pid}"));
            }
            parts.push(format!("uid {}", peer.uid));
            parts.push(format!("gid {}", peer.gid));
        }
        for (key, value) in &connection.opened.metadata {
            parts.push(format!("{}={}", clean(key), clean(value)));
        }
        if !parts.is_empty() {
            self.push_str("  ");
            self.push_str(&parts.join(", "));
        }
        self.newline();
    }

    fn handshake(&mut self, k: usize, t: u64) {
        let connection = &self.capture.connections[k];
        let session = &connection.session;
        self.prefix(&connection.conn.to_string(), t);
        self.paint(CYAN, "handshake");
        self.push_str("  ");
        let show =
            |v: Option<nixcap_wire::ProtocolVersion>| v.map_or("?".to_owned(), |v| v.to_string());
        let mut parts = Vec::new();
        let protocol = match session.protocol {
            Some(nixcap_wire::session::Protocol::Serve) => "serve protocol",
            _ => "protocol",
        };
        match &session.negotiated {
            Some(n) => parts.push(format!(
                "{protocol} {} (client {}, daemon {})",
                n.version,
                show(session.client_version),
                show(session.daemon_version)
            )),
            None => parts.push(format!(
                "incomplete (client {}, daemon {})",
                show(session.client_version),
                show(session.daemon_version)
            )),
        }
        if let Some(version) = &session.daemon_nix_version {
            parts.push(format!("Nix {}", clean(&version.to_string_lossy())));
        }
        if let Some(trust) = session.trust {
            parts.push(
                match trust {
                    Trust::Trusted => "trusted",
                    Trust::NotTrusted => "not trusted",
                    Trust::Unknown => "trust unknown",
                }
                .to_owned(),
            );
        }
        if let Some(n) = &session.negotiated {
            if !n.features.is_empty() {
                parts.push(format!("features {}", n.features.join(",")));
            }
        }
        self.push_str(&parts.join(", "));
        self.newline();
        let events: Vec<usize> = connection
            .events
            .iter()
            .enumerate()
            .filter(|(_, e)| e.event.kind.is_handshake())
            .map(|(i, _)| i)
            .collect();
        if self.options.verbose {
            for &index in &events {
                let timed = &connection.events[index];
                let text = match &timed.event.kind {
                    EventKind::Handshake { piece } => piece_text(piece),
                    EventKind::ServeHello { hello } => format!(
                        "serve hello, magic {:#x}, version {}",
                        hello.magic, hello.version
                    ),
                    _ => continue,
                };
                let line = format!("{} {}", timed.event.direction.arrow(), text);
                self.detail(0, &line);
            }
        }
        self.dump_events(k, &events);
    }

    fn exchange(&mut self, k: usize, e: usize) {
        let connection = &self.capture.connections[k];
        let exchange = &connection.exchanges[e];
        self.prefix(&connection.conn.to_string(), exchange.start_nanos);
        self.push_str(&format!("#{} ", exchange.seq));
        self.paint(BOLD, &exchange.op_name());
        if let Some(key) = exchange.request.as_ref().and_then(key_argument) {
            self.push_str(" ");
            self.push_str(&shorten_store_paths(&clean(&key)));
        }
        if let Some(request) = &exchange.serve_request {
            let summary = serve_request_summary(request);
            let args = summary
                .strip_prefix(&exchange.op_name())
                .unwrap_or(&summary)
                .trim_start();
            if !args.is_empty() {
                self.push_str(" ");
                self.push_str(&shorten_store_paths(&clean(args)));
            }
        }
        self.push_str(" → ");
        match &exchange.outcome {
            Outcome::Reply(reply) => {
                let summary = shorten_store_paths(&clean(&reply_summary(reply)));
                self.push_str(&summary);
            }
            Outcome::Error(error) => {
                let text = format!("error: {}", first_line(error));
                self.paint(RED, &text);
            }
            Outcome::ServeReply(reply) => {
                let summary = shorten_store_paths(&clean(&serve_reply_summary(reply)));
                self.push_str(&summary);
            }
            Outcome::Downloaded => {
                self.push_str(&format!("{} downloaded", size(exchange.download_bytes)))
            }
            Outcome::Unfinished => self.paint(YELLOW, "unfinished"),
        }
        let mut stats = Vec::new();
        if self.options.timestamps {
            stats.push(duration(
                exchange.end_nanos.saturating_sub(exchange.start_nanos),
            ));
        }
        stats.push(format!(
            "↑{} ↓{}",
            size(exchange.client_bytes),
            size(exchange.daemon_bytes)
        ));
        self.paint(DIM, &format!(" ({})", stats.join(", ")));
        self.newline();
        if self.options.verbose {
            self.exchange_details(connection, exchange);
        }
        self.dump_events(k, &exchange.events);
    }

    fn exchange_details(&mut self, connection: &DecodedConnection, exchange: &Exchange) {
        if let Some(request) = &exchange.request {
            self.detail(0, "request:");
            self.fields(1, request);
        }
        if let Some(request) = &exchange.serve_request {
            self.detail(0, "request:");
            self.fields(1, request);
        }
        for &index in &exchange.events {
            let timed = &connection.events[index];
            let arrow = timed.event.direction.arrow();
            let line = match &timed.event.kind {
                EventKind::Request { .. }
                | EventKind::Reply { .. }
                | EventKind::ServeRequest { .. }
                | EventKind::ServeReply { .. } => continue,
                EventKind::ExportData { data, end, .. } => format!(
                    "{arrow} export data, {} bytes{}",
                    data.len(),
                    if *end { ", end of export stream" } else { "" }
                ),
                EventKind::Stderr {
                    message: StderrMessage::Last,
                    ..
                } => continue,
                EventKind::Stderr {
                    message: StderrMessage::Error(error),
                    ..
                } => {
                    self.detail(0, "error:");
                    self.error_fields(1, error);
                    continue;
                }
                EventKind::Stderr { message, .. } => format!("{arrow} {}", message_text(message)),
                EventKind::FramedHeader { len, .. } => {
                    format!("{arrow} framed chunk of {len} bytes")
                }
                EventKind::FramedData { data, payload, .. } => format!(
                    "{arrow} framed data, {} bytes{}",
                    data.len(),
                    items_text(payload)
                ),
                EventKind::FramedEnd { payload, .. } => {
                    format!("{arrow} end of framed stream{}", items_text(payload))
                }
                EventKind::ReadAnswer { data, payload, .. } => format!(
                    "{arrow} read answer, {} bytes{}",
                    data.len(),
                    items_text(payload)
                ),
                EventKind::NarData { data, nar, end, .. } => format!(
                    "{arrow} NAR data, {} bytes{}{}",
                    data.len(),
                    nar_text(nar),
                    if *end { ", end of NAR" } else { "" }
                ),
                EventKind::Handshake { .. }
                | EventKind::ServeHello { .. }
                | EventKind::Opaque { .. }
                | EventKind::Truncated { .. } => continue,
            };
            self.detail(0, &line);
        }
        if let Outcome::Reply(reply) = &exchange.outcome {
            self.detail(0, "reply:");
            self.fields(1, reply);
        }
        if let Outcome::ServeReply(reply) = &exchange.outcome {
            self.detail(0, "reply:");
            self.fields(1, reply);
        }
    }

    fn error_fields(&mut self, depth: usize, error: &ErrorInfo) {
        let message = clean(&error.message().to_string_lossy());
        for line in message.lines() {
            self.detail(depth, line);
        }
        if let ErrorInfo::Structured { traces, .. } = error {
            for trace in traces {
                self.detail(
                    depth,
                    &format!("trace: {}", clean(&trace.to_string_lossy())),
                );
            }
        }
        if let ErrorInfo::Legacy { exit_status, .. } = error {
            self.detail(depth, &format!("exit status {exit_status}"));
        }
    }

    /// Every field of a request or reply, one per line, nested values
    /// indented.
    fn fields(&mut self, depth: usize, value: &impl serde::Serialize) {
        let value = match serde_json::to_value(value) {
            Ok(Value::Object(mut map)) => {
                map.remove("op");
                Value::Object(map)
            }
            Ok(other) => other,
            Err(err) => Value::String(format!("(cannot show: {err})")),
        };
        match &value {
            Value::Object(map) if map.is_empty() => self.detail(depth, "(no fields)"),
            Value::Object(map) => {
                for (key, child) in map {
                    self.value(depth, key, child);
                }
            }
            other => self.detail(depth, &scalar(other)),
        }
    }

    /// One field; list items come with the key `-` and print as
    /// `- value`.
    fn value(&mut self, depth: usize, key: &str, value: &Value) {
        let (label, sep) = if key == "-" { ("-", " ") } else { (key, ": ") };
        let head = if key == "-" {
            "-".to_owned()
        } else {
            format!("{key}:")
        };
        match value {
            Value::Object(map) if map.is_empty() => {
                self.detail(depth, &format!("{label}{sep}{{}}"));
            }
            Value::Object(map) => {
                self.detail(depth, &head);
                for (child_key, child) in map {
                    self.value(depth + 1, child_key, child);
                }
            }
            Value::Array(items) if items.is_empty() => {
                self.detail(depth, &format!("{label}{sep}[]"));
            }
            Value::Array(items) => {
                let inline: Option<Vec<String>> = items
                    .iter()
                    .map(|v| (!v.is_object() && !v.is_array()).then(|| scalar(v)))
                    .collect();
                match inline {
                    Some(parts) if parts.iter().map(String::len).sum::<usize>() < 60 => {
                        self.detail(depth, &format!("{label}{sep}[{}]", parts.join(", ")));
                    }
                    _ => {
                        self.detail(depth, &head);
                        for item in items {
                            self.value(depth + 1, "-", item);
                        }
                    }
                }
            }
            other => self.detail(depth, &format!("{label}{sep}{}", scalar(other))),
        }
    }

    fn undecoded(&mut self, k: usize, run: &[usize], t: u64) {
        let connection = &self.capture.connections[k];
        let Some(&first) = run.first() else { return };
        let event = &connection.events[first].event;
        let total: u64 = run.iter().map(|&i| connection.events[i].event.len).sum();
        let (what, reason) = match &event.kind {
            EventKind::Opaque { reason, .. } => ("undecodable", reason),
            EventKind::Truncated { reason, .. } => ("truncated", reason),
            _ => return,
        };
        self.prefix(&connection.conn.to_string(), t);
        let text = format!(
            "!! {} {what} from stream offset {}, {total} bytes: {}",
            event.direction.arrow(),
            event.offset,
            clean(reason)
        );
        self.paint(YELLOW, &text);
        self.newline();
        self.dump_events(k, run);
    }

    fn stray(&mut self, k: usize, index: usize, t: u64) {
        let connection = &self.capture.connections[k];
        let timed = &connection.events[index];
        self.prefix(&connection.conn.to_string(), t);
        if let EventKind::Stderr { message, .. } = &timed.event.kind {
            match message {
                StderrMessage::Error(error) => {
                    let text = format!("error outside any op: {}", first_line(error));
                    self.paint(RED, &text);
                    self.newline();
                    if self.options.verbose {
                        self.error_fields(0, error);
                    }
                }
                other => {
                    self.push_str(&format!("log outside any op: {}", message_text(other)));
                    self.newline();
                }
            }
        }
        self.dump_events(k, &[index]);
    }

    fn close(&mut self, k: usize, t: u64) {
        let connection = &self.capture.connections[k];
        let Some(closed) = &connection.closed else {
            return;
        };
        self.prefix(&connection.conn.to_string(), t);
        self.paint(CYAN, "close");
        let mut text = format!(
            "  {}, ↑{} ↓{}, {} ops",
            clean(&closed.reason.to_string()),
            size(closed.client_to_server.bytes),
            size(closed.server_to_client.bytes),
            connection.exchanges.len()
        );
        if self.options.timestamps {
            let _ = write!(
                text,
                ", after {}",
                duration(closed.t_nanos.saturating_sub(connection.opened.t_nanos))
            );
        }
        self.push_str(&text);
        self.newline();
    }

    /// Hex dumps of events (with `raw`).
    fn dump_events(&mut self, k: usize, events: &[usize]) {
        if !self.options.raw {
            return;
        }
        let connection = &self.capture.connections[k];
        let Some(streams) = self.streams.get(k) else {
            return;
        };
        let mut text = String::new();
        let pad = self.indent();
        for &index in events {
            let event = &connection.events[index].event;
            let bytes = streams.slice(event.direction, event.offset, event.len);
            let _ = writeln!(
                text,
                "{:pad$}{} offset {}, {} bytes ({})",
                "",
                event.direction.arrow(),
                event.offset,
                event.len,
                kind_name(&event.kind)
            );
            hex_dump(&mut text, pad + 2, event.offset, bytes);
        }
        self.buf.push_str(&text);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merging_keeps_each_lane_in_order() {
        let merged = merge_by_time(vec![vec![5, 1, 9], vec![2, 6]], |x| *x);
        assert_eq!(merged, vec![2, 5, 1, 6, 9]);
    }
}
