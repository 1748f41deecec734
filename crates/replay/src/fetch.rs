//! Making a capture self-contained: fetching, over a connection of our own,
//! what the recorded sessions saw in the store but never received.
//!
//! [`fetch_store_objects`] takes the [`FetchPlan`] of a capture
//! ([`crate::plan_fetch`]), asks the daemon for each planned
//! path with QueryPathInfo (a path that is not valid any more is left
//! out), downloads the valid ones with NarFromPath, checks each NAR against
//! its size and hash, and hands every result to the caller, who adds it to
//! the capture as a store object. The planned build logs need no daemon:
//! they come from the recorded log stream, because no version of the
//! protocol can read a build log back.
//!
//! A failed download is a result too (`Err` with the reason), so the
//! capture says which paths are missing; after an error that ends the
//! connection, the next path gets a new one.

use std::path::Path;

use nixcap_capture::{ReadError, StoreObjectKind};
use nixcap_client::{Client, ClientOptions};
use nixcap_wire::types::UnkeyedValidPathInfo;
use sha2::{Digest, Sha256};

use crate::plan::plan_fetch_file;
use crate::store_root::FetchPlan;

/// One store object for the capture: contents, or why they are missing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// What the contents are.
    pub kind: StoreObjectKind,
    /// The store path (NAR) or derivation path (build log).
    pub name: String,
    /// The contents, or why they could not be had.
    pub contents: Result<Vec<u8>, String>,
}

/// What a fetch did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct FetchSummary {
    /// NARs fetched.
    pub nars: u64,
    /// Their total size.
    pub nar_bytes: u64,
    /// Build logs added.
    pub logs: u64,
    /// Planned paths the daemon no longer (or never) had as valid.
    pub not_valid: u64,
    /// Paths that are valid but could not be fetched, with the reason.
    pub missing: Vec<(String, String)>,
}

/// Reads the capture at `capture` as far as it is written (an unfinished
/// capture is fine), plans what a replay of it needs ([`plan_fetch_file`]:
/// as [`plan_fetch`](crate::plan_fetch) would, in flat memory),
/// fetches that from the daemon at `socket` and passes every result to
/// `each`. Returns how many objects were planned, and what the fetch did;
/// fails only when the capture cannot be read at all.
pub fn fetch_for_capture_file(
    capture: &Path,
    socket: &Path,
    options: &ClientOptions,
    each: impl FnMut(Fetched),
) -> Result<(usize, FetchSummary), ReadError> {
    let plan = plan_fetch_file(capture)?;
    let planned = plan.nars.len() + plan.logs.len();
    Ok((planned, fetch_store_objects(&plan, socket, options, each)))
}

/// Fetches the plan's NARs from the daemon at `socket` and passes every
/// result (and every planned build log) to `each`, in plan order.
pub fn fetch_store_objects(
    plan: &FetchPlan,
    socket: &Path,
    options: &ClientOptions,
    mut each: impl FnMut(Fetched),
) -> FetchSummary {
    let mut summary = FetchSummary::default();
    for (drv, text) in &plan.logs {
        summary.logs += 1;
        each(Fetched {
            kind: StoreObjectKind::BuildLog,
            name: drv.clone(),
            contents: Ok(text.clone()),
        });
    }
    let mut client: Option<Client> = None;
    for path in &plan.nars {
        let result = fetch_one(&mut client, socket, options, path);
        match result {
            Ok(None) => summary.not_valid += 1,
            Ok(Some(nar)) => {
                summary.nars += 1;
                summary.nar_bytes += nar.len() as u64;
                each(Fetched {
                    kind: StoreObjectKind::Nar,
                    name: path.clone(),
                    contents: Ok(nar),
                });
            }
            Err(reason) => {
                summary.missing.push((path.clone(), reason.clone()));
                each(Fetched {
                    kind: StoreObjectKind::Nar,
                    name: path.clone(),
                    contents: Err(reason),
                });
            }
        }
    }
    summary
}

/// The NAR of `path`, `None` if the daemon does not have it as valid, or why
/// it could not be fetched. Drops the connection after an error that ends it.
fn fetch_one(
    client: &mut Option<Client>,
    socket: &Path,
    options: &ClientOptions,
    path: &str,
) -> Result<Option<Vec<u8>>, String> {
    let connection = match client {
        Some(connection) => connection,
        None => client.insert(
            Client::connect_path(socket, options.clone())
                .map_err(|error| format!("connecting to the daemon: {error}"))?,
        ),
    };
    let info = match connection.query_path_info(path) {
        Ok(Some(info)) => info,
        Ok(None) => return Ok(None),
        // Daemons refuse QueryPathInfo of a path that is not valid.
        Err(error) if error.is_daemon_error() => return Ok(None),
        Err(error) => {
            *client = None;
            return Err(error.to_string());
        }
    };
    let nar = match connection.nar_from_path(path) {
        Ok(nar) => nar,
        Err(error) => {
            if !error.is_daemon_error() {
                *client = None;
            }
            return Err(error.to_string());
        }
    };
    check_nar(&nar, &info)?;
    Ok(Some(nar))
}

/// Checks a NAR against the size and hash of its path info.
fn check_nar(nar: &[u8], info: &UnkeyedValidPathInfo) -> Result<(), String> {
    if nar.len() as u64 != info.nar_size {
        return Err(format!(
            "the daemon sent a NAR of {} bytes, its path info says {}",
            nar.len(),
            info.nar_size
        ));
    }
    let hash = hex::encode(Sha256::digest(nar));
    let recorded = info.nar_hash.trim_start_matches("sha256:");
    if recorded.len() == 64 && !recorded.eq_ignore_ascii_case(&hash) {
        return Err(format!(
            "the NAR's SHA-256 is {hash}, its path info says {recorded}"
        ));
    }
    Ok(())
}
