//! A client session on real NVIDIA GPUs: every forwarded call runs on the real driver.
//!
//! Isolation inside one server process: the session's contexts are its own (`cuCtxCreate`, also
//! for the "primary" context clients see, so a reset or a sticky fault of one client never
//! reaches another), its handles are numbers of this server mapped to driver handles, and every
//! device range a host-side call touches must lie in memory this session allocated or a global
//! of a module it loaded. Kernels are not checked (a GPU cannot be), but they run in the
//! session's own contexts, whose address spaces hold only the session's memory.

use super::{ctx_flags_ok, new_handle, Cx, Deferred, Limits, Notify, Primaries, ShmSegment};
use crate::device::gpu::{self, drv, GpuInfo, H};
use rgpu_protocol::error::{CuError, CuResult};
use rgpu_protocol::image;
use rgpu_protocol::messages::*;
use std::collections::{BTreeMap, HashMap};
use std::ffi::{c_void, CString};
use std::sync::{Arc, Mutex, MutexGuard};

const STREAM_LEGACY: u64 = 1;
const STREAM_PER_THREAD: u64 = 2;

struct Ctx {
    real: H,
    device: i32,
    flags: u32,
    id: u64,
    primary: bool,
    shmem_config: i32,
}

struct Stream {
    real: H,
    ctx: u64,
}

struct Event {
    real: H,
}

struct Function {
    module: u64,
    kernel: H,
    name: String,
    /// Parameter (offset, size) pairs and total size, once asked.
    layout: Option<(Vec<u64>, Vec<u64>, u64)>,
    /// The kernel's function in each context it was used in.
    per_ctx: HashMap<u64, H>,
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    /// `cuMemAlloc`/`cuMemAllocPitch`: counts towards the quota, freed with `cuMemFree`.
    Alloc,
    /// Stream-ordered allocation.
    Async,
    /// A module global: readable and writable, never freed by the client.
    Global,
}

struct Alloc {
    size: u64,
    ctx: u64,
    device: i32,
    kind: Kind,
}

#[derive(Default)]
struct State {
    contexts: HashMap<u64, Ctx>,
    primaries: Primaries,
    streams: HashMap<u64, Stream>,
    events: HashMap<u64, Event>,
    /// Per-thread default streams: (client thread, context) → driver stream.
    per_thread: HashMap<(u64, u64), H>,
    modules: HashMap<u64, H>,
    functions: HashMap<u64, Function>,
    allocs: BTreeMap<u64, Alloc>,
}

/// Images by content hash, shared by the sessions of this process, so each is uploaded once.
type ImageCache = (HashMap<Vec<u8>, Arc<Vec<u8>>>, usize);
static IMAGES: std::sync::LazyLock<Mutex<ImageCache>> = std::sync::LazyLock::new(Default::default);
const IMAGE_CACHE_BYTES: usize = 512 << 20;

/// The client's shared segment and the driver: registered (page-locked) at its first copy, so
/// that copies through it are DMA.
#[derive(Debug, Clone, Copy, PartialEq)]
enum ShmPin {
    /// Not tried yet (or its registration ended with its context).
    Untried,
    /// Registering failed: it stays pageable.
    Pageable,
    /// Registered in session context `ctx` (the registration ends with it); the driver took
    /// `overhead` bytes of device memory for it, which the session does not show the program.
    Pinned { ctx: u64, overhead: u64 },
}

