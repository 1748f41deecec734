//! Every operation of the worker protocol: its number ([`Op`]), what the
//! client sends after the request's fixed fields ([`Upload`]), the request
//! ([`Request`]) and the reply after STDERR_LAST ([`Reply`]), at every
//! protocol version (protocol reference §7 and §8).
//!
//! A request on the wire is `u64 op` followed by the op's fields. Some ops
//! then stream a payload (a NAR, a framed stream, or strings answering
//! STDERR_READ); [`Op::upload`] says which, and the session decoder reads
//! it. Replies follow the stderr phase; [`Reply`] holds only the fields
//! after STDERR_LAST, so NarFromPath's NAR is not part of it.

use serde::{Deserialize, Serialize};

use crate::bytes::ByteString;
use crate::primitives::{InvalidKind, ReadResult, Reader, Writer};
use crate::types::{
    BasicDerivation, BuildMode, BuildResult, ClientSettings, ContentAddress,
    ContentAddressMethodWithAlgo, DerivedPath, DrvOutput, GcOptions, KeyedBuildResult, Realisation,
    RealisationQueryResult, SingleDerivedPath, StorePath, SubstitutablePathInfo,
    UnkeyedValidPathInfo, ValidPathInfo,
};
use crate::version::Negotiated;

/// An operation number (§7.1), with Nix's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[repr(u64)]
pub enum Op {
    /// Whether a path is valid.
    IsValidPath = 1,
    /// Whether a path has substitutes (removed in 2.34).
    HasSubstitutes = 3,
    /// A path's NAR hash (obsolete; removed in 2.34).
    QueryPathHash = 4,
    /// A path's references (obsolete; removed in 2.34).
    QueryReferences = 5,
    /// The paths that refer to a path.
    QueryReferrers = 6,
    /// Adds a file or tree to the store.
    AddToStore = 7,
    /// Adds a text file to the store (obsolete since 1.25).
    AddTextToStore = 8,
    /// Builds or substitutes derived paths.
    BuildPaths = 9,
    /// Makes a path valid, substituting it if needed.
    EnsurePath = 10,
    /// Adds a temporary GC root.
    AddTempRoot = 11,
    /// Adds an indirect GC root.
    AddIndirectRoot = 12,
    /// Waits for the garbage collector (obsolete no-op).
    SyncWithGC = 13,
    /// Lists GC roots.
    FindRoots = 14,
    /// Exports a path (obsolete; removed in 2.32).
    ExportPath = 16,
    /// A path's deriver (obsolete).
    QueryDeriver = 18,
    /// Sends the client's settings.
    SetOptions = 19,
    /// Runs the garbage collector.
    CollectGarbage = 20,
    /// What a substituter knows about one path.
    QuerySubstitutablePathInfo = 21,
    /// A derivation's output paths (obsolete).
    QueryDerivationOutputs = 22,
    /// Every valid path.
    QueryAllValidPaths = 23,
    /// Failed paths (Nix 1.x only).
    QueryFailedPaths = 24,
    /// Clears failed paths (Nix 1.x only).
    ClearFailedPaths = 25,
    /// A path's metadata.
    QueryPathInfo = 26,
    /// Imports an export stream (obsolete; removed in 2.32).
    ImportPaths = 27,
    /// A derivation's output names (obsolete).
    QueryDerivationOutputNames = 28,
    /// The path with a given hash part.
    QueryPathFromHashPart = 29,
    /// What substituters know about several paths.
    QuerySubstitutablePathInfos = 30,
    /// Which of several paths are valid.
    QueryValidPaths = 31,
    /// Which of several paths have substitutes.
    QuerySubstitutablePaths = 32,
    /// The valid derivers of a path.
    QueryValidDerivers = 33,
    /// Deduplicates the store.
    OptimiseStore = 34,
    /// Checks the store.
    VerifyStore = 35,
    /// Builds a derivation sent inline.
    BuildDerivation = 36,
    /// Adds signatures to a path.
    AddSignatures = 37,
    /// Streams a path as a NAR.
    NarFromPath = 38,
    /// Adds a path with its metadata and NAR.
    AddToStoreNar = 39,
    /// What a build would do.
    QueryMissing = 40,
    /// A derivation's outputs and their paths.
    QueryDerivationOutputMap = 41,
    /// Registers a realisation (CA derivations).
    RegisterDrvOutput = 42,
    /// Looks up a realisation (CA derivations).
    QueryRealisation = 43,
    /// Adds several paths in one framed stream.
    AddMultipleToStore = 44,
    /// Uploads a build log.
    AddBuildLog = 45,
    /// Builds derived paths and returns each result.
    BuildPathsWithResults = 46,
    /// Adds a permanent GC root.
    AddPermRoot = 47,
    /// Submits a built output from inside a derivation (unreleased).
    SubmitOutput = 1000,
    /// Adds to the store with reference scanning (unreleased).
    AddToStoreScanning = 1001,
}

impl Op {
    /// Every op, in number order.
    pub const ALL: [Op; 46] = [
        Op::IsValidPath,
        Op::HasSubstitutes,
        Op::QueryPathHash,
        Op::QueryReferences,
        Op::QueryReferrers,
        Op::AddToStore,
        Op::AddTextToStore,
        Op::BuildPaths,
        Op::EnsurePath,
        Op::AddTempRoot,
        Op::AddIndirectRoot,
        Op::SyncWithGC,
        Op::FindRoots,
        Op::ExportPath,
        Op::QueryDeriver,
        Op::SetOptions,
        Op::CollectGarbage,
        Op::QuerySubstitutablePathInfo,
        Op::QueryDerivationOutputs,
        Op::QueryAllValidPaths,
        Op::QueryFailedPaths,
        Op::ClearFailedPaths,
        Op::QueryPathInfo,
        Op::ImportPaths,
        Op::QueryDerivationOutputNames,
        Op::QueryPathFromHashPart,
        Op::QuerySubstitutablePathInfos,
        Op::QueryValidPaths,
        Op::QuerySubstitutablePaths,
        Op::QueryValidDerivers,
        Op::OptimiseStore,
        Op::VerifyStore,
        Op::BuildDerivation,
        Op::AddSignatures,
        Op::NarFromPath,
        Op::AddToStoreNar,
        Op::QueryMissing,
        Op::QueryDerivationOutputMap,
        Op::RegisterDrvOutput,
        Op::QueryRealisation,
        Op::AddMultipleToStore,
        Op::AddBuildLog,
        Op::BuildPathsWithResults,
        Op::AddPermRoot,
        Op::SubmitOutput,
        Op::AddToStoreScanning,
    ];

    /// The op with this number, or `None` for a number no Nix uses.
    pub fn from_wire(value: u64) -> Option<Op> {
        Op::ALL.into_iter().find(|op| op.to_wire() == value)
    }

    /// The op's number.
    pub fn to_wire(self) -> u64 {
        self as u64
    }

