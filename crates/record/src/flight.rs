//! Flight-recorder mode: keep only the sessions that matter.
//!
//! [`FlightOutput`] sits between the capture thread and the real output (one
//! capture or a rotated set). It holds each connection's events in memory
//! until the connection closes, then asks the caller's [`KeepSession`]
//! whether to keep it: a kept session is written whole, with its original
//! timestamps, and gets `kept` metadata saying why; any other is dropped,
//! except one in N that is kept as a sample (`kept = sample`).
//!
//! This crate does not decode the protocol: whether a session failed is the
//! caller's question to answer (the cli answers it with `nixcap-view`, from
//! the chunks in order). The decision runs on the capture thread, never on
//! the forwarding path, which forwards every byte of every session
//! unchanged whatever is kept.
//!
//! A session that grows past [`Flight::max_pending_bytes`] is kept without
//! asking (`kept = large`): what it held so far is written, and the rest
//! goes straight through, so memory stays bounded by the open sessions times
//! that limit. Sessions still open when the recorder finishes are kept
//! (`kept = open-at-finish`). With a journal ([`Flight::journal`], see
//! [`crate::journal`]), the sessions not yet decided are on disk as well, so
//! a killed recorder leaves them in the journal; without one, they were
//! only in memory and are lost.

use std::collections::BTreeMap;
use std::sync::Arc;

use std::path::PathBuf;

use nixcap_capture::{
    CloseReason, Direction, Header, PeerCred, StoreObjectKind, Summary, WriteError, WriterOptions,
};

use crate::journal::{Journal, JournalSession};
use crate::output::CaptureOutput;

/// One chunk of a session, as the recorder read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionChunk {
    /// Which way it went.
    pub direction: Direction,
    /// Recorder time, nanoseconds since the recorder started.
    pub t: u64,
    /// The bytes.
    pub bytes: Vec<u8>,
}

/// A closed session, offered to [`KeepSession`].
#[derive(Debug)]
pub struct ClosedSession<'a> {
    /// The connection id.
    pub conn: u64,
    /// How it ended.
    pub reason: &'a CloseReason,
    /// Every chunk of both directions, in the order the recorder read them.
    pub chunks: &'a [SessionChunk],
}

/// Decides whether a closed session is kept: `Some(why)` keeps it (`why`
/// becomes its `kept` metadata), `None` drops it. Runs on the capture
/// thread; it may take as long as decoding the session takes.
pub type KeepSession = Arc<dyn Fn(&ClosedSession<'_>) -> Option<String> + Send + Sync>;

/// Flight-recorder settings.
#[derive(Clone)]
pub struct Flight {
    /// The decision.
    pub keep: KeepSession,
    /// Keep one in this many of the sessions the decision drops (the
    /// first, the N+1th, …), as a sample; `None` keeps none of them.
    pub sample_one_in: Option<u64>,
    /// A session holding more bytes than this is kept without waiting for
    /// its end.
    pub max_pending_bytes: u64,
    /// Where to journal the sessions not yet decided (created or emptied;
    /// removed when the recorder finishes), so that a killed recorder loses
    /// none of them; `None`: no journal.
    pub journal: Option<PathBuf>,
    /// The journal is written afresh, with only the sessions still pending,
    /// once more session bytes than this went into it (and more than twice
    /// what is pending).
    pub journal_max_bytes: u64,
}

impl std::fmt::Debug for Flight {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Flight")
            .field("sample_one_in", &self.sample_one_in)
            .field("max_pending_bytes", &self.max_pending_bytes)
            .field("journal", &self.journal)
            .field("journal_max_bytes", &self.journal_max_bytes)
            .finish_non_exhaustive()
    }
}

impl Flight {
    /// Keeps what `keep` says, no sample, sessions up to 256 MiB held, no
    /// journal (written afresh past 64 MiB once there is one).
    pub fn new(keep: KeepSession) -> Self {
        Flight {
            keep,
            sample_one_in: None,
            max_pending_bytes: 256 << 20,
            journal: None,
            journal_max_bytes: 64 << 20,
        }
    }
}

