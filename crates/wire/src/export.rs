//! The export/import format (protocol reference §9): what ExportPath sends
//! in STDERR_WRITE messages and what ImportPaths reads through STDERR_READ.
//!
//! ```text
//! stream := ( u64 1, record )* u64 0
//! record := NAR, u64 0x4558494e ("NIXE"), str path, {str} references,
//!           str deriver ("" if none), u64 0 | u64 1 + str signature
//! ```
//!
//! ExportPath sends one record on its own, without the leading `u64 1` and
//! the closing `u64 0` ([`ExportMode::SingleRecord`]).
//!
//! [`ExportDecoder`] is streaming like [`NarParser`]: NAR contents are
//! skipped as they pass, and only whole tokens are consumed, so the caller
//! keeps the unconsumed tail and presents it again with more bytes.

use serde::{Deserialize, Serialize};

use crate::bytes::ByteString;
use crate::nar::{NarError, NarErrorKind, NarEvent, NarOptions, NarParser, NarStatus};
use crate::primitives::{InvalidKind, ReadError, Reader, Writer};

/// The word between a record's NAR and its metadata: `"NIXE"` on the wire.
pub const EXPORT_MAGIC: u64 = 0x4558_494e;

/// Which framing surrounds the records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportMode {
    /// ImportPaths: each record preceded by `u64 1`, the stream closed by `u64 0`.
    Stream,
    /// ExportPath: exactly one record, no markers.
    SingleRecord,
}

/// The metadata of one exported path (everything in a record but its NAR).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExportRecord {
    /// Length of the record's NAR in bytes.
    pub nar_len: u64,
    /// The store path (full path).
    pub path: String,
    /// Its references (full paths).
    pub references: Vec<String>,
    /// Its deriver, or `""` if none.
    pub deriver: String,
    /// The legacy signature, when the flag is 1.
    pub signature: Option<ByteString>,
}

impl ExportRecord {
    /// Writes the part after the NAR: magic, path, references, deriver and
    /// the signature flag.
    pub fn encode_trailer(&self, w: &mut Writer) {
        w.u64(EXPORT_MAGIC)
            .string(&self.path)
            .string_list(&self.references)
            .string(&self.deriver);
        match &self.signature {
            Some(signature) => w.u64(1).string(signature),
            None => w.u64(0),
        };
    }
}

/// Something the decoder reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "camelCase")]
pub enum ExportEvent {
    /// A node (or issue) of the current record's NAR.
    Nar {
        /// The NAR event, with offsets relative to that NAR.
        nar: NarEvent,
    },
    /// A complete record.
    Record {
        /// Its metadata.
        record: ExportRecord,
    },
}

/// Why an export stream is invalid. Offsets count from the stream's start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    /// A record's NAR is invalid.
    #[error("in the NAR starting at byte {nar_start}: {source}")]
    Nar {
        /// Where the NAR starts.
        nar_start: u64,
        /// What is wrong with it.
        #[source]
        source: NarError,
    },
    /// Something other than 0 or 1 where a record marker belongs.
    #[error("at byte {offset}: expected 0 or 1 before a record, found {found}")]
    BadMarker {
        /// Where.
        offset: u64,
        /// The word found.
        found: u64,
    },
    /// The metadata does not start with [`EXPORT_MAGIC`].
    #[error("at byte {offset}: expected export magic 0x4558494e, found {found:#x}")]
    BadMagic {
        /// Where.
        offset: u64,
        /// The word found.
        found: u64,
    },
    /// The metadata is malformed.
    #[error("at byte {offset}: {kind}")]
    Invalid {
        /// Where.
        offset: u64,
        /// What is wrong.
        kind: InvalidKind,
    },
}

/// Where the decoder stands after a [`ExportDecoder::feed`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExportStatus {
    /// More bytes are needed; present the unconsumed tail again.
    NeedMore,
    /// The stream (or the single record) ended.
    Done,
    /// The stream is invalid; the offending token was left unconsumed.
    Failed(ExportError),
}

/// Result of one [`ExportDecoder::feed`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportProgress {
    /// Bytes consumed.
    pub consumed: usize,
    /// Where the decoder stands.
    pub status: ExportStatus,
}

#[derive(Debug, Clone)]
enum State {
    Marker,
    Nar { parser: Box<NarParser>, start: u64 },
    Trailer { nar_len: u64 },
    Done,
}

/// A streaming decoder for export data. See the module documentation.
#[derive(Debug, Clone)]
pub struct ExportDecoder {
    mode: ExportMode,
    nar_options: NarOptions,
    state: State,
    pos: u64,
    terminal: Option<ExportStatus>,
}

