//! The error type of the harness.

use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Duration;

/// Something went wrong while preparing or running a real Nix process.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HarnessError {
    /// A file system operation failed.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What the harness was doing, for example "creating".
        action: &'static str,
        /// The path it was working on.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A process could not be started or waited for.
    #[error("running `{command}`: {source}")]
    Process {
        /// The command line, for messages.
        command: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A socket path is longer than a Unix socket address can hold.
    #[error("socket path {} is {len} bytes long; Unix socket paths hold at most 107", path.display())]
    SocketPathTooLong {
        /// The socket path.
        path: PathBuf,
        /// Its length in bytes.
        len: usize,
    },
    /// A directory to bind into a chroot is unusable.
    #[error("cannot bind {} into a chroot: {reason}", path.display())]
    BadBindDir {
        /// The directory.
        path: PathBuf,
        /// Why it cannot be bound.
        reason: String,
    },
    /// The daemon exited before it listened on its socket.
    #[error("nix-daemon {version} exited with {status} before listening; its log:\n{log}")]
    DaemonExited {
        /// The Nix version of the daemon.
        version: String,
        /// How it exited.
        status: ExitStatus,
        /// The daemon's stdout and stderr.
        log: String,
    },
    /// The daemon did not listen on its socket in time.
    #[error("nix-daemon {version} did not listen on {} within {waited:?}; its log:\n{log}", socket.display())]
    DaemonTimeout {
        /// The Nix version of the daemon.
        version: String,
        /// The socket it should have created.
        socket: PathBuf,
        /// How long the harness waited.
        waited: Duration,
        /// The daemon's stdout and stderr.
        log: String,
    },
}

impl HarnessError {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        HarnessError::Io {
            action,
            path: path.into(),
            source,
        }
    }
}
