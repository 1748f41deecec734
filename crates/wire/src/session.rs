//! The streaming decoder for one whole client↔daemon connection.
//!
//! [`SessionDecoder`] takes the bytes of a connection in the order they were
//! seen — client→daemon and daemon→client chunks interleaved as captured,
//! split anywhere — and turns them into typed [`Event`]s: handshake pieces,
//! requests, uploads, log messages, replies and downloads.
//!
//! ```text
//! let mut decoder = SessionDecoder::new();
//! decoder.feed(Direction::ClientToDaemon, &chunk);   // as bytes arrive
//! while let Some(event) = decoder.next_event() { … }
//! decoder.finish();                                   // at EOF
//! while let Some(event) = decoder.next_event() { … }
//! ```
//!
//! # Guarantees
//!
//! * **Tiling.** The events of each direction cover its byte stream exactly:
//!   each event's `offset` is where the previous one of that direction
//!   ended, and after [`SessionDecoder::finish`] every byte fed is in
//!   exactly one event. [`EventKind::Reply`] events may be empty (an op
//!   whose reply has no fields); no other event is.
//! * **Re-encoding.** [`EventKind::encode`] of each event, with the
//!   session's [`Negotiated`], gives back exactly that event's bytes.
//! * **Split independence.** The events of each direction do not depend on
//!   how the bytes were split into chunks or how the two directions were
//!   interleaved. (The order *across* directions in the event queue does:
//!   events come out as soon as they can be decoded.) Streamed data is cut
//!   into pieces at fixed positions for this reason: [`Limits::piece_len`]
//!   bytes counted from the start of each chunk, NAR or opaque run.
//! * **No failure.** Nothing here panics or returns an error. Incomplete
//!   input yields no event yet. Bytes that cannot be decoded become
//!   [`EventKind::Opaque`] events, and from then on that direction is
//!   passed through as opaque pieces; input cut short at EOF becomes
//!   [`EventKind::Truncated`].
//! * **Bounded memory.** A single buffered value (request, reply, log
//!   message, STDERR_READ answer) may be at most [`Limits::max_unit_len`]
//!   bytes; anything larger is opaque, decided before it is buffered in
//!   full. Uploads and downloads (framed streams, NARs) are streamed in
//!   pieces, so a 1 GiB upload needs no more memory than one piece.
//!   Events wait in the queue until taken, so callers drain it as they feed.
//! * **Latency.** An event comes out as soon as its bytes are there, with
//!   two exceptions. Streamed data and opaque bytes come out a piece at a
//!   time (the last piece at the latest at `finish`). A buffered value of
//!   more than [`Limits::backoff_from`] bytes (256 KiB) is not re-decoded
//!   after every read, which would take quadratic time: it is retried when
//!   a quarter more bytes came, after a read shorter than the longest one
//!   seen, or at `finish`.
//!
//! # How the two directions meet
//!
//! Each direction is decoded on its own as far as it can go, and the two
//! are alternated until neither can progress. They depend on each other
//! only here:
//! * the handshake: which pieces follow the hellos depends on the
//!   negotiated version, so each side waits for the other's version (and,
//!   at ≥ 1.38, requests wait for both feature lists);
//! * STDERR_READ pulls (ImportPaths, AddToStoreNar 1.21–1.22): the client
//!   sends one string per daemon `STDERR_READ`, and the phase ends with the
//!   daemon's `STDERR_LAST` or `STDERR_ERROR`;
//! * replies need the op, which the client side decodes;
//! * a daemon message after an op ended belongs to the next op once the
//!   client has sent one; if the client side has ended or is opaque, it is
//!   a message outside any op (`seq: None`), such as the second
//!   `STDERR_ERROR` of a fatal error (§6.5).

mod payload;

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

pub use payload::{PayloadItem, PayloadKind};

use crate::bytes::ByteString;
use crate::framed::{FramedDecoder, FramedPart};
use crate::handshake::{
    Affinity, ClientHello, DaemonHello, FeatureList, HandshakePiece, ReserveSpace, Trust,
};
use crate::nar::{NarEvent, NarOptions, NarParser, NarStatus};
use crate::ops::{Op, Reply, Request, Upload};
use crate::primitives::{ReadError, ReadResult, Reader, Writer, MAX_STRING_LEN};
use crate::stderr::StderrMessage;
use crate::version::{Negotiated, ProtocolVersion};

use payload::PayloadDecoder;

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

