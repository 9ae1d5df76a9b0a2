#!/usr/bin/env bash
# Start-up cost of every process. LD_PRELOAD reaches every process a JVM starts (launch
# scripts, shells, tools), so each pays for loading the allocator. Wall time of fork +
# exec + exit + wait (c-tests/startrun.c, itself run without a preload) of
#  - /bin/true,
#  - /bin/sh -c true,
#  - c-tests/start_thread.c (starts one thread, joins it, exits),
# under glibc (no preload), Debian's libjemalloc2, jvmalloc with its defaults (none of these
# programs is named in JVMALLOC_PROCESSES, so each gets the allocator alone) and jvmalloc
# with JVMALLOC_PROCESSES='*' (in scope: signal handler at load, jvmalloc thread with the
# first pthread_create). ROUNDS (default 10) rounds of PER_ROUND (default 50) runs per cell,
# allocators alternating within each round; prints the median of all runs of a cell in
# microseconds and its difference to libjemalloc2: wall time, then the child's CPU time
# (user + system, from wait4), which leaves out time spent waiting for a CPU and so is less
# sensitive to a loaded machine. Target: /bin/true under jvmalloc's defaults within 300 µs
# of libjemalloc2.
set -euo pipefail
. "$(dirname "$0")/bench-lib.sh"
ROUNDS=${ROUNDS:-10}
PER_ROUND=${PER_ROUND:-50}
TARGET_US=300
bench_build start_thread startrun
alloc_env libjemalloc2
JEMALLOC2=${ALLOC_ENV[0]#LD_PRELOAD=}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
names=(glibc libjemalloc2 jvmalloc jvmalloc-all)
headers=("glibc" "libjemalloc2" "jvmalloc (default)" "jvmalloc (JVMALLOC_PROCESSES='*')")
programs=("/bin/true" "/bin/sh -c true" "start_thread")
cell_env() { # allocator name: sets CENV, the assignments for the child
    case "$1" in
    glibc) CENV=("LD_PRELOAD=") ;;
    libjemalloc2) CENV=("LD_PRELOAD=$JEMALLOC2") ;;
    jvmalloc) CENV=("LD_PRELOAD=$LIB") ;;
    jvmalloc-all) CENV=("LD_PRELOAD=$LIB" "JVMALLOC_PROCESSES=*") ;;
    esac
}
cell_cmd() { # program index: sets CMD
    case "$1" in
    0) CMD=(/bin/true) ;;
    1) CMD=(/bin/sh -c true) ;;
    2) CMD=("$BIN/start_thread") ;;
    esac
}
run() { # program index, allocator name, runs
    cell_env "$2"
    cell_cmd "$1"
    LD_PRELOAD= "$BIN/startrun" "$3" "${CENV[@]}" -- "${CMD[@]}"
}
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
for p in "${!programs[@]}"; do # warm-up (page cache, dynamic loader), not counted
    for n in "${names[@]}"; do run "$p" "$n" 10 >/dev/null; done
done
for _ in $(seq "$ROUNDS"); do
    for p in "${!programs[@]}"; do
        for n in "${names[@]}"; do run "$p" "$n" "$PER_ROUND" >>"$tmp/$p.$n"; done
    done
done
echo "Machine: $(machine)"
echo "Command: scripts/bench-start.sh (ROUNDS=$ROUNDS PER_ROUND=$PER_ROUND)"
echo "Load average before / after: $load_before / $(cut -d' ' -f1-3 /proc/loadavg)"
table() { # title, column of startrun's output (1 wall, 2 CPU), result array name
    local -n m=$3
    echo
    echo "$1, median of $((ROUNDS * PER_ROUND)) runs, µs; difference to libjemalloc2 in brackets:"
    echo
    printf "| program"
    for h in "${headers[@]}"; do printf " | %s" "$h"; done
    echo " |"
    echo "|---|---|---|---|---|"
    for p in "${!programs[@]}"; do
        for n in "${names[@]}"; do m[$p.$n]=$(awk -v c="$2" '{print $c}' "$tmp/$p.$n" | median); done
        printf "| %s" "${programs[$p]}"
        for n in "${names[@]}"; do
            printf " | %.0f (%+.0f)" "${m[$p.$n]}" "$(echo "${m[$p.$n]} - ${m[$p.libjemalloc2]}" | bc -l)"
        done
        echo " |"
    done
}
declare -A wall cpu
table "Wall time per process start (fork + exec + exit + wait)" 1 wall
table "CPU time of the child (user + system)" 2 cpu
verdict() { # result array name, label
    local -n m=$1
    local d
    d=$(echo "${m[0.jvmalloc]} - ${m[0.libjemalloc2]}" | bc -l)
    if [ "$(echo "$d <= $TARGET_US" | bc -l)" = 1 ]; then v=met; else v=missed; fi
    printf "Target: /bin/true under jvmalloc (default) within %d µs of libjemalloc2, %s: %s (%+.0f µs).\n" "$TARGET_US" "$2" "$v" "$d"
}
echo
verdict wall "wall time"
verdict cpu "CPU time"
