//! Translation between protocol versions: a request, reply, log message or
//! error decoded at one negotiation, re-expressed for a peer of another
//! (protocol minors 1.10 to 1.38, with or without the 1.38 features).
//!
//! Every change is listed as a [`Translation`]: a field the target version
//! does not carry is dropped, a field it carries but the source did not is
//! filled in, a value whose form differs is converted, and an op the target
//! has no use for is mapped onto the op Nix's own compatibility code uses.
//! What cannot be expressed at the target is [`Untranslatable`], with the
//! reason, rather than guessed.
//!
//! The values filled in are the ones a real Nix peer of the target version
//! holds or sends when the other side is of the source version:
//!
//! - `BuildResult` (§3.4): `timesBuilt` 0, `isNonDeterministic` false,
//!   `startTime`/`stopTime` 0 (below 1.29 the client keeps its defaults),
//!   `cpuUser`/`cpuSystem` absent (below 1.37, and what a daemon sends
//!   when it measured nothing), `builtOutputs` empty (below 1.28).
//! - path infos (§3.1): `ultimate` false, `sigs` empty, `ca` none below
//!   1.16.
//! - `QueryValidPaths.substitute` false below 1.27 (the daemon then does not
//!   substitute), `BuildPaths.mode` Normal below 1.15, SetOptions'
//!   overrides empty below 1.12, QuerySubstitutablePathInfos' content
//!   addresses none below 1.22.
//! - errors: a legacy error (below 1.26) becomes a structured one of level
//!   0 (error) and name `Error`, as 2.x daemons send; a structured error
//!   becomes a legacy one with exit status 1 (`Error`'s default status) and
//!   the traces appended to the message.
//! - activity messages below 1.20: a daemon's logger turns the start of an
//!   activity with text into a `STDERR_NEXT` of `<text>...` (when the
//!   activity's level is within the client's verbosity) and sends nothing
//!   for its results and its end.
//!
//! The ops mapped, as `RemoteStore` does for an older daemon:
//! `BuildPathsWithResults` becomes `BuildPaths` below 1.34, and AddToStore's
//! legacy arguments (below 1.25) and its content-address form convert into
//! each other where both can say the same thing.

use serde::Serialize;

use crate::bytes::ByteString;
use crate::handshake::{DaemonNixVersion, Trust};
use crate::ops::{AddToStoreArgs, Reply, Request};
use crate::primitives::Writer;
use crate::stderr::{ErrorInfo, StderrMessage};
use crate::types::{
    BuildMode, BuildResult, BuiltOutputs, ContentAddressMethodWithAlgo, DerivedPath, GcAction,
    GcPaths, KeyedBuildResult, Realisation, RealisationJson, RealisationQueryResult, StorePath,
    UnkeyedValidPathInfo,
};
use crate::version::{feature, Negotiated};

/// What happened to one field or op.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// The target does not carry the field; its value was dropped.
    Dropped,
    /// The target carries a field the source did not; it was filled in.
    Filled,
    /// The same value in another wire form.
    Converted,
    /// The op was replaced by the one the target version uses.
    Mapped,
}

/// One change made by a translation.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Translation {
    /// The op (`BuildPathsWithResults`), or `STDERR_ERROR`, `STDERR_START_ACTIVITY`…
    pub subject: String,
    /// The field, such as `cpuUser`, or `op` for a mapped op.
    pub field: String,
    /// What was done.
    pub action: Action,
    /// Why, and the value filled in or dropped.
    pub detail: String,
}

impl std::fmt::Display for Translation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let action = match self.action {
            Action::Dropped => "dropped",
            Action::Filled => "filled in",
            Action::Converted => "converted",
            Action::Mapped => "mapped",
        };
        write!(
            f,
            "{} {}: {action} ({})",
            self.subject, self.field, self.detail
        )
    }
}

/// A value translated, with the changes made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Translated<T> {
    /// The value for the target version.
    pub value: T,
    /// The changes, in the order made.
    pub notes: Vec<Translation>,
}

