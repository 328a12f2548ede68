#!/bin/bash
# Decoding of every type in every byte order, by the hub's own poll path
# (cityhub poll --once: the plan, the reply checks, the decoder), against the
# values the simulator's `types` profile writes (docs/simulator.md): 16-,
# 32- and 64-bit integers, float32 (stored as its shortest decimal), float64,
# strings, bits of a register, coils and discrete inputs; NaN and infinity
# are no value; scale, offset and store.
set -u
. "$(dirname "$0")/../lib/fixtures.sh"
fixtures_init
start_sim --profile types --log /dev/null

{
    cat <<YAML
hub:
  name: gw-types
  journal: {path: $T/journal}
buses:
  - {name: lan, type: tcp, host: 127.0.0.1, port: $SIM_PORT, timeout: 1s}
devices:
YAML
    k=0
    for o in ABCD CDAB BADC DCBA; do
        cat <<YAML
  - name: t-$o
    bus: lan
    unit: $((k % 2 + 1))
    max_gap: 125
    registers:
      - {field: i16, address: $((100 + k)), type: int16, order: $o}
      - {field: u16, address: $((110 + k)), type: uint16, order: $o}
      - {field: i32, address: $((200 + 2 * k)), type: int32, order: $o}
      - {field: u32, address: $((210 + 2 * k)), type: uint32, order: $o}
      - {field: f32, address: $((220 + 2 * k)), type: float32, order: $o}
      - {field: i64, address: $((300 + 4 * k)), type: int64, order: $o}
      - {field: u64, address: $((320 + 4 * k)), type: uint64, order: $o}
      - {field: f64, table: input, address: $((340 + 4 * k)), type: float64, order: $o}
      - {field: s, address: $((400 + 8 * k)), type: string, length: 8, order: $o}
      - {field: s_nul, address: $((440 + 8 * k)), type: string, length: 8, order: $o}
YAML
        k=$((k + 1))
    done
    cat <<YAML
  - name: extremes
    bus: lan
    unit: 1
    registers:
      - {field: i16, address: 500, type: int16}
      - {field: u16, address: 501, type: uint16}
      - {field: i32, address: 502, type: int32}
      - {field: u32, address: 504, type: uint32}
      - {field: i64, address: 506, type: int64}
      - {field: u64, address: 510, type: uint64}
      - {field: f32, address: 514, type: float32}
      - {field: f64, address: 516, type: float64}
      - {field: nan32, address: 520, type: float32}
      - {field: inf32, address: 522, type: float32}
      - {field: nan64, address: 524, type: float64}
      - {field: bit0, address: 900, type: bool, bit: 0}
      - {field: bit2, address: 900, type: bool, bit: 2}
      - {field: bit15, address: 901, type: bool, bit: 15}
      - {field: coil0, table: coil, address: 0}
      - {field: coil1, table: coil, address: 1}
      - {field: coil15, table: coil, address: 15, type: bool}
      - {field: di2, table: discrete, address: 2}
      - {field: di0, table: discrete, address: 0}
      - {field: scaled, address: 110, type: uint16, scale: 0.01, offset: -100, unit: Cel}
      - {field: as_int, address: 110, type: uint16, scale: 0.1, store: int}
      - {field: neg_uint, address: 500, type: int16, store: uint}
YAML
} >"$T/hub.yaml"
"$CITYHUB" check -c "$T/hub.yaml" >/dev/null || fail "config refused"

poll() { "$CITYHUB" poll -c "$T/hub.yaml" --device "$1" --once >"$T/$1.out" 2>&1 || { cat "$T/$1.out" >&2; fail "poll $1 failed"; }; }
want() { # device field value
    grep -qx "$2 = $3\( .*\)\?" "$T/$1.out" || { cat "$T/$1.out" >&2; fail "$1: want $2 = $3"; }
}
for o in ABCD CDAB BADC DCBA; do
    poll "t-$o"
    want "t-$o" i16 -12345
    want "t-$o" u16 54321
    want "t-$o" i32 -123456789
    want "t-$o" u32 3000000000
    want "t-$o" f32 228.94186
    want "t-$o" i64 -1234567890123456789
    want "t-$o" u64 12345678901234567890
    want "t-$o" f64 3.141592653589793
    want "t-$o" s '"\?CITYHUB-SIM-0001"\?'
    want "t-$o" s_nul '"\?CITYHUB"\?'
done
poll extremes
want extremes i16 -32768
want extremes u16 65535
want extremes i32 -2147483648
want extremes u32 4294967295
want extremes i64 -9223372036854775808
want extremes u64 18446744073709551615
want extremes f32 -1.5
want extremes f64 -0.1
want extremes bit0 true
want extremes bit2 false
want extremes bit15 true
want extremes coil0 true
want extremes coil1 false
want extremes coil15 true
want extremes di2 true
want extremes di0 false
want extremes scaled 443.21
want extremes as_int 5432
for f in nan32 inf32 nan64 neg_uint; do
    grep -q "^$f = " "$T/extremes.out" && fail "$f has a value: $(grep "^$f" "$T/extremes.out")"
done
echo "every type in every order decoded"
