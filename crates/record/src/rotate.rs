//! Rotation: a recorder that runs for weeks writes a set of capture files,
//! each complete on its own, instead of one that grows forever.
//!
//! [`RotatingOutput`] starts a new file when the current one reaches a size
//! or an age. Rotating finishes the current file like any capture (every
//! open connection gets a close record with reason `continued`, then the
//! footer and trailer), renames it from `NAME.nixcap.part` to
//! `NAME.nixcap`, and opens the next file, in which each connection that
//! was open continues under the same id. Every connection carries
//! `link` (an id unique to the connection across the set) and `segment`
//! (0, 1, …) in its open record's metadata, so readers given the set join
//! the pieces back (`nixcap_capture::stitch`). A file's name is
//! `PREFIX-HOST-YYYYMMDDTHHMMSS.nnnnnnnnnZ-NNNNNN.nixcap` (UTC start time
//! and sequence number), so names sort in time order.
//!
//! A ring keeps at most N finished files or a byte budget: after each
//! rotation the oldest finished files of the set are deleted until the
//! finished files plus a full next file fit. Files that have been uploaded
//! are deleted by the uploader, so with uploads the ring only bites while
//! the store is unreachable for longer than the budget holds.
//!
//! All of this runs on the capture thread, never on the forwarding path.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use nixcap_capture::utc::UtcTime;
use nixcap_capture::{
    CloseReason, Direction, Header, PeerCred, StoreObjectKind, Summary, WriteError, Writer,
    WriterOptions,
};

use crate::output::CaptureOutput;

/// Called on the capture thread with each finished file; must return
/// quickly (queue the path for an uploader, say).
pub type FinishedHook = Arc<dyn Fn(&Path) + Send + Sync>;

/// How a rotated set is written.
#[derive(Clone)]
pub struct Rotation {
    /// The directory the files are written to.
    pub dir: PathBuf,
    /// The first part of every file name.
    pub prefix: String,
    /// Start a new file once the current one holds this many bytes.
    pub max_file_bytes: Option<u64>,
    /// Start a new file once the current one is this old.
    pub max_file_age: Option<Duration>,
    /// Keep at most this many finished files (oldest deleted first).
    pub ring_files: Option<usize>,
    /// Keep finished files within this many bytes, counting room for a full
    /// next file (`max_file_bytes`).
    pub ring_bytes: Option<u64>,
    /// Called with each finished file.
    pub on_finished: Option<FinishedHook>,
    /// Every file's header starts at the recorder's start and its times
    /// count from there, instead of from the file's own start (the flight
    /// recorder writes a session when it closes, with times that may come
    /// before the current file began). The file name still says when the
    /// file began.
    pub times_from_recorder_start: bool,
}

impl std::fmt::Debug for Rotation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rotation")
            .field("dir", &self.dir)
            .field("prefix", &self.prefix)
            .field("max_file_bytes", &self.max_file_bytes)
            .field("max_file_age", &self.max_file_age)
            .field("ring_files", &self.ring_files)
            .field("ring_bytes", &self.ring_bytes)
            .field("on_finished", &self.on_finished.is_some())
            .field("times_from_recorder_start", &self.times_from_recorder_start)
            .finish()
    }
}

impl Rotation {
    /// Rotation into `dir` with no limits set (one file until finished).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Rotation {
            dir: dir.into(),
            prefix: "nixcap".to_owned(),
            max_file_bytes: None,
            max_file_age: None,
            ring_files: None,
            ring_bytes: None,
            on_finished: None,
            times_from_recorder_start: false,
        }
    }
}

/// What a rotated set left behind.
#[derive(Debug, Clone, Default)]
pub struct RotatedSet {
    /// Every file finished, in order (some may since have been uploaded and
    /// deleted, or dropped by the ring).
    pub files: Vec<PathBuf>,
    /// Files the ring deleted to stay within its limits.
    pub dropped: Vec<PathBuf>,
}

/// A file being written that counts its bytes.
#[derive(Debug)]
pub(crate) struct CountingFile {
    inner: BufWriter<File>,
    written: u64,
}

impl Write for CountingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        let n = self.inner.write_vectored(bufs)?;
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[derive(Debug)]
struct OpenConn {
    peer: Option<PeerCred>,
    metadata: BTreeMap<String, String>,
    segment: u64,
}

/// A capture output that rotates; see the module documentation.
pub struct RotatingOutput {
    rotation: Rotation,
    header: Header,
    options: WriterOptions,
    host: String,
    /// Identifies this recorder run in `link` values.
    run_id: String,
    writer: Option<Writer<CountingFile>>,
    part_path: PathBuf,
    final_path: PathBuf,
    /// Recorder time at which the current file starts.
    base: u64,
    /// The latest recorder time seen (the flight recorder hands over
    /// sessions with their earlier times; rotation goes by this one).
    latest: u64,
    index: u64,
    open: BTreeMap<u64, OpenConn>,
    set: RotatedSet,
    totals: Summary,
}

