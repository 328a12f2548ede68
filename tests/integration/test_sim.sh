# cityhub-sim itself, byte by byte with a raw Modbus client (/usr/bin/python3):
# 300 endpoints on 127.0.0.1 .. 127.0.1.44 answer, and only those; the types
# profile holds every type in every byte order exactly as docs/simulator.md
# lists it (holding and input registers, coils, discrete inputs, register
# bits); Read Device Identification (0x2B / 0x0E); and every fault switch of
# docs/simulator.md gives the documented bytes over TCP, and over RTU on a pty
# pair where meaningful, and is logged. A drip or a slow unit does not hold up
# other clients.
set -eu
. tests/lib/fixtures.sh
fixtures_init
PY=/usr/bin/python3
[ -x "$PY" ] || fail "no $PY"

# Bad command lines exit 2.
for args in "--rtu /dev/null --close-unit 1" "--rtu /dev/null --bad-protocol-unit 1" \
    "--rtu /dev/null --endpoints 2" "--listen [::1]:0 --endpoints 2" \
    "--listen 127.0.0.1:0 --slow-unit 1" "--listen 127.0.0.1:0 --profile types --busy-unit 3" \
    "--listen 127.0.0.1:0 --ident-unit 1:A:B" "--listen 127.0.0.1:0 --drip-unit 1:0"; do
    rc=0
    # shellcheck disable=SC2086
    "$SIM" $args >"$T/bad.out" 2>&1 || rc=$?
    [ "$rc" -eq 2 ] || { cat "$T/bad.out" >&2; fail "cityhub-sim $args: exit $rc, not 2"; }
done

start_sim_named types --endpoints 300 --backlog 16 --profile types \
    --ident-unit 2:ACME:PM-100:2.3
TYPES_PORT=$SIM_PORT TYPES_LOG=$SIM_LOG
last=$(sim_endpoint_addr 299)
[ "$last" = 127.0.1.44 ] || fail "endpoint 300 is $last"
grep -q "listening on 300 endpoints 127.0.0.1:$TYPES_PORT to 127.0.1.44:$TYPES_PORT, backlog 16" \
    "$TYPES_LOG" || { cat "$TYPES_LOG" >&2; fail "no endpoint range in the log"; }

start_sim_named faults --endpoints 2 --profile test --wrong-unit-reply 1 --bad-protocol-unit 2 \
    --drip-unit 3:100 --close-unit 4 --busy-unit 5:2 --slow-unit 6:400 --no-ident-unit 7
FAULTS_PORT=$SIM_PORT FAULTS_LOG=$SIM_LOG

start_pty_pair
start_sim_rtu "$PTY_A" --profile test --wrong-unit-reply 1 --busy-unit 5:1 --no-ident-unit 7 \
    --drip-unit 3:30 --slow-unit 6:300 --ident-unit 8:ACME:PM-100:2.3

"$PY" - "$TYPES_PORT" "$FAULTS_PORT" "$PTY_B" <<'PY'
import os, select, socket, struct, sys, termios, time, tty

types_port, faults_port, pty_path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
checks = 0

def fail(msg):
    print("FAIL: " + msg, file=sys.stderr)
    sys.exit(1)

def expect(what, got, want):
    global checks
    checks += 1
    if got != want:
        fail("%s: got %s, want %s" % (what, got.hex(" ") if isinstance(got, bytes) else got,
                                      want.hex(" ") if isinstance(want, bytes) else want))

# ---- Modbus TCP ------------------------------------------------------------
class Tcp:
    def __init__(self, host, port, timeout=2.0):
        self.s = socket.create_connection((host, port), timeout=timeout)
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.tid = 0x1200

    def send(self, unit, pdu):
        self.tid += 1
        self.s.sendall(struct.pack(">HHHB", self.tid, 0, len(pdu) + 1, unit) + pdu)
        return self.tid

    def recv_frame(self):
        """One whole ADU by its MBAP length; also the number of recv() calls."""
        d, calls = b"", 0
        while len(d) < 6 or len(d) < 6 + (d[4] << 8 | d[5]):
            x = self.s.recv(1)
            if not x:
                fail("connection closed after %s" % d.hex(" "))
            d += x
            calls += 1
        return d, calls

    def ask(self, unit, pdu):
        tid = self.send(unit, pdu)
        d, _ = self.recv_frame()
        expect("transaction id", d[:2], struct.pack(">H", tid))
        return d

    def close(self):
        self.s.close()

