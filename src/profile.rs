//! Allocation-site profiles: jemalloc's sampled heap profiling, read on the `jvmalloc`
//! thread and handed out raw (addresses, never names) for the command to symbolise.
//!
//! jemalloc samples allocations as a Poisson process over bytes: on average one sample
//! every `2^lg_prof_sample` bytes (`JVMALLOC_PROFILE_SAMPLE`, 512 KiB by default). For a
//! sampled allocation it records the stack (libgcc's unwinder, which follows the
//! `.eh_frame` tables of native code and stops at the first frame that has none: JIT-compiled
//! or interpreted Java code) and the allocating thread, and keeps live counts per stack and
//! thread until the object is freed. Its counts are unbiased estimates: a sample of size
//! `s` stands for `1 / (1 - exp(-s / R))` objects.
//!
//! - [`take`] asks jemalloc for its profile (`prof.dump`, written into an anonymous memory
//!   file, never into the file system) and parses it: stacks of return addresses, each with
//!   live objects and bytes per allocating thread, and the threads' names (read by jemalloc
//!   with `pthread_getname_np` at each sample, so a JVM thread carries its Java name).
//! - [`mappings`] lists the process's file mappings with the GNU build-ids read from the
//!   loaded objects, so the command can check the files it symbolises with.
//! - [`raw_json`] is the answer to the command's `profile` request; [`Summary`] is what dumps
//!   and metrics show: live bytes by allocating thread and by library.
//!
//! Everything here runs on the `jvmalloc` thread (or the thread writing a dump), never on
//! the allocation path.

use crate::jemalloc;
use crate::sites::{self, Mapping};
use std::collections::HashMap;
use std::fmt::Write;

/// Whether jemalloc was built with profiling and this process armed it (`opt.prof`).
pub fn armed() -> bool {
    jemalloc::read::<bool>(c"opt.prof").unwrap_or(false)
}

/// Whether sampling is on now (`prof.active`).
pub fn active() -> bool {
    jemalloc::read::<bool>(c"prof.active").unwrap_or(false)
}

/// Mean bytes between samples (`2^prof.lg_sample`).
pub fn sample_interval() -> u64 {
    jemalloc::read::<usize>(c"prof.lg_sample").map_or(0, |lg| 1u64 << lg.min(63))
}

/// Why profiles cannot be had in this process, if they cannot.
pub fn unavailable() -> Option<&'static str> {
    if !cfg!(feature = "profiling") {
        Some("this libjvmalloc.so was built without profiling (cargo feature `profiling`)")
    } else if !armed() {
        Some("profiling is not armed in this process (JVMALLOC_PROFILE=never)")
    } else {
        None
    }
}

/// Turns sampling on or off (`prof.active`); returns the previous state.
pub fn set_active(on: bool) -> Result<bool, String> {
    if let Some(why) = unavailable() {
        return Err(why.to_string());
    }
    let was = active();
    if jemalloc::write(c"prof.active", on) {
        Ok(was)
    } else {
        Err("jemalloc refused to change prof.active".to_string())
    }
}

/// One allocating thread as jemalloc knows it.
#[derive(Clone, Debug, PartialEq)]
pub struct Thread {
    /// jemalloc's thread number (not the kernel thread id: it is never reused).
    pub uid: u64,
    /// The thread's name at its last sample ("" if unknown).
    pub name: String,
}

/// Live sampled allocations of one stack by one thread, as jemalloc prints them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Count {
    pub uid: u64,
    /// jemalloc's printed count: about the number of samples (see [`Count::estimate`]).
    pub objects_in: u64,
    /// jemalloc's printed bytes.
    pub bytes_in: u64,
}

/// An unbiased estimate of live objects and bytes, with the number of samples behind it
/// and the estimate's standard deviation in bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Estimate {
    pub objects: f64,
    pub bytes: f64,
    pub samples: f64,
    /// Variance of `bytes` (bytes²); add variances of independent estimates.
    pub variance: f64,
}

