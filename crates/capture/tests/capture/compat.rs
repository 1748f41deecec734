//! Compatibility rules: unknown block types and appended fields are skipped,
//! newer minor versions are read, newer major versions are refused.

use std::collections::BTreeMap;
use std::io::Cursor;

use nixcap_capture::format::{
    self, AnnotationBody, ClosedBody, DataHead, Envelope, FooterBody, HeaderBody, OpenedBody,
    StoreObjectBody, StoreObjectDataHead, Trailer,
};
use nixcap_capture::{
    read_capture, read_index, Annotation, Block, CloseReason, ConnectionClosed, ConnectionOpened,
    ConnectionSummary, Data, Direction, Footer, FooterStatus, FrameIndexEntry, ReadErrorKind,
    Reader, StoreObject, StoreObjectKind, StreamDigest,
};
use sha2::{Digest, Sha256};

use crate::support::{fixed_header, manual_frames, sample_steps, write_steps};

/// Builds files block by block, the way a later minor version of the writer might.
struct FileBuilder {
    file: Vec<u8>,
    frames: Vec<FrameIndexEntry>,
    compressed: u64,
    uncompressed: u64,
}

impl FileBuilder {
    fn new(minor: u16, header_extra: &[u8]) -> Self {
        let mut body = postcard::to_stdvec(&HeaderBody::from(&fixed_header())).unwrap();
        body.extend_from_slice(header_extra);
        let mut file = Vec::new();
        file.extend_from_slice(&format::MAGIC);
        file.extend_from_slice(&1u16.to_le_bytes());
        file.extend_from_slice(&minor.to_le_bytes());
        file.extend_from_slice(&(body.len() as u32).to_le_bytes());
        file.extend_from_slice(&body);
        let crc = format::crc32c(&file);
        file.extend_from_slice(&crc.to_le_bytes());
        FileBuilder {
            file,
            frames: Vec::new(),
            compressed: 0,
            uncompressed: 0,
        }
    }

    /// Appends a frame holding `blocks` (type, body); returns its offset.
    fn frame(&mut self, blocks: &[(u8, Vec<u8>)], t_range: (u64, u64)) -> u64 {
        let mut payload = Vec::new();
        for (block_type, body) in blocks {
            format::put_block(&mut payload, *block_type, &[body]);
        }
        let compressed = zstd::bulk::compress(&payload, 3).unwrap();
        let envelope = Envelope {
            compressed_len: compressed.len() as u32,
            uncompressed_len: payload.len() as u32,
            payload_crc: format::crc32c(&compressed),
        };
        let offset = self.file.len() as u64;
        self.file.extend_from_slice(&envelope.encode());
        self.file.extend_from_slice(&compressed);
        self.frames.push(FrameIndexEntry {
            offset,
            compressed_len: compressed.len() as u32,
            uncompressed_len: payload.len() as u32,
            blocks: blocks.len() as u32,
            first_t_nanos: t_range.0,
            last_t_nanos: t_range.1,
        });
        self.compressed += compressed.len() as u64;
        self.uncompressed += payload.len() as u64;
        offset
    }

    /// Appends the footer frame and the trailer.
    fn finish(mut self, mut footer: Footer, footer_extra: &[u8]) -> Vec<u8> {
        footer.frames = self.frames.len() as u64;
        footer.compressed_bytes = self.compressed;
        footer.uncompressed_bytes = self.uncompressed;
        footer.frame_index = self.frames.clone();
        let mut body = postcard::to_stdvec(&FooterBody::from(&footer)).unwrap();
        body.extend_from_slice(footer_extra);
        let footer_offset = self.frame(&[(format::BLOCK_FOOTER, body)], (0, 0));
        let trailer = Trailer {
            footer_offset,
            frames: self.frames.len() as u64,
        };
        self.file.extend_from_slice(&trailer.encode());
        self.file
    }
}

fn body<T: serde::Serialize>(value: &T, extra: &[u8]) -> Vec<u8> {
    let mut out = postcard::to_stdvec(value).unwrap();
    out.extend_from_slice(extra);
    out
}

