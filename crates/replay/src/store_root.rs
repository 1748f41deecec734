//! The store root: store objects whose contents crossed the wire in the
//! capture, written to disk for clients that read store files directly
//! (`?root=` in the store URI).
//!
//! Sources: what clients added (AddToStore, AddTextToStore, AddToStoreNar,
//! AddMultipleToStore, ImportPaths), NARs the daemon sent (NarFromPath),
//! build logs (AddBuildLog), the store objects the recorder fetched itself
//! (format 1.1: build outputs and what the sessions saw as valid), and the
//! logs of builds put together from the daemon's `resBuildLogLine` results.
//! Logs are written uncompressed to
//! `nix/var/log/nix/drvs/<first two characters>/<rest>`, where Nix looks
//! before it looks for a `.bz2`. A path already on disk is left alone, so
//! the first copy wins.
//!
//! [`plan_fetch`] is the other side: what a recorder still has to fetch
//! from the daemon for a replay of the capture to need nothing else.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use std::collections::BTreeSet;

use nixcap_capture::StoreObjectKind;
use nixcap_view::{DecodedCapture, Outcome};
use nixcap_wire::nar::{parse_nar, NarNodeKind, NarOptions};
use nixcap_wire::ops::{AddToStoreArgs, Reply, Request};
use nixcap_wire::primitives::Reader;
use nixcap_wire::session::{Direction, EventKind};
use nixcap_wire::types::{
    BuildResult, ContentAddressMethod, DerivedPath, StorePath, ValidPathInfo,
};

pub use crate::plan::plan_fetch;
use crate::plan::{merge_logs, BuildLogs};

/// Why a store object could not be written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreRootError {
    /// A file system call failed.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
}

/// What materialising wrote, and what it could not use.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Materialised {
    /// Store paths written, in capture order.
    pub paths: Vec<String>,
    /// Build logs written (derivation base names).
    pub logs: Vec<String>,
    /// Payloads that could not be used, with the reason.
    pub skipped: Vec<String>,
}

fn io_err<'a>(
    action: &'static str,
    path: &'a Path,
) -> impl FnOnce(io::Error) -> StoreRootError + 'a {
    move |source| StoreRootError::Io {
        action,
        path: path.to_owned(),
        source,
    }
}

/// Where a store path's files go under `root`, if the path is a plain
/// absolute path without `..`.
fn host_path(root: &Path, store_path: &str) -> Option<PathBuf> {
    let relative = store_path.strip_prefix('/')?;
    if relative
        .split('/')
        .any(|part| part == ".." || part == "." || part.is_empty())
    {
        return None;
    }
    Some(root.join(relative))
}

/// Writes every store object and build log of `capture` under `root`: first
/// what crossed the recorded connections, then the store objects the
/// recorder fetched itself (format 1.1), then the build logs of builds whose
/// log lines the daemon sent, for derivations that have no log yet.
pub fn materialise(capture: &DecodedCapture, root: &Path) -> Result<Materialised, StoreRootError> {
    let mut out = Materialised::default();
    for object in wire_objects(capture) {
        write_object(object, root, &mut out)?;
    }
    for stored in &capture.capture.store_objects {
        if !stored.is_complete() {
            continue;
        }
        let object = match stored.object.kind {
            StoreObjectKind::Nar => Object::Nar {
                path: stored.object.name.clone(),
                nar: stored.contents.clone(),
            },
            StoreObjectKind::BuildLog => Object::Log {
                base_name: base_name(&stored.object.name).to_owned(),
                text: stored.contents.clone(),
            },
            _ => continue,
        };
        write_object(object, root, &mut out)?;
    }
    for (drv, text) in recorded_build_logs(capture) {
        let base_name = base_name(&drv).to_owned();
        if !out.logs.contains(&base_name) {
            write_object(Object::Log { base_name, text }, root, &mut out)?;
        }
    }
    Ok(out)
}

pub(crate) fn base_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

