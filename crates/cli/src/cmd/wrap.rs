//! Running a command against a private socket: what `nixcap record -- CMD`
//! and `nixcap replay FILE -- CMD` share.
//!
//! Both start CMD with `NIX_REMOTE` (and `NIX_DAEMON_SOCKET_PATH`) pointing
//! at their socket, wait for it while passing termination signals on, and
//! exit with its status as a shell would.

use std::ffi::OsString;
use std::io::ErrorKind;
use std::path::Path;
use std::process::ExitStatus;

use anyhow::Context;
use tokio::process::Child;
use tokio::signal::unix::{signal, Signal, SignalKind};

use crate::exit;

/// The termination signals nixcap handles itself.
pub struct Signals {
    interrupt: Signal,
    terminate: Signal,
    hangup: Signal,
}

impl std::fmt::Debug for Signals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signals")
    }
}

impl Signals {
    /// Installs the handlers. Call this before anything can be interrupted,
    /// so that a signal never kills nixcap with a half-written file.
    pub fn install() -> anyhow::Result<Signals> {
        Ok(Signals {
            interrupt: signal(SignalKind::interrupt()).context("installing a SIGINT handler")?,
            terminate: signal(SignalKind::terminate()).context("installing a SIGTERM handler")?,
            hangup: signal(SignalKind::hangup()).context("installing a SIGHUP handler")?,
        })
    }

    /// Waits for any of SIGINT, SIGTERM and SIGHUP (standalone mode: each
    /// means "stop").
    pub async fn any(&mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
            _ = self.hangup.recv() => {}
        }
    }

    /// Waits for `child` to exit. Ctrl-C reaches the whole foreground
    /// process group, the command included: the command decides, and nixcap
    /// keeps serving until it exits. SIGTERM and SIGHUP are usually meant
    /// for nixcap alone, so they are passed on.
    pub async fn wait_for(&mut self, child: &mut Child) -> anyhow::Result<ExitStatus> {
        loop {
            tokio::select! {
                status = child.wait() => return status.context("waiting for the command"),
                _ = self.interrupt.recv() => {}
                _ = self.terminate.recv() => forward_signal(child, libc::SIGTERM),
                _ = self.hangup.recv() => forward_signal(child, libc::SIGHUP),
            }
        }
    }
}

/// Starts `command` (program and arguments) with `NIX_REMOTE=store_uri` and
/// `NIX_DAEMON_SOCKET_PATH=socket`. When it cannot be started, the error
/// says so and carries the exit status a shell would give (127 not found,
/// 126 otherwise).
pub fn spawn(command: &[OsString], store_uri: &str, socket: &Path) -> Result<Child, SpawnError> {
    let Some((program, args)) = command.split_first() else {
        return Err(SpawnError {
            message: "no command given".into(),
            exit_code: exit::NOT_FOUND,
        });
    };
    tokio::process::Command::new(program)
        .args(args)
        .env("NIX_REMOTE", store_uri)
        .env("NIX_DAEMON_SOCKET_PATH", socket)
        .spawn()
        .map_err(|error| SpawnError {
            message: format!("cannot run {}: {error}", Path::new(program).display()),
            exit_code: match error.kind() {
                ErrorKind::NotFound => exit::NOT_FOUND,
                _ => exit::CANNOT_RUN,
            },
        })
}

/// A command that could not be started.
#[derive(Debug)]
pub struct SpawnError {
    /// What went wrong, naming the program.
    pub message: String,
    /// The shell's exit status for it.
    pub exit_code: u8,
}

/// Passes a termination signal on to the command.
#[allow(unsafe_code)] // Neither std nor tokio can send a signal other than SIGKILL to a child.
fn forward_signal(child: &Child, signal: libc::c_int) {
    let Some(pid) = child.id().and_then(|pid| libc::pid_t::try_from(pid).ok()) else {
        return;
    };
    // SAFETY: kill(2) has no memory-safety preconditions. The pid is our own
    // child's, which has not been reaped yet (`child.id()` returns None once
    // it has), so it cannot have been reused by another process.
    unsafe {
        libc::kill(pid, signal);
    }
}
