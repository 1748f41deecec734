//! A whole capture in memory, organised per connection.
//!
//! [`read_capture`] runs a [`Reader`] to the end and groups the blocks by
//! connection. Damage does not throw away what came before it: the blocks
//! read before the first problem are kept, and the problem is stored in
//! [`Capture::damage`].

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use crate::error::{Location, ReadError, ReadErrorKind};
use crate::reader::{ReadStats, Reader};
use crate::types::{
    Annotation, Block, ConnectionClosed, ConnectionOpened, Direction, Footer, FormatVersion,
    Header, StoreObject,
};

/// A chunk of bytes seen on a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// The block's position in the whole capture (0 is the first block);
    /// sorting chunks of several connections by `seq` gives capture order.
    pub seq: u64,
    /// Which way the bytes went.
    pub direction: Direction,
    /// Nanoseconds since the capture start.
    pub t_nanos: u64,
    /// The bytes.
    pub bytes: Vec<u8>,
}

/// A store object the recorder fetched itself, with its contents put
/// together from its data blocks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapturedObject {
    /// The position of its store-object block in the whole capture.
    pub seq: u64,
    /// The store-object block.
    pub object: StoreObject,
    /// The contents (empty when missing, or when the capture ends before
    /// they do; `object.size` says how long they should be).
    pub contents: Vec<u8>,
}

impl CapturedObject {
    /// Whether the contents are there, whole.
    pub fn is_complete(&self) -> bool {
        self.object.is_present() && self.contents.len() as u64 == self.object.size
    }
}

/// One connection of a capture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    /// The connection id.
    pub conn: u64,
    /// The block's position in the whole capture.
    pub opened_seq: u64,
    /// The connection-opened block.
    pub opened: ConnectionOpened,
    /// The data of both directions, interleaved in capture order.
    pub chunks: Vec<Chunk>,
    /// The connection-closed block, if it was read (it is missing when the
    /// capture was not finished or is damaged before it).
    pub closed: Option<ConnectionClosed>,
}

impl Connection {
    /// The chunks of one direction, in order.
    pub fn chunks_in(&self, direction: Direction) -> impl Iterator<Item = &Chunk> + '_ {
        self.chunks.iter().filter(move |c| c.direction == direction)
    }

    /// All bytes of one direction, concatenated.
    pub fn stream(&self, direction: Direction) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.byte_count(direction) as usize);
        for chunk in self.chunks_in(direction) {
            out.extend_from_slice(&chunk.bytes);
        }
        out
    }

    /// The number of bytes read in one direction.
    pub fn byte_count(&self, direction: Direction) -> u64 {
        self.chunks_in(direction)
            .map(|c| c.bytes.len() as u64)
            .sum()
    }

    /// Whether the connection's close record was read (and so both streams are
    /// complete and were checked against their SHA-256).
    pub fn is_complete(&self) -> bool {
        self.closed.is_some()
    }
}

/// A capture read into memory.
#[derive(Debug)]
#[non_exhaustive]
pub struct Capture {
    /// The format version in the file.
    pub version: FormatVersion,
    /// The file header.
    pub header: Header,
    /// The connections, in the order they were opened.
    pub connections: Vec<Connection>,
    /// The annotations, in capture order, with their block positions.
    pub annotations: Vec<(u64, Annotation)>,
    /// Store objects the recorder fetched itself (format 1.1), in capture
    /// order: not part of any connection.
    pub store_objects: Vec<CapturedObject>,
    /// Blocks of unknown types, with their positions, type bytes and bodies.
    pub unknown_blocks: Vec<(u64, u8, Vec<u8>)>,
    /// The footer, if the capture was finished and read intact up to it.
    pub footer: Option<Footer>,
    /// The first problem found, if any; everything before it is in this value.
    pub damage: Option<ReadError>,
    /// Totals of what was read.
    pub stats: ReadStats,
}

impl Capture {
    /// The connection with id `conn` (a linear search).
    pub fn connection(&self, conn: u64) -> Option<&Connection> {
        self.connections.iter().find(|c| c.conn == conn)
    }

    /// True when the whole file was read without any problem.
    pub fn is_intact(&self) -> bool {
        self.damage.is_none()
    }

    /// Time from the capture start to its end: the footer's end time when
    /// present, else the latest block timestamp.
    pub fn duration_nanos(&self) -> u64 {
        match &self.footer {
            Some(footer) => footer.end_nanos,
            None => self.stats.last_t_nanos.unwrap_or(0),
        }
    }
}

/// Reads a whole capture from `input`.
///
/// Fails only when not even the header can be read; any later problem is
/// stored in [`Capture::damage`] with everything read before it kept.
pub fn read_capture<R: Read>(input: R) -> Result<Capture, ReadError> {
    let mut reader = Reader::new(input)?;
    let mut capture = Capture {
        version: reader.version(),
        header: reader.header().clone(),
        connections: Vec::new(),
        annotations: Vec::new(),
        store_objects: Vec::new(),
        unknown_blocks: Vec::new(),
        footer: None,
        damage: None,
        stats: ReadStats::default(),
    };
    // Maps open connection ids to their index in `capture.connections`.
    let mut open = std::collections::HashMap::new();
    // Maps store-object ids to their index in `capture.store_objects`.
    let mut objects = std::collections::HashMap::new();
    for (seq, item) in (0u64..).zip(reader.by_ref()) {
        let block = match item {
            Ok(block) => block,
            Err(err) => {
                capture.damage = Some(err);
                break;
            }
        };
        match block {
            Block::ConnectionOpened(opened) => {
                open.insert(opened.conn, capture.connections.len());
                capture.connections.push(Connection {
                    conn: opened.conn,
                    opened_seq: seq,
                    opened,
                    chunks: Vec::new(),
                    closed: None,
                });
            }
            Block::Data(data) => {
                // The reader has checked that the connection is open.
                if let Some(&index) = open.get(&data.conn) {
                    capture.connections[index].chunks.push(Chunk {
                        seq,
                        direction: data.direction,
                        t_nanos: data.t_nanos,
                        bytes: data.bytes,
                    });
                }
            }
            Block::ConnectionClosed(closed) => {
                if let Some(index) = open.remove(&closed.conn) {
                    capture.connections[index].closed = Some(closed);
                }
            }
            Block::Annotation(annotation) => capture.annotations.push((seq, annotation)),
            Block::StoreObject(object) => {
                objects.insert(object.object, capture.store_objects.len());
                capture.store_objects.push(CapturedObject {
                    seq,
                    object,
                    contents: Vec::new(),
                });
            }
            Block::StoreObjectData(data) => {
                // The reader has checked that the object takes these bytes.
                if let Some(&index) = objects.get(&data.object) {
                    capture.store_objects[index]
                        .contents
                        .extend_from_slice(&data.bytes);
                }
            }
            Block::Footer(footer) => capture.footer = Some(footer),
            Block::Unknown { block_type, body } => {
                capture.unknown_blocks.push((seq, block_type, body));
            }
        }
    }
    capture.stats = reader.stats().clone();
    Ok(capture)
}

/// Reads a whole capture from a file; see [`read_capture`].
pub fn read_capture_file(path: impl AsRef<Path>) -> Result<Capture, ReadError> {
    let file = File::open(path.as_ref())
        .map_err(|source| ReadError::new(ReadErrorKind::Io { source }, Location::default()))?;
    read_capture(BufReader::with_capacity(1 << 20, file))
}
