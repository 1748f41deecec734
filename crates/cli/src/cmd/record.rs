//! `nixcap record`: put the recording proxy in front of nix-daemon.
//!
//! Two modes:
//! - Standalone, `nixcap record -w FILE --listen SOCK`: serve until SIGINT,
//!   SIGTERM or SIGHUP, then finish the capture.
//! - Wrapper, `nixcap record -w FILE -- CMD ARGS…`: listen on a private
//!   socket, run CMD with `NIX_REMOTE` pointing at it, finish the capture
//!   when CMD exits, and exit with CMD's status.
//!
//! - Stdio, `nixcap record --stdio -w FILE|DIR -- PROGRAM ARGS…`: the
//!   remote program of an SSH store. Runs PROGRAM (`nix-daemon --stdio`,
//!   `nix-store --serve --write`), relays stdin and stdout to it byte for
//!   byte, records the one session, and exits with PROGRAM's status. With a
//!   directory, each session gets its own file named by its start time.
//!
//! When the recording ends, and before the capture is finished, nixcap
//! fetches over a connection of its own what the recorded sessions saw in
//! the store but never received (build outputs, their references, build
//! logs) and adds it as store objects, so that a replay needs no daemon;
//! `--no-store-objects` records only what crossed the socket. Stdio mode
//! records only what crossed the pipes.
//!
//! The capture is written in place at FILE, frame by frame (at least every
//! 100 ms). A recorder that is killed leaves a readable capture at FILE
//! whose last frames may be missing and which has no footer; `nixcap
//! verify` reports it as not finished. No temporary name is used, because a
//! killed recorder could then not leave anything at the path the user gave.

use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::ErrorKind;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::wrap::{self, Signals};
use crate::exit;
use anyhow::{bail, Context};
use nixcap_capture::WriterOptions;
use nixcap_client::ClientOptions;
use nixcap_record::{
    record_stdio_to, store_uri_query, CaptureFile, Config, DaemonAddr, Recorder, Report, Rotation,
    StdioConfig, StdioError, DEFAULT_DAEMON_SOCKET,
};
use nixcap_replay::{fetch_for_capture_file, Fetched};

/// Arguments of `nixcap record`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
The daemon sees the recorder's uid, not the client's. The socket is created with mode 0600 and \
every peer's uid is checked; only the recorder's own uid and --allow-uid ones are served.

The capture is written in place and flushed at least every 100 ms, so a killed recorder leaves a \
readable (unfinished) capture at FILE.

With --rotate-size or --rotate-age (standalone mode), FILE is a directory that receives a set of \
captures named nixcap-HOST-YYYYMMDDTHHMMSS.nnnnnnnnnZ-NNNNNN.nixcap (UTC start), each complete \
on its own (the file being written ends in .part); a connection open at a rotation continues in \
the next file, and `nixcap info DIR` or `show` of the set's files joins it back. --ring-files and \
--ring-bytes bound what stays on disk. With --upload, each finished file goes to the store on a \
thread of its own (forwarding never waits for it), failed uploads are retried with back-off, and \
a file is deleted locally only once the store has confirmed its size and checksum; exit status 1 \
if files are left un-uploaded.")]
pub struct Args {
    /// Write the capture to FILE (created with mode 0600; it may hold private
    /// data). With --stdio, FILE may be an existing directory: each session
    /// is then written to a new file in it named by its UTC start time and
    /// pid (YYYYMMDDTHHMMSS.NNNNNNNNNZ-PID.nixcap).
    #[arg(short = 'w', long = "write", value_name = "FILE")]
    pub output: PathBuf,

    /// Record one session on stdin and stdout instead of a socket: run the
    /// command after `--` (the remote program of an ssh-ng:// or ssh://
    /// store, such as `nix-daemon --stdio`), relay stdin and stdout to it
    /// unchanged, and exit with its status. Nothing else is written to stdout.
    #[arg(long, conflicts_with_all = ["listen", "upstream", "allow_uid"])]
    pub stdio: bool,

