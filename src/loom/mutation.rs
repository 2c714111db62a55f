//! Planted bugs for the loom models' twins (in `sched/` and `sync/`), and
//! the child-process runner that checks loom rejects them.

use std::process::Command;
use std::sync::OnceLock;

/// Names the planted bug in the child's environment.
const MUTANT_ENV: &str = "WEFT_LOOM_MUTANT";

/// Whether the bug `name` is planted in this process (a mutant child).
pub(crate) fn planted(name: &str) -> bool {
    static PLANTED: OnceLock<Option<String>> = OnceLock::new();
    PLANTED
        .get_or_init(|| std::env::var(MUTANT_ENV).ok())
        .as_deref()
        == Some(name)
}

/// Whether this process is a mutant child.
pub(crate) fn is_mutant_run() -> bool {
    std::env::var_os(MUTANT_ENV).is_some()
}

/// Re-runs the test `test` (its path from the crate root) in a child with
/// the bug `bug` planted, and asserts that loom rejected it with one of
/// `diagnoses`.
pub(crate) fn expect_rejected(test: &str, bug: &str, diagnoses: &[&str]) {
    let exe = std::env::current_exe().expect("the test binary");
    let out = Command::new(exe)
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(MUTANT_ENV, bug)
        .output()
        .expect("run the mutant");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("running 1 test"),
        "the mutant {test} did not run:\n{stdout}\n{stderr}"
    );
    assert!(
        !out.status.success(),
        "loom accepted the mutant {bug} of {test}:\n{stdout}\n{stderr}"
    );
    assert!(
        diagnoses.iter().any(|d| stderr.contains(d)),
        "the mutant {bug} of {test} failed, but not with {diagnoses:?}:\n{stderr}"
    );
    println!("mutant {bug} rejected by loom, as it must be");
}
