//! `nixcap diff`: compare two captures at the protocol level.
//!
//! Both captures are decoded and handed to `nixcap_diff`, which pairs their
//! connections and ops and compares requests, replies and log streams field
//! by field, with per-run values (timestamps, activity ids, pids, temporary
//! directories) normalised away. This module only reads the files and
//! prints the report, as text or JSON.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::exit;

use anyhow::Context;
use nixcap_diff::Options;
use nixcap_view::DecodedCapture;

use super::input::Input;

/// Arguments of `nixcap diff`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Field patterns (--ignore) are `[Op:]key.key…`: they match a difference when their keys appear, \
in order, in its path (array indices do not count). `reply.registrationTime` matches \
`reply.info.registrationTime`; `QueryPathInfo:reply` every reply field of QueryPathInfo; a bare \
op name such as `AddTempRoot` drops that op entirely; `handshake.trust` a handshake field.

Exit status, as diff(1): 0 when the captures are the same, 1 when they differ, 2 on trouble \
(a file cannot be read).")]
pub struct Args {
    /// The first capture (a file, or an object URL: s3://bucket/key, gs://,
    /// az://, file:///).
    #[arg(value_name = "A")]
    pub a: PathBuf,

    /// The second capture (a file or an object URL).
    #[arg(value_name = "B")]
    pub b: PathBuf,

    /// Leave out differences matching this field pattern (repeatable).
    #[arg(long, value_name = "PATTERN")]
    pub ignore: Vec<String>,

    /// A second recording of A's side: what differs between A and it is
    /// learned as noise and left out (the report lists what was learned).
    #[arg(long, value_name = "A2")]
    pub baseline: Option<PathBuf>,

    /// Compare timestamps, CPU times and op durations instead of
    /// normalising them away.
    #[arg(long)]
    pub timing: bool,

    /// With --timing, time differences up to this many milliseconds are
    /// not reported.
    #[arg(long, value_name = "MS", default_value_t = 100)]
    pub timing_threshold: u64,

    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

fn load(path: &Path) -> anyhow::Result<DecodedCapture> {
    let input = Input::parse(path);
    let capture = input
        .read_capture()
        .with_context(|| format!("reading {}", input.name()))?;
    Ok(DecodedCapture::new(capture))
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let a = load(&args.a)?;
    let b = load(&args.b)?;
    let options = Options {
        ignore: args.ignore.clone(),
        timing: args.timing,
        timing_threshold_nanos: args.timing_threshold.saturating_mul(1_000_000),
        labels: None,
    };
    let report = match &args.baseline {
        Some(path) => {
            let baseline = load(path)?;
            nixcap_diff::diff_with_baseline(&a, &baseline, &b, &options)
        }
        None => nixcap_diff::diff(&a, &b, &options),
    };
    let mut out = io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
    } else {
        write!(out, "{report}")?;
    }
    out.flush()?;
    Ok(if report.is_identical() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(exit::DIFFERENT)
    })
}
