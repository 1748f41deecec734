//! nixcap-diff: a protocol-level comparison of two captures.
//!
//! [`diff`] takes two decoded captures and returns a [`Report`]: what
//! differs in the handshakes (once, as a header), which connections of one
//! capture have no counterpart in the other, and, for each pair of
//! connections, the ops only one side sent and the field-by-field
//! differences of the ops both sent — requests, replies or errors, and log
//! streams, each compared as a JSON tree from the wire types' serde form.
//!
//! - Connections are paired by what they do: the order-preserving pairing
//!   that maximises how well their op sequences (op, key argument, request)
//!   align, so a connection missing on one side does not shift the rest.
//! - Ops are aligned the same way inside a pair of connections. Ops that do
//!   the same job in different protocol versions (BuildPaths and
//!   BuildPathsWithResults, AddToStoreNar and AddMultipleToStore…) pair up
//!   and are reported as a replacement, in words.
//! - Values that vary from run to run are normalised first (see
//!   [`nixcap_view::normalise`]): timestamps, durations, activity ids,
//!   pids, temporary directories. With [`Options::timing`] times are kept
//!   and compared, and op durations too, beyond a threshold.
//! - Sets (references, signatures, path lists…) are compared as sets.
//! - Differences that a protocol minor explains carry a note ("BuildResult
//!   field added in protocol 1.37").
//! - [`Options::ignore`] drops fields by pattern (see [`ignore`]);
//!   [`learn_noise`] finds the fields that differ between two recordings of
//!   the same side, for [`diff_with_baseline`].
//!
//! The engine is pure: no I/O, no clock. The report prints as text
//! ([`std::fmt::Display`]) and serialises to JSON.

mod align;
mod engine;
pub mod ignore;
mod render;
mod versions;

use nixcap_view::DecodedCapture;
use serde::Serialize;
use serde_json::Value;

/// What to compare and what to leave out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Field patterns to drop (see [`ignore`]).
    pub ignore: Vec<String>,
    /// Compare timestamps, CPU times and op durations instead of
    /// normalising them away.
    pub timing: bool,
    /// With [`Options::timing`], time differences at or below this many
    /// nanoseconds are not reported (timestamps in seconds and CPU times in
    /// microseconds are compared at their own unit, rounded up).
    pub timing_threshold_nanos: u64,
    /// Names for the two sides; by default the daemon Nix versions when
    /// they differ, else `A` and `B`.
    pub labels: Option<(String, String)>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            ignore: Vec::new(),
            timing: false,
            timing_threshold_nanos: 100_000_000,
            labels: None,
        }
    }
}

/// The result of a comparison.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// A summary of the first capture.
    pub a: Side,
    /// A summary of the second capture.
    pub b: Side,
    /// Differences of the handshakes: `handshake.<field>`, with the sets of
    /// values seen on each side.
    pub handshake: Vec<FieldDiff>,
    /// The connections that differ, in A's order (connections only in B
    /// where they fall).
    pub connections: Vec<ConnectionDiff>,
    /// How many pairs of connections are identical.
    pub identical_connections: usize,
    /// How many pairs of ops are identical.
    pub identical_ops: usize,
    /// The patterns given to ignore.
    pub ignored: Vec<String>,
    /// The patterns learned from a baseline, if one was given.
    pub learned: Option<Vec<String>>,
    /// How many differences the patterns dropped.
    pub dropped: usize,
}

impl Report {
    /// Whether the captures are the same (after normalisation and ignores).
    pub fn is_identical(&self) -> bool {
        self.handshake.is_empty() && self.connections.is_empty()
    }

    /// Every field difference, with its connection and op, for tests and
    /// tools.
    pub fn field_diffs(&self) -> impl Iterator<Item = (&ConnectionDiff, &OpDiff, &FieldDiff)> {
        self.connections.iter().flat_map(|connection| {
            connection
                .ops
                .iter()
                .flat_map(move |op| op.fields.iter().map(move |field| (connection, op, field)))
        })
    }
}

