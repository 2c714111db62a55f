//! [`WaitGroup`]: wait until a group of fibers is done.

use std::fmt;

use super::waiter::{self, Context, CxRef, Outcome, Queue, Wake};
use crate::loom::sync::{Arc, Mutex as RawMutex};

struct State {
    /// Live handles of the group.
    count: usize,
    waiters: Vec<CxRef>,
}

struct Inner {
    state: RawMutex<State>,
}

/// Waits for a group of fibers (or threads) to finish, as Go's
/// `sync.WaitGroup`, in crossbeam's shape: each member holds a clone, and
/// [`wait`](Self::wait) returns once every other clone has been dropped.
/// A member that panics drops its clone while unwinding, so a panic never
/// leaves the waiter hanging.
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicUsize, Ordering};
///
/// let done = weft::run(|| {
///     let wg = weft::sync::WaitGroup::new();
///     let done = Arc::new(AtomicUsize::new(0));
///     for _ in 0..8 {
///         let (wg, done) = (wg.clone(), done.clone());
///         weft::spawn(move || {
///             done.fetch_add(1, Ordering::SeqCst);
///             drop(wg);
///         });
///     }
///     wg.wait();
///     done.load(Ordering::SeqCst)
/// });
/// assert_eq!(done, 8);
/// ```
pub struct WaitGroup {
    inner: Arc<Inner>,
}

impl WaitGroup {
    /// A group with one member: this handle.
    ///
    /// ```
    /// let wg = weft::sync::WaitGroup::new();
    /// wg.wait(); // the only member: returns at once
    /// ```
    pub fn new() -> WaitGroup {
        WaitGroup {
            inner: Arc::new(Inner {
                state: RawMutex::new(State {
                    count: 1,
                    waiters: Vec::new(),
                }),
            }),
        }
    }

    /// Leaves the group and waits until every other member has left.
    ///
    /// # Panics
    ///
    /// If it would have to wait while the runtime is shutting down and
    /// this fiber is being unwound.
    ///
    /// ```
    /// let wg = weft::sync::WaitGroup::new();
    /// let member = wg.clone();
    /// std::thread::spawn(move || drop(member));
    /// wg.wait();
    /// ```
    pub fn wait(self) {
        let inner = self.inner.clone();
        drop(self);
        let mut state = inner.state.lock();
        if state.count == 0 {
            return;
        }
        let cx = std::pin::pin!(Context::for_current());
        state.waiters.push(CxRef::new(cx.as_ref()));
        drop(state);
        match waiter::wait_on(&*inner, &cx, None) {
            Outcome::Selected(_) => {}
            Outcome::TimedOut | Outcome::Cancelled => waiter::cancelled_panic("WaitGroup::wait"),
        }
    }

    /// How many members the group has now.
    ///
    /// ```
    /// let wg = weft::sync::WaitGroup::new();
    /// let other = wg.clone();
    /// assert_eq!(wg.members(), 2);
    /// drop(other);
    /// assert_eq!(wg.members(), 1);
    /// ```
    pub fn members(&self) -> usize {
        self.inner.state.lock().count
    }
}

impl Queue for Inner {
    fn unregister(&self, cx: &Context) {
        self.state.lock().waiters.retain(|c| !c.is(cx));
    }
}

impl Default for WaitGroup {
    fn default() -> WaitGroup {
        WaitGroup::new()
    }
}

impl Clone for WaitGroup {
    fn clone(&self) -> WaitGroup {
        self.inner.state.lock().count += 1;
        WaitGroup {
            inner: self.inner.clone(),
        }
    }
}

impl Drop for WaitGroup {
    fn drop(&mut self) {
        let woken: Vec<_> = {
            let mut state = self.inner.state.lock();
            state.count -= 1;
            if state.count > 0 {
                return;
            }
            std::mem::take(&mut state.waiters)
                .into_iter()
                .filter(|cx| cx.try_select(0))
                .map(CxRef::complete)
                .collect()
        };
        woken.into_iter().for_each(Wake::wake);
    }
}

impl fmt::Debug for WaitGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WaitGroup")
            .field("members", &self.members())
            .finish()
    }
}
