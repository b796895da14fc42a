//! Host↔device copies: large ones to a server on this machine go through shared memory
//! (`crate::shm`), everything else travels in the call itself.

use crate::rt;
use crate::shm;
use rgpu_protocol::error::{CuError, CuResult};
use rgpu_protocol::messages::*;
use std::ffi::c_void;

pub(crate) unsafe fn htod(
    dst: u64,
    src: *const c_void,
    n: usize,
    stream: Option<u64>,
) -> CuResult<()> {
    if src.is_null() && n > 0 {
        return Err(CuError::INVALID_VALUE);
    }
    if n >= shm::SHM_MIN {
        if let Some(g) = shm::lock() {
            // SAFETY: the caller passes `n` readable bytes.
            return unsafe {
                shm::htod(
                    &g,
                    dst,
                    src as *const u8,
                    n,
                    stream.unwrap_or(0),
                    stream.is_some(),
                )
            };
        }
    }
    // SAFETY: the caller passes `n` readable bytes.
    let data = unsafe { rt::bytes_in(src, n) }.to_vec();
    match stream {
        None => rt::call(Request::MemcpyHtoD(MemcpyHtoDReq {
            dst,
            src: data,
            byte_count: n as u64,
        }))?,
        Some(s) => {
            // The bytes are captured: the copy is pipelined like a launch (the stream is checked
            // here; a bad destination is reported by the thread's next call that waits).
            crate::custom::launch::check_stream(s)?;
            rt::call_async(Request::MemcpyHtoDAsync(MemcpyHtoDAsyncReq {
                dst,
                src: data,
                byte_count: n as u64,
                stream: s,
            }))?;
            return Ok(());
        }
    };
    Ok(())
}

pub(crate) unsafe fn dtoh(
    dst: *mut c_void,
    src: u64,
    n: usize,
    stream: Option<u64>,
) -> CuResult<()> {
    if dst.is_null() && n > 0 {
        return Err(CuError::INVALID_VALUE);
    }
    if n >= shm::SHM_MIN {
        if let Some(g) = shm::lock() {
            // SAFETY: the caller passes `n` writable bytes.
            return unsafe { shm::dtoh(&g, dst as *mut u8, src, n, stream.unwrap_or(0)) };
        }
    }
    let data = match stream {
        None => match rt::call(Request::MemcpyDtoH(MemcpyDtoHReq {
            src,
            byte_count: n as u64,
        }))? {
            Reply::MemcpyDtoH(r) => r.dst,
            _ => return Err(rt::mismatch("cuMemcpyDtoH")),
        },
        Some(s) => match rt::call(Request::MemcpyDtoHAsync(MemcpyDtoHAsyncReq {
            src,
            byte_count: n as u64,
            stream: s,
        }))? {
            Reply::MemcpyDtoHAsync(r) => r.dst,
            _ => return Err(rt::mismatch("cuMemcpyDtoHAsync")),
        },
    };
    // SAFETY: the caller passes `n` writable bytes.
    unsafe { rt::bytes_out(dst, n, &data) }
}

pub unsafe fn cu_memcpy_hto_d_v2(dst: u64, src: *const c_void, byte_count: usize) -> CuResult<()> {
    // SAFETY: same contract.
    unsafe { htod(dst, src, byte_count, None) }
}

pub unsafe fn cu_memcpy_dto_h_v2(dst: *mut c_void, src: u64, byte_count: usize) -> CuResult<()> {
    // SAFETY: same contract.
    unsafe { dtoh(dst, src, byte_count, None) }
}

pub unsafe fn cu_memcpy_hto_d_async_v2(
    dst: u64,
    src: *const c_void,
    byte_count: usize,
    stream: *mut c_void,
) -> CuResult<()> {
    // SAFETY: same contract.
    unsafe { htod(dst, src, byte_count, Some(stream as u64)) }
}

pub unsafe fn cu_memcpy_dto_h_async_v2(
    dst: *mut c_void,
    src: u64,
    byte_count: usize,
    stream: *mut c_void,
) -> CuResult<()> {
    // SAFETY: same contract.
    unsafe { dtoh(dst, src, byte_count, Some(stream as u64)) }
}
