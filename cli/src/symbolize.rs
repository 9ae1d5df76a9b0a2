//! Turns the raw return addresses of a target's sampled stacks into names, off the target,
//! from the ELF files on disk and the JVM's perf map.
//!
//! The target hands over its memory mappings ([`Mapping`]: what `/proc/<pid>/maps` says, plus
//! the GNU build-id it read from memory). For each address, [`Symbolizer::resolve`] finds its
//! mapping, then:
//!
//! 1. In a mapping of a file: the address becomes an offset in the file (`address - start +
//!    offset`), then a virtual address of the ELF file through its `PT_LOAD` program headers,
//!    which is looked up in
//!    1. the DWARF debug info: of the file itself, else of a separate debug file found by
//!       build-id (`/usr/lib/debug/.build-id/xx/rest.debug`) or by `.gnu_debuglink` (in the
//!       file's directory, its `.debug/` subdirectory, `/usr/lib/debug/<dir>/`), with its
//!       `.gnu_debugaltlink` supplementary file (dwz) if any. This gives the function, the
//!       source `file:line` and the functions inlined at the address;
//!    2. else the nearest preceding function symbol of `.symtab` (the file's, or the debug
//!       file's when the file was stripped);
//!    3. else that of `.dynsym`.
//!
//!    A sized symbol covers only `[address, address + size)`. Of several symbols at one
//!    address (aliases), the public one names the function, also when DWARF named another
//!    of them (glibc's `__GI___libc_malloc` is `malloc`). Names are demangled (Rust, then
//!    C++; plain C names stay as they are). When nothing names the address, the frame reads
//!    `libname.so+0xOFFSET`.
//! 2. In a mapping of no file (`[heap]`, anonymous memory: the JVM's code cache) or in no
//!    mapping at all: the perf map of the JVM (`/tmp/perf-<pid>.map`), if one was given, else
//!    the frame reads as the bare address.
//!
//! Each ELF file is read and parsed once, when an address first falls in it, and each
//! address is resolved once. A file that cannot be read or parsed, or whose build-id differs
//! from the one the target loaded, gives one warning ([`Symbolizer::warnings`]) and unnamed
//! frames.

use object::{Object, ObjectSection, ObjectSegment, ObjectSymbol};
use std::collections::HashMap;
use std::fs;
use std::io::{self, Read, Seek};
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// The DWARF reader: slices of a file (or of a decompressed section) kept alive by an `Rc`.
type Reader = gimli::EndianRcSlice<gimli::RunTimeEndian>;

/// One mapping of the target, as /proc/<pid>/maps gives it, plus the GNU build-id the target
/// read from memory, if any (the library's own type).
pub use crate::sites::Mapping;

/// A resolved frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub address: u64,
    /// Demangled function name (C++ via cpp_demangle, Rust via rustc-demangle; plain C names
    /// as is), or the Java method from the perf map.
    pub name: Option<String>,
    /// Base name of the object (`libzip.so`, `libjvm.so`), `[java]` for perf-map code, the
    /// mapping's name for memory of no file (`[heap]`, `[anon]` for anonymous memory), None
    /// if the address is in no mapping.
    pub library: Option<String>,
    /// Full path of the object, as the target sees it.
    pub path: Option<String>,
    /// Offset of the address in the object file (for `lib.so+0xOFFSET`).
    pub file_offset: Option<u64>,
    /// Source `file:line` when debug info is available (best effort): in the function
    /// `name`, the line of the address, or of the call of the outermost of `inlined`.
    pub location: Option<String>,
    /// The functions inlined at the address (from debug info): the one called by `name`
    /// first, the innermost last. `label()` leaves them out; a caller may show them.
    pub inlined: Vec<Inlined>,
    /// True when it was resolved from a perf map (JIT-compiled Java code).
    pub java: bool,
}

/// A function inlined at a frame's address, and the line in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inlined {
    pub name: Option<String>,
    pub location: Option<String>,
}

impl Frame {
    /// "name" or "lib.so+0x1a2b" or "0x7f..." (nothing known); used for display and collapsed
    /// stacks.
    pub fn label(&self) -> String {
        match (&self.name, &self.library, self.file_offset) {
            (Some(name), _, _) => name.clone(),
            (None, Some(library), Some(offset)) => format!("{library}+{offset:#x}"),
            _ => format!("{:#x}", self.address),
        }
    }
}

/// Reads the text of `/proc/<pid>/maps` into mappings (no build-ids).
#[cfg(test)]
pub fn parse_proc_maps(text: &str) -> Vec<Mapping> {
    text.lines().filter_map(parse_maps_line).collect()
}

/// `start-end perms offset dev inode [path]`; the path may hold spaces.
#[cfg(test)]
fn parse_maps_line(line: &str) -> Option<Mapping> {
    let mut rest = line;
    let mut fields = [""; 5];
    for field in &mut fields {
        rest = rest.trim_start();
        let end = rest.find(' ').unwrap_or(rest.len());
        (*field, rest) = rest.split_at(end);
    }
    let (start, end) = fields[0].split_once('-')?;
    Some(Mapping {
        start: u64::from_str_radix(start, 16).ok()?,
        end: u64::from_str_radix(end, 16).ok()?,
        offset: u64::from_str_radix(fields[2], 16).ok()?,
        path: rest.trim_start().to_string(),
        build_id: None,
    })
}

/// Resolves addresses of one target; see the module's doc for the lookup order.
pub struct Symbolizer {
    /// Sorted by start.
    mappings: Vec<Mapping>,
    root: Option<PathBuf>,
    /// Sorted by start; or why there is none.
    perf_map: Result<Vec<PerfEntry>, String>,
    /// By the mapping's path (as given: with ` (deleted)`): None when the file could not be
    /// used.
    files: HashMap<String, Option<ElfFile>>,
    frames: HashMap<(u64, bool), Frame>,
    warnings: Vec<String>,
}

