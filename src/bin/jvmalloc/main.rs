//! `jvmalloc`: the companion command of libjvmalloc.so.
//!
//! - `jvmalloc dump <pid> [--timeout SECONDS]`: asks a running process that has the
//!   library loaded for a statistics dump and prints it.
//! - `jvmalloc diff <old.json> <new.json> [--top N]`: what grew between two JSON dumps, by
//!   thread name and by size class, biggest growth first.
#![deny(clippy::undocumented_unsafe_blocks)]

mod diff;
mod dump;
mod json;
#[path = "../../names.rs"]
#[allow(dead_code)]
mod names;

use std::process::ExitCode;
use std::time::Duration;

const USAGE: &str = "usage:
  jvmalloc dump <pid> [--timeout SECONDS]     ask a process running with libjvmalloc.so for a statistics dump
  jvmalloc diff <old.json> <new.json> [--top N]   what grew between two JSON dumps";

/// Reads a dump file: one JSON object (the last one if the file holds several lines).
fn read_dump(path: &str) -> Result<json::Value, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    let line = text
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .ok_or_else(|| {
            format!("{path}: no JSON dump in it (was it written with JVMALLOC_STATS_FORMAT=json?)")
        })?;
    let v = json::parse(line).map_err(|e| format!("{path}: not valid JSON: {e}"))?;
    if v.get("jvmalloc_stats") == &json::Value::Null {
        return Err(format!("{path}: not a jvmalloc statistics dump"));
    }
    Ok(v)
}

fn opt_value(args: &[String], flag: &str) -> Result<Option<u64>, String> {
    match args.iter().position(|a| a == flag) {
        None => Ok(None),
        Some(i) => args
            .get(i + 1)
            .and_then(|v| v.parse().ok())
            .map(Some)
            .ok_or_else(|| format!("{flag} needs a whole number")),
    }
}

fn main_result(args: &[String]) -> Result<String, String> {
    match args.first().map(String::as_str) {
        Some("dump") => {
            let pid: u32 = args
                .get(1)
                .and_then(|p| p.parse().ok())
                .ok_or_else(|| format!("dump needs a process id\n{USAGE}"))?;
            let timeout = opt_value(args, "--timeout")?.unwrap_or(10);
            dump::run(pid, Duration::from_secs(timeout))
        }
        Some("diff") => {
            let (Some(a), Some(b)) = (args.get(1), args.get(2)) else {
                return Err(format!("diff needs two dump files\n{USAGE}"));
            };
            let top = opt_value(args, "--top")?.unwrap_or(15) as usize;
            Ok(diff::run(&read_dump(a)?, &read_dump(b)?, top.max(1)))
        }
        Some("-h" | "--help" | "help") => Ok(format!("{USAGE}\n")),
        _ => Err(USAGE.to_string()),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match main_result(&args) {
        Ok(out) => {
            print!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("jvmalloc: {e}");
            ExitCode::from(1)
        }
    }
}
