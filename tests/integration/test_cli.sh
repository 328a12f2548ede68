# cityhub's command line: version, help, check with FILE:LINE:COL errors,
# and a bad configuration never starting the daemon.
set -eu
. tests/lib/fixtures.sh
fixtures_init

"$CITYHUB" --version | grep -q "^cityhub [0-9]" || fail "--version"
for c in run check journal deadletter; do
    "$CITYHUB" "$c" --help | grep -q "usage: cityhub $c" || fail "$c --help"
done
set +e
"$CITYHUB" frobnicate >/dev/null 2>&1; [ $? -eq 2 ] || fail "unknown command must exit 2"
"$CITYHUB" check >/dev/null 2>&1; [ $? -eq 2 ] || fail "check without -c must exit 2"
set -e

cat >"$T/good.yaml" <<YAML
hub:
  name: gw-test
  journal: {path: $T/journal}
buses:
  - {name: lan, type: tcp, host: 127.0.0.1, port: 1502}
devices:
  - name: d1
    bus: lan
    registers:
      - {field: x, address: 0}
outputs:
  - {name: ioc, type: influxdb, url: "http://127.0.0.1:1", database: city}
YAML
"$CITYHUB" check -c "$T/good.yaml" >"$T/out" || fail "a valid config must pass check"
grep -q "ok" "$T/out" || fail "check prints ok"

# Three errors: unknown key, bad duration, unknown bus; all reported with positions.
cat >"$T/bad.yaml" <<YAML
hub:
  name: gw-test
  journal: {path: $T/journal-bad}
buses:
  - {name: lan, type: tcp, host: 127.0.0.1, port: 1502}
devices:
  - name: d1
    bus: lann
    interval: 10x
    colour: blue
    registers:
      - {field: x, address: 0}
outputs:
  - {name: ioc, type: influxdb, url: "http://127.0.0.1:1", database: city}
YAML
set +e
"$CITYHUB" check -c "$T/bad.yaml" 2>"$T/err"; rc=$?
set -e
cat "$T/err"
[ "$rc" -eq 2 ] || fail "check of a bad config must exit 2, got $rc"
grep -q "^$T/bad.yaml:8:10: .*unknown bus" "$T/err" || fail "unknown bus at 8:10"
grep -q "^$T/bad.yaml:9:15: .*duration" "$T/err" || fail "bad duration at 9:15"
grep -q "^$T/bad.yaml:10:5: .*unknown key \"colour\"" "$T/err" || fail "unknown key at 10:5"

# run refuses the same file, exits 2, and creates no journal.
set +e
"$CITYHUB" run -c "$T/bad.yaml" 2>"$T/err2"; rc=$?
set -e
[ "$rc" -eq 2 ] || fail "run with a bad config must exit 2, got $rc"
[ ! -e "$T/journal-bad" ] || fail "a bad config must not create the journal"
echo "cli ok"
