//! The SIGSEGV/SIGBUS handler that reports a fiber stack overflow.
//!
//! Everything reachable from [`on_fault`] runs inside a signal handler, on
//! the thread's alternate signal stack, possibly while the faulting thread
//! held the allocator's or stdout's lock. It therefore uses only
//! async-signal-safe calls (`write`, `sigaction`, `abort`), reads only
//! atomics and the faulting thread's own registers, formats numbers into a
//! fixed buffer on its stack, and never allocates or locks. CI greps this
//! file for the std types and macros that would break that rule; keep it
//! free of them, comments included.
//!
//! # Deciding whether a fault is ours
//!
//! A fault is a fiber stack overflow when both:
//!
//! 1. `si_addr` lies in the guard region of a slot of a slab in the
//!    registry (`registry.rs`), and
//! 2. the thread's stack pointer (`rsp` in the signal context) lies in
//!    `[guard_low, slot_top)` of that same slot: the thread was running on
//!    that stack, and its frames grew into the guard (a `call` or a stack
//!    probe below `rsp`).
//!
//! A stray write into some other stack's guard fails test 2 and is left to
//! the previous handler, as is every other fault.
//!
//! # Chaining
//!
//! Anything that is not a fiber overflow must behave as if weft were not
//! there. The action installed before ours is saved at install time:
//!
//! * a function handler (in Rust binaries, std's, which reports *thread*
//!   stack overflows) is called with the same arguments, as `SA_SIGINFO`
//!   or plain according to its flags, and we return;
//! * `SIG_DFL` or `SIG_IGN` is put back with `sigaction` and we return: the
//!   faulting instruction runs again and the kernel applies that action
//!   (for a synchronous fault an ignored SIGSEGV kills the process too).

use std::io;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};

use super::registry;
use super::stack::{HEADER_SIZE, Header};

/// The two signals a guard hit can raise (SIGBUS on some kernels/mappings).
const SIGNALS: [libc::c_int; 2] = [libc::SIGSEGV, libc::SIGBUS];

/// The previous action of each signal in [`SIGNALS`], saved at install time
/// before ours goes in, so the handler can read it without synchronising:
/// `sa_sigaction` (a handler address, `SIG_DFL` or `SIG_IGN`) and `sa_flags`.
static PREV_HANDLER: [AtomicUsize; 2] = [AtomicUsize::new(0), AtomicUsize::new(0)];
static PREV_FLAGS: [AtomicI32; 2] = [AtomicI32::new(0), AtomicI32::new(0)];

/// Installs the handler for SIGSEGV and SIGBUS, once per process. The
/// outcome is remembered: after a failure every later call reports the
/// same error rather than install again (which would save our own handler
/// as the "previous" one of a signal where the first attempt succeeded).
pub(crate) fn install() -> io::Result<()> {
    static OUTCOME: OnceLock<Option<i32>> = OnceLock::new();
    let failed = OUTCOME.get_or_init(|| {
        SIGNALS
            .iter()
            .enumerate()
            .find_map(|(i, &signal)| install_one(i, signal).err())
            .map(|e| e.raw_os_error().unwrap_or(libc::EINVAL))
    });
    match *failed {
        None => Ok(()),
        Some(errno) => Err(io::Error::from_raw_os_error(errno)),
    }
}

