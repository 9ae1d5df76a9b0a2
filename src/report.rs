//! Statistics dumps as text (for a terminal or `taskmanager.out`) or JSON (one object per
//! line, for tools; schema in `docs/stats.md`). Pure formatting of a [`Snapshot`].

use crate::config::{ArenasFrom, Format};
use crate::jvm::Jvm;
use crate::stats::Snapshot;
use crate::timefmt::iso_time;
use std::fmt::Write;

pub fn render(s: &Snapshot, format: Format) -> String {
    match format {
        Format::Text => text(s),
        Format::Json => json(s),
    }
}

const MIB: f64 = 1024.0 * 1024.0;

fn mib(v: i64) -> f64 {
    v as f64 / MIB
}

fn config_text(s: &Snapshot) -> String {
    let c = &s.config;
    let arenas_from = match c.arenas_from {
        ArenasFrom::Variable => "JVMALLOC_ARENAS".to_string(),
        ArenasFrom::Cpus { affinity, quota } => match quota {
            Some(q) => format!("{affinity} CPUs, quota {q}"),
            None => format!("{affinity} CPUs"),
        },
    };
    format!(
        "arenas={} ({arenas_from}) dirty_decay_ms={} muzzy_decay_ms={} tcache_max={}",
        c.arenas, c.dirty_decay_ms, c.muzzy_decay_ms, c.tcache_max
    )
}

/// The RSS split, its change since the previous dump, and the JVM's own figures: what an
/// operator reads first.
fn split_text(o: &mut String, s: &Snapshot) {
    if let Some(g) = &s.growth {
        let three = ["java_heap", "malloc_live", "allocator_overhead"];
        let (top, d) = g.deltas[0];
        let others: Vec<String> = g
            .deltas
            .iter()
            .filter(|(p, _)| p.key != top.key && (three.contains(&p.key) || p.key == "not_malloc"))
            .map(|(p, d)| format!("{} {:+.1} MiB", p.label, mib(*d)))
            .collect();
        let _ = writeln!(
            o,
            "{} since dump #{} ({:.1} s ago): {} {:+.1} MiB ({})",
            if d > 0 { "grew most" } else { "nothing grew" },
            g.since_seq,
            g.seconds,
            top.label,
            mib(d),
            others.join(", ")
        );
    }
    let _ = writeln!(
        o,
        "RSS split                                      bytes        MiB   % of RSS{}",
        if s.growth.is_some() {
            "     change MiB"
        } else {
            ""
        }
    );
    for p in &s.parts {
        let change = s
            .growth
            .as_ref()
            .and_then(|g| g.deltas.iter().find(|(q, _)| q.key == p.key))
            .map_or(String::new(), |(_, d)| format!(" {:>+14.1}", mib(*d)));
        let _ = writeln!(
            o,
            "  {:<42} {:>14} {:>10.1} {:>9.1}%{change}",
            p.label,
            p.bytes,
            mib(p.bytes as i64),
            100.0 * p.bytes as f64 / s.rss.max(1) as f64
        );
    }
    match &s.jvm {
        Jvm::Split(j) => {
            let m = |v: u64| mib(v as i64);
            let resident = j.heap_resident.map_or("resident unknown".to_string(), |r| {
                format!("{:.1} resident", m(r))
            });
            let _ = writeln!(
                o,
                "jvm: Java heap {:.1} committed, {:.1} used, {resident}, {:.1} max; metaspace {:.1} committed, \
                 {:.1} used (of which class space {:.1} committed, {:.1} used); {} live Java threads, {} stacks \
                 {:.1} resident; code cache {:.1} resident (MiB; counters from {})",
                m(j.heap_committed),
                m(j.heap_used),
                m(j.heap_max),
                m(j.metaspace_committed),
                m(j.metaspace_used),
                m(j.class_space_committed),
                m(j.class_space_used),
                j.java_threads,
                j.stacks,
                m(j.stacks_resident),
                m(j.code_resident),
                j.source
            );
        }
        Jvm::Unavailable(why) => {
            let _ = writeln!(o, "jvm: {why}");
        }
        Jvm::NotHotSpot => {}
    }
}