    /// Nix's name for the op, such as `QueryPathInfo`.
    pub fn name(self) -> &'static str {
        match self {
            Op::IsValidPath => "IsValidPath",
            Op::HasSubstitutes => "HasSubstitutes",
            Op::QueryPathHash => "QueryPathHash",
            Op::QueryReferences => "QueryReferences",
            Op::QueryReferrers => "QueryReferrers",
            Op::AddToStore => "AddToStore",
            Op::AddTextToStore => "AddTextToStore",
            Op::BuildPaths => "BuildPaths",
            Op::EnsurePath => "EnsurePath",
            Op::AddTempRoot => "AddTempRoot",
            Op::AddIndirectRoot => "AddIndirectRoot",
            Op::SyncWithGC => "SyncWithGC",
            Op::FindRoots => "FindRoots",
            Op::ExportPath => "ExportPath",
            Op::QueryDeriver => "QueryDeriver",
            Op::SetOptions => "SetOptions",
            Op::CollectGarbage => "CollectGarbage",
            Op::QuerySubstitutablePathInfo => "QuerySubstitutablePathInfo",
            Op::QueryDerivationOutputs => "QueryDerivationOutputs",
            Op::QueryAllValidPaths => "QueryAllValidPaths",
            Op::QueryFailedPaths => "QueryFailedPaths",
            Op::ClearFailedPaths => "ClearFailedPaths",
            Op::QueryPathInfo => "QueryPathInfo",
            Op::ImportPaths => "ImportPaths",
            Op::QueryDerivationOutputNames => "QueryDerivationOutputNames",
            Op::QueryPathFromHashPart => "QueryPathFromHashPart",
            Op::QuerySubstitutablePathInfos => "QuerySubstitutablePathInfos",
            Op::QueryValidPaths => "QueryValidPaths",
            Op::QuerySubstitutablePaths => "QuerySubstitutablePaths",
            Op::QueryValidDerivers => "QueryValidDerivers",
            Op::OptimiseStore => "OptimiseStore",
            Op::VerifyStore => "VerifyStore",
            Op::BuildDerivation => "BuildDerivation",
            Op::AddSignatures => "AddSignatures",
            Op::NarFromPath => "NarFromPath",
            Op::AddToStoreNar => "AddToStoreNar",
            Op::QueryMissing => "QueryMissing",
            Op::QueryDerivationOutputMap => "QueryDerivationOutputMap",
            Op::RegisterDrvOutput => "RegisterDrvOutput",
            Op::QueryRealisation => "QueryRealisation",
            Op::AddMultipleToStore => "AddMultipleToStore",
            Op::AddBuildLog => "AddBuildLog",
            Op::BuildPathsWithResults => "BuildPathsWithResults",
            Op::AddPermRoot => "AddPermRoot",
            Op::SubmitOutput => "SubmitOutput",
            Op::AddToStoreScanning => "AddToStoreScanning",
        }
    }

    /// The op with this name, compared case-insensitively.
    pub fn from_name(name: &str) -> Option<Op> {
        Op::ALL
            .into_iter()
            .find(|op| op.name().eq_ignore_ascii_case(name))
    }

    /// What the client sends after the request's fixed fields (§8).
    pub fn upload(self, n: &Negotiated) -> Upload {
        match self {
            Op::AddToStore if n.at_least(25) => Upload::Framed,
            Op::AddToStore => Upload::InlineNar,
            Op::AddToStoreNar if n.at_least(23) => Upload::Framed,
            Op::AddToStoreNar if n.at_least(21) => Upload::StderrReadAnswers,
            Op::AddToStoreNar => Upload::InlineNar,
            Op::AddMultipleToStore | Op::AddBuildLog | Op::AddToStoreScanning => Upload::Framed,
            Op::ImportPaths => Upload::StderrReadAnswers,
            _ => Upload::None,
        }
    }
}

impl std::fmt::Display for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What follows a request's fixed fields on the client side (§8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Upload {
    /// Nothing; the request ends with its fields.
    None,
    /// A framed stream, ended by a zero-length frame (§2.8).
    Framed,
    /// A NAR with no length prefix; its end is found by parsing it (§10).
    InlineNar,
    /// One string for each STDERR_READ the daemon sends (§2.9).
    StderrReadAnswers,
}

/// The layout-dependent arguments of AddToStore (§7.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "layout", rename_all = "camelCase")]
pub enum AddToStoreArgs {
    /// Below 1.25; an inline NAR follows.
    #[serde(rename_all = "camelCase")]
    Legacy {
        /// 0 only for the old "sha256 + recursive" default.
        fixed: bool,
        /// NAR ingestion (true) or flat.
        recursive: bool,
        /// The hash algorithm, such as `sha256`.
        hash_algo: String,
    },
    /// 1.25 and later; a framed dump follows.
    #[serde(rename_all = "camelCase")]
    Ca {
        /// Method and algorithm, such as `fixed:r:sha256`.
        method: ContentAddressMethodWithAlgo,
        /// References of the new path.
        references: Vec<StorePath>,
        /// Whether to repair.
        repair: bool,
    },
}

/// A request: the fields after the op word, per op and version.
///
/// Ops whose only field is one store path share that shape; ops with no
/// fields have empty variants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op")]
pub enum Request {
    /// Op 1: `path`.
    IsValidPath {
        /// The path.
        path: StorePath,
    },
    /// Op 3: `path`.
    HasSubstitutes {
        /// The path.
        path: StorePath,
    },
    /// Op 4: `path`.
    QueryPathHash {
        /// The path.
        path: StorePath,
    },
    /// Op 5: `path`.
    QueryReferences {
        /// The path.
        path: StorePath,
    },
    /// Op 6: `path`.
    QueryReferrers {
        /// The path.
        path: StorePath,
    },
    /// Op 7 (§7.2): `str name`, then the layout-dependent arguments.
    AddToStore {
        /// Name of the new path.
        name: String,
        /// The rest of the arguments.
        args: AddToStoreArgs,
    },
    /// Op 8: `str name, str text, {path} references`.
    AddTextToStore {
        /// Name of the new path.
        name: String,
        /// The file contents.
        text: ByteString,
        /// References of the new path.
        references: Vec<StorePath>,
    },
    /// Op 9: `[DerivedPath]`, and `BuildMode` at ≥ 1.15.
    BuildPaths {
        /// What to build.
        paths: Vec<DerivedPath>,
        /// How; Normal below 1.15.
        mode: BuildMode,
    },
    /// Op 10: `path`.
    EnsurePath {
        /// The path.
        path: StorePath,
    },
    /// Op 11: `path`.
    AddTempRoot {
        /// The path.
        path: StorePath,
    },
    /// Op 12: `str` absolute path of the symlink.
    AddIndirectRoot {
        /// The symlink.
        path: ByteString,
    },
    /// Op 13: no fields.
    SyncWithGC {},
    /// Op 14: no fields.
    FindRoots {},
    /// Op 16: `path, u64 sign` (obsolete, 0).
    ExportPath {
        /// The path.
        path: StorePath,
        /// The obsolete "sign" field.
        sign: u64,
    },
    /// Op 18: `path`.
    QueryDeriver {
        /// The path.
        path: StorePath,
    },
    /// Op 19 (§7.3).
    SetOptions {
        /// The settings.
        settings: ClientSettings,
    },
    /// Op 20 (§7.4).
    CollectGarbage {
        /// The options.
        options: GcOptions,
    },
    /// Op 21: `path`.
    QuerySubstitutablePathInfo {
        /// The path.
        path: StorePath,
    },
    /// Op 22: `path`.
    QueryDerivationOutputs {
        /// The derivation.
        path: StorePath,
    },
    /// Op 23: no fields.
    QueryAllValidPaths {},
    /// Op 24 (1.x layout): no fields.
    QueryFailedPaths {},
    /// Op 25 (1.x layout): `{path}`.
    ClearFailedPaths {
        /// The paths.
        paths: Vec<StorePath>,
    },
    /// Op 26: `path`.
    QueryPathInfo {
        /// The path.
        path: StorePath,
    },
    /// Op 27: no fields; the export stream follows as STDERR_READ answers.
    ImportPaths {},
    /// Op 28: `path`.
    QueryDerivationOutputNames {
        /// The derivation.
        path: StorePath,
    },
    /// Op 29: `str` hash part.
    QueryPathFromHashPart {
        /// The 32-character hash part.
        #[serde(rename = "hashPart")]
        hash_part: String,
    },
    /// Op 30: `{path}` below 1.22, `map<path, CA>` from 1.22.
    QuerySubstitutablePathInfos {
        /// The paths with an optional content address (always `None`
        /// below 1.22, where it is not sent).
        paths: Vec<(StorePath, Option<ContentAddress>)>,
    },
    /// Op 31: `{path}`, and `u64 substitute` at ≥ 1.27.
    QueryValidPaths {
        /// The paths.
        paths: Vec<StorePath>,
        /// Whether to substitute missing paths; false below 1.27.
        substitute: bool,
    },
    /// Op 32: `{path}`.
    QuerySubstitutablePaths {
        /// The paths.
        paths: Vec<StorePath>,
    },
    /// Op 33: `path`.
    QueryValidDerivers {
        /// The path.
        path: StorePath,
    },
    /// Op 34: no fields.
    OptimiseStore {},
    /// Op 35: `u64 checkContents, u64 repair`.
    VerifyStore {
        /// Whether to hash every path.
        #[serde(rename = "checkContents")]
        check_contents: bool,
        /// Whether to repair.
        repair: bool,
    },
    /// Op 36 (§7.9): `path, BasicDerivation, BuildMode`.
    BuildDerivation {
        /// The derivation's path.
        #[serde(rename = "drvPath")]
        drv_path: StorePath,
        /// The derivation.
        derivation: BasicDerivation,
        /// How to build.
        mode: BuildMode,
    },
    /// Op 37: `path, {str} sigs`.
    AddSignatures {
        /// The path.
        path: StorePath,
        /// The signatures.
        signatures: Vec<String>,
    },
    /// Op 38: `path`; the reply's NAR follows STDERR_LAST.
    NarFromPath {
        /// The path.
        path: StorePath,
    },
    /// Op 39 (§7.5): a path info in the 1.16 layout, `u64 repair,
    /// u64 dontCheckSigs`; the NAR follows.
    AddToStoreNar {
        /// The path and its metadata.
        info: ValidPathInfo,
        /// Whether to repair.
        repair: bool,
        /// Whether to skip signature checks.
        #[serde(rename = "dontCheckSigs")]
        dont_check_sigs: bool,
    },
    /// Op 40: `[DerivedPath]`.
    QueryMissing {
        /// What would be built.
        paths: Vec<DerivedPath>,
    },
    /// Op 41: `path`.
    QueryDerivationOutputMap {
        /// The derivation.
        path: StorePath,
    },
    /// Op 42: a Realisation in the connection's form.
    RegisterDrvOutput {
        /// The realisation.
        realisation: Realisation,
    },
    /// Op 43: a DrvOutput in the connection's form.
    QueryRealisation {
        /// The output.
        id: DrvOutput,
    },
    /// Op 44 (§7.6): `u64 repair, u64 dontCheckSigs`; a framed stream follows.
    AddMultipleToStore {
        /// Whether to repair.
        repair: bool,
        /// Whether to skip signature checks.
        #[serde(rename = "dontCheckSigs")]
        dont_check_sigs: bool,
    },
    /// Op 45: `str` derivation **base name**; the framed log follows.
    AddBuildLog {
        /// The derivation's base name, without the store directory.
        #[serde(rename = "baseName")]
        base_name: String,
    },
    /// Op 46: `[DerivedPath], BuildMode`.
    BuildPathsWithResults {
        /// What to build.
        paths: Vec<DerivedPath>,
        /// How.
        mode: BuildMode,
    },
    /// Op 47: `path, str gcRoot`.
    AddPermRoot {
        /// The path to keep alive.
        path: StorePath,
        /// Where to put the root.
        #[serde(rename = "gcRoot")]
        gc_root: ByteString,
    },
    /// Op 1000: `SingleDerivedPath, str outputName`.
    SubmitOutput {
        /// The path submitted.
        path: SingleDerivedPath,
        /// The output it is submitted as.
        output: String,
    },
    /// Op 1001: `str name, str method`; a framed dump follows.
    AddToStoreScanning {
        /// Name of the new path.
        name: String,
        /// Method and algorithm, such as `fixed:r:sha256`.
        method: ContentAddressMethodWithAlgo,
    },
}

