//! The CPU device: device memory in host RAM with real allocation bookkeeping and bounds checks,
//! described as a compute-capability 7.5 GPU (limits of an sm_75 part).

use super::{Device, Region};
use rgpu_protocol::error::{CuError, CuResult};
use rgpu_protocol::messages::DEVICE_ATTRIBUTES;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// Base of the CPU device's address space: above any x86-64 user-space host address, so a device
/// pointer can never be mistaken for a host one.
pub const VA_BASE: u64 = 0x0002_0000_0000_0000;
/// Allocation granularity and alignment.
pub const ALIGN: u64 = 256;

/// One allocation's bytes.
pub struct DevBuf {
    ptr: *mut u8,
    len: usize,
}

// SAFETY: DevBuf owns its allocation; concurrent access goes through raw-pointer copies only
// (like device memory, unsynchronised access from streams is the program's responsibility).
unsafe impl Send for DevBuf {}
// SAFETY: see above.
unsafe impl Sync for DevBuf {}

impl DevBuf {
    fn new(len: usize) -> Option<DevBuf> {
        let layout = std::alloc::Layout::from_size_align(len.max(1), ALIGN as usize).ok()?;
        // SAFETY: layout has non-zero size.
        let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
        (!ptr.is_null()).then_some(DevBuf { ptr, len })
    }

    /// Host address of the first byte (for the kernel interpreter's raw accesses).
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the buffer is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Copies `dst.len()` bytes out, starting at `off`.
    pub fn read(&self, off: usize, dst: &mut [u8]) {
        assert!(off + dst.len() <= self.len, "bounds checked by region()");
        // SAFETY: in bounds (asserted); dst is a distinct host buffer.
        unsafe { std::ptr::copy_nonoverlapping(self.ptr.add(off), dst.as_mut_ptr(), dst.len()) }
    }

    /// Copies `src` in at `off`.
    pub fn write(&self, off: usize, src: &[u8]) {
        assert!(off + src.len() <= self.len, "bounds checked by region()");
        // SAFETY: in bounds (asserted); src is a distinct host buffer.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), self.ptr.add(off), src.len()) }
    }

    /// Copies within or between device buffers (ranges may overlap).
    pub fn copy_from(&self, off: usize, src: &DevBuf, src_off: usize, len: usize) {
        assert!(off + len <= self.len && src_off + len <= src.len);
        // SAFETY: both ranges in bounds (asserted); `copy` handles overlap.
        unsafe { std::ptr::copy(src.ptr.add(src_off), self.ptr.add(off), len) }
    }

    /// Fills `count` elements of `pattern` starting at `off`.
    pub fn fill(&self, off: usize, pattern: &[u8], count: usize) {
        let n = pattern.len();
        assert!(off + n * count <= self.len);
        for i in 0..count {
            // SAFETY: in bounds (asserted above).
            unsafe { std::ptr::copy_nonoverlapping(pattern.as_ptr(), self.ptr.add(off + i * n), n) }
        }
    }
}

impl Drop for DevBuf {
    fn drop(&mut self) {
        let layout = std::alloc::Layout::from_size_align(self.len.max(1), ALIGN as usize)
            .expect("valid at allocation");
        // SAFETY: allocated in new() with this layout, freed once.
        unsafe { std::alloc::dealloc(self.ptr, layout) }
    }
}

struct Heap {
    allocs: BTreeMap<u64, Arc<DevBuf>>,
    /// The next free address of each address space in use.
    next: std::collections::HashMap<u8, u64>,
    used: u64,
}

/// A CPU device.
pub struct CpuDevice {
    ordinal: i32,
    total: u64,
    uuid: [u8; 16],
    heap: Mutex<Heap>,
    /// Nanoseconds of work run on the device so far.
    busy_ns: std::sync::atomic::AtomicU64,
    /// (when, busy_ns) at the previous load sample.
    load_sample: Mutex<(std::time::Instant, u64)>,
}

