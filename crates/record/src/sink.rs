//! The capture thread: writes what the proxy saw, off the forwarding path.
//!
//! Forwarding tasks hand owned events to one dedicated thread that owns the
//! capture [`Writer`]. The queue between them is bounded by *bytes in
//! flight* (a semaphore of byte permits): a forwarding task takes permits
//! for the memory an event holds before queueing it, and the thread gives
//! them back once the event is written. When the capture cannot keep up,
//! forwarding waits for permits and slows down; nothing is ever dropped.
//!
//! Queueing an event does not wake the thread unless a quarter of the budget
//! is in use: waking a thread per chunk would put a futex call and a context
//! switch on the forwarding path of every small request and reply. The
//! thread instead wakes on its own every `IDLE_TICK`, takes everything
//! queued in one go, and checks whether the open frame is due. A chunk is
//! thus picked up within `IDLE_TICK` of being forwarded, and its frame is
//! written `frame_max_age_nanos` after its timestamp at the latest, plus one
//! tick.
//!
//! If the capture cannot be written at all (disk full, file size limit,
//! read-only file system), the thread says so loudly on stderr, closes the
//! semaphore so that forwarding stops queueing events, and leaves the file
//! without a footer: readers then report it as not finished. Forwarding
//! itself never waits on a failed capture.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use nixcap_capture::{CloseReason, Direction, PeerCred, StoreObjectKind, Summary, WriteError};
use tokio::sync::{oneshot, Semaphore};

use crate::output::CaptureOutput;

/// How often the thread wakes up on its own to take queued events and write
/// a frame that is due.
pub(crate) const IDLE_TICK: Duration = Duration::from_millis(20);

/// While writing a batch, permits are given back in steps of this many bytes.
const RELEASE_EVERY: usize = 1 << 20;

/// Memory an event is charged for on top of its payload.
const EVENT_OVERHEAD: usize = 128;

/// The monotonic clock all timestamps of one capture are read from.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    start: Instant,
}

impl Clock {
    pub(crate) fn new(start: Instant) -> Self {
        Self { start }
    }

