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
mod yielder;

use std::cell::Cell;
use std::fmt;
use std::io;
use std::marker::PhantomData;
use std::mem::{self, MaybeUninit};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};

use self::entry::{CONTINUE, Finish, Slot, UNWIND, drop_unstarted, entry_fn, offer, take};
pub use self::yielder::Yielder;

/// Whether a panic payload is the one a dropped coroutine unwinds its
/// fiber with (so a body wrapper can tell cancellation from a panic).
pub(crate) fn is_forced_unwind(payload: &(dyn std::any::Any + Send)) -> bool {
    payload.is::<entry::ForcedUnwind>()
}
use crate::arch::{self, StackPointer};
use crate::stack_pool::{self, Stack, StackPool};

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

/// Makes a type `!Send` and `!Sync` inside a `PhantomData`.
type NotSend = *mut ();

/// The value types of a coroutine, inside a `PhantomData`: it takes
/// `Input`s and produces `Yield`s and a `Return`.
type ValueTypes<Input, Yield, Return> = fn(Input) -> CoroutineResult<Yield, Return>;

/// Bytes of stack a closure must leave free below itself: its slot is on
/// the coroutine's own stack, and the body needs room to run.
const MIN_FREE_STACK: usize = 8 * 1024;

/// A stackful coroutine taking `Input`s, yielding `Yield`s and finally
/// returning a `Return`.
///
/// See the [module documentation](self) for an example and for what
/// happens on panic and drop.
pub struct Coroutine<Input, Yield, Return> {
    /// The stack; `None` once the body has ended (the stack went back to
    /// its pool then).
    stack: Option<Stack>,
    /// `stack.base()`, kept at hand for the switch.
    base: NonNull<u8>,
    /// Where the next resume enters; `None` once the body has ended.
    sp: Option<StackPointer>,
    /// Drops the closure in place, if the fiber never started (after the
    /// first resume, the fiber owns the closure).
    drop_closure: unsafe fn(NonNull<u8>),
    /// Where the body's outcome is left on the stack when it ends (the
    /// slot's address depends on the closure type, erased here).
    finish: fn(NonNull<u8>) -> *mut Finish<Return>,
    /// Reported by the stack-overflow handler; see [`Coroutine::id`].
    id: u64,
    /// Reported by the stack-overflow handler. Boxed so that the pointer
    /// the stack header keeps stays valid when the coroutine moves.
    name: Option<Box<str>>,
    /// `!Send`/`!Sync`, and the coroutine's value types.
    _marker: PhantomData<(NotSend, ValueTypes<Input, Yield, Return>)>,
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
        // SAFETY: the name is boxed in the coroutine, which clears the owner
        // (`release_stack`) before the box is dropped.
        let mut coroutine = unsafe { Self::with_owner(stack, id, name.as_deref(), body)? };
        coroutine.name = name;
        Ok(coroutine)
    }

    /// A coroutine that the overflow handler reports as `id` / `name`,
    /// whose name is owned elsewhere (the scheduler's task).
    ///
    /// # Safety
    ///
    /// `name`'s bytes stay valid until the coroutine is dropped or its body
    /// has returned.
    pub(crate) unsafe fn with_owner<F>(
        stack: Stack,
        id: u64,
        name: Option<&str>,
        body: F,
    ) -> io::Result<Self>
    where
        F: FnOnce(&Yielder<Input, Yield>, Input) -> Return + 'static,
    {
        let base = stack.base();
        let slot = Slot::<F, Return>::at(base);
        let used = base.as_ptr() as usize - slot.as_ptr() as usize;
        let usable = base.as_ptr() as usize - stack.limit().as_ptr() as usize;
        if used.saturating_add(MIN_FREE_STACK) > usable {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "a coroutine's closure of {} bytes leaves less than {} KiB of its {} KiB stack: \
                     box the large captures or use a larger stack",
                    mem::size_of::<F>(),
                    MIN_FREE_STACK / 1024,
                    usable / 1024
                ),
            ));
        }
        // SAFETY: the caller keeps the name valid until the stack is
        // released (`release_stack` clears the owner first).
        unsafe { stack.set_owner(id, name) };
        // SAFETY: the slot lies below the root and above `limit` with
        // MIN_FREE_STACK to spare (checked above), is aligned for F, and the
        // stack is ours alone.
        unsafe { Slot::<F, Return>::closure(base).write(body) };
        // SAFETY: `base` and the slot are 16-byte aligned (stack pool
        // contract, Slot::at), the slot is below `base - ROOT_SIZE`, and the
        // stack is ours. Fiber frames start below the slot.
        let sp = unsafe { arch::init(base, slot, entry_fn::<F, Input, Yield, Return>()) };
        Ok(Coroutine {
            stack: Some(stack),
            base,
            sp: Some(sp),
            drop_closure: drop_unstarted::<F, Return>,
            finish: Slot::<F, Return>::finish,
            id,
            name: None,
            _marker: PhantomData,
        })
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
        let Some(sp) = self.sp else {
            panic!("weft: Coroutine::resume called on a coroutine whose body has already returned");
        };
        let mut input = MaybeUninit::new(input);
        // SAFETY: `sp` was produced by `init` or the last resume of this
        // stack (it is `Some` only while we hold the stack, and is replaced
        // below before `resume` can run again: `&mut self` rules out a
        // nested call). The fiber is not running, and we own the stack until
        // `release_stack`. The fiber moves `input` out before it switches
        // back.
        let (word, next) = unsafe { arch::resume(offer(&mut input), CONTINUE, sp, self.base) };
        self.sp = next;
        if next.is_some() {
            // SAFETY: a suspending fiber offers its value; it cannot run
            // again before we have moved it out.
            return CoroutineResult::Yield(unsafe { take::<Yield>(word) });
        }
        self.finish()
    }

    /// The end of the body, seen from the last `resume`: out of line, so
    /// that the inlined resume stays small.
    #[inline(never)]
    fn finish(&mut self) -> CoroutineResult<Yield, Return> {
        match self.take_finish() {
            Finish::Return(value) => CoroutineResult::Return(value),
            Finish::Panic(payload) => std::panic::resume_unwind(payload),
            Finish::Unwound => {
                unreachable!("weft: a fiber unwound without being asked to")
            }
        }
    }

    /// Moves the outcome out of the slot of a fiber that has just exited,
    /// then gives the stack back to its pool.
    fn take_finish(&mut self) -> Finish<Return> {
        // SAFETY: the fiber exited (resume returned no stack pointer), and
        // its entry wrote the outcome into the slot before exiting; we read
        // it once, before the stack can be reused.
        let finish = unsafe { (self.finish)(self.base).read() };
        self.release_stack();
        finish
    }

    /// Whether the body has returned (or panicked): `resume` may not be
    /// called again.
    pub fn is_done(&self) -> bool {
        self.sp.is_none()
    }

    /// Whether the body has been entered (the first `resume` happened).
    pub fn is_started(&self) -> bool {
        match self.sp {
            // SAFETY: while `sp` is set we hold the stack `init` prepared,
            // and `&self` means the fiber is not running.
            Some(_) => unsafe { arch::entered(self.base) },
            None => true,
        }
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
        self.stack.as_ref()
    }

    /// Gives the stack back to its pool.
    fn release_stack(&mut self) {
        if let Some(stack) = self.stack.take() {
            stack.clear_owner();
        }
    }
}

