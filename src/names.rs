//! Signal names, dump file names and thread pool names, shared by the library and the
//! `jvmalloc` command (which includes this file), so that both read
//! `JVMALLOC_STATS_SIGNAL` and `JVMALLOC_STATS_FILE`, and pool threads, the same way.
//! Signal parsing does not allocate.

/// What a `JVMALLOC_STATS_SIGNAL` value means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    Off,
    /// A usable signal: USR1, USR2 or a real-time one.
    Number(i32),
    /// Not a value jvmalloc accepts.
    Invalid,
}

/// Parses `USR1`, `SIGUSR1`, `USR2`, `RTMIN`, `RTMIN+N`, a number naming one of those, or
/// `off` (any case, blanks ignored).
pub fn parse_signal(raw: &[u8]) -> Signal {
    let mut t = raw.trim_ascii();
    if t.len() >= 3 && t[..3].eq_ignore_ascii_case(b"sig") {
        t = &t[3..];
    }
    let (rtmin, rtmax) = (libc::SIGRTMIN(), libc::SIGRTMAX());
    let number = |s: &[u8]| -> Option<i64> {
        if s.is_empty() || s.len() > 6 || !s.iter().all(u8::is_ascii_digit) {
            return None;
        }
        Some(s.iter().fold(0i64, |v, &d| v * 10 + i64::from(d - b'0')))
    };
    let n = if t.eq_ignore_ascii_case(b"off") {
        return Signal::Off;
    } else if t.eq_ignore_ascii_case(b"usr1") {
        Some(i64::from(libc::SIGUSR1))
    } else if t.eq_ignore_ascii_case(b"usr2") {
        Some(i64::from(libc::SIGUSR2))
    } else if t.len() >= 5 && t[..5].eq_ignore_ascii_case(b"rtmin") {
        match &t[5..] {
            [] => Some(i64::from(rtmin)),
            [b'+', n @ ..] => number(n).map(|n| i64::from(rtmin) + n),
            _ => None,
        }
    } else {
        number(t)
    };
    match n {
        Some(s)
            if s == i64::from(libc::SIGUSR1)
                || s == i64::from(libc::SIGUSR2)
                || (i64::from(rtmin)..=i64::from(rtmax)).contains(&s) =>
        {
            Signal::Number(s as i32)
        }
        _ => Signal::Invalid,
    }
}

/// Whether a file template's `%` escapes are all `%p`, `%n`, `%t` or `%%`.
pub fn template_ok(template: &[u8]) -> bool {
    let mut i = 0;
    while i < template.len() {
        if template[i] == b'%' {
            if !matches!(template.get(i + 1), Some(b'p' | b'n' | b't' | b'%')) {
                return false;
            }
            i += 1;
        }
        i += 1;
    }
    true
}

/// Expands `%p` (pid), `%n` (dump sequence number), `%t` (unix time) and `%%` in a
/// `JVMALLOC_STATS_FILE` template, byte for byte (paths need not be UTF-8). `None` for
/// `seq` or `unix` leaves the escape in place; a lone `%` at the end is dropped.
pub fn expand(template: &[u8], pid: u32, seq: Option<u64>, unix: Option<u64>) -> Vec<u8> {
    let mut out = Vec::with_capacity(template.len() + 16);
    let mut bytes = template.iter();
    while let Some(&c) = bytes.next() {
        if c != b'%' {
            out.push(c);
            continue;
        }
        match bytes.next() {
            Some(b'p') => out.extend_from_slice(pid.to_string().as_bytes()),
            Some(b'n') => match seq {
                Some(v) => out.extend_from_slice(v.to_string().as_bytes()),
                None => out.extend_from_slice(b"%n"),
            },
            Some(b't') => match unix {
                Some(v) => out.extend_from_slice(v.to_string().as_bytes()),
                None => out.extend_from_slice(b"%t"),
            },
            Some(&other) => out.push(other),
            None => {}
        }
    }
    out
}

