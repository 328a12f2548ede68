# A small disk filled up (the fault suite): the journal on a 4 MiB tmpfs,
# readings from the Modbus simulator, InfluxDB down, then started. Two runs
# (make check: the second alone):
# max_size equal to the tmpfs (the disk and the journal fill together), and
# max_size far above it (a full disk is a full journal). In each:
#   - the journal never passes max_size (sampled all along), the daemon
#     keeps running and keeps accepting (drop_oldest);
#   - readings are dropped, and counted;
#   - once the store is up and the output has caught up, the hub is stopped
#     and the accounting is exact: every reading the hub generated was
#     delivered (counted in InfluxDB), is still buffered in the journal, or
#     was dropped (the output's count of readings dropped undelivered) or
#     refused (the hub's count), as the hub's shutdown log states them:
#         accepted + refused = delivered + buffered + dropped + refused.
# Needs root (mount); the tmpfs is unmounted at exit. FAULT_FILL_S: seconds
# the journal stays full with the store down (default 5; make fault: 30).
set -eu
. tests/lib/fixtures.sh
fixtures_init
small_disk 4m
FILL_S=${FAULT_FILL_S:-$([ -n "${FAULT_LONG:-}" ] && echo 30 || echo 5)}

start_sim --profile load
HTTP=$("$FREEPORT") # InfluxDB's port: nothing answers there until it is started
SP=$("$FREEPORT")

config() { # MAX_SIZE DB
    cat <<YAML
hub:
  name: gw-fill
  journal: {path: $MNT/journal, max_size: $1, segment_size: 64KiB, sync_interval: 100ms}
  status_interval: 1h
  status: {listen: "127.0.0.1:$SP"}
buses:
  - {name: lan1, type: tcp, host: 127.0.0.1, port: $SIM_PORT}
  - {name: lan2, type: tcp, host: 127.0.0.1, port: $SIM_PORT}
  - {name: lan3, type: tcp, host: 127.0.0.1, port: $SIM_PORT}
devices:
$(for d in $(seq 1 24); do
        printf '  - {name: m%s, bus: lan%s, unit: %s, interval: 10ms, measurement: lab,\n' \
            "$d" $((d % 3 + 1)) "$d"
        printf '     registers: ['
        printf '{field: counter, address: 0, type: uint16}'
        for r in $(seq 1 31); do
            printf ', {field: r%s, address: %s, type: uint16}' "$r" "$r"
        done
        printf ']}\n'
    done)
outputs:
  - {name: ioc, type: influxdb, url: "http://127.0.0.1:$HTTP", database: $2, batch_size: 1000,
     flush_interval: 100ms}
YAML
}

metric() { # NAME -> its value on /metrics (0 when absent)
    curl -sf "http://127.0.0.1:$SP/metrics" | awk -v n="$1" '$1 == n { v = $2 } END { print v + 0 }'
}
seg_bytes() { find "$MNT/journal" -name '*.seg' -printf '%s\n' 2>/dev/null | awk '{ s += $1 } END { print s + 0 }'; }
max_seen=0
sample() { # MAX_BYTES: the journal under max_size, the hub alive
    local b
    b=$(seg_bytes)
    [ "$b" -gt "$max_seen" ] && max_seen=$b
    [ "$b" -le "$1" ] || fail "journal at $b bytes, over max_size $1"
    kill -0 "$HUB_PID" 2>/dev/null || { tail -20 "$T/cityhub.log" >&2; fail "cityhub died"; }
}
bytes_of() { numfmt --from=iec-i "${1%B}"; }

