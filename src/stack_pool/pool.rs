//! The shared half of a pool: its slabs, its free lists and its counters,
//! behind one `std::sync::Mutex`. Thread caches (`cache.rs`) come here only
//! in batches, so the lock is off the hot path.
//!
//! Free stacks are known by the address of their slot's top (`usize`), not
//! as `Stack`s: the free lists hold no `Arc` to the pool that owns them, so
//! there is no cycle, and a stack takes a reference to its pool only when it
//! leaves the shared pool.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use super::budget::Budget;
use super::slab::{CarveError, Geometry, Slab};
use super::{PoolStats, StackError, os};

/// State shared by a [`StackPool`](super::StackPool), its clones, and every
/// [`Stack`](super::Stack) it handed out or caches hold.
#[derive(Debug)]
pub(crate) struct Shared {
    /// Immutable after build.
    pub(crate) geometry: Geometry,
    /// How many stacks may be in use at once, shared with other pools.
    pub(crate) budget: Option<Arc<Budget>>,
    max_cached: usize,
    state: Mutex<State>,
}

/// Everything that changes, under `Shared::state`.
#[derive(Debug, Default)]
struct State {
    /// Idle, committed stacks: newest at the back (handed out first),
    /// oldest at the front (decommitted first).
    hot: VecDeque<usize>,
    /// Idle stacks whose pages were given back with `MADV_DONTNEED`.
    cold: Vec<usize>,
    /// Every slab, in mapping order.
    slabs: Vec<Slab>,
    /// The slabs with uncarved slots, each with the thread cache that
    /// carves from it, if any (see [`Shared::take`]).
    open: Vec<OpenSlab>,
    /// Slots ever carved (= stacks that exist: none is ever unmapped alone).
    carved: usize,
    /// Lengths published by the thread caches that hold this pool's stacks.
    caches: Vec<Arc<AtomicUsize>>,
}

/// How many slabs with uncarved slots a pool keeps at most: one for each
/// thread that carves, up to this many, after which threads share one.
/// Each open slab is a mapping of up to 1 GiB of address space, so a pool
/// used by a thousand threads must not make one each.
const MAX_OPEN_SLABS: usize = 64;

/// A slab with uncarved slots.
#[derive(Debug)]
struct OpenSlab {
    /// Its index in `State::slabs`.
    slab: usize,
    /// The thread cache that carves from it (the address of the length it
    /// publishes, registered with this pool), or none.
    carver: Option<usize>,
}

impl Shared {
    pub(crate) fn new(
        geometry: Geometry,
        budget: Option<Arc<Budget>>,
        max_cached: usize,
    ) -> Shared {
        Shared {
            geometry,
            budget,
            max_cached,
            state: Mutex::new(State::default()),
        }
    }

