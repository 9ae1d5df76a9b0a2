//! The Prometheus metrics (docs/metrics.md) against the real thing:
//!
//! - a real Prometheus server (Debian's `prometheus`) scrapes a JVM in the default scope
//!   every second: `up` is 1, `jvmalloc_process_rss_bytes` matches the JVM's VmRSS, and the
//!   three parts of `jvmalloc_rss_split_bytes` add up to it in the same scrape;
//! - `promtool check metrics` accepts what `GET /metrics` serves (thread names that need
//!   escaping included), and the server answers `/`, unknown paths, other methods and
//!   oversized headers as `src/exporter.rs` documents;
//! - twenty clients that connect and send nothing stall neither a `SIGUSR1` dump nor a
//!   later scrape beyond the documented bound;
//! - `JVMALLOC_METRICS_FILE` is written whole, readable by others (0644), lint-clean;
//! - a bad `JVMALLOC_METRICS_ADDR` (unparsable, or a port already taken) costs one line on
//!   stderr and nothing else.
//!
//! Without `prometheus`/`promtool` installed, the tests that need them print a note and
//! pass, except as root (CI), where `scripts/install-deps.sh` should have installed them:
//! there a missing package fails the test. Every server and target a test starts is
//! killed when the test ends, pass or fail (drop guards); nothing listens beyond
//! 127.0.0.1.

mod common;
use common::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const MIB: f64 = 1024.0 * 1024.0;

// ---------------------------------------------------------------------------------------
// Helpers

/// A port that was free a moment ago (bound to port 0, then closed). Another process may
/// take it in between; on this machine nothing else hands out loopback ports at random.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// `name` on the PATH. When it is missing: as root (CI, where install-deps.sh installs
/// it) the test fails; otherwise it prints a note and the caller skips.
fn tool(name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        assert!(
            !root,
            "{name} is not installed; scripts/install-deps.sh installs Debian's prometheus"
        );
        eprintln!("note: {name} is not installed (apt-get install prometheus); test skipped");
    }
    found
}

/// Kills a process group when dropped, whatever happened before.
struct Guard {
    child: Child,
    what: &'static str,
}

impl Guard {
    fn new(child: Child, what: &'static str) -> Guard {
        Guard { child, what }
    }
    /// Panics (with `log`, if any) when the process has ended.
    fn assert_alive(&mut self, log: Option<&Path>) {
        if let Some(st) = self.child.try_wait().unwrap() {
            let log = log
                .map(|p| {
                    String::from_utf8_lossy(&std::fs::read(p).unwrap_or_default()).into_owned()
                })
                .unwrap_or_default();
            panic!("{} ended early: {st:?}\n{log}", self.what);
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        kill_group(self.child.id());
        let _ = self.child.wait();
    }
}

/// A program that prints `ready <pid>` and then waits for a line on stdin
/// (`metrics_target`, `NativeChurn ... --wait`), its stderr in a file.
struct Target {
    guard: Guard,
    stdin: Option<ChildStdin>,
    pid: u32,
    lines: mpsc::Receiver<String>,
    /// What it printed up to its `ready` line.
    early: Vec<String>,
    err: PathBuf,
}

impl Target {
    fn start(r: Run, err: PathBuf, what: &'static str) -> Target {
        let mut child = r.spawn_with_stderr(&err);
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().unwrap();
        let mut guard = Guard::new(child, what);
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        // Generous: a JVM that churns first, on a loaded 2-core machine.
        let deadline = Instant::now() + Duration::from_secs(300);
        let mut early = Vec::new();
        let pid = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines.recv_timeout(left) {
                Ok(l) => {
                    if let Some(p) = l.strip_prefix("ready ") {
                        break p.trim().parse().unwrap();
                    }
                    early.push(l);
                }
                Err(e) => {
                    guard.assert_alive(Some(&err));
                    panic!("{what}: no `ready` line ({e:?})");
                }
            }
        };
        Target {
            guard,
            stdin,
            pid,
            lines,
            early,
            err,
        }
    }

