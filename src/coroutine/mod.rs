//! Low-level asymmetric stackful coroutines.
//!
//! A [`Coroutine`] runs a closure on its own stack (borrowed from a
//! [`StackPool`]). [`resume`](Coroutine::resume) switches into it; the body
//! switches back with [`Yielder::suspend`] or by returning. This is the
//! building block of weft's fibers; most users want the scheduler instead.
//!
//! ```
//! use weft::coroutine::{Coroutine, CoroutineResult, Yielder};
//!
//! let mut counter = Coroutine::new(|y: &Yielder<(), u32>, ()| {
//!     for i in 0..3 {
//!         y.suspend(i);
//!     }
//!     "done"
//! });
//! assert_eq!(counter.resume(()), CoroutineResult::Yield(0));
//! assert_eq!(counter.resume(()), CoroutineResult::Yield(1));
//! assert_eq!(counter.resume(()), CoroutineResult::Yield(2));
//! assert_eq!(counter.resume(()), CoroutineResult::Return("done"));
//! assert!(counter.is_done());
//! ```
//!
//! # Panics and drops
//!
//! A panic in the body is caught at the coroutine's entry (it never unwinds
//! through the context switch) and re-raised from `resume` with the same
//! payload, as `std::thread::JoinHandle::join` hands it over. Dropping a
//! suspended coroutine unwinds its stack, so every destructor on it runs;
//! see [`Yielder::suspend`] for what that means for a body that uses
//! `catch_unwind`. The stack goes back to its pool as soon as the body ends.
//!
//! # Threads
//!
//! `Coroutine` is `!Send`: values on its stack (thread-local references,
//! `MutexGuard`s, `Rc`s) would cross threads with it.
//!
//! ```compile_fail
//! use weft::coroutine::{Coroutine, Yielder};
//! let c = Coroutine::new(|_: &Yielder<(), ()>, ()| {});
//! std::thread::spawn(move || drop(c));
//! ```

mod entry;
mod raw;
mod sanitizer;
mod yielder;

use std::cell::Cell;
use std::fmt;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};

pub(crate) use self::raw::RawCoroutine;
pub use self::yielder::Yielder;
use crate::stack_pool::{self, Stack, StackPool};

/// Whether a panic payload is the one a dropped coroutine unwinds its
/// fiber with (so a body wrapper can tell cancellation from a panic).
pub(crate) fn is_forced_unwind(payload: &(dyn std::any::Any + Send)) -> bool {
    payload.is::<entry::ForcedUnwind>()
}

/// What a [`Coroutine::resume`] came back with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CoroutineResult<Yield, Return> {
    /// The body suspended with this value; it can be resumed again.
    Yield(Yield),
    /// The body returned this value; the coroutine is done.
    Return(Return),
}

impl<Yield, Return> CoroutineResult<Yield, Return> {
    /// The yielded value, if the body suspended.
    pub fn as_yield(self) -> Option<Yield> {
        match self {
            CoroutineResult::Yield(value) => Some(value),
            CoroutineResult::Return(_) => None,
        }
    }

    /// The returned value, if the body finished.
    pub fn as_return(self) -> Option<Return> {
        match self {
            CoroutineResult::Yield(_) => None,
            CoroutineResult::Return(value) => Some(value),
        }
    }
}

/// A stackful coroutine taking `Input`s, yielding `Yield`s and finally
/// returning a `Return`.
///
/// See the [module documentation](self) for an example and for what
/// happens on panic and drop.
pub struct Coroutine<Input, Yield, Return> {
    /// The stack, the switch state and the closure type's operations.
    /// Declared first, so it is dropped (and its stack's owner record
    /// cleared) before `name`.
    raw: RawCoroutine<Input, Yield, Return>,
    /// Reported by the stack-overflow handler; see [`Coroutine::id`].
    id: u64,
    /// Reported by the stack-overflow handler. Boxed so that the pointer
    /// the stack header keeps stays valid when the coroutine moves.
    name: Option<Box<str>>,
}

impl<Input, Yield, Return> Coroutine<Input, Yield, Return> {
    /// Creates a coroutine running `body` on a stack from
    /// [`StackPool::global`]. The body starts at the first
    /// [`resume`](Self::resume), with that resume's input.
    ///
    /// # Panics
    ///
    /// If no stack can be had (the pool's budget is exhausted, the kernel
    /// refuses memory or mappings). [`Builder::build`] returns that error
    /// instead.
    pub fn new<F>(body: F) -> Self
    where
        F: FnOnce(&Yielder<Input, Yield>, Input) -> Return + 'static,
    {
        match Builder::new().build(body) {
            Ok(coroutine) => coroutine,
            Err(err) => panic!("weft: cannot create a coroutine: {err}"),
        }
    }

