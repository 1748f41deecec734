//! nixcap-check: play the client side of a capture against a daemon and
//! compare its answers with the recorded ones.
//!
//! [`check`] takes a decoded capture and the address of a target daemon.
//! For each recorded connection it opens a connection to the target, sends
//! the recorded handshake (the recorded client version is announced, so the
//! target answers at the recorded version unless it only speaks an older
//! one), then each recorded request with its upload: framed streams and
//! inline NARs as recorded, `STDERR_READ` answered from the recorded
//! answers' data. It reads the target's whole answer — log stream, reply,
//! NarFromPath's NAR — through the codec, with a timeout.
//!
//! A target that negotiates other than the recording (an older minor, or
//! fewer 1.38 features) gets the client's handshake pieces of its version
//! and each request translated by `nixcap_wire::translate`, its upload
//! re-sent in the form that version takes (framed, `STDERR_READ` answers or
//! an inline NAR); a request the target's version cannot express ends its
//! connection as an unplayable problem. Every change is a
//! [`TranslationNote`] of the report. The answers are not translated back:
//! the diff engine compares them across versions, naming the protocol
//! change behind a field that one side does not carry.
//!
//! What was sent and received becomes a capture of the target's session,
//! which the diff engine ([`nixcap_diff`]) compares with the recorded one:
//! the same normalisation, field-tree comparison and version notes as
//! `nixcap diff`. The result is a [`CheckReport`].
//!
//! Ordering: an op waits for every op of the other connections that had
//! ended before it started in the recording, so connections that overlapped
//! run concurrently while causal order is kept (see `schedule`).
//!
//! Safety: a check writes to the target's store. [`check`] refuses the
//! system daemon's socket unless [`Options::allow_system_daemon`] is set.
//!
//! Every byte from the target is foreign input: it goes through the
//! codec, and a target that hangs, closes in the middle of an answer or
//! sends garbage becomes a [`Problem`] naming the connection and op, and
//! ends that connection only.

#[cfg(feature = "fuzzing")]
pub mod fuzzing;
mod live;
mod plan;
mod report;
mod schedule;
mod setup;

use std::collections::BTreeMap;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nixcap_capture::{CloseReason, Header, Writer, WriterOptions};
use nixcap_view::DecodedCapture;

pub use report::{CheckReport, Problem, ProblemKind, SetupSummary, TranslationNote, Verdict};

use crate::live::{Clock, Live, Transcript};
use crate::plan::ConnPlan;
use crate::schedule::Schedule;

/// The socket of the system daemon, refused unless allowed.
pub const SYSTEM_DAEMON_SOCKET: &str = "/nix/var/nix/daemon-socket/socket";

/// How to check.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Options {
    /// How long to wait for the target's next byte (or for it to read what
    /// is sent) before reporting it as hung.
    pub timeout: Duration,
    /// Import the capture's store objects into the target first.
    pub setup: bool,
    /// Allow the system daemon's socket as the target.
    pub allow_system_daemon: bool,
    /// How to compare (ignores, timing); the labels are set by the check.
    pub diff: nixcap_diff::Options,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            timeout: Duration::from_secs(60),
            setup: false,
            allow_system_daemon: false,
            diff: nixcap_diff::Options::default(),
        }
    }
}

impl Options {
    /// The defaults with another timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The defaults with `--setup` on or off.
    pub fn with_setup(mut self, setup: bool) -> Self {
        self.setup = setup;
        self
    }

    /// The defaults with the system daemon allowed or not.
    pub fn allowing_system_daemon(mut self, allow: bool) -> Self {
        self.allow_system_daemon = allow;
        self
    }

    /// The defaults with these diff options.
    pub fn with_diff(mut self, diff: nixcap_diff::Options) -> Self {
        self.diff = diff;
        self
    }
}

/// Why a check could not run at all.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CheckError {
    /// The target address is not a `unix://` store.
    #[error(transparent)]
    Address(#[from] nixcap_client::ClientError),
    /// The target is the system daemon and that was not allowed.
    #[error(
        "refusing to check against {}: it is the system daemon's socket, and a check writes to its store (pass --allow-system-daemon to go on)",
        .path.display()
    )]
    SystemDaemon {
        /// The socket path.
        path: PathBuf,
    },
    /// The target's socket cannot be reached.
    #[error("connecting to {}: {source}", .path.display())]
    Connect {
        /// The socket path.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The capture of the target's session could not be assembled.
    #[error("assembling the capture of the target's answers: {0}")]
    Assemble(String),
}

