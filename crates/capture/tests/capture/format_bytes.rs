//! An independent reader written from `docs/FORMAT.md` alone.
//!
//! It uses nothing from nixcap-capture's reading code: its own CRC-32C, its
//! own varints and its own decoding of every body. It parses a file written
//! by the crate's writer and checks every field, so the document and the
//! writer cannot drift apart unnoticed.

use std::collections::BTreeMap;

use nixcap_capture::{
    CloseReason, Direction, Header, PeerCred, StoreObjectKind, Writer, WriterOptions,
};
use sha2::{Digest, Sha256};

/// CRC-32C, bit by bit, as specified in section 1.
fn crc32c(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    crc ^ 0xFFFF_FFFF
}

fn le32(bytes: &[u8]) -> u32 {
    u32::from_le_bytes(bytes[..4].try_into().unwrap())
}

fn le64(bytes: &[u8]) -> u64 {
    u64::from_le_bytes(bytes[..8].try_into().unwrap())
}

/// A cursor over a postcard-encoded body, following the table in section 1.
struct Body<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Body<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Body { bytes, pos: 0 }
    }

    fn byte(&mut self) -> u8 {
        let b = self.bytes[self.pos];
        self.pos += 1;
        b
    }

    fn varint(&mut self, max_len: usize) -> u64 {
        let mut value = 0u64;
        for i in 0..max_len {
            let b = self.byte();
            value |= u64::from(b & 0x7F) << (7 * i);
            if b & 0x80 == 0 {
                return value;
            }
        }
        panic!("varint longer than {max_len} bytes");
    }

    fn u32(&mut self) -> u32 {
        u32::try_from(self.varint(5)).unwrap()
    }

    fn u64(&mut self) -> u64 {
        self.varint(10)
    }

    fn bool(&mut self) -> bool {
        match self.byte() {
            0 => false,
            1 => true,
            other => panic!("bad bool {other}"),
        }
    }

    fn option(&mut self) -> bool {
        self.bool()
    }

    fn take(&mut self, n: usize) -> &'a [u8] {
        let out = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        out
    }

    fn string(&mut self) -> String {
        let len = self.u64() as usize;
        String::from_utf8(self.take(len).to_vec()).unwrap()
    }

    fn map(&mut self) -> BTreeMap<String, String> {
        let n = self.u64();
        (0..n).map(|_| (self.string(), self.string())).collect()
    }

    fn sha(&mut self) -> [u8; 32] {
        self.take(32).try_into().unwrap()
    }

    fn rest(&mut self) -> &'a [u8] {
        self.take(self.bytes.len() - self.pos)
    }

    fn is_done(&self) -> bool {
        self.pos == self.bytes.len()
    }
}

/// What the independent reader extracts from a file.
#[derive(Debug, PartialEq)]
enum Parsed {
    Opened {
        conn: u64,
        t: u64,
        peer: Option<(Option<u32>, u32, u32)>,
        metadata: BTreeMap<String, String>,
    },
    Data {
        conn: u64,
        direction: u8,
        t: u64,
        payload: Vec<u8>,
    },
    Closed {
        conn: u64,
        t: u64,
        code: u32,
        message: String,
        c2s: (u64, [u8; 32]),
        s2c: (u64, [u8; 32]),
    },
    Annotation {
        t: u64,
        text: String,
    },
    StoreObject {
        object: u64,
        t: u64,
        kind: u32,
        name: String,
        size: u64,
        sha256: [u8; 32],
        missing: String,
    },
    StoreObjectData {
        object: u64,
        payload: Vec<u8>,
    },
    Footer(ParsedFooter),
}

#[derive(Debug, PartialEq)]
struct ParsedFooter {
    end: u64,
    frames: u64,
    blocks: u64,
    annotations: u64,
    uncompressed: u64,
    compressed: u64,
    c2s: u64,
    s2c: u64,
    connections_complete: bool,
    connections: Vec<[u64; 8]>,
    frame_index_complete: bool,
    frame_index: Vec<(u64, u32, u32, u32, u64, u64)>,
}

struct ParsedFile {
    major: u16,
    minor: u16,
    tool_version: String,
    start: u64,
    metadata: BTreeMap<String, String>,
    /// (envelope offset, compressed_len, uncompressed_len, blocks)
    frames: Vec<(u64, u32, u32, u32)>,
    blocks: Vec<Parsed>,
    /// Raw decompressed bytes of each block, type and length included.
    raw_blocks: Vec<Vec<u8>>,
    trailer: (u64, u64),
}

