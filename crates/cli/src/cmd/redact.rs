//! `nixcap redact` (being written).

use std::process::ExitCode;

/// Arguments of `nixcap redact`.
#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`nixcap redact` is being written")
}
