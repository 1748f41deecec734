//! Value encodings of the serve protocol, the protocol of `nix-store
//! --serve` used by legacy `ssh://` stores (protocol reference §15).
//!
//! The serve protocol shares the primitives and most composite encodings
//! of the worker protocol, but has its own version numbers (`2.x`) and its
//! own layouts for path infos, build results and build options. The values
//! are here; the commands are in [`ops`], and
//! [`crate::session::SessionDecoder`] decodes whole serve connections. From 2.8
//! on, realisations use the worker protocol's binary forms
//! ([`crate::types::UnkeyedRealisation`], [`crate::types::Realisation::decode_binary`]).

pub mod ops;

use serde::{Deserialize, Serialize};

use crate::primitives::{ReadResult, Reader, Writer};
use crate::types::{BuildResult, BuildStatus, BuiltOutputs, ContentAddress, DrvOutput, StorePath};
use crate::version::ProtocolVersion;
use crate::ByteString;

/// Magic the client sends first.
pub const SERVE_MAGIC_1: u64 = 0x390c_9deb;
/// Magic the server answers with.
pub const SERVE_MAGIC_2: u64 = 0x5452_eecb;

/// Whether a serve-protocol version is at least `2.minor`.
pub fn at_least(version: ProtocolVersion, minor: u8) -> bool {
    version.major > 2 || (version.major == 2 && version.minor >= minor)
}

/// Build settings sent with serve-protocol build commands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BuildOptions {
    /// Seconds of silence before a build is killed.
    pub max_silent_time: u64,
    /// Seconds before a build is killed.
    pub build_timeout: u64,
    /// Largest log in bytes (≥ 2.2; 0 below).
    pub max_log_size: u64,
    /// Extra rounds to check determinism (≥ 2.3; 0 below).
    pub nr_repeats: u64,
    /// Whether to fail on non-determinism (≥ 2.3; false below).
    pub enforce_determinism: bool,
    /// Whether to keep failed build directories (≥ 2.7; false below).
    pub keep_failed: bool,
}

impl BuildOptions {
    /// Reads the options at a serve-protocol version.
    pub fn decode(r: &mut Reader<'_>, version: ProtocolVersion) -> ReadResult<Self> {
        let mut options = BuildOptions {
            max_silent_time: r.u64()?,
            build_timeout: r.u64()?,
            max_log_size: 0,
            nr_repeats: 0,
            enforce_determinism: false,
            keep_failed: false,
        };
        if at_least(version, 2) {
            options.max_log_size = r.u64()?;
        }
        if at_least(version, 3) {
            options.nr_repeats = r.u64()?;
            options.enforce_determinism = r.bool()?;
        }
        if at_least(version, 7) {
            options.keep_failed = r.bool()?;
        }
        Ok(options)
    }

    /// Writes the options at a serve-protocol version.
    pub fn encode(&self, w: &mut Writer, version: ProtocolVersion) {
        w.u64(self.max_silent_time).u64(self.build_timeout);
        if at_least(version, 2) {
            w.u64(self.max_log_size);
        }
        if at_least(version, 3) {
            w.u64(self.nr_repeats).bool(self.enforce_determinism);
        }
        if at_least(version, 7) {
            w.bool(self.keep_failed);
        }
    }
}

/// A path's metadata in the serve layout: `deriver, {refs},
/// u64 downloadSize, u64 narSize`, plus (≥ 2.4) `str narHash, str ca,
/// {str} sigs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServePathInfo {
    /// The derivation that produced the path, if known.
    pub deriver: Option<StorePath>,
    /// References.
    pub references: Vec<StorePath>,
    /// Download size; Nix's writer sends the NAR size here.
    pub download_size: u64,
    /// NAR size.
    pub nar_size: u64,
    /// NAR hash, `sha256:<nix32>` (≥ 2.4; empty below).
    pub nar_hash: String,
    /// Content address (≥ 2.4).
    pub ca: Option<ContentAddress>,
    /// Signatures (≥ 2.4).
    pub sigs: Vec<String>,
}

