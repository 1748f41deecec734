//! Joining a rotated set back into one capture.
//!
//! A recorder that rotates (see `docs/FORMAT.md`, rotated sets) writes
//! several complete captures; a connection open at a rotation is closed in
//! one file with reason `continued` and opened again in the next with the
//! same `link` metadata and the next `segment` number. [`stitch`] takes the
//! files of a set in order and gives one [`Capture`] in which each such
//! connection is whole again: its chunks in order, timestamps relative to
//! the first file's start, and the close record of its last segment with
//! byte counts and SHA-256 recomputed over the whole streams.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use crate::{Capture, Chunk, CloseReason, Connection, Direction, StreamDigest};

/// The metadata key naming a connection across the files of a set.
pub const LINK_KEY: &str = "link";
/// The metadata key numbering a connection's pieces (0, 1, …).
pub const SEGMENT_KEY: &str = "segment";

/// A problem joining a set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StitchProblem {
    /// The link of the connection concerned.
    pub link: String,
    /// What is wrong.
    pub problem: String,
}

/// The joined capture and what did not fit together.
#[derive(Debug)]
pub struct Stitched {
    /// The set as one capture.
    pub capture: Capture,
    /// Connections whose pieces are missing or out of order.
    pub problems: Vec<StitchProblem>,
    /// How many connections were joined from more than one piece.
    pub joined: u64,
}

fn digest(chunks: &[Chunk], direction: Direction) -> StreamDigest {
    let mut hasher = Sha256::new();
    let mut bytes = 0u64;
    for chunk in chunks.iter().filter(|c| c.direction == direction) {
        hasher.update(&chunk.bytes);
        bytes += chunk.bytes.len() as u64;
    }
    StreamDigest {
        bytes,
        sha256: hasher.finalize().into(),
    }
}

/// Joins `captures` (the files of a set, in order); see the module
/// documentation. An empty list gives `None`.
pub fn stitch(captures: Vec<Capture>) -> Option<Stitched> {
    let mut captures = captures.into_iter();
    let mut out = captures.next()?;
    let start = out.header.start_unix_nanos;
    let mut problems = Vec::new();
    let mut joined = 0u64;
    // Link to (index in out.connections, last segment number).
    let mut links: BTreeMap<String, (usize, u64)> = BTreeMap::new();
    for (index, connection) in out.connections.iter().enumerate() {
        if let Some(link) = connection.opened.metadata.get(LINK_KEY) {
            let segment = segment_of(connection);
            links.insert(link.clone(), (index, segment));
        }
    }
    let mut next_seq = max_seq(&out) + 1;
    let mut used_ids: std::collections::BTreeSet<u64> =
        out.connections.iter().map(|c| c.conn).collect();
    for capture in captures {
        let offset = capture.header.start_unix_nanos.saturating_sub(start);
        let seq_base = next_seq;
        next_seq = seq_base + max_seq(&capture) + 1;
        for (seq, annotation) in capture.annotations {
            let mut annotation = annotation;
            annotation.t_nanos += offset;
            out.annotations.push((seq + seq_base, annotation));
        }
        for (seq, kind, body) in capture.unknown_blocks {
            out.unknown_blocks.push((seq + seq_base, kind, body));
        }
        if out.damage.is_none() {
            out.damage = capture.damage;
        }
        out.stats.frames += capture.stats.frames;
        out.stats.blocks += capture.stats.blocks;
        out.stats.bytes_client_to_server += capture.stats.bytes_client_to_server;
        out.stats.bytes_server_to_client += capture.stats.bytes_server_to_client;
        for mut connection in capture.connections {
            for chunk in &mut connection.chunks {
                chunk.t_nanos += offset;
                chunk.seq += seq_base;
            }
            connection.opened.t_nanos += offset;
            connection.opened_seq += seq_base;
            if let Some(closed) = &mut connection.closed {
                closed.t_nanos += offset;
            }
            let link = connection.opened.metadata.get(LINK_KEY).cloned();
            let segment = segment_of(&connection);
            match link.as_ref().and_then(|l| links.get(l).copied()) {
                Some((index, last)) if segment > 0 => {
                    if segment != last + 1 {
                        problems.push(StitchProblem {
                            link: link.clone().unwrap_or_default(),
                            problem: format!("segment {segment} follows segment {last}"),
                        });
                    }
                    let target = &mut out.connections[index];
                    if !matches!(
                        target.closed.as_ref().map(|c| &c.reason),
                        Some(CloseReason::Continued)
                    ) {
                        problems.push(StitchProblem {
                            link: link.clone().unwrap_or_default(),
                            problem: format!(
                                "segment {segment} continues a piece that was not closed as continued"
                            ),
                        });
                    }
                    target.chunks.append(&mut connection.chunks);
                    target.closed = connection.closed;
                    if let Some(l) = &link {
                        links.insert(l.clone(), (index, segment));
                    }
                    joined += u64::from(last == 0 && segment == 1);
                }
                _ => {
                    if segment > 0 {
                        problems.push(StitchProblem {
                            link: link.clone().unwrap_or_default(),
                            problem: format!("segment {segment} has no earlier piece in the set"),
                        });
                    }
                    // Ids are unique per file; keep them unique in the join.
                    if used_ids.contains(&connection.conn) {
                        let fresh = used_ids.iter().next_back().map_or(1, |m| m + 1);
                        connection.conn = fresh;
                        connection.opened.conn = fresh;
                        if let Some(closed) = &mut connection.closed {
                            closed.conn = fresh;
                        }
                    }
                    used_ids.insert(connection.conn);
                    if let Some(l) = &link {
                        links.insert(l.clone(), (out.connections.len(), segment));
                    }
                    out.connections.push(connection);
                }
            }
        }
    }
    for connection in &mut out.connections {
        let c2s = digest(&connection.chunks, Direction::ClientToServer);
        let s2c = digest(&connection.chunks, Direction::ServerToClient);
        if let Some(closed) = &mut connection.closed {
            closed.client_to_server = c2s;
            closed.server_to_client = s2c;
            if closed.reason == CloseReason::Continued {
                problems.push(StitchProblem {
                    link: connection
                        .opened
                        .metadata
                        .get(LINK_KEY)
                        .cloned()
                        .unwrap_or_default(),
                    problem: "the set ends before the connection's next piece".to_owned(),
                });
            }
        }
    }
    out.footer = None;
    Some(Stitched {
        capture: out,
        problems,
        joined,
    })
}

fn segment_of(connection: &Connection) -> u64 {
    connection
        .opened
        .metadata
        .get(SEGMENT_KEY)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn max_seq(capture: &Capture) -> u64 {
    let chunks = capture
        .connections
        .iter()
        .flat_map(|c| c.chunks.iter().map(|k| k.seq).chain([c.opened_seq]));
    let annotations = capture.annotations.iter().map(|(seq, _)| *seq);
    chunks.chain(annotations).max().unwrap_or(0)
}
