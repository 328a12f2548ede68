# The status server against a running hub: simulator (one device answering,
# one not) + Mosquitto (one subscription) -> cityhub -> real InfluxDB.
# /health says degraded with the dead device's reason and the live ones'
# state; /metrics passes promtool's parser and linter and holds the expected
# series values; bad requests get a clear 4xx and the server stays up; the
# live page, in headless Chromium, shows the device rows with values that
# update (screenshot in build/test-logs/status-page.png). Then, on ::1,
# basic authentication: 401 without or with wrong credentials, 200 with,
# and the password never in /health, /metrics or the log; every source down
# is failing, 503; a non-loopback
# listen without password_file is refused by `cityhub check`.
set -eu
. tests/lib/fixtures.sh
fixtures_init
start_influxdb city
start_mosquitto
start_sim --profile test
SP=$("$FREEPORT")
S="http://127.0.0.1:$SP"
artefacts=$(pwd)/build/test-logs
mkdir -p "$artefacts"

cat >"$T/hub.yaml" <<YAML
hub:
  name: gw-status
  journal: {path: $T/journal, sync_interval: 50ms}
  status: {listen: "127.0.0.1:$SP"}
buses:
  - {name: lan, type: tcp, host: 127.0.0.1, port: $SIM_PORT, timeout: 300ms}
devices:
  - name: lab-1
    bus: lan
    unit: 1
    interval: 250ms
    measurement: lab
    registers:
      - {field: scaled, address: 20, type: uint16, scale: 0.1, unit: Cel}
      - {field: counter, table: input, address: 0, type: uint16}
  - name: dead-1
    bus: lan
    unit: 9
    interval: 500ms
    measurement: lab
    registers:
      - {field: counter, table: input, address: 0, type: uint16}
mqtt_inputs:
  - name: in
    url: $MQTT_URL
    subscribe:
      - {topic: "sensors/{device}/raw", format: value, measurement: level, field: value, qos: 1}
outputs:
  - {name: ioc, type: influxdb, url: "$INFLUX_URL", database: city, flush_interval: 200ms}
YAML
"$CITYHUB" check -c "$T/hub.yaml" || fail "cityhub check refuses hub.status"
start_hub "$T/hub.yaml"
wait_for curl -sf "$S/metrics" || { tail -20 "$HUB_LOG" >&2; fail "status server not answering"; }
mosquitto_wait_subscribed gw-status-in 'sensors/+/raw' || fail "never subscribed"
for i in 1 2 3 4 5; do mqtt_pub sensors/tank-1/raw "$i.5"; done
mqtt_pub sensors/tank-1/raw "not a number"
sleep 2

# ---- /health ------------------------------------------------------------------
code=$(curl -s -o "$T/health.json" -w '%{http_code}' "$S/health")
jq . "$T/health.json" >"$artefacts/status-health.json" || fail "/health is not JSON"
cat "$artefacts/status-health.json"
[ "$code" = 200 ] || fail "/health answered $code while degraded (want 200)"
h() { jq -r "$1" "$T/health.json"; }
[ "$(h .status)" = degraded ] || fail "status $(h .status), want degraded (dead-1 does not answer)"
h '.reasons[]' | grep -q '^device dead-1: [0-9]* failed polls\? in a row: exception' ||
    fail "no reason names dead-1"
[ "$(h '.devices[] | select(.name=="lab-1") | .ok')" = true ] || fail "lab-1 not ok"
[ "$(h '.devices[] | select(.name=="lab-1") | .consecutive_failures')" = 0 ] || fail "lab-1 failures"
[ "$(h '.devices[] | select(.name=="lab-1") | .last_success_age_s < 2')" = true ] ||
    fail "lab-1 last success is not recent"
[ "$(h '.devices[] | select(.name=="lab-1") | .poll_skew_ms >= 0')" = true ] || fail "no poll skew"
[ "$(h '.devices[] | select(.name=="dead-1") | .ok')" = false ] || fail "dead-1 ok?"
[ "$(h '.devices[] | select(.name=="dead-1") | .consecutive_failures >= 2')" = true ] ||
    fail "dead-1 consecutive failures"
