# A backlog of 1,000,000 readings, built while the store is down, drains
# completely into a real InfluxDB 1.x once it comes up on the configured
# port, with the hub running throughout: exactly once (the store's count and
# the hub's delivered counter both equal what was accepted; unique timestamps
# per series, so a duplicate would overwrite rather than add), with every
# value where it was sent (v == f(timestamp), per series in time order), and
# with new readings accepted and delivered while the backlog drains.
#
# Input: MQTT, format influx, 1,000 messages x 1,000 lines, QoS 1. Output: v1,
# gzip. Reading i is drain,s=s(i % 8) v=i at S0 seconds + i ns.
set -eu
. tests/lib/fixtures.sh
fixtures_init
start_mosquitto
HTTP=$("$FREEPORT")
MSGS=1000 LINES=1000
N=$((MSGS * LINES))
SERIES=8
S0=$(($(date +%s) - 7200))
ns() { date +%s%N; }
ms_since() { echo $((($(ns) - $1) / 1000000)); }

# Timestamps as strings: awk's numbers are doubles, S0 * 1e9 + i is not exact.
mkdir -p "$T/msg"
awk -v s0="$S0" -v dir="$T/msg" -v msgs="$MSGS" -v lines="$LINES" -v series="$SERIES" 'BEGIN {
    for (m = 0; m < msgs; m++) {
        f = sprintf("%s/%05d", dir, m)
        for (k = 0; k < lines; k++) {
            i = m * lines + k
            printf "drain,s=s%d v=%di %d%09d\n", i % series, i, s0, i > f
        }
        close(f)
    } }'

cat >"$T/hub.yaml" <<YAML
hub:
  name: gw-drain
  status_interval: 1s
  journal: {path: $T/journal, max_size: 512MiB}
mqtt_inputs:
  - name: lp
    url: $MQTT_URL
    subscribe:
      - {topic: "drain/#", format: influx, qos: 1}
outputs:
  - {name: ioc, type: influxdb, url: "http://127.0.0.1:$HTTP", database: city, gzip: true,
     batch_size: 5000, flush_interval: 100ms, alarm_retry: 1s}
YAML
start_hub "$T/hub.yaml"
mosquitto_wait_subscribed gw-drain-lp 'drain/#' ||
    { tail -20 "$HUB_LOG" >&2; fail "gw-drain-lp never subscribed to drain/#"; }

# ---- the backlog, the store down ----------------------------------------------
t0=$(ns)
for f in "$T"/msg/*; do
    mqtt_pub_file drain/bulk "$f" || fail "publish $f"
done
# In order after the last bulk message: once it is in the journal, all are.
mqtt_pub drain/mark "mark v=1i ${S0}999999999"
in_journal() { # MEASUREMENT: the journal's last 100 records hold one
    local n
    n=$(journal_stat "$T/hub.yaml" next_seq)
    "$CITYHUB" journal -c "$T/hub.yaml" --dump --from $((n > 100 ? n - 100 : 0)) | grep -q " $1,"
}
WAIT_TRIES=600 wait_for in_journal mark || fail "the backlog did not reach the journal in 60 s"
build_ms=$(ms_since "$t0")
rm -rf "$T/msg"
"$CITYHUB" journal -c "$T/hub.yaml" | tee "$T/j1"
backlog=$(awk '$1 == "next_seq" { print $2 }' "$T/j1")
c1=$(awk '$1 == "cursor" { print $3 }' "$T/j1")
[ "$backlog" -ge $((N + 1)) ] || fail "journal holds $backlog readings, want at least $((N + 1))"
[ "$c1" = none ] || [ "$c1" = 0 ] || fail "cursor at $c1 although the store is down"
grep -q "not delivered: transport" "$HUB_LOG" || fail "the failed delivery is not logged"
# Nothing but the readings sent and the status points (status_interval 1s):
# the hub's (cityhub), the output's (cityhub_output) and the MQTT input's (cityhub_mqtt).
"$CITYHUB" journal -c "$T/hub.yaml" --dump | awk '{ sub(/,.*/, "", $2); n[$2]++ }
    END { for (m in n) print m, n[m] }' | sort >"$T/journal.counts"
