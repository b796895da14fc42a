//! Module images: what a `const void *image` handed to `cuModuleLoadData`, `cuLibraryLoadData`
//! or `cuModuleLoadFatBinary` holds, how many bytes it spans (shim side), and the PTX text inside
//! it that the CPU device executes (server side).
//!
//! Formats handled, recognised by their first bytes:
//!
//! * **PTX text**: a NUL-terminated string; its size is `strlen + 1`.
//! * **Fatbin** (`50 ED 55 BA`, magic `0xBA55ED50`): a 16-byte header `{u32 magic, u16 version,
//!   u16 header_size, u64 fat_size}` followed by `fat_size` bytes of entries. Each entry has a
//!   header of at least 64 bytes (`u16 kind` 1 = PTX, 2 = ELF/SASS; `u32 header_size`,
//!   `u64 payload_size` at +8, `u32 compressed_size` at +0x10, `u16 minor, u16 major` code
//!   version at +0x18, `u32 arch` at +0x1c, `u64 flags` at +0x28 with 0x2000 = LZ4 block and
//!   0x8000 = zstd frame, `u64 uncompressed_size` at +0x38), then its payload. nvcc's
//!   `--concat` groups several entries into one entry of kind 0x100 whose extra header holds a
//!   table of sub-entry headers (`u32 count, u32 table_size`, then the headers, whose
//!   `header_size` field is the sub-entry's offset in the group's decompressed payload).
//! * **Fatbin wrapper** (`B1 43 62 46`, magic `0x466243b1`): the `__fatBinC_Wrapper_t` that
//!   cudart registers, `{i32 magic, i32 version, const void *data, void *filename_or_fatbins}`;
//!   only meaningful in the client process, where [`wrapper_fatbin`] follows `data`.
//! * **ELF** (`7F 45 4C 46`): a cubin (machine `EM_CUDA`, SASS only), or a host object or
//!   executable whose `.nv_fatbin` section holds a fatbin.
//!
//! Every parser of untrusted bytes here is bounds-checked with checked arithmetic, never panics
//! and bounds every allocation (decompressed entries are capped at [`MAX_DECOMPRESSED`]).

use std::fmt;

/// Magic number of a fatbin header (`50 ED 55 BA` in memory).
pub const FATBIN_MAGIC: u32 = 0xBA55_ED50;
/// Magic number of a `__fatBinC_Wrapper_t` (`B1 43 62 46` in memory).
pub const WRAPPER_MAGIC: u32 = 0x4662_43B1;
/// Magic number of the pre-CUDA-4 fatbin format, which is not supported.
const OLD_FATBIN_MAGIC: u32 = 0x1EE5_5A01;
/// The first bytes of an ELF file.
const ELF_MAGIC: [u8; 4] = *b"\x7fELF";
/// The first bytes of a static library (`ar` archive), which is not supported.
const AR_MAGIC: &[u8] = b"!<arch>\n";

/// Largest decompressed fatbin entry [`extract_ptx`] accepts (256 MiB).
pub const MAX_DECOMPRESSED: usize = 256 << 20;
/// [`extract_ptx`] prefers the PTX entry with the highest arch not above this one.
pub const PREFERRED_MAX_ARCH: u32 = 75;

const FLAG_LZ4: u64 = 0x2000;
const FLAG_ZSTD: u64 = 0x8000;
const ENTRY_PTX: u16 = 1;
const ENTRY_ELF: u16 = 2;
const ENTRY_GROUP: u16 = 0x100;
/// Size of the fixed part of a fatbin entry header.
const ENTRY_HEADER: usize = 64;
/// Size of a fatbin header.
const FATBIN_HEADER: usize = 16;
/// How many leading bytes decide whether a string looks like PTX text.
const TEXT_PROBE: usize = 16;
/// ELF machine number of CUDA cubins.
const EM_CUDA: u16 = 190;
const SHT_NULL: u32 = 0;
const SHT_NOBITS: u32 = 8;

/// What kind of image a buffer holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ImageKind {
    /// NUL-terminated PTX text.
    Ptx,
    /// A fatbin: header `0xBA55ED50` and its entries.
    Fatbin,
    /// A `__fatBinC_Wrapper_t` (magic `0x466243b1`) pointing at a fatbin in client memory.
    FatbinWrapper,
    /// An ELF file: a cubin, or a host object holding a `.nv_fatbin` section.
    Elf,
}

/// Why an image cannot be sized or its PTX extracted.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// The image pointer is NULL.
    #[error("the module image pointer is NULL")]
    Null,
    /// The bytes are none of the known image formats.
    #[error("unrecognised module image: not PTX text, a fatbin, a fatbin wrapper or an ELF cubin")]
    Unrecognized,
    /// A structure the image declares runs past the end of the bytes available.
    #[error("the module image is truncated: {what} runs past its end")]
    Truncated {
        /// The structure that does not fit.
        what: &'static str,
    },
    /// The image, or something decompressed from it, exceeds a size limit.
    #[error("the module image is too large: {what} exceeds the limit of {limit} bytes")]
    TooLarge {
        /// The structure that does not fit.
        what: &'static str,
        /// The limit in bytes.
        limit: usize,
    },
    /// The fatbin (or fatbin wrapper) is malformed.
    #[error("malformed fatbin: {0}")]
    BadFatbin(String),
    /// The ELF file is malformed.
    #[error("malformed ELF image: {0}")]
    BadElf(String),
    /// A compressed fatbin entry does not decompress.
    #[error("cannot decompress a fatbin entry: {0}")]
    Decompress(String),
    /// The PTX text is not usable (empty, not UTF-8, embedded NUL).
    #[error("invalid PTX text: {0}")]
    BadPtx(String),
    /// The image holds only SASS (or nothing), no PTX.
    #[error("the image has no PTX ({}), which the CPU device cannot run", describe_archs(.archs))]
    NoPtx {
        /// The SASS architectures found (`75` for `sm_75`), sorted and deduplicated.
        archs: Vec<u32>,
    },
    /// A recognised but unsupported form.
    #[error("unsupported module image: {0}")]
    Unsupported(String),
}

fn describe_archs(archs: &[u32]) -> String {
    if archs.is_empty() {
        return "and no SASS either".to_string();
    }
    let list: Vec<String> = archs.iter().map(|a| format!("sm_{a}")).collect();
    format!("only SASS for {}", list.join(", "))
}

/// The kind of a fatbin entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntryKind {
    /// PTX text (entry kind 1).
    Ptx,
    /// An ELF cubin with SASS (entry kind 2).
    Elf,
    /// Any other entry kind (LTO IR and the like), with its raw number.
    Other(u16),
}

/// How a fatbin entry's payload is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compression {
    /// Stored as is.
    None,
    /// LZ4 block format (flag `0x2000`).
    Lz4,
    /// zstd frame (flag `0x8000`).
    Zstd,
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Compression::None => "none",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        })
    }
}

/// One entry of a fatbin, as listed by [`fatbin_entries`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FatbinEntry {
    /// PTX, ELF or other.
    pub kind: EntryKind,
    /// Target architecture (`75` for `sm_75`/`compute_75`).
    pub arch: u32,
    /// Code version from the entry header as (major, minor): the PTX ISA version for PTX.
    pub code_version: (u16, u16),
    /// Raw entry flags (0x1 64-bit, 0x2 debug, 0x10 Linux, 0x2000 LZ4, 0x8000 zstd, …).
    pub flags: u64,
    /// Compression of the stored bytes (for a grouped entry: of its group).
    pub compression: Compression,
    /// Byte offset of the entry header in the fatbin (for a grouped entry: of its group).
    pub offset: usize,
    /// Payload size: stored bytes, padding included (for a grouped entry: its size inside the
    /// group's decompressed payload).
    pub payload_size: usize,
    /// Compressed size declared by the header (0 when not compressed; for a grouped entry: the
    /// group's).
    pub compressed_size: usize,
    /// Uncompressed size declared by the header (0 when not compressed; for a grouped entry:
    /// the group's).
    pub uncompressed_size: usize,
    /// For an entry of an nvcc `--concat` group: its offset in the group's decompressed payload.
    pub in_group: Option<usize>,
}

// ---------------------------------------------------------------------------------------------
// Reading bytes: from a slice (untrusted, server side) or a raw pointer (shim side).
// ---------------------------------------------------------------------------------------------

