#!/usr/bin/python3
"""tests/lib/http_responder.py — a scriptable stand-in for an InfluxDB-compatible
store, for integration tests that need the store to fail on cue. Python 3
standard library only.

Usage:
  http_responder.py --port P [--bind 127.0.0.1] [--tls-cert F --tls-key F]
                    [--client-ca F] [--log FILE] [--store FILE] [--rules FILE]
                    [--token TOKEN] [--basic USER:PASS]

  --port 0 picks a free port. Once listening, stdout line 1 is "PORT <n>"
  (flushed). HTTP/1.1 with keep-alive; every answer has a Content-Length.
  --tls-cert/--tls-key serve HTTPS (the TLS handshake runs in the
  connection's thread); --client-ca F also requires a client certificate
  signed by a CA in F (ssl.CERT_REQUIRED): a client without one fails the
  handshake and gets no answer. SIGTERM exits at once (status 0).

Endpoints:
  POST /write           v1 write: query db (required: 400 "database is
                        required" without it), rp, precision
  POST /api/v2/write    v2 write: query org, bucket (required: 400 without),
                        precision
  GET|HEAD /ping        204
  GET /_stats           200 {"requests": n, "lines_stored": n,
                        "by_status": {"204": n, ...}, "connections": n}
                        requests and by_status count every request but those
                        to /_stats and /_rules (status "0" = reset, no
                        answer); connections counts TCP connections accepted
                        (a failed TLS handshake included).
  POST /_rules          body: a JSON list of rules; replaces the rules (their
                        counts start again). 200 {"rules": n}; a bad list is
                        400 {"error": ...} and the rules stay as they were.
  GET /_rules           200: the rules, each with "remaining" (null: no count)
  anything else         404 {"error":"not found"}

  A write body with Content-Encoding: gzip is gunzipped (undecodable: 400,
  nothing stored); chunked request bodies are read too. The decoded body is
  split at '\\n'; empty lines do not count. Lines are kept as received.

Auth (writes only; checked before any rule, a refusal spends no rule):
  --token T      v2 writes without "Authorization: Token T" ->
                 401 {"code":"unauthorized","message":"unauthorized access"}
  --basic U:P    v1 writes without that basic auth ->
                 401 {"error":"authorization failed"}

Rules, evaluated in order for each write; the first that applies decides; none
applies -> the lines are stored and the answer is 204. A rule applies when
all of its conditions hold:
  "match"      regex (re.search); some body line matches it (none: any write)
  "path"       "/write" or "/api/v2/write" only (none: both)
  "max_lines"  the body has MORE lines than this
  "max_bytes"  the decoded body has MORE bytes than this
  "count"      applies this many times, then is spent (none: forever)
What it does, by "action":
  "answer"   (default) answer "status" (default 500) and store NOTHING of the
             request (the whole batch refused, as InfluxDB 2.x does), unless
             "store": true. Body: "body" if given (a string as is, anything
             else as JSON); else with "match" the InfluxDB 2 form naming the
             first matching line:
               {"code":"invalid","message":"unable to parse '<line>': <reason>"}
             and without: {"error":"<reason>"}. "reason" overrides the
             default reason of the status (400 "invalid field format", 404
             "database not found", 413 "request entity too large", 429 "too
             many requests", 503 "service unavailable", ...). 2xx answers
             have no body unless "body" is given. "retry_after": N adds
             "Retry-After: N".
  "reset"    read the request, then close the TCP connection abruptly
             (SO_LINGER 0, close: a RST, no answer, no TLS close_notify).
             Nothing stored.
  "stall"    read the request, sleep "stall_s" seconds (default 5), then
             store the lines and answer 204, whether or not the client still
             waits (a slow server commits late).
  "partial"  InfluxDB 1.x partial write: store every line NOT matching
             "match", answer 400 {"error":"partial write: <reason>
             dropped=N"}, reason by default "unable to parse '<first
             matching line>': invalid field format".

Files (each line flushed as written, before the answer is sent):
  --store FILE  every stored line, one per line, as received
  --log FILE    one JSON object per request counted in "requests":
                {"path", "query" (dict of first values), "status" (0: reset),
                 "lines", "bytes" (decoded), "gzip" (bool), "auth" (the
                 Authorization header or null), "conn" (connection id, 1, 2,
                 ... in accept order: the same id = a reused connection),
                 "wire_bytes" (body as sent), "rule" (index of the rule that
                 applied or null), "action" (the rule's action, "stored" when
                 no rule applied, null when answered before the rules: auth,
                 bad query or gzip, 404), "client_cn" (CN of the client
                 certificate or null)}
"""

