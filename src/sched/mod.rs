//! The M:N scheduler: workers, run queues, wake routing, shutdown.
//!
//! # Where a task goes
//!
//! | what | where | who may run it |
//! | --- | --- | --- |
//! | spawned on a worker | that worker's deque (LIFO) | any worker (stolen) |
//! | spawned from outside | the injector (FIFO) | any worker |
//! | woken from IDLE (an actor) | as if spawned | any worker |
//! | yielded | its home worker's ready queue | its home worker |
//! | woken from PARKED on its home thread | its home worker's LIFO slot | its home worker |
//! | woken from PARKED elsewhere | its home worker's inbox, then unpark it | its home worker |
//!
//! Without the migration opt-in, every entry of the last three rows is
//! already claimed for its home worker (the PINNED protocol of
//! `fiber::state`): a yield, a park that finds its token, or a wake moves
//! no state word through SCHEDULED, and the home worker runs the fiber
//! without another compare-exchange.
//!
//! A task that has not started (or is between runs) holds no frames, so
//! any worker may take it. A started fiber resumes only on the worker it
//! started on (its *home*): code may hold thread-local references or
//! `std::sync` guards across a blocking point, and LLVM may cache a
//! thread-local's address across one (llvm/llvm-project#98479). See
//! `DESIGN.md`, "Where a fiber runs".
//!
//! # Shutdown
//!
//! Dropping the runtime sets `shutdown` and wakes every worker. Each worker
//! then, on its own thread: marks every started fiber it owns CANCELLED
//! (parks and yields return at once), unwinds each one (its destructors
//! run; `JoinError::is_cancelled` for its joiner), completes the
//! unstarted tasks it holds as cancelled, and exits when it owns nothing.
//! The dropping thread joins the workers, cancels what is left in the
//! injector, and stops the blocking pool. A spawn that races with this
//! checks `shutdown` after pushing (a `SeqCst` fence on both sides) and
//! cancels its own task if the drain may have missed it.

pub(crate) mod block_pool;
pub(crate) mod blocking;
pub(crate) mod driver;
mod idle;
mod inbox;
pub(crate) mod monitor;
mod park;
mod queue;
mod ready;
mod registry;
mod timer;
pub(crate) mod worker;

#[cfg(test)]
mod tests;

use std::any::Any;
use std::sync::{Arc, Weak};

use self::blocking::BlockingPool;
use self::driver::{Driver, DriverGate};
use self::idle::Idle;
use self::inbox::Inbox;
use self::monitor::Watch;
use self::park::Parker;
use self::queue::{Injector, LocalQueue, Stealer};
use self::registry::Registry;
use crate::fiber::state::{Claim, Wake};
use crate::fiber::task::{Body, Outcome, TaskCell, TaskRef, take_woken_count};
use crate::loom::sync::Mutex;
use crate::loom::sync::atomic::{AtomicBool, Ordering, fence};
use crate::stack_pool::{StackError, StackPool};

/// Settings fixed at build time.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) workers: usize,
    pub(crate) thread_name_prefix: String,
    /// The `unsafe` opt-in: started fibers may resume on any worker.
    pub(crate) migrate: bool,
}

/// What every worker and handle of one runtime shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) workers: Box<[Arc<WorkerShared>]>,
    pub(crate) injector: Injector<TaskRef>,
    pub(crate) idle: Idle,
    shutdown: AtomicBool,
    /// How many workers have finished their shutdown; the last one trims
    /// the pools (`Worker::run_loop`).
    shut_down_workers: std::sync::atomic::AtomicUsize,
    /// The runtime's stacks, of the default size.
    pub(crate) pool: StackPool,
    /// Pools for fibers built with another stack size, made on first use.
    other_pools: Mutex<Vec<StackPool>>,
    pub(crate) blocking: BlockingPool,
    /// Free task blocks, for the workers' lists to refill from.
    pub(crate) blocks: block_pool::SharedBlocks,
    pub(crate) config: Config,
    /// The I/O driver (the reactor), if the runtime has one.
    pub(crate) driver: Option<DriverGate>,
    /// The same reactor as its own layer sees it (`net` downcasts it):
    /// sched never looks inside.
    pub(crate) io: Option<Arc<dyn Any + Send + Sync>>,
}

