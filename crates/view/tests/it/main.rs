//! Behaviour tests of the decoded view over the committed captures of
//! `testdata/captures/`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers may unwrap; clippy only exempts #[test] functions"
)]

mod show; // The text and JSON Lines views of every capture.
mod summary; // The capture summary (`nixcap info`): footer and scan, protocol, sets.

use std::path::{Path, PathBuf};

/// The committed captures.
pub fn captures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata/captures")
}

/// A capture's name relative to `testdata/captures`, for messages.
pub fn capture_name(path: &Path) -> String {
    path.strip_prefix(captures_dir())
        .unwrap_or(path)
        .display()
        .to_string()
}
