#!/bin/bash
# tests/integration/test_influx_roundtrip.sh — the influxdb output driver
# against a real influxd: runs tests/unit/test_drv_influx_live (tricky names,
# unicode, every field type, 404 for a missing database, 400 for a type
# conflict, a closed port) with INFLUX_URL and INFLUX_DB pointing at a fresh
# server. The live test skips when they are unset, so this is where it runs.
set -u
. "$(dirname "$0")/../lib/fixtures.sh"
fixtures_init

live="$(dirname "$CITYHUB")/tests/unit/test_drv_influx_live"
[ -x "$live" ] || fail "$live not built (make MODE=asan check-build)"

start_influxdb city
export INFLUX_URL INFLUX_DB=city
"$live"
rc=$?
if [ "$rc" -ne 0 ]; then
    echo "--- influxd log (last 20 lines)" >&2
    tail -20 "$T/influxdb/influxd.log" >&2
fi
exit "$rc"
