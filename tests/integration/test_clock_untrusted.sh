# A board that boots without a real-time clock: the hub starts with its clock
# at 1970 and the kernel unsynchronised (the test build's fake clock source,
# CITYHUB_TEST_CLOCK), readings flow from the simulator into a real InfluxDB.
#   1. live: nothing reaches the store while the clock is untrusted (/health
#      degraded, with the reason); after the "sync" every reading is in the
#      store with a plausible time, in order, re-stamped with one offset
#      (exactly), marked clock="restamped", counted; the 1970 -> now step is
#      logged.
#   2. kill -9 while untrusted, restart in the same boot with a synced clock:
#      the readings of before the kill are re-stamped exactly.
#   3. kill -9 while untrusted, restart as another boot: the earlier boot's
#      readings go out estimated (before this boot's start, in order, their
#      spacing kept), marked clock="estimated", counted; then a +3h step
#      while running is logged and shown in /health.
#   4. MQTT while untrusted: a payload's own (absolute) time is kept as it is;
#      arrival times and SenML times relative to the arrival are re-stamped.
set -eu
. tests/lib/fixtures.sh
fixtures_init
start_influxdb live
for db in same other; do
    curl -sf -XPOST "$INFLUX_URL/query" --data-urlencode "q=CREATE DATABASE $db" >/dev/null ||
        fail "could not create database $db"
done
start_sim --profile test
SP=$("$FREEPORT")
export CITYHUB_TEST_CLOCK=$T/clock
BOOT_A=aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa
BOOT_B=bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb

now_ns() { date +%s%N; }
# The fake clock: "OFFSET_NS SYNCED [BOOT_ID]", replaced in one rename.
set_clock() { echo "$*" >"$T/clock.tmp" && mv "$T/clock.tmp" "$T/clock"; }
at_1970() { echo $((100000000000 - $(now_ns))); } # the hub's clock at 1970-01-01T00:01:40Z

config() { # NAME DATABASE
    cat >"$T/$1.yaml" <<YAML
hub:
  name: gw-clock
  journal: {path: $T/$1-journal, sync_interval: 50ms}
  status: {listen: "127.0.0.1:$SP"}
  status_interval: 1s
buses:
  - {name: lan, type: tcp, host: 127.0.0.1, port: $SIM_PORT, timeout: 500ms}
devices:
  - name: lab-1
    bus: lan
    unit: 1
    interval: 200ms
    measurement: lab
    registers:
      - {field: counter, table: input, address: 0, type: uint16}
outputs:
  - {name: ioc, type: influxdb, url: "$INFLUX_URL", database: $2, flush_interval: 200ms}
YAML
}
health() { curl -sf "http://127.0.0.1:$SP/health"; }
hclock() { health | jq -r ".clock.$1"; }
kill9_hub() {
    local st=0
    kill -9 "$HUB_PID" 2>/dev/null || true
    wait "$HUB_PID" 2>/dev/null || st=$?
    [ "$st" -eq 137 ] || { tail -30 "$HUB_LOG" >&2; fail "cityhub had exited by itself (status $st)"; }
}
# "SEQ BOOT_NS" of every record on boot time, "SEQ counter TIME" of every lab reading.
dump() {
    "$CITYHUB" journal -c "$T/$1.yaml" --dump >"$T/$1.dump"
    sed -nE 's/^# seq ([0-9]+): taken before the clock was trusted; its time is ([0-9]+) ns after the start of boot ([0-9a-f]+)$/\1 \2 \3/p' \
        "$T/$1.dump" >"$T/$1.boot"
    sed -nE 's/^([0-9]+) lab,.*counter=([0-9]+)[iu]? ([0-9]+)$/\1 \2 \3/p' "$T/$1.dump" >"$T/$1.lab"
}
# "counter time clock" of the store's lab points, by counter.
store() {
    influx_csv "$1" "SELECT counter, clock FROM lab" | awk -F, '{ print $4, $3, $5 }' |
        sort -n >"$T/$1.store"
}
# The early lab readings (on boot time): "counter boot_ns".
early() {
    join <(sort "$T/$1.boot") <(sort "$T/$1.lab") | awk '{ print $4, $2 }' | sort -n >"$T/$1.early"
}
# Every point of the store, every measurement, after 2020: none near 1970.
none_old() {
    local old
    old=$(influx_csv "$1" "SELECT * FROM /.*/ WHERE time < '2020-01-01T00:00:00Z'" | wc -l)
    [ "$old" -eq 0 ] || fail "$1: $old points before 2020 in the store"
}
# join on the first column, whatever order the files are in
jn() { join <(sort -k1,1 "$1") <(sort -k1,1 "$2"); }
# "TIME - BOOT_NS" of each joined "counter boot_ns time ...", in 64-bit shell arithmetic
# (awk's doubles would round nanoseconds away).
offsets() { jn "$1" "$2" | while read -r _ b t _; do echo $((t - b)); done | sort -u >"$3"; }
# Times strictly increase with the counter.
in_order() {
    local c t prev=0
    while read -r c t _; do
        [ "$t" -gt "$prev" ] || fail "$1: counter $c at $t, not after $prev"
        prev=$t
    done <"$1"
}
# Column COL of every line on stdin lies in [A, B].
within() {
    local col=$1 a=$2 b=$3 line t
    while read -r line; do
        t=$(echo "$line" | cut -d' ' -f"$col")
        [ "$t" -ge "$a" ] && [ "$t" -le "$b" ] || { echo "out of [$a, $b]: $line" >&2; return 1; }
    done
}

