//! Build results and their `builtOutputs` (§3.4).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::bytes::ByteString;
use crate::primitives::{ReadResult, Reader, Writer};
use crate::version::{feature, Negotiated};

use super::derived_path::DerivedPath;
use super::out_of_range;
use super::realisation::{RealisationJson, UnkeyedRealisation};

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
