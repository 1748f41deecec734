//! Planning a fetch while the capture is read, in memory that does not grow
//! with the recorded bytes.
//!
//! [`plan_fetch`](crate::plan_fetch) needs a whole [`DecodedCapture`]:
//! every stream in memory, decoded, and the uploads put together again. A
//! recorder that reads its capture back when it stops would hold several
//! times what it recorded (three times the NAR of a `nix-store --add`).
//! [`FetchPlanner`] comes to the same [`FetchPlan`] from decoded events one
//! at a time ([`EventStream`]): what a plan needs from the payloads is only
//! which paths crossed the wire, and the session decoder already names them
//! (the reply or request of an add, the path infos of AddMultipleToStore,
//! the export records of ImportPaths), so no payload byte is kept. What it
//! holds is per connection: the requests still waiting for their reply, the
//! paths seen, and the build logs.
//!
//! [`DecodedCapture`]: nixcap_view::DecodedCapture

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use nixcap_capture::{Location, ReadError, ReadErrorKind, StoreObjectKind};
use nixcap_view::stream::{EventStream, StreamItem};
use nixcap_wire::ops::{AddToStoreArgs, Reply, Request};
use nixcap_wire::session::{Event, EventKind, PayloadItem};
use nixcap_wire::stderr::{ActivityType, Field, ResultType, StderrMessage};
use nixcap_wire::types::ContentAddressMethod;

use crate::store_root::{base_name, valid_paths, FetchPlan};

/// What one connection contributes to the plan.
#[derive(Debug, Default)]
struct ConnectionPlan {
    /// Requests by op number, until their reply (or the connection's end).
    requests: BTreeMap<u64, Request>,
    /// Paths the payload of an op showed complete, counted as crossed once
    /// the op is answered.
    uploaded: BTreeMap<u64, Vec<String>>,
    /// AddMultipleToStore: the path whose NAR is being uploaded, per op.
    uploading: BTreeMap<u64, String>,
    /// Paths shown valid, in first-seen order (duplicates kept).
    valid: Vec<String>,
    /// Paths whose contents crossed the connection.
    crossed: BTreeSet<String>,
    /// Base names of the build logs uploaded (AddBuildLog).
    uploaded_logs: BTreeSet<String>,
    /// Build activity ids, to the index of their log in `logs`.
    activities: BTreeMap<u64, usize>,
    /// Build logs put together from log lines, in first-started order.
    logs: Vec<(String, Vec<u8>)>,
}

impl ConnectionPlan {
    fn event(&mut self, event: &Event) {
        match &event.kind {
            EventKind::Request { seq, request } => {
                self.requests.insert(*seq, (**request).clone());
            }
            EventKind::FramedData { seq, payload, .. }
            | EventKind::FramedEnd { seq, payload }
            | EventKind::ReadAnswer { seq, payload, .. } => {
                for item in payload {
                    self.payload_item(*seq, item);
                }
            }
            EventKind::Stderr {
                seq: Some(_),
                message,
            } => self.log_message(message),
            EventKind::Reply { seq, reply } => self.reply(*seq, reply),
            _ => {}
        }
    }

    fn payload_item(&mut self, seq: u64, item: &PayloadItem) {
        match item {
            PayloadItem::PathInfo { info } => {
                self.uploading.insert(seq, info.path.to_string());
            }
            PayloadItem::NarEnd { .. } => {
                if let Some(path) = self.uploading.remove(&seq) {
                    self.uploaded.entry(seq).or_default().push(path);
                }
            }
            PayloadItem::ExportRecord { record } => {
                self.uploaded
                    .entry(seq)
                    .or_default()
                    .push(record.path.clone());
            }
            PayloadItem::Undecodable { .. } => {
                self.uploading.remove(&seq);
            }
            _ => {}
        }
    }

    fn reply(&mut self, seq: u64, reply: &Reply) {
        let uploaded = self.uploaded.remove(&seq).unwrap_or_default();
        self.uploading.remove(&seq);
        let Some(request) = self.requests.remove(&seq) else {
            return;
        };
        match (&request, reply) {
            (Request::AddToStore { args, .. }, Reply::AddToStore { path, .. }) => {
                let is_git = matches!(
                    args,
                    AddToStoreArgs::Ca { method, .. }
                        if matches!(method.parse(), Some((ContentAddressMethod::Git, _)))
                );
                if !is_git {
                    self.crossed.insert(path.to_string());
                }
            }
            (Request::AddTextToStore { .. }, Reply::AddTextToStore { path }) => {
                self.crossed.insert(path.to_string());
            }
            (Request::AddToStoreNar { info, .. }, _) => {
                self.crossed.insert(info.path.to_string());
            }
            (Request::AddMultipleToStore { .. } | Request::ImportPaths {}, _) => {
                self.crossed.extend(uploaded);
            }
            (Request::NarFromPath { path }, _) => {
                self.crossed.insert(path.to_string());
            }
            (Request::AddBuildLog { base_name }, _) => {
                self.uploaded_logs.insert(base_name.clone());
            }
            _ => {}
        }
        self.valid.extend(valid_paths(&request, reply));
    }

