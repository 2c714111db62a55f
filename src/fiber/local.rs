//! Fiber-local storage: [`fiber_local!`](crate::fiber_local).
//!
//! Each fiber has its own copy of a fiber-local, made on first use and
//! dropped when the fiber's body ends (on the fiber, before its joiner
//! hears of the end). Outside any fiber the same key falls back to an
//! ordinary thread-local, so library code works in both worlds.
//!
//! # Why not `thread_local!`
//!
//! Many fibers share one worker thread, so a `thread_local!` is shared by
//! all of them, and a reference to one taken before a blocking point
//! (park, a channel receive, a socket read, `sleep`) may be used by
//! another fiber while this one waits. Worse, with the runtime's `unsafe`
//! migration opt-in a fiber may resume on another thread, and LLVM may
//! still use the address of the *first* thread's slot
//! (llvm/llvm-project#98479). The same goes for `std::sync::Mutex` guards
//! held across a blocking point: the lock stays held by the worker thread
//! while other fibers run on it, and unlocking from another thread is
//! undefined behaviour. Use `fiber_local!` for per-fiber state, and weft's
//! own locks (which park the fiber) across blocking points.

use std::any::Any;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::LocalKey;

/// One fiber's fiber-local values, indexed by key.
#[derive(Default)]
pub(crate) struct Locals {
    /// Each value is a leaked `Box`, freed in `Drop`: references handed
    /// out by `with` stay valid while other keys are added (the vector
    /// may reallocate; the boxes do not move).
    values: Vec<Option<NonNull<dyn Any>>>,
}

impl Drop for Locals {
    fn drop(&mut self) {
        for value in self.values.drain(..).flatten() {
            // SAFETY: every value was made by Box::into_raw in `get_or_init`
            // and is freed once, here.
            drop(unsafe { Box::from_raw(value.as_ptr()) });
        }
    }
}

/// A fiber-local key; declare one with [`fiber_local!`](crate::fiber_local).
#[derive(Debug)]
pub struct FiberLocal<T: 'static> {
    init: fn() -> T,
    fallback: &'static LocalKey<T>,
    /// Index in each fiber's [`Locals`], plus one; 0 until first used.
    key: AtomicUsize,
}

/// Hands out key indices.
static NEXT_KEY: AtomicUsize = AtomicUsize::new(0);

impl<T: 'static> FiberLocal<T> {
    #[doc(hidden)]
    pub const fn __new(init: fn() -> T, fallback: &'static LocalKey<T>) -> FiberLocal<T> {
        FiberLocal {
            init,
            fallback,
            key: AtomicUsize::new(0),
        }
    }

    fn index(&self) -> usize {
        match self.key.load(Ordering::Relaxed) {
            0 => {
                let fresh = NEXT_KEY.fetch_add(1, Ordering::Relaxed) + 1;
                match self
                    .key
                    .compare_exchange(0, fresh, Ordering::Relaxed, Ordering::Relaxed)
                {
                    Ok(_) => fresh - 1,
                    Err(winner) => winner - 1,
                }
            }
            key => key - 1,
        }
    }

    /// Calls `f` with this fiber's value, made by the initialiser on first
    /// use. Outside a fiber, with the calling thread's value.
    ///
    /// ```
    /// use std::cell::Cell;
    ///
    /// weft::fiber_local! {
    ///     static REQUESTS: Cell<u32> = Cell::new(0);
    /// }
    ///
    /// weft::run(|| {
    ///     let fibers: Vec<_> = (0..3)
    ///         .map(|_| {
    ///             weft::spawn(|| {
    ///                 REQUESTS.with(|n| n.set(n.get() + 1));
    ///                 weft::yield_now();
    ///                 REQUESTS.with(|n| n.get())
    ///             })
    ///         })
    ///         .collect();
    ///     for f in fibers {
    ///         assert_eq!(f.join().unwrap(), 1, "each fiber counts its own");
    ///     }
    /// });
    /// ```
    pub fn with<R>(&'static self, f: impl FnOnce(&T) -> R) -> R {
        match crate::fiber::current::locals_ptr() {
            // SAFETY: the pointer is the running fiber's Locals, used only
            // by this fiber, and `get_or_init` keeps no borrow of it.
            Some(locals) => f(unsafe { get_or_init(locals, self.index(), self.init) }),
            None => self.fallback.with(f),
        }
    }
}

/// This fiber's value for `index`, made on first use (and the fiber's
/// `Locals` with it).
///
/// # Safety
///
/// `slot` is the running fiber's locals slot, touched by nothing else
/// until the fiber's body ends; the returned reference must not outlive
/// that. References handed out earlier point into the values' own boxes,
/// which these borrows of the slot and of `Locals` do not touch.
unsafe fn get_or_init<'a, T: 'static>(
    slot: *mut Option<Box<Locals>>,
    index: usize,
    init: fn() -> T,
) -> &'a T {
    // SAFETY: the caller's contract; the borrow ends here.
    let locals: *mut Locals = unsafe { &mut **(*slot).get_or_insert_with(Box::default) };
    // SAFETY: as above; the borrow ends before `init` runs.
    let values: &Vec<Option<NonNull<dyn Any>>> = unsafe { &(*locals).values };
    let existing = values.get(index).copied().flatten();
    let value = match existing {
        Some(value) => value,
        None => {
            // `init` may use other fiber-locals, so no borrow is held here.
            let fresh: Box<dyn Any> = Box::new(init());
            let fresh = NonNull::from(Box::leak(fresh));
            // SAFETY: as above; this borrow ends at the end of the block.
            let values = unsafe { &mut (*locals).values };
            if values.len() <= index {
                values.resize(index + 1, None);
            }
            values[index] = Some(fresh);
            fresh
        }
    };
    // SAFETY: the box lives until the fiber's Locals are dropped, after
    // the body ended; the value was made as a T for this key.
    unsafe { value.as_ref() }
        .downcast_ref::<T>()
        .expect("a fiber-local key holds one type")
}

/// Declares fiber-local statics: like `thread_local!`, but each fiber gets
/// its own value (outside a fiber, each thread does). See
/// [`FiberLocal::with`] for an example, and the [module documentation]
/// for why `thread_local!` is the wrong tool in fibers.
///
/// [module documentation]: crate::fiber
#[macro_export]
macro_rules! fiber_local {
    () => {};
    ($(#[$attr:meta])* $vis:vis static $name:ident: $t:ty = $init:expr; $($rest:tt)*) => {
        $(#[$attr])* $vis static $name: $crate::fiber::FiberLocal<$t> = {
            fn __init() -> $t {
                $init
            }
            ::std::thread_local! {
                static __FALLBACK: $t = __init();
            }
            $crate::fiber::FiberLocal::__new(__init, &__FALLBACK)
        };
        $crate::fiber_local!($($rest)*);
    };
}
