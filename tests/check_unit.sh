#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# Rate the sandboxing of the systemd unit with `systemd-analyze security`.
#
# Usage: check_unit.sh [SRCDIR]
#   SRCDIR defaults to $srcdir (set by `make check`), else the parent of the
#   directory holding this script.
# Exit: 0 exposure <= 2.0, 1 worse (or the unit cannot be rated),
#       77 (skip) when systemd-analyze or its --offline mode is missing.

MAX_EXPOSURE=2.0

case $0 in
*/*) here=${0%/*} ;;
*) here=. ;;
esac
src=${1:-${srcdir:-$here/..}}
unit_in=$src/systemd/cachasided.service.in

if ! command -v systemd-analyze >/dev/null 2>&1; then
	echo "SKIP: systemd-analyze not found"
	exit 77
fi
if [ ! -r "$unit_in" ]; then
	echo "FAIL: $unit_in not readable"
	exit 1
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/cachasided-unit.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT HUP INT TERM

# The unit file name must end in .service for systemd-analyze.
sed -e 's|@bindir@|/usr/local/bin|g' \
    -e 's|@sysconfdir@|/usr/local/etc|g' \
    -e 's|@sbindir@|/usr/local/sbin|g' \
    "$unit_in" >"$tmp/cachasided.service" || exit 1

if grep -n '@[A-Za-z_]*@' "$tmp/cachasided.service"; then
	echo "FAIL: unsubstituted placeholder left in the unit"
	exit 1
fi

out=$(systemd-analyze security --offline=true "$tmp/cachasided.service" 2>&1)
rc=$?
level=$(printf '%s\n' "$out" |
	sed -n 's/.*Overall exposure level for [^:]*: *\([0-9][0-9]*\(\.[0-9]*\)\{0,1\}\).*/\1/p' |
	head -n 1)

if [ -z "$level" ]; then
	case $out in
	*"unrecognized option"* | *"Unknown option"* | *"unknown option"*)
		echo "SKIP: this systemd-analyze has no --offline mode"
		exit 77 ;;
	esac
	printf '%s\n' "$out"
	echo "FAIL: no exposure level in systemd-analyze output (exit $rc)"
	exit 1
fi

echo "exposure level: $level (limit $MAX_EXPOSURE)"
if awk -v l="$level" -v m="$MAX_EXPOSURE" 'BEGIN { exit !(l + 0 > m + 0) }'; then
	printf '%s\n' "$out" | grep '✗'
	echo "FAIL: exposure $level > $MAX_EXPOSURE"
	exit 1
fi
echo "PASS"
exit 0
