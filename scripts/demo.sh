#!/usr/bin/env bash
# The first thing to run: what jvmalloc is for, in about three minutes.
#
# Builds target/release/libjvmalloc.so and runs scripts/demo/LeakyService.java, a Java
# program that churns native memory from 32 threads (zlib Deflater/Inflater, direct buffers,
# short-lived threads), leaks about 38 MiB of Deflaters on one thread named leaky-deflater,
# and then sits idle. Part 1 runs it under four allocators and prints the process's resident
# memory (VmRSS, read from /proc/<pid>/status by this script) at the end of the work and
# after DEMO_IDLE_S seconds of idleness: glibc's malloc; glibc with the JDK's own remedy,
# -XX:TrimNativeHeapInterval=1000 (malloc_trim every second); Debian's libjemalloc2 (what
# Flink's Docker image preloads); jvmalloc. Part 2 runs it once more under jvmalloc, takes
# a statistics dump after the warm-up and another after the leak has grown (kill -USR1),
# and prints the part of the second dump that points at the leak. Part 3 prints the top of
# the allocation-site profile taken at the same moment (sampling turned on after the
# warm-up with `jvmalloc profile --start`), which names the code that holds the leaked
# memory.
#
# Three runs per allocator, because single runs of glibc and libjemalloc2 vary by up to a
# fifth (which threads share an arena depends on timing); the table gives the median and
# the range. The JVMs run one after the other; each is measured after its idle time while
# the next one works, which keeps the demo near a minute and a half on 2 CPUs.
#
# Knobs (environment): DEMO_RUNS (runs per allocator, 3), DEMO_IDLE_S (10), DEMO_THREADS
# (32), DEMO_ROUNDS (120), DEMO_LEAK (Deflaters leaked, 150).
set -euo pipefail
began=$SECONDS
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
. scripts/bench-lib.sh # need_pkg, median, trim_native_heap_flags; LIB

runs=${DEMO_RUNS:-3}
idle_s=${DEMO_IDLE_S:-10}
threads=${DEMO_THREADS:-32}
rounds=${DEMO_ROUNDS:-120}
leak=${DEMO_LEAK:-150}
heap=-Xmx256m

# Debian's jemalloc, as Flink's image uses it. A fresh system may have no package lists yet.
jemalloc=/usr/lib/$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)/libjemalloc.so.2
if ! need_pkg libjemalloc2 "$jemalloc" >/dev/null; then
    sudo=""
    [ "$(id -u)" = 0 ] || sudo=sudo
    $sudo apt-get update -q >/dev/null
    need_pkg libjemalloc2 "$jemalloc" >/dev/null
fi

# The JDK's periodic malloc_trim (none before 17.0.9).
trim_flags=()
if trim=$(trim_native_heap_flags); then read -r -a trim_flags <<<"$trim"; fi

echo "== building the library (the first build takes a minute or two)"
cargo build --release
classes=target/demo-classes
mkdir -p "$classes"
javac -d "$classes" scripts/demo/LeakyService.java c-tests/jvm/NativeChurn.java

tmp=$(mktemp -d "${TMPDIR:-/tmp}/jvmalloc-demo.XXXXXX")
live=() # pids of the JVMs this script started and has not stopped yet
stop() { # pid
    kill "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
    local p keep=()
    for p in "${live[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
    live=("${keep[@]}")
}
cleanup() {
    local p
    for p in "${live[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'echo; echo "demo: interrupted" >&2; exit 130' INT TERM

now_ms() { local t=${EPOCHREALTIME/./}; echo $((t / 1000)); }
rss_mib() { awk '/^VmRSS:/ {printf "%.0f", $2 / 1024}' "/proc/$1/status"; }

# Starts the workload under allocator $1; sets PID and LOG. Further arguments go to the
# program (the gate file of part 2).
start() { # allocator, log name, [program args]
    local alloc=$1 log=$tmp/$2.log
    shift 2
    : >"$log"
    local envs=(LD_PRELOAD=) flags=()
    case "$alloc" in
    glibc-trim) flags=("${trim_flags[@]}") ;;
    libjemalloc2) envs=(LD_PRELOAD="$jemalloc") ;;
    jvmalloc) envs=(LD_PRELOAD="$LIB" "${DEMO_ENV[@]}") ;;
    esac
    env "${envs[@]}" java "${flags[@]}" "$heap" -cp "$classes" LeakyService "$threads" "$rounds" "$leak" "$@" >"$log" 2>&1 &
    PID=$!
    LOG=$log
    live+=("$PID")
}

