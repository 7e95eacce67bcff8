"""TCP test helper for tests/tcp.rs: servers and clients that report results.

Usage: python3 tcp_helper.py serve SPEC | client OPS   (both JSON)

Every result is one line "RESULT <json>" on stdout. Every socket operation is
bounded (IDLE seconds of silence is a failure, connect() CONNECT seconds), so
a stalled transfer ends with a message instead of hanging.
"""
import hashlib
import os
import random
import resource
import socket
import struct
import sys
import threading
import time

sys.dont_write_bytecode = True  # nothing left in the rig's temp dir
from helper_common import bound, err_name, family, main, result, touch, unmap  # noqa: E402

IDLE = 10.0
CONNECT = 5.0
ACCEPT = 60.0


def connect(host, port, retry=0.0, timeout=CONNECT):
    """Connects, retrying ECONNREFUSED for `retry` seconds."""
    deadline = time.monotonic() + retry
    while True:
        s = socket.socket(family(host), socket.SOCK_STREAM)
        s.settimeout(timeout)
        try:
            s.connect((host, port))
        except ConnectionRefusedError:
            s.close()
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.05)
            continue
        except BaseException:
            s.close()
            raise
        s.settimeout(IDLE)
        return s


def drain(s, keep=False, bufsize=1 << 20, pause=0.0):
    """Reads to EOF: (sha256 hex, length, the bytes if `keep`); sleeps
    `pause` seconds after each read (a slow reader)."""
    h = hashlib.sha256()
    n = 0
    kept = bytearray()
    buf = bytearray(bufsize)
    view = memoryview(buf)
    while True:
        k = s.recv_into(buf)
        if k == 0:
            return h.hexdigest(), n, bytes(kept)
        h.update(view[:k])
        n += k
        if keep:
            kept += view[:k]
        if pause:
            time.sleep(pause)


def send_file(s, path):
    with open(path, "rb") as f:
        s.sendfile(f)


def linger0(s):
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def echo_once(s, size=1024):
    data = os.urandom(size)
    s.sendall(data)
    got = b""
    while len(got) < size:
        k = s.recv(size - len(got))
        if not k:
            raise ConnectionError("EOF in the middle of an echo")
        got += k
    if got != data:
        raise ValueError("echo came back different")


def close_gracefully(s):
    """FIN, then wait for the peer's FIN, then close."""
    try:
        s.shutdown(socket.SHUT_WR)
        drain(s, bufsize=65536)
    finally:
        s.close()


