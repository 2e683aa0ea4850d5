#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# Configures and builds out of tree: build/ (or build-san/ with --sanitizers),
# with warnings as errors (--enable-werror), as CI builds.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
dir="$top/build"
opts="--enable-werror"
if [ "${1:-}" = "--sanitizers" ]; then
    dir="$top/build-san"
    opts="$opts --enable-sanitizers"
fi
cd "$top"
[ -x configure ] && [ configure -nt configure.ac ] && [ Makefile.in -nt Makefile.am ] || autoreconf -fi >/dev/null
mkdir -p "$dir"
cd "$dir"
# A tree configured before --enable-werror existed is configured again.
grep -q '^WERROR_CFLAGS = -Werror' Makefile 2>/dev/null || "$top/configure" -q $opts
make -j"$(nproc)" >/dev/null
echo "$dir"
