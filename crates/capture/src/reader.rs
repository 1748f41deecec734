//! The streaming reader, and the footer fast path.
//!
//! [`Reader`] reads a capture front to back and yields its blocks in capture
//! order. Along the way it checks everything the format lets it check: every
//! envelope and payload checksum, every block encoding, that blocks refer to
//! open connections, every stream's byte count and SHA-256 against its close
//! record, and the footer's statistics against what was read. The first
//! problem ends the iteration with a [`ReadError`] that says what and where;
//! every block before it has already been yielded.
//!
//! [`read_index`] reads only the header, the trailer and the footer, so that
//! a summary costs a few kilobytes of I/O whatever the capture's size.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::io::{self, Read};

use sha2::{Digest, Sha256};

use crate::error::{FrameProblem, Location, Part, ReadError, ReadErrorKind};
use crate::format::{
    self, AnnotationBody, ClosedBody, DataHead, FooterBody, OpenedBody, StoreObjectBody,
    StoreObjectDataHead, Trailer, BLOCK_ANNOTATION, BLOCK_CONNECTION_CLOSED,
    BLOCK_CONNECTION_OPENED, BLOCK_DATA, BLOCK_FOOTER, BLOCK_STORE_OBJECT, BLOCK_STORE_OBJECT_DATA,
    ENVELOPE_LEN, FRAME_TAG, MAX_INDEXED_CONNECTIONS, MAX_INDEXED_FRAMES, MAX_OPEN_CONNECTIONS,
    MAX_OPEN_STORE_OBJECTS, TRAILER_LEN, TRAILER_TAG,
};
use crate::types::{
    Block, ConnectionClosed, ConnectionSummary, Direction, Footer, FormatVersion, FrameIndexEntry,
    Header, StoreObject, StoreObjectData,
};

mod frames;
mod index;

pub(crate) use frames::parse_frame_payload;
pub use index::{read_index, FooterStatus, Index};

use frames::{read_frame_after_tag, read_full, read_prelude};

/// What a reader has seen so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReadStats {
    /// Bytes of the file consumed so far (all of it, once the iteration ended cleanly).
    pub file_bytes: u64,
    /// Block frames read whose checksums matched (the footer frame is not counted).
    pub frames: u64,
    /// Compressed payload bytes of those frames.
    pub compressed_bytes: u64,
    /// Decompressed payload bytes of those frames.
    pub uncompressed_bytes: u64,
    /// Blocks read, the footer not included.
    pub blocks: u64,
    /// Blocks of unknown type (skipped, but yielded as `Block::Unknown`).
    pub unknown_blocks: u64,
    /// Connections opened.
    pub connections: u64,
    /// Connections closed.
    pub connections_closed: u64,
    /// Annotation blocks.
    pub annotations: u64,
    /// Data bytes client to server.
    pub bytes_client_to_server: u64,
    /// Data bytes server to client.
    pub bytes_server_to_client: u64,
    /// Store-object blocks (format 1.1), present or missing.
    pub store_objects: u64,
    /// Store objects recorded as missing.
    pub store_objects_missing: u64,
    /// Bytes of store-object contents.
    pub store_object_bytes: u64,
    /// Smallest block timestamp seen.
    pub first_t_nanos: Option<u64>,
    /// Largest block timestamp seen.
    pub last_t_nanos: Option<u64>,
    /// Whether the footer was read.
    pub footer: bool,
    /// Whether the trailer was read (the file is complete).
    pub trailer: bool,
}

/// Per-connection state while reading.
struct Tracked {
    hashers: [Sha256; 2],
    bytes: [u64; 2],
    summary_slot: Option<usize>,
}

/// Per-store-object state while reading: its contents so far.
struct TrackedObject {
    name: String,
    size: u64,
    sha256: [u8; 32],
    hasher: Sha256,
    bytes: u64,
}

