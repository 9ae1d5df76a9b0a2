//! Statistics dumps: per-thread rows, reconciliation, the bounded registry, signal storms,
//! a JVM, the `jvmalloc` command (`dump`, `metrics`, `watch` over the request channel, and
//! `diff`), and bad statistics settings.
mod common;
use common::*;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, ChildStdout};
use std::time::Duration;

use serde_json::Value;

/// Reads of dump fields; a field that is missing or of another type fails the test.
trait Field {
    fn int(&self) -> i64;
    fn num(&self) -> f64;
    fn str(&self) -> &str;
    fn arr(&self) -> &[Value];
}

impl Field for Value {
    fn int(&self) -> i64 {
        self.as_i64()
            .unwrap_or_else(|| panic!("not an integer: {self}"))
    }
    fn num(&self) -> f64 {
        self.as_f64()
            .unwrap_or_else(|| panic!("not a number: {self}"))
    }
    fn str(&self) -> &str {
        self.as_str()
            .unwrap_or_else(|| panic!("not a string: {self}"))
    }
    fn arr(&self) -> &[Value] {
        self.as_array()
            .unwrap_or_else(|| panic!("not an array: {self}"))
    }
}

fn load(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(text.trim_end())
        .unwrap_or_else(|e| panic!("{}: {e}\n{text}", path.display()))
}

fn thread<'a>(d: &'a Value, name: &str) -> &'a Value {
    d["threads"]
        .arr()
        .iter()
        .find(|t| t["name"].str() == name)
        .unwrap_or_else(|| panic!("no thread {name} in dump"))
}

/// `allocated = threads' net + thread caches + internal + unregistered`, and with every
/// thread registered the unregistered part is within the thread-cache slack.
fn assert_reconciles(d: &Value) {
    let r = &d["reconciliation"];
    let (alloc, net, tc, internal, unreg) = (
        r["allocated"].int(),
        r["threads_net"].int(),
        r["tcache"].int(),
        r["internal"].int(),
        r["unregistered_net"].int(),
    );
    assert_eq!(alloc, net + tc + internal + unreg, "{r:?}");
    assert!(unreg.abs() <= r["slack"].int().max(64 << 10), "{r:?}");
    assert_eq!(d["memory"]["allocated"].int(), alloc);
}

fn json_env(run: Run, dir: &Path, name: &str) -> Run {
    run.env("JVMALLOC_STATS_FORMAT", "json")
        .env("JVMALLOC_STATS_FILE", dir.join(format!("{name}-%n.json")))
}

#[test]
fn named_threads_match_what_they_allocated() {
    let dir = temp_dir("known");
    let out = json_env(run(compile("stats_threads", &[])).arg("known"), &dir, "k").output();
    out.assert_ok();
    let d = load(&dir.join("k-1.json"));
    // alloc-A kept 1000 x 10 KiB, alloc-B 3 x 1 MiB, freer freed 500 of A's blocks.
    let near = |v: i64, want: i64| (v - want).abs() <= 4096;
    let a = thread(&d, "alloc-A");
    assert!(near(a["allocated"].int(), 10_240_000), "{a:?}");
    assert!(near(a["net"].int(), 10_240_000), "{a:?}");
    let b = thread(&d, "alloc-B");
    assert!(near(b["net"].int(), 3 << 20), "{b:?}");
    let f = thread(&d, "freer");
    assert!(near(f["net"].int(), -5_120_000), "{f:?}");
    assert!(f["freed"].int() >= 5_120_000);
    assert!(
        thread(&d, "jvmalloc")["tid"].int() > 0,
        "reporter thread is named jvmalloc"
    );
    // Sorted by the magnitude of net bytes, biggest first: freer's -5 MiB before B's +3 MiB.
    let nets: Vec<i64> = d["threads"].arr().iter().map(|t| t["net"].int()).collect();
    assert!(
        nets.windows(2).all(|w| w[0].abs() >= w[1].abs()),
        "{nets:?}"
    );
    let names: Vec<&str> = d["threads"].arr().iter().map(|t| t["name"].str()).collect();
    assert_eq!(names[..3], ["alloc-A", "freer", "alloc-B"], "{names:?}");
    assert_reconciles(&d);
    // Size classes: the 10 KiB class holds A's 1000 blocks (500 freed by freer).
    let c = d["size_classes"]
        .arr()
        .iter()
        .find(|c| c["size"].int() == 10240)
        .expect("10240 class");
    assert!(c["live_regions"].int() >= 500, "{c:?}");
    let u = c["utilisation"].num();
    assert!(u > 0.0 && u <= 1.0, "{c:?}");
    assert_eq!(c["kind"].str(), "small");
    // Second dump, after the threads exited: their bytes moved to the exited row.
    let d2 = load(&dir.join("k-2.json"));
    assert!(d2["exited"]["threads"].int() >= 3);
    assert!(!d2["threads"]
        .arr()
        .iter()
        .any(|t| t["name"].str() == "alloc-A"));
    assert_reconciles(&d2);
    // Memory summary is consistent.
    let m = &d["memory"];
    assert!(m["rss"].int() > 0 && m["resident"].int() >= m["allocated"].int());
    assert_eq!(
        m["overhead"].int(),
        m["resident"].int() - m["allocated"].int()
    );
    assert_eq!(
        m["rss_not_malloc"].int(),
        m["rss"].int() - m["resident"].int()
    );
}

