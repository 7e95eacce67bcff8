#!/usr/bin/env python3
"""Request/response load for bench/run.sh (Python 3 standard library only).

  rr.py server --port P --ready FILE
      Listens on [::]:P (IPv4 and IPv6). Every byte received is sent back on
      the same connection; a connection is closed when the peer closes it.
      FILE is created once the socket listens.

  rr.py client --host ADDR --port P --mode rr|crr --time T
      rr:  one connection, then 1-byte request / 1-byte response for T
           seconds (the TCP_RR pattern).
      crr: a new connection for every 1-byte request / response, closed by
           the client (the TCP_CRR pattern).
      Prints one JSON object: transactions, seconds, tps, p50_us, p99_us.
      Exits 2 if the first connection cannot be made within 1.5 s, 3 if a
      transaction stalls for more than 2 s.

Latency is measured per transaction with a monotonic clock: for rr from
sending the request to receiving the response, for crr from connect() to
the response. Both ends use TCP_NODELAY.
"""

import argparse
import json
import math
import os
import selectors
import socket
import sys
import time

CONNECT_TIMEOUT = 1.5
STALL_TIMEOUT = 2.0


def server(args):
    sel = selectors.DefaultSelector()
    ls = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    ls.bind(("::", args.port))
    ls.listen(1024)
    ls.setblocking(False)
    sel.register(ls, selectors.EVENT_READ, None)
    tmp = args.ready + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % os.getpid())
    os.rename(tmp, args.ready)
    while True:
        for key, _ in sel.select():
            s = key.fileobj
            if s is ls:
                while True:
                    try:
                        c, _ = ls.accept()
                    except (BlockingIOError, InterruptedError):
                        break
                    except OSError:
                        break
                    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    c.setblocking(False)
                    sel.register(c, selectors.EVENT_READ, None)
                continue
            try:
                data = s.recv(65536)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                data = b""
            if not data:
                sel.unregister(s)
                s.close()
                continue
            try:
                s.sendall(data)
            except OSError:
                sel.unregister(s)
                s.close()


def percentile(sorted_values, p):
    if not sorted_values:
        return None
    # nearest rank
    i = max(0, math.ceil(p / 100.0 * len(sorted_values)) - 1)
    return sorted_values[min(i, len(sorted_values) - 1)]


def connect(host, port):
    s = socket.create_connection((host, port), timeout=CONNECT_TIMEOUT)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.settimeout(STALL_TIMEOUT)
    return s


def transact(s):
    s.sendall(b"x")
    if not s.recv(1):
        raise ConnectionError("connection closed by the server")


def client(args):
    clock = time.perf_counter_ns
    lat = []
    try:
        first = connect(args.host, args.port)
    except OSError as e:
        print(json.dumps({"error": "connect: %s" % e}))
        return 2
    start = clock()
    end = start + int(args.time * 1e9)
    try:
        if args.mode == "rr":
            s = first
            while True:
                t0 = clock()
                if t0 >= end:
                    break
                transact(s)
                lat.append(clock() - t0)
            s.close()
        else:
            s = first
            t0 = start
            while True:
                transact(s)
                s.close()
                lat.append(clock() - t0)
                t0 = clock()
                if t0 >= end:
                    break
                s = connect(args.host, args.port)
    except OSError as e:
        print(json.dumps({"error": "after %d transactions: %s" % (len(lat), e)}))
        return 3
    seconds = (clock() - start) / 1e9
    lat.sort()
    print(json.dumps({
        "mode": args.mode,
        "transactions": len(lat),
        "seconds": round(seconds, 3),
        "tps": round(len(lat) / seconds, 1),
        "p50_us": round(percentile(lat, 50) / 1000.0, 1),
        "p99_us": round(percentile(lat, 99) / 1000.0, 1),
    }))
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    sp = sub.add_parser("server")
    sp.add_argument("--port", type=int, required=True)
    sp.add_argument("--ready", required=True)
    cp = sub.add_parser("client")
    cp.add_argument("--host", required=True)
    cp.add_argument("--port", type=int, required=True)
    cp.add_argument("--mode", choices=["rr", "crr"], required=True)
    cp.add_argument("--time", type=float, required=True)
    args = ap.parse_args()
    if args.cmd == "server":
        return server(args)
    return client(args)


if __name__ == "__main__":
    sys.exit(main())