    /// Nanoseconds since the capture started.
    pub(crate) fn nanos(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

/// A pool of forwarding buffers, so that a chunk handed to the capture
/// thread is replaced without allocating in the steady state.
#[derive(Debug)]
pub(crate) struct BufferPool {
    buffers: Mutex<Vec<Vec<u8>>>,
    buffer_size: usize,
    max_pooled: usize,
}

impl BufferPool {
    pub(crate) fn new(buffer_size: usize, max_pooled: usize) -> Self {
        Self {
            buffers: Mutex::new(Vec::new()),
            buffer_size,
            max_pooled,
        }
    }

    /// An empty buffer with at least `buffer_size` bytes of capacity.
    pub(crate) fn take(&self) -> Vec<u8> {
        let pooled = match self.buffers.lock() {
            Ok(mut guard) => guard.pop(),
            Err(poisoned) => poisoned.into_inner().pop(),
        };
        pooled.unwrap_or_else(|| Vec::with_capacity(self.buffer_size))
    }

    /// Frees every pooled buffer (once no connection is left to use them).
    pub(crate) fn clear(&self) {
        let mut guard = match self.buffers.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        *guard = Vec::new();
    }

    /// Returns a buffer to the pool if it is one of ours and the pool has room.
    pub(crate) fn put(&self, mut buffer: Vec<u8>) {
        if buffer.capacity() < self.buffer_size || buffer.capacity() > 2 * self.buffer_size {
            return;
        }
        buffer.clear();
        let mut guard = match self.buffers.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        if guard.len() < self.max_pooled {
            guard.push(buffer);
        }
    }
}

/// One thing to write to the capture.
#[derive(Debug)]
pub(crate) enum Event {
    Open {
        conn: u64,
        t: u64,
        peer: Option<PeerCred>,
        metadata: BTreeMap<String, String>,
    },
    Data {
        conn: u64,
        direction: Direction,
        t: u64,
        bytes: Vec<u8>,
    },
    Close {
        conn: u64,
        t: u64,
        reason: CloseReason,
    },
    Annotate {
        t: u64,
        text: String,
    },
    /// Contents fetched outside the connections (or why they are missing).
    StoreObject {
        t: u64,
        kind: StoreObjectKind,
        name: String,
        contents: Result<Vec<u8>, String>,
    },
}

impl Event {
    /// The memory the event holds, in bytes, as charged against the budget.
    fn cost(&self) -> usize {
        match self {
            Event::Data { bytes, .. } => bytes.capacity() + EVENT_OVERHEAD,
            Event::Open { metadata, .. } => {
                EVENT_OVERHEAD
                    + metadata
                        .iter()
                        .map(|(k, v)| k.len() + v.len())
                        .sum::<usize>()
            }
            Event::Close { reason, .. } => EVENT_OVERHEAD + reason.message().len(),
            Event::Annotate { text, .. } => EVENT_OVERHEAD + text.len(),
            Event::StoreObject { name, contents, .. } => {
                EVENT_OVERHEAD
                    + name.len()
                    + match contents {
                        Ok(bytes) => bytes.len(),
                        Err(reason) => reason.len(),
                    }
            }
        }
    }
}

#[derive(Debug)]
enum Message {
    Event {
        event: Event,
        permits: u32,
    },
    /// Write out the open frame and free the writer's idle buffers (no
    /// connection is left; what may follow is store objects), then say so.
    Flush {
        done: oneshot::Sender<()>,
    },
    Finish {
        t: u64,
    },
}

/// The queue between the forwarding tasks and the capture thread.
#[derive(Debug, Default)]
struct Queue {
    state: Mutex<QueueState>,
    wake: Condvar,
}

#[derive(Debug, Default)]
struct QueueState {
    messages: Vec<Message>,
    /// The capture thread is waiting on `wake`.
    waiting: bool,
    /// The capture thread is gone; nothing is taken any more.
    closed: bool,
    /// Live [`SinkHandle`]s. When none is left, no finish can come.
    handles: usize,
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, QueueState> {
        match self.state.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Queues a message, waking the thread only if `urgent`. Gives the
    /// message back if the thread is gone.
    fn push(&self, message: Message, urgent: bool) -> Result<(), Message> {
        let mut state = self.lock();
        if state.closed {
            return Err(message);
        }
        state.messages.push(message);
        let wake = urgent && state.waiting;
        drop(state);
        if wake {
            self.wake.notify_one();
        }
        Ok(())
    }

    /// Moves everything queued into `batch`, first waiting up to `timeout`
    /// if nothing is. Returns false once every handle is gone.
    fn take(&self, batch: &mut Vec<Message>, timeout: Duration) -> bool {
        let mut state = self.lock();
        if state.messages.is_empty() && state.handles > 0 {
            state.waiting = true;
            state = match self.wake.wait_timeout(state, timeout) {
                Ok((guard, _)) => guard,
                Err(poisoned) => poisoned.into_inner().0,
            };
            state.waiting = false;
        }
        std::mem::swap(&mut state.messages, batch);
        state.handles > 0
    }

    /// Marks the thread as gone and returns what was still queued.
    fn close(&self) -> Vec<Message> {
        let mut state = self.lock();
        state.closed = true;
        std::mem::take(&mut state.messages)
    }
}

/// What the capture thread produced.
#[derive(Debug)]
pub(crate) struct SinkOutcome<W> {
    /// The output, given back by a writer that finished.
    pub(crate) out: Option<W>,
    /// The writer's summary: final if the capture finished, else as far as it got.
    pub(crate) summary: Option<Summary>,
    /// Why the capture is incomplete, if it is.
    pub(crate) problems: Vec<String>,
    /// True if writing stopped altogether (the file has no footer).
    pub(crate) failed: bool,
}

/// The forwarding side's handle on the capture thread. Cheap to clone.
#[derive(Debug)]
pub(crate) struct SinkHandle {
    queue: Arc<Queue>,
    budget: Arc<Semaphore>,
    budget_total: u32,
    /// Once fewer permits than this are left, queueing wakes the thread.
    wake_below: usize,
    pub(crate) pool: Arc<BufferPool>,
}

impl Clone for SinkHandle {
    fn clone(&self) -> Self {
        self.queue.lock().handles += 1;
        Self {
            queue: Arc::clone(&self.queue),
            budget: Arc::clone(&self.budget),
            budget_total: self.budget_total,
            wake_below: self.wake_below,
            pool: Arc::clone(&self.pool),
        }
    }
}

impl Drop for SinkHandle {
    fn drop(&mut self) {
        let mut state = self.queue.lock();
        state.handles = state.handles.saturating_sub(1);
        let last = state.handles == 0;
        drop(state);
        if last {
            self.queue.wake.notify_one();
        }
    }
}

impl SinkHandle {
    /// Queues an event, waiting while the capture is too far behind.
    ///
    /// Returns at once, dropping the event, if the capture has failed or
    /// finished: forwarding never waits on a capture that is not being written.
    pub(crate) async fn send(&self, event: Event) {
        let permits = u32::try_from(event.cost())
            .unwrap_or(u32::MAX)
            .min(self.budget_total);
        match self.budget.acquire_many(permits).await {
            Ok(permit) => permit.forget(),
            Err(_closed) => {
                self.recycle(event);
                return;
            }
        }
        let urgent = self.budget.available_permits() < self.wake_below;
        if let Err(message) = self.queue.push(Message::Event { event, permits }, urgent) {
            self.budget.add_permits(permits as usize);
            if let Message::Event { event, .. } = message {
                self.recycle(event);
            }
        }
    }

    /// Asks the thread to write out everything queued so far, the open frame
    /// included, and to free the writer's idle buffers; completes when it
    /// has (or at once if the capture is gone). For a drained recorder.
    pub(crate) async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.queue.push(Message::Flush { done }, true).is_ok() {
            let _ = wait.await;
        }
    }

    /// Asks the thread to finish the capture at time `t`.
    pub(crate) fn finish(&self, t: u64) {
        let _ = self.queue.push(Message::Finish { t }, true);
    }

    fn recycle(&self, event: Event) {
        if let Event::Data { bytes, .. } = event {
            self.pool.put(bytes);
        }
    }
}

/// Settings of the capture thread.
#[derive(Debug, Clone)]
pub(crate) struct SinkSettings {
    pub(crate) budget_bytes: usize,
    pub(crate) log_to_stderr: bool,
    pub(crate) describe_output: String,
}

/// Starts the capture thread around an already created writer (one
/// capture, or a rotating set).
pub(crate) fn spawn<O>(
    writer: O,
    clock: Clock,
    pool: Arc<BufferPool>,
    settings: SinkSettings,
) -> std::io::Result<(SinkHandle, oneshot::Receiver<SinkOutcome<O::Out>>)>
where
    O: CaptureOutput + Send + 'static,
    O::Out: Send + 'static,
{
    let budget_total = u32::try_from(settings.budget_bytes.max(EVENT_OVERHEAD))
        .unwrap_or(u32::MAX)
        .min(u32::try_from(Semaphore::MAX_PERMITS).unwrap_or(u32::MAX));
    let budget = Arc::new(Semaphore::new(budget_total as usize));
    let queue = Arc::new(Queue::default());
    queue.lock().handles = 1;
    let (outcome_tx, outcome_rx) = oneshot::channel();
    let thread_budget = Arc::clone(&budget);
    let thread_pool = Arc::clone(&pool);
    let thread_queue = Arc::clone(&queue);
    std::thread::Builder::new()
        .name("nixcap-capture".to_owned())
        .spawn(move || {
            // Whatever happens to this thread, forwarding must not wait on it.
            let _close = CloseOnDrop {
                budget: Arc::clone(&thread_budget),
                queue: Arc::clone(&thread_queue),
            };
            let outcome = CaptureThread {
                writer: Some(writer),
                clock,
                budget: thread_budget,
                pool: thread_pool,
                settings,
                last_t: 0,
                problems: Vec::new(),
                failed: false,
                skipped_conns: BTreeSet::new(),
            }
            .run(&thread_queue);
            let _ = outcome_tx.send(outcome);
        })?;
    Ok((
        SinkHandle {
            queue,
            budget,
            budget_total,
            wake_below: budget_total as usize / 4 * 3,
            pool,
        },
        outcome_rx,
    ))
}

struct CloseOnDrop {
    budget: Arc<Semaphore>,
    queue: Arc<Queue>,
}

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        self.budget.close();
        drop(self.queue.close());
    }
}

