//! `jvmalloc watch <pid>`: like `top` for native memory. Every interval it asks the target
//! for a JSON dump over the request channel and prints one line: RSS, malloc's live bytes,
//! the allocator's overhead and the RSS that malloc does not own (MiB, each with its change
//! since the previous line), and the thread pool and the size class that grew fastest
//! since then (pools and classes as `jvmalloc diff` ranks them), and, with allocation-site
//! sampling, the library whose live sampled bytes grew most.
//!
//! It ends after `--count` lines, when the target exits (a last line says so; exit code
//! 0), or on Ctrl-C (SIGINT) or SIGTERM (exit code 0, no half line).

use crate::diff::{class_growth, mib, pool_growth};
use crate::dumpfile::{self, Dump};
use crate::{channel, target::Target};
use core::ffi::c_int;
use core::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::{Duration, Instant};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_interrupt(_: c_int) {
    INTERRUPTED.store(true, Relaxed);
}

fn interrupted() -> bool {
    INTERRUPTED.load(Relaxed)
}

/// SIGINT and SIGTERM set [`INTERRUPTED`]; the loops below look at it at least every
/// 100 ms.
fn catch_interrupts() {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: a zeroed sigaction is valid; the handler only stores to an atomic
        // (async-signal-safe).
        unsafe {
            let mut act: libc::sigaction = core::mem::zeroed();
            act.sa_sigaction = on_interrupt as *const () as usize;
            libc::sigemptyset(&mut act.sa_mask);
            libc::sigaction(sig, &act, core::ptr::null_mut());
        }
    }
}

/// A change in MiB with one decimal: `+1.5`, `-0.2`, and `0.0` for what rounds to it
/// (never `-0.0`).
fn signed_mib(v: i128) -> String {
    let m = mib(v);
    if m.abs() < 0.05 {
        "0.0".into()
    } else {
        format!("{m:+.1}")
    }
}

/// A signed byte count for people: `+1.5 MiB`, `-12.0 KiB`, `+7 B`.
fn human(v: i128) -> String {
    let a = v.unsigned_abs();
    if a >= 1 << 20 {
        format!("{:+.1} MiB", mib(v))
    } else if a >= 1 << 10 {
        format!("{:+.1} KiB", v as f64 / 1024.0)
    } else {
        format!("{v:+} B")
    }
}

fn header() -> String {
    format!(
        "{:<8}  {:>9} {:>7}  {:>10} {:>7}  {:>12} {:>7}  {:>8} {:>7}  {:>14} {:>7}  {:<28}  {:<28}  {}\n",
        "time UTC",
        "RSS MiB",
        "change",
        "malloc MiB",
        "change",
        "overhead MiB",
        "change",
        "heap MiB",
        "change",
        "not malloc MiB",
        "change",
        "fastest pool (net)",
        "fastest size class (live)",
        "fastest library (sampled)"
    )
}

/// One line for `new`, with changes since `old` (none for the first line).
fn line(old: Option<&Dump>, new: &Dump) -> String {
    // The Java heap's resident bytes, in a JVM (from the dump's RSS split).
    let heap = |d: &Dump| d.rss_split.get("java_heap").copied();
    let of = |d: &Dump| {
        let m = &d.memory;
        [
            m.rss,
            m.allocated,
            m.overhead,
            heap(d).unwrap_or(0),
            m.rss_not_malloc,
        ]
    };
    let figures = of(new);
    let change = |i: usize| -> String {
        if i == 3 && heap(new).is_none() {
            return "-".into();
        }
        old.map_or("-".into(), |o| signed_mib(figures[i] - of(o)[i]))
    };
    let heap_mib = heap(new).map_or("-".to_string(), |h| format!("{:.1}", mib(h)));
    let (pool, class) = match old {
        None => ("-".to_string(), "-".to_string()),
        Some(o) => (
            pool_growth(o, new)
                .first()
                .filter(|(_, a, b)| b.net > a.net)
                .map_or("-".into(), |(name, a, b)| {
                    format!("{name} {}", human(b.net - a.net))
                }),
            class_growth(o, new)
                .first()
                .filter(|c| c.growth() > 0)
                .map_or("-".into(), |c| {
                    format!("{} {} {}", c.size, c.kind, human(c.growth()))
                }),
        ),
    };
    let library = match (old.and_then(|o| o.profile.as_ref()), &new.profile) {
        (Some(o), Some(n)) => {
            let before = |name: &str| {
                o.by_library
                    .iter()
                    .find(|e| e.name == name)
                    .map_or(0.0, |e| e.bytes)
            };
            n.by_library
                .iter()
                .map(|e| (e.name.as_str(), e.bytes - before(&e.name)))
                .max_by(|a, b| a.1.total_cmp(&b.1))
                .filter(|(_, g)| *g >= 1.0)
                .map_or("-".into(), |(name, g)| {
                    format!("{name} {}", human(g as i128))
                })
        }
        _ => "-".to_string(),
    };
    // `YYYY-MM-DDTHH:MM:SSZ` -> `HH:MM:SS`.
    let time = new.time.get(11..19).unwrap_or(&new.time);
    format!(
        "{time:<8}  {:>9.1} {:>7}  {:>10.1} {:>7}  {:>12.1} {:>7}  {heap_mib:>8} {:>7}  {:>14.1} {:>7}  {pool:<28}  {class:<28}  {library}\n",
        mib(figures[0]),
        change(0),
        mib(figures[1]),
        change(1),
        mib(figures[2]),
        change(2),
        change(3),
        mib(figures[4]),
        change(4),
    )
}