    fn log_message(&mut self, message: &StderrMessage) {
        match message {
            StderrMessage::StartActivity {
                id,
                activity_type,
                fields,
                ..
            } if *activity_type == ActivityType::BUILD => {
                let Some(Field::String(drv)) = fields.first() else {
                    return;
                };
                let drv = drv.to_string_lossy().into_owned();
                let index = match self.logs.iter().position(|(d, _)| *d == drv) {
                    Some(index) => {
                        self.logs[index].1.clear();
                        index
                    }
                    None => {
                        self.logs.push((drv, Vec::new()));
                        self.logs.len() - 1
                    }
                };
                self.activities.insert(*id, index);
            }
            StderrMessage::Result {
                id,
                result_type,
                fields,
            } if *result_type == ResultType::BUILD_LOG_LINE => {
                if let (Some(&index), Some(Field::String(line))) =
                    (self.activities.get(id), fields.first())
                {
                    self.logs[index].1.extend_from_slice(line.as_bytes());
                    self.logs[index].1.push(b'\n');
                }
            }
            _ => {}
        }
    }
}

/// Builds a [`FetchPlan`] from a capture's decoded events, fed in capture
/// order; see the module documentation. Gives the plan
/// [`plan_fetch`](crate::plan_fetch) gives for the whole capture.
#[derive(Debug, Default)]
pub struct FetchPlanner {
    /// Connections in the order they were opened.
    order: Vec<u64>,
    connections: BTreeMap<u64, ConnectionPlan>,
    /// Store objects the capture already holds (or says are missing).
    stored_nars: BTreeSet<String>,
    stored_logs: BTreeSet<String>,
}

impl FetchPlanner {
    /// A planner that has seen nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes the next item of an [`EventStream`].
    pub fn item(&mut self, item: &StreamItem) {
        match item {
            StreamItem::Opened(opened) => {
                if !self.connections.contains_key(&opened.conn) {
                    self.order.push(opened.conn);
                    self.connections
                        .insert(opened.conn, ConnectionPlan::default());
                }
            }
            StreamItem::Event { conn, event, .. } => {
                if let Some(connection) = self.connections.get_mut(conn) {
                    connection.event(event);
                }
            }
            StreamItem::Closed { conn, .. } => {
                if let Some(connection) = self.connections.get_mut(conn) {
                    // Ops never answered add nothing.
                    connection.requests.clear();
                    connection.uploaded.clear();
                    connection.uploading.clear();
                }
            }
        }
    }

    /// Notes a store object the capture holds (or records as missing).
    pub fn store_object(&mut self, kind: StoreObjectKind, name: &str) {
        match kind {
            StoreObjectKind::Nar => {
                self.stored_nars.insert(name.to_owned());
            }
            StoreObjectKind::BuildLog => {
                self.stored_logs.insert(base_name(name).to_owned());
            }
            _ => {}
        }
    }

    /// The plan for everything seen.
    pub fn finish(self) -> FetchPlan {
        let mut have = self.stored_nars;
        let mut have_logs = self.stored_logs;
        let mut connections = self.connections;
        let ordered: Vec<ConnectionPlan> = self
            .order
            .iter()
            .filter_map(|conn| connections.remove(conn))
            .collect();
        for connection in &ordered {
            have.extend(connection.crossed.iter().cloned());
            have_logs.extend(connection.uploaded_logs.iter().cloned());
        }
        let mut plan = FetchPlan::default();
        let mut seen = BTreeSet::new();
        for connection in &ordered {
            for path in &connection.valid {
                if path.starts_with('/') && !have.contains(path) && seen.insert(path.clone()) {
                    plan.nars.push(path.clone());
                }
            }
        }
        // A derivation built again later keeps the later log, in the place
        // of its first build.
        let mut logs: Vec<(String, Vec<u8>)> = Vec::new();
        for connection in ordered {
            for (drv, text) in connection.logs {
                match logs.iter_mut().find(|(d, _)| *d == drv) {
                    Some(entry) => entry.1 = text,
                    None => logs.push((drv, text)),
                }
            }
        }
        plan.logs = logs
            .into_iter()
            .filter(|(drv, _)| !have_logs.contains(base_name(drv)))
            .collect();
        plan
    }
}

/// Reads the capture at `path` as far as it is written (an unfinished or
/// damaged capture is planned up to the damage) and plans what a replay of
/// it needs, holding no stream in memory. Fails only when the capture's
/// header cannot be read.
pub fn plan_fetch_file(path: &Path) -> Result<FetchPlan, ReadError> {
    let file = File::open(path)
        .map_err(|source| ReadError::new(ReadErrorKind::Io { source }, Location::default()))?;
    let mut stream = EventStream::new(BufReader::with_capacity(64 << 10, file))?;
    let mut planner = FetchPlanner::new();
    for item in stream.by_ref() {
        // Damage ends the stream; what came before it is planned.
        let Ok(item) = item else { break };
        planner.item(&item);
    }
    for object in stream.store_objects() {
        planner.store_object(object.kind, &object.name);
    }
    Ok(planner.finish())
}