/// The text dump. Sections, in this order: the title, the headline and the RSS split (what
/// an operator reads first), the size classes (which allocation sizes hold the memory), the
/// `memory` table, the configuration, the threads, the reconciliation, the arenas.
fn text(s: &Snapshot) -> String {
    let mut o = String::with_capacity(16 << 10);
    let _ = writeln!(
        o,
        "=== jvmalloc statistics #{} pid {} ({}) {} uptime {:.1}s ===",
        s.seq,
        s.pid,
        s.process,
        iso_time(s.unix_time),
        s.uptime_s
    );
    split_text(&mut o, s);
    if let Some(lib) = &s.foreign_malloc {
        let _ = writeln!(
            o,
            "WARNING: malloc resolves to {lib}, not to jvmalloc: the program's allocations \
             bypass jvmalloc, and the figures below describe only jvmalloc's own"
        );
    }
    classes_text(&mut o, s);
    memory_text(&mut o, s);
    let _ = writeln!(o, "configuration: {}", config_text(s));
    profile_text(&mut o, s);
    threads_text(&mut o, s);
    arenas_text(&mut o, s);
    let _ = writeln!(o, "=== end of jvmalloc statistics #{} ===", s.seq);
    o
}

/// Size classes with activity, biggest live bytes first, top N, the rest summed.
fn classes_text(o: &mut String, s: &Snapshot) {
    let top = s.config.stats.top;
    let mut classes: Vec<_> = s.classes.iter().collect();
    classes.sort_by(|a, b| b.live_bytes.cmp(&a.live_bytes).then(a.size.cmp(&b.size)));
    let _ = writeln!(
        o,
        "size classes: {} with activity, by live bytes (merged over arenas)",
        classes.len()
    );
    let _ = writeln!(
        o,
        "  {:>10} {:<5} {:>12} {:>12} {:>12} {:>10} {:>14} {:>8} {:>6}",
        "size", "kind", "requests", "mallocs", "frees", "live", "live bytes", "slabs", "util"
    );
    for c in classes.iter().take(top) {
        let (slabs, util) = match (c.slabs, c.utilisation) {
            (Some(sl), Some(u)) => (sl.to_string(), format!("{:.2}", u)),
            _ => ("-".to_string(), "-".to_string()),
        };
        let _ = writeln!(
            o,
            "  {:>10} {:<5} {:>12} {:>12} {:>12} {:>10} {:>14} {:>8} {:>6}",
            c.size,
            c.kind,
            c.requests,
            c.mallocs,
            c.frees,
            c.live_regions,
            c.live_bytes,
            slabs,
            util
        );
    }
    if classes.len() > top {
        let rest = &classes[top..];
        let live: u64 = rest.iter().map(|c| c.live_bytes).sum();
        let req: u64 = rest.iter().map(|c| c.requests).sum();
        let label = format!("[{} more]", rest.len());
        let _ = writeln!(
            o,
            "  {label:>10} {:<5} {req:>12} {:>12} {:>12} {:>10} {live:>14}",
            "", "", "", ""
        );
    }
}

/// The `memory` table: jemalloc's totals, RSS and the memory limit.
fn memory_text(o: &mut String, s: &Snapshot) {
    let t = &s.totals;
    let _ = writeln!(
        o,
        "memory                                         bytes        MiB"
    );
    let rows: [(&str, i64); 12] = [
        ("RSS (process resident set)", s.rss as i64),
        ("malloc allocated (live bytes)", t.allocated as i64),
        ("malloc active (pages with live bytes)", t.active as i64),
        ("malloc resident (RAM held by malloc)", t.resident as i64),
        ("malloc mapped", t.mapped as i64),
        ("malloc retained (no RAM)", t.retained as i64),
        ("malloc metadata", t.metadata as i64),
        ("malloc dirty (freed, not yet returned)", t.dirty as i64),
        ("malloc in thread caches", s.tcache as i64),
        ("malloc internal (thread cache stacks)", s.internal as i64),
        ("allocator overhead (resident - allocated)", s.overhead()),
        (
            "RSS not owned by malloc (RSS - resident)",
            s.rss_not_malloc(),
        ),
    ];
    for (name, v) in rows {
        let _ = writeln!(o, "  {name:<42} {v:>14} {:>10.1}", mib(v));
    }
    let _ = writeln!(
        o,
        "  {:<42} {:>14.3}",
        "fragmentation (active / allocated)",
        s.fragmentation()
    );
    match s.memory_limit {
        Some(l) => {
            let _ = writeln!(
                o,
                "  {:<42} {l:>14} {:>10.1}  (RSS is {:.1}% of it)",
                "memory limit",
                mib(l as i64),
                100.0 * s.rss as f64 / l as f64
            );
        }
        None => {
            let _ = writeln!(o, "  {:<42} {:>14}", "memory limit", "none");
        }
    }
}

