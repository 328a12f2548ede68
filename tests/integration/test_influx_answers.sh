# Every answer of the store, on cue (tests/lib/http_responder.py), through
# the v2 API with a token and gzip on one kept-alive connection:
#   503 + Retry-After, 429, a reset connection, a stalled answer (timeout):
#       retried, delivered after;
#   413: split until the parts fit, all delivered, nothing refused;
#   400 naming one bad line in a batch of 5000: only that line in the
#       dead-letter file, the 4999 others delivered;
#   401, 404: alarm, readings kept, delivered once the server accepts;
# and each kind of failure has its own log line the first time it happens.
set -eu
. tests/lib/fixtures.sh
fixtures_init
start_mosquitto
start_http_responder --token s3cret-Token
printf 's3cret-Token\n' >"$T/token"
chmod 600 "$T/token"

cat >"$T/hub.yaml" <<YAML
hub:
  name: gw-answers
  journal: {path: $T/state/journal}
mqtt_inputs:
  - name: lp
    url: $MQTT_URL
    subscribe:
      - {topic: "lp/#", format: influx, qos: 1}
outputs:
  - name: ioc
    type: influxdb
    url: "$HTTP_URL"
    org: city
    bucket: sensors
    token_file: $T/token
    batch_size: 5000
    flush_interval: 300ms
    timeout: 2s
    alarm_retry: 1s
YAML
mkdir -p "$T/state"
start_hub "$T/hub.yaml"
mosquitto_wait_subscribed gw-answers-lp 'lp/#' || fail "the hub never subscribed"

S=$(($(date +%s) - 3600))
# pub MEASUREMENT N: N lines of MEASUREMENT in one message
pub() {
    local i
    for ((i = 0; i < $2; i++)); do echo "$1,device=d$((i % 7)) v=$i.25 $((S * 1000000000 + i * 1000))"; done >"$T/msg.lp"
    mqtt_pub_file lp/x "$T/msg.lp"
}
stored() { grep -c "^$1," "$HTTP_STORE" || true; }
# expect_stored MEASUREMENT N [TRIES]: wait until N lines of it are stored
expect_stored() {
    local i
    for ((i = 0; i < ${3:-150}; i++)); do [ "$(stored "$1")" -ge "$2" ] && return 0; sleep 0.1; done
    tail -20 "$HUB_LOG" >&2
    fail "$1: $(stored "$1") of $2 lines stored"
}
log_has() { grep -q -- "$1" "$HUB_LOG" || { tail -20 "$HUB_LOG" >&2; fail "no log line: $1"; }; }

# v2 with the token, gzip, one connection for every request
pub p0 10
expect_stored p0 10
jq -e -s 'all(.[]; .path == "/api/v2/write" and .query.org == "city" and .query.bucket == "sensors"
    and .query.precision == "ns" and .gzip == true and .auth == "Token s3cret-Token")' "$HTTP_LOG" >/dev/null ||
    { cat "$HTTP_LOG" >&2; fail "the v2 request is not as expected"; }

# 503 with Retry-After: 2 -> retried no sooner than 2 s later
http_rules '[{"status": 503, "retry_after": 2, "count": 1}]'
t0=$(date +%s%N)
pub p1 5
expect_stored p1 5 100
[ $((($(date +%s%N) - t0) / 1000000)) -ge 2000 ] || fail "Retry-After: 2 was not honoured"
log_has "batch of 5 not delivered: HTTP 503: service unavailable — retrying in 2000 ms (as the server asked)"

http_rules '[{"status": 429, "count": 1}]'
pub p2 5
expect_stored p2 5
log_has "not delivered: HTTP 429"

# curl sends a request again by itself once when a reused connection drops
http_rules '[{"action": "reset", "count": 3}]'
pub p3 5
expect_stored p3 5
log_has "not delivered: transport: "

# a stalled answer: the request times out (2 s) and is sent again; the
# server stored the first one late, so the lines are there twice: harmless,
# same series and timestamps.
http_rules '[{"action": "stall", "stall_s": 3, "count": 1}]'
pub p4 5
expect_stored p4 10 100
log_has "not delivered: transport: Timeout was reached"

# 413 beyond 3 lines: halves until each part fits
http_rules '[{"status": 413, "max_lines": 3}]'
pub p5 12
expect_stored p5 12
log_has "batch of 12 too large: HTTP 413"
log_has "sending it in halves"

# 400 naming one bad line in a batch of 5000 (two messages, one batch)
http_rules '[{"status": 400, "match": "^p6,device=bad,"}]'
for ((i = 0; i < 2500; i++)); do echo "p6,device=d$((i % 7)) v=$i.5 $((S * 1000000000 + i))"; done >"$T/a.lp"
for ((i = 2500; i < 5000; i++)); do
    if [ "$i" -eq 4321 ]; then echo "p6,device=bad v=1 $((S * 1000000000 + i))"; else echo "p6,device=d$((i % 7)) v=$i.5 $((S * 1000000000 + i))"; fi
done >"$T/b.lp"
mqtt_pub_file lp/x "$T/a.lp"
mqtt_pub_file lp/x "$T/b.lp"
expect_stored p6 4999 200
log_has "batch of 5000 refused: HTTP 400: unable to parse 'p6,device=bad"
DL=$T/state/deadletter/ioc.jsonl
[ "$(wc -l <"$DL")" -eq 1 ] || { cat "$DL" >&2; fail "more than the bad line in the dead-letter file"; }
jq -e '.payload | startswith("p6,device=bad,gateway=gw-answers v=1 ")' "$DL" >/dev/null ||
    fail "the dead-letter entry is not the bad line"
grep -q "p6,device=bad" "$HTTP_STORE" && fail "the bad line was stored"
[ "$(sort "$HTTP_STORE" | grep "^p6," | uniq | wc -l)" -eq 4999 ] || fail "p6 not 4999 distinct lines"

# 401 and 404: alarm; readings kept until the server accepts again
http_rules '[{"status": 401, "count": 2}, {"status": 404, "count": 1}]'
pub p7 5
expect_stored p7 5 100
log_has "ALARM: batch of 5 refused: HTTP 401"
log_has "ALARM: batch of 5 refused: HTTP 404"
log_has "alarm cleared"
[ "$(grep -c "ALARM: .*HTTP 401" "$HUB_LOG")" -eq 1 ] || fail "the second 401 within a minute was logged again"

http_rules '[]'
stop_hub
grep -q "output ioc: .* delivered" "$HUB_LOG" || fail "no delivered count at stop"
# one kept-alive connection for the writes, plus one after each the server
# dropped (3 resets) or the client gave up on (the stall)
conns=$(jq -s '[.[].conn] | unique | length' "$HTTP_LOG")
echo "ok: every answer handled; $(wc -l <"$HTTP_LOG") requests on $conns connections"
[ "$conns" -le 5 ] || fail "$conns connections: keep-alive is not reused"
