#!/usr/bin/env bash
# A real Flink session cluster on loopback with the TaskManager under an allocator:
#
#   scripts/flink-e2e.sh [ALLOCATOR]
#
# ALLOCATOR: jvmalloc (default), glibc, glibc-arena2 (MALLOC_ARENA_MAX=2), glibc-trim (glibc
# and the JDK's periodic trim, -XX:TrimNativeHeapInterval=1000, on the TaskManager's JVM),
# libjemalloc2 (Debian's, what Flink's Docker image preloads), libjemalloc2-bg (the same with
# MALLOC_CONF=background_thread:true), mimalloc, tcmalloc (Debian packages, installed when
# missing); see alloc_env in scripts/bench-lib.sh. TM_JAVA_OPTS: further JVM options for the
# TaskManager only (split at spaces), after the allocator's own.
#
# Gets Flink from PyPI's apache-flink-libraries wheel (cached in $FLINK_CACHE, default
# ~/.cache/jvmalloc-flink), starts a JobManager and one TaskManager (JVM flags computed by
# Flink's BashJavaUtils, as Flink's own scripts do; LD_PRELOAD only on the TaskManager), then
# runs the session-mode pattern that bloats glibc: $JOBS batch jobs one after another
# (default 10; java.util.zip in user functions, direct buffers, compressed blocking shuffle),
# then one streaming job with checkpoints for $STREAM_S seconds (default 30), cancelled, then
# $IDLE_S seconds (default 10) with no job. Under jvmalloc
# it also takes a statistics dump mid-run with `jvmalloc dump` and checks that it names
# Flink's threads and that its totals reconcile.
#
# Writes to $OUT (default target/flink-e2e/ALLOCATOR): rss.tsv (TaskManager VmRSS/VmHWM every
# second from its registration), jobs.tsv (per job: seconds, RSS and peak after it; then the
# streaming job and the idle time), summary.txt (with the RSS 2 s after the TaskManager
# registered, before the first job, and after the idle time), stats/ (under jvmalloc: dumps
# at start, mid-run, after the batch jobs and after the idle time), log/.
# Stops everything it started, on success, failure or Ctrl-C; exits non-zero with a message
# if anything fails.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
ALLOC=${1:-jvmalloc}
JOBS=${JOBS:-10}
RECORDS=${RECORDS:-100000}
STREAM_S=${STREAM_S:-30}
IDLE_S=${IDLE_S:-10}
FLINK_VERSION=${FLINK_VERSION:-2.3.0}
FLINK_CACHE=${FLINK_CACHE:-$HOME/.cache/jvmalloc-flink}
OUT=${OUT:-$ROOT/target/flink-e2e/$ALLOC}
FLINK=$FLINK_CACHE/flink-$FLINK_VERSION

say() { echo "flink-e2e [$ALLOC]: $*" >&2; }
fail() {
    say "FAILED: $*"
    exit 1
}

pids=()
cleanup() {
    local p
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for _ in $(seq 50); do
        local alive=0
        for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
        [ $alive = 0 ] && break
        sleep 0.2
    done
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    pids=()
}
trap cleanup EXIT
trap 'say "interrupted"; exit 130' INT TERM
# Runs a command as a child and waits for it, so that Ctrl-C or TERM is handled at once
# (bash delays traps while a foreground command runs) and the child is stopped too.
run_child() {
    "$@" &
    local p=$!
    pids+=("$p")
    wait "$p"
}

# --- Flink from PyPI -------------------------------------------------------------------
if [ ! -f "$FLINK/lib/flink-dist-$FLINK_VERSION.jar" ]; then
    mkdir -p "$FLINK_CACHE"
    wheels=("$FLINK_CACHE"/apache_flink_libraries-"$FLINK_VERSION"-*.whl)
    whl=${wheels[0]}
    if [ ! -f "$whl" ]; then
        say "downloading apache-flink-libraries $FLINK_VERSION from PyPI (about 330 MB) into $FLINK_CACHE"
        python3 -m pip download --no-deps --quiet "apache-flink-libraries==$FLINK_VERSION" -d "$FLINK_CACHE" ||
            fail "cannot download apache-flink-libraries $FLINK_VERSION"
        wheels=("$FLINK_CACHE"/apache_flink_libraries-"$FLINK_VERSION"-*.whl)
        whl=${wheels[0]}
    fi
    python3 - "$whl" "$FLINK" <<'PY'
