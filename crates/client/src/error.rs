//! What can go wrong talking to a daemon.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use nixcap_wire::nar::NarError;
use nixcap_wire::primitives::ReadError;
use nixcap_wire::stderr::ErrorInfo;

/// Why a client operation failed.
///
/// Every variant names what the client was doing (`what`: "the handshake",
/// "the QueryPathInfo reply", …) and, for bytes from the daemon, the offset in
/// the daemon's byte stream since the connection was opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The store address is not one this client can use.
    #[error("unsupported store address '{address}': {reason}")]
    Address {
        /// The address given.
        address: String,
        /// Why it cannot be used.
        reason: &'static str,
    },
    /// Connecting to the socket failed.
    #[error("connecting to {}: {source}", path.display())]
    Connect {
        /// The socket path.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// Reading or writing the socket failed.
    #[error("{what}: {source}")]
    Io {
        /// What the client was doing.
        what: String,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// The daemon sent nothing for longer than the timeout.
    #[error("{what}: no answer from the daemon within {timeout:?}")]
    Timeout {
        /// What the client was waiting for.
        what: String,
        /// The timeout in force.
        timeout: Duration,
    },
    /// The daemon closed the connection in the middle of a value.
    #[error("{what}: the daemon closed the connection at byte {offset} of its stream")]
    Closed {
        /// What the client was reading.
        what: String,
        /// Bytes received from the daemon before the end.
        offset: u64,
    },
    /// The daemon's bytes cannot be what the protocol expects here.
    #[error("{what}: undecodable bytes at byte {offset} of the daemon's stream: {source}")]
    Decode {
        /// What the client was reading.
        what: String,
        /// Offset of the offending bytes in the daemon's stream.
        offset: u64,
        /// What the decoder said.
        #[source]
        source: ReadError,
    },
    /// A NAR the daemon streamed is invalid.
    #[error("{what}: invalid NAR starting at byte {offset} of the daemon's stream: {source}")]
    Nar {
        /// What the client was reading.
        what: String,
        /// Offset of the NAR's first byte in the daemon's stream.
        offset: u64,
        /// What the parser said.
        #[source]
        source: NarError,
    },
    /// A value is larger than the client's limit for it.
    #[error("{what}: {len} bytes exceed the limit of {max}")]
    TooLarge {
        /// What the value is.
        what: String,
        /// Its size so far.
        len: u64,
        /// The limit.
        max: u64,
    },
    /// The daemon answered the operation with `STDERR_ERROR`.
    #[error("the daemon refused {op}: {}", .error.message().to_string_lossy().trim_end())]
    Daemon {
        /// The operation.
        op: String,
        /// The error the daemon sent.
        error: ErrorInfo,
    },
    /// The daemon failed part-way through a NarFromPath dump and sent
    /// `STDERR_ERROR` where the NAR went on. The daemon ends the connection
    /// after this, so the client cannot be used any more.
    #[error("the daemon failed to send the NAR of {path}: {}", .error.message().to_string_lossy().trim_end())]
    DumpFailed {
        /// The path asked for.
        path: String,
        /// The error the daemon sent.
        error: ErrorInfo,
    },
    /// The daemon asked for something this client cannot give
    /// (`STDERR_READ` data for an operation sent without an upload).
    #[error("{what}: the daemon asked for upload data (STDERR_READ of up to {max_len} bytes)")]
    UnexpectedRead {
        /// What the client was doing.
        what: String,
        /// The most the daemon would accept.
        max_len: u64,
    },
    /// The daemon's protocol version has no such operation.
    #[error("{operation} is not available at protocol {version}: {reason}")]
    Unsupported {
        /// The operation asked for.
        operation: &'static str,
        /// The negotiated version.
        version: String,
        /// Why.
        reason: &'static str,
    },
    /// The daemon's handshake announces a version below what any daemon uses.
    #[error("the daemon announced protocol {version}, below the oldest supported (1.10)")]
    VersionTooOld {
        /// The version announced.
        version: String,
    },
}

impl ClientError {
    /// Whether the error came from the daemon refusing the operation (the
    /// connection is still usable afterwards).
    pub fn is_daemon_error(&self) -> bool {
        matches!(self, ClientError::Daemon { .. })
    }
}
