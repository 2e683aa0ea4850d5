#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# Part of tests/package/check.sh: in the fresh root ROOT where the packages
# are installed, run the services as their units say (this machine may have
# no systemd as PID 1): redis-server, the example upstream, and cachasided
# from its unit's ExecStart, User= and RuntimeDirectory=; check the first-
# install answer, uncomment the example namespace, reload with the unit's
# ExecReload lines, and read product:p-001 with redis-cli on port 7379.
# Everything runs in new network and PID namespaces: the ports are the
# root's own, and every process dies when this script ends.
# Usage: e2e.sh ROOT
set -eu
root=$1
exec unshare --net --pid --fork --mount sh -c '
    set -eu
    ip link set lo up
    mount -t proc proc "$1/proc"
    exec chroot "$1" /bin/sh -s
' sh "$root" <<'INNER'
set -eu
unit=/lib/systemd/system/cachasided.service
exunit=/lib/systemd/system/cachasided-example-upstream.service
conf=/etc/cachasided/cachasided.ini
val() { sed -n "s/^$1=//p" "$2"; }
fail() { echo "FAIL: $*" >&2; for l in /tmp/*.log; do echo "--- $l"; tail -n 20 "$l"; done >&2; exit 1; }
# Poll a command (up to 10 s) until its output contains a string.
await() {
    want=$1; shift
    i=0
    until "$@" 2>&1 | grep -q -- "$want"; do
        i=$((i + 1))
        [ $i -lt 100 ] || { echo "got: $("$@" 2>&1 | head -n 5)" >&2; return 1; }
        sleep 0.1
    done
}
asuser() { u=$1; shift; setpriv --reuid="$u" --regid="$(id -g "$u")" --init-groups "$@"; }

runuser -u redis -- redis-server --port 6379 --bind 127.0.0.1 --save "" --appendonly no \
    --daemonize no >/tmp/redis.log 2>&1 &
# DynamicUser= in its unit: any unprivileged user stands in for it here.
asuser nobody $(val ExecStart $exunit) >/tmp/upstream.log 2>&1 &
await PONG redis-cli -p 6379 PING || fail "redis-server did not start"
grep -q 'listening on 127.0.0.1:8080' /tmp/upstream.log || sleep 1
grep -q 'listening on 127.0.0.1:8080' /tmp/upstream.log || fail "example upstream did not start"

user=$(val User $unit)
[ "$user" = cachasided ] || fail "the unit runs as '$user'"
rundir=/run/$(val RuntimeDirectory $unit)
mkdir -p "$rundir" && chown "$user:$(val Group $unit)" "$rundir" && chmod "$(val RuntimeDirectoryMode $unit)" "$rundir"
start=$(val ExecStart $unit)
# setpriv and sh exec in turn: $! is the daemon's pid, the unit's $MAINPID.
setpriv --reuid="$user" --regid="$(val Group $unit)" --init-groups \
    sh -c "umask $(val UMask $unit); exec $start" >/tmp/cachasided.log 2>&1 &
mainpid=$!
await PONG redis-cli -p 7379 PING || fail "cachasided did not start from the unit's ExecStart"
echo "ok: started as the unit says: $start (user $user)"
[ "$(awk '/^Uid:/ {print $2}' /proc/$mainpid/status)" = "$(id -u cachasided)" ] ||
    fail "the daemon does not run as cachasided"
await "unknown namespace" redis-cli -p 7379 HGETALL product:p-001 ||
    fail "before any edit, a key should get 'unknown namespace'"
echo "ok: first install: running, every key 'unknown namespace'"

# What docs/packaging.md tells the admin to do: uncomment the example.
sed -i '/^;\[namespace:product\]/,/^$/ s/^;\([a-z[]\)/\1/' "$conf"
grep -q '^\[namespace:product\]' "$conf" && grep -q '^upstream = http://127.0.0.1:8080/products/{id}' "$conf" ||
    fail "could not uncomment [namespace:product]"
val ExecReload $unit | while IFS= read -r line; do
    line=$(echo "$line" | sed "s/\$MAINPID/$mainpid/g")
    asuser "$user" sh -c "$line" || fail "ExecReload line failed: $line"
done
await "Espresso cup" redis-cli -p 7379 HGETALL product:p-001 || fail "HGETALL product:p-001 after the reload"
redis-cli -p 7379 HGETALL product:p-001
redis-cli -p 7379 STATS >/tmp/stats
grep -q '^misses:1' /tmp/stats && grep -q '^upstream_requests:1' /tmp/stats && grep -q '^hits:[1-9]' /tmp/stats ||
    fail "expected one miss, one upstream request, then hits: $(cat /tmp/stats)"
redis-cli -p 6379 HGET 'cache:product:{p-001}' name | grep -q 'Espresso cup' || fail "the record is not in Redis"
echo "ok: after the reload: the record from the example upstream, cached in Redis, then a hit"

# A bad file fails the reload's first line and changes nothing.
cp "$conf" /tmp/good.ini
echo "bogus_key = 1" >>"$conf"
if asuser "$user" sh -c "$(val ExecReload $unit | head -n 1)" 2>/tmp/bad.out; then
    fail "ExecReload's check passed a bad file"
fi
grep -q "$conf:[0-9]*:" /tmp/bad.out || fail "the check did not say FILE:LINE: $(cat /tmp/bad.out)"
cp /tmp/good.ini "$conf"
echo "ok: a bad file fails the reload's check ($(head -n 1 /tmp/bad.out))"

kill -TERM $mainpid
i=0
while kill -0 $mainpid 2>/dev/null; do
    i=$((i + 1)); [ $i -lt 100 ] || fail "cachasided did not stop on SIGTERM"; sleep 0.1
done
wait $mainpid || fail "cachasided exited non-zero on SIGTERM"
echo "ok: stopped on SIGTERM, exit 0"
INNER
