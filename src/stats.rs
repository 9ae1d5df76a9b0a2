//! A statistics snapshot: process memory, per-thread bytes, per-size-class and per-arena
//! figures, and the reconciliation between them. Built on the reporter thread (or the
//! thread calling `jvmalloc_dump_stats`), never on the allocation path.

use crate::config::Config;
use crate::jemalloc::{self, Mib, Totals};
use crate::jvm::{self, Jvm, Part};
use crate::sysfile::{self, Path};
use crate::threads;
use std::ffi::CStr;
use std::time::{SystemTime, UNIX_EPOCH};

/// One thread's bytes. `net = allocated - freed`, both counted for this thread only: a
/// block one thread allocates and another frees counts for the first and against the
/// second, so `net` is not what a thread holds, and is negative for a thread that frees
/// what others allocated (a queue's consumer, a JVM's `Reference Handler` or
/// `Common-Cleaner` freeing direct buffers).
#[derive(Debug, Clone)]
pub struct ThreadRow {
    pub tid: u32,
    pub name: String,
    pub allocated: u64,
    pub freed: u64,
    pub net: i64,
}

#[derive(Debug, Clone)]
pub struct SizeClass {
    /// "small" (slab-backed bin) or "large".
    pub kind: &'static str,
    pub index: u32,
    pub size: u64,
    pub requests: u64,
    pub mallocs: u64,
    pub frees: u64,
    pub live_regions: u64,
    pub live_bytes: u64,
    /// Small classes only: slabs in use and `live_regions / (regions_per_slab * slabs)`.
    pub slabs: Option<u64>,
    pub utilisation: Option<f64>,
}

#[derive(Debug, Clone)]
pub struct ArenaRow {
    pub index: u32,
    pub threads: u32,
    pub small_allocated: u64,
    pub large_allocated: u64,
    pub active: u64,
    pub dirty: u64,
    pub muzzy: u64,
    pub mapped: u64,
    pub tcache: u64,
}

#[derive(Debug)]
pub struct Snapshot {
    pub seq: u64,
    pub pid: u32,
    pub process: String,
    pub unix_time: u64,
    pub uptime_s: f64,
    /// The library the program's `malloc` resolves to when it is not jvmalloc.
    pub foreign_malloc: Option<String>,
    /// Bytes of dirty and muzzy pages returned to the kernel since start.
    pub purged_bytes: u64,
    /// Memory-pressure episodes since start.
    pub pressure_events: u64,
    /// The JVM's counters and mappings, in a JVM.
    pub jvm: Jvm,
    /// RSS split into parts that add up to it ([`crate::jvm::parts`]).
    pub parts: Vec<Part>,
    /// How each part changed since the previous dump, biggest growth first.
    pub growth: Option<Growth>,
    pub rss: u64,
    pub totals: Totals,
    /// Bytes parked in thread caches: counted as allocated by jemalloc, as freed by the
    /// thread counters. The reconciliation slack.
    pub tcache: u64,
    /// Bytes jemalloc allocated for itself inside arenas (each thread's cache stack),
    /// counted in `allocated` but by no thread.
    pub internal: u64,
    pub memory_limit: Option<u64>,
    pub config: Config,
    pub threads: Vec<ThreadRow>,
    pub exited_threads: u64,
    pub exited_allocated: u64,
    pub exited_freed: u64,
    /// Live threads beyond the registry's capacity.
    pub overflow_threads: u64,
    /// Net bytes no registered thread accounts for:
    /// `allocated - tcache - internal - threads' net`.
    pub unregistered_net: i64,
    pub registry_capacity: usize,
    pub registry_bytes: usize,
    pub classes: Vec<SizeClass>,
    pub arenas: Vec<ArenaRow>,
    /// Live sampled bytes by allocating thread and library (allocation-site profiling).
    pub profile: Option<crate::profile::Summary>,
}

/// What a later dump compares itself with.
#[derive(Debug, Clone)]
pub struct Baseline {
    pub seq: u64,
    pub uptime_s: f64,
    pub parts: Vec<Part>,
}

/// The change of every part of RSS since an earlier dump.
#[derive(Debug, Clone)]
pub struct Growth {
    pub since_seq: u64,
    pub seconds: f64,
    /// `(part, change in bytes)`, biggest growth first.
    pub deltas: Vec<(Part, i64)>,
}

