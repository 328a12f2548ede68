# Modbus TCP slave (libmodbus server) -> cityhub -> real InfluxDB 1.x: every
# type and byte order lands with its exact value, and the timestamps in the
# store are exactly the acquisition timestamps in the journal.
set -eu
. tests/lib/fixtures.sh
fixtures_init
start_influxdb city
start_sim --profile test

cat >"$T/hub.yaml" <<YAML
hub:
  name: gw-test
  tags: {district: "dong hoi", site: "a,b=c"}
  journal: {path: $T/journal, sync_interval: 50ms}
buses:
  - {name: lan, type: tcp, host: 127.0.0.1, port: $SIM_PORT, timeout: 500ms}
devices:
  - name: lab-1
    bus: lan
    unit: 1
    interval: 200ms
    measurement: lab
    tags: {room: "r 1"}
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
outputs:
  - {name: ioc, type: influxdb, url: "$INFLUX_URL", database: city, flush_interval: 200ms}
YAML
start_hub "$T/hub.yaml"
# At least 8 readings in the store (1.6 s at 200 ms), waiting up to 60 s: a
# loaded machine, or the program of an Arm board under emulation
# (tests/board/), may start slowly.
lab_count() { influx_query city "SELECT count(counter) FROM lab" | jq -r '.results[0].series[0].values[0][1] // 0'; }
have_readings() { [ "$(lab_count)" -ge 8 ]; }
WAIT_TRIES=600 wait_for have_readings ||
    fail "fewer than 8 readings in the store after 60 s ($(lab_count)): $(tail -20 "$HUB_LOG")"
stop_hub
echo "stopped in ${HUB_STOP_MS} ms"

# Exact values of the newest point.
row=$(influx_query city "SELECT * FROM lab ORDER BY time DESC LIMIT 1" | jq -c '.results[0].series[0]')
echo "$row"
get() { echo "$row" | jq -r --arg k "$1" '.values[0][.columns | index($k)]'; }
[ "$(get u16)" = 4660 ] || fail "u16 = $(get u16)"
[ "$(get i16)" = -2 ] || fail "i16 = $(get i16)"
[ "$(get u32)" = 2309737967 ] || fail "u32 = $(get u32)"
[ "$(get i32)" = -123456 ] || fail "i32 = $(get i32)"
for f in f_abcd f_cdab f_badc f_dcba; do
    [ "$(get $f)" = 3.1415927 ] || fail "$f = $(get $f) (a float32 is stored as its shortest decimal)"
done
[ "$(get scaled)" = 23.5 ] || fail "scaled = $(get scaled)"
[ "$(get gateway)" = gw-test ] || fail "gateway tag = $(get gateway)"
[ "$(get device)" = lab-1 ] || fail "device tag"
[ "$(get district)" = "dong hoi" ] || fail "district tag = $(get district)"
[ "$(get site)" = "a,b=c" ] || fail "site tag = $(get site)"
[ "$(get room)" = "r 1" ] || fail "room tag"

# Every accepted reading of lab-1, with its acquisition timestamp, is in the store.
"$CITYHUB" journal -c "$T/hub.yaml" --dump | grep ' lab,' |
    sed -E 's/.*counter=([0-9]+)i?.* ([0-9]+)$/\2 \1/' | sort >"$T/journal.txt"
influx_csv city "SELECT counter FROM lab" | awk -F, '{ print $3, $4 }' | sort >"$T/store.txt"
n=$(wc -l <"$T/journal.txt")
echo "journal lab readings: $n, store: $(wc -l <"$T/store.txt")"
[ "$n" -ge 8 ] || fail "expected at least 8 readings in the journal, got $n"
diff "$T/journal.txt" "$T/store.txt" || fail "store differs from the journal (time counter)"
# Timestamps are real acquisition times: within the run, strictly increasing.
now=$(date +%s%N)
first=$(head -1 "$T/journal.txt" | cut -d' ' -f1)
[ $((now - first)) -lt 60000000000 ] || fail "timestamps are not current: $first"
echo "end-to-end ok"
