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
//! [`Negotiated`]; the others do not.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::bytes::ByteString;
use crate::primitives::{InvalidKind, ReadResult, Reader, Writer};
use crate::version::{feature, Negotiated};

/// Deepest nesting of a [`SingleDerivedPath`] the decoder accepts. Real
/// dynamic derivations nest a handful of levels; the limit keeps corrupt
/// input from exhausting the stack.
pub const MAX_DERIVED_PATH_DEPTH: usize = 64;

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

// ---------------------------------------------------------------------------
// Content addresses.

/// How a content-addressed object was hashed (§2.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ContentAddressMethod {
    /// `text:`: a flat file with references to other paths only.
    Text,
    /// `fixed:`: the flat file contents.
    Flat,
    /// `fixed:r:`: the NAR serialisation.
    Nar,
    /// `fixed:git:`: a git object (experimental).
    Git,
}

impl ContentAddressMethod {
    /// The method's prefix in a content-address string, without the algorithm.
    pub fn prefix(self) -> &'static str {
        match self {
            ContentAddressMethod::Text => "text:",
            ContentAddressMethod::Flat => "fixed:",
            ContentAddressMethod::Nar => "fixed:r:",
            ContentAddressMethod::Git => "fixed:git:",
        }
    }

    /// Splits a method prefix off `s`, returning the method and the rest.
    fn split(s: &str) -> Option<(ContentAddressMethod, &str)> {
        if let Some(rest) = s.strip_prefix("text:") {
            Some((ContentAddressMethod::Text, rest))
        } else if let Some(rest) = s.strip_prefix("fixed:r:") {
            Some((ContentAddressMethod::Nar, rest))
        } else if let Some(rest) = s.strip_prefix("fixed:git:") {
            Some((ContentAddressMethod::Git, rest))
        } else {
            s.strip_prefix("fixed:")
                .map(|rest| (ContentAddressMethod::Flat, rest))
        }
    }
}

/// A content address (the `ca` field of a path info), kept as the string
/// that was sent, such as `fixed:r:sha256:<nix32>`. [`ContentAddress::parse`]
/// gives the parsed view.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ContentAddress(pub String);

/// The parts of a content address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ParsedContentAddress {
    /// The ingestion method.
    pub method: ContentAddressMethod,
    /// The hash algorithm name, such as `sha256`.
    pub algo: String,
    /// The hash as written, normally nix32.
    pub hash: String,
}

impl ContentAddress {
    /// Reads a content address that must be present.
    pub fn decode(r: &mut Reader<'_>) -> ReadResult<Self> {
        r.utf8("content address").map(ContentAddress)
    }

    /// Writes the content address.
    pub fn encode(&self, w: &mut Writer) {
        w.string(&self.0);
    }

    /// Reads an optional content address, where `""` means none (§2.5).
    pub fn decode_optional(r: &mut Reader<'_>) -> ReadResult<Option<Self>> {
        let s = r.utf8("content address")?;
        Ok(if s.is_empty() {
            None
        } else {
            Some(ContentAddress(s))
        })
    }

    /// Writes an optional content address, `""` for none.
    pub fn encode_optional(ca: Option<&ContentAddress>, w: &mut Writer) {
        w.string(ca.map_or("", |ca| ca.0.as_str()));
    }

    /// The parsed view, or `None` when the string is not a content address.
    pub fn parse(&self) -> Option<ParsedContentAddress> {
        let (method, rest) = ContentAddressMethod::split(&self.0)?;
        let (algo, hash) = rest.split_once(':')?;
        Some(ParsedContentAddress {
            method,
            algo: algo.to_owned(),
            hash: hash.to_owned(),
        })
    }
}

impl ParsedContentAddress {
    /// The digest bytes, decoded from nix32 or base16 according to the
    /// string's length, or `None` for an unknown algorithm or bad digits.
    pub fn digest(&self) -> Option<Vec<u8>> {
        decode_hash_digits(&self.algo, &self.hash)
    }
}

/// A content-address method together with its hash algorithm, as
/// AddToStore ≥ 1.25 sends it: `text:sha256`, `fixed:r:sha256`,
/// `fixed:sha1`, `fixed:git:sha1`. Kept as the string that was sent.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ContentAddressMethodWithAlgo(pub String);

impl ContentAddressMethodWithAlgo {
    /// Reads the string.
    pub fn decode(r: &mut Reader<'_>) -> ReadResult<Self> {
        r.utf8("content-address method")
            .map(ContentAddressMethodWithAlgo)
    }

    /// Writes the string.
    pub fn encode(&self, w: &mut Writer) {
        w.string(&self.0);
    }

    /// The method and the algorithm name, or `None` when the string is not
    /// of that form.
    pub fn parse(&self) -> Option<(ContentAddressMethod, String)> {
        let (method, algo) = ContentAddressMethod::split(&self.0)?;
        if algo.is_empty() || algo.contains(':') {
            return None;
        }
        Some((method, algo.to_owned()))
    }
}

/// Digest length in bytes of a hash algorithm Nix knows.
pub fn hash_algo_size(algo: &str) -> Option<usize> {
    match algo {
        "md5" => Some(16),
        "sha1" => Some(20),
        "sha256" | "blake3" => Some(32),
        "sha512" => Some(64),
        _ => None,
    }
}

/// The alphabet of Nix's base-32 encoding (no `e`, `o`, `u`, `t`).
const NIX32_ALPHABET: &[u8; 32] = b"0123456789abcdfghijklmnpqrsvwxyz";

/// Decodes Nix's base-32 encoding of a `size`-byte digest.
pub fn nix32_decode(text: &str, size: usize) -> Option<Vec<u8>> {
    if text.len() != (size * 8).div_ceil(5) {
        return None;
    }
    let mut out = vec![0u8; size];
    for (n, c) in text.bytes().rev().enumerate() {
        let digit = NIX32_ALPHABET.iter().position(|&a| a == c)? as u16;
        let bit = n * 5;
        let (i, j) = (bit / 8, bit % 8);
        out[i] |= (digit << j) as u8;
        let carry = digit >> (8 - j);
        if i + 1 < size {
            out[i + 1] |= carry as u8;
        } else if carry != 0 {
            return None;
        }
    }
    Some(out)
}

