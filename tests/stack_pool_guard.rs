//! Integration tests of the stack pool's guards: they fault in both modes,
//! faults that are not fiber overflows are left to the previous handler
//! (std's), the guard mode follows the policy and `WEFT_STACK_GUARD`, and
//! threads without an alternate signal stack get one.
//!
//! Tests that must crash run in a child process (`support::run_child`).

mod support;

use weft::stack_pool::{GuardMode, GuardPolicy, StackPool, ensure_thread_altstack};

const KIB: usize = 1024;

/// The mode an `Auto` pool gets here: guard-install on Linux 6.13+ unless
/// `WEFT_STACK_GUARD=mprotect` is set for the whole run.
fn expected_auto_mode() -> GuardMode {
    let forced = std::env::var("WEFT_STACK_GUARD").as_deref() == Ok("mprotect");
    if forced || !support::kernel_at_least(6, 13) {
        GuardMode::Mprotect
    } else {
        GuardMode::GuardInstall
    }
}

/// Child: writes one byte just below `limit()` (the top of the guard) from
/// this thread's own stack.
#[test]
fn guard_faults_child() {
    if !support::is_child() {
        return;
    }
    let policy = match std::env::var("WEFT_STACK_GUARD").as_deref() {
        Ok("mprotect") => GuardPolicy::Mprotect,
        _ => GuardPolicy::Auto,
    };
    let offset: usize = std::env::var("GUARD_OFFSET").unwrap().parse().unwrap();
    let pool = StackPool::builder()
        .stack_size(16 * KIB)
        .guard_size(4 * KIB)
        .guard_policy(policy)
        .build()
        .unwrap();
    if policy == GuardPolicy::Auto {
        assert_eq!(pool.guard_mode(), expected_auto_mode());
    }
    println!("mode {:?}", pool.guard_mode());
    let stack = pool.get().unwrap();
    let target = (stack.limit().as_ptr() as usize - offset) as *mut u8;
    println!(
        "writing to {target:p}, {offset} bytes below limit {:p}",
        stack.limit()
    );
    // SAFETY: none: this write must fault.
    unsafe { target.write_volatile(1) };
    println!("the write did not fault");
}

#[test]
fn guard_really_guards_in_both_modes() {
    for mode in ["guard-install", "mprotect"] {
        for offset in ["1", "4096"] {
            let out = support::run_child(
                "guard_faults_child",
                &[("WEFT_STACK_GUARD", mode), ("GUARD_OFFSET", offset)],
            );
            let err = support::stderr(&out);
            assert_eq!(
                support::exit_signal(&out),
                Some(libc::SIGSEGV),
                "{mode} offset {offset}: {}",
                support::describe(&out)
            );
            // rsp was not on that stack: not an overflow, not claimed.
            assert!(!err.contains("overflowed"), "{mode}: {err}");
            assert!(!support::stdout(&out).contains("did not fault"));
        }
    }
}

/// Child: a plain thread overflows its own stack with a pool in place.
#[test]
fn thread_overflow_child() {
    if !support::is_child() {
        return;
    }
    fn recurse(n: u64) -> u64 {
        let buf = std::hint::black_box([n as u8; 512]);
        if n == 0 {
            0
        } else {
            recurse(n - 1) + u64::from(buf[7])
        }
    }
    let pool = StackPool::new().unwrap();
    let _stack = pool.get().unwrap();
    std::thread::Builder::new()
        .name("deep-thread".into())
        .stack_size(256 * KIB)
        .spawn(|| recurse(u64::MAX))
        .unwrap()
        .join()
        .unwrap();
}

#[test]
fn thread_overflow_is_still_reported_by_std() {
    let out = support::run_child("thread_overflow_child", &[]);
    let err = support::stderr(&out);
    assert_eq!(
        support::exit_signal(&out),
        Some(libc::SIGABRT),
        "{}",
        support::describe(&out)
    );
    assert!(
        err.contains("thread 'deep-thread'") && err.contains("has overflowed its stack"),
        "{err}"
    );
    assert!(!err.contains("fiber '"), "{err}");
}

