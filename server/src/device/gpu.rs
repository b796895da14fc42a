//! The real NVIDIA driver, loaded at run time: finding the right `libcuda.so.1` (never the rgpu
//! shim), the typed entry points the GPU sessions call, and the list of GPUs.
//!
//! Entry points are looked up in the library that `cudarc::driver::sys` loads, with signatures
//! that take enums as plain integers: clients send attribute and option numbers that this
//! build may not know, and an unknown value must reach the driver (which rejects it), never
//! become an invalid Rust enum. A symbol the installed driver lacks makes its call fail with
//! `CUDA_ERROR_NOT_SUPPORTED` instead of a panic.

use rgpu_protocol::error::{CuError, CuResult};
use rgpu_protocol::messages::DEVICE_ATTRIBUTES;
use std::ffi::{c_char, c_void, CString};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Text the shim carries so that the server can tell it from NVIDIA's driver.
pub const SHIM_MARKER: &[u8] = b"rgpu-shim-not-a-driver";

/// Why the GPU backend is unavailable.
#[derive(Debug, thiserror::Error)]
pub enum GpuError {
    /// No driver library found.
    #[error("no NVIDIA driver (libcuda.so.1) found; searched: {0}")]
    NotFound(String),
    /// The named file is unusable.
    #[error("{path}: {why}")]
    Unusable {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        why: String,
    },
    /// `cuInit` or device enumeration failed.
    #[error("the NVIDIA driver at {path} failed: {call} returned {code}")]
    Driver {
        /// The driver file.
        path: PathBuf,
        /// The call that failed.
        call: &'static str,
        /// CUDA error name.
        code: String,
    },
    /// The driver works but sees no GPU.
    #[error("the NVIDIA driver at {0} reports no GPU")]
    NoGpu(PathBuf),
}

/// A loaded driver.
#[derive(Debug)]
pub struct Driver {
    /// The file loaded.
    pub path: PathBuf,
    /// `cuDriverGetVersion`.
    pub version: i32,
    /// The GPUs it reports, in its order.
    pub gpus: Vec<GpuInfo>,
}

/// What is static about one GPU.
#[derive(Debug, Clone)]
pub struct GpuInfo {
    /// Driver ordinal.
    pub ordinal: i32,
    /// Marketing name.
    pub name: String,
    /// UUID bytes.
    pub uuid: [u8; 16],
    /// PCI bus id, e.g. `0000:17:00.0`.
    pub pci_bus_id: String,
    /// Memory in bytes.
    pub total_mem: u64,
    /// `attributes[i]` is attribute `i` as clients see it, `i32::MIN` where invalid.
    pub attributes: Vec<i32>,
}

impl GpuInfo {
    /// Compute capability (major, minor).
    pub fn cc(&self) -> (i32, i32) {
        let a = |i: usize| self.attributes.get(i).copied().unwrap_or(0);
        (a(75), a(76))
    }

    /// Attribute `a` as clients see it.
    pub fn attribute(&self, a: i32) -> CuResult<i32> {
        usize::try_from(a)
            .ok()
            .and_then(|i| self.attributes.get(i))
            .copied()
            .filter(|&v| v != i32::MIN)
            .ok_or(CuError::INVALID_VALUE)
    }
}

/// Converts a driver status.
pub fn ck(r: u32) -> CuResult<()> {
    match CuError::from_raw(r) {
        None => Ok(()),
        Some(e) => Err(e),
    }
}

fn lookup<F: Copy>(name: &str) -> Option<F> {
    // SAFETY: `culib` is only reached after `load` verified that the library cudarc opens is the
    // driver file chosen here; `F` is the C signature of `name` from cuda.h with enums as integers.
    let r = std::panic::catch_unwind(|| unsafe {
        cudarc::driver::sys::culib()
            .get::<F>(name.as_bytes())
            .ok()
            .map(|s| *s)
    });
    r.ok().flatten()
}

macro_rules! driver_fns {
    ($( $name:ident ( $($arg:ident : $t:ty),* ); )*) => {
        /// Driver entry points (see the module documentation).
        #[allow(non_snake_case, clippy::too_many_arguments, clippy::missing_safety_doc)]
        pub mod drv {
            use super::*;
            $(
                /// Calls the driver function of this name.
                pub unsafe fn $name($($arg: $t),*) -> CuResult<()> {
                    type F = unsafe extern "C" fn($($t),*) -> u32;
                    static S: OnceLock<Option<F>> = OnceLock::new();
                    match S.get_or_init(|| lookup::<F>(stringify!($name))) {
                        // SAFETY: the caller upholds the C function's contract.
                        Some(f) => ck(unsafe { f($($arg),*) }),
                        None => {
                            tracing::warn!("the NVIDIA driver lacks {}", stringify!($name));
                            Err(CuError::NOT_SUPPORTED)
                        }
                    }
                }
            )*
            /// Whether the driver exports `name`.
            pub fn has(name: &str) -> bool {
                lookup::<unsafe extern "C" fn()>(name).is_some()
            }
        }
    };
}