# ---- 1. the clock syncs while the hub runs ------------------------------------
config live live
set_clock "$(at_1970) 0"
t0=$(now_ns)
start_hub "$T/live.yaml"
wait_for grep -q "clock not trusted: time before build date" "$HUB_LOG" ||
    fail "no 'clock not trusted' line: $(tail -5 "$HUB_LOG")"
WAIT_TRIES=200 wait_for bash -c "[ \"\$(curl -sf http://127.0.0.1:$SP/health | jq .clock.readings_on_boot_time)\" -ge 10 ]" ||
    fail "no readings on boot time: $(health)"
h=$(health)
[ "$(echo "$h" | jq -r .status)" = degraded ] || fail "health not degraded while untrusted: $h"
[ "$(echo "$h" | jq -r .clock.synced)" = false ] || fail "clock.synced: $h"
[ "$(echo "$h" | jq -r .clock.reason)" = "time before build date" ] || fail "clock.reason: $h"
echo "$h" | jq -r '.reasons[]' | grep -q "clock not trusted" || fail "no clock reason: $h"
curl -sf "http://127.0.0.1:$SP/metrics" | grep -qx "cityhub_clock_synced 0" || fail "metric synced"
# The right time, but the kernel still says unsynchronised: the board booted
# before the build date, so (require_sync: auto) the kernel's word is needed.
set_clock "0 0"
wait_for grep -q "clock not trusted: adjtimex unsynchronised" "$HUB_LOG" ||
    fail "the reason did not change to adjtimex"
[ "$(influx_csv live 'SELECT * FROM /.*/' | wc -l)" -eq 0 ] ||
    fail "readings reached the store before the clock was trusted"
set_clock "0 1"
t_sync=$(now_ns)
wait_for grep -q "clock trusted" "$HUB_LOG" || fail "no 'clock trusted' line"
WAIT_TRIES=200 wait_for bash -c "h=\$(curl -sf http://127.0.0.1:$SP/health); [ \"\$(echo \"\$h\" | jq .clock.restamped)\" = \"\$(echo \"\$h\" | jq .clock.readings_on_boot_time)\" ]" ||
    fail "not every boot-time reading was re-stamped: $(health | jq -c .clock)"
sleep 1 # a few readings on the wall clock
h=$(health)
[ "$(echo "$h" | jq -r .clock.synced)" = true ] || fail "clock.synced after sync: $h"
! echo "$h" | jq -r '.reasons[]' | grep -q clock || fail "health after sync: $(echo "$h" | jq -c .reasons)"
restamped=$(echo "$h" | jq .clock.restamped)
metric=$(curl -sf "http://127.0.0.1:$SP/metrics" | awk '$1 == "cityhub_clock_restamped_total" { print $2 }')
[ "$metric" = "$restamped" ] || fail "cityhub_clock_restamped_total $metric, /health $restamped"
stop_hub
t1=$(now_ns)
grep -qE "clock stepped \+[0-9]+d" "$HUB_LOG" || fail "the step from 1970 was not logged"
grep "clock stepped" "$HUB_LOG"

dump live
early live
store live
n_boot=$(wc -l <"$T/live.boot")
n_early=$(wc -l <"$T/live.early")
echo "live: $n_boot records on boot time ($n_early lab readings), $restamped re-stamped"
[ "$n_early" -ge 10 ] || fail "expected 10 or more early lab readings, got $n_early"
[ "$restamped" -eq "$n_boot" ] || fail "restamped $restamped != $n_boot records on boot time"
[ "$(wc -l <"$T/live.store")" -eq "$(wc -l <"$T/live.lab")" ] ||
    fail "store has $(wc -l <"$T/live.store") lab points, the journal $(wc -l <"$T/live.lab")"