h '.devices[] | select(.name=="dead-1") | .last_error' | grep -q exception || fail "dead-1 last_error"
[ "$(h '.subscriptions[0].name')" = "in:sensors/{device}/raw" ] || fail "subscription name"
[ "$(h '.subscriptions[0].connected')" = true ] || fail "subscription not connected"
[ "$(h '.subscriptions[0].messages')" = 6 ] || fail "subscription messages $(h '.subscriptions[0].messages')"
[ "$(h '.subscriptions[0].rejected')" = 1 ] || fail "subscription rejects"
[ "$(h '.outputs[0].state')" = ok ] || fail "output ioc state $(h '.outputs[0].state')"
[ "$(h '.journal.next_seq > 5')" = true ] || fail "journal next_seq"
[ "$(h '.gateway')" = gw-status ] || fail "gateway"

# ---- /metrics -------------------------------------------------------------------
curl -sf -D "$T/metrics.hdr" "$S/metrics" >"$T/metrics.txt" || fail "/metrics"
cp "$T/metrics.txt" "$artefacts/status-metrics.txt"
grep -qi '^content-type: text/plain; version=0.0.4' "$T/metrics.hdr" || fail "content type"
promtool check metrics <"$T/metrics.txt" || fail "promtool check metrics refuses /metrics"
# value of one series (exact name and labels)
series() { awk -v s="$1" '$1 == s { print $2 }' "$T/metrics.txt"; }
[ "$(series 'cityhub_mqtt_messages_total{subscription="in:sensors/{device}/raw"}')" = 6 ] ||
    fail "mqtt messages series"
[ "$(series 'cityhub_mqtt_rejected_total{subscription="in:sensors/{device}/raw"}')" = 1 ] ||
    fail "mqtt rejects series"
[ "$(series 'cityhub_modbus_polls_total{device="lab-1"}')" -ge 4 ] || fail "lab-1 polls"
[ "$(series 'cityhub_modbus_poll_failures_total{device="dead-1",kind="exception"}')" -ge 2 ] ||
    fail "dead-1 failures by kind"
[ "$(series 'cityhub_modbus_poll_failures_total{device="lab-1",kind="timeout"}')" = 0 ] ||
    fail "lab-1 timeouts"
[ "$(series 'cityhub_output_responses_total{output="ioc",class="2xx"}')" -ge 1 ] ||
    fail "no 2xx counted for ioc"
[ "$(series 'cityhub_output_responses_total{output="ioc",class="5xx"}')" = 0 ] || fail "5xx?"
[ "$(series cityhub_readings_accepted_total)" -ge 5 ] || fail "readings accepted"
[ "$(series cityhub_journal_fsyncs_total)" -ge 1 ] || fail "fsyncs"
[ "$(series cityhub_journal_bytes)" -gt 0 ] || fail "journal bytes"
[ "$(series process_resident_memory_bytes)" -gt 1000000 ] || fail "rss"
[ "$(series cityhub_uptime_seconds)" -ge 1 ] || fail "uptime"
[ "$(grep -c '^# TYPE cityhub_modbus_polls_total counter$' "$T/metrics.txt")" = 1 ] ||
    fail "one TYPE line per family"

# ---- the values the page shows -----------------------------------------------------
curl -sf "$S/api/values" >"$T/values.json" || fail "/api/values"
[ "$(jq -r '.series[] | select(.key=="lab-1") | .fields[] | select(.name=="scaled") | .value' "$T/values.json")" = 23.5 ] ||
    fail "lab-1 scaled value"
[ "$(jq -r '.series[] | select(.key=="lab-1") | .fields[] | select(.name=="scaled") | .unit' "$T/values.json")" = Cel ] ||
    fail "lab-1 unit"
[ "$(jq -r '.series[] | select(.key=="tank-1") | .fields[0].value' "$T/values.json")" = 5.5 ] ||
    fail "tank-1 last value"
[ "$(jq -r '.series[] | select(.key=="lab-1") | .fields[0].points | length' "$T/values.json")" = 30 ] ||
    fail "30 points per field"
[ "$(jq -r '.series[] | select(.key=="lab-1") | .fields[0].points[-1]' "$T/values.json")" != null ] ||
    fail "newest point missing"
[ "$(jq -r '.series[] | select(.key=="lab-1") | .fields[0].points[0]' "$T/values.json")" = null ] ||
    fail "a slot before start must be a gap (null), not a value"

