#!/bin/bash
# 1,100 Modbus TCP endpoints, each its own host (127.0.0.1 ... 127.0.4.76) with
# one device: the hub serves them from a bounded pool of threads, its sockets
# go past FD_SETSIZE (1024) without harm (no select()), the first connects
# are spread over the interval so a server with a small listen backlog
# refuses none, and every endpoint is read every second.
set -u
. "$(dirname "$0")/../lib/fixtures.sh"
fixtures_init

N=1100
ulimit -n 8192 2>/dev/null || ulimit -n "$(ulimit -Hn)"
[ "$(ulimit -n)" -ge 2400 ] || fail "need an open-file limit of 2400 for $N endpoints (have $(ulimit -n))"
# backlog 8: a burst of first connects would overflow it
start_sim_endpoints "$N" --profile load --backlog 8 --log /dev/null

{
    printf 'hub:\n  name: gw-many\n  journal: {path: %s/journal}\nbuses:\n' "$T"
    for k in $(seq 0 $((N - 1))); do
        printf '  - {name: e%d, type: tcp, host: %s, port: %d, timeout: 1s}\n' "$k" \
            "$(sim_endpoint_addr "$k")" "$SIM_PORT"
    done
    printf 'devices:\n'
    for k in $(seq 0 $((N - 1))); do
        printf '  - {name: m%d, bus: e%d, unit: 1, interval: 1s, measurement: meter, registers: [{field: r0, address: 0}, {field: r1, address: 1}]}\n' "$k" "$k"
    done
} >"$T/many.yaml"

"$CITYHUB" check -c "$T/many.yaml" >/dev/null || fail "config of $N endpoints refused"
start_hub "$T/many.yaml"
sleep 7
kill -0 "$HUB_PID" 2>/dev/null || { tail -20 "$HUB_LOG" >&2; fail "cityhub died"; }
threads=$(awk '/^Threads:/ { print $2 }' "/proc/$HUB_PID/status")
fds=$(ls "/proc/$HUB_PID/fd" | sort -n | tail -1)
stop_hub

grep -q "served by 16 worker(s)" "$HUB_LOG" || { grep modbus "$HUB_LOG" | head -3 >&2; fail "no pool of 16 workers"; }
[ "$threads" -le 24 ] || fail "$threads threads for $N endpoints (want a bounded pool)"
[ "$fds" -ge 1024 ] || fail "highest fd $fds: the test did not go past FD_SETSIZE"
grep -q "connect to .* failed" "$HUB_LOG" && { grep -m3 "connect to" "$HUB_LOG" >&2; fail "first connects failed"; }
grep -q "poll failed" "$HUB_LOG" && { grep -m3 "poll failed" "$HUB_LOG" >&2; fail "polls failed"; }

# every endpoint's device was read, and about once a second
"$CITYHUB" journal -c "$T/many.yaml" --dump >"$T/dump"
devices=$(grep -o '^[0-9]* meter,device=m[0-9]*' "$T/dump" | awk '{ print $2 }' | sort -u | wc -l)
[ "$devices" -eq "$N" ] || fail "$devices of $N devices have readings"
readings=$(grep -c '^[0-9]* meter,' "$T/dump")
# 7 s at 1 Hz: about 6 per device on a quiet machine, 4.5 seen under heavy
# load; a pool that stalls or serves the buses one after the other gets far fewer
[ "$readings" -ge $((N * 4)) ] || fail "$readings readings in 7 s from $N devices at 1 Hz"
echo "ok: $N endpoints, $threads threads, highest fd $fds, $readings readings"
