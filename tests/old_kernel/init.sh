#!/bin/sh
# PID 1 of the Linux 6.1 guest that tests/old_kernel.rs boots under qemu:
# loads tun and dummy, gives the guest a network of its own (no device
# leaves the VM), starts the servers on that stack, runs pasta as an
# ordinary user with /client.sh inside its namespace, powers off.
# Prints KERNEL, SHA, RESULT and DONE lines on the serial console.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs -o mode=1777 tmp /tmp
exec </dev/null >/dev/console 2>&1
echo "KERNEL $(uname -r)"
. /params # BLOCKS (64 KiB each) of data, PASTA_TIMEOUT in seconds

for m in $(cat /modules/order); do
    insmod "/modules/$m" || echo "RESULT insmod-$m FAIL"
done
mkdir -p /dev/net
[ -e /dev/net/tun ] || mknod /dev/net/tun c 10 200
chmod 0666 /dev/net/tun
sysctl -qw net.ipv4.ping_group_range="0 2147483647"

# The "host" for pasta: dum0, the template interface it copies, with a
# default route via the gateway 192.0.2.2 / 2001:db8:1::2 (which pasta maps
# to this guest's loopback), plus "far" addresses on lo that pasta's
# namespace reaches through its sockets like any remote host.
ip link set lo up
ip link add dum0 type dummy
echo 0 >/proc/sys/net/ipv6/conf/dum0/accept_dad
ip link set dum0 up
ip addr add 192.0.2.1/24 dev dum0
ip -6 addr add 2001:db8:1::1/64 dev dum0
ip route add default via 192.0.2.2 dev dum0
ip -6 route add default via 2001:db8:1::2 dev dum0
ip addr add 198.51.100.3/32 dev lo
ip -6 addr add 2001:db8:2::3/128 dev lo

# The data every transfer carries, and what each end must see of it.
dd if=/dev/urandom of=/tmp/src bs=64k count="$BLOCKS" 2>/dev/null
echo "$(wc -c </tmp/src) $(sha256sum </tmp/src | cut -d' ' -f1)" >/tmp/want
echo "SHA $(cat /tmp/want)"

# 5001: the file as fast as it goes; 5002: in bursts with pauses (/burst.sh
# writes to the socket itself: nofork); 5003: uploads, answered with the
# size and SHA-256 of what arrived (/sink.sh).
for v in 4 6; do
    opt=reuseaddr,fork
    [ $v = 6 ] && opt=$opt,ipv6only=1
    socat TCP$v-LISTEN:5001,$opt OPEN:/tmp/src,rdonly &
    socat TCP$v-LISTEN:5002,$opt EXEC:/burst.sh,nofork &
    socat TCP$v-LISTEN:5003,$opt EXEC:/sink.sh,nofork &
done
timeout 10 sh -c 'until [ "$(netstat -ltn | grep -c ":500[123] ")" = 6 ]; do sleep 0.1; done' ||
    echo "RESULT servers FAIL not listening"

echo "PASTA start"
timeout "$PASTA_TIMEOUT" su -s /bin/sh tester -c 'pasta --config-net -- /bin/sh /client.sh'
echo "PASTA exit $?"
echo DONE
poweroff -f
