//! How everything in `sync` waits: a [`Context`] per blocking operation.
//!
//! A waiter (a fiber, a plain thread, or an async task) that must block
//! makes a `Context` (on its own stack; an async receive keeps it in a
//! box), puts an entry pointing at it ([`CxRef`]) in the queue of what it
//! waits for (a channel's receivers, a mutex's waiters), and parks until
//! the context is *ready*. Whoever completes the operation for it (a
//! sender handing over a value, an unlocker handing over the lock):
//!
//! 1. under the lock of that queue, `try_select(oper)`: WAITING ->
//!    SELECTED(oper). Only one party ever wins it. A `select!` registers
//!    one context in several queues, and the first queue to select it is
//!    the one that fires: its contexts are *shared*, selected by a
//!    compare-exchange. A blocking channel operation registers in one
//!    queue only, and gives up under that queue's lock: its context is
//!    *exclusive*, and selecting it is a plain store (no atomic
//!    read-modify-write). The winner pops the entry;
//! 2. still under the lock, the operation's side effect on the waiter's
//!    behalf (writes the value into the waiter's packet, transfers the
//!    lock); `complete()` then turns the entry into a [`Wake`];
//! 3. after releasing the lock, [`Wake::wake`]: wakes the waiter, and sets
//!    the READY bit with Release, publishing step 2. For a fiber or a
//!    thread the wake comes first, so that it can use the waiter's own
//!    handle in the context (no reference count taken or dropped); for an
//!    async task READY comes first, under the lock of its waker slot (see
//!    [`Context::update_waker`]), and the waker is woken after. After READY
//!    the selector never touches the context again: the waiter may return
//!    and its context vanish with its stack frame.
//!
//! The waiter parks in a loop until it sees READY (Acquire). If it sees
//! SELECTED without READY (a wake arrived before READY, or a spurious one),
//! its selector is in step 2 or 3, which never park, and READY follows
//! in a moment: it spins instead of parking. Giving up (a timeout, or
//! runtime shutdown) is [`Queue::abort`]: WAITING -> ABORTED (by a
//! compare-exchange, or for an exclusive context under the queue's lock),
//! which fails if a party selected the context first; then the operation
//! happened after all, and the waiter waits for READY the same way.
//!
//! So a wake-up is never lost (the selector wakes the waiter after its
//! selection, and a waiter that sees the selection does not park again;
//! park keeps the token), an operation is never done twice for one wait
//! (one CAS wins), and a timeout racing a hand-off either keeps the value
//! or reports the timeout, never both and never neither. A late wake that
//! lands after the waiter moved on only costs it a spurious return from a
//! later park, which every park loop tolerates.
//!
//! Waking before READY relies on the scheduler's wake never running the
//! woken fiber before it returns (it queues it): the waiter would spin
//! against a selector it had suspended.
//!
//! # The pointer invariant
//!
//! An entry stays in its queue until a selector pops it or the waiter
//! removes it (after an abort, or from the other channels of a `select!`),
//! both under the queue's lock; and a waiter leaves (returns, unwinds, drops
//! its future) only after it saw READY or aborted and removed every entry
//! of its context. So a `CxRef` in a queue always points to a live context,
//! and whoever holds the queue's lock may use it; a selector that popped
//! one may use it until it sets READY. A fiber's context names its task
//! by a raw pointer: the task outlives the fiber's frames (its home
//! worker's registry holds it until the body ends), so it lives as long as
//! the context.
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
    /// A fiber: its task, uncounted (see the pointer invariant).
    #[cfg(not(loom))]
    Fiber(park::TaskPtr),
    /// A plain thread (a loom thread, in models).
    Thread(park::Thread),
    /// An async task; the lock lets a re-poll replace the waker, and
    /// orders that with READY (see [`Context::update_waker`]). Boxed, so
    /// that a fiber's context stays small (see [`Context`]).
    Waker(Box<Mutex<Waker>>),
}

/// The last step of a hand-off: a selected context whose side effect is
/// done, to be woken and made READY once the queue's lock is released.
#[must_use = "the waiter spins until woken"]
pub(crate) struct Wake(CxRef);

