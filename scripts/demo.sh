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
# The sensors follow the city's day (Dong Hoi, UTC+7): rush hours, warm afternoons.
TZ=${DEMO_TZ:-ICT-7} start_sim --profile demo
echo "   Modbus TCP on 127.0.0.1:$SIM_PORT, units 1-3 (local time $(TZ=${DEMO_TZ:-ICT-7} date +%H:%M))"

demo_config "$T/cityhub.yaml"
"$CITYHUB" check -c "$T/cityhub.yaml" || exit 1
echo "== starting cityhub run -c $T/cityhub.yaml (log: $T/cityhub.log)"
# The demo keeps its files in a private temporary directory: started as root
# it stays root (--user root) rather than become hub.user.
"$CITYHUB" run -c "$T/cityhub.yaml" --user root >"$T/cityhub.log" 2>&1 &
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

# One line per device: the newest point of each measurement, with its
# acquisition time, then counts and the device health from cityhub_device.
latest() { # measurement "field[:unit] field[:unit] ..."
    local m=$1 spec=$2 fields
    fields=$(echo "$spec" | sed -E 's/:[^ ]*//g; s/ /, /g')
    influx_csv city "SELECT $fields FROM $m GROUP BY device ORDER BY time DESC LIMIT 1" |
        awk -F, -v m="$m" -v spec="$spec" '
        BEGIN { n = split(spec, s, " "); for (i = 1; i <= n; i++) { split(s[i], p, ":"); f[i] = p[1]; u[i] = p[2] } }
        {
            dev = $2; sub(/^device=/, "", dev)
            t = strftime("%H:%M:%S", int($3 / 1e9), 1)
            line = sprintf("   %-10s %-12s %s UTC ", dev, m, t)
            for (i = 1; i <= n; i++) {
                v = $(i + 3)
                if (v ~ /\./) v = sprintf("%.6g", v)
                line = line sprintf(" %s=%s%s", f[i], v, (u[i] == "" ? "" : " " u[i]))
            }
            print line
        }'
}

show() {
    latest traffic "vehicles_total speed_avg:km/h occupancy:%"
    latest air_quality "pm2_5:ug/m3 pm10:ug/m3 no2:ppb temperature:degC humidity:% pressure:hPa"
    latest energy "voltage:V current:A active_power:W energy_total:Wh frequency:Hz"
    local pts="" m
    for m in traffic air_quality energy cityhub_device cityhub; do
        pts="$pts $m=$(influx_csv city "SELECT count(*) FROM $m" |
            awk -F, '{ for (i = 4; i <= NF; i++) if ($i > m) m = $i } END { print m + 0 }')"
    done
    echo "   points in InfluxDB:$pts"
    influx_csv city "SELECT last(ok) AS ok, last(polls) AS polls, last(errors) AS errors FROM cityhub_device GROUP BY device" |
        awk -F, '{ d = $2; sub(/^device=/, "", d); printf "%s%s ok=%s polls=%s errors=%s", (NR == 1 ? "   device health (last status point): " : "; "), d, $4, $5, $6 } END { if (NR) print "" }'
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