impl Estimate {
    pub fn add(&mut self, o: &Estimate) {
        self.objects += o.objects;
        self.bytes += o.bytes;
        self.samples += o.samples;
        self.variance += o.variance;
    }

    /// One standard deviation of `bytes`.
    pub fn sigma(&self) -> f64 {
        self.variance.sqrt()
    }
}

impl Count {
    /// Undoes the form jemalloc prints its unbiased counts in. jemalloc keeps exact
    /// per-size-class unbiased totals (objects `c`, bytes `b`) and prints `x = b/c · p`
    /// style values that jeprof's own average-size correction turns back into them: with
    /// mean size `m = bytes_in / objects_in` and `p = 1 - exp(-m / R)`, it prints
    /// `objects_in = c · p` and `bytes_in = b · p`. So `c = objects_in / p`,
    /// `b = bytes_in / p`, and `objects_in` is the expected number of samples. The
    /// variance of such an estimate (Horvitz-Thompson, one size per site) is
    /// `n · (m / p)² · (1 - p)` for `n` samples.
    pub fn estimate(&self, interval: u64) -> Estimate {
        if self.objects_in == 0 || self.bytes_in == 0 || interval == 0 {
            return Estimate::default();
        }
        let n = self.objects_in as f64;
        let m = self.bytes_in as f64 / n;
        let p = -(-m / interval as f64).exp_m1();
        let w = m / p;
        Estimate {
            objects: n / p,
            bytes: self.bytes_in as f64 / p,
            samples: n,
            variance: n * w * w * (1.0 - p),
        }
    }
}

/// One sampled stack (return addresses, innermost first) and its live counts by thread.
#[derive(Clone, Debug, PartialEq)]
pub struct Stack {
    pub frames: Vec<u64>,
    pub counts: Vec<Count>,
}

/// jemalloc's heap profile, parsed.
#[derive(Clone, Debug, PartialEq)]
pub struct Raw {
    /// Mean bytes between samples.
    pub interval: u64,
    pub threads: Vec<Thread>,
    pub stacks: Vec<Stack>,
}

/// Whether `l` is jemalloc's `  t*: <objs>: <bytes> [<objs>: <bytes>]` line.
fn is_totals_line(l: &str) -> bool {
    let Some(rest) = l.strip_prefix("  t*: ") else {
        return false;
    };
    let mut n = 0;
    for (i, part) in rest
        .split([':', ' ', '[', ']'])
        .filter(|s| !s.is_empty())
        .enumerate()
    {
        if !part.bytes().all(|b| b.is_ascii_digit()) {
            return false;
        }
        n = i + 1;
    }
    n == 4 && rest.ends_with(']')
}

