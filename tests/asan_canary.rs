//! TESTING.md 5.2 `asan_canary`: proves the AddressSanitizer job is live.
//! A fiber reads one byte past a `Vec`'s heap buffer, in a child process,
//! and ASan must stop that child with a `heap-buffer-overflow` report
//! naming the fiber's function. If the job ever runs without ASan (a lost
//! `RUSTFLAGS`), or ASan stops seeing fiber stacks, this test fails.
//!
//! Compiled only with the `sanitizer` feature, which `scripts/asan.sh`
//! builds with `-Zsanitizer=address`: without ASan the read would be
//! undefined behaviour, not a report.

#![cfg(feature = "sanitizer")]

mod support;

use std::hint::black_box;

/// The test's name, for re-running it in a child.
const NAME: &str = "a_heap_overflow_in_a_fiber_is_reported";

/// Reads the byte just past the end of `bytes`. Out of line, so that the
/// report has a frame of its own to name.
#[inline(never)]
fn read_one_past_the_end(bytes: &[u8]) -> u8 {
    // SAFETY: none; this is the bug ASan must catch. It runs only in the
    // child, under ASan, which reports the read and stops the process
    // before the value is used.
    unsafe { std::ptr::read_volatile(bytes.as_ptr().add(bytes.len())) }
}

#[test]
fn a_heap_overflow_in_a_fiber_is_reported() {
    if support::is_child() {
        let byte = weft::run(|| {
            weft::spawn(|| {
                // Exactly 16 bytes of heap: the 17th is ASan's redzone.
                let bytes = black_box(vec![7u8; 16]);
                read_one_past_the_end(&bytes)
            })
            .join()
            .unwrap()
        });
        panic!("ASan let a fiber read past a Vec (it read {byte}): is the build instrumented?");
    }
    // The report must reach the child's stderr even if the job sends ASan's
    // output to files (`log_path`), and the child dies at the report, so a
    // leak check at exit would add nothing.
    let options = format!(
        "{}:log_path=stderr:detect_leaks=0",
        std::env::var("ASAN_OPTIONS").unwrap_or_default()
    );
    let out = support::run_child(NAME, &[("ASAN_OPTIONS", &options)]);
    let stderr = support::stderr(&out);
    assert!(
        !out.status.success() && stderr.contains("ERROR: AddressSanitizer: heap-buffer-overflow"),
        "the child was not stopped by a heap-buffer-overflow report:\n{}",
        support::describe(&out)
    );
    assert!(
        stderr.contains("READ of size 1") && stderr.contains("read_one_past_the_end"),
        "the report does not show the fiber's one-byte read:\n{}",
        support::describe(&out)
    );
}
