//! A worker thread: its loop, its own queues, and how fibers find it.
//!
//! # The loop
//!
//! Each round takes one task (`next.rs`) and runs it until its fiber
//! switches back:
//!
//! 1. every 61st round, for fairness: due timers, then the oldest task of
//!    the injector, of its own deque, and of its ready queue;
//! 2. right after a fiber yielded: its deque and the injector, so that
//!    `yield_now` lets unstarted work run too;
//! 3. the LIFO slot (the fiber this worker just woke: message passing
//!    between two fibers stays on one core, cache-hot);
//! 4. the ready queue (its own fibers that yielded or were woken), after
//!    draining the inbox into it when the inbox says it has something;
//! 5. its deque (unstarted tasks, newest first);
//! 6. due timers, then a batch from the injector;
//! 7. nothing: become a searcher and steal, or sleep on its parker until
//!    woken or until the next timer is due (`search.rs`, on the protocol
//!    of `sched/idle.rs`).
//!
//! Started fibers are never stolen (see `mod.rs`); only tasks without
//! frames move between workers.
//!
//! Most rounds between fibers of one worker skip the loop: a fiber that
//! yields or parks while a claimed fiber of its worker is ready switches
//! straight into it (`handoff.rs`), and the loop's `run_task` lands on
//! whichever fiber switches back to it in the end. Shutdown is in
//! `shutdown.rs`.
//!
//! # Thread-local access
//!
//! Fibers reach their worker through [`with_current`], which reads the
//! thread-local in a function that is never inlined: the address of a
//! thread-local must be computed afresh after any point where a fiber may
//! have switched (llvm/llvm-project#98479). The worker's state is all
//! `Cell`/`RefCell`, borrowed only briefly and never across a switch into
//! a fiber, because the fiber's own calls (park, spawn, wake) reach it
//! through the same thread-local while the loop is suspended in `resume`.

use std::cell::{Cell, RefCell};
use std::ptr;
use std::sync::Arc;
use std::time::Instant;

mod handoff;
mod next;
mod search;
mod shutdown;

pub(crate) use self::handoff::HandOff;
use self::next::Taken;

use super::block_pool::LocalBlocks;
use super::queue::LocalQueue;
use super::ready::ReadyQueue;
use super::registry::Registry;
use super::timer::Timers;
use super::{Shared, WorkerShared, cancel_unstarted};
use crate::coroutine::CoroutineResult;
use crate::fiber::state::{Claim, Park};
use crate::fiber::task::{
    Body, BodyEnd, FiberContext, FiberCoroutine, Outcome, Reason, TaskCell, TaskRef,
    leave_count_to_park, make_fiber,
};
use crate::fiber::task_ref::TaskArc;

thread_local! {
    static CURRENT: Cell<*const Worker> = const { Cell::new(ptr::null()) };
}

/// Clears `CURRENT` when dropped.
struct ClearCurrent;

impl Drop for ClearCurrent {
    fn drop(&mut self) {
        CURRENT.with(|c| c.set(ptr::null()));
    }
}

/// The worker running on this thread, if any. Never inlined: see the
/// module doc.
#[inline(never)]
fn current_ptr() -> *const Worker {
    CURRENT.with(Cell::get)
}

/// Calls `f` with this thread's worker (`None` off the workers).
#[inline(always)]
pub(crate) fn with_current<R>(f: impl FnOnce(Option<&Worker>) -> R) -> R {
    // SAFETY: the pointer is set by `Worker::run` for the duration of its
    // loop, on this thread, and cleared before the worker is dropped.
    f(unsafe { current_ptr().as_ref() })
}

/// The registry slot of a started fiber that has not switched out yet
/// (see `Worker::register_running`).
pub(crate) const UNREGISTERED: usize = usize::MAX;

/// How many rounds between fairness checks (a prime, as Go uses).
const FAIRNESS_INTERVAL: u32 = 61;

