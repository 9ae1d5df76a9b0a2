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

/// Where the process's cgroup membership and mounts are read from: `/proc/self/…` in the
/// library, fixture files in the unit tests.
struct Proc<'a> {
    cgroup: &'a [u8],
    mountinfo: &'a [u8],
}

const PROC_SELF: Proc = Proc {
    cgroup: b"/proc/self/cgroup",
    mountinfo: b"/proc/self/mountinfo",
};

/// Which hierarchy a lookup is for.
#[derive(Clone, Copy)]
enum Hierarchy<'a> {
    V2,
    V1(&'a [u8]),
}

/// Finds the process's path in the hierarchy, from `/proc/self/cgroup`.
fn own_path(src: &Proc, h: Hierarchy, out: &mut Path) -> bool {
    let mut found = false;
    sysfile::for_each_line(&mut Path::new(src.cgroup), |line| {
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
fn mount(src: &Proc, h: Hierarchy, root: &mut Path, point: &mut Path) -> bool {
    let mut found = false;
    sysfile::for_each_line(&mut Path::new(src.mountinfo), |line| {
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
fn for_each_level(src: &Proc, h: Hierarchy, mut f: impl FnMut(&Path)) {
    let mut own = Path::new(b"");
    let mut root = Path::new(b"");
    let mut point = Path::new(b"");
    if !own_path(src, h, &mut own) || !mount(src, h, &mut root, &mut point) {
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
    memory_limit_in(&PROC_SELF)
}

fn memory_limit_in(src: &Proc) -> Option<u64> {
    let mut best = None;
    for_each_level(src, Hierarchy::V2, |dir| {
        let mut buf = [0u8; 64];
        best = min_opt(
            best,
            read_in(dir, b"memory.max", &mut buf).and_then(parse_u64),
        );
    });
    if best.is_none() {
        for_each_level(src, Hierarchy::V1(b"memory"), |dir| {
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
    cpu_quota_in(&PROC_SELF)
}

fn cpu_quota_in(src: &Proc) -> Option<u64> {
    fn cpus(quota: Option<u64>, period: Option<u64>) -> Option<u64> {
        let (q, p) = (quota?, period?);
        (q > 0 && p > 0).then(|| q.div_ceil(p))
    }
    let mut best = None;
    for_each_level(src, Hierarchy::V2, |dir| {
        let mut buf = [0u8; 64];
        if let Some(s) = read_in(dir, b"cpu.max", &mut buf) {
            let mut it = s.split(|&b| b == b' ');
            let q = it.next().and_then(parse_u64); // "max" parses as None
            best = min_opt(best, cpus(q, it.next().and_then(parse_u64)));
        }
    });
    if best.is_none() {
        for_each_level(src, Hierarchy::V1(b"cpu"), |dir| {
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

#[cfg(test)]
mod tests {
    //! The hierarchies as Linux lays them out, built as files in a temporary directory:
    //! this machine has cgroup v1 only, so v2 (Kubernetes' default) is checked here, and
    //! v1 on real cgroups by the integration tests.
    use super::*;
    use std::path::PathBuf;

    struct Fixture {
        dir: PathBuf,
        cgroup: Vec<u8>,
        mountinfo: Vec<u8>,
    }

    impl Fixture {
        /// `cgroup`: the lines of `/proc/self/cgroup`; `mounts`: (root, mount point below
        /// the fixture, fstype, superopts) for each cgroup mount.
        fn new(name: &str, cgroup: &str, mounts: &[(&str, &str, &str, &str)]) -> Fixture {
            let dir =
                std::env::temp_dir().join(format!("jvmalloc-cg-{}-{name}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            let mut info = String::from("22 1 0:21 / /proc rw,nosuid - proc proc rw\n");
            for (i, (root, point, fstype, opts)) in mounts.iter().enumerate() {
                let point = dir.join(point);
                std::fs::create_dir_all(&point).unwrap();
                info += &format!(
                    "{} 25 0:{} {root} {} rw,nosuid,nodev - {fstype} {fstype} {opts}\n",
                    30 + i,
                    26 + i,
                    point.display()
                );
            }
            std::fs::write(dir.join("cgroup"), cgroup).unwrap();
            std::fs::write(dir.join("mountinfo"), info).unwrap();
            let cgroup = dir.join("cgroup").into_os_string().into_encoded_bytes();
            let mountinfo = dir.join("mountinfo").into_os_string().into_encoded_bytes();
            Fixture {
                dir,
                cgroup,
                mountinfo,
            }
        }

        fn file(&self, path: &str, contents: &str) -> &Self {
            let p = self.dir.join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, contents).unwrap();
            self
        }

        fn proc(&self) -> Proc<'_> {
            Proc {
                cgroup: &self.cgroup,
                mountinfo: &self.mountinfo,
            }
        }
    }

    impl Drop for Fixture {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    const GIB: u64 = 1 << 30;

    /// systemd/Kubernetes without a cgroup namespace: the full path, the smallest limit on
    /// the way up wins, "max" means none.
    #[test]
    fn v2_limits_on_the_path_up() {
        let f = Fixture::new(
            "v2",
            "0::/kubepods.slice/pod1/ctr\n",
            &[("/", "fs/cgroup", "cgroup2", "rw,nsdelegate")],
        );
        f.file("fs/cgroup/kubepods.slice/memory.max", "4294967296\n")
            .file("fs/cgroup/kubepods.slice/pod1/memory.max", "max\n")
            .file(
                "fs/cgroup/kubepods.slice/pod1/ctr/memory.max",
                "1073741824\n",
            )
            .file("fs/cgroup/kubepods.slice/cpu.max", "max 100000\n")
            .file("fs/cgroup/kubepods.slice/pod1/cpu.max", "150000 100000\n")
            .file("fs/cgroup/kubepods.slice/pod1/ctr/cpu.max", "max 100000\n");
        assert_eq!(memory_limit_in(&f.proc()), Some(GIB));
        assert_eq!(cpu_quota_in(&f.proc()), Some(2));
        // The limit on an ancestor binds too.
        f.file("fs/cgroup/kubepods.slice/memory.max", "536870912\n");
        assert_eq!(memory_limit_in(&f.proc()), Some(GIB / 2));
    }

    /// A container with its own cgroup namespace sees "0::/" and its cgroup at the mount
    /// point itself.
    #[test]
    fn v2_in_a_cgroup_namespace() {
        let f = Fixture::new("v2ns", "0::/\n", &[("/", "fs/cgroup", "cgroup2", "rw")]);
        f.file("fs/cgroup/memory.max", "3221225472\n")
            .file("fs/cgroup/cpu.max", "400000 100000\n");
        assert_eq!(memory_limit_in(&f.proc()), Some(3 * GIB));
        assert_eq!(cpu_quota_in(&f.proc()), Some(4));
    }

    /// A container without a cgroup namespace: its cgroup is the root of the mount.
    #[test]
    fn v2_mount_rooted_at_the_container() {
        let f = Fixture::new(
            "v2root",
            "0::/docker/abc\n",
            &[("/docker/abc", "fs/cgroup", "cgroup2", "rw")],
        );
        f.file("fs/cgroup/memory.max", "2147483648\n")
            .file("fs/cgroup/cpu.max", "50000 100000\n");
        assert_eq!(memory_limit_in(&f.proc()), Some(2 * GIB));
        assert_eq!(cpu_quota_in(&f.proc()), Some(1));
    }

    #[test]
    fn v2_without_limits() {
        let f = Fixture::new("v2none", "0::/a\n", &[("/", "fs/cgroup", "cgroup2", "rw")]);
        f.file("fs/cgroup/a/memory.max", "max\n")
            .file("fs/cgroup/a/cpu.max", "max 100000\n");
        assert_eq!(memory_limit_in(&f.proc()), None);
        assert_eq!(cpu_quota_in(&f.proc()), None);
    }

    /// v1 (YARN's NodeManagers, older Docker), with cpu and cpuacct co-mounted, in
    /// systemd's hybrid layout: a cgroup2 mount without the memory and cpu controllers.
    #[test]
    fn v1_and_hybrid() {
        let f = Fixture::new(
            "v1",
            "4:memory:/yarn/container_1\n2:cpu,cpuacct:/yarn/container_1\n0::/\n",
            &[
                ("/", "fs/cgroup/memory", "cgroup", "rw,memory"),
                ("/", "fs/cgroup/cpu,cpuacct", "cgroup", "rw,cpu,cpuacct"),
                ("/", "fs/cgroup/unified", "cgroup2", "rw,nsdelegate"),
            ],
        );
        f.file(
            "fs/cgroup/memory/yarn/memory.limit_in_bytes",
            "6442450944\n",
        )
        .file(
            "fs/cgroup/memory/yarn/container_1/memory.limit_in_bytes",
            "9223372036854771712\n",
        )
        .file(
            "fs/cgroup/cpu,cpuacct/yarn/container_1/cpu.cfs_quota_us",
            "250000\n",
        )
        .file(
            "fs/cgroup/cpu,cpuacct/yarn/container_1/cpu.cfs_period_us",
            "100000\n",
        )
        .file("fs/cgroup/cpu,cpuacct/yarn/cpu.cfs_quota_us", "-1\n")
        .file("fs/cgroup/cpu,cpuacct/yarn/cpu.cfs_period_us", "100000\n");
        assert_eq!(memory_limit_in(&f.proc()), Some(6 * GIB));
        assert_eq!(cpu_quota_in(&f.proc()), Some(3));
    }

    /// This machine's own layout: "0::/" listed, no cgroup2 mounted.
    #[test]
    fn v1_with_no_cgroup2_mount() {
        let f = Fixture::new(
            "v1only",
            "4:memory:/job\n0::/\n",
            &[("/", "fs/cgroup/memory", "cgroup", "rw,memory")],
        );
        f.file("fs/cgroup/memory/job/memory.limit_in_bytes", "268435456\n");
        assert_eq!(memory_limit_in(&f.proc()), Some(GIB / 4));
        assert_eq!(cpu_quota_in(&f.proc()), None);
    }

    #[test]
    fn nothing_mounted() {
        let f = Fixture::new("none", "0::/\n", &[]);
        assert_eq!(memory_limit_in(&f.proc()), None);
        assert_eq!(cpu_quota_in(&f.proc()), None);
    }
}
