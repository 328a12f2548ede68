# Commissioning commands against the simulator: `cityhub scan` finds exactly
# the units that answer (over TCP, where the simulator answers exception 11
# for an absent unit as a gateway does, and over RTU on a pty pair, for each
# serial setting asked), with their device identification; `cityhub read`
# prints raw registers and every byte order of the `types` profile's fixed
# values; `cityhub poll --once` prints a configured device's fields with
# units; misuse exits 2 with a message.
set -eu
. tests/lib/fixtures.sh
fixtures_init

expect_rc() { # rc command... : run, require exit status rc, output in $T/out, $T/err
    local want=$1 rc=0
    shift
    "$@" >"$T/out" 2>"$T/err" || rc=$?
    if [ "$rc" -ne "$want" ]; then
        cat "$T/out" "$T/err" >&2
        fail "exit $rc (want $want): $*"
    fi
}
has() { grep -qE -- "$1" "$T/out" || { cat "$T/out" >&2; fail "stdout lacks /$1/"; }; }
err_has() { grep -qE -- "$1" "$T/err" || { cat "$T/err" >&2; fail "stderr lacks /$1/"; }; }

# ---- help and misuse ---------------------------------------------------------
for c in scan read poll; do
    expect_rc 0 "$CITYHUB" "$c" --help
    has "^usage: cityhub $c"
done
"$CITYHUB" --help | grep -q "^  scan " || fail "cityhub --help does not list scan"
expect_rc 2 "$CITYHUB" scan
err_has "--rtu DEVICE or --tcp"
expect_rc 2 "$CITYHUB" scan --tcp 127.0.0.1 --baud 9600
err_has "--baud is for a serial line"
expect_rc 2 "$CITYHUB" scan --rtu /dev/null --units 0-5
err_has "broadcast"
expect_rc 2 "$CITYHUB" scan --rtu /dev/null --units 1-300
err_has "unit ids are"
expect_rc 2 "$CITYHUB" scan --rtu /dev/null --baud 9600,12345
err_has "bad --baud"
expect_rc 2 "$CITYHUB" scan --tcp 127.0.0.1 --timeout 10x
err_has "bad --timeout"
expect_rc 2 "$CITYHUB" scan --tcp 127.0.0.1 --frobnicate
err_has "unknown option --frobnicate"
expect_rc 2 "$CITYHUB" read --tcp 127.0.0.1 --table holding --address 0 --count 1
err_has "--unit N is required"
expect_rc 2 "$CITYHUB" read --tcp 127.0.0.1 --unit 1 --table holding --address 0 --count 126
err_has "at most 125 registers"
expect_rc 2 "$CITYHUB" read --tcp 127.0.0.1 --unit 1 --table holdings --address 0 --count 1
err_has "bad --table"
expect_rc 2 "$CITYHUB" read --rtu /dev/null --unit 1 --baud 9600,19200 --table holding --address 0 --count 1
err_has "one rate"
expect_rc 2 "$CITYHUB" poll -c /nonexistent.yaml --device x
err_has "--once is required.*daemon"

# ---- scan over TCP -----------------------------------------------------------
# Profile test: units 1-8. Unit 2 dead (silent), 3 without identification,
# 4 answers every request with exception 2: found all the same.
start_sim_named test --profile test --dead-unit 2 --no-ident-unit 3 --exception-unit 4:2
TEST_PORT=$SIM_PORT
t0=$(date +%s%N)
expect_rc 0 "$CITYHUB" scan --tcp "127.0.0.1:$TEST_PORT"
echo "tcp scan: $((($(date +%s%N) - t0) / 1000000)) ms"
cat "$T/out"
err_has "1 setting x 248 units \(0-247\), timeout 200ms: at most 49.6s"
has "^found 7 units: 1,3-8$"
[ "$(grep -c '^unit ' "$T/out")" -eq 7 ] || fail "scan --tcp: not exactly 7 unit lines"
for u in 1 5 6 7 8; do
    grep -A1 "^unit $u: answers (holding 0 = 0x1234 = 4660)$" "$T/out" |
        grep -q '^  identification: vendor "cityhub-sim", product "test", revision "1.0"$' ||
        fail "unit $u: answer or identification"
done
grep -A1 "^unit 3: answers" "$T/out" | grep -q "^  identification: not supported$" ||
    fail "unit 3: identification should be 'not supported'"
