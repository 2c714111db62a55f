//! [`Mutex`]: a lock whose waiters park.
//!
//! # Protocol
//!
//! One atomic word, LOCKED and QUEUED, and a FIFO of waiting contexts
//! behind a short internal lock (`queue`).
//!
//! - Lock, fast path: compare-exchange 0 -> LOCKED.
//! - Lock, slow path, under `queue`: if LOCKED is clear, take it;
//!   otherwise set QUEUED (a compare-exchange from the word just read, so
//!   an unlock in between is seen), enqueue the context, release `queue`
//!   and park until selected.
//! - Unlock, fast path: compare-exchange LOCKED -> 0; it fails when QUEUED
//!   is set.
//! - Unlock, slow path, under `queue`: pop waiters until one can be
//!   selected; *hand the lock to it* (the word stays LOCKED; QUEUED is
//!   cleared if the queue is now empty), mark it READY, and unpark it after
//!   releasing `queue`. With no live waiter left, the word goes to 0.
//!
//! QUEUED is set and cleared only under `queue`, and is set exactly while
//! the queue is non-empty, so an unlock that sees it clear has nobody to
//! wake, and one that sees it set finds the waiter under `queue`. A waiter
//! that gives up (runtime shutdown) aborts its context and removes itself
//! under `queue`; if an unlock selected it first, it owns the lock and
//! unlocks it again.
//!
//! Hand-off gives the lock to the waiters in arrival order: a released
//! lock cannot be taken by a newcomer while others wait, so no waiter
//! starves. The cost is that under contention the lock passes at the
//! speed of a wake-up (the next owner must be scheduled), not of a
//! compare-exchange, as in tokio's and Go's starvation mode.

use std::cell::UnsafeCell;
use std::collections::VecDeque;
use std::fmt;
use std::ops::{Deref, DerefMut};

use super::waiter::{self, Context, CxRef, Outcome, Queue};
use crate::loom::sync::Mutex as RawMutex;
use crate::loom::sync::atomic::{AtomicUsize, Ordering};

const LOCKED: usize = 1;
const QUEUED: usize = 2;

/// A mutual-exclusion lock for fibers and threads.
///
/// [`lock`](Self::lock) parks the calling fiber while another holds the
/// lock (a plain thread blocks), and the guard may be held across parks:
/// a channel receive, a `sleep`, a join. Waiters get the lock in the order
/// they asked for it (hand-off; see the [module docs](crate::sync)).
///
/// No poisoning: if a holder panics, its guard is dropped during the
/// unwinding and the lock is released; the next holder sees whatever the
/// panicking one left, as with tokio's and parking_lot's mutexes.
///
/// ```
/// use std::sync::Arc;
/// use weft::sync::Mutex;
///
/// let count = weft::run(|| {
///     let count = Arc::new(Mutex::new(0));
///     let fibers: Vec<_> = (0..10)
///         .map(|_| {
///             let count = count.clone();
///             weft::spawn(move || {
///                 let mut n = count.lock();
///                 weft::yield_now(); // held across a switch: others wait
///                 *n += 1;
///             })
///         })
///         .collect();
///     fibers.into_iter().for_each(|f| f.join().unwrap());
///     let n = *count.lock();
///     n
/// });
/// assert_eq!(count, 10);
/// ```
pub struct Mutex<T: ?Sized> {
    state: AtomicUsize,
    queue: RawMutex<VecDeque<CxRef>>,
    value: UnsafeCell<T>,
}

// SAFETY: the lock hands `&mut T` to one holder at a time, possibly on
// another thread than the one that created it: T: Send suffices, as for
// std's Mutex.
unsafe impl<T: ?Sized + Send> Send for Mutex<T> {}
// SAFETY: as above.
unsafe impl<T: ?Sized + Send> Sync for Mutex<T> {}

/// Proof of holding a [`Mutex`]; unlocks when dropped. It may be kept
/// across parks, and even sent to another fiber or thread (the lock does
/// not care which thread unlocks it).
///
/// ```
/// let m = weft::sync::Mutex::new(vec![1]);
/// m.lock().push(2);
/// assert_eq!(*m.lock(), [1, 2]);
/// ```
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct MutexGuard<'a, T: ?Sized> {
    mutex: &'a Mutex<T>,
}

// SAFETY: a guard gives `&T` to whoever holds it: sharing it needs T: Sync.
unsafe impl<T: ?Sized + Sync> Sync for MutexGuard<'_, T> {}

impl<T> Mutex<T> {
    /// A new, unlocked mutex.
    ///
    /// ```
    /// let m = weft::sync::Mutex::new(5);
    /// assert_eq!(*m.lock(), 5);
    /// ```
    pub fn new(value: T) -> Mutex<T> {
        Mutex {
            state: AtomicUsize::new(0),
            queue: RawMutex::new(VecDeque::new()),
            value: UnsafeCell::new(value),
        }
    }

    /// The value, consuming the mutex.
    ///
    /// ```
    /// assert_eq!(weft::sync::Mutex::new(3).into_inner(), 3);
    /// ```
    pub fn into_inner(self) -> T {
        self.value.into_inner()
    }
}

