//! `jvmalloc`: the companion command of libjvmalloc.so.
//!
//! - `jvmalloc dump <pid>`: asks a running process that has the library loaded for a
//!   statistics dump over the request channel ([`channel`]) and prints it, after checking
//!   that the signal cannot harm it ([`target`]).
//! - `jvmalloc metrics <pid>`: the same for its Prometheus metrics.
//! - `jvmalloc profile <pid>`: which code holds the live native memory (sampled
//!   allocation sites, symbolised here by [`symbolize`]), as text, JSON, collapsed stacks
//!   or a flame graph; `--start`/`--stop` turn sampling on and off ([`profile`]).
//! - `jvmalloc watch <pid>`: one line per interval, like `top` for native memory.
//! - `jvmalloc diff <old.json> <new.json> [--top N]`: what grew between two JSON dumps of a
//!   process, by thread pool and by size class, biggest growth first; or between two
//!   JSON profiles, by library, entry point, thread and stack.
//!
//! Exit codes: 0 done, 1 failure (one `jvmalloc: ...` line on stderr), 2 usage error.
#![deny(clippy::undocumented_unsafe_blocks)]

mod channel;
/// The library's side of the request channel, for its protocol and socket names (its
/// server side is unused here).
#[path = "../../src/deadline.rs"]
#[allow(dead_code)] // Used by request.rs, on the library's side of the channel.
mod deadline;
mod diff;
mod dump;
mod dumpfile;
#[path = "../../src/names.rs"]
#[allow(dead_code)] // The library's file-name templates are not needed here.
mod names;
mod profile;
#[cfg(test)]
mod proptests;
#[path = "../../src/request.rs"]
#[allow(dead_code)]
mod request;
#[path = "../../src/scope.rs"]
#[allow(dead_code)] // The library's reading of its own executable is not needed here.
mod scope;
/// Which library and entry point a stack is attributed to, as the library decides it.
#[path = "../../src/sites.rs"]
mod sites;
mod symbolize;
mod target;
#[path = "../../src/timefmt.rs"]
mod timefmt;
mod watch;

/// What [`request`] needs of the library's `diag` module: one line on stderr.
mod diag {
    macro_rules! say {
        ($($arg:tt)*) => {
            eprintln!("jvmalloc: {}", format_args!($($arg)*))
        };
    }
    #[allow(unused_imports)]
    pub(crate) use say;
}

use clap::{CommandFactory, Parser, Subcommand, ValueEnum};
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
    about = "Companion command of libjvmalloc.so: statistics dumps, metrics and a live view of a running process, and what grew between two dumps",
    after_help = EXIT_CODES,
    subcommand_required = true,
    arg_required_else_help = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// A process id (1 to 2^31 - 1).
