//! Statistics dumps: per-thread rows, reconciliation, the bounded registry, signal storms,
//! a JVM, the `jvmalloc` command (`dump`, `diff`), and bad statistics settings.
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
    // Sorted by net bytes, biggest first.
    let nets: Vec<i64> = d["threads"].arr().iter().map(|t| t["net"].int()).collect();
    assert!(nets.windows(2).all(|w| w[0] >= w[1]), "{nets:?}");
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

#[test]
fn dump_command_reads_a_text_dump_from_the_targets_stderr_file() {
    let dir = temp_dir("dumpcmd");
    let err_path = dir.join("stderr.txt");
    let mut child = run(compile("stats_threads", &[]))
        .arg("wait")
        .spawn_with_stderr(&err_path);
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let pid = wait_ready(&mut lines);
    let out = run(jvmalloc_cmd()).glibc().args(["dump", &pid]).output();
    writeln!(stdin).unwrap();
    drop(stdin);
    assert!(child.wait().unwrap().success());
    out.assert_ok();
    assert!(
        out.stdout.starts_with("=== jvmalloc statistics #1 pid "),
        "{}",
        out.stdout
    );
    assert!(out
        .stdout
        .trim_end()
        .ends_with("=== end of jvmalloc statistics #1 ==="));
    assert!(out.stdout.contains("alloc-A"));
}

#[test]
fn dump_command_errors_are_clear() {
    let out = run(jvmalloc_cmd())
        .glibc()
        .args(["dump", "999999999"])
        .output();
    assert_eq!(out.code, Some(1));
    assert!(
        out.stderr.contains("no process 999999999"),
        "{}",
        out.stderr
    );
    // A process without the library.
    let mut sleeper = run("sleep").glibc().arg("30").spawn();
    let out = run(jvmalloc_cmd())
        .glibc()
        .args(["dump", &sleeper.id().to_string()])
        .output();
    let _ = sleeper.kill();
    let _ = sleeper.wait();
    assert_eq!(out.code, Some(1));
    assert!(
        out.stderr.contains("does not have jvmalloc loaded"),
        "{}",
        out.stderr
    );
    // Dumps turned off.
    let mut off = run("sleep")
        .arg("30")
        .env("JVMALLOC_STATS_SIGNAL", "off")
        .spawn();
    std::thread::sleep(Duration::from_millis(200));
    let out = run(jvmalloc_cmd())
        .glibc()
        .args(["dump", &off.id().to_string()])
        .output();
    let _ = off.kill();
    let _ = off.wait();
    assert!(out.stderr.contains("turned off"), "{}", out.stderr);
    // Bad files for diff.
    let junk = temp_dir("junk").join("x.json");
    std::fs::write(&junk, "not json").unwrap();
    let out = run(jvmalloc_cmd())
        .glibc()
        .arg("diff")
        .arg(&junk)
        .arg(&junk)
        .output();
    assert_eq!(out.code, Some(1));
    assert!(out.stderr.contains("no JSON dump"), "{}", out.stderr);
}

/// A running `dump_target` (with the library), its stderr in a file.
struct DumpTarget {
    child: std::process::Child,
    stdin: ChildStdin,
    stdout: std::io::Lines<BufReader<ChildStdout>>,
    pid: String,
    err: PathBuf,
}

/// Starts `dump_target <mode>` and waits until it is ready.
fn start_dump_target(mode: &str, dir: &str) -> DumpTarget {
    let err = temp_dir(dir).join("stderr.txt");
    let mut child = run(compile("dump_target", &[]))
        .arg(mode)
        .spawn_with_stderr(&err);
    let stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let pid = wait_ready(&mut stdout);
    DumpTarget {
        child,
        stdin,
        stdout,
        pid,
        err,
    }
}

