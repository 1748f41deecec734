//! The recorder: a listening socket, an accept loop, and the capture thread.
//!
//! [`Recorder`] runs inside a tokio runtime the caller provides.
//! [`BackgroundRecorder`] brings its own runtime, for callers (tests,
//! fixture scripts) that are not async themselves.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nixcap_capture::{
    CloseReason, Header, PeerCred, StoreObjectKind, Summary, Writer, WriterOptions,
};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::oneshot;
use tokio::task::JoinSet;

use crate::addr::DaemonAddr;
use crate::flight::{Flight, FlightOutput};
use crate::output::CaptureOutput;
use crate::proxy::{self, Cancel, Counters, Shared};
use crate::rotate::{RotatedSet, RotatingOutput, Rotation};
use crate::sink::{self, BufferPool, Clock, Event, SinkOutcome, SinkSettings};
use nixcap_socket::{self as socket, BoundSocket, ListenError, PrivateDir, SocketFile};

/// Extra time given to connections after the grace period, once they have
/// been told to stop, before their tasks are cut off.
const STOP_TIMEOUT: Duration = Duration::from_secs(1);

/// Why a recorder could not start or finish.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The listening socket could not be set up.
    #[error(transparent)]
    Listen(#[from] ListenError),
    /// No private directory could be made for the socket.
    #[error("cannot create a private directory for the socket")]
    PrivateDir(#[source] io::Error),
    /// The capture header could not be written.
    #[error("cannot start the capture")]
    CaptureStart(#[source] nixcap_capture::WriteError),
    /// The capture thread could not be started.
    #[error("cannot start the capture thread")]
    Thread(#[source] io::Error),
    /// The tokio runtime of a [`BackgroundRecorder`] could not be built.
    #[error("cannot start the recorder's runtime")]
    Runtime(#[source] io::Error),
    /// The recorder's own credentials could not be read.
    #[error("cannot determine the recorder's own user id")]
    OwnCredentials(#[source] io::Error),
    /// The capture thread ended without reporting (it panicked).
    #[error("the capture thread stopped unexpectedly")]
    CaptureThreadLost,
    /// The upstream address is the recorder's own socket.
    #[error("the upstream {path} is the recorder's own socket")]
    UpstreamIsListen {
        /// The socket path.
        path: PathBuf,
    },
}

/// What to listen on, where to forward, and who may connect.
#[derive(Debug, Clone)]
pub struct Config {
    /// The socket path to listen on; `None` makes a fresh private directory
    /// (mode 0700, under `$TMPDIR`) and listens on `socket` inside it.
    pub listen: Option<PathBuf>,
    /// The daemon to forward to.
    pub upstream: DaemonAddr,
    /// Users, besides the recorder's own, who may connect. Everyone else is
    /// refused: the daemon sees the recorder's uid, not theirs.
    pub allow_uids: Vec<u32>,
    /// Permission bits of the listening socket. 0600 unless other users are
    /// allowed, in which case they also need write access to the socket.
    pub socket_mode: u32,
    /// Header metadata, added to (and overriding) what the recorder fills
    /// in: `hostname`, `argv`, `listen`, `upstream`, `version`.
    pub metadata: BTreeMap<String, String>,
    /// Where the capture is written, if it is a file: named in messages and
    /// recorded in the header metadata (`capture`).
    pub capture_path: Option<PathBuf>,
    /// Tuning.
    pub options: Options,
    /// Flight-recorder mode: keep only the sessions this decides to keep
    /// (see [`crate::flight`]); `None` keeps every session.
    pub flight: Option<Flight>,
}

impl Config {
    /// A configuration with default options, listening on `listen` (or a
    /// private temporary socket) and forwarding to `upstream`.
    pub fn new(listen: Option<PathBuf>, upstream: DaemonAddr) -> Self {
        Self {
            listen,
            upstream,
            allow_uids: Vec::new(),
            socket_mode: 0o600,
            metadata: BTreeMap::new(),
            capture_path: None,
            options: Options::default(),
            flight: None,
        }
    }
}

/// Tuning knobs of a recorder.
#[derive(Debug, Clone)]
pub struct Options {
    /// Size of each forwarding buffer (one per direction per connection).
    pub buffer_size: usize,
    /// How many bytes of recorded data may wait for the capture thread before
    /// forwarding slows down.
    pub capture_queue_bytes: usize,
    /// How long connections may still run after the recorder is asked to
    /// stop, before they are closed with reason `Shutdown`.
    pub shutdown_grace: Duration,
    /// Print warnings (refused peers, unreachable daemon, capture failures)
    /// to stderr.
    pub log_to_stderr: bool,
    /// How the capture is framed and compressed.
    pub writer: WriterOptions,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            buffer_size: 64 * 1024,
            // Bounds the recorder's memory (the benchmark's target is a flat
            // peak RSS under 32 MiB) while absorbing a disk hiccup of a few
            // tens of milliseconds at full speed.
            capture_queue_bytes: 8 << 20,
            shutdown_grace: Duration::from_secs(2),
            log_to_stderr: true,
            writer: WriterOptions {
                // The capture thread takes queued chunks and checks for due
                // frames every 20 ms (`IDLE_TICK`), so every chunk reaches
                // the file within 100 ms of crossing the proxy.
                frame_max_age_nanos: 75_000_000,
                ..WriterOptions::default()
            },
        }
    }
}

/// Counters of a recorder, over its whole life.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Connections accepted (including refused and unreachable ones).
    pub connections: u64,
    /// Connections refused because of the peer's uid.
    pub refused: u64,
    /// Connections closed because the daemon could not be reached.
    pub unreachable: u64,
    /// Connections open right now.
    pub active: u64,
    /// Bytes forwarded from clients to the daemon.
    pub bytes_client_to_daemon: u64,
    /// Bytes forwarded from the daemon to clients.
    pub bytes_daemon_to_client: u64,
}

impl Stats {
    fn from_counters(counters: &Counters) -> Self {
        Self {
            connections: counters.connections.load(Ordering::Relaxed),
            refused: counters.refused.load(Ordering::Relaxed),
            unreachable: counters.unreachable.load(Ordering::Relaxed),
            active: counters.active.load(Ordering::Relaxed),
            bytes_client_to_daemon: counters.bytes_client_to_daemon.load(Ordering::Relaxed),
            bytes_daemon_to_client: counters.bytes_daemon_to_client.load(Ordering::Relaxed),
        }
    }
}

/// The result of a finished recorder.
#[derive(Debug)]
#[non_exhaustive]
pub struct Report<W> {
    /// What the proxy forwarded.
    pub stats: Stats,
    /// The capture writer's totals: final if the capture finished, else as
    /// far as it got.
    pub summary: Option<Summary>,
    /// Why the capture is incomplete; empty if it holds everything.
    pub capture_problems: Vec<String>,
    /// True if the capture has a footer (it was finished normally).
    pub capture_finished: bool,
    /// The capture output, given back if the capture was finished.
    pub out: Option<W>,
}

impl<W> Report<W> {
    /// True if the capture was finished and holds every connection.
    pub fn capture_complete(&self) -> bool {
        self.capture_finished && self.capture_problems.is_empty()
    }
}

/// A running recorder. Dropping it without [`Recorder::finish`] stops
/// accepting, and the capture is finished by its thread as connections go.
#[derive(Debug)]
pub struct Recorder<W> {
    socket_path: PathBuf,
    client_store_uri: String,
    own_uid: u32,
    stop_accepting: Arc<Cancel>,
    accept_task: Option<tokio::task::JoinHandle<()>>,
    shared: Arc<Shared>,
    outcome: Option<oneshot::Receiver<SinkOutcome<W>>>,
    _private_dir: Option<PrivateDir>,
}

impl<W: Write + Send + 'static> Recorder<W> {
    /// Binds the socket, writes the capture header to `out`, and starts
    /// accepting connections. Must be called inside a tokio runtime with I/O
    /// and time enabled.
    ///
    /// This installs a process-wide SIGXFSZ handler (see
    /// `ignore_file_size_signal`), so that a file size limit makes capture
    /// writes fail instead of killing the process.
    pub async fn start(config: Config, out: W) -> Result<Self, Error> {
        let options = config.options.writer.clone();
        match config.flight.clone() {
            Some(flight) => {
                Self::start_with(config, move |header| {
                    let journal_header = header.clone();
                    FlightOutput::new(
                        Writer::new(out, header, options.clone())?,
                        flight,
                        &journal_header,
                        &options,
                    )
                })
                .await
            }
            None => Self::start_with(config, move |header| Writer::new(out, header, options)).await,
        }
    }
}

impl Recorder<RotatedSet> {
    /// Like [`Recorder::start`], but writes a rotated set of capture files
    /// into `rotation.dir` (see [`crate::rotate`]); the report's `out` is
    /// the set.
    pub async fn start_rotating(config: Config, mut rotation: Rotation) -> Result<Self, Error> {
        let options = config.options.writer.clone();
        match config.flight.clone() {
            Some(flight) => {
                // Sessions are written when they close, so their times may
                // come before the current file's start.
                rotation.times_from_recorder_start = true;
                Self::start_with(config, move |header| {
                    let journal_header = header.clone();
                    FlightOutput::new(
                        RotatingOutput::new(rotation, header, options.clone())?,
                        flight,
                        &journal_header,
                        &options,
                    )
                })
                .await
            }
            None => {
                Self::start_with(config, move |header| {
                    RotatingOutput::new(rotation, header, options)
                })
                .await
            }
        }
    }
}

impl<W: Send + 'static> Recorder<W> {
    /// Binds the socket, makes the capture output from the header, and
    /// starts accepting connections.
    async fn start_with<O>(
        config: Config,
        make_output: impl FnOnce(Header) -> Result<O, nixcap_capture::WriteError>,
    ) -> Result<Self, Error>
    where
        O: CaptureOutput<Out = W> + Send + 'static,
    {
        ignore_file_size_signal();
        let own_uid = own_uid()?;
        let (private_dir, listen_path) = match &config.listen {
            Some(path) => (None, path.clone()),
            None => {
                let dir = PrivateDir::new().map_err(Error::PrivateDir)?;
                let path = dir.path().join("socket");
                (Some(dir), path)
            }
        };
        let BoundSocket {
            listener,
            file: socket_file,
        } = socket::bind(&listen_path, config.socket_mode)?;
        if socket_file.is_at(config.upstream.path()) {
            return Err(Error::UpstreamIsListen {
                path: listen_path.clone(),
            });
        }
        listener
            .set_nonblocking(true)
            .map_err(|source| ListenError::Io {
                action: "configuring",
                path: listen_path.clone(),
                source,
            })?;
        let listener = UnixListener::from_std(listener).map_err(|source| ListenError::Io {
            action: "registering",
            path: listen_path.clone(),
            source,
        })?;

        let start_wall = SystemTime::now();
        let clock = Clock::new(Instant::now());
        let header = Header {
            tool_version: format!("nixcap {}", env!("CARGO_PKG_VERSION")),
            start_unix_nanos: start_wall
                .duration_since(UNIX_EPOCH)
                .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
                .unwrap_or(0),
            metadata: header_metadata(&config, &listen_path),
        };
        let writer = make_output(header).map_err(Error::CaptureStart)?;
        let buffer_size = config.options.buffer_size.max(4096);
        let pool = Arc::new(BufferPool::new(
            buffer_size,
            (config.options.capture_queue_bytes / buffer_size).clamp(16, 1024),
        ));
        let (sink, outcome) = sink::spawn(
            writer,
            clock,
            pool,
            SinkSettings {
                budget_bytes: config.options.capture_queue_bytes,
                log_to_stderr: config.options.log_to_stderr,
                describe_output: match &config.capture_path {
                    Some(path) => format!("the capture {}", path.display()),
                    None => "the capture".to_owned(),
                },
            },
        )
        .map_err(Error::Thread)?;

        let shared = Arc::new(Shared {
            upstream: config.upstream.path().to_owned(),
            sink,
            clock,
            counters: Counters::default(),
            stop_forwarding: Cancel::default(),
            log_to_stderr: config.options.log_to_stderr,
        });
        let stop_accepting = Arc::new(Cancel::default());
        let mut allowed = config.allow_uids.clone();
        allowed.push(own_uid);
        allowed.sort_unstable();
        allowed.dedup();
        let accept_task = tokio::spawn(accept_loop(AcceptLoop {
            listener,
            socket_file,
            shared: Arc::clone(&shared),
            stop: Arc::clone(&stop_accepting),
            allowed,
            own_uid,
            grace: config.options.shutdown_grace,
        }));
        let client_store_uri = DaemonAddr::from_path(&listen_path)
            .with_query(config.upstream.query().map(str::to_owned))
            .store_uri();
        Ok(Self {
            socket_path: listen_path,
            client_store_uri,
            own_uid,
            stop_accepting,
            accept_task: Some(accept_task),
            shared,
            outcome: Some(outcome),
            _private_dir: private_dir,
        })
    }

    /// The socket clients should connect to.
    pub fn socket_path(&self) -> &Path {
        &self.socket_path
    }

    /// The store URI clients should use: `unix://<socket>`, with the
    /// upstream address's query (such as `?root=`) carried over.
    pub fn client_store_uri(&self) -> &str {
        &self.client_store_uri
    }

    /// The uid the daemon will see, and that may always connect.
    pub fn own_uid(&self) -> u32 {
        self.own_uid
    }

    /// The counters so far.
    pub fn stats(&self) -> Stats {
        Stats::from_counters(&self.shared.counters)
    }

    /// Adds a free-text annotation to the capture, timestamped now.
    pub async fn annotate(&self, text: &str) {
        let t = self.shared.clock.nanos();
        self.shared
            .sink
            .send(Event::Annotate {
                t,
                text: text.to_owned(),
            })
            .await;
    }

    /// Stops accepting, lets open connections finish (up to the grace
    /// period) and closes the rest, then writes out everything recorded, so
    /// that the capture file holds every connection's blocks. The capture is
    /// not finished: [`Recorder::store_object`] can still add contents
    /// fetched outside the connections, and [`Recorder::finish`] finishes it.
    pub async fn drain(&mut self) {
        self.stop_accepting.cancel();
        if let Some(task) = self.accept_task.take() {
            // The accept loop catches connection panics itself; a panic of
            // the loop would leave nothing more to wait for.
            let _ = task.await;
        }
        self.shared.sink.flush().await;
        // No connection is left to forward: the forwarding buffers (up to the
        // capture queue's size) and, with the flush, the writer's frame
        // buffers are freed before the capture is read back.
        self.shared.sink.pool.clear();
    }

    /// Adds a store object to the capture: contents fetched outside every
    /// recorded connection (`Ok`), or why they could not be had (`Err`).
    /// They are written apart from the connections' streams.
    pub async fn store_object(
        &self,
        kind: StoreObjectKind,
        name: &str,
        contents: Result<Vec<u8>, String>,
    ) {
        let t = self.shared.clock.nanos();
        self.shared
            .sink
            .send(Event::StoreObject {
                t,
                kind,
                name: name.to_owned(),
                contents,
            })
            .await;
    }

    /// Stops accepting, lets open connections finish (up to the grace
    /// period), closes the rest, and finishes the capture.
    pub async fn finish(mut self) -> Result<Report<W>, Error> {
        self.drain().await;
        let t = self.shared.clock.nanos();
        self.shared.sink.finish(t);
        let outcome = match self.outcome.take() {
            Some(receiver) => receiver.await.map_err(|_| Error::CaptureThreadLost)?,
            None => return Err(Error::CaptureThreadLost),
        };
        Ok(Report {
            stats: self.stats(),
            summary: outcome.summary,
            capture_finished: !outcome.failed && outcome.out.is_some(),
            capture_problems: outcome.problems,
            out: outcome.out,
        })
    }
}