pub fn run(
    pid: u32,
    interval: Duration,
    count: Option<u64>,
    timeout: Duration,
) -> Result<(), String> {
    let target = Target::open(pid)?;
    catch_interrupts();
    let gone = || interrupted() || target.exited();
    let exited = || crate::write_stdout(format!("process {pid} exited\n").as_bytes());
    let mut prev: Option<Dump> = None;
    let mut lines = 0u64;
    loop {
        let started = Instant::now();
        let answer = match channel::ask(&target, "dump json", timeout, &gone) {
            Ok(a) => a,
            Err(_) if interrupted() => return Ok(()),
            Err(_) if target.exited() => return exited(),
            Err(e) => return Err(e),
        };
        let dump = dumpfile::parse(String::from_utf8_lossy(&answer).trim_end())
            .map_err(|e| format!("process {pid} answered with {e}"))?;
        let mut out = String::new();
        if prev.is_none() {
            out += &header();
        }
        out += &line(prev.as_ref(), &dump);
        crate::write_stdout(out.as_bytes())?;
        lines += 1;
        if count.is_some_and(|c| lines >= c) {
            return Ok(());
        }
        prev = Some(dump);
        // The next line is due one interval after this one was asked for.
        let next = started.checked_add(interval);
        loop {
            if interrupted() {
                return Ok(());
            }
            if target.exited() {
                return exited();
            }
            let left = next.map_or(Duration::from_millis(100), |n| {
                n.saturating_duration_since(Instant::now())
            });
            if left.is_zero() {
                break;
            }
            std::thread::sleep(left.min(Duration::from_millis(100)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dump(rss: i128, pool_net: i128, live: i128) -> Dump {
        dumpfile::parse(&format!(
            r#"{{"jvmalloc_stats":1,"time":"2026-01-02T03:04:05Z","memory":{{"rss":{rss},"allocated":1048576,"overhead":0,"rss_not_malloc":0}},
               "threads":[{{"name":"pool-3-thread-7","net":{pool_net}}},{{"name":"main","net":5}}],
               "size_classes":[{{"kind":"small","size":48,"live_bytes":{live},"live_regions":1}}],
               "profile":{{"active":true,"by_library":[{{"name":"libz.so.1","bytes":{live}.0}}]}}}}"#
        ))
        .unwrap()
    }

    #[test]
    fn lines_show_changes_and_what_grew_fastest() {
        let a = dump(100 << 20, 1000, 4800);
        let first = line(None, &a);
        let words = |l: &str| l.split_whitespace().map(String::from).collect::<Vec<_>>();
        assert_eq!(words(&first)[..3], ["03:04:05", "100.0", "-"], "{first}");
        let b = dump(103 << 20, 3 << 20, 4800 + 2048);
        let second = line(Some(&a), &b);
        assert_eq!(words(&second)[1..3], ["103.0", "+3.0"], "{second}");
        assert!(second.contains("pool-N-thread-N +3.0 MiB"), "{second}");
        assert!(second.contains("48 small +2.0 KiB"), "{second}");
        assert!(
            second.trim_end().ends_with("libz.so.1 +2.0 KiB"),
            "{second}"
        );
        // Nothing grew: no pool, no class, no library.
        let same = line(Some(&b), &b);
        assert_eq!(words(&same)[11..], ["-", "-", "-"], "{same}");
        // Not a JVM: no heap column figures.
        assert_eq!(words(&same)[7..9], ["-", "-"], "{same}");
        // The header's columns line up with the lines'.
        assert_eq!(
            header().find("change").unwrap() + 5,
            first.find('-').unwrap()
        );
    }

    #[test]
    fn human_byte_counts() {
        assert_eq!(human(7), "+7 B");
        assert_eq!(human(-2048), "-2.0 KiB");
        assert_eq!(human(3 << 20), "+3.0 MiB");
        assert_eq!(signed_mib(-1000), "0.0");
        assert_eq!(signed_mib(-(1 << 19)), "-0.5");
    }
}