/// A value the target version cannot express.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize)]
#[error("{subject} cannot be expressed at protocol {target}: {reason}")]
#[serde(rename_all = "camelCase")]
pub struct Untranslatable {
    /// The op or message.
    pub subject: String,
    /// The target protocol version, such as `1.34`.
    pub target: String,
    /// Why not.
    pub reason: String,
}

/// What a recorded reply becomes at the target version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyOutcome {
    /// A reply, after `STDERR_LAST`.
    Reply(Reply),
    /// An error instead of `STDERR_LAST` and the reply: below 1.17 an
    /// invalid path's QueryPathInfo is an error (`path '…' is not valid`).
    Error(ErrorInfo),
}

/// Collects notes for one subject.
struct Notes {
    subject: String,
    target: String,
    notes: Vec<Translation>,
}

impl Notes {
    fn new(subject: &str, to: &Negotiated) -> Notes {
        Notes {
            subject: subject.to_owned(),
            target: to.version.to_string(),
            notes: Vec::new(),
        }
    }

    fn add(&mut self, field: &str, action: Action, detail: impl Into<String>) {
        self.notes.push(Translation {
            subject: self.subject.clone(),
            field: field.to_owned(),
            action,
            detail: detail.into(),
        });
    }

    fn refuse(&self, reason: impl Into<String>) -> Untranslatable {
        Untranslatable {
            subject: self.subject.clone(),
            target: self.target.clone(),
            reason: reason.into(),
        }
    }

    /// A field that exists from `minor` on: dropped or filled (with
    /// `filled`) when one side is below it. `differs` says whether the
    /// value is other than the default, for a dropped field.
    fn field_since(
        &mut self,
        field: &str,
        minor: u8,
        from: &Negotiated,
        to: &Negotiated,
        differs: bool,
        filled: &str,
    ) {
        match (from.at_least(minor), to.at_least(minor)) {
            (true, false) if differs => self.add(
                field,
                Action::Dropped,
                format!("added in protocol 1.{minor}; not sent at {}", to.version),
            ),
            (false, true) => self.add(
                field,
                Action::Filled,
                format!(
                    "added in protocol 1.{minor}; {} did not send it, so it is {filled}",
                    from.version
                ),
            ),
            _ => {}
        }
    }

    fn done<T>(self, value: T) -> Translated<T> {
        Translated {
            value,
            notes: self.notes,
        }
    }
}

fn realisation_feature(n: &Negotiated) -> bool {
    n.has(feature::REALISATION_WITH_PATH_NOT_HASH)
}