impl ExportDecoder {
    /// A decoder at the start of export data framed as `mode`. Record NARs
    /// are parsed with `nar_options` (export data never carries a
    /// `STDERR_ERROR`, so that detection is always off).
    pub fn new(mode: ExportMode, mut nar_options: NarOptions) -> Self {
        nar_options.detect_stderr_error = false;
        let mut decoder = ExportDecoder {
            mode,
            nar_options,
            state: State::Marker,
            pos: 0,
            terminal: None,
        };
        if mode == ExportMode::SingleRecord {
            decoder.state = decoder.new_nar();
        }
        decoder
    }

    fn new_nar(&self) -> State {
        State::Nar {
            parser: Box::new(NarParser::new(self.nar_options)),
            start: self.pos,
        }
    }

    /// Bytes consumed so far.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// Whether the stream (or the single record) has ended.
    pub fn is_done(&self) -> bool {
        matches!(self.state, State::Done)
    }

    /// Consumes as much of `input` as it can, pushing events.
    pub fn feed(&mut self, input: &[u8], events: &mut Vec<ExportEvent>) -> ExportProgress {
        if let Some(status) = &self.terminal {
            return ExportProgress {
                consumed: 0,
                status: status.clone(),
            };
        }
        let mut i = 0;
        let status = loop {
            let rest = &input[i..];
            match &mut self.state {
                State::Done => break ExportStatus::Done,
                State::Marker => {
                    let Some(word) = rest.get(..8) else {
                        break ExportStatus::NeedMore;
                    };
                    let mut bytes = [0u8; 8];
                    bytes.copy_from_slice(word);
                    match u64::from_le_bytes(bytes) {
                        0 => {
                            self.state = State::Done;
                        }
                        1 => {
                            self.pos += 8;
                            self.state = self.new_nar();
                            i += 8;
                            continue;
                        }
                        found => {
                            break ExportStatus::Failed(ExportError::BadMarker {
                                offset: self.pos,
                                found,
                            })
                        }
                    }
                    i += 8;
                    self.pos += 8;
                }
                State::Nar { parser, start } => {
                    let mut nar_events = Vec::new();
                    let progress = parser.feed(rest, &mut nar_events);
                    events.extend(nar_events.into_iter().map(|nar| ExportEvent::Nar { nar }));
                    i += progress.consumed;
                    self.pos += progress.consumed as u64;
                    match progress.status {
                        NarStatus::NeedMore => break ExportStatus::NeedMore,
                        NarStatus::Done => {
                            let nar_len = parser.position();
                            self.state = State::Trailer { nar_len };
                        }
                        // `new` turns detection off, so a failed dump
                        // cannot be reported; it is an invalid NAR here.
                        NarStatus::DumpFailed => {
                            break ExportStatus::Failed(ExportError::Nar {
                                nar_start: *start,
                                source: NarError {
                                    offset: parser.position(),
                                    kind: NarErrorKind::UnexpectedEof,
                                },
                            })
                        }
                        NarStatus::Failed(source) => {
                            break ExportStatus::Failed(ExportError::Nar {
                                nar_start: *start,
                                source,
                            })
                        }
                    }
                }
                State::Trailer { nar_len } => {
                    let mut r = Reader::new(rest);
                    match read_trailer(&mut r, *nar_len) {
                        Ok(record) => {
                            i += r.position();
                            self.pos += r.position() as u64;
                            events.push(ExportEvent::Record { record });
                            self.state = match self.mode {
                                ExportMode::Stream => State::Marker,
                                ExportMode::SingleRecord => State::Done,
                            };
                        }
                        Err(TrailerError::Read(ReadError::Incomplete { .. })) => {
                            break ExportStatus::NeedMore
                        }
                        Err(TrailerError::Read(ReadError::Invalid { offset, kind })) => {
                            break ExportStatus::Failed(ExportError::Invalid {
                                offset: self.pos + offset as u64,
                                kind,
                            })
                        }
                        Err(TrailerError::Magic(found)) => {
                            break ExportStatus::Failed(ExportError::BadMagic {
                                offset: self.pos,
                                found,
                            })
                        }
                    }
                }
            }
        };
        if status != ExportStatus::NeedMore {
            self.terminal = Some(status.clone());
        }
        ExportProgress {
            consumed: i,
            status,
        }
    }
}

enum TrailerError {
    Read(ReadError),
    Magic(u64),
}

impl From<ReadError> for TrailerError {
    fn from(error: ReadError) -> Self {
        TrailerError::Read(error)
    }
}

