# systemd notification: the hub run with a real NOTIFY_SOCKET (a datagram
# socket of tests/lib/notify_listener.py) and WATCHDOG_USEC against the
# simulator and InfluxDB. READY=1 comes once the status server answers,
# STATUS= summaries follow, WATCHDOG=1 pings come every interval/2 and
# STOPPING=1 at SIGTERM; a reload sends RELOADING=1 and READY=1 and the
# pings go on. Then one Modbus poll is made to hang (the test
# build's CITYHUB_TEST_STALL): the pings stop, and the log names the stalled
# loop (once) and what it was polling. Without NOTIFY_SOCKET, nothing.
set -eu
. tests/lib/fixtures.sh
fixtures_init
start_influxdb city
start_sim --profile demo
start_mosquitto
STATUS_PORT=$("$FREEPORT")
WD_USEC=3000000 # a ping every 1.5 s
cat >"$T/hub.yaml" <<YAML
hub:
  name: gw-notify
  journal: {path: $T/journal}
  status: {listen: "127.0.0.1:$STATUS_PORT"}
buses:
  - {name: lan-a, type: tcp, host: 127.0.0.1, port: $SIM_PORT, timeout: 1s}
  - {name: lan-b, type: tcp, host: 127.0.0.1, port: $SIM_PORT, timeout: 1s}
devices:
  - name: traffic-1
    bus: lan-a
    unit: 1
    interval: 500ms
    measurement: traffic
    registers:
      - {field: vehicles_total, table: input, address: 0, type: uint16}
  - name: meter-1
    bus: lan-b
    unit: 3
    interval: 500ms
    measurement: energy
    registers:
      - {field: voltage, table: holding, address: 0, type: float32, order: ABCD}
mqtt_inputs:
  - name: lp
    url: $MQTT_URL
    subscribe:
      - {topic: "lp/#", format: influx, qos: 1}
outputs:
  - {name: ioc, type: influxdb, url: "$INFLUX_URL", database: city, flush_interval: 200ms}
  - {name: live, type: mqtt, url: "$MQTT_URL", topic: "city/{measurement}/{device}"}
YAML

# start_listener N: a fresh socket and message file, $T/notify-N.{sock,msgs}
start_listener() {
    SOCK=$T/notify-$1.sock MSGS=$T/notify-$1.msgs
    /usr/bin/python3 tests/lib/notify_listener.py "$SOCK" "$MSGS" >"$T/listener-$1.log" 2>&1 &
    track_pid $!
    wait_for grep -q listening "$T/listener-$1.log" || fail "the notify listener did not start"
}
count() { grep -c "^[0-9.]* $1" "$MSGS" || true; }
# the time of the first line matching $1
first_at() { grep -m1 "^[0-9.]* $1" "$MSGS" | cut -d' ' -f1; }

# ---- 1. a healthy hub ----
start_listener 1
NOTIFY_SOCKET=$SOCK WATCHDOG_USEC=$WD_USEC start_hub "$T/hub.yaml" "$T/hub1.log"
wait_for grep -q "READY=1" "$MSGS" || { tail -20 "$HUB_LOG" >&2; fail "no READY=1"; }
# READY=1 comes after the status server is bound, the journal open, the threads started
curl -sf "http://127.0.0.1:$STATUS_PORT/health" >/dev/null || fail "READY=1 before /health answers"
grep -q "\[cityhub\] running:" "$HUB_LOG" || fail "READY=1 before the hub said it runs"
ready=$(first_at READY=1)
sleep 7.5
pings=$(awk -v r="$ready" '$2 == "WATCHDOG=1" && $1 >= r' "$MSGS" | wc -l)
span=$(awk -v r="$ready" '$2 == "WATCHDOG=1" && $1 >= r { if (!f) f = $1; l = $1 } END { printf "%.1f", l - f }' "$MSGS")
echo "healthy: $pings pings in the first 7.5 s after READY=1 (first to last ${span} s; interval $((WD_USEC / 1000)) ms)"
[ "$pings" -ge 4 ] || fail "expected a ping every 1.5 s, got $pings in 7.5 s"
[ "$pings" -le 7 ] || fail "too many pings: $pings in 7.5 s"
nstatus=$(count STATUS=)
grep "STATUS=" "$MSGS" | tail -1
[ "$nstatus" -ge 2 ] || fail "expected the STATUS= summary again after 5 s, got $nstatus lines"
grep -Eq "STATUS=2 devices ok, 1 subscription ok; journal [0-9.]+ MiB, lag [0-9]+; outputs ok$" "$MSGS" ||
    fail "STATUS= does not summarise 2 devices and 1 subscription ok, the journal and the outputs"
