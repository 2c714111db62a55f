//! Starting and stopping a runtime: [`Builder`], [`Runtime`], [`Handle`],
//! [`run`].
//!
//! ```
//! let rt = weft::Runtime::builder().workers(2).build()?;
//! let answer = rt.block_on(|| weft::spawn(|| 40 + 2).join().unwrap());
//! assert_eq!(answer, 42);
//! # Ok::<(), std::io::Error>(())
//! ```

use std::any::Any;
use std::cell::RefCell;
use std::fmt;
use std::io;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use crate::fiber::JoinHandle;
use crate::loom::available_parallelism;
use crate::net::Reactor;
use crate::sched::blocking::BlockingPool;
use crate::sched::driver::Driver;
use crate::sched::monitor::Monitor;
use crate::sched::worker::{self, Worker};
use crate::sched::{Config, Shared};
use crate::stack_pool::StackPool;

/// Configures a [`Runtime`].
///
/// ```
/// let rt = weft::Runtime::builder()
///     .workers(2)
///     .stack_size(128 * 1024)
///     .thread_name("engine")
///     .max_stacks(100_000)
///     .build()?;
/// assert_eq!(rt.block_on(|| 1 + 1), 2);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Builder {
    workers: Option<usize>,
    stack_size: usize,
    thread_name: String,
    max_stacks: Option<usize>,
    max_blocking_threads: usize,
    blocking_keep_alive: Duration,
    migrate: bool,
}

impl Default for Builder {
    fn default() -> Builder {
        Builder {
            workers: None,
            stack_size: 256 * 1024,
            thread_name: "weft-worker".to_owned(),
            max_stacks: None,
            max_blocking_threads: 512,
            blocking_keep_alive: Duration::from_secs(10),
            migrate: false,
        }
    }
}

impl Builder {
    /// The defaults: one worker per available CPU, 256 KiB stacks, no stack
    /// budget, up to 512 blocking threads kept 10 s when idle.
    pub fn new() -> Builder {
        Builder::default()
    }

    /// How many worker threads run fibers (at least 1).
    pub fn workers(mut self, workers: usize) -> Builder {
        self.workers = Some(workers);
        self
    }

    /// The default stack size of fibers, in bytes (16 KiB to 1 GiB,
    /// rounded up to pages). Stacks cost only the pages they touch.
    pub fn stack_size(mut self, bytes: usize) -> Builder {
        self.stack_size = bytes;
        self
    }

    /// Worker threads are named `<prefix>-<index>`; blocking threads
    /// `<prefix>-blocking`; the stall monitor `<prefix>-monitor`.
    pub fn thread_name(mut self, prefix: impl Into<String>) -> Builder {
        self.thread_name = prefix.into();
        self
    }

    /// The stack budget: at most `n` fiber stacks exist at once (running,
    /// parked or cached). A fiber that would exceed it does not start: its
    /// [`JoinError::is_no_stack`](crate::JoinError::is_no_stack) says so.
    pub fn max_stacks(mut self, n: usize) -> Builder {
        self.max_stacks = Some(n);
        self
    }

    /// At most `n` threads (at least 1) run [`blocking`](crate::blocking)
    /// work; more jobs wait in a queue.
    pub fn max_blocking_threads(mut self, n: usize) -> Builder {
        self.max_blocking_threads = n;
        self
    }

    /// How long an idle blocking thread waits for work before exiting.
    pub fn blocking_keep_alive(mut self, keep_alive: Duration) -> Builder {
        self.blocking_keep_alive = keep_alive;
        self
    }

    /// Lets a started fiber resume on any worker, not only the one it
    /// started on, so a worker stuck in one fiber cannot strand the
    /// others that live on it.
    ///
    /// # Safety
    ///
    /// A fiber may then move to another thread at any blocking point
    /// (park, join, sleep, a channel or socket operation). Its code must
    /// not keep, across a blocking point: a reference to a `thread_local!`
    /// (LLVM may even reuse the old thread's address, so a fresh access in
    /// the same function is not safe either; see llvm/llvm-project#98479),
    /// a `std::sync` guard or anything else that must be released on the
    /// thread that took it, or a `!Send` value shared with other code on
    /// the old thread. weft's own code honours this; the caller vouches
    /// for all code its fibers run.
    pub unsafe fn migrate_started_fibers(mut self, yes: bool) -> Builder {
        self.migrate = yes;
        self
    }

