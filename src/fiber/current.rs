//! The running fiber: `current`, `park`, `park_timeout`, `yield_now`,
//! `sleep`. Off a fiber, each behaves like its `std::thread` counterpart on
//! the calling thread, so library code works in both worlds.

use std::time::{Duration, Instant};

use super::Fiber;
use super::local::Locals;
use super::task::{Body, FiberCoroutine, Reason, TaskCell, TaskRef};
use super::task_ref::TaskArc;
use crate::sched::worker::{self, HandOff, UNREGISTERED, Worker};

/// The task whose fiber is running on this thread, if any. The pointer is
/// valid while that fiber runs (its worker and its own frames hold it).
fn current_task() -> Option<*const TaskCell<dyn Body>> {
    worker::with_current(|w| w.and_then(|w| w.current_task()))
}

/// The running fiber's task and the worker running it, found with one
/// thread-local lookup. The task pointer stays valid while the fiber runs;
/// the worker pointer only until the fiber next switches out (under the
/// migration opt-in it may come back on another worker).
#[derive(Clone, Copy)]
struct Running {
    worker: *const Worker,
    task: *const TaskCell<dyn Body>,
}

impl Running {
    #[inline(always)]
    fn find() -> Option<Running> {
        worker::with_current(|w| {
            let w = w?;
            w.current_task().map(|task| Running { worker: w, task })
        })
    }

    #[inline(always)]
    fn task(&self) -> &TaskCell<dyn Body> {
        // SAFETY: see `current_task`: the fiber is running.
        unsafe { &*self.task }
    }

    /// A counted reference to the task.
    fn task_ref(&self) -> TaskRef {
        // SAFETY: `task` came from `TaskArc::as_ptr` of a TaskRef the
        // worker holds while the fiber runs; we add a count for the new
        // reference.
        unsafe {
            TaskArc::increment_count(self.task);
            TaskArc::from_raw(self.task)
        }
    }

    #[inline(always)]
    fn worker(&self) -> &Worker {
        // SAFETY: the worker lives on its thread's stack for as long as
        // its loop runs, which includes this fiber's run; `Running` is
        // used only before the fiber's next switch-out (see above).
        unsafe { &*self.worker }
    }
}

/// The running fiber's fiber-local storage.
pub(crate) fn locals_ptr() -> Option<*mut Option<Box<Locals>>> {
    // SAFETY: the task is running (see `current_task`); taking the field's
    // address makes no reference.
    current_task().map(|task| unsafe { &raw mut (*(*task).header.side()).locals })
}

/// Whether the calling fiber is being cancelled: its runtime is shutting
/// down, so its parks and yields return at once (it is being unwound, or is
/// about to be). A blocking operation that would wait must then give up
/// instead of parking in a loop. Off a fiber: false.
pub(crate) fn is_cancelled() -> bool {
    // SAFETY: see `current_task`.
    current_task().is_some_and(|task| unsafe { &*task }.header.state.load().is_cancelled())
}

/// Switches the running fiber out: straight into the next fiber its
/// worker would run, when it can (`sched::worker::handoff`), else to the
/// worker. A cancelled fiber (the runtime is shutting down, and its
/// destructors may be running) never suspends: this returns at once, like
/// a spurious wake-up.
#[inline(always)]
fn switch_out(running: Running, reason: Reason) {
    let task = running.task();
    if task.header.state.load().is_cancelled() {
        return;
    }
    // SAFETY: we are the task's running fiber.
    if unsafe { task.header.slot() } == UNREGISTERED {
        running.worker().register_running(running.task_ref());
    }
    let handed = running.worker().hand_off(task, reason);
    if handed != HandOff::ToLoop {
        return;
    }
    if reason == Reason::Yield {
        // `yield_now` is inlined into its callers; a yield goes to the loop
        // only on a fairness round or with unstarted work waiting.
        suspend_to_loop(task, reason);
    } else {
        // SAFETY: we are the task's running fiber, inside its body, and
        // hold no reference to its coroutine.
        unsafe { FiberCoroutine::suspend(task.header.coroutine_ptr(), reason) };
    }
}

/// The running fiber `task` switches out to its worker's loop for
/// `reason`: [`switch_out`]'s last step, out of line.
#[inline(never)]
fn suspend_to_loop(task: &TaskCell<dyn Body>, reason: Reason) {
    // SAFETY: `switch_out`'s caller is the task's running fiber, inside its
    // body, and holds no reference to its coroutine.
    unsafe { FiberCoroutine::suspend(task.header.coroutine_ptr(), reason) };
}

/// A handle to the fiber (or, off a fiber, the thread) that calls it.
///
/// ```
/// weft::run(|| {
///     let me = weft::fiber::current();
///     assert!(me.name().is_none());
///     let named = weft::fiber::Builder::new()
///         .name("worker-7")
///         .spawn(|| weft::fiber::current().name().map(str::to_owned))
///         .unwrap();
///     assert_eq!(named.join().unwrap().as_deref(), Some("worker-7"));
/// });
/// ```
pub fn current() -> Fiber {
    match Running::find().map(|running| running.task_ref()) {
        Some(task) => Fiber::from_task(task),
        None => Fiber::from_thread(std::thread::current()),
    }
}

