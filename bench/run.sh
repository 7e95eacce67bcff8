#!/bin/bash
# Side-by-side benchmark: passt-rs pasta, upstream pasta, slirp4netns.
#
#   bench/run.sh [--quick] [--raw FILE]
#
# Runs as root. Builds passt-rs once (cargo build --release), builds a
# private two-namespace rig (a "host" namespace joined by a veth pair to a
# "remote" namespace, no route to the real network), then runs every cell
# of the table with each tool in turn (A B C, A B C, ...), each run in a
# fresh namespace connected by the tool under test, and prints the medians.
# See bench/README.md for what each row measures.
#
#   --quick      1 repetition, 2-second runs (about 5 minutes)
#   --raw FILE   also write every run's values as tab-separated lines
#
# Environment: BENCH_REPS, BENCH_TIME (seconds per throughput or
# request/response run) override the defaults (3 and 5, or 1 and 2 with
# --quick); BENCH_CELLS (a regular expression) keeps only the matching
# cells (e.g. 'tcp_up|ping'); BENCH_KEEP=1 keeps the per-run logs (in
# /tmp/passt-bench.*); BENCH_SKIP='rs up slirp' (any of them) leaves
# those columns out; PASST_RS_PASTA=PATH benchmarks that binary instead
# of building; UPSTREAM_PASTA, SLIRP4NETNS point at other binaries;
# BENCH_UDP_RATE_SMALL, BENCH_UDP_RATE_BIG (iperf3 -b; 1G, 5G) are the
# offered rates of the UDP cells with 1400- and 65000-byte datagrams.
#
# Everything the script starts is tracked by PID and ended on exit (also on
# errors and Ctrl-C), with the namespaces and temporary files it made.

set -u -o pipefail
[ -n "${BENCH_TRACE:-}" ] && { PS4='+$EPOCHREALTIME '; set -x; }

usage() { sed -n '2,25s/^# \{0,1\}//p' "$0"; }

QUICK=0
RAW=
while [ $# -gt 0 ]; do
	case $1 in
	--quick) QUICK=1 ;;
	--raw) RAW=${2:?--raw needs a file}; shift ;;
	-h | --help) usage; exit 0 ;;
	*) usage >&2; exit 2 ;;
	esac
	shift
done

die() { echo "bench: $*" >&2; exit 1; }
log() { echo "bench: $*" >&2; }

[ "$(id -u)" = 0 ] || die "must run as root (it creates network namespaces)"

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")

if [ "$QUICK" = 1 ]; then
	REPS=${BENCH_REPS:-1}
	TIME=${BENCH_TIME:-2}
else
	REPS=${BENCH_REPS:-3}
	TIME=${BENCH_TIME:-5}
fi

# ---------------------------------------------------------------- build
if [ -n "${PASST_RS_PASTA:-}" ]; then
	RS_SRC=$PASST_RS_PASTA
	log "using $RS_SRC (PASST_RS_PASTA), not building"
else
	CARGO=$(command -v cargo || echo "$HOME/.cargo/bin/cargo")
	[ -x "$CARGO" ] || die "cargo not found"
	log "building passt-rs (cargo build --release)"
	(cd "$ROOT" && timeout 1800 "$CARGO" build --release --quiet) ||
		die "cargo build --release failed"
	RS_SRC=$ROOT/target/release/pasta
fi
[ -x "$RS_SRC" ] || die "$RS_SRC missing"

export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export LC_ALL=C
UP_PASTA=${UPSTREAM_PASTA:-/opt/upstream-passt/bin/pasta}
SLIRP=${SLIRP4NETNS:-$(command -v slirp4netns || true)}
PY=$(command -v python3) || die "python3 not found"
for t in ip iperf3 ping setpriv unshare nsenter timeout ss awk; do
	command -v "$t" > /dev/null || die "$t not found (iproute2, iperf3, iputils-ping, util-linux, coreutils)"
done