#[test]
fn text_dump_on_stderr_by_default() {
    let out = run(compile("stats_threads", &[])).arg("known").output();
    out.assert_ok();
    let e = &out.stderr;
    assert_eq!(e.matches("=== jvmalloc statistics #").count(), 2, "{e}");
    assert_eq!(
        e.matches("=== end of jvmalloc statistics #").count(),
        2,
        "{e}"
    );
    for want in [
        "RSS not owned by malloc (RSS - resident)",
        "allocator overhead (resident - allocated)",
        "fragmentation (active / allocated)",
        "alloc-A",
        "freer",
        "[exited: ",
        "reconciliation: allocated ",
        "size classes:",
        "arenas:",
        "configuration: arenas=",
    ] {
        assert!(e.contains(want), "missing {want:?} in\n{e}");
    }
    let freer = e.lines().find(|l| l.contains(" freer ")).unwrap();
    assert!(freer.contains(" -5120"), "negative net for freer: {freer}");
}

/// A row of a text dump's thread table: its name (or `[N more]` label) and net bytes.
struct TextRow {
    name: String,
    net: i64,
}

/// The thread table of a text dump: the `threads:` line, the line under it, and the rows
/// (live threads shown, then `[N more]`, `[exited: N]`, `[unregistered: N]`).
fn text_threads(dump: &str) -> (&str, &str, Vec<TextRow>) {
    let lines: Vec<&str> = dump.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.starts_with("threads: "))
        .unwrap_or_else(|| panic!("no thread table in\n{dump}"));
    let columns: Vec<&str> = lines[at + 2].split_whitespace().collect();
    assert_eq!(
        columns,
        ["tid", "name", "allocated", "freed", "net", "net", "MiB"],
        "column names"
    );
    let rows = lines[at + 3..]
        .iter()
        .take_while(|l| !l.starts_with("reconciliation:"))
        .map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            assert!(w.len() >= 6, "thread row {l:?}");
            // Live rows start with a tid; the summary rows with their label.
            let first = usize::from(w[0].parse::<u32>().is_ok());
            TextRow {
                name: w[first..w.len() - 4].join(" "),
                net: w[w.len() - 2]
                    .parse()
                    .unwrap_or_else(|e| panic!("net of {l:?}: {e}")),
            }
        })
        .collect();
    (lines[at], lines[at + 1], rows)
}