# ---- bad requests: clear 4xx, the server stays up ------------------------------------
[ "$(curl -s -o /dev/null -w '%{http_code}' "$S/nope")" = 404 ] || fail "unknown path"
[ "$(curl -s -o /dev/null -w '%{http_code}' "$S/health/../etc/passwd")" = 404 ] || fail "path"
[ "$(curl -s -o /dev/null -w '%{http_code}' -X POST -d x=1 "$S/health")" = 405 ] || fail "POST"
[ "$(curl -s -o /dev/null -w '%{http_code}' -X DELETE "$S/metrics")" = 405 ] || fail "DELETE"
curl -s -D - -o /dev/null -X PUT "$S/" | grep -qi '^allow: GET, HEAD' || fail "405 without Allow"
big=$(head -c 40000 /dev/zero | tr '\0' a)
code=$(curl -s -o /dev/null -w '%{http_code}' -H "X-Big: $big" "$S/health")
case "$code" in 413 | 431) ;; *) fail "huge header answered $code (want 413 or 431)" ;; esac
code=$(curl -s -o /dev/null -w '%{http_code}' "$S/$(head -c 30000 /dev/zero | tr '\0' b)")
case "$code" in 404 | 413 | 414 | 431) ;; *) fail "huge URL answered $code" ;; esac
raw() { # REQUEST (printf format) -> the status line of the answer, "" if closed
    local r
    exec 3<>"/dev/tcp/127.0.0.1/$SP"
    printf "$1" >&3
    r=$(timeout 5 head -1 <&3 | tr -d '\r' || true)
    exec 3>&-
    echo "$r"
}
[ "$(raw 'GET / HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n')" = "HTTP/1.1 400 Bad Request" ] ||
    fail "a malformed header line is not answered 400"
[ "$(raw 'BREW / HTTP/1.1\r\nHost: x\r\n\r\n')" = "HTTP/1.1 405 Method Not Allowed" ] ||
    fail "an unknown method is not answered 405"
r=$(raw 'GARBAGE\r\n\r\n') # no HTTP version: closed without an answer
[ -z "$r" ] || [ "$r" = "HTTP/1.1 400 Bad Request" ] || fail "garbage got \"$r\""
[ "$(raw 'GET /api/values?points=%%zz&&=&points HTTP/1.1\r\nHost: x\r\n\r\n')" = "HTTP/1.1 200 OK" ] ||
    fail "a mangled query string is not taken as no option"
curl -sf -o /dev/null "$S/health" || fail "server not answering after bad requests"

# ---- the live page in headless Chromium ----------------------------------------------
curl -sf "$S/" | grep -q '<tbody id="devices">' || fail "live page"
! curl -sf "$S/" | grep -Eiq 'src="https?:|href="https?:|@import' || fail "the page loads from elsewhere"
chrome() {
    timeout 90 chromium --headless --no-sandbox --disable-gpu --no-first-run \
        --user-data-dir="$T/chromium" --window-size=420,900 --virtual-time-budget=5000 "$@" \
        2>>"$T/chromium.log"
}
chrome --dump-dom "$S/" >"$T/dom1.html" || { tail "$T/chromium.log" >&2; fail "chromium"; }
sleep 2
chrome --dump-dom "$S/" >"$T/dom2.html" || fail "chromium (second load)"
chrome --screenshot="$artefacts/status-page.png" "$S/" >/dev/null || fail "chromium screenshot"
[ -s "$artefacts/status-page.png" ] || fail "no screenshot"
cp "$T/dom2.html" "$artefacts/status-page.html"
for d in 1 2; do
    grep -q 'data-device="lab-1"' "$T/dom$d.html" || fail "no lab-1 row in the page ($d)"
    grep -q 'data-device="dead-1"' "$T/dom$d.html" || fail "no dead-1 row in the page ($d)"
    grep -q 'data-device="tank-1"' "$T/dom$d.html" || fail "no tank-1 row in the page ($d)"
    grep -q '>23.5 Cel<' "$T/dom$d.html" || fail "lab-1's value with its unit not shown ($d)"
    grep -q 'class="badge degraded">degraded<' "$T/dom$d.html" || fail "gateway status ($d)"
    grep -q '<polyline' "$T/dom$d.html" || fail "no sparkline ($d)"
done
updates() { sed -n 's/.*data-updates="\([0-9]*\)".*/\1/p' "$1" | head -1; }
echo "page updates: $(updates "$T/dom1.html") then $(updates "$T/dom2.html")"
[ "$(updates "$T/dom1.html")" -ge 2 ] || fail "the page did not update itself"
# lab-1's counter (input register 0 counts up in the simulator) changed between loads
counter() {
    tr '<' '\n' <"$1" | grep -A3 'data-field="counter"' | sed -n 's/.*data-value="\([0-9.]*\)".*/\1/p' | head -1
}
c1=$(counter "$T/dom1.html") c2=$(counter "$T/dom2.html")
echo "lab-1 counter on the page: $c1 then $c2"
[ -n "$c1" ] && [ -n "$c2" ] && [ "$c1" != "$c2" ] || fail "lab-1's value did not change on the page"
stop_hub

