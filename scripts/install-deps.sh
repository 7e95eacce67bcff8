#!/bin/sh
# Installs what building and testing passt-rs needs on Debian 12 (as root):
# the tools the integration tests drive, and a Rust toolchain if none is there.
set -eu
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends \
    ca-certificates curl gcc libc6-dev pkg-config \
    iproute2 iputils-ping util-linux procps \
    iperf3 socat busybox isc-dhcp-client ndisc6 dnsutils tcpdump \
    dnsmasq-base slirp4netns python3 \
    qemu-system-x86 cpio kmod
# tests/old_kernel.rs boots Debian 12's Linux 6.1 under qemu: fetch it.
sh "$(dirname "$0")/old-kernel.sh"
if ! command -v cargo >/dev/null 2>&1; then
    echo "install-deps: no cargo found; install Rust with rustup (https://rustup.rs)" >&2
    exit 1
fi
