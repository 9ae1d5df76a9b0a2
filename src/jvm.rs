//! The JVM's share of the process: Java heap, metaspace, thread stacks, code cache, mapped
//! files, from HotSpot's own performance counters and the process's memory map, without
//! attaching to the JVM and without Native Memory Tracking.
//!
//! - **Counters**: HotSpot publishes its performance counters (what `jstat` reads) in a
//!   shared file, `/tmp/hsperfdata_<user>/<pid>`, mapped into its own address space. The
//!   file is found in `/proc/self/maps` and read whole; its layout is HotSpot's
//!   `PerfDataPrologue` (32 bytes: magic `0xcafec0c0`, byte order, version, ..., offset and
//!   count of entries) followed by `PerfDataEntry` records (length, name offset, vector
//!   length, type, flags, units, variability, data offset), names NUL-terminated. Read:
//!   `sun.gc.generation.<g>.capacity` / `maxCapacity` / `space.<s>.used`,
//!   `sun.gc.metaspace.capacity` / `used`, `sun.gc.compressedclassspace.capacity` / `used`,
//!   `java.threads.live`.
//! - **Residency**, from `/proc/self/smaps`: the Java heap is the run of adjacent anonymous
//!   mappings that spans exactly the maximum heap size (HotSpot reserves it in one piece;
//!   committed parts are `rw-p`, the rest `---p`); thread stacks are the mappings that
//!   hold a thread's stack pointer (`/proc/self/task/<tid>/syscall`); the code cache is the
//!   anonymous `rwx` mappings; mapped files are the file-backed pages of every file mapping (`Rss` minus
//!   `Anonymous`, as the kernel's `RssFile` counts them).
//!
//! Everything here runs on the `jvmalloc` thread (or the thread asking for a dump), never
//! on the allocation path.

use std::collections::HashMap;

/// One mapping of `/proc/self/smaps`.
#[derive(Debug, Clone)]
pub struct Vma {
    pub start: u64,
    pub end: u64,
    /// `rwxp`-style permissions.
    pub perms: [u8; 4],
    /// The path or `[name]`; empty for anonymous memory.
    pub name: String,
    /// Resident bytes.
    pub rss: u64,
    /// Resident bytes that are anonymous (for a file mapping: its private, written pages).
    pub anonymous: u64,
}

impl Vma {
    fn anon(&self) -> bool {
        self.name.is_empty()
    }
    fn size(&self) -> u64 {
        self.end - self.start
    }
}

/// Parses `/proc/<self>/smaps` text.
pub fn parse_smaps(text: &str) -> Vec<Vma> {
    let mut out: Vec<Vma> = Vec::new();
    for line in text.lines() {
        let mut f = line.split_ascii_whitespace();
        let Some(first) = f.next() else { continue };
        if let Some((a, b)) = first.split_once('-') {
            if let (Ok(start), Ok(end)) = (u64::from_str_radix(a, 16), u64::from_str_radix(b, 16)) {
                let perms = f.next().unwrap_or("----").as_bytes();
                let mut p = [b'-'; 4];
                p[..perms.len().min(4)].copy_from_slice(&perms[..perms.len().min(4)]);
                // offset, device, inode, then the name (which may contain blanks).
                let name = f.nth(3).map_or(String::new(), |_| {
                    let rest: Vec<&str> = line.split_ascii_whitespace().skip(5).collect();
                    rest.join(" ")
                });
                out.push(Vma {
                    start,
                    end,
                    perms: p,
                    name,
                    rss: 0,
                    anonymous: 0,
                });
                continue;
            }
        }
        let field = match first {
            "Rss:" => 0,
            "Anonymous:" => 1,
            _ => continue,
        };
        if let (Some(v), Some(last)) =
            (f.next().and_then(|v| v.parse::<u64>().ok()), out.last_mut())
        {
            if field == 0 {
                last.rss = v * 1024;
            } else {
                last.anonymous = v * 1024;
            }
        }
    }
    out
}

