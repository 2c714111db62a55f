//! Running a model with a planted bug in a child process.

use std::process::Command;

/// Set in the child: run the mutant model.
const MUTANT_ENV: &str = "WEFT_LOOM_MUTANT";

/// Whether this process is the child that runs the mutant.
pub(super) fn is_mutant_run() -> bool {
    std::env::var_os(MUTANT_ENV).is_some()
}

/// Re-runs the test `name` (its path from the crate root) in a child that
/// runs the mutant, and asserts that loom rejected it with one of
/// `diagnoses` (e.g. "deadlock", "Causality violation").
pub(super) fn expect_rejected(name: &str, diagnoses: &[&str]) {
    let exe = std::env::current_exe().expect("the test binary");
    let out = Command::new(exe)
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(MUTANT_ENV, "1")
        .output()
        .expect("run the mutant");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("running 1 test"),
        "the mutant {name} did not run:\n{stdout}\n{stderr}"
    );
    assert!(
        !out.status.success(),
        "loom accepted the mutant {name}:\n{stdout}\n{stderr}"
    );
    assert!(
        diagnoses.iter().any(|d| stderr.contains(d)),
        "the mutant {name} failed, but not with {diagnoses:?}:\n{stderr}"
    );
    println!("mutant {name} rejected by loom, as it must be");
}
