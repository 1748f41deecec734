//! Fuzz target for the session decoder on serve-protocol connections: the
//! input's chunks follow both hellos of a serve connection, and the same
//! guarantees as for the `session` target are checked (no panic, tiling,
//! exact re-encoding, split independence). The input format is described in
//! `nixcap_wire::fuzzing`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| nixcap_wire::fuzzing::fuzz_serve_session(data));
