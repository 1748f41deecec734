//! Basic derivations, as BuildDerivation sends them (§3.7).

use serde::{Deserialize, Serialize};

use crate::bytes::ByteString;
use crate::primitives::{ReadResult, Reader, Writer};

use super::store_path::StorePath;

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
