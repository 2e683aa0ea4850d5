#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# The benchmark on a fresh machine: installs what is missing (the peers
# too), builds, runs bench/run with the arguments given (bench/README.md).
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
sh "$top/scripts/deps.sh" --bench
dir=$(sh "$top/scripts/build.sh")
exec "$top/bench/run" --build "$dir" "$@"
