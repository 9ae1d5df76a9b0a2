//! `jvmalloc`: the companion command of libjvmalloc.so.
//!
//! - `jvmalloc dump <pid> [--timeout SECONDS]`: asks a running process that has the
//!   library loaded for a statistics dump and prints it, after checking that the signal
//!   cannot harm it.
//! - `jvmalloc diff <old.json> <new.json> [--top N]`: what grew between two JSON dumps, by
//!   thread name and by size class, biggest growth first.
//!
//! Exit codes: 0 done, 1 failure (one `jvmalloc: ...` line on stderr), 2 usage error.
#![deny(clippy::undocumented_unsafe_blocks)]

mod diff;
mod dump;
mod dumpfile;
#[path = "../../src/names.rs"]
mod names;
#[cfg(test)]
mod proptests;

use clap::{Parser, Subcommand};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

const EXIT_CODES: &str = "\
Exit codes:
  0  done
  1  failure (one line on stderr says why; a process it refuses to signal is left untouched)
  2  usage error (unknown command or option, missing or extra argument, bad number)";

#[derive(Parser)]
#[command(
    name = "jvmalloc",
    version,
    about = "Companion command of libjvmalloc.so: statistics dumps of a running process, and what grew between two dumps",
    after_help = EXIT_CODES,
    subcommand_required = true,
    arg_required_else_help = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Ask a process running with libjvmalloc.so for a statistics dump and print it
    ///
    /// Reads the process's JVMALLOC_STATS_* settings from /proc/<pid>/environ, checks that
    /// the process catches the dump signal and that some thread can take it (otherwise it
    /// refuses: the signal could kill the process or stay pending for ever), sends the
    /// signal and prints the new dump from the process's JVMALLOC_STATS_FILE or stderr file.
    #[command(after_help = EXIT_CODES)]
    Dump {
        /// Process id of the target
        #[arg(value_parser = clap::value_parser!(u32).range(1..=i64::from(i32::MAX)))]
        pid: u32,
        /// Seconds to wait for the dump
        #[arg(long, value_name = "SECONDS", default_value_t = 10)]
        timeout: u64,
    },
    /// What grew between two JSON dumps, by thread name and by size class
    ///
    /// Each file is a JSON dump (JVMALLOC_STATS_FORMAT=json), or a log holding some: the
    /// last line that starts with `{` is read.
    #[command(after_help = EXIT_CODES)]
    Diff {
        /// The earlier dump
        old: PathBuf,
        /// The later dump
        new: PathBuf,
        /// Rows per table (thread pools, size classes); at least 1
        #[arg(long, value_name = "N", default_value_t = 15)]
        top: usize,
    },
}

fn run(command: Command) -> Result<String, String> {
    match command {
        Command::Dump { pid, timeout } => dump::run(pid, Duration::from_secs(timeout)),
        Command::Diff { old, new, top } => Ok(diff::run(
            &dumpfile::read(&old)?,
            &dumpfile::read(&new)?,
            top.max(1),
        )),
    }
}

fn main() -> ExitCode {
    // Usage errors exit with 2, --help and --version with 0 (clap's codes).
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(out) => match std::io::stdout().lock().write_all(out.as_bytes()) {
            // A reader that stopped early (`| head`) is not a failure of ours.
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                let _ = writeln!(std::io::stderr(), "jvmalloc: cannot write the output: {e}");
                ExitCode::FAILURE
            }
            _ => ExitCode::SUCCESS,
        },
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "jvmalloc: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn clap_definition_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
