//! Fuzz target for the capture reader: whatever the bytes, reading them as a
//! capture never panics and never allocates more than the format's named
//! limits allow (every length field is checked before it sizes an
//! allocation).
//!
//! Each input is read three ways: as a file; as the same file with every
//! checksum recomputed, so that mutations get past the checksums and reach
//! the envelope, zstd and block decoders; and as the decompressed payload of
//! a frame, which exercises the block decoders directly. Seed the corpus with
//! the files of `testdata/corrupt/` and the captures with store objects that
//! `cargo run -p nixcap-capture --example capture_fuzz_seeds -- DIR` writes (`cargo
//! xtask fuzz` does both).

#![no_main]

use libfuzzer_sys::fuzz_target;
use nixcap_capture::fuzzing;

fuzz_target!(|data: &[u8]| {
    fuzzing::read_everything(data);
    let mut resealed = data.to_vec();
    fuzzing::reseal(&mut resealed);
    fuzzing::read_everything(&resealed);
    fuzzing::parse_frame_payload(data);
});
