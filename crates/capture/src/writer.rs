//! The capture writer: blocks in, zstd frames out.
//!
//! Blocks accumulate uncompressed in memory until the open frame is due: it
//! holds `frame_max_bytes`, or its first block is `frame_max_age_nanos` old
//! (checked on every block and by `flush_if_due`), or the caller asks with
//! `flush_frame`. The frame is then compressed as one independent zstd frame,
//! written behind its envelope with a single `write_all`, and `out` is
//! flushed. A writer killed at any moment therefore leaves a file whose
//! complete frames all read back; only the open frame is lost.
//!
//! The writer never reads a clock: every timestamp comes from the caller.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::io::{self, IoSlice, Write};

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::error::WriteError;
use crate::format::{
    self, AnnotationBody, ClosedBody, Envelope, FooterBody, OpenedBody, StoreObjectBody,
    StoreObjectDataHead, Trailer, BLOCK_ANNOTATION, BLOCK_CONNECTION_CLOSED,
    BLOCK_CONNECTION_OPENED, BLOCK_DATA, BLOCK_FOOTER, BLOCK_STORE_OBJECT, BLOCK_STORE_OBJECT_DATA,
    FORMAT_MAJOR, FORMAT_MINOR, MAGIC, MAX_BLOCK_BODY_LEN, MAX_DATA_CHUNK_LEN, MAX_FRAME_MAX_BYTES,
    MAX_FRAME_UNCOMPRESSED_LEN, MAX_HEADER_BODY_LEN, MAX_INDEXED_CONNECTIONS, MAX_INDEXED_FRAMES,
    MAX_OPEN_CONNECTIONS,
};
use crate::types::{
    Annotation, CloseReason, ConnectionClosed, ConnectionOpened, ConnectionSummary, Direction,
    Footer, FrameIndexEntry, Header, PeerCred, StoreObject, StoreObjectKind, StreamDigest,
};

/// How the writer cuts frames and compresses them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriterOptions {
    /// A frame is written once its uncompressed blocks reach this many bytes.
    /// Clamped to `MAX_FRAME_MAX_BYTES`. Default: 4 MiB.
    pub frame_max_bytes: usize,
    /// A frame is written once its first block is this old (by the caller's
    /// timestamps). Default: 100 ms.
    pub frame_max_age_nanos: u64,
    /// The zstd compression level. Default: 1, the fastest of the regular
    /// levels: the writer runs beside a live build, and protocol metadata
    /// still compresses to well under a quarter of its size at this level
    /// (see docs/BENCHMARKS.md).
    pub zstd_level: i32,
    /// Store a frame without compressing it when a sample of it does not
    /// compress (random bytes, compressed archives): it is then written as
    /// a zstd frame of raw blocks, which every reader reads as any other,
    /// and costs a copy instead of zstd's search. Default: true.
    pub store_incompressible: bool,
}

/// Frames smaller than this are always compressed: probing them would cost
/// about as much as compressing them.
const PROBE_MIN_FRAME: usize = 64 << 10;
/// How many evenly spaced pieces of a frame the probe compresses …
const PROBE_PIECES: usize = 8;
/// … and how long each is.
const PROBE_PIECE_LEN: usize = 4 << 10;

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions {
            frame_max_bytes: 4 << 20,
            frame_max_age_nanos: 100_000_000,
            zstd_level: 1,
            store_incompressible: true,
        }
    }
}

/// Running totals of a writer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Summary {
    /// Connections opened so far.
    pub connections: u64,
    /// Connections currently open.
    pub open_connections: u64,
    /// Data bytes client to server, over all connections.
    pub bytes_client_to_server: u64,
    /// Data bytes server to client, over all connections.
    pub bytes_server_to_client: u64,
    /// Blocks written or pending (the footer not included).
    pub blocks: u64,
    /// Annotation blocks.
    pub annotations: u64,
    /// Store objects (present or missing).
    pub store_objects: u64,
    /// Frames written to the output (after `finish`, the footer frame included).
    pub frames: u64,
    /// Uncompressed size of all blocks, written or pending (the footer not included).
    pub uncompressed_bytes: u64,
    /// Bytes written to the output so far: header, envelopes, compressed payloads,
    /// and after `finish` the footer and the trailer.
    pub compressed_bytes: u64,
}