impl Symbolizer {
    /// `root`: a directory that prefixes every path when opening files (e.g.
    /// `/proc/<pid>/root` so that the command can read a container's files); None = paths as
    /// they are. `perf_map`: path of a perf map (`/tmp/perf-<pid>.map` format: lines `START
    /// SIZE name`, hex START and SIZE without or with 0x), optional; it is read here, once,
    /// as it is given (not under `root`). A build-id given for one mapping of a file holds
    /// for its other mappings too. Nothing is read here but the perf map: each ELF file is
    /// read when an address first falls in it.
    #[cfg(test)]
    pub fn new(
        mappings: Vec<Mapping>,
        root: Option<PathBuf>,
        perf_map: Option<PathBuf>,
    ) -> Symbolizer {
        Symbolizer::new_for(mappings, root, perf_map, None)
    }

    /// As [`Symbolizer::new`]; a perf map is read only if owned by `perf_map_owner` (the
    /// target's user) or root, since `/tmp` is anyone's.
    pub fn new_for(
        mut mappings: Vec<Mapping>,
        root: Option<PathBuf>,
        perf_map: Option<PathBuf>,
        perf_map_owner: Option<u32>,
    ) -> Symbolizer {
        mappings.sort_by_key(|m| m.start);
        // The target may have read the build-id in one mapping of a file only.
        let mut build_ids: HashMap<String, String> = HashMap::new();
        for m in &mappings {
            if let Some(id) = &m.build_id {
                build_ids.insert(m.path.clone(), id.clone());
            }
        }
        for m in &mut mappings {
            if m.build_id.is_none() {
                m.build_id = build_ids.get(&m.path).cloned();
            }
        }
        let perf_map = match perf_map {
            None => Err("no perf map was given".to_string()),
            Some(path) => read_perf_map(&path, perf_map_owner)
                .map(|bytes| parse_perf_map(&String::from_utf8_lossy(&bytes)))
                .map_err(|e| format!("cannot read {}: {}", path.display(), io_message(&e))),
        };
        Symbolizer {
            mappings,
            root,
            perf_map,
            files: HashMap::new(),
            frames: HashMap::new(),
            warnings: Vec::new(),
        }
    }

    /// Entries read from the perf map, or why none could be read (missing, unreadable, not
    /// given). Not a warning: whether a missing perf map matters is the caller's call.
    pub fn perf_map_entries(&self) -> Result<usize, &str> {
        self.perf_map.as_ref().map(Vec::len).map_err(String::as_str)
    }

    /// `return_address`: true for every frame but the innermost; then look up `address - 1`
    /// (the call instruction) but report `address`.
    pub fn resolve(&mut self, address: u64, return_address: bool) -> Frame {
        if let Some(frame) = self.frames.get(&(address, return_address)) {
            return frame.clone();
        }
        let probe = if return_address {
            address.saturating_sub(1)
        } else {
            address
        };
        let frame = self.lookup(address, probe);
        self.frames.insert((address, return_address), frame.clone());
        frame
    }

    /// Problems met, each once, one line each.
    pub fn warnings(&self) -> Vec<String> {
        self.warnings.clone()
    }

    fn lookup(&mut self, address: u64, probe: u64) -> Frame {
        let mut frame = Frame {
            address,
            name: None,
            library: None,
            path: None,
            file_offset: None,
            location: None,
            inlined: Vec::new(),
            java: false,
        };
        let index = self.mappings.partition_point(|m| m.start <= probe);
        let mapping = match index.checked_sub(1).map(|i| &self.mappings[i]) {
            Some(m) if probe < m.end => m.clone(),
            _ => {
                self.name_from_perf_map(&mut frame, probe);
                return frame;
            }
        };
        if !is_file(&mapping.path) {
            frame.library = Some(if mapping.path.is_empty() {
                "[anon]".to_string()
            } else {
                mapping.path.clone()
            });
            self.name_from_perf_map(&mut frame, probe);
            return frame;
        }
        let path = mapping.path.strip_suffix(" (deleted)");
        let deleted = path.is_some();
        let path = path.unwrap_or(&mapping.path);
        let base = path.rsplit('/').next().unwrap_or(path);
        frame.library = Some(base.to_string());
        frame.path = Some(mapping.path.clone());
        frame.file_offset = Some(
            address
                .wrapping_sub(mapping.start)
                .wrapping_add(mapping.offset),
        );
        if deleted && mapping.build_id.is_none() {
            warn(
                &mut self.warnings,
                format!(
                    "{path} was deleted or replaced after the process loaded it: its frames are \
                     shown as {base}+0xOFFSET"
                ),
            );
            return frame;
        }
        // By the mapping's path: a deleted file is not the one now at its path.
        if !self.files.contains_key(&mapping.path) {
            let (root, build_id) = (self.root.as_deref(), mapping.build_id.as_deref());
            let file = ElfFile::load(root, path, build_id, &mut self.warnings);
            self.files.insert(mapping.path.clone(), file);
        }
        let Some(Some(file)) = self.files.get(&mapping.path) else {
            return frame;
        };
        let file_offset = probe - mapping.start + mapping.offset;
        if let Some(vaddr) = file.vaddr(file_offset) {
            (frame.name, frame.location, frame.inlined) = file.name_at(vaddr);
        }
        frame
    }

    fn name_from_perf_map(&self, frame: &mut Frame, probe: u64) {
        let Ok(entries) = &self.perf_map else {
            return;
        };
        let index = entries.partition_point(|e| e.start <= probe);
        if let Some(entry) = index.checked_sub(1).map(|i| &entries[i]) {
            if probe < entry.end {
                frame.name = Some(entry.name.clone());
                frame.library = Some("[java]".to_string());
                frame.java = true;
            }
        }
    }
}

/// Adds `message` to `warnings` unless it is there already.
fn warn(warnings: &mut Vec<String>, message: String) {
    if !warnings.contains(&message) {
        warnings.push(message);
    }
}

/// Whether a mapping's path names a file that may be an ELF object (not `[heap]`, anonymous
/// memory, a device, shared memory, a memfd).
fn is_file(path: &str) -> bool {
    let not_files = ["/dev/", "/memfd:", "/SYSV", "/anon_hugepage", "/[aio]"];
    path.starts_with('/') && !not_files.iter().any(|p| path.starts_with(p))
}

