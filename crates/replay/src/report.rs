//! The divergence report: where a replay did not go as recorded.
//!
//! A replay diverges when a client asks for something the capture does not
//! answer, uploads something other than what was recorded, gets stuck in an
//! op whose recorded answer ends early, or speaks another protocol version.
//! Recorded ops that no client asked for are listed too, but do not count as
//! a divergence on their own: a capture may hold more than one test needs.

use std::fmt::Write as _;

use serde::Serialize;

/// One request the capture had no answer for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct UnmatchedRequest {
    /// The live connection, numbered from 1 in accept order.
    pub connection: u64,
    /// The op's number in its live connection, from 0.
    pub seq: u64,
    /// The op's name.
    pub op: String,
    /// The op's key argument (a store path, a name…), if it has one.
    pub key_argument: Option<String>,
}

/// One recorded op that no client asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct UnusedExchange {
    /// The recorded connection's id in the capture.
    pub recorded_connection: u64,
    /// The op's number in the recorded connection.
    pub seq: u64,
    /// The op's name.
    pub op: String,
    /// The op's key argument, if it has one.
    pub key_argument: Option<String>,
}

/// One upload whose payload differs from the recorded one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct UploadMismatch {
    /// The live connection.
    pub connection: u64,
    /// The op's number in its live connection.
    pub seq: u64,
    /// The op's name.
    pub op: String,
    /// The op's key argument, if it has one.
    pub key_argument: Option<String>,
    /// The recorded payload's SHA-256, in hex.
    pub recorded_sha256: String,
    /// The recorded payload's length in bytes.
    pub recorded_len: u64,
    /// The live payload's SHA-256, in hex.
    pub live_sha256: String,
    /// The live payload's length in bytes.
    pub live_len: u64,
}

/// A client stuck in an op whose recorded answer ends before the op does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Hang {
    /// The live connection.
    pub connection: u64,
    /// The op's number in its live connection.
    pub seq: u64,
    /// The op's name.
    pub op: String,
    /// The op's key argument, if it has one.
    pub key_argument: Option<String>,
    /// Why the capture has nothing more to send.
    pub reason: String,
}

/// A client refused because of its protocol version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Refusal {
    /// The live connection.
    pub connection: u64,
    /// The protocol version the client announced.
    pub client_version: String,
    /// The client versions the capture holds connections of.
    pub recorded_versions: Vec<String>,
}

/// A connection that ended in a way that is neither of the above: an I/O
/// error, or bytes from the client that could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct ConnectionProblem {
    /// The live connection.
    pub connection: u64,
    /// What happened.
    pub problem: String,
}

/// Everything that did not go as recorded, in one value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct DivergenceReport {
    /// Live connections accepted.
    pub connections: u64,
    /// Requests answered from the capture.
    pub served: u64,
    /// Requests the capture had no answer for.
    pub unmatched: Vec<UnmatchedRequest>,
    /// Uploads that differ from the recorded ones.
    pub upload_mismatches: Vec<UploadMismatch>,
    /// Clients stuck in an op the capture cannot finish.
    pub hangs: Vec<Hang>,
    /// Clients refused for their protocol version.
    pub refused: Vec<Refusal>,
    /// Connections that ended with an error.
    pub problems: Vec<ConnectionProblem>,
    /// Recorded ops that no client asked for.
    pub unused: Vec<UnusedExchange>,
}

impl DivergenceReport {
    /// Whether the clients saw anything other than the recorded answers to
    /// their recorded requests (unused recorded ops do not count).
    pub fn diverged(&self) -> bool {
        !(self.unmatched.is_empty()
            && self.upload_mismatches.is_empty()
            && self.hangs.is_empty()
            && self.refused.is_empty()
            && self.problems.is_empty())
    }

    /// The report as text for people, one finding per line.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "replay: {} connection(s), {} request(s) served from the capture, {}",
            self.connections,
            self.served,
            if self.diverged() {
                "diverged"
            } else {
                "no divergence"
            }
        );
        let arg =
            |key: &Option<String>| key.as_deref().map(|k| format!(" {k}")).unwrap_or_default();
        for u in &self.unmatched {
            let _ = writeln!(
                out,
                "  not in capture: connection {} op {}: {}{}",
                u.connection,
                u.seq,
                u.op,
                arg(&u.key_argument)
            );
        }
        for m in &self.upload_mismatches {
            let _ = writeln!(
                out,
                "  upload differs: connection {} op {}: {}{}: {} bytes sha256 {} (recorded {} bytes sha256 {})",
                m.connection,
                m.seq,
                m.op,
                arg(&m.key_argument),
                m.live_len,
                m.live_sha256,
                m.recorded_len,
                m.recorded_sha256
            );
        }
        for h in &self.hangs {
            let _ = writeln!(
                out,
                "  stuck: connection {} op {}: {}{}: {}",
                h.connection,
                h.seq,
                h.op,
                arg(&h.key_argument),
                h.reason
            );
        }
        for r in &self.refused {
            let _ = writeln!(
                out,
                "  refused: connection {}: client protocol {}, the capture holds {}",
                r.connection,
                r.client_version,
                r.recorded_versions.join(", ")
            );
        }
        for p in &self.problems {
            let _ = writeln!(out, "  connection {}: {}", p.connection, p.problem);
        }
        if !self.unused.is_empty() {
            let _ = writeln!(
                out,
                "  {} recorded op(s) never asked for:",
                self.unused.len()
            );
            for u in &self.unused {
                let _ = writeln!(
                    out,
                    "    recorded connection {} op {}: {}{}",
                    u.recorded_connection,
                    u.seq,
                    u.op,
                    arg(&u.key_argument)
                );
            }
        }
        out
    }
}
