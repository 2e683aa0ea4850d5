#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# The quick start: installs what is missing, builds, and runs on loopback a
# redis-server, the example upstream (with a 200 ms latency, so misses and
# stampedes are visible) and cachasided pointing at both. Ctrl-C stops all.
# Ports: REDIS_PORT (6390), UPSTREAM_PORT (8080), PORT (7379), ADMIN_PORT (7380).
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
REDIS_PORT=${REDIS_PORT:-6390}
UPSTREAM_PORT=${UPSTREAM_PORT:-8080}
PORT=${PORT:-7379}
ADMIN_PORT=${ADMIN_PORT:-7380}
sh "$top/scripts/deps.sh"
dir=$(sh "$top/scripts/build.sh")
run=$(mktemp -d /tmp/cachasided-demo.XXXXXX)
pids=""
stop() {
    trap - INT TERM EXIT
    echo
    echo "stopping..."
    for p in $pids; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$run"
    exit 0
}
trap stop INT TERM EXIT

redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --daemonize no \
    >"$run/redis.log" 2>&1 &
pids="$pids $!"
"$dir/tests/cachasided-example-upstream" -p "$UPSTREAM_PORT" -f "$top/tests/catalogue.json" -g 100 -l 200 -q \
    >"$run/upstream.log" 2>&1 &
pids="$pids $!"
cat >"$run/cachasided.ini" <<INI
[server]
listen = 127.0.0.1:$PORT
admin_listen = 127.0.0.1:$ADMIN_PORT
admin_demo = yes
[redis]
port = $REDIS_PORT
[cache]
ttl_s = 60
[namespace:product]
upstream = http://127.0.0.1:$UPSTREAM_PORT/products/{id}
format = hash
[namespace:page]
upstream = http://127.0.0.1:$UPSTREAM_PORT/pages/{id}
format = raw
INI
# Wait (up to 5 s) for a port to answer, or say which log to read.
wait_port() {
    i=0
    until redis-cli -p "$1" PING 2>/dev/null | grep -q PONG || curl -sf -o /dev/null "127.0.0.1:$1/_count"; do
        i=$((i + 1))
        [ $i -lt 50 ] || { echo "$2 did not start; see its log:"; cat "$run/$2.log"; exit 1; }
        sleep 0.1
    done
}
wait_port "$REDIS_PORT" redis
wait_port "$UPSTREAM_PORT" upstream
"$dir/src/cachasided" -c "$run/cachasided.ini" 2>"$run/cachasided.log" &
pids="$pids $!"
wait_port "$PORT" cachasided
cat <<TXT

cachasided is listening on 127.0.0.1:$PORT (Redis on $REDIS_PORT, example upstream on $UPSTREAM_PORT).

  Dashboard: http://127.0.0.1:$ADMIN_PORT/   (read a key, update it, run a stampede)
  Metrics:   http://127.0.0.1:$ADMIN_PORT/metrics

Try, in another terminal:
  redis-cli -p $PORT HGETALL product:p-001        # a miss: ~200 ms, fetched from the upstream
  redis-cli -p $PORT HGETALL product:p-001        # a hit: from Redis
  redis-cli -p $PORT HGET product:p-002 name
  redis-cli -p $PORT GET page:readme              # a raw namespace
  redis-cli -p $PORT HGETALL product:nope         # not found: empty, cached for negative_ttl_s
  redis-cli -p $PORT TTL product:p-001
  redis-cli -p $PORT DEL product:p-001
  for i in \$(seq 50); do redis-cli -p $PORT HGET product:p-050 name & done; wait   # a stampede
  curl -s 127.0.0.1:$UPSTREAM_PORT/_count; echo    # how many reads reached the upstream: 1 per key
  redis-cli -p $PORT STATS
Logs: $run/{redis,upstream,cachasided}.log. Press Ctrl-C to stop everything.
TXT
wait
