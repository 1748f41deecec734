//! Integration tests of the recording proxy.

// Test code may unwrap; clippy only knows that inside `#[test]` functions,
// not in the helpers they share.
#![allow(clippy::unwrap_used)]

mod failures; // The daemon unreachable, a slow or failing capture, shutdown with open connections.
mod forwarding; // Byte-exact forwarding and recording, concurrency, half-close, the socket.
mod peers; // Peer credentials: other uids refused unless allowed.
mod real_nix; // Real Nix clients and daemons through the recorder.
mod support; // Scripted upstream server, payload client, capture sinks and checks.