    fn stderr(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.err).unwrap_or_default()).into_owned()
    }

    /// Lets the program end (a line on stdin) and asserts it ends well: exit 0 and
    /// `ok_line` on stdout. Returns its stderr.
    fn finish(mut self, ok_line: &str) -> String {
        if let Some(mut w) = self.stdin.take() {
            let _ = writeln!(w);
        }
        let deadline = Instant::now() + Duration::from_secs(120);
        let status = loop {
            if let Some(st) = self.guard.child.try_wait().unwrap() {
                break st;
            }
            assert!(Instant::now() < deadline, "{} did not end", self.guard.what);
            std::thread::sleep(Duration::from_millis(20));
        };
        // Its last lines: the reader ends at end of file, which has come or comes soon.
        let mut out = std::mem::take(&mut self.early);
        while let Ok(l) = self.lines.recv_timeout(Duration::from_secs(30)) {
            out.push(l);
        }
        let err = self.stderr();
        assert!(
            status.success() && (ok_line.is_empty() || out.iter().any(|l| l.contains(ok_line))),
            "{}: {status:?}\n--- stdout\n{out:?}\n--- stderr\n{err}",
            self.guard.what
        );
        err
    }
}

/// The C target: four threads holding allocations, named to need label escaping.
fn c_target(r: impl FnOnce(Run) -> Run, dir: &Path) -> Target {
    let prog = compile("metrics_target", &[]);
    Target::start(r(run(prog)), dir.join("stderr.txt"), "metrics_target")
}

/// An HTTP answer: status code, head (status line and headers), body.
struct Answer {
    status: u16,
    head: String,
    body: String,
}

/// Sends `request` to `addr` and reads the answer to the end (both servers close the
/// connection after answering an HTTP/1.0 request or a `Connection: close` one). A write
/// that fails (the server answered and closed before reading everything) is not an error
/// by itself: the answer is read all the same.
fn http(addr: SocketAddr, request: &[u8], timeout: Duration) -> std::io::Result<Answer> {
    let mut s = TcpStream::connect_timeout(&addr, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    let _ = s.write_all(request);
    let mut raw = Vec::new();
    match s.read_to_end(&mut raw) {
        Ok(_) => {}
        // A reset after the whole answer arrived (the server closed with our bytes unread).
        Err(e) if !raw.is_empty() && e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => return Err(e),
    }
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no status line in {head:?}")))?;
    Ok(Answer {
        status,
        head: head.to_string(),
        body: body.to_string(),
    })
}

fn get(addr: SocketAddr, path: &str) -> std::io::Result<Answer> {
    http(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
        Duration::from_secs(15),
    )
}

/// `GET /metrics` once the listener is up (it is bound by the `jvmalloc` thread, which
/// starts with the program's first thread).
fn wait_for_metrics(addr: SocketAddr, target: &mut Target) -> Answer {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match get(addr, "/metrics") {
            Ok(a) => return a,
            Err(e) => {
                target.guard.assert_alive(Some(&target.err));
                assert!(
                    Instant::now() < deadline,
                    "no metrics on {addr}: {e}\n{}",
                    target.stderr()
                );
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
}

/// `promtool check metrics` on `text`: its exit code and everything it printed.
fn promtool_check(promtool: &Path, text: &[u8]) -> (Option<i32>, String) {
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool");
    let mut w = child.stdin.take().unwrap();
    let text = text.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = w.write_all(&text);
    });
    let out = wait_with_timeout(child, Duration::from_secs(120));
    writer.join().unwrap();
    (out.code, format!("{}{}", out.stdout, out.stderr))
}

/// Asserts promtool accepts `text` without a word. promtool prints nothing for a clean
/// exposition; its lint findings (a counter without `_total`, a missing HELP, a
/// non-base unit, ...) and parse errors are all real problems here, so any output fails.
fn assert_lint_clean(promtool: &Path, text: &[u8], what: &str) {
    let (code, said) = promtool_check(promtool, text);
    assert!(
        code == Some(0) && said.trim().is_empty(),
        "promtool check metrics on {what}: exit {code:?}\n{said}\n--- text\n{}",
        String::from_utf8_lossy(text)
    );
}

/// The value of the sample `name` (no labels) in an exposition.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// VmRSS of `pid` in bytes.
fn vm_rss(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|v| v.trim().parse().ok())
        .expect("VmRSS");
    kb * 1024.0
}

// ---------------------------------------------------------------------------------------
// A real Prometheus server

/// Prometheus's HTTP API: the `result` array of an instant query.
fn prom_query(prom: SocketAddr, query: &str) -> std::io::Result<Vec<serde_json::Value>> {
    let mut q = String::new();
    for b in query.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            q.push(b as char);
        } else {
            q.push_str(&format!("%{b:02X}"));
        }
    }
    // HTTP/1.0: Go's server then answers without chunked encoding and closes.
    let a = http(
        prom,
        format!("GET /api/v1/query?query={q} HTTP/1.0\r\nHost: {prom}\r\n\r\n").as_bytes(),
        Duration::from_secs(30),
    )?;
    let v: serde_json::Value = serde_json::from_str(&a.body)
        .map_err(|e| std::io::Error::other(format!("{e}: {} {}", a.head, a.body)))?;
    if v["status"] != "success" {
        return Err(std::io::Error::other(format!("{query}: {v}")));
    }
    Ok(v["data"]["result"].as_array().cloned().unwrap_or_default())
}