fn write_object(object: Object, root: &Path, out: &mut Materialised) -> Result<(), StoreRootError> {
    match object {
        Object::Nar { path, nar } => match host_path(root, &path) {
            Some(dest) if dest.symlink_metadata().is_ok() => {}
            Some(dest) => match unpack_nar(&nar, &dest)? {
                Ok(()) => out.paths.push(path),
                Err(reason) => out.skipped.push(format!("{path}: {reason}")),
            },
            None => out
                .skipped
                .push(format!("{path}: not an absolute store path")),
        },
        Object::Flat { path, contents } => match host_path(root, &path) {
            Some(dest) if dest.symlink_metadata().is_ok() => {}
            Some(dest) => {
                write_file(&dest, &contents, false)?;
                out.paths.push(path);
            }
            None => out
                .skipped
                .push(format!("{path}: not an absolute store path")),
        },
        Object::Log { base_name, text } => {
            if base_name.len() < 3 || base_name.contains('/') || base_name.starts_with('.') {
                out.skipped
                    .push(format!("build log {base_name}: not a derivation name"));
                return Ok(());
            }
            let (first, rest) = base_name.split_at(2);
            let dest = root.join("nix/var/log/nix/drvs").join(first).join(rest);
            if dest.symlink_metadata().is_err() {
                write_file(&dest, &text, false)?;
                out.logs.push(base_name);
            }
        }
        Object::Undecodable { what } => out.skipped.push(what),
    }
    Ok(())
}

/// The store objects whose contents crossed the recorded connections.
fn wire_objects(capture: &DecodedCapture) -> Vec<Object> {
    let mut objects = Vec::new();
    for connection in &capture.connections {
        for exchange in &connection.exchanges {
            let Some(request) = &exchange.request else {
                continue;
            };
            let Outcome::Reply(reply) = &exchange.outcome else {
                continue;
            };
            let mut upload = Vec::new();
            let mut download = Vec::new();
            for &index in &exchange.events {
                let event = &connection.events[index].event;
                match (&event.kind, event.direction) {
                    (
                        EventKind::FramedData { data, .. }
                        | EventKind::ReadAnswer { data, .. }
                        | EventKind::NarData { data, .. },
                        Direction::ClientToDaemon,
                    ) => upload.extend_from_slice(data.as_bytes()),
                    (EventKind::NarData { data, .. }, Direction::DaemonToClient) => {
                        download.extend_from_slice(data.as_bytes())
                    }
                    _ => {}
                }
            }
            objects.extend(objects_of(request, reply, upload, download));
        }
    }
    objects
}

/// The build logs the daemon streamed while it built, per derivation path,
/// put together from its `resBuildLogLine` results (`plan::BuildLogs`): each
/// line followed by a newline, as the builder printed it (a last line
/// without a newline, and carriage returns, are not reproduced). A
/// derivation built twice keeps the later log, as Nix does.
pub fn recorded_build_logs(capture: &DecodedCapture) -> Vec<(String, Vec<u8>)> {
    merge_logs(capture.connections.iter().map(|connection| {
        let mut logs = BuildLogs::default();
        for timed in &connection.events {
            logs.event(&timed.event);
        }
        logs.into_logs()
    }))
}

/// Store paths whose contents crossed the recorded connections.
pub fn crossed_paths(capture: &DecodedCapture) -> BTreeSet<String> {
    wire_objects(capture)
        .into_iter()
        .filter_map(|object| match object {
            Object::Nar { path, .. } | Object::Flat { path, .. } => Some(path),
            Object::Log { .. } | Object::Undecodable { .. } => None,
        })
        .collect()
}

/// What a replay of `capture` would need from the daemon to be
/// self-contained.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct FetchPlan {
    /// Store paths the recorded sessions saw as valid (or made valid) whose
    /// contents never crossed a recorded connection, in first-seen order.
    /// Whether each is still valid is for the fetcher to find out.
    pub nars: Vec<String>,
    /// Build logs put together from the recorded log stream, per derivation
    /// path, for derivations whose log did not cross a connection.
    pub logs: Vec<(String, Vec<u8>)>,
}

