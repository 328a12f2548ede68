# Crash safety (the fault suite's kill -9; formerly tests/integration/
# test_crash.sh): while readings flow from the Modbus simulator to a real
# InfluxDB, kill -9 cityhub at random moments (FAULT_KILLS times, default 20;
# make fault: 200) and restart it; then kill it at chosen points through the
# test build's hook CITYHUB_TEST_CRASH_AT (hub/journal_priv.h): mid-append
# (half a record written), mid-rotation (the next segment created, half its
# header written) and mid-cursor-save (half the temp file written), each
# followed by a restart (FAULT_POINTS rounds of each, default 2). At the end
# every reading the journal accepted is in InfluxDB exactly once: the number
# of points equals the journal's next_seq (readings ever accepted), with no
# duplicate and no missing timestamp per device.
set -eu
. tests/lib/fixtures.sh
fixtures_init
start_influxdb city
start_sim --profile test
KILLS=${FAULT_KILLS:-${CRASH_KILLS:-20}}
POINTS=${FAULT_POINTS:-2}

cat >"$T/hub.yaml" <<YAML
hub:
  name: gw-crash
  journal: {path: $T/journal, sync_interval: 100ms, segment_size: 64KiB}
  status_interval: 1s
buses:
  - {name: lan, type: tcp, host: 127.0.0.1, port: $SIM_PORT, timeout: 500ms}
devices:
  - name: a
    bus: lan
    unit: 1
    interval: 20ms
    measurement: lab
    registers:
      - {field: counter, table: input, address: 0, type: uint16}
      - {field: f, address: 6, type: float32}
  - name: b
    bus: lan
    unit: 2
    interval: 30ms
    measurement: lab
    registers:
      - {field: counter, table: input, address: 0, type: uint16}
outputs:
  - {name: ioc, type: influxdb, url: "$INFLUX_URL", database: city, batch_size: 50, flush_interval: 100ms}
YAML

RANDOM=${CRASH_SEED:-$$}
for i in $(seq "$KILLS"); do
    start_hub "$T/hub.yaml"
    # 0.2 .. 1.5 s of life, at a random point of polling, appending, delivering.
    sleep "$(printf '0.%03d' $((RANDOM % 1000)))"
    sleep "0.$((2 + RANDOM % 5))"
    kill -9 "$HUB_PID"
    wait "$HUB_PID" 2>/dev/null || true
done
echo "killed $KILLS times"

# Chosen points: the hub kills itself there (SIGKILL after writing half).
crash_at() { # KIND:N WAIT_S
    local n0 waited=0
    n0=$(grep -c "CITYHUB_TEST_CRASH_AT=" "$T/cityhub.log" || true)
    CITYHUB_TEST_CRASH_AT=$1 start_hub "$T/hub.yaml"
    while kill -0 "$HUB_PID" 2>/dev/null && [ "$waited" -lt $(($2 * 10)) ]; do
        sleep 0.1
        waited=$((waited + 1))
    done
    kill -9 "$HUB_PID" 2>/dev/null || true
    wait "$HUB_PID" 2>/dev/null || true
    if [ "$(grep -c "CITYHUB_TEST_CRASH_AT=" "$T/cityhub.log" || true)" -gt "$n0" ]; then
        hits=$((hits + 1))
    else
        echo "crash point $1 not reached within $2 s"
    fi
}
hits=0
for _ in $(seq "$POINTS"); do
    crash_at "append:$((1 + RANDOM % 150))" 10
    crash_at "cursor:$((1 + RANDOM % 5))" 10
done
# A rotation every 64 KiB: about 10 s of readings; once per run.
crash_at rotate:1 30
echo "chosen crash points reached: $hits of $((2 * POINTS + 1))"
[ "$hits" -ge $((2 * POINTS)) ] || fail "the test hook CITYHUB_TEST_CRASH_AT did not fire (test build?)"
grep "CITYHUB_TEST_CRASH_AT=" "$T/cityhub.log" | sed 's/^.*journal: //' | sort | uniq -c

# Last run: a clean stop, then a hub with the same journal and output but no
# devices drains what is left.
start_hub "$T/hub.yaml"
sleep 1
stop_hub
drain_output "$T/hub.yaml" ioc
"$CITYHUB" journal -c "$T/hub.yaml"
accepted=$(journal_stat "$T/hub.yaml" next_seq)
lag=$(output_lag "$T/hub.yaml" ioc)
[ "$lag" = 0 ] || fail "output still $lag readings behind"

store_points city
stored=$STORE_POINTS
echo "accepted by the journal: $accepted; in InfluxDB: $stored ($STORE_DETAIL)"
[ "$accepted" -gt 100 ] || fail "too few readings flowed ($accepted)"
[ "$stored" -eq "$accepted" ] || fail "store holds $stored points, journal accepted $accepted"

# No duplicates: every (device, time) is unique in the store, and counters per
# device never repeat a timestamp.
unique_times city a b
grep -c "torn tail\|cut" "$T/cityhub.log" || true
echo "crash ok"
