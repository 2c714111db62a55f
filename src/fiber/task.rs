//! The task: the unit of scheduling, and the fiber it runs on.
//!
//! A task is one heap block, [`TaskCell`]: a [`Header`] the scheduler
//! understands, then a [`Body`] it does not (a spawned closure and its
//! result slot, or an actor). A task that has not started (or is between
//! runs) holds no stack; the worker that first runs it takes a stack from
//! the pool, makes it a fiber, and becomes its *home*.
//!
//! # Who touches what
//!
//! | field | who | when |
//! | --- | --- | --- |
//! | `state`, with the reference count | anyone | atomically (see `state.rs`, `task_ref.rs`) |
//! | `id`, `name`, `pool` | anyone | read-only |
//! | `fiber`, `home`, `slot` | the worker that claimed the task (state RUNNING) | while it holds the claim; a waker reads `home` after it moved the task from PARKED to SCHEDULED, which happens-after the claimant's write |
//! | `side` | the fiber itself | only while it runs |
//!
//! `home` is a raw pointer: the home worker outlives every fiber that
//! lives on it (it exits only when its registry is empty), and a waker
//! that moved the task out of PARKED takes its own count on the worker
//! before the worker can finish the task.
//!
//! # References
//!
//! A started task is kept alive by its home worker's registry from its
//! fiber's first switch-out until its body ends, so a fiber parked where
//! nobody can wake it is still found and unwound at shutdown, on its home
//! thread; before its first switch-out, the worker's `running` reference
//! does (most short fibers never switch out, and never cost a registry
//! slot). Those references are the ones the fiber's own frames rely on:
//! they use the task through a raw pointer.
//!
//! A PARKED task owns one count besides: the park that publishes PARKED
//! leaves its queue reference (the worker's `running`) to the state
//! ([`leave_count_to_park`]), and whoever moves the task out of PARKED
//! takes that count over ([`take_woken_count`]): a wake queues the fiber
//! with it, shutdown drops it. So a park and its wake-up touch no
//! reference count, where a drop and a fresh count cost two locked
//! instructions per hop of a message between fibers.

use std::any::Any;
use std::cell::UnsafeCell;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::ptr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use super::FiberId;
use super::local::Locals;
use super::state::State;
use super::task_ref::TaskArc;
use crate::coroutine::{self, RawCoroutine, Yielder};
use crate::sched::WorkerShared;
use crate::sched::worker::UNREGISTERED;
use crate::stack_pool::{StackError, StackPool};

/// A task, type-erased: what queues and wakers hold.
pub(crate) type TaskRef = TaskArc<dyn Body>;

/// A task's memory: the header, then the body. `repr(C)`: the header is
/// at the block's start whatever the body, so a `TaskRef` (a fat pointer)
/// reaches it without reading the body's alignment from its vtable.
#[repr(C)]
pub(crate) struct TaskCell<B: ?Sized> {
    pub(crate) header: Header,
    pub(crate) body: B,
}

impl<B: ?Sized> fmt::Debug for TaskCell<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.header.fmt(f)
    }
}

/// Why a running fiber switched back to its worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reason {
    /// `yield_now`: requeue it behind the others.
    Yield,
    /// `park`: publish it PARKED, unless a wake came first.
    Park,
}

/// How a body's run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyEnd {
    /// For good: the task completes.
    Exit,
    /// For now: the task goes IDLE and gives its stack back; a wake runs
    /// the body again, on a fresh fiber, on any worker (actors).
    Idle,
}

/// How a task ended, told to its body (and through it, its joiner).
pub(crate) enum Outcome {
    /// `run` returned [`BodyEnd::Exit`].
    Returned,
    /// `run` panicked.
    Panicked(Box<dyn Any + Send + 'static>),
    /// The runtime shut down: the fiber was unwound, or never started.
    Cancelled,
    /// No stack could be had to start the fiber.
    NoStack(StackError),
}

/// What the scheduler runs; implemented by spawned closures and actors.
pub(crate) trait Body: Send + Sync + 'static {
    /// Runs the body on the task's fiber. A panic escapes to the fiber's
    /// entry, which reports it through `complete`.
    fn run(&self, task: &TaskCell<dyn Body>) -> BodyEnd;

    /// Records how the task ended and wakes whoever waits for it. Called
    /// exactly once, by the task's claimant: after `run` returned `Exit`
    /// or panicked, or instead of ever running it.
    fn complete(&self, outcome: Outcome);

    /// `complete(Outcome::Returned)`: the common end, which a body may
    /// record without building and matching the general outcome.
    fn complete_returned(&self) {
        self.complete(Outcome::Returned);
    }

