# tests/lib/fixtures.sh — real servers for integration tests, sourced by each
# test. Everything runs on 127.0.0.1 in a temporary directory, on free ports,
# and is stopped by PID when the test exits (fixtures_cleanup, set as trap).
#
#   B=build/x86_64-asan   (set by tests/run.sh: CITYHUB, SIM, FREEPORT)
#   fixtures_init                 make $T (temp dir), set the exit trap
#   start_influxdb [db]           -> INFLUX_URL, INFLUX_PID (database created)
#   start_sim ARGS...             -> SIM_PORT, SIM_PID   (cityhub-sim on a free port)
#   start_pty_pair                -> PTY_A, PTY_B, PTY_PID (socat: two linked ptys in $T)
#   start_sim_rtu DEVICE ARGS...  -> SIM_PID   (cityhub-sim --rtu DEVICE)
#   influx_query DB "SELECT ..."  -> JSON on stdout
#   wait_for CMD... (10 s)        retry until CMD succeeds
#   start_mosquitto [--tls] [--password]  -> MQTT_PORT, MQTT_URL, MOSQ_PID, MOSQ_LOG
#                                 (Mosquitto; see its section below for the rest)

: "${CITYHUB:?set by tests/run.sh}"
FIXTURE_PIDS=""
FIXTURE_MOUNTS=""

fail() { echo "FAIL: $*" >&2; exit 1; }

fixtures_cleanup() {
    local rc=$?
    set +e
    for p in $FIXTURE_PIDS; do kill "$p" 2>/dev/null; done
    for p in $FIXTURE_PIDS; do
        for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$p" 2>/dev/null
    done
    for m in $FIXTURE_MOUNTS; do umount "$m" 2>/dev/null || umount -l "$m"; done
    if [ -n "${T:-}" ] && [ -z "${KEEP_TMP:-}" ]; then rm -rf "$T"; fi
    exit "$rc"
}

fixtures_init() {
    T=$(mktemp -d "${TMPDIR:-/tmp}/cityhub-test.XXXXXX")
    trap fixtures_cleanup EXIT
    trap 'exit 130' INT TERM
}

track_pid() { FIXTURE_PIDS="$FIXTURE_PIDS $1"; }
# track_mount DIR: unmounted at exit, after every tracked process is stopped.
track_mount() { FIXTURE_MOUNTS="$FIXTURE_MOUNTS $1"; }

wait_for() {
    local tries=${WAIT_TRIES:-100}
    while [ "$tries" -gt 0 ]; do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.1
        tries=$((tries - 1))
    done
    return 1
}

# start_influxdb [db]   (INFLUX_PORT=N to listen on a chosen HTTP port)
start_influxdb() {
    local db=${1:-city} ports http rpc
    ports=$("$FREEPORT" 2)
    http=${INFLUX_PORT:-$(echo "$ports" | sed -n 1p)}
    rpc=$(echo "$ports" | sed -n 2p)
    mkdir -p "$T/influxdb"
    cat >"$T/influxdb/influxdb.conf" <<CONF
reporting-enabled = false
bind-address = "127.0.0.1:$rpc"
[meta]
  dir = "$T/influxdb/meta"
[data]
  dir = "$T/influxdb/data"
  wal-dir = "$T/influxdb/wal"
  query-log-enabled = false
  trace-logging-enabled = false
[http]
  bind-address = "127.0.0.1:$http"
  log-enabled = false
[monitor]
  store-enabled = false
[continuous_queries]
  enabled = false
[subscriber]
  enabled = false
CONF
    influxd run -config "$T/influxdb/influxdb.conf" >"$T/influxdb/influxd.log" 2>&1 &
    INFLUX_PID=$!
    track_pid "$INFLUX_PID"
    INFLUX_URL="http://127.0.0.1:$http"
    WAIT_TRIES=300 wait_for curl -sf "$INFLUX_URL/ping" ||
        { tail -20 "$T/influxdb/influxd.log" >&2; fail "influxd did not answer /ping"; }
    curl -sf -XPOST "$INFLUX_URL/query" --data-urlencode "q=CREATE DATABASE \"$db\"" >/dev/null ||
        fail "could not create database $db"
}

influx_query() {
    curl -sf -G "$INFLUX_URL/query" --data-urlencode "db=$1" --data-urlencode "epoch=ns" \
        --data-urlencode "q=$2"
}

