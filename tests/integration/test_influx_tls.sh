# The influxdb output over https:// against local HTTPS responders
# (tests/lib/http_responder.py) serving a certificate of a test CA:
#   ca_file = the test CA: verified, delivered;
#   ca_file = another CA, or no ca_file (the system's CAs do not know the
#       test CA): refused with a clear error and an alarm (log line, status
#       point), nothing sent — not even a request line — readings kept;
#   insecure_skip_verify: delivered, and a warning at every start;
#   a server that asks for a client certificate: delivered with cert_file +
#       key_file, nothing stored without them;
# and `cityhub check` names the key of each TLS mistake.
set -eu
. tests/lib/fixtures.sh
fixtures_init
start_mosquitto
http_certs
# the hub's copy of the client key, for its owner only (a key others may
# read is refused: see the check at the end)
install -m 600 "$HTTP_CLIENT_KEY" "$T/client.key"

# responder NAME [ARGS]: a TLS responder; its URL, store and log as NAME_*
responder() {
    local n=$1
    shift
    start_http_responder --tls "$@"
    eval "${n}_URL=\$HTTP_URL ${n}_STORE=\$HTTP_STORE ${n}_LOG=\$HTTP_LOG"
}
responder GOOD
responder WRONGCA
responder SYSCA
responder INSECURE
responder MTLS --client-ca "$HTTP_CA"
responder NOCERT --client-ca "$HTTP_CA"

out() { # out NAME URL [KEY: VALUE, ...]
    echo "  - {name: $1, type: influxdb, url: \"$2\", database: city, flush_interval: 100ms,"
    echo "     alarm_retry: 1s${3:+, $3}}"
}
{
    cat <<YAML
hub:
  name: gw-tls
  journal: {path: $T/state/journal, sync_interval: 100ms}
  status_interval: 1s
mqtt_inputs:
  - name: lp
    url: $MQTT_URL
    subscribe:
      - {topic: "lp/#", format: influx, qos: 1}
outputs:
YAML
    out good "$GOOD_URL" "ca_file: $HTTP_CA"
    out wrongca "$WRONGCA_URL" "ca_file: $HTTP_OTHER_CA"
    out sysca "$SYSCA_URL"
    out insecure "$INSECURE_URL" "insecure_skip_verify: true"
    out mtls "$MTLS_URL" "ca_file: $HTTP_CA, cert_file: $HTTP_CLIENT_CERT, key_file: $T/client.key"
    out nocert "$NOCERT_URL" "ca_file: $HTTP_CA"
} >"$T/hub.yaml"
mkdir -p "$T/state"
"$CITYHUB" check -c "$T/hub.yaml" >"$T/check.out" 2>&1 || { cat "$T/check.out" >&2; fail "cityhub check refuses the config"; }
start_hub "$T/hub.yaml"
mosquitto_wait_subscribed gw-tls-lp 'lp/#' || fail "the hub never subscribed"
log_has() { grep -q -- "$1" "$HUB_LOG" || { tail -30 "$HUB_LOG" >&2; fail "no log line: $1"; }; }

S=$(($(date +%s) - 60))
mqtt_pub lp/x "tls,probe=p1 v=1.5 ${S}000000000
tls,probe=p2 v=2.5 $((S + 1))000000000"
stored() { grep -c '^tls,' "$1" || true; }
has_points() { [ "$(stored "$1")" -ge "$2" ]; }
for name in GOOD INSECURE MTLS; do
    eval "store=\$${name}_STORE"
    wait_for has_points "$store" 2 || { tail -30 "$HUB_LOG" >&2; fail "$name: $(stored "$store") of 2 points stored"; }
    [ "$(stored "$store")" -eq 2 ] || fail "$name: $(stored "$store") points stored, want 2"
done
grep -qx "tls,gateway=gw-tls,probe=p1 v=1.5 ${S}000000000" "$GOOD_STORE" || fail "the point is not stored as sent"

# The refused ones: an alarm naming the cause, nothing sent.
wait_for grep -q '\[influxdb:sysca\] .*ALARM' "$HUB_LOG" || { tail -30 "$HUB_LOG" >&2; fail "no alarm for sysca"; }
for o in wrongca sysca; do
    log_has "\[influxdb:$o\] ALARM: batch of [0-9]* refused: TLS: the server's certificate is not trusted (check ca_file"
    log_has "\[influxdb:$o\] .*output stopped, readings kept in the journal"
