//! `nixcap show` (being written).

use std::process::ExitCode;

/// Arguments of `nixcap show`.
#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`nixcap show` is being written")
}