/// State of one open connection.
struct OpenConnection {
    opened_nanos: u64,
    first_frame: u64,
    hashers: [Sha256; 2],
    bytes: [u64; 2],
    summary_slot: Option<usize>,
}

/// Writes a capture file to `out`. See the module documentation for the frame policy.
pub struct Writer<W: Write> {
    out: Option<W>,
    options: WriterOptions,
    compressor: zstd::bulk::Compressor<'static>,
    /// Uncompressed blocks of the open frame.
    frame: Vec<u8>,
    frame_blocks: u32,
    frame_first_t: u64,
    frame_min_t: u64,
    frame_max_t: u64,
    compressed: Vec<u8>,
    /// Scratch space of the incompressibility probe.
    probe: Vec<u8>,
    probe_out: Vec<u8>,
    offset: u64,
    frames_written: u64,
    frame_index: Vec<FrameIndexEntry>,
    frame_index_complete: bool,
    payload_compressed_bytes: u64,
    payload_uncompressed_bytes: u64,
    open: HashMap<u64, OpenConnection>,
    used_ids: HashSet<u64>,
    summaries: Vec<ConnectionSummary>,
    summaries_complete: bool,
    summary: Summary,
    poisoned: bool,
}

impl<W: Write> fmt::Debug for Writer<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Writer")
            .field("options", &self.options)
            .field("offset", &self.offset)
            .field("pending_bytes", &self.frame.len())
            .field("summary", &self.summary)
            .field("poisoned", &self.poisoned)
            .finish_non_exhaustive()
    }
}

impl<W: Write> Writer<W> {
    /// Writes the file prelude and header to `out` and flushes it.
    pub fn new(out: W, header: Header, options: WriterOptions) -> Result<Self, WriteError> {
        let mut options = options;
        options.frame_max_bytes = options.frame_max_bytes.min(MAX_FRAME_MAX_BYTES);
        let compressor = zstd::bulk::Compressor::new(options.zstd_level)?;
        let prelude = encode_prelude(&header)?;

        let mut writer = Writer {
            out: Some(out),
            options,
            compressor,
            frame: Vec::new(),
            frame_blocks: 0,
            frame_first_t: 0,
            frame_min_t: 0,
            frame_max_t: 0,
            compressed: Vec::new(),
            probe: Vec::new(),
            probe_out: Vec::new(),
            offset: 0,
            frames_written: 0,
            frame_index: Vec::new(),
            frame_index_complete: true,
            payload_compressed_bytes: 0,
            payload_uncompressed_bytes: 0,
            open: HashMap::new(),
            used_ids: HashSet::new(),
            summaries: Vec::new(),
            summaries_complete: true,
            summary: Summary::default(),
            poisoned: false,
        };
        writer.write_out(&[&prelude])?;
        Ok(writer)
    }

    /// Records that connection `conn` was opened at `t_nanos`.
    ///
    /// Connection ids must be unique within a capture.
    pub fn open_connection(
        &mut self,
        conn: u64,
        t_nanos: u64,
        peer: Option<PeerCred>,
        metadata: BTreeMap<String, String>,
    ) -> Result<(), WriteError> {
        self.check_usable()?;
        if self.used_ids.contains(&conn) {
            return Err(WriteError::DuplicateConnection { conn });
        }
        if self.open.len() >= MAX_OPEN_CONNECTIONS {
            return Err(WriteError::TooManyOpenConnections {
                max: MAX_OPEN_CONNECTIONS,
            });
        }
        let block = ConnectionOpened {
            conn,
            t_nanos,
            peer,
            metadata,
        };
        let body = encode("connection-opened block", &OpenedBody::from(&block))?;
        check_block_len("connection metadata", body.len())?;
        self.make_room(body.len())?;
        let first_frame = self.frames_written;
        self.push_block(BLOCK_CONNECTION_OPENED, &[&body], t_nanos);
        self.used_ids.insert(conn);
        let summary_slot = if self.summaries.len() < MAX_INDEXED_CONNECTIONS {
            self.summaries.push(ConnectionSummary {
                conn,
                opened_nanos: t_nanos,
                closed_nanos: t_nanos,
                reason_code: CloseReason::Shutdown.code(),
                bytes_client_to_server: 0,
                bytes_server_to_client: 0,
                first_frame,
                last_frame: first_frame,
            });
            Some(self.summaries.len() - 1)
        } else {
            self.summaries_complete = false;
            None
        };
        self.open.insert(
            conn,
            OpenConnection {
                opened_nanos: t_nanos,
                first_frame,
                hashers: [Sha256::new(), Sha256::new()],
                bytes: [0, 0],
                summary_slot,
            },
        );
        self.summary.connections += 1;
        self.summary.open_connections = self.open.len() as u64;
        self.after_block(t_nanos)
    }

