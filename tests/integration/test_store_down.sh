# An unreachable InfluxDB never loses readings: they wait in the journal
# (cursor stays, lag grows), survive a restart of the hub, and all arrive once
# the store is up.
set -eu
. tests/lib/fixtures.sh
fixtures_init
start_sim --profile test
ports=$("$FREEPORT" 2)
HTTP=$(echo "$ports" | sed -n 1p)

cat >"$T/hub.yaml" <<YAML
hub:
  name: gw-down
  journal: {path: $T/journal}
  status_interval: 1s
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
  - {name: ioc, type: influxdb, url: "http://127.0.0.1:$HTTP", database: city, flush_interval: 100ms}
YAML
start_hub "$T/hub.yaml"
sleep 2
stop_hub
"$CITYHUB" journal -c "$T/hub.yaml" | tee "$T/j1"
n1=$(awk '$1 == "next_seq" { print $2 }' "$T/j1")
c1=$(awk '$1 == "cursor" { print $3 }' "$T/j1")
lab1=$("$CITYHUB" journal -c "$T/hub.yaml" --dump | grep -c ' lab,')
[ "$lab1" -ge 20 ] || fail "readings should be accepted while the store is down (got $lab1)"
[ "$c1" = 0 ] || [ "$c1" = none ] || fail "cursor moved ($c1) although nothing was delivered"
grep -q "not delivered" "$T/cityhub.log" || fail "the failed delivery is not logged"
# the health point says how old the oldest undelivered reading is
age=$("$CITYHUB" journal -c "$T/hub.yaml" --dump | grep ' cityhub,' | tail -1 |
    sed -n 's/.*oldest_unsent_s=\([0-9.e+-]*\).*/\1/p')
[ -n "$age" ] || fail "no oldest_unsent_s in the health point while the store is down"
awk -v a="$age" 'BEGIN { exit !(a >= 0.5 && a < 30) }' ||
    fail "oldest_unsent_s=$age: expected the age of the first reading (about 1-2 s)"
echo "ok  oldest_unsent_s=$age"

# Restart the hub while the store is still down, then bring the store up on
# the configured port while the hub runs: the backlog and the new readings
# all arrive, without another restart.
start_hub "$T/hub.yaml"
sleep 1
INFLUX_PORT=$HTTP start_influxdb city
for _ in $(seq 150); do
    [ "$(influx_count city 'SELECT count(counter) FROM lab')" -gt "$lab1" ] && break
    sleep 0.2
done
stop_hub
"$CITYHUB" journal -c "$T/hub.yaml" | tee "$T/j2"
lag=$(awk '$1 == "cursor" { print $5 }' "$T/j2")
[ "$lag" = 0 ] || fail "output still $lag readings behind after a clean stop"
labn=$("$CITYHUB" journal -c "$T/hub.yaml" --dump | grep -c ' lab,')
stored=$(influx_count city "SELECT count(counter) FROM lab")
echo "lab readings accepted while down: $lab1, in all: $labn, in the store: $stored"
[ "$stored" -eq "$labn" ] || fail "$stored of $labn readings arrived"
echo "store-down ok"