def wait_file(path, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError("no %s within %ss" % (path, timeout))
        time.sleep(0.02)


def peer_of(c):
    return unmap(c.getpeername()[0])


# ---------------------------------------------------------------------------
# Servers: each handler gets the accepted socket and its listener's spec and
# returns a dict of facts (raising on failure).
# ---------------------------------------------------------------------------


def h_sink(c, l):
    sha, n, _ = drain(c)
    c.sendall(("%s %d\n" % (sha, n)).encode())
    return {"sha": sha, "len": n}


def h_source(c, l):
    send_file(c, l["file"])
    c.shutdown(socket.SHUT_WR)
    _, n, _ = drain(c, bufsize=65536)
    return {"sent": os.path.getsize(l["file"]), "got": n}


def h_burst_source(c, l):
    """Sends the file in bursts: chunks of `min_chunk`..`max_chunk` bytes,
    each followed by a pause of `min_pause_ms`..`max_pause_ms`; then FIN,
    and reads to the peer's EOF."""
    rng = random.Random(l.get("seed"))
    chunks = 0
    with open(l["file"], "rb") as f:
        while True:
            data = f.read(rng.randint(l["min_chunk"], l["max_chunk"]))
            if not data:
                break
            c.sendall(data)
            chunks += 1
            time.sleep(rng.randint(l["min_pause_ms"], l["max_pause_ms"]) / 1000.0)
    c.shutdown(socket.SHUT_WR)
    _, n, _ = drain(c, bufsize=65536)
    return {"sent": os.path.getsize(l["file"]), "chunks": chunks, "got": n}


def h_late_answer(c, l):
    """Reads the request to EOF (the peer half-closed), waits `delay`
    seconds, then answers with the request reversed, `repeat` times, and
    closes."""
    _, n, data = drain(c, keep=True, bufsize=65536)
    if n != l["size"]:
        raise ValueError("got %d bytes before EOF, want %d" % (n, l["size"]))
    time.sleep(l["delay"])
    c.sendall(data[::-1] * l["repeat"])
    c.shutdown(socket.SHUT_WR)
    return {"answered": n * l["repeat"]}


def h_reverse_echo(c, l):
    _, n, data = drain(c, keep=True, bufsize=65536)
    if n != l["size"]:
        raise ValueError("got %d bytes before EOF, want %d" % (n, l["size"]))
    c.sendall(data[::-1])
    return {}


def h_send_first(c, l):
    data = os.urandom(l["size"])
    c.sendall(data)
    c.shutdown(socket.SHUT_WR)
    _, n, got = drain(c, keep=True, bufsize=65536)
    if got != data[::-1] * 2:
        raise ValueError("after our FIN: got %d bytes, want %d (or wrong data)" % (n, 2 * len(data)))
    return {}


def h_echo(c, l):
    while True:
        b = c.recv(65536)
        if not b:
            return {}
        c.sendall(b)


def h_rst(c, l):
    c.recv(1)
    linger0(c)
    return {}


def await_close(s):
    """Sends one byte, then reads until the peer's close shows: "eof" for
    an orderly close, else the error's name (ECONNRESET for a reset)."""
    s.sendall(b"g")
    t0 = time.monotonic()
    outcome = "?"
    try:
        while True:
            if not s.recv(4096):
                outcome = "eof"
                break
    except Exception as e:
        outcome = err_name(e)
    return {"outcome": outcome, "secs": time.monotonic() - t0}


def h_rst_expect(c, l):
    return await_close(c)


HANDLERS = {
    "sink": h_sink,
    "source": h_source,
    "burst_source": h_burst_source,
    "late_answer": h_late_answer,
    "reverse_echo": h_reverse_echo,
    "send_first": h_send_first,
    "echo": h_echo,
    "rst": h_rst,
    "rst_expect": h_rst_expect,
}


def handle(c, l, facts, errors):
    try:
        c.settimeout(l.get("idle", IDLE))
        peer = peer_of(c)
        f = HANDLERS[l["role"]](c, l)
        f["peer"] = peer
        facts.append(f)
    except Exception as e:
        errors.append("%s on port %d: %s" % (l["role"], l["port"], err_name(e)))
        print("ERROR", errors[-1], file=sys.stderr, flush=True)
    finally:
        c.close()


def accept_loop(s, l):
    """Serves `count` connections (forever if null), then reports. The
    role "hold" keeps each connection open and never reads from it."""
    count = l.get("count")
    facts, errors, workers, held = [], [], [], []
    s.settimeout(ACCEPT if count is not None else None)
    try:
        while count is None or len(workers) + len(held) < count:
            c, _ = s.accept()
            if l["role"] == "hold":
                held.append(c)
                continue
            t = threading.Thread(target=handle, args=(c, l, facts, errors), daemon=True)
            t.start()
            workers.append(t)
    except Exception as e:
        errors.append("accept on port %d: %s after %d" % (l["port"], err_name(e), len(workers)))
    # Handlers may take longer by design: `delay` (late_answer) or `idle`.
    deadline = time.monotonic() + 3 * IDLE + l.get("delay", 0) + l.get("idle", 0)
    for t in workers:
        t.join(max(0.0, deadline - time.monotonic()))
    if any(t.is_alive() for t in workers):
        errors.append("handlers still running on port %d" % l["port"])
    result(port=l["port"], role=l["role"], n=len(workers), ok=len(facts),
           facts=facts[:8], errors=errors[:5])


def serve(spec):
    listeners = []
    for l in spec["listen"]:
        s = bound(l["host"], l["port"], socket.SOCK_STREAM)
        s.listen(1024)
        listeners.append((s, l))
    threads = [threading.Thread(target=accept_loop, args=sl) for sl in listeners]
    for t in threads:
        t.start()
    touch(spec["ready"])
    for t in threads:
        t.join()


# ---------------------------------------------------------------------------
# Client operations: each returns a dict of facts (raising on failure).
# ---------------------------------------------------------------------------


def op_upload(o):
    s = connect(o["host"], o["port"], o.get("retry", 0.0))
    try:
        t0 = time.monotonic()
        send_file(s, o["file"])
        s.shutdown(socket.SHUT_WR)
        _, _, reply = drain(s, keep=True, bufsize=4096)
        secs = time.monotonic() - t0
    finally:
        s.close()
    words = reply.decode(errors="replace").split()
    if len(words) != 2:
        raise ValueError("server replied %r instead of 'SHA LEN'" % reply[:200])
    return {"sha": words[0], "len": int(words[1]), "secs": secs}


def op_download(o):
    """Reads to EOF; with `read_size` and `read_pause_ms`, a slow reader:
    reads of at most `read_size` bytes with a pause after each."""
    s = connect(o["host"], o["port"], o.get("retry", 0.0))
    try:
        t0 = time.monotonic()
        sha, n, _ = drain(s, bufsize=o.get("read_size", 1 << 20),
                          pause=o.get("read_pause_ms", 0) / 1000.0)
        secs = time.monotonic() - t0
    finally:
        s.close()
    return {"sha": sha, "len": n, "secs": secs}


def op_refused(o):
    t0 = time.monotonic()
    try:
        s = connect(o["host"], o["port"])
    except Exception as e:
        return {"err": err_name(e), "secs": time.monotonic() - t0}
    s.close()
    return {"err": "connected", "secs": time.monotonic() - t0}


def op_until_refused(o):
    """Connects every 0.05 s until a connection is refused, for at most
    `within` seconds (connections that get through are closed)."""
    t0 = time.monotonic()
    last = "none"
    while time.monotonic() - t0 < o["within"]:
        try:
            s = connect(o["host"], o["port"], timeout=1.0)
        except ConnectionRefusedError:
            return {"refused": True, "secs": time.monotonic() - t0}
        except Exception as e:
            last = err_name(e)
        else:
            s.close()
            last = "connected"
        time.sleep(0.05)
    return {"refused": False, "secs": time.monotonic() - t0, "last": last}


def op_rst_recv(o):
    s = connect(o["host"], o["port"])
    try:
        return await_close(s)
    finally:
        s.close()


def op_rst_send(o):
    s = connect(o["host"], o["port"])
    g = s.recv(1)
    linger0(s)
    s.close()
    return {"greeting": g.decode(errors="replace")}


def op_halfclose(o):
    """n connections at once; each sends `size` bytes, FIN, reads the reply."""
    n, size = o["n"], o["size"]
    socks = []
    try:
        for i in range(n):
            try:
                socks.append(connect(o["host"], o["port"]))
            except Exception as e:
                raise ConnectionError("connection %d of %d: %s" % (i + 1, n, err_name(e)))
    except Exception:
        for s in socks:
            s.close()
        raise
    outcome = [None] * n

    def work(i, s):
        try:
            data = os.urandom(size)
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
            _, k, reply = drain(s, keep=True, bufsize=65536)
            if reply != data[::-1]:
                raise ValueError("reply of %d bytes is not the reversed %d" % (k, size))
            outcome[i] = "ok"
        except Exception as e:
            outcome[i] = err_name(e)
        finally:
            s.close()

    return run_all(work, socks, outcome)


def op_halfclose_rev(o):
    """n connections at once; the server sends and FINs first, then each
    client sends back twice the reversed data and closes."""
    n = o["n"]
    socks = [connect(o["host"], o["port"]) for _ in range(n)]
    outcome = [None] * n

    def work(i, s):
        try:
            _, _, data = drain(s, keep=True, bufsize=65536)
            if len(data) != o["size"]:
                raise ValueError("got %d bytes before EOF, want %d" % (len(data), o["size"]))
            s.sendall(data[::-1] * 2)
            s.shutdown(socket.SHUT_WR)
            outcome[i] = "ok"
        except Exception as e:
            outcome[i] = err_name(e)
        finally:
            s.close()

    return run_all(work, socks, outcome)


def run_all(work, socks, outcome):
    threads = [threading.Thread(target=work, args=(i, s), daemon=True) for i, s in enumerate(socks)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 3 * IDLE
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    bad = sorted(set(str(x) for x in outcome if x != "ok"))
    return {"ok": outcome.count("ok"), "n": len(socks), "errors": bad[:5]}


def op_echo_batch(o):
    """n connections open together, an echo on each, then closed (every
    other one with a reset)."""
    socks = []
    try:
        for _ in range(o["n"]):
            s = connect(o["host"], o["port"], o.get("retry", 0.0))
            socks.append(s)
            echo_once(s)
    finally:
        for i, s in enumerate(socks):
            if i % 2:
                linger0(s)
                s.close()
            else:
                close_gracefully(s)
    return {"ok": len(socks)}


def op_fdbatch(o):
    """Guest side of the file descriptor test, in steps the test drives with
    files in o["dir"]: ready -> go -> open -> close -> closed -> exit."""
    d = o["dir"]
    step = lambda name: os.path.join(d, name)
    srv = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    srv.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("::", o["listen_port"]))
    srv.listen(128)
    l = {"role": "echo", "port": o["listen_port"], "count": None}
    threading.Thread(target=accept_loop, args=(srv, l), daemon=True).start()
    # Warm-up: one connection of each kind, so that whatever the engine
    # sets up once, on first use, is in place before the test counts.
    for host, port in [(h, o["far_port"]) for h in o["far"]] + [(h, o["gw_port"]) for h in o["gw"]]:
        s = connect(host, port)
        echo_once(s)
        close_gracefully(s)
    try:
        connect(o["far"][0], o["closed_port"]).close()
    except ConnectionRefusedError:
        pass
    touch(step("ready"))
    wait_file(step("go"))
    conns = []
    try:
        for i in range(o["n_far"]):
            conns.append(connect(o["far"][i % 2], o["far_port"]))
            echo_once(conns[-1])
        for i in range(o["n_gw"]):
            conns.append(connect(o["gw"][i % 2], o["gw_port"]))
            echo_once(conns[-1])
        refused = 0
        for i in range(o["n_refused"]):
            try:
                connect(o["far"][i % 2], o["closed_port"]).close()
            except ConnectionRefusedError:
                refused += 1
        touch(step("open"))
        wait_file(step("close"))
    finally:
        for i, s in enumerate(conns):
            if i % 2:
                linger0(s)
                s.close()
            else:
                close_gracefully(s)
    touch(step("closed"))
    wait_file(step("exit"))
    return {"opened": len(conns), "refused": refused}


def op_flowlimit(o):
    """Opens connections (alternating hosts) until one fails; then checks
    the open ones, closes one and waits for a new one to get through."""
    hosts, conns, fail = o["hosts"], [], None
    for i in range(o["max"]):
        t0 = time.monotonic()
        try:
            s = connect(hosts[i % len(hosts)], o["port"], timeout=3.0)
        except Exception as e:
            fail = {"err": err_name(e), "secs": time.monotonic() - t0}
            break
        try:
            echo_once(s)
        except Exception as e:
            s.close()
            fail = {"err": "connected, then " + err_name(e), "secs": time.monotonic() - t0}
            break
        conns.append(s)
    opened = len(conns)
    after_errors = []
    for i, s in enumerate(conns):
        try:
            echo_once(s, 65536)
        except Exception as e:
            after_errors.append("connection %d: %s" % (i + 1, err_name(e)))
    reuse = None
    if conns:
        close_gracefully(conns.pop(0))
        t0 = time.monotonic()
        last = "?"
        while time.monotonic() - t0 < o["reuse_within"]:
            try:
                s = connect(hosts[0], o["port"], timeout=3.0)
                echo_once(s)
                conns.append(s)
                reuse = {"secs": time.monotonic() - t0}
                break
            except Exception as e:
                last = err_name(e)
                time.sleep(0.2)
        if reuse is None:
            reuse = {"err": last}
    for s in conns:
        close_gracefully(s)
    return {"opened": opened, "fail": fail, "after_errors": after_errors, "reuse": reuse}


def tcp_ext(name):
    """A TcpExt counter of this network namespace (/proc/net/netstat)."""
    with open("/proc/net/netstat") as f:
        lines = [l.split() for l in f if l.startswith("TcpExt:")]
    return int(dict(zip(lines[0][1:], lines[1][1:]))[name])


def op_keepalive(o):
    """Connects with keepalive probes every second after one idle second
    (3 unanswered probes end the connection), exchanges data both ways,
    stays idle `idle` seconds, then exchanges data both ways again."""
    s = socket.socket(family(o["host"]), socket.SOCK_STREAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 1)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 1)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 3)
        s.settimeout(CONNECT)
        s.connect((o["host"], o["port"]))
        s.settimeout(IDLE)
        echo_once(s)
        probes = tcp_ext("TCPKeepAlive")
        t0 = time.monotonic()
        time.sleep(o["idle"])
        probes = tcp_ext("TCPKeepAlive") - probes
        try:
            echo_once(s, 65536)
        except Exception as e:
            raise ConnectionError("after %d keepalive probes in %.1f s idle: %s"
                                  % (probes, time.monotonic() - t0, err_name(e)))
        close_gracefully(s)
    finally:
        s.close()
    return {"probes": probes}


