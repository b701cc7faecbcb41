#!/usr/bin/env python3
"""Small network probes and servers for the network end-to-end tests.

  nettool.py connect HOST PORT [SRC]   print "connected: FIRST-LINE" or "failed: WHY"
  nettool.py fetch URL                 print the body, or "failed: WHY"
  nettool.py resolve NAME              print the IPv4 address, or "failed: WHY"
  nettool.py serve ADDR PORT TEXT      TCP server answering TEXT to each connection
  nettool.py serve-abstract NAME TEXT  the same on an abstract unix socket
  nettool.py connect-abstract NAME     print "connected: ..." or "failed: ..."
  nettool.py dns ADDR NAME=IP...       a tiny authoritative DNS server (A only)
  nettool.py dns-forward ADDR UPSTREAM a UDP DNS forwarder (like a local stub resolver)
  nettool.py echo ADDR PORT            TCP echo server (for round-trip times)
  nettool.py rtt HOST PORT N           median TCP round trip in microseconds over N pings
"""
import socket
import struct
import sys
import threading
import urllib.request

TIMEOUT = 3


def connect(host, port, src=None):
    try:
        s = socket.socket()
        s.settimeout(TIMEOUT)
        if src:
            s.bind((src, 0))
        s.connect((host, int(port)))
        print("connected: " + s.recv(200).decode(errors="replace").strip())
    except Exception as e:  # noqa: BLE001 - the probe reports any failure
        print("failed: %s" % e)


def fetch(url):
    try:
        # Long enough for SYN retries when a hundred logins fetch at once.
        with urllib.request.urlopen(url, timeout=15) as r:
            print(r.read().decode(errors="replace").strip())
    except Exception as e:  # noqa: BLE001
        print("failed: %s" % e)


def resolve(name):
    try:
        print(socket.getaddrinfo(name, None, socket.AF_INET)[0][4][0])
    except Exception as e:  # noqa: BLE001
        print("failed: %s" % e)


def serve_sock(s, text):
    s.listen(16)
    print("listening", flush=True)
    while True:
        c, _ = s.accept()
        try:
            c.sendall(text.encode() + b"\n")
        finally:
            c.close()


def serve(addr, port, text):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, int(port)))
    serve_sock(s, text)


def serve_abstract(name, text):
    s = socket.socket(socket.AF_UNIX)
    s.bind("\0" + name)
    serve_sock(s, text)


def connect_abstract(name):
    try:
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(TIMEOUT)
        s.connect("\0" + name)
        print("connected: " + s.recv(200).decode(errors="replace").strip())
    except Exception as e:  # noqa: BLE001
        print("failed: %s" % e)


def qname(data):
    labels, i = [], 12
    while data[i]:
        n = data[i]
        labels.append(data[i + 1:i + 1 + n].decode().lower())
        i += n + 1
    return ".".join(labels), i + 5


def answer(query, table):
    name, end = qname(query)
    qtype = struct.unpack("!H", query[end - 4:end - 2])[0]
    ip = table.get(name.rstrip("."))
    flags = 0x8180 if ip else 0x8183
    ancount = 1 if ip and qtype == 1 else 0
    head = query[:2] + struct.pack("!HHHHH", flags, 1, ancount, 0, 0)
    out = head + query[12:end]
    if ancount:
        out += b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 60, 4) + socket.inet_aton(ip)
    return out


def dns(addr, pairs):
    table = dict(p.split("=", 1) for p in pairs)
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.bind((addr, 53))
    print("listening", flush=True)
    while True:
        q, peer = u.recvfrom(512)
        try:
            u.sendto(answer(q, table), peer)
        except Exception:  # noqa: BLE001 - a malformed query gets no answer
            pass


def dns_forward(addr, upstream):
    def udp():
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.bind((addr, 53))
        while True:
            q, peer = u.recvfrom(512)
            f = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            f.settimeout(TIMEOUT)
            try:
                f.sendto(q, (upstream, 53))
                u.sendto(f.recvfrom(512)[0], peer)
            except Exception:  # noqa: BLE001
                pass
            f.close()

    threading.Thread(target=udp, daemon=True).start()
    print("listening", flush=True)
    threading.Event().wait()


def echo(addr, port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, int(port)))
    s.listen(4)
    print("listening", flush=True)
    while True:
        c, _ = s.accept()
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        while True:
            d = c.recv(64)
            if not d:
                break
            c.sendall(d)
        c.close()


def rtt(host, port, n):
    import time
    c = socket.create_connection((host, int(port)), timeout=TIMEOUT)
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    times = []
    for _ in range(int(n)):
        t = time.perf_counter_ns()
        c.sendall(b"x")
        c.recv(64)
        times.append((time.perf_counter_ns() - t) / 1000)
    times.sort()
    print("%.1f" % times[len(times) // 2])


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    {
        "connect": connect,
        "fetch": fetch,
        "resolve": resolve,
        "serve": serve,
        "serve-abstract": serve_abstract,
        "connect-abstract": connect_abstract,
        "dns": lambda a, *p: dns(a, p),
        "dns-forward": dns_forward,
        "echo": echo,
        "rtt": rtt,
    }[cmd](*args)


if __name__ == "__main__":
    main()