impl Wake {
    /// Wakes the waiter and publishes READY (see the module doc for the
    /// order). The context may vanish as soon as this returns.
    ///
    /// Always inlined, for its fiber arm only: a channel's hand-off to a
    /// waiting fiber then goes straight from the sender to the scheduler's
    /// wake, without a call of its own (callgrind: 6 instructions fewer
    /// per ping-pong round trip). Threads and async tasks take the
    /// out-of-line [`wake_slow`](Self::wake_slow).
    #[inline(always)]
    pub(crate) fn wake(self) {
        #[cfg(not(loom))]
        {
            let cx = self.0.cx();
            if let Target::Fiber(task) = &cx.target {
                task.wake(std::ptr::from_ref(cx).cast());
                cx.set_ready();
                return;
            }
        }
        self.wake_slow();
    }

    /// [`wake`](Self::wake) for a plain thread or an async task.
    #[inline(never)]
    fn wake_slow(self) {
        let cx = self.0.cx();
        match &cx.target {
            #[cfg(not(loom))]
            Target::Fiber(_) => unreachable!("a fiber is woken inline"),
            Target::Thread(thread) => {
                thread.unpark();
                cx.set_ready();
            }
            Target::Waker(slot) => {
                #[cfg(loom)]
                if crate::loom::mutation::planted("selector_takes_waker_before_ready") {
                    // The planted bug: the waker is taken before READY,
                    // so a re-poll in between replaces it unseen.
                    let waker = slot.lock().clone();
                    cx.set_ready();
                    return waker.wake();
                }
                let waker = {
                    let slot = slot.lock();
                    cx.set_ready();
                    slot.clone()
                };
                waker.wake();
            }
        }
    }
}

/// One blocking operation's rendezvous point; see the module doc. Queues
/// point to it, so it is pinned before it is registered (`pin!` on the
/// waiter's stack, or a pinned box).
///
/// Four words: a selector reads and writes it on the waiter's stack, a
/// cold cache line when many fibers wait, and a channel keeps it in one
/// line with the waiter's value slot.
#[repr(C)]
pub(crate) struct Context {
    state: AtomicUsize,
    /// Registered in one queue only, whose lock guards every change of
    /// the state up to SELECTED or ABORTED: selectors select it with a
    /// plain store, and the waiter aborts it under that lock
    /// ([`Queue::abort`]). Otherwise (a `select!`, an async receive) both
    /// sides use compare-exchanges.
    exclusive: bool,
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

/// Checks the pointer invariant's last clause: a context goes only when no
/// selector may still use it (it is READY, aborted, or never selected).
#[cfg(debug_assertions)]
impl Drop for Context {
    fn drop(&mut self) {
        let state = self.state.load(Ordering::Acquire);
        assert!(
            state == WAITING || state == ABORTED || state & READY != 0,
            "weft::sync: a wait context vanished while selected, before READY"
        );
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
/// invariant, used only under the lock of the queue that holds it (or by
/// the selector that popped it, until READY).
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
    #[inline]
    pub(crate) fn new(cx: Pin<&Context>) -> CxRef {
        CxRef(NonNull::from(cx.get_ref()))
    }

    #[inline]
    fn cx(&self) -> &Context {
        // SAFETY: the pointer invariant (see the module doc): the caller
        // holds the lock of a queue that holds this entry, or popped it
        // after selecting it and has not set READY, so the waiter has not
        // left.
        unsafe { self.0.as_ref() }
    }

    /// Whether this points to `cx`.
    #[inline]
    pub(crate) fn is(&self, cx: &Context) -> bool {
        std::ptr::eq(self.0.as_ptr(), cx)
    }

    /// Selects the context for `oper`; false if it is taken or aborted.
    #[inline]
    pub(crate) fn try_select(&self, oper: usize) -> bool {
        self.cx().try_select(oper)
    }

    /// See [`Context::is_waiting`].
    pub(crate) fn is_waiting(&self) -> bool {
        self.cx().is_waiting()
    }

    /// After a successful `try_select` and the operation's side effect:
    /// the wake-up, for after the queue's lock is released. Until it is
    /// woken, the waiter does not leave.
    #[inline]
    pub(crate) fn complete(self) -> Wake {
        debug_assert!(
            self.cx().state.load(Ordering::Relaxed) >= 1 << SHIFT,
            "complete on a context that is not selected (never, or aborted after)"
        );
        Wake(self)
    }
}

impl Context {
    fn new(target: Target, exclusive: bool) -> Context {
        Context {
            state: AtomicUsize::new(WAITING),
            exclusive,
            target,
            _pinned: PhantomPinned,
        }
    }

