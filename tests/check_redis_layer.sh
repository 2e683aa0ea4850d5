#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# The Redis layer stands on its own (docs/design.md, "The Redis layer"):
#   - hiredis is used through its public API only: no write into its
#     contexts (obuf, flags, err, errstr), no sds, no async context;
#   - it reads no configuration (no config.h, no cs_conf) and includes
#     no module of the layers above it (cache, client, admin);
#   - it names none of the cache's scripts (lua_scripts.h, LUA_*);
#   - rstore.c dispatches through the topology table, not a mode switch;
#   - the cache uses the layer through rstore.h only.
# Names each offending line.
#
# Usage: check_redis_layer.sh [SRCDIR]   (SRCDIR: $srcdir, else ..)
# Exit: 0 clean, 1 otherwise.

case $0 in
*/*) here=${0%/*} ;;
*) here=. ;;
esac
top=${1:-${srcdir:-$here/..}}
src=$top/src

# The Redis layer's files (its folder), and the cache's.
redis=$(cd "$src/redis" && ls *.[ch])
cache=$(cd "$src/cache" && ls *.[ch])

rc=0
fail() {
	echo "FAIL: $1"
	rc=1
}

files=""
for f in $redis; do
	files="$files $src/redis/$f"
done

# Fields of hiredis's contexts, and its sds strings and async API.
grep -nE -- '->(obuf|err|errstr)\b|->c\.|\bc->flags\b|\bsds[a-z]*\(|\bsds\b|redisAsync|hiredis/(async|sds)\.h' $files &&
	fail "the Redis layer reaches into hiredis beyond its public reply type"
grep -nE '#include "(config|cache|fill|flight|writes|record|outcome|scripts|conn|req|command|server|admin|order|multi)\.h"|\bcs_conf\b' $files &&
	fail "the Redis layer includes a module above it, or reads the configuration"
grep -nE 'lua_scripts\.h|\bLUA_[A-Z]+\b' $files &&
	fail "the Redis layer names the cache's scripts"
grep -nE '\bRM_(STANDALONE|SENTINEL|CLUSTER)\b|switch \(rs_|rs_mode' $files &&
	fail "the Redis layer switches on the mode instead of calling its topology"

for f in $cache; do
	grep -nE '#include "r(link|link_int|topo|standalone|cluster|sentinel|sub|io|reply|script|slot)\.h"' "$src/cache/$f" &&
		fail "$f uses the Redis layer beyond rstore.h"
done

[ $rc = 0 ] && echo "PASS: the Redis layer uses hiredis's public API only, reads no configuration, knows no cache"
exit $rc