/// A thread that frees what another allocated (a JVM's `Reference Handler` or
/// `Common-Cleaner` freeing direct buffers) has a large negative net. With more threads
/// than the table shows, ordering by net (signed) put it last, summed into `[N more]`
/// under small churning threads; by the magnitude of net it is shown next to the
/// producer, and no thread summed in `[N more]` is bigger in magnitude than one shown.
/// The size classes come right after the RSS split, before the memory and thread tables.
#[test]
fn freeing_thread_with_large_negative_net_is_shown_not_folded() {
    const TOP: usize = 5;
    const CHURN: usize = 12;
    const HANDED: i64 = 2000 * 8192;
    let near = |v: i64, want: i64| (v - want).abs() <= 64 << 10;
    let prog = compile("stats_threads", &[]);

    let out = run(&prog)
        .args(["cleaner", &CHURN.to_string()])
        .env("JVMALLOC_STATS_TOP", TOP.to_string())
        .output();
    out.assert_ok();
    let e = &out.stderr;
    let (header, under, rows) = text_threads(e);
    assert!(
        header.contains("by size of net, + or -; net = allocated minus freed by this thread"),
        "{header}"
    );
    assert!(
        under.contains("memory freed by another thread counts against that thread")
            && under.contains("net is not what a thread holds"),
        "{under}"
    );
    let more = rows
        .iter()
        .position(|r| r.name.ends_with(" more]"))
        .unwrap_or_else(|| panic!("no [N more] row:\n{e}"));
    assert_eq!(more, TOP, "{e}");
    let shown = &rows[..TOP];
    let cleaner = shown
        .iter()
        .find(|r| r.name == "Common-Cleaner")
        .unwrap_or_else(|| panic!("Common-Cleaner not among the rows shown:\n{e}"));
    assert!(
        near(cleaner.net, -HANDED),
        "cleaner net {}\n{e}",
        cleaner.net
    );
    let producer = shown.iter().find(|r| r.name == "producer").unwrap();
    assert!(near(producer.net, HANDED), "producer net {}", producer.net);
    assert!(
        shown.windows(2).all(|w| w[0].net.abs() >= w[1].net.abs()),
        "shown rows not by |net|:\n{e}"
    );
    // Live threads: main, jvmalloc, producer, cleaner and the churners.
    let live = 4 + CHURN;
    assert_eq!(rows[more].name, format!("[{} more]", live - TOP), "{e}");
    assert!(rows[more + 1].name.starts_with("[exited: "), "{e}");
    assert!(rows[more + 2].name.starts_with("[unregistered: "), "{e}");
    assert_eq!(rows.len(), more + 3, "{e}");
    // Sections: the RSS split, then the size classes, then memory, configuration, threads.
    let lines: Vec<&str> = e.lines().collect();
    let at = |prefix: &str| {
        lines
            .iter()
            .position(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no line starting {prefix:?} in\n{e}"))
    };
    let order = [
        at("=== jvmalloc statistics #"),
        at("RSS split "),
        at("size classes: "),
        at("memory "),
        at("configuration: "),
        at("threads: "),
        at("reconciliation: "),
        at("arenas: "),
        at("=== end of jvmalloc statistics #"),
    ];
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{order:?}\n{e}");

    // The JSON dump lists every thread, in the same order.
    let dir = temp_dir("cleaner");
    let out = json_env(run(&prog).args(["cleaner", &CHURN.to_string()]), &dir, "c")
        .env("JVMALLOC_STATS_TOP", TOP.to_string())
        .output();
    out.assert_ok();
    let d = load(&dir.join("c-1.json"));
    let threads = d["threads"].arr();
    assert_eq!(threads.len(), live, "{threads:?}");
    let key = |t: &Value| (t["net"].int().abs(), t["allocated"].int());
    assert!(
        threads.windows(2).all(|w| key(&w[0]) >= key(&w[1])),
        "{threads:?}"
    );
    let first: Vec<&str> = threads[..2].iter().map(|t| t["name"].str()).collect();
    assert!(
        first.contains(&"Common-Cleaner") && first.contains(&"producer"),
        "{first:?}"
    );
    assert!(near(thread(&d, "Common-Cleaner")["net"].int(), -HANDED));
    assert_reconciles(&d);
}

#[test]
fn registry_overflow_shows_a_row_and_keeps_totals() {
    let dir = temp_dir("overflow");
    let out = json_env(
        run(compile("stats_threads", &[])).args(["overflow", "40"]),
        &dir,
        "o",
    )
    .env("JVMALLOC_STATS_THREADS", "16")
    .output();
    out.assert_ok();
    // Said once on stderr, however many threads overflow.
    let full: Vec<&str> = out
        .jvmalloc_lines()
        .into_iter()
        .filter(|l| l.contains("thread registry is full (16 slots, JVMALLOC_STATS_THREADS)"))
        .collect();
    assert_eq!(full.len(), 1, "{}", out.stderr);
    let d = load(&dir.join("o-1.json"));
    assert_eq!(d["registry"]["capacity"].int(), 16);
    assert_eq!(d["registry"]["live"].int(), 16);
    let un = &d["unregistered"];
    // 42 threads (main, reporter, 40) for 16 slots: 26 overflow, each holding 64 KiB. Their
    // bytes are only known in sum, computed from the totals, so allow one block of drift.
    assert_eq!(un["threads"].int(), 26, "{un:?}");
    assert!(
        (un["net"].int() - 26 * 65536).abs() <= 65536,
        "{un:?} {:?}",
        d["reconciliation"]
    );
    let d2 = load(&dir.join("o-2.json"));
    assert_eq!(d2["exited"]["threads"].int(), 40);
    assert_eq!(d2["unregistered"]["threads"].int(), 0);
    assert_reconciles(&d2);
}

#[test]
fn churn_of_10000_threads_keeps_registry_bounded_and_totals_reconciled() {
    let dir = temp_dir("churn-stats");
    let out = json_env(run(compile("churn", &[])).arg("10000"), &dir, "c")
        .env("JVMALLOC_STATS_AT_EXIT", "1")
        .timeout(300)
        .output();
    out.assert_ok();
    let first = load(&dir.join("c-1.json"));
    let last = load(&dir.join("c-2.json"));
    assert_eq!(first["registry"]["bytes"].int(), 4096 * 32);
    assert_eq!(
        first["registry"]["bytes"].int(),
        last["registry"]["bytes"].int(),
        "registry memory is constant"
    );
    assert!(last["exited"]["threads"].int() >= 10000);
    assert!(last["registry"]["live"].int() <= 3);
    assert_reconciles(&last);
}

#[test]
fn signal_storm_finishes_with_whole_dumps() {
    let dir = temp_dir("storm");
    let out = json_env(run(compile("signal_storm", &[])).arg("1000"), &dir, "s")
        .timeout(180)
        .output();
    out.assert_ok();
    let files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(!files.is_empty(), "no dump written");
    assert!(
        files.len() < 1000,
        "signals should coalesce: {} dumps",
        files.len()
    );
    for f in &files {
        assert!(
            f.to_string_lossy().ends_with(".json"),
            "leftover temp file {}",
            f.display()
        );
        let d = load(f);
        assert!(d["threads"].arr().len() >= 9);
    }
    // Text dumps to stderr, with a real-time signal: every dump begins and ends.
    let out = run(compile("signal_storm", &[]))
        .arg("300")
        .env("JVMALLOC_STATS_SIGNAL", "RTMIN+3")
        .env("STORM_SIGNAL", (libc::SIGRTMIN() + 3).to_string())
        .timeout(180)
        .output();
    out.assert_ok();
    let begins = out.stderr.matches("=== jvmalloc statistics #").count();
    let ends = out
        .stderr
        .matches("=== end of jvmalloc statistics #")
        .count();
    assert!(begins >= 1 && begins == ends, "{begins} begin, {ends} end");
}

#[test]
fn diff_ranks_the_leaking_thread_and_size_class_first() {
    let dir = temp_dir("leak");
    json_env(run(compile("leaker", &[])), &dir, "l")
        .output()
        .assert_ok();
    let out = run(jvmalloc_cmd())
        .glibc()
        .arg("diff")
        .arg(dir.join("l-1.json"))
        .arg(dir.join("l-2.json"))
        .output();
    out.assert_ok();
    let lines: Vec<&str> = out.stdout.lines().collect();
    let th = lines
        .iter()
        .position(|l| l.starts_with("threads by name"))
        .unwrap();
    assert!(
        lines[th + 2].trim_start().starts_with("leaky-worker"),
        "{}",
        out.stdout
    );
    assert!(lines[th + 2].contains("+9830400"), "{}", out.stdout);
    assert!(
        out.stdout.contains("busy-N"),
        "threads pooled by name: {}",
        out.stdout
    );
    let sc = lines
        .iter()
        .position(|l| l.starts_with("size classes by growth"))
        .unwrap();
    let first = lines[sc + 2].split_whitespace().collect::<Vec<_>>();
    assert_eq!(&first[..2], &["49152", "large"], "{}", out.stdout);
}

/// A running program (with the library) that printed `ready <pid>` and waits for a line on
/// stdin; its stderr is a pipe, read to the end by a thread.
struct Target {
    child: std::process::Child,
    stdin: ChildStdin,
    stdout: std::io::Lines<BufReader<ChildStdout>>,
    stderr: std::thread::JoinHandle<String>,
    pid: String,
}

/// Starts `r` and waits until it is ready.
fn start(r: Run) -> Target {
    let mut child = r.spawn();
    let stdin = child.stdin.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let stderr = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = std::io::Read::read_to_end(&mut err, &mut s);
        String::from_utf8_lossy(&s).into_owned()
    });
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let pid = wait_ready(&mut stdout);
    Target {
        child,
        stdin,
        stdout,
        stderr,
        pid,
    }
}

