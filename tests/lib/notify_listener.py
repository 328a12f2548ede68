#!/usr/bin/python3
# tests/lib/notify_listener.py SOCKET OUT — the notification socket of a
# service manager, for tests: binds the unix datagram socket SOCKET and
# appends each line of every message it receives to OUT as
# "EPOCH_SECONDS LINE" (READY=1, STATUS=..., WATCHDOG=1, STOPPING=1), until
# killed. Standard library only.
import socket
import sys
import time

path, out = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
with open(out, "a", buffering=1) as f:
    print("listening on", path, flush=True)
    while True:
        data = s.recv(65536)
        now = time.time()
        for line in data.decode("utf-8", "replace").split("\n"):
            if line:
                f.write("%.3f %s\n" % (now, line))
