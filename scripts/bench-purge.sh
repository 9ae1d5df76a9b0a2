#!/usr/bin/env bash
# Giving memory back. Each workload under glibc, glibc with MALLOC_ARENA_MAX=2, Debian's
# libjemalloc2 (Flink's default preload) and jvmalloc, alternating, median of REPEAT
# (default 3), as ratios to jvmalloc:
#  - burst: c-tests/burst.c (32 threads, ~512 MiB allocated in mixed sizes, 2% kept, the
#    rest freed by other threads): peak RSS, RSS right after the burst, RSS after 10 s idle,
#    and run time of the burst itself;
#  - java: c-tests/jvm/NativeChurn.java (32 threads of zlib, direct buffers, thread
#    creation), then 10 s idle: peak RSS (VmHWM), RSS at the end of the work, RSS after
#    10 s idle, run time of the work.
# Then jvmalloc's decay trade-off: JVMALLOC_DIRTY_DECAY_MS = 0, 1000, 5000, 10000 on the
# burst (RSS after burst and after idle) and on c-tests/throughput.c (speed). Last,
# fork + exec latency (c-tests/forkexec.c), from an idle parent and from one with 4 busy
# allocating threads, with jvmalloc also run without its thread (purge, signal and periodic
# dumps off): a child that execs at once must not pay for the jvmalloc thread.
set -euo pipefail
. "$(dirname "$0")/bench-lib.sh"
REPEAT=${REPEAT:-3}
IDLE_S=${IDLE_S:-10}
bench_build burst throughput forkexec
alloc_env libjemalloc2
JEMALLOC2=${ALLOC_ENV[0]#LD_PRELOAD=}
classes=target/bench-classes
mkdir -p "$classes"
javac -d "$classes" c-tests/jvm/NativeChurn.java
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
names=(glibc glibc-arena2 libjemalloc2 jvmalloc)
envs=("LD_PRELOAD=" "LD_PRELOAD= MALLOC_ARENA_MAX=2" "LD_PRELOAD=$JEMALLOC2" "LD_PRELOAD=$LIB")
ms() { echo $(($(date +%s%N) / 1000000)); }
for _ in $(seq "$REPEAT"); do
    for i in "${!names[@]}"; do
        n=${names[$i]}
        t0=$(ms)
        env ${envs[$i]} "$BIN/burst" observe $((IDLE_S * 1000)) >"$tmp/out"
        line=$(grep '^burst:' "$tmp/out")
        echo "$line" | field peak_mib >>"$tmp/$n.bpeak"
        echo "$line" | field rss_mib >>"$tmp/$n.bafter"
        echo "$line" | field idle_rss_mib >>"$tmp/$n.bidle"
        echo $(($(ms) - t0 - IDLE_S * 1000)) >>"$tmp/$n.btime"
        t0=$(ms)
        env ${envs[$i]} java -Xmx512m -cp "$classes" NativeChurn 32 200 --idle "$IDLE_S" >"$tmp/out"
        echo $(($(ms) - t0 - IDLE_S * 1000)) >>"$tmp/$n.jtime"
        awk '/^VmRSS/ {print $5 / 1024 > "'"$tmp/$n.jpeak"'"; print $2 / 1024 > "'"$tmp/$n.jafter"'"} /^idle/ {print $5 / 1024 > "'"$tmp/$n.jidle"'"}' "$tmp/out"
        cat "$tmp/$n.jpeak" >>"$tmp/$n.jpeaks"
        cat "$tmp/$n.jafter" >>"$tmp/$n.jafters"
        cat "$tmp/$n.jidle" >>"$tmp/$n.jidles"
    done
done
echo "Machine: $(machine)"
echo "Command: scripts/bench-purge.sh (REPEAT=$REPEAT IDLE_S=$IDLE_S)"
table() { # title, suffixes...
    echo
    echo "$1, median of $REPEAT (MiB and ms; ratio to jvmalloc in brackets):"
    echo
    echo "| allocator | peak RSS | RSS after work | RSS after ${IDLE_S} s idle | run time |"
    echo "|---|---|---|---|---|"
    local sfx=("$2" "$3" "$4" "$5") base=() v
    for s in "${sfx[@]}"; do base+=("$(median <"$tmp/jvmalloc.$s")"); done
    for n in "${names[@]}"; do
        printf "| %s" "$n"
        for k in 0 1 2 3; do
            v=$(median <"$tmp/$n.${sfx[$k]}")
            printf " | %.0f (%.2f)" "$v" "$(echo "$v / ${base[$k]}" | bc -l)"
        done
        echo " |"
    done
}
table "Burst and return (c-tests/burst.c)" bpeak bafter bidle btime
table "Java native churn (NativeChurn 32 threads x 200 rounds, -Xmx512m)" jpeaks jafters jidles jtime
echo
echo "Decay trade-off (jvmalloc, JVMALLOC_DIRTY_DECAY_MS), median of $REPEAT:"
echo
echo "| dirty_decay_ms | burst: RSS after burst MiB | RSS after 2 s MiB | throughput Mops/s |"
echo "|---|---|---|---|"
for d in 0 1000 5000 10000; do
    for _ in $(seq "$REPEAT"); do
        line=$(JVMALLOC_DIRTY_DECAY_MS=$d JVMALLOC_PURGE_IDLE_MS=3600000 LD_PRELOAD="$LIB" "$BIN/burst" observe 2000)
        echo "$line" | field rss_mib >>"$tmp/d$d.after"
        echo "$line" | field idle_rss_mib >>"$tmp/d$d.idle"
        JVMALLOC_DIRTY_DECAY_MS=$d LD_PRELOAD="$LIB" "$BIN/throughput" 16 1000000 | field mops_per_s >>"$tmp/d$d.tp"
    done
    printf "| %s | %.0f | %.0f | %.1f |\n" "$d" "$(median <"$tmp/d$d.after")" "$(median <"$tmp/d$d.idle")" "$(median <"$tmp/d$d.tp")"
done
echo
echo "fork + exec + wait of /bin/true (c-tests/forkexec.c, 300 forks), median of $REPEAT runs' medians, µs:"
echo
echo "| allocator | idle parent | parent with 4 busy threads |"
echo "|---|---|---|"
fnames=("${names[@]}" "jvmalloc, no jvmalloc thread")
fenvs=("${envs[@]}" "LD_PRELOAD=$LIB JVMALLOC_PURGE_INTERVAL_MS=0 JVMALLOC_STATS_SIGNAL=off")
for i in "${!fnames[@]}"; do
    for _ in $(seq "$REPEAT"); do
        for busy in 0 4; do
            env ${fenvs[$i]} "$BIN/forkexec" 300 $busy | field median_us >>"$tmp/f$i.$busy"
        done
    done
    printf "| %s | %.0f | %.0f |\n" "${fnames[$i]}" "$(median <"$tmp/f$i.0")" "$(median <"$tmp/f$i.4")"
done
