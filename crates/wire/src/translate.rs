//! Translation between protocol versions: a request, reply, log message or
//! error decoded at one negotiation, re-expressed for a peer of another
//! (protocol minors 1.10 to 1.38, with or without the 1.38 features).
//!
//! Every change is listed as a [`Translation`]: a field the target version
//! does not carry is dropped, a field it carries but the source did not is
//! filled in, a value whose form differs is converted, and an op the target
//! has no use for is mapped onto the op Nix's own compatibility code uses.
//! What cannot be expressed at the target is [`Untranslatable`], with the
//! reason, rather than guessed.
//!
//! The values filled in are the ones a real Nix peer of the target version
//! holds or sends when the other side is of the source version:
//!
//! - `BuildResult` (§3.4): `timesBuilt` 0, `isNonDeterministic` false,
//!   `startTime`/`stopTime` 0 (below 1.29 the client keeps its defaults),
//!   `cpuUser`/`cpuSystem` absent (below 1.37, and what a daemon sends
//!   when it measured nothing), `builtOutputs` empty (below 1.28).
//! - path infos (§3.1): `ultimate` false, `sigs` empty, `ca` none below
//!   1.16.
//! - `QueryValidPaths.substitute` false below 1.27 (the daemon then does not
//!   substitute), `BuildPaths.mode` Normal below 1.15, SetOptions'
//!   overrides empty below 1.12, QuerySubstitutablePathInfos' content
//!   addresses none below 1.22.
//! - errors: a legacy error (below 1.26) becomes a structured one of level
//!   0 (error) and name `Error`, as 2.x daemons send; a structured error
//!   becomes a legacy one with exit status 1 (`Error`'s default status) and
//!   the traces appended to the message.
//! - activity messages below 1.20: a daemon's logger turns the start of an
//!   activity with text into a `STDERR_NEXT` of `<text>...` (when the
//!   activity's level is within the client's verbosity) and sends nothing
//!   for its results and its end.
//!
//! The ops mapped, as `RemoteStore` does for an older daemon:
//! `BuildPathsWithResults` becomes `BuildPaths` below 1.34, and AddToStore's
//! legacy arguments (below 1.25) and its content-address form convert into
//! each other where both can say the same thing.

use serde::Serialize;

use crate::ops::Reply;
use crate::stderr::ErrorInfo;
use crate::version::{feature, Negotiated};

mod log;
mod reply;
mod request;

pub use log::*;
pub use reply::*;
pub use request::*;

/// What happened to one field or op.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// The target does not carry the field; its value was dropped.
    Dropped,
    /// The target carries a field the source did not; it was filled in.
    Filled,
    /// The same value in another wire form.
    Converted,
    /// The op was replaced by the one the target version uses.
    Mapped,
}

/// One change made by a translation.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Translation {
    /// The op (`BuildPathsWithResults`), or `STDERR_ERROR`, `STDERR_START_ACTIVITY`…
    pub subject: String,
    /// The field, such as `cpuUser`, or `op` for a mapped op.
    pub field: String,
    /// What was done.
    pub action: Action,
    /// Why, and the value filled in or dropped.
    pub detail: String,
}

impl std::fmt::Display for Translation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let action = match self.action {
            Action::Dropped => "dropped",
            Action::Filled => "filled in",
            Action::Converted => "converted",
            Action::Mapped => "mapped",
        };
        write!(
            f,
            "{} {}: {action} ({})",
            self.subject, self.field, self.detail
        )
    }
}

/// A value translated, with the changes made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Translated<T> {
    /// The value for the target version.
    pub value: T,
    /// The changes, in the order made.
    pub notes: Vec<Translation>,
}

/// A value the target version cannot express.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize)]
#[error("{subject} cannot be expressed at protocol {target}: {reason}")]
#[serde(rename_all = "camelCase")]
pub struct Untranslatable {
    /// The op or message.
    pub subject: String,
    /// The target protocol version, such as `1.34`.
    pub target: String,
    /// Why not.
    pub reason: String,
}

/// What a recorded reply becomes at the target version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyOutcome {
    /// A reply, after `STDERR_LAST`.
    Reply(Reply),
    /// An error instead of `STDERR_LAST` and the reply: below 1.17 an
    /// invalid path's QueryPathInfo is an error (`path '…' is not valid`).
    Error(ErrorInfo),
}

/// Collects notes for one subject.
struct Notes {
    subject: String,
    target: String,
    notes: Vec<Translation>,
}

impl Notes {
    fn new(subject: &str, to: &Negotiated) -> Notes {
        Notes {
            subject: subject.to_owned(),
            target: to.version.to_string(),
            notes: Vec::new(),
        }
    }

    fn add(&mut self, field: &str, action: Action, detail: impl Into<String>) {
        self.notes.push(Translation {
            subject: self.subject.clone(),
            field: field.to_owned(),
            action,
            detail: detail.into(),
        });
    }

    fn refuse(&self, reason: impl Into<String>) -> Untranslatable {
        Untranslatable {
            subject: self.subject.clone(),
            target: self.target.clone(),
            reason: reason.into(),
        }
    }

    /// A field that exists from `minor` on: dropped or filled (with
    /// `filled`) when one side is below it. `differs` says whether the
    /// value is other than the default, for a dropped field.
    fn field_since(
        &mut self,
        field: &str,
        minor: u8,
        from: &Negotiated,
        to: &Negotiated,
        differs: bool,
        filled: &str,
    ) {
        match (from.at_least(minor), to.at_least(minor)) {
            (true, false) if differs => self.add(
                field,
                Action::Dropped,
                format!("added in protocol 1.{minor}; not sent at {}", to.version),
            ),
            (false, true) => self.add(
                field,
                Action::Filled,
                format!(
                    "added in protocol 1.{minor}; {} did not send it, so it is {filled}",
                    from.version
                ),
            ),
            _ => {}
        }
    }

    fn done<T>(self, value: T) -> Translated<T> {
        Translated {
            value,
            notes: self.notes,
        }
    }
}

fn realisation_feature(n: &Negotiated) -> bool {
    n.has(feature::REALISATION_WITH_PATH_NOT_HASH)
}

#[cfg(test)]
mod tests;