[ "$(grep -v '^cityhub\(_mqtt\|_output\)\? ' "$T/journal.counts" | tr '\n' ' ')" = "drain $N mark 1 " ] ||
    fail "the journal holds: $(tr '\n' ' ' <"$T/journal.counts")"
echo "ok  backlog of $backlog readings in $build_ms ms, nothing delivered"

# ---- the store comes up; a trickle goes on while the backlog drains ------------
# trickle,s=t v=K at (S0 + 100) s + K ns, 10 readings a message, until $T/stop.
(
    k=0
    while [ ! -e "$T/stop" ]; do
        awk -v s0=$((S0 + 100)) -v k="$k" 'BEGIN {
            for (j = k; j < k + 10; j++) printf "trickle,s=t v=%di %d%09d\n", j, s0, j }' >"$T/tr"
        mqtt_pub_file drain/trickle "$T/tr" || exit 1
        k=$((k + 10))
        echo "$k" >"$T/trickle.sent"
        sleep 0.05
    done
) &
TRICKLE_PID=$!
track_pid "$TRICKLE_PID"
WAIT_TRIES=100 wait_for test -s "$T/trickle.sent" || fail "the trickle publisher did not start"
t0=$(ns)
INFLUX_PORT=$HTTP start_influxdb city
sent_at_up=$(cat "$T/trickle.sent")
cursor() { "$CITYHUB" journal -c "$T/hub.yaml" | awk '$1 == "cursor" { print $3 }'; }
drained() { c=$(cursor) && [ "$c" != none ] && [ "$c" -ge "$backlog" ]; }
WAIT_TRIES=600 wait_for drained || fail "cursor at $(cursor) of $backlog after 60 s"
drain_ms=$(ms_since "$t0")
sent_in_drain=$(cat "$T/trickle.sent")
sleep 1 # the trickle goes on a little after the backlog
touch "$T/stop"
wait "$TRICKLE_PID" || fail "the trickle publisher failed"
untrack_pid "$TRICKLE_PID"
trickle=$(cat "$T/trickle.sent")
echo "ok  drained $backlog readings in $drain_ms ms from the start of influxd;" \
    "trickle: $((sent_in_drain - sent_at_up)) readings published meanwhile, $trickle in all"
[ "$sent_in_drain" -gt "$sent_at_up" ] || fail "no trickle reading was published during the drain"
mqtt_pub drain/mark "mark v=2i $((S0 + 1))999999999"
in_end() { "$CITYHUB" journal -c "$T/hub.yaml" --dump --from "$backlog" | grep -q ' mark,'; }
wait_for in_end || fail "the second mark did not reach the journal"
caught_up() {
    "$CITYHUB" journal -c "$T/hub.yaml" | awk '$1 == "cursor" && $5 == 0 { ok = 1 } END { exit !ok }'
}
WAIT_TRIES=300 wait_for caught_up || fail "the output did not catch up with the trickle"
sleep 1.2 # a health point with the caught-up lag
stop_hub

# ---- exactly once: the hub's counters ------------------------------------------
"$CITYHUB" journal -c "$T/hub.yaml" | tee "$T/j2"
accepted=$(awk '$1 == "next_seq" { print $2 }' "$T/j2")
read -r _ _ cur _ lag < <(grep '^cursor ioc ' "$T/j2")
line=$(grep "output ioc: .* delivered, cursor at" "$HUB_LOG" | tail -1)
delivered=$(echo "$line" | sed -n 's/.*output ioc: \([0-9]*\) delivered, cursor at \([0-9]*\).*/\1/p')
cur_log=$(echo "$line" | sed -n 's/.*output ioc: \([0-9]*\) delivered, cursor at \([0-9]*\).*/\2/p')
echo "accepted $accepted, delivered $delivered, cursor $cur (log $cur_log), lag $lag"
[ "$cur" = "$accepted" ] && [ "$lag" = 0 ] || fail "cursor $cur lag $lag, want $accepted lag 0"
[ "$cur_log" = "$accepted" ] || fail "shutdown log: cursor at $cur_log, want $accepted"
[ "$delivered" = "$accepted" ] ||
    fail "the hub delivered $delivered readings of $accepted accepted (each exactly once)"