/// Translates a request decoded at `from` into the form `to` uses.
///
/// Use it to send a recorded request to a daemon of another version, or to
/// compare a live request with recorded ones in one form.
pub fn request(
    request: &Request,
    from: &Negotiated,
    to: &Negotiated,
) -> Result<Translated<Request>, Untranslatable> {
    let mut notes = Notes::new(request.op().name(), to);
    let value = match request {
        Request::AddMultipleToStore { .. } if !to.at_least(32) => {
            return Err(notes.refuse(
                "AddMultipleToStore exists from protocol 1.32; older daemons get one \
                 AddToStoreNar per path, made from the upload",
            ));
        }
        Request::AddBuildLog { .. } if !to.at_least(32) => {
            return Err(notes.refuse("AddBuildLog exists from protocol 1.32"));
        }
        Request::AddPermRoot { .. } if !to.at_least(36) => {
            return Err(notes.refuse("AddPermRoot exists from protocol 1.36"));
        }
        Request::QueryRealisation { .. } | Request::RegisterDrvOutput { .. }
            if !to.at_least(27) =>
        {
            return Err(notes.refuse("realisations exist from protocol 1.27"));
        }
        Request::BuildPathsWithResults { paths, mode } if !to.at_least(34) => {
            notes.add(
                "op",
                Action::Mapped,
                "BuildPathsWithResults exists from protocol 1.34; Nix sends BuildPaths to older \
                 daemons and makes the results itself",
            );
            let paths = derived_paths(paths, to, &notes)?;
            let mode = build_mode(*mode, to, &mut notes)?;
            Request::BuildPaths { paths, mode }
        }
        Request::BuildPaths { paths, mode } => Request::BuildPaths {
            paths: derived_paths(paths, to, &notes)?,
            mode: build_mode(*mode, to, &mut notes)?,
        },
        Request::BuildPathsWithResults { paths, mode } => Request::BuildPathsWithResults {
            paths: derived_paths(paths, to, &notes)?,
            mode: *mode,
        },
        Request::QueryMissing { paths } => Request::QueryMissing {
            paths: derived_paths(paths, to, &notes)?,
        },
        Request::QueryValidPaths { paths, substitute } => {
            notes.field_since("substitute", 27, from, to, *substitute, "false");
            Request::QueryValidPaths {
                paths: paths.clone(),
                substitute: *substitute && to.at_least(27),
            }
        }
        Request::SetOptions { settings } => {
            let mut settings = settings.clone();
            notes.field_since(
                "overrides",
                12,
                from,
                to,
                !settings.overrides.is_empty(),
                "empty",
            );
            if !to.at_least(12) {
                settings.overrides.clear();
            }
            Request::SetOptions { settings }
        }
        Request::QuerySubstitutablePathInfos { paths } => {
            let any = paths.iter().any(|(_, ca)| ca.is_some());
            notes.field_since("ca", 22, from, to, any, "none");
            let paths = if to.at_least(22) {
                paths.clone()
            } else {
                paths.iter().map(|(p, _)| (p.clone(), None)).collect()
            };
            Request::QuerySubstitutablePathInfos { paths }
        }
        Request::AddToStore { name, args } => Request::AddToStore {
            name: name.clone(),
            args: add_to_store_args(args, to, &mut notes)?,
        },
        Request::AddTextToStore { .. } if to.at_least(25) => {
            // Nix 2.x clients send AddToStore with method `text:sha256` from
            // 1.25; the text is then the framed upload, not a field.
            return Err(notes.refuse(
                "from protocol 1.25 text goes to AddToStore with method text:sha256 and the \
                 text as its framed upload, which a request alone does not carry",
            ));
        }
        Request::RegisterDrvOutput { realisation } => Request::RegisterDrvOutput {
            realisation: convert_realisation(realisation, to, &mut notes)?,
        },
        Request::QueryRealisation { id } => {
            if realisation_feature(from) != realisation_feature(to) {
                return Err(notes.refuse(
                    "the DrvOutput of realisation-with-path-not-hash names the derivation \
                     path, the older form its hash modulo; neither can be computed from the other",
                ));
            }
            Request::QueryRealisation { id: id.clone() }
        }
        Request::CollectGarbage { options } => {
            let mut options = options.clone();
            options.paths = gc_paths(&options.paths, options.action, to, &mut notes)?;
            Request::CollectGarbage { options }
        }
        other => other.clone(),
    };
    Ok(notes.done(value))
}

fn derived_paths(
    paths: &[DerivedPath],
    to: &Negotiated,
    notes: &Notes,
) -> Result<Vec<DerivedPath>, Untranslatable> {
    if !to.at_least(30) {
        // RemoteStore refuses to ask an older daemon for a derivation file
        // itself: the legacy syntax reads a bare `.drv` as all its outputs.
        if let Some(DerivedPath::Opaque { path }) = paths
            .iter()
            .find(|p| matches!(p, DerivedPath::Opaque { path } if path.0.ends_with(".drv")))
        {
            return Err(notes.refuse(format!(
                "below protocol 1.30 a derivation file itself ({path}) cannot be requested"
            )));
        }
        if let Some(DerivedPath::Built { drv_path, .. }) = paths
            .iter()
            .find(|p| matches!(p, DerivedPath::Built { drv_path, .. } if drv_path.0.contains('!')))
        {
            return Err(notes.refuse(format!(
                "below protocol 1.30 a dynamic derivation ({drv_path}) cannot be requested"
            )));
        }
    }
    Ok(paths.to_vec())
}