def mbap(tid, unit, pdu, proto=0):
    return struct.pack(">HHHB", tid, proto, len(pdu) + 1, unit) + pdu

def read_pdu(fc, addr, count):
    return struct.pack(">BHH", fc, addr, count)

def regs_reply(fc, regs):
    return bytes([fc, 2 * len(regs)]) + b"".join(struct.pack(">H", r) for r in regs)

# ---- the types layout, as docs/simulator.md defines it -----------------------
def words(b):
    return [b[i] << 8 | b[i + 1] for i in range(0, len(b), 2)]

def order(ws, o):
    if o in ("CDAB", "DCBA"):
        ws = ws[::-1]
    if o in ("BADC", "DCBA"):
        ws = [(w & 0xFF) << 8 | w >> 8 for w in ws]
    return ws

def string_regs(s, n, o):
    b = s.encode().ljust(2 * n, b"\0")
    return [(b[2 * i + 1] << 8 | b[2 * i]) if o in ("BADC", "DCBA") else (b[2 * i] << 8 | b[2 * i + 1])
            for i in range(n)]

ORDERS = ["ABCD", "CDAB", "BADC", "DCBA"]
layout = {}  # address -> raw register
def put(addr, ws):
    for i, w in enumerate(ws):
        layout[addr + i] = w
for k, o in enumerate(ORDERS):
    put(100 + k, order(words(struct.pack(">h", -12345)), o))
    put(110 + k, order(words(struct.pack(">H", 54321)), o))
    put(200 + 2 * k, order(words(struct.pack(">i", -123456789)), o))
    put(210 + 2 * k, order(words(struct.pack(">I", 3000000000)), o))
    put(220 + 2 * k, order(words(struct.pack(">f", 228.94186)), o))
    put(300 + 4 * k, order(words(struct.pack(">q", -1234567890123456789)), o))
    put(320 + 4 * k, order(words(struct.pack(">Q", 12345678901234567890)), o))
    put(340 + 4 * k, order(words(struct.pack(">d", 3.141592653589793)), o))
    put(400 + 8 * k, string_regs("CITYHUB-SIM-0001", 8, o))
    put(440 + 8 * k, string_regs("CITYHUB", 8, o))
put(500, words(struct.pack(">hH", -32768, 65535)))
put(502, words(struct.pack(">iI", -2**31, 2**32 - 1)))
put(506, words(struct.pack(">qQ", -2**63, 2**64 - 1)))
put(514, words(struct.pack(">f", -1.5)))
put(516, words(struct.pack(">d", -0.1)))
put(520, [0x7FC0, 0x0000, 0x7F80, 0x0000, 0x7FF8, 0, 0, 0])
put(900, [0xA5C3, 0x8001])
# a few rows of the doc's table, literally
literal = {200: "F8A4 32EB", 202: "32EB F8A4", 204: "A4F8 EB32", 206: "EB32 A4F8",
           220: "4364 F11E", 304: "7EEB 8216 EF0B EEDD", 332: "D20A 1FEB 8CA9 54AB",
           348: "0940 FB21 4454 182D", 416: "4943 5954 5548 2D42 4953 2D4D 3030 3130",
           456: "4943 5954 5548 0042 0000 0000 0000 0000", 102: "C7CF", 113: "31D4"}
for a, hexs in literal.items():
    ws = [int(x, 16) for x in hexs.split()]
    expect("doc row %d" % a, [layout[a + i] for i in range(len(ws))], ws)
expected = [layout.get(a, 0) for a in range(1000)]

# ---- endpoints ---------------------------------------------------------------
for host in ("127.0.0.1", "127.0.1.44", "127.0.0.150"):
    c = Tcp(host, types_port)
    expect("holding 100-103 on " + host, c.ask(1, read_pdu(3, 100, 4))[7:],
           regs_reply(3, expected[100:104]))
    c.close()
try:
    socket.create_connection(("127.0.1.45", types_port), timeout=2).close()
    fail("endpoint 301 (127.0.1.45) accepted a connection")
