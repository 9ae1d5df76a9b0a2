//! Waiting without descriptors: an event counter and a lock, both on Linux futexes.
//!
//! The signal handler posts an [`Event`] (an atomic increment and one `futex` wake, both
//! async-signal-safe) and the `jvmalloc` thread waits on it with a timeout. Nothing is
//! opened, so a program that closes or reuses descriptors cannot touch what jvmalloc uses.
//! [`Lock`] serialises dumps: a thread that finds it taken sleeps in the kernel instead of
//! spinning. Both are plain memory, so a child of `fork` gets a copy that [`Lock::reset`]
//! (in the child handler) makes usable again.

use core::sync::atomic::{AtomicU32, Ordering::*};

fn futex(word: &AtomicU32, op: i32, val: u32, timeout: *const libc::timespec) -> i64 {
    // SAFETY: `word` is a live, aligned u32 for the call; `timeout` is null or points to a
    // timespec on the caller's stack. FUTEX_*_PRIVATE only touch this process's memory.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            op | libc::FUTEX_PRIVATE_FLAG,
            val,
            timeout,
        )
    }
}

/// A counter of posts that one thread waits on.
pub struct Event(AtomicU32);

impl Event {
    pub const fn new() -> Event {
        Event(AtomicU32::new(0))
    }

    /// Counts one post and wakes the waiter. Async-signal-safe; keeps `errno`.
    pub fn post(&self) {
        self.0.fetch_add(1, Release);
        // SAFETY: this thread's errno slot, saved and restored around the system call.
        let errno = unsafe { libc::__errno_location() };
        // SAFETY: as above.
        let saved = unsafe { *errno };
        futex(&self.0, libc::FUTEX_WAKE, 1, core::ptr::null());
        // SAFETY: as above.
        unsafe { *errno = saved };
    }

    /// Takes every post made so far without waiting; returns how many there were.
    pub fn take(&self) -> u32 {
        self.0.swap(0, Acquire)
    }

    /// Waits until a post arrives or `timeout_ns` has passed (`None`: no limit); returns
    /// the posts taken (0 on timeout).
    pub fn wait(&self, timeout_ns: Option<u64>) -> u32 {
        let deadline = timeout_ns.map(|t| crate::clock::monotonic_ns().saturating_add(t));
        loop {
            let n = self.take();
            if n > 0 {
                return n;
            }
            let ts = match deadline {
                None => None,
                Some(d) => {
                    let left = d.saturating_sub(crate::clock::monotonic_ns());
                    if left == 0 {
                        return 0;
                    }
                    Some(libc::timespec {
                        tv_sec: (left / 1_000_000_000) as libc::time_t,
                        tv_nsec: (left % 1_000_000_000) as libc::c_long,
                    })
                }
            };
            let tp = ts.as_ref().map_or(core::ptr::null(), |t| t as *const _);
            // Sleeps only while the word is still 0: a post in between returns at once.
            futex(&self.0, libc::FUTEX_WAIT, 0, tp);
        }
    }
}

/// A mutual-exclusion lock that sleeps in the kernel when contended (0 free, 1 held,
/// 2 held with waiters). Not for the allocation path.
pub struct Lock(AtomicU32);

impl Lock {
    pub const fn new() -> Lock {
        Lock(AtomicU32::new(0))
    }

    pub fn lock(&self) -> Guard<'_> {
        if self.0.compare_exchange(0, 1, Acquire, Relaxed).is_err() {
            while self.0.swap(2, Acquire) != 0 {
                futex(&self.0, libc::FUTEX_WAIT, 2, core::ptr::null());
            }
        }
        Guard(self)
    }

    /// In a child of `fork`: the thread that held the lock does not exist there.
    pub fn reset(&self) {
        self.0.store(0, Relaxed);
    }
}

/// Holds a [`Lock`] until dropped.
pub struct Guard<'a>(&'a Lock);

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        if self.0 .0.swap(0, Release) == 2 {
            futex(&self.0 .0, libc::FUTEX_WAKE, 1, core::ptr::null());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn event_counts_posts_and_times_out() {
        let e = Event::new();
        assert_eq!(e.wait(Some(1_000_000)), 0);
        e.post();
        e.post();
        assert_eq!(e.wait(Some(1_000_000)), 2);
        assert_eq!(e.take(), 0);
    }

    #[test]
    fn event_wakes_a_waiter() {
        let e = Arc::new(Event::new());
        let e2 = e.clone();
        let t = std::thread::spawn(move || e2.wait(None));
        std::thread::sleep(std::time::Duration::from_millis(20));
        e.post();
        assert_eq!(t.join().unwrap(), 1);
    }

    #[test]
    fn lock_excludes() {
        static L: Lock = Lock::new();
        static N: AtomicU32 = AtomicU32::new(0);
        let ts: Vec<_> = (0..4)
            .map(|_| {
                std::thread::spawn(|| {
                    for _ in 0..10_000 {
                        let _g = L.lock();
                        let v = N.load(Relaxed);
                        N.store(v + 1, Relaxed);
                    }
                })
            })
            .collect();
        ts.into_iter().for_each(|t| t.join().unwrap());
        assert_eq!(N.load(Relaxed), 40_000);
    }
}