/// Parses jemalloc's `heap_v2` text. Lines it does not know are skipped; the mapped
/// libraries that end it are not needed ([`mappings`] reads them with build-ids).
///
/// Thread names are the one part a program controls (up to 15 bytes, any bytes but NUL),
/// and jemalloc prints them as they are. A name with a newline could start a line of its
/// own: a stack line counts only when the next line is a well-formed `t*:` totals line,
/// which no 15-byte name can also supply, and control characters in names are replaced.
pub fn parse(text: &str) -> Result<Raw, String> {
    let mut lines = text.lines().peekable();
    let interval = lines
        .next()
        .and_then(|l| l.strip_prefix("heap_v2/"))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .ok_or("not a jemalloc heap_v2 profile")?;
    let mut raw = Raw {
        interval,
        threads: Vec::new(),
        stacks: Vec::new(),
    };
    // Counts line: `t<uid>: <objs>: <bytes> [<objs>: <bytes>][ <name>]`.
    fn counts(l: &str) -> Option<(u64, u64, u64, &str)> {
        let rest = l.trim_start().strip_prefix('t')?;
        let (uid, rest) = rest.split_once(": ")?;
        let uid = uid.parse().ok()?;
        let (objs, rest) = rest.split_once(": ")?;
        let (bytes, rest) = rest.split_once(' ')?;
        let name = rest.split_once("] ").map_or("", |(_, n)| n);
        Some((uid, objs.parse().ok()?, bytes.parse().ok()?, name))
    }
    while let Some(l) = lines.next() {
        if l.starts_with("MAPPED_LIBRARIES:") {
            break;
        }
        let stack_line = l.starts_with('@') && lines.peek().is_some_and(|n| is_totals_line(n));
        if let Some(addrs) = l.strip_prefix('@').filter(|_| stack_line) {
            let frames = addrs
                .split_whitespace()
                .map(|a| u64::from_str_radix(a.trim_start_matches("0x"), 16))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| format!("bad stack line {l:?}"))?;
            raw.stacks.push(Stack {
                frames,
                counts: Vec::new(),
            });
        } else if l.trim_start().starts_with("t*:") {
            continue;
        } else if let Some((uid, objects_in, bytes_in, name)) = counts(l) {
            match raw.stacks.last_mut() {
                Some(s) => s.counts.push(Count {
                    uid,
                    objects_in,
                    bytes_in,
                }),
                None => raw.threads.push(Thread {
                    uid,
                    name: name
                        .chars()
                        .map(|c| if c.is_control() { '?' } else { c })
                        .collect(),
                }),
            }
        }
    }
    Ok(raw)
}

/// Takes jemalloc's heap profile now.
pub fn take() -> Result<Raw, String> {
    if let Some(why) = unavailable() {
        return Err(why.to_string());
    }
    // An anonymous memory file: jemalloc opens the name it is given with `creat`, and
    // `/proc/self/fd/<n>` reopens this file, so nothing is created in any directory.
    // SAFETY: a NUL-terminated name; flags valid.
    let fd = unsafe { libc::memfd_create(c"jvmalloc-profile".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(format!(
            "cannot create a memory file for the profile: {}",
            std::io::Error::last_os_error()
        ));
    }
    // SAFETY: `fd` was just created and is owned here alone.
    let file = unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    let name = std::ffi::CString::new(format!("/proc/self/fd/{fd}")).expect("no NUL");
    if !jemalloc::write(c"prof.dump", name.as_ptr()) {
        return Err("jemalloc could not write its profile (prof.dump failed)".to_string());
    }
    // Thread names are copied unchecked from pthread_getname_np: not always UTF-8 (a Java
    // name cut at 15 bytes in the middle of a character).
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut &file, &mut bytes)
        .map_err(|e| format!("cannot read the profile back: {e}"))?;
    parse(&String::from_utf8_lossy(&bytes))
}

/// Live sampled objects per size class: (size class in bytes, samples, requested bytes),
/// from jemalloc's `prof.stats` (exact sample counts, which [`take`] does not give).
pub fn size_classes() -> Vec<(u64, u64, u64)> {
    #[derive(Clone, Copy, Default)]
    #[repr(C)]
    struct ProfStats {
        req_sum: u64,
        count: u64,
    }
    let n = |name| jemalloc::read::<u32>(name).unwrap_or(0) as usize;
    let mut out = Vec::new();
    for (kind, count) in [
        ("bin", n(c"arenas.nbins")),
        ("lextent", n(c"arenas.nlextents")),
    ] {
        let (live, size) = match kind {
            "bin" => (c"prof.stats.bins.0.live", c"arenas.bin.0.size"),
            _ => (c"prof.stats.lextents.0.live", c"arenas.lextent.0.size"),
        };
        let (Some(live), Some(size)) = (jemalloc::Mib::new(live), jemalloc::Mib::new(size)) else {
            continue;
        };
        for i in 0..count {
            let Some(s) = live.at(3, i).read::<ProfStats>() else {
                continue;
            };
            if s.count > 0 {
                let sz = size.at(2, i).read::<usize>().unwrap_or(0) as u64;
                out.push((sz, s.count, s.req_sum));
            }
        }
    }
    out
}

