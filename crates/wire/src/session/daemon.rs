//! The daemon side: the daemon's handshake, log messages, replies and
//! downloads.

use crate::bytes::ByteString;
use crate::handshake::{DaemonHello, FeatureList, HandshakePiece, Trust};
use crate::nar::NarOptions;
use crate::ops::{Op, Reply};
use crate::stderr::StderrMessage;
use crate::version::ProtocolVersion;

use super::events::{Direction, EventKind};
use super::stream::{decode_unit, NarStep, NarStream, Unit};
use super::{supported, SessionDecoder};

#[derive(Debug)]
pub(super) enum DaemonState {
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

impl SessionDecoder {
    pub(super) fn step_daemon(&mut self) -> bool {
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

    pub(super) fn flush_daemon(&mut self) {
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
}
