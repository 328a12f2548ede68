# Bad payloads on the MQTT input: invalid JSON, JSON nested 40 deep, SenML
# without a name, SenML with a string `v`, a line-protocol syntax error, a
# `value` payload that is no number, and a payload over max_payload (1KiB),
# interleaved with good messages. Each bad one comes on a subscription of its
# own (a subscription's rejections are logged the first time, then held back
# and counted), so every bad one is logged with its topic and a reason, kept in the dead-letter file (one JSON
# line each: topic, reason, payload), acknowledged (not sent again when the
# hub comes back on its persistent session) and changes nothing else: the
# good ones all arrive with their values and the hub keeps running.
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
    client_id: gw-test-in
    clean_session: false
    max_payload: 1KiB
    dead_letter: $T/dead.jsonl
    subscribe:
      - {topic: "j/{device}", format: json, measurement: wx, fields: {t: /t}, qos: 1}
      - {topic: "s/+", format: senml, qos: 1}
      - {topic: "lp/+", format: influx, qos: 1}
      - {topic: "v/{device}", format: value, measurement: level, field: value, qos: 1}
      - {topic: "bad/json/invalid", format: json, measurement: wx, fields: {t: /t}, qos: 1}
      - {topic: "bad/json/deep", format: json, measurement: wx, fields: {t: /t}, qos: 1}
      - {topic: "bad/senml/noname", format: senml, qos: 1}
      - {topic: "bad/senml/vtype", format: senml, qos: 1}
      - {topic: "bad/lp/syntax", format: influx, qos: 1}
      - {topic: "bad/lp/big", format: influx, qos: 1}
      - {topic: "bad/value/{device}", format: value, measurement: level, field: value, qos: 1}
outputs:
  - {name: ioc, type: influxdb, url: "$INFLUX_URL", database: city, flush_interval: 200ms}
YAML
"$CITYHUB" check -c "$T/hub.yaml" || fail "cityhub check refuses the config"
start_hub "$T/hub.yaml"
for f in 'j/+' 's/+' 'lp/+' 'v/+' bad/json/invalid bad/json/deep bad/senml/noname \
    bad/senml/vtype bad/lp/syntax bad/lp/big 'bad/value/+'; do
    mosquitto_wait_subscribed gw-test-in "$f" || { tail -20 "$HUB_LOG" >&2; fail "no subscription to $f"; }
done