/// Decodes lowercase or uppercase base16.
pub fn base16_decode(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Decodes the digits of a hash in nix32 or base16, chosen by length.
fn decode_hash_digits(algo: &str, digits: &str) -> Option<Vec<u8>> {
    let size = hash_algo_size(algo)?;
    if digits.len() == size * 2 {
        base16_decode(digits)
    } else {
        nix32_decode(digits, size)
    }
}

// ---------------------------------------------------------------------------
// Path infos.

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

// ---------------------------------------------------------------------------
// Derived paths.

/// Which outputs of a derivation are wanted.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum OutputsSpec {
    /// Every output (`*`).
    All,
    /// The named outputs, in the order they were sent.
    Names(Vec<String>),
}

/// Something to build or fetch: an existing path, or outputs of a
/// derivation (§3.2). On the wire it is one string whose syntax depends on
/// the version.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum DerivedPath {
    /// A path that must exist; at ≥ 1.30 this may be a `.drv` file itself.
    #[serde(rename_all = "camelCase")]
    Opaque {
        /// The path.
        path: StorePath,
    },
    /// Outputs of a derivation.
    #[serde(rename_all = "camelCase")]
    Built {
        /// The derivation. With dynamic derivations (≥ 1.30, experimental)
        /// this text may itself be a built path such as `x.drv!out`.
        drv_path: StorePath,
        /// The outputs wanted.
        outputs: OutputsSpec,
    },
}

impl DerivedPath {
    /// Parses the wire string at the negotiated version.
    ///
    /// At ≥ 1.30 a string without `!` is an opaque path, and the outputs
    /// follow the last `!` (`*` for all). Below 1.30 (the legacy
    /// "path with outputs" syntax) a bare `.drv` path means all of its
    /// outputs, and the outputs follow the first `!`; `*` there is an output
    /// name, so that re-encoding stays exact.
    pub fn parse(s: &str, n: &Negotiated) -> DerivedPath {
        let names = |list: &str| OutputsSpec::Names(list.split(',').map(str::to_owned).collect());
        if n.at_least(30) {
            match s.rsplit_once('!') {
                None => DerivedPath::Opaque {
                    path: StorePath::from(s),
                },
                Some((drv, "*")) => DerivedPath::Built {
                    drv_path: StorePath::from(drv),
                    outputs: OutputsSpec::All,
                },
                Some((drv, list)) => DerivedPath::Built {
                    drv_path: StorePath::from(drv),
                    outputs: names(list),
                },
            }
        } else {
            match s.split_once('!') {
                None if s.ends_with(".drv") => DerivedPath::Built {
                    drv_path: StorePath::from(s),
                    outputs: OutputsSpec::All,
                },
                None => DerivedPath::Opaque {
                    path: StorePath::from(s),
                },
                Some((drv, list)) => DerivedPath::Built {
                    drv_path: StorePath::from(drv),
                    outputs: names(list),
                },
            }
        }
    }

    /// The wire string at the negotiated version.
    ///
    /// Below 1.30 an opaque `.drv` path cannot be expressed (Nix refuses to
    /// send one); it is written as the bare path, which a reader takes as
    /// "all outputs".
    pub fn to_wire_string(&self, n: &Negotiated) -> String {
        match self {
            DerivedPath::Opaque { path } => path.0.clone(),
            DerivedPath::Built { drv_path, outputs } => match outputs {
                OutputsSpec::All if n.at_least(30) => format!("{drv_path}!*"),
                OutputsSpec::All => drv_path.0.clone(),
                OutputsSpec::Names(names) => format!("{drv_path}!{}", names.join(",")),
            },
        }
    }

    /// Reads a derived path.
    pub fn decode(r: &mut Reader<'_>, n: &Negotiated) -> ReadResult<Self> {
        let s = r.utf8("derived path")?;
        Ok(DerivedPath::parse(&s, n))
    }

    /// Writes a derived path.
    pub fn encode(&self, w: &mut Writer, n: &Negotiated) {
        w.string(self.to_wire_string(n));
    }

    /// Reads a list of derived paths.
    pub fn decode_list(r: &mut Reader<'_>, n: &Negotiated) -> ReadResult<Vec<Self>> {
        r.list(|r| DerivedPath::decode(r, n))
    }

    /// Writes a list of derived paths.
    pub fn encode_list(paths: &[DerivedPath], w: &mut Writer, n: &Negotiated) {
        w.list(paths, |w, p| p.encode(w, n));
    }
}

impl fmt::Display for DerivedPath {
    /// The ≥ 1.30 syntax: `path`, `drv!*` or `drv!a,b`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DerivedPath::Opaque { path } => write!(f, "{path}"),
            DerivedPath::Built {
                drv_path,
                outputs: OutputsSpec::All,
            } => write!(f, "{drv_path}!*"),
            DerivedPath::Built {
                drv_path,
                outputs: OutputsSpec::Names(names),
            } => write!(f, "{drv_path}!{}", names.join(",")),
        }
    }
}

/// A tagged, possibly nested derived path naming a single store path
/// (§3.2; used by SubmitOutput).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum SingleDerivedPath {
    /// Tag 0: an existing path.
    #[serde(rename_all = "camelCase")]
    Opaque {
        /// The path.
        path: StorePath,
    },
    /// Tag 1: one output of a (possibly built) derivation.
    #[serde(rename_all = "camelCase")]
    Built {
        /// The derivation.
        drv_path: Box<SingleDerivedPath>,
        /// The output name.
        output: String,
    },
}

impl SingleDerivedPath {
    /// Reads a single derived path.
    pub fn decode(r: &mut Reader<'_>) -> ReadResult<Self> {
        Self::decode_depth(r, 0)
    }

    fn decode_depth(r: &mut Reader<'_>, depth: usize) -> ReadResult<Self> {
        let start = r.position();
        if depth > MAX_DERIVED_PATH_DEPTH {
            return Err(r.invalid(InvalidKind::Other(format!(
                "derived path nested deeper than {MAX_DERIVED_PATH_DEPTH}"
            ))));
        }
        match r.u64()? {
            0 => Ok(SingleDerivedPath::Opaque {
                path: StorePath::decode(r)?,
            }),
            1 => {
                let drv_path = Box::new(Self::decode_depth(r, depth + 1)?);
                let output = r.utf8("output name")?;
                Ok(SingleDerivedPath::Built { drv_path, output })
            }
            tag => Err(out_of_range(r, start, "single derived path tag", tag)),
        }
    }

