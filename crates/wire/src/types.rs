//! Composite values of the worker protocol: store paths, content addresses,
//! path infos, derived paths, build results, realisations, derivations and
//! the settings and options some operations carry (protocol reference §3).
//!
//! Every type decodes from a [`Reader`] and encodes to a [`Writer`], and
//! decoding then encoding reproduces the input bytes exactly. That is why
//! lists and sets keep the order they were received in, why content
//! addresses and realisation JSON are kept as the strings that were sent
//! (with a parsed view on the side), and why enum-like numbers that a newer
//! Nix could extend keep unknown values instead of failing.
//!
//! Types whose layout depends on the negotiated version take a
//! [`Negotiated`](crate::version::Negotiated); the others do not.

use crate::bytes::ByteString;
use crate::primitives::{InvalidKind, ReadResult, Reader, Writer};

mod build_result;
mod content_address;
mod derivation;
mod derived_path;
mod enums;
mod op_args;
mod path_info;
mod realisation;
mod store_path;

pub use build_result::*;
pub use content_address::*;
pub use derivation::*;
pub use derived_path::*;
pub use enums::*;
pub use op_args::*;
pub use path_info::*;
pub use realisation::*;
pub use store_path::*;

impl ByteString {
    /// Reads a padded string of any bytes.
    pub fn decode(r: &mut Reader<'_>) -> ReadResult<Self> {
        r.string().map(ByteString::from)
    }

    /// Writes the bytes as a padded string.
    pub fn encode(&self, w: &mut Writer) {
        w.string(&self.0);
    }
}

/// Reads a `u64` that holds a small enumeration, reporting `field` when it
/// is out of range.
fn out_of_range(
    r: &Reader<'_>,
    start: usize,
    field: &'static str,
    value: u64,
) -> crate::primitives::ReadError {
    r.invalid_at(start, InvalidKind::OutOfRange { field, value })
}

// ---------------------------------------------------------------------------
// Store paths.

// ---------------------------------------------------------------------------
// Content addresses.

// ---------------------------------------------------------------------------
// Path infos.

// ---------------------------------------------------------------------------
// Derived paths.

// ---------------------------------------------------------------------------
// Small enumerations.

// ---------------------------------------------------------------------------
// Build results.

// ---------------------------------------------------------------------------
// Realisations.

// ---------------------------------------------------------------------------
// Derivations.

// ---------------------------------------------------------------------------
// Operation arguments.

#[cfg(test)]
mod tests;