    /// Queues a task whose wake found it IDLE (only bodies that return
    /// [`BodyEnd::Idle`] get there; they know their runtime).
    fn schedule_idle(&self, task: TaskRef) {
        drop(task);
        unreachable!("a task that never goes idle was woken from idle");
    }
}

/// Hands the count `task` holds to the task's PARKED state, which the
/// caller has just published (see the module doc, "References").
#[inline]
pub(crate) fn leave_count_to_park(task: TaskRef) {
    std::mem::forget(task);
}

/// Takes over the count a PARKED task owns (see the module doc,
/// "References"), or the one `State::wake` added for the queue when it
/// moved an IDLE task to SCHEDULED.
///
/// # Safety
///
/// The caller has just moved the task out of PARKED or IDLE itself (a
/// wake that returned `Resume` or `Schedule`, or shutdown's claim of a
/// parked fiber), so the count is its own to
/// take, once; `task` is the task's whole cell, which lives in a
/// `TaskArc`'s block, as every task does.
#[inline]
pub(crate) unsafe fn take_woken_count(task: &TaskCell<dyn Body>) -> TaskRef {
    // SAFETY: see above: the count exists and is ours; the pointer is to
    // the cell of a `TaskRef`'s block.
    unsafe { TaskArc::from_raw(ptr::from_ref(task)) }
}

/// The coroutine of every task's fiber.
pub(crate) type FiberCoroutine = RawCoroutine<(), Reason, BodyEnd>;

/// A task's suspended or running fiber. `Send` although `Coroutine` is
/// not: a started fiber is resumed only on its home worker's thread (see
/// the thread-local rule in `DESIGN.md`), so the values on its stack never
/// see another thread, unless the runtime was built with the `unsafe`
/// migration opt-in, whose caller accepted exactly that.
pub(crate) struct FiberContext(pub(crate) FiberCoroutine);

impl FiberContext {
    /// No fiber: the task has not started, or its body has ended.
    pub(crate) const fn none() -> FiberContext {
        FiberContext(FiberCoroutine::empty())
    }

    /// Whether there is a fiber (started, not ended).
    #[inline]
    pub(crate) fn exists(&self) -> bool {
        self.0.has_stack()
    }
}

// SAFETY: see the type's documentation: the coroutine is only resumed on
// one thread at a time, and only moves threads under the unsafe opt-in.
unsafe impl Send for FiberContext {}

/// Fields only the running fiber touches. (Its yielder is not kept: it
/// is only the stack base, which the fiber's coroutine knows; see
/// `RawCoroutine::suspend`.)
pub(crate) struct FiberSide {
    /// Fiber-local storage, made on first use (most fibers have none).
    pub(crate) locals: Option<Box<Locals>>,
}

/// What few tasks have, kept out of line so that every other task is
/// smaller (an idle actor costs its header, whatever it is).
struct Extras {
    name: Option<Box<str>>,
    pool: Option<StackPool>,
}

/// What every task starts with; see the module doc for the access rules.
///
/// In declaration order (`repr(C)`): the state word, which holds the
/// reference count (as an `Arc`'s, the block's first word), then the rest
/// of what waking a parked fiber and switching to it read (the fiber, its
/// home, its id), together, so that it spans as few cache lines as it
/// can: in a ring of a million fibers each of those lines is a miss per
/// hop.
#[repr(C)]
pub(crate) struct Header {
    /// First: the count in it is the block's first word, as an `Arc`'s
    /// strong count is (see `task_ref.rs`).
    pub(crate) state: State,
    /// The task's fiber, or [`FiberContext::none`].
    fiber: UnsafeCell<FiberContext>,
    home: UnsafeCell<*const WorkerShared>,
    pub(crate) id: FiberId,
    /// Index in the home worker's registry.
    slot: UnsafeCell<usize>,
    /// Bumped when a timed park returns, so a timer armed by an earlier
    /// park that fires late does not wake a later one. The fiber and its
    /// home worker (the same thread) use it; atomic for the migration
    /// opt-in, where they may not be.
    pub(crate) timer_seq: AtomicU64,
    /// The name and the stack pool, for tasks that have either.
    extras: Option<Box<Extras>>,
    side: UnsafeCell<FiberSide>,
}

// SAFETY: the UnsafeCell fields follow the rules in the module doc: each is
// touched by one thread at a time, the hand-offs ordered by the state word.
unsafe impl Sync for Header {}