    /// Writes a single derived path.
    pub fn encode(&self, w: &mut Writer) {
        match self {
            SingleDerivedPath::Opaque { path } => {
                w.u64(0);
                path.encode(w);
            }
            SingleDerivedPath::Built { drv_path, output } => {
                w.u64(1);
                drv_path.encode(w);
                w.string(output);
            }
        }
    }
}

impl fmt::Display for SingleDerivedPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SingleDerivedPath::Opaque { path } => write!(f, "{path}"),
            SingleDerivedPath::Built { drv_path, output } => write!(f, "{drv_path}^{output}"),
        }
    }
}

// ---------------------------------------------------------------------------
// Small enumerations.

/// How to build (§3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum BuildMode {
    /// 0: build what is missing.
    #[default]
    Normal,
    /// 1: rebuild and replace corrupted paths.
    Repair,
    /// 2: rebuild and compare with the existing outputs.
    Check,
}

impl BuildMode {
    /// Reads a build mode. Nix rejects values other than 0, 1 and 2.
    pub fn decode(r: &mut Reader<'_>) -> ReadResult<Self> {
        let start = r.position();
        match r.u64()? {
            0 => Ok(BuildMode::Normal),
            1 => Ok(BuildMode::Repair),
            2 => Ok(BuildMode::Check),
            other => Err(out_of_range(r, start, "build mode", other)),
        }
    }

    /// Writes a build mode.
    pub fn encode(self, w: &mut Writer) {
        w.u64(self as u64);
    }
}

/// What CollectGarbage should do (§3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum GcAction {
    /// 0: list live paths.
    ReturnLive,
    /// 1: list dead paths.
    ReturnDead,
    /// 2: delete dead paths.
    DeleteDead,
    /// 3: delete the given paths.
    DeleteSpecific,
}

impl GcAction {
    /// Reads a GC action. Nix rejects values above 3.
    pub fn decode(r: &mut Reader<'_>) -> ReadResult<Self> {
        let start = r.position();
        match r.u64()? {
            0 => Ok(GcAction::ReturnLive),
            1 => Ok(GcAction::ReturnDead),
            2 => Ok(GcAction::DeleteDead),
            3 => Ok(GcAction::DeleteSpecific),
            other => Err(out_of_range(r, start, "GC action", other)),
        }
    }

    /// Writes a GC action.
    pub fn encode(self, w: &mut Writer) {
        w.u64(self as u64);
    }
}

/// Whether the daemon trusts the client (§2.5); "unknown" is `None` in an
/// `Option<TrustedFlag>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum TrustedFlag {
    /// 1: trusted.
    Trusted,
    /// 2: not trusted.
    NotTrusted,
}

impl TrustedFlag {
    /// Reads an optional trusted flag: 0 unknown, 1 trusted, 2 not trusted.
    pub fn decode_optional(r: &mut Reader<'_>) -> ReadResult<Option<Self>> {
        let start = r.position();
        match r.u64()? {
            0 => Ok(None),
            1 => Ok(Some(TrustedFlag::Trusted)),
            2 => Ok(Some(TrustedFlag::NotTrusted)),
            other => Err(out_of_range(r, start, "trusted flag", other)),
        }
    }

    /// Writes an optional trusted flag.
    pub fn encode_optional(flag: Option<TrustedFlag>, w: &mut Writer) {
        w.u64(match flag {
            None => 0,
            Some(TrustedFlag::Trusted) => 1,
            Some(TrustedFlag::NotTrusted) => 2,
        });
    }
}

/// Nix's name for a verbosity level (§3.3), or `None` above 7.
pub fn verbosity_name(level: u64) -> Option<&'static str> {
    Some(match level {
        0 => "error",
        1 => "warn",
        2 => "notice",
        3 => "info",
        4 => "talkative",
        5 => "chatty",
        6 => "debug",
        7 => "vomit",
        _ => return None,
    })
}

// ---------------------------------------------------------------------------
// Build results.

/// The status of a build (§3.4). Values a newer Nix might add are kept as
/// [`BuildStatus::Other`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum BuildStatus {
    /// 0.
    Built,
    /// 1.
    Substituted,
    /// 2.
    AlreadyValid,
    /// 3.
    PermanentFailure,
    /// 4.
    InputRejected,
    /// 5.
    OutputRejected,
    /// 6.
    TransientFailure,
    /// 7 (no longer produced).
    CachedFailure,
    /// 8.
    TimedOut,
    /// 9.
    MiscFailure,
    /// 10.
    DependencyFailed,
    /// 11.
    LogLimitExceeded,
    /// 12.
    NotDeterministic,
    /// 13 (Nix 2.6+).
    ResolvesToAlreadyValid,
    /// 14 (Nix 2.8+).
    NoSubstituters,
    /// Any other number.
    Other(u64),
}

impl BuildStatus {
    const KNOWN: [BuildStatus; 15] = [
        BuildStatus::Built,
        BuildStatus::Substituted,
        BuildStatus::AlreadyValid,
        BuildStatus::PermanentFailure,
        BuildStatus::InputRejected,
        BuildStatus::OutputRejected,
        BuildStatus::TransientFailure,
        BuildStatus::CachedFailure,
        BuildStatus::TimedOut,
        BuildStatus::MiscFailure,
        BuildStatus::DependencyFailed,
        BuildStatus::LogLimitExceeded,
        BuildStatus::NotDeterministic,
        BuildStatus::ResolvesToAlreadyValid,
        BuildStatus::NoSubstituters,
    ];

    /// The status with this number.
    pub fn from_wire(value: u64) -> Self {
        usize::try_from(value)
            .ok()
            .and_then(|i| Self::KNOWN.get(i).copied())
            .unwrap_or(BuildStatus::Other(value))
    }

