//! Initialisation, versions, error texts and `cuGetProcAddress`.

use crate::generated::exports::{symbol_address, PROC_VERSIONS};
use crate::rt;
use rgpu_protocol::error::{CuError, CuResult};
use rgpu_protocol::messages::{InitReq, Reply, Request};
use std::collections::HashMap;
use std::ffi::{c_char, c_void, CStr, CString};
use std::sync::{LazyLock, Mutex};

/// The CUDA version whose API the shim implements (the pinned cuda.h).
pub const DRIVER_VERSION: i32 = 13050;

const PROC_LEGACY: u64 = 1;
const PROC_PER_THREAD: u64 = 2;
const STATUS_SUCCESS: i32 = 0;
const STATUS_SYMBOL_NOT_FOUND: i32 = 1;
const STATUS_VERSION_NOT_SUFFICIENT: i32 = 2;

pub unsafe fn cu_init(flags: u32) -> CuResult<()> {
    if flags != 0 {
        return Err(CuError::INVALID_VALUE);
    }
    let Reply::Init(_) = rt::call_in(0, Request::Init(InitReq { flags }))? else {
        return Err(rt::mismatch("cuInit"));
    };
    rt::set_initialized();
    Ok(())
}

pub unsafe fn cu_driver_get_version(version: *mut i32) -> CuResult<()> {
    if version.is_null() {
        return Err(CuError::INVALID_VALUE);
    }
    // SAFETY: checked non-null; the caller passes a writable int.
    unsafe { version.write(reported_version()) };
    Ok(())
}

/// The driver version programs are told: the server's (a real GPU's driver may be older than
/// the API the shim implements; with several servers the oldest), at most the shim's own; the
/// shim's when there is no server.
pub fn reported_version() -> i32 {
    rt::server_driver_version()
        .filter(|&v| v > 0)
        .map_or(DRIVER_VERSION, |v| v.min(DRIVER_VERSION))
}

fn static_cstr(cache: &Mutex<HashMap<u32, &'static CStr>>, code: u32, text: &str) -> *const c_char {
    let mut g = cache.lock().unwrap_or_else(|e| e.into_inner());
    g.entry(code)
        .or_insert_with(|| Box::leak(CString::new(text).unwrap_or_default().into_boxed_c_str()))
        .as_ptr()
}

static STRINGS: LazyLock<Mutex<HashMap<u32, &'static CStr>>> = LazyLock::new(Default::default);
static NAMES: LazyLock<Mutex<HashMap<u32, &'static CStr>>> = LazyLock::new(Default::default);

pub unsafe fn cu_get_error_string(error: u32, out: *mut *const c_char) -> CuResult<()> {
    if out.is_null() {
        return Err(CuError::INVALID_VALUE);
    }
    let Some(text) = CuError::description_of(error) else {
        // SAFETY: checked non-null.
        unsafe { out.write(std::ptr::null()) };
        return Err(CuError::INVALID_VALUE);
    };
    // SAFETY: checked non-null.
    unsafe { out.write(static_cstr(&STRINGS, error, text)) };
    Ok(())
}

pub unsafe fn cu_get_error_name(error: u32, out: *mut *const c_char) -> CuResult<()> {
    if out.is_null() {
        return Err(CuError::INVALID_VALUE);
    }
    let Some(name) = CuError::name_of(error) else {
        // SAFETY: checked non-null.
        unsafe { out.write(std::ptr::null()) };
        return Err(CuError::INVALID_VALUE);
    };
    // SAFETY: checked non-null.
    unsafe { out.write(static_cstr(&NAMES, error, name)) };
    Ok(())
}

/// Resolves `name` for `version` and `flags` to one of the shim's exported symbols.
pub fn resolve_proc(name: &str, version: i32, flags: u64) -> Result<String, i32> {
    let start = PROC_VERSIONS.partition_point(|e| e.0 < name);
    let entries: Vec<(u32, u8)> = PROC_VERSIONS[start..]
        .iter()
        .take_while(|e| e.0 == name)
        .map(|e| (e.1, e.2))
        .collect();
    if entries.is_empty() {
        return if symbol_address(name).is_some() {
            Ok(name.to_string())
        } else {
            Err(STATUS_SYMBOL_NOT_FOUND)
        };
    }
    let version = version.max(0) as u32;
    let plain: Vec<u32> = entries.iter().filter(|e| e.1 == 0).map(|e| e.0).collect();
    let sym_for = |idx: usize| {
        if idx == 0 {
            name.to_string()
        } else {
            format!("{name}_v{}", idx + 1)
        }
    };
    let Some(idx) = plain.iter().rposition(|&v| v <= version) else {
        return Err(STATUS_VERSION_NOT_SUFFICIENT);
    };
    // A version step without a symbol of its own falls back to the previous one.
    let mut i = idx;
    while i > 0 && symbol_address(&sym_for(i)).is_none() {
        i -= 1;
    }
    let base = sym_for(i);
    if flags & PROC_PER_THREAD != 0 && flags & PROC_LEGACY == 0 {
        for &(v, k) in entries.iter().rev() {
            if k == 0 || v > version {
                continue;
            }
            let bidx = plain.iter().rposition(|&p| p <= v).unwrap_or(0);
            let suffix = if k == 1 { "_ptds" } else { "_ptsz" };
            let cand = format!("{}{suffix}", sym_for(bidx));
            if symbol_address(&cand).is_some() {
                return Ok(cand);
            }
        }
    }
    Ok(base)
}

