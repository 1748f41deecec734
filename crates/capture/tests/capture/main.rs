//! Integration tests of the capture container, in one test binary.
//!
//! - `round_trip`: what is written is read back identically.
//! - `compat`: forward and backward compatibility rules.
//! - `format_bytes`: an independent reader written from `docs/FORMAT.md`.
//! - `corrupt`: the damaged files of `testdata/corrupt/` and their diagnoses.
//! - `killed_writer`: a writer killed with SIGKILL leaves a readable file.
//! - `robustness`: random damage never makes the reader panic.

// Helper functions of these tests unwrap freely, as the tests themselves may.
#![allow(clippy::unwrap_used)]

mod compat;
mod corrupt;
mod format_bytes;
mod killed_writer;
mod robustness;
mod round_trip;
mod support;
