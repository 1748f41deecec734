//! Fuzz target for the session decoder: any interleaving of client and
//! daemon chunks decodes without panicking, its events tile both byte
//! streams and re-encode to them exactly, and each direction's events do
//! not depend on how the bytes were split or interleaved. The input format
//! is described in `nixcap_wire::fuzzing`; seed the corpus with
//! `fuzz/seed-corpus.py`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| nixcap_wire::fuzzing::fuzz_session(data));
