//! Shared by the integration tests: builds the release library once, compiles the programs
//! in `c-tests/` with the system C compiler, and runs programs with `LD_PRELOAD` of the
//! fresh `libjvmalloc.so` under a timeout, so a hang fails the test instead of the suite.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `target/` (next to `target/<profile>/deps/<test binary>`).
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.ancestors().nth(3).unwrap().to_path_buf()
}

/// Scratch directory for compiled test programs and outputs.
pub fn work_dir() -> PathBuf {
    let d = target_dir().join("c-tests");
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The release `libjvmalloc.so`, built (or brought up to date) once per test binary.
pub fn lib() -> &'static Path {
    static LIB: OnceLock<PathBuf> = OnceLock::new();
    LIB.get_or_init(|| build_release(&["--lib"], "libjvmalloc.so"))
}

/// Every JDK on the machine (`/usr/lib/jvm/*` with a `bin/java`, symbolic links folded),
/// oldest first by name; the JVM tests run under each, so that a change in HotSpot's
/// signals or trimming shows up. Falls back to `java` on the PATH when there is none.
pub fn jdks() -> Vec<PathBuf> {
    let mut homes: Vec<PathBuf> = std::fs::read_dir("/usr/lib/jvm")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.path().canonicalize().ok())
        .filter(|h| h.join("bin/java").is_file() && h.join("bin/jcmd").is_file())
        .collect();
    homes.sort();
    homes.dedup();
    if homes.is_empty() {
        let java = Command::new("sh")
            .args(["-c", "readlink -f \"$(command -v java)\""])
            .output()
            .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
            .unwrap_or_default();
        if let Some(home) = java.parent().and_then(Path::parent) {
            homes.push(home.to_path_buf());
        }
    }
    homes
}

/// The feature version (17, 25) of the JDK at `home`, from its `release` file.
pub fn jdk_version(home: &Path) -> u32 {
    let release = home.join("release");
    let text = std::fs::read_to_string(&release).unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("JAVA_VERSION=\""))
        .and_then(|v| v.split(['.', '"']).next()?.parse().ok())
        .unwrap_or_else(|| panic!("no JAVA_VERSION in {}", release.display()))
}

/// Compiles every `c-tests/jvm/*.java` once, with the oldest JDK's `javac` for its own
/// release so that the classes run on every JDK; returns the class directory.
pub fn java_classes() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let oldest = jdks().into_iter().min_by_key(|h| jdk_version(h)).unwrap();
        let out = work_dir().join("jvm-classes");
        std::fs::create_dir_all(&out).unwrap();
        let srcs: Vec<_> = std::fs::read_dir(root().join("c-tests/jvm"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "java"))
            .collect();
        run(oldest.join("bin/javac"))
            .glibc()
            .arg("--release")
            .arg(jdk_version(&oldest).to_string())
            // LastThread uses sun.misc.Signal on purpose: no warnings about it.
            .arg("-XDignore.symbol.file")
            .arg("-nowarn")
            .arg("-d")
            .arg(&out)
            .args(&srcs)
            .timeout(300)
            .output()
            .assert_ok();
        out
    })
    .clone()
}

