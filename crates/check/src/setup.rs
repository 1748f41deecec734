//! `--setup`: bring store objects the recorded daemon already had into the
//! target before the check, so that queries about them answer alike.
//!
//! A store object can be imported only if its contents crossed the wire in
//! the capture: a NarFromPath download (the NAR) of a path whose metadata a
//! QueryPathInfo reply also shows. Those are added to the target with
//! AddToStoreNar (framed, protocol 1.23 and later), references first.
//! Paths the capture asks about whose contents it does not hold are listed
//! as not importable. The capture's own writes (AddToStore, AddToStoreNar,
//! AddMultipleToStore, ImportPaths, builds) are replayed by the check
//! itself and need no setup.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use nixcap_client::{Client, ClientOptions};
use nixcap_view::{DecodedCapture, Outcome};
use nixcap_wire::framed::encode_framed;
use nixcap_wire::ops::{Op, Reply, Request};
use nixcap_wire::primitives::Writer;
use nixcap_wire::session::{Direction, EventKind};
use nixcap_wire::types::{UnkeyedValidPathInfo, ValidPathInfo};

use crate::report::{Problem, ProblemKind, SetupSummary};

/// Chunk size of the framed NAR upload.
const FRAME_CHUNK: usize = 32 * 1024;

/// What the capture holds about store objects: metadata from QueryPathInfo
/// replies, NARs from NarFromPath downloads.
#[derive(Debug, Default)]
pub(crate) struct StoreObjects {
    pub infos: BTreeMap<String, UnkeyedValidPathInfo>,
    pub nars: BTreeMap<String, Vec<u8>>,
}

pub(crate) fn store_objects(capture: &DecodedCapture) -> StoreObjects {
    let mut objects = StoreObjects::default();
    for connection in &capture.connections {
        for exchange in &connection.exchanges {
            match (&exchange.request, &exchange.outcome) {
                (
                    Some(Request::QueryPathInfo { path }),
                    Outcome::Reply(Reply::QueryPathInfo { info: Some(info) }),
                ) => {
                    objects
                        .infos
                        .entry(path.as_str().to_owned())
                        .or_insert_with(|| info.clone());
                }
                (Some(Request::NarFromPath { path }), Outcome::Reply(_)) => {
                    let mut nar = Vec::new();
                    let mut complete = false;
                    for &index in &exchange.events {
                        let event = &connection.events[index].event;
                        if let (Direction::DaemonToClient, EventKind::NarData { data, end, .. }) =
                            (event.direction, &event.kind)
                        {
                            nar.extend_from_slice(data.as_bytes());
                            complete |= *end;
                        }
                    }
                    if complete {
                        objects.nars.insert(path.as_str().to_owned(), nar);
                    }
                }
                _ => {}
            }
        }
    }
    objects
}

/// Imports what can be imported; returns what was done and the problems.
pub(crate) fn run(
    capture: &DecodedCapture,
    socket: &Path,
    timeout: Duration,
) -> (SetupSummary, Vec<Problem>) {
    let objects = store_objects(capture);
    let mut summary = SetupSummary::default();
    let mut problems = Vec::new();
    let problem = |message: String| Problem {
        conn: 0,
        seq: None,
        op: Some("setup".to_owned()),
        kind: ProblemKind::Setup,
        message,
    };
    let options = ClientOptions::default().with_timeout(timeout);
    let mut client = match Client::connect_path(socket, options) {
        Ok(client) => client,
        Err(e) => {
            problems.push(problem(format!("connecting for the setup: {e}")));
            return (summary, problems);
        }
    };
    let mut done = BTreeSet::new();
    for path in objects.infos.keys() {
        import(
            &mut client,
            &objects,
            path,
            &mut done,
            &mut summary,
            &mut problems,
            &problem,
        );
    }
    (summary, problems)
}

fn import(
    client: &mut Client,
    objects: &StoreObjects,
    path: &str,
    done: &mut BTreeSet<String>,
    summary: &mut SetupSummary,
    problems: &mut Vec<Problem>,
    problem: &dyn Fn(String) -> Problem,
) {
    if !done.insert(path.to_owned()) {
        return;
    }
    let Some(info) = objects.infos.get(path) else {
        return;
    };
    for reference in &info.references {
        if reference.as_str() != path {
            import(
                client,
                objects,
                reference.as_str(),
                done,
                summary,
                problems,
                problem,
            );
        }
    }
    match client.query_path_info(path) {
        Ok(Some(_)) => {
            summary.present.push(path.to_owned());
            return;
        }
        Ok(None) => {}
        Err(e) => {
            problems.push(problem(format!("asking the target about {path}: {e}")));
            return;
        }
    }
    let Some(nar) = objects.nars.get(path) else {
        summary.missing.push(path.to_owned());
        return;
    };
    if !client.negotiated().at_least(23) {
        problems.push(problem(format!(
            "importing {path}: the target speaks protocol {}, and the setup imports with framed AddToStoreNar (1.23 and later)",
            client.version()
        )));
        return;
    }
    let request = Request::AddToStoreNar {
        info: ValidPathInfo {
            path: nixcap_wire::types::StorePath::new(path),
            info: info.clone(),
        },
        repair: false,
        dont_check_sigs: true,
    };
    let result = client.send_request(&request).and_then(|()| {
        let mut w = Writer::new();
        encode_framed(&mut w, nar, FRAME_CHUNK);
        client.send_raw(w.as_bytes())?;
        client.finish(Op::AddToStoreNar)
    });
    match result {
        Ok(_) => summary.imported.push(path.to_owned()),
        Err(e) => problems.push(problem(format!("importing {path}: {e}"))),
    }
}
