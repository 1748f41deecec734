//! The serve protocol (`nix-store --serve`, behind `ssh://` stores) in the
//! session decoder.
//!
//! [`SessionDecoder`](super::SessionDecoder) tells the protocol from the
//! client's first word and, for the serve protocol, runs the two sides here
//! instead of the worker protocol's. The guarantees are the same (tiling,
//! re-encoding, split independence, no failure, bounded memory).
//!
//! The client side decodes its hello, then commands one after the other,
//! each followed by its upload: AddToStoreNar's NAR and ImportPaths' export
//! stream. The server side decodes its hello, then one reply per command in
//! order: a [`ServeReply`], or the NAR of DumpStorePath or the export stream
//! of ExportPaths. Server bytes with no command to answer are opaque once
//! the client side can send no more commands.

use crate::bytes::ByteString;
use crate::export::{ExportDecoder, ExportMode, ExportStatus};
use crate::nar::NarOptions;
use crate::serve::ops::{ServeCommand, ServeHello, ServeReply, ServeRequest};
use crate::serve::{SERVE_MAGIC_1, SERVE_MAGIC_2};
use crate::version::{Negotiated, ProtocolVersion};

use super::events::{Direction, Event, EventKind, OpRecord};
use super::stream::{decode_unit, NarStep, NarStream, Stream, Unit};
use super::SessionDecoder;

use std::collections::VecDeque;

/// One side's state.
#[derive(Debug)]
pub(super) enum Side {
    Hello,
    Ready,
    Nar(NarStream),
    Export(ExportStream),
    Opaque { reason: String },
}

/// What the serve protocol adds to the decoder.
#[derive(Debug)]
pub(super) struct ServeState {
    pub(super) client: Side,
    pub(super) server: Side,
    /// The command of each op, by seq.
    commands: Vec<ServeCommand>,
    /// The op whose reply comes next.
    next_reply: u64,
}

impl ServeState {
    pub(super) fn new() -> Self {
        ServeState {
            client: Side::Hello,
            server: Side::Hello,
            commands: Vec::new(),
            next_reply: 0,
        }
    }

    /// Bytes held in pieces not yet emitted.
    pub(super) fn buffered_len(&self) -> usize {
        [&self.client, &self.server]
            .iter()
            .map(|side| match side {
                Side::Nar(nar) => nar.piece.len(),
                Side::Export(export) => export.piece.len(),
                _ => 0,
            })
            .sum()
    }
}

/// An export stream streamed raw, cut into pieces at fixed positions from
/// its start.
#[derive(Debug)]
pub(super) struct ExportStream {
    seq: u64,
    decoder: ExportDecoder,
    pub(super) piece: Vec<u8>,
    piece_start: u64,
    /// Where the stream began, for messages: unlike the offset of a feed,
    /// it does not depend on how the bytes arrived.
    stream_start: u64,
}

enum ExportStep {
    Wait,
    Progress,
    Ended,
    Failed(String),
}

impl ExportStream {
    fn new(seq: u64, start: u64) -> Self {
        ExportStream {
            seq,
            decoder: ExportDecoder::new(ExportMode::Stream, NarOptions::default()),
            piece: Vec::new(),
            piece_start: start,
            stream_start: start,
        }
    }