fn build_mode(
    mode: BuildMode,
    to: &Negotiated,
    notes: &mut Notes,
) -> Result<BuildMode, Untranslatable> {
    if !to.at_least(15) && mode != BuildMode::Normal {
        return Err(notes.refuse(format!(
            "the build mode exists from protocol 1.15; Nix refuses to send {mode:?} to an older daemon"
        )));
    }
    Ok(mode)
}

fn add_to_store_args(
    args: &AddToStoreArgs,
    to: &Negotiated,
    notes: &mut Notes,
) -> Result<AddToStoreArgs, Untranslatable> {
    match args {
        AddToStoreArgs::Legacy {
            fixed,
            recursive,
            hash_algo,
        } if to.at_least(25) => {
            // The daemon's compatibility hack: `fixed = 0` means sha256 and
            // recursive, whatever else was sent.
            let (recursive, algo) = if *fixed {
                (*recursive, hash_algo.as_str())
            } else {
                (true, "sha256")
            };
            let method = if recursive {
                format!("fixed:r:{algo}")
            } else {
                format!("fixed:{algo}")
            };
            notes.add(
                "args",
                Action::Converted,
                format!(
                    "the arguments below 1.25 become method {method}, no references, no repair; \
                     the upload becomes framed (a flat file's dump is then its contents, not a NAR)"
                ),
            );
            Ok(AddToStoreArgs::Ca {
                method: ContentAddressMethodWithAlgo(method),
                references: Vec::new(),
                repair: false,
            })
        }
        AddToStoreArgs::Ca {
            method,
            references,
            repair,
        } if !to.at_least(25) => {
            let text = method.0.as_str();
            let (recursive, algo) = if let Some(algo) = text.strip_prefix("fixed:r:") {
                (true, algo)
            } else if let Some(algo) = text.strip_prefix("fixed:") {
                if algo.starts_with("git:") {
                    return Err(notes.refuse("git hashing has no form below protocol 1.25"));
                }
                (false, algo)
            } else {
                return Err(notes.refuse(format!(
                    "method {text} below protocol 1.25 is AddTextToStore with the text inline"
                )));
            };
            if !references.is_empty() {
                return Err(notes.refuse("AddToStore takes references from protocol 1.25"));
            }
            if *repair {
                return Err(notes.refuse(
                    "repairing through AddToStore needs protocol 1.25; Nix refuses to send it",
                ));
            }
            notes.add(
                "args",
                Action::Converted,
                format!(
                    "method {text} becomes the arguments below 1.25 (fixed, recursive {recursive}, \
                     {algo}); the upload becomes an inline NAR"
                ),
            );
            Ok(AddToStoreArgs::Legacy {
                fixed: true,
                recursive,
                hash_algo: algo.to_owned(),
            })
        }
        other => Ok(other.clone()),
    }
}

fn gc_paths(
    paths: &GcPaths,
    action: GcAction,
    to: &Negotiated,
    notes: &mut Notes,
) -> Result<GcPaths, Untranslatable> {
    let tagged = to.has(feature::DELETE_DEAD_SPECIFIC_REFERRERS);
    Ok(match (paths, tagged) {
        (GcPaths::Set { paths }, true) => {
            notes.add(
                "paths",
                Action::Converted,
                "a plain set becomes the tagged form of delete-dead-specific-referrers",
            );
            if paths.is_empty() && action != GcAction::DeleteSpecific {
                GcPaths::WholeStore
            } else {
                GcPaths::Specific {
                    paths: paths.clone(),
                    delete_referrers: false,
                }
            }
        }
        (GcPaths::WholeStore, false) => {
            notes.add(
                "paths",
                Action::Converted,
                "the whole store is an empty set without delete-dead-specific-referrers",
            );
            GcPaths::Set { paths: Vec::new() }
        }
        (
            GcPaths::Specific {
                paths,
                delete_referrers,
            },
            false,
        ) => {
            if *delete_referrers {
                return Err(notes.refuse(
                    "deleting referrers needs the delete-dead-specific-referrers feature",
                ));
            }
            notes.add(
                "paths",
                Action::Converted,
                "the tagged form becomes a plain set without delete-dead-specific-referrers",
            );
            GcPaths::Set {
                paths: paths.clone(),
            }
        }
        (other, _) => other.clone(),
    })
}

