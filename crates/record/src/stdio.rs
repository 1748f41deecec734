//! Recording a stdio session: the remote side of `ssh-ng://` and `ssh://`.
//!
//! A remote store over SSH runs one program on the far machine per session
//! (`nix-daemon --stdio` for `ssh-ng://`, `nix-store --serve --write` for
//! `ssh://`) and speaks to it over the program's stdin and stdout. The stdio
//! recorder stands in for that program: it runs the real one as a child,
//! relays its own stdin to the child's stdin and the child's stdout to its
//! own stdout byte for byte, and tees every chunk into a capture holding one
//! connection. The child's stderr is inherited untouched.
//!
//! Like the socket proxy it never decodes anything (which protocol a
//! session speaks is for the view to tell from the first bytes), forwards
//! before it records, and puts the capture on its own thread behind a
//! bounded queue, so a slow disk slows the session down and a failed one is
//! reported on stderr while forwarding goes on. It never writes to stdout
//! itself: stdout belongs to the protocol.
//!
//! The session ends when the child's stdout ends: the child has nothing more
//! to say. Whatever the client may still send is not waited for, since an
//! SSH client commonly keeps its side open until the remote program exits.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::Arc;
use std::thread;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use nixcap_capture::{CloseReason, Direction, Header, PeerCred, Writer, WriterOptions};

use crate::recorder::{header_metadata_base, shell_words};
use crate::sink::Clock;

/// The connection id of the one connection a stdio capture holds.
pub const STDIO_CONN: u64 = 1;

/// Bytes read at once from either side.
const CHUNK: usize = 64 * 1024;

/// Chunks queued for the capture thread at most (so at most 16 MiB).
const QUEUE_CHUNKS: usize = 256;

/// Environment variables describing the SSH session, recorded when set.
const SSH_VARIABLES: [(&str, &str); 3] = [
    ("SSH_CONNECTION", "ssh_connection"),
    ("SSH_CLIENT", "ssh_client"),
    ("SSH_ORIGINAL_COMMAND", "ssh_original_command"),
];

/// What to run and how to write the capture.
#[derive(Debug, Clone)]
pub struct StdioConfig {
    /// The remote program and its arguments, such as `nix-daemon --stdio`.
    pub command: Vec<OsString>,
    /// Header metadata, added to (and overriding) what the recorder fills in.
    pub metadata: BTreeMap<String, String>,
    /// Where the capture is written, recorded in the header (`capture`).
    pub capture_path: Option<PathBuf>,
    /// The pid recorded as the session's peer; default: this process's parent.
    pub peer_pid: Option<u32>,
}

impl StdioConfig {
    /// A configuration that runs `command` with default capture settings.
    pub fn new(command: Vec<OsString>) -> Self {
        Self {
            command,
            metadata: BTreeMap::new(),
            capture_path: None,
            peer_pid: None,
        }
    }
}

/// Why a stdio session could not be recorded at all.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StdioError {
    /// No command was given.
    #[error("no command to run")]
    NoCommand,
    /// The command could not be started.
    #[error("cannot run {command}")]
    Spawn {
        /// The command line.
        command: String,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },
    /// A thread could not be started.
    #[error("cannot start a thread")]
    Thread(#[source] io::Error),
    /// Waiting for the command failed.
    #[error("cannot wait for {command}")]
    Wait {
        /// The command line.
        command: String,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },
}

/// How a relayed session went.
#[derive(Debug)]
pub struct StdioReport {
    /// The remote program's exit status.
    pub status: ExitStatus,
    /// Bytes relayed from stdin to the program.
    pub bytes_client_to_server: u64,
    /// Bytes relayed from the program to stdout.
    pub bytes_server_to_client: u64,
    /// What went wrong handing the session to the capture writer, if
    /// anything. Forwarding went on.
    pub tee_problems: Vec<String>,
}

/// One thing for the capture thread.
#[derive(Debug)]
enum Event {
    Data {
        direction: Direction,
        t: u64,
        bytes: Vec<u8>,
    },
    ClientEof {
        t: u64,
    },
    Close {
        t: u64,
        reason: CloseReason,
    },
}

