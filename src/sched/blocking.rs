//! The blocking pool: OS threads for work that would block a worker.
//!
//! [`blocking`] hands a closure to this pool and parks the
//! calling fiber until it is done. The pool grows on demand up to a bound
//! (its threads are made only when no idle one can take the job) and an
//! idle thread exits after a keep-alive period. Jobs beyond the bound wait
//! in a queue.
//!
//! Plain `std::sync` primitives: the pool is ordinary threads and a
//! condition variable, outside the loom-modelled protocols.
//!
//! At shutdown the pool stops taking jobs, wakes its idle threads and
//! joins them. A job still running (a `blocking` call that sleeps for an
//! hour, say) cannot be interrupted: its thread is left to finish on its
//! own and exit, and its result is dropped.

use std::collections::VecDeque;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::Duration;

use crate::runtime::Handle;
use crate::sched::worker;

/// A job for the pool.
pub(crate) type Job = Box<dyn FnOnce() + Send + 'static>;

/// The pool; cheap to clone.
#[derive(Clone)]
pub(crate) struct BlockingPool {
    inner: Arc<Inner>,
}

struct Inner {
    state: Mutex<State>,
    /// Signals idle threads (a job or shutdown) and `shutdown` (a thread left).
    cvar: Condvar,
    max_threads: usize,
    keep_alive: Duration,
    thread_name: String,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Job>,
    threads: usize,
    /// Threads waiting for a job (counted until they wake up).
    idle: usize,
    /// Idle threads a `spawn` has already notified for its job, and that
    /// have not woken up yet: they count as taken, so that a burst of jobs
    /// starts new threads instead of queueing every job behind the one
    /// idle thread that all of them saw.
    notified: usize,
    shutdown: bool,
    /// Handles of every thread not joined yet.
    handles: Vec<thread::JoinHandle<()>>,
    /// Threads that have left their loop (they only return from here on):
    /// their handles can be joined without waiting on a job.
    exited: Vec<thread::ThreadId>,
}

impl State {
    /// Removes the handles of exited threads, to be joined.
    fn take_exited(&mut self) -> Vec<thread::JoinHandle<()>> {
        let exited = std::mem::take(&mut self.exited);
        let (done, live) = std::mem::take(&mut self.handles)
            .into_iter()
            .partition(|h| exited.contains(&h.thread().id()));
        self.handles = live;
        done
    }
}

