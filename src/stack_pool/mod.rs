//! Guard-paged, pooled, recycled fiber stacks.
//!
//! A [`StackPool`] hands out [`Stack`]s: fixed-size, guarded regions of
//! memory for fibers to run on. Dropping a `Stack` gives it back to the
//! pool; it is reused, never unmapped on its own.
//!
//! ```
//! use weft::stack_pool::StackPool;
//!
//! let pool = StackPool::builder().stack_size(64 * 1024).build()?;
//! let stack = pool.get()?;
//! let first = stack.base();
//! drop(stack);
//! assert_eq!(pool.get()?.base(), first); // LIFO: the hot stack comes back
//! # Ok::<(), weft::stack_pool::StackError>(())
//! ```
//!
//! # Layout
//!
//! Stacks are carved from *slabs*, large anonymous mappings (`MAP_STACK`,
//! `MAP_NORESERVE`, `MADV_NOHUGEPAGE`) whose pages the kernel commits only
//! when touched: a fiber's memory cost is the pages its frames reached. The
//! first slab of a pool holds 16 stacks, each next one about as many as the
//! pool carved before it, up to about 1 GiB of address space per slab, so
//! a million stacks take a few dozen mappings. Each thread cache carves
//! from a slab of its own (up to 64 at once, then they share), so the
//! stacks a worker carves are neighbours. Each slot of a slab is a guard
//! region below a usable stack, whose top 64 bytes are a header naming the
//! fiber that owns it:
//!
//! ```text
//!   higher addresses
//!   +---------------------------+ <- slot top = next slot's guard
//!   | header: owner id, name    |    64 bytes, read by the overflow handler
//!   +---------------------------+ <- Stack::base()   16-byte aligned
//!   |             |             |
//!   | usable      v  frames     |    Stack::size() = slot top - limit()
//!   | stack          grow down  |    (stack_size, whole pages)
//!   |                           |
//!   +---------------------------+ <- Stack::limit()
//!   | guard (guard_size)        |    any access: SIGSEGV
//!   +---------------------------+ <- slot start = previous slot top
//!   lower addresses
//! ```
//!
//! # Guard modes
//!
//! A pool installs each guard when it first carves the slot, in one of two
//! ways ([`GuardMode`]), chosen at build time:
//!
//! * [`GuardMode::GuardInstall`]: `madvise(MADV_GUARD_INSTALL)` (Linux
//!   6.13+) marks the range so that any access faults, without splitting
//!   the slab's mapping: a slab stays one kernel mapping however many
//!   stacks it holds.
//! * [`GuardMode::Mprotect`]: `mprotect(PROT_NONE)`, which works on every
//!   kernel but splits the mapping: two mappings per stack, so the
//!   kernel's `vm.max_map_count` (65,530 by default) caps a process near
//!   32,000 live stacks.
//!
//! [`GuardPolicy::Auto`] (the default) probes the kernel once per process
//! and falls back to mprotect where `MADV_GUARD_INSTALL` is refused
//! (EINVAL). The environment variable `WEFT_STACK_GUARD=mprotect` makes
//! `Auto` pools use the fallback, so a whole test suite can run in that
//! mode; `WEFT_STACK_GUARD=guard-install`, unset, or any other value
//! (ignored, without error) leaves `Auto` as it is.
//!
//! When a fiber's frames reach its guard, weft's SIGSEGV/SIGBUS handler
//! (installed when the first pool is built, chained to any earlier one)
//! prints `fiber '<name>' has overflowed its stack (<N> KiB)` and aborts
//! the process, as std does for threads. Any other fault goes to the
//! previous handler unchanged. The handler runs on the thread's alternate
//! signal stack: see [`ensure_thread_altstack`].
//!
//! # Caches
//!
//! Each thread keeps a LIFO cache of up to 32 idle stacks of one pool, in
//! front of the pool's shared free list (a mutex-protected LIFO). A warm
//! `get` or drop takes no lock and does no atomic read-modify-write; an
//! empty cache refills, and a full one flushes its oldest, 16 stacks at a
//! time. A thread that switches pools flushes its cache to the old one
//! first; a thread's cache is flushed when it exits, or on demand with
//! [`StackPool::flush_thread_cache`].
//!
//! # Budgets
//!
//! * [`StackPoolBuilder::max_stacks`] bounds how many stacks a pool may
//!   have (live or idle). Past it, `get` fails with an `OutOfMemory`
//!   [`StackError`] that names the budget. Idle stacks in other threads'
//!   caches count: they come back when those threads flush or exit.
//! * Every pool in the process shares one *mapping budget*:
//!   `vm.max_map_count` (read once) less a headroom of 1,024 mappings plus
//!   those the process had when its first pool was built, kept for
//!   malloc, thread stacks and libraries. In mprotect mode this is what
//!   stops a pool, about 32,000 stacks on a default kernel, with an
//!   `OutOfMemory` error that says how to raise the limit
//!   (`sysctl -w vm.max_map_count=...`), before the kernel starts failing
//!   every `mmap` in the process.
//! * Sizes are validated at build: 16 KiB to 1 GiB per stack.
//!
//! Nothing here panics or crashes on exhaustion: every failure is a
//! [`StackError`] naming the cause and the fix.
//!
//! # Recycling
//!
//! A returned stack is not zeroed and not decommitted: the fiber that gets
//! it next starts at `base()` and only ever reads what it wrote, so old
//! frames below its stack pointer are harmless, and zeroing would cost a
//! fiber's whole touched depth on every hand-off. Memory comes back in
//! bulk instead: the shared pool keeps at most
//! [`max_cached`](StackPoolBuilder::max_cached) idle stacks committed, and
//! when a flush pushes it past that, the oldest excess is given back with
//! `MADV_DONTNEED` in one batch (the stacks stay in the pool as address
//! space; guards survive). [`StackPool::trim`] does the same for every idle
//! stack in the shared pool. The owner recorded in a stack's header is
//! cleared when it is returned, so a recycled stack never names its last
//! fiber.

