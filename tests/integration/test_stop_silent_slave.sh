# SIGTERM while a bus thread waits on a Modbus TCP slave that accepts the
# connection but never answers, with a long reply timeout (10 s): cityhub
# still exits 0 within 5 s (the bus thread is not waited for past the stop
# deadline), and what the journal accepted before is there after restart.
set -eu
. tests/lib/fixtures.sh
fixtures_init
start_sim --profile test
start_silent_slave
NOSTORE=$("$FREEPORT")

cat >"$T/hub.yaml" <<YAML
hub:
  name: gw-silent
  journal: {path: $T/journal}
buses:
  - {name: good, type: tcp, host: 127.0.0.1, port: $SIM_PORT}
  - {name: silent, type: tcp, host: 127.0.0.1, port: $SILENT, timeout: 10s}
devices:
  - name: a
    bus: good
    unit: 1
    interval: 50ms
    measurement: lab
    registers:
      - {field: counter, table: input, address: 0, type: uint16}
  - name: mute
    bus: silent
    unit: 1
    interval: 100ms
    measurement: lab
    registers:
      - {field: counter, table: input, address: 0, type: uint16}
outputs:
  - {name: ioc, type: influxdb, url: "http://127.0.0.1:$NOSTORE", database: city,
     flush_interval: 100ms}
YAML
start_hub "$T/hub.yaml"
sleep 1.5
stop_hub
echo "stopped in $HUB_STOP_MS ms with a bus thread waiting on a silent slave"
accepted=$(journal_stat "$T/hub.yaml" next_seq)
[ "$accepted" -ge 10 ] || fail "readings were not accepted ($accepted)"
# The journal opens cleanly again: nothing half-written was left behind.
"$CITYHUB" journal -c "$T/hub.yaml" --dump >"$T/dump" 2>"$T/dump.err" || fail "journal --dump failed"
[ "$(wc -l <"$T/dump")" -eq "$accepted" ] || fail "dump has $(wc -l <"$T/dump") records, journal $accepted"
echo "silent slave stop ok"