/// The estimate for `samples` live samples of size class `size`.
pub fn class_estimate(size: u64, samples: u64, interval: u64) -> Estimate {
    Count {
        uid: 0,
        objects_in: samples,
        bytes_in: samples * size,
    }
    .estimate(interval)
}

/// Build-ids of loaded objects, by the address ranges of their loadable segments.
fn build_ids() -> Vec<(u64, u64, String)> {
    unsafe extern "C" fn each(
        info: *mut libc::dl_phdr_info,
        _size: usize,
        out: *mut libc::c_void,
    ) -> libc::c_int {
        // SAFETY: the loader passes a valid dl_phdr_info; `out` is the Vec passed below.
        let (info, out) = unsafe { (&*info, &mut *out.cast::<Vec<(u64, u64, String)>>()) };
        if info.dlpi_phdr.is_null() {
            return 0;
        }
        // SAFETY: dlpi_phdr points to dlpi_phnum program headers of a loaded object.
        let phdrs = unsafe { std::slice::from_raw_parts(info.dlpi_phdr, info.dlpi_phnum.into()) };
        let base = info.dlpi_addr;
        let mut id = None;
        let loaded = |start: u64, len: u64| {
            phdrs.iter().any(|l| {
                l.p_type == libc::PT_LOAD
                    && l.p_vaddr <= start
                    && start.saturating_add(len) <= l.p_vaddr.saturating_add(l.p_filesz)
            })
        };
        for ph in phdrs
            .iter()
            .filter(|p| p.p_type == libc::PT_NOTE && loaded(p.p_vaddr, p.p_memsz))
        {
            // SAFETY: the note lies within the file-backed part of one of this object's
            // loaded segments (checked just above), which the loader mapped readable.
            let notes = unsafe {
                std::slice::from_raw_parts((base + ph.p_vaddr) as *const u8, ph.p_memsz as usize)
            };
            id = id.or_else(|| find_build_id(notes));
        }
        let Some(id) = id else { return 0 };
        for ph in phdrs.iter().filter(|p| p.p_type == libc::PT_LOAD) {
            out.push((
                base + ph.p_vaddr,
                base + ph.p_vaddr + ph.p_memsz,
                id.clone(),
            ));
        }
        0
    }
    let mut out: Vec<(u64, u64, String)> = Vec::new();
    // SAFETY: the callback only reads the loader's data and pushes into `out`, which
    // outlives the call.
    unsafe { libc::dl_iterate_phdr(Some(each), (&mut out as *mut Vec<_>).cast()) };
    out
}

/// The GNU build-id in an ELF note section, as lowercase hex.
fn find_build_id(mut notes: &[u8]) -> Option<String> {
    let word = |b: &[u8]| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as usize;
    while notes.len() >= 12 {
        let (namesz, descsz, kind) = (word(notes), word(&notes[4..]), word(&notes[8..]));
        let name_end = 12 + namesz.next_multiple_of(4);
        let desc_end = name_end + descsz.next_multiple_of(4);
        if desc_end > notes.len() {
            return None;
        }
        if kind == 3 && namesz == 4 && &notes[12..16] == b"GNU\0" {
            let desc = &notes[name_end..name_end + descsz];
            return Some(desc.iter().fold(String::new(), |mut s, b| {
                let _ = write!(s, "{b:02x}");
                s
            }));
        }
        notes = &notes[desc_end..];
    }
    None
}

