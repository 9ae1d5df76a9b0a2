//! The `JVMALLOC_*` variables: parsing, defaults, ranges, and the jemalloc options they give.
//!
//! Read once, inside jemalloc's initialisation (the first allocation of the process or
//! jvmalloc's constructor, whichever comes first; see [`crate::init`]), without allocating
//! and with raw system calls only: jemalloc holds its initialisation lock meanwhile. A
//! value that cannot be used is never fatal: one line on stderr names the variable, the
//! value, and what is used instead.
//! `docs/configuration.md` documents every variable listed in [`VARIABLES`].

use crate::diag::Line;
use crate::names::{self, Signal};
use crate::{cgroup, env, scope, sysfile};
use core::fmt::{self, Write};

/// Every variable jvmalloc reads. Any other `JVMALLOC_*` variable gets a warning (a typo
/// would otherwise go unnoticed).
pub const VARIABLES: &[&str] = &[
    "JVMALLOC_ARENAS",
    "JVMALLOC_DIRTY_DECAY_MS",
    "JVMALLOC_MUZZY_DECAY_MS",
    "JVMALLOC_TCACHE_MAX",
    "JVMALLOC_JEMALLOC_CONF",
    "JVMALLOC_VERBOSE",
    "JVMALLOC_STATS_SIGNAL",
    "JVMALLOC_STATS_INTERVAL_S",
    "JVMALLOC_STATS_AT_EXIT",
    "JVMALLOC_STATS_FILE",
    "JVMALLOC_STATS_FORMAT",
    "JVMALLOC_STATS_TOP",
    "JVMALLOC_STATS_THREADS",
    "JVMALLOC_PURGE_INTERVAL_MS",
    "JVMALLOC_PURGE_IDLE_MS",
    "JVMALLOC_BACKGROUND_THREAD",
    "JVMALLOC_MEMORY_LIMIT",
    "JVMALLOC_PRESSURE_PCT",
    "JVMALLOC_PROCESSES",
    "JVMALLOC_METRICS_ADDR",
    "JVMALLOC_METRICS_FILE",
    "JVMALLOC_METRICS_INTERVAL_S",
    "JVMALLOC_PROFILE",
    "JVMALLOC_PROFILE_SAMPLE",
];

/// Default arenas per CPU the process may use (see `docs/benchmarks.md`, "Arena count").
pub const ARENAS_PER_CPU: u64 = 1;
/// Upper bound of the default arena count (an explicit `JVMALLOC_ARENAS` may go higher).
pub const ARENAS_DEFAULT_CAP: u64 = 8;
/// Longest `JVMALLOC_JEMALLOC_CONF` accepted (jvmalloc's option string is 1 KiB in all).
const RAW_CONF_MAX: usize = 768;

/// Where the arena count came from.
#[derive(Clone, Copy, Debug)]
pub enum ArenasFrom {
    /// `JVMALLOC_ARENAS`.
    Variable,
    /// Derived: CPUs in the affinity mask and the cgroup CPU quota (if any).
    Cpus { affinity: u64, quota: Option<u64> },
}

/// The effective configuration.
#[derive(Clone, Copy, Debug)]
pub struct Config {
    /// Whether this process gets the active parts (thread, handler, dumps): it is in
    /// `JVMALLOC_PROCESSES` and not in secure-execution mode. See [`crate::scope`].
    pub active: bool,
    /// `JVMALLOC_PROCESSES` (or its default).
    pub processes: &'static [u8],
    pub arenas: u64,
    pub arenas_from: ArenasFrom,
    pub dirty_decay_ms: i64,
    pub muzzy_decay_ms: i64,
    pub tcache_max: u64,
    /// Raw jemalloc options appended after jvmalloc's own (`JVMALLOC_JEMALLOC_CONF`).
    pub jemalloc_conf: &'static [u8],
    pub verbose: bool,
    /// The memory limit in bytes: `JVMALLOC_MEMORY_LIMIT`, else the cgroup's, if any.
    pub memory_limit: Option<u64>,
    /// Where the limit came from: "JVMALLOC_MEMORY_LIMIT", "cgroup" or "none".
    pub memory_limit_from: &'static str,
    pub stats: StatsConfig,
    pub purge: PurgeConfig,
    pub profile: ProfileConfig,
}