def op_late_answer(o):
    """Sends `size` bytes, shuts down writing, then waits up to `wait`
    seconds for the answer: the request reversed, `repeat` times."""
    s = connect(o["host"], o["port"], o.get("retry", 0.0))
    try:
        data = os.urandom(o["size"])
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        t0 = time.monotonic()
        s.settimeout(o["wait"])
        try:
            _, n, reply = drain(s, keep=True, bufsize=65536)
        except Exception as e:
            raise ConnectionError("%.1f s after our FIN, before the answer: %s"
                                  % (time.monotonic() - t0, err_name(e)))
        secs = time.monotonic() - t0
    finally:
        s.close()
    if reply != data[::-1] * o["repeat"]:
        raise ValueError("%.1f s after our FIN: an answer of %d bytes, want %d (or wrong data)"
                         % (secs, n, len(data) * o["repeat"]))
    return {"len": n, "secs": secs}


TCP_REPAIR = 19


def op_reuse_tuple(o):
    """Connects from source port `sport`, exchanges data, then forgets the
    connection without a word to the peer (TCP_REPAIR on, then close: the
    kernel drops the socket and sends neither FIN nor RST, as a guest that
    rebooted would), and connects again from the same port to the same
    destination: how long that connect takes, and data both ways on it."""
    fam = family(o["host"])

    def from_port():
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("::" if fam == socket.AF_INET6 else "0.0.0.0", o["sport"]))
        return s

    s = from_port()
    try:
        s.settimeout(CONNECT)
        s.connect((o["host"], o["port"]))
        s.settimeout(IDLE)
        echo_once(s)
        s.setsockopt(socket.IPPROTO_TCP, TCP_REPAIR, 1)
    finally:
        s.close()
    time.sleep(o.get("pause", 0.2))
    s = from_port()
    try:
        s.settimeout(o["within"])
        t0 = time.monotonic()
        try:
            s.connect((o["host"], o["port"]))
        except Exception as e:
            return {"err": err_name(e), "secs": time.monotonic() - t0}
        secs = time.monotonic() - t0
        s.settimeout(IDLE)
        echo_once(s, 65536)
        close_gracefully(s)
    finally:
        s.close()
    return {"err": "connected", "secs": secs}


