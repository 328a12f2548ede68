# Bad Modbus replies and dead slaves: a timeout, an exception, a short reply
# and a garbled reply each produce no data field (never a 0), a status point
# cityhub_device with ok=false and the reason, and never stall the healthy
# device on the same bus or crash the hub.
set -eu
. tests/lib/fixtures.sh
fixtures_init
start_influxdb city
start_sim --profile test --dead-unit 2 --exception-unit 3:2 --short-unit 4 --garbage-unit 5

dev() { # name unit
    cat <<YAML
  - name: $1
    bus: lan
    unit: $2
    interval: 100ms
    measurement: lab
    registers:
      - {field: counter, table: input, address: 0, type: uint16}
      - {field: u16, address: 0, type: uint16}
YAML
}
{
    cat <<YAML
hub:
  name: gw-faults
  journal: {path: $T/journal}
buses:
  - {name: lan, type: tcp, host: 127.0.0.1, port: $SIM_PORT, timeout: 300ms}
devices:
YAML
    dev healthy 1; dev dead 2; dev exception 3; dev short 4; dev garbage 5
    cat <<YAML
outputs:
  - {name: ioc, type: influxdb, url: "$INFLUX_URL", database: city, flush_interval: 100ms}
YAML
} >"$T/hub.yaml"

start_hub "$T/hub.yaml"
sleep 4
kill -0 "$HUB_PID" || fail "cityhub died"
stop_hub

healthy=$(influx_count city "SELECT count(u16) FROM lab WHERE device='healthy'")
echo "healthy device points in 4 s at 100 ms: $healthy"
# The dead slave costs one 300 ms timeout per try and is backed off: the
# healthy device still gets at least a third of its polls.
[ "$healthy" -ge 12 ] || fail "the healthy device was stalled ($healthy points)"
for d in dead exception short garbage; do
    n=$(influx_count city "SELECT count(u16) FROM lab WHERE device='$d'")
    [ "$n" -eq 0 ] || fail "device $d wrote $n data points from failed reads"
    status=$(influx_query city "SELECT last(ok), last(errors) FROM cityhub_device WHERE device='$d'" |
        jq -c '.results[0].series[0].values[0]')
    echo "$d: $status"
    [ "$(echo "$status" | jq '.[1]')" = false ] || fail "device $d: ok should be false"
    [ "$(echo "$status" | jq '.[2]')" -ge 1 ] || fail "device $d: errors should count"
done
err() { influx_query city "SELECT last(error) FROM cityhub_device WHERE device='$1'" |
    jq -r '.results[0].series[0].values[0][1]'; }
err dead | grep -qi "timeout\|timed out" || fail "dead: error is '$(err dead)'"
err exception | grep -qi "exception" || fail "exception: error is '$(err exception)'"
echo "short: $(err short); garbage: $(err garbage)"
[ "$(err short)" != null ] || fail "short reply has no error text"
[ "$(err garbage)" != null ] || fail "garbled reply has no error text"
echo "modbus faults ok"