// SAFETY: the only non-Send fields are the fiber side's (a pointer to the
// fiber's own yielder, fiber-local values): only the fiber touches them,
// on its home thread, and they are dropped by the fiber itself when its
// body ends. Under the unsafe migration opt-in the caller vouches that
// moving them with the fiber is fine.
unsafe impl Send for Header {}

impl Header {
    /// A header for [`TaskArc::new_twice`]: `state` comes from
    /// `State::new_scheduled` or `State::new_idle`, whose count is 2. Inline, so
    /// that a caller that builds the task in its heap block writes the
    /// constant fields there directly.
    #[inline]
    pub(crate) fn new(state: State, name: Option<Box<str>>, pool: Option<StackPool>) -> Header {
        Header {
            state,
            id: FiberId::next(),
            extras: (name.is_some() || pool.is_some()).then(|| Box::new(Extras { name, pool })),
            timer_seq: AtomicU64::new(0),
            fiber: UnsafeCell::new(FiberContext::none()),
            home: UnsafeCell::new(ptr::null()),
            slot: UnsafeCell::new(UNREGISTERED),
            side: UnsafeCell::new(FiberSide { locals: None }),
        }
    }

    /// The name given at spawn, if any.
    pub(crate) fn name(&self) -> Option<&str> {
        self.extras.as_ref()?.name.as_deref()
    }

    /// The pool this task's stacks come from; `None`: the runtime's.
    pub(crate) fn pool(&self) -> Option<&StackPool> {
        self.extras.as_ref()?.pool.as_ref()
    }

    /// The fiber, for the claimant.
    ///
    /// # Safety
    ///
    /// The caller holds the task's claim (it moved the state to RUNNING, or
    /// owns a PARKED task during shutdown) and no other reference to the
    /// fiber slot is live.
    #[allow(clippy::mut_from_ref, reason = "exclusive by the claim, as documented")]
    pub(crate) unsafe fn fiber_mut(&self) -> &mut FiberContext {
        // SAFETY: the caller's claim makes the access exclusive.
        unsafe { &mut *self.fiber.get() }
    }

    /// Asks the cache for the stack lines resuming this task's suspended
    /// fiber touches first (see `arch::prefetch`); nothing for a task
    /// without one.
    ///
    /// # Safety
    ///
    /// As for [`fiber_mut`](Self::fiber_mut): the caller holds the claim
    /// (the fiber is suspended, not running), and no reference to the
    /// fiber slot is live.
    #[inline]
    pub(crate) unsafe fn prefetch_fiber(&self) {
        // SAFETY: the caller's claim makes this read exclusive of any
        // write (the fiber is suspended); the reference ends at once.
        unsafe { &*self.fiber.get() }.0.prefetch();
    }

    /// The coroutine of a started task, as a raw pointer: while fibers
    /// switch among themselves (see `arch::switch`), each writes its own
    /// saved stack pointer, so nobody may hold a reference to it across a
    /// switch.
    ///
    /// # Safety
    ///
    /// The task has a fiber, and the caller is its claimant or, while it
    /// runs, the fiber itself; no reference to the fiber slot is live.
    pub(crate) unsafe fn coroutine_ptr(&self) -> *mut FiberCoroutine {
        // SAFETY: the caller's claim (or being the running fiber) makes the
        // access exclusive; the reference ends at once.
        let fiber = unsafe { &mut *self.fiber.get() };
        debug_assert!(fiber.exists(), "a started task has a fiber");
        &raw mut fiber.0
    }

    /// Sets the home worker and registry slot; the claimant does this when
    /// it starts the fiber, and clears them when the body ends.
    ///
    /// # Safety
    ///
    /// As for [`fiber_mut`](Self::fiber_mut).
    pub(crate) unsafe fn set_home(&self, home: *const WorkerShared, slot: usize) {
        // SAFETY: the caller's claim makes the access exclusive.
        unsafe {
            *self.home.get() = home;
            *self.slot.get() = slot;
        }
    }

    /// The home worker of a started task, counted.
    ///
    /// # Safety
    ///
    /// The caller holds the claim, or moved the task from PARKED to
    /// SCHEDULED itself (so the claimant's write happened before, nobody
    /// can claim the task until the caller queues it, and the home worker,
    /// which exits only when all its fibers are done, is alive).
    pub(crate) unsafe fn home(&self) -> Option<Arc<WorkerShared>> {
        // SAFETY: the caller's hand-off rules out a concurrent write.
        let home = unsafe { *self.home.get() };
        if home.is_null() {
            return None;
        }
        // SAFETY: `home` came from `Arc::as_ptr` of the live worker's Arc
        // (see above); we take a count of our own.
        unsafe {
            Arc::increment_strong_count(home);
            Some(Arc::from_raw(home))
        }
    }

