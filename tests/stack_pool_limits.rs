//! The stack pool at the OS's limits, each in a child process (near the map
//! limit every `mmap` in the process fails, the test harness's included):
//!
//! * a million live stacks in guard-install mode, in under 1,000 mappings;
//! * mprotect mode refused cleanly before `vm.max_map_count`, then
//!   recycling without new mappings.
//!
//! Each test prints its figures (mappings, stacks, time).

mod support;

use std::io::ErrorKind;
use std::time::Instant;

use weft::stack_pool::{GuardMode, GuardPolicy, Stack, StackPool};

const KIB: usize = 1024;

#[test]
fn a_million_live_stacks_in_guard_install_mode() {
    if support::is_child() {
        return million_child();
    }
    let start = Instant::now();
    // Guard-install mode whatever WEFT_STACK_GUARD says for the run.
    let out = support::run_child(
        "a_million_live_stacks_in_guard_install_mode",
        &[("WEFT_STACK_GUARD", "guard-install")],
    );
    print!("{}", support::stdout(&out));
    assert!(out.status.success(), "{}", support::describe(&out));
    println!("child took {:.1?} in all", start.elapsed());
}

fn million_child() {
    const N: usize = 1_000_000;
    let pool = StackPool::builder()
        .stack_size(16 * KIB)
        .guard_size(4 * KIB)
        .build()
        .unwrap();
    assert_eq!(
        pool.guard_mode(),
        GuardMode::GuardInstall,
        "this kernel lacks MADV_GUARD_INSTALL"
    );
    let maps_before = support::maps_count();
    let rss_before = support::rss_bytes();
    let start = Instant::now();
    let mut stacks: Vec<Stack> = Vec::with_capacity(N);
    for i in 0..N {
        match pool.get() {
            Ok(stack) => stacks.push(stack),
            Err(e) => panic!("get #{i} failed: {e}"),
        }
    }
    let took = start.elapsed();
    let maps = support::maps_count();
    let stats = pool.stats();
    let rss = support::rss_bytes();
    println!(
        "{N} live stacks (16 KiB + 4 KiB guard) in {took:.2?}: /proc/self/maps {maps_before} -> {maps} lines; \
         pool mappings stat {}; RSS +{} MiB",
        stats.mappings,
        rss.saturating_sub(rss_before) >> 20
    );
    assert!(maps < 1000, "{maps} mappings for {N} stacks");
    assert_eq!((stats.live, stats.carved), (N, N));
    // The stat counts one per slab; the kernel may merge neighbours.
    let ours = maps - maps_before;
    assert!(
        ours <= stats.mappings && stats.mappings <= ours + 64,
        "maps grew by {ours}, stat says {}",
        stats.mappings
    );
    // Every stack is distinct and usable at its top.
    let top = stacks.last().unwrap().base().as_ptr();
    // SAFETY: just below base() is the usable region of a stack we own.
    unsafe { top.sub(8).write_volatile(1) };

    let start = Instant::now();
    drop(stacks);
    StackPool::flush_thread_cache();
    let stats = pool.stats();
    println!("returned all {N} in {:.2?}: {stats:?}", start.elapsed());
    assert_eq!((stats.live, stats.cached), (0, N));
}

#[test]
fn mprotect_mode_stops_cleanly_before_the_map_limit() {
    if support::is_child() {
        return map_limit_child();
    }
    let start = Instant::now();
    let out = support::run_child("mprotect_mode_stops_cleanly_before_the_map_limit", &[]);
    print!("{}", support::stdout(&out));
    assert!(out.status.success(), "{}", support::describe(&out));
    println!("child took {:.1?} in all", start.elapsed());
}

fn map_limit_child() {
    let max_map_count: usize = std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let pool = StackPool::builder()
        .stack_size(16 * KIB)
        .guard_size(4 * KIB)
        .guard_policy(GuardPolicy::Mprotect)
        .build()
        .unwrap();
    assert_eq!(pool.guard_mode(), GuardMode::Mprotect);
    let maps_before = support::maps_count();
    let start = Instant::now();
    let mut stacks: Vec<Stack> = Vec::with_capacity(40_000);
    let err = loop {
        match pool.get() {
            Ok(stack) => stacks.push(stack),
            Err(e) => break e,
        }
        assert!(stacks.len() <= 70_000, "no refusal in sight");
    };
    let took = start.elapsed();
    let reached = stacks.len();
    let maps_at_limit = support::maps_count();
    let stats_at_limit = pool.stats();
    println!(
        "mprotect mode, vm.max_map_count={max_map_count}: refused after {reached} live stacks in {took:.2?}; \
         /proc/self/maps {maps_before} -> {maps_at_limit}; pool mappings stat {}",
        pool.stats().mappings
    );
    println!("error: {err}");
    if max_map_count == 65_530 {
        assert!(
            (30_000..=32_760).contains(&reached),
            "{reached} stacks before the refusal"
        );
    }
    assert_eq!(err.kind(), ErrorKind::OutOfMemory);
    let msg = err.to_string();
    assert!(msg.contains("sysctl -w vm.max_map_count="), "{msg}");
    assert!(msg.contains("2 memory mappings per stack"), "{msg}");
    assert!(msg.contains("MADV_GUARD_INSTALL"), "{msg}");
    // The process still works near the limit: malloc can still mmap.
    drop(std::hint::black_box(vec![0u8; 1 << 20]));

    // Recycling needs no new mapping.
    stacks.truncate(reached - 1000);
    for i in 0..1000 {
        match pool.get() {
            Ok(stack) => stacks.push(stack),
            Err(e) => panic!("re-get #{i} after returning 1,000 failed: {e}"),
        }
    }
    assert_eq!(stacks.len(), reached);
    let stats = pool.stats();
    assert_eq!(
        (stats.carved, stats.mappings, stats.live),
        (stats_at_limit.carved, stats_at_limit.mappings, reached)
    );
    let maps = support::maps_count();
    assert!(maps <= maps_at_limit + 2, "{maps_at_limit} -> {maps}");
    assert!(pool.get().is_err(), "still at the limit");
    println!("returned 1,000 and got 1,000 again with no new mapping ({maps} maps)");

    // Dropping the pool gives every mapping back.
    drop(stacks);
    drop(pool);
    StackPool::flush_thread_cache();
    let after = support::maps_count();
    println!("after dropping the pool: {after} mappings");
    assert!(after <= maps_before + 8, "{maps_before} -> {after}");
}
