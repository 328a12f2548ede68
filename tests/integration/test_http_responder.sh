# tests/lib/http_responder.py, the scriptable InfluxDB stand-in other tests
# lean on, checked through curl: auth, gzip, each rule action (answer with
# count and Retry-After, reset, stall, partial, max_lines), keep-alive, the
# store, the log, /_stats, and TLS with a required client certificate.
set -eu
. tests/lib/fixtures.sh
fixtures_init

# post PATH BODY [CURL ARGS...] -> "STATUS BODY" (curl's exit status on failure)
post() {
    local path=$1 body=$2 out rc=0
    shift 2
    out=$(http_curl -XPOST "$HTTP_URL$path" --data-binary "$body" -w ' %{http_code}' "$@" 2>/dev/null) ||
        rc=$?
    [ "$rc" -eq 0 ] || { echo "curl-exit-$rc"; return 0; }
    echo "${out##* } ${out% *}" | sed 's/ $//'
}
expect() { # WHAT GOT WANT
    [ "$2" = "$3" ] || fail "$1: got '$2', want '$3'"
    echo "ok  $1"
}
V1="/write?db=city&precision=ns"
V2="/api/v2/write?org=o&bucket=b&precision=ns"
AUTH=(-u hub:pw)

start_http_responder --token tok --basic hub:pw
expect "ping" "$(http_curl -o /dev/null -w '%{http_code}' "$HTTP_URL/ping")" 204
expect "404" "$(http_curl -w ' %{http_code}' "$HTTP_URL/nope")" '{"error": "not found"} 404'
expect "v1 without basic auth" "$(post "$V1" 'm f=1 1')" '401 {"error": "authorization failed"}'
expect "v2 without token" "$(post "$V2" 'm f=1 1' -H 'Authorization: Token nope')" \
    '401 {"code": "unauthorized", "message": "unauthorized access"}'
expect "v1 write" "$(post "$V1" $'a f=1 1\na f=2 2\n' "${AUTH[@]}")" 204
printf 'gz f=1 3\n\ngz f=2 4\n' | gzip >"$T/body.gz"
expect "v2 gzip write" "$(post "$V2" @"$T/body.gz" -H 'Authorization: Token tok' \
    -H 'Content-Encoding: gzip')" 204
expect "store" "$(tr '\n' '|' <"$HTTP_STORE")" "a f=1 1|a f=2 2|gz f=1 3|gz f=2 4|"
last=$(tail -1 "$HTTP_LOG")
expect "log of the gzip write" "$(echo "$last" | jq -c '[.path, .query.bucket, .status, .lines, .gzip, .auth]')" \
    '["/api/v2/write","b",204,2,true,"Token tok"]'
expect "decoded bytes" "$(echo "$last" | jq '.bytes')" 19
expect "bad gzip" "$(post "$V1" 'not gzip' "${AUTH[@]}" -H 'Content-Encoding: gzip')" \
    '400 {"error": "unable to decompress the gzip body"}'

# Rules: the first that applies decides; a count is spent.
http_rules '[{"match": "^bad", "status": 400, "count": 1},
             {"match": "^busy", "status": 503, "retry_after": 7, "count": 1},
             {"match": "^rst", "action": "reset", "count": 1},
             {"match": "^slow", "action": "stall", "stall_s": 1, "count": 1},
             {"match": "^drop", "action": "partial"},
             {"max_lines": 3, "status": 413}]'
expect "match 400" "$(post "$V1" $'ok f=1 5\nbad f= 6' "${AUTH[@]}")" \
    "400 {\"code\": \"invalid\", \"message\": \"unable to parse 'bad f= 6': invalid field format\"}"
expect "count spent" "$(post "$V1" $'bad f=1 7' "${AUTH[@]}")" 204
ra=$(http_curl -XPOST "$HTTP_URL$V1" "${AUTH[@]}" --data-binary 'busy f=1 8' -D - -o /dev/null |
    tr -d '\r' | sed -n 's/^Retry-After: //p')
expect "503 Retry-After" "$ra" 7
expect "reset" "$(post "$V1" 'rst f=1 9' "${AUTH[@]}")" curl-exit-56
t0=$(date +%s%N)
expect "stall" "$(post "$V1" 'slow f=1 10' "${AUTH[@]}")" 204
ms=$((($(date +%s%N) - t0) / 1000000))
[ "$ms" -ge 1000 ] || fail "stall answered after $ms ms, want >= 1000"
expect "partial" "$(post "$V1" $'keep f=1 11\ndrop f=1 12\ndrop f=2 13' "${AUTH[@]}")" \
    "400 {\"error\": \"partial write: unable to parse 'drop f=1 12': invalid field format dropped=2\"}"
expect "max_lines" "$(post "$V1" $'n f=1 1\nn f=2 2\nn f=3 3\nn f=4 4' "${AUTH[@]}")" \
    '413 {"error": "request entity too large"}'
expect "store after the rules" "$(tail -3 "$HTTP_STORE" | tr '\n' '|')" \
    "bad f=1 7|slow f=1 10|keep f=1 11|"
expect "bad rules refused" "$(http_curl -o /dev/null -w '%{http_code}' -XPOST "$HTTP_URL/_rules" \
    --data-binary '[{"action": "explode"}]')" 400

# Keep-alive: two writes in one curl run share one connection.
before=$(http_stats | jq .connections)
http_curl -f "${AUTH[@]}" -XPOST "$HTTP_URL$V1" --data-binary 'k f=1 1' -o /dev/null \
    "$HTTP_URL$V1" --data-binary 'k f=2 2' -o /dev/null
after=$(http_stats | jq .connections)
# (the second /_stats is a connection of its own, counted before it answers)
expect "one connection for two requests" "$((after - before - 1))" 1
expect "same conn id" "$(tail -2 "$HTTP_LOG" | jq -s '.[0].conn == .[1].conn')" true
expect "stats" "$(http_stats | jq -c '[.requests, .lines_stored, .by_status]')" \
    '[16,9,{"204":7,"404":1,"401":2,"400":3,"503":1,"0":1,"413":1}]'
[ ! -s "$T/http-1/stderr" ] || { cat "$T/http-1/stderr" >&2; fail "the responder wrote to stderr"; }
stop_http_responder

# TLS with a required client certificate.
http_certs
start_http_responder --tls --client-ca "$HTTP_CA"
expect "TLS + client certificate" "$(post "$V1" 't f=1 1')" 204
expect "client CN in the log" "$(tail -1 "$HTTP_LOG" | jq -r .client_cn)" cityhub-client
rc=0
curl -sS --cacert "$HTTP_CA" -XPOST "$HTTP_URL$V1" --data-binary 't f=2 2' 2>"$T/nocert.err" || rc=$?
[ "$rc" -ne 0 ] || fail "a client without a certificate was served"
rc=0
curl -sS --cacert "$HTTP_OTHER_CA" --cert "$HTTP_CLIENT_CERT" --key "$HTTP_CLIENT_KEY" \
    -XPOST "$HTTP_URL$V1" --data-binary 't f=3 3' 2>/dev/null || rc=$?
expect "the other CA does not verify the server" "$rc" 60
expect "TLS store" "$(cat "$HTTP_STORE")" "t f=1 1"
echo "http responder ok"
