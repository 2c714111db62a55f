//! What crosses a switch, and the function every coroutine starts in.
//!
//! The switch moves one word each way, plus a flag into the fiber. A value
//! that fits in a word (and is no more aligned) travels in the register
//! itself; a larger one stays where it is and the word is a pointer to it
//! (see [`offer`] and [`take`]):
//!
//! - resumer to fiber: the input, which (if passed by pointer) lives in the
//!   resumer's frame for the duration of the `resume`; the fiber moves it
//!   out at once. The flag [`UNWIND`] instead asks the fiber to unwind (the
//!   coroutine is being dropped) and the word carries nothing.
//! - fiber to resumer, on suspend: the yielded value, which (if passed by
//!   pointer) lives in the fiber's suspended frame; the resumer moves it
//!   out before anything can resume the fiber again.
//! - on exit, nothing: the body's outcome ([`Finish`]) is written into the
//!   *slot* at the top of the stack, above every fiber frame, where the
//!   closure was kept before the first resume. The resumer moves it out
//!   before it releases the stack. Being above the stack pointer, the slot
//!   cannot be overwritten by a signal delivered while the trampoline runs
//!   its last instructions on the fiber stack.
//!
//! With the `sanitizer` feature, the slot starts below a small record
//! that AddressSanitizer's switch annotations keep (see [`sanitizer`]);
//! without it the record takes no room.

use std::any::Any;
use std::mem::{self, MaybeUninit};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::ptr::{self, NonNull};

use super::{Yielder, sanitizer};
use crate::arch::{self, ROOT_SIZE, STACK_ALIGNMENT, Word};

/// A panic payload, as `catch_unwind` returns it.
pub(super) type Payload = Box<dyn Any + Send + 'static>;

/// How a fiber's body ended.
pub(super) enum Finish<R> {
    /// It returned.
    Return(R),
    /// It panicked; the payload is re-raised in the resumer.
    Panic(Payload),
    /// It was unwound by a drop, and every destructor on its stack ran.
    Unwound,
}

/// The flag of an ordinary resume: the word carries the input.
pub(super) const CONTINUE: usize = 0;

/// The flag that asks a suspended fiber to unwind; the word is empty.
pub(super) const UNWIND: usize = 1;

/// Whether a `T` travels in the word itself rather than by pointer.
const fn fits_in_word<T>() -> bool {
    mem::size_of::<T>() <= mem::size_of::<Word>() && mem::align_of::<T>() <= mem::align_of::<Word>()
}

/// The word that hands `value` to the other side of a switch: its bytes if
/// it fits, else a pointer to it. From here on the value belongs to the
/// other side, which moves it out with [`take`]; this side must neither
/// read nor drop it again, and (when passed by pointer) must keep it where
/// it is until the other side has taken it.
#[inline(always)]
pub(super) fn offer<T>(value: &mut MaybeUninit<T>) -> Word {
    if fits_in_word::<T>() {
        let mut word = Word::uninit();
        // SAFETY: a T fits in a word and is no more aligned; `value` is
        // initialised (every caller builds it with MaybeUninit::new), and
        // ownership moves with the bytes.
        unsafe { word.as_mut_ptr().cast::<T>().write(value.as_ptr().read()) };
        word
    } else {
        Word::new(value.as_mut_ptr() as usize)
    }
}

/// Moves a value out of a word the other side of a switch [`offer`]ed.
///
/// # Safety
///
/// `word` came from `offer::<T>` on the other side of this switch, and no
/// `take` has moved it out before.
#[inline(always)]
pub(super) unsafe fn take<T>(word: Word) -> T {
    if fits_in_word::<T>() {
        // SAFETY: `offer` wrote a T at the start of the word.
        unsafe { word.as_ptr().cast::<T>().read() }
    } else {
        // SAFETY: `offer` gave a pointer to a T that stays in place until
        // taken, and the caller promises it was not taken already.
        unsafe { ptr::read(word.assume_init() as *const T) }
    }
}

/// The payload a dropped coroutine unwinds its fiber with. Private: user
/// code can catch it (`catch_unwind`) but not name it.
pub(super) struct ForcedUnwind;

/// Starts unwinding the fiber stack towards [`entry`]. Uses
/// `resume_unwind`, so the panic hook does not run and nothing is printed.
#[cold]
pub(super) fn forced_unwind() -> ! {
    std::panic::resume_unwind(Box::new(ForcedUnwind))
}

/// Bytes kept between the sanitizer's record and the slot for the
/// coroutine's *type word*: a pointer to the operations of its closure type
/// (`raw::Vtable`), which the coroutine finds from the stack base alone
/// instead of carrying it (8 bytes less in every task's header). One word,
/// padded to the stack alignment so that the slot below stays aligned.
pub(super) const TYPE_WORD_SIZE: usize = STACK_ALIGNMENT;

/// Where the type word of the stack with base `base` lives: just below
/// the switch's root and the sanitizer's record, 16-byte aligned.
pub(super) fn type_word(base: NonNull<u8>) -> NonNull<usize> {
    let addr = base.as_ptr() as usize - ROOT_SIZE - sanitizer::RECORD_SIZE - TYPE_WORD_SIZE;
    NonNull::new(addr as *mut usize).expect("a stack address is not null")
}

