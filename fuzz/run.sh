#!/usr/bin/env bash
# Fuzz the parsers and the public API for a bounded time.
#
#   bash fuzz/run.sh SECONDS [python|rust|all]     (default: 60 seconds, all)
#
# python: atheris (coverage-guided libFuzzer over the Python entry points, fuzz/fuzz_vectors.py);
#         needs `pip install atheris` and the package installed (maturin develop or pip install .).
# rust:   cargo-fuzz (libFuzzer with sanitizer coverage over rust/src/vecio.rs, fuzz/fuzz_targets/);
#         needs a nightly toolchain and `cargo install cargo-fuzz`; skipped with a note when absent.
#
# Each fuzzer runs SECONDS, starting from the committed seeds (fuzz/corpus/<target>) and a working
# corpus that persists between runs (fuzz/work/<target>, git-ignored). It prints the executions run
# and the crashes found; a crashing input is saved under fuzz/work/ (crash-*) or fuzz/artifacts/,
# and the script exits 1. Reproduce one with `python fuzz/fuzz_vectors.py CRASH_FILE` or
# `cargo +nightly fuzz run parse_vectors CRASH_FILE`.
set -uo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH="${1:-60}"
WHICH="${2:-all}"
WORK=fuzz/work
mkdir -p "$WORK/python" "$WORK/parse_vectors"
status=0

summary() { # name log
    local execs crash
    execs=$(grep -Eo 'stat::number_of_executed_units: [0-9]+' "$2" | grep -Eo '[0-9]+$' | tail -1)
    crash=$(grep -Ec 'ERROR: libFuzzer|Test unit written to|panicked at|Uncaught Python exception' "$2")
    if [ "$crash" -gt 0 ]; then
        echo "$1: CRASH after ${execs:-0} executions (see $2)"
    else
        echo "$1: ${execs:-0} executions in ${SECONDS_EACH}s, 0 crashes"
    fi
    [ "$crash" -eq 0 ]
}

if [ "$WHICH" = python ] || [ "$WHICH" = all ]; then
    if python -c "import atheris" 2>/dev/null; then
        log="$WORK/python.log"
        (cd "$WORK" && python ../fuzz_vectors.py -max_total_time="$SECONDS_EACH" -timeout=30 -rss_limit_mb=4096 \
            -print_final_stats=1 python ../corpus/python) >"$log" 2>&1
        rc=$?
        summary "python (atheris)" "$log" || status=1
        [ $rc -eq 0 ] || status=1
    else
        echo "python (atheris): not installed; pip install atheris" >&2
        status=1
    fi
fi

if [ "$WHICH" = rust ] || [ "$WHICH" = all ]; then
    if cargo +nightly fuzz --version >/dev/null 2>&1; then
        log="$WORK/rust.log"
        cargo +nightly fuzz run --debug-assertions parse_vectors "$WORK/parse_vectors" fuzz/corpus/parse_vectors -- \
            -max_total_time="$SECONDS_EACH" -timeout=30 -rss_limit_mb=4096 -print_final_stats=1 >"$log" 2>&1
        rc=$?
        summary "rust (cargo-fuzz parse_vectors)" "$log" || status=1
        [ $rc -eq 0 ] || status=1
    else
        echo "rust (cargo-fuzz): skipped, needs a nightly toolchain and cargo install cargo-fuzz" >&2
        [ "$WHICH" = rust ] && status=1
    fi
fi
exit $status
