# The "connected but nothing arrives" guard (idle_timeout): a hub whose
# subscription went quiet subscribes again after idle_timeout, reconnects
# after twice that, and receives messages again afterwards. Without
# idle_timeout nothing of the kind happens.
set -eu
. tests/lib/fixtures.sh
fixtures_init
start_mosquitto

cat >"$T/hub.yaml" <<YAML
hub:
  name: gw-test
  journal: {path: $T/journal, sync_interval: 100ms}
mqtt_inputs:
  - name: quiet
    url: $MQTT_URL
    idle_timeout: 2s
    subscribe:
      - {topic: "lp/#", format: influx, qos: 1}
  - name: calm
    url: $MQTT_URL
    subscribe:
      - {topic: "other/#", format: influx, qos: 1}
YAML
"$CITYHUB" check -c "$T/hub.yaml" || fail "cityhub check refuses idle_timeout"
start_hub "$T/hub.yaml"
WAIT_TRIES=100 wait_for grep -q "\[mqtt:quiet\] connected to" "$HUB_LOG" || fail "no connect"
WAIT_TRIES=60 wait_for grep -q "\[mqtt:quiet\] connected but no message for .* subscribing again" \
    "$HUB_LOG" || fail "no resubscribe after idle_timeout"
WAIT_TRIES=60 wait_for grep -q "\[mqtt:quiet\] still no message after .*reconnecting" "$HUB_LOG" ||
    fail "no reconnect after twice idle_timeout"
WAIT_TRIES=50 wait_for bash -c "[ \$(grep -c '\[mqtt:quiet\] connected to' '$HUB_LOG') -ge 2 ]" ||
    fail "did not connect again"
echo "ok  resubscribed, then reconnected"
mqtt_pub lp/x "wd,k=v n=1i 1700000000000000001"
WAIT_TRIES=50 wait_for bash -c "'$CITYHUB' journal -c '$T/hub.yaml' --dump | grep -q '^[0-9]* wd,'" ||
    fail "no message received after the reconnect"
echo "ok  messages arrive after the reconnect"
if grep -q "\[mqtt:calm\] \(connected but\|still no\)" "$HUB_LOG"; then
    fail "the input without idle_timeout was touched"
fi
stop_hub
echo "mqtt watchdog ok"
