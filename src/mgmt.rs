//! glibc's malloc management calls, answered from jemalloc's numbers.
//!
//! The JVM uses these: `jcmd <pid> System.trim_native_heap` and `-XX:TrimNativeHeapInterval`
//! call `malloc_trim`, and HotSpot reads `mallinfo2` for its native memory reports. Field
//! mapping (documented in `docs/glibc-api.md`):
//!
//! | mallinfo field | jemalloc figure |
//! |---|---|
//! | `arena` | `stats.resident`: RAM the allocator holds |
//! | `uordblks` | `stats.allocated`: bytes in live allocations |
//! | `fordblks` | `resident - allocated`: allocator overhead (free, fragmented, metadata) |
//! | `keepcost` | dirty + muzzy bytes: what `malloc_trim` can give back now |
//! | `hblkhd` | `stats.retained`: address space kept mapped without RAM |
//! | `ordblks`, `smblks`, `hblks`, `usmblks`, `fsmblks` | 0 (no equivalent) |
#![allow(clippy::missing_safety_doc)] // The C contracts are glibc's; see docs/glibc-api.md.

use crate::diag::say;
use crate::init;
use crate::jemalloc::{self, Totals};
use core::ffi::{c_int, CStr};
use core::fmt::{self, Write};

#[repr(C)]
#[derive(Default)]
pub struct Mallinfo2 {
    pub arena: usize,
    pub ordblks: usize,
    pub smblks: usize,
    pub hblks: usize,
    pub hblkhd: usize,
    pub usmblks: usize,
    pub fsmblks: usize,
    pub uordblks: usize,
    pub fordblks: usize,
    pub keepcost: usize,
}

#[repr(C)]
pub struct Mallinfo {
    pub arena: c_int,
    pub ordblks: c_int,
    pub smblks: c_int,
    pub hblks: c_int,
    pub hblkhd: c_int,
    pub usmblks: c_int,
    pub fsmblks: c_int,
    pub uordblks: c_int,
    pub fordblks: c_int,
    pub keepcost: c_int,
}

fn info2() -> Mallinfo2 {
    let t = Totals::read();
    Mallinfo2 {
        arena: t.resident as usize,
        hblkhd: t.retained as usize,
        uordblks: t.allocated as usize,
        fordblks: t.resident.saturating_sub(t.allocated) as usize,
        keepcost: (t.dirty + t.muzzy) as usize,
        ..Mallinfo2::default()
    }
}

#[no_mangle]
pub extern "C" fn mallinfo2() -> Mallinfo2 {
    info2()
}

/// The `int` variant: figures above `INT_MAX` are reported as `INT_MAX` rather than wrapped.
#[no_mangle]
pub extern "C" fn mallinfo() -> Mallinfo {
    let m = info2();
    let c = |v: usize| v.min(c_int::MAX as usize) as c_int;
    Mallinfo {
        arena: c(m.arena),
        ordblks: 0,
        smblks: 0,
        hblks: 0,
        hblkhd: c(m.hblkhd),
        usmblks: 0,
        fsmblks: 0,
        uordblks: c(m.uordblks),
        fordblks: c(m.fordblks),
        keepcost: c(m.keepcost),
    }
}

/// Purges every arena; returns 1 when resident memory went down, 0 otherwise. `pad` is
/// ignored (jemalloc keeps no top-of-heap to pad).
#[no_mangle]
pub extern "C" fn malloc_trim(_pad: usize) -> c_int {
    let before = Totals::read();
    jemalloc::purge_all();
    let after = Totals::read();
    c_int::from(after.resident < before.resident)
}

/// Accepts every glibc parameter and returns 1. None has a runtime equivalent in jemalloc
/// (`M_ARENA_MAX` is fixed at start: use `JVMALLOC_ARENAS`).
#[no_mangle]
pub extern "C" fn mallopt(_param: c_int, _value: c_int) -> c_int {
    1
}

