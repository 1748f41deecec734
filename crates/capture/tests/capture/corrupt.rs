//! The damaged files of `testdata/corrupt/`: how they are made, and what a
//! reader must say about each.
//!
//! `valid.nixcap` is written by the writer from `reference_steps`. Every
//! other file is derived from it by plain byte surgery (cuts, bit flips,
//! insertions), or, where a frame's contents must change, by re-wrapping the
//! changed payload in a zstd frame made of raw blocks, which does not depend on
//! the zstd library's compressor. The derived files therefore depend only on
//! `valid.nixcap`, and the test checks that the committed files are exactly
//! what the derivation produces.
//!
//! Regenerate everything with
//! `NIXCAP_REGEN=1 cargo test -p nixcap-capture --test capture corrupt_files_are_reproducible_and_diagnosed`
//! (only that test: the others read the files while it rewrites them).

use std::collections::BTreeMap;
use std::path::PathBuf;

use nixcap_capture::format::{self, Envelope};
use nixcap_capture::{
    read_capture, read_index, FooterStatus, FrameProblem, Part, ReadError, ReadErrorKind, Reader,
};
use std::io::Cursor;

use crate::support::{manual_frames, noise, read_all, write_steps, Step};
use nixcap_capture::{CloseReason, Direction, PeerCred};

/// The end time of the reference capture.
pub const REFERENCE_END: u64 = 900_000_000;

/// The script of `valid.nixcap`: three block frames, four connections.
pub fn reference_steps() -> Vec<Step> {
    let data = |conn, direction, t, bytes: &[u8]| Step::Data {
        conn,
        direction,
        t,
        bytes: bytes.to_vec(),
    };
    let c2s = Direction::ClientToServer;
    let s2c = Direction::ServerToClient;
    vec![
        Step::Annotate {
            t: 0,
            text: "reference capture for damage tests".to_owned(),
        },
        Step::Open {
            conn: 1,
            t: 1_000_000,
            peer: Some(PeerCred {
                pid: Some(31337),
                uid: 1000,
                gid: 100,
            }),
            metadata: BTreeMap::from([("upstream".to_owned(), "daemon.sock".to_owned())]),
        },
        data(1, c2s, 1_100_000, &0x6e69_7863u64.to_le_bytes()),
        data(1, s2c, 1_200_000, &0x6478_696fu64.to_le_bytes()),
        Step::Open {
            conn: 2,
            t: 1_500_000,
            peer: None,
            metadata: BTreeMap::new(),
        },
        data(2, c2s, 1_600_000, b"request on connection two"),
        // Frame 0 ends here.
        Step::Flush,
        data(1, c2s, 100_000_000, &noise(300, 1)),
        data(2, s2c, 150_000_000, &b"a repetitive answer ".repeat(12)),
        Step::Close {
            conn: 2,
            t: 200_000_000,
            reason: CloseReason::CleanEof,
        },
        data(1, s2c, 250_000_000, &noise(200, 2)),
        // Frame 1 ends here.
        Step::Flush,
        Step::Open {
            conn: 3,
            t: 300_000_000,
            peer: None,
            metadata: BTreeMap::new(),
        },
        Step::Close {
            conn: 3,
            t: 310_000_000,
            reason: CloseReason::UpstreamUnreachable {
                message: "connection refused".to_owned(),
            },
        },
        data(1, c2s, 400_000_000, b"last words"),
        Step::Close {
            conn: 1,
            t: 500_000_000,
            reason: CloseReason::Reset,
        },
        Step::Open {
            conn: 4,
            t: 600_000_000,
            peer: None,
            metadata: BTreeMap::new(),
        },
        // Frame 2 is written by `finish`, which also closes connection 4.
    ]
}

pub fn corrupt_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata/corrupt")
}

/// Frame layout of the reference file, read from its footer.
struct Layout {
    header_end: u64,
    /// (offset, total length including the envelope, blocks) per frame, the footer frame last.
    frames: Vec<(u64, u64, u32)>,
    trailer: u64,
}

