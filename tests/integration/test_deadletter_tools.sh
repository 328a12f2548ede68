# `cityhub deadletter list` and `retry` on a dead-letter file the hub wrote
# against a real InfluxDB 1.x (field type conflicts), while the hub runs:
#   list: one row per entry and the summary by reason; --json is valid JSON
#       lines; a malformed line is reported as PATH:LINE and the rest listed;
#   retry --dry-run prints the lines and changes nothing (same checksum);
#   retry against a stopped store (connection refused) and one answering
#       503: exit 1, a clear message, the file unchanged;
#   once a cause is fixed (DROP MEASUREMENT), retry resends: that point is in
#       InfluxDB, its entry gone; an entry the store refuses again stays with
#       the new reason; an MQTT entry is skipped, counted, kept;
#   the running hub's next refused line goes to the rewritten file, and one
#       it adds while a retry waits on a slow store is kept.
set -eu
. tests/lib/fixtures.sh
fixtures_init
start_influxdb city
start_mosquitto

S=$(($(date +%s) - 7200))
# `conflict` and `stubborn` hold `value` as a float; the hub will write integers.
curl -sf -XPOST "$INFLUX_URL/write?db=city&precision=s" --data-binary "conflict,device=x value=1.5 $S
stubborn,device=y value=2.5 $S" || fail "could not write the float points"

start_lp_hub gw-dl \
    "{name: ioc, type: influxdb, url: \"$INFLUX_URL\", database: city, batch_size: 100, flush_interval: 300ms}"

T1=$(((S + 1) * 1000000000))
T2=$(((S + 2) * 1000000000))
cat >"$T/m1.lp" <<LP
good,device=a value=1.5 $T1
conflict,device=x value=7i $T1
stubborn,device=y value=9i $T2
LP
mqtt_pub_file lp/a "$T/m1.lp"

DL=$T/state/deadletter/ioc.jsonl
WAIT_TRIES=150 wait_for bash -c "[ \"\$(wc -l <'$DL' 2>/dev/null)\" -ge 2 ]" ||
    { tail -20 "$HUB_LOG" >&2; fail "no 2 entries in $DL"; }
[ "$(influx_count city 'SELECT count(value) FROM good')" -eq 1 ] || fail "the good point is not stored"

# ---- list ------------------------------------------------------------------
"$CITYHUB" deadletter list "$DL" >"$T/list.out" 2>"$T/list.err" || { cat "$T/list.err" >&2; fail "list exited $?"; }
cat "$T/list.out"
grep -q '^TIME  *SOURCE  *SEQ/TOPIC  *BYTES  *REASON$' "$T/list.out" || fail "list: no header"
grep -Eq '^[0-9-]{10}T[0-9:.]{12}Z  influxdb:ioc  +1  +[0-9]+  HTTP 400: .*field type conflict' "$T/list.out" ||
    fail "list: no row for the conflict line (seq 1)"
grep -Eq '  influxdb:ioc  +2  ' "$T/list.out" || fail "list: no row for the stubborn line (seq 2)"
grep -q '^2 entries, oldest .*Z, newest .*Z, by reason: HTTP 400 partial write: field type conflict (2)$' "$T/list.out" ||
    fail "list: summary line"
[ ! -s "$T/list.err" ] || { cat "$T/list.err" >&2; fail "list wrote to stderr for a clean file"; }

"$CITYHUB" deadletter list --json "$DL" >"$T/list.json" || fail "list --json exited $?"
[ "$(wc -l <"$T/list.json")" -eq 2 ] || fail "list --json: not 2 lines"
/usr/bin/python3 -c '
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
assert [r["seq"] for r in rows] == ["1", "2"], rows
assert rows[0]["payload"].startswith("conflict,device=x,gateway=gw-dl value=7i "), rows[0]
' "$T/list.json" || fail "list --json is not the entries as valid JSON"

# a malformed line is reported with its number, the others still listed
{ sed -n 1p "$DL"; echo '{"time": "2026-01-01T00:00:00Z", "source"'; sed -n 2p "$DL"; } >"$T/bad.jsonl"
rc=0
"$CITYHUB" deadletter list "$T/bad.jsonl" >"$T/bad.out" 2>"$T/bad.err" || rc=$?
[ "$rc" -eq 1 ] || fail "list of a file with a malformed line exited $rc, not 1"
grep -q "^$T/bad.jsonl:2: not a dead-letter entry (not JSON: " "$T/bad.err" ||
    { cat "$T/bad.err" >&2; fail "the malformed line is not reported as PATH:2"; }
