#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# Builds the Debian packages (debian/, docs/packaging.md) with
# dpkg-buildpackage -us -uc -b, after installing the build dependencies
# (as root, or through sudo). The tree is copied first, so the source
# directory (and its build/ directories) stay as they are.
#
# Usage: scripts/package.sh [OUTDIR]     OUTDIR defaults to build-deb/
# Prints the path of each .deb built, one per line, on standard output.
# DEB_BUILD_OPTIONS is passed on (nocheck skips the unit tests).
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$top/build-deb}
mkdir -p "$out"
out=$(cd "$out" && pwd)
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
cd "$top"

# The build dependencies of debian/control, plus the tools to build.
if ! command -v dpkg-buildpackage >/dev/null || ! command -v dh >/dev/null ||
    ! dpkg-checkbuilddeps >/dev/null 2>&1; then
    echo "installing the build dependencies" >&2
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        dpkg-dev debhelper build-essential >&2
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get build-dep -y -qq ./ >&2
fi

# A clean copy of the sources: the files git knows (tracked or new, not
# ignored) when this is a git tree, else everything but build output.
version=$(dpkg-parsechangelog -S Version)
src="$out/src/cachasided-${version%-*}"
rm -rf "$out/src"
mkdir -p "$src"
if git -C "$top" rev-parse --git-dir >/dev/null 2>&1; then
    git -C "$top" ls-files -z --cached --others --exclude-standard |
        (cd "$top" && xargs -0 sh -c 'for f; do [ -e "$f" ] && printf "%s\0" "$f"; done' sh) |
        (cd "$top" && tar --null -T - -cf -) | tar -xf - -C "$src"
else
    tar -C "$top" --exclude='./build*' --exclude='./autom4te.cache' -cf - . | tar -xf - -C "$src"
fi

cd "$src"
log="$out/build.log"
if ! dpkg-buildpackage -us -uc -b >"$log" 2>&1; then
    tail -n 60 "$log" >&2
    echo "package.sh: dpkg-buildpackage failed; whole log: $log" >&2
    exit 1
fi
# dpkg-buildpackage writes next to the source directory.
rm -f "$out"/*.deb "$out"/*.changes "$out"/*.buildinfo
mv "$out/src"/*.deb "$out/src"/*.changes "$out/src"/*.buildinfo "$out/"
rm -rf "$out/src"
ls "$out"/*.deb
