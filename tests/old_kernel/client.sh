#!/bin/sh
# Runs as the ordinary user inside pasta's namespace (the guest of
# tests/old_kernel.rs): every transfer in /transfers ("NAME get|put ADDR
# PORT") at once, then a RESULT line for each comparing "SIZE SHA-256" of
# what arrived with /tmp/want.
cd "$(mktemp -d)" || exit 1
echo "CLIENT uid_map $(cat /proc/self/uid_map)"
ip -o addr show | grep -v ' lo ' | sed 's/^/CLIENT /'
transfer() {
    case $2 in
    get)
        timeout 60 socat -u "TCP:$3:$4" "CREATE:$1.data" 2>"$1.err"
        echo $? >"$1.rc"
        echo "$(wc -c <"$1.data") $(sha256sum <"$1.data" | cut -d' ' -f1)" >"$1.got"
        rm -f "$1.data"
        ;;
    put)
        timeout 60 socat -t 50 STDIO "TCP:$3:$4" </tmp/src >"$1.got" 2>"$1.err"
        echo $? >"$1.rc"
        ;;
    esac
}
while read -r name kind addr port; do
    transfer "$name" "$kind" "$addr" "$port" &
done </transfers
wait
want=$(cat /tmp/want)
while read -r name kind addr port; do
    got=$(cat "$name.got") rc=$(cat "$name.rc")
    if [ "$rc" = 0 ] && [ "$got" = "$want" ]; then
        echo "RESULT $name ok $got"
    else
        echo "RESULT $name FAIL rc $rc got $got want $want $(head -c 300 "$name.err" | tr '\n' ' ')"
    fi
done </transfers
