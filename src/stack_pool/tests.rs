//! Private-access tests of the stack pool: the overflow handler's report
//! (which needs `Stack::set_owner`), the header's life cycle, and the
//! handler module's signal-safety rule.
//!
//! The overflow tests run code on a pool stack without weft's context
//! switch (which lives in `arch/`): [`on_stack`] is a three-instruction
//! test-only helper that points `rsp` at a stack's `base()` and calls a
//! function there. Each overflow runs in a child process of this test
//! binary, through the shared integration-test helpers.

use std::hint::black_box;

use super::stack::{HEADER_SIZE, Header};
use super::{GuardPolicy, Stack, StackPool};

#[path = "../../tests/support/mod.rs"]
mod support;

const KIB: usize = 1024;

/// Calls `f(arg)` with the stack pointer at `base`, then restores it.
///
/// # Safety
///
/// `base` must be the 16-byte aligned top of a writable stack the caller
/// owns, deep enough for `f`, or guarded so that overflowing it faults.
unsafe fn on_stack(base: *mut u8, f: extern "C" fn(u64) -> u64, arg: u64) -> u64 {
    let ret: u64;
    // SAFETY: the caller provides a valid, aligned stack (above). r12 is
    // callee-saved, so `f` preserves the old rsp we keep in it; `call`
    // pushes the return address, so `f` starts with rsp = 8 mod 16, as
    // the System V ABI requires. Caller-saved registers are declared
    // clobbered by `clobber_abi`.
    unsafe {
        std::arch::asm!(
            "mov r12, rsp",
            "mov rsp, {base}",
            "call {f}",
            "mov rsp, r12",
            base = in(reg) base,
            f = in(reg) f,
            inout("rdi") arg => _,
            out("rax") ret,
            out("r12") _,
            clobber_abi("C"),
        );
    }
    ret
}

/// Recurses `depth` times with about 1 KiB frames; returns a checksum so
/// the frames cannot be folded away.
extern "C" fn recurse(depth: u64) -> u64 {
    let frame = black_box([depth as u8; 1024]);
    if depth == 0 {
        return u64::from(frame[3]);
    }
    recurse(depth - 1) + u64::from(frame[5])
}

/// As [`recurse`], printing a line per frame: the overflow may come while
/// this thread holds the stdout lock, which the handler must not need.
extern "C" fn recurse_loud(depth: u64) -> u64 {
    let frame = black_box([depth as u8; 1024]);
    println!("depth {depth}");
    if depth == 0 {
        return u64::from(frame[3]);
    }
    recurse_loud(depth - 1) + u64::from(frame[5])
}

/// Returns the address of one of its locals: where it ran.
extern "C" fn where_am_i(_: u64) -> u64 {
    let local = black_box(0u8);
    black_box(&local as *const u8 as u64)
}

fn pool(policy: GuardPolicy) -> StackPool {
    StackPool::builder()
        .stack_size(16 * KIB)
        .guard_size(4 * KIB)
        .guard_policy(policy)
        .build()
        .unwrap()
}

#[test]
fn on_stack_runs_code_on_a_pool_stack() {
    let stack = pool(GuardPolicy::Auto).get().unwrap();
    let base = stack.base().as_ptr();
    // SAFETY: `base` is the aligned top of our 16 KiB stack; both calls
    // stay well within it.
    let (local, sum) = unsafe { (on_stack(base, where_am_i, 0), on_stack(base, recurse, 5)) };
    let local = local as usize;
    assert!(
        (stack.limit().as_ptr() as usize) < local && local < base as usize,
        "{local:#x} not in {stack:?}"
    );
    assert_eq!(sum, 5 + 4 + 3 + 2 + 1);
}

/// Child: overflows a pool stack. Env: `POLICY` (`auto`/`mprotect`),
/// `OWNER_NAME` (unset = no name), `LOUD` (print in every frame),
/// `NO_ALTSTACK` (on a thread whose altstack was disabled first).
#[test]
fn overflow_child() {
    if !support::is_child() {
        return;
    }
    if std::env::var_os("NO_ALTSTACK").is_some() {
        std::thread::spawn(|| {
            support::disable_altstack();
            overflow_here();
        })
        .join()
        .unwrap();
    } else {
        overflow_here();
    }
}

fn overflow_here() {
    let policy = match std::env::var("POLICY").as_deref() {
        Ok("mprotect") => GuardPolicy::Mprotect,
        _ => GuardPolicy::Auto,
    };
    let pool = pool(policy);
    println!("mode {:?}", pool.guard_mode());
    let stack = pool.get().unwrap();
    let name = std::env::var("OWNER_NAME").ok();
    // SAFETY: `name` lives until the process aborts, after the stack's use.
    unsafe { stack.set_owner(42, name.as_deref()) };
    let f = if std::env::var_os("LOUD").is_some() {
        recurse_loud
    } else {
        recurse
    };
    // SAFETY: the stack is ours and guarded: the recursion faults in the guard.
    let sum = unsafe { on_stack(stack.base().as_ptr(), f, u64::MAX) };
    println!("the recursion returned {sum}");
}

