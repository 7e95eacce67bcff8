#!/usr/bin/env python3
"""Request/response load for bench/run.sh (Python 3 standard library only).

  rr.py server --port P [--bind ADDR] --ready FILE
      Listens on TCP and UDP [::]:P (IPv4 and IPv6), or ADDR:P. Every byte received on
      a TCP connection is sent back on it; a connection is closed when the
      peer closes it. Every UDP datagram is sent back to where it came from.
      FILE is created once both sockets are bound.

  rr.py client --host ADDR --port P --mode rr|crr|udp_rr --time T
      rr:  one connection, then 1-byte request / 1-byte response for T
           seconds (the TCP_RR pattern).
      crr: a new connection for every 1-byte request / response, closed by
           the client (the TCP_CRR pattern).
      udp_rr: one connected UDP socket, then request / response datagrams
           for T seconds (the UDP_RR pattern); each carries an 8-byte
           sequence number so that a late reply is not taken for the
           current one. A request without a reply within 0.2 s counts as
           lost and the next one is sent.
      Prints one JSON object: transactions, seconds, tps, p50_us, p99_us
      (udp_rr also lost). Exits 2 if the first connection (or, for udp_rr,
      the first reply) cannot be had within 1.5 s, 3 if a transaction
      stalls for more than 2 s (udp_rr: 2 s without any reply).

Latency is measured per transaction with a monotonic clock: for rr and
udp_rr from sending the request to receiving the response, for crr from
connect() to the response. Both ends use TCP_NODELAY.
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
    fam = socket.AF_INET6 if ":" in args.bind else socket.AF_INET
    ls = socket.socket(fam, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if args.bind == "::":
        ls.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    ls.bind((args.bind, args.port))
    ls.listen(1024)
    ls.setblocking(False)
    sel.register(ls, selectors.EVENT_READ, None)
    # A UDP socket bound to the wildcard address answers from the address
    # the route picks, which need not be the one the client sent to: bind
    # the address the clients use (--bind) for UDP.
    us = socket.socket(fam, socket.SOCK_DGRAM)
    if args.bind == "::":
        us.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    us.bind((args.bind, args.port))
    us.setblocking(False)
    sel.register(us, selectors.EVENT_READ, None)
    tmp = args.ready + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % os.getpid())
    os.rename(tmp, args.ready)
    while True:
        for key, _ in sel.select():
            s = key.fileobj
            if s is us:
                while True:
                    try:
                        data, peer = us.recvfrom(65536)
                    except (BlockingIOError, InterruptedError):
                        break
                    except OSError:
                        break
                    try:
                        us.sendto(data, peer)
                    except OSError:
                        pass
                continue
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


UDP_WAIT = 0.2


def udp_client(args):
    """The UDP_RR pattern; see the module comment."""
    clock = time.perf_counter_ns
    fam = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_DGRAM)
    s.connect((args.host, args.port))
    lat = []
    lost = 0
    seq = 0
    start = clock()
    end = start + int(args.time * 1e9)
    last_reply = start
    first = True
    while True:
        t0 = clock()
        if not first and t0 >= end:
            break
        seq += 1
        req = seq.to_bytes(8, "big")
        try:
            s.send(req)
        except OSError:
            pass  # an ICMP error from an earlier request: try again
        wait_until = t0 + int((CONNECT_TIMEOUT if first else UDP_WAIT) * 1e9)
        got = False
        while True:
            left = (wait_until - clock()) / 1e9
            if left <= 0:
                break
            s.settimeout(left)
            try:
                data = s.recv(64)
            except (socket.timeout, TimeoutError):
                break
            except OSError:
                continue
            if data == req:
                got = True
                break
        now = clock()
        if got:
            lat.append(now - t0)
            last_reply = now
            first = False
            continue
        if first:
            print(json.dumps({"error": "no reply within %.1f s" % CONNECT_TIMEOUT}))
            return 2
        lost += 1
        if now - last_reply > STALL_TIMEOUT * 1e9:
            print(json.dumps({"error": "no reply for %.1f s after %d transactions"
                              % (STALL_TIMEOUT, len(lat))}))
            return 3
    s.close()
    seconds = (clock() - start) / 1e9
    lat.sort()
    print(json.dumps({
        "mode": args.mode,
        "transactions": len(lat),
        "lost": lost,
        "seconds": round(seconds, 3),
        "tps": round(len(lat) / seconds, 1),
        "p50_us": round(percentile(lat, 50) / 1000.0, 1),
        "p99_us": round(percentile(lat, 99) / 1000.0, 1),
    }))
    return 0


def client(args):
    if args.mode == "udp_rr":
        return udp_client(args)
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
    sp.add_argument("--bind", default="::")
    sp.add_argument("--ready", required=True)
    cp = sub.add_parser("client")
    cp.add_argument("--host", required=True)
    cp.add_argument("--port", type=int, required=True)
    cp.add_argument("--mode", choices=["rr", "crr", "udp_rr"], required=True)
    cp.add_argument("--time", type=float, required=True)
    args = ap.parse_args()
    if args.cmd == "server":
        return server(args)
    return client(args)


if __name__ == "__main__":
    sys.exit(main())