# influx_csv DB "SELECT ..." -> CSV rows "name,tags,time,..." without the header,
# times as exact integer ns (jq would round them through a double).
influx_csv() {
    curl -sf -G "$INFLUX_URL/query" -H 'Accept: application/csv' --data-urlencode "db=$1" \
        --data-urlencode "epoch=ns" --data-urlencode "q=$2" | sed '1d'
}

# ---- VictoriaMetrics: single node, a second kind of store ---------------------
#   start_victoriametrics    -> VM_PORT, VM_URL (http://127.0.0.1:PORT), VM_PID, VM_LOG
#        Data in $T/victoria-metrics/; logs only errors; no scraping of its own
#        or of others, no telemetry (the Debian build has none). It takes line
#        protocol at /write, /api/v2/write (v2: org, bucket, a token it does
#        not check) and /influx/... : measurement m with field f becomes the
#        metric m_f, tags become labels, times are kept to the millisecond.
#   vm_rows MATCH            -> every sample of the series MATCH selects (a
#        series selector, e.g. '{__name__=~"air_.*"}'), one line each, sorted:
#        "NAME{LABEL=VALUE,...} TIME_MS VALUE" (labels sorted; VALUE exact: an
#        integral value up to 2^53 as an integer, else Python's shortest repr)
#   vm_metric NAME           -> the sum of VictoriaMetrics' own counter NAME
#        over its labels (from /metrics), 0 when absent
start_victoriametrics() {
    VM_PORT=$("$FREEPORT")
    VM_URL="http://127.0.0.1:$VM_PORT"
    VM_LOG=$T/victoria-metrics/vm.log
    mkdir -p "$T/victoria-metrics"
    victoria-metrics -storageDataPath "$T/victoria-metrics/data" \
        -httpListenAddr "127.0.0.1:$VM_PORT" -loggerLevel ERROR -memory.allowedBytes 256MiB \
        -retentionPeriod 1y -search.disableCache >"$VM_LOG" 2>&1 &
    VM_PID=$!
    track_pid "$VM_PID"
    WAIT_TRIES=300 wait_for curl -sf "$VM_URL/health" ||
        { tail -20 "$VM_LOG" >&2; fail "victoria-metrics did not answer /health"; }
}

vm_rows() {
    # Rows just written become searchable after an in-memory flush.
    curl -sf "$VM_URL/internal/force_flush" >/dev/null || return 1
    curl -sf "$VM_URL/api/v1/export" --data-urlencode "match[]=$1" | /usr/bin/python3 -c '
import json, sys
rows = []
for line in sys.stdin:
    s = json.loads(line)
    m = dict(s["metric"])
    name = m.pop("__name__")
    labels = ",".join("%s=%s" % kv for kv in sorted(m.items()))
    for t, v in zip(s["timestamps"], s["values"]):
        v = float(v)
        rows.append((name, labels, t, str(int(v)) if v.is_integer() and abs(v) <= 2**53 else repr(v)))
for name, labels, t, v in sorted(rows):
    print("%s{%s} %d %s" % (name, labels, t, v))'
}

vm_metric() {
    curl -sf "$VM_URL/metrics" | awk -v n="$1" '$1 == n || index($1, n "{") == 1 { s += $NF }
        END { printf "%d\n", s }'
}

# start_sim ARGS...   (SIM_HOST=::1 for IPv6; default 127.0.0.1)
start_sim() {
    local host=${SIM_HOST:-127.0.0.1} listen
    SIM_PORT=$("$FREEPORT")
    case "$host" in *:*) listen="[$host]:$SIM_PORT" ;; *) listen="$host:$SIM_PORT" ;; esac
    "$SIM" --listen "$listen" "$@" >"$T/sim.log" 2>&1 &
    SIM_PID=$!
    track_pid "$SIM_PID"
    wait_for grep -q "^listening on" "$T/sim.log" ||
        { cat "$T/sim.log" >&2; fail "cityhub-sim did not listen on $SIM_PORT"; }
}

# start_silent_slave -> SILENT: a TCP port on 127.0.0.1 that accepts
# connections and never answers (a Modbus slave gone mute), until the test ends.
start_silent_slave() {
    SILENT=$("$FREEPORT")
    socat "TCP-LISTEN:$SILENT,bind=127.0.0.1,reuseaddr,fork" SYSTEM:'sleep 60' >/dev/null 2>&1 &
    track_pid $!
    wait_for bash -c "exec 3<>/dev/tcp/127.0.0.1/$SILENT" || fail "socat did not listen"
}

