//! `nixcap check`: play the client side of a capture against a daemon and
//! compare its answers with the recorded ones.
//!
//! The work is `nixcap_check::check`; this module reads the capture, passes
//! the options, prints the report as text or JSON and maps the verdict to
//! the exit status.

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use nixcap_check::Verdict;
use nixcap_view::DecodedCapture;

use crate::exit;

/// Arguments of `nixcap check`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Each recorded connection is played against the target: the recorded handshake, then every \
request with its upload; the target's answers are compared with the recorded ones as \
`nixcap diff` compares two captures (A is the recording, B the target). A target that speaks \
an older protocol than the recording gets the handshake and requests in its version's form; the \
report lists each change under \"translated for the target's protocol\". The check writes to \
the target's store: use a daemon on a private store.

Exit status, as diff(1): 0 when the target answered as recorded, 1 when its answers differ or \
it misbehaved (hung, closed a connection, sent undecodable bytes), 2 on trouble (the capture \
cannot be read or played, the target cannot be reached).")]
pub struct Args {
    /// The capture whose client side is played.
    #[arg(value_name = "CAPTURE")]
    pub capture: PathBuf,

    /// The daemon to check: `unix:///path/to/socket` or a socket path.
    #[arg(long, value_name = "STORE")]
    pub against: String,

    /// Import the store objects whose contents are in the capture (NARs
    /// that NarFromPath sent, with their QueryPathInfo metadata) into the
    /// target first.
    #[arg(long)]
    pub setup: bool,

    /// Seconds to wait for the target's next byte before reporting it as
    /// hung.
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    pub timeout: u64,

    /// Leave out differences matching this field pattern (repeatable; see
    /// `nixcap diff --help`).
    #[arg(long, value_name = "PATTERN")]
    pub ignore: Vec<String>,

    /// Check against the system daemon's socket although the check writes
    /// to its store.
    #[arg(long)]
    pub allow_system_daemon: bool,

    /// Write the target's session (what was sent and answered) to this
    /// capture file.
    #[arg(long, value_name = "FILE")]
    pub save: Option<PathBuf>,

    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let capture = nixcap_capture::read_capture_file(&args.capture)
        .with_context(|| format!("reading {}", args.capture.display()))?;
    let recorded = DecodedCapture::new(capture);
    let diff = nixcap_diff::Options {
        ignore: args.ignore.clone(),
        ..nixcap_diff::Options::default()
    };
    let options = nixcap_check::Options::default()
        .with_timeout(Duration::from_secs(args.timeout.max(1)))
        .with_setup(args.setup)
        .allowing_system_daemon(args.allow_system_daemon)
        .with_diff(diff);
    let checked = nixcap_check::check(&recorded, &args.against, &options)
        .with_context(|| format!("checking {}", args.capture.display()))?;
    if let Some(path) = &args.save {
        std::fs::write(path, &checked.target_capture)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    let report = &checked.report;
    let mut out = io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, report)?;
        writeln!(out)?;
    } else {
        write!(out, "{report}")?;
    }
    out.flush()?;
    Ok(match report.verdict {
        Verdict::Same => ExitCode::SUCCESS,
        Verdict::Different => ExitCode::from(exit::DIFFERENT),
        Verdict::Trouble => ExitCode::from(exit::TROUBLE),
    })
}
