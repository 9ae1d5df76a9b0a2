#!/usr/bin/env bash
# What jvmalloc's statistics cost.
# 1. malloc/free throughput (c-tests/throughput.c, 16 threads, cross-thread frees) under
#    jvmalloc as built (jemalloc statistics on: the counters dumps are made of), the same
#    library built without statistics (--no-default-features --features profiling: jemalloc
#    without statistics, same version, options and profiling build, so that only counting
#    differs), Debian's libjemalloc2 (what Flink's image preloads), and glibc.
#    Alternating runs, median of REPEAT (default 7), ratios to jvmalloc.
# 2. Dump latency with 500 live threads (c-tests/dump_latency.c), text and JSON.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=bench-lib.sh
. "$(dirname "$0")/bench-lib.sh"
REPEAT=${REPEAT:-7}
THREADS=${THREADS:-16}
OPS=${OPS:-1000000}
bench_build throughput dump_latency
cargo build --release -q --lib --no-default-features --features profiling --target-dir target/bench-nostats
NOSTATS="$PWD/target/bench-nostats/release/libjvmalloc.so"
alloc_env libjemalloc2
JEMALLOC2=${ALLOC_ENV[0]#LD_PRELOAD=}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
names=(jvmalloc jvmalloc-nostats libjemalloc2 glibc)
preload=("$LIB" "$NOSTATS" "$JEMALLOC2" "")
for _ in $(seq "$REPEAT"); do
    for i in "${!names[@]}"; do
        env LD_PRELOAD="${preload[$i]}" "$BIN/throughput" "$THREADS" "$OPS" >>"$tmp/${names[$i]}"
    done
done
echo "Machine: $(machine)"
echo "Command: scripts/bench-stats.sh (REPEAT=$REPEAT THREADS=$THREADS OPS=$OPS)"
echo
echo "Throughput, $THREADS threads x $OPS malloc/free, median of $REPEAT alternating runs:"
echo
echo "| allocator | Mops/s | throughput vs jvmalloc |"
echo "|---|---|---|"
base=$(field mops_per_s <"$tmp/jvmalloc" | median)
for n in "${names[@]}"; do
    m=$(field mops_per_s <"$tmp/$n" | median)
    printf "| %s | %.1f | %.3f |\n" "$n" "$m" "$(echo "$m / $base" | bc -l)"
done
if command -v valgrind >/dev/null; then
    echo
    echo "Instructions (valgrind --tool=callgrind, deterministic), 1 thread x 200000 malloc/free,"
    echo "whole program including its own work:"
    echo
    echo "| allocator | instructions | vs jvmalloc |"
    echo "|---|---|---|"
    declare -A ir
    for i in "${!names[@]}"; do
        ir[${names[$i]}]=$(instructions LD_PRELOAD="${preload[$i]}" "$BIN/throughput" 1 200000)
    done
    for n in "${names[@]}"; do
        printf "| %s | %s | %.3f |\n" "$n" "${ir[$n]}" "$(echo "${ir[$n]} / ${ir[jvmalloc]}" | bc -l)"
    done
fi
echo
echo "Dump latency, 500 live threads, 20 dumps each (jvmalloc_dump_stats to a file):"
echo
echo "| format | median ms | max ms |"
echo "|---|---|---|"
for fmt in text json; do
    line=$(JVMALLOC_STATS_FORMAT=$fmt JVMALLOC_STATS_FILE="$tmp/dump-%n" LD_PRELOAD="$LIB" "$BIN/dump_latency" 500 20)
    printf "| %s | %s | %s |\n" "$fmt" "$(echo "$line" | field median_ms)" "$(echo "$line" | field max_ms)"
done
