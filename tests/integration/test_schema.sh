# The data dictionary and the device profiles as documented:
# - docs/data.md holds exactly what `cityhub schema --format markdown`
#   prints for the demo gateway (between <!-- schema:begin/end -->), and
#   --format json parses and lists every field of the demo config;
# - docs/profiles.md and docs/profiles/NAME.md hold exactly what
#   `cityhub profiles [NAME] --format markdown` prints for the built-in
#   profiles;
# - `cityhub profiles` works without a config; a site directory
#   (CITYHUB_PROFILES) replaces a built-in profile and a broken one is
#   reported as FILE:LINE:COL; a config's device with a profile is checked
#   and documented as resolved.
set -eu
. tests/lib/fixtures.sh
fixtures_init

PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(command -v python3) || fail "python3 is needed to check the JSON"

# The text between two marker lines of a file.
between() { # FILE BEGIN END
    awk -v b="$2" -v e="$3" '$0 == e { on = 0 } on { print } $0 == b { on = 1 }' "$1"
}

# ---- docs/data.md: the demo gateway's dictionary ------------------------------
SIM_PORT=1502 INFLUX_URL=http://127.0.0.1:1 demo_config "$T/demo.yaml"
"$CITYHUB" schema -c "$T/demo.yaml" --format markdown >"$T/schema.md" || fail "schema markdown"
between docs/data.md "<!-- schema:begin -->" "<!-- schema:end -->" >"$T/doc-schema.md"
[ -s "$T/doc-schema.md" ] || fail "docs/data.md has no <!-- schema:begin --> ... <!-- schema:end --> block"
diff -u "$T/doc-schema.md" "$T/schema.md" >&2 ||
    fail "docs/data.md is not what 'cityhub schema --format markdown' prints for the demo (diff above: - doc, + program)"

"$CITYHUB" schema -c "$T/demo.yaml" --format json >"$T/schema.json" || fail "schema json"
# every register of the demo config, as device/field, in file order
awk '/^  - name:/ { d = $3 } /- \{field:/ { f = $0; sub(/.*field: */, "", f); sub(/,.*/, "", f); print d "/" f }' \
    "$T/demo.yaml" >"$T/want-fields"
[ "$(wc -l <"$T/want-fields")" -ge 10 ] || fail "the demo config's registers were not found"
"$PY" - "$T/schema.json" "$T/want-fields" <<'PY' || fail "schema --format json"
import json, sys
doc = json.load(open(sys.argv[1]))
want = [l.strip() for l in open(sys.argv[2]) if l.strip()]
assert doc["gateway"] == "gw-demo-01", doc["gateway"]
assert doc["tags"] == ["gateway", "district", "site"], doc["tags"]
got = [f["source"] + "/" + f["field"] for f in doc["fields"]]
assert got == want, (got, want)
for f in doc["fields"]:
    for k in ("source", "measurement", "field", "type", "unit", "description", "tags"):
        assert k in f, (k, f)
    assert f["type"] in ("float", "integer", "unsigned", "boolean", "string"), f
    assert f["tags"][0] == "device", f
m = {f["source"]: f["measurement"] for f in doc["fields"]}
assert m == {"traffic-1": "traffic", "aq-1": "air_quality", "meter-1": "energy"}, m
PY

