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

mod checks;
mod client;
mod daemon;
mod events;
mod payload;
mod serve;
mod stream;

use std::collections::VecDeque;

use crate::bytes::ByteString;
use crate::handshake::{HandshakePiece, Trust};
use crate::primitives::{ReadResult, Reader, MAX_STRING_LEN};
use crate::version::{Negotiated, ProtocolVersion};

pub use checks::{check_events, InvariantError};
pub use events::{Direction, Event, EventKind, OpRecord};
pub use payload::{PayloadItem, PayloadKind};

use client::ClientState;
use daemon::DaemonState;
use serve::ServeState;
use stream::{decode_unit, Stream, Unit};

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

/// Which protocol a connection speaks, told from the client's first word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Protocol {
    /// The worker protocol of `nix-daemon` (client magic `0x6e697863`),
    /// also behind `ssh-ng://` stores (`nix-daemon --stdio`).
    Worker,
    /// The serve protocol of `nix-store --serve` (client magic
    /// `0x390c9deb`), behind `ssh://` stores.
    Serve,
}

impl Protocol {
    /// Tells the protocol from the first eight bytes the client sent.
    pub fn from_client_magic(first_word: u64) -> Protocol {
        if first_word == crate::serve::SERVE_MAGIC_1 {
            Protocol::Serve
        } else {
            Protocol::Worker
        }
    }

    /// `worker` or `serve`.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Worker => "worker",
            Protocol::Serve => "serve",
        }
    }
}

/// The streaming decoder for one connection. See the module documentation.
#[derive(Debug)]
pub struct SessionDecoder {
    /// Known once the client's first word is there (or at the end).
    protocol: Option<Protocol>,
    /// The serve protocol's state, for a serve connection.
    serve: Option<Box<ServeState>>,
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
            protocol: None,
            serve: None,
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
        match self.protocol {
            Some(Protocol::Serve) => self.flush_serve(),
            _ => {
                self.flush_client();
                self.flush_daemon();
            }
        }
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

    /// The protocol the connection speaks, once the client's first word
    /// is there (a connection too short to tell is taken as the worker
    /// protocol at the end).
    pub fn protocol(&self) -> Option<Protocol> {
        self.protocol
    }

    /// The negotiated version and features, once both are known. For the
    /// serve protocol, the lower of the two versions (2.x), no features.
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
        self.client.len()
            + self.daemon.len()
            + nar_piece(client_piece)
            + nar_piece(daemon_piece)
            + self.serve.as_ref().map_or(0, |serve| serve.buffered_len())
    }

    fn stream_mut(&mut self, direction: Direction) -> &mut Stream {
        match direction {
            Direction::ClientToDaemon => &mut self.client,
            Direction::DaemonToClient => &mut self.daemon,
        }
    }

    fn run(&mut self) {
        if self.protocol.is_none() {
            let mut r = Reader::new(self.client.data());
            match r.u64() {
                Ok(word) => self.protocol = Some(Protocol::from_client_magic(word)),
                Err(_) if self.client.eof => self.protocol = Some(Protocol::Worker),
                // Neither side says anything before the client's first word.
                Err(_) => return,
            }
        }
        if self.protocol == Some(Protocol::Serve) {
            self.run_serve();
            return;
        }
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

#[cfg(test)]
mod tests;
