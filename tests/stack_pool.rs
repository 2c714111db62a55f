//! Integration tests of `weft::stack_pool`: sizes, recycling, caches,
//! counters, the usable region, trimming and budgets.
//!
//! Guards, guard modes, fault chaining and altstacks are in
//! `stack_pool_guard.rs`; the heavy limit tests (a million stacks, the
//! mprotect map limit) in `stack_pool_limits.rs`; the overflow handler's
//! own tests need private access and live in `src/stack_pool/tests.rs`.

mod support;

use std::io::ErrorKind;
use std::time::{Duration, Instant};

use weft::stack_pool::{GuardMode, GuardPolicy, Stack, StackError, StackPool};

const KIB: usize = 1024;

/// A pool with 4 KiB guards that asks for `mode` (`GuardInstall` means
/// `GuardPolicy::Auto`, which gives mprotect on old kernels or under
/// `WEFT_STACK_GUARD=mprotect`; tests read `guard_mode()` for what it got).
fn pool(mode: GuardMode, stack_size: usize) -> StackPool {
    let policy = match mode {
        GuardMode::Mprotect => GuardPolicy::Mprotect,
        _ => GuardPolicy::Auto,
    };
    StackPool::builder()
        .stack_size(stack_size)
        .guard_size(4 * KIB)
        .guard_policy(policy)
        .build()
        .expect("build pool")
}

/// Both modes the tests cover.
fn modes() -> [GuardMode; 2] {
    [GuardMode::GuardInstall, GuardMode::Mprotect]
}

fn build_err(builder: weft::stack_pool::StackPoolBuilder) -> StackError {
    let start = Instant::now();
    let err = builder.build().expect_err("build must refuse");
    assert!(
        start.elapsed() < Duration::from_millis(100),
        "refusal took {:?}",
        start.elapsed()
    );
    err
}

#[test]
fn stack_size_zero_is_refused() {
    let err = build_err(StackPool::builder().stack_size(0));
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    let msg = err.to_string();
    assert!(msg.contains("stack size 0"), "{msg}");
    assert!(msg.contains("16 KiB"), "{msg}");
    println!("{msg}");
}

#[test]
fn stack_sizes_below_16_kib_are_refused() {
    for size in [1, 100, 4095, 4096, 4097, 8 * KIB, 15 * KIB, 16 * KIB - 1] {
        let err = build_err(StackPool::builder().stack_size(size));
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{size}");
        let msg = err.to_string();
        assert!(
            msg.contains("too small to run a fiber")
                && msg.contains("entry frames and the panic machinery")
                && msg.contains("use at least 16 KiB"),
            "{size}: {msg}"
        );
    }
    println!("{}", build_err(StackPool::builder().stack_size(1)));
}

#[test]
fn stack_sizes_round_up_to_pages() {
    let page = support::page_size();
    for (asked, want) in [
        (16 * KIB, 16 * KIB),
        (16 * KIB + 1, 16 * KIB + page),
        (16 * KIB + 4097, 16 * KIB + 2 * page),
        (100_000, 100_000usize.div_ceil(page) * page),
    ] {
        let pool = StackPool::builder().stack_size(asked).build().unwrap();
        assert_eq!(pool.stack_size(), want, "asked {asked}");
        let stack = pool.get().unwrap();
        assert_eq!(stack.size(), want);
        assert_eq!(
            stack.base().as_ptr() as usize - stack.limit().as_ptr() as usize,
            want - 64
        );
    }
}

#[test]
fn guard_sizes_round_up_to_at_least_one_page() {
    let page = support::page_size();
    for (asked, want) in [(0, page), (1, page), (page, page), (page + 1, 2 * page)] {
        let pool = StackPool::builder().guard_size(asked).build().unwrap();
        assert_eq!(pool.guard_size(), want, "asked {asked}");
        assert_eq!(pool.get().unwrap().guard_size(), want);
    }
    let err = build_err(StackPool::builder().guard_size(usize::MAX));
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.to_string().contains("guard size"), "{err}");
}

