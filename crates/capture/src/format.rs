//! The on-disk layout: magic numbers, limits, checksums, envelopes and block bodies.
//!
//! Everything here follows `docs/FORMAT.md` byte for byte; when one changes,
//! the other must change with it (the `format_bytes` test parses a file with
//! an independent reader written from that document).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::types::{
    Annotation, CloseReason, ConnectionClosed, ConnectionOpened, ConnectionSummary, Data,
    Direction, Footer, FrameIndexEntry, Header, PeerCred, StoreObject, StoreObjectKind,
    StreamDigest,
};

/// The first eight bytes of every capture file.
pub const MAGIC: [u8; 8] = *b"\x89NIXCAP\n";
/// The major format version this crate writes and reads.
pub const FORMAT_MAJOR: u16 = 1;
/// The minor format version this crate writes.
pub const FORMAT_MINOR: u16 = 1;

/// The tag that starts every frame envelope.
pub const FRAME_TAG: [u8; 4] = *b"NXFR";
/// The tag that starts the trailer.
pub const TRAILER_TAG: [u8; 4] = *b"NXTR";

/// Length of the fixed part of the file prelude (magic, versions, header length).
pub const PRELUDE_LEN: usize = 16;
/// Length of a frame envelope (everything before the compressed payload).
pub const ENVELOPE_LEN: usize = 20;
/// Length of the trailer.
pub const TRAILER_LEN: usize = 24;

/// Largest header body a reader accepts (checked before allocating).
pub const MAX_HEADER_BODY_LEN: u32 = 1 << 20;
/// Largest decompressed frame payload a reader accepts (checked before allocating).
pub const MAX_FRAME_UNCOMPRESSED_LEN: u32 = 64 << 20;
/// Largest compressed frame payload a reader accepts (checked before allocating).
/// It is above zstd's worst-case expansion of `MAX_FRAME_UNCOMPRESSED_LEN` bytes.
pub const MAX_FRAME_COMPRESSED_LEN: u32 = 65 << 20;
/// Largest body of a non-footer block the writer produces.
pub const MAX_BLOCK_BODY_LEN: usize = 32 << 20;
/// Data longer than this is split by the writer into several data blocks.
pub const MAX_DATA_CHUNK_LEN: usize = 16 << 20;
/// The writer clamps `WriterOptions::frame_max_bytes` to this value.
pub const MAX_FRAME_MAX_BYTES: usize = 32 << 20;
/// Connections open at the same time, in the writer and in the reader.
pub const MAX_OPEN_CONNECTIONS: usize = 65_536;
/// Frames the writer lists in the footer index; later frames are left out.
pub const MAX_INDEXED_FRAMES: usize = 262_144;
/// Connections the writer lists in the footer index; later ones are left out.
pub const MAX_INDEXED_CONNECTIONS: usize = 500_000;

/// Block type of a connection-opened block.
pub const BLOCK_CONNECTION_OPENED: u8 = 0x01;
/// Block type of a data block.
pub const BLOCK_DATA: u8 = 0x02;
/// Block type of a connection-closed block.
pub const BLOCK_CONNECTION_CLOSED: u8 = 0x03;
/// Block type of an annotation block.
pub const BLOCK_ANNOTATION: u8 = 0x04;
/// Block type of the footer block.
pub const BLOCK_FOOTER: u8 = 0x05;
/// Block type of a store-object block (format 1.1).
pub const BLOCK_STORE_OBJECT: u8 = 0x06;
/// Block type of a store-object data block (format 1.1).
pub const BLOCK_STORE_OBJECT_DATA: u8 = 0x07;
/// Store objects the reader tracks as incomplete at the same time.
pub const MAX_OPEN_STORE_OBJECTS: usize = 65_536;

/// CRC-32C (Castagnoli), reflected, initial value and final XOR `0xFFFF_FFFF`.
/// The check value of `b"123456789"` is `0xE306_9283`.
pub fn crc32c(bytes: &[u8]) -> u32 {
    crc32c_update(0, bytes)
}

