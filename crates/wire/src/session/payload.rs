//! What is inside an upload: the structure the session decoder reads out
//! of framed data and STDERR_READ answers, once the framing itself is done.
//!
//! Framing and payload are separate layers. A framed stream or a series of
//! STDERR_READ answers ends where its framing says, whatever the bytes it
//! carries; the payload decoder only describes those bytes (a NAR's nodes,
//! AddMultipleToStore's path infos, ImportPaths' export records). When the
//! payload is not what the op implies, the decoder reports
//! [`PayloadItem::Undecodable`] once and stops looking, and the framing
//! carries on unaffected.

use serde::{Deserialize, Serialize};

use crate::export::{ExportDecoder, ExportEvent, ExportMode, ExportRecord, ExportStatus};
use crate::nar::{NarEvent, NarOptions, NarParser, NarStatus};
use crate::ops::{AddToStoreArgs, Request};
use crate::primitives::{ReadError, Reader};
use crate::types::{ContentAddressMethod, ValidPathInfo};

/// Something found inside an upload's payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "item", rename_all = "camelCase")]
pub enum PayloadItem {
    /// A node (or issue) of a NAR in the payload; offsets count from the
    /// start of that NAR.
    Nar {
        /// The NAR event.
        nar: NarEvent,
    },
    /// A NAR in the payload ended.
    #[serde(rename_all = "camelCase")]
    NarEnd {
        /// Its length in bytes.
        len: u64,
    },
    /// AddMultipleToStore: how many paths follow.
    #[serde(rename_all = "camelCase")]
    PathCount {
        /// The count.
        count: u64,
    },
    /// AddMultipleToStore: a path's metadata (1.16 layout); its NAR follows.
    #[serde(rename_all = "camelCase")]
    PathInfo {
        /// The metadata.
        info: Box<ValidPathInfo>,
    },
    /// ImportPaths: a complete export record.
    #[serde(rename_all = "camelCase")]
    ExportRecord {
        /// Its metadata.
        record: ExportRecord,
    },
    /// The payload is not what the op implies; nothing more is reported.
    #[serde(rename_all = "camelCase")]
    Undecodable {
        /// Why, with the payload offset.
        reason: String,
    },
}

/// What an upload's payload holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadKind {
    /// Bytes with no structure the decoder looks at (flat files, text,
    /// build logs).
    Raw,
    /// One NAR.
    Nar,
    /// AddMultipleToStore: a count, then path info and NAR pairs.
    MultipleToStore,
    /// ImportPaths: an export stream.
    Export,
}

impl PayloadKind {
    /// The payload of `request`'s upload.
    pub fn of(request: &Request) -> PayloadKind {
        match request {
            Request::AddToStore {
                args: AddToStoreArgs::Ca { method, .. },
                ..
            }
            | Request::AddToStoreScanning { method, .. } => match method.parse() {
                // A git-method upload is dumped as a NAR too; if it is not,
                // the payload is merely reported undecodable.
                Some((ContentAddressMethod::Nar | ContentAddressMethod::Git, _)) => {
                    PayloadKind::Nar
                }
                _ => PayloadKind::Raw,
            },
            Request::AddToStore {
                args: AddToStoreArgs::Legacy { .. },
                ..
            } => PayloadKind::Nar,
            Request::AddToStoreNar { .. } => PayloadKind::Nar,
            Request::AddMultipleToStore { .. } => PayloadKind::MultipleToStore,
            Request::ImportPaths {} => PayloadKind::Export,
            _ => PayloadKind::Raw,
        }
    }
}

#[derive(Debug, Clone)]
enum Inner {
    Raw,
    Nar(Box<NarParser>),
    Multiple(Multiple),
    Export(Box<ExportDecoder>),
    /// Finished, successfully or not; further bytes are trailing.
    Over {
        ended_cleanly: bool,
    },
}

#[derive(Debug, Clone)]
enum Multiple {
    Count,
    Info { left: u64 },
    Nar { left: u64, parser: Box<NarParser> },
}