/// Runs `config.command`, relays `input` to its stdin and its stdout to
/// `output`, hands everything relayed to `tee` as a tee stream (which
/// [`write_stdio_capture`] turns into a capture, typically in another
/// process), and returns once the command has exited and its stdout has
/// ended.
///
/// [`record_stdio_to`] does both in one process.
///
/// `input` is read on a thread that is not waited for: if the client keeps
/// its side open after the program is done, that thread stays blocked in a
/// read until the process exits.
pub fn record_stdio<T, I, O>(
    config: StdioConfig,
    tee: T,
    input: I,
    output: O,
) -> Result<StdioReport, StdioError>
where
    T: Write + Send + 'static,
    I: Read + Send + 'static,
    O: Write + Send + 'static,
{
    let Some((program, args)) = config.command.split_first() else {
        return Err(StdioError::NoCommand);
    };
    let command_line = shell_words(
        config
            .command
            .iter()
            .map(|a| a.to_string_lossy().into_owned()),
    );
    let start_wall = SystemTime::now();
    let clock = Clock::new(Instant::now());

    let mut child: Child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|source| StdioError::Spawn {
            command: command_line.clone(),
            source,
        })?;

    // The capture is started after the child so that a command that cannot
    // run leaves no capture behind that would claim a session took place.
    let mut metadata = header_metadata_base();
    metadata.insert("transport".to_owned(), "stdio".to_owned());
    metadata.insert("command".to_owned(), command_line.clone());
    if let Some(path) = &config.capture_path {
        metadata.insert("capture".to_owned(), path.display().to_string());
    }
    for (key, value) in &config.metadata {
        metadata.insert(key.clone(), value.clone());
    }
    let header = Header {
        tool_version: format!("nixcap {}", env!("CARGO_PKG_VERSION")),
        start_unix_nanos: start_wall
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
            .unwrap_or(0),
        metadata,
    };
    let (events, receiver) = mpsc::sync_channel::<Event>(QUEUE_CHUNKS);
    let capture_thread = {
        let conn_metadata = connection_metadata(&command_line);
        let peer = session_peer(config.peer_pid);
        thread::Builder::new()
            .name("nixcap-tee".to_owned())
            .spawn(move || write_tee(tee, header, peer, conn_metadata, clock, receiver))
            .map_err(StdioError::Thread)?
    };

    let counters = Arc::new(Counters::default());
    let (Some(child_stdin), Some(child_stdout)) = (child.stdin.take(), child.stdout.take()) else {
        // Cannot happen: both were asked for as pipes.
        let _ = child.kill();
        return Err(StdioError::Spawn {
            command: command_line,
            source: io::Error::other("the program's stdin or stdout is not a pipe"),
        });
    };
    // Client to program. Not joined: see above.
    {
        let events = events.clone();
        let counters = Arc::clone(&counters);
        thread::Builder::new()
            .name("nixcap-stdin".to_owned())
            .spawn(move || pump_input(input, child_stdin, events, clock, &counters))
            .map_err(StdioError::Thread)?;
    }
    let output_pump = {
        let events = events.clone();
        let counters = Arc::clone(&counters);
        thread::Builder::new()
            .name("nixcap-stdout".to_owned())
            .spawn(move || pump_output(child_stdout, output, events, clock, &counters))
            .map_err(StdioError::Thread)?
    };

    let reason = output_pump.join().unwrap_or_else(|_| CloseReason::Error {
        message: "the relay thread panicked".to_owned(),
    });
    let status = child.wait().map_err(|source| StdioError::Wait {
        command: command_line,
        source,
    })?;
    counters.done.store(true, Ordering::SeqCst);
    let _ = events.send(Event::Close {
        t: clock.nanos(),
        reason,
    });
    drop(events);
    let problems = capture_thread
        .join()
        .unwrap_or_else(|_| vec!["the tee thread panicked".to_owned()]);
    Ok(StdioReport {
        status,
        bytes_client_to_server: counters.client_to_server.load(Ordering::Relaxed),
        bytes_server_to_client: counters.server_to_client.load(Ordering::Relaxed),
        tee_problems: problems,
    })
}

