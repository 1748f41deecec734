//! nixcap-replay: a fake `nix-daemon` that serves a capture to real Nix
//! clients.
//!
//! Record a build once, then replay it in tests: the replayer listens on a
//! Unix socket, speaks the daemon side of the recorded handshake, and answers
//! each client request with the bytes the real daemon sent for the matching
//! recorded request — log messages, reply and downloads, verbatim. No daemon
//! and no store are needed.
//!
//! ```text
//! let server = Server::start_file("build.nixcap", Options::default())?;
//! // run clients with NIX_REMOTE=server.store_uri()
//! let report = server.finish();
//! assert!(!report.diverged(), "{}", report.render());
//! ```
//!
//! * Matching ([`MatchMode`]): strict order per connection, by normalised
//!   request (the default), or by request with reuse of answers.
//! * A request the capture cannot answer gets a `STDERR_ERROR` naming the op
//!   and its key argument, so the client fails at once; so does a client of
//!   another protocol version, during the handshake, unless
//!   [`VersionPolicy::Translate`] is chosen: then its handshake is
//!   negotiated as the recorded daemon would, and the recorded answers are
//!   re-encoded for its version.
//! * An op whose recorded answer ends early (the capture was cut) is
//!   reported as a hang and its connection closed, instead of leaving the
//!   client waiting.
//! * Store objects whose contents crossed the wire, and those the recorder
//!   fetched itself (format 1.1), are written to a store root
//!   ([`store_root`]) for clients that read store files directly;
//!   [`fetch`] is what a recorder uses to fetch them.
//! * Everything that did not go as recorded ends up in the
//!   [`DivergenceReport`] that [`Server::finish`] returns.

mod conn;
pub mod fetch;
mod key;
mod matcher;
pub mod plan;
mod recorded;
mod report;
pub mod store_root;

use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use nixcap_socket::{BoundSocket, PrivateDir, SocketFile};
use nixcap_view::DecodedCapture;

pub use fetch::{fetch_for_capture_file, fetch_store_objects, FetchSummary, Fetched};
pub use key::request_key;
pub use nixcap_socket::{ListenError, MAX_SOCKET_PATH};
pub use plan::{plan_fetch, plan_fetch_file, FetchPlanner};
pub use report::{
    AppliedTranslation, ConnectionProblem, DerivedAnswer, DivergenceReport, Hang, Refusal,
    TranslatedConnection, UnmatchedRequest, Untranslated, UnusedExchange, UploadMismatch,
};
pub use store_root::{FetchPlan, Materialised, StoreRootError};

use matcher::Matcher;
use recorded::Recorded;

/// How live requests find their recorded answers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MatchMode {
    /// Each live connection replays one recorded connection's ops in order.
    Strict,
    /// By op and normalised arguments; each recorded answer is used once, in
    /// recording order.
    #[default]
    Keyed,
    /// As `Keyed`, but recorded answers may be served again.
    Reuse,
}

/// What to do with a client whose protocol version no recorded connection
/// has.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum VersionPolicy {
    /// End the handshake with an error naming the recorded versions.
    #[default]
    Refuse,
    /// Serve it: negotiate the version the client and the recorded daemon
    /// agree on, match its requests in a version-neutral form, and
    /// re-encode the recorded answers for it
    /// ([`nixcap_wire::translate`]); every change made is listed in the
    /// report's `translations`, and an answer that cannot be expressed at
    /// the client's version in its `untranslatable`.
    Translate,
}

/// Where the store root goes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum StoreRoot {
    /// No store root: the store URI has no `root=`.
    None,
    /// A temporary directory, deleted by [`Server::finish`].
    #[default]
    Temp,
    /// This directory (created if missing, kept afterwards).
    Dir(PathBuf),
}

/// Options of a replay.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Options {
    /// How requests are matched.
    pub match_mode: MatchMode,
    /// 0 sends as fast as possible; 1.0 keeps the recorded pacing; 2.0 goes
    /// twice as fast.
    pub speed: f64,
    /// The socket to listen on; `None` makes one in a private temporary
    /// directory.
    pub socket: Option<PathBuf>,
    /// Where to materialise store objects.
    pub store_root: StoreRoot,
    /// Clients of a protocol version the capture does not hold.
    pub version_policy: VersionPolicy,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            match_mode: MatchMode::Keyed,
            speed: 0.0,
            socket: None,
            store_root: StoreRoot::Temp,
            version_policy: VersionPolicy::Refuse,
        }
    }
}