/// Random access to the bytes of an image, bounded by [`Source::limit`].
trait Source {
    /// Number of bytes that may be read.
    fn limit(&self) -> usize;
    /// The error for a read that would pass [`Source::limit`].
    fn beyond(&self, what: &'static str) -> ImageError;
    /// Copies `buf.len()` bytes from offset `off`; the range is within [`Source::limit`].
    fn copy(&self, off: usize, buf: &mut [u8]);

    fn bytes<const N: usize>(&self, off: usize, what: &'static str) -> Result<[u8; N], ImageError> {
        let mut buf = [0u8; N];
        match off.checked_add(N) {
            Some(end) if end <= self.limit() => {
                self.copy(off, &mut buf);
                Ok(buf)
            }
            _ => Err(self.beyond(what)),
        }
    }
    fn u8(&self, off: usize, what: &'static str) -> Result<u8, ImageError> {
        Ok(self.bytes::<1>(off, what)?[0])
    }
    fn u16(&self, off: usize, what: &'static str) -> Result<u16, ImageError> {
        Ok(u16::from_le_bytes(self.bytes(off, what)?))
    }
    fn u32(&self, off: usize, what: &'static str) -> Result<u32, ImageError> {
        Ok(u32::from_le_bytes(self.bytes(off, what)?))
    }
    fn u64(&self, off: usize, what: &'static str) -> Result<u64, ImageError> {
        Ok(u64::from_le_bytes(self.bytes(off, what)?))
    }
    /// Checks that `[off, off + len)` lies within [`Source::limit`]; returns its end.
    fn span(&self, off: u64, len: u64, what: &'static str) -> Result<usize, ImageError> {
        off.checked_add(len)
            .and_then(|end| usize::try_from(end).ok())
            .filter(|&end| end <= self.limit())
            .ok_or_else(|| self.beyond(what))
    }
}

/// Untrusted bytes in memory; reading past them is [`ImageError::Truncated`].
struct SliceSource<'a>(&'a [u8]);

impl Source for SliceSource<'_> {
    fn limit(&self) -> usize {
        self.0.len()
    }
    fn beyond(&self, what: &'static str) -> ImageError {
        ImageError::Truncated { what }
    }
    fn copy(&self, off: usize, buf: &mut [u8]) {
        // `Source::bytes` checked the range; `get` keeps this panic-free regardless.
        if let Some(src) = off
            .checked_add(buf.len())
            .and_then(|end| self.0.get(off..end))
        {
            buf.copy_from_slice(src);
        }
    }
}

/// Client memory at a raw pointer, of which at most `max` bytes may be read; reading further is
/// [`ImageError::TooLarge`].
struct RawSource {
    p: *const u8,
    max: usize,
}

impl Source for RawSource {
    fn limit(&self) -> usize {
        self.max
    }
    fn beyond(&self, what: &'static str) -> ImageError {
        ImageError::TooLarge {
            what,
            limit: self.max,
        }
    }
    fn copy(&self, off: usize, buf: &mut [u8]) {
        // SAFETY: `Source::bytes` only calls this for `off + buf.len() <= max`, and every offset
        // read is one the image's own headers place inside the image; the creator of the
        // `RawSource` (the unsafe `image_size`) has its caller guarantee that `p` points to a
        // readable image of the recognised kind. Unaligned reads are fine for bytes.
        unsafe { std::ptr::copy_nonoverlapping(self.p.add(off), buf.as_mut_ptr(), buf.len()) }
    }
}

fn to_usize(v: u64, what: &'static str) -> Result<usize, ImageError> {
    usize::try_from(v).map_err(|_| ImageError::TooLarge {
        what,
        limit: usize::MAX,
    })
}

// ---------------------------------------------------------------------------------------------
// Recognition and sizing.
// ---------------------------------------------------------------------------------------------

fn is_text_byte(b: u8) -> bool {
    matches!(b, b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | 0x20..=0x7e | 0x80..=0xff)
}

/// Recognise an image from its first bytes.
///
/// Looks at the first four bytes for the fatbin, fatbin-wrapper and ELF magics; otherwise a
/// buffer whose first bytes (up to a NUL, at most 16) are non-empty text is taken as PTX.
/// Archives (`!<arch>`) and the pre-CUDA-4 fatbin format give `None`.
pub fn kind(bytes: &[u8]) -> Option<ImageKind> {
    if let Some(head) = bytes.get(..4) {
        if head == ELF_MAGIC {
            return Some(ImageKind::Elf);
        }
        match u32::from_le_bytes([head[0], head[1], head[2], head[3]]) {
            FATBIN_MAGIC => return Some(ImageKind::Fatbin),
            WRAPPER_MAGIC => return Some(ImageKind::FatbinWrapper),
            OLD_FATBIN_MAGIC => return None,
            _ => {}
        }
    }
    if bytes.starts_with(AR_MAGIC) {
        return None;
    }
    let text = bytes.split(|&b| b == 0).next().unwrap_or_default();
    let probe = &text[..text.len().min(TEXT_PROBE)];
    (!probe.is_empty() && probe.iter().all(|&b| is_text_byte(b))).then_some(ImageKind::Ptx)
}

/// The error for bytes [`kind`] does not recognise: a clearer one for known unsupported forms.
fn unrecognized(head: &[u8]) -> ImageError {
    if head.starts_with(AR_MAGIC) {
        ImageError::Unsupported(
            "a static library archive (!<arch>); load its members separately".into(),
        )
    } else if head.get(..4) == Some(&OLD_FATBIN_MAGIC.to_le_bytes()[..]) {
        ImageError::Unsupported("the pre-CUDA-4 fatbin format (magic 0x1EE55A01)".into())
    } else {
        ImageError::Unrecognized
    }
}

/// Shim side: number of bytes of the image at `p`.
///
/// * PTX text: `strlen + 1` (the terminating NUL included);
/// * fatbin: `header_size + fat_size` from its header;
/// * ELF: the file size computed from the ELF header, the maximum of the end of the program-
///   and section-header tables and of every segment's and (non-`NOBITS`) section's file range;
/// * fatbin wrapper: not sized here, the size of the wrapper structure itself is returned
///   (`4 + 4 + 2 pointers`); follow it with [`wrapper_fatbin`] and size that fatbin.
///
/// Reads only what the format says, in bounded steps, never at or past `max` bytes from `p`;
/// an image that would need more is [`ImageError::TooLarge`].
///
/// # Safety
///
/// `p` must be NULL or point to a readable image of the recognised kind: for PTX, readable up
/// to its NUL (or `max` bytes); for the other kinds, readable over the extent its headers
/// declare (or `max` bytes, whichever is smaller).
pub unsafe fn image_size(p: *const u8, max: usize) -> Result<(ImageKind, usize), ImageError> {
    if p.is_null() {
        return Err(ImageError::Null);
    }
    let src = RawSource { p, max };
    // Read the first bytes one at a time, stopping at a NUL, so that a short string is never
    // over-read. No magic contains a NUL in its first four bytes.
    let mut head = [0u8; TEXT_PROBE];
    let mut n = 0;
    let mut nul = false;
    while n < TEXT_PROBE && n < max {
        let b = src.u8(n, "image")?;
        if b == 0 {
            nul = true;
            break;
        }
        head[n] = b;
        n += 1;
    }
    let head = &head[..n];
    match kind(head) {
        None => Err(unrecognized(head)),
        Some(ImageKind::Ptx) => {
            if nul {
                return Ok((ImageKind::Ptx, n + 1));
            }
            let mut i = n;
            loop {
                if src.u8(i, "PTX text without a NUL terminator")? == 0 {
                    return Ok((ImageKind::Ptx, i + 1));
                }
                i += 1;
            }
        }
        Some(ImageKind::Fatbin) => Ok((ImageKind::Fatbin, fatbin_size(&src)?)),
        Some(ImageKind::Elf) => Ok((ImageKind::Elf, elf_size(&src)?)),
        Some(ImageKind::FatbinWrapper) => Ok((
            ImageKind::FatbinWrapper,
            std::mem::size_of::<FatbinWrapper>(),
        )),
    }
}

/// `__fatBinC_Wrapper_t` as cudart lays it out.
#[repr(C)]
struct FatbinWrapper {
    magic: u32,
    version: u32,
    data: *const u8,
    filename_or_fatbins: *const u8,
}