    /// Starts the worker threads.
    ///
    /// # Errors
    ///
    /// `InvalidInput` for zero workers or blocking threads, or a stack size
    /// the stack pool refuses (each message names the fix); the OS error if
    /// a thread or the first stacks cannot be made.
    pub fn build(self) -> io::Result<Runtime> {
        let workers = self.workers.unwrap_or_else(available_parallelism);
        if workers == 0 {
            return Err(invalid(
                "a runtime needs at least 1 worker: use Builder::workers(1) or more",
            ));
        }
        if self.max_blocking_threads == 0 {
            return Err(invalid(
                "a runtime needs at least 1 blocking thread: use Builder::max_blocking_threads(1) or more",
            ));
        }
        let mut pool = StackPool::builder().stack_size(self.stack_size);
        if let Some(max) = self.max_stacks {
            pool = pool.max_stacks(max);
        }
        let pool = pool.build()?;
        let blocking = BlockingPool::new(
            self.max_blocking_threads,
            self.blocking_keep_alive,
            format!("{}-blocking", self.thread_name),
        );
        let config = Config {
            workers,
            thread_name_prefix: self.thread_name,
            migrate: self.migrate,
        };
        // The reactor: one mio::Poll, driven by the workers (see net).
        let reactor = Arc::new(Reactor::new()?);
        let driver: Arc<dyn Driver> = reactor.clone();
        let io: Arc<dyn Any + Send + Sync> = reactor.clone();
        let (shared, locals) = Shared::new(config, pool, blocking, Some(driver), Some(io));
        let mut threads = Vec::with_capacity(workers);
        for (index, local) in locals.into_iter().enumerate() {
            let worker_shared = Arc::clone(&shared);
            let name = format!("{}-{index}", shared.config.thread_name_prefix);
            let spawned = thread::Builder::new().name(name).spawn(move || {
                crate::stack_pool::ensure_thread_altstack();
                Worker::run(worker_shared, index, local);
            });
            match spawned {
                Ok(thread) => threads.push(thread),
                Err(err) => {
                    // Stop the workers already started before reporting.
                    drop(Runtime {
                        handle: Handle { shared },
                        threads,
                        reactor,
                        monitor: None,
                    });
                    return Err(err);
                }
            }
        }
        let name = format!("{}-monitor", shared.config.thread_name_prefix);
        let mut rt = Runtime {
            handle: Handle {
                shared: Arc::clone(&shared),
            },
            threads,
            reactor,
            monitor: None,
        };
        // On an error `rt` drops: its workers stop before we report it.
        rt.monitor = Some(Monitor::start(&shared, name)?);
        Ok(rt)
    }
}

fn invalid(message: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}

/// A running set of worker threads. Dropping it shuts it down: every
/// started fiber is unwound on its worker (its destructors run, and its
/// joiner gets [`JoinError::is_cancelled`](crate::JoinError::is_cancelled)),
/// unstarted fibers are cancelled, and the worker and idle blocking threads
/// are joined.
pub struct Runtime {
    handle: Handle,
    threads: Vec<thread::JoinHandle<()>>,
    /// The runtime's reactor, told first when the runtime shuts down.
    reactor: Arc<Reactor>,
    /// The stall monitor (see `sched/monitor.rs`).
    monitor: Option<Monitor>,
}

impl Runtime {
    /// A builder; see [`Builder`].
    pub fn builder() -> Builder {
        Builder::new()
    }

    /// A runtime with the defaults ([`Builder::new`]).
    ///
    /// # Errors
    ///
    /// As [`Builder::build`].
    pub fn new() -> io::Result<Runtime> {
        Builder::new().build()
    }

