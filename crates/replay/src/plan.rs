//! Planning a fetch while the capture is read, in memory that does not grow
//! with the recorded bytes.
//!
//! A recorder reads its capture back when it stops to find what a replay
//! would still need; holding the capture whole for that would cost several
//! times what it recorded (three times the NAR of a `nix-store --add`).
//! [`FetchPlanner`] comes to the [`FetchPlan`] from decoded events one at a
//! time ([`EventStream`]): what a plan needs from the payloads is only which
//! paths crossed the wire, and the session decoder already names them (the
//! reply or request of an add, the path infos of AddMultipleToStore, the
//! export records of ImportPaths), so no payload byte is kept. What it holds
//! is per connection: the requests still waiting for their reply, the paths
//! seen, and the build logs (`BuildLogs`).
//!
//! It is the only planner: [`plan_fetch`] feeds it a capture already
//! decoded, and [`recorded_build_logs`](crate::store_root::recorded_build_logs)
//! is its log assembler run over every connection.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use nixcap_capture::{Location, ReadError, ReadErrorKind, StoreObjectKind};
use nixcap_view::stream::{EventStream, StreamItem};
use nixcap_view::DecodedCapture;
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
    /// Build logs put together from the log stream.
    logs: BuildLogs,
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
            EventKind::Stderr { seq: Some(_), .. } => self.logs.event(event),
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
}

/// The build logs of one connection, put together from the daemon's log
/// stream: a build activity (`StartActivity` of type BUILD, whose first
/// field is the derivation path) collects the `resBuildLogLine` results that
/// name it, each line followed by a newline as the builder printed it (a
/// last line without a newline, and carriage returns, are not reproduced).
/// A derivation built again on the connection starts its log afresh, in the
/// place of its first build.
#[derive(Debug, Default)]
pub(crate) struct BuildLogs {
    /// Build activity ids, to the index of their log in `logs`.
    activities: BTreeMap<u64, usize>,
    /// Per derivation path, in first-started order.
    logs: Vec<(String, Vec<u8>)>,
}

impl BuildLogs {
    /// Takes the connection's next event; only the log stream of ops counts.
    pub(crate) fn event(&mut self, event: &Event) {
        if let EventKind::Stderr {
            seq: Some(_),
            message,
        } = &event.kind
        {
            self.message(message);
        }
    }

    fn message(&mut self, message: &StderrMessage) {
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

    /// The logs, per derivation path.
    pub(crate) fn into_logs(self) -> Vec<(String, Vec<u8>)> {
        self.logs
    }
}

/// The build logs of several connections, in connection order: a derivation
/// built again on a later connection keeps the later log, in the place of
/// its first build (as Nix keeps the last log written).
pub(crate) fn merge_logs(
    connections: impl IntoIterator<Item = Vec<(String, Vec<u8>)>>,
) -> Vec<(String, Vec<u8>)> {
    let mut logs: Vec<(String, Vec<u8>)> = Vec::new();
    for connection in connections {
        for (drv, text) in connection {
            match logs.iter_mut().find(|(d, _)| *d == drv) {
                Some(entry) => entry.1 = text,
                None => logs.push((drv, text)),
            }
        }
    }
    logs
}

/// Builds a [`FetchPlan`] from a capture's decoded events, fed in capture
/// order (or connection by connection: only the order within a connection,
/// and the order connections were opened in, count); see the module
/// documentation.
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
            StreamItem::Opened(opened) => self.opened(opened.conn),
            StreamItem::Event { conn, event, .. } => self.event(*conn, event),
            StreamItem::Closed { conn, .. } => self.closed(*conn),
        }
    }

    /// A connection was opened.
    pub fn opened(&mut self, conn: u64) {
        if !self.connections.contains_key(&conn) {
            self.order.push(conn);
            self.connections.insert(conn, ConnectionPlan::default());
        }
    }

    /// The next decoded event of connection `conn` (of either direction, in
    /// decoding order).
    pub fn event(&mut self, conn: u64, event: &Event) {
        if let Some(connection) = self.connections.get_mut(&conn) {
            connection.event(event);
        }
    }

    /// Connection `conn` was closed: ops never answered add nothing.
    pub fn closed(&mut self, conn: u64) {
        if let Some(connection) = self.connections.get_mut(&conn) {
            connection.requests.clear();
            connection.uploaded.clear();
            connection.uploading.clear();
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
        let logs = merge_logs(ordered.into_iter().map(|c| c.logs.into_logs()));
        plan.logs = logs
            .into_iter()
            .filter(|(drv, _)| !have_logs.contains(base_name(drv)))
            .collect();
        plan
    }
}

