//! Container limits from cgroup v2 or v1, read without allocating.
//!
//! The process's cgroup comes from `/proc/self/cgroup`, the mount point of its hierarchy from
//! `/proc/self/mountinfo` (so that both host-style mounts and containers with a cgroup
//! namespace work). A limit set on any ancestor also binds the process, so every level from
//! the process's own cgroup up to the mount root is read and the smallest limit wins.
//! cgroup v2 is tried first, v1 second.

use crate::sysfile::{self, parse_u64, Path};

/// Values at or above this are v1's way of saying "no limit" (it prints 2^63 rounded down
/// to a page).
const V1_UNLIMITED: u64 = 1 << 60;

/// Which hierarchy a lookup is for.
#[derive(Clone, Copy)]
enum Hierarchy<'a> {
    V2,
    V1(&'a [u8]),
}

/// Finds the process's path in the hierarchy, from `/proc/self/cgroup`.
fn own_path(h: Hierarchy, out: &mut Path) -> bool {
    let mut found = false;
    sysfile::for_each_line(&mut Path::new(b"/proc/self/cgroup"), |line| {
        let mut parts = line.splitn(3, |&b| b == b':');
        let (_, Some(ctrls), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
            return true;
        };
        let hit = match h {
            Hierarchy::V2 => line.starts_with(b"0::"),
            Hierarchy::V1(c) => ctrls.split(|&b| b == b',').any(|x| x == c),
        };
        if hit {
            *out = Path::new(path);
            found = true;
        }
        !hit
    });
    found
}

/// Finds the mount of the hierarchy: `(root inside the hierarchy, mount point)`.
fn mount(h: Hierarchy, root: &mut Path, point: &mut Path) -> bool {
    let mut found = false;
    sysfile::for_each_line(&mut Path::new(b"/proc/self/mountinfo"), |line| {
        // id parent maj:min root mountpoint opts [optional...] - fstype source superopts
        let Some(sep) = line.windows(3).position(|w| w == b" - ") else {
            return true;
        };
        let mut head = line[..sep].split(|&b| b == b' ');
        let mut tail = line[sep + 3..].split(|&b| b == b' ');
        let (Some(r), Some(m)) = (head.nth(3), head.next()) else {
            return true;
        };
        let fstype = tail.next().unwrap_or(b"");
        let superopts = tail.nth(1).unwrap_or(b"");
        let hit = match h {
            Hierarchy::V2 => fstype == b"cgroup2",
            Hierarchy::V1(c) => {
                fstype == b"cgroup" && superopts.split(|&b| b == b',').any(|x| x == c)
            }
        };
        if hit {
            *root = Path::new(r);
            *point = Path::new(m);
            found = true;
        }
        !hit
    });
    found
}

/// Calls `f` with the directory of the process's cgroup in hierarchy `h` and then with each
/// ancestor's directory up to the mount point.
fn for_each_level(h: Hierarchy, mut f: impl FnMut(&Path)) {
    let mut own = Path::new(b"");
    let mut root = Path::new(b"");
    let mut point = Path::new(b"");
    if !own_path(h, &mut own) || !mount(h, &mut root, &mut point) {
        return;
    }
    let own = own.as_bytes();
    let root = root.as_bytes();
    // Path of our cgroup below the mount point.
    let mut rel: &[u8] = if root == b"/" {
        own
    } else if let Some(rest) = own.strip_prefix(root) {
        rest
    } else {
        b""
    };
    loop {
        let rel_trim = match rel {
            [rest @ .., b'/'] => rest,
            r => r,
        };
        let mut dir = Path::new(point.as_bytes());
        dir.push(rel_trim);
        f(&dir);
        match rel_trim.iter().rposition(|&b| b == b'/') {
            Some(i) => rel = &rel_trim[..i],
            None => break,
        }
        if rel.is_empty() {
            let dir = Path::new(point.as_bytes());
            f(&dir);
            break;
        }
    }
}

/// Reads `dir/name` into `buf`; returns the trimmed contents.
fn read_in<'b>(dir: &Path, name: &[u8], buf: &'b mut [u8]) -> Option<&'b [u8]> {
    let mut p = Path::new(dir.as_bytes());
    p.push(b"/").push(name);
    let n = sysfile::read(&mut p, buf)?;
    Some(buf[..n].trim_ascii())
}

fn min_opt(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

/// The memory limit in bytes (`memory.max` or `memory.limit_in_bytes`), if any.
pub fn memory_limit() -> Option<u64> {
    let mut best = None;
    for_each_level(Hierarchy::V2, |dir| {
        let mut buf = [0u8; 64];
        best = min_opt(
            best,
            read_in(dir, b"memory.max", &mut buf).and_then(parse_u64),
        );
    });
    if best.is_none() {
        for_each_level(Hierarchy::V1(b"memory"), |dir| {
            let mut buf = [0u8; 64];
            let v = read_in(dir, b"memory.limit_in_bytes", &mut buf).and_then(parse_u64);
            best = min_opt(best, v.filter(|&v| v < V1_UNLIMITED));
        });
    }
    best
}

/// The CPU quota as a number of CPUs, rounded up (`cpu.max` or `cpu.cfs_quota_us` /
/// `cpu.cfs_period_us`), if any.
pub fn cpu_quota() -> Option<u64> {
    fn cpus(quota: Option<u64>, period: Option<u64>) -> Option<u64> {
        let (q, p) = (quota?, period?);
        (q > 0 && p > 0).then(|| q.div_ceil(p))
    }
    let mut best = None;
    for_each_level(Hierarchy::V2, |dir| {
        let mut buf = [0u8; 64];
        if let Some(s) = read_in(dir, b"cpu.max", &mut buf) {
            let mut it = s.split(|&b| b == b' ');
            let q = it.next().and_then(parse_u64); // "max" parses as None
            best = min_opt(best, cpus(q, it.next().and_then(parse_u64)));
        }
    });
    if best.is_none() {
        for_each_level(Hierarchy::V1(b"cpu"), |dir| {
            let (mut b1, mut b2) = ([0u8; 32], [0u8; 32]);
            // -1 (no quota) does not parse as unsigned.
            let q = read_in(dir, b"cpu.cfs_quota_us", &mut b1).and_then(parse_u64);
            let p = read_in(dir, b"cpu.cfs_period_us", &mut b2).and_then(parse_u64);
            best = min_opt(best, cpus(q, p));
        });
    }
    best
}

/// CPUs in the process's affinity mask (`sched_getaffinity`), at least 1.
pub fn affinity_cpus() -> u64 {
    // 1024 CPUs' worth of mask on the stack.
    let mut mask = [0u64; 16];
    // SAFETY: the kernel writes at most `size_of_val(&mask)` bytes into `mask`.
    let r = unsafe {
        libc::syscall(
            libc::SYS_sched_getaffinity,
            0,
            core::mem::size_of_val(&mask),
            mask.as_mut_ptr(),
        )
    };
    if r <= 0 {
        return 1;
    }
    let words = (r as usize / 8).min(mask.len());
    mask[..words]
        .iter()
        .map(|w| w.count_ones() as u64)
        .sum::<u64>()
        .max(1)
}
