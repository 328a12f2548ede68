# Crash safety: while readings flow, kill -9 cityhub at random moments
# (CRASH_KILLS times, default 20) and restart it. At the end every reading the
# journal accepted is in InfluxDB exactly once: the number of points equals
# the journal's next_seq (readings ever accepted), with no duplicate and no
# missing timestamp per device.
set -eu
. tests/lib/fixtures.sh
fixtures_init
start_influxdb city
start_sim --profile test
KILLS=${CRASH_KILLS:-20}

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

# Last run: a clean stop, then a hub with the same journal and output but no
# devices drains what is left.
start_hub "$T/hub.yaml"
sleep 1
stop_hub
sed -e '/^buses:/,/^outputs:/{/^outputs:/!d}' -e 's/status_interval: 1s/status_interval: 1h/' \
    "$T/hub.yaml" >"$T/drain.yaml"
start_hub "$T/drain.yaml"
for _ in $(seq 150); do
    lag=$("$CITYHUB" journal -c "$T/hub.yaml" | awk '$1 == "cursor" { print $5 }')
    [ "$lag" = 0 ] && break
    sleep 0.2
done
stop_hub
"$CITYHUB" journal -c "$T/hub.yaml"
accepted=$(journal_stat "$T/hub.yaml" next_seq)
lag=$("$CITYHUB" journal -c "$T/hub.yaml" | awk '$1 == "cursor" { print $5 }')
[ "$lag" = 0 ] || fail "output still $lag readings behind"

lab=$(influx_count city "SELECT count(counter) FROM lab")
dev=$(influx_count city "SELECT count(ok) FROM cityhub_device")
hub=$(influx_count city "SELECT count(uptime_s) FROM cityhub")
out=$(influx_count city "SELECT count(delivered) FROM cityhub_output")
stored=$((lab + dev + hub + out))
echo "accepted by the journal: $accepted; in InfluxDB: $stored (lab $lab, cityhub_device $dev, cityhub $hub, cityhub_output $out)"
[ "$accepted" -gt 100 ] || fail "too few readings flowed ($accepted)"
[ "$stored" -eq "$accepted" ] || fail "store holds $stored points, journal accepted $accepted"

# No duplicates: every (device, time) is unique in the store, and counters per
# device never repeat a timestamp.
for d in a b; do
    influx_csv city "SELECT counter FROM lab WHERE device='$d'" | cut -d, -f3 >"$T/ts-$d"
    total=$(wc -l <"$T/ts-$d")
    uniq=$(sort -u "$T/ts-$d" | wc -l)
    [ "$total" -eq "$uniq" ] || fail "device $d: $total points but $uniq distinct timestamps"
done
grep -c "torn tail\|cut" "$T/cityhub.log" || true
echo "crash ok"
