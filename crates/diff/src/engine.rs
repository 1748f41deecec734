//! The comparison itself: normalised views of each connection, pairing of
//! connections and ops, and the field-by-field comparison of JSON trees.

use std::collections::BTreeSet;

use nixcap_view::display::{key_argument, serve_request_summary};
use nixcap_view::normalise::{self, Normaliser, DURATION_KEYS, TIMESTAMP_KEYS};
use nixcap_view::{DecodedCapture, DecodedConnection, Outcome, SessionInfo};
use serde_json::{Map, Value};

use crate::align::{align, Step};
use crate::ignore::Patterns;
use crate::versions::{field_note, last_key, op_family};
use crate::{ConnectionDiff, FieldDiff, OpDiff, Options, Presence, Report, Side};

/// JSON keys whose arrays are sets: their order carries no meaning.
const SET_KEYS: &[&str] = &[
    "references",
    "paths",
    "sigs",
    "signatures",
    "willBuild",
    "willSubstitute",
    "unknown",
    "features",
    "clientFeatures",
    "daemonFeatures",
    "results",
];

/// One op, ready for comparison.
#[derive(Debug)]
struct OpView {
    seq: u64,
    op: String,
    family: String,
    /// The key argument as shown.
    key: Option<String>,
    /// The key argument, normalised, for pairing.
    match_key: Option<String>,
    /// The key argument without store path hashes, for pairing ops about
    /// paths of the same name.
    name_key: Option<String>,
    /// `{ "request": …, "reply"|"error"|"outcome": …, "transfer": … }`.
    fields: Map<String, Value>,
    log: Vec<Value>,
    duration_nanos: u64,
}

#[derive(Debug)]
struct ConnView {
    conn: u64,
    minor: Option<u8>,
    ops: Vec<OpView>,
}

fn without_op(value: Value) -> Value {
    match value {
        Value::Object(mut map) => {
            map.remove("op");
            Value::Object(map)
        }
        other => other,
    }
}

fn conn_view(connection: &DecodedConnection, options: &Options) -> ConnView {
    let mut normaliser = if options.timing {
        Normaliser::keeping_times()
    } else {
        Normaliser::new()
    };
    let mut ops = Vec::new();
    for exchange in &connection.exchanges {
        let mut fields = Map::new();
        if let Some(request) = &exchange.request {
            let mut value = without_op(serde_json::to_value(request).unwrap_or(Value::Null));
            normaliser.value(&mut value);
            fields.insert("request".to_owned(), value);
        }
        if let Some(request) = &exchange.serve_request {
            let mut value = serde_json::to_value(request).unwrap_or(Value::Null);
            if let Value::Object(map) = &mut value {
                map.remove("command");
            }
            normaliser.value(&mut value);
            fields.insert("request".to_owned(), value);
        }
        let mut log: Vec<Value> = exchange
            .log_messages(connection)
            .map(|(_, message)| serde_json::to_value(message).unwrap_or(Value::Null))
            .collect();
        log.iter_mut().for_each(|message| normaliser.value(message));
        let (name, mut value) = match &exchange.outcome {
            Outcome::Reply(reply) => (
                "reply",
                without_op(serde_json::to_value(reply).unwrap_or(Value::Null)),
            ),
            Outcome::Error(error) => ("error", serde_json::to_value(error).unwrap_or(Value::Null)),
            Outcome::ServeReply(reply) => {
                ("reply", serde_json::to_value(reply).unwrap_or(Value::Null))
            }
            Outcome::Downloaded => ("outcome", Value::from("downloaded")),
            Outcome::Unfinished => ("outcome", Value::from("unfinished")),
        };
        normaliser.value(&mut value);
        fields.insert(name.to_owned(), value);
        let mut transfer = Map::new();
        if exchange.upload_bytes > 0 {
            transfer.insert("uploadBytes".to_owned(), exchange.upload_bytes.into());
        }
        if exchange.download_bytes > 0 {
            transfer.insert("downloadBytes".to_owned(), exchange.download_bytes.into());
        }
        if !transfer.is_empty() {
            fields.insert("transfer".to_owned(), Value::Object(transfer));
        }
        let op = exchange.op_name();
        let key = exchange
            .request
            .as_ref()
            .and_then(key_argument)
            .or_else(|| exchange.serve_request.as_ref().map(serve_request_summary));
        ops.push(OpView {
            seq: exchange.seq,
            family: op_family(&op).to_owned(),
            match_key: key.as_deref().map(normalise::normalise_text),
            name_key: key.as_deref().map(without_store_hashes),
            key,
            op,
            fields,
            log,
            duration_nanos: exchange.end_nanos.saturating_sub(exchange.start_nanos),
        });
    }
    ConnView {
        conn: connection.conn,
        minor: connection
            .session
            .negotiated
            .as_ref()
            .map(|n| n.version.minor),
        ops,
    }
}

