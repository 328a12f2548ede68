# The live MQTT output (outputs: type mqtt): readings from an MQTT input and
# from a Modbus device (the simulator) are republished, retained, on the
# templated topic
# city/{district}/{site}/{measurement}/{device} (a missing tag is "_") as
# {"measurement","time","ts","tags","fields","units"} (units: those the
# configuration knows, here the Modbus register's); a late subscriber gets
# the last value. The gateway's status topic reads "online" (retained) while
# it runs and "offline" after kill -9 and after a freeze longer than 1.5 x
# keepalive (the Last Will) and after a clean SIGTERM; the health topic holds
# the hub's own point (measurement cityhub).
set -eu
. tests/lib/fixtures.sh
fixtures_init
start_mosquitto
start_sim --profile test

cat >"$T/hub.yaml" <<YAML
hub:
  name: gw-test
  tags: {district: d1, site: s1}
  journal: {path: $T/journal, sync_interval: 100ms}
  status_interval: 1s
mqtt_inputs:
  - name: sensors
    url: $MQTT_URL
    client_id: gw-test-in
    subscribe:
      - {topic: "sensors/{device}/json", format: json, measurement: weather, fields: {temperature: /t, humidity: /h}, time: /ts, precision: ms, qos: 1}
      - {topic: "lp/#", format: influx, qos: 1}
buses:
  - {name: lan, type: tcp, host: 127.0.0.1, port: $SIM_PORT, timeout: 500ms}
devices:
  - name: lab-1
    bus: lan
    unit: 1
    interval: 500ms
    measurement: lab
    registers:
      - {field: scaled, address: 20, type: uint16, scale: 0.1, unit: degC}
outputs:
  - name: live
    type: mqtt
    url: $MQTT_URL
    client_id: gw-test-live
    keepalive: 2s
    reconnect_max: 2s
    topic: "city/{district}/{site}/{measurement}/{device}"
    payload: json
    qos: 1
    retain: true
    status_topic: "cityhub/{gateway}/status"
    health_topic: "cityhub/{gateway}/health"
YAML
"$CITYHUB" check -c "$T/hub.yaml" || fail "cityhub check refuses the live output config"

# retained TOPIC [WAIT_S] -> "RETAIN_FLAG PAYLOAD" of what a new subscriber
# gets first, "" when nothing comes.
retained() {
    mqtt_sub -i "late-$RANDOM" -C 1 -W "${2:-3}" -t "$1" -F '%r %p' 2>/dev/null || true
}
# wait_retained TOPIC WANT_PAYLOAD_REGEX: until the retained message matches (10 s).
wait_retained() {
    local got="" end=$(($(date +%s) + 12))
    while [ "$(date +%s)" -lt "$end" ]; do
        got=$(retained "$1" 1)
        echo "$got" | grep -qE "$2" && return 0
        sleep 0.2
    done
    echo "last on $1: '$got'" >&2
    return 1
}

start_hub "$T/hub.yaml"
mosquitto_wait_subscribed gw-test-in 'sensors/+/json' || { tail -20 "$HUB_LOG" >&2; fail "no subscription"; }
S=$(($(date +%s) - 60))
mqtt_pub sensors/th-1/json "{\"t\":21.5,\"h\":40,\"ts\":${S}000}"
mqtt_pub sensors/th-1/json "{\"t\":22.25,\"h\":41,\"ts\":$((S + 1))500}"
mqtt_pub lp/meter "meter,phase=1 p=5.5 $((S + 2))000000000"

