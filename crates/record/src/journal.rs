//! The flight recorder's journal: the sessions it has not decided on yet,
//! on disk, so that a recorder killed with sessions open loses none.
//!
//! [`FlightOutput`](crate::flight::FlightOutput) holds a session in memory
//! until it closes; a recorder killed before then (SIGKILL, the OOM killer,
//! a crashed machine) would lose it, and a session still open when the
//! recorder dies is often the one that matters. So every event of a session
//! still pending is also written to the journal, an ordinary capture file
//! written like the main one (frames flushed by age, so at most a frame age
//! of data is lost to a kill). The journal grows with all traffic of
//! pending sessions, including those later dropped; once the session bytes
//! written to it pass its limit (and twice what is still pending), it is written afresh
//! holding only the sessions still pending, under a temporary name renamed
//! over the old one, so that a kill at any moment leaves one whole journal.
//! A recorder that finishes removes it, after the main output is finished.
//!
//! The journal is a second copy, not the capture: if writing it fails (a
//! full disk), it stops, the recording goes on, and the final annotation
//! says why.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nixcap_capture::{CloseReason, Direction, Header, PeerCred, WriteError, Writer, WriterOptions};

use crate::flight::SessionChunk;

/// Metadata key of the journal's header naming what it is.
pub const JOURNAL_KEY: &str = "journal";

/// A session as the journal rewrites it.
pub(crate) struct JournalSession<'a> {
    pub(crate) conn: u64,
    pub(crate) t_open: u64,
    pub(crate) peer: Option<PeerCred>,
    pub(crate) metadata: &'a BTreeMap<String, String>,
    pub(crate) chunks: &'a [SessionChunk],
}

/// See the module documentation.
pub(crate) struct Journal {
    path: PathBuf,
    header: Header,
    options: WriterOptions,
    max_bytes: u64,
    writer: Option<Writer<File>>,
    /// Session bytes written since the journal was (re)created.
    written: u64,
    failure: Option<String>,
}

impl Journal {
    /// Creates (or empties) the journal at `path`.
    pub(crate) fn create(
        path: &Path,
        header: &Header,
        options: &WriterOptions,
        max_bytes: u64,
    ) -> Result<Journal, WriteError> {
        let mut header = header.clone();
        header.metadata.insert(
            JOURNAL_KEY.to_owned(),
            "sessions the flight recorder had not decided on".to_owned(),
        );
        let writer = new_writer(path, &header, options)?;
        Ok(Journal {
            path: path.to_owned(),
            header,
            options: options.clone(),
            max_bytes,
            writer: Some(writer),
            written: 0,
            failure: None,
        })
    }

    /// Why the journal stopped, if it did.
    pub(crate) fn failure(&self) -> Option<&str> {
        self.failure.as_deref()
    }

    fn with(&mut self, f: impl FnOnce(&mut Writer<File>) -> Result<(), WriteError>) {
        if let Some(writer) = &mut self.writer {
            if let Err(error) = f(writer) {
                self.fail(&error);
            }
        }
    }

    fn fail(&mut self, error: &WriteError) {
        self.failure = Some(format!("{}: {error}", self.path.display()));
        self.writer = None;
    }

    pub(crate) fn open(
        &mut self,
        conn: u64,
        t: u64,
        peer: Option<PeerCred>,
        metadata: &BTreeMap<String, String>,
    ) {
        self.with(|w| w.open_connection(conn, t, peer, metadata.clone()));
    }

    pub(crate) fn data(&mut self, conn: u64, direction: Direction, t: u64, bytes: &[u8]) {
        self.written += bytes.len() as u64;
        self.with(|w| w.data(conn, direction, t, bytes));
    }

    pub(crate) fn close(&mut self, conn: u64, t: u64, reason: &CloseReason) {
        self.with(|w| w.close_connection(conn, t, reason.clone()));
    }

    pub(crate) fn flush_if_due(&mut self, now: u64) {
        self.with(|w| w.flush_if_due(now).map(drop));
    }

    pub(crate) fn flush_frame(&mut self) {
        self.with(|w| w.flush_frame());
    }

    pub(crate) fn release_buffers(&mut self) {
        self.with(|w| {
            w.release_buffers();
            Ok(())
        });
    }

    /// Whether the journal has grown past its limit and past twice
    /// `pending_bytes`, so that it is to be written afresh.
    pub(crate) fn is_large(&self, pending_bytes: u64) -> bool {
        self.writer.is_some() && self.written > self.max_bytes.max(2 * pending_bytes)
    }

    /// Writes the journal afresh with only the sessions of `pending`.
    pub(crate) fn compact<'a>(&mut self, pending: impl Iterator<Item = JournalSession<'a>>) {
        if self.writer.is_none() {
            return;
        }
        let mut name = self.path.clone().into_os_string();
        name.push(".new");
        let fresh_path = PathBuf::from(name);
        let mut written = 0;
        let result = (|| {
            let mut fresh = new_writer(&fresh_path, &self.header, &self.options)?;
            for session in pending {
                fresh.open_connection(
                    session.conn,
                    session.t_open,
                    session.peer,
                    session.metadata.clone(),
                )?;
                for chunk in session.chunks {
                    fresh.data(session.conn, chunk.direction, chunk.t, &chunk.bytes)?;
                    written += chunk.bytes.len() as u64;
                }
            }
            fresh.flush_frame()?;
            std::fs::rename(&fresh_path, &self.path)?;
            Ok::<_, WriteError>(fresh)
        })();
        match result {
            // The old writer's file is gone from the directory; dropping it
            // only flushes into the unlinked file.
            Ok(fresh) => {
                self.writer = Some(fresh);
                self.written = written;
            }
            Err(error) => {
                let _ = std::fs::remove_file(&fresh_path);
                self.fail(&error);
            }
        }
    }

    /// Removes the journal: everything in it is in the finished output.
    pub(crate) fn remove(mut self) {
        self.writer = None;
        let _ = std::fs::remove_file(&self.path);
    }
}

fn new_writer(
    path: &Path,
    header: &Header,
    options: &WriterOptions,
) -> Result<Writer<File>, WriteError> {
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    Writer::new(file, header.clone(), options.clone())
}