[ "$(grep -c ' restamped$' "$T/live.store")" -eq "$n_early" ] ||
    fail "$(grep -c ' restamped$' "$T/live.store") points marked restamped, $n_early early"
in_order "$T/live.store"
none_old live
# One offset for all: store time - boot time is the same for every early reading,
# and it places them between the start and the sync.
offsets "$T/live.early" "$T/live.store" "$T/live.offsets"
[ "$(wc -l <"$T/live.offsets")" -eq 1 ] || fail "early readings re-stamped with $(wc -l <"$T/live.offsets") offsets"
jn "$T/live.early" "$T/live.store" | within 3 $((t0 - 2000000000)) $((t_sync + 5000000000)) ||
    fail "early readings outside [start, sync]"
within 2 $((t0 - 2000000000)) $((t1 + 5000000000)) <"$T/live.store" || fail "readings outside the run"
[ "$(influx_csv live "SELECT clock_synced FROM cityhub WHERE clock_synced = false" | wc -l)" -ge 1 ] ||
    fail "no cityhub point with clock_synced=false"

# ---- 2. kill -9 while untrusted, restart in the same boot, synced ------------------
config same same
set_clock "$(at_1970) 0"
t0=$(now_ns)
start_hub "$T/same.yaml"
WAIT_TRIES=200 wait_for bash -c "[ \"\$(curl -sf http://127.0.0.1:$SP/health | jq .clock.readings_on_boot_time)\" -ge 10 ]" ||
    fail "no readings on boot time: $(health)"
kill9_hub
t_kill=$(now_ns)
dump same
early same
n_early=$(wc -l <"$T/same.early")
set_clock "0 1"
start_hub "$T/same.yaml"
WAIT_TRIES=200 wait_for bash -c "[ \"\$(curl -sf http://127.0.0.1:$SP/health | jq .clock.restamped)\" -ge $(wc -l <"$T/same.boot") ]" ||
    fail "the readings of before the kill were not re-stamped: $(health | jq -c .clock)"
sleep 0.5
stop_hub
store same
echo "same boot: $n_early early lab readings; store: $(grep -c ' restamped$' "$T/same.store") restamped"
[ "$(grep -c ' restamped$' "$T/same.store")" -eq "$n_early" ] ||
    fail "$(grep -c ' restamped$' "$T/same.store") restamped points, $n_early early readings"
offsets "$T/same.early" "$T/same.store" "$T/same.offsets"
[ "$(wc -l <"$T/same.offsets")" -eq 1 ] || fail "same boot: $(wc -l <"$T/same.offsets") offsets"
jn "$T/same.early" "$T/same.store" | within 3 $((t0 - 2000000000)) $((t_kill + 2000000000)) ||
    fail "same boot: early readings outside [start, kill]"
in_order "$T/same.store"
none_old same

# ---- 3. kill -9 while untrusted, restart as another boot -----------------------
config other other
set_clock "$(at_1970) 0 $BOOT_A"
start_hub "$T/other.yaml"
WAIT_TRIES=200 wait_for bash -c "[ \"\$(curl -sf http://127.0.0.1:$SP/health | jq .clock.readings_on_boot_time)\" -ge 10 ]" ||
    fail "no readings on boot time: $(health)"
kill9_hub
dump other
early other
n_boot=$(wc -l <"$T/other.boot")
n_early=$(wc -l <"$T/other.early")
set_clock "0 1 $BOOT_B"
t_restart=$(now_ns)
start_hub "$T/other.yaml"
WAIT_TRIES=200 wait_for bash -c "[ \"\$(curl -sf http://127.0.0.1:$SP/health | jq .clock.estimated)\" -ge $n_boot ]" ||
    fail "the earlier boot's readings were not delivered: $(health | jq -c .clock)"
[ "$(hclock estimated)" -eq "$n_boot" ] || fail "estimated $(hclock estimated), $n_boot on boot time"
[ "$(hclock restamped)" -eq 0 ] || fail "restamped $(hclock restamped): nothing of this boot was on boot time"
# A step while running.
set_clock "10800000000000 1 $BOOT_B"
wait_for grep -q "clock stepped +3h00m00s" "$HUB_LOG" || fail "the +3h step was not logged"
[ "$(hclock steps)" -eq 1 ] || fail "clock.steps $(hclock steps)"
[ "$(hclock last_step)" = "+3h00m00s" ] || fail "clock.last_step $(hclock last_step)"
stop_hub
grep "clock stepped" "$HUB_LOG" | tail -1
store other
grep ' estimated$' "$T/other.store" >"$T/other.est" || true
echo "earlier boot: $n_early early lab readings; store: $(wc -l <"$T/other.est") estimated"
[ "$(wc -l <"$T/other.est")" -eq "$n_early" ] ||
    fail "$(wc -l <"$T/other.est") estimated points, $n_early early readings"
