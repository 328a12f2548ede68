# The influxdb output's v2 API (org, bucket, token_file) and gzip against a
# real VictoriaMetrics single node: readings from an MQTT input (line
# protocol, explicit timestamps) land with exact values, labels and
# millisecond timestamps. A second output, v1 with a path prefix in its url
# (http://HOST/influx -> /influx/write?db=agency), writes the same readings
# to VictoriaMetrics' /influx/ endpoint, each output with its own cursor.
# Both reach VictoriaMetrics through socat taps that log the requests, so
# the test sees the request line, the token and Content-Encoding: gzip.
set -eu
. tests/lib/fixtures.sh
fixtures_init
start_victoriametrics
start_mosquitto
# tap NAME -> TAP_PORT: socat forwarding to VictoriaMetrics, logging what
# passes to $T/tap-NAME.log (one tap per output: no interleaved requests).
tap() {
    TAP_PORT=$("$FREEPORT")
    socat -v "TCP-LISTEN:$TAP_PORT,bind=127.0.0.1,reuseaddr,fork" "TCP:127.0.0.1:$VM_PORT" \
        2>"$T/tap-$1.log" &
    track_pid $!
    wait_for bash -c "exec 3<>/dev/tcp/127.0.0.1/$TAP_PORT" || fail "socat tap $1 does not listen"
}
tap v2
TAP_V2=$TAP_PORT
tap v1
TAP_V1=$TAP_PORT

TOKEN="vm-token-$RANDOM$RANDOM"
(umask 077 && printf '%s\n' "$TOKEN" >"$T/vm.token")
[ "$(stat -c %a "$T/vm.token")" = 600 ] || fail "token file is not mode 0600"

cat >"$T/hub.yaml" <<YAML
hub:
  name: gw-vm
  tags: {district: d1}
  journal: {path: $T/journal, sync_interval: 100ms}
mqtt_inputs:
  - name: lp
    url: $MQTT_URL
    subscribe:
      - {topic: "lp/#", format: influx, qos: 1}
outputs:
  - {name: ioc, type: influxdb, url: "http://127.0.0.1:$TAP_V2", org: city org, bucket: sensors,
     token_file: $T/vm.token, gzip: true, flush_interval: 100ms}
  - {name: agency, type: influxdb, url: "http://127.0.0.1:$TAP_V1/influx/", database: agency,
     gzip: true, flush_interval: 100ms}
YAML
"$CITYHUB" check -c "$T/hub.yaml" || fail "cityhub check refuses the config"
start_hub "$T/hub.yaml"
mosquitto_wait_subscribed gw-vm-lp 'lp/#' ||
    { tail -20 "$HUB_LOG" >&2; fail "gw-vm-lp never subscribed to lp/#"; }

# An hour ago, on whole milliseconds, except the last line: 123456789 ns
# past the second, which VictoriaMetrics keeps as 123 ms (cut, not rounded).
S=$(($(date +%s) - 3600))
mqtt_pub lp/air "air,station=st1 pm25=0.1,temp=-40.25,count=-3i,big=1234567890123456i,ok=true ${S}123000000
air,station=st1 pm25=2.5e-07,temp=21.5,count=0i,big=-9007199254740992i,ok=false $((S + 1))456000000
air,station=st2 pm25=123456.789 $((S + 2))000000000
precise,station=st3 v=1.5 $((S + 3))123999999"
N_VALUES=12 # field values in the four lines

sorted_labels() { tr ',' '\n' <<<"$1" | sort | paste -sd,; }
want_rows() { # [DB]: what VictoriaMetrics should hold, as vm_rows prints it
    local l="district=d1,gateway=gw-vm${1:+,db=$1}" l1 l2 l3
    l1=$(sorted_labels "$l,station=st1")
    l2=$(sorted_labels "$l,station=st2")
    l3=$(sorted_labels "$l,station=st3")
    sort <<ROWS
air_big{$l1} ${S}123 1234567890123456
air_big{$l1} $((S + 1))456 -9007199254740992
air_count{$l1} ${S}123 -3
air_count{$l1} $((S + 1))456 0
air_ok{$l1} ${S}123 1
air_ok{$l1} $((S + 1))456 0
air_pm25{$l1} ${S}123 0.1
air_pm25{$l1} $((S + 1))456 2.5e-07
air_pm25{$l2} $((S + 2))000 123456.789
air_temp{$l1} ${S}123 -40.25
air_temp{$l1} $((S + 1))456 21.5
precise_v{$l3} $((S + 3))123 1.5
ROWS
}
MATCH='{__name__=~"air_.*|precise_.*"}'
both() { [ "$(vm_rows "$MATCH" | wc -l)" -ge $((2 * N_VALUES)) ]; }
WAIT_TRIES=150 wait_for both || { vm_rows "$MATCH" >&2; fail "the readings did not reach VictoriaMetrics"; }
sleep 0.5
stop_hub

got=$(vm_rows "$MATCH")
# v2 (ioc): no db label; v1 (agency): VictoriaMetrics adds db=agency from ?db=
v2=$(grep -v 'db=agency' <<<"$got" || true)
v1=$(grep 'db=agency' <<<"$got" || true)
[ "$v2" = "$(want_rows)" ] || { diff <(want_rows) <(echo "$v2") >&2; fail "v2 samples differ (above: - want, + got)"; }
echo "ok  v2 output: $(wc -l <<<"$v2") samples, exact values, labels and ms times"
[ "$v1" = "$(want_rows agency)" ] ||
    { diff <(want_rows agency) <(echo "$v1") >&2; fail "v1 /influx samples differ (above: - want, + got)"; }
echo "ok  v1 output with url path /influx: $(wc -l <<<"$v1") samples, the same with db=agency"
[ "$(vm_metric vm_rows_invalid_total)" = 0 ] || fail "VictoriaMetrics counted invalid rows"

# On the wire (the taps' logs): request lines, the token, gzip; no plain body.
grep -q "^POST /api/v2/write?org=city%20org&bucket=sensors&precision=ns HTTP/1.1" "$T/tap-v2.log" ||
    fail "no v2 request line in the tap's log"
grep -q "^POST /influx/write?db=agency&precision=ns HTTP/1.1" "$T/tap-v1.log" ||
    fail "no v1 request to /influx/write (url path kept, trailing / dropped)"
grep -q "^Authorization: Token $TOKEN" "$T/tap-v2.log" || fail "the token was not sent"
if grep -q "^Authorization" "$T/tap-v1.log"; then fail "v1 without username sent credentials"; fi
for v in v1 v2; do
    grep -q "^Content-Encoding: gzip" "$T/tap-$v.log" || fail "$v request not gzipped"
    if grep -aq "pm25=0.1" "$T/tap-$v.log"; then fail "a $v request body went uncompressed"; fi
done
echo "ok  on the wire: v2 and v1 request lines, Authorization: Token, Content-Encoding: gzip"

# Each output has its own cursor, and both delivered everything.
"$CITYHUB" journal -c "$T/hub.yaml" | tee "$T/j"
n=$(awk '$1 == "next_seq" { print $2 }' "$T/j")
for o in ioc agency; do
    grep -q "^cursor $o $n lag 0$" "$T/j" || fail "output $o is not at the end ($n)"
    grep -q "output $o: $n delivered, cursor at $n" "$HUB_LOG" || fail "output $o: not $n delivered"
done
echo "victoria-metrics v2 ok"
