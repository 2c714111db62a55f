//! Tests of `sync`'s protocols that need private access: loom models
//! (built only with `--cfg loom`), which drive the real channel and mutex
//! code through loom's primitives (`crate::loom`), with loom threads
//! standing in for fibers (`waiter::park`).
//!
//! Each model has a twin with a planted bug that loom must reject. A bug is
//! planted in the real code behind [`planted`](crate::loom::mutation::planted), which exists only
//! in loom builds; the twin runs in a child process (loom aborts the whole
//! process when it tears down a deadlocked model) with the mutation's name
//! in its environment, and the test checks the child failed with loom's
//! diagnosis (as in `src/sched/tests/`).
//!
//! Run: `RUSTFLAGS="--cfg loom -C force-frame-pointers=yes -C debug-assertions"
//! LOOM_MAX_PREEMPTIONS=3 CARGO_TARGET_DIR=target/loom cargo test --release --lib loom_`

#[cfg(all(test, loom))]
mod loom_chan;
#[cfg(all(test, loom))]
mod loom_mutex;
