//! Host↔device copies: large ones to a server on this machine go through shared memory
//! (`crate::shm`), everything else travels in the call itself.

use crate::rt;
use crate::shm;
use rgpu_protocol::error::{CuError, CuResult};
use rgpu_protocol::messages::*;
use std::ffi::c_void;

/// Copies through the connection larger than this travel as several frames of this size: a few
/// MiB per frame moves fastest (no huge buffers to fault in on either side), and the chunks are
/// in flight together.
const CHUNK: usize = 4 << 20;

/// A large upload as pipelined chunks on the copy's stream (stream 0 for a synchronous copy,
/// whose last chunk then waits, so the copy is done when the call returns and a failure of any
/// chunk is reported by it).
///
/// # Safety
/// `src` holds `n` readable bytes.
unsafe fn htod_chunked(dst: u64, src: *const u8, n: usize, stream: Option<u64>) -> CuResult<()> {
    if let Some(s) = stream {
        crate::custom::pipeline::check_stream(s)?;
    }
    let mut off = 0;
    while off < n {
        let len = CHUNK.min(n - off);
        // SAFETY: `off + len <= n`, inside the caller's buffer.
        let data = unsafe { std::slice::from_raw_parts(src.add(off), len) }.to_vec();
        let at = dst + off as u64;
        off += len;
        if off == n && stream.is_none() {
            rt::call(Request::MemcpyHtoD(MemcpyHtoDReq {
                dst: at,
                src: data,
                byte_count: len as u64,
            }))?;
        } else {
            rt::call_async(Request::MemcpyHtoDAsync(MemcpyHtoDAsyncReq {
                dst: at,
                src: data,
                byte_count: len as u64,
                stream: stream.unwrap_or(0),
            }))?;
        }
    }
    Ok(())
}

/// A large download as chunks requested together (each waits for the stream's earlier work).
///
/// # Safety
/// `dst` holds `n` writable bytes.
unsafe fn dtoh_chunked(dst: *mut u8, src: u64, n: usize, stream: Option<u64>) -> CuResult<()> {
    let reqs: Vec<Request> = (0..n)
        .step_by(CHUNK)
        .map(|off| {
            let (at, len) = (src + off as u64, CHUNK.min(n - off) as u64);
            match stream {
                None => Request::MemcpyDtoH(MemcpyDtoHReq {
                    src: at,
                    byte_count: len,
                }),
                Some(s) => Request::MemcpyDtoHAsync(MemcpyDtoHAsyncReq {
                    src: at,
                    byte_count: len,
                    stream: s,
                }),
            }
        })
        .collect();
    for (i, rep) in rt::call_batch(&reqs)?.into_iter().enumerate() {
        let data = match rep {
            Reply::MemcpyDtoH(r) => r.dst,
            Reply::MemcpyDtoHAsync(r) => r.dst,
            _ => return Err(rt::mismatch("cuMemcpyDtoH")),
        };
        let off = i * CHUNK;
        if data.len() != CHUNK.min(n - off) {
            return Err(rt::mismatch("cuMemcpyDtoH"));
        }
        // SAFETY: `off + data.len() <= n`, inside the caller's buffer.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), dst.add(off), data.len()) };
    }
    Ok(())
}

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
    if n > CHUNK {
        // SAFETY: the caller passes `n` readable bytes.
        return unsafe { htod_chunked(dst, src as *const u8, n, stream) };
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
            crate::custom::pipeline::check_stream(s)?;
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
    if n > CHUNK {
        // SAFETY: the caller passes `n` writable bytes.
        return unsafe { dtoh_chunked(dst as *mut u8, src, n, stream) };
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
