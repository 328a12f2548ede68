# IPv6 like IPv4: a Modbus TCP slave on ::1 and a store reached at
# http://[::1]:PORT work exactly as their IPv4 twins.
set -eu
. tests/lib/fixtures.sh
fixtures_init
start_influxdb city
SIM_HOST=::1 start_sim --profile test
V6=$("$FREEPORT")
# InfluxDB listens on 127.0.0.1; a socat relay offers it on [::1].
socat "TCP6-LISTEN:$V6,bind=[::1],reuseaddr,fork" "TCP4:127.0.0.1:${INFLUX_URL##*:}" &
track_pid $!
wait_for bash -c "exec 3<>/dev/tcp/::1/$V6" || fail "no relay on [::1]:$V6"

cat >"$T/hub.yaml" <<YAML
hub:
  name: gw-v6
  journal: {path: $T/journal}
buses:
  - {name: lan6, type: tcp, host: "::1", port: $SIM_PORT}
devices:
  - name: v6
    bus: lan6
    unit: 1
    interval: 100ms
    measurement: lab
    registers:
      - {field: u16, address: 0, type: uint16}
outputs:
  - {name: ioc, type: influxdb, url: "http://[::1]:$V6", database: city, flush_interval: 100ms}
YAML
start_hub "$T/hub.yaml"
sleep 2
stop_hub
n=$(influx_count city "SELECT count(u16) FROM lab WHERE device='v6'")
v=$(influx_csv city "SELECT last(u16) FROM lab" | cut -d, -f4)
echo "points over IPv6: $n, last u16: $v"
[ "$n" -ge 10 ] || fail "expected at least 10 points over IPv6, got $n"
[ "$v" = 4660 ] || fail "u16 = $v"
echo "ipv6 ok"
