# SIGTERM with a store that accepts connections but never answers: cityhub
# still exits 0 within 5 s, with everything accepted synced in the journal
# and the cursor not moved (the batch in flight is sent again after restart).
set -eu
. tests/lib/fixtures.sh
fixtures_init
start_sim --profile test
HANG=$("$FREEPORT")
socat "TCP-LISTEN:$HANG,bind=127.0.0.1,reuseaddr,fork" SYSTEM:'sleep 60' &
track_pid $!
wait_for bash -c "exec 3<>/dev/tcp/127.0.0.1/$HANG" || fail "socat did not listen"

cat >"$T/hub.yaml" <<YAML
hub:
  name: gw-stop
  journal: {path: $T/journal}
buses:
  - {name: lan, type: tcp, host: 127.0.0.1, port: $SIM_PORT}
devices:
  - name: a
    bus: lan
    unit: 1
    interval: 50ms
    measurement: lab
    registers:
      - {field: counter, table: input, address: 0, type: uint16}
outputs:
  - {name: ioc, type: influxdb, url: "http://127.0.0.1:$HANG", database: city,
     flush_interval: 100ms, timeout: 30s}
YAML
start_hub "$T/hub.yaml"
sleep 2
stop_hub
echo "stopped in $HUB_STOP_MS ms with the output blocked on a silent server"
"$CITYHUB" journal -c "$T/hub.yaml" | tee "$T/j"
[ "$(awk '$1 == "next_seq" { print $2 }' "$T/j")" -ge 20 ] || fail "readings were not accepted"
awk '$1 == "cursor" { print $3 }' "$T/j" | grep -qx '0\|none' || fail "cursor moved without a 2xx"
grep -q "stopping with a batch of [0-9]* undelivered\|still busy at the stop deadline" "$T/cityhub.log" ||
    fail "the undelivered batch is not reported"
echo "stop deadline ok"
