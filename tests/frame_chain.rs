//! The frame-pointer chain and DWARF CFI cross from a coroutine's stack to
//! the code that resumed it.

use std::backtrace::Backtrace;
use std::hint::black_box;

use weft::coroutine::{Coroutine, CoroutineResult, Yielder};

/// Reads rbp: the frame record of the function that inlines this.
#[inline(always)]
fn frame_pointer() -> usize {
    let fp: usize;
    // SAFETY: reads a register, touches no memory.
    unsafe {
        std::arch::asm!("mov {}, rbp", out(reg) fp, options(nomem, nostack, preserves_flags))
    };
    fp
}

/// [low, high) of the calling thread's stack.
fn thread_stack() -> (usize, usize) {
    // SAFETY: pthread_getattr_np fills `attr` for the calling thread; we
    // destroy it after reading the stack bounds.
    unsafe {
        let mut attr: libc::pthread_attr_t = std::mem::zeroed();
        assert_eq!(libc::pthread_getattr_np(libc::pthread_self(), &mut attr), 0);
        let mut addr = std::ptr::null_mut();
        let mut size = 0;
        assert_eq!(libc::pthread_attr_getstack(&attr, &mut addr, &mut size), 0);
        libc::pthread_attr_destroy(&mut attr);
        (addr as usize, addr as usize + size)
    }
}

/// One frame record of the walk.
#[derive(Debug)]
struct Record {
    fp: usize,
    ret: usize,
    on_fiber: bool,
}

/// Walks rbp from the caller's frame, checking each record lies in the
/// fiber stack or the thread stack, rises within a stack, and crosses from
/// the fiber to the thread at most once. The chain must end with fp == 0
/// (glibc's thread and process start clear rbp) within 128 records.
fn walk(fiber: (usize, usize), thread: (usize, usize)) -> Vec<Record> {
    let mut records = Vec::new();
    let mut fp = frame_pointer();
    let mut crossed = false;
    while fp != 0 {
        let on_fiber = (fiber.0..fiber.1).contains(&fp);
        let on_thread = (thread.0..thread.1).contains(&fp);
        assert!(
            on_fiber || on_thread,
            "frame record {fp:#x} is on neither the fiber's stack nor the thread's: {records:#x?}"
        );
        assert_eq!(fp % 16, 0, "misaligned frame record {fp:#x}");
        if let Some(prev) = records.last() {
            let prev: &Record = prev;
            if prev.on_fiber && !on_fiber {
                assert!(!crossed, "crossed stacks twice: {records:#x?}");
                crossed = true;
            } else {
                assert_eq!(
                    prev.on_fiber, on_fiber,
                    "went back onto the fiber stack: {records:#x?}"
                );
                assert!(
                    fp > prev.fp,
                    "frame records must rise within a stack: {records:#x?}"
                );
            }
        }
        // SAFETY: fp is an aligned address inside one of the two live
        // stacks, holding a frame record [next fp, return address].
        let (next, ret) = unsafe { (*(fp as *const usize), *((fp + 8) as *const usize)) };
        records.push(Record { fp, ret, on_fiber });
        assert!(records.len() <= 128, "runaway frame chain: {records:#x?}");
        fp = next;
    }
    assert!(crossed, "never reached the resumer's stack: {records:#x?}");
    records
}

/// The functions each return address is in, innermost inlined frame
/// first, flattened in call order.
fn symbol_names(records: &[Record]) -> Vec<String> {
    let mut names = Vec::new();
    for r in records {
        let mut here = Vec::new();
        backtrace::resolve((r.ret - 1) as *mut std::ffi::c_void, |sym| {
            here.push(
                sym.name()
                    .map_or_else(|| "?".to_string(), |n| format!("{n:#}")),
            );
        });
        if here.is_empty() {
            here.push("?".to_string());
        }
        names.extend(here);
    }
    names
}

#[inline(never)]
fn leaf_c(fiber: (usize, usize), thread: (usize, usize)) -> Vec<String> {
    let names = symbol_names(&walk(fiber, thread));
    black_box(names)
}

#[inline(never)]
fn middle_b(fiber: (usize, usize), thread: (usize, usize)) -> Vec<String> {
    let names = leaf_c(black_box(fiber), thread);
    black_box(names)
}

#[inline(never)]
fn outer_a(fiber: (usize, usize), thread: (usize, usize)) -> Vec<String> {
    let mut names = middle_b(fiber, black_box(thread));
    names.push(String::new());
    names.pop();
    black_box(names)
}

#[inline(never)]
fn resumer_of_the_walk(c: &mut Coroutine<(usize, usize), Vec<String>, ()>) -> Vec<String> {
    let stack = c.stack().expect("not started yet");
    let fiber = (
        stack.limit().as_ptr() as usize,
        stack.base().as_ptr() as usize,
    );
    let out = c
        .resume(fiber)
        .as_yield()
        .expect("the body yields its walk");
    black_box(out)
}