mod altstack;
mod budget;
mod builder;
mod cache;
mod error;
mod guard;
mod os;
mod pool;
mod registry;
mod slab;
mod stack;
#[cfg(test)]
mod tests;

pub(crate) use self::cache::Hoard;

use std::fmt;
use std::sync::{Arc, OnceLock};

pub use altstack::ensure_thread_altstack;
pub use builder::StackPoolBuilder;
pub use error::StackError;
pub use stack::Stack;

use pool::Shared;

/// Which mechanism a pool uses for its guard regions.
///
/// ```
/// use weft::stack_pool::{GuardMode, StackPool};
///
/// let mode = StackPool::new()?.guard_mode();
/// assert!(matches!(mode, GuardMode::GuardInstall | GuardMode::Mprotect));
/// # Ok::<(), weft::stack_pool::StackError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum GuardMode {
    /// `madvise(MADV_GUARD_INSTALL)`: no extra kernel mappings (Linux 6.13+).
    GuardInstall,
    /// `mprotect(PROT_NONE)` guard pages: two kernel mappings per stack.
    Mprotect,
}

/// Which guard mechanism a pool may use; see [`GuardMode`].
///
/// ```
/// use weft::stack_pool::{GuardMode, GuardPolicy, StackPool};
///
/// let pool = StackPool::builder().guard_policy(GuardPolicy::Mprotect).build()?;
/// assert_eq!(pool.guard_mode(), GuardMode::Mprotect);
/// # Ok::<(), weft::stack_pool::StackError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum GuardPolicy {
    /// `MADV_GUARD_INSTALL` where the kernel has it, else mprotect;
    /// `WEFT_STACK_GUARD=mprotect` forces mprotect.
    #[default]
    Auto,
    /// Always mprotect guard pages.
    Mprotect,
}

