//! AddressSanitizer's fiber annotations (cargo feature `sanitizer`).
//!
//! ASan keeps, per thread, the bounds of the stack it runs on and, with
//! `detect_stack_use_after_return`, a *fake stack* holding the frames of
//! address-taken locals. A context switch moves the thread to another
//! stack behind its back. Unannounced, the first panic or forced unwind on
//! a fiber finds the stack pointer outside the thread's stack, so
//! `__asan_handle_no_return` refuses to unpoison the frames it abandons
//! ("ASan is ignoring requested __asan_handle_no_return"); the stack goes
//! back to its pool still poisoned, and the next fiber on it reports a
//! stack-buffer-overflow in its own, perfectly good, frames.
//!
//! So every switch is announced, with the two calls of compiler-rt's
//! `include/sanitizer/common_interface_defs.h`:
//!
//! - `__sanitizer_start_switch_fiber(save, bottom, size)` just before the
//!   switch, with the bounds of the stack being switched *to*. The leaving
//!   side's fake stack is saved in `*save`; a `NULL` `save` says the
//!   leaving side never runs again, and ASan frees its fake stack.
//! - `__sanitizer_finish_switch_fiber(save, bottom_old, size_old)` first
//!   thing on the arriving side: restores that side's fake stack (`NULL`
//!   for a fiber entered for the first time, which then gets a fresh one)
//!   and reports the bounds of the stack the thread came from.
//!
//! | switch                      | leaving side                   | arriving side                              |
//! |-----------------------------|--------------------------------|--------------------------------------------|
//! | resume (first entry too, and a drop's forced unwind) | resumer: [`resumer_leaves`] | fiber: [`fiber_starts`] or [`fiber_arrives`], which learn the resumer's bounds |
//! | suspend                     | fiber: [`fiber_suspends`]      | resumer: [`resumer_returns`]               |
//! | switch, fiber A to fiber B  | A: [`fiber_switches`]          | B: [`fiber_arrives`], keeping the bounds A handed over |
//! | exit (body returned or unwound) | fiber: [`fiber_exits`] (`NULL` save) | resumer: [`resumer_returns`]      |
//!
//! # The record
//!
//! A fiber must announce its resumer's stack when it suspends or exits,
//! and only ASan knows where that is: `finish` tells the fiber on arrival.
//! The fiber keeps what it learned, and its own saved fake stack, in a
//! [`RECORD_SIZE`]-byte record just below the switch's root, where the
//! coroutine layer finds it from the stack base alone (the closure's slot
//! starts below it; see `entry::Slot`):
//!
//! ```text
//! base -------------------> +----------------------------+
//!                           | root (arch::ROOT_SIZE)     |
//! base - ROOT_SIZE -------> +----------------------------+
//!                           | handed_over                |
//!                           | fake_stack                 |  the fiber's, while it is switched out
//!                           | resumer_size               |
//!                           | resumer_limit              |  the stack a suspend or exit returns to
//! record -----------------> +----------------------------+
//!                           | slot: closure, then Finish |
//! ```
//!
//! A direct switch from fiber A to fiber B is the one case where `finish`
//! tells B the wrong thing: B came from A's stack, but B's next suspend
//! returns to A's resumer. So A copies its resumer's bounds into B's record
//! and sets `handed_over`, and B's arrival keeps them.
//!
//! The resumer's own fake stack is saved in a local of the resuming frame
//! ([`SavedFakeStack`]): the resume returns to that frame, whichever fiber
//! comes back.
//!
//! Between a `start` and its `finish` nothing runs but the switch itself
//! and the last (or first) instructions of the functions around it. In
//! particular a fiber's entry function calls [`fiber_exits`] after the
//! body's frames are gone, and keeps no stack variable of its own: one
//! could live on the fake stack that the exit frees.
//!
//! # Recycled stacks
//!
//! A stack goes back to its pool without being unpoisoned, unlike
//! corosensei's. With every switch announced it is clean: a frame that
//! returns unpoisons its own redzones, and a panic or forced unwind raises
//! through `_Unwind_RaiseException`, which ASan intercepts to unpoison the
//! whole stack above the raise before the frames are abandoned. Clearing
//! the whole stack anyway would commit its shadow (an eighth of the stack)
//! for every stack recycled, and would hide a missed announcement rather
//! than let the next fiber on that stack report it.
//!
//! # Without the feature
//!
//! Every item is empty: the types are zero-sized, [`RECORD_SIZE`] is 0
//! and the functions do nothing (`#[inline(always)]`, so that not even a
//! call is left in a debug build), and the switch compiles as it did
//! before. With the feature, the crate links only where the ASan runtime
//! provides the symbols: a nightly build with `-Zsanitizer=address`
//! (`scripts/asan.sh`).

#![cfg_attr(
    not(feature = "sanitizer"),
    allow(
        unused_variables,
        reason = "without the feature every hook is empty and ignores its arguments"
    )
)]