impl std::fmt::Debug for RotatingOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RotatingOutput")
            .field("rotation", &self.rotation)
            .field("current", &self.final_path)
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}

fn io_error(source: io::Error) -> WriteError {
    WriteError::Io { source }
}

/// A host name made safe for a file name.
fn file_safe(text: &str) -> String {
    let safe: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if safe.is_empty() {
        "unknown".to_owned()
    } else {
        safe
    }
}

impl RotatingOutput {
    /// Starts the first file of the set. `header` is the template of every
    /// file's header: its start time is the recorder's, and each file gets
    /// its own start and `rotation` metadata.
    pub fn new(
        rotation: Rotation,
        header: Header,
        options: WriterOptions,
    ) -> Result<Self, WriteError> {
        fs::create_dir_all(&rotation.dir).map_err(io_error)?;
        let host = file_safe(
            header
                .metadata
                .get("hostname")
                .map(String::as_str)
                .unwrap_or(""),
        );
        let run_id = format!("{:x}-{:x}", header.start_unix_nanos, std::process::id());
        let mut output = RotatingOutput {
            rotation,
            header,
            options,
            host,
            run_id,
            writer: None,
            part_path: PathBuf::new(),
            final_path: PathBuf::new(),
            base: 0,
            latest: 0,
            index: 0,
            open: BTreeMap::new(),
            set: RotatedSet::default(),
            totals: Summary::default(),
        };
        output.start_file(0)?;
        Ok(output)
    }

    /// The file being written (its final name).
    pub fn current(&self) -> &Path {
        &self.final_path
    }

    fn start_file(&mut self, t: u64) -> Result<(), WriteError> {
        let start = self.header.start_unix_nanos.saturating_add(t);
        let name = format!(
            "{}-{}-{}-{:06}.nixcap",
            self.rotation.prefix,
            self.host,
            UtcTime::from_unix_nanos(start).compact(),
            self.index
        );
        self.final_path = self.rotation.dir.join(&name);
        self.part_path = self.rotation.dir.join(format!("{name}.part"));
        let mut header = self.header.clone();
        if !self.rotation.times_from_recorder_start {
            header.start_unix_nanos = start;
        }
        header.metadata.insert(
            "rotation".to_owned(),
            format!("{} {}", self.run_id, self.index),
        );
        header
            .metadata
            .insert("capture".to_owned(), self.final_path.display().to_string());
        let file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&self.part_path)
            .map_err(io_error)?;
        let out = CountingFile {
            inner: BufWriter::with_capacity(1 << 20, file),
            written: 0,
        };
        self.writer = Some(Writer::new(out, header, self.options.clone())?);
        self.base = t;
        Ok(())
    }

    fn writer(&mut self) -> Result<&mut Writer<CountingFile>, WriteError> {
        self.writer.as_mut().ok_or(WriteError::Poisoned)
    }

    fn local(&self, t: u64) -> u64 {
        if self.rotation.times_from_recorder_start {
            t
        } else {
            t.saturating_sub(self.base)
        }
    }

    /// Rotates if the current file is big or old enough.
    fn maybe_rotate(&mut self, t: u64) -> Result<(), WriteError> {
        self.latest = self.latest.max(t);
        let t = self.latest;
        let Some(writer) = self.writer.as_ref() else {
            return Ok(());
        };
        let big = self
            .rotation
            .max_file_bytes
            .is_some_and(|max| writer.get_ref().is_some_and(|w| w.written >= max));
        let old = self
            .rotation
            .max_file_age
            .is_some_and(|age| u128::from(t.saturating_sub(self.base)) >= age.as_nanos());
        if big || old {
            self.rotate(t)?;
        }
        Ok(())
    }

    /// Finishes the current file at `t` and makes it final; returns its path.
    fn finish_file(&mut self, t: u64, reason_for_open: CloseReason) -> Result<PathBuf, WriteError> {
        let local = self.local(t);
        let mut writer = self.writer.take().ok_or(WriteError::Poisoned)?;
        for conn in self.open.keys() {
            writer.close_connection(*conn, local, reason_for_open.clone())?;
        }
        let (mut out, summary) = writer.finish(local)?;
        out.flush().map_err(io_error)?;
        drop(out);
        fs::rename(&self.part_path, &self.final_path).map_err(io_error)?;
        add_summary(&mut self.totals, &summary);
        let path = self.final_path.clone();
        self.set.files.push(path.clone());
        if let Some(hook) = &self.rotation.on_finished {
            hook(&path);
        }
        Ok(path)
    }

    fn rotate(&mut self, t: u64) -> Result<(), WriteError> {
        self.finish_file(t, CloseReason::Continued)?;
        self.index += 1;
        self.start_file(t)?;
        let local = self.local(t);
        let conns: Vec<u64> = self.open.keys().copied().collect();
        for conn in conns {
            let Some(state) = self.open.get_mut(&conn) else {
                continue;
            };
            state.segment += 1;
            let mut metadata = state.metadata.clone();
            metadata.insert("segment".to_owned(), state.segment.to_string());
            let peer = state.peer;
            self.writer()?
                .open_connection(conn, local, peer, metadata)?;
        }
        self.enforce_ring();
        Ok(())
    }

    /// Deletes the oldest finished files of this set until the ring's
    /// limits hold.
    fn enforce_ring(&mut self) {
        if self.rotation.ring_files.is_none() && self.rotation.ring_bytes.is_none() {
            return;
        }
        let mut present: Vec<(PathBuf, u64)> = self
            .set
            .files
            .iter()
            .filter_map(|p| fs::metadata(p).ok().map(|m| (p.clone(), m.len())))
            .collect();
        let reserve = self.rotation.max_file_bytes.unwrap_or(0);
        let mut total: u64 = present.iter().map(|(_, n)| n).sum();
        while let Some((oldest, size)) = present.first().cloned() {
            let too_many = self
                .rotation
                .ring_files
                .is_some_and(|max| present.len() > max);
            let too_big = self
                .rotation
                .ring_bytes
                .is_some_and(|max| total.saturating_add(reserve) > max);
            if !(too_many || too_big) {
                break;
            }
            present.remove(0);
            total = total.saturating_sub(size);
            if fs::remove_file(&oldest).is_ok() {
                self.set.dropped.push(oldest);
            }
        }
    }
}

