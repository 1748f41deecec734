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