    /// A handle that spawns onto this runtime from any thread.
    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    /// Spawns a fiber onto this runtime, from any thread.
    pub fn spawn<F, T>(&self, f: F) -> JoinHandle<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.handle.spawn(f)
    }

    /// Runs `f` as a fiber on this runtime (the *main fiber*), blocks the
    /// calling thread until it returns, and returns its value.
    ///
    /// # Panics
    ///
    /// If `f` panics (with its payload). If called on a worker thread of
    /// any weft runtime: blocking a worker can deadlock the fibers it
    /// runs; use [`spawn`](crate::spawn) and join instead.
    pub fn block_on<F, T>(&self, f: F) -> T
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        if worker::with_current(|w| w.is_some()) {
            panic!(
                "Cannot block_on inside a weft fiber: this would block the worker thread that runs it. \
                 Spawn the work with weft::spawn and join its handle instead."
            );
        }
        match self.handle.spawn(f).join() {
            Ok(value) => value,
            Err(err) => match err.try_into_panic() {
                Ok(payload) => std::panic::resume_unwind(payload),
                Err(err) => panic!("weft: block_on's fiber did not finish: {err}"),
            },
        }
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        let shared = &self.handle.shared;
        let on_own_worker = worker::with_current(|w| w.is_some_and(|w| w.belongs_to(shared)));
        // Sockets stop waiting: a thread blocked on one gets an error; a
        // fiber parks until its worker unwinds it.
        self.reactor.shutdown();
        shared.begin_shutdown();
        if let Some(monitor) = &mut self.monitor {
            // It ends by itself on the shutdown too: only wait for it when
            // we wait for the workers.
            if !on_own_worker {
                monitor.stop();
            }
        }
        if on_own_worker {
            // A fiber of this runtime drops it: joining our own thread would
            // deadlock. The workers wind down on their own.
            eprintln!(
                "weft: a Runtime was dropped by one of its own fibers; its workers shut down in the background"
            );
            return;
        }
        for thread in self.threads.drain(..) {
            if let Err(payload) = thread.join() {
                // A worker panicked (a bug in weft: fibers' panics are caught).
                std::panic::resume_unwind(payload);
            }
        }
        shared.drain_injector();
        shared.blocking.shutdown();
        // The last worker to finish its shutdown trimmed the pools
        // already (`Worker::run_loop`); this catches any stack its thread
        // cache, or another worker's, gave back at thread exit after that.
        // A handle or an actor's `Addr` may keep `Shared` (and so the
        // pools) alive long after this: their memory goes back now,
        // keeping only the address space.
        shared.trim_pools();
    }
}

impl fmt::Debug for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runtime")
            .field("workers", &self.handle.shared.config.workers)
            .finish_non_exhaustive()
    }
}

/// A cloneable handle to a runtime, to spawn fibers onto it from any
/// thread. It does not keep the runtime running: after the runtime is
/// dropped, spawned fibers are cancelled at once.
///
/// ```
/// let rt = weft::Runtime::new()?;
/// let handle = rt.handle().clone();
/// let from_a_thread = std::thread::spawn(move || handle.spawn(|| 7).join().unwrap());
/// assert_eq!(from_a_thread.join().unwrap(), 7);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone)]
pub struct Handle {
    shared: Arc<Shared>,
}

thread_local! {
    /// The runtime of a blocking-pool thread while it runs a job.
    static CONTEXT: RefCell<Option<Handle>> = const { RefCell::new(None) };
}

impl Handle {
    /// The runtime the calling fiber or runtime thread belongs to.
    pub fn try_current() -> Option<Handle> {
        worker::with_current(|w| w.map(|w| Arc::clone(w.shared())))
            .map(|shared| Handle { shared })
            .or_else(|| CONTEXT.try_with(|c| c.borrow().clone()).ok().flatten())
    }

    /// As [`try_current`](Self::try_current).
    ///
    /// # Panics
    ///
    /// Off a runtime, with a message saying how to start one.
    pub fn current() -> Handle {
        Handle::try_current().unwrap_or_else(|| panic!("{}", crate::fiber::NO_RUNTIME))
    }

    /// Spawns a fiber onto this runtime, from any thread (see
    /// [`spawn`](crate::spawn)).
    pub fn spawn<F, T>(&self, f: F) -> JoinHandle<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        crate::fiber::spawn_task(&self.shared, None, None, f)
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    pub(crate) fn from_shared(shared: Arc<Shared>) -> Handle {
        Handle { shared }
    }

    /// Runs `f` with this runtime as the thread's context (so that
    /// `weft::spawn` finds it), for blocking-pool jobs.
    pub(crate) fn enter<R>(&self, f: impl FnOnce() -> R) -> R {
        let previous = CONTEXT.with(|c| c.replace(Some(self.clone())));
        struct Restore(Option<Handle>);
        impl Drop for Restore {
            fn drop(&mut self) {
                let previous = self.0.take();
                let _ = CONTEXT.try_with(|c| *c.borrow_mut() = previous);
            }
        }
        let _restore = Restore(previous);
        f()
    }
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle")
            .field("workers", &self.shared.config.workers)
            .finish_non_exhaustive()
    }
}

/// Builds a runtime with the defaults, runs `f` as its main fiber, and
/// shuts the runtime down: the one-line way to start weft.
///
/// # Panics
///
/// If the runtime cannot start (with the error), or as
/// [`Runtime::block_on`].
///
/// ```
/// let n = weft::run(|| {
///     let h = weft::spawn(|| 21);
///     h.join().unwrap() * 2
/// });
/// assert_eq!(n, 42);
/// ```
pub fn run<F, T>(f: F) -> T
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let runtime =
        Runtime::new().unwrap_or_else(|err| panic!("weft::run cannot start a runtime: {err}"));
    runtime.block_on(f)
}
