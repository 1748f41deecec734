//! nixcap-bench: what the recorder costs, measured against a direct
//! connection to the daemon (the limit), `socat` and `socat -v`.
//!
//! Absolute times on a shared machine are noise; ratios measured in the same
//! run are not. Every case therefore runs each variant several times,
//! interleaved, with a fresh relay process per run, and reports medians and
//! ratios. `docs/BENCHMARKS.md` describes the method and the cases;
//! `cargo xtask bench` builds everything and runs the binary.

pub mod cases;
pub mod client;
pub mod error;
pub mod relay;
pub mod report;
pub mod stats;
pub mod upstream;

use std::ffi::OsString;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use nixcap_record::{BackgroundRecorder, Config, DaemonAddr};

use crate::cases::{run_all, Plan, CASES};
use crate::error::{Error, IoContext, Result};
use crate::relay::{RecorderProgram, Tools};
use crate::report::{load_average, utc_now, Machine, Results};

/// The command-line help.
pub const USAGE: &str = "\
usage: nixcap-bench [--quick] [--runs N] [--out DIR] [--synthetic-only]
                    [--nixcap PATH] [--recorder cli|library] [--socat PATH|none]
                    [--cases LIST]

  --quick            small sizes (16 MiB pumps and adds, 1000 round trips), for a smoke run
  --runs N           interleaved runs per variant and case (default 5, 1 with --quick)
  --out DIR          where results.md, results.json and captures go (default target/bench)
  --synthetic-only   skip the cases that need a real Nix 2.8
  --nixcap PATH      the nixcap binary (default: `nixcap` next to this program)
  --recorder KIND    cli: `nixcap record` (default when the binary exists);
                     library: the recorder library in a child of this program
  --socat PATH|none  socat to compare with (default: `socat` on PATH)
  --cases LIST       only these cases, comma-separated, of: pump, latency-synthetic,
                     rotation (the cli recorder with and without rotation and
                     upload), flight (with and without --keep failed), latency-nix, add, ops, decode (runs add too), replay";

/// Parsed command line.
#[derive(Debug, Clone)]
pub struct Args {
    /// Small sizes.
    pub quick: bool,
    /// Runs per case, if given.
    pub runs: Option<usize>,
    /// Output directory.
    pub out: PathBuf,
    /// Skip real-Nix cases.
    pub synthetic_only: bool,
    /// The nixcap binary.
    pub nixcap: Option<PathBuf>,
    /// `Some(true)` for the CLI recorder, `Some(false)` for the library one.
    pub recorder_cli: Option<bool>,
    /// socat: `None` to look it up, `Some(None)` for none.
    pub socat: Option<Option<PathBuf>>,
    /// Only these cases, if given.
    pub cases: Option<Vec<String>>,
}

impl Args {
    /// Parses the arguments after the program name.
    pub fn parse(args: &[OsString]) -> Result<Args> {
        let mut parsed = Args {
            quick: false,
            runs: None,
            out: PathBuf::from("target/bench"),
            synthetic_only: false,
            nixcap: None,
            recorder_cli: None,
            socat: None,
            cases: None,
        };
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            let arg = arg.to_string_lossy();
            let mut value = |name: &str| {
                it.next()
                    .cloned()
                    .ok_or_else(|| Error::Usage(format!("{name} needs a value\n{USAGE}")))
            };
            match arg.as_ref() {
                "--quick" => parsed.quick = true,
                "--synthetic-only" => parsed.synthetic_only = true,
                "--runs" => {
                    let v = value("--runs")?;
                    let runs = v
                        .to_string_lossy()
                        .parse::<usize>()
                        .ok()
                        .filter(|n| *n > 0)
                        .ok_or_else(|| {
                            Error::Usage(format!("--runs wants a positive number\n{USAGE}"))
                        })?;
                    parsed.runs = Some(runs);
                }
                "--out" => parsed.out = PathBuf::from(value("--out")?),
                "--nixcap" => parsed.nixcap = Some(PathBuf::from(value("--nixcap")?)),
                "--recorder" => {
                    parsed.recorder_cli =
                        Some(match value("--recorder")?.to_string_lossy().as_ref() {
                            "cli" => true,
                            "library" => false,
                            other => {
                                return Err(Error::Usage(format!(
                                    "unknown recorder `{other}`\n{USAGE}"
                                )))
                            }
                        })
                }
                "--socat" => {
                    let v = value("--socat")?;
                    parsed.socat = Some(if v == "none" {
                        None
                    } else {
                        Some(PathBuf::from(v))
                    });
                }
                "--cases" => {
                    let v = value("--cases")?;
                    let cases: Vec<String> = v
                        .to_string_lossy()
                        .split(',')
                        .map(|c| c.trim().to_owned())
                        .filter(|c| !c.is_empty())
                        .collect();
                    if let Some(bad) = cases.iter().find(|c| !CASES.contains(&c.as_str())) {
                        return Err(Error::Usage(format!("unknown case `{bad}`\n{USAGE}")));
                    }
                    parsed.cases = Some(cases);
                }
                "-h" | "--help" => return Err(Error::Usage(USAGE.to_owned())),
                other => return Err(Error::Usage(format!("unknown argument `{other}`\n{USAGE}"))),
            }
        }
        Ok(parsed)
    }
}

