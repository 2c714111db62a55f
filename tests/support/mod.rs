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

// ---------------------------------------------------------------------------
// Helpers for the runtime tests (`tests/rt_*.rs`).
// ---------------------------------------------------------------------------

use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, Once, mpsc};
use std::time::{Duration, Instant};

/// The hang guard every runtime test runs under: generous, so that only a
/// real hang (a lost wake-up, a deadlocked shutdown) trips it.
pub const HANG_LIMIT: Duration = Duration::from_secs(60);

/// Runs `body` on its own thread and returns what it returns (re-raising
/// its panic, payload intact). If it has not finished after `limit`, the
/// test fails at once with a message naming the test, instead of stalling
/// the whole run; the stuck thread is left behind (the test binary exits
/// when the harness is done).
///
/// The body's thread is joined before this returns, so thread counts
/// taken after it are not disturbed by it.
///
/// # Panics
///
/// With the body's payload if it panicked; with "did not finish within"
/// if it hung.
pub fn watchdog<T: Send + 'static>(
    limit: Duration,
    body: impl FnOnce() -> T + Send + 'static,
) -> T {
    let test = std::thread::current()
        .name()
        .unwrap_or("<unnamed test>")
        .to_owned();
    let (tx, rx) = mpsc::channel();
    let thread = std::thread::Builder::new()
        .name(format!("{test} (body)"))
        .spawn(move || {
            let outcome = catch_unwind(AssertUnwindSafe(body));
            let _ = tx.send(outcome);
        })
        .expect("start the test body's thread");
    match rx.recv_timeout(limit) {
        Ok(outcome) => {
            let _ = thread.join();
            match outcome {
                Ok(value) => value,
                Err(payload) => resume_unwind(payload),
            }
        }
        Err(mpsc::RecvTimeoutError::Timeout) => {
            panic!(
                "{test}: did not finish within {limit:?}: a hang (the body's thread is left behind)"
            )
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            unreachable!("the body's thread always sends its outcome")
        }
    }
}

/// [`watchdog`] with [`HANG_LIMIT`].
pub fn bounded<T: Send + 'static>(body: impl FnOnce() -> T + Send + 'static) -> T {
    watchdog(HANG_LIMIT, body)
}