fn plural(count: usize, one: &str) -> String {
    if count == 1 {
        format!("1 {one}")
    } else {
        format!("{count} {one}s")
    }
}

/// The one path of a list, or a count.
fn one_or_count<T: std::fmt::Display>(items: &[T]) -> String {
    match items {
        [only] => only.to_string(),
        _ => plural(items.len(), "path"),
    }
}

impl Request {
    /// The request's op.
    pub fn op(&self) -> Op {
        match self {
            Request::IsValidPath { .. } => Op::IsValidPath,
            Request::HasSubstitutes { .. } => Op::HasSubstitutes,
            Request::QueryPathHash { .. } => Op::QueryPathHash,
            Request::QueryReferences { .. } => Op::QueryReferences,
            Request::QueryReferrers { .. } => Op::QueryReferrers,
            Request::AddToStore { .. } => Op::AddToStore,
            Request::AddTextToStore { .. } => Op::AddTextToStore,
            Request::BuildPaths { .. } => Op::BuildPaths,
            Request::EnsurePath { .. } => Op::EnsurePath,
            Request::AddTempRoot { .. } => Op::AddTempRoot,
            Request::AddIndirectRoot { .. } => Op::AddIndirectRoot,
            Request::SyncWithGC {} => Op::SyncWithGC,
            Request::FindRoots {} => Op::FindRoots,
            Request::ExportPath { .. } => Op::ExportPath,
            Request::QueryDeriver { .. } => Op::QueryDeriver,
            Request::SetOptions { .. } => Op::SetOptions,
            Request::CollectGarbage { .. } => Op::CollectGarbage,
            Request::QuerySubstitutablePathInfo { .. } => Op::QuerySubstitutablePathInfo,
            Request::QueryDerivationOutputs { .. } => Op::QueryDerivationOutputs,
            Request::QueryAllValidPaths {} => Op::QueryAllValidPaths,
            Request::QueryFailedPaths {} => Op::QueryFailedPaths,
            Request::ClearFailedPaths { .. } => Op::ClearFailedPaths,
            Request::QueryPathInfo { .. } => Op::QueryPathInfo,
            Request::ImportPaths {} => Op::ImportPaths,
            Request::QueryDerivationOutputNames { .. } => Op::QueryDerivationOutputNames,
            Request::QueryPathFromHashPart { .. } => Op::QueryPathFromHashPart,
            Request::QuerySubstitutablePathInfos { .. } => Op::QuerySubstitutablePathInfos,
            Request::QueryValidPaths { .. } => Op::QueryValidPaths,
            Request::QuerySubstitutablePaths { .. } => Op::QuerySubstitutablePaths,
            Request::QueryValidDerivers { .. } => Op::QueryValidDerivers,
            Request::OptimiseStore {} => Op::OptimiseStore,
            Request::VerifyStore { .. } => Op::VerifyStore,
            Request::BuildDerivation { .. } => Op::BuildDerivation,
            Request::AddSignatures { .. } => Op::AddSignatures,
            Request::NarFromPath { .. } => Op::NarFromPath,
            Request::AddToStoreNar { .. } => Op::AddToStoreNar,
            Request::QueryMissing { .. } => Op::QueryMissing,
            Request::QueryDerivationOutputMap { .. } => Op::QueryDerivationOutputMap,
            Request::RegisterDrvOutput { .. } => Op::RegisterDrvOutput,
            Request::QueryRealisation { .. } => Op::QueryRealisation,
            Request::AddMultipleToStore { .. } => Op::AddMultipleToStore,
            Request::AddBuildLog { .. } => Op::AddBuildLog,
            Request::BuildPathsWithResults { .. } => Op::BuildPathsWithResults,
            Request::AddPermRoot { .. } => Op::AddPermRoot,
            Request::SubmitOutput { .. } => Op::SubmitOutput,
            Request::AddToStoreScanning { .. } => Op::AddToStoreScanning,
        }
    }

