//! `cargo xtask bench`: builds the recorder and the benchmark in release mode
//! and runs `nixcap-bench`, which measures the recorder against a direct
//! connection, `socat` and `socat -v` and writes `target/bench/results.md`
//! and `results.json` (see `docs/BENCHMARKS.md`).

use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Context as _};

const HELP: &str = "\
usage: cargo xtask bench [--quick] [--runs N] [--synthetic-only] [--out DIR] [--socat PATH|none]
                         [--cases LIST]

Builds `nixcap` and `nixcap-bench` with --release and runs the benchmark: bulk throughput,
round-trip latency, capture size, recorder memory, decode speed and replay, each against a
direct connection to the daemon, socat and socat -v, interleaved, reporting medians and ratios.
Cases that need a real Nix 2.8 (`cargo xtask nix-peers install`, as root) are skipped, and
listed as such, when it is missing. Results go to target/bench/ (results.md, results.json).

options:
  --quick            small sizes and one run: a smoke test, not a measurement
  --runs N           interleaved runs per case (default 5)
  --synthetic-only   only the cases that need no Nix
  --out DIR          output directory (default target/bench)
  --socat PATH|none  the socat to compare with (default: socat on PATH)
  --cases LIST       only these cases, comma-separated: pump, latency-synthetic, rotation,
                     flight, latency-nix, add, ops, decode, replay
";

/// Entry point of `cargo xtask bench`.
pub(crate) fn run(args: &[String]) -> anyhow::Result<()> {
    if args
        .iter()
        .any(|a| a == "--help" || a == "-h" || a == "help")
    {
        eprint!("{HELP}");
        return Ok(());
    }
    let root = crate::workspace_root();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(&cargo)
        .current_dir(&root)
        .args(["build", "--release", "-p", "nixcap-bench", "-p", "nixcap"])
        .status()
        .context("running cargo build")?;
    if !status.success() {
        bail!("building nixcap and nixcap-bench failed ({status})");
    }
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => root.join(PathBuf::from(dir)),
        None => root.join("target"),
    };
    let release = target.join("release");
    let mut command = Command::new(release.join("nixcap-bench"));
    command
        .current_dir(&root)
        .arg("--nixcap")
        .arg(release.join("nixcap"));
    if !args.iter().any(|a| a == "--out") {
        command.arg("--out").arg(target.join("bench"));
    }
    command.args(args);
    let status = command.status().context("running nixcap-bench")?;
    if !status.success() {
        bail!("the benchmark failed ({status})");
    }
    Ok(())
}
