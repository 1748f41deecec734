//! `nixcap export` (being written).

use std::process::ExitCode;

/// Arguments of `nixcap export`.
#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`nixcap export` is being written")
}
