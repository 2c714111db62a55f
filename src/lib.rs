//! weft: an M:N green-thread runtime for Rust with an actor layer.
//!
//! Worker threads run *fibers*: stackful coroutines whose contexts are
//! switched by a few lines of weft's own assembly. A fiber blocks the way a
//! thread does, but blocking only parks the fiber.
//!
//! ```
//! use weft::chan;
//!
//! let total = weft::run(|| {
//!     let (tx, rx) = chan::bounded(16);
//!     for i in 0..4u64 {
//!         let tx = tx.clone();
//!         weft::spawn(move || tx.send(i * 10).unwrap());
//!     }
//!     drop(tx);
//!     rx.iter().sum::<u64>()
//! });
//! assert_eq!(total, 60);
//! ```
//!
//! The layers, bottom-up (the map is `DESIGN.md`; the README has the
//! measurements):
//!
//! - [`stack_pool`]: guard-paged, pooled, recycled stacks;
//! - `arch` and [`coroutine`]: the context switch and the low-level
//!   asymmetric coroutine;
//! - [`Runtime`], [`spawn`], [`fiber`]: the M:N scheduler (work-stealing
//!   workers, park/unpark, timers, [`blocking`]);
//! - [`sync`], [`chan`], [`select!`], [`block_on`]: fiber-aware locks,
//!   channels and the bridge to `Future`s;
//! - [`net`]: std-like TCP, UDP and Unix sockets on the runtime's reactor;
//! - [`actor`]: actors with mailboxes, links, monitors and supervisors.

#![deny(unsafe_op_in_unsafe_fn, unused_must_use)]
#![warn(
    missing_docs,
    missing_debug_implementations,
    unreachable_pub,
    rust_2018_idioms
)]
#![cfg_attr(
    loom,
    allow(
        dead_code,
        unreachable_pub,
        reason = "loom builds only the modelled protocols"
    )
)]

#[cfg(not(all(target_os = "linux", target_arch = "x86_64")))]
compile_error!(
    "weft supports Linux on x86_64 only for now; see README.md, \"Platforms\", for what another target needs"
);

pub mod actor;
mod arch;
pub mod coroutine;
mod error;
pub mod fiber;
mod loom;
pub mod net;
pub mod runtime;
mod sched;
pub mod stack_pool;
pub mod sync;

pub use error::JoinError;
pub use fiber::current::{sleep, yield_now};
pub use fiber::{JoinHandle, spawn};
pub use runtime::{Runtime, run};
pub use sched::blocking::blocking;
pub use sync::block_on;
#[doc(inline)]
pub use sync::chan;
