//! Reading JSON dumps (`JVMALLOC_STATS_FORMAT=json`, or `jvmalloc dump --format json`) for
//! `jvmalloc diff` and `jvmalloc watch`.
//!
//! A file is parsed as a `serde_json::Value` first: that keeps integers as integers (u64 or
//! i64, exact above 2^53) and turns nesting deeper than serde_json's recursion limit (128)
//! into an error instead of a stack overflow. The fields `diff` uses are then read into
//! [`Dump`]; byte figures are i128, so every u64 and i64 fits and growth cannot overflow.
//! Missing fields read as zero or empty, fields of the wrong type are an error.

use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

/// Longest line looked at: a dump of a million threads is about 100 MiB.
const MAX_LINE: u64 = 256 << 20;

#[derive(Deserialize, Default, Debug)]
#[serde(default)]
pub struct Dump {
    pub pid: i128,
    pub process: String,
    pub seq: i128,
    pub time_unix: i128,
    pub time: String,
    pub uptime_s: f64,
    pub memory: Memory,
    pub threads: Vec<Thread>,
    pub exited: Group,
    pub unregistered: Group,
    pub size_classes: Vec<SizeClass>,
    /// The parts of RSS by key (`rss_split`), empty in dumps of older libraries.
    pub rss_split: BTreeMap<String, i128>,
    /// Live sampled bytes by thread and library, with allocation-site sampling.
    pub profile: Option<DumpProfile>,
}

/// The `profile` member of a dump (estimates, so floating point).
#[derive(Deserialize, Default, Debug)]
#[serde(default)]
pub struct DumpProfile {
    pub by_library: Vec<Estimate>,
    pub by_thread: Vec<Estimate>,
}

#[derive(Deserialize, Default, Debug)]
#[serde(default)]
pub struct Estimate {
    pub name: String,
    pub bytes: f64,
}

/// The parts of `rss_split` in the order the library lists them, with their labels.
pub const SPLIT_PARTS: [(&str, &str); 9] = [
    ("malloc_live", "native malloc"),
    ("allocator_overhead", "allocator overhead"),
    ("java_heap", "Java heap"),
    ("metaspace", "metaspace"),
    ("thread_stacks", "thread stacks"),
    ("code_cache", "code cache"),
    ("mapped_files", "mapped files"),
    ("other", "other"),
    ("not_malloc", "RSS not owned by malloc"),
];

/// `(label, old bytes, new bytes)` of every part of RSS either dump has, in order.
pub fn split_rows(old: &Dump, new: &Dump) -> Vec<(&'static str, i128, i128)> {
    SPLIT_PARTS
        .iter()
        .filter(|(k, _)| old.rss_split.contains_key(*k) || new.rss_split.contains_key(*k))
        .map(|(k, label)| {
            let get = |d: &Dump| d.rss_split.get(*k).copied().unwrap_or(0);
            (*label, get(old), get(new))
        })
        .collect()
}

#[derive(Deserialize, Default, Debug)]
#[serde(default)]
pub struct Memory {
    pub rss: i128,
    pub allocated: i128,
    pub resident: i128,
    pub overhead: i128,
    pub rss_not_malloc: i128,
    pub dirty: i128,
    pub retained: i128,
}

impl Memory {
    /// The figures `diff` compares, by JSON name, in the order it prints them.
    pub fn rows(&self) -> [(&'static str, i128); 7] {
        [
            ("rss", self.rss),
            ("allocated", self.allocated),
            ("resident", self.resident),
            ("overhead", self.overhead),
            ("rss_not_malloc", self.rss_not_malloc),
            ("dirty", self.dirty),
            ("retained", self.retained),
        ]
    }
}

#[derive(Deserialize, Default, Debug)]
#[serde(default)]
pub struct Thread {
    pub name: String,
    pub net: i128,
}

/// The `exited` and `unregistered` rows.
#[derive(Deserialize, Default, Debug)]
#[serde(default)]
pub struct Group {
    pub threads: i128,
    pub net: i128,
}

#[derive(Deserialize, Default, Debug)]
#[serde(default)]
pub struct SizeClass {
    pub kind: String,
    pub size: i128,
    pub live_bytes: i128,
    pub live_regions: i128,
}

/// The schema version this command reads (`"jvmalloc_stats": 1`).
pub const SCHEMA: u64 = 1;

/// Parses one dump (one line of JSON).
pub fn parse(text: &str) -> Result<Dump, String> {
    let v: Value = serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"))?;
    match v.get("jvmalloc_stats") {
        None | Some(Value::Null) => {
            return Err("not a jvmalloc statistics dump (no jvmalloc_stats field)".into())
        }
        Some(version) if version.as_u64() != Some(SCHEMA) => {
            return Err(format!(
                "a dump of schema version {version}, which this command does not know (it \
                 reads version {SCHEMA})"
            ))
        }
        Some(_) => {}
    }
    Dump::deserialize(&v).map_err(|e| format!("not a jvmalloc statistics dump: {e}"))
}

/// The lines of `r` that start with `{` (after blanks), each a dump: a file may be a log
/// holding other lines and several dumps. Returns the `pick`th (1-based; the last when
/// None) and how many there are. Bytes that are not UTF-8 are replaced, not refused.
pub fn pick_json_line(
    mut r: impl BufRead,
    pick: Option<usize>,
) -> Result<(Option<String>, usize), String> {
    let mut chosen = None;
    let mut count = 0;
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = (&mut r)
            .take(MAX_LINE + 1)
            .read_until(b'\n', &mut line)
            .map_err(|e| e.to_string())?;
        if n == 0 {
            let chosen = chosen.map(|l: Vec<u8>| String::from_utf8_lossy(&l).into_owned());
            return Ok((chosen, count));
        }
        if n as u64 > MAX_LINE && line.last() != Some(&b'\n') {
            return Err(format!("a line is longer than {} MiB", MAX_LINE >> 20));
        }
        if line.trim_ascii_start().starts_with(b"{") {
            count += 1;
            if pick.is_none_or(|p| p == count) {
                chosen = Some(std::mem::take(&mut line));
            }
        }
    }
}

