#!/usr/bin/env bash
# Installs what the demo, the test suite and the benchmarks need on a Debian/Ubuntu machine
# and are missing: a C compiler, a JDK (javac, java, jcmd), python3, git, binutils (nm),
# util-linux (taskset), gdb (stacks of a test that hangs), prometheus (the server and
# promtool, for tests/metrics.rs). Rust (cargo) must already be there (https://rustup.rs).
set -euo pipefail
need=()
command -v gcc >/dev/null || need+=(gcc libc6-dev)
{ command -v javac && command -v jcmd; } >/dev/null || need+=(default-jdk-headless)
command -v python3 >/dev/null || need+=(python3)
command -v git >/dev/null || need+=(git)
command -v nm >/dev/null || need+=(binutils)
command -v taskset >/dev/null || need+=(util-linux)
# gdb: a test that hangs prints every thread's stack before it is killed.
command -v gdb >/dev/null || need+=(gdb)
# prometheus: tests/metrics.rs scrapes the library with a real server and lints its output
# with promtool (Debian's package brings both).
{ command -v prometheus && command -v promtool; } >/dev/null || need+=(prometheus)
if ((${#need[@]})); then
    echo "install-deps: installing ${need[*]}"
    sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get update -q
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${need[@]}"
    if [[ " ${need[*]} " == *" prometheus "* ]]; then
        # The package starts a system service on :9090; the tests run their own server on
        # loopback. Stop it and keep it from starting again (no systemd in a container:
        # then the init script; either may fail, and that is fine).
        if $sudo systemctl stop prometheus 2>/dev/null; then
            $sudo systemctl disable prometheus 2>/dev/null || true
        else
            $sudo service prometheus stop 2>/dev/null || true
        fi
    fi
fi
if ! command -v cargo >/dev/null; then
    if [ -f "$HOME/.cargo/env" ]; then
        echo "install-deps: cargo is in ~/.cargo/bin; run: . ~/.cargo/env" >&2
    else
        echo "install-deps: cargo not found; install Rust from https://rustup.rs" >&2
    fi
    exit 1
fi
