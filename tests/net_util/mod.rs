//! Helpers for the `net_*` tests (TESTING.md section 6): the resource
//! baseline, a watchdog, one-test-at-a-time, socket options std lacks,
//! child processes that run a role of the same test binary, and (in
//! [`scenarios`]) the scenarios that more than one test runs.
//!
//! Use from a test file with `mod net_util;` (beside `mod support;`).

#![allow(
    dead_code,
    unreachable_pub,
    reason = "each test file uses its own subset of these helpers"
)]

pub mod scenarios;

use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsRawFd;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

/// Serialises the tests of one binary: the baseline counts are
/// process-wide, so two tests running at once would see each other's fds
/// and threads.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// How many runtime threads (workers, blocking pool: names starting with
/// "weft") this process has. The test harness's own threads come and go
/// with the tests waiting on [`serial`], so they are not counted.
pub fn thread_count() -> usize {
    std::fs::read_dir("/proc/self/task")
        .expect("list /proc/self/task")
        .flatten()
        .filter(|task| {
            std::fs::read_to_string(task.path().join("comm")).is_ok_and(|c| c.starts_with("weft"))
        })
        .count()
}

/// How many fds this process has open.
pub fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("list /proc/self/fd")
        .count()
        .saturating_sub(1)
}

/// The fds open now, with what they point at (for leak reports), as
/// "fd -> target" lines; not the one used to list them.
pub fn fd_listing() -> Vec<String> {
    let own_dir = format!("/proc/{}/fd", std::process::id());
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc/self/fd")
        .expect("list /proc/self/fd")
        .flatten()
    {
        let target = std::fs::read_link(entry.path())
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| "?".to_owned());
        if target == own_dir {
            continue;
        }
        out.push(format!(
            "{} -> {target}",
            entry.file_name().to_string_lossy()
        ));
    }
    out
}

/// The process's counts before a test: fds, threads, mappings.
#[derive(Debug)]
pub struct Baseline {
    pub fds: usize,
    pub threads: usize,
    pub maps: usize,
    fd_list: Vec<String>,
}

impl Baseline {
    pub fn take() -> Baseline {
        Baseline {
            fds: fd_count(),
            threads: thread_count(),
            maps: maps_count(),
            fd_list: fd_listing(),
        }
    }

    /// Asserts fds and threads are back to the baseline (waiting up to
    /// `within` for closes and thread exits to land), and maps within a
    /// slack. Prints the figures.
    pub fn check(&self, name: &str, within: Duration) {
        let deadline = Instant::now() + within;
        let (mut fds, mut threads);
        loop {
            fds = fd_count();
            threads = thread_count();
            if (fds == self.fds && threads == self.threads) || Instant::now() >= deadline {
                break;
            }
            thread::sleep(Duration::from_millis(10));
        }
        let maps = maps_count();
        println!(
            "{name}: fds {} -> {fds}, threads {} -> {threads}, maps {} -> {maps}",
            self.fds, self.threads, self.maps
        );
        if fds != self.fds {
            let now = fd_listing();
            let leaked: Vec<_> = now.iter().filter(|l| !self.fd_list.contains(l)).collect();
            panic!(
                "{name}: fd count {} -> {fds}; new fds: {leaked:?}",
                self.fds
            );
        }
        assert_eq!(threads, self.threads, "{name}: thread count changed");
        // Stack slabs and thread caches may stay mapped: a generous slack.
        assert!(
            maps <= self.maps + 64,
            "{name}: mappings {} -> {maps}",
            self.maps
        );
    }
}

/// Lines of `/proc/self/maps`.
pub fn maps_count() -> usize {
    std::fs::read_to_string("/proc/self/maps")
        .expect("read /proc/self/maps")
        .lines()
        .count()
}

/// Resident set size in bytes.
pub fn rss_bytes() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|r| r.trim().trim_end_matches("kB").trim().parse::<usize>().ok())
        .map_or(0, |kib| kib * 1024)
}