/// `text` with the hash part of every store path removed.
fn without_store_hashes(text: &str) -> String {
    const STORE: &str = "/nix/store/";
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(STORE) {
        out.push_str(&rest[..start + STORE.len()]);
        rest = &rest[start + STORE.len()..];
        let hash_len = rest
            .bytes()
            .take_while(|b| b.is_ascii_alphanumeric())
            .count();
        if hash_len == 32 {
            rest = &rest[32..];
        }
    }
    out.push_str(rest);
    out
}

/// How well two ops pair: 0 not at all; 1 the same job; 2 the same job
/// about a path of the same name; 3 the same job and argument; 4 the same
/// op and argument; 5 the same request too.
fn op_score(a: &OpView, b: &OpView) -> u32 {
    if a.family != b.family {
        return 0;
    }
    if a.match_key != b.match_key {
        return if a.name_key == b.name_key { 2 } else { 1 };
    }
    if a.op != b.op {
        return 3;
    }
    if a.fields.get("request") == b.fields.get("request") {
        5
    } else {
        4
    }
}

fn align_ops(a: &ConnView, b: &ConnView) -> Vec<Step> {
    align(a.ops.len(), b.ops.len(), |i, j| {
        op_score(&a.ops[i], &b.ops[j])
    })
}

/// How alike two connections are, from 0 to 1000.
fn conn_similarity(a: &ConnView, b: &ConnView) -> u32 {
    let best = 5 * a.ops.len().max(b.ops.len()) as u32;
    if best == 0 {
        return 1000;
    }
    let total: u32 = align_ops(a, b)
        .into_iter()
        .map(|step| match step {
            Step::Pair(i, j) => op_score(&a.ops[i], &b.ops[j]),
            _ => 0,
        })
        .sum();
    total * 1000 / best
}

struct Context<'a> {
    options: &'a Options,
    patterns: Patterns,
    labels: (String, String),
    dropped: usize,
}

