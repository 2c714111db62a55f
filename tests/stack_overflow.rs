//! A coroutine that overflows its stack is reported by name (or id) and the
//! process aborts; other faults behave as without weft. Every case runs in
//! a child process, once per guard mode (`WEFT_STACK_GUARD`).

mod support;

use std::hint::black_box;
use std::process::Output;
use std::time::{Duration, Instant};

use weft::coroutine::{Builder, Coroutine, Yielder};
use weft::stack_pool::StackPool;

const MODES: [&str; 2] = ["guard-install", "mprotect"];

/// Recurses with 1 KiB frames until the guard is hit.
#[inline(never)]
#[expect(
    unconditional_recursion,
    reason = "it recurses until the stack overflows"
)]
fn deep(n: u64, loud: bool) -> u64 {
    let frame = black_box([n as u8; 1024]);
    if loud {
        println!("depth {n}");
    }
    let below = deep(n + 1, loud);
    black_box(frame[(n % 1024) as usize] as u64 + below)
}

/// A 64 KiB pool that honours `WEFT_STACK_GUARD` (it uses the Auto policy).
fn pool() -> StackPool {
    StackPool::builder().stack_size(64 * 1024).build().unwrap()
}

fn overflow_in_coroutine(name: Option<&str>, loud: bool) {
    let mut builder = Builder::new().pool(&pool());
    if let Some(name) = name {
        builder = builder.name(name);
    }
    let mut c = builder
        .build(move |_: &Yielder<(), ()>, ()| {
            deep(0, loud);
        })
        .unwrap();
    eprintln!("child: coroutine id {}", c.id());
    c.resume(());
    eprintln!("child: the overflow did not abort");
}

/// Runs `test` as a child once per guard mode and checks it died of an
/// overflow reported for `fiber`.
fn expect_overflow_report(test: &str, fiber: &str) {
    for mode in MODES {
        let started = Instant::now();
        let out = support::run_child(test, &[("WEFT_STACK_GUARD", mode)]);
        check_overflow(&out, fiber, mode);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{mode}: the child took {:?}",
            started.elapsed()
        );
    }
}

fn check_overflow(out: &Output, fiber: &str, mode: &str) {
    let stderr = support::stderr(out);
    assert_eq!(
        support::exit_signal(out),
        Some(libc::SIGABRT),
        "{mode}: {}",
        support::describe(out)
    );
    let expected = format!("fiber '{fiber}' has overflowed its stack (64 KiB)");
    assert!(
        stderr.contains(&expected),
        "{mode}: no {expected:?} in {stderr}"
    );
    assert!(
        !stderr.contains("thread '") || !stderr.contains("has overflowed its stack\n"),
        "{mode}: misreported as a thread overflow: {stderr}"
    );
}

#[test]
fn named_overflow_child() {
    if support::is_child() {
        overflow_in_coroutine(Some("deep-actor"), false);
    }
}

#[test]
fn a_named_coroutine_overflow_is_reported_and_aborts() {
    if !support::is_child() {
        expect_overflow_report("named_overflow_child", "deep-actor");
    }
}

#[test]
fn unnamed_overflow_child() {
    if support::is_child() {
        overflow_in_coroutine(None, false);
    }
}

#[test]
fn an_unnamed_coroutine_overflow_is_reported_by_id() {
    if support::is_child() {
        return;
    }
    for mode in MODES {
        let out = support::run_child("unnamed_overflow_child", &[("WEFT_STACK_GUARD", mode)]);
        let stderr = support::stderr(&out);
        let id = stderr
            .lines()
            .find_map(|l| l.strip_prefix("child: coroutine id "))
            .unwrap_or_else(|| panic!("{mode}: no id line in {stderr}"));
        check_overflow(&out, &format!("#{id}"), mode);
    }
}

#[test]
fn loud_overflow_child() {
    if support::is_child() {
        overflow_in_coroutine(Some("loud"), true);
    }
}

#[test]
fn an_overflow_while_printing_does_not_deadlock() {
    // Each frame prints, so the overflow may hit while stdout's lock is
    // held: the report must not touch stdout.
    if !support::is_child() {
        expect_overflow_report("loud_overflow_child", "loud");
    }
}