fn layout(valid: &[u8]) -> Layout {
    let index = read_index(Cursor::new(valid)).unwrap();
    let FooterStatus::Present(footer) = index.footer else {
        panic!("the reference file has no footer");
    };
    let trailer = valid.len() as u64 - format::TRAILER_LEN as u64;
    let mut frames: Vec<(u64, u64, u32)> = footer
        .frame_index
        .iter()
        .map(|e| {
            (
                e.offset,
                format::ENVELOPE_LEN as u64 + u64::from(e.compressed_len),
                e.blocks,
            )
        })
        .collect();
    let footer_offset = frames.last().map_or(index.header_len, |f| f.0 + f.1);
    frames.push((footer_offset, trailer - footer_offset, 1));
    Layout {
        header_end: index.header_len,
        frames,
        trailer,
    }
}

/// A zstd frame holding `content` in raw (stored) blocks, per RFC 8878.
pub fn raw_zstd_frame(content: &[u8]) -> Vec<u8> {
    let mut out = vec![0x28, 0xB5, 0x2F, 0xFD];
    // Frame header descriptor: 4-byte content size, single segment.
    out.push(0b1010_0000);
    out.extend_from_slice(&(content.len() as u32).to_le_bytes());
    let mut chunks = content.chunks(128 * 1024).peekable();
    if chunks.peek().is_none() {
        out.extend_from_slice(&[1, 0, 0]);
    }
    while let Some(chunk) = chunks.next() {
        let last = u32::from(chunks.peek().is_none());
        let header = last | ((chunk.len() as u32) << 3);
        out.extend_from_slice(&header.to_le_bytes()[..3]);
        out.extend_from_slice(chunk);
    }
    out
}

/// Replaces frame `index` of `valid` by one holding `payload` (stored raw).
fn replace_frame(valid: &[u8], layout: &Layout, index: usize, payload: &[u8]) -> Vec<u8> {
    let (offset, len, _) = layout.frames[index];
    let compressed = raw_zstd_frame(payload);
    let envelope = Envelope {
        compressed_len: compressed.len() as u32,
        uncompressed_len: payload.len() as u32,
        payload_crc: format::crc32c(&compressed),
    };
    let mut out = valid[..offset as usize].to_vec();
    out.extend_from_slice(&envelope.encode());
    out.extend_from_slice(&compressed);
    out.extend_from_slice(&valid[(offset + len) as usize..]);
    out
}

/// The decompressed payload of frame `index`.
fn frame_payload(valid: &[u8], layout: &Layout, index: usize) -> Vec<u8> {
    let (offset, len, _) = layout.frames[index];
    let start = offset as usize + format::ENVELOPE_LEN;
    let compressed = &valid[start..(offset + len) as usize];
    let uncompressed_len = format::u32_le(&valid[offset as usize + 8..]);
    zstd::bulk::decompress(compressed, uncompressed_len as usize).unwrap()
}

/// The offsets (within a decompressed payload) of its blocks.
fn block_offsets(payload: &[u8]) -> Vec<usize> {
    let mut offsets = Vec::new();
    let mut at = 0;
    while at < payload.len() {
        offsets.push(at);
        let (len, used) = format::get_varint_u32(&payload[at + 1..]).unwrap();
        at += 1 + used + len as usize;
    }
    offsets
}

fn flip(bytes: &[u8], offset: u64, bit: u8) -> Vec<u8> {
    let mut out = bytes.to_vec();
    out[offset as usize] ^= 1 << bit;
    out
}

/// What reading a damaged file must report.
struct Expect {
    /// Whether the file is not recognisably a capture (exit code 2 of `verify`).
    unreadable: bool,
    /// The problem.
    kind: fn(&ReadErrorKind) -> bool,
    /// Where it is.
    offset: u64,
    frame_index: Option<u64>,
    conn: Option<u64>,
    /// Blocks delivered before the problem (`None`: the header is unreadable).
    blocks: Option<usize>,
}

struct Case {
    name: &'static str,
    bytes: Vec<u8>,
    expect: Expect,
}

