#!/bin/bash
# tests/bench/run.sh BUILD_DIR — print cityhub's figures (make bench).
#   journal append + group commit vs fsync per reading (readings/s, CPU, fsyncs/s, bytes)
#   journal recovery of a full journal (BENCH_RECOVERY_MIB, 256): open, warm and
#   cold page cache; a full read with CRC checks
#   journal record -> line protocol -> gzip (readings/s, bytes per reading)
#   cityhub run with the demo config against the simulator and a real InfluxDB:
#   readings/s accepted, CPU per reading and peak RSS (VmHWM); journal bytes
#   written per reading against its line protocol.
#   cityhub run with 100 Modbus TCP devices x 20 holding registers at 1 Hz on
#   4 buses (4 simulators, profile load) into the real InfluxDB: readings/s and
#   fields/s accepted, CPU per 1,000 readings, peak RSS and where the RSS goes
#   (/proc/PID/smaps); and the peak RSS of `cityhub check` on that config.
#   backlog drain: BENCH_DRAIN_N readings built in the journal while the store
#   is down, then drained by cityhub into a fresh InfluxDB (points/s), against
#   one curl process posting the same points, in the same gzip batches, over
#   one keep-alive connection; ratio cityhub/curl (goal >= 0.8).
# BENCH_N (journal/encode readings), BENCH_RSS_SECONDS (each cityhub run, 20 s),
# BENCH_DRAIN_N (backlog drain readings, 1,000,000).
#   firmware images (tests/bench/firmware.sh): each board's stripped cityhub
#   (goal 500 KB), package size and installed size.
# BENCH_ONLY=drain runs the backlog drain section alone (to iterate on it),
# BENCH_ONLY=firmware the firmware images alone.
set -u
B=$(cd "${1:?usage: tests/bench/run.sh BUILD_DIR}" && pwd)
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top" || exit 2
N=${BENCH_N:-1500000}
SECS=${BENCH_RSS_SECONDS:-20}

ONLY=${BENCH_ONLY:-}
case "$ONLY" in
"" | drain | firmware) ;;
*) echo "BENCH_ONLY=$ONLY: the sections that run alone are drain and firmware" >&2; exit 2 ;;
esac

# ---- backlog drain into InfluxDB vs curl -----------------------------------------
# A backlog of BENCH_DRAIN_N readings (1,000,000) is built in the journal while
# the store is down, the way tests/integration/test_backlog_drain.sh builds
# it: MQTT input (format influx, QoS 1), messages of 1,000 lines
# "drain,s=s(i % 8) v=i" at S0 s + i ns, an output at a port where nothing
# listens. The hub is stopped; a fresh InfluxDB comes up on that port and the
# hub starts again with the same config (output defaults: batch_size 5000,
# max_batch_bytes 1MiB, gzip): the time from its start until the output's
# persisted cursor reaches the end of the backlog. The baseline: the same
# records, as `cityhub journal --dump` writes them (unsigned fields with i, as
# the hub writes them to InfluxDB 1.x), cut into the hub's batches (5000 lines,
# at most 1 MiB), each gzipped (level 6, zlib's default, as the hub), posted
# to a second fresh database of that InfluxDB by one curl process over one
# keep-alive connection, one request after the other (-K: one url and
# data-binary per transfer, --next between); only the curl run is timed.
# Before both, the same batches go, untimed, into a third database, so that
# neither timed run pays for a fresh influxd's first writes.
# CPU seconds of cityhub, curl and influxd during each are printed too.
bench_drain() {
    local n=${BENCH_DRAIN_N:-1000000} lines=1000 series=8 port s0 cfg jdir end c
    local t0 t1 t2 t3 hz hub1 ix0 ix1 ix2 ix3 hub_n curl_n nb nl tries conns hwm db
    hz=$(getconf CLK_TCK)
    ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
    start_mosquitto
    port=$("$FREEPORT")
    s0=$(($(date +%s) - 7200))
    mkdir -p "$T/drain-msg"
    awk -v s0="$s0" -v dir="$T/drain-msg" -v n="$n" -v lines="$lines" -v series="$series" 'BEGIN {
        for (i = 0; i < n; i++) {
            if (i % lines == 0) { if (f) close(f); f = sprintf("%s/%07d", dir, i / lines) }
            printf "drain,s=s%d v=%di %d%09d\n", i % series, i, s0, i > f
        } }'
    cfg=$T/drain.yaml jdir=$T/drain-journal
    cat >"$cfg" <<YAML
hub:
  name: gw-drain
  journal: {path: $jdir, max_size: 1GiB}
mqtt_inputs:
  - name: lp
    url: $MQTT_URL
    subscribe:
      - {topic: "drain/#", format: influx, qos: 1}
outputs:
  - {name: ioc, type: influxdb, url: "http://127.0.0.1:$port", database: drain_hub}