TOPIC=city/d1/s1/weather/th-1
wait_retained "$TOPIC" '"temperature": ?22.25' || { tail -20 "$HUB_LOG" >&2; fail "no retained 22.25 on $TOPIC"; }
got=$(retained "$TOPIC")
echo "late subscriber on $TOPIC: $got"
[ "${got%% *}" = 1 ] || fail "the message on $TOPIC is not retained"
msg=${got#* }
echo "$msg" | jq -e '.measurement == "weather"
    and .tags == {"gateway": "gw-test", "district": "d1", "site": "s1", "device": "th-1"}
    and .fields == {"temperature": 22.25, "humidity": 41}
    and ((has("units") | not) or (.units | type) == "object")' >/dev/null ||
    fail "unexpected live JSON: $msg"
ts=$(echo "$msg" | grep -o '"ts": *[0-9]*' | grep -o '[0-9]*$')
[ "$ts" = "$((S + 1))500000000" ] || fail "ts = $ts, want $((S + 1))500000000"
time=$(echo "$msg" | jq -r .time)
echo "$time" | grep -qE '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})$' ||
    fail "time '$time' is not RFC 3339"
[ "$(date -u -d "$time" +%s%N)" = "$ts" ] || fail "time $time is not ts $ts"
echo "ok  retained live value: $msg"

# A reading without a device tag: "_" in its place.
wait_retained city/d1/s1/meter/_ '"p": ?5.5' || fail "no live message on city/d1/s1/meter/_"
m=$(retained city/d1/s1/meter/_)
echo "${m#* }" | jq -e '.measurement == "meter" and .tags.phase == "1" and .fields.p == 5.5' >/dev/null ||
    fail "unexpected meter message: $m"
echo "ok  missing tag as _: $m"

# A Modbus reading, with the unit of its register.
wait_retained city/d1/s1/lab/lab-1 '"scaled": ?23.5' || { tail -20 "$HUB_LOG" >&2; fail "no live Modbus value"; }
m=$(retained city/d1/s1/lab/lab-1)
echo "modbus: $m"
echo "${m#* }" | jq -e '.measurement == "lab" and .fields == {"scaled": 23.5} and .units == {"scaled": "degC"}
    and .tags == {"gateway": "gw-test", "district": "d1", "site": "s1", "device": "lab-1"}' >/dev/null ||
    fail "unexpected live Modbus message (want fields {scaled: 23.5}, units {scaled: degC}): $m"
echo "ok  modbus value with its unit"

# Status and health.
st=$(retained cityhub/gw-test/status)
[ "$st" = "1 online" ] || fail "status is '$st', want retained online"
wait_retained cityhub/gw-test/health '"measurement": ?"cityhub"' || fail "no health point on cityhub/gw-test/health"
h=$(retained cityhub/gw-test/health)
echo "health: $h"
[ "${h%% *}" = 1 ] || fail "the health message is not retained"
echo "${h#* }" | jq -e '.measurement == "cityhub" and .tags.gateway == "gw-test"
    and (.fields.uptime_s | type) == "number"' >/dev/null || fail "unexpected health JSON: $h"
# status_interval 1s: it is renewed, so it is recent.
hts=$(echo "${h#* }" | grep -o '"ts": *[0-9]*' | grep -o '[0-9]*$')
age=$((($(date +%s%N) - hts) / 1000000))
[ "$age" -lt 5000 ] || fail "the retained health point is $age ms old (status_interval 1s)"
echo "ok  status online, health point $age ms old"

# kill -9: the broker publishes the Last Will.
t0=$(date +%s%N)
kill -9 "$HUB_PID"
wait "$HUB_PID" 2>/dev/null || true
wait_retained cityhub/gw-test/status '^1 offline$' || fail "no retained offline after kill -9 (Last Will)"
echo "ok  offline after kill -9, in $((($(date +%s%N) - t0) / 1000000)) ms"

# Back: online again, and the last value is still there.
start_hub "$T/hub.yaml"
wait_retained cityhub/gw-test/status '^1 online$' || { tail -20 "$HUB_LOG" >&2; fail "not online after a restart"; }
got=$(retained "$TOPIC")
echo "${got#* }" | jq -e '.fields.temperature == 22.25' >/dev/null || fail "retained value lost: $got"
echo "ok  online again"

# Frozen (SIGSTOP: the connection stays open but silent): the broker gives
# up after 1.5 x keepalive (2 s) and publishes the Will; once thawed, the
# hub connects again and says online.
t0=$(date +%s%N)
kill -STOP "$HUB_PID"
wait_retained cityhub/gw-test/status '^1 offline$' || { kill -CONT "$HUB_PID"; fail "no offline while frozen"; }
ms=$((($(date +%s%N) - t0) / 1000000))
kill -CONT "$HUB_PID"
echo "ok  offline $ms ms after the hub froze (keepalive 2s)"
# about 3 s on a quiet machine; each look costs a mosquitto_sub run (~1 s),
# and on a loaded one the broker's keepalive check comes later: 11 s at most
[ "$ms" -ge 2000 ] && [ "$ms" -le 11000 ] || fail "the Will came $ms ms after the freeze, want about 3000"
wait_retained cityhub/gw-test/status '^1 online$' || { tail -20 "$HUB_LOG" >&2; fail "not online after the thaw"; }
echo "ok  online after the thaw"

# A clean stop says offline itself (a DISCONNECT sends no Will).
stop_hub
st=$(retained cityhub/gw-test/status)
[ "$st" = "1 offline" ] || fail "status after SIGTERM is '$st', want retained offline"
grep -qiE "AddressSanitizer|runtime error" "$HUB_LOG" && fail "sanitizer report in the log"
echo "mqtt live ok"