    /// The status's number.
    pub fn to_wire(self) -> u64 {
        match self {
            BuildStatus::Built => 0,
            BuildStatus::Substituted => 1,
            BuildStatus::AlreadyValid => 2,
            BuildStatus::PermanentFailure => 3,
            BuildStatus::InputRejected => 4,
            BuildStatus::OutputRejected => 5,
            BuildStatus::TransientFailure => 6,
            BuildStatus::CachedFailure => 7,
            BuildStatus::TimedOut => 8,
            BuildStatus::MiscFailure => 9,
            BuildStatus::DependencyFailed => 10,
            BuildStatus::LogLimitExceeded => 11,
            BuildStatus::NotDeterministic => 12,
            BuildStatus::ResolvesToAlreadyValid => 13,
            BuildStatus::NoSubstituters => 14,
            BuildStatus::Other(value) => value,
        }
    }

    /// Nix's name for the status.
    pub fn name(self) -> &'static str {
        match self {
            BuildStatus::Built => "Built",
            BuildStatus::Substituted => "Substituted",
            BuildStatus::AlreadyValid => "AlreadyValid",
            BuildStatus::PermanentFailure => "PermanentFailure",
            BuildStatus::InputRejected => "InputRejected",
            BuildStatus::OutputRejected => "OutputRejected",
            BuildStatus::TransientFailure => "TransientFailure",
            BuildStatus::CachedFailure => "CachedFailure",
            BuildStatus::TimedOut => "TimedOut",
            BuildStatus::MiscFailure => "MiscFailure",
            BuildStatus::DependencyFailed => "DependencyFailed",
            BuildStatus::LogLimitExceeded => "LogLimitExceeded",
            BuildStatus::NotDeterministic => "NotDeterministic",
            BuildStatus::ResolvesToAlreadyValid => "ResolvesToAlreadyValid",
            BuildStatus::NoSubstituters => "NoSubstituters",
            BuildStatus::Other(_) => "Other",
        }
    }

    /// Whether the status means success (Built, Substituted, AlreadyValid,
    /// ResolvesToAlreadyValid). Unknown numbers count as failures.
    pub fn is_success(self) -> bool {
        matches!(
            self,
            BuildStatus::Built
                | BuildStatus::Substituted
                | BuildStatus::AlreadyValid
                | BuildStatus::ResolvesToAlreadyValid
        )
    }
}

impl fmt::Display for BuildStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildStatus::Other(value) => write!(f, "status {value}"),
            known => f.write_str(known.name()),
        }
    }
}

/// One entry of a JSON-era `builtOutputs` map: a DrvOutput id string and a
/// Realisation JSON text, both kept verbatim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JsonBuiltOutput {
    /// The key, `sha256:<hex>!<output name>`.
    pub id: String,
    /// The value, a Realisation as JSON text.
    pub realisation: RealisationJson,
}

impl JsonBuiltOutput {
    /// The output name: what follows the first `!` of the id, as Nix reads
    /// it.
    pub fn output_name(&self) -> Option<&str> {
        self.id.split_once('!').map(|(_, name)| name)
    }
}

/// One entry of a binary `builtOutputs` map (2.35+ with the
/// `realisation-with-path-not-hash` feature).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BinaryBuiltOutput {
    /// The output name.
    pub output_name: String,
    /// Where the output is and who signed it.
    pub realisation: UnkeyedRealisation,
}

/// The `builtOutputs` field of a BuildResult, in one of its two wire
/// forms (§3.4). Below 1.28 it is not sent and decodes as an empty JSON
/// form.
///
/// Encoding writes the form held; a value meant for a connection must hold
/// the form that connection uses (binary exactly when the
/// `realisation-with-path-not-hash` feature was negotiated).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum BuiltOutputs {
    /// `map<str, str>`: DrvOutput id to Realisation JSON (1.28 up to 2.34,
    /// and 2.35+ without the feature).
    Json(Vec<JsonBuiltOutput>),
    /// `map<str, UnkeyedRealisation>` (2.35+ with the feature).
    Binary(Vec<BinaryBuiltOutput>),
}

impl Default for BuiltOutputs {
    fn default() -> Self {
        BuiltOutputs::Json(Vec::new())
    }
}

impl BuiltOutputs {
    /// An empty map in the form the connection uses.
    pub fn empty_for(n: &Negotiated) -> Self {
        if n.has(feature::REALISATION_WITH_PATH_NOT_HASH) {
            BuiltOutputs::Binary(Vec::new())
        } else {
            BuiltOutputs::Json(Vec::new())
        }
    }

    /// Number of outputs.
    pub fn len(&self) -> usize {
        match self {
            BuiltOutputs::Json(entries) => entries.len(),
            BuiltOutputs::Binary(entries) => entries.len(),
        }
    }

    /// Whether there are no outputs.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Output names and output paths, the part every reader uses. For the
    /// JSON form the path is the `outPath` of the JSON (a base name); an
    /// entry whose JSON cannot be parsed has `None`.
    pub fn outputs(&self) -> Vec<(String, Option<String>)> {
        match self {
            BuiltOutputs::Json(entries) => entries
                .iter()
                .map(|e| {
                    let name = e.output_name().unwrap_or(&e.id).to_owned();
                    (name, e.realisation.parse().map(|p| p.out_path))
                })
                .collect(),
            BuiltOutputs::Binary(entries) => entries
                .iter()
                .map(|e| {
                    (
                        e.output_name.clone(),
                        Some(e.realisation.out_path.0.clone()),
                    )
                })
                .collect(),
        }
    }

    /// Reads the field at the negotiated version and features.
    pub fn decode(r: &mut Reader<'_>, n: &Negotiated) -> ReadResult<Self> {
        if n.has(feature::REALISATION_WITH_PATH_NOT_HASH) {
            let entries = r.list(|r| {
                Ok(BinaryBuiltOutput {
                    output_name: r.utf8("output name")?,
                    realisation: UnkeyedRealisation::decode(r)?,
                })
            })?;
            Ok(BuiltOutputs::Binary(entries))
        } else if n.at_least(28) {
            Self::decode_json(r)
        } else {
            Ok(BuiltOutputs::default())
        }
    }