    /// Decodes the fields that follow the op word (not the upload payload).
    pub fn decode(op: Op, r: &mut Reader<'_>, n: &Negotiated) -> ReadResult<Request> {
        let path = |r: &mut Reader<'_>| StorePath::decode(r);
        Ok(match op {
            Op::IsValidPath => Request::IsValidPath { path: path(r)? },
            Op::HasSubstitutes => Request::HasSubstitutes { path: path(r)? },
            Op::QueryPathHash => Request::QueryPathHash { path: path(r)? },
            Op::QueryReferences => Request::QueryReferences { path: path(r)? },
            Op::QueryReferrers => Request::QueryReferrers { path: path(r)? },
            Op::AddToStore => {
                let name = r.utf8("name")?;
                let args = if n.at_least(25) {
                    AddToStoreArgs::Ca {
                        method: ContentAddressMethodWithAlgo::decode(r)?,
                        references: StorePath::decode_list(r)?,
                        repair: r.bool()?,
                    }
                } else {
                    AddToStoreArgs::Legacy {
                        fixed: r.bool()?,
                        recursive: r.bool()?,
                        hash_algo: r.utf8("hash algorithm")?,
                    }
                };
                Request::AddToStore { name, args }
            }
            Op::AddTextToStore => Request::AddTextToStore {
                name: r.utf8("name")?,
                text: ByteString::decode(r)?,
                references: StorePath::decode_list(r)?,
            },
            Op::BuildPaths => Request::BuildPaths {
                paths: DerivedPath::decode_list(r, n)?,
                mode: if n.at_least(15) {
                    BuildMode::decode(r)?
                } else {
                    BuildMode::Normal
                },
            },
            Op::EnsurePath => Request::EnsurePath { path: path(r)? },
            Op::AddTempRoot => Request::AddTempRoot { path: path(r)? },
            Op::AddIndirectRoot => Request::AddIndirectRoot {
                path: ByteString::decode(r)?,
            },
            Op::SyncWithGC => Request::SyncWithGC {},
            Op::FindRoots => Request::FindRoots {},
            Op::ExportPath => Request::ExportPath {
                path: path(r)?,
                sign: r.u64()?,
            },
            Op::QueryDeriver => Request::QueryDeriver { path: path(r)? },
            Op::SetOptions => Request::SetOptions {
                settings: ClientSettings::decode(r, n)?,
            },
            Op::CollectGarbage => Request::CollectGarbage {
                options: GcOptions::decode(r, n)?,
            },
            Op::QuerySubstitutablePathInfo => {
                Request::QuerySubstitutablePathInfo { path: path(r)? }
            }
            Op::QueryDerivationOutputs => Request::QueryDerivationOutputs { path: path(r)? },
            Op::QueryAllValidPaths => Request::QueryAllValidPaths {},
            Op::QueryFailedPaths => Request::QueryFailedPaths {},
            Op::ClearFailedPaths => Request::ClearFailedPaths {
                paths: StorePath::decode_list(r)?,
            },
            Op::QueryPathInfo => Request::QueryPathInfo { path: path(r)? },
            Op::ImportPaths => Request::ImportPaths {},
            Op::QueryDerivationOutputNames => {
                Request::QueryDerivationOutputNames { path: path(r)? }
            }
            Op::QueryPathFromHashPart => Request::QueryPathFromHashPart {
                hash_part: r.utf8("hash part")?,
            },
            Op::QuerySubstitutablePathInfos => Request::QuerySubstitutablePathInfos {
                paths: if n.at_least(22) {
                    r.list(|r| Ok((StorePath::decode(r)?, ContentAddress::decode_optional(r)?)))?
                } else {
                    r.list(|r| Ok((StorePath::decode(r)?, None)))?
                },
            },
            Op::QueryValidPaths => Request::QueryValidPaths {
                paths: StorePath::decode_list(r)?,
                substitute: if n.at_least(27) { r.bool()? } else { false },
            },
            Op::QuerySubstitutablePaths => Request::QuerySubstitutablePaths {
                paths: StorePath::decode_list(r)?,
            },
            Op::QueryValidDerivers => Request::QueryValidDerivers { path: path(r)? },
            Op::OptimiseStore => Request::OptimiseStore {},
            Op::VerifyStore => Request::VerifyStore {
                check_contents: r.bool()?,
                repair: r.bool()?,
            },
            Op::BuildDerivation => Request::BuildDerivation {
                drv_path: path(r)?,
                derivation: BasicDerivation::decode(r)?,
                mode: BuildMode::decode(r)?,
            },
            Op::AddSignatures => Request::AddSignatures {
                path: path(r)?,
                signatures: r.string_list("signature")?,
            },
            Op::NarFromPath => Request::NarFromPath { path: path(r)? },
            Op::AddToStoreNar => Request::AddToStoreNar {
                info: ValidPathInfo::decode_1_16(r)?,
                repair: r.bool()?,
                dont_check_sigs: r.bool()?,
            },
            Op::QueryMissing => Request::QueryMissing {
                paths: DerivedPath::decode_list(r, n)?,
            },
            Op::QueryDerivationOutputMap => Request::QueryDerivationOutputMap { path: path(r)? },
            Op::RegisterDrvOutput => Request::RegisterDrvOutput {
                realisation: Realisation::decode(r, n)?,
            },
            Op::QueryRealisation => Request::QueryRealisation {
                id: DrvOutput::decode(r, n)?,
            },
            Op::AddMultipleToStore => Request::AddMultipleToStore {
                repair: r.bool()?,
                dont_check_sigs: r.bool()?,
            },
            Op::AddBuildLog => Request::AddBuildLog {
                base_name: r.utf8("derivation base name")?,
            },
            Op::BuildPathsWithResults => Request::BuildPathsWithResults {
                paths: DerivedPath::decode_list(r, n)?,
                mode: BuildMode::decode(r)?,
            },
            Op::AddPermRoot => Request::AddPermRoot {
                path: path(r)?,
                gc_root: ByteString::decode(r)?,
            },
            Op::SubmitOutput => Request::SubmitOutput {
                path: SingleDerivedPath::decode(r)?,
                output: r.utf8("output name")?,
            },
            Op::AddToStoreScanning => Request::AddToStoreScanning {
                name: r.utf8("name")?,
                method: ContentAddressMethodWithAlgo::decode(r)?,
            },
        })
    }

    /// Reads the op word, then the fields (not the upload payload). An op
    /// number no Nix uses is invalid.
    pub fn decode_with_op(r: &mut Reader<'_>, n: &Negotiated) -> ReadResult<Request> {
        let start = r.position();
        let value = r.u64()?;
        match Op::from_wire(value) {
            Some(op) => Request::decode(op, r, n),
            None => Err(r.invalid_at(start, InvalidKind::OutOfRange { field: "op", value })),
        }
    }

