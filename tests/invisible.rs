//! Issue 12: the library changes nothing a program can observe beyond the allocator.
//!
//! - Process lifetime is glibc's: a process ends (status 0, atexit handlers run) when its
//!   last thread exits, also when that is not the main thread and also in a child forked from
//!   a non-main thread (`c-tests/lastthread.c`); a JVM ends through DestroyJavaVM when its
//!   last non-daemon thread ends, under every JDK on the machine, after answering a dump
//!   (`c-tests/jvm/LastThread.java`).
//! - Scope (`JVMALLOC_PROCESSES`, patterns matched against the basename of `/proc/self/exe`,
//!   default `java`): only an in-scope process gets the SIGUSR1 handler (at load) and the
//!   `jvmalloc` thread (when it starts its first thread; a single-threaded program never
//!   gets one). Any other process gets the allocator alone: SIGUSR1 keeps its default
//!   action, no thread, no files, nothing on stderr (`c-tests/scope.c`).
//! - What programs see of the handler in an in-scope process: Python's
//!   `signal.getsignal(SIGUSR1)` is None (a handler Python did not install; `SIG_DFL` out of
//!   scope), bash's `trap -p` shows nothing, and Java's `sun.misc.Signal.handle` replaces it.
//! - The peer suite: CPython's own regression tests for signals, subprocesses, fork, threads,
//!   wait and mmap give the same results preloaded as under glibc (`scripts/peer-suite.sh`).
//!
//! Each behaviour that glibc defines is also run under `.glibc()`, to show it is glibc's.
mod common;
use common::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

const DUMP: &str = "=== jvmalloc statistics #";

fn dumps(s: &str) -> usize {
    s.matches(DUMP).count()
}

// ---------------------------------------------------------------------------------------
// A program that is talked to while it runs: stdout lines as they come, stderr collected.

struct Live {
    what: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
}

impl Live {
    fn start(what: &str, r: Run) -> Live {
        let mut child = r.spawn();
        let stdin = child.stdin.take();
        let (tx, lines) = channel();
        let stdout = Arc::new(Mutex::new(String::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let (so, se) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
        let out = stdout.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(so).lines() {
                let Ok(line) = line else { break };
                out.lock().unwrap().push_str(&format!("{line}\n"));
                let _ = tx.send(line);
            }
        });
        let err = stderr.clone();
        std::thread::spawn(move || {
            let mut se = se;
            let mut buf = [0u8; 4096];
            while let Ok(n) = se.read(&mut buf) {
                if n == 0 {
                    break;
                }
                err.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Live {
            what: what.to_string(),
            child,
            stdin,
            lines,
            stdout,
            stderr,
        }
    }

    fn said(&self) -> String {
        format!(
            "{}\n--- stdout\n{}\n--- stderr\n{}",
            self.what,
            self.stdout.lock().unwrap(),
            self.stderr.lock().unwrap()
        )
    }

    /// The next stdout line starting with `prefix` (earlier lines are skipped).
    fn line(&self, prefix: &str, secs: u64) -> Result<String, String> {
        let end = Instant::now() + Duration::from_secs(secs);
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) if l.starts_with(prefix) => return Ok(l),
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => {
                    return Err(format!(
                        "no {prefix:?} line within {secs} s: {}",
                        self.said()
                    ))
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(format!("stdout ended before {prefix:?}: {}", self.said()))
                }
            }
        }
    }

