//! [`TaskArc`]: the counted pointer to a task's heap block.
//!
//! It is `std::sync::Arc` cut to what tasks use (no weak references), for
//! one reason: its block comes from, and goes back to, the runtime's
//! block pool (`sched::block_pool`), where an `Arc`'s block can only go
//! back to the global allocator. A fiber that is spawned and joined costs one block
//! taken and one given back; through glibc's `malloc` and `free` that was
//! a quarter of all the instructions of a spawn and join.
//!
//! The count lives in the task's state word (the header's first field, so
//! the block's first word, as an `Arc`'s strong count is), above the
//! lifecycle and its flags, as tokio's tasks keep theirs: a body that ends
//! publishes COMPLETE and drops its runner's reference in one
//! compare-exchange ([`TaskArc::complete`]), where a word of its own took
//! a second locked instruction at the end of every spawned fiber. Its
//! orderings are `Arc`'s: increments are relaxed (a count is only ever
//! taken from one already held), the decrement releases, and the last one
//! acquires before the task is dropped.

use std::alloc::Layout;
use std::fmt;
use std::marker::PhantomData;
use std::ops::Deref;
use std::ptr::{self, NonNull};

use super::state::Idle;
use super::task::{Header, TaskCell};
use crate::sched::block_pool;
use crate::sched::worker::Worker;

/// `TaskArc<T>` as a `TaskArc<dyn Trait>` (or a `dyn Sub` as a `dyn Super`):
/// the coercion the compiler makes from `Arc<T>` to `Arc<dyn Trait>`.
macro_rules! erase_task {
    ($task:expr => $to:ty) => {
        // SAFETY: `|p| p` is the unsizing coercion itself.
        unsafe { $crate::fiber::task_ref::TaskArc::unsize::<$to>($task, |p| p) }
    };
}
pub(crate) use erase_task;

/// A counted reference to a task, shared between threads like an `Arc`.
pub(crate) struct TaskArc<B: ?Sized> {
    ptr: NonNull<TaskCell<B>>,
    /// The task is ours to drop (for the drop checker).
    _owns: PhantomData<TaskCell<B>>,
}

// SAFETY: as for `Arc<TaskCell<B>>`: the block is shared, and dropped by
// whichever thread lets go of the last reference.
unsafe impl<B: ?Sized + Send + Sync> Send for TaskArc<B> {}
// SAFETY: as above.
unsafe impl<B: ?Sized + Send + Sync> Sync for TaskArc<B> {}

/// A pointer: moving it never moves the task (as for `Arc`).
impl<B: ?Sized> Unpin for TaskArc<B> {}

impl<B> TaskArc<B> {
    /// A new task, and a second reference to it: the block is taken from
    /// the pool, then `header` and `body` make the task's fields, written
    /// into it one by one. They are closures, called after the block is
    /// taken, and all of it is inlined, so that constant fields are stored
    /// straight into the block: values made before the allocation's call
    /// were built on the stack and copied (callgrind: 7 instructions more
    /// a spawn). The count is born 2 (`State::new_scheduled` and
    /// `State::new_idle` make it so), where a
    /// `clone` would cost a locked instruction: a spawn keeps one reference
    /// for the run queue, and one for the join handle (or the actor's
    /// address). `current` is this thread's worker, whose pool the block
    /// comes from.
    #[inline(always)]
    pub(crate) fn new_twice(
        current: Option<&Worker>,
        header: impl FnOnce() -> Header,
        body: impl FnOnce() -> B,
    ) -> (TaskArc<B>, TaskArc<B>) {
        let ptr = block_pool::alloc(current, Layout::new::<TaskCell<B>>()).cast::<TaskCell<B>>();
        // SAFETY: the block is fresh, sized and aligned for a `TaskCell<B>`,
        // and nobody else can see it; each field is written once, without
        // reading the old bytes.
        unsafe {
            let cell = ptr.as_ptr();
            (&raw mut (*cell).header).write(header());
            (&raw mut (*cell).body).write(body());
        }
        let task = || TaskArc {
            ptr,
            _owns: PhantomData,
        };
        (task(), task())
    }
}

impl<B: ?Sized> TaskArc<B> {
    /// The same reference seen as another (unsized) type: `coerce` is the
    /// unsizing coercion, written `|p| p` at the call site (the one the
    /// compiler makes for `Arc<T>` to `Arc<dyn Trait>`, which needs the
    /// unstable `CoerceUnsized` for a type of our own).
    ///
    /// # Safety
    ///
    /// `coerce` returns the pointer it is given, only retyped (an
    /// unsizing coercion): the same block, the same task.
    #[inline(always)]
    pub(crate) unsafe fn unsize<U: ?Sized>(
        this: TaskArc<B>,
        coerce: impl FnOnce(NonNull<TaskCell<B>>) -> NonNull<TaskCell<U>>,
    ) -> TaskArc<U> {
        let ptr = coerce(this.ptr);
        std::mem::forget(this);
        TaskArc {
            ptr,
            _owns: PhantomData,
        }
    }

