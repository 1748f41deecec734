//! Fuzz target for the replayer's request matching: a live client that
//! sends arbitrary bytes to a `nixcap_replay::Server` never makes it panic
//! or hang, whatever it asks for and in whatever order.
//!
//! The matcher itself is private to `nixcap-replay`; its public entry point
//! is the server, so each input goes through a real Unix socket. At start,
//! one server per Nix version (2.8, 2.26, 2.34) and matching mode (strict,
//! keyed, reuse) is started on every fixture capture of that version in
//! `testdata/captures/`, merged into one capture so that every recorded op
//! is a candidate. The first input byte picks the server; the rest is what
//! the client sends, after which it half-closes its side. The daemon side
//! must then end the connection within a few seconds: a replayer that waits
//! forever for a client that has finished sending is a hang.
//!
//! Seed the corpus with the client side of real connections
//! (`cargo xtask fuzz replay_match` does), so that inputs start with a
//! valid handshake of the right protocol version.

#![no_main]

#[path = "fixtures.rs"]
mod fixtures;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::OnceLock;
use std::time::Duration;

use fixtures::{merged_capture, VERSIONS};
use libfuzzer_sys::fuzz_target;
use nixcap_replay::{MatchMode, Options, Server, StoreRoot};
use nixcap_view::DecodedCapture;

const MODES: [MatchMode; 3] = [MatchMode::Strict, MatchMode::Keyed, MatchMode::Reuse];

/// How long the replayer may take to close a connection whose client has
/// stopped sending.
const HANG_LIMIT: Duration = Duration::from_secs(10);

fn servers() -> &'static Vec<Server> {
    static SERVERS: OnceLock<Vec<Server>> = OnceLock::new();
    SERVERS.get_or_init(|| {
        let mut servers = Vec::new();
        for version in VERSIONS {
            for mode in MODES {
                let options = Options::default()
                    .match_mode(mode)
                    .store_root(StoreRoot::None);
                let decoded = DecodedCapture::new(merged_capture(version, &[]));
                servers.push(Server::start(decoded, options).expect("starting a replay server"));
            }
        }
        servers
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&select, client_bytes)) = data.split_first() else {
        return;
    };
    let servers = servers();
    let server = &servers[usize::from(select) % servers.len()];
    let stream = UnixStream::connect(server.socket_path()).expect("connecting to the replayer");
    stream
        .set_read_timeout(Some(HANG_LIMIT))
        .expect("setting a timeout");
    let mut writer = stream.try_clone().expect("cloning the stream");
    let client = client_bytes.to_vec();
    // Write from another thread so that a replayer answering while the
    // client is still sending cannot deadlock the two.
    let sender = std::thread::spawn(move || {
        let _ = writer.write_all(&client);
        let _ = writer.shutdown(std::net::Shutdown::Write);
    });
    let mut reader = stream;
    let mut buf = [0u8; 65536];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(_) => {}
            Err(err)
                if err.kind() == std::io::ErrorKind::WouldBlock
                    || err.kind() == std::io::ErrorKind::TimedOut =>
            {
                panic!("the replayer kept a finished client waiting for {HANG_LIMIT:?}")
            }
            Err(_) => break,
        }
    }
    let _ = sender.join();
});
