#!/usr/bin/env bash
# What allocation-site sampling costs (JVMALLOC_PROFILE, cargo feature `profiling`).
# Four variants of jvmalloc, every program run in scope (JVMALLOC_PROCESSES='*'):
#   on         JVMALLOC_PROFILE=on: jemalloc samples (prof:true, prof_active:true), one
#              sample per 512 KiB allocated on average (the default JVMALLOC_PROFILE_SAMPLE)
#   off        JVMALLOC_PROFILE=off: armed, not sampling (prof:true, prof_active:false)
#   never      JVMALLOC_PROFILE=never: not armed (prof:false)
#   not-built  the library built without profiling (--no-default-features --features stats:
#              statistics kept, so only profiling differs), JVMALLOC_PROFILE unset
# 1. malloc/free throughput (c-tests/throughput.c, cross-thread frees), THREADS (default 16)
#    and 2 threads x OPS (default 1,000,000) each: operations per second of wall time, and
#    the process's CPU time per operation (from c-tests/startrun.c, less disturbed by other
#    load on the machine); then, if valgrind is installed, the instructions of 1 thread x OPS
#    (callgrind: the same on every run).
# 2. c-tests/jvm/NativeChurn.java as scripts/bench.sh runs it (java -Xmx512m, 32 threads x
#    JAVA_ROUNDS rounds, default 200 as there, --idle 10): run time (wall time less the idle
#    wait, JVM start included), CPU time, peak RSS (VmHWM) and RSS after the work and after
#    the wait.
# 3. What sampling costs in RSS: throughput's peak RSS (VmHWM, from 1), and c-tests/burst.c
#    (32 threads allocate ~512 MiB in mixed sizes, keep 2 %, free the rest, then idle
#    BURST_WAIT_MS, default 3000): peak RSS (VmHWM, GNU time) and RSS at the end of the wait.
# Runs alternate between the variants (the order rotating each round), REPEAT (default 7)
# rounds for 1 and 3, JAVA_REPEAT (default 5) for 2; medians with the min-max spread, and
# ratios to not-built.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=bench-lib.sh
. "$(dirname "$0")/bench-lib.sh"
REPEAT=${REPEAT:-7}
JAVA_REPEAT=${JAVA_REPEAT:-5}
THREADS=${THREADS:-16}
OPS=${OPS:-1000000}
JAVA_ROUNDS=${JAVA_ROUNDS:-200}
IDLE_S=10
BURST_WAIT_MS=${BURST_WAIT_MS:-3000}
# Each variant's environment is all of its configuration: jvmalloc's defaults (the default
# sample rate is the one measured) plus what variant_env sets.
unset "${!JVMALLOC_@}"
bench_build throughput burst startrun
cargo build --release -q --lib --no-default-features --features stats --target-dir target/bench-noprof
NOPROF="$PWD/target/bench-noprof/release/libjvmalloc.so"
TIME=$(need_pkg time /usr/bin/time)
classes=target/bench-classes
mkdir -p "$classes"
javac -d "$classes" c-tests/jvm/NativeChurn.java
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
names=(on off never not-built)

variant_env() { # variant name: sets VENV, the environment of a run
    case "$1" in
    on | off | never) VENV=("LD_PRELOAD=$LIB" "JVMALLOC_PROCESSES=*" "JVMALLOC_PROFILE=$1") ;;
    not-built) VENV=("LD_PRELOAD=$NOPROF" "JVMALLOC_PROCESSES=*") ;;
    esac
}

