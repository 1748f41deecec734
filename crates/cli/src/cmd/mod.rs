//! One module per subcommand. Each has an `Args` struct (clap derive) and a
//! `run(Args) -> anyhow::Result<ExitCode>` function.

pub mod check;
pub mod diff;
pub mod export;
pub mod info;
pub mod input;
pub mod log;
pub mod progress;
pub mod record;
pub mod redact;
pub mod replay;
pub mod show;
pub mod verify;
pub mod wrap;

/// This process's stdin and stdout as files of their own (duplicated
/// descriptors), for the stdio recorder and replayer, which relay the
/// protocol over them.
pub fn stdio_files() -> anyhow::Result<(std::fs::File, std::fs::File)> {
    use anyhow::Context;
    use std::os::fd::AsFd;
    let stdin = std::io::stdin()
        .as_fd()
        .try_clone_to_owned()
        .context("duplicating stdin")?;
    let stdout = std::io::stdout()
        .as_fd()
        .try_clone_to_owned()
        .context("duplicating stdout")?;
    Ok((stdin.into(), stdout.into()))
}