impl<W> Drop for Recorder<W> {
    fn drop(&mut self) {
        // Without `finish`, at least stop accepting; the accept loop then
        // drains the connections and removes the socket file.
        self.stop_accepting.cancel();
    }
}

/// Runs a recorder until `shutdown` completes, then finishes it.
pub async fn run<W, F>(config: Config, out: W, shutdown: F) -> Result<Report<W>, Error>
where
    W: Write + Send + 'static,
    F: Future<Output = ()>,
{
    let recorder = Recorder::start(config, out).await?;
    shutdown.await;
    recorder.finish().await
}

/// A recorder with its own tokio runtime, for callers that are not async.
#[derive(Debug)]
pub struct BackgroundRecorder<W> {
    recorder: Option<Recorder<W>>,
    runtime: Option<tokio::runtime::Runtime>,
}

/// A fresh runtime with two worker threads for a [`BackgroundRecorder`].
fn background_runtime() -> Result<tokio::runtime::Runtime, Error> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("nixcap-record")
        .enable_all()
        .build()
        .map_err(Error::Runtime)
}

impl BackgroundRecorder<RotatedSet> {
    /// Starts a rotating recorder (see [`Recorder::start_rotating`]) on a
    /// fresh runtime with two worker threads.
    pub fn start_rotating(config: Config, rotation: Rotation) -> Result<Self, Error> {
        let runtime = background_runtime()?;
        let recorder = runtime.block_on(Recorder::start_rotating(config, rotation))?;
        Ok(Self {
            recorder: Some(recorder),
            runtime: Some(runtime),
        })
    }
}

