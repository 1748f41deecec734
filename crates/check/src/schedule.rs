//! The order between connections: an op (or a connection's opening) waits
//! for every op of the other connections that had ended before it started
//! in the recording. Ops that overlapped in the recording run concurrently;
//! ops of one connection always run in their order.
//!
//! Every wait points to an op that ended strictly earlier in the recording,
//! so there are no cycles; a connection that stops early marks itself
//! finished so that no one waits for it.

use std::sync::{Condvar, Mutex, PoisonError};

#[derive(Debug)]
pub(crate) struct Schedule {
    /// Per connection, the recorded end time of each op, in order.
    ends: Vec<Vec<u64>>,
    /// Per connection, how many of its ops are done (`usize::MAX` once the
    /// connection is finished).
    done: Mutex<Vec<usize>>,
    cond: Condvar,
}

impl Schedule {
    pub fn new(ends: Vec<Vec<u64>>) -> Schedule {
        let done = vec![0; ends.len()];
        Schedule {
            ends,
            done: Mutex::new(done),
            cond: Condvar::new(),
        }
    }

    /// Blocks until every op of the other connections that ended before
    /// `t_nanos` in the recording is done.
    pub fn wait_for(&self, me: usize, t_nanos: u64) {
        let need: Vec<usize> = self
            .ends
            .iter()
            .map(|ends| ends.iter().filter(|&&end| end < t_nanos).count())
            .collect();
        let mut done = self.done.lock().unwrap_or_else(PoisonError::into_inner);
        while done
            .iter()
            .zip(&need)
            .enumerate()
            .any(|(index, (&done, &need))| index != me && done < need)
        {
            done = self.cond.wait(done).unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Records that connection `me` has done `count` ops.
    pub fn done(&self, me: usize, count: usize) {
        let mut done = self.done.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(slot) = done.get_mut(me) {
            *slot = (*slot).max(count);
        }
        self.cond.notify_all();
    }

    /// Records that connection `me` will do nothing more.
    pub fn finished(&self, me: usize) {
        self.done(me, usize::MAX);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_later_op_waits_for_an_op_that_ended_before_it() {
        // Connection 0 has one op ending at 10; connection 1's op starts at 20.
        let schedule = Arc::new(Schedule::new(vec![vec![10], vec![30]]));
        let (tx, rx) = std::sync::mpsc::channel();
        let waiting = Arc::clone(&schedule);
        let thread = std::thread::spawn(move || {
            waiting.wait_for(1, 20);
            tx.send(()).ok();
        });
        assert!(rx.recv_timeout(Duration::from_millis(200)).is_err());
        schedule.done(0, 1);
        assert!(rx.recv_timeout(Duration::from_secs(10)).is_ok());
        thread.join().ok();
    }

    #[test]
    fn overlapping_ops_do_not_wait_and_finished_connections_release() {
        let schedule = Schedule::new(vec![vec![10, 50], vec![40]]);
        // Connection 1's op starts at 20, after connection 0's first op
        // ended (10): a connection that finished releases the wait.
        schedule.finished(0);
        schedule.wait_for(1, 20);
        // Connection 0's second op starts at 30 while connection 1's op
        // (ending at 40) is still running: no wait.
        let schedule = Schedule::new(vec![vec![10, 50], vec![40]]);
        schedule.wait_for(0, 30);
    }
}