struct CaptureThread<O: CaptureOutput> {
    writer: Option<O>,
    clock: Clock,
    budget: Arc<Semaphore>,
    pool: Arc<BufferPool>,
    settings: SinkSettings,
    /// Timestamps are read on several threads; this keeps them monotonic in file order.
    last_t: u64,
    problems: Vec<String>,
    failed: bool,
    /// Connections the writer refused to open; their later events are skipped.
    skipped_conns: BTreeSet<u64>,
}

impl<O: CaptureOutput> CaptureThread<O> {
    fn run(mut self, queue: &Queue) -> SinkOutcome<O::Out> {
        let mut batch = Vec::new();
        let finish_t = 'run: loop {
            let handles_left = queue.take(&mut batch, IDLE_TICK);
            let mut released = 0usize;
            let mut finish = None;
            for message in batch.drain(..) {
                match message {
                    Message::Event { event, permits } => {
                        if finish.is_none() {
                            self.write_event(event);
                        } else {
                            self.recycle(event);
                        }
                        released += permits as usize;
                        // Let waiting forwarders go on while a large batch is written.
                        if released >= RELEASE_EVERY {
                            self.budget.add_permits(released);
                            released = 0;
                        }
                    }
                    Message::Flush { done } => {
                        if finish.is_none() {
                            self.flush_frame();
                            if let Some(writer) = self.writer.as_mut() {
                                writer.release_buffers();
                            }
                        }
                        let _ = done.send(());
                    }
                    Message::Finish { t } => finish = finish.or(Some(t)),
                }
            }
            self.budget.add_permits(released);
            if let Some(t) = finish {
                break 'run t;
            }
            if !handles_left {
                // Nobody can ask for a finish any more (the recorder was
                // dropped without finishing): finish now.
                break 'run self.clock.nanos();
            }
            self.flush_if_due();
        };
        // Events queued after the finish request (from connections still
        // being torn down) cannot be written after the footer; close the
        // budget so that nobody waits on them.
        self.budget.close();
        let end = self.monotonic(finish_t);
        let mut summary = self.writer.as_ref().map(CaptureOutput::summary);
        let mut out = None;
        if let Some(writer) = self.writer.take() {
            match writer.finish(end) {
                Ok((w, s)) => {
                    out = Some(w);
                    summary = Some(s);
                }
                Err(e) => self.fail(&e),
            }
        }
        SinkOutcome {
            out,
            summary,
            problems: self.problems,
            failed: self.failed,
        }
    }

    fn monotonic(&mut self, t: u64) -> u64 {
        self.last_t = self.last_t.max(t);
        self.last_t
    }

    fn write_event(&mut self, event: Event) {
        let Some(writer) = self.writer.as_mut() else {
            self.recycle(event);
            return;
        };
        let t = match &event {
            Event::Open { t, .. }
            | Event::Data { t, .. }
            | Event::Close { t, .. }
            | Event::Annotate { t, .. }
            | Event::StoreObject { t, .. } => *t,
        };
        self.last_t = self.last_t.max(t);
        let t = self.last_t;
        let conn = match &event {
            Event::Open { conn, .. } | Event::Data { conn, .. } | Event::Close { conn, .. } => {
                Some(*conn)
            }
            Event::Annotate { .. } | Event::StoreObject { .. } => None,
        };
        if conn.is_some_and(|c| self.skipped_conns.contains(&c)) {
            if let Event::Close { conn, .. } = &event {
                self.skipped_conns.remove(conn);
            }
            self.recycle(event);
            return;
        }
        let result = match event {
            Event::Open {
                conn,
                peer,
                metadata,
                ..
            } => writer.open_connection(conn, t, peer, metadata),
            Event::Data {
                conn,
                direction,
                bytes,
                ..
            } => {
                let result = writer.data(conn, direction, t, &bytes);
                self.pool.put(bytes);
                result
            }
            Event::Close { conn, reason, .. } => writer.close_connection(conn, t, reason),
            Event::Annotate { text, .. } => writer.annotate(t, &text),
            Event::StoreObject {
                kind,
                name,
                contents,
                ..
            } => match contents {
                Ok(bytes) => writer.store_object(t, kind, &name, &bytes).map(|_| ()),
                Err(reason) => writer
                    .missing_store_object(t, kind, &name, &reason)
                    .map(|_| ()),
            },
        };
        if let Err(error) = result {
            self.handle_error(conn, &error);
        }
    }

    fn recycle(&self, event: Event) {
        if let Event::Data { bytes, .. } = event {
            self.pool.put(bytes);
        }
    }

    fn flush_frame(&mut self) {
        if let Some(writer) = self.writer.as_mut() {
            if let Err(error) = writer.flush_frame() {
                self.handle_error(None, &error);
            }
        }
    }

    fn flush_if_due(&mut self) {
        let now = self.clock.nanos();
        let now = self.monotonic(now);
        if let Some(writer) = self.writer.as_mut() {
            if let Err(error) = writer.flush_if_due(now) {
                self.handle_error(None, &error);
            }
        }
    }

    fn handle_error(&mut self, conn: Option<u64>, error: &WriteError) {
        match error {
            WriteError::Io { .. } | WriteError::Poisoned | WriteError::Encode { .. } => {
                self.fail(error);
            }
            _ => {
                // The writer refused one operation but can go on: the
                // capture stays usable, but lacks this connection.
                let message = match conn {
                    Some(conn) => format!("connection {conn} is not recorded: {error}"),
                    None => format!("capture refused an operation: {error}"),
                };
                if let Some(conn) = conn {
                    self.skipped_conns.insert(conn);
                }
                if self.settings.log_to_stderr {
                    eprintln!("nixcap record: warning: {message}");
                }
                if let Some(writer) = self.writer.as_mut() {
                    let t = self.last_t;
                    if let Err(e) = writer.annotate(t, &format!("incomplete: {message}")) {
                        self.problems.push(message);
                        self.fail(&e);
                        return;
                    }
                }
                self.problems.push(message);
            }
        }
    }

    /// Gives up on the capture for good, loudly, without ever blocking forwarding.
    fn fail(&mut self, error: &WriteError) {
        if self.failed {
            return;
        }
        self.failed = true;
        self.budget.close();
        let message = format!(
            "{} can no longer be written: {error}",
            self.settings.describe_output
        );
        if self.settings.log_to_stderr {
            eprintln!(
                "nixcap record: ERROR: {message}\n\
                 nixcap record: ERROR: traffic keeps flowing to the daemon, but from now on it is NOT recorded; \
                 the capture is incomplete (it has no footer)"
            );
        }
        self.problems.push(message);
        if let Some(mut writer) = self.writer.take() {
            // One last attempt to leave a note in the file. A writer that
            // failed on I/O refuses, which is fine: the missing footer
            // already marks the file as incomplete.
            let t = self.last_t;
            if writer
                .annotate(
                    t,
                    "capture aborted: the recorder could not write the capture",
                )
                .is_ok()
            {
                let _ = writer.flush_frame();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_reuses_only_buffers_of_its_size() {
        let pool = BufferPool::new(1024, 2);
        let mut buffer = pool.take();
        assert!(buffer.capacity() >= 1024);
        buffer.extend_from_slice(b"abc");
        let pointer = buffer.as_ptr();
        pool.put(buffer);
        let again = pool.take();
        assert_eq!(again.as_ptr(), pointer);
        assert!(again.is_empty());
        pool.put(vec![0; 10]);
        assert_eq!(pool.buffers.lock().unwrap().len(), 0);
        for _ in 0..5 {
            pool.put(Vec::with_capacity(1024));
        }
        assert_eq!(pool.buffers.lock().unwrap().len(), 2);
    }

    #[test]
    fn data_events_are_charged_for_their_capacity() {
        let event = Event::Data {
            conn: 1,
            direction: Direction::ClientToServer,
            t: 0,
            bytes: Vec::with_capacity(4096),
        };
        assert_eq!(event.cost(), 4096 + EVENT_OVERHEAD);
    }
}