/// Starts `dump_target <mode>` (every process in scope unless `r` says otherwise).
fn start_dump_target(mode: &str) -> Target {
    start(run(compile("dump_target", &[])).arg(mode))
}

impl Target {
    /// Lets the target finish: it must end normally, not be killed by a signal it never
    /// should have got. Returns the rest of its stdout and all its stderr.
    fn finish(mut self) -> (Vec<String>, String) {
        writeln!(self.stdin).unwrap();
        drop(self.stdin);
        let rest: Vec<String> = self.stdout.map_while(Result::ok).collect();
        let status = self.child.wait().unwrap();
        let err = self.stderr.join().unwrap();
        assert!(status.success(), "target {status:?} {rest:?}\n{err}");
        (rest, err)
    }

    /// [`Target::finish`] for `dump_target`, which says `dump_target: ok` at the end.
    fn finish_dump_target(self) {
        let (rest, err) = self.finish();
        assert!(
            rest.iter().any(|l| l == "dump_target: ok"),
            "{rest:?}\n{err}"
        );
    }
}

/// Runs the command with `args` (not under the library).
fn jvmalloc(args: &[&str]) -> Output {
    run(jvmalloc_cmd()).glibc().args(args).output()
}

/// Whether SIGUSR1 is pending in process `pid` (sent but not delivered).
fn usr1_pending(pid: &str) -> bool {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    ["SigPnd", "ShdPnd"].iter().any(|f| {
        let hex = status
            .lines()
            .find_map(|l| l.strip_prefix(f)?.strip_prefix(':'))
            .unwrap()
            .trim();
        u64::from_str_radix(hex, 16).unwrap() & (1 << (libc::SIGUSR1 - 1)) != 0
    })
}

/// A text dump, whole, of process `pid`.
fn assert_text_dump(text: &str, pid: &str) {
    assert!(
        text.starts_with("=== jvmalloc statistics #") && text.contains(&format!(" pid {pid} (")),
        "{text}"
    );
    let last = text.trim_end().lines().last().unwrap_or_default();
    assert!(
        last.starts_with("=== end of jvmalloc statistics #"),
        "{text}"
    );
}

