#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# Hit-path benchmark: redis-benchmark against cachasided (cached keys) and,
# for reference, against the Redis behind it with the equivalent command.
# Everything runs on loopback ports picked here; nothing is left running.
#
# Usage: bench/hit.sh [BUILD_DIR]   (default: build/, made by scripts/build.sh)
# Env:   N (requests, 200000), C (clients, 50), P (pipeline depth, 1 and 16),
#        SCRAPE=1: a client scrapes /metrics 10 times a second meanwhile (the
#        admin endpoint must not move the hit path beyond noise)
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
dir=${1:-$top/build}
N=${N:-200000}
C=${C:-50}
P=${P:-"1 16"}
RP=${RP:-16390}
UP=${UP:-18090}
DP=${DP:-17390}
AP=${AP:-17391}
SCRAPE=${SCRAPE:-0}
run=$(mktemp -d /tmp/cachasided-bench.XXXXXX)
pids=""
stop() {
    for p in $pids; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$run"
}
trap stop EXIT INT TERM

redis-server --port "$RP" --bind 127.0.0.1 --save "" --appendonly no >"$run/redis.log" 2>&1 &
pids="$pids $!"
"$dir/tests/cachasided-example-upstream" -p "$UP" -g 1000 -q >"$run/upstream.log" 2>&1 &
pids="$pids $!"
cat >"$run/c.ini" <<INI
[server]
listen = 127.0.0.1:$DP
admin_listen = 127.0.0.1:$AP
log_level = warning
[redis]
port = $RP
[cache]
ttl_s = 3600
[namespace:product]
upstream = http://127.0.0.1:$UP/products/{id}
INI
until redis-cli -p "$RP" PING 2>/dev/null | grep -q PONG; do sleep 0.1; done
"$dir/src/cachasided" -c "$run/c.ini" 2>"$run/cachasided.log" &
pids="$pids $!"
until redis-cli -p "$DP" PING 2>/dev/null | grep -q PONG; do sleep 0.1; done

redis-cli -p "$DP" HGETALL product:p-0001 >/dev/null      # the miss that caches it
if [ "$SCRAPE" = 1 ]; then
    # Bounded: at most 10 minutes of scraping, stopped with the rest.
    ( i=0; while [ $i -lt 6000 ]; do curl -s -o /dev/null "127.0.0.1:$AP/metrics"; sleep 0.1; i=$((i + 1)); done ) &
    pids="$pids $!"
    echo "(scraping /metrics 10 times a second)"
fi
for p in $P; do
    echo "== pipeline $p, $C clients, $N requests"
    printf 'cachasided HGET (hit):   '
    redis-benchmark -p "$DP" -n "$N" -c "$C" -P "$p" -q HGET product:p-0001 name | tr '\r' '\n' | tail -1
    printf 'cachasided HGETALL (hit):'
    redis-benchmark -p "$DP" -n "$N" -c "$C" -P "$p" -q HGETALL product:p-0001 | tr '\r' '\n' | tail -1
    printf 'redis HGETALL (direct):  '
    redis-benchmark -p "$RP" -n "$N" -c "$C" -P "$p" -q HGETALL 'cache:product:{p-0001}' | tr '\r' '\n' | tail -1
done
echo "upstream requests: $(redis-cli -p "$DP" STATS | tr -d '\r' | sed -n 's/^upstream_requests://p')"