/// Blocks the calling fiber until its token is available, like
/// `std::thread::park`: if [`Fiber::unpark`] was called since the last
/// park returned, this consumes that token and returns at once; otherwise
/// the fiber sleeps (its worker runs other fibers) until unparked. It may
/// also return spuriously, so callers re-check their condition in a loop.
///
/// Off a fiber: `std::thread::park`.
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicBool, Ordering};
///
/// weft::run(|| {
///     let flag = Arc::new(AtomicBool::new(false));
///     let me = weft::fiber::current();
///     let setter = {
///         let flag = flag.clone();
///         weft::spawn(move || {
///             flag.store(true, Ordering::Release);
///             me.unpark();
///         })
///     };
///     while !flag.load(Ordering::Acquire) {
///         weft::fiber::park();
///     }
///     setter.join().unwrap();
/// });
/// ```
pub fn park() {
    park_inline();
}

/// [`park`], inlined into the waits of `sync` (see `waiter::park::park`)
/// and, through `park`, into nothing else: a public call stays a call.
#[inline(always)]
pub(crate) fn park_inline() {
    match Running::find() {
        Some(running) => {
            if !running.task().header.state.try_consume_notification() {
                switch_out(running, Reason::Park);
            }
        }
        None => std::thread::park(),
    }
}

/// [`park`], but for no longer than `timeout` (it may return earlier, or
/// spuriously). Off a fiber: `std::thread::park_timeout`.
///
/// ```
/// use std::time::{Duration, Instant};
///
/// weft::run(|| {
///     let start = Instant::now();
///     weft::fiber::park_timeout(Duration::from_millis(20));
///     assert!(start.elapsed() >= Duration::from_millis(20) || cfg!(any()));
/// });
/// ```
pub fn park_timeout(timeout: Duration) {
    match Running::find() {
        Some(running) => match Instant::now().checked_add(timeout) {
            Some(deadline) => park_until(running, deadline),
            None => park(),
        },
        None => std::thread::park_timeout(timeout),
    }
}

/// Parks the running fiber until woken or until `deadline`.
fn park_until(running: Running, deadline: Instant) {
    let task = running.task();
    if task.header.state.try_consume_notification() {
        return;
    }
    let seq = task
        .header
        .timer_seq
        .load(std::sync::atomic::Ordering::Relaxed);
    running
        .worker()
        .arm_timer(deadline, seq, running.task_ref());
    switch_out(running, Reason::Park);
    // Disarm: a timer armed with `seq` that fires later wakes nobody.
    task.header
        .timer_seq
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

/// Puts the calling fiber to sleep for at least `duration`; its worker runs
/// other fibers meanwhile. Unparking the fiber does not cut the sleep
/// short. Off a fiber: `std::thread::sleep`.
///
/// ```
/// use std::time::{Duration, Instant};
///
/// let slept = weft::run(|| {
///     let start = Instant::now();
///     weft::sleep(Duration::from_millis(10));
///     start.elapsed()
/// });
/// assert!(slept >= Duration::from_millis(10));
/// ```
pub fn sleep(duration: Duration) {
    if Running::find().is_none() {
        return std::thread::sleep(duration);
    }
    // Each round looks the worker up again: a switch-out may end on
    // another worker under the migration opt-in.
    let running = || Running::find().expect("a fiber stays a fiber");
    let Some(deadline) = Instant::now().checked_add(duration) else {
        // Longer than the clock can count: sleep until cancelled.
        loop {
            let running = running();
            if running.task().header.state.load().is_cancelled() {
                return;
            }
            switch_out(running, Reason::Park);
        }
    };
    loop {
        let running = running();
        if running.task().header.state.load().is_cancelled() || Instant::now() >= deadline {
            return;
        }
        park_until(running, deadline);
    }
}

/// Yields to a fiber woken on this worker (by the caller, as a rule) if
/// the yield goes straight to it, so that it runs now and the caller
/// right after it; true if it yielded. Off a fiber, with no such fiber, or
/// with unstarted work that a yield would run first: false, at once.
///
/// For an actor whose mailbox is empty (`actor::cell`): the asker it just
/// answered may ask again before the actor would have gone idle. A yield
/// that let unstarted tasks run first would keep the actor's stack while
/// they do, and an unstarted actor that started meanwhile would find the
/// same woken fiber waiting and yield too: a worker with many unstarted
/// actors held a stack for each (caught by `actor_memory` in a debug
/// build).
pub(crate) fn yield_to_woken() -> bool {
    let Some(running) = running_with_woken() else {
        return false;
    };
    switch_out(running, Reason::Yield);
    // Once in 61 rounds the worker's loop takes the oldest fiber of its
    // ready queue before the LIFO slot (fairness), and that is us: then
    // the woken fiber has not run yet, and one more turn lets it.
    if let Some(running) = running_with_woken() {
        switch_out(running, Reason::Yield);
    }
    true
}

/// Whether [`yield_to_woken`] would yield now.
pub(crate) fn woken_waits() -> bool {
    running_with_woken().is_some()
}

/// The running fiber, if a yield would hand its worker straight to a
/// fiber woken there.
fn running_with_woken() -> Option<Running> {
    Running::find().filter(|running| running.worker().yield_reaches_woken())
}

/// Lets the other fibers of this worker run, then continues. Off a fiber:
/// `std::thread::yield_now`.
///
/// ```
/// weft::run(|| {
///     let other = weft::spawn(|| 1);
///     while !other.is_finished() {
///         weft::yield_now();
///     }
///     assert_eq!(other.join().unwrap(), 1);
/// });
/// ```
// Inlined into the caller (with the helpers it reaches, marked `inline`
// for that): a yield is a switch, which clobbers every register, and in
// the caller's frame the callee-saved ones are saved once for its loop
// instead of once a yield, with no call either (yield_1w 12.5 -> 9.5 ns).
#[inline]
pub fn yield_now() {
    match Running::find() {
        Some(running) => switch_out(running, Reason::Yield),
        None => std::thread::yield_now(),
    }
}
