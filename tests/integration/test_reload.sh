# SIGHUP reload against a running hub: simulator and Mosquitto -> cityhub ->
# real InfluxDB.
# (1) A broken file (a YAML syntax error, an unknown key, a journal key only
#     a restart changes) is rejected with the lines `cityhub check` prints
#     for it, the hub keeps polling with the old configuration, /metrics and
#     /health show the rejected reload; a valid file whose output cannot
#     start brings the old configuration back.
# (2) A valid file that adds a device, changes a poll interval and adds a
#     second output is applied: the new device's readings arrive, the new
#     output receives data, the status server stays on its address; a file
#     that moves hub.status.listen moves the server (once the new port is
#     free: a reload of the same file starts a server that could not listen).
# (3) Several more reloads while readings flow; at the end every reading
#     the journal accepted is in InfluxDB exactly once (points = next_seq, no
#     repeated timestamp per device) and the output delivered each once (its
#     delivered counts over every reload add up to next_seq), and every MQTT
#     message published, before, between or during reloads (the broker keeps
#     them for the persistent session), is there once. The hub runs
#     under ASan: no leak at exit after all of it.
set -eu
. tests/lib/fixtures.sh
fixtures_init
start_influxdb city
curl -sf -XPOST "$INFLUX_URL/query" --data-urlencode 'q=CREATE DATABASE "agency"' >/dev/null ||
    fail "could not create database agency"
start_sim --profile test
start_mosquitto
ports=$("$FREEPORT" 2)
SP1=$(echo "$ports" | sed -n 1p)
SP2=$(echo "$ports" | sed -n 2p)
CFG=$T/hub.yaml

# config STATUS_PORT A_INTERVAL WITH_B WITH_AGENCY
config() {
    cat <<YAML
hub:
  name: gw-reload
  journal: {path: $T/journal, sync_interval: 50ms, segment_size: 64KiB}
  status: {listen: "127.0.0.1:$1"}
  status_interval: 1s
buses:
  - {name: lan, type: tcp, host: 127.0.0.1, port: $SIM_PORT, timeout: 500ms}
devices:
  - name: a
    bus: lan
    unit: 1
    interval: $2
    measurement: lab
    registers:
      - {field: counter, table: input, address: 0, type: uint16}
YAML
    if [ "$3" = 1 ]; then
        cat <<YAML
  - name: b
    bus: lan
    unit: 2
    interval: 70ms
    measurement: lab
    registers:
      - {field: counter, table: input, address: 0, type: uint16}
YAML
    fi
    cat <<YAML
mqtt_inputs:
  - name: in
    url: $MQTT_URL
    subscribe:
      - {topic: "sensors/{device}/raw", format: value, measurement: level, field: value, qos: 1}
outputs:
  - {name: ioc, type: influxdb, url: "$INFLUX_URL", database: city, batch_size: 50, flush_interval: 100ms}
YAML
    if [ "$4" = 1 ]; then
        echo "  - {name: agency, type: influxdb, url: \"$INFLUX_URL\", database: agency, flush_interval: 100ms}"
    fi
}

metric() { # NAME{LABELS} on the status server at port $1 -> value (0 when absent)
    curl -sf "http://127.0.0.1:$1/metrics" | awk -v n="$2" '$1 == n { v = $2 } END { print v + 0 }'
}
health() { curl -s "http://127.0.0.1:$1/health" | jq -r "$2"; }
reloads() { grep -c "$1" "$HUB_LOG" || true; }
hup_and_wait() { # PATTERN: SIGHUP, then wait until the log has one more line matching it
    local n0
    n0=$(reloads "$1")
    kill -HUP "$HUB_PID"
    WAIT_TRIES=200 wait_for bash -c "[ \$(grep -c '$1' '$HUB_LOG') -gt $n0 ]" ||
        { tail -30 "$HUB_LOG" >&2; fail "no new \"$1\" in the log after SIGHUP"; }
}
accepted() { metric "$1" cityhub_readings_accepted_total; }
lab_count() { influx_count "$1" "SELECT count(counter) FROM lab WHERE device='$2'"; }
lab_more() { [ "$(lab_count "$1" "$2")" -gt "$3" ]; } # DB DEVICE N
accepted_more() { [ "$(accepted "$1")" -gt "$2" ]; }  # PORT N

config "$SP1" 100ms 0 0 >"$CFG"
"$CITYHUB" check -c "$CFG" || fail "cityhub check refuses the first config"
cp "$CFG" "$T/good.yaml"
start_hub "$CFG"
WAIT_TRIES=200 wait_for curl -sf "http://127.0.0.1:$SP1/health" ||
    { tail -20 "$HUB_LOG" >&2; fail "status server not answering"; }
