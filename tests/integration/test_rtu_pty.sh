# Modbus RTU over a serial line: cityhub-sim --rtu on one end of a socat pty
# pair, cityhub on the other with a `type: rtu` bus. Every type and byte order
# lands in InfluxDB with its exact value; a dead slave and an absent one (both
# silent, as on a real line), an exception and a reply with a bad CRC each give
# no data field, a cityhub_device status point with ok=false and the reason, and
# do not stall the healthy devices on the same line.
set -eu
. tests/lib/fixtures.sh
fixtures_init
start_influxdb city
start_pty_pair
start_sim_rtu "$PTY_A" --profile test --baud 9600 --parity N \
    --dead-unit 2 --exception-unit 4:2 --bad-crc-unit 5

dev() { # name unit interval
    cat <<YAML
  - name: $1
    bus: rs485-1
    unit: $2
    interval: $3
    measurement: lab
    registers:
      - {field: u16, address: 0, type: uint16}
      - {field: counter, table: input, address: 0, type: uint16}
YAML
}
{
    cat <<YAML
hub:
  name: gw-rtu
  journal: {path: $T/journal, sync_interval: 50ms}
buses:
  - {name: rs485-1, type: rtu, device: $PTY_B, baud: 9600, parity: N, data_bits: 8,
     stop_bits: 1, timeout: 500ms, pause: 5ms}
devices:
  - name: healthy
    bus: rs485-1
    unit: 1
    interval: 200ms
    measurement: lab
    registers:
      - {field: u16, address: 0, type: uint16}
      - {field: i16, address: 1, type: int16}
      - {field: u32, address: 2, type: uint32, order: ABCD}
      - {field: i32, address: 4, type: int32, order: ABCD}
      - {field: f_abcd, address: 6, type: float32, order: ABCD}
      - {field: f_cdab, address: 8, type: float32, order: CDAB}
      - {field: f_badc, address: 10, type: float32, order: BADC}
      - {field: f_dcba, address: 12, type: float32, order: DCBA}
      - {field: scaled, address: 20, type: uint16, scale: 0.1, unit: degC}
      - {field: counter, table: input, address: 0, type: uint16}
YAML
    dev healthy-3 3 500ms
    dev dead 2 1s
    dev absent 9 1s
    dev exception 4 500ms
    dev badcrc 5 500ms
    cat <<YAML
outputs:
  - {name: ioc, type: influxdb, url: "$INFLUX_URL", database: city, flush_interval: 200ms}
YAML
} >"$T/hub.yaml"

"$CITYHUB" check -c "$T/hub.yaml" || fail "cityhub check rejects the rtu config"
start_hub "$T/hub.yaml"
sleep 5
kill -0 "$HUB_PID" || { tail -30 "$HUB_LOG" >&2; fail "cityhub died"; }
stop_hub
echo "stopped in ${HUB_STOP_MS} ms"

# Exact values of the newest point of the healthy device.
row=$(influx_query city "SELECT * FROM lab WHERE device='healthy' ORDER BY time DESC LIMIT 1" |
    jq -c '.results[0].series[0]')
echo "$row"
[ "$row" != null ] || { tail -30 "$HUB_LOG" >&2; fail "no reading of the healthy device in the store"; }
get() { echo "$row" | jq -r --arg k "$1" '.values[0][.columns | index($k)]'; }
[ "$(get u16)" = 4660 ] || fail "u16 = $(get u16)"
[ "$(get i16)" = -2 ] || fail "i16 = $(get i16)"
[ "$(get u32)" = 2309737967 ] || fail "u32 = $(get u32)"
[ "$(get i32)" = -123456 ] || fail "i32 = $(get i32)"
for f in f_abcd f_cdab f_badc f_dcba; do
    [ "$(get $f)" = 3.1415927 ] || fail "$f = $(get $f) (a float32 is stored as its shortest decimal)"