/// The part of a worker other threads see.
#[derive(Debug)]
pub(crate) struct WorkerShared {
    pub(crate) index: usize,
    /// Which runtime the worker belongs to (unique in the process).
    pub(crate) runtime_id: usize,
    /// That runtime, for wakes under the migration opt-in (which go to its
    /// injector); weak, so the runtime's workers do not keep it alive.
    runtime: Weak<Shared>,
    /// The runtime's migration opt-in, copied here for the wake path.
    migrate: bool,
    /// Fibers of this worker woken by other threads.
    pub(crate) inbox: Inbox<TaskRef>,
    pub(crate) parker: Parker,
    pub(crate) stealer: Stealer<TaskRef>,
    /// How many times another worker stole from this one's deque (a hint
    /// for `Worker::steal_own_oldest`; relaxed, no protocol rests on it).
    pub(crate) stolen_from: std::sync::atomic::AtomicU64,
    /// Under the migration opt-in, the started fibers registered here,
    /// until their bodies end (see `registry.rs`): locked, because a fiber
    /// may end on another worker. Without the opt-in the registry is the
    /// worker's own, unlocked (`Worker::registry`), and this stays empty.
    pub(crate) registry: Mutex<Registry<TaskRef>>,
    /// What the stall monitor reads (see `monitor.rs`).
    pub(crate) watch: Watch,
}

impl Shared {
    /// The shared state and each worker's own deque.
    pub(crate) fn new(
        config: Config,
        pool: StackPool,
        blocking: BlockingPool,
        driver: Option<Arc<dyn Driver>>,
        io: Option<Arc<dyn Any + Send + Sync>>,
    ) -> (Arc<Shared>, Vec<LocalQueue<TaskRef>>) {
        static NEXT_RUNTIME_ID: std::sync::atomic::AtomicUsize =
            std::sync::atomic::AtomicUsize::new(1);
        let runtime_id = NEXT_RUNTIME_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let locals: Vec<LocalQueue<TaskRef>> =
            (0..config.workers).map(|_| LocalQueue::new()).collect();
        let shared = Arc::new_cyclic(|runtime| Shared {
            workers: locals
                .iter()
                .enumerate()
                .map(|(index, local)| {
                    Arc::new(WorkerShared {
                        index,
                        runtime_id,
                        runtime: runtime.clone(),
                        migrate: config.migrate,
                        inbox: Inbox::new(),
                        parker: Parker::with_driver(driver.clone()),
                        stealer: local.stealer(),
                        stolen_from: std::sync::atomic::AtomicU64::new(0),
                        registry: Mutex::new(Registry::new()),
                        watch: Watch::default(),
                    })
                })
                .collect(),
            injector: Injector::new(),
            idle: Idle::new(config.workers),
            shutdown: AtomicBool::new(false),
            shut_down_workers: std::sync::atomic::AtomicUsize::new(0),
            pool,
            other_pools: Mutex::new(Vec::new()),
            blocking,
            blocks: block_pool::SharedBlocks::new(),
            config,
            driver: driver.map(DriverGate::new),
            io,
        });
        (shared, locals)
    }

    pub(crate) fn is_shutdown(&self) -> bool {
        self.shutdown.load(Ordering::Acquire)
    }

    /// Starts the shutdown (see the module doc) and wakes every worker.
    pub(crate) fn begin_shutdown(&self) {
        self.shutdown.store(true, Ordering::SeqCst);
        // Pairs with the fence in `spawn`: a spawner that does not see
        // `shutdown` pushed before the drains that follow.
        fence(Ordering::SeqCst);
        for worker in self.workers.iter() {
            worker.parker.unpark();
        }
    }

    /// Cancels every task left in the injector (after the workers exited).
    pub(crate) fn drain_injector(&self) {
        while let Some(task) = self.injector.steal() {
            cancel_unstarted(task);
        }
    }