#[test]
fn rbp_walk_from_a_coroutine_reaches_its_resumer_and_ends_cleanly() {
    let thread = thread_stack();
    let mut c = Coroutine::new(move |y: &Yielder<(usize, usize), Vec<String>>, fiber| {
        y.suspend(outer_a(fiber, thread));
    });
    let names = resumer_of_the_walk(&mut c);
    // Debug builds resolve full paths, release builds (line tables only)
    // the short names of inlined frames: accept both.
    let position = |needle: &str| {
        let short = needle.trim_start_matches("::");
        names.iter().position(|n| n == short || n.ends_with(needle))
    };
    let a = position("::outer_a").unwrap_or_else(|| panic!("no outer_a in {names:#?}"));
    let b = position("::middle_b").unwrap_or_else(|| panic!("no middle_b in {names:#?}"));
    let tramp =
        position("::fiber_trampoline").unwrap_or_else(|| panic!("no trampoline in {names:#?}"));
    let resumer =
        position("::resumer_of_the_walk").unwrap_or_else(|| panic!("no resumer in {names:#?}"));
    let test = position("::rbp_walk_from_a_coroutine_reaches_its_resumer_and_ends_cleanly")
        .unwrap_or_else(|| panic!("no test fn in {names:#?}"));
    assert!(
        b < a && a < tramp && tramp < resumer && resumer < test,
        "out of order: {names:#?}"
    );
    assert_eq!(
        names
            .iter()
            .filter(|n| n.ends_with("fiber_trampoline"))
            .count(),
        1,
        "one trampoline frame: {names:#?}"
    );
}

#[inline(never)]
fn resumer_marker_one(c: &mut Coroutine<(), String, ()>) -> String {
    let trace = c.resume(()).as_yield().unwrap();
    black_box(trace)
}

#[inline(never)]
fn resumer_marker_two(c: &mut Coroutine<(), String, ()>) -> String {
    let trace = c.resume(()).as_yield().unwrap();
    black_box(trace.len());
    black_box(trace)
}

#[test]
fn backtrace_inside_a_coroutine_names_each_resumer() {
    let mut c = Coroutine::new(|y: &Yielder<(), String>, ()| {
        y.suspend(Backtrace::force_capture().to_string());
        y.suspend(Backtrace::force_capture().to_string());
    });
    let first = resumer_marker_one(&mut c);
    assert!(first.contains("resumer_marker_one"), "{first}");
    let second = resumer_marker_two(&mut c);
    assert!(
        second.contains("resumer_marker_two"),
        "the link is rewritten on every resume: {second}"
    );
    assert!(!second.contains("resumer_marker_one"), "{second}");
    assert!(
        second.contains("backtrace_inside_a_coroutine_names_each_resumer"),
        "{second}"
    );
    assert_eq!(c.resume(()), CoroutineResult::Return(()));
}

#[test]
fn backtrace_crosses_nested_coroutines() {
    let mut outer = Coroutine::new(|y: &Yielder<(), String>, ()| {
        let mut inner = Coroutine::new(|yi: &Yielder<(), String>, ()| {
            yi.suspend(Backtrace::force_capture().to_string());
        });
        let trace = inner_resumer(&mut inner);
        y.suspend(trace);
    });
    #[inline(never)]
    fn inner_resumer(c: &mut Coroutine<(), String, ()>) -> String {
        let t = c.resume(()).as_yield().unwrap();
        black_box(t)
    }
    let trace = resumer_marker_one(&mut outer);
    assert!(trace.contains("inner_resumer"), "{trace}");
    assert!(trace.contains("resumer_marker_one"), "{trace}");
}

/// A fiber that a worker's hand-off switched into (it parked, another
/// fiber unparked it and then parked itself, and the worker's next fiber
/// went straight to it, not through the worker's loop) has the same chain
/// as one its worker resumed: fiber frames, one trampoline, then the
/// worker's own frames down to the thread's start.
#[test]
fn rbp_walk_from_a_fiber_entered_by_a_hand_off_reaches_the_worker_thread() {
    const STACK: usize = 256 * 1024;
    let rt = weft::Runtime::builder()
        .workers(1)
        .stack_size(STACK)
        .build()
        .unwrap();
    let names = rt.block_on(|| {
        let main = weft::fiber::current();
        let partner = weft::spawn(move || {
            // Each park here is followed by the main fiber's unpark and
            // then its own park: with one worker, the main fiber's park
            // hands the thread straight back to this fiber.
            for _ in 0..10 {
                main.unpark();
                weft::fiber::park();
            }
            let fp = frame_pointer();
            // The walk starts a few frames deeper (lower) than this one.
            outer_a((fp - 64 * 1024, fp + STACK), thread_stack())
        });
        for _ in 0..10 {
            weft::fiber::park();
            partner.fiber().unpark();
        }
        partner.join().unwrap()
    });
    let position = |needle: &str| {
        let short = needle.trim_start_matches("::");
        names.iter().position(|n| n == short || n.ends_with(needle))
    };
    let a = position("::outer_a").unwrap_or_else(|| panic!("no outer_a in {names:#?}"));
    let tramp =
        position("::fiber_trampoline").unwrap_or_else(|| panic!("no trampoline in {names:#?}"));
    let worker = position("::run_task").unwrap_or_else(|| panic!("no worker in {names:#?}"));
    assert!(a < tramp && tramp < worker, "out of order: {names:#?}");
    assert_eq!(
        names
            .iter()
            .filter(|n| n.ends_with("fiber_trampoline"))
            .count(),
        1,
        "one trampoline frame: {names:#?}"
    );
}
