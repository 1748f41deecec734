//! The op table: one row per operation of a decoded capture, for analysis.
//!
//! Each [`OpRow`] says which capture, host and connection an operation came
//! from, the protocol versions of its connection, the op, when it started
//! and how long it took (wall clock, UTC), the bytes each way, how it ended
//! (the reply's one-line summary, or the daemon's error message) and how
//! many distinct store paths its request and reply name. `parquet` writes
//! these rows as a Parquet file; the rows themselves know nothing about any
//! file format.

use std::collections::BTreeSet;

use nixcap_view::display::{clean, reply_summary, serve_reply_summary};
use nixcap_view::{DecodedCapture, Outcome};
use serde_json::Value;

/// One operation, flattened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpRow {
    /// The capture it came from, as the caller names it (a path or URL).
    pub capture: String,
    /// The host that recorded it (header metadata `hostname`), or `unknown`.
    pub host: String,
    /// The connection id within the capture.
    pub conn: u64,
    /// The op's number in its connection, from 0.
    pub seq: u64,
    /// The protocol version the client announced, `major.minor`.
    pub client_protocol: Option<String>,
    /// The protocol version the daemon announced.
    pub daemon_protocol: Option<String>,
    /// The negotiated protocol version.
    pub protocol: Option<String>,
    /// The daemon's Nix version (protocol 1.33 and later).
    pub daemon_nix_version: Option<String>,
    /// The client's Nix version, when the capture's metadata names it
    /// (`nix-version`); the protocol does not carry it.
    pub client_nix_version: Option<String>,
    /// The op name (`QueryPathInfo`, or `op 123` for an unknown op word).
    pub op: String,
    /// When the request was complete, nanoseconds since the Unix epoch.
    pub start_unix_nanos: u64,
    /// From the request to the op's last event, in nanoseconds.
    pub duration_nanos: u64,
    /// Bytes of this op sent by the client (request and upload).
    pub bytes_client_to_daemon: u64,
    /// Bytes of this op sent by the daemon (log, reply, download).
    pub bytes_daemon_to_client: u64,
    /// `ok`, `error` or `unfinished`.
    pub status: &'static str,
    /// The reply's one-line summary (`valid, narSize 1234`, `3 paths`,
    /// `PermanentFailure: …`), when the daemon replied. Terminal escape
    /// sequences are removed and other control characters escaped, here and
    /// in [`OpRow::error`].
    pub result: Option<String>,
    /// The daemon's error message, when it sent `STDERR_ERROR`.
    pub error: Option<String>,
    /// Distinct store paths named in the request and the reply.
    pub paths: u64,
}

/// The host name recorded in a capture's header, or `unknown`.
pub fn capture_host(capture: &DecodedCapture) -> String {
    capture
        .capture
        .header
        .metadata
        .get("hostname")
        .filter(|h| !h.is_empty())
        .cloned()
        .unwrap_or_else(|| "unknown".to_owned())
}

/// The rows of every operation of `capture`, in connection order and then
/// op order; `name` fills [`OpRow::capture`].
pub fn op_rows(capture: &DecodedCapture, name: &str) -> Vec<OpRow> {
    let host = capture_host(capture);
    let start = capture.capture.header.start_unix_nanos;
    let client_nix_version = capture.capture.header.metadata.get("nix-version").cloned();
    let mut rows = Vec::new();
    for connection in &capture.connections {
        let session = &connection.session;
        let client_protocol = session.client_version.map(|v| v.to_string());
        let daemon_protocol = session.daemon_version.map(|v| v.to_string());
        let protocol = session.negotiated.as_ref().map(|n| n.version.to_string());
        let daemon_nix_version = session
            .daemon_nix_version
            .as_ref()
            .map(|v| v.to_string_lossy().into_owned());
        for exchange in &connection.exchanges {
            let (status, result, error) = match &exchange.outcome {
                Outcome::Reply(reply) => ("ok", Some(clean(&reply_summary(reply))), None),
                Outcome::Error(info) => (
                    "error",
                    None,
                    Some(clean(&info.message().to_string_lossy())),
                ),
                Outcome::ServeReply(reply) => {
                    ("ok", Some(clean(&serve_reply_summary(reply))), None)
                }
                Outcome::Downloaded => ("ok", None, None),
                Outcome::Unfinished => ("unfinished", None, None),
            };
            let mut paths = BTreeSet::new();
            if let Some(request) = &exchange.request {
                if let Ok(value) = serde_json::to_value(request) {
                    collect_store_paths(&value, &mut paths);
                }
            }
            if let Some(request) = &exchange.serve_request {
                if let Ok(value) = serde_json::to_value(request) {
                    collect_store_paths(&value, &mut paths);
                }
            }
            if let Outcome::Reply(reply) = &exchange.outcome {
                if let Ok(value) = serde_json::to_value(reply) {
                    collect_store_paths(&value, &mut paths);
                }
            }
            if let Outcome::ServeReply(reply) = &exchange.outcome {
                if let Ok(value) = serde_json::to_value(reply) {
                    collect_store_paths(&value, &mut paths);
                }
            }
            rows.push(OpRow {
                capture: name.to_owned(),
                host: host.clone(),
                conn: connection.conn,
                seq: exchange.seq,
                client_protocol: client_protocol.clone(),
                daemon_protocol: daemon_protocol.clone(),
                protocol: protocol.clone(),
                daemon_nix_version: daemon_nix_version.clone(),
                client_nix_version: client_nix_version.clone(),
                op: exchange.op_name(),
                start_unix_nanos: start.saturating_add(exchange.start_nanos),
                duration_nanos: exchange.end_nanos.saturating_sub(exchange.start_nanos),
                bytes_client_to_daemon: exchange.client_bytes,
                bytes_daemon_to_client: exchange.daemon_bytes,
                status,
                result,
                error,
                paths: paths.len() as u64,
            });
        }
    }
    rows
}