import os, sys, zipfile
whl, dest = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(whl) as z:
    for n in z.namelist():
        for sub in ("lib/", "bin/"):
            if n.startswith("pyflink/" + sub) and not n.endswith("/"):
                target = os.path.join(dest, n[len("pyflink/"):])
                os.makedirs(os.path.dirname(target), exist_ok=True)
                with z.open(n) as src, open(target, "wb") as dst:
                    dst.write(src.read())
PY
fi
command -v java >/dev/null || fail "no java (run scripts/install-deps.sh)"

# --- the allocator under test ----------------------------------------------------------
. "$ROOT/scripts/bench-lib.sh"
alloc_env "$ALLOC" || fail "unknown allocator '$ALLOC' ($ALLOCATORS_ALL), or its package could not be installed"
if [ "$ALLOC" = jvmalloc ]; then
    cargo build --release -q || fail "cargo build failed"
    ALLOC_ENV+=(JVMALLOC_STATS_FORMAT=json JVMALLOC_STATS_FILE="$OUT/stats/taskmanager-%p-%n.json")
fi
alloc_env=("${ALLOC_ENV[@]}")
read -r -a tm_extra_opts <<<"${TM_JAVA_OPTS:-}"
tm_java_opts=("${ALLOC_JAVA_OPTS[@]}" "${tm_extra_opts[@]}")

