#!/bin/sh
# Configures and builds out of tree: build/ (or build-san/ with --sanitizers).
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
dir="$top/build"
opts=""
if [ "${1:-}" = "--sanitizers" ]; then
    dir="$top/build-san"
    opts="--enable-sanitizers"
fi
cd "$top"
[ -x configure ] && [ configure -nt configure.ac ] && [ Makefile.in -nt Makefile.am ] || autoreconf -fi >/dev/null
mkdir -p "$dir"
cd "$dir"
[ -f Makefile ] || "$top/configure" -q $opts
make -j"$(nproc)" >/dev/null
echo "$dir"
