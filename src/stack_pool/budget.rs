//! The stack budget: how many stacks may be *in use* at once, across every
//! pool that shares it (a runtime's default pool and the pools of fibers
//! built with their own stack size).
//!
//! Idle stacks do not count: a stack idle in some thread's cache must not
//! stop another thread from starting a fiber. Only pools with a budget pay
//! for it, one atomic read-modify-write when a stack leaves the pool and
//! one when it comes back; the default has none.

use std::sync::atomic::{AtomicUsize, Ordering};

#[derive(Debug)]
pub(crate) struct Budget {
    max: usize,
    in_use: AtomicUsize,
}

impl Budget {
    pub(crate) fn new(max: usize) -> Budget {
        Budget {
            max,
            in_use: AtomicUsize::new(0),
        }
    }

    pub(crate) fn max(&self) -> usize {
        self.max
    }

    /// Counts one more stack in use, unless that would exceed the budget.
    pub(crate) fn try_acquire(&self) -> bool {
        // Relaxed: the count orders nothing; it is only compared.
        self.in_use
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < self.max).then_some(n + 1)
            })
            .is_ok()
    }

    /// A stack went back to its pool.
    pub(crate) fn release(&self) {
        self.in_use.fetch_sub(1, Ordering::Relaxed);
    }
}
