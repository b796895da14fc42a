//! Kernel launches: the parameter layout of each function is fetched from the server once and
//! cached, so `kernelParams` (an array of pointers to each argument) can be packed into the
//! kernel's parameter buffer; `extra` buffers are forwarded as they are.

use super::pipeline::check_stream;
use crate::rt;
use rgpu_protocol::error::{CuError, CuResult};
use rgpu_protocol::messages::*;
use std::collections::HashMap;
use std::ffi::c_void;
use std::sync::{Arc, LazyLock, Mutex};

const LAUNCH_PARAM_END: usize = 0;
const LAUNCH_PARAM_BUFFER_POINTER: usize = 1;
const LAUNCH_PARAM_BUFFER_SIZE: usize = 2;
const LAUNCH_ATTRIBUTE_COOPERATIVE: u32 = 2;

struct Layout {
    offsets: Vec<u64>,
    sizes: Vec<u64>,
    total: u64,
    max_threads: u32,
    max_dyn_smem: u32,
}

/// (process id, function handle) → layout; the pid keeps a forked child from using the parent's.
type LayoutCache = Mutex<HashMap<(u32, u64), Arc<Layout>>>;

static LAYOUTS: LazyLock<LayoutCache> = LazyLock::new(Default::default);

fn layout(func: u64) -> CuResult<Arc<Layout>> {
    let key = (crate::rt::pid(), func);
    if let Some(l) = LAYOUTS.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
        return Ok(l.clone());
    }
    let Reply::FuncLayout(r) = rt::call(Request::FuncLayout(FuncLayoutReq { func }))? else {
        return Err(rt::mismatch("cuLaunchKernel"));
    };
    if r.offsets.len() != r.sizes.len()
        || r.offsets
            .iter()
            .zip(&r.sizes)
            .any(|(o, s)| o.checked_add(*s).is_none_or(|e| e > r.total))
    {
        return Err(CuError::UNKNOWN);
    }
    let l = Arc::new(Layout {
        offsets: r.offsets,
        sizes: r.sizes,
        total: r.total,
        max_threads: r.max_threads,
        max_dyn_smem: r.max_dyn_smem,
    });
    LAYOUTS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(key, l.clone());
    Ok(l)
}

/// Drops the cached layout and limits of `func` (its attributes changed).
pub fn forget_layout(func: u64) {
    LAYOUTS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&(crate::rt::pid(), func));
}

/// Packs the arguments into the kernel's parameter buffer.
unsafe fn pack(
    func: u64,
    kernel_params: *mut *mut c_void,
    extra: *mut *mut c_void,
) -> CuResult<Vec<u8>> {
    if !kernel_params.is_null() && !extra.is_null() {
        return Err(CuError::INVALID_VALUE);
    }
    if !extra.is_null() {
        let mut buf: *const u8 = std::ptr::null();
        let mut size: Option<usize> = None;
        let mut i = 0;
        loop {
            // SAFETY: `extra` is a key/value array terminated by CU_LAUNCH_PARAM_END.
            let key = unsafe { *extra.add(i) } as usize;
            if key == LAUNCH_PARAM_END {
                break;
            }
            // SAFETY: as above; every key but END is followed by its value.
            let val = unsafe { *extra.add(i + 1) };
            match key {
                LAUNCH_PARAM_BUFFER_POINTER => buf = val as *const u8,
                LAUNCH_PARAM_BUFFER_SIZE => {
                    if val.is_null() {
                        return Err(CuError::INVALID_VALUE);
                    }
                    // SAFETY: the size value points to a size_t.
                    size = Some(unsafe { *(val as *const usize) });
                }
                _ => return Err(CuError::INVALID_VALUE),
            }
            i += 2;
            if i > 64 {
                return Err(CuError::INVALID_VALUE);
            }
        }
        let l = layout(func)?;
        let n = size.ok_or(CuError::INVALID_VALUE)?;
        if buf.is_null() && n > 0 || n as u64 != l.total {
            return Err(CuError::INVALID_VALUE);
        }
        // SAFETY: the caller's buffer holds `n` bytes.
        return Ok(unsafe { rt::bytes_in(buf as *const c_void, n) }.to_vec());
    }
    let l = layout(func)?;
    let mut out = vec![0u8; l.total as usize];
    if l.offsets.is_empty() {
        return Ok(out);
    }
    if kernel_params.is_null() {
        return Err(CuError::INVALID_VALUE);
    }
    for (i, (off, size)) in l.offsets.iter().zip(&l.sizes).enumerate() {
        // SAFETY: kernelParams has one pointer per kernel parameter (CUDA API contract).
        let p = unsafe { *kernel_params.add(i) };
        if p.is_null() {
            return Err(CuError::INVALID_VALUE);
        }
        // SAFETY: each pointer refers to an argument of the parameter's size.
        let src = unsafe { std::slice::from_raw_parts(p as *const u8, *size as usize) };
        out[*off as usize..(*off + *size) as usize].copy_from_slice(src);
    }
    Ok(out)
}

