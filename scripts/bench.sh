#!/usr/bin/env bash
# The side-by-side benchmark: every workload under every allocator.
#
#   scripts/bench.sh
#
# Environment: REPEAT (default 3), ALLOCATORS (default: glibc glibc-arena2 libjemalloc2
# mimalloc tcmalloc jvmalloc), FLINK_JOBS (default 10), FLINK_RECORDS (default 60000),
# SKIP_FLINK=1 to leave the Flink session out, FLINK_CACHE (see flink-e2e.sh).
#
# Workloads, each run once per allocator per round, allocators alternating within a round so
# that drift of the machine hits all of them; REPEAT rounds, medians reported:
#   burst       c-tests/burst.c: 32 threads, ~512 MiB in mixed sizes, 2% kept, 10 s idle
#   throughput  c-tests/throughput.c: 16 threads x 1,000,000 malloc/free, cross-thread frees
#   large       c-tests/large.c: 4 threads x 200 blocks of 1-32 MiB, every page written
#   java        c-tests/jvm/NativeChurn.java: 32 threads of zlib/direct buffers, 10 s idle
#   flink       scripts/flink-e2e.sh: a Flink session cluster, FLINK_JOBS batch jobs + a
#               streaming job, TaskManager under the allocator
# Then scripts/bench-report.py writes the tables into docs/benchmarks.md (between its
# "bench.sh" markers) and the charts into docs/img/.
set -euo pipefail
. "$(dirname "$0")/bench-lib.sh"
REPEAT=${REPEAT:-3}
ALLOCATORS=${ALLOCATORS:-$ALLOCATORS_ALL}
FLINK_JOBS=${FLINK_JOBS:-10}
FLINK_RECORDS=${FLINK_RECORDS:-60000}
RES=$PWD/target/bench
rm -rf "$RES"
mkdir -p "$RES"
bench_build burst throughput large
classes=target/bench-classes
mkdir -p "$classes"
javac -d "$classes" c-tests/jvm/NativeChurn.java
for a in $ALLOCATORS; do alloc_env "$a" >/dev/null || { echo "bench: cannot set up $a" >&2; exit 1; }; done
command -v gnuplot >/dev/null || need_pkg gnuplot-nox /usr/bin/gnuplot >/dev/null
echo "$(machine)" >"$RES/machine"
echo "scripts/bench.sh (REPEAT=$REPEAT FLINK_JOBS=$FLINK_JOBS FLINK_RECORDS=$FLINK_RECORDS SKIP_FLINK=${SKIP_FLINK:-0})" >"$RES/command"
ms() { echo $(($(date +%s%N) / 1000000)); }
for r in $(seq "$REPEAT"); do
    for a in $ALLOCATORS; do
        alloc_env "$a"
        echo "bench: round $r/$REPEAT, $a" >&2
        d=$RES/$a
        mkdir -p "$d"
        t0=$(ms)
        env "${ALLOC_ENV[@]}" "$BIN/burst" observe 10000 | grep '^burst:' | sed "s/\$/ wall_ms $(($(ms) - t0))/" >>"$d/burst"
        env "${ALLOC_ENV[@]}" "$BIN/throughput" 16 1000000 >>"$d/throughput"
        env "${ALLOC_ENV[@]}" "$BIN/large" 4 200 >>"$d/large"
        t0=$(ms)
        env "${ALLOC_ENV[@]}" java -Xmx512m -cp "$classes" NativeChurn 32 200 --idle 10 >"$d/java.out"
        t1=$(ms)
        awk -v ms=$((t1 - t0 - 10000)) '/^VmRSS/ {a = $2; h = $5} /^idle/ {i = $5} END {print "java: run_ms " ms " hwm_kb " h " rss_kb " a " idle_rss_kb " i}' "$d/java.out" >>"$d/java"
        if [ "${SKIP_FLINK:-0}" != 1 ]; then
            OUT=$d/flink-$r JOBS=$FLINK_JOBS RECORDS=$FLINK_RECORDS bash scripts/flink-e2e.sh "$a" >"$d/flink-$r.log" 2>&1 ||
                { echo "bench: Flink run failed for $a; see $d/flink-$r.log" >&2; exit 1; }
        fi
    done
done
python3 scripts/bench-report.py "$RES" docs/benchmarks.md docs/img
