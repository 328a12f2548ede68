#!/bin/bash
# tests/bench/run.sh BUILD_DIR — print cityhub's figures (make bench).
#   journal append + group commit vs fsync per reading (readings/s, CPU, fsyncs/s, bytes)
#   journal record -> line protocol -> gzip (readings/s, bytes per reading)
#   cityhub run with the demo config against the simulator and a real InfluxDB:
#   readings/s accepted, CPU per reading and peak RSS (VmHWM).
set -u
B=$(cd "${1:?usage: tests/bench/run.sh BUILD_DIR}" && pwd)
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top" || exit 2
N=${BENCH_N:-1500000}
SECS=${BENCH_RSS_SECONDS:-15}

echo "== cityhub $(cat VERSION) benchmarks on $(nproc) cores, $(uname -m); N=$N"
work="$top/build/bench-tmp"
rm -rf "$work" && mkdir -p "$work"
"$B/tests/bench/bench_journal" "$work" "$N" || exit 1
rm -rf "$work"
"$B/tests/bench/bench_encode" "$N" || exit 1

export CITYHUB="$B/cityhub" SIM="$B/cityhub-sim" FREEPORT="$B/tests/lib/freeport"
. tests/lib/fixtures.sh
fixtures_init
start_influxdb city
start_sim --profile demo
demo_config "$T/demo.yaml"
# The demo polls every 2-5 s; for a load figure poll the same devices every 10 ms.
sed -e 's/^    interval: [0-9]*s/    interval: 10ms/' "$T/demo.yaml" >"$T/load.yaml"
for cfg in demo load; do
    start_hub "$T/$cfg.yaml" "$T/$cfg.log"
    sleep "$SECS"
    ticks=$(awk '{ print $14 + $15 }' "/proc/$HUB_PID/stat")
    hwm=$(awk '/VmHWM/ { print $2 }' "/proc/$HUB_PID/status")
    stop_hub
    n=$(journal_stat "$T/$cfg.yaml" next_seq)
    rm -rf "$T/journal"
    hz=$(getconf CLK_TCK)
    awk -v n="$n" -v s="$SECS" -v t="$ticks" -v hz="$hz" -v kb="$hwm" -v c="$cfg" 'BEGIN {
        printf "cityhub run (%s config, %d s): %.0f readings/s accepted, %.1f us CPU/reading, peak RSS %.1f MiB\n",
            c, s, n / s, (n > 0 ? t / hz * 1e6 / n : 0), kb / 1024 }'
done