/// The result of a check: the report and the target's session as a
/// capture (the `B` side of the comparison), for saving or inspection.
#[derive(Debug)]
pub struct Checked {
    /// The report.
    pub report: CheckReport,
    /// The target's session, as a nixcap capture file.
    pub target_capture: Vec<u8>,
}

/// Whether `path` is the system daemon's socket: the default path, or the
/// one `NIX_DAEMON_SOCKET_PATH` names, compared after resolving symlinks.
pub fn is_system_daemon_socket(path: &Path) -> bool {
    let mut system = vec![PathBuf::from(SYSTEM_DAEMON_SOCKET)];
    if let Some(configured) = std::env::var_os("NIX_DAEMON_SOCKET_PATH") {
        system.push(PathBuf::from(configured));
    }
    let resolved = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_owned());
    let target = resolved(path);
    system
        .iter()
        .any(|s| s.as_path() == path || resolved(s) == target)
}

/// Plays `recorded` against the daemon at `target` (`unix:///path`, or a
/// socket path) and compares its answers with the recorded ones.
pub fn check(
    recorded: &DecodedCapture,
    target: &str,
    options: &Options,
) -> Result<Checked, CheckError> {
    let path = nixcap_client::socket_path(target)?;
    if !options.allow_system_daemon && is_system_daemon_socket(&path) {
        return Err(CheckError::SystemDaemon { path });
    }
    probe(&path, options.timeout)?;
    let clock = Clock(Instant::now());
    let start_unix_nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    let mut problems = Vec::new();
    let setup = if options.setup {
        let (summary, setup_problems) = setup::run(recorded, &path, options.timeout);
        problems.extend(setup_problems);
        Some(summary)
    } else {
        None
    };
    let plans = plan::plan(recorded);
    let runs = play_all(&plans, &path, clock, options.timeout);
    let mut transcripts = Vec::new();
    let mut ops_sent = 0;
    let mut translations = Vec::new();
    let mut nix_versions = Vec::new();
    let mut protocols = Vec::new();
    for run in runs {
        problems.extend(run.problems);
        translations.extend(run.translations);
        ops_sent += run.ops_sent;
        if let Some(v) = run.nix_version {
            if !nix_versions.contains(&v) {
                nix_versions.push(v);
            }
        }
        if let Some(p) = run.protocol {
            if !protocols.contains(&p) {
                protocols.push(p);
            }
        }
        transcripts.extend(run.transcript);
    }
    let target_capture = assemble(&transcripts, target, start_unix_nanos)?;
    let capture = nixcap_capture::read_capture(&target_capture[..])
        .map_err(|e| CheckError::Assemble(e.to_string()))?;
    let live = DecodedCapture::new(capture);
    let mut diff_options = options.diff.clone();
    diff_options.labels = Some(("recorded".to_owned(), "target".to_owned()));
    let diff = nixcap_diff::diff(recorded, &live, &diff_options);
    let mut report = CheckReport {
        v: 1,
        target: target.to_owned(),
        target_nix_version: (!nix_versions.is_empty()).then(|| nix_versions.join(" | ")),
        target_protocols: protocols,
        connections: plans.len(),
        ops_sent,
        ops_recorded: recorded.connections.iter().map(|c| c.exchanges.len()).sum(),
        setup,
        translations,
        problems,
        diff,
        verdict: Verdict::Trouble,
    };
    report.decide();
    Ok(Checked {
        report,
        target_capture,
    })
}

