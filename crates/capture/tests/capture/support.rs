//! Helpers shared by the capture tests: scripted captures and their expected blocks.

use std::collections::{BTreeMap, HashMap};

use nixcap_capture::{
    Annotation, Block, CloseReason, ConnectionClosed, ConnectionOpened, Data, Direction, Header,
    PeerCred, Reader, StreamDigest, Writer, WriterOptions,
};
use sha2::{Digest, Sha256};

/// One step of a scripted capture.
#[derive(Debug, Clone)]
pub enum Step {
    Open {
        conn: u64,
        t: u64,
        peer: Option<PeerCred>,
        metadata: BTreeMap<String, String>,
    },
    Data {
        conn: u64,
        direction: Direction,
        t: u64,
        bytes: Vec<u8>,
    },
    Close {
        conn: u64,
        t: u64,
        reason: CloseReason,
    },
    Annotate {
        t: u64,
        text: String,
    },
    Flush,
}

/// A header with fixed values, so that files are reproducible.
pub fn fixed_header() -> Header {
    let mut metadata = BTreeMap::new();
    metadata.insert("hostname".to_owned(), "builder".to_owned());
    metadata.insert(
        "argv".to_owned(),
        "nixcap record --listen a.sock".to_owned(),
    );
    Header {
        tool_version: "nixcap 0.1.0".to_owned(),
        start_unix_nanos: 1_700_000_000_123_456_789,
        metadata,
    }
}

/// Writes `steps` to a new capture; finishes it at `end` when given.
pub fn write_steps(steps: &[Step], options: WriterOptions, end: Option<u64>) -> Vec<u8> {
    let mut writer = Writer::new(Vec::new(), fixed_header(), options).unwrap();
    for step in steps {
        apply(&mut writer, step);
    }
    match end {
        Some(end) => writer.finish(end).unwrap().0,
        None => {
            writer.flush_frame().unwrap();
            let bytes = writer.get_ref().unwrap().clone();
            // Dropping the writer would flush nothing more: the frame is already written.
            drop(writer);
            bytes
        }
    }
}

/// Applies one step to a writer.
pub fn apply(writer: &mut Writer<Vec<u8>>, step: &Step) {
    match step.clone() {
        Step::Open {
            conn,
            t,
            peer,
            metadata,
        } => writer.open_connection(conn, t, peer, metadata).unwrap(),
        Step::Data {
            conn,
            direction,
            t,
            bytes,
        } => writer.data(conn, direction, t, &bytes).unwrap(),
        Step::Close { conn, t, reason } => writer.close_connection(conn, t, reason).unwrap(),
        Step::Annotate { t, text } => writer.annotate(t, &text).unwrap(),
        Step::Flush => writer.flush_frame().unwrap(),
    }
}

/// The blocks a reader must yield for `steps` (the footer not included).
/// Connections left open are closed with `Shutdown` at `end` when given.
pub fn expected_blocks(steps: &[Step], end: Option<u64>) -> Vec<Block> {
    let mut streams: HashMap<u64, [Vec<u8>; 2]> = HashMap::new();
    let mut order: Vec<u64> = Vec::new();
    let mut blocks = Vec::new();
    let close = |conn: u64, t: u64, reason: CloseReason, s: &[Vec<u8>; 2]| {
        let digest = |bytes: &Vec<u8>| StreamDigest {
            bytes: bytes.len() as u64,
            sha256: Sha256::digest(bytes).into(),
        };
        Block::ConnectionClosed(ConnectionClosed {
            conn,
            t_nanos: t,
            reason,
            client_to_server: digest(&s[0]),
            server_to_client: digest(&s[1]),
        })
    };
    for step in steps {
        match step.clone() {
            Step::Open {
                conn,
                t,
                peer,
                metadata,
            } => {
                streams.insert(conn, [Vec::new(), Vec::new()]);
                order.push(conn);
                blocks.push(Block::ConnectionOpened(ConnectionOpened {
                    conn,
                    t_nanos: t,
                    peer,
                    metadata,
                }));
            }
            Step::Data {
                conn,
                direction,
                t,
                bytes,
            } => {
                streams.get_mut(&conn).unwrap()[usize::from(direction.code())]
                    .extend_from_slice(&bytes);
                blocks.push(Block::Data(Data {
                    conn,
                    direction,
                    t_nanos: t,
                    bytes,
                }));
            }
            Step::Close { conn, t, reason } => {
                let s = streams.remove(&conn).unwrap();
                blocks.push(close(conn, t, reason, &s));
            }
            Step::Annotate { t, text } => {
                blocks.push(Block::Annotation(Annotation { t_nanos: t, text }))
            }
            Step::Flush => {}
        }
    }
    if let Some(end) = end {
        let mut still_open: Vec<u64> = streams.keys().copied().collect();
        still_open.sort_unstable();
        for conn in still_open {
            let s = streams.remove(&conn).unwrap();
            blocks.push(close(conn, end, CloseReason::Shutdown, &s));
        }
    }
    blocks
}

