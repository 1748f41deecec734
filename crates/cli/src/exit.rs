//! Every exit status `nixcap` uses, in one table.
//!
//! | Status | Meaning |
//! |---|---|
//! | 0 | Success; for `diff`, the captures are the same. |
//! | 1 | [`DAMAGED`]: `show`, `log` and `verify` found damage (everything readable before it was shown); [`DIFFERENT`]: `diff` found a difference, or `check` found the target daemon answering differently; [`CAPTURE_INCOMPLETE`]: standalone `record` could not write the whole capture. |
//! | 2 | [`TROUBLE`]: the job could not be done (unreadable input, bad usage, any other error), as diff(1) and cmp(1) use 2. |
//! | 3 | [`DIVERGED`]: `replay` saw a client diverge from the capture (standalone mode, or `--strict` in wrapper mode). |
//! | 126, 127 | [`CANNOT_RUN`], [`NOT_FOUND`]: the wrapped command (`record`/`replay -- CMD`) could not be started, as a shell reports it. |
//! | other | In wrapper mode, the wrapped command's own status, or 128 + the signal that killed it ([`of_status`]). |

use std::os::unix::process::ExitStatusExt;
use std::process::{ExitCode, ExitStatus};

/// The capture is damaged; everything readable before the damage was shown.
pub const DAMAGED: u8 = 1;
/// `diff`: the captures differ; `check`: the target answered differently.
pub const DIFFERENT: u8 = 1;
/// Standalone `record`: the capture could not be completely written.
pub const CAPTURE_INCOMPLETE: u8 = 1;
/// Could not do the job (unreadable input, bad usage, an error).
pub const TROUBLE: u8 = 2;
/// `replay`: a client diverged from the capture.
pub const DIVERGED: u8 = 3;
/// The wrapped command exists but could not be run.
pub const CANNOT_RUN: u8 = 126;
/// The wrapped command was not found.
pub const NOT_FOUND: u8 = 127;

/// The exit status a shell reports for a wrapped command's `status`: its
/// code, or 128 + the signal that killed it.
pub fn of_status(status: ExitStatus) -> ExitCode {
    if let Some(code) = status.code() {
        return ExitCode::from(u8::try_from(code & 0xff).unwrap_or(1));
    }
    match status.signal() {
        Some(signal) => ExitCode::from(u8::try_from(128 + signal).unwrap_or(255)),
        None => ExitCode::FAILURE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_shell() {
        assert_eq!(of_status(ExitStatus::from_raw(3 << 8)), ExitCode::from(3));
        assert_eq!(of_status(ExitStatus::from_raw(9)), ExitCode::from(137));
    }
}
