//! How everything in `sync` waits: a [`Context`] per blocking operation.
//!
//! A waiter (a fiber, a plain thread, or an async task) that must block
//! takes a `Context`, puts an entry pointing at it in the queue of what it
//! waits for (a channel's receivers, a mutex's waiters), and parks until
//! the context is *selected*. Whoever completes the operation for it (a
//! sender handing over a value, an unlocker handing over the lock) does,
//! under the lock of that queue:
//!
//! 1. `try_select(oper)`: a compare-exchange WAITING -> SELECTED(oper). Only
//!    one party ever wins it; a `select!` registers one context in several
//!    channels, and the first channel to select it is the one that fires.
//! 2. the operation's side effect on the waiter's behalf (writes the value
//!    into the waiter's packet, transfers the lock),
//! 3. `set_ready()`: the READY bit, with Release, publishing step 2,
//! 4. after releasing the queue's lock, `unpark()`: wakes the waiter.
//!
//! The waiter parks in a loop until it sees READY (Acquire). Giving up (a
//! timeout, or runtime shutdown) is `try_abort`: WAITING -> ABORTED, which
//! fails if a party selected the context first; then the operation
//! happened after all, and the waiter waits for READY, which comes at once
//! (the selector is between steps 1 and 3, holding a lock, never parked).
//!
//! So a wake-up is never lost (the selector unparks after READY; park keeps
//! the token), an operation is never done twice for one wait (one CAS
//! wins), and a timeout racing a hand-off either keeps the value or
//! reports the timeout, never both and never neither. A late `unpark` that
//! lands after the waiter moved on only costs it a spurious return from a
//! later park, which every park loop tolerates.
//!
//! An entry stays in its queue until a selector pops it or the waiter
//! removes it (after an abort, or from the other channels of a `select!`):
//! every blocking operation unregisters before it returns, so no entry of a
//! finished operation is left behind, and a context is reused only once no
//! one else holds it.
//!
//! Unwinding: a fiber parked here when its runtime shuts down is unwound
//! from the park (see `fiber/current.rs`); [`wait_on`]'s guard then aborts
//! or, if the operation completed meanwhile, undoes it (gives a handed-over
//! lock back), before the waiter's frames (and its packet) go away.

use std::fmt;
use std::task::Waker;
use std::time::Instant;

use crate::loom::sync::Arc;
use crate::loom::sync::Mutex;
use crate::loom::sync::atomic::{AtomicUsize, Ordering};

/// Not selected yet.
const WAITING: usize = 0;
/// The waiter gave up (timeout, cancellation, or `select!` re-registering).
const ABORTED: usize = 1;
/// Set with SELECTED once the selector's side effect is done.
const READY: usize = 2;
/// SELECTED(oper) is `(oper + 1) << SHIFT`.
const SHIFT: u32 = 2;

/// Who to wake.
pub(crate) enum Target {
    /// A fiber, or a plain thread (`Fiber::unpark` unparks it).
    #[cfg(not(loom))]
    Fiber(crate::fiber::Fiber),
    /// A loom thread, in models.
    #[cfg(loom)]
    Thread(::loom::thread::Thread),
    /// An async task; the lock lets a re-poll replace the waker.
    Waker(Mutex<Waker>),
}

/// One blocking operation's rendezvous point; see the module doc.
pub(crate) struct Context {
    state: AtomicUsize,
    target: Option<Target>,
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("state", &self.state.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// How a wait ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Selected by operation `oper`, which is done.
    Selected(usize),
    /// The deadline passed first (the context is aborted).
    TimedOut,
    /// The runtime is shutting down (the context is aborted).
    Cancelled,
}

impl Context {
    fn new(target: Target) -> Context {
        Context {
            state: AtomicUsize::new(WAITING),
            target: Some(target),
        }
    }

    /// A fresh context for the calling fiber or thread (reusing this
    /// thread's spare one when nobody else holds it).
    pub(crate) fn for_current() -> Arc<Context> {
        let target = park::current_target();
        match spare::take() {
            Some(mut cx) => {
                let fresh = Arc::get_mut(&mut cx).expect("a spare context is unshared");
                fresh.state = AtomicUsize::new(WAITING);
                fresh.target = Some(target);
                cx
            }
            None => Arc::new(Context::new(target)),
        }
    }

