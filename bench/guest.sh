#!/bin/bash
# Runs inside the namespace under test (started by bench/run.sh through
# `pasta ... -- guest.sh` or `unshare ... guest.sh`).
#
#   guest.sh RUNDIR FAMILY(4|6) COMMAND [ARGS...]
#
# Handshake with run.sh through files in RUNDIR (every wait is bounded):
#   guest.pid  this shell's PID
#   ready      the namespace has an address and a default route for FAMILY
#              ("fail" instead of "ok" if that never happened within 10 s)
#   go         (written by run.sh) start COMMAND now
#   out, err   COMMAND's output
#   snmp.0, snmp.1, link.0, link.1
#              the namespace's TCP counters (/proc/net/netstat, snmp) and
#              link statistics (ip -j -s link) before and after COMMAND
#   done       COMMAND's exit status
#   exit       (written by run.sh) leave, which ends the namespace
rundir=$1 family=$2
shift 2
echo $$ > "$rundir/guest.pid"

put() { echo "$2" > "$rundir/$1.tmp" && mv "$rundir/$1.tmp" "$rundir/$1"; }

# waitfile NAME TENTHS: wait up to TENTHS/10 s for RUNDIR/NAME.
waitfile() {
	local i
	for ((i = 0; i < $2; i++)); do
		[ -e "$rundir/$1" ] && return 0
		sleep 0.1
	done
	return 1
}

# Lets a tap device created later (slirp4netns) skip duplicate address
# detection, and lets many short connections reuse ports (TCP_CRR).
for f in /proc/sys/net/ipv6/conf/default/accept_dad \
	/proc/sys/net/ipv6/conf/all/accept_dad; do
	echo 0 > "$f" 2>/dev/null
done
echo 1 > /proc/sys/net/ipv4/tcp_tw_reuse 2>/dev/null
echo "1024 65535" > /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null
ip link set lo up 2>/dev/null

net_ready() {
	if [ "$family" = 6 ]; then
		[ -n "$(ip -6 route show default 2>/dev/null)" ] || return 1
		[ -n "$(ip -6 addr show scope global 2>/dev/null)" ] || return 1
		[ -z "$(ip -6 addr show tentative 2>/dev/null)" ] || return 1
	else
		[ -n "$(ip -4 route show default 2>/dev/null)" ] || return 1
	fi
	return 0
}

state=fail
for ((i = 0; i < 100; i++)); do
	if net_ready; then
		state=ok
		break
	fi
	sleep 0.1
done
{ ip addr; ip route; ip -6 route; } > "$rundir/netinfo" 2>&1
put ready "$state"

snap() {
	cat /proc/net/netstat /proc/net/snmp > "$rundir/snmp.$1" 2>/dev/null
	ip -j -s link show > "$rundir/link.$1" 2>/dev/null
}

if waitfile go 300 && [ "$state" = ok ]; then
	snap 0
	"$@" > "$rundir/out" 2> "$rundir/err" < /dev/null
	rc=$?
	snap 1
	put done "$rc"
else
	put done 255
fi
waitfile exit 100
exit 0
