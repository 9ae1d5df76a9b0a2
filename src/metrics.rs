//! The Prometheus text exposition of a snapshot (`GET /metrics`, `JVMALLOC_METRICS_FILE`,
//! `jvmalloc metrics <pid>`).
//!
//! Names follow Prometheus conventions: a `jvmalloc_` prefix (no clash with the JVM's own
//! `jvm_*` and `process_*` exporters), base units (`_bytes`), `_total` for counters, a
//! `# HELP` and `# TYPE` line for each. Label sets are bounded: size classes are the
//! allocator's (at most 232), and threads are pooled by name ([`crate::names::pool_name`])
//! into the [`TOP_POOLS`] largest pools plus `other`. `docs/stats.md` lists every metric.

use crate::jvm::Jvm;
use crate::names::pool_name;
use crate::stats::Snapshot;
use std::collections::BTreeMap;
use std::fmt::Write;

/// Thread pools shown by name; the rest are summed as `pool="other"`.
pub const TOP_POOLS: usize = 20;

struct Out(String);

impl Out {
    fn head(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }
    fn gauge(&mut self, name: &str, help: &str, v: impl std::fmt::Display) {
        self.head(name, "gauge", help);
        let _ = writeln!(self.0, "{name} {v}");
    }
    fn counter(&mut self, name: &str, help: &str, v: u64) {
        self.head(name, "counter", help);
        let _ = writeln!(self.0, "{name} {v}");
    }
    fn sample(&mut self, name: &str, labels: &[(&str, &str)], v: impl std::fmt::Display) {
        self.0.push_str(name);
        self.0.push('{');
        for (i, (k, val)) in labels.iter().enumerate() {
            if i > 0 {
                self.0.push(',');
            }
            let _ = write!(self.0, "{k}=\"");
            label_value(&mut self.0, val);
            self.0.push('"');
        }
        let _ = writeln!(self.0, "}} {v}");
    }
}

/// A label value with `\`, `"` and newlines escaped as the exposition format requires.
fn label_value(out: &mut String, v: &str) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// Allocated and freed bytes per thread pool: the [`TOP_POOLS`] pools that allocated the
/// most, then `other`, then the exited and unregistered threads.
fn pools(s: &Snapshot) -> Vec<(String, u64, u64)> {
    let mut by: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for t in &s.threads {
        let e = by.entry(pool_name(&t.name)).or_default();
        e.0 += t.allocated;
        e.1 += t.freed;
    }
    let mut rows: Vec<(String, u64, u64)> = by.into_iter().map(|(k, (a, f))| (k, a, f)).collect();
    rows.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    if rows.len() > TOP_POOLS {
        let rest = rows.split_off(TOP_POOLS);
        let (a, f) = rest.iter().fold((0, 0), |(a, f), r| (a + r.1, f + r.2));
        rows.push(("other".into(), a, f));
    }
    rows.push(("[exited]".into(), s.exited_allocated, s.exited_freed));
    let unregistered = s.unregistered_net;
    rows.push((
        "[unregistered]".into(),
        unregistered.max(0) as u64,
        (-unregistered).max(0) as u64,
    ));
    rows
}