/// A thread's pool: its name with each run of digits that does not follow a letter
/// replaced by `N`, so all `Kafka Fetcher N` or `pool-N-thread-N` threads form one pool
/// while `C2 CompilerThre` and `G1 Refine#N` keep the names of what they are.
pub fn pool_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut prev: Option<char> = None;
    let mut pooling = false;
    for c in name.chars() {
        if c.is_ascii_digit() {
            let starts_run = !prev.is_some_and(|p| p.is_ascii_digit());
            if starts_run {
                pooling = !prev.is_some_and(|p| p.is_alphabetic());
                if pooling {
                    out.push('N');
                }
            }
            if !pooling {
                out.push(c);
            }
        } else {
            out.push(c);
        }
        prev = Some(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals() {
        assert_eq!(parse_signal(b"USR1"), Signal::Number(libc::SIGUSR1));
        assert_eq!(parse_signal(b" sigusr2 "), Signal::Number(libc::SIGUSR2));
        assert_eq!(parse_signal(b"off"), Signal::Off);
        assert_eq!(parse_signal(b"RTMIN"), Signal::Number(libc::SIGRTMIN()));
        assert_eq!(
            parse_signal(b"rtmin+3"),
            Signal::Number(libc::SIGRTMIN() + 3)
        );
        assert_eq!(parse_signal(b"10"), Signal::Number(10));
        assert_eq!(parse_signal(b"9"), Signal::Invalid); // KILL
        assert_eq!(parse_signal(b"QUIT"), Signal::Invalid);
        assert_eq!(parse_signal(b"RTMIN+99"), Signal::Invalid);
        assert_eq!(parse_signal(b""), Signal::Invalid);
        assert_eq!(parse_signal(b"99999999999999999999"), Signal::Invalid);
    }

    #[test]
    fn templates() {
        assert!(template_ok(b"/tmp/x-%p-%n-%t-%%.json"));
        assert!(!template_ok(b"/tmp/x-%q"));
        assert!(!template_ok(b"/tmp/x-%"));
        assert_eq!(expand(b"a-%p-%n-%t-%%", 7, Some(3), Some(9)), b"a-7-3-9-%");
        assert_eq!(expand(b"a-%p-%n", 7, None, None), b"a-7-%n");
        assert_eq!(expand(b"\xff/%p", 1, None, None), b"\xff/1");
    }

    #[test]
    fn pools() {
        assert_eq!(pool_name("pool-12-thread-3"), "pool-N-thread-N");
        assert_eq!(pool_name("Kafka Fetcher 7"), "Kafka Fetcher N");
        assert_eq!(pool_name("C2 CompilerThre"), "C2 CompilerThre");
        assert_eq!(pool_name("G1 Conc#0"), "G1 Conc#N");
    }

    use proptest::prelude::*;

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(raw in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = parse_signal(&raw);
            let _ = template_ok(&raw);
            let _ = expand(&raw, 1, Some(2), Some(3));
            let _ = expand(&raw, 1, None, None);
        }

        #[test]
        fn templates_without_escapes_are_kept_byte_for_byte(
            raw in proptest::collection::vec(any::<u8>().prop_filter("no %", |b| *b != b'%'), 0..64)
        ) {
            prop_assert!(template_ok(&raw));
            prop_assert_eq!(expand(&raw, 7, Some(1), Some(2)), raw);
        }

        #[test]
        fn escapes_expand_and_unknown_ones_are_refused(pid: u32, seq: u64, unix: u64, c: u8) {
            let t = [b'x', b'%', c];
            let ok = matches!(c, b'p' | b'n' | b't' | b'%');
            prop_assert_eq!(template_ok(&t), ok);
            let want = match c {
                b'p' => format!("x{pid}").into_bytes(),
                b'n' => format!("x{seq}").into_bytes(),
                b't' => format!("x{unix}").into_bytes(),
                _ => vec![b'x', c],
            };
            prop_assert_eq!(expand(&t, pid, Some(seq), Some(unix)), want);
        }
    }
}