    /// Internal to --stdio: this process relays and records the session;
    /// PID is the session's peer (the process that started `nixcap record`).
    #[arg(long, hide = true, requires = "stdio", value_name = "PID")]
    pub stdio_session: Option<u32>,

    /// Listen on this socket path. Required without a command; with one, a
    /// socket in a fresh private directory is used by default.
    #[arg(long, value_name = "SOCK")]
    pub listen: Option<PathBuf>,

    /// The daemon to forward to: unix:///path, unix:/path or a path. Query
    /// parameters (such as ?root=/r) are not used for connecting but are
    /// passed on to the command's NIX_REMOTE. Default: the socket of a
    /// unix: NIX_REMOTE, else $NIX_DAEMON_SOCKET_PATH, else
    /// /nix/var/nix/daemon-socket/socket.
    #[arg(long, value_name = "ADDR")]
    pub upstream: Option<String>,

    /// Also serve clients running as this uid (repeatable). They act with the
    /// recorder's rights at the daemon. The socket is then made
    /// world-writable so that they can reach it; the uid check still applies.
    #[arg(long = "allow-uid", value_name = "UID")]
    pub allow_uid: Vec<u32>,

    /// Overwrite FILE if it exists.
    #[arg(long)]
    pub force: bool,

    /// Record only what crosses the socket. By default, when the recording
    /// ends, nixcap fetches from the daemon (over a connection of its own)
    /// the contents of every store path the sessions saw as valid but never
    /// received, and the logs of the builds they ran, and stores them in
    /// the capture as store objects, so that a replay needs no daemon.
    /// A rotating recorder (--rotate-size, --rotate-age) never fetches them.
    #[arg(long)]
    pub no_store_objects: bool,

    /// With --listen: rotate, writing a set of complete captures into the
    /// directory FILE, starting a new file once the current one holds SIZE
    /// bytes (suffixes K, M, G).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub rotate_size: Option<u64>,

    /// With --listen: rotate once the current file is SECONDS old.
    #[arg(long, value_name = "SECONDS")]
    pub rotate_age: Option<u64>,

    /// When rotating, keep at most N finished files (the oldest are deleted).
    #[arg(long, value_name = "N")]
    pub ring_files: Option<usize>,

    /// When rotating, keep the files within SIZE bytes of disk (suffixes K,
    /// M, G), room for a full next file included.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub ring_bytes: Option<u64>,

    /// When rotating, upload each finished file to this store (s3://bucket/prefix,
    /// gs://, az://, file:///dir) and delete it locally once the store has
    /// confirmed its size and checksum.
    #[arg(long, value_name = "URL")]
    pub upload: Option<String>,

    /// At exit, keep trying pending uploads for this many seconds; what is
    /// left stays in the directory and goes up at the next start.
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    pub upload_drain: u64,

    /// With --listen, which sessions to keep: `all` (the default), or
    /// `failed`, the flight-recorder mode: only sessions that ended in a
    /// failed build, a daemon error or an abnormal close (plus --sample),
    /// decided when each session closes; the others are dropped. Sessions
    /// not yet decided are journalled in FILE.pending (in a rotation
    /// directory, undecided.pending), a capture removed when the recorder
    /// finishes: a killed recorder leaves them there (a rotating recorder
    /// started again takes the file in as recovered-….nixcap).
    #[arg(long, value_name = "WHICH", value_enum, default_value_t = Keep::All)]
    pub keep: Keep,

    /// With --keep failed: also keep one in N of the other sessions.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub sample: Option<u64>,

    /// Set header metadata KEY to VALUE in the capture (repeatable), over
    /// what the recorder fills in (hostname, argv, capture, …).
    #[arg(long = "meta", value_name = "KEY=VALUE", value_parser = parse_meta)]
    pub meta: Vec<(String, String)>,