pub(crate) fn diff(a: &DecodedCapture, b: &DecodedCapture, options: &Options) -> Report {
    let side_a = side(a, "A");
    let side_b = side(b, "B");
    let labels = options.labels.clone().unwrap_or_else(|| {
        match (
            side_a.daemon_nix_versions.as_slice(),
            side_b.daemon_nix_versions.as_slice(),
        ) {
            ([va], [vb]) if va != vb => (va.clone(), vb.clone()),
            _ => ("A".to_owned(), "B".to_owned()),
        }
    });
    let mut cx = Context {
        options,
        patterns: Patterns::new(&options.ignore),
        labels,
        dropped: 0,
    };
    let views_a: Vec<ConnView> = a
        .connections
        .iter()
        .map(|c| conn_view(c, options))
        .collect();
    let views_b: Vec<ConnView> = b
        .connections
        .iter()
        .map(|c| conn_view(c, options))
        .collect();
    let similarity: Vec<Vec<u32>> = views_a
        .iter()
        .map(|ca| views_b.iter().map(|cb| conn_similarity(ca, cb)).collect())
        .collect();
    let steps = align(views_a.len(), views_b.len(), |i, j| {
        let s = similarity[i][j];
        if s >= 400 {
            s
        } else {
            0
        }
    });
    let mut handshake = handshake_diffs(a, b, &views_a, &views_b);
    handshake.retain(|field| {
        let keep = !cx.patterns.drops_field(&[], &field.path);
        if !keep {
            cx.dropped += 1;
        }
        keep
    });
    let mut connections = Vec::new();
    let mut identical_connections = 0;
    let mut identical_ops = 0;
    for step in steps {
        let diff = match step {
            Step::Pair(i, j) => {
                let (ops, same) = diff_connection(&mut cx, &views_a[i], &views_b[j]);
                identical_ops += same;
                if ops.is_empty() {
                    identical_connections += 1;
                    continue;
                }
                ConnectionDiff {
                    a_conn: Some(views_a[i].conn),
                    b_conn: Some(views_b[j].conn),
                    presence: Presence::Changed,
                    op_names: op_names(&views_a[i]),
                    ops,
                }
            }
            Step::OnlyA(i) => match one_sided(&mut cx, &views_a[i], Presence::Removed) {
                Some(diff) => diff,
                None => continue,
            },
            Step::OnlyB(j) => match one_sided(&mut cx, &views_b[j], Presence::Inserted) {
                Some(diff) => diff,
                None => continue,
            },
        };
        connections.push(diff);
    }
    Report {
        a: Side {
            label: cx.labels.0.clone(),
            ..side_a
        },
        b: Side {
            label: cx.labels.1.clone(),
            ..side_b
        },
        handshake,
        connections,
        identical_connections,
        identical_ops,
        ignored: options.ignore.clone(),
        learned: None,
        dropped: cx.dropped,
    }
}

fn op_names(view: &ConnView) -> Vec<String> {
    view.ops.iter().map(|op| op.op.clone()).collect()
}

fn side(capture: &DecodedCapture, label: &str) -> Side {
    let mut versions = BTreeSet::new();
    let mut protocols = BTreeSet::new();
    for connection in &capture.connections {
        if let Some(version) = &connection.session.daemon_nix_version {
            versions.insert(version.to_string());
        }
        if let Some(negotiated) = &connection.session.negotiated {
            protocols.insert(negotiated.version.to_string());
        }
    }
    Side {
        label: label.to_owned(),
        connections: capture.connections.len(),
        ops: capture.connections.iter().map(|c| c.exchanges.len()).sum(),
        daemon_nix_versions: versions.into_iter().collect(),
        protocols: protocols.into_iter().collect(),
    }
}

/// The handshake fields of every connection of a capture, as sets of
/// values per field.
fn handshake_values(capture: &DecodedCapture) -> Vec<(String, BTreeSet<String>)> {
    let mut fields: Vec<(String, BTreeSet<String>)> = Vec::new();
    for connection in &capture.connections {
        let SessionInfo {
            protocol: _,
            client_version,
            daemon_version,
            negotiated,
            client_features,
            daemon_features,
            daemon_nix_version,
            trust,
        } = &connection.session;
        let shown = |value: Option<String>| value.unwrap_or_else(|| "(not sent)".to_owned());
        let features = |list: &Option<Vec<String>>| {
            list.as_ref().map(|l| {
                if l.is_empty() {
                    "(none)".to_owned()
                } else {
                    l.join(", ")
                }
            })
        };
        let entries = [
            (
                "clientVersion",
                shown(client_version.map(|v| v.to_string())),
            ),
            (
                "daemonVersion",
                shown(daemon_version.map(|v| v.to_string())),
            ),
            (
                "negotiatedVersion",
                shown(negotiated.as_ref().map(|n| n.version.to_string())),
            ),
            (
                "negotiatedFeatures",
                shown(negotiated.as_ref().map(|n| {
                    if n.features.is_empty() {
                        "(none)".to_owned()
                    } else {
                        n.features.join(", ")
                    }
                })),
            ),
            ("clientFeatures", shown(features(client_features))),
            ("daemonFeatures", shown(features(daemon_features))),
            (
                "daemonNixVersion",
                shown(daemon_nix_version.as_ref().map(|v| v.to_string())),
            ),
            (
                "trust",
                shown(trust.map(|t| {
                    serde_json::to_value(t)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_else(|| format!("{t:?}"))
                })),
            ),
        ];
        for (name, value) in entries {
            match fields.iter_mut().find(|(n, _)| n == name) {
                Some((_, set)) => {
                    set.insert(value);
                }
                None => fields.push((name.to_owned(), BTreeSet::from([value]))),
            }
        }
    }
    fields
}

