//! `jvmalloc profile <pid>`: which code holds the live native memory, from the samples the
//! library takes (see the library's `profile` module and docs/profiling.md).
//!
//! The process sends its raw profile over the request channel: stacks of return addresses
//! with estimated live objects and bytes per allocating thread, live samples by size class,
//! and its file mappings with build-ids. Here the addresses are symbolised from the ELF
//! files ([`crate::symbolize`]; through `/proc/<pid>/root` so a container's files are
//! found) and the JIT's perf map, and the sites are ranked by library, JNI/JVM entry point,
//! allocating thread, size class and full stack. The result ([`Profile`]) is printed as
//! text, JSON (schema `jvmalloc-profile` version 1, in docs/profiling.md), collapsed stacks
//! or a flame graph, and two profiles can be compared ([`diff`]).

use crate::names;
use crate::sites;
use crate::symbolize::{Frame, Mapping, Symbolizer};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fmt::Write;
use std::path::PathBuf;

const MIB: f64 = 1024.0 * 1024.0;

/// What the process sends (`profile` request).
#[derive(Deserialize)]
struct Raw {
    schema: String,
    version: u32,
    pid: u32,
    time_unix: u64,
    uptime_s: f64,
    active: bool,
    sample_interval: u64,
    library: String,
    threads: Vec<RawThread>,
    stacks: Vec<RawStack>,
    size_classes: Vec<RawClass>,
    mappings: Vec<RawMapping>,
}

#[derive(Deserialize)]
struct RawThread {
    uid: u64,
    name: String,
}

#[derive(Deserialize)]
struct RawStack {
    frames: Vec<String>,
    threads: Vec<RawCount>,
}

#[derive(Deserialize)]
struct RawCount {
    uid: u64,
    objects: f64,
    bytes: f64,
    samples: f64,
    variance: f64,
}

#[derive(Deserialize)]
struct RawClass {
    size: u64,
    samples: u64,
    objects: f64,
    bytes: f64,
    variance: f64,
}

#[derive(Deserialize)]
struct RawMapping {
    start: String,
    end: String,
    offset: String,
    path: String,
    build_id: Option<String>,
}

fn hex(s: &str) -> Result<u64, String> {
    u64::from_str_radix(s.trim_start_matches("0x"), 16).map_err(|_| format!("bad address {s:?}"))
}

/// Estimated live objects and bytes, the samples behind them and the standard deviation of
/// the bytes.
#[derive(Serialize, Deserialize, Clone, Copy, Default, Debug, PartialEq)]
pub struct Live {
    pub bytes: f64,
    pub objects: f64,
    pub samples: f64,
    /// One standard deviation of `bytes`.
    pub sigma: f64,
}

impl Live {
    fn add(&mut self, o: &Live) {
        self.bytes += o.bytes;
        self.objects += o.objects;
        self.samples += o.samples;
        self.sigma = self.sigma.hypot(o.sigma);
    }
}

/// One row of a ranking (library, entry point, thread pool, size class).
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Row {
    pub name: String,
    #[serde(flatten)]
    pub live: Live,
}

/// A resolved frame as it is shown and stored.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct ShownFrame {
    pub address: String,
    /// Function (or Java method, from the perf map); null when unknown.
    pub name: Option<String>,
    /// Object the frame is in (basename), `[java]` for JIT code named by the perf map.
    pub library: Option<String>,
    /// `name`, else `library+0xOFFSET`, else the address.
    pub label: String,
}

/// Live memory of one stack allocated by one thread pool.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Site {
    #[serde(flatten)]
    pub live: Live,
    /// First object outside the C library, the C++ runtime and the allocator.
    pub library: String,
    /// First JNI / JVM entry point (`Java_*`, `JVM_*`, `Unsafe_*`, ...), if any.
    pub entry: Option<String>,
    /// The object the entry point is in.
    pub entry_library: Option<String>,
    /// The allocating thread's pool name (`pool-1-thread-*`).
    pub thread: String,
    /// Innermost first, the allocator's own frames left out.
    pub frames: Vec<ShownFrame>,
}

