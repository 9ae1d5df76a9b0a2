#!/usr/bin/env bash
# Builds target/release/libjvmalloc.so and runs a Java program that churns native memory
# from 32 threads (zlib, direct buffers, thread creation) once under glibc's malloc and once
# under jvmalloc, then prints both processes' resident memory side by side.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cargo build --release
lib="$PWD/target/release/libjvmalloc.so"
classes=target/demo-classes
mkdir -p "$classes"
javac -d "$classes" c-tests/jvm/NativeChurn.java
threads=${DEMO_THREADS:-32}
rounds=${DEMO_ROUNDS:-300}
run() { # label, then env assignments
    local label=$1
    shift
    local out
    out=$(env "$@" java -Xmx256m -cp "$classes" NativeChurn "$threads" "$rounds")
    echo "$out" | grep -q "NativeChurn: ok" || { echo "$out"; echo "demo: $label run failed" >&2; exit 1; }
    # "VmRSS 123456 kB VmHWM 234567 kB"
    echo "$out" | awk -v l="$label" '/^VmRSS/ {printf "%-10s RSS at end %8d MiB   peak RSS %8d MiB\n", l, $2/1024, $5/1024}'
}
echo "NativeChurn, $threads threads x $rounds rounds, -Xmx256m"
run glibc LD_PRELOAD=
run jvmalloc LD_PRELOAD="$lib"