    /// Records bytes seen on an open connection. Data longer than
    /// `MAX_DATA_CHUNK_LEN` is stored as several consecutive data blocks with
    /// the same timestamp; empty data is stored as an empty data block.
    pub fn data(
        &mut self,
        conn: u64,
        direction: Direction,
        t_nanos: u64,
        bytes: &[u8],
    ) -> Result<(), WriteError> {
        self.check_usable()?;
        if !self.open.contains_key(&conn) {
            return Err(WriteError::UnknownConnection { conn });
        }
        let head = format::data_head(conn, direction, t_nanos).map_err(|e| WriteError::Encode {
            what: "data block",
            message: e.to_string(),
        })?;
        let mut chunks = bytes.chunks(MAX_DATA_CHUNK_LEN);
        let mut next = Some(chunks.next().unwrap_or(&[]));
        while let Some(chunk) = next {
            self.make_room(head.len() + chunk.len())?;
            self.push_block(BLOCK_DATA, &[&head, chunk], t_nanos);
            if let Some(state) = self.open.get_mut(&conn) {
                let d = usize::from(direction.code());
                state.hashers[d].update(chunk);
                state.bytes[d] += chunk.len() as u64;
            }
            match direction {
                Direction::ClientToServer => {
                    self.summary.bytes_client_to_server += chunk.len() as u64
                }
                Direction::ServerToClient => {
                    self.summary.bytes_server_to_client += chunk.len() as u64
                }
            }
            self.after_block(t_nanos)?;
            next = chunks.next();
        }
        Ok(())
    }

    /// Records that a connection was closed. The writer adds the byte count
    /// and SHA-256 of each direction, computed from the data it was given.
    pub fn close_connection(
        &mut self,
        conn: u64,
        t_nanos: u64,
        reason: CloseReason,
    ) -> Result<(), WriteError> {
        self.check_usable()?;
        let Some(state) = self.open.get(&conn) else {
            return Err(WriteError::UnknownConnection { conn });
        };
        let digests: Vec<StreamDigest> = (0..2)
            .map(|d| StreamDigest {
                bytes: state.bytes[d],
                sha256: state.hashers[d].clone().finalize().into(),
            })
            .collect();
        let block = ConnectionClosed {
            conn,
            t_nanos,
            reason,
            client_to_server: digests[0],
            server_to_client: digests[1],
        };
        let body = encode("connection-closed block", &ClosedBody::from(&block))?;
        check_block_len("close reason", body.len())?;
        self.make_room(body.len())?;
        let last_frame = self.frames_written;
        self.push_block(BLOCK_CONNECTION_CLOSED, &[&body], t_nanos);
        if let Some(state) = self.open.remove(&conn) {
            if let Some(slot) = state.summary_slot.and_then(|i| self.summaries.get_mut(i)) {
                slot.opened_nanos = state.opened_nanos;
                slot.closed_nanos = t_nanos;
                slot.reason_code = block.reason.code();
                slot.bytes_client_to_server = state.bytes[0];
                slot.bytes_server_to_client = state.bytes[1];
                slot.first_frame = state.first_frame;
                slot.last_frame = last_frame;
            }
        }
        self.summary.open_connections = self.open.len() as u64;
        self.after_block(t_nanos)
    }

