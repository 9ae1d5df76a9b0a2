#!/usr/bin/env bash
# The side-by-side benchmark: every workload under every allocator.
#
#   scripts/bench.sh
#
# Environment: REPEAT (default 3), ALLOCATORS (default: glibc glibc-arena2 glibc-trim
# libjemalloc2 libjemalloc2-bg mimalloc tcmalloc jvmalloc; see alloc_env in bench-lib.sh),
# FLINK_JOBS (default 10), FLINK_RECORDS (default 60000), SKIP_FLINK=1 to leave the Flink
# session out, FLINK_CACHE (see flink-e2e.sh).
#
# Workloads, each run once per allocator per round, allocators alternating within a round so
# that drift of the machine hits all of them; REPEAT rounds, medians and min-max reported.
# The C programs run under jvmalloc with JVMALLOC_PROCESSES='*' (in scope, as a JVM is):
#   burst       c-tests/burst.c: 32 threads, ~512 MiB in mixed sizes, 2% kept, 10 s idle
#   throughput  c-tests/throughput.c: 16 threads x 1,000,000 malloc/free, cross-thread frees
#   large       c-tests/large.c: 4 threads x 200 blocks of 1-32 MiB, every page written,
#               10 s idle
#   java        c-tests/jvm/NativeChurn.java: 32 threads of zlib/direct buffers, 10 s idle
#   flink       scripts/flink-e2e.sh: a Flink session cluster, FLINK_JOBS batch jobs + a
#               streaming job + 10 s idle, TaskManager under the allocator
# glibc-trim differs from glibc only in a JVM flag, so it runs the JVM workloads (java,
# flink) only.
# Then scripts/bench-report.py writes the tables into docs/benchmarks.md (between its
# "bench.sh" markers) and the charts into docs/img/.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
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
command -v gnuplot >/dev/null || need_pkg gnuplot-nox /usr/bin/gnuplot >/dev/null
machine >"$RES/machine"
for a in $ALLOCATORS; do
    alloc_env "$a" >/dev/null || { echo "bench: cannot set up $a" >&2; exit 1; }
    echo "$a ${ALLOC_ENV[*]}${ALLOC_JAVA_OPTS[*]:+ (JVMs: ${ALLOC_JAVA_OPTS[*]})}" >>"$RES/allocators"
done
echo "scripts/bench.sh (REPEAT=$REPEAT FLINK_JOBS=$FLINK_JOBS FLINK_RECORDS=$FLINK_RECORDS SKIP_FLINK=${SKIP_FLINK:-0})" >"$RES/command"
ms() { echo $(($(date +%s%N) / 1000000)); }
for r in $(seq "$REPEAT"); do
    for a in $ALLOCATORS; do
        alloc_env "$a"
        echo "bench: round $r/$REPEAT, $a" >&2
        d=$RES/$a
        mkdir -p "$d"
        if [ "$ALLOC_JVM_ONLY" = 0 ]; then
            # The C programs stand in for a JVM's native allocations. jvmalloc purges only
            # processes in scope (JVMALLOC_PROCESSES, default java), so they are put in scope.
            c_env=("${ALLOC_ENV[@]}")
            [ "$a" != jvmalloc ] || c_env+=("JVMALLOC_PROCESSES=*")
            t0=$(ms)
            line=$(env "${c_env[@]}" "$BIN/burst" observe 10000 | grep '^burst: pre_mib')
            echo "$line wall_ms $(($(ms) - t0))" >>"$d/burst"
            env "${c_env[@]}" "$BIN/throughput" 16 1000000 >>"$d/throughput"
            env "${c_env[@]}" "$BIN/large" 4 200 10 >>"$d/large"
        fi
        # JDK 17's G1 can throw OutOfMemoryError when an allocation keeps meeting the GC
        # locker (zlib holds arrays in JNI critical sections), more so on a loaded machine:
        # such a run is logged and run again, up to twice.
        for try in 1 2 3; do
            t0=$(ms)
            env "${ALLOC_ENV[@]}" java "${ALLOC_JAVA_OPTS[@]}" -Xmx512m -cp "$classes" NativeChurn 32 200 --idle 10 >"$d/java.out" 2>"$d/java.err" && break
            echo "bench: NativeChurn failed under $a (try $try):" >&2
            grep -m3 . "$d/java.err" >&2 || true
            echo "round $r try $try: $(grep -m1 -E 'Error|Exception' "$d/java.err" || true)" >>"$d/java.failed"
            [ "$try" != 3 ] || exit 1
        done
        t1=$(ms)
        # run_ms: the whole JVM less the idle time
        awk -v ms=$((t1 - t0 - 10000)) '/^start VmRSS/ {s = $3} /^VmRSS/ {a = $2; h = $5} /^idle/ {i = $5}
            END {print "java: run_ms " ms " start_rss_kb " s " hwm_kb " h " rss_kb " a " idle_rss_kb " i}' "$d/java.out" >>"$d/java"
        if [ "${SKIP_FLINK:-0}" != 1 ]; then
            # A failed session (say, too few checkpoints on a loaded machine) is kept as
            # flink-R.failed and run once more.
            if ! OUT=$d/flink-$r JOBS=$FLINK_JOBS RECORDS=$FLINK_RECORDS bash scripts/flink-e2e.sh "$a" >"$d/flink-$r.log" 2>&1; then
                echo "bench: Flink run failed for $a ($(grep -m1 FAILED "$d/flink-$r.log" || true)); running it again" >&2
                rm -rf "$d/flink-$r.failed"
                mkdir -p "$d/flink-$r"
                mv "$d/flink-$r" "$d/flink-$r.failed"
                mv "$d/flink-$r.log" "$d/flink-$r.failed/run.log"
                OUT=$d/flink-$r JOBS=$FLINK_JOBS RECORDS=$FLINK_RECORDS bash scripts/flink-e2e.sh "$a" >"$d/flink-$r.log" 2>&1 ||
                    { echo "bench: Flink run failed again for $a; see $d/flink-$r.log" >&2; exit 1; }
            fi
        fi
    done
done
python3 scripts/bench-report.py "$RES" docs/benchmarks.md docs/img