/// Continues a CRC-32C over more bytes; `crc32c_update(crc32c(a), b) == crc32c(a ++ b)`.
pub fn crc32c_update(crc: u32, bytes: &[u8]) -> u32 {
    // The crc32c crate uses the CPU's CRC32 instruction where there is one
    // and a table-driven fallback elsewhere; every frame of every capture
    // goes through here, so a byte-at-a-time loop was the recorder's hottest
    // spot (see docs/BENCHMARKS.md).
    crc32c::crc32c_append(crc, bytes)
}

/// Appends `value` as an unsigned LEB128 varint (postcard's integer encoding).
pub fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    loop {
        let low = (value & 0x7F) as u8;
        value >>= 7;
        if value == 0 {
            out.push(low);
            return;
        }
        out.push(low | 0x80);
    }
}

/// Reads an unsigned LEB128 varint of at most five bytes that fits in a `u32`.
/// Returns the value and the number of bytes used, or `None` when malformed or cut short.
pub fn get_varint_u32(bytes: &[u8]) -> Option<(u32, usize)> {
    let mut value: u32 = 0;
    for (i, &byte) in bytes.iter().enumerate().take(5) {
        let low = u32::from(byte & 0x7F);
        if i == 4 && byte > 0x0F {
            return None;
        }
        value |= low << (7 * i);
        if byte & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

/// The fixed 20-byte envelope in front of each frame's compressed payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Envelope {
    /// Length of the compressed payload that follows.
    pub compressed_len: u32,
    /// Length of the payload once decompressed.
    pub uncompressed_len: u32,
    /// CRC-32C of the compressed payload.
    pub payload_crc: u32,
}

impl Envelope {
    /// Encodes the envelope, including its own checksum.
    pub fn encode(&self) -> [u8; ENVELOPE_LEN] {
        let mut out = [0u8; ENVELOPE_LEN];
        out[0..4].copy_from_slice(&FRAME_TAG);
        out[4..8].copy_from_slice(&self.compressed_len.to_le_bytes());
        out[8..12].copy_from_slice(&self.uncompressed_len.to_le_bytes());
        out[12..16].copy_from_slice(&self.payload_crc.to_le_bytes());
        let crc = crc32c(&out[0..16]);
        out[16..20].copy_from_slice(&crc.to_le_bytes());
        out
    }
}

/// The fixed 24-byte trailer at the very end of a finished file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trailer {
    /// File offset of the footer frame's envelope.
    pub footer_offset: u64,
    /// Number of frames in the file, the footer frame included.
    pub frames: u64,
}

impl Trailer {
    /// Encodes the trailer, including its checksum.
    pub fn encode(&self) -> [u8; TRAILER_LEN] {
        let mut out = [0u8; TRAILER_LEN];
        out[0..4].copy_from_slice(&TRAILER_TAG);
        out[4..12].copy_from_slice(&self.footer_offset.to_le_bytes());
        out[12..20].copy_from_slice(&self.frames.to_le_bytes());
        let crc = crc32c(&out[0..20]);
        out[20..24].copy_from_slice(&crc.to_le_bytes());
        out
    }

    /// Decodes a trailer, checking its tag and checksum.
    pub fn decode(bytes: &[u8; TRAILER_LEN]) -> Result<Trailer, String> {
        if bytes[0..4] != TRAILER_TAG {
            return Err(format!("bad trailer tag {:02x?}", &bytes[0..4]));
        }
        let stored = u32_le(&bytes[20..24]);
        let computed = crc32c(&bytes[0..20]);
        if stored != computed {
            return Err(format!(
                "trailer checksum mismatch (stored {stored:#010x}, computed {computed:#010x})"
            ));
        }
        Ok(Trailer {
            footer_offset: u64_le(&bytes[4..12]),
            frames: u64_le(&bytes[12..20]),
        })
    }
}

/// Reads a little-endian `u32` from the first four bytes of `bytes`.
pub fn u32_le(bytes: &[u8]) -> u32 {
    let mut buf = [0u8; 4];
    buf.copy_from_slice(&bytes[..4]);
    u32::from_le_bytes(buf)
}