/// The store paths an exchange shows to be valid.
pub(crate) fn valid_paths(request: &Request, reply: &Reply) -> Vec<String> {
    let strings = |paths: &[StorePath]| paths.iter().map(|p| p.to_string()).collect::<Vec<_>>();
    match (request, reply) {
        (Request::IsValidPath { path }, Reply::IsValidPath { valid: true }) => {
            vec![path.to_string()]
        }
        (_, Reply::QueryValidPaths { paths }) => strings(paths),
        (Request::QueryPathInfo { path }, Reply::QueryPathInfo { info: Some(info) }) => {
            let mut paths = vec![path.to_string()];
            paths.extend(strings(&info.references));
            paths
        }
        (_, Reply::QueryDerivationOutputMap { outputs }) => outputs
            .iter()
            .filter_map(|(_, path)| path.as_ref().map(|p| p.to_string()))
            .collect(),
        (_, Reply::QueryDerivationOutputs { paths }) => strings(paths),
        (_, Reply::BuildPathsWithResults { results }) => results
            .iter()
            .flat_map(|keyed| {
                let store_dir = match &keyed.path {
                    DerivedPath::Opaque { path } => path.store_dir().to_owned(),
                    DerivedPath::Built { drv_path, .. } => drv_path.store_dir().to_owned(),
                };
                built_output_paths(&keyed.result, &store_dir)
            })
            .collect(),
        (Request::BuildDerivation { drv_path, .. }, Reply::BuildDerivation { result }) => {
            built_output_paths(result, drv_path.store_dir())
        }
        (
            Request::AddTempRoot { path }
            | Request::AddPermRoot { path, .. }
            | Request::EnsurePath { path },
            _,
        ) => vec![path.to_string()],
        _ => Vec::new(),
    }
}

/// The output paths a build result names; base names are put in `store_dir`.
fn built_output_paths(result: &BuildResult, store_dir: &str) -> Vec<String> {
    let store_dir = if store_dir.is_empty() {
        "/nix/store"
    } else {
        store_dir
    };
    result
        .built_outputs
        .outputs()
        .into_iter()
        .filter_map(|(_, path)| path)
        .map(|path| {
            if path.starts_with('/') {
                path
            } else {
                format!("{}/{path}", store_dir.trim_end_matches('/'))
            }
        })
        .collect()
}

enum Object {
    Nar { path: String, nar: Vec<u8> },
    Flat { path: String, contents: Vec<u8> },
    Log { base_name: String, text: Vec<u8> },
    Undecodable { what: String },
}

fn objects_of(request: &Request, reply: &Reply, upload: Vec<u8>, download: Vec<u8>) -> Vec<Object> {
    match (request, reply) {
        (Request::AddToStore { args, .. }, Reply::AddToStore { path, .. }) => {
            let path = path.to_string();
            let is_nar = match args {
                // Below 1.25 the client always sends a NAR, flat or not.
                AddToStoreArgs::Legacy { .. } => true,
                AddToStoreArgs::Ca { method, .. } => {
                    matches!(method.parse(), Some((ContentAddressMethod::Nar, _)))
                }
            };
            let is_git = matches!(
                args,
                AddToStoreArgs::Ca { method, .. } if matches!(method.parse(), Some((ContentAddressMethod::Git, _)))
            );
            if is_git {
                vec![Object::Undecodable {
                    what: format!("{path}: git-hashed uploads are not unpacked"),
                }]
            } else if is_nar {
                vec![Object::Nar { path, nar: upload }]
            } else {
                vec![Object::Flat {
                    path,
                    contents: upload,
                }]
            }
        }
        (Request::AddTextToStore { text, .. }, Reply::AddTextToStore { path }) => {
            vec![Object::Flat {
                path: path.to_string(),
                contents: text.as_bytes().to_vec(),
            }]
        }
        (Request::AddToStoreNar { info, .. }, _) => vec![Object::Nar {
            path: info.path.to_string(),
            nar: upload,
        }],
        (Request::AddMultipleToStore { .. }, _) => multiple_to_store(&upload),
        (Request::ImportPaths {}, _) => import_paths(&upload),
        (Request::NarFromPath { path }, _) => vec![Object::Nar {
            path: path.to_string(),
            nar: download,
        }],
        (Request::AddBuildLog { base_name }, _) => vec![Object::Log {
            base_name: base_name.clone(),
            text: upload,
        }],
        _ => Vec::new(),
    }
}

