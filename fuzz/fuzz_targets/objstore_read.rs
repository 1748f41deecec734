//! Fuzz target for reading objects by ranges (`nixcap_objstore::RangedReader`,
//! what `nixcap show s3://…` and replay from a store read through): for any
//! object and any script of reads and seeks, the reader gives what a
//! `Cursor` over the same bytes gives, reading the object as a capture
//! index through ranges gives what reading it from memory gives, and an
//! object replaced under the reader gives errors or bytes, never a panic.
//! The input layout is in `nixcap_objstore::fuzzing::ranged_reads`; seed it
//! with the fixture captures behind an empty script (`cargo xtask fuzz`).

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    nixcap_objstore::fuzzing::ranged_reads(data);
});
