//! The command with hostile arguments and files: usage errors exit 2 and name what is
//! wrong, failures exit 1 with one line, nothing panics. (Dumps of live processes are
//! tested at the workspace root, in tests/stats.rs, where the library is built.)

use std::path::PathBuf;
use std::process::Command;

struct Out {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn jvmalloc<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Out {
    let o = Command::new(env!("CARGO_BIN_EXE_jvmalloc"))
        .args(args)
        .output()
        .expect("run jvmalloc");
    let out = Out {
        code: o.status.code(),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    };
    assert!(
        !out.stderr.contains("panicked") && out.code.is_some(),
        "{:?}: {:?}\n{}",
        args.iter().map(|a| a.as_ref()).collect::<Vec<_>>(),
        out.code,
        out.stderr
    );
    out
}

/// A usage error: exit 2, and the message names `what`.
fn usage_error(args: &[&str], what: &str) {
    let out = jvmalloc(args);
    assert_eq!(out.code, Some(2), "{args:?}: {}", out.stderr);
    assert!(out.stderr.contains(what), "{args:?}: {}", out.stderr);
    assert!(out.stdout.is_empty(), "{args:?}: {}", out.stdout);
}

/// A failure: exit 1, one line on stderr containing `says`, nothing on stdout.
fn failure<S: AsRef<std::ffi::OsStr>>(args: &[S], says: &str) -> String {
    let out = jvmalloc(args);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    assert!(out.stderr.starts_with("jvmalloc: "), "{}", out.stderr);
    assert!(out.stderr.contains(says), "{}", out.stderr);
    assert!(out.stdout.is_empty(), "{}", out.stdout);
    out.stderr
}

fn dir(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn file(dir: &std::path::Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

#[test]
fn help_and_version() {
    for args in [
        &["--help"][..],
        &["-h"],
        &["help"],
        &["dump", "--help"],
        &["metrics", "--help"],
        &["watch", "--help"],
        &["diff", "--help"],
        &["help", "dump"],
    ] {
        let out = jvmalloc(args);
        assert_eq!(out.code, Some(0), "{args:?}");
        assert!(out.stdout.contains("Usage: jvmalloc"), "{args:?}");
        assert!(
            out.stdout.contains("Exit codes:")
                && out.stdout.contains("  1  failure")
                && out.stdout.contains("  2  usage error"),
            "{args:?}: {}",
            out.stdout
        );
    }
    let out = jvmalloc(&["--version"]);
    assert_eq!(out.code, Some(0));
    assert_eq!(
        out.stdout.trim_end(),
        format!("jvmalloc {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn usage_errors_exit_2_and_name_the_culprit() {
    usage_error(&[], "Usage: jvmalloc");
    usage_error(&["frob"], "'frob'");
    usage_error(&["--frob"], "'--frob'");
    usage_error(&["dump"], "<PID>");
    usage_error(&["dump", "1", "2"], "'2'");
    usage_error(&["dump", "1", "--timeout", "5", "extra"], "'extra'");
    usage_error(&["diff", "a"], "<NEW>");
    usage_error(&["diff", "a", "b", "c"], "'c'");
    usage_error(&["diff", "a", "b", "--frob"], "'--frob'");
    // Numbers: negative, garbage, too big, fractional, empty.
    usage_error(&["dump", "-5"], "'-5'");
    usage_error(&["dump", "abc"], "'abc'");
    usage_error(&["dump", "0"], "'0'");
    usage_error(&["dump", "4294967296"], "'4294967296'");
    usage_error(&["dump", "2147483648"], "'2147483648'");
    usage_error(&["dump", ""], "''");
    usage_error(&["dump", "1", "--timeout", "-1"], "'-1'");
    usage_error(&["dump", "1", "--timeout", "1.5"], "'1.5'");
    usage_error(&["dump", "1", "--timeout", "soon"], "'soon'");
    usage_error(
        &["dump", "1", "--timeout", "18446744073709551616"],
        "'18446744073709551616'",
    );
    usage_error(&["dump", "1", "--timeout"], "--timeout");
    usage_error(&["diff", "a", "b", "--top", "-1"], "'-1'");
    usage_error(&["diff", "a", "b", "--top", "many"], "'many'");
    usage_error(&["dump", "1", "--format", "xml"], "'xml'");
    usage_error(&["dump", "1", "-o"], "--output");
    usage_error(&["metrics"], "<PID>");
    usage_error(&["metrics", "1", "--format", "json"], "'--format'");
    usage_error(&["watch", "1", "--interval", "0"], "'0'");
    usage_error(&["watch", "1", "--interval", "0.5"], "'0.5'");
    usage_error(&["watch", "1", "--count", "0"], "'0'");
    usage_error(&["watch", "0"], "'0'");
    usage_error(&["diff", "a", "b", "--pick", "0"], "'0'");
    usage_error(&["diff", "a", "b", "--pick", "x"], "'x'");
    usage_error(
        &[
            "diff", "a", "b", "--pick", "1", "--pick", "2", "--pick", "3",
        ],
        "--pick is given at most twice",
    );
}

#[test]
fn dump_failures_are_one_line() {
    // Huge timeouts are fine (the deadline saturates); the process does not exist.
    failure(
        &["dump", "2147483647", "--timeout", "18446744073709551615"],
        "no process 2147483647",
    );
    // Our own process has no library loaded.
    for cmd in ["dump", "metrics", "watch"] {
        failure(
            &[cmd, &std::process::id().to_string()],
            "does not have jvmalloc loaded",
        );
    }
    failure(&["watch", "2147483647"], "no process 2147483647");
    // An output file is checked first: a symbolic link is not followed, a directory or a
    // device is not a file.
    let d = dir("output");
    let real = file(&d, "real.txt", b"keep");
    let link = d.join("link.txt");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    for cmd in ["dump", "metrics"] {
        failure(
            &[cmd.as_ref(), "1".as_ref(), "-o".as_ref(), link.as_os_str()],
            "is a symbolic link",
        );
        failure(&[cmd, "1", "-o", "/dev/null"], "not a regular file");
        failure(
            &[
                cmd.as_ref(),
                "1".as_ref(),
                "--output".as_ref(),
                d.as_os_str(),
            ],
            "cannot write",
        );
    }
    assert_eq!(std::fs::read(&real).unwrap(), b"keep");
}

/// A JSON dump line with the given memory figures.
fn dump_line(seq: u32, rss: &str, net: &str) -> String {
    format!(
        r#"{{"jvmalloc_stats":1,"seq":{seq},"pid":7,"process":"java","time_unix":{},"time":"t{seq}","uptime_s":{seq}.5,"memory":{{"rss":{rss},"allocated":9007199254740993}},"threads":[{{"name":"pool-1-thread-2","net":{net}}}],"exited":{{"threads":0,"net":0}},"unregistered":{{"threads":0,"net":0}},"size_classes":[{{"kind":"large","size":9007199254740993,"live_bytes":18446744073709551615,"live_regions":1}}]}}"#,
        1_000_000 + seq
    )
}

#[test]
fn integers_above_2_pow_53_stay_exact() {
    let d = dir("bigint");
    let old = file(
        &d,
        "old.json",
        dump_line(1, "9007199254740993", "-9223372036854775808").as_bytes(),
    );
    let new = file(
        &d,
        "new.json",
        dump_line(2, "18446744073709551615", "9223372036854775807").as_bytes(),
    );
    let out = jvmalloc(&["diff".as_ref(), old.as_os_str(), new.as_os_str()]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let o = &out.stdout;
    let row = |first: &str| -> Vec<&str> {
        o.lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .find(|w| w.first() == Some(&first))
            .unwrap_or_else(|| panic!("no {first} row in\n{o}"))
    };
    // 2^64 - 1 - (2^53 + 1), exactly.
    assert_eq!(
        row("rss")[1..4],
        [
            "9007199254740993",
            "18446744073709551615",
            "+18437736874454810622"
        ]
    );
    // Net from i64::MIN to i64::MAX: a growth of 2^64 - 1.
    assert_eq!(
        row("pool-N-thread-N")[1..5],
        [
            "1",
            "-9223372036854775808",
            "9223372036854775807",
            "+18446744073709551615"
        ]
    );
    assert!(o.contains("9007199254740993 large"), "{o}");
}

#[test]
fn bad_dump_files_fail_with_one_line() {
    let d = dir("badfiles");
    let good = file(&d, "good.json", dump_line(1, "1", "1").as_bytes());
    let diff = |f: &PathBuf, says: &str| {
        failure(&["diff".as_ref(), f.as_os_str(), good.as_os_str()], says);
        failure(&["diff".as_ref(), good.as_os_str(), f.as_os_str()], says);
    };
    // Nested a million deep: serde_json's recursion limit, not a stack overflow.
    for open in ["[", "{\"a\":"] {
        let deep = file(
            &d,
            "deep.json",
            format!(r#"{{"jvmalloc_stats":1,"x":{}"#, open.repeat(1_000_000)).as_bytes(),
        );
        diff(&deep, "recursion limit exceeded");
    }
    let line = dump_line(1, "1", "1");
    for cut in [1, 10, line.len() / 2, line.len() - 1] {
        diff(
            &file(&d, "cut.json", &line.as_bytes()[..cut]),
            "not valid JSON",
        );
    }
    diff(&file(&d, "junk.json", b"not json"), "no JSON dump");
    diff(&file(&d, "empty.json", b""), "no JSON dump");
    diff(
        &file(&d, "other.json", b"{\"a\":1}"),
        "not a jvmalloc statistics dump",
    );
    diff(
        &file(
            &d,
            "types.json",
            br#"{"jvmalloc_stats":1,"threads":"many"}"#,
        ),
        "invalid type",
    );
    diff(
        &file(
            &d,
            "float.json",
            br#"{"jvmalloc_stats":1,"memory":{"rss":1e300}}"#,
        ),
        "invalid type",
    );
    diff(
        &file(&d, "huge.json", br#"{"jvmalloc_stats":1,"pid":1e999}"#),
        "not valid JSON",
    );
    diff(&d.join("missing.json"), "cannot read");
    diff(&d, "cannot read");
    diff(&PathBuf::from("/dev/null"), "no JSON dump");
}

#[test]
fn a_log_that_is_not_utf8_still_yields_its_last_dump() {
    let d = dir("latin1");
    let mut log = b"caf\xe9 \xff started\n".to_vec();
    log.extend_from_slice(dump_line(1, "100", "5").as_bytes());
    log.extend_from_slice(b"\n\xe9t\xe9\n");
    log.extend_from_slice(dump_line(2, "300", "7").as_bytes());
    log.extend_from_slice(b"\nbye \xff\n");
    let old = file(&d, "old.log", dump_line(1, "100", "5").as_bytes());
    let new = file(&d, "new.log", &log);
    let out = jvmalloc(&["diff".as_ref(), old.as_os_str(), new.as_os_str()]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        out.stdout.contains("dump #1 at t1 -> #2 at t2"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("+200"), "{}", out.stdout);
}

/// `dump_line` with another pid, start time (seconds later) or schema.
fn dump_line_of(seq: u32, pid: u32, started_later: u32, schema: &str) -> String {
    dump_line(seq, "1", "1")
        .replace("\"pid\":7", &format!("\"pid\":{pid}"))
        .replace(
            &format!("\"time_unix\":{}", 1_000_000 + seq),
            &format!("\"time_unix\":{}", 1_000_000 + seq + started_later),
        )
        .replace(
            "\"jvmalloc_stats\":1",
            &format!("\"jvmalloc_stats\":{schema}"),
        )
}

#[test]
fn diff_compares_only_ordered_dumps_of_one_process() {
    let d = dir("checks");
    let f = |name: &str, line: String| file(&d, name, line.as_bytes());
    let one = f("one.json", dump_line_of(1, 7, 0, "1"));
    let two = f("two.json", dump_line_of(2, 7, 0, "1"));
    let ok = |args: &[&std::ffi::OsStr]| {
        let out = jvmalloc(&[&["diff".as_ref()], args].concat());
        assert_eq!(out.code, Some(0), "{}", out.stderr);
        out.stdout
    };
    ok(&[one.as_os_str(), two.as_os_str()]);
    // A second later, as far as the clocks say: the same process.
    let near = f("near.json", dump_line_of(2, 7, 1, "1"));
    ok(&[one.as_os_str(), near.as_os_str()]);
    // Another pid, or the same pid started later (reused): refused unless allowed.
    for (name, pid, later) in [("other-pid.json", 8, 0), ("reused.json", 7, 60)] {
        let other = f(name, dump_line_of(2, pid, later, "1"));
        let e = failure(
            &["diff".as_ref(), one.as_os_str(), other.as_os_str()],
            "different processes",
        );
        assert!(e.contains("--allow-different"), "{e}");
        let out = ok(&[
            one.as_os_str(),
            other.as_os_str(),
            "--allow-different".as_ref(),
        ]);
        assert!(out.starts_with("jvmalloc diff: pid 7 "), "{out}");
    }
    // Swapped: the message names both times.
    let e = failure(
        &["diff".as_ref(), two.as_os_str(), one.as_os_str()],
        "was taken after the new one",
    );
    assert!(e.contains("#2 at t2") && e.contains("#1 at t1"), "{e}");
    // Unknown schema versions, in either file.
    for v in ["2", "\"1\"", "0"] {
        let future = f("future.json", dump_line_of(2, 7, 0, v));
        let e = failure(
            &["diff".as_ref(), one.as_os_str(), future.as_os_str()],
            &format!("schema version {v},"),
        );
        assert!(e.contains("reads version 1"), "{e}");
    }
}

#[test]
fn diff_picks_a_dump_from_a_file_holding_several() {
    let d = dir("pick");
    let log = file(
        &d,
        "log.json",
        format!(
            "{}\nnot json\n{}\n{}\n",
            dump_line(1, "100", "1"),
            dump_line(2, "300", "1"),
            dump_line(3, "600", "1")
        )
        .as_bytes(),
    );
    let first = file(&d, "first.json", dump_line(1, "100", "1").as_bytes());
    let diff = |extra: &[&str]| {
        let mut args = vec!["diff".as_ref(), first.as_os_str(), log.as_os_str()];
        args.extend(extra.iter().map(std::ffi::OsStr::new));
        jvmalloc(&args)
    };
    // The last by default.
    let out = diff(&[]);
    assert!(
        out.stdout.contains("#1 at t1 -> #3 at t3"),
        "{}",
        out.stdout
    );
    // Given once: for both files (the first file holds one).
    let out = diff(&["--pick", "1"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        out.stdout.contains("#1 at t1 -> #1 at t1"),
        "{}",
        out.stdout
    );
    // Given twice: OLD's, then NEW's; one log against itself.
    let out = jvmalloc(&[
        "diff".as_ref(),
        log.as_os_str(),
        log.as_os_str(),
        "--pick".as_ref(),
        "2".as_ref(),
        "--pick".as_ref(),
        "3".as_ref(),
    ]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        out.stdout.contains("#2 at t2 -> #3 at t3"),
        "{}",
        out.stdout
    );
    let rss: Vec<&str> = out
        .stdout
        .lines()
        .find(|l| l.trim_start().starts_with("rss "))
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(rss[1..4], ["300", "600", "+300"]);
    // Out of range: says how many there are.
    let e = failure(
        &[
            "diff".as_ref(),
            log.as_os_str(),
            log.as_os_str(),
            "--pick".as_ref(),
            "1".as_ref(),
            "--pick".as_ref(),
            "4".as_ref(),
        ],
        "holds 3 dump(s): --pick 4 is out of range (1 to 3)",
    );
    assert!(e.contains("log.json"), "{e}");
}
