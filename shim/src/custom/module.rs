//! Module and library loading (the image is sized and read in the client, then shipped), the
//! CUkernel = CUfunction identity, and names.

use crate::rt;
use rgpu_protocol::error::{CuError, CuResult};
use rgpu_protocol::image::{self, ImageKind};
use rgpu_protocol::messages::*;
use std::collections::HashMap;
use std::ffi::{c_char, c_void, CStr, CString};
use std::sync::{LazyLock, Mutex};

/// Largest image the shim will ship.
const MAX_IMAGE: usize = 1 << 30;

const JIT_INFO_LOG_BUFFER: i32 = 3;
const JIT_INFO_LOG_BUFFER_SIZE_BYTES: i32 = 4;
const JIT_ERROR_LOG_BUFFER: i32 = 5;
const JIT_ERROR_LOG_BUFFER_SIZE_BYTES: i32 = 6;

/// Reads the bytes of the image at `p`.
///
/// # Safety
/// `p` must point to a PTX string, fatbin, fatbin wrapper or ELF image.
unsafe fn image_bytes(p: *const c_void) -> CuResult<Vec<u8>> {
    if p.is_null() {
        return Err(CuError::INVALID_VALUE);
    }
    let mut p = p as *const u8;
    // SAFETY: caller contract; image_size reads only what the format declares.
    let (mut kind, mut n) = unsafe { image::image_size(p, MAX_IMAGE) }.map_err(|e| {
        tracing::warn!("rgpu: cannot read the module image: {e}");
        CuError::INVALID_IMAGE
    })?;
    if kind == ImageKind::FatbinWrapper {
        // SAFETY: a wrapper's `data` points to the fatbin it wraps.
        p = unsafe { image::wrapper_fatbin(p) }.map_err(|e| {
            tracing::warn!("rgpu: {e}");
            CuError::NOT_SUPPORTED
        })?;
        // SAFETY: as above.
        (kind, n) = unsafe { image::image_size(p, MAX_IMAGE) }.map_err(|e| {
            tracing::warn!("rgpu: cannot read the module image: {e}");
            CuError::INVALID_IMAGE
        })?;
    }
    let _ = kind;
    // SAFETY: image_size established that `n` bytes at `p` belong to the image.
    Ok(unsafe { std::slice::from_raw_parts(p, n) }.to_vec())
}

fn load(image: Vec<u8>, library: bool) -> Result<u64, (CuError, String)> {
    // A library belongs to no context: with several servers it is loaded on each, and the
    // program's handle stands for all the copies (its kernels run wherever they are launched).
    if library {
        if let Some(s) = crate::rt::multi().map_err(|e| (e, String::new()))? {
            return crate::multi::load_everywhere(&s, |k| {
                load_with(&image, library, |req| crate::multi::call_on(&s, k, 0, &req))
            });
        }
    }
    load_with(&image, library, rt::call)
}

/// Loads `image` through `call` (asking by hash first).
fn load_with(
    image: &[u8],
    library: bool,
    call: impl Fn(Request) -> CuResult<Reply>,
) -> Result<u64, (CuError, String)> {
    let hash = image::content_hash(image);
    let send = |image: Vec<u8>| match call(Request::ModuleLoad(ModuleLoadReq {
        hash: hash.clone(),
        image,
        library,
    })) {
        Ok(Reply::ModuleLoad(r)) => Ok(r),
        Ok(_) => Err((rt::mismatch("cuModuleLoadData"), String::new())),
        Err(e) => Err((e, String::new())),
    };
    // Ask by hash first: the server may have the image already (same program, other process).
    let mut rep = send(Vec::new())?;
    if rep.error == image::NEED_IMAGE {
        rep = send(image.to_vec())?;
    }
    match CuError::from_raw(rep.error) {
        None => Ok(rep.module),
        Some(e) => {
            if !rep.log.is_empty() {
                tracing::warn!("rgpu: module load failed: {}", rep.log);
            }
            Err((e, rep.log))
        }
    }
}

unsafe fn write_handle(out: *mut *mut c_void, h: u64) -> CuResult<()> {
    if out.is_null() {
        return Err(CuError::INVALID_VALUE);
    }
    // SAFETY: checked non-null; caller-owned slot.
    unsafe { out.write(h as *mut c_void) };
    Ok(())
}