/// Finds `program` on `PATH`.
fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|p| p.is_file())
    })
}

fn first_line_of(program: &Path, arg: &str) -> Option<String> {
    let output = Command::new(program).arg(arg).output().ok()?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    text.lines()
        .find(|l| l.contains("version"))
        .map(|l| l.trim().to_owned())
}

/// Runs the benchmark described by `args`; writes `results.md` and
/// `results.json` to the output directory and returns the results.
pub fn run(args: &Args) -> Result<Results> {
    let this = std::env::current_exe().doing(|| "finding this program".to_owned())?;
    let nixcap = args.nixcap.clone().or_else(|| {
        let sibling = this.with_file_name("nixcap");
        sibling.is_file().then_some(sibling)
    });
    let recorder = match (args.recorder_cli, &nixcap) {
        (Some(true), None) => {
            return Err(Error::Usage(
                "--recorder cli needs a nixcap binary (--nixcap)".to_owned(),
            ))
        }
        (Some(true) | None, Some(nixcap)) => RecorderProgram::Cli(nixcap.clone()),
        (Some(false), _) | (None, None) => RecorderProgram::Library(this.clone()),
    };
    let socat = match &args.socat {
        Some(socat) => socat.clone(),
        None => which("socat"),
    };
    let tools = Tools {
        recorder,
        nixcap,
        socat: socat.clone(),
    };
    let plan = Plan {
        quick: args.quick,
        runs: args.runs.unwrap_or(if args.quick { 1 } else { 5 }),
        out: args.out.clone(),
        synthetic_only: args.synthetic_only,
        tools: tools.clone(),
        only: args.cases.clone(),
    };
    let date = utc_now();
    let mut machine = Machine::describe(socat.as_deref().and_then(|s| first_line_of(s, "-V")));
    let outcome = run_all(&plan)?;
    machine.load_at_end = load_average();
    machine.nix = outcome.nix.clone();
    let mut notes = vec![
        "Every run starts a fresh relay process; its start-up is not timed. Variants run interleaved, rotating which goes first each round.".to_owned(),
        format!("The recorder is {}.", tools.recorder.describe()),
        "socat -v writes its dump to /dev/null here, so its disk writes are not counted (in its favour).".to_owned(),
        "The machine is shared with other work while the benchmark runs: compare ratios within one run, not absolute times across runs.".to_owned(),
    ];
    if socat.is_none() {
        notes.push("socat is not installed: its columns are empty.".to_owned());
    }
    let results = Results {
        date,
        machine,
        quick: plan.quick,
        runs: plan.runs,
        recorder: tools.recorder.describe(),
        rows: outcome.rows,
        skipped: outcome.skipped,
        notes,
    };
    let md = results.markdown();
    std::fs::write(plan.out.join("results.md"), &md)
        .doing(|| format!("writing {}", plan.out.join("results.md").display()))?;
    let json = serde_json::to_string_pretty(&results)?;
    std::fs::write(plan.out.join("results.json"), json + "\n")
        .doing(|| format!("writing {}", plan.out.join("results.json").display()))?;
    Ok(results)
}

/// The `record-with-library` child: records from `listen` to `upstream` into
/// `capture` until standard input is closed.
pub fn record_with_library(capture: &Path, listen: &Path, upstream: &Path) -> Result<()> {
    let file = File::create(capture).doing(|| format!("creating {}", capture.display()))?;
    let mut config = Config::new(Some(listen.to_path_buf()), DaemonAddr::from_path(upstream));
    config.capture_path = Some(capture.to_path_buf());
    let recorder = BackgroundRecorder::start(config, file).map_err(|e| Error::Program {
        program: "recorder".to_owned(),
        message: e.to_string(),
    })?;
    let mut sink = Vec::new();
    // Returns at end of input, or when reading fails: either way, stop.
    let _ = std::io::stdin().read_to_end(&mut sink);
    let report = recorder.finish().map_err(|e| Error::Program {
        program: "recorder".to_owned(),
        message: e.to_string(),
    })?;
    if report.capture_complete() {
        Ok(())
    } else {
        Err(Error::Program {
            program: "recorder".to_owned(),
            message: format!("capture incomplete: {:?}", report.capture_problems),
        })
    }
}
