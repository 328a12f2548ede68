# The journal on a full file system (a 4 MiB tmpfs, far below max_size):
# a full disk is a full journal. With the store down, drop_oldest keeps
# accepting new readings by dropping the oldest segments; once the store is
# back the recent readings arrive and the journal goes on accepting; the
# ENOSPC is logged a bounded number of times, not once per reading; and a
# restart on a disk filled to the last byte works (here with drop_newest:
# delivered segments make the room). Needs root (mount).
set -eu
. tests/lib/fixtures.sh
fixtures_init
small_disk 4m

start_sim --profile test
HTTP=$("$FREEPORT")
# 3.5 MiB taken by something else: the journal has 512 KiB, and fills it in
# seconds.
dd if=/dev/zero of="$MNT/filler" bs=1M count=3 status=none
dd if=/dev/zero of="$MNT/filler" bs=512K count=1 seek=6 status=none

config() { # on_full
    cat <<YAML
hub:
  name: gw-enospc
  journal: {path: $MNT/journal, max_size: 64MiB, segment_size: 64KiB, on_full: $1}
  status_interval: 1h
buses:
  - {name: lan, type: tcp, host: 127.0.0.1, port: $SIM_PORT}
devices:
$(for d in a b c d e f g h; do
        printf '  - {name: %s, bus: lan, unit: 1, interval: 10ms, measurement: lab,\n' "$d"
        printf '     tags: {padding: %s},\n' "$(printf 'x%.0s' $(seq 60))"
        printf '     registers: [{field: counter, table: input, address: 0, type: uint16},\n'
        printf '                 {field: f, address: 6, type: float32}]}\n'
    done)
outputs:
  - {name: ioc, type: influxdb, url: "http://127.0.0.1:$HTTP", database: city, batch_size: 500,
     flush_interval: 100ms}
YAML
}
config drop_oldest >"$T/hub.yaml"
stat_of() { journal_stat "$T/hub.yaml" "$1"; }
now_ns() { date +%s%N; }
enospc_lines() { grep -c "No space left on device" "$T/cityhub.log" || true; }

# 1. The store is down; the disk fills; new readings are still accepted.
start_hub "$T/hub.yaml"
disk_full() { [ "$(df --output=avail -k "$MNT" | tail -1)" -lt 64 ]; }
WAIT_TRIES=600 wait_for disk_full ||
    { tail -20 "$T/cityhub.log" >&2; fail "the disk did not fill within 60 s"; }
sleep 1
df -k "$MNT" | tail -1
n1=$(stat_of next_seq)
f1=$(stat_of first_seq)
sleep 3
n2=$(stat_of next_seq)
f2=$(stat_of first_seq)
echo "disk full, store down: next_seq $n1 -> $n2, first_seq $f1 -> $f2 in 3 s"
[ "$n2" -gt $((n1 + 100)) ] ||
    fail "readings not accepted on a full disk (next_seq $n1 -> $n2; $(enospc_lines) ENOSPC log lines)"
[ "$f2" -gt "$f1" ] || fail "the oldest segments were not dropped (first_seq $f1 -> $f2)"

# 2. The store comes back: recent readings arrive, and accepting goes on.
t_up=$(now_ns)
INFLUX_PORT=$HTTP start_influxdb city
for _ in $(seq 150); do
    [ "$(influx_count city "SELECT count(counter) FROM lab WHERE time > $t_up")" -gt 100 ] && break
    sleep 0.2
done
recent=$(influx_count city "SELECT count(counter) FROM lab WHERE time > $t_up")
[ "$recent" -gt 100 ] || fail "only $recent readings taken after the store came back arrived"
n3=$(stat_of next_seq)
sleep 3
n4=$(stat_of next_seq)
lag=$("$CITYHUB" journal -c "$T/hub.yaml" | awk '$1 == "cursor" { print $5 }')
echo "store back: $recent recent readings stored; next_seq $n3 -> $n4 in 3 s; lag $lag"
[ "$n4" -gt $((n3 + 100)) ] || fail "readings not accepted after the store came back ($n3 -> $n4)"
stop_hub
l1=$(enospc_lines)
echo "ENOSPC log lines in run 1: $l1"
[ "$l1" -le 10 ] || fail "ENOSPC logged $l1 times (bounded: once a minute per kind)"

# 3. A restart on a disk full to the last byte, with drop_newest.
dd if=/dev/zero of="$MNT/filler2" bs=64K status=none 2>/dev/null || true
dd if=/dev/zero of="$MNT/filler3" bs=1 status=none 2>/dev/null || true
df -k "$MNT" | tail -1
config drop_newest >"$T/hub.yaml"
n5=$(stat_of next_seq)
t_restart=$(now_ns)
start_hub "$T/hub.yaml"
WAIT_TRIES=100 wait_for grep -q "\[cityhub\] running:" "$T/cityhub.log" ||
    { tail -20 "$T/cityhub.log" >&2; fail "cityhub did not start on a full disk"; }
# Far more than the few bytes left: the space of delivered segments is used
# again and again.
for _ in $(seq 150); do
    [ "$(stat_of next_seq)" -gt $((n5 + 3000)) ] && break
    sleep 0.2
done
n6=$(stat_of next_seq)
[ "$n6" -gt $((n5 + 3000)) ] || {
    tail -20 "$T/cityhub.log" >&2
    fail "restart on a full disk: next_seq $n5 -> $n6 in 30 s ($(enospc_lines) ENOSPC log lines)"
}
for _ in $(seq 100); do
    [ "$(influx_count city "SELECT count(counter) FROM lab WHERE time > $t_restart")" -gt 100 ] &&
        break
    sleep 0.2
done
after=$(influx_count city "SELECT count(counter) FROM lab WHERE time > $t_restart")
stop_hub
l2=$(enospc_lines)
echo "restart on a full disk: next_seq $n5 -> $n6, $after readings since the restart stored;" \
    "ENOSPC log lines in all: $l2"
[ "$after" -gt 100 ] || fail "only $after readings taken after the restart arrived"
[ "$l2" -le 20 ] || fail "ENOSPC logged $l2 times"
echo "journal-enospc ok"