/// Layout of the slot at the top of a coroutine's stack: it holds the
/// closure `F` until the first resume, and the [`Finish<R>`] after the body
/// ends.
pub(super) struct Slot<F, R> {
    _marker: std::marker::PhantomData<(F, R)>,
}

impl<F, R> Slot<F, R> {
    const SIZE: usize = max(mem::size_of::<F>(), mem::size_of::<Finish<R>>());
    const ALIGN: usize = max(
        max(mem::align_of::<F>(), mem::align_of::<Finish<R>>()),
        STACK_ALIGNMENT,
    );

    /// Where the slot lives on the stack with base `base`: just below the
    /// switch's root (and the sanitizer's record, if any) and the
    /// [type word](type_word), aligned for both its uses and for a call.
    /// Fiber frames start below it.
    pub(super) fn at(base: NonNull<u8>) -> NonNull<u8> {
        let addr = (type_word(base).as_ptr() as usize - Self::SIZE) & !(Self::ALIGN - 1);
        NonNull::new(addr as *mut u8).expect("a stack address is not null")
    }

    /// The closure's place in the slot.
    pub(super) fn closure(base: NonNull<u8>) -> *mut F {
        Self::at(base).as_ptr().cast()
    }
}

const fn max(a: usize, b: usize) -> usize {
    if a > b { a } else { b }
}

/// Drops a closure that was written to its slot but never started.
///
/// # Safety
///
/// `base` is the base of a stack whose slot holds an initialised `F` that
/// nothing will read or drop again.
pub(super) unsafe fn drop_unstarted<F, R>(base: NonNull<u8>) {
    // SAFETY: the caller promises an initialised, otherwise unused F there.
    unsafe { Slot::<F, R>::closure(base).drop_in_place() }
}

/// The entry function of every coroutine with closure type `F`.
///
/// `extern "C"`, so it cannot unwind into the trampoline: every panic of
/// the body is caught here and handed to the resumer.
///
/// # Safety
///
/// Called only by the trampoline (or [`announced_entry`]), on the first
/// resume of a coroutine built by `Coroutine::on_stack`: `word` and `flag`
/// are that resume's (see [`offer`]) and the slot below `base` holds the
/// `F`.
#[cfg_attr(feature = "sanitizer", inline(never))]
pub(super) unsafe extern "C" fn entry<F, I, Y, R>(word: Word, base: *mut u8, flag: usize)
where
    F: FnOnce(&Yielder<I, Y>, I) -> R,
{
    let base = NonNull::new(base).expect("the trampoline passes the stack base");
    // SAFETY: the slot holds the F written by `on_stack`; the resumer
    // stopped owning it when it started us (the trampoline cleared the
    // root's entry word, so `Coroutine::drop` will not drop it again).
    let body = unsafe { ptr::read(Slot::<F, R>::closure(base)) };
    let yielder = Yielder::new(base);
    let finish = if flag == UNWIND {
        // `Coroutine` drops an unstarted closure in place and never asks an
        // unstarted fiber to unwind; handled anyway.
        drop(body);
        Finish::Unwound
    } else {
        // SAFETY: the word of an ordinary resume is its offered input.
        let input = unsafe { take::<I>(word) };
        match catch_unwind(AssertUnwindSafe(|| body(&yielder, input))) {
            Ok(value) => Finish::Return(value),
            Err(payload) if payload.is::<ForcedUnwind>() => Finish::Unwound,
            Err(payload) => Finish::Panic(payload),
        }
    };
    // SAFETY: the closure was moved out above, so the slot is free; it is
    // above every frame of this fiber and ours until the resumer takes it.
    unsafe { Slot::<F, R>::at(base).cast::<Finish<R>>().write(finish) };
}

/// The entry function with the `sanitizer` feature: [`entry`], with the
/// fiber's first arrival announced before it and its exit after it.
///
/// `entry` stays out of line, so that its stack variables (the yielder,
/// the outcome) are gone when the exit is announced, and this function
/// keeps none: the exit frees the fiber's fake stack, on which such a
/// variable could live.
///
/// # Safety
///
/// As for [`entry`].
unsafe extern "C" fn announced_entry<F, I, Y, R>(word: Word, base: *mut u8, flag: usize)
where
    F: FnOnce(&Yielder<I, Y>, I) -> R,
{
    let stack_base = NonNull::new(base).expect("the trampoline passes the stack base");
    // SAFETY: we run on the fiber's stack with this base, entered by the
    // first resume, which announced the switch.
    unsafe { sanitizer::fiber_starts(stack_base) };
    // SAFETY: the caller's contract, passed on.
    unsafe { entry::<F, I, Y, R>(word, base, flag) };
    // SAFETY: the body's frames are gone and we keep no stack variables;
    // the trampoline switches to the resumer for the last time as soon as
    // we return.
    unsafe { sanitizer::fiber_exits(stack_base) };
}

/// The `EntryFn` for closure type `F`: [`entry`], or [`announced_entry`]
/// with the `sanitizer` feature.
pub(super) fn entry_fn<F, I, Y, R>() -> arch::EntryFn
where
    F: FnOnce(&Yielder<I, Y>, I) -> R,
{
    if cfg!(feature = "sanitizer") {
        announced_entry::<F, I, Y, R>
    } else {
        entry::<F, I, Y, R>
    }
}
