//! Hostile-but-legal programs and environments (issue 8): the library must leave every
//! process it is preloaded into exactly as it would be without it. Programs in
//! `c-tests/hostile/`:
//! - descriptors (`fds.c`): a program that closes 3..63 and then uses 3 and 4 itself gets
//!   its own pipe data back (with and without a dump signal), reads all of its input file,
//!   finds only its own lines in its log, and no jvmalloc thread spins on closed
//!   descriptors;
//! - initialisation (`openalloc.c`, `threads.c`): a preloaded library that interposes
//!   `open`/`fopen`/`readlink`..., `clock_gettime`, `mmap` and `munmap` and allocates in
//!   them, in either preload order, in and out of scope, with `/bin/echo`, a threaded C
//!   program and Python: each runs normally;
//! - dump files (`dumper.c`): symlinks planted at every name the library may create never
//!   redirect a dump (a 0600 victim file stays unchanged), dumps are 0600 whatever the
//!   umask, a FIFO or `/dev/stdout` named by `JVMALLOC_STATS_FILE` is written to (never
//!   replaced), and a non-UTF-8 directory in the template is kept byte for byte;
//! - secure mode (`secure.c`, root only): a setgid program run by `nobody` with the library
//!   preloaded set-user-ID gets the allocator only (every `JVMALLOC_*` variable ignored);
//! - `JVMALLOC_MEMORY_LIMIT` spellings: Flink's sizes (`4gb`, `4 GB`, `4096 mb`...) are
//!   accepted, `0`/`-1` mean no override, a bare number below 1 MiB is refused with a hint.
//!
//! The descriptor and interposer programs also run under plain glibc and pass there: the
//! behaviour those tests ask for is glibc's. Each run has a timeout (20 s), so a hang fails.
mod common;
use common::*;
use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn fds() -> PathBuf {
    compile("hostile/fds", &[])
}

fn dumper() -> PathBuf {
    compile("hostile/dumper", &[])
}

/// Whether `text` is one whole text dump with sequence number `n`.
fn whole_dump(text: &str, n: u64) -> bool {
    text.starts_with(&format!("=== jvmalloc statistics #{n} "))
        && text
            .trim_end()
            .ends_with(&format!("=== end of jvmalloc statistics #{n} ==="))
}

fn mode_of(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap()
        .permissions()
        .mode()
        & 0o7777
}

/// What went wrong in a run, or None when it exited 0: the program's own FAIL lines first
/// (they may sit among many dumps on stderr), then its output.
fn failed(what: &str, out: &Output) -> Option<String> {
    if out.code == Some(0) {
        return None;
    }
    let fails: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.starts_with("FAIL "))
        .collect();
    Some(format!(
        "{what}: exit {:?} signal {:?}\n{}\n--- stdout\n{}\n--- stderr ({} bytes, {} dumps)\n{}",
        out.code,
        out.signal,
        fails.join("\n"),
        out.stdout,
        out.stderr.len(),
        out.stderr.matches("=== jvmalloc statistics #").count(),
        out.stderr.chars().take(3000).collect::<String>()
    ))
}

/// Asserts the run passed, with everything it said otherwise.
fn assert_passed(what: &str, out: &Output) {
    if let Some(msg) = failed(what, out) {
        panic!("{msg}");
    }
}

// ---------------------------------------------------------------------------------------
// 1. Descriptors

fn pipe_case(args: &[&str]) {
    let out = run(fds()).glibc().args(args).timeout(20).output();
    assert_passed(&format!("glibc fds {args:?}"), &out);
    let out = run(fds()).args(args).timeout(20).output();
    assert_passed(&format!("jvmalloc fds {args:?}"), &out);
    assert!(out.stdout.contains("pipe on 3/4"), "{}", out.stdout);
}

#[test]
fn pipe_on_3_and_4_keeps_its_data() {
    pipe_case(&["pipe"]);
}

#[test]
fn pipe_on_3_and_4_keeps_its_data_across_a_dump_signal() {
    pipe_case(&["pipe", "signal"]);
}

