#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# Runs one libFuzzer target from its seed corpus:
#   sh fuzz/run.sh BUILD/fuzz/fuzz_NAME SRCDIR/fuzz [libFuzzer options...]
# e.g. -max_total_time=60 (make fuzz-smoke) or -runs=10000000 (a long run).
# New inputs go to fuzz/work/NAME/ in the build directory, never into the
# committed corpus; a crash leaves fuzz/artifacts/NAME-crash-* and fails.
set -eu
bin=$1
src=$2
shift 2
name=$(basename "$bin")
dir=$(dirname "$bin")
mkdir -p "$dir/work/$name" "$dir/artifacts"
dict=""
[ -f "$src/dict/$name.dict" ] && dict="-dict=$src/dict/$name.dict"
# Inputs big enough for every limit the target sets, small enough to be fast.
case $name in
    fuzz_resp) len=-max_len=1024 ;;
    fuzz_upstream) len=-max_len=6000 ;;
    fuzz_config) len=-max_len=2048 ;;
    *) len=-max_len=8192 ;;
esac
# Our own sanitizer settings, whatever the caller exported (CI's log_path
# would hide the report from the log below).
# A smaller quarantine, no fill of new blocks and short allocation stacks
# make a run about half again as fast; use-after-free and leaks still show.
ASAN_OPTIONS="detect_leaks=1:allocator_may_return_null=0:quarantine_size_mb=32:max_malloc_fill_size=0:malloc_context_size=10:allocator_release_to_os_interval_ms=-1"
UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export ASAN_OPTIONS UBSAN_OPTIONS
log="$dir/$name.log"
echo "=== $name $*"
status=0
"$bin" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$dir/artifacts/$name-" \
    $dict $len "$@" "$dir/work/$name" "$src/corpus/$name" >"$log" 2>&1 || status=$?
# The summary lines: coverage, executions, rate; the report when it failed.
grep -E '^#[0-9]+.*(INITED|DONE)|^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)' "$log" || true
if [ "$status" -ne 0 ]; then
    echo "$name FAILED (exit $status); the report:"
    grep -v -E '^#[0-9]|^INFO:|^Dictionary:|NEW_FUNC' "$log" | tail -n 60
    ls "$dir/artifacts/" | sed "s|^|  artifact: $dir/artifacts/|"
fi
exit "$status"