/// A summary of one capture.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Side {
    /// The name used in the report.
    pub label: String,
    /// Connections.
    pub connections: usize,
    /// Ops, over all connections.
    pub ops: usize,
    /// Distinct daemon Nix versions.
    pub daemon_nix_versions: Vec<String>,
    /// Distinct negotiated protocol versions.
    pub protocols: Vec<String>,
}

/// Whether something is on both sides or one only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Presence {
    /// On both sides, with differences.
    Changed,
    /// Only in A.
    Removed,
    /// Only in B.
    Inserted,
}

/// The differences of one pair of connections, or a connection of one
/// side only.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionDiff {
    /// The connection id in A.
    pub a_conn: Option<u64>,
    /// The connection id in B.
    pub b_conn: Option<u64>,
    /// Whether the connection is on both sides.
    pub presence: Presence,
    /// The op names of the connection (A's if it has one), for orientation.
    pub op_names: Vec<String>,
    /// The ops that differ (all of them for a one-sided connection).
    pub ops: Vec<OpDiff>,
}

/// The differences of one pair of ops, or an op of one side only.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OpDiff {
    /// The op's number in A's connection.
    pub a_seq: Option<u64>,
    /// The op's number in B's connection.
    pub b_seq: Option<u64>,
    /// The op (A's, if A has it).
    pub op: String,
    /// B's op, when B sent a different op for the same job.
    pub b_op: Option<String>,
    /// The argument the op is about (a path, a name), if it has one.
    pub key: Option<String>,
    /// Whether the op is on both sides.
    pub presence: Presence,
    /// What the diff recognised, in words.
    pub notes: Vec<String>,
    /// The field differences.
    pub fields: Vec<FieldDiff>,
}

/// One field that differs.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FieldDiff {
    /// Where: `request.…`, `reply.…`, `error.…`, `outcome`, `log[i]…`,
    /// `transfer.…`, `duration`, or `handshake.…`.
    pub path: String,
    /// A's value (`None`: absent in A). For sets, the members only A has.
    pub a: Option<Value>,
    /// B's value (`None`: absent in B). For sets, the members only B has.
    pub b: Option<Value>,
    /// Whether the field was compared as a set.
    pub set: bool,
    /// What explains the difference, when the diff knows.
    pub note: Option<String>,
}

/// Compares two captures.
pub fn diff(a: &DecodedCapture, b: &DecodedCapture, options: &Options) -> Report {
    engine::diff(a, b, options)
}

/// The patterns of the differences between two recordings of the same
/// side: fields as `Op:path` (indices removed), ops inserted or removed as
/// their op name, handshake fields as `handshake.<field>`.
pub fn learn_noise(a: &DecodedCapture, a2: &DecodedCapture, options: &Options) -> Vec<String> {
    let report = engine::diff(a, a2, options);
    let mut learned = Vec::new();
    for field in &report.handshake {
        learned.push(field.path.clone());
    }
    for connection in &report.connections {
        for op in &connection.ops {
            if op.presence != Presence::Changed {
                learned.push(op.op.clone());
                continue;
            }
            for field in &op.fields {
                let keys = ignore::path_keys(&field.path).join(".");
                learned.push(format!("{}:{keys}", op.op));
                if let Some(b_op) = &op.b_op {
                    learned.push(format!("{b_op}:{keys}"));
                }
            }
        }
    }
    learned.sort();
    learned.dedup();
    learned
}

/// Compares `a` with `b`, leaving out what differs between `a` and
/// `baseline` (a second recording of A's side).
pub fn diff_with_baseline(
    a: &DecodedCapture,
    baseline: &DecodedCapture,
    b: &DecodedCapture,
    options: &Options,
) -> Report {
    let learned = learn_noise(a, baseline, options);
    let mut with_noise = options.clone();
    with_noise.ignore.extend(learned.iter().cloned());
    let mut report = engine::diff(a, b, &with_noise);
    report.ignored = options.ignore.clone();
    report.learned = Some(learned);
    report
}

#[cfg(test)]
mod tests;
