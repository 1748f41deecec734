//! Test harness for running real Nix daemons and clients of several versions.
//!
//! Three Nix versions are supported: 2.8 from Debian 12 on the host, 2.26 from Debian trixie and
//! the newest Nix of Debian sid (2.34 or later) in debootstrap chroots.
//! `cargo xtask nix-peers install` installs them, and `docs/REAL-NIX.md` explains the layout.
//!
//! - [`peer_or_skip`] and [`Peers`] find the installed versions and decide whether a test runs,
//!   skips, or fails (when `NIXCAP_REQUIRE_NIX=1` is set and a version is missing).
//! - [`Daemon`] runs a `nix-daemon` of one version on its own socket with a throw-away store.
//! - [`NixCommand`] runs a client of one version against any daemon, in a clean environment.
//! - [`tools`] finds the other tools some tests need (DuckDB, SeaweedFS).
//! - [`scenarios`] defines deterministic client scenarios, shared by the end-to-end tests and
//!   the committed captures in `testdata/captures/`.
//!
//! Every Nix process started here either has an explicit store (`NIX_REMOTE`, `--store`) or runs
//! in a private mount namespace with its own state directory mounted on `/nix`, so the real
//! `/nix` stays an empty mount point; [`assert_host_nix_dir_empty`] checks that.
//! Everything needs root, for `unshare --mount` and `chroot`.

#![warn(missing_docs)]

mod command;
mod daemon;
mod error;
mod namespace;
mod peer;
mod peers;
pub mod real_sessions;
pub mod scenarios;
mod sys;
pub mod tools;

pub use command::{NixChild, NixCommand, NOBODY};
pub use daemon::{wait_until_listening, Daemon, DaemonOptions};
pub use error::HarnessError;
pub use peer::{NixVersion, Peer};
pub use peers::{
    assert_host_nix_dir_empty, nix_required, peer_or_skip, peers, peers_dir, Peers, PEERS_DIR_ENV,
    REQUIRE_NIX_ENV,
};
