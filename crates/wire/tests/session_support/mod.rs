//! Code shared by the wire integration tests: loading the real-session
//! transcripts in `testdata/real-sessions` and decoding connections.

// Each test binary uses a different subset of this module.
#![allow(dead_code)]
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use nixcap_wire::session::{Direction, Event, SessionDecoder};

/// One connection: chunks in the order they crossed the relay.
#[derive(Debug, Clone)]
pub struct Connection {
    pub chunks: Vec<(Direction, Vec<u8>)>,
}

impl Connection {
    /// All bytes of one direction, concatenated.
    pub fn stream(&self, direction: Direction) -> Vec<u8> {
        self.chunks
            .iter()
            .filter(|(d, _)| *d == direction)
            .flat_map(|(_, bytes)| bytes.iter().copied())
            .collect()
    }

    pub fn len(&self) -> usize {
        self.chunks.iter().map(|(_, b)| b.len()).sum()
    }
}

pub fn testdata(parts: &[&str]) -> PathBuf {
    let mut path: PathBuf = [env!("CARGO_MANIFEST_DIR"), "..", "..", "testdata"]
        .iter()
        .collect();
    path.extend(parts);
    path
}

fn u32_at(bytes: &[u8], pos: &mut usize) -> u32 {
    let value = u32::from_le_bytes(bytes[*pos..*pos + 4].try_into().unwrap());
    *pos += 4;
    value
}

/// Reads a `.nxsess.zst` file (format in `testdata/real-sessions/README.md`).
pub fn load_session(name: &str) -> Vec<Connection> {
    let path = testdata(&["real-sessions", name]);
    let compressed =
        std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let bytes = zstd::decode_all(compressed.as_slice()).unwrap();
    assert_eq!(&bytes[..8], b"NXSESS01", "{name} magic");
    let mut pos = 8;
    let n_connections = u32_at(&bytes, &mut pos);
    let mut connections = Vec::new();
    for _ in 0..n_connections {
        let n_chunks = u32_at(&bytes, &mut pos);
        let mut chunks = Vec::new();
        for _ in 0..n_chunks {
            let direction = match bytes[pos] {
                0 => Direction::ClientToDaemon,
                1 => Direction::DaemonToClient,
                other => panic!("{name}: bad direction byte {other}"),
            };
            pos += 1;
            let len = u32_at(&bytes, &mut pos) as usize;
            chunks.push((direction, bytes[pos..pos + len].to_vec()));
            pos += len;
        }
        connections.push(Connection { chunks });
    }
    assert_eq!(pos, bytes.len(), "{name} has no trailing bytes");
    connections
}

/// Decodes a connection fed chunk by chunk.
pub fn decode(connection: &Connection) -> (Vec<Event>, SessionDecoder) {
    SessionDecoder::decode_all(connection.chunks.iter().map(|(d, b)| (*d, b.as_slice())))
}

/// The events of one direction.
pub fn of(events: &[Event], direction: Direction) -> Vec<Event> {
    events
        .iter()
        .filter(|e| e.direction == direction)
        .cloned()
        .collect()
}

pub mod scenarios;
pub mod script;

/// A one-line rendering of an event, for transcripts in assertions.
pub fn line(event: &Event) -> String {
    use nixcap_wire::session::EventKind;
    let what = match &event.kind {
        EventKind::Handshake { piece } => {
            let json = serde_json::to_value(piece).unwrap();
            format!("handshake {}", json["piece"].as_str().unwrap())
        }
        EventKind::Request { seq, request } => format!("request #{seq} {}", request.op().name()),
        EventKind::FramedHeader { seq, len } => format!("framed-header #{seq} {len}"),
        EventKind::FramedData { seq, data, payload } => {
            format!("framed-data #{seq} {}B items={}", data.len(), payload.len())
        }
        EventKind::FramedEnd { seq, payload } => {
            format!("framed-end #{seq} items={}", payload.len())
        }
        EventKind::ReadAnswer { seq, data, payload } => {
            format!("read-answer #{seq} {}B items={}", data.len(), payload.len())
        }
        EventKind::NarData {
            seq,
            data,
            nar,
            end,
        } => format!("nar #{seq} {}B nodes={} end={end}", data.len(), nar.len()),
        EventKind::Stderr { seq, message } => {
            let json = serde_json::to_value(message).unwrap();
            let seq = seq.map_or("-".to_string(), |s| format!("#{s}"));
            format!("stderr {seq} {}", json["type"].as_str().unwrap())
        }
        EventKind::Reply { seq, reply } => format!("reply #{seq} {}", reply.op().name()),
        EventKind::ServeHello { hello } => format!("serve-hello {}", hello.version),
        EventKind::ServeRequest { seq, request } => format!(
            "serve-request #{seq} {}",
            request.command().map_or("unknown", |c| c.name())
        ),
        EventKind::ServeReply { seq, .. } => format!("serve-reply #{seq}"),
        EventKind::ExportData { seq, data, end } => {
            format!("export #{seq} {}B end={end}", data.len())
        }
        EventKind::Opaque { .. } => "opaque".to_string(),
        EventKind::Truncated { .. } => "truncated".to_string(),
    };
    format!(
        "{} {}+{} {what}",
        event.direction.arrow(),
        event.offset,
        event.len
    )
}

/// The transcript of one direction, without offsets.
pub fn transcript(events: &[Event], direction: Direction) -> Vec<String> {
    events
        .iter()
        .filter(|e| e.direction == direction)
        .map(|e| {
            let l = line(e);
            let mut parts = l.splitn(3, ' ');
            let arrow = parts.next().unwrap_or_default();
            let _span = parts.next();
            format!("{arrow} {}", parts.next().unwrap_or_default())
        })
        .collect()
}

/// Decodes a connection and checks tiling and re-encoding.
pub fn decode_checked(connection: &Connection) -> (Vec<Event>, SessionDecoder) {
    let (events, decoder) = decode(connection);
    let client = connection.stream(Direction::ClientToDaemon);
    let daemon = connection.stream(Direction::DaemonToClient);
    if let Err(error) =
        nixcap_wire::session::check_events(&events, &client, &daemon, decoder.negotiated())
    {
        panic!("{error}");
    }
    (events, decoder)
}
