//! Fibers: spawn them, join them, park and wake them.
//!
//! The API is `std::thread`'s: [`spawn`] returns a
//! [`JoinHandle`], a [`Builder`] names a fiber or sizes its stack,
//! [`current()`] returns a [`Fiber`] handle that can [`unpark`](Fiber::unpark)
//! it, and [`park`], [`park_timeout`], [`sleep`](crate::sleep) and
//! [`yield_now`](crate::yield_now) block or yield the *fiber*, not the
//! worker thread. Off a fiber, each of these behaves like its `std::thread`
//! counterpart on the calling thread.
//!
//! # Where a fiber runs
//!
//! A fiber that has not started yet holds no stack and may be taken by any
//! worker. Once it has started, it always resumes on the worker thread it
//! started on, so values on its stack (thread-local references,
//! `std::sync::MutexGuard`s, `Rc`s) never cross threads behind its back.
//! A runtime built with the `unsafe` opt-in
//! [`migrate_started_fibers`](crate::runtime::Builder::migrate_started_fibers)
//! lifts that rule, for code that accepts its contract.
//!
//! # Thread-locals and std locks across blocking points
//!
//! All the fibers of a worker share its thread: a `thread_local!` is shared
//! by all of them, and a reference to one kept across a blocking point
//! (park, join, a channel receive, a socket read, `sleep`) may be used by
//! another fiber meanwhile. A `std::sync::Mutex` guard kept across a
//! blocking point keeps the lock held by the worker thread while other
//! fibers run on it; one of them taking the same lock deadlocks the worker.
//! Use [`fiber_local!`](crate::fiber_local) for per-fiber state, and
//! weft's fiber-aware locks across blocking points.

pub(crate) mod current;
pub(crate) mod join;
mod local;
mod spawned;
pub(crate) mod state;
pub(crate) mod task;
pub(crate) mod task_ref;

use std::fmt;
use std::io;
use std::num::NonZeroU64;
use std::sync::Arc;

pub use self::current::{current, park, park_timeout};
pub use self::join::JoinHandle;
use self::join::JoinTarget;
pub use self::local::FiberLocal;
use self::spawned::Spawned;
use self::state::State;
use self::task::{Body, Header, TaskRef};
use self::task_ref::{TaskArc, erase_task};
use crate::runtime::Handle;
use crate::sched::Shared;
use crate::sched::worker::Worker;

/// A fiber's identifier, unique in the process. Plain threads get one too
/// (see [`current()`]).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FiberId(NonZeroU64);

impl FiberId {
    pub(crate) fn next() -> FiberId {
        FiberId(NonZeroU64::new(crate::coroutine::next_fiber_id()).expect("fiber ids start at 1"))
    }

    /// The id as a number (never 0).
    pub fn as_u64(self) -> u64 {
        self.0.get()
    }
}

impl fmt::Debug for FiberId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FiberId({})", self.0)
    }
}

impl fmt::Display for FiberId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// A handle to a fiber: its id and name, and [`unpark`](Self::unpark).
///
/// Obtained from [`current()`] or [`JoinHandle::fiber`]. Off a fiber,
/// `current()` returns a `Fiber` for the calling *thread*, which `unpark`
/// unparks like `std::thread::Thread::unpark`: code that parks and unparks
/// works the same on fibers and threads.
#[derive(Clone)]
pub struct Fiber {
    inner: Inner,
}

#[derive(Clone)]
enum Inner {
    Task(TaskRef),
    Thread(std::thread::Thread, FiberId),
}

impl Fiber {
    pub(crate) fn from_task(task: TaskRef) -> Fiber {
        Fiber {
            inner: Inner::Task(task),
        }
    }

    fn from_thread(thread: std::thread::Thread) -> Fiber {
        thread_local! {
            static THREAD_ID: FiberId = FiberId::next();
        }
        Fiber {
            inner: Inner::Thread(thread, THREAD_ID.with(|id| *id)),
        }
    }

