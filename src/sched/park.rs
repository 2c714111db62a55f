//! A worker's parker: how an idle worker sleeps, and how it is woken.
//!
//! The algorithm is std's thread parker: one atomic word (EMPTY, PARKED,
//! NOTIFIED) with a mutex and condition variable behind it. A wake that
//! arrives before the worker sleeps is kept (NOTIFIED) and makes the next
//! `park` return at once, so a waker that pushes work and then calls
//! `unpark` can never be missed, whatever the interleaving: that is what
//! lets the inbox and the sleeper list hand work to a sleeping worker.
//!
//! A worker may also sleep inside the runtime's I/O driver (see
//! `driver.rs`) when it can own it: the state is then PARKED_DRIVER, and
//! `unpark` interrupts the driver instead of signalling the condition
//! variable. The token rules are the same.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::driver::{Driver, DriverGate};
use crate::loom::sync::atomic::{AtomicUsize, Ordering};
use crate::loom::sync::{Condvar, Mutex};

const EMPTY: usize = 0;
const PARKED: usize = 1;
const NOTIFIED: usize = 2;
const PARKED_DRIVER: usize = 3;

/// Parks one worker thread; any thread may unpark it.
pub(crate) struct Parker {
    state: AtomicUsize,
    lock: Mutex<()>,
    cvar: Condvar,
    /// The runtime's I/O driver, to interrupt when this worker sleeps in it.
    driver: Option<Arc<dyn Driver>>,
}

impl std::fmt::Debug for Parker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Parker")
            .field("state", &self.state.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Parker {
    #[cfg(any(test, loom))]
    pub(crate) fn new() -> Parker {
        Parker::with_driver(None)
    }

    /// A parker whose worker may sleep in `driver`.
    pub(crate) fn with_driver(driver: Option<Arc<dyn Driver>>) -> Parker {
        Parker {
            state: AtomicUsize::new(EMPTY),
            lock: Mutex::new(()),
            cvar: Condvar::new(),
            driver,
        }
    }

    /// Sleeps in the I/O driver if this worker can own it now, otherwise
    /// on the condition variable (see [`park`](Self::park)).
    pub(crate) fn park_or_drive(&self, timeout: Option<Duration>, gate: Option<&DriverGate>) {
        match gate {
            Some(gate) if gate.try_own() => {
                self.park_in_driver(timeout, gate);
                gate.release();
            }
            _ => self.park(timeout),
        }
    }

    /// Sleeps inside the driver (which this worker owns) until an event, a
    /// wake or `timeout`.
    fn park_in_driver(&self, timeout: Option<Duration>, gate: &DriverGate) {
        match self
            .state
            .compare_exchange(EMPTY, PARKED_DRIVER, Ordering::SeqCst, Ordering::SeqCst)
        {
            Ok(_) => {}
            Err(NOTIFIED) => {
                // A wake came first: consume it (a swap, as in `park`).
                self.state.swap(EMPTY, Ordering::SeqCst);
                return;
            }
            Err(other) => unreachable!("parker state {other} while parking"),
        }
        gate.driver.park(timeout);
        // Leave PARKED_DRIVER, consuming a wake that came meanwhile.
        self.state.swap(EMPTY, Ordering::SeqCst);
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
            PARKED_DRIVER => {
                if let Some(driver) = &self.driver {
                    driver.unpark();
                }
            }
            other => unreachable!("parker state {other} while unparking"),
        }
    }
}