    /// The command to run with NIX_REMOTE pointing at the recorder.
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<OsString>,
}

/// Which sessions `record --listen` keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Keep {
    /// Every session.
    All,
    /// Sessions that ended in a failed build, a daemon error or an
    /// abnormal close.
    Failed,
}

/// The flight recorder of `--keep failed`: the recorder hands each closed
/// session to this decision, which decodes it (the recorder itself does not).
fn flight(args: &Args, journal: PathBuf) -> Option<nixcap_record::Flight> {
    if args.keep != Keep::Failed {
        return None;
    }
    let keep: nixcap_record::KeepSession = std::sync::Arc::new(|session| {
        let chunks = session
            .chunks
            .iter()
            .map(|c| (c.direction, c.bytes.as_slice()));
        nixcap_view::keep::session_verdict(session.reason, chunks).map(|v| v.name().to_owned())
    });
    let mut flight = nixcap_record::Flight::new(keep);
    flight.sample_one_in = args.sample;
    flight.journal = Some(journal);
    Some(flight)
}

/// The flight recorder's journal of `-w FILE`: `FILE.pending`, a capture of
/// the sessions not yet decided on, removed when the recorder finishes.
fn journal_path(output: &Path) -> PathBuf {
    let mut name = output.as_os_str().to_owned();
    name.push(".pending");
    PathBuf::from(name)
}

/// The flight recorder's journal in a rotation directory.
const ROTATION_JOURNAL: &str = "undecided.pending";

/// Parses `123`, `64K`, `16M`, `2G` (binary multiples).
fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let (digits, shift) = match text.char_indices().last() {
        Some((i, 'k' | 'K')) => (&text[..i], 10),
        Some((i, 'm' | 'M')) => (&text[..i], 20),
        Some((i, 'g' | 'G')) => (&text[..i], 30),
        _ => (text, 0),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("not a size: {text} (use a number with an optional K, M or G)"))?;
    n.checked_mul(1 << shift)
        .filter(|&n| n > 0)
        .ok_or_else(|| format!("size out of range: {text}"))
}