#[test]
fn files_on_3_and_4_are_left_alone() {
    let dir = temp_dir("fdfiles");
    let input = dir.join("input");
    let size = 100_000usize;
    let data: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
    std::fs::write(&input, &data).unwrap();
    let expected_log = "before signal 0\nbefore signal 1\nbefore signal 2\n\
                        after reading 0\nafter reading 1\nafter reading 2\n";
    for glibc in [true, false] {
        let what = if glibc { "glibc" } else { "jvmalloc" };
        let log = dir.join(format!("{what}.log"));
        let mut r = run(fds())
            .arg("files")
            .arg(&input)
            .arg(size.to_string())
            .arg(&log)
            .timeout(20);
        if glibc {
            r = r.glibc();
        }
        let out = r.output();
        let mut problems = Vec::new();
        if !out.stdout.contains("input on 3, log on 4") {
            problems.push(format!("descriptors: {}", out.stdout));
        }
        let got = String::from_utf8_lossy(&std::fs::read(&log).unwrap()).into_owned();
        if got != expected_log {
            problems.push(format!(
                "the log holds {got:?}, want only the program's lines"
            ));
        }
        let dumps = out.stderr.matches("=== jvmalloc statistics #").count();
        if dumps > 3 {
            problems.push(format!("{dumps} dumps on stderr for 3 signals"));
        }
        problems.extend(failed(what, &out));
        assert!(problems.is_empty(), "{what}:\n{}", problems.join("\n"));
    }
}

#[test]
fn closed_descriptors_do_not_make_a_thread_spin() {
    let out = run(fds()).glibc().arg("idle").timeout(20).output();
    assert_passed("glibc", &out);
    let out = run(fds()).arg("idle").timeout(20).output();
    assert_passed("jvmalloc", &out);
}

// ---------------------------------------------------------------------------------------
// 2. Initialisation next to an interposer that allocates

/// Runs `prog args` with `LD_PRELOAD` of the interposer alone (control) and then of the
/// interposer and jvmalloc in the given order, under a 20 s timeout each: it must print
/// `want` and exit 0.
fn next_to_interposer(prog: &OsStr, args: &[&str], want: &str, jvmalloc_first: bool) {
    let inter = compile("hostile/openalloc", &["-shared", "-fPIC"]);
    let both = if jvmalloc_first {
        preload_list(&[lib(), &inter])
    } else {
        preload_list(&[&inter, lib()])
    };
    // Next to jvmalloc, in scope too: jvmalloc's active parts, and jemalloc's profiling
    // armed (whose initialisation runs the unwinder once).
    let runs = [
        (preload_list(&[&inter]), "java"),
        (both.clone(), "java"),
        (both, "*"),
    ];
    for (preload, processes) in runs {
        let out = run(prog)
            .glibc()
            .args(args)
            .env("LD_PRELOAD", &preload)
            .env("JVMALLOC_PROCESSES", processes)
            .timeout(20)
            .output();
        let what = format!(
            "{} with LD_PRELOAD={} JVMALLOC_PROCESSES={processes}",
            prog.to_string_lossy(),
            preload.to_string_lossy()
        );
        assert_passed(&what, &out);
        assert_eq!(out.stdout, want, "{what}");
    }
}

fn preload_list(libs: &[&Path]) -> std::ffi::OsString {
    let mut s = std::ffi::OsString::new();
    for (i, l) in libs.iter().enumerate() {
        if i > 0 {
            s.push(":");
        }
        s.push(l.as_os_str());
    }
    s
}

fn echo(jvmalloc_first: bool) {
    next_to_interposer(
        OsStr::new("/bin/echo"),
        &["hostile echo"],
        "hostile echo\n",
        jvmalloc_first,
    );
}

fn threads(jvmalloc_first: bool) {
    let prog = compile("hostile/threads", &[]);
    next_to_interposer(prog.as_os_str(), &[], "threads: ok\n", jvmalloc_first);
}

fn python(jvmalloc_first: bool) {
    let py = if Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    };
    next_to_interposer(OsStr::new(py), &["-c", "print(1)"], "1\n", jvmalloc_first);
}

#[test]
fn allocating_open_interposer_first_echo() {
    echo(false);
}

#[test]
fn allocating_open_interposer_first_threads() {
    threads(false);
}