/// Shim side: for a fatbin wrapper (magic `0x466243b1`), the pointer to the fatbin header it
/// references (its `data` field).
///
/// Version 1 is supported. Version 2 (relocatable device code, `nvcc -rdc`), whose
/// `filename_or_fatbins` is a NULL-terminated array of prelinked fatbins that need device
/// linking, is [`ImageError::Unsupported`].
///
/// # Safety
///
/// `p` must be NULL or point to a readable `__fatBinC_Wrapper_t` (16 or 24 bytes).
pub unsafe fn wrapper_fatbin(p: *const u8) -> Result<*const u8, ImageError> {
    if p.is_null() {
        return Err(ImageError::Null);
    }
    // SAFETY: the caller guarantees `p` points to a readable wrapper structure; it may be
    // unaligned, hence `read_unaligned`.
    let w = unsafe { std::ptr::read_unaligned(p.cast::<FatbinWrapper>()) };
    if w.magic != WRAPPER_MAGIC {
        return Err(ImageError::BadFatbin(format!(
            "not a fatbin wrapper (magic {:#010x}, expected {WRAPPER_MAGIC:#010x})",
            w.magic
        )));
    }
    match w.version {
        1 if w.data.is_null() => Err(ImageError::BadFatbin(
            "the fatbin wrapper's data pointer is NULL".into(),
        )),
        1 => Ok(w.data),
        2 => Err(ImageError::Unsupported(format!(
            "fatbin wrapper version 2 (relocatable device code, nvcc -rdc): its prelinked \
             fatbins (list at {:p}) need device linking",
            w.filename_or_fatbins
        ))),
        v => Err(ImageError::BadFatbin(format!(
            "unknown fatbin wrapper version {v}"
        ))),
    }
}

/// `header_size + fat_size` of the fatbin header at offset 0.
fn fatbin_size<S: Source>(src: &S) -> Result<usize, ImageError> {
    let magic = src.u32(0, "fatbin header")?;
    if magic != FATBIN_MAGIC {
        return Err(ImageError::BadFatbin(format!("bad magic {magic:#010x}")));
    }
    let header_size = src.u16(6, "fatbin header")?;
    let fat_size = src.u64(8, "fatbin header")?;
    if usize::from(header_size) < FATBIN_HEADER {
        return Err(ImageError::BadFatbin(format!(
            "header size {header_size} is below {FATBIN_HEADER}"
        )));
    }
    src.span(u64::from(header_size), fat_size, "fatbin")
}

// ---------------------------------------------------------------------------------------------
// ELF.
// ---------------------------------------------------------------------------------------------

/// The fields of an ELF header this module uses.
struct Elf {
    is64: bool,
    abi_version: u8,
    machine: u16,
    flags: u32,
    ehsize: u64,
    phoff: u64,
    phentsize: u64,
    phnum: u64,
    shoff: u64,
    shentsize: u64,
    shnum: u64,
    shstrndx: u64,
}

/// One section header.
struct Section {
    name: u32,
    kind: u32,
    offset: u64,
    size: u64,
    link: u32,
    info: u32,
}

const PN_XNUM: u64 = 0xffff;
const SHN_XINDEX: u64 = 0xffff;

impl Elf {
    fn parse<S: Source>(src: &S) -> Result<Elf, ImageError> {
        const W: &str = "ELF header";
        let ident: [u8; 16] = src.bytes(0, W)?;
        if ident[..4] != ELF_MAGIC {
            return Err(ImageError::BadElf("bad magic".into()));
        }
        if ident[5] != 1 {
            return Err(ImageError::Unsupported(format!(
                "ELF data encoding {} (only little-endian ELF is supported)",
                ident[5]
            )));
        }
        let is64 = match ident[4] {
            1 => false,
            2 => true,
            c => return Err(ImageError::BadElf(format!("bad ELF class {c}"))),
        };
        let mut e = if is64 {
            Elf {
                is64,
                abi_version: ident[8],
                machine: src.u16(0x12, W)?,
                phoff: src.u64(0x20, W)?,
                shoff: src.u64(0x28, W)?,
                flags: src.u32(0x30, W)?,
                ehsize: src.u16(0x34, W)?.into(),
                phentsize: src.u16(0x36, W)?.into(),
                phnum: src.u16(0x38, W)?.into(),
                shentsize: src.u16(0x3a, W)?.into(),
                shnum: src.u16(0x3c, W)?.into(),
                shstrndx: src.u16(0x3e, W)?.into(),
            }
        } else {
            Elf {
                is64,
                abi_version: ident[8],
                machine: src.u16(0x12, W)?,
                phoff: src.u32(0x1c, W)?.into(),
                shoff: src.u32(0x20, W)?.into(),
                flags: src.u32(0x24, W)?,
                ehsize: src.u16(0x28, W)?.into(),
                phentsize: src.u16(0x2a, W)?.into(),
                phnum: src.u16(0x2c, W)?.into(),
                shentsize: src.u16(0x2e, W)?.into(),
                shnum: src.u16(0x30, W)?.into(),
                shstrndx: src.u16(0x32, W)?.into(),
            }
        };
        let (min_eh, min_ph, min_sh) = if is64 { (64, 56, 64) } else { (52, 32, 40) };
        if e.ehsize < min_eh {
            return Err(ImageError::BadElf(format!(
                "header size {} too small",
                e.ehsize
            )));
        }
        if e.phnum != 0 && e.phentsize < min_ph {
            return Err(ImageError::BadElf(format!(
                "program header size {} too small",
                e.phentsize
            )));
        }
        let has_sections = e.shoff != 0;
        if has_sections && e.shentsize < min_sh {
            return Err(ImageError::BadElf(format!(
                "section header size {} too small",
                e.shentsize
            )));
        }
        // Extended numbering: the real counts and index live in section header 0.
        if has_sections && (e.shnum == 0 || e.phnum == PN_XNUM || e.shstrndx == SHN_XINDEX) {
            let s0 = e.section(src, 0)?;
            if e.shnum == 0 {
                e.shnum = s0.size;
            }
            if e.phnum == PN_XNUM {
                e.phnum = s0.info.into();
            }
            if e.shstrndx == SHN_XINDEX {
                e.shstrndx = s0.link.into();
            }
        }
        if !has_sections {
            e.shnum = 0;
        }
        Ok(e)
    }

    /// Offset of entry `i` of a table, checked to lie within the source.
    fn entry_off<S: Source>(
        src: &S,
        table: u64,
        entsize: u64,
        i: u64,
        what: &'static str,
    ) -> Result<usize, ImageError> {
        let off = i
            .checked_mul(entsize)
            .and_then(|o| o.checked_add(table))
            .ok_or_else(|| src.beyond(what))?;
        src.span(off, entsize, what)?;
        to_usize(off, what)
    }

    fn section<S: Source>(&self, src: &S, i: u64) -> Result<Section, ImageError> {
        const W: &str = "ELF section header";
        let o = Self::entry_off(src, self.shoff, self.shentsize, i, W)?;
        let at = |d: usize| o.checked_add(d).ok_or_else(|| src.beyond(W));
        Ok(if self.is64 {
            Section {
                name: src.u32(o, W)?,
                kind: src.u32(at(4)?, W)?,
                offset: src.u64(at(0x18)?, W)?,
                size: src.u64(at(0x20)?, W)?,
                link: src.u32(at(0x28)?, W)?,
                info: src.u32(at(0x2c)?, W)?,
            }
        } else {
            Section {
                name: src.u32(o, W)?,
                kind: src.u32(at(4)?, W)?,
                offset: src.u32(at(0x10)?, W)?.into(),
                size: src.u32(at(0x14)?, W)?.into(),
                link: src.u32(at(0x18)?, W)?,
                info: src.u32(at(0x1c)?, W)?,
            }
        })
    }

    /// (file offset, file size) of program header `i`.
    fn segment<S: Source>(&self, src: &S, i: u64) -> Result<(u64, u64), ImageError> {
        const W: &str = "ELF program header";
        let o = Self::entry_off(src, self.phoff, self.phentsize, i, W)?;
        let at = |d: usize| o.checked_add(d).ok_or_else(|| src.beyond(W));
        Ok(if self.is64 {
            (src.u64(at(8)?, W)?, src.u64(at(0x20)?, W)?)
        } else {
            (src.u32(at(4)?, W)?.into(), src.u32(at(0x10)?, W)?.into())
        })
    }

    /// The SASS architecture of a cubin (`e_flags`: bits 8..16 from ELF ABI version 8, as
    /// CUDA 12.8+ writes them; bits 0..8 before).
    fn cuda_arch(&self) -> u32 {
        if self.abi_version >= 8 {
            (self.flags >> 8) & 0xff
        } else {
            self.flags & 0xff
        }
    }

    /// The file range of the section called `name`, if any.
    fn find_section<S: Source>(
        &self,
        src: &S,
        name: &[u8],
    ) -> Result<Option<(u64, u64)>, ImageError> {
        if self.shnum == 0 {
            return Ok(None);
        }
        let strtab = self.section(src, self.shstrndx)?;
        let str_end = src.span(strtab.offset, strtab.size, "ELF section name table")?;
        for i in 0..self.shnum {
            let s = self.section(src, i)?;
            if s.kind == SHT_NULL || s.kind == SHT_NOBITS {
                continue;
            }
            let start = strtab
                .offset
                .checked_add(s.name.into())
                .and_then(|o| usize::try_from(o).ok());
            let Some(start) = start else { continue };
            // Compare the name and its terminating NUL, within the name table.
            let matches = name.len() < str_end.saturating_sub(start)
                && (0..=name.len()).all(|k| {
                    let want = name.get(k).copied().unwrap_or(0);
                    start
                        .checked_add(k)
                        .and_then(|o| src.u8(o, "ELF section name").ok())
                        == Some(want)
                });
            if matches {
                src.span(s.offset, s.size, "ELF section")?;
                return Ok(Some((s.offset, s.size)));
            }
        }
        Ok(None)
    }
}

