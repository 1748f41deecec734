//! Fuzz target for `nixcap check`'s player: the input is everything the
//! target daemon sends on the first connection of a committed capture
//! (Nix 2.26's `path-info`: SetOptions, AddToStore with framed uploads,
//! QueryMissing, QueryPathInfo, BuildPaths…). The capture is at protocol
//! 1.38, so a daemon hello of an older minor (as in the seeds from Nix 2.8
//! daemons) makes the checker rebuild the handshake and translate each
//! request and upload for that minor. Playing must end with the problems
//! found, never a panic or a hang.

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use nixcap_view::DecodedCapture;

static CAPTURE: &[u8] = include_bytes!("../../testdata/captures/nix-2.26/path-info.nixcap");

fn recorded() -> Option<&'static DecodedCapture> {
    static DECODED: OnceLock<Option<DecodedCapture>> = OnceLock::new();
    DECODED
        .get_or_init(|| {
            nixcap_capture::read_capture(CAPTURE)
                .ok()
                .map(DecodedCapture::new)
        })
        .as_ref()
}

fuzz_target!(|data: &[u8]| {
    if let Some(recorded) = recorded() {
        let _ = nixcap_check::fuzzing::fuzz_check(recorded, data);
    }
});