#[test]
fn stack_sizes_above_1_gib_are_refused_without_overflow() {
    for size in [(1 << 30) + 1, 1 << 40, usize::MAX - 4095, usize::MAX] {
        let err = build_err(StackPool::builder().stack_size(size));
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{size}");
        assert!(err.to_string().contains("maximum of 1 GiB"), "{err}");
    }
    // Both at their maxima: the slot arithmetic must not overflow either.
    let pool = StackPool::builder()
        .stack_size(1 << 30)
        .guard_size(1 << 30)
        .build()
        .unwrap();
    assert_eq!(pool.stack_size(), 1 << 30);
    println!("{}", build_err(StackPool::builder().stack_size(usize::MAX)));
}

#[test]
fn a_1_gib_stack_is_carved_lazily() {
    let start = Instant::now();
    let pool = StackPool::builder().stack_size(1 << 30).build().unwrap();
    let rss = support::rss_bytes();
    let stack = pool.get().unwrap();
    assert_eq!(stack.size(), 1 << 30);
    assert!(
        support::rss_bytes() < rss + (16 << 20),
        "a 1 GiB stack must not be committed"
    );
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn io_error_conversion_keeps_kind_and_message() {
    let err = build_err(StackPool::builder().stack_size(5));
    let text = err.to_string();
    let io: std::io::Error = err.into();
    assert_eq!(io.kind(), ErrorKind::InvalidInput);
    assert_eq!(io.to_string(), text);
}

#[test]
fn recycling_is_lifo_on_one_thread() {
    for mode in modes() {
        let pool = pool(mode, 16 * KIB);
        let a = pool.get().unwrap();
        let base_a = a.base();
        drop(a);
        assert_eq!(pool.get().unwrap().base(), base_a, "{mode:?}");

        let stacks: Vec<Stack> = (0..3).map(|_| pool.get().unwrap()).collect();
        let bases: Vec<_> = stacks.iter().map(Stack::base).collect();
        drop(stacks); // drops 0, 1, 2 in order: 2 is on top
        let again: Vec<Stack> = (0..3).map(|_| pool.get().unwrap()).collect();
        let got: Vec<_> = again.iter().map(Stack::base).collect();
        let want: Vec<_> = bases.iter().rev().copied().collect();
        assert_eq!(got, want, "{mode:?}");
    }
}

#[test]
fn recycling_is_lifo_through_the_shared_pool() {
    let pool = pool(GuardMode::GuardInstall, 16 * KIB);
    let stacks: Vec<Stack> = (0..40).map(|_| pool.get().unwrap()).collect();
    let last = stacks.last().unwrap().base();
    drop(stacks);
    StackPool::flush_thread_cache();
    assert_eq!(pool.stats().cached, 40);
    // The newest returned comes back first, now from the shared pool.
    assert_eq!(pool.get().unwrap().base(), last);
}

/// Two threads that carve new stacks by turns each carve from a slab of
/// their own: each one's stacks are neighbouring slots, and the two runs
/// do not interleave (a fiber ring split between two workers runs faster
/// so; see `Shared::take`).
#[test]
fn threads_carving_by_turns_carve_from_slabs_of_their_own() {
    for mode in modes() {
        let pool = pool(mode, 16 * KIB);
        let turn = std::sync::Arc::new(std::sync::Barrier::new(2));
        let carve = |turn: std::sync::Arc<std::sync::Barrier>, pool: StackPool| {
            move || {
                let mut held = Vec::new();
                for _ in 0..8 {
                    turn.wait();
                    held.push(pool.get().unwrap());
                }
                let mut bases: Vec<usize> =
                    held.iter().map(|s| s.base().as_ptr() as usize).collect();
                bases.sort_unstable();
                turn.wait(); // both have carved all they hold
                bases
            }
        };
        let a = std::thread::spawn(carve(turn.clone(), pool.clone()));
        let b = std::thread::spawn(carve(turn, pool.clone()));
        let (a, b) = (a.join().unwrap(), b.join().unwrap());
        let stride = pool.stack_size() + pool.guard_size();
        for bases in [&a, &b] {
            for pair in bases.windows(2) {
                assert_eq!(pair[1] - pair[0], stride, "{mode:?}: {bases:x?}");
            }
        }
        assert!(
            a.last() < b.first() || b.last() < a.first(),
            "{mode:?}: interleaved: {a:x?} and {b:x?}"
        );
    }
}

/// Past 64 threads carving at once, threads share slabs: a pool used by
/// many threads does not map a slab (up to 1 GiB of address space) for
/// each.
#[test]
fn many_threads_carving_at_once_share_slabs_past_64() {
    let pool = pool(GuardMode::GuardInstall, 16 * KIB);
    if pool.guard_mode() != GuardMode::GuardInstall {
        return; // mprotect mode counts a mapping per guard, not per slab
    }
    let threads = 80;
    let all = std::sync::Arc::new(std::sync::Barrier::new(threads + 1));
    let carvers: Vec<_> = (0..threads)
        .map(|_| {
            let (all, pool) = (all.clone(), pool.clone());
            std::thread::spawn(move || {
                all.wait();
                let stack = pool.get().unwrap();
                all.wait(); // every thread holds its stack
                all.wait(); // the main thread has counted
                drop(stack);
            })
        })
        .collect();
    all.wait();
    all.wait();
    let stats = pool.stats();
    all.wait();
    for carver in carvers {
        carver.join().unwrap();
    }
    assert_eq!(stats.live, threads);
    assert!(
        stats.mappings <= 64 + 2,
        "{} slabs for {threads} stacks",
        stats.mappings
    );
}

#[test]
fn stacks_of_two_pools_do_not_mix() {
    let a = pool(GuardMode::GuardInstall, 16 * KIB);
    let b = pool(GuardMode::GuardInstall, 32 * KIB);
    let from_a: Vec<Stack> = (0..5).map(|_| a.get().unwrap()).collect();
    let a_bases: Vec<_> = from_a.iter().map(Stack::base).collect();
    drop(from_a); // this thread's cache now holds a's stacks
    assert_eq!(a.stats().cached, 5);

    // Getting from b flushes a's stacks back to a, never hands them out.
    let from_b: Vec<Stack> = (0..5).map(|_| b.get().unwrap()).collect();
    for s in &from_b {
        assert!(!a_bases.contains(&s.base()));
        assert_eq!(s.size(), 32 * KIB);
    }
    assert_eq!(a.stats().cached, 5);
    assert_eq!(b.stats().live, 5);
    drop(from_b);
    // And a gets its own back.
    let again = a.get().unwrap();
    assert!(a_bases.contains(&again.base()));
    assert_eq!(again.size(), 16 * KIB);
    assert_eq!((b.stats().cached, b.stats().live), (5, 0));
}

#[test]
fn thread_cache_is_flushed_at_thread_exit() {
    let pool = pool(GuardMode::GuardInstall, 16 * KIB);
    let p = pool.clone();
    std::thread::spawn(move || {
        let stacks: Vec<Stack> = (0..5).map(|_| p.get().unwrap()).collect();
        drop(stacks);
        let stats = p.stats();
        assert_eq!((stats.live, stats.cached), (0, 5));
        // Nothing reached the shared pool yet: they are in this thread's cache.
        assert_eq!(p.trim(), 0);
    })
    .join()
    .unwrap();
    let stats = pool.stats();
    assert_eq!(
        (stats.live, stats.cached, stats.carved),
        (0, 5, 5),
        "{stats:?}"
    );
    // Now they are in the shared pool, where trim sees them.
    assert_eq!(pool.trim(), 5);
}

#[test]
fn a_stack_can_be_returned_on_another_thread() {
    let pool = pool(GuardMode::GuardInstall, 16 * KIB);
    let stack = pool.get().unwrap();
    let base = stack.base();
    std::thread::spawn(move || drop(stack)).join().unwrap();
    let stats = pool.stats();
    assert_eq!((stats.live, stats.cached), (0, 1));
    assert_eq!(pool.get().unwrap().base(), base);
}

/// How many slabs (of 16, 32, 64, ... stacks) `n` stacks take.
fn slabs_for(n: usize) -> usize {
    let (mut slabs, mut total) = (0, 0);
    while total < n {
        total += 16 << slabs;
        slabs += 1;
    }
    slabs
}

#[test]
fn stats_are_exact() {
    for mode in modes() {
        let pool = pool(mode, 16 * KIB);
        // Slabs hold 16, 32, 64, ... stacks; guard-install costs one
        // mapping per slab, mprotect two per stack.
        let per_stack_maps = |n: usize| match pool.guard_mode() {
            GuardMode::Mprotect => 2 * n,
            _ => slabs_for(n),
        };
        let s = pool.stats();
        assert_eq!((s.live, s.cached, s.carved, s.mappings), (0, 0, 0, 0));
        assert_eq!((s.guard_mode, s.max_stacks), (pool.guard_mode(), None));

        let one = pool.get().unwrap();
        let s = pool.stats();
        assert_eq!((s.live, s.cached, s.carved), (1, 0, 1), "{mode:?}");
        assert_eq!(s.mappings, per_stack_maps(1), "{mode:?}");

        // The first slab holds 16 stacks; the 17th maps a second one.
        let mut more: Vec<Stack> = (0..16).map(|_| pool.get().unwrap()).collect();
        let s = pool.stats();
        assert_eq!((s.live, s.cached, s.carved), (17, 0, 17), "{mode:?}");
        assert_eq!(s.mappings, per_stack_maps(17), "{mode:?}: {s:?}");

        drop(one);
        more.truncate(6);
        let s = pool.stats();
        assert_eq!((s.live, s.cached, s.carved), (6, 11, 17), "{mode:?}");
        drop(more);
        StackPool::flush_thread_cache();
        let s = pool.stats();
        assert_eq!((s.live, s.cached, s.carved), (0, 17, 17), "{mode:?}");
        // Recycling maps nothing new.
        let again: Vec<Stack> = (0..17).map(|_| pool.get().unwrap()).collect();
        let s = pool.stats();
        assert_eq!((s.live, s.cached, s.carved), (17, 0, 17), "{mode:?}");
        assert_eq!(s.mappings, per_stack_maps(17), "{mode:?}");
        drop(again);
        println!("{mode:?}: {s:?}");
    }
}

#[test]
fn usable_region_is_readable_and_writable() {
    for mode in modes() {
        let pool = pool(mode, 64 * KIB);
        let page = support::page_size();
        for _ in 0..3 {
            let stack = pool.get().unwrap();
            let limit = stack.limit().as_ptr();
            let base = stack.base().as_ptr();
            assert_eq!(base as usize % 16, 0);
            assert_eq!(limit as usize % page, 0);
            let top = base as usize + 64;
            assert_eq!(top - limit as usize, stack.size());
            let len = top - limit as usize;
            // SAFETY: [limit, top) is the usable region of a stack we own.
            let region = unsafe { std::slice::from_raw_parts_mut(limit, len) };
            for (i, byte) in region.iter_mut().enumerate() {
                *byte = i as u8;
            }
            for (i, byte) in region.iter().enumerate() {
                assert_eq!(*byte, i as u8);
            }
        }
    }
}
#[test]
fn trim_gives_memory_back() {
    for mode in modes() {
        const N: usize = 20;
        let pool = pool(mode, 64 * KIB);
        let page = support::page_size();
        let stacks: Vec<Stack> = (0..N).map(|_| pool.get().unwrap()).collect();
        let ranges: Vec<(usize, usize)> = stacks
            .iter()
            .map(|s| (s.limit().as_ptr() as usize, s.size()))
            .collect();
        for &(limit, len) in &ranges {
            for off in (0..len).step_by(page) {
                // SAFETY: inside the usable region of a stack we own.
                unsafe { ((limit + off) as *mut u8).write_volatile(0xAA) };
            }
            assert_eq!(support::resident_pages(limit as *const u8, len), len / page);
        }
        drop(stacks);
        StackPool::flush_thread_cache();
        assert_eq!(pool.trim(), N, "{mode:?}");
        for &(limit, len) in &ranges {
            assert_eq!(
                support::resident_pages(limit as *const u8, len),
                0,
                "{mode:?}"
            );
        }
        assert_eq!(pool.trim(), 0);
        // Trimmed stacks come back zeroed and still usable.
        let again = pool.get().unwrap();
        // SAFETY: the lowest usable byte of a stack we own.
        assert_eq!(unsafe { again.limit().as_ptr().read_volatile() }, 0);
        assert_eq!(pool.stats().cached, N - 1);
    }
}

#[test]
fn the_shared_pool_keeps_at_most_max_cached_committed() {
    const N: usize = 64;
    const MAX_CACHED: usize = 8;
    let pool = StackPool::builder()
        .stack_size(32 * KIB)
        .max_cached(MAX_CACHED)
        .build()
        .unwrap();
    let page = support::page_size();
    let stacks: Vec<Stack> = (0..N).map(|_| pool.get().unwrap()).collect();
    let ranges: Vec<(usize, usize)> = stacks
        .iter()
        .map(|s| (s.limit().as_ptr() as usize, s.size()))
        .collect();
    for &(limit, len) in &ranges {
        for off in (0..len).step_by(page) {
            // SAFETY: inside the usable region of a stack we own.
            unsafe { ((limit + off) as *mut u8).write_volatile(0xAA) };
        }
    }
    drop(stacks);
    StackPool::flush_thread_cache();
    let resident: Vec<usize> = ranges
        .iter()
        .map(|&(limit, len)| support::resident_pages(limit as *const u8, len))
        .collect();
    let full = resident.iter().filter(|&&r| r == 32 * KIB / page).count();
    let empty = resident.iter().filter(|&&r| r == 0).count();
    println!(
        "after returning {N} touched stacks with max_cached {MAX_CACHED}: {full} committed, {empty} decommitted"
    );
    assert_eq!((full, empty), (MAX_CACHED, N - MAX_CACHED), "{resident:?}");
    // The committed ones are the newest: the last returned.
    assert!(
        resident[N - MAX_CACHED..].iter().all(|&r| r > 0),
        "{resident:?}"
    );
    assert_eq!(pool.stats().cached, N);
    assert_eq!(pool.trim(), MAX_CACHED);
}

#[test]
fn max_stacks_budget_is_a_clear_error() {
    let pool = StackPool::builder()
        .stack_size(16 * KIB)
        .max_stacks(10)
        .build()
        .unwrap();
    let mut stacks: Vec<Stack> = (0..10).map(|_| pool.get().unwrap()).collect();
    let err = pool.get().expect_err("the 11th stack is over budget");
    assert_eq!(err.kind(), ErrorKind::OutOfMemory);
    let msg = err.to_string();
    assert!(
        msg.contains("max_stacks") && msg.contains("10 stacks"),
        "{msg}"
    );
    assert!(
        msg.contains("raise max_stacks") && msg.contains("fewer live fibers"),
        "{msg}"
    );
    println!("{msg}");
    let s = pool.stats();
    assert_eq!((s.live, s.carved, s.max_stacks), (10, 10, Some(10)));

    stacks.pop();
    stacks.push(pool.get().expect("a returned stack is reused"));
    assert!(pool.get().is_err());
}

/// Counts the whole process's mappings, so it runs alone in a child: the
/// other tests of this binary map and unmap stacks in parallel threads,
/// and one that mapped a few hundred between the two counts failed it
/// (63 -> 1125 -> 339, once in six runs).
#[test]
fn pool_drop_unmaps_its_slabs() {
    if !support::is_child() {
        support::run_child_test("pool_drop_unmaps_its_slabs", &[]);
        return;
    }
    let pool = StackPool::builder()
        .guard_policy(GuardPolicy::Mprotect)
        .stack_size(16 * KIB)
        .build()
        .unwrap();
    let before = support::maps_count();
    let stacks: Vec<Stack> = (0..500).map(|_| pool.get().unwrap()).collect();
    let during = support::maps_count();
    assert!(during >= before + 800, "{before} -> {during}");
    drop(stacks);
    // The thread cache still holds stacks (and so the pool); flush it.
    drop(pool);
    StackPool::flush_thread_cache();
    let after = support::maps_count();
    println!("maps: {before} before, {during} with 500 mprotect-guarded stacks, {after} after");
    // Alone in its process; the margin is for the allocator's own maps.
    assert!(after + 800 < during, "{before} -> {during} -> {after}");
}
#[test]
fn pool_and_stack_auto_traits() {
    fn send_sync<T: Send + Sync>() {}
    fn debug<T: std::fmt::Debug>() {}
    send_sync::<StackPool>();
    send_sync::<Stack>();
    debug::<StackPool>();
    debug::<Stack>();
    debug::<StackError>();
    debug::<weft::stack_pool::StackPoolBuilder>();
    debug::<weft::stack_pool::PoolStats>();
    fn error<T: std::error::Error + Send + Sync + 'static>() {}
    error::<StackError>();
}
