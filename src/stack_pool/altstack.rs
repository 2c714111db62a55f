//! Per-thread alternate signal stacks.
//!
//! The overflow handler (`guard.rs`) runs with `SA_ONSTACK`: when a fiber
//! overflows, its stack pointer sits in a guard region, so the handler
//! needs another stack to run on or the kernel kills the process with a
//! plain SIGSEGV. std gives every thread it spawns (and the main thread)
//! an alternate stack; threads created by C code, or a runtime embedded in
//! a C host, have none. [`ensure_thread_altstack`] gives them one.

use std::cell::{Cell, RefCell};
use std::io;

use memmap2::{MmapOptions, MmapRaw};

use super::os;

/// Usable bytes of an alternate stack weft installs. Far above
/// `AT_MINSIGSTKSZ` (a few KiB even with AVX-512 state) and cheap: pages
/// are committed only when a signal is delivered.
const ALTSTACK_SIZE: usize = 64 * 1024;

thread_local! {
    /// Whether this thread already went through `ensure_thread_altstack`.
    /// `const`-initialised and without destructor: a plain TLS load.
    static CHECKED: Cell<bool> = const { Cell::new(false) };
    /// The alternate stack weft installed on this thread, if any; its
    /// destructor disables and unmaps it at thread exit.
    static OWNED: RefCell<Option<AltStack>> = const { RefCell::new(None) };
}

/// Makes sure the calling thread has an alternate signal stack, so that
/// weft's overflow handler can run when a fiber on this thread overflows.
///
/// If the thread has none (`sigaltstack` reports `SS_DISABLE`), maps a
/// 64 KiB stack with a guard page below it and installs it; the thread's
/// exit disables and unmaps it. A thread that already has one, such as
/// every thread std spawns, keeps its own. After the first call on a
/// thread this is a thread-local flag check. [`StackPool::get`] calls it,
/// so worker threads need not; call it yourself on a thread that resumes
/// fibers on stacks it did not get.
///
/// Best effort: if the stack cannot be mapped (out of memory), the thread
/// stays without one, and a fiber overflow on it ends in a plain SIGSEGV
/// instead of the overflow message.
///
/// [`StackPool::get`]: super::StackPool::get
///
/// ```
/// weft::stack_pool::ensure_thread_altstack();
/// weft::stack_pool::ensure_thread_altstack(); // cheap the second time
/// ```
pub fn ensure_thread_altstack() {
    let Ok(false) = CHECKED.try_with(Cell::get) else {
        // Checked already, or the thread is exiting.
        return;
    };
    CHECKED.set(true);
    if has_altstack() {
        return;
    }
    let Ok(alt) = AltStack::map() else { return };
    // Only install what we can also clean up at thread exit.
    let _ = OWNED.try_with(|owned| {
        if alt.install().is_ok() {
            *owned.borrow_mut() = Some(alt);
        }
    });
}

/// The calling thread's current alternate stack.
fn current() -> libc::stack_t {
    // SAFETY: stack_t is plain old data; all-zero is a valid value.
    let mut cur: libc::stack_t = unsafe { std::mem::zeroed() };
    // SAFETY: a null new stack only queries; `cur` is a valid out pointer.
    unsafe { libc::sigaltstack(std::ptr::null(), &mut cur) };
    cur
}

fn has_altstack() -> bool {
    current().ss_flags & libc::SS_DISABLE == 0
}

/// An alternate signal stack mapped by weft: a guard page, then
/// [`ALTSTACK_SIZE`] usable bytes.
struct AltStack {
    map: MmapRaw,
    guard: usize,
}

impl AltStack {
    fn map() -> io::Result<AltStack> {
        let guard = os::page_size();
        let map: MmapRaw = MmapOptions::new()
            .len(guard + ALTSTACK_SIZE)
            .stack()
            .no_reserve_swap()
            .map_anon()?
            .into();
        let low = map.as_ptr() as usize;
        let guarded = if os::guard_install_supported().unwrap_or(false) {
            // SAFETY: the first page of our fresh mapping holds nothing.
            unsafe { os::guard_install(low, guard) }
        } else {
            // SAFETY: as above.
            unsafe { os::protect_none(low, guard) }
        };
        guarded?; // `map` unmaps on the way out
        Ok(AltStack { map, guard })
    }

    fn sp(&self) -> *mut libc::c_void {
        self.map.as_mut_ptr().wrapping_add(self.guard).cast()
    }

    fn install(&self) -> io::Result<()> {
        let stack = libc::stack_t {
            ss_sp: self.sp(),
            ss_flags: 0,
            ss_size: ALTSTACK_SIZE,
        };
        // SAFETY: the range is mapped read-write and outlives its use as
        // this thread's altstack: `Drop` disables it before unmapping.
        if unsafe { libc::sigaltstack(&stack, std::ptr::null_mut()) } == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }
}

impl Drop for AltStack {
    fn drop(&mut self) {
        // Disable it only if it is still ours: someone may have installed
        // another since.
        if current().ss_sp == self.sp() {
            let disable = libc::stack_t {
                ss_sp: std::ptr::null_mut(),
                ss_flags: libc::SS_DISABLE,
                ss_size: 0,
            };
            // SAFETY: disabling has no preconditions; we are not running on
            // the altstack (a TLS destructor runs on the thread's stack).
            unsafe { libc::sigaltstack(&disable, std::ptr::null_mut()) };
        }
        // `self.map` unmaps after this body.
    }
}
