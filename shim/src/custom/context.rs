//! Explicit contexts and the per-thread context stack. The stack lives in the client (CUDA's
//! current context is per host thread); every call carries the current context to the server.

use crate::rt;
use rgpu_protocol::error::{CuError, CuResult};
use rgpu_protocol::messages::*;
use std::ffi::c_void;

fn info(ctx: u64) -> CuResult<CtxInfoRep> {
    match rt::call_in(ctx, Request::CtxInfo(CtxInfoReq { ctx }))? {
        Reply::CtxInfo(r) => Ok(r),
        _ => Err(rt::mismatch("CtxInfo")),
    }
}

fn current_or(ctx: *mut c_void) -> CuResult<u64> {
    let c = if ctx.is_null() {
        rt::current_ctx()
    } else {
        ctx as u64
    };
    if c == 0 {
        return Err(CuError::INVALID_CONTEXT);
    }
    Ok(c)
}

unsafe fn create(pctx: *mut *mut c_void, flags: u32, dev: i32) -> CuResult<()> {
    if pctx.is_null() {
        return Err(CuError::INVALID_VALUE);
    }
    let Reply::CtxCreate(r) = rt::call_in(0, Request::CtxCreate(CtxCreateReq { flags, dev }))?
    else {
        return Err(rt::mismatch("cuCtxCreate"));
    };
    rt::with_ctx_stack(|s| s.push(r.ctx));
    // SAFETY: checked non-null.
    unsafe { pctx.write(r.ctx as *mut c_void) };
    Ok(())
}

pub unsafe fn cu_ctx_create_v2(pctx: *mut *mut c_void, flags: u32, dev: i32) -> CuResult<()> {
    // SAFETY: same contract.
    unsafe { create(pctx, flags, dev) }
}

pub unsafe fn cu_ctx_create_v3(
    pctx: *mut *mut c_void,
    params: *mut c_void,
    num_params: i32,
    flags: u32,
    dev: i32,
) -> CuResult<()> {
    if !params.is_null() && num_params > 0 {
        tracing::warn!("rgpu: execution-affinity contexts are not supported");
        return Err(CuError::NOT_SUPPORTED);
    }
    // SAFETY: same contract.
    unsafe { create(pctx, flags, dev) }
}

/// `CUctxCreateParams` of CUDA 12.5+.
#[repr(C)]
struct CtxCreateParams {
    exec_affinity_params: *mut c_void,
    num_exec_affinity_params: i32,
    cig_params: *mut c_void,
}

pub unsafe fn cu_ctx_create_v4(
    pctx: *mut *mut c_void,
    params: *mut c_void,
    flags: u32,
    dev: i32,
) -> CuResult<()> {
    if !params.is_null() {
        // SAFETY: a non-null params points to a CUctxCreateParams (CUDA API contract).
        let p = unsafe { &*(params as *const CtxCreateParams) };
        if (!p.exec_affinity_params.is_null() && p.num_exec_affinity_params > 0)
            || !p.cig_params.is_null()
        {
            tracing::warn!("rgpu: execution-affinity and CIG contexts are not supported");
            return Err(CuError::NOT_SUPPORTED);
        }
    }
    // SAFETY: same contract.
    unsafe { create(pctx, flags, dev) }
}

pub unsafe fn cu_ctx_destroy_v2(ctx: *mut c_void) -> CuResult<()> {
    if ctx.is_null() {
        return Err(CuError::INVALID_VALUE);
    }
    let c = ctx as u64;
    rt::call_in(c, Request::CtxDestroy(CtxDestroyReq { ctx: c }))?;
    crate::custom::run_cls_destructors(c);
    rt::with_ctx_stack(|s| s.retain(|&x| x != c));
    Ok(())
}

pub unsafe fn cu_ctx_push_current_v2(ctx: *mut c_void) -> CuResult<()> {
    if ctx.is_null() {
        return Err(CuError::INVALID_VALUE);
    }
    info(ctx as u64)?;
    rt::with_ctx_stack(|s| s.push(ctx as u64));
    Ok(())
}

pub unsafe fn cu_ctx_pop_current_v2(pctx: *mut *mut c_void) -> CuResult<()> {
    let top = rt::with_ctx_stack(|s| s.pop()).ok_or(CuError::INVALID_CONTEXT)?;
    if !pctx.is_null() {
        // SAFETY: non-null, caller-owned.
        unsafe { pctx.write(top as *mut c_void) };
    }
    Ok(())
}

pub unsafe fn cu_ctx_set_current(ctx: *mut c_void) -> CuResult<()> {
    if ctx.is_null() {
        rt::with_ctx_stack(|s| {
            s.pop();
        });
        return Ok(());
    }
    info(ctx as u64)?;
    rt::with_ctx_stack(|s| {
        s.pop();
        s.push(ctx as u64)
    });
    Ok(())
}

pub unsafe fn cu_ctx_get_current(pctx: *mut *mut c_void) -> CuResult<()> {
    if pctx.is_null() {
        return Err(CuError::INVALID_VALUE);
    }
    // SAFETY: checked non-null.
    unsafe { pctx.write(rt::current_ctx() as *mut c_void) };
    Ok(())
}

pub unsafe fn cu_ctx_get_device(device: *mut i32) -> CuResult<()> {
    // SAFETY: same contract.
    unsafe { cu_ctx_get_device_v2(device, std::ptr::null_mut()) }
}

pub unsafe fn cu_ctx_get_device_v2(device: *mut i32, ctx: *mut c_void) -> CuResult<()> {
    if device.is_null() {
        return Err(CuError::INVALID_VALUE);
    }
    let r = info(current_or(ctx)?)?;
    // SAFETY: checked non-null.
    unsafe { device.write(r.device) };
    Ok(())
}

pub unsafe fn cu_ctx_get_flags(flags: *mut u32) -> CuResult<()> {
    if flags.is_null() {
        return Err(CuError::INVALID_VALUE);
    }
    let r = info(current_or(std::ptr::null_mut())?)?;
    // SAFETY: checked non-null.
    unsafe { flags.write(r.flags) };
    Ok(())
}

pub unsafe fn cu_ctx_get_id(ctx: *mut c_void, id: *mut u64) -> CuResult<()> {
    if id.is_null() {
        return Err(CuError::INVALID_VALUE);
    }
    let r = info(current_or(ctx)?)?;
    // SAFETY: checked non-null.
    unsafe { id.write(r.id) };
    Ok(())
}

pub unsafe fn cu_ctx_get_api_version(ctx: *mut c_void, version: *mut u32) -> CuResult<()> {
    if version.is_null() {
        return Err(CuError::INVALID_VALUE);
    }
    let r = info(current_or(ctx)?)?;
    // SAFETY: checked non-null.
    unsafe { version.write(r.api_version) };
    Ok(())
}

pub unsafe fn cu_ctx_synchronize() -> CuResult<()> {
    // SAFETY: same contract.
    unsafe { cu_ctx_synchronize_v2(std::ptr::null_mut()) }
}

pub unsafe fn cu_ctx_synchronize_v2(ctx: *mut c_void) -> CuResult<()> {
    let c = current_or(ctx)?;
    rt::call_in(c, Request::CtxSynchronize(CtxSynchronizeReq { ctx: c }))?;
    Ok(())
}
