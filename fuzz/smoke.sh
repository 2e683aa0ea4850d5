#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# CI's fuzzing step: installs clang and libFuzzer if missing, configures a
# separate build-fuzz/ with --enable-fuzzing and runs `make fuzz-smoke`
# (each target FUZZ_SECONDS from its seed corpus; any crash fails).
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
sh "$top/scripts/deps.sh" --fuzzing
cd "$top"
[ -x configure ] && [ configure -nt configure.ac ] && [ Makefile.in -nt Makefile.am ] || autoreconf -fi >/dev/null
mkdir -p "$top/build-fuzz"
cd "$top/build-fuzz"
[ -f Makefile ] || "$top/configure" -q --enable-fuzzing --enable-werror
echo "=== libFuzzer build (build-fuzz/): make fuzz-smoke"
make -j"$(nproc)" fuzz-smoke ${FUZZ_SECONDS:+FUZZ_SECONDS=$FUZZ_SECONDS}