TOOLS=(rs up slirp)
declare -A TOOL_OK=([rs]=1 [up]=1 [slirp]=1)
for t in ${BENCH_SKIP:-}; do
	[ -n "${TOOL_OK[$t]:-}" ] || die "BENCH_SKIP: unknown tool $t (rs, up, slirp)"
	TOOL_OK[$t]=0
done
if [ ! -x "$UP_PASTA" ]; then
	log "upstream pasta not found at $UP_PASTA: its column is n/a"
	TOOL_OK[up]=0
fi
if [ -z "$SLIRP" ] || [ ! -x "$SLIRP" ]; then
	log "slirp4netns not found: its column is n/a (apt-get install slirp4netns)"
	TOOL_OK[slirp]=0
fi

# The ordinary user the daemons run as (as podman runs pasta: setpriv, no
# groups, no capabilities). /dev/net/tun must be usable by it (mode 0666,
# as distributions ship it).
RUN_UID=65534
RUN_GID=65534
[ -c /dev/net/tun ] || die "/dev/net/tun missing"
[ "$(stat -c %a /dev/net/tun)" = 666 ] ||
	die "/dev/net/tun is not mode 0666 (chmod 0666 /dev/net/tun)"

# ---------------------------------------------------------------- rig
H=pbench-h-$$
R=pbench-r-$$
HOST_IF=pbench0
REMOTE_IF=pbench1
HOST4=192.0.2.1 HOST6=2001:db8:1::1
REMOTE4=192.0.2.2 REMOTE6=2001:db8:1::2
FAR4=198.51.100.2 FAR6=2001:db8:2::2
IPERF_PORT=5201
RR_PORT=5202
# Offered rates of the UDP cells (iperf3 -b), for 1400-byte and
# 65000-byte datagrams.
export UDP_RATE_SMALL=${BENCH_UDP_RATE_SMALL:-1G}
export UDP_RATE_BIG=${BENCH_UDP_RATE_BIG:-5G}

TMP=
NETNS_MADE=()
ETC_MADE=
ETC_TOP=
declare -a TRACKED=() # "pid:starttime" of every process started here

