//! The sidecar of a committed capture, and the helpers that make fixture runs
//! comparable: volatile numbers masked, digests, fixed pseudo-random inputs.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::run::ScenarioRun;

/// The sidecar stored next to each committed capture (`<scenario>.json`): what the client did
/// and saw while the capture was recorded. A replay test runs the same steps against the
/// replayed capture and compares.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FixtureRecord {
    /// The layout version, [`FIXTURE_RECORD_FORMAT`].
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

/// Numbers in client output that differ from run to run, by the text that precedes them:
/// registration times in `nix path-info --json`, and the daemon worker pids in the names of
/// the stale temporary-root files that Nix 2.34 reports while collecting garbage.
pub(super) const VOLATILE_NUMBERS: &[(&str, &str)] = &[
    ("\"registrationTime\":", "@TIME@"),
    ("/nix/var/nix/temproots/", "@PID@"),
];

/// Replaces the numbers in `text` that differ from run to run by placeholders (`@TIME@`,
/// `@PID@`), so that outputs of two runs compare equal when the clients saw the same answers.
pub fn mask_volatile(text: &str) -> String {
    let mut out = text.to_owned();
    for (prefix, placeholder) in VOLATILE_NUMBERS {
        let mut masked = String::with_capacity(out.len());
        let mut rest = out.as_str();
        while let Some(found) = rest.find(prefix) {
            let after = found + prefix.len();
            masked.push_str(&rest[..after]);
            let digits = rest[after..].bytes().take_while(u8::is_ascii_digit).count();
            if digits > 0 {
                masked.push_str(placeholder);
            }
            rest = &rest[after + digits..];
        }
        masked.push_str(rest);
        out = masked;
    }
    out
}

/// The SHA-256 of `bytes`, in lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut text = String::with_capacity(64);
    for byte in digest {
        let _ = write!(text, "{byte:02x}");
    }
    text
}

/// `len` pseudo-random bytes from `seed` (SplitMix64), the same on every machine.
pub fn pseudo_random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        out.extend_from_slice(&z.to_le_bytes());
    }
    out.truncate(len);
    out
}
