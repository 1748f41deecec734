//! Requests: the fields after the op word, per op and version (§7).

use serde::{Deserialize, Serialize};

use crate::bytes::ByteString;
use crate::primitives::{InvalidKind, ReadResult, Reader, Writer};
use crate::types::{
    BasicDerivation, BuildMode, ClientSettings, ContentAddress, ContentAddressMethodWithAlgo,
    DerivedPath, DrvOutput, GcOptions, Realisation, SingleDerivedPath, StorePath, ValidPathInfo,
};
use crate::version::Negotiated;

use super::op::{op_table, Op};

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

/// Defines `Request::op` from the rows of the op table: every op's request
/// variant has the op's name.
macro_rules! request_op {
    ($(
        $(#[doc = $doc:literal])*
        $name:ident = $number:literal $(, upload($arg:pat) => $upload:expr)?;
    )*) => {
        impl Request {
            /// The request's op.
            pub fn op(&self) -> Op {
                match self {
                    $(Request::$name { .. } => Op::$name,)*
                }
            }
        }
    };
}

op_table!(request_op);

impl Request {
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
}