/// A symbolised profile: what `--format json` prints and `diff` reads.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Profile {
    pub schema: String,
    pub version: u32,
    pub pid: u32,
    pub time_unix: u64,
    pub uptime_s: f64,
    pub active: bool,
    pub sample_interval: u64,
    pub total: Live,
    pub by_library: Vec<Row>,
    pub by_entry: Vec<Row>,
    pub by_thread: Vec<Row>,
    pub by_size_class: Vec<Row>,
    pub sites: Vec<Site>,
    /// Stacks that reach code in no file (JIT-compiled or interpreted Java) that no perf
    /// map named.
    pub unnamed_java: usize,
    /// The perf map Java frames were named from, if one was read.
    pub perf_map: Option<String>,
    pub warnings: Vec<String>,
}

pub const SCHEMA: &str = "jvmalloc-profile";

/// Where the files of process `pid` are seen from here: `/proc/<pid>/root` when it can be
/// read (another mount namespace, a container), else the paths as they are.
fn root_of(pid: u32) -> Option<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    let root = PathBuf::from(format!("/proc/{pid}/root"));
    // The link reads `/` after a pivot_root too: compare the directories themselves.
    let id = |p: &std::path::Path| std::fs::metadata(p).ok().map(|m| (m.dev(), m.ino()));
    let ours = id(std::path::Path::new("/"));
    match id(&root) {
        Some(theirs) if Some(theirs) != ours => Some(root),
        _ => None,
    }
}

/// The user id process `pid` runs as.
fn uid_of(pid: u32) -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(format!("/proc/{pid}"))
        .ok()
        .map(|m| m.uid())
}

/// The JIT's perf map of process `pid`, as the JVM wrote it (`/tmp/perf-<pid>.map`, the
/// pid as the process sees it in its own pid namespace).
pub fn perf_map_of(pid: u32) -> Option<PathBuf> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let nspid = status
        .lines()
        .find_map(|l| l.strip_prefix("NSpid:"))
        .and_then(|v| v.split_whitespace().last())
        .unwrap_or("");
    let nspid = if nspid.is_empty() {
        pid.to_string()
    } else {
        nspid.to_string()
    };
    let p = PathBuf::from(format!("/proc/{pid}/root/tmp/perf-{nspid}.map"));
    p.exists().then_some(p)
}

fn ranked(m: HashMap<String, Live>) -> Vec<Row> {
    let mut v: Vec<Row> = m
        .into_iter()
        .map(|(name, live)| Row { name, live })
        .collect();
    v.sort_by(|a, b| {
        b.live
            .bytes
            .total_cmp(&a.live.bytes)
            .then(a.name.cmp(&b.name))
    });
    v
}

fn shown(f: &Frame) -> ShownFrame {
    ShownFrame {
        address: format!("{:#x}", f.address),
        name: f.name.clone(),
        library: f.library.clone(),
        label: f.label(),
    }
}