fn handshake_diffs(
    a: &DecodedCapture,
    b: &DecodedCapture,
    views_a: &[ConnView],
    views_b: &[ConnView],
) -> Vec<FieldDiff> {
    let values_b = handshake_values(b);
    let minor = |views: &[ConnView]| views.iter().filter_map(|v| v.minor).max();
    let (minor_a, minor_b) = (minor(views_a), minor(views_b));
    let mut diffs = Vec::new();
    for (name, set_a) in handshake_values(a) {
        let Some((_, set_b)) = values_b.iter().find(|(n, _)| *n == name) else {
            continue;
        };
        if &set_a != set_b {
            let value = |set: &BTreeSet<String>| {
                Value::from(set.iter().cloned().collect::<Vec<_>>().join(" | "))
            };
            diffs.push(FieldDiff {
                path: format!("handshake.{name}"),
                a: Some(value(&set_a)),
                b: Some(value(set_b)),
                set: false,
                note: field_note("", &name, minor_a, minor_b),
            });
        }
    }
    diffs
}

fn one_sided(cx: &mut Context<'_>, view: &ConnView, presence: Presence) -> Option<ConnectionDiff> {
    let ops: Vec<OpDiff> = view
        .ops
        .iter()
        .filter(|op| {
            let keep = !cx.patterns.drops_op(&[op.op.as_str()]);
            if !keep {
                cx.dropped += 1;
            }
            keep
        })
        .map(|op| lone_op(op, presence))
        .collect();
    if ops.is_empty() {
        return None;
    }
    let (a_conn, b_conn) = match presence {
        Presence::Inserted => (None, Some(view.conn)),
        _ => (Some(view.conn), None),
    };
    Some(ConnectionDiff {
        a_conn,
        b_conn,
        presence,
        op_names: op_names(view),
        ops,
    })
}

fn lone_op(op: &OpView, presence: Presence) -> OpDiff {
    let (a_seq, b_seq) = match presence {
        Presence::Inserted => (None, Some(op.seq)),
        _ => (Some(op.seq), None),
    };
    OpDiff {
        a_seq,
        b_seq,
        op: op.op.clone(),
        b_op: None,
        key: op.key.clone(),
        presence,
        notes: Vec::new(),
        fields: Vec::new(),
    }
}

/// The differing ops of a pair of connections, and how many ops are
/// identical.
fn diff_connection(cx: &mut Context<'_>, a: &ConnView, b: &ConnView) -> (Vec<OpDiff>, usize) {
    let mut ops = Vec::new();
    let mut identical = 0;
    for step in align_ops(a, b) {
        match step {
            Step::Pair(i, j) => {
                let diff = diff_op(cx, a, &a.ops[i], b, &b.ops[j]);
                if diff.fields.is_empty() && diff.notes.is_empty() {
                    identical += 1;
                } else {
                    ops.push(diff);
                }
            }
            Step::OnlyA(i) => {
                if cx.patterns.drops_op(&[a.ops[i].op.as_str()]) {
                    cx.dropped += 1;
                } else {
                    ops.push(lone_op(&a.ops[i], Presence::Removed));
                }
            }
            Step::OnlyB(j) => {
                if cx.patterns.drops_op(&[b.ops[j].op.as_str()]) {
                    cx.dropped += 1;
                } else {
                    ops.push(lone_op(&b.ops[j], Presence::Inserted));
                }
            }
        }
    }
    (ops, identical)
}

