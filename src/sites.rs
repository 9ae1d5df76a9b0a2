//! What an allocation site is attributed to, shared by the library (dumps, metrics) and the
//! `jvmalloc` command (profiles), so that both name the same library for the same stack.
//!
//! - The **library** of a stack is the object of its first frame (innermost first) outside
//!   the runtime that merely passes the request on: the C library and dynamic loader, the
//!   C++ runtime (`operator new`), libgcc, and jvmalloc itself (the allocator).
//! - The **entry point** is the first frame whose function is a JNI or JVM entry point:
//!   `Java_*` (a Java `native` method, named after its class and method), `JVM_*`,
//!   `Unsafe_*`, `JNI_*`, `jni_*`, `jvmti_*`, `jmm_*`, `WB_*`. It names the Java code that
//!   crossed into native code.

/// A file mapping of a process (a line of `/proc/<pid>/maps`), with the GNU build-id of the
/// object it belongs to, as the process read it from memory (hex, lowercase).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    pub start: u64,
    pub end: u64,
    pub offset: u64,
    pub path: String,
    pub build_id: Option<String>,
}

/// The last path component (`/usr/lib/x86_64-linux-gnu/libz.so.1` → `libz.so.1`), without
/// the ` (deleted)` the kernel appends to a file replaced since it was mapped.
pub fn basename(path: &str) -> &str {
    let path = path.strip_suffix(" (deleted)").unwrap_or(path);
    path.rsplit('/').next().unwrap_or(path)
}

/// Whether frames in the object named `base` (a basename) only pass an allocation on:
/// the C library, the loader, the C++ runtime, libgcc, or the allocator (`own`, the
/// basename of jvmalloc's library).
pub fn is_runtime(base: &str, own: &str) -> bool {
    const RUNTIME: [&str; 7] = [
        "libc.so",
        "ld-linux",
        "libstdc++.so",
        "libgcc_s.so",
        "libpthread.so",
        "libdl.so",
        "libjvmalloc",
    ];
    base == own || RUNTIME.iter().any(|r| base.starts_with(r))
}

/// The library a stack is attributed to, from the objects of its frames, innermost first
/// (`None`: a frame in no file, i.e. JIT-compiled or interpreted Java): the first object
/// outside the runtime, `[no file]` when a frame in no file comes first, `[runtime]` when
/// every frame is in the runtime.
pub fn library<'a>(objects: impl IntoIterator<Item = Option<&'a str>>, own: &str) -> String {
    for o in objects {
        match o {
            None => return "[no file]".to_string(),
            Some(base) if !is_runtime(base, own) => return base.to_string(),
            Some(_) => {}
        }
    }
    "[runtime]".to_string()
}

/// The function name without parameters or template arguments of a demangled C++ name,
/// and without a C++ scope (`os::malloc(unsigned long)` → `malloc`).
#[cfg_attr(not(test), allow(dead_code))]
fn bare(name: &str) -> &str {
    let end = name.find(['(', '<']).unwrap_or(name.len());
    let head = &name[..end];
    head.rsplit("::").next().unwrap_or(head)
}

/// Whether `name` (as symbolised, possibly a demangled C++ name) is a JNI or JVM entry
/// point. Returns the bare name to show. (Only the command has names: the library's
/// dumps stop at libraries.)
#[cfg_attr(not(test), allow(dead_code))]
pub fn entry_name(name: &str) -> Option<&str> {
    const PREFIXES: [&str; 8] = [
        "Java_", "JVM_", "Unsafe_", "JNI_", "jni_", "jvmti_", "jmm_", "WB_",
    ];
    let b = bare(name);
    PREFIXES.iter().any(|p| b.starts_with(p)).then_some(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_objects_are_skipped() {
        assert!(is_runtime("libc.so.6", "libjvmalloc.so"));
        assert!(is_runtime("ld-linux-x86-64.so.2", "x"));
        assert!(is_runtime("libstdc++.so.6", "x"));
        assert!(is_runtime("libjvmalloc-test.so", "libjvmalloc-test.so"));
        assert!(!is_runtime("libzip.so", "libjvmalloc.so"));
        assert!(!is_runtime("libz.so.1", "libjvmalloc.so"));
        assert!(!is_runtime("libjvm.so", "libjvmalloc.so"));
        assert_eq!(basename("/a/b/libz.so.1"), "libz.so.1");
        assert_eq!(basename("libz.so.1"), "libz.so.1");
        assert_eq!(basename("/usr/lib/libjvm.so (deleted)"), "libjvm.so");
        let own = "libjvmalloc.so";
        assert_eq!(
            library([Some(own), Some("libc.so.6"), Some("libz.so.1")], own),
            "libz.so.1"
        );
        assert_eq!(
            library([Some("libc.so.6"), None, Some("libz.so.1")], own),
            "[no file]"
        );
        assert_eq!(library([Some(own), Some("libc.so.6")], own), "[runtime]");
    }

    #[test]
    fn entry_points_are_recognised_in_plain_and_demangled_names() {
        assert_eq!(
            entry_name("Java_java_util_zip_Deflater_init"),
            Some("Java_java_util_zip_Deflater_init")
        );
        assert_eq!(
            entry_name("Unsafe_AllocateMemory0(JNIEnv_*, _jobject*, long)"),
            Some("Unsafe_AllocateMemory0")
        );
        assert_eq!(entry_name("JVM_StartThread"), Some("JVM_StartThread"));
        assert_eq!(entry_name("os::malloc(unsigned long, MEMFLAGS)"), None);
        assert_eq!(entry_name("deflateInit2_"), None);
        assert_eq!(entry_name("Javaish"), None);
    }
}
