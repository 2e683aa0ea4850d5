#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# The source is one house of floors (docs/design.md, "Floors"): a file may
# include headers of its own floor and the floors below it, never above.
# From the bottom: lib, redis, http, cache, client, admin, main. Fails
# naming FILE:LINE for every include of a header from a higher floor, and
# any source file or included header that has no floor.
#
# Usage: check_floors.sh [SRCDIR]   (SRCDIR defaults to $srcdir, set by make check)
case $0 in
*/*) here=${0%/*} ;;
*) here=. ;;
esac
src=${1:-${srcdir:-$here/..}}

# The floor of a source file is its folder (src/cache/fill.c: cache); of an
# included header, the folder that holds it (the build gives each folder an
# include path of itself and the floors below, docs/architecture.md, so an
# upward include does not even compile: this names it plainly). Generated
# headers: lua_scripts.h is the cache's scripts, dashboard.h the admin page.
floor_of() {
    case $1 in
    src/main.c) echo main; return ;;
    src/lib/* | src/redis/* | src/http/* | src/cache/* | src/client/* | src/admin/*)
        f=${1#src/}; echo "${f%%/*}"; return ;;
    src/*) echo none; return ;;
    esac
    case $1 in
    autoconf.h) echo lib; return ;;
    lua_scripts.h) echo cache; return ;;
    dashboard.h) echo admin; return ;;
    esac
    for d in lib redis http cache client admin; do
        [ -f "$src/src/$d/$1" ] && { echo "$d"; return; }
    done
    echo none
}

level() {
    case $1 in
    lib) echo 0 ;; redis) echo 1 ;; http) echo 2 ;; cache) echo 3 ;;
    client) echo 4 ;; admin) echo 5 ;; main) echo 6 ;; *) echo 99 ;;
    esac
}

bad=0
for f in "$src"/src/*.[ch] "$src"/src/*/*.[ch]; do
    [ -f "$f" ] || continue
    rel=${f#"$src"/}
    floor=$(floor_of "$rel")
    if [ "$floor" = none ]; then
        echo "$rel: has no floor (add it to tests/check_floors.sh)"
        bad=$((bad + 1))
        continue
    fi
    mine=$(level "$floor")
    # "LINE HEADER" for each #include "HEADER".
    incs=$(awk '/^[ \t]*#[ \t]*include[ \t]*"/ { s = $0; sub(/^[^"]*"/, "", s); sub(/".*/, "", s); print FNR, s }' "$f")
    while read -r line hdr; do
        [ -n "$hdr" ] || continue
        hf=$(floor_of "$hdr")
        if [ "$hf" = none ]; then
            echo "$rel:$line: includes $hdr, which has no floor (add it to tests/check_floors.sh)"
            bad=$((bad + 1))
        elif [ "$(level "$hf")" -gt "$mine" ]; then
            echo "$rel:$line: includes $hdr ($hf floor) from the $floor floor"
            bad=$((bad + 1))
        fi
    done <<INCS
$incs
INCS
done
[ "$bad" -eq 0 ] || { echo "$bad include(s) against the floors"; exit 1; }
echo "every include is of the file's own floor or one below"
