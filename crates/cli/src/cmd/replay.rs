//! `nixcap replay` (being written).

use std::process::ExitCode;

/// Arguments of `nixcap replay`.
#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`nixcap replay` is being written")
}