fn pid_arg() -> clap::builder::RangedI64ValueParser<u32> {
    clap::value_parser!(u32).range(1..=i64::from(i32::MAX))
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Text,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
enum ProfileFormat {
    /// Rankings and top stacks, for people
    Text,
    /// Everything, for tools and `jvmalloc diff` (schema in docs/profiling.md)
    Json,
    /// Collapsed stacks (`outer;...;inner bytes`) for flame-graph tools
    Collapsed,
    /// A flame graph of live bytes
    Svg,
}

#[derive(Subcommand)]
enum Command {
    /// Ask a process running with libjvmalloc.so for a statistics dump and print it
    ///
    /// The dump comes back over a private channel (an abstract Unix socket with a random
    /// name, opened for this request), whatever the process's JVMALLOC_STATS_* settings
    /// say: nothing is written to its stderr or its statistics files. Before sending the
    /// signal, it checks that the process has the library loaded, catches the signal, has
    /// the jvmalloc thread to answer and some thread that can take the signal; otherwise
    /// it refuses and leaves the process untouched.
    #[command(after_help = EXIT_CODES)]
    Dump {
        /// Process id of the target
        #[arg(value_parser = pid_arg())]
        pid: u32,
        /// Format of the dump
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
        /// Write the dump to FILE (created or emptied; a symbolic link is refused) instead
        /// of stdout
        #[arg(short = 'o', long = "output", value_name = "FILE")]
        output: Option<PathBuf>,
        /// Seconds to wait for the answer
        #[arg(long, value_name = "SECONDS", default_value_t = 10)]
        timeout: u64,
    },
    /// Ask a process running with libjvmalloc.so for its Prometheus metrics and print them
    ///
    /// The same channel and checks as `dump`; the answer is the text format that
    /// JVMALLOC_METRICS_ADDR serves.
    #[command(after_help = EXIT_CODES)]
    Metrics {
        /// Process id of the target
        #[arg(value_parser = pid_arg())]
        pid: u32,
        /// Write the metrics to FILE (created or emptied; a symbolic link is refused)
        /// instead of stdout
        #[arg(short = 'o', long = "output", value_name = "FILE")]
        output: Option<PathBuf>,
        /// Seconds to wait for the answer
        #[arg(long, value_name = "SECONDS", default_value_t = 10)]
        timeout: u64,
    },
    /// Which code holds the live native memory: sampled allocation sites of a process
    ///
    /// While sampling is on (`--start`, or JVMALLOC_PROFILE=on from the start), the process
    /// samples one allocation per JVMALLOC_PROFILE_SAMPLE bytes on average and keeps each
    /// sample's stack and allocating thread until it is freed. This asks for them over the same channel as
    /// `dump` and names the frames here, from the ELF files and the JVM's perf map
    /// (/tmp/perf-<pid>.map: `jcmd <pid> Compiler.perfmap`). Prints live bytes, estimated
    /// with their sampling error, by library, by JNI/JVM entry point, by allocating thread,
    /// by size class, and the top stacks. --start and --stop turn sampling on and off in the
    /// running process instead.
    #[command(after_help = EXIT_CODES)]
    Profile {
        /// Process id of the target
        #[arg(value_parser = pid_arg())]
        pid: u32,
        /// Format of the profile
        #[arg(long, value_enum, default_value = "text")]
        format: ProfileFormat,
        /// Write the profile to FILE (created or emptied; a symbolic link is refused)
        /// instead of stdout
        #[arg(short = 'o', long = "output", value_name = "FILE")]
        output: Option<PathBuf>,
        /// Rows per table and stacks shown in text; at least 1
        #[arg(long, value_name = "N", default_value_t = 10)]
        top: usize,
        /// Turn sampling on in the process (it counts allocations from now on)
        #[arg(long, conflicts_with_all = ["stop", "format", "output"])]
        start: bool,
        /// Turn sampling off in the process (live samples are kept until freed)
        #[arg(long, conflicts_with_all = ["format", "output"])]
        stop: bool,
        /// The JIT's perf map to name Java frames with (default: /tmp/perf-<pid>.map as
        /// the process sees it, when present)
        #[arg(long, value_name = "FILE")]
        perf_map: Option<PathBuf>,
        /// Seconds to wait for the answer
        #[arg(long, value_name = "SECONDS", default_value_t = 30)]
        timeout: u64,
    },
    /// Like top for native memory: one line per interval
    ///
    /// Each line: the time, RSS, malloc's live bytes, the allocator's overhead and the RSS
    /// malloc does not own (MiB, with the change since the previous line), and the thread
    /// pool (by net bytes) and size class (by live bytes) that grew fastest since then.
    /// Takes a JSON dump over the same channel as `dump` each time. Ends after --count
    /// lines, on Ctrl-C, or when the process exits (a last line says so; exit code 0).
    #[command(after_help = EXIT_CODES)]
    Watch {
        /// Process id of the target
        #[arg(value_parser = pid_arg())]
        pid: u32,
        /// Seconds between lines
        #[arg(long, value_name = "SECONDS", default_value_t = 5,
              value_parser = clap::value_parser!(u64).range(1..))]
        interval: u64,
        /// Lines to print (default: until interrupted or the process exits)
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
        count: Option<u64>,
        /// Seconds to wait for each answer
        #[arg(long, value_name = "SECONDS", default_value_t = 10)]
        timeout: u64,
    },
    /// What grew between two JSON dumps (by thread name and size class) or two profiles
    ///
    /// Each file is a JSON dump (`jvmalloc dump --format json`, JVMALLOC_STATS_FORMAT=json),
    /// or a log holding several, one per line: the last is read, or the one --pick names.
    /// Two JSON profiles (`jvmalloc profile --format json`) are compared by library, JNI/JVM
    /// entry point, allocating thread and stack, ranked by growth of live bytes: the leak
    /// view.
    /// The dumps must be of the same process (same pid and start time) unless
    /// --allow-different, OLD must not have been taken after NEW, and both must be of
    /// schema version 1.
    #[command(after_help = EXIT_CODES)]
    Diff {
        /// The earlier dump
        old: PathBuf,
        /// The later dump
        new: PathBuf,
        /// Rows per table (thread pools, size classes); at least 1
        #[arg(long, value_name = "N", default_value_t = 15)]
        top: usize,
        /// Which dump of a file holding several (1 = the first; default: the last). Given
        /// once, for both files; given twice, the first for OLD and the second for NEW
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
        pick: Vec<u64>,
        /// Compare dumps of different processes
        #[arg(long)]
        allow_different: bool,
    },
}