# start_pty_pair: a null-modem cable in software. socat joins two ptys,
# linked as $T/ttyA and $T/ttyB (PTY_A, PTY_B); what is written to one is read
# from the other. Ptys take any baud rate and parity and ignore them.
start_pty_pair() {
    PTY_A=$T/ttyA
    PTY_B=$T/ttyB
    socat -d -d "pty,raw,echo=0,link=$PTY_A" "pty,raw,echo=0,link=$PTY_B" >"$T/socat.log" 2>&1 &
    PTY_PID=$!
    track_pid "$PTY_PID"
    wait_for grep -q "starting data transfer loop" "$T/socat.log" ||
        { cat "$T/socat.log" >&2; fail "socat did not make the pty pair"; }
    [ -e "$PTY_A" ] && [ -e "$PTY_B" ] || { cat "$T/socat.log" >&2; fail "no $PTY_A / $PTY_B"; }
}

# start_sim_rtu DEVICE ARGS...: cityhub-sim serving Modbus RTU on DEVICE (e.g.
# $PTY_A), log in $T/sim.log.
start_sim_rtu() {
    local dev=$1
    shift
    "$SIM" --rtu "$dev" "$@" >"$T/sim.log" 2>&1 &
    SIM_PID=$!
    track_pid "$SIM_PID"
    wait_for grep -q "^listening on" "$T/sim.log" ||
        { cat "$T/sim.log" >&2; fail "cityhub-sim did not open $dev"; }
}

# demo_config OUT: the demo gateway's config (firmware/demo/cityhub-demo.yaml.in)
# for the running simulator and InfluxDB, with its journal in $T/journal.
demo_config() {
    local top
    top=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
    sed -e "s|@SIM_PORT@|$SIM_PORT|" -e "s|@INFLUX_URL@|$INFLUX_URL|" -e "s|@JOURNAL@|$T/journal|" \
        "$top/firmware/demo/cityhub-demo.yaml.in" >"$1"
}

# start_hub CONFIG [LOG]  -> HUB_PID (cityhub run in the background).
# Tests run as root where no user "cityhub" exists: the hub is started with
# --user root (HUB_USER=NAME for another user, HUB_USER= for hub.user).
start_hub() {
    local log=${2:-$T/cityhub.log} user=${HUB_USER-root}
    HUB_LOG=$log
    HUB_RUNNING_BEFORE=$(grep -c "\[cityhub\] running:" "$log" 2>/dev/null || true)
    "$CITYHUB" run -c "$1" ${user:+--user "$user"} >>"$log" 2>&1 &
    HUB_PID=$!
    track_pid "$HUB_PID"
}

# stop_hub: SIGTERM, then require exit status 0 within 5 s.
stop_hub() {
    local t0 rc=0
    # A SIGTERM before the signal mask is set (process start-up, slow under
    # ASan on a busy machine) would kill rather than stop: wait until running.
    WAIT_TRIES=100 wait_for bash -c \
        "[ \$(grep -c '\[cityhub\] running:' '$HUB_LOG') -gt ${HUB_RUNNING_BEFORE:-0} ]" ||
        echo "stop_hub: cityhub did not report running within 10 s" >&2
    t0=$(date +%s%N)
    kill -TERM "$HUB_PID" || fail "cityhub (pid $HUB_PID) was not running"
    for _ in $(seq 60); do kill -0 "$HUB_PID" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$HUB_PID" 2>/dev/null && fail "cityhub did not exit within 6 s of SIGTERM"
    wait "$HUB_PID" || rc=$?
    HUB_STOP_MS=$((($(date +%s%N) - t0) / 1000000))
    [ "$rc" -eq 0 ] || { tail -30 "$T/cityhub.log" >&2; fail "cityhub exited $rc after SIGTERM"; }
    [ "$HUB_STOP_MS" -le 5000 ] || fail "cityhub took ${HUB_STOP_MS} ms to stop (limit 5000)"
}

# journal_stat CONFIG KEY -> value printed by `cityhub journal` (next_seq, stored, ...)
journal_stat() {
    "$CITYHUB" journal -c "$1" | awk -v k="$2" '$1 == k { print $2 }'
}

