# The gateway's health point comes every status_interval even when the
# journal's sync_interval is longer: the main loop wakes for whichever is due.
set -eu
. tests/lib/fixtures.sh
fixtures_init
NOSTORE=$("$FREEPORT")
cat >"$T/hub.yaml" <<YAML
hub:
  name: gw-health
  journal: {path: $T/journal, sync_interval: 4s}
  status_interval: 1s
outputs:
  - {name: ioc, type: influxdb, url: "http://127.0.0.1:$NOSTORE", database: city}
YAML
start_hub "$T/hub.yaml"
sleep 3.6
stop_hub
"$CITYHUB" journal -c "$T/hub.yaml" --dump >"$T/dump"
n=$(grep -c '^[0-9]* cityhub,' "$T/dump" || true)
echo "health points in 3.6 s with status_interval 1s, sync_interval 4s: $n"
[ "$n" -ge 3 ] || fail "expected at least 3 health points, got $n"
head -1 "$T/dump" | grep -q 'gateway=gw-health' || fail "health point without the gateway tag"
echo "health interval ok"