/// User + system CPU time of the whole process.
pub fn cpu_time() -> Duration {
    // SAFETY: getrusage fills the zeroed struct we pass; RUSAGE_SELF is valid.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        assert_eq!(libc::getrusage(libc::RUSAGE_SELF, &mut usage), 0);
        usage
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// Aborts the process if the test is still running after `limit`: a hang
/// fails fast, with the test's name, instead of eating CI's budget.
pub struct Watchdog {
    done: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

pub fn watchdog(name: &'static str, limit: Duration) -> Watchdog {
    let done = Arc::new(AtomicBool::new(false));
    let flag = done.clone();
    let thread = thread::Builder::new()
        .name(format!("watchdog-{name}"))
        .spawn(move || {
            let deadline = Instant::now() + limit;
            while !flag.load(Ordering::Acquire) {
                if Instant::now() >= deadline {
                    eprintln!("watchdog: test '{name}' still running after {limit:?}: aborting");
                    std::process::abort();
                }
                thread::park_timeout(Duration::from_millis(50));
            }
        })
        .expect("start the watchdog");
    Watchdog {
        done,
        thread: Some(thread),
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.done.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            let _ = thread.join();
        }
    }
}

/// A runtime with `workers` workers.
pub fn runtime(workers: usize) -> weft::Runtime {
    weft::Runtime::builder()
        .workers(workers)
        .build()
        .expect("start a runtime")
}

/// `SO_LINGER {on, 0}`: closing the socket then sends RST.
pub fn set_linger_zero(socket: &impl AsRawFd) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt reads `size_of::<linger>()` bytes from `linger`,
    // which lives across the call; the fd is an open socket.
    let ret = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&raw const linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(ret, 0, "SO_LINGER: {}", std::io::Error::last_os_error());
}

/// The value of `ROLE` for a child started by [`spawn_role`].
pub fn role() -> Option<String> {
    std::env::var("WEFT_NET_ROLE").ok()
}

/// A child process running `test_name` of this binary in role `role`,
/// with piped stdin/stdout (stderr piped too) for a line protocol.
pub struct RoleChild {
    pub child: Child,
    pub stdin: Option<ChildStdin>,
    pub stdout: BufReader<ChildStdout>,
}

pub fn spawn_role(test_name: &str, role: &str, envs: &[(&str, String)]) -> RoleChild {
    let exe = std::env::current_exe().expect("path of the running test binary");
    let mut cmd = Command::new(exe);
    cmd.args([test_name, "--exact", "--nocapture", "--test-threads=1"])
        .env("WEFT_NET_ROLE", role)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("start the child");
    let stdin = child.stdin.take();
    let stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
    RoleChild {
        child,
        stdin,
        stdout,
    }
}

impl RoleChild {
    /// The next line that starts with `prefix` (other lines, such as the
    /// test harness's, are skipped); its remainder.
    pub fn expect_line(&mut self, prefix: &str) -> String {
        let mut line = String::new();
        loop {
            line.clear();
            let n = self
                .stdout
                .read_line(&mut line)
                .expect("read the child's stdout");
            if n == 0 {
                panic!("the child ended before printing '{prefix}'");
            }
            // The harness prints "test name ... " without a newline
            // before the test's own output: look anywhere in the line.
            if let Some(at) = line.find(prefix) {
                return line[at + prefix.len()..].trim().to_owned();
            }
        }
    }

    /// Sends one line to the child's stdin.
    pub fn send_line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{line}").expect("write to the child");
        stdin.flush().expect("flush to the child");
    }

    /// Waits for the child (killing it after `limit`), returning its exit
    /// status and stderr; the rest of its stdout is echoed.
    pub fn finish(mut self, limit: Duration) -> (std::process::ExitStatus, String) {
        drop(self.stdin.take());
        let deadline = Instant::now() + limit;
        let mut stderr = self.child.stderr.take().expect("piped stderr");
        let err_reader = thread::spawn(move || {
            let mut s = String::new();
            let _ = std::io::Read::read_to_string(&mut stderr, &mut s);
            s
        });
        let mut out = self.stdout;
        let out_reader = thread::spawn(move || {
            let mut s = String::new();
            let _ = std::io::Read::read_to_string(&mut out, &mut s);
            s
        });
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait for the child") {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                break self.child.wait().expect("reap the killed child");
            }
            thread::sleep(Duration::from_millis(10));
        };
        let stdout = out_reader.join().unwrap_or_default();
        print!("{stdout}");
        (status, err_reader.join().unwrap_or_default())
    }
}

/// Reads one line from this process's stdin (a child's command).
pub fn read_command() -> String {
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).expect("read stdin");
    line.trim().to_owned()
}

/// Percentile `p` (0..=1) of sorted durations.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}