fn diff_op(cx: &mut Context<'_>, ca: &ConnView, a: &OpView, cb: &ConnView, b: &OpView) -> OpDiff {
    let names = [a.op.as_str(), b.op.as_str()];
    let mut fields = Vec::new();
    let mut notes = Vec::new();
    let replaced = a.op != b.op;
    let drop_whole = cx.patterns.drops_op(&names);
    {
        if replaced {
            notes.push(format!(
                "{} sends {} where {} sent {}",
                cx.labels.1, b.op, cx.labels.0, a.op
            ));
        }
        let mut compare = Compare {
            options: cx.options,
            out: Vec::new(),
        };
        let outcome_a = outcome_key(&a.fields);
        let outcome_b = outcome_key(&b.fields);
        for key in ["request", "transfer"] {
            match (a.fields.get(key), b.fields.get(key)) {
                (Some(va), Some(vb)) if replaced => compare.common_keys(key, va, vb),
                (va, vb) => compare.optional(key, va, vb),
            }
        }
        if outcome_a == outcome_b {
            if let (Some(va), Some(vb)) = (a.fields.get(outcome_a), b.fields.get(outcome_b)) {
                if replaced {
                    compare.common_keys(outcome_a, va, vb);
                } else {
                    compare.value(outcome_a, va, vb);
                }
            }
        } else {
            compare.out.push(FieldDiff {
                path: "outcome".to_owned(),
                a: Some(outcome_summary(outcome_a, a.fields.get(outcome_a))),
                b: Some(outcome_summary(outcome_b, b.fields.get(outcome_b))),
                set: false,
                note: None,
            });
        }
        compare.log(&a.log, &b.log);
        if cx.options.timing {
            let (da, db) = (a.duration_nanos, b.duration_nanos);
            if da.abs_diff(db) > cx.options.timing_threshold_nanos {
                compare.out.push(FieldDiff {
                    path: "duration".to_owned(),
                    a: Some(Value::from(format_nanos(da))),
                    b: Some(Value::from(format_nanos(db))),
                    set: false,
                    note: None,
                });
            }
        }
        if drop_whole {
            if !compare.out.is_empty() || !notes.is_empty() {
                cx.dropped += 1;
            }
            compare.out.clear();
            notes.clear();
        }
        for mut field in compare.out {
            if cx.patterns.drops_field(&names, &field.path) {
                cx.dropped += 1;
                continue;
            }
            field.note = field
                .note
                .or_else(|| field_note(&a.op, &field.path, ca.minor, cb.minor));
            fields.push(field);
        }
    }
    OpDiff {
        a_seq: Some(a.seq),
        b_seq: Some(b.seq),
        op: a.op.clone(),
        b_op: replaced.then(|| b.op.clone()),
        key: a.key.clone().or_else(|| b.key.clone()),
        presence: Presence::Changed,
        notes,
        fields,
    }
}

fn outcome_key(fields: &Map<String, Value>) -> &'static str {
    if fields.contains_key("reply") {
        "reply"
    } else if fields.contains_key("error") {
        "error"
    } else {
        "outcome"
    }
}

fn outcome_summary(kind: &str, value: Option<&Value>) -> Value {
    match (kind, value) {
        ("error", Some(error)) => {
            let message = error.get("message").and_then(Value::as_str).unwrap_or("");
            Value::from(format!("error: {}", first_line(message)))
        }
        ("reply", _) => Value::from("reply"),
        _ => Value::from("unfinished"),
    }
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("")
}

fn format_nanos(nanos: u64) -> String {
    format!("{:.1} ms", nanos as f64 / 1e6)
}

/// Field-by-field comparison of JSON trees.
struct Compare<'a> {
    options: &'a Options,
    out: Vec<FieldDiff>,
}

