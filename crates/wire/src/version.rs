//! Protocol versions and feature sets (protocol reference §4).
//!
//! A version travels as one u64, `major << 8 | minor`; major is always 1.
//! Both sides announce their highest version and use the lower of the two.
//! From 1.38 on, both sides also exchange a feature set and use the
//! intersection.

use std::fmt;

/// Protocol magic sent first by the client: `"cxin"` on the wire.
pub const WORKER_MAGIC_1: u64 = 0x6e69_7863;
/// Protocol magic the daemon answers with: `"oixd"` on the wire.
pub const WORKER_MAGIC_2: u64 = 0x6478_696f;

/// A worker-protocol version such as 1.38.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct ProtocolVersion {
    /// Major version; 1 for every Nix release.
    pub major: u8,
    /// Minor version.
    pub minor: u8,
}

impl ProtocolVersion {
    /// Oldest version any daemon accepts (Nix 1.0).
    pub const MIN: ProtocolVersion = ProtocolVersion::new(1, 10);
    /// Newest version any Nix release sends (2.24 and later).
    pub const LATEST: ProtocolVersion = ProtocolVersion::new(1, 38);

    /// A version from its parts.
    pub const fn new(major: u8, minor: u8) -> Self {
        ProtocolVersion { major, minor }
    }

    /// A version from its wire form. Bits above the low 16 are ignored, as
    /// Nix's readers do.
    pub const fn from_wire(value: u64) -> Self {
        ProtocolVersion {
            major: ((value >> 8) & 0xff) as u8,
            minor: (value & 0xff) as u8,
        }
    }

    /// The wire form, `major << 8 | minor`.
    pub const fn to_wire(self) -> u64 {
        ((self.major as u64) << 8) | self.minor as u64
    }

    /// Whether this version is at least `1.minor`.
    pub const fn at_least(self, minor: u8) -> bool {
        self.major > 1 || (self.major == 1 && self.minor >= minor)
    }

    /// The version both sides use: the lower of the two announced.
    pub fn negotiate(client: ProtocolVersion, daemon: ProtocolVersion) -> ProtocolVersion {
        client.min(daemon)
    }
}

impl fmt::Display for ProtocolVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// Protocol features known to this decoder (protocol reference §5.4).
pub mod feature {
    /// DrvOutput, Realisation and builtOutputs use the binary path forms (2.35+).
    pub const REALISATION_WITH_PATH_NOT_HASH: &str = "realisation-with-path-not-hash";
    /// CollectGarbage sends a tagged GCPaths value (2.35+).
    pub const DELETE_DEAD_SPECIFIC_REFERRERS: &str = "delete-dead-specific-referrers";
    /// The client sends no SetOptions (2.35+, in-build sockets).
    pub const DISABLE_SET_OPTIONS: &str = "disable-set-options";
    /// Enables op 1001 (unreleased).
    pub const ADD_TO_STORE_SCANNING: &str = "add-to-store-scanning";
    /// Enables op 1000 (unreleased).
    pub const SUBMIT_OUTPUT: &str = "submit-output";
}

/// What a connection negotiated: the version in effect and the features
/// both sides offered. Every version-dependent layout decision takes this.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Negotiated {
    /// The lower of the two announced versions.
    pub version: ProtocolVersion,
    /// The intersection of the two feature sets, sorted (empty below 1.38).
    pub features: Vec<String>,
}

impl Negotiated {
    /// A negotiation with no features.
    pub fn new(version: ProtocolVersion) -> Self {
        Negotiated {
            version,
            features: Vec::new(),
        }
    }

    /// Whether the connection uses `1.minor` or later.
    pub fn at_least(&self, minor: u8) -> bool {
        self.version.at_least(minor)
    }

    /// Whether both sides offered `feature`.
    pub fn has(&self, feature: &str) -> bool {
        self.features.iter().any(|f| f == feature)
    }

    /// The negotiation of a connection whose sides announced these versions
    /// and feature sets.
    pub fn from_announced(
        client: ProtocolVersion,
        daemon: ProtocolVersion,
        client_features: &[String],
        daemon_features: &[String],
    ) -> Self {
        let version = ProtocolVersion::negotiate(client, daemon);
        let mut features: Vec<String> = if version.at_least(38) {
            client_features
                .iter()
                .filter(|f| daemon_features.contains(f))
                .cloned()
                .collect()
        } else {
            Vec::new()
        };
        features.sort();
        features.dedup();
        Negotiated { version, features }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_form_round_trips_and_masks_high_bits() {
        let v = ProtocolVersion::from_wire(0x126);
        assert_eq!(v, ProtocolVersion::new(1, 38));
        assert_eq!(v.to_wire(), 0x126);
        assert_eq!(
            ProtocolVersion::from_wire(0xdead_0000_0122),
            ProtocolVersion::new(1, 34)
        );
    }

    #[test]
    fn negotiation_takes_the_lower_version_and_common_features() {
        let n = Negotiated::from_announced(
            ProtocolVersion::new(1, 38),
            ProtocolVersion::new(1, 34),
            &["a".into()],
            &["a".into()],
        );
        assert_eq!(n.version, ProtocolVersion::new(1, 34));
        assert!(n.features.is_empty(), "no features below 1.38");
        let n = Negotiated::from_announced(
            ProtocolVersion::LATEST,
            ProtocolVersion::LATEST,
            &["b".into(), "a".into()],
            &["a".into(), "c".into()],
        );
        assert_eq!(n.features, vec!["a".to_string()]);
    }
}
