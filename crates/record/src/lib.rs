//! nixcap-record: a recording proxy for `nix-daemon` Unix sockets.
//!
//! The recorder listens on a Unix socket, connects every client that
//! connects to it to the daemon, forwards the bytes unchanged in both
//! directions, and tees every chunk it reads, with a timestamp, to a capture
//! file ([`nixcap_capture::Writer`]).
//!
//! It is built to sit in front of a real daemon during a real build:
//! - It never decodes the protocol (this crate does not depend on
//!   nixcap-wire), so no decoder bug can disturb the traffic.
//! - The capture is written on its own thread, behind a queue bounded in
//!   bytes: a slow disk slows forwarding down but never loses data, and a
//!   capture that cannot be written at all is reported loudly and abandoned
//!   while forwarding continues.
//! - The daemon sees the recorder's uid, not the client's. The socket is
//!   created with mode 0600 without a window of looser permissions, and
//!   every peer's uid is checked with `SO_PEERCRED`: only the recorder's own
//!   uid and explicitly allowed ones are served. Peer credentials are kept
//!   in the capture.
//!
//! Entry points: [`Recorder::start`] (one capture) or
//! [`Recorder::start_rotating`] (a rotated set of files, see [`rotate`]) and
//! [`Recorder::finish`] inside a tokio runtime, [`run`] to record until a
//! shutdown future completes, [`BackgroundRecorder`] for non-async callers,
//! and [`record_stdio`] for the remote program of an SSH store (one session
//! on stdin and stdout).

mod addr;
mod file;
pub mod flight;
pub mod journal;
mod output;
mod proxy;
mod recorder;
pub mod rotate;
mod sink;
mod stdio;

pub use addr::{store_uri_query, AddrError, DaemonAddr, DEFAULT_DAEMON_SOCKET};
pub use file::CaptureFile;
pub use flight::{ClosedSession, Flight, FlightCounts, KeepSession, SessionChunk};
pub use nixcap_socket::{ListenError, PrivateDir, MAX_SOCKET_PATH};
pub use recorder::{run, BackgroundRecorder, Config, Error, Options, Recorder, Report, Stats};
pub use rotate::{FinishedHook, RotatedSet, Rotation};
pub use stdio::{
    record_stdio, record_stdio_to, session_file_name, write_stdio_capture, StdioConfig, StdioError,
    StdioReport, TeeOutcome, STDIO_CONN,
};
