//! Build steps of the library: jemalloc's system calls that can fail inside `free` are
//! routed (`--wrap`) to errno-keeping wrappers, compiled from `src/keep_errno.c` with
//! hidden visibility so that the library exports none of them (the file says why).

const WRAPPED: [&str; 5] = ["madvise", "mmap", "munmap", "mprotect", "sbrk"];

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=src/keep_errno.c");
    cc::Build::new()
        .file("src/keep_errno.c")
        .flag("-fvisibility=hidden")
        .compile("jvmalloc_keep_errno");
    for f in WRAPPED {
        println!("cargo:rustc-cdylib-link-arg=-Wl,--wrap={f}");
    }
}