done
[ "$(get scaled)" = 23.5 ] || fail "scaled = $(get scaled)"
[ "$(get gateway)" = gw-rtu ] || fail "gateway tag = $(get gateway)"

# Every accepted reading of the healthy device, with its acquisition timestamp
# and counter, is in the store; and no request to unit 1 was lost or repeated:
# each poll is 3 requests (holding 0-13, holding 20, input 0), so its counter
# grows by exactly 3 from one reading to the next.
"$CITYHUB" journal -c "$T/hub.yaml" --dump | grep ' lab,device=healthy,' |
    sed -E 's/.*counter=([0-9]+)i?.* ([0-9]+)$/\2 \1/' | sort >"$T/journal.txt"
influx_csv city "SELECT counter FROM lab WHERE device='healthy'" | awk -F, '{ print $3, $4 }' |
    sort >"$T/store.txt"
healthy=$(wc -l <"$T/journal.txt")
echo "healthy readings: journal $healthy, store $(wc -l <"$T/store.txt")"
diff "$T/journal.txt" "$T/store.txt" || fail "store differs from the journal (time counter)"
steps=$(sort -n -k1 "$T/journal.txt" | awk 'NR > 1 { print $2 - prev } { prev = $2 }' | sort -u |
    tr '\n' ' ')
echo "counter steps between healthy readings: $steps"
[ "$steps" = "3 " ] || fail "unit 1's counter did not grow by exactly 3 per poll: $steps"

# Not stalled: in 5 s at 200 ms the healthy device has 25 slots; the two
# silent slaves cost one 500 ms timeout per try and are backed off.
[ "$healthy" -ge 12 ] || fail "the healthy device was stalled ($healthy readings in 5 s)"
h3=$(influx_count city "SELECT count(u16) FROM lab WHERE device='healthy-3'")
echo "healthy-3 (unit 3, 500 ms): $h3"
[ "$h3" -ge 5 ] || fail "healthy-3 was stalled ($h3 readings in 5 s)"
ok=$(influx_query city "SELECT last(ok) FROM cityhub_device WHERE device='healthy'" |
    jq -c '.results[0].series[0].values[0][1]')
[ "$ok" = true ] || fail "healthy: status ok = $ok"

for d in dead absent exception badcrc; do
    n=$(influx_count city "SELECT count(u16) FROM lab WHERE device='$d'")
    [ "$n" -eq 0 ] || fail "device $d wrote $n data points from failed reads"
    status=$(influx_query city "SELECT last(ok), last(errors), last(error) FROM cityhub_device WHERE device='$d'" |
        jq -c '.results[0].series[0].values[0]')
    echo "$d: $status"
    [ "$status" != null ] || fail "device $d: no cityhub_device status point"
    [ "$(echo "$status" | jq '.[1]')" = false ] || fail "device $d: ok should be false"
    [ "$(echo "$status" | jq '.[2]')" -ge 1 ] || fail "device $d: errors should count"
done
err() { influx_query city "SELECT last(error) FROM cityhub_device WHERE device='$1'" |
    jq -r '.results[0].series[0].values[0][1]'; }
err dead | grep -qi "timeout" || fail "dead: error is '$(err dead)'"
err absent | grep -qi "timeout" || fail "absent: error is '$(err absent)'"
err exception | grep -q "exception 2" || fail "exception: error is '$(err exception)'"
err badcrc | grep -qi "crc" || fail "badcrc: error is '$(err badcrc)'"

# The slave side: unit 9 was asked and never answered.
grep -q "unit 9 fc .* -> no answer (no such unit)" "$T/sim.log" || fail "sim saw no request to unit 9"
grep -q "no answer (dead unit)" "$T/sim.log" || fail "sim saw no request to the dead unit"
if grep -q "bad CRC ignored\|stray byte" "$T/sim.log"; then
    grep "bad CRC ignored\|stray byte" "$T/sim.log" | head -5 >&2
    fail "the sim saw broken request frames from cityhub"
fi
echo "rtu over pty ok"
