//! `nixcap replay`: serve a capture to real Nix clients as a fake nix-daemon.
//!
//! Two modes:
//! - Standalone, `nixcap replay FILE --listen SOCK`: serve until SIGINT,
//!   SIGTERM or SIGHUP, then print the divergence report.
//! - Wrapper, `nixcap replay FILE -- CMD ARGS…`: listen on a private socket,
//!   run CMD with `NIX_REMOTE` pointing at it (with `?root=` of a temporary
//!   store root holding the store objects that crossed the wire), and exit
//!   with CMD's status — or with [`DIVERGED`](crate::exit::DIVERGED) under `--strict` when the
//!   replay diverged.
//! - Stdio, `nixcap replay --stdio FILE`: the remote program of an SSH
//!   store (`ssh-ng://`, `ssh://`): one session on stdin and stdout, in the
//!   worker or the serve protocol as the client's first word says. Nothing
//!   else goes to stdout; stderr stays silent unless the replay diverged.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::input::Input;
use super::wrap::{self, Signals};
use crate::exit;
use anyhow::{bail, Context};
use nixcap_replay::{DivergenceReport, MatchMode, Options, Server, StoreRoot, VersionPolicy};
use nixcap_view::DecodedCapture;

/// How requests are matched to recorded ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Match {
    /// Each connection replays one recorded connection's ops in order.
    Strict,
    /// By op and normalised arguments; each recorded answer is used once.
    Keyed,
    /// By op and normalised arguments; answers may be served again.
    Reuse,
}

/// What to do with a client of a protocol version the capture does not hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Versions {
    /// End its handshake with an error naming the recorded versions.
    Refuse,
    /// Negotiate its version and re-encode the recorded answers for it.
    Translate,
}

