# SIGHUP while a bus thread waits on a Modbus TCP slave that accepts the
# connection but never answers (reply timeout 3 s): the reload waits for
# that poll to end instead of giving up on the thread, applies the new file
# (the hub keeps running, readings keep coming), and SIGTERM afterwards
# still stops it within 5 s with exit status 0. The new file also moves the
# log to hub.log_file at level debug: the lines from the reload on are there.
set -eu
. tests/lib/fixtures.sh
fixtures_init
start_sim --profile test
start_silent_slave
NOSTORE=$("$FREEPORT")

config() { # A_INTERVAL [MORE_HUB_LINES]
    cat <<YAML
hub:
  name: gw-silent
  journal: {path: $T/journal}
${2:-}
buses:
  - {name: good, type: tcp, host: 127.0.0.1, port: $SIM_PORT}
  - {name: silent, type: tcp, host: 127.0.0.1, port: $SILENT, timeout: 3s}
devices:
  - {name: a, bus: good, unit: 1, interval: $1, measurement: lab,
     registers: [{field: counter, table: input, address: 0, type: uint16}]}
  - {name: mute, bus: silent, unit: 1, interval: 100ms, measurement: lab,
     registers: [{field: counter, table: input, address: 0, type: uint16}]}
outputs:
  - {name: ioc, type: influxdb, url: "http://127.0.0.1:$NOSTORE", database: city,
     flush_interval: 100ms}
YAML
}
config 50ms >"$T/hub.yaml"
start_hub "$T/hub.yaml"
WAIT_TRIES=100 wait_for grep -q "\[cityhub\] running:" "$HUB_LOG" || fail "cityhub did not start"
sleep 1 # mute's first poll is waiting for its reply now
config 80ms "  log_file: $T/after.log
  log_level: debug" >"$T/hub.yaml"
"$CITYHUB" check -c "$T/hub.yaml" >/dev/null || fail "the second file is refused"
t0=$(date +%s%N)
kill -HUP "$HUB_PID"
WAIT_TRIES=150 wait_for grep -q "reload applied in" "$T/after.log" ||
    { tail -20 "$HUB_LOG" >&2; fail "no reload applied within 15 s (in hub.log_file)"; }
ms=$((($(date +%s%N) - t0) / 1000000))
grep "reload applied in" "$T/after.log"
grep -q "debug \[cityhub\] output ioc: refused readings go to" "$T/after.log" ||
    fail "no debug line in the new log file"
grep -q "reload applied in" "$HUB_LOG" && fail "the log did not move to hub.log_file"
kill -0 "$HUB_PID" 2>/dev/null || fail "cityhub exited on the reload"
grep -q "did not stop in time" "$HUB_LOG" && fail "the reload gave up on the bus thread"
echo "reload applied after ${ms} ms with a poll waiting on a silent slave"
n0=$(journal_stat "$T/hub.yaml" next_seq)
WAIT_TRIES=100 wait_for bash -c "[ \$('$CITYHUB' journal -c '$T/hub.yaml' | awk '\$1 == \"next_seq\" { print \$2 }') -gt $((n0 + 5)) ]" ||
    fail "readings stopped after the reload"
stop_hub
echo "stopped in $HUB_STOP_MS ms"
echo "silent slave reload ok"
