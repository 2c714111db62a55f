//! The concurrency primitives of the scheduler, swappable for loom's.
//!
//! `sched/` and `fiber/` take `Mutex`, `Condvar` and atomics from here for
//! their protocols, never from `std` or `parking_lot` directly. A
//! normal build gets [`std`](self) versions (parking_lot locks, std atomics);
//! a `--cfg loom` build gets loom's instrumented ones, so the loom models in
//! `src/sched/tests/` explore every interleaving of the real protocol code.
//!
//! Both sides offer the same API: `Mutex::lock` returns the guard (no
//! poisoning), and `Condvar::wait`/`wait_timeout` take the guard by `&mut`;
//! `sync::Arc` (loom's tracks leaks) and `cell::UnsafeCell` with loom's
//! `with`/`with_mut` closures (loom's checks every access for races), used
//! by `sync/` for the values its channels hand over. Models that need
//! loom's threads use `::loom` directly.

#[cfg(not(loom))]
mod std;
#[cfg(not(loom))]
pub(crate) use self::std::*;

#[cfg(loom)]
mod mocked;
#[cfg(loom)]
pub(crate) mod mutation;
#[cfg(loom)]
pub(crate) use self::mocked::*;
