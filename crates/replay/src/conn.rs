//! One live client connection: the daemon side of the handshake, then the
//! request loop that answers from the capture.
//!
//! A [`SessionDecoder`] is fed both what the client sends and what the
//! replayer sends back, so it tells when a request and its upload (framed
//! stream, inline NAR, or one answer per `STDERR_READ`) are complete.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nixcap_wire::handshake::{DaemonNixVersion, FeatureList, HandshakePiece, Trust};
use nixcap_wire::ops::{Reply, Request, Upload};
use nixcap_wire::primitives::Writer;
use nixcap_wire::serve::SERVE_MAGIC_1;
use nixcap_wire::session::{Direction, Event, EventKind, SessionDecoder};
use nixcap_wire::stderr::{ErrorInfo, StderrMessage};
use nixcap_wire::types::DerivedPath;
use nixcap_wire::version::WORKER_MAGIC_1;
use nixcap_wire::{ByteString, Negotiated, ProtocolVersion};

use nixcap_wire::translate::{self, ReplyOutcome, Translation};

use crate::key::neutral_key;
use crate::matcher::LiveMatch;
use crate::recorded::{Piece, RecConn, RecExchange, Send, UploadDigest};
use crate::report::{
    ConnectionProblem, DerivedAnswer, Hang, Refusal, TranslatedConnection, UnmatchedRequest,
    Untranslated, UploadMismatch,
};
use crate::{Shared, VersionPolicy};

/// Nix's default verbosity (`lvlInfo`), until the client's SetOptions says
/// otherwise.
const DEFAULT_VERBOSITY: u64 = 3;

/// What [`Live::derive`] found for a request the capture has no unused
/// answer to.
enum Derived {
    Nothing,
    /// A recorded answer to serve again, and why.
    Again((usize, usize), String),
    /// The bytes of an answer made up from the capture, and how.
    Made(Vec<u8>, String),
}

/// How a connection ended, when not by the client closing it.
enum End {
    /// The connection should be closed now (the finding is reported).
    Close,
}

type Step<T> = Result<T, End>;

mod serve;

pub(crate) struct Live {
    id: u64,
    stream: UnixStream,
    decoder: SessionDecoder,
    queue: VecDeque<Event>,
    eof: bool,
    shared: Arc<Shared>,
    negotiated: Option<Negotiated>,
    /// Whether recorded answers are re-encoded for this client's version.
    translating: bool,
    /// The verbosity of the client's last SetOptions.
    verbosity: u64,
}

impl Live {
    pub fn new(id: u64, stream: UnixStream, shared: Arc<Shared>) -> Self {
        Live {
            id,
            stream,
            decoder: SessionDecoder::new(),
            queue: VecDeque::new(),
            eof: false,
            shared,
            negotiated: None,
            translating: false,
            verbosity: DEFAULT_VERBOSITY,
        }
    }

    fn problem(&self, problem: String) {
        self.shared.with_report(|r| {
            r.problems.push(ConnectionProblem {
                connection: self.id,
                problem,
            })
        });
    }

    fn io(&self, what: &str, err: &io::Error) -> End {
        if !self.shared.stopping() {
            self.problem(format!("{what}: {err}"));
        }
        End::Close
    }

    fn collect(&mut self) {
        for event in self.decoder.drain_events() {
            if event.direction == Direction::ClientToDaemon {
                self.queue.push_back(event);
            }
        }
    }

