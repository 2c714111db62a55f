//! Fiber-aware synchronization: [`Mutex`], [`Condvar`], [`RwLock`],
//! [`Semaphore`], [`WaitGroup`], [`Barrier`]; channels are in
//! [`weft::chan`](crate::chan), and [`block_on`](crate::block_on) waits for
//! a `Future`.
//!
//! Everything here parks the *fiber* that waits, never its worker thread:
//! the worker runs other fibers meanwhile. Everything also works from a
//! plain thread (it blocks that thread), so fibers and threads can share
//! one lock or channel. Do not use `std::sync::Mutex` across a blocking
//! point in a fiber: see [the fiber docs](crate::fiber).
//!
//! ```
//! use std::sync::Arc;
//! use weft::sync::{Mutex, WaitGroup};
//!
//! let log = weft::run(|| {
//!     let log = Arc::new(Mutex::new(Vec::new()));
//!     let wg = WaitGroup::new();
//!     for i in 0..3 {
//!         let (log, wg) = (log.clone(), wg.clone());
//!         weft::spawn(move || {
//!             log.lock().push(i);
//!             drop(wg);
//!         });
//!     }
//!     wg.wait();
//!     let mut log = log.lock().clone();
//!     log.sort();
//!     log
//! });
//! assert_eq!(log, [0, 1, 2]);
//! ```
//!
//! # Decisions
//!
//! **Fairness: hand-off, first come first served.** When a [`Mutex`] is
//! unlocked with fibers waiting, the lock goes straight to the one that
//! has waited longest; a newcomer cannot barge in ahead of it. The same
//! holds for [`RwLock`] (a queued writer blocks later readers; readers
//! queued together are admitted together), [`Semaphore`] (a large request
//! at the front is not overtaken), [`Condvar`] notification order, and the
//! senders and receivers waiting on a channel. This is tokio's choice:
//! nobody starves, at the price of throughput under heavy contention (the
//! lock waits for its next owner to be scheduled; barging would let a
//! running fiber take it at once). An uncontended lock or unlock is one
//! compare-exchange.
//!
//! **No poisoning.** A fiber that panics while holding a guard drops it
//! while unwinding: the lock is released, and the next holder sees the
//! value as the panicking fiber left it. There is no `PoisonError` to
//! unwrap: weft's users are tokio's and Go's, and neither poisons; code
//! that must know whether an update completed should make it atomic (build
//! the new value, then swap it in). The panic itself reaches whoever joins
//! the fiber, as [`JoinError::is_panic`](crate::JoinError::is_panic).
//!
//! **Runtime shutdown.** Dropping the runtime unwinds every fiber parked
//! here, wherever it waits (see [`Runtime`](crate::Runtime)): a fiber
//! waiting for a lock leaves the queue (if the lock was handed to it in the
//! meantime, it passes it on), a fiber in a channel operation drops the
//! value it was sending or was just handed. Its destructors run on the way
//! out, and in them every park returns at once, so an operation that
//! would have to wait cannot: channel operations and
//! [`Semaphore::acquire`] then return an error (as if disconnected or
//! closed; [`AcquireError::Cancelled`]); the operations that have no error
//! to return (`Mutex::lock`, `RwLock::read`/`write`, `Condvar::wait`,
//! `WaitGroup::wait`, `Barrier::wait`, `block_on` of a pending future)
//! panic with a message saying so, which inside a destructor aborts the
//! process: a hang would be worse. What can complete at once (an
//! uncontended lock, a value already queued) still does. Destructors that
//! may run at shutdown should use the `try_` variants.
//!
//! **Async.** [`block_on`](crate::block_on) lets a fiber wait for any
//! future; [`JoinHandle`](crate::JoinHandle), channel receives
//! ([`Receiver::recv_async`](crate::chan::Receiver::recv_async)) and
//! [`oneshot`](crate::chan::oneshot()) receivers are futures, so async
//! tasks can wait for fibers.

mod barrier;
mod block_on;
#[doc(hidden)]
pub mod chan;
mod condvar;
mod mutex;
mod rwlock;
mod semaphore;
mod spin;
mod wait_group;
pub(crate) mod waiter;

#[cfg(any(test, loom))]
pub(crate) mod tests;

pub use self::barrier::{Barrier, BarrierWaitResult};
pub use self::block_on::block_on;
pub use self::condvar::{Condvar, WaitTimeoutResult};
pub use self::mutex::{Mutex, MutexGuard};
pub use self::rwlock::{RwLock, RwLockReadGuard, RwLockWriteGuard};
pub use self::semaphore::{AcquireError, Semaphore, SemaphorePermit, TryAcquireError};
pub use self::wait_group::WaitGroup;
