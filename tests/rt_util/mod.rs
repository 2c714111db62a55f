//! Helpers for the `rt_shutdown*` tests that name weft's types: a runtime
//! of a given size, a timed drop, and the check that a join saw the
//! shutdown's cancellation.
//!
//! They live here and not in `support`, which cannot name `weft`: the
//! crate's own unit tests include `support/mod.rs` too
//! (`src/stack_pool/tests.rs`), and there `weft` is not a crate name.

#![allow(
    unreachable_pub,
    reason = "a test crate's modules are private; `pub` marks what test files use"
)]

use std::time::{Duration, Instant};

use weft::Runtime;

/// A runtime with `workers` workers.
pub fn runtime(workers: usize) -> Runtime {
    Runtime::builder()
        .workers(workers)
        .build()
        .expect("a runtime")
}

/// Drops `rt`, returning how long the drop took.
pub fn timed_drop(rt: Runtime) -> Duration {
    let start = Instant::now();
    drop(rt);
    start.elapsed()
}

/// A generous bound for "the drop returned promptly": a drop that waits
/// for a sleeping fiber or a blocked worker would take far longer.
pub const PROMPT: Duration = Duration::from_secs(10);

/// Panics (naming `what`) unless `result` is a `JoinError` that says its
/// fiber was cancelled by the runtime's shutdown, with that message.
pub fn assert_cancelled<T: std::fmt::Debug>(result: Result<T, weft::JoinError>, what: &str) {
    match result {
        Err(err) if err.is_cancelled() => {
            assert_eq!(
                err.to_string(),
                "the fiber was cancelled: its runtime shut down"
            );
        }
        other => panic!("{what}: expected a cancelled JoinError, got {other:?}"),
    }
}