except ConnectionRefusedError:
    pass
print("endpoints ok: 127.0.0.1, 127.0.0.150 and 127.0.1.44 answer, 127.0.1.45 refuses")

# ---- types: every register, both tables, both units; bits ----------------------
c = Tcp("127.0.1.44", types_port)
for unit in (1, 2):
    for fc in (3, 4):
        for a in range(0, 1000, 125):
            d = c.ask(unit, read_pdu(fc, a, 125))
            expect("unit %d fc %d %d-%d" % (unit, fc, a, a + 124), d[6:],
                   bytes([unit]) + regs_reply(fc, expected[a:a + 125]))
    expect("coils 0-15", c.ask(unit, read_pdu(1, 0, 16))[7:], bytes([1, 2, 0xA5, 0xC3]))
    expect("discrete 0-15", c.ask(unit, read_pdu(2, 0, 16))[7:], bytes([2, 2, 0x3C, 0x5A]))
    expect("coils 4-6", c.ask(unit, read_pdu(1, 4, 3))[7:], bytes([1, 1, 0b010]))
    expect("discrete 9-11", c.ask(unit, read_pdu(2, 9, 3))[7:], bytes([2, 1, 0b101]))
    expect("holding 1000", c.ask(unit, read_pdu(3, 1000, 1))[7:], bytes([0x83, 2]))
    expect("coil 16", c.ask(unit, read_pdu(1, 16, 1))[7:], bytes([0x81, 2]))
    expect("unit 3", c.ask(3, read_pdu(3, 0, 1))[6:], bytes([3, 0x83, 0x0B]))
# floats decode to the documented values
f32 = struct.unpack(">f", struct.pack(">HH", *expected[220:222]))[0]
expect("float32 228.94186", repr(f32), "228.94186401367188")
print("types ok: 2 units x holding/input 0-999, coils, discrete inputs")

# ---- device identification -------------------------------------------------------
def ident(code, objs, obj_id=0):
    out = bytes([0x2B, 0x0E, code, 0x01, 0x00, 0x00, len(objs)])
    for i, s in objs:
        out += bytes([i, len(s)]) + s.encode()
    return out
basic = [(0, "cityhub-sim"), (1, "types"), (2, "1.0")]
expect("ident unit 1", c.ask(1, bytes([0x2B, 0x0E, 1, 0]))[7:], ident(1, basic))
expect("ident unit 1 from 2", c.ask(1, bytes([0x2B, 0x0E, 1, 2]))[7:], ident(1, basic[2:]))
expect("ident unit 1 from 9", c.ask(1, bytes([0x2B, 0x0E, 1, 9]))[7:], ident(1, basic))
expect("ident unit 1 code 2", c.ask(1, bytes([0x2B, 0x0E, 2, 0]))[7:], ident(2, basic))
expect("ident unit 1 obj 1", c.ask(1, bytes([0x2B, 0x0E, 4, 1]))[7:], ident(4, basic[1:2]))
expect("ident obj 3", c.ask(1, bytes([0x2B, 0x0E, 4, 3]))[7:], bytes([0xAB, 2]))
expect("ident code 0", c.ask(1, bytes([0x2B, 0x0E, 0, 0]))[7:], bytes([0xAB, 3]))
expect("ident code 5", c.ask(1, bytes([0x2B, 0x0E, 5, 0]))[7:], bytes([0xAB, 3]))
expect("mei 0x0D", c.ask(1, bytes([0x2B, 0x0D, 1, 0]))[7:], bytes([0xAB, 1]))
acme = [(0, "ACME"), (1, "PM-100"), (2, "2.3")]
expect("ident unit 2", c.ask(2, bytes([0x2B, 0x0E, 1, 0])), mbap(c.tid, 2, ident(1, acme)))
c.close()
print("device identification ok")

