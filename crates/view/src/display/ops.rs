//! One-line displays of decoded operations: the argument a request is
//! named by, and a short summary of a reply, for both protocols. Every
//! view uses them (`show`'s transcript, diff's op keys, the replay report,
//! the exports); nothing outside the views does.

use nixcap_wire::ops::{Reply, Request};
use nixcap_wire::serve::ops::{ServeReply, ServeRequest};
use nixcap_wire::types::{BuildResult, StorePath};

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

/// The argument a human would name the request by (a store path, a
/// derivation, a count of paths…), for one-line displays. `None` for
/// requests without such an argument.
pub fn key_argument(request: &Request) -> Option<String> {
    match request {
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

/// A short human summary for one-line displays, such as
/// `valid, narSize 1234`, `3 paths` or `ok`.
pub fn reply_summary(reply: &Reply) -> String {
    let ok = |result: u64| {
        if result == 1 {
            "ok".to_owned()
        } else {
            format!("result {result}")
        }
    };
    match reply {
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

/// `Built`, or `PermanentFailure: <first line of the message>`.
fn build_result_summary(result: &BuildResult) -> String {
    let message = result.error_msg.to_string_lossy();
    match message.lines().next() {
        Some(first) if !first.is_empty() => format!("{}: {first}", result.status),
        _ => result.status.to_string(),
    }
}

/// A one-line summary for transcripts.
pub fn serve_request_summary(request: &ServeRequest) -> String {
    let paths = |paths: &[StorePath]| match paths {
        [] => "no paths".to_owned(),
        [one] => one.as_str().to_owned(),
        [first, rest @ ..] => format!("{} and {} more", first.as_str(), rest.len()),
    };
    match request {
        ServeRequest::QueryValidPaths {
            lock,
            substitute,
            paths: p,
        } => format!(
            "QueryValidPaths {} (lock {lock}, substitute {substitute})",
            paths(p)
        ),
        ServeRequest::QueryPathInfos { paths: p } => format!("QueryPathInfos {}", paths(p)),
        ServeRequest::DumpStorePath { path } => format!("DumpStorePath {}", path.as_str()),
        ServeRequest::ImportPaths => "ImportPaths".to_owned(),
        ServeRequest::ExportPaths { paths: p, .. } => format!("ExportPaths {}", paths(p)),
        ServeRequest::BuildPaths { paths: p, .. } => {
            let first = p.first().map(|s| s.to_string_lossy().into_owned());
            match (first, p.len()) {
                (None, _) => "BuildPaths no paths".to_owned(),
                (Some(first), 1) => format!("BuildPaths {first}"),
                (Some(first), n) => format!("BuildPaths {first} and {} more", n - 1),
            }
        }
        ServeRequest::QueryClosure {
            include_outputs,
            paths: p,
        } => format!(
            "QueryClosure {} (include outputs {include_outputs})",
            paths(p)
        ),
        ServeRequest::BuildDerivation { drv_path, .. } => {
            format!("BuildDerivation {}", drv_path.as_str())
        }
        ServeRequest::AddToStoreNar(add) => format!(
            "AddToStoreNar {} ({} NAR bytes)",
            add.path.as_str(),
            add.nar_size
        ),
        ServeRequest::Unknown { word } => format!("unknown serve command {word}"),
    }
}

/// A one-line summary for transcripts.
pub fn serve_reply_summary(reply: &ServeReply) -> String {
    match reply {
        ServeReply::Paths { paths } => format!("{} path(s)", paths.len()),
        ServeReply::PathInfos { infos } => format!("{} path info(s)", infos.len()),
        ServeReply::Done { status } => format!("done ({status})"),
        ServeReply::BuildStatus {
            status: 0,
            error_msg: None,
        } => "built".to_owned(),
        ServeReply::BuildStatus { status, error_msg } => format!(
            "failed with status {status}: {}",
            error_msg
                .as_ref()
                .map(|m| m.to_string_lossy().into_owned())
                .unwrap_or_default()
        ),
        ServeReply::BuildResult { result } => format!("{:?}", result.status),
    }
}

#[cfg(test)]
mod tests {
    use nixcap_wire::ops::{Reply, Request};
    use nixcap_wire::types::{
        BuildMode, BuildResult, BuildStatus, DerivedPath, OutputsSpec, StorePath,
        UnkeyedValidPathInfo,
    };

    use super::*;

    fn sp(name: &str) -> StorePath {
        StorePath(format!(
            "/nix/store/g1w7hy3qg1w7hy3qg1w7hy3qg1w7hy3q-{name}"
        ))
    }

    #[test]
    fn key_arguments_and_summaries_read_well() {
        let request = Request::QueryPathInfo { path: sp("foo") };
        assert_eq!(key_argument(&request), Some(sp("foo").0));
        let request = Request::QueryValidPaths {
            paths: vec![sp("a"), sp("b"), sp("c")],
            substitute: false,
        };
        assert_eq!(key_argument(&request).as_deref(), Some("3 paths"));
        let request = Request::BuildPaths {
            paths: vec![DerivedPath::Built {
                drv_path: sp("x.drv"),
                outputs: OutputsSpec::All,
            }],
            mode: BuildMode::Normal,
        };
        assert_eq!(key_argument(&request), Some(format!("{}!*", sp("x.drv"))));
        assert_eq!(key_argument(&Request::SyncWithGC {}), None);

        let reply = Reply::QueryPathInfo {
            info: Some(UnkeyedValidPathInfo {
                deriver: Some(sp("foo.drv")),
                nar_hash: "15e3c560894cbb27085cf65b5a2ecb18488c999497f4531b6907a7581ce6d527".into(),
                references: vec![sp("zzz"), sp("foo")],
                registration_time: 1_700_000_000,
                nar_size: 1234,
                ultimate: false,
                sigs: Vec::new(),
                ca: None,
            }),
        };
        assert_eq!(reply_summary(&reply), "valid, narSize 1234");
        assert_eq!(
            reply_summary(&Reply::QueryPathInfo { info: None }),
            "invalid"
        );
        assert_eq!(
            reply_summary(&Reply::QueryValidPaths {
                paths: vec![sp("a")]
            }),
            "1 path"
        );
        assert_eq!(reply_summary(&Reply::BuildPaths { result: 1 }), "ok");
        assert_eq!(reply_summary(&Reply::SetOptions {}), "ok");
        let failed = Reply::BuildDerivation {
            result: BuildResult::new(BuildStatus::PermanentFailure, "builder failed\n"),
        };
        assert_eq!(reply_summary(&failed), "PermanentFailure: builder failed");
    }

    #[test]
    fn serve_summaries_read_well() {
        let request = ServeRequest::QueryValidPaths {
            lock: false,
            substitute: true,
            paths: vec![sp("a"), sp("b")],
        };
        assert_eq!(
            serve_request_summary(&request),
            format!(
                "QueryValidPaths {} and 1 more (lock false, substitute true)",
                sp("a")
            )
        );
        assert_eq!(
            serve_request_summary(&ServeRequest::ImportPaths),
            "ImportPaths"
        );
        let reply = ServeReply::Paths {
            paths: vec![sp("a")],
        };
        assert_eq!(serve_reply_summary(&reply), "1 path(s)");
        let built = ServeReply::BuildStatus {
            status: 0,
            error_msg: None,
        };
        assert_eq!(serve_reply_summary(&built), "built");
    }
}
