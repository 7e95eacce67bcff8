#!/bin/sh
# Upload server of tests/old_kernel.rs (socat EXEC with nofork: stdin and
# stdout are the TCP socket): reads to the client's FIN, answers with the
# size and SHA-256 of what arrived ("SIZE SHA").
f=$(mktemp)
cat >"$f"
echo "$(wc -c <"$f") $(sha256sum <"$f" | cut -d' ' -f1)"
rm -f "$f"