/// File size of the ELF image at offset 0 (see [`image_size`]).
fn elf_size<S: Source>(src: &S) -> Result<usize, ImageError> {
    let e = Elf::parse(src)?;
    let mut end = to_usize(e.ehsize, "ELF header")?;
    let mut grow = |off: u64, len: u64, what: &'static str| -> Result<(), ImageError> {
        end = end.max(src.span(off, len, what)?);
        Ok(())
    };
    if e.phnum != 0 {
        let len = e
            .phnum
            .checked_mul(e.phentsize)
            .ok_or_else(|| src.beyond("ELF program header table"))?;
        grow(e.phoff, len, "ELF program header table")?;
        for i in 0..e.phnum {
            let (off, size) = e.segment(src, i)?;
            grow(off, size, "ELF segment")?;
        }
    }
    if e.shnum != 0 {
        let len = e
            .shnum
            .checked_mul(e.shentsize)
            .ok_or_else(|| src.beyond("ELF section header table"))?;
        grow(e.shoff, len, "ELF section header table")?;
        for i in 0..e.shnum {
            let s = e.section(src, i)?;
            if s.kind != SHT_NULL && s.kind != SHT_NOBITS {
                grow(s.offset, s.size, "ELF section")?;
            }
        }
    }
    Ok(end)
}

// ---------------------------------------------------------------------------------------------
// Fatbin parsing (untrusted bytes).
// ---------------------------------------------------------------------------------------------

/// Where the payload of a grouped entry lies in its group's decompressed payload.
#[derive(Clone, Copy)]
struct SubEntry {
    offset: usize,
    size: usize,
    flags: u64,
    compressed_size: usize,
    uncompressed_size: usize,
}

/// An entry and the stored bytes it (or its group) decompresses from.
struct Parsed<'a> {
    entry: FatbinEntry,
    /// The stored payload of the entry, or of its group.
    stored: &'a [u8],
    /// For a grouped entry: its place in the group's decompressed payload.
    sub: Option<SubEntry>,
}

fn compression_of(flags: u64) -> Result<Compression, ImageError> {
    match (flags & FLAG_LZ4 != 0, flags & FLAG_ZSTD != 0) {
        (false, false) => Ok(Compression::None),
        (true, false) => Ok(Compression::Lz4),
        (false, true) => Ok(Compression::Zstd),
        (true, true) => Err(ImageError::BadFatbin(format!(
            "entry flags {flags:#x} claim both LZ4 and zstd compression"
        ))),
    }
}

fn entry_kind(k: u16) -> EntryKind {
    match k {
        ENTRY_PTX => EntryKind::Ptx,
        ENTRY_ELF => EntryKind::Elf,
        other => EntryKind::Other(other),
    }
}

/// The fixed fields of an entry header at `off` (checked to lie within `b`).
struct RawHeader {
    kind: u16,
    header_size: u32,
    payload_size: u64,
    compressed_size: u32,
    code_version: (u16, u16),
    arch: u32,
    flags: u64,
    uncompressed_size: u64,
}

fn raw_header(b: &SliceSource<'_>, off: usize) -> Result<RawHeader, ImageError> {
    const W: &str = "fatbin entry header";
    let at = |d: usize| off.checked_add(d).ok_or(ImageError::Truncated { what: W });
    Ok(RawHeader {
        kind: b.u16(off, W)?,
        header_size: b.u32(at(4)?, W)?,
        payload_size: b.u64(at(8)?, W)?,
        compressed_size: b.u32(at(0x10)?, W)?,
        code_version: (b.u16(at(0x1a)?, W)?, b.u16(at(0x18)?, W)?),
        arch: b.u32(at(0x1c)?, W)?,
        flags: b.u64(at(0x28)?, W)?,
        uncompressed_size: b.u64(at(0x38)?, W)?,
    })
}

/// Parses the fatbin at the start of `image` into its entries, `--concat` groups expanded.
fn parse_fatbin(image: &[u8]) -> Result<Vec<Parsed<'_>>, ImageError> {
    let src = SliceSource(image);
    let end = fatbin_size(&src)?;
    let mut off = usize::from(src.u16(6, "fatbin header")?);
    let mut out = Vec::new();
    while off < end {
        let rest = image.get(off..end).unwrap_or_default();
        if rest.iter().all(|&b| b == 0) {
            break; // zero padding after the last entry
        }
        if rest.len() < ENTRY_HEADER {
            return Err(ImageError::BadFatbin(format!(
                "{} stray bytes after the last entry",
                rest.len()
            )));
        }
        let h = raw_header(&src, off)?;
        let header_size = h.header_size as usize;
        if header_size < ENTRY_HEADER || header_size > rest.len() {
            return Err(ImageError::BadFatbin(format!(
                "entry at offset {off} has header size {header_size}"
            )));
        }
        let compression = compression_of(h.flags)?;
        let compressed_size = h.compressed_size as usize;
        let payload_size = to_usize(h.payload_size, "fatbin entry")?;
        let compressed = compression != Compression::None;
        let stored_len = if compressed {
            payload_size.max(compressed_size)
        } else {
            payload_size
        };
        let start = off + header_size; // header_size <= rest.len(), so no overflow
        let data_end =
            start
                .checked_add(stored_len)
                .filter(|&e| e <= end)
                .ok_or(ImageError::Truncated {
                    what: "fatbin entry payload",
                })?;
        let stored = if compressed && compressed_size != 0 {
            &image[start..start + compressed_size]
        } else {
            &image[start..data_end]
        };
        let uncompressed_size = if compressed {
            to_usize(h.uncompressed_size, "fatbin entry")?
        } else {
            0
        };
        let entry = FatbinEntry {
            kind: entry_kind(h.kind),
            arch: h.arch,
            code_version: h.code_version,
            flags: h.flags,
            compression,
            offset: off,
            payload_size,
            compressed_size: if compressed { compressed_size } else { 0 },
            uncompressed_size,
            in_group: None,
        };
        if h.kind == ENTRY_GROUP {
            let group_size = if compressed {
                uncompressed_size
            } else {
                stored.len()
            };
            let ext = &image[off + ENTRY_HEADER..start];
            parse_group(ext, group_size, &entry, stored, &mut out)?;
        } else {
            out.push(Parsed {
                entry,
                stored,
                sub: None,
            });
        }
        off = data_end;
    }
    Ok(out)
}

/// Length of the sub-entry header at `pos` of a group table: 64 bytes, extended to cover the
/// object name (offset and length at +0x20/+0x24) and the options string (its offset and
/// length stored at the header offset given at +0x14) with their NULs, rounded up to 8.
fn sub_header_len(t: &SliceSource<'_>, pos: usize) -> Result<usize, ImageError> {
    const W: &str = "fatbin group entry header";
    let at = |d: usize| pos.checked_add(d).ok_or(ImageError::Truncated { what: W });
    let mut len = ENTRY_HEADER as u64;
    let name_off = u64::from(t.u32(at(0x20)?, W)?);
    let name_len = u64::from(t.u32(at(0x24)?, W)?);
    if name_len != 0 {
        len = len.max(name_off + name_len + 1);
    }
    let desc = t.u32(at(0x14)?, W)? as usize;
    if desc != 0 {
        let opt_off = u64::from(t.u32(at(desc)?, W)?);
        let opt_len = u64::from(
            t.u32(
                at(desc
                    .checked_add(4)
                    .ok_or(ImageError::Truncated { what: W })?)?,
                W,
            )?,
        );
        len = len.max(desc as u64 + 8).max(opt_off + opt_len + 1);
    }
    let len = len.div_ceil(8) * 8;
    to_usize(len, W)
}

