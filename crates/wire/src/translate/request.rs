//! Translating requests between protocol versions.

use crate::ops::{AddToStoreArgs, Request};
use crate::types::{
    BuildMode, BuildResult, BuiltOutputs, ContentAddressMethodWithAlgo, DerivedPath, GcAction,
    GcPaths, Realisation, RealisationJson, UnkeyedValidPathInfo,
};
use crate::version::{feature, Negotiated};

use super::{realisation_feature, Action, Notes, Translated, Untranslatable};

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

pub(super) fn path_info(
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

pub(super) fn build_result(
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
