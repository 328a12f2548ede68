# MQTT input over TLS with a user and password: Mosquitto's mqtts listener
# (a test CA, a server certificate for 127.0.0.1) and a password file.
#  - the right password and CA: readings arrive in InfluxDB;
#  - a wrong password: a clear error in the log, connect attempts keep going
#    with backoff (at least 2, not a tight loop), the hub does not crash and
#    stops cleanly;
#  - a password_file that does not exist: `cityhub check` fails with
#    FILE:LINE:COL naming password_file.
set -eu
. tests/lib/fixtures.sh
fixtures_init
start_influxdb city
start_mosquitto --tls --password

# hub_config FILE CLIENT_ID PASSWORD_FILE JOURNAL
hub_config() {
    cat >"$1" <<YAML
hub:
  name: gw-test
  tags: {district: d1, site: s1}
  journal: {path: $4, sync_interval: 100ms}
mqtt_inputs:
  - name: sensors
    url: $MQTT_TLS_URL
    client_id: $2
    username: $MQTT_USER
    password_file: $3
    ca_file: $MQTT_CA
    keepalive: 30s
    reconnect_max: 60s
    subscribe:
      - {topic: "lp/#", format: influx, qos: 1}
outputs:
  - {name: ioc, type: influxdb, url: "$INFLUX_URL", database: city, flush_interval: 200ms}
YAML
}

# 1. The right password over TLS.
hub_config "$T/hub.yaml" gw-test-in "$MQTT_PASSFILE" "$T/journal"
"$CITYHUB" check -c "$T/hub.yaml" || fail "cityhub check refuses the TLS config"
start_hub "$T/hub.yaml"
mosquitto_wait_subscribed gw-test-in 'lp/#' ||
    { tail -20 "$HUB_LOG" >&2; tail -20 "$MOSQ_LOG" >&2; fail "the hub did not log in over TLS"; }
grep -q "New connection from .* on port $MQTT_TLS_PORT" "$MOSQ_LOG" || fail "not on the TLS port"
S=$(($(date +%s) - 60))
for i in 1 2 3; do
    mqtts_pub lp/tls "secure,k=v n=${i}i ${S}00000000$i" || fail "mosquitto_pub over TLS failed"
done
for _ in $(seq 100); do
    [ "$(influx_count city 'SELECT count(n) FROM secure')" -ge 3 ] && break
    sleep 0.2
done
got=$(influx_csv city "SELECT n, k, gateway FROM secure ORDER BY time" | cut -d, -f3- | tr '\n' ' ')
want="${S}000000001,1,v,gw-test ${S}000000002,2,v,gw-test ${S}000000003,3,v,gw-test "
[ "$got" = "$want" ] || fail "over TLS: got '$got', want '$want'"
echo "ok  3 readings over mqtts with user $MQTT_USER"
stop_hub

# 2. A wrong password: refused, retried with backoff, no crash.
printf '%s\n' "not-$MQTT_PASSWORD" >"$T/wrong-password"
chmod 600 "$T/wrong-password"
hub_config "$T/bad.yaml" gw-test-bad "$T/wrong-password" "$T/journal-bad"
"$CITYHUB" check -c "$T/bad.yaml" || fail "a wrong password is no config error"
refused_before=$(grep -c "disconnected, not authorised" "$MOSQ_LOG" || true)
start_hub "$T/bad.yaml" "$T/cityhub-bad.log"
sleep 1
t0=$(date +%s%N)
refused0=$(grep -c "disconnected, not authorised" "$MOSQ_LOG" || true)
sleep 5
refused1=$(grep -c "disconnected, not authorised" "$MOSQ_LOG" || true)
kill -0 "$HUB_PID" 2>/dev/null || { tail -30 "$HUB_LOG" >&2; fail "cityhub died with a wrong password"; }
n5=$((refused1 - refused0))
total=$((refused1 - refused_before))
echo "refused connects: $total in all, $n5 in the 5 s from $(((t0 / 1000000) % 100000))"
grep '\[mqtt:sensors\]' "$HUB_LOG" | head -5
[ "$total" -ge 2 ] || { tail -20 "$HUB_LOG" >&2; fail "the hub did not try again after a refusal ($total attempts)"; }
[ "$n5" -lt 10 ] || fail "$n5 connect attempts in 5 s: no backoff"
grep '\[mqtt:sensors\]' "$HUB_LOG" | grep -qiE "not authori|bad user name or password" ||
    { tail -20 "$HUB_LOG" >&2; fail "no clear error for the refused login in the log"; }
grep -qiE "AddressSanitizer|runtime error|Segmentation" "$HUB_LOG" && fail "sanitizer report in the log"
stop_hub

# 3. A password file that does not exist: check fails and names it, with its position.
hub_config "$T/nofile.yaml" gw-test-nofile "$T/no-such-password" "$T/journal-nofile"
line=$(grep -n "password_file:" "$T/nofile.yaml" | cut -d: -f1)
set +e
"$CITYHUB" check -c "$T/nofile.yaml" >"$T/check.out" 2>"$T/check.err"
rc=$?
set -e
cat "$T/check.err"
[ "$rc" -ne 0 ] || fail "check accepts a password_file that does not exist"
grep -qE "^$T/nofile.yaml:$line:[0-9]+: .*password_file" "$T/check.err" ||
    fail "check does not say $T/nofile.yaml:$line:COL ... password_file"
[ ! -e "$T/journal-nofile" ] || fail "check created a journal"

# 4. A password file others may read: check and start both refuse it, naming
# the file and its mode, never its contents.
install -m 644 "$MQTT_PASSFILE" "$T/open-password"
hub_config "$T/open.yaml" gw-test-open "$T/open-password" "$T/journal-open"
if "$CITYHUB" check -c "$T/open.yaml" >"$T/check.out" 2>"$T/check.err"; then
    fail "check accepts a password file of mode 0644"
fi
grep -q "password_file $T/open-password: readable by others (mode 0644).*chmod 600" "$T/check.err" ||
    { cat "$T/check.err" >&2; fail "check does not say the password file is readable by others"; }
if timeout 20 "$CITYHUB" run -c "$T/open.yaml" >"$T/open.log" 2>&1; then
    fail "the hub ran with a password file of mode 0644"
fi
grep -q "readable by others (mode 0644)" "$T/open.log" || { cat "$T/open.log" >&2; fail "start does not say why"; }
! grep -qF "$MQTT_PASSWORD" "$T/check.err" "$T/open.log" || fail "the password is in a message"
echo "mqtt tls auth ok"
