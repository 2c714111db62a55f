//! The core of a coroutine: its stack and where it resumes, 24 bytes (the
//! operations of its closure type are on the stack: `entry::type_word`).
//! [`Coroutine`] wraps it with an id and a name; the scheduler keeps one
//! inline in every task.
//!
//! [`Coroutine`]: super::Coroutine

use std::io;
use std::marker::PhantomData;
use std::mem::{self, MaybeUninit};
use std::ptr::NonNull;

use super::entry::{
    CONTINUE, Finish, Slot, UNWIND, drop_unstarted, entry_fn, forced_unwind, offer, take, type_word,
};
use super::sanitizer::{self, Bounds};
use super::{CoroutineResult, Yielder};
use crate::arch::{self, StackPointer, Word};
use crate::stack_pool::Stack;

/// Bytes of stack a closure must leave free below itself: its slot is on
/// the coroutine's own stack, and the body needs room to run.
const MIN_FREE_STACK: usize = 8 * 1024;

/// The operations that depend on the closure's type, one static table per
/// closure type. Type-erased (no type parameter), so that it can be
/// `'static` whatever the coroutine's value types.
struct Vtable {
    /// Drops the closure in place, if the fiber never started (after the
    /// first resume, the fiber owns the closure).
    drop_closure: unsafe fn(NonNull<u8>),
    /// Where the body's outcome (a `Finish<Return>`) is left on the stack
    /// when it ends.
    finish: fn(NonNull<u8>) -> NonNull<u8>,
}

/// The finish slot of closure type `F`, as `Vtable::finish` wants it.
fn finish_slot<F, R>(base: NonNull<u8>) -> NonNull<u8> {
    Slot::<F, R>::at(base)
}

/// Makes a type `!Send` and `!Sync` inside a `PhantomData`.
type NotSend = *mut ();

/// The value types of a coroutine, inside a `PhantomData`: it takes
/// `Input`s and produces `Yield`s and a `Return`.
type ValueTypes<Input, Yield, Return> = fn(Input) -> CoroutineResult<Yield, Return>;

/// A coroutine without identity; see the module doc.
pub(crate) struct RawCoroutine<Input, Yield, Return> {
    /// The stack; `None` once the body has ended (it went back to its pool).
    stack: Option<Stack>,
    /// Where the next resume enters; `Some` exactly while `stack` is.
    sp: Option<StackPointer>,
    /// `!Send`/`!Sync`, and the coroutine's value types.
    _marker: PhantomData<(NotSend, ValueTypes<Input, Yield, Return>)>,
}