/// The store paths and build logs a replay of `capture` needs beyond what
/// crossed the recorded connections (and beyond store objects the capture
/// already holds): every path a reply showed as valid (IsValidPath,
/// QueryValidPaths, QueryPathInfo and the references in its info,
/// QueryDerivationOutputMap, QueryDerivationOutputs, built outputs of
/// BuildPathsWithResults and BuildDerivation), and every path a client made
/// a root of or asked to be made valid (AddTempRoot, AddPermRoot,
/// EnsurePath), and the log of every build whose log lines the daemon sent.
/// [`plan_fetch_file`] gives the same plan reading a file.
pub fn plan_fetch(capture: &DecodedCapture) -> FetchPlan {
    let mut planner = FetchPlanner::new();
    for connection in &capture.connections {
        planner.opened(connection.conn);
        for timed in &connection.events {
            planner.event(connection.conn, &timed.event);
        }
        if connection.closed.is_some() {
            planner.closed(connection.conn);
        }
    }
    for stored in &capture.capture.store_objects {
        planner.store_object(stored.object.kind, &stored.object.name);
    }
    planner.finish()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn start(id: u64, drv: &str) -> StderrMessage {
        StderrMessage::StartActivity {
            id,
            level: 0,
            activity_type: ActivityType::BUILD,
            text: "building".into(),
            fields: vec![Field::String(drv.into()), Field::String("".into())],
            parent: 0,
        }
    }

    fn line(id: u64, text: &str) -> StderrMessage {
        StderrMessage::Result {
            id,
            result_type: ResultType::BUILD_LOG_LINE,
            fields: vec![Field::String(text.into())],
        }
    }

    fn logs_of(messages: &[StderrMessage]) -> Vec<(String, Vec<u8>)> {
        let mut logs = BuildLogs::default();
        for message in messages {
            logs.message(message);
        }
        logs.into_logs()
    }

    #[test]
    fn a_build_log_is_its_lines_each_ended_by_a_newline() {
        let logs = logs_of(&[
            start(7, "/nix/store/aaaa-a.drv"),
            line(7, "one"),
            start(8, "/nix/store/bbbb-b.drv"),
            line(8, "other"),
            line(7, "two"),
            // Lines of an activity that is not a build are no log.
            line(9, "stray"),
        ]);
        assert_eq!(
            logs,
            vec![
                ("/nix/store/aaaa-a.drv".to_owned(), b"one\ntwo\n".to_vec()),
                ("/nix/store/bbbb-b.drv".to_owned(), b"other\n".to_vec()),
            ]
        );
    }

    #[test]
    fn a_derivation_built_again_keeps_the_later_log_in_the_first_place() {
        let first = logs_of(&[
            start(1, "/nix/store/aaaa-a.drv"),
            line(1, "first try"),
            start(2, "/nix/store/bbbb-b.drv"),
            line(2, "b"),
            start(3, "/nix/store/aaaa-a.drv"),
            line(3, "second try"),
        ]);
        assert_eq!(first[0].1, b"second try\n");
        let second = logs_of(&[
            start(1, "/nix/store/cccc-c.drv"),
            line(1, "c"),
            start(2, "/nix/store/bbbb-b.drv"),
            line(2, "b again"),
        ]);
        let merged = merge_logs([first, second]);
        let names: Vec<&str> = merged.iter().map(|(drv, _)| drv.as_str()).collect();
        assert_eq!(
            names,
            [
                "/nix/store/aaaa-a.drv",
                "/nix/store/bbbb-b.drv",
                "/nix/store/cccc-c.drv"
            ]
        );
        assert_eq!(merged[1].1, b"b again\n");
    }
}
