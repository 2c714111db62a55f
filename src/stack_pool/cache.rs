//! The per-thread LIFO cache of idle stacks, in front of the shared pool.
//!
//! A warm `get` pops the most recently returned stack (its pages are the
//! likeliest to be in cache and TLB) and a `put` pushes it back: a
//! thread-local borrow, a `Vec` push/pop and one Relaxed store, no lock and
//! no atomic read-modify-write. Each cached entry keeps the `Arc` its
//! `Stack` carried, so moving a stack in and out of the cache never touches
//! the reference count. The shared pool is visited in batches of [`BATCH`]:
//! to refill an empty cache, and to flush the oldest half of a full one.
//!
//! A cache holds stacks of one pool at a time (its *owner*). When the thread
//! gets from or returns to another pool, the cache first flushes everything
//! to its old owner. At thread exit the thread-local's destructor flushes
//! it too, so no stack is stranded in a dead thread.
//!
//! Each cache publishes its length in an atomic only it writes, registered
//! with its owner, so `StackPool::stats` can count cached stacks.
//!
//! While a [`Hoard`] is alive the cache keeps every stack put into it;
//! when the hoard ends they all go back, none decommitted, for a `trim`
//! to follow. A worker's shutdown hoards: it returns the stack of every
//! fiber it unwinds. Returned 16 at a time, they made the shared pool
//! decommit the excess over `max_cached` in scattered `madvise` calls
//! while the other workers ran, and each such call interrupts every CPU
//! running the process to flush its TLB. The runtime trims its pools
//! once its last worker is done: one sorted pass with the other workers
//! stopped.

use std::cell::RefCell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

use super::pool::Shared;
use super::{Stack, StackError};

/// Most stacks one thread keeps idle.
const CAPACITY: usize = 32;
/// Stacks moved to or from the shared pool at once.
const BATCH: usize = 16;

thread_local! {
    static CACHE: RefCell<ThreadCache> = RefCell::new(ThreadCache::new());
}

struct ThreadCache {
    /// The pool whose stacks `stacks` holds and where `len` is registered.
    /// A `Weak` so that an empty cache does not keep a dropped pool alive,
    /// and so that its address is not reused while we compare against it.
    owner: Option<Weak<Shared>>,
    /// Idle stacks (slot top, the `Arc` their `Stack` held), newest last.
    stacks: Vec<(usize, Arc<Shared>)>,
    /// `stacks.len()`, published for `stats`; only this thread writes it.
    len: Arc<AtomicUsize>,
    /// Reused buffer for refills.
    scratch: Vec<usize>,
    /// Whether this thread went through `ensure_thread_altstack`: checked
    /// here, in the borrow `get` takes anyway, rather than in a second
    /// thread-local on every `get`.
    altstack: bool,
    /// How many [`Hoard`]s are alive on this thread: while any is, `put`
    /// never flushes.
    hoards: usize,
}

impl ThreadCache {
    fn new() -> ThreadCache {
        ThreadCache {
            owner: None,
            stacks: Vec::with_capacity(CAPACITY),
            len: Arc::new(AtomicUsize::new(0)),
            scratch: Vec::with_capacity(BATCH),
            altstack: false,
            hoards: 0,
        }
    }

    fn serves(&self, pool: &Arc<Shared>) -> bool {
        self.owner
            .as_ref()
            .is_some_and(|owner| std::ptr::eq(owner.as_ptr(), Arc::as_ptr(pool)))
    }

    fn publish(&self) {
        // Read by `Shared::stats` only; nothing is ordered by it.
        self.len.store(self.stacks.len(), Ordering::Relaxed);
    }

    fn get(&mut self, pool: &Arc<Shared>) -> Result<Stack, StackError> {
        if !self.altstack {
            super::ensure_thread_altstack();
            self.altstack = true;
        }
        if !self.serves(pool) {
            self.switch_to(pool);
        } else if let Some((top, owner)) = self.stacks.pop() {
            self.publish();
            // SAFETY: a cached top is an idle slot of `owner` in no other
            // list, and the entry leaves the cache here.
            return Ok(unsafe { Stack::from_raw(top, owner) });
        }
        self.scratch.clear();
        pool.take(BATCH, Some(&self.len), &mut self.scratch)?;
        // `scratch` is hottest first: hand out the hottest, and push the
        // rest coldest first so the next hottest ends on top.
        let hottest = self.scratch[0];
        for &top in self.scratch[1..].iter().rev() {
            self.stacks.push((top, Arc::clone(pool)));
        }
        self.publish();
        // SAFETY: `take` removed these slots from the shared free lists;
        // `hottest` went nowhere else.
        Ok(unsafe { Stack::from_raw(hottest, Arc::clone(pool)) })
    }

    fn put(&mut self, top: usize, pool: Arc<Shared>) {
        if !self.serves(&pool) {
            self.switch_to(&pool);
        }
        if self.stacks.len() >= CAPACITY && self.hoards == 0 {
            self.flush_oldest(BATCH);
        }
        self.stacks.push((top, pool));
        self.publish();
    }