/// Waits until `cond` holds, polling every millisecond; panics with `what`
/// after `limit` (a hang guard, not a timing assertion).
pub fn wait_until(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < limit,
            "gave up after {limit:?} waiting for: {what}"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// How many threads this process has (entries of `/proc/self/task`).
pub fn thread_count() -> usize {
    std::fs::read_dir("/proc/self/task")
        .expect("list /proc/self/task")
        .count()
}

/// Waits (up to 10 s) for the thread count to come back to `baseline`
/// and returns the last count seen. A thread that `join` returned for is
/// gone from `/proc` at once, but one that was detached may take a moment.
pub fn settle_thread_count(baseline: usize) -> usize {
    let start = Instant::now();
    loop {
        let now = thread_count();
        if now <= baseline || start.elapsed() > Duration::from_secs(10) {
            return now;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Runs the test `test_name` of this binary in a child process as
/// [`run_child`] does, but kills it if it has not exited after `limit`
/// (then the returned `Output` has no exit code and its stderr says so).
pub fn run_child_with_limit(test_name: &str, envs: &[(&str, &str)], limit: Duration) -> Output {
    use std::io::Read;
    use std::process::Stdio;
    let exe = std::env::current_exe().expect("path of the running test binary");
    let mut cmd = Command::new(exe);
    cmd.args([test_name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (key, value) in envs {
        cmd.env(key, value);
    }
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start the child for {test_name}: {e}"));
    let mut out_pipe = child.stdout.take().expect("piped stdout");
    let mut err_pipe = child.stderr.take().expect("piped stderr");
    let out_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = out_pipe.read_to_end(&mut buf);
        buf
    });
    let err_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = err_pipe.read_to_end(&mut buf);
        buf
    });
    let start = Instant::now();
    let (status, killed) = loop {
        if let Some(status) = child.try_wait().expect("wait for the child") {
            break (status, false);
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            break (child.wait().expect("wait for the killed child"), true);
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let stdout = out_reader.join().expect("stdout reader");
    let mut stderr = err_reader.join().expect("stderr reader");
    if killed {
        stderr.extend_from_slice(
            format!("\n[support] child killed: still running after {limit:?} (a hang)\n")
                .as_bytes(),
        );
    }
    Output {
        status,
        stdout,
        stderr,
    }
}

/// Runs `test_name` in a child (with [`HANG_LIMIT`]), echoes its stdout
/// (the figures it printed) and fails with its whole output unless it
/// passed.
pub fn run_child_test(test_name: &str, envs: &[(&str, &str)]) {
    let out = run_child_with_limit(test_name, envs, HANG_LIMIT);
    print!("{}", stdout(&out));
    assert!(
        out.status.success(),
        "child test {test_name} failed:\n{}",
        describe(&out)
    );
}

/// Serialises the heavy tests of one binary: they each want every core,
/// and some hold tens of thousands of stacks at once (the mapping budget
/// is per process). Hold the guard for the whole test.
pub fn heavy() -> MutexGuard<'static, ()> {
    static HEAVY: Mutex<()> = Mutex::new(());
    HEAVY
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// `release` in an optimised build, `debug` in a debug build: for the
/// stress sizes that would make the debug suite too slow.
pub fn scaled(debug: usize, release: usize) -> usize {
    if cfg!(debug_assertions) {
        debug
    } else {
        release
    }
}

/// How many fibers a test may keep parked (each holding a stack) at once:
/// `wanted` when guards are installed with `MADV_GUARD_INSTALL`, at most
/// `fallback` when `mprotect` is true. In the mprotect fallback
/// (`WEFT_STACK_GUARD=mprotect`, or an older kernel) each stack costs two
/// of the ~65,530 mappings the kernel allows, so live stacks stop near
/// 32,000 (documented in `stack_pool`) and such tests scale down. The
/// caller passes `pool.guard_mode() == GuardMode::Mprotect` (this module
/// is also compiled into the crate's own unit tests, where `weft` is not a
/// crate name).
pub fn live_stack_limit(wanted: usize, fallback: usize, mprotect: bool) -> usize {
    if mprotect {
        wanted.min(fallback)
    } else {
        wanted
    }
}

/// Counts drops (and, separately, runs) of the values made from it.
#[derive(Clone, Default, Debug)]
pub struct Counter(Arc<AtomicUsize>);

impl Counter {
    pub fn new() -> Counter {
        Counter::default()
    }

    pub fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }

    pub fn add(&self, n: usize) {
        self.0.fetch_add(n, Ordering::SeqCst);
    }

    /// A value that adds one to this counter when it is dropped.
    pub fn token(&self) -> DropToken {
        DropToken(self.clone())
    }
}

/// Adds one to its [`Counter`] when dropped.
#[derive(Debug)]
pub struct DropToken(Counter);

impl Drop for DropToken {
    fn drop(&mut self) {
        self.0.add(1);
    }
}

/// The prefix of panic messages the quiet hook (see [`quiet_panics`])
/// does not print.
pub const QUIET: &str = "[quiet] ";

/// Installs (once per process) a panic hook that prints nothing for
/// panics whose message starts with [`QUIET`], and defers to the previous
/// hook for every other panic. Tests that panic thousands of fibers on
/// purpose use it so that stderr stays readable.
pub fn quiet_panics() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let payload = info.payload();
            let message = payload
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| payload.downcast_ref::<String>().map(String::as_str));
            if message.is_some_and(|m| m.starts_with(QUIET)) {
                return;
            }
            previous(info);
        }));
    });
}

/// The message of a panic payload, if it is a string.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> Option<&str> {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
}

/// A small, seedable xorshift generator, so stress tests need no crate and
/// a failing seed can be replayed (each test prints its seed).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// A seed from the clock, or from `WEFT_TEST_SEED` if set.
    pub fn seed() -> u64 {
        std::env::var("WEFT_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(1)
            })
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// Uniform-ish in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }
}

/// The names of this process's threads (`/proc/self/task/*/comm`, which
/// the kernel cuts to 15 bytes).
pub fn thread_names() -> Vec<String> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir("/proc/self/task").expect("list /proc/self/task") {
        let Ok(entry) = entry else { continue };
        if let Ok(comm) = std::fs::read_to_string(entry.path().join("comm")) {
            names.push(comm.trim_end().to_owned());
        }
    }
    names
}

/// Waits (up to 30 s, a hang guard) until `counter` reaches `n`: how a
/// test makes sure its fibers have started before it drops the runtime
/// (a fixed sleep is not enough on a loaded machine).
pub fn wait_for_count(counter: &Counter, n: usize, what: &str) {
    wait_until(Duration::from_secs(30), what, || counter.get() >= n);
}
