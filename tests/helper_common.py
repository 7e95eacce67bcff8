"""What tcp_helper.py and udp_helper.py share; each imports it from its own
directory (the tests write the three files side by side into the rig's
temp dir).

Every result is one line "RESULT <json>" on stdout; a client runs a list of
operations, one RESULT line each, and its exit status is 1 if one failed.
"""
import errno
import json
import os
import socket
import sys


def result(**kw):
    print("RESULT " + json.dumps(kw), flush=True)


def family(host):
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def unmap(addr):
    """An IPv4-mapped IPv6 address (::ffff:a.b.c.d) as the IPv4 one."""
    return addr[7:] if addr.startswith("::ffff:") else addr


def bound(host, port, kind):
    """A socket of `kind` (SOCK_STREAM, SOCK_DGRAM) bound to host:port with
    SO_REUSEADDR; on "::" it takes IPv4 too."""
    s = socket.socket(family(host), kind)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if host == "::":
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.bind((host, port))
    return s


def err_name(e):
    if isinstance(e, (TimeoutError, socket.timeout)):
        return "timeout"
    if isinstance(e, OSError) and e.errno:
        return errno.errorcode.get(e.errno, str(e.errno))
    return "%s: %s" % (type(e).__name__, e)


def touch(path):
    """Creates `path` at once (written aside, then renamed)."""
    with open(path + ".tmp", "w") as f:
        f.write("1\n")
    os.rename(path + ".tmp", path)


def client(ops, table, failed=lambda facts: False):
    """Runs each operation `o` of `ops` as `table[o["op"]](o)` and reports
    the facts it returns (or the error it raised) as one RESULT line, with
    "op" and "to" added; exits 1 if one raised or `failed(facts)` says it
    failed, else 0."""
    status = 0
    for o in ops:
        try:
            facts = table[o["op"]](o)
            if failed(facts):
                status = 1
        except Exception as e:
            facts = {"error": err_name(e)}
            status = 1
        facts["op"] = o["op"]
        host = o.get("host", "")
        facts["to"] = ("[%s]:%s" if ":" in host else "%s:%s") % (host, o.get("port"))
        result(**facts)
    sys.exit(status)


def main(serve, table, failed=lambda facts: False):
    """`serve SPEC` runs serve(SPEC), `client OPS` runs the client (both
    JSON)."""
    if sys.argv[1] == "serve":
        serve(json.loads(sys.argv[2]))
    else:
        client(json.loads(sys.argv[2]), table, failed)
