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

# The floor of a file, by its path. Today by file name; once src/ has a
# folder per floor, this becomes one pattern per folder (src/cache/*).
floor_of() {
    case ${1##*/} in
    core.h | util.c | log.[ch] | mem.[ch] | dns.[ch] | stats.[ch] | prom.[ch] | glob.[ch] | notify.[ch] | \
    config.[ch] | resp.[ch] | autoconf.h) echo lib ;;
    rstore.[ch] | rtopo.h | rstandalone.[ch] | rlink.[ch] | rlink_int.h | rdial.c | rio.[ch] | rreply.[ch] | \
    rsentinel.[ch] | rslot.[ch] | rsub.[ch] | rcluster.[ch] | rscript.[ch]) echo redis ;;
    upstream.[ch]) echo http ;;
    keys.[ch] | cache.[ch] | fill.[ch] | scripts.[ch] | lua_scripts.h | flight.[ch] | outcome.[ch] | record.[ch] | \
    writes.[ch]) echo cache ;;
    server.[ch] | conn.[ch] | req.[ch] | order.[ch] | command.[ch] | clientcmd.[ch] | clusteremu.[ch] | \
    introspect.[ch] | multi.[ch]) echo client ;;
    admin.[ch] | adminconn.[ch] | report.[ch] | demo.[ch] | health.[ch] | procstat.[ch] | heartbeat.[ch] | \
    daemons.[ch] | dashboard.h) echo admin ;;
    main.c) echo main ;;
    *) echo none ;;
    esac
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
