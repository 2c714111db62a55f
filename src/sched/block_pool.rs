//! The block pool: task blocks freed on a worker are kept for the next
//! task made there, instead of going back to the global allocator.
//!
//! A fiber that is spawned and joined costs one heap block. Through
//! glibc's `malloc` and `free` that block cost 387 of the 1,472
//! instructions of a spawn and join of an empty fiber, and the heap glibc
//! grew and trimmed around a burst of a million fibers cost page faults
//! on every burst. Go keeps the descriptors of dead goroutines on per-P
//! free lists for the same reason, and Erlang has allocators of its own.
//!
//! # Classes
//!
//! Blocks are pooled by size class: the sizes glibc hands out (16 bytes
//! apart, 8 bytes short of a multiple of 16), up to [`MAX_POOLED`] bytes,
//! aligned to at most 16. A pooled block is always allocated and freed
//! with its class's layout, so that a block of a class can serve any task
//! of that class, and one freed off the workers goes straight back to the
//! global allocator. Larger or over-aligned blocks are not pooled.
//!
//! # Two levels
//!
//! - Each worker keeps up to [`LOCAL_MAX`] free blocks a class
//!   ([`LocalBlocks`]), a list linked through the free blocks themselves:
//!   taking or giving one is a thread-local pop or push, no lock and no
//!   atomic read-modify-write.
//! - Past that, a worker moves [`BATCH`] of them to the runtime's shared
//!   pool ([`SharedBlocks`], behind a mutex), and a worker whose list is
//!   empty takes a batch back from it. Blocks flow from the workers that
//!   free them (the joiners) to those that allocate (the spawners) a
//!   batch at a time.
//!
//! # How much is kept
//!
//! The shared pool keeps at most [`SHARED_MAX_BYTES`] of blocks; batches
//! past that go back to the global allocator. So a runtime keeps, after a
//! burst of fibers, up to that much of their blocks for the next burst
//! (Go keeps all of them, for the life of the process). Everything goes
//! back when the runtime is dropped: a worker's list when its thread
//! exits, the shared pool with the runtime.

use std::alloc::{self, Layout};
use std::cell::UnsafeCell;
use std::ptr::{self, NonNull};

use super::worker;
use crate::loom::sync::Mutex;

/// The largest pooled block, in bytes.
const MAX_POOLED: usize = 1016;
/// The largest pooled alignment: glibc's `malloc` gives 16.
const MAX_ALIGN: usize = 16;
/// Classes: usable sizes 8, 24, 40, ..., `MAX_POOLED`.
const CLASSES: usize = (MAX_POOLED - 8) / 16 + 1;
/// Most free blocks a worker keeps a class.
const LOCAL_MAX: usize = 64;
/// Blocks moved between a worker and the shared pool at once.
const BATCH: usize = 32;
/// Most bytes of free blocks the shared pool keeps.
const SHARED_MAX_BYTES: usize = 256 << 20;

/// A size class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Class(usize);

impl Class {
    /// The class of a block of `layout`, if it is pooled.
    #[inline]
    fn of(layout: Layout) -> Option<Class> {
        if layout.size() > MAX_POOLED || layout.align() > MAX_ALIGN {
            return None;
        }
        // The smallest class whose size (16k + 8) holds the block.
        Some(Class((layout.size() + 7) / 16))
    }

    fn size(self) -> usize {
        self.0 * 16 + 8
    }

    /// The layout every block of the class is allocated and freed with.
    #[inline]
    fn layout(self) -> Layout {
        // SAFETY: the size is non-zero and at most `MAX_POOLED`, far from
        // overflowing when rounded up to 16, a power of two.
        unsafe { Layout::from_size_align_unchecked(self.size(), MAX_ALIGN) }
    }
}

/// A list of free blocks of one class, linked through their first word.
#[derive(Debug)]
struct Chain {
    head: *mut u8,
    len: usize,
}

impl Chain {
    const EMPTY: Chain = Chain {
        head: ptr::null_mut(),
        len: 0,
    };