/// The counters this module reads, from the bytes of an hsperfdata file. `None` when the
/// bytes are not a HotSpot performance-data file.
pub fn parse_perfdata(b: &[u8]) -> Option<HashMap<String, i64>> {
    if b.len() < 32 || b[..4] != [0xca, 0xfe, 0xc0, 0xc0] {
        return None;
    }
    let little = b[4] == 1;
    let i32_at = |o: usize| -> Option<i32> {
        let s: [u8; 4] = b.get(o..o + 4)?.try_into().ok()?;
        Some(if little {
            i32::from_le_bytes(s)
        } else {
            i32::from_be_bytes(s)
        })
    };
    let i64_at = |o: usize| -> Option<i64> {
        let s: [u8; 8] = b.get(o..o + 8)?.try_into().ok()?;
        Some(if little {
            i64::from_le_bytes(s)
        } else {
            i64::from_be_bytes(s)
        })
    };
    let first = usize::try_from(i32_at(24)?).ok()?;
    let count = usize::try_from(i32_at(28)?).ok()?;
    let mut out = HashMap::new();
    let mut at = first;
    for _ in 0..count.min(1 << 16) {
        let len = usize::try_from(i32_at(at)?).ok()?;
        if len < 20 {
            break;
        }
        let name_at = at + usize::try_from(i32_at(at + 4)?).ok()?;
        let vector = i32_at(at + 8)?;
        let kind = *b.get(at + 12)?;
        let data_at = at + usize::try_from(i32_at(at + 16)?).ok()?;
        let name_bytes = b.get(name_at..)?;
        let name_end = name_bytes.iter().position(|&c| c == 0)?;
        if vector == 0 && kind == b'J' {
            if let (Ok(name), Some(v)) = (
                std::str::from_utf8(&name_bytes[..name_end]),
                i64_at(data_at),
            ) {
                if interesting(name) {
                    out.insert(name.to_string(), v);
                }
            }
        }
        at += len;
    }
    Some(out)
}

fn interesting(name: &str) -> bool {
    name.starts_with("sun.gc.generation.")
        || name.starts_with("sun.gc.metaspace.")
        || name.starts_with("sun.gc.compressedclassspace.")
        || name == "java.threads.live"
}

/// What the JVM's counters and the memory map say. Byte figures.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Split {
    /// Where the counters came from (the hsperfdata file).
    pub source: String,
    pub heap_max: u64,
    pub heap_committed: u64,
    pub heap_used: u64,
    /// Resident bytes of the heap's mappings; `None` when they could not be identified.
    pub heap_resident: Option<u64>,
    pub metaspace_committed: u64,
    pub metaspace_used: u64,
    pub class_space_committed: u64,
    pub class_space_used: u64,
    pub java_threads: u64,
    /// Thread stacks found in the memory map, and their resident bytes.
    pub stacks: u64,
    pub stacks_resident: u64,
    pub code_resident: u64,
    pub files_resident: u64,
}

/// The JVM view of this process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Jvm {
    /// Not a HotSpot JVM (no `libjvm.so` mapped).
    NotHotSpot,
    /// A JVM whose counters cannot be read; the reason, for one line in the dump.
    Unavailable(String),
    Split(Split),
}

fn counter(c: &HashMap<String, i64>, name: &str) -> u64 {
    c.get(name).copied().unwrap_or(0).max(0) as u64
}

/// Sums `sun.gc.generation.*.<what>` (and, with `spaces`, `...space.*.used`).
fn generations(c: &HashMap<String, i64>, what: &str) -> (u64, u64) {
    let mut sum = 0u64;
    let mut max = 0u64;
    for g in 0..4 {
        let v = counter(c, &format!("sun.gc.generation.{g}.{what}"));
        sum += v;
        max = max.max(v);
    }
    (sum, max)
}

fn heap_used(c: &HashMap<String, i64>) -> u64 {
    (0..4)
        .flat_map(|g| (0..4).map(move |s| (g, s)))
        .map(|(g, s)| counter(c, &format!("sun.gc.generation.{g}.space.{s}.used")))
        .sum()
}

