//! The memory-pressure guard: acts before the OOM killer or YARN does.
//!
//! Once per purge interval it reads the process's RSS (one read of `/proc/self/statm`;
//! nothing else while below the threshold). When RSS reaches `JVMALLOC_PRESSURE_PCT` percent
//! of the memory limit, it purges every arena at once (again at every interval while above),
//! and once per pressure episode writes one line on stderr that says whether native memory
//! or the rest of the process (the JVM) is growing, followed by a full statistics dump, so
//! that a post-mortem exists even if the kernel kills the process a moment later. An
//! episode ends when RSS falls 5 points below the threshold; episodes start at most once a
//! minute (rate limit), however often RSS crosses the line.

use crate::config::Config;
use crate::diag::say;
use crate::jemalloc::{self, Totals};
use crate::stats;

/// Points below the threshold RSS must fall to end an episode.
const HYSTERESIS_PCT: u64 = 5;
/// Shortest time between the starts of two reported episodes.
const MIN_EPISODE_GAP_NS: u64 = 60_000_000_000;

#[derive(Default)]
pub struct Guard {
    in_episode: bool,
    last_report_ns: Option<u64>,
}

impl Guard {
    /// Checks RSS against the limit; returns true when a dump should be written now.
    pub fn check(&mut self, cfg: &Config, now_ns: u64) -> bool {
        let (Some(limit), pct) = (cfg.memory_limit, cfg.purge.pressure_pct) else {
            return false;
        };
        if pct == 0 {
            return false;
        }
        let rss = stats::rss();
        let threshold = limit / 100 * pct;
        if rss < threshold {
            if self.in_episode && rss < limit / 100 * pct.saturating_sub(HYSTERESIS_PCT) {
                self.in_episode = false;
            }
            return false;
        }
        jemalloc::purge_all();
        if self.in_episode {
            return false;
        }
        self.in_episode = true;
        if self
            .last_report_ns
            .is_some_and(|t| now_ns.saturating_sub(t) < MIN_EPISODE_GAP_NS)
        {
            return false;
        }
        self.last_report_ns = Some(now_ns);
        let t = Totals::read();
        let after = stats::rss();
        let mib = |v: u64| v as f64 / 1048576.0;
        say!(
            "memory pressure: RSS {:.1} MiB is {:.1}% of the {:.1} MiB limit (threshold {pct}%); \
             native live {:.1} MiB, allocator overhead {:.1} MiB, RSS not owned by malloc {:.1} MiB; \
             purged all arenas, RSS now {:.1} MiB",
            mib(rss),
            100.0 * rss as f64 / limit as f64,
            mib(limit),
            mib(t.allocated),
            mib(t.resident.saturating_sub(t.allocated)),
            mib(rss.saturating_sub(t.resident)),
            mib(after)
        );
        true
    }
}
