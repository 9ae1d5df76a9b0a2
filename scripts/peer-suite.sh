#!/usr/bin/env bash
# The peer suite (issue 12): CPython's own regression tests for signals, subprocesses, fork,
# threads, wait and mmap, run under glibc and with libjvmalloc.so preloaded. Anything the
# library changes that a program can observe should show here as a different outcome.
#
#   scripts/peer-suite.sh [LIB]        LIB defaults to target/release/libjvmalloc.so
#
# Three runs, one after the other, each `python -m test -j2 --timeout 300 --junit-xml`:
#   glibc     all tests, no preload;
#   default   all tests, LD_PRELOAD=LIB and no JVMALLOC_* variable (the library's default
#             scope: only `java` gets more than the allocator);
#   scope=*   LD_PRELOAD=LIB with JVMALLOC_PROCESSES=* (every process in scope: signal handler,
#             jvmalloc thread), only the tests that do not test SIGUSR1 itself.
# Each preloaded run is compared with the glibc run, not with "everything passes" (a test may
# fail on a machine under glibc too): per test file, the outcome ("passed", "failed (1
# failure)", "crashed", ...) and the names of the failing test cases (from the JUnit XML).
# Prints a side-by-side summary and how long each run took; exits 1 when a preloaded run
# differs from glibc, 2 when the suite cannot run. PEER_PYTHON overrides the interpreter
# (default: the real binary behind `python3`, not a pyenv shim script, so that the preloaded
# process is python itself). Outputs go to a temporary directory, removed when every run
# matches (kept when PEER_KEEP is set).
set -u
cd "$(dirname "$0")/.."

LIB=${1:-target/release/libjvmalloc.so}
if [ ! -f "$LIB" ]; then
    echo "peer-suite: $LIB not found (cargo build --release)" >&2
    exit 2
fi
LIB=$(realpath "$LIB")

# Nothing of the caller's configuration leaks into any run.
unset LD_PRELOAD
for v in $(compgen -e); do
    case $v in JVMALLOC_* | _RJEM_*) unset "$v" ;; esac
done

PY=${PEER_PYTHON:-$(python3 -c 'import os, sys; print(os.path.realpath(sys.executable))')}
if ! "$PY" -c 'import test.libregrtest' 2>/dev/null; then
    echo "peer-suite: $PY has no regression test package (test.libregrtest)" >&2
    exit 2
fi

ALL=(test_signal test_subprocess test_posix test_faulthandler test_threading test_os
    test_fork1 test_wait4 test_mmap)
NO_USR1=(test_threading test_fork1 test_wait4 test_os test_mmap)

W=$(mktemp -d "${TMPDIR:-/tmp}/peer-suite.XXXXXX")
echo "peer-suite: $("$PY" -c 'import sys; print(sys.version.split()[0])') ($PY), library $LIB"
echo "peer-suite: outputs in $W"

# run NAME [VAR=value...] -- TESTS...
run() {
    local name=$1 envs=()
    shift
    while [ "$1" != "--" ]; do
        envs+=("$1")
        shift
    done
    shift
    local t0 t1
    t0=$(date +%s.%N)
    # The whole run has a ceiling too: a hang that regrtest's own timeout misses ends here.
    (cd "$W" && env "${envs[@]}" timeout -k 10 1200 "$PY" -m test -j2 --timeout 300 \
        --junit-xml "$W/$name.xml" "$@" >"$W/$name.out" 2>&1)
    local rc=$?
    t1=$(date +%s.%N)
    printf '%s\n' "$(awk -v a="$t0" -v b="$t1" -v n="$name" -v rc="$rc" -v k="$#" \
        'BEGIN { printf "peer-suite: run %-8s %d test files, %.1f s, regrtest exit %d", n, k, b - a, rc }')"
    echo "$name $rc $t0 $t1" >>"$W/runs"
}

run glibc -- "${ALL[@]}"
run default "LD_PRELOAD=$LIB" -- "${ALL[@]}"
run 'scope=*' "LD_PRELOAD=$LIB" 'JVMALLOC_PROCESSES=*' -- "${NO_USR1[@]}"