mosquitto_wait_subscribed gw-reload-in 'sensors/+/raw' || fail "never subscribed"
published=0
publish() { # N: N more messages, values counting on
    seq $((published + 1)) $((published + $1)) | mqtt_pub_lines sensors/tank-1/raw
    published=$((published + $1))
}
publish 10
WAIT_TRIES=200 wait_for lab_more city a 5 || { tail -20 "$HUB_LOG" >&2; fail "no readings of a in InfluxDB"; }

# ---- (1) broken files -----------------------------------------------------------
reject() { # NAME: $CFG holds a broken file; check it, SIGHUP, compare
    local name=$1 before after
    if "$CITYHUB" check -c "$CFG" >"$T/check-$name.out" 2>"$T/check-$name.err"; then
        fail "$name: cityhub check accepts the broken file"
    fi
    [ -s "$T/check-$name.err" ] || fail "$name: cityhub check printed no error"
    before=$(accepted "$SP1")
    hup_and_wait "reload rejected; running configuration unchanged"
    while IFS= read -r line; do
        grep -qF -- "reload: $line" "$HUB_LOG" || { tail -20 "$HUB_LOG" >&2; fail "$name: \"$line\" not in the log"; }
    done <"$T/check-$name.err"
    echo "$name: rejected with the check's $(wc -l <"$T/check-$name.err") line(s): $(head -1 "$T/check-$name.err")"
    # still polling with the old configuration
    WAIT_TRIES=100 wait_for accepted_more "$SP1" $((before + 5)) ||
        fail "$name: readings stopped after the rejected reload"
    [ "$(health "$SP1" .reload.last)" = rejected ] || fail "$name: /health reload.last = $(health "$SP1" .reload.last)"
    health "$SP1" '.reasons[]' | grep -q "last reload rejected" || fail "$name: /health gives no reason"
}
printf 'hub:\n  name: gw-reload\n  journal: {path: %s/journal\ndevices: [\n' "$T" >"$CFG"
reject syntax
config "$SP1" 100ms 0 0 | sed 's/^    interval: 100ms/    intervall: 100ms/' >"$CFG"
reject unknown-key
grep -q 'unknown key "intervall"' "$T/check-unknown-key.err" || fail "unexpected check output for the unknown key"
config "$SP1" 100ms 0 0 | sed "s|path: $T/journal|path: $T/journal2|" >"$CFG"
# a valid file, but the journal's path changes only with a restart: no
# `cityhub check` error; the reload names the key
"$CITYHUB" check -c "$CFG" >/dev/null || fail "the moved journal is a valid file"
hup_and_wait "reload rejected; running configuration unchanged"
grep -q "hub.journal.path changed: .*restart cityhub to apply it" "$HUB_LOG" || fail "journal path change not named"
# a valid file whose output cannot start (its dead-letter file cannot be
# made): the previous configuration runs again
config "$SP1" 100ms 1 0 | sed 's|database: city,|database: city, dead_letter: /proc/cityhub-none/ioc.jsonl,|' >"$CFG"
"$CITYHUB" check -c "$CFG" >/dev/null || fail "the unwritable dead-letter path is a valid file"
before=$(accepted "$SP1")
hup_and_wait "reload rejected; running configuration unchanged"
grep -q "the new configuration did not start (see the errors above); the previous one runs again" "$HUB_LOG" ||
    fail "no word of the failed start"
WAIT_TRIES=100 wait_for accepted_more "$SP1" $((before + 5)) || fail "readings stopped after the failed start"
[ "$(health "$SP1" '.devices | length')" = 1 ] || fail "device b of the failed file runs"
[ "$(metric "$SP1" 'cityhub_reloads_total{result="rejected"}')" = 4 ] || fail "rejected reloads: $(metric "$SP1" 'cityhub_reloads_total{result="rejected"}')"
[ "$(metric "$SP1" cityhub_config_last_reload_successful)" = 0 ] || fail "last reload successful gauge"
[ "$(health "$SP1" .status)" = degraded ] || fail "/health status $(health "$SP1" .status) after a rejected reload"

# ---- (2) a valid file: device b, a's interval, output agency ----------------------
config "$SP1" 200ms 1 1 >"$CFG"
"$CITYHUB" check -c "$CFG" >/dev/null || fail "check refuses the second config"
hup_and_wait "reload applied in [0-9]* ms:"
grep "reload applied in [0-9]* ms:" "$HUB_LOG" | tail -1
grep "reload applied in [0-9]* ms:" "$HUB_LOG" | tail -1 | grep -q "devices +1, -0, 1 changed; mqtt_inputs unchanged; outputs +1, -0, 0 changed" ||
    fail "summary does not say what changed"