/// The thread table and the reconciliation. Rows come in the snapshot's order, by the
/// magnitude of net (`stats::order_threads`), so every row summed in `[N more]` is no
/// bigger in magnitude than a row shown: a thread that frees a lot (a JVM's `Reference
/// Handler`) is shown as surely as one that keeps a lot.
fn threads_text(o: &mut String, s: &Snapshot) {
    let t = &s.totals;
    let top = s.config.stats.top;
    let _ = writeln!(
        o,
        "threads: {} live registered (registry {} of {} slots, {} bytes), by size of net, + or -; \
         net = allocated minus freed by this thread",
        s.threads.len(),
        s.threads.len(),
        s.registry_capacity,
        s.registry_bytes
    );
    let _ = writeln!(
        o,
        "  memory freed by another thread counts against that thread: net is not what a thread holds"
    );
    let _ = writeln!(
        o,
        "  {:>8}  {:<16} {:>14} {:>14} {:>14} {:>9}",
        "tid", "name", "allocated", "freed", "net", "net MiB"
    );
    for r in s.threads.iter().take(top) {
        let _ = writeln!(
            o,
            "  {:>8}  {:<16} {:>14} {:>14} {:>14} {:>9.1}",
            r.tid,
            r.name,
            r.allocated,
            r.freed,
            r.net,
            mib(r.net)
        );
    }
    if s.threads.len() > top {
        let rest = &s.threads[top..];
        let (a, f, n) = rest.iter().fold((0u64, 0u64, 0i64), |(a, f, n), r| {
            (a + r.allocated, f + r.freed, n + r.net)
        });
        let label = format!("[{} more]", rest.len());
        let _ = writeln!(
            o,
            "  {:>8}  {label:<16} {a:>14} {f:>14} {n:>14} {:>9.1}",
            "",
            mib(n)
        );
    }
    let label = format!("[exited: {}]", s.exited_threads);
    let _ = writeln!(
        o,
        "  {:>8}  {label:<16} {:>14} {:>14} {:>14} {:>9.1}",
        "",
        s.exited_allocated,
        s.exited_freed,
        s.exited_net(),
        mib(s.exited_net())
    );
    let label = format!("[unregistered: {}]", s.overflow_threads);
    let _ = writeln!(
        o,
        "  {:>8}  {label:<16} {:>14} {:>14} {:>14} {:>9.1}",
        "",
        "-",
        "-",
        s.unregistered_net,
        mib(s.unregistered_net)
    );
    let _ = writeln!(
        o,
        "reconciliation: allocated {} = threads' net {} + in thread caches {} + jemalloc internal {} \
         + unregistered {} (slack: thread caches, {} bytes)",
        t.allocated,
        s.threads_net(),
        s.tcache,
        s.internal,
        s.unregistered_net,
        s.tcache
    );
}

/// One row per arena, the huge arena last.
fn arenas_text(o: &mut String, s: &Snapshot) {
    let _ = writeln!(o, "arenas: {}", s.arenas.len());
    let _ = writeln!(
        o,
        "  {:>5} {:>7} {:>14} {:>14} {:>14} {:>14} {:>14} {:>14}",
        "arena", "threads", "small", "large", "active", "dirty", "muzzy", "tcache"
    );
    for a in &s.arenas {
        let _ = writeln!(
            o,
            "  {:>5} {:>7} {:>14} {:>14} {:>14} {:>14} {:>14} {:>14}",
            a.index,
            a.threads,
            a.small_allocated,
            a.large_allocated,
            a.active,
            a.dirty,
            a.muzzy,
            a.tcache
        );
    }
}

/// A JSON string literal.
/// Appends `v` as a JSON string.
pub fn js(out: &mut String, v: &str) {
    out.push('"');
    for ch in v.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or("null".to_string(), |v| v.to_string())
}