fn read_trailer(r: &mut Reader<'_>, nar_len: u64) -> Result<ExportRecord, TrailerError> {
    let magic = r.u64()?;
    if magic != EXPORT_MAGIC {
        return Err(TrailerError::Magic(magic));
    }
    let path = r.utf8("store path")?;
    let references = r.string_list("reference")?;
    let deriver = r.utf8("deriver")?;
    let signature = if r.bool()? {
        Some(ByteString::from(r.string()?))
    } else {
        None
    };
    Ok(ExportRecord {
        nar_len,
        path,
        references,
        deriver,
        signature,
    })
}

/// Decodes whole export data at the start of `bytes`: the records and the
/// encoded length. Data cut short is `Ok(None)`.
pub fn parse_export(
    bytes: &[u8],
    mode: ExportMode,
) -> Result<Option<(Vec<ExportRecord>, usize)>, ExportError> {
    let mut decoder = ExportDecoder::new(mode, NarOptions::default());
    let mut events = Vec::new();
    let progress = decoder.feed(bytes, &mut events);
    match progress.status {
        ExportStatus::NeedMore => Ok(None),
        ExportStatus::Failed(error) => Err(error),
        ExportStatus::Done => {
            let records = events
                .into_iter()
                .filter_map(|event| match event {
                    ExportEvent::Record { record } => Some(record),
                    ExportEvent::Nar { .. } => None,
                })
                .collect();
            Ok(Some((records, progress.consumed)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nar::NarWriter;

    fn record(path: &str) -> ExportRecord {
        ExportRecord {
            nar_len: 0,
            path: path.into(),
            references: vec!["/nix/store/aaaa-dep".into()],
            deriver: "".into(),
            signature: None,
        }
    }

    fn stream(records: &[(ExportRecord, Vec<u8>)]) -> Vec<u8> {
        let mut w = Writer::new();
        for (record, nar) in records {
            w.u64(1).raw(nar);
            record.encode_trailer(&mut w);
        }
        w.u64(0);
        w.into_bytes()
    }

    #[test]
    fn a_stream_of_two_records_decodes_with_nar_lengths() {
        let nar = NarWriter::new().regular(false, b"hello").finish();
        let mut signed = record("/nix/store/bbbb-two");
        signed.signature = Some("legacy".into());
        let bytes = stream(&[
            (record("/nix/store/aaaa-one"), nar.clone()),
            (signed.clone(), nar.clone()),
        ]);
        let (records, len) = parse_export(&bytes, ExportMode::Stream).unwrap().unwrap();
        assert_eq!(len, bytes.len());
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].path, "/nix/store/aaaa-one");
        assert_eq!(records[0].nar_len as usize, nar.len());
        assert_eq!(records[1].signature, signed.signature);
    }

    #[test]
    fn a_single_record_has_no_markers() {
        let nar = NarWriter::new().symlink(b"x").finish();
        let mut w = Writer::new();
        w.raw(&nar);
        record("/nix/store/cccc-three").encode_trailer(&mut w);
        let bytes = w.into_bytes();
        let (records, len) = parse_export(&bytes, ExportMode::SingleRecord)
            .unwrap()
            .unwrap();
        assert_eq!((records.len(), len), (1, bytes.len()));
    }

    #[test]
    fn every_split_decodes_the_same() {
        let nar = NarWriter::new().regular(true, b"data").finish();
        let bytes = stream(&[(record("/nix/store/dddd-four"), nar)]);
        for cut in 0..=bytes.len() {
            let mut decoder = ExportDecoder::new(ExportMode::Stream, NarOptions::default());
            let mut events = Vec::new();
            let first = decoder.feed(&bytes[..cut], &mut events);
            let mut rest = bytes[first.consumed..].to_vec();
            let second = decoder.feed(&rest, &mut events);
            rest.drain(..second.consumed);
            assert_eq!(second.status, ExportStatus::Done, "cut at {cut}");
            assert!(rest.is_empty());
            assert_eq!(
                events
                    .iter()
                    .filter(|e| matches!(e, ExportEvent::Record { .. }))
                    .count(),
                1
            );
        }
    }

    #[test]
    fn bad_marker_and_magic_are_errors() {
        let bytes = 7u64.to_le_bytes();
        assert!(matches!(
            parse_export(&bytes, ExportMode::Stream),
            Err(ExportError::BadMarker {
                offset: 0,
                found: 7
            })
        ));
        let nar = NarWriter::new().symlink(b"x").finish();
        let mut w = Writer::new();
        w.raw(&nar).u64(5);
        let bytes = w.into_bytes();
        assert!(matches!(
            parse_export(&bytes, ExportMode::SingleRecord),
            Err(ExportError::BadMagic { found: 5, .. })
        ));
    }
}