pub unsafe fn cu_get_proc_address(
    symbol: *const c_char,
    pfn: *mut *mut c_void,
    cuda_version: i32,
    flags: u64,
) -> CuResult<()> {
    // SAFETY: same contract.
    unsafe { cu_get_proc_address_v2(symbol, pfn, cuda_version, flags, std::ptr::null_mut()) }
}

pub unsafe fn cu_get_proc_address_v2(
    symbol: *const c_char,
    pfn: *mut *mut c_void,
    cuda_version: i32,
    flags: u64,
    status: *mut i32,
) -> CuResult<()> {
    if symbol.is_null() || pfn.is_null() {
        return Err(CuError::INVALID_VALUE);
    }
    if flags & !(PROC_LEGACY | PROC_PER_THREAD) != 0 {
        return Err(CuError::INVALID_VALUE);
    }
    if cuda_version > DRIVER_VERSION {
        // Documented: a CUDA version newer than the driver's is an invalid value.
        // SAFETY: checked non-null.
        unsafe { pfn.write(std::ptr::null_mut()) };
        return Err(CuError::INVALID_VALUE);
    }
    // SAFETY: checked non-null; the caller passes a NUL-terminated name.
    let name = unsafe { CStr::from_ptr(symbol) }.to_str().unwrap_or("");
    let set_status = |s: i32| {
        if !status.is_null() {
            // SAFETY: non-null, caller-owned.
            unsafe { status.write(s) };
        }
    };
    match resolve_proc(name, cuda_version, flags) {
        Ok(sym) => {
            let p = symbol_address(&sym).expect("resolve_proc returns exported symbols");
            // SAFETY: checked non-null.
            unsafe { pfn.write(p as *mut c_void) };
            set_status(STATUS_SUCCESS);
            Ok(())
        }
        Err(s) => {
            // SAFETY: checked non-null.
            unsafe { pfn.write(std::ptr::null_mut()) };
            set_status(s);
            Err(CuError::NOT_FOUND)
        }
    }
}

/// `cuProfilerStart`: no profiling tool is attached to the remote device; nothing to start.
pub unsafe fn cu_profiler_start() -> CuResult<()> {
    Ok(())
}

/// `cuProfilerStop`: see [`cu_profiler_start`].
pub unsafe fn cu_profiler_stop() -> CuResult<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_and_stream_flavours() {
        assert_eq!(
            resolve_proc("cuCtxCreate", 13050, 0).unwrap(),
            "cuCtxCreate_v4"
        );
        assert_eq!(
            resolve_proc("cuCtxCreate", 11040, 0).unwrap(),
            "cuCtxCreate_v3"
        );
        assert_eq!(
            resolve_proc("cuCtxCreate", 3020, 0).unwrap(),
            "cuCtxCreate_v2"
        );
        assert_eq!(
            resolve_proc("cuMemcpyHtoD", 12000, 0).unwrap(),
            "cuMemcpyHtoD_v2"
        );
        assert_eq!(
            resolve_proc("cuMemcpyHtoD", 12000, 2).unwrap(),
            "cuMemcpyHtoD_v2_ptds"
        );
        assert_eq!(
            resolve_proc("cuLaunchKernel", 12000, 2).unwrap(),
            "cuLaunchKernel_ptsz"
        );
        assert_eq!(
            resolve_proc("cuLaunchKernel", 12000, 1).unwrap(),
            "cuLaunchKernel"
        );
        assert_eq!(
            resolve_proc("cuDeviceGetUuid", 9020, 0).unwrap(),
            "cuDeviceGetUuid"
        );
        assert_eq!(
            resolve_proc("cuDeviceGetUuid", 11040, 0).unwrap(),
            "cuDeviceGetUuid_v2"
        );
        assert_eq!(
            resolve_proc("cuCtxGetDevice", 12090, 0).unwrap(),
            "cuCtxGetDevice"
        );
        assert_eq!(
            resolve_proc("cuCtxGetDevice", 13000, 0).unwrap(),
            "cuCtxGetDevice_v2"
        );
        assert_eq!(
            resolve_proc("cuStreamGetCaptureInfo", 13000, 2).unwrap(),
            "cuStreamGetCaptureInfo_v3_ptsz"
        );
        assert_eq!(
            resolve_proc("cuNoSuchThing", 13000, 0),
            Err(STATUS_SYMBOL_NOT_FOUND)
        );
        assert_eq!(
            resolve_proc("cuLibraryLoadData", 11000, 0),
            Err(STATUS_VERSION_NOT_SUFFICIENT)
        );
    }
}
