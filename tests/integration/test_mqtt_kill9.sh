# Crash safety of the MQTT input: a publisher streams QoS 1 line-protocol
# messages (unique explicit timestamps, one mosquitto_pub -l -q 1) while the
# hub is killed with SIGKILL and started again MQTT_KILLS times (default 12)
# at random moments 0.2-1.0 s apart, with the same journal and the same
# persistent session (client id, clean_session false). A message is
# acknowledged only once its reading is in the journal, so none is lost; one
# the broker sends again overwrites itself. At the end InfluxDB holds every
# published message exactly once: the count equals the number published, the
# timestamps are distinct and are exactly the published ones.
set -eu
. tests/lib/fixtures.sh
fixtures_init
start_influxdb city
start_mosquitto
KILLS=${MQTT_KILLS:-12}

cat >"$T/hub.yaml" <<YAML
hub:
  name: gw-test
  tags: {district: d1, site: s1}
  journal: {path: $T/journal, sync_interval: 100ms, segment_size: 64KiB}
mqtt_inputs:
  - name: sensors
    url: $MQTT_URL
    client_id: gw-test-in
    clean_session: false
    keepalive: 5s
    reconnect_max: 1s
    subscribe:
      - {topic: "lp/#", format: influx, qos: 1}
outputs:
  - {name: ioc, type: influxdb, url: "$INFLUX_URL", database: city, batch_size: 50, flush_interval: 100ms}
YAML
"$CITYHUB" check -c "$T/hub.yaml" || fail "cityhub check refuses the config"

# The first run makes the persistent session; from then on the broker queues
# for the hub whether it is up or not.
start_hub "$T/hub.yaml"
mosquitto_wait_subscribed gw-test-in 'lp/#' ||
    { tail -20 "$HUB_LOG" >&2; fail "the hub did not subscribe"; }

# Publisher: about 100 messages a second until $T/stop exists; every line
# sent is in $T/sent. Message i: seq=i at BASE + i ns.
BASE=$((($(date +%s) - 600) * 1000000000))
(
    i=0
    while [ ! -e "$T/stop" ]; do
        for _ in 1 2 3 4 5; do
            i=$((i + 1))
            echo "k9,src=pub seq=${i}i $((BASE + i))"
        done
        sleep 0.05
    done
) | tee "$T/sent" |
    mosquitto_pub -h 127.0.0.1 -p "$MQTT_PORT" -i pub-k9 -q 1 -t lp/k9 -l 2>"$T/pub.err" &
PUB=$!
track_pid "$PUB"

# kill9_hub: SIGKILL; the hub must have been alive (exit status 137).
kill9_hub() {
    local st=0
    kill -9 "$HUB_PID" 2>/dev/null || true
    wait "$HUB_PID" 2>/dev/null || st=$?
    [ "$st" -eq 137 ] || { tail -30 "$HUB_LOG" >&2; fail "cityhub had exited by itself (status $st)"; }
}
RANDOM=${MQTT_SEED:-$$}
connects0=$(mosquitto_connects gw-test-in)
for i in $(seq "$KILLS"); do
    ms=$((200 + RANDOM % 801))
    sleep "$((ms / 1000)).$(printf '%03d' $((ms % 1000)))"
    kill9_hub
    start_hub "$T/hub.yaml"
done
sleep "0.$((2 + RANDOM % 8))"
kill9_hub
connected=$(($(mosquitto_connects gw-test-in) - connects0))
during=$(influx_count city "SELECT count(seq) FROM k9")
echo "killed $((KILLS + 1)) times; the hub connected $connected times meanwhile; $during points stored so far"

# Last run: the publisher stops, the hub drains the queue and stops cleanly.
start_hub "$T/hub.yaml"
touch "$T/stop"
rc=0
wait "$PUB" || rc=$?
untrack_pid "$PUB"
[ "$rc" -eq 0 ] || { cat "$T/pub.err" >&2; fail "mosquitto_pub -l exited $rc"; }
published=$(wc -l <"$T/sent")
echo "published $published messages"
[ "$published" -ge 300 ] || fail "too few messages published ($published)"
stored=0
for _ in $(seq 200); do
    stored=$(influx_count city "SELECT count(seq) FROM k9")
    [ "$stored" -ge "$published" ] && break
    sleep 0.2
done
sleep 1
stop_hub

influx_csv city "SELECT seq FROM k9" | cut -d, -f3 | sort >"$T/stored"
sed 's/.* //' "$T/sent" | sort >"$T/sent.ts"
stored=$(wc -l <"$T/stored")
distinct=$(sort -u "$T/stored" | wc -l)
missing=$(comm -23 "$T/sent.ts" "$T/stored" | wc -l)
unknown=$(comm -13 "$T/sent.ts" "$T/stored" | wc -l)
echo "in InfluxDB: $stored points, $distinct distinct timestamps; missing $missing, unknown $unknown"
[ "$connected" -ge 3 ] || fail "the hub was connected only $connected times between kills: the kills tested nothing"
[ "$during" -gt 0 ] || fail "nothing arrived while the hub was being killed"
[ "$missing" -eq 0 ] || fail "$missing published messages are not in the store: $(comm -23 "$T/sent.ts" "$T/stored" | head -5 | tr '\n' ' ')"
[ "$unknown" -eq 0 ] || fail "$unknown points in the store were never published"
[ "$distinct" -eq "$stored" ] || fail "$stored points but $distinct distinct timestamps: duplicates"
[ "$stored" -eq "$published" ] || fail "store holds $stored points, $published were published"
bad=$(influx_csv city "SELECT seq FROM k9" | awk -F, 'substr($3, length($3) - 8) + 0 != $4' | wc -l)
[ "$bad" -eq 0 ] || fail "$bad points whose seq does not match their timestamp"
grep -c "torn tail" "$HUB_LOG" || true
echo "mqtt kill9 ok"