    /// The task's address, valid while a reference is held; the pointer
    /// [`from_raw`](Self::from_raw) and [`increment_count`] take.
    ///
    /// [`increment_count`]: Self::increment_count
    #[inline]
    pub(crate) fn as_ptr(this: &TaskArc<B>) -> *const TaskCell<B> {
        this.ptr.as_ptr()
    }

    /// Takes over a reference whose count is already held, given the
    /// task's address.
    ///
    /// # Safety
    ///
    /// `cell` came from [`as_ptr`](Self::as_ptr) of a `TaskArc<B>` and the
    /// caller owns one count of it (left by `mem::forget`, or added by
    /// [`increment_count`](Self::increment_count)), which the result takes.
    #[inline]
    pub(crate) unsafe fn from_raw(cell: *const TaskCell<B>) -> TaskArc<B> {
        TaskArc {
            // SAFETY: a live task's address (the caller owns a count).
            ptr: unsafe { NonNull::new_unchecked(cell.cast_mut()) },
            _owns: PhantomData,
        }
    }

    /// Adds a count to the task at `cell`, for a [`from_raw`] to take.
    ///
    /// # Safety
    ///
    /// `cell` came from [`as_ptr`](Self::as_ptr) of a `TaskArc<B>` that is
    /// alive for the duration of the call.
    ///
    /// [`from_raw`]: Self::from_raw
    #[inline]
    pub(crate) unsafe fn increment_count(cell: *const TaskCell<B>) {
        // SAFETY: the caller's reference keeps the block alive; the new
        // count is not owned by a `TaskArc` until `from_raw` takes it.
        let this = std::mem::ManuallyDrop::new(unsafe { TaskArc::from_raw(cell) });
        this.add_count();
    }

    /// How many references exist (a snapshot).
    #[cfg(all(test, not(loom)))]
    pub(crate) fn count(this: &TaskArc<B>) -> usize {
        this.header.state.refs()
    }

    #[inline]
    fn add_count(&self) {
        self.header.state.ref_inc();
    }

    /// The runner's end of a body that ended for good: COMPLETE, and this
    /// reference dropped in the same compare-exchange.
    #[inline]
    pub(crate) fn complete(this: TaskArc<B>) {
        let mut this = std::mem::ManuallyDrop::new(this);
        if this.header.state.complete_and_release() {
            this.drop_task();
        }
    }

    /// The runner's end of a body that returned to idle: IDLE, and this
    /// reference dropped in the same compare-exchange; or, if a wake came
    /// first, the task SCHEDULED again and the reference handed back for
    /// the queue.
    #[inline]
    pub(crate) fn go_idle(this: TaskArc<B>) -> Option<TaskArc<B>> {
        let mut this = std::mem::ManuallyDrop::new(this);
        match this.header.state.idle_and_release() {
            (Idle::Rescheduled, _) => Some(std::mem::ManuallyDrop::into_inner(this)),
            (Idle::Idle, last) => {
                if last {
                    this.drop_task();
                }
                None
            }
        }
    }

    /// The last reference is gone: drops the task and gives its block
    /// back. Out of line, as `Arc`'s is: a drop that is not the last is
    /// one decrement.
    #[inline(never)]
    fn drop_task(&mut self) {
        // SAFETY: the block is alive until the dealloc below; nobody else
        // holds a reference (the count reached zero), so the task is ours
        // to drop, once.
        unsafe {
            let layout = Layout::for_value(self.ptr.as_ref());
            ptr::drop_in_place(self.ptr.as_ptr());
            block_pool::free(self.ptr.cast(), layout);
        }
    }
}

impl<B: ?Sized> Clone for TaskArc<B> {
    #[inline]
    fn clone(&self) -> TaskArc<B> {
        self.add_count();
        TaskArc {
            ptr: self.ptr,
            _owns: PhantomData,
        }
    }
}

impl<B: ?Sized> Drop for TaskArc<B> {
    #[inline]
    fn drop(&mut self) {
        if self.header.state.ref_dec() {
            self.drop_task();
        }
    }
}

impl<B: ?Sized> Deref for TaskArc<B> {
    type Target = TaskCell<B>;

    #[inline(always)]
    fn deref(&self) -> &TaskCell<B> {
        // SAFETY: we hold a count, so the block is alive.
        unsafe { self.ptr.as_ref() }
    }
}

impl<B: ?Sized> fmt::Debug for TaskArc<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.header.fmt(f)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[repr(align(32))]
    struct Aligned(#[expect(dead_code, reason = "only its alignment counts")] u8);

    /// A task's address is its header's and its state's (with the count),
    /// whatever the body's alignment: `from_raw` and `Deref` add no offset.
    #[test]
    fn the_count_and_the_header_start_the_block_whatever_the_body() {
        assert_eq!(std::mem::offset_of!(Header, state), 0);
        assert_eq!(std::mem::offset_of!(TaskCell<u8>, header), 0);
        assert_eq!(std::mem::offset_of!(TaskCell<Aligned>, header), 0);
        assert_eq!(std::mem::align_of::<TaskCell<Aligned>>(), 32);
    }
}