impl DumpTarget {
    /// Lets the target finish: it must end normally, not be killed by a signal it never
    /// should have got.
    fn finish(mut self) {
        writeln!(self.stdin).unwrap();
        drop(self.stdin);
        let rest: Vec<String> = self.stdout.map_while(Result::ok).collect();
        let status = self.child.wait().unwrap();
        assert!(
            status.success() && rest.iter().any(|l| l == "dump_target: ok"),
            "target {status:?} {rest:?}\n{}",
            String::from_utf8_lossy(&std::fs::read(&self.err).unwrap_or_default())
        );
    }
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

#[test]
fn dump_command_refuses_a_signal_at_its_default_action() {
    let target = start_dump_target("default", "sigdfl");
    let pid = target.pid.clone();
    let out = run(jvmalloc_cmd())
        .glibc()
        .args(["dump", &pid, "--timeout", "5"])
        .output();
    assert_eq!(out.code, Some(1), "{out:?}");
    assert_eq!(
        out.stderr.trim_end(),
        format!(
            "jvmalloc: process {pid} does not catch SIGUSR1 (its action is the default, which \
             would kill it, or it is ignored); not sending it"
        )
    );
    // Sent, SIGUSR1 would have ended it by now, or at least be pending.
    assert!(!usr1_pending(&pid));
    // A thread id is not taken for its process (kill(tid) would signal the process).
    let tid = std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .find(|t| *t != pid)
        .unwrap();
    let out = run(jvmalloc_cmd()).glibc().args(["dump", &tid]).output();
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(
        out.stderr
            .contains(&format!("{tid} is a thread of process {pid}")),
        "{}",
        out.stderr
    );
    target.finish();
}

#[test]
fn dump_command_refuses_a_signal_blocked_in_every_thread() {
    let target = start_dump_target("blocked", "sigblk");
    let pid = target.pid.clone();
    let out = run(jvmalloc_cmd())
        .glibc()
        .args(["dump", &pid, "--timeout", "5"])
        .output();
    assert_eq!(out.code, Some(1), "{out:?}");
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    assert!(
        out.stderr
            .contains(&format!("process {pid} blocks SIGUSR1 in every thread")),
        "{}",
        out.stderr
    );
    assert!(!usr1_pending(&pid), "the signal was sent");
    target.finish();
}

#[test]
fn dump_command_finds_the_dump_in_a_log_that_is_not_utf8() {
    let target = start_dump_target("noisy", "latin1");
    let (pid, err) = (target.pid.clone(), target.err.clone());
    // A timeout too far away for a deadline: waits as long as it takes (not long).
    let out = run(jvmalloc_cmd())
        .glibc()
        .args(["dump", &pid, "--timeout", "18446744073709551615"])
        .timeout(60)
        .output();
    target.finish();
    out.assert_ok();
    assert!(
        out.stdout
            .starts_with(&format!("=== jvmalloc statistics #1 pid {pid} ")),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .trim_end()
            .ends_with("=== end of jvmalloc statistics #1 ==="),
        "{}",
        out.stdout
    );
    // The log around the dump was not UTF-8 (and the dump sits between such lines).
    let log = std::fs::read(&err).unwrap();
    assert!(String::from_utf8(log.clone()).is_err());
    let text = String::from_utf8_lossy(&log);
    let at = text.find("=== jvmalloc statistics #1").unwrap();
    assert!(text[..at].contains("caf\u{fffd} \u{fffd}\u{fffd} latin-1"));
}

fn wait_ready(lines: &mut impl Iterator<Item = std::io::Result<String>>) -> String {
    loop {
        let line = lines.next().expect("program ended before ready").unwrap();
        if let Some(p) = line.strip_prefix("ready ") {
            return p.trim().to_string();
        }
    }
}

#[test]
fn jvm_dump_names_threads_and_splits_rss() {
    let dir = temp_dir("jvm");
    let classes = {
        let out = work_dir().join("jvm-classes-stats");
        std::fs::create_dir_all(&out).unwrap();
        run("javac")
            .glibc()
            .arg("-d")
            .arg(&out)
            .arg(root().join("c-tests/jvm/NativeChurn.java"))
            .timeout(300)
            .output()
            .assert_ok();
        out
    };
    let mut child = json_env(run("java"), &dir, "jvm-%p")
        .arg("-cp")
        .arg(&classes)
        .args(["NativeChurn", "8", "40", "--wait"])
        .spawn();
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let pid = wait_ready(&mut lines);
    let out = run(jvmalloc_cmd())
        .glibc()
        .args(["dump", &pid, "--timeout", "30"])
        .output();
    writeln!(stdin).unwrap();
    drop(stdin);
    let status = child.wait().unwrap();
    out.assert_ok();
    assert!(status.success(), "java exited {status:?}");
    let d = serde_json::from_str::<Value>(out.stdout.trim_end())
        .expect("dump command prints the JSON dump");
    assert_eq!(d["pid"].int().to_string(), pid);
    for name in ["keeper-thread", "VM Thread", "Reference Handl", "jvmalloc"] {
        thread(&d, name);
    }
    let m = &d["memory"];
    assert!(m["rss"].int() >= m["resident"].int(), "{m:?}");
    // The 96 MiB of Java heap the program touched is RSS that malloc does not own.
    assert!(m["rss_not_malloc"].int() >= 96 << 20, "{m:?}");
    assert_reconciles_loosely(&d);
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
