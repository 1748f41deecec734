//! Integration tests of the `nixcap` command and the crates behind it, in one test binary.

// Test code may unwrap; clippy only knows that inside `#[test]` functions,
// not in the helpers they share.
#![allow(clippy::unwrap_used)]

mod capture_commands; // `nixcap info` and `nixcap verify` on the files of testdata/corrupt/.
mod check; // `nixcap check` against fresh real daemons, the system daemon's socket and nothing.
mod diff; // `nixcap diff`: changed fields, exit statuses, protocol changelogs, recordings diffed again.
mod farm; // A rotating recorder uploading to a real S3 server, soaked with thousands of sessions.
mod flight; // The flight recorder (`record --listen --keep failed`) with real failing and passing builds.
mod hardening; // Faults, load, bad input and trust: the recorder and the capture readers under stress.
mod log; // `nixcap log` against what real clients print with `--log-format internal-json`.
mod objstore; // Captures read from a real S3 server (SeaweedFS on loopback).
mod optable; // `nixcap export --format parquet` queried by a real DuckDB.
mod record_e2e; // Real Nix clients and daemons through the recorder (library and `nixcap record`).
mod remote; // Remote stores over SSH (ssh-ng://, ssh://) recorded with `nixcap record --stdio`.
mod remote_build; // A build through `--builders` on an ssh-ng:// machine, recorded and replayed.
mod replay; // Real Nix clients against replayed captures (library `Server` and `nixcap replay`).
mod replay_versions; // Captures of one Nix version replayed to clients of another, against live runs.
mod report_kit; // Bug reports: `nixcap redact` on real client runs and `nixcap export` read by tshark.
mod self_contained; // Captures that carry what the daemon made: store objects, replayed with no daemon.
mod show; // The text and JSON Lines views of captures (`nixcap show`).
mod trace; // `nixcap export --format chrome-trace`, loaded by Chromium's DevTools.
