# shellcheck shell=bash disable=SC2034 # sourced; the variables it sets are used by its callers
# Helpers shared by the benchmark scripts (sourced, not run).
# Benchmarks print side-by-side medians and ratios; they assert nothing.

cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1
LIB="$PWD/target/release/libjvmalloc.so"
BIN="$PWD/target/c-tests"

# Builds the library (not the command: scripts/flink-e2e.sh builds that when it needs it)
# and the C benchmark programs.
bench_build() {
    cargo build --release -q -p jvmalloc
    mkdir -p "$BIN"
    local p
    for p in "$@"; do
        gcc -O2 -g -fno-builtin -pthread -I c-tests -o "$BIN/$p" "c-tests/$p.c" -ldl
    done
}

# median of the numbers on stdin
median() {
    sort -g | awk '{v[NR] = $1} END {if (NR == 0) print "nan"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2}'
}

# field NAME from a "key value key value" line
field() {
    awk -v k="$1" '{for (i = 1; i < NF; i++) if ($i == k) print $(i + 1)}'
}

# Instructions valgrind's callgrind counts for a whole run (deterministic, unlike time):
#   instructions [NAME=VALUE ...] program [args ...]
instructions() {
    local vars=()
    while [ $# -gt 0 ] && [[ "$1" == *=* ]]; do
        vars+=("$1")
        shift
    done
    env "${vars[@]}" valgrind --tool=callgrind --callgrind-out-file=/dev/null "$@" 2>&1 |
        awk '/Collected/ {print $NF}'
}

# Describes the machine in one line.
machine() {
    echo "$(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), $(free -g | awk '/Mem:/ {print $2}') GiB, $(. /etc/os-release; echo "$PRETTY_NAME"), $(ldd --version | head -1 | awk '{print "glibc " $NF}')"
}

# Installs a Debian package if the library file it provides is missing; prints the file.
need_pkg() { # package, library file
    if [ ! -e "$2" ]; then
        echo "installing $1" >&2
        local sudo=""
        [ "$(id -u)" = 0 ] || sudo=sudo
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q "$1" >/dev/null || return 1
    fi
    echo "$2"
}

ALLOCATORS_ALL="glibc glibc-arena2 glibc-trim libjemalloc2 libjemalloc2-bg mimalloc tcmalloc jvmalloc"

# The JVM flags of the JDK's own periodic malloc_trim (every second): a product flag in
# 17.0.15, 21 and 25, experimental in some earlier updates, absent before 17.0.9 (then
# nothing is printed and the status is 1).
trim_native_heap_flags() {
    local line
    line=$(java -XX:+UnlockExperimentalVMOptions -XX:+PrintFlagsFinal -version 2>/dev/null | grep -w TrimNativeHeapInterval || true)
    case "$line" in
    *experimental*) echo "-XX:+UnlockExperimentalVMOptions -XX:TrimNativeHeapInterval=1000" ;;
    ?*) echo "-XX:TrimNativeHeapInterval=1000" ;;
    *) return 1 ;;
    esac
}

# Sets the array ALLOC_ENV to the environment that runs a program under allocator $1, the
# array ALLOC_JAVA_OPTS to the flags a JVM needs for it (empty for all but glibc-trim) and
# ALLOC_JVM_ONLY to 1 when the allocator differs from another one only in JVM flags (then
# programs that are not JVMs have nothing to measure under it):
#   glibc, glibc-arena2 (MALLOC_ARENA_MAX=2);
#   glibc-trim: glibc, and in JVMs the JDK's periodic trim, -XX:TrimNativeHeapInterval=1000;
#   libjemalloc2: Debian's jemalloc with its defaults (what Flink's Docker image preloads);
#   libjemalloc2-bg: the same with MALLOC_CONF=background_thread:true (jemalloc's own
#     threads purge dirty pages as they decay);
#   mimalloc, tcmalloc (Debian's packages; packages are installed when missing);
#   jvmalloc (this repository's release build).
alloc_env() {
    local multiarch trim
    multiarch=/usr/lib/$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
    ALLOC_JAVA_OPTS=()
    ALLOC_JVM_ONLY=0
    case "$1" in
    glibc) ALLOC_ENV=(LD_PRELOAD=) ;;
    glibc-arena2) ALLOC_ENV=(LD_PRELOAD= MALLOC_ARENA_MAX=2) ;;
    glibc-trim)
        trim=$(trim_native_heap_flags) || return 1
        read -r -a ALLOC_JAVA_OPTS <<<"$trim"
        ALLOC_JVM_ONLY=1
        ALLOC_ENV=(LD_PRELOAD=)
        ;;
    libjemalloc2) ALLOC_ENV=(LD_PRELOAD="$(need_pkg libjemalloc2 "$multiarch/libjemalloc.so.2")") ;;
    libjemalloc2-bg) ALLOC_ENV=(LD_PRELOAD="$(need_pkg libjemalloc2 "$multiarch/libjemalloc.so.2")" MALLOC_CONF=background_thread:true) ;;
    mimalloc) ALLOC_ENV=(LD_PRELOAD="$(need_pkg libmimalloc2.0 "$multiarch/libmimalloc.so.2")") ;;
    tcmalloc) ALLOC_ENV=(LD_PRELOAD="$(need_pkg libtcmalloc-minimal4 "$multiarch/libtcmalloc_minimal.so.4")") ;;
    jvmalloc) ALLOC_ENV=(LD_PRELOAD="$LIB") ;;
    *) return 1 ;;
    esac
    case "$1" in
    glibc | glibc-arena2 | glibc-trim) ;;
    *) [ "${ALLOC_ENV[0]}" != "LD_PRELOAD=" ] ;;
    esac
}