/// How many sessions the flight recorder kept and dropped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlightCounts {
    /// Kept because the decision said so.
    pub kept: u64,
    /// Kept as the one-in-N sample.
    pub sampled: u64,
    /// Kept because they grew too large to hold, or were open at the end.
    pub kept_unasked: u64,
    /// Dropped.
    pub dropped: u64,
}

#[derive(Debug)]
struct Pending {
    t_open: u64,
    peer: Option<PeerCred>,
    metadata: BTreeMap<String, String>,
    chunks: Vec<SessionChunk>,
    bytes: u64,
}

/// A capture output that keeps only the sessions that matter; see the
/// module documentation.
pub(crate) struct FlightOutput<O> {
    inner: O,
    flight: Flight,
    pending: BTreeMap<u64, Pending>,
    /// Sessions written through (kept, still open).
    through: std::collections::BTreeSet<u64>,
    /// Sessions dropped by the decision so far (for the sample).
    undecided_drops: u64,
    counts: FlightCounts,
    journal: Option<Journal>,
}

impl<O: CaptureOutput> FlightOutput<O> {
    /// Wraps `inner`; the journal, if `flight` asks for one, gets `header`
    /// (marked as a journal's) and `options`.
    pub(crate) fn new(
        inner: O,
        flight: Flight,
        header: &Header,
        options: &WriterOptions,
    ) -> Result<Self, WriteError> {
        let journal = match &flight.journal {
            Some(path) => Some(Journal::create(
                path,
                header,
                options,
                flight.journal_max_bytes,
            )?),
            None => None,
        };
        Ok(FlightOutput {
            inner,
            flight,
            pending: BTreeMap::new(),
            through: Default::default(),
            undecided_drops: 0,
            counts: FlightCounts::default(),
            journal,
        })
    }

    /// Writes the journal afresh if it has grown too large, once what left
    /// it since is in the output's file: the output's open frame is written
    /// first.
    fn compact_journal(&mut self) -> Result<(), WriteError> {
        let pending_bytes = self.pending.values().map(|p| p.bytes).sum();
        if !self
            .journal
            .as_ref()
            .is_some_and(|journal| journal.is_large(pending_bytes))
        {
            return Ok(());
        }
        self.inner.flush_frame()?;
        let Some(journal) = &mut self.journal else {
            return Ok(());
        };
        journal.compact(self.pending.iter().map(|(conn, p)| JournalSession {
            conn: *conn,
            t_open: p.t_open,
            peer: p.peer,
            metadata: &p.metadata,
            chunks: &p.chunks,
        }));
        Ok(())
    }

    /// Writes a held session to the output, open and every chunk.
    fn write_through(
        &mut self,
        conn: u64,
        mut pending: Pending,
        why: &str,
    ) -> Result<(), WriteError> {
        pending.metadata.insert("kept".to_owned(), why.to_owned());
        self.inner
            .open_connection(conn, pending.t_open, pending.peer, pending.metadata)?;
        for chunk in &pending.chunks {
            self.inner
                .data(conn, chunk.direction, chunk.t, &chunk.bytes)?;
        }
        self.through.insert(conn);
        Ok(())
    }
}

impl<O: CaptureOutput> CaptureOutput for FlightOutput<O> {
    type Out = O::Out;

    fn open_connection(
        &mut self,
        conn: u64,
        t: u64,
        peer: Option<PeerCred>,
        metadata: BTreeMap<String, String>,
    ) -> Result<(), WriteError> {
        if self.pending.contains_key(&conn) || self.through.contains(&conn) {
            return Err(WriteError::DuplicateConnection { conn });
        }
        if let Some(journal) = &mut self.journal {
            journal.open(conn, t, peer, &metadata);
        }
        self.pending.insert(
            conn,
            Pending {
                t_open: t,
                peer,
                metadata,
                chunks: Vec::new(),
                bytes: 0,
            },
        );
        Ok(())
    }