use std::ptr::NonNull;

use crate::stack_pool::Stack;

/// Bytes of stack the [record](self#the-record) takes below the switch's
/// root, a multiple of the stack alignment; 0 without the feature.
pub(super) const RECORD_SIZE: usize = if cfg!(feature = "sanitizer") { 32 } else { 0 };

/// The bounds of a fiber's stack, as ASan wants them: its limit (lowest
/// usable address; ASan's "bottom") and the bytes from there up to its
/// base.
#[derive(Clone, Copy)]
pub(super) struct Bounds {
    #[cfg(feature = "sanitizer")]
    limit: *const u8,
    #[cfg(feature = "sanitizer")]
    size: usize,
}

impl Bounds {
    /// The bounds of `stack`, on which the coroutine switched to runs.
    #[inline(always)]
    pub(super) fn of(stack: &Stack) -> Bounds {
        #[cfg(feature = "sanitizer")]
        {
            let (base, limit) = (stack.base().as_ptr(), stack.limit().as_ptr());
            Bounds {
                limit,
                size: base as usize - limit as usize,
            }
        }
        #[cfg(not(feature = "sanitizer"))]
        Bounds {}
    }
}

/// The resumer's fake stack, saved by [`resumer_leaves`] for the
/// [`resumer_returns`] of the same resume.
#[must_use = "the resume must hand it back to `resumer_returns`"]
pub(super) struct SavedFakeStack {
    #[cfg(feature = "sanitizer")]
    fake_stack: *mut u8,
}

#[cfg(feature = "sanitizer")]
mod asan {
    //! compiler-rt's declarations (`common_interface_defs.h`), with
    //! `void *` as `*mut u8`.

    // SAFETY: these are the C prototypes of the ASan runtime, which every
    // `-Zsanitizer=address` binary links; the feature is only meaningful
    // there.
    unsafe extern "C" {
        pub(super) fn __sanitizer_start_switch_fiber(
            fake_stack_save: *mut *mut u8,
            bottom: *const u8,
            size: usize,
        );
        pub(super) fn __sanitizer_finish_switch_fiber(
            fake_stack_save: *mut u8,
            bottom_old: *mut *const u8,
            size_old: *mut usize,
        );
    }
}

/// What a fiber keeps about the sanitizer; see the [module doc](self#the-record).
#[cfg(feature = "sanitizer")]
#[repr(C)]
struct Record {
    /// The bounds of the stack the fiber's next suspend or exit returns to.
    resumer_limit: *const u8,
    resumer_size: usize,
    /// The fiber's fake stack, saved by its last switch-out.
    fake_stack: *mut u8,
    /// Set by a fiber switching into this one, which wrote `resumer_*`.
    handed_over: bool,
}

#[cfg(feature = "sanitizer")]
const _: () = assert!(
    std::mem::size_of::<Record>() <= RECORD_SIZE
        && RECORD_SIZE.is_multiple_of(crate::arch::STACK_ALIGNMENT)
);

/// The record of the fiber whose stack base is `base`.
#[cfg(feature = "sanitizer")]
#[inline(always)]
fn record(base: NonNull<u8>) -> *mut Record {
    base.as_ptr()
        .wrapping_sub(crate::arch::ROOT_SIZE + RECORD_SIZE)
        .cast()
}

/// Resumer side, just before switching into a fiber whose stack has
/// bounds `to`: a resume, a first entry or a drop's forced unwind.
///
/// # Safety
///
/// The very next thing this thread does is that switch, and the resume
/// hands the result to [`resumer_returns`] right after it comes back.
#[inline(always)]
pub(super) unsafe fn resumer_leaves(to: Bounds) -> SavedFakeStack {
    #[cfg(feature = "sanitizer")]
    {
        let mut fake_stack = std::ptr::null_mut();
        // SAFETY: `fake_stack` is a valid place for the pointer, and `to`
        // are the bounds of the stack we switch to next (the caller's
        // contract), where the matching `finish` runs.
        unsafe { asan::__sanitizer_start_switch_fiber(&mut fake_stack, to.limit, to.size) };
        SavedFakeStack { fake_stack }
    }
    #[cfg(not(feature = "sanitizer"))]
    SavedFakeStack {}
}

/// Resumer side, first thing after the switch back from a fiber (which
/// suspended, or exited).
///
/// # Safety
///
/// `saved` is from the [`resumer_leaves`] of this resume, and the fiber
/// that came back announced the switch (suspend, switch-out or exit).
#[inline(always)]
pub(super) unsafe fn resumer_returns(saved: SavedFakeStack) {
    #[cfg(feature = "sanitizer")]
    // SAFETY: the fiber started this switch towards our stack (the
    // caller's contract), and `saved` is our fake stack, saved by the
    // start of this resume. We need no bounds back.
    unsafe {
        asan::__sanitizer_finish_switch_fiber(
            saved.fake_stack,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        );
    }
}