    /// Records contents the caller fetched itself, outside every connection
    /// (a NAR or a build log): one store-object block, then the bytes in
    /// store-object data blocks of at most 16 MiB. Returns the object id.
    pub fn store_object(
        &mut self,
        t_nanos: u64,
        kind: StoreObjectKind,
        name: &str,
        contents: &[u8],
    ) -> Result<u64, WriteError> {
        let object = StoreObject {
            object: self.summary.store_objects,
            t_nanos,
            kind,
            name: name.to_owned(),
            size: contents.len() as u64,
            sha256: Sha256::digest(contents).into(),
            missing: String::new(),
        };
        self.push_store_object(&object)?;
        let head = postcard::to_stdvec(&StoreObjectDataHead {
            object: object.object,
        })
        .map_err(|e| WriteError::Encode {
            what: "store-object data block",
            message: e.to_string(),
        })?;
        for chunk in contents.chunks(MAX_DATA_CHUNK_LEN) {
            self.make_room(head.len() + chunk.len())?;
            self.push_block(BLOCK_STORE_OBJECT_DATA, &[&head, chunk], t_nanos);
            self.after_block(t_nanos)?;
        }
        Ok(object.object)
    }

    /// Records that a store object could not be fetched, and why. Returns
    /// the object id.
    pub fn missing_store_object(
        &mut self,
        t_nanos: u64,
        kind: StoreObjectKind,
        name: &str,
        reason: &str,
    ) -> Result<u64, WriteError> {
        let object = StoreObject {
            object: self.summary.store_objects,
            t_nanos,
            kind,
            name: name.to_owned(),
            size: 0,
            sha256: Sha256::digest([]).into(),
            missing: if reason.is_empty() {
                "unknown reason".to_owned()
            } else {
                reason.to_owned()
            },
        };
        self.push_store_object(&object)?;
        Ok(object.object)
    }

    fn push_store_object(&mut self, object: &StoreObject) -> Result<(), WriteError> {
        self.check_usable()?;
        let body = encode("store-object block", &StoreObjectBody::from(object))?;
        check_block_len("store object name", body.len())?;
        self.make_room(body.len())?;
        self.push_block(BLOCK_STORE_OBJECT, &[&body], object.t_nanos);
        self.summary.store_objects += 1;
        self.after_block(object.t_nanos)
    }

    /// Records a free-text annotation.
    pub fn annotate(&mut self, t_nanos: u64, text: &str) -> Result<(), WriteError> {
        self.check_usable()?;
        let block = Annotation {
            t_nanos,
            text: text.to_owned(),
        };
        let body = encode("annotation block", &AnnotationBody::from(&block))?;
        check_block_len("annotation", body.len())?;
        self.make_room(body.len())?;
        self.push_block(BLOCK_ANNOTATION, &[&body], t_nanos);
        self.summary.annotations += 1;
        self.after_block(t_nanos)
    }

    /// Frees the buffers an open frame is built in (up to about twice the
    /// frame size) while no frame is open, for a writer that will be idle a
    /// while or write little more; the next block allocates them again.
    /// Writes nothing.
    pub fn release_buffers(&mut self) {
        if self.frame_blocks == 0 {
            self.frame = Vec::new();
        }
        self.compressed = Vec::new();
        self.probe = Vec::new();
        self.probe_out = Vec::new();
    }

