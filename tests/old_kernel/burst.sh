#!/bin/sh
# Server of tests/old_kernel.rs (socat EXEC with nofork: stdout is the
# TCP socket): writes /tmp/src in bursts of 64 KiB to 1 MiB, pausing 50 ms
# after each, the pattern that got downloads cut short on the fallback path.
total=$(($(wc -c </tmp/src) / 65536)) pos=0
while [ $pos -lt $total ]; do
    for n in 1 16 3 8 2 12 1 4 6 16; do
        [ $pos -lt $total ] || break
        dd if=/tmp/src bs=64k skip=$pos count=$n 2>/dev/null || exit 1
        pos=$((pos + n))
        sleep 0.05
    done
done