    /// Writes the op word, then the fields (not the upload payload).
    ///
    /// Version-dependent fields are written as the negotiated version
    /// lays them out. Fields whose form is held in the value (realisations,
    /// DrvOutputs, GC paths, AddToStore's arguments) are written in the form
    /// held, which must be the connection's.
    pub fn encode(&self, w: &mut Writer, n: &Negotiated) {
        w.u64(self.op().to_wire());
        match self {
            Request::IsValidPath { path }
            | Request::HasSubstitutes { path }
            | Request::QueryPathHash { path }
            | Request::QueryReferences { path }
            | Request::QueryReferrers { path }
            | Request::EnsurePath { path }
            | Request::AddTempRoot { path }
            | Request::QueryDeriver { path }
            | Request::QuerySubstitutablePathInfo { path }
            | Request::QueryDerivationOutputs { path }
            | Request::QueryPathInfo { path }
            | Request::QueryDerivationOutputNames { path }
            | Request::QueryValidDerivers { path }
            | Request::NarFromPath { path }
            | Request::QueryDerivationOutputMap { path } => path.encode(w),
            Request::AddToStore { name, args } => {
                w.string(name);
                match args {
                    AddToStoreArgs::Legacy {
                        fixed,
                        recursive,
                        hash_algo,
                    } => {
                        w.bool(*fixed).bool(*recursive).string(hash_algo);
                    }
                    AddToStoreArgs::Ca {
                        method,
                        references,
                        repair,
                    } => {
                        method.encode(w);
                        StorePath::encode_list(references, w);
                        w.bool(*repair);
                    }
                }
            }
            Request::AddTextToStore {
                name,
                text,
                references,
            } => {
                w.string(name);
                text.encode(w);
                StorePath::encode_list(references, w);
            }
            Request::BuildPaths { paths, mode } => {
                DerivedPath::encode_list(paths, w, n);
                if n.at_least(15) {
                    mode.encode(w);
                }
            }
            Request::AddIndirectRoot { path } => path.encode(w),
            Request::SyncWithGC {}
            | Request::FindRoots {}
            | Request::QueryAllValidPaths {}
            | Request::QueryFailedPaths {}
            | Request::ImportPaths {}
            | Request::OptimiseStore {} => {}
            Request::ExportPath { path, sign } => {
                path.encode(w);
                w.u64(*sign);
            }
            Request::SetOptions { settings } => settings.encode(w, n),
            Request::CollectGarbage { options } => options.encode(w),
            Request::ClearFailedPaths { paths } | Request::QuerySubstitutablePaths { paths } => {
                StorePath::encode_list(paths, w)
            }
            Request::QueryPathFromHashPart { hash_part } => {
                w.string(hash_part);
            }
            Request::QuerySubstitutablePathInfos { paths } => {
                if n.at_least(22) {
                    w.list(paths, |w, (path, ca)| {
                        path.encode(w);
                        ContentAddress::encode_optional(ca.as_ref(), w);
                    });
                } else {
                    w.list(paths, |w, (path, _)| path.encode(w));
                }
            }
            Request::QueryValidPaths { paths, substitute } => {
                StorePath::encode_list(paths, w);
                if n.at_least(27) {
                    w.bool(*substitute);
                }
            }
            Request::VerifyStore {
                check_contents,
                repair,
            } => {
                w.bool(*check_contents).bool(*repair);
            }
            Request::BuildDerivation {
                drv_path,
                derivation,
                mode,
            } => {
                drv_path.encode(w);
                derivation.encode(w);
                mode.encode(w);
            }
            Request::AddSignatures { path, signatures } => {
                path.encode(w);
                w.string_list(signatures);
            }
            Request::AddToStoreNar {
                info,
                repair,
                dont_check_sigs,
            } => {
                info.encode_1_16(w);
                w.bool(*repair).bool(*dont_check_sigs);
            }
            Request::QueryMissing { paths } => DerivedPath::encode_list(paths, w, n),
            Request::RegisterDrvOutput { realisation } => realisation.encode(w),
            Request::QueryRealisation { id } => id.encode(w),
            Request::AddMultipleToStore {
                repair,
                dont_check_sigs,
            } => {
                w.bool(*repair).bool(*dont_check_sigs);
            }
            Request::AddBuildLog { base_name } => {
                w.string(base_name);
            }
            Request::BuildPathsWithResults { paths, mode } => {
                DerivedPath::encode_list(paths, w, n);
                mode.encode(w);
            }
            Request::AddPermRoot { path, gc_root } => {
                path.encode(w);
                gc_root.encode(w);
            }
            Request::SubmitOutput { path, output } => {
                path.encode(w);
                w.string(output);
            }
            Request::AddToStoreScanning { name, method } => {
                w.string(name);
                method.encode(w);
            }
        }
    }

    /// The argument a human would name the request by (a store path, a
    /// derivation, a count of paths…), for one-line displays. `None` for
    /// requests without such an argument.
    pub fn key_argument(&self) -> Option<String> {
        match self {
            Request::IsValidPath { path }
            | Request::HasSubstitutes { path }
            | Request::QueryPathHash { path }
            | Request::QueryReferences { path }
            | Request::QueryReferrers { path }
            | Request::EnsurePath { path }
            | Request::AddTempRoot { path }
            | Request::QueryDeriver { path }
            | Request::QuerySubstitutablePathInfo { path }
            | Request::QueryDerivationOutputs { path }
            | Request::QueryPathInfo { path }
            | Request::QueryDerivationOutputNames { path }
            | Request::QueryValidDerivers { path }
            | Request::NarFromPath { path }
            | Request::QueryDerivationOutputMap { path }
            | Request::ExportPath { path, .. }
            | Request::AddSignatures { path, .. }
            | Request::AddPermRoot { path, .. } => Some(path.to_string()),
            Request::AddToStore { name, .. }
            | Request::AddTextToStore { name, .. }
            | Request::AddToStoreScanning { name, .. } => Some(name.clone()),
            Request::BuildPaths { paths, .. }
            | Request::QueryMissing { paths }
            | Request::BuildPathsWithResults { paths, .. } => Some(one_or_count(paths)),
            Request::AddIndirectRoot { path } => Some(path.to_string()),
            Request::CollectGarbage { options } => Some(format!("{:?}", options.action)),
            Request::ClearFailedPaths { paths }
            | Request::QueryValidPaths { paths, .. }
            | Request::QuerySubstitutablePaths { paths } => Some(one_or_count(paths)),
            Request::QuerySubstitutablePathInfos { paths } => {
                let only: Vec<&StorePath> = paths.iter().map(|(p, _)| p).collect();
                Some(one_or_count(&only))
            }
            Request::QueryPathFromHashPart { hash_part } => Some(hash_part.clone()),
            Request::BuildDerivation { drv_path, .. } => Some(drv_path.to_string()),
            Request::AddToStoreNar { info, .. } => Some(info.path.to_string()),
            Request::RegisterDrvOutput { realisation } => Some(realisation.id_text()),
            Request::QueryRealisation { id } => Some(id.to_string()),
            Request::AddBuildLog { base_name } => Some(base_name.clone()),
            Request::SubmitOutput { path, output } => Some(format!("{path} as {output}")),
            Request::SyncWithGC {}
            | Request::FindRoots {}
            | Request::SetOptions { .. }
            | Request::QueryAllValidPaths {}
            | Request::QueryFailedPaths {}
            | Request::ImportPaths {}
            | Request::OptimiseStore {}
            | Request::VerifyStore { .. }
            | Request::AddMultipleToStore { .. } => None,
        }
    }
}