fn lenient() -> NarOptions {
    NarOptions {
        strict_names: false,
        ..NarOptions::default()
    }
}

/// Splits an AddMultipleToStore payload: a count, then path info (1.16
/// layout) and NAR pairs.
fn multiple_to_store(payload: &[u8]) -> Vec<Object> {
    let mut objects = Vec::new();
    let mut r = Reader::new(payload);
    let Ok(count) = r.u64() else {
        return vec![Object::Undecodable {
            what: "AddMultipleToStore payload without a count".to_owned(),
        }];
    };
    for _ in 0..count {
        let info = match ValidPathInfo::decode_1_16(&mut r) {
            Ok(info) => info,
            Err(err) => {
                objects.push(Object::Undecodable {
                    what: format!("AddMultipleToStore path info: {err}"),
                });
                break;
            }
        };
        match parse_nar(r.remaining(), lenient()) {
            Ok(summary) => {
                let Ok(nar) = r.bytes(summary.len as usize) else {
                    break;
                };
                objects.push(Object::Nar {
                    path: info.path.to_string(),
                    nar: nar.to_vec(),
                });
            }
            Err(err) => {
                objects.push(Object::Undecodable {
                    what: format!("{}: {err}", info.path),
                });
                break;
            }
        }
    }
    objects
}

/// Splits an export stream (ImportPaths): per path `1`, the NAR and its
/// trailer; `0` at the end.
fn import_paths(payload: &[u8]) -> Vec<Object> {
    let mut objects = Vec::new();
    let mut r = Reader::new(payload);
    while let Ok(1) = r.u64() {
        let summary = match parse_nar(r.remaining(), lenient()) {
            Ok(summary) => summary,
            Err(err) => {
                objects.push(Object::Undecodable {
                    what: format!("ImportPaths NAR: {err}"),
                });
                break;
            }
        };
        let Ok(nar) = r.bytes(summary.len as usize) else {
            break;
        };
        let trailer = (|| {
            let _magic = r.u64()?;
            let path = String::from_utf8_lossy(r.string()?).into_owned();
            let _references = r.list(|r| r.string().map(<[u8]>::to_vec))?;
            let _deriver = r.string()?;
            if r.u64()? != 0 {
                r.string()?;
            }
            Ok::<_, nixcap_wire::primitives::ReadError>(path)
        })();
        match trailer {
            Ok(path) => objects.push(Object::Nar {
                path,
                nar: nar.to_vec(),
            }),
            Err(err) => {
                objects.push(Object::Undecodable {
                    what: format!("ImportPaths record: {err}"),
                });
                break;
            }
        }
    }
    objects
}

fn write_file(dest: &Path, contents: &[u8], executable: bool) -> Result<(), StoreRootError> {
    if let Some(parent) = dest.parent() {
        fs::create_dir_all(parent).map_err(io_err("creating", parent))?;
    }
    fs::write(dest, contents).map_err(io_err("writing", dest))?;
    let mode = if executable { 0o555 } else { 0o444 };
    fs::set_permissions(dest, fs::Permissions::from_mode(mode))
        .map_err(io_err("setting the mode of", dest))
}

