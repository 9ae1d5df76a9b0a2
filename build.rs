//! Link options of the library: jemalloc's system calls that can fail inside `free` go
//! through errno-keeping wrappers (see `src/keep_errno.rs`).

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    for f in ["madvise", "mmap", "munmap", "mprotect", "sbrk"] {
        println!("cargo:rustc-cdylib-link-arg=-Wl,--wrap={f}");
    }
}