/// Payload NARs are parsed leniently: invalid names become issues, which a
/// daemon would reject but which do not change where the NAR ends.
fn nar_options() -> NarOptions {
    NarOptions {
        strict_names: false,
        ..NarOptions::default()
    }
}

/// A streaming payload decoder that buffers at most one token.
#[derive(Debug, Clone)]
pub(crate) struct PayloadDecoder {
    inner: Inner,
    pending: Vec<u8>,
    /// Payload offset of `pending[0]`.
    pos: u64,
    max_token_len: usize,
    trailing_reported: bool,
}

impl PayloadDecoder {
    pub(crate) fn new(kind: PayloadKind, max_token_len: usize) -> Self {
        let inner = match kind {
            PayloadKind::Raw => Inner::Raw,
            PayloadKind::Nar => Inner::Nar(Box::new(NarParser::new(nar_options()))),
            PayloadKind::MultipleToStore => Inner::Multiple(Multiple::Count),
            PayloadKind::Export => Inner::Export(Box::new(ExportDecoder::new(
                ExportMode::Stream,
                nar_options(),
            ))),
        };
        PayloadDecoder {
            inner,
            pending: Vec::new(),
            pos: 0,
            max_token_len,
            trailing_reported: false,
        }
    }

    /// Takes the next bytes of the payload and returns what they completed.
    pub(crate) fn feed(&mut self, data: &[u8]) -> Vec<PayloadItem> {
        let mut items = Vec::new();
        match &self.inner {
            Inner::Raw => {
                self.pos += data.len() as u64;
                return items;
            }
            Inner::Over { .. } => {
                if !data.is_empty() && !self.trailing_reported {
                    self.trailing_reported = true;
                    if matches!(
                        self.inner,
                        Inner::Over {
                            ended_cleanly: true
                        }
                    ) {
                        items.push(PayloadItem::Undecodable {
                            reason: format!(
                                "trailing bytes after the payload's end at payload offset {}",
                                self.pos
                            ),
                        });
                    }
                }
                self.pos += data.len() as u64;
                return items;
            }
            _ => {}
        }
        self.pending.extend_from_slice(data);
        let consumed = self.run(&mut items);
        self.pending.drain(..consumed);
        self.pos += consumed as u64;
        if !matches!(self.inner, Inner::Over { .. }) && self.pending.len() > self.max_token_len {
            items.push(PayloadItem::Undecodable {
                reason: format!(
                    "a payload token at payload offset {} exceeds the limit of {} bytes",
                    self.pos, self.max_token_len
                ),
            });
            self.give_up();
        }
        if let Inner::Over { .. } = self.inner {
            // Whatever is still pending is beyond the end (or after the
            // failure); account for it as trailing.
            let rest = std::mem::take(&mut self.pending);
            items.extend(self.feed(&rest));
        }
        items
    }

    /// The upload ended: reports a payload cut short.
    pub(crate) fn finish(&mut self) -> Vec<PayloadItem> {
        match &self.inner {
            Inner::Raw | Inner::Over { .. } => Vec::new(),
            _ => {
                let pos = self.pos + self.pending.len() as u64;
                self.give_up();
                vec![PayloadItem::Undecodable {
                    reason: format!("the upload ended inside its payload at payload offset {pos}"),
                }]
            }
        }
    }

    fn give_up(&mut self) {
        self.inner = Inner::Over {
            ended_cleanly: false,
        };
        self.pending.clear();
    }

    fn end(&mut self) {
        self.inner = Inner::Over {
            ended_cleanly: true,
        };
    }