#[test]
fn dump_and_metrics_come_over_the_channel_whatever_the_stats_settings() {
    // Stderr a pipe, text configured, the statistics file unwritable: all irrelevant.
    let target = start(
        run(compile("stats_threads", &[]))
            .arg("wait")
            .env("JVMALLOC_STATS_FORMAT", "text")
            .env("JVMALLOC_STATS_FILE", "/proc/no-such-dir/stats-%n.txt"),
    );
    let pid = target.pid.clone();
    let text = jvmalloc(&["dump", &pid]);
    text.assert_ok();
    assert_text_dump(&text.stdout, &pid);
    assert!(text.stdout.contains("alloc-A"), "{}", text.stdout);
    assert!(text.stderr.is_empty(), "{}", text.stderr);

    let json = jvmalloc(&["dump", &pid, "--format", "json", "--timeout", "30"]);
    json.assert_ok();
    assert_eq!(json.stdout.lines().count(), 1, "{}", json.stdout);
    let d: Value = serde_json::from_str(json.stdout.trim_end()).unwrap();
    assert_eq!(d["pid"].int().to_string(), pid);
    assert!(thread(&d, "alloc-A")["net"].int() >= 10_000_000);
    assert_reconciles(&d);

    // -o: a file (emptied first if longer), nothing on stdout.
    let dir = temp_dir("dump-o");
    let file = dir.join("dump.json");
    std::fs::write(&file, "x".repeat(1 << 20)).unwrap();
    let out = jvmalloc(&[
        "dump",
        &pid,
        "--format",
        "json",
        "-o",
        file.to_str().unwrap(),
    ]);
    out.assert_ok();
    assert!(out.stdout.is_empty(), "{}", out.stdout);
    assert_eq!(load(&file)["pid"].int().to_string(), pid);
    let text_file = dir.join("dump.txt");
    jvmalloc(&["dump", &pid, "--output", text_file.to_str().unwrap()]).assert_ok();
    assert_text_dump(&std::fs::read_to_string(&text_file).unwrap(), &pid);
    // A symbolic link is not followed.
    let link = dir.join("link");
    std::os::unix::fs::symlink(&text_file, &link).unwrap();
    let out = jvmalloc(&["dump", &pid, "-o", link.to_str().unwrap()]);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(out.stderr.contains("symbolic link"), "{}", out.stderr);

    let metrics = jvmalloc(&["metrics", &pid]);
    metrics.assert_ok();
    assert!(
        metrics.stdout.contains("\njvmalloc_process_rss_bytes "),
        "{}",
        metrics.stdout
    );
    let prom = dir.join("metrics.prom");
    jvmalloc(&["metrics", &pid, "-o", prom.to_str().unwrap()]).assert_ok();
    assert!(std::fs::read_to_string(&prom)
        .unwrap()
        .contains("jvmalloc_process_rss_bytes"));

    // Nothing went to the target's configured destination, nor did it complain.
    let (rest, err) = target.finish();
    assert!(rest.iter().any(|l| l == "stats_threads: ok"), "{rest:?}");
    assert!(!err.contains("jvmalloc"), "{err}");
}

#[test]
fn dump_command_errors_are_clear() {
    let out = jvmalloc(&["dump", "999999999"]);
    assert_eq!(out.code, Some(1));
    assert!(
        out.stderr.contains("no process 999999999"),
        "{}",
        out.stderr
    );
    // A process without the library.
    let mut sleeper = run("sleep").glibc().arg("30").spawn();
    let out = jvmalloc(&["dump", &sleeper.id().to_string()]);
    let _ = sleeper.kill();
    let _ = sleeper.wait();
    assert_eq!(out.code, Some(1));
    assert!(
        out.stderr.contains("does not have jvmalloc loaded"),
        "{}",
        out.stderr
    );
    // Requests on signal turned off.
    let mut off = run("sleep")
        .arg("30")
        .env("JVMALLOC_STATS_SIGNAL", "off")
        .spawn();
    std::thread::sleep(Duration::from_millis(200));
    let out = jvmalloc(&["dump", &off.id().to_string()]);
    let _ = off.kill();
    let _ = off.wait();
    assert!(out.stderr.contains("turned off"), "{}", out.stderr);
    // Bad files for diff.
    let junk = temp_dir("junk").join("x.json");
    std::fs::write(&junk, "not json").unwrap();
    let junk = junk.to_str().unwrap();
    let out = jvmalloc(&["diff", junk, junk]);
    assert_eq!(out.code, Some(1));
    assert!(out.stderr.contains("no JSON dump"), "{}", out.stderr);
}

#[test]
fn dump_command_refuses_a_signal_at_its_default_action() {
    let target = start_dump_target("default");
    let pid = target.pid.clone();
    let out = jvmalloc(&["dump", &pid, "--timeout", "5"]);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert_eq!(
        out.stderr.trim_end(),
        format!(
            "jvmalloc: process {pid} does not catch SIGUSR1 (its action is the default, which \
             would kill it, or it is ignored); not sending it: it is in jvmalloc's scope \
             (JVMALLOC_PROCESSES=\"*\"), so the program changed the signal's action after \
             jvmalloc installed its handler"
        )
    );
    // Sent, SIGUSR1 would have ended it by now, or at least be pending.
    assert!(!usr1_pending(&pid));
    // A thread id is not taken for its process (signalling a tid signals its process).
    let tid = std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .find(|t| *t != pid)
        .unwrap();
    let out = jvmalloc(&["dump", &tid]);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(
        out.stderr
            .contains(&format!("{tid} is a thread of process {pid}")),
        "{}",
        out.stderr
    );
    target.finish_dump_target();
}

#[test]
fn dump_command_refuses_a_signal_blocked_in_every_thread() {
    let target = start_dump_target("blocked");
    let pid = target.pid.clone();
    let out = jvmalloc(&["dump", &pid, "--timeout", "5"]);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    assert!(
        out.stderr
            .contains(&format!("process {pid} blocks SIGUSR1 in every thread")),
        "{}",
        out.stderr
    );
    assert!(!usr1_pending(&pid), "the signal was sent");
    target.finish_dump_target();
}

#[test]
fn dump_command_refuses_a_process_out_of_scope() {
    // The library's default scope is `java`: a C program gets the allocator alone, no
    // handler (SIGUSR1 would kill it).
    let target = start(run(compile("dump_target", &[])).arg("idle").default_scope());
    let pid = target.pid.clone();
    for cmd in ["dump", "metrics", "watch"] {
        let out = jvmalloc(&[cmd, &pid, "--timeout", "5"]);
        assert_eq!(out.code, Some(1), "{out:?}");
        assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
        for says in [
            "does not catch SIGUSR1",
            "not sending it",
            "JVMALLOC_PROCESSES is unset: only java",
            "runs dump_target",
        ] {
            assert!(out.stderr.contains(says), "{says:?}: {}", out.stderr);
        }
    }
    assert!(!usr1_pending(&pid));
    target.finish_dump_target();
}