/// A worker thread's state; lives on the worker thread's stack.
pub(crate) struct Worker {
    shared: Arc<Shared>,
    me: Arc<WorkerShared>,
    /// Whether fibers started here are PINNED (no migration opt-in): then
    /// the LIFO slot, the ready queue and the inbox hold fibers already
    /// claimed for this worker (see `fiber::state`).
    pin: bool,
    local: LocalQueue<TaskRef>,
    /// The fiber most recently woken here: it runs next.
    lifo: Cell<Option<TaskRef>>,
    /// This worker's started fibers that may run (pinned, so claimed).
    ready: ReadyQueue<TaskRef>,
    /// This worker's started fibers, until their bodies end (without the
    /// migration opt-in; with it, `WorkerShared::registry`).
    registry: RefCell<Registry<TaskRef>>,
    timers: RefCell<Timers<TaskRef>>,
    /// The task whose fiber runs now.
    current: Cell<Option<*const TaskCell<dyn Body>>>,
    /// The same task, counted, while `run_task` has entered it: the
    /// reference a hand-off files (or drops) and the landing takes back.
    running: Cell<Option<TaskRef>>,
    /// Whether the running fiber may hand the thread straight to another
    /// (`handoff.rs`): only while `run_task` has entered it, on a runtime
    /// whose fibers are pinned.
    handing_off: Cell<bool>,
    /// The task whose fiber ran on this worker before the current one (an
    /// address, never dereferenced): its stack is still in cache, so
    /// waking it needs no prefetch (`push_woken`).
    previous: Cell<*const ()>,
    tick: Cell<u32>,
    /// The last fiber yielded: the next round looks at unstarted work
    /// first, so `yield_now` lets everything else run, not only the
    /// other started fibers.
    yielded: Cell<bool>,
    searching: Cell<bool>,
    /// `WorkerShared::stolen_from` as of the last fairness round that
    /// looked at this worker's oldest task (`steal_own_oldest`).
    stolen_seen: Cell<u64>,
    /// xorshift state for choosing whom to steal from first.
    rng: Cell<u32>,
    /// Free task blocks (`block_pool`).
    blocks: LocalBlocks,
}

impl Worker {
    /// Runs worker `index` of `shared` on this thread until shutdown.
    pub(crate) fn run(shared: Arc<Shared>, index: usize, local: LocalQueue<TaskRef>) {
        let me = Arc::clone(&shared.workers[index]);
        let worker = Worker {
            pin: !shared.config.migrate,
            shared,
            me,
            local,
            lifo: Cell::new(None),
            ready: ReadyQueue::new(),
            registry: RefCell::new(Registry::new()),
            timers: RefCell::new(Timers::new()),
            current: Cell::new(None),
            running: Cell::new(None),
            handing_off: Cell::new(false),
            previous: Cell::new(ptr::null()),
            tick: Cell::new(0),
            yielded: Cell::new(false),
            searching: Cell::new(false),
            stolen_seen: Cell::new(0),
            rng: Cell::new(0x9E37_79B9 ^ (index as u32 + 1).wrapping_mul(0x85EB_CA6B)),
            blocks: LocalBlocks::new(),
        };
        CURRENT.with(|c| c.set(&worker));
        // Declared after `worker`, so dropped before it, even if the loop
        // unwinds: the task blocks its fields free must not reach a worker
        // whose fields are being dropped (`block_pool`).
        let _clear = ClearCurrent;
        worker.run_loop();
    }

    fn run_loop(&self) {
        loop {
            // Checked every round, not only when idle: a fiber that yields
            // in a loop (or two that wake each other forever) is always
            // runnable, and would otherwise keep the worker from ever
            // reaching its shutdown, hanging the runtime's drop.
            if self.shared.is_shutdown() {
                self.shutdown();
                if self.shared.worker_shut_down() {
                    // The stacks of the fibers the workers unwound, kept
                    // committed until now (`stack_pool::cache::Hoard`):
                    // with the other workers stopped, no CPU but this one
                    // has its TLB flushed.
                    self.shared.trim_pools();
                }
                return;
            }
            if let Some(Taken { task, claimed }) = self.next_task() {
                self.end_search();
                self.run_task(task, claimed);
                continue;
            }
            self.idle();
        }
    }