/// Fiber side, first thing at a fiber's first entry: it has no fake stack
/// yet, and learns its resumer's bounds.
///
/// # Safety
///
/// Called on the fiber's stack, whose base is `base` and whose record
/// nothing else uses, entered by a resume announced with
/// [`resumer_leaves`].
#[inline(always)]
pub(super) unsafe fn fiber_starts(base: NonNull<u8>) {
    #[cfg(feature = "sanitizer")]
    // SAFETY: the record lies on our stack, below the root and above the
    // slot, and is ours alone (caller's contract). The resumer started the
    // switch, so ASan expects this finish; `NULL` means "no fake stack to
    // restore".
    unsafe {
        let record = record(base);
        asan::__sanitizer_finish_switch_fiber(
            std::ptr::null_mut(),
            &raw mut (*record).resumer_limit,
            &raw mut (*record).resumer_size,
        );
        (*record).handed_over = false;
    }
}

/// Fiber side, first thing after a suspended fiber is entered again, by a
/// resume (the fiber learns its resumer's bounds) or by another fiber's
/// switch (the fiber keeps the bounds handed over).
///
/// # Safety
///
/// Called on the fiber's stack, whose base is `base`, right after the
/// switch back in; the fiber left with [`fiber_suspends`] or
/// [`fiber_switches`], and whoever entered it announced the switch.
#[inline(always)]
pub(super) unsafe fn fiber_arrives(base: NonNull<u8>) {
    #[cfg(feature = "sanitizer")]
    // SAFETY: the record lies on our stack and only we, or a fiber
    // switching to us while we were out, touch it. Our last switch-out
    // saved our fake stack in it, and whoever entered us started the
    // switch, so ASan expects this finish.
    unsafe {
        let record = record(base);
        let (bottom_old, size_old) = if (*record).handed_over {
            (*record).handed_over = false;
            (std::ptr::null_mut(), std::ptr::null_mut())
        } else {
            (
                &raw mut (*record).resumer_limit,
                &raw mut (*record).resumer_size,
            )
        };
        asan::__sanitizer_finish_switch_fiber((*record).fake_stack, bottom_old, size_old);
    }
}

/// Fiber side, just before a fiber suspends back to its resumer.
///
/// # Safety
///
/// Called on the fiber's stack, whose base is `base`, which was entered
/// with [`fiber_starts`] or [`fiber_arrives`]; the very next thing it does
/// is the switch out, and it calls [`fiber_arrives`] when it is back.
#[inline(always)]
pub(super) unsafe fn fiber_suspends(base: NonNull<u8>) {
    #[cfg(feature = "sanitizer")]
    // SAFETY: the record is ours and holds the bounds of the stack we
    // return to (written on arrival). Our fake stack is saved in it until
    // our next arrival.
    unsafe {
        let record = record(base);
        asan::__sanitizer_start_switch_fiber(
            &raw mut (*record).fake_stack,
            (*record).resumer_limit,
            (*record).resumer_size,
        );
    }
}

/// Fiber side, just before a fiber (stack base `base`) switches straight
/// into the suspended fiber whose stack has base `to_base` and bounds
/// `to`: hands it our resumer's bounds, then announces the switch.
///
/// # Safety
///
/// As for [`fiber_suspends`]; and `to_base` is the base of a suspended,
/// started fiber's stack, which nothing else touches until it runs.
#[inline(always)]
pub(super) unsafe fn fiber_switches(base: NonNull<u8>, to_base: NonNull<u8>, to: Bounds) {
    #[cfg(feature = "sanitizer")]
    // SAFETY: both records lie on fiber stacks, ours and the suspended
    // one's; nobody else touches the latter before it runs (caller's
    // contract), and its arrival reads what we write. Our fake stack is
    // saved in our record until our next arrival.
    unsafe {
        let (record, next) = (record(base), record(to_base));
        (*next).resumer_limit = (*record).resumer_limit;
        (*next).resumer_size = (*record).resumer_size;
        (*next).handed_over = true;
        asan::__sanitizer_start_switch_fiber(&raw mut (*record).fake_stack, to.limit, to.size);
    }
}

/// Fiber side, when the body has returned or unwound and the fiber is
/// about to switch to its resumer for the last time: ASan frees its fake
/// stack.
///
/// # Safety
///
/// As for [`fiber_suspends`], except that the fiber never runs again; and
/// no frame that may live on the fake stack returns after this call (the
/// caller keeps no stack variables, and returns straight into the exit).
#[inline(always)]
pub(super) unsafe fn fiber_exits(base: NonNull<u8>) {
    #[cfg(feature = "sanitizer")]
    // SAFETY: the record is ours and holds our resumer's bounds; `NULL`
    // asks ASan to free our fake stack, which nothing uses any more (the
    // caller's contract).
    unsafe {
        let record = record(base);
        asan::__sanitizer_start_switch_fiber(
            std::ptr::null_mut(),
            (*record).resumer_limit,
            (*record).resumer_size,
        );
    }
}