impl Args {
    fn rotating(&self) -> bool {
        self.rotate_size.is_some() || self.rotate_age.is_some()
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if args.stdio {
        if args.rotating() || args.upload.is_some() {
            bail!(
                "rotation and --upload are for a standalone recorder (--listen), not for --stdio"
            );
        }
        return record_stdio(args);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(record(args))
}

async fn record(args: Args) -> anyhow::Result<ExitCode> {
    if args.command.is_empty() && args.listen.is_none() {
        bail!("give --listen SOCK, or a command to run after `--`");
    }
    let rotation_flags =
        args.ring_files.is_some() || args.ring_bytes.is_some() || args.upload.is_some();
    if rotation_flags && !args.rotating() {
        bail!("--ring-files, --ring-bytes and --upload need --rotate-size or --rotate-age");
    }
    if args.keep != Keep::All && !args.command.is_empty() {
        bail!("--keep is for a standalone recorder (--listen), not for wrapping a command");
    }
    if args.sample.is_some() && args.keep != Keep::Failed {
        bail!("--sample needs --keep failed");
    }
    if args.rotating() && !args.command.is_empty() {
        bail!("rotation is for a standalone recorder (--listen), not for wrapping a command");
    }
    let nix_remote = std::env::var("NIX_REMOTE").ok();
    let upstream = resolve_upstream(
        args.upstream.as_deref(),
        nix_remote.as_deref(),
        std::env::var_os("NIX_DAEMON_SOCKET_PATH"),
    )?;

    // Install the handlers before anything can be interrupted, so that a
    // signal never kills the recorder with a half-written capture.
    let mut signals = Signals::install()?;

    if args.rotating() {
        return record_rotating(args, upstream, signals).await;
    }
    let journal = journal_path(&args.output);
    if args.keep == Keep::Failed && !args.force && journal.symlink_metadata().is_ok() {
        anyhow::bail!(
            "{} exists: it holds the sessions a killed flight recorder had not decided on; \
             move it away, or pass --force to overwrite it",
            journal.display()
        );
    }
    // Whole blocks bypass the page cache: the recorder never reads them back.
    let file = CaptureFile::new(create_capture(&args.output, args.force)?, &args.output);
    let mut config = Config::new(args.listen.clone(), upstream.clone());
    config.metadata.extend(args.meta.iter().cloned());
    config.allow_uids = args.allow_uid.clone();
    config.capture_path = Some(args.output.clone());
    config.flight = flight(&args, journal);
    if !config.allow_uids.is_empty() {
        config.socket_mode = 0o666;
    }
    let recorder = match Recorder::start(config, file).await {
        Ok(recorder) => recorder,
        Err(error) => {
            // The file was created (or emptied) for this run and holds
            // nothing; leaving it would only block the next attempt.
            let _ = std::fs::remove_file(&args.output);
            return Err(anyhow::Error::new(error).context("starting the recorder"));
        }
    };

    if args.command.is_empty() {
        eprintln!(
            "nixcap record: listening on {}, forwarding to {}, writing {}; stop with Ctrl-C",
            recorder.socket_path().display(),
            upstream.path().display(),
            args.output.display()
        );
        signals.any().await;
        let mut recorder = recorder;
        recorder.drain().await;
        if !args.no_store_objects {
            add_store_objects(&recorder, &args.output, upstream.path()).await;
        }
        let report = recorder.finish().await.context("finishing the capture")?;
        let complete = print_summary(&report, &args.output);
        return Ok(if complete {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(exit::CAPTURE_INCOMPLETE)
        });
    }

    // Clients that read store files from disk need the query (`?root=`) of
    // the store URI they would otherwise have used.
    let query = upstream
        .query()
        .or_else(|| nix_remote.as_deref().and_then(store_uri_query))
        .map(str::to_owned);
    let store_uri = DaemonAddr::from_path(recorder.socket_path())
        .with_query(query)
        .store_uri();
    let mut child = match wrap::spawn(&args.command, &store_uri, recorder.socket_path()) {
        Ok(child) => child,
        Err(error) => {
            let report = recorder.finish().await.context("finishing the capture")?;
            print_summary(&report, &args.output);
            eprintln!("nixcap: error: {}", error.message);
            return Ok(ExitCode::from(error.exit_code));
        }
    };
    let status = signals.wait_for(&mut child).await?;
    let mut recorder = recorder;
    recorder.drain().await;
    if !args.no_store_objects {
        add_store_objects(&recorder, &args.output, upstream.path()).await;
    }
    let report = recorder.finish().await.context("finishing the capture")?;
    print_summary(&report, &args.output);
    // The command's status is the result, whatever happened to the capture:
    // recording must never be the reason a build fails.
    Ok(exit::of_status(status))
}

/// Stdio mode: one session of a remote program on stdin and stdout.
///
/// Nix ends a remote program with SIGKILL right after closing its pipes, so
/// the process it started cannot be the one that finishes the capture. This
/// process only starts a second nixcap in its own process group, which
/// inherits stdin, stdout and stderr, runs the program, relays and records;
/// this one waits for it and exits with its status. When this one is killed,
/// the second sees the session end on its pipes and finishes the capture.
fn record_stdio(args: Args) -> anyhow::Result<ExitCode> {
    if args.command.is_empty() {
        bail!(
            "--stdio needs the remote program to run after `--`, such as `-- nix-daemon --stdio`"
        );
    }
    // Handlers rather than "ignore", because an ignored signal stays ignored
    // in the programs started. SIGINT, SIGTERM and SIGHUP reach the program
    // too (the same session, or the end of the SSH session closes its
    // pipes); nixcap stays until the program is done.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async { Signals::install() })?;
    let Some(peer_pid) = args.stdio_session else {
        let mut argv: Vec<OsString> = std::env::args_os().skip(1).collect();
        let at = argv.iter().position(|a| a == "record").map_or(0, |i| i + 1);
        argv.insert(
            at,
            format!("--stdio-session={}", std::os::unix::process::parent_id()).into(),
        );
        let exe = std::env::current_exe().context("finding the nixcap executable")?;
        let status = std::process::Command::new(exe)
            .args(argv)
            .process_group(0)
            .status()
            .context("starting the stdio recorder")?;
        return Ok(exit::of_status(status));
    };

    let path = if args.output.is_dir() {
        args.output.join(nixcap_record::session_file_name(
            std::time::SystemTime::now(),
            std::process::id(),
        ))
    } else {
        args.output.clone()
    };
    let file = CaptureFile::new(create_capture(&path, args.force)?, &path);
    let (stdin, stdout) = super::stdio_files()?;
    let mut config = StdioConfig::new(args.command.clone());
    config.metadata.extend(args.meta.iter().cloned());
    config.capture_path = Some(path.clone());
    config.peer_pid = Some(peer_pid);
    let result = record_stdio_to(config, file, WriterOptions::default(), stdin, stdout);
    let (report, outcome) = match result {
        Ok(done) => done,
        Err(error) => {
            // Nothing ran, so nothing was recorded.
            let _ = std::fs::remove_file(&path);
            let code = match &error {
                StdioError::Spawn { source, .. } if source.kind() == ErrorKind::NotFound => {
                    exit::NOT_FOUND
                }
                _ => exit::CANNOT_RUN,
            };
            eprintln!("nixcap: error: {:#}", anyhow::Error::new(error));
            return Ok(ExitCode::from(code));
        }
    };
    // A session that went well says nothing: stderr of a remote program
    // ends up on the user's terminal.
    let problems: Vec<&String> = report
        .tee_problems
        .iter()
        .chain(&outcome.problems)
        .collect();
    if !outcome.finished || !problems.is_empty() {
        eprintln!(
            "nixcap record: ERROR: the capture {} is INCOMPLETE:",
            path.display()
        );
        for problem in problems {
            eprintln!("nixcap record: ERROR:   {problem}");
        }
    }
    Ok(exit::of_status(report.status))
}

/// Reads back what was recorded, fetches the store objects a replay needs
/// from the daemon at `socket`, adds them to the capture, and says what it
/// did on stderr. Nothing here can make the recording fail: what cannot be
/// fetched is recorded as missing.
async fn add_store_objects(recorder: &Recorder<CaptureFile>, capture: &Path, socket: &Path) {
    let capture = capture.to_owned();
    let socket = socket.to_owned();
    let (sender, mut receiver) = tokio::sync::mpsc::channel::<Fetched>(2);
    let fetch = tokio::task::spawn_blocking(move || {
        fetch_for_capture_file(&capture, &socket, &ClientOptions::default(), |fetched| {
            let _ = sender.blocking_send(fetched);
        })
        .map_err(|error| format!("reading back {}: {error}", capture.display()))
    });
    while let Some(fetched) = receiver.recv().await {
        recorder
            .store_object(fetched.kind, &fetched.name, fetched.contents)
            .await;
    }
    match fetch.await {
        Ok(Ok((0, _))) => {}
        Ok(Ok((_, summary))) => {
            eprintln!(
                "nixcap record: store objects: {} NAR{} ({} bytes), {} build log{}, {} missing",
                summary.nars,
                if summary.nars == 1 { "" } else { "s" },
                summary.nar_bytes,
                summary.logs,
                if summary.logs == 1 { "" } else { "s" },
                summary.missing.len(),
            );
            for (path, reason) in &summary.missing {
                eprintln!("nixcap record: warning: {path} is missing from the capture: {reason}");
            }
        }
        Ok(Err(error)) => {
            eprintln!("nixcap record: warning: no store objects were added: {error}")
        }
        Err(error) => {
            eprintln!("nixcap record: warning: no store objects were added: {error}")
        }
    }
}

/// Parses `--meta KEY=VALUE`.
fn parse_meta(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("`{text}` is not KEY=VALUE")),
    }
}