/// Reads every block of `bytes`; returns the blocks before the footer, the
/// footer, and the error that ended the reading, if any.
pub fn read_all(
    bytes: &[u8],
) -> (
    Vec<Block>,
    Option<nixcap_capture::Footer>,
    Option<nixcap_capture::ReadError>,
) {
    let reader = Reader::new(bytes).unwrap();
    let mut blocks = Vec::new();
    let mut footer = None;
    for item in reader {
        match item {
            Ok(Block::Footer(f)) => footer = Some(f),
            Ok(block) => blocks.push(block),
            Err(err) => return (blocks, footer, Some(err)),
        }
    }
    (blocks, footer, None)
}

/// A small but complete script: every block kind, every close reason, peer
/// credentials, metadata, empty data, non-ASCII text, two frames.
pub fn sample_steps() -> Vec<Step> {
    let mut meta = BTreeMap::new();
    meta.insert(
        "upstream".to_owned(),
        "/nix/var/nix/daemon-socket/socket".to_owned(),
    );
    vec![
        Step::Annotate {
            t: 0,
            text: "capture started — ünïcode".to_owned(),
        },
        Step::Open {
            conn: 1,
            t: 1_000,
            peer: Some(PeerCred {
                pid: Some(4242),
                uid: 1000,
                gid: 100,
            }),
            metadata: meta,
        },
        Step::Data {
            conn: 1,
            direction: Direction::ClientToServer,
            t: 2_000,
            bytes: 0x6e697863u64.to_le_bytes().to_vec(),
        },
        Step::Data {
            conn: 1,
            direction: Direction::ServerToClient,
            t: 3_000,
            bytes: 0x6478696fu64.to_le_bytes().to_vec(),
        },
        Step::Open {
            conn: 2,
            t: 3_500,
            peer: Some(PeerCred {
                pid: None,
                uid: 0,
                gid: 0,
            }),
            metadata: BTreeMap::new(),
        },
        Step::Data {
            conn: 2,
            direction: Direction::ClientToServer,
            t: 3_600,
            bytes: Vec::new(),
        },
        Step::Flush,
        Step::Data {
            conn: 1,
            direction: Direction::ClientToServer,
            t: 4_000,
            bytes: b"hello daemon".repeat(20),
        },
        Step::Close {
            conn: 2,
            t: 5_000,
            reason: CloseReason::UpstreamUnreachable {
                message: "connection refused".to_owned(),
            },
        },
        Step::Open {
            conn: 3,
            t: 6_000,
            peer: None,
            metadata: BTreeMap::new(),
        },
        Step::Close {
            conn: 3,
            t: 6_500,
            reason: CloseReason::Error {
                message: "broken pipe".to_owned(),
            },
        },
        Step::Open {
            conn: 4,
            t: 7_000,
            peer: None,
            metadata: BTreeMap::new(),
        },
        Step::Close {
            conn: 4,
            t: 7_100,
            reason: CloseReason::Reset,
        },
        Step::Close {
            conn: 1,
            t: 8_000,
            reason: CloseReason::CleanEof,
        },
        Step::Open {
            conn: 5,
            t: 9_000,
            peer: None,
            metadata: BTreeMap::new(),
        },
        Step::Data {
            conn: 5,
            direction: Direction::ServerToClient,
            t: 9_500,
            bytes: vec![0xff; 3],
        },
    ]
}

/// Options that never cut frames by size or age, so only `Step::Flush` does.
pub fn manual_frames() -> WriterOptions {
    WriterOptions {
        frame_max_bytes: usize::MAX,
        frame_max_age_nanos: u64::MAX,
        zstd_level: 3,
        ..WriterOptions::default()
    }
}

/// Deterministic incompressible bytes (xorshift64).
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}