/// A reply: the fields after STDERR_LAST, per op and version.
///
/// Ops that answer with a constant `u64 1` keep the number as `result`, so
/// that re-encoding is exact. Ops with no reply fields have empty
/// variants; NarFromPath's NAR is streamed by the session decoder and is
/// not part of its variant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op")]
pub enum Reply {
    /// Op 1: `u64 bool`.
    IsValidPath {
        /// Whether the path is valid.
        valid: bool,
    },
    /// Op 3: `u64 bool`.
    HasSubstitutes {
        /// Whether the path has substitutes.
        #[serde(rename = "hasSubstitutes")]
        has_substitutes: bool,
    },
    /// Op 4: `str` base16 NAR hash.
    QueryPathHash {
        /// The hash.
        hash: String,
    },
    /// Op 5: `{path}`.
    QueryReferences {
        /// The references.
        paths: Vec<StorePath>,
    },
    /// Op 6: `{path}`.
    QueryReferrers {
        /// The referrers.
        paths: Vec<StorePath>,
    },
    /// Op 7: below 1.25 the new path; from 1.25 a ValidPathInfo.
    AddToStore {
        /// The new path.
        path: StorePath,
        /// Its metadata (≥ 1.25 only).
        info: Option<UnkeyedValidPathInfo>,
    },
    /// Op 8: the new path.
    AddTextToStore {
        /// The new path.
        path: StorePath,
    },
    /// Op 9: `u64 1`.
    BuildPaths {
        /// The constant 1.
        result: u64,
    },
    /// Op 10: `u64 1`.
    EnsurePath {
        /// The constant 1.
        result: u64,
    },
    /// Op 11: `u64 1`.
    AddTempRoot {
        /// The constant 1.
        result: u64,
    },
    /// Op 12: `u64 1`.
    AddIndirectRoot {
        /// The constant 1.
        result: u64,
    },
    /// Op 13: `u64 1`.
    SyncWithGC {
        /// The constant 1.
        result: u64,
    },
    /// Op 14: `u64 n`, then n × (`str` link, path target).
    FindRoots {
        /// Link and the store path it keeps alive, in the order sent.
        roots: Vec<(ByteString, StorePath)>,
    },
    /// Op 16: `u64 1` (the export record travels in STDERR_WRITE).
    ExportPath {
        /// The constant 1.
        result: u64,
    },
    /// Op 18: optional path.
    QueryDeriver {
        /// The deriver, if known.
        deriver: Option<StorePath>,
    },
    /// Op 19: nothing.
    SetOptions {},
    /// Op 20: `{str} paths, u64 bytesFreed, u64 0`.
    CollectGarbage {
        /// The paths deleted or listed.
        paths: Vec<String>,
        /// Bytes freed.
        #[serde(rename = "bytesFreed")]
        bytes_freed: u64,
        /// The obsolete trailing field.
        obsolete: u64,
    },
    /// Op 21: `u64 found`, then the info if found.
    QuerySubstitutablePathInfo {
        /// The info, if a substituter has the path.
        info: Option<SubstitutablePathInfo>,
    },
    /// Op 22: `{path}`.
    QueryDerivationOutputs {
        /// The output paths.
        paths: Vec<StorePath>,
    },
    /// Op 23: `{path}`.
    QueryAllValidPaths {
        /// Every valid path.
        paths: Vec<StorePath>,
    },
    /// Op 24 (1.x layout): `{path}`.
    QueryFailedPaths {
        /// The failed paths.
        paths: Vec<StorePath>,
    },
    /// Op 25 (1.x layout): `u64 1`.
    ClearFailedPaths {
        /// The constant 1.
        result: u64,
    },
    /// Op 26: at ≥ 1.17 `u64 valid` then the info if valid; below 1.17
    /// the info (an invalid path is an error there).
    QueryPathInfo {
        /// The metadata, if the path is valid.
        info: Option<UnkeyedValidPathInfo>,
    },
    /// Op 27: `[str]` imported paths.
    ImportPaths {
        /// The imported paths.
        paths: Vec<StorePath>,
    },
    /// Op 28: `{str}` output names.
    QueryDerivationOutputNames {
        /// The names.
        names: Vec<String>,
    },
    /// Op 29: optional path.
    QueryPathFromHashPart {
        /// The path, if one has that hash part.
        path: Option<StorePath>,
    },
    /// Op 30: `u64 n`, then n × (path, SubstitutablePathInfo).
    QuerySubstitutablePathInfos {
        /// The infos found, in the order sent.
        infos: Vec<(StorePath, SubstitutablePathInfo)>,
    },
    /// Op 31: `{path}`.
    QueryValidPaths {
        /// The valid paths.
        paths: Vec<StorePath>,
    },
    /// Op 32: `{path}`.
    QuerySubstitutablePaths {
        /// The paths that have substitutes.
        paths: Vec<StorePath>,
    },
    /// Op 33: `{path}`.
    QueryValidDerivers {
        /// The derivers.
        paths: Vec<StorePath>,
    },
    /// Op 34: `u64 1`.
    OptimiseStore {
        /// The constant 1.
        result: u64,
    },
    /// Op 35: `u64 errorsFound`.
    VerifyStore {
        /// Whether errors were found.
        #[serde(rename = "errorsFound")]
        errors_found: bool,
    },
    /// Op 36: a BuildResult.
    BuildDerivation {
        /// The result.
        result: BuildResult,
    },
    /// Op 37: `u64 1`.
    AddSignatures {
        /// The constant 1.
        result: u64,
    },
    /// Op 38: nothing here; the NAR follows STDERR_LAST.
    NarFromPath {},
    /// Op 39: nothing.
    AddToStoreNar {},
    /// Op 40: three path sets and two sizes.
    QueryMissing {
        /// Derivations that would be built.
        #[serde(rename = "willBuild")]
        will_build: Vec<StorePath>,
        /// Paths that would be substituted.
        #[serde(rename = "willSubstitute")]
        will_substitute: Vec<StorePath>,
        /// Paths whose status is unknown.
        unknown: Vec<StorePath>,
        /// Total download size.
        #[serde(rename = "downloadSize")]
        download_size: u64,
        /// Total NAR size.
        #[serde(rename = "narSize")]
        nar_size: u64,
    },
    /// Op 41: `map<str, optional path>`.
    QueryDerivationOutputMap {
        /// Output names and their paths, if known, in the order sent.
        outputs: Vec<(String, Option<StorePath>)>,
    },
    /// Op 42: nothing.
    RegisterDrvOutput {},
    /// Op 43: one of three forms.
    QueryRealisation {
        /// What was found.
        result: RealisationQueryResult,
    },
    /// Op 44: nothing.
    AddMultipleToStore {},
    /// Op 45: `u64 1`.
    AddBuildLog {
        /// The constant 1.
        result: u64,
    },
    /// Op 46: `[KeyedBuildResult]`.
    BuildPathsWithResults {
        /// One result per derived path.
        results: Vec<KeyedBuildResult>,
    },
    /// Op 47: `str` the absolute GC root.
    AddPermRoot {
        /// The root created.
        #[serde(rename = "gcRoot")]
        gc_root: ByteString,
    },
    /// Op 1000: `u64 1`.
    SubmitOutput {
        /// The constant 1.
        result: u64,
    },
    /// Op 1001: a ValidPathInfo.
    AddToStoreScanning {
        /// The new path and its metadata.
        info: ValidPathInfo,
    },
}

impl Reply {
    /// The reply's op.
    pub fn op(&self) -> Op {
        match self {
            Reply::IsValidPath { .. } => Op::IsValidPath,
            Reply::HasSubstitutes { .. } => Op::HasSubstitutes,
            Reply::QueryPathHash { .. } => Op::QueryPathHash,
            Reply::QueryReferences { .. } => Op::QueryReferences,
            Reply::QueryReferrers { .. } => Op::QueryReferrers,
            Reply::AddToStore { .. } => Op::AddToStore,
            Reply::AddTextToStore { .. } => Op::AddTextToStore,
            Reply::BuildPaths { .. } => Op::BuildPaths,
            Reply::EnsurePath { .. } => Op::EnsurePath,
            Reply::AddTempRoot { .. } => Op::AddTempRoot,
            Reply::AddIndirectRoot { .. } => Op::AddIndirectRoot,
            Reply::SyncWithGC { .. } => Op::SyncWithGC,
            Reply::FindRoots { .. } => Op::FindRoots,
            Reply::ExportPath { .. } => Op::ExportPath,
            Reply::QueryDeriver { .. } => Op::QueryDeriver,
            Reply::SetOptions {} => Op::SetOptions,
            Reply::CollectGarbage { .. } => Op::CollectGarbage,
            Reply::QuerySubstitutablePathInfo { .. } => Op::QuerySubstitutablePathInfo,
            Reply::QueryDerivationOutputs { .. } => Op::QueryDerivationOutputs,
            Reply::QueryAllValidPaths { .. } => Op::QueryAllValidPaths,
            Reply::QueryFailedPaths { .. } => Op::QueryFailedPaths,
            Reply::ClearFailedPaths { .. } => Op::ClearFailedPaths,
            Reply::QueryPathInfo { .. } => Op::QueryPathInfo,
            Reply::ImportPaths { .. } => Op::ImportPaths,
            Reply::QueryDerivationOutputNames { .. } => Op::QueryDerivationOutputNames,
            Reply::QueryPathFromHashPart { .. } => Op::QueryPathFromHashPart,
            Reply::QuerySubstitutablePathInfos { .. } => Op::QuerySubstitutablePathInfos,
            Reply::QueryValidPaths { .. } => Op::QueryValidPaths,
            Reply::QuerySubstitutablePaths { .. } => Op::QuerySubstitutablePaths,
            Reply::QueryValidDerivers { .. } => Op::QueryValidDerivers,
            Reply::OptimiseStore { .. } => Op::OptimiseStore,
            Reply::VerifyStore { .. } => Op::VerifyStore,
            Reply::BuildDerivation { .. } => Op::BuildDerivation,
            Reply::AddSignatures { .. } => Op::AddSignatures,
            Reply::NarFromPath {} => Op::NarFromPath,
            Reply::AddToStoreNar {} => Op::AddToStoreNar,
            Reply::QueryMissing { .. } => Op::QueryMissing,
            Reply::QueryDerivationOutputMap { .. } => Op::QueryDerivationOutputMap,
            Reply::RegisterDrvOutput {} => Op::RegisterDrvOutput,
            Reply::QueryRealisation { .. } => Op::QueryRealisation,
            Reply::AddMultipleToStore {} => Op::AddMultipleToStore,
            Reply::AddBuildLog { .. } => Op::AddBuildLog,
            Reply::BuildPathsWithResults { .. } => Op::BuildPathsWithResults,
            Reply::AddPermRoot { .. } => Op::AddPermRoot,
            Reply::SubmitOutput { .. } => Op::SubmitOutput,
            Reply::AddToStoreScanning { .. } => Op::AddToStoreScanning,
        }
    }