# journal_cursor CONFIG OUTPUT -> that output's persisted cursor (0 when it never committed)
journal_cursor() {
    "$CITYHUB" journal -c "$1" | awk -v o="$2" '$1 == "cursor" && $2 == o { print ($3 == "none" ? 0 : $3) }'
}

# influx_count DB "SELECT count(x) FROM m" -> the number (0 when no rows)
influx_count() {
    influx_query "$1" "$2" | sed -n 's/.*"values":\[\[[0-9]*,\([0-9]*\)\]\].*/\1/p' | head -1 |
        grep . || echo 0
}

# ---- exactly once: the journal against the store --------------------------------
#   drain_config CONFIG OUT    CONFIG without its inputs (status points hourly): a
#                              hub that only delivers what the journal holds
#   drain_output CONFIG OUTPUT when OUTPUT's cursor is behind, run the drain config
#                              until it caught up (30 s at most)
#   store_points DB            -> STORE_POINTS: points in DB of measurements lab
#                              (field counter), level (field value, MQTT) and of
#                              the hub's status points (cityhub_mqtt too)
#                              (cityhub_device, cityhub, cityhub_output);
#                              STORE_DETAIL: how many of each
#   unique_times DB DEVICE...  fail when a device of lab repeats a timestamp
drain_config() {
    sed -e '/^buses:/,/^outputs:/{/^outputs:/!d}' -e 's/status_interval: 1s/status_interval: 1h/' \
        "$1" >"$2"
}

output_lag() {
    "$CITYHUB" journal -c "$1" | awk -v o="$2" '$1 == "cursor" && $2 == o { print $5 }'
}

drain_output() {
    [ "$(output_lag "$1" "$2")" = 0 ] && return 0
    echo "$2 $(output_lag "$1" "$2") behind: draining"
    drain_config "$1" "$T/drain.yaml"
    start_hub "$T/drain.yaml"
    for _ in $(seq 150); do
        [ "$(output_lag "$1" "$2")" = 0 ] && break
        sleep 0.2
    done
    stop_hub
}

store_points() {
    local lab level mq dev hub out
    lab=$(influx_count "$1" "SELECT count(counter) FROM lab")
    level=$(influx_count "$1" "SELECT count(value) FROM level")
    mq=$(influx_count "$1" "SELECT count(messages) FROM cityhub_mqtt")
    dev=$(influx_count "$1" "SELECT count(ok) FROM cityhub_device")
    hub=$(influx_count "$1" "SELECT count(uptime_s) FROM cityhub")
    out=$(influx_count "$1" "SELECT count(delivered) FROM cityhub_output")
    STORE_DETAIL="lab $lab, level $level, cityhub_mqtt $mq, cityhub_device $dev, cityhub $hub, cityhub_output $out"
    STORE_POINTS=$((lab + level + mq + dev + hub + out))
}

unique_times() {
    local db=$1 d total uniq
    shift
    for d in "$@"; do
        influx_csv "$db" "SELECT counter FROM lab WHERE device='$d'" | cut -d, -f3 >"$T/ts-$d"
        total=$(wc -l <"$T/ts-$d")
        uniq=$(sort -u "$T/ts-$d" | wc -l)
        [ "$total" -eq "$uniq" ] || fail "device $d: $total points but $uniq distinct timestamps"
    done
}

# ---- cityhub-sim: several simulators, many endpoints ---------------------------
#   start_sim_named NAME ARGS...   -> SIM_PORT, SIM_PID, SIM_LOG ($T/sim-NAME.log)
#   start_sim_endpoints N ARGS...  -> start_sim --endpoints N ARGS... (127.0.0.1 up)
#   sim_endpoint_addr K            -> the address of endpoint K (0-based): 127.0.0.1 + K

# start_sim_named NAME ARGS...: like start_sim, with its output and log in
# $T/sim-NAME.log, so that several simulators can run in one test.
start_sim_named() {
    local name=$1 host=${SIM_HOST:-127.0.0.1} listen
    shift
    SIM_PORT=$("$FREEPORT")
    SIM_LOG=$T/sim-$name.log
    case "$host" in *:*) listen="[$host]:$SIM_PORT" ;; *) listen="$host:$SIM_PORT" ;; esac
    "$SIM" --listen "$listen" "$@" >"$SIM_LOG" 2>&1 &
    SIM_PID=$!
    track_pid "$SIM_PID"
    wait_for grep -q "^listening on" "$SIM_LOG" ||
        { cat "$SIM_LOG" >&2; fail "cityhub-sim $name did not listen on $SIM_PORT"; }
}

