//! Entry point for the `client` fuzz target: the client against a daemon
//! that sends arbitrary bytes. Whatever the bytes, the client returns a
//! value or an error; it never panics and never waits past its timeout.

use std::io::{Read, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use crate::{Client, ClientOptions};

/// A store path the operations ask about.
const PATH: &str = "/nix/store/g1w7hy3qg1w7hy3qg1w7hy3qg1w7hy3q-foo";

/// Plays `daemon_bytes` as everything a daemon sends, then hangs up, while
/// the client does the handshake, QueryPathInfo and NarFromPath.
pub fn fuzz_client(daemon_bytes: &[u8]) {
    let Ok((client_end, mut daemon_end)) = UnixStream::pair() else {
        return;
    };
    let bytes = daemon_bytes.to_vec();
    let daemon = std::thread::spawn(move || {
        let _ = daemon_end.write_all(&bytes);
        let _ = daemon_end.shutdown(Shutdown::Write);
        // Read what the client sends until it hangs up, so it never blocks.
        let mut sink = Vec::new();
        let _ = daemon_end.read_to_end(&mut sink);
    });
    let options = ClientOptions::default().with_timeout(Duration::from_secs(5));
    if let Ok(mut client) = Client::from_stream(client_end, options) {
        let _ = client.query_path_info(PATH);
        let _ = client.nar_from_path(PATH);
    }
    let _ = daemon.join();
}
