//! TESTING.md 5.3 `asan_fake_stack_destroyed`: under AddressSanitizer with
//! `detect_stack_use_after_return`, every fiber gets a fake stack of its
//! own (ASan's home for the frames of address-taken locals), and the
//! fiber's last switch-out must say it is leaving for good (a `NULL` save
//! in `__sanitizer_start_switch_fiber`) so that ASan frees it. Forgotten,
//! each finished fiber leaks a fake stack of a few hundred KiB of address
//! space and some resident pages. 100,000 fibers must grow the resident
//! set by less than 200 MiB. (First, two fibers must show fake stacks of
//! their own: without the annotations they would share their worker's,
//! and nothing would be measured.)
//!
//! Compiled only with the `sanitizer` feature (`scripts/asan.sh`).

#![cfg(feature = "sanitizer")]

mod support;

use std::hint::black_box;

use weft::{Runtime, spawn};

/// The test's name, for re-running it in a child.
const NAME: &str = "the_fake_stacks_of_finished_fibers_are_freed";

const FIBERS: usize = 100_000;
/// Spawned, then joined, this many at a time.
const BATCH: usize = 1_000;
const MAX_GROWTH: usize = 200 << 20;

unsafe extern "C" {
    /// The ASan runtime's fake stack for the running stack, created on
    /// first use; null when `detect_stack_use_after_return` is off.
    fn __asan_get_current_fake_stack() -> *mut u8;
}

/// A frame with an address-taken local, which ASan puts on the running
/// fiber's fake stack; returns that fake stack's address (0 for none).
#[inline(never)]
fn work_on_the_fake_stack(seed: usize) -> usize {
    let local = [seed; 8];
    black_box(&local);
    // SAFETY: a query of the ASan runtime, which this build links.
    unsafe { __asan_get_current_fake_stack() as usize }
}

/// The fake stacks of two fibers suspended side by side on one worker:
/// different if each fiber has its own (the switches are announced), the
/// worker thread's for both if not.
fn fake_stacks_of_two_fibers() -> (usize, usize) {
    let rt = Runtime::builder().workers(1).build().expect("a runtime");
    rt.block_on(|| {
        let both: Vec<_> = (0..2)
            .map(|i| {
                spawn(move || {
                    let fake_stack = work_on_the_fake_stack(i);
                    // Let the other one run while this one is suspended.
                    weft::yield_now();
                    fake_stack
                })
            })
            .collect();
        let mut both = both.into_iter().map(|h| h.join().unwrap());
        (both.next().unwrap(), both.next().unwrap())
    })
}

/// Runs `fibers` fibers that each use their fake stack, `BATCH` at a
/// time; returns how many had one.
fn run_fibers(rt: &Runtime, fibers: usize) -> usize {
    (0..fibers / BATCH)
        .map(|_| {
            rt.block_on(|| {
                let handles: Vec<_> = (0..BATCH)
                    .map(|i| spawn(move || work_on_the_fake_stack(i) != 0))
                    .collect();
                handles
                    .into_iter()
                    .map(|h| usize::from(h.join().unwrap()))
                    .sum::<usize>()
            })
        })
        .sum()
}

#[test]
fn the_fake_stacks_of_finished_fibers_are_freed() {
    if !support::is_child() {
        // A fresh process, with fake stacks on whatever the caller's
        // options say (later flags win).
        let options = format!(
            "{}:detect_stack_use_after_return=1",
            std::env::var("ASAN_OPTIONS").unwrap_or_default()
        );
        support::run_child_test(NAME, &[("ASAN_OPTIONS", &options)]);
        return;
    }
    let (first, second) = fake_stacks_of_two_fibers();
    assert!(
        first != 0 && first != second,
        "fibers must each have a fake stack of their own (got {first:#x} and {second:#x}), \
         or this test proves nothing"
    );
    let rt = Runtime::builder().workers(2).build().expect("a runtime");
    // Warm up: worker threads, stack caches, the allocator's first pages.
    run_fibers(&rt, 10 * BATCH);
    let before = support::rss_bytes();
    let with_fake_stack = run_fibers(&rt, FIBERS);
    let after = support::rss_bytes();
    let growth = after.saturating_sub(before);
    println!(
        "{FIBERS} fibers: RSS {} MiB -> {} MiB (+{} MiB), {with_fake_stack} ran on a fake stack",
        before >> 20,
        after >> 20,
        growth >> 20
    );
    assert_eq!(
        with_fake_stack, FIBERS,
        "every fiber must run on a fake stack, or this test proves nothing"
    );
    assert!(
        growth < MAX_GROWTH,
        "RSS grew by {} MiB over {FIBERS} fibers (limit {} MiB): fake stacks leak",
        growth >> 20,
        MAX_GROWTH >> 20
    );
}