/// A snapshot of a pool's counters; see [`StackPool::stats`].
///
/// ```
/// let pool = weft::stack_pool::StackPool::new()?;
/// let stack = pool.get()?;
/// let stats = pool.stats();
/// assert_eq!((stats.live, stats.cached, stats.carved), (1, 0, 1));
/// # Ok::<(), weft::stack_pool::StackError>(())
/// ```
#[derive(Debug, Clone)]
pub struct PoolStats {
    /// Stacks handed out and not yet returned.
    pub live: usize,
    /// Idle stacks, in thread caches or in the shared pool.
    pub cached: usize,
    /// Kernel mappings (VMAs) this pool's slabs and guards account for: one
    /// per slab in guard-install mode, two per stack in mprotect mode. An
    /// upper bound: the kernel may merge neighbouring slabs.
    pub mappings: usize,
    /// How this pool installs guards.
    pub guard_mode: GuardMode,
    /// Stacks ever carved: `live + cached`.
    pub carved: usize,
    /// The pool's stack budget, if any.
    pub max_stacks: Option<usize>,
}

/// A pool of guarded fiber stacks. Cheap to clone: clones share the pool.
///
/// The pool's slabs are unmapped when the last clone, the last [`Stack`]
/// and the last cached stack of the pool are gone.
///
/// ```
/// use weft::stack_pool::StackPool;
///
/// let pool = StackPool::builder().stack_size(32 * 1024).max_stacks(100).build()?;
/// let stacks: Vec<_> = (0..10).map(|_| pool.get()).collect::<Result<_, _>>()?;
/// assert_eq!(pool.stats().live, 10);
/// drop(stacks);
/// assert_eq!(pool.stats().cached, 10);
/// # Ok::<(), weft::stack_pool::StackError>(())
/// ```
#[derive(Clone)]
pub struct StackPool {
    shared: Arc<Shared>,
}

impl StackPool {
    /// A builder with the defaults: 256 KiB stacks, 16 KiB guards,
    /// [`GuardPolicy::Auto`], no stack budget, 1024 committed idle stacks.
    ///
    /// ```
    /// let pool = weft::stack_pool::StackPool::builder().build()?;
    /// assert_eq!(pool.stack_size(), 256 * 1024);
    /// # Ok::<(), weft::stack_pool::StackError>(())
    /// ```
    pub fn builder() -> StackPoolBuilder {
        StackPoolBuilder::default()
    }

    /// A pool with the defaults: `StackPool::builder().build()`.
    ///
    /// ```
    /// let pool = weft::stack_pool::StackPool::new()?;
    /// assert_eq!(pool.guard_size(), 16 * 1024);
    /// # Ok::<(), weft::stack_pool::StackError>(())
    /// ```
    pub fn new() -> Result<StackPool, StackError> {
        StackPool::builder().build()
    }

