//! rgpu-shim is the `libcuda.so.1` that CUDA programs load instead of NVIDIA's driver. It owns
//! the exported C surface (every function of `cuda.h`, generated from `protocol/api/driver.api`),
//! the client-side state that CUDA keeps per process and per thread (initialisation, the current
//! context stack, page-locked host memory, the device-allocation map), and the connections to
//! the rgpu server, or to several at once (a server set: `multi.rs` routes each call). It must
//! never let a panic cross into C, never start threads before the first CUDA call, never block
//! in a destructor, and never answer an unimplemented call with success.

mod custom;
#[allow(missing_docs)]
mod generated;
mod multi;
mod rt;
mod shm;

/// Tells an rgpu server that this library is the shim, so that it is never loaded as NVIDIA's
/// driver (server/src/device/gpu.rs looks for these bytes).
#[used]
#[no_mangle]
pub static RGPU_SHIM_MARKER: [u8; 22] = *b"rgpu-shim-not-a-driver";
