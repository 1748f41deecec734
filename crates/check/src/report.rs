//! The result of a check: the diff engine's report comparing the recorded
//! answers (A, "recorded") with the target's (B, "target"), plus what went
//! wrong on the way — a target that hung, closed a connection or sent bytes
//! that cannot be decoded, with its connection and op.

use std::fmt;

use nixcap_wire::translate::Translation;
use serde::Serialize;

/// What kind of problem a connection ran into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub enum ProblemKind {
    /// The target's socket could not be reached.
    Connect,
    /// The target sent nothing (or read nothing) for longer than the
    /// timeout.
    Hang,
    /// The target closed the connection before its answer was complete.
    Closed,
    /// The target sent bytes that cannot be what the protocol expects.
    Undecodable,
    /// The target refused the connection in its handshake.
    Refused,
    /// Reading or writing the socket failed otherwise.
    Io,
    /// The capture holds something that cannot be played (undecoded
    /// requests, a request the target's older version cannot express).
    Unplayable,
    /// `--setup` could not import a store object.
    Setup,
}

impl ProblemKind {
    /// Whether the problem says nothing about the target's conformance but
    /// keeps the check from judging it (exit status 2).
    pub fn is_trouble(self) -> bool {
        matches!(
            self,
            ProblemKind::Connect | ProblemKind::Unplayable | ProblemKind::Setup
        )
    }
}

/// Something that went wrong on one connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Problem {
    /// The recorded connection's id.
    pub conn: u64,
    /// The op's number in the connection, when it happened in an op.
    pub seq: Option<u64>,
    /// The op's name.
    pub op: Option<String>,
    /// What kind of problem.
    pub kind: ProblemKind,
    /// What happened, in words.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "conn {}", self.conn)?;
        match (&self.seq, &self.op) {
            (Some(seq), Some(op)) => write!(f, " · op {seq} {op}")?,
            (Some(seq), None) => write!(f, " · op {seq}")?,
            (None, Some(op)) => write!(f, " · {op}")?,
            (None, None) => {}
        }
        write!(f, ": {}", self.message)
    }
}

/// One change made to what was sent, so that a target of another protocol
/// version could take it: the change from `nixcap_wire::translate` (subject,
/// field, action, detail) with the connection and op it was made for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TranslationNote {
    /// The recorded connection's id.
    pub conn: u64,
    /// The op's number in the connection; none for the handshake.
    pub seq: Option<u64>,
    /// The change.
    #[serde(flatten)]
    pub change: Translation,
}

impl TranslationNote {
    fn place(&self) -> String {
        match self.seq {
            Some(seq) => format!("conn {} · op {seq}", self.conn),
            None => format!("conn {}", self.conn),
        }
    }
}

/// What `--setup` did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SetupSummary {
    /// Store paths imported into the target.
    pub imported: Vec<String>,
    /// Store paths the target already had.
    pub present: Vec<String>,
    /// Store paths the capture asks about but whose contents never crossed
    /// the wire, so they cannot be imported.
    pub missing: Vec<String>,
}

/// The verdict of a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Verdict {
    /// The target answered as recorded (after normalisation and ignores).
    Same,
    /// The target's answers differ, or it misbehaved.
    Different,
    /// The check could not judge (the target could not be reached, the
    /// capture cannot be played in full).
    Trouble,
}

/// The result of [`crate::check`].
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckReport {
    /// `"v": 1`, as every JSON record of nixcap.
    pub v: u32,
    /// The target's address.
    pub target: String,
    /// The target's Nix version, from its handshake (1.33 and later).
    pub target_nix_version: Option<String>,
    /// The protocol versions negotiated with the target.
    pub target_protocols: Vec<String>,
    /// Connections played.
    pub connections: usize,
    /// Ops sent to the target.
    pub ops_sent: usize,
    /// Ops in the capture.
    pub ops_recorded: usize,
    /// What `--setup` did, if it ran.
    pub setup: Option<SetupSummary>,
    /// How the handshake and requests were re-expressed for a target that
    /// negotiated other than the recording (an older protocol, fewer
    /// features), by connection and op.
    pub translations: Vec<TranslationNote>,
    /// What went wrong on the way, by connection and op.
    pub problems: Vec<Problem>,
    /// The comparison of the recorded answers (A) with the target's (B).
    pub diff: nixcap_diff::Report,
    /// The verdict.
    pub verdict: Verdict,
}

impl CheckReport {
    pub(crate) fn decide(&mut self) {
        self.verdict = if self.problems.iter().any(|p| p.kind.is_trouble()) {
            Verdict::Trouble
        } else if self.problems.is_empty() && self.diff.is_identical() {
            Verdict::Same
        } else {
            Verdict::Different
        };
    }

    /// Whether the target answered as recorded.
    pub fn is_same(&self) -> bool {
        self.verdict == Verdict::Same
    }
}

impl fmt::Display for CheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "checked {} connections, {} of {} recorded ops sent to {}",
            self.connections, self.ops_sent, self.ops_recorded, self.target
        )?;
        if let Some(version) = &self.target_nix_version {
            write!(f, " (Nix {version}")?;
            if !self.target_protocols.is_empty() {
                write!(f, ", protocol {}", self.target_protocols.join(" | "))?;
            }
            write!(f, ")")?;
        }
        writeln!(f)?;
        if let Some(setup) = &self.setup {
            writeln!(
                f,
                "setup: {} store paths imported, {} already present, {} not importable (their contents are not in the capture)",
                setup.imported.len(),
                setup.present.len(),
                setup.missing.len()
            )?;
        }
        if !self.translations.is_empty() {
            // The same change made on many connections or ops is one line.
            let mut lines: Vec<(String, Vec<String>)> = Vec::new();
            for note in &self.translations {
                let text = note.change.to_string();
                match lines.iter_mut().find(|(t, _)| *t == text) {
                    Some((_, places)) => places.push(note.place()),
                    None => lines.push((text, vec![note.place()])),
                }
            }
            writeln!(f)?;
            writeln!(f, "translated for the target's protocol:")?;
            for (text, places) in lines {
                writeln!(f, "  {text} — {}", places.join(", "))?;
            }
        }
        if !self.problems.is_empty() {
            writeln!(f)?;
            writeln!(f, "problems:")?;
            for problem in &self.problems {
                writeln!(f, "  {problem}")?;
            }
        }
        writeln!(f)?;
        write!(f, "{}", self.diff)?;
        match self.verdict {
            Verdict::Same => writeln!(f, "verdict: same"),
            Verdict::Different => writeln!(f, "verdict: different"),
            Verdict::Trouble => {
                writeln!(f, "verdict: trouble (the check could not judge everything)")
            }
        }
    }
}
