//! Forwarding one client connection to the daemon, byte for byte.
//!
//! Each connection gets two pumps, one per direction, polled together in one
//! task. A pump reads a chunk into a pooled buffer, writes it unchanged to
//! the other side, then hands the same buffer to the capture thread (large
//! chunks move without copying; small ones are copied into a right-sized
//! allocation so that the budget is not eaten by mostly empty buffers).
//! Recording after forwarding keeps the capture off the latency path; the
//! budget semaphore is first-come first-served, so a request is still queued
//! before the reply it causes.
//!
//! End of stream in one direction is passed on as a half-close
//! (`shutdown(SHUT_WR)` on the other side), and the other direction keeps
//! flowing. An error in either direction tears the whole connection down, so
//! that neither peer is left waiting on a socket nobody reads.

use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use nixcap_capture::{CloseReason, Direction};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::sync::Notify;

use crate::sink::{Clock, Event, SinkHandle};

/// Chunks at least this large are handed to the capture thread in the
/// forwarding buffer itself; smaller ones are copied.
const HANDOFF_MIN: usize = 16 * 1024;

/// How long connecting to the daemon is retried while its accept queue is full.
const CONNECT_RETRY_FOR: Duration = Duration::from_secs(2);

/// A one-shot, level-triggered cancellation signal.
#[derive(Debug, Default)]
pub(crate) struct Cancel {
    flag: AtomicBool,
    notify: Notify,
}

impl Cancel {
    pub(crate) fn cancel(&self) {
        self.flag.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    pub(crate) fn is_cancelled(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    /// Completes once `cancel` has been called (at once if it already was).
    pub(crate) async fn cancelled(&self) {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.is_cancelled() {
                return;
            }
            notified.await;
        }
    }
}

/// Recorder-wide counters.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) connections: AtomicU64,
    pub(crate) refused: AtomicU64,
    pub(crate) unreachable: AtomicU64,
    pub(crate) active: AtomicU64,
    pub(crate) bytes_client_to_daemon: AtomicU64,
    pub(crate) bytes_daemon_to_client: AtomicU64,
}

/// What every connection task shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) upstream: std::path::PathBuf,
    pub(crate) sink: SinkHandle,
    pub(crate) clock: Clock,
    pub(crate) counters: Counters,
    /// Set when the recorder stops; pumps end at their next read.
    pub(crate) stop_forwarding: Cancel,
    pub(crate) log_to_stderr: bool,
}

/// Serves one accepted (and already admitted and recorded as opened) client
/// connection until both directions are done, then records the close.
///
/// The caller counts the connection as active before spawning this; it is
/// counted out here, or by the caller if the task does not complete.
pub(crate) async fn serve(conn: u64, client: UnixStream, shared: Arc<Shared>) {
    let reason = match connect_upstream(&shared.upstream).await {
        Ok(upstream) => forward(conn, client, upstream, &shared).await,
        Err(error) => {
            shared.counters.unreachable.fetch_add(1, Ordering::Relaxed);
            let message = format!(
                "cannot connect to the daemon at {}: {error}",
                shared.upstream.display()
            );
            if shared.log_to_stderr {
                eprintln!("nixcap record: connection {conn}: {message}");
            }
            // Dropping the client stream closes it: the client sees EOF.
            drop(client);
            CloseReason::UpstreamUnreachable { message }
        }
    };
    let t = shared.clock.nanos();
    shared.sink.send(Event::Close { conn, t, reason }).await;
    shared.counters.active.fetch_sub(1, Ordering::Relaxed);
}

async fn connect_upstream(path: &Path) -> io::Result<UnixStream> {
    let deadline = tokio::time::Instant::now() + CONNECT_RETRY_FOR;
    loop {
        match UnixStream::connect(path).await {
            // A full accept queue shows up as EAGAIN on a non-blocking connect.
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock
                    && tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            result => return result,
        }
    }
}

/// How a pump ended.
#[derive(Debug)]
enum PumpEnd {
    /// The source reached end of stream and the half-close was passed on.
    Eof,
    /// The recorder is stopping.
    Stopped,
    /// The other direction failed.
    Aborted,
    /// Reading, writing or shutting down failed.
    Failed {
        what: &'static str,
        error: io::Error,
    },
}

