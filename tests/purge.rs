//! Giving memory back: periodic purge after a burst, malloc_trim, the purge thread after
//! fork, jemalloc's background threads, the memory-pressure guard, and the new settings.
mod common;
use common::*;

fn burst() -> std::path::PathBuf {
    compile("burst", &[])
}

/// 32 threads allocate ~512 MiB, keep 2%, free the rest from other threads; within three
/// purge intervals (default 1000 ms) RSS is back under pre-burst + live + 32 MiB.
#[test]
fn burst_returns_memory_within_three_purge_intervals() {
    let out = run(burst()).args(["wait", "3000"]).timeout(120).output();
    out.assert_ok();
    assert!(out.stdout.contains("burst: ok"), "{}", out.stdout);
}

/// Without the purge thread and with jemalloc's 10 s decay, the same memory stays.
#[test]
fn without_purge_memory_stays() {
    let out = run(burst())
        .args(["observe", "3000"])
        .env("JVMALLOC_PURGE_INTERVAL_MS", "0")
        .env("JVMALLOC_DIRTY_DECAY_MS", "10000")
        .timeout(120)
        .output();
    out.assert_ok();
    assert!(out.stdout.contains("returned_ms -1 "), "{}", out.stdout);
}

#[test]
fn malloc_trim_after_burst_returns_1_and_rss_drops() {
    let out = run(burst())
        .arg("trim")
        .env("JVMALLOC_PURGE_INTERVAL_MS", "0")
        .timeout(120)
        .output();
    out.assert_ok();
    assert!(out.stdout.contains("burst: ok"), "{}", out.stdout);
}

/// A child of fork() has no jvmalloc thread until it starts a thread of its own (so fork +
/// exec is not slowed down); then it gets one, and a signal that arrived meanwhile is
/// answered with a dump.
#[test]
fn forked_child_gets_its_thread_when_it_starts_one() {
    let dir = temp_dir("forkchild");
    let out = run(compile("forkchild", &[]))
        .arg(&dir)
        .env("JVMALLOC_STATS_FILE", dir.join("child-%p-%n.txt"))
        .timeout(120)
        .output();
    out.assert_ok();
    assert!(out.stdout.contains("forkchild: ok"), "{}", out.stdout);
}

/// The purge thread works again in a child of fork() that does not exec (it starts 32
/// threads, the first of which brings the jvmalloc thread back).
#[test]
fn burst_in_forked_child() {
    let out = run(burst()).args(["fork", "3000"]).timeout(120).output();
    out.assert_ok();
    assert!(out.stdout.contains("burst fork: ok"), "{}", out.stdout);
}

#[test]
fn jemalloc_background_threads_on_request() {
    let out = run(burst())
        .args(["wait", "3000"])
        .env("JVMALLOC_BACKGROUND_THREAD", "1")
        .timeout(120)
        .output();
    out.assert_ok();
    // jemalloc's threads run in the process (named by jemalloc), started by the jvmalloc
    // thread, which comes with the program's first thread.
    let out = run(compile("hello", &[]))
        .args(["threaded", "1500"])
        .env("JVMALLOC_BACKGROUND_THREAD", "1")
        .output();
    out.assert_ok();
    assert!(out.stdout.contains("jemalloc_bg_thd"), "{}", out.stdout);
}

/// Growing past 90% of JVMALLOC_MEMORY_LIMIT: one stderr line and one dump per episode
/// (a second episode within a minute is rate-limited), and the program carries on.
#[test]
fn pressure_guard_reports_once_per_episode() {
    let out = run(compile("pressure", &[]))
        .args(["60", "2500"])
        .env("JVMALLOC_MEMORY_LIMIT", "64m")
        .timeout(120)
        .output();
    out.assert_ok();
    assert!(out.stdout.contains("pressure: ok"), "{}", out.stdout);
    let lines: Vec<&str> = out
        .jvmalloc_lines()
        .into_iter()
        .filter(|l| l.contains("memory pressure"))
        .collect();
    assert_eq!(lines.len(), 1, "{}", out.stderr);
    for want in [
        "of the 64.0 MiB limit (threshold 90%)",
        "native live",
        "allocator overhead",
        "RSS not owned by malloc",
        "purged all arenas",
    ] {
        assert!(lines[0].contains(want), "{want:?} in {}", lines[0]);
    }
    assert_eq!(
        out.stderr.matches("=== jvmalloc statistics #").count(),
        1,
        "{}",
        out.stderr
    );
    assert_eq!(
        out.stderr
            .matches("=== end of jvmalloc statistics #")
            .count(),
        1
    );
    assert!(
        out.stderr
            .contains("memory limit                                     67108864"),
        "{}",
        out.stderr
    );
}

#[test]
fn pressure_guard_is_silent_below_the_threshold() {
    let out = run(compile("pressure", &[]))
        .args(["20", "1500"])
        .env("JVMALLOC_MEMORY_LIMIT", "1g")
        .timeout(120)
        .output();
    out.assert_ok();
    assert_eq!(out.stderr, "");
}

