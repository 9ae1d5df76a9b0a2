//! jvmalloc: jemalloc as an `LD_PRELOAD` replacement for glibc's malloc, for JVM services.
//!
//! How the modules fit:
//! - [`exports`] is the C allocation API (`malloc`, `free`, ... and glibc's `__libc_*`
//!   names) that replaces glibc's; every entry point calls [`init::ensure`] and forwards to
//!   jemalloc, keeping glibc's contracts (errno, overflow, alignment, `realloc(p, 0)`).
//! - [`mgmt`] answers glibc's management calls (`malloc_trim`, `mallinfo2`, `malloc_info`,
//!   `malloc_stats`, `mallopt`) from jemalloc's figures; [`introspect`] exports jemalloc's
//!   `mallctl` family unprefixed.
//! - [`init`] runs once, at the first allocation or at load, whichever comes first: it reads
//!   [`config`] (the `JVMALLOC_*` variables, through [`env`]) and hands jemalloc its options
//!   through [`jemalloc`], which also wraps `mallctl` for the rest of the crate. At load it
//!   starts [`threads`] and [`reporter`] and registers the fork handler that resets both in
//!   a child (after jemalloc's own, which must re-create its locks first).
//! - Statistics: [`threads`] interposes `pthread_create` so every thread registers its
//!   jemalloc byte counters once, at start (nothing is added to the allocation path);
//!   [`stats`] takes a snapshot (process memory, threads, size classes, arenas),
//!   [`report`] renders it as text or JSON, and [`reporter`] owns the signal handler and the
//!   `jvmalloc` thread that writes dumps.
//! - Giving memory back: [`purge`] lets arenas decay every purge interval and purges them
//!   when the process goes idle; [`guard`] purges and reports when RSS nears the memory
//!   limit. Both run on the `jvmalloc` thread.
//! - [`cgroup`] finds the CPUs and memory the process may use; [`sysfile`] and [`diag`] read
//!   files and write stderr lines with stack buffers only.
//!
//! Rules for everything reachable from an exported allocation function: no allocation
//! through ourselves, no lock, no panic, no stdio, no `std::env`, no Rust thread-locals.
//! The crate's own Rust allocations go straight to jemalloc (`#[global_allocator]`).
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

mod cgroup;
mod config;
mod diag;
mod env;
mod exports;
mod guard;
mod init;
mod introspect;
mod jemalloc;
mod mgmt;
mod names;
mod purge;
mod report;
mod reporter;
mod stats;
mod sysfile;
mod threads;

#[global_allocator]
static RUST_HEAP: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;
