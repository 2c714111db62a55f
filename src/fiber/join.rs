//! Joining a fiber: the completion handshake and [`JoinHandle`].
//!
//! The handshake ([`JoinState`]) is one atomic word: empty, the address of
//! the joiner's boxed waiter, or COMPLETE.
//!
//! - the finisher writes the result, then swaps in COMPLETE; if it took a
//!   waiter out of the word, it wakes it;
//! - a joiner that does not see COMPLETE boxes its waiter and puts the box
//!   in the empty word with a compare-exchange; if COMPLETE was already
//!   there it does not wait, otherwise it parks until it sees COMPLETE.
//!   Registering again (an async joiner polled with a new waker) takes the
//!   box back out the same way, refills it, and puts it back.
//!
//! Both sides read-modify-write the same word, so one of them sees the
//! other's: either the finisher finds the waiter, or the joiner finds
//! COMPLETE. No wake-up is lost; a wake may arrive after the joiner
//! stopped waiting, which costs it one spurious return from a later park
//! (allowed by park's contract). Dropping the handle just drops a
//! reference: the result goes with the task's memory.
//!
//! The waiter is boxed, not kept beside the word, so that the handshake
//! costs every task one word: most joins find the fiber finished and never
//! wait, and a spawned task with a small closure then fits in a 120-byte
//! heap block, a size glibc's malloc serves from its fast bins.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::ptr;
use std::task::{Context, Poll, Waker};

use super::Fiber;
use super::task::{Body, TaskRef};
use super::task_ref::{TaskArc, erase_task};
use crate::error::JoinError;
use crate::loom::sync::atomic::{AtomicUsize, Ordering};

/// The word before anything happened: no waiter, no result.
const EMPTY: usize = 0;
/// The word once the result is published. No box lives at this address
/// (not even a zero-sized one: those sit at their alignment).
const COMPLETE: usize = usize::MAX;

/// The completion handshake between a fiber and its joiner.
pub(crate) struct JoinState<W = Waiter> {
    /// [`EMPTY`], [`COMPLETE`], or the exposed address of the joiner's
    /// `Box<W>`, which the word owns while it holds it.
    state: AtomicUsize,
    _waiter: PhantomData<Box<W>>,
}

// SAFETY: the waiter is only ever moved between threads (boxed by the
// joiner, taken out of the word by the finisher, the joiner, or the
// state's drop), never shared: no two threads hold a reference to it, as
// with a `Mutex<W>`. So `W: Send` is enough for both.
unsafe impl<W: Send> Send for JoinState<W> {}
// SAFETY: as above.
unsafe impl<W: Send> Sync for JoinState<W> {}

impl<W> fmt::Debug for JoinState<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state.load(Ordering::Acquire) {
            EMPTY => "empty",
            COMPLETE => "complete",
            _ => "waiting",
        };
        f.debug_struct("JoinState").field("state", &state).finish()
    }
}

/// Something a finisher can wake.
pub(crate) trait Wakeable {
    fn wake(self);
}

/// Who waits for a fiber: another fiber (or a thread), parked in
/// [`JoinHandle::join`], or an async task that awaits the handle.
#[derive(Debug)]
pub(crate) enum Waiter {
    Fiber(Fiber),
    Waker(Waker),
}

impl Wakeable for Waiter {
    fn wake(self) {
        match self {
            Waiter::Fiber(fiber) => fiber.unpark(),
            Waiter::Waker(waker) => waker.wake(),
        }
    }
}

impl<W> JoinState<W> {
    pub(crate) fn new() -> JoinState<W> {
        JoinState {
            state: AtomicUsize::new(EMPTY),
            _waiter: PhantomData,
        }
    }

    /// Whether the result has been published. Acquire: after `true`, the
    /// result written before [`complete`](Self::complete) is visible.
    #[inline]
    pub(crate) fn is_complete(&self) -> bool {
        self.state.load(Ordering::Acquire) == COMPLETE
    }

    /// Boxes `waiter` and gives the box up as an address for the word.
    fn into_word(waiter: Box<W>) -> usize {
        Box::into_raw(waiter).expose_provenance()
    }