/// Reads the dump in a file: the `pick`th (1-based) if it holds several, else the last.
pub fn read(path: &Path, pick: Option<usize>) -> Result<Dump, String> {
    let shown = path.display();
    let file = File::open(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
    let (line, count) = pick_json_line(BufReader::new(file), pick)
        .map_err(|e| format!("cannot read {shown}: {e}"))?;
    let line = match (line, pick) {
        (Some(l), _) => l,
        (None, _) if count == 0 => {
            return Err(format!(
                "{shown}: no JSON dump in it (was it written with JVMALLOC_STATS_FORMAT=json?)"
            ))
        }
        (None, p) => {
            return Err(format!(
                "{shown} holds {count} dump(s): --pick {} is out of range (1 to {count})",
                p.unwrap_or_default()
            ))
        }
    };
    parse(line.trim_end()).map_err(|e| format!("{shown}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_stay_exact_beyond_2_pow_53() {
        let d = parse(
            r#"{"jvmalloc_stats":1,"memory":{"rss":18446744073709551615,"dirty":-9223372036854775808},
                "threads":[{"name":"a","net":9007199254740993}]}"#,
        )
        .unwrap();
        assert_eq!(d.memory.rss, u64::MAX as i128);
        assert_eq!(d.memory.dirty, i64::MIN as i128);
        assert_eq!(d.threads[0].net, 9_007_199_254_740_993);
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        for open in ["[", "{\"a\":"] {
            let text = format!("{{\"jvmalloc_stats\":1,\"x\":{}", open.repeat(1_000_000));
            let e = parse(&text).unwrap_err();
            assert!(e.contains("recursion limit exceeded"), "{e}");
        }
    }

    #[test]
    fn refuses_what_is_not_a_dump() {
        assert!(parse("{}")
            .unwrap_err()
            .contains("not a jvmalloc statistics dump"));
        assert!(parse(r#"{"jvmalloc_stats":null}"#).is_err());
        assert!(parse(r#"{"jvmalloc_stats":1,"pid":"x"}"#)
            .unwrap_err()
            .contains("invalid type"));
        assert!(parse(r#"{"jvmalloc_stats":1,"memory":{"rss":1.5}}"#).is_err());
        assert!(parse(r#"{"jvmalloc_stats":1,"threads":[{"#)
            .unwrap_err()
            .contains("not valid JSON"));
        let d = parse(r#"{"jvmalloc_stats":1,"future_field":[1,{"x":null}]}"#).unwrap();
        assert!(d.threads.is_empty());
    }

    #[test]
    fn takes_the_last_or_the_picked_json_line_of_a_log() {
        let log = b"caf\xe9 started\n{\"jvmalloc_stats\":1,\"seq\":1}\n\xff\xfe\n  {\"jvmalloc_stats\":1,\"seq\":2}\nbye\n";
        let seq = |pick| {
            let (l, n) = pick_json_line(&log[..], pick).unwrap();
            assert_eq!(n, 2);
            l.map(|l| parse(l.trim_end()).unwrap().seq)
        };
        assert_eq!(seq(None), Some(2));
        assert_eq!(seq(Some(1)), Some(1));
        assert_eq!(seq(Some(2)), Some(2));
        assert_eq!(seq(Some(3)), None);
        assert_eq!(
            pick_json_line(&b"no json\n\xff"[..], None).unwrap(),
            (None, 0)
        );
    }

    #[test]
    fn only_schema_1_is_read() {
        assert!(parse(r#"{"jvmalloc_stats":1}"#).is_ok());
        for v in ["2", "0", "\"1\"", "1.0", "-1"] {
            let e = parse(&format!(r#"{{"jvmalloc_stats":{v}}}"#)).unwrap_err();
            assert!(e.contains(&format!("schema version {v},")), "{e}");
        }
    }
}
