//! Content addresses and the hash encodings they use (§2.7).

use serde::{Deserialize, Serialize};

use crate::primitives::{ReadResult, Reader, Writer};

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
