# Dropping root: started as root with hub.user: nobody, the hub creates its
# journal directory for nobody, binds a status port below 1024, then runs as
# nobody with nobody's groups, no capability (effective, permitted,
# bounding) and no_new_privs, in every thread, and still journals and
# forwards. A missing user stops the start with an error naming hub.user;
# hub.user: root keeps root with a warning. Not root: the checks that need
# root are skipped (said below), the rest runs.
set -eu
. tests/lib/fixtures.sh
fixtures_init
cfg() { # cfg FILE USER: the hub, the simulator and InfluxDB
    cat >"$1" <<YAML
hub:
  name: gw-priv
  user: $2
  journal: {path: $T/state/journal}
  status: {listen: "127.0.0.1:${STATUS_PORT:-1}"}
buses:
  - {name: lan, type: tcp, host: 127.0.0.1, port: ${SIM_PORT:-1}, timeout: 1s}
devices:
  - name: traffic-1
    bus: lan
    unit: 1
    interval: 500ms
    measurement: traffic
    registers:
      - {field: vehicles_total, table: input, address: 0, type: uint16}
mqtt_inputs:
  - name: lp
    url: ${MQTT_URL:-mqtt://127.0.0.1:1}
    subscribe:
      - {topic: "lp/#", format: influx, qos: 1}
outputs:
  - {name: ioc, type: influxdb, url: "${INFLUX_URL:-http://127.0.0.1:1}", database: city, flush_interval: 200ms}
YAML
}

# `cityhub check` knows the key.
cfg "$T/bad.yaml" '"no such user!"'
if "$CITYHUB" check -c "$T/bad.yaml" >"$T/check.out" 2>&1; then fail "check accepted a bad hub.user"; fi
grep -q "^$T/bad.yaml:3:9: .*user name" "$T/check.out" || { cat "$T/check.out" >&2; fail "check does not name hub.user at 3:9"; }

if [ "$(id -u)" -ne 0 ]; then
    echo "not root: skipping the privilege drop checks (they need root); checking that nothing changes"
    start_influxdb city
    start_sim --profile demo
    STATUS_PORT=$("$FREEPORT")
    cfg "$T/hub.yaml" no-such-user-cityhub
    HUB_USER= start_hub "$T/hub.yaml"
    WAIT_TRIES=100 wait_for grep -q "\[cityhub\] running:" "$HUB_LOG" || fail "not root: the hub did not start"
    [ "$(awk '/^Uid:/ {print $2}' "/proc/$HUB_PID/status")" -eq "$(id -u)" ] || fail "uid changed"
    stop_hub
    echo "privilege drop ok (root checks skipped)"
    exit 0
fi

# A missing user: refused, naming the key, before anything is created.
cfg "$T/missing.yaml" no-such-user-cityhub
set +e
"$CITYHUB" run -c "$T/missing.yaml" >"$T/missing.log" 2>&1
rc=$?
set -e
[ "$rc" -eq 2 ] || { cat "$T/missing.log" >&2; fail "a missing user must stop the start with exit 2, got $rc"; }
grep -q "hub.user: no user \"no-such-user-cityhub\" on this system" "$T/missing.log" ||
    { cat "$T/missing.log" >&2; fail "the error does not name hub.user and the user"; }
[ ! -e "$T/state/journal" ] || fail "a refused start created the journal"
echo "missing user: $(grep -o 'hub.user: no user [^(]*' "$T/missing.log")"

# The user nobody in a directory it can reach. The MQTT client's threads
# start before the drop: they must change too.
chmod 0755 "$T"
start_influxdb city
start_sim --profile demo
start_mosquitto
# a port below 1024 that needs root to bind: the first free one from 700
STATUS_PORT=""
for p in $(seq 700 760); do
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then STATUS_PORT=$p; break; fi
done
[ -n "$STATUS_PORT" ] || fail "no free port below 1024"
cfg "$T/hub.yaml" nobody
HUB_USER= start_hub "$T/hub.yaml"
WAIT_TRIES=200 wait_for grep -q "\[cityhub\] running:" "$HUB_LOG" || { tail -20 "$HUB_LOG" >&2; fail "the hub did not start as nobody"; }
grep "running as nobody" "$HUB_LOG" || fail "the drop is not logged"
S=/proc/$HUB_PID/status
uid=$(id -u nobody) gid=$(id -g nobody)
want_groups=$(id -G nobody | tr ' ' '\n' | sort -n | tr '\n' ' ')
grep -E '^(Uid|Gid|Groups|CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs):' "$S"
for f in "$S" /proc/"$HUB_PID"/task/*/status; do
    awk -v u="$uid" '/^Uid:/ { exit !($2 == u && $3 == u && $4 == u && $5 == u) }' "$f" || fail "$f: Uid is not nobody's"
    awk -v g="$gid" '/^Gid:/ { exit !($2 == g && $3 == g && $4 == g && $5 == g) }' "$f" || fail "$f: Gid is not nobody's"
    for c in CapInh CapPrm CapEff CapBnd CapAmb; do
        grep -q "^$c:[[:space:]]*0000000000000000$" "$f" || fail "$f: $c is not empty"
    done
    grep -q "^NoNewPrivs:[[:space:]]*1$" "$f" || fail "$f: NoNewPrivs is not 1"
    have=$(awk '/^Groups:/ { for (i = 2; i <= NF; i++) print $i }' "$f" | sort -n | tr '\n' ' ')
    [ "$have" = "$want_groups" ] || fail "$f: groups '$have', want nobody's '$want_groups'"
done
echo "every thread ($(ls /proc/"$HUB_PID"/task | wc -l)) runs as nobody, no capabilities, no_new_privs"
# an MQTT message after the drop is journalled and forwarded as well
mosquitto_wait_subscribed gw-priv-lp "lp/#" || fail "as nobody: the hub never subscribed"
mqtt_pub lp/x "lpcheck,src=mqtt v=1i" -q 1
for _ in $(seq 100); do [ "$(influx_count city "SELECT count(v) FROM lpcheck")" -ge 1 ] && break; sleep 0.1; done
[ "$(influx_count city "SELECT count(v) FROM lpcheck")" -ge 1 ] || fail "as nobody: an MQTT message did not reach InfluxDB"
[ "$(stat -c %U "$T/state/journal")" = nobody ] || fail "the journal directory is not nobody's"
[ "$(stat -c %U "$T/state/deadletter")" = nobody ] || fail "the dead-letter directory is not nobody's"
! find "$T/state" ! -user nobody | grep . || fail "files in the journal not nobody's"
curl -sf "http://127.0.0.1:$STATUS_PORT/health" >/dev/null || fail "the status port $STATUS_PORT (bound as root) does not answer"
# still journals and forwards; the cursor moves (a file written after the drop)
stored() { influx_count city "SELECT count(vehicles_total) FROM traffic"; }
for _ in $(seq 100); do [ "$(stored)" -ge 4 ] && break; sleep 0.1; done
n=$(stored)
[ "$n" -ge 4 ] || { tail -20 "$HUB_LOG" >&2; fail "as nobody: $n readings in InfluxDB, want 4 or more"; }
stop_hub
cur=$(journal_cursor "$T/hub.yaml" ioc)
[ "$cur" -ge 4 ] || fail "the cursor of ioc did not move as nobody ($cur)"
! grep -Ei "permission denied|EACCES" "$HUB_LOG" || fail "permission errors as nobody"
echo "as nobody: $n readings in InfluxDB, cursor at $cur, status port $STATUS_PORT"
find "$T/state" ! -user nobody | grep . && fail "files left that are not nobody's"

# hub.user: root keeps root and warns.
cfg "$T/root.yaml" root
HUB_USER= start_hub "$T/root.yaml" "$T/root.log"
WAIT_TRIES=200 wait_for grep -q "\[cityhub\] running:" "$HUB_LOG" || fail "hub.user: root did not start"
[ "$(awk '/^Uid:/ {print $3}' "/proc/$HUB_PID/status")" -eq 0 ] || fail "hub.user: root is not root"
grep -q "running as root (hub.user: root)" "$HUB_LOG" || fail "no warning for hub.user: root"
stop_hub
echo "privilege drop ok"