/// `path` (absolute, as the target sees it) under `root`, if any.
fn under_root(root: Option<&Path>, path: &str) -> PathBuf {
    match root {
        Some(root) => root.join(path.trim_start_matches('/')),
        None => PathBuf::from(path),
    }
}

/// An I/O error's message without the " (os error N)" tail.
fn io_message(error: &io::Error) -> String {
    let message = error.to_string();
    match message.find(" (os error ") {
        Some(end) => message[..end].to_string(),
        None => message,
    }
}

/// Demangles a Rust or C++ symbol; any other name is returned as it is. A symbol
/// version (`fgets@@GLIBC_2.2.5`) is dropped: it names the same function.
fn demangle(name: &str) -> String {
    let name = name.split_once('@').map_or(name, |(n, _)| n);
    if let Ok(rust) = rustc_demangle::try_demangle(name) {
        return format!("{rust:#}"); // `:#`: without the hash
    }
    if name.starts_with("_Z") {
        if let Some(cpp) = cpp_demangle::Symbol::new(name)
            .ok()
            .and_then(|s| s.demangle().ok())
        {
            return cpp;
        }
    }
    name.to_string()
}

/// One line of a perf map: code at `[start, end)` is `name`.
struct PerfEntry {
    start: u64,
    end: u64,
    name: String,
}

/// Parses a perf map (`START SIZE name`, hex numbers with or without 0x), sorted by start.
/// Lines that do not parse are skipped (the last one may be half written). When two entries
/// start at the same address, the later one wins: the JVM reuses the space of freed code.
fn parse_perf_map(text: &str) -> Vec<PerfEntry> {
    let hex = |s: &str| {
        let digits = s.strip_prefix("0x").or(s.strip_prefix("0X")).unwrap_or(s);
        u64::from_str_radix(digits, 16).ok()
    };
    let mut entries: Vec<PerfEntry> = text
        .lines()
        .filter_map(|line| {
            let (start, rest) = line.trim_start().split_once(char::is_whitespace)?;
            let (size, name) = rest.trim_start().split_once(char::is_whitespace)?;
            let (start, size) = (hex(start)?, hex(size)?);
            Some(PerfEntry {
                start,
                end: start.saturating_add(size.max(1)),
                name: name.trim().to_string(),
            })
        })
        .collect();
    entries.sort_by_key(|e| e.start); // stable: file order within equal starts
    let mut latest: Vec<PerfEntry> = Vec::with_capacity(entries.len());
    for entry in entries {
        match latest.last_mut() {
            Some(last) if last.start == entry.start => *last = entry,
            _ => latest.push(entry),
        }
    }
    latest
}

/// A `PT_LOAD` program header: file bytes `[offset, offset + size)` are at `vaddr`.
struct Segment {
    offset: u64,
    size: u64,
    vaddr: u64,
}

/// A function symbol.
struct Symbol {
    address: u64,
    size: u64,
    name: Box<str>,
}

/// The function symbols of `.symtab` or `.dynsym`, sorted by address; the aliases of one
/// address best first: sized, then global, then weak, then local, then with fewer leading
/// underscores (`malloc` before `__libc_malloc`), then shorter.
struct SymbolTable(Vec<Symbol>);

impl SymbolTable {
    fn new<'data, S: ObjectSymbol<'data>>(symbols: impl Iterator<Item = S>) -> SymbolTable {
        let mut ranked: Vec<(Symbol, (bool, u8, usize, usize))> = symbols
            .filter(|s| s.kind() == object::SymbolKind::Text && s.is_definition())
            .filter(|s| s.address() != 0)
            .filter_map(|s| {
                let name = s.name().ok().filter(|n| !n.is_empty())?;
                let binding = if s.is_global() {
                    0
                } else if s.is_weak() {
                    1
                } else {
                    2
                };
                let underscores = name.len() - name.trim_start_matches('_').len();
                let rank = (s.size() == 0, binding, underscores, name.len());
                let symbol = Symbol {
                    address: s.address(),
                    size: s.size(),
                    name: name.into(),
                };
                Some((symbol, rank))
            })
            .collect();
        ranked.sort_unstable_by(|(a, ra), (b, rb)| (a.address, ra).cmp(&(b.address, rb)));
        SymbolTable(ranked.into_iter().map(|(s, _)| s).collect())
    }

    /// The aliases at the nearest address at or before `vaddr`, best first, if the best
    /// covers `vaddr` (always when it has no size).
    fn lookup(&self, vaddr: u64) -> Option<&[Symbol]> {
        let end = self.0.partition_point(|s| s.address <= vaddr);
        let address = self.0[end.checked_sub(1)?].address;
        let start = self.0[..end].partition_point(|s| s.address < address);
        let best = &self.0[start];
        let covers = best.size == 0 || vaddr - best.address < best.size;
        covers.then_some(&self.0[start..end])
    }
}

/// What is kept of a parsed ELF file.
struct ElfFile {
    segments: Vec<Segment>,
    dwarf: Option<addr2line::Context<Reader>>,
    symtab: SymbolTable,
    dynsym: SymbolTable,
}