/// Expands an nvcc `--concat` group: `ext` is the group's extra header (`u32 count,
/// u32 table_size`, then `count` sub-entry headers), `group_size` the size of its
/// decompressed payload.
fn parse_group<'a>(
    ext: &[u8],
    group_size: usize,
    group: &FatbinEntry,
    stored: &'a [u8],
    out: &mut Vec<Parsed<'a>>,
) -> Result<(), ImageError> {
    const W: &str = "fatbin group table";
    let bad = |m: String| ImageError::BadFatbin(format!("group at offset {}: {m}", group.offset));
    let src = SliceSource(ext);
    let count = src.u32(0, W)? as usize;
    let table_size = src.u32(4, W)? as usize;
    if table_size < 8 || table_size > ext.len() {
        return Err(bad(format!("table size {table_size}")));
    }
    if count == 0 || count > (table_size - 8) / ENTRY_HEADER {
        return Err(bad(format!("{count} entries in a {table_size}-byte table")));
    }
    let t = SliceSource(&ext[..table_size]);
    let mut pos = 8;
    for i in 0..count {
        let h = raw_header(&t, pos)?;
        if h.kind == 0 || h.kind == ENTRY_GROUP {
            return Err(bad(format!("entry {i} has kind {}", h.kind)));
        }
        let len = sub_header_len(&t, pos)?;
        let next = pos
            .checked_add(len)
            .filter(|&n| n <= table_size)
            .ok_or_else(|| bad(format!("entry {i} header runs past the table")))?;
        let offset = h.header_size as usize;
        let size = to_usize(h.payload_size, W)?;
        if offset.checked_add(size).is_none_or(|e| e > group_size) {
            return Err(bad(format!(
                "entry {i} ({offset}+{size}) lies outside the {group_size}-byte payload"
            )));
        }
        let compression = compression_of(h.flags)?;
        let (compressed_size, uncompressed_size) = if compression == Compression::None {
            (0, 0)
        } else {
            (
                h.compressed_size as usize,
                to_usize(h.uncompressed_size, W)?,
            )
        };
        out.push(Parsed {
            entry: FatbinEntry {
                kind: entry_kind(h.kind),
                arch: h.arch,
                code_version: h.code_version,
                flags: h.flags,
                payload_size: size,
                in_group: Some(offset),
                ..group.clone()
            },
            stored,
            sub: Some(SubEntry {
                offset,
                size,
                flags: h.flags,
                compressed_size,
                uncompressed_size,
            }),
        });
        pos = next;
    }
    Ok(())
}

/// Decompresses `data` to at most `declared` bytes (and at most [`MAX_DECOMPRESSED`]).
fn decompress(
    data: &[u8],
    compression: Compression,
    declared: usize,
) -> Result<Vec<u8>, ImageError> {
    if compression == Compression::None {
        return Ok(data.to_vec());
    }
    if declared == 0 {
        return Err(ImageError::Decompress(
            "compressed entry declares no uncompressed size".into(),
        ));
    }
    if declared > MAX_DECOMPRESSED {
        return Err(ImageError::TooLarge {
            what: "decompressed fatbin entry",
            limit: MAX_DECOMPRESSED,
        });
    }
    match compression {
        Compression::None => Ok(data.to_vec()),
        Compression::Lz4 => {
            // An LZ4 block expands at most ~255-fold; refuse sizes no input could produce
            // before allocating for them.
            if declared > data.len().saturating_mul(255).saturating_add(64) {
                return Err(ImageError::Decompress(format!(
                    "{} LZ4 bytes cannot expand to the declared {declared}",
                    data.len()
                )));
            }
            let mut out = vec![0u8; declared];
            let n = lz4_flex::block::decompress_into(data, &mut out)
                .map_err(|e| ImageError::Decompress(format!("LZ4: {e}")))?;
            out.truncate(n);
            Ok(out)
        }
        Compression::Zstd => {
            // Drop padding after the frame, which zstd would read as a bad next frame.
            let frame = match zstd::zstd_safe::find_frame_compressed_size(data) {
                Ok(n) if n <= data.len() => &data[..n],
                _ => data,
            };
            let mut d = zstd::bulk::Decompressor::new()
                .map_err(|e| ImageError::Decompress(format!("zstd: {e}")))?;
            d.decompress(frame, declared)
                .map_err(|e| ImageError::Decompress(format!("zstd: {e}")))
        }
    }
}

/// The payload bytes of an entry, decompressed.
fn entry_payload(p: &Parsed<'_>) -> Result<Vec<u8>, ImageError> {
    let whole = decompress(p.stored, p.entry.compression, p.entry.uncompressed_size)?;
    let Some(sub) = p.sub else { return Ok(whole) };
    let bytes = sub
        .offset
        .checked_add(sub.size)
        .and_then(|end| whole.get(sub.offset..end))
        .ok_or(ImageError::Truncated {
            what: "fatbin group entry",
        })?;
    let compression = compression_of(sub.flags)?;
    if compression == Compression::None {
        return Ok(bytes.to_vec());
    }
    let data = if sub.compressed_size != 0 && sub.compressed_size <= bytes.len() {
        &bytes[..sub.compressed_size]
    } else {
        bytes
    };
    decompress(data, compression, sub.uncompressed_size)
}

/// PTX text from payload bytes: trailing NULs stripped, UTF-8, no embedded NUL, not empty.
fn ptx_text(mut bytes: Vec<u8>) -> Result<String, ImageError> {
    let len = bytes.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    bytes.truncate(len);
    if bytes.is_empty() {
        return Err(ImageError::BadPtx("the PTX text is empty".into()));
    }
    if let Some(i) = bytes.iter().position(|&b| b == 0) {
        return Err(ImageError::BadPtx(format!(
            "the PTX text contains a NUL byte at offset {i}"
        )));
    }
    String::from_utf8(bytes).map_err(|e| {
        ImageError::BadPtx(format!(
            "the PTX text is not UTF-8 (at byte {})",
            e.utf8_error().valid_up_to()
        ))
    })
}

/// Server side: list the entries of a fatbin (kind, arch, compression, sizes) for logs and
/// tests. Entries of nvcc `--concat` groups are listed individually (see
/// [`FatbinEntry::in_group`]).
pub fn fatbin_entries(image: &[u8]) -> Result<Vec<FatbinEntry>, ImageError> {
    if kind(image) != Some(ImageKind::Fatbin) {
        return Err(ImageError::BadFatbin("not a fatbin (bad magic)".into()));
    }
    Ok(parse_fatbin(image)?.into_iter().map(|p| p.entry).collect())
}

/// Chooses and decompresses the PTX of a fatbin.
fn ptx_from_fatbin(image: &[u8]) -> Result<String, ImageError> {
    let entries = parse_fatbin(image)?;
    let rank = |a: u32| (a <= PREFERRED_MAX_ARCH, a);
    let mut best: Option<&Parsed<'_>> = None;
    for p in entries.iter().filter(|p| p.entry.kind == EntryKind::Ptx) {
        if best.is_none_or(|b| rank(p.entry.arch) > rank(b.entry.arch)) {
            best = Some(p);
        }
    }
    match best {
        Some(p) => ptx_text(entry_payload(p)?),
        None => {
            let mut archs: Vec<u32> = entries
                .iter()
                .filter(|p| p.entry.kind == EntryKind::Elf)
                .map(|p| p.entry.arch)
                .collect();
            archs.sort_unstable();
            archs.dedup();
            Err(ImageError::NoPtx { archs })
        }
    }
}

/// PTX of an ELF: none for a cubin; for a host object or executable, that of the single fatbin
/// in its `.nv_fatbin` section.
fn ptx_from_elf(image: &[u8]) -> Result<String, ImageError> {
    let src = SliceSource(image);
    let e = Elf::parse(&src)?;
    if e.machine == EM_CUDA {
        return Err(ImageError::NoPtx {
            archs: vec![e.cuda_arch()],
        });
    }
    let Some((off, size)) = e.find_section(&src, b".nv_fatbin")? else {
        return Err(ImageError::BadElf(format!(
            "neither a CUDA cubin (machine {}) nor an object with a .nv_fatbin section",
            e.machine
        )));
    };
    let start = to_usize(off, "ELF section")?;
    let end = src.span(off, size, "ELF section")?;
    let section = &image[start..end];
    let first = fatbin_size(&SliceSource(section))?;
    // Fatbins of several translation units follow each other, 8-byte aligned.
    let rest = section.get(first.div_ceil(8) * 8..).unwrap_or_default();
    if rest.iter().any(|&b| b != 0) {
        return Err(ImageError::Unsupported(
            "an ELF whose .nv_fatbin section holds several fatbins; pass each fatbin separately"
                .into(),
        ));
    }
    ptx_from_fatbin(&section[..first])
}