/// Launch limits of a context's device, fetched once per context.
#[derive(Clone, Copy)]
struct Limits {
    max_threads: u32,
    block: [u32; 3],
    grid: [u32; 3],
    smem_optin: u32,
}

type LimitsCache = Mutex<HashMap<(u32, u64), Limits>>;
static LIMITS: LazyLock<LimitsCache> = LazyLock::new(Default::default);

fn limits(ctx: u64) -> CuResult<Limits> {
    let key = (crate::rt::pid(), ctx);
    if let Some(l) = LIMITS.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
        return Ok(*l);
    }
    let Reply::CtxInfo(info) = rt::call(Request::CtxInfo(CtxInfoReq { ctx }))? else {
        return Err(rt::mismatch("cuLaunchKernel"));
    };
    let attr = |attrib: i32| -> CuResult<u32> {
        match rt::call(Request::DeviceGetAttribute(DeviceGetAttributeReq {
            attrib,
            dev: info.device,
        }))? {
            Reply::DeviceGetAttribute(r) => Ok(r.value.max(0) as u32),
            _ => Err(rt::mismatch("cuLaunchKernel")),
        }
    };
    let l = Limits {
        max_threads: attr(1)?,
        block: [attr(2)?, attr(3)?, attr(4)?],
        grid: [attr(5)?, attr(6)?, attr(7)?],
        smem_optin: attr(97)?,
    };
    LIMITS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(key, l);
    Ok(l)
}

