//! Helpers shared by weft's integration tests: process resource counters and
//! a runner for tests that must crash, or come near an OS limit, in a child
//! process.
//!
//! Use it from a test file with `mod support;` (unused helpers are fine:
//! this module allows dead code, since each test file uses a different part).
//!
//! # Child-process tests
//!
//! A test that expects the process to die (a stack overflow, a SIGSEGV) or
//! that drives the process near a kernel limit re-runs *itself* in a child:
//!
//! ```text
//! #[test]
//! fn guard_hit_kills() {
//!     if support::is_child() {
//!         // the body that crashes
//!         return;
//!     }
//!     let out = support::run_child("guard_hit_kills", &[]);
//!     assert_eq!(support::exit_signal(&out), Some(libc::SIGSEGV));
//! }
//! ```
//!
//! The child runs the same test binary with `--exact <name> --nocapture
//! --test-threads=1` and `WEFT_CHILD=1` in its environment, so the test's
//! child branch runs alone in a fresh process. Pass the test's full path
//! (`module::name`) if it is inside a module.

#![allow(
    dead_code,
    unreachable_pub,
    reason = "each test file uses its own subset of these helpers"
)]

use std::process::{Command, Output};

/// The environment variable that marks a child started by [`run_child`].
pub const CHILD_ENV: &str = "WEFT_CHILD";

/// Whether this process is a child started by [`run_child`].
pub fn is_child() -> bool {
    std::env::var_os(CHILD_ENV).is_some()
}

/// Runs the test `test_name` of the current test binary in a child process
/// (see the module doc) with `envs` added to its environment, and waits for
/// it. stdout and stderr are captured; print them with [`describe`] when an
/// assertion fails.
///
/// # Panics
///
/// If the current executable cannot be found or started.
pub fn run_child(test_name: &str, envs: &[(&str, &str)]) -> Output {
    let exe = std::env::current_exe().expect("path of the running test binary");
    let mut cmd = Command::new(exe);
    cmd.args([test_name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, "1");
    for (key, value) in envs {
        cmd.env(key, value);
    }
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot start the child for {test_name}: {e}"))
}

/// The signal that killed the child, if one did (`SIGSEGV` = 11,
/// `SIGABRT` = 6); `None` if it exited.
pub fn exit_signal(out: &Output) -> Option<i32> {
    use std::os::unix::process::ExitStatusExt;
    out.status.signal()
}

/// The child's exit status, stdout and stderr, for assertion messages.
pub fn describe(out: &Output) -> String {
    format!(
        "status: {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The child's stderr, lossily decoded.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The child's stdout, lossily decoded.
pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// How many memory mappings this process has: the lines of `/proc/self/maps`.
pub fn maps_count() -> usize {
    let maps = std::fs::read("/proc/self/maps").expect("read /proc/self/maps");
    maps.iter().filter(|&&b| b == b'\n').count()
}

/// This process's resident set size in bytes (`VmRSS` in `/proc/self/status`).
pub fn rss_bytes() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let kib: usize = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS line in /proc/self/status");
    kib * 1024
}

/// How many file descriptors this process has open (entries of `/proc/self/fd`,
/// not counting the one used to list them).
pub fn fd_count() -> usize {
    let entries = std::fs::read_dir("/proc/self/fd").expect("list /proc/self/fd");
    entries.count().saturating_sub(1)
}

/// How many of the pages of `[addr, addr + len)` are resident in memory,
/// per `mincore(2)`. `addr` must be page-aligned and the range mapped.
pub fn resident_pages(addr: *const u8, len: usize) -> usize {
    let page = page_size();
    let pages = len.div_ceil(page);
    let mut vec = vec![0u8; pages];
    // SAFETY: mincore only reads the page tables of the range; `vec` has
    // one byte per page of it.
    let ret = unsafe { libc::mincore(addr as *mut libc::c_void, len, vec.as_mut_ptr()) };
    assert_eq!(ret, 0, "mincore: {}", std::io::Error::last_os_error());
    vec.iter().filter(|&&b| b & 1 != 0).count()
}

/// The page size.
pub fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(page).expect("a positive page size")
}

/// This thread's alternate signal stack, as `sigaltstack(2)` reports it
/// (`ss_flags & SS_DISABLE != 0` when it has none).
pub fn current_altstack() -> libc::stack_t {
    // SAFETY: stack_t is plain data (all-zero is valid), and a null new
    // stack makes sigaltstack only query into `cur`.
    let (ret, cur) = unsafe {
        let mut cur: libc::stack_t = std::mem::zeroed();
        (libc::sigaltstack(std::ptr::null(), &mut cur), cur)
    };
    assert_eq!(ret, 0, "sigaltstack: {}", std::io::Error::last_os_error());
    cur
}

/// Disables this thread's alternate signal stack, leaving the thread as a
/// thread created by C code starts: with none. std's own cleanup at thread
/// exit copes with that.
pub fn disable_altstack() {
    let disable = libc::stack_t {
        ss_sp: std::ptr::null_mut(),
        ss_flags: libc::SS_DISABLE,
        ss_size: 0,
    };
    // SAFETY: disabling needs no stack memory; the handler of a signal
    // arriving from now on runs on the thread's own stack.
    let ret = unsafe { libc::sigaltstack(&disable, std::ptr::null_mut()) };
    assert_eq!(ret, 0, "sigaltstack: {}", std::io::Error::last_os_error());
}

/// Whether the running kernel's release (`/proc/sys/kernel/osrelease`) is
/// at least `major.minor`; `false` if it cannot be read.
pub fn kernel_at_least(major: u32, minor: u32) -> bool {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut parts = release
        .trim()
        .split(|c: char| !c.is_ascii_digit())
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let (found_major, found_minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (found_major, found_minor) >= (major, minor)
}