    fn data(
        &mut self,
        conn: u64,
        direction: Direction,
        t: u64,
        bytes: &[u8],
    ) -> Result<(), WriteError> {
        if self.through.contains(&conn) {
            return self.inner.data(conn, direction, t, bytes);
        }
        let Some(pending) = self.pending.get_mut(&conn) else {
            return Err(WriteError::UnknownConnection { conn });
        };
        if let Some(journal) = &mut self.journal {
            journal.data(conn, direction, t, bytes);
        }
        pending.chunks.push(SessionChunk {
            direction,
            t,
            bytes: bytes.to_vec(),
        });
        pending.bytes += bytes.len() as u64;
        if pending.bytes > self.flight.max_pending_bytes {
            if let Some(pending) = self.pending.remove(&conn) {
                self.counts.kept_unasked += 1;
                self.write_through(conn, pending, "large")?;
                self.compact_journal()?;
            }
        }
        Ok(())
    }

    fn close_connection(
        &mut self,
        conn: u64,
        t: u64,
        reason: CloseReason,
    ) -> Result<(), WriteError> {
        if self.through.remove(&conn) {
            return self.inner.close_connection(conn, t, reason);
        }
        let Some(pending) = self.pending.remove(&conn) else {
            return Err(WriteError::UnknownConnection { conn });
        };
        if let Some(journal) = &mut self.journal {
            journal.close(conn, t, &reason);
        }
        let verdict = (self.flight.keep)(&ClosedSession {
            conn,
            reason: &reason,
            chunks: &pending.chunks,
        });
        let why = match verdict {
            Some(why) => {
                self.counts.kept += 1;
                why
            }
            None => {
                let sample = self
                    .flight
                    .sample_one_in
                    .is_some_and(|n| n > 0 && self.undecided_drops % n == 0);
                self.undecided_drops += 1;
                if !sample {
                    self.counts.dropped += 1;
                    return self.compact_journal();
                }
                self.counts.sampled += 1;
                "sample".to_owned()
            }
        };
        self.write_through(conn, pending, &why)?;
        self.through.remove(&conn);
        self.inner.close_connection(conn, t, reason)?;
        self.compact_journal()
    }

    fn annotate(&mut self, t: u64, text: &str) -> Result<(), WriteError> {
        self.inner.annotate(t, text)
    }

    fn store_object(
        &mut self,
        t: u64,
        kind: StoreObjectKind,
        name: &str,
        contents: &[u8],
    ) -> Result<u64, WriteError> {
        self.inner.store_object(t, kind, name, contents)
    }

    fn missing_store_object(
        &mut self,
        t: u64,
        kind: StoreObjectKind,
        name: &str,
        reason: &str,
    ) -> Result<u64, WriteError> {
        self.inner.missing_store_object(t, kind, name, reason)
    }

    fn flush_if_due(&mut self, now: u64) -> Result<bool, WriteError> {
        if let Some(journal) = &mut self.journal {
            journal.flush_if_due(now);
        }
        self.inner.flush_if_due(now)
    }

    fn flush_frame(&mut self) -> Result<(), WriteError> {
        if let Some(journal) = &mut self.journal {
            journal.flush_frame();
        }
        self.inner.flush_frame()
    }

    fn release_buffers(&mut self) {
        if let Some(journal) = &mut self.journal {
            journal.release_buffers();
        }
        self.inner.release_buffers()
    }

    fn summary(&self) -> Summary {
        self.inner.summary()
    }