    /// A context that wakes an async task.
    pub(crate) fn for_waker(waker: Waker) -> Arc<Context> {
        Arc::new(Context::new(Target::Waker(Mutex::new(waker))))
    }

    /// Gives a finished operation's context back for reuse, if no selector
    /// still holds it (one may, between `set_ready` and `unpark`).
    pub(crate) fn recycle(mut cx: Arc<Context>) {
        if let Some(done) = Arc::get_mut(&mut cx) {
            // Do not keep the fiber alive from the cache.
            done.target = None;
            spare::put(cx);
        }
    }

    /// Selects the context for `oper`; false if it is taken or aborted.
    /// The caller holds the lock of the queue the context's entry was in.
    pub(crate) fn try_select(&self, oper: usize) -> bool {
        // Acquire: the waiter's writes before registering (its packet's
        // value) are visible to the selector.
        self.state
            .compare_exchange(
                WAITING,
                (oper + 1) << SHIFT,
                Ordering::Acquire,
                Ordering::Relaxed,
            )
            .is_ok()
    }

    /// The selector is done with the waiter's packet. Release: pairs with
    /// the Acquire in [`selected`](Self::selected). A plain store: once
    /// selected, only the selector writes the word.
    pub(crate) fn set_ready(&self) {
        let selected = self.state.load(Ordering::Relaxed);
        debug_assert!(selected >= 1 << SHIFT, "set_ready before try_select");
        self.state.store(selected | READY, Ordering::Release);
    }

    /// The waiter gives up; false if it was selected first.
    pub(crate) fn try_abort(&self) -> bool {
        self.state
            .compare_exchange(WAITING, ABORTED, Ordering::Acquire, Ordering::Acquire)
            .is_ok()
    }

    /// The operation that selected the context, once it is done.
    pub(crate) fn selected(&self) -> Option<usize> {
        let state = self.state.load(Ordering::Acquire);
        #[cfg(loom)]
        if crate::sync::tests::mutation::planted("waiter_trusts_selected_before_ready") {
            // The planted bug: take SELECTED for done, without READY.
            return (state >> SHIFT).checked_sub(1);
        }
        (state & READY != 0).then(|| (state >> SHIFT) - 1)
    }

    /// Whether nobody has selected or aborted the context (a hint: it may
    /// change as soon as it is read, unless the reader holds the lock of
    /// every queue the context is in).
    pub(crate) fn is_waiting(&self) -> bool {
        self.state.load(Ordering::Relaxed) == WAITING
    }

    /// Wakes the waiter. Call after `set_ready`, outside the queue's lock.
    pub(crate) fn unpark(&self) {
        match &self.target {
            #[cfg(not(loom))]
            Some(Target::Fiber(fiber)) => fiber.unpark(),
            #[cfg(loom)]
            Some(Target::Thread(thread)) => thread.unpark(),
            Some(Target::Waker(waker)) => waker.lock().wake_by_ref(),
            None => {}
        }
    }

    /// For an async waiter: the waker to wake from now on. Returns the
    /// selected operation if it is already done (the caller then takes
    /// the result instead of waiting).
    pub(crate) fn update_waker(&self, new: &Waker) -> Option<usize> {
        if let Some(Target::Waker(waker)) = &self.target {
            let mut waker = waker.lock();
            if !waker.will_wake(new) {
                waker.clone_from(new);
            }
        }
        // A selector reads the waker after setting READY: if it read the
        // old one, we see READY here (the lock orders the two).
        self.selected()
    }

    /// Aborts, or if a selector got there first, waits for it to finish
    /// (it holds a lock and never parks meanwhile, so this is short).
    /// Returns the selected operation, or `None` if aborted.
    pub(crate) fn abort_or_complete(&self) -> Option<usize> {
        if self.try_abort() || self.state.load(Ordering::Acquire) == ABORTED {
            return None;
        }
        loop {
            if let Some(oper) = self.selected() {
                return Some(oper);
            }
            park::spin();
        }
    }