# --- configuration ---------------------------------------------------------------------
rm -rf "$OUT/log" "$OUT/conf" "$OUT/checkpoints" "$OUT/job-classes"
mkdir -p "$OUT/log" "$OUT/conf" "$OUT/checkpoints" "$OUT/stats"
rm -f "$OUT"/stats/*.json
CONF=$OUT/conf
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
RPC_PORT=$(free_port)
REST_PORT=$(free_port)
# The module flags Flink's default configuration gives every JVM on JDK 17.
OPENS="--add-exports=java.base/sun.net.util=ALL-UNNAMED --add-exports=java.rmi/sun.rmi.registry=ALL-UNNAMED --add-exports=java.security.jgss/sun.security.krb5=ALL-UNNAMED --add-opens=java.base/java.lang=ALL-UNNAMED --add-opens=java.base/java.net=ALL-UNNAMED --add-opens=java.base/java.io=ALL-UNNAMED --add-opens=java.base/java.nio=ALL-UNNAMED --add-opens=java.base/sun.nio.ch=ALL-UNNAMED --add-opens=java.base/java.lang.reflect=ALL-UNNAMED --add-opens=java.base/java.text=ALL-UNNAMED --add-opens=java.base/java.time=ALL-UNNAMED --add-opens=java.base/java.util=ALL-UNNAMED --add-opens=java.base/java.util.concurrent=ALL-UNNAMED --add-opens=java.base/java.util.concurrent.atomic=ALL-UNNAMED --add-opens=java.base/java.util.concurrent.locks=ALL-UNNAMED"
cat >"$CONF/config.yaml" <<YAML
jobmanager.rpc.address: localhost
jobmanager.rpc.port: $RPC_PORT
jobmanager.bind-host: localhost
jobmanager.memory.process.size: 1024m
rest.address: localhost
rest.bind-address: localhost
rest.port: $REST_PORT
taskmanager.host: localhost
taskmanager.bind-host: localhost
taskmanager.memory.process.size: 2048m
taskmanager.numberOfTaskSlots: 2
parallelism.default: 2
taskmanager.network.compression.codec: LZ4
execution.batch-shuffle-mode: ALL_EXCHANGES_BLOCKING
execution.checkpointing.storage: filesystem
execution.checkpointing.dir: file://$OUT/checkpoints
env.java.opts.all: $OPENS
YAML
cat >"$CONF/log4j.properties" <<'LOG'
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = MainAppender
appender.main.name = MainAppender
appender.main.type = File
appender.main.fileName = ${sys:log.file}
appender.main.layout.type = PatternLayout
appender.main.layout.pattern = %d{yyyy-MM-dd HH:mm:ss,SSS} %-5p %-60c %x - %m%n
LOG
# sets LOG_OPTS to the logging options of process $1
log_opts() { LOG_OPTS=("-Dlog.file=$OUT/log/$1.log" "-Dlog4j.configurationFile=file:$CONF/log4j.properties"); }

# --- the job jar -----------------------------------------------------------------------
mkdir -p "$OUT/job-classes"
javac -d "$OUT/job-classes" -cp "$FLINK/lib/*" scripts/flink/NativeJobs.java || fail "cannot compile the jobs"
JOBJAR=$OUT/jobs.jar
jar cf "$JOBJAR" -C "$OUT/job-classes" . || fail "cannot build $JOBJAR"

rest() { # GET a REST path, print the JSON
    python3 -c 'import sys, urllib.request; print(urllib.request.urlopen("http://localhost:" + sys.argv[1] + sys.argv[2], timeout=5).read().decode())' "$REST_PORT" "$1"
}
flink() { # the Flink CLI
    log_opts client
    # shellcheck disable=SC2086 # OPENS is a list of options
    FLINK_CONF_DIR=$CONF run_child java $OPENS "${LOG_OPTS[@]}" -cp "$FLINK/lib/*" org.apache.flink.client.cli.CliFrontend "$@"
}

# --- cluster ---------------------------------------------------------------------------
say "starting the JobManager (REST on localhost:$REST_PORT)"
log_opts jobmanager
# shellcheck disable=SC2086
java -Xmx768m $OPENS "${LOG_OPTS[@]}" -cp "$FLINK/lib/*" \
    org.apache.flink.runtime.entrypoint.StandaloneSessionClusterEntrypoint --configDir "$CONF" \
    >"$OUT/log/jobmanager.out" 2>&1 &
pids+=($!)

mapfile -t tm_params < <(java -cp "$FLINK/bin/bash-java-utils.jar:$FLINK/lib/*" \
    org.apache.flink.runtime.util.bash.BashJavaUtils GET_TM_RESOURCE_PARAMS --configDir "$CONF" 2>/dev/null |
    sed -n 's/^BASH_JAVA_UTILS_EXEC_RESULT://p')
[ ${#tm_params[@]} -ge 2 ] || fail "BashJavaUtils gave no TaskManager parameters"
say "TaskManager JVM: ${tm_params[0]}"
say "starting the TaskManager with ${alloc_env[*]}${tm_java_opts[*]:+ and JVM options ${tm_java_opts[*]}}"
log_opts taskmanager
# shellcheck disable=SC2086
env "${alloc_env[@]}" java ${tm_params[0]} $OPENS "${tm_java_opts[@]}" "${LOG_OPTS[@]}" -cp "$FLINK/lib/*" \
    org.apache.flink.runtime.taskexecutor.TaskManagerRunner --configDir "$CONF" ${tm_params[1]} \
    >"$OUT/log/taskmanager.out" 2>&1 &
TM_PID=$!
pids+=("$TM_PID")

for i in $(seq 120); do
    n=$(rest /taskmanagers 2>/dev/null | python3 -c 'import json, sys; print(len(json.load(sys.stdin)["taskmanagers"]))' 2>/dev/null || echo 0)
    [ "$n" = 1 ] && break
    kill -0 "$TM_PID" 2>/dev/null || fail "the TaskManager died; see $OUT/log/taskmanager.out and taskmanager.log"
    [ "$i" = 120 ] && fail "the TaskManager did not register within 60 s"
    sleep 0.5
done
say "cluster up: TaskManager pid $TM_PID"
for o in "${tm_java_opts[@]}"; do
    tr '\0' '\n' <"/proc/$TM_PID/cmdline" | grep -qxF -- "$o" || fail "the TaskManager's command line lacks $o"
done

# RSS every second.
echo -e "seconds\trss_kb\thwm_kb" >"$OUT/rss.tsv"
T0=$(date +%s.%N)
(
    while kill -0 "$TM_PID" 2>/dev/null; do
        awk -v t="$(date +%s.%N)" -v t0="$T0" '/^VmRSS/ {r = $2} /^VmHWM/ {h = $2} END {if (r) printf "%.1f\t%d\t%d\n", t - t0, r, h}' \
            "/proc/$TM_PID/status" 2>/dev/null || true
        sleep 1
    done
) >>"$OUT/rss.tsv" &
pids+=($!)

tm_mem() { awk '/^VmRSS/ {r = $2} /^VmHWM/ {h = $2} END {print r "\t" h}' "/proc/$TM_PID/status"; }
run_child sleep 2 # as between jobs
start_mem=$(tm_mem)
say "TaskManager RSS/peak kB before the first job: ${start_mem/$'\t'//}"
# Under jvmalloc, where that memory is (read after the RSS, so the dump does not count).
tm_dump() { # file
    [ "$ALLOC" != jvmalloc ] ||
        run_child "$ROOT/target/release/jvmalloc" dump "$TM_PID" --format json --timeout 30 >"$OUT/stats/$1" ||
        fail "jvmalloc dump of the TaskManager failed"
}
tm_dump start.json

# --- batch jobs ------------------------------------------------------------------------
echo -e "job\tseconds\trss_kb\thwm_kb" >"$OUT/jobs.tsv"
total_ms=0
for j in $(seq "$JOBS"); do
    start=$(date +%s%N)
    flink run -m "localhost:$REST_PORT" -c NativeJobs "$JOBJAR" batch "$RECORDS" "$j" >"$OUT/log/job-$j.out" 2>&1 ||
        fail "batch job $j failed; see $OUT/log/job-$j.out"
    grep -q "batch $j ok" "$OUT/log/job-$j.out" || fail "batch job $j did not report its result; see $OUT/log/job-$j.out"
    ms=$((($(date +%s%N) - start) / 1000000))
    total_ms=$((total_ms + ms))
    sleep 2 # let the TaskManager settle, as between jobs of a session
    echo -e "$j\t$(echo "scale=1; $ms / 1000" | bc)\t$(tm_mem)" >>"$OUT/jobs.tsv"
    say "batch job $j/$JOBS ok in ${ms} ms; TaskManager RSS/peak kB: $(tm_mem | tr '\t' '/')"
    if [ "$ALLOC" = jvmalloc ] && [ "$j" = $(((JOBS + 1) / 2)) ]; then
        run_child "$ROOT/target/release/jvmalloc" dump "$TM_PID" --format json --timeout 30 >"$OUT/stats/mid-run.json" ||
            fail "jvmalloc dump of the TaskManager failed"
        python3 - "$OUT/stats/mid-run.json" <<'PY' || fail "the mid-run dump does not check out"
import json, sys
d = json.load(open(sys.argv[1]))
names = sorted({t["name"] for t in d["threads"]})
flink = [n for n in names if n.startswith(("flink-", "Flink", "Source", "Map", "Keyed", "pool-", "OutputFlusher"))]
assert len(flink) >= 3, f"no Flink thread names in {names}"
r = d["reconciliation"]
assert r["allocated"] == r["threads_net"] + r["tcache"] + r["internal"] + r["unregistered_net"], r
assert abs(r["unregistered_net"]) <= max(16 << 20, r["allocated"] // 20), r
m = d["memory"]
print(f"mid-run dump: {len(d['threads'])} live threads, e.g. {', '.join(flink[:6])}; "
      f"RSS {m['rss'] >> 20} MiB, native live {m['allocated'] >> 20} MiB, "
      f"RSS not owned by malloc {m['rss_not_malloc'] >> 20} MiB; unregistered {r['unregistered_net']} bytes")
PY
    fi
done

# Under jvmalloc: a dump by plain signal after the last batch job, and what grew since the
# mid-run dump.
if [ "$ALLOC" = jvmalloc ]; then
    count() { find "$OUT/stats" -maxdepth 1 -name 'taskmanager-*.json' | wc -l; }
    before=$(count)
    kill -USR1 "$TM_PID"
    for _ in $(seq 100); do
        [ "$(count)" -gt "$before" ] && break
        sleep 0.1
    done
    [ "$(count)" -gt "$before" ] || fail "no dump after kill -USR1"
    # shellcheck disable=SC2012 # names without spaces; the newest one
    last=$(ls -t "$OUT"/stats/taskmanager-*.json | head -1)
    "$ROOT/target/release/jvmalloc" diff "$OUT/stats/mid-run.json" "$last" >"$OUT/stats/diff.txt" ||
        fail "jvmalloc diff failed"
    say "what grew between the mid-run dump and the end of the batch jobs ($OUT/stats/diff.txt):"
    sed -n '/^threads by name/,/^size classes/p' "$OUT/stats/diff.txt" | head -8 >&2
fi

# --- streaming job with checkpoints ----------------------------------------------------
flink run -d -m "localhost:$REST_PORT" -c NativeJobs "$JOBJAR" streaming >"$OUT/log/streaming.out" 2>&1 ||
    fail "cannot submit the streaming job; see $OUT/log/streaming.out"
JOB_ID=$(sed -n 's/.*JobID \([0-9a-f]\{32\}\).*/\1/p' "$OUT/log/streaming.out" | head -1)
[ -n "$JOB_ID" ] || fail "no job id in $OUT/log/streaming.out"
run_child sleep "$STREAM_S"
completed=$(rest "/jobs/$JOB_ID/checkpoints" | python3 -c 'import json, sys; print(json.load(sys.stdin)["counts"]["completed"])')
state=$(rest "/jobs/$JOB_ID" | python3 -c 'import json, sys; print(json.load(sys.stdin)["state"])')
[ "$state" = RUNNING ] || fail "streaming job is $state, not RUNNING"
[ "$completed" -ge 3 ] || fail "streaming job completed only $completed checkpoints in $STREAM_S s"
flink cancel -m "localhost:$REST_PORT" "$JOB_ID" >>"$OUT/log/streaming.out" 2>&1 || fail "cannot cancel the streaming job"
say "streaming job ran $STREAM_S s with $completed checkpoints; cancelled"
echo -e "streaming\t$STREAM_S\t$(tm_mem)" >>"$OUT/jobs.tsv"
run_child sleep "$IDLE_S"
idle_mem=$(tm_mem)
echo -e "idle\t$IDLE_S\t$idle_mem" >>"$OUT/jobs.tsv"
tm_dump idle.json
say "TaskManager RSS/peak kB after $IDLE_S s without a job: ${idle_mem/$'\t'//}"

# --- summary ---------------------------------------------------------------------------
{
    echo "allocator $ALLOC"
    echo "batch_jobs $JOBS"
    echo "tm_java_opts ${tm_java_opts[*]:--}"
    echo "rss_at_start_kb $(echo "$start_mem" | cut -f1)"
    echo "total_job_seconds $(echo "scale=1; $total_ms / 1000" | bc)"
    awk 'NR == 2 {print "rss_after_job1_kb " $3} $1 ~ /^[0-9]+$/ {last = $3} END {print "rss_after_last_job_kb " last}' "$OUT/jobs.tsv"
    echo "rss_after_idle_kb $(echo "$idle_mem" | cut -f1)"
    echo "peak_rss_kb $(tm_mem | cut -f2)"
    echo "checkpoints $completed"
} >"$OUT/summary.txt"
cat "$OUT/summary.txt"
say "done; results in $OUT"