    /// Whether this worker belongs to the runtime `shared`.
    pub(crate) fn belongs_to(&self, shared: &Arc<Shared>) -> bool {
        Arc::ptr_eq(&self.shared, shared)
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// This worker's free task blocks.
    #[inline]
    pub(crate) fn blocks(&self) -> &LocalBlocks {
        &self.blocks
    }

    /// Whether a fiber whose home is `home` may be resumed by this worker:
    /// only at home, or, under the migration opt-in, on any worker of the
    /// same runtime.
    pub(crate) fn can_resume(&self, home: *const WorkerShared) -> bool {
        if ptr::eq(Arc::as_ptr(&self.me), home) {
            return true;
        }
        // SAFETY: a fiber's home worker is alive while the fiber exists
        // (see `Header::home`), and the caller holds such a fiber.
        self.shared.config.migrate && unsafe { (*home).runtime_id } == self.me.runtime_id
    }

    /// Files a started fiber that may run again: at home (the ready queue),
    /// or, under the migration opt-in, where any worker may take it.
    fn push_runnable(&self, task: TaskRef) {
        if self.pin {
            self.ready.push_back(task);
        } else {
            self.local.push(task);
            self.shared.notify_parked();
        }
    }

    /// Whether this worker's deque of unstarted tasks is empty.
    pub(crate) fn local_is_empty(&self) -> bool {
        self.local.is_empty()
    }

    /// Queues an unstarted task where other workers may steal it.
    pub(crate) fn push_local(&self, task: TaskRef) {
        self.local.push(task);
    }

    /// Queues a fiber of this worker that was just woken: it runs next,
    /// so its stack is asked into the cache now (see [`Self::prefetch`]).
    pub(crate) fn push_woken(&self, task: TaskRef) {
        self.prefetch(&task);
        if let Some(previous) = self.lifo.replace(Some(task)) {
            self.push_runnable(previous);
        }
    }

    /// Asks the cache for the stack of `task`, a suspended fiber of ours
    /// about to run (`arch::prefetch`), unless it is the fiber that ran
    /// just before the current one: two fibers that take turns (a
    /// ping-pong) have both stacks in cache, and the prefetch would only
    /// cost them time (measured: 7 ns a round trip).
    #[inline(always)]
    pub(crate) fn prefetch(&self, task: &TaskCell<dyn Body>) {
        if ptr::from_ref(task).cast::<()>() != self.previous.get() {
            // SAFETY: our caller holds the fiber's claim for this worker:
            // it is suspended, and nobody else touches it until we run it.
            unsafe { task.header.prefetch_fiber() };
        }
    }

    /// Asks the cache for the frames of `task`, a fiber parked in a wait
    /// whose context lies at `waiter` on its stack, before waking it:
    /// see [`crate::arch::prefetch_around`]. Skipped for the fiber that
    /// ran just before the current one, as in [`Self::prefetch`].
    #[inline(always)]
    pub(crate) fn prefetch_waiter(&self, task: *const TaskCell<dyn Body>, waiter: *const u8) {
        if task.cast::<()>() != self.previous.get() {
            crate::arch::prefetch_around(waiter);
        }
    }

    /// The task whose fiber is running on this worker.
    #[inline]
    pub(crate) fn current_task(&self) -> Option<*const TaskCell<dyn Body>> {
        self.current.get()
    }

    /// Arms a timer that wakes `task` at `deadline` if its park sequence
    /// is still `seq` then.
    pub(crate) fn arm_timer(&self, deadline: Instant, seq: u64, task: TaskRef) {
        self.timers.borrow_mut().insert(deadline, seq, task);
    }

    /// Runs `task` until its fiber switches back, then files it where its
    /// state says. Unless `claimed` (a pinned fiber queued at home), it
    /// must be claimed first.
    fn run_task(&self, task: TaskRef, claimed: bool) {
        // Dereferenced once: each dereference of the `Arc` computes the
        // offset of a value whose alignment only the vtable knows, and the
        // compiler reloads it after every call.
        let cell: &TaskCell<dyn Body> = &task;
        if !claimed && cell.header.state.transition_to_running(self.pin) == Claim::Skip {
            return;
        }
        // SAFETY: we hold the claim (RUNNING) until the end of this
        // function, and nothing else touches the slot meanwhile.
        let fiber = unsafe { cell.header.fiber_mut() };
        if !fiber.exists() {
            if self.shared.is_shutdown() || cell.header.state.load().is_cancelled() {
                cell.body.complete(Outcome::Cancelled);
                cell.header.state.transition_to_complete();
                return;
            }
            let pool = cell.header.pool().unwrap_or(&self.shared.pool);
            let stack = match pool.get() {
                Ok(stack) => stack,
                Err(err) => {
                    report_no_stack(&task, &err);
                    cell.body.complete(Outcome::NoStack(err));
                    cell.header.state.transition_to_complete();
                    return;
                }
            };
            *fiber = make_fiber(&task, stack).expect("a task's closure is two words");
            // Registered only when it first switches out (`register_running`):
            // most fibers never do.
            // SAFETY: we hold the claim.
            unsafe { cell.header.set_home(Arc::as_ptr(&self.me), UNREGISTERED) };
        }
        // SAFETY: we hold the claim, and `fiber` is not used again.
        let entered = unsafe { cell.header.coroutine_ptr() };
        self.current.set(Some(ptr::from_ref(cell)));
        self.me.watch.enter(cell.header.id.as_u64());
        self.running.set(Some(task));
        self.handing_off.set(self.pin);
        // SAFETY: the fiber is ours (claimed), started or just made, not
        // running, and no reference to it is live. The fibers it hands the
        // thread to (`handoff.rs`) are claimed pinned fibers of ours too,
        // each set as `current` before it runs.
        let landing = unsafe { FiberCoroutine::enter(entered) };
        self.me.watch.leave();
        self.handing_off.set(false);
        self.current.set(None);
        let task = self
            .running
            .take()
            .expect("the fiber that came back is the running one");
        let cell: &TaskCell<dyn Body> = &task;
        self.previous.set(ptr::from_ref(cell).cast());
        // SAFETY: the fiber that came back is ours (claimed: the one we
        // entered, or a pinned fiber of ours it handed off to), and nothing
        // else refers to its slot now.
        let fiber = unsafe { cell.header.fiber_mut() };
        // SAFETY: `task`'s fiber is the one that came back to `enter`.
        let switched = unsafe { fiber.0.land(landing) };
        match switched {
            CoroutineResult::Yield(Reason::Yield) => {
                // A pinned fiber stays RUNNING: claimed, queued at home.
                if !self.pin {
                    cell.header.state.transition_to_scheduled();
                }
                self.push_runnable(task);
                self.yielded.set(true);
            }
            CoroutineResult::Yield(Reason::Park) => {
                match cell.header.state.transition_to_parked() {
                    Park::Parked => leave_count_to_park(task),
                    Park::Notified => self.push_runnable(task),
                }
            }
            CoroutineResult::Return(end) => {
                *fiber = FiberContext::none();
                self.forget_started(&task);
                match end {
                    BodyEnd::Exit => TaskArc::complete(task),
                    BodyEnd::Idle => {
                        if let Some(task) = TaskArc::go_idle(task) {
                            self.local.push(task);
                            self.shared.notify_parked();
                        }
                    }
                }
            }
        }
    }

    /// Registers the running fiber, which is about to switch out for the
    /// first time, at its home (this worker: a fiber that has never
    /// switched out has not moved). Until now `running` kept its task
    /// alive; from its first switch-out until its body ends the registry
    /// does, so that a fiber parked where nobody can wake it is still found
    /// at shutdown. A fiber that runs to its end without switching out (a
    /// short spawned closure) never costs a registry slot or a count.
    pub(crate) fn register_running(&self, task: TaskRef) {
        let cell = TaskArc::as_ptr(&task);
        let slot = if self.shared.config.migrate {
            self.me.registry.lock().insert(task)
        } else {
            self.registry.borrow_mut().insert(task)
        };
        // SAFETY: the registry keeps the task alive; its fiber runs on this
        // thread, so this worker holds its claim.
        unsafe { (*cell).header.set_slot(slot) };
    }

    /// The started tasks registered here.
    fn registered(&self) -> Vec<TaskRef> {
        if self.shared.config.migrate {
            self.me.registry.lock().iter().cloned().collect()
        } else {
            self.registry.borrow().iter().cloned().collect()
        }
    }

    /// Whether no started task is registered here.
    fn registry_is_empty(&self) -> bool {
        if self.shared.config.migrate {
            self.me.registry.lock().is_empty()
        } else {
            self.registry.borrow().is_empty()
        }
    }

    /// The body ended: the task leaves its home's registry (this worker's,
    /// except under the migration opt-in) and has no home.
    fn forget_started(&self, task: &TaskRef) {
        // SAFETY: we hold the claim.
        let slot = unsafe { task.header.slot() };
        let removed = if slot == UNREGISTERED {
            None
        } else if self.shared.config.migrate {
            // SAFETY: we hold the claim; the home worker is alive while the
            // task is in its registry (it exits only when that is empty).
            let home = unsafe { &*task.header.home_ptr() };
            home.registry.lock().remove(slot)
        } else {
            self.registry.borrow_mut().remove(slot)
        };
        // Dropped after the registry is released: it may be the last
        // reference.
        drop(removed);
        // SAFETY: we hold the claim.
        unsafe { task.header.set_home(ptr::null(), UNREGISTERED) };
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        // Normally empty by now (shutdown drained them); if the loop ended
        // by a panic, still do not leave joiners waiting on queued tasks.
        while let Some(task) = self.local.pop() {
            cancel_unstarted(task);
        }
    }
}

/// A fiber that cannot start has no other way to be heard if nobody joins
/// it: say so on stderr, with the fix the stack error names.
fn report_no_stack(task: &TaskRef, err: &crate::stack_pool::StackError) {
    match task.header.name() {
        Some(name) => eprintln!("weft: fiber '{name}' could not start: {err}"),
        None => eprintln!("weft: fiber {} could not start: {err}", task.header.id),
    }
}