/// Reads a little-endian `u64` from the first eight bytes of `bytes`.
pub fn u64_le(bytes: &[u8]) -> u64 {
    let mut buf = [0u8; 8];
    buf.copy_from_slice(&bytes[..8]);
    u64::from_le_bytes(buf)
}

/// The postcard body of the file header.
#[derive(Debug, Serialize, Deserialize)]
pub struct HeaderBody {
    pub tool_version: String,
    pub start_unix_nanos: u64,
    pub metadata: BTreeMap<String, String>,
}

impl From<&Header> for HeaderBody {
    fn from(h: &Header) -> Self {
        HeaderBody {
            tool_version: h.tool_version.clone(),
            start_unix_nanos: h.start_unix_nanos,
            metadata: h.metadata.clone(),
        }
    }
}

impl From<HeaderBody> for Header {
    fn from(h: HeaderBody) -> Self {
        Header {
            tool_version: h.tool_version,
            start_unix_nanos: h.start_unix_nanos,
            metadata: h.metadata,
        }
    }
}

/// The postcard body of a connection-opened block.
#[derive(Debug, Serialize, Deserialize)]
pub struct OpenedBody {
    pub conn: u64,
    pub t_nanos: u64,
    pub peer: Option<PeerCredBody>,
    pub metadata: BTreeMap<String, String>,
}

/// The postcard encoding of peer credentials.
#[derive(Debug, Serialize, Deserialize)]
pub struct PeerCredBody {
    pub pid: Option<u32>,
    pub uid: u32,
    pub gid: u32,
}

/// The postcard head of a data block; the raw bytes follow it up to the end of the body.
#[derive(Debug, Serialize, Deserialize)]
pub struct DataHead {
    pub conn: u64,
    pub direction: u8,
    pub t_nanos: u64,
}

/// The postcard body of a connection-closed block.
#[derive(Debug, Serialize, Deserialize)]
pub struct ClosedBody {
    pub conn: u64,
    pub t_nanos: u64,
    pub reason_code: u32,
    pub reason_message: String,
    pub c2s_bytes: u64,
    pub c2s_sha256: [u8; 32],
    pub s2c_bytes: u64,
    pub s2c_sha256: [u8; 32],
}

/// The postcard body of an annotation block.
#[derive(Debug, Serialize, Deserialize)]
pub struct AnnotationBody {
    pub t_nanos: u64,
    pub text: String,
}

/// The postcard body of a store-object block.
#[derive(Debug, Serialize, Deserialize)]
pub struct StoreObjectBody {
    pub object: u64,
    pub t_nanos: u64,
    pub kind: u32,
    pub name: String,
    pub size: u64,
    pub sha256: [u8; 32],
    pub missing: String,
}

impl From<&StoreObject> for StoreObjectBody {
    fn from(b: &StoreObject) -> Self {
        StoreObjectBody {
            object: b.object,
            t_nanos: b.t_nanos,
            kind: b.kind.code(),
            name: b.name.clone(),
            size: b.size,
            sha256: b.sha256,
            missing: b.missing.clone(),
        }
    }
}

impl From<StoreObjectBody> for StoreObject {
    fn from(b: StoreObjectBody) -> Self {
        StoreObject {
            object: b.object,
            t_nanos: b.t_nanos,
            kind: StoreObjectKind::from_code(b.kind),
            name: b.name,
            size: b.size,
            sha256: b.sha256,
            missing: b.missing,
        }
    }
}

/// The postcard head of a store-object data block; the raw bytes follow it.
#[derive(Debug, Serialize, Deserialize)]
pub struct StoreObjectDataHead {
    pub object: u64,
}

/// The postcard body of the footer block.
#[derive(Debug, Serialize, Deserialize)]
pub struct FooterBody {
    pub end_nanos: u64,
    pub frames: u64,
    pub blocks: u64,
    pub annotations: u64,
    pub uncompressed_bytes: u64,
    pub compressed_bytes: u64,
    pub bytes_c2s: u64,
    pub bytes_s2c: u64,
    pub connections_complete: bool,
    pub connections: Vec<ConnectionSummaryBody>,
    pub frame_index_complete: bool,
    pub frame_index: Vec<FrameIndexBody>,
}