pstat() {
	local s
	s=$(cat "/proc/$1/stat" 2> /dev/null) || return 1
	s=${s##*) }
	echo "$s"
}
starttime() { pstat "$1" | awk '{ print $20 }'; }

# track PID: remembers PID (with its start time, against PID reuse) for
# the clean-up; LAST is "PID:STARTTIME", or empty if it already ended.
LAST=
track() {
	local st
	LAST=
	st=$(starttime "$1") || return 0
	LAST=$1:$st
	TRACKED+=("$LAST")
}

alive() { # PID STARTTIME: running (not a zombie) and not a reused PID
	local s
	s=$(pstat "$1") || return 1
	[ "$(awk '{ print $20 }' <<< "$s")" = "$2" ] && [ "${s%% *}" != Z ]
}
gone() { ! alive "${1%%:*}" "${1##*:}"; } # PID:STARTTIME

# Descendants of the given PIDs (not including them), from /proc.
descendants() {
	ps -e -o pid=,ppid= | awk -v roots="$*" '
		BEGIN { n = split(roots, r, " "); for (i = 1; i <= n; i++) want[r[i]] = 1 }
		{ parent[$1] = $2; pids[NR] = $1 }
		END {
			do {
				changed = 0
				for (i in pids) {
					p = pids[i]
					if (!(p in want) && (parent[p] in want)) { want[p] = 1; out[p] = 1; changed = 1 }
				}
			} while (changed)
			for (p in out) print p
		}'
}

# Ends a process we started (PID:STARTTIME) and whatever it started:
# SIGTERM, up to 3 s, then SIGKILL, up to 2 s more.
end_tracked() {
	local pid=${1%%:*} victims=() v p st i any
	alive "$pid" "${1##*:}" || { wait "$pid" 2> /dev/null; return 0; }
	victims=("$1")
	for p in $(descendants "$pid"); do
		st=$(starttime "$p") && victims+=("$p:$st")
	done
	for v in "${victims[@]}"; do
		kill -TERM "${v%%:*}" 2> /dev/null
	done
	for ((i = 0; i < 50; i++)); do
		any=0
		for v in "${victims[@]}"; do
			alive "${v%%:*}" "${v##*:}" && { any=1; break; }
		done
		[ "$any" = 0 ] && break
		if [ "$i" = 30 ]; then
			for v in "${victims[@]}"; do
				alive "${v%%:*}" "${v##*:}" && kill -KILL "${v%%:*}" 2> /dev/null
			done
		fi
		sleep 0.1
	done
	wait "$pid" 2> /dev/null
	return 0
}

cleanup() {
	local t ns
	trap - EXIT INT TERM
	for t in "${TRACKED[@]}"; do
		end_tracked "$t"
	done
	for ns in "${NETNS_MADE[@]}"; do
		# Anything still inside our namespaces was started by us.
		for p in $(ip netns pids "$ns" 2> /dev/null); do
			kill -KILL "$p" 2> /dev/null
		done
		ip netns del "$ns" 2> /dev/null
	done
	[ -n "$ETC_MADE" ] && rm -rf "$ETC_MADE"
	[ -n "$ETC_TOP" ] && rmdir "$ETC_TOP" 2> /dev/null
	if [ -n "${BENCH_KEEP:-}" ] && [ -n "$TMP" ]; then
		log "kept the run directories in $TMP"
	elif [ -n "$TMP" ]; then
		rm -rf "$TMP"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# wait_for TENTHS COMMAND...: polls COMMAND every 0.1 s, at most TENTHS times.
wait_for() {
	local n=$1 i
	shift
	for ((i = 0; i < n; i++)); do
		"$@" 2> /dev/null && return 0
		sleep 0.1
	done
	return 1
}

TMP=$(mktemp -d /tmp/passt-bench.XXXXXX) || die "mktemp failed"
chmod 0755 "$TMP"
mkdir -m 1777 "$TMP/home"
cp "$HERE/guest.sh" "$HERE/rr.py" "$HERE/report.py" "$TMP/"
# A private copy, so that a build elsewhere cannot swap it during the run.
mkdir "$TMP/rs" && cp "$RS_SRC" "$TMP/rs/pasta" && chmod 0755 "$TMP/rs" "$TMP/rs/pasta" ||
	die "cannot copy $RS_SRC"
RS_PASTA=$TMP/rs/pasta
chmod 0755 "$TMP/guest.sh" "$TMP/rr.py"

build_rig() {
	local ns
	for ns in "$H" "$R"; do
		ip netns add "$ns" || return 1
		NETNS_MADE+=("$ns")
		ip netns exec "$ns" sh -c 'echo 0 > /proc/sys/net/ipv6/conf/all/accept_dad;
			echo 0 > /proc/sys/net/ipv6/conf/default/accept_dad' || return 1
		ip -n "$ns" link set lo up || return 1
	done
	# Ping sockets for the daemons' ICMP echo, as on distributions. The
	# TCP_CRR rows leave thousands of connections in TIME_WAIT on the
	# daemons' side of this namespace, which outlive a run: let connect()
	# reuse them (after 1 s) from a wide port range, or every later run
	# would pay for a slow search of a nearly full port range.
	ip netns exec "$H" sh -c 'echo "0 2147483647" > /proc/sys/net/ipv4/ping_group_range &&
		echo 1 > /proc/sys/net/ipv4/tcp_tw_reuse &&
		echo "1024 65535" > /proc/sys/net/ipv4/ip_local_port_range' || return 1
	# The host namespace's resolver (not used by any row; keeps the
	# machine's own resolv.conf out of the namespaces).
	[ -d /etc/netns ] || ETC_TOP=/etc/netns
	ETC_MADE=/etc/netns/$H
	mkdir -p "$ETC_MADE" && echo "nameserver $REMOTE4" > "$ETC_MADE/resolv.conf" || return 1
	chmod 0644 "$ETC_MADE/resolv.conf"
	ip -n "$H" link add "$HOST_IF" type veth peer name "$REMOTE_IF" netns "$R" || return 1
	ip -n "$R" addr add "$REMOTE4/24" dev "$REMOTE_IF" &&
		ip -n "$R" addr add "$REMOTE6/64" dev "$REMOTE_IF" nodad &&
		ip -n "$R" addr add "$FAR4/32" dev lo &&
		ip -n "$R" addr add "$FAR6/128" dev lo &&
		ip -n "$H" addr add "$HOST4/24" dev "$HOST_IF" &&
		ip -n "$H" addr add "$HOST6/64" dev "$HOST_IF" nodad &&
		ip -n "$R" link set "$REMOTE_IF" up &&
		ip -n "$H" link set "$HOST_IF" up &&
		ip -n "$H" route add default via "$REMOTE4" &&
		ip -n "$H" -6 route add default via "$REMOTE6" || return 1
	link_ready() { # NS DEV: carrier and a usable link-local address
		local out
		out=$(ip -n "$1" addr show dev "$2") || return 1
		! grep -q NO-CARRIER <<< "$out" &&
			grep 'inet6 fe80' <<< "$out" | grep -vq tentative
	}
	wait_for 100 link_ready "$H" "$HOST_IF" && wait_for 100 link_ready "$R" "$REMOTE_IF" ||
		{ log "veth never came up"; return 1; }
	ip netns exec "$H" ping -c1 -W2 "$FAR4" > /dev/null &&
		ip netns exec "$H" ping -6 -c1 -W2 "$FAR6" > /dev/null ||
		{ log "rig: the remote namespace does not answer"; return 1; }
}
build_rig || die "could not build the namespaces"

# ---------------------------------------------------------------- cells
# id, kind, IP version, MTU, direction[, argument] (report.py names the
# rows). Kinds: tput (iperf3 in the namespace to the remote), tput-in
# (iperf3 from the remote through -t), splice-in (iperf3 from the host's
# loopback through -t), splice-out (iperf3 from the namespace's loopback
# through -T to the host's loopback), udp (iperf3 -u at a fixed offered
# rate; argument SIZE@RATE: datagram size, iperf3 -b), rr, crr, urr
# (rr.py), ping.
CELLS=(
	"tcp_up4_1500 tput 4 1500 up"
	"tcp_up4_65520 tput 4 65520 up"
	"tcp_up6_1500 tput 6 1500 up"
	"tcp_up6_65520 tput 6 65520 up"
	"tcp_dn4_1500 tput 4 1500 down"
	"tcp_dn4_65520 tput 4 65520 down"
	"tcp_dn6_1500 tput 6 1500 down"
	"tcp_dn6_65520 tput 6 65520 down"
	"tcp_fwdin4_65520 tput-in 4 65520 in"
	"tcp_fwdin6_65520 tput-in 6 65520 in"
	"tcp_fwdout4_65520 tput-in 4 65520 out"
	"tcp_fwdout6_65520 tput-in 6 65520 out"
	"tcp_splicein4 splice-in 4 65520 in"
	"tcp_splicein6 splice-in 6 65520 in"
	"tcp_spliceout4 splice-out 4 65520 out"
	"tcp_spliceout6 splice-out 6 65520 out"
	"udp_up4_1400 udp 4 65520 up 1400@${UDP_RATE_SMALL}"
	"udp_up4_65000 udp 4 65520 up 65000@${UDP_RATE_BIG}"
	"udp_up6_1400 udp 6 65520 up 1400@${UDP_RATE_SMALL}"
	"udp_up6_65000 udp 6 65520 up 65000@${UDP_RATE_BIG}"
	"udp_dn4_1400 udp 4 65520 down 1400@${UDP_RATE_SMALL}"
	"udp_dn4_65000 udp 4 65520 down 65000@${UDP_RATE_BIG}"
	"udp_dn6_1400 udp 6 65520 down 1400@${UDP_RATE_SMALL}"
	"udp_dn6_65000 udp 6 65520 down 65000@${UDP_RATE_BIG}"
	"rr4 rr 4 65520 -"
	"rr6 rr 6 65520 -"
	"crr4 crr 4 65520 -"
	"crr6 crr 6 65520 -"
	"urr4 urr 4 65520 -"
	"urr6 urr 6 65520 -"
	"ping4 ping 4 65520 -"
	"ping6 ping 6 65520 -"
)

RAWTMP=$TMP/raw.tsv
: > "$RAWTMP"
emit() { # cell tool rep metric value
	printf '%s\t%s\t%s\t%s\t%s\n' "$@" >> "$RAWTMP"
}

kib() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status" 2> /dev/null; }
cputicks() { pstat "$1" | awk '{ print $12 + $13 }'; }
CLK_TCK=$(getconf CLK_TCK)

# outside_snap RUNDIR N: the TCP counters (/proc/net/netstat, snmp) and
# link statistics of the remote namespace (remote.snmp.N, remote.link.N)
# and of the host namespace, where the daemon's sockets live (host.snmp.N,
# host.link.N): N 0 just before the client starts, 1 just after it ends.
# The guest's own are snmp.N and link.N (guest.sh).
outside_snap() {
	local side ns
	for side in remote host; do
		ns=$R
		[ "$side" = host ] && ns=$H
		timeout 5 ip netns exec "$ns" cat /proc/net/netstat /proc/net/snmp \
			> "$1/$side.snmp.$2" 2> /dev/null
		timeout 5 ip -n "$ns" -j -s link show > "$1/$side.link.$2" 2> /dev/null
	done
}

ns_listening() { # NS PORT
	[ -n "$(ip netns exec "$1" ss -Hltn "sport = :$2")" ]
}

# Prefix for a command run in the host namespace as that user. Used as a
# simple command (not a function), so that "$!" of a background job is the
# process itself: ip, setpriv and env each exec the next.
AS_USER=(ip netns exec "$H" setpriv --reuid="$RUN_UID" --regid="$RUN_GID"
	--clear-groups --inh-caps=-all -- env -i "PATH=$PATH" "HOME=$TMP/home" "TMPDIR=$TMP/home"
	USER=nobody LOGNAME=nobody SHELL=/bin/sh LC_ALL=C)

TOTAL=0
DONE=0

# guest_listening DAEMON_PID: the iperf3 server in the namespace under test
# listens (pasta's children run in that namespace; guest.pid does not help,
# pasta gives its command a PID namespace of its own). A client that came
# before it would get a connection that pasta accepted and then closed
# ("control socket has closed unexpectedly"), not a refusal to retry.
guest_listening() {
	local p
	for p in $(descendants "$1"); do
		[ -n "$(nsenter -t "$p" -n ss -Hltn "sport = :$IPERF_PORT" 2> /dev/null)" ] && return 0
	done
	return 1
}

# forwarded_client RUNDIR FAMILY DIR DAEMON_PID: iperf3 from the remote namespace to the
# host's address, forwarded by pasta's -t to the server in the namespace
# (DIR out: -R, the namespace sends). Retries while the server is not
# listening yet (at most about 3 s); the JSON goes to RUNDIR/client.json.
forwarded_client() {
	local rd=$1 host=$HOST4 i
	[ "$2" = 6 ] && host=$HOST6
	local c=(timeout -k 2 $((TIME + 25)) iperf3 -J -c "$host" -p "$IPERF_PORT" -t "$TIME" -O 0
		--connect-timeout 1500)
	[ "$3" = out ] && c+=(-R)
	wait_for 50 guest_listening "$4" || log "iperf3 server in the namespace not listening"
	for ((i = 0; i < 15; i++)); do
		ip netns exec "$R" "${c[@]}" > "$rd/client.json" 2> "$rd/client.err"
		grep -q '"error"' "$rd/client.json" || return 0
		grep -qiE 'refused|reset' "$rd/client.json" || return 0
		sleep 0.2
	done
}

# spliced_client RUNDIR FAMILY DAEMON_PID: iperf3 from the host namespace's loopback
# to the server in the namespace, forwarded by pasta's -t (spliced, never
# through the tap). Retries like forwarded_client; the JSON goes to
# RUNDIR/client.json.
spliced_client() {
	local rd=$1 host=127.0.0.1 i
	[ "$2" = 6 ] && host=::1
	local c=(timeout -k 2 $((TIME + 25)) iperf3 -J -c "$host" -p "$IPERF_PORT" -t "$TIME" -O 0
		--connect-timeout 1500)
	wait_for 50 guest_listening "$3" || log "iperf3 server in the namespace not listening"
	for ((i = 0; i < 15; i++)); do
		ip netns exec "$H" "${c[@]}" > "$rd/client.json" 2> "$rd/client.err"
		grep -q '"error"' "$rd/client.json" || return 0
		grep -qiE 'refused|reset' "$rd/client.json" || return 0
		sleep 0.2
	done
}

# run_one CELL KIND FAMILY MTU DIR TOOL REP ARG
run_one() {
	local cell=$1 kind=$2 fam=$3 mtu=$4 dir=$5 tool=$6 rep=$7 arg=${8:--}
	local rd=$TMP/run.$DONE dst srvt= gpid gt= dpid= dt= cmd=() state
	local idle= cpu0= cpu1= hwm= rc summary
	mkdir -p "$rd" && chmod 0777 "$rd"
	if [ "$fam" = 4 ]; then dst=$FAR4; else dst=$FAR6; fi

	if [ "${TOOL_OK[$tool]}" != 1 ]; then
		emit "$cell" "$tool" "$rep" status "n/a: not run"
		DONE=$((DONE + 1))
		return
	fi
	if [[ $kind =~ ^(tput-in|splice-in|splice-out)$ ]] && [ "$tool" = slirp ]; then
		emit "$cell" "$tool" "$rep" status "n/a: no port forwarding in this harness"
		DONE=$((DONE + 1))
		return
	fi

	# The server, fresh for every run, in the remote namespace.
	case $kind in
	tput)
		ip netns exec "$R" iperf3 -s -1 -p "$IPERF_PORT" > "$rd/server.log" 2>&1 &
		track $!; srvt=$LAST
		wait_for 50 ns_listening "$R" "$IPERF_PORT" || log "iperf3 server not listening"
		cmd=(timeout -k 2 $((TIME + 25)) iperf3 -J -c "$dst" -p "$IPERF_PORT" -t "$TIME" -O 0
			--connect-timeout 1500)
		[ "$dir" = down ] && cmd+=(-R)
		;;
	udp)
		# Bound to the far address: a wildcard UDP server would answer
		# from the veth's address, which the client does not accept.
		ip netns exec "$R" iperf3 -s -1 -B "$dst" -p "$IPERF_PORT" > "$rd/server.log" 2>&1 &
		track $!; srvt=$LAST
		wait_for 50 ns_listening "$R" "$IPERF_PORT" || log "iperf3 server not listening"
		cmd=(timeout -k 2 $((TIME + 25)) iperf3 -J -u -l "${arg%@*}" -b "${arg#*@}" -c "$dst"
			-p "$IPERF_PORT" -t "$TIME" -O 0 --connect-timeout 1500)
		[ "$dir" = down ] && cmd+=(-R)
		;;
	rr | crr | urr)
		# Bound to the far address (UDP replies must come from it).
		ip netns exec "$R" "$PY" "$TMP/rr.py" server --port "$RR_PORT" --bind "$dst" \
			--ready "$rd/srv.ready" > "$rd/server.log" 2>&1 &
		track $!; srvt=$LAST
		wait_for 50 test -e "$rd/srv.ready" || log "request/response server not ready"
		local mode=$kind
		[ "$kind" = urr ] && mode=udp_rr
		cmd=(timeout -k 2 $((TIME + 15)) "$PY" "$TMP/rr.py" client --host "$dst" --port "$RR_PORT"
			--mode "$mode" --time "$TIME")
		;;
	ping)
		cmd=(timeout -k 2 10 ping "-$fam" -n -c 50 -i 0.01 -W 1 -w 3 "$dst")
		;;
	tput-in | splice-in)
		# The server runs in the namespace, behind pasta's -t.
		cmd=(timeout -k 2 $((TIME + 25)) iperf3 -s -1 -p "$IPERF_PORT")
		;;
	splice-out)
		# The server runs on the host namespace's loopback, behind -T; the
		# client in the namespace connects to the namespace's loopback.
		ip netns exec "$H" iperf3 -s -1 -p "$IPERF_PORT" > "$rd/server.log" 2>&1 &
		track $!; srvt=$LAST
		wait_for 50 ns_listening "$H" "$IPERF_PORT" || log "iperf3 server not listening"
		dst=127.0.0.1
		[ "$fam" = 6 ] && dst=::1
		cmd=(timeout -k 2 $((TIME + 25)) iperf3 -J -c "$dst" -p "$IPERF_PORT" -t "$TIME" -O 0
			--connect-timeout 1500)
		;;
	esac
	local fwd=()
	[[ $kind =~ ^(tput-in|splice-in)$ ]] && fwd=(-t "$IPERF_PORT")
	[ "$kind" = splice-out ] && fwd=(-T "$IPERF_PORT")

	# The namespace under test, connected by the tool; the guest script
	# waits for a "go" so that idle memory and CPU can be read first.
	case $tool in
	rs | up)
		local bin=$RS_PASTA
		[ "$tool" = up ] && bin=$UP_PASTA
		"${AS_USER[@]}" "$bin" --config-net -f -m "$mtu" "${fwd[@]}" \
			-- /bin/bash "$TMP/guest.sh" "$rd" "$fam" "${cmd[@]}" > "$rd/daemon.log" 2>&1 &
		dpid=$!; track "$dpid"; dt=$LAST
		;;
	slirp)
		"${AS_USER[@]}" unshare --user --map-root-user --net -- \
			/bin/bash "$TMP/guest.sh" "$rd" "$fam" "${cmd[@]}" > "$rd/guest.log" 2>&1 &
		gpid=$!; track "$gpid"; gt=$LAST
		if wait_for 100 test -s "$rd/guest.pid"; then
			"${AS_USER[@]}" "$SLIRP" --configure --mtu="$mtu" --disable-host-loopback \
				--enable-ipv6 "$gpid" tap0 > "$rd/daemon.log" 2>&1 &
			dpid=$!; track "$dpid"; dt=$LAST
		else
			dpid=
		fi
		;;
	esac

	state=fail
	ready_or_dead() { [ -e "$rd/ready" ] || gone "$dt"; }
	if [ -n "$dt" ] && wait_for 150 ready_or_dead && [ -e "$rd/ready" ]; then
		state=$(cat "$rd/ready")
	fi
	if [ "$state" = ok ] && alive "${dt%%:*}" "${dt##*:}"; then
		case $(cat "/proc/$dpid/comm") in
		pasta* | slirp4netns) ;;
		*) log "PID $dpid is $(cat "/proc/$dpid/comm"), not the daemon: memory and CPU not read" ;;
		esac
		idle=$(kib "$dpid" VmRSS)
		cpu0=$(cputicks "$dpid")
	fi
	local snap=0
	[ "$state" = ok ] && [[ $kind =~ ^(tput|tput-in)$ ]] && snap=1
	[ "$snap" = 1 ] && outside_snap "$rd" 0
	echo go > "$rd/go"
	[ "$state" = ok ] && [ "$kind" = tput-in ] && forwarded_client "$rd" "$fam" "$dir" "$dpid"
	[ "$state" = ok ] && [ "$kind" = splice-in ] && spliced_client "$rd" "$fam" "$dpid"
	rc=skipped
	if [ "$state" = ok ]; then
		if wait_for $(((TIME + 40) * 10)) test -e "$rd/done"; then
			rc=$(cat "$rd/done")
		else
			rc=timeout
		fi
	fi
	[ "$snap" = 1 ] && outside_snap "$rd" 1
	if [ -n "$cpu0" ] && alive "${dt%%:*}" "${dt##*:}"; then
		cpu1=$(cputicks "$dpid")
		hwm=$(kib "$dpid" VmHWM)
	fi
	echo exit > "$rd/exit"

	# pasta ends with its command; slirp4netns is told to.
	if [ "$tool" = slirp ]; then
		[ -n "$gt" ] && { wait_for 50 gone "$gt"; end_tracked "$gt"; }
		[ -n "$dt" ] && end_tracked "$dt"
	elif [ -n "$dt" ]; then
		wait_for 50 gone "$dt"
		end_tracked "$dt"
	fi
	# A one-off iperf3 server ends after its test; anything else is ended.
	if [ -n "$srvt" ]; then
		[[ $kind =~ ^(tput|udp|splice-out)$ ]] && [ "$rc" = 0 ] && wait_for 30 gone "$srvt"
		end_tracked "$srvt"
	fi

	# Results.
	[ -n "$idle" ] && emit "$cell" "$tool" "$rep" idle_rss_kib "$idle"
	summary=$("$PY" "$TMP/report.py" parse --kind "$kind" --rundir "$rd" --state "$state" \
		--rc "$rc" --cpu0 "${cpu0:-}" --cpu1 "${cpu1:-}" --hwm "${hwm:-}" \
		--clk-tck "$CLK_TCK" --cell "$cell" --tool "$tool" --rep "$rep" 2>&1 >> "$RAWTMP")
	DONE=$((DONE + 1))
	log "[$DONE/$TOTAL] $cell $tool #$rep: $summary"
}

