# QoS 1 through a broker restart: a publisher sends MQTT_MSGS (default 300)
# line-protocol messages with explicit ns timestamps, one mosquitto_pub -q 1
# each, while Mosquitto is restarted mid-stream (SIGTERM: it saves its
# sessions and queues, and comes back on the same port). The hub's persistent
# session (clean_session false) gets what was queued while it was away. At
# the end every message whose publish succeeded (exit status 0) is in
# InfluxDB exactly once, and nothing that was never published is.
set -eu
. tests/lib/fixtures.sh
fixtures_init
start_influxdb city
start_mosquitto
N=${MQTT_MSGS:-300}

cat >"$T/hub.yaml" <<YAML
hub:
  name: gw-test
  tags: {district: d1, site: s1}
  journal: {path: $T/journal, sync_interval: 100ms}
mqtt_inputs:
  - name: sensors
    url: $MQTT_URL
    client_id: gw-test-in
    clean_session: false
    keepalive: 5s
    reconnect_max: 2s
    subscribe:
      - {topic: "lp/#", format: influx, qos: 1}
outputs:
  - {name: ioc, type: influxdb, url: "$INFLUX_URL", database: city, batch_size: 500, flush_interval: 200ms}
YAML
start_hub "$T/hub.yaml"
mosquitto_wait_subscribed gw-test-in 'lp/#' ||
    { tail -20 "$HUB_LOG" >&2; fail "the hub did not subscribe"; }

# Publisher, about 60 messages a second: message i has timestamp BASE + i
# (ns) and seq=i; its outcome is recorded in ok / failed.
BASE=$((($(date +%s) - 600) * 1000000000))
: >"$T/ok"
: >"$T/failed"
(
    for i in $(seq "$N"); do
        if mosquitto_pub -h 127.0.0.1 -p "$MQTT_PORT" -i "pub-$i" -q 1 -t "lp/restart" \
            -m "rs,src=pub seq=${i}i $((BASE + i))" 2>/dev/null; then
            echo "$((BASE + i))" >>"$T/ok"
        else
            echo "$((BASE + i))" >>"$T/failed"
        fi
        sleep 0.01
    done
) &
PUB=$!
track_pid "$PUB"

# Restart the broker once a third of the messages are out.
WAIT_TRIES=300 wait_for bash -c "[ \$(cat '$T/ok' '$T/failed' | wc -l) -ge $((N / 3)) ]" ||
    fail "the publisher is stuck"
restart_mosquitto
echo "broker restarted after $(cat "$T/ok" "$T/failed" | wc -l) publishes"
wait "$PUB" || true
untrack_pid "$PUB"
published=$(wc -l <"$T/ok")
failed=$(wc -l <"$T/failed")
echo "published $published, failed $failed (broker down)"
[ "$published" -ge $((N / 2)) ] || fail "too few publishes succeeded ($published of $N)"
[ "$failed" -lt "$N" ] || fail "every publish failed"

# The hub comes back (at most reconnect_max) and drains its queue.
mosquitto_wait_connects gw-test-in 2 ||
    { tail -20 "$HUB_LOG" >&2; fail "the hub did not reconnect after the restart"; }
stored=0
for _ in $(seq 150); do
    stored=$(influx_count city "SELECT count(seq) FROM rs")
    [ "$stored" -ge "$published" ] && break
    sleep 0.2
done
sleep 1
stop_hub

influx_csv city "SELECT seq FROM rs" | cut -d, -f3 | sort >"$T/stored"
sort "$T/ok" >"$T/ok.sorted"
sort "$T/ok" "$T/failed" >"$T/attempted"
stored=$(wc -l <"$T/stored")
distinct=$(sort -u "$T/stored" | wc -l)
missing=$(comm -23 "$T/ok.sorted" "$T/stored" | wc -l)
unknown=$(comm -13 "$T/attempted" "$T/stored" | wc -l)
extra=$(comm -13 "$T/ok.sorted" "$T/stored" | wc -l)
echo "in InfluxDB: $stored points, $distinct distinct timestamps; missing $missing; from failed publishes $extra"
[ "$missing" -eq 0 ] || fail "$missing acknowledged messages are not in the store: $(comm -23 "$T/ok.sorted" "$T/stored" | head -5 | tr '\n' ' ')"
[ "$unknown" -eq 0 ] || fail "$unknown points in the store were never published"
[ "$distinct" -eq "$stored" ] || fail "$stored points but $distinct distinct timestamps: duplicates"
# A publish that failed on a connection the broker closed may still have
# been taken (MQTT is at least once): such a message may be stored, no more.
[ "$stored" -eq $((published + extra)) ] || fail "store holds $stored points, $published published"
[ "$extra" -le 1 ] || fail "$extra messages whose publish failed are in the store"
# seq and time agree on every point.
bad=$(influx_csv city "SELECT seq FROM rs" | awk -F, 'substr($3, length($3) - 8) + 0 != $4' | wc -l)
[ "$bad" -eq 0 ] || fail "$bad points whose seq does not match their timestamp"
echo "connects of the hub: $(mosquitto_connects gw-test-in)"
echo "mqtt broker restart ok"