#[test]
fn memory_limit_variable_is_used_and_shown() {
    let out = run(compile("hello", &[]))
        .env("JVMALLOC_VERBOSE", "1")
        .env("JVMALLOC_MEMORY_LIMIT", "2g")
        .output();
    out.assert_ok();
    assert!(
        out.stderr
            .contains("memory_limit=2147483648 (JVMALLOC_MEMORY_LIMIT)"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("purge_interval_ms=1000 purge_idle_ms=1000"),
        "{}",
        out.stderr
    );
}

#[test]
fn bad_purge_settings_give_one_line_each() {
    let hello = compile("hello", &[]);
    for (var, value, says) in [
        ("JVMALLOC_PURGE_INTERVAL_MS", "fast", "using 1000"),
        ("JVMALLOC_PURGE_INTERVAL_MS", "-1", "using 0"),
        ("JVMALLOC_PURGE_INTERVAL_MS", "", "using 1000"),
        ("JVMALLOC_PURGE_IDLE_MS", "99999999999999", "using 86400000"),
        ("JVMALLOC_BACKGROUND_THREAD", "2", "using 0"),
        ("JVMALLOC_MEMORY_LIMIT", "lots", "using no limit"),
        (
            "JVMALLOC_MEMORY_LIMIT",
            "10",
            "did you mean 10m? using no limit",
        ),
        ("JVMALLOC_MEMORY_LIMIT", "5x", "using no limit"),
        ("JVMALLOC_PRESSURE_PCT", "150", "using 100"),
        ("JVMALLOC_PRESSURE_PCT", "-5", "using 0"),
        ("JVMALLOC_PRESSURE_PCT", "\u{1b}[2J", "using 90"),
    ] {
        assert_one_warning(&hello, var, value, says);
    }
}

/// A cgroup v1 pair `jvmalloc-test-<pid>/inner` in the memory and cpu hierarchies, limits
/// set on the outer one only (an ancestor's limit binds too). `None` where this machine
/// does not let us create cgroups (not root, cgroup v2 only, read-only cgroupfs).
struct Cgroups {
    dirs: Vec<std::path::PathBuf>,
}

impl Cgroups {
    fn create(memory_limit: u64, cpu_quota_us: u64) -> Option<Cgroups> {
        let name = format!("jvmalloc-test-{}", std::process::id());
        let mut dirs = Vec::new();
        for (ctrl, file, value) in [
            ("memory", "memory.limit_in_bytes", memory_limit.to_string()),
            ("cpu", "cpu.cfs_quota_us", cpu_quota_us.to_string()),
        ] {
            let outer = std::path::Path::new("/sys/fs/cgroup")
                .join(ctrl)
                .join(&name);
            std::fs::create_dir(&outer).ok()?;
            dirs.push(outer.clone());
            std::fs::write(outer.join(file), &value).ok()?;
            std::fs::create_dir(outer.join("inner")).ok()?;
            dirs.push(outer.join("inner"));
        }
        Some(Cgroups { dirs })
    }

    /// A shell command that moves itself into the inner cgroups, then runs `cmd`.
    fn enter(&self, cmd: &str) -> String {
        let moves: String = self
            .dirs
            .iter()
            .filter(|d| d.ends_with("inner"))
            .map(|d| format!("echo $$ > {}/cgroup.procs && ", d.display()))
            .collect();
        format!("{moves}exec {cmd}")
    }
}

impl Drop for Cgroups {
    fn drop(&mut self) {
        for d in self.dirs.iter().rev() {
            let _ = std::fs::remove_dir(d);
        }
    }
}

#[test]
fn container_limits_come_from_cgroup_v1() {
    let Some(cg) = Cgroups::create(256 << 20, 50_000) else {
        eprintln!("cannot create cgroup v1 groups on this machine; cgroup reading not exercised");
        return;
    };
    let hello = compile("hello", &[]);
    let out = run("sh")
        .arg("-c")
        .arg(cg.enter(&hello.display().to_string()))
        .env("JVMALLOC_VERBOSE", "1")
        .output();
    out.assert_ok();
    assert!(
        out.stderr.contains("memory_limit=268435456 (cgroup)"),
        "{}",
        out.stderr
    );
    // 50 ms of CPU per 100 ms period: 1 CPU, so 1 arena.
    assert!(out.stderr.contains("cgroup CPU quota 1)"), "{}", out.stderr);
    assert!(out.stdout.contains("narenas=1 "), "{}", out.stdout);
    // JVMALLOC_MEMORY_LIMIT overrides the cgroup's.
    let out = run("sh")
        .arg("-c")
        .arg(cg.enter(&hello.display().to_string()))
        .env("JVMALLOC_VERBOSE", "1")
        .env("JVMALLOC_MEMORY_LIMIT", "100m")
        .output();
    out.assert_ok();
    assert!(
        out.stderr
            .contains("memory_limit=104857600 (JVMALLOC_MEMORY_LIMIT)"),
        "{}",
        out.stderr
    );
}