/// A 1.3 file: appended header, block and footer fields, unknown block
/// types, and an unknown close reason.
fn newer_minor_file() -> Vec<u8> {
    let mut builder = FileBuilder::new(3, b"\x05extra header field");
    let opened = ConnectionOpened {
        conn: 9,
        t_nanos: 10,
        peer: None,
        metadata: BTreeMap::new(),
    };
    let head = DataHead {
        conn: 9,
        direction: 1,
        t_nanos: 20,
    };
    let mut data = postcard::to_stdvec(&head).unwrap();
    data.extend_from_slice(b"payload");
    let closed = ConnectionClosed {
        conn: 9,
        t_nanos: 40,
        reason: CloseReason::Unknown {
            code: 77,
            message: "a reason from the future".to_owned(),
        },
        client_to_server: StreamDigest {
            bytes: 0,
            sha256: Sha256::digest(b"").into(),
        },
        server_to_client: StreamDigest {
            bytes: 7,
            sha256: Sha256::digest(b"payload").into(),
        },
    };
    let annotation = Annotation {
        t_nanos: 30,
        text: "hi".to_owned(),
    };
    builder.frame(
        &[
            (0x42, b"a block type from the future".to_vec()),
            (
                format::BLOCK_CONNECTION_OPENED,
                body(&OpenedBody::from(&opened), b"\x01\x02"),
            ),
            (format::BLOCK_DATA, data),
            (0xff, Vec::new()),
        ],
        (10, 20),
    );
    builder.frame(
        &[
            (
                format::BLOCK_ANNOTATION,
                body(&AnnotationBody::from(&annotation), b"\x00"),
            ),
            (
                format::BLOCK_CONNECTION_CLOSED,
                body(&ClosedBody::from(&closed), b"\x07more"),
            ),
        ],
        (30, 40),
    );
    let footer = Footer {
        end_nanos: 50,
        frames: 0,
        blocks: 6,
        annotations: 1,
        uncompressed_bytes: 0,
        compressed_bytes: 0,
        bytes_client_to_server: 0,
        bytes_server_to_client: 7,
        connections_complete: true,
        connections: vec![ConnectionSummary {
            conn: 9,
            opened_nanos: 10,
            closed_nanos: 40,
            reason_code: 77,
            bytes_client_to_server: 0,
            bytes_server_to_client: 7,
            first_frame: 0,
            last_frame: 1,
        }],
        frame_index_complete: true,
        frame_index: Vec::new(),
    };
    builder.finish(footer, b"\x2a appended footer fields")
}

#[test]
fn newer_minor_version_is_read_skipping_what_it_adds() {
    let file = newer_minor_file();
    let mut reader = Reader::new(&file[..]).unwrap();
    assert_eq!(reader.version().to_string(), "1.3");
    assert_eq!(reader.header(), &fixed_header());
    let blocks: Vec<Block> = reader.by_ref().collect::<Result<_, _>>().unwrap();
    assert_eq!(reader.stats().unknown_blocks, 2);
    assert!(reader.stats().trailer);
    let known: Vec<&Block> = blocks
        .iter()
        .filter(|b| !matches!(b, Block::Unknown { .. } | Block::Footer(_)))
        .collect();
    assert_eq!(known.len(), 4);
    assert_eq!(
        known[1],
        &Block::Data(Data {
            conn: 9,
            direction: Direction::ServerToClient,
            t_nanos: 20,
            bytes: b"payload".to_vec(),
        })
    );
    match known[3] {
        Block::ConnectionClosed(closed) => {
            assert_eq!(
                closed.reason.to_string(),
                "unknown reason 77: a reason from the future"
            );
        }
        other => panic!("expected a close record, got {other:?}"),
    }
    assert!(matches!(
        &blocks[0],
        Block::Unknown { block_type: 0x42, body } if body == b"a block type from the future"
    ));

    let capture = read_capture(&file[..]).unwrap();
    assert!(capture.is_intact(), "{:?}", capture.damage);
    assert_eq!(capture.unknown_blocks.len(), 2);
    assert_eq!(
        capture.connections[0].stream(Direction::ServerToClient),
        b"payload"
    );

    let index = read_index(Cursor::new(&file)).unwrap();
    match index.footer {
        FooterStatus::Present(footer) => assert_eq!(footer.connections[0].reason_code, 77),
        other => panic!("expected the footer, got {other:?}"),
    }
}