impl<W: Send + 'static> BackgroundRecorder<W> {
    /// Starts a recorder on a fresh runtime with two worker threads.
    pub fn start(config: Config, out: W) -> Result<Self, Error>
    where
        W: Write,
    {
        let runtime = background_runtime()?;
        let recorder = runtime.block_on(Recorder::start(config, out))?;
        Ok(Self {
            recorder: Some(recorder),
            runtime: Some(runtime),
        })
    }

    /// Starts a recorder listening on a fresh private socket and forwarding
    /// to `upstream`, with default options.
    pub fn start_private(upstream: DaemonAddr, out: W) -> Result<Self, Error>
    where
        W: Write,
    {
        Self::start(Config::new(None, upstream), out)
    }

    fn recorder(&self) -> &Recorder<W> {
        self.recorder
            .as_ref()
            .expect("the recorder is only taken by `finish`, which consumes self")
    }

    /// The socket clients should connect to.
    pub fn socket_path(&self) -> &Path {
        self.recorder().socket_path()
    }

    /// The store URI clients should use (see [`Recorder::client_store_uri`]).
    pub fn client_store_uri(&self) -> &str {
        self.recorder().client_store_uri()
    }

    /// The counters so far.
    pub fn stats(&self) -> Stats {
        self.recorder().stats()
    }

    /// Adds a free-text annotation to the capture, timestamped now.
    pub fn annotate(&self, text: &str) {
        if let (Some(runtime), Some(recorder)) = (&self.runtime, &self.recorder) {
            runtime.block_on(recorder.annotate(text));
        }
    }

    /// Stops accepting and writes out everything recorded, without
    /// finishing the capture (see [`Recorder::drain`]).
    pub fn drain(&mut self) {
        if let (Some(runtime), Some(recorder)) = (&self.runtime, &mut self.recorder) {
            runtime.block_on(recorder.drain());
        }
    }

    /// Adds a store object to the capture (see [`Recorder::store_object`]).
    pub fn store_object(
        &self,
        kind: StoreObjectKind,
        name: &str,
        contents: Result<Vec<u8>, String>,
    ) {
        if let (Some(runtime), Some(recorder)) = (&self.runtime, &self.recorder) {
            runtime.block_on(recorder.store_object(kind, name, contents));
        }
    }

    /// Stops the recorder and finishes the capture (see [`Recorder::finish`]).
    pub fn finish(mut self) -> Result<Report<W>, Error> {
        let (Some(runtime), Some(recorder)) = (self.runtime.take(), self.recorder.take()) else {
            return Err(Error::CaptureThreadLost);
        };
        let report = runtime.block_on(recorder.finish());
        runtime.shutdown_timeout(Duration::from_secs(1));
        report
    }
}

