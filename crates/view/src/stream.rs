//! A capture decoded as it is read, for renderers that must not hold a whole
//! capture in memory (`nixcap log`, the trace export).
//!
//! [`EventStream`] wraps a capture [`Reader`]: it keeps one
//! [`SessionDecoder`] per open connection, feeds it each data block in
//! capture order, and yields the decoded events one by one, each stamped
//! with the time of the block that completed it, between an
//! [`StreamItem::Opened`] and a [`StreamItem::Closed`] for its connection.
//! Only the decoders' own state (a partial unit, the op table) stays in
//! memory; a decoded event is dropped by the time the next one is asked for.
//!
//! When the reader meets damage, every connection still open is finished
//! (its decoder flushes what it held as truncated bytes), closed with no
//! close record, and then the error is yielded last.

use std::collections::{BTreeMap, VecDeque};
use std::io::Read;

use nixcap_capture::{
    Block, ConnectionClosed, ConnectionOpened, Header, ReadError, Reader, StoreObject,
};
use nixcap_wire::session::{Event, SessionDecoder};

use crate::wire_direction;

/// One item of a decoded capture stream.
#[derive(Debug)]
pub enum StreamItem {
    /// A connection was opened.
    Opened(ConnectionOpened),
    /// A decoded event of a connection.
    Event {
        /// The connection.
        conn: u64,
        /// Nanoseconds since the capture start of the block that completed
        /// the event.
        t_nanos: u64,
        /// The event.
        event: Event,
    },
    /// A connection ended: its close record, or the end of the capture
    /// (or its damage) for a connection never seen closed.
    Closed {
        /// The connection.
        conn: u64,
        /// When: the close record's time, else the connection's last time.
        t_nanos: u64,
        /// The close record, if the capture has one.
        closed: Option<ConnectionClosed>,
    },
}

/// A connection being decoded.
#[derive(Debug)]
struct Open {
    decoder: SessionDecoder,
    last_t: u64,
}

/// Decodes a capture as it is read; see the module documentation.
#[derive(Debug)]
pub struct EventStream<R: Read> {
    reader: Reader<R>,
    open: BTreeMap<u64, Open>,
    pending: VecDeque<StreamItem>,
    damage: Option<ReadError>,
    done: bool,
    /// Descriptions of the store objects passed so far (not their contents).
    store_objects: Vec<StoreObject>,
}

impl<R: Read> EventStream<R> {
    /// Reads the capture's prelude and header; fails as [`Reader::new`]
    /// does.
    pub fn new(input: R) -> Result<Self, ReadError> {
        Ok(EventStream {
            reader: Reader::new(input)?,
            open: BTreeMap::new(),
            pending: VecDeque::new(),
            damage: None,
            done: false,
            store_objects: Vec::new(),
        })
    }

    /// The capture's header.
    pub fn header(&self) -> &Header {
        self.reader.header()
    }

    /// The descriptions of the store objects read so far (their contents
    /// are not kept): all of them once the stream has ended.
    pub fn store_objects(&self) -> &[StoreObject] {
        &self.store_objects
    }

    /// Bytes of the file consumed so far, for progress reports.
    pub fn file_bytes(&self) -> u64 {
        self.reader.stats().file_bytes
    }

    /// Finishes connection `conn`: flushes its decoder and queues its
    /// remaining events and its close.
    fn finish(&mut self, conn: u64, closed: Option<ConnectionClosed>) {
        let Some(mut open) = self.open.remove(&conn) else {
            return;
        };
        open.decoder.finish();
        let t_nanos = closed.as_ref().map_or(open.last_t, |c| c.t_nanos);
        self.pending
            .extend(open.decoder.drain_events().map(|event| StreamItem::Event {
                conn,
                t_nanos,
                event,
            }));
        self.pending.push_back(StreamItem::Closed {
            conn,
            t_nanos,
            closed,
        });
    }