/// Arguments of `nixcap replay`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Exit status: in wrapper mode, the command's status; with --strict, 3 when the replay diverged \
(a request not in the capture, a different upload, a client stuck in an op the capture cannot \
finish, a refused protocol version, an answer that cannot be translated for the client's \
version). Standalone and --stdio mode exit 0, or 3 when the replay diverged. 2 means the replay \
could not run.")]
pub struct Args {
    /// The capture to serve: a file, or an object URL (s3://bucket/key,
    /// gs://, az://, file:///).
    #[arg(value_name = "FILE")]
    pub capture: PathBuf,

    /// Listen on this socket path (created with mode 0600). Required without
    /// a command; with one, a socket in a fresh private directory is used.
    #[arg(long, value_name = "SOCK", conflicts_with = "stdio")]
    pub listen: Option<PathBuf>,

    /// Serve one session on stdin and stdout instead of a socket, as the
    /// remote program of an `ssh-ng://` store (`nix-daemon --stdio`) or an
    /// `ssh://` store (`nix-store --serve`). Says nothing on stderr unless
    /// the replay diverged; exits 3 when it did.
    #[arg(long, conflicts_with = "store_root")]
    pub stdio: bool,

    /// Internal to --stdio: this process serves the session.
    #[arg(long, hide = true, requires = "stdio")]
    pub stdio_session: bool,

    /// How live requests find their recorded answers.
    #[arg(long = "match", value_enum, default_value = "keyed")]
    pub match_mode: Match,

    /// Pacing: 0 sends as fast as possible; 1.0 keeps the recorded timing,
    /// 2.0 halves it.
    #[arg(long, default_value_t = 0.0, value_name = "FACTOR")]
    pub speed: f64,

    /// Write the store objects that crossed the wire under DIR and pass
    /// `?root=DIR` to clients. Default: a temporary directory in wrapper
    /// mode, none in standalone mode.
    #[arg(long, value_name = "DIR")]
    pub store_root: Option<PathBuf>,

    /// Clients of a protocol version the capture does not hold: refuse them,
    /// or translate the recorded answers for them (the report lists every
    /// field dropped, filled in or converted).
    #[arg(long, value_enum, default_value = "refuse", value_name = "POLICY")]
    pub version_policy: Versions,

    /// Exit with status 3 when the replay diverged.
    #[arg(long)]
    pub strict: bool,

    /// Also write the divergence report as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,

    /// The command to run with NIX_REMOTE pointing at the replayer.
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<OsString>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if args.stdio {
        return replay_stdio(args);
    }
    if args.command.is_empty() && args.listen.is_none() {
        bail!("give --listen SOCK, --stdio, or a command to run after `--`");
    }
    // Read before the runtime starts: an object store blocks on a runtime
    // of its own, which cannot run inside another.
    let input = Input::parse(&args.capture);
    let capture = read_input(&input)?;
    if let Some(err) = &capture.capture.damage {
        eprintln!(
            "nixcap replay: {}: {}  serving what was readable before the damage",
            input.name(),
            nixcap_view::text::damage_report(err)
        );
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(replay(args, input, capture))
}

fn options(args: &Args) -> Options {
    Options::default()
        .match_mode(match args.match_mode {
            Match::Strict => MatchMode::Strict,
            Match::Keyed => MatchMode::Keyed,
            Match::Reuse => MatchMode::Reuse,
        })
        .speed(args.speed)
        .version_policy(match args.version_policy {
            Versions::Refuse => VersionPolicy::Refuse,
            Versions::Translate => VersionPolicy::Translate,
        })
}

/// Stdio mode: one session of an SSH store's remote program.
///
/// Nix ends its remote program with SIGKILL right after closing the pipes,
/// which could cut the report short. So the process Nix started only runs a
/// second nixcap in its own process group, with the same stdin, stdout and
/// stderr; that one serves the session and writes the report, and this one
/// exits with its status.
fn replay_stdio(args: Args) -> anyhow::Result<ExitCode> {
    if !args.command.is_empty() {
        bail!("--stdio serves the session on stdin and stdout: it takes no command after `--`");
    }
    if !args.stdio_session {
        let mut argv: Vec<OsString> = std::env::args_os().skip(1).collect();
        argv.push("--stdio-session".into());
        let exe = std::env::current_exe().context("finding the nixcap executable")?;
        let status = std::process::Command::new(exe)
            .args(argv)
            .process_group(0)
            .status()
            .context("starting the stdio replayer")?;
        return Ok(exit::of_status(status));
    }
    let input = Input::parse(&args.capture);
    let capture = read_input(&input)?;
    let (stdin, stdout) = super::stdio_files()?;
    let report = nixcap_replay::serve_stdio(&capture, options(&args), stdin, stdout)
        .with_context(|| format!("starting the replay of {}", input.name()))?;
    if let Some(path) = &args.report {
        write_report_json(&report, path)?;
    }
    if report.diverged() {
        // The remote program's stderr reaches the user's terminal.
        eprint!("{}", report.render());
        return Ok(ExitCode::from(exit::DIVERGED));
    }
    Ok(ExitCode::SUCCESS)
}

async fn replay(args: Args, input: Input, capture: DecodedCapture) -> anyhow::Result<ExitCode> {
    let mut signals = Signals::install()?;

    let store_root = match (&args.store_root, args.command.is_empty()) {
        (Some(dir), _) => StoreRoot::Dir(dir.clone()),
        (None, false) => StoreRoot::Temp,
        (None, true) => StoreRoot::None,
    };
    let mut options = options(&args).store_root(store_root);
    if let Some(listen) = &args.listen {
        options = options.socket(listen);
    }
    let server = Server::start(capture, options)
        .with_context(|| format!("starting the replay of {}", input.name()))?;

    if args.command.is_empty() {
        eprintln!(
            "nixcap replay: serving {} on {} (store URI {}); stop with Ctrl-C",
            input.name(),
            server.socket_path().display(),
            server.store_uri()
        );
        signals.any().await;
        let report = tokio::task::spawn_blocking(move || server.finish())
            .await
            .context("finishing the replay")?;
        let diverged = finish_report(&report, args.report.as_deref())?;
        return Ok(if diverged {
            ExitCode::from(exit::DIVERGED)
        } else {
            ExitCode::SUCCESS
        });
    }

    let mut child = match wrap::spawn(&args.command, &server.store_uri(), server.socket_path()) {
        Ok(child) => child,
        Err(error) => {
            let report = tokio::task::spawn_blocking(move || server.finish())
                .await
                .context("finishing the replay")?;
            finish_report(&report, args.report.as_deref())?;
            eprintln!("nixcap: error: {}", error.message);
            return Ok(ExitCode::from(error.exit_code));
        }
    };
    let status = signals.wait_for(&mut child).await?;
    let report = tokio::task::spawn_blocking(move || server.finish())
        .await
        .context("finishing the replay")?;
    let diverged = finish_report(&report, args.report.as_deref())?;
    if args.strict && diverged {
        return Ok(ExitCode::from(exit::DIVERGED));
    }
    Ok(exit::of_status(status))
}

/// Reads and decodes the capture to serve: a local file, or an object read
/// by ranges through the object store.
fn read_input(input: &Input) -> anyhow::Result<DecodedCapture> {
    let capture = input
        .read_capture()
        .with_context(|| format!("reading {}", input.name()))?;
    Ok(DecodedCapture::new(capture))
}

/// Prints the report to stderr, writes the JSON file if asked, and tells
/// whether the replay diverged.
fn finish_report(report: &DivergenceReport, json: Option<&Path>) -> anyhow::Result<bool> {
    eprint!("{}", report.render());
    if let Some(path) = json {
        write_report_json(report, path)?;
    }
    Ok(report.diverged())
}

/// Writes the report to a file beside `path` and renames it into place, so that a reader
/// (a test or a script waiting for a stdio replay, which ends after its client) sees either
/// no report or a whole one.
fn write_report_json(report: &DivergenceReport, path: &Path) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(report).context("encoding the report")?;
    let mut partial = path.as_os_str().to_owned();
    partial.push(format!(".partial-{}", std::process::id()));
    let partial = PathBuf::from(partial);
    std::fs::write(&partial, text + "\n")
        .with_context(|| format!("writing {}", partial.display()))?;
    std::fs::rename(&partial, path).with_context(|| {
        let _ = std::fs::remove_file(&partial);
        format!("moving {} to {}", partial.display(), path.display())
    })
}