fn parse_file(file: &[u8]) -> ParsedFile {
    // Section 3: prelude and header.
    assert_eq!(&file[0..8], b"\x89NIXCAP\n");
    let major = u16::from_le_bytes([file[8], file[9]]);
    let minor = u16::from_le_bytes([file[10], file[11]]);
    let header_len = le32(&file[12..]) as usize;
    let header_end = 16 + header_len;
    assert_eq!(le32(&file[header_end..]), crc32c(&file[..header_end]));
    let mut header = Body::new(&file[16..header_end]);
    let tool_version = header.string();
    let start = header.u64();
    let metadata = header.map();
    assert!(header.is_done());

    // Section 4: frames, until the trailer tag.
    let mut pos = header_end + 4;
    let mut frames = Vec::new();
    let mut blocks = Vec::new();
    let mut raw_blocks = Vec::new();
    loop {
        let tag = &file[pos..pos + 4];
        if tag == b"NXTR" {
            break;
        }
        assert_eq!(tag, b"NXFR", "frame tag at offset {pos}");
        let envelope = &file[pos..pos + 20];
        assert_eq!(le32(&envelope[16..]), crc32c(&envelope[..16]));
        let compressed_len = le32(&envelope[4..]);
        let uncompressed_len = le32(&envelope[8..]);
        assert!(compressed_len <= 65 << 20 && uncompressed_len <= 64 << 20);
        let payload = &file[pos + 20..pos + 20 + compressed_len as usize];
        assert_eq!(le32(&envelope[12..]), crc32c(payload));
        let decompressed = zstd::bulk::decompress(payload, uncompressed_len as usize).unwrap();
        assert_eq!(decompressed.len(), uncompressed_len as usize);

        // Section 5: blocks.
        let mut at = 0;
        let mut count = 0;
        while at < decompressed.len() {
            let start_of_block = at;
            let block_type = decompressed[at];
            let mut framing = Body::new(&decompressed[at + 1..]);
            let body_len = framing.u32() as usize;
            let body_start = at + 1 + framing.pos;
            let body = &decompressed[body_start..body_start + body_len];
            at = body_start + body_len;
            raw_blocks.push(decompressed[start_of_block..at].to_vec());
            blocks.push(parse_body(block_type, body));
            count += 1;
        }
        assert_eq!(at, decompressed.len());
        frames.push((pos as u64, compressed_len, uncompressed_len, count));
        pos += 20 + compressed_len as usize;
    }

    // Section 7.2: the trailer ends the file.
    let trailer = &file[pos..];
    assert_eq!(trailer.len(), 24);
    assert_eq!(le32(&trailer[20..]), crc32c(&trailer[..20]));
    ParsedFile {
        major,
        minor,
        tool_version,
        start,
        metadata,
        frames,
        blocks,
        raw_blocks,
        trailer: (le64(&trailer[4..]), le64(&trailer[12..])),
    }
}

/// Section 6 and 7.1: block bodies.
fn parse_body(block_type: u8, body: &[u8]) -> Parsed {
    let mut b = Body::new(body);
    let parsed = match block_type {
        0x01 => {
            let conn = b.u64();
            let t = b.u64();
            let peer = b.option().then(|| {
                let pid = b.option().then(|| b.u32());
                (pid, b.u32(), b.u32())
            });
            Parsed::Opened {
                conn,
                t,
                peer,
                metadata: b.map(),
            }
        }
        0x02 => Parsed::Data {
            conn: b.u64(),
            direction: b.byte(),
            t: b.u64(),
            payload: b.rest().to_vec(),
        },
        0x03 => Parsed::Closed {
            conn: b.u64(),
            t: b.u64(),
            code: b.u32(),
            message: b.string(),
            c2s: (b.u64(), b.sha()),
            s2c: (b.u64(), b.sha()),
        },
        0x04 => Parsed::Annotation {
            t: b.u64(),
            text: b.string(),
        },
        0x05 => {
            let mut footer = ParsedFooter {
                end: b.u64(),
                frames: b.u64(),
                blocks: b.u64(),
                annotations: b.u64(),
                uncompressed: b.u64(),
                compressed: b.u64(),
                c2s: b.u64(),
                s2c: b.u64(),
                connections_complete: b.bool(),
                connections: Vec::new(),
                frame_index_complete: false,
                frame_index: Vec::new(),
            };
            let n = b.u64();
            for _ in 0..n {
                let conn = b.u64();
                let opened = b.u64();
                let closed = b.u64();
                let reason = u64::from(b.u32());
                footer.connections.push([
                    conn,
                    opened,
                    closed,
                    reason,
                    b.u64(),
                    b.u64(),
                    b.u64(),
                    b.u64(),
                ]);
            }
            footer.frame_index_complete = b.bool();
            let n = b.u64();
            for _ in 0..n {
                footer
                    .frame_index
                    .push((b.u64(), b.u32(), b.u32(), b.u32(), b.u64(), b.u64()));
            }
            Parsed::Footer(footer)
        }
        0x06 => Parsed::StoreObject {
            object: b.u64(),
            t: b.u64(),
            kind: b.u32(),
            name: b.string(),
            size: b.u64(),
            sha256: b.sha(),
            missing: b.string(),
        },
        0x07 => Parsed::StoreObjectData {
            object: b.u64(),
            payload: b.rest().to_vec(),
        },
        other => panic!("unexpected block type {other:#04x}"),
    };
    assert!(
        b.is_done(),
        "body of type {block_type:#04x} has trailing bytes"
    );
    parsed
}