    /// Reads the JSON form (`map<str, str>`).
    pub fn decode_json(r: &mut Reader<'_>) -> ReadResult<Self> {
        let entries = r.list(|r| {
            Ok(JsonBuiltOutput {
                id: r.utf8("drv output id")?,
                realisation: RealisationJson::decode(r)?,
            })
        })?;
        Ok(BuiltOutputs::Json(entries))
    }

    /// Reads the binary form (`map<str, UnkeyedRealisation>`).
    pub fn decode_binary(r: &mut Reader<'_>) -> ReadResult<Self> {
        let entries = r.list(|r| {
            Ok(BinaryBuiltOutput {
                output_name: r.utf8("output name")?,
                realisation: UnkeyedRealisation::decode(r)?,
            })
        })?;
        Ok(BuiltOutputs::Binary(entries))
    }

    /// Writes the field if the connection carries it (≥ 1.28 or the
    /// feature), in the form held.
    pub fn encode(&self, w: &mut Writer, n: &Negotiated) {
        if n.has(feature::REALISATION_WITH_PATH_NOT_HASH) || n.at_least(28) {
            self.encode_held(w);
        }
    }

    /// Writes the map in the form held.
    pub fn encode_held(&self, w: &mut Writer) {
        match self {
            BuiltOutputs::Json(entries) => {
                w.list(entries, |w, e| {
                    w.string(&e.id);
                    e.realisation.encode(w);
                });
            }
            BuiltOutputs::Binary(entries) => {
                w.list(entries, |w, e| {
                    w.string(&e.output_name);
                    e.realisation.encode(w);
                });
            }
        }
    }
}

/// The outcome of building one derived path (§3.4).
///
/// Fields a version does not carry decode as zero, `false`, `None` or
/// empty and are not written: the times and `isNonDeterministic` below
/// 1.29, the CPU times below 1.37, `builtOutputs` below 1.28.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BuildResult {
    /// The status.
    pub status: BuildStatus,
    /// The error message; empty on success.
    pub error_msg: ByteString,
    /// How many times the derivation was built.
    pub times_built: u64,
    /// Whether repeated builds gave different results.
    pub is_non_deterministic: bool,
    /// Start of the build, Unix seconds.
    pub start_time: u64,
    /// End of the build, Unix seconds.
    pub stop_time: u64,
    /// User CPU time in microseconds, if measured.
    pub cpu_user: Option<u64>,
    /// System CPU time in microseconds, if measured.
    pub cpu_system: Option<u64>,
    /// The outputs that were built.
    pub built_outputs: BuiltOutputs,
}

/// Reads a tagged optional u64 (§2.5): 0 for none, 1 and the value.
fn decode_tagged_u64(r: &mut Reader<'_>, field: &'static str) -> ReadResult<Option<u64>> {
    let start = r.position();
    match r.u64()? {
        0 => Ok(None),
        1 => Ok(Some(r.u64()?)),
        tag => Err(out_of_range(r, start, field, tag)),
    }
}

fn encode_tagged_u64(value: Option<u64>, w: &mut Writer) {
    match value {
        None => {
            w.u64(0);
        }
        Some(v) => {
            w.u64(1).u64(v);
        }
    }
}

impl BuildResult {
    /// A result with this status and message and every other field empty.
    pub fn new(status: BuildStatus, error_msg: impl Into<ByteString>) -> Self {
        BuildResult {
            status,
            error_msg: error_msg.into(),
            times_built: 0,
            is_non_deterministic: false,
            start_time: 0,
            stop_time: 0,
            cpu_user: None,
            cpu_system: None,
            built_outputs: BuiltOutputs::default(),
        }
    }

    /// Reads a build result at the negotiated version and features.
    pub fn decode(r: &mut Reader<'_>, n: &Negotiated) -> ReadResult<Self> {
        let mut result = BuildResult::new(BuildStatus::from_wire(r.u64()?), ByteString::decode(r)?);
        if n.at_least(29) {
            result.times_built = r.u64()?;
            result.is_non_deterministic = r.bool()?;
            result.start_time = r.u64()?;
            result.stop_time = r.u64()?;
        }
        if n.at_least(37) {
            result.cpu_user = decode_tagged_u64(r, "cpuUser tag")?;
            result.cpu_system = decode_tagged_u64(r, "cpuSystem tag")?;
        }
        result.built_outputs = BuiltOutputs::decode(r, n)?;
        Ok(result)
    }

    /// Writes a build result at the negotiated version and features.
    pub fn encode(&self, w: &mut Writer, n: &Negotiated) {
        w.u64(self.status.to_wire());
        self.error_msg.encode(w);
        if n.at_least(29) {
            w.u64(self.times_built)
                .bool(self.is_non_deterministic)
                .u64(self.start_time)
                .u64(self.stop_time);
        }
        if n.at_least(37) {
            encode_tagged_u64(self.cpu_user, w);
            encode_tagged_u64(self.cpu_system, w);
        }
        self.built_outputs.encode(w, n);
    }
}

/// A build result with the derived path it is for (§3.4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyedBuildResult {
    /// What was built.
    pub path: DerivedPath,
    /// How it went.
    pub result: BuildResult,
}

impl KeyedBuildResult {
    /// Reads a keyed build result.
    pub fn decode(r: &mut Reader<'_>, n: &Negotiated) -> ReadResult<Self> {
        Ok(KeyedBuildResult {
            path: DerivedPath::decode(r, n)?,
            result: BuildResult::decode(r, n)?,
        })
    }

    /// Writes a keyed build result.
    pub fn encode(&self, w: &mut Writer, n: &Negotiated) {
        self.path.encode(w, n);
        self.result.encode(w, n);
    }
}

// ---------------------------------------------------------------------------
// Realisations.

/// The id of one output of a derivation (§3.5).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum DrvOutput {
    /// Before 2.35, and 2.35+ without the feature: the string
    /// `sha256:<hash modulo>!<output name>`, kept verbatim.
    Id(String),
    /// 2.35+ with `realisation-with-path-not-hash`: the derivation path and
    /// the output name.
    #[serde(rename_all = "camelCase")]
    Path {
        /// The derivation.
        drv_path: StorePath,
        /// The output name.
        output_name: String,
    },
}

