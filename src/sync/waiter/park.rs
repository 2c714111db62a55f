//! How the waiting side parks, wakes and learns of shutdown: the fiber
//! API in real builds, loom's threads in models.

use super::Target;
use std::time::Duration;

/// A plain thread's handle.
#[cfg(not(loom))]
pub(crate) type Thread = std::thread::Thread;
/// A loom thread's handle (loom threads stand in for fibers).
#[cfg(loom)]
pub(crate) type Thread = ::loom::thread::Thread;

#[cfg(not(loom))]
use crate::fiber::task::{Body, TaskCell};

/// The task of a fiber that waits, uncounted: valid while its context
/// lives (see the pointer invariant in `waiter.rs`).
#[cfg(not(loom))]
pub(crate) struct TaskPtr(*const TaskCell<dyn Body>);

// SAFETY: it points to a `Send + Sync` task (`Body: Send + Sync`, and
// the header is both), dereferenced only while the task is alive.
#[cfg(not(loom))]
unsafe impl Send for TaskPtr {}
// SAFETY: as above.
#[cfg(not(loom))]
unsafe impl Sync for TaskPtr {}

#[cfg(not(loom))]
impl TaskPtr {
    /// Unparks the fiber (as [`Fiber::unpark`](crate::fiber::Fiber)
    /// does). `waiter` is the address of its wait's context, on its
    /// stack (see `sched::wake_waiter`).
    #[inline]
    pub(super) fn wake(&self, waiter: *const u8) {
        // SAFETY: the task outlives the waiting fiber's frames (its
        // worker holds it until the body ends, see `fiber::task`), and
        // the fiber is still waiting: its context is not READY.
        let task = unsafe { &*self.0 };
        crate::sched::wake_waiter(task, waiter);
    }
}

/// The calling fiber's task, or else the calling thread. No reference
/// count: the context that holds it lives on the fiber's own stack.
#[cfg(not(loom))]
#[inline]
pub(crate) fn current_target() -> Target {
    match crate::sched::worker::with_current(|w| w.and_then(|w| w.current_task())) {
        Some(task) => Target::Fiber(TaskPtr(task)),
        None => Target::Thread(std::thread::current()),
    }
}

/// The fiber's park, inlined into the wait (`Context::wait`, itself
/// inlined into the blocking operation): the park's switch happens in the
/// operation's own frame, so a resumed fiber returns through one frame
/// less, and the callee-saved registers are saved once, not twice
/// (callgrind: a ping-pong round trip 774 -> 753 instructions).
#[cfg(not(loom))]
#[inline]
pub(crate) fn park() {
    crate::fiber::current::park_inline();
}

#[cfg(not(loom))]
pub(crate) fn park_timeout(timeout: Duration) {
    crate::fiber::park_timeout(timeout);
}

#[cfg(not(loom))]
pub(crate) fn is_cancelled() -> bool {
    crate::fiber::current::is_cancelled()
}

/// Waits a moment for a selector that is mid-way (on another thread).
#[cfg(not(loom))]
pub(crate) fn spin() {
    for _ in 0..32 {
        std::hint::spin_loop();
    }
    std::thread::yield_now();
}

#[cfg(loom)]
pub(crate) fn current_target() -> Target {
    Target::Thread(::loom::thread::current())
}

#[cfg(loom)]
pub(crate) fn park() {
    ::loom::thread::park();
}

/// loom has no clock: a timed park is a spurious return (models use
/// deadlines that have passed, so they stay deterministic).
#[cfg(loom)]
pub(crate) fn park_timeout(_timeout: Duration) {
    ::loom::thread::yield_now();
}

#[cfg(loom)]
pub(crate) fn is_cancelled() -> bool {
    false
}

#[cfg(loom)]
pub(crate) fn spin() {
    ::loom::thread::yield_now();
}