/// Compiles `c-tests/<name>.c` (plus extra gcc arguments) into the work dir, once.
pub fn compile(name: &str, extra: &[&str]) -> PathBuf {
    static DONE: OnceLock<Mutex<HashMap<String, PathBuf>>> = OnceLock::new();
    let mut done = DONE.get_or_init(Default::default).lock().unwrap();
    if let Some(p) = done.get(name) {
        return p.clone();
    }
    let src = root().join("c-tests").join(format!("{name}.c"));
    let shared = extra.contains(&"-shared");
    // `hostile/fdreuse` builds `<work>/hostile/fdreuse` (or `<work>/hostile/libfdreuse.so`).
    let (dir, base) = match name.rsplit_once('/') {
        Some((d, b)) => (work_dir().join(d), b),
        None => (work_dir(), name),
    };
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join(if shared {
        format!("lib{base}.so")
    } else {
        base.to_string()
    });
    let output = Command::new("gcc")
        .args(["-O1", "-g", "-Wall", "-fno-builtin", "-pthread"])
        .args(["-Wno-alloc-size-larger-than", "-Wno-use-after-free"])
        .args(["-Wno-deprecated-declarations"])
        .arg("-I")
        .arg(root().join("c-tests"))
        .arg("-o")
        .arg(&out)
        .arg(&src)
        .args(extra)
        .arg("-ldl")
        .output()
        .expect("run gcc");
    assert!(
        output.status.success(),
        "gcc {name}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    done.insert(name.to_string(), out.clone());
    out
}

/// A finished program: exit code (None when killed by a signal), stdout and stderr.
#[derive(Debug)]
pub struct Output {
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// Asserts exit status 0, printing everything the program said otherwise.
    pub fn assert_ok(&self) -> &Self {
        assert!(
            self.code == Some(0),
            "exit {:?} signal {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.code,
            self.signal,
            self.stdout,
            self.stderr
        );
        self
    }

    /// The stderr lines written by jvmalloc itself.
    pub fn jvmalloc_lines(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .filter(|l| l.starts_with("jvmalloc: "))
            .collect()
    }
}

/// Builder for running a program, with `LD_PRELOAD` of the library unless `glibc()`.
pub struct Run {
    cmd: Command,
    timeout: Duration,
    preload: bool,
    stdin: Option<Vec<u8>>,
}

pub fn run(program: impl AsRef<std::ffi::OsStr>) -> Run {
    let mut cmd = Command::new(program);
    // Tests set the variables they mean; none leak in from the caller.
    for (k, _) in std::env::vars() {
        if k.starts_with("JVMALLOC_") || k == "LD_PRELOAD" || k.starts_with("_RJEM_") {
            cmd.env_remove(k);
        }
    }
    // The test programs are not called `java`: put every process in scope (the jvmalloc
    // thread, the signal handler, dumps) unless a test asks for the default scope.
    cmd.env("JVMALLOC_PROCESSES", "*");
    Run {
        cmd,
        timeout: Duration::from_secs(120),
        preload: true,
        stdin: None,
    }
}

impl Run {
    pub fn arg(mut self, a: impl AsRef<std::ffi::OsStr>) -> Self {
        self.cmd.arg(a);
        self
    }
    pub fn args<I: IntoIterator<Item = S>, S: AsRef<std::ffi::OsStr>>(mut self, a: I) -> Self {
        self.cmd.args(a);
        self
    }
    pub fn env(mut self, k: &str, v: impl AsRef<std::ffi::OsStr>) -> Self {
        self.cmd.env(k, v);
        self
    }
    pub fn dir(mut self, d: impl AsRef<Path>) -> Self {
        self.cmd.current_dir(d);
        self
    }
    pub fn timeout(mut self, secs: u64) -> Self {
        self.timeout = Duration::from_secs(secs);
        self
    }
    pub fn stdin(mut self, data: &[u8]) -> Self {
        self.stdin = Some(data.to_vec());
        self
    }
    /// Leave `JVMALLOC_PROCESSES` unset: the library's default scope (only `java`).
    pub fn default_scope(mut self) -> Self {
        self.cmd.env_remove("JVMALLOC_PROCESSES");
        self
    }
    /// Run under plain glibc malloc (no preload).
    pub fn glibc(mut self) -> Self {
        self.preload = false;
        self
    }

    /// Starts the program and returns the child (stdin/stdout/stderr piped, own process
    /// group).
    pub fn spawn(self) -> std::process::Child {
        self.spawn_to(Stdio::piped())
    }

    /// Starts the program with stderr going to a file (as a JVM's does to
    /// `taskmanager.out`).
    pub fn spawn_with_stderr(self, path: &Path) -> std::process::Child {
        self.spawn_to(std::fs::File::create(path).unwrap().into())
    }

    fn spawn_to(mut self, stderr: Stdio) -> std::process::Child {
        if self.preload {
            self.cmd
                .env("LD_PRELOAD", lib())
                .env("EXPECT_JVMALLOC", "1");
        }
        self.cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .process_group(0)
            .spawn()
            .expect("spawn")
    }

    /// Runs to completion; kills the whole process group and panics on timeout.
    pub fn output(self) -> Output {
        let timeout = self.timeout;
        let stdin = self.stdin.clone();
        let mut child = self.spawn();
        if let (Some(data), Some(mut w)) = (stdin, child.stdin.take()) {
            std::thread::spawn(move || {
                use std::io::Write;
                let _ = w.write_all(&data);
            });
        } else {
            drop(child.stdin.take());
        }
        wait_with_timeout(child, timeout)
    }
}

/// Collects a child's output, killing its process group if it outlives `timeout`.
pub fn wait_with_timeout(mut child: std::process::Child, timeout: Duration) -> Output {
    let mut so = child.stdout.take().unwrap();
    let mut se = child.stderr.take().unwrap();
    let t1 = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = so.read_to_end(&mut s);
        s
    });
    let t2 = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = se.read_to_end(&mut s);
        s
    });
    let start = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if start.elapsed() > timeout {
            let stacks = stacks_of_group(child.id());
            kill_group(child.id());
            let _ = child.wait();
            let out = String::from_utf8_lossy(&t1.join().unwrap()).into_owned();
            let err = String::from_utf8_lossy(&t2.join().unwrap()).into_owned();
            panic!(
                "timed out after {timeout:?}\n--- stdout\n{out}\n--- stderr\n{err}\n--- stacks\n{stacks}"
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    // Leftover background children (none expected) must not keep the pipes open forever.
    kill_group(child.id());
    use std::os::unix::process::ExitStatusExt;
    Output {
        code: status.code(),
        signal: status.signal(),
        stdout: String::from_utf8_lossy(&t1.join().unwrap()).into_owned(),
        stderr: String::from_utf8_lossy(&t2.join().unwrap()).into_owned(),
    }
}

/// Every thread's stack of every process in group `pgid` (gdb), so that a hang in CI says
/// where it hangs. The processes are left stopped only while gdb is attached.
fn stacks_of_group(pgid: u32) -> String {
    let mut pids: Vec<u32> = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .filter(|pid: &u32| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // Fields after the parenthesised command: state ppid pgrp ...
            let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
            rest.split_whitespace().nth(2) == Some(&pgid.to_string())
        })
        .collect();
    pids.sort();
    let mut all = String::new();
    for pid in pids.into_iter().take(6) {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        let bt = Command::new("timeout")
            .args(["30", "gdb", "-nx", "-batch", "-p", &pid.to_string()])
            .args(["-ex", "thread apply all bt 30"])
            .stdin(Stdio::null())
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_else(|e| format!("(gdb: {e})\n"));
        let frames: String = bt
            .lines()
            .filter(|l| l.starts_with('#') || l.starts_with("Thread "))
            .take(200)
            .map(|l| format!("{}\n", l.chars().take(160).collect::<String>()))
            .collect();
        all += &format!("pid {pid}: {cmdline}\n{frames}");
    }
    all
}