# ---- fault switches over TCP (profile test, units 1 to 8) --------------------------
ok1 = regs_reply(3, [0x1234])
c = Tcp("127.0.0.1", faults_port)
expect("healthy unit 8", c.ask(8, read_pdu(3, 0, 1)), mbap(c.tid, 8, ok1))
expect("wrong unit 1 -> 2", c.ask(1, read_pdu(3, 0, 1)), mbap(c.tid, 2, ok1))
expect("bad protocol unit 2", c.ask(2, read_pdu(3, 0, 1)), mbap(c.tid, 2, ok1, proto=1))
seq = [c.ask(5, read_pdu(3, 0, 1))[7:] for _ in range(6)]
busy = bytes([0x83, 0x06])
expect("busy unit 5 cycle", seq, [busy, busy, ok1, busy, busy, ok1])
expect("no ident unit 7", c.ask(7, bytes([0x2B, 0x0E, 1, 0])), mbap(c.tid, 7, bytes([0xAB, 1])))
expect("unit 7 reads", c.ask(7, read_pdu(3, 0, 1))[7:], ok1)
expect("ident unit 8", c.ask(8, bytes([0x2B, 0x0E, 4, 1]))[7:], ident(4, [(1, "test")]))

# drip: 11 bytes a byte at a time, 100 ms apart; meanwhile another client (on
# the other endpoint) is answered at once, and a request pipelined behind the
# drip on the same connection is answered after its last byte, not inside it.
other = Tcp("127.0.0.2", faults_port)
t0 = time.time()
tid_drip = c.send(3, read_pdu(3, 0, 1))
time.sleep(0.15)
tid_next = c.send(8, read_pdu(3, 0, 1))
t1 = time.time()
expect("other client during the drip", other.ask(8, read_pdu(3, 0, 1))[7:], ok1)
if time.time() - t1 > 0.3:
    fail("the other client waited %.2f s during a drip" % (time.time() - t1))
d, calls = c.recv_frame()
took = time.time() - t0
expect("drip unit 3", d, mbap(tid_drip, 3, ok1))
if calls < 9 or took < 0.8:
    fail("drip: %d recv() calls in %.2f s (want 11 bytes over ~1 s)" % (calls, took))
d, _ = c.recv_frame()
expect("reply after the drip", d, mbap(tid_next, 8, ok1))
print("drip ok: 11 bytes in %d pieces over %.2f s, others served meanwhile" % (calls, took))

# slow: unit 6 answers 400 ms late, unit 8 at once
t0 = time.time()
tid_slow = other.send(6, read_pdu(3, 0, 1))
expect("unit 8 while unit 6 is slow", c.ask(8, read_pdu(3, 0, 1))[7:], ok1)
fast = time.time() - t0
d, _ = other.recv_frame()
slow = time.time() - t0
expect("slow unit 6", d, mbap(tid_slow, 6, ok1))
if not (fast < 0.3 and 0.35 <= slow < 1.5):
    fail("slow unit: unit 8 after %.2f s, unit 6 after %.2f s" % (fast, slow))
print("slow ok: unit 6 after %.2f s, unit 8 after %.3f s" % (slow, fast))

# close: the first 5 of 11 bytes, then the connection is closed
tid_close = c.send(4, read_pdu(3, 0, 1))
d = b""
while True:
    x = c.s.recv(100)
    if not x:
        break
    d += x
expect("close unit 4", d, mbap(tid_close, 4, ok1)[:5])
other.close()
print("tcp faults ok")

# ---- Modbus RTU on the pty --------------------------------------------------------
def crc16(b):
    crc = 0xFFFF
    for x in b:
        crc ^= x
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return bytes([crc & 0xFF, crc >> 8])

def rtu(b):
    return b + crc16(b)

fd = os.open(pty_path, os.O_RDWR | os.O_NOCTTY)
tty.setraw(fd)
def rtu_ask(frame, want_len, timeout=1.5):
    os.write(fd, rtu(frame))
    d, times, t0 = b"", [], time.time()
    while len(d) < want_len and time.time() - t0 < timeout:
        r, _, _ = select.select([fd], [], [], 0.05)
        if r:
            x = os.read(fd, 256)
            d += x
            times.append(time.time() - t0)
    time.sleep(0.02)
    return d, times

def rtu_expect(what, frame, want):
    d, times = rtu_ask(frame, len(want))
    expect("rtu " + what, d, want)
    return times