fn convert_realisation(
    realisation: &Realisation,
    to: &Negotiated,
    notes: &mut Notes,
) -> Result<Realisation, Untranslatable> {
    let binary = realisation_feature(to);
    match realisation {
        Realisation::Binary { .. } if !binary => Err(notes.refuse(
            "a realisation of realisation-with-path-not-hash has no hash modulo for the older forms",
        )),
        Realisation::Legacy { .. } | Realisation::Json { .. } if binary => Err(notes.refuse(
            "the older realisation forms have no derivation path for realisation-with-path-not-hash",
        )),
        Realisation::Legacy { id, out_path } if to.at_least(31) => {
            notes.add(
                "realisation",
                Action::Converted,
                "the id and output of the form below 1.31 become JSON with no signatures and \
                 no dependent realisations",
            );
            let json = serde_json::json!({
                "dependentRealisations": {},
                "id": id,
                "outPath": out_path,
                "signatures": [],
            });
            Ok(Realisation::Json {
                json: RealisationJson(json.to_string()),
            })
        }
        Realisation::Json { json } if !to.at_least(31) => {
            let parsed = json
                .parse()
                .ok_or_else(|| notes.refuse("the realisation JSON cannot be read"))?;
            notes.add(
                "realisation",
                Action::Converted,
                "JSON becomes the id and output of the form below 1.31; signatures and \
                 dependent realisations are dropped",
            );
            Ok(Realisation::Legacy {
                id: parsed.id,
                out_path: parsed.out_path,
            })
        }
        other => Ok(other.clone()),
    }
}

fn path_info(
    info: &UnkeyedValidPathInfo,
    from: &Negotiated,
    to: &Negotiated,
    notes: &mut Notes,
) -> UnkeyedValidPathInfo {
    let mut info = info.clone();
    let differs = info.ultimate || !info.sigs.is_empty() || info.ca.is_some();
    notes.field_since(
        "ultimate, sigs, ca",
        16,
        from,
        to,
        differs,
        "false, empty and none",
    );
    if !to.at_least(16) || !from.at_least(16) {
        info.ultimate = false;
        info.sigs.clear();
        info.ca = None;
    }
    info
}

fn build_result(
    result: &BuildResult,
    from: &Negotiated,
    to: &Negotiated,
    notes: &mut Notes,
) -> Result<BuildResult, Untranslatable> {
    let mut result = result.clone();
    let times = result.times_built != 0
        || result.is_non_deterministic
        || result.start_time != 0
        || result.stop_time != 0;
    notes.field_since(
        "timesBuilt, isNonDeterministic, startTime, stopTime",
        29,
        from,
        to,
        times,
        "0, false, 0 and 0",
    );
    if !to.at_least(29) || !from.at_least(29) {
        result.times_built = 0;
        result.is_non_deterministic = false;
        result.start_time = 0;
        result.stop_time = 0;
    }
    let cpu = result.cpu_user.is_some() || result.cpu_system.is_some();
    notes.field_since(
        "cpuUser, cpuSystem",
        37,
        from,
        to,
        cpu,
        "absent (not measured)",
    );
    if !to.at_least(37) || !from.at_least(37) {
        result.cpu_user = None;
        result.cpu_system = None;
    }
    let carried = |n: &Negotiated| n.at_least(28) || realisation_feature(n);
    let outputs = !result.built_outputs.is_empty();
    match (carried(from), carried(to)) {
        (true, false) => {
            if outputs {
                notes.add(
                    "builtOutputs",
                    Action::Dropped,
                    format!("added in protocol 1.28; not sent at {}", to.version),
                );
            }
            result.built_outputs = BuiltOutputs::empty_for(to);
        }
        (false, true) => {
            notes.add(
                "builtOutputs",
                Action::Filled,
                format!(
                    "added in protocol 1.28; {} did not send it, so it is empty",
                    from.version
                ),
            );
            result.built_outputs = BuiltOutputs::empty_for(to);
        }
        (true, true) => {
            let want_binary = realisation_feature(to);
            let is_binary = matches!(result.built_outputs, BuiltOutputs::Binary(_));
            if want_binary != is_binary {
                if outputs {
                    return Err(notes.refuse(
                        "builtOutputs of realisation-with-path-not-hash and the JSON form name \
                         outputs by different ids, neither computable from the other",
                    ));
                }
                result.built_outputs = BuiltOutputs::empty_for(to);
            }
        }
        (false, false) => {}
    }
    Ok(result)
}

