#!/bin/bash
# Replies that are not the answer: from another unit id, with an MBAP
# protocol id other than 0 — an error, never a value. On one TCP link a
# device that drips its reply a byte at a time, or closes mid-frame, costs
# the healthy device at most its own timeout per backoff step. "Slave busy"
# is asked again and read. A slave that comes back after a long outage is
# polled again within 5 s.
set -u
. "$(dirname "$0")/../lib/fixtures.sh"
fixtures_init

start_sim_named link --profile load --drip-unit 19:300 --close-unit 20 --wrong-unit-reply 17 \
    --bad-protocol-unit 18 --busy-unit 21:2
cat >"$T/hub.yaml" <<YAML
hub:
  name: gw-replies
  journal: {path: $T/journal}
buses:
  - {name: lan, type: tcp, host: 127.0.0.1, port: $SIM_PORT, timeout: 500ms}
devices:
  - {name: good, bus: lan, unit: 1, interval: 200ms, measurement: m, registers: [{field: x, address: 0}]}
  - {name: wrong-unit, bus: lan, unit: 17, interval: 200ms, measurement: m, registers: [{field: x, address: 0}]}
  - {name: wrong-proto, bus: lan, unit: 18, interval: 200ms, measurement: m, registers: [{field: x, address: 0}]}
  - {name: drip, bus: lan, unit: 19, interval: 200ms, measurement: m, registers: [{field: x, address: 0}]}
  - {name: closer, bus: lan, unit: 20, interval: 200ms, measurement: m, registers: [{field: x, address: 0}]}
  - {name: busy, bus: lan, unit: 21, interval: 200ms, measurement: m, registers: [{field: x, address: 0}]}
YAML
start_hub "$T/hub.yaml"
sleep 8
stop_hub
"$CITYHUB" journal -c "$T/hub.yaml" --dump >"$T/dump"

values() { grep -c "^[0-9]* m,device=$1,gateway=" "$T/dump"; }
status_error() { grep "^[0-9]* cityhub_device,bus=lan,device=$1," "$T/dump" | grep -o 'error="[^"]*"' | sort -u; }

for d in wrong-unit wrong-proto drip closer; do
    [ "$(values "$d")" -eq 0 ] || fail "device $d: values stored from replies that are not answers"
done
status_error wrong-unit | grep -q 'bad reply: from unit 18, asked unit 17' ||
    fail "wrong-unit: $(status_error wrong-unit)"
status_error wrong-proto | grep -q 'MBAP protocol id 1, not 0' ||
    fail "wrong-proto: $(status_error wrong-proto)"
status_error drip | grep -q 'timeout (.* bytes of a reply, then nothing)' ||
    fail "drip: $(status_error drip)"
status_error closer | grep -q 'connection closed mid-frame' || fail "closer: $(status_error closer)"

good=$(values good)
busy=$(values busy)
# 8 s at 200 ms: 40 polls; the drip device's timeouts (500 ms, backed off to
# one per 5 s) may take a handful, never most
[ "$good" -ge 28 ] || fail "the healthy device was read $good times in 8 s (want >= 28 of 40)"
[ "$busy" -ge 20 ] || fail "the busy device was read $busy times (busy is to be asked again)"
drip_polls=$(grep -c "unit 19 .*drip" "$SIM_LOG" || true)
[ "$drip_polls" -le 4 ] || fail "the dripping device was polled $drip_polls times in 8 s (not backed off)"
echo "healthy $good of 40, busy $busy, drip polled $drip_polls times"

# ---- a slave that comes back --------------------------------------------------
port=$SIM_PORT
kill "$SIM_PID"
wait "$SIM_PID" 2>/dev/null
rm -rf "$T/journal"
cat >"$T/back.yaml" <<YAML
hub:
  name: gw-back
  journal: {path: $T/journal}
buses:
  - {name: lan, type: tcp, host: 127.0.0.1, port: $port, timeout: 500ms}
devices:
  - {name: back, bus: lan, unit: 1, interval: 1s, measurement: m, registers: [{field: x, address: 0}]}
YAML
start_hub "$T/back.yaml" "$T/back.log"
sleep 12 # reconnects fail and back off (1, 2, 4, 5, 5 s)
"$SIM" --listen "127.0.0.1:$port" --profile load --log /dev/null >"$T/sim-back.out" 2>&1 &
track_pid "$!"
wait_for grep -q "^listening on" "$T/sim-back.out" || fail "simulator did not come back"
t0=$(date +%s%N)
WAIT_TRIES=100 wait_for bash -c "'$CITYHUB' journal -c '$T/back.yaml' --dump | grep -q '^[0-9]* m,device=back'" ||
    fail "the device was not read within 10 s of coming back"
ms=$((($(date +%s%N) - t0) / 1000000))
stop_hub
[ "$ms" -le 6000 ] || fail "read again $ms ms after it came back (want within 5 s)"
echo "ok: read again $ms ms after the slave came back"