# ---- docs/profiles: the built-in profiles ---------------------------------------
export CITYHUB_PROFILES="$T/no-site-profiles"
"$CITYHUB" profiles >"$T/list.txt" || fail "cityhub profiles (no config) must exit 0"
grep -q "^eastron-sdm630 .*Eastron SDM630-Modbus .* 41 " "$T/list.txt" || fail "profiles list: $(cat "$T/list.txt")"
grep -q "^site profiles: $T/no-site-profiles (none" "$T/list.txt" || fail "profiles list: site directory"
"$CITYHUB" profiles --format markdown >"$T/list.md"
between docs/profiles.md "<!-- profiles:begin -->" "<!-- profiles:end -->" >"$T/doc-list.md"
diff -u "$T/doc-list.md" "$T/list.md" >&2 || fail "docs/profiles.md's list is not what 'cityhub profiles --format markdown' prints"
n=0
for y in drivers/modbus/profiles/*.yaml; do
    name=$(basename "$y" .yaml)
    page=docs/profiles/$name.md
    [ -f "$page" ] || fail "profile $name has no page $page"
    "$CITYHUB" profiles "$name" --format markdown >"$T/p.md" || fail "cityhub profiles $name"
    between "$page" "<!-- profile:begin -->" "<!-- profile:end -->" >"$T/doc-p.md"
    diff -u "$T/doc-p.md" "$T/p.md" >&2 || fail "$page is not what 'cityhub profiles $name --format markdown' prints"
    "$CITYHUB" profiles "$name" | grep -q "^from: *built in, $y" || fail "profiles $name: origin"
    n=$((n + 1))
done
[ "$n" -ge 6 ] || fail "only $n built-in profiles"
set +e
"$CITYHUB" profiles eastron-sdm999 2>"$T/err"; rc=$?
set -e
[ "$rc" -eq 2 ] || fail "an unknown profile exits 2 (got $rc)"
grep -q 'unknown profile "eastron-sdm999" (available: eastron-sdm120, eastron-sdm630' "$T/err" ||
    fail "unknown profile: $(cat "$T/err")"

# ---- site profiles -------------------------------------------------------------
mkdir "$T/site"
cat >"$T/site/eastron-sdm120.yaml" <<'YAML'
name: eastron-sdm120
description: our SDM120s, voltage only
vendor: Eastron
model: SDM120-Modbus
measurement: grid
registers:
  - {field: voltage, table: input, address: 0, type: float32, unit: V, description: "line voltage"}
YAML
cat >"$T/site/bad.yaml" <<'YAML'
name: bad
registers:
  - {field: a, address: 0}
  - {field: b, address: 0, type: float33}
YAML
export CITYHUB_PROFILES="$T/site"
set +e
"$CITYHUB" profiles >"$T/list.txt" 2>"$T/err"; rc=$?
set -e
[ "$rc" -eq 1 ] || fail "a broken profile makes 'cityhub profiles' exit 1 (got $rc)"
grep -q "^eastron-sdm120 .* 1  our SDM120s, voltage only" "$T/list.txt" || fail "site profile not listed: $(cat "$T/list.txt")"
grep -q "eastron-sdm120: $T/site/eastron-sdm120.yaml (replaces the built-in profile of that name)" "$T/list.txt" ||
    fail "replacement not shown: $(cat "$T/list.txt")"
grep -q "^bad .*has 1 error" "$T/list.txt" || fail "broken profile not listed"
grep -q "^$T/site/bad.yaml:4:34: bad value \"float33\" for type" "$T/err" || fail "broken profile: $(cat "$T/err")"

# ---- a config with profiles: checked and documented as resolved -----------------
cat >"$T/p.yaml" <<YAML
hub:
  name: gw-profiles
  journal: {path: $T/journal}
buses:
  - {name: rs485-1, type: rtu, device: /dev/null}
devices:
  - name: m1
    bus: rs485-1
    unit: 3
    profile: eastron-sdm120
    tags: {feeder: f3}
    registers:
      - {field: frequency, table: input, address: 0x0046, type: float32, unit: Hz}
  - {name: wx, bus: rs485-1, unit: 4, profile: generic-weather}
outputs:
  - {name: ioc, type: influxdb, url: "http://127.0.0.1:1", database: city}
YAML
"$CITYHUB" check -c "$T/p.yaml" >/dev/null || fail "a config with profiles must pass check"
"$CITYHUB" schema -c "$T/p.yaml" --format json >"$T/p.json"
"$PY" - "$T/p.json" <<'PY' || fail "schema of devices with profiles"
import json, sys
f = json.load(open(sys.argv[1]))["fields"]
m1 = [(x["field"], x["measurement"], x["unit"], x["description"]) for x in f if x["source"] == "m1"]
assert m1 == [("voltage", "grid", "V", "line voltage"), ("frequency", "grid", "Hz", "")], m1
assert [x["tags"] for x in f if x["source"] == "m1"][0] == ["device", "feeder"]
wx = [x for x in f if x["source"] == "wx"]
assert len(wx) == 9 and wx[0]["measurement"] == "weather" and wx[0]["unit"] == "Cel", wx[0]
PY
sed -e 's/profile: eastron-sdm120/profile: eastron-sdm121/' -e 's/profile: generic-weather/profile: bad/' \
    "$T/p.yaml" >"$T/p-bad.yaml"
set +e
"$CITYHUB" check -c "$T/p-bad.yaml" 2>"$T/err"; rc=$?
set -e
[ "$rc" -eq 2 ] || fail "unknown or broken profiles fail check with 2 (got $rc)"
grep -q "^$T/p-bad.yaml:10:14: device m1: unknown profile \"eastron-sdm121\" (available: bad, eastron-sdm120" "$T/err" ||
    fail "unknown profile in check: $(cat "$T/err")"
grep -q "^$T/p-bad.yaml:14:48: device wx: profile \"bad\" has an error: $T/site/bad.yaml:4:34: bad value" "$T/err" ||
    fail "broken profile in check: $(cat "$T/err")"
echo "ok"