def op_stall_many(o):
    """Opens `n` connections and writes to each, without blocking, as much
    as it takes (up to `per_conn` bytes each) until nothing moves any more;
    then creates `dir`/stalled, waits for `dir`/done, and resets them
    all."""
    d = o["dir"]
    socks = []
    try:
        for i in range(o["n"]):
            try:
                socks.append(connect(o["host"], o["port"]))
            except Exception as e:
                raise ConnectionError("connection %d of %d: %s" % (i + 1, o["n"], err_name(e)))
        for s in socks:
            s.setblocking(False)
        chunk = b"x" * (64 << 10)
        written = [0] * len(socks)
        t0 = time.monotonic()
        quiet = 0
        while quiet < 5 and time.monotonic() - t0 < o.get("within", 30.0):
            moved = 0
            for i, s in enumerate(socks):
                while written[i] < o["per_conn"]:
                    try:
                        k = s.send(chunk[: o["per_conn"] - written[i]])
                    except BlockingIOError:
                        break
                    written[i] += k
                    moved += k
            quiet = 0 if moved else quiet + 1
            if not moved:
                time.sleep(0.2)
        touch(os.path.join(d, "stalled"))
        wait_file(os.path.join(d, "done"), o.get("hold", 120.0))
    finally:
        for s in socks:
            linger0(s)
            s.close()
    return {"opened": len(socks), "written": sum(written), "least": min(written),
            "most": max(written), "secs": time.monotonic() - t0}


OPS = {
    "keepalive": op_keepalive,
    "late_answer": op_late_answer,
    "reuse_tuple": op_reuse_tuple,
    "stall_many": op_stall_many,
    "upload": op_upload,
    "download": op_download,
    "refused": op_refused,
    "until_refused": op_until_refused,
    "rst_recv": op_rst_recv,
    "rst_send": op_rst_send,
    "halfclose": op_halfclose,
    "halfclose_rev": op_halfclose_rev,
    "echo_batch": op_echo_batch,
    "fdbatch": op_fdbatch,
    "flowlimit": op_flowlimit,
}


def raise_fd_limit():
    """Soft limit of open files up to the hard one (a thousand connections
    at once need more than the usual 1024)."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


if __name__ == "__main__":
    raise_fd_limit()
    main(serve, OPS)