impl<Input, Yield, Return> RawCoroutine<Input, Yield, Return> {
    /// A coroutine running `body` on `stack`, which the overflow handler
    /// reports as `id` / `name`.
    ///
    /// # Errors
    ///
    /// `InvalidInput` if `body` is so large that less than 8 KiB of the
    /// stack would be left to run it.
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
                    "a coroutine's closure of {} bytes leaves less than {} KiB of its {} KiB stack: \\
                     box the large captures or use a larger stack",
                    mem::size_of::<F>(),
                    MIN_FREE_STACK / 1024,
                    usable / 1024
                ),
            ));
        }
        // SAFETY: the caller keeps the name valid until the stack is
        // released (`release_stack` drops it, which clears the owner).
        unsafe { stack.set_owner(id, name) };
        // SAFETY: the slot lies below the root and above `limit` with
        // MIN_FREE_STACK to spare (checked above), is aligned for F, and the
        // stack is ours alone.
        unsafe { Slot::<F, Return>::closure(base).write(body) };
        let vtable: &'static Vtable = const {
            &Vtable {
                drop_closure: drop_unstarted::<F, Return>,
                finish: finish_slot::<F, Return>,
            }
        };
        // SAFETY: the type word lies between the root and the slot, inside
        // the stack we own, aligned (`type_word`); nothing else writes it.
        unsafe { type_word(base).cast::<&'static Vtable>().write(vtable) };
        // SAFETY: `base` and the slot are 16-byte aligned (stack pool
        // contract, Slot::at), the slot is below `base - ROOT_SIZE`, and the
        // stack is ours. Fiber frames start below the slot.
        let sp = unsafe { arch::init(base, slot, entry_fn::<F, Input, Yield, Return>()) };
        Ok(RawCoroutine {
            stack: Some(stack),
            sp: Some(sp),
            _marker: PhantomData,
        })
    }

    /// A coroutine with no body and no stack, like one whose body has
    /// returned: what a task holds before its fiber starts and after it
    /// ends (an `Option` around a coroutine would cost a word: the
    /// coroutine's own fields use up its niches).
    pub(crate) const fn empty() -> Self {
        RawCoroutine {
            stack: None,
            sp: None,
            _marker: PhantomData,
        }
    }

    /// Whether the coroutine holds a stack: it has a body that has not
    /// returned (or has just returned, until `resume` reports it).
    #[inline]
    pub(crate) fn has_stack(&self) -> bool {
        self.stack.is_some()
    }

    /// The stack, while the coroutine has one.
    #[inline]
    fn live_stack(&self) -> &Stack {
        self.stack
            .as_ref()
            .expect("a coroutine that can run has its stack")
    }

    /// The operations of the closure type, from the stack's type word.
    #[inline]
    fn vtable(&self) -> &'static Vtable {
        // SAFETY: `with_owner` wrote the type word of the stack we still
        // hold, and nothing writes it after.
        unsafe { type_word(self.base()).cast::<&'static Vtable>().read() }
    }

    /// The stack's base while the coroutine has a stack.
    #[inline]
    fn base(&self) -> NonNull<u8> {
        self.live_stack().base()
    }

    /// See [`Coroutine::resume`](super::Coroutine::resume).
    #[inline]
    pub(crate) fn resume(&mut self, input: Input) -> CoroutineResult<Yield, Return> {
        let Some(sp) = self.sp else {
            panic!("weft: Coroutine::resume called on a coroutine whose body has already returned");
        };
        let stack = self.live_stack();
        let (base, bounds) = (stack.base(), Bounds::of(stack));
        let mut input = MaybeUninit::new(input);
        // SAFETY: the resume below is the next thing we do, and we announce
        // our return right after it.
        let saved = unsafe { sanitizer::resumer_leaves(bounds) };
        // SAFETY: `sp` was produced by `init` or the last resume of this
        // stack (it is `Some` only while we hold the stack, and is replaced
        // below before `resume` can run again: `&mut self` rules out a
        // nested call). The fiber is not running, and we own the stack until
        // `release_stack`. The fiber moves `input` out before it switches
        // back.
        let (word, next) = unsafe { arch::resume(offer(&mut input), CONTINUE, sp, base) };
        // SAFETY: `saved` is this resume's; the fiber announced its switch
        // back (suspend or exit).
        unsafe { sanitizer::resumer_returns(saved) };
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
        let finish = unsafe {
            (self.vtable().finish)(self.base())
                .cast::<Finish<Return>>()
                .read()
        };
        self.release_stack();
        finish
    }

    pub(crate) fn is_done(&self) -> bool {
        self.sp.is_none()
    }

    pub(crate) fn is_started(&self) -> bool {
        match self.sp {
            // SAFETY: while `sp` is set we hold the stack `init` prepared,
            // and `&self` means the fiber is not running.
            Some(_) => unsafe { arch::entered(self.base()) },
            None => true,
        }
    }

    pub(crate) fn stack(&self) -> Option<&Stack> {
        self.stack.as_ref()
    }

    /// Gives the stack back to its pool (dropping a `Stack` clears the
    /// owner `with_owner` recorded, then returns it).
    fn release_stack(&mut self) {
        drop(self.stack.take());
    }
}

/// How the thread came back to a resumer that used [`RawCoroutine::enter`]:
/// what the coroutine that came back handed over. Only that coroutine's
/// [`land`](RawCoroutine::land) may take it.
#[must_use]
pub(crate) struct Landing {
    word: Word,
    next: Option<StackPointer>,
}

