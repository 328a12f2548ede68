# `cityhub journal` (and --dump) on a journal the hub is writing, rotating
# and deleting delivered segments from: every run ends promptly with status 0,
# and the dumped seqs are increasing.
set -eu
. tests/lib/fixtures.sh
fixtures_init
start_influxdb city
start_sim --profile test
cat >"$T/hub.yaml" <<YAML
hub:
  name: gw-live
  journal: {path: $T/journal, segment_size: 64KiB}
buses:
  - {name: lan, type: tcp, host: 127.0.0.1, port: $SIM_PORT}
devices:
$(for d in a b c d e f g h; do
    printf '  - {name: %s, bus: lan, unit: 1, interval: 10ms, measurement: lab,\n' "$d"
    printf '     tags: {padding: %s},\n' "$(printf 'x%.0s' $(seq 60))"
    printf '     registers: [{field: counter, table: input, address: 0, type: uint16},\n'
    printf '                 {field: f, address: 6, type: float32}]}\n'
done)
outputs:
  - {name: ioc, type: influxdb, url: "$INFLUX_URL", database: city, batch_size: 100,
     flush_interval: 20ms}
YAML
start_hub "$T/hub.yaml"
wait_for grep -q "running:" "$T/cityhub.log" || fail "cityhub did not start"
for i in $(seq 15); do
    timeout 10 "$CITYHUB" journal -c "$T/hub.yaml" --dump >"$T/dump" 2>>"$T/dump.err" ||
        fail "journal --dump run $i failed or hung (status $?)"
    awk 'NR > 1 && $1 <= prev { bad = 1 } { prev = $1 } END { exit bad }' "$T/dump" ||
        fail "dump run $i: seqs not increasing"
    timeout 10 "$CITYHUB" journal -c "$T/hub.yaml" >"$T/stat" || fail "journal run $i failed"
    sleep 0.2
done
segs_deleted=$(grep -c "skipped" "$T/dump.err" || true)
stop_hub
n=$(journal_stat "$T/hub.yaml" next_seq)
echo "15 dumps of a live journal ok; $n readings accepted; $segs_deleted dumps passed a deleted segment"
[ "$n" -gt 200 ] || fail "too few readings flowed ($n)"