/// The value of one vector element (`"value": [time, "text"]`).
fn value(r: &serde_json::Value) -> f64 {
    r["value"][1].as_str().unwrap().parse().unwrap()
}

/// The one element of an instant query's result.
fn one(prom: SocketAddr, query: &str) -> f64 {
    let r = prom_query(prom, query).unwrap();
    assert_eq!(r.len(), 1, "{query}: {r:?}");
    value(&r[0])
}

/// A JVM in the default scope (`java` only) serves `/metrics`; Prometheus scrapes it every
/// second and its figures are the JVM's.
#[test]
fn prometheus_scrapes_a_jvm() {
    let Some(prometheus) = tool("prometheus") else {
        return;
    };
    let started = Instant::now();
    let dir = temp_dir("prometheus");
    let jvm_port = free_port();
    let jdk = jdks().into_iter().next().expect("a JDK");
    let mut jvm = Target::start(
        run(jdk.join("bin/java"))
            .default_scope()
            .env("JVMALLOC_METRICS_ADDR", format!("127.0.0.1:{jvm_port}"))
            .arg("-cp")
            .arg(java_classes())
            .args(["NativeChurn", "4", "20", "--wait"]),
        dir.join("jvm.err"),
        "java NativeChurn",
    );
    let pid = jvm.pid;

    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: jvmalloc\n    static_configs:\n      \
             - targets: ['127.0.0.1:{jvm_port}']\n"
        ),
    )
    .unwrap();
    let prom = loopback(free_port());
    let prom_log = dir.join("prometheus.log");
    let mut server = Guard::new(
        run(&prometheus)
            .glibc()
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address={prom}"))
            .dir(&dir)
            .spawn_with_stderr(&prom_log),
        "prometheus",
    );

    // Until Prometheus is up and has scraped the JVM once (it reads its TSDB, starts its
    // web server, then scrapes at the next 1 s tick).
    let prom_started = Instant::now();
    let deadline = prom_started + Duration::from_secs(90);
    let mut last: String;
    loop {
        server.assert_alive(Some(&prom_log));
        jvm.guard.assert_alive(Some(&jvm.err));
        match prom_query(prom, "jvmalloc_process_rss_bytes") {
            Ok(r) if !r.is_empty() => break,
            Ok(r) => last = format!("{r:?}"),
            Err(e) => last = e.to_string(),
        }
        assert!(
            Instant::now() < deadline,
            "no sample after {:?}: {last}\n--- prometheus\n{}\n--- jvm\n{}",
            prom_started.elapsed(),
            String::from_utf8_lossy(&std::fs::read(&prom_log).unwrap_or_default()),
            jvm.stderr()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    eprintln!(
        "prometheus: first sample {:?} after its start",
        prom_started.elapsed()
    );

    assert_eq!(one(prom, "up{job=\"jvmalloc\"}"), 1.0);

    let before = vm_rss(pid);
    let scraped = one(prom, "jvmalloc_process_rss_bytes");
    let after = vm_rss(pid);
    // The sample is up to a scrape (1 s) old; an idle JVM's RSS hardly moves in that time.
    let off = (scraped - before).abs().min((scraped - after).abs());
    assert!(
        off <= (0.25 * after).max(64.0 * MIB),
        "scraped RSS {scraped} vs VmRSS {before}..{after}"
    );
    assert!(
        scraped > 96.0 * MIB,
        "{scraped}: the JVM holds 96 MiB of touched heap"
    );
    eprintln!(
        "prometheus: jvmalloc_process_rss_bytes {:.1} MiB, VmRSS {:.1}..{:.1} MiB",
        scraped / MIB,
        before / MIB,
        after / MIB
    );

    let split = prom_query(prom, "jvmalloc_rss_split_bytes").unwrap();
    let mut parts: Vec<&str> = split
        .iter()
        .map(|r| r["metric"]["part"].as_str().unwrap())
        .collect();
    parts.sort();
    assert_eq!(
        parts,
        ["allocator_overhead", "malloc_live", "not_malloc"],
        "{split:?}"
    );
    // One instant query: both sides are read from the same (latest) scrape. The parts add
    // up to RSS exactly unless one was clamped at 0 (then the sum exceeds RSS by the part
    // that would have been negative: not expected in a JVM, whose RSS is mostly not
    // malloc's).
    let diff = one(
        prom,
        "sum without (part) (jvmalloc_rss_split_bytes) - jvmalloc_process_rss_bytes",
    );
    assert!(diff.abs() < MIB, "parts - RSS = {diff}");
    eprintln!("prometheus: sum of the split - RSS = {diff}");

    // The keeper thread holds a 4 MiB direct buffer (malloc'd by that thread).
    let keeper = one(
        prom,
        "jvmalloc_thread_pool_allocated_bytes{pool=\"keeper-thread\"}",
    );
    assert!(keeper >= 4.0 * MIB, "keeper-thread allocated {keeper}");
    assert_eq!(
        one(prom, "count(jvmalloc_info{foreign_malloc=\"\"})"),
        1.0,
        "jvmalloc serves the JVM's malloc"
    );

    drop(server);
    let err = jvm.finish("NativeChurn: ok");
    assert!(
        !err.lines().any(|l| l.starts_with("jvmalloc: ")),
        "the library complained:\n{err}"
    );
    eprintln!("prometheus_scrapes_a_jvm: {:?}", started.elapsed());
}

// ---------------------------------------------------------------------------------------
// The exporter's HTTP

/// What `GET /metrics` serves passes `promtool check metrics`, and the server answers the
/// other requests (`/`, unknown paths, other methods) as src/exporter.rs documents.
#[test]
fn promtool_accepts_metrics_and_http_answers() {
    let Some(promtool) = tool("promtool") else {
        return;
    };
    let dir = temp_dir("metrics-http");
    let addr = loopback(free_port());
    let mut t = c_target(|r| r.env("JVMALLOC_METRICS_ADDR", addr.to_string()), &dir);
    let m = wait_for_metrics(addr, &mut t);
    assert_eq!(m.status, 200, "{}", m.head);
    assert!(
        m.head
            .to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4"),
        "{}",
        m.head
    );
    assert_lint_clean(&promtool, m.body.as_bytes(), "GET /metrics");
    // Thread names that need escaping arrive escaped (promtool would have rejected a raw
    // quote or newline); a name that is not UTF-8 arrives with U+FFFD.
    for pool in [
        r#"pool="metrics-worker""#,
        r#"pool="q\"uote\\slash""#,
        r#"pool="new\nline""#,
        "pool=\"caf\u{fffd}-\u{fffd}\"",
    ] {
        assert!(
            m.body
                .lines()
                .any(|l| l.starts_with("jvmalloc_thread_pool_allocated_bytes{") && l.contains(pool)),
            "{pool} missing:\n{}",
            m.body
        );
    }
    let rss = sample(&m.body, "jvmalloc_process_rss_bytes").expect("rss");
    assert!(rss > MIB, "{rss}");
    // A query string is ignored.
    assert_eq!(get(addr, "/metrics?x=1").unwrap().status, 200);

    let root = get(addr, "/").unwrap();
    assert_eq!(root.status, 200, "{}", root.head);
    assert!(root.body.contains("/metrics"), "{}", root.body);
    assert_eq!(get(addr, "/nope").unwrap().status, 404);
    // "Requests other than GET /metrics (and GET /) get 404" (src/exporter.rs).
    for req in [
        "HEAD /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    ] {
        let a = http(addr, req.as_bytes(), Duration::from_secs(15)).unwrap();
        assert_eq!(a.status, 404, "{req:?}: {}", a.head);
    }

    // Still serving after all that.
    assert_eq!(get(addr, "/metrics").unwrap().status, 200);

    let err = t.finish("metrics_target: ok");
    assert!(
        !err.lines().any(|l| l.starts_with("jvmalloc: ")),
        "the library complained:\n{err}"
    );
}

/// "A request line or headers over 8 KiB get 431" (src/exporter.rs), and the server goes
/// on serving.
/// Requests of 8193 to 9216 bytes whose headers ended within the last 1 KiB read once got
/// through (the size was only checked before each read).
#[test]
fn oversized_requests_get_431() {
    let dir = temp_dir("metrics-431");
    let addr = loopback(free_port());
    let mut t = c_target(|r| r.env("JVMALLOC_METRICS_ADDR", addr.to_string()), &dir);
    assert_eq!(wait_for_metrics(addr, &mut t).status, 200);
    let headers = |pad: usize| {
        format!(
            "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Padding: {}\r\nConnection: close\r\n\r\n",
            "a".repeat(pad)
        )
    };
    let line = |pad: usize| format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(pad));
    // (The server answers 431 and closes with the rest of the request unread: the client
    // may then see a reset after the answer, which `http` accepts.)
    for (what, req) in [
        ("20000 bytes of headers", headers(20000)),
        ("9000 bytes of headers", headers(9000)),
        ("a 9000-byte request line", line(9000)),
    ] {
        let a = http(addr, req.as_bytes(), Duration::from_secs(15))
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(a.status, 431, "{what}: {}", a.head);
        // Still serving after it.
        assert_eq!(get(addr, "/metrics").unwrap().status, 200, "after {what}");
    }
    t.finish("metrics_target: ok");
}