/// [`record_stdio`] with the capture written to `out` by a thread of this
/// process, for callers that need no protection against being killed.
pub fn record_stdio_to<W, I, O>(
    config: StdioConfig,
    out: W,
    options: WriterOptions,
    input: I,
    output: O,
) -> Result<(StdioReport, TeeOutcome<W>), StdioError>
where
    W: Write + Send + 'static,
    I: Read + Send + 'static,
    O: Write + Send + 'static,
{
    let (tee_reader, tee_writer) =
        std::os::unix::net::UnixStream::pair().map_err(StdioError::Thread)?;
    let capture = thread::Builder::new()
        .name("nixcap-capture".to_owned())
        .spawn(move || write_stdio_capture(tee_reader, out, options))
        .map_err(StdioError::Thread)?;
    let report = record_stdio(config, tee_writer, input, output)?;
    let outcome = capture.join().unwrap_or_else(|_| TeeOutcome {
        problems: vec!["the capture thread panicked".to_owned()],
        finished: false,
        output: None,
        relay_vanished: false,
    });
    Ok((report, outcome))
}

#[derive(Debug, Default)]
struct Counters {
    client_to_server: AtomicU64,
    server_to_client: AtomicU64,
    /// The session is over; later input is not recorded.
    done: AtomicBool,
}

/// The connection's metadata: how it was carried and the SSH session, if any.
fn connection_metadata(command_line: &str) -> BTreeMap<String, String> {
    let mut metadata = BTreeMap::new();
    metadata.insert("transport".to_owned(), "stdio".to_owned());
    metadata.insert("command".to_owned(), command_line.to_owned());
    for (variable, key) in SSH_VARIABLES {
        if let Some(value) = std::env::var_os(variable) {
            metadata.insert(key.to_owned(), value.to_string_lossy().into_owned());
        }
    }
    metadata
}

/// The peer of a stdio session is whoever started the recorder (sshd's
/// session, or the Nix client itself for a local "remote"): `pid` (default:
/// the recorder's parent) and the user the session runs as.
fn session_peer(pid: Option<u32>) -> Option<PeerCred> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let field = |name: &str| -> Option<u32> {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|value| value.parse().ok())
    };
    Some(PeerCred {
        pid: Some(pid.unwrap_or_else(std::os::unix::process::parent_id)),
        uid: field("Uid:")?,
        gid: field("Gid:")?,
    })
}

fn pump_input<I: Read>(
    mut input: I,
    mut child_stdin: ChildStdin,
    events: SyncSender<Event>,
    clock: Clock,
    counters: &Counters,
) {
    let mut buffer = vec![0u8; CHUNK];
    loop {
        let n = match input.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        if child_stdin.write_all(&buffer[..n]).is_err() {
            // The program is gone; what it did not take was never sent.
            break;
        }
        if counters.done.load(Ordering::SeqCst) {
            break;
        }
        counters
            .client_to_server
            .fetch_add(n as u64, Ordering::Relaxed);
        let _ = events.send(Event::Data {
            direction: Direction::ClientToServer,
            t: clock.nanos(),
            bytes: buffer[..n].to_vec(),
        });
    }
    if !counters.done.load(Ordering::SeqCst) {
        let _ = events.send(Event::ClientEof { t: clock.nanos() });
    }
    // Dropping the pipe passes the end of input on to the program.
    drop(child_stdin);
}

fn pump_output<O: Write>(
    mut child_stdout: ChildStdout,
    mut output: O,
    events: SyncSender<Event>,
    clock: Clock,
    counters: &Counters,
) -> CloseReason {
    let mut buffer = vec![0u8; CHUNK];
    let mut output_open = true;
    loop {
        let n = match child_stdout.read(&mut buffer) {
            Ok(0) => return CloseReason::CleanEof,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return CloseReason::Error {
                    message: format!("reading the program's stdout: {e}"),
                }
            }
        };
        if output_open && (output.write_all(&buffer[..n]).is_err() || output.flush().is_err()) {
            // The client is gone. The program's output is still drained and
            // recorded, so that it is not blocked writing to a full pipe.
            output_open = false;
        }
        counters
            .server_to_client
            .fetch_add(n as u64, Ordering::Relaxed);
        let _ = events.send(Event::Data {
            direction: Direction::ServerToClient,
            t: clock.nanos(),
            bytes: buffer[..n].to_vec(),
        });
    }
}

/// How writing a tee stream into a capture went.
#[derive(Debug)]
pub struct TeeOutcome<W> {
    /// What went wrong, if anything.
    pub problems: Vec<String>,
    /// Whether the capture got its footer.
    pub finished: bool,
    /// The capture's output, given back once it is finished.
    pub output: Option<W>,
    /// Whether the relay's stream ended without saying how the session ended
    /// (the relay was killed). The capture is still finished.
    pub relay_vanished: bool,
}

