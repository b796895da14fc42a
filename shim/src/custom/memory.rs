//! Copies whose pointers need classifying (unified addressing, 2D descriptors) and device
//! properties in the legacy `CUdevprop` layout.

use crate::rt;
use rgpu_protocol::error::{CuError, CuResult};
use rgpu_protocol::messages::*;
use std::ffi::c_void;

const MEMORYTYPE_HOST: u32 = 1;
const MEMORYTYPE_DEVICE: u32 = 2;
const MEMORYTYPE_ARRAY: u32 = 3;
const MEMORYTYPE_UNIFIED: u32 = 4;

/// `CUDA_MEMCPY2D` (v2 ABI).
#[repr(C)]
struct Memcpy2D {
    src_x_in_bytes: usize,
    src_y: usize,
    src_memory_type: u32,
    src_host: *const c_void,
    src_device: u64,
    src_array: *mut c_void,
    src_pitch: usize,
    dst_x_in_bytes: usize,
    dst_y: usize,
    dst_memory_type: u32,
    dst_host: *mut c_void,
    dst_device: u64,
    dst_array: *mut c_void,
    dst_pitch: usize,
    width_in_bytes: usize,
    height: usize,
}

/// The allocation (base, size) holding device address `p` of this session, if it is one.
fn device_range(p: u64) -> CuResult<Option<(u64, u64)>> {
    match rt::call(Request::MemGetAddressRange(MemGetAddressRangeReq {
        dptr: p,
    })) {
        Ok(Reply::MemGetAddressRange(r)) => Ok(Some((r.base, r.size))),
        Ok(_) => Err(rt::mismatch("cuMemGetAddressRange")),
        Err(e) if e == CuError::NOT_FOUND || e == CuError::INVALID_VALUE => Ok(None),
        Err(e) => Err(e),
    }
}

/// Whether `p` is a device address of this session.
fn is_device(p: u64) -> CuResult<bool> {
    Ok(device_range(p)?.is_some())
}

#[derive(Clone, Copy, PartialEq)]
enum Side {
    Host(usize),
    Device(u64),
}

fn side(kind: u32, host: usize, dev: u64, x: usize, y: usize, pitch: usize) -> CuResult<Side> {
    let off = y
        .checked_mul(pitch)
        .and_then(|v| v.checked_add(x))
        .ok_or(CuError::INVALID_VALUE)?;
    match kind {
        MEMORYTYPE_HOST => Ok(Side::Host(host + off)),
        MEMORYTYPE_DEVICE => Ok(Side::Device(dev + off as u64)),
        MEMORYTYPE_UNIFIED => {
            if is_device(dev)? {
                Ok(Side::Device(dev + off as u64))
            } else {
                Ok(Side::Host(dev as usize + off))
            }
        }
        MEMORYTYPE_ARRAY => {
            tracing::warn!("rgpu: CUDA arrays are not supported yet");
            Err(CuError::NOT_SUPPORTED)
        }
        _ => Err(CuError::INVALID_VALUE),
    }
}

unsafe fn copy2d(copy: *const c_void, stream: Option<u64>) -> CuResult<()> {
    if copy.is_null() {
        return Err(CuError::INVALID_VALUE);
    }
    // SAFETY: non-null; points to a CUDA_MEMCPY2D (CUDA API contract).
    let c = unsafe { &*(copy as *const Memcpy2D) };
    let (w, h) = (c.width_in_bytes, c.height);
    if h > 1 && (c.src_pitch < w || c.dst_pitch < w) {
        return Err(CuError::INVALID_VALUE);
    }
    if w == 0 || h == 0 {
        return Ok(());
    }
    let src = side(
        c.src_memory_type,
        c.src_host as usize,
        c.src_device,
        c.src_x_in_bytes,
        c.src_y,
        c.src_pitch,
    )?;
    let dst = side(
        c.dst_memory_type,
        c.dst_host as usize,
        c.dst_device,
        c.dst_x_in_bytes,
        c.dst_y,
        c.dst_pitch,
    )?;
    let total = w.checked_mul(h).ok_or(CuError::INVALID_VALUE)?;
    let mut req = Memcpy2DReq {
        width: w as u64,
        height: h as u64,
        dst_pitch: c.dst_pitch as u64,
        src_pitch: c.src_pitch as u64,
        stream: stream.unwrap_or(0),
        is_async: stream.is_some(),
        ..Default::default()
    };
    match (src, dst) {
        (Side::Host(s), Side::Host(d)) => {
            for row in 0..h {
                // SAFETY: the caller passes valid host rows of `w` bytes at each pitch step.
                unsafe {
                    std::ptr::copy(
                        (s + row * c.src_pitch) as *const u8,
                        (d + row * c.dst_pitch) as *mut u8,
                        w,
                    )
                };
            }
            return Ok(());
        }
        (Side::Host(s), Side::Device(d)) => {
            if s == 0 {
                return Err(CuError::INVALID_VALUE);
            }
            let mut data = Vec::with_capacity(total);
            for row in 0..h {
                // SAFETY: the caller passes readable host rows of `w` bytes.
                data.extend_from_slice(unsafe {
                    std::slice::from_raw_parts((s + row * c.src_pitch) as *const u8, w)
                });
            }
            req.mode = 0;
            req.dst = d;
            req.data = data;
        }
        (Side::Device(s), Side::Host(_)) => {
            req.mode = 1;
            req.src = s;
        }
        (Side::Device(s), Side::Device(d)) => {
            req.mode = 2;
            req.src = s;
            req.dst = d;
        }
    }
    let Reply::Memcpy2D(rep) = rt::call(Request::Memcpy2D(req))? else {
        return Err(rt::mismatch("cuMemcpy2D"));
    };
    if let (Side::Device(_), Side::Host(d)) = (src, dst) {
        if d == 0 || rep.data.len() != total {
            return Err(CuError::INVALID_VALUE);
        }
        for row in 0..h {
            // SAFETY: the caller passes writable host rows of `w` bytes.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    rep.data[row * w..].as_ptr(),
                    (d + row * c.dst_pitch) as *mut u8,
                    w,
                )
            };
        }
    }
    Ok(())
}

