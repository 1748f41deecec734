//! Path infos: the metadata of valid and substitutable paths (§3.1, §3.9).

use serde::{Deserialize, Serialize};

use crate::primitives::{ReadResult, Reader, Writer};
use crate::version::Negotiated;

use super::content_address::ContentAddress;
use super::store_path::StorePath;

/// Metadata of a valid store path, without the path itself (§3.1).
///
/// `ultimate`, `sigs` and `ca` travel only at ≥ 1.16; below that they
/// decode as `false`, empty and `None`, and are not written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UnkeyedValidPathInfo {
    /// The derivation that produced the path, if known.
    pub deriver: Option<StorePath>,
    /// The NAR hash as sent: base16 SHA-256 without a prefix, in practice.
    pub nar_hash: String,
    /// The paths this one refers to, possibly including itself.
    pub references: Vec<StorePath>,
    /// When the path was registered, in Unix seconds.
    pub registration_time: u64,
    /// Size of the NAR serialisation in bytes.
    pub nar_size: u64,
    /// Whether the path was built locally and so is trusted ("ultimately
    /// trusted").
    pub ultimate: bool,
    /// Signatures, `<key name>:<base64>`.
    pub sigs: Vec<String>,
    /// The content address, for content-addressed paths.
    pub ca: Option<ContentAddress>,
}

impl UnkeyedValidPathInfo {
    /// Reads the fields at the negotiated version.
    pub fn decode(r: &mut Reader<'_>, n: &Negotiated) -> ReadResult<Self> {
        Self::decode_fields(r, n.at_least(16))
    }

    /// Reads the fields in the 1.16 layout, whatever the version.
    pub fn decode_1_16(r: &mut Reader<'_>) -> ReadResult<Self> {
        Self::decode_fields(r, true)
    }

    fn decode_fields(r: &mut Reader<'_>, with_1_16: bool) -> ReadResult<Self> {
        let deriver = StorePath::decode_optional(r)?;
        let nar_hash = r.utf8("narHash")?;
        let references = StorePath::decode_list(r)?;
        let registration_time = r.u64()?;
        let nar_size = r.u64()?;
        let mut info = UnkeyedValidPathInfo {
            deriver,
            nar_hash,
            references,
            registration_time,
            nar_size,
            ultimate: false,
            sigs: Vec::new(),
            ca: None,
        };
        if with_1_16 {
            info.ultimate = r.bool()?;
            info.sigs = r.string_list("signature")?;
            info.ca = ContentAddress::decode_optional(r)?;
        }
        Ok(info)
    }

    /// Writes the fields at the negotiated version.
    pub fn encode(&self, w: &mut Writer, n: &Negotiated) {
        self.encode_fields(w, n.at_least(16));
    }

    /// Writes the fields in the 1.16 layout, whatever the version.
    pub fn encode_1_16(&self, w: &mut Writer) {
        self.encode_fields(w, true);
    }

    fn encode_fields(&self, w: &mut Writer, with_1_16: bool) {
        StorePath::encode_optional(self.deriver.as_ref(), w);
        w.string(&self.nar_hash);
        StorePath::encode_list(&self.references, w);
        w.u64(self.registration_time).u64(self.nar_size);
        if with_1_16 {
            w.bool(self.ultimate);
            w.string_list(&self.sigs);
            ContentAddress::encode_optional(self.ca.as_ref(), w);
        }
    }
}

/// A store path and its metadata (§3.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ValidPathInfo {
    /// The path.
    pub path: StorePath,
    /// Its metadata.
    #[serde(flatten)]
    pub info: UnkeyedValidPathInfo,
}

impl ValidPathInfo {
    /// Reads a path info at the negotiated version.
    pub fn decode(r: &mut Reader<'_>, n: &Negotiated) -> ReadResult<Self> {
        let path = StorePath::decode(r)?;
        let info = UnkeyedValidPathInfo::decode(r, n)?;
        Ok(ValidPathInfo { path, info })
    }

    /// Reads a path info in the 1.16 layout, as AddMultipleToStore and
    /// AddToStoreNar send it whatever the negotiated version.
    pub fn decode_1_16(r: &mut Reader<'_>) -> ReadResult<Self> {
        let path = StorePath::decode(r)?;
        let info = UnkeyedValidPathInfo::decode_1_16(r)?;
        Ok(ValidPathInfo { path, info })
    }

    /// Writes a path info at the negotiated version.
    pub fn encode(&self, w: &mut Writer, n: &Negotiated) {
        self.path.encode(w);
        self.info.encode(w, n);
    }

    /// Writes a path info in the 1.16 layout.
    pub fn encode_1_16(&self, w: &mut Writer) {
        self.path.encode(w);
        self.info.encode_1_16(w);
    }
}

/// What a substituter knows about a path (§3.9).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubstitutablePathInfo {
    /// The derivation that produced the path, if known.
    pub deriver: Option<StorePath>,
    /// The paths this one refers to.
    pub references: Vec<StorePath>,
    /// Size of the download (compressed NAR) in bytes.
    pub download_size: u64,
    /// Size of the NAR in bytes.
    pub nar_size: u64,
}

impl SubstitutablePathInfo {
    /// Reads the fields.
    pub fn decode(r: &mut Reader<'_>) -> ReadResult<Self> {
        Ok(SubstitutablePathInfo {
            deriver: StorePath::decode_optional(r)?,
            references: StorePath::decode_list(r)?,
            download_size: r.u64()?,
            nar_size: r.u64()?,
        })
    }

    /// Writes the fields.
    pub fn encode(&self, w: &mut Writer) {
        StorePath::encode_optional(self.deriver.as_ref(), w);
        StorePath::encode_list(&self.references, w);
        w.u64(self.download_size).u64(self.nar_size);
    }
}
