#!/usr/bin/env python3
"""Turns the raw results of scripts/bench.sh into Markdown tables (written into
docs/benchmarks.md between the "bench.sh" markers) and gnuplot charts (SVG).

Usage: bench-report.py RESULTS_DIR BENCHMARKS_MD IMG_DIR
"""
import json
import os
import statistics
import subprocess
import sys

res, md_path, img = sys.argv[1], sys.argv[2], sys.argv[3]
ALLOCATORS = ["glibc", "glibc-arena2", "glibc-trim", "libjemalloc2", "libjemalloc2-bg",
              "mimalloc", "tcmalloc", "jvmalloc"]
allocs = [a for a in ALLOCATORS if os.path.isdir(os.path.join(res, a))]


def fields(line):
    """'[name:] k v k v ...' -> {k: float(v)}"""
    parts = line.split()
    if parts and parts[0].endswith(":"):
        parts = parts[1:]
    out = {}
    for k, v in zip(parts[::2], parts[1::2]):
        try:
            out[k] = float(v)
        except ValueError:
            pass
    return out


def runs(alloc, name):
    path = os.path.join(res, alloc, name)
    if not os.path.exists(path):
        return None
    return [fields(l) for l in open(path) if l.strip()]


def values(alloc, name, key):
    """The values of KEY in every run of workload NAME; None when the workload did not run
    under ALLOC (glibc-trim in the C workloads)."""
    rs = runs(alloc, name)
    return None if rs is None else [r[key] for r in rs if key in r]


