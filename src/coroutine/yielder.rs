//! The handle a coroutine body suspends itself with.

use std::fmt;
use std::marker::PhantomData;
use std::mem::MaybeUninit;
use std::ptr::NonNull;

use super::entry::{UNWIND, forced_unwind, offer, take};
use super::sanitizer;
use crate::arch;

/// Passed by reference to a coroutine's body; [`suspend`](Yielder::suspend)
/// hands a value to the resumer and waits for the next input.
///
/// A `Yielder` lives on the coroutine's own stack and cannot leave the body
/// (the body only ever borrows it), so it can only suspend the coroutine it
/// belongs to, from inside it.
pub struct Yielder<Input, Yield> {
    /// The stack base: the root record below it leads back to the resumer.
    base: NonNull<u8>,
    /// `!Send`/`!Sync` (the raw pointer), and the value types.
    _marker: PhantomData<fn(Yield) -> Input>,
}

impl<Input, Yield> Yielder<Input, Yield> {
    pub(super) fn new(base: NonNull<u8>) -> Self {
        Yielder {
            base,
            _marker: PhantomData,
        }
    }

    /// Suspends the coroutine: `resume` returns
    /// [`CoroutineResult::Yield(value)`](super::CoroutineResult::Yield), and
    /// this call returns the input of the next `resume`.
    ///
    /// If the coroutine is dropped while suspended here, this call does not
    /// return: it unwinds the coroutine's stack (running every destructor
    /// on it) back to the entry. The unwind is a panic that `catch_unwind`
    /// can stop; a body that stops it and suspends again is unwound again
    /// from that `suspend` (its value is dropped), until it returns or lets
    /// the unwind through.
    ///
    /// ```
    /// use weft::coroutine::{Coroutine, CoroutineResult, Yielder};
    ///
    /// let mut c = Coroutine::new(|y: &Yielder<u32, u32>, first: u32| {
    ///     let second = y.suspend(first * 10);
    ///     first + second
    /// });
    /// assert_eq!(c.resume(4), CoroutineResult::Yield(40));
    /// assert_eq!(c.resume(5), CoroutineResult::Return(9));
    /// ```
    #[inline]
    pub fn suspend(&self, value: Yield) -> Input {
        let mut value = MaybeUninit::new(value);
        // SAFETY: we run on the coroutine's stack (a Yielder never leaves
        // its body), entered with this base; the switch out follows, and
        // the arrival is announced as soon as we are back.
        unsafe { sanitizer::fiber_suspends(self.base) };
        // SAFETY: we run on the coroutine's stack (a Yielder never leaves
        // its body), entered through `arch::resume` with this base. The
        // resumer moves `value` out before this frame can run again.
        let (word, flag) = unsafe { arch::suspend(offer(&mut value), self.base) };
        // SAFETY: back on our stack, entered again by a resume or another
        // fiber's switch, both announced.
        unsafe { sanitizer::fiber_arrives(self.base) };
        if flag == UNWIND {
            forced_unwind();
        }
        // SAFETY: the word of an ordinary resume is its offered input.
        unsafe { take::<Input>(word) }
    }
}

impl<Input, Yield> fmt::Debug for Yielder<Input, Yield> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Yielder")
            .field("stack_base", &self.base)
            .finish()
    }
}