/// A streaming capture reader over any `Read`.
///
/// It yields `Result<Block, ReadError>`; after the first error, or after the
/// trailer, it yields nothing more.
pub struct Reader<R: Read> {
    input: R,
    version: FormatVersion,
    header: Header,
    offset: u64,
    decompressor: zstd::bulk::Decompressor<'static>,
    frame: Vec<u8>,
    frame_pos: usize,
    frame_offset: u64,
    frame_compressed_len: u32,
    frame_number: Option<u64>,
    block_in_frame: u64,
    open: HashMap<u64, Tracked>,
    seen_ids: HashSet<u64>,
    objects: HashMap<u64, TrackedObject>,
    seen_objects: HashSet<u64>,
    summaries: Vec<ConnectionSummary>,
    frame_entries: Vec<FrameIndexEntry>,
    footer: Option<Footer>,
    footer_frame: Option<u64>,
    /// Every frame read, the footer frame included.
    frames_read: u64,
    stats: ReadStats,
    done: bool,
}

impl<R: Read> fmt::Debug for Reader<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reader")
            .field("version", &self.version)
            .field("header", &self.header)
            .field("offset", &self.offset)
            .field("stats", &self.stats)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl<R: Read> Reader<R> {
    /// Reads and checks the file prelude and header.
    ///
    /// Fails when the input is not a capture, has a newer major version, or
    /// its header is truncated or damaged.
    pub fn new(mut input: R) -> Result<Self, ReadError> {
        let (version, header, offset) = read_prelude(&mut input)?;
        let decompressor = zstd::bulk::Decompressor::new()
            .map_err(|source| ReadError::new(ReadErrorKind::Io { source }, Location::default()))?;
        Ok(Reader {
            input,
            version,
            header,
            offset,
            decompressor,
            frame: Vec::new(),
            frame_pos: 0,
            frame_offset: offset,
            frame_compressed_len: 0,
            frame_number: None,
            block_in_frame: 0,
            open: HashMap::new(),
            seen_ids: HashSet::new(),
            objects: HashMap::new(),
            seen_objects: HashSet::new(),
            summaries: Vec::new(),
            frame_entries: Vec::new(),
            footer: None,
            footer_frame: None,
            frames_read: 0,
            stats: ReadStats {
                file_bytes: offset,
                ..ReadStats::default()
            },
            done: false,
        })
    }

    /// The format version in the file.
    pub fn version(&self) -> FormatVersion {
        self.version
    }

    /// The file header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// What has been read so far.
    pub fn stats(&self) -> &ReadStats {
        &self.stats
    }

    /// The footer, once it has been read.
    pub fn footer(&self) -> Option<&Footer> {
        self.footer.as_ref()
    }

    /// Connections opened and not yet closed, in increasing id order.
    pub fn open_connections(&self) -> Vec<u64> {
        let mut ids: Vec<u64> = self.open.keys().copied().collect();
        ids.sort_unstable();
        ids
    }

    /// Index of the frame the last block came from.
    pub fn frame_index(&self) -> Option<u64> {
        self.frame_number
    }

    /// Gives the input back.
    pub fn into_inner(self) -> R {
        self.input
    }

    fn location(&self, offset: u64, frame_index: Option<u64>) -> Location {
        Location {
            offset,
            frame_index,
            block_index: None,
            conn: None,
            last_good_t_nanos: self.stats.last_t_nanos,
            open_connections: self.open_connections(),
        }
    }

    fn block_error(&self, kind: ReadErrorKind, conn: Option<u64>) -> ReadError {
        let mut location = self.location(self.frame_offset, self.frame_number);
        location.block_index = Some(self.stats.blocks);
        location.conn = conn;
        ReadError::new(kind, location)
    }

    fn step(&mut self) -> Result<Option<Block>, ReadError> {
        loop {
            if self.frame_pos < self.frame.len() {
                return self.next_block().map(Some);
            }
            if !self.next_chunk()? {
                return Ok(None);
            }
        }
    }

    /// Reads the next frame (returning true) or the trailer (returning false).
    fn next_chunk(&mut self) -> Result<bool, ReadError> {
        let chunk_offset = self.offset;
        let next_frame = self.frames_read;
        let mut tag = [0u8; 4];
        let got = read_full(&mut self.input, &mut tag).map_err(|source| {
            ReadError::new(
                ReadErrorKind::Io { source },
                self.location(chunk_offset, None),
            )
        })?;
        if got == 0 {
            let kind = if self.footer.is_some() {
                ReadErrorKind::Truncated {
                    part: Part::Trailer,
                    needed: TRAILER_LEN as u64,
                    got: 0,
                }
            } else {
                ReadErrorKind::MissingFooter {
                    frames: self.stats.frames,
                }
            };
            return Err(ReadError::new(kind, self.location(chunk_offset, None)));
        }
        if got < tag.len() {
            let kind = if self.footer.is_some() && TRAILER_TAG.starts_with(&tag[..got]) {
                ReadErrorKind::Truncated {
                    part: Part::Trailer,
                    needed: TRAILER_LEN as u64,
                    got: got as u64,
                }
            } else if FRAME_TAG.starts_with(&tag[..got]) {
                ReadErrorKind::Truncated {
                    part: Part::FrameEnvelope,
                    needed: ENVELOPE_LEN as u64,
                    got: got as u64,
                }
            } else {
                let mut found = [0u8; 4];
                found[..got].copy_from_slice(&tag[..got]);
                ReadErrorKind::CorruptFrame {
                    problem: FrameProblem::BadTag { found },
                }
            };
            return Err(ReadError::new(
                kind,
                self.location(chunk_offset, Some(next_frame)),
            ));
        }
        if tag == FRAME_TAG {
            if self.footer.is_some() {
                return Err(ReadError::new(
                    ReadErrorKind::Inconsistent {
                        problem: "a frame follows the footer frame".to_owned(),
                    },
                    self.location(chunk_offset, Some(next_frame)),
                ));
            }
            // The current frame is used up: free it before the next one is
            // read, so that two frames are never held at once.
            self.frame = Vec::new();
            self.frame_pos = 0;
            let frame =
                read_frame_after_tag(&mut self.input, &mut self.decompressor).map_err(|kind| {
                    ReadError::new(kind, self.location(chunk_offset, Some(next_frame)))
                })?;
            self.offset += (ENVELOPE_LEN + frame.compressed_len as usize) as u64;
            self.frame = frame.payload;
            self.frame_pos = 0;
            self.frame_offset = chunk_offset;
            self.frame_compressed_len = frame.compressed_len;
            self.frame_number = Some(next_frame);
            self.block_in_frame = 0;
            self.frames_read += 1;
            self.stats.frames += 1;
            self.stats.compressed_bytes += u64::from(frame.compressed_len);
            self.stats.uncompressed_bytes += self.frame.len() as u64;
            self.stats.file_bytes = self.offset;
            if self.frame_entries.len() < MAX_INDEXED_FRAMES {
                self.frame_entries.push(FrameIndexEntry {
                    offset: chunk_offset,
                    compressed_len: frame.compressed_len,
                    uncompressed_len: self.frame.len() as u32,
                    blocks: 0,
                    first_t_nanos: 0,
                    last_t_nanos: 0,
                });
            }
            return Ok(true);
        }
        if tag == TRAILER_TAG {
            let location = self.location(chunk_offset, None);
            let mut bytes = [0u8; TRAILER_LEN];
            bytes[..4].copy_from_slice(&tag);
            let got = read_full(&mut self.input, &mut bytes[4..])
                .map_err(|source| ReadError::new(ReadErrorKind::Io { source }, location.clone()))?;
            if got < TRAILER_LEN - 4 {
                return Err(ReadError::new(
                    ReadErrorKind::Truncated {
                        part: Part::Trailer,
                        needed: TRAILER_LEN as u64,
                        got: (4 + got) as u64,
                    },
                    location,
                ));
            }
            let bad = |problem: String| {
                ReadError::new(ReadErrorKind::BadTrailer { problem }, location.clone())
            };
            let trailer = Trailer::decode(&bytes).map_err(bad)?;
            let Some(footer_offset) = self.footer_frame else {
                return Err(bad("a trailer without a footer before it".to_owned()));
            };
            if trailer.footer_offset != footer_offset {
                return Err(bad(format!(
                    "it points at offset {}, but the footer frame is at offset {footer_offset}",
                    trailer.footer_offset
                )));
            }
            if trailer.frames != self.frames_read {
                return Err(bad(format!(
                    "it counts {} frames, but the file has {}",
                    trailer.frames, self.frames_read
                )));
            }
            self.offset += TRAILER_LEN as u64;
            self.stats.file_bytes = self.offset;
            let extra = io::copy(&mut self.input, &mut io::sink()).map_err(|source| {
                ReadError::new(
                    ReadErrorKind::Io { source },
                    self.location(self.offset, None),
                )
            })?;
            if extra > 0 {
                return Err(ReadError::new(
                    ReadErrorKind::TrailingData { len: extra },
                    self.location(self.offset, None),
                ));
            }
            self.stats.trailer = true;
            return Ok(false);
        }
        Err(ReadError::new(
            ReadErrorKind::CorruptFrame {
                problem: FrameProblem::BadTag { found: tag },
            },
            self.location(chunk_offset, Some(next_frame)),
        ))
    }

    fn next_block(&mut self) -> Result<Block, ReadError> {
        let rest = &self.frame[self.frame_pos..];
        let block_type = rest[0];
        let Some((len, used)) = format::get_varint_u32(&rest[1..]) else {
            return Err(self.block_error(
                ReadErrorKind::BadBlock {
                    block_type,
                    problem: "malformed body length".to_owned(),
                },
                None,
            ));
        };
        let body_start = 1 + used;
        let available = rest.len() - body_start;
        if len as usize > available {
            return Err(self.block_error(
                ReadErrorKind::BadBlock {
                    block_type,
                    problem: format!(
                        "body length {len} runs past the end of the frame ({available} bytes left)"
                    ),
                },
                None,
            ));
        }
        let body_range = self.frame_pos + body_start..self.frame_pos + body_start + len as usize;
        let block = self.decode_block(block_type, body_range.clone())?;
        self.frame_pos = body_range.end;
        self.check_block(&block)?;
        if let Block::Footer(footer) = &block {
            self.footer = Some(footer.clone());
        } else {
            self.stats.blocks += 1;
            if let Some(t) = block.t_nanos() {
                self.stats.first_t_nanos = Some(self.stats.first_t_nanos.map_or(t, |f| f.min(t)));
                self.stats.last_t_nanos = Some(self.stats.last_t_nanos.map_or(t, |l| l.max(t)));
            }
            if let Some(entry) = self.current_frame_entry() {
                entry.blocks += 1;
            }
        }
        self.block_in_frame += 1;
        Ok(block)
    }

    fn current_frame_entry(&mut self) -> Option<&mut FrameIndexEntry> {
        let index = usize::try_from(self.frame_number?).ok()?;
        self.frame_entries.get_mut(index)
    }

    fn decode_block(
        &self,
        block_type: u8,
        range: std::ops::Range<usize>,
    ) -> Result<Block, ReadError> {
        let body = &self.frame[range];
        let bad = |problem: String| {
            self.block_error(
                ReadErrorKind::BadBlock {
                    block_type,
                    problem,
                },
                None,
            )
        };
        let postcard_bad = |e: postcard::Error| bad(format!("cannot decode body: {e}"));
        match block_type {
            BLOCK_CONNECTION_OPENED => {
                let (body, _) =
                    postcard::take_from_bytes::<OpenedBody>(body).map_err(postcard_bad)?;
                Ok(Block::ConnectionOpened(body.into()))
            }
            BLOCK_DATA => {
                let (head, bytes) =
                    postcard::take_from_bytes::<DataHead>(body).map_err(postcard_bad)?;
                let Some(direction) = format::direction_from_code(head.direction) else {
                    return Err(self.block_error(
                        ReadErrorKind::BadBlock {
                            block_type,
                            problem: format!("unknown direction {}", head.direction),
                        },
                        Some(head.conn),
                    ));
                };
                Ok(Block::Data(format::data_from_parts(head, direction, bytes)))
            }
            BLOCK_CONNECTION_CLOSED => {
                let (body, _) =
                    postcard::take_from_bytes::<ClosedBody>(body).map_err(postcard_bad)?;
                Ok(Block::ConnectionClosed(body.into()))
            }
            BLOCK_ANNOTATION => {
                let (body, _) =
                    postcard::take_from_bytes::<AnnotationBody>(body).map_err(postcard_bad)?;
                Ok(Block::Annotation(body.into()))
            }
            BLOCK_STORE_OBJECT => {
                let (body, _) =
                    postcard::take_from_bytes::<StoreObjectBody>(body).map_err(postcard_bad)?;
                Ok(Block::StoreObject(body.into()))
            }
            BLOCK_STORE_OBJECT_DATA => {
                let (head, bytes) =
                    postcard::take_from_bytes::<StoreObjectDataHead>(body).map_err(postcard_bad)?;
                Ok(Block::StoreObjectData(StoreObjectData {
                    object: head.object,
                    bytes: bytes.to_vec(),
                }))
            }
            BLOCK_FOOTER => {
                let (body, _) =
                    postcard::take_from_bytes::<FooterBody>(body).map_err(postcard_bad)?;
                Ok(Block::Footer(body.into()))
            }
            0 => Err(bad("block type 0 is reserved and never valid".to_owned())),
            _ => Ok(Block::Unknown {
                block_type,
                body: body.to_vec(),
            }),
        }
    }

    /// Checks a decoded block against the connection state, and updates it.
    fn check_block(&mut self, block: &Block) -> Result<(), ReadError> {
        let inconsistent = |problem: String| ReadErrorKind::Inconsistent { problem };
        match block {
            Block::ConnectionOpened(b) => {
                if self.seen_ids.contains(&b.conn) {
                    return Err(self.block_error(
                        inconsistent(format!("connection {} is opened a second time", b.conn)),
                        Some(b.conn),
                    ));
                }
                if self.open.len() >= MAX_OPEN_CONNECTIONS {
                    return Err(self.block_error(
                        inconsistent(format!(
                            "more than {MAX_OPEN_CONNECTIONS} connections open at once"
                        )),
                        Some(b.conn),
                    ));
                }
                self.seen_ids.insert(b.conn);
                let summary_slot = if self.summaries.len() < MAX_INDEXED_CONNECTIONS {
                    let frame = self.frame_number.unwrap_or(0);
                    self.summaries.push(ConnectionSummary {
                        conn: b.conn,
                        opened_nanos: b.t_nanos,
                        closed_nanos: b.t_nanos,
                        reason_code: 0,
                        bytes_client_to_server: 0,
                        bytes_server_to_client: 0,
                        first_frame: frame,
                        last_frame: frame,
                    });
                    Some(self.summaries.len() - 1)
                } else {
                    None
                };
                self.open.insert(
                    b.conn,
                    Tracked {
                        hashers: [Sha256::new(), Sha256::new()],
                        bytes: [0, 0],
                        summary_slot,
                    },
                );
                self.stats.connections += 1;
            }
            Block::Data(b) => {
                let Some(tracked) = self.open.get_mut(&b.conn) else {
                    let problem = self.not_open_problem("data", b.conn);
                    return Err(self.block_error(inconsistent(problem), Some(b.conn)));
                };
                let d = usize::from(b.direction.code());
                tracked.hashers[d].update(&b.bytes);
                tracked.bytes[d] += b.bytes.len() as u64;
                match b.direction {
                    Direction::ClientToServer => {
                        self.stats.bytes_client_to_server += b.bytes.len() as u64
                    }
                    Direction::ServerToClient => {
                        self.stats.bytes_server_to_client += b.bytes.len() as u64
                    }
                }
            }
            Block::ConnectionClosed(b) => {
                let Some(tracked) = self.open.get(&b.conn) else {
                    let problem = self.not_open_problem("a close record", b.conn);
                    return Err(self.block_error(inconsistent(problem), Some(b.conn)));
                };
                if let Some(kind) = digest_problem(b, tracked) {
                    return Err(self.block_error(kind, Some(b.conn)));
                }
                if let Some(tracked) = self.open.remove(&b.conn) {
                    let frame = self.frame_number.unwrap_or(0);
                    if let Some(slot) = tracked.summary_slot.and_then(|i| self.summaries.get_mut(i))
                    {
                        slot.closed_nanos = b.t_nanos;
                        slot.reason_code = b.reason.code();
                        slot.bytes_client_to_server = tracked.bytes[0];
                        slot.bytes_server_to_client = tracked.bytes[1];
                        slot.last_frame = frame;
                    }
                }
                self.stats.connections_closed += 1;
            }
            Block::Annotation(_) => self.stats.annotations += 1,
            Block::StoreObject(b) => self.check_store_object(b)?,
            Block::StoreObjectData(b) => self.check_store_object_data(b)?,
            Block::Unknown { .. } => self.stats.unknown_blocks += 1,
            Block::Footer(footer) => self.check_footer(footer)?,
        }
        Ok(())
    }

    fn check_store_object(&mut self, b: &StoreObject) -> Result<(), ReadError> {
        let mismatch = |problem: String| ReadErrorKind::StoreObjectMismatch {
            object: b.object,
            name: b.name.clone(),
            problem,
        };
        if !self.seen_objects.insert(b.object) {
            return Err(self.block_error(mismatch("the id is used a second time".to_owned()), None));
        }
        if !b.is_present() && b.size != 0 {
            let problem = format!("recorded as missing, with a size of {}", b.size);
            return Err(self.block_error(mismatch(problem), None));
        }
        if self.objects.len() >= MAX_OPEN_STORE_OBJECTS {
            let problem = format!("more than {MAX_OPEN_STORE_OBJECTS} incomplete store objects");
            return Err(self.block_error(mismatch(problem), None));
        }
        self.stats.store_objects += 1;
        if !b.is_present() {
            self.stats.store_objects_missing += 1;
            return Ok(());
        }
        let tracked = TrackedObject {
            name: b.name.clone(),
            size: b.size,
            sha256: b.sha256,
            hasher: Sha256::new(),
            bytes: 0,
        };
        if b.size == 0 {
            return self.complete_object(b.object, tracked);
        }
        self.objects.insert(b.object, tracked);
        Ok(())
    }

    fn check_store_object_data(&mut self, b: &StoreObjectData) -> Result<(), ReadError> {
        let Some(tracked) = self.objects.get_mut(&b.object) else {
            let problem = if self.seen_objects.contains(&b.object) {
                format!(
                    "contents for store object {}, which is already complete",
                    b.object
                )
            } else {
                format!(
                    "contents for store object {}, which was never described",
                    b.object
                )
            };
            return Err(self.block_error(ReadErrorKind::Inconsistent { problem }, None));
        };
        tracked.hasher.update(&b.bytes);
        tracked.bytes += b.bytes.len() as u64;
        self.stats.store_object_bytes += b.bytes.len() as u64;
        if tracked.bytes > tracked.size {
            let kind = ReadErrorKind::StoreObjectMismatch {
                object: b.object,
                name: tracked.name.clone(),
                problem: format!(
                    "{} bytes of contents, its block says {}",
                    tracked.bytes, tracked.size
                ),
            };
            return Err(self.block_error(kind, None));
        }
        if tracked.bytes == tracked.size {
            if let Some(tracked) = self.objects.remove(&b.object) {
                return self.complete_object(b.object, tracked);
            }
        }
        Ok(())
    }

    fn complete_object(&mut self, object: u64, tracked: TrackedObject) -> Result<(), ReadError> {
        let actual: [u8; 32] = tracked.hasher.finalize().into();
        if actual != tracked.sha256 {
            let kind = ReadErrorKind::StoreObjectMismatch {
                object,
                name: tracked.name,
                problem: "SHA-256 of the contents does not match its block".to_owned(),
            };
            return Err(self.block_error(kind, None));
        }
        Ok(())
    }

    fn not_open_problem(&self, what: &str, conn: u64) -> String {
        if self.seen_ids.contains(&conn) {
            format!("{what} for connection {conn}, which was already closed")
        } else {
            format!("{what} for connection {conn}, which was never opened")
        }
    }

    fn check_footer(&mut self, footer: &Footer) -> Result<(), ReadError> {
        let inconsistent = |problem: &str| ReadErrorKind::Inconsistent {
            problem: problem.to_owned(),
        };
        if self.block_in_frame != 0 || self.frame_pos != self.frame.len() {
            return Err(
                self.block_error(inconsistent("the footer is not alone in its frame"), None)
            );
        }
        if !self.open.is_empty() {
            return Err(self.block_error(
                inconsistent("connections are still open at the footer"),
                self.open_connections().first().copied(),
            ));
        }
        if let Some((&object, tracked)) = self.objects.iter().min_by_key(|(id, _)| **id) {
            let kind = ReadErrorKind::StoreObjectMismatch {
                object,
                name: tracked.name.clone(),
                problem: format!(
                    "only {} of its {} bytes before the footer",
                    tracked.bytes, tracked.size
                ),
            };
            return Err(self.block_error(kind, None));
        }
        let block_frames = self.stats.frames.saturating_sub(1);
        let mut problems = Vec::new();
        let mut compare = |field: &str, footer_value: u64, actual: u64| {
            if footer_value != actual {
                problems.push(format!(
                    "{field}: footer says {footer_value}, read {actual}"
                ));
            }
        };
        compare("frames", footer.frames, block_frames);
        compare("blocks", footer.blocks, self.stats.blocks);
        compare("annotations", footer.annotations, self.stats.annotations);
        compare(
            "uncompressed bytes",
            footer.uncompressed_bytes,
            self.stats
                .uncompressed_bytes
                .saturating_sub(self.frame.len() as u64),
        );
        compare(
            "compressed bytes",
            footer.compressed_bytes,
            self.stats
                .compressed_bytes
                .saturating_sub(u64::from(self.frame_compressed_len)),
        );
        compare(
            "bytes client to server",
            footer.bytes_client_to_server,
            self.stats.bytes_client_to_server,
        );
        compare(
            "bytes server to client",
            footer.bytes_server_to_client,
            self.stats.bytes_server_to_client,
        );
        let listed = footer.connections.len().min(self.summaries.len());
        if footer.connections_complete {
            compare(
                "connections",
                footer.connections.len() as u64,
                self.stats.connections,
            );
        }
        if footer.frame_index_complete {
            compare(
                "frame index entries",
                footer.frame_index.len() as u64,
                block_frames,
            );
        }
        if footer.connections[..listed] != self.summaries[..listed] {
            problems.push("the connection index differs from the blocks".to_owned());
        }
        let indexed = footer
            .frame_index
            .len()
            .min(self.frame_entries.len())
            .min(block_frames as usize);
        // Timestamps are left out: a later minor version may index block
        // types whose timestamps this reader cannot see.
        let key = |e: &FrameIndexEntry| (e.offset, e.compressed_len, e.uncompressed_len, e.blocks);
        if !footer.frame_index[..indexed]
            .iter()
            .map(key)
            .eq(self.frame_entries[..indexed].iter().map(key))
        {
            problems.push("the frame index differs from the frames".to_owned());
        }
        if !problems.is_empty() {
            return Err(self.block_error(
                ReadErrorKind::FooterMismatch {
                    problem: problems.join("; "),
                },
                None,
            ));
        }
        self.footer_frame = Some(self.frame_offset);
        self.stats.footer = true;
        // From here on, the statistics describe the block frames only.
        self.stats.frames = block_frames;
        self.stats.compressed_bytes = self
            .stats
            .compressed_bytes
            .saturating_sub(u64::from(self.frame_compressed_len));
        self.stats.uncompressed_bytes = self
            .stats
            .uncompressed_bytes
            .saturating_sub(self.frame.len() as u64);
        Ok(())
    }
}

impl<R: Read> Iterator for Reader<R> {
    type Item = Result<Block, ReadError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.step() {
            Ok(Some(block)) => Some(Ok(block)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(err) => {
                self.done = true;
                Some(Err(err))
            }
        }
    }
}

impl<R: Read> std::iter::FusedIterator for Reader<R> {}

/// Compares a close record with the bytes read for its connection.
fn digest_problem(closed: &ConnectionClosed, tracked: &Tracked) -> Option<ReadErrorKind> {
    for direction in Direction::BOTH {
        let d = usize::from(direction.code());
        let expected = closed.digest(direction);
        if expected.bytes != tracked.bytes[d] {
            return Some(ReadErrorKind::ByteCountMismatch {
                conn: closed.conn,
                direction,
                expected: expected.bytes,
                actual: tracked.bytes[d],
            });
        }
        let actual: [u8; 32] = tracked.hashers[d].clone().finalize().into();
        if expected.sha256 != actual {
            return Some(ReadErrorKind::HashMismatch {
                conn: closed.conn,
                direction,
                expected: expected.sha256,
                actual,
            });
        }
    }
    None
}