/// Translates a reply decoded at `from` into what a daemon sends at `to`.
///
/// `request` is the request the reply answers (QueryPathInfo's path goes
/// into the error that replaces "not valid" below 1.17).
pub fn reply(
    request: Option<&Request>,
    reply: &Reply,
    from: &Negotiated,
    to: &Negotiated,
) -> Result<Translated<ReplyOutcome>, Untranslatable> {
    let mut notes = Notes::new(reply.op().name(), to);
    let value = match reply {
        Reply::AddToStore { path, info } => {
            let info = match (info, to.at_least(25)) {
                (Some(_), false) => {
                    notes.add(
                        "info",
                        Action::Dropped,
                        "the reply carries the path info from protocol 1.25; below, only the \
                         path (the client asks QueryPathInfo)",
                    );
                    None
                }
                (None, true) => {
                    return Err(notes.refuse(
                        "the reply carries the path info from protocol 1.25; the recorded \
                         reply has only the path",
                    ))
                }
                (Some(info), true) => Some(path_info(info, from, to, &mut notes)),
                (None, false) => None,
            };
            Reply::AddToStore {
                path: path.clone(),
                info,
            }
        }
        Reply::QueryPathInfo { info } => match info {
            Some(info) => Reply::QueryPathInfo {
                info: Some(path_info(info, from, to, &mut notes)),
            },
            None if !to.at_least(17) => {
                let path = match request {
                    Some(Request::QueryPathInfo { path }) => path.to_string(),
                    _ => String::from("?"),
                };
                notes.add(
                    "valid",
                    Action::Converted,
                    "below protocol 1.17 an invalid path is the error `path '…' is not valid`",
                );
                let message = ByteString::from(format!("path '{path}' is not valid"));
                let error = if to.at_least(26) {
                    ErrorInfo::Structured {
                        level: 0,
                        name: ByteString::from("Error"),
                        message,
                        traces: Vec::new(),
                    }
                } else {
                    ErrorInfo::Legacy {
                        message,
                        exit_status: 1,
                    }
                };
                return Ok(notes.done(ReplyOutcome::Error(error)));
            }
            None => Reply::QueryPathInfo { info: None },
        },
        Reply::AddToStoreScanning { info } => {
            let mut info = info.clone();
            info.info = path_info(&info.info, from, to, &mut notes);
            Reply::AddToStoreScanning { info }
        }
        Reply::BuildDerivation { result } => Reply::BuildDerivation {
            result: build_result(result, from, to, &mut notes)?,
        },
        Reply::BuildPathsWithResults { results } => {
            if !to.at_least(34) {
                return Err(notes.refuse(
                    "BuildPathsWithResults exists from protocol 1.34; the client asks BuildPaths \
                     instead",
                ));
            }
            let results = results
                .iter()
                .map(|keyed| {
                    Ok(KeyedBuildResult {
                        path: keyed.path.clone(),
                        result: build_result(&keyed.result, from, to, &mut notes)?,
                    })
                })
                .collect::<Result<Vec<_>, Untranslatable>>()?;
            Reply::BuildPathsWithResults { results }
        }
        Reply::QueryRealisation { result } => Reply::QueryRealisation {
            result: realisation_result(result, to, &mut notes)?,
        },
        other => other.clone(),
    };
    Ok(notes.done(ReplyOutcome::Reply(value)))
}

