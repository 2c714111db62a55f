#!/usr/bin/env bash
# weft's test suite under AddressSanitizer (TESTING.md 5.1-5.3), with the
# fiber annotations of the `sanitizer` feature:
#
#   RUSTFLAGS="-Zsanitizer=address -Cforce-frame-pointers=yes" \
#   ASAN_OPTIONS=detect_stack_use_after_return=1:detect_leaks=1 \
#   cargo +nightly test --target x86_64-unknown-linux-gnu --features sanitizer
#
# The doc tests are built with the same flags (RUSTDOCFLAGS); a few tests
# are skipped by name, each with its reason below. The run fails if a test
# fails, or if any process (test binaries, and the children many tests run)
# printed an AddressSanitizer or LeakSanitizer report, or "ASan is ignoring
# requested __asan_handle_no_return" (the sign of a stack switch ASan was
# not told about). ASan writes its output to files (log_path), because a
# test that runs a child captures the child's stderr and shows it only when
# the child fails: a warning from a child that passed would be lost. The
# matching files are printed.
#
# Measured on 2 cores: about 5 minutes from a clean target directory (1.5
# of them building), about 4 with the build done.
#
# It also checks that the two sanitizer tests ran and passed:
# tests/asan_canary.rs (5.2: a heap overflow in a fiber is reported, so the
# job is live) and tests/asan_fake_stack.rs (5.3: 100,000 fibers grow RSS by
# less than 200 MiB, so their fake stacks are freed).
#
# Needs a nightly toolchain; skips (exit 0) with a message without one and
# installs nothing. Builds into $CARGO_TARGET_DIR, by default target/asan.
#
# Usage: scripts/asan.sh
set -euo pipefail

cd "$(dirname "$0")/.."

if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "asan: SKIPPED: no nightly toolchain (\`cargo +nightly --version\` failed);" \
        "-Zsanitizer=address needs one (rustup toolchain install nightly)" >&2
    exit 0
fi

# Skipped tests, by exact name (`--skip` with `--exact`): they cannot work
# under ASan (each line says why).
skips=(
    # Takes the address of a local on a pool stack; detect_stack_use_after_return
    # moves address-taken locals to ASan's fake stack, so it is not there.
    stack_pool::tests::on_stack_runs_code_on_a_pool_stack
    # Measures a fiber's stack depth from addresses of locals: fake stack, as above.
    stack_sizes
    # Count heap bytes per actor or message; ASan's redzones and quarantine
    # add tens to hundreds of bytes per allocation.
    a_queued_message_costs_about_its_size
    a_stopped_actor_costs_no_more_than_an_idle_one
    an_idle_actor_costs_at_most_256_bytes_beyond_its_state
    # Checks RSS to 1 MiB; ASan's shadow of the pool's decommitted stacks is
    # only given back when the slabs are unmapped, after the test's last step.
    an_addr_that_outlives_the_runtime_does_not_keep_its_stacks
    # A million fibers each: clean under ASan, but slower than the 60-second
    # hang guard they run under (measured with the guard raised: 142 s and
    # 83 s, no report).
    a_million_fibers_spawned_and_joined
    skynet_with_a_million_leaves
    # Expect a fault outside any fiber to kill the process with SIGSEGV (or
    # std's overflow message and SIGABRT); ASan's own SIGSEGV handler reports
    # it and exits with status 1 instead. (Fiber overflows, caught by weft's
    # handler first, still run.)
    a_fault_that_is_not_an_overflow_is_a_plain_sigsegv
    a_thread_overflow_is_still_reported_by_std
    guard_really_guards_in_both_modes
    non_fiber_faults_are_not_claimed
    thread_overflow_is_still_reported_by_std
    # Counts the process's memory mappings near vm.max_map_count; ASan's
    # allocator maps regions of its own meanwhile.
    mprotect_mode_stops_cleanly_before_the_map_limit
)

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir "$work/logs"

# A detached fiber's result or panic payload whose drop panics is leaked on
# purpose (src/fiber/spawned.rs, `Drop for Spawned`): dropping the second
# panic's payload could panic again. Only allocations made inside that drop
# match.
cat >"$work/lsan.supp" <<'EOF'
leak:weft::fiber::spawned::Spawned<*as core::ops::drop::Drop>::drop
EOF

skip_args=()
for name in "${skips[@]}"; do
    skip_args+=(--skip "$name")
done

flags="-Zsanitizer=address -Cforce-frame-pointers=yes"
start=$SECONDS
status=0
RUSTFLAGS="$flags" RUSTDOCFLAGS="$flags" \
    ASAN_OPTIONS="detect_stack_use_after_return=1:detect_leaks=1:log_path=$work/logs/asan" \
    LSAN_OPTIONS="suppressions=$work/lsan.supp" \
    CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target/asan}" \
    cargo +nightly test --target x86_64-unknown-linux-gnu --features sanitizer --no-fail-fast \
    -- --exact "${skip_args[@]}" 2>&1 | tee "$work/output" || status=$?
echo "asan: the suite took $((SECONDS - start)) s"

failed=0
reports='ERROR: AddressSanitizer|ERROR: LeakSanitizer|ASan is ignoring requested __asan_handle_no_return'
if grep -qE "$reports" "$work/output"; then
    echo "asan: FAILED: ASan output in the test output (above)" >&2
    failed=1
fi
for log in "$work"/logs/*; do
    [ -e "$log" ] || continue
    if grep -qE "$reports" "$log"; then
        echo "asan: FAILED: ASan output of process ${log##*.}:" >&2
        cat "$log" >&2
        failed=1
    fi
done
for test in a_heap_overflow_in_a_fiber_is_reported the_fake_stacks_of_finished_fibers_are_freed; do
    if ! grep -q "^test $test \.\.\. ok$" "$work/output"; then
        echo "asan: FAILED: the sanitizer test $test did not run and pass" >&2
        failed=1
    fi
done
if [ "$status" -ne 0 ]; then
    echo "asan: FAILED: cargo test exited with status $status" >&2
    failed=1
fi
if [ "$failed" -ne 0 ]; then
    exit 1
fi
echo "asan: passed: no ASan report, no ignored stack switch; ${#skips[@]} tests skipped (see scripts/asan.sh)"
