# The board's cityhub, built for its architecture and run under
# qemu-user-static (tests/run.sh --emulated sets CITYHUB to it), in the
# end-to-end test: it polls the host's Modbus simulator over loopback and
# writes to the host's InfluxDB; every type and byte order must land with its
# exact value, and the store must hold exactly the journal's readings and
# acquisition timestamps (64-bit nanoseconds, on a 32-bit board too).
set -eu
: "${CITYHUB_EMULATED:?run by tests/run.sh --emulated (make check BOARD=NAME)}"
: "${CITYHUB:?set by tests/run.sh}"
# The program is the board's, not the lab's.
v=$("$CITYHUB" --version | head -1)
echo "$v"
case "$v" in
"cityhub "*"(board x86_64)" | "") echo "FAIL: not a board's program: $v" >&2; exit 1 ;;
"cityhub "*"(board "*")") ;;
*) echo "FAIL: --version: $v" >&2; exit 1 ;;
esac
exec bash tests/integration/test_end_to_end.sh