    /// Gives the `n` oldest cached stacks back to the owner.
    fn flush_oldest(&mut self, n: usize) {
        let n = n.min(self.stacks.len());
        if n == 0 {
            return;
        }
        // All entries share one owner; borrow its Arc from the first.
        let pool = &self.stacks[0].1;
        pool.give_back(self.stacks[..n].iter().map(|&(top, _)| top));
        // Drops `n` Arcs, possibly the pool's last reference: the pool
        // then unmaps its slabs, which is fine, nothing here points in.
        self.stacks.drain(..n);
        self.publish();
    }

    /// Gives every cached stack back to the owner, none decommitted.
    fn stash_all(&mut self) {
        if let Some((_, pool)) = self.stacks.first() {
            pool.stash(self.stacks.iter().map(|&(top, _)| top));
        }
        // As in `flush_oldest`, possibly the pool's last references.
        self.stacks.clear();
        self.publish();
    }

    /// Flushes everything to the owner and leaves it.
    fn flush_all(&mut self) {
        self.flush_oldest(self.stacks.len());
        if let Some(owner) = self.owner.take().and_then(|w| w.upgrade()) {
            owner.unregister_cache(&self.len);
        }
    }

    fn switch_to(&mut self, pool: &Arc<Shared>) {
        self.flush_all();
        pool.register_cache(&self.len);
        self.owner = Some(Arc::downgrade(pool));
    }
}

impl Drop for ThreadCache {
    fn drop(&mut self) {
        self.flush_all();
    }
}

/// A stack of `pool`, from this thread's cache if it has one. Makes sure
/// this thread has an alternate signal stack first (see
/// `StackPool::get`).
pub(crate) fn get(pool: &Arc<Shared>) -> Result<Stack, StackError> {
    let cached =
        CACHE.try_with(|cache| cache.try_borrow_mut().ok().map(|mut cache| cache.get(pool)));
    match cached {
        Ok(Some(result)) => result,
        // The thread is exiting and its cache is gone (or, impossibly, we
        // re-entered it): go straight to the shared pool.
        Ok(None) | Err(_) => {
            super::ensure_thread_altstack();
            let mut top = Vec::with_capacity(1);
            pool.take(1, None, &mut top)?;
            // SAFETY: `take` removed the slot from the shared free lists.
            Ok(unsafe { Stack::from_raw(top[0], Arc::clone(pool)) })
        }
    }
}

/// Returns an idle stack (its slot top and its pool reference) to this
/// thread's cache, or to the shared pool if the cache is gone.
pub(crate) fn put(top: usize, pool: Arc<Shared>) {
    let mut pool = Some(pool);
    let _ = CACHE.try_with(|cache| {
        if let Ok(mut cache) = cache.try_borrow_mut()
            && let Some(pool) = pool.take()
        {
            cache.put(top, pool);
        }
    });
    if let Some(pool) = pool {
        pool.give_back([top]);
    }
}

/// Keeps every stack returned on this thread in its cache until dropped,
/// then gives them all back at once, without decommitting them: the
/// caller trims the pool next (see the module doc). A thread that exits
/// meanwhile flushes its cache as usual.
pub(crate) struct Hoard {
    /// Whether `new` found the cache and counted this hoard in it.
    counted: bool,
}

impl Hoard {
    pub(crate) fn new() -> Hoard {
        let mut counted = false;
        with_cache(|cache| {
            cache.hoards += 1;
            counted = true;
        });
        Hoard { counted }
    }
}

impl Drop for Hoard {
    fn drop(&mut self) {
        if !self.counted {
            return;
        }
        with_cache(|cache| {
            cache.hoards -= 1;
            if cache.hoards == 0 {
                cache.stash_all();
            }
        });
    }
}

/// Runs `f` on this thread's cache, unless the thread is exiting (its
/// cache is gone, and flushed).
fn with_cache(f: impl FnOnce(&mut ThreadCache)) {
    let _ = CACHE.try_with(|cache| {
        if let Ok(mut cache) = cache.try_borrow_mut() {
            f(&mut cache);
        }
    });
}

/// Returns every stack in this thread's cache to its pool.
pub(crate) fn flush() {
    with_cache(ThreadCache::flush_all);
}

#[cfg(test)]
mod tests {
    use super::{CACHE, CAPACITY, Hoard};
    use crate::stack_pool::StackPool;

    fn cached_here() -> usize {
        CACHE.with(|cache| cache.borrow().stacks.len())
    }

    #[test]
    fn a_hoard_keeps_every_returned_stack_until_it_ends() {
        let pool = StackPool::builder().stack_size(16 * 1024).build().unwrap();
        let n = 3 * CAPACITY;
        let stacks: Vec<_> = (0..n).map(|_| pool.get().unwrap()).collect();
        let hoard = Hoard::new();
        drop(stacks);
        assert_eq!(cached_here(), n, "all {n} stay in this thread's cache");
        drop(hoard);
        assert_eq!(cached_here(), 0, "they all went back at once");
        assert_eq!(pool.stats().cached, n, "and none was lost");

        let stacks: Vec<_> = (0..n).map(|_| pool.get().unwrap()).collect();
        drop(stacks);
        assert!(
            cached_here() <= CAPACITY,
            "without a hoard the cache stays bounded"
        );
    }
}