# (the shutdown counts name the drops too: there, they must be 0)
drops=$(grep -i "dropped" "$HUB_LOG" | grep -v "\[cityhub\] \(output ioc: .* 0 dropped undelivered\|stopped: .* 0 dropped undelivered\)" || true)
[ -z "$drops" ] || fail "the journal dropped readings: $drops"

# ---- exactly once: the store ----------------------------------------------------
# Delivered segments are deleted, so count what was sent: the store holds
# every accepted reading, and nothing else.
status=$((accepted - N - 2 - trickle))
[ "$(influx_query city 'SHOW MEASUREMENTS' | jq -r '.results[0].series[0].values[][0]' | tr '\n' ' ')" = \
    "cityhub cityhub_mqtt cityhub_output drain mark trickle " ] || fail "unexpected measurements in the store"
hub_points=$(influx_count city "SELECT count(uptime_s) FROM cityhub")
mqtt_points=$(influx_count city "SELECT count(messages) FROM cityhub_mqtt")
out_points=$(influx_count city "SELECT count(delivered) FROM cityhub_output")
mqtt_points=$((mqtt_points + out_points))
[ $((hub_points + mqtt_points)) = "$status" ] ||
    fail "status points: $hub_points + $mqtt_points in the store, $status accepted"
echo "ok  status points: $hub_points + $mqtt_points in the store"
for spec in "drain v $N" "mark v 2" "trickle v $trickle"; do
    read -r m f want <<<"$spec"
    got=$(influx_count city "SELECT count($f) FROM $m")
    [ "$got" = "$want" ] || fail "$m: $got points in the store, want $want"
    echo "ok  $m: $got points in the store"
done

# Every point: per series in time order, v is the series' next index and the
# time is S0 s + v ns (exact integers, compared as strings).
influx_csv city "SELECT v FROM drain GROUP BY s ORDER BY time" >"$T/drain.csv"
awk -F, -v s0="$S0" -v series="$SERIES" -v n="$N" '
    { split($2, kv, "="); s = substr(kv[2], 2) + 0
      want = (s in next_v) ? next_v[s] : s
      if ($4 != want || $3 != sprintf("%d%09d", s0, $4)) {
          printf "series s%d: got v=%s at %s, want v=%d at %d%09d\n", s, $4, $3, want, s0, want
          bad++; if (bad > 5) exit 1 }
      next_v[s] = want + series; rows++ }
    END { if (bad) exit 1
          for (s = 0; s < series; s++) if (next_v[s] != s + n) { print "series s" s " ends early"; exit 1 }
          if (rows != n) { print rows " rows"; exit 1 } }' "$T/drain.csv" ||
    fail "drain: the stored points are not the sequence sent"
echo "ok  drain: $N points, per series v == (time - S0 s) in ns, in order, none missing"
influx_csv city "SELECT v FROM trickle ORDER BY time" | awk -F, -v s0=$((S0 + 100)) -v n="$trickle" '
    $4 != NR - 1 || $3 != sprintf("%d%09d", s0, $4) { print "trickle row " NR ": " $0; exit 1 }
    END { if (NR != n) { print NR " of " n " trickle points"; exit 1 } }' ||
    fail "trickle: the stored points are not the sequence sent"
echo "ok  trickle: $trickle points, exact"

# Health points: the backlog showed as output_lag, and it went back to 0.
maxlag=$(influx_query city "SELECT max(output_lag) FROM cityhub" | jq '.results[0].series[0].values[0][1]')
lastlag=$(influx_query city "SELECT last(output_lag) FROM cityhub" | jq '.results[0].series[0].values[0][1]')
echo "health points: max output_lag $maxlag, last $lastlag"
[ "$maxlag" -ge "$N" ] || fail "max output_lag $maxlag: the backlog of $N never showed"
[ "$lastlag" -le 100 ] || fail "last output_lag $lastlag: the health point did not see the drain"
echo "backlog drain ok: $N readings built in $build_ms ms, drained in $drain_ms ms"
