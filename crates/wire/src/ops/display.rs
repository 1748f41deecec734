//! One-line displays of requests and replies: the argument a request is
//! named by, and a short summary of a reply.

use crate::types::{BuildResult, StorePath};

use super::reply::Reply;
use super::request::Request;

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

impl Reply {
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

/// `Built`, or `PermanentFailure: <first line of the message>`.
fn build_result_summary(result: &BuildResult) -> String {
    let message = result.error_msg.to_string_lossy();
    match message.lines().next() {
        Some(first) if !first.is_empty() => format!("{}: {first}", result.status),
        _ => result.status.to_string(),
    }
}
