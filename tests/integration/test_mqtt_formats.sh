# MQTT input, every payload format end to end: Mosquitto -> cityhub
# (mqtt_inputs) -> real InfluxDB. One message each of senml, json, value,
# influx (line protocol) and chirpstack lands with its exact field values,
# types, tags (hub tags, topic-level tags, the device) and timestamps (the
# payload's own; arrival time for `value`). The input's client id defaults to
# <hub.name>-<name>.
set -eu
. tests/lib/fixtures.sh
fixtures_init
start_influxdb city
start_mosquitto

cat >"$T/hub.yaml" <<YAML
hub:
  name: gw-test
  tags: {district: d1, site: s1}
  journal: {path: $T/journal, sync_interval: 100ms}
mqtt_inputs:
  - name: sensors
    url: $MQTT_URL
    clean_session: false
    keepalive: 30s
    subscribe:
      - {topic: "city/{zone}/noise/#", format: senml, qos: 1}
      - {topic: "sensors/{device}/json", format: json, measurement: weather, fields: {temperature: /t, humidity: /h}, time: /ts, precision: ms, qos: 1}
      - {topic: "sensors/{device}/raw", format: value, measurement: level, field: value, qos: 1}
      - {topic: "lp/#", format: influx, qos: 1}
      - {topic: "application/+/device/+/event/up", format: chirpstack, radio: true, qos: 1}
outputs:
  - {name: ioc, type: influxdb, url: "$INFLUX_URL", database: city, batch_size: 500, flush_interval: 200ms}
YAML
"$CITYHUB" check -c "$T/hub.yaml" || fail "cityhub check refuses the MQTT input config"
start_hub "$T/hub.yaml"
# The default client id is <hub.name>-<name>; publish once it is subscribed.
for f in 'city/+/noise/#' 'sensors/+/json' 'sensors/+/raw' 'lp/#' 'application/+/device/+/event/up'; do
    mosquitto_wait_subscribed gw-test-sensors "$f" ||
        { tail -20 "$HUB_LOG" >&2; tail -20 "$MOSQ_LOG" >&2; fail "gw-test-sensors never subscribed to $f"; }
done

# Explicit times, an hour ago, on whole seconds (exact in every unit).
S=$(($(date +%s) - 3600))
NS=${S}000000000

# SenML: two records at bt (one reading), one at bt+1.5 s (another reading).
mqtt_pub city/z9/noise/n7 "[{\"bn\":\"noise-7:\",\"bt\":$S,\"n\":\"laeq\",\"u\":\"dB\",\"v\":55.5},
{\"n\":\"lamax\",\"v\":71.25},{\"n\":\"laeq\",\"v\":60,\"t\":1.5}]"
# JSON: ms timestamp, 40 is an integer in the payload but stored as a float.
mqtt_pub sensors/th-3/json "{\"t\":21.5,\"h\":40,\"ts\":$((S + 1))123,\"other\":7}"
# value: arrival time.
t_before=$(date +%s%N)
mqtt_pub sensors/lvl-2/raw "1.75"
t_after=$(date +%s%N)
# Line protocol: types kept, ns timestamp kept (ends in ...000000007).
mqtt_pub lp/air/1 "air,station=st1 pm25=12i,pm10=20u,temp=19.5,ok=true,note=\"hi there\" $((S + 2))000000007"
# ChirpStack v4 uplink; the best gateway is the second (rssi -70, snr 9.25).
CS_TIME=$(date -u -d "@$((S + 3))" +%Y-%m-%dT%H:%M:%S).250Z
mqtt_pub application/app-1/device/0102030405060708/event/up "$(
    cat <<JSON
{"deduplicationId":"7c1d7a4e-6f2a-4c2e-9d8e-2b6f5e4a1c01","time":"$CS_TIME",
 "deviceInfo":{"tenantId":"52f14cd4-c6f1-4fbd-8f87-4025e1d49242","tenantName":"city",
   "applicationId":"app-1","applicationName":"parking",
   "deviceProfileId":"cb5f3f5c-8a3c-4b2a-9b44-1d2f8c0c1e2a","deviceProfileName":"lot-sensor",
   "deviceName":"park-5","devEui":"0102030405060708","tags":{"lot":"north"}},
 "devAddr":"01020304","adr":true,"dr":5,"fCnt":10,"fPort":1,"confirmed":false,"data":"AQ==",
 "object":{"occupied":1,"battery":{"voltage":3.6}},
 "rxInfo":[{"gatewayId":"aa00000000000001","uplinkId":1,"rssi":-90,"snr":7.5,"channel":1},
           {"gatewayId":"aa00000000000002","uplinkId":2,"rssi":-70,"snr":9.25,"channel":1}],
 "txInfo":{"frequency":868100000,"modulation":{"lora":{"bandwidth":125000,"spreadingFactor":7,"codeRate":"CR_4_5"}}}}
JSON
)"