fn realisation_result(
    result: &RealisationQueryResult,
    to: &Negotiated,
    notes: &mut Notes,
) -> Result<RealisationQueryResult, Untranslatable> {
    let binary = realisation_feature(to);
    Ok(match result {
        RealisationQueryResult::Binary(found) if !binary => {
            if found.is_some() {
                return Err(notes.refuse(
                    "a realisation of realisation-with-path-not-hash has no hash modulo for the \
                     older forms",
                ));
            }
            notes.add("result", Action::Converted, "none found, in the older form");
            empty_realisation_result(to)
        }
        RealisationQueryResult::OutPaths(_) | RealisationQueryResult::Json(_)
            if binary && !result.is_empty() =>
        {
            return Err(notes.refuse(
                "the older realisation forms have no derivation path for \
                 realisation-with-path-not-hash",
            ));
        }
        RealisationQueryResult::OutPaths(_) | RealisationQueryResult::Json(_) if binary => {
            notes.add(
                "result",
                Action::Converted,
                "none found, in the binary form",
            );
            RealisationQueryResult::Binary(None)
        }
        RealisationQueryResult::Json(jsons) if !to.at_least(31) => {
            // The daemon below 1.31 sends the set of output paths.
            let mut paths = Vec::new();
            for json in jsons {
                let parsed = json
                    .parse()
                    .ok_or_else(|| notes.refuse("the realisation JSON cannot be read"))?;
                paths.push(StorePath(format!("/nix/store/{}", parsed.out_path)));
            }
            notes.add(
                "result",
                Action::Converted,
                "below protocol 1.31 the daemon sends the output paths (under /nix/store) \
                 instead of realisations",
            );
            RealisationQueryResult::OutPaths(paths)
        }
        RealisationQueryResult::OutPaths(paths) if to.at_least(31) => {
            if !paths.is_empty() {
                return Err(notes.refuse(
                    "from protocol 1.31 the reply is a realisation, whose id the output path \
                     below 1.31 does not give",
                ));
            }
            notes.add(
                "result",
                Action::Converted,
                "none found, as JSON realisations",
            );
            RealisationQueryResult::Json(Vec::new())
        }
        other => other.clone(),
    })
}

fn empty_realisation_result(to: &Negotiated) -> RealisationQueryResult {
    if realisation_feature(to) {
        RealisationQueryResult::Binary(None)
    } else if to.at_least(31) {
        RealisationQueryResult::Json(Vec::new())
    } else {
        RealisationQueryResult::OutPaths(Vec::new())
    }
}

/// Translates a log message or error decoded at `_from` for a client at
/// `to`. `None`: a daemon at `to` sends nothing for it. (A message holds
/// its own form, so the source version only documents the direction.)
///
/// `verbosity` is the client's verbosity from its SetOptions (Nix's
/// levels: 0 error … 7 vomit), which decides below 1.20 whether the start
/// of an activity is logged.
pub fn stderr(
    message: &StderrMessage,
    _from: &Negotiated,
    to: &Negotiated,
    verbosity: u64,
) -> Translated<Option<StderrMessage>> {
    let subject = match message {
        StderrMessage::Error(_) => "STDERR_ERROR",
        StderrMessage::StartActivity { .. } => "STDERR_START_ACTIVITY",
        StderrMessage::StopActivity { .. } => "STDERR_STOP_ACTIVITY",
        StderrMessage::Result { .. } => "STDERR_RESULT",
        _ => "STDERR",
    };
    let mut notes = Notes::new(subject, to);
    let value = match message {
        StderrMessage::Error(info) => Some(StderrMessage::Error(error(info, to, &mut notes))),
        StderrMessage::StartActivity { level, text, .. } if !to.at_least(20) => {
            if !text.as_bytes().is_empty() && *level <= verbosity {
                notes.add(
                    "activity",
                    Action::Converted,
                    "activities exist from protocol 1.20; below, a daemon logs the start of one \
                     as a line `<text>...`",
                );
                let mut line = text.as_bytes().to_vec();
                line.extend_from_slice(b"...\n");
                Some(StderrMessage::Next {
                    text: ByteString::from(line),
                })
            } else {
                notes.add(
                    "activity",
                    Action::Dropped,
                    "activities exist from protocol 1.20; below, a daemon logs nothing for one \
                     without text or above the client's verbosity",
                );
                None
            }
        }
        StderrMessage::StopActivity { .. } | StderrMessage::Result { .. } if !to.at_least(20) => {
            notes.add(
                "activity",
                Action::Dropped,
                "activities exist from protocol 1.20; below, a daemon sends nothing for results \
                 and ends",
            );
            None
        }
        other => Some(other.clone()),
    };
    notes.done(value)
}