#[test]
fn dump_command_refuses_a_single_threaded_process() {
    // In scope, so the handler is there, but no thread has been started: the jvmalloc
    // thread is not there to answer, and a request would only be answered at exit.
    let target = start_dump_target("single");
    let pid = target.pid.clone();
    let out = jvmalloc(&["dump", &pid, "--timeout", "5"]);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert_eq!(
        out.stderr.trim_end(),
        format!(
            "jvmalloc: process {pid} has not started a thread yet, and the jvmalloc thread \
             starts with the program's first: the request would only be answered when it \
             exits; not sending it"
        )
    );
    assert!(!usr1_pending(&pid));
    let (rest, err) = target.finish();
    assert!(rest.iter().any(|l| l == "dump_target: ok"), "{rest:?}");
    // Nothing was asked, so nothing was answered at exit either.
    assert!(!err.contains("jvmalloc"), "{err}");
}

#[test]
fn dump_command_refuses_a_process_in_another_network_namespace() {
    // Abstract socket names are per network namespace: such a process could not connect.
    if run("unshare").glibc().args(["-n", "true"]).output().code != Some(0) {
        eprintln!("skipped: unshare -n is not permitted here");
        return;
    }
    let target = start(
        run("unshare")
            .arg("-n")
            .arg(compile("dump_target", &[]))
            .arg("idle"),
    );
    let pid = target.pid.clone();
    let out = jvmalloc(&["dump", &pid, "--timeout", "5"]);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(
        out.stderr
            .contains(&format!("process {pid} is in another network namespace"))
            && out.stderr.contains(&format!("nsenter -t {pid} -n")),
        "{}",
        out.stderr
    );
    assert!(!usr1_pending(&pid));
    // From inside its network namespace, it answers.
    let out = run("nsenter")
        .glibc()
        .args(["-t", &pid, "-n"])
        .arg(jvmalloc_cmd())
        .args(["dump", &pid])
        .output();
    out.assert_ok();
    assert_text_dump(&out.stdout, &pid);
    target.finish_dump_target();
}

/// The abstract names (`jvmalloc-request-...`) process `pid` listens on.
fn request_sockets_of(pid: u32) -> Vec<String> {
    let inodes: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let l = std::fs::read_link(e.path()).ok()?;
            let l = l.to_str()?;
            Some(l.strip_prefix("socket:[")?.strip_suffix(']')?.to_string())
        })
        .collect();
    std::fs::read_to_string("/proc/net/unix")
        .unwrap()
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let (inode, path) = (f.get(6)?, f.get(7)?);
            let name = path.strip_prefix("@jvmalloc-request-")?;
            inodes
                .contains(&inode.to_string())
                .then(|| format!("jvmalloc-request-{name}"))
        })
        .collect()
}

#[test]
fn dump_command_accepts_only_the_target_on_its_socket() {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::net::{SocketAddr, UnixStream};
    let target = start_dump_target("idle");
    let pid: i32 = target.pid.parse().unwrap();
    // Stopped, the target takes the signal only when continued: meanwhile an impostor
    // (this test) connects to the command's socket first and offers a fake dump.
    // SAFETY: kill with a valid pid of our own child.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGSTOP) }, 0);
    let cmd = run(jvmalloc_cmd())
        .glibc()
        .args(["dump", &target.pid, "--timeout", "60"])
        .spawn();
    let Some(name) = (0..500).find_map(|_| {
        std::thread::sleep(Duration::from_millis(20));
        request_sockets_of(cmd.id()).pop()
    }) else {
        // SAFETY: as above.
        unsafe { libc::kill(pid, libc::SIGCONT) };
        let out = wait_with_timeout(cmd, Duration::from_secs(60));
        panic!("the command never listened on a request socket: {out:?}");
    };
    let addr = SocketAddr::from_abstract_name(&name).unwrap();
    let mut impostor = UnixStream::connect_addr(&addr).unwrap();
    // The command may already have closed it (it is not the target): then this fails.
    let _ = impostor.write_all(b"ok\n=== jvmalloc statistics #1 pid 1 (fake) ===\nFAKE\n");
    impostor
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut got = Vec::new();
    // Closed unread (EOF, or a reset as its data was not read); never sent the request.
    let _ = std::io::Read::read_to_end(&mut impostor, &mut got);
    assert!(got.is_empty(), "{:?}", String::from_utf8_lossy(&got));
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGCONT) }, 0);
    let out = wait_with_timeout(cmd, Duration::from_secs(60));
    out.assert_ok();
    assert_text_dump(&out.stdout, &target.pid);
    assert!(!out.stdout.contains("FAKE"), "{}", out.stdout);
    target.finish_dump_target();
}

