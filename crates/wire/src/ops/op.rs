//! The op table: every operation's number and name (§7.1), and what the
//! client sends after a request's fixed fields (§8).

use serde::{Deserialize, Serialize};

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