/// Writes to stdout. A reader that stopped early (`| head`) is not a failure of ours: the
/// command ends there, with exit code 0.
pub fn write_stdout(bytes: &[u8]) -> Result<(), String> {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        Err(e) => Err(format!("cannot write the output: {e}")),
        Ok(()) => Ok(()),
    }
}

fn run(command: Command) -> Result<(), String> {
    let secs = Duration::from_secs;
    match command {
        Command::Dump {
            pid,
            format,
            output,
            timeout,
        } => {
            let what = match format {
                Format::Text => "dump text",
                Format::Json => "dump json",
            };
            // Dumps name threads: readable by their owner only, as the library's files.
            dump::run(pid, what, output.as_deref(), 0o600, secs(timeout))
        }
        Command::Metrics {
            pid,
            output,
            timeout,
        } => dump::run(pid, "metrics", output.as_deref(), 0o644, secs(timeout)),
        Command::Profile {
            pid,
            format,
            output,
            top,
            start,
            stop,
            perf_map,
            timeout,
        } => {
            if start || stop {
                let what = if start {
                    "profile start"
                } else {
                    "profile stop"
                };
                return dump::run(pid, what, None, 0o600, secs(timeout));
            }
            let file = output
                .as_deref()
                .map(|p| dump::open_output(p, 0o600))
                .transpose()?;
            let target = target::Target::open(pid)?;
            let answer = channel::ask(&target, "profile", secs(timeout), &|| target.exited())
                .map_err(|e| {
                    if e.contains("unknown request") {
                        format!(
                            "process {pid} has a libjvmalloc.so older than this command: it takes no profiles"
                        )
                    } else {
                        e
                    }
                })?;
            let p = profile::build(&answer, pid, perf_map)?;
            for w in &p.warnings {
                eprintln!("jvmalloc: warning: {w}");
            }
            let bytes = match format {
                ProfileFormat::Text => profile::text(&p, top.max(1)).into_bytes(),
                ProfileFormat::Json => {
                    let mut v = serde_json::to_vec(&p).map_err(|e| e.to_string())?;
                    v.push(b'\n');
                    v
                }
                ProfileFormat::Collapsed => profile::collapsed(&p).into_bytes(),
                ProfileFormat::Svg => profile::svg(&p)?,
            };
            match (file, output) {
                (Some(mut f), Some(path)) => f
                    .set_len(0)
                    .and_then(|()| f.write_all(&bytes))
                    .map_err(|e| format!("cannot write {}: {e}", path.display())),
                _ => write_stdout(&bytes),
            }
        }
        Command::Watch {
            pid,
            interval,
            count,
            timeout,
        } => watch::run(pid, secs(interval), count, secs(timeout)),
        Command::Diff {
            old,
            new,
            top,
            pick,
            allow_different,
        } => {
            let (pick_old, pick_new) = match pick[..] {
                [] => (None, None),
                [p] => (Some(p), Some(p)),
                [a, b] => (Some(a), Some(b)),
                _ => Cli::command()
                    .error(
                        clap::error::ErrorKind::TooManyValues,
                        "--pick is given at most twice (once for OLD, once for NEW)",
                    )
                    .exit(),
            };
            if profile::is_profile(&old) || profile::is_profile(&new) {
                let (old, new) = (profile::read(&old)?, profile::read(&new)?);
                profile::check(&old, &new, allow_different)?;
                return write_stdout(profile::diff(&old, &new, top.max(1)).as_bytes());
            }
            let index = |p: Option<u64>| p.map(|p| usize::try_from(p).unwrap_or(usize::MAX));
            let old = dumpfile::read(&old, index(pick_old))?;
            let new = dumpfile::read(&new, index(pick_new))?;
            diff::check(&old, &new, allow_different)?;
            write_stdout(diff::run(&old, &new, top.max(1)).as_bytes())
        }
    }
}

fn main() -> ExitCode {
    // Usage errors exit with 2, --help and --version with 0 (clap's codes).
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
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
