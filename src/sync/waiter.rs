//! How everything in `sync` waits: a [`Context`] per blocking operation.
//!
//! A waiter (a fiber, a plain thread, or an async task) that must block
//! makes a `Context` (on its own stack; an async receive keeps it in a
//! box), puts an entry pointing at it ([`CxRef`]) in the queue of what it
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
//! 3. `complete()`: takes a [`Wake`] (a clone of the waiter's fiber handle
//!    or waker), then sets the READY bit with Release, publishing step 2.
//!    After READY the selector never touches the context again: the waiter
//!    may return and its context vanish with its stack frame.
//! 4. after releasing the queue's lock, `Wake::wake()`: wakes the waiter.
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
//! # The pointer invariant
//!
//! An entry stays in its queue until a selector pops it or the waiter
//! removes it (after an abort, or from the other channels of a `select!`),
//! both under the queue's lock; and a waiter leaves (returns, unwinds, drops
//! its future) only after it saw READY or aborted and removed every entry
//! of its context. So a `CxRef` in a queue always points to a live context,
//! and whoever holds the queue's lock may use it.
//!
//! Unwinding: a fiber parked here when its runtime shuts down is unwound
//! from the park (see `fiber/current.rs`); [`wait_on`]'s guard then aborts
//! or, if the operation completed meanwhile, undoes it (gives a handed-over
//! lock back), before the waiter's frames (and its packet) go away.

use std::fmt;
use std::task::Waker;
use std::time::Instant;

use std::marker::PhantomPinned;
use std::pin::Pin;
use std::ptr::NonNull;

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

/// A wake-up a selector took from a context, delivered after it released
/// the queue's lock.
#[must_use = "the waiter sleeps until woken"]
pub(crate) enum Wake {
    #[cfg(not(loom))]
    Fiber(crate::fiber::Fiber),
    #[cfg(loom)]
    Thread(::loom::thread::Thread),
    Waker(Waker),
}

impl Wake {
    pub(crate) fn wake(self) {
        match self {
            #[cfg(not(loom))]
            Wake::Fiber(fiber) => fiber.unpark(),
            #[cfg(loom)]
            Wake::Thread(thread) => thread.unpark(),
            Wake::Waker(waker) => waker.wake(),
        }
    }
}

/// One blocking operation's rendezvous point; see the module doc. Queues
/// point to it, so it is pinned before it is registered (`pin!` on the
/// waiter's stack, or a pinned box).
pub(crate) struct Context {
    state: AtomicUsize,
    target: Target,
    _pinned: PhantomPinned,
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

/// A queue's pointer to a waiting context; valid by the module's pointer
/// invariant, used only under the lock of the queue that holds it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct CxRef(NonNull<Context>);

// SAFETY: a Context is Sync (atomics, a Sync target); the pointer is
// dereferenced only while the context lives (the pointer invariant).
unsafe impl Send for CxRef {}
// SAFETY: as above.
unsafe impl Sync for CxRef {}

impl CxRef {
    /// A pointer for a queue entry. The context is pinned: it stays where
    /// it is until dropped, and the waiter unregisters before dropping it.
    pub(crate) fn new(cx: Pin<&Context>) -> CxRef {
        CxRef(NonNull::from(cx.get_ref()))
    }

    fn cx(&self) -> &Context {
        // SAFETY: the pointer invariant (see the module doc): the caller
        // holds the lock of a queue that holds this entry, so the waiter
        // has not left.
        unsafe { self.0.as_ref() }
    }

    /// Whether this points to `cx`.
    pub(crate) fn is(&self, cx: &Context) -> bool {
        std::ptr::eq(self.0.as_ptr(), cx)
    }

    /// Selects the context for `oper`; false if it is taken or aborted.
    pub(crate) fn try_select(&self, oper: usize) -> bool {
        self.cx().try_select(oper)
    }

    /// See [`Context::is_waiting`].
    pub(crate) fn is_waiting(&self) -> bool {
        self.cx().is_waiting()
    }

    /// After a successful `try_select` and the operation's side effect:
    /// takes the wake-up, then publishes READY. The context may vanish as
    /// soon as this returns.
    pub(crate) fn complete(self) -> Wake {
        let cx = self.cx();
        let wake = match &cx.target {
            #[cfg(not(loom))]
            Target::Fiber(fiber) => Wake::Fiber(fiber.clone()),
            #[cfg(loom)]
            Target::Thread(thread) => Wake::Thread(thread.clone()),
            Target::Waker(waker) => Wake::Waker(waker.lock().clone()),
        };
        cx.set_ready();
        wake
    }
}

impl Context {
    fn new(target: Target) -> Context {
        Context {
            state: AtomicUsize::new(WAITING),
            target,
            _pinned: PhantomPinned,
        }
    }

    /// A context for the calling fiber or thread.
    pub(crate) fn for_current() -> Context {
        Context::new(park::current_target())
    }

    /// A context that wakes an async task.
    pub(crate) fn for_waker(waker: Waker) -> Context {
        Context::new(Target::Waker(Mutex::new(waker)))
    }

    /// Selects the context for `oper`; false if it is taken or aborted.
    /// The caller holds the lock of the queue the context's entry was in.
    fn try_select(&self, oper: usize) -> bool {
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
    fn set_ready(&self) {
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
    fn is_waiting(&self) -> bool {
        self.state.load(Ordering::Relaxed) == WAITING
    }

    /// For an async waiter: the waker to wake from now on. Returns the
    /// selected operation if it is already done (the caller then takes
    /// the result instead of waiting).
    pub(crate) fn update_waker(&self, new: &Waker) -> Option<usize> {
        if let Target::Waker(waker) = &self.target {
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
    fn unregister(&self, cx: &Context);

    /// The waiter is being unwound, but operation `oper` completed for it
    /// meanwhile: undo what it cannot keep (give a lock back).
    fn undo(&self, _oper: usize) {}
}

/// Waits for `cx`, already registered in `queue`: see [`Context::wait`].
/// Unregisters it unless selected, also when the wait unwinds.
pub(crate) fn wait_on<Q: Queue + ?Sized>(
    queue: &Q,
    cx: &Context,
    deadline: Option<Instant>,
) -> Outcome {
    /// Runs only if the wait unwinds (the fiber is being cancelled).
    struct Unwinding<'a, Q: Queue + ?Sized> {
        queue: &'a Q,
        cx: &'a Context,
    }
    impl<Q: Queue + ?Sized> Drop for Unwinding<'_, Q> {
        fn drop(&mut self) {
            match self.cx.abort_or_complete() {
                None => self.queue.unregister(self.cx),
                Some(oper) => self.queue.undo(oper),
            }
        }
    }
    let unwinding = Unwinding { queue, cx };
    let outcome = cx.wait(deadline);
    std::mem::forget(unwinding);
    if !matches!(outcome, Outcome::Selected(_)) {
        queue.unregister(cx);
    }
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