grep -q '^2 entries, .*; 1 malformed line$' "$T/bad.out" || { cat "$T/bad.out" >&2; fail "list of bad.jsonl: summary"; }
rc=0
"$CITYHUB" deadletter list "$T/none.jsonl" 2>"$T/none.err" || rc=$?
[ "$rc" -eq 2 ] && grep -q "none.jsonl: No such file" "$T/none.err" || fail "list of a missing file: exit $rc"

# ---- retry --dry-run: nothing changes ---------------------------------------
sum0=$(sha256sum <"$DL")
"$CITYHUB" deadletter retry "$DL" -c "$T/hub.yaml" --dry-run >"$T/dry.out" || fail "dry run exited $?"
grep -q '^# batch 1: 2 lines to output ioc (influxdb)$' "$T/dry.out" || { cat "$T/dry.out" >&2; fail "dry run: no batch line"; }
grep -q "^conflict,device=x,gateway=gw-dl value=7i $T1$" "$T/dry.out" || fail "dry run: the conflict line not shown"
grep -q "^dry run: would resend 2, skipped 0" "$T/dry.out" || fail "dry run: summary"
[ "$(sha256sum <"$DL")" = "$sum0" ] || fail "dry run changed the file"

# ---- a store that is not there, or answers 503: stop, file unchanged ------------
port=$("$FREEPORT" 1)
sed "s|$INFLUX_URL|http://127.0.0.1:$port|" "$T/hub.yaml" >"$T/down.yaml"
rc=0
"$CITYHUB" deadletter retry "$DL" -c "$T/down.yaml" >"$T/down.out" 2>"$T/down.err" || rc=$?
[ "$rc" -eq 1 ] || fail "retry against a stopped store exited $rc, not 1"
grep -q "output ioc: not delivered: transport: .*stopped, the entries not yet accepted stay in $DL" "$T/down.err" ||
    { cat "$T/down.err" >&2; fail "retry against a stopped store: no clear message"; }
grep -q '^resent 0, still refused 0, skipped 0, not tried 2 (stopped)$' "$T/down.out" || { cat "$T/down.out" >&2; fail "stopped: summary"; }
[ "$(sha256sum <"$DL")" = "$sum0" ] || fail "retry against a stopped store changed the file"

start_http_responder
http_rules '[{"status": 503}]'
sed "s|$INFLUX_URL|$HTTP_URL|" "$T/hub.yaml" >"$T/503.yaml"
rc=0
"$CITYHUB" deadletter retry "$DL" -c "$T/503.yaml" >"$T/503.out" 2>"$T/503.err" || rc=$?
[ "$rc" -eq 1 ] && grep -q "output ioc: not delivered: HTTP 503" "$T/503.err" ||
    { cat "$T/503.err" >&2; fail "retry against a 503: exit $rc or no message"; }
[ "$(sha256sum <"$DL")" = "$sum0" ] || fail "retry against a 503 changed the file"

# ---- fix one cause; the other store refuses anew, for another reason ------------
influx_query city 'DROP MEASUREMENT "conflict"' >/dev/null || fail "drop conflict"
influx_query city 'DROP MEASUREMENT "stubborn"' >/dev/null || fail "drop stubborn"
curl -sf -XPOST "$INFLUX_URL/write?db=city&precision=s" --data-binary "stubborn,device=y value=\"text\" $S" ||
    fail "could not write the string point"
# an entry an MQTT input wrote, added under the writer's lock as the hub does
flock "$DL" sh -c "echo '{\"time\":\"2026-12-03T07:15:00.123Z\",\"source\":\"mqtt:lp\",\"topic\":\"lp/a\",\"reason\":\"line 1: no field\",\"payload\":\"x\"}' >>'$DL'"

rc=0
"$CITYHUB" deadletter retry "$DL" -c "$T/hub.yaml" >"$T/r1.out" 2>"$T/r1.err" || rc=$?
cat "$T/r1.out" "$T/r1.err"
[ "$rc" -eq 1 ] || fail "retry with a line still refused exited $rc, not 1"
grep -q '^resent 1, still refused 1 (reasons: HTTP 400 partial write: field type conflict (1)), skipped 1$' "$T/r1.out" ||
    fail "retry: summary"
grep -q 'skipped 1: mqtt:lp: a message an input refused cannot be resent as readings' "$T/r1.err" ||
    fail "retry: the MQTT entry is not said to be skipped"
# the point is in InfluxDB, as the integer it was
influx_query city 'SELECT value FROM conflict' | grep -q "\[\[$T1,7\]\]" ||
    { influx_query city 'SELECT value FROM conflict' >&2; fail "the resent point is not in InfluxDB"; }
