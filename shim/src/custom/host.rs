//! Page-locked host memory. It lives in the client process: the server cannot reach it, so it is
//! ordinary memory with CUDA's bookkeeping (flags, registration ranges, double-free checks).

use crate::rt;
use rgpu_protocol::error::{CuError, CuResult};
use std::collections::BTreeMap;
use std::ffi::c_void;
use std::sync::Mutex;

const HOSTALLOC_FLAGS: u32 = 1 | 2 | 4; // PORTABLE | DEVICEMAP | WRITECOMBINED
const HOSTREGISTER_FLAGS: u32 = 1 | 2 | 4 | 8; // PORTABLE | DEVICEMAP | IOMEMORY | READ_ONLY

struct Range {
    size: usize,
    flags: u32,
    owned: bool,
}

static RANGES: Mutex<BTreeMap<usize, Range>> = Mutex::new(BTreeMap::new());

fn find(p: usize) -> Option<(usize, u32, bool)> {
    let g = RANGES.lock().unwrap_or_else(|e| e.into_inner());
    let (&base, r) = g.range(..=p).next_back()?;
    (p < base + r.size.max(1)).then_some((base, r.flags, r.owned))
}

/// The page-locked range containing `p`: (base, size).
pub fn host_range(p: usize) -> Option<(usize, usize)> {
    let g = RANGES.lock().unwrap_or_else(|e| e.into_inner());
    let (&base, r) = g.range(..=p).next_back()?;
    (p < base + r.size.max(1)).then_some((base, r.size))
}

fn require_context() -> CuResult<()> {
    if rt::current_ctx() == 0 {
        return Err(CuError::INVALID_CONTEXT);
    }
    Ok(())
}

pub unsafe fn cu_mem_host_alloc(pp: *mut *mut c_void, bytesize: usize, flags: u32) -> CuResult<()> {
    if pp.is_null() || bytesize == 0 || flags & !HOSTALLOC_FLAGS != 0 {
        return Err(CuError::INVALID_VALUE);
    }
    require_context()?;
    let mut p: *mut c_void = std::ptr::null_mut();
    // SAFETY: posix_memalign with a power-of-two alignment and an out pointer on our stack.
    let rc = unsafe { libc::posix_memalign(&mut p, 4096, bytesize) };
    if rc != 0 || p.is_null() {
        return Err(CuError::OUT_OF_MEMORY);
    }
    RANGES.lock().unwrap_or_else(|e| e.into_inner()).insert(
        p as usize,
        Range {
            size: bytesize,
            flags,
            owned: true,
        },
    );
    // SAFETY: checked non-null.
    unsafe { pp.write(p) };
    Ok(())
}

pub unsafe fn cu_mem_alloc_host_v2(pp: *mut *mut c_void, bytesize: usize) -> CuResult<()> {
    // SAFETY: same contract.
    unsafe { cu_mem_host_alloc(pp, bytesize, 0) }
}

pub unsafe fn cu_mem_free_host(p: *mut c_void) -> CuResult<()> {
    let mut g = RANGES.lock().unwrap_or_else(|e| e.into_inner());
    match g.get(&(p as usize)) {
        Some(r) if r.owned => {
            g.remove(&(p as usize));
            // SAFETY: p came from posix_memalign in cu_mem_host_alloc and is freed once.
            unsafe { libc::free(p) };
            Ok(())
        }
        _ => Err(CuError::INVALID_VALUE),
    }
}

pub unsafe fn cu_mem_host_register_v2(p: *mut c_void, bytesize: usize, flags: u32) -> CuResult<()> {
    if p.is_null() || bytesize == 0 || flags & !HOSTREGISTER_FLAGS != 0 {
        return Err(CuError::INVALID_VALUE);
    }
    require_context()?;
    let mut g = RANGES.lock().unwrap_or_else(|e| e.into_inner());
    let start = p as usize;
    let overlaps = g
        .range(..start + bytesize)
        .next_back()
        .is_some_and(|(&b, r)| b + r.size > start);
    if overlaps {
        return Err(CuError::HOST_MEMORY_ALREADY_REGISTERED);
    }
    g.insert(
        start,
        Range {
            size: bytesize,
            flags,
            owned: false,
        },
    );
    Ok(())
}

pub unsafe fn cu_mem_host_unregister(p: *mut c_void) -> CuResult<()> {
    if p.is_null() {
        return Err(CuError::INVALID_VALUE);
    }
    let mut g = RANGES.lock().unwrap_or_else(|e| e.into_inner());
    match g.get(&(p as usize)) {
        Some(r) if !r.owned => {
            g.remove(&(p as usize));
            Ok(())
        }
        _ => Err(CuError::HOST_MEMORY_NOT_REGISTERED),
    }
}

pub unsafe fn cu_mem_host_get_flags(flags: *mut u32, p: *mut c_void) -> CuResult<()> {
    if flags.is_null() {
        return Err(CuError::INVALID_VALUE);
    }
    let (_, f, _) = find(p as usize).ok_or(CuError::INVALID_VALUE)?;
    // SAFETY: checked non-null.
    unsafe { flags.write(f) };
    Ok(())
}

pub unsafe fn cu_mem_host_get_device_pointer_v2(
    pdptr: *mut u64,
    p: *mut c_void,
    flags: u32,
) -> CuResult<()> {
    if pdptr.is_null() || flags != 0 {
        return Err(CuError::INVALID_VALUE);
    }
    find(p as usize).ok_or(CuError::INVALID_VALUE)?;
    tracing::warn!("rgpu: mapped page-locked memory cannot be reached by a remote device");
    Err(CuError::NOT_SUPPORTED)
}