/// `CUcontext`, `CUstream`, … as integers.
pub type H = usize;

driver_fns! {
    cuInit(flags: u32);
    cuDriverGetVersion(v: *mut i32);
    cuDeviceGetCount(n: *mut i32);
    cuDeviceGet(d: *mut i32, ordinal: i32);
    cuDeviceGetName(name: *mut c_char, len: i32, d: i32);
    cuDeviceGetUuid_v2(uuid: *mut u8, d: i32);
    cuDeviceTotalMem_v2(bytes: *mut usize, d: i32);
    cuDeviceGetAttribute(v: *mut i32, attr: i32, d: i32);
    cuDeviceGetPCIBusId(id: *mut c_char, len: i32, d: i32);
    cuDeviceCanAccessPeer(can: *mut i32, d: i32, peer: i32);
    cuDeviceGetP2PAttribute(v: *mut i32, attr: i32, src: i32, dst: i32);
    cuDeviceGetTexture1DLinearMaxWidth(w: *mut usize, format: i32, channels: u32, d: i32);
    cuCtxCreate_v2(ctx: *mut H, flags: u32, d: i32);
    cuCtxCreate_v4(ctx: *mut H, params: *mut c_void, flags: u32, d: i32);
    cuCtxDestroy_v2(ctx: H);
    cuCtxPopCurrent_v2(ctx: *mut H);
    cuCtxSetCurrent(ctx: H);
    cuCtxSynchronize();
    cuCtxSetFlags(flags: u32);
    cuCtxGetLimit(v: *mut usize, limit: i32);
    cuCtxSetLimit(limit: i32, v: usize);
    cuCtxGetCacheConfig(c: *mut i32);
    cuCtxSetCacheConfig(c: i32);
    cuCtxGetStreamPriorityRange(least: *mut i32, greatest: *mut i32);
    cuCtxEnablePeerAccess(peer: H, flags: u32);
    cuCtxDisablePeerAccess(peer: H);
    cuMemAlloc_v2(p: *mut u64, size: usize);
    cuMemAllocPitch_v2(p: *mut u64, pitch: *mut usize, w: usize, h: usize, elt: u32);
    cuMemFree_v2(p: u64);
    cuMemGetInfo_v2(free: *mut usize, total: *mut usize);
    cuMemAllocAsync(p: *mut u64, size: usize, s: H);
    cuMemFreeAsync(p: u64, s: H);
    cuMemHostRegister_v2(p: *mut c_void, size: usize, flags: u32);
    cuMemHostUnregister(p: *mut c_void);
    cuMemcpyHtoD_v2(dst: u64, src: *const c_void, n: usize);
    cuMemcpyDtoH_v2(dst: *mut c_void, src: u64, n: usize);
    cuMemcpyDtoD_v2(dst: u64, src: u64, n: usize);
    cuMemcpyHtoDAsync_v2(dst: u64, src: *const c_void, n: usize, s: H);
    cuMemcpyDtoHAsync_v2(dst: *mut c_void, src: u64, n: usize, s: H);
    cuMemcpyDtoDAsync_v2(dst: u64, src: u64, n: usize, s: H);
    cuMemcpy2DAsync_v2(p: *const cudarc::driver::sys::CUDA_MEMCPY2D, s: H);
    cuMemsetD8Async(p: u64, v: u8, n: usize, s: H);
    cuMemsetD16Async(p: u64, v: u16, n: usize, s: H);
    cuMemsetD32Async(p: u64, v: u32, n: usize, s: H);
    cuMemsetD2D8Async(p: u64, pitch: usize, v: u8, w: usize, h: usize, s: H);
    cuMemsetD2D16Async(p: u64, pitch: usize, v: u16, w: usize, h: usize, s: H);
    cuMemsetD2D32Async(p: u64, pitch: usize, v: u32, w: usize, h: usize, s: H);
    cuStreamCreate(s: *mut H, flags: u32);
    cuStreamCreateWithPriority(s: *mut H, flags: u32, prio: i32);
    cuStreamDestroy_v2(s: H);
    cuStreamQuery(s: H);
    cuStreamSynchronize(s: H);
    cuStreamWaitEvent(s: H, e: H, flags: u32);
    cuStreamGetFlags(s: H, flags: *mut u32);
    cuStreamGetPriority(s: H, prio: *mut i32);
    cuStreamGetId(s: H, id: *mut u64);
    cuEventCreate(e: *mut H, flags: u32);
    cuEventDestroy_v2(e: H);
    cuEventRecord(e: H, s: H);
    cuEventRecordWithFlags(e: H, s: H, flags: u32);
    cuEventQuery(e: H);
    cuEventSynchronize(e: H);
    cuEventElapsedTime(ms: *mut f32, a: H, b: H);
    cuEventElapsedTime_v2(ms: *mut f32, a: H, b: H);
    cuLibraryLoadData(lib: *mut H, image: *const c_void, jit_opts: *mut i32, jit_vals: *mut *mut c_void,
        n_jit: u32, lib_opts: *mut i32, lib_vals: *mut *mut c_void, n_lib: u32);
    cuLibraryUnload(lib: H);
    cuLibraryGetKernel(k: *mut H, lib: H, name: *const c_char);
    cuLibraryGetGlobal(p: *mut u64, size: *mut usize, lib: H, name: *const c_char);
    cuKernelGetFunction(f: *mut H, k: H);
    cuKernelGetAttribute(v: *mut i32, attr: i32, k: H, d: i32);
    cuKernelSetAttribute(attr: i32, v: i32, k: H, d: i32);
    cuKernelSetCacheConfig(k: H, config: i32, d: i32);
    cuKernelGetParamInfo(k: H, index: usize, offset: *mut usize, size: *mut usize);
    cuLaunchKernel(f: H, gx: u32, gy: u32, gz: u32, bx: u32, by: u32, bz: u32, smem: u32, s: H,
        params: *mut *mut c_void, extra: *mut *mut c_void);
    cuLaunchCooperativeKernel(f: H, gx: u32, gy: u32, gz: u32, bx: u32, by: u32, bz: u32, smem: u32,
        s: H, params: *mut *mut c_void);
    cuOccupancyMaxActiveBlocksPerMultiprocessor(n: *mut i32, f: H, bs: i32, smem: usize);
    cuOccupancyMaxActiveBlocksPerMultiprocessorWithFlags(n: *mut i32, f: H, bs: i32, smem: usize,
        flags: u32);
    cuOccupancyAvailableDynamicSMemPerBlock(smem: *mut usize, f: H, blocks: i32, bs: i32);
}