/// Allocation-site sampling (`JVMALLOC_PROFILE`, `JVMALLOC_PROFILE_SAMPLE`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProfileMode {
    /// Armed and sampling from the start.
    On,
    /// Armed, not sampling: `jvmalloc profile <pid> --start` turns sampling on.
    Off,
    /// Not armed: jemalloc's profiling stays off and cannot be started (also the state of
    /// every process out of scope, and of a library built without profiling).
    Never,
}

impl ProfileMode {
    /// The variable's spelling of this mode.
    pub fn word(self) -> &'static str {
        match self {
            ProfileMode::On => "on",
            ProfileMode::Off => "off",
            ProfileMode::Never => "never",
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub struct ProfileConfig {
    pub mode: ProfileMode,
    /// log2 of the mean bytes between samples (jemalloc's `lg_prof_sample`).
    pub lg_sample: u32,
}

impl ProfileConfig {
    const OFF: ProfileConfig = ProfileConfig {
        mode: ProfileMode::Never,
        lg_sample: PROFILE_LG_SAMPLE_DEFAULT,
    };
}

/// Default `JVMALLOC_PROFILE`: armed, not sampling. Active sampling costs about a fifth
/// more instructions in a loop that only allocates (libgcc's unwinder, a page per sampled
/// small object); armed but inactive costs nothing measurable (see `docs/benchmarks.md`,
/// "Cost of allocation-site sampling").
pub const PROFILE_DEFAULT: ProfileMode = ProfileMode::Off;
/// Default mean bytes between samples: 2^19 = 512 KiB (jemalloc's own default).
pub const PROFILE_LG_SAMPLE_DEFAULT: u32 = 19;

/// Giving memory back: periodic decay, idle purge, pressure guard.
#[derive(Clone, Copy, Debug)]
pub struct PurgeConfig {
    /// Milliseconds between purge ticks; 0 = no purge thread work.
    pub interval_ms: u64,
    /// A full purge once no arena has allocated for this long.
    pub idle_ms: u64,
    /// Enable jemalloc's own background threads.
    pub background_thread: bool,
    /// Percent of the memory limit at which the pressure guard acts; 0 = off.
    pub pressure_pct: u64,
}

impl PurgeConfig {
    /// Out of scope: no purge thread, so no timers.
    const OFF: PurgeConfig = PurgeConfig {
        interval_ms: 0,
        idle_ms: 0,
        background_thread: false,
        pressure_pct: 0,
    };
}

/// Format of statistics dumps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

/// When and where statistics dumps are written (`JVMALLOC_STATS_*`).
#[derive(Clone, Copy, Debug)]
pub struct StatsConfig {
    /// Signal that triggers a dump; `None` when `off`.
    pub signal: Option<i32>,
    /// Seconds between periodic dumps; 0 = none.
    pub interval_s: u64,
    pub at_exit: bool,
    /// Path template (`%p` pid, `%n` sequence number, `%t` unix time); `None` = stderr.
    pub file: Option<&'static [u8]>,
    pub format: Format,
    /// Rows shown per table in text dumps before the rest is summed.
    pub top: usize,
    /// Slots in the thread registry.
    pub threads: usize,
    /// Where `GET /metrics` is served (`JVMALLOC_METRICS_ADDR`).
    pub metrics_addr: Option<core::net::SocketAddr>,
    /// The metrics file for node_exporter (`JVMALLOC_METRICS_FILE`, a path template).
    pub metrics_file: Option<&'static [u8]>,
    /// Seconds between rewrites of the metrics file.
    pub metrics_interval_s: u64,
}

impl StatsConfig {
    /// Out of scope: no dumps, no registry.
    const OFF: StatsConfig = StatsConfig {
        signal: None,
        interval_s: 0,
        at_exit: false,
        file: None,
        format: Format::Text,
        top: 30,
        threads: 0,
        metrics_addr: None,
        metrics_file: None,
        metrics_interval_s: 0,
    };
}

/// How a numeric variable is read.
struct Num {
    name: &'static str,
    default: i64,
    min: i64,
    max: i64,
    /// Accept `k`, `m`, `g` suffixes (powers of 1024).
    sizes: bool,
}

impl Num {
    /// Reads the variable; warns and falls back as documented when the value is unusable.
    fn read(&self) -> i64 {
        self.read_or(self.default)
    }

    fn read_or(&self, default: i64) -> i64 {
        let Some(raw) = env::get(self.name) else {
            return default;
        };
        match parse_int(raw, self.sizes) {
            Some(v) if (self.min..=self.max).contains(&v) => v,
            Some(v) => {
                let used = v.clamp(self.min, self.max);
                warn(self.name, raw, |l| {
                    write!(
                        l,
                        " is out of range ({} to {}); using {used}",
                        self.min, self.max
                    )
                });
                used
            }
            None => {
                warn(self.name, raw, |l| {
                    let what = if self.sizes {
                        "a size"
                    } else {
                        "a whole number"
                    };
                    write!(
                        l,
                        " is not {what} from {} to {}; using {default} (the default)",
                        self.min, self.max
                    )
                });
                default
            }
        }
    }
}

/// Writes `jvmalloc: NAME="value"<rest>` on stderr.
fn warn(name: &str, raw: &[u8], rest: impl FnOnce(&mut Line) -> fmt::Result) {
    let mut l = Line::new();
    let _ = l.write_str(name);
    let _ = l.write_str("=");
    l.quoted(raw, 64);
    let _ = rest(&mut l);
}

/// Units accepted after a size, any case, with or without blanks before them: Flink's
/// (`4gb`, `4096 mb`, `1 gibibytes`) and the usual short forms (`4g`, `4G`, `4GiB`).
/// All are binary multiples, as in Flink and the JVM's `-Xmx`.
const SIZE_UNITS: &[(&str, u32)] = &[
    ("b", 0),
    ("bytes", 0),
    ("k", 10),
    ("kb", 10),
    ("kib", 10),
    ("kibibytes", 10),
    ("m", 20),
    ("mb", 20),
    ("mib", 20),
    ("mebibytes", 20),
    ("g", 30),
    ("gb", 30),
    ("gib", 30),
    ("gibibytes", 30),
    ("t", 40),
    ("tb", 40),
    ("tib", 40),
    ("tebibytes", 40),
];

/// Parses an optionally signed decimal integer; when `sizes` is set, a unit of
/// [`SIZE_UNITS`] may follow. Surrounding blanks are ignored.
pub fn parse_int(raw: &[u8], sizes: bool) -> Option<i64> {
    let s = raw.trim_ascii();
    let (neg, s) = match s {
        [b'-', rest @ ..] => (true, rest),
        [b'+', rest @ ..] => (false, rest),
        _ => (false, s),
    };
    let ndigits = s.iter().take_while(|b| b.is_ascii_digit()).count();
    let (digits, unit) = s.split_at(ndigits);
    let unit = unit.trim_ascii_start();
    let shift = if unit.is_empty() {
        0
    } else if sizes {
        SIZE_UNITS
            .iter()
            .find(|(u, _)| unit.eq_ignore_ascii_case(u.as_bytes()))?
            .1
    } else {
        return None;
    };
    let v = sysfile::parse_u64(digits)?.checked_mul(1u64 << shift)?;
    let v = i64::try_from(v).ok()?;
    Some(if neg { -v } else { v })
}

/// Reads a yes/no variable (`1/0`, `true/false`, `yes/no`, `on/off`, any case).
fn read_bool(name: &'static str, default: bool) -> bool {
    let Some(raw) = env::get(name) else {
        return default;
    };
    let t = raw.trim_ascii();
    let is = |words: &[&str]| words.iter().any(|w| t.eq_ignore_ascii_case(w.as_bytes()));
    if is(&["1", "true", "yes", "on"]) {
        true
    } else if is(&["0", "false", "no", "off"]) {
        false
    } else {
        let d = if default { 1 } else { 0 };
        warn(name, raw, |l| {
            write!(l, " is not 0 or 1; using {d} (the default)")
        });
        default
    }
}

/// Reads `JVMALLOC_JEMALLOC_CONF`: jemalloc `name:value` pairs separated by commas.
fn read_raw_conf() -> &'static [u8] {
    const NAME: &str = "JVMALLOC_JEMALLOC_CONF";
    let Some(raw) = env::get(NAME) else {
        return b"";
    };
    let key_char = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_';
    let value_char = |b: &u8| b.is_ascii_alphanumeric() || b"_:.-".contains(b);
    let pair_ok = |pair: &[u8]| match pair.iter().position(|&b| b == b':') {
        Some(i) => {
            i > 0
                && i + 1 < pair.len()
                && pair[..i].iter().all(key_char)
                && pair[i + 1..].iter().all(value_char)
        }
        None => false,
    };
    let why = if raw.is_empty() {
        "is empty"
    } else if raw
        .split(|&b| b == b',')
        .any(|pair| pair.starts_with(b"background_thread:"))
    {
        // jemalloc's background threads are started past the interposed pthread_create:
        // only JVMALLOC_BACKGROUND_THREAD (which stops them as the program ends) may start
        // them, or a program whose main thread calls pthread_exit would never end.
        "sets background_thread (use JVMALLOC_BACKGROUND_THREAD=1)"
    } else if raw.split(|&b| b == b',').any(|pair| {
        [
            &b"prof_final:"[..],
            b"prof_gdump:",
            b"lg_prof_interval:",
            b"prof_leak:",
            b"prof_prefix:",
        ]
        .iter()
        .any(|k| pair.starts_with(k))
    }) {
        // jemalloc writes those profiles itself, with creat(2) and mode 0644, next to the
        // program: profiles come from `jvmalloc profile` instead.
        "asks jemalloc to write profile files itself (use `jvmalloc profile`)"
    } else if raw.len() > RAW_CONF_MAX {
        "is longer than 768 bytes"
    } else if !raw.split(|&b| b == b',').all(pair_ok) {
        "is not a list of jemalloc name:value pairs separated by commas"
    } else {
        return raw;
    };
    warn(NAME, raw, |l| write!(l, " {why}; ignored"));
    b""
}

/// `JVMALLOC_MEMORY_LIMIT` (a size) or the cgroup limit. `0` and `-1` mean "no
/// override"; a bare number below 1 MiB is taken for a forgotten unit and refused.
fn read_memory_limit() -> (Option<u64>, &'static str) {
    const NAME: &str = "JVMALLOC_MEMORY_LIMIT";
    let fallback = || match cgroup::memory_limit() {
        Some(l) => (Some(l), "cgroup"),
        None => (None, "none"),
    };
    let Some(raw) = env::get(NAME) else {
        return fallback();
    };
    let bare = raw.trim_ascii().iter().all(u8::is_ascii_digit);
    match parse_int(raw, true) {
        Some(0 | -1) => fallback(),
        Some(v) if v >= 1 << 20 => (Some(v as u64), NAME),
        Some(v) if bare && v > 0 => {
            let (limit, from) = fallback();
            warn(NAME, raw, |l| {
                write!(l, " is below 1 MiB; did you mean {v}m? ")?;
                used_instead(l, limit, from)
            });
            (limit, from)
        }
        _ => {
            let (limit, from) = fallback();
            warn(NAME, raw, |l| {
                l.write_str(" is not a size of at least 1 MiB (e.g. 4g, 4096m, 4gb); ")?;
                used_instead(l, limit, from)
            });
            (limit, from)
        }
    }
}

/// The end of a memory-limit warning: what is used instead.
fn used_instead(l: &mut Line, limit: Option<u64>, from: &str) -> fmt::Result {
    match limit {
        Some(v) => write!(l, "using the {from} limit, {v} bytes"),
        None => l.write_str("using no limit"),
    }
}

/// Reads `JVMALLOC_STATS_SIGNAL` (see [`names::parse_signal`]). Other signals would
/// collide with what the JVM or the C library use (HUP/INT/TERM shut the JVM down, QUIT
/// makes thread dumps, SEGV/BUS/... are the JVM's own), so they are refused.
fn read_signal() -> Option<i32> {
    const NAME: &str = "JVMALLOC_STATS_SIGNAL";
    let Some(raw) = env::get(NAME) else {
        return Some(libc::SIGUSR1);
    };
    match names::parse_signal(raw) {
        Signal::Off => None,
        Signal::Number(s) if s == libc::SIGUSR2 => {
            warn(NAME, raw, |l| {
                l.write_str(
                    " is the signal HotSpot uses to suspend threads (and JFR); in a JVM, \
                     dumps may not come and thread suspension may break; using it as asked",
                )
            });
            Some(s)
        }
        Signal::Number(s) => Some(s),
        Signal::Invalid => {
            warn(NAME, raw, |l| {
                write!(
                    l,
                    " is not USR1, USR2, RTMIN+0 to RTMIN+{}, a number of one, or off; using USR1 (the default)",
                    libc::SIGRTMAX() - libc::SIGRTMIN()
                )
            });
            Some(libc::SIGUSR1)
        }
    }
}

/// Reads a file template (`JVMALLOC_STATS_FILE`, `JVMALLOC_METRICS_FILE`); `%p`, `%n`,
/// `%t`, `%%` are expanded when the file is written.
/// `instead` says what happens when the value cannot be used.
fn read_template(name: &'static str, instead: &str) -> Option<&'static [u8]> {
    let raw = env::get(name)?;
    let why = if raw.is_empty() {
        "is empty"
    } else if raw.len() > 400 {
        "is longer than 400 bytes"
    } else if !names::template_ok(raw) {
        "has a % not followed by p, n, t or %"
    } else {
        return Some(raw);
    };
    warn(name, raw, |l| write!(l, " {why}; {instead}"));
    None
}

/// Reads `JVMALLOC_METRICS_ADDR`: `IP:PORT` (IPv6 as `[::1]:PORT`), or a bare port for
/// 127.0.0.1. No host names: nothing may be looked up while initialising.
fn read_metrics_addr() -> Option<core::net::SocketAddr> {
    const NAME: &str = "JVMALLOC_METRICS_ADDR";
    let raw = env::get(NAME)?;
    let t = core::str::from_utf8(raw.trim_ascii()).unwrap_or("");
    if let Ok(a) = t.parse::<core::net::SocketAddr>() {
        return Some(a);
    }
    if let Ok(port) = t.parse::<u16>() {
        return Some(core::net::SocketAddr::from(([127, 0, 0, 1], port)));
    }
    warn(NAME, raw, |l| {
        l.write_str(
            " is not IP:PORT (e.g. 127.0.0.1:9404, [::1]:9404) or a port; metrics are not served",
        )
    });
    None
}

/// Reads `JVMALLOC_STATS_FORMAT`: `text` or `json`.
fn read_format() -> Format {
    const NAME: &str = "JVMALLOC_STATS_FORMAT";
    let Some(raw) = env::get(NAME) else {
        return Format::Text;
    };
    let t = raw.trim_ascii();
    if t.eq_ignore_ascii_case(b"text") {
        Format::Text
    } else if t.eq_ignore_ascii_case(b"json") {
        Format::Json
    } else {
        warn(NAME, raw, |l| {
            l.write_str(" is not text or json; using text (the default)")
        });
        Format::Text
    }
}

/// Warns about `JVMALLOC_*` variables that jvmalloc does not know.
fn check_unknown() {
    let mut unknown = |entry: &[u8]| {
        let name = entry.split(|&b| b == b'=').next().unwrap_or(b"");
        if name.starts_with(b"JVMALLOC_") && !VARIABLES.iter().any(|v| v.as_bytes() == name) {
            let mut l = Line::new();
            l.quoted(name, 64);
            let _ = l.write_str(" is not a jvmalloc variable (see docs/configuration.md); ignored");
        }
    };
    env::for_each(&mut unknown);
}

/// The default arena count for this process, and what it was derived from.
fn default_arenas() -> (u64, ArenasFrom) {
    let affinity = cgroup::affinity_cpus();
    let quota = cgroup::cpu_quota();
    let cpus = quota.map_or(affinity, |q| q.min(affinity)).max(1);
    let n = (cpus * ARENAS_PER_CPU).clamp(1, ARENAS_DEFAULT_CAP);
    (n, ArenasFrom::Cpus { affinity, quota })
}

/// Reads `JVMALLOC_PROCESSES`: patterns of executable names (see [`crate::scope`]).
fn read_processes() -> &'static [u8] {
    const NAME: &str = "JVMALLOC_PROCESSES";
    let Some(raw) = env::get(NAME) else {
        return scope::DEFAULT;
    };
    if scope::list_ok(raw) {
        return raw;
    }
    warn(NAME, raw, |l| {
        l.write_str(
            " is not a comma-separated list of executable names (no '/'; * and ? match); \
             using java (the default)",
        )
    });
    scope::DEFAULT
}

/// Reads every variable. Called once, by `init`. A process out of scope reads only the
/// allocator's variables: it warns about nothing else and reads no cgroup memory limit.
pub fn load() -> Config {
    let secure = env::secure();
    let processes = read_processes();
    let mut exe = [0u8; 4096];
    let active = !secure && scope::matches(processes, scope::executable_name(&mut exe));
    if active {
        check_unknown();
    }
    // The default costs reading the cgroup CPU quota: only when the variable does not
    // give a number.
    let given = env::get("JVMALLOC_ARENAS").is_some_and(|raw| parse_int(raw, false).is_some());
    let (derived, arenas_from) = if given {
        (1, ArenasFrom::Variable)
    } else {
        default_arenas()
    };
    let arenas_num = Num {
        name: "JVMALLOC_ARENAS",
        default: derived as i64,
        min: 1,
        max: 1024,
        sizes: false,
    };
    let (memory_limit, memory_limit_from) = if active {
        read_memory_limit()
    } else {
        (None, "none")
    };
    let decay = |name| Num {
        name,
        default: 0,
        min: -1,
        max: 86_400_000,
        sizes: false,
    };
    let (purge, stats, profile) = if active {
        (read_purge(), read_stats(), read_profile())
    } else {
        (PurgeConfig::OFF, StatsConfig::OFF, ProfileConfig::OFF)
    };
    Config {
        active,
        processes,
        arenas: arenas_num.read() as u64,
        arenas_from,
        dirty_decay_ms: decay("JVMALLOC_DIRTY_DECAY_MS").read_or(DIRTY_DECAY_MS_DEFAULT),
        muzzy_decay_ms: decay("JVMALLOC_MUZZY_DECAY_MS").read_or(MUZZY_DECAY_MS_DEFAULT),
        tcache_max: Num {
            name: "JVMALLOC_TCACHE_MAX",
            default: TCACHE_MAX_DEFAULT,
            min: 0,
            max: TCACHE_MAX_LIMIT,
            sizes: true,
        }
        .read() as u64,
        jemalloc_conf: read_raw_conf(),
        verbose: read_bool("JVMALLOC_VERBOSE", false),
        memory_limit,
        memory_limit_from,
        purge,
        stats,
        profile,
    }
}

/// Allocation-site sampling, for a process in scope.
fn read_profile() -> ProfileConfig {
    const NAME: &str = "JVMALLOC_PROFILE";
    let mode = match env::get(NAME) {
        None => PROFILE_DEFAULT,
        Some(raw) => {
            let t = raw.trim_ascii();
            let modes = [ProfileMode::On, ProfileMode::Off, ProfileMode::Never];
            if let Some(m) = modes
                .into_iter()
                .find(|m| t.eq_ignore_ascii_case(m.word().as_bytes()))
            {
                m
            } else {
                warn(NAME, raw, |l| {
                    write!(
                        l,
                        " is not on, off or never; using {} (the default)",
                        PROFILE_DEFAULT.word()
                    )
                });
                PROFILE_DEFAULT
            }
        }
    };
    if !cfg!(feature = "profiling") {
        return ProfileConfig::OFF;
    }
    const SAMPLE: &str = "JVMALLOC_PROFILE_SAMPLE";
    let bytes = Num {
        name: SAMPLE,
        default: 1 << PROFILE_LG_SAMPLE_DEFAULT,
        min: 1 << 10,
        max: 1 << 30,
        sizes: true,
    }
    .read() as u64;
    // jemalloc samples at a power of two: the nearest one (in ratio) is used.
    let lg = 63 - bytes.leading_zeros();
    let lg = if bytes.is_power_of_two() || bytes < (3u64 << lg) / 2 {
        lg
    } else {
        lg + 1
    };
    if !bytes.is_power_of_two() {
        if let Some(raw) = env::get(SAMPLE) {
            warn(SAMPLE, raw, |l| {
                write!(
                    l,
                    " is not a power of two, which jemalloc needs; using {} bytes (2^{lg})",
                    1u64 << lg
                )
            });
        }
    }
    ProfileConfig {
        mode,
        lg_sample: lg,
    }
}

/// Giving memory back, for a process in scope.
fn read_purge() -> PurgeConfig {
    PurgeConfig {
        interval_ms: Num {
            name: "JVMALLOC_PURGE_INTERVAL_MS",
            default: PURGE_INTERVAL_MS_DEFAULT,
            min: 0,
            max: 3_600_000,
            sizes: false,
        }
        .read() as u64,
        idle_ms: Num {
            name: "JVMALLOC_PURGE_IDLE_MS",
            default: PURGE_IDLE_MS_DEFAULT,
            min: 0,
            max: 86_400_000,
            sizes: false,
        }
        .read() as u64,
        background_thread: read_bool("JVMALLOC_BACKGROUND_THREAD", false),
        pressure_pct: Num {
            name: "JVMALLOC_PRESSURE_PCT",
            default: 90,
            min: 0,
            max: 100,
            sizes: false,
        }
        .read() as u64,
    }
}

/// Dumps, for a process in scope.
fn read_stats() -> StatsConfig {
    StatsConfig {
        signal: read_signal(),
        interval_s: Num {
            name: "JVMALLOC_STATS_INTERVAL_S",
            default: 0,
            min: 0,
            max: 86_400,
            sizes: false,
        }
        .read() as u64,
        at_exit: read_bool("JVMALLOC_STATS_AT_EXIT", false),
        file: read_template("JVMALLOC_STATS_FILE", "using stderr"),
        format: read_format(),
        top: Num {
            name: "JVMALLOC_STATS_TOP",
            default: 30,
            min: 1,
            max: 100_000,
            sizes: false,
        }
        .read() as usize,
        threads: Num {
            name: "JVMALLOC_STATS_THREADS",
            default: 4096,
            min: 16,
            max: 1 << 20,
            sizes: false,
        }
        .read() as usize,
        metrics_addr: read_metrics_addr(),
        metrics_file: read_template("JVMALLOC_METRICS_FILE", "no metrics file is written"),
        metrics_interval_s: Num {
            name: "JVMALLOC_METRICS_INTERVAL_S",
            default: 15,
            min: 1,
            max: 86_400,
            sizes: false,
        }
        .read() as u64,
    }
}

/// jemalloc serves requests of at least this many bytes from a dedicated arena that returns
/// them to the kernel at once, so each reuse page-faults anew. jemalloc's 8 MiB makes
/// repeated multi-MiB allocations (direct buffers, compression windows, Netty chunks) several
/// times slower than under glibc; with jvmalloc's 1 s decay and purge thread bounding how
/// long freed memory stays, 64 MiB is safe (see `docs/benchmarks.md`, "Large allocations").
pub const OVERSIZE_THRESHOLD: u64 = 64 << 20;

// `cache_oblivious:false`: jemalloc otherwise gives every large block (16 KiB and up) one
// extra page and starts the block at a random cache line of the first, so that large blocks
// do not all map to the same cache sets. Zeroing a 32 KiB block then touches 9 pages, not
// 8: a Flink TaskManager's 5,100 network buffers of 32 KiB paid 21 MiB for it at start (see
// `docs/benchmarks.md`, "Padding of large blocks").

/// Default `JVMALLOC_PURGE_INTERVAL_MS` (see `docs/benchmarks.md`, "Purge").
pub const PURGE_INTERVAL_MS_DEFAULT: i64 = 1000;
/// Default `JVMALLOC_PURGE_IDLE_MS`.
pub const PURGE_IDLE_MS_DEFAULT: i64 = 1000;
/// Default `JVMALLOC_DIRTY_DECAY_MS` (see `docs/benchmarks.md`, "Purge"; jemalloc: 10000).
pub const DIRTY_DECAY_MS_DEFAULT: i64 = 1_000;
/// Default `JVMALLOC_MUZZY_DECAY_MS` (jemalloc's own default).
pub const MUZZY_DECAY_MS_DEFAULT: i64 = 0;
/// Default `JVMALLOC_TCACHE_MAX` in bytes (jemalloc's own default).
pub const TCACHE_MAX_DEFAULT: i64 = 32 << 10;
/// Largest thread-cached size this jemalloc supports (`TCACHE_MAXCLASS_LIMIT`: 32 KiB with
/// 4 KiB pages); larger values are silently cut by jemalloc, so they are refused here.
pub const TCACHE_MAX_LIMIT: i64 = 32 << 10;

impl Config {
    /// The jemalloc option string for this configuration (without NUL).
    pub fn jemalloc_options<'b>(&self, buf: &'b mut [u8]) -> &'b [u8] {
        let mut w = Buf { buf, len: 0 };
        let _ = write!(
            w,
            "narenas:{},dirty_decay_ms:{},muzzy_decay_ms:{},tcache_max:{},oversize_threshold:{},\
             cache_oblivious:false",
            self.arenas,
            self.dirty_decay_ms,
            self.muzzy_decay_ms,
            self.tcache_max,
            OVERSIZE_THRESHOLD
        );
        if self.profile.mode != ProfileMode::Never {
            // Thread names come from pthread_getname_np at each sample (one prctl for the
            // calling thread); prof_stats keeps exact live sample counts per size class.
            let _ = write!(
                w,
                ",prof:true,prof_active:{},lg_prof_sample:{},prof_sys_thread_name:true,prof_stats:true",
                self.profile.mode == ProfileMode::On,
                self.profile.lg_sample
            );
        }
        if !self.jemalloc_conf.is_empty() {
            let _ = w.write_str(",");
            w.push(self.jemalloc_conf);
        }
        let Buf { buf, len } = w;
        &buf[..len]
    }

    /// Prints the effective configuration on stderr, one line.
    pub fn print(&self) {
        let mut opts = [0u8; 1024];
        let opts = self.jemalloc_options(&mut opts);
        let mut l = Line::new();
        let _ = l.write_str("processes=");
        l.quoted(self.processes, 128);
        let _ = l.write_str(if self.active {
            " (in scope) "
        } else {
            " (out of scope: allocator only) "
        });
        let _ = write!(l, "arenas={} (", self.arenas);
        let _ = match self.arenas_from {
            ArenasFrom::Variable => l.write_str("JVMALLOC_ARENAS"),
            ArenasFrom::Cpus { affinity, quota } => {
                let _ = write!(l, "{affinity} CPUs in affinity mask, cgroup CPU quota ");
                match quota {
                    Some(q) => write!(l, "{q}"),
                    None => l.write_str("none"),
                }
            }
        };
        let _ = write!(
            l,
            ") dirty_decay_ms={} muzzy_decay_ms={} tcache_max={} memory_limit=",
            self.dirty_decay_ms, self.muzzy_decay_ms, self.tcache_max
        );
        let _ = match self.memory_limit {
            Some(m) => write!(l, "{m} ({})", self.memory_limit_from),
            None => l.write_str("none"),
        };
        let p = &self.purge;
        let _ = write!(
            l,
            " purge_interval_ms={} purge_idle_ms={} background_thread={} pressure_pct={}",
            p.interval_ms,
            p.idle_ms,
            u8::from(p.background_thread),
            p.pressure_pct
        );
        let _ = write!(
            l,
            " profile={} profile_sample={}",
            self.profile.mode.word(),
            1u64 << self.profile.lg_sample
        );
        let _ = l.write_str("; jemalloc options ");
        l.quoted(opts, 1024);
    }
}

