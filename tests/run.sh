#!/bin/bash
# tests/run.sh BUILD_DIR [--unit-only] — run the unit tests (cmocka binaries)
# and the integration tests (tests/integration/test_*.sh, real servers), and
# close with "N passed, N failed".
set -u
unit_only=0
B=""
for a in "$@"; do
    case "$a" in
    --unit-only) unit_only=1 ;;
    *) B=$a ;;
    esac
done
[ -n "$B" ] || { echo "usage: tests/run.sh BUILD_DIR [--unit-only]" >&2; exit 2; }
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top" || exit 2
B=$(cd "$B" && pwd)
export CITYHUB="$B/cityhub" SIM="$B/cityhub-sim" FREEPORT="$B/tests/lib/freeport"
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:${ASAN_OPTIONS:-}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export LSAN_OPTIONS="suppressions=$top/tests/lsan.supp:print_suppressions=0"

passed=0
failed=0
failures=""
logdir="$top/build/test-logs"
mkdir -p "$logdir"

run_one() { # name command...
    local name=$1 start end
    shift
    mkdir -p "$(dirname "$logdir/$name.log")"
    start=$(date +%s)
    if "$@" >"$logdir/$name.log" 2>&1; then
        end=$(date +%s)
        echo "PASS $name ($((end - start))s)"
        passed=$((passed + 1))
    else
        end=$(date +%s)
        echo "FAIL $name ($((end - start))s) — last lines of build/test-logs/$name.log:"
        tail -25 "$logdir/$name.log" | sed 's/^/    /'
        failed=$((failed + 1))
        failures="$failures $name"
    fi
}

for t in "$B"/tests/unit/test_*; do
    [ -x "$t" ] || continue
    case "$t" in *.o | *.d) continue ;; esac
    run_one "unit/$(basename "$t")" "$t"
done

if [ "$unit_only" -eq 0 ]; then
    for t in tests/integration/test_*.sh; do
        [ -f "$t" ] || continue
        run_one "integration/$(basename "$t" .sh)" timeout 600 bash "$t"
    done
fi

[ -n "$failures" ] && echo "failed:$failures"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
