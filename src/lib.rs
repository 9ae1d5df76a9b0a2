//! jvmalloc: jemalloc as an `LD_PRELOAD` replacement for glibc's malloc, for JVM services.
//!
//! How the modules fit:
//! - [`exports`] is the C allocation API (`malloc`, `free`, ... and glibc's `__libc_*`
//!   names) that replaces glibc's, keeping glibc's contracts (errno, overflow, alignment,
//!   `realloc(p, 0)`). `malloc`, `calloc` and `free` are jemalloc's own functions, bound
//!   at link time (`build.rs`); `src/imports.c` wraps the C library functions jemalloc
//!   calls where they must not reach an interposer or change `errno`.
//! - [`mgmt`] answers glibc's management calls (`malloc_trim`, `mallinfo2`, `malloc_info`,
//!   `malloc_stats`, `mallopt`) from jemalloc's figures; [`introspect`] exports jemalloc's
//!   `mallctl` family unprefixed.
//! - [`init`] runs inside jemalloc's own initialisation, at the first allocation or at
//!   load, whichever comes first: it reads [`config`] (the `JVMALLOC_*` variables, through
//!   [`env`], which reads nothing in secure-execution mode) with raw system calls only, and
//!   answers jemalloc's read of its options with jvmalloc's; [`jemalloc`] wraps `mallctl`
//!   for the rest of the crate.
//! - [`scope`] decides which processes get the active parts (`JVMALLOC_PROCESSES`, by
//!   default `java`); every other process that inherits `LD_PRELOAD` gets the allocator
//!   alone. In a process in scope, [`init`] sets up [`threads`] and [`reporter`] at load
//!   and registers the fork handler that resets both in a child.
//! - Statistics: [`threads`] interposes `pthread_create` so every thread registers its
//!   jemalloc byte counters once, at start (nothing is added to the allocation path), and
//!   counts the program's threads so the process ends when the last one does; [`stats`]
//!   takes a snapshot (process memory, threads, size classes, arenas), [`report`] renders
//!   it as text or JSON, [`dumpfile`] writes it to a file safely, and [`reporter`] owns the
//!   signal handler and the `jvmalloc` thread (started with the program's first thread)
//!   that writes dumps. They wait on [`futex`] words, never on descriptors. [`jvm`] adds,
//!   in a JVM, the split of the rest of RSS (Java heap, metaspace, stacks, code) from
//!   HotSpot's counters and `smaps`.
//! - Allocation sites: [`profile`] reads jemalloc's sampled heap profile (stacks of
//!   addresses, live bytes by allocating thread) and the mappings with build-ids; the
//!   command symbolises them. [`sites`] says which library and JNI entry point a stack is
//!   attributed to, for the library and the command alike.
//! - Asking a running process: [`request`] answers the `jvmalloc` command over a Unix
//!   socket the command names in a `sigqueue` value; [`exporter`] serves [`metrics`] (the
//!   Prometheus text) over HTTP and to a file. Their writes keep to [`deadline`]s.
//! - Giving memory back: [`purge`] lets arenas decay every purge interval and purges them
//!   when the process goes idle; [`guard`] purges and reports when RSS nears the memory
//!   limit. Both run on the `jvmalloc` thread.
//! - [`cgroup`] finds the CPUs and memory the process may use; [`sysfile`] and [`diag`] read
//!   files and write stderr lines with stack buffers and raw system calls only; [`clock`]
//!   reads the monotonic clock.
//!
//! Rules for everything reachable from an exported allocation function: no allocation
//! through ourselves, no lock, no panic, no stdio, no `std::env`, no Rust thread-locals.
//! The crate's own Rust allocations go straight to jemalloc (`#[global_allocator]`).
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

mod cgroup;
mod clock;
mod config;
mod deadline;
mod diag;
mod dumpfile;
mod env;
mod exporter;
mod exports;
mod futex;
mod guard;
mod init;
mod introspect;
mod jemalloc;
mod jvm;
mod metrics;
mod mgmt;
mod names;
mod profile;
mod purge;
mod report;
mod reporter;
mod request;
mod scope;
mod sites;
mod stats;
mod sysfile;
mod threads;
mod timefmt;

#[global_allocator]
static RUST_HEAP: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;