has "^unit 4: answers with exception 2 \(illegal data address\)"
has "^note: 240 unit ids got exception 10/11 from the gateway"
# nothing there: exit 1
expect_rc 1 "$CITYHUB" scan --tcp "127.0.0.1:$TEST_PORT" --units 20-30
has "^found no unit"

# ---- scan over RTU, a pty pair -------------------------------------------------
start_pty_pair
start_sim_rtu "$PTY_A" --profile test --dead-unit 2 --no-ident-unit 3
expect_rc 0 "$CITYHUB" scan --rtu "$PTY_B" --baud 9600,19200 --units 1-5 --timeout 100ms
cat "$T/out"
err_has "2 settings x 5 units \(1-5\), timeout 100ms"
has "^9600 8N1: 4 units: 1,3-5$"
has "^19200 8N1: 4 units: 1,3-5$"
has "^found 4 units: 1,3-5 \(at 2 of 2 settings\)$"
for set in "9600 8N1" "19200 8N1"; do
    for u in 1 3 4 5; do
        has "^unit $u at $set: answers \(holding 0 = 0x1234 = 4660\)$"
    done
    grep -A1 "^unit 1 at $set:" "$T/out" | grep -q 'vendor "cityhub-sim", product "test"' ||
        fail "unit 1 at $set: identification"
    grep -A1 "^unit 3 at $set:" "$T/out" | grep -q "identification: not supported" ||
        fail "unit 3 at $set: identification not supported"
done
[ "$(grep -c '^unit ' "$T/out")" -eq 8 ] || fail "scan --rtu: not exactly 8 unit lines"
has "^note: units answered at more than one setting"
expect_rc 1 "$CITYHUB" read --rtu "$PTY_B" --unit 2 --table holding --address 0 --count 1 --timeout 100ms
err_has "unit 2 on rtu .*: holding register 0: timeout"
expect_rc 0 "$CITYHUB" read --rtu "$PTY_B" --parity N --unit 1 --table holding --address 8 --count 2
awk '$1 == "float32" { print $3 }' "$T/out" | grep -qx 3.1415927 ||
    { cat "$T/out" >&2; fail "rtu read: float32 CDAB at 8 should be 3.1415927"; }

# ---- read: the types profile's fixed values ------------------------------------
start_sim_named types --profile types
TYPES_PORT=$SIM_PORT
rd() { expect_rc 0 "$CITYHUB" read --tcp "127.0.0.1:$TYPES_PORT" --unit 1 "$@"; }
# value_at ADDR ROW COLUMN: the value in the window table at A = ADDR, row
# (hex, uint32, int32, float32, uint64, int64, float64), order column (ABCD
# CDAB BADC DCBA).
value_at() {
    awk -v a="$1" -v row="$2" -v col="$3" '
        $1 == "A" { for (i = 3; i <= NF; i++) c[$i] = i - 1 }
        $2 == "hex" { cur = $1; $0 = substr($0, index($0, "hex")) }
        $1 == row && cur == a { print $(c[col]); exit }' "$T/out"
}
check() { # addr row col want
    local got
    got=$(value_at "$1" "$2" "$3")
    [ "$got" = "$4" ] || { cat "$T/out" >&2; fail "read: $2 $3 at $1 is '$got', want $4"; }
}