/// `rss_split`, `growth` and `jvm` objects (see docs/stats.md).
fn split_json(o: &mut String, s: &Snapshot) {
    o.push_str(",\"rss_split\":{");
    for (i, p) in s.parts.iter().enumerate() {
        let _ = write!(
            o,
            "{}\"{}\":{}",
            if i > 0 { "," } else { "" },
            p.key,
            p.bytes
        );
    }
    o.push('}');
    match &s.growth {
        Some(g) => {
            let _ = write!(
                o,
                ",\"growth\":{{\"since_seq\":{},\"seconds\":{:.3},\"grew_most\":\"{}\",\"bytes\":{{",
                g.since_seq, g.seconds, g.deltas[0].0.key
            );
            for (i, (p, d)) in g.deltas.iter().enumerate() {
                let _ = write!(o, "{}\"{}\":{d}", if i > 0 { "," } else { "" }, p.key);
            }
            o.push_str("}}");
        }
        None => o.push_str(",\"growth\":null"),
    }
    match &s.jvm {
        Jvm::Split(j) => {
            let _ = write!(
                o,
                ",\"jvm\":{{\"heap_max\":{},\"heap_committed\":{},\"heap_used\":{},\"heap_resident\":{},\
                 \"metaspace_committed\":{},\"metaspace_used\":{},\"class_space_committed\":{},\
                 \"class_space_used\":{},\"java_threads\":{},\"stacks\":{},\"stacks_resident\":{},\
                 \"code_resident\":{},\"files_resident\":{},\"source\":",
                j.heap_max,
                j.heap_committed,
                j.heap_used,
                opt(j.heap_resident),
                j.metaspace_committed,
                j.metaspace_used,
                j.class_space_committed,
                j.class_space_used,
                j.java_threads,
                j.stacks,
                j.stacks_resident,
                j.code_resident,
                j.files_resident
            );
            js(o, &j.source);
            o.push('}');
        }
        Jvm::Unavailable(why) => {
            o.push_str(",\"jvm\":{\"unavailable\":");
            js(o, why);
            o.push('}');
        }
        Jvm::NotHotSpot => o.push_str(",\"jvm\":null"),
    }
}

fn json(s: &Snapshot) -> String {
    let t = &s.totals;
    let c = &s.config;
    let mut o = String::with_capacity(16 << 10);
    let _ = write!(
        o,
        "{{\"jvmalloc_stats\":1,\"seq\":{},\"pid\":{},\"process\":",
        s.seq, s.pid
    );
    js(&mut o, &s.process);
    let _ = write!(
        o,
        ",\"time_unix\":{},\"time\":\"{}\",\"uptime_s\":{:.3}",
        s.unix_time,
        iso_time(s.unix_time),
        s.uptime_s
    );
    split_json(&mut o, s);
    profile_json(&mut o, s);
    o.push_str(",\"foreign_malloc\":");
    match &s.foreign_malloc {
        Some(lib) => js(&mut o, lib),
        None => o.push_str("null"),
    }
    let _ =
        write!(
        o,
        ",\"memory\":{{\"rss\":{},\"allocated\":{},\"active\":{},\"resident\":{},\"mapped\":{},\
         \"retained\":{},\"metadata\":{},\"dirty\":{},\"muzzy\":{},\"tcache\":{},\"overhead\":{},\
         \"rss_not_malloc\":{},\"fragmentation\":{:.4},\"limit\":{},\"rss_share_of_limit\":{}}}",
        s.rss,
        t.allocated,
        t.active,
        t.resident,
        t.mapped,
        t.retained,
        t.metadata,
        t.dirty,
        t.muzzy,
        s.tcache,
        s.overhead(),
        s.rss_not_malloc(),
        s.fragmentation(),
        opt(s.memory_limit),
        opt(s.memory_limit.map(|l| format!("{:.4}", s.rss as f64 / l as f64)))
    );
    let _ = write!(
        o,
        ",\"config\":{{\"arenas\":{},\"dirty_decay_ms\":{},\"muzzy_decay_ms\":{},\"tcache_max\":{},\
         \"stats_signal\":{},\"stats_interval_s\":{},\"registry_capacity\":{}}}",
        c.arenas,
        c.dirty_decay_ms,
        c.muzzy_decay_ms,
        c.tcache_max,
        opt(c.stats.signal),
        c.stats.interval_s,
        s.registry_capacity
    );
    let _ = write!(
        o,
        ",\"registry\":{{\"capacity\":{},\"live\":{},\"bytes\":{}}}",
        s.registry_capacity,
        s.threads.len(),
        s.registry_bytes
    );
    // In the snapshot's order, as the text shows them: by the magnitude of net.
    o.push_str(",\"threads\":[");
    for (i, r) in s.threads.iter().enumerate() {
        if i > 0 {
            o.push(',');
        }
        let _ = write!(o, "{{\"tid\":{},\"name\":", r.tid);
        js(&mut o, &r.name);
        let _ = write!(
            o,
            ",\"allocated\":{},\"freed\":{},\"net\":{}}}",
            r.allocated, r.freed, r.net
        );
    }
    let _ = write!(
        o,
        "],\"exited\":{{\"threads\":{},\"allocated\":{},\"freed\":{},\"net\":{}}}",
        s.exited_threads,
        s.exited_allocated,
        s.exited_freed,
        s.exited_net()
    );
    let _ = write!(
        o,
        ",\"unregistered\":{{\"threads\":{},\"net\":{}}}",
        s.overflow_threads, s.unregistered_net
    );
    let _ = write!(
        o,
        ",\"reconciliation\":{{\"allocated\":{},\"threads_net\":{},\"tcache\":{},\"internal\":{},\"unregistered_net\":{},\"slack\":{}}}",
        t.allocated,
        s.threads_net(),
        s.tcache,
        s.internal,
        s.unregistered_net,
        s.tcache
    );
    o.push_str(",\"size_classes\":[");
    for (i, k) in s.classes.iter().enumerate() {
        if i > 0 {
            o.push(',');
        }
        let _ = write!(
            o,
            "{{\"kind\":\"{}\",\"index\":{},\"size\":{},\"requests\":{},\"mallocs\":{},\"frees\":{},\
             \"live_regions\":{},\"live_bytes\":{},\"slabs\":{},\"utilisation\":{}}}",
            k.kind,
            k.index,
            k.size,
            k.requests,
            k.mallocs,
            k.frees,
            k.live_regions,
            k.live_bytes,
            opt(k.slabs),
            opt(k.utilisation.map(|u| format!("{u:.4}")))
        );
    }
    o.push_str("],\"arenas\":[");
    for (i, a) in s.arenas.iter().enumerate() {
        if i > 0 {
            o.push(',');
        }
        let _ = write!(
            o,
            "{{\"index\":{},\"threads\":{},\"small_allocated\":{},\"large_allocated\":{},\"active\":{},\
             \"dirty\":{},\"muzzy\":{},\"mapped\":{},\"tcache\":{}}}",
            a.index,
            a.threads,
            a.small_allocated,
            a.large_allocated,
            a.active,
            a.dirty,
            a.muzzy,
            a.mapped,
            a.tcache
        );
    }
    o.push_str("]}\n");
    o
}

