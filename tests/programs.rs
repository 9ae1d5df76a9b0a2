//! Real programs under the shim: the JVM (with a native-memory churn program and
//! `jcmd System.trim_native_heap`), python3, git and shell pipelines.
mod common;
use common::*;
use std::io::{BufRead, BufReader, Write};

#[test]
fn java_version() {
    for jdk in jdks() {
        let out = run(jdk.join("bin/java")).arg("-version").output();
        out.assert_ok();
        assert!(
            out.stderr.contains("OpenJDK"),
            "{}: {}",
            jdk.display(),
            out.stderr
        );
    }
}

#[test]
fn java_native_churn_32_threads() {
    for jdk in jdks() {
        let out = run(jdk.join("bin/java"))
            .arg("-cp")
            .arg(java_classes())
            .args(["NativeChurn", "32", "150"])
            .timeout(600)
            .output();
        out.assert_ok();
        assert!(
            out.stdout.contains("NativeChurn: ok"),
            "{}: {}",
            jdk.display(),
            out.stdout
        );
    }
}

#[test]
fn jcmd_trim_native_heap() {
    for jdk in jdks() {
        let mut child = run(jdk.join("bin/java"))
            .arg("-cp")
            .arg(java_classes())
            .args(["NativeChurn", "8", "50", "--wait"])
            .spawn();
        let mut stdin = child.stdin.take().unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let pid = loop {
            let line = lines.next().expect("java ended before ready").unwrap();
            if let Some(p) = line.strip_prefix("ready ") {
                break p.trim().to_string();
            }
        };
        let jcmd = run(jdk.join("bin/jcmd"))
            .glibc()
            .args([&pid, "System.trim_native_heap"])
            .timeout(120)
            .output();
        writeln!(stdin).unwrap();
        drop(stdin);
        let status = child.wait().unwrap();
        jcmd.assert_ok();
        // HotSpot calls our malloc_trim and prints the RSS change it measured.
        assert!(jcmd.stdout.contains("Trim native heap"), "{}", jcmd.stdout);
        assert!(jcmd.stdout.contains("RSS+Swap"), "{}", jcmd.stdout);
        assert!(!jcmd.stdout.to_lowercase().contains("not supported"));
        assert!(
            status.success(),
            "{}: java exited {status:?}",
            jdk.display()
        );
    }
}

#[test]
fn python_threads() {
    let out = run("python3")
        .arg(root().join("c-tests/threads_dicts.py"))
        .timeout(300)
        .output();
    out.assert_ok();
    assert!(out.stdout.contains("python: ok"));
}

#[test]
fn git_init_add_commit() {
    let dir = temp_dir("git");
    let git = |args: &[&str]| {
        run("git")
            .args(args)
            .dir(&dir)
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.invalid")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.invalid")
            .env("HOME", &dir)
            .output()
    };
    git(&["init", "-q"]).assert_ok();
    for i in 0..50 {
        std::fs::write(dir.join(format!("f{i}.txt")), format!("{i}\n").repeat(1000)).unwrap();
    }
    git(&["add", "."]).assert_ok();
    git(&["commit", "-q", "-m", "under jvmalloc"]).assert_ok();
    let log = git(&["log", "--oneline", "--stat"]);
    log.assert_ok();
    assert!(log.stdout.contains("under jvmalloc"), "{}", log.stdout);
    assert!(log.stdout.contains("50 files changed"), "{}", log.stdout);
    let fsck = git(&["fsck", "--strict"]);
    fsck.assert_ok();
}

#[test]
fn shell_pipeline() {
    let out = run("sh")
        .arg("-c")
        .arg("seq 1 200000 | sort -rn | head -3 | tr '\\n' ' '; echo; seq 1 50000 | awk '{s+=$1} END {print s}'")
        .output();
    out.assert_ok();
    assert_eq!(out.stdout, "200000 199999 199998 \n1250025000\n");
    assert!(out.stderr.is_empty(), "{}", out.stderr);
}

/// bash forks for every `$(...)` and runs builtins in the child without exec: each child
/// allocates at once, in the child of a process that has the `jvmalloc` thread. (pyenv's
/// `python3` is such a bash script; this once hung there.)
#[test]
fn bash_command_substitution() {
    let out = run("bash")
        .arg("-c")
        .arg("n=0; for i in $(seq 1 300); do x=$(echo \"$i$i\"); n=$((n + ${#x})); done; echo $n")
        .timeout(120)
        .output();
    out.assert_ok();
    // 9 one-digit, 90 two-digit, 201 three-digit numbers, each written twice.
    assert_eq!(out.stdout, format!("{}\n", 2 * (9 + 90 * 2 + 201 * 3)));
}