# start_sim_endpoints N ARGS...: cityhub-sim on N loopback addresses 127.0.0.1,
# 127.0.0.2, ... (sim_endpoint_addr), all on SIM_PORT, log in $T/sim.log.
start_sim_endpoints() {
    local n=$1
    shift
    SIM_HOST=127.0.0.1 start_sim --endpoints "$n" "$@"
}

# sim_endpoint_addr K: 127.0.0.1 + K as a dotted quad (K = 299 -> 127.0.1.44).
sim_endpoint_addr() {
    local v=$((0x7f000001 + $1))
    echo "$(((v >> 24) & 255)).$(((v >> 16) & 255)).$(((v >> 8) & 255)).$((v & 255))"
}

# ---- Mosquitto: a real MQTT broker ---------------------------------------------
#   start_mosquitto [--tls] [--password]
#        -> MQTT_PORT, MQTT_URL (mqtt://127.0.0.1:PORT), MOSQ_PID, MOSQ_LOG ($T/mosquitto.log)
#        --tls: a second listener with TLS -> MQTT_TLS_PORT, MQTT_TLS_URL
#               (mqtts://127.0.0.1:PORT), MQTT_CA (PEM of the CA that signed the
#               broker's certificate: SAN IP:127.0.0.1, IP:::1, DNS:localhost)
#        --password: every listener wants a user -> MQTT_USER (cityhub),
#               MQTT_PASSWORD, MQTT_PASSFILE (the password, mode 0600: a hub's
#               password_file)
#        Persistence on ($T/mosquitto/, saved every second and on SIGTERM): a
#        restart keeps persistent sessions and their queued QoS 1 messages
#        (up to 100,000 per client). The log ($MOSQ_LOG, log_type all) is
#        appended across restarts.
#   restart_mosquitto             SIGTERM, wait for exit, start again: same ports,
#                                 same files -> new MOSQ_PID
#   stop_mosquitto                SIGTERM, wait for exit
#   mqtt_pub TOPIC PAYLOAD [ARGS...]   mosquitto_pub -q 1 to the plain listener, as
#                                 MQTT_USER when --password; ARGS override (-q 0, -r ...)
#   mqtts_pub TOPIC PAYLOAD [ARGS...]  the same through the TLS listener
#   mqtt_pub_file TOPIC FILE      the file as one message (QoS 1)
#   mqtt_pub_lines TOPIC [ARGS...]     one message per line of stdin (mosquitto_pub -l -q 1)
#   mqtt_sub ARGS...              mosquitto_sub on the plain listener (as MQTT_USER)
#   mosquitto_wait_subscribed CLIENT_ID FILTER [N]   until the broker logged the
#                                 client's subscription to FILTER N times (15 s)
#   mosquitto_connects CLIENT_ID  -> how many times the client connected (broker log)
#   mosquitto_wait_connects CLIENT_ID N   until it has connected N times (15 s)
#   untrack_pid PID               forget a tracked process the test stopped itself

# untrack_pid PID: forget a tracked process that has already been stopped.
untrack_pid() {
    local p keep=""
    for p in $FIXTURE_PIDS; do [ "$p" = "$1" ] || keep="$keep $p"; done
    FIXTURE_PIDS=$keep
}

# mosquitto_certs DIR: a CA and a server certificate it signs (EC P-256):
# DIR/ca.pem, DIR/server.pem, DIR/server.key (see tls_ca, tls_cert below).
mosquitto_certs() {
    tls_ca "$1" ca "cityhub test CA"
    tls_cert "$1" server ca serverAuth localhost "IP:127.0.0.1, IP:::1, DNS:localhost"
}

start_mosquitto() {
    local tls=0 password=0 a ports
    for a in "$@"; do
        case "$a" in
        --tls) tls=1 ;;
        --password) password=1 ;;
        *) fail "start_mosquitto: unknown option $a" ;;
        esac
    done
    ports=$("$FREEPORT" 2)
    MQTT_PORT=$(echo "$ports" | sed -n 1p)
    MQTT_URL="mqtt://127.0.0.1:$MQTT_PORT"
    MOSQ_LOG=$T/mosquitto.log
    MOSQ_CONF=$T/mosquitto.conf
    mkdir -p "$T/mosquitto"
    cat >"$MOSQ_CONF" <<CONF