fn cases(valid: &[u8]) -> Vec<Case> {
    let l = layout(valid);
    let blocks_before = |frame: usize| {
        l.frames[..frame]
            .iter()
            .map(|f| f.2 as usize)
            .sum::<usize>()
    };
    let all_blocks = blocks_before(l.frames.len() - 1);
    let (f1_offset, f1_len, _) = l.frames[1];
    let mut cases = Vec::new();
    let mut case = |name, bytes, expect| {
        cases.push(Case {
            name,
            bytes,
            expect,
        })
    };

    case(
        "empty.nixcap",
        Vec::new(),
        Expect {
            unreadable: true,
            kind: |k| matches!(k, ReadErrorKind::Empty),
            offset: 0,
            frame_index: None,
            conn: None,
            blocks: None,
        },
    );
    case(
        "wrong-magic.nixcap",
        flip(valid, 1, 0),
        Expect {
            unreadable: true,
            kind: |k| matches!(k, ReadErrorKind::BadMagic { found } if found.len() == 8),
            offset: 0,
            frame_index: None,
            conn: None,
            blocks: None,
        },
    );
    case(
        "future-major.nixcap",
        {
            let mut v = valid.to_vec();
            v[8] = 2;
            v
        },
        Expect {
            unreadable: true,
            kind: |k| k.to_string() == "format 2.0 is newer than this nixcap supports (1.x)",
            offset: 8,
            frame_index: None,
            conn: None,
            blocks: None,
        },
    );
    case(
        "truncated-in-magic.nixcap",
        valid[..5].to_vec(),
        Expect {
            unreadable: true,
            kind: |k| {
                matches!(
                    k,
                    ReadErrorKind::Truncated {
                        part: Part::Prelude,
                        got: 5,
                        ..
                    }
                )
            },
            offset: 0,
            frame_index: None,
            conn: None,
            blocks: None,
        },
    );
    case(
        "truncated-mid-header.nixcap",
        valid[..(l.header_end / 2 + 8) as usize].to_vec(),
        Expect {
            unreadable: false,
            kind: |k| {
                matches!(
                    k,
                    ReadErrorKind::Truncated {
                        part: Part::Header,
                        ..
                    }
                )
            },
            offset: format::PRELUDE_LEN as u64,
            frame_index: None,
            conn: None,
            blocks: None,
        },
    );
    case(
        "bitflip-header.nixcap",
        flip(valid, 20, 3),
        Expect {
            unreadable: false,
            kind: |k| matches!(k, ReadErrorKind::CorruptHeader { problem } if problem.contains("checksum")),
            offset: 0,
            frame_index: None,
            conn: None,
            blocks: None,
        },
    );
    case(
        "truncated-after-header.nixcap",
        valid[..l.header_end as usize].to_vec(),
        Expect {
            unreadable: false,
            kind: |k| matches!(k, ReadErrorKind::MissingFooter { frames: 0 }),
            offset: l.header_end,
            frame_index: None,
            conn: None,
            blocks: Some(0),
        },
    );
    case(
        "truncated-mid-envelope.nixcap",
        valid[..(f1_offset + 10) as usize].to_vec(),
        Expect {
            unreadable: false,
            kind: |k| {
                matches!(
                    k,
                    ReadErrorKind::Truncated {
                        part: Part::FrameEnvelope,
                        needed: 20,
                        got: 10
                    }
                )
            },
            offset: f1_offset,
            frame_index: Some(1),
            conn: None,
            blocks: Some(blocks_before(1)),
        },
    );
    case(
        "truncated-mid-frame.nixcap",
        valid[..(f1_offset + f1_len / 2) as usize].to_vec(),
        Expect {
            unreadable: false,
            kind: |k| {
                matches!(
                    k,
                    ReadErrorKind::Truncated {
                        part: Part::FramePayload,
                        ..
                    }
                )
            },
            offset: f1_offset,
            frame_index: Some(1),
            conn: None,
            blocks: Some(blocks_before(1)),
        },
    );
    case(
        "truncated-after-frame.nixcap",
        valid[..(f1_offset + f1_len) as usize].to_vec(),
        Expect {
            unreadable: false,
            kind: |k| matches!(k, ReadErrorKind::MissingFooter { frames: 2 }),
            offset: f1_offset + f1_len,
            frame_index: None,
            conn: None,
            blocks: Some(blocks_before(2)),
        },
    );
    case(
        "truncated-before-trailer.nixcap",
        valid[..l.trailer as usize].to_vec(),
        Expect {
            unreadable: false,
            kind: |k| {
                matches!(
                    k,
                    ReadErrorKind::Truncated {
                        part: Part::Trailer,
                        got: 0,
                        ..
                    }
                )
            },
            offset: l.trailer,
            frame_index: None,
            conn: None,
            blocks: Some(all_blocks),
        },
    );
    case(
        "truncated-mid-trailer.nixcap",
        valid[..(l.trailer + 10) as usize].to_vec(),
        Expect {
            unreadable: false,
            kind: |k| {
                matches!(
                    k,
                    ReadErrorKind::Truncated {
                        part: Part::Trailer,
                        got: 10,
                        ..
                    }
                )
            },
            offset: l.trailer,
            frame_index: None,
            conn: None,
            blocks: Some(all_blocks),
        },
    );
    case(
        "bitflip-payload.nixcap",
        flip(valid, f1_offset + f1_len / 2, 5),
        Expect {
            unreadable: false,
            kind: |k| {
                matches!(
                    k,
                    ReadErrorKind::CorruptFrame {
                        problem: FrameProblem::PayloadChecksum { .. }
                    }
                )
            },
            offset: f1_offset,
            frame_index: Some(1),
            conn: None,
            blocks: Some(blocks_before(1)),
        },
    );
    case(
        "bitflip-envelope-length.nixcap",
        flip(valid, f1_offset + 5, 2),
        Expect {
            unreadable: false,
            kind: |k| {
                matches!(
                    k,
                    ReadErrorKind::CorruptFrame {
                        problem: FrameProblem::EnvelopeChecksum { .. }
                    }
                )
            },
            offset: f1_offset,
            frame_index: Some(1),
            conn: None,
            blocks: Some(blocks_before(1)),
        },
    );
    case(
        "bitflip-trailer.nixcap",
        flip(valid, l.trailer + 4, 0),
        Expect {
            unreadable: false,
            kind: |k| matches!(k, ReadErrorKind::BadTrailer { problem } if problem.contains("checksum")),
            offset: l.trailer,
            frame_index: None,
            conn: None,
            blocks: Some(all_blocks),
        },
    );
    case(
        "garbage-between-frames.nixcap",
        {
            let mut v = valid[..f1_offset as usize].to_vec();
            v.extend_from_slice(b"JUNK");
            v.extend_from_slice(&valid[f1_offset as usize..]);
            v
        },
        Expect {
            unreadable: false,
            kind: |k| matches!(k, ReadErrorKind::CorruptFrame { problem: FrameProblem::BadTag { found } } if found == b"JUNK"),
            offset: f1_offset,
            frame_index: Some(1),
            conn: None,
            blocks: Some(blocks_before(1)),
        },
    );
    case(
        "trailing-garbage.nixcap",
        {
            let mut v = valid.to_vec();
            v.extend_from_slice(b"appended by a careless tool\n");
            v
        },
        Expect {
            unreadable: false,
            kind: |k| matches!(k, ReadErrorKind::TrailingData { len: 28 }),
            offset: valid.len() as u64,
            frame_index: None,
            conn: None,
            blocks: Some(all_blocks),
        },
    );
    // Frame 1 re-wrapped with one payload byte of connection 1 changed: every
    // frame checksum is valid, only the stream hash can tell.
    let mut changed = frame_payload(valid, &l, 1);
    assert_eq!(changed[block_offsets(&changed)[3]], format::BLOCK_DATA);
    // The last byte of frame 1 is the last byte of connection 1's second noise chunk.
    let last = changed.len() - 1;
    changed[last] ^= 0x01;
    let frame2_offset = f1_offset + (format::ENVELOPE_LEN + raw_zstd_frame(&changed).len()) as u64;
    case(
        "hash-mismatch.nixcap",
        replace_frame(valid, &l, 1, &changed),
        Expect {
            unreadable: false,
            kind: |k| {
                matches!(
                    k,
                    ReadErrorKind::HashMismatch {
                        conn: 1,
                        direction: Direction::ServerToClient,
                        ..
                    }
                )
            },
            offset: frame2_offset,
            frame_index: Some(2),
            conn: Some(1),
            blocks: Some(blocks_before(2) + 3),
        },
    );
    // Frame 1 re-wrapped with its second block's length pointing past the end.
    case(
        "bad-block-length.nixcap",
        {
            let mut payload = frame_payload(valid, &l, 1);
            let second = block_offsets(&payload)[1];
            payload[second + 1] = 0x7f;
            payload.truncate(second + 2 + 10);
            replace_frame(valid, &l, 1, &payload)
        },
        Expect {
            unreadable: false,
            kind: |k| {
                matches!(
                    k,
                    ReadErrorKind::BadBlock {
                        block_type: 0x02,
                        ..
                    }
                )
            },
            offset: f1_offset,
            frame_index: Some(1),
            conn: None,
            blocks: Some(blocks_before(1) + 1),
        },
    );
    // Frame 0 re-wrapped with a data block moved to a connection never opened.
    case(
        "unknown-connection.nixcap",
        {
            let mut payload = frame_payload(valid, &l, 0);
            let offsets = block_offsets(&payload);
            // Block 2 is the first data block of connection 1; its body starts with the id.
            let body = offsets[2] + 2;
            assert_eq!(payload[body], 1);
            payload[body] = 5;
            replace_frame(valid, &l, 0, &payload)
        },
        Expect {
            unreadable: false,
            kind: |k| matches!(k, ReadErrorKind::Inconsistent { problem } if problem.contains("never opened")),
            offset: l.header_end,
            frame_index: Some(0),
            conn: Some(5),
            blocks: Some(2),
        },
    );
    cases
}