    /// # Safety
    ///
    /// `block` is a free block of this chain's class, owned by the caller,
    /// which gives it to the chain.
    #[inline]
    unsafe fn push(&mut self, block: NonNull<u8>) {
        // SAFETY: every class's block holds a pointer at its start (8 or
        // more bytes, aligned to 16), and the block is ours now.
        unsafe { block.cast::<*mut u8>().write(self.head) };
        self.head = block.as_ptr();
        self.len += 1;
    }

    #[inline]
    fn pop(&mut self) -> Option<NonNull<u8>> {
        let block = NonNull::new(self.head)?;
        // SAFETY: the chain owns its blocks; each starts with the link to
        // the next one (`push`).
        self.head = unsafe { block.cast::<*mut u8>().read() };
        self.len -= 1;
        Some(block)
    }

    /// Splits off the first `n` blocks (`n <= len`).
    fn split_off_front(&mut self, n: usize) -> Chain {
        let head = self.head;
        let mut last = head;
        for _ in 1..n {
            // SAFETY: the chain owns `len >= n` linked blocks.
            last = unsafe { last.cast::<*mut u8>().read() };
        }
        // SAFETY: as above: `last` is the n-th block.
        self.head = unsafe { last.cast::<*mut u8>().read() };
        // SAFETY: as above; the new chain ends at its n-th block.
        unsafe { last.cast::<*mut u8>().write(ptr::null_mut()) };
        self.len -= n;
        Chain { head, len: n }
    }

    /// Gives every block back to the global allocator.
    fn free_all(&mut self, class: Class) {
        while let Some(block) = self.pop() {
            // SAFETY: every block of the chain was allocated with its
            // class's layout, and is ours.
            unsafe { alloc::dealloc(block.as_ptr(), class.layout()) };
        }
    }
}

/// A worker's free blocks, one chain a class; only its thread touches it.
pub(crate) struct LocalBlocks {
    chains: UnsafeCell<[Chain; CLASSES]>,
}

impl LocalBlocks {
    pub(crate) fn new() -> LocalBlocks {
        LocalBlocks {
            chains: UnsafeCell::new([Chain::EMPTY; CLASSES]),
        }
    }

    /// The chain of `class`.
    ///
    /// # Safety
    ///
    /// No other reference to the chains is alive: the worker's thread
    /// calls this from [`alloc()`] and [`free`] only, which do not re-enter
    /// (they call nothing that frees a task block).
    #[inline]
    #[expect(clippy::mut_from_ref, reason = "exclusive by the contract above")]
    unsafe fn chain(&self, class: Class) -> &mut Chain {
        // SAFETY: see above; `class.0 < CLASSES` by `Class::of`.
        unsafe { (*self.chains.get()).get_unchecked_mut(class.0) }
    }

    fn take(&self, shared: &SharedBlocks, class: Class) -> Option<NonNull<u8>> {
        // SAFETY: see `chain`.
        let chain = unsafe { self.chain(class) };
        if chain.len == 0 {
            *chain = shared.take_batch(class)?;
        }
        chain.pop()
    }

    /// # Safety
    ///
    /// As [`free`]'s.
    unsafe fn give(&self, shared: &SharedBlocks, class: Class, block: NonNull<u8>) {
        // SAFETY: see `chain`.
        let chain = unsafe { self.chain(class) };
        if chain.len >= LOCAL_MAX {
            shared.give_batch(class, chain.split_off_front(BATCH));
        }
        // SAFETY: the block is of `class` and ours (the caller's contract).
        unsafe { chain.push(block) };
    }

    /// How many free blocks the worker keeps, in all classes.
    #[cfg(all(test, not(loom)))]
    pub(crate) fn len(&self) -> usize {
        // SAFETY: see `chain`: tests call this between allocations.
        unsafe { (*self.chains.get()).iter().map(|chain| chain.len).sum() }
    }
}

impl Drop for LocalBlocks {
    fn drop(&mut self) {
        for (class, chain) in self.chains.get_mut().iter_mut().enumerate() {
            chain.free_all(Class(class));
        }
    }
}