/// With allocation-site sampling: live bytes by the thread that allocated them and by
/// library, from the samples. Unlike the thread table's net figures, a thread here is
/// charged only with what it allocated and is still live, whoever frees the rest.
fn profile_text(o: &mut String, s: &Snapshot) {
    let Some(p) = &s.profile else { return };
    let top = s.config.stats.top;
    let _ = writeln!(
        o,
        "live native memory by allocating thread (sampled: one sample per {} KiB on average, \
         sampling {}; ± one standard deviation): {:.1} MiB ± {:.1} in all",
        p.interval >> 10,
        if p.active { "active" } else { "inactive" },
        p.total.bytes / MIB,
        p.total.sigma() / MIB
    );
    let rows = |o: &mut String, list: &[(String, crate::profile::Estimate)]| {
        for (name, e) in list.iter().take(top) {
            let _ = writeln!(
                o,
                "  {name:<40} {:>10.1} MiB ± {:>6.1} {:>5.1}%",
                e.bytes / MIB,
                e.sigma() / MIB,
                100.0 * e.bytes / p.total.bytes.max(1.0)
            );
        }
        if list.len() > top {
            let mut rest = crate::profile::Estimate::default();
            list[top..].iter().for_each(|(_, e)| rest.add(e));
            let _ = writeln!(
                o,
                "  {:<40} {:>10.1} MiB ± {:>6.1} {:>5.1}%",
                format!("[{} more]", list.len() - top),
                rest.bytes / MIB,
                rest.sigma() / MIB,
                100.0 * rest.bytes / p.total.bytes.max(1.0)
            );
        }
    };
    rows(o, &p.by_thread);
    let _ = writeln!(
        o,
        "live native memory by library (first frame outside libc and the allocator; \
         `jvmalloc profile <pid>` names functions and stacks)"
    );
    rows(o, &p.by_library);
}

/// The profile summary as the dump's `profile` member (null without sampling).
fn profile_json(o: &mut String, s: &Snapshot) {
    o.push_str(",\"profile\":");
    let Some(p) = &s.profile else {
        o.push_str("null");
        return;
    };
    let e = |o: &mut String, e: &crate::profile::Estimate| {
        let _ = write!(
            o,
            "\"bytes\":{:.0},\"objects\":{:.0},\"samples\":{:.1},\"sigma\":{:.0}",
            e.bytes,
            e.objects,
            e.samples,
            e.sigma()
        );
    };
    let _ = write!(
        o,
        "{{\"active\":{},\"sample_interval\":{},\"total\":{{",
        p.active, p.interval
    );
    e(o, &p.total);
    o.push('}');
    for (key, list) in [("by_thread", &p.by_thread), ("by_library", &p.by_library)] {
        let _ = write!(o, ",\"{key}\":[");
        for (i, (name, est)) in list.iter().enumerate() {
            o.push_str(if i > 0 { ",{\"name\":" } else { "{\"name\":" });
            js(o, name);
            o.push(',');
            e(o, est);
            o.push('}');
        }
        o.push(']');
    }
    o.push('}');
}