    pub(crate) fn max_stacks(&self) -> Option<usize> {
        self.budget.as_ref().map(|b| b.max())
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave `State` inconsistent
        // for our purposes (each method restores its invariants before any
        // call that can panic), so a poisoned lock is used as is.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Takes up to `want` idle stacks (at least one, carving a new one if
    /// none is idle) and appends their tops to `out`, hottest first.
    ///
    /// `carver` is the calling thread cache's published length, registered
    /// with this pool, if it has one. Each such cache carves from a slab of
    /// its own, so the stacks one worker carves lie next to each other
    /// rather than alternating with another worker's. Alternating, every
    /// hop of a fiber ring split between two workers was about 20% slower
    /// (a ring of 100,000 on two workers, one build with this switched off
    /// and on, medians of interleaved runs: 250 -> 202 ns/hop in a probe,
    /// 281 -> 233 in the comparison runner's `ring_100k`).
    pub(crate) fn take(
        &self,
        want: usize,
        carver: Option<&Arc<AtomicUsize>>,
        out: &mut Vec<usize>,
    ) -> Result<(), StackError> {
        let mut state = self.lock();
        let before = out.len();
        while out.len() - before < want {
            match state.hot.pop_back().or_else(|| state.cold.pop()) {
                Some(top) => out.push(top),
                None => break,
            }
        }
        if out.len() == before {
            let carver = carver.map(|len| Arc::as_ptr(len) as usize);
            let top = self.carve(&mut state, carver)?;
            out.push(top);
        }
        Ok(())
    }

    /// Carves a new stack from `carver`'s slab, else from a slab nobody
    /// carves from (which becomes `carver`'s), else from a new slab; past
    /// [`MAX_OPEN_SLABS`], from the newest open slab, shared.
    fn carve(&self, state: &mut State, carver: Option<usize>) -> Result<usize, StackError> {
        let open = state.open.iter().position(|o| o.carver == carver);
        let open = open.or_else(|| state.open.iter().position(|o| o.carver.is_none()));
        let open = match open {
            Some(i) => {
                state.open[i].carver = carver;
                i
            }
            None if state.open.len() >= MAX_OPEN_SLABS => state.open.len() - 1,
            None => {
                let slots = Slab::slots_after(state.carved, self.geometry.stride);
                let slab =
                    Slab::map(&self.geometry, slots).map_err(|e| self.carve_error(state, e))?;
                state.slabs.push(slab);
                let slab = state.slabs.len() - 1;
                state.open.push(OpenSlab { slab, carver });
                state.open.len() - 1
            }
        };
        let slab = state.open[open].slab;
        let carved = state.slabs[slab].carve(&self.geometry);
        let top = carved.map_err(|e| self.carve_error(state, e))?;
        if state.slabs[slab].is_full() {
            state.open.swap_remove(open);
        }
        state.carved += 1;
        Ok(top)
    }

    fn carve_error(&self, state: &State, e: CarveError) -> StackError {
        match e {
            CarveError::Other(e) => e,
            CarveError::Maps(refused) => StackError::MapCountLimit {
                guard_mode: self.geometry.mode,
                max_map_count: refused.max_map_count,
                weft_mappings: refused.weft_mappings,
                carved: state.carved,
                stack_size: self.geometry.stack_size,
                guard_size: self.geometry.guard_size,
            },
        }
    }

    /// Takes back idle stacks (oldest first), then decommits the oldest
    /// committed ones past `max_cached`.
    pub(crate) fn give_back(&self, tops: impl IntoIterator<Item = usize>) {
        let mut state = self.lock();
        state.hot.extend(tops);
        let excess = state.hot.len().saturating_sub(self.max_cached);
        if excess > 0 {
            self.decommit_oldest(&mut state, excess);
        }
    }

    /// Takes back idle stacks without decommitting any, for a caller that
    /// has a [`trim`](Self::trim) follow soon, in one sorted pass (see
    /// `cache::Hoard`).
    pub(crate) fn stash(&self, tops: impl IntoIterator<Item = usize>) {
        self.lock().hot.extend(tops);
    }

    /// Decommits every committed idle stack of the shared pool; returns how many.
    pub(crate) fn trim(&self) -> usize {
        let mut state = self.lock();
        let n = state.hot.len();
        self.decommit_oldest(&mut state, n)
    }

    /// Moves the `n` oldest hot stacks to the cold list, giving their pages
    /// back with `MADV_DONTNEED`. Returns how many moved.
    ///
    /// Neighbouring stacks go back in one call: each `madvise` that drops
    /// pages flushes the TLBs of every CPU running this process (an
    /// interrupt each), so one call per run of adjacent slots instead of
    /// one per stack (skynet spent 8% of its time here).
    fn decommit_oldest(&self, state: &mut State, n: usize) -> usize {
        let n = n.min(state.hot.len());
        let mut tops: Vec<usize> = state.hot.drain(..n).collect();
        tops.sort_unstable();
        let (len, stride) = (self.geometry.stack_size, self.geometry.stride);
        let mut start = 0;
        while start < tops.len() {
            let mut end = start + 1;
            while end < tops.len() && tops[end] - tops[end - 1] == stride {
                end += 1;
            }
            let (low, high) = (tops[start] - len, tops[end - 1]);
            // SAFETY: each top is that of an idle stack of one of our slabs,
            // and tops one stride apart are neighbouring slots (a slot is a
            // guard then the usable region, so nothing else fits between
            // them). `low .. high` is therefore the usable regions of idle
            // stacks, which no `Stack` refers to (their contents are dead,
            // their headers already zero), and the guards between them,
            // which survive `MADV_DONTNEED` (PROT_NONE pages hold nothing;
            // guard markers stay).
            if let Err(e) = unsafe { os::decommit(low, high - low) } {
                // Cannot happen for a valid private anonymous range; keep
                // the stacks committed rather than lose them.
                debug_assert!(false, "MADV_DONTNEED failed: {e}");
                for &top in tops[start..].iter().rev() {
                    state.hot.push_front(top);
                }
                tops.truncate(start);
                break;
            }
            start = end;
        }
        let moved = tops.len();
        state.cold.extend(tops);
        moved
    }

    /// Registers a thread cache's published length, so `stats` counts it.
    pub(crate) fn register_cache(&self, len: &Arc<AtomicUsize>) {
        self.lock().caches.push(Arc::clone(len));
    }

    /// Undoes [`register_cache`](Self::register_cache), and leaves the slab
    /// the cache carved from to whoever carves next.
    pub(crate) fn unregister_cache(&self, len: &Arc<AtomicUsize>) {
        let mut state = self.lock();
        state.caches.retain(|c| !Arc::ptr_eq(c, len));
        let carver = Some(Arc::as_ptr(len) as usize);
        for open in state.open.iter_mut().filter(|o| o.carver == carver) {
            open.carver = None;
        }
    }

    pub(crate) fn stats(&self) -> PoolStats {
        let state = self.lock();
        let cached = state_cached(&state);
        PoolStats {
            live: state.carved.saturating_sub(cached),
            cached,
            mappings: state.slabs.iter().map(Slab::mappings).sum(),
            guard_mode: self.geometry.mode,
            carved: state.carved,
            max_stacks: self.max_stacks(),
        }
    }
}

/// Idle stacks of the pool: in the shared free lists or in thread caches.
fn state_cached(state: &State) -> usize {
    let in_caches: usize = state.caches.iter().map(|c| c.load(Ordering::Relaxed)).sum();
    state.hot.len() + state.cold.len() + in_caches
}