impl Compare<'_> {
    fn push(&mut self, path: &str, a: Option<&Value>, b: Option<&Value>) {
        self.out.push(FieldDiff {
            path: path.to_owned(),
            a: a.cloned(),
            b: b.cloned(),
            set: false,
            note: None,
        });
    }

    fn optional(&mut self, path: &str, a: Option<&Value>, b: Option<&Value>) {
        match (a, b) {
            (Some(a), Some(b)) => self.value(path, a, b),
            (None, None) => {}
            (a, b) => self.push(path, a, b),
        }
    }

    /// Compares only the keys both objects have (for ops that replaced one
    /// another, whose other fields are different by design).
    fn common_keys(&mut self, path: &str, a: &Value, b: &Value) {
        if let (Value::Object(ma), Value::Object(mb)) = (a, b) {
            for (key, va) in ma {
                if let Some(vb) = mb.get(key) {
                    self.value(&format!("{path}.{key}"), va, vb);
                }
            }
        } else {
            self.value(path, a, b);
        }
    }

    fn within_threshold(&self, key: &str, a: &Value, b: &Value) -> bool {
        let (Some(a), Some(b)) = (a.as_u64(), b.as_u64()) else {
            return false;
        };
        let threshold = self.options.timing_threshold_nanos;
        let unit_threshold = if TIMESTAMP_KEYS.contains(&key) {
            threshold.div_ceil(1_000_000_000)
        } else if DURATION_KEYS.contains(&key) {
            threshold.div_ceil(1_000)
        } else {
            return false;
        };
        a.abs_diff(b) <= unit_threshold
    }

    fn value(&mut self, path: &str, a: &Value, b: &Value) {
        if a == b {
            return;
        }
        let key = last_key(path);
        match (a, b) {
            (Value::Object(ma), Value::Object(mb)) => {
                for (k, va) in ma {
                    let child = format!("{path}.{k}");
                    match mb.get(k) {
                        Some(vb) => self.value(&child, va, vb),
                        None => self.push(&child, Some(va), None),
                    }
                }
                for (k, vb) in mb {
                    if !ma.contains_key(k) {
                        self.push(&format!("{path}.{k}"), None, Some(vb));
                    }
                }
            }
            (Value::Array(la), Value::Array(lb)) if SET_KEYS.contains(&key) => {
                self.set(path, la, lb);
            }
            (Value::Array(la), Value::Array(lb)) if la.len() == lb.len() => {
                for (index, (va, vb)) in la.iter().zip(lb).enumerate() {
                    self.value(&format!("{path}[{index}]"), va, vb);
                }
            }
            _ if self.options.timing && self.within_threshold(key, a, b) => {}
            _ => self.push(path, Some(a), Some(b)),
        }
    }

    fn set(&mut self, path: &str, la: &[Value], lb: &[Value]) {
        let only = |x: &[Value], y: &[Value]| -> Vec<Value> {
            x.iter().filter(|v| !y.contains(v)).cloned().collect()
        };
        let (only_a, only_b) = (only(la, lb), only(lb, la));
        if only_a.is_empty() && only_b.is_empty() {
            // The same members in another order, or repeated: a set is
            // the same set.
            return;
        }
        if only_a.len() == 1 && only_b.len() == 1 && la.len() == lb.len() {
            // One member changed: show where inside it.
            let index = la.iter().position(|v| *v == only_a[0]).unwrap_or(0);
            self.value(&format!("{path}[{index}]"), &only_a[0], &only_b[0]);
            return;
        }
        self.out.push(FieldDiff {
            path: path.to_owned(),
            a: Some(Value::Array(only_a)),
            b: Some(Value::Array(only_b)),
            set: true,
            note: None,
        });
    }

    /// Aligns two log streams: equal messages pair, messages of the same
    /// kind pair and are compared field by field, the rest is inserted or
    /// removed.
    fn log(&mut self, a: &[Value], b: &[Value]) {
        if a == b {
            return;
        }
        let kind = |v: &Value| {
            (
                v.get("type").cloned(),
                v.get("activityType").cloned(),
                v.get("resultType").cloned(),
            )
        };
        let steps = align(a.len(), b.len(), |i, j| {
            if a[i] == b[j] {
                3
            } else if kind(&a[i]) == kind(&b[j]) {
                1
            } else {
                0
            }
        });
        for step in steps {
            match step {
                Step::Pair(i, j) => self.value(&format!("log[{i}]"), &a[i], &b[j]),
                Step::OnlyA(i) => self.push(&format!("log[{i}]"), Some(&a[i]), None),
                Step::OnlyB(j) => self.push(&format!("log[{j}]"), None, Some(&b[j])),
            }
        }
    }
}