/// The runtime's pool of free blocks, shared by its workers.
pub(crate) struct SharedBlocks {
    inner: Mutex<SharedInner>,
    /// [`SHARED_MAX_BYTES`], or less in tests.
    max_bytes: usize,
}

struct SharedInner {
    /// Full batches (`BATCH` blocks each), a list a class.
    batches: Vec<Vec<Chain>>,
    /// The bytes of all of them.
    bytes: usize,
}

// SAFETY: the chains own free memory, which any thread may hand out or
// free; the mutex serialises all access.
unsafe impl Send for SharedBlocks {}
// SAFETY: as above.
unsafe impl Sync for SharedBlocks {}

impl SharedBlocks {
    pub(crate) fn new() -> SharedBlocks {
        SharedBlocks::with_max_bytes(SHARED_MAX_BYTES)
    }

    fn with_max_bytes(max_bytes: usize) -> SharedBlocks {
        SharedBlocks {
            inner: Mutex::new(SharedInner {
                batches: (0..CLASSES).map(|_| Vec::new()).collect(),
                bytes: 0,
            }),
            max_bytes,
        }
    }

    fn take_batch(&self, class: Class) -> Option<Chain> {
        let mut inner = self.inner.lock();
        let chain = inner.batches[class.0].pop()?;
        inner.bytes -= chain.len * class.size();
        Some(chain)
    }

    fn give_batch(&self, class: Class, mut chain: Chain) {
        let bytes = chain.len * class.size();
        {
            let mut inner = self.inner.lock();
            if inner.bytes + bytes <= self.max_bytes {
                inner.bytes += bytes;
                inner.batches[class.0].push(chain);
                return;
            }
        }
        chain.free_all(class);
    }

    /// How many bytes of free blocks the pool keeps.
    #[cfg(all(test, not(loom)))]
    pub(crate) fn bytes(&self) -> usize {
        self.inner.lock().bytes
    }
}

impl std::fmt::Debug for SharedBlocks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedBlocks")
            .field("bytes", &self.inner.lock().bytes)
            .finish_non_exhaustive()
    }
}

impl Drop for SharedBlocks {
    fn drop(&mut self) {
        let mut inner = self.inner.lock();
        for (class, batches) in inner.batches.iter_mut().enumerate() {
            for chain in batches.iter_mut() {
                chain.free_all(Class(class));
            }
        }
    }
}

/// A block for `layout`: from the pool of `current`, this thread's worker
/// (the caller has looked it up: a spawn does, for its queue), if the
/// block is pooled and one is free; else from the global allocator.
/// Never null: an allocation failure is reported as `Arc::new`'s is
/// ([`handle_alloc_error`](alloc::handle_alloc_error)).
#[inline]
pub(crate) fn alloc(current: Option<&worker::Worker>, layout: Layout) -> NonNull<u8> {
    let (layout, block) = match Class::of(layout) {
        Some(class) => {
            let pooled = current.and_then(|w| w.blocks().take(&w.shared().blocks, class));
            if let Some(block) = pooled {
                return block;
            }
            // SAFETY: a class's layout has a non-zero size.
            (class.layout(), unsafe { alloc::alloc(class.layout()) })
        }
        // SAFETY: task blocks have a non-zero size (a header at least).
        None => (layout, unsafe { alloc::alloc(layout) }),
    };
    NonNull::new(block).unwrap_or_else(|| alloc::handle_alloc_error(layout))
}

