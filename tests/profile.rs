//! Allocation-site profiles (`jvmalloc profile`, docs/profiling.md), taken from running
//! processes as an operator would:
//! - C (`c-tests/profile/leak.c`): a thread named `leaker` keeps memory through
//!   `leaksite_keep` in `libleaksite.so` while `churner` allocates and frees through
//!   `leaksite_churn`; the profile names the function, library and thread, with estimated
//!   bytes near what was kept; `diff` of two profiles ranks the leak first; sampling is
//!   turned on and off at runtime; 500 threads; a forked child; bad input.
//! - JVMs (`c-tests/jvm/ProfileLeak.java`, every JDK here): a Deflater leak and a direct
//!   buffer leak rank above the threads that churn both.
//!
//! The tests sample every 64 KiB on average rather than the default 512 KiB, so that the
//! leaks (tens of MiB) carry hundreds of samples and the ±30 % checks are many standard
//! deviations wide.

mod common;
use common::*;
use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command};
use std::sync::mpsc;
use std::time::Duration;

const SAMPLE: &str = "65536";
/// Sampling from the start (the default is armed but off).
const ON: &[(&str, &str)] = &[("JVMALLOC_PROFILE", "on")];
const MIB: f64 = 1024.0 * 1024.0;

/// A running test program that answers commands on stdin with lines on stdout.
struct Program {
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::Receiver<String>,
    pid: u32,
    stderr: PathBuf,
    label: String,
}

impl Program {
    fn start(r: Run, dir: &Path, label: &str) -> Program {
        let stderr = dir.join("stderr.txt");
        let mut child = r.spawn_with_stderr(&stderr);
        let stdin = child.stdin.take().unwrap();
        let lines = stdout_lines(&mut child);
        let mut p = Program {
            child,
            stdin,
            lines,
            pid: 0,
            stderr,
            label: label.to_string(),
        };
        let ready = p.line("ready");
        p.pid = ready["ready ".len()..].trim().parse().unwrap();
        p
    }

    fn line(&mut self, prefix: &str) -> String {
        match self.lines.recv_timeout(Duration::from_secs(120)) {
            Ok(l) if l.starts_with(prefix) => l,
            other => panic!(
                "{}: wanted a {prefix:?} line, got {other:?}\n{}",
                self.label,
                std::fs::read_to_string(&self.stderr).unwrap_or_default()
            ),
        }
    }

    /// Sends a command; returns its `ok ...` answer.
    fn cmd(&mut self, c: &str) -> String {
        writeln!(self.stdin, "{c}").unwrap();
        self.stdin.flush().unwrap();
        self.line("ok")
    }

    /// The number after `key=` in an answer.
    fn figure(answer: &str, key: &str) -> f64 {
        answer
            .split_whitespace()
            .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
            .unwrap_or_else(|| panic!("no {key}= in {answer:?}"))
            .parse()
            .unwrap()
    }
}

impl Drop for Program {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            kill_group(self.child.id());
            let _ = self.child.wait();
        }
    }
}

/// `jvmalloc <args>`: (exit code, stdout, stderr).
fn jvmalloc(args: &[&str]) -> (Option<i32>, String, String) {
    let o = Command::new(jvmalloc_cmd())
        .args(args)
        .output()
        .expect("run jvmalloc");
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Takes a JSON profile of `pid` into `file` and returns it parsed.
fn profile_json(pid: u32, file: &Path, extra: &[&str]) -> Value {
    let pid = pid.to_string();
    let f = file.to_str().unwrap();
    let mut args = vec!["profile", &pid, "--format", "json", "-o", f];
    args.extend_from_slice(extra);
    let (code, out, err) = jvmalloc(&args);
    assert_eq!(code, Some(0), "jvmalloc profile: {out}\n{err}");
    serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap()
}

fn bytes(v: &Value) -> f64 {
    v["bytes"].as_f64().unwrap()
}

fn row<'a>(p: &'a Value, table: &str, name: &str) -> Option<&'a Value> {
    p[table]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"].as_str() == Some(name))
}