    /// Ends the open frame (if it holds any block), writes it and flushes `out`.
    pub fn flush_frame(&mut self) -> Result<(), WriteError> {
        self.check_usable()?;
        if self.frame_blocks == 0 {
            return Ok(());
        }
        let uncompressed_len = self.frame.len();
        let frame_offset = self.offset;
        let compressed_len = if self.looks_incompressible() {
            self.write_stored_frame()?
        } else {
            self.write_compressed_frame()?
        };
        if self.frame_index.len() < MAX_INDEXED_FRAMES {
            self.frame_index.push(FrameIndexEntry {
                offset: frame_offset,
                compressed_len: compressed_len as u32,
                uncompressed_len: uncompressed_len as u32,
                blocks: self.frame_blocks,
                first_t_nanos: self.frame_min_t,
                last_t_nanos: self.frame_max_t,
            });
        } else {
            self.frame_index_complete = false;
        }
        self.payload_compressed_bytes += compressed_len as u64;
        self.payload_uncompressed_bytes += uncompressed_len as u64;
        self.frames_written += 1;
        self.summary.frames = self.frames_written;
        self.frame.clear();
        self.frame_blocks = 0;
        if self.frame.capacity() > 2 * self.options.frame_max_bytes.max(1 << 16) {
            self.frame.shrink_to(self.options.frame_max_bytes);
        }
        Ok(())
    }

    /// Compresses the open frame and writes it behind its envelope; gives
    /// the compressed length.
    fn write_compressed_frame(&mut self) -> Result<usize, WriteError> {
        let uncompressed_len = self.frame.len();
        self.compressed.clear();
        self.compressed
            .extend_from_slice(&[0u8; format::ENVELOPE_LEN]);
        self.compressed
            .reserve(zstd::zstd_safe::compress_bound(uncompressed_len));
        // zstd writes after the cursor position, behind the room left for the envelope.
        let mut cursor = std::io::Cursor::new(&mut self.compressed);
        cursor.set_position(format::ENVELOPE_LEN as u64);
        let result = self.compressor.compress_to_buffer(&self.frame, &mut cursor);
        if let Err(err) = result {
            self.poisoned = true;
            return Err(err.into());
        }
        let compressed_len = self.compressed.len() - format::ENVELOPE_LEN;
        let envelope = Envelope {
            compressed_len: compressed_len as u32,
            uncompressed_len: uncompressed_len as u32,
            payload_crc: format::crc32c(&self.compressed[format::ENVELOPE_LEN..]),
        };
        self.compressed[..format::ENVELOPE_LEN].copy_from_slice(&envelope.encode());
        let bytes = std::mem::take(&mut self.compressed);
        let result = self.write_out(&[&bytes]);
        self.compressed = bytes;
        result.map(|()| compressed_len)
    }

    /// Writes the open frame stored (a zstd frame of raw blocks) behind its
    /// envelope, handing the frame's bytes to the output as they are rather
    /// than copying them into a stored form first; gives the stored length.
    fn write_stored_frame(&mut self) -> Result<usize, WriteError> {
        let frame = std::mem::take(&mut self.frame);
        let mut heads = std::mem::take(&mut self.compressed);
        let parts = format::stored_zstd_frame_parts(&frame, &mut heads);
        let compressed_len: usize = parts.iter().map(|part| part.len()).sum();
        let envelope = Envelope {
            compressed_len: compressed_len as u32,
            uncompressed_len: frame.len() as u32,
            payload_crc: parts
                .iter()
                .fold(0, |crc, part| format::crc32c_update(crc, part)),
        }
        .encode();
        let mut pieces = Vec::with_capacity(1 + parts.len());
        pieces.push(&envelope[..]);
        pieces.extend(parts);
        let result = self.write_out(&pieces);
        drop(pieces);
        self.compressed = heads;
        self.frame = frame;
        result.map(|()| compressed_len)
    }

    /// Whether the open frame is to be stored rather than compressed: it is
    /// large enough to be worth probing, and pieces of it, compressed
    /// together, shrink by less than 1/32 (about 3 %).
    fn looks_incompressible(&mut self) -> bool {
        let len = self.frame.len();
        if !self.options.store_incompressible || len < PROBE_MIN_FRAME {
            return false;
        }
        self.probe.clear();
        let stride = len / PROBE_PIECES;
        for i in 0..PROBE_PIECES {
            let start = i * stride;
            let end = (start + PROBE_PIECE_LEN).min(len);
            self.probe.extend_from_slice(&self.frame[start..end]);
        }
        self.probe_out.clear();
        self.probe_out
            .reserve(zstd::zstd_safe::compress_bound(self.probe.len()));
        match self
            .compressor
            .compress_to_buffer(&self.probe, &mut self.probe_out)
        {
            Ok(compressed) => compressed * 32 > self.probe.len() * 31,
            // The frame itself will be compressed, and its error reported.
            Err(_) => false,
        }
    }

