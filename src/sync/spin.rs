//! [`SpinLock`]: the lock of a channel.
//!
//! A channel's critical sections are a few dozen instructions that never
//! park (every wait happens after the lock is released), so a lock that
//! spins, and yields the thread after a few rounds, costs less than a
//! parking mutex: taking it is one atomic swap, releasing it a plain
//! store, where a parking mutex needs a compare-exchange for each (to see
//! whether somebody sleeps on it). That is one atomic read-modify-write
//! less per channel operation, the trade crossbeam-channel makes too.
//!
//! Spinning is safe with fibers: the holder never parks while it holds the
//! lock, so a fiber that finds it taken is on another thread than the
//! holder, which is running (or was preempted by the OS; the spinner then
//! yields its thread).
//!
//! Under loom it is loom's mutex, with the same API: loom counts every
//! round of a spinning wait as a new branch and gives up on the models.
//! What the models check is the channel's protocol around the lock; the
//! lock itself is the textbook swap-Acquire, store-Release pair.

#[cfg(not(loom))]
pub(crate) use self::spinning::{SpinGuard, SpinLock};

#[cfg(loom)]
pub(crate) use crate::loom::sync::{Mutex as SpinLock, MutexGuard as SpinGuard};

#[cfg(not(loom))]
mod spinning {
    use std::cell::UnsafeCell;
    use std::ops::{Deref, DerefMut};
    use std::sync::atomic::{AtomicBool, Ordering};

    /// A lock that spins, then yields, until it is free; see the module
    /// doc. `repr(C)`: the flag comes first, beside the start of the value
    /// (a channel puts its hottest fields there).
    #[repr(C)]
    pub(crate) struct SpinLock<T> {
        locked: AtomicBool,
        value: UnsafeCell<T>,
    }

    // SAFETY: the lock hands the value to one holder at a time, as a mutex
    // does; the value moves between threads, hence `T: Send`.
    unsafe impl<T: Send> Send for SpinLock<T> {}
    // SAFETY: as above.
    unsafe impl<T: Send> Sync for SpinLock<T> {}

    /// Holds a [`SpinLock`]; releases it when dropped. `!Send`, like a
    /// mutex guard (the reference makes it so only for `T: !Sync`; the
    /// raw pointer for all).
    pub(crate) struct SpinGuard<'a, T> {
        lock: &'a SpinLock<T>,
        _not_send: std::marker::PhantomData<*const ()>,
    }

    impl<T> SpinLock<T> {
        pub(crate) fn new(value: T) -> SpinLock<T> {
            SpinLock {
                locked: AtomicBool::new(false),
                value: UnsafeCell::new(value),
            }
        }

        /// Takes the lock, spinning (then yielding) while somebody holds
        /// it.
        #[inline]
        pub(crate) fn lock(&self) -> SpinGuard<'_, T> {
            // Acquire: pairs with the Release store in `SpinGuard::drop`,
            // so the last holder's writes are visible.
            if self.locked.swap(true, Ordering::Acquire) {
                self.lock_contended();
            }
            SpinGuard {
                lock: self,
                _not_send: std::marker::PhantomData,
            }
        }

        #[cold]
        #[inline(never)]
        fn lock_contended(&self) {
            let mut round = 0u32;
            loop {
                // Wait with plain loads (no cache-line ping-pong), then try.
                while self.locked.load(Ordering::Relaxed) {
                    if round < 6 {
                        for _ in 0..1u32 << round {
                            std::hint::spin_loop();
                        }
                        round += 1;
                    } else {
                        std::thread::yield_now();
                    }
                }
                if !self.locked.swap(true, Ordering::Acquire) {
                    return;
                }
            }
        }
    }

    impl<T> Drop for SpinGuard<'_, T> {
        #[inline]
        fn drop(&mut self) {
            // Release: publishes the holder's writes to the next holder.
            self.lock.locked.store(false, Ordering::Release);
        }
    }

    impl<T> Deref for SpinGuard<'_, T> {
        type Target = T;
        #[inline]
        fn deref(&self) -> &T {
            // SAFETY: we hold the lock: nobody else touches the value.
            unsafe { &*self.lock.value.get() }
        }
    }

    impl<T> DerefMut for SpinGuard<'_, T> {
        #[inline]
        fn deref_mut(&mut self) -> &mut T {
            // SAFETY: we hold the lock: nobody else touches the value.
            unsafe { &mut *self.lock.value.get() }
        }
    }
}
