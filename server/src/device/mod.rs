//! Device backends: the built-in CPU device (this trait) and real NVIDIA GPUs (`gpu`, whose
//! sessions call the driver directly).

pub mod cpu;
pub mod gpu;
pub mod nvml;

use rgpu_protocol::error::CuResult;
use std::sync::Arc;

/// Device memory addressed by the client's device pointers.
pub struct Region {
    /// The allocation holding the range.
    pub buf: Arc<cpu::DevBuf>,
    /// Offset of the range in the allocation.
    pub offset: usize,
}

/// What the server needs from a device.
pub trait Device: Send + Sync {
    /// Its number among the server's devices of its kind (fixes its identity).
    fn ordinal(&self) -> i32;
    /// Marketing name.
    fn name(&self) -> String;
    /// `cuDeviceGetUuid` bytes.
    fn uuid(&self) -> [u8; 16];
    /// `cuDeviceGetPCIBusId` string.
    fn pci_bus_id(&self) -> String;
    /// Total memory in bytes.
    fn total_mem(&self) -> u64;
    /// Bytes currently allocated (all sessions).
    fn used_mem(&self) -> u64;
    /// A `CUdevice_attribute` value; `INVALID_VALUE` for an unknown attribute.
    fn attribute(&self, attr: i32) -> CuResult<i32>;
    /// Allocates `size` bytes in address space `space` (see `Hello::namespace`), returns the
    /// device address.
    fn alloc(&self, size: u64, space: u8) -> CuResult<u64>;
    /// Frees an allocation by its base address.
    fn free(&self, base: u64) -> CuResult<()>;
    /// The memory at `[ptr, ptr+len)`, which must lie inside one allocation.
    fn region(&self, ptr: u64, len: u64) -> CuResult<Region>;
    /// Counts `d` of work (a kernel, a copy, a memset) run on the device.
    fn add_busy(&self, d: std::time::Duration);
    /// How busy the device was since the previous call, in percent of the time passed (work on
    /// several streams at once counts once per stream, up to 100).
    fn load_since_last(&self) -> u32;
}