/// Size limits of the decoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest single value the decoder buffers: a request, a reply, a log
    /// message or a STDERR_READ answer. Larger values are opaque.
    pub max_unit_len: usize,
    /// Streamed data (framed chunks, NARs, opaque bytes) is reported in
    /// pieces of at most this many bytes.
    pub piece_len: usize,
    /// Largest token the payload decoder buffers (for example one
    /// AddMultipleToStore path info); larger ones make the payload
    /// undecodable, without affecting the framing.
    pub max_payload_token_len: usize,
    /// A buffered value still incomplete at this many bytes is retried only
    /// when a quarter more bytes came, after a read shorter than the
    /// longest one seen, or at the end (see "Latency" in the module docs).
    pub backoff_from: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_unit_len: MAX_STRING_LEN as usize + (1 << 20),
            piece_len: 64 * 1024,
            max_payload_token_len: 16 << 20,
            backoff_from: 256 * 1024,
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
            | EventKind::Reply { seq, .. } => Some(*seq),
            EventKind::Stderr { seq, .. } => *seq,
            EventKind::Handshake { .. }
            | EventKind::Opaque { .. }
            | EventKind::Truncated { .. } => None,
        }
    }

    /// Whether the bytes were not decoded ([`EventKind::Opaque`] or
    /// [`EventKind::Truncated`]).
    pub fn is_undecoded(&self) -> bool {
        matches!(self, EventKind::Opaque { .. } | EventKind::Truncated { .. })
    }

    /// Writes the event's bytes. Requests and replies are laid out for
    /// `negotiated`; everything else carries its own layout.
    pub fn encode(&self, negotiated: &Negotiated, w: &mut Writer) {
        match self {
            EventKind::Handshake { piece } => piece.encode(w),
            EventKind::Request { request, .. } => request.encode(w, negotiated),
            EventKind::FramedHeader { len, .. } => {
                w.u64(*len);
            }
            EventKind::FramedData { data, .. }
            | EventKind::NarData { data, .. }
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
    /// The op, if the word names one.
    pub op: Option<Op>,
    /// `STDERR_READ` messages the daemon sent for it.
    pub reads: u64,
    /// Whether the daemon ended its work phase (`STDERR_LAST` or `STDERR_ERROR`).
    pub ended: bool,
}

/// One direction's unconsumed bytes.
#[derive(Debug, Default)]
struct Stream {
    buf: Vec<u8>,
    /// Start of the unconsumed bytes in `buf`.
    head: usize,
    /// Stream offset of `buf[head]`.
    offset: u64,
    /// Do not retry a value's decoding until this many bytes are there.
    wait_len: usize,
    /// Bytes there were at the last attempt that found the value incomplete.
    attempted_len: usize,
    /// Length of the longest and of the latest `feed` of this direction.
    longest_push: usize,
    latest_push: usize,
    /// Whether the connection has ended.
    eof: bool,
    /// [`Limits::backoff_from`].
    backoff_from: usize,
}

impl Stream {
    fn data(&self) -> &[u8] {
        &self.buf[self.head..]
    }

    fn len(&self) -> usize {
        self.buf.len() - self.head
    }

    fn push(&mut self, bytes: &[u8]) {
        if self.head > 0 && self.head >= self.buf.len() / 2 {
            self.buf.drain(..self.head);
            self.head = 0;
        }
        self.buf.extend_from_slice(bytes);
        self.latest_push = bytes.len();
        self.longest_push = self.longest_push.max(bytes.len());
    }

    fn consume(&mut self, n: usize) {
        self.head += n;
        self.offset += n as u64;
        self.wait_len = 0;
        self.attempted_len = 0;
        if self.head == self.buf.len() {
            self.buf.clear();
            self.head = 0;
        }
    }

    /// Whether decoding the value at the head is worth another try.
    ///
    /// Value decoders are not resumable, so each try starts over; a large
    /// list arriving in many small reads would cost quadratic time. Large
    /// values are therefore retried only when a quarter more bytes came,
    /// or when the latest read was shorter than the longest (a sender
    /// usually pauses after a short read), or at the end of the connection.
    /// This changes when an event comes out, never what it is: decoding
    /// depends only on the bytes, never on how many arrived at once.
    fn should_retry(&self) -> bool {
        let available = self.len();
        if available < self.wait_len {
            return false;
        }
        self.eof
            || self.attempted_len < self.backoff_from
            || available >= self.attempted_len + self.attempted_len / 4
            || self.latest_push < self.longest_push
    }
}

/// The outcome of trying to decode one buffered value.
enum Unit<T> {
    Ready(T, usize),
    Wait,
    Bad(String),
}

/// Decodes one value at the start of `stream`, looking at no more than
/// `max` bytes so the outcome never depends on how much was buffered.
fn decode_unit<T>(
    stream: &mut Stream,
    max: usize,
    what: &str,
    decode: impl FnOnce(&mut Reader<'_>) -> ReadResult<T>,
) -> Unit<T> {
    if !stream.should_retry() {
        return Unit::Wait;
    }
    let available = stream.len();
    let view = &stream.data()[..available.min(max)];
    let mut r = Reader::new(view);
    match decode(&mut r) {
        Ok(value) => Unit::Ready(value, r.position()),
        Err(ReadError::Incomplete { needed }) => {
            if view.len() >= max {
                Unit::Bad(format!(
                    "{what} at offset {} is longer than the decoder's limit of {max} bytes",
                    stream.offset
                ))
            } else {
                stream.wait_len = available.saturating_add(needed).min(max);
                stream.attempted_len = available;
                Unit::Wait
            }
        }
        Err(ReadError::Invalid { offset, kind }) => Unit::Bad(format!(
            "{what} at offset {} is invalid at offset {}: {kind}",
            stream.offset,
            stream.offset + offset as u64
        )),
    }
}

/// A NAR streamed without framing, cut into pieces.
#[derive(Debug)]
struct NarStream {
    seq: u64,
    parser: NarParser,
    /// Stream offset where the NAR starts.
    start: u64,
    /// Consumed bytes not yet reported.
    piece: Vec<u8>,
    /// Stream offset of `piece[0]`.
    piece_start: u64,
    /// NAR events not yet attached to a piece.
    pending: VecDeque<NarEvent>,
}

enum NarStep {
    Wait,
    Progress,
    Ended,
    DumpFailed,
    Failed(String),
}

impl NarStream {
    fn new(seq: u64, start: u64, options: NarOptions) -> Self {
        NarStream {
            seq,
            parser: NarParser::new(options),
            start,
            piece: Vec::new(),
            piece_start: start,
            pending: VecDeque::new(),
        }
    }

    /// Emits the first `len` bytes of the piece buffer.
    fn emit_piece(
        &mut self,
        len: usize,
        end: bool,
        direction: Direction,
        events: &mut VecDeque<Event>,
    ) {
        let data: Vec<u8> = self.piece.drain(..len).collect();
        let piece_end_in_nar = self.piece_start + len as u64 - self.start;
        let mut nar = Vec::new();
        while self
            .pending
            .front()
            .is_some_and(|e| e.known_at() <= piece_end_in_nar)
        {
            if let Some(event) = self.pending.pop_front() {
                nar.push(event);
            }
        }
        events.push_back(Event {
            direction,
            offset: self.piece_start,
            len: len as u64,
            kind: EventKind::NarData {
                seq: self.seq,
                data: ByteString(data),
                nar,
                end,
            },
        });
        self.piece_start += len as u64;
    }

    fn step(
        &mut self,
        stream: &mut Stream,
        piece_len: usize,
        direction: Direction,
        events: &mut VecDeque<Event>,
    ) -> NarStep {
        let mut nar_events = Vec::new();
        let progress = self.parser.feed(stream.data(), &mut nar_events);
        self.pending.extend(nar_events);
        if progress.consumed > 0 {
            self.piece
                .extend_from_slice(&stream.data()[..progress.consumed]);
            stream.consume(progress.consumed);
        }
        let more = progress.status == NarStatus::NeedMore;
        let mut emitted = false;
        while self.piece.len() > piece_len || (more && self.piece.len() == piece_len) {
            self.emit_piece(piece_len, false, direction, events);
            emitted = true;
        }
        match progress.status {
            NarStatus::NeedMore => {
                if progress.consumed > 0 || emitted {
                    NarStep::Progress
                } else {
                    NarStep::Wait
                }
            }
            NarStatus::Done => {
                let len = self.piece.len();
                self.emit_piece(len, true, direction, events);
                NarStep::Ended
            }
            NarStatus::DumpFailed => {
                self.flush(direction, events);
                NarStep::DumpFailed
            }
            NarStatus::Failed(error) => {
                self.flush(direction, events);
                NarStep::Failed(format!(
                    "the NAR starting at offset {} is invalid: {error}",
                    self.start
                ))
            }
        }
    }

    /// Reports the consumed bytes not yet reported, as an unfinished piece.
    fn flush(&mut self, direction: Direction, events: &mut VecDeque<Event>) {
        if !self.piece.is_empty() {
            let len = self.piece.len();
            self.emit_piece(len, false, direction, events);
        }
    }
}

#[derive(Debug)]
struct FramedUpload {
    seq: u64,
    decoder: FramedDecoder,
    payload: PayloadDecoder,
}

#[derive(Debug)]
enum ClientState {
    Hello,
    AfterHello,
    Features,
    Affinity,
    ReserveSpace,
    Idle {
        registered: bool,
    },
    Framed(Box<FramedUpload>),
    InlineNar(Box<NarStream>),
    ReadAnswers {
        seq: u64,
        answered: u64,
        payload: Box<PayloadDecoder>,
    },
    Opaque {
        reason: String,
    },
    Ended,
}

#[derive(Debug)]
enum DaemonState {
    Hello,
    AfterHello,
    Features,
    NixVersion,
    Trust,
    Drain,
    Idle,
    Work { seq: u64 },
    Reply { seq: u64 },
    Download(Box<NarStream>),
    Opaque { reason: String },
    Ended,
}

/// The daemon's handshake pieces, in wire order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum DaemonPiece {
    Hello,
    Features,
    NixVersion,
    Trust,
}

/// What both directions know about the connection.
#[derive(Debug, Default)]
struct Shared {
    client_version: Option<ProtocolVersion>,
    daemon_version: Option<ProtocolVersion>,
    client_features: Option<Vec<String>>,
    daemon_features: Option<Vec<String>>,
    /// Set once the version and (at ≥ 1.38) both feature lists are known.
    negotiated: Option<Negotiated>,
    nix_version: Option<ByteString>,
    trust: Option<Trust>,
    ops: Vec<OpRecord>,
    /// The next op whose daemon messages are expected.
    daemon_seq: u64,
    client_opaque: bool,
    eof: bool,
}

impl Shared {
    fn version(&self) -> Option<ProtocolVersion> {
        Some(ProtocolVersion::negotiate(
            self.client_version?,
            self.daemon_version?,
        ))
    }

    /// The negotiation as far as the log channel needs it (the version).
    fn log_negotiated(&self) -> Option<Negotiated> {
        match &self.negotiated {
            Some(n) => Some(n.clone()),
            None => self.version().map(Negotiated::new),
        }
    }

    fn update_negotiated(&mut self) {
        if self.negotiated.is_some() {
            return;
        }
        let (Some(client), Some(daemon)) = (self.client_version, self.daemon_version) else {
            return;
        };
        let version = ProtocolVersion::negotiate(client, daemon);
        if !version.at_least(38) {
            self.negotiated = Some(Negotiated::new(version));
        } else if let (Some(cf), Some(df)) = (&self.client_features, &self.daemon_features) {
            self.negotiated = Some(Negotiated::from_announced(client, daemon, cf, df));
        }
    }
}

/// Whether this decoder knows the layouts of a negotiated version.
fn supported(version: ProtocolVersion) -> bool {
    version.major == 1 && version.minor >= 10
}

/// The streaming decoder for one connection. See the module documentation.
#[derive(Debug)]
pub struct SessionDecoder {
    limits: Limits,
    client: Stream,
    daemon: Stream,
    client_state: ClientState,
    daemon_state: DaemonState,
    shared: Shared,
    events: VecDeque<Event>,
    finished: bool,
}

impl Default for SessionDecoder {
    fn default() -> Self {
        SessionDecoder::new()
    }
}

impl SessionDecoder {
    /// A decoder with the default [`Limits`].
    pub fn new() -> Self {
        SessionDecoder::with_limits(Limits::default())
    }

    /// A decoder with the given limits (a `piece_len` of 0 counts as 1).
    pub fn with_limits(mut limits: Limits) -> Self {
        limits.piece_len = limits.piece_len.max(1);
        let stream = || Stream {
            backoff_from: limits.backoff_from,
            ..Stream::default()
        };
        SessionDecoder {
            limits,
            client: stream(),
            daemon: stream(),
            client_state: ClientState::Hello,
            daemon_state: DaemonState::Hello,
            shared: Shared::default(),
            events: VecDeque::new(),
            finished: false,
        }
    }

    /// Decodes a whole connection at once: feeds the chunks in order,
    /// finishes, and returns every event with the decoder (for
    /// [`SessionDecoder::negotiated`] and the like).
    pub fn decode_all<'a>(
        chunks: impl IntoIterator<Item = (Direction, &'a [u8])>,
    ) -> (Vec<Event>, SessionDecoder) {
        let mut decoder = SessionDecoder::new();
        let mut events = Vec::new();
        for (direction, bytes) in chunks {
            decoder.feed(direction, bytes);
            events.extend(decoder.drain_events());
        }
        decoder.finish();
        events.extend(decoder.drain_events());
        (events, decoder)
    }

    /// Takes the next bytes of one direction and decodes as far as
    /// possible; the events wait in a queue for [`SessionDecoder::next_event`].
    /// Bytes fed after [`SessionDecoder::finish`] come out as opaque.
    pub fn feed(&mut self, direction: Direction, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        if self.finished {
            let stream = self.stream_mut(direction);
            let offset = stream.offset;
            stream.offset += bytes.len() as u64;
            self.events.push_back(Event {
                direction,
                offset,
                len: bytes.len() as u64,
                kind: EventKind::Opaque {
                    reason: format!(
                        "bytes at offset {offset} arrived after the connection was finished"
                    ),
                    data: ByteString(bytes.to_vec()),
                },
            });
            return;
        }
        self.stream_mut(direction).push(bytes);
        self.run();
    }

    /// Marks the end of the connection: decodes what can still be decoded
    /// and reports every leftover byte as the last events of its direction.
    pub fn finish(&mut self) {
        if self.finished {
            return;
        }
        self.shared.eof = true;
        self.client.eof = true;
        self.daemon.eof = true;
        self.run();
        self.flush_client();
        self.flush_daemon();
        self.finished = true;
    }

    /// The next decoded event, in the order decoded.
    pub fn next_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Every decoded event waiting in the queue.
    pub fn drain_events(&mut self) -> impl Iterator<Item = Event> + '_ {
        self.events.drain(..)
    }

    /// Whether [`SessionDecoder::finish`] was called.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// The negotiated version and features, once both are known.
    pub fn negotiated(&self) -> Option<&Negotiated> {
        self.shared.negotiated.as_ref()
    }

    /// The version the client announced.
    pub fn client_version(&self) -> Option<ProtocolVersion> {
        self.shared.client_version
    }

    /// The version the daemon announced.
    pub fn daemon_version(&self) -> Option<ProtocolVersion> {
        self.shared.daemon_version
    }

    /// The feature list the client sent (≥ 1.38).
    pub fn client_features(&self) -> Option<&[String]> {
        self.shared.client_features.as_deref()
    }

    /// The feature list the daemon sent (≥ 1.38).
    pub fn daemon_features(&self) -> Option<&[String]> {
        self.shared.daemon_features.as_deref()
    }

    /// The daemon's Nix version string (≥ 1.33).
    pub fn daemon_nix_version(&self) -> Option<&ByteString> {
        self.shared.nix_version.as_ref()
    }

    /// The daemon's trust in the client (≥ 1.35).
    pub fn trust(&self) -> Option<Trust> {
        self.shared.trust
    }

    /// The ops seen so far, by `seq`.
    pub fn ops(&self) -> &[OpRecord] {
        &self.shared.ops
    }

    /// Bytes of `direction` covered by events so far.
    pub fn decoded_len(&self, direction: Direction) -> u64 {
        match direction {
            Direction::ClientToDaemon => self.client.offset,
            Direction::DaemonToClient => self.daemon.offset,
        }
    }

    /// Bytes the decoder holds that are not in an event yet: partly
    /// received values, and NAR bytes waiting to fill a piece.
    pub fn buffered_len(&self) -> usize {
        let nar_piece = |len: Option<usize>| len.unwrap_or(0);
        let client_piece = match &self.client_state {
            ClientState::InlineNar(nar) => Some(nar.piece.len()),
            _ => None,
        };
        let daemon_piece = match &self.daemon_state {
            DaemonState::Download(nar) => Some(nar.piece.len()),
            _ => None,
        };
        self.client.len() + self.daemon.len() + nar_piece(client_piece) + nar_piece(daemon_piece)
    }

    fn stream_mut(&mut self, direction: Direction) -> &mut Stream {
        match direction {
            Direction::ClientToDaemon => &mut self.client,
            Direction::DaemonToClient => &mut self.daemon,
        }
    }

    fn run(&mut self) {
        loop {
            let client = self.step_client();
            let daemon = self.step_daemon();
            if !client && !daemon {
                break;
            }
        }
    }

    fn emit(
        events: &mut VecDeque<Event>,
        stream: &mut Stream,
        direction: Direction,
        len: usize,
        kind: EventKind,
    ) {
        events.push_back(Event {
            direction,
            offset: stream.offset,
            len: len as u64,
            kind,
        });
        stream.consume(len);
    }

    fn set_client(&mut self, state: ClientState) {
        if matches!(state, ClientState::Opaque { .. }) {
            self.shared.client_opaque = true;
        }
        self.client_state = state;
        self.client.wait_len = 0;
        self.client.attempted_len = 0;
    }

    fn set_daemon(&mut self, state: DaemonState) {
        self.daemon_state = state;
        self.daemon.wait_len = 0;
        self.daemon.attempted_len = 0;
    }

    /// Emits full opaque pieces (all remaining bytes at EOF).
    fn step_opaque(
        events: &mut VecDeque<Event>,
        stream: &mut Stream,
        direction: Direction,
        reason: &str,
        piece_len: usize,
        eof: bool,
    ) -> bool {
        let mut progress = false;
        while stream.len() >= piece_len || (eof && stream.len() > 0) {
            let len = stream.len().min(piece_len);
            let data = ByteString(stream.data()[..len].to_vec());
            Self::emit(
                events,
                stream,
                direction,
                len,
                EventKind::Opaque {
                    reason: reason.to_owned(),
                    data,
                },
            );
            progress = true;
        }
        progress
    }

    /// Decodes one handshake piece of either side.
    fn handshake_unit<T>(
        &mut self,
        direction: Direction,
        what: &str,
        decode: impl FnOnce(&mut Reader<'_>) -> ReadResult<T>,
    ) -> Unit<T> {
        let max = self.limits.max_unit_len;
        decode_unit(self.stream_mut(direction), max, what, decode)
    }

    fn emit_handshake(&mut self, direction: Direction, len: usize, piece: HandshakePiece) {
        let stream = match direction {
            Direction::ClientToDaemon => &mut self.client,
            Direction::DaemonToClient => &mut self.daemon,
        };
        Self::emit(
            &mut self.events,
            stream,
            direction,
            len,
            EventKind::Handshake { piece },
        );
    }

    // ------------------------------------------------------------------
    // The client side.

    fn step_client(&mut self) -> bool {
        const DIR: Direction = Direction::ClientToDaemon;
        match &mut self.client_state {
            ClientState::Ended => false,
            ClientState::Opaque { reason } => {
                let eof = self.shared.eof;
                Self::step_opaque(
                    &mut self.events,
                    &mut self.client,
                    DIR,
                    reason,
                    self.limits.piece_len,
                    eof,
                )
            }
            ClientState::Hello => {
                match self.handshake_unit(DIR, "the client hello", ClientHello::decode) {
                    Unit::Ready(hello, len) => {
                        self.shared.client_version = Some(hello.version);
                        self.shared.update_negotiated();
                        self.emit_handshake(DIR, len, HandshakePiece::ClientHello(hello));
                        self.set_client(ClientState::AfterHello);
                        true
                    }
                    Unit::Wait => false,
                    Unit::Bad(reason) => {
                        self.set_client(ClientState::Opaque { reason });
                        true
                    }
                }
            }
            ClientState::AfterHello => {
                let Some(version) = self.shared.version() else {
                    return false;
                };
                let next = if !supported(version) {
                    ClientState::Opaque {
                        reason: format!(
                            "the negotiated protocol version {version} is not supported; client bytes from offset {} are not decoded",
                            self.client.offset
                        ),
                    }
                } else if version.at_least(38) {
                    ClientState::Features
                } else if version.at_least(14) {
                    ClientState::Affinity
                } else if version.at_least(11) {
                    ClientState::ReserveSpace
                } else {
                    ClientState::Idle { registered: false }
                };
                self.set_client(next);
                true
            }
            ClientState::Features => {
                match self.handshake_unit(DIR, "the client feature list", FeatureList::decode) {
                    Unit::Ready(features, len) => {
                        self.shared.client_features = Some(features.0.clone());
                        self.shared.update_negotiated();
                        self.emit_handshake(DIR, len, HandshakePiece::ClientFeatures { features });
                        self.set_client(ClientState::Affinity);
                        true
                    }
                    Unit::Wait => false,
                    Unit::Bad(reason) => {
                        self.set_client(ClientState::Opaque { reason });
                        true
                    }
                }
            }
            ClientState::Affinity => {
                match self.handshake_unit(DIR, "the client's CPU affinity", Affinity::decode) {
                    Unit::Ready(affinity, len) => {
                        self.emit_handshake(DIR, len, HandshakePiece::ClientAffinity(affinity));
                        self.set_client(ClientState::ReserveSpace);
                        true
                    }
                    Unit::Wait => false,
                    Unit::Bad(reason) => {
                        self.set_client(ClientState::Opaque { reason });
                        true
                    }
                }
            }
            ClientState::ReserveSpace => {
                match self.handshake_unit(DIR, "the client's reserveSpace", ReserveSpace::decode) {
                    Unit::Ready(value, len) => {
                        self.emit_handshake(
                            DIR,
                            len,
                            HandshakePiece::ClientReserveSpace { value: value.0 },
                        );
                        self.set_client(ClientState::Idle { registered: false });
                        true
                    }
                    Unit::Wait => false,
                    Unit::Bad(reason) => {
                        self.set_client(ClientState::Opaque { reason });
                        true
                    }
                }
            }
            ClientState::Idle { registered } => {
                let registered = *registered;
                self.client_request(registered)
            }
            ClientState::Framed(_) => self.client_framed(),
            ClientState::InlineNar(_) => self.client_inline_nar(),
            ClientState::ReadAnswers { .. } => self.client_read_answers(),
        }
    }

    fn client_request(&mut self, registered: bool) -> bool {
        const DIR: Direction = Direction::ClientToDaemon;
        let Some(negotiated) = self.shared.negotiated.clone() else {
            return false;
        };
        let Some(word) = self.client.data().get(..8) else {
            return false;
        };
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(word);
        let op_word = u64::from_le_bytes(bytes);
        let op = Op::from_wire(op_word);
        let mut progress = false;
        if !registered {
            let seq = self.shared.ops.len() as u64;
            self.shared.ops.push(OpRecord {
                seq,
                op_word,
                op,
                reads: 0,
                ended: false,
            });
            self.client_state = ClientState::Idle { registered: true };
            progress = true;
        }
        let seq = self.shared.ops.len() as u64 - 1;
        let Some(op) = op else {
            let reason = format!(
                "unknown operation {op_word} at offset {}; the rest of the client's stream cannot be decoded",
                self.client.offset
            );
            self.set_client(ClientState::Opaque { reason });
            return true;
        };
        let max = self.limits.max_unit_len;
        let what = format!("the {} request", op.name());
        match decode_unit(&mut self.client, max, &what, |r| {
            r.u64()?;
            Request::decode(op, r, &negotiated)
        }) {
            Unit::Ready(request, len) => {
                let kind = PayloadKind::of(&request);
                let next = match op.upload(&negotiated) {
                    Upload::None => ClientState::Idle { registered: false },
                    Upload::Framed => ClientState::Framed(Box::new(FramedUpload {
                        seq,
                        decoder: FramedDecoder::new(),
                        payload: PayloadDecoder::new(kind, self.limits.max_payload_token_len),
                    })),
                    Upload::InlineNar => ClientState::InlineNar(Box::new(NarStream::new(
                        seq,
                        self.client.offset + len as u64,
                        NarOptions {
                            strict_names: false,
                            ..NarOptions::default()
                        },
                    ))),
                    Upload::StderrReadAnswers => ClientState::ReadAnswers {
                        seq,
                        answered: 0,
                        payload: Box::new(PayloadDecoder::new(
                            kind,
                            self.limits.max_payload_token_len,
                        )),
                    },
                };
                Self::emit(
                    &mut self.events,
                    &mut self.client,
                    DIR,
                    len,
                    EventKind::Request {
                        seq,
                        request: Box::new(request),
                    },
                );
                self.set_client(next);
                true
            }
            Unit::Wait => progress,
            Unit::Bad(reason) => {
                self.set_client(ClientState::Opaque { reason });
                true
            }
        }
    }

    fn client_framed(&mut self) -> bool {
        const DIR: Direction = Direction::ClientToDaemon;
        let piece_len = self.limits.piece_len;
        let ClientState::Framed(upload) = &mut self.client_state else {
            return false;
        };
        let mut progress = false;
        loop {
            let remaining = upload.decoder.chunk_remaining();
            let want = if remaining > 0 {
                remaining.min(piece_len as u64) as usize
            } else {
                8
            };
            if self.client.len() < want {
                return progress;
            }
            let Some(part) = upload.decoder.next_part(&self.client.data()[..want], want) else {
                return progress;
            };
            let len = part.wire_len();
            let kind = match part {
                FramedPart::Header { len } => EventKind::FramedHeader {
                    seq: upload.seq,
                    len,
                },
                FramedPart::Data(data) => {
                    let payload = upload.payload.feed(data);
                    EventKind::FramedData {
                        seq: upload.seq,
                        data: ByteString(data.to_vec()),
                        payload,
                    }
                }
                FramedPart::End => EventKind::FramedEnd {
                    seq: upload.seq,
                    payload: upload.payload.finish(),
                },
            };
            let done = matches!(kind, EventKind::FramedEnd { .. });
            Self::emit(&mut self.events, &mut self.client, DIR, len, kind);
            progress = true;
            if done {
                self.set_client(ClientState::Idle { registered: false });
                return true;
            }
        }
    }

    fn client_inline_nar(&mut self) -> bool {
        const DIR: Direction = Direction::ClientToDaemon;
        let ClientState::InlineNar(nar) = &mut self.client_state else {
            return false;
        };
        match nar.step(
            &mut self.client,
            self.limits.piece_len,
            DIR,
            &mut self.events,
        ) {
            NarStep::Wait => false,
            NarStep::Progress => true,
            NarStep::Ended => {
                self.set_client(ClientState::Idle { registered: false });
                true
            }
            NarStep::DumpFailed => {
                // Inline uploads never look for STDERR_ERROR words.
                let reason = format!("unexpected end of the NAR at offset {}", self.client.offset);
                self.set_client(ClientState::Opaque { reason });
                true
            }
            NarStep::Failed(reason) => {
                self.set_client(ClientState::Opaque { reason });
                true
            }
        }
    }

    fn client_read_answers(&mut self) -> bool {
        const DIR: Direction = Direction::ClientToDaemon;
        let max = self.limits.max_unit_len;
        let ClientState::ReadAnswers {
            seq,
            answered,
            payload,
        } = &mut self.client_state
        else {
            return false;
        };
        let Some(record) = self.shared.ops.get(*seq as usize) else {
            return false;
        };
        if *answered < record.reads {
            match decode_unit(&mut self.client, max, "a STDERR_READ answer", |r| {
                r.string().map(<[u8]>::to_vec)
            }) {
                Unit::Ready(data, len) => {
                    let items = payload.feed(&data);
                    let seq = *seq;
                    *answered += 1;
                    Self::emit(
                        &mut self.events,
                        &mut self.client,
                        DIR,
                        len,
                        EventKind::ReadAnswer {
                            seq,
                            data: ByteString(data),
                            payload: items,
                        },
                    );
                    true
                }
                Unit::Wait => false,
                Unit::Bad(reason) => {
                    self.set_client(ClientState::Opaque { reason });
                    true
                }
            }
        } else if record.ended {
            self.set_client(ClientState::Idle { registered: false });
            true
        } else {
            false
        }
    }

    fn flush_client(&mut self) {
        const DIR: Direction = Direction::ClientToDaemon;
        let state = std::mem::replace(&mut self.client_state, ClientState::Ended);
        let what = match state {
            ClientState::Ended => return,
            ClientState::Opaque { reason } => {
                Self::step_opaque(
                    &mut self.events,
                    &mut self.client,
                    DIR,
                    &reason,
                    self.limits.piece_len,
                    true,
                );
                return;
            }
            ClientState::InlineNar(mut nar) => {
                nar.flush(DIR, &mut self.events);
                "an inline NAR".to_owned()
            }
            ClientState::Hello => "the client hello".to_owned(),
            ClientState::AfterHello | ClientState::Features
                if self.shared.daemon_version.is_none() =>
            {
                self.opaque_rest(
                    DIR,
                    "the daemon's hello never arrived, so the client's handshake cannot be decoded",
                );
                return;
            }
            ClientState::AfterHello | ClientState::Features => "the client feature list".to_owned(),
            ClientState::Affinity => "the client's CPU affinity".to_owned(),
            ClientState::ReserveSpace => "the client's reserveSpace".to_owned(),
            ClientState::Idle { .. } if self.shared.negotiated.is_none() => {
                self.opaque_rest(
                    DIR,
                    "the daemon's feature list never arrived, so requests cannot be decoded",
                );
                return;
            }
            ClientState::Idle { .. } => "a request".to_owned(),
            ClientState::Framed(upload) => format!("the framed upload of op {}", upload.seq),
            ClientState::ReadAnswers { seq, answered, .. } => {
                let asked = self.shared.ops.get(seq as usize).map_or(0, |r| r.reads);
                if answered >= asked {
                    self.opaque_rest(DIR, "client bytes that no STDERR_READ asked for");
                    return;
                }
                format!("a STDERR_READ answer of op {seq}")
            }
        };
        self.truncated_rest(DIR, &what);
    }

    // ------------------------------------------------------------------
    // The daemon side.

    fn step_daemon(&mut self) -> bool {
        const DIR: Direction = Direction::DaemonToClient;
        match &mut self.daemon_state {
            DaemonState::Ended => false,
            DaemonState::Opaque { reason } => {
                let eof = self.shared.eof;
                Self::step_opaque(
                    &mut self.events,
                    &mut self.daemon,
                    DIR,
                    reason,
                    self.limits.piece_len,
                    eof,
                )
            }
            DaemonState::Hello => {
                match self.handshake_unit(DIR, "the daemon hello", DaemonHello::decode) {
                    Unit::Ready(hello, len) => {
                        self.shared.daemon_version = Some(hello.version);
                        self.shared.update_negotiated();
                        self.emit_handshake(DIR, len, HandshakePiece::DaemonHello(hello));
                        self.set_daemon(DaemonState::AfterHello);
                        true
                    }
                    Unit::Wait => false,
                    Unit::Bad(reason) => {
                        self.set_daemon(DaemonState::Opaque { reason });
                        true
                    }
                }
            }
            DaemonState::AfterHello => {
                let Some(version) = self.shared.version() else {
                    return false;
                };
                let next = if !supported(version) {
                    DaemonState::Opaque {
                        reason: format!(
                            "the negotiated protocol version {version} is not supported; daemon bytes from offset {} are not decoded",
                            self.daemon.offset
                        ),
                    }
                } else {
                    Self::daemon_after(version, DaemonPiece::Hello)
                };
                self.set_daemon(next);
                true
            }
            DaemonState::Features => {
                match self.handshake_unit(DIR, "the daemon feature list", FeatureList::decode) {
                    Unit::Ready(features, len) => {
                        self.shared.daemon_features = Some(features.0.clone());
                        self.shared.update_negotiated();
                        self.emit_handshake(DIR, len, HandshakePiece::DaemonFeatures { features });
                        self.daemon_handshake_next(DaemonPiece::Features);
                        true
                    }
                    Unit::Wait => false,
                    Unit::Bad(reason) => {
                        self.set_daemon(DaemonState::Opaque { reason });
                        true
                    }
                }
            }
            DaemonState::NixVersion => {
                match self.handshake_unit(DIR, "the daemon's Nix version", |r| {
                    r.string().map(ByteString::from)
                }) {
                    Unit::Ready(version, len) => {
                        self.shared.nix_version = Some(version.clone());
                        self.emit_handshake(DIR, len, HandshakePiece::DaemonNixVersion { version });
                        self.daemon_handshake_next(DaemonPiece::NixVersion);
                        true
                    }
                    Unit::Wait => false,
                    Unit::Bad(reason) => {
                        self.set_daemon(DaemonState::Opaque { reason });
                        true
                    }
                }
            }
            DaemonState::Trust => {
                match self.handshake_unit(DIR, "the daemon's trust", Trust::decode) {
                    Unit::Ready(trust, len) => {
                        self.shared.trust = Some(trust);
                        self.emit_handshake(DIR, len, HandshakePiece::DaemonTrust { trust });
                        self.daemon_handshake_next(DaemonPiece::Trust);
                        true
                    }
                    Unit::Wait => false,
                    Unit::Bad(reason) => {
                        self.set_daemon(DaemonState::Opaque { reason });
                        true
                    }
                }
            }
            DaemonState::Drain => {
                let Some(negotiated) = self.shared.log_negotiated() else {
                    return false;
                };
                match self.handshake_unit(DIR, "a handshake log message", |r| {
                    StderrMessage::decode(r, &negotiated)
                }) {
                    Unit::Ready(message, len) => {
                        let last = message.ends_work();
                        self.emit_handshake(DIR, len, HandshakePiece::DaemonStderr { message });
                        if last {
                            self.set_daemon(DaemonState::Idle);
                        }
                        true
                    }
                    Unit::Wait => false,
                    Unit::Bad(reason) => {
                        self.set_daemon(DaemonState::Opaque { reason });
                        true
                    }
                }
            }
            DaemonState::Idle => self.daemon_idle(),
            DaemonState::Work { seq } => {
                let seq = *seq;
                self.daemon_work(seq)
            }
            DaemonState::Reply { seq } => {
                let seq = *seq;
                self.daemon_reply(seq)
            }
            DaemonState::Download(_) => self.daemon_download(),
        }
    }

    /// The daemon's next handshake state after `done`, the last piece
    /// decoded. The pieces come in this order: features (≥ 1.38), Nix
    /// version (≥ 1.33), trust (≥ 1.35), then the drain.
    fn daemon_after(version: ProtocolVersion, done: DaemonPiece) -> DaemonState {
        if done < DaemonPiece::Features && version.at_least(38) {
            DaemonState::Features
        } else if done < DaemonPiece::NixVersion && version.at_least(33) {
            DaemonState::NixVersion
        } else if done < DaemonPiece::Trust && version.at_least(35) {
            DaemonState::Trust
        } else {
            DaemonState::Drain
        }
    }

    fn daemon_handshake_next(&mut self, done: DaemonPiece) {
        let next = match self.shared.version() {
            Some(version) => Self::daemon_after(version, done),
            None => DaemonState::Drain,
        };
        self.set_daemon(next);
    }

    fn daemon_idle(&mut self) -> bool {
        const DIR: Direction = Direction::DaemonToClient;
        if self.daemon.len() == 0 {
            return false;
        }
        let next_seq = self.shared.daemon_seq;
        if (self.shared.ops.len() as u64) > next_seq {
            self.set_daemon(DaemonState::Work { seq: next_seq });
            return true;
        }
        if !(self.shared.client_opaque || self.shared.eof) {
            // The client may still send the op this message belongs to.
            return false;
        }
        let Some(negotiated) = self.shared.log_negotiated() else {
            return false;
        };
        let max = self.limits.max_unit_len;
        match decode_unit(&mut self.daemon, max, "a log message outside any op", |r| {
            StderrMessage::decode(r, &negotiated)
        }) {
            Unit::Ready(message, len) => {
                let last = matches!(message, StderrMessage::Last);
                let offset = self.daemon.offset;
                Self::emit(
                    &mut self.events,
                    &mut self.daemon,
                    DIR,
                    len,
                    EventKind::Stderr { seq: None, message },
                );
                if last {
                    let reason = format!(
                        "STDERR_LAST at offset {offset} ended no known op, so the reply after it cannot be decoded"
                    );
                    self.set_daemon(DaemonState::Opaque { reason });
                }
                true
            }
            Unit::Wait => false,
            Unit::Bad(reason) => {
                self.set_daemon(DaemonState::Opaque { reason });
                true
            }
        }
    }

    fn daemon_work(&mut self, seq: u64) -> bool {
        const DIR: Direction = Direction::DaemonToClient;
        let Some(negotiated) = self.shared.log_negotiated() else {
            return false;
        };
        let max = self.limits.max_unit_len;
        match decode_unit(&mut self.daemon, max, "a log message", |r| {
            StderrMessage::decode(r, &negotiated)
        }) {
            Unit::Ready(message, len) => {
                let next = match &message {
                    StderrMessage::Read { .. } => {
                        if let Some(record) = self.shared.ops.get_mut(seq as usize) {
                            record.reads += 1;
                        }
                        None
                    }
                    StderrMessage::Last => Some(DaemonState::Reply { seq }),
                    StderrMessage::Error(_) => {
                        self.shared.daemon_seq = seq + 1;
                        Some(DaemonState::Idle)
                    }
                    _ => None,
                };
                if next.is_some() {
                    if let Some(record) = self.shared.ops.get_mut(seq as usize) {
                        record.ended = true;
                    }
                }
                Self::emit(
                    &mut self.events,
                    &mut self.daemon,
                    DIR,
                    len,
                    EventKind::Stderr {
                        seq: Some(seq),
                        message,
                    },
                );
                if let Some(next) = next {
                    self.set_daemon(next);
                }
                true
            }
            Unit::Wait => false,
            Unit::Bad(reason) => {
                self.set_daemon(DaemonState::Opaque { reason });
                true
            }
        }
    }

    fn daemon_reply(&mut self, seq: u64) -> bool {
        const DIR: Direction = Direction::DaemonToClient;
        let Some(record) = self.shared.ops.get(seq as usize) else {
            return false;
        };
        let Some(op) = record.op else {
            let reason = format!(
                "the reply at offset {} answers unknown operation {}, so it cannot be decoded",
                self.daemon.offset, record.op_word
            );
            self.set_daemon(DaemonState::Opaque { reason });
            return true;
        };
        let Some(negotiated) = self.shared.negotiated.clone() else {
            return false;
        };
        let max = self.limits.max_unit_len;
        let what = format!("the {} reply", op.name());
        match decode_unit(&mut self.daemon, max, &what, |r| {
            Reply::decode(op, r, &negotiated)
        }) {
            Unit::Ready(reply, len) => {
                let reply_end = self.daemon.offset + len as u64;
                Self::emit(
                    &mut self.events,
                    &mut self.daemon,
                    DIR,
                    len,
                    EventKind::Reply {
                        seq,
                        reply: Box::new(reply),
                    },
                );
                if op == Op::NarFromPath {
                    let options = NarOptions {
                        strict_names: false,
                        detect_stderr_error: true,
                        ..NarOptions::default()
                    };
                    self.set_daemon(DaemonState::Download(Box::new(NarStream::new(
                        seq, reply_end, options,
                    ))));
                } else {
                    self.shared.daemon_seq = seq + 1;
                    self.set_daemon(DaemonState::Idle);
                }
                true
            }
            Unit::Wait => false,
            Unit::Bad(reason) => {
                self.set_daemon(DaemonState::Opaque { reason });
                true
            }
        }
    }

    fn daemon_download(&mut self) -> bool {
        const DIR: Direction = Direction::DaemonToClient;
        let DaemonState::Download(nar) = &mut self.daemon_state else {
            return false;
        };
        let seq = nar.seq;
        match nar.step(
            &mut self.daemon,
            self.limits.piece_len,
            DIR,
            &mut self.events,
        ) {
            NarStep::Wait => false,
            NarStep::Progress => true,
            NarStep::Ended => {
                self.shared.daemon_seq = seq + 1;
                self.set_daemon(DaemonState::Idle);
                true
            }
            // The dump failed: the STDERR_ERROR that follows is the op's.
            NarStep::DumpFailed => {
                self.set_daemon(DaemonState::Work { seq });
                true
            }
            NarStep::Failed(reason) => {
                self.set_daemon(DaemonState::Opaque { reason });
                true
            }
        }
    }

    fn flush_daemon(&mut self) {
        const DIR: Direction = Direction::DaemonToClient;
        let state = std::mem::replace(&mut self.daemon_state, DaemonState::Ended);
        let what = match state {
            DaemonState::Ended => return,
            DaemonState::Opaque { reason } => {
                Self::step_opaque(
                    &mut self.events,
                    &mut self.daemon,
                    DIR,
                    &reason,
                    self.limits.piece_len,
                    true,
                );
                return;
            }
            DaemonState::Download(mut nar) => {
                nar.flush(DIR, &mut self.events);
                format!("the NAR of op {}", nar.seq)
            }
            DaemonState::Hello => "the daemon hello".to_owned(),
            DaemonState::AfterHello if self.shared.client_version.is_none() => {
                self.opaque_rest(
                    DIR,
                    "the client's hello never arrived, so the daemon's handshake cannot be decoded",
                );
                return;
            }
            DaemonState::AfterHello => "the daemon handshake".to_owned(),
            DaemonState::Features => "the daemon feature list".to_owned(),
            DaemonState::NixVersion => "the daemon's Nix version".to_owned(),
            DaemonState::Trust => "the daemon's trust".to_owned(),
            DaemonState::Drain => "a handshake log message".to_owned(),
            DaemonState::Idle => "a log message".to_owned(),
            DaemonState::Work { seq } => format!("a log message of op {seq}"),
            DaemonState::Reply { seq } => format!("the reply of op {seq}"),
        };
        self.truncated_rest(DIR, &what);
    }

    /// Reports the remaining bytes of a direction as opaque.
    fn opaque_rest(&mut self, direction: Direction, why: &str) {
        let piece_len = self.limits.piece_len;
        let stream = match direction {
            Direction::ClientToDaemon => &mut self.client,
            Direction::DaemonToClient => &mut self.daemon,
        };
        let reason = format!("{why} (offset {})", stream.offset);
        Self::step_opaque(
            &mut self.events,
            stream,
            direction,
            &reason,
            piece_len,
            true,
        );
    }

    /// Reports the remaining bytes of a direction, cut short by the end of
    /// the connection, as truncated.
    fn truncated_rest(&mut self, direction: Direction, what: &str) {
        let piece_len = self.limits.piece_len;
        let stream = match direction {
            Direction::ClientToDaemon => &mut self.client,
            Direction::DaemonToClient => &mut self.daemon,
        };
        let reason = format!(
            "the connection ended inside {what} starting at offset {}",
            stream.offset
        );
        while stream.len() > 0 {
            let len = stream.len().min(piece_len);
            let data = ByteString(stream.data()[..len].to_vec());
            Self::emit(
                &mut self.events,
                stream,
                direction,
                len,
                EventKind::Truncated {
                    reason: reason.clone(),
                    data,
                },
            );
        }
    }
}

/// A broken session invariant, found by [`check_events`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{direction:?} at offset {offset}: {problem}")]
#[non_exhaustive]
pub struct InvariantError {
    /// The direction.
    pub direction: Direction,
    /// Where.
    pub offset: u64,
    /// What is wrong.
    pub problem: String,
}

/// Checks the decoder's guarantees on a connection's events: each
/// direction's events tile its bytes exactly, and each event re-encodes to
/// exactly its bytes. `negotiated` is the session's negotiation (any value
/// will do if none was reached, since no request or reply is decoded then).
pub fn check_events(
    events: &[Event],
    client: &[u8],
    daemon: &[u8],
    negotiated: Option<&Negotiated>,
) -> Result<(), InvariantError> {
    let fallback = Negotiated::new(ProtocolVersion::LATEST);
    let negotiated = negotiated.unwrap_or(&fallback);
    let mut ends = [0u64, 0u64];
    for event in events {
        let (index, bytes) = match event.direction {
            Direction::ClientToDaemon => (0, client),
            Direction::DaemonToClient => (1, daemon),
        };
        let fail = |problem: String| InvariantError {
            direction: event.direction,
            offset: event.offset,
            problem,
        };
        if event.offset != ends[index] {
            return Err(fail(format!("the previous event ended at {}", ends[index])));
        }
        if event.len == 0 && !matches!(event.kind, EventKind::Reply { .. }) {
            return Err(fail("an event other than a reply is empty".to_owned()));
        }
        let end = event.end();
        let Some(expected) = bytes.get(event.offset as usize..end as usize) else {
            return Err(fail(format!(
                "the event ends at {end}, past the {} bytes fed",
                bytes.len()
            )));
        };
        let encoded = event.kind.to_bytes(negotiated);
        if encoded != expected {
            return Err(fail(format!(
                "re-encoding gives {} bytes that differ from the {} bytes decoded",
                encoded.len(),
                expected.len()
            )));
        }
        ends[index] = end;
    }
    for (index, (direction, bytes)) in [
        (Direction::ClientToDaemon, client),
        (Direction::DaemonToClient, daemon),
    ]
    .into_iter()
    .enumerate()
    {
        if ends[index] != bytes.len() as u64 {
            return Err(InvariantError {
                direction,
                offset: ends[index],
                problem: format!("events cover {} of {} bytes", ends[index], bytes.len()),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
