//! CPU-bound recursion inside coroutines, for `perf record --call-graph fp`.
//!
//! Eight coroutines each run a recursive workload (`hot_leaf` at the bottom
//! of `recurse`), suspending every few thousand leaves; `drive_coroutines`
//! resumes them round-robin on the main thread. With frame pointers (see
//! `.cargo/config.toml`), perf's call graph of a sample in `hot_leaf` runs
//!
//! ```text
//! hot_leaf <- recurse <- ... <- coroutine_body <- fiber_trampoline
//!          <- drive_coroutines <- main
//! ```
//!
//! With `--fibers`, the same workload runs in eight fibers on a one-worker
//! runtime, each calling `weft::yield_now` where the coroutines suspend:
//! the fibers hand the worker's thread to one another directly (see
//! `src/sched/worker/handoff.rs`), and every chain should still run
//!
//! ```text
//! hot_leaf <- recurse_in_fiber <- ... <- fiber_body <- fiber_trampoline
//!          <- Worker::run_task <- ... <- the worker thread's start
//! ```
//!
//! `scripts/check-perf-callgraph.sh` runs both under perf and checks that.
//!
//! Usage: `cargo run --release --example perf_callgraph -- [--secs N] [--fibers]`

use std::hint::black_box;
use std::time::{Duration, Instant};

use weft::coroutine::{Coroutine, CoroutineResult, Yielder};

/// The hot function: most samples land here.
#[inline(never)]
fn hot_leaf(seed: u64) -> u64 {
    let mut x = seed | 1;
    for _ in 0..200 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
    }
    black_box(x)
}

/// Recursion a few levels deep above the leaf, so chains have depth.
#[inline(never)]
fn recurse(y: &Yielder<(), u64>, depth: u32, seed: u64, leaves: &mut u64) -> u64 {
    if depth == 0 {
        *leaves += 1;
        if leaves.is_multiple_of(4096) {
            y.suspend(*leaves);
        }
        return hot_leaf(seed);
    }
    let left = recurse(y, depth - 1, seed.wrapping_mul(3), leaves);
    let right = recurse(y, depth - 1, seed.wrapping_add(left), leaves);
    black_box(left ^ right)
}

/// The body of every coroutine: recurse forever, suspending now and then.
#[inline(never)]
fn coroutine_body(y: &Yielder<(), u64>, seed: u64) -> u64 {
    let mut leaves = 0;
    let mut acc = 0u64;
    loop {
        acc = acc.wrapping_add(recurse(y, 6, seed ^ acc, &mut leaves));
        black_box(acc);
    }
}

/// [`recurse`] for a fiber: yields to the other fibers where a coroutine
/// would suspend.
#[inline(never)]
fn recurse_in_fiber(depth: u32, seed: u64, leaves: &mut u64) -> u64 {
    if depth == 0 {
        *leaves += 1;
        if leaves.is_multiple_of(4096) {
            weft::yield_now();
        }
        return hot_leaf(seed);
    }
    let left = recurse_in_fiber(depth - 1, seed.wrapping_mul(3), leaves);
    let right = recurse_in_fiber(depth - 1, seed.wrapping_add(left), leaves);
    black_box(left ^ right)
}

/// The body of every fiber: recurse until the deadline.
#[inline(never)]
fn fiber_body(seed: u64, deadline: Instant) -> u64 {
    let mut leaves = 0;
    let mut acc = 0u64;
    while Instant::now() < deadline {
        acc = acc.wrapping_add(recurse_in_fiber(6, seed ^ acc, &mut leaves));
        black_box(acc);
    }
    leaves
}

/// Eight fibers on one worker until the deadline; returns their leaves.
fn drive_fibers(deadline: Instant) -> u64 {
    let rt = weft::Runtime::builder()
        .workers(1)
        .build()
        .expect("a one-worker runtime");
    rt.block_on(move || {
        let fibers: Vec<_> = (0..8u64)
            .map(|i| weft::spawn(move || fiber_body(i * 7919 + 1, deadline)))
            .collect();
        fibers
            .into_iter()
            .map(|f| f.join().expect("a fiber of the workload"))
            .sum()
    })
}

/// The resumer: every sample in a coroutine should chain back to here.
#[inline(never)]
fn drive_coroutines(coroutines: &mut [Coroutine<(), u64, u64>], deadline: Instant) -> u64 {
    let mut suspends = 0u64;
    while Instant::now() < deadline {
        for c in coroutines.iter_mut() {
            if let CoroutineResult::Yield(_) = c.resume(()) {
                suspends += 1;
            }
        }
    }
    black_box(suspends)
}

fn main() {
    let mut secs = 3.0f64;
    let mut fibers = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--fibers" => fibers = true,
            "--secs" => {
                secs = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--secs takes a number of seconds, e.g. --secs 3");
            }
            other => {
                panic!("unknown argument {other:?}; usage: perf_callgraph [--secs N] [--fibers]")
            }
        }
    }
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    if fibers {
        let leaves = drive_fibers(deadline);
        println!("8 fibers ran {leaves} leaves in {secs} s");
        return;
    }
    let mut coroutines: Vec<Coroutine<(), u64, u64>> = (0..8u64)
        .map(|i| Coroutine::new(move |y: &Yielder<(), u64>, ()| coroutine_body(y, i * 7919 + 1)))
        .collect();
    let suspends = drive_coroutines(&mut coroutines, deadline);
    println!("8 coroutines suspended {suspends} times in {secs} s");
}
