//! A worker's parker: how an idle worker sleeps, and how it is woken.
//!
//! The algorithm is std's thread parker: one atomic word (EMPTY, PARKED,
//! NOTIFIED) with a mutex and condition variable behind it. A wake that
//! arrives before the worker sleeps is kept (NOTIFIED) and makes the next
//! `park` return at once, so a waker that pushes work and then calls
//! `unpark` can never be missed, whatever the interleaving: that is what
//! lets the inbox and the sleeper list hand work to a sleeping worker.

use std::time::{Duration, Instant};

use crate::loom::sync::atomic::{AtomicUsize, Ordering};
use crate::loom::sync::{Condvar, Mutex};

const EMPTY: usize = 0;
const PARKED: usize = 1;
const NOTIFIED: usize = 2;

/// Parks one worker thread; any thread may unpark it.
#[derive(Debug, Default)]
pub(crate) struct Parker {
    state: AtomicUsize,
    lock: Mutex<()>,
    cvar: Condvar,
}

impl Parker {
    pub(crate) fn new() -> Parker {
        Parker {
            state: AtomicUsize::new(EMPTY),
            lock: Mutex::new(()),
            cvar: Condvar::new(),
        }
    }

    /// Sleeps until [`unpark`](Self::unpark) (now or earlier, unconsumed)
    /// or until `timeout` passes. May return spuriously.
    pub(crate) fn park(&self, timeout: Option<Duration>) {
        // A pending wake: consume it. Acquire pairs with unpark's swap.
        if self
            .state
            .compare_exchange(NOTIFIED, EMPTY, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
        {
            return;
        }
        if timeout == Some(Duration::ZERO) {
            return;
        }
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut guard = self.lock.lock();
        match self
            .state
            .compare_exchange(EMPTY, PARKED, Ordering::SeqCst, Ordering::SeqCst)
        {
            Ok(_) => {}
            Err(NOTIFIED) => {
                // Woken between the fast path and the lock. Consume the
                // token with a swap, not a store: another unpark may have
                // come since the exchange read NOTIFIED, and only reading
                // its write synchronizes with what it did before unparking
                // (std's parker does the same; loom found the store's lost
                // wake-up at preemption bound 3).
                self.state.swap(EMPTY, Ordering::SeqCst);
                return;
            }
            Err(other) => unreachable!("parker state {other} while parking"),
        }
        loop {
            let timed_out = match deadline {
                None => {
                    self.cvar.wait(&mut guard);
                    false
                }
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    left.is_zero() || self.cvar.wait_timeout(&mut guard, left)
                }
            };
            // Synchronizes with the swap in `unpark`.
            if self
                .state
                .compare_exchange(NOTIFIED, EMPTY, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
            {
                return;
            }
            if timed_out {
                // Leave PARKED; a racing unpark's NOTIFIED is consumed too.
                self.state.swap(EMPTY, Ordering::SeqCst);
                return;
            }
        }
    }

    /// Wakes the worker if it sleeps, else makes its next `park` return.
    pub(crate) fn unpark(&self) {
        match self.state.swap(NOTIFIED, Ordering::SeqCst) {
            EMPTY | NOTIFIED => {}
            PARKED => {
                // Take the lock so the notification cannot slip in between
                // the sleeper's state check and its wait.
                drop(self.lock.lock());
                self.cvar.notify_one();
            }
            other => unreachable!("parker state {other} while unparking"),
        }
    }
}