/// Clients that connect and send nothing hold the `jvmalloc` thread 200 ms each, at most 5
/// per round: a dump asked for with SIGUSR1 while twenty of them wait, and a scrape that
/// queues behind them, are still served within a generous bound (the design's is about
/// 1 s per round).
#[test]
fn silent_clients_do_not_stall_the_thread() {
    const BOUND: Duration = Duration::from_secs(15);
    let dir = temp_dir("metrics-hostile");
    let dumps = dir.join("dumps");
    std::fs::create_dir_all(&dumps).unwrap();
    let addr = loopback(free_port());
    let mut t = c_target(
        |r| {
            r.env("JVMALLOC_METRICS_ADDR", addr.to_string())
                .env("JVMALLOC_STATS_FILE", dumps.join("dump-%n.txt"))
        },
        &dir,
    );
    assert_eq!(wait_for_metrics(addr, &mut t).status, 200);

    let silent: Vec<TcpStream> = (0..20)
        .map(|_| TcpStream::connect_timeout(&addr, BOUND).unwrap())
        .collect();
    let asked = Instant::now();
    // SAFETY: kill has no memory-safety preconditions; the pid is our own child's.
    assert_eq!(unsafe { libc::kill(t.pid as i32, libc::SIGUSR1) }, 0);
    // A scrape from another connection, queued behind the silent ones.
    let scrape = std::thread::spawn(move || {
        let r = get(addr, "/metrics");
        (r, asked.elapsed())
    });

    let dumped = loop {
        let done = std::fs::read_dir(&dumps).unwrap().flatten().any(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.starts_with("dump-") && !n.contains(".tmp.")
        });
        if done {
            break asked.elapsed();
        }
        assert!(
            asked.elapsed() < BOUND,
            "no dump {BOUND:?} after SIGUSR1 with 20 silent clients\n{}",
            t.stderr()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let (answer, scraped) = scrape.join().unwrap();
    let answer = answer.unwrap_or_else(|e| panic!("scrape behind silent clients: {e}"));
    assert_eq!(answer.status, 200, "{}", answer.head);
    assert!(scraped < BOUND, "scrape answered after {scraped:?}");
    eprintln!("silent clients: dump after {dumped:?}, scrape answered after {scraped:?}");

    // The server gave up on each silent client (closed it) rather than keeping it.
    for (i, mut s) in silent.into_iter().enumerate() {
        s.set_read_timeout(Some(BOUND)).unwrap();
        let mut buf = [0u8; 64];
        match s.read(&mut buf) {
            Ok(0) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            r => panic!("silent client {i}: {r:?}"),
        }
    }
    t.finish("metrics_target: ok");
}

// ---------------------------------------------------------------------------------------
// The metrics file

/// Starts the C target under `sh -c 'umask U; exec target'` with the metrics file in
/// `dir`, and returns it with the file's path.
fn file_target(dir: &Path, umask: &str) -> (Target, PathBuf) {
    let prog = compile("metrics_target", &[]);
    let t = Target::start(
        run("sh")
            .arg("-c")
            .arg(format!("umask {umask} && exec \"$0\""))
            .arg(prog)
            .env("JVMALLOC_METRICS_FILE", dir.join("m-%p.prom"))
            .env("JVMALLOC_METRICS_INTERVAL_S", "1"),
        dir.with_extension("stderr"),
        "metrics_target",
    );
    let path = dir.join(format!("m-{}.prom", t.pid));
    (t, path)
}

/// Waits until `path` exists and (if `other_than` is given) is not that inode any more.
fn wait_for_file(t: &mut Target, path: &Path, other_than: Option<u64>) -> std::fs::Metadata {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(m) = std::fs::metadata(path) {
            if other_than != Some(m.ino()) {
                return m;
            }
        }
        t.guard.assert_alive(Some(&t.err));
        assert!(
            Instant::now() < deadline,
            "{} not (re)written\n{}",
            path.display(),
            t.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn metrics_file_is_whole_readable_and_lint_clean() {
    let Some(promtool) = tool("promtool") else {
        return;
    };
    let dir = temp_dir("metrics-file");
    let (mut t, path) = file_target(&dir, "022");
    let first = wait_for_file(&mut t, &path, None);
    assert_eq!(first.permissions().mode() & 0o777, 0o644);
    // Rewritten every second by renaming a new file over it: a new inode each time, so a
    // reader holding the old one still reads a whole file.
    let second = wait_for_file(&mut t, &path, Some(first.ino()));
    assert_eq!(second.permissions().mode() & 0o777, 0o644);
    let text = std::fs::read(&path).unwrap();
    assert_lint_clean(&promtool, &text, &path.display().to_string());
    let text = String::from_utf8(text).unwrap();
    let rss = sample(&text, "jvmalloc_process_rss_bytes").expect("rss");
    assert!(rss > MIB, "{rss}");
    assert!(
        text.contains("jvmalloc_thread_pool_allocated_bytes{pool=\"metrics-worker\"}"),
        "{text}"
    );
    let err = t.finish("metrics_target: ok");
    assert!(
        !err.lines().any(|l| l.starts_with("jvmalloc: ")),
        "the library complained:\n{err}"
    );
    // Only the file itself is left: no temporary file.
    let left: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    assert_eq!(left, [name], "{left:?}");
}

/// docs/metrics.md: the file is "mode 0644 so that node_exporter, often another user, can
/// read it" - also when the program runs with a strict umask.
/// (The mode was once given to open(2) only, where the umask took bits off it.)
#[test]
fn metrics_file_is_0644_under_a_strict_umask() {
    let dir = temp_dir("metrics-umask");
    let (mut t, path) = file_target(&dir, "077");
    let m = wait_for_file(&mut t, &path, None);
    let mode = m.permissions().mode() & 0o777;
    t.finish("metrics_target: ok");
    assert_eq!(mode, 0o644, "{:o}", mode);
}

// ---------------------------------------------------------------------------------------
// A bad address

/// Runs the C target with `JVMALLOC_METRICS_ADDR=value` until its `jvmalloc` thread has
/// had its say (the thread binds the address when it starts), then lets it finish: it must
/// end normally with exactly one `jvmalloc:` line on stderr, which is returned.
fn one_line_for_addr(value: &str, name: &str) -> String {
    let dir = temp_dir(name);
    let t = c_target(|r| r.env("JVMALLOC_METRICS_ADDR", value), &dir);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !t.stderr().contains("jvmalloc: ") {
        assert!(
            Instant::now() < deadline,
            "{value:?}: nothing said\n{}",
            t.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let err = t.finish("metrics_target: ok");
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("jvmalloc: "))
        .collect();
    assert_eq!(lines.len(), 1, "{value:?}:\n{err}");
    lines[0].to_string()
}

#[test]
fn bad_metrics_addr_one_line_and_runs() {
    let l = one_line_for_addr("nonsense", "metrics-nonsense");
    assert!(
        l.starts_with("jvmalloc: JVMALLOC_METRICS_ADDR=\"nonsense\"") && l.contains("not IP:PORT"),
        "{l}"
    );

    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let l = one_line_for_addr(&format!("127.0.0.1:{port}"), "metrics-taken");
    assert!(
        l.contains(&format!("cannot serve metrics on 127.0.0.1:{port}"))
            && l.contains("JVMALLOC_METRICS_ADDR"),
        "{l}"
    );
    drop(taken);
}

/// A child of fork (no exec) that starts a thread of its own neither keeps the parent's
/// metrics socket nor binds the port, and says nothing.
#[test]
fn a_forked_child_leaves_the_metrics_port_alone() {
    let port = free_port();
    let out = run(compile("metrics_fork", &[]))
        .arg(port.to_string())
        .env("JVMALLOC_METRICS_ADDR", format!("127.0.0.1:{port}"))
        .timeout(60)
        .output();
    out.assert_ok();
    assert!(out.stdout.contains("metrics_fork: ok"), "{}", out.stdout);
    assert!(
        !out.stderr.contains("cannot serve metrics"),
        "{}",
        out.stderr
    );
}
