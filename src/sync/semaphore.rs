//! [`Semaphore`]: a count of permits, handed out first come, first served.

use std::collections::VecDeque;
use std::error::Error;
use std::fmt;

use super::waiter::{self, Context, CxRef, Outcome, Queue, Wake};
use crate::loom::sync::Mutex as RawMutex;

/// The operation that selects a waiter when permits are granted.
const GRANTED: usize = 0;
/// The operation that selects a waiter when the semaphore closes.
const CLOSED: usize = 1;

struct State {
    permits: usize,
    closed: bool,
    /// Waiters and how many permits each wants.
    queue: VecDeque<(CxRef, usize)>,
}

impl State {
    /// Grants permits to the front of the queue while they suffice.
    fn grant(&mut self) -> Vec<Wake> {
        let mut woken = Vec::new();
        while let Some((cx, wanted)) = self.queue.front() {
            if *wanted > self.permits {
                break;
            }
            let (cx, wanted) = (*cx, *wanted);
            self.queue.pop_front();
            if cx.try_select(GRANTED) {
                self.permits -= wanted;
                woken.push(cx.complete());
            }
        }
        woken
    }
}

/// A counting semaphore: [`acquire`](Self::acquire) takes permits, parking
/// the fiber (blocking a thread) until enough are free; dropping the
/// [`SemaphorePermit`] gives them back. Fair: waiters are served in
/// arrival order, and a large request at the front is not overtaken by
/// smaller ones behind it.
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicUsize, Ordering};
///
/// let peak = weft::run(|| {
///     let sem = Arc::new(weft::sync::Semaphore::new(3));
///     let (now, peak) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
///     let fibers: Vec<_> = (0..20)
///         .map(|_| {
///             let (sem, now, peak) = (sem.clone(), now.clone(), peak.clone());
///             weft::spawn(move || {
///                 let _permit = sem.acquire().unwrap();
///                 let n = now.fetch_add(1, Ordering::SeqCst) + 1;
///                 peak.fetch_max(n, Ordering::SeqCst);
///                 weft::yield_now();
///                 now.fetch_sub(1, Ordering::SeqCst);
///             })
///         })
///         .collect();
///     fibers.into_iter().for_each(|f| f.join().unwrap());
///     peak.load(Ordering::SeqCst)
/// });
/// assert!(peak <= 3);
/// ```
pub struct Semaphore {
    state: RawMutex<State>,
}

/// Permits taken from a [`Semaphore`]; dropping it gives them back.
///
/// ```
/// let sem = weft::sync::Semaphore::new(2);
/// let permit = sem.acquire_many(2).unwrap();
/// assert_eq!(sem.available_permits(), 0);
/// drop(permit);
/// assert_eq!(sem.available_permits(), 2);
/// ```
#[must_use = "the permits are given back as soon as this is dropped"]
pub struct SemaphorePermit<'a> {
    sem: &'a Semaphore,
    permits: usize,
}

/// The semaphore was closed: no permit will be granted.
///
/// ```
/// let sem = weft::sync::Semaphore::new(1);
/// sem.close();
/// assert_eq!(sem.acquire().unwrap_err(), weft::sync::AcquireError::Closed);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcquireError {
    /// [`Semaphore::close`] was called.
    Closed,
    /// The runtime is shutting down and the acquire would have had to
    /// wait (it never would have been granted).
    Cancelled,
}

/// Why [`Semaphore::try_acquire`] failed.
///
/// ```
/// let sem = weft::sync::Semaphore::new(0);
/// assert_eq!(sem.try_acquire().unwrap_err(), weft::sync::TryAcquireError::NoPermits);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TryAcquireError {
    /// Not enough permits are free now (or others wait before us).
    NoPermits,
    /// The semaphore was closed.
    Closed,
}

impl Semaphore {
    /// A semaphore with `permits` free permits.
    ///
    /// ```
    /// assert_eq!(weft::sync::Semaphore::new(4).available_permits(), 4);
    /// ```
    pub fn new(permits: usize) -> Semaphore {
        Semaphore {
            state: RawMutex::new(State {
                permits,
                closed: false,
                queue: VecDeque::new(),
            }),
        }
    }

    /// How many permits are free now.
    ///
    /// ```
    /// let sem = weft::sync::Semaphore::new(2);
    /// let _p = sem.acquire().unwrap();
    /// assert_eq!(sem.available_permits(), 1);
    /// ```
    pub fn available_permits(&self) -> usize {
        self.state.lock().permits
    }

