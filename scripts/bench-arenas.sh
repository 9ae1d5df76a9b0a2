#!/usr/bin/env bash
# Arena count: throughput and peak RSS of c-tests/throughput.c (16 threads, cross-thread
# frees) under jvmalloc with JVMALLOC_ARENAS = 1, 2, 4, 8, 16, and jemalloc's own default
# (4 x CPUs). Runs alternate between settings so machine drift hits all of them; each is
# repeated REPEAT times (default 7) and the medians are printed with ratios to 1 arena per CPU.
# Also runs the same with the process pinned to one CPU (taskset -c 0).
set -euo pipefail
. "$(dirname "$0")/bench-lib.sh"
REPEAT=${REPEAT:-7}
THREADS=${THREADS:-16}
OPS=${OPS:-1000000}
bench_build throughput
cpus=$(nproc)
settings="1 2 4 8 16"

run_set() { # prefix command (e.g. "taskset -c 0"), label
    local pin=$1 ncpu=$2 tmp
    tmp=$(mktemp -d)
    for _ in $(seq "$REPEAT"); do
        for a in $settings; do
            env JVMALLOC_ARENAS="$a" LD_PRELOAD="$LIB" $pin "$BIN/throughput" "$THREADS" "$OPS" >>"$tmp/$a"
        done
    done
    local base
    base=$(field mops_per_s <"$tmp/$ncpu" | median)
    echo
    echo "$3: $THREADS threads x $OPS ops, median of $REPEAT runs"
    echo
    echo "| arenas | Mops/s | vs $ncpu arena(s) | peak RSS MiB |"
    echo "|---|---|---|---|"
    for a in $settings; do
        local m h
        m=$(field mops_per_s <"$tmp/$a" | median)
        h=$(field hwm_kb <"$tmp/$a" | median)
        printf "| %s%s | %.1f | %.2f | %.1f |\n" "$a" "$([ "$a" = $((4 * ncpu)) ] && echo " (jemalloc default)")" "$m" "$(echo "$m / $base" | bc -l)" "$(echo "$h / 1024" | bc -l)"
    done
    rm -rf "$tmp"
}
echo "Machine: $(machine)"
echo "Command: scripts/bench-arenas.sh (REPEAT=$REPEAT THREADS=$THREADS OPS=$OPS)"
run_set "" "$cpus" "All $cpus CPUs"
run_set "taskset -c 0" 1 "Pinned to 1 CPU"
