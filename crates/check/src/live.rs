//! One connection to the target: the client side of the handshake, then
//! each recorded op — request, upload, one answer per `STDERR_READ` — and
//! the target's whole answer up to the end of its reply.
//!
//! A reader thread takes the target's bytes off the socket as they come and
//! hands them over a channel, so a large upload never deadlocks against a
//! target that writes log messages meanwhile, and every wait for the target
//! has a timeout. Both directions are fed to a [`SessionDecoder`], which says
//! when the target has asked for data, answered, failed or sent bytes that
//! cannot be what the protocol expects. Everything sent and received is kept
//! with its time, and becomes a capture of the target's session.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nixcap_wire::framed::encode_framed;
use nixcap_wire::handshake::{Affinity, FeatureList, HandshakePiece};
use nixcap_wire::nar::NarWriter;
use nixcap_wire::ops::{AddToStoreArgs, Op, Request, Upload};
use nixcap_wire::primitives::Writer;
use nixcap_wire::session::{Direction, Event, EventKind, SessionDecoder};
use nixcap_wire::stderr::StderrMessage;
use nixcap_wire::translate::{self, Action, Translation};
use nixcap_wire::{Negotiated, ProtocolVersion};

use crate::plan::{ConnPlan, OpPlan};
use crate::report::ProblemKind;

/// How long a finished connection waits for the target's last bytes after
/// the client side closed.
const CLOSE_GRACE: Duration = Duration::from_millis(500);

/// Chunk size of framed uploads re-sent in another form, as Nix's writer
/// uses.
const FRAME_CHUNK: usize = 32 * 1024;

/// How many bytes one socket read asks for.
const READ_CHUNK: usize = 64 * 1024;

/// What went wrong on a connection to the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Fault {
    pub kind: ProblemKind,
    pub message: String,
}

impl Fault {
    fn new(kind: ProblemKind, message: impl Into<String>) -> Fault {
        Fault {
            kind,
            message: message.into(),
        }
    }
}

/// Everything one connection sent and received, with times.
#[derive(Debug, Clone)]
pub(crate) struct Transcript {
    pub conn: u64,
    pub opened_nanos: u64,
    pub chunks: Vec<(Direction, u64, Vec<u8>)>,
    pub closed_nanos: u64,
}

/// The clock of a check: nanoseconds since it started.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock(pub Instant);

