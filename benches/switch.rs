//! Context-switch benchmarks, weft beside corosensei in the same run.
//!
//! `cargo bench --bench switch` prints, for each workload, the median time
//! per operation of each peer and weft's ratio to corosensei (below 1.00x
//! means weft is faster). Workloads:
//!
//! - `resume+suspend`: one round trip into a coroutine and back;
//! - `create+run`: a coroutine is created and resumed once; its body
//!   returns, and the stack goes back to the pool (the life of most
//!   fibers);
//! - `create+resume+drop`: a coroutine is created, runs to its first
//!   suspend, and is dropped (a forced unwind of its frames, which both
//!   crates do with the DWARF unwinder, and which dominates the figure).
//!
//! corosensei is measured with its default stack (one mmap/munmap per
//! coroutine) and reusing one stack, the closer comparison to weft's pool.

use std::hint::black_box;
use std::time::{Duration, Instant};

use corosensei::stack::DefaultStack;

/// Median nanoseconds per iteration of `f` over `samples` batches, each
/// long enough (about 20 ms) to swamp timer overhead.
fn measure(mut f: impl FnMut(u64)) -> f64 {
    // Calibrate a batch size.
    let mut iters = 1u64;
    loop {
        let start = Instant::now();
        f(iters);
        if start.elapsed() > Duration::from_millis(20) {
            break;
        }
        iters *= 2;
    }
    let mut samples: Vec<f64> = (0..15)
        .map(|_| {
            let start = Instant::now();
            f(iters);
            start.elapsed().as_nanos() as f64 / iters as f64
        })
        .collect();
    samples.sort_by(|a, b| a.partial_cmp(b).expect("no NaN timings"));
    samples[samples.len() / 2]
}

fn weft_round_trip(iters: u64) {
    use weft::coroutine::{Coroutine, Yielder};
    let mut c = Coroutine::new(|y: &Yielder<u64, u64>, mut v: u64| {
        loop {
            v = y.suspend(v + 1);
        }
    });
    for i in 0..iters {
        black_box(c.resume(black_box(i)));
    }
}

fn corosensei_round_trip(iters: u64) {
    use corosensei::{Coroutine, Yielder};
    let mut c = Coroutine::new(|y: &Yielder<u64, u64>, mut v: u64| {
        loop {
            v = y.suspend(v + 1);
        }
    });
    for i in 0..iters {
        black_box(c.resume(black_box(i)));
    }
}

fn weft_create_run(iters: u64) {
    use weft::coroutine::{Coroutine, Yielder};
    for i in 0..iters {
        let mut c = Coroutine::new(move |_: &Yielder<(), ()>, ()| black_box(i) + 1);
        black_box(c.resume(()));
    }
}

fn corosensei_create_run_default_stack(iters: u64) {
    use corosensei::{Coroutine, Yielder};
    for i in 0..iters {
        let mut c = Coroutine::new(move |_: &Yielder<(), ()>, ()| black_box(i) + 1);
        black_box(c.resume(()));
    }
}

fn corosensei_create_run_reused_stack(iters: u64) {
    use corosensei::{Coroutine, Yielder};
    let mut stack = Some(DefaultStack::new(256 * 1024).expect("a corosensei stack"));
    for i in 0..iters {
        let mut c = Coroutine::with_stack(stack.take().unwrap(), move |_: &Yielder<(), ()>, ()| {
            black_box(i) + 1
        });
        black_box(c.resume(()));
        stack = Some(c.into_stack());
    }
}

fn weft_create(iters: u64) {
    use weft::coroutine::{Coroutine, Yielder};
    for i in 0..iters {
        let mut c = Coroutine::new(move |y: &Yielder<(), u64>, ()| {
            y.suspend(i);
        });
        black_box(c.resume(()));
    }
}

fn corosensei_create_default_stack(iters: u64) {
    use corosensei::{Coroutine, Yielder};
    for i in 0..iters {
        let mut c = Coroutine::new(move |y: &Yielder<(), u64>, ()| {
            y.suspend(i);
        });
        black_box(c.resume(()));
    }
}

fn corosensei_create_reused_stack(iters: u64) {
    use corosensei::{Coroutine, Yielder};
    let mut stack = Some(DefaultStack::new(256 * 1024).expect("a corosensei stack"));
    for i in 0..iters {
        let mut c =
            Coroutine::with_stack(stack.take().unwrap(), move |y: &Yielder<(), u64>, ()| {
                y.suspend(i);
            });
        black_box(c.resume(()));
        c.force_unwind();
        stack = Some(c.into_stack());
    }
}

fn row(name: &str, weft: f64, peer_name: &str, peer: f64) {
    println!(
        "{name:<24} weft {weft:>9.2} ns   {peer_name:<28} {peer:>9.2} ns   ratio {:.2}x",
        weft / peer
    );
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs each
    // bench binary without it, where one quick pass is enough.
    if !std::env::args().any(|a| a == "--bench") {
        weft_round_trip(1000);
        corosensei_round_trip(1000);
        weft_create_run(1000);
        corosensei_create_run_default_stack(10);
        corosensei_create_run_reused_stack(1000);
        weft_create(1000);
        corosensei_create_default_stack(10);
        corosensei_create_reused_stack(1000);
        println!("switch benches: smoke run passed (use cargo bench to measure)");
        return;
    }
    println!("weft vs corosensei, median of 15 batches; ratio = weft / corosensei");
    let weft = measure(weft_round_trip);
    let coro = measure(corosensei_round_trip);
    row("resume+suspend", weft, "corosensei", coro);
    let weft = measure(weft_create_run);
    let coro_default = measure(corosensei_create_run_default_stack);
    let coro_reused = measure(corosensei_create_run_reused_stack);
    row(
        "create+run",
        weft,
        "corosensei (DefaultStack)",
        coro_default,
    );
    row("create+run", weft, "corosensei (reused stack)", coro_reused);
    let weft = measure(weft_create);
    let coro_default = measure(corosensei_create_default_stack);
    let coro_reused = measure(corosensei_create_reused_stack);
    row(
        "create+resume+drop",
        weft,
        "corosensei (DefaultStack)",
        coro_default,
    );
    row(
        "create+resume+drop",
        weft,
        "corosensei (reused stack)",
        coro_reused,
    );
}
