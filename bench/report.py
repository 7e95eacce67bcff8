#!/usr/bin/env python3
"""Result handling for bench/run.sh (Python 3 standard library only).

  report.py parse --kind tput|tput-in|splice-in|splice-out|udp|rr|crr|urr|ping --rundir DIR ...
      Reads one run's output (DIR/out) and prints its values as
      tab-separated lines "cell tool rep metric value" on stdout, and a
      one-line summary on stderr.

  report.py table --reps N < RAW
      Reads all such lines and prints the Markdown table of medians.
"""

import argparse
import json
import os
import re
import statistics
import sys
from collections import defaultdict

TOOLS = ["rs", "up", "slirp"]
TOOL_NAMES = {"rs": "passt-rs", "up": "upstream pasta", "slirp": "slirp4netns"}
GIB = float(1 << 30)


def read(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def first_line(text, limit=80):
    for line in text.splitlines():
        line = line.strip()
        if line:
            return line[:limit]
    return ""


def counters(path):
    """/proc/net/netstat + snmp as {"TcpExt.TCPTimeouts": n, ...}."""
    c = {}
    lines = read(path).splitlines()
    for head, vals in zip(lines[0::2], lines[1::2]):
        h, v = head.split(), vals.split()
        if not h or h[0] != v[0]:
            continue
        for k, x in zip(h[1:], v[1:]):
            try:
                c[h[0].rstrip(":") + "." + k] = int(x)
            except ValueError:
                pass
    return c


def link_dropped(path, way="tx"):
    """Drops (way "tx" or "rx") summed over the namespace's devices other
    than lo, from `ip -j -s link show`."""
    try:
        links = json.loads(read(path) or "[]")
    except ValueError:
        return None
    n = 0
    for link in links:
        if link.get("ifname") == "lo":
            continue
        n += link.get("stats64", {}).get(way, {}).get("dropped", 0)
    return n


def tx_dropped(path):
    return link_dropped(path, "tx")


# TCP counters read in the remote and in the host namespace around every
# tput and tput-in run (run.sh: remote.snmp.N, host.snmp.N), emitted as
# "remote_NAME" and "host_NAME" (NAME without its Tcp. / TcpExt. prefix).
# The TCP MIB is one for IPv4 and IPv6. On a download (remote -> ns) the
# remote is the sender and the host (the daemon's socket) the receiver; on
# an upload the roles swap.
OUTSIDE_COUNTERS = (
    # sender: what was retransmitted, and why
    "Tcp.RetransSegs", "TcpExt.TCPFastRetrans", "TcpExt.TCPSlowStartRetrans",
    "TcpExt.TCPLossProbes", "TcpExt.TCPLossProbeRecovery", "TcpExt.TCPSackRecovery",
    "TcpExt.TCPLostRetransmit", "TcpExt.TCPTimeouts", "TcpExt.TCPSpuriousRTOs",
    "TcpExt.TCPSpuriousRtxHostQueues",
    # sender: the receiver reported duplicates (DSACK), and undos
    "TcpExt.TCPDSACKRecv", "TcpExt.TCPDSACKOfoRecv", "TcpExt.TCPDSACKRecvSegs",
    "TcpExt.TCPDSACKIgnoredOld", "TcpExt.TCPDSACKIgnoredNoUndo",
    "TcpExt.TCPDSACKIgnoredDubious", "TcpExt.TCPDSACKUndo", "TcpExt.TCPFullUndo",
    "TcpExt.TCPPartialUndo", "TcpExt.TCPLossUndo",
    # sender: reordering detected
    "TcpExt.TCPSACKReorder", "TcpExt.TCPTSReorder", "TcpExt.TCPRenoReorder",
    # receiver: out of order arrivals, duplicates reported, drops
    "TcpExt.TCPOFOQueue", "TcpExt.TCPOFOMerge", "TcpExt.TCPOFODrop",
    "TcpExt.TCPDSACKOldSent", "TcpExt.TCPDSACKOfoSent", "TcpExt.TCPRcvQDrop",
    "TcpExt.TCPBacklogDrop", "TcpExt.TCPZeroWindowDrop", "TcpExt.PruneCalled",
    "TcpExt.RcvPruned", "TcpExt.OfoPruned", "TcpExt.TCPRcvCollapsed", "Tcp.InErrs",
)


def outside_counters(rundir):
    """Remote and host namespace deltas over the run (see OUTSIDE_COUNTERS),
    the veths' drops, and the share of the remote's retransmitted segments
    that the receiver reported as duplicates (DSACK)."""
    out = {}
    for side in ("remote", "host"):
        c0 = counters(os.path.join(rundir, side + ".snmp.0"))
        c1 = counters(os.path.join(rundir, side + ".snmp.1"))
        for key in OUTSIDE_COUNTERS:
            if key in c0 and key in c1:
                out[side + "_" + key.split(".", 1)[1]] = c1[key] - c0[key]
        for way in ("rx", "tx"):
            d0 = link_dropped(os.path.join(rundir, side + ".link.0"), way)
            d1 = link_dropped(os.path.join(rundir, side + ".link.1"), way)
            if d0 is not None and d1 is not None:
                out["%s_veth_%s_dropped" % (side, way)] = d1 - d0
    drops = [v for k, v in out.items() if "_veth_" in k]
    if len(drops) == 4:
        out["veth_dropped"] = sum(drops)
    if out.get("remote_RetransSegs", 0) > 0 and "remote_TCPDSACKRecvSegs" in out:
        out["remote_dsack_pct"] = "%.1f" % (
            100.0 * out["remote_TCPDSACKRecvSegs"] / out["remote_RetransSegs"])
    return out


def signals(rundir):
    """Guest-side deltas over the run: RTO timeouts, slow-start
    retransmissions, retransmitted segments, tap TX drops."""
    c0 = counters(os.path.join(rundir, "snmp.0"))
    c1 = counters(os.path.join(rundir, "snmp.1"))
    out = {}
    for key, name in (("TcpExt.TCPTimeouts", "guest_rto"),
                      ("TcpExt.TCPSlowStartRetrans", "guest_ss_retrans"),
                      ("Tcp.RetransSegs", "guest_retrans_segs")):
        if key in c0 and key in c1:
            out[name] = c1[key] - c0[key]
    d0 = tx_dropped(os.path.join(rundir, "link.0"))
    d1 = tx_dropped(os.path.join(rundir, "link.1"))
    if d0 is not None and d1 is not None:
        out["tap_tx_dropped"] = d1 - d0
    return out


def parse(a):
    out = []
    summary = []

    def emit(metric, value):
        out.append("%s\t%s\t%s\t%s\t%s" % (a.cell, a.tool, a.rep, metric, value))

    def na(reason):
        reason = reason.replace("\t", " ")
        emit("status", "n/a: " + reason)
        summary.append("n/a (%s)" % reason)

    # Through a forwarded port the client runs in the remote namespace (or,
    # spliced, in the host namespace) and its JSON is the one with what was
    # received in both directions.
    outside = a.kind in ("tput-in", "splice-in")
    text = read(os.path.join(a.rundir, "client.json" if outside else "out"))
    err = read(os.path.join(a.rundir, "err"))

    def emit_cost(nbytes):
        """The daemon's CPU per GiB moved and its peak RSS."""
        if a.cpu0 and a.cpu1 and nbytes > 0:
            cpu = (int(a.cpu1) - int(a.cpu0)) / float(a.clk_tck)
            emit("cpu_s_per_gib", "%.4f" % (cpu / (nbytes / GIB)))
            summary.append("daemon %.2f CPU s, %.3f s/GiB" % (cpu, cpu / (nbytes / GIB)))
        if a.hwm:
            emit("peak_rss_kib", a.hwm)

    def iperf3_result(text):
        """iperf3's JSON of the run, or why there is none (a string)."""
        try:
            j = json.loads(text)
        except ValueError:
            j = None
        if j is None:
            return "iperf3 rc %s, no result %s" % (a.rc, first_line(err))
        if "error" in j:
            return str(j["error"])[:80]
        return j
    if a.state != "ok":
        daemon = first_line(read(os.path.join(a.rundir, "daemon.log")))
        na("namespace not ready" + (": " + daemon if daemon else ""))
    elif a.kind in ("tput", "tput-in", "splice-in", "splice-out"):
        j = iperf3_result(text)
        if isinstance(j, str):
            na(j)
        else:
            recv = j["end"]["sum_received"]
            sent = j["end"].get("sum_sent", {})
            gbps = recv["bits_per_second"] / 1e9
            nbytes = recv["bytes"]
            emit("status", "ok")
            emit("gbps", "%.4f" % gbps)
            emit("bytes", nbytes)
            if "retransmits" in sent:
                emit("retransmits", sent["retransmits"])
            summary.append("%.3f Gbit/s" % gbps)
            if "retransmits" in sent:
                summary.append("sender retransmits %d" % sent["retransmits"])
            sig = signals(a.rundir)
            for k, v in sorted(sig.items()):
                emit(k, v)
            if sig:
                summary.append("guest RTO %s, tap TX drops %s" % (
                    sig.get("guest_rto", "?"), sig.get("tap_tx_dropped", "?")))
            osig = outside_counters(a.rundir)
            for k, v in sorted(osig.items()):
                emit(k, v)
            if osig:
                g = lambda k: osig.get(k, "?")
                summary.append("remote retrans %s DSACKed %s reorder %s/%s; host OFO %s, "
                               "DSACKs sent %s/%s, veth drops %s" % (
                                   g("remote_RetransSegs"), g("remote_TCPDSACKRecvSegs"),
                                   g("remote_TCPSACKReorder"), g("remote_TCPTSReorder"),
                                   g("host_TCPOFOQueue"), g("host_TCPDSACKOldSent"),
                                   g("host_TCPDSACKOfoSent"), g("veth_dropped")))
            emit_cost(nbytes)
    elif a.kind == "udp":
        j = iperf3_result(text)
        if isinstance(j, str):
            na(j)
        else:
            recv = j["end"].get("sum_received") or j["end"]["sum"]
            gbps = recv["bits_per_second"] / 1e9
            nbytes = recv["bytes"]
            loss = recv.get("lost_percent", 0.0)
            emit("status", "ok")
            emit("gbps", "%.4f" % gbps)
            emit("bytes", nbytes)
            emit("loss_pct", "%.3f" % loss)
            summary.append("%.3f Gbit/s received, %.2f%% lost" % (gbps, loss))
            emit_cost(nbytes)
    elif a.kind in ("rr", "crr", "urr"):
        try:
            j = json.loads(first_line(text, 10000) or "null")
        except ValueError:
            j = None
        if j is None:
            na("client rc %s, no result %s" % (a.rc, first_line(err)))
        elif "error" in j:
            na(str(j["error"])[:80])
        else:
            emit("status", "ok")
            emit("tps", j["tps"])
            emit("p50_us", j["p50_us"])
            emit("p99_us", j["p99_us"])
            if "lost" in j:
                emit("lost", j["lost"])
            summary.append("%.0f/s p50 %.1f us p99 %.1f us" % (j["tps"], j["p50_us"], j["p99_us"]))
            if "lost" in j:
                summary.append("%d lost" % j["lost"])
            if a.hwm:
                emit("peak_rss_kib", a.hwm)
    elif a.kind == "ping":
        rtts, dups = [], 0
        for line in text.splitlines():
            m = re.search(r"time=([0-9.]+) ms", line)
            if not m:
                continue
            if "DUP!" in line:
                dups += 1
            else:
                rtts.append(float(m.group(1)) * 1000.0)
        rtts.sort()
        m = re.search(r"(\d+) packets transmitted, (\d+) received", text)
        if not rtts:
            na("no echo reply" + (" (%s)" % first_line(err) if first_line(err) else ""))
        else:
            emit("status", "ok")
            p50 = statistics.median(rtts)
            emit("p50_us", "%.1f" % p50)
            if m:
                emit("lost", int(m.group(1)) - int(m.group(2)))
            emit("duplicates", dups)
            summary.append("p50 %.1f us, %d replies, %d duplicates" % (p50, len(rtts), dups))
            if a.hwm:
                emit("peak_rss_kib", a.hwm)
    for line in out:
        print(line)
    print(", ".join(summary), file=sys.stderr)
    return 0


# Cells through a forwarded port (-t): the remote connects to the host's
# address and pasta forwards it into the namespace.
FORWARDED = (("fwdin", "remote -> ns through -t"), ("fwdout", "ns -> remote through -t"))
# Spliced cells: between the host's loopback and the namespace, socket to
# socket (never through the tap).
SPLICED = (("splicein", "host loopback -> ns through -t (spliced)"),
           ("spliceout", "ns loopback -> host loopback through -T (spliced)"))
# UDP at a fixed offered rate (run.sh exports the rates): (cell suffix,
# label).
UDP_SIZES = (("1400", "1400-byte datagrams at %s offered" % os.environ.get("UDP_RATE_SMALL", "1G")),
             ("65000", "65000-byte datagrams at %s offered" % os.environ.get("UDP_RATE_BIG", "5G")))


# (label, cell, metric, format, better)
def rows():
    r = []
    for d, dname in (("up", "ns -> remote"), ("dn", "remote -> ns")):
        for fam in ("4", "6"):
            for mtu in ("1500", "65520"):
                cell = "tcp_%s%s_%s" % (d, fam, mtu)
                r.append(("TCP %s, IPv%s, MTU %s (Gbit/s)" % (dname, fam, mtu),
                          cell, "gbps", "%.2f", "higher"))
    for d, dname in FORWARDED:
        for fam in ("4", "6"):
            cell = "tcp_%s%s_65520" % (d, fam)
            r.append(("TCP %s, IPv%s, MTU 65520 (Gbit/s)" % (dname, fam),
                      cell, "gbps", "%.2f", "higher"))
    for d, dname in SPLICED:
        for fam in ("4", "6"):
            cell = "tcp_%s%s" % (d, fam)
            r.append(("TCP %s, IPv%s (Gbit/s)" % (dname, fam), cell, "gbps", "%.2f", "higher"))
    for d, dname in (("up", "ns -> remote"), ("dn", "remote -> ns")):
        for fam in ("4", "6"):
            for mtu in ("1500", "65520"):
                cell = "tcp_%s%s_%s" % (d, fam, mtu)
                r.append(("daemon CPU, %s, IPv%s, MTU %s (s/GiB)" % (dname, fam, mtu),
                          cell, "cpu_s_per_gib", "%.2f", "lower"))
    for d, dname in SPLICED:
        for fam in ("4", "6"):
            cell = "tcp_%s%s" % (d, fam)
            r.append(("daemon CPU, TCP %s, IPv%s (s/GiB)" % (dname, fam),
                      cell, "cpu_s_per_gib", "%.2f", "lower"))
    for d, dname in (("up", "ns -> remote"), ("dn", "remote -> ns")):
        for fam in ("4", "6"):
            for size, sname in UDP_SIZES:
                cell = "udp_%s%s_%s" % (d, fam, size)
                what = "UDP %s, IPv%s, %s" % (dname, fam, sname)
                r.append(("%s, received (Gbit/s)" % what, cell, "gbps", "%.2f", "higher"))
                r.append(("%s, lost (%%)" % what, cell, "loss_pct", "%.2f", "lower"))
                r.append(("%s, daemon CPU (s/GiB)" % what, cell, "cpu_s_per_gib", "%.2f", "lower"))
    for fam in ("4", "6"):
        for mtu in ("1500", "65520"):
            cell = "tcp_up%s_%s" % (fam, mtu)
            r.append(("guest RTO timeouts / tap TX drops, ns -> remote, IPv%s, MTU %s (per run)"
                      % (fam, mtu), cell, ("guest_rto", "tap_tx_dropped"), "%.0f", "lower"))
    downloads = []   # (cell, what) of the cells where the remote sends
    for fam in ("4", "6"):
        for mtu in ("1500", "65520"):
            downloads.append(("tcp_dn%s_%s" % (fam, mtu),
                              "remote -> ns, IPv%s, MTU %s" % (fam, mtu)))
    for fam in ("4", "6"):
        downloads.append(("tcp_fwdin%s_65520" % fam,
                          "remote -> ns through -t, IPv%s, MTU 65520" % fam))
    for cell, what in downloads:
        r.append(("remote sender retransmissions, %s (per run)" % what,
                  cell, "retransmits", "%.0f", "lower"))
    # The remote's and the host's own TCP counters on the downloads (the
    # remote sends, the daemon's host socket receives): several medians
    # per cell, " / " between them.
    for cell, what in downloads:
        r.append(("remote DSACKs received, %s: retransmitted / DSACKed segments, DSACKed %% of"
                  " retransmitted, DSACK undos (per run)" % what, cell,
                  ("remote_RetransSegs", "remote_TCPDSACKRecvSegs", "remote_dsack_pct",
                   "remote_TCPDSACKUndo"), "%.0f", "-"))
    for cell, what in downloads:
        r.append(("remote reorder events, %s: SACK / TS / Reno reordering seen (per run)" % what,
                  cell, ("remote_TCPSACKReorder", "remote_TCPTSReorder", "remote_TCPRenoReorder"),
                  "%.0f", "-"))
    for cell, what in downloads:
        r.append(("remote loss signals, %s: lost retransmissions / RTO timeouts / spurious RTOs"
                  " (per run)" % what, cell,
                  ("remote_TCPLostRetransmit", "remote_TCPTimeouts", "remote_TCPSpuriousRTOs"),
                  "%.0f", "-"))
    for cell, what in downloads:
        r.append(("host OFO queued, %s: segments queued out of order / DSACKs sent for old"
                  " / for out-of-order data (per run)" % what, cell,
                  ("host_TCPOFOQueue", "host_TCPDSACKOldSent", "host_TCPDSACKOfoSent"),
                  "%.0f", "-"))
    for cell, what in downloads:
        r.append(("host drops, %s: OFO queue / receive queue / backlog / veths (per run)" % what,
                  cell, ("host_TCPOFODrop", "host_TCPRcvQDrop", "host_TCPBacklogDrop",
                         "veth_dropped"), "%.0f", "-"))
    for kind, name, unit in (("rr", "TCP_RR", "transactions/s"), ("crr", "TCP_CRR", "connections/s"),
                             ("urr", "UDP_RR", "transactions/s")):
        for fam in ("4", "6"):
            cell = "%s%s" % (kind, fam)
            r.append(("%s IPv%s (%s)" % (name, fam, unit), cell, "tps", "%.0f", "higher"))
            r.append(("%s IPv%s p50 latency (us)" % (name, fam), cell, "p50_us", "%.0f", "lower"))
            r.append(("%s IPv%s p99 latency (us)" % (name, fam), cell, "p99_us", "%.0f", "lower"))
    for fam in ("4", "6"):
        r.append(("ICMP echo RTT IPv%s, p50 (us)" % fam, "ping%s" % fam, "p50_us", "%.0f", "lower"))
    r.append(("daemon idle RSS (MiB)", None, "idle_rss_kib", "%.1f", "lower"))
    r.append(("daemon peak RSS (MiB)", None, "peak_rss_kib", "%.1f", "lower"))
    return r


def table(a):
    vals = defaultdict(list)   # (cell, tool, metric) -> [float]
    runs = defaultdict(int)    # (cell, tool) -> attempted runs
    oks = defaultdict(int)     # (cell, tool) -> successful runs
    reasons = defaultdict(set)
    anyv = defaultdict(list)   # (tool, metric) -> [float] over all cells
    for line in sys.stdin:
        parts = line.rstrip("\n").split("\t")
        if len(parts) != 5:
            continue
        cell, tool, _rep, metric, value = parts
        if metric == "status":
            runs[(cell, tool)] += 1
            if value == "ok":
                oks[(cell, tool)] += 1
            else:
                reasons[(cell, tool)].add(value)
            continue
        try:
            v = float(value)
        except ValueError:
            continue
        vals[(cell, tool, metric)].append(v)
        anyv[(tool, metric)].append(v)

    partial = False
    print("| row | passt-rs | upstream pasta | slirp4netns | passt-rs / upstream |")
    print("|---|---:|---:|---:|---:|")
    ran = set(c for (c, _t) in runs)
    for label, cell, metric, fmt, better in rows():
        if cell is not None and cell not in ran:
            continue
        cells = []
        med = {}
        for tool in TOOLS:
            if cell is None:
                xs = anyv.get((tool, metric), [])
                if not xs:
                    cells.append("n/a")
                    continue
                m = statistics.median(xs) if metric == "idle_rss_kib" else max(xs)
                med[tool] = m
                cells.append(fmt % (m / 1024.0))
                continue
            if isinstance(metric, tuple):
                # Several metrics in one cell: the median of each, " / "
                # between them; no ratio column.
                parts = [vals.get((cell, tool, m), []) for m in metric]
                cells.append(" / ".join(fmt % statistics.median(xs) if xs else "n/a"
                                        for xs in parts)
                             if any(parts) else "n/a")
                continue
            xs = vals.get((cell, tool, metric), [])
            if not xs:
                cells.append("n/a")
                continue
            m = statistics.median(xs)
            med[tool] = m
            s = fmt % m
            if oks[(cell, tool)] < runs[(cell, tool)]:
                s += "*"
                partial = True
            cells.append(s)
        if "rs" in med and "up" in med and med["up"] > 0:
            ratio = "%.2f" % (med["rs"] / med["up"])
        else:
            ratio = "-"
        print("| %s | %s | %s | %s | %s |" % (label, cells[0], cells[1], cells[2], ratio))
    print()
    print("Medians of %d run(s) per cell. Throughput and transactions: higher is better;"
          " CPU, latency, memory: lower is better. Idle RSS: median over all runs, read"
          " before any traffic; peak RSS: the largest VmHWM over runs that moved traffic."
          % a.reps)
    if partial:
        print("* some runs of this cell failed; the median is over the runs that worked.")
    notes = []
    for (cell, tool), rs in sorted(reasons.items()):
        for r in sorted(rs):
            notes.append("  %s / %s: %s" % (cell, TOOL_NAMES.get(tool, tool), r))
    if notes:
        print()
        print("n/a reasons (first line of each distinct error):")
        for n in notes:
            print(n)
    return 0


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("parse")
    for opt in ("kind", "rundir", "state", "rc", "cpu0", "cpu1", "hwm", "clk-tck",
                "cell", "tool", "rep"):
        p.add_argument("--" + opt, default="")
    t = sub.add_parser("table")
    t.add_argument("--reps", type=int, default=1)
    a = ap.parse_args()
    return parse(a) if a.cmd == "parse" else table(a)


if __name__ == "__main__":
    sys.exit(main())