fn error(info: &ErrorInfo, to: &Negotiated, notes: &mut Notes) -> ErrorInfo {
    match info {
        ErrorInfo::Legacy {
            message,
            exit_status,
        } if to.at_least(26) => {
            notes.add(
                "format",
                Action::Converted,
                format!(
                    "errors are structured from protocol 1.26: level 0, name Error; exit status \
                     {exit_status} dropped"
                ),
            );
            ErrorInfo::Structured {
                level: 0,
                name: ByteString::from("Error"),
                message: message.clone(),
                traces: Vec::new(),
            }
        }
        ErrorInfo::Structured {
            message, traces, ..
        } if !to.at_least(26) => {
            notes.add(
                "format",
                Action::Converted,
                "errors below protocol 1.26 are a message and an exit status: status 1, traces \
                 appended to the message",
            );
            let mut text = message.as_bytes().to_vec();
            for trace in traces {
                text.push(b'\n');
                text.extend_from_slice(trace.as_bytes());
            }
            ErrorInfo::Legacy {
                message: ByteString::from(text),
                exit_status: 1,
            }
        }
        other => other.clone(),
    }
}

/// The daemon's fields after the handshake's features, for a client at
/// `to`: its Nix version (≥ 1.33) and whether it trusts the client
/// (≥ 1.35), from what was recorded (`None` where the recording's version
/// did not carry them).
///
/// A field the recording lacks is filled in: the Nix version as an empty
/// string, the trust as "unknown" (what a daemon that cannot tell sends).
pub fn daemon_post(
    nix_version: Option<&ByteString>,
    trust: Option<Trust>,
    to: &Negotiated,
) -> Translated<Vec<u8>> {
    let mut notes = Notes::new("handshake", to);
    let mut w = Writer::new();
    if to.at_least(33) {
        match nix_version {
            Some(version) => DaemonNixVersion(version.clone()).encode(&mut w),
            None => {
                notes.add(
                    "daemonNixVersion",
                    Action::Filled,
                    "added in protocol 1.33; the recording did not carry it, so it is empty",
                );
                DaemonNixVersion(ByteString::default()).encode(&mut w);
            }
        }
    } else if nix_version.is_some() {
        notes.add(
            "daemonNixVersion",
            Action::Dropped,
            format!("added in protocol 1.33; not sent at {}", to.version),
        );
    }
    if to.at_least(35) {
        match trust {
            Some(trust) => trust.encode(&mut w),
            None => {
                notes.add(
                    "trust",
                    Action::Filled,
                    "added in protocol 1.35; the recording did not carry it, so it is unknown",
                );
                Trust::Unknown.encode(&mut w);
            }
        }
    } else if trust.is_some() {
        notes.add(
            "trust",
            Action::Dropped,
            format!("added in protocol 1.35; not sent at {}", to.version),
        );
    }
    notes.done(w.into_bytes())
}

#[cfg(test)]
mod tests;