/// Renders `s` in the Prometheus text format (version 0.0.4).
pub fn render(s: &Snapshot) -> String {
    let t = &s.totals;
    let mut o = Out(String::with_capacity(16 << 10));
    o.head(
        "jvmalloc_info",
        "gauge",
        "Always 1; the labels say which jvmalloc and jemalloc serve this process.",
    );
    o.sample(
        "jvmalloc_info",
        &[
            ("version", env!("CARGO_PKG_VERSION")),
            ("jemalloc", crate::jemalloc::version()),
            ("foreign_malloc", s.foreign_malloc.as_deref().unwrap_or("")),
        ],
        1,
    );
    o.gauge(
        "jvmalloc_process_rss_bytes",
        "Resident set size of the process (/proc/self/statm): what container limits and the OOM killer count.",
        s.rss,
    );
    o.head(
        "jvmalloc_rss_split_bytes",
        "gauge",
        "The process's RSS split: malloc_live (bytes in live allocations), allocator_overhead (RAM the allocator holds beyond them), not_malloc (the rest of RSS: Java heap, metaspace, code, thread stacks, mapped files).",
    );
    // The dump's split ([`crate::jvm::parts`]), with the JVM's parts summed as not_malloc:
    // the three always add up to RSS.
    let part = |key: &str| s.parts.iter().find(|p| p.key == key).map_or(0, |p| p.bytes);
    let (live, overhead) = (part("malloc_live"), part("allocator_overhead"));
    let split = [
        ("malloc_live", live),
        ("allocator_overhead", overhead),
        ("not_malloc", s.rss.saturating_sub(live + overhead)),
    ];
    for (part, v) in split {
        o.sample("jvmalloc_rss_split_bytes", &[("part", part)], v);
    }
    if let Jvm::Split(j) = &s.jvm {
        o.head(
            "jvmalloc_jvm_rss_bytes",
            "gauge",
            "RSS not owned by malloc, split from the JVM's performance counters and the memory map: java_heap (resident), metaspace (committed, class space included), thread_stacks, code_cache, mapped_files, other.",
        );
        for p in s.parts.iter().skip(2) {
            o.sample("jvmalloc_jvm_rss_bytes", &[("part", p.key)], p.bytes);
        }
        let jvm: [(&str, &str, u64); 7] = [
            ("jvmalloc_jvm_heap_max_bytes", "The Java heap's maximum size (-Xmx).", j.heap_max),
            ("jvmalloc_jvm_heap_committed_bytes", "The Java heap's committed size (sum of the generations' capacities, as jstat shows).", j.heap_committed),
            ("jvmalloc_jvm_heap_used_bytes", "Bytes used in the Java heap (sum of the spaces' used, as jstat shows).", j.heap_used),
            ("jvmalloc_jvm_metaspace_committed_bytes", "Metaspace committed, compressed class space included (sun.gc.metaspace.capacity).", j.metaspace_committed),
            ("jvmalloc_jvm_metaspace_used_bytes", "Metaspace used (sun.gc.metaspace.used).", j.metaspace_used),
            ("jvmalloc_jvm_class_space_committed_bytes", "Compressed class space committed (part of the metaspace figure).", j.class_space_committed),
            ("jvmalloc_jvm_thread_stacks_bytes", "Resident bytes of the thread stacks found in the memory map.", j.stacks_resident),
        ];
        for (name, help, v) in jvm {
            o.gauge(name, help, v);
        }
        o.gauge(
            "jvmalloc_jvm_threads",
            "Live Java threads (java.threads.live).",
            j.java_threads,
        );
    }
    let gauges: [(&str, &str, u64); 9] = [
        ("jvmalloc_allocated_bytes", "Bytes in live allocations, including objects parked in thread caches (jemalloc stats.allocated).", t.allocated),
        ("jvmalloc_active_bytes", "Bytes in pages that hold live allocations (stats.active).", t.active),
        ("jvmalloc_resident_bytes", "RAM the allocator holds: active pages, metadata, and dirty pages not yet returned (stats.resident).", t.resident),
        ("jvmalloc_mapped_bytes", "Bytes in mapped extents that are active or hold metadata (stats.mapped).", t.mapped),
        ("jvmalloc_retained_bytes", "Address space kept mapped but returned to the kernel; costs no RAM (stats.retained).", t.retained),
        ("jvmalloc_metadata_bytes", "The allocator's own bookkeeping (stats.metadata).", t.metadata),
        ("jvmalloc_dirty_bytes", "Freed pages still in RAM, waiting for decay or purge.", t.dirty),
        ("jvmalloc_muzzy_bytes", "Freed pages returned lazily (MADV_FREE).", t.muzzy),
        ("jvmalloc_tcache_bytes", "Bytes in objects parked in thread caches (counted in allocated).", s.tcache),
    ];
    for (name, help, v) in gauges {
        o.gauge(name, help, v);
    }
    if let Some(limit) = s.memory_limit {
        o.gauge(
            "jvmalloc_memory_limit_bytes",
            "The memory limit the pressure guard works against (JVMALLOC_MEMORY_LIMIT or the cgroup's).",
            limit,
        );
    }
    o.counter(
        "jvmalloc_purged_bytes_total",
        "Bytes of freed pages returned to the kernel since start (decay, idle purge, pressure guard, malloc_trim).",
        s.purged_bytes,
    );
    o.counter(
        "jvmalloc_pressure_events_total",
        "Memory-pressure episodes since start: RSS reached JVMALLOC_PRESSURE_PCT of the limit.",
        s.pressure_events,
    );
    o.counter(
        "jvmalloc_exited_threads_total",
        "Threads that have exited since start.",
        s.exited_threads,
    );
    o.gauge(
        "jvmalloc_threads",
        "Live threads known to jvmalloc's registry.",
        s.threads.len(),
    );
    o.head(
        "jvmalloc_size_class_live_bytes",
        "gauge",
        "Bytes in live allocations of each size class (kind small: slab-backed, large: page runs).",
    );
    for c in s.classes.iter().filter(|c| c.live_bytes > 0) {
        let size = c.size.to_string();
        o.sample(
            "jvmalloc_size_class_live_bytes",
            &[("kind", c.kind), ("size", &size)],
            c.live_bytes,
        );
    }
    let pools = pools(s);
    o.head(
        "jvmalloc_thread_pool_allocated_bytes",
        "gauge",
        "Bytes allocated by the threads of a pool (threads pooled by name, digits as N), since they started; [exited] holds threads that are gone.",
    );
    for (pool, a, _) in &pools {
        o.sample("jvmalloc_thread_pool_allocated_bytes", &[("pool", pool)], a);
    }
    o.head(
        "jvmalloc_thread_pool_freed_bytes",
        "gauge",
        "Bytes freed by the threads of a pool, whoever allocated them.",
    );
    for (pool, _, f) in &pools {
        o.sample("jvmalloc_thread_pool_freed_bytes", &[("pool", pool)], f);
    }
    if let Some(p) = &s.profile {
        profile(&mut o, p);
    }
    o.0
}

