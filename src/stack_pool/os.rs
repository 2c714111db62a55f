//! The system calls the pool makes on ranges of its slabs, each in a small
//! fenced helper, plus the few facts it reads from the kernel once.
//!
//! Mapping and unmapping slabs goes through memmap2 (see `slab.rs`); these
//! helpers act on sub-ranges (one guard, one stack) that memmap2's API does
//! not cover: `MADV_GUARD_INSTALL` is not one of its advice values, and
//! the free lists know stacks by address, not by their slab.

use std::io;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

/// `madvise` advice that turns a range into a guard region without
/// splitting its mapping (Linux 6.13+). The libc crate does not define it
/// yet; the value is from the kernel's `include/uapi/asm-generic/mman-common.h`.
pub(crate) const MADV_GUARD_INSTALL: libc::c_int = 102;

/// The kernel's default `vm.max_map_count`, assumed when the file cannot be read.
pub(crate) const DEFAULT_MAX_MAP_COUNT: usize = 65_530;

/// The page size, read once.
pub(crate) fn page_size() -> usize {
    static PAGE: AtomicUsize = AtomicUsize::new(0);
    let cached = PAGE.load(Ordering::Relaxed);
    if cached != 0 {
        return cached;
    }
    // SAFETY: sysconf has no preconditions; _SC_PAGESIZE is always defined on Linux.
    let raw = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    let page = usize::try_from(raw)
        .ok()
        .filter(|p| p.is_power_of_two())
        .unwrap_or(4096);
    PAGE.store(page, Ordering::Relaxed);
    page
}

/// Rounds `bytes` up to a whole number of pages; `None` on overflow.
pub(crate) fn round_up_to_page(bytes: usize) -> Option<usize> {
    let page = page_size();
    Some(bytes.checked_add(page - 1)? & !(page - 1))
}

/// Maps the result of a libc call that returns 0 or -1 (errno) to `io::Result`.
fn check(ret: libc::c_int) -> io::Result<()> {
    if ret == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Installs a guard region over `[addr, addr + len)` with `MADV_GUARD_INSTALL`:
/// any access to it faults with SIGSEGV; the mapping is not split and the
/// guard survives `MADV_DONTNEED`. Fails with EINVAL on kernels before 6.13.
///
/// # Safety
///
/// The range must be page-aligned, lie inside a private anonymous mapping
/// the caller owns, and hold nothing anyone will read or write again (the
/// kernel zaps its pages).
pub(crate) unsafe fn guard_install(addr: usize, len: usize) -> io::Result<()> {
    // SAFETY: the caller owns the range and nothing in it is live (above).
    check(unsafe { libc::madvise(addr as *mut libc::c_void, len, MADV_GUARD_INSTALL) })
}

/// Makes `[addr, addr + len)` inaccessible with `mprotect(PROT_NONE)`.
/// This splits the mapping: the range becomes a mapping of its own.
///
/// # Safety
///
/// As for [`guard_install`]: page-aligned, owned by the caller, no live data.
pub(crate) unsafe fn protect_none(addr: usize, len: usize) -> io::Result<()> {
    // SAFETY: the caller owns the range and nothing in it is live (above).
    check(unsafe { libc::mprotect(addr as *mut libc::c_void, len, libc::PROT_NONE) })
}

/// Gives the pages of `[addr, addr + len)` back to the kernel with
/// `MADV_DONTNEED`: they read as zero on next touch. Guard regions
/// installed with `MADV_GUARD_INSTALL` survive it.
///
/// # Safety
///
/// Page-aligned, inside a private anonymous mapping the caller owns, and
/// nothing in it is live: its contents are lost.
pub(crate) unsafe fn decommit(addr: usize, len: usize) -> io::Result<()> {
    // SAFETY: the caller owns the range and its contents are dead (above).
    check(unsafe { libc::madvise(addr as *mut libc::c_void, len, libc::MADV_DONTNEED) })
}

/// Whether this kernel accepts `MADV_GUARD_INSTALL`, probed once per process
/// on a scratch mapping. `Err` only if the scratch mapping itself fails.
///
/// The kernel answers EINVAL for advice it does not know (before 6.13).
/// EPERM and ENOSYS (a seccomp filter that rejects unknown madvise
/// advice) also mean "use mprotect": the fallback works everywhere.
pub(crate) fn guard_install_supported() -> io::Result<bool> {
    static PROBE: OnceLock<bool> = OnceLock::new();
    if let Some(&supported) = PROBE.get() {
        return Ok(supported);
    }
    let page = page_size();
    let scratch = memmap2::MmapOptions::new()
        .len(2 * page)
        .no_reserve_swap()
        .map_anon()?;
    let addr = scratch.as_ptr() as usize;
    // SAFETY: the first page of `scratch` is ours and holds nothing; the
    // mapping is dropped (unmapped) right after.
    let supported = match unsafe { guard_install(addr, page) } {
        Ok(()) => true,
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::EINVAL | libc::EPERM | libc::ENOSYS)
            ) =>
        {
            false
        }
        Err(e) => return Err(e),
    };
    drop(scratch);
    Ok(*PROBE.get_or_init(|| supported))
}

/// `vm.max_map_count`, read once from `/proc/sys/vm/max_map_count`;
/// [`DEFAULT_MAX_MAP_COUNT`] if it cannot be read.
pub(crate) fn max_map_count() -> usize {
    static MAX: OnceLock<usize> = OnceLock::new();
    *MAX.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/vm/max_map_count")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(DEFAULT_MAX_MAP_COUNT)
    })
}

/// How many mappings the process has now (lines of `/proc/self/maps`);
/// `None` if the file cannot be read.
pub(crate) fn current_map_count() -> Option<usize> {
    let maps = std::fs::read("/proc/self/maps").ok()?;
    Some(maps.iter().filter(|&&b| b == b'\n').count())
}
