#!/usr/bin/env bash
# Builds kcwatch twice (plain with -Werror, then ASan+UBSan) and runs every
# test against each build; the plain build also runs each unit test under
# valgrind, the real Kafka/Connect stack scenarios (tests/stack, a few
# minutes) and the Debian package test, once only. ctest prints its summary
# line for each.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc 2>/dev/null || echo 2)
status=0
for variant in release asan; do
    dir=build-ci-$variant
    sanitize=OFF valgrind=ON once=ON
    [ "$variant" = asan ] && sanitize=ON valgrind=OFF once=OFF
    echo "=== $variant build"
    if ! { cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKCWATCH_WERROR=ON \
            -DKCWATCH_SANITIZE=$sanitize -DKCWATCH_VALGRIND=$valgrind \
            -DKCWATCH_STACK_TESTS=$once -DKCWATCH_PACKAGE_TESTS=$once && cmake --build "$dir" -j "$jobs"; } >"$dir.log" 2>&1; then
        tail -n 60 "$dir.log"
        echo "$variant build failed (full log: $dir.log)"
        exit 1
    fi
    echo "=== $variant tests"
    (cd "$dir" && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
        ctest --output-on-failure -j "$jobs") || status=1
done

# libFuzzer: every tests/fuzz target for KCW_FUZZ_SECONDS (default 60) under
# ASan+UBSan, two at a time (the 2-core CI budget: 7 targets take about
# 4 minutes). Starts from a copy of the seed corpus and regressions; a crash,
# leak, sanitizer report or superlinear input (see tests/fuzz/fuzz.h) fails
# the run and leaves the input in build-ci-fuzz/findings/ to add to
# tests/fuzz/regressions/<target>/. Skipped with a notice when clang is
# missing (packaging/install-deps.sh installs it).
fuzz_seconds=${KCW_FUZZ_SECONDS:-60}
if [ "$fuzz_seconds" -gt 0 ] && command -v clang >/dev/null 2>&1; then
    dir=build-ci-fuzz
    echo "=== fuzz build"
    targets=$(cd tests/fuzz && ls fuzz_*.c | sed 's/\.c$//')
    # shellcheck disable=SC2086
    if ! { CC=clang cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKCWATCH_WERROR=ON \
            -DKCWATCH_SANITIZE=ON -DKCWATCH_FUZZ=ON && cmake --build "$dir" -j "$jobs" --target $targets; } \
            >"$dir.log" 2>&1; then
        tail -n 60 "$dir.log"
        echo "fuzz build failed (full log: $dir.log)"
        exit 1
    fi
    echo "=== fuzz: each target ${fuzz_seconds}s"
    rm -rf "$dir/findings" "$dir/work"
    mkdir -p "$dir/findings"
    fuzz_one() {
        t=$1
        work="$dir/work/$t"
        mkdir -p "$work"
        cp tests/fuzz/corpus/"$t"/* "$work"/ 2>/dev/null || true
        cp tests/fuzz/regressions/"$t"/* "$work"/ 2>/dev/null || true
        if ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
            "$dir/tests/fuzz/$t" -max_total_time="$fuzz_seconds" -timeout=10 -rss_limit_mb=2048 \
            -max_len=65536 -print_final_stats=1 -artifact_prefix="$dir/findings/$t-" "$work" \
            >"$dir/$t.log" 2>&1; then
            echo "fuzz/$t: $(grep -m1 '^stat::number_of_executed_units' "$dir/$t.log" | awk '{print $2}') runs, clean"
        else
            echo "fuzz/$t: FINDING (log: $dir/$t.log)"
            tail -n 30 "$dir/$t.log"
            return 1
        fi
    }
    set -- $targets
    while [ $# -gt 0 ]; do
        a=$1; shift
        b=${1:-}; [ $# -gt 0 ] && shift
        fuzz_one "$a" & pa=$!
        pb=""
        if [ -n "$b" ]; then fuzz_one "$b" & pb=$!; fi
        wait "$pa" || status=1
        if [ -n "$pb" ]; then wait "$pb" || status=1; fi
    done
elif [ "$fuzz_seconds" -gt 0 ]; then
    echo "=== fuzz skipped: clang not installed (packaging/install-deps.sh)"
fi
exit $status