    /// Decodes the fields after STDERR_LAST.
    pub fn decode(op: Op, r: &mut Reader<'_>, n: &Negotiated) -> ReadResult<Reply> {
        let paths = |r: &mut Reader<'_>| StorePath::decode_list(r);
        Ok(match op {
            Op::IsValidPath => Reply::IsValidPath { valid: r.bool()? },
            Op::HasSubstitutes => Reply::HasSubstitutes {
                has_substitutes: r.bool()?,
            },
            Op::QueryPathHash => Reply::QueryPathHash {
                hash: r.utf8("hash")?,
            },
            Op::QueryReferences => Reply::QueryReferences { paths: paths(r)? },
            Op::QueryReferrers => Reply::QueryReferrers { paths: paths(r)? },
            Op::AddToStore => {
                let path = StorePath::decode(r)?;
                let info = if n.at_least(25) {
                    Some(UnkeyedValidPathInfo::decode(r, n)?)
                } else {
                    None
                };
                Reply::AddToStore { path, info }
            }
            Op::AddTextToStore => Reply::AddTextToStore {
                path: StorePath::decode(r)?,
            },
            Op::BuildPaths => Reply::BuildPaths { result: r.u64()? },
            Op::EnsurePath => Reply::EnsurePath { result: r.u64()? },
            Op::AddTempRoot => Reply::AddTempRoot { result: r.u64()? },
            Op::AddIndirectRoot => Reply::AddIndirectRoot { result: r.u64()? },
            Op::SyncWithGC => Reply::SyncWithGC { result: r.u64()? },
            Op::FindRoots => Reply::FindRoots {
                roots: r.list(|r| Ok((ByteString::decode(r)?, StorePath::decode(r)?)))?,
            },
            Op::ExportPath => Reply::ExportPath { result: r.u64()? },
            Op::QueryDeriver => Reply::QueryDeriver {
                deriver: StorePath::decode_optional(r)?,
            },
            Op::SetOptions => Reply::SetOptions {},
            Op::CollectGarbage => Reply::CollectGarbage {
                paths: r.string_list("path")?,
                bytes_freed: r.u64()?,
                obsolete: r.u64()?,
            },
            Op::QuerySubstitutablePathInfo => Reply::QuerySubstitutablePathInfo {
                info: if r.bool()? {
                    Some(SubstitutablePathInfo::decode(r)?)
                } else {
                    None
                },
            },
            Op::QueryDerivationOutputs => Reply::QueryDerivationOutputs { paths: paths(r)? },
            Op::QueryAllValidPaths => Reply::QueryAllValidPaths { paths: paths(r)? },
            Op::QueryFailedPaths => Reply::QueryFailedPaths { paths: paths(r)? },
            Op::ClearFailedPaths => Reply::ClearFailedPaths { result: r.u64()? },
            Op::QueryPathInfo => Reply::QueryPathInfo {
                info: if !n.at_least(17) || r.bool()? {
                    Some(UnkeyedValidPathInfo::decode(r, n)?)
                } else {
                    None
                },
            },
            Op::ImportPaths => Reply::ImportPaths { paths: paths(r)? },
            Op::QueryDerivationOutputNames => Reply::QueryDerivationOutputNames {
                names: r.string_list("output name")?,
            },
            Op::QueryPathFromHashPart => Reply::QueryPathFromHashPart {
                path: StorePath::decode_optional(r)?,
            },
            Op::QuerySubstitutablePathInfos => Reply::QuerySubstitutablePathInfos {
                infos: r
                    .list(|r| Ok((StorePath::decode(r)?, SubstitutablePathInfo::decode(r)?)))?,
            },
            Op::QueryValidPaths => Reply::QueryValidPaths { paths: paths(r)? },
            Op::QuerySubstitutablePaths => Reply::QuerySubstitutablePaths { paths: paths(r)? },
            Op::QueryValidDerivers => Reply::QueryValidDerivers { paths: paths(r)? },
            Op::OptimiseStore => Reply::OptimiseStore { result: r.u64()? },
            Op::VerifyStore => Reply::VerifyStore {
                errors_found: r.bool()?,
            },
            Op::BuildDerivation => Reply::BuildDerivation {
                result: BuildResult::decode(r, n)?,
            },
            Op::AddSignatures => Reply::AddSignatures { result: r.u64()? },
            Op::NarFromPath => Reply::NarFromPath {},
            Op::AddToStoreNar => Reply::AddToStoreNar {},
            Op::QueryMissing => Reply::QueryMissing {
                will_build: paths(r)?,
                will_substitute: paths(r)?,
                unknown: paths(r)?,
                download_size: r.u64()?,
                nar_size: r.u64()?,
            },
            Op::QueryDerivationOutputMap => Reply::QueryDerivationOutputMap {
                outputs: r
                    .list(|r| Ok((r.utf8("output name")?, StorePath::decode_optional(r)?)))?,
            },
            Op::RegisterDrvOutput => Reply::RegisterDrvOutput {},
            Op::QueryRealisation => Reply::QueryRealisation {
                result: RealisationQueryResult::decode(r, n)?,
            },
            Op::AddMultipleToStore => Reply::AddMultipleToStore {},
            Op::AddBuildLog => Reply::AddBuildLog { result: r.u64()? },
            Op::BuildPathsWithResults => Reply::BuildPathsWithResults {
                results: r.list(|r| KeyedBuildResult::decode(r, n))?,
            },
            Op::AddPermRoot => Reply::AddPermRoot {
                gc_root: ByteString::decode(r)?,
            },
            Op::SubmitOutput => Reply::SubmitOutput { result: r.u64()? },
            Op::AddToStoreScanning => Reply::AddToStoreScanning {
                info: ValidPathInfo::decode(r, n)?,
            },
        })
    }