/// The process's file-backed mappings (`/proc/self/maps`), with build-ids.
pub fn mappings() -> Vec<Mapping> {
    let ids = build_ids();
    let maps = std::fs::read("/proc/self/maps").unwrap_or_default();
    let mut out = Vec::new();
    for line in String::from_utf8_lossy(&maps).lines() {
        let mut f = line.splitn(6, ' ');
        let (Some(range), Some(_perm), Some(offset), Some(_dev), Some(_inode)) =
            (f.next(), f.next(), f.next(), f.next(), f.next())
        else {
            continue;
        };
        let path = f.next().unwrap_or("").trim_start();
        if !path.starts_with('/') {
            continue;
        }
        let hex = |s: &str| u64::from_str_radix(s, 16).ok();
        let Some((start, end)) = range.split_once('-') else {
            continue;
        };
        let (Some(start), Some(end), Some(offset)) = (hex(start), hex(end), hex(offset)) else {
            continue;
        };
        let build_id = ids
            .iter()
            .find(|(s, e, _)| *s <= start && start < *e)
            .map(|(_, _, id)| id.clone());
        out.push(Mapping {
            start,
            end,
            offset,
            path: path.to_string(),
            build_id,
        });
    }
    out
}

/// The path of this library (jvmalloc's `.so`) as the memory map names it (symbolic links
/// resolved, as in [`mappings`]); what the loader calls it if it is not found there.
pub fn own_path(maps: &[Mapping]) -> String {
    let here = own_path as *const () as u64;
    maps.iter()
        .find(|m| m.start <= here && here < m.end)
        .map(|m| m.path.clone())
        .or_else(|| {
            crate::init::object_path(own_path as *const ())
                .map(|c| c.to_string_lossy().into_owned())
        })
        .unwrap_or_default()
}

/// Live bytes by allocating thread (pooled by name) and by library, for dumps and metrics.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    pub active: bool,
    pub interval: u64,
    pub total: Estimate,
    /// (thread pool name, estimate), biggest first.
    pub by_thread: Vec<(String, Estimate)>,
    /// (library basename, estimate), biggest first.
    pub by_library: Vec<(String, Estimate)>,
}

fn sorted(m: HashMap<String, Estimate>) -> Vec<(String, Estimate)> {
    let mut v: Vec<_> = m.into_iter().collect();
    v.sort_by(|a, b| b.1.bytes.total_cmp(&a.1.bytes).then_with(|| a.0.cmp(&b.0)));
    v
}

/// The library each stack is attributed to (see [`crate::sites`]), found in `maps`:
/// `[no file]` when its first frame outside the runtime is in no file (JIT code), `[runtime]`
/// when every frame is in the runtime.
pub fn library_of(frames: &[u64], maps: &[Mapping], own: &str) -> String {
    let objects = frames.iter().enumerate().map(|(i, &a)| {
        // A return address (every frame but the innermost) may be just past its call's
        // mapping: look up the call, as the command does.
        let a = if i > 0 { a.wrapping_sub(1) } else { a };
        maps.iter()
            .find(|m| m.start <= a && a < m.end)
            .map(|m| sites::basename(&m.path))
    });
    sites::library(objects, own)
}

/// Summarises the profile for a dump; `None` when profiles are unavailable or empty while
/// sampling is off.
pub fn summary() -> Option<Summary> {
    if unavailable().is_some() {
        return None;
    }
    let active = active();
    // Sampling off and no live sample (the default until someone turns it on): nothing to
    // show, and no reason to make jemalloc write its profile on every scrape.
    if !active && size_classes().is_empty() {
        return None;
    }
    let raw = take().ok()?;
    if raw.stacks.is_empty() && !active {
        return None;
    }
    let maps = mappings();
    let own_path = own_path(&maps);
    let own = sites::basename(&own_path);
    let names: HashMap<u64, &str> = raw.threads.iter().map(|t| (t.uid, &*t.name)).collect();
    let (mut threads, mut libs) = (HashMap::new(), HashMap::new());
    let mut total = Estimate::default();
    for s in &raw.stacks {
        let lib = library_of(&s.frames, &maps, own);
        for c in &s.counts {
            let e = c.estimate(raw.interval);
            let name = names.get(&c.uid).copied().unwrap_or("");
            let pool = if name.is_empty() {
                "[unnamed]".to_string()
            } else {
                crate::names::pool_name(name)
            };
            threads
                .entry(pool)
                .or_insert_with(Estimate::default)
                .add(&e);
            libs.entry(lib.clone())
                .or_insert_with(Estimate::default)
                .add(&e);
            total.add(&e);
        }
    }
    Some(Summary {
        active,
        interval: raw.interval,
        total,
        by_thread: sorted(threads),
        by_library: sorted(libs),
    })
}

