//! weft's coroutines in a few lines: a generator, values in both
//! directions, a panic that comes out of `resume`, and the stacks going
//! back to their pool.
//!
//! Run: `cargo run --release --example hello`

use std::panic::{AssertUnwindSafe, catch_unwind};

use weft::coroutine::{Builder, Coroutine, CoroutineResult, Yielder};
use weft::stack_pool::StackPool;

fn main() {
    // A generator: yields Fibonacci numbers until told to stop.
    let mut fib = Coroutine::new(|y: &Yielder<bool, u64>, _: bool| {
        let (mut a, mut b) = (0u64, 1u64);
        loop {
            if !y.suspend(a) {
                return a;
            }
            (a, b) = (b, a + b);
        }
    });
    let mut first = Vec::new();
    while let CoroutineResult::Yield(n) = fib.resume(first.len() < 10) {
        first.push(n);
    }
    println!("fibonacci: {first:?}");

    // A running total: the caller sends numbers in, the coroutine sends sums back.
    let mut total = Coroutine::new(|y: &Yielder<i64, i64>, mut x: i64| {
        let mut sum = 0;
        loop {
            sum += x;
            x = y.suspend(sum);
        }
    });
    let sums: Vec<i64> = [5, -2, 10]
        .into_iter()
        .map(|x| total.resume(x).as_yield().unwrap())
        .collect();
    println!("running totals of [5, -2, 10]: {sums:?}");

    // A panic inside a coroutine comes out of resume with its payload.
    let mut faulty = Builder::new()
        .name("faulty")
        .build(|_: &Yielder<(), ()>, ()| -> () { panic!("something broke inside") })
        .expect("a stack for the coroutine");
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let payload = catch_unwind(AssertUnwindSafe(|| faulty.resume(()))).unwrap_err();
    std::panic::set_hook(hook);
    println!(
        "panic caught from coroutine {:?}: {:?}",
        faulty.name().unwrap(),
        payload.downcast_ref::<&str>().unwrap()
    );

    // Every stack went back to the pool.
    drop((fib, total, faulty));
    StackPool::flush_thread_cache();
    let stats = StackPool::global().stats();
    println!(
        "stack pool: {} live, {} cached, guard mode {:?}, {} KiB per stack",
        stats.live,
        stats.cached,
        stats.guard_mode,
        StackPool::global().stack_size() / 1024
    );
}