    /// A context for the calling fiber or thread, that may be registered
    /// in several queues (a `select!`).
    #[inline]
    pub(crate) fn for_current() -> Context {
        Context::new(park::current_target(), false)
    }

    /// A context for the calling fiber or thread, to be registered in one
    /// queue only, whose [`Queue::abort`] takes the queue's lock.
    #[inline]
    pub(crate) fn for_current_exclusive() -> Context {
        Context::new(park::current_target(), true)
    }

    /// A context that wakes an async task.
    pub(crate) fn for_waker(waker: Waker) -> Context {
        Context::new(Target::Waker(Box::new(Mutex::new(waker))), false)
    }

    /// Selects the context for `oper`; false if it is taken or aborted.
    /// The caller holds the lock of the queue the context's entry was in.
    #[inline]
    fn try_select(&self, oper: usize) -> bool {
        if self.exclusive {
            // Only holders of the queue's lock, which we are, change the
            // state before SELECTED: there is no race to lose. The waiter
            // registered under the lock, so its writes are visible.
            if self.state.load(Ordering::Relaxed) != WAITING {
                return false;
            }
            self.state.store((oper + 1) << SHIFT, Ordering::Relaxed);
            return true;
        }
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
    #[inline]
    fn set_ready(&self) {
        let selected = self.state.load(Ordering::Relaxed);
        debug_assert!(
            selected >= 1 << SHIFT,
            "set_ready on a context that is not selected (never, or aborted after)"
        );
        self.state.store(selected | READY, Ordering::Release);
    }

    /// An exclusive context's waiter gives up, under the lock of its
    /// queue; false if it was selected first.
    pub(crate) fn abort_locked(&self) -> bool {
        debug_assert!(self.exclusive, "abort_locked on a shared context");
        if self.state.load(Ordering::Relaxed) != WAITING {
            return false;
        }
        self.state.store(ABORTED, Ordering::Relaxed);
        true
    }

    /// The waiter of a shared context gives up; false if it was selected
    /// first.
    pub(crate) fn try_abort(&self) -> bool {
        debug_assert!(!self.exclusive, "try_abort on an exclusive context");
        self.state
            .compare_exchange(WAITING, ABORTED, Ordering::Acquire, Ordering::Acquire)
            .is_ok()
    }

    /// The operation that selected the context, once it is done.
    #[inline]
    pub(crate) fn selected(&self) -> Option<usize> {
        Self::done(self.state.load(Ordering::Acquire))
    }

    /// The operation that selected a context whose state is `state`, if
    /// it is done (READY). Read with Acquire: pairs with `set_ready`.
    #[inline]
    fn done(state: usize) -> Option<usize> {
        #[cfg(loom)]
        if crate::loom::mutation::planted("waiter_trusts_selected_before_ready") {
            // The planted bug: take SELECTED for done, without READY.
            return (state >> SHIFT).checked_sub(1);
        }
        (state & READY != 0).then(|| (state >> SHIFT) - 1)
    }

    /// Whether nobody has selected or aborted the context (a hint: it may
    /// change as soon as it is read, unless the reader holds the lock of
    /// every queue the context is in).
    #[inline]
    fn is_waiting(&self) -> bool {
        self.state.load(Ordering::Relaxed) == WAITING
    }

    /// For an async waiter: the waker to wake from now on. Returns the
    /// selected operation if it is already done (the caller then takes
    /// the result instead of waiting).
    pub(crate) fn update_waker(&self, new: &Waker) -> Option<usize> {
        let Target::Waker(slot) = &self.target else {
            return self.selected();
        };
        let mut waker = slot.lock();
        if !waker.will_wake(new) {
            waker.clone_from(new);
        }
        // Read under the slot's lock, which the selector holds while it
        // sets READY and takes the waker: either READY shows here, or the
        // selector takes the waker stored above. (Read after the lock is
        // released, a selector could take the old waker and set READY
        // just after the read: a lost wake-up.)
        self.selected()
    }

    /// Aborts a shared context, or if a selector got there first, waits
    /// for it to finish (see [`wait_ready`](Self::wait_ready)). Returns
    /// the selected operation, or `None` if aborted.
    pub(crate) fn abort_or_complete(&self) -> Option<usize> {
        if self.try_abort() || self.state.load(Ordering::Acquire) == ABORTED {
            return None;
        }
        Some(self.wait_ready())
    }

    /// Waits for the selector of a selected context to finish: it never
    /// parks meanwhile, so this is short. Returns the selected operation.
    pub(crate) fn wait_ready(&self) -> usize {
        loop {
            if let Some(oper) = self.selected() {
                if let Target::Waker(slot) = &self.target {
                    // The selector sets READY under the slot's lock and
                    // releases it after: wait for that, so the context can
                    // go (an async waiter drops it next).
                    drop(slot.lock());
                }
                return oper;
            }
            park::spin();
        }
    }

    /// Parks until selected, until `deadline`, or until the runtime shuts
    /// down (see the module doc). `abort` gives up the wait: it aborts the
    /// context, or returns false if a selector got there first.
    #[inline(always)] // see `wait_on`
    pub(crate) fn wait(&self, deadline: Option<Instant>, abort: impl Fn() -> bool) -> Outcome {
        let mut deadline = deadline;
        // A cancelled fiber's parks return at once: checked after each
        // return from a park (the first park, if cancelled, returns at
        // once), not before, to keep it off the common path.
        let mut parked = false;
        loop {
            // One read for both tests: this runs twice per blocking
            // operation, before the park and after it.
            let state = self.state.load(Ordering::Acquire);
            if let Some(oper) = Self::done(state) {
                return Outcome::Selected(oper);
            }
            if state != WAITING {
                // Selected, not READY yet: the selector is finishing (its
                // wake may have come first), and never parks meanwhile.
                // Aborted: only by us, and we returned then.
                park::spin();
                continue;
            }
            if parked && park::is_cancelled() {
                // Parks return at once now: waiting on would spin.
                return match abort() {
                    true => Outcome::Cancelled,
                    false => Outcome::Selected(self.wait_ready()),
                };
            }
            parked = true;
            match deadline {
                None => park::park(),
                Some(at) => {
                    let now = Instant::now();
                    if now >= at {
                        if abort() {
                            return Outcome::TimedOut;
                        }
                        // Selected meanwhile: READY follows.
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

    /// Gives up the wait of `cx`, registered here: aborts it and removes
    /// its entries, or returns false if a selector got there first. A
    /// queue that registers exclusive contexts must override this to abort
    /// under its lock ([`Context::abort_locked`]).
    fn abort(&self, cx: &Context) -> bool {
        let aborted = cx.try_abort();
        if aborted {
            self.unregister(cx);
        }
        aborted
    }

    /// The waiter is being unwound, but operation `oper` completed for it
    /// meanwhile: undo what it cannot keep (give a lock back).
    fn undo(&self, _oper: usize) {}
}

/// Waits for `cx`, already registered in `queue`: see [`Context::wait`].
/// Unregisters it unless selected, also when the wait unwinds.
// Always inlined: on the blocking path every frame between the channel
// and the park is a cold cache line to read back on resume when many
// fibers wait (a ring of 100,000 fibers: about 30 ns a frame).
#[inline(always)]
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
            if !self.queue.abort(self.cx) {
                self.queue.undo(self.cx.wait_ready());
            }
        }
    }
    let unwinding = Unwinding { queue, cx };
    let outcome = cx.wait(deadline, || queue.abort(cx));
    std::mem::forget(unwinding);
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

pub(crate) mod park;
