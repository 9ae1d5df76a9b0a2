#!/usr/bin/env bash
# What jvmalloc's exported functions add to jemalloc, and what its configuration costs, on
# two small-block benchmarks modelled on mimalloc-bench's: c-tests/bench/larson.c (threads
# replaced as they go, blocks freed by a thread other than the one that allocated them)
# and c-tests/bench/glibc_thread.c (glibc's bench-malloc-thread: a per-thread working set,
# sizes mostly small). THREADS (default 2) threads each.
# Variants, every jvmalloc one run in scope (JVMALLOC_PROCESSES='*'):
#   libjemalloc2   Debian's jemalloc 5.3.0 with its defaults (the reference)
#   jvmalloc       this repository's release build, jvmalloc's defaults (profiling armed
#                  but off, 1 s decay, arenas = CPUs, statistics built in)
#   profile-never  JVMALLOC_PROFILE=never (jemalloc's profiling not armed)
#   decay-10s      JVMALLOC_DIRTY_DECAY_MS=10000 (libjemalloc2's decay time)
#   arenas-8       JVMALLOC_ARENAS=8 (libjemalloc2 has 4 x CPUs)
#   nostats        the library built without statistics and profiling
#                  (--no-default-features)
#   nostats-like-je2  nostats with decay-10s and arenas-8: jemalloc configured as close to
#                  libjemalloc2 as jvmalloc lets it be
#   baseline       (only if BASELINE=path/to/libjvmalloc.so is set) another build of
#                  jvmalloc, e.g. before a change, with the jvmalloc variant's environment
# 1. Instructions (valgrind --tool=callgrind, deterministic), per malloc/free pair: the
#    difference between a run of 2N and one of N pairs per thread, divided by the pairs
#    added, so start-up, thread creation and the first allocations cancel out.
# 2. Wall-clock throughput, millions of malloc/free pairs per second, median of REPEAT
#    (default 5) alternating runs (the order rotating each round), min-max in brackets.
# Ratios are to libjemalloc2. A benchmark: it prints figures and asserts nothing.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=bench-lib.sh
. "$(dirname "$0")/bench-lib.sh"
REPEAT=${REPEAT:-5}
THREADS=${THREADS:-2}
LARSON_ROUNDS=${LARSON_ROUNDS:-20}  # threads per lineage in the wall-clock runs
LARSON_OPS=${LARSON_OPS:-100000}    # replacements per thread
GT_ITERS=${GT_ITERS:-3000000}       # glibc_thread iterations per thread
CG_N=${CG_N:-50000}                 # pairs per thread in the shorter callgrind run
unset "${!JVMALLOC_@}"
cargo build --release -q -p jvmalloc
cargo build --release -q -p jvmalloc --no-default-features --target-dir target/nostats
NOSTATS="$PWD/target/nostats/release/libjvmalloc.so"
mkdir -p "$BIN"
for p in larson glibc_thread; do
    gcc -O2 -g -fno-builtin -pthread -I c-tests -o "$BIN/$p" "c-tests/bench/$p.c"
done
alloc_env libjemalloc2
JEMALLOC2=${ALLOC_ENV[0]#LD_PRELOAD=}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
names=(libjemalloc2 jvmalloc profile-never decay-10s arenas-8 nostats nostats-like-je2)
[ -n "${BASELINE:-}" ] && names+=(baseline)

variant_env() { # variant name: sets VENV, the environment of a run
    local in=("JVMALLOC_PROCESSES=*")
    case "$1" in
    libjemalloc2) VENV=("LD_PRELOAD=$JEMALLOC2") ;;
    jvmalloc) VENV=("LD_PRELOAD=$LIB" "${in[@]}") ;;
    baseline) VENV=("LD_PRELOAD=$BASELINE" "${in[@]}") ;;
    profile-never) VENV=("LD_PRELOAD=$LIB" "${in[@]}" JVMALLOC_PROFILE=never) ;;
    decay-10s) VENV=("LD_PRELOAD=$LIB" "${in[@]}" JVMALLOC_DIRTY_DECAY_MS=10000) ;;
    arenas-8) VENV=("LD_PRELOAD=$LIB" "${in[@]}" JVMALLOC_ARENAS=8) ;;
    nostats) VENV=("LD_PRELOAD=$NOSTATS" "${in[@]}") ;;
    nostats-like-je2) VENV=("LD_PRELOAD=$NOSTATS" "${in[@]}" JVMALLOC_DIRTY_DECAY_MS=10000 JVMALLOC_ARENAS=8) ;;
    esac
}

