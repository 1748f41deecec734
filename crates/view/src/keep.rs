//! Which sessions matter: the flight recorder's question, answered by
//! decoding.
//!
//! [`session_verdict`] decodes one connection's chunks (in the order they
//! were read) and says whether it ended in a failed build, a daemon error
//! or an abnormal close. The recorder does not decode; it hands each closed
//! session to a predicate that the cli builds on this function.

use nixcap_capture::CloseReason;
use nixcap_wire::ops::{Op, Reply};
use nixcap_wire::session::{EventKind, SessionDecoder};
use nixcap_wire::stderr::StderrMessage;

use crate::wire_direction;

/// Why a session is worth keeping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// A build op failed: `STDERR_ERROR` for BuildPaths, BuildPathsWithResults
    /// or BuildDerivation, or a build result whose status is a failure.
    FailedBuild,
    /// The daemon sent `STDERR_ERROR` for any other op, or outside an op.
    DaemonError,
    /// The connection was reset or ended by an error, the daemon was
    /// unreachable, the recorder stopped while it was open, or an op was
    /// left unfinished.
    AbnormalClose,
}

impl Verdict {
    /// The name used in capture metadata and on the command line:
    /// `failed-build`, `daemon-error`, `abnormal-close`.
    pub fn name(self) -> &'static str {
        match self {
            Verdict::FailedBuild => "failed-build",
            Verdict::DaemonError => "daemon-error",
            Verdict::AbnormalClose => "abnormal-close",
        }
    }
}

fn is_build(op: Option<Op>) -> bool {
    matches!(
        op,
        Some(Op::BuildPaths | Op::BuildPathsWithResults | Op::BuildDerivation)
    )
}

/// Decodes a closed session and says why it matters, if it does. A failed
/// build wins over a daemon error, which wins over an abnormal close.
pub fn session_verdict<'a>(
    reason: &CloseReason,
    chunks: impl IntoIterator<Item = (nixcap_capture::Direction, &'a [u8])>,
) -> Option<Verdict> {
    let mut decoder = SessionDecoder::new();
    let mut failed_build = false;
    let mut daemon_error = false;
    let mut error_seqs = Vec::new();
    let mut look = |decoder: &mut SessionDecoder| {
        for event in decoder.drain_events() {
            match event.kind {
                EventKind::Stderr {
                    seq,
                    message: StderrMessage::Error(_),
                } => match seq {
                    Some(seq) => error_seqs.push(seq),
                    None => daemon_error = true,
                },
                EventKind::Reply { reply, .. } => match *reply {
                    Reply::BuildDerivation { result } => {
                        failed_build |= !result.status.is_success();
                    }
                    Reply::BuildPathsWithResults { results } => {
                        failed_build |= results.iter().any(|r| !r.result.status.is_success());
                    }
                    _ => {}
                },
                _ => {}
            }
        }
    };
    for (direction, bytes) in chunks {
        decoder.feed(wire_direction(direction), bytes);
        look(&mut decoder);
    }
    decoder.finish();
    look(&mut decoder);
    let mut unfinished = false;
    for record in decoder.ops() {
        if error_seqs.contains(&record.seq) {
            if is_build(record.op) {
                failed_build = true;
            } else {
                daemon_error = true;
            }
        }
        unfinished |= !record.ended && record.serve.is_none();
    }
    let abnormal = !matches!(reason, CloseReason::CleanEof | CloseReason::Continued);
    if failed_build {
        Some(Verdict::FailedBuild)
    } else if daemon_error {
        Some(Verdict::DaemonError)
    } else if abnormal || unfinished {
        Some(Verdict::AbnormalClose)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn verdicts(path: &std::path::Path) -> Vec<Option<Verdict>> {
        let capture = nixcap_capture::read_capture_file(path).unwrap();
        capture
            .connections
            .iter()
            .map(|c| {
                let reason = c
                    .closed
                    .as_ref()
                    .map_or(CloseReason::Shutdown, |c| c.reason.clone());
                session_verdict(
                    &reason,
                    c.chunks.iter().map(|k| (k.direction, &k.bytes[..])),
                )
            })
            .collect()
    }

    /// Over the committed captures of real daemons (Nix 2.8, 2.26, 2.34):
    /// the failing build is a failed build, and the scenarios that succeed
    /// have no session worth keeping.
    #[test]
    fn committed_captures_of_real_daemons() {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata/captures");
        let mut seen = 0;
        for version in ["nix-2.8", "nix-2.26", "nix-2.34"] {
            let fail = verdicts(&root.join(version).join("build-fail.nixcap"));
            assert!(
                fail.contains(&Some(Verdict::FailedBuild)),
                "{version} build-fail: {fail:?}"
            );
            for name in ["build", "add", "query", "path-info", "copy"] {
                let path = root.join(version).join(format!("{name}.nixcap"));
                if !path.exists() {
                    continue;
                }
                let found = verdicts(&path);
                assert!(
                    found.iter().all(Option::is_none),
                    "{version} {name}: {found:?}"
                );
                seen += 1;
            }
        }
        assert!(seen >= 12, "{seen} passing captures checked");
    }

    #[test]
    fn an_abnormal_close_is_kept_even_with_nothing_decoded() {
        let reset = session_verdict(&CloseReason::Reset, []);
        assert_eq!(reset, Some(Verdict::AbnormalClose));
        assert_eq!(session_verdict(&CloseReason::CleanEof, []), None);
    }
}