    /// Writes the open frame if its first block is at least
    /// `frame_max_age_nanos` older than `now_nanos`. Returns whether it did.
    /// Call this from a timer so that idle periods do not delay a frame.
    pub fn flush_if_due(&mut self, now_nanos: u64) -> Result<bool, WriteError> {
        self.check_usable()?;
        if self.frame_blocks > 0
            && now_nanos.saturating_sub(self.frame_first_t) >= self.options.frame_max_age_nanos
        {
            self.flush_frame()?;
            return Ok(true);
        }
        Ok(false)
    }

    /// Finishes the capture: closes every connection still open with
    /// `CloseReason::Shutdown` at `end_nanos` (in increasing id order), writes
    /// the open frame, the footer frame and the trailer, flushes `out` and
    /// returns it with the final totals.
    pub fn finish(mut self, end_nanos: u64) -> Result<(W, Summary), WriteError> {
        self.check_usable()?;
        let mut still_open: Vec<u64> = self.open.keys().copied().collect();
        still_open.sort_unstable();
        for conn in still_open {
            self.close_connection(conn, end_nanos, CloseReason::Shutdown)?;
        }
        self.flush_frame()?;

        let footer = Footer {
            end_nanos,
            frames: self.frames_written,
            blocks: self.summary.blocks,
            annotations: self.summary.annotations,
            uncompressed_bytes: self.payload_uncompressed_bytes,
            compressed_bytes: self.payload_compressed_bytes,
            bytes_client_to_server: self.summary.bytes_client_to_server,
            bytes_server_to_client: self.summary.bytes_server_to_client,
            connections_complete: self.summaries_complete,
            connections: std::mem::take(&mut self.summaries),
            frame_index_complete: self.frame_index_complete,
            frame_index: std::mem::take(&mut self.frame_index),
        };
        let body = encode("footer", &FooterBody::from(&footer))?;
        if body.len() + 16 > MAX_FRAME_UNCOMPRESSED_LEN as usize {
            return Err(WriteError::TooLarge {
                what: "footer",
                len: body.len(),
                max: MAX_FRAME_UNCOMPRESSED_LEN as usize - 16,
            });
        }
        let footer_offset = self.offset;
        self.push_block(BLOCK_FOOTER, &[&body], end_nanos);
        // The footer is not one of the blocks it counts.
        self.summary.blocks -= 1;
        self.summary.uncompressed_bytes = self.payload_uncompressed_bytes;
        self.flush_frame()?;
        let trailer = Trailer {
            footer_offset,
            frames: self.frames_written,
        };
        self.write_out(&[&trailer.encode()])?;
        let summary = self.summary.clone();
        match self.out.take() {
            Some(out) => Ok((out, summary)),
            None => Err(WriteError::Poisoned),
        }
    }

    /// The running totals.
    pub fn summary(&self) -> Summary {
        self.summary.clone()
    }

    /// The options in effect (after clamping).
    pub fn options(&self) -> &WriterOptions {
        &self.options
    }

    /// A reference to the output.
    pub fn get_ref(&self) -> Option<&W> {
        self.out.as_ref()
    }

    fn check_usable(&self) -> Result<(), WriteError> {
        if self.poisoned || self.out.is_none() {
            return Err(WriteError::Poisoned);
        }
        Ok(())
    }

    /// Writes the open frame first if a block of `body_len` bytes would push
    /// it over the format's frame limit.
    fn make_room(&mut self, body_len: usize) -> Result<(), WriteError> {
        if self.frame.len() + body_len + 16 > MAX_FRAME_UNCOMPRESSED_LEN as usize {
            self.flush_frame()?;
        }
        Ok(())
    }