/// The heap's range and resident bytes. HotSpot reserves the heap in one piece of the
/// maximum heap size, committed parts `rw-p`, the rest `---p`; but the kernel merges
/// adjacent anonymous mappings with the same permissions, so the heap's ends need not be
/// mapping boundaries (compressed class space is often reserved right after it), and G1
/// leaves holes where archived heap regions were unmapped. So every range of `size` bytes
/// that starts or ends on a mapping boundary and overlaps anonymous mappings only (holes
/// allowed) is a candidate, and the best one is chosen by, in order: both ends on
/// boundaries; below 32 GiB for a heap smaller than that (HotSpot puts a heap with
/// compressed oops there); committed bytes closest to `committed`; starting on a boundary
/// (the reservation's start; collectors commit from the bottom); most resident bytes.
/// Mappings cut by the range count in proportion to their overlap. G1 maps the CDS
/// archive's heap regions (from `classes.jsa`) inside the heap: those count as heap too.
fn heap_range(vmas: &[Vma], size: u64, committed: u64) -> Option<(u64, u64, u64)> {
    if size == 0 {
        return None;
    }
    type Key = (u8, bool, i64, bool, u64);
    let mut best: Option<(Key, (u64, u64, u64))> = None;
    let mut i = 0;
    while i < vmas.len() {
        let mut j = i;
        while j < vmas.len() && (vmas[j].anon() || cds_heap(&vmas[j])) {
            j += 1;
        }
        if j == i {
            i += 1;
            continue;
        }
        let run = &vmas[i..j];
        i = j;
        // The run may be bounded by named mappings, which a candidate must not overlap.
        let lo = if i - run.len() > 0 {
            vmas[i - run.len() - 1].end
        } else {
            0
        };
        let hi = vmas.get(i).map_or(u64::MAX, |v| v.start);
        if hi - lo < size {
            continue;
        }
        let starts = run
            .iter()
            .map(|v| v.start)
            .filter(|&a| a.saturating_add(size) <= hi);
        let ends = run
            .iter()
            .map(|v| v.end)
            .filter(|&e| e >= lo.saturating_add(size))
            .map(|e| e - size);
        // Prefix sums of committed bytes and resident bytes, so that each candidate costs
        // two binary searches (a JVM with thousands of threads has tens of thousands of
        // mappings).
        let committed_of = |v: &Vma| if &v.perms[..2] == b"rw" { v.size() } else { 0 };
        let mut prefix = vec![(0u64, 0u64); run.len() + 1];
        for (k, v) in run.iter().enumerate() {
            prefix[k + 1] = (prefix[k].0 + committed_of(v), prefix[k].1 + v.rss);
        }
        let on = |x: u64| {
            run.binary_search_by_key(&x, |v| v.start).is_ok()
                || run.binary_search_by_key(&x, |v| v.end).is_ok()
        };
        for a in starts.chain(ends) {
            let b = a + size;
            let i0 = run.partition_point(|v| v.end <= a);
            let i1 = run.partition_point(|v| v.start < b);
            if i0 >= i1 {
                continue;
            }
            let mut rw = prefix[i1].0 - prefix[i0].0;
            let mut rss = prefix[i1].1 - prefix[i0].1;
            // The first and last mappings may be cut by the range: count their share.
            let ends = if i1 - 1 == i0 {
                vec![i0]
            } else {
                vec![i0, i1 - 1]
            };
            for k in ends {
                let v = &run[k];
                let overlap = v.end.min(b) - v.start.max(a);
                let share = (v.rss as u128 * overlap as u128 / v.size().max(1) as u128) as u64;
                rw -= committed_of(v) - committed_of(v).min(overlap);
                rss -= v.rss - share;
            }
            let key = (
                u8::from(on(a)) + u8::from(on(b)),
                size >= 32 << 30 || b <= 32 << 30,
                -(rw.abs_diff(committed).min(i64::MAX as u64) as i64),
                on(a),
                rss,
            );
            if best.as_ref().is_none_or(|(k, _)| key > *k) {
                best = Some((key, (a, b, rss)));
            }
        }
    }
    best.map(|(_, r)| r)
}

/// A CDS archive mapped into the Java heap (G1's archived heap regions).
fn cds_heap(v: &Vma) -> bool {
    v.name.ends_with(".jsa") && &v.perms[..2] == b"rw"
}

/// Each thread's stack pointer, where the kernel shows it: `/proc/self/task/<tid>/syscall`
/// ends with the stack and instruction pointers of a thread blocked in the kernel (most
/// threads of a JVM, parked or waiting), and says `running` for one on a CPU. The calling
/// thread's own is the address of a local.
fn stack_pointers() -> Vec<u64> {
    let here = 0u8;
    let mut sps = vec![core::ptr::addr_of!(here) as u64];
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return sps;
    };
    for t in tasks.flatten() {
        let Ok(text) = std::fs::read_to_string(t.path().join("syscall")) else {
            continue;
        };
        let f: Vec<&str> = text.split_ascii_whitespace().collect();
        if f.len() >= 3 && f[0] != "running" {
            if let Some(sp) = f[f.len() - 2]
                .strip_prefix("0x")
                .and_then(|h| u64::from_str_radix(h, 16).ok())
            {
                sps.push(sp);
            }
        }
    }
    sps
}

