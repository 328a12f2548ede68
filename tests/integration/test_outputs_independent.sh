# Two outputs read the journal through their own cursors: one whose server
# hangs (accepts the connection, never answers) does not slow the other. The
# IOC store keeps up reading by reading while the agency's cursor stands
# still; once the agency's server answers, its backlog arrives complete.
set -eu
. tests/lib/fixtures.sh
fixtures_init
start_influxdb ioc
curl -sf -XPOST "$INFLUX_URL/query" --data-urlencode 'q=CREATE DATABASE "agency"' >/dev/null
start_sim --profile test
AG=$("$FREEPORT")
INFLUX_HOSTPORT=${INFLUX_URL#http://}
# The agency's server hangs: connections are taken and never answered.
socat "TCP-LISTEN:$AG,bind=127.0.0.1,reuseaddr,fork" EXEC:"sleep 600" 2>/dev/null &
HANG_PID=$!
track_pid "$HANG_PID"
wait_for bash -c "exec 3<>/dev/tcp/127.0.0.1/$AG" 2>/dev/null || fail "the hanging server did not listen"

cat >"$T/hub.yaml" <<YAML
hub:
  name: gw-two
  journal: {path: $T/journal}
buses:
  - {name: lan, type: tcp, host: 127.0.0.1, port: $SIM_PORT}
devices:
  - name: a
    bus: lan
    unit: 1
    interval: 20ms
    measurement: lab
    registers:
      - {field: counter, table: input, address: 0, type: uint16}
outputs:
  - {name: ioc, type: influxdb, url: "$INFLUX_URL", database: ioc, batch_size: 100, flush_interval: 100ms}
  - {name: agency, type: influxdb, url: "http://127.0.0.1:$AG", database: agency, batch_size: 100, flush_interval: 100ms, timeout: 2s}
YAML
start_hub "$T/hub.yaml"

cursor() { journal_cursor "$T/hub.yaml" "$1"; }
sleep 6
next=$(journal_stat "$T/hub.yaml" next_seq)
ioc=$(cursor ioc)
agency=$(cursor agency)
echo "after 6 s: next_seq $next, ioc cursor $ioc, agency cursor $agency"
[ "$next" -ge 100 ] || fail "only $next readings in 6 s"
# The IOC output is at most about a second (its flush interval, 50 readings)
# behind, while the agency has delivered nothing.
[ $((next - ioc)) -le 100 ] || fail "the IOC output lags $((next - ioc)) readings behind a hanging agency"
[ "$agency" -eq 0 ] || fail "the agency cursor moved ($agency) with no answer from its server"
grep -q "\[influxdb:agency\] batch of .* not delivered: transport: Timeout" "$HUB_LOG" ||
    { tail "$HUB_LOG" >&2; fail "no log line for the agency's timeout"; }

# The agency's server comes back (a proxy to the same InfluxDB): its
# backlog drains, complete.
kill "$HANG_PID"
untrack_pid "$HANG_PID"
wait "$HANG_PID" 2>/dev/null || true
socat "TCP-LISTEN:$AG,bind=127.0.0.1,reuseaddr,fork" "TCP:$INFLUX_HOSTPORT" 2>/dev/null &
track_pid $!
for _ in $(seq 300); do
    a=$(cursor agency)
    [ "$a" -ge "$next" ] && break
    sleep 0.1
done
stop_hub
n_ioc=$(influx_count ioc 'SELECT count(counter) FROM lab')
n_ag=$(influx_count agency 'SELECT count(counter) FROM lab')
echo "stored: ioc $n_ioc, agency $n_ag"
[ "$n_ioc" -gt 0 ] && [ "$n_ioc" -eq "$n_ag" ] || fail "ioc stored $n_ioc, agency $n_ag"