fn sha(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

#[test]
fn independent_reader_agrees_with_the_writer_byte_for_byte() {
    let header = Header {
        tool_version: "nixcap 0.1.0".to_owned(),
        start_unix_nanos: 1_700_000_000_123_456_789,
        metadata: BTreeMap::from([("hostname".to_owned(), "builder".to_owned())]),
    };
    let options = WriterOptions {
        frame_max_bytes: 1 << 20,
        frame_max_age_nanos: u64::MAX,
        zstd_level: 3,
        ..WriterOptions::default()
    };
    let c2s = 0x6e69_7863u64.to_le_bytes();
    let s2c = b"daemon says hi".repeat(3);
    let mut writer = Writer::new(Vec::new(), header, options).unwrap();
    let peer = PeerCred {
        pid: Some(4242),
        uid: 1000,
        gid: 100,
    };
    let meta = BTreeMap::from([("upstream".to_owned(), "d.sock".to_owned())]);
    writer
        .open_connection(1, 1_000, Some(peer), meta.clone())
        .unwrap();
    writer
        .data(1, Direction::ClientToServer, 2_000, &c2s)
        .unwrap();
    writer
        .data(1, Direction::ServerToClient, 3_000, &s2c)
        .unwrap();
    writer.annotate(3_500, "note").unwrap();
    writer.flush_frame().unwrap();
    writer
        .close_connection(1, 4_000, CloseReason::CleanEof)
        .unwrap();
    writer
        .open_connection(2, 5_000, None, BTreeMap::new())
        .unwrap();
    let nar_path = "/nix/store/00000000000000000000000000000000-x";
    let log_drv = "/nix/store/11111111111111111111111111111111-x.drv";
    assert_eq!(
        writer
            .store_object(5_500, StoreObjectKind::Nar, nar_path, b"nar")
            .unwrap(),
        0
    );
    assert_eq!(
        writer
            .missing_store_object(5_600, StoreObjectKind::BuildLog, log_drv, "gone")
            .unwrap(),
        1
    );
    let (file, _) = writer.finish(6_000).unwrap();

    // The worked example of section 13, byte for byte.
    let example: [u8; 60] = [
        0x89, 0x4e, 0x49, 0x58, 0x43, 0x41, 0x50, 0x0a, 0x01, 0x00, 0x01, 0x00, 0x28, 0x00, 0x00,
        0x00, 0x0c, 0x6e, 0x69, 0x78, 0x63, 0x61, 0x70, 0x20, 0x30, 0x2e, 0x31, 0x2e, 0x30, 0x95,
        0x9a, 0x97, 0xec, 0xe3, 0x9f, 0xe7, 0xcb, 0x17, 0x01, 0x08, 0x68, 0x6f, 0x73, 0x74, 0x6e,
        0x61, 0x6d, 0x65, 0x07, 0x62, 0x75, 0x69, 0x6c, 0x64, 0x65, 0x72, 0x72, 0x8b, 0x1c, 0x3e,
    ];
    assert_eq!(file[..60], example);
    assert_eq!(example[10..12], [0x01, 0x00], "minor version 1");
    assert_eq!(&file[60..64], b"NXFR");

    let parsed = parse_file(&file);
    assert_eq!((parsed.major, parsed.minor), (1, 1));
    assert_eq!(parsed.tool_version, "nixcap 0.1.0");
    assert_eq!(parsed.start, 1_700_000_000_123_456_789);
    assert_eq!(parsed.metadata.len(), 1);

    // The data block of the worked example.
    assert_eq!(
        parsed.raw_blocks[1],
        [0x02, 0x0c, 0x01, 0x00, 0xd0, 0x0f, 0x63, 0x78, 0x69, 0x6e, 0x00, 0x00, 0x00, 0x00]
    );
    // A connection-opened block with every optional field present.
    let mut opened = vec![
        0x01, 0x1b, 0x01, 0xe8, 0x07, 0x01, 0x01, 0x92, 0x21, 0xe8, 0x07, 0x64, 0x01,
    ];
    opened.extend_from_slice(b"\x08upstream\x06d.sock");
    assert_eq!(parsed.raw_blocks[0], opened);

    // The store-object data block of the worked example in section 13.
    assert_eq!(parsed.raw_blocks[7], [0x07, 0x04, 0x00, b'n', b'a', b'r']);

    let empty = sha(b"");
    let expected = [
        Parsed::Opened {
            conn: 1,
            t: 1_000,
            peer: Some((Some(4242), 1000, 100)),
            metadata: meta,
        },
        Parsed::Data {
            conn: 1,
            direction: 0,
            t: 2_000,
            payload: c2s.to_vec(),
        },
        Parsed::Data {
            conn: 1,
            direction: 1,
            t: 3_000,
            payload: s2c.clone(),
        },
        Parsed::Annotation {
            t: 3_500,
            text: "note".to_owned(),
        },
        Parsed::Closed {
            conn: 1,
            t: 4_000,
            code: 0,
            message: String::new(),
            c2s: (8, sha(&c2s)),
            s2c: (42, sha(&s2c)),
        },
        Parsed::Opened {
            conn: 2,
            t: 5_000,
            peer: None,
            metadata: BTreeMap::new(),
        },
        Parsed::StoreObject {
            object: 0,
            t: 5_500,
            kind: 0,
            name: nar_path.to_owned(),
            size: 3,
            sha256: sha(b"nar"),
            missing: String::new(),
        },
        Parsed::StoreObjectData {
            object: 0,
            payload: b"nar".to_vec(),
        },
        Parsed::StoreObject {
            object: 1,
            t: 5_600,
            kind: 1,
            name: log_drv.to_owned(),
            size: 0,
            sha256: empty,
            missing: "gone".to_owned(),
        },
        Parsed::Closed {
            conn: 2,
            t: 6_000,
            code: 4,
            message: String::new(),
            c2s: (0, empty),
            s2c: (0, empty),
        },
    ];
    let (footer, blocks) = parsed.blocks.split_last().unwrap();
    assert_eq!(blocks, &expected[..]);

    // Frames: two block frames and the footer frame.
    assert_eq!(parsed.frames.len(), 3);
    assert_eq!(parsed.frames[0].0, 60);
    assert_eq!(parsed.frames[0].3, 4);
    assert_eq!(parsed.frames[1].3, 6);
    assert_eq!(parsed.frames[2].3, 1);
    assert_eq!(parsed.trailer, (parsed.frames[2].0, 3));

    let Parsed::Footer(footer) = footer else {
        panic!("the last block is not a footer: {footer:?}");
    };
    let frame_index: Vec<_> = parsed.frames[..2]
        .iter()
        .zip([(1_000, 3_500), (4_000, 6_000)])
        .map(|(&(offset, c, u, n), (first, last))| (offset, c, u, n, first, last))
        .collect();
    assert_eq!(
        footer,
        &ParsedFooter {
            end: 6_000,
            frames: 2,
            blocks: 10,
            annotations: 1,
            uncompressed: u64::from(parsed.frames[0].2 + parsed.frames[1].2),
            compressed: u64::from(parsed.frames[0].1 + parsed.frames[1].1),
            c2s: 8,
            s2c: 42,
            connections_complete: true,
            connections: vec![
                [1, 1_000, 4_000, 0, 8, 42, 0, 1],
                [2, 5_000, 6_000, 4, 0, 0, 1, 1]
            ],
            frame_index_complete: true,
            frame_index,
        }
    );
}

#[test]
fn crc32c_matches_the_documented_check_values() {
    assert_eq!(crc32c(b"123456789"), 0xE306_9283);
    assert_eq!(crc32c(b""), 0);
    assert_eq!(
        crc32c(b"123456789"),
        nixcap_capture::format::crc32c(b"123456789")
    );
}

#[test]
fn varints_match_the_documented_table() {
    let cases: [(u64, &[u8]); 5] = [
        (0, &[0x00]),
        (127, &[0x7f]),
        (128, &[0x80, 0x01]),
        (300, &[0xac, 0x02]),
        (4_294_967_295, &[0xff, 0xff, 0xff, 0xff, 0x0f]),
    ];
    for (value, bytes) in cases {
        assert_eq!(Body::new(bytes).varint(10), value);
        assert_eq!(postcard::to_stdvec(&value).unwrap(), bytes);
    }
}
