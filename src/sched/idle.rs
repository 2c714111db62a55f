//! Which workers sleep, which search for work, and whom to wake.
//!
//! The protocol (tokio's, adapted):
//!
//! - A worker with nothing to do becomes *searching* (stealing from the
//!   others and the injector), but only while fewer than half the workers
//!   search: more would only fight over the same queues.
//! - A worker that finds work stops searching; if it was the last
//!   searcher, it wakes a sleeper, so someone keeps looking for the rest.
//! - Work pushed where others can steal it wakes a sleeper *only if nobody
//!   is searching* (a searcher will find it), which avoids thundering herds.
//! - A worker going to sleep registers in the sleeper list first; if it
//!   was the last searcher it then re-checks every queue, because a push
//!   that happened while it was still searching woke nobody.
//!
//! `num_searching` and `num_unparked` share one `AtomicUsize` and are
//! accessed with `SeqCst`: a pusher's "push, then read the counts" and a
//! sleeper's "update the counts, then re-check the queues" must not both
//! miss each other, which Acquire/Release alone does not rule out.

use crate::loom::sync::Mutex;
use crate::loom::sync::atomic::{AtomicUsize, Ordering};

/// `num_searching` lives in the low bits, `num_unparked` above them.
const UNPARKED_SHIFT: usize = 16;
const SEARCHING_MASK: usize = (1 << UNPARKED_SHIFT) - 1;

#[derive(Debug)]
pub(crate) struct Idle {
    state: AtomicUsize,
    /// Indices of sleeping workers.
    sleepers: Mutex<Vec<usize>>,
    num_workers: usize,
}

fn searching(state: usize) -> usize {
    state & SEARCHING_MASK
}

fn unparked(state: usize) -> usize {
    state >> UNPARKED_SHIFT
}

impl Idle {
    /// All `num_workers` workers start awake and not searching.
    pub(crate) fn new(num_workers: usize) -> Idle {
        assert!(num_workers < SEARCHING_MASK, "too many workers");
        Idle {
            state: AtomicUsize::new(num_workers << UNPARKED_SHIFT),
            sleepers: Mutex::new(Vec::with_capacity(num_workers)),
            num_workers,
        }
    }

    /// Whom to wake after pushing stealable work, if anyone: a sleeper,
    /// unless some worker is searching or none sleeps. The chosen worker
    /// is counted as unparked and searching before it wakes.
    pub(crate) fn worker_to_notify(&self) -> Option<usize> {
        if !self.should_wake() {
            return None;
        }
        let mut sleepers = self.sleepers.lock();
        // Re-check under the lock: another pusher may have woken one.
        if !self.should_wake() {
            return None;
        }
        let worker = sleepers.pop()?;
        // One more unparked worker, and it is searching.
        self.state
            .fetch_add(1 | (1 << UNPARKED_SHIFT), Ordering::SeqCst);
        Some(worker)
    }

    fn should_wake(&self) -> bool {
        // A read-modify-write, not a load: the pusher's "push, then read
        // the counts" must not pass a sleeper's "update the counts, then
        // re-check the queues" (a store followed by a load may be
        // reordered on x86 and in the C++ model; an RMW on the shared word
        // cannot be). tokio reads its idle state the same way.
        let state = self.state.fetch_add(0, Ordering::SeqCst);
        searching(state) == 0 && unparked(state) < self.num_workers
    }

    /// Whether every worker is awake and none is searching: then nobody
    /// will steal queued work unless woken for it. A hint (Relaxed).
    pub(crate) fn all_busy(&self) -> bool {
        let state = self.state.load(Ordering::Relaxed);
        searching(state) == 0 && unparked(state) == self.num_workers
    }

    /// Tries to become a searcher; refused when half the workers already
    /// search.
    pub(crate) fn transition_worker_to_searching(&self) -> bool {
        let state = self.state.load(Ordering::SeqCst);
        if 2 * searching(state) >= self.num_workers {
            return false;
        }
        self.state.fetch_add(1, Ordering::SeqCst);
        true
    }

    /// A searcher found work. Returns true if it was the last searcher (it
    /// must then wake a sleeper so the search goes on).
    pub(crate) fn transition_worker_from_searching(&self) -> bool {
        let prev = self.state.fetch_sub(1, Ordering::SeqCst);
        debug_assert!(searching(prev) > 0);
        searching(prev) == 1
    }

    /// The worker goes to sleep. Returns true if it was the last searcher
    /// (it must then re-check every queue before sleeping).
    pub(crate) fn transition_worker_to_parked(&self, worker: usize, is_searching: bool) -> bool {
        let mut sleepers = self.sleepers.lock();
        let dec = (1 << UNPARKED_SHIFT) | usize::from(is_searching);
        let prev = self.state.fetch_sub(dec, Ordering::SeqCst);
        sleepers.push(worker);
        is_searching && searching(prev) == 1
    }

    /// The worker woke up. If it is still in the sleeper list (woken
    /// directly, or by a timeout, not through `worker_to_notify`), it takes
    /// itself out and counts itself unparked. Returns whether it should
    /// search (true when `worker_to_notify` chose it).
    pub(crate) fn transition_worker_from_parked(&self, worker: usize) -> bool {
        let mut sleepers = self.sleepers.lock();
        if let Some(at) = sleepers.iter().position(|&w| w == worker) {
            sleepers.swap_remove(at);
            self.state.fetch_add(1 << UNPARKED_SHIFT, Ordering::SeqCst);
            false
        } else {
            true
        }
    }

    /// Whether `worker` is registered as sleeping.
    #[cfg(test)]
    pub(crate) fn is_parked(&self, worker: usize) -> bool {
        self.sleepers.lock().contains(&worker)
    }
}
