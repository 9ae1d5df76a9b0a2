//! The memory-pressure guard: acts before the OOM killer or YARN does.
//!
//! Once per purge interval it reads the process's RSS (one read of `/proc/self/statm`;
//! nothing else while below the threshold). When RSS reaches `JVMALLOC_PRESSURE_PCT` percent
//! of the memory limit, it purges every arena at once, and once per pressure episode writes
//! one line on stderr that says whether native memory or the rest of the process (the JVM)
//! is growing, followed by a full statistics dump, so that a post-mortem exists even if the
//! kernel kills the process a moment later. While RSS stays above the threshold (a JVM whose
//! heap is most of its RSS can stay there for good), purges back off: the next comes after
//! 2, 4, 8 ... purge intervals, at most 64 s apart, since purging again and again gives
//! back nothing new and costs page faults. An episode ends, and the back-off with it, when
//! RSS falls 5 points below the threshold; episodes are reported at most once a minute,
//! however often RSS crosses the line.

use crate::config::Config;
use crate::diag::say;
use crate::jemalloc::{self, Totals};
use crate::stats;
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Points below the threshold RSS must fall to end an episode.
const HYSTERESIS_PCT: u64 = 5;
/// Shortest time between the starts of two reported episodes.
const MIN_EPISODE_GAP_NS: u64 = 60_000_000_000;

/// Pressure episodes since start.
static EPISODES: AtomicU64 = AtomicU64::new(0);

/// Memory-pressure episodes since start (reported or rate-limited alike).
pub fn episodes() -> u64 {
    EPISODES.load(Relaxed)
}

/// Longest time between two purges while RSS stays above the threshold.
const MAX_BACKOFF_NS: u64 = 64_000_000_000;

#[derive(Default)]
pub struct Guard {
    in_episode: bool,
    last_report_ns: Option<u64>,
    /// No purge before this time (the back-off).
    next_purge_ns: u64,
    /// The current gap between purges; 0 outside an episode.
    backoff_ns: u64,
}

/// What one check decided.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    Nothing,
    Purge,
    /// Purge, report the episode, and dump.
    PurgeAndReport,
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
        let interval_ns = cfg.purge.interval_ms.max(1) * 1_000_000;
        let step = self.step(rss, limit, pct, now_ns, interval_ns);
        if step == Step::Nothing {
            return false;
        }
        jemalloc::purge_all();
        if step == Step::Purge {
            return false;
        }
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

    /// The decision, from RSS and the clock alone.
    fn step(&mut self, rss: u64, limit: u64, pct: u64, now_ns: u64, interval_ns: u64) -> Step {
        let threshold = limit / 100 * pct;
        if rss < threshold {
            if self.in_episode && rss < limit / 100 * pct.saturating_sub(HYSTERESIS_PCT) {
                self.in_episode = false;
                self.backoff_ns = 0;
                self.next_purge_ns = 0;
            }
            return Step::Nothing;
        }
        if now_ns < self.next_purge_ns {
            return Step::Nothing;
        }
        self.backoff_ns = (self.backoff_ns.max(interval_ns) * 2).min(MAX_BACKOFF_NS);
        self.next_purge_ns = now_ns + self.backoff_ns;
        if self.in_episode {
            return Step::Purge;
        }
        self.in_episode = true;
        EPISODES.fetch_add(1, Relaxed);
        if self
            .last_report_ns
            .is_some_and(|t| now_ns.saturating_sub(t) < MIN_EPISODE_GAP_NS)
        {
            return Step::Purge;
        }
        self.last_report_ns = Some(now_ns);
        Step::PurgeAndReport
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;
    const LIMIT: u64 = 1000 << 20;

    /// Purges seen over `secs` one-second ticks with RSS always at `rss`.
    fn purges(g: &mut Guard, rss: u64, from: u64, secs: u64) -> Vec<u64> {
        (from..from + secs)
            .filter(|&t| g.step(rss, LIMIT, 90, t * S, S) != Step::Nothing)
            .collect()
    }

    #[test]
    fn purges_back_off_while_rss_stays_above() {
        let mut g = Guard::default();
        let high = LIMIT / 100 * 95;
        assert_eq!(
            purges(&mut g, high, 0, 200),
            [0, 2, 6, 14, 30, 62, 126, 190]
        );
        // Reported once.
        let mut g = Guard::default();
        assert_eq!(g.step(high, LIMIT, 90, 0, S), Step::PurgeAndReport);
        assert_eq!(g.step(high, LIMIT, 90, 10 * S, S), Step::Purge);
    }

    #[test]
    fn falling_below_the_hysteresis_ends_the_episode_and_the_back_off() {
        let mut g = Guard::default();
        let high = LIMIT / 100 * 95;
        purges(&mut g, high, 0, 40);
        // Just under the threshold: the episode, and its back-off, go on (next purge: 62).
        assert!(purges(&mut g, LIMIT / 100 * 88, 40, 5).is_empty());
        assert!(purges(&mut g, high, 45, 10).is_empty());
        // 5 points below: ended; a new episode purges at once (reported only after the
        // one-minute gap).
        assert!(purges(&mut g, LIMIT / 100 * 80, 55, 1).is_empty());
        assert_eq!(g.step(high, LIMIT, 90, 56 * S, S), Step::Purge);
        purges(&mut g, LIMIT / 100 * 80, 57, 1);
        assert_eq!(g.step(high, LIMIT, 90, 120 * S, S), Step::PurgeAndReport);
    }

    #[test]
    fn below_the_threshold_nothing_happens() {
        let mut g = Guard::default();
        assert!(purges(&mut g, LIMIT / 2, 0, 100).is_empty());
    }
}
