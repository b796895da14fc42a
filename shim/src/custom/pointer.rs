//! `cuPointerGetAttribute(s)`: device addresses are described by the server, page-locked host
//! memory by the shim's own registry.

use crate::rt;
use rgpu_protocol::error::{CuError, CuResult};
use rgpu_protocol::messages::*;
use std::ffi::c_void;

const MEMORYTYPE_HOST: u32 = 1;
const MEMORYTYPE_DEVICE: u32 = 2;

/// What a pointer is.
enum Kind {
    Device(PointerInfoRep),
    Host { base: usize, size: usize, ctx: u64 },
    Unknown,
}

fn classify(ptr: u64) -> CuResult<Kind> {
    if let Some((base, size)) = crate::custom::host_range(ptr as usize) {
        return Ok(Kind::Host {
            base,
            size,
            ctx: rt::current_ctx(),
        });
    }
    match rt::call(Request::PointerInfo(PointerInfoReq { ptr }))? {
        Reply::PointerInfo(r) if r.found => Ok(Kind::Device(r)),
        Reply::PointerInfo(_) => Ok(Kind::Unknown),
        _ => Err(rt::mismatch("cuPointerGetAttribute")),
    }
}

/// Writes one attribute; `Err(INVALID_VALUE)` when it does not apply to this pointer.
unsafe fn write_attr(data: *mut c_void, attribute: i32, ptr: u64, k: &Kind) -> CuResult<()> {
    // SAFETY (all writes below): the caller provides storage of the attribute's type.
    unsafe {
        let u32_out = |v: u32| (data as *mut u32).write_unaligned(v);
        let i32_out = |v: i32| (data as *mut i32).write_unaligned(v);
        let u64_out = |v: u64| (data as *mut u64).write_unaligned(v);
        match (attribute, k) {
            (_, Kind::Unknown) => return Err(CuError::INVALID_VALUE),
            (1, Kind::Device(r)) => u64_out(r.ctx),
            (1, Kind::Host { ctx, .. }) => u64_out(*ctx),
            (2, Kind::Device(_)) => u32_out(MEMORYTYPE_DEVICE),
            (2, Kind::Host { .. }) => u32_out(MEMORYTYPE_HOST),
            (3, Kind::Device(_)) => u64_out(ptr),
            (3, Kind::Host { .. }) => return Err(CuError::NOT_SUPPORTED),
            (4, Kind::Host { .. }) => u64_out(ptr),
            (4, Kind::Device(_)) => return Err(CuError::INVALID_VALUE),
            (6, _) => u32_out(0),
            (7, Kind::Device(r)) => u64_out(r.base),
            (7, Kind::Host { base, .. }) => u64_out(*base as u64),
            (8, _) | (10, _) | (15, _) | (21, _) => u32_out(0),
            (9, Kind::Device(r)) => i32_out(r.device),
            (9, Kind::Host { .. }) => i32_out(0),
            (11, Kind::Device(r)) | (19, Kind::Device(r)) => u64_out(r.base),
            (11, Kind::Host { base, .. }) | (19, Kind::Host { base, .. }) => u64_out(*base as u64),
            (12, Kind::Device(r)) | (18, Kind::Device(r)) => u64_out(r.size),
            (12, Kind::Host { size, .. }) | (18, Kind::Host { size, .. }) => u64_out(*size as u64),
            (13, _) => u32_out(1),
            (14, _) => u64_out(0),
            (16, _) => u32_out(3),
            (17, _) => u64_out(0),
            (20, Kind::Device(r)) => u64_out(r.base),
            (20, Kind::Host { base, .. }) => u64_out(*base as u64),
            (22, _) => i32_out(-1),
            (5, _) => return Err(CuError::NOT_SUPPORTED),
            _ => return Err(CuError::INVALID_VALUE),
        }
    }
    Ok(())
}

pub unsafe fn cu_pointer_get_attribute(
    data: *mut c_void,
    attribute: i32,
    ptr: u64,
) -> CuResult<()> {
    if data.is_null() {
        return Err(CuError::INVALID_VALUE);
    }
    let k = classify(ptr)?;
    // SAFETY: caller contract.
    unsafe { write_attr(data, attribute, ptr, &k) }
}

/// Unlike the single form, an unknown pointer is not an error: attributes get their null values
/// (memory type 0, "unregistered").
pub unsafe fn cu_pointer_get_attributes(
    num_attributes: u32,
    attributes: *mut i32,
    data: *mut *mut c_void,
    ptr: u64,
) -> CuResult<()> {
    if num_attributes > 0 && (attributes.is_null() || data.is_null()) {
        return Err(CuError::INVALID_VALUE);
    }
    let k = classify(ptr)?;
    for i in 0..num_attributes as usize {
        // SAFETY: the caller passes `num_attributes` entries in both arrays.
        let (a, d) = unsafe { (*attributes.add(i), *data.add(i)) };
        if d.is_null() {
            continue;
        }
        // SAFETY: caller contract for each attribute's storage.
        let r = unsafe { write_attr(d, a, ptr, &k) };
        if r.is_err() {
            // Null value of the attribute's size (all attributes fit in 8 bytes).
            let size = match a {
                1 | 3 | 4 | 7 | 11 | 12 | 14 | 17 | 18 | 19 | 20 => 8,
                _ => 4,
            };
            // SAFETY: as above.
            unsafe { std::ptr::write_bytes(d as *mut u8, 0, size) };
            if matches!(a, 9 | 22) {
                // SAFETY: as above; ordinals use -1 for "none".
                unsafe { (d as *mut i32).write_unaligned(-1) };
            }
        }
    }
    Ok(())
}