# Variant names in the order of round $1 (rotated, so that no variant always runs first).
order() {
    local i n=${#names[@]}
    for i in $(seq 0 $((n - 1))); do echo "${names[$(((i + $1) % n))]}"; done
}

# "median min-max" of field $2 in file $1, each divided by $3 (default 1), $4 decimals
# (default 1).
summary() {
    local m
    m=$(field "$2" <"$1" | awk -v d="${3:-1}" '{print $1 / d}' | median)
    field "$2" <"$1" | awk -v d="${3:-1}" -v m="$m" -v p="${4:-1}" '
        NR == 1 {lo = hi = $1 / d} {v = $1 / d; if (v < lo) lo = v; if (v > hi) hi = v}
        END {printf "%.*f %.*f-%.*f\n", p, m, p, lo, p, hi}'
}

# Ratio of the median of field $2 in file $1 to that of the not-built run.
ratio() {
    local a b
    a=$(field "$2" <"$1" | median)
    b=$(field "$2" <"${1%.*}.not-built" | median)
    awk -v a="$a" -v b="$b" 'BEGIN {printf "%.3f\n", a / b}'
}

# One table row: variant $1, then for each "file-stem field divisor decimals kind" the median
# of the field (divided, rounded), and with kind s its min-max spread, with kind r its
# spread and its ratio to not-built (kind m: the median alone).
row() {
    local n=$1 spec stem f d p k s
    shift
    printf "| %s |" "$n"
    for spec in "$@"; do
        read -r stem f d p k <<<"$spec"
        s=$(summary "$tmp/$stem.$n" "$f" "$d" "$p")
        printf " %s |" "${s% *}"
        [ "$k" = m ] || printf " %s |" "${s#* }"
        [ "$k" != r ] || printf " %s |" "$(ratio "$tmp/$stem.$n" "$f")"
    done
    echo
}

# One run of $2... under variant $1 through c-tests/startrun.c (itself without a preload):
# the program's output, then a line "wall_us cpu_us" (CPU time: user + system of the whole
# process, from wait4; it leaves out time spent waiting for a CPU, so a loaded machine
# disturbs it less than wall time).
timed() {
    variant_env "$1"
    shift
    LD_PRELOAD='' "$BIN/startrun" 1 "${VENV[@]}" -- "$@"
}

# throughput.c's line under variant $1 with $2 threads, plus its CPU time per operation.
throughput() {
    timed "$1" "$BIN/throughput" "$2" "$OPS" | paste -sd' ' |
        awk '{c = $NF; NF -= 2; printf "%s cpu_ns_per_op %.2f\n", $0, c * 1000 / $4}'
}

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
for r in $(seq "$REPEAT"); do
    echo "bench-profile: round $r/$REPEAT, C programs" >&2
    for n in $(order "$r"); do
        throughput "$n" "$THREADS" >>"$tmp/tp$THREADS.$n"
        throughput "$n" 2 >>"$tmp/tp2.$n"
        variant_env "$n"
        "$TIME" -f "hwm_kb %M" -a -o "$tmp/burst-hwm.$n" env "${VENV[@]}" \
            "$BIN/burst" observe "$BURST_WAIT_MS" | grep '^burst:' >>"$tmp/burst.$n"
    done
done
JAVA=$(command -v java)
for r in $(seq "$JAVA_REPEAT"); do
    echo "bench-profile: round $r/$JAVA_REPEAT, java" >&2
    for n in $(order "$r"); do
        timed "$n" "$JAVA" -Xmx512m -cp "$classes" NativeChurn 32 "$JAVA_ROUNDS" --idle "$IDLE_S" >"$tmp/java.out"
        grep -q '^NativeChurn: ok' "$tmp/java.out" || { echo "bench-profile: NativeChurn failed under $n" >&2; exit 1; }
        awk -v idle="$IDLE_S" '/^VmRSS/ {a = $2; h = $5} /^idle/ {i = $5} /^[0-9.]+ [0-9]+$/ {w = $1; c = $2}
            END {print "run_ms " w / 1000 - idle * 1000 " cpu_ms " c / 1000 " hwm_kb " h " rss_kb " a " idle_rss_kb " i}' \
            "$tmp/java.out" >>"$tmp/java.$n"
    done
done
if command -v valgrind >/dev/null; then
    echo "bench-profile: callgrind" >&2
    for n in "${names[@]}"; do
        variant_env "$n"
        echo "ir $(instructions "${VENV[@]}" "$BIN/throughput" 1 "$OPS")" >"$tmp/ir.$n"
    done
fi
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

echo "Machine: $(machine)"
echo "Command: scripts/bench-profile.sh (REPEAT=$REPEAT JAVA_REPEAT=$JAVA_REPEAT THREADS=$THREADS OPS=$OPS JAVA_ROUNDS=$JAVA_ROUNDS BURST_WAIT_MS=$BURST_WAIT_MS)"
echo "Load average before: $load_before, after: $load_after"
echo "Java: $(java -version 2>&1 | head -1)"
echo
echo "Effective settings (JVMALLOC_VERBOSE=1):"
echo
for n in "${names[@]}"; do
    variant_env "$n"
    echo "- $n: $(env "${VENV[@]}" JVMALLOC_VERBOSE=1 "$BIN/throughput" 1 1 2>&1 >/dev/null | grep -o 'jemalloc options.*')"
done
echo
echo "Throughput, each thread $OPS malloc/free, median and min-max of $REPEAT alternating runs: Mops/s (wall"
echo "time of the threads), and CPU ns per malloc/free (user + system time of the whole process):"
echo
echo "| variant | threads | Mops/s | spread | vs not-built | CPU ns/op | spread | vs not-built |"
echo "|---|---|---|---|---|---|---|---|"
for t in "$THREADS" 2; do
    for n in "${names[@]}"; do
        row "$n" "tp$t mops_per_s 1 1 r" "tp$t cpu_ns_per_op 1 1 r" | sed "s/^| $n |/| $n | $t |/"
    done
done
if command -v valgrind >/dev/null; then
    echo
    echo "Instructions (valgrind --tool=callgrind), 1 thread x $OPS malloc/free, whole program:"
    echo
    echo "| variant | instructions | vs not-built |"
    echo "|---|---|---|"
    for n in "${names[@]}"; do
        printf "| %s | %s | %s |\n" "$n" "$(field ir <"$tmp/ir.$n")" "$(ratio "$tmp/ir.$n" ir)"
    done
fi
echo
echo "NativeChurn (java -Xmx512m, 32 threads x $JAVA_ROUNDS rounds, --idle $IDLE_S), median and min-max of $JAVA_REPEAT alternating runs;"
echo "run time is wall time less the idle wait, JVM start included; CPU time (user + system) of the whole"
echo "process; RSS in MiB:"
echo
echo "| variant | run s | spread | vs not-built | CPU s | spread | vs not-built | peak RSS | spread | vs not-built | RSS after work | RSS after idle |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
for n in "${names[@]}"; do
    row "$n" "java run_ms 1000 2 r" "java cpu_ms 1000 1 r" "java hwm_kb 1024 1 r" "java rss_kb 1024 1 m" "java idle_rss_kb 1024 1 m"
done
echo
echo "Peak RSS (MiB), median and min-max of $REPEAT alternating runs: throughput.c ($THREADS threads, from the"
echo "runs above) and burst.c (32 threads, ~512 MiB, 2 % kept; RSS at the end of a ${BURST_WAIT_MS} ms idle wait):"
echo
echo "| variant | throughput peak | spread | vs not-built | burst peak | spread | vs not-built | burst after idle | spread |"
echo "|---|---|---|---|---|---|---|---|---|"
for n in "${names[@]}"; do
    row "$n" "tp$THREADS hwm_kb 1024 1 r" "burst-hwm hwm_kb 1024 1 r" "burst idle_rss_mib 1 1 s"
done
