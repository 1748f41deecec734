//! `nixcap info` (being written).

use std::process::ExitCode;

/// Arguments of `nixcap info`.
#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`nixcap info` is being written")
}
