//! `nixcap record` (being written).

use std::process::ExitCode;

/// Arguments of `nixcap record`.
#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`nixcap record` is being written")
}