/// Adds to `out` every string in `value` that is a store path (or a derived
/// path such as `/nix/store/…-x.drv!out`), keyed by the path itself.
fn collect_store_paths(value: &Value, out: &mut BTreeSet<String>) {
    match value {
        Value::String(s) => {
            if let Some(path) = store_path_prefix(s) {
                out.insert(path.to_owned());
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_store_paths(v, out)),
        Value::Object(map) => {
            // Keys of maps (output names to paths, path to info) can be paths too.
            for (key, v) in map {
                if let Some(path) = store_path_prefix(key) {
                    out.insert(path.to_owned());
                }
                collect_store_paths(v, out);
            }
        }
        _ => {}
    }
}

/// The store path at the start of `s` (up to a `!` of a derived path), if
/// `s` is an absolute path whose last component is a store object name: 32
/// characters of Nix's base-32 alphabet, `-`, and a name.
fn store_path_prefix(s: &str) -> Option<&str> {
    if !s.starts_with('/') {
        return None;
    }
    let path = s.split('!').next().unwrap_or(s);
    let base = path.rsplit('/').next()?;
    let (hash, name) = (base.get(..32)?, base.get(32..)?);
    let nix32 = |c: char| c.is_ascii_digit() || (c.is_ascii_lowercase() && !"eotu".contains(c));
    (hash.chars().all(nix32) && name.len() > 1 && name.starts_with('-')).then_some(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_paths_are_recognised_by_shape() {
        let path = "/nix/store/2ysmq5m1w2whls8zqkhlrm4g9wf6yf8n-hello.txt";
        assert_eq!(store_path_prefix(path), Some(path));
        assert_eq!(
            store_path_prefix("/nix/store/2ysmq5m1w2whls8zqkhlrm4g9wf6yf8n-x.drv!out"),
            Some("/nix/store/2ysmq5m1w2whls8zqkhlrm4g9wf6yf8n-x.drv")
        );
        // `e`, `o`, `t`, `u` are not in Nix's base-32 alphabet.
        assert_eq!(
            store_path_prefix("/nix/store/eysmq5m1w2whls8zqkhlrm4g9wf6yf8n-x"),
            None
        );
        assert_eq!(store_path_prefix("/nix/store"), None);
        assert_eq!(
            store_path_prefix("2ysmq5m1w2whls8zqkhlrm4g9wf6yf8n-x"),
            None
        );
        assert_eq!(
            store_path_prefix("/nix/store/2ysmq5m1w2whls8zqkhlrm4g9wf6yf8n-"),
            None
        );
    }

    #[test]
    fn paths_are_counted_once_wherever_they_appear() {
        let a = "/nix/store/2ysmq5m1w2whls8zqkhlrm4g9wf6yf8n-a";
        let b = "/nix/store/3ysmq5m1w2whls8zqkhlrm4g9wf6yf8n-b";
        let value = serde_json::json!({
            "path": a,
            "references": [a, b, "not a path"],
            "outputs": { b: { "x": 1 } },
        });
        let mut out = BTreeSet::new();
        collect_store_paths(&value, &mut out);
        assert_eq!(out.into_iter().collect::<Vec<_>>(), vec![a, b]);
    }
}