def table(title, cols):
    """cols: list of (header, workload, key, scale, fmt[, fn(alloc) -> values or None])."""
    name, _, note = title.partition("|")
    n = max((len(col_values(c, a) or []) for c in cols for a in allocs), default=0)
    out = [f"**{name}** ({note}; median of {n} runs, min – max in square brackets, "
           "ratio of the medians to jvmalloc's in parentheses)", "",
           "| allocator | " + " | ".join(c[0] for c in cols) + " |",
           "|---|" + "---|" * len(cols)]
    base = {}
    for c in cols:
        v = col_values(c, "jvmalloc")
        base[c[0]] = statistics.median(v) if v else None
    for a in allocs:
        cells = []
        for c in cols:
            vals = col_values(c, a)
            if vals is None:
                cells.append("n/a")
            elif not vals:
                cells.append("-")
            else:
                m, b, f = statistics.median(vals), base[c[0]], c[4]
                cell = f.format(m * c[3])
                if len(vals) > 1:
                    cell += f" [{f.format(min(vals) * c[3])} – {f.format(max(vals) * c[3])}]"
                if b:
                    cell += f" ({m / b:.2f})"
                cells.append(cell)
        out.append(f"| {a} | " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def col_values(c, alloc):
    return c[5](alloc) if len(c) > 5 else values(alloc, c[1], c[2])


def flink_runs(alloc):
    d = os.path.join(res, alloc)
    out = []
    for name in sorted(os.listdir(d)):
        summary = os.path.join(d, name, "summary.txt")
        if name.startswith("flink-") and not name.endswith(".failed") and os.path.exists(summary):
            s = dict(l.rstrip("\n").split(None, 1) for l in open(summary) if l.strip())
            jobs = [l.rstrip("\n").split("\t") for l in open(os.path.join(d, name, "jobs.tsv"))][1:]
            out.append({"dir": os.path.join(d, name), "summary": {k: v.strip() for k, v in s.items()},
                        "jobs": [(j[0], float(j[1]), int(j[2]), int(j[3])) for j in jobs if j[0].isdigit()]})
    return out


def summary_kb(key):
    """A number from a Flink run's summary.txt; absent in older results."""
    return lambda r: float(r["summary"][key]) if key in r["summary"] else None


def flink_values(alloc, fn):
    vals = [fn(r) for r in flink_runs(alloc)]
    return [v for v in vals if v is not None]


def where_tm_memory():
    """jvmalloc's TaskManager at start and after idle, from the dumps flink-e2e.sh takes."""
    rows = [("at start", "start.json"), ("after 10 s idle", "idle.json")]
    cols = [("RSS", lambda m: m["rss"]),
            ("not malloc (Java heap, code, stacks, ...)", lambda m: m["rss_not_malloc"]),
            ("malloc allocated", lambda m: m["allocated"]),
            ("of which in thread caches", lambda m: m["tcache"]),
            ("jemalloc metadata", lambda m: m["metadata"]),
            ("dirty", lambda m: m["dirty"]),
            ("active − allocated", lambda m: m["active"] - m["allocated"])]
    out = []
    for label, file in rows:
        dumps = []
        for r in flink_runs("jvmalloc") if "jvmalloc" in allocs else []:
            path = os.path.join(r["dir"], "stats", file)
            if os.path.exists(path):
                dumps.append(json.load(open(path))["memory"])
        if dumps:
            cells = [f"{statistics.median(fn(m) for m in dumps) / (1 << 20):.0f}" for _, fn in cols]
            out.append(f"| {label} | " + " | ".join(cells) + " |")
    if not out:
        return ""
    return ("**Where jvmalloc's TaskManager memory is** (its own dumps, `jvmalloc dump --format json`, "
            f"taken right after the RSS readings above; MiB, median of {len(dumps)} runs; see "
            "[stats.md](stats.md) for each figure)\n\n"
            "| when | " + " | ".join(c[0] for c in cols) + " |\n|---|" + "---|" * len(cols) + "\n"
            + "\n".join(out) + "\n")


def main():
    mib = 1 / 1024
    parts = [f"Machine: {open(os.path.join(res, 'machine')).read().strip()}.",
             f"Command: `{open(os.path.join(res, 'command')).read().strip()}`.", ""]
    if os.path.exists(os.path.join(res, "allocators")):
        parts.append("Allocators (the environment of every program, and options of the JVMs):\n")
        for line in open(os.path.join(res, "allocators")):
            root = os.path.dirname(os.path.dirname(os.path.abspath(res))) + "/"  # res is ROOT/target/bench
            a, _, env = line.strip().replace(root, "").partition(" ")
            env, _, jvm = env.partition(" (JVMs: ")
            if a:
                parts.append(f"- {a}: `{env}`" + (f", JVMs with `{jvm.rstrip(')')}`" if jvm else ""))
        parts.append("")
    if "glibc-trim" in allocs:
        parts.append("glibc-trim is glibc with a JVM flag; the C programs are the same under it as "
                     "under glibc, so it has no figures of its own there (n/a).\n")
    parts.append(table("Burst and return|c-tests/burst.c; peak: VmHWM up to the end of the burst; "
                       "after burst: right after all but the kept 2 % were freed; MiB", [
        ("RSS at start", "burst", "pre_mib", 1, "{:.0f}"),
        ("peak RSS", "burst", "peak_mib", 1, "{:.0f}"),
        ("RSS after burst", "burst", "rss_mib", 1, "{:.0f}"),
        ("RSS after 10 s idle", "burst", "idle_rss_mib", 1, "{:.0f}"),
    ]))
    parts.append(table("C throughput|c-tests/throughput.c, 16 threads, cross-thread frees; Mops/s, higher is better", [
        ("throughput", "throughput", "mops_per_s", 1, "{:.1f}"),
        ("peak RSS MiB", "throughput", "hwm_kb", mib, "{:.0f}"),
    ]))
    parts.append(table("Large allocations|c-tests/large.c, 4 threads × 200 blocks of 1 – 32 MiB; s, MiB", [
        ("run time", "large", "seconds", 1, "{:.2f}"),
        ("RSS at start", "large", "pre_kb", mib, "{:.0f}"),
        ("peak RSS", "large", "hwm_kb", mib, "{:.0f}"),
        ("RSS after work", "large", "rss_kb", mib, "{:.0f}"),
        ("RSS after 10 s idle", "large", "idle_rss_kb", mib, "{:.0f}"),
    ]))
    parts.append(table("Java native churn|NativeChurn, 32 threads × 200 rounds, -Xmx512m; ms, MiB", [
        ("run time", "java", "run_ms", 1, "{:.0f}"),
        ("RSS at start", "java", "start_rss_kb", mib, "{:.0f}"),
        ("peak RSS", "java", "hwm_kb", mib, "{:.0f}"),
        ("RSS after work", "java", "rss_kb", mib, "{:.0f}"),
        ("RSS after 10 s idle", "java", "idle_rss_kb", mib, "{:.0f}"),
    ]))
    if any(flink_runs(a) for a in allocs):
        def fcol(header, fn, scale, fmt):
            return (header, None, None, scale, fmt, lambda a: flink_values(a, fn))
        parts.append(table("Flink session|TaskManager of scripts/flink-e2e.sh; RSS at start: 2 s after it "
                           "registered, before the first job; peak: VmHWM over the whole session; "
                           "idle: 10 s after the streaming job was cancelled; MiB, s", [
            fcol("RSS at start", summary_kb("rss_at_start_kb"), mib, "{:.0f}"),
            fcol("RSS after job 1", lambda r: r["jobs"][0][2], mib, "{:.0f}"),
            fcol("RSS after last job", lambda r: r["jobs"][-1][2], mib, "{:.0f}"),
            fcol("growth job 1 → last", lambda r: r["jobs"][-1][2] - r["jobs"][0][2], mib, "{:.0f}"),
            fcol("peak RSS", lambda r: float(r["summary"].get("peak_rss_kb", max(j[3] for j in r["jobs"]))),
                 mib, "{:.0f}"),
            fcol("RSS after 10 s idle", summary_kb("rss_after_idle_kb"), mib, "{:.0f}"),
            fcol("total job time", lambda r: sum(j[1] for j in r["jobs"]), 1, "{:.1f}"),
        ]))
        parts.append(where_tm_memory())
        charts(parts)
    text = "\n".join(parts)
    md = open(md_path).read()
    begin, end = "<!-- bench.sh begin -->", "<!-- bench.sh end -->"
    if begin in md:
        md = md[:md.index(begin) + len(begin)] + "\n" + text + "\n" + md[md.index(end):]
    else:
        md += f"\n{begin}\n{text}\n{end}\n"
    open(md_path, "w").write(md)
    print(text)


def charts(parts):
    os.makedirs(img, exist_ok=True)
    data = os.path.join(res, "charts")
    os.makedirs(data, exist_ok=True)
    series = []
    for a in allocs:
        rs = flink_runs(a)
        if not rs:
            continue
        # RSS over time: the run whose final RSS is the median one.
        rs_sorted = sorted(rs, key=lambda r: r["jobs"][-1][2])
        run = rs_sorted[len(rs_sorted) // 2]
        series.append((a, os.path.join(run["dir"], "rss.tsv")))
        with open(os.path.join(data, f"{a}.jobs"), "w") as f:
            for i in range(len(run["jobs"])):
                vals = [r["jobs"][i][2] for r in rs if len(r["jobs"]) > i]
                f.write(f"{i + 1}\t{statistics.median(vals) / 1024:.1f}\n")
    if not series:
        return
    plot = lambda fn, using: ", ".join(f'"{p}" using {using} with lines lw 2 title "{a}"' for a, p in fn)
    script = f"""
set terminal svg size 900,480 dynamic font "sans,12"
set key top left
set grid
set output "{img}/flink-rss-over-time.svg"
set title "Flink TaskManager RSS over the session ({len(series)} allocators)"
set xlabel "seconds since the TaskManager registered"
set ylabel "RSS (MiB)"
plot {plot(series, '1:($2/1024)')}
set output "{img}/flink-rss-after-each-job.svg"
set title "Flink TaskManager RSS after each batch job (median of runs)"
set xlabel "batch job"
set xtics 1
plot {", ".join(f'"{os.path.join(data, a + ".jobs")}" using 1:2 with linespoints lw 2 title "{a}"' for a, _ in series)}
"""
    subprocess.run(["gnuplot"], input=script, text=True, check=True, stderr=subprocess.PIPE)
    parts.append("![TaskManager RSS over time](img/flink-rss-over-time.svg)\n")
    parts.append("![TaskManager RSS after each job](img/flink-rss-after-each-job.svg)\n")


main()