# Wait until every measurement is in the store (7 points in all).
total() {
    local n=0 m
    for m in "count(laeq) FROM senml" "count(temperature) FROM weather" "count(value) FROM level" \
        "count(temp) FROM air" "count(occupied) FROM lorawan"; do
        n=$((n + $(influx_count city "SELECT $m")))
    done
    echo "$n"
}
for _ in $(seq 100); do [ "$(total)" -ge 6 ] && break; sleep 0.2; done
sleep 0.5
stop_hub
grep '\[mqtt:' "$HUB_LOG" | head -20 || true

# row MEASUREMENT COLUMNS [WHERE]: CSV "time,col,..." of every point (exact ns times).
row() {
    influx_csv city "SELECT $2 FROM $1 ${3:-} ORDER BY time" | cut -d, -f3-
}
expect() { # what got want
    [ "$2" = "$3" ] || fail "$1: got '$2', want '$3'"
    echo "ok  $1: $2"
}

# SenML: fields are the record names, the device the base name without ':'.
expect "senml points" "$(row senml 'laeq,lamax,device,zone,gateway,district,site')" \
    "$NS,55.5,71.25,noise-7,z9,gw-test,d1,s1
$((S + 1))500000000,60,,noise-7,z9,gw-test,d1,s1"
expect "senml field types" "$(influx_query city 'SHOW FIELD KEYS FROM senml' | jq -c '.results[0].series[0].values')" \
    '[["laeq","float"],["lamax","float"]]'

# JSON: fields picked by pointer, ms time, numbers are floats, nothing else.
expect "json point" "$(row weather 'temperature,humidity,device,gateway,district,site')" \
    "$((S + 1))123000000,21.5,40,th-3,gw-test,d1,s1"
expect "json field types" "$(influx_query city 'SHOW FIELD KEYS FROM weather' | jq -c '.results[0].series[0].values')" \
    '[["humidity","float"],["temperature","float"]]'

# value: one field, arrival time within the publish.
v=$(row level 'value,device,gateway,district,site')
vt=${v%%,*}
expect "value point" "${v#*,}" "1.75,lvl-2,gw-test,d1,s1"
[ "$vt" -ge "$((t_before - 1000000000))" ] && [ "$vt" -le "$((t_after + 1000000000))" ] ||
    fail "value point time $vt is not the arrival time ($t_before .. $t_after)"
echo "ok  value time $vt within the publish ($(((vt - t_before) / 1000000)) ms after it started)"

# Line protocol: kept as written, with the hub's tags added.
expect "line protocol point" "$(row air 'pm25,pm10,temp,ok,note,station,gateway,district,site')" \
    "$((S + 2))000000007,12,20,19.5,true,hi there,st1,gw-test,d1,s1"
types=$(influx_query city 'SHOW FIELD KEYS FROM air' | jq -c '.results[0].series[0].values')
expect "line protocol field types" "$types" \
    '[["note","string"],["ok","boolean"],["pm10","integer"],["pm25","integer"],["temp","float"]]'

# ChirpStack: decoded object flattened, deviceName is the device, `time` the time.
expect "chirpstack point" "$(row lorawan 'occupied,battery_voltage,device,gateway,district,site')" \
    "$((S + 3))250000000,1,3.6,park-5,gw-test,d1,s1"
cs=$(influx_query city 'SELECT * FROM lorawan' | jq -c '.results[0].series[0].values[0]')
echo "$cs" | grep -q '"0102030405060708"' || fail "chirpstack point has no tag with the devEui: $cs"
echo "$cs" | grep -q '"north"' || fail "chirpstack point lacks the device's tag lot=north: $cs"
echo "ok  chirpstack tags: $cs"
# radio: the best gateway's RSSI and SNR, same device and time.
radio=$(influx_query city 'SELECT * FROM lorawan_radio' | jq -c '.results[0].series[0]')
echo "radio: $radio"
[ "$(echo "$radio" | jq '.values | length')" = 1 ] || fail "expected one lorawan_radio point: $radio"
echo "$radio" | jq -e '.values[0] | any(.[]; . == -70) and any(.[]; . == 9.25)' >/dev/null ||
    fail "lorawan_radio does not hold the best gateway's rssi -70 and snr 9.25"
expect "radio device" "$(echo "$radio" | jq -r '.values[0][.columns | index("device")]')" park-5
expect "radio time" "$(influx_csv city 'SELECT * FROM lorawan_radio' | cut -d, -f3)" "$((S + 3))250000000"

# Nothing else was written (no stray measurement from the MQTT input).
ms=$(influx_query city 'SHOW MEASUREMENTS' | jq -r '.results[0].series[0].values[][0]' | grep -v '^cityhub' | sort | tr '\n' ' ')
expect "measurements" "$ms" "air level lorawan lorawan_radio senml weather "
echo "mqtt formats ok"