impl DrvOutput {
    /// Reads a DrvOutput in the form the connection uses.
    pub fn decode(r: &mut Reader<'_>, n: &Negotiated) -> ReadResult<Self> {
        if n.has(feature::REALISATION_WITH_PATH_NOT_HASH) {
            Self::decode_path(r)
        } else {
            Self::decode_id(r)
        }
    }

    /// Reads the string form.
    pub fn decode_id(r: &mut Reader<'_>) -> ReadResult<Self> {
        r.utf8("drv output id").map(DrvOutput::Id)
    }

    /// Reads the path form.
    pub fn decode_path(r: &mut Reader<'_>) -> ReadResult<Self> {
        Ok(DrvOutput::Path {
            drv_path: StorePath::decode(r)?,
            output_name: r.utf8("output name")?,
        })
    }

    /// Writes the form held.
    pub fn encode(&self, w: &mut Writer) {
        match self {
            DrvOutput::Id(id) => {
                w.string(id);
            }
            DrvOutput::Path {
                drv_path,
                output_name,
            } => {
                drv_path.encode(w);
                w.string(output_name);
            }
        }
    }

    /// The output name.
    pub fn output_name(&self) -> Option<&str> {
        match self {
            DrvOutput::Id(id) => id.split_once('!').map(|(_, name)| name),
            DrvOutput::Path { output_name, .. } => Some(output_name),
        }
    }
}

impl fmt::Display for DrvOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DrvOutput::Id(id) => f.write_str(id),
            DrvOutput::Path {
                drv_path,
                output_name,
            } => write!(f, "{drv_path}^{output_name}"),
        }
    }
}

/// Where a realised output is and who signed it (2.35+ binary form).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UnkeyedRealisation {
    /// The output path.
    pub out_path: StorePath,
    /// Signatures, in the order sent.
    pub signatures: Vec<String>,
}

impl UnkeyedRealisation {
    /// Reads `outPath, {signatures}`.
    pub fn decode(r: &mut Reader<'_>) -> ReadResult<Self> {
        Ok(UnkeyedRealisation {
            out_path: StorePath::decode(r)?,
            signatures: r.string_list("signature")?,
        })
    }

    /// Writes `outPath, {signatures}`.
    pub fn encode(&self, w: &mut Writer) {
        self.out_path.encode(w);
        w.string_list(&self.signatures);
    }
}

/// A Realisation as JSON text (1.31 up to 2.34, §3.6), kept verbatim so
/// that re-encoding is exact. [`RealisationJson::parse`] gives the parsed
/// view.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RealisationJson(pub String);

/// The parsed view of a [`RealisationJson`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ParsedRealisationJson {
    /// The DrvOutput id, `sha256:<hex>!<output name>`.
    pub id: String,
    /// The output path's base name.
    pub out_path: String,
    /// Signatures. Object-shaped signatures (`{"keyName","sig"}`, a JSON
    /// form no daemon sends) are rendered as `keyName:sig`.
    pub signatures: Vec<String>,
    /// DrvOutput id to output base name, in the JSON's order.
    pub dependent_realisations: Vec<(String, String)>,
}

impl RealisationJson {
    /// Reads the JSON string.
    pub fn decode(r: &mut Reader<'_>) -> ReadResult<Self> {
        r.utf8("realisation JSON").map(RealisationJson)
    }

    /// Writes the JSON string.
    pub fn encode(&self, w: &mut Writer) {
        w.string(&self.0);
    }

    /// The parsed view, or `None` when the text is not a realisation. Only
    /// `id` and `outPath` are required, as in Nix 2.35's compatibility form.
    pub fn parse(&self) -> Option<ParsedRealisationJson> {
        let value: serde_json::Value = serde_json::from_str(&self.0).ok()?;
        let object = value.as_object()?;
        let id = object.get("id")?.as_str()?.to_owned();
        let out_path = object.get("outPath")?.as_str()?.to_owned();
        let signatures = match object.get("signatures") {
            None => Vec::new(),
            Some(list) => list
                .as_array()?
                .iter()
                .map(|sig| match sig {
                    serde_json::Value::String(s) => Some(s.clone()),
                    serde_json::Value::Object(o) => Some(format!(
                        "{}:{}",
                        o.get("keyName")?.as_str()?,
                        o.get("sig")?.as_str()?
                    )),
                    _ => None,
                })
                .collect::<Option<Vec<_>>>()?,
        };
        let dependent_realisations = match object.get("dependentRealisations") {
            None => Vec::new(),
            Some(map) => map
                .as_object()?
                .iter()
                .map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect::<Option<Vec<_>>>()?,
        };
        Some(ParsedRealisationJson {
            id,
            out_path,
            signatures,
            dependent_realisations,
        })
    }
}

/// A Realisation in one of its three encodings (§3.6), as RegisterDrvOutput
/// sends it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "form", rename_all = "camelCase")]
pub enum Realisation {
    /// Below 1.31: the DrvOutput id string and the output's **base name**.
    #[serde(rename_all = "camelCase")]
    Legacy {
        /// The DrvOutput id, `sha256:<hex>!<output name>`.
        id: String,
        /// The output path's base name.
        out_path: String,
    },
    /// 1.31 up to 2.34 (and 2.35+ without the feature, which the daemon
    /// refuses): one JSON string.
    #[serde(rename_all = "camelCase")]
    Json {
        /// The JSON text.
        json: RealisationJson,
    },
    /// 2.35+ with `realisation-with-path-not-hash`: DrvOutput in path form
    /// and UnkeyedRealisation.
    #[serde(rename_all = "camelCase")]
    Binary {
        /// The derivation.
        drv_path: StorePath,
        /// The output name.
        output_name: String,
        /// The output path and signatures.
        realisation: UnkeyedRealisation,
    },
}

impl Realisation {
    /// Reads a realisation in the form the connection uses.
    pub fn decode(r: &mut Reader<'_>, n: &Negotiated) -> ReadResult<Self> {
        if n.has(feature::REALISATION_WITH_PATH_NOT_HASH) {
            Self::decode_binary(r)
        } else if n.at_least(31) {
            Ok(Realisation::Json {
                json: RealisationJson::decode(r)?,
            })
        } else {
            Ok(Realisation::Legacy {
                id: r.utf8("drv output id")?,
                out_path: r.utf8("output path")?,
            })
        }
    }