/// Server side: one PTX text from an untrusted image (PTX text, fatbin, or ELF).
///
/// * PTX text: the bytes up to the first NUL;
/// * fatbin: the PTX entry with the highest arch not above [`PREFERRED_MAX_ARCH`] if any, else
///   the highest arch; LZ4 and zstd entries are decompressed (bounded by the entry's declared
///   uncompressed size and [`MAX_DECOMPRESSED`]) and trailing NULs stripped;
/// * ELF: a cubin has no PTX; a host object's `.nv_fatbin` section is searched as a fatbin.
///
/// The text must be valid UTF-8. An image with SASS only is [`ImageError::NoPtx`], listing the
/// SASS archs found. A fatbin wrapper holds client pointers and is [`ImageError::Unsupported`].
pub fn extract_ptx(image: &[u8]) -> Result<String, ImageError> {
    match kind(image) {
        None => Err(unrecognized(image)),
        Some(ImageKind::Ptx) => {
            let text = image.split(|&b| b == 0).next().unwrap_or_default();
            ptx_text(text.to_vec())
        }
        Some(ImageKind::Fatbin) => ptx_from_fatbin(image),
        Some(ImageKind::Elf) => ptx_from_elf(image),
        Some(ImageKind::FatbinWrapper) => Err(ImageError::Unsupported(
            "a fatbin wrapper only holds client pointers; send the fatbin it references".into(),
        )),
    }
}

/// `ModuleLoad` reply error meaning "this image is not in the server's cache: send its bytes".
pub const NEED_IMAGE: u32 = u32::MAX;

