#!/usr/bin/env python3
# notify-reader.py SOCKET OUT — stands in for systemd's notify socket: binds
# a Unix datagram socket at SOCKET and appends every message it receives to
# OUT, one message per line with its newlines turned into " | ". Runs until
# killed. Used by tests/fleetcertd-lifecycle.sh.
import socket
import sys

path, out = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
with open(out, "ab", buffering=0) as f:
    while True:
        data = s.recv(65536)
        f.write(data.rstrip(b"\n").replace(b"\n", b" | ") + b"\n")