impl Options {
    /// Sets the matching mode.
    pub fn match_mode(mut self, mode: MatchMode) -> Self {
        self.match_mode = mode;
        self
    }

    /// Sets the pacing (0 for as fast as possible).
    pub fn speed(mut self, speed: f64) -> Self {
        self.speed = speed;
        self
    }

    /// Listens on `path` instead of a private temporary socket.
    pub fn socket(mut self, path: impl Into<PathBuf>) -> Self {
        self.socket = Some(path.into());
        self
    }

    /// Sets where store objects go.
    pub fn store_root(mut self, root: StoreRoot) -> Self {
        self.store_root = root;
        self
    }

    /// Sets what happens to clients of another protocol version.
    pub fn version_policy(mut self, policy: VersionPolicy) -> Self {
        self.version_policy = policy;
        self
    }
}

/// Why a replay could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The capture file could not be read.
    #[error("reading the capture: {0}")]
    Capture(#[from] nixcap_capture::ReadError),
    /// The capture has no connection with a complete daemon hello.
    #[error("the capture holds no connection whose daemon handshake can be replayed")]
    NoHandshake,
    /// The speed is negative or not a number.
    #[error("invalid speed {0}: use 0 (as fast as possible) or a positive factor")]
    BadSpeed(f64),
    /// The listening socket could not be created.
    #[error(transparent)]
    Listen(#[from] ListenError),
    /// The temporary directory could not be created.
    #[error("creating a temporary directory: {0}")]
    TempDir(#[source] std::io::Error),
    /// The store root could not be written.
    #[error(transparent)]
    StoreRoot(#[from] StoreRootError),
    /// A thread could not be started.
    #[error("starting a thread: {0}")]
    Thread(#[source] std::io::Error),
}

/// State shared by the accept loop and the connections.
#[derive(Debug)]
pub(crate) struct Shared {
    recorded: Arc<Recorded>,
    options: Options,
    matcher: Mutex<Matcher>,
    report: Mutex<DivergenceReport>,
    stopping: AtomicBool,
    /// Clones of the open connections' sockets, to shut them down at the end.
    streams: Mutex<std::collections::HashMap<u64, UnixStream>>,
}

impl Shared {
    fn new(recorded: Arc<Recorded>, options: Options) -> Shared {
        Shared {
            matcher: Mutex::new(Matcher::new(
                options.match_mode,
                options.version_policy,
                Arc::clone(&recorded),
            )),
            recorded,
            options,
            report: Mutex::new(DivergenceReport::default()),
            stopping: AtomicBool::new(false),
            streams: Mutex::new(std::collections::HashMap::new()),
        }
    }

    /// The report with the recorded ops no client asked for.
    fn final_report(&self) -> DivergenceReport {
        let mut report = self
            .report
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let matcher = self.lock_matcher();
        report.unused = matcher
            .unused()
            .into_iter()
            .map(|(c, e)| {
                let conn = &self.recorded.connections[c];
                let exchange = &conn.exchanges[e];
                UnusedExchange {
                    recorded_connection: conn.conn,
                    seq: exchange.seq,
                    op: exchange.op_name.clone(),
                    key_argument: exchange.key_argument.clone(),
                }
            })
            .collect();
        report
    }
    pub(crate) fn with_report(&self, f: impl FnOnce(&mut DivergenceReport)) {
        let mut guard = self
            .report
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut guard);
    }

    pub(crate) fn lock_matcher(&self) -> MutexGuard<'_, Matcher> {
        self.matcher
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Forgets the socket clone of a connection that ended.
    pub(crate) fn forget_stream(&self, id: u64) {
        self.streams
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&id);
    }

    pub(crate) fn stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }
}

/// A running replay.
#[derive(Debug)]
pub struct Server {
    shared: Arc<Shared>,
    socket_path: PathBuf,
    /// The socket file, removed at the end if it is still this server's.
    socket_file: SocketFile,
    store_root: Option<PathBuf>,
    materialised: Materialised,
    accept: Option<JoinHandle<Vec<JoinHandle<()>>>>,
    /// The private directory of the socket and the temporary store root.
    _private: Option<PrivateDir>,
}

impl Server {
    /// Reads the capture file at `path` and starts serving it.
    pub fn start_file(path: impl AsRef<Path>, options: Options) -> Result<Server, Error> {
        let capture = nixcap_capture::read_capture_file(path)?;
        Server::start(DecodedCapture::new(capture), options)
    }

    /// Starts serving `capture` on a socket, in background threads.
    pub fn start(capture: DecodedCapture, options: Options) -> Result<Server, Error> {
        if !(options.speed >= 0.0 && options.speed.is_finite()) {
            return Err(Error::BadSpeed(options.speed));
        }
        let recorded = Arc::new(Recorded::new(&capture));
        if !recorded
            .connections
            .iter()
            .any(|c| c.daemon_hello.is_some() && c.daemon_version.is_some())
        {
            return Err(Error::NoHandshake);
        }
        let needs_private = options.socket.is_none() || options.store_root == StoreRoot::Temp;
        let private = if needs_private {
            Some(
                PrivateDir::create_in(&std::env::temp_dir(), "nixcap-replay-")
                    .map_err(Error::TempDir)?,
            )
        } else {
            None
        };
        let store_root = match (&options.store_root, &private) {
            (StoreRoot::None, _) => None,
            (StoreRoot::Temp, Some(dir)) => Some(dir.path().join("root")),
            (StoreRoot::Temp, None) => None,
            (StoreRoot::Dir(dir), _) => Some(dir.clone()),
        };
        let mut materialised = Materialised::default();
        if let Some(root) = &store_root {
            std::fs::create_dir_all(root.join("nix/store")).map_err(|source| {
                StoreRootError::Io {
                    action: "creating",
                    path: root.join("nix/store"),
                    source,
                }
            })?;
            materialised = store_root::materialise(&capture, root)?;
        }
        let socket_path = match (&options.socket, &private) {
            (Some(path), _) => path.clone(),
            (None, Some(dir)) => dir.path().join("sock"),
            (None, None) => return Err(Error::NoHandshake),
        };
        let BoundSocket {
            listener,
            file: socket_file,
        } = nixcap_socket::bind(&socket_path, 0o600)?;
        let shared = Arc::new(Shared::new(recorded, options));
        let accept_shared = Arc::clone(&shared);
        let accept = std::thread::Builder::new()
            .name("nixcap-replay".to_owned())
            .spawn(move || accept_loop(listener, accept_shared))
            .map_err(Error::Thread)?;
        Ok(Server {
            shared,
            socket_path,
            socket_file,
            store_root,
            materialised,
            accept: Some(accept),
            _private: private,
        })
    }

    /// The socket clients connect to.
    pub fn socket_path(&self) -> &Path {
        &self.socket_path
    }

    /// The store root, if there is one.
    pub fn store_root(&self) -> Option<&Path> {
        self.store_root.as_deref()
    }

    /// What was written to the store root.
    pub fn materialised(&self) -> &Materialised {
        &self.materialised
    }

    /// The store URI to give clients (`NIX_REMOTE` or `--store`):
    /// `unix://<socket>`, with `?root=<store root>` when there is one.
    pub fn store_uri(&self) -> String {
        match &self.store_root {
            Some(root) => format!(
                "unix://{}?root={}",
                self.socket_path.display(),
                root.display()
            ),
            None => format!("unix://{}", self.socket_path.display()),
        }
    }

    /// The report so far (without the list of unused recorded ops, which is
    /// only final at the end).
    pub fn report(&self) -> DivergenceReport {
        self.shared
            .report
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Stops serving: closes the socket and any connection still open,
    /// waits for the connection threads, removes the socket (and the
    /// temporary store root) and returns the final report.
    pub fn finish(mut self) -> DivergenceReport {
        self.stop()
    }

    fn stop(&mut self) -> DivergenceReport {
        self.shared.stopping.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = UnixStream::connect(&self.socket_path);
        let workers = self
            .accept
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        for stream in self
            .shared
            .streams
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .values()
        {
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
        for worker in workers {
            let _ = worker.join();
        }
        self.socket_file.remove_file();
        self.shared.final_report()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.accept.is_some() {
            let _ = self.stop();
        }
    }
}

/// Serves one session on a pair of byte streams instead of a socket: the
/// remote program of an SSH store (`nixcap replay --stdio`), where the
/// client's bytes arrive on `input` (stdin) and the answers go to `output`
/// (stdout). The session speaks the worker protocol (`ssh-ng://`, as
/// `nix-daemon --stdio` would) or the serve protocol (`ssh://`, as
/// `nix-store --serve` would), whichever the client's first word names.
///
/// Returns the report once the session is over: the client closed its
/// side, or the replayer closed it (divergence). No store root is made: a
/// remote client reads nothing from the store's disk. `input` is read on a
/// thread that is not waited for, since a client may keep its side open
/// after the session is over.
pub fn serve_stdio<I, O>(
    capture: &DecodedCapture,
    options: Options,
    input: I,
    output: O,
) -> Result<DivergenceReport, Error>
where
    I: std::io::Read + Send + 'static,
    O: std::io::Write + Send + 'static,
{
    if !(options.speed >= 0.0 && options.speed.is_finite()) {
        return Err(Error::BadSpeed(options.speed));
    }
    let recorded = Arc::new(Recorded::new(capture));
    if !recorded
        .connections
        .iter()
        .any(|c| c.daemon_hello.is_some() && c.daemon_version.is_some())
    {
        return Err(Error::NoHandshake);
    }
    let shared = Arc::new(Shared::new(recorded, options.store_root(StoreRoot::None)));
    let (ours, theirs) = UnixStream::pair().map_err(Error::Thread)?;
    let to_live = theirs.try_clone().map_err(Error::Thread)?;
    std::thread::Builder::new()
        .name("nixcap-replay-stdin".to_owned())
        .spawn(move || pump_in(input, to_live))
        .map_err(Error::Thread)?;
    let from_live = theirs;
    let out = std::thread::Builder::new()
        .name("nixcap-replay-stdout".to_owned())
        .spawn(move || pump_out(from_live, output))
        .map_err(Error::Thread)?;
    shared.with_report(|r| r.connections += 1);
    conn::Live::new(1, ours, Arc::clone(&shared)).run();
    if let Ok(Err(err)) = out.join() {
        shared.with_report(|r| {
            r.problems.push(ConnectionProblem {
                connection: 1,
                problem: format!("writing to stdout: {err}"),
            })
        });
    }
    Ok(shared.final_report())
}

/// Copies the client's bytes to the live connection until either ends.
fn pump_in<I: std::io::Read>(mut input: I, mut to: UnixStream) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if std::io::Write::write_all(&mut to, &buf[..n]).is_err() {
            return;
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Write);
}

/// Copies the live connection's answers out until the connection ends.
fn pump_out<O: std::io::Write>(mut from: UnixStream, mut output: O) -> std::io::Result<()> {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match std::io::Read::read(&mut from, &mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => return Err(e),
        };
        output.write_all(&buf[..n])?;
        output.flush()?;
    }
    output.flush()
}

fn accept_loop(listener: UnixListener, shared: Arc<Shared>) -> Vec<JoinHandle<()>> {
    let next_id = AtomicU64::new(1);
    let mut workers = Vec::new();
    for stream in listener.incoming() {
        if shared.stopping() {
            break;
        }
        let Ok(stream) = stream else {
            continue;
        };
        // Let go of the threads of connections that ended: a finished
        // thread's handle, dropped, releases its stack, so a long-lived
        // replayer holds resources only for the connections still open.
        workers.retain(|worker: &JoinHandle<()>| !worker.is_finished());
        let id = next_id.fetch_add(1, Ordering::SeqCst);
        shared.with_report(|r| r.connections += 1);
        if let Ok(clone) = stream.try_clone() {
            shared
                .streams
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert(id, clone);
        }
        let live = conn::Live::new(id, stream, Arc::clone(&shared));
        match std::thread::Builder::new()
            .name(format!("nixcap-replay-{id}"))
            .spawn(move || live.run())
        {
            Ok(handle) => workers.push(handle),
            Err(err) => shared.with_report(|r| {
                r.problems.push(ConnectionProblem {
                    connection: id,
                    problem: format!("could not start a thread: {err}"),
                })
            }),
        }
    }
    workers
}