WAIT_TRIES=200 wait_for lab_more city b 3 || fail "no readings of the new device b"
WAIT_TRIES=200 wait_for lab_more agency a 3 || fail "the new output agency received nothing"
[ "$(health "$SP1" .reload.last)" = applied ] || fail "/health reload.last after a valid file"
[ "$(health "$SP1" '.devices[] | select(.name == "a") | .interval_s')" = 0.2 ] ||
    fail "a's interval is $(health "$SP1" '.devices[] | select(.name == "a") | .interval_s') s, want 0.2"
[ "$(health "$SP1" '.outputs | length')" = 2 ] || fail "/health does not list both outputs"
[ "$(metric "$SP1" cityhub_config_last_reload_successful)" = 1 ] || fail "last reload successful gauge after a valid file"
grep -q "serving /health.*$SP1" "$HUB_LOG" && [ "$(grep -c "serving /health" "$HUB_LOG")" = 1 ] ||
    fail "the status server restarted although hub.status did not change"

# the status server moves with hub.status.listen; to a port another program
# holds, it cannot: the hub runs on without it, and the next reload of the
# same file, the port free again, starts it
socat "TCP-LISTEN:$SP2,bind=127.0.0.1,reuseaddr,fork" SYSTEM:'sleep 60' >/dev/null 2>&1 &
blocker=$!
track_pid "$blocker"
wait_for bash -c "exec 3<>/dev/tcp/127.0.0.1/$SP2" || fail "socat did not listen on $SP2"
config "$SP2" 200ms 1 1 >"$CFG"
hup_and_wait "reload applied in [0-9]* ms:"
grep -q "running without the status server" "$HUB_LOG" || fail "no word of the status server not listening"
curl -s "http://127.0.0.1:$SP1/health" >/dev/null && fail "status server still answers on the old port $SP1"
kill "$blocker"
wait "$blocker" 2>/dev/null || true
hup_and_wait "reload applied in [0-9]* ms:"
WAIT_TRIES=100 wait_for curl -sf "http://127.0.0.1:$SP2/health" || fail "status server not on the new port $SP2"
[ "$(health "$SP2" .reload.applied)" = 3 ] || fail "reload counts lost when the server moved"
echo "status server moved from $SP1 to $SP2"

# ---- (3) more reloads while readings flow ----------------------------------------
for i in 1 2 3 4; do
    case $i in
    1) config "$SP2" 50ms 1 1 >"$CFG" ;;
    2) config "$SP2" 50ms 0 1 >"$CFG" ;;   # b removed
    3) config "$SP2" 120ms 1 1 >"$CFG" ;;  # b back
    4) config "$SP2" 120ms 1 1 >"$CFG" ;;  # the same file again
    esac
    publish 5 &
    pub=$!
    hup_and_wait "reload applied in [0-9]* ms:"
    wait "$pub" || fail "mosquitto_pub failed"
    published=$((published + 5))
    sleep "1.$((2 * i))"
    publish 10
done
grep "reload applied in [0-9]* ms:" "$HUB_LOG" | tail -1 | grep -q "devices unchanged; mqtt_inputs unchanged; outputs unchanged; hub unchanged" ||
    fail "the same file again is not reported unchanged"
[ "$(health "$SP2" .reload.applied)" = 7 ] || fail "applied reloads: $(health "$SP2" .reload.applied)"
sleep 1
stop_hub
echo "stopped in ${HUB_STOP_MS} ms"

drain_output "$CFG" ioc # what the stop left (nothing, normally)
"$CITYHUB" journal -c "$CFG"
acc=$(journal_stat "$CFG" next_seq)
store_points city
stored=$STORE_POINTS
delivered=$(grep -o "output ioc: [0-9]* delivered" "$HUB_LOG" | awk '{ s += $3 } END { print s + 0 }')
echo "accepted by the journal: $acc; in InfluxDB: $stored ($STORE_DETAIL); delivered by ioc over $(grep -c "output ioc: [0-9]* delivered" "$HUB_LOG") runs: $delivered"
[ "$acc" -gt 100 ] || fail "too few readings flowed ($acc)"
[ "$stored" -eq "$acc" ] || fail "InfluxDB holds $stored points, the journal accepted $acc"
[ "$delivered" -eq "$acc" ] || fail "ioc delivered $delivered readings for $acc accepted (sent twice or lost)"
unique_times city a b
echo "polling paused per reload (ms): $(grep -o "reload applied in [0-9]* ms" "$HUB_LOG" | awk '{ printf "%s ", $4 }')"
level=$(influx_count city "SELECT count(value) FROM level")
echo "MQTT messages published: $published; in InfluxDB: $level"
[ "$level" -eq "$published" ] || fail "$published messages published, $level in InfluxDB"
grep -q "ERROR: LeakSanitizer\|AddressSanitizer" "$HUB_LOG" && fail "sanitizer report in the log"
echo "reload ok"