// The tee stream: what the relay hands to the capture writer, which may run
// in another process so that the capture is finished even when the relay is
// killed (Nix ends a remote program with SIGKILL right after closing its
// pipes). A sequence of messages, integers little-endian:
//   1 open:   u64 start_unix_nanos, u64 t, peer (u8 present, u32 pid, u32 uid,
//             u32 gid), header map, connection map (u32 count, then u32-length
//             prefixed key and value strings)
//   2 data:   u8 direction code, u64 t, u32 length, bytes
//   3 client end of input: u64 t
//   4 close:  u64 t, u32 reason code, u32 length, message
const TEE_OPEN: u8 = 1;
const TEE_DATA: u8 = 2;
const TEE_CLIENT_EOF: u8 = 3;
const TEE_CLOSE: u8 = 4;

/// Longest string or data chunk in a tee stream.
const TEE_MAX_LEN: u32 = 16 << 20;

fn put_u32(out: &mut Vec<u8>, value: u32) {
    out.extend_from_slice(&value.to_le_bytes());
}

fn put_u64(out: &mut Vec<u8>, value: u64) {
    out.extend_from_slice(&value.to_le_bytes());
}

fn put_str(out: &mut Vec<u8>, value: &str) {
    put_u32(out, u32::try_from(value.len()).unwrap_or(u32::MAX));
    out.extend_from_slice(value.as_bytes());
}

fn put_map(out: &mut Vec<u8>, map: &BTreeMap<String, String>) {
    put_u32(out, u32::try_from(map.len()).unwrap_or(u32::MAX));
    for (key, value) in map {
        put_str(out, key);
        put_str(out, value);
    }
}

/// Writes the relay's events as a tee stream to `tee`.
fn write_tee<T: Write>(
    mut tee: T,
    header: Header,
    peer: Option<PeerCred>,
    metadata: BTreeMap<String, String>,
    clock: Clock,
    events: Receiver<Event>,
) -> Vec<String> {
    let mut message = Vec::with_capacity(CHUNK + 64);
    message.push(TEE_OPEN);
    put_u64(&mut message, header.start_unix_nanos);
    put_u64(&mut message, clock.nanos());
    match peer {
        Some(peer) => {
            message.push(1);
            put_u32(&mut message, peer.pid.unwrap_or(0));
            put_u32(&mut message, peer.uid);
            put_u32(&mut message, peer.gid);
        }
        None => {
            message.push(0);
            message.extend_from_slice(&[0; 12]);
        }
    }
    put_map(&mut message, &header.metadata);
    put_map(&mut message, &metadata);
    let mut closed = false;
    loop {
        if !message.is_empty() {
            if let Err(error) = tee.write_all(&message).and_then(|()| tee.flush()) {
                let problem = format!("cannot hand the session to the capture writer: {error}");
                eprintln!("nixcap record: ERROR: {problem}; the session goes on unrecorded");
                // Dropping the receiver makes every later send fail at once.
                return vec![problem];
            }
            message.clear();
        }
        if closed {
            // The input pump may still hold a sender, blocked in a read that
            // never ends; the session is over all the same.
            return Vec::new();
        }
        match events.recv() {
            Ok(Event::Data {
                direction,
                t,
                bytes,
            }) => {
                message.push(TEE_DATA);
                message.push(direction.code());
                put_u64(&mut message, t);
                put_u32(&mut message, u32::try_from(bytes.len()).unwrap_or(u32::MAX));
                message.extend_from_slice(&bytes);
            }
            Ok(Event::ClientEof { t }) => {
                message.push(TEE_CLIENT_EOF);
                put_u64(&mut message, t);
            }
            Ok(Event::Close { t, reason }) => {
                message.push(TEE_CLOSE);
                put_u64(&mut message, t);
                put_u32(&mut message, reason.code());
                put_str(&mut message, reason.message());
                closed = true;
            }
            Err(_) => return Vec::new(),
        }
    }
}

/// A reader of tee-stream fields that tells a clean end from a cut one.
struct TeeReader<R> {
    input: R,
    offset: u64,
}

