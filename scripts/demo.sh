#!/bin/bash
# scripts/demo.sh BUILD_DIR — the main job end to end on this machine:
# simulated city sensors (Modbus TCP) -> cityhub -> a local InfluxDB.
# Prints the newest values in InfluxDB every few seconds until Ctrl-C, or
# until DEMO_SECONDS have passed; then stops everything it started.
set -u
B=$(cd "${1:?usage: scripts/demo.sh BUILD_DIR}" && pwd)
top=$(cd "$(dirname "$0")/.." && pwd)
export CITYHUB="$B/cityhub" SIM="$B/cityhub-sim" FREEPORT="$B/tests/lib/freeport"
# shellcheck source=../tests/lib/fixtures.sh
. "$top/tests/lib/fixtures.sh"
fixtures_init
[ -n "${KEEP_TMP:-}" ] && echo "demo files in $T"

echo "== starting InfluxDB (store) on 127.0.0.1"
start_influxdb city
echo "   $INFLUX_URL, database city"
echo "== starting the simulated sensors (traffic counter, air-quality station, energy meter)"
start_sim --profile demo
echo "   Modbus TCP on 127.0.0.1:$SIM_PORT, units 1-3"

sed -e "s|@SIM_PORT@|$SIM_PORT|" -e "s|@INFLUX_URL@|$INFLUX_URL|" -e "s|@JOURNAL@|$T/journal|" \
    "$top/firmware/demo/cityhub-demo.yaml.in" >"$T/cityhub.yaml"
"$CITYHUB" check -c "$T/cityhub.yaml" || exit 1
echo "== starting cityhub run -c $T/cityhub.yaml (log: $T/cityhub.log)"
"$CITYHUB" run -c "$T/cityhub.yaml" >"$T/cityhub.log" 2>&1 &
HUB_PID=$!
track_pid "$HUB_PID"

stop_hub() {
    kill -TERM "$HUB_PID" 2>/dev/null || return
    local rc=0
    wait "$HUB_PID" || rc=$?
    echo "== cityhub stopped (exit status $rc); last log lines:"
    tail -4 "$T/cityhub.log" | sed 's/^/   /'
}
interrupted=0
trap 'interrupted=1' INT TERM

show() {
    local q="SELECT last(vehicles_total) AS vehicles, last(speed_avg) AS speed_kmh, last(occupancy) AS occupancy_pct FROM traffic GROUP BY device;
SELECT last(pm2_5) AS pm2_5, last(pm10) AS pm10, last(no2) AS no2_ppb, last(temperature) AS temp_c, last(humidity) AS humidity FROM air_quality GROUP BY device;
SELECT last(voltage) AS volts, last(current) AS amps, last(active_power) AS watts, last(energy_total) AS wh, last(frequency) AS hz FROM energy GROUP BY device;
SELECT last(ok) AS ok, last(polls) AS polls, last(errors) AS errors FROM cityhub_device GROUP BY device;
SELECT count(vehicles_total) AS traffic_points FROM traffic; SELECT count(pm2_5) AS aq_points FROM air_quality; SELECT count(voltage) AS energy_points FROM energy"
    influx -host 127.0.0.1 -port "${INFLUX_URL##*:}" -database city -precision rfc3339 \
        -execute "$q" 2>&1 | sed -e '/^$/d' -e 's/^/   /'
}

start=$(date +%s)
limit=${DEMO_SECONDS:-0}
echo "== live values in InfluxDB (Ctrl-C to stop${DEMO_SECONDS:+, or after ${DEMO_SECONDS}s})"
while [ "$interrupted" -eq 0 ]; do
    sleep 4 & wait $! 2>/dev/null
    [ "$interrupted" -eq 0 ] || break
    kill -0 "$HUB_PID" 2>/dev/null || { echo "cityhub exited:"; tail -20 "$T/cityhub.log"; exit 1; }
    echo "---- $(date -u +%H:%M:%S) UTC"
    show
    if [ "$limit" -gt 0 ] && [ $(($(date +%s) - start)) -ge "$limit" ]; then break; fi
done
stop_hub
echo "== stopping InfluxDB and the simulator"
