//! Translating log messages, errors and the daemon's post-handshake fields
//! between protocol versions.

use crate::bytes::ByteString;
use crate::handshake::{DaemonNixVersion, Trust};
use crate::primitives::Writer;
use crate::stderr::{ErrorInfo, StderrMessage};
use crate::version::Negotiated;

use super::{Action, Notes, Translated};

/// Translates a log message or error decoded at `_from` for a client at
/// `to`. `None`: a daemon at `to` sends nothing for it. (A message holds
/// its own form, so the source version only documents the direction.)
///
/// `verbosity` is the client's verbosity from its SetOptions (Nix's
/// levels: 0 error … 7 vomit), which decides below 1.20 whether the start
/// of an activity is logged.
pub fn stderr(
    message: &StderrMessage,
    _from: &Negotiated,
    to: &Negotiated,
    verbosity: u64,
) -> Translated<Option<StderrMessage>> {
    let subject = match message {
        StderrMessage::Error(_) => "STDERR_ERROR",
        StderrMessage::StartActivity { .. } => "STDERR_START_ACTIVITY",
        StderrMessage::StopActivity { .. } => "STDERR_STOP_ACTIVITY",
        StderrMessage::Result { .. } => "STDERR_RESULT",
        _ => "STDERR",
    };
    let mut notes = Notes::new(subject, to);
    let value = match message {
        StderrMessage::Error(info) => Some(StderrMessage::Error(error(info, to, &mut notes))),
        StderrMessage::StartActivity { level, text, .. } if !to.at_least(20) => {
            if !text.as_bytes().is_empty() && *level <= verbosity {
                notes.add(
                    "activity",
                    Action::Converted,
                    "activities exist from protocol 1.20; below, a daemon logs the start of one \
                     as a line `<text>...`",
                );
                let mut line = text.as_bytes().to_vec();
                line.extend_from_slice(b"...\n");
                Some(StderrMessage::Next {
                    text: ByteString::from(line),
                })
            } else {
                notes.add(
                    "activity",
                    Action::Dropped,
                    "activities exist from protocol 1.20; below, a daemon logs nothing for one \
                     without text or above the client's verbosity",
                );
                None
            }
        }
        StderrMessage::StopActivity { .. } | StderrMessage::Result { .. } if !to.at_least(20) => {
            notes.add(
                "activity",
                Action::Dropped,
                "activities exist from protocol 1.20; below, a daemon sends nothing for results \
                 and ends",
            );
            None
        }
        other => Some(other.clone()),
    };
    notes.done(value)
}

pub(super) fn error(info: &ErrorInfo, to: &Negotiated, notes: &mut Notes) -> ErrorInfo {
    match info {
        ErrorInfo::Legacy {
            message,
            exit_status,
        } if to.at_least(26) => {
            notes.add(
                "format",
                Action::Converted,
                format!(
                    "errors are structured from protocol 1.26: level 0, name Error; exit status \
                     {exit_status} dropped"
                ),
            );
            ErrorInfo::Structured {
                level: 0,
                name: ByteString::from("Error"),
                message: message.clone(),
                traces: Vec::new(),
            }
        }
        ErrorInfo::Structured {
            message, traces, ..
        } if !to.at_least(26) => {
            notes.add(
                "format",
                Action::Converted,
                "errors below protocol 1.26 are a message and an exit status: status 1, traces \
                 appended to the message",
            );
            let mut text = message.as_bytes().to_vec();
            for trace in traces {
                text.push(b'\n');
                text.extend_from_slice(trace.as_bytes());
            }
            ErrorInfo::Legacy {
                message: ByteString::from(text),
                exit_status: 1,
            }
        }
        other => other.clone(),
    }
}

/// The daemon's fields after the handshake's features, for a client at
/// `to`: its Nix version (≥ 1.33) and whether it trusts the client
/// (≥ 1.35), from what was recorded (`None` where the recording's version
/// did not carry them).
///
/// A field the recording lacks is filled in: the Nix version as an empty
/// string, the trust as "unknown" (what a daemon that cannot tell sends).
pub fn daemon_post(
    nix_version: Option<&ByteString>,
    trust: Option<Trust>,
    to: &Negotiated,
) -> Translated<Vec<u8>> {
    let mut notes = Notes::new("handshake", to);
    let mut w = Writer::new();
    if to.at_least(33) {
        match nix_version {
            Some(version) => DaemonNixVersion(version.clone()).encode(&mut w),
            None => {
                notes.add(
                    "daemonNixVersion",
                    Action::Filled,
                    "added in protocol 1.33; the recording did not carry it, so it is empty",
                );
                DaemonNixVersion(ByteString::default()).encode(&mut w);
            }
        }
    } else if nix_version.is_some() {
        notes.add(
            "daemonNixVersion",
            Action::Dropped,
            format!("added in protocol 1.33; not sent at {}", to.version),
        );
    }
    if to.at_least(35) {
        match trust {
            Some(trust) => trust.encode(&mut w),
            None => {
                notes.add(
                    "trust",
                    Action::Filled,
                    "added in protocol 1.35; the recording did not carry it, so it is unknown",
                );
                Trust::Unknown.encode(&mut w);
            }
        }
    } else if trust.is_some() {
        notes.add(
            "trust",
            Action::Dropped,
            format!("added in protocol 1.35; not sent at {}", to.version),
        );
    }
    notes.done(w.into_bytes())
}