    /// Writes the fields after STDERR_LAST.
    ///
    /// A QueryPathInfo reply without info below 1.17, and an AddToStore
    /// reply without info at ≥ 1.25, cannot be expressed; the first writes
    /// nothing (the daemon sends an error instead), the second writes
    /// empty metadata.
    pub fn encode(&self, w: &mut Writer, n: &Negotiated) {
        match self {
            Reply::IsValidPath { valid: flag }
            | Reply::HasSubstitutes {
                has_substitutes: flag,
            }
            | Reply::VerifyStore { errors_found: flag } => {
                w.bool(*flag);
            }
            Reply::QueryPathHash { hash } => {
                w.string(hash);
            }
            Reply::QueryReferences { paths }
            | Reply::QueryReferrers { paths }
            | Reply::QueryDerivationOutputs { paths }
            | Reply::QueryAllValidPaths { paths }
            | Reply::QueryFailedPaths { paths }
            | Reply::ImportPaths { paths }
            | Reply::QueryValidPaths { paths }
            | Reply::QuerySubstitutablePaths { paths }
            | Reply::QueryValidDerivers { paths } => StorePath::encode_list(paths, w),
            Reply::AddToStore { path, info } => {
                path.encode(w);
                if n.at_least(25) {
                    match info {
                        Some(info) => info.encode(w, n),
                        None => empty_path_info().encode(w, n),
                    }
                }
            }
            Reply::AddTextToStore { path } => path.encode(w),
            Reply::BuildPaths { result }
            | Reply::EnsurePath { result }
            | Reply::AddTempRoot { result }
            | Reply::AddIndirectRoot { result }
            | Reply::SyncWithGC { result }
            | Reply::ExportPath { result }
            | Reply::ClearFailedPaths { result }
            | Reply::OptimiseStore { result }
            | Reply::AddSignatures { result }
            | Reply::AddBuildLog { result }
            | Reply::SubmitOutput { result } => {
                w.u64(*result);
            }
            Reply::FindRoots { roots } => {
                w.list(roots, |w, (link, target)| {
                    link.encode(w);
                    target.encode(w);
                });
            }
            Reply::QueryDeriver { deriver } => StorePath::encode_optional(deriver.as_ref(), w),
            Reply::SetOptions {}
            | Reply::NarFromPath {}
            | Reply::AddToStoreNar {}
            | Reply::RegisterDrvOutput {}
            | Reply::AddMultipleToStore {} => {}
            Reply::CollectGarbage {
                paths,
                bytes_freed,
                obsolete,
            } => {
                w.string_list(paths).u64(*bytes_freed).u64(*obsolete);
            }
            Reply::QuerySubstitutablePathInfo { info } => match info {
                Some(info) => {
                    w.bool(true);
                    info.encode(w);
                }
                None => {
                    w.bool(false);
                }
            },
            Reply::QueryPathInfo { info } => {
                if n.at_least(17) {
                    w.bool(info.is_some());
                }
                if let Some(info) = info {
                    info.encode(w, n);
                }
            }
            Reply::QueryDerivationOutputNames { names } => {
                w.string_list(names);
            }
            Reply::QueryPathFromHashPart { path } => StorePath::encode_optional(path.as_ref(), w),
            Reply::QuerySubstitutablePathInfos { infos } => {
                w.list(infos, |w, (path, info)| {
                    path.encode(w);
                    info.encode(w);
                });
            }
            Reply::BuildDerivation { result } => result.encode(w, n),
            Reply::QueryMissing {
                will_build,
                will_substitute,
                unknown,
                download_size,
                nar_size,
            } => {
                StorePath::encode_list(will_build, w);
                StorePath::encode_list(will_substitute, w);
                StorePath::encode_list(unknown, w);
                w.u64(*download_size).u64(*nar_size);
            }
            Reply::QueryDerivationOutputMap { outputs } => {
                w.list(outputs, |w, (name, path)| {
                    w.string(name);
                    StorePath::encode_optional(path.as_ref(), w);
                });
            }
            Reply::QueryRealisation { result } => result.encode(w),
            Reply::BuildPathsWithResults { results } => {
                w.list(results, |w, r| r.encode(w, n));
            }
            Reply::AddPermRoot { gc_root } => gc_root.encode(w),
            Reply::AddToStoreScanning { info } => info.encode(w, n),
        }
    }

    /// A short human summary for one-line displays, such as
    /// `valid, narSize 1234`, `3 paths` or `ok`.
    pub fn summary(&self) -> String {
        let ok = |result: u64| {
            if result == 1 {
                "ok".to_owned()
            } else {
                format!("result {result}")
            }
        };
        match self {
            Reply::IsValidPath { valid } => if *valid { "valid" } else { "invalid" }.to_owned(),
            Reply::HasSubstitutes { has_substitutes } => if *has_substitutes {
                "has substitutes"
            } else {
                "no substitutes"
            }
            .to_owned(),
            Reply::QueryPathHash { hash } => hash.clone(),
            Reply::QueryReferences { paths }
            | Reply::QueryReferrers { paths }
            | Reply::QueryDerivationOutputs { paths }
            | Reply::QueryAllValidPaths { paths }
            | Reply::QueryFailedPaths { paths }
            | Reply::ImportPaths { paths }
            | Reply::QueryValidPaths { paths }
            | Reply::QuerySubstitutablePaths { paths }
            | Reply::QueryValidDerivers { paths } => plural(paths.len(), "path"),
            Reply::AddToStore { path, info } => match info {
                Some(info) => format!("{path}, narSize {}", info.nar_size),
                None => path.to_string(),
            },
            Reply::AddTextToStore { path } => path.to_string(),
            Reply::BuildPaths { result }
            | Reply::EnsurePath { result }
            | Reply::AddTempRoot { result }
            | Reply::AddIndirectRoot { result }
            | Reply::SyncWithGC { result }
            | Reply::ExportPath { result }
            | Reply::ClearFailedPaths { result }
            | Reply::OptimiseStore { result }
            | Reply::AddSignatures { result }
            | Reply::AddBuildLog { result }
            | Reply::SubmitOutput { result } => ok(*result),
            Reply::FindRoots { roots } => plural(roots.len(), "root"),
            Reply::QueryDeriver { deriver } | Reply::QueryPathFromHashPart { path: deriver } => {
                match deriver {
                    Some(path) => path.to_string(),
                    None => "none".to_owned(),
                }
            }
            Reply::SetOptions {}
            | Reply::NarFromPath {}
            | Reply::AddToStoreNar {}
            | Reply::RegisterDrvOutput {}
            | Reply::AddMultipleToStore {} => "ok".to_owned(),
            Reply::CollectGarbage {
                paths, bytes_freed, ..
            } => format!("{}, {bytes_freed} bytes freed", plural(paths.len(), "path")),
            Reply::QuerySubstitutablePathInfo { info } => match info {
                Some(info) => format!("substitutable, narSize {}", info.nar_size),
                None => "not substitutable".to_owned(),
            },
            Reply::QueryPathInfo { info } => match info {
                Some(info) => format!("valid, narSize {}", info.nar_size),
                None => "invalid".to_owned(),
            },
            Reply::QueryDerivationOutputNames { names } => names.join(","),
            Reply::QuerySubstitutablePathInfos { infos } => plural(infos.len(), "info"),
            Reply::VerifyStore { errors_found } => if *errors_found {
                "errors found"
            } else {
                "no errors"
            }
            .to_owned(),
            Reply::BuildDerivation { result } => build_result_summary(result),
            Reply::QueryMissing {
                will_build,
                will_substitute,
                unknown,
                ..
            } => format!(
                "willBuild {}, willSubstitute {}, unknown {}",
                will_build.len(),
                will_substitute.len(),
                unknown.len()
            ),
            Reply::QueryDerivationOutputMap { outputs } => plural(outputs.len(), "output"),
            Reply::QueryRealisation { result } => if result.is_empty() {
                "not found"
            } else {
                "found"
            }
            .to_owned(),
            Reply::BuildPathsWithResults { results } => {
                let failed = results
                    .iter()
                    .filter(|r| !r.result.status.is_success())
                    .count();
                format!("{}, {failed} failed", plural(results.len(), "result"))
            }
            Reply::AddPermRoot { gc_root } => gc_root.to_string(),
            Reply::AddToStoreScanning { info } => {
                format!("{}, narSize {}", info.path, info.info.nar_size)
            }
        }
    }
}

/// A path info with every field empty, written where a reply must carry
/// one but the value has none.
fn empty_path_info() -> UnkeyedValidPathInfo {
    UnkeyedValidPathInfo {
        deriver: None,
        nar_hash: String::new(),
        references: Vec::new(),
        registration_time: 0,
        nar_size: 0,
        ultimate: false,
        sigs: Vec::new(),
        ca: None,
    }
}

/// `Built`, or `PermanentFailure: <first line of the message>`.
fn build_result_summary(result: &BuildResult) -> String {
    let message = result.error_msg.to_string_lossy();
    match message.lines().next() {
        Some(first) if !first.is_empty() => format!("{}: {first}", result.status),
        _ => result.status.to_string(),
    }
}

#[cfg(test)]
mod tests;
