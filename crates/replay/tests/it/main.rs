//! Behaviour tests of the replaying server over the committed captures of
//! `testdata/captures/`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers may unwrap; clippy only exempts #[test] functions"
)]

mod plan; // The fetch plan made while reading equals the plan of the whole decoded capture.
mod recorded; // A client sending a capture's recorded bytes gets the recorded answers back.
mod versions; // A client of a newer Nix, served from an older capture when translating.