async fn forward(
    conn: u64,
    mut client: UnixStream,
    mut upstream: UnixStream,
    shared: &Shared,
) -> CloseReason {
    let abort = Cancel::default();
    let (client_read, client_write) = client.split();
    let (upstream_read, upstream_write) = upstream.split();
    let to_daemon = pump(
        conn,
        Direction::ClientToServer,
        client_read,
        upstream_write,
        shared,
        &abort,
    );
    let to_client = pump(
        conn,
        Direction::ServerToClient,
        upstream_read,
        client_write,
        shared,
        &abort,
    );
    let (up, down) = tokio::join!(to_daemon, to_client);
    close_reason(up, down)
}

fn close_reason(up: PumpEnd, down: PumpEnd) -> CloseReason {
    let failure = |end: PumpEnd, side: &str| match end {
        PumpEnd::Failed { what, error } => Some(match error.kind() {
            io::ErrorKind::ConnectionReset
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionAborted => CloseReason::Reset,
            _ => CloseReason::Error {
                message: format!("{side}: {what}: {error}"),
            },
        }),
        _ => None,
    };
    let stopped = matches!(up, PumpEnd::Stopped) || matches!(down, PumpEnd::Stopped);
    if let Some(reason) = failure(up, "client to daemon") {
        return reason;
    }
    if let Some(reason) = failure(down, "daemon to client") {
        return reason;
    }
    if stopped {
        CloseReason::Shutdown
    } else {
        CloseReason::CleanEof
    }
}

async fn pump<R, W>(
    conn: u64,
    direction: Direction,
    source: R,
    sink: W,
    shared: &Shared,
    abort: &Cancel,
) -> PumpEnd
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buffer = shared.sink.pool.take();
    let end = pump_with(&mut buffer, conn, direction, source, sink, shared, abort).await;
    shared.sink.pool.put(buffer);
    // A failure or a stop in one direction tears the whole connection down,
    // so that neither peer is left waiting on a socket nobody reads.
    if matches!(end, PumpEnd::Failed { .. } | PumpEnd::Stopped) {
        abort.cancel();
    }
    end
}

async fn pump_with<R, W>(
    buffer: &mut Vec<u8>,
    conn: u64,
    direction: Direction,
    mut source: R,
    mut sink: W,
    shared: &Shared,
    abort: &Cancel,
) -> PumpEnd
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let counter = match direction {
        Direction::ClientToServer => &shared.counters.bytes_client_to_daemon,
        Direction::ServerToClient => &shared.counters.bytes_daemon_to_client,
    };
    let pool = &shared.sink.pool;
    loop {
        buffer.clear();
        let read = tokio::select! {
            biased;
            read = source.read_buf(buffer) => read,
            () = abort.cancelled() => return PumpEnd::Aborted,
            () = shared.stop_forwarding.cancelled() => return PumpEnd::Stopped,
        };
        let n = match read {
            Ok(0) => {
                return match sink.shutdown().await {
                    // The peer may already be gone entirely; its own end
                    // is reported by the other direction.
                    Ok(()) => PumpEnd::Eof,
                    Err(e) if e.kind() == io::ErrorKind::NotConnected => PumpEnd::Eof,
                    Err(error) => PumpEnd::Failed {
                        what: "passing on end of stream",
                        error,
                    },
                };
            }
            Ok(n) => n,
            Err(error) => {
                return PumpEnd::Failed {
                    what: "reading",
                    error,
                }
            }
        };
        let t = shared.clock.nanos();
        counter.fetch_add(n as u64, Ordering::Relaxed);
        let written = tokio::select! {
            biased;
            written = sink.write_all(buffer) => written,
            () = abort.cancelled() => Err(io::Error::new(io::ErrorKind::Interrupted, "aborted")),
        };
        // Record what was read even if passing it on failed: it crossed the
        // source socket, and the close record says how the connection ended.
        let bytes = if n >= HANDOFF_MIN {
            std::mem::replace(buffer, pool.take())
        } else {
            buffer.to_vec()
        };
        shared
            .sink
            .send(Event::Data {
                conn,
                direction,
                t,
                bytes,
            })
            .await;
        match written {
            Ok(()) => {}
            Err(error) if error.kind() == io::ErrorKind::Interrupted && abort.is_cancelled() => {
                return PumpEnd::Aborted
            }
            Err(error) => {
                return PumpEnd::Failed {
                    what: "writing",
                    error,
                }
            }
        }
    }
}