    fn emit(&mut self, len: usize, end: bool, direction: Direction, events: &mut VecDeque<Event>) {
        let data: Vec<u8> = self.piece.drain(..len).collect();
        events.push_back(Event {
            direction,
            offset: self.piece_start,
            len: len as u64,
            kind: EventKind::ExportData {
                seq: self.seq,
                data: ByteString(data),
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
    ) -> ExportStep {
        let mut parsed = Vec::new();
        let progress = self.decoder.feed(stream.data(), &mut parsed);
        if progress.consumed > 0 {
            self.piece
                .extend_from_slice(&stream.data()[..progress.consumed]);
            stream.consume(progress.consumed);
        }
        let more = progress.status == ExportStatus::NeedMore;
        let mut emitted = false;
        while self.piece.len() > piece_len || (more && self.piece.len() == piece_len) {
            self.emit(piece_len, false, direction, events);
            emitted = true;
        }
        match progress.status {
            ExportStatus::NeedMore => {
                if progress.consumed > 0 || emitted {
                    ExportStep::Progress
                } else {
                    ExportStep::Wait
                }
            }
            ExportStatus::Done => {
                let len = self.piece.len();
                self.emit(len, true, direction, events);
                ExportStep::Ended
            }
            ExportStatus::Failed(error) => {
                self.flush(direction, events);
                ExportStep::Failed(format!(
                    "the export stream starting at offset {} is invalid: {error}",
                    self.stream_start
                ))
            }
        }
    }

    fn flush(&mut self, direction: Direction, events: &mut VecDeque<Event>) {
        if !self.piece.is_empty() {
            let len = self.piece.len();
            self.emit(len, false, direction, events);
        }
    }
}

/// NAR options for serve transfers: there is no log channel to detect.
fn nar_options() -> NarOptions {
    NarOptions {
        detect_stderr_error: false,
        ..NarOptions::default()
    }
}

impl SessionDecoder {
    fn serve_state(&mut self) -> &mut ServeState {
        self.serve
            .get_or_insert_with(|| Box::new(ServeState::new()))
    }

    /// The negotiated serve version, once both hellos are known.
    fn serve_version(&self) -> Option<ProtocolVersion> {
        self.shared.version()
    }

    pub(super) fn run_serve(&mut self) {
        loop {
            let client = self.step_serve_client();
            let server = self.step_serve_server();
            if !client && !server {
                break;
            }
        }
    }

    fn serve_opaque(&mut self, direction: Direction, reason: String) {
        let state = self.serve_state();
        let side = match direction {
            Direction::ClientToDaemon => &mut state.client,
            Direction::DaemonToClient => &mut state.server,
        };
        *side = Side::Opaque { reason };
        if direction == Direction::ClientToDaemon {
            self.shared.client_opaque = true;
        }
        let stream = match direction {
            Direction::ClientToDaemon => &mut self.client,
            Direction::DaemonToClient => &mut self.daemon,
        };
        stream.wait_len = 0;
        stream.attempted_len = 0;
    }

    fn step_serve_client(&mut self) -> bool {
        const DIR: Direction = Direction::ClientToDaemon;
        let max = self.limits.max_unit_len;
        let piece_len = self.limits.piece_len;
        let state = std::mem::replace(&mut self.serve_state().client, Side::Ready);
        match state {
            Side::Opaque { reason } => {
                let eof = self.client.eof;
                let progress = Self::step_opaque(
                    &mut self.events,
                    &mut self.client,
                    DIR,
                    &reason,
                    piece_len,
                    eof,
                );
                self.serve_state().client = Side::Opaque { reason };
                progress
            }
            Side::Hello => {
                match decode_unit(&mut self.client, max, "the client hello", |r| {
                    ServeHello::decode(r, SERVE_MAGIC_1)
                }) {
                    Unit::Ready(hello, len) => {
                        self.shared.client_version = Some(hello.version);
                        self.update_serve_negotiated();
                        Self::emit(
                            &mut self.events,
                            &mut self.client,
                            DIR,
                            len,
                            EventKind::ServeHello { hello },
                        );
                        self.serve_state().client = Side::Ready;
                        true
                    }
                    Unit::Wait => {
                        self.serve_state().client = Side::Hello;
                        false
                    }
                    Unit::Bad(reason) => {
                        self.serve_opaque(DIR, reason);
                        true
                    }
                }
            }
            Side::Ready => {
                let Some(version) = self.serve_version() else {
                    // Commands are laid out for the negotiated version.
                    return false;
                };
                if self.client.len() == 0 {
                    return false;
                }
                match decode_unit(&mut self.client, max, "a serve command", |r| {
                    ServeRequest::decode(r, version)
                }) {
                    Unit::Ready(request, len) => {
                        let seq = self.shared.ops.len() as u64;
                        let command = request.command();
                        let offset = self.client.offset + len as u64;
                        self.shared.ops.push(OpRecord {
                            seq,
                            op_word: request.word(),
                            op: None,
                            serve: command,
                            reads: 0,
                            ended: false,
                        });
                        let next = match &request {
                            ServeRequest::AddToStoreNar(_) => {
                                Side::Nar(NarStream::new(seq, offset, nar_options()))
                            }
                            ServeRequest::ImportPaths => {
                                Side::Export(ExportStream::new(seq, offset))
                            }
                            _ => Side::Ready,
                        };
                        if let Some(command) = command {
                            self.serve_state().commands.push(command);
                        }
                        Self::emit(
                            &mut self.events,
                            &mut self.client,
                            DIR,
                            len,
                            EventKind::ServeRequest {
                                seq,
                                request: Box::new(request),
                            },
                        );
                        self.serve_state().client = next;
                        true
                    }
                    Unit::Wait => false,
                    Unit::Bad(reason) => {
                        self.serve_opaque(DIR, reason);
                        true
                    }
                }
            }
            Side::Nar(mut nar) => {
                match nar.step(&mut self.client, piece_len, DIR, &mut self.events) {
                    NarStep::Wait => {
                        self.serve_state().client = Side::Nar(nar);
                        false
                    }
                    NarStep::Progress => {
                        self.serve_state().client = Side::Nar(nar);
                        true
                    }
                    NarStep::Ended => true,
                    NarStep::DumpFailed => {
                        self.serve_opaque(DIR, "an uploaded NAR ended unexpectedly".to_owned());
                        true
                    }
                    NarStep::Failed(reason) => {
                        self.serve_opaque(DIR, reason);
                        true
                    }
                }
            }
            Side::Export(mut export) => {
                match export.step(&mut self.client, piece_len, DIR, &mut self.events) {
                    ExportStep::Wait => {
                        self.serve_state().client = Side::Export(export);
                        false
                    }
                    ExportStep::Progress => {
                        self.serve_state().client = Side::Export(export);
                        true
                    }
                    ExportStep::Ended => true,
                    ExportStep::Failed(reason) => {
                        self.serve_opaque(DIR, reason);
                        true
                    }
                }
            }
        }
    }

    fn update_serve_negotiated(&mut self) {
        if let Some(version) = self.shared.version() {
            self.shared.negotiated = Some(Negotiated::new(version));
        }
    }

    /// Whether the client can still send a command.
    fn serve_client_may_continue(&self) -> bool {
        let client_side_open = match &self.serve {
            Some(state) => !matches!(state.client, Side::Opaque { .. }),
            None => true,
        };
        client_side_open && !(self.client.eof && self.client.len() == 0)
    }

    fn step_serve_server(&mut self) -> bool {
        const DIR: Direction = Direction::DaemonToClient;
        let max = self.limits.max_unit_len;
        let piece_len = self.limits.piece_len;
        let state = std::mem::replace(&mut self.serve_state().server, Side::Ready);
        match state {
            Side::Opaque { reason } => {
                let eof = self.daemon.eof;
                let progress = Self::step_opaque(
                    &mut self.events,
                    &mut self.daemon,
                    DIR,
                    &reason,
                    piece_len,
                    eof,
                );
                self.serve_state().server = Side::Opaque { reason };
                progress
            }
            Side::Hello => {
                match decode_unit(&mut self.daemon, max, "the server hello", |r| {
                    ServeHello::decode(r, SERVE_MAGIC_2)
                }) {
                    Unit::Ready(hello, len) => {
                        self.shared.daemon_version = Some(hello.version);
                        self.update_serve_negotiated();
                        Self::emit(
                            &mut self.events,
                            &mut self.daemon,
                            DIR,
                            len,
                            EventKind::ServeHello { hello },
                        );
                        self.serve_state().server = Side::Ready;
                        true
                    }
                    Unit::Wait => {
                        self.serve_state().server = Side::Hello;
                        false
                    }
                    Unit::Bad(reason) => {
                        self.serve_opaque(DIR, reason);
                        true
                    }
                }
            }
            Side::Ready => {
                if self.daemon.len() == 0 {
                    return false;
                }
                let Some(version) = self.serve_version() else {
                    return false;
                };
                let seq = self.serve_state().next_reply;
                let Some(&command) = self.serve_state().commands.get(seq as usize) else {
                    if self.serve_client_may_continue() {
                        return false;
                    }
                    let reason = format!(
                        "server bytes at offset {} answer no command",
                        self.daemon.offset
                    );
                    self.serve_opaque(DIR, reason);
                    return true;
                };
                let offset = self.daemon.offset;
                match command {
                    ServeCommand::DumpStorePath => {
                        self.serve_state().server =
                            Side::Nar(NarStream::new(seq, offset, nar_options()));
                        return true;
                    }
                    ServeCommand::ExportPaths => {
                        self.serve_state().server = Side::Export(ExportStream::new(seq, offset));
                        return true;
                    }
                    _ => {}
                }
                match decode_unit(&mut self.daemon, max, "a serve reply", |r| {
                    ServeReply::decode(r, command, version)
                }) {
                    Unit::Ready(Some(reply), len) => {
                        Self::emit(
                            &mut self.events,
                            &mut self.daemon,
                            DIR,
                            len,
                            EventKind::ServeReply {
                                seq,
                                reply: Box::new(reply),
                            },
                        );
                        self.end_serve_reply(seq);
                        true
                    }
                    Unit::Ready(None, _) | Unit::Wait => false,
                    Unit::Bad(reason) => {
                        self.serve_opaque(DIR, reason);
                        true
                    }
                }
            }
            Side::Nar(mut nar) => {
                let seq = nar.seq;
                match nar.step(&mut self.daemon, piece_len, DIR, &mut self.events) {
                    NarStep::Wait => {
                        self.serve_state().server = Side::Nar(nar);
                        false
                    }
                    NarStep::Progress => {
                        self.serve_state().server = Side::Nar(nar);
                        true
                    }
                    NarStep::Ended => {
                        self.end_serve_reply(seq);
                        true
                    }
                    NarStep::DumpFailed => {
                        self.serve_opaque(DIR, "a downloaded NAR ended unexpectedly".to_owned());
                        true
                    }
                    NarStep::Failed(reason) => {
                        self.serve_opaque(DIR, reason);
                        true
                    }
                }
            }
            Side::Export(mut export) => {
                let seq = export.seq;
                match export.step(&mut self.daemon, piece_len, DIR, &mut self.events) {
                    ExportStep::Wait => {
                        self.serve_state().server = Side::Export(export);
                        false
                    }
                    ExportStep::Progress => {
                        self.serve_state().server = Side::Export(export);
                        true
                    }
                    ExportStep::Ended => {
                        self.end_serve_reply(seq);
                        true
                    }
                    ExportStep::Failed(reason) => {
                        self.serve_opaque(DIR, reason);
                        true
                    }
                }
            }
        }
    }

    fn end_serve_reply(&mut self, seq: u64) {
        if let Some(op) = self.shared.ops.get_mut(seq as usize) {
            op.ended = true;
        }
        let state = self.serve_state();
        state.next_reply = seq + 1;
        state.server = Side::Ready;
    }

    /// At the end: every leftover byte of both sides, as truncated (a value
    /// or transfer cut short) or opaque.
    pub(super) fn flush_serve(&mut self) {
        for direction in [Direction::ClientToDaemon, Direction::DaemonToClient] {
            let state = self.serve_state();
            let side = match direction {
                Direction::ClientToDaemon => &mut state.client,
                Direction::DaemonToClient => &mut state.server,
            };
            let what = match std::mem::replace(side, Side::Ready) {
                Side::Opaque { reason } => {
                    let piece_len = self.limits.piece_len;
                    let stream = match direction {
                        Direction::ClientToDaemon => &mut self.client,
                        Direction::DaemonToClient => &mut self.daemon,
                    };
                    Self::step_opaque(
                        &mut self.events,
                        stream,
                        direction,
                        &reason,
                        piece_len,
                        true,
                    );
                    continue;
                }
                Side::Nar(mut nar) => {
                    nar.flush(direction, &mut self.events);
                    "a NAR"
                }
                Side::Export(mut export) => {
                    export.flush(direction, &mut self.events);
                    "an export stream"
                }
                Side::Hello => "a hello",
                Side::Ready => match direction {
                    Direction::ClientToDaemon if self.serve_version().is_none() => {
                        self.opaque_rest(
                            direction,
                            "the server's hello never arrived, so the client's commands cannot be decoded",
                        );
                        continue;
                    }
                    Direction::ClientToDaemon => "a serve command",
                    Direction::DaemonToClient => "a serve reply",
                },
            };
            self.truncated_rest(direction, what);
        }
    }
}