/// One probe connection, so that an unreachable target is an error rather
/// than one problem per connection. It sends nothing and waits (at most
/// `timeout`) for the target to hang up: a Nix daemon's worker opens its
/// store before it reads the client's hello, so on a fresh store the
/// database is created by the time it closes the probe, and the played
/// connections do not race to create it.
fn probe(path: &Path, timeout: Duration) -> Result<(), CheckError> {
    let connect_error = |source| CheckError::Connect {
        path: path.to_owned(),
        source,
    };
    let mut stream = UnixStream::connect(path).map_err(connect_error)?;
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let _ = stream.set_read_timeout(Some(timeout));
    let mut sink = [0u8; 4096];
    while let Ok(n) = std::io::Read::read(&mut stream, &mut sink) {
        if n == 0 {
            break;
        }
    }
    Ok(())
}

/// What playing one connection gave.
#[derive(Debug, Default)]
struct Run {
    transcript: Option<Transcript>,
    problems: Vec<Problem>,
    ops_sent: usize,
    nix_version: Option<String>,
    protocol: Option<String>,
    translations: Vec<TranslationNote>,
}

fn play_all(plans: &[ConnPlan], path: &Path, clock: Clock, timeout: Duration) -> Vec<Run> {
    let schedule = Schedule::new(
        plans
            .iter()
            .map(|p| p.ops.iter().map(|op| op.end_nanos).collect())
            .collect(),
    );
    std::thread::scope(|scope| {
        let handles: Vec<_> = plans
            .iter()
            .enumerate()
            .map(|(index, plan)| {
                let schedule = &schedule;
                scope.spawn(move || {
                    schedule.wait_for(index, plan.opened_nanos);
                    let run = play(plan, index, schedule, path, clock, timeout);
                    schedule.finished(index);
                    run
                })
            })
            .collect();
        handles
            .into_iter()
            .zip(plans)
            .map(|(handle, plan)| {
                handle.join().unwrap_or_else(|_| Run {
                    problems: vec![Problem {
                        conn: plan.conn,
                        seq: None,
                        op: None,
                        kind: ProblemKind::Io,
                        message: "the connection's thread panicked".to_owned(),
                    }],
                    ..Run::default()
                })
            })
            .collect()
    })
}

fn play(
    plan: &ConnPlan,
    index: usize,
    schedule: &Schedule,
    path: &Path,
    clock: Clock,
    timeout: Duration,
) -> Run {
    let mut run = Run::default();
    let problem = |seq: Option<u64>, op: Option<&str>, fault: live::Fault| Problem {
        conn: plan.conn,
        seq,
        op: op.map(str::to_owned),
        kind: fault.kind,
        message: fault.message,
    };
    let Some(recorded) = plan.negotiated.clone() else {
        run.problems.push(Problem {
            conn: plan.conn,
            seq: None,
            op: None,
            kind: ProblemKind::Unplayable,
            message: plan
                .cut
                .clone()
                .unwrap_or_else(|| "the recorded handshake did not complete".to_owned()),
        });
        return run;
    };
    let mut live = match Live::connect(path, plan.conn, clock, timeout) {
        Ok(live) => live,
        Err(fault) => {
            run.problems.push(problem(None, None, fault));
            return run;
        }
    };
    let mut completed = true;
    match live.handshake(plan) {
        Ok(negotiated) => {
            run.protocol = Some(negotiated.version.to_string());
            run.nix_version = live.daemon_nix_version.clone();
            run.translations.extend(
                live.handshake_notes
                    .drain(..)
                    .map(|change| TranslationNote {
                        conn: plan.conn,
                        seq: None,
                        change,
                    }),
            );
            for (count, op) in plan.ops.iter().enumerate() {
                schedule.wait_for(index, op.start_nanos);
                run.ops_sent += 1;
                match live.run_op(op, &recorded) {
                    Ok(notes) => {
                        run.translations
                            .extend(notes.into_iter().map(|change| TranslationNote {
                                conn: plan.conn,
                                seq: Some(op.seq),
                                change,
                            }))
                    }
                    Err(fault) => {
                        run.problems
                            .push(problem(Some(op.seq), Some(op.name()), fault));
                        completed = false;
                        break;
                    }
                }
                schedule.done(index, count + 1);
            }
        }
        Err(fault) => {
            run.problems.push(problem(None, Some("handshake"), fault));
            completed = false;
        }
    }
    if completed {
        if let Some(cut) = &plan.cut {
            run.problems.push(Problem {
                conn: plan.conn,
                seq: None,
                op: None,
                kind: ProblemKind::Unplayable,
                message: cut.clone(),
            });
        }
    }
    run.transcript = Some(live.close());
    run
}

