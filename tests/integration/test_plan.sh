#!/bin/bash
# cityhub plan: each device's read requests from the config alone (no bus is
# touched), checked line for line: fields merged within max_gap and
# max_registers, overlapping fields in one request, tables apart (holding,
# input, coil, discrete), the line time of a serial bus from its settings,
# a profile's map planned as the poller will; --device; misuse exits 2.
set -u
. "$(dirname "$0")/../lib/fixtures.sh"
fixtures_init
export CITYHUB_PROFILES="$T/no-site-profiles" # the built-in profiles only
cat >"$T/hub.yaml" <<YAML
hub:
  name: gw-plan
  journal: {path: $T/journal}
buses:
  - {name: line, type: rtu, device: /dev/null-line, baud: 19200, parity: E}
  - {name: lan, type: tcp, host: 10.0.0.5}
devices:
  - name: meter
    bus: line
    unit: 3
    max_gap: 2
    registers:
      - {field: a, address: 0}
      - {field: b, address: 1, type: uint32}
      - {field: c, address: 5}
      - {field: d, address: 9, type: float32}
      - {field: total, address: 30, type: uint64}
      - {field: total_low, address: 32, type: uint32}
      - {field: alarm, address: 33, type: bool, bit: 3}
      - {field: on, table: coil, address: 7, type: bool}
      - {field: door, table: discrete, address: 0, type: bool}
      - {field: serial, table: input, address: 100, type: string, length: 8}
  - name: small
    bus: lan
    unit: 4
    max_registers: 2
    registers:
      - {field: x, address: 0}
      - {field: y, address: 1}
      - {field: z, address: 2}
  - {name: sdm, bus: line, unit: 5, profile: eastron-sdm630}
YAML

"$CITYHUB" plan -c "$T/hub.yaml" --device meter >"$T/out" 2>"$T/err" || { cat "$T/err"; fail "plan --device meter"; }
# a, b, c: 0..5, reading through 3-4 (max_gap 2); d after a gap of 3; total,
# total_low and alarm share registers 30..33. At 19200 8E1 (11-bit
# characters, 3.5 of them before each reply) with the default 5 ms pause.
cat >"$T/want" <<'OUT'
device meter: unit 3 on bus line (rtu /dev/null-line 19200 8E1); max_gap 2, max_registers 125
  holding  fc 3  address     0  count    6  a, b, c
  holding  fc 3  address     9  count    2  d
  holding  fc 3  address    30  count    4  total, total_low, alarm
  input    fc 4  address   100  count    8  serial
  coil     fc 1  address     7  count    1  on
  discrete fc 2  address     0  count    1  door
  6 requests per poll for 10 fields (one request per field: 10)
  one poll keeps the line busy 110.8 ms (one request per field: 169.7 ms)
OUT
diff -u "$T/want" "$T/out" || fail "plan --device meter (diff above: - wanted, + printed)"

"$CITYHUB" plan -c "$T/hub.yaml" >"$T/out" 2>"$T/err" || { cat "$T/err"; fail "plan"; }
cat "$T/out"
# every device, in file order; the tcp bus has no line time
sed -n '/^device small/,/^device sdm/p' "$T/out" | sed '$d' >"$T/small"
cat >"$T/want" <<'OUT'
device small: unit 4 on bus lan (tcp 10.0.0.5:502); max_gap 0, max_registers 2
  holding  fc 3  address     0  count    2  x, y
  holding  fc 3  address     2  count    1  z
  2 requests per poll for 3 fields (one request per field: 3)
OUT
diff -u "$T/want" "$T/small" || fail "plan: device small"
[ "$(grep '^device' "$T/out" | cut -d: -f1)" = "device meter
device small
device sdm" ] || fail "plan: not every device, in file order"
# the profile's 41 fields in 3 requests of at most 80 registers
grep -q '^device sdm: unit 5 on bus line (rtu /dev/null-line 19200 8E1), profile eastron-sdm630; max_gap 80, max_registers 80$' "$T/out" ||
    fail "plan: device sdm header"
grep -q '^  3 requests per poll for 41 fields (one request per field: 41)$' "$T/out" || fail "plan: sdm630 requests"
awk '/^device sdm/ { on = 1 } on && /^  input/ { n++; if ($7 > 80) bad = 1 } END { exit !(n == 3 && !bad) }' "$T/out" ||
    fail "plan: sdm630 requests over 80 registers"
[ "$(tail -1 "$T/out")" = "total: 11 requests per poll for 3 devices and 54 fields (one request per field: 54)" ] ||
    fail "plan: total line"

# usage
"$CITYHUB" plan --help >"$T/out" || fail "plan --help"
grep -q '^usage: cityhub plan -c FILE \[--device NAME\]$' "$T/out" || fail "plan --help: usage line"
"$CITYHUB" --help | grep -q '^  plan ' || fail "cityhub --help does not list plan"
"$CITYHUB" plan -c "$T/hub.yaml" --device nope >/dev/null 2>"$T/err"
[ $? -eq 2 ] || fail "unknown device: not exit 2"
grep -q 'has no device "nope" (devices: meter, small, sdm)' "$T/err" || fail "unknown device: $(cat "$T/err")"
"$CITYHUB" plan 2>"$T/err"
[ $? -eq 2 ] || fail "no -c: not exit 2"
grep -q -- "-c FILE is required" "$T/err" || fail "no -c: $(cat "$T/err")"
"$CITYHUB" plan -c "$T/hub.yaml" --frobnicate 2>/dev/null
[ $? -eq 2 ] || fail "unknown option: not exit 2"
printf 'buses: [{name: x, type: tcp}]\n' >"$T/bad.yaml"
"$CITYHUB" plan -c "$T/bad.yaml" >/dev/null 2>&1
[ $? -eq 2 ] || fail "invalid config: not exit 2"
echo "plan ok"
