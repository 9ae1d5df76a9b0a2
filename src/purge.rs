//! Giving freed memory back to the kernel, on the `jvmalloc` thread.
//!
//! jemalloc returns dirty pages only when it runs its decay, which it does on allocation
//! activity: an arena whose threads go quiet after a burst keeps its dirty pages for good.
//! Every `JVMALLOC_PURGE_INTERVAL_MS`, [`Purger::tick`] lets every arena decay (pages older
//! than the decay time go back), and once no arena has handed out memory for
//! `JVMALLOC_PURGE_IDLE_MS`, it purges everything at once. With
//! `JVMALLOC_BACKGROUND_THREAD=1`, jemalloc's own background threads do the decay instead
//! and the tick only does the idle purge.

use crate::config::Config;
use crate::jemalloc;

/// State kept between ticks.
pub struct Purger {
    /// Arena-level allocations seen at the last tick.
    last_nmalloc: u64,
    /// Milliseconds without arena-level allocations.
    idle_ms: u64,
    /// Whether the idle purge already ran for the current idle period.
    purged_idle: bool,
}

/// Arena-level allocation count (thread-cache fills and large allocations): it moves
/// whenever the process allocates more than its thread caches hold.
fn arena_mallocs() -> u64 {
    jemalloc::refresh_stats();
    let small = jemalloc::read::<u64>(c"stats.arenas.4096.small.nmalloc").unwrap_or(0);
    let large = jemalloc::read::<u64>(c"stats.arenas.4096.large.nmalloc").unwrap_or(0);
    small + large
}

impl Purger {
    pub fn new(cfg: &Config) -> Purger {
        if cfg.purge.background_thread && !jemalloc::write(c"background_thread", true) {
            crate::diag::say!(
                "JVMALLOC_BACKGROUND_THREAD=1 but jemalloc could not start its background threads; \
                 using the purge thread"
            );
        }
        Purger {
            last_nmalloc: arena_mallocs(),
            idle_ms: 0,
            purged_idle: false,
        }
    }

    /// One purge interval has passed.
    pub fn tick(&mut self, cfg: &Config) {
        let background = jemalloc::read::<bool>(c"background_thread").unwrap_or(false);
        if !background {
            jemalloc::run(c"arena.4096.decay");
        }
        let n = arena_mallocs();
        if n != self.last_nmalloc {
            self.last_nmalloc = n;
            self.idle_ms = 0;
            self.purged_idle = false;
            return;
        }
        self.idle_ms += cfg.purge.interval_ms;
        if !self.purged_idle && self.idle_ms >= cfg.purge.idle_ms {
            jemalloc::purge_all();
            self.purged_idle = true;
        }
    }
}
