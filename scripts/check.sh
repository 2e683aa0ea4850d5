#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# The whole test suite: installs what is missing, builds, runs `make check`
# (unit tests and integration tests against a real redis-server and the
# example upstream). --sanitizers does the same in an ASan+UBSan build.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
sh "$top/scripts/deps.sh"
dir=$(sh "$top/scripts/build.sh" "$@")
cd "$dir"
status=0
make -j"$(nproc)" check || status=$?
# One closing line for people and CI: the Check totals of every suite.
for f in tests/*.log; do
    [ -f "$f" ] || continue
    case "$status" in 0) ;; *) grep -q '^FAIL\|^ERROR' "${f%.log}.trs" 2>/dev/null && { echo "--- $f"; tail -40 "$f"; } ;; esac
done
awk '/^[0-9]+%: Checks: /{c+=$3; f+=$5; e+=$7} END {printf "check: %d passed, %d failed\n", c-f-e, f+e}' \
    $(ls tests/*.log 2>/dev/null | grep -v test-suite) | tr -d ','
exit $status