fn install_one(i: usize, signal: libc::c_int) -> io::Result<()> {
    // SAFETY: sigaction is plain old data; all-zero is a valid value.
    let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: reading the current action; `old` is a valid out pointer.
    if unsafe { libc::sigaction(signal, std::ptr::null(), &mut old) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // Saved before ours is installed: the handler can only run after the
    // sigaction call below, which orders these stores before it.
    PREV_HANDLER[i].store(old.sa_sigaction, Ordering::Relaxed);
    PREV_FLAGS[i].store(old.sa_flags, Ordering::Relaxed);

    // SAFETY: as above.
    let mut new: libc::sigaction = unsafe { std::mem::zeroed() };
    new.sa_sigaction = on_fault as *const () as usize;
    new.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
    // SAFETY: `new.sa_mask` is a valid sigset_t to initialise.
    unsafe { libc::sigemptyset(&mut new.sa_mask) };
    // SAFETY: installs a handler that is async-signal-safe (this module).
    if unsafe { libc::sigaction(signal, &new, std::ptr::null_mut()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A fiber stack overflow, as found in the registry and the header.
struct Overflow {
    /// One past the highest byte of the slot.
    top: usize,
    /// Usable bytes of the stack, header included.
    stack_size: usize,
}

/// Test 1 and 2 of the module doc.
fn classify(fault_addr: usize, rsp: usize) -> Option<Overflow> {
    let slab = registry::find(fault_addr)?;
    let slot = slab.start + (fault_addr - slab.start) / slab.stride * slab.stride;
    let top = slot + slab.stride;
    let in_guard = fault_addr < slot + slab.guard;
    let on_this_stack = slot <= rsp && rsp < top;
    (in_guard && on_this_stack).then_some(Overflow {
        top,
        stack_size: slab.stride - slab.guard,
    })
}

/// The SA_SIGINFO handler for SIGSEGV and SIGBUS.
extern "C" fn on_fault(
    signal: libc::c_int,
    info: *mut libc::siginfo_t,
    context: *mut libc::c_void,
) {
    // SAFETY: the kernel passes a valid siginfo for SA_SIGINFO handlers, and
    // for SIGSEGV/SIGBUS its fault-address field is the one filled in.
    let fault_addr = unsafe { (*info).si_addr() } as usize;
    // SAFETY: for SA_SIGINFO handlers `context` is the interrupted thread's
    // ucontext_t, valid for the duration of the handler.
    let rsp = unsafe {
        (*context.cast::<libc::ucontext_t>()).uc_mcontext.gregs[libc::REG_RSP as usize] as usize
    };
    if let Some(overflow) = classify(fault_addr, rsp) {
        report_and_abort(&overflow);
    }
    chain(signal, info, context);
}

/// Hands a fault that is not ours to whatever was there before us.
fn chain(signal: libc::c_int, info: *mut libc::siginfo_t, context: *mut libc::c_void) {
    let i = usize::from(signal == libc::SIGBUS);
    let handler = PREV_HANDLER[i].load(Ordering::Relaxed);
    let flags = PREV_FLAGS[i].load(Ordering::Relaxed);
    if handler == libc::SIG_DFL || handler == libc::SIG_IGN {
        // SAFETY: sigaction is plain old data; all-zero is a valid value.
        let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
        action.sa_sigaction = handler;
        // SAFETY: sigaction is async-signal-safe; restoring the default or
        // ignore disposition makes the returning fault re-raise under it.
        unsafe { libc::sigaction(signal, &action, std::ptr::null_mut()) };
        return;
    }
    if flags & libc::SA_SIGINFO != 0 {
        // SAFETY: the saved address was installed with SA_SIGINFO, so it
        // is a handler of this signature; we pass through our own arguments.
        let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
            unsafe { std::mem::transmute(handler) };
        f(signal, info, context);
    } else {
        // SAFETY: the saved address was installed without SA_SIGINFO, so it
        // is a plain `void (*)(int)` handler.
        let f: extern "C" fn(libc::c_int) = unsafe { std::mem::transmute(handler) };
        f(signal);
    }
}

/// Writes the overflow message to fd 2 and aborts.
fn report_and_abort(overflow: &Overflow) -> ! {
    // SAFETY: the slot's top HEADER_SIZE bytes are its header: mapped,
    // readable (the guard is at the other end) and 64-byte aligned; every
    // bit pattern is a valid Header of atomics.
    let header = unsafe { &*((overflow.top - HEADER_SIZE) as *const Header) };
    // Pairs with the Release store in `Stack::set_owner`.
    let id = header.owner_id.load(Ordering::Acquire);
    let name_ptr = header.name_ptr.load(Ordering::Relaxed);
    let name_len = header.name_len.load(Ordering::Relaxed);

    write_stderr(b"\nfiber '");
    if name_ptr != 0 && name_len != 0 {
        // Passed to the kernel without dereferencing it here: were the name
        // gone despite `set_owner`'s contract, write answers EFAULT rather
        // than fault again. Very long names are cut.
        write_raw(name_ptr as *const u8, name_len.min(256));
    } else {
        let mut digits = [0u8; 20];
        write_stderr(b"#");
        write_stderr(format_decimal(id, &mut digits));
    }
    write_stderr(b"' has overflowed its stack (");
    let mut digits = [0u8; 20];
    write_stderr(format_decimal(
        (overflow.stack_size / 1024) as u64,
        &mut digits,
    ));
    write_stderr(b" KiB)\nfatal runtime error: stack overflow, aborting\n");
    // SAFETY: abort is async-signal-safe and has no preconditions.
    unsafe { libc::abort() }
}

/// Writes `n` in decimal into the end of `buf`; returns the digits.
fn format_decimal(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    &buf[at..]
}

fn write_stderr(bytes: &[u8]) {
    write_raw(bytes.as_ptr(), bytes.len());
}

/// `write(2, ptr, len)` until done or an error; retries EINTR.
fn write_raw(mut ptr: *const u8, mut len: usize) {
    while len > 0 {
        // SAFETY: write is async-signal-safe; the kernel validates the
        // range, so an unreadable one is an EFAULT, never a fault here.
        let n = unsafe { libc::write(libc::STDERR_FILENO, ptr.cast(), len) };
        if n < 0 {
            // SAFETY: __errno_location returns this thread's errno slot.
            if unsafe { *libc::__errno_location() } == libc::EINTR {
                continue;
            }
            return;
        }
        let n = n as usize;
        ptr = ptr.wrapping_add(n);
        len -= n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_formatting() {
        let mut buf = [0u8; 20];
        assert_eq!(format_decimal(0, &mut buf), b"0");
        assert_eq!(format_decimal(16, &mut buf), b"16");
        assert_eq!(format_decimal(u64::MAX, &mut buf), b"18446744073709551615");
    }
}