pub unsafe fn cu_module_load_data(module: *mut *mut c_void, image: *const c_void) -> CuResult<()> {
    if module.is_null() {
        return Err(CuError::INVALID_VALUE);
    }
    // SAFETY: caller contract.
    let bytes = unsafe { image_bytes(image) }?;
    let h = load(bytes, false).map_err(|e| e.0)?;
    // SAFETY: checked non-null.
    unsafe { write_handle(module, h) }
}

/// Writes `text` into a JIT log buffer option pair, if the caller passed one.
unsafe fn fill_log(
    num: u32,
    options: *mut i32,
    values: *mut *mut c_void,
    buf_opt: i32,
    size_opt: i32,
    text: &str,
) {
    if options.is_null() || values.is_null() {
        return;
    }
    let mut buf: *mut c_char = std::ptr::null_mut();
    let mut size = 0usize;
    let mut size_slot = None;
    for i in 0..num as usize {
        // SAFETY: the caller passes `num` options and values.
        let (o, v) = unsafe { (*options.add(i), values.add(i)) };
        if o == buf_opt {
            // SAFETY: as above.
            buf = unsafe { *v } as *mut c_char;
        } else if o == size_opt {
            // SAFETY: the size option's value is an unsigned int stored in the pointer slot.
            size = unsafe { *v } as usize & 0xffff_ffff;
            size_slot = Some(v);
        }
    }
    if buf.is_null() || size == 0 {
        return;
    }
    let n = text.len().min(size - 1);
    // SAFETY: the caller's buffer holds `size` bytes.
    unsafe {
        std::ptr::copy_nonoverlapping(text.as_ptr(), buf as *mut u8, n);
        *buf.add(n) = 0;
    }
    if let Some(slot) = size_slot {
        // SAFETY: the driver reports the bytes written through the size option's slot.
        unsafe { slot.write((n + 1) as *mut c_void) };
    }
}

pub unsafe fn cu_module_load_data_ex(
    module: *mut *mut c_void,
    image: *const c_void,
    num_options: u32,
    options: *mut i32,
    option_values: *mut *mut c_void,
) -> CuResult<()> {
    if module.is_null() || (num_options > 0 && (options.is_null() || option_values.is_null())) {
        return Err(CuError::INVALID_VALUE);
    }
    // SAFETY: caller contract.
    let bytes = unsafe { image_bytes(image) }?;
    match load(bytes, false) {
        Ok(h) => {
            // SAFETY: caller contract.
            unsafe {
                fill_log(
                    num_options,
                    options,
                    option_values,
                    JIT_INFO_LOG_BUFFER,
                    JIT_INFO_LOG_BUFFER_SIZE_BYTES,
                    "",
                )
            };
            // SAFETY: checked non-null.
            unsafe { write_handle(module, h) }
        }
        Err((e, log)) => {
            // SAFETY: caller contract.
            unsafe {
                fill_log(
                    num_options,
                    options,
                    option_values,
                    JIT_ERROR_LOG_BUFFER,
                    JIT_ERROR_LOG_BUFFER_SIZE_BYTES,
                    &log,
                )
            };
            Err(e)
        }
    }
}

pub unsafe fn cu_module_load_fat_binary(
    module: *mut *mut c_void,
    fat_cubin: *const c_void,
) -> CuResult<()> {
    // SAFETY: same contract.
    unsafe { cu_module_load_data(module, fat_cubin) }
}

fn read_file(fname: *const c_char) -> CuResult<Vec<u8>> {
    if fname.is_null() {
        return Err(CuError::INVALID_VALUE);
    }
    // SAFETY: checked non-null; a NUL-terminated path (CUDA API contract).
    let path = unsafe { CStr::from_ptr(fname) }
        .to_string_lossy()
        .to_string();
    std::fs::read(&path).map_err(|e| {
        tracing::warn!("rgpu: cannot read module file {path}: {e}");
        CuError::FILE_NOT_FOUND
    })
}

pub unsafe fn cu_module_load(module: *mut *mut c_void, fname: *const c_char) -> CuResult<()> {
    if module.is_null() {
        return Err(CuError::INVALID_VALUE);
    }
    let bytes = read_file(fname)?;
    let h = load(bytes, false).map_err(|e| e.0)?;
    // SAFETY: checked non-null.
    unsafe { write_handle(module, h) }
}

#[allow(clippy::too_many_arguments)]
pub unsafe fn cu_library_load_data(
    library: *mut *mut c_void,
    code: *const c_void,
    _jit_options: *mut i32,
    _jit_option_values: *mut *mut c_void,
    _num_jit_options: u32,
    _library_options: *mut i32,
    _library_option_values: *mut *mut c_void,
    _num_library_options: u32,
) -> CuResult<()> {
    if library.is_null() {
        return Err(CuError::INVALID_VALUE);
    }
    // SAFETY: caller contract.
    let bytes = unsafe { image_bytes(code) }?;
    let h = load(bytes, true).map_err(|e| e.0)?;
    // SAFETY: checked non-null.
    unsafe { write_handle(library, h) }
}