/// Attributes whose real value the remoting cannot honour: clients see these values instead
/// (host memory of the client is not reachable from a remote GPU, and the shim forwards no
/// memory pools, virtual memory management or IPC handles).
const OVERRIDES: &[(&str, i32)] = &[
    ("CAN_MAP_HOST_MEMORY", 0),
    ("MANAGED_MEMORY", 0),
    ("CONCURRENT_MANAGED_ACCESS", 0),
    ("PAGEABLE_MEMORY_ACCESS", 0),
    ("PAGEABLE_MEMORY_ACCESS_USES_HOST_PAGE_TABLES", 0),
    ("DIRECT_MANAGED_MEM_ACCESS_FROM_HOST", 0),
    ("HOST_NATIVE_ATOMIC_SUPPORTED", 0),
    ("CAN_USE_HOST_POINTER_FOR_REGISTERED_MEM", 0),
    ("COOPERATIVE_MULTI_DEVICE_LAUNCH", 0),
    ("CAN_FLUSH_REMOTE_WRITES", 0),
    ("VIRTUAL_MEMORY_MANAGEMENT_SUPPORTED", 0),
    ("VIRTUAL_ADDRESS_MANAGEMENT_SUPPORTED", 0),
    ("MEMORY_POOLS_SUPPORTED", 0),
    ("GPU_DIRECT_RDMA_SUPPORTED", 0),
    ("HANDLE_TYPE_POSIX_FILE_DESCRIPTOR_SUPPORTED", 0),
    ("HANDLE_TYPE_WIN32_HANDLE_SUPPORTED", 0),
    ("HANDLE_TYPE_WIN32_KMT_HANDLE_SUPPORTED", 0),
    ("HANDLE_TYPE_FABRIC_SUPPORTED", 0),
    ("IPC_EVENT_SUPPORTED", 0),
    ("INTEGRATED", 0),
];

/// Directories searched for `libcuda.so.1` when no path is given, after `LD_LIBRARY_PATH`.
const SEARCH_DIRS: &[&str] = &[
    "/usr/local/nvidia/lib64",
    "/usr/local/nvidia/lib",
    "/usr/lib/x86_64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
    "/usr/lib64",
    "/usr/lib",
    "/lib/x86_64-linux-gnu",
    "/lib64",
    "/usr/lib/wsl/lib",
];