pub fn kill_group(pid: u32) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{pid}")])
        .stderr(Stdio::null())
        .status();
}

/// A fresh empty directory under the work dir, `NAME-PID`. It stays after the test (to be
/// looked at when one fails); the ones of earlier runs, whose process is gone, go now.
pub fn temp_dir(name: &str) -> PathBuf {
    let prefix = format!("{name}-");
    for e in std::fs::read_dir(work_dir())
        .into_iter()
        .flatten()
        .flatten()
    {
        let file = e.file_name();
        let Some(pid) = file.to_str().and_then(|f| f.strip_prefix(&prefix)) else {
            continue;
        };
        if pid.parse::<u32>().is_ok() && !Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
    let d = work_dir().join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Runs `program` with `var=value`: it must succeed, and stderr must have exactly one
/// jvmalloc line, naming the variable and its value and containing `says`. Returns it.
pub fn assert_one_warning(program: &Path, var: &str, value: &str, says: &str) -> String {
    let out = run(program).env(var, value).output();
    out.assert_ok();
    let l = out.jvmalloc_lines();
    assert_eq!(l.len(), 1, "{var}={value:?}: {}", out.stderr);
    assert!(l[0].starts_with(&format!("jvmalloc: {var}=\"")), "{}", l[0]);
    assert!(l[0].contains(says), "{var}={value:?}: {}", l[0]);
    // Control characters are shown escaped, never written raw to the terminal.
    assert!(!l[0].contains('\u{1b}'), "{}", l[0]);
    assert!(!out.stderr.contains("<jemalloc>"), "{}", out.stderr);
    l[0].to_string()
}

/// The child's stdout, line by line, over a channel (read on a thread of its own), so that a
/// test can wait for a line with a timeout.
#[allow(dead_code)] // Not every test binary talks to a long-running program.
pub fn stdout_lines(child: &mut std::process::Child) -> std::sync::mpsc::Receiver<String> {
    let out = child.stdout.take().expect("stdout piped");
    let (tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for l in std::io::BufReader::new(out).lines() {
            let Ok(l) = l else { break };
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    lines
}

/// The release `jvmalloc` command (workspace member `cli/`), built (or brought up to date)
/// once per test binary into the same target dir as [`lib`].
pub fn jvmalloc_cmd() -> &'static Path {
    static CMD: OnceLock<PathBuf> = OnceLock::new();
    CMD.get_or_init(|| build_release(&["-p", "jvmalloc-cli"], "jvmalloc"))
}

/// Runs `cargo build --release <args>` into the test target dir; returns
/// `target/release/<artifact>`, which must exist.
fn build_release(args: &[&str], artifact: &str) -> PathBuf {
    build_release_into(&target_dir(), args, artifact)
}

fn build_release_into(dir: &Path, args: &[&str], artifact: &str) -> PathBuf {
    let st = Command::new(env!("CARGO"))
        .args(["build", "--release"])
        .args(args)
        .arg("--target-dir")
        .arg(dir)
        .current_dir(root())
        .status()
        .expect("run cargo build");
    assert!(st.success(), "cargo build --release {args:?} failed");
    let out = dir.join("release").join(artifact);
    assert!(out.exists(), "{} missing", out.display());
    out
}

/// `libjvmalloc.so` built without the `profiling` feature (statistics only), in a target
/// dir of its own so that it never replaces [`lib`]. Building it rebuilds jemalloc.
#[allow(dead_code)] // Only the profile tests need it.
pub fn lib_without_profiling() -> &'static Path {
    static LIB: OnceLock<PathBuf> = OnceLock::new();
    LIB.get_or_init(|| {
        build_release_into(
            &target_dir().join("noprof"),
            &[
                "-p",
                "jvmalloc",
                "--lib",
                "--no-default-features",
                "--features",
                "stats",
            ],
            "libjvmalloc.so",
        )
    })
}
