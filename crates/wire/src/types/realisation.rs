//! Realisations of CA derivation outputs, in their three encodings (§3.5, §3.6).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::primitives::{ReadResult, Reader, Writer};
use crate::version::{feature, Negotiated};

use super::out_of_range;
use super::store_path::StorePath;

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
