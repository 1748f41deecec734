//! Fuzz target for the blocking client: the input is everything a daemon
//! sends; the client does the handshake, QueryPathInfo and NarFromPath and
//! must end with a value or an error, never a panic or a hang.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| nixcap_client::fuzzing::fuzz_client(data));