/// Reads a file to its first problem; returns the problem and the number of
/// blocks delivered before it, the footer not counted (`None` when the header
/// itself could not be read).
fn first_problem(bytes: &[u8]) -> (Option<ReadError>, Option<usize>) {
    let reader = match Reader::new(bytes) {
        Ok(reader) => reader,
        Err(err) => return (Some(err), None),
    };
    let mut blocks = 0;
    for item in reader {
        match item {
            Ok(nixcap_capture::Block::Footer(_)) => {}
            Ok(_) => blocks += 1,
            Err(err) => return (Some(err), Some(blocks)),
        }
    }
    (None, Some(blocks))
}

fn check(case: &Case) -> Result<(), String> {
    let expect = &case.expect;
    let (error, blocks) = first_problem(&case.bytes);
    let Some(err) = error else {
        return Err("no problem reported".to_owned());
    };
    let message = err.to_string();
    if !(expect.kind)(&err.kind) {
        return Err(format!("unexpected problem: {message}"));
    }
    if err.is_unreadable() != expect.unreadable {
        return Err(format!(
            "unreadable should be {}: {message}",
            expect.unreadable
        ));
    }
    let loc = &err.location;
    let found = (loc.offset, loc.frame_index, loc.conn);
    let wanted = (expect.offset, expect.frame_index, expect.conn);
    if found != wanted {
        return Err(format!(
            "located at (offset, frame, connection) {found:?}, expected {wanted:?}: {message}"
        ));
    }
    if !message.contains(&format!("file offset {}", expect.offset)) {
        return Err(format!("the message does not name the offset: {message}"));
    }
    if let Some(frame) = expect.frame_index {
        if !message.contains(&format!("frame {frame}")) {
            return Err(format!("the message does not name the frame: {message}"));
        }
    }
    if let Some(conn) = expect.conn {
        if !message.contains(&format!("connection {conn}")) {
            return Err(format!(
                "the message does not name the connection: {message}"
            ));
        }
    }
    if blocks != expect.blocks {
        return Err(format!(
            "{blocks:?} blocks delivered, expected {:?}",
            expect.blocks
        ));
    }
    Ok(())
}