# ---- basic authentication on ::1 ------------------------------------------------------
AP=$("$FREEPORT")
A="http://[::1]:$AP"
pw="s3cr3t-$(date +%s%N)"
printf '%s\n' "$pw" >"$T/status.pass"
chmod 600 "$T/status.pass"
sed -e "s|status: {listen: \"127.0.0.1:$SP\"}|status: {listen: \"[::1]:$AP\", user: tech, password_file: $T/status.pass}|" \
    "$T/hub.yaml" >"$T/auth.yaml"
grep -q password_file "$T/auth.yaml" || fail "auth config not made"
"$CITYHUB" check -c "$T/auth.yaml" >"$T/check.out" 2>&1 || { cat "$T/check.out"; fail "check auth"; }
start_hub "$T/auth.yaml"
wait_for curl -s -o /dev/null "$A/health" || fail "no status server on ::1"
for p in / /health /metrics /api/values /nope; do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "$A$p")" = 401 ] || fail "$p without credentials"
done
curl -s -D - -o /dev/null "$A/health" | grep -qi '^www-authenticate: basic realm="cityhub"' ||
    fail "401 without WWW-Authenticate"
[ "$(curl -s -o /dev/null -w '%{http_code}' -u "tech:wrong" "$A/health")" = 401 ] || fail "wrong pw"
[ "$(curl -s -o /dev/null -w '%{http_code}' -u "cityhub:$pw" "$A/health")" = 401 ] || fail "wrong user"
curl -sf -u "tech:$pw" "$A/health" >"$T/h2.json" || fail "/health with credentials"
curl -sf -u "tech:$pw" "$A/metrics" >"$T/m2.txt" || fail "/metrics with credentials"
curl -sf -u "tech:$pw" "$A/" >/dev/null || fail "/ with credentials"
# every source down (the simulator and the broker gone): failing, 503
kill "$SIM_PID"
stop_mosquitto
WAIT_TRIES=150 wait_for bash -c "[ \$(curl -s -o '$T/h3.json' -w '%{http_code}' -u 'tech:$pw' '$A/health') = 503 ]" ||
    { cat "$T/h3.json"; fail "/health is not 503 with every source down"; }
[ "$(jq -r .status "$T/h3.json")" = failing ] || fail "status is not failing"
jq -r '.reasons[]' "$T/h3.json" | grep -q '^no input source is working' || fail "no reason for failing"
jq -r '.reasons[]' "$T/h3.json" | grep -q '^subscription in:sensors/{device}/raw: not connected' ||
    fail "no reason for the subscription"
stop_hub
if grep -qF "$pw" "$T/h2.json" "$T/m2.txt" "$HUB_LOG" "$T/check.out"; then
    fail "the password appears in /health, /metrics, check or the log"
fi

# ---- a non-loopback listen needs a password -------------------------------------------
sed -e "s|status: {listen: \"127.0.0.1:$SP\"}|status: {listen: \"0.0.0.0:$SP\"}|" "$T/hub.yaml" >"$T/open.yaml"
rc=0
"$CITYHUB" check -c "$T/open.yaml" >"$T/open.out" 2>&1 || rc=$?
cat "$T/open.out"
[ "$rc" = 2 ] || fail "cityhub check accepted 0.0.0.0 without password_file (rc $rc)"
grep -q "open.yaml:[0-9]*:[0-9]*: hub.status.listen 0.0.0.0:$SP is not a loopback address" "$T/open.out" ||
    fail "no FILE:LINE:COL message for the open listener"
sed -i "s|listen: \"0.0.0.0:$SP\"|listen: \"0.0.0.0:$SP\", allow_unauthenticated: true|" "$T/open.yaml"
"$CITYHUB" check -c "$T/open.yaml" >/dev/null || fail "allow_unauthenticated is not honoured"
sed -i "s|listen: \"0.0.0.0:$SP\", allow_unauthenticated: true|listen: \"[::1:$SP\"|" "$T/open.yaml"
! "$CITYHUB" check -c "$T/open.yaml" >/dev/null 2>&1 || fail "a bad listen address passed check"
echo "status server ok"
