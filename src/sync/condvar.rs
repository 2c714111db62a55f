//! [`Condvar`]: wait for a condition under a [`Mutex`].

use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

use super::mutex::{Mutex, MutexGuard};
use super::waiter::{self, Context, CxRef, Outcome, Queue, Wake};
use crate::loom::sync::Mutex as RawMutex;

/// A condition variable for weft's [`Mutex`]: [`wait`](Self::wait) releases
/// the lock and parks the fiber (blocks a thread) until notified, then
/// takes the lock again. As with std's, a wait may return without a
/// notification, so wait in a loop (or use [`wait_while`](Self::wait_while)).
///
/// Waiters are notified in the order they started waiting.
///
/// ```
/// use std::sync::Arc;
/// use weft::sync::{Condvar, Mutex};
///
/// weft::run(|| {
///     let pair = Arc::new((Mutex::new(false), Condvar::new()));
///     let setter = {
///         let pair = pair.clone();
///         weft::spawn(move || {
///             *pair.0.lock() = true;
///             pair.1.notify_one();
///         })
///     };
///     let (lock, cvar) = &*pair;
///     let ready = cvar.wait_while(lock.lock(), |ready| !*ready);
///     assert!(*ready);
///     drop(ready);
///     setter.join().unwrap();
/// });
/// ```
#[derive(Default)]
pub struct Condvar {
    waiters: RawMutex<VecDeque<CxRef>>,
}

/// Whether a timed wait timed out.
///
/// ```
/// use std::time::Duration;
/// let m = weft::sync::Mutex::new(());
/// let cv = weft::sync::Condvar::new();
/// let (_guard, res) = cv.wait_timeout(m.lock(), Duration::from_millis(1));
/// assert!(res.timed_out());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitTimeoutResult(bool);

impl WaitTimeoutResult {
    /// Whether the wait ended because the timeout passed.
    ///
    /// ```
    /// use std::time::Duration;
    /// let m = weft::sync::Mutex::new(());
    /// let cv = weft::sync::Condvar::new();
    /// assert!(cv.wait_timeout(m.lock(), Duration::ZERO).1.timed_out());
    /// ```
    pub fn timed_out(&self) -> bool {
        self.0
    }
}

impl Condvar {
    /// A condition variable nobody waits on.
    ///
    /// ```
    /// let cv = weft::sync::Condvar::new();
    /// cv.notify_all(); // nobody to wake: nothing happens
    /// ```
    pub fn new() -> Condvar {
        Condvar {
            waiters: RawMutex::new(VecDeque::new()),
        }
    }

    /// Releases `guard`'s lock, waits for a notification, and takes the
    /// lock again.
    ///
    /// # Panics
    ///
    /// If called while the runtime is shutting down and this fiber is
    /// being unwound: it would never be woken.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use weft::sync::{Condvar, Mutex};
    ///
    /// weft::run(|| {
    ///     let state = Arc::new((Mutex::new(0), Condvar::new()));
    ///     let s = state.clone();
    ///     weft::spawn(move || {
    ///         *s.0.lock() = 1;
    ///         s.1.notify_all();
    ///     });
    ///     let mut n = state.0.lock();
    ///     while *n == 0 {
    ///         n = state.1.wait(n);
    ///     }
    ///     assert_eq!(*n, 1);
    /// });
    /// ```
    pub fn wait<'a, T: ?Sized>(&self, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
        self.wait_until(guard, None).0
    }

    /// [`wait`](Self::wait) until `condition` is false (checked under the
    /// lock, before the first wait too).
    ///
    /// # Panics
    ///
    /// As [`wait`](Self::wait).
    ///
    /// ```
    /// let m = weft::sync::Mutex::new(3);
    /// let cv = weft::sync::Condvar::new();
    /// // Already false: returns at once.
    /// let g = cv.wait_while(m.lock(), |n| *n < 3);
    /// assert_eq!(*g, 3);
    /// ```
    pub fn wait_while<'a, T: ?Sized>(
        &self,
        mut guard: MutexGuard<'a, T>,
        mut condition: impl FnMut(&mut T) -> bool,
    ) -> MutexGuard<'a, T> {
        while condition(&mut guard) {
            guard = self.wait(guard);
        }
        guard
    }

    /// [`wait`](Self::wait), no longer than `timeout`.
    ///
    /// # Panics
    ///
    /// As [`wait`](Self::wait).
    ///
    /// ```
    /// use std::time::Duration;
    /// let m = weft::sync::Mutex::new(());
    /// let cv = weft::sync::Condvar::new();
    /// let (_g, res) = cv.wait_timeout(m.lock(), Duration::from_millis(2));
    /// assert!(res.timed_out());
    /// ```
    pub fn wait_timeout<'a, T: ?Sized>(
        &self,
        guard: MutexGuard<'a, T>,
        timeout: Duration,
    ) -> (MutexGuard<'a, T>, WaitTimeoutResult) {
        self.wait_until(guard, Instant::now().checked_add(timeout))
    }

    fn wait_until<'a, T: ?Sized>(
        &self,
        guard: MutexGuard<'a, T>,
        deadline: Option<Instant>,
    ) -> (MutexGuard<'a, T>, WaitTimeoutResult) {
        if waiter::park::is_cancelled() {
            waiter::cancelled_panic("Condvar::wait");
        }
        let cx = std::pin::pin!(Context::for_current());
        // Registered before the lock is released: a notify that follows the
        // release finds us.
        self.waiters.lock().push_back(CxRef::new(cx.as_ref()));
        let mutex: &'a Mutex<T> = MutexGuard::unlocked(guard);
        let outcome = waiter::wait_on(self, &cx, deadline);
        let guard = mutex.lock();
        match outcome {
            Outcome::Selected(_) => (guard, WaitTimeoutResult(false)),
            Outcome::TimedOut => (guard, WaitTimeoutResult(true)),
            Outcome::Cancelled => {
                drop(guard);
                waiter::cancelled_panic("Condvar::wait")
            }
        }
    }

    /// Wakes one waiter, the one that has waited longest.
    ///
    /// ```
    /// weft::sync::Condvar::new().notify_one();
    /// ```
    pub fn notify_one(&self) {
        let mut waiters = self.waiters.lock();
        while let Some(cx) = waiters.pop_front() {
            if cx.try_select(0) {
                let wake = cx.complete();
                drop(waiters);
                wake.wake();
                return;
            }
        }
    }

    /// Wakes every waiter.
    ///
    /// ```
    /// weft::sync::Condvar::new().notify_all();
    /// ```
    pub fn notify_all(&self) {
        let mut woken = Vec::new();
        {
            let mut waiters = self.waiters.lock();
            for cx in waiters.drain(..) {
                if cx.try_select(0) {
                    woken.push(cx.complete());
                }
            }
        }
        woken.into_iter().for_each(Wake::wake);
    }
}

impl Queue for Condvar {
    fn unregister(&self, cx: &Context) {
        self.waiters.lock().retain(|c| !c.is(cx));
    }
}

impl fmt::Debug for Condvar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Condvar").finish_non_exhaustive()
    }
}
