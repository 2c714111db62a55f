//! Tests of the scheduler's parts: plain unit tests, and loom models of its
//! concurrency protocols (built only with `--cfg loom`).
//!
//! The models never switch stacks: a fiber is a step machine whose "stack"
//! is a `loom::cell::UnsafeCell`, so two threads running it at once is a
//! causality violation loom reports. They drive the real protocol code
//! (`fiber/state.rs`, `fiber/join.rs`, `sched/{park,idle,inbox,queue}.rs`,
//! through loom's primitives) and mirror the few worker steps around it,
//! step by step, naming the worker function each mirrors. Each model has a
//! twin with a planted bug that must fail, which proves the model can see
//! the bug it is about. A mutant runs in a child process (loom aborts the
//! whole process when a deadlocked model is torn down), and the test
//! checks that the child failed with loom's diagnosis.
//!
//! Run: `RUSTFLAGS="--cfg loom -C force-frame-pointers=yes" LOOM_MAX_PREEMPTIONS=2
//! cargo test --release --lib loom_` (see README.md).

#[cfg(not(loom))]
mod counts;
#[cfg(loom)]
mod loom_go_idle;
#[cfg(loom)]
mod loom_idle;
#[cfg(loom)]
mod loom_join;
#[cfg(loom)]
mod loom_park;
#[cfg(not(loom))]
mod unit;
