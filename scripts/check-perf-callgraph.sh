#!/usr/bin/env bash
# Checks that `perf record --call-graph fp` sees whole call chains through
# weft's coroutines: of the samples taken in examples/perf_callgraph.rs's
# hot function, at least 95% must have a chain that reaches the function
# that resumed the coroutine (drive_coroutines) and the program's main.
# Then the same for fibers on a worker that hand the thread to one another
# (--fibers): chains must reach the worker's run_task and the thread's
# start (glibc's start_thread).
#
# Then a negative control: the same example built WITHOUT frame pointers
# must fall below 50%, which proves the check can fail. Set
# WEFT_PERF_NO_CONTROL=1 to skip the control (it costs a second build).
#
# Usage: scripts/check-perf-callgraph.sh [seconds]   (default 3)
set -euo pipefail

cd "$(dirname "$0")/.."
secs="${1:-3}"
hot='perf_callgraph::hot_leaf'
coroutine_resumer='perf_callgraph::drive_coroutines'
coroutine_main='perf_callgraph::main'
# Set by `check` for `measure`: the two symbols a chain must reach.
resumer="$coroutine_resumer"
rust_main="$coroutine_main"
min_samples=1000
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

if ! command -v perf >/dev/null; then
    echo "check-perf-callgraph: FAILED: perf is not installed (Debian: apt-get install linux-perf)" >&2
    exit 1
fi
paranoid="$(cat /proc/sys/kernel/perf_event_paranoid 2>/dev/null || echo 2)"
if [ "$paranoid" -gt 2 ]; then
    if ! sysctl -qw kernel.perf_event_paranoid=2 2>/dev/null; then
        echo "check-perf-callgraph: SKIPPED: kernel.perf_event_paranoid=$paranoid forbids user-space sampling and cannot be lowered here" >&2
        exit 0
    fi
fi

# Prints "<hot samples> <samples reaching resumer and main>" for a binary
# run with the given extra arguments.
measure() {
    local bin="$1" data="$work/perf.data"
    shift
    perf record -q -e cpu-clock -F 999 --call-graph fp -o "$data" -- "$bin" --secs "$secs" "$@" >/dev/null
    perf script -i "$data" -F ip,sym 2>/dev/null | awk -v hot="$hot" -v resumer="$resumer" -v main="$rust_main" '
        function finish() {
            if (n > 0 && leaf == hot) {
                total++
                if (saw_resumer && saw_main) good++
            }
            n = 0; leaf = ""; saw_resumer = 0; saw_main = 0
        }
        /^[[:space:]]*$/ { finish(); next }
        /^[[:space:]]+[0-9a-f]+ / {
            sym = $2
            if (n == 0) leaf = sym
            if (sym == resumer) saw_resumer = 1
            if (sym == main) saw_main = 1
            n++
            next
        }
        END { finish(); printf "%d %d\n", total, good }'
}

echo "check-perf-callgraph: building examples/perf_callgraph with frame pointers"
cargo build --quiet --release --example perf_callgraph

# check <label> <resumer symbol> <outermost symbol> [example arguments]
check() {
    local label="$1"
    resumer="$2" rust_main="$3"
    shift 3
    read -r total good < <(measure target/release/examples/perf_callgraph "$@")
    echo "check-perf-callgraph: $label: $good of $total samples in $hot reach $resumer and $rust_main"
    if [ "$total" -lt "$min_samples" ]; then
        echo "check-perf-callgraph: FAILED: only $total samples in $hot (need $min_samples)" >&2
        exit 1
    fi
    if [ $((good * 100)) -lt $((total * 95)) ]; then
        echo "check-perf-callgraph: FAILED: $label: $((good * 100 / total))% of samples reach $resumer and $rust_main (need 95%)" >&2
        exit 1
    fi
    echo "check-perf-callgraph: $label OK ($((good * 100 / total))%)"
}
check fibers 'weft::sched::worker::Worker::run_task' start_thread --fibers
check coroutines "$coroutine_resumer" "$coroutine_main"

if [ "${WEFT_PERF_NO_CONTROL:-0}" = 1 ]; then
    echo "check-perf-callgraph: negative control skipped (WEFT_PERF_NO_CONTROL=1)"
    exit 0
fi
echo "check-perf-callgraph: negative control: the same example without frame pointers"
resumer="$coroutine_resumer" rust_main="$coroutine_main"
RUSTFLAGS="-C force-frame-pointers=no" CARGO_TARGET_DIR=target/no-frame-pointers \
    cargo build --quiet --release --example perf_callgraph
read -r total good < <(measure target/no-frame-pointers/release/examples/perf_callgraph)
echo "check-perf-callgraph: control: $good of $total samples reach the resumer and main"
if [ "$total" -eq 0 ] || [ $((good * 100)) -ge $((total * 50)) ]; then
    echo "check-perf-callgraph: FAILED: the negative control did not fail ($good of $total); the check proves nothing" >&2
    exit 1
fi
echo "check-perf-callgraph: control OK: without frame pointers the chains break, as they should"
