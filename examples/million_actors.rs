//! A million actors: spawn them, message each once, then pass a token
//! around a ring of all of them, printing what an idle actor costs and
//! what a hop costs.
//!
//! Run: `cargo run --release --example million_actors`
//! (flags: `--actors N` (1,000,000), `--hops N` (3,000,000 per run of
//! the token, which is run 3 times), `--workers N` (all CPUs)).
//!
//! Each actor is a `Node`: the address of the next node and a counter
//! (16 bytes of user state). RSS comes from `/proc/self/status` (`VmRSS`,
//! and `VmHWM` for the peak); bytes per idle actor are the RSS growth
//! while all of them are idle, divided by their number, less the 8 bytes
//! per actor of the `Vec<Addr>` this program keeps.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use weft::actor::{self, Actor, Addr, Context};
use weft::fiber::{self, Fiber};

/// One node of the ring.
struct Node {
    next: Option<Addr<Node>>,
    seen: u64,
}

enum Msg {
    /// Counted, then the main fiber hears of it.
    Hello,
    /// Closes the ring: the last node learns the first.
    Link(Addr<Node>),
    /// Passed on until no hops remain.
    Token(u64),
}

impl Actor for Node {
    type Msg = Msg;

    fn started(&mut self, _: &mut Context<Self>) {
        STARTED.bump();
    }

    fn stopped(&mut self, _: &actor::StopReason, _: &mut Context<Self>) {
        STOPPED.bump();
    }

    fn handle(&mut self, msg: Msg, _: &mut Context<Self>) {
        match msg {
            Msg::Hello => {
                self.seen += 1;
                HELLOS.bump();
            }
            Msg::Link(first) => {
                self.next = Some(first);
                LINKED.bump();
            }
            Msg::Token(0) => RING_DONE.bump(),
            Msg::Token(left) => {
                self.seen += 1;
                let next = self.next.as_ref().expect("the ring is closed");
                if next.send(Msg::Token(left - 1)).is_err() {
                    panic!("a ring node stopped");
                }
            }
        }
    }
}

/// A count the main fiber waits on: it parks until the count reaches a
/// target, and the increment that reaches it unparks it.
struct Latch {
    count: AtomicUsize,
    target: AtomicUsize,
    waiter: Mutex<Option<Fiber>>,
}

impl Latch {
    const fn new() -> Latch {
        Latch {
            count: AtomicUsize::new(0),
            target: AtomicUsize::new(usize::MAX),
            waiter: Mutex::new(None),
        }
    }

    fn bump(&self) {
        let now = self.count.fetch_add(1, Ordering::AcqRel) + 1;
        if now == self.target.load(Ordering::Acquire)
            && let Some(waiter) = self.waiter.lock().unwrap().as_ref()
        {
            waiter.unpark();
        }
    }

    /// Parks the calling fiber until the count is `target`.
    fn wait_for(&self, target: usize) {
        *self.waiter.lock().unwrap() = Some(fiber::current());
        self.target.store(target, Ordering::Release);
        while self.count.load(Ordering::Acquire) < target {
            fiber::park_timeout(Duration::from_millis(50));
        }
    }
}

static STARTED: Latch = Latch::new();
static HELLOS: Latch = Latch::new();
static LINKED: Latch = Latch::new();
static RING_DONE: Latch = Latch::new();
static STOPPED: Latch = Latch::new();

fn status_kib(field: &str) -> usize {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("{field} in /proc/self/status"))
}

fn rss() -> usize {
    status_kib("VmRSS:") * 1024
}

fn peak_rss() -> usize {
    status_kib("VmHWM:") * 1024
}

fn mib(bytes: usize) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

struct Args {
    actors: usize,
    hops: u64,
    workers: Option<usize>,
}

fn parse_args() -> Args {
    let mut args = Args {
        actors: 1_000_000,
        hops: 3_000_000,
        workers: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || -> u64 {
            it.next()
                .and_then(|v| v.replace('_', "").parse().ok())
                .unwrap_or_else(|| panic!("{flag} needs a number"))
        };
        match flag.as_str() {
            "--actors" => args.actors = value() as usize,
            "--hops" => args.hops = value(),
            "--workers" => args.workers = Some(value() as usize),
            other => {
                eprintln!(
                    "unknown flag {other}; usage: million_actors [--actors N] [--hops N] [--workers N]"
                );
                std::process::exit(2);
            }
        }
    }
    assert!(args.actors >= 1, "--actors must be at least 1");
    args
}

