//! `jvmalloc dump <pid>`: asks a running process for a statistics dump and prints it.
//!
//! Reads the target's `JVMALLOC_STATS_*` settings from `/proc/<pid>/environ`, sends the
//! configured signal, and waits for the new dump where the target writes it: a new file
//! matching `JVMALLOC_STATS_FILE`, or, by default, the end of the file its stderr goes to
//! (Flink's `taskmanager.out`).

use crate::names::{self, Signal};
use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

fn environ_var(env: &[u8], name: &str) -> Option<String> {
    env.split(|&b| b == 0).find_map(|e| {
        let rest = e.strip_prefix(name.as_bytes())?.strip_prefix(b"=")?;
        Some(String::from_utf8_lossy(rest).into_owned())
    })
}

fn io_err(pid: u32, what: &str, e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => format!("no process {pid}"),
        std::io::ErrorKind::PermissionDenied => {
            format!("no permission to read {what} of process {pid}: run as its user or as root")
        }
        _ => format!("cannot read {what} of process {pid}: {e}"),
    }
}

/// Files in `dir` whose names match `pattern` (a file name where `%n`/`%t` stand for
/// digits), with their modification times.
fn matching(dir: &Path, pattern: &str) -> Vec<(PathBuf, SystemTime)> {
    let Ok(rd) = fs::read_dir(dir) else {
        return Vec::new();
    };
    rd.filter_map(|e| e.ok())
        .filter(|e| name_matches(&e.file_name().to_string_lossy(), pattern))
        .filter_map(|e| Some((e.path(), e.metadata().ok()?.modified().ok()?)))
        .collect()
}

fn name_matches(name: &str, pattern: &str) -> bool {
    let (n, p) = (name.as_bytes(), pattern.as_bytes());
    fn go(n: &[u8], p: &[u8]) -> bool {
        match p {
            [] => n.is_empty(),
            [b'%', b'n' | b't', rest @ ..] => {
                let digits = n.iter().take_while(|b| b.is_ascii_digit()).count();
                (1..=digits).any(|k| go(&n[k..], rest))
            }
            [c, rest @ ..] => n.first() == Some(c) && go(&n[1..], rest),
        }
    }
    go(n, p)
}

pub fn run(pid: u32, timeout: Duration) -> Result<String, String> {
    let proc_dir = PathBuf::from(format!("/proc/{pid}"));
    if !proc_dir.exists() {
        return Err(format!("no process {pid}"));
    }
    let maps =
        fs::read_to_string(proc_dir.join("maps")).map_err(|e| io_err(pid, "the memory map", &e))?;
    if !maps.contains("libjvmalloc") {
        return Err(format!(
            "process {pid} does not have jvmalloc loaded (was it started with LD_PRELOAD=.../libjvmalloc.so?)"
        ));
    }
    let env = fs::read(proc_dir.join("environ")).map_err(|e| io_err(pid, "the environment", &e))?;
    let sig = match environ_var(&env, "JVMALLOC_STATS_SIGNAL") {
        None => libc::SIGUSR1,
        Some(v) => match names::parse_signal(v.as_bytes()) {
            Signal::Number(s) => s,
            Signal::Off => {
                return Err(format!(
                    "process {pid} has dumps on signal turned off (JVMALLOC_STATS_SIGNAL=off)"
                ))
            }
            Signal::Invalid => libc::SIGUSR1,
        },
    };
    let file = environ_var(&env, "JVMALLOC_STATS_FILE")
        .filter(|f| !f.is_empty() && names::template_ok(f.as_bytes()));
    let json = environ_var(&env, "JVMALLOC_STATS_FORMAT")
        .is_some_and(|f| f.trim().eq_ignore_ascii_case("json"));
    let deadline = Instant::now() + timeout;
    match file {
        Some(template) => {
            let cwd = fs::read_link(proc_dir.join("cwd")).unwrap_or_else(|_| PathBuf::from("/"));
            let full =
                String::from_utf8_lossy(&names::expand(template.as_bytes(), pid, None, None))
                    .into_owned();
            let full = cwd.join(full);
            let dir = full.parent().unwrap_or(Path::new("/")).to_path_buf();
            let pattern = full
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default();
            let before = matching(&dir, &pattern);
            send(pid, sig)?;
            loop {
                let fresh = matching(&dir, &pattern)
                    .into_iter()
                    .filter(|(p, t)| !before.iter().any(|(bp, bt)| bp == p && bt == t))
                    .max_by_key(|(_, t)| *t);
                if let Some((path, _)) = fresh {
                    return fs::read_to_string(&path)
                        .map_err(|e| format!("cannot read {}: {e}", path.display()));
                }
                if Instant::now() > deadline {
                    return Err(format!(
                        "no new dump matching {} within {timeout:?}",
                        full.display()
                    ));
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        None => {
            let target =
                fs::read_link(proc_dir.join("fd/2")).map_err(|e| io_err(pid, "stderr", &e))?;
            let meta = fs::metadata(&target)
                .ok()
                .filter(|m| m.is_file())
                .ok_or_else(|| {
                    format!(
                    "process {pid} writes dumps to its stderr, which is {} and not a file; set \
                     JVMALLOC_STATS_FILE for it (or read its stderr)",
                    target.display()
                )
                })?;
            let start = meta.len();
            send(pid, sig)?;
            loop {
                let mut f = fs::File::open(&target)
                    .map_err(|e| format!("cannot read {}: {e}", target.display()))?;
                f.seek(SeekFrom::Start(start)).map_err(|e| e.to_string())?;
                let mut s = String::new();
                let _ = f.read_to_string(&mut s);
                if let Some(d) = find_dump(&s, json) {
                    return Ok(d);
                }
                if Instant::now() > deadline {
                    return Err(format!(
                        "no dump appeared in {} within {timeout:?}",
                        target.display()
                    ));
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

/// The first whole dump in text written after the signal.
fn find_dump(s: &str, json: bool) -> Option<String> {
    if json {
        return s
            .lines()
            .find(|l| l.starts_with("{\"jvmalloc_stats\""))
            .filter(|l| s.contains(&format!("{l}\n")))
            .map(|l| format!("{l}\n"));
    }
    let begin = s.find("=== jvmalloc statistics #")?;
    let end_marker = "=== end of jvmalloc statistics #";
    let end = begin + s[begin..].find(end_marker)?;
    let line_end = end + s[end..].find('\n')? + 1;
    Some(s[begin..line_end].to_string())
}

fn send(pid: u32, sig: i32) -> Result<(), String> {
    // SAFETY: kill has no memory-safety preconditions.
    if unsafe { libc::kill(pid as i32, sig) } != 0 {
        let e = std::io::Error::last_os_error();
        return Err(match e.raw_os_error() {
            Some(libc::EPERM) => {
                format!("no permission to signal process {pid}: run as its user or as root")
            }
            Some(libc::ESRCH) => format!("no process {pid}"),
            _ => format!("cannot signal process {pid}: {e}"),
        });
    }
    Ok(())
}