    /// Takes back the box whose address was in the word.
    ///
    /// # Safety
    ///
    /// `word` came from [`into_word`](Self::into_word), and the caller has
    /// just taken it out of the state (or holds it, never put in), so no
    /// one else can take it.
    unsafe fn from_word(word: usize) -> Box<W> {
        // SAFETY: an address `into_word` exposed, of a box that is ours
        // alone (the caller's contract).
        unsafe { Box::from_raw(ptr::with_exposed_provenance_mut::<W>(word)) }
    }
}

impl<W: Wakeable> JoinState<W> {
    /// The finisher's side, after writing the result; called once.
    #[inline]
    pub(crate) fn complete(&self) {
        // Release: publishes the result. Acquire: sees the waiter a joiner
        // boxed before it put the box in the word.
        let prev = self.state.swap(COMPLETE, Ordering::AcqRel);
        debug_assert_ne!(prev, COMPLETE, "a fiber completes once");
        if prev != EMPTY {
            // SAFETY: a word neither EMPTY nor COMPLETE holds a box from
            // `into_word`, and our swap took it out: it is ours.
            let waiter = unsafe { Self::from_word(prev) };
            (*waiter).wake();
        }
    }

    /// The joiner's side: registers `waiter` unless the result is already
    /// there. Returns true if the joiner must wait (park, then check
    /// `is_complete` again). Registering again replaces the waiter (an
    /// async joiner polled with a new waker); the finisher wakes whichever
    /// is there when it completes. Only the task's one handle calls this,
    /// never from two threads at once.
    pub(crate) fn register(&self, waiter: W) -> bool {
        let current = self.state.load(Ordering::Acquire);
        if current == COMPLETE {
            return false;
        }
        let boxed = if current == EMPTY {
            Box::new(waiter)
        } else {
            // Our own earlier waiter: take it back to replace it. Release:
            // orders nothing; Acquire on failure: sees the result.
            match self
                .state
                .compare_exchange(current, EMPTY, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => {
                    // SAFETY: `current` was our box, and our exchange took
                    // it out of the word.
                    let mut boxed = unsafe { Self::from_word(current) };
                    *boxed = waiter;
                    boxed
                }
                // Only the finisher changes the word under us, and only to
                // COMPLETE (it took the old waiter, and will wake it).
                Err(_) => return false,
            }
        };
        let word = Self::into_word(boxed);
        // Release: publishes the box to the finisher. Acquire on failure:
        // sees the result.
        match self
            .state
            .compare_exchange(EMPTY, word, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => true,
            Err(_) => {
                // COMPLETE came first; the box never left us.
                // SAFETY: `word` is the box we made, never put in the word.
                drop(unsafe { Self::from_word(word) });
                false
            }
        }
    }
}

impl<W> Drop for JoinState<W> {
    /// Drops a waiter still registered (an async joiner dropped before
    /// the fiber finished), with the task's memory.
    #[inline]
    fn drop(&mut self) {
        let word = self.state.load(Ordering::Acquire);
        if word != EMPTY && word != COMPLETE {
            // SAFETY: the word holds a box from `into_word`, and `&mut
            // self` means nobody else can take it.
            drop(unsafe { Self::from_word(word) });
        }
    }
}

/// A fiber's result slot and its handshake, seen from the handle.
pub(crate) trait JoinTarget<T>: Body {
    fn join_state(&self) -> &JoinState;

    /// Moves the result out. A second call panics with [`TAKEN_TWICE`]
    /// (a handle awaited to completion, then polled or joined).
    ///
    /// # Safety
    ///
    /// `join_state().is_complete()` returned true, and the caller is the
    /// task's handle, the only party that takes.
    unsafe fn take_result(&self) -> Result<T, JoinError>;

    /// Moves the result out if it is there: `take_result` after
    /// `join_state().is_complete()`, in one dynamic call instead of two
    /// (joining a fiber that has finished already is the common case).
    ///
    /// # Safety
    ///
    /// The caller is the task's handle, the only party that takes.
    unsafe fn try_take_result(&self) -> Option<Result<T, JoinError>> {
        if !self.join_state().is_complete() {
            return None;
        }
        // SAFETY: complete, and the caller is the handle.
        Some(unsafe { self.take_result() })
    }
}