impl ServePathInfo {
    /// Reads a path info at a serve-protocol version.
    pub fn decode(r: &mut Reader<'_>, version: ProtocolVersion) -> ReadResult<Self> {
        let mut info = ServePathInfo {
            deriver: StorePath::decode_optional(r)?,
            references: StorePath::decode_list(r)?,
            download_size: r.u64()?,
            nar_size: r.u64()?,
            nar_hash: String::new(),
            ca: None,
            sigs: Vec::new(),
        };
        if at_least(version, 4) {
            info.nar_hash = r.utf8("narHash")?;
            info.ca = ContentAddress::decode_optional(r)?;
            info.sigs = r.string_list("signature")?;
        }
        Ok(info)
    }

    /// Writes a path info at a serve-protocol version.
    pub fn encode(&self, w: &mut Writer, version: ProtocolVersion) {
        StorePath::encode_optional(self.deriver.as_ref(), w);
        StorePath::encode_list(&self.references, w);
        w.u64(self.download_size).u64(self.nar_size);
        if at_least(version, 4) {
            w.string(&self.nar_hash);
            ContentAddress::encode_optional(self.ca.as_ref(), w);
            w.string_list(&self.sigs);
        }
    }
}

/// Reads a BuildResult in the serve layout: status and message, the times
/// at ≥ 2.3, JSON `builtOutputs` at 2.6–2.7 and binary ones from 2.8. There
/// are no CPU times.
pub fn decode_build_result(
    r: &mut Reader<'_>,
    version: ProtocolVersion,
) -> ReadResult<BuildResult> {
    let mut result = BuildResult::new(BuildStatus::from_wire(r.u64()?), ByteString::decode(r)?);
    if at_least(version, 3) {
        result.times_built = r.u64()?;
        result.is_non_deterministic = r.bool()?;
        result.start_time = r.u64()?;
        result.stop_time = r.u64()?;
    }
    if at_least(version, 8) {
        result.built_outputs = BuiltOutputs::decode_binary(r)?;
    } else if at_least(version, 6) {
        result.built_outputs = BuiltOutputs::decode_json(r)?;
    }
    Ok(result)
}

/// Writes a BuildResult in the serve layout (see [`decode_build_result`]);
/// `builtOutputs` is written in the form held.
pub fn encode_build_result(result: &BuildResult, w: &mut Writer, version: ProtocolVersion) {
    w.u64(result.status.to_wire());
    result.error_msg.encode(w);
    if at_least(version, 3) {
        w.u64(result.times_built)
            .bool(result.is_non_deterministic)
            .u64(result.start_time)
            .u64(result.stop_time);
    }
    if at_least(version, 6) {
        result.built_outputs.encode_held(w);
    }
}

/// Reads a DrvOutput: the path form at ≥ 2.8, the id string below.
pub fn decode_drv_output(r: &mut Reader<'_>, version: ProtocolVersion) -> ReadResult<DrvOutput> {
    if at_least(version, 8) {
        DrvOutput::decode_path(r)
    } else {
        DrvOutput::decode_id(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_options_grow_with_the_version() {
        let options = BuildOptions {
            max_silent_time: 5,
            build_timeout: 6,
            max_log_size: 7,
            nr_repeats: 8,
            enforce_determinism: true,
            keep_failed: true,
        };
        for (minor, words) in [(1u8, 2usize), (2, 3), (3, 5), (7, 6)] {
            let version = ProtocolVersion::new(2, minor);
            let mut w = Writer::new();
            options.encode(&mut w, version);
            assert_eq!(w.as_bytes().len(), words * 8, "serve 2.{minor}");
            let mut r = Reader::new(w.as_bytes());
            let back = BuildOptions::decode(&mut r, version).unwrap();
            assert!(r.is_empty());
            let mut again = Writer::new();
            back.encode(&mut again, version);
            assert_eq!(again.as_bytes(), w.as_bytes());
        }
    }
}