    /// Waits until stderr holds `n` dumps.
    fn dumps(&self, n: usize, secs: u64) -> Result<(), String> {
        let end = Instant::now() + Duration::from_secs(secs);
        while dumps(&self.stderr.lock().unwrap()) < n {
            if Instant::now() > end {
                return Err(format!(
                    "not {n} dump(s) on stderr within {secs} s: {}",
                    self.said()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    fn dump_count(&self) -> usize {
        dumps(&self.stderr.lock().unwrap())
    }

    fn send(&mut self, line: &str) {
        if let Some(w) = self.stdin.as_mut() {
            let _ = writeln!(w, "{line}");
            let _ = w.flush();
        }
    }

    /// Closes stdin and waits for the end; kills the process group after `secs`.
    fn finish(mut self, secs: u64) -> Result<Output, String> {
        drop(self.stdin.take());
        let end = Instant::now() + Duration::from_secs(secs);
        let status = loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                break st;
            }
            if Instant::now() > end {
                let threads = thread_names(self.child.id());
                kill_group(self.child.id());
                let _ = self.child.wait();
                return Err(format!(
                    "still running {secs} s after it was told to end (threads: {threads}): {}",
                    self.said()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        kill_group(self.child.id());
        // Let the readers drain what is left.
        std::thread::sleep(Duration::from_millis(100));
        use std::os::unix::process::ExitStatusExt;
        let stdout = self.stdout.lock().unwrap().clone();
        let stderr = self.stderr.lock().unwrap().clone();
        Ok(Output {
            code: status.code(),
            signal: status.signal(),
            stdout,
            stderr,
        })
    }
}

fn usr1(pid: u32) {
    // SAFETY: kill(2) has no memory-safety preconditions.
    let r = unsafe { libc::kill(pid as i32, libc::SIGUSR1) };
    assert_eq!(r, 0, "kill -USR1 {pid}");
}

/// The names of the threads of process `pid`.
fn thread_names(pid: u32) -> String {
    let mut names: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| {
            std::fs::read_to_string(e.path().join("comm"))
                .unwrap_or_default()
                .trim()
                .to_string()
        })
        .collect();
    names.sort();
    names.join(" ")
}

fn ok_or_panic(errors: Vec<String>) {
    assert!(errors.is_empty(), "{}", errors.join("\n\n"));
}

/// Runs `check` with the `java` of every JDK on the machine; fails with every error once
/// all have run.
fn under_every_java(check: impl Fn(&Path) -> Result<(), String>) {
    let errors = jdks()
        .into_iter()
        .filter_map(|home| check(&home.join("bin/java")).err())
        .collect();
    ok_or_panic(errors);
}

// ---------------------------------------------------------------------------------------
// 1. The last thread ends the process (C).

fn lastthread(mode: &[&str], glibc: bool) -> Output {
    lastthread_with(mode, glibc, &[])
}

fn lastthread_with(mode: &[&str], glibc: bool, env: &[(&str, &str)]) -> Output {
    let p = compile("lastthread", &[]);
    let mut r = run(&p).args(mode).timeout(20);
    for (k, v) in env {
        r = r.env(k, v);
    }
    if glibc {
        r = r.glibc();
    } else if mode == ["heavy"] {
        r = r.env("JVMALLOC_STATS_AT_EXIT", "1");
    }
    let out = r.output();
    out.assert_ok();
    assert!(out.stdout.contains("atexit ran (main)"), "{}", out.stdout);
    assert!(out.stdout.contains("lastthread: ok"), "{}", out.stdout);
    out
}

/// main calls pthread_exit; the thread it started returns: the process exits 0 through
/// exit() (atexit handlers run), in scope.
#[test]
fn last_thread_ends_the_process() {
    lastthread(&[], false);
}

/// jemalloc's own background threads are started past the interposed pthread_create;
/// they are stopped with the jvmalloc thread, so they do not hold the process up either.
#[test]
fn last_thread_ends_the_process_with_jemalloc_background_threads() {
    lastthread_with(&[], false, &[("JVMALLOC_BACKGROUND_THREAD", "1")]);
}

#[test]
fn last_thread_ends_the_process_glibc() {
    lastthread(&[], true);
}

/// The last thread allocates heavily before it returns; JVMALLOC_STATS_AT_EXIT=1: exactly one
/// dump, written as the process exits.
#[test]
fn last_thread_allocating_heavily_gets_one_exit_dump() {
    let out = lastthread(&["heavy"], false);
    assert_eq!(dumps(&out.stderr), 1, "{}", out.stderr);
}

#[test]
fn last_thread_allocating_heavily_glibc() {
    lastthread(&["heavy"], true);
}

/// A child forked from a non-main thread starts a thread, joins it, and its only thread
/// returns from its start routine: the child exits 0 within 10 s (the parent checks), and
/// then the parent ends through its last thread too.
#[test]
fn child_forked_from_a_thread_ends_with_its_last_thread() {
    let out = lastthread(&["fork"], false);
    assert!(out.stdout.contains("child exited 0"), "{}", out.stdout);
    assert!(out.stdout.contains("atexit ran (child)"), "{}", out.stdout);
}

#[test]
fn child_forked_from_a_thread_ends_with_its_last_thread_glibc() {
    let out = lastthread(&["fork"], true);
    assert!(out.stdout.contains("child exited 0"), "{}", out.stdout);
    assert!(out.stdout.contains("atexit ran (child)"), "{}", out.stdout);
}

// ---------------------------------------------------------------------------------------
// 2. A JVM ends with its last non-daemon thread, under every JDK here.

fn last_thread_jvm(java: &Path, r: Run) -> Live {
    let what = format!("{} LastThread", java.display());
    Live::start(&what, r.arg("-cp").arg(java_classes()).arg("LastThread"))
}

fn ready_pid(live: &Live) -> Result<u32, String> {
    let l = live.line("ready ", 60)?;
    l.split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| format!("bad ready line {l:?}"))
}

/// Tells a test JVM to quit and checks that it exits 0 having printed `expect`.
fn quit(mut live: Live, java: &Path, expect: &str) -> Result<(), String> {
    live.send("quit");
    let out = live.finish(60)?;
    if out.code != Some(0) || !out.stdout.contains(expect) {
        return Err(format!(
            "{}: exit {:?} signal {:?}\n{}\n{}",
            java.display(),
            out.code,
            out.signal,
            out.stdout,
            out.stderr
        ));
    }
    Ok(())
}

/// In the default scope (java is in it), SIGUSR1 gives a dump while the last thread waits;
/// then that thread returns and the JVM exits 0.
#[test]
fn jvm_answers_a_dump_and_ends_with_its_last_thread() {
    under_every_java(|java| {
        let live = last_thread_jvm(java, run(java).default_scope());
        let pid = ready_pid(&live)?;
        usr1(pid);
        live.dumps(1, 30)?;
        quit(live, java, "done")
    });
}

#[test]
fn jvm_ends_with_its_last_thread_glibc() {
    under_every_java(|java| {
        let live = last_thread_jvm(java, run(java).glibc().default_scope());
        ready_pid(&live)?;
        quit(live, java, "done")
    });
}

// ---------------------------------------------------------------------------------------
// 3. Scope.

/// The facts `c-tests/scope.c` prints, without the pid. (Whether a thread is named
/// `jvmalloc` right at start is not one: a new thread names itself a moment after it
/// starts; the thread count is exact.)
#[derive(Debug, PartialEq)]
struct Facts {
    /// SIGUSR1's action at start: "dfl" or "handler".
    usr1: String,
    sigcgt: bool,
    /// Threads at start, and 300 ms later (still single-threaded as far as main knows).
    threads_start: u32,
    threads_single: u32,
    jvmalloc_single: u32,
    /// After starting a thread (and waiting up to 2 s for a jvmalloc thread).
    threads_threaded: Option<u32>,
    jvmalloc_threaded: Option<u32>,
}

fn field<'a>(out: &'a str, line: &str, key: &str) -> &'a str {
    let l = out
        .lines()
        .find(|l| l.starts_with(line))
        .unwrap_or_else(|| panic!("no {line:?} line in {out}"));
    l.split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("no {key} in {l:?}"))
}

fn facts(out: &str) -> Facts {
    Facts {
        usr1: field(out, "start ", "usr1").to_string(),
        sigcgt: field(out, "start ", "sigcgt") == "1",
        threads_start: field(out, "start ", "threads").parse().unwrap(),
        threads_single: field(out, "single ", "threads").parse().unwrap(),
        jvmalloc_single: field(out, "single ", "jvmalloc").parse().unwrap(),
        threads_threaded: out
            .contains("threaded ")
            .then(|| field(out, "threaded ", "threads").parse().unwrap()),
        jvmalloc_threaded: out
            .contains("threaded ")
            .then(|| field(out, "threaded ", "jvmalloc").parse().unwrap()),
    }
}

fn scope_program() -> PathBuf {
    compile("scope", &[])
}

/// Runs `program thread` to its end (stdin closed) and returns what it saw.
fn scope_facts(r: Run) -> (Facts, Output) {
    let out = r.arg("thread").timeout(60).output();
    out.assert_ok();
    (facts(&out.stdout), out)
}

fn out_of_scope() -> Facts {
    Facts {
        usr1: "dfl".into(),
        sigcgt: false,
        threads_start: 1,
        threads_single: 1,
        jvmalloc_single: 0,
        threads_threaded: Some(2),
        jvmalloc_threaded: Some(0),
    }
}

fn in_scope() -> Facts {
    Facts {
        usr1: "handler".into(),
        sigcgt: true,
        threads_start: 1,
        threads_single: 1,
        jvmalloc_single: 0,
        threads_threaded: Some(3),
        jvmalloc_threaded: Some(1),
    }
}

#[test]
fn scope_program_under_glibc() {
    let (f, _) = scope_facts(run(scope_program()).glibc());
    assert_eq!(f, out_of_scope());
}

/// Default scope, a program not named java: what glibc gives, even with every dump variable
/// set: no handler, no jvmalloc thread after it starts a thread, no file, nothing on stderr.
#[test]
fn out_of_scope_program_gets_the_allocator_alone() {
    let dir = temp_dir("invisible-out-of-scope");
    let (f, out) = scope_facts(
        run(scope_program())
            .default_scope()
            .env("JVMALLOC_STATS_AT_EXIT", "1")
            .env("JVMALLOC_STATS_INTERVAL_S", "1")
            .env("JVMALLOC_STATS_FILE", dir.join("dump-%p-%n.txt")),
    );
    let files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(f, out_of_scope(), "{}", out.stdout);
    assert!(out.stderr.is_empty(), "stderr: {}", out.stderr);
    assert!(files.is_empty(), "files written: {files:?}");
}

/// JVMALLOC_PROCESSES values that do not match the program's name (`scope`).
#[test]
fn non_matching_patterns_leave_a_program_out_of_scope() {
    let mut errors = vec![];
    for pat in [
        "java",
        "nomatch",
        "scop",
        "scope?",
        "s",
        "java,python3*",
        "*x*",
    ] {
        let (f, out) = scope_facts(run(scope_program()).env("JVMALLOC_PROCESSES", pat));
        if f != out_of_scope() || !out.stderr.is_empty() {
            errors.push(format!("JVMALLOC_PROCESSES={pat}: {f:?}\n{}", out.stderr));
        }
    }
    ok_or_panic(errors);
}

/// JVMALLOC_PROCESSES values that match: the handler from the start, a jvmalloc thread once
/// the program starts a thread, none before.
#[test]
fn matching_patterns_put_a_program_in_scope() {
    let mut errors = vec![];
    for pat in ["scope", "*", "sc?pe", "s*", "java,scope", "java,sc*e"] {
        let (f, out) = scope_facts(run(scope_program()).env("JVMALLOC_PROCESSES", pat));
        if f != in_scope() {
            errors.push(format!("JVMALLOC_PROCESSES={pat}: {f:?}\n{}", out.stderr));
        }
    }
    ok_or_panic(errors);
}

/// In scope but single-threaded: the handler, never a jvmalloc thread.
#[test]
fn single_threaded_program_in_scope_has_no_jvmalloc_thread() {
    let out = run(scope_program()).timeout(60).output();
    out.assert_ok();
    let f = facts(&out.stdout);
    assert_eq!(
        (
            f.usr1.as_str(),
            f.threads_start,
            f.threads_single,
            f.jvmalloc_single
        ),
        ("handler", 1, 1, 0),
        "{}",
        out.stdout
    );
}

/// The scope is the basename of /proc/self/exe: a copy of the program named `java` is in the
/// default scope; a symlink named `java` to it is not (the executable is still `scope`).
#[test]
fn default_scope_is_the_executable_named_java() {
    let dir = temp_dir("invisible-java-name");
    let copy = dir.join("copy/java");
    let link = dir.join("link/java");
    std::fs::create_dir_all(copy.parent().unwrap()).unwrap();
    std::fs::create_dir_all(link.parent().unwrap()).unwrap();
    std::fs::copy(scope_program(), &copy).unwrap();
    std::os::unix::fs::symlink(scope_program(), &link).unwrap();
    let (f, _) = scope_facts(run(&copy).default_scope());
    assert_eq!(f, in_scope(), "a copy named java");
    let (f, out) = scope_facts(run(&link).default_scope());
    assert_eq!(f, out_of_scope(), "a symlink named java to `scope`");
    assert!(out.stderr.is_empty(), "{}", out.stderr);
}

/// SIGUSR1 sent to a program that has started a thread: the default action (killed by
/// SIGUSR1) out of scope, as under glibc; a dump in scope, and the program lives on.
fn usr1_to_scope_program(r: Run) -> Result<Output, String> {
    let mut live = Live::start("scope thread", r.arg("thread"));
    let pid = ready_pid(&live)?;
    usr1(pid);
    // Out of scope the program is dead by now; in scope it waits for its line.
    std::thread::sleep(Duration::from_millis(300));
    live.send("");
    live.finish(30)
}

#[test]
fn usr1_kills_an_out_of_scope_program() {
    let out = usr1_to_scope_program(run(scope_program()).default_scope()).unwrap();
    assert_eq!(
        (out.code, out.signal),
        (None, Some(libc::SIGUSR1)),
        "{out:?}"
    );
    assert!(out.stderr.is_empty(), "{}", out.stderr);
}

#[test]
fn usr1_kills_the_program_glibc() {
    let out = usr1_to_scope_program(run(scope_program()).glibc()).unwrap();
    assert_eq!(
        (out.code, out.signal),
        (None, Some(libc::SIGUSR1)),
        "{out:?}"
    );
}

#[test]
fn usr1_dumps_an_in_scope_program() {
    let r = run(scope_program()).env("JVMALLOC_PROCESSES", "scope");
    let mut live = Live::start("scope thread", r.arg("thread"));
    let pid = ready_pid(&live).unwrap();
    usr1(pid);
    live.dumps(1, 30).unwrap();
    live.send("");
    let out = live.finish(30).unwrap();
    out.assert_ok();
    assert!(out.stdout.contains("bye"), "{}", out.stdout);
}

/// SigCgt of a short-lived command started by a shell, as the kernel shows it: the same as
/// under glibc out of scope; SIGUSR1 caught in scope.
#[test]
fn sigcgt_of_a_shell_command() {
    let sigcgt = |r: Run| {
        let out = r.args(["SigCgt", "/proc/self/status"]).output();
        out.assert_ok();
        out.stdout.trim().to_string()
    };
    let glibc = sigcgt(run("grep").glibc());
    let default = sigcgt(run("grep").default_scope());
    let all = sigcgt(run("grep").env("JVMALLOC_PROCESSES", "*"));
    let mask = |s: &str| u64::from_str_radix(s.split_whitespace().last().unwrap(), 16).unwrap();
    assert_eq!(default, glibc, "out of scope");
    assert_eq!(mask(&glibc) & (1 << (libc::SIGUSR1 - 1)), 0, "{glibc}");
    assert_ne!(
        mask(&all) & (1 << (libc::SIGUSR1 - 1)),
        0,
        "in scope: {all}"
    );
}

// ---------------------------------------------------------------------------------------
// 4. What programs see of the handler.

/// The real interpreter behind `python3` (here a pyenv shim script): the process whose
/// scope is decided is python itself.
fn python() -> PathBuf {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| {
        let out = run("python3")
            .glibc()
            .args([
                "-c",
                "import os, sys; print(os.path.realpath(sys.executable))",
            ])
            .output();
        out.assert_ok();
        PathBuf::from(out.stdout.trim())
    })
    .clone()
}

/// Prints what `signal.getsignal(SIGUSR1)` returns: None, SIG_DFL, SIG_IGN or a handler.
/// (Python 3.11 prints the enum `Handlers.SIG_DFL` as "0".)
const GETSIGNAL: &str = "import signal\n\
    h = signal.getsignal(signal.SIGUSR1)\n\
    print('None' if h is None else h.name if isinstance(h, signal.Handlers) else repr(h))";

fn getsignal(r: Run) -> String {
    let out = r.args(["-c", GETSIGNAL]).output();
    out.assert_ok();
    assert!(out.stderr.is_empty(), "{}", out.stderr);
    out.stdout.trim().to_string()
}

/// In scope Python sees a handler it did not install (None); out of scope what glibc gives
/// (SIG_DFL).
#[test]
fn python_getsignal_usr1() {
    let py = python();
    assert_eq!(getsignal(run(&py).glibc()), "SIG_DFL", "glibc");
    let all = getsignal(run(&py).env("JVMALLOC_PROCESSES", "*"));
    assert_eq!(all, "None", "in scope (JVMALLOC_PROCESSES=*)");
    let default = getsignal(run(&py).default_scope());
    assert_eq!(default, "SIG_DFL", "out of scope (default: java only)");
}

/// bash lists only the traps it set: nothing, in scope or not.
#[test]
fn bash_trap_shows_nothing() {
    let trap = |r: Run| {
        let out = r.args(["-c", "trap -p USR1; trap -p; echo end"]).output();
        out.assert_ok();
        out.stdout
    };
    assert_eq!(trap(run("bash").glibc()), "end\n");
    assert_eq!(trap(run("bash").env("JVMALLOC_PROCESSES", "*")), "end\n");
    assert_eq!(trap(run("bash").default_scope()), "end\n");
}

/// In a JVM in scope, `sun.misc.Signal.handle(USR1)` finds a native handler and replaces
/// it: Java's handler runs on the next SIGUSR1 and the library writes no more dumps.
#[test]
fn java_signal_handle_replaces_the_library_handler() {
    under_every_java(|java| {
        let mut live = last_thread_jvm(java, run(java).default_scope());
        let pid = ready_pid(&live)?;
        usr1(pid);
        live.dumps(1, 30)?;
        live.send("handle");
        let l = live.line("handled ", 30)?;
        if l != "handled previous=native" {
            return Err(format!("{}: {l}", java.display()));
        }
        usr1(pid);
        live.line("java got SIGUSR1", 30)?;
        std::thread::sleep(Duration::from_secs(1));
        if live.dump_count() != 1 {
            return Err(format!(
                "a dump after Java took SIGUSR1 over: {}",
                live.said()
            ));
        }
        quit(live, java, "")
    });
}

/// A JVM out of scope (JVMALLOC_PROCESSES names something else): Java finds SIG_DFL, as
/// under glibc.
#[test]
fn java_out_of_scope_finds_sig_dfl() {
    let java = jdks()[0].join("bin/java");
    for r in [
        run(&java).env("JVMALLOC_PROCESSES", "python3*"),
        run(&java).glibc(),
    ] {
        let mut live = last_thread_jvm(&java, r);
        ready_pid(&live).unwrap();
        live.send("handle");
        let l = live.line("handled ", 30).unwrap();
        live.send("quit");
        let out = live.finish(60).unwrap();
        out.assert_ok();
        assert_eq!(l, "handled previous=SIG_DFL", "{}", out.stderr);
        assert!(out.stderr.is_empty(), "{}", out.stderr);
    }
}

// ---------------------------------------------------------------------------------------
// 5. The peer suite.

/// CPython's regression tests give the same results preloaded (default scope, and
/// JVMALLOC_PROCESSES=* for the tests that do not test SIGUSR1) as under glibc.
#[test]
fn peer_suite_cpython() {
    let out = run("bash")
        .glibc()
        .default_scope()
        .arg(root().join("scripts/peer-suite.sh"))
        .arg(lib())
        .dir(root())
        .timeout(900)
        .output();
    println!("{}", out.stdout);
    eprintln!("{}", out.stderr);
    out.assert_ok();
    assert!(
        out.stdout.contains("every preloaded run matches glibc"),
        "{}",
        out.stdout
    );
}