    /// Reads more client bytes; false at end of input.
    fn fill(&mut self) -> Step<bool> {
        if self.eof {
            return Ok(false);
        }
        let mut buf = vec![0u8; 64 * 1024];
        let n = loop {
            match self.stream.read(&mut buf) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => break 0,
                Err(e) => return Err(self.io("reading from the client", &e)),
            }
        };
        if n == 0 {
            self.eof = true;
            self.decoder.finish();
            self.collect();
            return Ok(false);
        }
        self.decoder.feed(Direction::ClientToDaemon, &buf[..n]);
        self.collect();
        Ok(true)
    }

    /// The next client event; `None` when the client closed the connection.
    fn next_event(&mut self) -> Step<Option<Event>> {
        loop {
            if let Some(event) = self.queue.pop_front() {
                return Ok(Some(event));
            }
            if !self.fill()? {
                if let Some(event) = self.queue.pop_front() {
                    return Ok(Some(event));
                }
                return Ok(None);
            }
        }
    }

    fn send(&mut self, bytes: &[u8]) -> Step<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        if let Err(e) = self.stream.write_all(bytes) {
            return Err(self.io("writing to the client", &e));
        }
        self.decoder.feed(Direction::DaemonToClient, bytes);
        self.collect();
        Ok(())
    }

    /// Waits for the next handshake piece from the client.
    fn handshake_piece(&mut self) -> Step<Option<HandshakePiece>> {
        match self.next_event()? {
            None => Ok(None),
            Some(Event {
                kind: EventKind::Handshake { piece },
                ..
            }) => Ok(Some(piece)),
            Some(event) => {
                self.problem(format!(
                    "the client's handshake could not be decoded at offset {}: {}",
                    event.offset,
                    describe(&event.kind)
                ));
                Err(End::Close)
            }
        }
    }

    pub fn run(mut self) {
        let _ = self.serve();
        // The server keeps a clone of the socket, so dropping ours would not
        // close the connection: shut it down so the client sees the end.
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
        self.shared.forget_stream(self.id);
    }

    fn serve(&mut self) -> Step<()> {
        let recorded = Arc::clone(&self.shared.recorded);
        // Read the magic alone: clients before Nix 2.23 wait for the daemon's
        // hello before they send their version.
        let mut magic = [0u8; 8];
        if let Err(e) = self.stream.read_exact(&mut magic) {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                return Err(End::Close);
            }
            return Err(self.io("reading the client's magic", &e));
        }
        if u64::from_le_bytes(magic) == SERVE_MAGIC_1 {
            return self.serve_protocol(magic);
        }
        let Some(template) = recorded
            .connections
            .iter()
            .find(|c| c.daemon_hello.is_some() && !c.serve)
        else {
            self.problem(
                "a worker-protocol client, but the capture holds no worker-protocol handshake \
                 to replay"
                    .to_owned(),
            );
            return Err(End::Close);
        };
        if u64::from_le_bytes(magic) != WORKER_MAGIC_1 {
            self.problem(format!(
                "the client did not start with the worker protocol magic (got {:#x})",
                u64::from_le_bytes(magic)
            ));
            return Err(End::Close);
        }
        self.decoder.feed(Direction::ClientToDaemon, &magic);
        let hello = template.daemon_hello.clone().unwrap_or_default();
        self.send(&hello)?;
        let client_version = match self.handshake_piece()? {
            Some(HandshakePiece::ClientHello(hello)) => hello.version,
            _ => return Err(End::Close),
        };
        let Some(daemon_version) = template.daemon_version else {
            return Err(End::Close);
        };
        let chosen = recorded
            .connections
            .iter()
            .find(|c| c.client_version == Some(client_version) && c.daemon_hello.is_some());
        let version = ProtocolVersion::negotiate(client_version, daemon_version);
        // The client's features (≥ 1.38) come before the daemon's.
        if version.at_least(38) {
            match self.handshake_piece()? {
                Some(HandshakePiece::ClientFeatures { .. }) => {}
                _ => return Err(End::Close),
            }
            let recorded_features = chosen
                .and_then(|c| c.daemon_features.clone())
                .or_else(|| template.daemon_features.clone());
            if recorded_features.is_none() && chosen.is_none() && self.translate_policy() {
                self.note(
                    &Translation {
                        subject: "handshake".to_owned(),
                        field: "features".to_owned(),
                        action: translate::Action::Filled,
                        detail: "exchanged from protocol 1.38; the recording did not carry the \
                                 daemon's, so it offers none"
                            .to_owned(),
                    },
                    &daemon_version.to_string(),
                    &version.to_string(),
                );
            }
            let features = recorded_features.unwrap_or_else(|| {
                let mut w = Writer::new();
                FeatureList::default().encode(&mut w);
                w.into_bytes()
            });
            self.send(&features)?;
        }
        if version.at_least(14) {
            match self.handshake_piece()? {
                Some(HandshakePiece::ClientAffinity(_)) => {}
                _ => return Err(End::Close),
            }
        }
        if version.at_least(11) {
            match self.handshake_piece()? {
                Some(HandshakePiece::ClientReserveSpace { .. }) => {}
                _ => return Err(End::Close),
            }
        }
        let chosen = match chosen {
            Some(chosen) => chosen,
            None if self.translate_policy() => {
                return self.serve_translated(template, client_version, version);
            }
            None => return self.refuse(template, client_version, version),
        };
        self.send(&chosen.daemon_post)?;
        if !chosen.handshake_complete {
            self.shared.with_report(|r| {
                r.hangs.push(Hang {
                    connection: self.id,
                    seq: 0,
                    op: "handshake".to_owned(),
                    key_argument: None,
                    reason: "the recorded handshake did not end with STDERR_LAST".to_owned(),
                })
            });
            return Err(End::Close);
        }
        self.negotiated = self
            .decoder
            .negotiated()
            .cloned()
            .or_else(|| chosen.negotiated.clone());
        let mut live = LiveMatch::new(self.id, client_version);
        let result = self.request_loop(&mut live);
        self.shared.lock_matcher().release(&mut live);
        result
    }

    fn translate_policy(&self) -> bool {
        self.shared.options.version_policy == VersionPolicy::Translate
    }

    /// Counts a translation in the report.
    fn note(&self, note: &Translation, from: &str, to: &str) {
        self.shared
            .with_report(|r| r.count_translation(note, from, to));
    }

    /// Ends the handshake for a client of a version the capture does not
    /// hold, with the recorded daemon's fields in the client's layout, and
    /// serves it with re-encoded answers.
    fn serve_translated(
        &mut self,
        template: &RecConn,
        client_version: ProtocolVersion,
        version: ProtocolVersion,
    ) -> Step<()> {
        let recorded = Arc::clone(&self.shared.recorded);
        let template = recorded
            .connections
            .iter()
            .find(|c| c.handshake_complete && c.daemon_hello.is_some() && !c.serve)
            .unwrap_or(template);
        let live = self
            .decoder
            .negotiated()
            .cloned()
            .unwrap_or_else(|| Negotiated::new(version));
        let from = template
            .negotiated
            .as_ref()
            .map(|n| n.version.to_string())
            .unwrap_or_default();
        let to = live.version.to_string();
        let recorded_versions: Vec<String> = recorded
            .client_versions()
            .iter()
            .map(ToString::to_string)
            .collect();
        self.shared.with_report(|r| {
            r.translated.push(TranslatedConnection {
                connection: self.id,
                client_version: client_version.to_string(),
                negotiated: to.clone(),
                recorded_versions,
            })
        });
        let post =
            translate::daemon_post(template.daemon_nix_version.as_ref(), template.trust, &live);
        for note in &post.notes {
            self.note(note, &from, &to);
        }
        let mut bytes = post.value;
        let recorded_n = template
            .negotiated
            .clone()
            .unwrap_or_else(|| Negotiated::new(version));
        for message in &template.drain {
            let translated = translate::stderr(message, &recorded_n, &live, self.verbosity);
            for note in &translated.notes {
                self.note(note, &from, &to);
            }
            if let Some(message) = translated.value {
                bytes.extend_from_slice(&message.to_bytes());
            }
        }
        self.send(&bytes)?;
        if !template.handshake_complete {
            return Err(End::Close);
        }
        self.negotiated = Some(live);
        self.translating = true;
        let mut live_match = LiveMatch::new(self.id, client_version);
        let result = self.request_loop(&mut live_match);
        self.shared.lock_matcher().release(&mut live_match);
        result
    }

    /// Translation only: an answer for a request the capture has no unused
    /// answer to, which a client of another version asks where the recorded
    /// client did not. Either a recorded answer to serve again (read-only
    /// queries), or the bytes of an answer made up from the capture with a
    /// note saying how.
    fn derive(
        &self,
        live: &mut LiveMatch,
        key: &serde_json::Value,
        request: &Request,
        negotiated: &Negotiated,
    ) -> Derived {
        let answer = |reply: Reply| {
            let mut w = Writer::new();
            StderrMessage::Last.encode(&mut w);
            reply.encode(&mut w, negotiated);
            w.into_bytes()
        };
        match request {
            // daemon.cc: AddTempRoot registers the root, logs nothing and
            // answers 1, at every version.
            Request::AddTempRoot { .. } => Derived::Made(
                answer(Reply::AddTempRoot { result: 1 }),
                "a daemon answers AddTempRoot with 1 and no log".to_owned(),
            ),
            Request::IsValidPath { path } => {
                let validity = self.shared.lock_matcher().implied_validity(path);
                match validity {
                    Some(valid) => Derived::Made(
                        answer(Reply::IsValidPath { valid }),
                        format!(
                            "{} as the capture shows at this point",
                            if valid { "valid" } else { "invalid" }
                        ),
                    ),
                    None => Derived::Nothing,
                }
            }
            // misc.cc `queryMissing`: a path that is already valid needs
            // nothing (no substituter is asked, nothing is logged), so a
            // request of opaque paths that are all valid is answered with
            // empty sets and sizes of 0, at every version. Anything else
            // (derivation outputs, paths not known valid) would need the
            // derivation or the substituters: not made up.
            Request::QueryMissing { paths } => {
                let matcher = self.shared.lock_matcher();
                let all_valid = paths.iter().all(|p| match p {
                    DerivedPath::Opaque { path } => matcher.implied_validity(path) == Some(true),
                    _ => false,
                });
                drop(matcher);
                if !all_valid {
                    return Derived::Nothing;
                }
                Derived::Made(
                    answer(Reply::QueryMissing {
                        will_build: Vec::new(),
                        will_substitute: Vec::new(),
                        unknown: Vec::new(),
                        download_size: 0,
                        nar_size: 0,
                    }),
                    format!(
                        "nothing to build, substitute or fetch: {} path(s), valid as the \
                         capture shows at this point",
                        paths.len()
                    ),
                )
            }
            Request::QueryPathInfo { .. }
            | Request::QueryValidPaths { .. }
            | Request::QueryReferrers { .. }
            | Request::QueryDerivationOutputMap { .. }
            | Request::QueryPathFromHashPart { .. }
            | Request::QueryValidDerivers { .. } => {
                let again = self.shared.lock_matcher().find_again(live, key);
                match again {
                    Some((c, e)) => {
                        let conn = &self.shared.recorded.connections[c];
                        let how = format!(
                            "the recorded answer of recorded connection {} op {} served again",
                            conn.conn, conn.exchanges[e].seq
                        );
                        Derived::Again((c, e), how)
                    }
                    None => Derived::Nothing,
                }
            }
            _ => Derived::Nothing,
        }
    }

    fn note_derived(&self, seq: u64, request: &Request, how: String) {
        self.shared.with_report(|r| {
            r.derived.push(DerivedAnswer {
                connection: self.id,
                seq,
                op: request.op().name().to_owned(),
                key_argument: nixcap_view::display::key_argument(request),
                how,
            })
        });
    }

    /// The recorded daemon messages of `exchange`, re-encoded from the
    /// recorded negotiation `from` for the live one `to`, with the changes
    /// made.
    fn translated_sends(
        &self,
        exchange: &RecExchange,
        from: &Negotiated,
        to: &Negotiated,
    ) -> Result<(Vec<Send>, Vec<Translation>), translate::Untranslatable> {
        let mut sends: Vec<Send> = Vec::with_capacity(exchange.sends.len());
        let mut notes = Vec::new();
        for send in &exchange.sends {
            match &send.piece {
                Piece::Verbatim => sends.push(send.clone()),
                Piece::Stderr(message) => {
                    let translated = translate::stderr(message, from, to, self.verbosity);
                    notes.extend(translated.notes);
                    if let Some(message) = translated.value {
                        sends.push(Send {
                            bytes: message.to_bytes(),
                            after_nanos: send.after_nanos,
                            read: send.read,
                            piece: Piece::Stderr(message),
                        });
                    }
                }
                Piece::Reply(reply) => {
                    let translated = translate::reply(exchange.request.as_ref(), reply, from, to)?;
                    notes.extend(translated.notes);
                    match translated.value {
                        ReplyOutcome::Reply(reply) => {
                            let mut w = Writer::new();
                            reply.encode(&mut w, to);
                            sends.push(Send {
                                bytes: w.into_bytes(),
                                after_nanos: send.after_nanos,
                                read: false,
                                piece: Piece::Reply(reply),
                            });
                        }
                        ReplyOutcome::Error(info) => {
                            // The error takes the place of STDERR_LAST and the reply.
                            if matches!(
                                sends.last().map(|s| &s.piece),
                                Some(Piece::Stderr(StderrMessage::Last))
                            ) {
                                sends.pop();
                            }
                            let message = StderrMessage::Error(info);
                            sends.push(Send {
                                bytes: message.to_bytes(),
                                after_nanos: send.after_nanos,
                                read: false,
                                piece: Piece::Stderr(message),
                            });
                        }
                    }
                }
            }
        }
        Ok((sends, notes))
    }

    /// Ends the handshake with an error saying which versions the capture
    /// holds, then closes.
    fn refuse(
        &mut self,
        template: &RecConn,
        client_version: ProtocolVersion,
        version: ProtocolVersion,
    ) -> Step<()> {
        let recorded_versions: Vec<String> = self
            .shared
            .recorded
            .client_versions()
            .iter()
            .map(ToString::to_string)
            .collect();
        self.shared.with_report(|r| {
            r.refused.push(Refusal {
                connection: self.id,
                client_version: client_version.to_string(),
                recorded_versions: recorded_versions.clone(),
            })
        });
        let mut w = Writer::new();
        if version.at_least(33) {
            DaemonNixVersion(template.daemon_nix_version.clone().unwrap_or_default())
                .encode(&mut w);
        }
        if version.at_least(35) {
            template.trust.unwrap_or(Trust::Unknown).encode(&mut w);
        }
        let message = format!(
            "nixcap replay: this client speaks worker protocol {client_version}, but the capture holds only \
             connections of protocol {}; replay it with the Nix version it was recorded with",
            recorded_versions.join(", ")
        );
        error_message(version, &message).encode(&mut w);
        let bytes = w.into_bytes();
        self.send(&bytes)?;
        Err(End::Close)
    }

    fn request_loop(&mut self, live: &mut LiveMatch) -> Step<()> {
        loop {
            let Some(event) = self.next_event()? else {
                return Ok(());
            };
            match event.kind {
                EventKind::Request { seq, request } => self.answer(live, seq, *request)?,
                EventKind::Opaque { reason, .. } => {
                    self.problem(format!(
                        "the client sent bytes that cannot be decoded: {reason}"
                    ));
                    if let Some(negotiated) = self.negotiated.clone() {
                        let message = format!("nixcap replay: cannot decode the request: {reason}");
                        let bytes = error_message(negotiated.version, &message).to_bytes();
                        let _ = self.send(&bytes);
                    }
                    return Err(End::Close);
                }
                EventKind::Truncated { .. } => return Ok(()),
                _ => {}
            }
        }
    }

    /// Consumes the upload that follows a request; returns its digest.
    fn consume_upload(&mut self, seq: u64, upload: Upload) -> Step<UploadDigest> {
        if !matches!(upload, Upload::Framed | Upload::InlineNar) {
            return Ok(UploadDigest::default());
        }
        self.digest_upload(&format!("op {seq}"))
    }

    /// Reads the events of an upload (framed data, a NAR or an export
    /// stream) to its end; `what` names the op or command in problems.
    fn digest_upload(&mut self, what: &str) -> Step<UploadDigest> {
        let mut digest = UploadDigest::default();
        loop {
            let Some(event) = self.next_event()? else {
                self.problem(format!(
                    "the client closed the connection during the upload of {what}"
                ));
                return Err(End::Close);
            };
            match &event.kind {
                EventKind::FramedData { data, .. } => digest.update(data.as_bytes()),
                EventKind::FramedEnd { .. } => return Ok(digest),
                EventKind::NarData { data, end, .. } | EventKind::ExportData { data, end, .. } => {
                    digest.update(data.as_bytes());
                    if *end {
                        return Ok(digest);
                    }
                }
                EventKind::FramedHeader { .. } => {}
                other => {
                    self.problem(format!(
                        "the upload of {what} could not be decoded: {}",
                        describe(other)
                    ));
                    return Err(End::Close);
                }
            }
        }
    }

    fn answer(&mut self, live: &mut LiveMatch, seq: u64, request: Request) -> Step<()> {
        let op = request.op();
        let negotiated = self
            .negotiated
            .clone()
            .unwrap_or_else(|| Negotiated::new(live.version));
        let upload = op.upload(&negotiated);
        if let Request::SetOptions { settings } = &request {
            self.verbosity = settings.verbosity;
        }
        let key = neutral_key(&request, &negotiated);
        let key_argument = nixcap_view::display::key_argument(&request);
        let mut found = self.shared.lock_matcher().find(live, &key);
        let mut derived = None;
        if found.is_none() && self.translating {
            match self.derive(live, &key, &request, &negotiated) {
                Derived::Nothing => {}
                Derived::Again(at, how) => {
                    found = Some(at);
                    self.note_derived(seq, &request, how);
                }
                Derived::Made(bytes, how) => derived = Some((bytes, how)),
            }
        }
        let mut digest = self.consume_upload(seq, upload)?;
        if let Some((bytes, how)) = derived {
            self.note_derived(seq, &request, how);
            return self.send(&bytes);
        }
        let recorded = Arc::clone(&self.shared.recorded);
        let Some((c, e)) = found else {
            self.shared.with_report(|r| {
                r.unmatched.push(UnmatchedRequest {
                    connection: self.id,
                    seq,
                    op: op.name().to_owned(),
                    key_argument: key_argument.clone(),
                })
            });
            let message = match &key_argument {
                Some(arg) => format!("nixcap replay: not in capture: {} {arg}", op.name()),
                None => format!("nixcap replay: not in capture: {}", op.name()),
            };
            let bytes = error_message(negotiated.version, &message).to_bytes();
            return self.send(&bytes);
        };
        let exchange = &recorded.connections[c].exchanges[e];
        let recorded_n = recorded.connections[c].negotiated.clone();
        let translated;
        let sends: &[Send] = match recorded_n {
            Some(from) if self.translating && from != negotiated => {
                match self.translated_sends(exchange, &from, &negotiated) {
                    Ok((sends, notes)) => {
                        let (from, to) = (from.version.to_string(), negotiated.version.to_string());
                        for note in &notes {
                            self.note(note, &from, &to);
                        }
                        translated = sends;
                        &translated
                    }
                    Err(refused) => {
                        self.shared.with_report(|r| {
                            r.untranslatable.push(Untranslated {
                                connection: self.id,
                                seq,
                                op: op.name().to_owned(),
                                key_argument: key_argument.clone(),
                                reason: refused.to_string(),
                            })
                        });
                        let message = format!(
                            "nixcap replay: the recorded answer to {} cannot be translated: {refused}",
                            op.name()
                        );
                        let bytes = error_message(negotiated.version, &message).to_bytes();
                        return self.send(&bytes);
                    }
                }
            }
            _ => &exchange.sends,
        };
        self.shared.with_report(|r| r.served += 1);
        let start = Instant::now();
        let speed = self.shared.options.speed;
        for piece in sends {
            if speed > 0.0 {
                let due = Duration::from_secs_f64(piece.after_nanos as f64 / 1e9 / speed);
                let elapsed = start.elapsed();
                if due > elapsed {
                    std::thread::sleep(due - elapsed);
                }
            }
            self.send(&piece.bytes)?;
            if piece.read {
                match self.next_event()? {
                    Some(Event {
                        kind: EventKind::ReadAnswer { data, .. },
                        ..
                    }) => digest.update(data.as_bytes()),
                    Some(other) => {
                        self.problem(format!(
                            "op {seq} ({}): expected an answer to STDERR_READ, got {}",
                            op.name(),
                            describe(&other.kind)
                        ));
                        return Err(End::Close);
                    }
                    None => {
                        self.problem(format!(
                            "op {seq} ({}): the client closed the connection instead of answering STDERR_READ",
                            op.name()
                        ));
                        return Err(End::Close);
                    }
                }
            }
        }
        if upload != Upload::None
            && (digest.len != exchange.upload.len || digest.hex() != exchange.upload.hex())
        {
            self.shared.with_report(|r| {
                r.upload_mismatches.push(UploadMismatch {
                    connection: self.id,
                    seq,
                    op: op.name().to_owned(),
                    key_argument: key_argument.clone(),
                    recorded_sha256: exchange.upload.hex(),
                    recorded_len: exchange.upload.len,
                    live_sha256: digest.hex(),
                    live_len: digest.len,
                })
            });
        }
        if let Some(reason) = &exchange.incomplete {
            self.shared.with_report(|r| {
                r.hangs.push(Hang {
                    connection: self.id,
                    seq,
                    op: op.name().to_owned(),
                    key_argument: key_argument.clone(),
                    reason: reason.clone(),
                })
            });
            return Err(End::Close);
        }
        Ok(())
    }
}

/// A `STDERR_ERROR` in the layout of `version`.
fn error_message(version: ProtocolVersion, message: &str) -> StderrMessage {
    let message = ByteString::from(message);
    let info = if version.at_least(26) {
        ErrorInfo::Structured {
            level: 0,
            name: ByteString::from("Error"),
            message,
            traces: Vec::new(),
        }
    } else {
        ErrorInfo::Legacy {
            message,
            exit_status: 1,
        }
    };
    StderrMessage::Error(info)
}

fn describe(kind: &EventKind) -> String {
    match kind {
        EventKind::Opaque { reason, .. } | EventKind::Truncated { reason, .. } => reason.clone(),
        other => format!("{other:?}").chars().take(120).collect(),
    }
}
