//! Channel hand-off costs, for weft alone (the comparison runner puts the
//! same workloads beside tokio and may).
//!
//! ```sh
//! cargo run --release --example sync_bench            # everything
//! cargo run --release --example sync_bench pingpong   # one workload
//! cargo run --release --example sync_bench ring 100000 2   # N, workers
//! ```
//!
//! - `pingpong`: two fibers bounce a counter over two rendezvous channels;
//!   the time per round trip (two sends, two receives, two wake-ups), on a
//!   runtime with 1 worker and with 2.
//! - `ring N`: N fibers in a ring, each receiving from its own channel and
//!   sending to the next one's; a token goes round. Time per hop, and the
//!   process's peak RSS (`VmHWM`). Each N runs in its own child process, so
//!   each peak is its own; with 2 workers and with 1 (with 2, the fibers
//!   are spread over both workers by work stealing, and a hop from one
//!   worker's fiber to the other's wakes that worker, so the figure
//!   depends on how the ring was split).
//!
//! Each figure is the best of several runs (pingpong: 5 runs of 1,000,000
//! round trips; ring: 3 runs of about 1,000,000 hops), since the machine
//! may be busy with other work.

use std::process::Command;
use std::time::{Duration, Instant};

use weft::Runtime;
use weft::chan::{Receiver, Sender, bounded};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("pingpong") => pingpong_all(),
        Some("ring") => {
            let n = args
                .get(1)
                .map_or(10_000, |n| n.parse().expect("a ring size"));
            let workers = args
                .get(2)
                .map_or(2, |w| w.parse().expect("a worker count"));
            ring(n, workers);
        }
        Some(other) => panic!("unknown workload {other}: pingpong | ring N [workers]"),
        None => {
            pingpong_all();
            for workers in [2, 1] {
                for n in [10_000, 100_000, 1_000_000] {
                    // A child per size: each reports its own peak RSS.
                    let exe = std::env::current_exe().expect("this program");
                    let status = Command::new(exe)
                        .args(["ring", &n.to_string(), &workers.to_string()])
                        .status()
                        .expect("run the ring");
                    assert!(status.success(), "ring {n} failed: {status}");
                }
            }
        }
    }
}

fn pingpong_all() {
    for workers in [1, 2] {
        let rt = Runtime::builder()
            .workers(workers)
            .build()
            .expect("a runtime");
        // Warm up, then take the best of 5 runs of 1,000,000 round trips.
        pingpong(&rt, 100_000);
        let best = (0..5)
            .map(|_| pingpong(&rt, 1_000_000))
            .min()
            .expect("runs");
        println!("pingpong workers={workers}: {:.1} ns per round trip", best);
    }
}

/// Nanoseconds per round trip between two fibers, `rounds` round trips.
fn pingpong(rt: &Runtime, rounds: u64) -> u64 {
    rt.block_on(move || {
        let (ping_tx, ping_rx) = bounded::<u64>(0);
        let (pong_tx, pong_rx) = bounded::<u64>(0);
        let ponger = weft::spawn(move || {
            for n in ping_rx.iter() {
                pong_tx.send(n + 1).expect("the pinger waits");
            }
        });
        let pinger = weft::spawn(move || {
            let start = Instant::now();
            let mut n = 0;
            for _ in 0..rounds {
                ping_tx.send(n).expect("the ponger waits");
                n = pong_rx.recv().expect("the ponger answers");
            }
            assert_eq!(n, rounds);
            start.elapsed()
        });
        let elapsed: Duration = pinger.join().expect("the pinger");
        ponger.join().expect("the ponger");
        (elapsed.as_nanos() / u128::from(rounds)) as u64
    })
}

/// A ring of `n` fibers; prints ns per hop and the peak RSS.
fn ring(n: usize, workers: usize) {
    let rt = Runtime::builder()
        .workers(workers)
        .build()
        .expect("a runtime");
    let laps: usize = (1_000_000 / n).max(1);
    let (setup, elapsed, hops) = rt.block_on(move || {
        let start = Instant::now();
        let (first_tx, mut prev_rx): (Sender<usize>, Receiver<usize>) = bounded(1);
        let mut fibers = Vec::with_capacity(n);
        for _ in 1..n {
            let (tx, rx) = bounded(1);
            let my_rx = std::mem::replace(&mut prev_rx, rx);
            // The smallest stack weft allows (still guarded): RSS is what
            // each fiber touches.
            let fiber = weft::fiber::Builder::new()
                .stack_size(16 * 1024)
                .spawn(move || {
                    for token in my_rx.iter() {
                        if tx.send(token + 1).is_err() {
                            break;
                        }
                    }
                })
                .expect("a ring fiber");
            fibers.push(fiber);
        }
        // The last link sends back to us (we are the n-th fiber of the
        // ring); we count the laps. Each of the n - 1 others adds 1.
        let last_rx = prev_rx;
        // Let every fiber start and park in its receive.
        first_tx.send(0).expect("the ring is alive");
        let mut token = last_rx.recv().expect("the first lap");
        let setup = start.elapsed();
        // The best of 3 runs: the machine may be shared.
        let mut elapsed = Duration::MAX;
        for _ in 0..3 {
            let start = Instant::now();
            for _ in 0..laps {
                first_tx.send(token).expect("the ring is alive");
                token = last_rx.recv().expect("a lap");
            }
            elapsed = elapsed.min(start.elapsed());
        }
        assert_eq!(token, (n - 1) * (3 * laps + 1));
        drop(first_tx);
        for fiber in fibers {
            fiber.join().expect("a ring fiber");
        }
        (setup, elapsed, n * laps)
    });
    drop(rt);
    println!(
        "ring n={n} workers={workers}: {:.1} ns per hop ({hops} hops), setup {:.2} s, peak RSS {} MiB",
        elapsed.as_nanos() as f64 / hops as f64,
        setup.as_secs_f64(),
        peak_rss_kib() / 1024
    );
}

/// `VmHWM` of this process, in KiB.
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("a VmHWM line")
}