/// Picks the daemon address: `--upstream`, else a `unix:` `NIX_REMOTE`, else
/// `$NIX_DAEMON_SOCKET_PATH`, else the standard socket.
fn resolve_upstream(
    upstream: Option<&str>,
    nix_remote: Option<&str>,
    socket_path_env: Option<OsString>,
) -> anyhow::Result<DaemonAddr> {
    if let Some(upstream) = upstream {
        return DaemonAddr::parse(upstream).context("parsing --upstream");
    }
    if let Some(remote) = nix_remote.filter(|r| r.starts_with("unix:")) {
        if let Ok(addr) = DaemonAddr::parse(remote) {
            return Ok(addr.with_query(None));
        }
    }
    Ok(match socket_path_env.filter(|p| !p.is_empty()) {
        Some(path) => DaemonAddr::from_path(path),
        None => DaemonAddr::from_path(DEFAULT_DAEMON_SOCKET),
    })
}

fn create_capture(path: &Path, force: bool) -> anyhow::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).mode(0o600);
    if force {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    options.open(path).map_err(|error| {
        if error.kind() == ErrorKind::AlreadyExists {
            anyhow::anyhow!(
                "{} already exists; pass --force to overwrite it",
                path.display()
            )
        } else {
            anyhow::Error::new(error).context(format!("creating {}", path.display()))
        }
    })
}