impl<W> Drop for BackgroundRecorder<W> {
    fn drop(&mut self) {
        drop(self.recorder.take());
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_timeout(Duration::from_secs(1));
        }
    }
}

struct AcceptLoop {
    listener: UnixListener,
    socket_file: SocketFile,
    shared: Arc<Shared>,
    stop: Arc<Cancel>,
    allowed: Vec<u32>,
    own_uid: u32,
    grace: Duration,
}

async fn accept_loop(state: AcceptLoop) {
    let AcceptLoop {
        listener,
        socket_file,
        shared,
        stop,
        allowed,
        own_uid,
        grace,
    } = state;
    let mut tasks = JoinSet::new();
    let mut task_conns: HashMap<tokio::task::Id, u64> = HashMap::new();
    let mut next_conn: u64 = 1;
    let mut accept_errors_logged = 0u32;
    loop {
        tokio::select! {
            biased;
            () = stop.cancelled() => break,
            Some(joined) = tasks.join_next_with_id(), if !tasks.is_empty() => {
                reap(joined, &mut task_conns, &shared).await;
            }
            accepted = listener.accept() => match accepted {
                Ok((stream, _addr)) => {
                    let conn = next_conn;
                    next_conn += 1;
                    if let Some(stream) = admit(conn, stream, &allowed, own_uid, &shared).await {
                        shared.counters.active.fetch_add(1, Ordering::Relaxed);
                        let handle = tasks.spawn(proxy::serve(conn, stream, Arc::clone(&shared)));
                        task_conns.insert(handle.id(), conn);
                    }
                }
                Err(error) => {
                    // Typically EMFILE/ENFILE: back off instead of spinning,
                    // and keep serving the connections already open.
                    if shared.log_to_stderr && accept_errors_logged < 10 {
                        accept_errors_logged += 1;
                        eprintln!("nixcap record: accepting a connection failed: {error}");
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
    // No new connections from here on.
    drop(listener);
    socket_file.remove_file();

    let drained = tokio::time::timeout(grace, drain(&mut tasks, &mut task_conns, &shared)).await;
    if drained.is_err() {
        shared.stop_forwarding.cancel();
        let stopped =
            tokio::time::timeout(STOP_TIMEOUT, drain(&mut tasks, &mut task_conns, &shared)).await;
        if stopped.is_err() {
            tasks.abort_all();
            drain(&mut tasks, &mut task_conns, &shared).await;
        }
    }
}

async fn drain(
    tasks: &mut JoinSet<()>,
    task_conns: &mut HashMap<tokio::task::Id, u64>,
    shared: &Shared,
) {
    while let Some(joined) = tasks.join_next_with_id().await {
        reap(joined, task_conns, shared).await;
    }
}

/// Forgets a finished connection task; if it did not end normally, records
/// the close it could not record itself.
async fn reap(
    joined: Result<(tokio::task::Id, ()), tokio::task::JoinError>,
    task_conns: &mut HashMap<tokio::task::Id, u64>,
    shared: &Shared,
) {
    match joined {
        Ok((id, ())) => {
            task_conns.remove(&id);
        }
        Err(error) => {
            let Some(conn) = task_conns.remove(&error.id()) else {
                return;
            };
            shared.counters.active.fetch_sub(1, Ordering::Relaxed);
            let reason = if error.is_cancelled() {
                CloseReason::Shutdown
            } else {
                if shared.log_to_stderr {
                    eprintln!("nixcap record: connection {conn}: internal error: {error}");
                }
                CloseReason::Error {
                    message: format!("internal error in the recorder: {error}"),
                }
            };
            let t = shared.clock.nanos();
            shared.sink.send(Event::Close { conn, t, reason }).await;
        }
    }
}

/// Records the opening of connection `conn` and decides whether its peer may
/// use the daemon. Returns the stream to serve, or `None` if it was refused.
async fn admit(
    conn: u64,
    stream: UnixStream,
    allowed: &[u32],
    own_uid: u32,
    shared: &Shared,
) -> Option<UnixStream> {
    let t = shared.clock.nanos();
    shared.counters.connections.fetch_add(1, Ordering::Relaxed);
    let peer = stream.peer_cred().ok().map(|cred| PeerCred {
        pid: cred.pid().and_then(|pid| u32::try_from(pid).ok()),
        uid: cred.uid(),
        gid: cred.gid(),
    });
    let refusal = match peer {
        Some(peer) if allowed.binary_search(&peer.uid).is_ok() => None,
        Some(peer) => Some(format!(
            "peer uid {} is not allowed (the daemon would see uid {own_uid}; allow it with --allow-uid {})",
            peer.uid, peer.uid
        )),
        None => Some("the peer's credentials could not be read".to_owned()),
    };
    let mut metadata = BTreeMap::new();
    if let Some(refusal) = &refusal {
        metadata.insert("refused".to_owned(), refusal.clone());
    }
    shared
        .sink
        .send(Event::Open {
            conn,
            t,
            peer,
            metadata,
        })
        .await;
    match refusal {
        None => Some(stream),
        Some(refusal) => {
            shared.counters.refused.fetch_add(1, Ordering::Relaxed);
            drop(stream);
            if shared.log_to_stderr {
                let pid = peer
                    .and_then(|p| p.pid)
                    .map(|pid| format!(" (pid {pid})"))
                    .unwrap_or_default();
                eprintln!("nixcap record: refused connection {conn}{pid}: {refusal}");
            }
            let t = shared.clock.nanos();
            shared
                .sink
                .send(Event::Close {
                    conn,
                    t,
                    reason: CloseReason::Error {
                        message: format!("refused: {refusal}"),
                    },
                })
                .await;
            None
        }
    }
}

/// The recorder's effective uid, as `SO_PEERCRED` reports it to a peer.
fn own_uid() -> Result<u32, Error> {
    let (a, _b) = UnixStream::pair().map_err(Error::OwnCredentials)?;
    let cred = a.peer_cred().map_err(Error::OwnCredentials)?;
    Ok(cred.uid())
}

/// Writing past `RLIMIT_FSIZE` raises SIGXFSZ, which kills the process by
/// default. With a handler installed (tokio never uninstalls it), the write
/// fails with EFBIG instead, which the capture thread reports while
/// forwarding goes on.
fn ignore_file_size_signal() {
    let _ = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::from_raw(libc::SIGXFSZ));
}

/// The header metadata every capture gets: `hostname`, `argv`, `version`.
pub(crate) fn header_metadata_base() -> BTreeMap<String, String> {
    let mut metadata = BTreeMap::new();
    metadata.insert("hostname".to_owned(), hostname());
    metadata.insert(
        "argv".to_owned(),
        shell_words(std::env::args_os().map(|a| a.to_string_lossy().into_owned())),
    );
    metadata.insert("version".to_owned(), env!("CARGO_PKG_VERSION").to_owned());
    metadata
}

fn header_metadata(config: &Config, listen: &Path) -> BTreeMap<String, String> {
    let mut metadata = header_metadata_base();
    metadata.insert("listen".to_owned(), listen.display().to_string());
    metadata.insert("upstream".to_owned(), config.upstream.store_uri());
    if let Some(path) = &config.capture_path {
        metadata.insert("capture".to_owned(), path.display().to_string());
    }
    for (key, value) in &config.metadata {
        metadata.insert(key.clone(), value.clone());
    }
    metadata
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|name| name.trim().to_owned())
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}

/// Joins arguments into one line a POSIX shell would split back the same way.
pub(crate) fn shell_words(args: impl IntoIterator<Item = String>) -> String {
    let quoted: Vec<String> = args
        .into_iter()
        .map(|arg| {
            let plain = !arg.is_empty()
                && arg
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b));
            if plain {
                arg
            } else {
                format!("'{}'", arg.replace('\'', r"'\''"))
            }
        })
        .collect();
    quoted.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_words_quotes_only_what_needs_it() {
        let line = shell_words(
            ["nixcap", "record", "-w", "a b", "it's", ""]
                .iter()
                .map(|s| s.to_string()),
        );
        assert_eq!(line, r"nixcap record -w 'a b' 'it'\''s' ''");
    }
}
