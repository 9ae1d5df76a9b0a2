#!/usr/bin/env bash
# What idle threads keep in their thread caches, and what bounding the caches costs.
#
#   scripts/bench-tcache.sh
#
# jemalloc empties a thread's cache only as that thread allocates (a GC pass every
# tcache_gc_incr_bytes it allocates or frees), when the cache overflows, or when the thread
# exits: a thread that stopped allocating keeps what it had. The only bounds are on capacity.
# For each setting in CONFS (appended through JVMALLOC_JEMALLOC_CONF; "default" is
# jvmalloc's defaults), all runs in scope (JVMALLOC_PROCESSES='*'):
#   1. c-tests/burst.c: 32 threads burst and then idle; a dump (`jvmalloc dump --format
#      json`) IDLE_DUMP_S (default 7) seconds after start gives the bytes in thread caches;
#      RSS after 10 s idle from the program's own line. Median of REPEAT (default 3).
#   2. Instructions (valgrind --tool=callgrind, deterministic), 1 thread:
#      c-tests/throughput.c (16 B - 256 KiB, cross-thread frees); c-tests/bench/blocks.c
#      with blocks of 4 - 16 KiB and of 16 - 32 KiB (a block cache, 64 blocks per thread).
# A benchmark: it prints figures and asserts nothing.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=bench-lib.sh
. "$(dirname "$0")/bench-lib.sh"
REPEAT=${REPEAT:-3}
IDLE_DUMP_S=${IDLE_DUMP_S:-7}
CONFS=${CONFS:-"default tcache_ncached_max:4097-32768:2 tcache_ncached_max:16385-32768:2 tcache_max:16384 tcache_max:4096 tcache_gc_incr_bytes:16384"}
unset "${!JVMALLOC_@}"
bench_build burst throughput
cargo build --release -q -p jvmalloc-cli
gcc -O2 -g -fno-builtin -pthread -I c-tests -o "$BIN/blocks" c-tests/bench/blocks.c -ldl
CLI="$PWD/target/release/jvmalloc"
OUT=$PWD/target/bench-tcache
rm -rf "$OUT"
mkdir -p "$OUT"
run_env() { # conf
    RENV=(LD_PRELOAD="$LIB" "JVMALLOC_PROCESSES=*")
    [ "$1" = default ] || RENV+=("JVMALLOC_JEMALLOC_CONF=$1")
}
conf_instructions() { # conf, program and arguments...
    run_env "$1"
    shift
    instructions "${RENV[@]}" "$@"
}
echo "Machine: $(machine)"
echo "Command: scripts/bench-tcache.sh (REPEAT=$REPEAT IDLE_DUMP_S=$IDLE_DUMP_S)"
echo
for _ in $(seq "$REPEAT"); do
    for c in $CONFS; do
        run_env "$c"
        env "${RENV[@]}" "$BIN/burst" observe 10000 >"$OUT/burst.out" &
        pid=$!
        sleep "$IDLE_DUMP_S"
        tc=$("$CLI" dump "$pid" --format json | python3 -c 'import json, sys; print(json.load(sys.stdin)["memory"]["tcache"])')
        wait "$pid"
        echo "$c $tc $(grep '^burst:' "$OUT/burst.out" | field idle_rss_mib)" >>"$OUT/burst"
    done
done
base=()
printf '| setting | burst: idle thread caches MiB | burst: RSS after 10 s idle MiB | throughput.c instr | blocks 4-16 KiB instr | blocks 16-32 KiB instr |\n|---|---|---|---|---|---|\n'
for c in $CONFS; do
    tc=$(awk -v c="$c" '$1 == c {print $2 / 1048576}' "$OUT/burst" | median)
    rss=$(awk -v c="$c" '$1 == c {print $3}' "$OUT/burst" | median)
    i1=$(conf_instructions "$c" "$BIN/throughput" 1 300000)
    i2=$(conf_instructions "$c" "$BIN/blocks" 1 200000 4096 16384 64)
    i3=$(conf_instructions "$c" "$BIN/blocks" 1 200000 16385 32768 64)
    [ ${#base[@]} -gt 0 ] || base=("$i1" "$i2" "$i3")
    printf '| %s | %.1f | %.0f | %s (%.2f) | %s (%.2f) | %s (%.2f) |\n' "$c" "$tc" "$rss" \
        "$i1" "$(echo "$i1 / ${base[0]}" | bc -l)" "$i2" "$(echo "$i2 / ${base[1]}" | bc -l)" \
        "$i3" "$(echo "$i3 / ${base[2]}" | bc -l)"
done
