//! Daemon addresses: where the recorder connects, and the store URI clients
//! are given.
//!
//! Nix names a daemon by a store URI such as `unix:///nix/var/nix/daemon-socket/socket?root=/r`.
//! The recorder only needs the socket path to connect. The query (for example
//! `root=`, which tells a client where the store's files are on disk) is kept
//! verbatim so that it can be handed on to clients of the recorder's own
//! socket.

use std::fmt;
use std::path::{Path, PathBuf};

/// The socket a stock Nix installation's daemon listens on.
pub const DEFAULT_DAEMON_SOCKET: &str = "/nix/var/nix/daemon-socket/socket";

/// Why a daemon address could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AddrError {
    /// The address was empty, or named no socket path.
    #[error("daemon address {addr:?} names no socket path")]
    NoPath {
        /// The address as given.
        addr: String,
    },
    /// The address uses a scheme other than `unix:`.
    #[error("daemon address {addr:?} is not a Unix socket (scheme {scheme:?}); only unix: addresses and plain paths are supported")]
    UnsupportedScheme {
        /// The address as given.
        addr: String,
        /// The scheme found before the first `:`.
        scheme: String,
    },
}

/// A daemon's Unix socket, as a path plus the store URI query that came with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonAddr {
    path: PathBuf,
    query: Option<String>,
}

impl DaemonAddr {
    /// An address for a socket path with no query.
    pub fn from_path(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            query: None,
        }
    }

    /// Parses `unix:///path`, `unix:/path`, `unix://relative/path` or a
    /// plain path, each optionally followed by `?query`.
    ///
    /// The query is kept but not interpreted.
    pub fn parse(addr: &str) -> Result<Self, AddrError> {
        let (location, query) = match addr.split_once('?') {
            Some((location, query)) => (location, Some(query.to_owned())),
            None => (addr, None),
        };
        let path = if let Some(rest) = location.strip_prefix("unix:") {
            // `unix:///abs` and `unix://rel` both drop the `//`; `unix:/abs`
            // has none to drop.
            rest.strip_prefix("//").unwrap_or(rest)
        } else if let Some((scheme, _)) = location.split_once("://") {
            return Err(AddrError::UnsupportedScheme {
                addr: addr.to_owned(),
                scheme: scheme.to_owned(),
            });
        } else {
            location
        };
        if path.is_empty() {
            return Err(AddrError::NoPath {
                addr: addr.to_owned(),
            });
        }
        Ok(Self {
            path: PathBuf::from(path),
            query: query.filter(|q| !q.is_empty()),
        })
    }

    /// The socket path to connect to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The query of the store URI, without the `?`, if there was one.
    pub fn query(&self) -> Option<&str> {
        self.query.as_deref()
    }

    /// Replaces the query.
    pub fn with_query(mut self, query: Option<String>) -> Self {
        self.query = query.filter(|q| !q.is_empty());
        self
    }

    /// The store URI a Nix client understands for this socket:
    /// `unix://<absolute path>[?query]`.
    pub fn store_uri(&self) -> String {
        let mut uri = format!("unix://{}", self.path.display());
        if let Some(query) = &self.query {
            uri.push('?');
            uri.push_str(query);
        }
        uri
    }
}

impl fmt::Display for DaemonAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.store_uri())
    }
}

/// The query part (after `?`) of a store URI such as the value of
/// `NIX_REMOTE`, if it has a non-empty one.
///
/// Works for any scheme (`unix://…?root=/r`, `daemon?root=/r`), because the
/// parameters a client needs to read store files from disk do not depend on
/// how it reaches the daemon.
pub fn store_uri_query(uri: &str) -> Option<&str> {
    uri.split_once('?')
        .map(|(_, query)| query)
        .filter(|q| !q.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_spelling_nix_accepts() {
        for (input, path, query) in [
            ("unix:///a/sock", "/a/sock", None),
            ("unix:/a/sock", "/a/sock", None),
            ("unix://rel/sock", "rel/sock", None),
            ("/a/sock", "/a/sock", None),
            ("unix:///a/sock?root=/r", "/a/sock", Some("root=/r")),
            ("unix:/a/sock?root=/r&x=1", "/a/sock", Some("root=/r&x=1")),
            ("/a/sock?root=/r", "/a/sock", Some("root=/r")),
            ("unix:///a/sock?", "/a/sock", None),
        ] {
            let addr = DaemonAddr::parse(input).unwrap();
            assert_eq!(addr.path(), Path::new(path), "{input}");
            assert_eq!(addr.query(), query, "{input}");
        }
    }

    #[test]
    fn rejects_addresses_without_a_socket() {
        assert!(matches!(
            DaemonAddr::parse("unix://"),
            Err(AddrError::NoPath { .. })
        ));
        assert!(matches!(
            DaemonAddr::parse(""),
            Err(AddrError::NoPath { .. })
        ));
        assert!(matches!(
            DaemonAddr::parse("ssh-ng://host"),
            Err(AddrError::UnsupportedScheme { scheme, .. }) if scheme == "ssh-ng"
        ));
    }

    #[test]
    fn store_uri_round_trips_the_query() {
        let addr = DaemonAddr::parse("unix:/s?root=/r").unwrap();
        assert_eq!(addr.store_uri(), "unix:///s?root=/r");
        assert_eq!(DaemonAddr::from_path("/x").store_uri(), "unix:///x");
        assert_eq!(store_uri_query("daemon?root=/r"), Some("root=/r"));
        assert_eq!(store_uri_query("daemon"), None);
        assert_eq!(store_uri_query("unix:///s?"), None);
    }
}
