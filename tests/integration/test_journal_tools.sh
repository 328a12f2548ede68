# cityhub journal stat / verify / dump: while the hub runs (read-only, beside
# a live daemon) and after; verify finds a flipped byte in a sealed segment
# of a copy of the journal (exit 1, naming the segment and the offset); dump
# writes line protocol that a real InfluxDB takes, one point per record.
set -eu
. tests/lib/fixtures.sh
fixtures_init
start_influxdb city
start_influxdb copy
# Two outputs: ioc delivers to InfluxDB; down's store is down (nothing
# listens there): segments stay, its cursor lags.
DOWN_URL="http://127.0.0.1:$("$FREEPORT")"
start_sim --profile test

cat >"$T/hub.yaml" <<YAML
hub:
  name: gw-tools
  journal: {path: $T/journal, sync_interval: 100ms, segment_size: 64KiB, max_size: 64MiB}
  status_interval: 1h
buses:
  - {name: lan, type: tcp, host: 127.0.0.1, port: $SIM_PORT, timeout: 500ms}
devices:
  - name: a
    bus: lan
    unit: 1
    interval: 10ms
    measurement: lab
    registers:
      - {field: counter, table: input, address: 0, type: uint16}
      - {field: f, address: 6, type: float32}
  - {name: b, bus: lan, unit: 2, interval: 10ms, measurement: lab,
     registers: [{field: counter, table: input, address: 0, type: uint16}]}
  - {name: c, bus: lan, unit: 3, interval: 10ms, measurement: lab,
     registers: [{field: counter, table: input, address: 0, type: uint16}]}
outputs:
  - {name: ioc, type: influxdb, url: "$INFLUX_URL", database: city, batch_size: 50, flush_interval: 100ms}
  - {name: down, type: influxdb, url: "$DOWN_URL", database: city}
YAML
J=$T/journal

start_hub "$T/hub.yaml"
WAIT_TRIES=300 wait_for bash -c "[ \$(ls '$J' | grep -c '\.seg$') -ge 3 ]" || fail "no 3 segments"

# While it runs: all three work and never fail.
for _ in 1 2 3; do
    "$CITYHUB" journal stat "$J" >"$T/stat.txt" || fail "stat failed on a live journal"
    "$CITYHUB" journal verify "$J" >"$T/verify.txt" 2>"$T/verify.err" ||
        { cat "$T/verify.txt"; fail "verify found damage in a live, healthy journal"; }
    "$CITYHUB" journal dump "$J" >"$T/live.lp" 2>/dev/null || fail "dump failed on a live journal"
    sleep 0.2
done
cat "$T/stat.txt"
grep -q "^segments [0-9]" "$T/stat.txt" || fail "stat: no segments line"
# An output without a cursor file is known from the config only.
"$CITYHUB" journal stat -c "$T/hub.yaml" | grep -q "^cursor down none" ||
    fail "stat -c: no line for cursor down"
grep -q "^cursor ioc [0-9]* lag [0-9]*" "$T/stat.txt" || fail "stat: no line for cursor ioc"
# Lagging: the age of its oldest unsent reading, from that record's timestamp.
awk '$1 == "cursor" && $2 == "ioc" && $5 > 0 {
        a = $7; sub("s$", "", a); if ($6 != "oldest_unsent_age" || a < 0 || a > 60) exit 1 }' \
    "$T/stat.txt" || fail "stat: no sane oldest_unsent_age for a lagging cursor"
"$CITYHUB" journal stat -c "$T/hub.yaml" | grep -q "^bytes [0-9]* of max_size 67108864" ||
    fail "stat -c: no max_size"
"$CITYHUB" journal stat --json "$J" | jq -e '.segments.count >= 3 and .next_seq > 0 and
    (.cursors | map(select(.name == "ioc" and .seq >= 0)) | length == 1)' >/dev/null || fail "stat --json"
[ -s "$T/live.lp" ] || fail "dump of the live journal printed nothing"

stop_hub
# A file that is no segment, reported as odd.
echo junk >"$J/notes.txt"
"$CITYHUB" journal stat "$J" | grep -q "^odd notes.txt" || fail "stat: odd file not reported"
rm "$J/notes.txt"

