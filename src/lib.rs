//! weft: an M:N green-thread runtime for Rust with an actor layer.
//!
//! Worker threads run *fibers*: stackful coroutines whose contexts are
//! switched by a few lines of weft's own assembly. A fiber blocks the way a
//! thread does, but blocking only parks the fiber.
//!
//! The map of the layers is `DESIGN.md`; this crate grows bottom-up:
//! `stack_pool` (guard-paged, pooled stacks), `arch` (the context switch)
//! and `coroutine` (the low-level asymmetric coroutine) come first.

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
