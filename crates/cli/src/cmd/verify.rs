//! `nixcap verify` (being written).

use std::process::ExitCode;

/// Arguments of `nixcap verify`.
#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`nixcap verify` is being written")
}