# Waits until the program prints a line starting with $1; fails if it exits or takes
# longer than 5 minutes.
await() { # word
    local deadline=$(($(now_ms) + 300000))
    until grep -q "^$1" "$LOG"; do
        if ! kill -0 "$PID" 2>/dev/null || [ "$(now_ms)" -gt "$deadline" ]; then
            cat "$LOG" >&2
            echo "demo: the Java program did not get to '$1' (log above)" >&2
            exit 1
        fi
        poll
        sleep 0.1
    done
}

# Idle processes waiting for their measurement: label, run, pid, due time (ms), RSS at end.
q_label=() q_run=() q_pid=() q_due=() q_end=()
declare -A end_rss idle_rss # allocator -> "a b c" (MiB)
# Measures every queued process whose idle time is up, and stops it.
poll() {
    local i
    for i in "${!q_pid[@]}"; do
        [ "$(now_ms)" -ge "${q_due[$i]}" ] || continue
        local r
        r=$(rss_mib "${q_pid[$i]}")
        stop "${q_pid[$i]}"
        printf '  %-13s run %d/%d: RSS after %2d s idle %5d MiB\n' "${q_label[$i]}" "${q_run[$i]}" "$runs" "$idle_s" "$r"
        idle_rss[${q_label[$i]}]+="$r "
        end_rss[${q_label[$i]}]+="${q_end[$i]} "
        unset "q_label[$i]" "q_run[$i]" "q_pid[$i]" "q_due[$i]" "q_end[$i]"
    done
}