[ "$(wc -l <"$DL")" -eq 2 ] || { cat "$DL" >&2; fail "the file has not 2 entries left"; }
/usr/bin/python3 -c '
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
assert rows[0]["seq"] == "2" and rows[0]["source"] == "influxdb:ioc", rows
assert "already exists as type string" in rows[0]["reason"], rows[0]["reason"]
assert rows[0]["payload"].startswith("stubborn,"), rows[0]
assert rows[1]["source"] == "mqtt:lp" and rows[1]["topic"] == "lp/a", rows[1]
' "$DL" || { cat "$DL" >&2; fail "the entry refused again has not the new reason, or the MQTT one is gone"; }
[ "$(stat -c %a "$DL")" = 600 ] || fail "rewritten file mode $(stat -c %a "$DL")"
[ ! -e "$DL.tmp" ] || fail "$DL.tmp left behind"

# ---- the running hub appends to the rewritten file ----------------------------
T3=$(((S + 3) * 1000000000))
echo "stubborn,device=z value=10i $T3" >"$T/m2.lp"
mqtt_pub_file lp/a "$T/m2.lp"
WAIT_TRIES=150 wait_for bash -c "[ \"\$(wc -l <'$DL')\" -ge 3 ]" ||
    { tail -20 "$HUB_LOG" >&2; fail "the hub's next refused line is not in the rewritten file"; }
jq -e 'select(.seq == "3") | .payload | startswith("stubborn,device=z")' "$DL" >/dev/null ||
    { cat "$DL" >&2; fail "the new entry is not the hub's seq 3"; }

# ---- the hub appends while a retry waits on a slow store: nothing is lost -----
# (the responder accepts the two stubborn lines after 4 s; meanwhile the hub
# refuses one more line into the file)
http_rules '[{"action": "stall", "stall_s": 4, "count": 1}]'
"$CITYHUB" deadletter retry "$DL" -c "$T/503.yaml" >"$T/slow.out" 2>"$T/slow.err" &
retry_pid=$!
WAIT_TRIES=100 wait_for bash -c "curl -sf '$HTTP_URL/_rules' | jq -e '.[0].remaining == 0' >/dev/null" ||
    fail "the slow retry never reached the responder"
T4=$(((S + 4) * 1000000000))
echo "stubborn,device=w value=11i $T4" >"$T/m3.lp"
mqtt_pub_file lp/a "$T/m3.lp"
WAIT_TRIES=150 wait_for bash -c "[ \"\$(wc -l <'$DL')\" -ge 4 ]" ||
    { tail -20 "$HUB_LOG" >&2; fail "the hub did not add seq 4 during the retry"; }
rc=0
wait "$retry_pid" || rc=$?
[ "$rc" -eq 0 ] || { cat "$T/slow.out" "$T/slow.err" >&2; fail "the slow retry exited $rc"; }
grep -q '^resent 2, still refused 0, skipped 1$' "$T/slow.out" || { cat "$T/slow.out" >&2; fail "slow retry: summary"; }
grep -c '^stubborn,device=[yz],gateway=gw-dl value=[0-9]*i ' "$HTTP_STORE" | grep -qx 2 ||
    fail "the responder did not store the two stubborn lines"
/usr/bin/python3 -c '
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
assert [r["source"] for r in rows] == ["mqtt:lp", "influxdb:ioc"], rows
assert rows[1]["seq"] == "4" and rows[1]["payload"].startswith("stubborn,device=w,"), rows[1]
' "$DL" || { cat "$DL" >&2; fail "after the slow retry the file is not the MQTT entry and seq 4 of the hub"; }

# ---- fix the last cause: everything resent, the MQTT entry stays -------------
influx_query city 'DROP MEASUREMENT "stubborn"' >/dev/null || fail "drop stubborn again"
"$CITYHUB" deadletter retry "$DL" -c "$T/hub.yaml" >"$T/r2.out" 2>"$T/r2.err" ||
    { cat "$T/r2.out" "$T/r2.err" >&2; fail "the last retry exited $?"; }
grep -q '^resent 1, still refused 0, skipped 1$' "$T/r2.out" || { cat "$T/r2.out" >&2; fail "last retry: summary"; }
influx_query city 'SELECT value FROM stubborn' | grep -q "\[\[$T4,11\]\]" ||
    { influx_query city 'SELECT value FROM stubborn' >&2; fail "stubborn: seq 4 not in InfluxDB"; }
[ "$(wc -l <"$DL")" -eq 1 ] && grep -q '"source":"mqtt:lp"' "$DL" || { cat "$DL" >&2; fail "only the MQTT entry should be left"; }
"$CITYHUB" deadletter list "$DL" | grep -q '^1 entry, .*by reason: line #: no field (1)$' || fail "list after retry"
stop_hub
echo "ok: listed, dry run and stopped store unchanged, resent once fixed, refused again kept, hub appends kept, MQTT entry kept"