    /// Reads the binary form.
    pub fn decode_binary(r: &mut Reader<'_>) -> ReadResult<Self> {
        Ok(Realisation::Binary {
            drv_path: StorePath::decode(r)?,
            output_name: r.utf8("output name")?,
            realisation: UnkeyedRealisation::decode(r)?,
        })
    }

    /// Writes the form held.
    pub fn encode(&self, w: &mut Writer) {
        match self {
            Realisation::Legacy { id, out_path } => {
                w.string(id).string(out_path);
            }
            Realisation::Json { json } => json.encode(w),
            Realisation::Binary {
                drv_path,
                output_name,
                realisation,
            } => {
                drv_path.encode(w);
                w.string(output_name);
                realisation.encode(w);
            }
        }
    }

    /// A short name for the realised output, for displays: the DrvOutput
    /// id (or `drv^output`).
    pub fn id_text(&self) -> String {
        match self {
            Realisation::Legacy { id, .. } => id.clone(),
            Realisation::Json { json } => json.parse().map_or_else(|| json.0.clone(), |p| p.id),
            Realisation::Binary {
                drv_path,
                output_name,
                ..
            } => format!("{drv_path}^{output_name}"),
        }
    }
}

/// The reply of QueryRealisation in one of its three forms (§7.1, op 43).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RealisationQueryResult {
    /// Below 1.31: a set of zero or one output paths.
    OutPaths(Vec<StorePath>),
    /// 1.31 up to 2.34: a set of zero or one Realisation JSON strings.
    Json(Vec<RealisationJson>),
    /// 2.35+ with the feature: a tagged optional UnkeyedRealisation.
    Binary(Option<UnkeyedRealisation>),
}

impl RealisationQueryResult {
    /// Reads the reply in the form the connection uses.
    pub fn decode(r: &mut Reader<'_>, n: &Negotiated) -> ReadResult<Self> {
        if n.has(feature::REALISATION_WITH_PATH_NOT_HASH) {
            let start = r.position();
            match r.u64()? {
                0 => Ok(RealisationQueryResult::Binary(None)),
                1 => Ok(RealisationQueryResult::Binary(Some(
                    UnkeyedRealisation::decode(r)?,
                ))),
                tag => Err(out_of_range(r, start, "optional realisation tag", tag)),
            }
        } else if n.at_least(31) {
            Ok(RealisationQueryResult::Json(
                r.list(RealisationJson::decode)?,
            ))
        } else {
            Ok(RealisationQueryResult::OutPaths(StorePath::decode_list(r)?))
        }
    }

    /// Writes the form held.
    pub fn encode(&self, w: &mut Writer) {
        match self {
            RealisationQueryResult::OutPaths(paths) => StorePath::encode_list(paths, w),
            RealisationQueryResult::Json(list) => {
                w.list(list, |w, j| j.encode(w));
            }
            RealisationQueryResult::Binary(None) => {
                w.u64(0);
            }
            RealisationQueryResult::Binary(Some(realisation)) => {
                w.u64(1);
                realisation.encode(w);
            }
        }
    }

    /// Number of realisations found (0 or 1 from a real daemon).
    pub fn len(&self) -> usize {
        match self {
            RealisationQueryResult::OutPaths(paths) => paths.len(),
            RealisationQueryResult::Json(list) => list.len(),
            RealisationQueryResult::Binary(found) => usize::from(found.is_some()),
        }
    }

    /// Whether nothing was found.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

// ---------------------------------------------------------------------------
// Derivations.

/// One output of a [`BasicDerivation`] (§3.7).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DerivationOutput {
    /// The output name.
    pub name: String,
    /// The output path; `None` for floating, deferred and impure outputs.
    pub path: Option<StorePath>,
    /// Method and algorithm of a content-addressed output, such as
    /// `r:sha256`; empty for input-addressed outputs.
    pub hash_algo: String,
    /// The base16 hash of a fixed output, `impure`, or empty.
    pub hash: String,
}

/// A derivation without its input derivations, as BuildDerivation sends
/// it (§3.7). Strings other than names and paths may hold any bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BasicDerivation {
    /// The outputs, in the order sent (Nix sends them sorted by name).
    pub outputs: Vec<DerivationOutput>,
    /// Input sources.
    pub input_srcs: Vec<StorePath>,
    /// The system, such as `x86_64-linux`.
    pub platform: ByteString,
    /// The builder executable.
    pub builder: ByteString,
    /// The builder's arguments.
    pub args: Vec<ByteString>,
    /// The environment, in the order sent.
    pub env: Vec<(ByteString, ByteString)>,
}

impl BasicDerivation {
    /// Reads a derivation.
    pub fn decode(r: &mut Reader<'_>) -> ReadResult<Self> {
        let outputs = r.list(|r| {
            Ok(DerivationOutput {
                name: r.utf8("output name")?,
                path: StorePath::decode_optional(r)?,
                hash_algo: r.utf8("output hash algorithm")?,
                hash: r.utf8("output hash")?,
            })
        })?;
        Ok(BasicDerivation {
            outputs,
            input_srcs: StorePath::decode_list(r)?,
            platform: ByteString::decode(r)?,
            builder: ByteString::decode(r)?,
            args: r.list(ByteString::decode)?,
            env: r.list(|r| Ok((ByteString::decode(r)?, ByteString::decode(r)?)))?,
        })
    }

    /// Writes a derivation.
    pub fn encode(&self, w: &mut Writer) {
        w.list(&self.outputs, |w, o| {
            w.string(&o.name);
            StorePath::encode_optional(o.path.as_ref(), w);
            w.string(&o.hash_algo).string(&o.hash);
        });
        StorePath::encode_list(&self.input_srcs, w);
        self.platform.encode(w);
        self.builder.encode(w);
        w.list(&self.args, |w, a| a.encode(w));
        w.list(&self.env, |w, (k, v)| {
            k.encode(w);
            v.encode(w);
        });
    }
}

