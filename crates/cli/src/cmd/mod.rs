//! One module per subcommand. Each has an `Args` struct (clap derive) and a
//! `run(Args) -> anyhow::Result<ExitCode>` function.

pub mod check;
pub mod diff;
pub mod export;
pub mod info;
pub mod input;
pub mod log;
pub mod record;
pub mod redact;
pub mod replay;
pub mod show;
pub mod verify;
pub mod wrap;

/// Exit status for "could not do the job" (unreadable input, bad usage),
/// as diff(1) and cmp(1) use 2.
pub const EXIT_TROUBLE: u8 = 2;