#[test]
fn worker_thread_overflow_child() {
    if !support::is_child() {
        return;
    }
    let no_altstack = std::env::var_os("NO_ALTSTACK").is_some();
    std::thread::Builder::new()
        .name("worker".into())
        .spawn(move || {
            if no_altstack {
                support::disable_altstack();
            }
            overflow_in_coroutine(Some("on-worker"), false);
        })
        .unwrap()
        .join()
        .unwrap();
}

#[test]
fn an_overflow_on_another_thread_is_reported_with_or_without_its_altstack() {
    if support::is_child() {
        return;
    }
    for mode in MODES {
        for no_altstack in [false, true] {
            let mut envs = vec![("WEFT_STACK_GUARD", mode)];
            if no_altstack {
                envs.push(("NO_ALTSTACK", "1"));
            }
            let out = support::run_child("worker_thread_overflow_child", &envs);
            check_overflow(
                &out,
                "on-worker",
                &format!("{mode}, no altstack: {no_altstack}"),
            );
        }
    }
}

#[test]
fn recycled_stack_overflow_child() {
    if !support::is_child() {
        return;
    }
    let pool = pool();
    for i in 0..1000u64 {
        let mut c = Builder::new()
            .pool(&pool)
            .build(move |y: &Yielder<(), u64>, ()| {
                y.suspend(deep_bounded(i % 16));
            })
            .unwrap();
        c.resume(());
    }
    assert!(pool.stats().carved <= 8, "{:?}", pool.stats());
    let mut c = Builder::new()
        .pool(&pool)
        .name("recycled")
        .build(|_: &Yielder<(), ()>, ()| {
            deep(0, false);
        })
        .unwrap();
    c.resume(());
}

/// Recurses `n` frames of 1 KiB and returns.
#[inline(never)]
fn deep_bounded(n: u64) -> u64 {
    let frame = black_box([n as u8; 1024]);
    if n == 0 {
        return 0;
    }
    black_box(frame[7] as u64 + deep_bounded(n - 1))
}

#[test]
fn an_overflow_on_a_recycled_stack_is_still_caught() {
    // 1,000 coroutines run on recycled stacks first: the guards must
    // survive recycling.
    if !support::is_child() {
        expect_overflow_report("recycled_stack_overflow_child", "recycled");
    }
}

#[test]
fn null_write_child() {
    if !support::is_child() {
        return;
    }
    let mut c = Coroutine::new(|_: &Yielder<(), ()>, ()| {
        // SAFETY: none: this write must fault.
        unsafe { (black_box(0x10usize) as *mut u8).write_volatile(1) };
    });
    c.resume(());
}

#[test]
fn a_fault_that_is_not_an_overflow_is_a_plain_sigsegv() {
    if support::is_child() {
        return;
    }
    for mode in MODES {
        let out = support::run_child("null_write_child", &[("WEFT_STACK_GUARD", mode)]);
        let stderr = support::stderr(&out);
        assert_eq!(
            support::exit_signal(&out),
            Some(libc::SIGSEGV),
            "{mode}: {}",
            support::describe(&out)
        );
        assert!(!stderr.contains("overflowed"), "{mode}: {stderr}");
    }
}

#[test]
fn thread_overflow_child() {
    if !support::is_child() {
        return;
    }
    // Coroutines exist (the handler is installed) when a plain thread
    // overflows its own stack.
    let mut c = Coroutine::new(|y: &Yielder<(), ()>, ()| y.suspend(()));
    c.resume(());
    std::thread::Builder::new()
        .name("plain".into())
        .stack_size(256 * 1024)
        .spawn(|| deep(0, false))
        .unwrap()
        .join()
        .unwrap();
}

#[test]
fn a_thread_overflow_is_still_reported_by_std() {
    if support::is_child() {
        return;
    }
    let out = support::run_child("thread_overflow_child", &[]);
    let stderr = support::stderr(&out);
    assert_eq!(
        support::exit_signal(&out),
        Some(libc::SIGABRT),
        "{}",
        support::describe(&out)
    );
    assert!(
        stderr.contains("thread 'plain'") && stderr.contains("has overflowed its stack"),
        "{stderr}"
    );
    assert!(!stderr.contains("fiber '"), "{stderr}");
}
