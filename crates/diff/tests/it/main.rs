//! Behaviour tests of the diff engine over the committed captures of
//! `testdata/captures/`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers may unwrap; clippy only exempts #[test] functions"
)]

mod committed; // Committed captures: against themselves, and between Nix series.