#[test]
fn allocating_open_interposer_first_python() {
    python(false);
}

#[test]
fn allocating_open_interposer_second_echo() {
    echo(true);
}

#[test]
fn allocating_open_interposer_second_threads() {
    threads(true);
}

#[test]
fn allocating_open_interposer_second_python() {
    python(true);
}

// ---------------------------------------------------------------------------------------
// 3. Dump files

/// A running `dumper`: its stdin, its stdout lines (read by a thread, so that every wait
/// has a deadline), its stderr (collected by a thread), its pid.
struct Dumper {
    child: Child,
    stdin: ChildStdin,
    lines: std::sync::mpsc::Receiver<String>,
    stderr: std::thread::JoinHandle<String>,
    seen: String,
    pid: u32,
}

impl Dumper {
    fn start(r: Run) -> Dumper {
        let mut child = r.spawn();
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for l in stdout.lines().map_while(Result::ok) {
                let _ = tx.send(l);
            }
        });
        let mut err = child.stderr.take().unwrap();
        let stderr = std::thread::spawn(move || {
            let mut s = Vec::new();
            let _ = err.read_to_end(&mut s);
            String::from_utf8_lossy(&s).into_owned()
        });
        let mut d = Dumper {
            child,
            stdin,
            lines,
            stderr,
            seen: String::new(),
            pid: 0,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match d.lines.recv_timeout(left) {
                Ok(l) => {
                    d.seen += &format!("{l}\n");
                    if let Some(p) = l.strip_prefix("ready ") {
                        d.pid = p.trim().parse().unwrap();
                        return d;
                    }
                }
                Err(e) => {
                    kill_group(d.child.id());
                    let _ = d.child.wait();
                    panic!(
                        "dumper not ready ({e:?})\n--- stdout\n{}\n--- stderr\n{}",
                        d.seen,
                        d.stderr.join().unwrap()
                    );
                }
            }
        }
    }

    fn say(&mut self, cmd: &str) {
        writeln!(self.stdin, "{cmd}").unwrap();
        self.stdin.flush().unwrap();
    }

    /// Sends "exit" and waits (20 s at most) for the end.
    fn finish(mut self) -> Output {
        self.say("exit");
        drop(self.stdin);
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                break st;
            }
            if Instant::now() > deadline {
                kill_group(self.child.id());
                let _ = self.child.wait();
                panic!("dumper did not exit within 20 s\n--- stdout\n{}", self.seen);
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        kill_group(self.child.id());
        for l in self.lines.iter() {
            self.seen += &format!("{l}\n");
        }
        use std::os::unix::process::ExitStatusExt;
        Output {
            code: status.code(),
            signal: status.signal(),
            stdout: self.seen,
            stderr: self.stderr.join().unwrap(),
        }
    }
}

fn dump_env(r: Run, template: impl AsRef<OsStr>) -> Run {
    r.env("JVMALLOC_STATS_FILE", template)
        .env("JVMALLOC_STATS_FORMAT", "text")
        .env("JVMALLOC_STATS_AT_EXIT", "1")
        .timeout(20)
}