impl ElfFile {
    /// Reads and parses `path` (as the target sees it) under `root`, and finds its debug
    /// info. None, and a warning, when the file cannot be read or parsed, or its build-id is
    /// not `loaded`, the one the target loaded.
    fn load(
        root: Option<&Path>,
        path: &str,
        loaded: Option<&str>,
        warnings: &mut Vec<String>,
    ) -> Option<ElfFile> {
        let full = under_root(root, path);
        let base = path.rsplit('/').next().unwrap_or(path);
        let data = match read_elf(&full) {
            Ok(data) => data,
            Err(e) => {
                let e = io_message(&e);
                let full = full.display();
                let message =
                    format!("cannot read {full}: {e} (its frames are shown as {base}+0xOFFSET)");
                warn(warnings, message);
                return None;
            }
        };
        let file = match object::File::parse(&*data) {
            Ok(file) => file,
            Err(e) => {
                let full = full.display();
                let message =
                    format!("cannot parse {full}: {e} (its frames are shown as {base}+0xOFFSET)");
                warn(warnings, message);
                return None;
            }
        };
        let build_id = file.build_id().ok().flatten().map(hex);
        if let (Some(loaded), Some(on_disk)) = (loaded, &build_id) {
            if !loaded.eq_ignore_ascii_case(on_disk) {
                let message = format!(
                    "build-id of {} on disk differs from the one loaded in the process (file \
                     replaced since?): its frames are not named",
                    full.display()
                );
                warn(warnings, message);
                return None;
            }
        }
        let segments = file
            .segments()
            .map(|s| {
                let (offset, size) = s.file_range();
                Segment {
                    offset,
                    size,
                    vaddr: s.address(),
                }
            })
            .collect();
        let mut symtab = SymbolTable::new(file.symbols());
        let dynsym = SymbolTable::new(file.dynamic_symbols());
        let mut dwarf = None;
        if has_dwarf(&file) {
            dwarf = load_dwarf(root, &full, &file, &data, warnings);
        } else if let Some((debug_path, debug_data)) =
            find_debug_file(root, path, &file, build_id.as_deref(), warnings)
        {
            // Parsed by find_debug_file already: parsing reads headers only.
            if let Ok(debug) = object::File::parse(&*debug_data) {
                if has_dwarf(&debug) {
                    dwarf = load_dwarf(root, &debug_path, &debug, &debug_data, warnings);
                }
                if symtab.0.is_empty() {
                    symtab = SymbolTable::new(debug.symbols());
                }
            }
        }
        Some(ElfFile {
            segments,
            dwarf,
            symtab,
            dynsym,
        })
    }

    /// The virtual address of the file's byte at `file_offset`, if a `PT_LOAD` maps it.
    fn vaddr(&self, file_offset: u64) -> Option<u64> {
        let segment = self
            .segments
            .iter()
            .find(|s| file_offset >= s.offset && file_offset - s.offset < s.size)?;
        Some(segment.vaddr + (file_offset - segment.offset))
    }

    /// The demangled name of the function at `vaddr`, the source location of `vaddr` in it
    /// and the functions inlined there, as far as known.
    ///
    /// DWARF gives them all; the symbol tables give the name when DWARF does not, and they
    /// choose among aliases when DWARF names one of them (glibc's DWARF says
    /// `__GI___libc_malloc` where its symbols say `malloc`).
    fn name_at(&self, vaddr: u64) -> (Option<String>, Option<String>, Vec<Inlined>) {
        let mut frames = self.dwarf_frames(vaddr);
        let (mut raw, location) = frames.pop().unwrap_or_default();
        let inlined = frames
            .into_iter()
            .rev()
            .map(|(name, location)| Inlined {
                name: name.map(|n| demangle(&n)),
                location,
            })
            .collect();
        let aliases = self.symtab.lookup(vaddr).or(self.dynsym.lookup(vaddr));
        if let Some(aliases) = aliases {
            let named_by_dwarf = |raw: &String| aliases.iter().any(|s| *s.name == **raw);
            if raw.as_ref().is_none_or(named_by_dwarf) {
                raw = Some(aliases[0].name.to_string());
            }
        }
        (raw.map(|n| demangle(&n)), location, inlined)
    }

    /// The DWARF frames at `vaddr`, raw function name and `file:line`: the innermost inlined
    /// function first, the function whose code it is last. Empty without DWARF for `vaddr`.
    fn dwarf_frames(&self, vaddr: u64) -> Vec<(Option<String>, Option<String>)> {
        let mut found = Vec::new();
        let Some(context) = &self.dwarf else {
            return found;
        };
        let Ok(mut frames) = context.find_frames(vaddr).skip_all_loads() else {
            return found;
        };
        while let Ok(Some(frame)) = frames.next() {
            let name = frame.function.as_ref().and_then(|f| f.raw_name().ok());
            let location = frame.location.and_then(|l| match (l.file, l.line) {
                (Some(file), Some(line)) => Some(format!("{file}:{line}")),
                (file, _) => file.map(str::to_string),
            });
            found.push((name.map(|n| n.into_owned()), location));
        }
        found
    }
}

/// Lowercase hex of `bytes`.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The whole of the regular file `path`, if it starts as an ELF file does (what is not is
/// not read further: the JVM maps its large `modules` file too).
/// Largest file read (an ELF file, its debug file, a perf map): more is not a library.
const MAX_FILE: u64 = 4 << 30;

/// Opens `path` for reading without following a final symbolic link and without blocking
/// (a FIFO planted at a perf map's name in `/tmp`), and checks on the open file that it is
/// a regular file of at most [`MAX_FILE`] bytes, owned by `owner` when given.
fn open_regular(path: &Path, owner: Option<u32>) -> io::Result<(fs::File, u64)> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let file = fs::File::options()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::other("not a regular file"));
    }
    if meta.len() > MAX_FILE {
        return Err(io::Error::other("larger than 4 GiB"));
    }
    if owner.is_some_and(|uid| meta.uid() != uid && meta.uid() != 0) {
        return Err(io::Error::other("not owned by the process's user"));
    }
    Ok((file, meta.len()))
}

/// Reads a perf map (see [`open_regular`]): owned by the target's user (`owner`) or root.
fn read_perf_map(path: &Path, owner: Option<u32>) -> io::Result<Vec<u8>> {
    let (mut file, len) = open_regular(path, owner)?;
    let mut bytes = Vec::with_capacity(len as usize);
    file.read_to_end(&mut bytes)?;
    Ok(bytes)
}

fn read_elf(path: &Path) -> io::Result<Rc<[u8]>> {
    let (mut file, len) = open_regular(path, None)?;
    let mut magic = [0; 4];
    file.read_exact(&mut magic)
        .map_err(|_| io::Error::other("not an ELF file"))?;
    if magic != *b"\x7fELF" {
        return Err(io::Error::other("not an ELF file"));
    }
    file.rewind()?;
    let len = usize::try_from(len).map_err(io::Error::other)?;
    // One buffer, shared by the DWARF sections that point into it.
    let mut data: Rc<[u8]> = std::iter::repeat_n(0, len).collect();
    file.read_exact(Rc::get_mut(&mut data).expect("not shared yet"))?;
    Ok(data)
}