# After: verify clean, stat agrees with the old summary, dump counts.
"$CITYHUB" journal verify "$J" || fail "verify: damage in a cleanly stopped journal"
next=$("$CITYHUB" journal stat "$J" | awk '$1 == "next_seq" { print $2 }')
first=$("$CITYHUB" journal stat "$J" | awk '$1 == "first_seq" { print $2 }')
stored=$("$CITYHUB" journal stat "$J" | awk '$1 == "stored" { print $2 }')
[ "$next" = "$(journal_stat "$T/hub.yaml" next_seq)" ] || fail "stat next_seq differs"
[ "$stored" -eq $((next - first)) ] || fail "stored $stored != next $next - first $first"
"$CITYHUB" journal dump "$J" >"$T/all.lp"
lines=$(wc -l <"$T/all.lp")
[ "$lines" -eq "$stored" ] || fail "dump printed $lines lines for $stored records"
"$CITYHUB" journal dump "$J" --from $((first + 10)) --to $((first + 19)) >"$T/ten.lp"
[ "$(wc -l <"$T/ten.lp")" -eq 10 ] || fail "dump --from --to: not 10 lines"
"$CITYHUB" journal -c "$T/hub.yaml" --dump | head -1 | grep -q "^$first " ||
    fail "the old --dump form broke"

# The dump is line protocol: a real InfluxDB takes every line, one point each.
# (The dump writes unsigned fields as 123u; the InfluxDB 1.6 of the tests
# wants 123i, as the output with uint_support false writes them.)
sed -e 's/=\([0-9]*\)u\([, ]\)/=\1i\2/g' -e 's/=\([0-9]*\)u\([, ]\)/=\1i\2/g' "$T/all.lp" >"$T/all-i.lp"
curl -sf -XPOST "$INFLUX_URL/write?db=copy&precision=ns" --data-binary @"$T/all-i.lp" ||
    fail "InfluxDB refused the dump"
lab=$(influx_count copy "SELECT count(counter) FROM lab")
dev=$(influx_count copy "SELECT count(ok) FROM cityhub_device")
hub=$(influx_count copy "SELECT count(uptime_s) FROM cityhub")
out=$(influx_count copy "SELECT count(delivered) FROM cityhub_output")
pts=$((lab + dev + hub + out))
[ "$pts" -eq "$stored" ] || fail "InfluxDB holds $pts points of $stored dumped records"

# Damage: flip one byte inside a record of a sealed (not the last) segment of a copy.
cp -a "$J" "$T/broken"
seg=$(ls "$T/broken" | grep '\.seg$' | sed -n 2p)
off=200
b=$(od -An -tu1 -j$off -N1 "$T/broken/$seg" | tr -d ' ')
printf "$(printf '\\%03o' $(((b ^ 0x5a) & 255)))" |
    dd of="$T/broken/$seg" bs=1 seek=$off conv=notrunc 2>/dev/null
rc=0
"$CITYHUB" journal verify "$T/broken" >"$T/broken.txt" 2>/dev/null || rc=$?
cat "$T/broken.txt"
[ "$rc" -eq 1 ] || fail "verify exit $rc on a damaged journal (want 1)"
line=$(grep "^damaged $seg offset " "$T/broken.txt") || fail "verify did not name $seg"
doff=$(echo "$line" | awk '{ print $4 }')
dbytes=$(echo "$line" | awk '{ print $6 }')
[ "$doff" -le $off ] && [ $((doff + dbytes)) -gt $off ] ||
    fail "damaged range $doff+$dbytes does not hold byte $off"
echo "$line" | grep -q "records 1 " || fail "one record damaged, verify says: $line"
# The original is untouched by all of this.
"$CITYHUB" journal verify "$J" >/dev/null || fail "the original journal changed"
# A gap: a whole sealed segment removed.
rm "$T/broken/$seg"
rc=0
"$CITYHUB" journal verify "$T/broken" >"$T/gap.txt" 2>/dev/null || rc=$?
[ "$rc" -eq 1 ] && grep -q "^gap after " "$T/gap.txt" || { cat "$T/gap.txt"; fail "no gap reported"; }
echo "journal tools ok"