r8 = rtu(bytes([8, 3, 2, 0x12, 0x34]))
rtu_expect("unit 8", bytes([8, 3, 0, 0, 0, 1]), r8)
rtu_expect("wrong unit 1 -> 2", bytes([1, 3, 0, 0, 0, 1]), rtu(bytes([2, 3, 2, 0x12, 0x34])))
rtu_expect("busy 5 #1", bytes([5, 3, 0, 0, 0, 1]), rtu(bytes([5, 0x83, 6])))
rtu_expect("busy 5 #2", bytes([5, 3, 0, 0, 0, 1]), rtu(bytes([5, 3, 2, 0x12, 0x34])))
rtu_expect("busy 5 #3", bytes([5, 3, 0, 0, 0, 1]), rtu(bytes([5, 0x83, 6])))
rtu_expect("no ident 7", bytes([7, 0x2B, 0x0E, 1, 0]), rtu(bytes([7, 0xAB, 1])))
rtu_expect("ident 8", bytes([8, 0x2B, 0x0E, 1, 0]), rtu(bytes([8]) + ident(1, acme)))
rtu_expect("ident 1 obj 2", bytes([1, 0x2B, 0x0E, 4, 2]), rtu(bytes([2]) + ident(4, [(2, "1.0")])))
rtu_expect("coils 0-15", bytes([2, 1, 0, 0, 0, 16]), rtu(bytes([2, 1, 2, 0xA5, 0xC3])))
times = rtu_expect("drip 3", bytes([3, 3, 0, 0, 0, 1]), rtu(bytes([3, 3, 2, 0x12, 0x34])))
if len(times) < 5 or times[-1] - times[0] < 0.15:
    fail("rtu drip: %d pieces over %.2f s" % (len(times), times[-1] - times[0]))
t0 = time.time()
rtu_expect("slow 6", bytes([6, 3, 0, 0, 0, 1]), rtu(bytes([6, 3, 2, 0x12, 0x34])))
if time.time() - t0 < 0.28:
    fail("rtu slow unit answered after %.2f s" % (time.time() - t0))
os.close(fd)
print("rtu ok; %d checks" % checks)
PY

# Every fault is in the simulators' logs, as it happens.
for pat in "unit 1 fc 3 addr 0 count 1 -> ok (wrong unit id 2)" \
    "unit 2 fc 3 addr 0 count 1 -> ok (protocol id 1)" \
    "unit 3 fc 3 addr 0 count 1 -> ok (drip: a byte every 100 ms)" \
    "unit 3: reply of 11 bytes dripped a byte at a time in" \
    "unit 4 fc 3 addr 0 count 1 -> ok (close after 5 of 11 bytes)" \
    "unit 4: sent 5 of 11 reply bytes, closing the connection" \
    "unit 5 fc 3 addr 0 count 1 -> exception 6 (busy, 2 of every 3)" \
    "unit 6 fc 3 addr 0 count 1 -> ok (slow: 400 ms)" \
    "unit 7 fc 43 mei 14 code 1 object 0 -> exception 1 (no device identification)"; do
    grep -qF "$pat" "$FAULTS_LOG" || { tail -40 "$FAULTS_LOG" >&2; fail "not in the log: $pat"; }
done
for pat in "unit 1 fc 3 addr 0 count 1 -> ok (wrong unit id 2)" \
    "unit 5 fc 3 addr 0 count 1 -> exception 6 (busy, 1 of every 2)" \
    "unit 3: reply of 7 bytes dripped" "unit 6 fc 3 addr 0 count 1 -> ok (slow: 300 ms)"; do
    grep -qF "$pat" "$T/sim.log" || { tail -40 "$T/sim.log" >&2; fail "not in the rtu log: $pat"; }
done
if grep -q "bad CRC ignored\|stray byte" "$T/sim.log"; then
    fail "the rtu sim saw broken request frames"
fi

# SIGTERM: each simulator exits 0.
for p in $FIXTURE_PIDS; do
    case " $PTY_PID " in *" $p "*) continue ;; esac
    kill -TERM "$p"
    rc=0
    wait "$p" || rc=$?
    [ "$rc" -eq 0 ] || fail "cityhub-sim (pid $p) exited $rc after SIGTERM"
done
grep -q "stopping after" "$FAULTS_LOG" || fail "no stop line in the faults sim log"
echo "sim ok"
