//! The sidecar of a committed capture.

use serde::{Deserialize, Serialize};

use super::run::ScenarioRun;

/// The sidecar stored next to each committed capture (`<scenario>.json`): what the client did
/// and saw while the capture was recorded. A replay test runs the same steps against the
/// replayed capture and compares.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FixtureRecord {
    /// The layout version, [`FIXTURE_RECORD_FORMAT`](super::FIXTURE_RECORD_FORMAT).
    pub format: u32,
    /// The scenario's name.
    pub scenario: String,
    /// The scenario's summary.
    pub summary: String,
    /// The exact Nix version of the daemon.
    pub daemon_nix_version: String,
    /// The worker protocol version the client sent, as `major.minor`.
    pub client_protocol: String,
    /// The worker protocol version the daemon sent, as `major.minor`.
    pub daemon_protocol: String,
    /// Which store's connections the capture holds.
    pub recorded: String,
    /// The working directory the steps ran in; [`WORK`] stands for it in the steps. It
    /// reaches the daemon only as the target of `nix-build`'s result link (an indirect root).
    pub work_dir: String,
    /// How many connections the capture holds.
    pub connections: usize,
    /// The ops of each connection, in order, as the session decoder names them.
    #[serde(default)]
    pub ops: Vec<Vec<String>>,
    /// The capture of the source store, for scenarios that need one
    /// ([`Scenario::needs_source`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<SourceCaptureRecord>,
    /// What the client did and saw.
    pub run: ScenarioRun,
}

/// The second capture of a scenario with a source store: the connections of the source
/// store, recorded through a second recorder at the same time as the main capture.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceCaptureRecord {
    /// The capture's file name, next to the sidecar (`<scenario>.source.nixcap`).
    pub capture: String,
    /// Which store's connections the capture holds.
    pub recorded: String,
    /// How many connections the capture holds.
    pub connections: usize,
    /// The ops of each connection, in order, as the session decoder names them.
    #[serde(default)]
    pub ops: Vec<Vec<String>>,
}

/// The file name of the source capture of `scenario` (`<scenario>.source.nixcap`).
pub fn source_capture_name(scenario: &str) -> String {
    format!("{scenario}.source.nixcap")
}