/// The postcard encoding of one footer connection entry.
#[derive(Debug, Serialize, Deserialize)]
pub struct ConnectionSummaryBody {
    pub conn: u64,
    pub opened_nanos: u64,
    pub closed_nanos: u64,
    pub reason_code: u32,
    pub bytes_c2s: u64,
    pub bytes_s2c: u64,
    pub first_frame: u64,
    pub last_frame: u64,
}

/// The postcard encoding of one footer frame entry.
#[derive(Debug, Serialize, Deserialize)]
pub struct FrameIndexBody {
    pub offset: u64,
    pub compressed_len: u32,
    pub uncompressed_len: u32,
    pub blocks: u32,
    pub first_t_nanos: u64,
    pub last_t_nanos: u64,
}

impl From<&ConnectionOpened> for OpenedBody {
    fn from(b: &ConnectionOpened) -> Self {
        OpenedBody {
            conn: b.conn,
            t_nanos: b.t_nanos,
            peer: b.peer.map(|p| PeerCredBody {
                pid: p.pid,
                uid: p.uid,
                gid: p.gid,
            }),
            metadata: b.metadata.clone(),
        }
    }
}

impl From<OpenedBody> for ConnectionOpened {
    fn from(b: OpenedBody) -> Self {
        ConnectionOpened {
            conn: b.conn,
            t_nanos: b.t_nanos,
            peer: b.peer.map(|p| PeerCred {
                pid: p.pid,
                uid: p.uid,
                gid: p.gid,
            }),
            metadata: b.metadata,
        }
    }
}

impl From<&ConnectionClosed> for ClosedBody {
    fn from(b: &ConnectionClosed) -> Self {
        ClosedBody {
            conn: b.conn,
            t_nanos: b.t_nanos,
            reason_code: b.reason.code(),
            reason_message: b.reason.message().to_owned(),
            c2s_bytes: b.client_to_server.bytes,
            c2s_sha256: b.client_to_server.sha256,
            s2c_bytes: b.server_to_client.bytes,
            s2c_sha256: b.server_to_client.sha256,
        }
    }
}

impl From<ClosedBody> for ConnectionClosed {
    fn from(b: ClosedBody) -> Self {
        ConnectionClosed {
            conn: b.conn,
            t_nanos: b.t_nanos,
            reason: CloseReason::from_code(b.reason_code, b.reason_message),
            client_to_server: StreamDigest {
                bytes: b.c2s_bytes,
                sha256: b.c2s_sha256,
            },
            server_to_client: StreamDigest {
                bytes: b.s2c_bytes,
                sha256: b.s2c_sha256,
            },
        }
    }
}

impl From<&Annotation> for AnnotationBody {
    fn from(b: &Annotation) -> Self {
        AnnotationBody {
            t_nanos: b.t_nanos,
            text: b.text.clone(),
        }
    }
}

impl From<AnnotationBody> for Annotation {
    fn from(b: AnnotationBody) -> Self {
        Annotation {
            t_nanos: b.t_nanos,
            text: b.text,
        }
    }
}

impl From<&Footer> for FooterBody {
    fn from(f: &Footer) -> Self {
        FooterBody {
            end_nanos: f.end_nanos,
            frames: f.frames,
            blocks: f.blocks,
            annotations: f.annotations,
            uncompressed_bytes: f.uncompressed_bytes,
            compressed_bytes: f.compressed_bytes,
            bytes_c2s: f.bytes_client_to_server,
            bytes_s2c: f.bytes_server_to_client,
            connections_complete: f.connections_complete,
            connections: f
                .connections
                .iter()
                .map(|c| ConnectionSummaryBody {
                    conn: c.conn,
                    opened_nanos: c.opened_nanos,
                    closed_nanos: c.closed_nanos,
                    reason_code: c.reason_code,
                    bytes_c2s: c.bytes_client_to_server,
                    bytes_s2c: c.bytes_server_to_client,
                    first_frame: c.first_frame,
                    last_frame: c.last_frame,
                })
                .collect(),
            frame_index_complete: f.frame_index_complete,
            frame_index: f
                .frame_index
                .iter()
                .map(|e| FrameIndexBody {
                    offset: e.offset,
                    compressed_len: e.compressed_len,
                    uncompressed_len: e.uncompressed_len,
                    blocks: e.blocks,
                    first_t_nanos: e.first_t_nanos,
                    last_t_nanos: e.last_t_nanos,
                })
                .collect(),
        }
    }
}