/// Checks a launch configuration against the device's limits, so that an invalid one fails at
/// once even though launches are pipelined.
fn check_config(func: u64, grid: [u32; 3], block: [u32; 3], shared_mem: u32) -> CuResult<()> {
    let ctx = rt::current_ctx();
    if ctx == 0 {
        return Err(CuError::INVALID_CONTEXT);
    }
    let l = limits(ctx)?;
    let threads = block.iter().map(|&b| b as u64).product::<u64>();
    if grid.contains(&0)
        || block.contains(&0)
        || threads > l.max_threads as u64
        || (0..3).any(|i| block[i] > l.block[i] || grid[i] > l.grid[i])
        || shared_mem > l.smem_optin
    {
        return Err(CuError::INVALID_VALUE);
    }
    // The function's own limits: launch bounds and its dynamic shared memory allowance.
    let f = layout(func)?;
    if threads > f.max_threads as u64 || shared_mem > f.max_dyn_smem {
        return Err(CuError::INVALID_VALUE);
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
unsafe fn launch(
    f: *mut c_void,
    grid: [u32; 3],
    block: [u32; 3],
    shared_mem: u32,
    stream: *mut c_void,
    kernel_params: *mut *mut c_void,
    extra: *mut *mut c_void,
    cooperative: bool,
) -> CuResult<()> {
    if f.is_null() {
        return Err(CuError::INVALID_HANDLE);
    }
    check_config(f as u64, grid, block, shared_mem)?;
    check_stream(stream as u64)?;
    // SAFETY: caller contract.
    let params = unsafe { pack(f as u64, kernel_params, extra) }?;
    // Pipelined: configuration and parameters were checked here; anything the server finds
    // wrong is reported by this thread's next call that waits.
    rt::call_async(Request::LaunchKernel(LaunchKernelReq {
        func: f as u64,
        grid_x: grid[0],
        grid_y: grid[1],
        grid_z: grid[2],
        block_x: block[0],
        block_y: block[1],
        block_z: block[2],
        shared_mem,
        stream: stream as u64,
        params,
        cooperative,
    }))?;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
pub unsafe fn cu_launch_kernel(
    f: *mut c_void,
    grid_x: u32,
    grid_y: u32,
    grid_z: u32,
    block_x: u32,
    block_y: u32,
    block_z: u32,
    shared_mem: u32,
    stream: *mut c_void,
    kernel_params: *mut *mut c_void,
    extra: *mut *mut c_void,
) -> CuResult<()> {
    // SAFETY: same contract.
    unsafe {
        launch(
            f,
            [grid_x, grid_y, grid_z],
            [block_x, block_y, block_z],
            shared_mem,
            stream,
            kernel_params,
            extra,
            false,
        )
    }
}

#[allow(clippy::too_many_arguments)]
pub unsafe fn cu_launch_cooperative_kernel(
    f: *mut c_void,
    grid_x: u32,
    grid_y: u32,
    grid_z: u32,
    block_x: u32,
    block_y: u32,
    block_z: u32,
    shared_mem: u32,
    stream: *mut c_void,
    kernel_params: *mut *mut c_void,
) -> CuResult<()> {
    // SAFETY: same contract.
    unsafe {
        launch(
            f,
            [grid_x, grid_y, grid_z],
            [block_x, block_y, block_z],
            shared_mem,
            stream,
            kernel_params,
            std::ptr::null_mut(),
            true,
        )
    }
}

/// `CUlaunchConfig`.
#[repr(C)]
struct LaunchConfig {
    grid: [u32; 3],
    block: [u32; 3],
    shared_mem: u32,
    stream: *mut c_void,
    attrs: *const LaunchAttribute,
    num_attrs: u32,
}

/// `CUlaunchAttribute`: id, padding, 64-byte value union.
#[repr(C)]
struct LaunchAttribute {
    id: u32,
    pad: [u8; 4],
    value: [u8; 64],
}

pub unsafe fn cu_launch_kernel_ex(
    config: *const c_void,
    f: *mut c_void,
    kernel_params: *mut *mut c_void,
    extra: *mut *mut c_void,
) -> CuResult<()> {
    if config.is_null() {
        return Err(CuError::INVALID_VALUE);
    }
    // SAFETY: non-null; points to a CUlaunchConfig (CUDA API contract).
    let c = unsafe { &*(config as *const LaunchConfig) };
    let mut cooperative = false;
    if c.num_attrs > 0 {
        if c.attrs.is_null() {
            return Err(CuError::INVALID_VALUE);
        }
        for i in 0..c.num_attrs as usize {
            // SAFETY: `attrs` has `num_attrs` entries.
            let a = unsafe { &*c.attrs.add(i) };
            if a.id == LAUNCH_ATTRIBUTE_COOPERATIVE && a.value[..4] != [0, 0, 0, 0] {
                cooperative = true;
            }
        }
    }
    // SAFETY: same contract.
    unsafe {
        launch(
            f,
            c.grid,
            c.block,
            c.shared_mem,
            c.stream,
            kernel_params,
            extra,
            cooperative,
        )
    }
}

/// `cuOccupancyMaxPotentialBlockSize`: the block size with the highest occupancy, asking the
/// program's callback (if any) for each candidate's dynamic shared memory.
pub unsafe fn cu_occupancy_max_potential_block_size(
    min_grid_size: *mut i32,
    block_size: *mut i32,
    func: *mut c_void,
    smem_fn: *mut c_void,
    dynamic_smem: usize,
    block_size_limit: i32,
) -> CuResult<()> {
    if min_grid_size.is_null() || block_size.is_null() || func.is_null() {
        return Err(CuError::INVALID_VALUE);
    }
    let f = layout(func as u64)?;
    let ctx = rt::current_ctx();
    if ctx == 0 {
        return Err(CuError::INVALID_CONTEXT);
    }
    let Reply::CtxInfo(info) = rt::call(Request::CtxInfo(CtxInfoReq { ctx }))? else {
        return Err(rt::mismatch("cuOccupancyMaxPotentialBlockSize"));
    };
    let Reply::DeviceGetAttribute(sms) =
        rt::call(Request::DeviceGetAttribute(DeviceGetAttributeReq {
            attrib: 16, // MULTIPROCESSOR_COUNT
            dev: info.device,
        }))?
    else {
        return Err(rt::mismatch("cuOccupancyMaxPotentialBlockSize"));
    };
    let mut limit = f.max_threads as i32;
    if block_size_limit > 0 {
        limit = limit.min(block_size_limit);
    }
    // SAFETY: a non-null callback is a CUoccupancyB2DSize supplied by the program.
    let cb: Option<extern "C" fn(i32) -> usize> =
        (!smem_fn.is_null()).then(|| unsafe { std::mem::transmute(smem_fn) });
    let (mut best, mut best_blocks, mut best_threads) = (0i32, 0i32, -1i64);
    let mut b = limit - limit % 32;
    while b >= 32 {
        let smem = cb.map_or(dynamic_smem, |c| c(b));
        if smem <= f.max_dyn_smem as usize {
            let Reply::OccupancyMaxActiveBlocks(r) = rt::call(Request::OccupancyMaxActiveBlocks(
                OccupancyMaxActiveBlocksReq {
                    func: func as u64,
                    block_size: b,
                    dynamic_smem: smem as u64,
                },
            ))?
            else {
                return Err(rt::mismatch("cuOccupancyMaxPotentialBlockSize"));
            };
            let threads = r.num_blocks as i64 * b as i64;
            if threads > best_threads {
                (best, best_blocks, best_threads) = (b, r.num_blocks, threads);
            }
        }
        b -= 32;
    }
    if best == 0 {
        return Err(CuError::INVALID_VALUE);
    }
    // SAFETY: checked non-null.
    unsafe {
        block_size.write(best);
        min_grid_size.write(best_blocks * sms.value);
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
pub unsafe fn cu_occupancy_max_potential_block_size_with_flags(
    min_grid_size: *mut i32,
    block_size: *mut i32,
    func: *mut c_void,
    smem_fn: *mut c_void,
    dynamic_smem: usize,
    block_size_limit: i32,
    flags: u32,
) -> CuResult<()> {
    if flags > 1 {
        return Err(CuError::INVALID_VALUE);
    }
    // SAFETY: same contract.
    unsafe {
        cu_occupancy_max_potential_block_size(
            min_grid_size,
            block_size,
            func,
            smem_fn,
            dynamic_smem,
            block_size_limit,
        )
    }
}