/// Writes a short summary on stderr, one `jvmalloc:` line per figure.
#[no_mangle]
pub extern "C" fn malloc_stats() {
    let t = Totals::read();
    let narenas = jemalloc::read::<u32>(c"arenas.narenas").unwrap_or(0);
    say!(
        "malloc_stats: jemalloc {}, {narenas} arenas",
        jemalloc::version()
    );
    init::config().print();
    let rows: [(&str, u64, &str); 8] = [
        ("allocated", t.allocated, "live allocations"),
        ("active", t.active, "pages holding live allocations"),
        ("resident", t.resident, "RAM held by the allocator"),
        ("mapped", t.mapped, "mapped active and metadata extents"),
        ("retained", t.retained, "address space kept without RAM"),
        ("metadata", t.metadata, "allocator bookkeeping"),
        ("dirty", t.dirty, "freed pages not yet returned"),
        ("muzzy", t.muzzy, "freed pages returned lazily"),
    ];
    for (name, v, what) in rows {
        say!("malloc_stats: {name:<10} {v:>16} bytes  ({what})");
    }
}

/// `fmt::Write` onto a C `FILE *`.
struct CFile(*mut libc::FILE);

impl Write for CFile {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        // SAFETY: the caller of malloc_info passed an open stream; `s` is valid for its length.
        let n = unsafe { libc::fwrite(s.as_ptr().cast(), 1, s.len(), self.0) };
        if n == s.len() {
            Ok(())
        } else {
            Err(fmt::Error)
        }
    }
}

fn write_info(out: &mut CFile) -> fmt::Result {
    let t = Totals::read();
    let narenas = jemalloc::read::<u32>(c"arenas.narenas").unwrap_or(0);
    let page = jemalloc::read::<usize>(c"arenas.page").unwrap_or(4096) as u64;
    writeln!(
        out,
        "<malloc version=\"1\" allocator=\"jvmalloc\" jemalloc=\"{}\">",
        jemalloc::version()
    )?;
    let fields: [(&CStr, &str, u64); 6] = [
        (c"stats.arenas.0.small.allocated", "small", 1),
        (c"stats.arenas.0.large.allocated", "large", 1),
        (c"stats.arenas.0.pactive", "active", page),
        (c"stats.arenas.0.pdirty", "dirty", page),
        (c"stats.arenas.0.pmuzzy", "muzzy", page),
        (c"stats.arenas.0.mapped", "mapped", 1),
    ];
    let mibs = fields.map(|(name, _, _)| jemalloc::Mib::new(name));
    for i in 0..narenas as usize {
        writeln!(out, "<heap nr=\"{i}\">")?;
        for (mib, (_, kind, unit)) in mibs.iter().zip(fields.iter()) {
            let v = mib
                .as_ref()
                .and_then(|m| m.at(2, i).read::<usize>())
                .unwrap_or(0) as u64;
            writeln!(out, "<total type=\"{kind}\" size=\"{}\"/>", v * unit)?;
        }
        writeln!(out, "</heap>")?;
    }
    let totals: [(&str, u64); 8] = [
        ("allocated", t.allocated),
        ("active", t.active),
        ("resident", t.resident),
        ("mapped", t.mapped),
        ("retained", t.retained),
        ("metadata", t.metadata),
        ("dirty", t.dirty),
        ("muzzy", t.muzzy),
    ];
    for (kind, v) in totals {
        writeln!(out, "<total type=\"{kind}\" size=\"{v}\"/>")?;
    }
    writeln!(out, "<system type=\"current\" size=\"{}\"/>", t.resident)?;
    writeln!(out, "</malloc>")
}

/// Writes jemalloc's figures as XML in glibc's outline: one `<heap>` per arena, then
/// process totals. Returns 0, or EINVAL when `options` is not 0 (as glibc does).
#[no_mangle]
pub unsafe extern "C" fn malloc_info(options: c_int, stream: *mut libc::FILE) -> c_int {
    if options != 0 || stream.is_null() {
        return libc::EINVAL;
    }
    match write_info(&mut CFile(stream)) {
        Ok(()) => 0,
        Err(_) => -1,
    }
}