user root
log_dest stderr
log_type all
persistence true
persistence_location $T/mosquitto/
autosave_interval 1
max_queued_messages 100000
set_tcp_nodelay true
per_listener_settings false
listener $MQTT_PORT 127.0.0.1
CONF
    if [ "$tls" -eq 1 ]; then
        MQTT_TLS_PORT=$(echo "$ports" | sed -n 2p)
        MQTT_TLS_URL="mqtts://127.0.0.1:$MQTT_TLS_PORT"
        mosquitto_certs "$T/tls"
        MQTT_CA=$T/tls/ca.pem
        cat >>"$MOSQ_CONF" <<CONF
listener $MQTT_TLS_PORT 127.0.0.1
cafile $MQTT_CA
certfile $T/tls/server.pem
keyfile $T/tls/server.key
CONF
    fi
    MQTT_USER=""
    MQTT_PASSWORD=""
    MQTT_PASSFILE=""
    if [ "$password" -eq 1 ]; then
        MQTT_USER=cityhub
        MQTT_PASSWORD="pw-$RANDOM-$RANDOM"
        MQTT_PASSFILE=$T/mqtt-password
        (umask 077 && printf '%s\n' "$MQTT_PASSWORD" >"$MQTT_PASSFILE")
        chmod 600 "$MQTT_PASSFILE"
        mosquitto_passwd -b -c "$T/mosquitto.passwd" "$MQTT_USER" "$MQTT_PASSWORD" ||
            fail "mosquitto_passwd failed"
        printf 'allow_anonymous false\npassword_file %s\n' "$T/mosquitto.passwd" >>"$MOSQ_CONF"
    else
        echo "allow_anonymous true" >>"$MOSQ_CONF"
    fi
    mosquitto_run
}

# mosquitto_run: start the broker on $MOSQ_CONF and wait until it listens.
mosquitto_run() {
    local before port
    before=$(grep -c "mosquitto version .* running" "$MOSQ_LOG" 2>/dev/null || true)
    mosquitto -c "$MOSQ_CONF" >>"$MOSQ_LOG" 2>&1 &
    MOSQ_PID=$!
    track_pid "$MOSQ_PID"
    WAIT_TRIES=100 wait_for bash -c \
        "[ \$(grep -c 'mosquitto version .* running' '$MOSQ_LOG') -gt ${before:-0} ]" ||
        { tail -20 "$MOSQ_LOG" >&2; fail "mosquitto did not start"; }
    for port in $MQTT_PORT ${MQTT_TLS_PORT:-}; do
        wait_for bash -c "exec 3<>/dev/tcp/127.0.0.1/$port" ||
            { tail -20 "$MOSQ_LOG" >&2; fail "mosquitto does not accept on port $port"; }
    done
}

stop_mosquitto() {
    kill -TERM "$MOSQ_PID" 2>/dev/null || fail "mosquitto (pid $MOSQ_PID) was not running"
    for _ in $(seq 100); do kill -0 "$MOSQ_PID" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$MOSQ_PID" 2>/dev/null && fail "mosquitto did not exit within 10 s of SIGTERM"
    wait "$MOSQ_PID" 2>/dev/null || true
    untrack_pid "$MOSQ_PID"
}

restart_mosquitto() {
    stop_mosquitto
    mosquitto_run
}

# The user's options for mosquitto_pub/sub (none without --password).
mqtt_auth_args() {
    [ -z "${MQTT_USER:-}" ] || printf '%s\n' -u "$MQTT_USER" -P "$MQTT_PASSWORD"
}

mqtt_pub() {
    local topic=$1 payload=$2
    shift 2
    # shellcheck disable=SC2046
    mosquitto_pub -h 127.0.0.1 -p "$MQTT_PORT" $(mqtt_auth_args) -q 1 -t "$topic" -m "$payload" "$@"
}

mqtts_pub() {
    local topic=$1 payload=$2
    shift 2
    # shellcheck disable=SC2046
    mosquitto_pub -h 127.0.0.1 -p "$MQTT_TLS_PORT" --cafile "$MQTT_CA" $(mqtt_auth_args) -q 1 \
        -t "$topic" -m "$payload" "$@"
}

# mqtt_pub_file TOPIC FILE: the whole file as one QoS 1 message
mqtt_pub_file() {
    # shellcheck disable=SC2046
    mosquitto_pub -h 127.0.0.1 -p "$MQTT_PORT" $(mqtt_auth_args) -q 1 -t "$1" -f "$2"
}