    /// Reads blocks until something is queued or the capture ends.
    fn fill(&mut self) {
        while self.pending.is_empty() && !self.done {
            match self.reader.next() {
                Some(Ok(Block::ConnectionOpened(opened))) => {
                    self.open.insert(
                        opened.conn,
                        Open {
                            decoder: SessionDecoder::new(),
                            last_t: opened.t_nanos,
                        },
                    );
                    self.pending.push_back(StreamItem::Opened(opened));
                }
                Some(Ok(Block::Data(data))) => {
                    let Some(open) = self.open.get_mut(&data.conn) else {
                        // The reader refuses data for unknown connections.
                        continue;
                    };
                    open.decoder
                        .feed(wire_direction(data.direction), &data.bytes);
                    open.last_t = open.last_t.max(data.t_nanos);
                    let (conn, t_nanos) = (data.conn, data.t_nanos);
                    self.pending
                        .extend(open.decoder.drain_events().map(|event| StreamItem::Event {
                            conn,
                            t_nanos,
                            event,
                        }));
                }
                Some(Ok(Block::ConnectionClosed(closed))) => {
                    self.finish(closed.conn, Some(closed));
                }
                Some(Ok(Block::StoreObject(object))) => self.store_objects.push(object),
                Some(Ok(_)) => {}
                Some(Err(err)) => {
                    self.damage = Some(err);
                    self.end();
                }
                None => self.end(),
            }
        }
    }

    /// The capture ended: finish every connection still open.
    fn end(&mut self) {
        self.done = true;
        let conns: Vec<u64> = self.open.keys().copied().collect();
        for conn in conns {
            self.finish(conn, None);
        }
    }
}

impl<R: Read> Iterator for EventStream<R> {
    type Item = Result<StreamItem, ReadError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.fill();
        if let Some(item) = self.pending.pop_front() {
            return Some(Ok(item));
        }
        self.damage.take().map(Err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::DecodedCapture;
    use nixcap_capture::read_capture;
    use nixcap_test_support::real_sessions::{
        capture_bytes_from_session, load_real_session, real_session_names,
    };

    /// The stream yields, per connection, exactly the events the whole-capture
    /// view decodes, with the same times.
    #[test]
    fn stream_matches_the_whole_capture_view() {
        for name in real_session_names() {
            let bytes = capture_bytes_from_session(&load_real_session(&name));
            let decoded = DecodedCapture::new(read_capture(bytes.as_slice()).expect("capture"));
            let mut streamed: BTreeMap<u64, Vec<(u64, Event)>> = BTreeMap::new();
            let mut closes = 0;
            for item in EventStream::new(bytes.as_slice()).expect("header") {
                match item.expect("an intact capture") {
                    StreamItem::Opened(opened) => {
                        streamed.entry(opened.conn).or_default();
                    }
                    StreamItem::Event {
                        conn,
                        t_nanos,
                        event,
                    } => streamed.entry(conn).or_default().push((t_nanos, event)),
                    StreamItem::Closed { .. } => closes += 1,
                }
            }
            assert_eq!(closes, decoded.connections.len(), "{name}");
            for connection in &decoded.connections {
                let expected: Vec<(u64, Event)> = connection
                    .events
                    .iter()
                    .map(|timed| (timed.t_nanos, timed.event.clone()))
                    .collect();
                assert_eq!(streamed[&connection.conn], expected, "{name}");
            }
        }
    }

    /// A capture cut short yields what precedes the cut, closes every open
    /// connection, then the error.
    #[test]
    fn damage_comes_last_after_the_closes() {
        let name = real_session_names()
            .into_iter()
            .next()
            .expect("a real session");
        let bytes = capture_bytes_from_session(&load_real_session(&name));
        let cut = &bytes[..bytes.len() * 2 / 3];
        let items: Vec<_> = EventStream::new(cut).expect("header").collect();
        let last = items.last().expect("items");
        assert!(last.is_err(), "the error comes last");
        let opened = items
            .iter()
            .filter(|i| matches!(i, Ok(StreamItem::Opened(_))))
            .count();
        let closed = items
            .iter()
            .filter(|i| matches!(i, Ok(StreamItem::Closed { .. })))
            .count();
        assert_eq!(opened, closed, "every opened connection is closed");
        assert!(items[..items.len() - 1].iter().all(Result::is_ok));
    }
}
