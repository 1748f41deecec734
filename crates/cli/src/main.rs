//! The `nixcap` command: record, replay and diff Nix daemon traffic.
//!
//! This crate is glue: argument parsing (clap derive) and output. Each
//! subcommand lives in `cmd/<name>.rs` with its `Args` and a `run` function;
//! the work is done by the library crates. This is the only crate, besides
//! xtask, that uses `anyhow`.

use std::io::{self, Write};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cmd;
mod exit;

/// Record, replay and diff the traffic between Nix clients and nix-daemon.
#[derive(Debug, Parser)]
#[command(name = "nixcap", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Record traffic through a proxy socket in front of nix-daemon.
    Record(cmd::record::Args),
    /// Serve a capture as a fake nix-daemon.
    Replay(cmd::replay::Args),
    /// Show the operations in a capture, like tshark.
    Show(cmd::show::Args),
    /// Print the daemon's log stream as Nix's internal-json lines.
    Log(cmd::log::Args),
    /// Summarise a capture, like capinfos.
    Info(cmd::info::Args),
    /// Check a capture's integrity.
    Verify(cmd::verify::Args),
    /// Compare two captures operation by operation.
    Diff(cmd::diff::Args),
    /// Play a capture's client side against a daemon and compare its answers.
    Check(cmd::check::Args),
    /// Scrub secrets from a capture before sharing it.
    Redact(cmd::redact::Args),
    /// Export a capture to pcapng for Wireshark or as a Chrome trace, or captures to a Parquet op table.
    Export(cmd::export::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Record(args) => cmd::record::run(args),
        Command::Replay(args) => cmd::replay::run(args),
        Command::Show(args) => cmd::show::run(args),
        Command::Log(args) => cmd::log::run(args),
        Command::Info(args) => cmd::info::run(args),
        Command::Verify(args) => cmd::verify::run(args),
        Command::Diff(args) => cmd::diff::run(args),
        Command::Check(args) => cmd::check::run(args),
        Command::Redact(args) => cmd::redact::run(args),
        Command::Export(args) => cmd::export::run(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            if is_broken_pipe(&err) {
                // `nixcap show … | head` closing the pipe is not an error.
                return ExitCode::SUCCESS;
            }
            let _ = writeln!(io::stderr().lock(), "nixcap: error: {err:#}");
            ExitCode::from(exit::TROUBLE)
        }
    }
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn verify_cli() {
        Cli::command().debug_assert();
    }
}
