#!/bin/bash
# cityhub plan: each device's read requests, from the config alone (no bus):
# fields merged within max_gap and max_registers, tables apart, a profile's
# map planned as the poller will; misuse is exit 2.
set -u
. "$(dirname "$0")/../lib/fixtures.sh"
fixtures_init
cat >"$T/hub.yaml" <<YAML
hub:
  name: gw-plan
  journal: {path: $T/journal}
buses:
  - {name: line, type: rtu, device: /dev/null-line}
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
      - {field: on, table: coil, address: 7}
      - {field: alarm, address: 20, type: bool, bit: 3}
  - {name: small, bus: line, unit: 4, max_registers: 2, registers: [{field: x, address: 0}, {field: y, address: 1}, {field: z, address: 2}]}
  - {name: sdm, bus: line, unit: 5, profile: eastron-sdm630}
YAML
"$CITYHUB" plan -c "$T/hub.yaml" >"$T/out" 2>"$T/err" || { cat "$T/err"; fail "plan failed"; }
cat "$T/out"
grep -q '^device meter (bus line, unit 3): 6 fields, max_gap 2, max_registers 125$' "$T/out" ||
    fail "meter header"
# a, b, c (0..5, the gap 3-4 within max_gap 2) in one request; d after a gap of 3 in another
grep -Eq '^  holding  fc 3      0 \+6    a, b, c$' "$T/out" || fail "holding 0+6"
grep -Eq '^  holding  fc 3      9 \+2    d$' "$T/out" || fail "holding 9+2"
grep -Eq '^  holding  fc 3     20 \+1    alarm$' "$T/out" || fail "holding 20+1"
grep -Eq '^  coil     fc 1      7 \+1    on$' "$T/out" || fail "coil 7+1"
grep -q '^  4 requests per poll' "$T/out" || fail "meter: 4 requests"
grep -Eq '^  holding  fc 3      0 \+2    x, y$' "$T/out" || fail "small: max_registers 2"
grep -q 'device sdm (bus line, unit 5, profile eastron-sdm630): 41 fields' "$T/out" || fail "sdm630"
grep -A4 '^device sdm' "$T/out" | grep -q '^  3 requests per poll' || fail "sdm630: 3 requests"
"$CITYHUB" plan -c "$T/hub.yaml" --device small | grep -c '^device' | grep -qx 1 || fail "--device"
"$CITYHUB" plan -c "$T/hub.yaml" --device nope 2>/dev/null
[ $? -eq 2 ] || fail "unknown device: not exit 2"
"$CITYHUB" plan 2>/dev/null
[ $? -eq 2 ] || fail "no -c: not exit 2"
echo "plan ok"