#[test]
fn watch_prints_a_header_and_a_line_per_interval() {
    let target = start(run(compile("stats_threads", &[])).arg("wait"));
    let pid = target.pid.clone();
    let start = std::time::Instant::now();
    let out = run(jvmalloc_cmd())
        .glibc()
        .args(["watch", &pid, "--count", "2", "--interval", "1"])
        .timeout(60)
        .output();
    out.assert_ok();
    assert!(start.elapsed() >= Duration::from_secs(1));
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", out.stdout);
    for col in [
        "RSS MiB",
        "malloc MiB",
        "overhead MiB",
        "not malloc MiB",
        "fastest pool",
    ] {
        assert!(lines[0].contains(col), "{}", lines[0]);
    }
    for l in &lines[1..] {
        let w: Vec<&str> = l.split_whitespace().collect();
        assert_eq!(w[0].len(), 8, "HH:MM:SS: {l}");
        let rss: f64 = w[1].parse().unwrap_or_else(|_| panic!("{l}"));
        assert!(rss > 1.0, "{l}");
        // malloc live: alloc-A and alloc-B keep about 8 MiB (A's 10 MB less what freer freed).
        let live: f64 = w[3].parse().unwrap();
        assert!(live > 7.0, "{l}");
    }
    assert_eq!(lines[1].split_whitespace().nth(2), Some("-"));
    assert_ne!(lines[2].split_whitespace().nth(2), Some("-"));
    target.finish();
}

#[test]
fn watch_ends_when_the_target_exits() {
    let target = start_dump_target("idle");
    let pid = target.pid.clone();
    let mut watch = run(jvmalloc_cmd())
        .glibc()
        .args(["watch", &pid, "--interval", "1"])
        .spawn();
    let mut lines = BufReader::new(watch.stdout.take().unwrap()).lines();
    let header = lines.next().unwrap().unwrap();
    assert!(header.contains("RSS MiB"), "{header}");
    let first = lines.next().unwrap().unwrap();
    assert!(!first.contains("exited"), "{first}");
    target.finish_dump_target();
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert_eq!(
        rest.last().map(String::as_str),
        Some(format!("process {pid} exited").as_str()),
        "{rest:?}"
    );
    let status = watch.wait().unwrap();
    assert!(status.success(), "{status:?}");
}

#[test]
fn watch_ends_cleanly_on_ctrl_c() {
    let target = start_dump_target("idle");
    let mut watch = run(jvmalloc_cmd())
        .glibc()
        .args(["watch", &target.pid, "--interval", "1"])
        .spawn();
    let mut lines = BufReader::new(watch.stdout.take().unwrap()).lines();
    lines.next().unwrap().unwrap();
    lines.next().unwrap().unwrap();
    // SAFETY: kill with the pid of our own child.
    assert_eq!(unsafe { libc::kill(watch.id() as i32, libc::SIGINT) }, 0);
    let status = watch.wait().unwrap();
    assert!(status.success(), "{status:?}");
    // Whole lines only, and nothing about the target exiting: it has not.
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(rest.len() <= 1, "{rest:?}");
    assert!(!rest.iter().any(|l| l.contains("exited")), "{rest:?}");
    target.finish_dump_target();
}

fn wait_ready(lines: &mut impl Iterator<Item = std::io::Result<String>>) -> String {
    loop {
        let line = lines.next().expect("program ended before ready").unwrap();
        if let Some(p) = line.strip_prefix("ready ") {
            return p.trim().to_string();
        }
    }
}

/// Under every JDK on the machine: the command asks a JVM (in the default scope) for its
/// dumps over the request channel; JVM thread names and the RSS split are there.
#[test]
fn jvm_dump_names_threads_and_splits_rss() {
    let classes = java_classes();
    for jdk in jdks() {
        // `java` is in the library's default scope; nothing else is configured.
        let target = start(
            run(jdk.join("bin/java"))
                .default_scope()
                .arg("-cp")
                .arg(&classes)
                .args(["NativeChurn", "8", "40", "--wait"]),
        );
        let pid = target.pid.clone();
        let json = jvmalloc(&["dump", &pid, "--format", "json", "--timeout", "30"]);
        let text = jvmalloc(&["dump", &pid, "--timeout", "30"]);
        let (_, err) = target.finish();
        json.assert_ok();
        text.assert_ok();
        assert!(!err.contains("jvmalloc statistics"), "{err}");
        assert_text_dump(&text.stdout, &pid);
        assert!(text.stdout.contains("keeper-thread"), "{}", text.stdout);
        let d = serde_json::from_str::<Value>(json.stdout.trim_end())
            .expect("dump command prints the JSON dump");
        assert_eq!(d["pid"].int().to_string(), pid);
        for name in ["keeper-thread", "VM Thread", "Reference Handl", "jvmalloc"] {
            thread(&d, name);
        }
        let m = &d["memory"];
        assert!(m["rss"].int() >= m["resident"].int(), "{m:?}");
        // The 96 MiB of Java heap the program touched is RSS that malloc does not own.
        assert!(
            m["rss_not_malloc"].int() >= 96 << 20,
            "{}: {m:?}",
            jdk.display()
        );
        assert!(
            d["rss_split"]["java_heap"].int() > 0,
            "{}: {d}",
            jdk.display()
        );
        assert_reconciles_loosely(&d);
    }
}

/// In a JVM, threads allocate while the dump is taken: allow a few MiB of drift.
fn assert_reconciles_loosely(d: &Value) {
    let r = &d["reconciliation"];
    assert_eq!(
        r["allocated"].int(),
        r["threads_net"].int()
            + r["tcache"].int()
            + r["internal"].int()
            + r["unregistered_net"].int()
    );
    assert!(r["unregistered_net"].int().abs() < 8 << 20, "{r:?}");
}

