//! The two system calls the harness needs that the standard library does not offer.

#![allow(unsafe_code)]

use std::io;

/// Sends SIGTERM to `pid`, which must be a process this harness started and has not reaped.
pub(crate) fn terminate(pid: u32) -> io::Result<()> {
    let pid =
        libc::pid_t::try_from(pid).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: kill(2) takes plain integers and has no memory-safety preconditions.
    let result = unsafe { libc::kill(pid, libc::SIGTERM) };
    if result == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Returns the effective user id of this process.
pub(crate) fn effective_uid() -> u32 {
    // SAFETY: geteuid(2) takes no arguments, cannot fail and has no preconditions.
    unsafe { libc::geteuid() }
}