#[allow(clippy::too_many_arguments)]
pub unsafe fn cu_library_load_from_file(
    library: *mut *mut c_void,
    file_name: *const c_char,
    _jit_options: *mut i32,
    _jit_option_values: *mut *mut c_void,
    _num_jit_options: u32,
    _library_options: *mut i32,
    _library_option_values: *mut *mut c_void,
    _num_library_options: u32,
) -> CuResult<()> {
    if library.is_null() {
        return Err(CuError::INVALID_VALUE);
    }
    let bytes = read_file(file_name)?;
    let h = load(bytes, true).map_err(|e| e.0)?;
    // SAFETY: checked non-null.
    unsafe { write_handle(library, h) }
}

pub unsafe fn cu_kernel_get_function(func: *mut *mut c_void, kernel: *mut c_void) -> CuResult<()> {
    if kernel.is_null() {
        return Err(CuError::INVALID_HANDLE);
    }
    // SAFETY: checked by write_handle.
    unsafe { write_handle(func, kernel as u64) }
}

pub unsafe fn cu_library_get_module(
    module: *mut *mut c_void,
    library: *mut c_void,
) -> CuResult<()> {
    if library.is_null() {
        return Err(CuError::INVALID_HANDLE);
    }
    // SAFETY: checked by write_handle.
    unsafe { write_handle(module, library as u64) }
}

pub unsafe fn cu_kernel_get_attribute(
    value: *mut i32,
    attrib: i32,
    kernel: *mut c_void,
    _dev: i32,
) -> CuResult<()> {
    if value.is_null() {
        return Err(CuError::INVALID_VALUE);
    }
    let Reply::FuncGetAttribute(r) = rt::call(Request::FuncGetAttribute(FuncGetAttributeReq {
        attrib,
        func: kernel as u64,
    }))?
    else {
        return Err(rt::mismatch("cuKernelGetAttribute"));
    };
    // SAFETY: checked non-null.
    unsafe { value.write(r.value) };
    Ok(())
}

pub unsafe fn cu_kernel_set_attribute(
    attrib: i32,
    value: i32,
    kernel: *mut c_void,
    _dev: i32,
) -> CuResult<()> {
    // SAFETY: same contract.
    unsafe { cu_func_set_attribute(kernel, attrib, value) }
}

pub unsafe fn cu_func_set_attribute(func: *mut c_void, attrib: i32, value: i32) -> CuResult<()> {
    rt::call(Request::FuncSetAttribute(FuncSetAttributeReq {
        func: func as u64,
        attrib,
        value,
    }))?;
    // Launch checks use the function's limits: fetch them again at the next launch.
    crate::custom::forget_layout(func as u64);
    Ok(())
}

pub unsafe fn cu_kernel_set_cache_config(
    kernel: *mut c_void,
    config: i32,
    _dev: i32,
) -> CuResult<()> {
    rt::call(Request::FuncSetCacheConfig(FuncSetCacheConfigReq {
        func: kernel as u64,
        config,
    }))?;
    Ok(())
}

static NAMES: LazyLock<Mutex<HashMap<u64, &'static CStr>>> = LazyLock::new(Default::default);

pub unsafe fn cu_func_get_name(name: *mut *const c_char, func: *mut c_void) -> CuResult<()> {
    if name.is_null() {
        return Err(CuError::INVALID_VALUE);
    }
    let key = func as u64;
    let cached = NAMES
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&key)
        .copied();
    let s = match cached {
        Some(s) => s,
        None => {
            let Reply::FuncName(r) = rt::call(Request::FuncName(FuncNameReq { func: key }))? else {
                return Err(rt::mismatch("cuFuncGetName"));
            };
            let s: &'static CStr =
                Box::leak(CString::new(r.name).unwrap_or_default().into_boxed_c_str());
            NAMES
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(key, s);
            s
        }
    };
    // SAFETY: checked non-null.
    unsafe { name.write(s.as_ptr()) };
    Ok(())
}

pub unsafe fn cu_kernel_get_name(name: *mut *const c_char, kernel: *mut c_void) -> CuResult<()> {
    // SAFETY: same contract.
    unsafe { cu_func_get_name(name, kernel) }
}
