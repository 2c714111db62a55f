//! loom's instrumented primitives behind the same API as `std.rs`.
//!
//! The environment is pinned as tokio pins it: 2 CPUs.

pub(crate) mod sync {
    use std::ops::{Deref, DerefMut};
    use std::time::Duration;

    pub(crate) use ::loom::sync::Arc;

    pub(crate) mod atomic {
        pub(crate) use ::loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering, fence};
    }

    #[derive(Debug)]
    pub(crate) struct Mutex<T>(::loom::sync::Mutex<T>);

    /// Holds loom's guard in an `Option` so that `Condvar::wait` can hand it
    /// to loom (which takes it by value) and put it back.
    #[derive(Debug)]
    pub(crate) struct MutexGuard<'a, T>(Option<::loom::sync::MutexGuard<'a, T>>);

    impl<T> Mutex<T> {
        pub(crate) fn new(value: T) -> Mutex<T> {
            Mutex(::loom::sync::Mutex::new(value))
        }

        pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
            MutexGuard(Some(
                self.0
                    .lock()
                    .expect("loom mutexes are not poisoned in models"),
            ))
        }
    }

    impl<T: Default> Default for Mutex<T> {
        fn default() -> Self {
            Mutex::new(T::default())
        }
    }

    impl<T> Deref for MutexGuard<'_, T> {
        type Target = T;
        fn deref(&self) -> &T {
            self.0.as_ref().expect("guard present")
        }
    }

    impl<T> DerefMut for MutexGuard<'_, T> {
        fn deref_mut(&mut self) -> &mut T {
            self.0.as_mut().expect("guard present")
        }
    }

    #[derive(Debug, Default)]
    pub(crate) struct Condvar(::loom::sync::Condvar);

    impl Condvar {
        pub(crate) fn new() -> Condvar {
            Condvar(::loom::sync::Condvar::new())
        }

        pub(crate) fn wait<T>(&self, guard: &mut MutexGuard<'_, T>) {
            let inner = guard.0.take().expect("guard present");
            guard.0 = Some(self.0.wait(inner).expect("not poisoned"));
        }

        /// loom never times out: a model must always notify a waiter.
        pub(crate) fn wait_timeout<T>(
            &self,
            guard: &mut MutexGuard<'_, T>,
            timeout: Duration,
        ) -> bool {
            let inner = guard.0.take().expect("guard present");
            let (inner, result) = self.0.wait_timeout(inner, timeout).expect("not poisoned");
            guard.0 = Some(inner);
            result.timed_out()
        }

        pub(crate) fn notify_one(&self) {
            self.0.notify_one();
        }
    }
}

pub(crate) mod cell {
    /// loom's checked cell: a racy access is a "Causality violation".
    #[derive(Debug)]
    pub(crate) struct UnsafeCell<T>(::loom::cell::UnsafeCell<T>);

    impl<T> UnsafeCell<T> {
        pub(crate) fn new(value: T) -> UnsafeCell<T> {
            UnsafeCell(::loom::cell::UnsafeCell::new(value))
        }

        /// Calls `f` with a shared pointer to the value.
        pub(crate) fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
            self.0.with(f)
        }

        /// Calls `f` with a mutable pointer to the value.
        pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
            self.0.with_mut(f)
        }
    }
}

/// Models pretend to run on 2 CPUs.
pub(crate) fn available_parallelism() -> usize {
    2
}