done
log_has "\[influxdb:good\] writing to https://localhost:.* (v1 API, gzip, TLS verified)"
log_has "\[influxdb:mtls\] writing to .* TLS verified, client certificate)"
log_has "\[influxdb:insecure\] writing to .* TLS NOT verified)"
log_has "\[influxdb:insecure\] insecure_skip_verify: the server https://localhost:.* is NOT verified"
for name in WRONGCA SYSCA; do
    eval "store=\$${name}_STORE log=\$${name}_LOG"
    [ ! -s "$store" ] || fail "$name: something was stored past a failed verification"
    [ ! -s "$log" ] || { cat "$log" >&2; fail "$name: a request was sent to an unverified server"; }
done
# NOCERT: the server asks for a client certificate: an alarm saying so,
# nothing stored.
[ "$(stored "$NOCERT_STORE")" -eq 0 ] || fail "NOCERT stored points from a client without a certificate"
log_has "\[influxdb:nocert\] ALARM: batch of [0-9]* refused: TLS: the server asks for a client certificate (set cert_file and key_file)"

# The alarm is in the status points the good output delivers.
wait_for grep -q '^cityhub_output,.*output=wrongca.*state="alarm"' "$GOOD_STORE" ||
    { grep '^cityhub_output' "$GOOD_STORE" | tail -8 >&2; fail "no alarm status point for wrongca"; }
grep '^cityhub_output,.*output=wrongca.*state="alarm"' "$GOOD_STORE" | grep -q 'alarm="TLS: ' ||
    fail "the status point does not say why (TLS)"

# The cause fixed (the right CA), the kept readings are delivered.
stop_hub
sed -i "s|ca_file: $HTTP_OTHER_CA|ca_file: $HTTP_CA|" "$T/hub.yaml"
start_hub "$T/hub.yaml" "$T/hub2.log"
wait_for has_points "$WRONGCA_STORE" 2 || { tail -30 "$HUB_LOG" >&2; fail "wrongca: the kept readings were not delivered after the fix"; }
[ "$(stored "$WRONGCA_STORE")" -eq 2 ] || fail "wrongca: $(stored "$WRONGCA_STORE") points, want 2"
# The warning again at this start.
log_has "\[influxdb:insecure\] insecure_skip_verify: the server .* is NOT verified"
stop_hub

# `cityhub check` names the key of each mistake.
check_err() { # check_err 'OUTPUT FLOW MAP' EXPECTED...
    printf 'hub: {name: gw, journal: {path: %s}}\noutputs:\n  - %s\n' "$T/state/j2" "$1" >"$T/bad.yaml"
    shift
    if "$CITYHUB" check -c "$T/bad.yaml" >"$T/bad.out" 2>&1; then
        cat "$T/bad.out" >&2
        fail "cityhub check accepted a bad TLS config"
    fi
    for want in "$@"; do
        grep -qF -- "$want" "$T/bad.out" || { cat "$T/bad.out" >&2; fail "check output lacks: $want"; }
    done
}
check_err "{name: o, type: influxdb, url: \"http://127.0.0.1:1\", database: d, ca_file: $HTTP_CA}" \
    "bad.yaml:3:" "ca_file: only for https:// URLs (TLS)"
check_err "{name: o, type: influxdb, url: \"https://localhost:1\", database: d, cert_file: $HTTP_CLIENT_CERT}" \
    "key_file" "cert_file and key_file go together"
check_err "{name: o, type: influxdb, url: \"https://localhost:1\", database: d, ca_file: $T/none.pem}" \
    "ca_file" "$T/none.pem: No such file or directory"
check_err "{name: o, type: influxdb, url: \"https://localhost:1\", database: d, ca_file: $HTTP_CA, insecure_skip_verify: true}" \
    "insecure_skip_verify" "drop one of them"
chmod 644 "$T/client.key"
check_err "{name: o, type: influxdb, url: \"https://localhost:1\", database: d, cert_file: $HTTP_CLIENT_CERT, key_file: $T/client.key}" \
    "key_file" "readable by others (mode 0644)" "chmod 600"
echo "ok: TLS verified, wrong/unknown CA refused with an alarm and nothing sent, insecure_skip_verify warned, client certificate, check errors"