    /// Runs the inner decoder over `pending`; returns the bytes consumed.
    fn run(&mut self, items: &mut Vec<PayloadItem>) -> usize {
        let mut i = 0;
        loop {
            let rest = &self.pending[i..];
            let pos = self.pos + i as u64;
            match &mut self.inner {
                Inner::Raw | Inner::Over { .. } => return i,
                Inner::Nar(parser) => {
                    let (consumed, outcome) = run_nar(parser, rest, pos, items);
                    i += consumed;
                    match outcome {
                        NarOutcome::More => return i,
                        NarOutcome::Ended => self.end(),
                        NarOutcome::Failed => {
                            self.inner = Inner::Over {
                                ended_cleanly: false,
                            }
                        }
                    }
                }
                Inner::Export(decoder) => {
                    let mut events = Vec::new();
                    let progress = decoder.feed(rest, &mut events);
                    i += progress.consumed;
                    for event in events {
                        items.push(match event {
                            ExportEvent::Nar { nar } => PayloadItem::Nar { nar },
                            ExportEvent::Record { record } => PayloadItem::ExportRecord { record },
                        });
                    }
                    match progress.status {
                        ExportStatus::NeedMore => return i,
                        ExportStatus::Done => self.end(),
                        ExportStatus::Failed(error) => {
                            items.push(PayloadItem::Undecodable {
                                reason: format!("export data at payload offset {pos}: {error}"),
                            });
                            self.inner = Inner::Over {
                                ended_cleanly: false,
                            };
                        }
                    }
                }
                Inner::Multiple(state) => match state {
                    Multiple::Count => {
                        let Some(word) = rest.get(..8) else { return i };
                        let mut bytes = [0u8; 8];
                        bytes.copy_from_slice(word);
                        let count = u64::from_le_bytes(bytes);
                        i += 8;
                        items.push(PayloadItem::PathCount { count });
                        if count == 0 {
                            self.end();
                        } else {
                            *state = Multiple::Info { left: count };
                        }
                    }
                    Multiple::Info { left } => {
                        let view = &rest[..rest.len().min(self.max_token_len)];
                        let mut r = Reader::new(view);
                        match ValidPathInfo::decode_1_16(&mut r) {
                            Ok(info) => {
                                i += r.position();
                                items.push(PayloadItem::PathInfo {
                                    info: Box::new(info),
                                });
                                *state = Multiple::Nar {
                                    left: *left,
                                    parser: Box::new(NarParser::new(nar_options())),
                                };
                            }
                            Err(ReadError::Incomplete { .. }) => return i,
                            Err(ReadError::Invalid { offset, kind }) => {
                                items.push(PayloadItem::Undecodable {
                                    reason: format!(
                                        "path info at payload offset {}: {kind}",
                                        pos + offset as u64
                                    ),
                                });
                                self.inner = Inner::Over {
                                    ended_cleanly: false,
                                };
                            }
                        }
                    }
                    Multiple::Nar { left, parser } => {
                        let left = *left;
                        let (consumed, outcome) = run_nar(parser, rest, pos, items);
                        i += consumed;
                        match outcome {
                            NarOutcome::More => return i,
                            NarOutcome::Ended if left > 1 => {
                                *state = Multiple::Info { left: left - 1 }
                            }
                            NarOutcome::Ended => self.end(),
                            NarOutcome::Failed => {
                                self.inner = Inner::Over {
                                    ended_cleanly: false,
                                }
                            }
                        }
                    }
                },
            }
        }
    }
}

enum NarOutcome {
    More,
    Ended,
    Failed,
}

fn run_nar(
    parser: &mut NarParser,
    rest: &[u8],
    pos: u64,
    items: &mut Vec<PayloadItem>,
) -> (usize, NarOutcome) {
    let start = pos.saturating_sub(parser.position());
    let mut events = Vec::new();
    let progress = parser.feed(rest, &mut events);
    items.extend(events.into_iter().map(|nar| PayloadItem::Nar { nar }));
    let outcome = match progress.status {
        NarStatus::NeedMore => NarOutcome::More,
        NarStatus::Done => {
            items.push(PayloadItem::NarEnd {
                len: parser.position(),
            });
            NarOutcome::Ended
        }
        NarStatus::Failed(error) => {
            items.push(PayloadItem::Undecodable {
                reason: format!("NAR starting at payload offset {start}: {error}"),
            });
            NarOutcome::Failed
        }
        NarStatus::DumpFailed => {
            items.push(PayloadItem::Undecodable {
                reason: format!("NAR starting at payload offset {start} holds a STDERR_ERROR word"),
            });
            NarOutcome::Failed
        }
    };
    (progress.consumed, outcome)
}