allocs=(glibc)
[ ${#trim_flags[@]} = 0 ] || allocs+=(glibc-trim)
allocs+=(libjemalloc2 jvmalloc)
DEMO_ENV=()

echo
echo "== part 1: resident memory after the work, under ${#allocs[@]} allocators"
echo "$(nproc) CPUs, $(awk '/^MemTotal:/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo), $(. /etc/os-release && echo "$PRETTY_NAME"), glibc $(ldd --version | awk 'NR == 1 {print $NF}'), $(java -version 2>&1 | head -1)"
echo "LeakyService: $threads threads x $rounds rounds of zlib + direct buffers + short-lived threads, $leak Deflaters leaked on thread leaky-deflater, $heap"
echo "$runs run(s) each, in turn; each JVM is measured after $idle_s s idle while the next one works (an idle JVM uses almost no CPU)"
for ((run = 1; run <= runs; run++)); do
    for a in "${allocs[@]}"; do
        t0=$(now_ms)
        start "$a" "$a-$run"
        await work-done
        e=$(rss_mib "$PID")
        printf '  %-13s run %d/%d: work done in %4.1f s, RSS %5d MiB\n' "$a" "$run" "$runs" "$((($(now_ms) - t0) / 100))e-1" "$e"
        q_label+=("$a") q_run+=("$run") q_pid+=("$PID") q_due+=($(($(now_ms) + idle_s * 1000))) q_end+=("$e")
    done
done
while ((${#q_pid[@]})); do
    poll
    sleep 0.1
done

describe() {
    case "$1" in
    glibc) echo "glibc malloc" ;;
    glibc-trim) echo "glibc + ${trim_flags[*]}" ;;
    libjemalloc2) echo "Debian libjemalloc2" ;;
    jvmalloc) echo "jvmalloc" ;;
    esac
}
spread() { # "a b c" -> "median (min-max)", or the value for one run
    local m
    m=$(tr ' ' '\n' <<<"$1" | grep . | median)
    if [ "$runs" = 1 ]; then
        printf '%s' "$m"
    else
        printf '%s (%s)' "$m" "$(awk '{lo = $1; hi = $1; for (i = 2; i <= NF; i++) {if ($i < lo) lo = $i; if ($i > hi) hi = $i}; print lo "-" hi}' <<<"$1")"
    fi
}
echo
if [ "$runs" = 1 ]; then what="1 run"; else what="median of $runs runs (min-max)"; fi
echo "RSS in MiB, $what:"
printf '  %-42s %-18s %s\n' "" "at end of work" "after $idle_s s idle"
for a in "${allocs[@]}"; do
    printf '  %-42s %-18s %s\n' "$(describe "$a")" "$(spread "${end_rss[$a]}")" "$(spread "${idle_rss[$a]}")"
done
[ ${#trim_flags[@]} != 0 ] || echo "  (this JDK has no -XX:TrimNativeHeapInterval: glibc + trim left out)"

echo
echo "== part 2: a jvmalloc statistics dump that points at the leak"
DEMO_ENV=(JVMALLOC_STATS_FORMAT=text JVMALLOC_STATS_FILE="$tmp/dump-%n.txt")
start jvmalloc dump "$tmp/go"
await warmed-up
sleep 3
kill -USR1 "$PID"
echo "  after the warm-up and 3 s idle: kill -USR1 $PID -> dump #1"
waitfile() {
    local n=0
    until [ -s "$1" ]; do
        ((++n < 100)) || { echo "demo: no dump in $1 after 10 s" >&2; exit 1; }
        sleep 0.1
    done
}
waitfile "$tmp/dump-1.txt"
# Allocation-site sampling is armed in every JVM and costs nothing until it is turned on:
# turn it on now, as an operator would when starting to look.
echo "  then: jvmalloc profile $PID --start -> $(target/release/jvmalloc profile "$PID" --start)"
touch "$tmp/go"
await work-done
sleep 3
kill -USR1 "$PID"
echo "  after the rest of the work, while the leak grew, and 3 s idle: kill -USR1 $PID -> dump #2; its first lines:"
waitfile "$tmp/dump-2.txt"
# The allocation-site profile of the same moment (sampling has been on since the warm-up),
# taken before the JVM is stopped; printed after the dump.
# `jcmd Compiler.perfmap` writes /tmp/perf-<pid>.map, which names the Java method where the
# native stack begins.
jcmd "$PID" Compiler.perfmap >/dev/null 2>&1 || true
target/release/jvmalloc profile "$PID" --top 3 >"$tmp/profile.txt"
rm -f "/tmp/perf-$PID.map"
stop "$PID"
echo
d=$tmp/dump-2.txt
# header, headline, RSS split (up to the jvm: line)
sed -n '1,/^jvm:/p' "$d" | grep -v '^jvm:'
echo "..."
# the thread table's header, the line under it, column names and first three rows, and the
# leaking thread's row
awk '/^threads:/ {p = 1} p && n++ < 6' "$d"
# the leaking thread's row in the thread table (the sampled tables above it name it too)
row=$(awk '/^threads:/ {p = 1} p && / leaky-deflater / {print; exit}' "$d")
if [ -n "$row" ] && ! awk '/^threads:/ {p = 1} p && n++ < 6' "$d" | grep -q ' leaky-deflater '; then
    echo "     ..."
    echo "$row"
fi
echo "..."
echo
headline=$(sed -n 2p "$d")
grew=$(sed -E -n 's/^grew most since dump #[0-9]+ \([^)]*\): ([a-zA-Z ]+) \+.*/\1/p' <<<"$headline")
if [ "$grew" = "native malloc" ] && [ -n "$row" ]; then
    mib=$(awk '{print $NF}' <<<"$row")
    echo "What grew between the dumps is native malloc, and the leaky-deflater thread allocated $mib MiB more than it freed: the leak, by name."
else
    echo "Between the dumps '${grew:-?}' grew most (headline above); the leaky-deflater row: ${row:-not in the table}."
fi

echo
echo "== part 3: the top of an allocation-site profile: jvmalloc profile $PID"
# the header, the entry-point table and the biggest stack
sed -n 1,2p "$tmp/profile.txt"
awk '/^by JNI/ {p = 1} p && /^$/ {exit} p' "$tmp/profile.txt"
awk '/^top stacks/ {p = 1} p && /^#2/ {exit} p' "$tmp/profile.txt"
echo "..."
echo
top=$(awk '/^by JNI/ {getline; print $1; exit}' "$tmp/profile.txt")
site=$(awk '/^#1 / {print; exit}' "$tmp/profile.txt")
if [ "$top" = Java_java_util_zip_Deflater_init ] && grep -q 'thread leaky-deflater' <<<"$site"; then
    echo "The profile names the code: live native memory allocated under Deflater.init (Java_java_util_zip_Deflater_init) by the leaky-deflater thread, with its stack."
else
    echo "The biggest entry point is ${top:-?}; the biggest site: ${site:-none}."
fi
echo "(demo took $((SECONDS - began)) s)"