fn with_version(mut file: Vec<u8>, major: u16, minor: u16) -> Vec<u8> {
    file[8..10].copy_from_slice(&major.to_le_bytes());
    file[10..12].copy_from_slice(&minor.to_le_bytes());
    file
}

#[test]
fn newer_major_version_is_refused_with_a_clear_error() {
    let file = write_steps(&sample_steps(), manual_frames(), Some(10_000));
    let future = with_version(file.clone(), 2, 0);
    let err = Reader::new(&future[..]).unwrap_err();
    assert_eq!(
        err.kind.to_string(),
        "format 2.0 is newer than this nixcap supports (1.x)"
    );
    assert!(err.is_unreadable());
    assert_eq!(err.location.offset, 8);

    // Nothing after byte 12 is interpreted: a 2.x file may look like anything.
    let mut strange = future[..12].to_vec();
    strange.extend_from_slice(&[0xAB; 3]);
    let err = read_capture(&strange[..]).unwrap_err();
    assert!(
        matches!(err.kind, ReadErrorKind::FutureVersion { .. }),
        "{err}"
    );
    let err = read_index(Cursor::new(&strange)).unwrap_err();
    assert!(
        matches!(err.kind, ReadErrorKind::FutureVersion { .. }),
        "{err}"
    );

    let far = with_version(file, 300, 12);
    let err = Reader::new(&far[..]).unwrap_err();
    assert_eq!(
        err.kind.to_string(),
        "format 300.12 is newer than this nixcap supports (1.x)"
    );
}

#[test]
fn version_zero_is_not_a_valid_capture_version() {
    let file = write_steps(&sample_steps(), manual_frames(), Some(10_000));
    let err = Reader::new(&with_version(file, 0, 9)[..]).unwrap_err();
    assert!(
        matches!(err.kind, ReadErrorKind::CorruptHeader { .. }),
        "{err}"
    );
}

#[test]
fn files_of_this_version_stay_readable() {
    // The committed reference file is the compatibility promise: it must keep
    // reading, with these exact contents, in every future version.
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../testdata/corrupt/valid.nixcap"
    );
    let capture = nixcap_capture::read_capture_file(path).unwrap();
    assert!(capture.is_intact(), "{:?}", capture.damage);
    assert_eq!(capture.version.to_string(), "1.0");
    assert_eq!(capture.header, fixed_header());
    let expected = crate::support::expected_blocks(
        &crate::corrupt::reference_steps(),
        Some(crate::corrupt::REFERENCE_END),
    );
    let (blocks, footer, error) = crate::support::read_all(&std::fs::read(path).unwrap());
    assert!(error.is_none());
    assert_eq!(blocks, expected);
    assert_eq!(footer.unwrap().end_nanos, crate::corrupt::REFERENCE_END);
}

/// A file of 1.1 store-object blocks (and no connection), as a writer would make it, from the
/// blocks given.
/// A block as the file builder takes it: type and body.
type RawBlock = (u8, Vec<u8>);

fn store_object_file(blocks: &[RawBlock]) -> Vec<u8> {
    let mut builder = FileBuilder::new(1, b"");
    builder.frame(blocks, (0, 0));
    let footer = Footer {
        end_nanos: 50,
        frames: 0,
        blocks: blocks.len() as u64,
        annotations: 0,
        uncompressed_bytes: 0,
        compressed_bytes: 0,
        bytes_client_to_server: 0,
        bytes_server_to_client: 0,
        connections_complete: true,
        connections: vec![],
        frame_index_complete: true,
        frame_index: Vec::new(),
    };
    builder.finish(footer, b"")
}

fn object_block(object: u64, size: u64, contents_sha: &[u8], missing: &str) -> RawBlock {
    let object = StoreObject {
        object,
        t_nanos: 5,
        kind: StoreObjectKind::Nar,
        name: format!("/nix/store/{object:032}-o"),
        size,
        sha256: Sha256::digest(contents_sha).into(),
        missing: missing.to_owned(),
    };
    (
        format::BLOCK_STORE_OBJECT,
        postcard::to_stdvec(&StoreObjectBody::from(&object)).unwrap(),
    )
}

