//! `jvmalloc diff <old.json> <new.json>`: what grew between two dumps.
//!
//! Threads are pooled by name: every run of digits that does not follow a letter is
//! replaced by `N`, so all `Kafka Fetcher N` or `pool-N-thread-N` threads form one row while
//! `C2 CompilerThre` and `G1 Refine#N` keep the names of what they are; exited threads are
//! one row, and the rows are ranked by growth of net bytes; size classes are ranked by growth
//! of live bytes. A leak such as a per-checkpoint map that never shrinks shows up as the
//! thread pool that allocates it and the size class it fills.

use crate::dumpfile::{Dump, Group};
use crate::names::pool_name;
use std::collections::BTreeMap;
use std::fmt::Write;

/// Threads and net bytes of a row: a pool of live threads, the exited or the unregistered.
#[derive(Default, Clone, Copy)]
pub struct Pool {
    pub threads: i128,
    pub net: i128,
}

impl From<&Group> for Pool {
    fn from(g: &Group) -> Self {
        Pool {
            threads: g.threads,
            net: g.net,
        }
    }
}

fn pools(d: &Dump) -> BTreeMap<String, Pool> {
    let mut m: BTreeMap<String, Pool> = BTreeMap::new();
    for t in &d.threads {
        let p = m.entry(pool_name(&t.name)).or_default();
        p.threads += 1;
        p.net += t.net;
    }
    m.insert("[exited threads]".into(), (&d.exited).into());
    m.insert("[unregistered]".into(), (&d.unregistered).into());
    m
}

fn classes(d: &Dump) -> BTreeMap<(String, i128), (i128, i128)> {
    d.size_classes
        .iter()
        .map(|c| ((c.kind.clone(), c.size), (c.live_bytes, c.live_regions)))
        .collect()
}

pub fn mib(v: i128) -> f64 {
    v as f64 / 1048576.0
}

/// Why two dumps should not be compared, if they should not: of different processes
/// (unless `allow_different`), or in the wrong order.
pub fn check(old: &Dump, new: &Dump, allow_different: bool) -> Result<(), String> {
    // When the process started, as each dump tells it (the library is loaded at start).
    let start = |d: &Dump| d.time_unix as f64 - d.uptime_s;
    let apart = (start(old) - start(new)).abs();
    if !allow_different && (old.pid != new.pid || apart.is_nan() || apart > 2.0) {
        return Err(format!(
            "the dumps are of different processes (pid {}, up {:.1} s at {}; pid {}, up {:.1} \
             s at {}: started {apart:.0} s apart); pass --allow-different to compare them \
             anyway",
            old.pid, old.uptime_s, old.time, new.pid, new.uptime_s, new.time
        ));
    }
    if (new.time_unix, new.seq) < (old.time_unix, old.seq) {
        return Err(format!(
            "the old dump (#{} at {}) was taken after the new one (#{} at {}): swap them",
            old.seq, old.time, new.seq, new.time
        ));
    }
    Ok(())
}

/// Thread pools (see [`pools`]) with their figures in both dumps, by growth of net bytes,
/// biggest first.
pub fn pool_growth(old: &Dump, new: &Dump) -> Vec<(String, Pool, Pool)> {
    let (po, pn) = (pools(old), pools(new));
    let mut rows: Vec<(String, Pool, Pool)> = pn
        .iter()
        .map(|(k, n)| (k.clone(), po.get(k).copied().unwrap_or_default(), *n))
        .chain(
            po.iter()
                .filter(|(k, _)| !pn.contains_key(*k))
                .map(|(k, p)| (k.clone(), *p, Pool::default())),
        )
        .collect();
    rows.sort_by(|a, b| {
        (b.2.net - b.1.net)
            .cmp(&(a.2.net - a.1.net))
            .then(a.0.cmp(&b.0))
    });
    rows
}

/// A size class's growth between two dumps.
pub struct ClassGrowth {
    pub kind: String,
    pub size: i128,
    pub old_live: i128,
    pub new_live: i128,
    pub regions: i128,
}

impl ClassGrowth {
    pub fn growth(&self) -> i128 {
        self.new_live - self.old_live
    }
}

/// Size classes by growth of live bytes, biggest first.
pub fn class_growth(old: &Dump, new: &Dump) -> Vec<ClassGrowth> {
    let (co, cn) = (classes(old), classes(new));
    let mut rows: Vec<ClassGrowth> = cn
        .keys()
        .chain(co.keys().filter(|k| !cn.contains_key(*k)))
        .map(|k| {
            let (a, b) = (
                co.get(k).copied().unwrap_or_default(),
                cn.get(k).copied().unwrap_or_default(),
            );
            ClassGrowth {
                kind: k.0.clone(),
                size: k.1,
                old_live: a.0,
                new_live: b.0,
                regions: b.1 - a.1,
            }
        })
        .collect();
    rows.sort_by(|a, b| b.growth().cmp(&a.growth()).then(a.size.cmp(&b.size)));
    rows
}