fn add_summary(totals: &mut Summary, s: &Summary) {
    totals.connections += s.connections;
    totals.bytes_client_to_server += s.bytes_client_to_server;
    totals.bytes_server_to_client += s.bytes_server_to_client;
    totals.blocks += s.blocks;
    totals.annotations += s.annotations;
    totals.store_objects += s.store_objects;
    totals.frames += s.frames;
    totals.uncompressed_bytes += s.uncompressed_bytes;
    totals.compressed_bytes += s.compressed_bytes;
}

impl CaptureOutput for RotatingOutput {
    type Out = RotatedSet;

    fn open_connection(
        &mut self,
        conn: u64,
        t: u64,
        peer: Option<PeerCred>,
        mut metadata: BTreeMap<String, String>,
    ) -> Result<(), WriteError> {
        metadata.insert("link".to_owned(), format!("{}-{conn}", self.run_id));
        let mut first = metadata.clone();
        first.insert("segment".to_owned(), "0".to_owned());
        let local = self.local(t);
        self.writer()?.open_connection(conn, local, peer, first)?;
        self.open.insert(
            conn,
            OpenConn {
                peer,
                metadata,
                segment: 0,
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
        let local = self.local(t);
        self.writer()?.data(conn, direction, local, bytes)?;
        self.maybe_rotate(t)
    }

    fn close_connection(
        &mut self,
        conn: u64,
        t: u64,
        reason: CloseReason,
    ) -> Result<(), WriteError> {
        let local = self.local(t);
        self.writer()?.close_connection(conn, local, reason)?;
        self.open.remove(&conn);
        self.maybe_rotate(t)
    }

    fn annotate(&mut self, t: u64, text: &str) -> Result<(), WriteError> {
        let local = self.local(t);
        self.writer()?.annotate(local, text)
    }

    /// Store objects go into the file being written.
    fn store_object(
        &mut self,
        t: u64,
        kind: StoreObjectKind,
        name: &str,
        contents: &[u8],
    ) -> Result<u64, WriteError> {
        let local = self.local(t);
        self.writer()?.store_object(local, kind, name, contents)
    }

    fn missing_store_object(
        &mut self,
        t: u64,
        kind: StoreObjectKind,
        name: &str,
        reason: &str,
    ) -> Result<u64, WriteError> {
        let local = self.local(t);
        self.writer()?
            .missing_store_object(local, kind, name, reason)
    }

    fn flush_if_due(&mut self, now: u64) -> Result<bool, WriteError> {
        let local = self.local(now);
        let flushed = self.writer()?.flush_if_due(local)?;
        self.maybe_rotate(now)?;
        Ok(flushed)
    }

    fn flush_frame(&mut self) -> Result<(), WriteError> {
        self.writer()?.flush_frame()
    }

    fn release_buffers(&mut self) {
        if let Some(writer) = &mut self.writer {
            writer.release_buffers();
        }
    }

    fn summary(&self) -> Summary {
        let mut totals = self.totals.clone();
        if let Some(writer) = &self.writer {
            let current = writer.summary();
            add_summary(&mut totals, &current);
            totals.open_connections = current.open_connections;
        }
        totals
    }

    fn finish(mut self, end: u64) -> Result<(RotatedSet, Summary), WriteError> {
        // Connections still open are closed as at any finish.
        self.finish_file(end, CloseReason::Shutdown)?;
        self.open.clear();
        self.enforce_ring();
        let summary = self.summary();
        Ok((self.set, summary))
    }
}