#[test]
fn bad_stats_settings_give_one_line_each() {
    let hello = compile("hello", &[]);
    for (var, value, says) in [
        ("JVMALLOC_STATS_SIGNAL", "KILL", "using USR1"),
        ("JVMALLOC_STATS_SIGNAL", "RTMIN+99", "using USR1"),
        ("JVMALLOC_STATS_SIGNAL", "", "using USR1"),
        ("JVMALLOC_STATS_SIGNAL", "USR2", "HotSpot"),
        ("JVMALLOC_STATS_INTERVAL_S", "soon", "using 0"),
        ("JVMALLOC_STATS_INTERVAL_S", "-3", "using 0"),
        ("JVMALLOC_STATS_AT_EXIT", "maybe", "using 0"),
        ("JVMALLOC_STATS_FILE", "", "using stderr"),
        ("JVMALLOC_STATS_FILE", "/tmp/x-%q", "using stderr"),
        ("JVMALLOC_STATS_FORMAT", "xml", "using text"),
        ("JVMALLOC_STATS_TOP", "0", "using 1"),
        ("JVMALLOC_STATS_THREADS", "99999999999", "using 1048576"),
        ("JVMALLOC_STATS_THREADS", "\u{1b}", "using 4096"),
    ] {
        assert_one_warning(&hello, var, value, says);
    }
}

#[test]
fn unwritable_stats_file_warns_once_and_falls_back_to_stderr() {
    let out = run(compile("stats_threads", &[]))
        .arg("known")
        .env("JVMALLOC_STATS_FILE", "/proc/no-such-dir/stats-%p-%n.txt")
        .output();
    // The program's own calls see -1 (written to stderr instead); it checks for 0, so it
    // reports failures, but it runs to the end: the host is never harmed.
    assert!(out.stdout.contains("stats_threads"), "{}", out.stdout);
    let warnings: Vec<_> = out
        .jvmalloc_lines()
        .into_iter()
        .filter(|l| l.contains("cannot write statistics to"))
        .collect();
    assert_eq!(warnings.len(), 1, "{}", out.stderr);
    assert!(
        warnings[0].contains("/proc/no-such-dir/stats-"),
        "{}",
        warnings[0]
    );
    assert_eq!(
        out.stderr
            .matches("=== end of jvmalloc statistics #")
            .count(),
        2
    );
}

#[test]
fn periodic_dumps() {
    let dir = temp_dir("periodic");
    let out = json_env(run(compile("hello", &[])), &dir, "p")
        .args(["threaded", "2500"])
        .env("JVMALLOC_STATS_INTERVAL_S", "1")
        .output();
    out.assert_ok();
    let n = std::fs::read_dir(&dir).unwrap().count();
    assert!((2..=3).contains(&n), "{n} periodic dumps in 2.5 s");
}

/// A handler installed before jvmalloc's (by a library the program links) is chained with
/// its own sa_mask and flags, and the dump is written too.
#[test]
fn previous_handler_runs_with_its_own_mask_and_flags() {
    let lib = compile("chainlib", &["-shared", "-fPIC"]);
    let dir = lib.parent().unwrap().to_str().unwrap().to_string();
    let prog = compile(
        "chain",
        &[
            &format!("-L{dir}"),
            "-lchainlib",
            &format!("-Wl,-rpath,{dir}"),
        ],
    );
    let out = run(&prog).output();
    out.assert_ok();
    assert_eq!(
        out.stderr
            .matches("=== end of jvmalloc statistics #")
            .count(),
        1,
        "{}",
        out.stderr
    );
}

/// With another allocator preloaded first, `malloc` does not reach jvmalloc: said once on
/// stderr at start, and in every dump.
#[test]
fn another_allocator_first_is_detected() {
    let foreign = compile("foreign", &["-shared", "-fPIC"]);
    let preload = format!("{}:{}", foreign.display(), lib().display());
    let out = run(compile("hello", &[]))
        .glibc()
        .env("LD_PRELOAD", &preload)
        .env("JVMALLOC_STATS_AT_EXIT", "1")
        .output();
    out.assert_ok();
    let said: Vec<&str> = out
        .jvmalloc_lines()
        .into_iter()
        .filter(|l| l.contains("malloc resolves to") && l.contains("libforeign.so"))
        .collect();
    assert_eq!(said.len(), 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("WARNING: malloc resolves to")
            && out.stderr.contains("=== end of jvmalloc"),
        "{}",
        out.stderr
    );
    // jvmalloc first: nothing said.
    let out = run(compile("hello", &[])).output();
    out.assert_ok();
    assert!(!out.stderr.contains("malloc resolves to"), "{}", out.stderr);
}

/// A request that no jvmalloc thread has served (a single-threaded program never gets
/// one) is written at exit, not lost.
#[test]
fn pending_request_is_written_at_exit() {
    // bash ends with exit(), which runs the at-exit hook (dash ends with _exit(), which
    // runs nothing, as under glibc).
    let out = run("bash")
        .args(["-c", "kill -USR1 $$; echo done"])
        .output();
    out.assert_ok();
    assert_eq!(out.stdout, "done\n");
    assert_eq!(
        out.stderr
            .matches("=== end of jvmalloc statistics #1 ===")
            .count(),
        1,
        "{}",
        out.stderr
    );
}
