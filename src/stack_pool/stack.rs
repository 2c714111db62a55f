//! [`Stack`]: one guarded fiber stack on loan from a pool, and the header at
//! its top that names its owner for the overflow handler.

use std::fmt;
use std::mem::ManuallyDrop;
use std::ptr::NonNull;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use super::cache;
use super::pool::Shared;

/// Bytes at the top of each stack's usable region taken by the [`Header`].
pub(crate) const HEADER_SIZE: usize = 64;

/// The top [`HEADER_SIZE`] bytes of every stack: who runs on it, read by the
/// overflow handler (`guard.rs`) to name the fiber that overflowed.
///
/// All fields are atomics so the handler, which may run on another thread's
/// altstack at any moment, never reads a torn value. A fresh stack's header
/// is zero (fresh or `MADV_DONTNEED`ed anonymous memory), and a returned
/// stack's header is cleared before it goes back to a cache, so an idle
/// stack's header is always zero: "no owner".
#[repr(C, align(64))]
pub(crate) struct Header {
    /// The owning fiber's id; 0 = none.
    pub(crate) owner_id: AtomicU64,
    /// Address of the owner's name (UTF-8), or 0 for none.
    pub(crate) name_ptr: AtomicUsize,
    /// Length of the owner's name in bytes.
    pub(crate) name_len: AtomicUsize,
    /// Room for later fields; keeps the header one cache line.
    _reserved: [AtomicU64; 5],
}

const _: () = assert!(size_of::<Header>() == HEADER_SIZE);

/// A guarded fiber stack on loan from a [`StackPool`](super::StackPool).
///
/// ```text
///   higher addresses
///   +----------------------+ <- top of the slot
///   | header (64 bytes)    |
///   +----------------------+ <- base()   16-byte aligned; the initial stack pointer
///   |                      |
///   | usable stack         |    the fiber's frames grow downwards from base()
///   |                      |
///   +----------------------+ <- limit()  size() = top - limit()
///   | guard (guard_size)   |    any access faults (SIGSEGV)
///   +----------------------+
///   lower addresses
/// ```
///
/// Dropping a `Stack` gives it back to the calling thread's cache of its
/// pool, without locks or atomic read-modify-writes; it is not unmapped.
/// Its contents are not zeroed: the next fiber to get it may see the old
/// frames below its own stack pointer (see the module doc, "Recycling").
///
/// ```
/// use weft::stack_pool::StackPool;
///
/// let pool = StackPool::builder().stack_size(64 * 1024).build()?;
/// let stack = pool.get()?;
/// let (base, limit) = (stack.base().as_ptr() as usize, stack.limit().as_ptr() as usize);
/// assert_eq!(base % 16, 0);
/// assert!(base - limit < stack.size());
/// drop(stack); // back to this thread's cache
/// # Ok::<(), weft::stack_pool::StackError>(())
/// ```
pub struct Stack {
    /// One past the highest byte of the slot: `base() + HEADER_SIZE`.
    top: NonNull<u8>,
    /// The pool this stack returns to. Moved in and out of the thread
    /// cache as is (no refcount traffic); taken out exactly once, in `drop`.
    pool: ManuallyDrop<Arc<Shared>>,
}

// SAFETY: a Stack is an exclusive loan of a memory range that stays mapped
// while its pool (kept alive by `pool`) lives; nothing in it is tied to the
// thread that got it. It may be dropped on any thread: it then goes to that
// thread's cache.
unsafe impl Send for Stack {}
// SAFETY: the `&self` methods read immutable fields or use the header's
// atomics; no `&self` method hands out the stack's memory.
unsafe impl Sync for Stack {}

impl Stack {
    /// Wraps a slot whose header is zero.
    ///
    /// # Safety
    ///
    /// `top` must be the top of a carved slot of `pool` that is in no free
    /// list or cache and in no other `Stack`.
    pub(crate) unsafe fn from_raw(top: usize, pool: Arc<Shared>) -> Stack {
        debug_assert!(top.is_multiple_of(super::os::page_size()));
        Stack {
            // SAFETY: a slot top is inside a mapping, so never null (above).
            top: unsafe { NonNull::new_unchecked(top as *mut u8) },
            pool: ManuallyDrop::new(pool),
        }
    }

