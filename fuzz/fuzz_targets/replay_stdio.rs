//! Fuzz target for the replayer's stdio sessions: the remote program of an
//! SSH store (`nixcap replay --stdio`), which takes whatever arrives on its
//! standard input. `nixcap_replay::serve_stdio` must answer an arbitrary
//! byte stream, worker protocol (`ssh-ng://`) or serve protocol (`ssh://`),
//! without panicking, and must return once that stream has ended.
//!
//! At start, every fixture capture of each Nix version (2.8, 2.26, 2.34) in
//! `testdata/captures/` is read and merged into one capture per version, so
//! that every recorded connection of either protocol is a candidate (the
//! large `add-large` capture is left out: its MiB NAR would slow every
//! input), and decoded once. The first input byte picks the version; the
//! rest is the client's whole standard input, after which it ends. The
//! session must be over within a few seconds.
//!
//! Seed the corpus with the client side of real connections and of the
//! fixtures' own connections (`cargo xtask fuzz replay_stdio` does), so that
//! inputs start with a valid worker or serve handshake.

#![no_main]

#[path = "fixtures.rs"]
mod fixtures;

use std::io::Cursor;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use fixtures::{merged_capture, VERSIONS};
use libfuzzer_sys::fuzz_target;
use nixcap_replay::{serve_stdio, Options, StoreRoot};
use nixcap_view::DecodedCapture;

/// Fixtures left out of the merged captures (by file stem).
const LEFT_OUT: [&str; 1] = ["add-large"];

/// How long a session whose input has ended may go on.
const HANG_LIMIT: Duration = Duration::from_secs(10);

fn captures() -> &'static [Arc<DecodedCapture>] {
    static CAPTURES: OnceLock<Vec<Arc<DecodedCapture>>> = OnceLock::new();
    CAPTURES.get_or_init(|| {
        VERSIONS
            .iter()
            .map(|v| Arc::new(DecodedCapture::new(merged_capture(v, &LEFT_OUT))))
            .collect()
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&select, input)) = data.split_first() else {
        return;
    };
    let captures = captures();
    let capture = Arc::clone(&captures[usize::from(select) % captures.len()]);
    let input = input.to_vec();
    let (done, finished) = mpsc::channel();
    std::thread::spawn(move || {
        let options = Options::default().store_root(StoreRoot::None);
        // An error here is a refusal before the session starts (no
        // handshake in the capture), which the fixtures never cause.
        let result = serve_stdio(&capture, options, Cursor::new(input), std::io::sink());
        let _ = done.send(result.map(|_| ()).map_err(|e| e.to_string()));
    });
    match finished.recv_timeout(HANG_LIMIT) {
        Ok(Ok(())) => {}
        Ok(Err(error)) => panic!("serve_stdio refused the fixtures: {error}"),
        Err(RecvTimeoutError::Timeout) => {
            panic!("the stdio session went on for {HANG_LIMIT:?} after its input ended")
        }
        Err(RecvTimeoutError::Disconnected) => panic!("the stdio session's thread died"),
    }
});