impl Growth {
    fn between(old: &Baseline, new: &[Part], uptime_s: f64) -> Growth {
        let before = |key: &str| {
            old.parts
                .iter()
                .find(|p| p.key == key)
                .map_or(0, |p| p.bytes)
        };
        let mut deltas: Vec<(Part, i64)> = new
            .iter()
            .map(|p| (*p, p.bytes as i64 - before(p.key) as i64))
            .collect();
        deltas.sort_by_key(|d| core::cmp::Reverse(d.1));
        Growth {
            since_seq: old.seq,
            seconds: uptime_s - old.uptime_s,
            deltas,
        }
    }
}

impl Snapshot {
    /// What the next dump compares itself with.
    pub fn baseline(&self) -> Baseline {
        Baseline {
            seq: self.seq,
            uptime_s: self.uptime_s,
            parts: self.parts.clone(),
        }
    }

    /// Net bytes of live and exited registered threads.
    pub fn threads_net(&self) -> i64 {
        self.threads.iter().map(|t| t.net).sum::<i64>() + self.exited_net()
    }
    pub fn exited_net(&self) -> i64 {
        self.exited_allocated as i64 - self.exited_freed as i64
    }
    /// `resident - allocated`: what the allocator holds beyond live bytes.
    pub fn overhead(&self) -> i64 {
        self.totals.resident as i64 - self.totals.allocated as i64
    }
    /// `RSS - resident`: the process's memory that malloc does not own (Java heap,
    /// metaspace, code cache, thread stacks, mapped files, other allocators).
    pub fn rss_not_malloc(&self) -> i64 {
        self.rss as i64 - self.totals.resident as i64
    }
    /// `active / allocated`.
    pub fn fragmentation(&self) -> f64 {
        if self.totals.allocated == 0 {
            return 0.0;
        }
        self.totals.active as f64 / self.totals.allocated as f64
    }
}

/// Current resident set size in bytes (`/proc/self/statm`).
pub fn rss() -> u64 {
    let mut buf = [0u8; 128];
    let n = sysfile::read(&mut Path::new(b"/proc/self/statm"), &mut buf).unwrap_or(0);
    let resident = buf[..n]
        .split(|&b| b == b' ')
        .nth(1)
        .and_then(sysfile::parse_u64)
        .unwrap_or(0);
    resident * page_size()
}

fn page_size() -> u64 {
    // SAFETY: no preconditions.
    unsafe { libc::sysconf(libc::_SC_PAGESIZE) as u64 }
}

/// A thread's current name, `?` if it is gone.
fn thread_name(tid: u32) -> String {
    std::fs::read(format!("/proc/self/task/{tid}/comm"))
        .ok()
        .filter(|b| !b.is_empty())
        .map_or_else(
            || "?".to_string(),
            |b| String::from_utf8_lossy(b.trim_ascii()).into_owned(),
        )
}

fn process_name() -> String {
    let mut buf = [0u8; 64];
    let n = sysfile::read(&mut Path::new(b"/proc/self/comm"), &mut buf).unwrap_or(0);
    String::from_utf8_lossy(buf[..n].trim_ascii()).into_owned()
}

fn mib(name: &CStr) -> Option<Mib> {
    Mib::new(name)
}

/// Reads `name` with component `pos` set to each index, as u64 (size_t or uint64_t).
fn read_at<T: Copy + Default + Into<u64>>(m: &Option<Mib>, pos: &[(usize, usize)]) -> u64 {
    m.map(|mut m| {
        for &(i, v) in pos {
            m = m.at(i, v);
        }
        m.read::<T>().map(Into::into).unwrap_or(0)
    })
    .unwrap_or(0)
}

const ALL: usize = 4096; // MALLCTL_ARENAS_ALL: all arenas merged