/// Why `path` must not be loaded as the driver, if it must not.
fn reject(path: &Path) -> Option<String> {
    let s = path.to_string_lossy();
    if s.contains("/stubs/") {
        return Some("a CUDA toolkit link stub, not a driver".into());
    }
    match std::fs::read(path) {
        Err(e) => Some(format!("cannot read: {e}")),
        Ok(b) if b.windows(SHIM_MARKER.len()).any(|w| w == SHIM_MARKER) => {
            Some("this is the rgpu shim, not NVIDIA's driver".into())
        }
        Ok(_) => None,
    }
}

/// Candidate driver files, best first.
pub fn candidates() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("LD_LIBRARY_PATH")
        .map(|v| std::env::split_paths(&v).collect())
        .unwrap_or_default();
    dirs.extend(SEARCH_DIRS.iter().map(PathBuf::from));
    let mut out: Vec<PathBuf> = vec![];
    for d in dirs {
        let p = d.join("libcuda.so.1");
        if p.exists() && !out.contains(&p) {
            out.push(p);
        }
    }
    out
}

static DRIVER: OnceLock<Result<Driver, String>> = OnceLock::new();

/// Loads the driver once per process: `explicit` (or `RGPU_CUDA_DRIVER`) if given, else the first
/// usable `libcuda.so.1` of [`candidates`]. Later calls return the first outcome.
pub fn load(explicit: Option<&Path>) -> Result<&'static Driver, String> {
    DRIVER
        .get_or_init(|| load_inner(explicit).map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|e| e.clone())
}

/// The driver, if [`load`] succeeded.
pub fn loaded() -> Option<&'static Driver> {
    DRIVER.get().and_then(|r| r.as_ref().ok())
}

fn load_inner(explicit: Option<&Path>) -> Result<Driver, GpuError> {
    let env = std::env::var_os("RGPU_CUDA_DRIVER").map(PathBuf::from);
    let path = match explicit.map(Path::to_path_buf).or(env) {
        Some(p) => {
            if let Some(why) = reject(&p) {
                return Err(GpuError::Unusable { path: p, why });
            }
            p
        }
        None => {
            let all = candidates();
            let mut skipped = vec![];
            let mut chosen = None;
            for c in &all {
                match reject(c) {
                    None => {
                        chosen = Some(c.clone());
                        break;
                    }
                    Some(why) => skipped.push(format!("{} ({why})", c.display())),
                }
            }
            match chosen {
                Some(c) => c,
                None => {
                    let mut searched: Vec<String> =
                        SEARCH_DIRS.iter().map(|s| s.to_string()).collect();
                    searched.insert(0, "LD_LIBRARY_PATH".into());
                    searched.extend(skipped);
                    return Err(GpuError::NotFound(searched.join(", ")));
                }
            }
        }
    };
    let cpath =
        CString::new(path.as_os_str().as_encoded_bytes()).map_err(|_| GpuError::Unusable {
            path: path.clone(),
            why: "path contains a NUL byte".into(),
        })?;
    // SAFETY: loading NVIDIA's driver by absolute path; the handle is kept for the process's life.
    let handle = unsafe { libc::dlopen(cpath.as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL) };
    if handle.is_null() {
        // SAFETY: dlerror returns a thread-local message or null.
        let why = unsafe {
            let e = libc::dlerror();
            if e.is_null() {
                "dlopen failed".to_string()
            } else {
                std::ffi::CStr::from_ptr(e).to_string_lossy().into_owned()
            }
        };
        return Err(GpuError::Unusable { path, why });
    }
    // SAFETY: looking up a symbol in the handle just opened.
    let ours = unsafe { libc::dlsym(handle, c"cuInit".as_ptr()) } as usize;
    // cudarc opens the driver by its names; with the file above already loaded, the dynamic
    // loader must hand back that same library. Anything else (a preloaded shim, a second copy)
    // is refused rather than used.
    let theirs = std::panic::catch_unwind(|| {
        // SAFETY: cudarc's loader; a missing library panics, which is caught.
        unsafe {
            cudarc::driver::sys::culib()
                .get::<unsafe extern "C" fn(u32) -> u32>(b"cuInit")
                .map(|s| *s as usize)
                .ok()
        }
    })
    .ok()
    .flatten();
    if ours == 0 || theirs != Some(ours) {
        return Err(GpuError::Unusable {
            path,
            why: "cudarc resolved libcuda to a different library than this file (is the rgpu \
                  shim preloaded into the server, or a second driver on LD_LIBRARY_PATH?)"
                .into(),
        });
    }
    let fail = |call: &'static str, e: CuError| GpuError::Driver {
        path: path.clone(),
        call,
        code: e.to_string(),
    };
    // SAFETY: plain driver calls with valid out-pointers.
    unsafe {
        drv::cuInit(0).map_err(|e| fail("cuInit", e))?;
        let mut version = 0;
        drv::cuDriverGetVersion(&mut version).map_err(|e| fail("cuDriverGetVersion", e))?;
        let mut n = 0;
        drv::cuDeviceGetCount(&mut n).map_err(|e| fail("cuDeviceGetCount", e))?;
        let mut gpus = vec![];
        for i in 0..n {
            gpus.push(describe(i).map_err(|e| fail("device query", e))?);
        }
        if gpus.is_empty() {
            return Err(GpuError::NoGpu(path));
        }
        tracing::info!(
            "loaded NVIDIA driver {} (CUDA {}.{}), {} GPU(s)",
            path.display(),
            version / 1000,
            version % 1000 / 10,
            gpus.len()
        );
        Ok(Driver {
            path,
            version,
            gpus,
        })
    }
}

