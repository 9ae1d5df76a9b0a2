//! The library's exported symbols, and what it does with every `JVMALLOC_*` variable.
mod common;
use common::*;

/// Exactly these dynamic symbols are defined by the library: no `_rjem_*`, no Rust ones.
/// (`pthread_create` is interposed to register threads for the statistics;
/// `jvmalloc_dump_stats` writes a dump on demand.)
const ALLOWED: &[&str] = &[
    "__libc_calloc",
    "__libc_free",
    "__libc_malloc",
    "__libc_memalign",
    "__libc_pvalloc",
    "__libc_realloc",
    "__libc_valloc",
    "__posix_memalign",
    "aligned_alloc",
    "calloc",
    "cfree",
    "free",
    "free_aligned_sized",
    "free_sized",
    "jvmalloc_dump_stats",
    "mallctl",
    "mallctlbymib",
    "mallctlnametomib",
    "mallinfo",
    "mallinfo2",
    "malloc",
    "malloc_info",
    "malloc_stats",
    "malloc_stats_print",
    "malloc_trim",
    "malloc_usable_size",
    "mallopt",
    "memalign",
    "posix_memalign",
    "pthread_create",
    "pvalloc",
    "realloc",
    "reallocarray",
    "valloc",
];

#[test]
fn exported_symbols_are_exactly_the_allow_list() {
    let out = run("nm")
        .glibc()
        .args(["-D", "--defined-only", "--format=posix"])
        .arg(lib())
        .output();
    out.assert_ok();
    let mut syms: Vec<&str> = out
        .stdout
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    syms.sort();
    let mut want = ALLOWED.to_vec();
    want.sort();
    assert_eq!(syms, want);
}

/// A small program that allocates and prints "hello ok".
fn hello() -> std::path::PathBuf {
    compile("hello", &[])
}

#[test]
fn verbose_prints_the_effective_configuration_once() {
    let out = run(hello())
        .env("JVMALLOC_VERBOSE", "1")
        .env("JVMALLOC_ARENAS", "5")
        .env("JVMALLOC_DIRTY_DECAY_MS", "2500")
        .env("JVMALLOC_MUZZY_DECAY_MS", "100")
        .env("JVMALLOC_TCACHE_MAX", "16k")
        .env("JVMALLOC_JEMALLOC_CONF", "lg_extent_max_active_fit:4")
        .output();
    out.assert_ok();
    let lines = out.jvmalloc_lines();
    assert_eq!(lines.len(), 1, "{}", out.stderr);
    assert!(
        lines[0].contains("arenas=5 (JVMALLOC_ARENAS)"),
        "{}",
        lines[0]
    );
    assert!(
        lines[0].contains(
            "\"narenas:5,dirty_decay_ms:2500,muzzy_decay_ms:100,tcache_max:16384,oversize_threshold:67108864,\
             cache_oblivious:false,prof:true,prof_active:false,lg_prof_sample:19,prof_sys_thread_name:true,prof_stats:true,\
             lg_extent_max_active_fit:4\""
        ),
        "{}",
        lines[0]
    );
    // jemalloc took them: the program reads them back with mallctl.
    assert!(
        out.stdout
            .contains("narenas=5 dirty=2500 muzzy=100 tcache_max=16384"),
        "{}",
        out.stdout
    );
}

/// Good values give no output at all.
#[test]
fn valid_values_are_silent() {
    let out = run(hello())
        .env("JVMALLOC_ARENAS", "2")
        .env("JVMALLOC_DIRTY_DECAY_MS", "-1")
        .env("JVMALLOC_TCACHE_MAX", " 8k ")
        .env("JVMALLOC_VERBOSE", "off")
        .output();
    out.assert_ok();
    assert_eq!(out.stderr, "");
    assert!(
        out.stdout
            .contains("narenas=2 dirty=-1 muzzy=0 tcache_max=8192"),
        "{}",
        out.stdout
    );
}

/// Each variable with garbage, negative, huge and empty values: the program runs, and
/// stderr has exactly one line naming the variable, the value, and the value used.
#[test]
fn bad_values_give_one_line_and_never_harm_the_program() {
    let vars = [
        "JVMALLOC_ARENAS",
        "JVMALLOC_DIRTY_DECAY_MS",
        "JVMALLOC_MUZZY_DECAY_MS",
        "JVMALLOC_TCACHE_MAX",
        "JVMALLOC_JEMALLOC_CONF",
        "JVMALLOC_VERBOSE",
        "JVMALLOC_PROFILE",
        "JVMALLOC_PROFILE_SAMPLE",
    ];
    let values = [
        "abc",
        "-5",
        "99999999999999999999999999",
        "",
        "12x",
        "\u{7}\u{1b}[31m",
    ];
    for var in vars {
        for value in values {
            let line = assert_one_warning(&hello(), var, value, "");
            assert!(line.contains("using") || line.contains("ignored"), "{line}");
        }
    }
}

#[test]
fn out_of_range_values_are_clamped_and_said() {
    let out = run(hello()).env("JVMALLOC_ARENAS", "0").output();
    out.assert_ok();
    assert_eq!(
        out.jvmalloc_lines(),
        ["jvmalloc: JVMALLOC_ARENAS=\"0\" is out of range (1 to 1024); using 1"]
    );
    assert!(out.stdout.contains("narenas=1 "), "{}", out.stdout);
    let out = run(hello()).env("JVMALLOC_TCACHE_MAX", "1g").output();
    out.assert_ok();
    assert_eq!(
        out.jvmalloc_lines(),
        ["jvmalloc: JVMALLOC_TCACHE_MAX=\"1g\" is out of range (0 to 32768); using 32768"]
    );
}

#[test]
fn profile_variables_are_said_plainly() {
    let out = run(hello()).env("JVMALLOC_PROFILE_SAMPLE", "300k").output();
    out.assert_ok();
    assert_eq!(
        out.jvmalloc_lines(),
        ["jvmalloc: JVMALLOC_PROFILE_SAMPLE=\"300k\" is not a power of two, which jemalloc needs; using 262144 bytes (2^18)"]
    );
    let out = run(hello()).env("JVMALLOC_PROFILE", "sometimes").output();
    out.assert_ok();
    assert_eq!(
        out.jvmalloc_lines(),
        ["jvmalloc: JVMALLOC_PROFILE=\"sometimes\" is not on, off or never; using off (the default)"]
    );
    // jemalloc would write profile files itself, mode 0644: refused.
    let out = run(hello())
        .env("JVMALLOC_JEMALLOC_CONF", "prof_final:true")
        .output();
    out.assert_ok();
    assert_eq!(
        out.jvmalloc_lines(),
        ["jvmalloc: JVMALLOC_JEMALLOC_CONF=\"prof_final:true\" asks jemalloc to write profile files itself (use `jvmalloc profile`); ignored"]
    );
    // Out of scope, profiling is not armed: the options given to jemalloc leave it out.
    let out = run(hello())
        .env("JVMALLOC_PROCESSES", "java")
        .env("JVMALLOC_VERBOSE", "1")
        .output();
    out.assert_ok();
    assert!(!out.stderr.contains("prof:true"), "{}", out.stderr);
}

#[test]
fn unknown_jvmalloc_variable_is_named() {
    let out = run(hello()).env("JVMALLOC_AREANS", "4").output();
    out.assert_ok();
    assert_eq!(
        out.jvmalloc_lines(),
        ["jvmalloc: \"JVMALLOC_AREANS\" is not a jvmalloc variable (see docs/configuration.md); ignored"]
    );
}