S=$(($(date +%s) - 600))
deep="{\"t\":$(printf '[%.0s' $(seq 40))1$(printf ']%.0s' $(seq 40))}"
big="big,k=v s=\"$(head -c 1500 /dev/zero | tr '\0' x)\" ${S}000000000"
[ ${#big} -gt 1024 ] && [ ${#deep} -lt 1024 ] || fail "corpus sizes"

# bad TOPIC PAYLOAD: one bad message, remembered in $T/bad.
: >"$T/bad"
bad() {
    mqtt_pub "$1" "$2" || fail "publish to $1 failed"
    echo "$1" >>"$T/bad"
}
# good N: one good message of every format, all with value N at time S+N.
good() {
    local n=$1 ts=$((S + $1))
    mqtt_pub j/th-1 "{\"t\":$n.5,\"ts\":$ts}"
    mqtt_pub s/ok "[{\"bn\":\"sm-1:\",\"bt\":$ts,\"n\":\"x\",\"v\":$n}]"
    mqtt_pub lp/ok "okp,src=t n=${n}i ${ts}000000000"
    mqtt_pub v/lvl-1 "$n.25"
}

good 1
bad bad/json/invalid '{"t": 21.5,'
good 2
bad bad/json/deep "$deep"
bad bad/senml/noname '[{"v":1.5}]'
good 3
bad bad/senml/vtype '[{"bn":"sm-2:","n":"x","v":"12"}]'
bad bad/lp/syntax 'badlp,src=t n=1.2.3 1700000000000000000'
good 4
bad bad/value/v1 'twelve'
bad bad/lp/big "$big"
good 5
# A second rejection on a subscription: its log line may be held back, but it
# is dead-lettered like the first.
bad bad/json/invalid '[1, 2'
nbad=$(wc -l <"$T/bad")

# The good ones: 5 of each.
count() {
    echo $(($(influx_count city "SELECT count(t) FROM wx") + $(influx_count city "SELECT count(x) FROM senml") +
        $(influx_count city "SELECT count(n) FROM okp") + $(influx_count city "SELECT count(value) FROM level")))
}
for _ in $(seq 100); do [ "$(count)" -ge 20 ] && break; sleep 0.2; done
sleep 0.5
kill -0 "$HUB_PID" 2>/dev/null || { tail -30 "$HUB_LOG" >&2; fail "cityhub died on bad payloads"; }

expect() { # what got want
    [ "$2" = "$3" ] || fail "$1: got '$2', want '$3'"
    echo "ok  $1: $2"
}
col() { influx_csv city "SELECT $2 FROM $1 ORDER BY time" | cut -d, -f4 | tr '\n' ' '; }
expect "json values" "$(col wx t)" "1.5 2.5 3.5 4.5 5.5 "
expect "senml values" "$(col senml x)" "1 2 3 4 5 "
expect "line protocol values" "$(col okp n)" "1 2 3 4 5 "
expect "value values" "$(col level value)" "1.25 2.25 3.25 4.25 5.25 "
expect "json devices" "$(influx_csv city 'SELECT t, device FROM wx' | cut -d, -f5 | sort -u)" "th-1"
ms=$(influx_query city 'SHOW MEASUREMENTS' | jq -r '.results[0].series[0].values[][0]' | grep -v '^cityhub' | sort | tr '\n' ' ')
expect "measurements (nothing from a bad message)" "$ms" "level okp senml wx "
expect "senml series of the rejected device sm-2" "$(influx_query city 'SHOW SERIES FROM senml' | jq -r '.results[0].series[0].values[][0]' | grep -c 'device=sm-2' || true)" 0

# The log: every bad one with its topic and a reason, under the input's name.
echo "--- rejections in the log:"
grep '\[mqtt:sensors\]' "$HUB_LOG" | grep -v "connect\|subscri" | head -20
while read -r topic; do
    line=$(grep '\[mqtt:sensors\]' "$HUB_LOG" | grep -F "$topic" | head -1)
    [ -n "$line" ] || fail "no log line names the rejected message's topic $topic"
    rest=${line#*"$topic"}
    reason=$(echo "${line%%"$topic"*}${rest}" | sed 's/.*\[mqtt:sensors\]//' | tr -cd '[:alpha:]')
    [ ${#reason} -ge 8 ] || fail "the log line for $topic gives no reason: $line"
done <"$T/bad"

# The dead-letter file: one JSON object per bad message, with its reason.
[ -f "$T/dead.jsonl" ] || fail "no dead-letter file"
echo "--- dead letters:"
cut -c1-200 "$T/dead.jsonl"
expect "dead letters" "$(wc -l <"$T/dead.jsonl")" "$nbad"
jq -e -s 'all(.[]; type == "object" and (.topic | type) == "string" and (.reason | type) == "string"
    and (.reason | length) > 0 and has("payload"))' "$T/dead.jsonl" >/dev/null ||
    fail "a dead letter is not an object with topic, reason and payload (keys: $(head -1 "$T/dead.jsonl" | jq -c keys))"
expect "dead-letter topics" "$(jq -r .topic "$T/dead.jsonl" | sort | tr '\n' ' ')" "$(sort "$T/bad" | tr '\n' ' ')"
expect "dead letter of bad/json/invalid keeps the payload" \
    "$(jq -r -s '[.[] | select(.topic == "bad/json/invalid")][0].payload' "$T/dead.jsonl")" '{"t": 21.5,'
expect "dead letter of bad/lp/syntax keeps the payload" \
    "$(jq -r 'select(.topic == "bad/lp/syntax") | .payload' "$T/dead.jsonl")" 'badlp,src=t n=1.2.3 1700000000000000000'

# Acknowledged: a restart on the same persistent session gets none again.
stop_hub
start_hub "$T/hub.yaml"
mosquitto_wait_connects gw-test-in 2 || fail "the hub did not come back"
good 6
for _ in $(seq 50); do [ "$(count)" -ge 24 ] && break; sleep 0.2; done
expect "good after the restart" "$(count)" 24
expect "dead letters after the restart" "$(wc -l <"$T/dead.jsonl")" "$nbad"
stop_hub
grep -qiE "AddressSanitizer|runtime error" "$HUB_LOG" && fail "sanitizer report in the log"
echo "mqtt bad payloads ok"