impl CpuDevice {
    /// A CPU device with `total` bytes of memory; `seed` makes its UUID stable per server.
    pub fn new(ordinal: i32, total: u64, seed: &str) -> CpuDevice {
        let d = ring::digest::digest(
            &ring::digest::SHA256,
            format!("rgpu-cpu-device/{seed}/{ordinal}").as_bytes(),
        );
        let mut uuid = [0u8; 16];
        uuid.copy_from_slice(&d.as_ref()[..16]);
        CpuDevice {
            ordinal,
            total,
            uuid,
            heap: Mutex::new(Heap {
                allocs: BTreeMap::new(),
                next: Default::default(),
                used: 0,
            }),
            busy_ns: Default::default(),
            load_sample: Mutex::new((std::time::Instant::now(), 0)),
        }
    }

    fn heap(&self) -> std::sync::MutexGuard<'_, Heap> {
        self.heap.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Device for CpuDevice {
    fn name(&self) -> String {
        "rgpu CPU device".into()
    }

    fn uuid(&self) -> [u8; 16] {
        self.uuid
    }

    fn ordinal(&self) -> i32 {
        self.ordinal
    }

    fn pci_bus_id(&self) -> String {
        format!("0000:{:02x}:00.0", 0xc0 + self.ordinal)
    }

    fn total_mem(&self) -> u64 {
        self.total
    }

    fn used_mem(&self) -> u64 {
        self.heap().used
    }

    fn attribute(&self, attr: i32) -> CuResult<i32> {
        let name = DEVICE_ATTRIBUTES
            .iter()
            .find(|(v, _)| *v == attr)
            .map(|(_, n)| *n)
            .ok_or(CuError::INVALID_VALUE)?;
        if name.ends_with("_MAX") {
            return Err(CuError::INVALID_VALUE);
        }
        Ok(sm75_attribute(
            name.trim_start_matches("CU_DEVICE_ATTRIBUTE_"),
            self,
        ))
    }

    fn alloc(&self, size: u64, space: u8) -> CuResult<u64> {
        if size == 0 {
            return Err(CuError::INVALID_VALUE);
        }
        let rounded = size.checked_add(ALIGN - 1).ok_or(CuError::OUT_OF_MEMORY)? / ALIGN * ALIGN;
        let mut h = self.heap();
        if h.used.saturating_add(rounded) > self.total || rounded > usize::MAX as u64 {
            return Err(CuError::OUT_OF_MEMORY);
        }
        let buf = DevBuf::new(size as usize).ok_or(CuError::OUT_OF_MEMORY)?;
        // Each address space (a client's number for this server) gets 2^50 bytes and each
        // device 2^44 of it, so no two servers of one client hand out the same address.
        let ordinal = self.ordinal as u64;
        let next = h
            .next
            .entry(space)
            .or_insert(VA_BASE + ((space as u64) << 50) + ordinal * (1 << 44));
        let base = *next;
        // Leave a guard gap between allocations so off-by-one accesses hit no allocation.
        *next += rounded + ALIGN * 16;
        h.used += rounded;
        h.allocs.insert(base, Arc::new(buf));
        Ok(base)
    }

    fn add_busy(&self, d: std::time::Duration) {
        self.busy_ns.fetch_add(
            d.as_nanos().min(u64::MAX as u128) as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
    }

    fn load_since_last(&self) -> u32 {
        let busy = self.busy_ns.load(std::sync::atomic::Ordering::Relaxed);
        let mut last = self.load_sample.lock().unwrap_or_else(|e| e.into_inner());
        let wall = last.0.elapsed().as_nanos().max(1) as u64;
        let load = (busy.saturating_sub(last.1).saturating_mul(100) / wall).min(100) as u32;
        *last = (std::time::Instant::now(), busy);
        load
    }

    fn free(&self, base: u64) -> CuResult<()> {
        let mut h = self.heap();
        let buf = h.allocs.remove(&base).ok_or(CuError::INVALID_VALUE)?;
        h.used -= (buf.len() as u64).div_ceil(ALIGN) * ALIGN;
        Ok(())
    }

    fn region(&self, ptr: u64, len: u64) -> CuResult<Region> {
        let h = self.heap();
        let (&base, buf) = h
            .allocs
            .range(..=ptr)
            .next_back()
            .ok_or(CuError::INVALID_VALUE)?;
        let off = ptr - base;
        if off
            .checked_add(len)
            .is_none_or(|end| end > buf.len() as u64)
        {
            return Err(CuError::INVALID_VALUE);
        }
        Ok(Region {
            buf: buf.clone(),
            offset: off as usize,
        })
    }
}

/// Attribute values of a compute-capability 7.5 device (Turing, 40 SMs).
fn sm75_attribute(name: &str, dev: &CpuDevice) -> i32 {
    match name {
        "MAX_THREADS_PER_BLOCK" => 1024,
        "MAX_BLOCK_DIM_X" | "MAX_BLOCK_DIM_Y" => 1024,
        "MAX_BLOCK_DIM_Z" => 64,
        "MAX_GRID_DIM_X" => i32::MAX,
        "MAX_GRID_DIM_Y" | "MAX_GRID_DIM_Z" => 65535,
        "MAX_SHARED_MEMORY_PER_BLOCK" | "SHARED_MEMORY_PER_BLOCK" => 49152,
        "MAX_SHARED_MEMORY_PER_BLOCK_OPTIN" => 65536,
        "MAX_SHARED_MEMORY_PER_MULTIPROCESSOR" => 65536,
        "RESERVED_SHARED_MEMORY_PER_BLOCK" => 0,
        "TOTAL_CONSTANT_MEMORY" => 65536,
        "WARP_SIZE" => 32,
        "MAX_PITCH" => i32::MAX,
        "MAX_REGISTERS_PER_BLOCK" | "REGISTERS_PER_BLOCK" => 65536,
        "MAX_REGISTERS_PER_MULTIPROCESSOR" => 65536,
        "CLOCK_RATE" => 1_590_000,
        "MEMORY_CLOCK_RATE" => 5_001_000,
        "GLOBAL_MEMORY_BUS_WIDTH" => 256,
        "L2_CACHE_SIZE" => 4 * 1024 * 1024,
        "MAX_PERSISTING_L2_CACHE_SIZE" => 0,
        "TEXTURE_ALIGNMENT" => 512,
        "TEXTURE_PITCH_ALIGNMENT" => 32,
        "GPU_OVERLAP" | "ASYNC_ENGINE_COUNT" => 3,
        "MULTIPROCESSOR_COUNT" => 40,
        "KERNEL_EXEC_TIMEOUT" | "INTEGRATED" | "TCC_DRIVER" => 0,
        "CAN_MAP_HOST_MEMORY" => 0,
        "COMPUTE_MODE" => 0,
        "CONCURRENT_KERNELS" => 1,
        "ECC_ENABLED" => 0,
        "PCI_BUS_ID" => 0xc0 + dev.ordinal,
        "PCI_DEVICE_ID" | "PCI_DOMAIN_ID" => 0,
        "MAX_THREADS_PER_MULTIPROCESSOR" => 1024,
        "MAX_BLOCKS_PER_MULTIPROCESSOR" => 16,
        "UNIFIED_ADDRESSING" => 1,
        "COMPUTE_CAPABILITY_MAJOR" => 7,
        "COMPUTE_CAPABILITY_MINOR" => 5,
        "STREAM_PRIORITIES_SUPPORTED" => 1,
        "GLOBAL_L1_CACHE_SUPPORTED" | "LOCAL_L1_CACHE_SUPPORTED" => 1,
        "MANAGED_MEMORY" | "CONCURRENT_MANAGED_ACCESS" | "PAGEABLE_MEMORY_ACCESS" => 0,
        "MULTI_GPU_BOARD" => 0,
        "MULTI_GPU_BOARD_GROUP_ID" => dev.ordinal,
        "HOST_NATIVE_ATOMIC_SUPPORTED" => 0,
        "SINGLE_TO_DOUBLE_PRECISION_PERF_RATIO" => 32,
        "COMPUTE_PREEMPTION_SUPPORTED" => 1,
        "CAN_USE_HOST_POINTER_FOR_REGISTERED_MEM" => 0,
        "COOPERATIVE_LAUNCH" => 1,
        "COOPERATIVE_MULTI_DEVICE_LAUNCH" => 0,
        "CAN_FLUSH_REMOTE_WRITES" => 0,
        "HOST_REGISTER_SUPPORTED" => 1,
        "PAGEABLE_MEMORY_ACCESS_USES_HOST_PAGE_TABLES" | "DIRECT_MANAGED_MEM_ACCESS_FROM_HOST" => 0,
        "VIRTUAL_MEMORY_MANAGEMENT_SUPPORTED" | "VIRTUAL_ADDRESS_MANAGEMENT_SUPPORTED" => 0,
        "MEMORY_POOLS_SUPPORTED" => 0,
        "MAX_ACCESS_POLICY_WINDOW_SIZE" => 0,
        "GPU_DIRECT_RDMA_SUPPORTED" => 0,
        "CAN_TEX2D_GATHER" | "SURFACE_ALIGNMENT" => 512,
        "MAXIMUM_TEXTURE1D_WIDTH" => 131072,
        "MAXIMUM_TEXTURE1D_LINEAR_WIDTH" => 268_435_456,
        "MAXIMUM_TEXTURE1D_MIPMAPPED_WIDTH" => 32768,
        "MAXIMUM_TEXTURE2D_WIDTH" | "MAXIMUM_TEXTURE2D_LINEAR_WIDTH" => 131072,
        "MAXIMUM_TEXTURE2D_HEIGHT" | "MAXIMUM_TEXTURE2D_LINEAR_HEIGHT" => 65536,
        "MAXIMUM_TEXTURE2D_LINEAR_PITCH" => 2_097_120,
        "MAXIMUM_TEXTURE2D_MIPMAPPED_WIDTH" | "MAXIMUM_TEXTURE2D_MIPMAPPED_HEIGHT" => 32768,
        "MAXIMUM_TEXTURE3D_WIDTH" | "MAXIMUM_TEXTURE3D_HEIGHT" | "MAXIMUM_TEXTURE3D_DEPTH" => 16384,
        "MAXIMUM_TEXTURE3D_WIDTH_ALTERNATE" | "MAXIMUM_TEXTURE3D_HEIGHT_ALTERNATE" => 8192,
        "MAXIMUM_TEXTURE3D_DEPTH_ALTERNATE" => 32768,
        "MAXIMUM_TEXTURE2D_LAYERED_WIDTH" | "MAXIMUM_TEXTURE2D_LAYERED_HEIGHT" => 32768,
        "MAXIMUM_TEXTURE2D_LAYERED_LAYERS" | "MAXIMUM_TEXTURE1D_LAYERED_LAYERS" => 2048,
        "MAXIMUM_TEXTURE1D_LAYERED_WIDTH" => 32768,
        "MAXIMUM_TEXTURE2D_GATHER_WIDTH" | "MAXIMUM_TEXTURE2D_GATHER_HEIGHT" => 32768,
        "MAXIMUM_TEXTURECUBEMAP_WIDTH" | "MAXIMUM_TEXTURECUBEMAP_LAYERED_WIDTH" => 32768,
        "MAXIMUM_TEXTURECUBEMAP_LAYERED_LAYERS" => 2046,
        "MAXIMUM_SURFACE1D_WIDTH" | "MAXIMUM_SURFACE2D_WIDTH" | "MAXIMUM_SURFACE2D_HEIGHT" => 32768,
        "MAXIMUM_SURFACE3D_WIDTH" | "MAXIMUM_SURFACE3D_HEIGHT" | "MAXIMUM_SURFACE3D_DEPTH" => 16384,
        "MAXIMUM_SURFACE1D_LAYERED_WIDTH" | "MAXIMUM_SURFACE2D_LAYERED_WIDTH" => 32768,
        "MAXIMUM_SURFACE2D_LAYERED_HEIGHT" => 32768,
        "MAXIMUM_SURFACE1D_LAYERED_LAYERS" | "MAXIMUM_SURFACE2D_LAYERED_LAYERS" => 2048,
        "MAXIMUM_SURFACECUBEMAP_WIDTH" | "MAXIMUM_SURFACECUBEMAP_LAYERED_WIDTH" => 32768,
        "MAXIMUM_SURFACECUBEMAP_LAYERED_LAYERS" => 2046,
        "MAX_GRID_DIM" => 65535,
        "HANDLE_TYPE_POSIX_FILE_DESCRIPTOR_SUPPORTED" => 0,
        "NUMA_CONFIG" => 0,
        "NUMA_ID" | "HOST_NUMA_ID" => -1,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_is_busy_time_over_wall_time() {
        let d = CpuDevice::new(0, 1 << 20, "t");
        d.load_since_last();
        std::thread::sleep(std::time::Duration::from_millis(40));
        d.add_busy(std::time::Duration::from_millis(20));
        let l = d.load_since_last();
        assert!((5..=60).contains(&l), "{l}");
        d.add_busy(std::time::Duration::from_secs(5));
        assert_eq!(d.load_since_last(), 100);
        std::thread::sleep(std::time::Duration::from_millis(10));
        assert_eq!(d.load_since_last(), 0);
    }

    #[test]
    fn address_spaces_are_disjoint() {
        let d = CpuDevice::new(1, 1 << 20, "t");
        let a = d.alloc(64, 0).unwrap();
        let b = d.alloc(64, 3).unwrap();
        let c = d.alloc(64, 3).unwrap();
        assert_eq!((a - VA_BASE) >> 44, 1, "space 0, device 1");
        assert_eq!((b - VA_BASE) >> 50, 3);
        assert_eq!(((b - VA_BASE) >> 44) & 0x3f, 1);
        assert!(c > b && (c - VA_BASE) >> 50 == 3);
        assert!(d.region(b, 64).is_ok() && d.region(a, 64).is_ok());
        assert_eq!(d.used_mem(), 3 * ALIGN);
    }

    #[test]
    fn allocation_bookkeeping_and_bounds() {
        let d = CpuDevice::new(0, 1 << 20, "t");
        let a = d.alloc(1000, 0).unwrap();
        assert_eq!(a % ALIGN, 0);
        assert_eq!(d.used_mem(), 1024);
        assert!(d.region(a, 1000).is_ok());
        assert!(d.region(a + 999, 1).is_ok());
        assert_eq!(d.region(a + 999, 2).err(), Some(CuError::INVALID_VALUE));
        assert_eq!(d.region(a - 1, 1).err(), Some(CuError::INVALID_VALUE));
        assert_eq!(d.alloc(2 << 20, 0).err(), Some(CuError::OUT_OF_MEMORY));
        assert_eq!(d.alloc(0, 0).err(), Some(CuError::INVALID_VALUE));
        d.free(a).unwrap();
        assert_eq!(d.free(a).err(), Some(CuError::INVALID_VALUE));
        assert_eq!(d.used_mem(), 0);
    }

    #[test]
    fn every_attribute_answers_and_bad_ones_fail() {
        let d = CpuDevice::new(0, 1 << 20, "t");
        for (v, n) in DEVICE_ATTRIBUTES {
            if !n.ends_with("_MAX") {
                assert!(d.attribute(*v).is_ok(), "{n}");
            }
        }
        assert_eq!(d.attribute(75).unwrap(), 7);
        assert_eq!(d.attribute(76).unwrap(), 5);
        assert_eq!(d.attribute(-1).err(), Some(CuError::INVALID_VALUE));
        assert_eq!(d.attribute(100_000).err(), Some(CuError::INVALID_VALUE));
    }
}
