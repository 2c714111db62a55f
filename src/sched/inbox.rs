//! A worker's inbox: fibers that live on this worker, woken by another
//! thread. The waker pushes and then unparks the worker ([`Parker`]'s
//! token makes that race-free); the worker drains the whole inbox at once.
//!
//! [`Parker`]: super::park::Parker

use crate::loom::sync::Mutex;
use crate::loom::sync::atomic::{AtomicBool, Ordering};

#[derive(Debug)]
pub(crate) struct Inbox<T> {
    items: Mutex<Vec<T>>,
    /// A hint that `items` may be non-empty, so the owner's hot loop reads
    /// one atomic instead of taking the lock. Set after a push (Release,
    /// under the lock); the owner clears it before draining, under the lock.
    pending: AtomicBool,
}

impl<T> Inbox<T> {
    pub(crate) fn new() -> Inbox<T> {
        Inbox {
            items: Mutex::new(Vec::new()),
            pending: AtomicBool::new(false),
        }
    }

    pub(crate) fn push(&self, item: T) {
        let mut items = self.items.lock();
        items.push(item);
        self.pending.store(true, Ordering::Release);
    }

    /// Whether something may be waiting (cheap; may be stale either way
    /// for a moment, so a worker about to sleep relies on its parker).
    pub(crate) fn is_pending(&self) -> bool {
        self.pending.load(Ordering::Acquire)
    }

    /// Moves everything into `out`, oldest first.
    pub(crate) fn drain_into(&self, out: &mut impl Extend<T>) {
        let mut items = self.items.lock();
        self.pending.store(false, Ordering::Relaxed);
        out.extend(items.drain(..));
    }
}
