//! Translating replies between protocol versions.

use crate::bytes::ByteString;
use crate::ops::{Reply, Request};
use crate::stderr::ErrorInfo;
use crate::types::{KeyedBuildResult, RealisationQueryResult, StorePath};
use crate::version::Negotiated;

use super::request::{build_result, path_info};
use super::{realisation_feature, Action, Notes, ReplyOutcome, Translated, Untranslatable};

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