#[test]
fn corrupt_files_are_reproducible_and_diagnosed() {
    let dir = corrupt_dir();
    let regen = std::env::var_os("NIXCAP_REGEN").is_some_and(|v| v == "1");
    let valid_path = dir.join("valid.nixcap");
    if regen {
        std::fs::create_dir_all(&dir).unwrap();
        let valid = write_steps(&reference_steps(), manual_frames(), Some(REFERENCE_END));
        std::fs::write(&valid_path, valid).unwrap();
    }
    let valid = std::fs::read(&valid_path)
        .unwrap_or_else(|e| panic!("{}: {e}; run with NIXCAP_REGEN=1", valid_path.display()));
    let (_, _, error) = read_all(&valid);
    assert!(error.is_none(), "valid.nixcap must be intact: {error:?}");

    let readme = std::fs::read_to_string(dir.join("README.md")).unwrap();
    let cases = cases(&valid);
    let mut failures = Vec::new();
    for case in &cases {
        let path = dir.join(case.name);
        if regen {
            std::fs::write(&path, &case.bytes).unwrap();
        }
        match std::fs::read(&path) {
            Ok(committed) if committed == case.bytes => {}
            Ok(_) => failures.push(format!(
                "{}: differs from its derivation; run with NIXCAP_REGEN=1",
                case.name
            )),
            Err(e) => failures.push(format!("{}: {e}; run with NIXCAP_REGEN=1", case.name)),
        }
        if let Err(problem) = check(case) {
            failures.push(format!("{}: {problem}", case.name));
        }
        if !readme.contains(&format!("`{}`", case.name)) {
            failures.push(format!("{}: not described in README.md", case.name));
        }
    }
    // Every file in the directory is a known case.
    for entry in std::fs::read_dir(&dir).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if name != "README.md" && name != "valid.nixcap" && !cases.iter().any(|c| c.name == name) {
            failures.push(format!("{name}: not produced by the generator"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn read_capture_keeps_everything_before_the_damage() {
    let valid = std::fs::read(corrupt_dir().join("valid.nixcap")).unwrap();
    let cut = std::fs::read(corrupt_dir().join("truncated-mid-frame.nixcap")).unwrap();
    let capture = read_capture(&cut[..]).unwrap();
    let damage = capture.damage.as_ref().unwrap();
    assert_eq!(damage.location.frame_index, Some(1));
    assert_eq!(damage.location.open_connections, [1, 2]);
    assert_eq!(damage.location.last_good_t_nanos, Some(1_600_000));
    let full = read_capture(&valid[..]).unwrap();
    // Connection 1's first two chunks are in frame 0 and survive.
    let survived = capture.connection(1).unwrap();
    assert_eq!(survived.chunks[..], full.connection(1).unwrap().chunks[..2]);
    assert!(survived.closed.is_none());
}

#[test]
fn footer_fast_path_reports_missing_and_damaged_footers() {
    let dir = corrupt_dir();
    let status = |name: &str| {
        read_index(Cursor::new(std::fs::read(dir.join(name)).unwrap())).map(|i| i.footer)
    };
    assert!(matches!(
        status("valid.nixcap"),
        Ok(FooterStatus::Present(_))
    ));
    assert!(matches!(
        status("truncated-after-frame.nixcap"),
        Ok(FooterStatus::Missing)
    ));
    assert!(matches!(
        status("truncated-mid-frame.nixcap"),
        Ok(FooterStatus::Missing)
    ));
    assert!(matches!(
        status("bitflip-trailer.nixcap"),
        Ok(FooterStatus::Damaged(_))
    ));
    assert!(matches!(
        status("trailing-garbage.nixcap"),
        Ok(FooterStatus::Missing)
    ));
    assert!(status("empty.nixcap").is_err());
    assert!(status("future-major.nixcap").is_err());
}

#[test]
fn every_truncation_keeps_every_complete_frame() {
    let valid = std::fs::read(corrupt_dir().join("valid.nixcap")).unwrap();
    let l = layout(&valid);
    for cut in 0..valid.len() {
        let prefix = &valid[..cut];
        let Ok(reader) = Reader::new(prefix) else {
            assert!((cut as u64) < l.header_end, "header rejected at cut {cut}");
            continue;
        };
        let mut blocks = 0;
        let mut error = None;
        for item in reader {
            match item {
                Ok(_) => blocks += 1,
                Err(err) => error = Some(err),
            }
        }
        let error = error.unwrap_or_else(|| panic!("cut at {cut} read as intact"));
        let complete: usize = l
            .frames
            .iter()
            .filter(|f| f.0 + f.1 <= cut as u64)
            .map(|f| f.2 as usize)
            .sum();
        assert_eq!(blocks, complete, "cut at {cut}: {error}");
        assert!(!error.is_unreadable(), "cut at {cut}: {error}");
    }
}

#[test]
fn every_single_bit_flip_is_detected() {
    let valid = std::fs::read(corrupt_dir().join("valid.nixcap")).unwrap();
    for offset in 0..valid.len() {
        for bit in 0..8 {
            let damaged = flip(&valid, offset as u64, bit);
            let detected = match Reader::new(&damaged[..]) {
                Err(_) => true,
                Ok(reader) => reader.into_iter().any(|item| item.is_err()),
            };
            assert!(
                detected,
                "flipping bit {bit} at offset {offset} went unnoticed"
            );
        }
    }
}