    /// The home worker's address, to compare with a worker's.
    ///
    /// # Safety
    ///
    /// As for [`home`](Self::home).
    pub(crate) unsafe fn home_ptr(&self) -> *const WorkerShared {
        // SAFETY: the caller's hand-off rules out a concurrent write.
        unsafe { *self.home.get() }
    }

    /// Sets the registry slot of a started task (see
    /// `Worker::register_running`).
    ///
    /// # Safety
    ///
    /// As for [`fiber_mut`](Self::fiber_mut), or the caller is the task's
    /// running fiber.
    pub(crate) unsafe fn set_slot(&self, slot: usize) {
        // SAFETY: the caller's claim makes the access exclusive.
        unsafe { *self.slot.get() = slot };
    }

    /// The registry slot of a started task (`UNREGISTERED` until its fiber
    /// first switches out).
    ///
    /// # Safety
    ///
    /// As for [`fiber_mut`](Self::fiber_mut), or the caller is the task's
    /// running fiber.
    #[inline]
    pub(crate) unsafe fn slot(&self) -> usize {
        // SAFETY: the caller's claim makes the access exclusive.
        unsafe { *self.slot.get() }
    }

    /// The fiber-side fields. Only the task's own fiber, while it runs,
    /// may dereference the pointer, and no two references made from it may
    /// overlap.
    pub(crate) fn side(&self) -> *mut FiberSide {
        self.side.get()
    }
}

impl fmt::Debug for Header {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Task")
            .field("id", &self.id)
            .field("name", &self.name())
            .field("state", &self.state.load().name())
            .finish()
    }
}

/// A task pointer the fiber's closure carries. The worker's references
/// keep the task alive for the fiber's whole life (see the module doc).
struct TaskPtr(*const TaskCell<dyn Body>);

// SAFETY: it points to a `Send + Sync` task, and is only dereferenced on
// the fiber, while the worker's references keep the task alive.
unsafe impl Send for TaskPtr {}

/// Makes a task's fiber on `stack`: the coroutine runs [`fiber_main`].
///
/// The caller must keep a reference to the task until the fiber is gone
/// (its body returned, or it was dropped): the worker does (see the module
/// doc).
pub(crate) fn make_fiber(
    task: &TaskRef,
    stack: crate::stack_pool::Stack,
) -> std::io::Result<FiberContext> {
    let body_task = TaskPtr(TaskArc::as_ptr(task));
    let body = move |_: &Yielder<(), Reason>, ()| {
        let body_task = body_task;
        // SAFETY: the worker keeps the task alive while its fiber exists
        // (see above).
        fiber_main(unsafe { &*body_task.0 })
    };
    // SAFETY: the name lives in the task's header, which outlives the
    // coroutine: the coroutine is stored in that header and dropped (or its
    // body returns) before the header is.
    let coroutine = unsafe {
        RawCoroutine::with_owner(stack, task.header.id.as_u64(), task.header.name(), body)?
    };
    Ok(FiberContext(coroutine))
}

/// The first frame of every task's fiber: runs the body, catches what it
/// throws, drops the fiber-locals, and reports the outcome.
fn fiber_main(task: &TaskCell<dyn Body>) -> BodyEnd {
    let ran = catch_unwind(AssertUnwindSafe(|| task.body.run(task)));
    // The locals go before the joiner hears of the end; a destructor that
    // panics there is reported like the body's own panic would be.
    // SAFETY: we are the task's fiber, running; no fiber-local is borrowed
    // once the body has returned.
    let locals = std::mem::take(unsafe { &mut (*task.header.side()).locals });
    let dropped = match locals {
        // Most fibers have none: nothing to drop, nothing to catch.
        None => Ok(()),
        Some(locals) => catch_unwind(AssertUnwindSafe(|| drop(locals))),
    };
    let outcome = match (ran, dropped) {
        (Ok(BodyEnd::Idle), Ok(())) => return BodyEnd::Idle,
        (Ok(BodyEnd::Exit), Ok(())) => {
            // The common end, told on its own path: the general one below
            // builds the (large) outcome in one place and copies it.
            task.body.complete_returned();
            return BodyEnd::Exit;
        }
        (Err(payload), _) | (Ok(_), Err(payload))
            if coroutine::is_forced_unwind(payload.as_ref()) =>
        {
            Outcome::Cancelled
        }
        (Err(payload), _) | (Ok(_), Err(payload)) => Outcome::Panicked(payload),
    };
    task.body.complete(outcome);
    BodyEnd::Exit
}
