//! The Nix versions the harness runs, and one installed version ([`Peer`]). This module
//! depends on nothing else in the crate: finding peers ([`crate::peers`]), running their
//! clients ([`crate::NixCommand`]) and their daemons ([`crate::Daemon`]) build on it.

use std::fmt;
use std::path::{Path, PathBuf};

/// A Nix version the harness can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum NixVersion {
    /// Nix 2.8 (worker protocol 1.34), from Debian 12 on the host.
    V2_8,
    /// Nix 2.26 (worker protocol 1.38), from Debian trixie in a chroot.
    V2_26,
    /// Nix 2.34 or later, from Debian sid in a chroot; sid moves, so the exact version varies.
    /// [`Peer::nix_version`] tells which one is installed.
    V2_34,
}

impl NixVersion {
    /// Every version, oldest first.
    pub const ALL: [NixVersion; 3] = [NixVersion::V2_8, NixVersion::V2_26, NixVersion::V2_34];

    /// The version series, for messages: `2.8`, `2.26` or `2.34+`.
    pub fn series(self) -> &'static str {
        match self {
            NixVersion::V2_8 => "2.8",
            NixVersion::V2_26 => "2.26",
            NixVersion::V2_34 => "2.34+",
        }
    }

    /// The Debian suite of the chroot this version runs in, or `None` for the host.
    pub fn debian_suite(self) -> Option<&'static str> {
        match self {
            NixVersion::V2_8 => None,
            NixVersion::V2_26 => Some("trixie"),
            NixVersion::V2_34 => Some("sid"),
        }
    }

    /// Tells whether an installed `major.minor` belongs to this series.
    pub(crate) fn accepts(self, (major, minor): (u32, u32)) -> bool {
        match self {
            NixVersion::V2_8 => (major, minor) == (2, 8),
            NixVersion::V2_26 => (major, minor) == (2, 26),
            NixVersion::V2_34 => major == 2 && minor >= 34,
        }
    }
}

impl fmt::Display for NixVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Nix {}", self.series())
    }
}

/// One installed, working Nix version: where it runs and what it reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    version: NixVersion,
    nix_version: String,
    chroot: Option<PathBuf>,
}

impl Peer {
    /// A peer of `version` that reports `nix_version` and runs in `chroot` (`None`: the host).
    pub(crate) fn new(version: NixVersion, nix_version: String, chroot: Option<PathBuf>) -> Self {
        Peer {
            version,
            nix_version,
            chroot,
        }
    }

    /// The version series.
    pub fn version(&self) -> NixVersion {
        self.version
    }

    /// The exact version `nix --version` reports, for example `2.34.8`.
    pub fn nix_version(&self) -> &str {
        &self.nix_version
    }

    /// The major and minor numbers of [`Peer::nix_version`].
    pub fn major_minor(&self) -> (u32, u32) {
        parse_version(&self.nix_version).unwrap_or((0, 0))
    }

    /// Tells whether this peer is at least version `major.minor`.
    pub fn at_least(&self, major: u32, minor: u32) -> bool {
        self.major_minor() >= (major, minor)
    }

    /// The chroot this version runs in, or `None` when it runs on the host.
    pub fn chroot(&self) -> Option<&Path> {
        self.chroot.as_deref()
    }
}

/// Parses the major and minor numbers of a version like `2.34.8` or `2.35.0pre`.
pub(crate) fn parse_version(version: &str) -> Option<(u32, u32)> {
    let mut parts = version.split('.');
    let major = leading_number(parts.next()?)?;
    let minor = leading_number(parts.next()?)?;
    Some((major, minor))
}

fn leading_number(text: &str) -> Option<u32> {
    let digits: String = text.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse() {
        assert_eq!(parse_version("2.8.0"), Some((2, 8)));
        assert_eq!(parse_version("2.35.0pre20260101"), Some((2, 35)));
        assert_eq!(parse_version("garbage"), None);
    }

    #[test]
    fn version_series_accept_what_they_should() {
        assert!(NixVersion::V2_8.accepts((2, 8)));
        assert!(!NixVersion::V2_8.accepts((2, 9)));
        assert!(NixVersion::V2_26.accepts((2, 26)));
        assert!(NixVersion::V2_34.accepts((2, 34)));
        assert!(NixVersion::V2_34.accepts((2, 40)));
        assert!(!NixVersion::V2_34.accepts((2, 33)));
    }
}
