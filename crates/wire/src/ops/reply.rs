//! Replies: the fields after STDERR_LAST, per op and version (§7).

use serde::{Deserialize, Serialize};

use crate::bytes::ByteString;
use crate::primitives::{ReadResult, Reader, Writer};
use crate::types::{
    BuildResult, KeyedBuildResult, RealisationQueryResult, StorePath, SubstitutablePathInfo,
    UnkeyedValidPathInfo, ValidPathInfo,
};
use crate::version::Negotiated;

use super::op::{op_table, Op};

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

/// Defines `Reply::op` from the rows of the op table: every op's reply
/// variant has the op's name.
macro_rules! reply_op {
    ($(
        $(#[doc = $doc:literal])*
        $name:ident = $number:literal $(, upload($arg:pat) => $upload:expr)?;
    )*) => {
        impl Reply {
            /// The reply's op.
            pub fn op(&self) -> Op {
                match self {
                    $(Reply::$name { .. } => Op::$name,)*
                }
            }
        }
    };
}

op_table!(reply_op);

impl Reply {
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
