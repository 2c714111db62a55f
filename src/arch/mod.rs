//! The context switch, one module per (architecture, ABI).
//!
//! Every architecture module provides the same four operations, documented
//! in full in the reference implementation, [`x86_64`]:
//!
//! - `init`: write the initial frame onto a fresh stack so that the first
//!   `resume` enters the trampoline, which jumps to an entry function;
//! - `resume`: switch from the caller's stack into the fiber (the caller is
//!   the *resumer*), returning when the fiber suspends or exits;
//! - `suspend`: switch from the fiber back to whoever resumed it;
//! - `switch`: switch from the fiber straight into another suspended fiber,
//!   which continues as if the first one's resumer had resumed it (the
//!   scheduler's direct hand-off between the fibers of one worker);
//! - the final exit, done by the trampoline when the entry function returns;
//! - `entered`: whether a fiber has started (the trampoline marks the root).
//!
//! and two constants: `ROOT_SIZE`, the bytes at the stack base the switch
//! keeps for itself, and `STACK_ALIGNMENT`.
//!
//! Nothing here knows about scheduling, stack pools or Rust values: the
//! switch moves one machine word in each direction (a [`Word`], which may
//! carry a small value's bytes or a pointer to a larger one) plus, going
//! into the fiber, a `flag` word. `crate::coroutine` builds typed,
//! panic-safe coroutines on top.
//!
//! Another architecture (aarch64, say) would add `aarch64.rs` written as a
//! delta to `x86_64.rs`: its own stack diagram, register table, frame-record
//! link and CFI expression, and the same four operations.

use std::mem::MaybeUninit;
use std::num::NonZeroUsize;

mod x86_64;

pub(crate) use x86_64::{
    ROOT_SIZE, STACK_ALIGNMENT, entered, init, prefetch, prefetch_around, resume, suspend, switch,
};

/// What crosses a switch in a register: a value's bytes (which may include
/// uninitialised padding, hence `MaybeUninit`) or a pointer.
pub(crate) type Word = MaybeUninit<usize>;

/// The saved stack pointer of a suspended fiber: where `resume` continues.
///
/// It is only ever produced by `init` or returned by `resume`, so holding
/// one means "this stack has a frame the switch can enter".
///
/// `repr(transparent)`, so an `Option<StackPointer>` is one word, 0 for
/// `None`, that `switch` may write through a `*mut usize`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(transparent)]
pub(crate) struct StackPointer(NonZeroUsize);

impl StackPointer {
    /// The address, for the assembly.
    #[inline]
    pub(crate) fn get(self) -> usize {
        self.0.get()
    }
}

/// The function the trampoline jumps to on a fiber's first resume.
///
/// `word` and `flag` are those passed to that first `resume`; `base` is the
/// stack base given to `init`, which `suspend` needs to find the resumer.
/// When it returns, the trampoline switches to the last resumer with no
/// stack pointer (the fiber has exited).
///
/// It must not unwind: it is `extern "C"`, so a panic escaping it aborts the
/// process rather than unwinding into the assembly.
pub(crate) type EntryFn = unsafe extern "C" fn(word: Word, base: *mut u8, flag: usize);