/// Libraries shown by name in the profile metrics; the rest are summed as `other`.
pub const TOP_LIBRARIES: usize = 20;

/// Allocation-site sampling: live bytes by library (see docs/profiling.md).
fn profile(o: &mut Out, p: &crate::profile::Summary) {
    o.gauge(
        "jvmalloc_profile_sampling_active",
        "1 while allocation-site sampling is on (JVMALLOC_PROFILE, jvmalloc profile --start/--stop).",
        u8::from(p.active),
    );
    o.gauge(
        "jvmalloc_profile_sample_interval_bytes",
        "Mean bytes allocated between two samples (JVMALLOC_PROFILE_SAMPLE).",
        p.interval,
    );
    o.head(
        "jvmalloc_profile_live_bytes",
        "gauge",
        "Estimated bytes in live sampled allocations by library: the first stack frame outside libc, the C++ runtime and the allocator ([no file]: JIT-compiled code). The top 20, then other.",
    );
    let mut rest = 0.0;
    for (i, (lib, e)) in p.by_library.iter().enumerate() {
        if i < TOP_LIBRARIES {
            o.sample(
                "jvmalloc_profile_live_bytes",
                &[("library", lib)],
                e.bytes.round(),
            );
        } else {
            rest += e.bytes;
        }
    }
    if p.by_library.len() > TOP_LIBRARIES {
        o.sample(
            "jvmalloc_profile_live_bytes",
            &[("library", "other")],
            rest.round(),
        );
    }
}
