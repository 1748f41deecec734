//! The error type of the benchmark harness.

use std::io;
use std::path::PathBuf;

/// Why a benchmark could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A system call or file operation failed.
    #[error("{what}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A program the benchmark runs did not start, did not become ready, or failed.
    #[error("{program}: {message}")]
    Program {
        /// The program.
        program: String,
        /// What went wrong.
        message: String,
    },
    /// A peer sent bytes the benchmark client or fake daemon cannot accept.
    #[error("protocol: {0}")]
    Protocol(String),
    /// A capture written by the recorder could not be read.
    #[error("cannot read the capture {path}")]
    Capture {
        /// The capture file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: nixcap_capture::ReadError,
    },
    /// The real-Nix harness failed.
    #[error(transparent)]
    Harness(#[from] nixcap_test_support::HarnessError),
    /// The command line is wrong.
    #[error("usage: {0}")]
    Usage(String),
    /// The results could not be serialised.
    #[error("cannot write the results as JSON")]
    Json(#[from] serde_json::Error),
}

/// The harness's result type.
pub type Result<T> = std::result::Result<T, Error>;

/// Attaches a description to an I/O error.
pub trait IoContext<T> {
    /// Turns an I/O error into [`Error::Io`] saying what was being done.
    fn doing(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn doing(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| Error::Io {
            what: what(),
            source,
        })
    }
}