/// Child: a null-page write with a pool in place.
#[test]
fn null_write_child() {
    if !support::is_child() {
        return;
    }
    let pool = StackPool::new().unwrap();
    let _stack = pool.get().unwrap();
    let null = std::hint::black_box(16usize) as *mut u8;
    // SAFETY: none: this write must fault.
    unsafe { null.write_volatile(1) };
}

#[test]
fn non_fiber_faults_are_not_claimed() {
    let out = support::run_child("null_write_child", &[]);
    let err = support::stderr(&out);
    assert_eq!(
        support::exit_signal(&out),
        Some(libc::SIGSEGV),
        "{}",
        support::describe(&out)
    );
    assert!(
        !err.contains("fiber '") && !err.contains("overflowed"),
        "{err}"
    );
}

#[test]
fn mprotect_policy_gives_mprotect_mode() {
    let pool = StackPool::builder()
        .guard_policy(GuardPolicy::Mprotect)
        .build()
        .unwrap();
    assert_eq!(pool.guard_mode(), GuardMode::Mprotect);
    assert_eq!(pool.stats().guard_mode, GuardMode::Mprotect);
}

#[test]
fn auto_policy_gives_guard_install_on_this_kernel() {
    let pool = StackPool::new().unwrap();
    assert_eq!(pool.guard_mode(), expected_auto_mode());
    println!(
        "kernel {}: Auto gives {:?}",
        std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim(),
        pool.guard_mode()
    );
}

/// Child: prints the mode an `Auto` pool gets under the environment given.
#[test]
fn env_mode_child() {
    if !support::is_child() {
        return;
    }
    let auto = StackPool::new().unwrap().guard_mode();
    let forced = StackPool::builder()
        .guard_policy(GuardPolicy::Mprotect)
        .build()
        .unwrap();
    println!("MODE={auto:?} FORCED={:?}", forced.guard_mode());
}

#[test]
fn weft_stack_guard_env_selects_the_mode() {
    let native = if support::kernel_at_least(6, 13) {
        "GuardInstall"
    } else {
        "Mprotect"
    };
    for (value, want) in [
        ("mprotect", "Mprotect"),
        ("guard-install", native),
        ("", native),
        ("no-such-mode", native), // ignored, no crash
    ] {
        let out = support::run_child("env_mode_child", &[("WEFT_STACK_GUARD", value)]);
        assert!(out.status.success(), "{value}: {}", support::describe(&out));
        let stdout = support::stdout(&out);
        assert!(
            stdout.contains(&format!("MODE={want} FORCED=Mprotect")),
            "{value:?}: {stdout}"
        );
    }
}

#[test]
fn a_thread_without_altstack_gets_one() {
    std::thread::spawn(|| {
        support::disable_altstack();
        assert_ne!(support::current_altstack().ss_flags & libc::SS_DISABLE, 0);
        let maps = support::maps_count();
        ensure_thread_altstack();
        let cur = support::current_altstack();
        assert_eq!(cur.ss_flags & libc::SS_DISABLE, 0);
        assert_eq!(cur.ss_size, 64 * KIB);
        // Idempotent and cheap: the same stack stays.
        ensure_thread_altstack();
        assert_eq!(support::current_altstack().ss_sp, cur.ss_sp);
        println!(
            "altstack at {:p}, {} bytes; maps {maps} -> {}",
            cur.ss_sp,
            cur.ss_size,
            support::maps_count()
        );
    })
    .join()
    .unwrap();
}

#[test]
fn a_thread_with_altstack_keeps_its_own() {
    std::thread::spawn(|| {
        let before = support::current_altstack();
        assert_eq!(
            before.ss_flags & libc::SS_DISABLE,
            0,
            "std gives its threads one"
        );
        ensure_thread_altstack();
        let after = support::current_altstack();
        assert_eq!((after.ss_sp, after.ss_size), (before.ss_sp, before.ss_size));
    })
    .join()
    .unwrap();
}

#[test]
fn get_installs_an_altstack_on_a_thread_without_one() {
    std::thread::spawn(|| {
        support::disable_altstack();
        let _stack = StackPool::global().get().unwrap();
        assert_eq!(support::current_altstack().ss_size, 64 * KIB);
    })
    .join()
    .unwrap();
}