pub fn run(old: &Dump, new: &Dump, top: usize) -> String {
    let mut o = String::new();
    if old.pid == new.pid {
        let _ = writeln!(
            o,
            "jvmalloc diff: pid {} ({}), dump #{} at {} -> #{} at {}, {:.1} s apart",
            new.pid,
            new.process,
            old.seq,
            old.time,
            new.seq,
            new.time,
            new.uptime_s - old.uptime_s
        );
    } else {
        let _ = writeln!(
            o,
            "jvmalloc diff: pid {} ({}) dump #{} at {} -> pid {} ({}) dump #{} at {}",
            old.pid, old.process, old.seq, old.time, new.pid, new.process, new.seq, new.time
        );
    }
    let _ = writeln!(
        o,
        "memory                        old bytes       new bytes          growth  growth MiB"
    );
    for ((k, a), (_, b)) in old.memory.rows().into_iter().zip(new.memory.rows()) {
        let _ = writeln!(
            o,
            "  {k:<20} {a:>15} {b:>15} {:>+15} {:>+11.1}",
            b - a,
            mib(b - a)
        );
    }

    let split = crate::dumpfile::split_rows(old, new);
    if !split.is_empty() {
        let _ = writeln!(
            o,
            "RSS split                     old bytes       new bytes          growth  growth MiB"
        );
        for (label, a, b) in &split {
            let _ = writeln!(
                o,
                "  {label:<24} {a:>15} {b:>15} {:>+15} {:>+11.1}",
                b - a,
                mib(b - a)
            );
        }
        if let Some((label, a, b)) = split.iter().max_by_key(|(_, a, b)| b - a) {
            let _ = writeln!(o, "  grew most: {label} {:+.1} MiB", mib(b - a));
        }
    }

    let rows = pool_growth(old, new);
    let _ = writeln!(
        o,
        "threads by name (numbers pooled as N), by growth of net bytes"
    );
    let _ = writeln!(
        o,
        "  {:<28} {:>7} {:>15} {:>15} {:>15} {:>11}",
        "name", "threads", "old net", "new net", "growth", "growth MiB"
    );
    for (name, a, b) in rows.iter().take(top) {
        let _ = writeln!(
            o,
            "  {name:<28} {:>7} {:>15} {:>15} {:>+15} {:>+11.1}",
            b.threads,
            a.net,
            b.net,
            b.net - a.net,
            mib(b.net - a.net)
        );
    }
    if rows.len() > top {
        let g: i128 = rows[top..].iter().map(|(_, a, b)| b.net - a.net).sum();
        let _ = writeln!(
            o,
            "  {:<28} {:>7} {:>15} {:>15} {g:>+15} {:>+11.1}",
            format!("[{} more]", rows.len() - top),
            "",
            "",
            "",
            mib(g)
        );
    }

    let _ = writeln!(o, "size classes by growth of live bytes");
    let _ = writeln!(
        o,
        "  {:>10} {:<5} {:>15} {:>15} {:>15} {:>11} {:>10}",
        "size", "kind", "old live", "new live", "growth", "growth MiB", "regions"
    );
    for c in class_growth(old, new).iter().take(top) {
        let _ = writeln!(
            o,
            "  {:>10} {:<5} {:>15} {:>15} {:>+15} {:>+11.1} {:>+10}",
            c.size,
            c.kind,
            c.old_live,
            c.new_live,
            c.growth(),
            mib(c.growth()),
            c.regions
        );
    }
    o
}

#[cfg(test)]
mod tests {
    /// Pooling itself is tested with names.rs; here: the RSS split table and its verdict.
    #[test]
    fn rss_split_rows_and_what_grew_most() {
        let d = |heap: i64, live: i64| {
            crate::dumpfile::parse(&format!(
                r#"{{"jvmalloc_stats":1,"pid":7,"seq":1,"rss_split":{{"malloc_live":{live},"allocator_overhead":0,"java_heap":{heap},"other":5}}}}"#
            ))
            .unwrap()
        };
        let out = super::run(&d(100 << 20, 10 << 20), &d(450 << 20, 11 << 20), 5);
        assert!(out.contains("RSS split"), "{out}");
        assert!(out.contains("  Java heap "), "{out}");
        assert!(
            !out.contains("metaspace"),
            "parts no dump has are not shown: {out}"
        );
        assert!(out.contains("grew most: Java heap +350.0 MiB"), "{out}");
    }
}