/// SHA-256 of an image: the key of the server's image cache.
pub fn content_hash(bytes: &[u8]) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA256, bytes)
        .as_ref()
        .to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PTX: &str = "//\n// Generated by hand\n//\n.version 7.5\n.target sm_75\n\
                       .address_size 64\n\n.visible .entry vec_add_kernel(\n\t.param .u64 p0\n)\n{\n\tret;\n}\n";

    fn ptx_for(arch: u32) -> String {
        PTX.replace("sm_75", &format!("sm_{arch}"))
    }

    /// One fatbin entry: header (64 bytes + `extra`) and payload padded to 8 bytes.
    struct E {
        kind: u16,
        arch: u32,
        flags: u64,
        stored: Vec<u8>,
        compressed_size: u32,
        uncompressed_size: u64,
        extra: Vec<u8>,
    }

    impl E {
        fn plain(kind: u16, arch: u32, payload: &[u8]) -> E {
            E {
                kind,
                arch,
                flags: 0x11,
                stored: payload.to_vec(),
                compressed_size: 0,
                uncompressed_size: 0,
                extra: Vec::new(),
            }
        }
        fn ptx(arch: u32) -> E {
            let mut p = ptx_for(arch).into_bytes();
            p.push(0);
            E::plain(ENTRY_PTX, arch, &p)
        }
        fn lz4(arch: u32) -> E {
            let text = ptx_for(arch).into_bytes();
            let c = lz4_flex::block::compress(&text);
            E {
                flags: 0x11 | FLAG_LZ4,
                compressed_size: c.len() as u32,
                uncompressed_size: text.len() as u64,
                stored: c,
                ..E::plain(ENTRY_PTX, arch, b"")
            }
        }
        fn zstd(arch: u32) -> E {
            let text = ptx_for(arch).into_bytes();
            let c = zstd::bulk::compress(&text, 19).unwrap();
            E {
                flags: 0x11 | FLAG_ZSTD,
                compressed_size: c.len() as u32,
                uncompressed_size: text.len() as u64,
                stored: c,
                ..E::plain(ENTRY_PTX, arch, b"")
            }
        }
        fn elf(arch: u32) -> E {
            E::plain(ENTRY_ELF, arch, &cubin(arch))
        }
        /// Header with `header_size` = `hs_field` (the offset, for group sub-entries).
        fn header(&self, hs_field: u32, payload_size: u64) -> Vec<u8> {
            let mut h = vec![0u8; ENTRY_HEADER];
            h[0..2].copy_from_slice(&self.kind.to_le_bytes());
            h[2..4].copy_from_slice(&0x0101u16.to_le_bytes());
            h[4..8].copy_from_slice(&hs_field.to_le_bytes());
            h[8..16].copy_from_slice(&payload_size.to_le_bytes());
            h[0x10..0x14].copy_from_slice(&self.compressed_size.to_le_bytes());
            h[0x18..0x1c].copy_from_slice(&0x0007_0005u32.to_le_bytes());
            h[0x1c..0x20].copy_from_slice(&self.arch.to_le_bytes());
            h[0x28..0x30].copy_from_slice(&self.flags.to_le_bytes());
            h[0x38..0x40].copy_from_slice(&self.uncompressed_size.to_le_bytes());
            h.extend_from_slice(&self.extra);
            h
        }
        fn bytes(&self) -> Vec<u8> {
            let padded = self.stored.len().div_ceil(8) * 8;
            let mut v = self.header((ENTRY_HEADER + self.extra.len()) as u32, padded as u64);
            v.extend_from_slice(&self.stored);
            v.resize(v.len() + padded - self.stored.len(), 0);
            v
        }
    }

    fn fatbin_of(entries: &[Vec<u8>]) -> Vec<u8> {
        let body: Vec<u8> = entries.concat();
        let mut v = Vec::new();
        v.extend_from_slice(&FATBIN_MAGIC.to_le_bytes());
        v.extend_from_slice(&1u16.to_le_bytes());
        v.extend_from_slice(&16u16.to_le_bytes());
        v.extend_from_slice(&(body.len() as u64).to_le_bytes());
        v.extend_from_slice(&body);
        v
    }

    fn fatbin(entries: &[E]) -> Vec<u8> {
        fatbin_of(&entries.iter().map(E::bytes).collect::<Vec<_>>())
    }

    /// A `--concat` group of `subs` (their payloads uncompressed), compressed with zstd.
    fn group(subs: &[E]) -> Vec<u8> {
        let mut table = Vec::new();
        let mut blob = Vec::new();
        for s in subs {
            let padded = s.stored.len().div_ceil(8) * 8;
            table.extend_from_slice(&s.header(blob.len() as u32, padded as u64));
            blob.extend_from_slice(&s.stored);
            blob.resize(blob.len() + padded - s.stored.len(), 0);
        }
        let mut ext = Vec::new();
        ext.extend_from_slice(&(subs.len() as u32).to_le_bytes());
        ext.extend_from_slice(&(table.len() as u32 + 8).to_le_bytes());
        ext.extend_from_slice(&table);
        let c = zstd::bulk::compress(&blob, 3).unwrap();
        E {
            kind: ENTRY_GROUP,
            arch: 0,
            flags: 0x11 | FLAG_ZSTD,
            compressed_size: c.len() as u32,
            uncompressed_size: blob.len() as u64,
            stored: c,
            extra: ext,
        }
        .bytes()
    }

    /// A minimal ELF64 cubin: header, two sections (NULL, .shstrtab), one PT_LOAD segment
    /// after the section table, and a trailing NOBITS section that must not count.
    fn elf64(machine: u16, flags: u32, extra_section: Option<(&str, &[u8])>) -> Vec<u8> {
        let mut names = b"\0.shstrtab\0".to_vec();
        let extra_name = extra_section.map(|(n, _)| {
            let at = names.len() as u32;
            names.extend_from_slice(n.as_bytes());
            names.push(0);
            at
        });
        let nobits_name = names.len() as u32;
        names.extend_from_slice(b".bss\0");
        let mut body = vec![0u8; 64];
        let strtab_off = body.len();
        body.extend_from_slice(&names);
        let extra_off = body.len().div_ceil(8) * 8;
        body.resize(extra_off, 0);
        if let Some((_, d)) = extra_section {
            body.extend_from_slice(d);
        }
        let shoff = body.len().div_ceil(8) * 8;
        body.resize(shoff, 0);
        let mut shdr = |name: u32, kind: u32, off: usize, size: usize| {
            let mut s = vec![0u8; 64];
            s[0..4].copy_from_slice(&name.to_le_bytes());
            s[4..8].copy_from_slice(&kind.to_le_bytes());
            s[0x18..0x20].copy_from_slice(&(off as u64).to_le_bytes());
            s[0x20..0x28].copy_from_slice(&(size as u64).to_le_bytes());
            body.extend_from_slice(&s);
        };
        shdr(0, 0, 0, 0);
        shdr(1, 3, strtab_off, names.len());
        let mut shnum = 2u16;
        if let (Some(n), Some((_, d))) = (extra_name, extra_section) {
            shdr(n, 1, extra_off, d.len());
            shnum += 1;
        }
        shdr(nobits_name, SHT_NOBITS, 0x10_0000, 0x1000);
        shnum += 1;
        let phoff = body.len();
        let seg_off = phoff + 56;
        let mut ph = vec![0u8; 56];
        ph[0..4].copy_from_slice(&1u32.to_le_bytes());
        ph[8..16].copy_from_slice(&(seg_off as u64).to_le_bytes());
        ph[0x20..0x28].copy_from_slice(&40u64.to_le_bytes());
        body.extend_from_slice(&ph);
        body.extend_from_slice(&[0xAB; 40]);
        let h = &mut body[..64];
        h[..4].copy_from_slice(&ELF_MAGIC);
        h[4] = 2;
        h[5] = 1;
        h[6] = 1;
        h[7] = 0x41;
        h[8] = 8;
        h[0x10..0x12].copy_from_slice(&2u16.to_le_bytes());
        h[0x12..0x14].copy_from_slice(&machine.to_le_bytes());
        h[0x20..0x28].copy_from_slice(&(phoff as u64).to_le_bytes());
        h[0x28..0x30].copy_from_slice(&(shoff as u64).to_le_bytes());
        h[0x30..0x34].copy_from_slice(&flags.to_le_bytes());
        h[0x34..0x36].copy_from_slice(&64u16.to_le_bytes());
        h[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
        h[0x38..0x3a].copy_from_slice(&1u16.to_le_bytes());
        h[0x3a..0x3c].copy_from_slice(&64u16.to_le_bytes());
        h[0x3c..0x3e].copy_from_slice(&shnum.to_le_bytes());
        h[0x3e..0x40].copy_from_slice(&1u16.to_le_bytes());
        body
    }

    fn cubin(arch: u32) -> Vec<u8> {
        elf64(EM_CUDA, 0x0600_0004 | (arch << 8), None)
    }

    fn size_of(buf: &[u8]) -> Result<(ImageKind, usize), ImageError> {
        // SAFETY: `max` is the buffer length, so nothing outside `buf` is read.
        unsafe { image_size(buf.as_ptr(), buf.len()) }
    }

    #[test]
    fn recognises_kinds() {
        assert_eq!(kind(PTX.as_bytes()), Some(ImageKind::Ptx));
        assert_eq!(kind(b"x\0"), Some(ImageKind::Ptx));
        assert_eq!(kind(&fatbin(&[E::ptx(75)])), Some(ImageKind::Fatbin));
        assert_eq!(
            kind(&[0xB1, 0x43, 0x62, 0x46, 1, 0, 0, 0]),
            Some(ImageKind::FatbinWrapper)
        );
        assert_eq!(kind(&cubin(75)), Some(ImageKind::Elf));
        assert_eq!(kind(b""), None);
        assert_eq!(kind(b"\0abc"), None);
        assert_eq!(kind(b"!<arch>\nfoo"), None);
        assert_eq!(kind(&OLD_FATBIN_MAGIC.to_le_bytes()), None);
        assert_eq!(kind(&[1, 2, 3, 4, 5]), None);
        assert!(matches!(
            extract_ptx(b"!<arch>\nx"),
            Err(ImageError::Unsupported(_))
        ));
        assert!(matches!(
            extract_ptx(&[1, 2, 3]),
            Err(ImageError::Unrecognized)
        ));
    }

    #[test]
    fn plain_ptx_text() {
        let mut img = PTX.as_bytes().to_vec();
        img.extend_from_slice(b"\0garbage");
        assert_eq!(extract_ptx(&img).unwrap(), PTX);
        assert_eq!(size_of(&img).unwrap(), (ImageKind::Ptx, PTX.len() + 1));
        assert_eq!(size_of(b"ab\0").unwrap(), (ImageKind::Ptx, 3));
        // No NUL within `max`.
        assert!(matches!(
            size_of(PTX.as_bytes()),
            Err(ImageError::TooLarge { .. })
        ));
        assert!(matches!(size_of(b"ab"), Err(ImageError::TooLarge { .. })));
        assert!(matches!(size_of(b"\0"), Err(ImageError::Unrecognized)));
        assert!(matches!(
            extract_ptx(b".version 7.5 \xff\xfe"),
            Err(ImageError::BadPtx(_))
        ));
        // SAFETY: NULL is allowed.
        let r = unsafe { image_size(std::ptr::null(), 10) };
        assert!(matches!(r, Err(ImageError::Null)));
    }

    #[test]
    fn uncompressed_lz4_and_zstd_entries() {
        for e in [E::ptx(75), E::lz4(75), E::zstd(75)] {
            let compression = compression_of(e.flags).unwrap();
            let img = fatbin(&[E::elf(75), e]);
            assert_eq!(extract_ptx(&img).unwrap(), ptx_for(75), "{compression}");
            assert_eq!(size_of(&img).unwrap(), (ImageKind::Fatbin, img.len()));
            let list = fatbin_entries(&img).unwrap();
            assert_eq!(list.len(), 2);
            assert_eq!(list[0].kind, EntryKind::Elf);
            assert_eq!(list[1].kind, EntryKind::Ptx);
            assert_eq!(list[1].arch, 75);
            assert_eq!(list[1].code_version, (7, 5));
            assert_eq!(list[1].compression, compression);
            if compression != Compression::None {
                assert_eq!(list[1].uncompressed_size, ptx_for(75).len());
                assert!(list[1].compressed_size > 0);
            }
        }
    }

    #[test]
    fn fatbin_size_ignores_trailing_bytes_and_checks_max() {
        let mut img = fatbin(&[E::ptx(75)]);
        let n = img.len();
        img.extend_from_slice(&[0xEE; 100]);
        assert_eq!(size_of(&img).unwrap(), (ImageKind::Fatbin, n));
        assert_eq!(extract_ptx(&img).unwrap(), ptx_for(75));
        // SAFETY: `max` is below the buffer length.
        let r = unsafe { image_size(img.as_ptr(), n - 1) };
        assert!(matches!(r, Err(ImageError::TooLarge { .. })));
    }

    #[test]
    fn chooses_highest_arch_up_to_75() {
        let img = fatbin(&[E::ptx(52), E::zstd(86), E::lz4(75), E::ptx(70), E::elf(90)]);
        assert!(extract_ptx(&img).unwrap().contains(".target sm_75"));
        let img = fatbin(&[E::ptx(90), E::lz4(80), E::ptx(86)]);
        assert!(extract_ptx(&img).unwrap().contains(".target sm_90"));
        let img = fatbin(&[E::ptx(60), E::ptx(52)]);
        assert!(extract_ptx(&img).unwrap().contains(".target sm_60"));
    }

    #[test]
    fn sass_only_is_no_ptx() {
        let img = fatbin(&[E::elf(86), E::elf(75), E::elf(86)]);
        match extract_ptx(&img) {
            Err(e @ ImageError::NoPtx { .. }) => {
                let msg = e.to_string();
                assert!(matches!(&e, ImageError::NoPtx { archs } if archs == &[75, 86]));
                assert!(msg.contains("only SASS for sm_75, sm_86"), "{msg}");
                assert!(msg.contains("CPU device cannot run"), "{msg}");
            }
            other => panic!("{other:?}"),
        }
        let c = cubin(75);
        assert!(matches!(extract_ptx(&c), Err(ImageError::NoPtx { archs }) if archs == [75]));
        let empty = fatbin(&[]);
        assert!(
            matches!(extract_ptx(&empty), Err(ImageError::NoPtx { archs }) if archs.is_empty())
        );
    }

    #[test]
    fn elf_size_covers_tables_segments_and_sections() {
        let c = cubin(75);
        assert_eq!(size_of(&c).unwrap(), (ImageKind::Elf, c.len()));
        let mut padded = c.clone();
        padded.extend_from_slice(&[0x55; 64]);
        assert_eq!(size_of(&padded).unwrap(), (ImageKind::Elf, c.len()));
        // SAFETY: `max` is below the buffer length.
        let r = unsafe { image_size(c.as_ptr(), c.len() - 1) };
        assert!(matches!(r, Err(ImageError::TooLarge { .. })));
        // Truncating the bytes makes the slice parser report truncation, not panic.
        for n in 0..c.len() {
            assert!(extract_ptx(&c[..n]).is_err());
        }
    }

    #[test]
    fn host_object_with_nv_fatbin() {
        let fb = fatbin(&[E::elf(75), E::lz4(75)]);
        let host = elf64(62, 0, Some((".nv_fatbin", &fb)));
        assert_eq!(size_of(&host).unwrap(), (ImageKind::Elf, host.len()));
        assert_eq!(extract_ptx(&host).unwrap(), ptx_for(75));
        let other = elf64(62, 0, Some((".data", &fb)));
        assert!(matches!(extract_ptx(&other), Err(ImageError::BadElf(_))));
        let mut two = fb.clone();
        two.resize(two.len().div_ceil(8) * 8, 0);
        two.extend_from_slice(&fb);
        let host2 = elf64(62, 0, Some((".nv_fatbin", &two)));
        assert!(matches!(
            extract_ptx(&host2),
            Err(ImageError::Unsupported(_))
        ));
    }

    #[test]
    fn concat_groups() {
        let mut p75 = E::ptx(75);
        // A sub-entry header extended with an options string, as nvcc writes for -G.
        let mut ext = vec![0u8; 8 + 16];
        ext[0..4].copy_from_slice(&0x48u32.to_le_bytes());
        ext[4..8].copy_from_slice(&9u32.to_le_bytes());
        ext[8..17].copy_from_slice(b" -g -O0 \0");
        p75.extra = ext;
        let p86 = E::ptx(86);
        let ptx_group = group(&[p75, p86]);
        let elf_group = group(&[E::elf(75), E::elf(86)]);
        // The options descriptor offset lives at +0x14 of each sub-entry header.
        let mut ptx_group = ptx_group;
        let desc_at = ENTRY_HEADER + 8 + 0x14;
        ptx_group[desc_at..desc_at + 4].copy_from_slice(&0x40u32.to_le_bytes());
        let img = fatbin_of(&[ptx_group, elf_group]);
        let list = fatbin_entries(&img).unwrap();
        let summary: Vec<_> = list
            .iter()
            .map(|e| (e.kind, e.arch, e.in_group.is_some()))
            .collect();
        assert_eq!(
            summary,
            [
                (EntryKind::Ptx, 75, true),
                (EntryKind::Ptx, 86, true),
                (EntryKind::Elf, 75, true),
                (EntryKind::Elf, 86, true)
            ]
        );
        assert!(list.iter().all(|e| e.compression == Compression::Zstd));
        assert_eq!(extract_ptx(&img).unwrap(), ptx_for(75));
        let sass = fatbin_of(&[group(&[E::elf(75), E::elf(86)])]);
        assert!(
            matches!(extract_ptx(&sass), Err(ImageError::NoPtx { archs }) if archs == [75, 86])
        );
    }

    #[test]
    fn corrupted_fatbins_are_errors() {
        let good = fatbin(&[E::elf(75), E::lz4(75)]);
        // Every truncation of the bytes, with the header left claiming the full size (below
        // four bytes, the magic is not there and "P" is text, so start at 4).
        for n in 4..good.len() {
            assert!(extract_ptx(&good[..n]).is_err(), "truncated to {n}");
            assert!(fatbin_entries(&good[..n]).is_err(), "truncated to {n}");
        }
        // Header size below 16.
        let mut bad = good.clone();
        bad[6] = 8;
        assert!(matches!(extract_ptx(&bad), Err(ImageError::BadFatbin(_))));
        assert!(matches!(size_of(&bad), Err(ImageError::BadFatbin(_))));
        // fat_size overflowing.
        let mut bad = good.clone();
        bad[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(extract_ptx(&bad).is_err());
        assert!(matches!(size_of(&bad), Err(ImageError::TooLarge { .. })));
        // Corrupted LZ4 stream.
        let e = E::lz4(75);
        let mut lz = e.bytes();
        for b in &mut lz[ENTRY_HEADER..ENTRY_HEADER + 8] {
            *b = 0xff;
        }
        assert!(matches!(
            extract_ptx(&fatbin_of(&[lz])),
            Err(ImageError::Decompress(_))
        ));
        // Declared uncompressed sizes: too small, zero, beyond the cap.
        for (unc, zstd) in [
            (10u64, false),
            (10, true),
            (0, false),
            (1 << 40, true),
            (1 << 30, false),
        ] {
            let mut e = if zstd { E::zstd(75) } else { E::lz4(75) };
            e.uncompressed_size = unc;
            let r = extract_ptx(&fatbin(&[e]));
            assert!(
                matches!(
                    r,
                    Err(ImageError::Decompress(_) | ImageError::TooLarge { .. })
                ),
                "{unc} {zstd}: {r:?}"
            );
        }
        // Both compression flags.
        let mut e = E::lz4(75);
        e.flags |= FLAG_ZSTD;
        assert!(matches!(
            extract_ptx(&fatbin(&[e])),
            Err(ImageError::BadFatbin(_))
        ));
        // Entry header size too small / too large.
        for hs in [8u32, 1 << 20] {
            let mut b = E::ptx(75).bytes();
            b[4..8].copy_from_slice(&hs.to_le_bytes());
            assert!(matches!(
                extract_ptx(&fatbin_of(&[b])),
                Err(ImageError::BadFatbin(_))
            ));
        }
        // Payload size beyond the fatbin.
        let mut b = E::ptx(75).bytes();
        b[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(extract_ptx(&fatbin_of(&[b])).is_err());
        // Non-UTF-8 PTX payload.
        let e = E::plain(ENTRY_PTX, 75, b".version 7.5\n\xc3\x28\0\0");
        assert!(matches!(
            extract_ptx(&fatbin(&[e])),
            Err(ImageError::BadPtx(_))
        ));
        // Wrapper bytes on the server side.
        let w = [0xB1, 0x43, 0x62, 0x46, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        assert!(matches!(extract_ptx(&w), Err(ImageError::Unsupported(_))));
    }

    #[test]
    fn wrapper_pointer() {
        let fb = fatbin(&[E::ptx(75)]);
        let w = FatbinWrapper {
            magic: WRAPPER_MAGIC,
            version: 1,
            data: fb.as_ptr(),
            filename_or_fatbins: std::ptr::null(),
        };
        let p = (&raw const w).cast::<u8>();
        // SAFETY: `p` points to a live wrapper whose data points to `fb`.
        unsafe {
            assert_eq!(
                image_size(p, 4096).unwrap(),
                (
                    ImageKind::FatbinWrapper,
                    std::mem::size_of::<FatbinWrapper>()
                )
            );
            let data = wrapper_fatbin(p).unwrap();
            assert_eq!(data, fb.as_ptr());
            assert_eq!(
                image_size(data, usize::MAX).unwrap(),
                (ImageKind::Fatbin, fb.len())
            );
        }
        let list = [fb.as_ptr(), std::ptr::null()];
        let v2 = FatbinWrapper {
            version: 2,
            filename_or_fatbins: list.as_ptr().cast(),
            ..w
        };
        let bad = FatbinWrapper { magic: 1, ..v2 };
        let nul = FatbinWrapper {
            version: 1,
            data: std::ptr::null(),
            ..v2
        };
        // SAFETY: all point to live wrappers (or are NULL).
        unsafe {
            let r = wrapper_fatbin((&raw const v2).cast());
            assert!(
                matches!(&r, Err(ImageError::Unsupported(m)) if m.contains("-rdc")),
                "{r:?}"
            );
            assert!(matches!(
                wrapper_fatbin((&raw const bad).cast()),
                Err(ImageError::BadFatbin(_))
            ));
            assert!(matches!(
                wrapper_fatbin((&raw const nul).cast()),
                Err(ImageError::BadFatbin(_))
            ));
            assert!(matches!(
                wrapper_fatbin(std::ptr::null()),
                Err(ImageError::Null)
            ));
        }
    }

    /// A small deterministic generator, so failures reproduce.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    fn exercise(buf: &[u8]) {
        let _ = kind(buf);
        let _ = extract_ptx(buf);
        let _ = fatbin_entries(buf);
        let _ = size_of(buf);
    }

    #[test]
    fn random_and_mutated_bytes_never_panic() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let seeds = [
            fatbin(&[E::elf(75), E::lz4(75), E::zstd(86), E::ptx(52)]),
            fatbin_of(&[group(&[E::ptx(75), E::ptx(86)]), group(&[E::elf(75)])]),
            cubin(75),
            elf64(62, 0, Some((".nv_fatbin", &fatbin(&[E::lz4(75)])))),
            PTX.as_bytes().to_vec(),
        ];
        let magics: [&[u8]; 4] = [
            &FATBIN_MAGIC.to_le_bytes(),
            &WRAPPER_MAGIC.to_le_bytes(),
            &ELF_MAGIC,
            b".version",
        ];
        for round in 0..20000 {
            // Random bytes behind a random magic.
            let n = rng.below(512);
            let mut buf: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
            let m = magics[round % magics.len()];
            if buf.len() >= m.len() {
                buf[..m.len()].copy_from_slice(m);
            }
            exercise(&buf);
            // A valid image with a few bytes replaced, or truncated.
            let mut buf = seeds[round % seeds.len()].clone();
            for _ in 0..1 + rng.below(4) {
                let i = rng.below(buf.len());
                buf[i] = match rng.below(4) {
                    0 => 0,
                    1 => 0xff,
                    _ => rng.next() as u8,
                };
            }
            if rng.below(4) == 0 {
                let n = rng.below(buf.len());
                buf.truncate(n);
            }
            exercise(&buf);
        }
    }
}