in_order "$T/other.est"
none_old other
# Before this boot began (estimated as ended right before it), spacing kept.
within 2 1577836800000000000 $((t_restart - 1)) <"$T/other.est" ||
    fail "estimated readings not between 2020 and the restart"
offsets "$T/other.early" "$T/other.est" "$T/other.offsets"
[ "$(wc -l <"$T/other.offsets")" -eq 1 ] || fail "estimated with $(wc -l <"$T/other.offsets") offsets"

# ---- 4. MQTT payloads while untrusted -------------------------------------------
start_mosquitto
curl -sf -XPOST "$INFLUX_URL/query" --data-urlencode "q=CREATE DATABASE mqtt" >/dev/null
cat >"$T/mqtt.yaml" <<YAML
hub:
  name: gw-clock
  journal: {path: $T/mqtt-journal, sync_interval: 50ms}
  status: {listen: "127.0.0.1:$SP"}
mqtt_inputs:
  - name: sensors
    url: $MQTT_URL
    subscribe:
      - {topic: "sml/#", format: senml, qos: 1}
      - {topic: "raw/{device}", format: value, measurement: level, field: value, qos: 1}
outputs:
  - {name: ioc, type: influxdb, url: "$INFLUX_URL", database: mqtt, flush_interval: 200ms}
YAML
set_clock "$(at_1970) 0"
start_hub "$T/mqtt.yaml"
for f in 'sml/#' 'raw/+'; do
    mosquitto_wait_subscribed gw-clock-sensors "$f" || fail "gw-clock-sensors never subscribed to $f"
done
S=$(($(date +%s) - 3600)) # an hour ago, whole seconds
t_before=$(date +%s%N)
mqtt_pub sml/a "[{\"bn\":\"abs:\",\"bt\":$S,\"n\":\"laeq\",\"v\":55.5}]"
mqtt_pub sml/b "[{\"bn\":\"rel:\",\"n\":\"laeq\",\"v\":60,\"t\":-2}]"
mqtt_pub raw/lvl-2 "1.75"
t_after=$(date +%s%N)
WAIT_TRIES=200 wait_for bash -c "[ \"\$(curl -sf http://127.0.0.1:$SP/health | jq .clock.readings_on_boot_time)\" -ge 2 ]" ||
    fail "MQTT readings not on boot time: $(health | jq -c .clock)"
set_clock "0 1"
WAIT_TRIES=200 wait_for bash -c "[ \"\$(curl -sf http://127.0.0.1:$SP/health | jq .clock.restamped)\" -ge 2 ]" ||
    fail "MQTT readings not re-stamped: $(health | jq -c .clock)"
sleep 0.5
stop_hub
influx_csv mqtt "SELECT laeq, clock FROM senml WHERE device = 'abs'" | cut -d, -f3- >"$T/mqtt.abs"
[ "$(cat "$T/mqtt.abs")" = "${S}000000000,55.5," ] || fail "SenML absolute time changed: $(cat "$T/mqtt.abs")"
rel=$(influx_csv mqtt "SELECT laeq, clock FROM senml WHERE device = 'rel'" | cut -d, -f3-)
raw=$(influx_csv mqtt "SELECT value, clock FROM level" | cut -d, -f3-)
echo "mqtt: absolute $(cat "$T/mqtt.abs"); relative $rel; arrival $raw"
[ "${rel#*,}" = "60,restamped" ] || fail "SenML relative: $rel"
[ "${raw#*,}" = "1.75,restamped" ] || fail "value: $raw"
t=${rel%%,*}
[ "$t" -ge $((t_before - 2000000000 - 2000000000)) ] && [ "$t" -le $((t_after - 2000000000 + 5000000000)) ] ||
    fail "SenML relative time $t not 2 s before the arrival [$t_before, $t_after]"
t=${raw%%,*}
[ "$t" -ge $((t_before - 2000000000)) ] && [ "$t" -le $((t_after + 5000000000)) ] ||
    fail "arrival time $t not in [$t_before, $t_after]"
echo "clock without RTC ok"