/// Turns the process's answer into a symbolised profile. `perf_map` overrides where the
/// JIT's names are read from.
pub fn build(answer: &[u8], pid: u32, perf_map: Option<PathBuf>) -> Result<Profile, String> {
    let raw: Raw = serde_json::from_slice(answer)
        .map_err(|e| format!("the profile from process {pid} is not readable ({e})"))?;
    if raw.schema != "jvmalloc-profile-raw" || raw.version != 1 {
        return Err(format!(
            "process {pid} sent a profile of schema {} version {}, which this command does not know",
            raw.schema, raw.version
        ));
    }
    let mappings = raw
        .mappings
        .iter()
        .map(|m| {
            Ok(Mapping {
                start: hex(&m.start)?,
                end: hex(&m.end)?,
                offset: hex(&m.offset)?,
                path: m.path.clone(),
                build_id: m.build_id.clone(),
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    let given = perf_map.is_some();
    let perf_map = perf_map.or_else(|| perf_map_of(pid));
    let mut sym = Symbolizer::new_for(mappings, root_of(pid), perf_map.clone(), uid_of(pid));
    let mut warnings = Vec::new();
    let perf_map = match (sym.perf_map_entries(), perf_map) {
        (Ok(_), Some(p)) => Some(p.display().to_string()),
        (Err(why), Some(p)) if given => {
            warnings.push(format!("perf map {}: {why}", p.display()));
            None
        }
        _ => None,
    };
    let own = sites::basename(&raw.library).to_string();
    let names: HashMap<u64, &str> = raw.threads.iter().map(|t| (t.uid, &*t.name)).collect();

    let (mut by_lib, mut by_entry, mut by_thread) =
        (HashMap::new(), HashMap::new(), HashMap::new());
    let mut sites_map: HashMap<(Vec<String>, String), Site> = HashMap::new();
    let mut total = Live::default();
    let mut unnamed_java = 0;
    for st in &raw.stacks {
        let addrs = st
            .frames
            .iter()
            .map(|a| hex(a))
            .collect::<Result<Vec<_>, _>>()?;
        let frames: Vec<Frame> = addrs
            .iter()
            .enumerate()
            .map(|(i, &a)| sym.resolve(a, i > 0))
            .collect();
        // The allocator's own frames (jemalloc, the exported malloc) say nothing.
        let skip = frames
            .iter()
            .take_while(|f| f.library.as_deref() == Some(own.as_str()))
            .count();
        let frames = &frames[skip..];
        // From the mapping only: JIT code is `[no file]` whether or not a perf map names it.
        let objects = frames.iter().map(|f| {
            f.library
                .as_deref()
                .filter(|l| !f.java && !l.starts_with('['))
        });
        let library = sites::library(objects, &own);
        // The JNI/JVM function Java called, or else (when it tail-called the allocator and
        // left no frame, as JDK 25's Unsafe_AllocateMemory0 does) the Java method itself,
        // when the perf map names it.
        let entry = frames.iter().find_map(|f| {
            let name = f.name.as_deref()?;
            if f.java {
                // A Java method (`long a.B.c(int)`), not one of the JIT's stubs
                // (`g1_pre_barrier_slow`, `Interpreter`).
                let method = java_method(name);
                let is_method = method.find('(').is_some_and(|p| method[..p].contains('.'));
                return is_method.then(|| (method.to_string(), f.library.clone()));
            }
            let e = sites::entry_name(name)?;
            Some((e.to_string(), f.library.clone()))
        });
        if frames
            .iter()
            .any(|f| !f.java && f.library.is_none() && f.name.is_none())
        {
            unnamed_java += 1;
        }
        let shown_frames: Vec<ShownFrame> = frames.iter().map(shown).collect();
        let labels: Vec<String> = shown_frames.iter().map(|f| f.label.clone()).collect();
        for c in &st.threads {
            let live = Live {
                bytes: c.bytes,
                objects: c.objects,
                samples: c.samples,
                sigma: c.variance.max(0.0).sqrt(),
            };
            let name = names.get(&c.uid).copied().unwrap_or("");
            let thread = if name.is_empty() {
                "[unnamed]".to_string()
            } else {
                names::pool_name(name)
            };
            total.add(&live);
            by_lib
                .entry(library.clone())
                .or_insert_with(Live::default)
                .add(&live);
            let entry_key = entry
                .as_ref()
                .map_or("[no entry point]".to_string(), |(e, l)| {
                    format!("{e} ({})", l.as_deref().unwrap_or("?"))
                });
            by_entry
                .entry(entry_key)
                .or_insert_with(Live::default)
                .add(&live);
            by_thread
                .entry(thread.clone())
                .or_insert_with(Live::default)
                .add(&live);
            sites_map
                .entry((labels.clone(), thread.clone()))
                .or_insert_with(|| Site {
                    live: Live::default(),
                    library: library.clone(),
                    entry: entry.as_ref().map(|(e, _)| e.clone()),
                    entry_library: entry.as_ref().and_then(|(_, l)| l.clone()),
                    thread: thread.clone(),
                    frames: shown_frames.clone(),
                })
                .live
                .add(&live);
        }
    }
    let mut sites: Vec<Site> = sites_map.into_values().collect();
    sites.sort_by(|a, b| {
        b.live
            .bytes
            .total_cmp(&a.live.bytes)
            .then(a.thread.cmp(&b.thread))
    });
    let mut by_size_class: Vec<Row> = raw
        .size_classes
        .iter()
        .map(|c| Row {
            name: c.size.to_string(),
            live: Live {
                bytes: c.bytes,
                objects: c.objects,
                samples: c.samples as f64,
                sigma: c.variance.max(0.0).sqrt(),
            },
        })
        .collect();
    by_size_class.sort_by(|a, b| b.live.bytes.total_cmp(&a.live.bytes));
    Ok(Profile {
        schema: SCHEMA.to_string(),
        version: 1,
        pid: raw.pid,
        time_unix: raw.time_unix,
        uptime_s: raw.uptime_s,
        active: raw.active,
        sample_interval: raw.sample_interval,
        total,
        by_library: ranked(by_lib),
        by_entry: ranked(by_entry),
        by_thread: ranked(by_thread),
        by_size_class,
        sites,
        unnamed_java,
        perf_map,
        warnings: warnings.into_iter().chain(sym.warnings()).collect(),
    })
}

/// A perf map's method name without its return type (`long a.B.c(int)` -> `a.B.c(int)`).
fn java_method(name: &str) -> &str {
    let head = name.find('(').unwrap_or(name.len());
    match name[..head].rfind(' ') {
        Some(i) => &name[i + 1..],
        None => name,
    }
}

/// A byte size for people: `96 B`, `64.0 KiB`, `1.0 MiB`.
fn size_text(b: f64) -> String {
    if b >= MIB {
        format!("{:.1} MiB", b / MIB)
    } else if b >= 1024.0 {
        format!("{:.1} KiB", b / 1024.0)
    } else {
        format!("{b:.0} B")
    }
}

fn mib(v: f64) -> f64 {
    v / MIB
}

fn table(o: &mut String, title: &str, rows: &[Row], total: f64, top: usize) {
    let _ = writeln!(
        o,
        "\n{title:<58} {:>10} {:>9} {:>6} {:>10}",
        "live MiB", "± MiB", "share", "objects"
    );
    for r in rows.iter().take(top) {
        let _ = writeln!(
            o,
            "  {:<56} {:>10.1} {:>9.1} {:>5.1}% {:>10.0}",
            r.name,
            mib(r.live.bytes),
            mib(r.live.sigma),
            100.0 * r.live.bytes / total.max(1.0),
            r.live.objects
        );
    }
    if rows.len() > top {
        let mut rest = Live::default();
        rows[top..].iter().for_each(|r| rest.add(&r.live));
        let _ = writeln!(
            o,
            "  {:<56} {:>10.1} {:>9.1} {:>5.1}% {:>10.0}",
            format!("[{} more]", rows.len() - top),
            mib(rest.bytes),
            mib(rest.sigma),
            100.0 * rest.bytes / total.max(1.0),
            rest.objects
        );
    }
}

/// The profile for people: totals, then the rankings, then the top stacks.
pub fn text(p: &Profile, top: usize) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "=== jvmalloc profile pid {} at {} (uptime {:.1} s): sampling {}, one sample per {} KiB allocated on average ===",
        p.pid,
        crate::timefmt::iso_time(p.time_unix),
        p.uptime_s,
        if p.active { "active" } else { "INACTIVE (jvmalloc profile --start)" },
        p.sample_interval >> 10
    );
    let _ = writeln!(
        o,
        "live native memory in sampled allocations: {:.1} MiB ± {:.1} MiB (one standard deviation), {:.0} objects, from {:.0} samples",
        mib(p.total.bytes),
        mib(p.total.sigma),
        p.total.objects,
        p.total.samples
    );
    let _ = writeln!(
        o,
        "(estimates: each sample stands for the bytes allocated around it; ± is the sampling error, \
         about 1/sqrt(samples) of a row)"
    );
    let t = p.total.bytes;
    table(
        &mut o,
        "by library (first frame outside libc and the allocator)",
        &p.by_library,
        t,
        top,
    );
    table(&mut o, "by JNI / JVM entry point", &p.by_entry, t, top);
    table(&mut o, "by allocating thread", &p.by_thread, t, top);
    let classes: Vec<Row> = p
        .by_size_class
        .iter()
        .map(|r| Row {
            name: format!("{} bytes", r.name),
            live: r.live,
        })
        .collect();
    table(&mut o, "by size class", &classes, t, top);
    let _ = writeln!(o, "\ntop stacks (innermost frame first)");
    for (i, s) in p.sites.iter().take(top).enumerate() {
        let _ = writeln!(
            o,
            "#{:<3} {:.1} MiB ± {:.1} ({:.1}%), {:.0} objects of {} on average; thread {}; library {}; entry {}",
            i + 1,
            mib(s.live.bytes),
            mib(s.live.sigma),
            100.0 * s.live.bytes / t.max(1.0),
            s.live.objects,
            size_text(s.live.bytes / s.live.objects.max(1.0)),
            s.thread,
            s.library,
            s.entry.as_deref().unwrap_or("-")
        );
        for f in &s.frames {
            let lib = f.library.as_deref().unwrap_or("");
            match &f.name {
                Some(_) if !lib.is_empty() => {
                    let _ = writeln!(o, "       {}  ({lib})", f.label);
                }
                _ => {
                    let _ = writeln!(o, "       {}", f.label);
                }
            }
        }
    }
    match (&p.perf_map, p.unnamed_java) {
        (_, 0) => {}
        (None, n) => {
            let _ = writeln!(
                o,
                "\n{n} stack(s) reach Java code (addresses in no file): run `jcmd {} Compiler.perfmap` \
                 (JDK 17+) and profile again to name the compiled methods",
                p.pid
            );
        }
        (Some(map), n) => {
            let _ = writeln!(
                o,
                "\n{n} stack(s) reach Java code that {map} does not name (interpreted frames, or \
                 code compiled after the map was written)"
            );
        }
    }
    o
}

/// Collapsed stacks (`outermost;...;innermost bytes`), the input of flame-graph tools.
pub fn collapsed(p: &Profile) -> String {
    let mut o = String::new();
    for s in &p.sites {
        let bytes = s.live.bytes.round() as u64;
        if bytes == 0 {
            continue;
        }
        let names: Vec<String> = s
            .frames
            .iter()
            .rev()
            .map(|f| f.label.replace([';', ' '], "_"))
            .collect();
        let _ = writeln!(o, "{} {bytes}", names.join(";"));
    }
    o
}

/// A flame graph of live bytes (SVG).
pub fn svg(p: &Profile) -> Result<Vec<u8>, String> {
    let lines = collapsed(p);
    let mut opts = inferno::flamegraph::Options::default();
    opts.title = format!(
        "jvmalloc: live native memory of pid {} by allocation site",
        p.pid
    );
    opts.count_name = "bytes".to_string();
    opts.name_type = "Site:".to_string();
    let mut out = Vec::new();
    if lines.is_empty() {
        return Err("the profile has no live samples: nothing to draw".to_string());
    }
    inferno::flamegraph::from_lines(&mut opts, lines.lines(), &mut out)
        .map_err(|e| format!("cannot draw the flame graph: {e}"))?;
    Ok(out)
}

/// Reads a profile written by `--format json` (the last non-empty line of the file).
pub fn read(path: &std::path::Path) -> Result<Profile, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    serde_json::from_str::<Profile>(last_line(&text)).map_err(|e| {
        format!(
            "{} is not a whole jvmalloc profile (jvmalloc profile --format json): {e}",
            path.display()
        )
    })
}

/// Whether the file looks like a profile rather than a dump (its last line names the
/// profile schema).
pub fn is_profile(path: &std::path::Path) -> bool {
    std::fs::read_to_string(path)
        .is_ok_and(|t| last_line(&t).contains(&format!("\"schema\":\"{SCHEMA}\"")))
}

/// The last line of `text` that is not blank (a profile file holds one).
fn last_line(text: &str) -> &str {
    text.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
}

/// Growth of one key between two profiles.
struct Growth {
    name: String,
    old: Live,
    new: Live,
}

impl Growth {
    fn delta(&self) -> f64 {
        self.new.bytes - self.old.bytes
    }
    fn sigma(&self) -> f64 {
        self.old.sigma.hypot(self.new.sigma)
    }
}

fn growth(old: &[(String, Live)], new: &[(String, Live)]) -> Vec<Growth> {
    let mut m: HashMap<&str, Growth> = HashMap::new();
    let sides = old.iter().map(|r| (r, true));
    for ((k, l), is_old) in sides.chain(new.iter().map(|r| (r, false))) {
        let g = m.entry(k).or_insert_with(|| Growth {
            name: k.clone(),
            old: Live::default(),
            new: Live::default(),
        });
        if is_old { &mut g.old } else { &mut g.new }.add(l);
    }
    let mut v: Vec<Growth> = m.into_values().collect();
    v.sort_by(|a, b| b.delta().total_cmp(&a.delta()).then(a.name.cmp(&b.name)));
    v
}

fn rows(r: &[Row]) -> Vec<(String, Live)> {
    r.iter().map(|r| (r.name.clone(), r.live)).collect()
}

fn site_key(s: &Site) -> String {
    let frames: Vec<&str> = s.frames.iter().map(|f| f.label.as_str()).collect();
    format!("thread {}: {}", s.thread, frames.join(" <- "))
}

/// Frames shown per stack in a diff line (the rest are counted).
const DIFF_FRAMES: usize = 6;

/// A site key cut to its first [`DIFF_FRAMES`] frames, for one line of text.
fn short_key(key: &str) -> String {
    let Some((thread, frames)) = key.split_once(": ") else {
        return key.to_string();
    };
    let frames: Vec<&str> = frames.split(" <- ").collect();
    if frames.len() <= DIFF_FRAMES {
        return key.to_string();
    }
    format!(
        "{thread}: {} <- ... ({} more)",
        frames[..DIFF_FRAMES].join(" <- "),
        frames.len() - DIFF_FRAMES
    )
}

/// Checks that two profiles can be compared: same process unless `allow_different`, old
/// taken before new.
pub fn check(old: &Profile, new: &Profile, allow_different: bool) -> Result<(), String> {
    let start = |p: &Profile| p.time_unix as f64 - p.uptime_s;
    let apart = (start(old) - start(new)).abs();
    if !allow_different && (old.pid != new.pid || apart > 2.0) {
        return Err(format!(
            "the profiles are of different processes (pid {} and pid {}, started {apart:.0} s \
             apart); pass --allow-different to compare them anyway",
            old.pid, new.pid
        ));
    }
    if new.time_unix < old.time_unix {
        return Err("the old profile was taken after the new one: swap them".to_string());
    }
    Ok(())
}

/// What grew between two profiles: libraries, entry points and stacks ranked by growth of
/// live bytes, the leak view. A site that only churns keeps about the same live bytes, so
/// its growth stays within its sampling error and it ranks below one that grows.
pub fn diff(old: &Profile, new: &Profile, top: usize) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "=== jvmalloc profile diff: pid {}, {:.0} s apart (uptime {:.1} s -> {:.1} s) ===",
        new.pid,
        new.time_unix as f64 - old.time_unix as f64,
        old.uptime_s,
        new.uptime_s
    );
    let _ = writeln!(
        o,
        "live sampled native memory: {:.1} MiB -> {:.1} MiB ({:+.1} MiB ± {:.1})",
        mib(old.total.bytes),
        mib(new.total.bytes),
        mib(new.total.bytes - old.total.bytes),
        mib(old.total.sigma.hypot(new.total.sigma))
    );
    if !old.active || !new.active {
        let _ = writeln!(
            o,
            "note: sampling was inactive in {} profile: allocations made while it was off are not counted",
            if old.active { "the new" } else { "the old" }
        );
    }
    let mut section = |title: &str, g: Vec<Growth>| {
        let _ = writeln!(
            o,
            "\n{title:<58} {:>10} {:>9} {:>10} {:>10}",
            "growth MiB", "± MiB", "old MiB", "new MiB"
        );
        for r in g.iter().take(top) {
            let _ = writeln!(
                o,
                "  {:<56} {:>+10.1} {:>9.1} {:>10.1} {:>10.1}{}",
                r.name,
                mib(r.delta()),
                mib(r.sigma()),
                mib(r.old.bytes),
                mib(r.new.bytes),
                if r.delta().abs() <= 2.0 * r.sigma() {
                    "  (within sampling error)"
                } else {
                    ""
                }
            );
        }
    };
    section(
        "by library",
        growth(&rows(&old.by_library), &rows(&new.by_library)),
    );
    section(
        "by JNI / JVM entry point",
        growth(&rows(&old.by_entry), &rows(&new.by_entry)),
    );
    section(
        "by allocating thread",
        growth(&rows(&old.by_thread), &rows(&new.by_thread)),
    );
    let sites = |p: &Profile| -> Vec<(String, Live)> {
        p.sites.iter().map(|s| (site_key(s), s.live)).collect()
    };
    let g = growth(&sites(old), &sites(new));
    let _ = writeln!(o, "\nstacks by growth (innermost frame first)");
    for (i, r) in g.iter().take(top).enumerate() {
        let _ = writeln!(
            o,
            "#{:<3} {:+.1} MiB ± {:.1} ({:.1} -> {:.1} MiB)  {}",
            i + 1,
            mib(r.delta()),
            mib(r.sigma()),
            mib(r.old.bytes),
            mib(r.new.bytes),
            short_key(&r.name)
        );
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live(mib_: f64, sigma: f64) -> Live {
        Live {
            bytes: mib_ * MIB,
            objects: 1.0,
            samples: 1.0,
            sigma: sigma * MIB,
        }
    }

    #[test]
    fn growth_ranks_a_growing_key_above_a_churning_one() {
        let old = vec![
            ("leak".to_string(), live(10.0, 0.5)),
            ("churn".to_string(), live(50.0, 3.0)),
        ];
        let new = vec![
            ("leak".to_string(), live(30.0, 0.8)),
            ("churn".to_string(), live(52.0, 3.0)),
        ];
        let g = growth(&old, &new);
        assert_eq!(g[0].name, "leak");
        assert!((g[0].delta() - 20.0 * MIB).abs() < 1.0);
        assert_eq!(g[1].name, "churn");
        // A key only in one profile counts from or to zero.
        let g = growth(&[], &[("new".to_string(), live(1.0, 0.0))]);
        assert_eq!(g[0].old, Live::default());
    }

    #[test]
    fn java_methods_lose_their_return_type() {
        assert_eq!(
            java_method("long java.util.zip.Deflater.init(int, int, boolean)"),
            "java.util.zip.Deflater.init(int, int, boolean)"
        );
        assert_eq!(java_method("Interpreter"), "Interpreter");
        assert_eq!(
            java_method("void a.B.c(java.lang.String x)"),
            "a.B.c(java.lang.String x)"
        );
    }

    #[test]
    fn live_figures_add_with_independent_errors() {
        let mut a = live(3.0, 3.0);
        a.add(&live(4.0, 4.0));
        assert!((a.bytes - 7.0 * MIB).abs() < 1.0);
        assert!((a.sigma - 5.0 * MIB).abs() < 1.0);
    }

    #[test]
    fn a_truncated_answer_is_one_clear_error() {
        let e = build(b"{\"schema\":\"jvmalloc-profile-raw\",\"vers", 1, None).unwrap_err();
        assert!(
            e.starts_with("the profile from process 1 is not readable"),
            "{e}"
        );
        assert!(!e.contains('\n'));
    }
}
