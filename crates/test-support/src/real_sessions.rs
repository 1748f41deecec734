//! The real client↔daemon transcripts in `testdata/real-sessions/`, and a
//! way to turn them into capture files.
//!
//! Each `.nxsess.zst` file is one zstd frame holding `"NXSESS01"`, a u32
//! connection count, and per connection a u32 chunk count followed by
//! chunks of `u8 direction` (0 client→daemon, 1 daemon→client), `u32 len`
//! and the bytes, all little-endian (see the folder's README).

use std::collections::BTreeMap;
use std::path::PathBuf;

use nixcap_capture::{CloseReason, Direction, Header, Writer, WriterOptions};

/// One chunk of a transcript: direction and bytes.
pub type SessionChunk = (Direction, Vec<u8>);

/// The folder holding the transcripts.
pub fn real_sessions_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata/real-sessions")
}

/// The names of the transcript files, sorted.
pub fn real_session_names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(real_sessions_dir())
        .expect("testdata/real-sessions is readable")
        .filter_map(|entry| entry.ok())
        .filter_map(|entry| entry.file_name().into_string().ok())
        .filter(|name| name.ends_with(".nxsess.zst"))
        .collect();
    names.sort();
    names
}

/// The connections of one transcript file, each a list of chunks in order.
///
/// Panics with the file name on a malformed file: these are committed test
/// inputs.
pub fn load_real_session(name: &str) -> Vec<Vec<SessionChunk>> {
    let path = real_sessions_dir().join(name);
    let compressed = std::fs::read(&path).unwrap_or_else(|e| panic!("reading {name}: {e}"));
    let bytes =
        zstd::decode_all(&compressed[..]).unwrap_or_else(|e| panic!("unpacking {name}: {e}"));
    let mut pos = 0usize;
    let mut take = |n: usize| -> &[u8] {
        let out = bytes
            .get(pos..pos + n)
            .unwrap_or_else(|| panic!("{name} is truncated at byte {pos}"));
        pos += n;
        out
    };
    assert_eq!(take(8), b"NXSESS01", "{name}: magic");
    let u32_at = |b: &[u8]| u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    let n_connections = u32_at(take(4));
    let mut connections = Vec::with_capacity(n_connections as usize);
    for _ in 0..n_connections {
        let n_chunks = u32_at(take(4));
        let mut chunks = Vec::with_capacity(n_chunks as usize);
        for _ in 0..n_chunks {
            let direction = match take(1)[0] {
                0 => Direction::ClientToServer,
                1 => Direction::ServerToClient,
                other => panic!("{name}: bad direction {other}"),
            };
            let len = u32_at(take(4)) as usize;
            chunks.push((direction, take(len).to_vec()));
        }
        connections.push(chunks);
    }
    connections
}

/// Writes `connections` as a capture file in memory, one connection after
/// the other, with timestamps 1 µs apart.
pub fn capture_bytes_from_session(connections: &[Vec<SessionChunk>]) -> Vec<u8> {
    let header = Header {
        tool_version: "test".into(),
        start_unix_nanos: 0,
        metadata: BTreeMap::new(),
    };
    let mut writer = Writer::new(Vec::new(), header, WriterOptions::default())
        .expect("writing to memory cannot fail");
    let mut t = 0u64;
    for (index, chunks) in connections.iter().enumerate() {
        let conn = index as u64 + 1;
        t += 1000;
        writer
            .open_connection(conn, t, None, BTreeMap::new())
            .expect("open");
        for (direction, bytes) in chunks {
            t += 1000;
            writer.data(conn, *direction, t, bytes).expect("data");
        }
        t += 1000;
        writer
            .close_connection(conn, t, CloseReason::CleanEof)
            .expect("close");
    }
    let (bytes, _summary) = writer.finish(t + 1000).expect("finish");
    bytes
}
