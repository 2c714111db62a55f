//! The seam between the scheduler and an I/O driver (the reactor).
//!
//! `sched` knows nothing of sockets: a higher layer (`net`) implements
//! [`Driver`], and the runtime builder hands it to the scheduler. Then:
//!
//! - one idle worker at a time *owns* the driver and sleeps inside
//!   [`Driver::park`] (with its next timer deadline as timeout) instead of
//!   on its condition variable; waking that worker means
//!   [`Driver::unpark`] (see `park.rs`);
//! - a busy worker calls [`Driver::poll`] every few dozen rounds, when no
//!   other worker owns the driver, so I/O is never starved by a runtime
//!   that never idles.
//!
//! Events found by either are dispatched by the driver itself, which wakes
//! the fibers waiting for them with `Fiber::unpark`, from the worker that
//! drives it.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::loom::sync::atomic::{AtomicBool, Ordering};

/// An I/O driver a runtime's idle workers block in.
pub(crate) trait Driver: Send + Sync + 'static {
    /// Waits for events for up to `timeout` (`None`: until `unpark`) and
    /// dispatches them. May return early or spuriously.
    fn park(&self, timeout: Option<Duration>);

    /// Dispatches the events that are ready, without blocking.
    fn poll(&self);

    /// Makes a `park` in progress return soon (any thread).
    fn unpark(&self);

    /// Whether anything is registered (sockets a fiber may wait on). A
    /// hint, read without synchronization.
    fn has_sources(&self) -> bool;
}

/// The driver and who owns it now (one worker at a time).
pub(crate) struct DriverGate {
    pub(crate) driver: Arc<dyn Driver>,
    owned: AtomicBool,
}

impl DriverGate {
    pub(crate) fn new(driver: Arc<dyn Driver>) -> DriverGate {
        DriverGate {
            driver,
            owned: AtomicBool::new(false),
        }
    }

    /// Takes ownership if nobody has it. Acquire: sees what the previous
    /// owner did with the driver.
    pub(crate) fn try_own(&self) -> bool {
        !self.owned.load(Ordering::Relaxed)
            && self
                .owned
                .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
    }

    /// Gives ownership back. Release: pairs with `try_own`.
    pub(crate) fn release(&self) {
        self.owned.store(false, Ordering::Release);
    }

    /// A non-blocking turn of the driver, if nobody owns it.
    pub(crate) fn poll_if_free(&self) {
        if self.try_own() {
            self.driver.poll();
            self.release();
        }
    }
}

impl fmt::Debug for DriverGate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DriverGate")
            .field("owned", &self.owned.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}