    /// The process's default pool, built with the defaults on first use and
    /// never dropped.
    ///
    /// # Panics
    ///
    /// If that pool cannot be built: only if the process cannot map two
    /// pages or install a signal handler, which leaves nothing to run
    /// fibers with anyway.
    ///
    /// ```
    /// let a = weft::stack_pool::StackPool::global().get()?;
    /// assert_eq!(a.size(), 256 * 1024);
    /// # Ok::<(), weft::stack_pool::StackError>(())
    /// ```
    pub fn global() -> &'static StackPool {
        static GLOBAL: OnceLock<StackPool> = OnceLock::new();
        GLOBAL.get_or_init(|| match StackPool::new() {
            Ok(pool) => pool,
            Err(e) => panic!("cannot build weft's global stack pool: {e}"),
        })
    }

    /// A stack: from this thread's cache if it holds one of this pool's,
    /// else from the shared pool, else newly carved. Also makes sure this
    /// thread has an alternate signal stack ([`ensure_thread_altstack`]).
    ///
    /// # Errors
    ///
    /// `OutOfMemory` when the pool's `max_stacks` budget or the process's
    /// mapping budget is spent, or the kernel is out of memory; the error's
    /// message says which and what to change.
    ///
    /// ```
    /// let pool = weft::stack_pool::StackPool::new()?;
    /// let stack = pool.get()?;
    /// assert_eq!(stack.size(), pool.stack_size());
    /// # Ok::<(), weft::stack_pool::StackError>(())
    /// ```
    pub fn get(&self) -> Result<Stack, StackError> {
        // `cache::get` calls `ensure_thread_altstack` (once per thread).
        let budget = self.shared.budget.as_deref();
        if let Some(budget) = budget
            && !budget.try_acquire()
        {
            return Err(StackError::BudgetExhausted {
                max_stacks: budget.max(),
            });
        }
        cache::get(&self.shared).inspect_err(|_| {
            if let Some(budget) = budget {
                budget.release();
            }
        })
    }

    /// The budget this pool counts its stacks in use against.
    pub(crate) fn budget(&self) -> Option<Arc<budget::Budget>> {
        self.shared.budget.clone()
    }

    /// Gives back to the kernel (`MADV_DONTNEED`) the pages of every idle
    /// stack in the shared pool; returns how many stacks were trimmed.
    /// Stacks in thread caches are not touched: flush them first with
    /// [`flush_thread_cache`](Self::flush_thread_cache) (on their threads).
    ///
    /// ```
    /// use weft::stack_pool::StackPool;
    ///
    /// let pool = StackPool::new()?;
    /// drop(pool.get()?);
    /// StackPool::flush_thread_cache();
    /// assert_eq!(pool.trim(), 1);
    /// assert_eq!(pool.trim(), 0); // already trimmed
    /// # Ok::<(), weft::stack_pool::StackError>(())
    /// ```
    pub fn trim(&self) -> usize {
        self.shared.trim()
    }

    /// A snapshot of the pool's counters. Cached counts published by other
    /// threads may lag by the operation in flight.
    ///
    /// ```
    /// let pool = weft::stack_pool::StackPool::new()?;
    /// assert_eq!(pool.stats().carved, 0);
    /// # Ok::<(), weft::stack_pool::StackError>(())
    /// ```
    pub fn stats(&self) -> PoolStats {
        self.shared.stats()
    }

    /// Usable bytes per stack, header included, in whole pages.
    ///
    /// ```
    /// let pool = weft::stack_pool::StackPool::builder().stack_size(100_000).build()?;
    /// assert_eq!(pool.stack_size(), 102_400);
    /// # Ok::<(), weft::stack_pool::StackError>(())
    /// ```
    pub fn stack_size(&self) -> usize {
        self.shared.geometry.stack_size
    }

    /// Bytes of guard below each stack, in whole pages.
    ///
    /// ```
    /// let pool = weft::stack_pool::StackPool::builder().guard_size(5000).build()?;
    /// assert_eq!(pool.guard_size(), 8192);
    /// # Ok::<(), weft::stack_pool::StackError>(())
    /// ```
    pub fn guard_size(&self) -> usize {
        self.shared.geometry.guard_size
    }

    /// The guard mechanism this pool uses.
    ///
    /// ```
    /// let pool = weft::stack_pool::StackPool::new()?;
    /// assert_eq!(pool.guard_mode(), pool.stats().guard_mode);
    /// # Ok::<(), weft::stack_pool::StackError>(())
    /// ```
    pub fn guard_mode(&self) -> GuardMode {
        self.shared.geometry.mode
    }

    /// Returns the calling thread's cached stacks to their pool's shared
    /// free list. Thread exit does this too.
    ///
    /// ```
    /// use weft::stack_pool::StackPool;
    ///
    /// let pool = StackPool::new()?;
    /// drop(pool.get()?); // now in this thread's cache
    /// StackPool::flush_thread_cache();
    /// assert_eq!(pool.stats().cached, 1); // now in the shared pool
    /// # Ok::<(), weft::stack_pool::StackError>(())
    /// ```
    pub fn flush_thread_cache() {
        cache::flush();
    }
}

impl fmt::Debug for StackPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StackPool")
            .field("stack_size", &self.stack_size())
            .field("guard_size", &self.guard_size())
            .field("guard_mode", &self.guard_mode())
            .field("max_stacks", &self.shared.max_stacks())
            .finish_non_exhaustive()
    }
}
