//! The real primitives: std atomics and `Arc`, parking_lot locks.

pub(crate) mod sync {
    use std::marker::PhantomData;
    use std::ops::{Deref, DerefMut};
    use std::time::Duration;

    pub(crate) use std::sync::Arc;

    pub(crate) mod atomic {
        pub(crate) use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering, fence};
    }

    /// A parking_lot mutex. The `PhantomData` keeps the `Send`/`Sync`
    /// bounds of `std::sync::Mutex`, whatever parking_lot features another
    /// crate in the build turns on (its `send_guard` makes guards `Send`).
    #[derive(Debug, Default)]
    pub(crate) struct Mutex<T: ?Sized> {
        _bounds: PhantomData<std::sync::Mutex<()>>,
        inner: parking_lot::Mutex<T>,
    }

    /// The guard of a [`Mutex`]; `!Send`, like std's.
    #[derive(Debug)]
    pub(crate) struct MutexGuard<'a, T: ?Sized> {
        _bounds: PhantomData<std::sync::MutexGuard<'a, ()>>,
        inner: parking_lot::MutexGuard<'a, T>,
    }

    impl<T> Mutex<T> {
        pub(crate) const fn new(value: T) -> Mutex<T> {
            Mutex {
                _bounds: PhantomData,
                inner: parking_lot::const_mutex(value),
            }
        }
    }

    impl<T: ?Sized> Mutex<T> {
        #[inline]
        pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
            MutexGuard {
                _bounds: PhantomData,
                inner: self.inner.lock(),
            }
        }
    }

    impl<T: ?Sized> Deref for MutexGuard<'_, T> {
        type Target = T;
        fn deref(&self) -> &T {
            &self.inner
        }
    }

    impl<T: ?Sized> DerefMut for MutexGuard<'_, T> {
        fn deref_mut(&mut self) -> &mut T {
            &mut self.inner
        }
    }

    /// A parking_lot condition variable.
    #[derive(Debug, Default)]
    pub(crate) struct Condvar(parking_lot::Condvar);

    impl Condvar {
        pub(crate) const fn new() -> Condvar {
            Condvar(parking_lot::Condvar::new())
        }

        pub(crate) fn wait<T>(&self, guard: &mut MutexGuard<'_, T>) {
            self.0.wait(&mut guard.inner);
        }

        /// Waits for a notification or `timeout`; true if it timed out.
        pub(crate) fn wait_timeout<T>(
            &self,
            guard: &mut MutexGuard<'_, T>,
            timeout: Duration,
        ) -> bool {
            self.0.wait_for(&mut guard.inner, timeout).timed_out()
        }

        pub(crate) fn notify_one(&self) {
            self.0.notify_one();
        }
    }
}

pub(crate) mod cell {
    /// `std::cell::UnsafeCell` with loom's closure API, so code written
    /// for loom's checked cell compiles to plain pointer accesses here.
    #[derive(Debug, Default)]
    pub(crate) struct UnsafeCell<T>(std::cell::UnsafeCell<T>);

    impl<T> UnsafeCell<T> {
        pub(crate) const fn new(value: T) -> UnsafeCell<T> {
            UnsafeCell(std::cell::UnsafeCell::new(value))
        }

        /// Calls `f` with a shared pointer to the value.
        #[allow(
            dead_code,
            reason = "the same API as loom's cell; not every build reads"
        )]
        #[inline(always)]
        pub(crate) fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
            f(self.0.get())
        }

        /// Calls `f` with a mutable pointer to the value.
        #[inline(always)]
        pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
            f(self.0.get())
        }
    }
}

/// How many CPUs the scheduler sizes itself for.
pub(crate) fn available_parallelism() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