impl BlockingPool {
    pub(crate) fn new(
        max_threads: usize,
        keep_alive: Duration,
        thread_name: String,
    ) -> BlockingPool {
        BlockingPool {
            inner: Arc::new(Inner {
                state: Mutex::new(State::default()),
                cvar: Condvar::new(),
                max_threads,
                keep_alive,
                thread_name,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Jobs run outside the lock and catch their own panics, so the
        // lock is never poisoned; recover anyway rather than panic.
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `job`; returns it back if the pool has shut down or cannot
    /// start a thread when it has none.
    pub(crate) fn spawn(&self, job: Job) -> Result<(), Job> {
        let mut state = self.lock();
        if state.shutdown {
            return Err(job);
        }
        state.queue.push_back(job);
        if state.idle > state.notified {
            state.notified += 1;
            self.inner.cvar.notify_one();
            return Ok(());
        }
        if state.threads >= self.inner.max_threads {
            return Ok(());
        }
        // Reap threads that left after their keep-alive, so a long-lived
        // pool does not collect handles.
        let exited = state.take_exited();
        let pool = self.clone();
        let spawned = thread::Builder::new()
            .name(self.inner.thread_name.clone())
            .spawn(move || pool.run());
        let result = match spawned {
            Ok(handle) => {
                state.threads += 1;
                state.handles.push(handle);
                Ok(())
            }
            // No thread could be made: if another thread will get to the
            // job, leave it queued; otherwise hand it back.
            Err(_) if state.threads > 0 => Ok(()),
            Err(_) => Err(state.queue.pop_back().expect("just pushed")),
        };
        drop(state);
        for handle in exited {
            let _ = handle.join();
        }
        result
    }

    fn run(&self) {
        let mut state = self.lock();
        loop {
            if let Some(job) = state.queue.pop_front() {
                drop(state);
                job();
                state = self.lock();
                continue;
            }
            if state.shutdown {
                break;
            }
            state.idle += 1;
            let (guard, timeout) = self
                .inner
                .cvar
                .wait_timeout(state, self.inner.keep_alive)
                .unwrap_or_else(|e| e.into_inner());
            state = guard;
            state.idle -= 1;
            // Whatever woke us (a spawn's notify, a timeout, the notify_all
            // of a thread leaving), we are no longer idle: take one
            // notification off the count, so it never exceeds `idle`.
            state.notified = state.notified.saturating_sub(1);
            if timeout.timed_out() && state.queue.is_empty() && !state.shutdown {
                break;
            }
        }
        state.threads -= 1;
        state.exited.push(thread::current().id());
        self.inner.cvar.notify_all();
    }

    /// Stops taking jobs, lets idle threads exit and joins them; threads
    /// still running a job are left to finish it (see the module doc).
    pub(crate) fn shutdown(&self) {
        let handles = {
            let mut state = self.lock();
            state.shutdown = true;
            // Jobs nobody started: dropped, which wakes no one (a fiber that
            // waits for one is being cancelled too).
            let dropped: Vec<Job> = state.queue.drain(..).collect();
            drop(state);
            drop(dropped);
            self.inner.cvar.notify_all();
            let mut state = self.lock();
            // Wait (bounded) for idle threads to leave; busy ones are not
            // waited for.
            let deadline = std::time::Instant::now() + Duration::from_millis(100);
            while state.threads > 0 && state.threads > busy(&state) {
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                if left.is_zero() {
                    break;
                }
                state = self
                    .inner
                    .cvar
                    .wait_timeout(state, left)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
            state.take_exited()
        };
        // These threads have left their loop: joining them waits only for
        // their last instructions. Threads still running a job are not in
        // the list; they exit on their own when the job is done.
        for handle in handles {
            let _ = handle.join();
        }
    }
}

/// Threads running a job.
fn busy(state: &State) -> usize {
    state.threads - state.idle
}

impl fmt::Debug for BlockingPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlockingPool")
            .field("max_threads", &self.inner.max_threads)
            .finish_non_exhaustive()
    }
}

/// Runs `f` on the runtime's blocking pool (separate OS threads) and
/// parks the calling fiber until it returns; returns `f`'s value, or
/// re-raises its panic in the fiber. Use it for work that would block a
/// worker thread: synchronous file or DNS calls, CPU-heavy loops, C
/// libraries. Inside `f`, [`spawn`](crate::spawn) spawns onto the same
/// runtime.
///
/// Off a fiber, `f` simply runs on the calling thread; so it does in a
/// fiber being cancelled (its runtime is shutting down and unwinding it: a
/// destructor calls `blocking`, say), whose parks return at once: waiting
/// for the pool would spin.
///
/// ```
/// let len = weft::run(|| weft::blocking(|| std::fs::read_to_string("Cargo.toml").map(|s| s.len())));
/// assert!(len.unwrap() > 0);
/// ```
pub fn blocking<F, T>(f: F) -> T
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let Some(handle) =
        worker::with_current(|w| w.map(|w| Handle::from_shared(Arc::clone(w.shared()))))
    else {
        return f();
    };
    if crate::fiber::current::is_cancelled() {
        return f();
    }
    let slot = Arc::new(Slot {
        result: Mutex::new(None),
        done: AtomicBool::new(false),
    });
    let me = crate::fiber::current();
    let job: Job = {
        let slot = Arc::clone(&slot);
        let handle = handle.clone();
        Box::new(move || {
            let result = handle.enter(|| catch_unwind(AssertUnwindSafe(f)));
            *slot.result.lock().unwrap_or_else(|e| e.into_inner()) = Some(result);
            // Release: publishes the result to the fiber's Acquire load.
            slot.done.store(true, Ordering::Release);
            me.unpark();
        })
    };
    if let Err(job) = handle.shared().blocking.spawn(job) {
        // The pool has shut down (the runtime is stopping): run it here.
        job();
    }
    while !slot.done.load(Ordering::Acquire) {
        if crate::fiber::current::is_cancelled() {
            // Cancelled while the job runs (the shutdown began after we
            // parked): parks return at once now, so poll gently instead
            // of spinning until the job is done.
            thread::sleep(CANCELLED_POLL);
        } else {
            crate::fiber::park();
        }
    }
    let result = slot.result.lock().unwrap_or_else(|e| e.into_inner()).take();
    match result.expect("a finished blocking job left its result") {
        Ok(value) => value,
        Err(payload) => resume_unwind(payload),
    }
}

/// How often a cancelled fiber looks whether its blocking job is done.
const CANCELLED_POLL: Duration = Duration::from_millis(1);

/// Where a blocking job leaves its result for the fiber that waits.
struct Slot<T> {
    result: Mutex<Option<thread::Result<T>>>,
    done: AtomicBool,
}