/// Writes the transcripts as one capture, blocks in time order.
fn assemble(
    transcripts: &[Transcript],
    target: &str,
    start_unix_nanos: u64,
) -> Result<Vec<u8>, CheckError> {
    enum Item<'a> {
        Open,
        Data(nixcap_capture::Direction, &'a [u8]),
        Close,
    }
    let mut items: Vec<(u64, usize, usize, u64, Item<'_>)> = Vec::new();
    for (index, transcript) in transcripts.iter().enumerate() {
        let conn = transcript.conn;
        items.push((transcript.opened_nanos, index, 0, conn, Item::Open));
        for (n, (direction, t, bytes)) in transcript.chunks.iter().enumerate() {
            let direction = match direction {
                nixcap_wire::session::Direction::ClientToDaemon => {
                    nixcap_capture::Direction::ClientToServer
                }
                nixcap_wire::session::Direction::DaemonToClient => {
                    nixcap_capture::Direction::ServerToClient
                }
            };
            let t = (*t).max(transcript.opened_nanos);
            items.push((t, index, n + 1, conn, Item::Data(direction, bytes)));
        }
        let end = transcript
            .closed_nanos
            .max(transcript.chunks.last().map_or(0, |c| c.1));
        items.push((end, index, usize::MAX, conn, Item::Close));
    }
    items.sort_by_key(|(t, index, n, _, _)| (*t, *index, *n));
    let mut metadata = BTreeMap::new();
    metadata.insert("checked-against".to_owned(), target.to_owned());
    let header = Header {
        tool_version: format!("nixcap-check {}", env!("CARGO_PKG_VERSION")),
        start_unix_nanos,
        metadata,
    };
    let error = |e: nixcap_capture::WriteError| CheckError::Assemble(e.to_string());
    let mut writer = Writer::new(Vec::new(), header, WriterOptions::default()).map_err(error)?;
    let mut last = 0;
    for (t, _, _, conn, item) in items {
        last = last.max(t);
        match item {
            Item::Open => writer
                .open_connection(conn, t, None, BTreeMap::new())
                .map_err(error)?,
            Item::Data(direction, bytes) => {
                writer.data(conn, direction, t, bytes).map_err(error)?
            }
            Item::Close => writer
                .close_connection(conn, t, CloseReason::CleanEof)
                .map_err(error)?,
        }
    }
    let (bytes, _) = writer.finish(last).map_err(error)?;
    Ok(bytes)
}

/// Plays one recorded connection of `recorded` on an already connected
/// socket (for tests and the fuzz target); returns the problems.
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) fn play_connection_on(
    recorded: &DecodedCapture,
    conn: u64,
    stream: UnixStream,
    timeout: Duration,
) -> Vec<Problem> {
    let plans = plan::plan(recorded);
    let Some(plan) = plans.iter().find(|p| p.conn == conn) else {
        return Vec::new();
    };
    let schedule = Schedule::new(vec![Vec::new()]);
    let clock = Clock(Instant::now());
    let mut problems = Vec::new();
    match Live::from_stream(stream, plan.conn, clock, timeout) {
        Ok(mut live) => {
            match (live.handshake(plan), plan.negotiated.as_ref()) {
                (Ok(_), Some(recorded)) => {
                    for op in &plan.ops {
                        schedule.wait_for(0, op.start_nanos);
                        if let Err(fault) = live.run_op(op, recorded) {
                            problems.push(Problem {
                                conn,
                                seq: Some(op.seq),
                                op: Some(op.name().to_owned()),
                                kind: fault.kind,
                                message: fault.message,
                            });
                            break;
                        }
                    }
                }
                (Err(fault), _) => problems.push(Problem {
                    conn,
                    seq: None,
                    op: Some("handshake".to_owned()),
                    kind: fault.kind,
                    message: fault.message,
                }),
                (Ok(_), None) => {}
            }
            live.close();
        }
        Err(fault) => problems.push(Problem {
            conn,
            seq: None,
            op: None,
            kind: fault.kind,
            message: fault.message,
        }),
    }
    problems
}
