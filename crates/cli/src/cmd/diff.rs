//! `nixcap diff` (being written).

use std::process::ExitCode;

/// Arguments of `nixcap diff`.
#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`nixcap diff` is being written")
}
