"""UDP test helper for tests/udp.rs and friends: echo servers and clients
that report the addresses and ports they saw.

Usage: python3 udp_helper.py serve SPEC | client OPS   (both JSON)

serve: SPEC {"ready": FILE, "listen": [{"host": H, "port": P}, ...]}.
  Every datagram is sent back unchanged to where it came from, from the
  listening socket, and reported as one line
  "RESULT {"port": P, "peer": ADDR, "peer_port": N, "len": N, "sha": HEX}".
  FILE is created once every socket is bound. A listener ends after IDLE
  seconds without a datagram; the server ends when all have.

client: OPS, a list of operations, each reported as one "RESULT <json>"
  line; the exit status is 1 if one of them raised. Every wait is bounded.
  echo     {"host", "port", "sizes": [N, ...], "bind"?, "bind_port"?,
            "within"?: seconds per datagram (default 5), "wait"?: seconds
            before sending again (default 0.25)}
           One unconnected socket (bound to bind:bind_port if given) sends
           a random datagram of each size until the same bytes come back;
           reports "local_port" and, per size, where the reply came from,
           how many sends it took and how long ("from", "from_port",
           "tries", "secs"), or "error" (then the sizes after it are not
           tried, and the exit status is 1).
  refused  {"host", "port", "within"}: a connected socket sends a datagram
           every 0.1 s until one fails with ECONNREFUSED (an ICMP port
           unreachable came back); "outcome" is "refused", "reply" (an
           answer came) or "timeout", with "secs".
"""
import hashlib
import os
import socket
import sys
import threading
import time

sys.dont_write_bytecode = True  # nothing left in the rig's temp dir
from helper_common import bound, err_name, family, main, result, touch, unmap  # noqa: E402

IDLE = 30.0
BUF = 65536


def echo_loop(s, port):
    s.settimeout(IDLE)
    while True:
        try:
            data, peer = s.recvfrom(BUF)
        except (TimeoutError, socket.timeout):
            return
        except OSError as e:
            # An ICMP error for an earlier reply (the client went away).
            print("ERROR port %d: %s" % (port, err_name(e)), file=sys.stderr, flush=True)
            continue
        try:
            s.sendto(data, peer)
        except OSError as e:
            print("ERROR port %d: reply: %s" % (port, err_name(e)), file=sys.stderr, flush=True)
        result(port=port, peer=unmap(peer[0]), peer_port=peer[1], len=len(data),
               sha=hashlib.sha256(data).hexdigest())


def serve(spec):
    threads = []
    for l in spec["listen"]:
        s = bound(l["host"], l["port"], socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        threads.append(threading.Thread(target=echo_loop, args=(s, l["port"]), daemon=True))
    for t in threads:
        t.start()
    touch(spec["ready"])
    for t in threads:
        t.join()


def op_echo(o):
    host, port = o["host"], o["port"]
    within, wait = o.get("within", 5.0), o.get("wait", 0.25)
    s = socket.socket(family(host), socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    if "bind" in o or "bind_port" in o:
        s.bind((o.get("bind", ""), o.get("bind_port", 0)))
    else:
        s.bind(("::" if family(host) == socket.AF_INET6 else "0.0.0.0", 0))
    local_port = s.getsockname()[1]
    replies = []
    try:
        for size in o["sizes"]:
            data = os.urandom(size)
            t0 = time.monotonic()
            deadline = t0 + within
            tries, got, last = 0, None, "timeout"
            while got is None and time.monotonic() < deadline:
                s.sendto(data, (host, port))
                tries += 1
                until = min(deadline, time.monotonic() + wait)
                while time.monotonic() < until:
                    s.settimeout(max(0.001, until - time.monotonic()))
                    try:
                        back, peer = s.recvfrom(BUF)
                    except (TimeoutError, socket.timeout):
                        break
                    except OSError as e:
                        last = err_name(e)
                        time.sleep(0.05)
                        break
                    if back == data:
                        got = peer
                        break
                    last = "a different %d-byte datagram from %s" % (len(back), peer[:2])
            r = {"size": size, "tries": tries, "secs": time.monotonic() - t0}
            if got is None:
                r["error"] = "no echo within %.1f s (last: %s)" % (within, last)
                replies.append(r)
                break  # the next sizes would fail the same way, slower
            r["from"] = unmap(got[0])
            r["from_port"] = got[1]
            replies.append(r)
    finally:
        s.close()
    return {"local_port": local_port, "replies": replies}


def op_refused(o):
    host, port = o["host"], o["port"]
    s = socket.socket(family(host), socket.SOCK_DGRAM)
    s.connect((host, port))
    t0 = time.monotonic()
    outcome = "timeout"
    try:
        while time.monotonic() - t0 < o["within"]:
            try:
                s.send(b"x")
                s.settimeout(0.1)
                s.recv(BUF)
                outcome = "reply"
                break
            except ConnectionRefusedError:
                outcome = "refused"
                break
            except (TimeoutError, socket.timeout):
                continue
    finally:
        s.close()
    return {"outcome": outcome, "secs": time.monotonic() - t0}


OPS = {"echo": op_echo, "refused": op_refused}


def echo_failed(facts):
    """An echo that raised nothing failed all the same if a datagram did not
    come back."""
    return any("error" in r for r in facts.get("replies", []))


if __name__ == "__main__":
    main(serve, OPS, echo_failed)
