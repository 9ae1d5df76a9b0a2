# Helpers shared by the benchmark scripts (sourced, not run).
# Benchmarks print side-by-side medians and ratios; they assert nothing.

cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1
LIB="$PWD/target/release/libjvmalloc.so"
BIN="$PWD/target/c-tests"

# Builds the library and the C benchmark programs.
bench_build() {
    cargo build --release -q
    mkdir -p "$BIN"
    local p
    for p in "$@"; do
        gcc -O2 -g -pthread -I c-tests -o "$BIN/$p" "c-tests/$p.c" -ldl
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

# Describes the machine in one line.
machine() {
    echo "$(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), $(free -g | awk '/Mem:/ {print $2}') GiB, $(. /etc/os-release; echo "$PRETTY_NAME"), $(ldd --version | head -1 | awk '{print "glibc " $NF}')"
}