/// A journal left in a rotation directory by a killed flight recorder
/// becomes a capture of the set, `recovered-<start>.nixcap` (which an
/// uploader then takes with the other files left there).
fn recover_journal(journal: &Path) -> anyhow::Result<()> {
    if journal.symlink_metadata().is_err() {
        return Ok(());
    }
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let recovered = journal.with_file_name(format!("recovered-{stamp}.nixcap"));
    std::fs::rename(journal, &recovered)
        .with_context(|| format!("moving {} aside", journal.display()))?;
    eprintln!(
        "nixcap record: {} held the sessions a killed flight recorder had not decided on; \
         it is now {}",
        journal.display(),
        recovered.display()
    );
    Ok(())
}

/// Standalone recording into a rotated set in the directory `-w`, with an
/// uploader when `--upload` is given.
async fn record_rotating(
    args: Args,
    upstream: DaemonAddr,
    mut signals: Signals,
) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(&args.output)
        .with_context(|| format!("creating the directory {}", args.output.display()))?;
    let journal = args.output.join(ROTATION_JOURNAL);
    if args.keep == Keep::Failed {
        recover_journal(&journal)?;
    }
    let uploader = match &args.upload {
        Some(url) => {
            let store = nixcap_objstore::Store::open(url).context("opening the upload store")?;
            let config = nixcap_objstore::UploaderConfig::new(&args.output);
            Some(nixcap_objstore::Uploader::start(store, config).context("starting the uploader")?)
        }
        None => None,
    };
    let mut rotation = Rotation::new(&args.output);
    rotation.max_file_bytes = args.rotate_size;
    rotation.max_file_age = args.rotate_age.map(std::time::Duration::from_secs);
    rotation.ring_files = args.ring_files;
    rotation.ring_bytes = args.ring_bytes;
    if let Some(uploader) = &uploader {
        let queue = uploader.queue();
        rotation.on_finished = Some(std::sync::Arc::new(move |path: &Path| queue.push(path)));
    }
    let mut config = Config::new(args.listen.clone(), upstream.clone());
    config.allow_uids = args.allow_uid.clone();
    config.flight = flight(&args, journal);
    if !config.allow_uids.is_empty() {
        config.socket_mode = 0o666;
    }
    let recorder = Recorder::start_rotating(config, rotation)
        .await
        .context("starting the recorder")?;
    eprintln!(
        "nixcap record: listening on {}, forwarding to {}, rotating in {}{}; stop with Ctrl-C",
        recorder.socket_path().display(),
        upstream.path().display(),
        args.output.display(),
        match &args.upload {
            Some(url) => format!(", uploading to {url}"),
            None => String::new(),
        }
    );
    signals.any().await;
    let report = recorder.finish().await.context("finishing the capture")?;
    let set = report.out.clone().unwrap_or_default();
    eprintln!(
        "nixcap record: {} connections, {} bytes client to daemon, {} bytes daemon to client, {} files in {}",
        report.stats.connections,
        report.stats.bytes_client_to_daemon,
        report.stats.bytes_daemon_to_client,
        set.files.len(),
        args.output.display()
    );
    let mut complete = report.capture_complete();
    for problem in &report.capture_problems {
        eprintln!("nixcap record: ERROR:   {problem}");
    }
    if !set.dropped.is_empty() {
        eprintln!(
            "nixcap record: warning: the ring deleted {} files to stay within its limits",
            set.dropped.len()
        );
    }
    if let Some(uploader) = uploader {
        let uploads = uploader.finish(std::time::Duration::from_secs(args.upload_drain));
        eprintln!(
            "nixcap record: {} files uploaded, {} still pending in {}",
            uploads.uploaded.len(),
            uploads.pending.len(),
            args.output.display()
        );
        complete &= uploads.pending.is_empty();
    }
    Ok(if complete {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(exit::CAPTURE_INCOMPLETE)
    })
}