/// An owned permission to wait for a fiber and take its result, like
/// `std::thread::JoinHandle`. Dropping it detaches the fiber: it runs on,
/// and its result is dropped when it finishes.
///
/// Joining twice does not compile: `join` takes the handle.
///
/// A `JoinHandle` is also a `Future` of the same result, so async code can
/// wait for a fiber (after it completes, polling again panics):
///
/// ```
/// let n = weft::run(|| {
///     let fiber = weft::spawn(|| 6 * 7);
///     weft::block_on(async move { fiber.await.unwrap() })
/// });
/// assert_eq!(n, 42);
/// ```
///
/// ```compile_fail
/// weft::run(|| {
///     let h = weft::spawn(|| 1);
///     h.join().unwrap();
///     h.join().unwrap();
/// });
/// ```
///
/// A handle awaited to completion has given its result away: polling or
/// joining it again panics, as a `Future` polled after `Ready` may.
//
// One fat pointer, with no flag beside it for "taken" (the result's slot
// says so): 16 bytes, which a spawn returns in two registers, where a
// 24-byte handle went through memory (callgrind: 15 instructions fewer a
// spawn and join), and a `Vec` of a million handles is 8 MB smaller.
pub struct JoinHandle<T> {
    task: TaskArc<dyn JoinTarget<T>>,
}

/// The panic of a handle used after its result was taken.
pub(crate) const TAKEN_TWICE: &str =
    "weft::JoinHandle used after it was awaited to completion: its result is gone";

impl<T: 'static> JoinHandle<T> {
    pub(crate) fn new(task: TaskArc<dyn JoinTarget<T>>) -> JoinHandle<T> {
        JoinHandle { task }
    }

    /// Waits for the fiber to finish and returns its result: the value its
    /// closure returned, or why there is none (it panicked, with the
    /// payload, or the runtime shut down first).
    ///
    /// Called from a fiber, this parks the fiber, not the worker; from a
    /// plain thread, it blocks the thread.
    ///
    /// A fiber that is being cancelled (its runtime is shutting down and
    /// unwinding it: a destructor joins, say) cannot wait, since its
    /// parks return at once; if the fiber it joins has not finished, the
    /// join returns a [`JoinError::is_cancelled`] error instead.
    ///
    /// ```
    /// let n = weft::run(|| weft::spawn(|| 6 * 7).join().unwrap());
    /// assert_eq!(n, 42);
    /// ```
    pub fn join(self) -> Result<T, JoinError> {
        // SAFETY: we are the handle.
        if let Some(result) = unsafe { self.task.body.try_take_result() } {
            return result;
        }
        let join = self.task.body.join_state();
        if join.register(Waiter::Fiber(super::current())) {
            while !join.is_complete() {
                if super::current::is_cancelled() {
                    // Waiting would spin: park returns at once, and the
                    // fiber joined may only end when this same shutdown
                    // unwinds it, after us, on this very worker.
                    return Err(JoinError::cancelled());
                }
                super::park();
            }
        }
        // SAFETY: complete, and we are the handle.
        unsafe { self.task.body.take_result() }
    }

    /// Whether the fiber has finished (its result is ready to take).
    pub fn is_finished(&self) -> bool {
        self.task.body.join_state().is_complete()
    }

    /// A handle to the fiber, to unpark it or read its name.
    pub fn fiber(&self) -> Fiber {
        let task: TaskRef = erase_task!(self.task.clone() => dyn Body);
        Fiber::from_task(task)
    }
}

#[cfg(all(test, not(loom)))]
impl<T> JoinHandle<T> {
    /// How many references to the task exist: tests check that parks and
    /// wake-ups leave none behind.
    pub(crate) fn task_count(&self) -> usize {
        TaskArc::count(&self.task)
    }
}

impl<T: 'static> Future for JoinHandle<T> {
    type Output = Result<T, JoinError>;

    /// Ready with the fiber's result once it has finished; until then the
    /// task's waker is registered and woken by the fiber's completion.
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let join = this.task.body.join_state();
        if !join.is_complete() && join.register(Waiter::Waker(cx.waker().clone())) {
            return Poll::Pending;
        }
        // SAFETY: complete, and we are the handle.
        Poll::Ready(unsafe { this.task.body.take_result() })
    }
}

impl<T: 'static> fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinHandle")
            .field("fiber", &self.task.header)
            .field("finished", &self.is_finished())
            .finish()
    }
}
