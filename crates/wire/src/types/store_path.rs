//! Store paths as sent on the wire, and their parts (§2.6).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::primitives::{ReadResult, Reader, Writer};

/// A store path as sent on the wire: the full printed path, such as
/// `/nix/store/<hash>-<name>` (§2.6). The string is kept exactly as
/// received; the decoder does not check that it is well formed, so that a
/// passive decoder can still show what a peer sent.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct StorePath(pub String);

impl StorePath {
    /// A store path from its printed form.
    pub fn new(path: impl Into<String>) -> Self {
        StorePath(path.into())
    }

    /// The printed path.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The last component of the path: `<hash>-<name>`.
    pub fn base_name(&self) -> &str {
        match self.0.rfind('/') {
            Some(slash) => &self.0[slash + 1..],
            None => &self.0,
        }
    }

    /// The directory part, such as `/nix/store`, or `""` when the string
    /// has no `/`.
    pub fn store_dir(&self) -> &str {
        match self.0.rfind('/') {
            Some(slash) => &self.0[..slash],
            None => "",
        }
    }

    /// The hash part of the base name: everything before the first `-`.
    pub fn hash_part(&self) -> &str {
        let base = self.base_name();
        match base.find('-') {
            Some(dash) => &base[..dash],
            None => base,
        }
    }

    /// The name part of the base name: everything after the first `-`, or
    /// `""` when there is none.
    pub fn name(&self) -> &str {
        let base = self.base_name();
        match base.find('-') {
            Some(dash) => &base[dash + 1..],
            None => "",
        }
    }

    /// Whether the path names a derivation file.
    pub fn is_derivation(&self) -> bool {
        self.0.ends_with(".drv")
    }

    /// Reads a store path.
    pub fn decode(r: &mut Reader<'_>) -> ReadResult<Self> {
        r.utf8("store path").map(StorePath)
    }

    /// Writes a store path.
    pub fn encode(&self, w: &mut Writer) {
        w.string(self.0.as_bytes());
    }

    /// Reads an optional store path, where the empty string means none
    /// (§2.5).
    pub fn decode_optional(r: &mut Reader<'_>) -> ReadResult<Option<Self>> {
        let path = r.utf8("store path")?;
        Ok(if path.is_empty() {
            None
        } else {
            Some(StorePath(path))
        })
    }

    /// Writes an optional store path, `""` for none.
    pub fn encode_optional(path: Option<&StorePath>, w: &mut Writer) {
        match path {
            Some(path) => path.encode(w),
            None => {
                w.string(b"");
            }
        }
    }

    /// Reads a list or set of store paths, in the order received.
    pub fn decode_list(r: &mut Reader<'_>) -> ReadResult<Vec<Self>> {
        r.list(StorePath::decode)
    }

    /// Writes a list or set of store paths in the order given.
    pub fn encode_list(paths: &[StorePath], w: &mut Writer) {
        w.list(paths, |w, p| p.encode(w));
    }
}

impl fmt::Display for StorePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for StorePath {
    fn from(s: &str) -> Self {
        StorePath(s.to_owned())
    }
}

impl From<String> for StorePath {
    fn from(s: String) -> Self {
        StorePath(s)
    }
}