rd --table holding --address 100 --count 4
has "^ +100  0xCFC7     53191  -12345$"
has "^ +102  0xC7CF     51151  -14385$"
rd --table holding --address 200 --count 18
check 200 int32 ABCD -123456789
check 202 int32 CDAB -123456789
check 204 int32 BADC -123456789
check 206 int32 DCBA -123456789
check 210 uint32 ABCD 3000000000
check 212 uint32 CDAB 3000000000
check 214 uint32 BADC 3000000000
check 216 uint32 DCBA 3000000000
check 200 hex ABCD 0xF8A432EB
rd --table input --address 220 --count 8
check 220 float32 ABCD 228.94186
check 222 float32 CDAB 228.94186
check 224 float32 BADC 228.94186
check 226 float32 DCBA 228.94186
rd --table holding --address 300 --count 56
check 300 int64 ABCD -1234567890123456789
check 304 int64 CDAB -1234567890123456789
check 308 int64 BADC -1234567890123456789
check 312 int64 DCBA -1234567890123456789
check 320 uint64 ABCD 12345678901234567890
check 324 uint64 CDAB 12345678901234567890
check 328 uint64 BADC 12345678901234567890
check 332 uint64 DCBA 12345678901234567890
check 340 float64 ABCD 3.141592653589793
check 344 float64 CDAB 3.141592653589793
check 348 float64 BADC 3.141592653589793
check 352 float64 DCBA 3.141592653589793
rd --table holding --address 514 --count 14
check 514 float32 ABCD -1.5
check 516 float64 ABCD -0.1
check 520 float32 ABCD nan
check 522 float32 ABCD inf
rd --table holding --address 400 --count 8
has '^  high byte first \(ABCD, CDAB\): "CITYHUB-SIM-0001"$'
rd --table holding --address 416 --count 8
has '^  low byte first \(BADC, DCBA\):  "CITYHUB-SIM-0001"$'
rd --table coil --address 0 --count 16
bits=$(awk '$1 ~ /^[0-9]+$/ && NF == 2 { printf "%s", $2 }' "$T/out")
[ "$bits" = 1010010111000011 ] || fail "coils 0-15 read $bits, want bits of 0xC3A5"
rd --table discrete --address 0 --count 16
bits=$(awk '$1 ~ /^[0-9]+$/ && NF == 2 { printf "%s", $2 }' "$T/out")
[ "$bits" = 0011110001011010 ] || fail "discrete 0-15 read $bits, want bits of 0x5A3C"
# errors: exit 1, clearly
expect_rc 1 "$CITYHUB" read --tcp "127.0.0.1:$TYPES_PORT" --unit 1 --table holding --address 998 --count 4
err_has "holding registers 998-1001: exception 2 \(illegal data address\)"
expect_rc 1 "$CITYHUB" read --tcp "127.0.0.1:$TYPES_PORT" --unit 9 --table input --address 0 --count 1
err_has "exception 11 \(gateway target failed to respond\)"

# ---- poll --once -------------------------------------------------------------------
cat >"$T/hub.yaml" <<YAML
hub:
  name: gw-commission
  journal: {path: $T/journal}
buses:
  - {name: lan, type: tcp, host: 127.0.0.1, port: $TYPES_PORT, timeout: 500ms}
  - {name: rs485-1, type: rtu, device: $PTY_B, baud: 9600, parity: N, timeout: 200ms}
devices:
  - name: meter-1
    bus: lan
    unit: 1
    registers:
      - {field: voltage, address: 222, type: float32, order: CDAB, unit: V}
      - {field: count, table: input, address: 110, type: uint16}
      - {field: offset, address: 100, type: int16, unit: mV}
  - name: absent
    bus: lan
    unit: 9
    registers:
      - {field: x, address: 0}
  - name: aq-1
    bus: rs485-1
    unit: 1
    registers:
      - {field: temperature, address: 20, type: uint16, scale: 0.1, unit: degC}
outputs:
  - {name: ioc, type: influxdb, url: "http://127.0.0.1:1", database: city}
YAML
expect_rc 0 "$CITYHUB" check -c "$T/hub.yaml"
expect_rc 0 "$CITYHUB" poll -c "$T/hub.yaml" --device meter-1 --once
cat "$T/out"
[ "$(cat "$T/out")" = "voltage = 228.94186 V
count = 54321
offset = -12345 mV" ] || fail "poll meter-1 printed the wrong fields"
expect_rc 0 "$CITYHUB" poll -c "$T/hub.yaml" --device aq-1 --once
has "^temperature = 23.5 degC$"
expect_rc 1 "$CITYHUB" poll -c "$T/hub.yaml" --device absent --once
err_has "device absent .*exception 11"
expect_rc 2 "$CITYHUB" poll -c "$T/hub.yaml" --device nope --once
err_has "no device \"nope\" \(devices: meter-1, absent, aq-1\)"
printf 'buses: [{name: x, type: tcp}]\n' >"$T/bad.yaml"
expect_rc 2 "$CITYHUB" poll -c "$T/bad.yaml" --device x --once

# The serial line stayed clean: no frame the simulator could not take.
if grep -q "bad CRC ignored\|stray byte" "$T/sim.log"; then
    grep "bad CRC ignored\|stray byte" "$T/sim.log" | head -5 >&2
    fail "the rtu simulator saw broken frames"
fi
echo "commissioning ok"