/// Gives back a block [`alloc()`] returned for `layout`.
///
/// # Safety
///
/// `block` came from [`alloc()`] with this `layout` and is no longer used.
#[inline]
pub(crate) unsafe fn free(block: NonNull<u8>, layout: Layout) {
    let Some(class) = Class::of(layout) else {
        // SAFETY: allocated with `layout` by `alloc` (not pooled).
        unsafe { alloc::dealloc(block.as_ptr(), layout) };
        return;
    };
    let kept = worker::with_current(|w| match w {
        Some(w) => {
            // SAFETY: the block is of `class` and ours (the contract).
            unsafe { w.blocks().give(&w.shared().blocks, class, block) };
            true
        }
        None => false,
    });
    if !kept {
        // SAFETY: pooled blocks are allocated with their class's layout.
        unsafe { alloc::dealloc(block.as_ptr(), class.layout()) };
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn a_class_holds_its_blocks_and_matches_glibcs_sizes() {
        for size in 1..=MAX_POOLED {
            let layout = Layout::from_size_align(size, 8).unwrap();
            let class = Class::of(layout).unwrap();
            assert!(class.size() >= size, "size {size}");
            assert!(class.size() < size + 16, "size {size}");
            assert_eq!(class.size() % 16, 8);
            assert!(class.0 < CLASSES);
        }
        assert_eq!(
            Class::of(Layout::from_size_align(MAX_POOLED + 1, 8).unwrap()),
            None
        );
        assert_eq!(Class::of(Layout::from_size_align(64, 32).unwrap()), None);
    }

    /// Blocks overflow to the shared pool a batch at a time, and come back
    /// to an empty worker list from it.
    #[test]
    fn blocks_move_between_a_worker_and_the_shared_pool_in_batches() {
        let class = Class::of(Layout::new::<[u64; 16]>()).unwrap();
        let local = LocalBlocks::new();
        let shared = SharedBlocks::new();
        let blocks: Vec<_> = (0..LOCAL_MAX + 1)
            // SAFETY: a class's layout has a non-zero size.
            .map(|_| NonNull::new(unsafe { alloc::alloc(class.layout()) }).unwrap())
            .collect();
        for &block in &blocks {
            // SAFETY: allocated with the class's layout, unused.
            unsafe { local.give(&shared, class, block) };
        }
        assert_eq!(local.len(), LOCAL_MAX + 1 - BATCH);
        assert_eq!(shared.bytes(), BATCH * class.size());
        let mut taken = Vec::new();
        while let Some(block) = local.take(&shared, class) {
            taken.push(block);
        }
        assert_eq!(taken.len(), blocks.len(), "every block came back once");
        assert_eq!(shared.bytes(), 0);
        taken.sort();
        taken.dedup();
        assert_eq!(taken.len(), blocks.len());
        for block in taken {
            // SAFETY: as above, back to the allocator.
            unsafe { alloc::dealloc(block.as_ptr(), class.layout()) };
        }
    }

    /// On a worker, a freed block is the next one of its class handed
    /// out, and a burst of fibers leaves its blocks in the runtime's pool.
    #[test]
    fn a_worker_reuses_the_blocks_its_fibers_freed() {
        let rt = crate::Runtime::builder().workers(1).build().unwrap();
        rt.block_on(|| {
            let layout = Layout::new::<[u64; 14]>();
            let alloc = || worker::with_current(|w| alloc(w, layout));
            let a = alloc();
            // SAFETY: from `alloc` with this layout, unused.
            unsafe { free(a, layout) };
            let b = alloc();
            assert_eq!(a, b, "the block just freed is reused");
            // SAFETY: as above.
            unsafe { free(b, layout) };
            let shared = || worker::with_current(|w| w.unwrap().shared().blocks.bytes());
            let before = shared();
            let fibers: Vec<_> = (0..4 * LOCAL_MAX).map(|_| crate::spawn(|| ())).collect();
            for fiber in fibers {
                fiber.join().unwrap();
            }
            assert!(shared() > before, "the burst's blocks went to the pool");
        });
    }

    #[test]
    fn the_shared_pool_frees_batches_past_its_cap() {
        let class = Class::of(Layout::new::<[u64; 12]>()).unwrap();
        let max = 10 * BATCH * class.size() + 1;
        let shared = SharedBlocks::with_max_bytes(max);
        let batches = 12;
        for _ in 0..batches {
            let mut chain = Chain::EMPTY;
            for _ in 0..BATCH {
                // SAFETY: a fresh block of the class, given to the chain.
                unsafe {
                    chain.push(NonNull::new(alloc::alloc(class.layout())).unwrap());
                }
            }
            shared.give_batch(class, chain);
        }
        assert_eq!(shared.bytes(), 10 * BATCH * class.size());
    }
}