fn has_dwarf(file: &object::File) -> bool {
    file.section_by_name(".debug_info")
        .is_some_and(|s| s.size() > 0)
}

/// The separate debug file of `file` (at `path` as the target sees it): by build-id, under
/// `root` then on this machine (a build-id names one build), then by `.gnu_debuglink` under
/// `root`. A candidate whose build-id differs from the file's is not used (a warning).
fn find_debug_file(
    root: Option<&Path>,
    path: &str,
    file: &object::File,
    build_id: Option<&str>,
    warnings: &mut Vec<String>,
) -> Option<(PathBuf, Rc<[u8]>)> {
    let mut candidates = Vec::new();
    if let Some(id) = build_id.filter(|id| id.len() > 2) {
        let by_id = format!("/usr/lib/debug/.build-id/{}/{}.debug", &id[..2], &id[2..]);
        candidates.push(under_root(root, &by_id));
        if root.is_some() {
            candidates.push(PathBuf::from(by_id));
        }
    }
    if let Ok(Some((name, _crc))) = file.gnu_debuglink() {
        let name = String::from_utf8_lossy(name);
        let dir = path.rsplit_once('/').map_or("", |(dir, _)| dir);
        for candidate in [
            format!("{dir}/{name}"),
            format!("{dir}/.debug/{name}"),
            format!("/usr/lib/debug{dir}/{name}"),
        ] {
            if candidate != path {
                candidates.push(under_root(root, &candidate));
            }
        }
    }
    let of = under_root(root, path);
    for candidate in candidates {
        if !candidate.is_file() {
            continue;
        }
        let data = match read_elf(&candidate) {
            Ok(data) => data,
            Err(e) => {
                let (c, e) = (candidate.display(), io_message(&e));
                warn(warnings, format!("cannot read the debug file {c}: {e}"));
                continue;
            }
        };
        let debug_id = match object::File::parse(&*data) {
            Ok(debug) => debug.build_id().ok().flatten().map(hex),
            Err(e) => {
                let c = candidate.display();
                warn(warnings, format!("cannot parse the debug file {c}: {e}"));
                continue;
            }
        };
        if let (Some(debug_id), Some(build_id)) = (&debug_id, build_id) {
            if debug_id != build_id {
                let (c, of) = (candidate.display(), of.display());
                let message = format!("the debug file {c} is not that of {of} (build-ids differ)");
                warn(warnings, message);
                continue;
            }
        }
        return Some((candidate, data));
    }
    None
}

/// The DWARF of `file` (read from `full`), with its supplementary file if it has one.
fn load_dwarf(
    root: Option<&Path>,
    full: &Path,
    file: &object::File,
    data: &Rc<[u8]>,
    warnings: &mut Vec<String>,
) -> Option<addr2line::Context<Reader>> {
    let mut dwarf = match dwarf_sections(file, data) {
        Ok(dwarf) => dwarf,
        Err(e) => {
            let message = format!("cannot read the debug info of {}: {e}", full.display());
            warn(warnings, message);
            return None;
        }
    };
    if let Ok(Some((sup_path, sup_id))) = file.gnu_debugaltlink() {
        let sup_path = String::from_utf8_lossy(sup_path);
        let sup_full = if sup_path.starts_with('/') {
            under_root(root, &sup_path)
        } else {
            full.parent().unwrap_or(Path::new("")).join(&*sup_path)
        };
        match load_sup(&sup_full, &hex(sup_id)) {
            Ok(sup) => dwarf.set_sup(sup),
            Err(e) => {
                let (s, f) = (sup_full.display(), full.display());
                let message = format!(
                    "cannot use {s}, the supplementary debug file of {f}: {e} (some names may \
                     be missing)"
                );
                warn(warnings, message);
            }
        }
    }
    match addr2line::Context::from_dwarf(dwarf) {
        Ok(context) => Some(context),
        Err(e) => {
            let message = format!("cannot read the debug info of {}: {e}", full.display());
            warn(warnings, message);
            None
        }
    }
}

/// The DWARF of a supplementary (dwz) file, checked against the build-id that names it.
fn load_sup(path: &Path, build_id: &str) -> Result<gimli::Dwarf<Reader>, String> {
    let data = read_elf(path).map_err(|e| io_message(&e))?;
    let file = object::File::parse(&*data).map_err(|e| e.to_string())?;
    let found = file.build_id().ok().flatten().map(hex);
    if found.as_deref().is_some_and(|found| found != build_id) {
        return Err("its build-id differs".to_string());
    }
    dwarf_sections(&file, &data)
}