YAML
    start_hub "$cfg" "$T/drain.log"
    mosquitto_wait_subscribed gw-drain-lp 'drain/#' || { tail -20 "$HUB_LOG" >&2; fail "drain: no subscription"; }
    for f in "$T"/drain-msg/*; do
        mqtt_pub_file drain/bulk "$f" || fail "drain: publish $f"
    done
    rm -rf "$T/drain-msg"
    # QoS 1 and in order: once the journal holds the mark, it holds them all.
    mqtt_pub drain/mark "mark v=1i ${s0}999999999"
    marked() {
        local k
        k=$(journal_stat "$cfg" next_seq)
        "$CITYHUB" journal -c "$cfg" --dump --from $((k > 100 ? k - 100 : 0)) | grep -q ' mark,'
    }
    WAIT_TRIES=600 wait_for marked || fail "drain: the backlog did not reach the journal in 60 s"
    stop_hub
    end=$(journal_stat "$cfg" next_seq)
    c=$(journal_cursor "$cfg" ioc)
    [ "$c" = 0 ] || fail "drain: cursor at $c although the store was down"

    # The baseline's bodies: the same records, in the hub's batches.
    mkdir -p "$T/drain-batches"
    # (sed: unsigned fields as the hub writes them with uint_support false)
    "$CITYHUB" journal -c "$cfg" --dump | LC_ALL=C sed -E 's/=([0-9]+)u([, ])/=\1i\2/g' |
        LC_ALL=C awk -v hi="$end" -v bs=5000 -v max=1048576 -v dir="$T/drain-batches" '
        $1 !~ /^[0-9]+$/ || $1 >= hi { next }
        { sub(/^[0-9]+ /, "")
          l = length($0) + 1
          if (k == 0 || c == bs || b + l > max) { if (f) close(f); f = sprintf("%s/%06d", dir, k++); c = b = 0 }
          print > f; c++; b += l; all++ }
        END { print k, all > "/dev/stderr" }' 2>"$T/drain-batches.n"
    gzip -6 -n "$T"/drain-batches/*
    for f in "$T"/drain-batches/*.gz; do
        [ "$f" = "$T/drain-batches/000000.gz" ] || echo next
        printf 'url = "%s/write?db=drain_curl&precision=ns"\n' "http://127.0.0.1:$port"
        printf 'data-binary = "@%s"\n' "$f"
        printf 'header = "Content-Type: text/plain; charset=utf-8"\nheader = "Content-Encoding: gzip"\n'
        printf 'header = "Expect:"\nsilent\nshow-error\noutput = "/dev/null"\nwrite-out = "%%{http_code} %%{num_connects}\\n"\n'
    done >"$T/drain-curl.cfg"

    # A fresh InfluxDB on the output's port (the one of the sections above stopped).
    if [ -n "${INFLUX_PID:-}" ] && kill -0 "$INFLUX_PID" 2>/dev/null; then
        kill "$INFLUX_PID"
        wait "$INFLUX_PID" 2>/dev/null
        untrack_pid "$INFLUX_PID"
    fi
    rm -rf "$T/influxdb"
    INFLUX_PORT=$port start_influxdb drain_hub
    for db in drain_curl drain_warm; do
        curl -sf -XPOST "$INFLUX_URL/query" --data-urlencode "q=CREATE DATABASE \"$db\"" >/dev/null ||
            fail "drain: could not create database $db"
    done
    # Untimed: the same batches into a third database, so that neither timed
    # run pays for a fresh influxd's first writes (its heap, its first shard).
    sed 's/db=drain_curl/db=drain_warm/' "$T/drain-curl.cfg" >"$T/drain-warm.cfg"
    curl -K "$T/drain-warm.cfg" >/dev/null 2>&1 || fail "drain: the warm-up posts failed"
    sleep 1

    ix0=$(ticks "$INFLUX_PID")
    t0=$(date +%s%N)
    start_hub "$cfg" "$T/drain.log"
    # Every 20 ms, the cursor file's first line (its seq; hub/journal_cursor.c)
    # with bash's read: `cityhub journal` costs some 8 ms of CPU a call, which
    # polling would take from the hub and influxd on a small machine. The
    # fixture confirms at the end.
    tries=60000 # 20 min
    c=0
    while [ "$c" -lt "$end" ]; do
        tries=$((tries - 1))
        [ "$tries" -gt 0 ] || fail "drain: cursor at $c of $end after 20 min"
        sleep 0.02
        read -r c 2>/dev/null <"$jdir/cursors/ioc" || c=0
        case "$c" in '' | *[!0-9]*) c=0 ;; esac
    done
    t1=$(date +%s%N)
    hub1=$(ticks "$HUB_PID")
    hwm=$(awk '$1 == "VmHWM:" { print $2 }' "/proc/$HUB_PID/status")
    ix1=$(ticks "$INFLUX_PID")
    stop_hub
    c=$(journal_cursor "$cfg" ioc)
    [ "$c" -ge "$end" ] || fail "drain: cityhub journal shows the cursor at $c, not $end"
    sleep 1

    ix2=$(ticks "$INFLUX_PID")
    t2=$(date +%s%N)
    curl -K "$T/drain-curl.cfg" >"$T/drain-curl.codes" 2>"$T/drain-curl.err" ||
        { cat "$T/drain-curl.err" >&2; fail "drain: curl failed"; }
    t3=$(date +%s%N)
    ix3=$(ticks "$INFLUX_PID")
    [ "$(cut -d' ' -f1 "$T/drain-curl.codes" | sort -u)" = 204 ] ||
        fail "drain: curl got $(cut -d' ' -f1 "$T/drain-curl.codes" | sort | uniq -c | tr '\n' ' ')"
    conns=$(awk '{ s += $2 } END { print s }' "$T/drain-curl.codes")
    rm -rf "$T/drain-batches"

    hub_n=$(influx_count drain_hub "SELECT count(v) FROM drain")
    curl_n=$(influx_count drain_curl "SELECT count(v) FROM drain")
    read -r nb nl <"$T/drain-batches.n"
    awk -v n="$n" -v a=$((t1 - t0)) -v b=$((t3 - t2)) -v hn="$hub_n" -v cn="$curl_n" \
        -v nb="$nb" -v nl="$nl" -v hz="$hz" -v ht="$hub1" \
        -v ia=$((ix1 - ix0)) -v ib=$((ix3 - ix2)) -v cc="$conns" -v hwm="$hwm" 'BEGIN {
        s = a / 1e9; s2 = b / 1e9; x = nl / s; y = nl / s2
        printf "backlog drain into InfluxDB (%d readings): cityhub %.0f points/s (%.2f s), curl %.0f points/s (%.2f s), ratio X/Y = %.2f (goal >= 0.8)\n",
            n, x, s, y, s2, x / y
        printf "  %d points (%d readings, the mark and the status points) in %d gzip requests (curl: %d connection%s); CPU: cityhub %.2f s, influxd %.2f s while it drained; influxd %.2f s while curl posted\n",
            nl, n, nb, cc, cc == 1 ? "" : "s", ht / hz, ia / hz, ib / hz
        printf "  stored: %d of %d drain points from cityhub (database drain_hub), %d from curl (drain_curl); cityhub peak RSS %.1f MiB\n",
            hn, n, cn, hwm / 1024 }'
    [ "$hub_n" = "$n" ] && [ "$curl_n" = "$n" ] || echo "  WARNING: the store does not hold all $n readings"
    rm -rf "$jdir"
}

export CITYHUB="$B/cityhub" SIM="$B/cityhub-sim" FREEPORT="$B/tests/lib/freeport"
. tests/lib/fixtures.sh

if [ "$ONLY" = drain ]; then
    echo "== cityhub $(cat VERSION) benchmarks on $(nproc) cores, $(uname -m); BENCH_ONLY=drain"
    fixtures_init
    bench_drain
    exit
fi

if [ "$ONLY" = firmware ]; then
    echo "== cityhub $(cat VERSION) benchmarks on $(nproc) cores, $(uname -m); BENCH_ONLY=firmware"
    exec tests/bench/firmware.sh
fi

echo "== cityhub $(cat VERSION) benchmarks on $(nproc) cores, $(uname -m); N=$N"
tests/bench/firmware.sh || exit 1
work="$top/build/bench-tmp"
rm -rf "$work" && mkdir -p "$work"
"$B/tests/bench/bench_journal" "$work" "$N" || exit 1
rm -rf "$work"
mkdir -p "$work"
"$B/tests/bench/bench_recovery" "$work/recovery" "${BENCH_RECOVERY_MIB:-256}" || exit 1
rm -rf "$work"
"$B/tests/bench/bench_encode" "$N" || exit 1
"$B/tests/bench/bench_reading" $((N / 2)) || exit 1

fixtures_init
start_influxdb city
start_sim --profile demo
demo_config "$T/demo.yaml"
# The demo polls every 2-5 s; for a load figure poll the same devices every 10 ms.
sed -e 's/^    interval: [0-9]*s/    interval: 10ms/' "$T/demo.yaml" >"$T/load.yaml"
for cfg in demo load; do
    start_hub "$T/$cfg.yaml" "$T/$cfg.log"
    sleep "$SECS"
    ticks=$(awk '{ print $14 + $15 }' "/proc/$HUB_PID/stat")
    hwm=$(awk '/VmHWM/ { print $2 }' "/proc/$HUB_PID/status")
    stop_hub
    n=$(journal_stat "$T/$cfg.yaml" next_seq)
    # journal bytes per stored reading (segment files less their headers)
    # against the line protocol of the same readings (--dump: "SEQ LINE")
    jbytes=$(find "$T/journal" -name '*.seg' -printf '%s\n' | awk '{ b += $1 - 16 } END { print b + 0 }')
    lp=$("$CITYHUB" journal -c "$T/$cfg.yaml" --dump |
        LC_ALL=C awk '{ n++; b += length($0) - length($1) } END { print n + 0, b + 0 }')
    rm -rf "$T/journal"
    hz=$(getconf CLK_TCK)
    awk -v n="$n" -v s="$SECS" -v t="$ticks" -v hz="$hz" -v kb="$hwm" -v c="$cfg" -v jb="$jbytes" \
        -v lp="$lp" 'BEGIN {
        printf "cityhub run (%s config, %d s): %.0f readings/s accepted, %.1f us CPU/reading, peak RSS %.1f MiB\n",
            c, s, n / s, (n > 0 ? t / hz * 1e6 / n : 0), kb / 1024
        split(lp, a, " ")
        if (a[1] > 0 && a[2] > 0)
            printf "  journal bytes written per reading (frames included): %.1f | line protocol %.1f | ratio %.3f (%d readings stored)\n",
                jb / a[1], a[2] / a[1], jb / a[2], a[1] }'
done

# ---- 100 Modbus TCP devices x 20 holding registers at 1 Hz ------------------------
BUSES=4 PER_BUS=25 NREGS=20

# rss_breakdown PID: where the RSS goes, from /proc/PID/smaps, and the
# largest libraries. heap+anon = [heap] and
# anonymous mappings (malloc arenas included); stacks = [stack] and the
# anonymous rw mappings right above a guard page (---p, at most 64 KiB): the
# threads' stacks as glibc maps them; libraries = file mappings of *.so*;
# binary = file mappings of the executable; other = any other file and the
# kernel's [vdso]/[vvar]. Rss counts shared library pages in full.
rss_breakdown() {
    awk -v exe="$(readlink "/proc/$1/exe")" '
        /^[0-9a-f]+-[0-9a-f]+ / {
            n++; split($1, a, "-"); lo[n] = a[1]; hi[n] = a[2]; perm[n] = $2
            p = ""; for (i = 6; i <= NF; i++) p = p (i > 6 ? " " : "") $i
            path[n] = p; next
        }
        $1 == "Size:" { size[n] = $2 }
        $1 == "Rss:" { rss[n] = $2 }
        END {
            for (i = 1; i <= n; i++) {
                p = path[i]
                if (p == "[heap]") heap += rss[i]
                else if (p == "[stack]") stacks += rss[i]
                else if (p == "") {
                    if (perm[i] ~ /^rw/ && i > 1 && path[i - 1] == "" && perm[i - 1] == "---p" &&
                        size[i - 1] <= 64 && hi[i - 1] == lo[i]) stacks += rss[i]
                    else heap += rss[i]
                } else if (p == exe) bin += rss[i]
                else if (p ~ /\.so(\.|$)/) { libs += rss[i]; lib[p] += rss[i] }
                else other += rss[i]
                total += rss[i]
            }
            printf "RSS breakdown: heap+anon %d KiB, stacks %d KiB, libraries %d KiB, binary %d KiB, other %d KiB (total %d KiB)\n",
                heap, stacks, libs, bin, other, total
            for (p in lib) { k = p; sub(/.*\//, "", k); print lib[p], k > "/dev/stderr" }
        }' "/proc/$1/smaps" 2>"$T/libs.rss"
    sort -rn "$T/libs.rss" | head -6 |
        awk '{ s = s (NR > 1 ? ", " : "") $2 " " $1 } END { print "largest libraries (KiB): " s }'
}

{
    cat <<YAML
hub:
  name: gw-bench
  journal: {path: $T/journal}
buses:
YAML
    for b in $(seq "$BUSES"); do
        port=$("$FREEPORT")
        "$SIM" --listen "127.0.0.1:$port" --profile load --log "$T/sim-$b.log" >"$T/sim-$b.out" 2>&1 &
        track_pid "$!"
        wait_for grep -q "^listening on" "$T/sim-$b.out" || { cat "$T/sim-$b.out"; exit 1; }
        echo "  - {name: lan-$b, type: tcp, host: 127.0.0.1, port: $port, timeout: 1s}"
    done
    echo "devices:"
    for b in $(seq "$BUSES"); do
        for d in $(seq "$PER_BUS"); do
            u=$(((b - 1) * PER_BUS + d))
            cat <<YAML
  - name: dev-$u
    bus: lan-$b
    unit: $u
    interval: 1s
    measurement: bench
    registers:
YAML
            for r in $(seq 0 $((NREGS - 1))); do
                echo "      - {field: r$r, address: $r, type: uint16}"
            done
        done
    done
    cat <<YAML
outputs:
  - {name: ioc, type: influxdb, url: "$INFLUX_URL", database: city}
YAML
} >"$T/tcp100.yaml"
ndev=$((BUSES * PER_BUS))

if [ -x /usr/bin/time ]; then
    /usr/bin/time -v -o "$T/check.time" "$CITYHUB" check -c "$T/tcp100.yaml" >"$T/check.out" 2>&1 ||
        { cat "$T/check.out"; exit 1; }
    awk -v d="$ndev" -v r="$NREGS" '/Maximum resident set size/ {
        printf "cityhub check (%d devices x %d registers): peak RSS %.1f MiB\n", d, r, $NF / 1024 }' \
        "$T/check.time"
else
    echo "cityhub check peak RSS: skipped (no /usr/bin/time)"
fi

# Steady state: the figures count from WARM.5 s after the start (the config
# load, the connects and every device's first status point are behind) to
# SECS s later, from the journal's next_seq and /proc/PID/stat at both ends.
# All devices are polled in a burst of some 50 ms each second from the start:
# the half second puts both ends between two bursts.
WARM=${BENCH_WARM_SECONDS:-3}
start_hub "$T/tcp100.yaml" "$T/tcp100.log"
sleep "$WARM.5"
ns() { date +%s%N; }
t0=$(ns)
ticks0=$(awk '{ print $14 + $15 }' "/proc/$HUB_PID/stat")
n0=$(journal_stat "$T/tcp100.yaml" next_seq)
sleep "$SECS"
t1=$(ns)
ticks1=$(awk '{ print $14 + $15 }' "/proc/$HUB_PID/stat")
n1=$(journal_stat "$T/tcp100.yaml" next_seq)
hwm=$(awk '/VmHWM/ { print $2 }' "/proc/$HUB_PID/status")
vmrss=$(awk '/VmRSS/ { print $2 }' "/proc/$HUB_PID/status")
threads=$(awk '/^Threads/ { print $2 }' "/proc/$HUB_PID/status")
breakdown=$(rss_breakdown "$HUB_PID")
# RSS counts every shared library page in full; PSS shares them out and
# Private_Dirty is what this process alone costs the board.
own=$(awk '/^Pss:/ { p = $2 } /^Private_Dirty:/ { d = $2 } /^Shared_Clean:/ { c = $2 }
    END { printf "PSS %d KiB, private dirty %d KiB, shared clean (library text) %d KiB", p, d, c }' \
    "/proc/$HUB_PID/smaps_rollup")
stop_hub
total=$(journal_stat "$T/tcp100.yaml" next_seq)
# readings of the window that carry data (the others are status points)
data=$("$CITYHUB" journal -c "$T/tcp100.yaml" --dump --from "$n0" |
    awk -v hi="$n1" '$1 < hi && $2 ~ /^bench,/' | wc -l)
alldata=$("$CITYHUB" journal -c "$T/tcp100.yaml" --dump | grep -c ' bench,')
stored=$(influx_count city "SELECT count(r0) FROM bench")
fails=$(grep -c "poll failed" "$T/tcp100.log")
hz=$(getconf CLK_TCK)
awk -v n=$((n1 - n0)) -v dr="$data" -v ns=$((t1 - t0)) -v t=$((ticks1 - ticks0)) -v hz="$hz" \
    -v kb="$hwm" -v rss="$vmrss" -v d="$ndev" -v r="$NREGS" -v b="$BUSES" -v th="$threads" \
    -v st="$stored" -v all="$alldata" -v tot="$total" -v f="$fails" -v w="$WARM" 'BEGIN {
    s = ns / 1e9
    printf "cityhub run (%d Modbus TCP devices x %d holding registers at 1 Hz, %d buses, %.1f s after %d.5 s): %.1f readings/s accepted (%.1f with data, %.0f fields/s; the rest status points)\n",
        d, r, b, s, w, n / s, dr / s, dr * r / s
    printf "  %.1f ms CPU per 1,000 readings (%.2f s CPU in the window, %.2f%% of one core), peak RSS %.1f MiB (VmRSS %.1f MiB, %d threads); whole run: %d readings, store holds %d of %d data readings, %d failed polls\n",
        (n > 0 ? t / hz * 1e6 / n : 0), t / hz, t / hz / s * 100, kb / 1024, rss / 1024, th, tot, st, all, f }'
echo "$breakdown" | sed 's/^/  /'
echo "  $own"
[ -n "${KEEP_TMP:-}" ] || rm -rf "$T/journal"

# ---- 1,000 Modbus TCP endpoints x 20 holding registers at 1 Hz ---------------------
# Each endpoint its own host (127.0.0.1 ... 127.0.3.232, one cityhub-sim
# serving them all), one device each, into the real InfluxDB. The devices
# name a site profile of the 20 registers, as a city configures 1,000
# meters of one type. Figures over a window after warm-up, as above; poll
# skew from the timestamps the store holds: per device,
# |t[i+1] - t[i] - 1 s| over consecutive readings.
NEP=${BENCH_ENDPOINTS:-1000}
ulimit -n 8192 2>/dev/null || true
start_sim_endpoints "$NEP" --profile load --log /dev/null
mkdir -p "$T/profiles"
{
    printf 'name: bench-load\ndescription: 20 holding registers of the simulator'"'"'s load profile\n'
    printf 'measurement: bench1k\nregisters:\n'
    for r in $(seq 0 $((NREGS - 1))); do
        printf '  - {field: r%d, address: %d, type: uint16}\n' "$r" "$r"
    done
} >"$T/profiles/bench-load.yaml"
export CITYHUB_PROFILES="$T/profiles"
{
    printf 'hub:\n  name: gw-bench-1k\n  journal: {path: %s/journal}\nbuses:\n' "$T"
    for k in $(seq 0 $((NEP - 1))); do
        printf '  - {name: ep-%d, type: tcp, host: %s, port: %d, timeout: 1s}\n' "$k" \
            "$(sim_endpoint_addr "$k")" "$SIM_PORT"
    done
    printf 'devices:\n'
    for k in $(seq 0 $((NEP - 1))); do
        printf '  - {name: ep-%d, bus: ep-%d, unit: 1, interval: 1s, profile: bench-load}\n' "$k" "$k"
    done
    printf 'outputs:\n  - {name: ioc, type: influxdb, url: "%s", database: city}\n' "$INFLUX_URL"
} >"$T/tcp1k.yaml"
start_hub "$T/tcp1k.yaml" "$T/tcp1k.log"
sleep "$WARM.5"
t0=$(ns)
ticks0=$(awk '{ print $14 + $15 }' "/proc/$HUB_PID/stat")
n0=$(journal_stat "$T/tcp1k.yaml" next_seq)
sleep "$SECS"
t1=$(ns)
ticks1=$(awk '{ print $14 + $15 }' "/proc/$HUB_PID/stat")
n1=$(journal_stat "$T/tcp1k.yaml" next_seq)
hwm=$(awk '/VmHWM/ { print $2 }' "/proc/$HUB_PID/status")
threads=$(awk '/^Threads/ { print $2 }' "/proc/$HUB_PID/status")
stop_hub
data=$("$CITYHUB" journal -c "$T/tcp1k.yaml" --dump --from "$n0" |
    awk -v hi="$n1" '$1 < hi && $2 ~ /^bench1k,/' | wc -l)
alldata=$("$CITYHUB" journal -c "$T/tcp1k.yaml" --dump | grep -c ' bench1k,')
stored=$(influx_count city "SELECT count(r0) FROM bench1k")
fails=$(grep -c "poll failed" "$T/tcp1k.log")
skew=$(influx_csv city "SELECT r0 FROM bench1k GROUP BY device" |
    awk -F, '{ split($2, t, "="); d = t[2]; if (d in last) print (($3 - last[d]) - 1e9 < 0 ? 1e9 - ($3 - last[d]) : ($3 - last[d]) - 1e9) / 1e6; last[d] = $3 }' |
    sort -n | awk '{ v[NR] = $1 } END { if (NR) printf "p50 %.1f ms, p99 %.1f ms, max %.1f ms over %d intervals", v[int(NR * 0.5) + 1], v[int(NR * 0.99) + 1], v[NR], NR; else print "no data" }')
awk -v n=$((n1 - n0)) -v dr="$data" -v ns=$((t1 - t0)) -v t=$((ticks1 - ticks0)) -v hz="$hz" \
    -v kb="$hwm" -v d="$NEP" -v r="$NREGS" -v th="$threads" -v st="$stored" -v all="$alldata" \
    -v f="$fails" -v w="$WARM" 'BEGIN {
    s = ns / 1e9
    printf "cityhub run (%d Modbus TCP endpoints, one device x %d holding registers each at 1 Hz, %.1f s after %d.5 s): %.1f readings/s accepted (%.1f with data, %.0f fields/s)\n",
        d, r, s, w, n / s, dr / s, dr * r / s
    printf "  %.2f ms CPU per 1,000 field values (%.1f ms per 1,000 readings; %.2f%% of one core), peak RSS %.1f MiB, %d threads; store holds %d of %d data readings, %d failed polls\n",
        (dr > 0 ? t / hz * 1e6 / (dr * r) : 0), (n > 0 ? t / hz * 1e6 / n : 0), t / hz / s * 100, kb / 1024, th, st, all, f }'
echo "  poll skew (from stored timestamps): $skew"
[ -n "${KEEP_TMP:-}" ] || rm -rf "$T/journal"

# ---- MQTT ingest: a local publisher at QoS 0 and QoS 1 --------------------------
# mosquitto_pub -l sends one message per line (line protocol, explicit
# timestamps) as fast as the broker takes them; the hub's MQTT input appends
# each message's reading to the journal before the callback returns (and so
# before a QoS 1 message is acknowledged). Figures: messages/s from the first
# publish until the last message is in the journal, CPU of the hub per 1,000
# messages, and its peak RSS.
MQTT_N=${BENCH_MQTT_N:-100000}
# A broker of its own, without persistence: the tests' broker saves its
# database every second, which at this rate makes Mosquitto 2.0 drop the
# publisher ("out of memory") part way.
MQTT_PORT=$("$FREEPORT")
MQTT_URL="mqtt://127.0.0.1:$MQTT_PORT"
printf 'listener %s 127.0.0.1\nallow_anonymous true\nuser root\nlog_dest stderr\nmax_queued_messages 0\n' \
    "$MQTT_PORT" >"$T/bench-mosquitto.conf"
mosquitto -c "$T/bench-mosquitto.conf" 2>"$T/bench-mosquitto.log" &
track_pid $!
wait_for bash -c "echo >/dev/tcp/127.0.0.1/$MQTT_PORT"
awk -v n="$MQTT_N" 'BEGIN { for (i = 0; i < n; i++)
    printf "bench_mqtt,sensor=s%d v=%d.5,n=%di %d\n", i % 100, i, i, 1700000000000000000 + i * 1000 }' \
    >"$T/mqtt.lp"
for qos in ${BENCH_MQTT_QOS:-0 1}; do
    cat >"$T/mqtt$qos.yaml" <<YAML
hub:
  name: gw-bench
  journal: {path: $T/journal-mqtt$qos, sync_interval: 100ms}
mqtt_inputs:
  - name: bench
    url: $MQTT_URL
    client_id: gw-bench-q$qos
    subscribe:
      - {topic: bench/#, format: influx, qos: $qos}
YAML
    start_hub "$T/mqtt$qos.yaml" "$T/mqtt$qos.log"
    WAIT_TRIES=100 wait_for grep -q "connected to" "$T/mqtt$qos.log"
    sleep 0.5
    ticks0=$(awk '{ print $14 + $15 }' "/proc/$HUB_PID/stat")
    n0=$(journal_stat "$T/mqtt$qos.yaml" next_seq)
    t0=$(ns)
    # QoS 1 in runs of 2,000: Mosquitto 2.0 drops a QoS 1 publisher that
    # runs far ahead of a subscriber ("out of memory")
    split -l $((qos ? 2000 : MQTT_N)) "$T/mqtt.lp" "$T/mqtt.part."
    for part in "$T"/mqtt.part.*; do
        mosquitto_pub -h 127.0.0.1 -p "$MQTT_PORT" -t bench/lp -q "$qos" -l <"$part"
    done
    rm -f "$T"/mqtt.part.*
    # wait until the journal holds every message (QoS 0 may lose some in the
    # broker: stop when the count stops moving for 2 s)
    last=-1 still=0 n=0
    while :; do
        n=$(journal_stat "$T/mqtt$qos.yaml" next_seq)
        [ $((n - n0)) -ge "$MQTT_N" ] && break
        if [ "$n" = "$last" ]; then still=$((still + 1)); else still=0; fi
        [ "$still" -ge 20 ] && break
        last=$n
        sleep 0.1
    done
    t1=$(ns)
    ticks1=$(awk '{ print $14 + $15 }' "/proc/$HUB_PID/stat")
    hwm=$(awk '/VmHWM/ { print $2 }' "/proc/$HUB_PID/status")
    stop_hub
    got=$(grep -c '' <("$CITYHUB" journal -c "$T/mqtt$qos.yaml" --dump | grep ' bench_mqtt,'))
    awk -v q="$qos" -v n="$MQTT_N" -v got="$got" -v ns=$((t1 - t0)) -v t=$((ticks1 - ticks0)) \
        -v hz="$hz" -v kb="$hwm" 'BEGIN {
        s = ns / 1e9
        printf "cityhub run (MQTT input, QoS %d, %d line-protocol messages from mosquitto_pub -l): %.0f messages/s into the journal (%d of %d arrived), %.1f ms CPU per 1,000 messages, peak RSS %.1f MiB\n",
            q, n, got / s, got, n, (got > 0 ? t / hz * 1e6 / got : 0), kb / 1024 }'
    rm -rf "$T/journal-mqtt$qos"
done

# ---- the status server under load: 100 Modbus devices + 1,000 MQTT messages/s,
# /metrics and /health scraped every second -----------------------------------------
# The 100-device config above, its simulators and InfluxDB, plus an MQTT input
# on the bench broker fed 1,000 line-protocol messages/s (100 every 100 ms
# over one mosquitto_pub connection), and hub.status on a free port scraped
# every second. Figures over SECS s after WARM.5 s: CPU, peak and current
# RSS with the smaps breakdown, the value rings' memory, the slowest scrape.
SP=$("$FREEPORT")
sed -e "s|^  journal: {path: $T/journal}|  journal: {path: $T/journal-status}\n  status: {listen: \"127.0.0.1:$SP\"}|" \
    -e "s|^outputs:|mqtt_inputs:\n  - name: feed\n    url: $MQTT_URL\n    subscribe:\n      - {topic: feed/#, format: influx, qos: 0}\noutputs:|" \
    "$T/tcp100.yaml" >"$T/status100.yaml"
start_hub "$T/status100.yaml" "$T/status100.log"
WAIT_TRIES=100 wait_for curl -sf "http://127.0.0.1:$SP/health" || { tail "$T/status100.log"; exit 1; }
/usr/bin/python3 -u -c '
import sys, time
i, t = 0, time.time()
while True:
    for _ in range(100):
        sys.stdout.write("feed,sensor=s%d v=%d.5,n=%di\n" % (i % 50, i, i))
        i += 1
    sys.stdout.flush()
    t += 0.1
    time.sleep(max(0, t - time.time()))' 2>/dev/null |
    mosquitto_pub -h 127.0.0.1 -p "$MQTT_PORT" -t feed/lp -q 0 -l &
FEED_PID=$!
track_pid "$FEED_PID"
scrape() { # every second: /metrics and /health; the slowest of each, in ms
    while :; do
        curl -s -o /dev/null -w 'metrics %{time_total}\n' "http://127.0.0.1:$SP/metrics"
        curl -s -o /dev/null -w 'health %{time_total}\n' "http://127.0.0.1:$SP/health"
        sleep 1
    done >>"$T/scrapes.txt"
}
scrape &
SCRAPE_PID=$!
track_pid "$SCRAPE_PID"
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
proc_status() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }
sleep "$WARM.5"
read -r t0 ticks0 n0 <<<"$(ns) $(cpu_ticks "$HUB_PID") $(journal_stat "$T/status100.yaml" next_seq)"
sleep "$SECS"
read -r t1 ticks1 n1 <<<"$(ns) $(cpu_ticks "$HUB_PID") $(journal_stat "$T/status100.yaml" next_seq)"
read -r hwm vmrss threads <<<"$(proc_status "$HUB_PID" VmHWM) $(proc_status "$HUB_PID" VmRSS) $(proc_status "$HUB_PID" Threads)"
breakdown=$(rss_breakdown "$HUB_PID")
own=$(awk '/^Pss:/ { p = $2 } /^Private_Dirty:/ { d = $2 }
    END { printf "PSS %d KiB, private dirty %d KiB", p, d }' "/proc/$HUB_PID/smaps_rollup")
curl -s "http://127.0.0.1:$SP/metrics" >"$T/status100.metrics"
kill "$SCRAPE_PID" "$FEED_PID" 2>/dev/null
stop_hub
vbytes=$(awk '$1 == "cityhub_status_values_bytes" { print $2 }' "$T/status100.metrics")
msgs=$(awk '$1 ~ /^cityhub_mqtt_messages_total/ { s += $2 } END { print s + 0 }' "$T/status100.metrics")
nscr=$(grep -c '^metrics' "$T/scrapes.txt")
slow=$(awk '$1 == "metrics" && $2 > m { m = $2 } $1 == "health" && $2 > h { h = $2 }
    END { printf "slowest /metrics %.1f ms, /health %.1f ms", m * 1000, h * 1000 }' "$T/scrapes.txt")
msize=$(wc -c <"$T/status100.metrics")
awk -v n=$((n1 - n0)) -v ns=$((t1 - t0)) -v t=$((ticks1 - ticks0)) -v hz="$hz" -v kb="$hwm" \
    -v rss="$vmrss" -v th="$threads" -v vb="$vbytes" -v m="$msgs" -v sc="$nscr" -v sl="$slow" \
    -v ms="$msize" -v d="$ndev" 'BEGIN {
    s = ns / 1e9
    printf "cityhub run with the status server (%d Modbus devices at 1 Hz + MQTT 1,000 messages/s, /metrics and /health scraped every second, %.1f s): %.0f readings/s accepted, %.1f%% of one core, peak RSS %.1f MiB (VmRSS %.1f MiB, %d threads; goal 8 MiB)\n",
        d, s, n / s, t / hz / s * 100, kb / 1024, rss / 1024, th
    printf "  status server: value rings %.0f KiB, /metrics %.0f KiB, %d scrapes, %s; %d MQTT messages in all\n",
        vb / 1024, ms / 1024, sc, sl, m }'
echo "$breakdown" | sed 's/^/  /'
echo "  $own"
[ -n "${KEEP_TMP:-}" ] || rm -rf "$T/journal-status"

bench_drain