    /// Queues a new task: on the deque of `current`, this thread's worker
    /// (the caller has looked it up, `None` off the workers), if it is one
    /// of ours, else on the injector; then wakes a sleeper if nobody is
    /// searching.
    pub(crate) fn spawn_from(self: &Arc<Self>, current: Option<&worker::Worker>, task: TaskRef) {
        if self.is_shutdown() {
            cancel_unstarted(task);
            return;
        }
        if let Some(worker) = current.filter(|w| w.belongs_to(self)) {
            // The worker drains its own deque when it shuts down, after
            // this fiber has switched back to it: no race to close.
            worker.push_local(task);
        } else {
            self.injector.push(task);
            // Pairs with the fence in `begin_shutdown`: either the final
            // drain sees our push, or we see `shutdown` and drain it.
            fence(Ordering::SeqCst);
            if self.shutdown.load(Ordering::SeqCst) {
                self.drain_injector();
                return;
            }
        }
        self.notify_parked();
    }

    /// Queues a task woken from IDLE (an actor that got a message). From a
    /// fiber on one of our workers whose deque is empty, it goes on that
    /// deque without waking another worker: the waker's worker runs it as
    /// soon as the waking fiber switches out, as tokio's LIFO slot does,
    /// and a message passed along a chain of actors stays on one worker
    /// instead of waking the other for every hop (actor_ring_1m 272 -> 232
    /// ns/hop). A second task queued behind it wakes a sleeper as a spawn
    /// does; a waking fiber that then holds its worker for long has the
    /// stall monitor wake one (`monitor.rs`). Otherwise: as
    /// [`spawn_from`](Self::spawn_from).
    pub(crate) fn schedule_woken(self: &Arc<Self>, task: TaskRef) {
        worker::with_current(|current| {
            match current.filter(|w| w.belongs_to(self) && w.local_is_empty()) {
                // The worker drains its deque when it shuts down, after the
                // waking fiber has switched back to it (as in `spawn_from`).
                Some(worker) if !self.is_shutdown() => worker.push_local(task),
                _ => self.spawn_from(current, task),
            }
        });
    }

    /// Wakes a sleeping worker to look for stealable work, unless one is
    /// searching already.
    pub(crate) fn notify_parked(&self) {
        if let Some(index) = self.idle.worker_to_notify() {
            self.workers[index].parker.unpark();
        }
    }

    /// Whether any stealable work is queued anywhere.
    pub(crate) fn has_stealable_work(&self) -> bool {
        !self.injector.is_empty() || self.workers.iter().any(|w| !w.stealer.is_empty())
    }

    /// Counts a worker whose shutdown is done; whether it was the last.
    pub(crate) fn worker_shut_down(&self) -> bool {
        let done = self
            .shut_down_workers
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        done + 1 == self.workers.len()
    }

    /// Gives every idle stack's memory back to the kernel (the runtime has
    /// shut down: none will be used again).
    pub(crate) fn trim_pools(&self) {
        self.pool.trim();
        for pool in self.other_pools.lock().iter() {
            pool.trim();
        }
    }

    /// The pool for fibers whose stacks are `size` bytes (the runtime's
    /// own when `size` rounds to its size).
    pub(crate) fn pool_for(&self, size: usize) -> Result<StackPool, StackError> {
        let wanted = StackPool::builder()
            .stack_size(size)
            .guard_size(self.pool.guard_size())
            .budget(self.pool.budget());
        let probe = wanted.clone().build()?;
        if probe.stack_size() == self.pool.stack_size() {
            return Ok(self.pool.clone());
        }
        let mut pools = self.other_pools.lock();
        if let Some(pool) = pools.iter().find(|p| p.stack_size() == probe.stack_size()) {
            return Ok(pool.clone());
        }
        pools.push(probe.clone());
        Ok(probe)
    }
}

/// Completes a task that never started as cancelled, if nobody claimed it.
pub(crate) fn cancel_unstarted(task: TaskRef) {
    task.header.state.cancel();
    if task.header.state.transition_to_running(false) == Claim::Run {
        task.body.complete(Outcome::Cancelled);
        task.header.state.transition_to_complete();
    }
}

/// Wakes a task (std's `unpark`), from any thread: see the table in the
/// module doc for where it goes.
pub(crate) fn wake(task: &TaskRef) {
    wake_by(task);
}