    fn push_block(&mut self, block_type: u8, body_parts: &[&[u8]], t_nanos: u64) {
        let before = self.frame.len();
        format::put_block(&mut self.frame, block_type, body_parts);
        if self.frame_blocks == 0 {
            self.frame_first_t = t_nanos;
            self.frame_min_t = t_nanos;
            self.frame_max_t = t_nanos;
        } else {
            self.frame_min_t = self.frame_min_t.min(t_nanos);
            self.frame_max_t = self.frame_max_t.max(t_nanos);
        }
        self.frame_blocks += 1;
        self.summary.blocks += 1;
        self.summary.uncompressed_bytes += (self.frame.len() - before) as u64;
    }

    /// Applies the size and age policy after a block was added.
    fn after_block(&mut self, t_nanos: u64) -> Result<(), WriteError> {
        if self.frame.len() >= self.options.frame_max_bytes
            || t_nanos.saturating_sub(self.frame_first_t) >= self.options.frame_max_age_nanos
        {
            self.flush_frame()?;
        }
        Ok(())
    }

    /// Writes `parts`, one after the other, and flushes.
    fn write_out(&mut self, parts: &[&[u8]]) -> Result<(), WriteError> {
        let Some(out) = self.out.as_mut() else {
            return Err(WriteError::Poisoned);
        };
        let result = write_all_parts(out, parts).and_then(|()| out.flush());
        match result {
            Ok(()) => {
                self.offset += parts.iter().map(|part| part.len() as u64).sum::<u64>();
                self.summary.compressed_bytes = self.offset;
                Ok(())
            }
            Err(err) => {
                self.poisoned = true;
                Err(err.into())
            }
        }
    }
}

/// `write_all` of several buffers, in as few calls as the output takes
/// ([`Write::write_vectored`]).
fn write_all_parts<W: Write>(out: &mut W, parts: &[&[u8]]) -> io::Result<()> {
    let mut slices: Vec<IoSlice<'_>> = parts.iter().map(|part| IoSlice::new(part)).collect();
    let mut slices = &mut slices[..];
    // Skips empty buffers, so that a write of 0 bytes means a full output.
    IoSlice::advance_slices(&mut slices, 0);
    while !slices.is_empty() {
        match out.write_vectored(slices) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    "failed to write whole buffer",
                ))
            }
            Ok(n) => IoSlice::advance_slices(&mut slices, n),
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    Ok(())
}

impl<W: Write> Drop for Writer<W> {
    /// Writes the open frame on a best-effort basis, as `BufWriter` does; a
    /// dropped writer leaves a file without footer, which readers accept as
    /// an unfinished capture.
    fn drop(&mut self) {
        if self.out.is_some() && !self.poisoned {
            let _ = self.flush_frame();
        }
    }
}

/// Encodes the file prelude, header body and header checksum.
pub(crate) fn encode_prelude(header: &Header) -> Result<Vec<u8>, WriteError> {
    let body = encode("header", &format::HeaderBody::from(header))?;
    if body.len() > MAX_HEADER_BODY_LEN as usize {
        return Err(WriteError::TooLarge {
            what: "header",
            len: body.len(),
            max: MAX_HEADER_BODY_LEN as usize,
        });
    }
    let mut prelude = Vec::with_capacity(format::PRELUDE_LEN + body.len() + 4);
    prelude.extend_from_slice(&MAGIC);
    prelude.extend_from_slice(&FORMAT_MAJOR.to_le_bytes());
    prelude.extend_from_slice(&FORMAT_MINOR.to_le_bytes());
    prelude.extend_from_slice(&(body.len() as u32).to_le_bytes());
    prelude.extend_from_slice(&body);
    let crc = format::crc32c(&prelude);
    prelude.extend_from_slice(&crc.to_le_bytes());
    Ok(prelude)
}

fn encode<T: Serialize>(what: &'static str, value: &T) -> Result<Vec<u8>, WriteError> {
    postcard::to_stdvec(value).map_err(|e| WriteError::Encode {
        what,
        message: e.to_string(),
    })
}

fn check_block_len(what: &'static str, len: usize) -> Result<(), WriteError> {
    if len > MAX_BLOCK_BODY_LEN {
        return Err(WriteError::TooLarge {
            what,
            len,
            max: MAX_BLOCK_BODY_LEN,
        });
    }
    Ok(())
}