    /// Parks until selected, until `deadline`, or until the runtime shuts
    /// down (see the module doc).
    pub(crate) fn wait(&self, deadline: Option<Instant>) -> Outcome {
        let mut deadline = deadline;
        loop {
            if let Some(oper) = self.selected() {
                return Outcome::Selected(oper);
            }
            if park::is_cancelled() {
                // Parks return at once now: waiting on would spin.
                return match self.abort_or_complete() {
                    None => Outcome::Cancelled,
                    Some(oper) => Outcome::Selected(oper),
                };
            }
            match deadline {
                None => park::park(),
                Some(at) => {
                    let now = Instant::now();
                    if now >= at {
                        if self.try_abort() {
                            return Outcome::TimedOut;
                        }
                        // Selected meanwhile: READY and the unpark follow.
                        deadline = None;
                        continue;
                    }
                    park::park_timeout(at - now);
                }
            }
        }
    }
}

/// A queue a context can be registered in, for [`wait_on`].
pub(crate) trait Queue {
    /// Removes the entries of `cx` (after an abort).
    fn unregister(&self, cx: &Arc<Context>);

    /// The waiter is being unwound, but operation `oper` completed for it
    /// meanwhile: undo what it cannot keep (give a lock back).
    fn undo(&self, _oper: usize) {}
}

/// Waits for `cx`, already registered in `queue`: see [`Context::wait`].
/// Unregisters it unless selected, also when the wait unwinds.
pub(crate) fn wait_on<Q: Queue + ?Sized>(
    queue: &Q,
    cx: Arc<Context>,
    deadline: Option<Instant>,
) -> Outcome {
    /// Runs only if the wait unwinds (the fiber is being cancelled).
    struct Unwinding<'a, Q: Queue + ?Sized> {
        queue: &'a Q,
        cx: &'a Arc<Context>,
    }
    impl<Q: Queue + ?Sized> Drop for Unwinding<'_, Q> {
        fn drop(&mut self) {
            match self.cx.abort_or_complete() {
                None => self.queue.unregister(self.cx),
                Some(oper) => self.queue.undo(oper),
            }
        }
    }
    let unwinding = Unwinding { queue, cx: &cx };
    let outcome = cx.wait(deadline);
    std::mem::forget(unwinding);
    if !matches!(outcome, Outcome::Selected(_)) {
        queue.unregister(&cx);
    }
    Context::recycle(cx);
    outcome
}

/// What a blocking operation that cannot report failure does when its
/// fiber is cancelled and it would have to wait: it panics, with a message
/// naming the operation. Inside a destructor run by the unwinding (the
/// usual case) Rust then aborts the process with that message: waiting
/// would never end, since parks return at once and the holder may be a
/// fiber that unwinds only after this one.
pub(crate) fn cancelled_panic(what: &str) -> ! {
    panic!(
        "weft::sync: {what} would have to wait while the runtime is shutting down (this fiber \
         is being unwound, and parks return at once); it cannot complete. Use the try_ variant \
         in destructors that may run at shutdown"
    )
}

/// How the waiting side parks, wakes and learns of shutdown: the fiber
/// API in real builds, loom's threads in models.
pub(crate) mod park {
    use super::Target;
    use std::time::Duration;

    #[cfg(not(loom))]
    pub(crate) fn current_target() -> Target {
        Target::Fiber(crate::fiber::current())
    }

    #[cfg(not(loom))]
    pub(crate) fn park() {
        crate::fiber::park();
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
}

/// Each thread keeps one spare context, so a blocking operation usually
/// allocates nothing. Reached through non-inlined functions (the runtime's
/// thread-local rule, see `sched/worker.rs`). Models always allocate.
mod spare {
    use super::Context;
    use crate::loom::sync::Arc;

    #[cfg(not(loom))]
    thread_local! {
        static SPARE: std::cell::Cell<Option<Arc<Context>>> = const { std::cell::Cell::new(None) };
    }

    #[cfg(not(loom))]
    #[inline(never)]
    pub(super) fn take() -> Option<Arc<Context>> {
        SPARE.try_with(std::cell::Cell::take).ok().flatten()
    }

    #[cfg(not(loom))]
    #[inline(never)]
    pub(super) fn put(cx: Arc<Context>) {
        // At thread exit the slot may be gone: then the context just drops.
        let _ = SPARE.try_with(|spare| drop(spare.replace(Some(cx))));
    }

    #[cfg(loom)]
    pub(super) fn take() -> Option<Arc<Context>> {
        None
    }

    #[cfg(loom)]
    pub(super) fn put(cx: Arc<Context>) {
        drop(cx);
    }
}