impl Clock {
    pub fn now(self) -> u64 {
        u64::try_from(self.0.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

type Incoming = io::Result<Vec<u8>>;

pub(crate) struct Live {
    stream: UnixStream,
    incoming: Receiver<Incoming>,
    reader: Option<JoinHandle<()>>,
    decoder: SessionDecoder,
    queue: VecDeque<Event>,
    eof: bool,
    received: u64,
    clock: Clock,
    timeout: Duration,
    transcript: Transcript,
    /// What the connection negotiated with the target.
    pub negotiated: Option<Negotiated>,
    /// The target's Nix version, from the handshake.
    pub daemon_nix_version: Option<String>,
    /// How the handshake was re-expressed for the target's version.
    pub handshake_notes: Vec<Translation>,
}

impl Live {
    /// Connects to the target.
    pub fn connect(path: &Path, conn: u64, clock: Clock, timeout: Duration) -> Result<Live, Fault> {
        let stream = UnixStream::connect(path).map_err(|e| {
            Fault::new(
                ProblemKind::Connect,
                format!("connecting to {}: {e}", path.display()),
            )
        })?;
        Live::from_stream(stream, conn, clock, timeout)
    }

    /// Plays a connection on a socket that is already connected.
    pub fn from_stream(
        stream: UnixStream,
        conn: u64,
        clock: Clock,
        timeout: Duration,
    ) -> Result<Live, Fault> {
        let io_fault =
            |e: io::Error| Fault::new(ProblemKind::Io, format!("setting up the socket: {e}"));
        stream.set_write_timeout(Some(timeout)).map_err(io_fault)?;
        stream.set_read_timeout(None).map_err(io_fault)?;
        let mut read_half = stream.try_clone().map_err(io_fault)?;
        let (tx, incoming) = mpsc::channel::<Incoming>();
        let reader = std::thread::Builder::new()
            .name(format!("check-conn-{conn}"))
            .spawn(move || {
                let mut buf = vec![0; READ_CHUNK];
                loop {
                    match read_half.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => {
                            if tx.send(Ok(buf[..n].to_vec())).is_err() {
                                break;
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => {
                            let _ = tx.send(Err(e));
                            break;
                        }
                    }
                }
            })
            .map_err(io_fault)?;
        Ok(Live {
            stream,
            incoming,
            reader: Some(reader),
            decoder: SessionDecoder::new(),
            queue: VecDeque::new(),
            eof: false,
            received: 0,
            clock,
            timeout,
            transcript: Transcript {
                conn,
                opened_nanos: clock.now(),
                chunks: Vec::new(),
                closed_nanos: 0,
            },
            negotiated: None,
            daemon_nix_version: None,
            handshake_notes: Vec::new(),
        })
    }

    fn collect(&mut self) {
        for event in self.decoder.drain_events() {
            if event.direction == Direction::DaemonToClient {
                self.queue.push_back(event);
            }
        }
    }

    /// Sends bytes to the target.
    fn send(&mut self, bytes: &[u8], what: &str) -> Result<(), Fault> {
        if bytes.is_empty() {
            return Ok(());
        }
        let t = self.clock.now();
        let result = self.stream.write_all(bytes);
        // What was written is part of the session even if the write failed
        // part-way; the decoder sees the whole, as the target may have read
        // it before failing.
        self.transcript
            .chunks
            .push((Direction::ClientToDaemon, t, bytes.to_vec()));
        self.decoder.feed(Direction::ClientToDaemon, bytes);
        self.collect();
        result.map_err(|e| {
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) {
                Fault::new(
                    ProblemKind::Hang,
                    format!(
                        "sending {what}: the target read nothing for {}",
                        show_duration(self.timeout)
                    ),
                )
            } else {
                Fault::new(ProblemKind::Closed, format!("sending {what}: {e}"))
            }
        })
    }

    /// The next decoded event of the target's stream.
    fn next_event(&mut self, what: &str) -> Result<Event, Fault> {
        loop {
            if let Some(event) = self.queue.pop_front() {
                match &event.kind {
                    EventKind::Opaque { reason, .. } => {
                        return Err(Fault::new(
                            ProblemKind::Undecodable,
                            format!(
                                "{what}: the target sent bytes that cannot be decoded, at byte {} of its stream: {reason}",
                                event.offset
                            ),
                        ))
                    }
                    EventKind::Truncated { reason, .. } => {
                        return Err(Fault::new(
                            ProblemKind::Closed,
                            format!(
                                "{what}: the target closed the connection in the middle of {reason}, at byte {} of its stream",
                                event.end()
                            ),
                        ))
                    }
                    _ => return Ok(event),
                }
            }
            if self.eof {
                return Err(Fault::new(
                    ProblemKind::Closed,
                    format!(
                        "{what}: the target closed the connection after {} bytes",
                        self.received
                    ),
                ));
            }
            match self.incoming.recv_timeout(self.timeout) {
                Ok(Ok(bytes)) => {
                    let t = self.clock.now();
                    self.received += bytes.len() as u64;
                    self.decoder.feed(Direction::DaemonToClient, &bytes);
                    self.transcript
                        .chunks
                        .push((Direction::DaemonToClient, t, bytes));
                    self.collect();
                }
                Ok(Err(e)) => {
                    return Err(Fault::new(
                        ProblemKind::Io,
                        format!("{what}: reading from the target: {e}"),
                    ))
                }
                Err(RecvTimeoutError::Timeout) => {
                    return Err(Fault::new(
                        ProblemKind::Hang,
                        format!(
                            "{what}: no answer from the target within {} (after {} bytes of its stream)",
                            show_duration(self.timeout),
                            self.received
                        ),
                    ))
                }
                Err(RecvTimeoutError::Disconnected) => {
                    self.eof = true;
                    self.decoder.finish();
                    self.collect();
                }
            }
        }
    }

    /// The client side of the handshake: the recorded hello, then the
    /// recorded pieces after it (rebuilt for the target's version when that
    /// is lower), up to the target's `STDERR_LAST`.
    pub fn handshake(&mut self, plan: &ConnPlan) -> Result<Negotiated, Fault> {
        self.send(&plan.hello, "the client hello")?;
        let daemon_version = loop {
            let event = self.next_event("waiting for the daemon hello")?;
            if let EventKind::Handshake {
                piece: HandshakePiece::DaemonHello(hello),
            } = event.kind
            {
                break hello.version;
            }
        };
        let version = ProtocolVersion::negotiate(plan.client_version, daemon_version);
        let recorded = plan.negotiated.as_ref().map(|n| n.version);
        if recorded == Some(version) {
            let rest = plan.rest_bytes.clone();
            self.send(&rest, "the client handshake")?;
        } else {
            let (rest, notes) = rest_for(plan, recorded, version);
            self.handshake_notes = notes;
            self.send(&rest, "the client handshake")?;
        }
        loop {
            let event = self.next_event("the daemon handshake")?;
            match event.kind {
                EventKind::Handshake {
                    piece: HandshakePiece::DaemonNixVersion { version },
                } => self.daemon_nix_version = Some(version.to_string()),
                EventKind::Handshake {
                    piece:
                        HandshakePiece::DaemonStderr {
                            message: StderrMessage::Last,
                        },
                } => break,
                EventKind::Handshake {
                    piece:
                        HandshakePiece::DaemonStderr {
                            message: StderrMessage::Error(error),
                        },
                } => {
                    return Err(Fault::new(
                        ProblemKind::Refused,
                        format!(
                            "the target refused the connection in the handshake: {}",
                            error.message().to_string_lossy().trim_end()
                        ),
                    ))
                }
                _ => {}
            }
        }
        let negotiated = self
            .decoder
            .negotiated()
            .cloned()
            .unwrap_or_else(|| Negotiated::new(version));
        if let Some(recorded) = &plan.negotiated {
            if recorded.version == negotiated.version && recorded.features != negotiated.features {
                self.handshake_notes.push(handshake_note(
                    "features",
                    Action::Converted,
                    format!(
                        "the recording negotiated the features {}, the target {}",
                        show_features(&recorded.features),
                        show_features(&negotiated.features)
                    ),
                ));
            }
        }
        self.negotiated = Some(negotiated.clone());
        Ok(negotiated)
    }

    /// Sends one recorded op and reads the target's whole answer. When the
    /// target negotiated other than the recording (an older minor, fewer
    /// features), the request is translated for it
    /// (`nixcap_wire::translate`) and, where that version takes the upload
    /// in another form, the upload re-sent in that form; the translation's
    /// changes are returned.
    pub fn run_op(
        &mut self,
        op: &OpPlan,
        recorded: &Negotiated,
    ) -> Result<Vec<Translation>, Fault> {
        let live = self.negotiated.clone().unwrap_or_else(|| recorded.clone());
        let name = op.name();
        let mut notes = Vec::new();
        let mut read_data = &op.read_data;
        let (request, upload, sent_op) = if live == *recorded {
            (op.request_bytes.clone(), op.upload.clone(), op.op)
        } else {
            let translated = translate::request(&op.request, recorded, &live)
                .map_err(|e| Fault::new(ProblemKind::Unplayable, format!("{name}: {e}")))?;
            notes = translated.notes;
            let sent_op = translated.value.op();
            let mut w = Writer::new();
            translated.value.encode(&mut w, &live);
            let recorded_form = op.op.upload(recorded);
            let live_form = sent_op.upload(&live);
            let upload = if recorded_form == live_form {
                op.upload.clone()
            } else {
                read_data = &op.payload;
                reupload(&op.request, &op.payload, live_form)
            };
            (w.into_bytes(), upload, sent_op)
        };
        let name = sent_op.name();
        self.send(&request, &format!("the {name} request"))?;
        let mut send_failed = None;
        if let Err(fault) = self.send(&upload, &format!("the {name} upload")) {
            // The target may have refused the upload with an error; read
            // what it said before reporting the failed send.
            send_failed = Some(fault);
        }
        let mut read_pos = 0usize;
        let what = format!("the answer to {name}");
        loop {
            let event = match self.next_event(&what) {
                Ok(event) => event,
                Err(fault) => return Err(send_failed.unwrap_or(fault)),
            };
            match event.kind {
                EventKind::Stderr {
                    seq: Some(seq),
                    message,
                } if seq == op.seq => match message {
                    StderrMessage::Read { max_len } => {
                        let left = read_data.len() - read_pos;
                        let n = usize::try_from(max_len).unwrap_or(usize::MAX).min(left);
                        let mut w = Writer::new();
                        w.string(&read_data[read_pos..read_pos + n]);
                        read_pos += n;
                        self.send(w.as_bytes(), &format!("a STDERR_READ answer for {name}"))?;
                    }
                    StderrMessage::Error(_) => return Ok(notes),
                    _ => {}
                },
                EventKind::Reply { seq, .. } if seq == op.seq && sent_op != Op::NarFromPath => {
                    return Ok(notes)
                }
                EventKind::NarData { seq, end: true, .. } if seq == op.seq => return Ok(notes),
                _ => {}
            }
        }
    }

    /// Closes the client side, takes the target's last bytes (for at most
    /// a moment) and returns the transcript.
    pub fn close(mut self) -> Transcript {
        let _ = self.stream.shutdown(Shutdown::Write);
        let deadline = Instant::now() + CLOSE_GRACE.min(self.timeout);
        while !self.eof {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            match self.incoming.recv_timeout(left) {
                Ok(Ok(bytes)) => {
                    let t = self.clock.now();
                    self.transcript
                        .chunks
                        .push((Direction::DaemonToClient, t, bytes));
                }
                Ok(Err(_)) | Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => self.eof = true,
            }
        }
        let _ = self.stream.shutdown(Shutdown::Both);
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        self.transcript.closed_nanos = self.clock.now();
        self.transcript
    }
}

/// The upload of `request` in `form`, made from the recorded payload (the
/// data of the framed stream, inline NAR or `STDERR_READ` answers without
/// their framing). Only a translation to an older version changes the
/// form: AddToStoreNar's NAR goes framed (1.23), as `STDERR_READ` answers
/// (1.21, 1.22) or inline (older) alike; AddToStore's framed upload below
/// 1.25 is an inline NAR, which for a flat file is the NAR of that one
/// regular file, as Nix's client sends it.
fn reupload(request: &Request, payload: &[u8], form: Upload) -> Vec<u8> {
    let flat = matches!(
        request,
        Request::AddToStore {
            args: AddToStoreArgs::Ca { method, .. },
            ..
        } if !method.0.starts_with("fixed:r:")
    );
    let mut upload = Writer::new();
    match form {
        Upload::None | Upload::StderrReadAnswers => {}
        Upload::Framed => encode_framed(&mut upload, payload, FRAME_CHUNK),
        Upload::InlineNar if flat => {
            upload.raw(&NarWriter::new().regular(false, payload).finish());
        }
        Upload::InlineNar => {
            upload.raw(payload);
        }
    }
    upload.into_bytes()
}

/// The client's handshake pieces after the hello, for a version other than
/// the recorded one: the recorded values of the pieces that version has,
/// with a note for the version and for each recorded value it cannot carry.
fn rest_for(
    plan: &ConnPlan,
    recorded: Option<ProtocolVersion>,
    version: ProtocolVersion,
) -> (Vec<u8>, Vec<Translation>) {
    let mut features = FeatureList(Vec::new());
    let mut affinity = Affinity::default();
    let mut reserve = 0;
    for piece in &plan.rest {
        match piece {
            HandshakePiece::ClientFeatures { features: f } => features = f.clone(),
            HandshakePiece::ClientAffinity(a) => affinity = *a,
            HandshakePiece::ClientReserveSpace { value } => reserve = *value,
            _ => {}
        }
    }
    let mut notes = Vec::new();
    if let Some(recorded) = recorded {
        notes.push(handshake_note(
            "version",
            Action::Converted,
            format!(
                "the recording ran at protocol {recorded}; the target speaks {version}, so the \
                 connection runs at {version} and its requests are sent in that version's form"
            ),
        ));
    }
    let mut dropped = |field: &str, minor: u8, value: String| {
        notes.push(handshake_note(
            field,
            Action::Dropped,
            format!("added in protocol 1.{minor}; not sent at {version} ({value})"),
        ));
    };
    let mut pieces = Vec::new();
    if version.at_least(38) {
        pieces.push(HandshakePiece::ClientFeatures { features });
    } else if !features.0.is_empty() {
        dropped("clientFeatures", 38, show_features(&features.0));
    }
    if version.at_least(14) {
        pieces.push(HandshakePiece::ClientAffinity(affinity));
    } else if affinity != Affinity::default() {
        dropped("affinity", 14, format!("{affinity:?}"));
    }
    if version.at_least(11) {
        pieces.push(HandshakePiece::ClientReserveSpace { value: reserve });
    } else if reserve != 0 {
        dropped("reserveSpace", 11, reserve.to_string());
    }
    let mut w = Writer::new();
    for piece in &pieces {
        piece.encode(&mut w);
    }
    (w.into_bytes(), notes)
}

fn handshake_note(field: &str, action: Action, detail: String) -> Translation {
    Translation {
        subject: "handshake".to_owned(),
        field: field.to_owned(),
        action,
        detail,
    }
}

fn show_features(features: &[String]) -> String {
    if features.is_empty() {
        "(none)".to_owned()
    } else {
        features.join(", ")
    }
}

pub(crate) fn show_duration(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{} ms", d.as_millis())
    }
}

#[cfg(test)]
mod tests {
    use nixcap_wire::framed::decode_framed;
    use nixcap_wire::nar::{parse_nar, NarNodeKind, NarOptions};
    use nixcap_wire::types::ContentAddressMethodWithAlgo;

    use super::*;

    fn add_to_store(method: &str) -> Request {
        Request::AddToStore {
            name: "x".to_owned(),
            args: AddToStoreArgs::Ca {
                method: ContentAddressMethodWithAlgo(method.to_owned()),
                references: Vec::new(),
                repair: false,
            },
        }
    }

    #[test]
    fn a_flat_file_goes_inline_as_the_nar_of_one_regular_file() {
        let contents = b"hello\n".repeat(3);
        let upload = reupload(&add_to_store("fixed:sha256"), &contents, Upload::InlineNar);
        let nar = parse_nar(&upload, NarOptions::default()).expect("a NAR");
        assert_eq!(nar.len, upload.len() as u64);
        assert_eq!(nar.nodes.len(), 1);
        assert!(nar.nodes[0].path.as_bytes().is_empty());
        assert_eq!(
            nar.nodes[0].kind,
            NarNodeKind::Regular {
                executable: false,
                size: contents.len() as u64
            }
        );
    }

    #[test]
    fn a_nar_goes_inline_unchanged_and_framed_in_frames() {
        let nar = NarWriter::new().regular(true, b"#!/bin/sh\n").finish();
        let inline = reupload(&add_to_store("fixed:r:sha256"), &nar, Upload::InlineNar);
        assert_eq!(inline, nar);
        let big = vec![7u8; FRAME_CHUNK * 2 + 5];
        let framed = reupload(&add_to_store("fixed:r:sha256"), &big, Upload::Framed);
        assert_eq!(decode_framed(&framed), Some((big, framed.len())));
        // As STDERR_READ answers the payload is sent on request, not here.
        assert!(reupload(
            &add_to_store("fixed:r:sha256"),
            &nar,
            Upload::StderrReadAnswers
        )
        .is_empty());
    }
}
