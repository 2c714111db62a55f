//! [`Barrier`]: `n` fibers wait for each other, then all go on.

use std::fmt;

use super::waiter::{self, Context, CxRef, Outcome, Queue, Wake};
use crate::loom::sync::Mutex as RawMutex;

struct State {
    /// Arrived in this generation.
    arrived: usize,
    waiters: Vec<CxRef>,
}

/// A barrier for `n` fibers or threads, as `std::sync::Barrier`: each
/// [`wait`](Self::wait) parks until `n` have called it, then all return,
/// one of them as the *leader*; the barrier is then ready for the next
/// round.
///
/// ```
/// use std::sync::Arc;
///
/// let leaders = weft::run(|| {
///     let barrier = Arc::new(weft::sync::Barrier::new(4));
///     let fibers: Vec<_> = (0..4)
///         .map(|_| {
///             let barrier = barrier.clone();
///             weft::spawn(move || barrier.wait().is_leader())
///         })
///         .collect();
///     fibers.into_iter().map(|f| f.join().unwrap()).filter(|l| *l).count()
/// });
/// assert_eq!(leaders, 1);
/// ```
pub struct Barrier {
    n: usize,
    state: RawMutex<State>,
}

/// What [`Barrier::wait`] returns.
///
/// ```
/// let barrier = weft::sync::Barrier::new(1);
/// assert!(barrier.wait().is_leader());
/// ```
#[derive(Debug, Clone, Copy)]
pub struct BarrierWaitResult(bool);

impl BarrierWaitResult {
    /// Whether this caller was the last to arrive (exactly one per round).
    ///
    /// ```
    /// assert!(weft::sync::Barrier::new(1).wait().is_leader());
    /// ```
    pub fn is_leader(&self) -> bool {
        self.0
    }
}

impl Barrier {
    /// A barrier for `n` parties (0 acts as 1).
    ///
    /// ```
    /// let _b = weft::sync::Barrier::new(3);
    /// ```
    pub fn new(n: usize) -> Barrier {
        Barrier {
            n,
            state: RawMutex::new(State {
                arrived: 0,
                waiters: Vec::new(),
            }),
        }
    }

    /// Waits until `n` callers have arrived.
    ///
    /// # Panics
    ///
    /// If it would have to wait while the runtime is shutting down and
    /// this fiber is being unwound.
    ///
    /// ```
    /// use std::sync::Arc;
    /// let b = Arc::new(weft::sync::Barrier::new(2));
    /// let b2 = b.clone();
    /// let t = std::thread::spawn(move || b2.wait().is_leader());
    /// let me = b.wait().is_leader();
    /// assert!(me != t.join().unwrap());
    /// ```
    pub fn wait(&self) -> BarrierWaitResult {
        let mut state = self.state.lock();
        {
            state.arrived += 1;
            if state.arrived >= self.n {
                state.arrived = 0;
                let woken: Vec<_> = std::mem::take(&mut state.waiters)
                    .into_iter()
                    .filter(|cx| cx.try_select(0))
                    .map(CxRef::complete)
                    .collect();
                drop(state);
                woken.into_iter().for_each(Wake::wake);
                return BarrierWaitResult(true);
            }
        }
        let cx = std::pin::pin!(Context::for_current());
        state.waiters.push(CxRef::new(cx.as_ref()));
        drop(state);
        match waiter::wait_on(self, &cx, None) {
            Outcome::Selected(_) => BarrierWaitResult(false),
            Outcome::TimedOut | Outcome::Cancelled => waiter::cancelled_panic("Barrier::wait"),
        }
    }
}

impl Queue for Barrier {
    fn unregister(&self, cx: &Context) {
        let mut state = self.state.lock();
        let before = state.waiters.len();
        state.waiters.retain(|c| !c.is(cx));
        if state.waiters.len() < before {
            // It no longer counts as arrived.
            state.arrived -= 1;
        }
    }
}

impl fmt::Debug for Barrier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Barrier")
            .field("n", &self.n)
            .finish_non_exhaustive()
    }
}