    /// Creates a coroutine on the given stack.
    ///
    /// # Errors
    ///
    /// `InvalidInput` if `body` is so large that less than 8 KiB of the
    /// stack would be left to run it: box large captures.
    pub fn with_stack<F>(stack: Stack, body: F) -> io::Result<Self>
    where
        F: FnOnce(&Yielder<Input, Yield>, Input) -> Return + 'static,
    {
        Self::on_stack(stack, None, body)
    }

    fn on_stack<F>(stack: Stack, name: Option<Box<str>>, body: F) -> io::Result<Self>
    where
        F: FnOnce(&Yielder<Input, Yield>, Input) -> Return + 'static,
    {
        stack_pool::ensure_thread_altstack();
        let id = next_fiber_id();
        // SAFETY: the name is boxed in the coroutine, whose `raw` (dropped
        // first) clears the stack's owner before the box is dropped.
        let raw = unsafe { RawCoroutine::with_owner(stack, id, name.as_deref(), body)? };
        Ok(Coroutine { raw, id, name })
    }

    /// Switches into the coroutine with `input` and runs it until it
    /// suspends or returns.
    ///
    /// The first resume starts the body with `input` as its second
    /// argument; later ones make the pending [`Yielder::suspend`] return
    /// `input`.
    ///
    /// # Panics
    ///
    /// If the body panics, with the body's payload (the coroutine is done
    /// and its stack released first). If the coroutine is already done.
    #[inline]
    pub fn resume(&mut self, input: Input) -> CoroutineResult<Yield, Return> {
        self.raw.resume(input)
    }

    /// Whether the body has returned (or panicked): `resume` may not be
    /// called again.
    pub fn is_done(&self) -> bool {
        self.raw.is_done()
    }

    /// Whether the body has been entered (the first `resume` happened).
    pub fn is_started(&self) -> bool {
        self.raw.is_started()
    }

    /// This coroutine's id, unique in the process. The stack-overflow
    /// report names a coroutine by it when it has no name.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The name given with [`Builder::name`].
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The stack the coroutine runs on, until its body ends.
    pub fn stack(&self) -> Option<&Stack> {
        self.raw.stack()
    }
}

impl<Input, Yield, Return> fmt::Debug for Coroutine<Input, Yield, Return> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match (self.is_started(), self.is_done()) {
            (_, true) => "done",
            (false, false) => "unstarted",
            (true, false) => "suspended",
        };
        f.debug_struct("Coroutine")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("state", &state)
            .finish()
    }
}

/// Configures a [`Coroutine`] before it is created: its name (used in
/// stack-overflow reports) and the pool its stack comes from.
///
/// ```
/// use weft::coroutine::{Builder, CoroutineResult, Yielder};
/// use weft::stack_pool::StackPool;
///
/// let pool = StackPool::builder().stack_size(64 * 1024).build()?;
/// let mut c = Builder::new()
///     .name("parser")
///     .pool(&pool)
///     .build(|_: &Yielder<(), ()>, ()| 7)?;
/// assert_eq!(c.name(), Some("parser"));
/// assert_eq!(c.resume(()), CoroutineResult::Return(7));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Default)]
pub struct Builder {
    name: Option<Box<str>>,
    pool: Option<StackPool>,
}

impl Builder {
    /// A builder with no name that takes stacks from [`StackPool::global`].
    pub fn new() -> Self {
        Builder::default()
    }

    /// Names the coroutine; a stack overflow report prints this name.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into().into_boxed_str());
        self
    }

    /// Takes the stack from `pool` instead of the global pool.
    pub fn pool(mut self, pool: &StackPool) -> Self {
        self.pool = Some(pool.clone());
        self
    }

    /// Creates the coroutine.
    ///
    /// # Errors
    ///
    /// The stack pool's error (as `io::Error`) if no stack can be had, or
    /// `InvalidInput` if the closure is too large for the stack.
    pub fn build<F, Input, Yield, Return>(
        self,
        body: F,
    ) -> io::Result<Coroutine<Input, Yield, Return>>
    where
        F: FnOnce(&Yielder<Input, Yield>, Input) -> Return + 'static,
    {
        let pool = self.pool.as_ref().unwrap_or_else(|| StackPool::global());
        let stack = pool.get()?;
        Coroutine::on_stack(stack, self.name, body)
    }
}

/// Hands out process-unique fiber ids, starting at 1. Each thread takes
/// blocks of ids from a shared counter, so creating a fiber does not bounce
/// a cache line between workers.
pub(crate) fn next_fiber_id() -> u64 {
    const BLOCK: u64 = 1024;
    static NEXT_BLOCK: AtomicU64 = AtomicU64::new(1);
    thread_local! {
        static RANGE: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
    }
    RANGE.with(|range| {
        let (mut next, mut end) = range.get();
        if next == end {
            next = NEXT_BLOCK.fetch_add(BLOCK, Ordering::Relaxed);
            end = next + BLOCK;
        }
        range.set((next + 1, end));
        next
    })
}

#[cfg(test)]
mod tests;
