//! Build steps of the library (`src/imports.c` says why each is needed):
//! - the exported `malloc`, `calloc` and `free` (and glibc's `__libc_` names of them) are
//!   bound to jemalloc's own functions with `--defsym`, so a call reaches jemalloc with no
//!   jvmalloc code in between. The Rust definitions in `src/exports.rs` make the names
//!   exported (a cdylib exports only the crate's own functions); their bodies make the same
//!   call and are what the names would be without this step.
//! - some C library functions jemalloc calls are routed (`--wrap`) to wrappers compiled
//!   from `src/imports.c` with hidden visibility, so that the library exports none of them.

const WRAPPED: [&str; 8] = [
    "madvise",
    "mmap",
    "munmap",
    "mprotect",
    "sbrk",
    "clock_gettime",
    "readlink",
    "creat",
];

const BOUND: [(&str, &str); 6] = [
    ("malloc", "_rjem_malloc"),
    ("calloc", "_rjem_calloc"),
    ("free", "_rjem_free"),
    ("__libc_malloc", "_rjem_malloc"),
    ("__libc_calloc", "_rjem_calloc"),
    ("__libc_free", "_rjem_free"),
];

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=src/imports.c");
    cc::Build::new()
        .file("src/imports.c")
        .flag("-fvisibility=hidden")
        .compile("jvmalloc_imports");
    for f in WRAPPED {
        println!("cargo:rustc-cdylib-link-arg=-Wl,--wrap={f}");
    }
    for (name, target) in BOUND {
        println!("cargo:rustc-cdylib-link-arg=-Wl,--defsym={name}={target}");
    }
}
