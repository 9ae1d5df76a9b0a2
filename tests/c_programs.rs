//! The C harness in `c-tests/`, each program run under `LD_PRELOAD=libjvmalloc.so`.
mod common;
use common::*;

fn api_program() -> std::path::PathBuf {
    let early = compile("early", &["-shared", "-fPIC"]);
    let dir = early.parent().unwrap().to_str().unwrap().to_string();
    compile(
        "api",
        &[&format!("-L{dir}"), "-learly", &format!("-Wl,-rpath,{dir}")],
    )
}

#[test]
fn api_conformance_under_jvmalloc() {
    let api = api_program();
    let xml = work_dir().join("malloc_info-jvmalloc.xml");
    let out = run(&api).arg(&xml).env("JVMALLOC_ARENAS", "3").output();
    out.assert_ok();
    assert!(out.stdout.contains("jemalloc 5.3.1"), "{}", out.stdout);
    assert!(out.stdout.contains("api: ok"));
    // malloc_stats: a short summary on stderr.
    assert!(out
        .stderr
        .contains("jvmalloc: malloc_stats: jemalloc 5.3.1"));
    assert!(out.stderr.contains("allocated"));
    // malloc_info: valid XML with one <heap> per arena and the totals.
    let check = run("python3")
        .glibc()
        .arg("-c")
        .arg(
            "import sys, xml.etree.ElementTree as E\n\
             r = E.parse(sys.argv[1]).getroot()\n\
             assert r.tag == 'malloc', r.tag\n\
             assert len(r.findall('heap')) >= 3\n\
             t = {e.get('type'): int(e.get('size')) for e in r.findall('total')}\n\
             assert t['resident'] >= t['allocated'] > 0, t\n\
             print('xml ok')",
        )
        .arg(&xml)
        .output();
    check.assert_ok();
}

/// The same checks pass under glibc's own malloc: they encode glibc's behaviour.
#[test]
fn api_conformance_matches_glibc() {
    let api = api_program();
    run(&api).glibc().arg("/dev/null").output().assert_ok();
}

/// Default arena count comes from the CPUs the process may use.
#[test]
fn default_arenas_follow_affinity() {
    let api = api_program();
    let out = run("taskset")
        .args(["-c", "0"])
        .arg(&api)
        .arg("/dev/null")
        .env("JVMALLOC_VERBOSE", "1")
        .output();
    out.assert_ok();
    assert!(
        out.stderr.contains("arenas=1 (1 CPUs in affinity mask"),
        "{}",
        out.stderr
    );
    assert!(out.stdout.contains(", 1 arenas"), "{}", out.stdout);
}

#[test]
fn stress_cross_thread_frees() {
    let p = compile("stress", &[]);
    let out = run(&p).args(["16", "20000"]).timeout(300).output();
    out.assert_ok();
    assert!(out.stdout.contains("stress: ok"));
}

#[test]
fn fork_under_load() {
    let p = compile("fork", &[]);
    let out = run(&p).arg("300").timeout(300).output();
    out.assert_ok();
    assert!(out.stdout.contains("fork: ok"));
}

/// Without thread caches every allocation takes an arena lock, so a child that allocates
/// before jemalloc's fork handler has re-created those locks hangs at once. jvmalloc's own
/// child handler allocates (it starts the child's reporter thread): this pins down that it
/// runs after jemalloc's.
#[test]
fn fork_without_thread_caches() {
    let p = compile("fork", &[]);
    let out = run(&p)
        .arg("100")
        .env("JVMALLOC_JEMALLOC_CONF", "tcache:false")
        .timeout(120)
        .output();
    out.assert_ok();
    assert!(out.stdout.contains("fork: ok"));
}

#[test]
fn thread_churn() {
    let p = compile("churn", &[]);
    let out = run(&p).arg("10000").timeout(300).output();
    out.assert_ok();
    assert!(out.stdout.contains("churn: ok"));
}

/// `free` keeps errno even where jemalloc's own `free` would not: in a process that locked its
/// memory, the purge a free triggers fails (`madvise` → EINVAL) and jemalloc does not save
/// errno around it. This is why the exported `free` saves and restores errno instead of
/// jumping straight to jemalloc (docs/benchmarks.md, "What the exported functions add").
#[test]
fn free_keeps_errno_when_purging_locked_memory() {
    let p = compile("mlocked", &[]);
    let out = run(&p)
        .env("JVMALLOC_DIRTY_DECAY_MS", "0")
        .timeout(120)
        .output();
    out.assert_ok();
    assert!(out.stdout.contains("mlocked: ok"), "{}", out.stdout);
}

/// Large blocks carry no padding page (jvmalloc sets jemalloc's `cache_oblivious:false`): a
/// 32 KiB block written through costs 32 KiB of RSS, as under glibc, not 36. Putting
/// jemalloc's default back brings the page back, which shows the test measures the option.
#[test]
fn large_blocks_are_not_padded() {
    let p = compile("padding", &[]);
    let per_block = |conf: Option<&str>| {
        let mut r = run(&p);
        if let Some(c) = conf {
            r = r.env("JVMALLOC_JEMALLOC_CONF", c);
        }
        let out = r.args(["4000", "32768"]).output();
        out.assert_ok();
        let line = out
            .stdout
            .lines()
            .find(|l| l.starts_with("padding:"))
            .unwrap_or_else(|| panic!("no result line: {}", out.stdout))
            .to_string();
        let kib: f64 = line
            .rsplit(' ')
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("bad line {line}"));
        kib
    };
    let default = per_block(None);
    assert!(default < 33.5, "{default} KiB of RSS per 32 KiB block");
    let padded = per_block(Some("cache_oblivious:true"));
    assert!(
        padded > 35.5,
        "{padded} KiB per block with jemalloc's padding"
    );
}