impl<T: ?Sized> Mutex<T> {
    /// Takes the lock, parking the fiber (blocking a thread) while another
    /// holds it.
    ///
    /// # Panics
    ///
    /// If it would have to wait while the runtime is shutting down and
    /// this fiber is being unwound (a destructor run by the shutdown): the
    /// wait could never end. In a destructor that may run then, use
    /// [`try_lock`](Self::try_lock).
    ///
    /// ```
    /// let m = weft::sync::Mutex::new(1);
    /// *m.lock() += 1;
    /// assert_eq!(*m.lock(), 2);
    /// ```
    pub fn lock(&self) -> MutexGuard<'_, T> {
        if self
            .state
            .compare_exchange(0, LOCKED, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            self.lock_slow();
        }
        MutexGuard { mutex: self }
    }

    /// Takes the lock if nobody holds it (or waits for it).
    ///
    /// ```
    /// let m = weft::sync::Mutex::new(());
    /// let held = m.lock();
    /// assert!(m.try_lock().is_none());
    /// drop(held);
    /// assert!(m.try_lock().is_some());
    /// ```
    pub fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
        self.state
            .compare_exchange(0, LOCKED, Ordering::Acquire, Ordering::Relaxed)
            .ok()
            .map(|_| MutexGuard { mutex: self })
    }

    /// Whether someone holds the lock now (a hint).
    ///
    /// ```
    /// let m = weft::sync::Mutex::new(());
    /// let _g = m.lock();
    /// assert!(m.is_locked());
    /// ```
    pub fn is_locked(&self) -> bool {
        self.state.load(Ordering::Relaxed) & LOCKED != 0
    }

    /// The value, through a unique reference: no locking needed.
    ///
    /// ```
    /// let mut m = weft::sync::Mutex::new(1);
    /// *m.get_mut() = 2;
    /// assert_eq!(*m.lock(), 2);
    /// ```
    pub fn get_mut(&mut self) -> &mut T {
        self.value.get_mut()
    }

    #[cold]
    fn lock_slow(&self) {
        let cx = std::pin::pin!(Context::for_current());
        {
            let mut queue = self.queue.lock();
            let mut state = self.state.load(Ordering::Relaxed);
            loop {
                if state & LOCKED == 0 {
                    match self.state.compare_exchange(
                        state,
                        state | LOCKED,
                        Ordering::Acquire,
                        Ordering::Relaxed,
                    ) {
                        Ok(_) => return,
                        Err(actual) => state = actual,
                    }
                } else {
                    match self.state.compare_exchange(
                        state,
                        state | QUEUED,
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    ) {
                        Ok(_) => break,
                        Err(actual) => state = actual,
                    }
                }
            }
            queue.push_back(CxRef::new(cx.as_ref()));
        }
        match waiter::wait_on(self, &cx, None) {
            // Handed over: the unlocker's Release (READY) publishes what it
            // wrote under the lock; we saw READY with Acquire.
            Outcome::Selected(_) => {}
            Outcome::TimedOut | Outcome::Cancelled => waiter::cancelled_panic("Mutex::lock"),
        }
    }

    /// Releases the lock, handing it to the first waiter if there is one.
    fn unlock(&self) {
        if self
            .state
            .compare_exchange(LOCKED, 0, Ordering::Release, Ordering::Relaxed)
            .is_err()
        {
            self.unlock_slow();
        }
    }

    #[cold]
    fn unlock_slow(&self) {
        let mut queue = self.queue.lock();
        #[cfg(loom)]
        if crate::loom::mutation::planted("mutex_unlock_forgets_waiters") {
            // The planted bug: release as if nobody waited.
            self.state.store(0, Ordering::Release);
            return;
        }
        while let Some(cx) = queue.pop_front() {
            if !cx.try_select(0) {
                continue;
            }
            if queue.is_empty() {
                self.state.fetch_and(!QUEUED, Ordering::Relaxed);
            }
            #[cfg(loom)]
            if crate::loom::mutation::planted("mutex_handoff_also_releases") {
                // The planted bug: hand the lock over *and* release it.
                self.state.fetch_and(!LOCKED, Ordering::Release);
            }
            let wake = cx.complete();
            drop(queue);
            wake.wake();
            return;
        }
        self.state.store(0, Ordering::Release);
    }
}

impl<T: ?Sized> Queue for Mutex<T> {
    fn unregister(&self, cx: &Context) {
        let mut queue = self.queue.lock();
        queue.retain(|c| !c.is(cx));
        if queue.is_empty() {
            self.state.fetch_and(!QUEUED, Ordering::Relaxed);
        }
    }

    fn undo(&self, _oper: usize) {
        // The lock was handed to a waiter that is being unwound: pass it on.
        self.unlock();
    }
}

impl<T: ?Sized> Deref for MutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard proves the lock is held.
        unsafe { &*self.mutex.value.get() }
    }
}

impl<T: ?Sized> DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the guard proves the lock is held, and `&mut self` that
        // this is the only use of it.
        unsafe { &mut *self.mutex.value.get() }
    }
}

impl<T: ?Sized> Drop for MutexGuard<'_, T> {
    fn drop(&mut self) {
        self.mutex.unlock();
    }
}

impl<'a, T: ?Sized> MutexGuard<'a, T> {
    /// Releases the lock without dropping a guard (for `Condvar`), which
    /// re-takes it with [`Mutex::lock`].
    pub(crate) fn unlocked(this: MutexGuard<'a, T>) -> &'a Mutex<T> {
        let mutex = this.mutex;
        std::mem::forget(this);
        mutex.unlock();
        mutex
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for Mutex<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Mutex");
        match self.try_lock() {
            Some(guard) => d.field("value", &&*guard),
            None => d.field("value", &format_args!("<locked>")),
        };
        d.finish()
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for MutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: ?Sized + fmt::Display> fmt::Display for MutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&**self, f)
    }
}

impl<T: Default> Default for Mutex<T> {
    fn default() -> Mutex<T> {
        Mutex::new(T::default())
    }
}

impl<T> From<T> for Mutex<T> {
    fn from(value: T) -> Mutex<T> {
        Mutex::new(value)
    }
}
