//! [`RwLock`]: many readers or one writer, served in arrival order.
//!
//! The state (readers, writer, a FIFO of waiters) sits behind one short
//! internal lock. A request is granted at once only if it is compatible
//! with the holders *and nobody is queued*; otherwise it queues. When the
//! lock frees up, the front of the queue is granted: one writer, or every
//! reader up to the next writer. So a stream of readers cannot starve a
//! writer, nor writers the readers.

use std::cell::UnsafeCell;
use std::collections::VecDeque;
use std::fmt;
use std::ops::{Deref, DerefMut};

use super::waiter::{self, Context, CxRef, Outcome, Queue, Wake};
use crate::loom::sync::Mutex as RawMutex;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Read,
    Write,
}

struct State {
    readers: usize,
    writer: bool,
    queue: VecDeque<(CxRef, Kind)>,
}

impl State {
    /// Grants what the front of the queue allows; returns whom to wake.
    fn grant(&mut self) -> Vec<Wake> {
        let mut woken = Vec::new();
        while let Some((cx, kind)) = self.queue.front() {
            let fits = match kind {
                Kind::Write => !self.writer && self.readers == 0,
                Kind::Read => !self.writer,
            };
            if !fits {
                break;
            }
            let (cx, kind) = (*cx, *kind);
            self.queue.pop_front();
            if !cx.try_select(0) {
                continue; // gave up
            }
            match kind {
                Kind::Write => self.writer = true,
                Kind::Read => self.readers += 1,
            }
            woken.push(cx.complete());
        }
        woken
    }
}

/// A reader-writer lock for fibers and threads: any number of readers, or
/// one writer. Waiting parks the fiber (blocks a thread); guards may be
/// held across parks. Fair: requests are served in arrival order (see the
/// [module docs](crate::sync)). No poisoning, as for [`Mutex`](super::Mutex).
///
/// ```
/// let lock = weft::sync::RwLock::new(1);
/// {
///     let a = lock.read();
///     let b = lock.read();
///     assert_eq!(*a + *b, 2);
/// }
/// *lock.write() += 1;
/// assert_eq!(*lock.read(), 2);
/// ```
pub struct RwLock<T: ?Sized> {
    state: RawMutex<State>,
    value: UnsafeCell<T>,
}

// SAFETY: the lock hands out `&mut T` to one writer (T: Send), or `&T` to
// several readers at once (T: Sync), as std's RwLock.
unsafe impl<T: ?Sized + Send> Send for RwLock<T> {}
// SAFETY: as above.
unsafe impl<T: ?Sized + Send + Sync> Sync for RwLock<T> {}

/// Shared access to an [`RwLock`]'s value; releases when dropped.
///
/// ```
/// let lock = weft::sync::RwLock::new("x");
/// let r = lock.read();
/// assert_eq!(*r, "x");
/// ```
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct RwLockReadGuard<'a, T: ?Sized> {
    lock: &'a RwLock<T>,
}

/// Exclusive access to an [`RwLock`]'s value; releases when dropped.
///
/// ```
/// let lock = weft::sync::RwLock::new(0);
/// *lock.write() = 9;
/// assert_eq!(*lock.read(), 9);
/// ```
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct RwLockWriteGuard<'a, T: ?Sized> {
    lock: &'a RwLock<T>,
}

// SAFETY: a read guard gives `&T`: sharing it needs T: Sync.
unsafe impl<T: ?Sized + Sync> Sync for RwLockReadGuard<'_, T> {}
// SAFETY: a write guard gives `&T` through `&self`: T: Sync.
unsafe impl<T: ?Sized + Sync> Sync for RwLockWriteGuard<'_, T> {}

impl<T> RwLock<T> {
    /// A new, unlocked lock.
    ///
    /// ```
    /// let lock = weft::sync::RwLock::new(vec![1, 2]);
    /// assert_eq!(lock.read().len(), 2);
    /// ```
    pub fn new(value: T) -> RwLock<T> {
        RwLock {
            state: RawMutex::new(State {
                readers: 0,
                writer: false,
                queue: VecDeque::new(),
            }),
            value: UnsafeCell::new(value),
        }
    }

    /// The value, consuming the lock.
    ///
    /// ```
    /// assert_eq!(weft::sync::RwLock::new(4).into_inner(), 4);
    /// ```
    pub fn into_inner(self) -> T {
        self.value.into_inner()
    }
}

