//! The divergence report: where a replay did not go as recorded.
//!
//! A replay diverges when a client asks for something the capture does not
//! answer, uploads something other than what was recorded, gets stuck in an
//! op whose recorded answer ends early, speaks another protocol version
//! (unless versions are translated), or needs an answer its version cannot
//! express. With translation, the changes made to recorded answers are
//! listed, counted, but do not count as a divergence on their own.
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

/// A live connection served from recorded connections of another protocol
/// version (`--version-policy translate`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct TranslatedConnection {
    /// The live connection.
    pub connection: u64,
    /// The protocol version the client announced.
    pub client_version: String,
    /// The version in effect on the live connection.
    pub negotiated: String,
    /// The client versions the capture holds connections of.
    pub recorded_versions: Vec<String>,
}

/// One kind of change made to recorded answers for clients of another
/// version, and how often it was made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct AppliedTranslation {
    /// The op or message (`BuildPathsWithResults`, `STDERR_ERROR`, `handshake`).
    pub subject: String,
    /// The field, such as `cpuUser, cpuSystem`.
    pub field: String,
    /// `dropped`, `filled`, `converted` or `mapped`.
    pub action: nixcap_wire::translate::Action,
    /// What was done and why, with the value filled in.
    pub detail: String,
    /// The recorded version translated from.
    pub from: String,
    /// The live version translated to.
    pub to: String,
    /// How many times.
    pub count: u64,
}

/// A recorded answer that the client's version cannot express.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Untranslated {
    /// The live connection.
    pub connection: u64,
    /// The op's number in its live connection.
    pub seq: u64,
    /// The op's name.
    pub op: String,
    /// The op's key argument, if it has one.
    pub key_argument: Option<String>,
    /// Why it cannot be expressed.
    pub reason: String,
}

/// An answer made up from the rest of the capture for a request that a
/// client of another version asks and the recorded client did not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct DerivedAnswer {
    /// The live connection.
    pub connection: u64,
    /// The op's number in its live connection.
    pub seq: u64,
    /// The op's name.
    pub op: String,
    /// The op's key argument, if it has one.
    pub key_argument: Option<String>,
    /// How the answer was made.
    pub how: String,
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
    /// Live connections served across protocol versions.
    pub translated: Vec<TranslatedConnection>,
    /// The changes made to recorded answers for those connections.
    pub translations: Vec<AppliedTranslation>,
    /// Recorded answers their client's version cannot express (each got an
    /// error instead).
    pub untranslatable: Vec<Untranslated>,
    /// Answers made up from the capture for requests of a client of another
    /// version that the recorded client did not make.
    pub derived: Vec<DerivedAnswer>,
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
            && self.problems.is_empty()
            && self.untranslatable.is_empty())
    }

    /// Counts one application of `note`, from version `from` to `to`.
    pub(crate) fn count_translation(
        &mut self,
        note: &nixcap_wire::translate::Translation,
        from: &str,
        to: &str,
    ) {
        let existing = self.translations.iter_mut().find(|t| {
            t.subject == note.subject
                && t.field == note.field
                && t.action == note.action
                && t.detail == note.detail
                && t.from == from
                && t.to == to
        });
        match existing {
            Some(t) => t.count += 1,
            None => self.translations.push(AppliedTranslation {
                subject: note.subject.clone(),
                field: note.field.clone(),
                action: note.action,
                detail: note.detail.clone(),
                from: from.to_owned(),
                to: to.to_owned(),
                count: 1,
            }),
        }
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
        for u in &self.untranslatable {
            let _ = writeln!(
                out,
                "  cannot translate: connection {} op {}: {}{}: {}",
                u.connection,
                u.seq,
                u.op,
                arg(&u.key_argument),
                u.reason
            );
        }
        for d in &self.derived {
            let _ = writeln!(
                out,
                "  derived: connection {} op {}: {}{}: {}",
                d.connection,
                d.seq,
                d.op,
                arg(&d.key_argument),
                d.how
            );
        }
        for t in &self.translated {
            let _ = writeln!(
                out,
                "  translated: connection {}: client protocol {} (negotiated {}), the capture holds {}",
                t.connection,
                t.client_version,
                t.negotiated,
                t.recorded_versions.join(", ")
            );
        }
        for t in &self.translations {
            let action = match t.action {
                nixcap_wire::translate::Action::Dropped => "dropped",
                nixcap_wire::translate::Action::Filled => "filled in",
                nixcap_wire::translate::Action::Converted => "converted",
                nixcap_wire::translate::Action::Mapped => "mapped",
            };
            let _ = writeln!(
                out,
                "    {} → {}: {} {}: {action}, {} time(s): {}",
                t.from, t.to, t.subject, t.field, t.count, t.detail
            );
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