if [ -n "${BENCH_CELLS:-}" ]; then
	sel=()
	for c in "${CELLS[@]}"; do
		[[ ${c%% *} =~ $BENCH_CELLS ]] && sel+=("$c")
	done
	CELLS=("${sel[@]}")
fi
TOTAL=$((${#CELLS[@]} * REPS * ${#TOOLS[@]}))
START=$(date +%s)
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
log "$TOTAL runs: ${#CELLS[@]} cells x ${#TOOLS[@]} tools x $REPS repetitions, ${TIME} s each"
for c in "${CELLS[@]}"; do
	# shellcheck disable=SC2086
	set -- $c
	for ((rep = 1; rep <= REPS; rep++)); do
		for tool in "${TOOLS[@]}"; do
			run_one "$1" "$2" "$3" "$4" "$5" "$tool" "$rep" "${6:--}"
		done
	done
done
ELAPSED=$(($(date +%s) - START))
LOAD1=$(cut -d' ' -f1-3 /proc/loadavg)

up_version=$("${AS_USER[@]}" "$UP_PASTA" --version 2> /dev/null | head -1)
[ -n "$up_version" ] || up_version=$(strings "$UP_PASTA" 2> /dev/null | grep -m1 '^0\.0~git' || true)
if [ -n "${PASST_RS_PASTA:-}" ]; then
	rs_version=$PASST_RS_PASTA
else
	rs_version=$(cd "$ROOT" && git describe --always --dirty 2> /dev/null || echo unknown)
fi
cat << EOF
passt-rs benchmark, $(date -u +%Y-%m-%d\ %H:%M\ UTC)
machine: $(nproc) CPUs, kernel $(uname -r); load average $LOAD0 at start, $LOAD1 at end
runs: $REPS repetition(s) per cell and tool, ${TIME} s per throughput / request-response run, $((ELAPSED / 60)) min $((ELAPSED % 60)) s in all
passt-rs: $rs_version; upstream pasta: ${up_version:-unknown}; $("$SLIRP" --version 2> /dev/null | head -1) ($("$SLIRP" --version 2> /dev/null | grep -m1 libslirp)); $(iperf3 --version | head -1 | cut -d' ' -f1-2)

EOF
"$PY" "$TMP/report.py" table --reps "$REPS" < "$RAWTMP"
[ -n "$RAW" ] && cp "$RAWTMP" "$RAW"
exit 0