fn near(estimate: f64, truth: f64, pct: f64) -> bool {
    (estimate - truth).abs() <= truth * pct / 100.0
}

/// The C program with its library, built once.
fn c_program() -> PathBuf {
    let lib = compile("profile/leaksite", &["-shared", "-fPIC"]);
    let dir = lib.parent().unwrap().to_str().unwrap().to_string();
    compile(
        "profile/leak",
        &[
            &format!("-L{dir}"),
            "-lleaksite",
            &format!("-Wl,-rpath,{dir}"),
        ],
    )
}

fn start_c(dir: &Path, label: &str, env: &[(&str, &str)]) -> Program {
    let mut r = run(c_program()).env("JVMALLOC_PROFILE_SAMPLE", SAMPLE);
    for (k, v) in env {
        r = r.env(k, v);
    }
    Program::start(r, dir, label)
}

#[test]
fn c_leak_is_named_by_function_library_and_thread() {
    let dir = temp_dir("profile-c");
    let mut p = start_c(&dir, "c leak", ON);
    let kept = Program::figure(&p.cmd("leak 512"), "kept");
    std::thread::sleep(Duration::from_millis(300));
    let prof = profile_json(p.pid, &dir.join("p1.json"), &[]);
    assert_eq!(prof["schema"], "jvmalloc-profile");
    assert_eq!(prof["active"], true);

    // By library and thread: the leak is first, with about what was kept.
    let lib = &prof["by_library"][0];
    assert_eq!(lib["name"], "libleaksite.so", "{:#}", prof["by_library"]);
    assert!(near(bytes(lib), kept, 30.0), "{} vs {kept}", bytes(lib));
    let leaker = row(&prof, "by_thread", "leaker").expect("a leaker row");
    assert!(near(bytes(leaker), kept, 30.0), "{leaker} vs {kept}");
    assert_eq!(prof["by_thread"][0]["name"], "leaker");

    // The top site: the leaking function, its library and thread, frames innermost first.
    let site = &prof["sites"][0];
    assert_eq!(site["thread"], "leaker", "{site:#}");
    assert_eq!(site["library"], "libleaksite.so");
    assert!(site["entry"].is_null());
    let frames: Vec<&str> = site["frames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["label"].as_str().unwrap())
        .collect();
    let keep = frames
        .iter()
        .position(|f| f.starts_with("leaksite_keep"))
        .unwrap_or_else(|| panic!("no leaksite_keep in {frames:?}"));
    let leaker_fn = frames.iter().position(|f| f.starts_with("leaker"));
    assert!(leaker_fn.is_some_and(|l| l > keep), "{frames:?}");
    assert!(
        !frames.iter().any(|f| f.contains("prof_")),
        "allocator frames left: {frames:?}"
    );
    for s in prof["sites"].as_array().unwrap() {
        if s["thread"] == "churner" {
            assert!(
                bytes(s) < bytes(site) / 4.0,
                "a churn site ranks near the leak: {s:#}"
            );
        }
    }
    let sigma = prof["total"]["sigma"].as_f64().unwrap();
    assert!(
        sigma > 0.0 && sigma < 0.1 * bytes(&prof["total"]),
        "{:#}",
        prof["total"]
    );

    // Text, collapsed stacks, flame graph.
    let pid = p.pid.to_string();
    let (code, text, err) = jvmalloc(&["profile", &pid]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        text.contains("by library") && text.contains("libleaksite.so"),
        "{text}"
    );
    assert!(
        text.contains("leaksite_keep") && text.contains("thread leaker"),
        "{text}"
    );
    assert!(text.contains("± "), "{text}");
    let (code, collapsed, err) = jvmalloc(&["profile", &pid, "--format", "collapsed"]);
    assert_eq!(code, Some(0), "{err}");
    let line = collapsed
        .lines()
        .find(|l| l.contains("leaksite_keep"))
        .unwrap_or_else(|| panic!("{collapsed}"));
    let (stack, n) = line.rsplit_once(' ').unwrap();
    assert!(
        n.parse::<u64>().unwrap() > 0 && stack.contains(';'),
        "{line}"
    );
    assert!(
        stack.find("leaker").unwrap() < stack.find("leaksite_keep").unwrap(),
        "collapsed stacks go outermost first: {line}"
    );
    let svg = dir.join("p.svg");
    let (code, _, err) = jvmalloc(&[
        "profile",
        &pid,
        "--format",
        "svg",
        "-o",
        svg.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{err}");
    let svg = std::fs::read_to_string(&svg).unwrap();
    assert!(
        svg.starts_with("<?xml") && svg.contains("leaksite_keep"),
        "{}",
        &svg[..200.min(svg.len())]
    );

    // Dumps and metrics carry the sampled figures too.
    let (code, dump, err) = jvmalloc(&["dump", &pid, "--format", "json"]);
    assert_eq!(code, Some(0), "{err}");
    let dump: Value = serde_json::from_str(&dump).unwrap();
    assert_eq!(
        dump["profile"]["by_thread"][0]["name"], "leaker",
        "{:#}",
        dump["profile"]
    );
    assert_eq!(dump["profile"]["by_library"][0]["name"], "libleaksite.so");
    assert!(near(bytes(&dump["profile"]["by_thread"][0]), kept, 30.0));
    let (code, text, _) = jvmalloc(&["dump", &pid]);
    assert_eq!(code, Some(0));
    let by_thread = text
        .find("live native memory by allocating thread")
        .unwrap_or_else(|| panic!("{text}"));
    assert!(by_thread < text.find("\nthreads:").unwrap(), "{text}");
    let (code, metrics, _) = jvmalloc(&["metrics", &pid]);
    assert_eq!(code, Some(0));
    assert!(
        metrics.contains("jvmalloc_profile_sampling_active 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("jvmalloc_profile_live_bytes{library=\"libleaksite.so\"} "),
        "{metrics}"
    );

    // Growth: after 16 MiB more, the leak ranks first.
    let kept2 = Program::figure(&p.cmd("leak 256"), "kept");
    std::thread::sleep(Duration::from_millis(300));
    let p2 = dir.join("p2.json");
    profile_json(p.pid, &p2, &[]);
    let (code, diff, err) = jvmalloc(&[
        "diff",
        dir.join("p1.json").to_str().unwrap(),
        p2.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{err}");
    let after = |title: &str| -> String {
        let i = diff
            .find(title)
            .unwrap_or_else(|| panic!("no {title:?} in {diff}"));
        diff[i..].lines().nth(1).unwrap().to_string()
    };
    assert!(after("by library").contains("libleaksite.so"), "{diff}");
    assert!(after("by allocating thread").contains("leaker"), "{diff}");
    let first = after("stacks by growth");
    assert!(
        first.contains("thread leaker") && first.contains("leaksite_keep"),
        "{diff}"
    );
    let grown: f64 = first.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert!(
        near(grown * MIB, kept2 - kept, 30.0),
        "{first} vs {}",
        kept2 - kept
    );
    p.cmd("quit");
}

#[test]
fn sampling_starts_and_stops_at_runtime() {
    let dir = temp_dir("profile-startstop");
    // The default: armed, not sampling.
    let mut p = start_c(&dir, "start/stop", &[]);
    let pid = p.pid.to_string();
    p.cmd("leak 256");
    let prof = profile_json(p.pid, &dir.join("off.json"), &[]);
    assert_eq!(prof["active"], false);
    assert!(row(&prof, "by_thread", "leaker").is_none(), "{prof:#}");
    let (code, text, _) = jvmalloc(&["profile", &pid]);
    assert_eq!(code, Some(0));
    assert!(text.contains("INACTIVE"), "{text}");

    let (code, out, err) = jvmalloc(&["profile", &pid, "--start"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(out.starts_with("sampling active (was inactive)"), "{out}");
    let before = Program::figure(&p.cmd("leak 256"), "kept");
    let prof = profile_json(p.pid, &dir.join("on.json"), &[]);
    assert_eq!(prof["active"], true);
    let counted = bytes(row(&prof, "by_thread", "leaker").expect("leaker after --start"));
    assert!(near(counted, 256.0 * 65536.0, 30.0), "{counted}");

    let (code, out, _) = jvmalloc(&["profile", &pid, "--stop"]);
    assert_eq!(code, Some(0));
    assert!(out.starts_with("sampling inactive (was active)"), "{out}");
    let after = Program::figure(&p.cmd("leak 256"), "kept");
    assert!(after > before);
    let prof = profile_json(p.pid, &dir.join("stopped.json"), &[]);
    assert_eq!(prof["active"], false);
    let still = bytes(row(&prof, "by_thread", "leaker").unwrap());
    // What was sampled stays until freed; nothing new is counted.
    assert!(near(still, counted, 5.0), "{still} vs {counted}");
    p.cmd("quit");
}

#[test]
fn five_hundred_threads_and_a_forked_child() {
    let dir = temp_dir("profile-threads");
    let mut p = start_c(&dir, "threads", ON);
    let kept = Program::figure(&p.cmd("leak 256"), "kept");
    p.cmd("threads 500");
    let prof = profile_json(p.pid, &dir.join("threads.json"), &[]);
    let workers =
        row(&prof, "by_thread", "worker-N").unwrap_or_else(|| panic!("{:#}", prof["by_thread"]));
    assert!(
        near(bytes(workers), 500.0 * 4.0 * 16384.0, 30.0),
        "{workers}"
    );

    // The child inherits the parent's live samples (its copy of the memory is live too).
    let child: u32 = Program::figure(&p.cmd("fork"), "child") as u32;
    let mut prof = None;
    for _ in 0..50 {
        // The child starts its jvmalloc thread with its first thread: give it a moment.
        let file = dir.join("child.json");
        let (code, _, _) = jvmalloc(&[
            "profile",
            &child.to_string(),
            "--format",
            "json",
            "-o",
            file.to_str().unwrap(),
        ]);
        if code == Some(0) {
            prof = Some(
                serde_json::from_str::<Value>(&std::fs::read_to_string(file).unwrap()).unwrap(),
            );
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let prof = prof.expect("a profile of the forked child");
    assert_eq!(prof["pid"].as_u64(), Some(u64::from(child)));
    let leaker = bytes(row(&prof, "by_thread", "leaker").expect("inherited samples"));
    assert!(near(leaker, kept, 30.0), "{leaker} vs {kept}");
    p.cmd("quit");
}

#[test]
fn bad_input_gets_one_clear_line() {
    let dir = temp_dir("profile-bad");
    let one_line = |args: &[&str], says: &str| {
        let (code, out, err) = jvmalloc(args);
        assert_eq!(code, Some(1), "{args:?}: {out}\n{err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(
            err.starts_with("jvmalloc: ") && err.contains(says),
            "{args:?}: {err}"
        );
    };

    // A process without the library.
    let mut sleeper = run("sleep").glibc().arg("30").spawn();
    one_line(
        &["profile", &sleeper.id().to_string()],
        "does not have jvmalloc loaded",
    );
    let _ = sleeper.kill();
    let _ = sleeper.wait();

    // Profiling not armed.
    let mut p = start_c(&dir, "never", &[("JVMALLOC_PROFILE", "never")]);
    let pid = p.pid.to_string();
    one_line(&["profile", &pid], "not armed");
    one_line(&["profile", &pid, "--start"], "not armed");
    p.cmd("quit");

    // A library built without profiling.
    let r = run(c_program())
        .glibc()
        .env("LD_PRELOAD", lib_without_profiling())
        .env("JVMALLOC_PROFILE", "on");
    let mut p = Program::start(r, &dir, "not built");
    let pid = p.pid.to_string();
    one_line(&["profile", &pid], "built without profiling");
    one_line(&["profile", &pid, "--start"], "built without profiling");
    p.cmd("quit");

    // A truncated profile file.
    let mut p = start_c(&dir, "truncated", ON);
    p.cmd("leak 16");
    let good = dir.join("good.json");
    profile_json(p.pid, &good, &[]);
    let text = std::fs::read_to_string(&good).unwrap();
    let cut = dir.join("cut.json");
    std::fs::write(&cut, &text[..text.len() / 2]).unwrap();
    one_line(
        &["diff", good.to_str().unwrap(), cut.to_str().unwrap()],
        "not a whole jvmalloc profile",
    );
    p.cmd("quit");

    // An ELF file gone since it was loaded: one warning, frames as lib.so+0xOFFSET.
    let lib = compile("profile/leaksite", &["-shared", "-fPIC"]);
    let copy_dir = dir.join("libcopy");
    std::fs::create_dir_all(&copy_dir).unwrap();
    let copy = copy_dir.join("libleaksite.so");
    std::fs::copy(&lib, &copy).unwrap();
    let r = run(c_program())
        .env("JVMALLOC_PROFILE_SAMPLE", SAMPLE)
        .env("JVMALLOC_PROFILE", "on")
        .env("LD_LIBRARY_PATH", &copy_dir);
    let mut p = Program::start(r, &dir, "deleted lib");
    p.cmd("leak 64");
    std::fs::remove_file(&copy).unwrap();
    let out = dir.join("deleted.json");
    let (code, _, err) = jvmalloc(&[
        "profile",
        &p.pid.to_string(),
        "--format",
        "json",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{err}");
    let warnings: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("libleaksite.so"))
        .collect();
    assert_eq!(warnings.len(), 1, "{err}");
    let prof: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let labels = prof["sites"][0]["frames"].to_string();
    assert!(labels.contains("libleaksite.so+0x"), "{labels}");
    p.cmd("quit");
}

/// A JVM leaking Deflaters and direct buffers while other threads churn both.
#[test]
fn jvm_leaks_rank_above_churn() {
    for jdk in jdks() {
        let label = format!("jdk {}", jdk_version(&jdk));
        let dir = temp_dir(&format!("profile-jvm-{}", jdk_version(&jdk)));
        let r = run(jdk.join("bin/java"))
            .env("JVMALLOC_PROFILE_SAMPLE", SAMPLE)
            .env("JVMALLOC_PROFILE", "on")
            .args(["-Xmx256m", "-Xmn16m", "-XX:MaxDirectMemorySize=1g", "-cp"])
            .arg(java_classes())
            .arg("ProfileLeak");
        let mut j = Program::start(r, &dir, &label);
        let a = j.cmd("leak 128 32");
        let deflaters = Program::figure(&a, "deflaters");
        let direct = Program::figure(&a, "direct_bytes");
        // zlib's deflate state at the default level and window: window 64 KiB, prev 64 KiB,
        // head 64 KiB, pending buffer 64 KiB, the state itself about 6 KiB.
        let per_deflater = 4.0 * 65536.0 + 6.0 * 1024.0;
        std::thread::sleep(Duration::from_secs(1));
        // Name the Java frames too.
        let jcmd = Command::new(jdk.join("bin/jcmd"))
            .args([&j.pid.to_string(), "Compiler.perfmap"])
            .output()
            .unwrap();
        assert!(jcmd.status.success(), "{label}: jcmd: {jcmd:?}");
        let p1 = dir.join("p1.json");
        let prof = profile_json(j.pid, &p1, &[]);
        let entries = &prof["by_entry"];
        let deflate_entry = "Java_java_util_zip_Deflater_init (libzip.so)";
        // JDK 17 keeps a frame for Unsafe_AllocateMemory0; JDK 25's tail-calls os::malloc,
        // so the entry is the Java native method, named by the perf map.
        let is_direct = |n: &str| {
            n == "Unsafe_AllocateMemory0 (libjvm.so)"
                || n.starts_with("jdk.internal.misc.Unsafe.allocateMemory0(")
        };
        let top2: Vec<&str> = (0..2)
            .map(|i| entries[i]["name"].as_str().unwrap())
            .collect();
        assert!(
            top2.contains(&deflate_entry) && top2.iter().any(|n| is_direct(n)),
            "{label}: entries {entries:#}"
        );
        let direct_entry = *top2.iter().find(|n| is_direct(n)).unwrap();
        // An entry point also holds what the churn threads have in flight (dropped direct
        // buffers wait for the next collection and the cleaner): at least the leak.
        let d = bytes(row(&prof, "by_entry", deflate_entry).unwrap());
        assert!(
            d >= 0.7 * deflaters * per_deflater,
            "{label}: Deflater_init {d} vs {deflaters} deflaters"
        );
        let u = bytes(row(&prof, "by_entry", direct_entry).unwrap());
        assert!(
            u >= 0.7 * direct,
            "{label}: AllocateMemory0 {u} vs {direct}"
        );
        // The leak sites (their stacks on the leaking threads) hold what was kept, and
        // every churn site ranks below them.
        let leak_site = |thread: &str, entry: &str| {
            prof["sites"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|s| s["thread"] == thread && s["entry"] == entry)
                .map(bytes)
                .sum::<f64>()
        };
        let dl = leak_site("deflater-leak", "Java_java_util_zip_Deflater_init");
        let bl = leak_site("direct-leak", direct_entry.split(" (").next().unwrap());
        assert!(
            near(dl, deflaters * per_deflater, 30.0),
            "{label}: deflater-leak {dl}"
        );
        assert!(near(bl, direct, 30.0), "{label}: direct-leak {bl}");
        for s in prof["sites"].as_array().unwrap() {
            if s["thread"].as_str().is_some_and(|t| t.ends_with("-churn")) {
                assert!(bytes(s) < dl.min(bl), "{label}: churn site {s:#}");
            }
        }
        // With the perf map, the frame where the native stack meets Java code is named.
        let deflate_site = prof["sites"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["thread"] == "deflater-leak")
            .unwrap();
        let last = deflate_site["frames"].as_array().unwrap().last().unwrap();
        assert_eq!(last["library"], "[java]", "{label}: {deflate_site:#}");

        // Ten seconds later, after more leaking (and churning all along), diff ranks the
        // two leaks first.
        std::thread::sleep(Duration::from_secs(9));
        j.cmd("leak 64 16");
        let p2 = dir.join("p2.json");
        profile_json(j.pid, &p2, &[]);
        let (code, diff, err) = jvmalloc(&["diff", p1.to_str().unwrap(), p2.to_str().unwrap()]);
        assert_eq!(code, Some(0), "{label}: {err}");
        let rows_after = |title: &str, n: usize| -> Vec<String> {
            let i = diff
                .find(title)
                .unwrap_or_else(|| panic!("no {title:?} in {diff}"));
            diff[i..]
                .lines()
                .skip(1)
                .take(n)
                .map(str::to_string)
                .collect()
        };
        let e = rows_after("by JNI / JVM entry point", 2).join("\n");
        assert!(
            e.contains("Java_java_util_zip_Deflater_init")
                && (e.contains("Unsafe_AllocateMemory0") || e.contains("Unsafe.allocateMemory0")),
            "{label}: {diff}"
        );
        let s = rows_after("stacks by growth", 2).join("\n");
        assert!(
            s.contains("thread deflater-leak") && s.contains("thread direct-leak"),
            "{label}: {diff}"
        );
        j.cmd("quit");
    }
}
