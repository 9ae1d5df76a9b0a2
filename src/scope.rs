//! Which processes get jvmalloc's active parts (the `jvmalloc` thread, the signal handler,
//! dumps): `JVMALLOC_PROCESSES`, matched against the name of the running executable.
//!
//! `LD_PRELOAD` reaches every process a TaskManager starts (launch scripts, `sh`, Python
//! workers, tools a job runs). Those get the allocator alone: a thread, a handler or a file
//! would change what they observe. The executable's name is the last component of
//! `/proc/self/exe` (the file the kernel ran, after symbolic links: `java` for every JDK's
//! launcher), read with one raw `readlink` system call, without allocating.

/// The default list: the JVM launcher.
pub const DEFAULT: &[u8] = b"java";

/// The name of the running executable (last component of `/proc/self/exe`), in `buf`.
pub fn executable_name(buf: &mut [u8; 4096]) -> &[u8] {
    // SAFETY: the kernel writes at most `buf.len()` bytes into `buf`; the path is
    // NUL-terminated.
    let n = unsafe {
        libc::syscall(
            libc::SYS_readlinkat,
            libc::AT_FDCWD,
            c"/proc/self/exe".as_ptr(),
            buf.as_mut_ptr(),
            buf.len(),
        )
    };
    // Nothing, or a path as long as the buffer (cut): unknown.
    if n <= 0 || n as usize >= buf.len() {
        return &[];
    }
    let path = &buf[..n as usize];
    // A deleted executable reads as "/path/name (deleted)".
    let path = path.strip_suffix(b" (deleted)").unwrap_or(path);
    match path.iter().rposition(|&b| b == b'/') {
        Some(i) => &path[i + 1..],
        None => path,
    }
}

/// Whether `name` matches one of the comma-separated patterns of `list` (`*` any run of
/// bytes, `?` one byte; blanks around a pattern are ignored).
pub fn matches(list: &[u8], name: &[u8]) -> bool {
    list.split(|&b| b == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|p| !p.is_empty())
        .any(|p| glob(p, name))
}

/// Shell-style matching of `*` and `?`, iterative (no recursion, no allocation).
fn glob(pat: &[u8], name: &[u8]) -> bool {
    let (mut p, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match pat.get(p) {
            Some(b'*') => {
                star = Some((p, n));
                p += 1;
            }
            Some(&c) if c == b'?' || c == name[n] => {
                p += 1;
                n += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    p = sp + 1;
                    n = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    pat[p..].iter().all(|&c| c == b'*')
}

/// Whether a pattern list is usable: printable ASCII other than `/`, not only commas.
pub fn list_ok(list: &[u8]) -> bool {
    list.iter().all(|&b| (0x20..0x7f).contains(&b) && b != b'/')
        && list
            .split(|&b| b == b',')
            .any(|p| !p.trim_ascii().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        assert!(matches(b"java", b"java"));
        assert!(!matches(b"java", b"javac"));
        assert!(matches(b"*", b"anything"));
        assert!(matches(b"sh, java", b"java"));
        assert!(matches(b"python3*", b"python3.11"));
        assert!(matches(b"?ava", b"java"));
        assert!(matches(b"*a*a", b"java"));
        assert!(!matches(b"*b*", b"java"));
        assert!(!matches(b"", b"java"));
        assert!(!matches(b",,", b"java"));
        assert!(matches(b"j*", b"j"));
    }

    #[test]
    fn lists() {
        assert!(list_ok(b"java,python3*"));
        assert!(!list_ok(b"/usr/bin/java"));
        assert!(!list_ok(b" , "));
        assert!(!list_ok(b"ja\x01va"));
    }

    use proptest::prelude::*;

    proptest! {
        #[test]
        fn arbitrary_lists_never_panic(
            list in proptest::collection::vec(any::<u8>(), 0..32),
            name in proptest::collection::vec(any::<u8>(), 0..32),
        ) {
            let _ = list_ok(&list);
            let _ = matches(&list, &name);
        }

        #[test]
        fn a_literal_matches_only_itself(a in "[a-z0-9._-]{1,12}", b in "[a-z0-9._-]{1,12}") {
            prop_assert_eq!(matches(a.as_bytes(), b.as_bytes()), a == b);
            prop_assert!(matches(b"*", b.as_bytes()));
            let prefix = format!("{}*", &a[..1]);
            prop_assert_eq!(matches(prefix.as_bytes(), b.as_bytes()), a.as_bytes()[0] == b.as_bytes()[0]);
        }
    }

    #[test]
    fn this_executable_has_a_name() {
        let mut buf = [0u8; 4096];
        assert!(!executable_name(&mut buf).is_empty());
    }
}