/// The answer to the command's `profile` request: the raw profile (addresses only), the
/// live samples by size class, and the mappings with build-ids. Schema in
/// docs/profiling.md ("What the process sends").
pub fn raw_json(pid: u32, unix_time: u64, uptime_s: f64) -> Result<String, String> {
    let raw = take()?;
    let mut o = String::with_capacity(64 << 10);
    let maps = mappings();
    let own = own_path(&maps);
    let _ = write!(
        o,
        "{{\"schema\":\"jvmalloc-profile-raw\",\"version\":1,\"pid\":{pid},\"time_unix\":{unix_time},\
         \"uptime_s\":{uptime_s:.3},\"active\":{},\"sample_interval\":{},\"library\":",
        active(),
        raw.interval
    );
    crate::report::js(&mut o, &own);
    o.push_str(",\"threads\":[");
    for (i, t) in raw.threads.iter().enumerate() {
        let _ = write!(
            o,
            "{}{{\"uid\":{},\"name\":",
            if i > 0 { "," } else { "" },
            t.uid
        );
        crate::report::js(&mut o, &t.name);
        o.push('}');
    }
    o.push_str("],\"stacks\":[");
    for (i, s) in raw.stacks.iter().enumerate() {
        o.push_str(if i > 0 {
            ",{\"frames\":["
        } else {
            "{\"frames\":["
        });
        for (j, f) in s.frames.iter().enumerate() {
            let _ = write!(o, "{}\"{f:#x}\"", if j > 0 { "," } else { "" });
        }
        o.push_str("],\"threads\":[");
        for (j, c) in s.counts.iter().enumerate() {
            let e = c.estimate(raw.interval);
            let _ = write!(
                o,
                "{}{{\"uid\":{},\"objects\":{:.0},\"bytes\":{:.0},\"samples\":{:.2},\"variance\":{:.0}}}",
                if j > 0 { "," } else { "" },
                c.uid,
                e.objects,
                e.bytes,
                e.samples,
                e.variance
            );
        }
        o.push_str("]}");
    }
    o.push_str("],\"size_classes\":[");
    for (i, (size, samples, requested)) in size_classes().into_iter().enumerate() {
        let e = class_estimate(size, samples, raw.interval);
        let _ = write!(
            o,
            "{}{{\"size\":{size},\"samples\":{samples},\"requested\":{requested},\"objects\":{:.0},\"bytes\":{:.0},\"variance\":{:.0}}}",
            if i > 0 { "," } else { "" },
            e.objects,
            e.bytes,
            e.variance
        );
    }
    o.push_str("],\"mappings\":[");
    for (i, m) in maps.iter().enumerate() {
        let _ = write!(
            o,
            "{}{{\"start\":\"{:#x}\",\"end\":\"{:#x}\",\"offset\":\"{:#x}\",\"path\":",
            if i > 0 { "," } else { "" },
            m.start,
            m.end,
            m.offset
        );
        crate::report::js(&mut o, &m.path);
        o.push_str(",\"build_id\":");
        match &m.build_id {
            Some(id) => crate::report::js(&mut o, id),
            None => o.push_str("null"),
        }
        o.push('}');
    }
    o.push_str("]}\n");
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "heap_v2/524288
  t*: 3: 200000 [0: 0]
  t0: 2: 150000 [0: 0] main
  t7: 1: 50000 [0: 0] pool-1-thread-3
@ 0x7f0000001000 0x7f0000002000 0x7f0000003000
  t*: 2: 150000 [0: 0]
  t0: 2: 150000 [0: 0]
@ 0x7f0000001000 0x55aa
  t*: 1: 50000 [0: 0]
  t7: 1: 50000 [0: 0]

MAPPED_LIBRARIES:
55aa-55ab r-xp 00000000 08:01 1 /bin/x
";

    #[test]
    fn parses_jemallocs_heap_profile() {
        let r = parse(SAMPLE).unwrap();
        assert_eq!(r.interval, 524288);
        assert_eq!(
            r.threads,
            vec![
                Thread {
                    uid: 0,
                    name: "main".into()
                },
                Thread {
                    uid: 7,
                    name: "pool-1-thread-3".into()
                }
            ]
        );
        assert_eq!(r.stacks.len(), 2);
        assert_eq!(
            r.stacks[0].frames,
            vec![0x7f0000001000, 0x7f0000002000, 0x7f0000003000]
        );
        assert_eq!(
            r.stacks[1].counts,
            vec![Count {
                uid: 7,
                objects_in: 1,
                bytes_in: 50000
            }]
        );
        assert!(parse("hello").is_err());
        // A thread name with a newline cannot make a stack of its own.
        let forged = "heap_v2/524288\n  t*: 1: 1 [0: 0]\n  t0: 1: 1 [0: 0] a\n@ 0x1\n  t1: 1: 5 [0: 0] b\u{1b}\n@ 0x2\n  t*: 1: 5 [0: 0]\n  t1: 1: 5 [0: 0]\n";
        let r = parse(forged).unwrap();
        assert_eq!(r.stacks.len(), 1, "{r:?}");
        assert_eq!(r.stacks[0].frames, vec![2]);
        assert_eq!(r.threads.len(), 2);
        assert_eq!(r.threads[1].name, "b?");
        assert!(is_totals_line("  t*: 12: 3456 [0: 0]"));
        assert!(!is_totals_line("  t*: 12: 3456"));
        assert!(parse("heap_v2/1\n@ 0xzz\n  t*: 1: 1 [0: 0]\n").is_err());
    }

    #[test]
    fn estimates_undo_jemallocs_printed_form() {
        // 1000 live objects of 64 bytes at R = 512 KiB: jemalloc prints c·p and b·p.
        let r = 524288.0f64;
        let p = -(-64.0 / r).exp_m1();
        let c = Count {
            uid: 0,
            objects_in: (1000.0 * p * 1000.0) as u64, // 1000 sites' worth, to avoid rounding
            bytes_in: (64_000.0 * p * 1000.0) as u64,
        };
        let e = c.estimate(524288);
        assert!((e.objects - 1_000_000.0).abs() / 1e6 < 0.01, "{e:?}");
        assert!((e.bytes - 64_000_000.0).abs() / 64e6 < 0.01, "{e:?}");
        // Relative error about 1/sqrt(samples).
        let rel = e.sigma() / e.bytes;
        assert!((rel - 1.0 / e.samples.sqrt()).abs() < 0.01, "{rel} {e:?}");
        // A size far above R is always sampled: no uncertainty.
        let big = Count {
            uid: 0,
            objects_in: 4,
            bytes_in: 4 << 30,
        }
        .estimate(524288);
        assert_eq!(big.bytes, (4u64 << 30) as f64);
        assert!(big.sigma() < 1.0);
    }

    #[test]
    fn finds_gnu_build_ids_in_notes() {
        let mut n = Vec::new();
        for (name, kind, desc) in [
            (&b"XY\0\0"[..], 1u32, &[9u8; 3][..]),
            (b"GNU\0", 3, &[0xab, 0xcd]),
        ] {
            n.extend_from_slice(&(name.len() as u32).to_ne_bytes());
            n.extend_from_slice(&(desc.len() as u32).to_ne_bytes());
            n.extend_from_slice(&kind.to_ne_bytes());
            n.extend_from_slice(name);
            n.extend_from_slice(desc);
            n.resize(n.len().next_multiple_of(4), 0);
        }
        assert_eq!(find_build_id(&n).as_deref(), Some("abcd"));
        assert_eq!(find_build_id(&n[..20]), None);
    }
}
