# One point the store refuses does not block the others (real InfluxDB 1.x):
# a batch of 5000 with one field-type conflict (a float field written once as
# an integer) is answered "400 partial write"; the hub halves the batch until
# it has the one line, delivers every other reading, keeps the refused line
# in the output's dead-letter file with the server's reason, and later
# readings flow on. The cursor reaches the end; nothing counts as delivered
# that was not.
set -eu
. tests/lib/fixtures.sh
fixtures_init
start_influxdb city
start_mosquitto

S=$(($(date +%s) - 7200))
# The field `value` of `conflict` exists as a float in the store.
curl -sf -XPOST "$INFLUX_URL/write?db=city&precision=s" --data-binary "conflict,device=x value=1.5 $S" ||
    fail "could not write the float point"

start_lp_hub gw-conflict \
    "{name: ioc, type: influxdb, url: \"$INFLUX_URL\", database: city, batch_size: 5000, flush_interval: 2s}"

# 5000 readings in two messages (2500 lines each), read as one batch; line
# 3001 (seq 3000) writes `value` as an integer.
gen() { # FROM TO
    local i
    for ((i = $1; i < $2; i++)); do
        if [ "$i" -eq 3000 ]; then
            echo "conflict,device=x value=7i $(((S + 1) * 1000000000 + i))"
        else
            echo "load,device=d$((i % 10)) value=$i.5,n=${i}i $((S * 1000000000 + i * 1000))"
        fi
    done
}
gen 0 2500 >"$T/m1.lp"
gen 2500 5000 >"$T/m2.lp"
mqtt_pub_file lp/a "$T/m1.lp"
mqtt_pub_file lp/a "$T/m2.lp"

count_load() { influx_count city 'SELECT count(value) FROM load'; }
for _ in $(seq 300); do [ "$(count_load)" -ge 4999 ] && break; sleep 0.1; done
got=$(influx_count city 'SELECT count(value) FROM load')
[ "$got" -eq 4999 ] || { tail -20 "$HUB_LOG" >&2; fail "stored $got of the 4999 good readings"; }
sum=$(influx_query city 'SELECT sum(n) FROM load' | sed -n 's/.*"values":\[\[[0-9]*,\([0-9]*\)\]\].*/\1/p')
[ "$sum" -eq $((4999 * 5000 / 2 - 3000)) ] || fail "sum of n is $sum"
# the conflicting point never reached the store
[ "$(influx_count city 'SELECT count(value) FROM conflict')" -eq 1 ] || fail "conflict has more than its float point"

# The refused line, with the server's reason, in the default dead-letter file.
DL=$T/state/deadletter/ioc.jsonl
WAIT_TRIES=100 wait_for test -s "$DL" || fail "no dead-letter file at $DL"
[ "$(wc -l <"$DL")" -eq 1 ] || { cat "$DL" >&2; fail "the dead-letter file has more than the one line"; }
jq -e --arg p "conflict,device=x,gateway=gw-conflict value=7i $(((S + 1) * 1000000000 + 3000))" \
    '.source == "influxdb:ioc" and .seq == "3000" and .payload == $p and
     (.reason | test("HTTP 400: .*field type conflict"))' "$DL" >/dev/null ||
    { cat "$DL" >&2; fail "the dead-letter entry is not the refused line with the server's reason"; }
[ "$(stat -c %a "$DL")" = 600 ] || fail "dead-letter file mode $(stat -c %a "$DL")"
[ "$(stat -c %a "$T/state/deadletter")" = 700 ] || fail "dead-letter directory mode"
grep -q "batch of 5000 refused: HTTP 400: partial write" "$HUB_LOG" ||
    { tail "$HUB_LOG" >&2; fail "no log line for the refused batch of 5000"; }
grep -q "reading seq 3000 (conflict) refused by the server: HTTP 400" "$HUB_LOG" ||
    fail "no log line naming the refused reading"

# Later readings flow on.
gen 5000 5100 >"$T/m3.lp"
mqtt_pub_file lp/a "$T/m3.lp"
for _ in $(seq 200); do [ "$(count_load)" -eq 5099 ] && break; sleep 0.1; done
[ "$(count_load)" -eq 5099 ] || fail "later readings did not arrive ($(count_load) of 5099)"
stop_hub
# Every accepted reading is passed: delivered, or refused and kept.
next=$(journal_stat "$T/hub.yaml" next_seq)
cursor=$(journal_cursor "$T/hub.yaml" ioc)
grep -q "output ioc: $((next - 1)) delivered" "$HUB_LOG" || { grep "output ioc" "$HUB_LOG" >&2; fail "delivered count is not next_seq - 1 ($next)"; }
echo "ok: 5099 stored, 1 refused and kept, cursor ${cursor:-?} of $next"