/// Unpacks a NAR at `dest`: directories, regular files (with the executable
/// bit) and symlinks. The outer `Result` is a file system failure; the inner
/// one says why the NAR could not be used (nothing is written then).
pub fn unpack_nar(nar: &[u8], dest: &Path) -> Result<Result<(), String>, StoreRootError> {
    let summary = match parse_nar(nar, lenient()) {
        Ok(summary) => summary,
        Err(err) => return Ok(Err(format!("invalid NAR: {err}"))),
    };
    for node in &summary.nodes {
        let relative = node.path.as_bytes();
        let Ok(relative) = std::str::from_utf8(relative) else {
            return Ok(Err("a NAR entry name is not UTF-8".to_owned()));
        };
        if relative.split('/').any(|p| p == ".." || p == ".") {
            return Ok(Err(format!("NAR entry {relative:?} leaves the store path")));
        }
    }
    if let Some(parent) = dest.parent() {
        fs::create_dir_all(parent).map_err(io_err("creating", parent))?;
    }
    for node in &summary.nodes {
        let relative = String::from_utf8_lossy(node.path.as_bytes()).into_owned();
        let target = if relative.is_empty() {
            dest.to_path_buf()
        } else {
            dest.join(&relative)
        };
        match &node.kind {
            NarNodeKind::Directory => {
                fs::create_dir(&target).map_err(io_err("creating", &target))?;
            }
            NarNodeKind::Regular { executable, size } => {
                let start = usize::try_from(node.known_at).unwrap_or(usize::MAX);
                let end = start.saturating_add(usize::try_from(*size).unwrap_or(usize::MAX));
                let Some(contents) = nar.get(start..end) else {
                    return Ok(Err(format!("NAR entry {relative:?} runs past the end")));
                };
                write_file(&target, contents, *executable)?;
            }
            NarNodeKind::Symlink { target: link } => {
                let link = String::from_utf8_lossy(link.as_bytes()).into_owned();
                std::os::unix::fs::symlink(&link, &target)
                    .map_err(io_err("creating the symlink", &target))?;
            }
        }
    }
    Ok(Ok(()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use nixcap_wire::nar::NarWriter;

    #[test]
    fn unpacks_files_symlinks_and_directories() {
        let mut w = NarWriter::new();
        w.directory();
        w.entry(b"a.txt").regular(false, b"first\n").end_entry();
        w.entry(b"link").symlink(b"a.txt").end_entry();
        w.entry(b"run.sh").regular(true, b"#!/bin/sh\n").end_entry();
        w.entry(b"sub").directory();
        w.entry(b"b.txt").regular(false, b"second\n").end_entry();
        w.close().end_entry();
        w.close();
        let nar = w.finish();
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("nix/store/aaaa-dir");
        unpack_nar(&nar, &dest).unwrap().unwrap();
        assert_eq!(fs::read(dest.join("a.txt")).unwrap(), b"first\n");
        assert_eq!(fs::read(dest.join("sub/b.txt")).unwrap(), b"second\n");
        assert_eq!(
            fs::read_link(dest.join("link")).unwrap(),
            Path::new("a.txt")
        );
        let mode = fs::metadata(dest.join("run.sh"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o111, 0o111);
        let mode = fs::metadata(dest.join("a.txt"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o111, 0);
    }

    #[test]
    fn unpacks_a_single_file() {
        let mut w = NarWriter::new();
        w.regular(false, b"hello\n");
        let nar = w.finish();
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("nix/store/bbbb-hello.txt");
        unpack_nar(&nar, &dest).unwrap().unwrap();
        assert_eq!(fs::read(&dest).unwrap(), b"hello\n");
    }

    #[test]
    fn refuses_a_truncated_nar() {
        let mut w = NarWriter::new();
        w.regular(false, b"hello\n");
        let nar = w.finish();
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("x");
        assert!(unpack_nar(&nar[..nar.len() - 8], &dest).unwrap().is_err());
        assert!(!dest.exists());
    }
}