mqtt_pub_lines() {
    local topic=$1
    shift
    # shellcheck disable=SC2046
    mosquitto_pub -h 127.0.0.1 -p "$MQTT_PORT" $(mqtt_auth_args) -q 1 -t "$topic" -l "$@"
}

mqtt_sub() {
    # shellcheck disable=SC2046
    mosquitto_sub -h 127.0.0.1 -p "$MQTT_PORT" $(mqtt_auth_args) "$@"
}

# mosquitto_wait_subscribed CLIENT_ID FILTER [N]: the broker logs "CLIENT QOS
# FILTER" for every subscription it grants.
mosquitto_wait_subscribed() {
    local n=${3:-1}
    WAIT_TRIES=150 wait_for bash -c "[ \$(awk -v c='$1' -v f='$2' '\$2 == c && \$4 == f' \
        '$MOSQ_LOG' | wc -l) -ge $n ]"
}

# start_lp_hub NAME OUTPUT...: $T/hub.yaml for a hub NAME (journal in
# $T/state/journal) whose one input, lp, reads line protocol from MQTT topics
# lp/# on $MQTT_URL, with one output per OUTPUT (a YAML flow mapping, e.g.
# "{name: ioc, type: influxdb, ...}"); start it and wait until it subscribed.
start_lp_hub() {
    local name=$1 o
    shift
    {
        printf 'hub:\n  name: %s\n  journal: {path: %s/state/journal}\n' "$name" "$T"
        printf 'mqtt_inputs:\n  - name: lp\n    url: %s\n' "$MQTT_URL"
        printf '    subscribe:\n      - {topic: "lp/#", format: influx, qos: 1}\noutputs:\n'
        for o in "$@"; do printf '  - %s\n' "$o"; done
    } >"$T/hub.yaml"
    mkdir -p "$T/state"
    start_hub "$T/hub.yaml"
    mosquitto_wait_subscribed "$name-lp" 'lp/#' || fail "the hub never subscribed"
}

mosquitto_connects() {
    grep -c "New client connected from .* as $1 (" "$MOSQ_LOG" || true
}

mosquitto_wait_connects() {
    WAIT_TRIES=150 wait_for bash -c \
        "[ \$(grep -c 'New client connected from .* as $1 (' '$MOSQ_LOG') -ge $2 ]"
}

# ---- test certificates (openssl, EC P-256, valid 2 days) ----------------------
#   tls_ca DIR NAME CN                 -> DIR/NAME.pem, DIR/NAME.key (a CA)
#   tls_cert DIR NAME CA USE CN [SAN]  -> DIR/NAME.pem, DIR/NAME.key signed by
#                                         DIR/CA.pem; USE serverAuth or clientAuth
# Keys are left mode 0644 (servers in tests may run as another user).

tls_ca() {
    local d=$1 name=$2
    mkdir -p "$d"
    openssl ecparam -name prime256v1 -genkey -noout -out "$d/$name.key" 2>/dev/null
    openssl req -x509 -new -key "$d/$name.key" -sha256 -days 2 -subj "/CN=$3" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -out "$d/$name.pem" 2>/dev/null || fail "openssl: could not make the test CA $name"
    chmod 644 "$d/$name.key"
}

tls_cert() {
    local d=$1 name=$2 ca=$3 use=$4 cn=$5 san=${6:-}
    openssl ecparam -name prime256v1 -genkey -noout -out "$d/$name.key" 2>/dev/null
    openssl req -new -key "$d/$name.key" -subj "/CN=$cn" -out "$d/$name.csr" 2>/dev/null
    {
        echo "basicConstraints = CA:FALSE"
        echo "keyUsage = critical, digitalSignature"
        echo "extendedKeyUsage = $use"
        [ -z "$san" ] || echo "subjectAltName = $san"
    } >"$d/$name.ext"
    openssl x509 -req -in "$d/$name.csr" -CA "$d/$ca.pem" -CAkey "$d/$ca.key" -CAcreateserial \
        -days 2 -sha256 -extfile "$d/$name.ext" -out "$d/$name.pem" 2>/dev/null ||
        fail "openssl: could not sign the certificate $name"
    chmod 644 "$d/$name.key"
}