fn size_classes() -> Vec<SizeClass> {
    let mut out = Vec::new();
    let nbins = jemalloc::read::<u32>(c"arenas.nbins").unwrap_or(0) as usize;
    let (size, nregs) = (mib(c"arenas.bin.0.size"), mib(c"arenas.bin.0.nregs"));
    let b = |n: &CStr| mib(n);
    let (nmalloc, ndalloc, nreq) = (
        b(c"stats.arenas.0.bins.0.nmalloc"),
        b(c"stats.arenas.0.bins.0.ndalloc"),
        b(c"stats.arenas.0.bins.0.nrequests"),
    );
    let (curregs, curslabs) = (
        b(c"stats.arenas.0.bins.0.curregs"),
        b(c"stats.arenas.0.bins.0.curslabs"),
    );
    for j in 0..nbins {
        let at = [(2, ALL), (4, j)];
        let sz = read_at::<SizeT>(&size, &[(2, j)]);
        let regs = read_at::<u32>(&nregs, &[(2, j)]);
        let live = read_at::<SizeT>(&curregs, &at);
        let slabs = read_at::<SizeT>(&curslabs, &at);
        let requests = read_at::<u64>(&nreq, &at);
        if requests == 0 && live == 0 {
            continue;
        }
        let cap = regs * slabs;
        out.push(SizeClass {
            kind: "small",
            index: j as u32,
            size: sz,
            requests,
            mallocs: read_at::<u64>(&nmalloc, &at),
            frees: read_at::<u64>(&ndalloc, &at),
            live_regions: live,
            live_bytes: live * sz,
            slabs: Some(slabs),
            utilisation: Some(if cap == 0 {
                0.0
            } else {
                live as f64 / cap as f64
            }),
        });
    }
    let nl = jemalloc::read::<u32>(c"arenas.nlextents").unwrap_or(0) as usize;
    let lsize = mib(c"arenas.lextent.0.size");
    let (lmalloc, ldalloc, lreq, lcur) = (
        b(c"stats.arenas.0.lextents.0.nmalloc"),
        b(c"stats.arenas.0.lextents.0.ndalloc"),
        b(c"stats.arenas.0.lextents.0.nrequests"),
        b(c"stats.arenas.0.lextents.0.curlextents"),
    );
    for j in 0..nl {
        let at = [(2, ALL), (4, j)];
        let requests = read_at::<u64>(&lreq, &at);
        let live = read_at::<SizeT>(&lcur, &at);
        if requests == 0 && live == 0 {
            continue;
        }
        let sz = read_at::<SizeT>(&lsize, &[(2, j)]);
        out.push(SizeClass {
            kind: "large",
            index: (nbins + j) as u32,
            size: sz,
            requests,
            mallocs: read_at::<u64>(&lmalloc, &at),
            frees: read_at::<u64>(&ldalloc, &at),
            live_regions: live,
            live_bytes: live * sz,
            slabs: None,
            utilisation: None,
        });
    }
    out
}

/// `size_t` read as u64 (this crate builds for 64-bit targets only).
#[derive(Clone, Copy, Default)]
#[repr(transparent)]
struct SizeT(usize);
impl From<SizeT> for u64 {
    fn from(v: SizeT) -> u64 {
        v.0 as u64
    }
}

fn arenas(page: u64) -> Vec<ArenaRow> {
    let n = jemalloc::read::<u32>(c"arenas.narenas").unwrap_or(0) as usize;
    let m = |name: &CStr| mib(name);
    let (nthreads, small, large, pactive, pdirty, pmuzzy, mapped, tcache) = (
        m(c"stats.arenas.0.nthreads"),
        m(c"stats.arenas.0.small.allocated"),
        m(c"stats.arenas.0.large.allocated"),
        m(c"stats.arenas.0.pactive"),
        m(c"stats.arenas.0.pdirty"),
        m(c"stats.arenas.0.pmuzzy"),
        m(c"stats.arenas.0.mapped"),
        m(c"stats.arenas.0.tcache_bytes"),
    );
    (0..n)
        .map(|i| {
            let at = [(2, i)];
            ArenaRow {
                index: i as u32,
                threads: read_at::<u32>(&nthreads, &at) as u32,
                small_allocated: read_at::<SizeT>(&small, &at),
                large_allocated: read_at::<SizeT>(&large, &at),
                active: read_at::<SizeT>(&pactive, &at) * page,
                dirty: read_at::<SizeT>(&pdirty, &at) * page,
                muzzy: read_at::<SizeT>(&pmuzzy, &at) * page,
                mapped: read_at::<SizeT>(&mapped, &at),
                tcache: read_at::<SizeT>(&tcache, &at),
            }
        })
        .collect()
}

