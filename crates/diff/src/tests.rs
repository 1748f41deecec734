//! Tests of the engine on real transcripts.

use nixcap_test_support::real_sessions::{capture_bytes_from_session, load_real_session};
use nixcap_view::DecodedCapture;

use super::*;

fn decoded(name: &str) -> DecodedCapture {
    let bytes = capture_bytes_from_session(&load_real_session(name));
    DecodedCapture::new(nixcap_capture::read_capture(&bytes[..]).unwrap())
}

#[test]
fn a_capture_is_identical_to_itself() {
    let a = decoded("nix-2.26.3.nxsess.zst");
    let report = diff(&a, &a, &Options::default());
    assert!(report.is_identical(), "{report}");
    assert_eq!(report.identical_connections, a.connections.len());
}
