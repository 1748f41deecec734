//! Entry point for the `check` fuzz target: the first connection of a
//! recorded capture played against a target that sends arbitrary bytes,
//! then hangs up. Whatever the bytes, playing ends with the problems found;
//! it never panics and never waits past its timeout.

use std::io::{Read, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use nixcap_view::DecodedCapture;

use crate::Problem;

/// Plays the first connection of `recorded` against `daemon_bytes`.
pub fn fuzz_check(recorded: &DecodedCapture, daemon_bytes: &[u8]) -> Vec<Problem> {
    let Some(conn) = recorded.connections.first().map(|c| c.conn) else {
        return Vec::new();
    };
    let Ok((client_end, mut daemon_end)) = UnixStream::pair() else {
        return Vec::new();
    };
    let bytes = daemon_bytes.to_vec();
    let daemon = std::thread::spawn(move || {
        let _ = daemon_end.write_all(&bytes);
        let _ = daemon_end.shutdown(Shutdown::Write);
        // Take what the checker sends until it hangs up, so it never blocks.
        let mut sink = Vec::new();
        let _ = daemon_end.read_to_end(&mut sink);
    });
    let problems = crate::play_connection_on(recorded, conn, client_end, Duration::from_secs(5));
    let _ = daemon.join();
    problems
}