/// Orders thread rows as dumps show them: by the magnitude of `net`, biggest first (a
/// thread that frees a lot counts as much as one that keeps a lot), then by `allocated`,
/// biggest first, then by tid. A text dump shows the first rows and sums the rest in one
/// row, so no row summed there is bigger in magnitude than a row shown.
fn order_threads(rows: &mut [ThreadRow]) {
    rows.sort_by(|a, b| {
        b.net
            .unsigned_abs()
            .cmp(&a.net.unsigned_abs())
            .then(b.allocated.cmp(&a.allocated))
            .then(a.tid.cmp(&b.tid))
    });
}

/// Takes a snapshot now. The registry and jemalloc's totals are read back to back so that
/// allocations in between (including this function's own) stay small.
pub fn take(seq: u64, config: &Config, uptime_s: f64, previous: Option<&Baseline>) -> Snapshot {
    let reg = threads::snapshot();
    let totals = Totals::read();
    let tcache = read_at::<SizeT>(&mib(c"stats.arenas.0.tcache_bytes"), &[(2, ALL)]);
    let internal = read_at::<SizeT>(&mib(c"stats.arenas.0.internal"), &[(2, ALL)]);
    let page = jemalloc::read::<usize>(c"arenas.page").unwrap_or(4096) as u64;
    let rss = rss();
    let mut rows: Vec<ThreadRow> = reg
        .live
        .iter()
        .map(|t| ThreadRow {
            tid: t.tid,
            name: thread_name(t.tid),
            allocated: t.allocated,
            freed: t.freed,
            net: t.allocated as i64 - t.freed as i64,
        })
        .collect();
    order_threads(&mut rows);
    let mut s = Snapshot {
        seq,
        pid: std::process::id(),
        process: process_name(),
        unix_time: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        uptime_s,
        foreign_malloc: crate::init::foreign_malloc().map(|c| c.to_string_lossy().into_owned()),
        purged_bytes: page
            * (jemalloc::read::<u64>(c"stats.arenas.4096.dirty_purged").unwrap_or(0)
                + jemalloc::read::<u64>(c"stats.arenas.4096.muzzy_purged").unwrap_or(0)),
        pressure_events: crate::guard::episodes(),
        jvm: Jvm::NotHotSpot,
        parts: Vec::new(),
        growth: None,
        profile: None,
        rss,
        totals,
        tcache,
        internal,
        memory_limit: config.memory_limit,
        config: *config,
        threads: rows,
        exited_threads: reg.exited_threads,
        exited_allocated: reg.exited_allocated,
        exited_freed: reg.exited_freed,
        overflow_threads: reg.overflow_threads,
        unregistered_net: 0,
        registry_capacity: reg.capacity,
        registry_bytes: reg.bytes,
        classes: size_classes(),
        arenas: arenas(page),
    };
    s.unregistered_net =
        totals.allocated as i64 - tcache as i64 - internal as i64 - s.threads_net();
    s.jvm = jvm::read();
    s.parts = jvm::parts(rss, totals.allocated, totals.resident, &s.jvm);
    s.growth = previous.map(|p| Growth::between(p, &s.parts, uptime_s));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(tid: u32, allocated: u64, freed: u64) -> ThreadRow {
        ThreadRow {
            tid,
            name: format!("t{tid}"),
            allocated,
            freed,
            net: allocated as i64 - freed as i64,
        }
    }

    #[test]
    fn threads_are_ordered_by_magnitude_of_net_then_allocated() {
        let mut rows = vec![
            row(1, 100, 90),  // +10
            row(2, 0, 5000),  // -5000: a thread that frees what others allocated
            row(3, 4000, 0),  // +4000
            row(4, 500, 510), // -10, more allocated than tid 1
            row(5, 100, 90),  // +10, same as tid 1
            row(6, 0, 0),
        ];
        order_threads(&mut rows);
        let tids: Vec<u32> = rows.iter().map(|r| r.tid).collect();
        assert_eq!(tids, [2, 3, 4, 1, 5, 6]);
    }
}
