//! Fuzz target for the streaming NAR parser: a NAR fed whole and fed one
//! byte at a time gives the same nodes, the same length and the same
//! verdict. The first input byte selects the parser options.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| nixcap_wire::fuzzing::fuzz_nar(data));
