//! The uploader: finished capture files in a local spool directory go up to
//! a store, and each is deleted locally only once the store has confirmed
//! its size and checksum ([`Store::upload_file`]).
//!
//! It runs on its own thread, so nothing that produces files ever waits for
//! the network. Files are taken in name order (rotated sets have sortable
//! names). A failed upload is retried after a back-off that doubles from
//! `initial_backoff` to `max_backoff`, starting again after a success; a
//! new file arriving does not cut a back-off short. On start, the spool is
//! scanned for `*.nixcap` files left by an earlier run, which go up first.
//! At [`Uploader::finish`] the uploader keeps trying for a drain period,
//! then leaves what is still pending in the spool for the next run.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::{Store, Uploaded};

/// Settings of an [`Uploader`].
#[derive(Debug, Clone)]
pub struct UploaderConfig {
    /// Where finished files are (also scanned at start).
    pub spool_dir: PathBuf,
    /// The first wait after a failure.
    pub initial_backoff: Duration,
    /// The longest wait between attempts.
    pub max_backoff: Duration,
    /// Print failures and recoveries to stderr.
    pub log_to_stderr: bool,
}

impl UploaderConfig {
    /// Defaults: back-off from 200 ms to 30 s, logging on.
    pub fn new(spool_dir: impl Into<PathBuf>) -> Self {
        UploaderConfig {
            spool_dir: spool_dir.into(),
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(30),
            log_to_stderr: true,
        }
    }
}

/// What an uploader did.
#[derive(Debug, Default)]
pub struct UploadReport {
    /// Every confirmed upload, in order.
    pub uploaded: Vec<Uploaded>,
    /// Files still in the spool at the end (not confirmed).
    pub pending: Vec<PathBuf>,
    /// Files that were gone before they could be uploaded (the ring
    /// dropped them).
    pub vanished: Vec<PathBuf>,
    /// Failed attempts.
    pub failures: u64,
}

enum Message {
    File(PathBuf),
    Finish(Duration),
}

/// A running uploader; see the module documentation.
#[derive(Debug)]
pub struct Uploader {
    tx: mpsc::Sender<Message>,
    thread: Option<JoinHandle<UploadReport>>,
}

/// A cheap, thread-safe way to hand finished files to an [`Uploader`].
#[derive(Debug, Clone)]
pub struct UploadQueue(mpsc::Sender<Message>);

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Message::File(p) => write!(f, "File({})", p.display()),
            Message::Finish(d) => write!(f, "Finish({d:?})"),
        }
    }
}

impl UploadQueue {
    /// Queues a finished file; never blocks.
    pub fn push(&self, path: &Path) {
        let _ = self.0.send(Message::File(path.to_path_buf()));
    }
}

impl Uploader {
    /// Starts uploading to `store` (under its prefix, by file name).
    pub fn start(store: Store, config: UploaderConfig) -> std::io::Result<Uploader> {
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("nixcap-upload".to_owned())
            .spawn(move || run(&store, &config, &rx))?;
        Ok(Uploader {
            tx,
            thread: Some(thread),
        })
    }

    /// A handle for producers of files.
    pub fn queue(&self) -> UploadQueue {
        UploadQueue(self.tx.clone())
    }

    /// Uploads what is pending, trying for at most `drain` more, and
    /// reports.
    pub fn finish(mut self, drain: Duration) -> UploadReport {
        let _ = self.tx.send(Message::Finish(drain));
        self.thread
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_default()
    }
}

fn spooled(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "nixcap"))
        .collect();
    files.sort();
    files
}

fn run(store: &Store, config: &UploaderConfig, rx: &mpsc::Receiver<Message>) -> UploadReport {
    let mut report = UploadReport::default();
    let mut pending: BTreeSet<PathBuf> = spooled(&config.spool_dir).into_iter().collect();
    let mut backoff = config.initial_backoff;
    let mut retry_at: Option<Instant> = None;
    let mut deadline: Option<Instant> = None;
    let mut failing = false;
    loop {
        // Take what arrived; wait only when there is nothing to do now.
        let now = Instant::now();
        let wait = match (pending.is_empty(), retry_at) {
            (true, _) => deadline.map_or(Duration::from_secs(3600), |d| {
                d.saturating_duration_since(now)
            }),
            (false, Some(at)) if at > now => at - now,
            (false, _) => Duration::ZERO,
        };
        if pending.is_empty() && deadline.is_some() {
            break;
        }
        match rx.recv_timeout(wait) {
            Ok(Message::File(path)) => {
                pending.insert(path);
                while let Ok(message) = rx.try_recv() {
                    match message {
                        Message::File(path) => {
                            pending.insert(path);
                        }
                        Message::Finish(drain) => deadline = Some(Instant::now() + drain),
                    }
                }
                continue;
            }
            Ok(Message::Finish(drain)) => {
                deadline = Some(Instant::now() + drain);
                continue;
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                if deadline.is_none() {
                    deadline = Some(Instant::now());
                }
            }
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        if retry_at.is_some_and(|at| at > Instant::now()) {
            continue;
        }
        let Some(path) = pending.first().cloned() else {
            continue;
        };
        if !path.exists() {
            pending.remove(&path);
            report.vanished.push(path);
            continue;
        }
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        match store.upload_file(&path, &name) {
            Ok(uploaded) => {
                pending.remove(&path);
                if let Err(err) = std::fs::remove_file(&path) {
                    if config.log_to_stderr {
                        eprintln!(
                            "nixcap: warning: {} is uploaded but could not be deleted: {err}",
                            path.display()
                        );
                    }
                }
                if failing && config.log_to_stderr {
                    eprintln!("nixcap: uploads to {} work again", uploaded.url);
                }
                failing = false;
                backoff = config.initial_backoff;
                retry_at = None;
                report.uploaded.push(uploaded);
            }
            Err(err) => {
                report.failures += 1;
                if config.log_to_stderr {
                    eprintln!(
                        "nixcap: upload of {} failed (kept in the spool; retrying in {:.1} s): {err}",
                        path.display(),
                        backoff.as_secs_f64()
                    );
                }
                failing = true;
                retry_at = Some(Instant::now() + backoff);
                backoff = (backoff * 2).min(config.max_backoff);
            }
        }
    }
    report.pending = pending.into_iter().filter(|p| p.exists()).collect();
    report
}
