//! Slabs: the large anonymous mappings stacks are carved from, and the
//! process-wide count of memory mappings weft's slabs use.
//!
//! ```text
//!  slab start                                                     slab end
//!  | guard | stack 0 ...... hdr | guard | stack 1 ...... hdr | ... (uncarved)
//!  |<------------ stride ------->|
//! ```
//!
//! A slab is mapped read-write, `MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK |
//! MAP_NORESERVE` (through memmap2's `stack()` and `no_reserve_swap()`),
//! with `MADV_NOHUGEPAGE`, so a stack costs only the pages its fiber
//! touched. Slots are carved in address order, lazily: carving slot `i`
//! installs its guard and nothing else. A slab lives until its pool dies.
//!
//! # Counting mappings
//!
//! In guard-install mode a slab is one kernel mapping (VMA) however many
//! stacks it holds. In mprotect mode every guard splits it: after `k > 0`
//! slots are carved the slab is `2k` VMAs (`k` guards, `k` stacks, the last
//! stack merged with the uncarved rest). Weft counts these in a process-wide
//! atomic and refuses to carve once the next step would pass
//! `vm.max_map_count - headroom`, where the headroom is 1,024 plus what the
//! process had mapped when its first pool was built: near the kernel's
//! limit every `mmap` in the process fails, not just weft's. The count is
//! an upper bound: the kernel may merge our slab with a neighbour.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use memmap2::{Advice, MmapOptions, MmapRaw};

use super::registry::{self, SlabRange};
use super::{GuardMode, StackError, os};

/// Mappings kept free for the rest of the process (malloc arenas, thread
/// stacks, libraries), on top of those it had when the first pool was built.
const MAP_HEADROOM: usize = 1024;

/// Mappings all weft slabs in the process account for.
static WEFT_MAPPINGS: AtomicUsize = AtomicUsize::new(0);

/// The process's mapping budget for weft, fixed when the first pool is built.
#[derive(Debug, Clone, Copy)]
struct MapBudget {
    max_map_count: usize,
    /// The most mappings weft may hold.
    limit: usize,
}

fn map_budget() -> MapBudget {
    static BUDGET: OnceLock<MapBudget> = OnceLock::new();
    *BUDGET.get_or_init(|| {
        let max_map_count = os::max_map_count();
        let baseline = os::current_map_count().unwrap_or(0);
        let limit = max_map_count.saturating_sub(MAP_HEADROOM.saturating_add(baseline));
        MapBudget {
            max_map_count,
            limit,
        }
    })
}

/// Fixes the map budget now, while the process's own mapping count is
/// still its baseline. Called when a pool is built.
pub(crate) fn init_map_budget() {
    map_budget();
}

/// What a refused reservation reports.
pub(crate) struct MapsRefused {
    pub(crate) max_map_count: usize,
    pub(crate) weft_mappings: usize,
}

/// Mappings reserved from the process-wide budget; given back on drop.
#[derive(Debug)]
struct MapReservation(usize);

impl MapReservation {
    /// Reserves `n` mappings, or says why not.
    fn reserve(n: usize) -> Result<MapReservation, MapsRefused> {
        let budget = map_budget();
        WEFT_MAPPINGS
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                used.checked_add(n).filter(|&total| total <= budget.limit)
            })
            .map(|_| MapReservation(n))
            .map_err(|used| MapsRefused {
                max_map_count: budget.max_map_count,
                weft_mappings: used,
            })
    }

    /// Takes over `other`'s mappings.
    fn absorb(&mut self, mut other: MapReservation) {
        self.0 += std::mem::take(&mut other.0);
    }
}

impl Drop for MapReservation {
    fn drop(&mut self) {
        WEFT_MAPPINGS.fetch_sub(self.0, Ordering::Relaxed);
    }
}

/// The geometry shared by every slot of a pool.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Geometry {
    /// Usable bytes per stack, header included (a whole number of pages).
    pub(crate) stack_size: usize,
    /// Guard bytes below each stack (a whole number of pages).
    pub(crate) guard_size: usize,
    /// `guard_size + stack_size`.
    pub(crate) stride: usize,
    /// How guards are installed.
    pub(crate) mode: GuardMode,
}

impl Geometry {
    fn os_error(&self, op: &'static str, source: std::io::Error) -> StackError {
        StackError::Os {
            op,
            stack_size: self.stack_size,
            guard_size: self.guard_size,
            source,
        }
    }
}

/// Why carving failed.
pub(crate) enum CarveError {
    /// The mapping budget is spent.
    Maps(MapsRefused),
    /// Anything else, ready to report.
    Other(StackError),
}

impl From<StackError> for CarveError {
    fn from(e: StackError) -> Self {
        CarveError::Other(e)
    }
}

/// One mapping of `slots` stack slots.
///
/// Invariants: `carved <= slots`; slots `0..carved` have their guard
/// installed; the mapping is registered under `registry_index` for as long
/// as it is mapped; `maps` holds the mappings it accounts for.
///
/// Drop order matters: `Drop::drop` unregisters the range, then the fields
/// drop in declaration order: `map` unmaps, then `maps` gives the count back.
#[derive(Debug)]
pub(crate) struct Slab {
    map: MmapRaw,
    maps: MapReservation,
    slots: usize,
    carved: usize,
    registry_index: usize,
}

impl Slab {
    /// How many slots a pool's next slab holds once it has carved `carved`
    /// stacks: about as many as were carved before it, however many
    /// threads carve (one thread alone gets slabs of 16, 32, 64 ...).
    pub(crate) fn slots_after(carved: usize, stride: usize) -> usize {
        let doublings = (carved / 16)
            .checked_ilog2()
            .map_or(0, |log| log as usize + 1);
        Slab::slots_for(doublings, stride)
    }