impl From<FooterBody> for Footer {
    fn from(f: FooterBody) -> Self {
        Footer {
            end_nanos: f.end_nanos,
            frames: f.frames,
            blocks: f.blocks,
            annotations: f.annotations,
            uncompressed_bytes: f.uncompressed_bytes,
            compressed_bytes: f.compressed_bytes,
            bytes_client_to_server: f.bytes_c2s,
            bytes_server_to_client: f.bytes_s2c,
            connections_complete: f.connections_complete,
            connections: f
                .connections
                .into_iter()
                .map(|c| ConnectionSummary {
                    conn: c.conn,
                    opened_nanos: c.opened_nanos,
                    closed_nanos: c.closed_nanos,
                    reason_code: c.reason_code,
                    bytes_client_to_server: c.bytes_c2s,
                    bytes_server_to_client: c.bytes_s2c,
                    first_frame: c.first_frame,
                    last_frame: c.last_frame,
                })
                .collect(),
            frame_index_complete: f.frame_index_complete,
            frame_index: f
                .frame_index
                .into_iter()
                .map(|e| FrameIndexEntry {
                    offset: e.offset,
                    compressed_len: e.compressed_len,
                    uncompressed_len: e.uncompressed_len,
                    blocks: e.blocks,
                    first_t_nanos: e.first_t_nanos,
                    last_t_nanos: e.last_t_nanos,
                })
                .collect(),
        }
    }
}

/// Decodes a direction byte.
pub fn direction_from_code(code: u8) -> Option<Direction> {
    match code {
        0 => Some(Direction::ClientToServer),
        1 => Some(Direction::ServerToClient),
        _ => None,
    }
}

/// The zstd frame magic number (RFC 8878, section 3.1.1).
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// The largest block a zstd frame may hold (RFC 8878, `Block_Maximum_Size`).
const ZSTD_MAX_BLOCK: usize = 128 * 1024;

/// Appends to `out` a zstd frame (RFC 8878) that stores `content` as it is,
/// in raw blocks: a frame header with the content size and the
/// single-segment flag, then blocks of at most 128 KiB, each behind a
/// 3-byte block header (type raw, the last one flagged as last). Every zstd
/// decoder reads it; making it costs a copy, where compressing
/// incompressible bytes costs zstd's whole match search first
/// ([`stored_zstd_frame_parts`] gives the same bytes without the copy).
///
/// `content` must be shorter than 4 GiB (frames are at most 64 MiB).
pub fn put_stored_zstd_frame(out: &mut Vec<u8>, content: &[u8]) {
    let mut heads = Vec::new();
    let parts = stored_zstd_frame_parts(content, &mut heads);
    out.reserve(parts.iter().map(|part| part.len()).sum());
    for part in parts {
        out.extend_from_slice(part);
    }
}