# ---- http_responder.py: a scriptable InfluxDB stand-in ------------------------
# (tests/lib/http_responder.py: its header documents the rules, /_stats, the log)
#   http_certs                -> HTTP_CA, HTTP_OTHER_CA, HTTP_CLIENT_CERT, HTTP_CLIENT_KEY
#                                (made once per test in $T/http-tls: a CA, a server
#                                certificate for DNS:localhost + IP:127.0.0.1, a client
#                                certificate (CN cityhub-client) signed by the CA, and a
#                                second, unrelated CA for wrong-CA tests)
#   start_http_responder [--tls] [ARGS...]
#                             -> HTTP_PORT, HTTP_URL (http://127.0.0.1:PORT, or with --tls
#                                https://localhost:PORT), HTTP_PID, HTTP_LOG, HTTP_STORE
#                                (files in $T/http-N/, N = 1, 2, ... per start); ARGS go
#                                to the responder (--token T, --basic U:P, --rules F,
#                                --client-ca "$HTTP_CA" after http_certs, ...)
#   stop_http_responder       SIGTERM the last one started, wait for its exit
#   http_rules JSON           replace its rules (POST /_rules); fails on a bad list
#   http_stats                its /_stats JSON on stdout

http_certs() {
    local d=$T/http-tls
    HTTP_CA=$d/ca.pem
    HTTP_OTHER_CA=$d/other-ca.pem
    HTTP_CLIENT_CERT=$d/client.pem
    HTTP_CLIENT_KEY=$d/client.key
    [ -s "$HTTP_CLIENT_KEY" ] && return 0
    tls_ca "$d" ca "cityhub test CA"
    tls_cert "$d" server ca serverAuth localhost "DNS:localhost, IP:127.0.0.1"
    tls_cert "$d" client ca clientAuth cityhub-client
    tls_ca "$d" other-ca "another test CA"
}

start_http_responder() {
    local tls=0 top dir
    if [ "${1:-}" = --tls ]; then
        tls=1
        shift
    fi
    top=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
    HTTP_N=$((${HTTP_N:-0} + 1))
    dir=$T/http-$HTTP_N
    mkdir -p "$dir"
    HTTP_LOG=$dir/requests.log
    HTTP_STORE=$dir/store.lp
    : >"$HTTP_LOG"
    : >"$HTTP_STORE"
    set -- --port 0 --log "$HTTP_LOG" --store "$HTTP_STORE" "$@"
    if [ "$tls" -eq 1 ]; then
        http_certs
        set -- "$@" --tls-cert "$T/http-tls/server.pem" --tls-key "$T/http-tls/server.key"
    fi
    HTTP_TLS=$tls
    /usr/bin/python3 "$top/tests/lib/http_responder.py" "$@" >"$dir/stdout" 2>"$dir/stderr" &
    HTTP_PID=$!
    track_pid "$HTTP_PID"
    wait_for grep -q '^PORT [0-9]' "$dir/stdout" ||
        { cat "$dir/stderr" >&2; fail "http_responder.py did not listen"; }
    HTTP_PORT=$(sed -n 's/^PORT \([0-9]*\)$/\1/p' "$dir/stdout")
    if [ "$tls" -eq 1 ]; then
        HTTP_URL="https://localhost:$HTTP_PORT"
    else
        HTTP_URL="http://127.0.0.1:$HTTP_PORT"
    fi
}

stop_http_responder() {
    kill -TERM "$HTTP_PID" 2>/dev/null || fail "http_responder (pid $HTTP_PID) was not running"
    for _ in $(seq 50); do kill -0 "$HTTP_PID" 2>/dev/null || break; sleep 0.1; done
    wait "$HTTP_PID" 2>/dev/null || true
    untrack_pid "$HTTP_PID"
}

# http_curl ARGS...: curl to the last responder, trusting its CA (and showing
# the client certificate, should it ask for one) when it serves TLS.
http_curl() {
    if [ "${HTTP_TLS:-0}" -eq 1 ]; then
        curl -sS --cacert "$HTTP_CA" --cert "$HTTP_CLIENT_CERT" --key "$HTTP_CLIENT_KEY" "$@"
    else
        curl -sS "$@"
    fi
}

http_rules() {
    http_curl -f -XPOST "$HTTP_URL/_rules" -H 'Content-Type: application/json' \
        --data-binary "$1" >/dev/null || fail "http_rules: the responder refused $1"
}

http_stats() {
    http_curl -f "$HTTP_URL/_stats"
}
