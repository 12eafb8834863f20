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
exit $status