    fn finish(mut self, end: u64) -> Result<(Self::Out, Summary), WriteError> {
        // Sessions still open are kept: nobody knows yet how they end.
        let open: Vec<u64> = self.pending.keys().copied().collect();
        for conn in open {
            if let Some(pending) = self.pending.remove(&conn) {
                self.counts.kept_unasked += 1;
                self.write_through(conn, pending, "open-at-finish")?;
            }
        }
        let c = self.counts;
        let mut text = format!(
            "flight recorder: {} sessions kept as asked, {} as a sample, {} large or open at the \
             end, {} dropped",
            c.kept, c.sampled, c.kept_unasked, c.dropped
        );
        if let Some(failure) = self.journal.as_ref().and_then(Journal::failure) {
            text.push_str(&format!("; the journal stopped: {failure}"));
        }
        self.inner.annotate(end, &text)?;
        let journal = self.journal.take();
        let finished = self.inner.finish(end)?;
        // Only now is every journalled session in the finished output.
        if let Some(journal) = journal {
            journal.remove();
        }
        Ok(finished)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nixcap_capture::{read_capture, Header, Writer, WriterOptions};

    fn header() -> Header {
        Header {
            tool_version: "test".to_owned(),
            start_unix_nanos: 1,
            metadata: BTreeMap::new(),
        }
    }

    /// Sessions whose client sent `fail` are kept, one in three of the
    /// others is sampled, and the kept ones are whole.
    #[test]
    fn keeps_what_the_decision_says_and_a_sample() {
        let keep: KeepSession = Arc::new(|s: &ClosedSession<'_>| {
            s.chunks
                .iter()
                .any(|c| c.bytes == b"fail")
                .then(|| "failed".to_owned())
        });
        let mut flight = Flight::new(keep);
        flight.sample_one_in = Some(3);
        let writer = Writer::new(Vec::new(), header(), WriterOptions::default()).unwrap();
        let mut out =
            FlightOutput::new(writer, flight, &header(), &WriterOptions::default()).unwrap();
        for conn in 0..10u64 {
            let t = conn * 10;
            out.open_connection(conn, t, None, BTreeMap::new()).unwrap();
            let word: &[u8] = if conn % 4 == 1 { b"fail" } else { b"ok" };
            out.data(conn, Direction::ClientToServer, t + 1, word)
                .unwrap();
            out.data(conn, Direction::ServerToClient, t + 2, b"reply")
                .unwrap();
            out.close_connection(conn, t + 3, CloseReason::CleanEof)
                .unwrap();
        }
        // One more, still open at the end.
        out.open_connection(10, 200, None, BTreeMap::new()).unwrap();
        out.data(10, Direction::ClientToServer, 201, b"ok").unwrap();
        let (bytes, _) = out.finish(300).unwrap();
        let capture = read_capture(&bytes[..]).unwrap();
        let kept: Vec<(u64, String)> = capture
            .connections
            .iter()
            .map(|c| (c.conn, c.opened.metadata["kept"].clone()))
            .collect();
        // Failing: 1, 5, 9. Others in close order: 0 2 3 4 6 7 8; sampled 0, 4, 8.
        assert_eq!(
            kept,
            vec![
                (0, "sample".to_owned()),
                (1, "failed".to_owned()),
                (4, "sample".to_owned()),
                (5, "failed".to_owned()),
                (8, "sample".to_owned()),
                (9, "failed".to_owned()),
                (10, "open-at-finish".to_owned()),
            ]
        );
        let five = capture.connections.iter().find(|c| c.conn == 5).unwrap();
        assert_eq!(five.stream(Direction::ClientToServer), b"fail");
        assert_eq!(five.stream(Direction::ServerToClient), b"reply");
        assert_eq!(five.opened.t_nanos, 50);
        assert_eq!(five.closed.as_ref().unwrap().t_nanos, 53);
    }