    /// The fiber's id (for a thread: an id of the same kind, stable for
    /// the thread's life).
    pub fn id(&self) -> FiberId {
        match &self.inner {
            Inner::Task(task) => task.header.id,
            Inner::Thread(_, id) => *id,
        }
    }

    /// The name given with [`Builder::name`] (for a thread: its name).
    pub fn name(&self) -> Option<&str> {
        match &self.inner {
            Inner::Task(task) => task.header.name(),
            Inner::Thread(thread, _) => thread.name(),
        }
    }

    /// Makes the fiber's token available, like `std::thread::Thread::unpark`:
    /// a fiber parked in [`park`] wakes up, and one that is not parked now
    /// finds the token at its next `park`, which returns at once. Tokens do
    /// not accumulate. Callable from any fiber or thread.
    pub fn unpark(&self) {
        match &self.inner {
            Inner::Task(task) => crate::sched::wake(task),
            Inner::Thread(thread, _) => thread.unpark(),
        }
    }
}

impl PartialEq for Fiber {
    fn eq(&self, other: &Fiber) -> bool {
        self.id() == other.id()
    }
}

impl Eq for Fiber {}

impl fmt::Debug for Fiber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fiber")
            .field("id", &self.id())
            .field("name", &self.name())
            .finish()
    }
}

/// Configures a fiber before spawning it: its name (shown in stack
/// overflow reports and by [`Fiber::name`]) and its stack size.
///
/// ```
/// weft::run(|| {
///     let handle = weft::fiber::Builder::new()
///         .name("parser")
///         .stack_size(64 * 1024)
///         .spawn(|| 2 + 2)
///         .expect("a valid stack size");
///     assert_eq!(handle.join().unwrap(), 4);
/// });
/// ```
#[derive(Debug, Default, Clone)]
pub struct Builder {
    name: Option<String>,
    stack_size: Option<usize>,
}

impl Builder {
    /// A builder with no name and the runtime's stack size.
    pub fn new() -> Builder {
        Builder::default()
    }

    /// Names the fiber.
    pub fn name(mut self, name: impl Into<String>) -> Builder {
        self.name = Some(name.into());
        self
    }

    /// The fiber's stack size in bytes (rounded up to pages; the runtime's
    /// default otherwise). Stacks are committed only as they are touched.
    pub fn stack_size(mut self, bytes: usize) -> Builder {
        self.stack_size = Some(bytes);
        self
    }

    /// Spawns the fiber on the current runtime (see [`spawn`]).
    ///
    /// # Errors
    ///
    /// `InvalidInput` for a stack size weft refuses (zero, under 16 KiB,
    /// over 1 GiB), or if called off a runtime (see [`Builder::spawn_on`]).
    pub fn spawn<F, T>(self, f: F) -> io::Result<JoinHandle<T>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let mut job = Some((self, f));
        let spawned = crate::sched::worker::with_current(|w| {
            w.map(|w| {
                let (builder, f) = job.take().expect("spawned once");
                builder.spawn_shared(w.shared(), Some(w), f)
            })
        });
        if let Some(result) = spawned {
            return result;
        }
        let (builder, f) = job.take().expect("spawned once");
        match Handle::try_current() {
            Some(handle) => builder.spawn_on(&handle, f),
            None => Err(io::Error::new(io::ErrorKind::InvalidInput, NO_RUNTIME)),
        }
    }

    /// Spawns the fiber on `handle`'s runtime, from any thread.
    ///
    /// # Errors
    ///
    /// `InvalidInput` for a stack size weft refuses.
    pub fn spawn_on<F, T>(self, handle: &Handle, f: F) -> io::Result<JoinHandle<T>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        crate::sched::worker::with_current(|w| self.spawn_shared(handle.shared(), w, f))
    }

    /// Spawns on `shared`; `current` is this thread's worker, if any, which
    /// the caller has looked up already.
    fn spawn_shared<F, T>(
        self,
        shared: &Arc<Shared>,
        current: Option<&Worker>,
        f: F,
    ) -> io::Result<JoinHandle<T>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let pool = match self.stack_size {
            Some(size) => Some(shared.pool_for(size)?),
            None => None,
        };
        let name = self.name.map(String::into_boxed_str);
        let (task, handle) = new_task(current, name, pool, f);
        shared.spawn_from(current, task);
        Ok(handle)
    }
}