import argparse
import base64
import gzip
import json
import os
import re
import signal
import socket
import ssl
import struct
import sys
import threading
import time
import traceback
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

WRITE_PATHS = ("/write", "/api/v2/write")
ACTIONS = ("answer", "reset", "stall", "partial")
BODY_MAX = 256 << 20  # a request body larger than this is refused (413)

REASONS = {
    400: "invalid field format",
    401: "unauthorized access",
    403: "forbidden",
    404: "database not found",
    408: "request timeout",
    413: "request entity too large",
    422: "unprocessable entity",
    429: "too many requests",
    500: "internal error",
    502: "bad gateway",
    503: "service unavailable",
    504: "gateway timeout",
}

V2_CODES = {
    400: "invalid",
    401: "unauthorized",
    403: "forbidden",
    404: "not found",
    413: "request too large",
    422: "unprocessable entity",
    429: "too many requests",
    500: "internal error",
    503: "unavailable",
}


class BadRules(ValueError):
    pass


def is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def check_rules(rules):
    """A validated copy of a rule list, each rule with its "remaining" count."""
    if not isinstance(rules, list):
        raise BadRules("rules must be a JSON list")
    out = []
    for i, r in enumerate(rules):
        if not isinstance(r, dict):
            raise BadRules("rule %d: not an object" % i)
        r = dict(r)
        action = r.get("action", "answer")
        if action not in ACTIONS:
            raise BadRules("rule %d: action must be one of %s" % (i, ", ".join(ACTIONS)))
        r["action"] = action
        if "status" in r and (not is_int(r["status"]) or not 100 <= r["status"] <= 599):
            raise BadRules("rule %d: status must be an integer 100..599" % i)
        for k in ("count", "max_lines", "max_bytes"):
            if k in r and (not is_int(r[k]) or r[k] < 0):
                raise BadRules("rule %d: %s must be an integer >= 0" % (i, k))
        for k in ("retry_after", "stall_s"):
            if k in r and (not isinstance(r[k], (int, float)) or isinstance(r[k], bool) or r[k] < 0):
                raise BadRules("rule %d: %s must be a number >= 0" % (i, k))
        if "path" in r and r["path"] not in WRITE_PATHS:
            raise BadRules("rule %d: path must be /write or /api/v2/write" % i)
        if "match" in r:
            try:
                r["_re"] = re.compile(r["match"])
            except (re.error, TypeError) as e:
                raise BadRules("rule %d: match: %s" % (i, e))
        if action == "partial" and "_re" not in r:
            raise BadRules("rule %d: partial needs a match (the lines dropped)" % i)
        r["remaining"] = r.get("count")
        out.append(r)
    return out


