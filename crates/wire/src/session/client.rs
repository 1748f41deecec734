//! The client side: the client's handshake, requests and uploads.

use super::payload::{PayloadDecoder, PayloadKind};
use crate::bytes::ByteString;
use crate::framed::{FramedDecoder, FramedPart};
use crate::handshake::{Affinity, ClientHello, FeatureList, HandshakePiece, ReserveSpace};
use crate::nar::NarOptions;
use crate::ops::{Op, Request, Upload};

use super::events::{Direction, EventKind, OpRecord};
use super::stream::{decode_unit, NarStep, NarStream, Unit};
use super::{supported, SessionDecoder};

#[derive(Debug)]
pub(super) struct FramedUpload {
    pub(super) seq: u64,
    pub(super) decoder: FramedDecoder,
    pub(super) payload: PayloadDecoder,
}

#[derive(Debug)]
pub(super) enum ClientState {
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

impl SessionDecoder {
    pub(super) fn step_client(&mut self) -> bool {
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
                serve: None,
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

    pub(super) fn flush_client(&mut self) {
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
}