/// Coroutines that take no input may hand the thread to one another with
/// [`switch`](Self::switch); their resumer then uses [`enter`](Self::enter)
/// and [`land`](Self::land) instead of `resume`, because the coroutine that
/// comes back is not necessarily the one it entered.
impl<Yield, Return> RawCoroutine<(), Yield, Return> {
    /// The first half of a resume: enters `this`, and returns when some
    /// coroutine entered from here (`this`, or one it switched to, and so
    /// on) suspends or exits. The caller works out which one (the
    /// scheduler tracks it) and passes the landing to its `land`.
    ///
    /// # Safety
    ///
    /// `this` is valid, holds its stack and is not running; no reference to
    /// it is live across the call (a coroutine that switches away writes
    /// its own saved stack pointer). The same goes for every coroutine
    /// switched to from here.
    #[inline]
    pub(crate) unsafe fn enter(this: *mut Self) -> Landing {
        // SAFETY: `this` is valid and not running (the caller's contract);
        // these reads end before the switch.
        let (sp, base, bounds) = unsafe {
            let Some(sp) = (*this).sp else {
                panic!("weft: a coroutine whose body has returned was entered");
            };
            let stack = (*this).live_stack();
            (sp, stack.base(), Bounds::of(stack))
        };
        let mut input = MaybeUninit::new(());
        // SAFETY: the resume below is the next thing we do, and we announce
        // our return right after it.
        let saved = unsafe { sanitizer::resumer_leaves(bounds) };
        // SAFETY: as in `resume`: `sp` is the suspended coroutine's, used
        // once (whoever lands next replaces it), and its stack is ours.
        let (word, next) = unsafe { arch::resume(offer(&mut input), CONTINUE, sp, base) };
        // SAFETY: `saved` is this resume's; whichever coroutine came back
        // announced its switch to us (suspend or exit).
        unsafe { sanitizer::resumer_returns(saved) };
        Landing { word, next }
    }

    /// Suspends `this` from inside its body, back to whoever resumed it,
    /// as its [`Yielder::suspend`] does with `value`: for a caller that
    /// does not have the yielder at hand (a task's header keeps no pointer
    /// to it; the yielder is only the stack base, which `this` knows).
    ///
    /// # Safety
    ///
    /// The caller runs on `this`'s stack, inside its body, entered through
    /// `enter` (or a `switch`), and no reference to `this` is live across
    /// the call.
    #[inline]
    pub(crate) unsafe fn suspend(this: *const Self, value: Yield) {
        // SAFETY: `this` is valid and holds its stack while its body runs;
        // the reference to the stack ends before the switch.
        let base = unsafe { (*this).base() };
        Yielder::<(), Yield>::new(base).suspend(value);
    }

    /// The second half of a resume: `self` is the coroutine that came back
    /// to the resumer with `landing`.
    ///
    /// # Safety
    ///
    /// `landing` came from the `enter` that this coroutine (and no other)
    /// came back to.
    #[inline]
    pub(crate) unsafe fn land(&mut self, landing: Landing) -> CoroutineResult<Yield, Return> {
        self.sp = landing.next;
        if landing.next.is_some() {
            // SAFETY: a suspending coroutine offers its value; it cannot
            // run again before we have moved it out.
            return CoroutineResult::Yield(unsafe { take::<Yield>(landing.word) });
        }
        self.finish()
    }

    /// Asks the cache for the stack lines a resume or switch into this
    /// suspended coroutine touches first (see [`arch::prefetch`]). Does
    /// nothing for one whose body has returned.
    #[inline]
    pub(crate) fn prefetch(&self) {
        if let (Some(sp), Some(stack)) = (self.sp, &self.stack) {
            arch::prefetch(sp, stack.base());
        }
    }