fn object_data(object: u64, bytes: &[u8]) -> RawBlock {
    let mut body = postcard::to_stdvec(&StoreObjectDataHead { object }).unwrap();
    body.extend_from_slice(bytes);
    (format::BLOCK_STORE_OBJECT_DATA, body)
}

#[test]
fn store_objects_round_trip_apart_from_the_connections() {
    let big = crate::support::noise((16 << 20) + 1000, 7);
    let mut writer =
        nixcap_capture::Writer::new(Vec::new(), fixed_header(), manual_frames()).unwrap();
    writer.open_connection(1, 1, None, BTreeMap::new()).unwrap();
    writer.data(1, Direction::ClientToServer, 2, b"hi").unwrap();
    writer
        .store_object(3, StoreObjectKind::Nar, "/nix/store/a-big", &big)
        .unwrap();
    writer
        .store_object(4, StoreObjectKind::BuildLog, "/nix/store/b.drv", b"")
        .unwrap();
    writer
        .missing_store_object(5, StoreObjectKind::Nar, "/nix/store/c", "daemon said no")
        .unwrap();
    let (file, summary) = writer.finish(6).unwrap();
    assert_eq!(summary.store_objects, 3);
    let capture = read_capture(&file[..]).unwrap();
    assert!(capture.is_intact(), "{:?}", capture.damage);
    assert_eq!(capture.version.to_string(), "1.1");
    // The big object took two data blocks; none of it is connection traffic.
    assert_eq!(capture.connections.len(), 1);
    assert_eq!(
        capture.connections[0].stream(Direction::ClientToServer),
        b"hi"
    );
    assert_eq!(capture.stats.bytes_client_to_server, 2);
    assert_eq!(capture.stats.store_objects, 3);
    assert_eq!(capture.stats.store_objects_missing, 1);
    assert_eq!(capture.stats.store_object_bytes, big.len() as u64);
    let objects = &capture.store_objects;
    assert_eq!(objects.len(), 3);
    assert_eq!(objects[0].object.name, "/nix/store/a-big");
    assert!(objects[0].is_complete());
    assert_eq!(objects[0].contents, big);
    assert_eq!(objects[1].object.kind, StoreObjectKind::BuildLog);
    assert!(objects[1].is_complete() && objects[1].contents.is_empty());
    assert!(!objects[2].object.is_present());
    assert_eq!(objects[2].object.missing, "daemon said no");
    assert!(!objects[2].is_complete());
}

#[test]
fn store_object_damage_is_named() {
    let cases: Vec<(Vec<RawBlock>, &str)> = vec![
        (
            vec![object_block(0, 3, b"abc", ""), object_data(0, b"abd")],
            "store object 0 (/nix/store/00000000000000000000000000000000-o): SHA-256 of the contents does not match its block",
        ),
        (
            vec![object_block(0, 2, b"ab", ""), object_data(0, b"abc")],
            "store object 0 (/nix/store/00000000000000000000000000000000-o): 3 bytes of contents, its block says 2",
        ),
        (
            vec![object_data(4, b"x")],
            "contents for store object 4, which was never described",
        ),
        (
            vec![object_block(0, 1, b"a", ""), object_data(0, b"a"), object_data(0, b"b")],
            "contents for store object 0, which is already complete",
        ),
        (
            vec![object_block(0, 0, b"", "gone"), object_block(0, 0, b"", "")],
            "the id is used a second time",
        ),
        (
            vec![object_block(0, 9, b"", "gone")],
            "recorded as missing, with a size of 9",
        ),
        (
            vec![object_block(0, 4, b"abcd", ""), object_data(0, b"ab")],
            "only 2 of its 4 bytes before the footer",
        ),
    ];
    for (blocks, expected) in cases {
        let file = store_object_file(&blocks);
        let capture = read_capture(&file[..]).unwrap();
        let damage = capture.damage.expect(expected);
        assert!(
            damage.to_string().contains(expected),
            "{damage} does not say {expected}"
        );
    }
    // The same blocks, intact, read cleanly.
    let file = store_object_file(&[object_block(0, 3, b"abc", ""), object_data(0, b"abc")]);
    let capture = read_capture(&file[..]).unwrap();
    assert!(capture.is_intact(), "{:?}", capture.damage);
    assert_eq!(capture.store_objects[0].contents, b"abc");
}