/// One client's session on GPUs.
pub struct GpuSession {
    /// Session id (logs).
    pub id: u64,
    /// The GPUs this session sees, client ordinal → (info, driver device).
    devices: Vec<(GpuInfo, i32)>,
    driver_version: i32,
    st: Mutex<State>,
    deferred: Deferred,
    quota: Mutex<Option<u64>>,
    limits: Mutex<Limits>,
    shm: ShmSegment,
    /// Whether the shared segment is page-locked with the driver.
    shm_pin: Mutex<ShmPin>,
    local: std::sync::atomic::AtomicBool,
    /// The client's number for this server: the top byte of this session's handles.
    ns: std::sync::atomic::AtomicU8,
    #[allow(dead_code)]
    notify: Notify,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl GpuSession {
    /// A session on the GPUs `visible` (driver ordinals) of the loaded driver.
    pub fn new(id: u64, visible: &[i32], notify: Notify) -> CuResult<GpuSession> {
        let d = gpu::loaded().ok_or(CuError::NO_DEVICE)?;
        let mut devices = vec![];
        for &o in visible {
            let info = d
                .gpus
                .iter()
                .find(|g| g.ordinal == o)
                .ok_or(CuError::INVALID_DEVICE)?;
            devices.push((info.clone(), gpu::device(o)?));
        }
        Ok(GpuSession {
            id,
            devices,
            driver_version: d.version,
            st: Mutex::new(State::default()),
            deferred: Deferred::default(),
            quota: Mutex::new(None),
            limits: Mutex::new(Limits::default()),
            shm: ShmSegment::default(),
            shm_pin: Mutex::new(ShmPin::Untried),
            local: std::sync::atomic::AtomicBool::new(false),
            ns: Default::default(),
            notify,
        })
    }

    /// Sets the client's number for this server (before the session's first call). Device
    /// addresses are the driver's own; the client checks that its servers' do not overlap.
    pub fn set_namespace(&self, ns: u8) {
        self.ns.store(ns, std::sync::atomic::Ordering::Relaxed);
    }

    fn ns(&self) -> u8 {
        self.ns.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The driver version clients are told.
    pub fn driver_version(&self) -> i32 {
        self.driver_version
    }

    /// Limits the device memory this session may hold.
    pub fn set_memory_quota(&self, q: Option<u64>) {
        *lock(&self.quota) = q;
    }

    /// Sets the limits on streams, events and modules.
    pub fn set_limits(&self, l: Limits) {
        *lock(&self.limits) = l;
    }

    /// Fails when the session already holds `limit(limits)` objects counted by `count(state)`.
    fn within(
        &self,
        count: impl Fn(&State) -> usize,
        limit: impl Fn(&Limits) -> usize,
    ) -> CuResult<()> {
        if count(&self.st()) >= limit(&lock(&self.limits)) {
            return Err(CuError::OUT_OF_MEMORY);
        }
        Ok(())
    }

    /// Marks the client as connected from this machine.
    pub fn set_local(&self, local: bool) {
        self.local
            .store(local, std::sync::atomic::Ordering::Relaxed);
    }

    /// Records the failure of a pipelined call.
    pub fn defer_error(&self, thread: u64, e: CuError) {
        self.deferred.defer(thread, e);
    }

    /// Takes the pending failure of a client thread's pipelined calls.
    pub fn take_deferred_error(&self, thread: u64) -> Option<CuError> {
        self.deferred.take(thread)
    }

    /// Whether the stream `handle` has no pending work (then a small copy on it cannot block).
    pub fn stream_idle(&self, cx: &Cx, handle: u64) -> bool {
        self.bind(cx.ctx).is_ok()
            && self
                .stream(cx, handle)
                // SAFETY: a stream of this session.
                .is_ok_and(|s| unsafe { drv::cuStreamQuery(s) }.is_ok())
    }

    /// Number of live allocations (tests).
    pub fn allocation_count(&self) -> usize {
        lock(&self.st)
            .allocs
            .values()
            .filter(|a| a.kind != Kind::Global)
            .count()
    }

    fn st(&self) -> MutexGuard<'_, State> {
        lock(&self.st)
    }

    fn dev(&self, dev: i32) -> CuResult<&(GpuInfo, i32)> {
        usize::try_from(dev)
            .ok()
            .and_then(|d| self.devices.get(d))
            .ok_or(CuError::INVALID_DEVICE)
    }

    /// The driver's context behind session context `ctx`.
    fn real_ctx(&self, ctx: u64) -> CuResult<H> {
        self.st()
            .contexts
            .get(&ctx)
            .map(|c| c.real)
            .ok_or(CuError::INVALID_CONTEXT)
    }

    /// Makes the session context `ctx` (0: none) current on this thread.
    fn bind(&self, ctx: u64) -> CuResult<()> {
        let real = if ctx == 0 { 0 } else { self.real_ctx(ctx)? };
        // SAFETY: a context of this session, or none.
        unsafe { drv::cuCtxSetCurrent(real) }
    }

    /// The device of the calling thread's context (0 without one).
    fn cur_device(&self, cx: &Cx) -> i32 {
        self.st()
            .contexts
            .get(&cx.ctx)
            .map(|c| c.device)
            .unwrap_or(0)
    }

    fn new_real_ctx(&self, device: i32, flags: u32) -> CuResult<H> {
        let (_, d) = *self.dev(device)?;
        let mut c: H = 0;
        // SAFETY: out-pointer valid; the new context is popped so no thread keeps it current.
        unsafe {
            if drv::has("cuCtxCreate_v4") {
                drv::cuCtxCreate_v4(&mut c, std::ptr::null_mut(), flags, d)?;
            } else {
                drv::cuCtxCreate_v2(&mut c, flags, d)?;
            }
            let mut popped: H = 0;
            let _ = drv::cuCtxPopCurrent_v2(&mut popped);
        }
        Ok(c)
    }

    fn add_ctx(
        &self,
        st: &mut State,
        handle: u64,
        device: i32,
        flags: u32,
        primary: bool,
    ) -> CuResult<()> {
        let real = self.new_real_ctx(device, flags)?;
        st.contexts.insert(
            handle,
            Ctx {
                real,
                device,
                flags,
                id: handle >> 4,
                primary,
                shmem_config: 0,
            },
        );
        Ok(())
    }

    /// Destroys a context and forgets everything that lived in it.
    fn teardown_ctx(&self, st: &mut State, handle: u64) {
        let Some(c) = st.contexts.remove(&handle) else {
            return;
        };
        st.streams.retain(|_, s| s.ctx != handle);
        st.per_thread.retain(|(_, c), _| *c != handle);
        st.allocs.retain(|_, a| a.ctx != handle);
        for f in st.functions.values_mut() {
            f.per_ctx.remove(&handle);
        }
        self.unpin_shm_in(handle, c.real);
        // SAFETY: the session's own context; the driver frees its memory, streams and events.
        if let Err(e) = unsafe { drv::cuCtxDestroy_v2(c.real) } {
            tracing::warn!("session {}: destroying a context failed: {e}", self.id);
        }
    }

    /// The driver stream for `handle` as seen by the calling thread (context must be bound).
    fn stream(&self, cx: &Cx, handle: u64) -> CuResult<H> {
        if handle == STREAM_LEGACY || (handle == 0 && !cx.per_thread) {
            return Ok(if handle == 0 { 0 } else { 1 });
        }
        let mut st = self.st();
        if handle == STREAM_PER_THREAD || handle == 0 {
            if !st.contexts.contains_key(&cx.ctx) {
                return Err(CuError::INVALID_CONTEXT);
            }
            if let Some(s) = st.per_thread.get(&(cx.thread, cx.ctx)) {
                return Ok(*s);
            }
            // A blocking stream behaves as a per-thread default stream: ordered with the
            // legacy stream, concurrent with other threads' streams.
            let mut s: H = 0;
            // SAFETY: out-pointer valid; the caller bound the context.
            unsafe { drv::cuStreamCreate(&mut s, 0)? };
            st.per_thread.insert((cx.thread, cx.ctx), s);
            return Ok(s);
        }
        st.streams
            .get(&handle)
            .map(|s| s.real)
            .ok_or(CuError::INVALID_HANDLE)
    }

    fn event(&self, handle: u64) -> CuResult<H> {
        self.st()
            .events
            .get(&handle)
            .map(|e| e.real)
            .ok_or(CuError::INVALID_HANDLE)
    }

    /// Checks that `[ptr, ptr+len)` lies in memory of this session.
    fn check(&self, ptr: u64, len: u64) -> CuResult<()> {
        let st = self.st();
        let (&base, a) = st
            .allocs
            .range(..=ptr)
            .next_back()
            .ok_or(CuError::INVALID_VALUE)?;
        let end = ptr.checked_add(len).ok_or(CuError::INVALID_VALUE)?;
        if end > base + a.size {
            return Err(CuError::INVALID_VALUE);
        }
        Ok(())
    }

    fn check_2d(&self, ptr: u64, pitch: u64, width: u64, height: u64) -> CuResult<()> {
        if width == 0 || height == 0 {
            return Ok(());
        }
        if width > pitch && height > 1 {
            return Err(CuError::INVALID_VALUE);
        }
        let span = (height - 1)
            .checked_mul(pitch)
            .and_then(|v| v.checked_add(width))
            .ok_or(CuError::INVALID_VALUE)?;
        self.check(ptr, span)
    }

    fn held_bytes(&self, st: &State) -> u64 {
        st.allocs
            .values()
            .filter(|a| a.kind != Kind::Global)
            .map(|a| a.size)
            .sum()
    }

    fn reserve(&self, st: &State, size: u64) -> CuResult<()> {
        if let Some(q) = *lock(&self.quota) {
            if self.held_bytes(st).saturating_add(size) > q {
                return Err(CuError::OUT_OF_MEMORY);
            }
        }
        Ok(())
    }

    fn record_alloc(&self, cx: &Cx, base: u64, size: u64, kind: Kind) {
        let device = self.cur_device(cx);
        self.st().allocs.insert(
            base,
            Alloc {
                size,
                ctx: cx.ctx,
                device,
                kind,
            },
        );
    }

    /// The kernel of function handle `f` and its driver function in the bound context.
    fn function(&self, cx: &Cx, f: u64) -> CuResult<H> {
        let mut st = self.st();
        let func = st.functions.get_mut(&f).ok_or(CuError::INVALID_HANDLE)?;
        if let Some(h) = func.per_ctx.get(&cx.ctx) {
            return Ok(*h);
        }
        let mut h: H = 0;
        // SAFETY: a kernel of this session; the caller bound the context.
        unsafe { drv::cuKernelGetFunction(&mut h, func.kernel)? };
        func.per_ctx.insert(cx.ctx, h);
        Ok(h)
    }

    fn kernel(&self, f: u64) -> CuResult<H> {
        self.st()
            .functions
            .get(&f)
            .map(|f| f.kernel)
            .ok_or(CuError::INVALID_HANDLE)
    }

    /// Makes a context current for a query about a kernel: the caller's, else any of the
    /// session's (the driver loads a library's kernels lazily, into the current context).
    fn bind_for_kernel(&self, cx: &Cx) -> CuResult<()> {
        if cx.ctx != 0 {
            return self.bind(cx.ctx);
        }
        let any = self.st().contexts.keys().next().copied().unwrap_or(0);
        self.bind(any)
    }

    fn layout(&self, cx: &Cx, f: u64) -> CuResult<(Vec<u64>, Vec<u64>, u64)> {
        let k = self.kernel(f)?;
        self.bind_for_kernel(cx)?;
        if let Some(l) = self.st().functions.get(&f).and_then(|f| f.layout.clone()) {
            return Ok(l);
        }
        let (mut offs, mut sizes, mut total) = (vec![], vec![], 0u64);
        for i in 0.. {
            let (mut o, mut s) = (0usize, 0usize);
            // SAFETY: a kernel of this session, valid out-pointers.
            match unsafe { drv::cuKernelGetParamInfo(k, i, &mut o, &mut s) } {
                Ok(()) => {
                    offs.push(o as u64);
                    sizes.push(s as u64);
                    total = total.max((o + s) as u64);
                }
                Err(CuError::INVALID_VALUE) => break,
                Err(e) => return Err(e),
            }
        }
        let l = (offs, sizes, total);
        if let Some(func) = self.st().functions.get_mut(&f) {
            func.layout = Some(l.clone());
        }
        Ok(l)
    }

    fn kernel_attr(&self, cx: &Cx, f: u64, attr: i32) -> CuResult<i32> {
        let k = self.kernel(f)?;
        self.bind_for_kernel(cx)?;
        let (_, d) = *self.dev(self.cur_device(cx))?;
        let mut v = 0;
        // SAFETY: a kernel of this session, valid out-pointer.
        unsafe { drv::cuKernelGetAttribute(&mut v, attr, k, d)? };
        Ok(v)
    }

    /// Host→device copy of `n` bytes at `src` (which stays valid for the call).
    fn h2d(
        &self,
        cx: &Cx,
        dst: u64,
        src: *const u8,
        n: u64,
        stream: u64,
        wait: bool,
    ) -> CuResult<()> {
        self.bind(cx.ctx)?;
        self.check(dst, n)?;
        let s = self.stream(cx, stream)?;
        // SAFETY: `src` holds `n` bytes; the range is the session's. For pageable memory the
        // driver has staged the bytes when the async call returns.
        unsafe {
            drv::cuMemcpyHtoDAsync_v2(dst, src.cast(), n as usize, s)?;
            if wait {
                drv::cuStreamSynchronize(s)?;
            }
        }
        Ok(())
    }

    /// Takes allocation `dptr` (not a module global) out of the ledger.
    fn take_alloc(&self, dptr: u64) -> CuResult<Alloc> {
        let mut st = self.st();
        if !st.allocs.get(&dptr).is_some_and(|a| a.kind != Kind::Global) {
            return Err(CuError::INVALID_VALUE);
        }
        st.allocs.remove(&dptr).ok_or(CuError::INVALID_VALUE)
    }

    /// Page-locks the shared segment with the driver, once, at its first copy (a context is
    /// needed): copies through it are then DMA, as from pinned memory. Failure leaves it
    /// pageable.
    fn pin_shm(&self, cx: &Cx) {
        // Bound before the pin lock is taken: teardown holds the state lock, then takes it.
        if *lock(&self.shm_pin) != ShmPin::Untried || self.bind(cx.ctx).is_err() {
            return;
        }
        let mut pin = lock(&self.shm_pin);
        let Some((base, size)) = self.shm.mapping().filter(|_| *pin == ShmPin::Untried) else {
            return;
        };
        let free_now = || {
            let (mut free, mut total) = (0usize, 0usize);
            // SAFETY: valid out-pointers, a bound context.
            unsafe { drv::cuMemGetInfo_v2(&mut free, &mut total) }.map(|_| free as u64)
        };
        let before = free_now();
        // SAFETY: the segment is mapped read-write for `size` bytes for the session's life; it
        // is unregistered before it is unmapped (Drop). 1 = CU_MEMHOSTREGISTER_PORTABLE.
        *pin = match unsafe { drv::cuMemHostRegister_v2(base as *mut std::ffi::c_void, size, 1) } {
            Ok(()) => {
                tracing::info!("session {}: shared segment page-locked", self.id);
                ShmPin::Pinned {
                    ctx: cx.ctx,
                    // Bounded: another session's allocation in between must not count.
                    overhead: match (before, free_now()) {
                        (Ok(b), Ok(a)) => b.saturating_sub(a).min(16 << 20),
                        _ => 0,
                    },
                }
            }
            Err(e) => {
                tracing::info!(
                    "session {}: the shared segment stays pageable (registering it: {e:?})",
                    self.id
                );
                ShmPin::Pageable
            }
        };
    }

    /// Before context `handle` (driver context `real`) is destroyed: if the shared segment was
    /// registered in it, unregisters it there; the next copy registers it again in a live one.
    fn unpin_shm_in(&self, handle: u64, real: H) {
        let mut pin = lock(&self.shm_pin);
        if !matches!(*pin, ShmPin::Pinned { ctx, .. } if ctx == handle) {
            return;
        }
        if let Some((base, _)) = self.shm.mapping() {
            // SAFETY: the context is still alive; the range is the one registered in it.
            unsafe {
                if drv::cuCtxSetCurrent(real).is_ok() {
                    let _ = drv::cuMemHostUnregister(base as *mut std::ffi::c_void);
                }
            }
        }
        *pin = ShmPin::Untried;
    }

    /// Device→host copy into `out`, waiting for it.
    fn d2h(&self, cx: &Cx, src: u64, out: &mut [u8], stream: u64) -> CuResult<()> {
        self.bind(cx.ctx)?;
        self.check(src, out.len() as u64)?;
        let s = self.stream(cx, stream)?;
        // SAFETY: `out` is writable for its length; the range is the session's.
        unsafe {
            drv::cuMemcpyDtoHAsync_v2(out.as_mut_ptr().cast(), src, out.len(), s)?;
            drv::cuStreamSynchronize(s)
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn memset(
        &self,
        cx: &Cx,
        dst: u64,
        pitch: u64,
        value: u32,
        elt: u64,
        width: u64,
        height: u64,
        stream: u64,
    ) -> CuResult<()> {
        self.bind(cx.ctx)?;
        if !dst.is_multiple_of(elt) {
            return Err(CuError::INVALID_VALUE);
        }
        let pitch = if height <= 1 { width * elt } else { pitch };
        self.check_2d(dst, pitch, width * elt, height)?;
        let s = self.stream(cx, stream)?;
        let (p, w, h) = (pitch as usize, width as usize, height as usize);
        // SAFETY: the range is the session's.
        unsafe {
            match elt {
                1 => drv::cuMemsetD2D8Async(dst, p, value as u8, w, h, s),
                2 => drv::cuMemsetD2D16Async(dst, p, value as u16, w, h, s),
                _ => drv::cuMemsetD2D32Async(dst, p, value, w, h, s),
            }
        }
    }
}

impl Drop for GpuSession {
    fn drop(&mut self) {
        // Tearing the contexts down also unregisters the shared segment (before it is unmapped).
        let mut st = self.st();
        let handles: Vec<u64> = st.contexts.keys().copied().collect();
        for h in handles {
            self.teardown_ctx(&mut st, h);
        }
        for (_, lib) in st.modules.drain() {
            // SAFETY: the session's own library.
            let _ = unsafe { drv::cuLibraryUnload(lib) };
        }
    }
}

fn bytes_of(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

impl Handler for GpuSession {
    type Cx = Cx;

    fn init(&self, _cx: &Cx, req: InitReq) -> CuResult<InitRep> {
        if req.flags != 0 {
            return Err(CuError::INVALID_VALUE);
        }
        if self.devices.is_empty() {
            return Err(CuError::NO_DEVICE);
        }
        Ok(InitRep {
            driver_version: self.driver_version,
        })
    }

    fn device_get_count(&self, _cx: &Cx, _req: DeviceGetCountReq) -> CuResult<DeviceGetCountRep> {
        Ok(DeviceGetCountRep {
            count: self.devices.len() as i32,
        })
    }

    fn device_get(&self, _cx: &Cx, req: DeviceGetReq) -> CuResult<DeviceGetRep> {
        self.dev(req.ordinal)?;
        Ok(DeviceGetRep {
            device: req.ordinal,
        })
    }

    fn device_get_name(&self, _cx: &Cx, req: DeviceGetNameReq) -> CuResult<DeviceGetNameRep> {
        if req.len <= 0 {
            return Err(CuError::INVALID_VALUE);
        }
        Ok(DeviceGetNameRep {
            name: bytes_of(&self.dev(req.dev)?.0.name),
        })
    }

    fn device_get_uuid(&self, _cx: &Cx, req: DeviceGetUuidReq) -> CuResult<DeviceGetUuidRep> {
        Ok(DeviceGetUuidRep {
            uuid: self.dev(req.dev)?.0.uuid.to_vec(),
        })
    }

    fn device_total_mem(&self, _cx: &Cx, req: DeviceTotalMemReq) -> CuResult<DeviceTotalMemRep> {
        let g = &self.dev(req.dev)?.0;
        let bytes = lock(&self.quota).map_or(g.total_mem, |q| q.min(g.total_mem));
        Ok(DeviceTotalMemRep { bytes })
    }

    fn device_get_attribute(
        &self,
        _cx: &Cx,
        req: DeviceGetAttributeReq,
    ) -> CuResult<DeviceGetAttributeRep> {
        Ok(DeviceGetAttributeRep {
            value: self.dev(req.dev)?.0.attribute(req.attrib)?,
        })
    }

    fn device_get_pci_bus_id(
        &self,
        _cx: &Cx,
        req: DeviceGetPciBusIdReq,
    ) -> CuResult<DeviceGetPciBusIdRep> {
        if req.len <= 0 {
            return Err(CuError::INVALID_VALUE);
        }
        Ok(DeviceGetPciBusIdRep {
            pci_bus_id: bytes_of(&self.dev(req.dev)?.0.pci_bus_id),
        })
    }

    fn device_get_by_pci_bus_id(
        &self,
        _cx: &Cx,
        req: DeviceGetByPciBusIdReq,
    ) -> CuResult<DeviceGetByPciBusIdRep> {
        let want = req.pci_bus_id.trim().to_ascii_lowercase();
        for (i, (g, _)) in self.devices.iter().enumerate() {
            let id = g.pci_bus_id.to_ascii_lowercase();
            if id == want || id.strip_prefix("0000:") == Some(want.as_str()) {
                return Ok(DeviceGetByPciBusIdRep { dev: i as i32 });
            }
        }
        Err(CuError::INVALID_DEVICE)
    }

    fn device_compute_capability(
        &self,
        _cx: &Cx,
        req: DeviceComputeCapabilityReq,
    ) -> CuResult<DeviceComputeCapabilityRep> {
        let (major, minor) = self.dev(req.dev)?.0.cc();
        Ok(DeviceComputeCapabilityRep { major, minor })
    }

    fn device_can_access_peer(
        &self,
        _cx: &Cx,
        req: DeviceCanAccessPeerReq,
    ) -> CuResult<DeviceCanAccessPeerRep> {
        let (_, a) = *self.dev(req.dev)?;
        let (_, b) = *self.dev(req.peer_dev)?;
        let mut can = 0;
        // SAFETY: driver devices, valid out-pointer.
        unsafe { drv::cuDeviceCanAccessPeer(&mut can, a, b)? };
        Ok(DeviceCanAccessPeerRep { can_access: can })
    }

    fn device_get_p2p_attribute(
        &self,
        _cx: &Cx,
        req: DeviceGetP2pAttributeReq,
    ) -> CuResult<DeviceGetP2pAttributeRep> {
        let (_, a) = *self.dev(req.src)?;
        let (_, b) = *self.dev(req.dst)?;
        let mut value = 0;
        // SAFETY: driver devices, valid out-pointer.
        unsafe { drv::cuDeviceGetP2PAttribute(&mut value, req.attrib, a, b)? };
        Ok(DeviceGetP2pAttributeRep { value })
    }

    fn device_get_texture1d_linear_max_width(
        &self,
        _cx: &Cx,
        req: DeviceGetTexture1dLinearMaxWidthReq,
    ) -> CuResult<DeviceGetTexture1dLinearMaxWidthRep> {
        let (_, d) = *self.dev(req.dev)?;
        let mut w = 0usize;
        // SAFETY: valid out-pointer.
        unsafe {
            drv::cuDeviceGetTexture1DLinearMaxWidth(&mut w, req.format, req.num_channels, d)?
        };
        Ok(DeviceGetTexture1dLinearMaxWidthRep {
            max_width: w as u64,
        })
    }

    fn device_get_properties(
        &self,
        _cx: &Cx,
        req: DeviceGetPropertiesReq,
    ) -> CuResult<DeviceGetPropertiesRep> {
        let g = &self.dev(req.dev)?.0;
        let props = (1..=14)
            .map(|a| g.attribute(a))
            .collect::<CuResult<Vec<_>>>()?;
        Ok(DeviceGetPropertiesRep { props })
    }

    fn device_summary(&self, _cx: &Cx, req: DeviceSummaryReq) -> CuResult<DeviceSummaryRep> {
        let g = &self.dev(req.dev)?.0;
        Ok(DeviceSummaryRep {
            attributes: g.attributes.clone(),
            name: g.name.clone(),
            uuid: g.uuid.to_vec(),
            total_mem: lock(&self.quota).map_or(g.total_mem, |q| q.min(g.total_mem)),
        })
    }

    fn device_primary_ctx_retain(
        &self,
        _cx: &Cx,
        req: DevicePrimaryCtxRetainReq,
    ) -> CuResult<DevicePrimaryCtxRetainRep> {
        self.dev(req.dev)?;
        let mut st = self.st();
        let (handle, flags) = {
            let p = st.primaries.entry(req.dev, self.ns());
            (p.handle, p.flags)
        };
        if !st.contexts.contains_key(&handle) {
            self.add_ctx(&mut st, handle, req.dev, flags, true)?;
        }
        st.primaries.entry(req.dev, self.ns()).refs += 1;
        Ok(DevicePrimaryCtxRetainRep { ctx: handle })
    }

    fn device_primary_ctx_release(
        &self,
        _cx: &Cx,
        req: DevicePrimaryCtxReleaseReq,
    ) -> CuResult<DevicePrimaryCtxReleaseRep> {
        self.dev(req.dev)?;
        let mut st = self.st();
        if let Some(h) = st.primaries.release(req.dev)? {
            self.teardown_ctx(&mut st, h);
        }
        Ok(DevicePrimaryCtxReleaseRep {})
    }

    fn device_primary_ctx_reset(
        &self,
        _cx: &Cx,
        req: DevicePrimaryCtxResetReq,
    ) -> CuResult<DevicePrimaryCtxResetRep> {
        self.dev(req.dev)?;
        let mut st = self.st();
        if let Some(h) = st.primaries.reset(req.dev) {
            self.teardown_ctx(&mut st, h);
        }
        self.deferred.clear();
        Ok(DevicePrimaryCtxResetRep {})
    }

    fn device_primary_ctx_get_state(
        &self,
        _cx: &Cx,
        req: DevicePrimaryCtxGetStateReq,
    ) -> CuResult<DevicePrimaryCtxGetStateRep> {
        self.dev(req.dev)?;
        let st = self.st();
        let (flags, active) = st
            .primaries
            .state(req.dev, |h| st.contexts.contains_key(&h));
        Ok(DevicePrimaryCtxGetStateRep { flags, active })
    }

    fn device_primary_ctx_set_flags(
        &self,
        _cx: &Cx,
        req: DevicePrimaryCtxSetFlagsReq,
    ) -> CuResult<DevicePrimaryCtxSetFlagsRep> {
        self.dev(req.dev)?;
        if !ctx_flags_ok(req.flags) {
            return Err(CuError::INVALID_VALUE);
        }
        let mut st = self.st();
        let p = st.primaries.entry(req.dev, self.ns());
        p.flags = req.flags;
        let h = p.handle;
        if let Some(c) = st.contexts.get_mut(&h) {
            c.flags = req.flags;
        }
        Ok(DevicePrimaryCtxSetFlagsRep {})
    }

    fn device_primary_ctx_handle(
        &self,
        _cx: &Cx,
        req: DevicePrimaryCtxHandleReq,
    ) -> CuResult<DevicePrimaryCtxHandleRep> {
        self.dev(req.dev)?;
        let mut st = self.st();
        let p = st.primaries.entry(req.dev, self.ns());
        Ok(DevicePrimaryCtxHandleRep { ctx: p.handle })
    }

    fn ctx_create(&self, _cx: &Cx, req: CtxCreateReq) -> CuResult<CtxCreateRep> {
        self.dev(req.dev)?;
        if !ctx_flags_ok(req.flags) {
            return Err(CuError::INVALID_VALUE);
        }
        let handle = new_handle(self.ns());
        let mut st = self.st();
        self.add_ctx(&mut st, handle, req.dev, req.flags, false)?;
        Ok(CtxCreateRep { ctx: handle })
    }

    fn ctx_destroy(&self, _cx: &Cx, req: CtxDestroyReq) -> CuResult<CtxDestroyRep> {
        let mut st = self.st();
        let c = st.contexts.get(&req.ctx).ok_or(CuError::INVALID_CONTEXT)?;
        if c.primary {
            return Err(CuError::INVALID_CONTEXT);
        }
        self.teardown_ctx(&mut st, req.ctx);
        Ok(CtxDestroyRep {})
    }

    fn ctx_info(&self, _cx: &Cx, req: CtxInfoReq) -> CuResult<CtxInfoRep> {
        let st = self.st();
        if let Some(c) = st.contexts.get(&req.ctx) {
            return Ok(CtxInfoRep {
                device: c.device,
                flags: c.flags,
                id: c.id,
                api_version: 3020,
            });
        }
        // An inactive primary context is still a valid handle.
        st.primaries
            .find(req.ctx)
            .map(|(device, flags)| CtxInfoRep {
                device,
                flags,
                id: 0,
                api_version: 3020,
            })
            .ok_or(CuError::INVALID_CONTEXT)
    }

    fn ctx_synchronize(&self, _cx: &Cx, req: CtxSynchronizeReq) -> CuResult<CtxSynchronizeRep> {
        if req.ctx == 0 {
            return Err(CuError::INVALID_CONTEXT);
        }
        self.bind(req.ctx)?;
        // SAFETY: a bound context of this session.
        unsafe { drv::cuCtxSynchronize()? };
        Ok(CtxSynchronizeRep {})
    }

    fn ctx_set_flags(&self, cx: &Cx, req: CtxSetFlagsReq) -> CuResult<CtxSetFlagsRep> {
        if !ctx_flags_ok(req.flags) {
            return Err(CuError::INVALID_VALUE);
        }
        self.bind(cx.ctx)?;
        // SAFETY: a bound context of this session.
        unsafe { drv::cuCtxSetFlags(req.flags)? };
        if let Some(c) = self.st().contexts.get_mut(&cx.ctx) {
            c.flags = req.flags;
        }
        Ok(CtxSetFlagsRep {})
    }

    fn ctx_get_limit(&self, cx: &Cx, req: CtxGetLimitReq) -> CuResult<CtxGetLimitRep> {
        self.bind(cx.ctx)?;
        let mut v = 0usize;
        // SAFETY: valid out-pointer.
        unsafe { drv::cuCtxGetLimit(&mut v, req.limit)? };
        Ok(CtxGetLimitRep { value: v as u64 })
    }

    fn ctx_set_limit(&self, cx: &Cx, req: CtxSetLimitReq) -> CuResult<CtxSetLimitRep> {
        self.bind(cx.ctx)?;
        // SAFETY: a bound context of this session.
        unsafe { drv::cuCtxSetLimit(req.limit, req.value as usize)? };
        Ok(CtxSetLimitRep {})
    }

    fn ctx_get_cache_config(
        &self,
        cx: &Cx,
        _req: CtxGetCacheConfigReq,
    ) -> CuResult<CtxGetCacheConfigRep> {
        self.bind(cx.ctx)?;
        let mut config = 0;
        // SAFETY: valid out-pointer.
        unsafe { drv::cuCtxGetCacheConfig(&mut config)? };
        Ok(CtxGetCacheConfigRep { config })
    }

    fn ctx_set_cache_config(
        &self,
        cx: &Cx,
        req: CtxSetCacheConfigReq,
    ) -> CuResult<CtxSetCacheConfigRep> {
        self.bind(cx.ctx)?;
        // SAFETY: a bound context of this session.
        unsafe { drv::cuCtxSetCacheConfig(req.config)? };
        Ok(CtxSetCacheConfigRep {})
    }

    fn ctx_get_stream_priority_range(
        &self,
        cx: &Cx,
        _req: CtxGetStreamPriorityRangeReq,
    ) -> CuResult<CtxGetStreamPriorityRangeRep> {
        self.bind(cx.ctx)?;
        let (mut least, mut greatest) = (0, 0);
        // SAFETY: valid out-pointers.
        unsafe { drv::cuCtxGetStreamPriorityRange(&mut least, &mut greatest)? };
        Ok(CtxGetStreamPriorityRangeRep { least, greatest })
    }

    fn ctx_get_shared_mem_config(
        &self,
        cx: &Cx,
        _req: CtxGetSharedMemConfigReq,
    ) -> CuResult<CtxGetSharedMemConfigRep> {
        // Bank-size configuration has no effect on GPUs since Volta; the value is remembered.
        let st = self.st();
        let c = st.contexts.get(&cx.ctx).ok_or(CuError::INVALID_CONTEXT)?;
        Ok(CtxGetSharedMemConfigRep {
            config: c.shmem_config,
        })
    }

    fn ctx_enable_peer_access(
        &self,
        cx: &Cx,
        req: CtxEnablePeerAccessReq,
    ) -> CuResult<CtxEnablePeerAccessRep> {
        let peer = self.real_ctx(req.peer_ctx)?;
        self.bind(cx.ctx)?;
        // SAFETY: the bound context and `peer` are contexts of this session.
        unsafe { drv::cuCtxEnablePeerAccess(peer, req.flags)? };
        Ok(CtxEnablePeerAccessRep {})
    }

    fn ctx_disable_peer_access(
        &self,
        cx: &Cx,
        req: CtxDisablePeerAccessReq,
    ) -> CuResult<CtxDisablePeerAccessRep> {
        let peer = self.real_ctx(req.peer_ctx)?;
        self.bind(cx.ctx)?;
        // SAFETY: the bound context and `peer` are contexts of this session.
        unsafe { drv::cuCtxDisablePeerAccess(peer)? };
        Ok(CtxDisablePeerAccessRep {})
    }

    fn ctx_set_shared_mem_config(
        &self,
        cx: &Cx,
        req: CtxSetSharedMemConfigReq,
    ) -> CuResult<CtxSetSharedMemConfigRep> {
        if !(0..=2).contains(&req.config) {
            return Err(CuError::INVALID_VALUE);
        }
        let mut st = self.st();
        let c = st
            .contexts
            .get_mut(&cx.ctx)
            .ok_or(CuError::INVALID_CONTEXT)?;
        c.shmem_config = req.config;
        Ok(CtxSetSharedMemConfigRep {})
    }

    fn mem_alloc(&self, cx: &Cx, req: MemAllocReq) -> CuResult<MemAllocRep> {
        self.bind(cx.ctx)?;
        if req.bytesize == 0 {
            return Err(CuError::INVALID_VALUE);
        }
        self.reserve(&self.st(), req.bytesize)?;
        let mut p = 0u64;
        // SAFETY: valid out-pointer; a bound context of this session.
        unsafe { drv::cuMemAlloc_v2(&mut p, req.bytesize as usize)? };
        self.record_alloc(cx, p, req.bytesize, Kind::Alloc);
        Ok(MemAllocRep { dptr: p })
    }

    fn mem_free(&self, cx: &Cx, req: MemFreeReq) -> CuResult<MemFreeRep> {
        if req.dptr == 0 {
            return Ok(MemFreeRep {});
        }
        // Out of the ledger before the driver frees it: once freed, the driver may hand the same
        // address to another thread's allocation, whose ledger entry must not be removed here.
        let a = self.take_alloc(req.dptr)?;
        let r = self
            .bind(if a.ctx != 0 { a.ctx } else { cx.ctx })
            .and_then(|_| {
                // SAFETY: an allocation of this session, no longer in its ledger.
                unsafe { drv::cuMemFree_v2(req.dptr) }
            });
        if r.is_err() {
            self.st().allocs.insert(req.dptr, a);
        }
        r.map(|_| MemFreeRep {})
    }

    fn mem_get_info(&self, cx: &Cx, _req: MemGetInfoReq) -> CuResult<MemGetInfoRep> {
        self.bind(cx.ctx)?;
        let (mut free, mut total) = (0usize, 0usize);
        // SAFETY: valid out-pointers.
        unsafe { drv::cuMemGetInfo_v2(&mut free, &mut total)? };
        let (mut free, mut total) = (free as u64, total as u64);
        // The driver's bookkeeping for rgpu's own page-locked segment is not the program's.
        if let ShmPin::Pinned { overhead, .. } = *lock(&self.shm_pin) {
            free = (free + overhead).min(total);
        }
        if let Some(q) = *lock(&self.quota) {
            let held = self.held_bytes(&self.st());
            total = total.min(q);
            free = free.min(q.saturating_sub(held));
        }
        Ok(MemGetInfoRep { free, total })
    }

    fn mem_get_address_range(
        &self,
        cx: &Cx,
        req: MemGetAddressRangeReq,
    ) -> CuResult<MemGetAddressRangeRep> {
        let st = self.st();
        if !st.contexts.contains_key(&cx.ctx) {
            return Err(CuError::INVALID_CONTEXT);
        }
        let (&base, a) = st
            .allocs
            .range(..=req.dptr)
            .next_back()
            .filter(|(b, a)| req.dptr < **b + a.size)
            .ok_or(CuError::NOT_FOUND)?;
        Ok(MemGetAddressRangeRep { base, size: a.size })
    }

    fn mem_alloc_pitch(&self, cx: &Cx, req: MemAllocPitchReq) -> CuResult<MemAllocPitchRep> {
        self.bind(cx.ctx)?;
        if !matches!(req.element_size, 4 | 8 | 16) || req.width == 0 || req.height == 0 {
            return Err(CuError::INVALID_VALUE);
        }
        self.reserve(&self.st(), req.width.saturating_mul(req.height))?;
        let (mut p, mut pitch) = (0u64, 0usize);
        // SAFETY: valid out-pointers; a bound context of this session.
        unsafe {
            drv::cuMemAllocPitch_v2(
                &mut p,
                &mut pitch,
                req.width as usize,
                req.height as usize,
                req.element_size,
            )?
        };
        self.record_alloc(cx, p, pitch as u64 * req.height, Kind::Alloc);
        Ok(MemAllocPitchRep {
            dptr: p,
            pitch: pitch as u64,
        })
    }

    fn memcpy_hto_d(&self, cx: &Cx, req: MemcpyHtoDReq) -> CuResult<MemcpyHtoDRep> {
        if req.src.len() as u64 != req.byte_count {
            return Err(CuError::INVALID_VALUE);
        }
        self.h2d(cx, req.dst, req.src.as_ptr(), req.byte_count, 0, true)?;
        Ok(MemcpyHtoDRep {})
    }

    fn memcpy_dto_h(&self, cx: &Cx, req: MemcpyDtoHReq) -> CuResult<MemcpyDtoHRep> {
        let mut out =
            vec![0u8; usize::try_from(req.byte_count).map_err(|_| CuError::INVALID_VALUE)?];
        self.d2h(cx, req.src, &mut out, 0)?;
        Ok(MemcpyDtoHRep { dst: out })
    }

    fn memcpy_dto_d(&self, cx: &Cx, req: MemcpyDtoDReq) -> CuResult<MemcpyDtoDRep> {
        self.memcpy_dto_d_async(
            cx,
            MemcpyDtoDAsyncReq {
                dst: req.dst,
                src: req.src,
                byte_count: req.byte_count,
                stream: 0,
            },
        )?;
        Ok(MemcpyDtoDRep {})
    }

    fn memcpy_hto_d_async(&self, cx: &Cx, req: MemcpyHtoDAsyncReq) -> CuResult<MemcpyHtoDAsyncRep> {
        if req.src.len() as u64 != req.byte_count {
            return Err(CuError::INVALID_VALUE);
        }
        self.h2d(
            cx,
            req.dst,
            req.src.as_ptr(),
            req.byte_count,
            req.stream,
            false,
        )?;
        Ok(MemcpyHtoDAsyncRep {})
    }

    fn memcpy_dto_h_async(&self, cx: &Cx, req: MemcpyDtoHAsyncReq) -> CuResult<MemcpyDtoHAsyncRep> {
        let mut out =
            vec![0u8; usize::try_from(req.byte_count).map_err(|_| CuError::INVALID_VALUE)?];
        self.d2h(cx, req.src, &mut out, req.stream)?;
        Ok(MemcpyDtoHAsyncRep { dst: out })
    }

    fn memcpy_dto_d_async(&self, cx: &Cx, req: MemcpyDtoDAsyncReq) -> CuResult<MemcpyDtoDAsyncRep> {
        self.bind(cx.ctx)?;
        self.check(req.src, req.byte_count)?;
        self.check(req.dst, req.byte_count)?;
        let s = self.stream(cx, req.stream)?;
        // SAFETY: both ranges are the session's.
        unsafe { drv::cuMemcpyDtoDAsync_v2(req.dst, req.src, req.byte_count as usize, s)? };
        Ok(MemcpyDtoDAsyncRep {})
    }

    fn memcpy2d(&self, cx: &Cx, req: Memcpy2DReq) -> CuResult<Memcpy2DRep> {
        use cudarc::driver::sys::{CUmemorytype, CUDA_MEMCPY2D};
        let (w, h) = (req.width, req.height);
        if w == 0 || h == 0 {
            return Ok(Memcpy2DRep::default());
        }
        self.bind(cx.ctx)?;
        let stream = if req.is_async { req.stream } else { 0 };
        let s = self.stream(cx, stream)?;
        // CUmemorytype has no zero value: the description is built field by field.
        let mut p = CUDA_MEMCPY2D {
            srcXInBytes: 0,
            srcY: 0,
            srcMemoryType: CUmemorytype::CU_MEMORYTYPE_DEVICE,
            srcHost: std::ptr::null(),
            srcDevice: 0,
            srcArray: std::ptr::null_mut(),
            srcPitch: 0,
            dstXInBytes: 0,
            dstY: 0,
            dstMemoryType: CUmemorytype::CU_MEMORYTYPE_DEVICE,
            dstHost: std::ptr::null_mut(),
            dstDevice: 0,
            dstArray: std::ptr::null_mut(),
            dstPitch: 0,
            WidthInBytes: w as usize,
            Height: h as usize,
        };
        let total = w.checked_mul(h).ok_or(CuError::INVALID_VALUE)?;
        let mut out = vec![];
        match req.mode {
            0 => {
                if req.data.len() as u64 != total {
                    return Err(CuError::INVALID_VALUE);
                }
                self.check_2d(req.dst, req.dst_pitch, w, h)?;
                p.srcMemoryType = CUmemorytype::CU_MEMORYTYPE_HOST;
                p.srcHost = req.data.as_ptr().cast();
                p.srcPitch = w as usize;
                p.dstMemoryType = CUmemorytype::CU_MEMORYTYPE_DEVICE;
                p.dstDevice = req.dst;
                p.dstPitch = req.dst_pitch as usize;
            }
            1 => {
                self.check_2d(req.src, req.src_pitch, w, h)?;
                out = vec![0u8; total as usize];
                p.srcMemoryType = CUmemorytype::CU_MEMORYTYPE_DEVICE;
                p.srcDevice = req.src;
                p.srcPitch = req.src_pitch as usize;
                p.dstMemoryType = CUmemorytype::CU_MEMORYTYPE_HOST;
                p.dstHost = out.as_mut_ptr().cast();
                p.dstPitch = w as usize;
            }
            2 => {
                self.check_2d(req.src, req.src_pitch, w, h)?;
                self.check_2d(req.dst, req.dst_pitch, w, h)?;
                p.srcMemoryType = CUmemorytype::CU_MEMORYTYPE_DEVICE;
                p.srcDevice = req.src;
                p.srcPitch = req.src_pitch as usize;
                p.dstMemoryType = CUmemorytype::CU_MEMORYTYPE_DEVICE;
                p.dstDevice = req.dst;
                p.dstPitch = req.dst_pitch as usize;
            }
            _ => return Err(CuError::INVALID_VALUE),
        }
        // SAFETY: host buffers live until the copy is waited for (or staged, host→device);
        // device ranges are the session's.
        unsafe {
            drv::cuMemcpy2DAsync_v2(&p, s)?;
            if req.mode == 1 || !req.is_async {
                drv::cuStreamSynchronize(s)?;
            }
        }
        Ok(Memcpy2DRep { data: out })
    }

    fn memset_d8(&self, cx: &Cx, r: MemsetD8Req) -> CuResult<MemsetD8Rep> {
        self.memset(cx, r.dst, 0, r.value as u32, 1, r.count, 1, 0)?;
        Ok(MemsetD8Rep {})
    }

    fn memset_d16(&self, cx: &Cx, r: MemsetD16Req) -> CuResult<MemsetD16Rep> {
        self.memset(cx, r.dst, 0, r.value as u32, 2, r.count, 1, 0)?;
        Ok(MemsetD16Rep {})
    }

    fn memset_d32(&self, cx: &Cx, r: MemsetD32Req) -> CuResult<MemsetD32Rep> {
        self.memset(cx, r.dst, 0, r.value, 4, r.count, 1, 0)?;
        Ok(MemsetD32Rep {})
    }

    fn memset_d8_async(&self, cx: &Cx, r: MemsetD8AsyncReq) -> CuResult<MemsetD8AsyncRep> {
        self.memset(cx, r.dst, 0, r.value as u32, 1, r.count, 1, r.stream)?;
        Ok(MemsetD8AsyncRep {})
    }

    fn memset_d16_async(&self, cx: &Cx, r: MemsetD16AsyncReq) -> CuResult<MemsetD16AsyncRep> {
        self.memset(cx, r.dst, 0, r.value as u32, 2, r.count, 1, r.stream)?;
        Ok(MemsetD16AsyncRep {})
    }

    fn memset_d32_async(&self, cx: &Cx, r: MemsetD32AsyncReq) -> CuResult<MemsetD32AsyncRep> {
        self.memset(cx, r.dst, 0, r.value, 4, r.count, 1, r.stream)?;
        Ok(MemsetD32AsyncRep {})
    }

    fn memset_d2d8(&self, cx: &Cx, r: MemsetD2D8Req) -> CuResult<MemsetD2D8Rep> {
        self.memset(cx, r.dst, r.pitch, r.value as u32, 1, r.width, r.height, 0)?;
        Ok(MemsetD2D8Rep {})
    }

    fn memset_d2d16(&self, cx: &Cx, r: MemsetD2D16Req) -> CuResult<MemsetD2D16Rep> {
        self.memset(cx, r.dst, r.pitch, r.value as u32, 2, r.width, r.height, 0)?;
        Ok(MemsetD2D16Rep {})
    }

    fn memset_d2d32(&self, cx: &Cx, r: MemsetD2D32Req) -> CuResult<MemsetD2D32Rep> {
        self.memset(cx, r.dst, r.pitch, r.value, 4, r.width, r.height, 0)?;
        Ok(MemsetD2D32Rep {})
    }

    fn memset_d2d8_async(&self, cx: &Cx, r: MemsetD2D8AsyncReq) -> CuResult<MemsetD2D8AsyncRep> {
        self.memset(
            cx,
            r.dst,
            r.pitch,
            r.value as u32,
            1,
            r.width,
            r.height,
            r.stream,
        )?;
        Ok(MemsetD2D8AsyncRep {})
    }

    fn memset_d2d16_async(&self, cx: &Cx, r: MemsetD2D16AsyncReq) -> CuResult<MemsetD2D16AsyncRep> {
        self.memset(
            cx,
            r.dst,
            r.pitch,
            r.value as u32,
            2,
            r.width,
            r.height,
            r.stream,
        )?;
        Ok(MemsetD2D16AsyncRep {})
    }

    fn memset_d2d32_async(&self, cx: &Cx, r: MemsetD2D32AsyncReq) -> CuResult<MemsetD2D32AsyncRep> {
        self.memset(cx, r.dst, r.pitch, r.value, 4, r.width, r.height, r.stream)?;
        Ok(MemsetD2D32AsyncRep {})
    }

    fn stream_create(&self, cx: &Cx, req: StreamCreateReq) -> CuResult<StreamCreateRep> {
        self.within(|s| s.streams.len(), |l| l.streams)?;
        self.bind(cx.ctx)?;
        let mut s: H = 0;
        // SAFETY: valid out-pointer; a bound context of this session.
        unsafe { drv::cuStreamCreate(&mut s, req.flags)? };
        let h = new_handle(self.ns());
        self.st().streams.insert(
            h,
            Stream {
                real: s,
                ctx: cx.ctx,
            },
        );
        Ok(StreamCreateRep { stream: h })
    }

    fn stream_create_with_priority(
        &self,
        cx: &Cx,
        req: StreamCreateWithPriorityReq,
    ) -> CuResult<StreamCreateWithPriorityRep> {
        self.within(|s| s.streams.len(), |l| l.streams)?;
        self.bind(cx.ctx)?;
        let mut s: H = 0;
        // SAFETY: valid out-pointer; a bound context of this session.
        unsafe { drv::cuStreamCreateWithPriority(&mut s, req.flags, req.priority)? };
        let h = new_handle(self.ns());
        self.st().streams.insert(
            h,
            Stream {
                real: s,
                ctx: cx.ctx,
            },
        );
        Ok(StreamCreateWithPriorityRep { stream: h })
    }

    fn stream_destroy(&self, _cx: &Cx, req: StreamDestroyReq) -> CuResult<StreamDestroyRep> {
        let s = self
            .st()
            .streams
            .remove(&req.stream)
            .ok_or(CuError::INVALID_HANDLE)?;
        self.bind(s.ctx)?;
        // SAFETY: the session's stream, removed from its table.
        unsafe { drv::cuStreamDestroy_v2(s.real)? };
        Ok(StreamDestroyRep {})
    }

    fn stream_query(&self, cx: &Cx, req: StreamQueryReq) -> CuResult<StreamQueryRep> {
        self.bind(cx.ctx)?;
        let s = self.stream(cx, req.stream)?;
        // SAFETY: a stream of this session.
        unsafe { drv::cuStreamQuery(s)? };
        Ok(StreamQueryRep {})
    }

    fn stream_synchronize(
        &self,
        cx: &Cx,
        req: StreamSynchronizeReq,
    ) -> CuResult<StreamSynchronizeRep> {
        self.bind(cx.ctx)?;
        let s = self.stream(cx, req.stream)?;
        // SAFETY: a stream of this session.
        unsafe { drv::cuStreamSynchronize(s)? };
        Ok(StreamSynchronizeRep {})
    }

    fn stream_wait_event(&self, cx: &Cx, req: StreamWaitEventReq) -> CuResult<StreamWaitEventRep> {
        self.bind(cx.ctx)?;
        let s = self.stream(cx, req.stream)?;
        let e = self.event(req.event)?;
        // SAFETY: a stream and an event of this session.
        unsafe { drv::cuStreamWaitEvent(s, e, req.flags)? };
        Ok(StreamWaitEventRep {})
    }

    fn stream_get_flags(&self, cx: &Cx, req: StreamGetFlagsReq) -> CuResult<StreamGetFlagsRep> {
        self.bind(cx.ctx)?;
        let s = self.stream(cx, req.stream)?;
        let mut flags = 0;
        // SAFETY: a stream of this session.
        unsafe { drv::cuStreamGetFlags(s, &mut flags)? };
        Ok(StreamGetFlagsRep { flags })
    }

    fn stream_get_priority(
        &self,
        cx: &Cx,
        req: StreamGetPriorityReq,
    ) -> CuResult<StreamGetPriorityRep> {
        self.bind(cx.ctx)?;
        let s = self.stream(cx, req.stream)?;
        let mut priority = 0;
        // SAFETY: a stream of this session.
        unsafe { drv::cuStreamGetPriority(s, &mut priority)? };
        Ok(StreamGetPriorityRep { priority })
    }

    fn stream_get_ctx(&self, cx: &Cx, req: StreamGetCtxReq) -> CuResult<StreamGetCtxRep> {
        if req.stream <= STREAM_PER_THREAD {
            if cx.ctx == 0 {
                return Err(CuError::INVALID_CONTEXT);
            }
            return Ok(StreamGetCtxRep { ctx: cx.ctx });
        }
        let st = self.st();
        let s = st.streams.get(&req.stream).ok_or(CuError::INVALID_HANDLE)?;
        Ok(StreamGetCtxRep { ctx: s.ctx })
    }

    fn stream_get_id(&self, cx: &Cx, req: StreamGetIdReq) -> CuResult<StreamGetIdRep> {
        self.bind(cx.ctx)?;
        let s = self.stream(cx, req.stream)?;
        let mut id = 0;
        // SAFETY: a stream of this session.
        unsafe { drv::cuStreamGetId(s, &mut id)? };
        Ok(StreamGetIdRep { id })
    }

    fn stream_get_device(&self, cx: &Cx, req: StreamGetDeviceReq) -> CuResult<StreamGetDeviceRep> {
        let ctx = self
            .stream_get_ctx(cx, StreamGetCtxReq { stream: req.stream })?
            .ctx;
        let st = self.st();
        let c = st.contexts.get(&ctx).ok_or(CuError::INVALID_CONTEXT)?;
        Ok(StreamGetDeviceRep { device: c.device })
    }

    fn event_create(&self, cx: &Cx, req: EventCreateReq) -> CuResult<EventCreateRep> {
        self.within(|s| s.events.len(), |l| l.events)?;
        self.bind(cx.ctx)?;
        let mut e: H = 0;
        // SAFETY: valid out-pointer; a bound context of this session.
        unsafe { drv::cuEventCreate(&mut e, req.flags)? };
        let h = new_handle(self.ns());
        self.st().events.insert(h, Event { real: e });
        Ok(EventCreateRep { event: h })
    }

    fn event_destroy(&self, _cx: &Cx, req: EventDestroyReq) -> CuResult<EventDestroyRep> {
        let e = self
            .st()
            .events
            .remove(&req.event)
            .ok_or(CuError::INVALID_HANDLE)?;
        // SAFETY: the session's event, removed from its table.
        unsafe { drv::cuEventDestroy_v2(e.real)? };
        Ok(EventDestroyRep {})
    }

    fn event_record(&self, cx: &Cx, req: EventRecordReq) -> CuResult<EventRecordRep> {
        self.bind(cx.ctx)?;
        let e = self.event(req.event)?;
        let s = self.stream(cx, req.stream)?;
        // SAFETY: an event and a stream of this session.
        unsafe { drv::cuEventRecord(e, s)? };
        Ok(EventRecordRep {})
    }

    fn event_record_with_flags(
        &self,
        cx: &Cx,
        req: EventRecordWithFlagsReq,
    ) -> CuResult<EventRecordWithFlagsRep> {
        self.bind(cx.ctx)?;
        let e = self.event(req.event)?;
        let s = self.stream(cx, req.stream)?;
        // SAFETY: an event and a stream of this session.
        unsafe { drv::cuEventRecordWithFlags(e, s, req.flags)? };
        Ok(EventRecordWithFlagsRep {})
    }

    fn event_query(&self, _cx: &Cx, req: EventQueryReq) -> CuResult<EventQueryRep> {
        let e = self.event(req.event)?;
        // SAFETY: an event of this session.
        unsafe { drv::cuEventQuery(e)? };
        Ok(EventQueryRep {})
    }

    fn event_synchronize(
        &self,
        _cx: &Cx,
        req: EventSynchronizeReq,
    ) -> CuResult<EventSynchronizeRep> {
        let e = self.event(req.event)?;
        // SAFETY: an event of this session.
        unsafe { drv::cuEventSynchronize(e)? };
        Ok(EventSynchronizeRep {})
    }

    fn event_elapsed_time(
        &self,
        _cx: &Cx,
        req: EventElapsedTimeReq,
    ) -> CuResult<EventElapsedTimeRep> {
        let a = self.event(req.start)?;
        let b = self.event(req.end)?;
        let mut ms = 0f32;
        // SAFETY: events of this session, valid out-pointer.
        unsafe {
            if drv::has("cuEventElapsedTime_v2") {
                drv::cuEventElapsedTime_v2(&mut ms, a, b)?
            } else {
                drv::cuEventElapsedTime(&mut ms, a, b)?
            }
        };
        Ok(EventElapsedTimeRep { ms })
    }

    fn module_load(&self, _cx: &Cx, req: ModuleLoadReq) -> CuResult<ModuleLoadRep> {
        if let Err(e) = self.within(|s| s.modules.len(), |l| l.modules) {
            return Ok(ModuleLoadRep {
                module: 0,
                error: e.raw(),
                log: "this session already holds its limit of modules".into(),
            });
        }
        let img = if req.image.is_empty() {
            match lock(&IMAGES).0.get(&req.hash) {
                Some(i) => i.clone(),
                None => {
                    return Ok(ModuleLoadRep {
                        module: 0,
                        error: image::NEED_IMAGE,
                        log: String::new(),
                    })
                }
            }
        } else {
            let mut bytes = req.image;
            let binary = bytes.starts_with(b"\x7fELF")
                || bytes.starts_with(&0xBA55_ED50u32.to_le_bytes())
                || bytes.starts_with(&0x466243B1u32.to_le_bytes());
            if !binary && bytes.last() != Some(&0) {
                bytes.push(0); // PTX text must be NUL-terminated
            }
            let i = Arc::new(bytes);
            let mut c = lock(&IMAGES);
            if c.1 + i.len() <= IMAGE_CACHE_BYTES {
                c.1 += i.len();
                c.0.insert(image::content_hash(&i[..]), i.clone());
            }
            i
        };
        // Every module is loaded as a context-independent library: it may be loaded before any
        // context exists (cudart 13 does), and its kernels resolve in whichever context runs them.
        let mut log = vec![0u8; 16 << 10];
        let mut opts = [5i32, 6]; // CU_JIT_ERROR_LOG_BUFFER, CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES
        let mut vals = [log.as_mut_ptr() as *mut c_void, log.len() as *mut c_void];
        let mut lib: H = 0;
        // SAFETY: the image lives for the call; the log buffer is as large as declared.
        let r = unsafe {
            drv::cuLibraryLoadData(
                &mut lib,
                img.as_ptr().cast(),
                opts.as_mut_ptr(),
                vals.as_mut_ptr(),
                2,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                0,
            )
        };
        match r {
            Ok(()) => {
                let h = new_handle(self.ns());
                self.st().modules.insert(h, lib);
                Ok(ModuleLoadRep {
                    module: h,
                    error: 0,
                    log: String::new(),
                })
            }
            Err(e) => {
                let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
                Ok(ModuleLoadRep {
                    module: 0,
                    error: e.raw(),
                    log: String::from_utf8_lossy(&log[..end]).into_owned(),
                })
            }
        }
    }

    fn module_unload(&self, _cx: &Cx, req: ModuleUnloadReq) -> CuResult<ModuleUnloadRep> {
        let lib = {
            let mut st = self.st();
            let lib = st
                .modules
                .remove(&req.module)
                .ok_or(CuError::INVALID_HANDLE)?;
            st.functions.retain(|_, f| f.module != req.module);
            lib
        };
        // SAFETY: the session's library, removed from its table.
        unsafe { drv::cuLibraryUnload(lib)? };
        Ok(ModuleUnloadRep {})
    }

    fn module_get_function(
        &self,
        _cx: &Cx,
        req: ModuleGetFunctionReq,
    ) -> CuResult<ModuleGetFunctionRep> {
        let lib = *self
            .st()
            .modules
            .get(&req.module)
            .ok_or(CuError::INVALID_HANDLE)?;
        let name = CString::new(req.name.clone()).map_err(|_| CuError::INVALID_VALUE)?;
        let mut k: H = 0;
        // SAFETY: a library of this session, a NUL-terminated name.
        unsafe { drv::cuLibraryGetKernel(&mut k, lib, name.as_ptr())? };
        let mut st = self.st();
        // The same kernel asked for twice keeps its handle.
        if let Some((h, _)) = st
            .functions
            .iter()
            .find(|(_, f)| f.module == req.module && f.kernel == k)
        {
            return Ok(ModuleGetFunctionRep { func: *h });
        }
        let h = new_handle(self.ns());
        st.functions.insert(
            h,
            Function {
                module: req.module,
                kernel: k,
                name: req.name,
                layout: None,
                per_ctx: HashMap::new(),
            },
        );
        Ok(ModuleGetFunctionRep { func: h })
    }

    fn module_get_global(&self, cx: &Cx, req: ModuleGetGlobalReq) -> CuResult<ModuleGetGlobalRep> {
        self.bind(cx.ctx)?;
        let lib = *self
            .st()
            .modules
            .get(&req.module)
            .ok_or(CuError::INVALID_HANDLE)?;
        let name = CString::new(req.name).map_err(|_| CuError::INVALID_VALUE)?;
        let (mut p, mut size) = (0u64, 0usize);
        // SAFETY: a library of this session, a NUL-terminated name, valid out-pointers.
        unsafe { drv::cuLibraryGetGlobal(&mut p, &mut size, lib, name.as_ptr())? };
        if p != 0 && size > 0 {
            self.record_alloc(cx, p, size as u64, Kind::Global);
        }
        Ok(ModuleGetGlobalRep {
            dptr: p,
            bytes: size as u64,
        })
    }

    fn func_get_attribute(
        &self,
        cx: &Cx,
        req: FuncGetAttributeReq,
    ) -> CuResult<FuncGetAttributeRep> {
        Ok(FuncGetAttributeRep {
            value: self.kernel_attr(cx, req.func, req.attrib)?,
        })
    }

    fn func_set_attribute(
        &self,
        cx: &Cx,
        req: FuncSetAttributeReq,
    ) -> CuResult<FuncSetAttributeRep> {
        let k = self.kernel(req.func)?;
        let (_, d) = *self.dev(self.cur_device(cx))?;
        // SAFETY: a kernel of this session.
        unsafe { drv::cuKernelSetAttribute(req.attrib, req.value, k, d)? };
        Ok(FuncSetAttributeRep {})
    }

    fn func_get_param_info(
        &self,
        cx: &Cx,
        req: FuncGetParamInfoReq,
    ) -> CuResult<FuncGetParamInfoRep> {
        let (offs, sizes, _) = self.layout(cx, req.func)?;
        let i = req.index as usize;
        match (offs.get(i), sizes.get(i)) {
            (Some(&offset), Some(&size)) => Ok(FuncGetParamInfoRep { offset, size }),
            _ => Err(CuError::INVALID_VALUE),
        }
    }

    fn func_get_param_count(
        &self,
        cx: &Cx,
        req: FuncGetParamCountReq,
    ) -> CuResult<FuncGetParamCountRep> {
        Ok(FuncGetParamCountRep {
            count: self.layout(cx, req.func)?.0.len() as u64,
        })
    }

    fn func_get_module(&self, _cx: &Cx, req: FuncGetModuleReq) -> CuResult<FuncGetModuleRep> {
        let st = self.st();
        let f = st.functions.get(&req.func).ok_or(CuError::INVALID_HANDLE)?;
        Ok(FuncGetModuleRep { module: f.module })
    }

    fn func_layout(&self, cx: &Cx, req: FuncLayoutReq) -> CuResult<FuncLayoutRep> {
        let (offsets, sizes, total) = self.layout(cx, req.func)?;
        Ok(FuncLayoutRep {
            offsets,
            sizes,
            total,
            max_threads: self.kernel_attr(cx, req.func, 0)? as u32,
            max_dyn_smem: self.kernel_attr(cx, req.func, 8)? as u32,
        })
    }

    fn func_set_cache_config(
        &self,
        cx: &Cx,
        req: FuncSetCacheConfigReq,
    ) -> CuResult<FuncSetCacheConfigRep> {
        let k = self.kernel(req.func)?;
        self.bind_for_kernel(cx)?;
        let (_, d) = *self.dev(self.cur_device(cx))?;
        // SAFETY: a kernel of this session.
        unsafe { drv::cuKernelSetCacheConfig(k, req.config, d)? };
        Ok(FuncSetCacheConfigRep {})
    }

    fn func_name(&self, _cx: &Cx, req: FuncNameReq) -> CuResult<FuncNameRep> {
        let st = self.st();
        let f = st.functions.get(&req.func).ok_or(CuError::INVALID_HANDLE)?;
        Ok(FuncNameRep {
            name: f.name.clone(),
        })
    }

    fn launch_kernel(&self, cx: &Cx, req: LaunchKernelReq) -> CuResult<LaunchKernelRep> {
        self.bind(cx.ctx)?;
        let f = self.function(cx, req.func)?;
        let (offs, _, total) = self.layout(cx, req.func)?;
        let mut params = req.params;
        if (params.len() as u64) < total {
            return Err(CuError::INVALID_VALUE);
        }
        let mut ptrs: Vec<*mut c_void> = offs
            .iter()
            .map(|&o| params[o as usize..].as_mut_ptr().cast())
            .collect();
        let s = self.stream(cx, req.stream)?;
        let pp = if ptrs.is_empty() {
            std::ptr::null_mut()
        } else {
            ptrs.as_mut_ptr()
        };
        // SAFETY: each parameter pointer addresses its bytes in `params`, which outlives the
        // call (the driver copies parameters at launch).
        unsafe {
            if req.cooperative {
                drv::cuLaunchCooperativeKernel(
                    f,
                    req.grid_x,
                    req.grid_y,
                    req.grid_z,
                    req.block_x,
                    req.block_y,
                    req.block_z,
                    req.shared_mem,
                    s,
                    pp,
                )?
            } else {
                drv::cuLaunchKernel(
                    f,
                    req.grid_x,
                    req.grid_y,
                    req.grid_z,
                    req.block_x,
                    req.block_y,
                    req.block_z,
                    req.shared_mem,
                    s,
                    pp,
                    std::ptr::null_mut(),
                )?
            }
        };
        Ok(LaunchKernelRep {})
    }

    fn occupancy_max_active_blocks(
        &self,
        cx: &Cx,
        req: OccupancyMaxActiveBlocksReq,
    ) -> CuResult<OccupancyMaxActiveBlocksRep> {
        self.bind(cx.ctx)?;
        let f = self.function(cx, req.func)?;
        let mut n = 0;
        // SAFETY: a function of this session, valid out-pointer.
        unsafe {
            drv::cuOccupancyMaxActiveBlocksPerMultiprocessor(
                &mut n,
                f,
                req.block_size,
                req.dynamic_smem as usize,
            )?
        };
        Ok(OccupancyMaxActiveBlocksRep { num_blocks: n })
    }

    fn occupancy_max_active_blocks_with_flags(
        &self,
        cx: &Cx,
        req: OccupancyMaxActiveBlocksWithFlagsReq,
    ) -> CuResult<OccupancyMaxActiveBlocksWithFlagsRep> {
        self.bind(cx.ctx)?;
        let f = self.function(cx, req.func)?;
        let mut n = 0;
        // SAFETY: a function of this session, valid out-pointer.
        unsafe {
            drv::cuOccupancyMaxActiveBlocksPerMultiprocessorWithFlags(
                &mut n,
                f,
                req.block_size,
                req.dynamic_smem as usize,
                req.flags,
            )?
        };
        Ok(OccupancyMaxActiveBlocksWithFlagsRep { num_blocks: n })
    }

    fn occupancy_available_dynamic_s_mem(
        &self,
        cx: &Cx,
        req: OccupancyAvailableDynamicSMemReq,
    ) -> CuResult<OccupancyAvailableDynamicSMemRep> {
        self.bind(cx.ctx)?;
        let f = self.function(cx, req.func)?;
        let mut n = 0usize;
        // SAFETY: a function of this session, valid out-pointer.
        unsafe {
            drv::cuOccupancyAvailableDynamicSMemPerBlock(&mut n, f, req.num_blocks, req.block_size)?
        };
        Ok(OccupancyAvailableDynamicSMemRep {
            dynamic_smem: n as u64,
        })
    }

    fn pointer_info(&self, _cx: &Cx, req: PointerInfoReq) -> CuResult<PointerInfoRep> {
        let st = self.st();
        Ok(st
            .allocs
            .range(..=req.ptr)
            .next_back()
            .filter(|(b, a)| req.ptr < **b + a.size)
            .map(|(&base, a)| PointerInfoRep {
                found: true,
                base,
                size: a.size,
                ctx: a.ctx,
                device: a.device,
            })
            .unwrap_or_default())
    }

    fn mem_alloc_async(&self, cx: &Cx, req: MemAllocAsyncReq) -> CuResult<MemAllocAsyncRep> {
        self.bind(cx.ctx)?;
        if req.bytesize == 0 {
            return Err(CuError::INVALID_VALUE);
        }
        self.reserve(&self.st(), req.bytesize)?;
        let s = self.stream(cx, req.stream)?;
        let mut p = 0u64;
        // SAFETY: valid out-pointer; a stream of this session.
        unsafe { drv::cuMemAllocAsync(&mut p, req.bytesize as usize, s)? };
        self.record_alloc(cx, p, req.bytesize, Kind::Async);
        Ok(MemAllocAsyncRep { dptr: p })
    }

    fn mem_free_async(&self, cx: &Cx, req: MemFreeAsyncReq) -> CuResult<MemFreeAsyncRep> {
        self.bind(cx.ctx)?;
        let s = self.stream(cx, req.stream)?;
        let a = self.take_alloc(req.dptr)?;
        // SAFETY: an allocation of this session (no longer in its ledger), a stream of it.
        let r = unsafe { drv::cuMemFreeAsync(req.dptr, s) };
        if r.is_err() {
            self.st().allocs.insert(req.dptr, a);
        }
        r.map(|_| MemFreeAsyncRep {})
    }

    fn shm_attach(&self, _cx: &Cx, req: ShmAttachReq) -> CuResult<ShmAttachRep> {
        if !self.local.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(CuError::NOT_SUPPORTED);
        }
        self.shm.attach(self.id, &req.name, req.size)?;
        Ok(ShmAttachRep {})
    }

    fn memcpy_hto_d_shm(&self, cx: &Cx, req: MemcpyHtoDShmReq) -> CuResult<MemcpyHtoDShmRep> {
        let src = self.shm.range(req.offset, req.byte_count)?;
        self.pin_shm(cx);
        if req.byte_count > 0
            && req.is_async
            && matches!(*lock(&self.shm_pin), ShmPin::Pinned { .. })
        {
            // From page-locked memory an async copy is still reading when it returns, but the
            // client may reuse the segment after the reply: stage the bytes (as the driver does
            // for pageable memory).
            // SAFETY: ShmSegment::range checked that the range lies in the mapped segment.
            let staged =
                unsafe { std::slice::from_raw_parts(src as *const u8, req.byte_count as usize) }
                    .to_vec();
            self.h2d(
                cx,
                req.dst,
                staged.as_ptr(),
                req.byte_count,
                req.stream,
                false,
            )?;
            return Ok(MemcpyHtoDShmRep {});
        }
        if req.byte_count > 0 {
            // A synchronous copy is done when h2d returns; an async one from pageable memory has
            // staged the bytes by then: either way the client may reuse the segment after the reply.
            self.h2d(
                cx,
                req.dst,
                src as *const u8,
                req.byte_count,
                req.stream,
                !req.is_async,
            )?;
        }
        Ok(MemcpyHtoDShmRep {})
    }

    fn memcpy_dto_h_shm(&self, cx: &Cx, req: MemcpyDtoHShmReq) -> CuResult<MemcpyDtoHShmRep> {
        let dst = self.shm.range(req.offset, req.byte_count)?;
        self.pin_shm(cx);
        if req.byte_count > 0 {
            // SAFETY: ShmSegment::range checked that the range lies in the mapped segment.
            let out =
                unsafe { std::slice::from_raw_parts_mut(dst as *mut u8, req.byte_count as usize) };
            self.d2h(cx, req.src, out, req.stream)?;
        }
        Ok(MemcpyDtoHShmRep {})
    }
}
