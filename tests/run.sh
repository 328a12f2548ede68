#!/bin/bash
# tests/run.sh BUILD_DIR [--unit-only | --fault-only [--long]] — run the unit
# tests (cmocka binaries), the integration tests (tests/integration/test_*.sh,
# real servers) and the fault suite's fast subset (tests/fault/: its programs
# built in BUILD_DIR/tests/fault/ and its scripts), and close with
# "N passed, N failed". --fault-only --long (make fault): the fault suite
# alone with its long counts (FAULT_ITERS, FAULT_KILLS, FAULT_POINTS,
# FAULT_SHAPES unless set; see docs/testing.md).
#
# tests/run.sh --emulated BUILD_DIR HOST_BUILD_DIR (make check BOARD=NAME for
# an Arm board): the unit tests of BUILD_DIR, built for the board, each run
# under $TEST_RUNNER (qemu-user-static -L SYSROOT), then tests/board/test_*.sh
# with CITYHUB the board's program under $TEST_RUNNER, and the simulator and
# freeport of HOST_BUILD_DIR (built for this machine).
set -u
unit_only=0
fault_only=0
long=0
emulated=0
B=""
H=""
for a in "$@"; do
    case "$a" in
    --unit-only) unit_only=1 ;;
    --fault-only) fault_only=1 ;;
    --long) long=1 ;;
    --emulated) emulated=1 ;;
    *) if [ -z "$B" ]; then B=$a; else H=$a; fi ;;
    esac
done
[ -n "$B" ] || { echo "usage: tests/run.sh BUILD_DIR [--unit-only | --fault-only [--long]] | --emulated BUILD_DIR HOST_BUILD_DIR" >&2; exit 2; }
if [ "$emulated" -eq 1 ]; then
    [ -n "$H" ] && [ -n "${TEST_RUNNER:-}" ] ||
        { echo "tests/run.sh --emulated: needs HOST_BUILD_DIR and TEST_RUNNER" >&2; exit 2; }
fi
if [ "$long" -eq 1 ]; then
    export FAULT_ITERS=${FAULT_ITERS:-5000} FAULT_KILLS=${FAULT_KILLS:-200}
    export FAULT_POINTS=${FAULT_POINTS:-10} FAULT_SHAPES=${FAULT_SHAPES:-24} FAULT_LONG=1
fi
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top" || exit 2
B=$(cd "$B" && pwd)
export CITYHUB="$B/cityhub" SIM="$B/cityhub-sim" FREEPORT="$B/tests/lib/freeport"
runner=""
if [ "$emulated" -eq 1 ]; then
    H=$(cd "$H" && pwd)
    runner=$TEST_RUNNER
    # The tests call "$CITYHUB" as one word: a wrapper runs it under the emulator.
    printf '#!/bin/sh\nexec %s %s "$@"\n' "$runner" "$B/cityhub" >"$B/cityhub-emulated"
    chmod 755 "$B/cityhub-emulated"
    export CITYHUB="$B/cityhub-emulated" SIM="$H/cityhub-sim" FREEPORT="$H/tests/lib/freeport"
    export CITYHUB_EMULATED="$runner"
fi
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:${ASAN_OPTIONS:-}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export LSAN_OPTIONS="suppressions=$top/tests/lsan.supp:print_suppressions=0"

passed=0
failed=0
failures=""
logdir="$top/build/test-logs"
[ "$emulated" -eq 1 ] && logdir="$top/build/test-logs/$(basename "$B")"
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

if [ "$fault_only" -eq 0 ]; then
    for t in "$B"/tests/unit/test_*; do
        [ -x "$t" ] || continue
        case "$t" in *.o | *.d) continue ;; esac
        # shellcheck disable=SC2086
        run_one "unit/$(basename "$t")" $runner "$t"
    done
fi

if [ "$emulated" -eq 1 ]; then
    for t in tests/board/test_*.sh; do
        [ -f "$t" ] || continue
        run_one "board/$(basename "$t" .sh)" timeout 600 bash "$t"
    done
    unit_only=1
fi

if [ "$unit_only" -eq 0 ] && [ "$fault_only" -eq 0 ]; then
    for t in tests/integration/test_*.sh; do
        [ -f "$t" ] || continue
        run_one "integration/$(basename "$t" .sh)" timeout 600 bash "$t"
    done
fi

if [ "$unit_only" -eq 0 ]; then
    for t in "$B"/tests/fault/*; do
        [ -x "$t" ] && [ -f "$t" ] || continue
        case "$t" in *.o | *.d) continue ;; esac
        run_one "fault/$(basename "$t")" timeout $((long ? 7200 : 300)) "$t"
    done
    for t in tests/fault/*.sh; do
        [ -f "$t" ] || continue
        run_one "fault/$(basename "$t" .sh)" timeout $((long ? 7200 : 600)) bash "$t"
    done
fi

[ -n "$failures" ] && echo "failed:$failures"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