impl<T: ?Sized> RwLock<T> {
    /// Shared access, waiting while a writer holds the lock or anyone is
    /// queued before us.
    ///
    /// # Panics
    ///
    /// If it would have to wait while the runtime is shutting down and
    /// this fiber is being unwound (use [`try_read`](Self::try_read) in
    /// destructors that may run then).
    ///
    /// ```
    /// let lock = weft::sync::RwLock::new(1);
    /// assert_eq!(*lock.read(), 1);
    /// ```
    pub fn read(&self) -> RwLockReadGuard<'_, T> {
        self.acquire(Kind::Read, "RwLock::read");
        RwLockReadGuard { lock: self }
    }

    /// Exclusive access, waiting while anyone holds the lock or is queued
    /// before us.
    ///
    /// # Panics
    ///
    /// As [`read`](Self::read).
    ///
    /// ```
    /// let lock = weft::sync::RwLock::new(1);
    /// *lock.write() += 1;
    /// assert_eq!(*lock.read(), 2);
    /// ```
    pub fn write(&self) -> RwLockWriteGuard<'_, T> {
        self.acquire(Kind::Write, "RwLock::write");
        RwLockWriteGuard { lock: self }
    }

    /// Shared access if that needs no waiting.
    ///
    /// ```
    /// let lock = weft::sync::RwLock::new(1);
    /// let w = lock.write();
    /// assert!(lock.try_read().is_none());
    /// drop(w);
    /// assert!(lock.try_read().is_some());
    /// ```
    pub fn try_read(&self) -> Option<RwLockReadGuard<'_, T>> {
        let mut state = self.state.lock();
        if state.writer || !state.queue.is_empty() {
            return None;
        }
        state.readers += 1;
        Some(RwLockReadGuard { lock: self })
    }

    /// Exclusive access if that needs no waiting.
    ///
    /// ```
    /// let lock = weft::sync::RwLock::new(1);
    /// let r = lock.read();
    /// assert!(lock.try_write().is_none());
    /// drop(r);
    /// assert!(lock.try_write().is_some());
    /// ```
    pub fn try_write(&self) -> Option<RwLockWriteGuard<'_, T>> {
        let mut state = self.state.lock();
        if state.writer || state.readers > 0 || !state.queue.is_empty() {
            return None;
        }
        state.writer = true;
        Some(RwLockWriteGuard { lock: self })
    }

    /// The value, through a unique reference.
    ///
    /// ```
    /// let mut lock = weft::sync::RwLock::new(1);
    /// *lock.get_mut() = 5;
    /// assert_eq!(*lock.read(), 5);
    /// ```
    pub fn get_mut(&mut self) -> &mut T {
        self.value.get_mut()
    }

    fn acquire(&self, kind: Kind, what: &str) {
        let mut state = self.state.lock();
        let free = match kind {
            Kind::Read => !state.writer,
            Kind::Write => !state.writer && state.readers == 0,
        };
        if free && state.queue.is_empty() {
            match kind {
                Kind::Read => state.readers += 1,
                Kind::Write => state.writer = true,
            }
            return;
        }
        let cx = std::pin::pin!(Context::for_current());
        state.queue.push_back((CxRef::new(cx.as_ref()), kind));
        drop(state);
        match waiter::wait_on(&Waiting { lock: self, kind }, &cx, None) {
            Outcome::Selected(_) => {}
            Outcome::TimedOut | Outcome::Cancelled => waiter::cancelled_panic(what),
        }
    }

    fn release(&self, kind: Kind) {
        let woken = {
            let mut state = self.state.lock();
            match kind {
                Kind::Read => state.readers -= 1,
                Kind::Write => state.writer = false,
            }
            state.grant()
        };
        woken.into_iter().for_each(Wake::wake);
    }
}

/// A queued request, as [`wait_on`](waiter::wait_on) sees it.
struct Waiting<'a, T: ?Sized> {
    lock: &'a RwLock<T>,
    kind: Kind,
}

impl<T: ?Sized> Queue for Waiting<'_, T> {
    fn unregister(&self, cx: &Context) {
        let woken = {
            let mut state = self.lock.state.lock();
            state.queue.retain(|(c, _)| !c.is(cx));
            // A writer that gave up may have held back readers behind it.
            state.grant()
        };
        woken.into_iter().for_each(Wake::wake);
    }

    fn undo(&self, _oper: usize) {
        self.lock.release(self.kind);
    }
}

impl<T: ?Sized> Deref for RwLockReadGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: a read guard proves no writer holds the lock.
        unsafe { &*self.lock.value.get() }
    }
}

impl<T: ?Sized> Deref for RwLockWriteGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: a write guard proves exclusive access.
        unsafe { &*self.lock.value.get() }
    }
}

impl<T: ?Sized> DerefMut for RwLockWriteGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: a write guard proves exclusive access, `&mut self` that
        // this is its only use.
        unsafe { &mut *self.lock.value.get() }
    }
}

impl<T: ?Sized> Drop for RwLockReadGuard<'_, T> {
    fn drop(&mut self) {
        self.lock.release(Kind::Read);
    }
}

impl<T: ?Sized> Drop for RwLockWriteGuard<'_, T> {
    fn drop(&mut self) {
        self.lock.release(Kind::Write);
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for RwLock<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("RwLock");
        match self.try_read() {
            Some(guard) => d.field("value", &&*guard),
            None => d.field("value", &format_args!("<locked>")),
        };
        d.finish()
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for RwLockReadGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for RwLockWriteGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: Default> Default for RwLock<T> {
    fn default() -> RwLock<T> {
        RwLock::new(T::default())
    }
}