    /// The highest usable address (exclusive): where a fiber's stack
    /// pointer starts. 16-byte aligned, just below the stack's header.
    ///
    /// ```
    /// let stack = weft::stack_pool::StackPool::global().get()?;
    /// assert_eq!(stack.base().as_ptr() as usize % 16, 0);
    /// # Ok::<(), weft::stack_pool::StackError>(())
    /// ```
    pub fn base(&self) -> NonNull<u8> {
        // SAFETY: `top - HEADER_SIZE` stays inside the slot, so it is in
        // bounds of the mapping and not null.
        unsafe { self.top.sub(HEADER_SIZE) }
    }

    /// The lowest usable address, just above the guard region.
    ///
    /// ```
    /// let stack = weft::stack_pool::StackPool::global().get()?;
    /// assert!(stack.limit() < stack.base());
    /// # Ok::<(), weft::stack_pool::StackError>(())
    /// ```
    pub fn limit(&self) -> NonNull<u8> {
        // SAFETY: the slot's usable region is `stack_size` bytes below
        // `top`, inside the same mapping.
        unsafe { self.top.sub(self.size()) }
    }

    /// Usable bytes from [`limit`](Self::limit) to the top of the header:
    /// the pool's [`stack_size`](super::StackPool::stack_size).
    ///
    /// ```
    /// use weft::stack_pool::StackPool;
    ///
    /// let pool = StackPool::builder().stack_size(20_000).build()?;
    /// assert_eq!(pool.get()?.size(), 20_480); // rounded up to 4 KiB pages
    /// # Ok::<(), weft::stack_pool::StackError>(())
    /// ```
    pub fn size(&self) -> usize {
        self.pool.geometry.stack_size
    }

    /// Bytes of guard below [`limit`](Self::limit).
    ///
    /// ```
    /// let stack = weft::stack_pool::StackPool::global().get()?;
    /// assert_eq!(stack.guard_size(), 16 * 1024);
    /// # Ok::<(), weft::stack_pool::StackError>(())
    /// ```
    pub fn guard_size(&self) -> usize {
        self.pool.geometry.guard_size
    }

    fn header(&self) -> &Header {
        // SAFETY: the top HEADER_SIZE bytes of the slot are a readable,
        // 64-byte aligned (top is page aligned) Header of atomics, all-zero
        // bytes being a valid Header; it lives as long as `self`.
        unsafe { self.base().cast::<Header>().as_ref() }
    }

    /// Records the fiber that runs on this stack, for the overflow message
    /// `fiber '<name>' has overflowed its stack` (`#<id>` without a name).
    ///
    /// # Safety
    ///
    /// The bytes of `name` must stay valid until [`clear_owner`](Self::clear_owner)
    /// is called or the `Stack` is dropped: the overflow handler may read
    /// them at any moment until then.
    pub(crate) unsafe fn set_owner(&self, id: u64, name: Option<&str>) {
        let header = self.header();
        let (ptr, len) = name.map_or((0, 0), |n| (n.as_ptr() as usize, n.len()));
        header.name_len.store(len, Ordering::Relaxed);
        header.name_ptr.store(ptr, Ordering::Relaxed);
        // Pairs with the handler's Acquire load of `owner_id`.
        header.owner_id.store(id, Ordering::Release);
    }

    /// Forgets the owner recorded by [`set_owner`](Self::set_owner).
    /// Writes only if there is something to clear, so a stack that never
    /// had an owner is not touched (its top page stays uncommitted).
    pub(crate) fn clear_owner(&self) {
        let header = self.header();
        if header.owner_id.load(Ordering::Relaxed) != 0
            || header.name_ptr.load(Ordering::Relaxed) != 0
        {
            header.owner_id.store(0, Ordering::Relaxed);
            header.name_ptr.store(0, Ordering::Relaxed);
            header.name_len.store(0, Ordering::Relaxed);
        }
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.clear_owner();
        // SAFETY: `drop` runs once and `self.pool` is not used after this.
        let pool = unsafe { ManuallyDrop::take(&mut self.pool) };
        if let Some(budget) = &pool.budget {
            budget.release();
        }
        cache::put(self.top.as_ptr() as usize, pool);
    }
}

impl fmt::Debug for Stack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stack")
            .field("base", &self.base())
            .field("limit", &self.limit())
            .field("size", &self.size())
            .field("guard_size", &self.guard_size())
            .finish()
    }
}