/// The bytes of the zstd frame [`put_stored_zstd_frame`] makes, in order,
/// as pieces: the frame header, then per block its header and its slice of
/// `content`, so that a writer can hand them on without copying `content`.
/// The headers are put in `heads` (cleared first); the pieces borrow it.
pub fn stored_zstd_frame_parts<'a>(content: &'a [u8], heads: &'a mut Vec<u8>) -> Vec<&'a [u8]> {
    let blocks = content.len().div_ceil(ZSTD_MAX_BLOCK).max(1);
    heads.clear();
    heads.reserve(4 + 1 + 4 + 3 * blocks);
    heads.extend_from_slice(&ZSTD_MAGIC);
    // Frame header descriptor: content size field of 4 bytes (flag 2),
    // single segment (no window descriptor), no checksum, no dictionary.
    heads.push(0b1010_0000);
    heads.extend_from_slice(&(content.len() as u32).to_le_bytes());
    const FRAME_HEAD: usize = 9;
    if content.is_empty() {
        // An empty frame still has one (empty, last) block.
        heads.extend_from_slice(&[1, 0, 0]);
        let heads: &'a [u8] = heads;
        return vec![heads];
    }
    for (index, chunk) in content.chunks(ZSTD_MAX_BLOCK).enumerate() {
        let last = u32::from(index + 1 == blocks);
        // Block header: bit 0 last block, bits 1-2 type (0, raw), bits 3-23 size.
        let header = last | ((chunk.len() as u32) << 3);
        heads.extend_from_slice(&header.to_le_bytes()[..3]);
    }
    let heads: &'a [u8] = heads;
    let mut parts = Vec::with_capacity(1 + 2 * blocks);
    parts.push(&heads[..FRAME_HEAD]);
    for (index, chunk) in content.chunks(ZSTD_MAX_BLOCK).enumerate() {
        let at = FRAME_HEAD + 3 * index;
        parts.push(&heads[at..at + 3]);
        parts.push(chunk);
    }
    parts
}

/// Appends one block (type byte, varint body length, body) to `out`.
pub fn put_block(out: &mut Vec<u8>, block_type: u8, body_parts: &[&[u8]]) {
    let len: usize = body_parts.iter().map(|p| p.len()).sum();
    out.push(block_type);
    put_varint(out, len as u64);
    for part in body_parts {
        out.extend_from_slice(part);
    }
}

/// Encodes the head of a data block.
pub fn data_head(
    data_conn: u64,
    direction: Direction,
    t_nanos: u64,
) -> Result<Vec<u8>, postcard::Error> {
    postcard::to_stdvec(&DataHead {
        conn: data_conn,
        direction: direction.code(),
        t_nanos,
    })
}

/// Builds a data block value from a decoded head and payload.
pub fn data_from_parts(head: DataHead, direction: Direction, bytes: &[u8]) -> Data {
    Data {
        conn: head.conn,
        direction,
        t_nanos: head.t_nanos,
        bytes: bytes.to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_zstd_frames_decompress_to_their_content() {
        for len in [
            0,
            1,
            1000,
            ZSTD_MAX_BLOCK - 1,
            ZSTD_MAX_BLOCK,
            ZSTD_MAX_BLOCK + 1,
            600_000,
        ] {
            let content: Vec<u8> = (0..len).map(|i| (i * 7 + i / 3) as u8).collect();
            let mut frame = vec![0xaa];
            put_stored_zstd_frame(&mut frame, &content);
            let frame = &frame[1..];
            assert_eq!(
                zstd::bulk::decompress(frame, len.max(1)).expect("a valid zstd frame"),
                content,
                "len {len}"
            );
            // The content size is in the header, for readers that size by it.
            assert_eq!(
                zstd::zstd_safe::get_frame_content_size(frame).ok(),
                Some(Some(len as u64))
            );
            let blocks = len.div_ceil(ZSTD_MAX_BLOCK).max(1);
            assert_eq!(frame.len(), 9 + 3 * blocks + len);
        }
    }

    #[test]
    fn crc32c_check_value() {
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(b""), 0);
        assert_eq!(crc32c_update(crc32c(b"1234"), b"56789"), 0xE306_9283);
    }

    #[test]
    fn varint_round_trip_and_limits() {
        for value in [0u64, 1, 127, 128, 300, 16_383, 16_384, u64::from(u32::MAX)] {
            let mut out = Vec::new();
            put_varint(&mut out, value);
            assert_eq!(get_varint_u32(&out), Some((value as u32, out.len())));
        }
        assert_eq!(get_varint_u32(&[0x80]), None);
        assert_eq!(get_varint_u32(&[0xFF, 0xFF, 0xFF, 0xFF, 0x10]), None);
        assert_eq!(get_varint_u32(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x01]), None);
    }
}