/// Thread stacks: the mappings that hold a thread's stack pointer (`sps`); their number
/// and resident bytes. A thread running on a CPU at that instant is not seen.
fn stacks(vmas: &[Vma], sps: &[u64]) -> (u64, u64) {
    let mut hit = vec![false; vmas.len()];
    for &sp in sps {
        // Mappings are in address order: the last one starting at or below sp.
        let i = vmas.partition_point(|v| v.start <= sp);
        if i > 0 && sp < vmas[i - 1].end {
            hit[i - 1] = true;
        }
    }
    vmas.iter()
        .zip(hit)
        .filter(|(_, h)| *h)
        .fold((0, 0), |(n, rss), (v, _)| (n + 1, rss + v.rss))
}

/// Builds the split from the counters and the memory map.
pub fn split(counters: &HashMap<String, i64>, vmas: &[Vma], sps: &[u64], source: &str) -> Split {
    let (committed, _) = generations(counters, "capacity");
    // G1 reports the whole heap as each generation's maximum (plus a few bytes); the
    // generational collectors split it between the generations.
    let (max_sum, max_one) = generations(counters, "maxCapacity");
    let young = counter(counters, "sun.gc.generation.0.maxCapacity");
    let old = counter(counters, "sun.gc.generation.1.maxCapacity");
    let max = if young.abs_diff(old) <= 1 << 20 {
        max_one
    } else {
        max_sum
    };
    let max = max / 4096 * 4096;
    let heap = heap_range(vmas, max, committed);
    let (stacks, stacks_resident) = stacks(vmas, sps);
    Split {
        source: source.to_string(),
        heap_max: max,
        heap_committed: committed,
        heap_used: heap_used(counters),
        heap_resident: heap.map(|(_, _, r)| r),
        metaspace_committed: counter(counters, "sun.gc.metaspace.capacity"),
        metaspace_used: counter(counters, "sun.gc.metaspace.used"),
        class_space_committed: counter(counters, "sun.gc.compressedclassspace.capacity"),
        class_space_used: counter(counters, "sun.gc.compressedclassspace.used"),
        java_threads: counter(counters, "java.threads.live"),
        stacks,
        stacks_resident,
        code_resident: vmas
            .iter()
            .filter(|v| v.anon() && &v.perms[..3] == b"rwx")
            .map(|v| v.rss)
            .sum(),
        // A library's written pages (relocations, .data) are anonymous memory, counted in
        // RssAnon, not RssFile: they stay in "other".
        files_resident: vmas
            .iter()
            .filter(|v| v.name.starts_with('/'))
            .map(|v| v.rss.saturating_sub(v.anonymous))
            .sum(),
    }
}

/// Reads this process's JVM split now.
pub fn read() -> Jvm {
    let Ok(text) = std::fs::read_to_string("/proc/self/smaps") else {
        return Jvm::Unavailable("cannot read /proc/self/smaps".into());
    };
    let vmas = parse_smaps(&text);
    if !vmas.iter().any(|v| v.name.ends_with("/libjvm.so")) {
        return Jvm::NotHotSpot;
    }
    // Our own file: /tmp/hsperfdata_<user>/<our pid> (the pid as this process sees it).
    let me = format!("/{}", std::process::id());
    let ours = |v: &&Vma| {
        let name = v.name.trim_end_matches(" (deleted)");
        name.ends_with(&me)
            && name
                .rsplit('/')
                .nth(1)
                .is_some_and(|d| d.starts_with("hsperfdata_"))
    };
    let Some(file) = vmas.iter().find(ours) else {
        return Jvm::Unavailable(
            "the JVM's performance counters are not mapped (-XX:-UsePerfData or \
             -XX:+PerfDisableSharedMem): RSS not owned by malloc is not split further"
                .into(),
        );
    };
    let path = file.name.trim_end_matches(" (deleted)").to_string();
    // At most the mapping's size (HotSpot maps the whole file; 32 KiB by default).
    let bytes = std::fs::File::open(&path).and_then(|f| {
        use std::io::Read;
        let mut b = Vec::new();
        f.take(file.size().min(16 << 20))
            .read_to_end(&mut b)
            .map(|_| b)
    });
    match bytes.ok().as_deref().and_then(parse_perfdata) {
        Some(c) => Jvm::Split(split(&c, &vmas, &stack_pointers(), &path)),
        None => Jvm::Unavailable(format!(
            "cannot read the JVM's performance counters in {path}: RSS not owned by malloc is \
             not split further"
        )),
    }
}

