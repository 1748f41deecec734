//! One direction's buffered bytes, decoding one buffered value at a time,
//! and NARs streamed in pieces.

use std::collections::VecDeque;

use crate::bytes::ByteString;
use crate::nar::{NarEvent, NarOptions, NarParser, NarStatus};
use crate::primitives::{ReadError, ReadResult, Reader};

use super::events::{Direction, Event, EventKind};

/// One direction's unconsumed bytes.
#[derive(Debug, Default)]
pub(super) struct Stream {
    pub(super) buf: Vec<u8>,
    /// Start of the unconsumed bytes in `buf`.
    pub(super) head: usize,
    /// Stream offset of `buf[head]`.
    pub(super) offset: u64,
    /// Do not retry a value's decoding until this many bytes are there.
    pub(super) wait_len: usize,
    /// Bytes there were at the last attempt that found the value incomplete.
    pub(super) attempted_len: usize,
    /// Length of the longest and of the latest `feed` of this direction.
    pub(super) longest_push: usize,
    pub(super) latest_push: usize,
    /// Whether the connection has ended.
    pub(super) eof: bool,
    /// [`Limits::backoff_from`](super::Limits::backoff_from).
    pub(super) backoff_from: usize,
}

impl Stream {
    pub(super) fn data(&self) -> &[u8] {
        &self.buf[self.head..]
    }

    pub(super) fn len(&self) -> usize {
        self.buf.len() - self.head
    }

    pub(super) fn push(&mut self, bytes: &[u8]) {
        if self.head > 0 && self.head >= self.buf.len() / 2 {
            self.buf.drain(..self.head);
            self.head = 0;
        }
        self.buf.extend_from_slice(bytes);
        self.latest_push = bytes.len();
        self.longest_push = self.longest_push.max(bytes.len());
    }

    pub(super) fn consume(&mut self, n: usize) {
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
pub(super) enum Unit<T> {
    Ready(T, usize),
    Wait,
    Bad(String),
}

/// Decodes one value at the start of `stream`, looking at no more than
/// `max` bytes so the outcome never depends on how much was buffered.
pub(super) fn decode_unit<T>(
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
pub(super) struct NarStream {
    pub(super) seq: u64,
    pub(super) parser: NarParser,
    /// Stream offset where the NAR starts.
    pub(super) start: u64,
    /// Consumed bytes not yet reported.
    pub(super) piece: Vec<u8>,
    /// Stream offset of `piece[0]`.
    pub(super) piece_start: u64,
    /// NAR events not yet attached to a piece.
    pub(super) pending: VecDeque<NarEvent>,
}

pub(super) enum NarStep {
    Wait,
    Progress,
    Ended,
    DumpFailed,
    Failed(String),
}

impl NarStream {
    pub(super) fn new(seq: u64, start: u64, options: NarOptions) -> Self {
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

    pub(super) fn step(
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
    pub(super) fn flush(&mut self, direction: Direction, events: &mut VecDeque<Event>) {
        if !self.piece.is_empty() {
            let len = self.piece.len();
            self.emit_piece(len, false, direction, events);
        }
    }
}