    /// How many slots a slab mapped after `n` doublings of a pool's stacks
    /// holds: 16, doubling, until a slab would pass about 1 GiB; at least
    /// one.
    fn slots_for(n: usize, stride: usize) -> usize {
        const FIRST: usize = 16;
        const MAX_SLAB_BYTES: usize = 1 << 30;
        let cap = (MAX_SLAB_BYTES / stride).max(1);
        let shift = u32::try_from(n).unwrap_or(u32::MAX).min(usize::BITS - 8);
        FIRST.checked_shl(shift).unwrap_or(usize::MAX).min(cap)
    }

    /// Maps a slab of `slots` slots and registers it for the overflow
    /// handler. On any failure nothing is left mapped, registered or counted.
    pub(crate) fn map(geometry: &Geometry, slots: usize) -> Result<Slab, CarveError> {
        let len = slots.checked_mul(geometry.stride).ok_or_else(|| {
            geometry.os_error("size a stack slab", std::io::ErrorKind::OutOfMemory.into())
        })?;
        // On every early return below, `maps` gives the count back and
        // `map` (once it exists) unmaps.
        let maps = MapReservation::reserve(1).map_err(CarveError::Maps)?;
        let map: MmapRaw = MmapOptions::new()
            .len(len)
            .stack()
            .no_reserve_swap()
            .map_anon()
            .map_err(|e| geometry.os_error("map a stack slab", e))?
            .into();
        map.advise(Advice::NoHugePage)
            .map_err(|e| geometry.os_error("madvise(MADV_NOHUGEPAGE) a stack slab", e))?;
        let start = map.as_ptr() as usize;
        let range = SlabRange {
            start,
            end: start + len,
            stride: geometry.stride,
            guard: geometry.guard_size,
        };
        let Some(registry_index) = registry::register(range) else {
            return Err(StackError::RegistryFull {
                capacity: registry::CAPACITY,
            }
            .into());
        };
        Ok(Slab {
            map,
            maps,
            slots,
            carved: 0,
            registry_index,
        })
    }

    /// Whether every slot has been carved.
    pub(crate) fn is_full(&self) -> bool {
        self.carved == self.slots
    }

    /// Mappings this slab accounts for.
    pub(crate) fn mappings(&self) -> usize {
        self.maps.0
    }

    /// Carves the next slot: installs its guard and returns the top of its
    /// usable region (one past its highest byte). The slab must not be full.
    /// On failure the slot stays uncarved and nothing changes.
    pub(crate) fn carve(&mut self, geometry: &Geometry) -> Result<usize, CarveError> {
        debug_assert!(!self.is_full());
        let slot = self.map.as_ptr() as usize + self.carved * geometry.stride;
        // In mprotect mode the first guard splits the slab in 2, every later
        // one splits the uncarved tail in 3 (see the module doc).
        let extra = match geometry.mode {
            GuardMode::GuardInstall => 0,
            GuardMode::Mprotect if self.carved == 0 => 1,
            GuardMode::Mprotect => 2,
        };
        let extra = MapReservation::reserve(extra).map_err(CarveError::Maps)?;
        let installed = match geometry.mode {
            // SAFETY: [slot, slot + guard) is the low end of an uncarved slot
            // of our own mapping: page-aligned (the slab and stride are) and
            // never handed out, so it holds nothing.
            GuardMode::GuardInstall => unsafe { os::guard_install(slot, geometry.guard_size) },
            // SAFETY: as above.
            GuardMode::Mprotect => unsafe { os::protect_none(slot, geometry.guard_size) },
        };
        if let Err(e) = installed {
            let op = match geometry.mode {
                GuardMode::GuardInstall => "install a guard with madvise(MADV_GUARD_INSTALL)",
                GuardMode::Mprotect => "install a guard page with mprotect(PROT_NONE)",
            };
            return Err(geometry.os_error(op, e).into());
        }
        self.maps.absorb(extra);
        self.carved += 1;
        Ok(slot + geometry.stride)
    }
}

impl Drop for Slab {
    fn drop(&mut self) {
        // The handler must stop describing the range before it can be reused.
        registry::unregister(self.registry_index);
        // Then `self.map` unmaps and `self.maps` gives the count back.
    }
}

#[cfg(test)]
mod tests {
    use super::Slab;

    #[test]
    fn slab_sizes_grow_geometrically_to_about_one_gib() {
        let stride = 20 * 1024;
        assert_eq!(Slab::slots_for(0, stride), 16);
        assert_eq!(Slab::slots_for(1, stride), 32);
        assert_eq!(Slab::slots_for(11, stride), 32_768);
        assert_eq!(Slab::slots_for(12, stride), (1 << 30) / stride);
        assert_eq!(Slab::slots_for(usize::MAX, stride), (1 << 30) / stride);
        // A 1 GiB stack still gets a slab of one slot.
        assert_eq!(Slab::slots_for(0, (1 << 30) + 4096), 1);
        // One thread carving gets the slabs of 16, 32, 64 ... stacks.
        let mut total = 0;
        for n in 0..12 {
            assert_eq!(Slab::slots_after(total, stride), Slab::slots_for(n, stride));
            total += Slab::slots_for(n, stride);
        }
        // A million 16 KiB stacks need a few dozen slabs, not thousands.
        let mut total = 0;
        let mut slabs = 0;
        while total < 1_000_000 {
            total += Slab::slots_after(total, stride);
            slabs += 1;
        }
        assert!(slabs < 40, "{slabs} slabs");
    }
}