fn overflow_in_child(policy: &str, name: Option<&str>, extra: &[(&str, &str)]) -> String {
    let mut envs = vec![("POLICY", policy)];
    if let Some(name) = name {
        envs.push(("OWNER_NAME", name));
    }
    envs.extend_from_slice(extra);
    let start = std::time::Instant::now();
    let out = support::run_child("stack_pool::tests::overflow_child", &envs);
    let err = support::stderr(&out);
    assert_eq!(
        support::exit_signal(&out),
        Some(libc::SIGABRT),
        "{policy}: {}",
        support::describe(&out)
    );
    assert!(
        err.contains("fatal runtime error: stack overflow, aborting\n"),
        "{err}"
    );
    assert!(!err.contains("thread '"), "blamed on the thread: {err}");
    assert!(!support::stdout(&out).contains("returned"));
    assert!(
        start.elapsed() < std::time::Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    print!("{policy} {extra:?}: {err}");
    err
}

#[test]
fn overflow_names_the_owner_id_in_both_modes() {
    for policy in ["auto", "mprotect"] {
        let err = overflow_in_child(policy, None, &[]);
        assert!(
            err.contains("\nfiber '#42' has overflowed its stack (16 KiB)\n"),
            "{err}"
        );
    }
}

#[test]
fn overflow_names_the_owner_in_both_modes() {
    for policy in ["auto", "mprotect"] {
        let err = overflow_in_child(policy, Some("deep"), &[]);
        assert!(
            err.contains("\nfiber 'deep' has overflowed its stack (16 KiB)\n"),
            "{err}"
        );
    }
}

#[test]
fn overflow_while_holding_the_stdout_lock() {
    for policy in ["auto", "mprotect"] {
        let err = overflow_in_child(policy, Some("loud"), &[("LOUD", "1")]);
        assert!(
            err.contains("\nfiber 'loud' has overflowed its stack (16 KiB)\n"),
            "{err}"
        );
    }
}

#[test]
fn overflow_on_a_thread_that_had_no_altstack() {
    for policy in ["auto", "mprotect"] {
        let err = overflow_in_child(policy, Some("bare"), &[("NO_ALTSTACK", "1")]);
        assert!(
            err.contains("\nfiber 'bare' has overflowed its stack (16 KiB)\n"),
            "{err}"
        );
    }
}

fn header(stack: &Stack) -> &Header {
    // SAFETY: base() is the header's address (see `Stack::header`).
    unsafe { stack.base().cast::<Header>().as_ref() }
}

#[test]
fn header_sits_above_base_and_is_cleared_on_return() {
    let pool = pool(GuardPolicy::Auto);
    let stack = pool.get().unwrap();
    assert_eq!(stack.base().as_ptr() as usize % 64, 0);
    assert_eq!(
        stack.base().as_ptr() as usize + HEADER_SIZE - stack.limit().as_ptr() as usize,
        stack.size()
    );
    let name = String::from("worker-7");
    // SAFETY: `name` outlives the owner record: cleared by drop below.
    unsafe { stack.set_owner(7, Some(&name)) };
    let h = header(&stack);
    use std::sync::atomic::Ordering::Relaxed;
    assert_eq!(h.owner_id.load(Relaxed), 7);
    assert_eq!(h.name_ptr.load(Relaxed), name.as_ptr() as usize);
    assert_eq!(h.name_len.load(Relaxed), 8);
    let base = stack.base();
    drop(stack);
    let again = pool.get().unwrap();
    assert_eq!(again.base(), base);
    let h = header(&again);
    assert_eq!(
        (
            h.owner_id.load(Relaxed),
            h.name_ptr.load(Relaxed),
            h.name_len.load(Relaxed)
        ),
        (0, 0, 0)
    );
    // SAFETY: as above.
    unsafe { again.set_owner(9, None) };
    again.clear_owner();
    assert_eq!(h.owner_id.load(Relaxed), 0);
}

/// CI greps `guard.rs` for these too (TESTING.md 2.8): the handler runs in
/// a signal context and must not allocate or lock.
#[test]
fn the_handler_module_names_nothing_signal_unsafe() {
    let source = include_str!("guard.rs");
    for banned in ["format!", "println!", "Box", "Vec", "String", "Mutex"] {
        assert!(!source.contains(banned), "guard.rs mentions `{banned}`");
    }
}