    /// Takes one permit, waiting until one is free.
    ///
    /// # Errors
    ///
    /// [`AcquireError::Closed`] once the semaphore is closed (also while
    /// waiting); [`AcquireError::Cancelled`] at runtime shutdown.
    ///
    /// ```
    /// let sem = weft::sync::Semaphore::new(1);
    /// let p = sem.acquire().unwrap();
    /// drop(p);
    /// assert!(sem.acquire().is_ok());
    /// ```
    pub fn acquire(&self) -> Result<SemaphorePermit<'_>, AcquireError> {
        self.acquire_many(1)
    }

    /// Takes `n` permits at once, waiting until `n` are free.
    ///
    /// # Errors
    ///
    /// As [`acquire`](Self::acquire).
    ///
    /// ```
    /// let sem = weft::sync::Semaphore::new(5);
    /// let p = sem.acquire_many(3).unwrap();
    /// assert_eq!(sem.available_permits(), 2);
    /// drop(p);
    /// ```
    pub fn acquire_many(&self, n: usize) -> Result<SemaphorePermit<'_>, AcquireError> {
        let mut state = self.state.lock();
        if state.closed {
            return Err(AcquireError::Closed);
        }
        if state.queue.is_empty() && state.permits >= n {
            state.permits -= n;
            return Ok(SemaphorePermit {
                sem: self,
                permits: n,
            });
        }
        let cx = std::pin::pin!(Context::for_current());
        state.queue.push_back((CxRef::new(cx.as_ref()), n));
        drop(state);
        match waiter::wait_on(&Waiting { sem: self, n }, &cx, None) {
            Outcome::Selected(GRANTED) => Ok(SemaphorePermit {
                sem: self,
                permits: n,
            }),
            Outcome::Selected(_) => Err(AcquireError::Closed),
            Outcome::TimedOut | Outcome::Cancelled => Err(AcquireError::Cancelled),
        }
    }

    /// Takes one permit if one is free and nobody waits before us.
    ///
    /// # Errors
    ///
    /// [`TryAcquireError::NoPermits`] or [`TryAcquireError::Closed`].
    ///
    /// ```
    /// let sem = weft::sync::Semaphore::new(1);
    /// let _p = sem.try_acquire().unwrap();
    /// assert!(sem.try_acquire().is_err());
    /// ```
    pub fn try_acquire(&self) -> Result<SemaphorePermit<'_>, TryAcquireError> {
        self.try_acquire_many(1)
    }

    /// Takes `n` permits if they are free and nobody waits before us.
    ///
    /// # Errors
    ///
    /// As [`try_acquire`](Self::try_acquire).
    ///
    /// ```
    /// let sem = weft::sync::Semaphore::new(2);
    /// assert!(sem.try_acquire_many(3).is_err());
    /// assert!(sem.try_acquire_many(2).is_ok());
    /// ```
    pub fn try_acquire_many(&self, n: usize) -> Result<SemaphorePermit<'_>, TryAcquireError> {
        let mut state = self.state.lock();
        if state.closed {
            return Err(TryAcquireError::Closed);
        }
        if state.queue.is_empty() && state.permits >= n {
            state.permits -= n;
            return Ok(SemaphorePermit {
                sem: self,
                permits: n,
            });
        }
        Err(TryAcquireError::NoPermits)
    }

    /// Adds `n` permits (waking waiters they suffice for).
    ///
    /// ```
    /// let sem = weft::sync::Semaphore::new(0);
    /// sem.add_permits(2);
    /// assert_eq!(sem.available_permits(), 2);
    /// ```
    pub fn add_permits(&self, n: usize) {
        let woken = {
            let mut state = self.state.lock();
            state.permits = state.permits.saturating_add(n);
            state.grant()
        };
        woken.into_iter().for_each(Wake::wake);
    }

    /// Closes the semaphore: waiting and later acquires fail with
    /// [`AcquireError::Closed`]. Permits already taken stay valid.
    ///
    /// ```
    /// let sem = weft::sync::Semaphore::new(1);
    /// sem.close();
    /// assert!(sem.is_closed());
    /// assert!(sem.try_acquire().is_err());
    /// ```
    pub fn close(&self) {
        let mut woken = Vec::new();
        {
            let mut state = self.state.lock();
            state.closed = true;
            for (cx, _) in state.queue.drain(..) {
                if cx.try_select(CLOSED) {
                    woken.push(cx.complete());
                }
            }
        }
        woken.into_iter().for_each(Wake::wake);
    }

    /// Whether [`close`](Self::close) was called.
    ///
    /// ```
    /// assert!(!weft::sync::Semaphore::new(1).is_closed());
    /// ```
    pub fn is_closed(&self) -> bool {
        self.state.lock().closed
    }
}

impl SemaphorePermit<'_> {
    /// Keeps the permits taken for good: dropping no longer returns them.
    ///
    /// ```
    /// let sem = weft::sync::Semaphore::new(1);
    /// sem.acquire().unwrap().forget();
    /// assert_eq!(sem.available_permits(), 0);
    /// ```
    pub fn forget(mut self) {
        self.permits = 0;
    }

    /// How many permits this holds.
    ///
    /// ```
    /// let sem = weft::sync::Semaphore::new(3);
    /// assert_eq!(sem.acquire_many(2).unwrap().num_permits(), 2);
    /// ```
    pub fn num_permits(&self) -> usize {
        self.permits
    }
}

impl Drop for SemaphorePermit<'_> {
    fn drop(&mut self) {
        if self.permits > 0 {
            self.sem.add_permits(self.permits);
        }
    }
}

/// A queued acquire, as [`wait_on`](waiter::wait_on) sees it.
struct Waiting<'a> {
    sem: &'a Semaphore,
    n: usize,
}

impl Queue for Waiting<'_> {
    fn unregister(&self, cx: &Context) {
        let woken = {
            let mut state = self.sem.state.lock();
            state.queue.retain(|(c, _)| !c.is(cx));
            // A large request that gave up may have held back others.
            state.grant()
        };
        woken.into_iter().for_each(Wake::wake);
    }

    fn undo(&self, oper: usize) {
        if oper == GRANTED {
            self.sem.add_permits(self.n);
        }
    }
}

impl fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.state.lock();
        f.debug_struct("Semaphore")
            .field("permits", &state.permits)
            .field("waiters", &state.queue.len())
            .field("closed", &state.closed)
            .finish()
    }
}

impl fmt::Debug for SemaphorePermit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SemaphorePermit")
            .field("permits", &self.permits)
            .finish()
    }
}

impl fmt::Display for AcquireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AcquireError::Closed => f.write_str("the semaphore is closed"),
            AcquireError::Cancelled => f.write_str("the runtime is shutting down"),
        }
    }
}

impl fmt::Display for TryAcquireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryAcquireError::NoPermits => f.write_str("no permits are free"),
            TryAcquireError::Closed => f.write_str("the semaphore is closed"),
        }
    }
}

impl Error for AcquireError {}
impl Error for TryAcquireError {}
