//! Tests of the scheduler's parts: plain unit tests here, and loom models
//! of its concurrency protocols in the `loom_*` modules (built only with
//! `--cfg loom`; see README.md for the command).

#[cfg(not(loom))]
mod unit;