impl<Input, Yield, Return> Drop for Coroutine<Input, Yield, Return> {
    fn drop(&mut self) {
        let Some(sp) = self.sp.take() else {
            return;
        };
        if !self.is_started() {
            // SAFETY: never resumed, so the closure is still in its slot and
            // nobody else will touch it.
            unsafe { (self.drop_closure)(self.base) };
            self.release_stack();
            return;
        }
        // Ask the fiber to unwind. A body that catches the unwind and
        // suspends again is asked again (its value is dropped), until it
        // exits.
        let mut sp = sp;
        loop {
            // SAFETY: as in `resume`: `sp` is the suspended fiber's, used once.
            let (word, next) = unsafe { arch::resume(arch::Word::uninit(), UNWIND, sp, self.base) };
            match next {
                Some(next) => {
                    // SAFETY: a suspending fiber offers its value, which
                    // nobody has taken; we drop it.
                    drop(unsafe { take::<Yield>(word) });
                    sp = next;
                }
                None => break,
            }
        }
        if let Finish::Panic(payload) = self.take_finish() {
            // The body caught our unwind and then panicked with its own
            // payload: report it like a panic from `resume`, unless this
            // thread is already unwinding (a second panic would abort).
            if std::thread::panicking() {
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(payload)));
            } else {
                std::panic::resume_unwind(payload);
            }
        }
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