/// Prints the one-line summary (and any capture problems) to stderr.
/// Returns whether the capture is complete.
fn print_summary(report: &Report<CaptureFile>, output: &Path) -> bool {
    let stats = &report.stats;
    let size = std::fs::metadata(output).map(|m| m.len()).unwrap_or(0);
    let mut extra = Vec::new();
    if stats.refused > 0 {
        extra.push(format!("{} refused", stats.refused));
    }
    if stats.unreachable > 0 {
        extra.push(format!("{} with the daemon unreachable", stats.unreachable));
    }
    let extra = if extra.is_empty() {
        String::new()
    } else {
        format!(" ({})", extra.join(", "))
    };
    eprintln!(
        "nixcap record: {} connection{}{extra}, {} bytes client to daemon, {} bytes daemon to client, capture {} ({size} bytes)",
        stats.connections,
        if stats.connections == 1 { "" } else { "s" },
        stats.bytes_client_to_daemon,
        stats.bytes_daemon_to_client,
        output.display(),
    );
    if !report.capture_complete() {
        eprintln!(
            "nixcap record: ERROR: the capture {} is INCOMPLETE:",
            output.display()
        );
        for problem in &report.capture_problems {
            eprintln!("nixcap record: ERROR:   {problem}");
        }
        if !report.capture_finished && report.capture_problems.is_empty() {
            eprintln!("nixcap record: ERROR:   it was not finished");
        }
    }
    report.capture_complete()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_precedence() {
        let pick = |up: Option<&str>, remote: Option<&str>, env: Option<&str>| {
            resolve_upstream(up, remote, env.map(OsString::from))
                .unwrap()
                .store_uri()
        };
        assert_eq!(
            pick(Some("unix:/u?root=/r"), Some("unix:///n"), Some("/e")),
            "unix:///u?root=/r"
        );
        assert_eq!(
            pick(None, Some("unix:///n?root=/r"), Some("/e")),
            "unix:///n"
        );
        assert_eq!(pick(None, Some("daemon"), Some("/e")), "unix:///e");
        assert_eq!(
            pick(None, None, Some("")),
            format!("unix://{DEFAULT_DAEMON_SOCKET}")
        );
        assert_eq!(
            pick(None, Some("auto"), None),
            format!("unix://{DEFAULT_DAEMON_SOCKET}")
        );
    }
}