// ---------------------------------------------------------------------------
// Operation arguments.

/// The client's settings, sent by SetOptions (§7.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientSettings {
    /// Keep the build directory of failed builds.
    pub keep_failed: bool,
    /// Keep going after a build fails.
    pub keep_going: bool,
    /// Build from source when substitution fails.
    pub try_fallback: bool,
    /// Log verbosity (see [`verbosity_name`]).
    pub verbosity: u64,
    /// Maximum parallel builds.
    pub max_build_jobs: u64,
    /// Seconds of silence before a build is killed.
    pub max_silent_time: u64,
    /// Obsolete `useBuildHook`; clients send 1.
    pub use_build_hook: u64,
    /// A verbosity, not a flag: 0 (error) means verbose builds are on, and
    /// clients send 7 (vomit) for off.
    pub verbose_build: u64,
    /// Obsolete `logType`; clients send 0.
    pub log_type: u64,
    /// Obsolete `printBuildTrace`; clients send 0.
    pub print_build_trace: u64,
    /// Cores per build.
    pub build_cores: u64,
    /// Whether to use substitutes.
    pub use_substitutes: bool,
    /// Overridden settings, name and value, in the order sent (≥ 1.12).
    pub overrides: Vec<(String, ByteString)>,
}

impl ClientSettings {
    /// Whether the client asked for verbose build output.
    pub fn verbose_build_on(&self) -> bool {
        self.verbose_build == 0
    }

    /// Reads the settings.
    pub fn decode(r: &mut Reader<'_>, n: &Negotiated) -> ReadResult<Self> {
        Ok(ClientSettings {
            keep_failed: r.bool()?,
            keep_going: r.bool()?,
            try_fallback: r.bool()?,
            verbosity: r.u64()?,
            max_build_jobs: r.u64()?,
            max_silent_time: r.u64()?,
            use_build_hook: r.u64()?,
            verbose_build: r.u64()?,
            log_type: r.u64()?,
            print_build_trace: r.u64()?,
            build_cores: r.u64()?,
            use_substitutes: r.bool()?,
            overrides: if n.at_least(12) {
                r.list(|r| Ok((r.utf8("setting name")?, ByteString::decode(r)?)))?
            } else {
                Vec::new()
            },
        })
    }

    /// Writes the settings.
    pub fn encode(&self, w: &mut Writer, n: &Negotiated) {
        w.bool(self.keep_failed)
            .bool(self.keep_going)
            .bool(self.try_fallback)
            .u64(self.verbosity)
            .u64(self.max_build_jobs)
            .u64(self.max_silent_time)
            .u64(self.use_build_hook)
            .u64(self.verbose_build)
            .u64(self.log_type)
            .u64(self.print_build_trace)
            .u64(self.build_cores)
            .bool(self.use_substitutes);
        if n.at_least(12) {
            w.list(&self.overrides, |w, (name, value)| {
                w.string(name);
                value.encode(w);
            });
        }
    }
}

/// Which paths CollectGarbage is about (§7.4, §3.9).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum GcPaths {
    /// Without `delete-dead-specific-referrers`: a plain set; empty with an
    /// action other than DeleteSpecific means the whole store.
    #[serde(rename_all = "camelCase")]
    Set {
        /// The paths.
        paths: Vec<StorePath>,
    },
    /// With the feature, tag 1: the whole store.
    WholeStore,
    /// With the feature, tag 0: these paths.
    #[serde(rename_all = "camelCase")]
    Specific {
        /// The paths.
        paths: Vec<StorePath>,
        /// Whether to delete their referrers too.
        delete_referrers: bool,
    },
}

impl GcPaths {
    /// Reads the paths in the form the connection uses.
    pub fn decode(r: &mut Reader<'_>, n: &Negotiated) -> ReadResult<Self> {
        if !n.has(feature::DELETE_DEAD_SPECIFIC_REFERRERS) {
            return Ok(GcPaths::Set {
                paths: StorePath::decode_list(r)?,
            });
        }
        let start = r.position();
        match r.u64()? {
            0 => Ok(GcPaths::Specific {
                paths: StorePath::decode_list(r)?,
                delete_referrers: r.bool()?,
            }),
            1 => Ok(GcPaths::WholeStore),
            tag => Err(out_of_range(r, start, "GC paths tag", tag)),
        }
    }

    /// Writes the form held.
    pub fn encode(&self, w: &mut Writer) {
        match self {
            GcPaths::Set { paths } => StorePath::encode_list(paths, w),
            GcPaths::WholeStore => {
                w.u64(1);
            }
            GcPaths::Specific {
                paths,
                delete_referrers,
            } => {
                w.u64(0);
                StorePath::encode_list(paths, w);
                w.bool(*delete_referrers);
            }
        }
    }

    /// The paths named, if any.
    pub fn paths(&self) -> &[StorePath] {
        match self {
            GcPaths::Set { paths } | GcPaths::Specific { paths, .. } => paths,
            GcPaths::WholeStore => &[],
        }
    }
}

/// The arguments of CollectGarbage (§7.4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GcOptions {
    /// What to do.
    pub action: GcAction,
    /// Which paths.
    pub paths: GcPaths,
    /// Ignore liveness (daemons refuse this).
    pub ignore_liveness: bool,
    /// Stop after freeing this many bytes.
    pub max_freed: u64,
    /// Three obsolete fields; clients send zeros.
    pub obsolete: [u64; 3],
}

impl GcOptions {
    /// Reads the options.
    pub fn decode(r: &mut Reader<'_>, n: &Negotiated) -> ReadResult<Self> {
        Ok(GcOptions {
            action: GcAction::decode(r)?,
            paths: GcPaths::decode(r, n)?,
            ignore_liveness: r.bool()?,
            max_freed: r.u64()?,
            obsolete: [r.u64()?, r.u64()?, r.u64()?],
        })
    }

    /// Writes the options.
    pub fn encode(&self, w: &mut Writer) {
        self.action.encode(w);
        self.paths.encode(w);
        w.bool(self.ignore_liveness).u64(self.max_freed);
        for value in self.obsolete {
            w.u64(value);
        }
    }
}

#[cfg(test)]
mod tests;