/// The DWARF sections of `file`, whose bytes are `data`: slices of `data` when stored as
/// they are, decompressed copies otherwise. A missing section is empty.
fn dwarf_sections(file: &object::File, data: &Rc<[u8]>) -> Result<gimli::Dwarf<Reader>, String> {
    let endian = if file.is_little_endian() {
        gimli::RunTimeEndian::Little
    } else {
        gimli::RunTimeEndian::Big
    };
    let empty = Reader::new(Rc::from(&[][..]), endian);
    gimli::Dwarf::load(|id| {
        let Some(section) = file.section_by_name(id.name()) else {
            return Ok(empty.clone());
        };
        let range = section.compressed_file_range().map_err(|e| e.to_string())?;
        if range.format == object::CompressionFormat::None {
            let start = usize::try_from(range.offset).ok();
            let end =
                start.and_then(|s| s.checked_add(usize::try_from(range.uncompressed_size).ok()?));
            return match (start, end) {
                (Some(start), Some(end)) if end <= data.len() => {
                    Ok(Reader::new(data.clone(), endian).range(start..end))
                }
                _ => Err("a section is out of the file".to_string()),
            };
        }
        let bytes = section.uncompressed_data().map_err(|e| e.to_string())?;
        Ok(Reader::new(Rc::from(&*bytes), endian))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A function of this test program, found by name.
    #[no_mangle]
    #[inline(never)]
    pub extern "C" fn jvmalloc_symbolize_test_function(x: u64) -> u64 {
        std::hint::black_box(x).wrapping_mul(3)
    }

    fn own_function_address() -> u64 {
        let function: extern "C" fn(u64) -> u64 = jvmalloc_symbolize_test_function;
        function as usize as u64
    }

    fn malloc_address() -> u64 {
        let function: unsafe extern "C" fn(libc::size_t) -> *mut libc::c_void = libc::malloc;
        function as usize as u64
    }

    /// Whether this test program has DWARF debug info (not with `debug = 0`).
    fn own_dwarf() -> bool {
        let data = fs::read("/proc/self/exe").unwrap();
        has_dwarf(&object::File::parse(&*data).unwrap())
    }

    fn objcopy(args: &[&std::ffi::OsStr]) {
        let status = std::process::Command::new("objcopy").args(args).status();
        assert!(status.unwrap().success(), "objcopy {args:?}");
    }

    fn own_mappings() -> Vec<Mapping> {
        parse_proc_maps(&fs::read_to_string("/proc/self/maps").unwrap())
    }

    /// A mapping, at a made-up address, of the `PT_LOAD` of `path` that holds `vaddr`; and
    /// the address where `vaddr` is in it.
    fn fake_mapping(path: &str, vaddr: u64) -> (Mapping, u64) {
        let data = fs::read(path).unwrap();
        let file = object::File::parse(&*data).unwrap();
        let segment = file
            .segments()
            .find(|s| vaddr >= s.address() && vaddr < s.address() + s.size())
            .unwrap();
        let (file_offset, size) = segment.file_range();
        let page_offset = file_offset & !0xfff;
        let start = 0x7f12_3400_0000;
        let mapping = Mapping {
            start,
            end: start + (file_offset - page_offset) + size,
            offset: page_offset,
            path: path.to_string(),
            build_id: file.build_id().unwrap().map(hex),
        };
        let address = start + (file_offset - page_offset) + (vaddr - segment.address());
        (mapping, address)
    }

    /// The address of the first of `names` that is a symbol of the ELF file at `path`.
    fn symbol_address(path: &str, names: &[&str]) -> u64 {
        let data = fs::read(path).unwrap();
        let file = object::File::parse(&*data).unwrap();
        let symbols: Vec<_> = file.symbols().chain(file.dynamic_symbols()).collect();
        let symbol = names
            .iter()
            .find_map(|name| symbols.iter().find(|s| s.name() == Ok(name)));
        symbol
            .unwrap_or_else(|| panic!("none of {names:?} in {path}"))
            .address()
    }

    #[test]
    fn own_function_is_named() {
        let mut symbolizer = Symbolizer::new(own_mappings(), None, None);
        let address = own_function_address();
        let exe = fs::read_link("/proc/self/exe").unwrap();
        let exe_name = exe.file_name().unwrap().to_str().unwrap();

        let frame = symbolizer.resolve(address, false);
        assert_eq!(frame.address, address);
        assert_eq!(frame.label(), "jvmalloc_symbolize_test_function");
        assert_eq!(frame.library.as_deref(), Some(exe_name));
        assert_eq!(frame.path.as_deref(), exe.to_str());
        assert!(!frame.java);
        if own_dwarf() {
            let location = frame.location.unwrap();
            assert!(location.contains("symbolize.rs:"), "{location}");
        }

        // As a return address, the byte before is looked up: still the function.
        let frame = symbolizer.resolve(address + 1, true);
        assert_eq!(frame.address, address + 1);
        assert_eq!(
            frame.name.as_deref(),
            Some("jvmalloc_symbolize_test_function")
        );
        // Just past its start as a return address: in whatever precedes it.
        let before = symbolizer.resolve(address, true);
        assert_ne!(
            before.name.as_deref(),
            Some("jvmalloc_symbolize_test_function")
        );
        assert_eq!(symbolizer.warnings(), Vec::<String>::new());
    }

    #[test]
    fn libc_function_is_named() {
        let mut symbolizer = Symbolizer::new(own_mappings(), None, None);
        let address = malloc_address();
        for (probe, return_address) in [(address, false), (address + 1, true)] {
            let frame = symbolizer.resolve(probe, return_address);
            let name = frame.name.unwrap_or_default();
            assert!(name.contains("malloc"), "{name}");
            let library = frame.library.unwrap();
            assert!(library.starts_with("libc"), "{library}");
            let path = frame.path.unwrap();
            let on_disk = symbol_address(&path, &["malloc"]);
            let (mapping, _) = fake_mapping(&path, on_disk);
            assert_eq!(
                frame.file_offset.unwrap() & 0xfff,
                (probe - mapping.start) & 0xfff
            );
        }
        assert_eq!(symbolizer.warnings(), Vec::<String>::new());
    }

    #[test]
    fn libc_debug_file_is_found_by_build_id() {
        let mappings = own_mappings();
        let address = malloc_address();
        let libc = mappings
            .iter()
            .find(|m| m.start <= address && address < m.end)
            .unwrap();
        let data = fs::read(&libc.path).unwrap();
        let id = hex(object::File::parse(&*data)
            .unwrap()
            .build_id()
            .unwrap()
            .unwrap());
        let debug = format!("/usr/lib/debug/.build-id/{}/{}.debug", &id[..2], &id[2..]);
        if !Path::new(&debug).exists() {
            println!("skipped: no {debug} (libc6-dbg is not installed)");
            return;
        }
        let mut symbolizer = Symbolizer::new(mappings, None, None);
        let frame = symbolizer.resolve(address, false);
        let location = frame.location.unwrap();
        assert!(location.contains("malloc.c:"), "{location}");
        assert!(frame.name.unwrap().contains("malloc"));
    }

    #[test]
    fn debug_file_is_found_by_debuglink() {
        let have_objcopy = std::process::Command::new("objcopy")
            .arg("--version")
            .output()
            .is_ok();
        if !have_objcopy || !own_dwarf() {
            println!("skipped: no objcopy, or no debug info in this test program");
            return;
        }
        // A copy of this program without its DWARF, whose debug link names
        // `.debug/stripped.debug` (the right one) and `stripped.debug` (libc's: not used).
        let exe = fs::read_link("/proc/self/exe").unwrap();
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join(".debug")).unwrap();
        let debug = dir.path().join(".debug/stripped.debug");
        let wrong_debug = dir.path().join("stripped.debug");
        let stripped = dir.path().join("stripped");
        let mut link = std::ffi::OsString::from("--add-gnu-debuglink=");
        link.push(&debug);
        objcopy(&["--only-keep-debug".as_ref(), exe.as_ref(), debug.as_ref()]);
        objcopy(&[
            "--strip-debug".as_ref(),
            &link,
            exe.as_ref(),
            stripped.as_ref(),
        ]);
        let libc = own_mappings()
            .into_iter()
            .find(|m| m.start <= malloc_address() && malloc_address() < m.end)
            .unwrap();
        let libc = Path::new(&libc.path);
        objcopy(&[
            "--only-keep-debug".as_ref(),
            libc.as_ref(),
            wrong_debug.as_ref(),
        ]);

        let stripped = stripped.to_str().unwrap();
        let function = "jvmalloc_symbolize_test_function";
        let (mapping, address) = fake_mapping(stripped, symbol_address(stripped, &[function]));
        let mut symbolizer = Symbolizer::new(vec![mapping], None, None);
        let frame = symbolizer.resolve(address, false);
        assert_eq!(frame.name.as_deref(), Some(function));
        let location = frame.location.unwrap(); // from the debug file only
        assert!(location.contains("symbolize.rs:"), "{location}");
        let warnings = symbolizer.warnings();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        let expected = format!("the debug file {} is not that of", wrong_debug.display());
        assert!(warnings[0].starts_with(&expected), "{warnings:?}");
    }

    #[test]
    fn hotspot_cpp_and_jni_names_are_demangled() {
        let jdk = "/usr/lib/jvm/java-17-openjdk-amd64/lib";
        let libjvm = format!("{jdk}/server/libjvm.so");
        let libzip = format!("{jdk}/libzip.so");
        if !Path::new(&libjvm).exists() || !Path::new(&libzip).exists() {
            println!("skipped: no {libjvm} or {libzip}");
            return;
        }
        // Static HotSpot functions are C++ (mangled) in some builds, `extern "C"` in others
        // (Debian's JDK 17).
        let unsafe_names = [
            "_ZL22Unsafe_AllocateMemory0P7JNIEnv_P8_jobjectl",
            "Unsafe_AllocateMemory0",
        ];
        let unsafe_address = symbol_address(&libjvm, &unsafe_names) + 4;
        let (jvm, jvm_address) = fake_mapping(&libjvm, unsafe_address);
        let os_malloc = symbol_address(&libjvm, &["_ZN2os6mallocEm8MEMFLAGS", "_ZN2os6mallocEm"]);
        let os_malloc_address = jvm_address - unsafe_address + os_malloc;
        let jni = "Java_java_util_zip_Deflater_init";
        let (mut zip, zip_address) = fake_mapping(&libzip, symbol_address(&libzip, &[jni]) + 1);
        let shift = 0x1000_0000; // past libjvm.so's mapping
        zip.start += shift;
        zip.end += shift;
        let mut symbolizer = Symbolizer::new(vec![jvm, zip], None, None);

        let frame = symbolizer.resolve(jvm_address, false);
        let name = frame.name.unwrap();
        assert!(name.starts_with("Unsafe_AllocateMemory0"), "{name}");
        assert_eq!(frame.library.as_deref(), Some("libjvm.so"));
        assert_eq!(frame.path.as_deref(), Some(libjvm.as_str()));
        let frame = symbolizer.resolve(os_malloc_address + 16, true);
        let name = frame.name.unwrap();
        assert!(name.starts_with("os::malloc(unsigned long"), "{name}");

        let frame = symbolizer.resolve(zip_address + shift, true);
        assert_eq!(frame.name.as_deref(), Some(jni));
        assert_eq!(frame.library.as_deref(), Some("libzip.so"));
        assert_eq!(symbolizer.warnings(), Vec::<String>::new());
    }

    #[test]
    fn demangling() {
        assert_eq!(
            demangle("Java_java_util_zip_Deflater_init"),
            "Java_java_util_zip_Deflater_init"
        );
        assert_eq!(demangle("_ZN2os6mallocEm"), "os::malloc(unsigned long)");
        assert_eq!(
            demangle("_IO_file_underflow@@GLIBC_2.2.5"),
            "_IO_file_underflow"
        );
        assert_eq!(
            demangle("_ZL22Unsafe_AllocateMemory0P7JNIEnv_P8_jobjectl"),
            "Unsafe_AllocateMemory0(JNIEnv_*, _jobject*, long)"
        );
        assert_eq!(
            demangle("_ZN3std2rt10lang_start17h0123456789abcdefE"),
            "std::rt::lang_start"
        );
        assert_eq!(
            demangle("_ZN6Thread3runEv.cold"),
            "Thread::run() [clone .cold]"
        );
        assert_eq!(demangle("_Znot mangled"), "_Znot mangled");
    }

    #[test]
    fn planted_perf_maps_are_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("perf-1.map");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let link = dir.path().join("perf-2.map");
        std::os::unix::fs::symlink("/dev/zero", &link).unwrap();
        let real = dir.path().join("perf-3.map");
        fs::write(&real, "1000 10 a.B.c()\n").unwrap();
        for (path, why) in [
            (&fifo, "not a regular file"),
            (&link, "Too many levels of symbolic links"),
        ] {
            let s = Symbolizer::new_for(Vec::new(), None, Some(path.clone()), None);
            let e = s.perf_map_entries().unwrap_err();
            assert!(e.contains(why), "{e}");
        }
        // A map another user planted (only root can give a file away to try it).
        if std::os::unix::fs::chown(&real, Some(12346), None).is_ok() {
            let s = Symbolizer::new_for(Vec::new(), None, Some(real.clone()), Some(12345));
            let e = s.perf_map_entries().unwrap_err();
            assert!(e.contains("not owned by the process's user"), "{e}");
        }
        let uid = std::os::unix::fs::MetadataExt::uid(&fs::metadata(&real).unwrap());
        let s = Symbolizer::new_for(Vec::new(), None, Some(real), Some(uid));
        assert_eq!(s.perf_map_entries(), Ok(1));
    }

    #[test]
    fn perf_map_names_jit_code() {
        let dir = tempfile::tempdir().unwrap();
        let map = dir.path().join("perf-1234.map");
        let text = "7f00dead0000 100 Lcom/example/Foo;::bar\n\
                    0x7f00dead0100 0x80 Interpreter\n\
                    7f00dead0000 40 LNewer;::code\n\
                    7f00deae0000 10 LOutside;::mapping\n\
                    garbage\n\
                    7f00deaf";
        fs::write(&map, text).unwrap();
        let anon = Mapping {
            start: 0x7f00_dead_0000,
            end: 0x7f00_dead_8000,
            offset: 0,
            path: String::new(),
            build_id: None,
        };
        let mut symbolizer = Symbolizer::new(vec![anon], None, Some(map));
        assert_eq!(symbolizer.perf_map_entries(), Ok(3));

        let frame = symbolizer.resolve(0x7f00_dead_0011, true);
        assert_eq!(frame.name.as_deref(), Some("LNewer;::code"));
        assert_eq!(frame.library.as_deref(), Some("[java]"));
        assert!(frame.java);
        assert_eq!(frame.address, 0x7f00_dead_0011);
        assert_eq!(frame.label(), "LNewer;::code");
        let frame = symbolizer.resolve(0x7f00_dead_0101, true);
        assert_eq!(frame.label(), "Interpreter");
        // Past every entry, in the mapping: the bare address.
        let frame = symbolizer.resolve(0x7f00_dead_0200, false);
        assert_eq!(
            (frame.label().as_str(), frame.java),
            ("0x7f00dead0200", false)
        );
        assert_eq!(frame.library.as_deref(), Some("[anon]"));
        // In no mapping: the perf map too.
        let frame = symbolizer.resolve(0x7f00_deae_0004, false);
        assert_eq!(frame.label(), "LOutside;::mapping");
        assert!(symbolizer.warnings().is_empty());

        let missing = dir.path().join("perf-1.map");
        let symbolizer = Symbolizer::new(Vec::new(), None, Some(missing));
        assert!(symbolizer.perf_map_entries().is_err());
        assert!(symbolizer.warnings().is_empty());
    }

    #[test]
    fn unreadable_file_gives_one_warning_and_offsets() {
        let mapping = Mapping {
            start: 0x7f00_0000_0000,
            end: 0x7f00_0001_0000,
            offset: 0x2000,
            path: "/nonexistent/dir/libfoo.so".to_string(),
            build_id: None,
        };
        let mut symbolizer = Symbolizer::new(vec![mapping], None, None);
        let frame = symbolizer.resolve(0x7f00_0000_1234, false);
        assert_eq!(frame.label(), "libfoo.so+0x3234");
        let frame = symbolizer.resolve(0x7f00_0000_5000, true);
        assert_eq!(frame.label(), "libfoo.so+0x7000");
        assert_eq!(
            symbolizer.warnings(),
            [
                "cannot read /nonexistent/dir/libfoo.so: No such file or directory (its frames \
              are shown as libfoo.so+0xOFFSET)"
            ]
        );
        // Outside every mapping, no perf map: the bare address.
        assert_eq!(symbolizer.resolve(0x1000, true).label(), "0x1000");
    }

    #[test]
    fn root_prefixes_paths() {
        let mappings = own_mappings();
        let address = own_function_address();
        let dir = tempfile::tempdir().unwrap();
        let mut symbolizer = Symbolizer::new(mappings, Some(dir.path().to_path_buf()), None);
        let frame = symbolizer.resolve(address, false);
        assert_eq!(frame.name, None);
        let warnings = symbolizer.warnings();
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].starts_with(&format!("cannot read {}/", dir.path().display())));
    }

    #[test]
    fn build_id_mismatch_is_not_named() {
        let mut mappings = own_mappings();
        let address = malloc_address();
        let libc_path = mappings
            .iter()
            .find(|m| m.start <= address && address < m.end)
            .unwrap()
            .path
            .clone();
        // Given for the first mapping of the file only, as the target may read it.
        let first = mappings.iter_mut().find(|m| m.path == libc_path).unwrap();
        assert!(first.end <= address);
        first.build_id = Some("00112233445566778899aabbccddeeff00112233".to_string());
        let mut symbolizer = Symbolizer::new(mappings, None, None);
        let frame = symbolizer.resolve(address, false);
        assert_eq!(frame.name, None);
        assert!(frame.label().starts_with("libc"), "{}", frame.label());
        symbolizer.resolve(address + 8, false);
        assert_eq!(
            symbolizer.warnings(),
            [format!(
                "build-id of {libc_path} on disk differs from the one loaded in the process \
                 (file replaced since?): its frames are not named"
            )]
        );
    }

    #[test]
    fn proc_maps_lines() {
        let text = "\
55d0c0a00000-55d0c0a21000 r-xp 00001000 fd:01 1234                       /usr/bin/a b\n\
7ffd1c5e0000-7ffd1c601000 rw-p 00000000 00:00 0                          [stack]\n\
7f0000000000-7f0000001000 rw-p 00000000 00:00 0 \n\
7f0000001000-7f0000002000 r-xp 0000a000 08:01 99 /tmp/x.so (deleted)\n\
bad line\n";
        let mappings = parse_proc_maps(text);
        let paths: Vec<&str> = mappings.iter().map(|m| m.path.as_str()).collect();
        assert_eq!(
            paths,
            ["/usr/bin/a b", "[stack]", "", "/tmp/x.so (deleted)"]
        );
        assert_eq!(
            (mappings[0].start, mappings[0].end, mappings[0].offset),
            (0x55d0_c0a0_0000, 0x55d0_c0a2_1000, 0x1000)
        );
    }
}