grep -q "\[systemd\] watchdog: a ping every 1.5 s" "$HUB_LOG" || fail "the watchdog's start is not logged"
# a reload (SIGHUP, the same valid file) starts new threads: RELOADING=1,
# READY=1 with a summary again, and the pings go on — the stopped threads'
# heartbeats are not taken for stalled loops
kill -HUP "$HUB_PID"
WAIT_TRIES=100 wait_for grep -q "reload applied" "$HUB_LOG" || { tail -20 "$HUB_LOG" >&2; fail "the reload was not applied"; }
wait_for grep -q "RELOADING=1" "$MSGS" || fail "no RELOADING=1 at SIGHUP"
reloaded=$(first_at RELOADING=1)
wait_for awk -v r="$reloaded" '$2 == "READY=1" && $1 > r { f = 1 } END { exit !f }' "$MSGS" ||
    fail "no READY=1 after the reload"
sleep 6
after=$(awk -v r="$reloaded" '$2 == "WATCHDOG=1" && $1 > r' "$MSGS" | wc -l)
echo "reload: $after pings in the 6 s after RELOADING=1"
[ "$after" -ge 3 ] || fail "the pings stopped after a reload ($after in 6 s)"
! grep -q "no progress" "$HUB_LOG" || { grep "no progress" "$HUB_LOG" >&2; fail "a reload left a loop taken for stalled"; }
stop_hub
[ "$(count STOPPING=1)" -eq 1 ] || fail "no STOPPING=1 at SIGTERM"
stopping=$(first_at STOPPING=1)
late=$(awk -v s="$stopping" '$2 == "WATCHDOG=1" && $1 > s' "$MSGS" | wc -l)
[ "$late" -eq 0 ] || fail "$late pings after STOPPING=1"
! grep -q "no progress" "$HUB_LOG" || fail "a healthy hub reported a stalled loop"

# ---- 2. one poll hangs: the pings stop, the log says which loop ----
start_listener 2
CITYHUB_TEST_STALL=meter-1:6 NOTIFY_SOCKET=$SOCK WATCHDOG_USEC=$WD_USEC \
    start_hub "$T/hub.yaml" "$T/hub2.log"
wait_for grep -q "READY=1" "$MSGS" || fail "no READY=1 (stall run)"
WAIT_TRIES=200 wait_for grep -q "CITYHUB_TEST_STALL: poll 6 stalls" "$HUB_LOG" ||
    { tail -20 "$HUB_LOG" >&2; fail "the stall hook did not fire (test build?)"; }
stalled_at=$(date +%s.%N)
WAIT_TRIES=100 wait_for grep -q "\[modbus:lan-b\] no progress for" "$HUB_LOG" ||
    { tail -20 "$HUB_LOG" >&2; fail "the stalled loop is not reported"; }
grep "no progress" "$HUB_LOG"
grep -q "\[modbus:lan-b\] no progress for [0-9.]* s (modbus runner [01], device meter-1): watchdog pings stop" \
    "$HUB_LOG" || fail "the report does not name the runner and the device"
before=$(awk -v s="$stalled_at" '$2 == "WATCHDOG=1" && $1 < s' "$MSGS" | wc -l)
[ "$before" -ge 1 ] || fail "no pings before the stall"
n0=$(count WATCHDOG=1)
sleep 4.5
n1=$(count WATCHDOG=1)
echo "stalled: $before pings before the stall, $((n1 - n0)) in the 4.5 s after it was reported"
[ "$n1" -eq "$n0" ] || fail "pings go on while a poll loop is stalled ($n0 -> $n1)"
[ "$(grep -c "\[modbus:lan-b\] no progress" "$HUB_LOG")" -eq 1 ] || fail "the stall is logged more than once"
grep -q "STATUS=.*; stalled: modbus:lan-b" "$MSGS" || fail "STATUS= does not say what stalled"
stop_hub
[ "$(count STOPPING=1)" -eq 1 ] || fail "no STOPPING=1 (stall run)"

# ---- 3. no NOTIFY_SOCKET: no watchdog, no notification ----
WATCHDOG_USEC=$WD_USEC start_hub "$T/hub.yaml" "$T/hub3.log"
sleep 1
stop_hub
! grep -q "\[systemd\]" "$HUB_LOG" || fail "systemd lines without NOTIFY_SOCKET"
echo "systemd notify ok"