fn main() {
    let args = parse_args();
    let mut builder = weft::Runtime::builder();
    if let Some(workers) = args.workers {
        builder = builder.workers(workers);
    }
    let rt = builder.build().expect("a runtime");
    let workers = args.workers.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    let Args {
        actors: n, hops, ..
    } = args;
    rt.block_on(move || {
        // Warm the pool and the allocator a little, so the baseline is fair.
        let warm = actor::spawn(Node {
            next: None,
            seen: 0,
        });
        warm.send(Msg::Hello).unwrap();
        warm.stop();
        warm.join();
        STARTED.count.store(0, Ordering::Release);
        STOPPED.count.store(0, Ordering::Release);
        HELLOS.count.store(0, Ordering::Release);
        let mut addrs: Vec<Addr<Node>> = Vec::with_capacity(n);
        let before = rss();

        // Spawn the ring back to front: node i knows node i + 1 from birth.
        let start = Instant::now();
        let mut next = None;
        for _ in 0..n {
            let addr = actor::spawn(Node { next, seen: 0 });
            next = Some(addr.clone());
            addrs.push(addr);
        }
        addrs.reverse();
        STARTED.wait_for(n);
        let spawned_in = start.elapsed();
        // `started` ran; let the last few bodies return to idle.
        std::thread::sleep(Duration::from_millis(20));
        let idle = rss();
        let per_actor = (idle.saturating_sub(before)) as f64 / n as f64;
        println!(
            "spawned {n} actors in {:.2?} ({:.0} ns each) on {workers} workers",
            spawned_in,
            spawned_in.as_nanos() as f64 / n as f64
        );
        println!(
            "  idle: RSS {:.1} MiB -> {:.1} MiB: {:.0} bytes per idle actor \
             ({:.0} beyond the 8-byte Addr this program keeps; user state {} bytes)",
            mib(before),
            mib(idle),
            per_actor,
            per_actor - 8.0,
            std::mem::size_of::<Node>()
        );

        // One message each.
        let start = Instant::now();
        for addr in &addrs {
            addr.send(Msg::Hello).unwrap();
        }
        HELLOS.wait_for(n);
        let hello_in = start.elapsed();
        std::thread::sleep(Duration::from_millis(20));
        let after_hello = rss();
        println!(
            "sent each a message and all were handled in {:.2?} ({:.0} ns per message)",
            hello_in,
            hello_in.as_nanos() as f64 / n as f64
        );
        println!(
            "  idle again: RSS {:.1} MiB: {:.0} bytes per idle actor after a message",
            mib(after_hello),
            (after_hello.saturating_sub(before)) as f64 / n as f64 - 8.0
        );

        // Close the ring and pass the token, three times (the machine may
        // be busy with other work: the best run is the one to quote).
        addrs[n - 1].send(Msg::Link(addrs[0].clone())).unwrap();
        LINKED.wait_for(1);
        let mut runs = Vec::new();
        for run in 1..=3 {
            let start = Instant::now();
            addrs[0].send(Msg::Token(hops)).unwrap();
            RING_DONE.wait_for(run);
            runs.push(start.elapsed().as_nanos() as f64 / hops.max(1) as f64);
        }
        let best = runs.iter().copied().fold(f64::INFINITY, f64::min);
        println!(
            "token passed {hops} hops around the ring of {n}, 3 times: {best:.0} ns per hop \
             (best; runs {:.0}, {:.0}, {:.0})",
            runs[0], runs[1], runs[2]
        );
        println!("  peak RSS (VmHWM) {:.1} MiB", mib(peak_rss()));

        // Stop them all, which also breaks the ring (each node holds the
        // next), and wait for their `stopped` hooks. (`join` would do too,
        // but records each joiner in the actor: 1,000,000 of them at once
        // cost more than the actors themselves.)
        let start = Instant::now();
        for addr in &addrs {
            addr.stop();
        }
        STOPPED.wait_for(n);
        println!("stopped all {n} in {:.2?}", start.elapsed());
    });
}