/// A tee-stream read that did not give a value.
enum TeeEnd {
    /// The stream ended at a message boundary.
    Clean,
    /// The stream ended inside a message, or holds something invalid.
    Broken(String),
}

impl<R: Read> TeeReader<R> {
    fn exact(&mut self, buf: &mut [u8]) -> Result<(), TeeEnd> {
        self.input.read_exact(buf).map_err(|error| {
            TeeEnd::Broken(format!(
                "the relay's stream ends inside a message at offset {}: {error}",
                self.offset
            ))
        })?;
        self.offset += buf.len() as u64;
        Ok(())
    }

    /// The next message's tag, or `Clean` at the end of the stream.
    fn tag(&mut self) -> Result<u8, TeeEnd> {
        let mut tag = [0u8; 1];
        loop {
            match self.input.read(&mut tag) {
                Ok(0) => return Err(TeeEnd::Clean),
                Ok(_) => {
                    self.offset += 1;
                    return Ok(tag[0]);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => {
                    return Err(TeeEnd::Broken(format!(
                        "cannot read the relay's stream at offset {}: {error}",
                        self.offset
                    )))
                }
            }
        }
    }

    fn u8(&mut self) -> Result<u8, TeeEnd> {
        let mut buf = [0u8; 1];
        self.exact(&mut buf)?;
        Ok(buf[0])
    }

    fn u32(&mut self) -> Result<u32, TeeEnd> {
        let mut buf = [0u8; 4];
        self.exact(&mut buf)?;
        Ok(u32::from_le_bytes(buf))
    }

    fn u64(&mut self) -> Result<u64, TeeEnd> {
        let mut buf = [0u8; 8];
        self.exact(&mut buf)?;
        Ok(u64::from_le_bytes(buf))
    }

    fn bytes(&mut self) -> Result<Vec<u8>, TeeEnd> {
        let len = self.u32()?;
        if len > TEE_MAX_LEN {
            return Err(TeeEnd::Broken(format!(
                "the relay's stream has a length of {len} at offset {}",
                self.offset - 4
            )));
        }
        let mut buf = vec![0u8; len as usize];
        self.exact(&mut buf)?;
        Ok(buf)
    }

    fn string(&mut self) -> Result<String, TeeEnd> {
        Ok(String::from_utf8_lossy(&self.bytes()?).into_owned())
    }

    fn map(&mut self) -> Result<BTreeMap<String, String>, TeeEnd> {
        let count = self.u32()?;
        let mut map = BTreeMap::new();
        for _ in 0..count {
            let key = self.string()?;
            let value = self.string()?;
            map.insert(key, value);
        }
        Ok(map)
    }
}

/// Reads a tee stream from `tee` (what [`record_stdio`] wrote) and writes
/// it as a capture of one connection to `out`, until the stream ends.
///
/// If the stream ends before the relay said how the session ended (the
/// relay was killed), the connection is closed there: as a clean end if
/// the client had already ended its input (the normal end of an SSH store
/// session, which Nix follows with SIGKILL), as an error otherwise. The
/// capture is finished either way.
pub fn write_stdio_capture<R: Read, W: Write>(
    tee: R,
    out: W,
    options: WriterOptions,
) -> TeeOutcome<W> {
    let fail = |problem: String| {
        eprintln!("nixcap record: ERROR: {problem}");
        TeeOutcome {
            problems: vec![problem],
            finished: false,
            output: None,
            relay_vanished: false,
        }
    };
    let mut reader = TeeReader {
        input: tee,
        offset: 0,
    };
    let opened = (|| -> Result<_, TeeEnd> {
        match reader.tag()? {
            TEE_OPEN => {}
            tag => {
                return Err(TeeEnd::Broken(format!(
                    "the relay's stream starts with message type {tag}, not an open"
                )))
            }
        }
        let start_unix_nanos = reader.u64()?;
        let t = reader.u64()?;
        let has_peer = reader.u8()? == 1;
        let (pid, uid, gid) = (reader.u32()?, reader.u32()?, reader.u32()?);
        let peer = has_peer.then_some(PeerCred {
            pid: (pid != 0).then_some(pid),
            uid,
            gid,
        });
        let header = reader.map()?;
        let metadata = reader.map()?;
        Ok((start_unix_nanos, t, peer, header, metadata))
    })();
    let (start_unix_nanos, t_open, peer, header, metadata) = match opened {
        Ok(opened) => opened,
        Err(TeeEnd::Clean) => return fail("the relay ended before the session began".to_owned()),
        Err(TeeEnd::Broken(problem)) => return fail(problem),
    };
    let header = Header {
        tool_version: format!("nixcap {}", env!("CARGO_PKG_VERSION")),
        start_unix_nanos,
        metadata: header,
    };
    let mut writer = match Writer::new(out, header, options) {
        Ok(writer) => writer,
        Err(error) => return fail(format!("cannot start the capture: {error}")),
    };
    // This process's clock, lined up with the relay's at the open message.
    let base = Instant::now();
    let now = |last: u64| last.max(t_open + u64::try_from(base.elapsed().as_nanos()).unwrap_or(0));
    if let Err(error) = writer.open_connection(STDIO_CONN, t_open, peer, metadata) {
        return fail(format!("cannot write the capture: {error}"));
    }
    let mut last_t = t_open;
    let mut client_ended = false;
    let mut closed = false;
    let mut problems = Vec::new();
    let mut relay_vanished = false;
    loop {
        let step = (|| -> Result<Result<(), nixcap_capture::WriteError>, TeeEnd> {
            match reader.tag()? {
                TEE_DATA => {
                    let direction = match reader.u8()? {
                        0 => Direction::ClientToServer,
                        1 => Direction::ServerToClient,
                        code => {
                            return Err(TeeEnd::Broken(format!(
                                "the relay's stream has direction {code} at offset {}",
                                reader.offset - 1
                            )))
                        }
                    };
                    let t = reader.u64()?;
                    let bytes = reader.bytes()?;
                    last_t = last_t.max(t);
                    Ok(writer.data(STDIO_CONN, direction, t, &bytes))
                }
                TEE_CLIENT_EOF => {
                    last_t = last_t.max(reader.u64()?);
                    client_ended = true;
                    Ok(Ok(()))
                }
                TEE_CLOSE => {
                    let t = reader.u64()?;
                    let code = reader.u32()?;
                    let message = reader.string()?;
                    last_t = last_t.max(t);
                    closed = true;
                    Ok(writer.close_connection(
                        STDIO_CONN,
                        t,
                        CloseReason::from_code(code, message),
                    ))
                }
                tag => Err(TeeEnd::Broken(format!(
                    "the relay's stream has message type {tag} at offset {}",
                    reader.offset - 1
                ))),
            }
        })();
        match step {
            Ok(Ok(())) => {}
            Ok(Err(error)) => return fail(format!("cannot write the capture: {error}")),
            Err(end) => {
                if let TeeEnd::Broken(problem) = end {
                    problems.push(problem);
                }
                break;
            }
        }
        if let Err(error) = writer.flush_if_due(now(last_t)) {
            return fail(format!("cannot write the capture: {error}"));
        }
    }
    if !closed {
        relay_vanished = true;
        let t = now(last_t);
        let reason = if client_ended && problems.is_empty() {
            CloseReason::CleanEof
        } else {
            CloseReason::Error {
                message: "the relay ended before the session did".to_owned(),
            }
        };
        if let Err(error) = writer.close_connection(STDIO_CONN, t, reason) {
            return fail(format!("cannot write the capture: {error}"));
        }
    }
    match writer.finish(now(last_t)) {
        Ok((out, _summary)) => TeeOutcome {
            problems,
            finished: true,
            output: Some(out),
            relay_vanished,
        },
        Err(error) => fail(format!("cannot finish the capture: {error}")),
    }
}

/// A file name for one session's capture in a directory: the UTC start
/// time to the nanosecond and the recorder's pid, such as
/// `20261203T073122.123456789Z-4242.nixcap`. Names sort by start time and
/// hold only `[0-9A-Z.-]`.
pub fn session_file_name(start: SystemTime, pid: u32) -> String {
    let since = start.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (year, month, day) = civil_from_days(secs / 86_400);
    let rest = secs % 86_400;
    format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}.{:09}Z-{pid}.nixcap",
        rest / 3600,
        rest / 60 % 60,
        rest % 60,
        since.subsec_nanos()
    )
}

/// The proleptic Gregorian date of a day count since 1970-01-01.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    // Howard Hinnant's algorithm, for days on or after the epoch.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests;
