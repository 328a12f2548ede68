# hub.status_interval governs the devices' status points (cityhub_device) as
# well as the gateway's (cityhub): with status_interval 2s a healthy device
# gets one about every 2 s, not once a minute. The bus key `debug: frames`
# logs the bus's frames on stderr under its name.
set -eu
. tests/lib/fixtures.sh
fixtures_init
start_sim --profile demo
NOSTORE=$("$FREEPORT")
cat >"$T/hub.yaml" <<YAML
hub:
  name: gw-status
  journal: {path: $T/journal}
  status_interval: 2s
buses:
  - {name: lan, type: tcp, host: 127.0.0.1, port: $SIM_PORT, timeout: 500ms, debug: frames}
devices:
  - name: traffic-1
    bus: lan
    unit: 1
    interval: 200ms
    measurement: traffic
    registers:
      - {field: vehicles_total, table: input, address: 0}
outputs:
  - {name: ioc, type: influxdb, url: "http://127.0.0.1:$NOSTORE", database: city}
YAML
"$CITYHUB" check -c "$T/hub.yaml"
start_hub "$T/hub.yaml"
sleep 7
stop_hub
"$CITYHUB" journal -c "$T/hub.yaml" --dump >"$T/dump"
dev=$(grep -c '^[0-9]* cityhub_device,.*device=traffic-1' "$T/dump" || true)
hub=$(grep -c '^[0-9]* cityhub,' "$T/dump" || true)
data=$(grep -c '^[0-9]* traffic,' "$T/dump" || true)
echo "in 7 s with status_interval 2s: $dev device status points, $hub gateway points, $data readings"
[ "$data" -ge 20 ] || fail "expected at least 20 readings at 200 ms, got $data"
[ "$dev" -ge 3 ] && [ "$dev" -le 5 ] || fail "expected 3 to 5 device status points, got $dev"
[ "$hub" -ge 3 ] || fail "expected at least 3 gateway points, got $hub"
grep -q 'cityhub_device,.*ok=true' "$T/dump" || fail "device status point without ok=true"
grep -Eq 'sources=1[iu]' "$T/dump" || fail "gateway point does not count the device as a source"
grep -q '\[modbus:lan\] frames: ' "$HUB_LOG" || { tail "$HUB_LOG" >&2; fail "no frame dump of bus lan"; }
echo "status interval ok"