    /// From inside `this`, which is running, hands the thread straight to
    /// the suspended coroutine `to`, as if this coroutine's resumer had
    /// resumed it. Returns when something enters `this` again (a resume or
    /// another switch). A drop that unwinds `this` meanwhile unwinds from
    /// here, as from `Yielder::suspend`.
    ///
    /// # Safety
    ///
    /// 1. The caller runs on `this`'s stack, inside its body, entered
    ///    through `enter` (or a `switch`), and no reference to `this` is
    ///    live across the call.
    /// 2. `to` is valid, not running, has started (it is suspended in a
    ///    `suspend` or `switch`), and is not `this`; no reference to it is
    ///    live across the call.
    /// 3. The resumer learns that `to` runs now before `to` can come back
    ///    to it (it must land on `to`).
    #[inline(always)]
    pub(crate) unsafe fn switch(this: *mut Self, to: *const Self) {
        // SAFETY: facts 1 and 2: both are valid, neither is borrowed
        // elsewhere, and these reads end before the switch.
        let (base, save_sp, to_sp, to_base, to_bounds) = unsafe {
            let Some(to_sp) = (*to).sp else {
                panic!("weft: switched to a coroutine whose body has returned");
            };
            let base = (*this).base();
            let save_sp = (&raw mut (*this).sp).cast::<usize>();
            let to_stack = (*to).live_stack();
            (base, save_sp, to_sp, to_stack.base(), Bounds::of(to_stack))
        };
        let mut input = MaybeUninit::new(());
        // SAFETY: fact 1: we run on our stack, with base `base`; fact 2:
        // `to` is a started, suspended coroutine whose stack (base
        // `to_base`) nobody else touches before it runs. The switch below
        // is the next thing we do, and we announce our arrival when
        // something enters us again.
        unsafe { sanitizer::fiber_switches(base, to_base, to_bounds) };
        // SAFETY: fact 1: we run on `this`'s stack with base `base`, whose
        // root leads to the resumer. Fact 2: `to_sp` is a suspended
        // coroutine's, used once (whoever lands it, or it switching away,
        // replaces it), on a stack it holds. `save_sp` points at our
        // `Option<StackPointer>`, one word with 0 for `None`
        // (`StackPointer` is a transparent `NonZeroUsize`), which nothing
        // reads until we have left. `to` takes `input` before we can run
        // again.
        let (word, flag) =
            unsafe { arch::switch(offer(&mut input), CONTINUE, base, save_sp, to_sp, to_base) };
        // SAFETY: back on our stack, entered again by a resume or another
        // fiber's switch, both announced.
        unsafe { sanitizer::fiber_arrives(base) };
        if flag == UNWIND {
            forced_unwind();
        }
        // SAFETY: whoever entered us offered a `()` input.
        unsafe { take::<()>(word) }
    }
}

impl<Input, Yield, Return> Drop for RawCoroutine<Input, Yield, Return> {
    /// Inline for the common case, a coroutine whose body has returned or
    /// that never had one (a task drops its empty coroutine whenever it
    /// sets or clears its fiber); a suspended one goes out of line.
    #[inline]
    fn drop(&mut self) {
        if let Some(sp) = self.sp.take() {
            self.drop_suspended(sp);
        }
    }
}

impl<Input, Yield, Return> RawCoroutine<Input, Yield, Return> {
    /// Drops a coroutine that holds a suspended (or never resumed) body,
    /// whose resume point was `sp`: see the type's doc.
    #[inline(never)]
    fn drop_suspended(&mut self, mut sp: StackPointer) {
        let stack = self.live_stack();
        let (base, bounds) = (stack.base(), Bounds::of(stack));
        // SAFETY: while `sp` was set we held the stack `init` prepared, and
        // the fiber is not running.
        if !unsafe { arch::entered(base) } {
            // SAFETY: never resumed, so the closure is still in its slot and
            // nobody else will touch it.
            unsafe { (self.vtable().drop_closure)(base) };
            self.release_stack();
            return;
        }
        // Ask the fiber to unwind. A body that catches the unwind and
        // suspends again is asked again (its value is dropped), until it
        // exits.
        loop {
            // SAFETY: the resume below is the next thing we do, and we
            // announce our return right after it.
            let saved = unsafe { sanitizer::resumer_leaves(bounds) };
            // SAFETY: as in `resume`: `sp` is the suspended fiber's, used once.
            let (word, next) = unsafe { arch::resume(arch::Word::uninit(), UNWIND, sp, base) };
            // SAFETY: `saved` is this resume's; the fiber announced its
            // switch back (suspend, or exit once unwound).
            unsafe { sanitizer::resumer_returns(saved) };
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
