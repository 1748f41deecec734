//! Project automation, run as `cargo xtask <task> [args]`.
//! See <https://github.com/matklad/cargo-xtask/>.
//!
//! Each task lives in its own module and exposes `run(args)`.
//! To add a task, add a module, a line to `TASKS` and an arm to the match in `run_task`.

mod bench;
mod fixtures;
mod fuzz;
mod nix_peers;
mod tidy;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The tasks `cargo xtask` knows, with a one-line summary each.
const TASKS: &[(&str, &str)] = &[
    (
        "bench",
        "measure the recorder against a direct connection and socat, write target/bench/results.md (`bench --help`)",
    ),
    (
        "nix-peers",
        "install or inspect the real Nix daemons and clients used by tests (`nix-peers help`)",
    ),
    (
        "fixtures",
        "record testdata/captures from real Nix daemons, or check them with --check (`fixtures --help`)",
    ),
    (
        "tidy",
        "check repository rules: sans-IO codec, no decoding in the proxy, module docs, no ignored tests",
    ),
    (
        "fuzz",
        "seed the fuzz corpora from testdata/ and run each fuzz target, printing exec counts (`fuzz [TARGET…] [--secs N]`)",
    ),
];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run_task(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run_task(args: &[String]) -> anyhow::Result<()> {
    let Some((task, rest)) = args.split_first() else {
        print_help();
        return Ok(());
    };
    match task.as_str() {
        "nix-peers" => nix_peers::run(rest),
        "bench" => bench::run(rest),
        "fixtures" => fixtures::run(rest),
        "fuzz" => fuzz::run(rest),
        "tidy" => {
            let problems = tidy::problems(&workspace_root());
            for problem in &problems {
                eprintln!("{problem}");
            }
            anyhow::ensure!(
                problems.is_empty(),
                "{} tidy rule(s) broken",
                problems.len()
            );
            println!("tidy: ok");
            Ok(())
        }
        "help" | "--help" | "-h" => {
            print_help();
            Ok(())
        }
        other => {
            print_help();
            anyhow::bail!("unknown task `{other}`")
        }
    }
}

fn print_help() {
    eprintln!("usage: cargo xtask <task> [args]\n\ntasks:");
    for (name, summary) in TASKS {
        eprintln!("  {name:<12} {summary}");
    }
}

/// Returns the root directory of the cargo workspace.
pub(crate) fn workspace_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().unwrap_or(manifest_dir).to_path_buf()
}