/// One part of the process's RSS, for the dump's split and its headline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Part {
    /// Stable key (JSON, metrics label).
    pub key: &'static str,
    /// What an operator calls it.
    pub label: &'static str,
    pub bytes: u64,
}

/// Splits `rss` into parts that add up to it exactly. The JVM's parts measured in the
/// memory map come first (Java heap, thread stacks, code cache, mapped files), then
/// metaspace (committed, class space included), native malloc (live bytes) and allocator
/// overhead, whose figures are upper bounds of what is resident (jemalloc counts pages it
/// handed out as resident before they are touched), and `other` last. Each part is cut to
/// what is left of RSS, so the parts never exceed it. Outside a JVM: native malloc,
/// allocator overhead, and RSS not owned by malloc. Returned in the order shown in dumps:
/// native malloc and allocator overhead first.
pub fn parts(rss: u64, allocated: u64, resident: u64, jvm: &Jvm) -> Vec<Part> {
    let mut left = rss;
    let mut take = |key, label, want: u64| {
        let b = want.min(left);
        left -= b;
        Part {
            key,
            label,
            bytes: b,
        }
    };
    let overhead = resident.saturating_sub(allocated);
    match jvm {
        Jvm::Split(s) => {
            let heap = take(
                "java_heap",
                "Java heap",
                s.heap_resident.unwrap_or(s.heap_committed),
            );
            let stacks = take("thread_stacks", "thread stacks", s.stacks_resident);
            let code = take("code_cache", "code cache", s.code_resident);
            let files = take("mapped_files", "mapped files", s.files_resident);
            let meta = take("metaspace", "metaspace", s.metaspace_committed);
            let live = take("malloc_live", "native malloc", allocated);
            let over = take("allocator_overhead", "allocator overhead", overhead);
            let other = take("other", "other (not identified)", u64::MAX);
            vec![live, over, heap, meta, stacks, code, files, other]
        }
        _ => vec![
            take("malloc_live", "native malloc", allocated),
            take("allocator_overhead", "allocator overhead", overhead),
            take("not_malloc", "RSS not owned by malloc", u64::MAX),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vma(start: u64, end: u64, perms: &str, name: &str, rss: u64) -> Vma {
        Vma {
            start,
            end,
            perms: perms.as_bytes().try_into().unwrap(),
            name: name.into(),
            rss,
            anonymous: 0,
        }
    }

    #[test]
    fn smaps_lines() {
        let t = "00400000-00452000 r-xp 00000000 08:02 173521      /usr/bin/dbus daemon\n\
                 Size:                328 kB\nRss:                 12 kB\nAnonymous: 8 kB\n\
                 7ffd-8000 rw-p 00000000 00:00 0 \nRss: 4 kB\n";
        let v = parse_smaps(t);
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].name, "/usr/bin/dbus daemon");
        assert_eq!(v[0].rss, 12 << 10);
        assert_eq!(v[0].anonymous, 8 << 10);
        assert!(v[1].anon());
        assert_eq!(v[1].rss, 4096);
    }

    #[test]
    fn heap_stacks_code_and_files() {
        let m = 1u64 << 20;
        let vmas = vec![
            // A 512 MiB heap: 300 MiB committed (100 resident), the rest reserved; its top
            // 2 MiB committed and merged with the class space committed right after it.
            vma(0xe000_0000, 0xe000_0000 + 298 * m, "rw-p", "", 100 * m),
            vma(0xe000_0000 + 298 * m, 0xffe0_0000, "---p", "", 0),
            vma(0xffe0_0000, 0x1_0040_0000, "rw-p", "", 6 * m),
            vma(0x1_0040_0000, 0x1_4000_0000, "---p", "", 0),
            // Native memory in one big committed run: not the heap.
            vma(0x7f00_0000_0000, 0x7f00_4000_0000, "rw-p", "", 900 * m),
            // Two thread stacks with guards, and a big reservation that is not a stack.
            vma(0x7000_0000, 0x7001_4000, "---p", "", 0),
            vma(0x7001_4000, 0x7010_0000, "rw-p", "", 60 << 10),
            vma(0x7100_0000, 0x7100_1000, "---p", "", 0),
            vma(0x7100_1000, 0x7110_0000, "rw-p", "", 40 << 10),
            vma(0x7200_0000, 0x7300_0000, "---p", "", 0),
            vma(0x7300_0000, 0x7b00_0000, "rw-p", "", 5 * m),
            vma(0x7c00_0000, 0x7c20_0000, "rwxp", "", 3 * m),
            vma(
                0x7d00_0000,
                0x7d10_0000,
                "r-xp",
                "/usr/lib/jvm/lib/server/libjvm.so",
                7 * m,
            ),
            vma(0x7ffd_0000, 0x7ffe_0000, "rw-p", "[stack]", 32 << 10),
        ];
        // In address order, as /proc/self/smaps lists them.
        let mut vmas = vmas;
        vmas.sort_by_key(|v| v.start);
        let mut c = HashMap::new();
        c.insert("sun.gc.generation.0.capacity".to_string(), 50 * m as i64);
        c.insert("sun.gc.generation.1.capacity".to_string(), 250 * m as i64);
        c.insert(
            "sun.gc.generation.0.maxCapacity".to_string(),
            512 * m as i64 + 24,
        );
        c.insert(
            "sun.gc.generation.1.maxCapacity".to_string(),
            512 * m as i64 + 8,
        );
        c.insert(
            "sun.gc.generation.1.space.0.used".to_string(),
            90 * m as i64,
        );
        c.insert("java.threads.live".to_string(), 2);
        // Stack pointers in the two thread stacks and the main stack, and one that is in no
        // mapping.
        let sps = [0x7001_8000, 0x7100_2000, 0x7100_3000, 0x7ffd_1000, 0x10];
        let s = split(&c, &vmas, &sps, "f");
        assert_eq!(s.heap_committed, 300 * m);
        assert_eq!(s.heap_used, 90 * m);
        assert_eq!(s.heap_max, 512 * m);
        // 100 MiB, plus the heap's share (2 of 6 MiB) of the merged mapping.
        assert_eq!(s.heap_resident, Some(102 * m));
        assert_eq!(s.stacks, 3);
        assert_eq!(s.stacks_resident, (60 << 10) + (40 << 10) + (32 << 10));
        assert_eq!(s.code_resident, 3 * m);
        assert_eq!(s.files_resident, 7 * m);
        let parts = parts(200 * m, 10 * m, 15 * m, &Jvm::Split(s));
        assert_eq!(parts.iter().map(|p| p.bytes).sum::<u64>(), 200 * m);
        let keys: Vec<&str> = parts.iter().map(|p| p.key).collect();
        assert_eq!(
            keys,
            [
                "malloc_live",
                "allocator_overhead",
                "java_heap",
                "metaspace",
                "thread_stacks",
                "code_cache",
                "mapped_files",
                "other"
            ]
        );
        assert_eq!(parts[2].bytes, 102 * m);
        assert_eq!(parts[0].bytes, 10 * m);
        assert_eq!(parts[1].bytes, 5 * m);
    }

    #[test]
    fn g1_heap_with_holes_after_archived_regions() {
        // As read from a JDK 17 G1 heap of 512 MiB (380 MiB committed).
        let m = 1u64 << 20;
        let vmas = vec![
            vma(
                0x5555_0000_0000,
                0x5555_0010_0000,
                "r-xp",
                "/usr/bin/java",
                m,
            ),
            vma(0xe000_0000, 0xf7a0_0000, "rw-p", "", 150 * m),
            vma(0xf7a0_0000, 0xffe0_0000, "---p", "", 0),
            vma(
                0xffe0_0000,
                0xffe7_5000,
                "rw-p",
                "/usr/lib/jvm/x/lib/server/classes.jsa",
                1 << 19,
            ),
            vma(0xffe7_5000, 0xfff0_0000, "rw-p", "", 1 << 19),
            vma(
                0xfff0_0000,
                0xfff7_8000,
                "rw-p",
                "/usr/lib/jvm/x/lib/server/classes.jsa",
                0,
            ),
            vma(0xfff7_8000, 0x1_0000_0000, "rw-p", "", 1 << 19),
            vma(0x1_0000_0000, 0x1_0002_0000, "rw-p", "", 1 << 17),
            vma(0x1_0002_0000, 0x1_4000_0000, "---p", "", 0),
            vma(0x7f92_9c00_0000, 0x7f92_a000_0000, "rw-p", "", 40 * m),
        ];
        let h = heap_range(&vmas, 512 * m, 380 * m).unwrap();
        assert_eq!((h.0, h.1), (0xe000_0000, 0x1_0000_0000));
        assert_eq!(h.2, 151 * m + (1 << 19));
        // A 1 GiB heap next to a 1 GiB class space reservation: the heap, not the class
        // space, although both span exactly 1 GiB between mapping boundaries.
        let g = 1u64 << 30;
        let vmas = vec![
            vma(0x3b00_0000, 0x3b01_0000, "rw-p", "", 64 << 10),
            vma(0x3b01_0000, 0x3b00_0000 + g, "---p", "", 0),
            vma(0xc000_0000, 0xe5c0_0000, "rw-p", "", 300 * m),
            vma(0xe5c0_0000, 0xffe0_0000, "---p", "", 0),
            vma(
                0xffe0_0000,
                0xfff2_4000,
                "rw-p",
                "/usr/lib/jvm/x/lib/server/classes.jsa",
                m,
            ),
            vma(0xfff2_4000, 0x1_0000_0000, "rw-p", "", m / 2),
        ];
        let h = heap_range(&vmas, g, 606 * m).unwrap();
        assert_eq!((h.0, h.1), (0xc000_0000, 0x1_0000_0000));
    }

    #[test]
    fn parts_never_exceed_rss() {
        // The heap, measured, comes first; malloc's upper bounds get what is left.
        let s = Split {
            heap_committed: 1 << 40,
            ..Split::default()
        };
        let p = parts(100, 60, 80, &Jvm::Split(s));
        assert_eq!(p.iter().map(|p| p.bytes).sum::<u64>(), 100);
        assert_eq!(p[2].key, "java_heap");
        assert_eq!((p[0].bytes, p[1].bytes, p[2].bytes), (0, 0, 100));
        // jemalloc's resident above RSS (pages handed out, never touched): cut.
        let s = Split {
            heap_resident: Some(30),
            ..Split::default()
        };
        let p = parts(100, 60, 120, &Jvm::Split(s));
        assert_eq!(p.iter().map(|p| p.bytes).sum::<u64>(), 100);
        assert_eq!((p[0].bytes, p[1].bytes, p[2].bytes), (60, 10, 30));
        let p = parts(100, 60, 80, &Jvm::NotHotSpot);
        assert_eq!(
            p.iter().map(|p| p.key).collect::<Vec<_>>(),
            ["malloc_live", "allocator_overhead", "not_malloc"]
        );
        assert_eq!(p[2].bytes, 20);
    }

    #[test]
    fn perfdata_layout() {
        // Prologue (little endian) and two entries: a long and a byte vector.
        let mut b = vec![0xca, 0xfe, 0xc0, 0xc0, 1, 2, 0, 1];
        b.extend_from_slice(&0i32.to_le_bytes()); // used
        b.extend_from_slice(&0i32.to_le_bytes()); // overflow
        b.extend_from_slice(&0i64.to_le_bytes()); // mod time
        b.extend_from_slice(&32i32.to_le_bytes()); // first entry
        b.extend_from_slice(&2i32.to_le_bytes()); // entries
        let entry = |name: &str, kind: u8, vector: i32, data: &[u8]| {
            let name_off = 20;
            let data_off = (name_off + name.len() + 1).next_multiple_of(8);
            let len = data_off + data.len();
            let mut e = Vec::new();
            e.extend_from_slice(&(len as i32).to_le_bytes());
            e.extend_from_slice(&(name_off as i32).to_le_bytes());
            e.extend_from_slice(&vector.to_le_bytes());
            e.extend_from_slice(&[kind, 0, 0, 0]);
            e.extend_from_slice(&(data_off as i32).to_le_bytes());
            e.extend_from_slice(name.as_bytes());
            e.resize(data_off, 0);
            e.extend_from_slice(data);
            e
        };
        b.extend(entry("java.threads.live", b'J', 0, &42i64.to_le_bytes()));
        b.extend(entry("sun.rt.javaCommand", b'B', 4, b"abc\0"));
        let c = parse_perfdata(&b).unwrap();
        assert_eq!(c.get("java.threads.live"), Some(&42));
        assert_eq!(c.len(), 1);
        assert!(parse_perfdata(b"not perf data at all, no magic..").is_none());
        // Truncated anywhere: no panic.
        for n in 0..b.len() {
            let _ = parse_perfdata(&b[..n]);
        }
    }
}
