//! Stream-capture queries. Capturing work into graphs is not supported (`cuStreamBeginCapture`
//! returns `CUDA_ERROR_NOT_SUPPORTED`), so no stream is ever capturing: the queries answer
//! "not capturing" for every valid stream, which is what libraries such as PyTorch ask before
//! they allocate or synchronise. The capture mode is kept per thread as the driver does.

use super::pipeline::check_stream;
use rgpu_protocol::error::{CuError, CuResult};
use std::cell::Cell;
use std::ffi::c_void;

/// `CU_STREAM_CAPTURE_STATUS_NONE`.
const STATUS_NONE: u32 = 0;

thread_local! {
    /// `CUstreamCaptureMode` of this thread (`CU_STREAM_CAPTURE_MODE_GLOBAL` = 0 at start).
    static MODE: Cell<u32> = const { Cell::new(0) };
}

/// Writes `v` through `p` when `p` is not null.
///
/// # Safety
/// `p` is null or writable.
unsafe fn put<T>(p: *mut T, v: T) {
    if !p.is_null() {
        // SAFETY: non-null and writable per the caller.
        unsafe { p.write(v) };
    }
}

fn not_capturing(stream: *mut c_void, status: *mut u32) -> CuResult<()> {
    if status.is_null() {
        return Err(CuError::INVALID_VALUE);
    }
    check_stream(stream as u64)?;
    // SAFETY: checked non-null; the caller passes a writable status.
    unsafe { status.write(STATUS_NONE) };
    Ok(())
}

pub unsafe fn cu_stream_is_capturing(stream: *mut c_void, status: *mut u32) -> CuResult<()> {
    not_capturing(stream, status)
}

pub unsafe fn cu_stream_get_capture_info(
    stream: *mut c_void,
    status: *mut u32,
    id: *mut u64,
) -> CuResult<()> {
    not_capturing(stream, status)?;
    // SAFETY: optional out-pointers, null or writable.
    unsafe { put(id, 0) };
    Ok(())
}

pub unsafe fn cu_stream_get_capture_info_v2(
    stream: *mut c_void,
    status: *mut u32,
    id: *mut u64,
    graph: *mut *mut c_void,
    deps: *mut *const c_void,
    num_deps: *mut usize,
) -> CuResult<()> {
    // SAFETY: same contract, optional out-pointers null or writable.
    unsafe {
        cu_stream_get_capture_info(stream, status, id)?;
        put(graph, std::ptr::null_mut());
        put(deps, std::ptr::null());
        put(num_deps, 0);
    }
    Ok(())
}

pub unsafe fn cu_stream_get_capture_info_v3(
    stream: *mut c_void,
    status: *mut u32,
    id: *mut u64,
    graph: *mut *mut c_void,
    deps: *mut *const c_void,
    edges: *mut *const c_void,
    num_deps: *mut usize,
) -> CuResult<()> {
    // SAFETY: same contract, optional out-pointers null or writable.
    unsafe {
        cu_stream_get_capture_info_v2(stream, status, id, graph, deps, num_deps)?;
        put(edges, std::ptr::null());
    }
    Ok(())
}

pub unsafe fn cu_thread_exchange_stream_capture_mode(mode: *mut u32) -> CuResult<()> {
    if mode.is_null() {
        return Err(CuError::INVALID_VALUE);
    }
    // SAFETY: checked non-null; the caller passes a readable and writable mode.
    let new = unsafe { mode.read() };
    if new > 2 {
        return Err(CuError::INVALID_VALUE);
    }
    let old = MODE.with(|m| m.replace(new));
    // SAFETY: as above.
    unsafe { mode.write(old) };
    Ok(())
}