# The command line of benchmark $1 doing $2 pairs per thread; $3 threads per lineage (larson).
cmdline() {
    case "$1" in
    larson) echo "$BIN/larson $THREADS $3 $2 5000" ;;
    glibc_thread) echo "$BIN/glibc_thread $THREADS $2" ;;
    esac
}

# Instructions callgrind counts for benchmark $1 with $2 pairs per thread, under variant $3.
variant_instructions() {
    variant_env "$3"
    # shellcheck disable=SC2046 # the command line is split on purpose
    instructions "${VENV[@]}" $(cmdline "$1" "$2" 2)
}

# Variant names in the order of round $1 (rotated, so that no variant always runs first).
order() {
    local i n=${#names[@]}
    for i in $(seq 0 $((n - 1))); do echo "${names[$(((i + $1) % n))]}"; done
}

for r in $(seq "$REPEAT"); do
    for n in $(order "$r"); do
        variant_env "$n"
        # shellcheck disable=SC2046
        env "${VENV[@]}" $(cmdline larson "$LARSON_OPS" "$LARSON_ROUNDS") | field mops_per_s >>"$tmp/larson.$n"
        # shellcheck disable=SC2046
        env "${VENV[@]}" $(cmdline glibc_thread "$GT_ITERS") | field mops_per_s >>"$tmp/glibc_thread.$n"
    done
done

echo "Machine: $(machine)"
echo "Command: scripts/bench-wrapper.sh (THREADS=$THREADS REPEAT=$REPEAT LARSON_ROUNDS=$LARSON_ROUNDS LARSON_OPS=$LARSON_OPS GT_ITERS=$GT_ITERS CG_N=$CG_N${BASELINE:+ BASELINE=$BASELINE})"
for b in larson glibc_thread; do
    # larson: 2 threads per lineage under callgrind, so pairs = THREADS x 2 x N.
    per=$THREADS
    [ "$b" = larson ] && per=$((THREADS * 2))
    echo
    echo "$b, $THREADS threads: instructions per malloc/free pair (callgrind, whole program, 2N - N"
    echo "pairs, N = $CG_N per thread); Mops/s, median of $REPEAT alternating runs (min-max):"
    echo
    echo "| variant | instructions/pair | vs libjemalloc2 | Mops/s | vs libjemalloc2 |"
    echo "|---|---|---|---|---|"
    declare -A ipp=()
    for n in "${names[@]}"; do
        if command -v valgrind >/dev/null; then
            a=$(variant_instructions "$b" "$CG_N" "$n")
            z=$(variant_instructions "$b" $((2 * CG_N)) "$n")
            ipp[$n]=$(echo "($z - $a) / ($per * $CG_N)" | bc -l)
        else
            ipp[$n]=nan
        fi
    done
    base=$(median <"$tmp/$b.libjemalloc2")
    for n in "${names[@]}"; do
        m=$(median <"$tmp/$b.$n")
        spread="$(sort -g "$tmp/$b.$n" | head -1)-$(sort -g "$tmp/$b.$n" | tail -1)"
        if [ "${ipp[$n]}" = nan ]; then
            ir="n/a | n/a"
        else
            ir=$(printf "%.1f | %.3f" "${ipp[$n]}" "$(echo "${ipp[$n]} / ${ipp[libjemalloc2]}" | bc -l)")
        fi
        printf "| %s | %s | %.2f (%s) | %.3f |\n" "$n" "$ir" "$m" "$spread" "$(echo "$m / $base" | bc -l)"
    done
    unset ipp
done