/// The driver's device handle of ordinal `i`.
pub fn device(i: i32) -> CuResult<i32> {
    let mut d = 0;
    // SAFETY: valid out-pointer.
    unsafe { drv::cuDeviceGet(&mut d, i)? };
    Ok(d)
}

fn describe(i: i32) -> CuResult<GpuInfo> {
    let d = device(i)?;
    let mut name = [0 as c_char; 256];
    let mut uuid = [0u8; 16];
    let mut bus = [0 as c_char; 64];
    let mut mem = 0usize;
    // SAFETY: buffers sized as passed.
    unsafe {
        drv::cuDeviceGetName(name.as_mut_ptr(), name.len() as i32, d)?;
        drv::cuDeviceGetUuid_v2(uuid.as_mut_ptr(), d)?;
        drv::cuDeviceGetPCIBusId(bus.as_mut_ptr(), bus.len() as i32, d)?;
        drv::cuDeviceTotalMem_v2(&mut mem, d)?;
    }
    let text = |b: &[c_char]| {
        let bytes: Vec<u8> = b
            .iter()
            .take_while(|&&c| c != 0)
            .map(|&c| c as u8)
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    };
    let max = DEVICE_ATTRIBUTES
        .iter()
        .map(|(v, _)| *v)
        .max()
        .unwrap_or(0)
        .max(0);
    let mut attributes = vec![i32::MIN; max as usize + 1];
    for (v, n) in DEVICE_ATTRIBUTES {
        if *v < 0 || n.ends_with("_MAX") {
            continue;
        }
        let short = n.trim_start_matches("CU_DEVICE_ATTRIBUTE_");
        let mut x = 0;
        // SAFETY: valid out-pointer; the driver rejects attributes it does not know.
        if unsafe { drv::cuDeviceGetAttribute(&mut x, *v, d) }.is_ok() {
            attributes[*v as usize] = OVERRIDES
                .iter()
                .find(|(o, _)| *o == short)
                .map(|(_, val)| *val)
                .unwrap_or(x);
        }
    }
    Ok(GpuInfo {
        ordinal: i,
        name: text(&name),
        uuid,
        pci_bus_id: text(&bus),
        total_mem: mem as u64,
        attributes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shim_and_link_stubs_are_never_taken_for_the_driver() {
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("libcuda.so.1");
        let mut bytes = b"\x7fELF....".to_vec();
        bytes.extend_from_slice(SHIM_MARKER);
        std::fs::write(&fake, &bytes).unwrap();
        assert!(reject(&fake).unwrap().contains("rgpu shim"));
        std::fs::write(&fake, b"\x7fELF plain").unwrap();
        assert!(reject(&fake).is_none());
        assert!(reject(Path::new("/usr/local/cuda/lib64/stubs/libcuda.so"))
            .unwrap()
            .contains("stub"));
        assert!(reject(&dir.path().join("missing"))
            .unwrap()
            .contains("cannot read"));
    }

    #[test]
    fn an_explicit_path_that_is_the_shim_is_refused_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("libcuda.so.1");
        std::fs::write(&fake, SHIM_MARKER).unwrap();
        let e = load_inner(Some(&fake)).unwrap_err().to_string();
        assert!(e.contains("rgpu shim"), "{e}");
        let e = load_inner(Some(&dir.path().join("nope.so")))
            .unwrap_err()
            .to_string();
        assert!(e.contains("cannot read"), "{e}");
    }
}