#[test]
fn planted_symlinks_never_redirect_a_dump() {
    let dir = temp_dir("planted");
    let victim = dir.join("victim");
    let victim_text = "the user's private file\n";
    std::fs::write(&victim, victim_text).unwrap();
    std::fs::set_permissions(&victim, PermissionsExt::from_mode(0o600)).unwrap();
    let mut d = Dumper::start(dump_env(run(dumper()), dir.join("dump-%p-%n.txt")));
    let pid = d.pid;
    let finals: Vec<PathBuf> = (1..=3)
        .map(|n| dir.join(format!("dump-{pid}-{n}.txt")))
        .collect();
    let old_tmps: Vec<PathBuf> = finals
        .iter()
        .map(|f| PathBuf::from(format!("{}.tmp.{pid}", f.display())))
        .collect();
    for p in finals.iter().chain(&old_tmps) {
        std::os::unix::fs::symlink(&victim, p).unwrap();
    }
    // Dumps 1 and 2 on signal (each awaited, so that they do not coalesce), 3 at exit.
    for n in 0..2 {
        d.say("signal");
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            let written = std::fs::symlink_metadata(&finals[n]).is_ok_and(|m| m.is_file())
                && whole_dump(
                    &std::fs::read_to_string(&finals[n]).unwrap_or_default(),
                    n as u64 + 1,
                );
            // Today's failure modes end the wait early: the victim was written, or the
            // planted temporary name was renamed away.
            let hijacked = std::fs::read_to_string(&victim).ok().as_deref() != Some(victim_text)
                || std::fs::symlink_metadata(&old_tmps[n]).is_err();
            if written || hijacked {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let out = d.finish();
    assert_passed("dumper", &out);
    let mut problems = Vec::new();
    let now = std::fs::read(&victim).unwrap();
    if now != victim_text.as_bytes() {
        problems.push(format!(
            "victim overwritten ({} bytes now: {:?}...)",
            now.len(),
            String::from_utf8_lossy(&now[..now.len().min(60)])
        ));
    }
    if mode_of(&victim) != 0o600 {
        problems.push(format!("victim mode now {:o}", mode_of(&victim)));
    }
    for (i, f) in finals.iter().enumerate() {
        let n = i as u64 + 1;
        let meta = std::fs::symlink_metadata(f).unwrap();
        if !meta.is_file() {
            problems.push(format!(
                "{} is not a regular file ({:?})",
                f.display(),
                meta.file_type()
            ));
            continue;
        }
        if mode_of(f) != 0o600 {
            problems.push(format!("{} has mode {:o}", f.display(), mode_of(f)));
        }
        if !whole_dump(&std::fs::read_to_string(f).unwrap(), n) {
            problems.push(format!("{} does not hold whole dump #{n}", f.display()));
        }
    }
    // Nothing else is left behind (no temporary file).
    let known: Vec<_> = finals.iter().chain(&old_tmps).chain([&victim]).collect();
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if !known.contains(&&p) {
            problems.push(format!("left behind: {}", p.display()));
        }
    }
    assert!(
        problems.is_empty(),
        "{}\n--- stderr\n{}",
        problems.join("\n"),
        out.stderr.chars().take(3000).collect::<String>()
    );
}

#[test]
fn dump_files_are_private_whatever_the_umask() {
    let dir = temp_dir("umask");
    let mut problems = Vec::new();
    for (name, r) in [
        ("u000", run(dumper()).args(["umask", "000"])),
        ("u022", run(dumper()).args(["umask", "022"])),
        // Set before the program (and the library) starts.
        (
            "sh000",
            run("sh")
                .args(["-c", "umask 000; exec \"$0\""])
                .arg(dumper()),
        ),
    ] {
        let out = dump_env(r, dir.join(format!("{name}-%n.txt")))
            .stdin(b"exit\n")
            .output();
        assert_passed(name, &out);
        let f = dir.join(format!("{name}-1.txt"));
        match std::fs::symlink_metadata(&f) {
            Err(e) => problems.push(format!("{}: {e}; stderr {}", f.display(), out.stderr)),
            Ok(_) if mode_of(&f) != 0o600 => problems.push(format!(
                "{} has mode {:o}, want 600",
                f.display(),
                mode_of(&f)
            )),
            Ok(_) => {}
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn dump_into_a_fifo_is_written_into_it() {
    let dir = temp_dir("fifo");
    let fifo = dir.join("stats.fifo");
    let st = run("mkfifo").glibc().arg(&fifo).output();
    assert_passed("mkfifo", &st);
    // Opened before the program starts, non-blocking: the library's open for writing
    // finds a reader; EOF after data means the writer is done.
    let mut reader = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&fifo)
        .unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let done2 = done.clone();
    let t = std::thread::spawn(move || {
        let mut got = Vec::new();
        let mut done_at = None;
        let mut buf = [0u8; 65536];
        loop {
            match reader.read(&mut buf) {
                Ok(0) if !got.is_empty() => break,
                Ok(n) if n > 0 => {
                    got.extend_from_slice(&buf[..n]);
                    continue;
                }
                _ => {}
            }
            if done2.load(Ordering::Relaxed) {
                let at = *done_at.get_or_insert_with(Instant::now);
                if at.elapsed() > Duration::from_secs(2) {
                    break;
                }
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        got
    });
    let out = dump_env(run(dumper()), &fifo).stdin(b"exit\n").output();
    done.store(true, Ordering::Relaxed);
    let got = String::from_utf8_lossy(&t.join().unwrap()).into_owned();
    assert_passed("dumper", &out);
    let meta = std::fs::symlink_metadata(&fifo).unwrap();
    assert!(
        meta.file_type().is_fifo(),
        "the FIFO was replaced by {:?}",
        meta.file_type()
    );
    assert!(
        whole_dump(&got, 1),
        "read from the FIFO: {:?}\n--- stderr\n{}",
        got.chars().take(300).collect::<String>(),
        out.stderr
    );
}

/// `JVMALLOC_STATS_FILE=/dev/stdout`: the at-exit dump lands on the program's stdout. As
/// root (where `/dev` is writable and a library that replaced the name would break
/// `/dev/stdout` for the whole machine), the program runs in a private mount namespace
/// whose `/dev` is a scratch tmpfs.
#[test]
fn dump_to_dev_stdout_goes_to_stdout() {
    let dir = temp_dir("devstdout");
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let out = if root {
        let probe = run("unshare")
            .glibc()
            .args(["--mount", "--propagation", "private", "true"])
            .timeout(20)
            .output();
        if probe.code != Some(0) {
            eprintln!(
                "note: skipped: root, but no private mount namespace ({})",
                probe.stderr
            );
            return;
        }
        let scratch = dir.join("dev");
        std::fs::create_dir(&scratch).unwrap();
        let script = r#"set -e
            mount -t tmpfs -o mode=755 jvmalloc-test-dev "$2"
            for n in null zero random urandom; do
                touch "$2/$n"; mount --bind "/dev/$n" "$2/$n"
            done
            ln -s /proc/self/fd/0 "$2/stdin"
            ln -s /proc/self/fd/1 "$2/stdout"
            ln -s /proc/self/fd/2 "$2/stderr"
            mount --bind "$2" /dev
            exec env LD_PRELOAD="$1" EXPECT_JVMALLOC=1 "$3""#;
        dump_env(run("unshare").glibc(), "/dev/stdout")
            .args([
                "--mount",
                "--propagation",
                "private",
                "sh",
                "-c",
                script,
                "sh",
            ])
            .arg(lib())
            .arg(&scratch)
            .arg(dumper())
            .stdin(b"exit\n")
            .output()
    } else {
        dump_env(run(dumper()), "/dev/stdout")
            .stdin(b"exit\n")
            .output()
    };
    assert!(
        std::fs::symlink_metadata("/dev/stdout").is_ok_and(|m| m.file_type().is_symlink()),
        "the machine's /dev/stdout is no longer a symlink"
    );
    assert_passed("dumper", &out);
    // The dump is written at exit, before stdio flushes the program's own buffered lines.
    let start = out.stdout.find("=== jvmalloc statistics #1 ");
    let end = "=== end of jvmalloc statistics #1 ===\n";
    assert!(
        start.is_some_and(|i| out.stdout[i..].contains(end)),
        "no whole dump on stdout:\n--- stdout\n{}\n--- stderr\n{}",
        out.stdout,
        out.stderr
    );
    assert!(out.stdout.contains("dumper: ok"), "{}", out.stdout);
}

#[test]
fn non_utf8_directory_in_the_template_is_kept() {
    let dir = temp_dir("nonutf8");
    let sub = dir.join(OsStr::from_bytes(b"d\xff\xfe"));
    std::fs::create_dir(&sub).unwrap();
    let out = dump_env(run(dumper()), sub.join("dump-%n.txt"))
        .stdin(b"exit\n")
        .output();
    assert_passed("dumper", &out);
    let entries: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(entries, [sub.file_name().unwrap()], "{}", out.stderr);
    let f = sub.join("dump-1.txt");
    let text = std::fs::read_to_string(&f)
        .unwrap_or_else(|e| panic!("{}: {e}\n--- stderr\n{}", f.to_string_lossy(), out.stderr));
    assert!(whole_dump(&text, 1));
    assert!(out.jvmalloc_lines().is_empty(), "{}", out.stderr);
}

// ---------------------------------------------------------------------------------------
// 4. Secure mode

/// Removes what the secure-mode test installed, even when the test fails.
struct Installed(Vec<PathBuf>);

impl Drop for Installed {
    fn drop(&mut self) {
        for p in self.0.iter().rev() {
            if p.is_dir() {
                let _ = std::fs::remove_dir_all(p);
            } else {
                let _ = std::fs::remove_file(p);
            }
        }
    }
}

fn field<'a>(stdout: &'a str, key: &str) -> &'a str {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .unwrap_or_else(|| panic!("no {key} in {stdout}"))
}

#[test]
fn secure_mode_ignores_every_jvmalloc_variable() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!(
            "note: secure-mode test skipped: it needs root (to install a set-user-ID library)"
        );
        return;
    }
    let libdir = Path::new("/usr/lib/x86_64-linux-gnu");
    if !libdir.is_dir() || !Path::new("/usr/bin/setpriv").exists() {
        eprintln!(
            "note: secure-mode test skipped: no {} or no setpriv",
            libdir.display()
        );
        return;
    }
    // Copies left by a run that was killed (its Drop guard never ran).
    for e in std::fs::read_dir(libdir).unwrap().flatten() {
        let n = e.file_name().to_string_lossy().into_owned();
        if let Some(p) = n
            .strip_prefix("libjvmalloc-sectest-")
            .and_then(|r| r.strip_suffix(".so"))
        {
            if !Path::new(&format!("/proc/{p}")).exists() {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    let pid = std::process::id();
    let name = format!("libjvmalloc-sectest-{pid}.so");
    let installed = libdir.join(&name);
    let top = std::env::temp_dir().join(format!("jvmalloc-sectest-{pid}"));
    let _guard = Installed(vec![installed.clone(), top.clone()]);
    let _ = std::fs::remove_dir_all(&top);
    std::fs::copy(lib(), &installed).unwrap();
    std::fs::set_permissions(&installed, PermissionsExt::from_mode(0o4755)).unwrap();
    // The program: root:root, setgid, in a directory `nobody` can traverse.
    std::fs::create_dir(&top).unwrap();
    std::fs::set_permissions(&top, PermissionsExt::from_mode(0o755)).unwrap();
    let prog = top.join("secure");
    std::fs::copy(compile("hostile/secure", &[]), &prog).unwrap();
    std::os::unix::fs::chown(&prog, Some(0), Some(0)).unwrap();
    std::fs::set_permissions(&prog, PermissionsExt::from_mode(0o2755)).unwrap();
    let outs: Vec<PathBuf> = ["out-secure", "out-normal"]
        .iter()
        .map(|d| top.join(d))
        .collect();
    for d in &outs {
        std::fs::create_dir(d).unwrap();
        std::fs::set_permissions(d, PermissionsExt::from_mode(0o777)).unwrap();
    }
    let vars = |out_dir: &Path| {
        vec![
            format!("LD_PRELOAD={name}"),
            "JVMALLOC_VERBOSE=1".into(),
            "JVMALLOC_STATS_AT_EXIT=1".into(),
            "JVMALLOC_PROCESSES=*".into(),
            format!("JVMALLOC_STATS_FILE={}/dump-%p.txt", out_dir.display()),
        ]
    };

    // Control first: the same program and library, not setgid, as root: the variables
    // apply (this proves the setup loads the installed copy and that it would show).
    let mut r = run(compile("hostile/secure", &[])).glibc().timeout(20);
    for v in vars(&outs[1]) {
        let (k, val) = v.split_once('=').unwrap();
        r = r.env(k, val);
    }
    let out = r.output();
    assert_passed("control run", &out);
    assert_eq!(field(&out.stdout, "secure="), "0");
    assert_eq!(field(&out.stdout, "loaded="), "1");
    assert!(
        out.jvmalloc_lines()
            .iter()
            .any(|l| l.starts_with("jvmalloc: processes=") && l.contains(" arenas=")),
        "{}",
        out.stderr
    );
    assert!(
        field(&out.stdout, "threads=")
            .split(',')
            .any(|t| t == "jvmalloc"),
        "{}",
        out.stdout
    );
    assert_eq!(
        std::fs::read_dir(&outs[1]).unwrap().count(),
        1,
        "control dump file"
    );

    // As nobody, setgid root: AT_SECURE.
    let out = run("setpriv")
        .glibc()
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--",
            "env",
        ])
        .args(vars(&outs[0]))
        .arg(&prog)
        .timeout(20)
        .output();
    assert_passed("secure run", &out);
    assert_eq!(
        field(&out.stdout, "secure="),
        "1",
        "not AT_SECURE: is {} mounted nosuid?",
        top.display()
    );
    assert_eq!(
        field(&out.stdout, "loaded="),
        "1",
        "library not preloaded in secure mode"
    );
    let mut problems = Vec::new();
    if !out.jvmalloc_lines().is_empty() {
        problems.push(format!(
            "jvmalloc lines on stderr: {:?}",
            out.jvmalloc_lines()
        ));
    }
    let threads = field(&out.stdout, "threads=");
    if threads.split(',').any(|t| t == "jvmalloc") {
        problems.push(format!("a jvmalloc thread runs: {threads}"));
    }
    if out.stderr.contains("=== jvmalloc statistics #") {
        problems.push("a dump on stderr".into());
    }
    let files: Vec<_> = std::fs::read_dir(&outs[0])
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    if !files.is_empty() {
        problems.push(format!("dump files written: {files:?}"));
    }
    assert!(
        problems.is_empty(),
        "in secure mode:\n{}\n--- stdout\n{}\n--- stderr\n{}",
        problems.join("\n"),
        out.stdout,
        out.stderr.chars().take(2000).collect::<String>()
    );
}

// ---------------------------------------------------------------------------------------
// 5. JVMALLOC_MEMORY_LIMIT spellings

#[test]
fn memory_limit_spellings() {
    let hello = compile("hello", &[]);
    let mut problems = Vec::new();
    let verbose = |value: &str| {
        let out = run(&hello)
            .env("JVMALLOC_MEMORY_LIMIT", value)
            .env("JVMALLOC_VERBOSE", "1")
            .timeout(20)
            .output();
        assert_passed(value, &out);
        let lines: Vec<String> = out.jvmalloc_lines().iter().map(|l| l.to_string()).collect();
        let (config, warnings): (Vec<String>, Vec<String>) = lines
            .into_iter()
            .partition(|l| l.contains(" memory_limit="));
        assert_eq!(config.len(), 1, "{value:?}: {}", out.stderr);
        (config.into_iter().next().unwrap(), warnings)
    };
    for value in ["4gb", "4 GB", "4096 mb", "4096m", "4g", "4G", "4294967296"] {
        let (config, warnings) = verbose(value);
        if !config.contains("memory_limit=4294967296 (JVMALLOC_MEMORY_LIMIT)") {
            problems.push(format!("{value:?}: {config}"));
        }
        if !warnings.is_empty() {
            problems.push(format!("{value:?}: warned {warnings:?}"));
        }
    }
    let no_override = |config: &str| {
        !config.contains("(JVMALLOC_MEMORY_LIMIT)")
            && (config.contains("memory_limit=none") || config.contains("(cgroup)"))
    };
    for value in ["0", "-1"] {
        let (config, warnings) = verbose(value);
        if !no_override(&config) {
            problems.push(format!("{value:?} must mean no override: {config}"));
        }
        if !warnings.is_empty() {
            problems.push(format!("{value:?}: warned {warnings:?}"));
        }
    }
    let (config, warnings) = verbose("4096");
    if !no_override(&config) {
        problems.push(format!("\"4096\" must be refused: {config}"));
    }
    let hint = |w: &String| {
        w.starts_with("jvmalloc: JVMALLOC_MEMORY_LIMIT=\"4096\"")
            && w.contains("did you mean 4096m?")
    };
    if warnings.len() != 1 || !hint(&warnings[0]) {
        problems.push(format!(
            "\"4096\": want one warning with the hint, got {warnings:?}"
        ));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // The harness's own check: exactly one line without JVMALLOC_VERBOSE.
    assert_one_warning(
        &hello,
        "JVMALLOC_MEMORY_LIMIT",
        "4096",
        "did you mean 4096m?",
    );
}