class State:
    def __init__(self, args):
        self.lock = threading.Lock()
        self.rules = []
        self.requests = 0
        self.lines_stored = 0
        self.by_status = {}
        self.connections = 0
        self.log = open(args.log, "a", encoding="utf-8") if args.log else None
        self.store = open(args.store, "a", encoding="utf-8", errors="surrogateescape") if args.store else None
        self.token = args.token
        self.basic = None
        if args.basic is not None:
            self.basic = "Basic " + base64.b64encode(args.basic.encode()).decode()

    def pick_rule(self, path, lines, nbytes):
        """The rule that applies (spending one of its count) and its index, or (None, None)."""
        with self.lock:
            for i, r in enumerate(self.rules):
                if r["remaining"] is not None and r["remaining"] <= 0:
                    continue
                if "path" in r and r["path"] != path:
                    continue
                if "max_lines" in r and not len(lines) > r["max_lines"]:
                    continue
                if "max_bytes" in r and not nbytes > r["max_bytes"]:
                    continue
                if "_re" in r and not any(r["_re"].search(ln) for ln in lines):
                    continue
                if r["remaining"] is not None:
                    r["remaining"] -= 1
                return r, i
        return None, None

    def store_lines(self, lines):
        with self.lock:
            self.lines_stored += len(lines)
            if self.store:
                for ln in lines:
                    self.store.write(ln + "\n")
                self.store.flush()

    def record(self, entry):
        with self.lock:
            self.requests += 1
            key = str(entry["status"])
            self.by_status[key] = self.by_status.get(key, 0) + 1
            if self.log:
                self.log.write(json.dumps(entry, ensure_ascii=False) + "\n")
                self.log.flush()

    def stats(self):
        with self.lock:
            return {
                "requests": self.requests,
                "lines_stored": self.lines_stored,
                "by_status": dict(self.by_status),
                "connections": self.connections,
            }

    def rules_view(self):
        with self.lock:
            return [{k: v for k, v in r.items() if not k.startswith("_")} for r in self.rules]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "cityhub-test-responder"
    sys_version = ""

    def __init__(self, request, client_address, server, conn, client_cn):
        self.conn = conn
        self.client_cn = client_cn
        self.was_reset = False
        super().__init__(request, client_address, server)

    def log_message(self, format, *args):  # no access log on stderr
        pass

    def version_string(self):
        return self.server_version

    @property
    def state(self):
        return self.server.state

    # ---- answers --------------------------------------------------------

    def send(self, status, body=b"", headers=()):
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            ctype = "application/json"
        elif isinstance(body, str):
            body = body.encode("utf-8", "surrogateescape")
            ctype = "application/json" if body[:1] in (b"{", b"[") else "text/plain; charset=utf-8"
        else:
            ctype = "application/json"
        self.send_response(status)
        if body:
            self.send_header("Content-Type", ctype)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)
        self.wfile.flush()

    def reset(self):
        """Close the connection abruptly: SO_LINGER 0 then close (a RST)."""
        self.was_reset = True
        self.close_connection = True
        sock = self.connection
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        try:
            self.rfile.close()  # its reference to the socket; wfile holds none
        except OSError:
            pass
        try:
            sock.close()
        except OSError:
            pass

    # ---- reading the request -------------------------------------------

    def read_body(self):
        """The raw body, or None after answering an error (connection closed)."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            parts, total = [], 0
            while True:
                line = self.rfile.readline(1024)
                try:
                    size = int(line.split(b";")[0].strip(), 16)
                except ValueError:
                    return self.refuse(400, "bad chunk size")
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(parts)
                total += size
                if total > BODY_MAX:
                    return self.refuse(413, "request entity too large")
                data = self.rfile.read(size)
                if len(data) < size:
                    return self.refuse(400, "body shorter than its chunk")
                parts.append(data)
                self.rfile.readline(1024)
        try:
            n = int(self.headers.get("Content-Length", "0"))
            if n < 0:
                raise ValueError
        except ValueError:
            return self.refuse(400, "bad Content-Length")
        if n > BODY_MAX:
            return self.refuse(413, "request entity too large")
        data = self.rfile.read(n) if n else b""
        if len(data) < n:
            self.close_connection = True
            return None
        return data

    def refuse(self, status, reason):
        self.close_connection = True
        self.send(status, {"error": reason})
        return None

    # ---- methods --------------------------------------------------------

    def do_GET(self):
        self.guard(self.route_get)

    def do_HEAD(self):
        self.guard(self.route_get)

    def do_POST(self):
        self.guard(self.route_post)

    def do_PUT(self):
        self.guard(self.not_found)

    def do_DELETE(self):
        self.guard(self.not_found)

    def guard(self, fn):
        try:
            fn()
        except (ConnectionError, BrokenPipeError, socket.timeout, ssl.SSLError):
            self.close_connection = True
        except Exception:
            traceback.print_exc(file=sys.stderr)
            self.close_connection = True
            try:
                self.send(500, {"error": "responder error"})
            except Exception:
                pass

    def entry(self, path, query, status, **kw):
        e = {
            "path": path,
            "query": query,
            "status": status,
            "lines": 0,
            "bytes": 0,
            "gzip": False,
            "auth": self.headers.get("Authorization"),
            "conn": self.conn,
            "wire_bytes": 0,
            "rule": None,
            "action": None,
            "client_cn": self.client_cn,
        }
        e.update(kw)
        return e

    def not_found(self):
        u = urlsplit(self.path)
        if self.command in ("POST", "PUT", "DELETE") and self.read_body() is None:
            return
        self.state.record(self.entry(u.path, query_dict(u.query), 404))
        self.send(404, {"error": "not found"})

    def route_get(self):
        u = urlsplit(self.path)
        if u.path == "/_stats":
            self.send(200, self.state.stats())
        elif u.path == "/_rules":
            self.send(200, self.state.rules_view())
        elif u.path == "/ping":
            self.state.record(self.entry(u.path, query_dict(u.query), 204))
            self.send(204, headers=[("X-Influxdb-Version", "cityhub-test-responder")])
        else:
            self.not_found()

    def route_post(self):
        u = urlsplit(self.path)
        if u.path == "/_rules":
            body = self.read_body()
            if body is None:
                return
            try:
                rules = check_rules(json.loads(body.decode("utf-8")))
            except (ValueError, UnicodeDecodeError) as e:
                self.send(400, {"error": str(e)})
                return
            with self.state.lock:
                self.state.rules = rules
            self.send(200, {"rules": len(rules)})
        elif u.path in WRITE_PATHS:
            self.write(u.path, query_dict(u.query))
        else:
            self.not_found()

    def write(self, path, query):
        st = self.state
        raw = self.read_body()
        if raw is None:
            return
        gz = self.headers.get("Content-Encoding", "").strip().lower() == "gzip"
        e = self.entry(path, query, 0, gzip=gz, wire_bytes=len(raw))
        v2 = path == "/api/v2/write"

        def answer(status, body=b"", headers=(), **kw):
            e.update(status=status, **kw)
            st.record(e)
            self.send(status, body, headers)

        if v2 and st.token is not None and self.headers.get("Authorization") != "Token " + st.token:
            return answer(401, {"code": "unauthorized", "message": "unauthorized access"})
        if not v2 and st.basic is not None and self.headers.get("Authorization") != st.basic:
            return answer(401, {"error": "authorization failed"})
        if not v2 and not query.get("db"):
            return answer(400, {"error": "database is required"})
        if v2 and not query.get("bucket"):
            return answer(400, {"code": "invalid", "message": "bucket not specified"})
        if gz:
            try:
                body = gzip.decompress(raw)
            except (OSError, EOFError, zlib.error):
                return answer(400, {"error": "unable to decompress the gzip body"})
        else:
            body = raw
        text = body.decode("utf-8", "surrogateescape")
        lines = [ln for ln in text.split("\n") if ln.strip() != ""]
        e.update(lines=len(lines), bytes=len(body))
        rule, idx = st.pick_rule(path, lines, len(body))
        if rule is None:
            st.store_lines(lines)
            return answer(204, action="stored")
        act = rule["action"]
        e.update(rule=idx, action=act)
        if act == "reset":
            e.update(status=0)
            st.record(e)
            self.reset()
            return
        if act == "stall":
            time.sleep(float(rule.get("stall_s", 5)))
            st.store_lines(lines)
            return answer(204)
        first = next((ln for ln in lines if "_re" in rule and rule["_re"].search(ln)), None)
        if act == "partial":
            keep = [ln for ln in lines if not rule["_re"].search(ln)]
            dropped = len(lines) - len(keep)
            st.store_lines(keep)
            reason = rule.get("reason", "unable to parse '%s': invalid field format" % first)
            body = rule.get("body", {"error": "partial write: %s dropped=%d" % (reason, dropped)})
            return answer(400, body)
        status = rule.get("status", 500)
        reason = rule.get("reason", REASONS.get(status, "error %d" % status))
        if "body" in rule:
            out = rule["body"]
        elif 200 <= status <= 299:
            out = b""
        elif first is not None:
            code = V2_CODES.get(status, "invalid")
            out = {"code": code, "message": "unable to parse '%s': %s" % (first, reason)}
        else:
            out = {"error": reason}
        headers = []
        if "retry_after" in rule:
            ra = rule["retry_after"]
            headers.append(("Retry-After", str(int(ra)) if float(ra).is_integer() else str(ra)))
        if rule.get("store"):
            st.store_lines(lines)
        return answer(status, out, headers)


def query_dict(q):
    return {k: v[0] for k, v in parse_qs(q, keep_blank_values=True).items()}


def client_cn(sock):
    try:
        cert = sock.getpeercert()
    except (AttributeError, ValueError, ssl.SSLError):
        return None
    for rdn in (cert or {}).get("subject", ()):
        for k, v in rdn:
            if k == "commonName":
                return v
    return None


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, addr, state, tls):
        self.state = state
        self.tls = tls
        super().__init__(addr, Handler)

    def process_request(self, request, client_address):
        with self.state.lock:
            self.state.connections += 1
            conn = self.state.connections
        t = threading.Thread(target=self.serve_conn, args=(request, client_address, conn), daemon=True)
        t.start()

    def serve_conn(self, sock, addr, conn):
        cn = None
        try:
            if self.tls:
                sock.settimeout(10)
                try:
                    sock = self.tls.wrap_socket(sock, server_side=True)
                except (OSError, ssl.SSLError, ValueError):
                    sock.close()  # handshake failed (no client certificate, ...)
                    return
                sock.settimeout(None)
                cn = client_cn(sock)
            Handler(sock, addr, self, conn, cn)
        except OSError:
            pass  # the client went away
        except Exception:
            traceback.print_exc(file=sys.stderr)
        finally:
            try:
                sock.close()
            except OSError:
                pass


def main():
    p = argparse.ArgumentParser(description="scriptable InfluxDB stand-in for tests")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--bind", default="127.0.0.1")
    p.add_argument("--tls-cert")
    p.add_argument("--tls-key")
    p.add_argument("--client-ca")
    p.add_argument("--log")
    p.add_argument("--store")
    p.add_argument("--rules")
    p.add_argument("--token")
    p.add_argument("--basic")
    args = p.parse_args()
    if bool(args.tls_cert) != bool(args.tls_key):
        p.error("--tls-cert and --tls-key go together")
    if args.client_ca and not args.tls_cert:
        p.error("--client-ca needs --tls-cert and --tls-key")
    if args.basic is not None and ":" not in args.basic:
        p.error("--basic wants USER:PASS")
    state = State(args)
    if args.rules:
        try:
            with open(args.rules, encoding="utf-8") as f:
                state.rules = check_rules(json.load(f))
        except (OSError, ValueError) as e:
            p.error("--rules %s: %s" % (args.rules, e))
    tls = None
    if args.tls_cert:
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(args.tls_cert, args.tls_key)
        if args.client_ca:
            tls.verify_mode = ssl.CERT_REQUIRED
            tls.load_verify_locations(args.client_ca)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    srv = Server((args.bind, args.port), state, tls)
    print("PORT %d" % srv.server_address[1], flush=True)
    try:
        srv.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