    /// A session past the limit is written from then on, and not asked about.
    #[test]
    fn a_large_session_goes_through_without_waiting() {
        let keep: KeepSession = Arc::new(|_: &ClosedSession<'_>| None);
        let mut flight = Flight::new(keep);
        flight.max_pending_bytes = 8;
        let writer = Writer::new(Vec::new(), header(), WriterOptions::default()).unwrap();
        let mut out =
            FlightOutput::new(writer, flight, &header(), &WriterOptions::default()).unwrap();
        out.open_connection(0, 0, None, BTreeMap::new()).unwrap();
        for i in 0..5u64 {
            out.data(0, Direction::ClientToServer, i, b"abcd").unwrap();
        }
        out.close_connection(0, 9, CloseReason::CleanEof).unwrap();
        let (bytes, _) = out.finish(10).unwrap();
        let capture = read_capture(&bytes[..]).unwrap();
        assert_eq!(capture.connections.len(), 1);
        assert_eq!(capture.connections[0].opened.metadata["kept"], "large");
        assert_eq!(
            capture.connections[0].stream(Direction::ClientToServer),
            b"abcdabcdabcdabcdabcd"
        );
    }

    /// The journal holds every session not yet decided, readable at any
    /// moment (as a killed recorder leaves it); written afresh once large,
    /// it holds only those still pending; a finished recorder removes it.
    #[test]
    fn the_journal_holds_the_undecided_sessions() {
        let keep: KeepSession = Arc::new(|_: &ClosedSession<'_>| None);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("capture.pending");
        let mut flight = Flight::new(keep);
        flight.journal = Some(path.clone());
        flight.journal_max_bytes = 64 << 10;
        let writer = Writer::new(Vec::new(), header(), WriterOptions::default()).unwrap();
        let mut out =
            FlightOutput::new(writer, flight, &header(), &WriterOptions::default()).unwrap();
        let journal = || read_capture(std::fs::read(&path).unwrap().as_slice()).unwrap();
        out.open_connection(1, 10, None, BTreeMap::new()).unwrap();
        out.data(1, Direction::ClientToServer, 11, b"still open")
            .unwrap();
        out.open_connection(2, 20, None, BTreeMap::new()).unwrap();
        out.data(2, Direction::ClientToServer, 21, &[7u8; 40_000])
            .unwrap();
        out.flush_frame().unwrap();
        let read = journal();
        assert!(read
            .header
            .metadata
            .contains_key(crate::journal::JOURNAL_KEY));
        let conns: Vec<u64> = read.connections.iter().map(|c| c.conn).collect();
        assert_eq!(conns, [1, 2]);
        assert_eq!(
            read.connections[0].stream(Direction::ClientToServer),
            b"still open"
        );

        // Session 2 closes (and is dropped); more traffic makes the journal large.
        out.close_connection(2, 30, CloseReason::CleanEof).unwrap();
        out.open_connection(3, 40, None, BTreeMap::new()).unwrap();
        out.data(3, Direction::ClientToServer, 41, &[9u8; 40_000])
            .unwrap();
        out.close_connection(3, 50, CloseReason::CleanEof).unwrap();
        out.data(1, Direction::ServerToClient, 51, b"reply")
            .unwrap();
        out.flush_frame().unwrap();
        let read = journal();
        let conns: Vec<u64> = read.connections.iter().map(|c| c.conn).collect();
        assert_eq!(conns, [1], "written afresh with the pending session only");
        assert_eq!(
            read.connections[0].stream(Direction::ClientToServer),
            b"still open"
        );
        assert_eq!(
            read.connections[0].stream(Direction::ServerToClient),
            b"reply"
        );
        assert_eq!(read.connections[0].opened.t_nanos, 10);

        // As a drained recorder does before the read-back; what follows
        // allocates the buffers again.
        out.release_buffers();
        let (bytes, _) = out.finish(60).unwrap();
        assert!(!path.exists(), "a finished recorder removes its journal");
        let capture = read_capture(&bytes[..]).unwrap();
        assert_eq!(capture.connections.len(), 1);
        assert_eq!(
            capture.connections[0].opened.metadata["kept"],
            "open-at-finish"
        );
    }
}
