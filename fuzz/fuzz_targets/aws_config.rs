//! Fuzz target for the AWS shared files (`~/.aws/credentials` and
//! `~/.aws/config`, read for S3 stores): any text parses, keys come out
//! lowercased and trimmed, values trimmed, and the secrets read are
//! scrubbed from text. The first byte picks the profile asked for; `cargo
//! xtask fuzz` seeds it with a few shapes of those files.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    nixcap_objstore::fuzzing::aws_profile(data);
});
