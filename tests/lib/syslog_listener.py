#!/usr/bin/env python3
"""Minimal syslog sink for tests: binds a datagram unix socket at argv[1]
and appends every message (with its <PRI> prefix) as one line to argv[2]."""
import os
import socket
import sys

path, out = sys.argv[1], sys.argv[2]
try:
    os.unlink(path)
except FileNotFoundError:
    pass
sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
sock.bind(path)
os.chmod(path, 0o666)
with open(out, "a", buffering=1) as f:
    while True:
        msg = sock.recv(65536).decode(errors="replace").rstrip("\n\0")
        f.write(msg.replace("\n", " ") + "\n")