run_case() { # NAME MAX_SIZE DB
    local name=$1 max=$2 db=$3 maxb t0 dropped lag n
    maxb=$(bytes_of "$max")
    max_seen=0
    rm -rf "$MNT/journal"
    config "$max" "$db" >"$T/$name.yaml"
    : >"$T/cityhub.log"
    start_hub "$T/$name.yaml"
    WAIT_TRIES=300 wait_for curl -sf "http://127.0.0.1:$SP/health" ||
        { tail -20 "$T/cityhub.log" >&2; fail "$name: the status endpoint did not answer"; }

    # 1. The store is down: the journal fills, then drops, and stays full.
    t0=$(date +%s)
    while :; do
        sample "$maxb"
        dropped=$(metric cityhub_journal_dropped_total)
        [ "$dropped" -gt 0 ] && break
        [ $(($(date +%s) - t0)) -lt 240 ] ||
            fail "$name: nothing dropped in 240 s (journal at $(seg_bytes) bytes)"
        sleep 0.2
    done
    echo "$name: journal full after $(($(date +%s) - t0)) s at $(seg_bytes) bytes, tmpfs:" \
        "$(df --output=used,avail -k "$MNT" | tail -1) KiB used/avail"
    t0=$(date +%s)
    n=$(metric cityhub_readings_accepted_total)
    while [ $(($(date +%s) - t0)) -lt "$FILL_S" ]; do
        sample "$maxb"
        sleep 0.2
    done
    [ "$(metric cityhub_readings_accepted_total)" -gt "$n" ] ||
        fail "$name: no reading accepted while the journal was full"
    echo "$name: full for $FILL_S s: $(metric cityhub_journal_dropped_total) dropped," \
        "$(metric cityhub_journal_disk_full_total) refused on a full disk"

    # 2. The store comes up: the output catches up with the readings.
    INFLUX_PORT=$HTTP start_influxdb "$db"
    t0=$(date +%s)
    while :; do
        sample "$maxb"
        lag=$(curl -sf "http://127.0.0.1:$SP/metrics" |
            awk '$1 ~ /^cityhub_output_lag/ { v = $2 } END { print v + 0 }')
        [ "$lag" -lt 2000 ] && break
        [ $(($(date +%s) - t0)) -lt 300 ] || fail "$name: output still $lag behind after 300 s"
        sleep 0.5
    done
    sleep 1
    stop_hub

    # 3. The accounting, from the hub's shutdown log and the store.
    local stopped out accepted refused next_seq jdropped delivered cursor odropped corrupt
    local rejected stored buffered first
    stopped=$(grep "\[cityhub\] stopped: " "$T/cityhub.log" | tail -1)
    out=$(grep "\[cityhub\] output ioc: " "$T/cityhub.log" | tail -1)
    [ -n "$stopped" ] && [ -n "$out" ] || fail "$name: no shutdown counts in the log"
    accepted=$(echo "$stopped" | sed -n 's/.* stopped: \([0-9]*\) readings accepted.*/\1/p')
    refused=$(echo "$stopped" | sed -n 's/.* accepted, \([0-9]*\) refused.*/\1/p')
    next_seq=$(echo "$stopped" | sed -n 's/.* next seq \([0-9]*\),.*/\1/p')
    jdropped=$(echo "$stopped" | sed -n 's/.*, \([0-9]*\) dropped undelivered.*/\1/p')
    delivered=$(echo "$out" | sed -n 's/.* ioc: \([0-9]*\) delivered.*/\1/p')
    cursor=$(echo "$out" | sed -n 's/.* cursor at \([0-9]*\);.*/\1/p')
    odropped=$(echo "$out" | sed -n 's/.*; \([0-9]*\) dropped undelivered.*/\1/p')
    corrupt=$(echo "$out" | sed -n 's/.* \([0-9]*\) corrupt.*/\1/p')
    rejected=$(echo "$out" | sed -n 's/.* \([0-9]*\) rejected.*/\1/p')
    store_points "$db"
    stored=$STORE_POINTS
    first=$(journal_stat "$T/$name.yaml" first_seq)
    [ "$first" -le "$cursor" ] || fail "$name: readings after the cursor $cursor deleted (first $first)"
    buffered=$((next_seq - cursor))
    echo "$name: generated $((accepted + refused)) (accepted $accepted, refused $refused);" \
        "delivered $stored in InfluxDB ($STORE_DETAIL; the output counted $delivered)," \
        "buffered $buffered," \
        "dropped $odropped (journal: $jdropped); largest journal $max_seen of $maxb bytes"
    [ "$accepted" -eq "$next_seq" ] || fail "$name: accepted $accepted but next seq $next_seq"
    [ "$odropped" -gt 0 ] || fail "$name: nothing was dropped: the journal never filled"
    [ "$corrupt" -eq 0 ] && [ "$rejected" -eq 0 ] ||
        fail "$name: $corrupt corrupt, $rejected rejected readings"
    [ $((accepted + refused)) -eq $((stored + buffered + odropped + refused)) ] ||
        fail "$name: generated $((accepted + refused)) != delivered $stored + buffered $buffered +" \
            "dropped $odropped + refused $refused"
    kill "$INFLUX_PID" # down again for the next run
    wait "$INFLUX_PID" 2>/dev/null || true
    untrack_pid "$INFLUX_PID"
}

# make check runs the full disk (max_size above it); make fault both
if [ -n "${FAULT_LONG:-}" ]; then
    run_case near 4MiB city_near
    grep -q "file system full" "$T/cityhub.log" && echo "near: the disk filled too" || true
fi
run_case above 64MiB city_above
grep -q "file system full" "$T/cityhub.log" ||
    fail "above: max_size above the disk, yet the disk never filled"
echo "tmpfs-full ok"
