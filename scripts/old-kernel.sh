#!/bin/sh
# Fetches (does not install) what tests/old_kernel.rs boots under qemu:
# Debian 12's cloud kernel (Linux 6.1, no SO_PEEK_OFF for TCP), the `tun`
# and `dummy` modules with their dependencies, and a static busybox. Run as
# root after `apt-get update` (scripts/install-deps.sh does both).
#
# Usage: scripts/old-kernel.sh [DIR]   (default: $PASST_RS_OLD_KERNEL or
# /var/cache/passt-rs/old-kernel). Idempotent: with DIR complete it does
# nothing. DIR then holds:
#   vmlinuz        the kernel image
#   release        its release, e.g. 6.1.0-57-cloud-amd64
#   busybox        busybox-static's binary (any busybox on the host is left alone)
#   modules/*.ko   the modules, and modules/order listing them in load order
set -eu
dir=${1:-${PASST_RS_OLD_KERNEL:-/var/cache/passt-rs/old-kernel}}
if [ -s "$dir/vmlinuz" ] && [ -s "$dir/release" ] && [ -x "$dir/busybox" ] &&
    [ -s "$dir/modules/order" ]; then
    exit 0
fi

# The package the meta-package currently depends on: linux-image-6.1.0-N-cloud-amd64.
pkg=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null |
    sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*\)$/\1/p' | head -n 1)
if [ -z "$pkg" ]; then
    echo "old-kernel: apt knows no linux-image-cloud-amd64; run apt-get update first" >&2
    exit 1
fi
release=${pkg#linux-image-}

mkdir -p "$(dirname "$dir")"
work=$(mktemp -d "$(dirname "$dir")/.old-kernel.XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work"
apt-get download -q -o APT::Sandbox::User=root "$pkg" busybox-static
dpkg-deb -x linux-image-*.deb tree
dpkg-deb -x busybox-static_*.deb tree

out=$work/out
mkdir -p "$out/modules"
cp "tree/boot/vmlinuz-$release" "$out/vmlinuz"
cp tree/bin/busybox "$out/busybox"
echo "$release" >"$out/release"
# The package ships no modules.dep (its postinst makes it): make it here.
depmod -b tree "$release"
modprobe -d tree -S "$release" --show-depends -a tun dummy |
    awk '$1 == "insmod" { print $2 }' >paths
[ "$(wc -l <paths)" -ge 2 ] || { echo "old-kernel: tun/dummy not found as modules" >&2; exit 1; }
while read -r ko; do
    cp "$ko" "$out/modules/"
    basename "$ko" >>"$out/modules/order"
done <paths

rm -rf "$dir"
mv "$out" "$dir"
echo "old-kernel: Linux $release, busybox and modules $(tr '\n' ' ' <"$dir/modules/order")in $dir"