pub unsafe fn cu_memcpy2d_v2(copy: *const c_void) -> CuResult<()> {
    // SAFETY: same contract.
    unsafe { copy2d(copy, None) }
}

pub unsafe fn cu_memcpy2d_async_v2(copy: *const c_void, stream: *mut c_void) -> CuResult<()> {
    // SAFETY: same contract.
    unsafe { copy2d(copy, Some(stream as u64)) }
}

unsafe fn unified(dst: u64, src: u64, n: usize, stream: Option<u64>) -> CuResult<()> {
    if n == 0 {
        return Ok(());
    }
    let (sr, dr) = (device_range(src)?, device_range(dst)?);
    // A device range running past its allocation fails now, also for copies that are then
    // pipelined.
    for (p, r) in [(src, sr), (dst, dr)] {
        if let Some((base, size)) = r {
            if p.checked_add(n as u64).is_none_or(|end| end > base + size) {
                return Err(CuError::INVALID_VALUE);
            }
        }
    }
    let (sd, dd) = (sr.is_some(), dr.is_some());
    let rep = match (sd, dd, stream) {
        (false, false, _) => {
            if src == 0 || dst == 0 {
                return Err(CuError::INVALID_VALUE);
            }
            // SAFETY: both are host buffers of `n` bytes (CUDA API contract).
            unsafe { std::ptr::copy(src as *const u8, dst as *mut u8, n) };
            return Ok(());
        }
        (true, true, None) => rt::call(Request::MemcpyDtoD(MemcpyDtoDReq {
            dst,
            src,
            byte_count: n as u64,
        }))?,
        (true, true, Some(s)) => rt::call(Request::MemcpyDtoDAsync(MemcpyDtoDAsyncReq {
            dst,
            src,
            byte_count: n as u64,
            stream: s,
        }))?,
        (false, true, st) => {
            if src == 0 {
                return Err(CuError::INVALID_VALUE);
            }
            // SAFETY: host source of `n` bytes (CUDA API contract).
            unsafe { crate::custom::copy::htod(dst, src as *const c_void, n, st) }?;
            return Ok(());
        }
        (true, false, st) => {
            if dst == 0 {
                return Err(CuError::INVALID_VALUE);
            }
            // SAFETY: host destination of `n` bytes (CUDA API contract).
            unsafe { crate::custom::copy::dtoh(dst as *mut c_void, src, n, st) }?;
            return Ok(());
        }
    };
    let _ = rep;
    Ok(())
}

pub unsafe fn cu_memcpy(dst: u64, src: u64, byte_count: usize) -> CuResult<()> {
    // SAFETY: same contract.
    unsafe { unified(dst, src, byte_count, None) }
}

pub unsafe fn cu_memcpy_async(
    dst: u64,
    src: u64,
    byte_count: usize,
    stream: *mut c_void,
) -> CuResult<()> {
    // SAFETY: same contract.
    unsafe { unified(dst, src, byte_count, Some(stream as u64)) }
}

pub unsafe fn cu_memcpy_peer(
    dst: u64,
    dst_ctx: *mut c_void,
    src: u64,
    src_ctx: *mut c_void,
    byte_count: usize,
) -> CuResult<()> {
    if dst_ctx.is_null() || src_ctx.is_null() {
        return Err(CuError::INVALID_CONTEXT);
    }
    rt::call_in(
        dst_ctx as u64,
        Request::MemcpyDtoD(MemcpyDtoDReq {
            dst,
            src,
            byte_count: byte_count as u64,
        }),
    )?;
    Ok(())
}

pub unsafe fn cu_memcpy_peer_async(
    dst: u64,
    dst_ctx: *mut c_void,
    src: u64,
    src_ctx: *mut c_void,
    byte_count: usize,
    stream: *mut c_void,
) -> CuResult<()> {
    if dst_ctx.is_null() || src_ctx.is_null() {
        return Err(CuError::INVALID_CONTEXT);
    }
    crate::custom::pipeline::check_stream(stream as u64)?;
    rt::call_in(
        dst_ctx as u64,
        Request::MemcpyDtoDAsync(MemcpyDtoDAsyncReq {
            dst,
            src,
            byte_count: byte_count as u64,
            stream: stream as u64,
        }),
    )?;
    Ok(())
}

pub unsafe fn cu_device_get_properties(prop: *mut c_void, dev: i32) -> CuResult<()> {
    if prop.is_null() {
        return Err(CuError::INVALID_VALUE);
    }
    let Reply::DeviceGetProperties(r) =
        rt::call(Request::DeviceGetProperties(DeviceGetPropertiesReq { dev }))?
    else {
        return Err(rt::mismatch("cuDeviceGetProperties"));
    };
    if r.props.len() != 14 {
        return Err(CuError::UNKNOWN);
    }
    // SAFETY: a CUdevprop is 14 consecutive ints (CUDA API contract).
    unsafe { std::ptr::copy_nonoverlapping(r.props.as_ptr(), prop as *mut i32, 14) };
    Ok(())
}