# Parsing and comparing happen in the interpreter itself, without the preload.
"$PY" - "$W" "${ALL[@]}" <<'EOF'
import os, re, sys
import xml.etree.ElementTree as ET

work, files = sys.argv[1], sys.argv[2:]
runs = ["glibc", "default", "scope=*"]
line_re = re.compile(r"^\d+:\d\d:\d\d (?:load avg: [\d.]+ )?\[\s*\d+/\d+(?:/\d+)?\] (test_\w+) (.*)$")

def outcomes(name):
    """{test file: outcome} from the progress lines of a run."""
    out = {}
    try:
        text = open(os.path.join(work, name + ".out"), errors="replace").read()
    except OSError:
        return out
    for line in text.splitlines():
        m = line_re.match(line)
        if not m:
            continue
        status = m.group(2).split(" -- ")[0]
        # Durations vary from run to run: "passed (32.1 sec)", "(1 min 2 sec)".
        status = re.sub(r"\s*\((?:\d+ min)?\s*(?:[\d.]+ (?:sec|ms))?\)$", "", status).strip()
        out[m.group(1)] = status
    return out

def failing(name):
    """{test file: sorted failing test case names} from a run's JUnit XML."""
    out = {}
    try:
        root = ET.parse(os.path.join(work, name + ".xml")).getroot()
    except (OSError, ET.ParseError):
        return out
    for case in root.iter("testcase"):
        if case.find("failure") is None and case.find("error") is None:
            continue
        full = case.get("name", "?")
        parts = full.split(".")
        f = parts[1] if len(parts) > 1 and parts[0] == "test" else parts[0]
        out.setdefault(f, set()).add(".".join(parts[2:]) if parts[0] == "test" else full)
    return {f: sorted(v) for f, v in out.items()}

ran = {}
for line in open(os.path.join(work, "runs")):
    n, rc, t0, t1 = line.rsplit(None, 3)
    ran[n] = (int(rc), float(t1) - float(t0))
subset = {"scope=*": ["test_threading", "test_fork1", "test_wait4", "test_os", "test_mmap"]}
res = {r: (outcomes(r), failing(r)) for r in runs}

def cell(r, f):
    if r in subset and f not in subset[r]:
        return "-"
    o, fl = res[r]
    s = o.get(f, "no result")
    if fl.get(f):
        s += ": " + ", ".join(c.rsplit(".", 1)[-1] for c in fl[f])
    return s

width = 34
print()
print("test file".ljust(18) + "".join(r.ljust(width) for r in runs))
for f in files:
    print(f.ljust(18) + "".join(cell(r, f)[: width - 2].ljust(width) for r in runs))
print("seconds".ljust(18) + "".join(("%.1f" % ran[r][1] if r in ran else "?").ljust(width) for r in runs))
print()

diffs = []
g_out, g_fail = res["glibc"]
for f in files:
    if f not in g_out:
        diffs.append(f"glibc: {f}: no result under glibc (the run itself failed?)")
for r in runs[1:]:
    o, fl = res[r]
    for f in subset.get(r, files):
        if o.get(f, "no result") != g_out.get(f, "no result"):
            diffs.append(f"{r}: {f}: {o.get(f, 'no result')!r} (glibc: {g_out.get(f, 'no result')!r})")
        only_here = sorted(set(fl.get(f, [])) - set(g_fail.get(f, [])))
        only_glibc = sorted(set(g_fail.get(f, [])) - set(fl.get(f, [])))
        if only_here:
            diffs.append(f"{r}: {f}: fails only under jvmalloc: {', '.join(only_here)}")
        if only_glibc:
            diffs.append(f"{r}: {f}: fails only under glibc: {', '.join(only_glibc)}")
if diffs:
    print("DIFFERENT from glibc:")
    for d in diffs:
        print("  " + d)
    print(f"(full outputs: {work}/<run>.out, JUnit XML: {work}/<run>.xml)")
    sys.exit(1)
print("peer-suite: every preloaded run matches glibc")
EOF
rc=$?
[ "$rc" = 0 ] && [ -z "${PEER_KEEP:-}" ] && rm -rf "$W"
exit "$rc"