/// A `fmt::Write` into a byte slice that silently stops when full.
struct Buf<'b> {
    buf: &'b mut [u8],
    len: usize,
}

impl Buf<'_> {
    fn push(&mut self, s: &[u8]) {
        let n = s.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s[..n]);
        self.len += n;
    }
}

impl Write for Buf<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.push(s.as_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn sizes_in_every_spelling() {
        let g4 = Some(4i64 << 30);
        for s in [
            "4gb",
            "4 GB",
            "4g",
            "4G",
            "4GiB",
            "4096 mb",
            "4096m",
            "4294967296",
            " 4 gibibytes ",
        ] {
            assert_eq!(parse_int(s.as_bytes(), true), g4, "{s}");
        }
        assert_eq!(parse_int(b"32k", true), Some(32 << 10));
        assert_eq!(parse_int(b"-1", true), Some(-1));
        assert_eq!(parse_int(b"12 bytes", true), Some(12));
        for bad in [
            "",
            "g",
            "4 x",
            "4gg",
            "4.5g",
            "4 g b",
            "99999999999t",
            "--1",
        ] {
            assert_eq!(parse_int(bad.as_bytes(), true), None, "{bad}");
        }
        // Units only where sizes are meant.
        assert_eq!(parse_int(b"4g", false), None);
        assert_eq!(parse_int(b" 42 ", false), Some(42));
    }

    proptest! {
        #[test]
        fn parse_int_never_panics(raw in proptest::collection::vec(any::<u8>(), 0..40), sizes: bool) {
            let _ = parse_int(&raw, sizes);
        }

        #[test]
        fn numbers_round_trip(n in 0i64..=i64::MAX, neg: bool) {
            let v = if neg { -n } else { n };
            prop_assert_eq!(parse_int(v.to_string().as_bytes(), false), Some(v));
            prop_assert_eq!(parse_int(v.to_string().as_bytes(), true), Some(v));
        }

        #[test]
        fn units_multiply(n in 0i64..(1 << 20), unit in 0usize..SIZE_UNITS.len(), blank: bool, upper: bool) {
            let (name, shift) = SIZE_UNITS[unit];
            let name = if upper { name.to_ascii_uppercase() } else { name.to_string() };
            let text = format!("{n}{}{name}", if blank { " " } else { "" });
            prop_assert_eq!(parse_int(text.as_bytes(), true), Some(n << shift));
        }
    }
}