/// The message of every "no runtime here" failure.
pub(crate) const NO_RUNTIME: &str = "weft::spawn must be called from a weft fiber (or a thread of a weft \
    runtime, such as its blocking pool); start a runtime with weft::run(|| ...) or \
    weft::Runtime::new()?.block_on(|| ...), or spawn through a weft::runtime::Handle";

/// Builds a task for `f` and queues it on `shared`.
pub(crate) fn spawn_task<F, T>(
    shared: &Arc<Shared>,
    name: Option<Box<str>>,
    pool: Option<crate::stack_pool::StackPool>,
    f: F,
) -> JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    // One thread-local lookup serves both the block pool and the queue.
    crate::sched::worker::with_current(|current| {
        let (task, handle) = new_task(current, name, pool, f);
        shared.spawn_from(current, task);
        handle
    })
}

/// A new SCHEDULED task running `f`, and its handle.
///
/// The cell is built in its heap block: a `TaskCell` built on the stack
/// and moved into its block costs a copy of all its bytes (most of the
/// header and body are constants that the stores below write directly).
#[inline(always)]
fn new_task<F, T>(
    current: Option<&Worker>,
    name: Option<Box<str>>,
    pool: Option<crate::stack_pool::StackPool>,
    f: F,
) -> (TaskRef, JoinHandle<T>)
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let (cell, twin) = TaskArc::new_twice(
        current,
        || Header::new(State::new_scheduled(), name, pool),
        || Spawned::new(f),
    );
    let handle = JoinHandle::new(erase_task!(twin => dyn JoinTarget<T>));
    (erase_task!(cell => dyn Body), handle)
}

/// Spawns a fiber running `f` on the current runtime and returns its
/// handle, like `std::thread::spawn`. The fiber gets a stack when it first
/// runs and gives it back when `f` returns; a fiber that has not started
/// holds none, so spawning costs one small allocation.
///
/// The fiber may start on any worker of the runtime, and then resumes only
/// on that one (see the [module documentation](crate::fiber)).
///
/// # Panics
///
/// Off a runtime (neither a fiber nor one of a runtime's threads), with a
/// message saying how to start one; [`runtime::Handle::spawn`] works from
/// any thread.
///
/// [`runtime::Handle::spawn`]: crate::runtime::Handle::spawn
///
/// ```
/// let sum: u64 = weft::run(|| {
///     let parts: Vec<_> = (0..4u64).map(|i| weft::spawn(move || i * 10)).collect();
///     parts.into_iter().map(|h| h.join().unwrap()).sum()
/// });
/// assert_eq!(sum, 60);
/// ```
pub fn spawn<F, T>(f: F) -> JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    // One thread-local lookup serves both the runtime and the queue.
    crate::sched::worker::with_current(move |w| match w {
        Some(w) => {
            let (task, handle) = new_task(Some(w), None, None, f);
            w.shared().spawn_from(Some(w), task);
            handle
        }
        None => spawn_off_worker(f),
    })
}

/// [`spawn`] from a thread that is not a worker: through the runtime's
/// handle, if the thread has one (a blocking-pool thread, say).
#[inline(never)]
fn spawn_off_worker<F, T>(f: F) -> JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    match Handle::try_current() {
        Some(handle) => handle.spawn(f),
        None => panic!("{NO_RUNTIME}"),
    }
}
