//! A process-wide, fixed-size registry of stack slabs that the overflow
//! handler (`guard.rs`) can search without locks or allocation.
//!
//! Each entry describes one slab: `[start, end)`, the slot stride and the
//! guard size, enough to find the slot an address falls in and its guard.
//! Entries are written by the pools (when a slab is mapped or about to be
//! unmapped) and read by the signal handler at any moment, on any thread,
//! possibly while a pool is halfway through writing. Each entry is
//! therefore a small seqlock:
//!
//! * `seq` is even when the entry is stable, odd while a writer owns it;
//! * a writer takes ownership by moving `seq` from even to odd with a CAS,
//!   writes the fields, then publishes `seq + 2`;
//! * a reader reads `seq`, the fields, then `seq` again, and trusts the
//!   fields only if both reads agree and are even.
//!
//! A free entry has `start == 0`. `HIGH` is one past the highest entry ever
//! used, so the handler scans only that prefix. The table is a `static`
//! array of atomics: no heap, no lock, no initialisation order to get wrong.

use std::sync::atomic::{AtomicUsize, Ordering, fence};

/// How many slabs can be registered at once, across all pools. Slabs grow
/// to about 1 GiB, so this covers terabytes of stacks.
pub(crate) const CAPACITY: usize = 4096;

struct Entry {
    seq: AtomicUsize,
    start: AtomicUsize,
    end: AtomicUsize,
    stride: AtomicUsize,
    guard: AtomicUsize,
}

impl Entry {
    const fn free() -> Entry {
        Entry {
            seq: AtomicUsize::new(0),
            start: AtomicUsize::new(0),
            end: AtomicUsize::new(0),
            stride: AtomicUsize::new(0),
            guard: AtomicUsize::new(0),
        }
    }
}

static ENTRIES: [Entry; CAPACITY] = [const { Entry::free() }; CAPACITY];
static HIGH: AtomicUsize = AtomicUsize::new(0);

/// One registered slab, as the overflow handler sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SlabRange {
    /// Lowest address of the slab (the guard of slot 0).
    pub(crate) start: usize,
    /// One past the highest address of the slab.
    pub(crate) end: usize,
    /// Bytes per slot: guard + usable stack.
    pub(crate) stride: usize,
    /// Bytes of guard at the low end of each slot.
    pub(crate) guard: usize,
}

/// Registers a slab; returns its entry index for [`unregister`], or `None`
/// if all [`CAPACITY`] entries are taken.
pub(crate) fn register(range: SlabRange) -> Option<usize> {
    debug_assert!(range.start != 0 && range.start < range.end);
    for (index, entry) in ENTRIES.iter().enumerate() {
        let seq = entry.seq.load(Ordering::Relaxed);
        if !seq.is_multiple_of(2) || entry.start.load(Ordering::Relaxed) != 0 {
            continue;
        }
        if entry
            .seq
            .compare_exchange(seq, seq + 1, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            continue;
        }
        // We own the entry. It was free when we read `start` before the
        // CAS, and only an owner writes `start`, so it still is.
        // Pairs with the reader's fence: a reader that sees any field below
        // also sees the odd `seq` on its second read.
        fence(Ordering::Release);
        entry.end.store(range.end, Ordering::Relaxed);
        entry.stride.store(range.stride, Ordering::Relaxed);
        entry.guard.store(range.guard, Ordering::Relaxed);
        entry.start.store(range.start, Ordering::Relaxed);
        // Publishes the fields; pairs with the Acquire load in `read`.
        entry.seq.store(seq + 2, Ordering::Release);
        HIGH.fetch_max(index + 1, Ordering::Release);
        return Some(index);
    }
    None
}

/// Frees the entry `index` returned by [`register`]. Call it before the
/// slab is unmapped, so the handler never describes a range that may be
/// reused by another mapping.
pub(crate) fn unregister(index: usize) {
    let entry = &ENTRIES[index];
    // Only the pool that registered the slab unregisters it, and never
    // twice, so no other writer can own the entry: a plain store takes it.
    let seq = entry.seq.load(Ordering::Relaxed);
    debug_assert!(seq.is_multiple_of(2));
    entry.seq.store(seq + 1, Ordering::Relaxed);
    // As in `register`: field stores stay after the odd `seq`.
    fence(Ordering::Release);
    entry.start.store(0, Ordering::Relaxed);
    entry.end.store(0, Ordering::Relaxed);
    entry.stride.store(0, Ordering::Relaxed);
    entry.guard.store(0, Ordering::Relaxed);
    entry.seq.store(seq + 2, Ordering::Release);
}

/// A consistent snapshot of entry `index`, or `None` if it is free or a
/// writer is changing it. Async-signal-safe: atomics only.
fn read(index: usize) -> Option<SlabRange> {
    let entry = &ENTRIES[index];
    // Pairs with the Release store of `seq` in `register`/`unregister`.
    let before = entry.seq.load(Ordering::Acquire);
    if !before.is_multiple_of(2) {
        return None;
    }
    let range = SlabRange {
        start: entry.start.load(Ordering::Relaxed),
        end: entry.end.load(Ordering::Relaxed),
        stride: entry.stride.load(Ordering::Relaxed),
        guard: entry.guard.load(Ordering::Relaxed),
    };
    // Pairs with the writers' Release fence: if any field above came from
    // a write in progress, the load below sees its odd (or later) `seq`.
    fence(Ordering::Acquire);
    let after = entry.seq.load(Ordering::Relaxed);
    (before == after && range.start != 0).then_some(range)
}

/// The registered slab that contains `addr`, if any. Async-signal-safe:
/// no lock, no allocation, a bounded scan of atomics.
pub(crate) fn find(addr: usize) -> Option<SlabRange> {
    let high = HIGH.load(Ordering::Acquire).min(CAPACITY);
    (0..high)
        .filter_map(read)
        .find(|r| r.start <= addr && addr < r.end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn register_find_unregister() {
        // Addresses nobody maps: the registry never dereferences them.
        let range = SlabRange {
            start: 0x7000_0000_0000,
            end: 0x7000_0010_0000,
            stride: 0x5000,
            guard: 0x1000,
        };
        let index = register(range).expect("registry has room");
        assert_eq!(find(0x7000_0000_0000), Some(range));
        assert_eq!(find(0x7000_000f_ffff), Some(range));
        assert_eq!(find(0x7000_0010_0000), None);
        unregister(index);
        assert_eq!(find(0x7000_0000_0000), None);
        // The freed entry is reused.
        let again = register(range).expect("registry has room");
        assert_eq!(find(0x7000_0000_1000), Some(range));
        unregister(again);
    }
}