/// [`wake`] for a caller that holds the task under another type (it must
/// keep it alive for the call). No reference is taken here: a task woken
/// from PARKED is queued with the count its park left, and one woken from
/// IDLE with the count the wake's compare-exchange added (see
/// `fiber::task`, "References").
pub(crate) fn wake_by(task: &TaskCell<dyn Body>) {
    wake_then(task, resume);
}

/// [`wake_by`] for a fiber parked in a wait whose context lies at
/// `waiter` on its stack (a channel's or a lock's hand-off). Its frames
/// are asked into the cache before its task's header is touched: in a
/// ring of many fibers both are cold, and [`worker::Worker::prefetch`]
/// can only start on the frames once the header, which holds the saved
/// stack pointer, has come in. The frames lie around the context (the
/// park's below it, the wait's callers' above), so this starts on both
/// at once (see `Worker::prefetch_waiter`).
#[inline(always)]
pub(crate) fn wake_waiter(task: &TaskCell<dyn Body>, waiter: *const u8) {
    // The worker is looked up before the wake, and used after it; a
    // closure around both, for `with_current`, was not inlined (20
    // instructions a ping-pong message more, its captures built on the
    // stack), so the pointer is taken out of it.
    let current = worker::with_current(|current| current.map(std::ptr::from_ref));
    // SAFETY: `with_current`'s worker stays valid until this thread next
    // switches fibers, and a wake does not switch.
    let current = current.map(|worker| unsafe { &*worker });
    if let Some(worker) = current {
        worker.prefetch_waiter(task, waiter);
    }
    wake_then(task, |task| resume_on(current, task));
}

/// Wakes `task` and queues it: a task woken from IDLE is scheduled, a
/// fiber woken from PARKED goes to `resume`.
#[inline(always)]
fn wake_then(task: &TaskCell<dyn Body>, resume: impl FnOnce(TaskRef)) {
    match task.header.state.wake() {
        Wake::Nothing => {}
        // The queue's reference is the count the wake's compare-exchange
        // added; the body is reached through the caller's reference,
        // which lives for the call.
        // SAFETY: our wake moved the task out of IDLE, adding the count.
        Wake::Schedule => task.body.schedule_idle(unsafe { take_woken_count(task) }),
        // SAFETY: our wake moved the task out of PARKED.
        Wake::Resume => resume(unsafe { take_woken_count(task) }),
    }
}

/// Queues a fiber that `wake` moved out of PARKED (to SCHEDULED, or to
/// RUNNING, claimed for its home, if pinned). Inlined into [`wake_by`]:
/// a call and a frame less on every wake. (Inlining what it calls too,
/// `State::wake` and `push_woken`, cut 20 more instructions a round trip
/// but grew the channels' `recv_wait` frame by 16 bytes, and a ring of
/// 100,000 fibers, where that frame is a cold stack line per hop, went
/// from 156 to 193 ns/hop.)
#[inline(always)]
fn resume(task: TaskRef) {
    worker::with_current(move |current| resume_on(current, task));
}

/// [`resume`] with this thread's worker, `current`, looked up already.
#[inline(always)]
fn resume_on(current: Option<&worker::Worker>, task: TaskRef) {
    // SAFETY: we moved the task out of PARKED ourselves, and nobody can
    // claim it before we queue it.
    let home = unsafe { task.header.home_ptr() };
    match current {
        Some(worker) if worker.can_resume(home) => worker.push_woken(task),
        _ => resume_elsewhere(task),
    }
}

/// [`resume`] from a thread that may not run the fiber: out of line, so
/// that the common case (a wake on the fiber's own worker) stays small.
#[inline(never)]
fn resume_elsewhere(task: TaskRef) {
    // Another thread: hand it to the home worker. Our count keeps the
    // worker's shared part alive past the push, after which the task may
    // complete and the worker exit.
    // SAFETY: `resume` moved the task out of PARKED, and nobody has
    // queued it since.
    let home = unsafe { task.header.home() }.expect("a parked fiber has a home worker");
    if home.migrate
        && let Some(runtime) = home.runtime.upgrade()
    {
        // Under the migration opt-in any worker may take it: a home worker
        // stuck in one fiber does not strand the others.
        runtime.injector.push(task);
        runtime.notify_parked();
        return;
    }
    home.inbox.push(task);
    home.parker.unpark();
}
