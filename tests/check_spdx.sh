#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# Every source file carries the project's licence as one SPDX line near its
# top (LICENSE; the convention is in README.md, "Licence"). Lists the files
# that lack it and fails.
#
# Usage: check_spdx.sh [SRCDIR]   (SRCDIR defaults to $srcdir, set by make check)
case $0 in
*/*) here=${0%/*} ;;
*) here=. ;;
esac
src=${1:-${srcdir:-$here/..}}
tag='SPDX-License-Identifier: BSD-3-Clause'
missing=0
for f in "$src"/src/*.[ch] "$src"/src/*/*.[ch] "$src"/tests/*.[ch] "$src"/tests/*.py "$src"/tests/*.sh \
         "$src"/tests/*/*.py "$src"/tests/*/*.sh "$src"/tests/*/*.mjs "$src"/lua/*.lua "$src"/lua/*.sh \
         "$src"/web/*.js "$src"/web/*.css "$src"/web/*.html "$src"/web/*.sh "$src"/scripts/*.sh \
         "$src"/bench/*.py "$src"/bench/*.sh "$src"/bench/*.c "$src"/bench/run "$src"/bench/sidecars \
         "$src"/fuzz/*.c "$src"/fuzz/*.sh "$src"/Makefile.am "$src"/configure.ac; do
    [ -f "$f" ] || continue
    if ! head -n 3 "$f" | grep -q "$tag"; then
        echo "no SPDX line in the first 3 lines: ${f#"$src"/}"
        missing=$((missing + 1))
    fi
done
[ "$missing" -eq 0 ] || { echo "$missing file(s) without '$tag'"; exit 1; }
echo "every source file has its SPDX line"
