//! A client session: the ledger of everything one client connection created (contexts,
//! allocations, streams, events) and the implementation of every forwarded call on it. Dropping
//! a session releases everything it owns.

use crate::device::{Device, Region};
use crate::exec::{Event, Fence, Record, Stream};
use rgpu_protocol::error::{CuError, CuResult};
use rgpu_protocol::messages::*;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

mod gpu;
mod kernels;

pub use gpu::GpuSession;

/// Driver version reported to clients.
pub const DRIVER_VERSION: i32 = 13050;

const STREAM_NON_BLOCKING: u32 = 1;
const STREAM_LEGACY: u64 = 1;
const STREAM_PER_THREAD: u64 = 2;
const EVENT_BLOCKING_SYNC: u32 = 1;
const EVENT_DISABLE_TIMING: u32 = 2;
const EVENT_INTERPROCESS: u32 = 4;
const CTX_FLAGS_MASK: u32 = 0x07 | 0x08 | 0x10 | 0x20 | 0x40 | 0x80 | 0x100;

static HANDLES: AtomicU64 = AtomicU64::new(0x1000);
static CTX_IDS: AtomicU64 = AtomicU64::new(1);

/// A fresh handle in namespace `ns` (the top byte; see `Hello::namespace`).
fn new_handle(ns: u8) -> u64 {
    // Globally unique, so a handle of one session is never valid in another.
    ((ns as u64) << 56) | HANDLES.fetch_add(0x10, Ordering::Relaxed)
}

/// Per-call context: who is calling and with which current context.
#[derive(Debug, Clone, Copy)]
pub struct Cx {
    /// Client thread id.
    pub thread: u64,
    /// Current context of the calling thread.
    pub ctx: u64,
    /// Called through a `_ptds`/`_ptsz` entry point.
    pub per_thread: bool,
}

struct Ctx {
    device: i32,
    flags: u32,
    id: u64,
    primary: bool,
    null_stream: Arc<Stream>,
    limits: HashMap<i32, u64>,
    cache_config: i32,
    shmem_config: i32,
    /// Sticky error of a failed kernel: every later call in this context returns it.
    sticky: Arc<Mutex<Option<CuError>>>,
}

/// Whether `f` is a valid set of context flags (scheduling mode 0–2 or 4, plus known bits).
fn ctx_flags_ok(f: u32) -> bool {
    f & !CTX_FLAGS_MASK == 0 && f & 0x7 <= 4 && f & 0x7 != 3
}

/// A device's primary context as clients see it: a stable handle, the retain count and the
/// flags for its next creation. Both backends keep one per device (`Primaries`).
struct Primary {
    handle: u64,
    refs: u32,
    flags: u32,
}

/// The primary-context table of a session, shared by the CPU and GPU backends; each backend
/// creates and destroys the contexts behind the handles.
#[derive(Default)]
struct Primaries(HashMap<i32, Primary>);

impl Primaries {
    /// The entry of device `dev`, made (with a fresh handle) on first use.
    fn entry(&mut self, dev: i32, ns: u8) -> &mut Primary {
        self.0.entry(dev).or_insert_with(|| Primary {
            handle: new_handle(ns),
            refs: 0,
            flags: 0,
        })
    }

    /// Drops one retain of `dev`: the handle whose context must go when it was the last.
    fn release(&mut self, dev: i32) -> CuResult<Option<u64>> {
        let p = self
            .0
            .get_mut(&dev)
            .filter(|p| p.refs > 0)
            .ok_or(CuError::INVALID_CONTEXT)?;
        p.refs -= 1;
        Ok((p.refs == 0).then_some(p.handle))
    }

    /// Forgets `dev`'s flags for a reset: the handle whose context must go, if any.
    fn reset(&mut self, dev: i32) -> Option<u64> {
        self.0.get_mut(&dev).map(|p| {
            p.flags = 0;
            p.handle
        })
    }

    /// (flags, active) of `dev`, where `live(handle)` says whether its context exists.
    fn state(&self, dev: i32, live: impl Fn(u64) -> bool) -> (u32, i32) {
        self.0
            .get(&dev)
            .map(|p| (p.flags, (p.refs > 0 && live(p.handle)) as i32))
            .unwrap_or((0, 0))
    }

    /// The device and flags of an existing primary handle.
    fn find(&self, handle: u64) -> Option<(i32, u32)> {
        self.0
            .iter()
            .find(|(_, p)| p.handle == handle && handle != 0)
            .map(|(d, p)| (*d, p.flags))
    }
}

struct Alloc {
    ctx: u64,
    device: i32,
}

#[derive(Default)]
struct State {
    contexts: HashMap<u64, Ctx>,
    primaries: Primaries,
    allocs: BTreeMap<u64, Alloc>,
    streams: HashMap<u64, Arc<Stream>>,
    events: HashMap<u64, Arc<Event>>,
    per_thread: HashMap<(u64, u64), Arc<Stream>>,
    /// Destroyed streams whose queued work may still be running: (context, flags, tail).
    /// Context synchronisation and the legacy stream still wait for that work.
    retired: Vec<(u64, u32, Fence)>,
    modules: HashMap<u64, kernels::Module>,
    functions: HashMap<u64, kernels::Function>,
}

/// Per-session limits on driver objects (beyond the memory quota). Creating one more fails with
/// `CUDA_ERROR_OUT_OF_MEMORY`, as the driver does when it runs out of resources.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Limits {
    /// Streams alive at once.
    pub streams: usize,
    /// Events alive at once.
    pub events: usize,
    /// Modules and libraries loaded at once.
    pub modules: usize,
    /// Bytes of asynchronous host-to-device copies queued on the session's streams: a copy that
    /// goes past it waits until its stream has run it (back-pressure, nothing is dropped).
    pub inflight_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            streams: 4096,
            events: 65536,
            modules: 4096,
            inflight_bytes: 256 << 20,
        }
    }
}

/// What the connection loop needs from a session, whatever device backs it.
pub trait Backend: Handler<Cx = Cx> + Send + Sync {
    /// Session id (logs).
    fn session_id(&self) -> u64;
    /// The sticky error of context `ctx`, if a kernel failed in it (where the server tracks it).
    fn sticky_error(&self, ctx: u64) -> Option<CuError>;
    /// Records the failure of a pipelined call made by client thread `thread`.
    fn defer_error(&self, thread: u64, e: CuError);
    /// Takes the pending failure of client thread `thread`'s pipelined calls.
    fn take_deferred_error(&self, thread: u64) -> Option<CuError>;
    /// Whether stream `handle` has no queued work (so a small copy on it cannot block).
    fn stream_idle(&self, cx: &Cx, handle: u64) -> bool;
}

impl Backend for Session {
    fn session_id(&self) -> u64 {
        self.id
    }
    fn sticky_error(&self, ctx: u64) -> Option<CuError> {
        Session::sticky_error(self, ctx)
    }
    fn defer_error(&self, thread: u64, e: CuError) {
        Session::defer_error(self, thread, e)
    }
    fn take_deferred_error(&self, thread: u64) -> Option<CuError> {
        Session::take_deferred_error(self, thread)
    }
    fn stream_idle(&self, cx: &Cx, handle: u64) -> bool {
        Session::stream_idle(self, cx, handle)
    }
}

impl Backend for GpuSession {
    fn session_id(&self) -> u64 {
        self.id
    }
    fn sticky_error(&self, _ctx: u64) -> Option<CuError> {
        // The driver itself keeps a faulted context's error sticky.
        None
    }
    fn defer_error(&self, thread: u64, e: CuError) {
        GpuSession::defer_error(self, thread, e)
    }
    fn take_deferred_error(&self, thread: u64) -> Option<CuError> {
        GpuSession::take_deferred_error(self, thread)
    }
    fn stream_idle(&self, cx: &Cx, handle: u64) -> bool {
        GpuSession::stream_idle(self, cx, handle)
    }
}

/// Where a session sends what its kernels print and why they failed: (stream 1 = stdout,
/// 2 = stderr, bytes).
pub type Notify = Arc<dyn Fn(u8, Vec<u8>) + Send + Sync>;

/// One client's session.
pub struct Session {
    /// Session id (logs).
    pub id: u64,
    devices: Arc<Vec<Arc<dyn Device>>>,
    st: Mutex<State>,
    notify: Notify,
    /// Errors of pipelined calls, per client thread, reported by that thread's next reply.
    deferred: Deferred,
    /// Device memory this session may hold, if limited.
    quota: Mutex<Option<u64>>,
    /// Limits on streams, events and modules.
    limits: Mutex<Limits>,
    /// Bytes of queued asynchronous host-to-device copies.
    inflight: Arc<AtomicU64>,
    /// Whether the client connected from this machine (enables the shared-memory bulk path).
    local: std::sync::atomic::AtomicBool,
    /// The client's shared-memory segment, once attached: (address, size).
    shm: ShmSegment,
    /// The client's number for this server: the top byte of this session's handles, and the
    /// address space of its allocations (`Hello::namespace`).
    ns: std::sync::atomic::AtomicU8,
}

impl Session {
    /// A new, empty session on `devices`.
    pub fn new(id: u64, devices: Arc<Vec<Arc<dyn Device>>>) -> Session {
        Self::with_notify(id, devices, Arc::new(|_, _| {}))
    }

    /// A new session whose kernel output and fault messages go to `notify`.
    pub fn with_notify(id: u64, devices: Arc<Vec<Arc<dyn Device>>>, notify: Notify) -> Session {
        Session {
            id,
            devices,
            st: Mutex::new(State::default()),
            notify,
            deferred: Deferred::default(),
            quota: Mutex::new(None),
            limits: Mutex::new(Limits::default()),
            inflight: Arc::new(AtomicU64::new(0)),
            local: std::sync::atomic::AtomicBool::new(false),
            shm: ShmSegment::default(),
            ns: Default::default(),
        }
    }

    /// Sets the client's number for this server (before the session's first call).
    pub fn set_namespace(&self, ns: u8) {
        self.ns.store(ns, Ordering::Relaxed);
    }

    fn ns(&self) -> u8 {
        self.ns.load(Ordering::Relaxed)
    }

    /// Marks the client as connected from this machine.
    pub fn set_local(&self, local: bool) {
        self.local.store(local, Ordering::Relaxed);
    }

    /// Limits the device memory this session may hold (`None`: no limit).
    pub fn set_memory_quota(&self, q: Option<u64>) {
        *self.quota.lock().unwrap_or_else(|e| e.into_inner()) = q;
    }

    /// Sets the limits on streams, events and modules.
    pub fn set_limits(&self, l: Limits) {
        *self.limits.lock().unwrap_or_else(|e| e.into_inner()) = l;
    }

    fn limits(&self) -> Limits {
        *self.limits.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Bytes of device memory this session holds.
    fn held_bytes(&self, st: &State) -> u64 {
        st.allocs
            .iter()
            .filter_map(|(b, a)| self.devices[a.device as usize].region(*b, 1).ok())
            .map(|r| r.buf.len() as u64)
            .sum()
    }

    /// Records the failure of a pipelined call made by client thread `thread` (the first one
    /// wins until it is reported).
    pub fn defer_error(&self, thread: u64, e: CuError) {
        self.deferred.defer(thread, e);
    }

    /// Takes the pending failure of client thread `thread`'s pipelined calls.
    pub fn take_deferred_error(&self, thread: u64) -> Option<CuError> {
        self.deferred.take(thread)
    }

    /// The sticky error of context `ctx`, if a kernel failed in it.
    pub fn sticky_error(&self, ctx: u64) -> Option<CuError> {
        let st = self.st();
        let c = st.contexts.get(&ctx)?;
        let e = *c.sticky.lock().unwrap_or_else(|e| e.into_inner());
        e
    }

    fn st(&self) -> MutexGuard<'_, State> {
        self.st.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn device(&self, dev: i32) -> CuResult<&Arc<dyn Device>> {
        usize::try_from(dev)
            .ok()
            .and_then(|d| self.devices.get(d))
            .ok_or(CuError::INVALID_DEVICE)
    }

    /// Bytes this session holds on each device.
    pub fn allocation_count(&self) -> usize {
        self.st().allocs.len()
    }

    fn new_ctx(&self, st: &mut State, device: i32, flags: u32, primary: bool, handle: u64) {
        let null_stream = Stream::new(0, handle, 0, 0);
        let limits = HashMap::from([
            (0, 1024u64),
            (1, 1 << 20),
            (2, 8 << 20),
            (3, 2),
            (4, 2048),
            (5, 64),
            (6, 0),
        ]);
        st.contexts.insert(
            handle,
            Ctx {
                device,
                flags,
                id: CTX_IDS.fetch_add(1, Ordering::Relaxed),
                primary,
                null_stream,
                limits,
                cache_config: 0,
                shmem_config: 0,
                sticky: Arc::new(Mutex::new(None)),
            },
        );
    }

    /// Releases everything a context owns (allocations, streams, events, per-thread streams).
    fn teardown_ctx(&self, st: &mut State, handle: u64) {
        let Some(ctx) = st.contexts.remove(&handle) else {
            return;
        };
        ctx.null_stream.close();
        let dev = self.devices[ctx.device as usize].clone();
        let bases: Vec<u64> = st
            .allocs
            .iter()
            .filter(|(_, a)| a.ctx == handle)
            .map(|(b, _)| *b)
            .collect();
        for b in bases {
            st.allocs.remove(&b);
            let _ = dev.free(b);
        }
        st.streams.retain(|_, s| s.ctx != handle);
        st.retired.retain(|(c, _, _)| *c != handle);
        st.events.retain(|_, e| e.ctx != handle);
        st.per_thread.retain(|(_, c), _| *c != handle);
        st.modules.retain(|_, m| m.ctx != handle);
        let modules: std::collections::HashSet<u64> = st.modules.keys().copied().collect();
        st.functions.retain(|_, f| modules.contains(&f.module));
    }

    /// The calling thread's current context, checked.
    fn ctx<'a>(&self, st: &'a State, cx: &Cx) -> CuResult<&'a Ctx> {
        self.ctx_of(st, cx.ctx)
    }

    fn ctx_of<'a>(&self, st: &'a State, handle: u64) -> CuResult<&'a Ctx> {
        if handle == 0 {
            return Err(CuError::INVALID_CONTEXT);
        }
        st.contexts.get(&handle).ok_or(CuError::INVALID_CONTEXT)
    }

    /// Resolves a stream handle as seen by `cx` (0, legacy, per-thread or a created stream).
    fn stream(&self, st: &mut State, cx: &Cx, handle: u64) -> CuResult<Arc<Stream>> {
        let per_thread = handle == STREAM_PER_THREAD || (handle == 0 && cx.per_thread);
        if handle == 0 || handle == STREAM_LEGACY || per_thread {
            let ctx = self.ctx(st, cx)?;
            if !per_thread {
                return Ok(ctx.null_stream.clone());
            }
            let key = (cx.thread, cx.ctx);
            let ctxh = cx.ctx;
            return Ok(st
                .per_thread
                .entry(key)
                .or_insert_with(|| Stream::new(STREAM_PER_THREAD, ctxh, 0, 0))
                .clone());
        }
        st.streams
            .get(&handle)
            .cloned()
            .ok_or(CuError::INVALID_HANDLE)
    }

    /// Fences a job on `s` must wait for to honour the legacy default stream's implicit
    /// synchronisation with blocking streams.
    fn implicit_deps(&self, st: &State, s: &Stream) -> Vec<Fence> {
        let Some(ctx) = st.contexts.get(&s.ctx) else {
            return vec![];
        };
        if s.handle == 0 {
            // Legacy stream: wait for every blocking stream of the context (destroyed ones
            // with work still queued included).
            st.streams
                .values()
                .chain(st.per_thread.values())
                .filter(|o| o.ctx == s.ctx && o.flags & STREAM_NON_BLOCKING == 0)
                .map(|o| o.tail())
                .chain(
                    st.retired
                        .iter()
                        .filter(|(c, f, _)| *c == s.ctx && f & STREAM_NON_BLOCKING == 0)
                        .map(|(_, _, t)| t.clone()),
                )
                .collect()
        } else if s.flags & STREAM_NON_BLOCKING == 0 {
            vec![ctx.null_stream.tail()]
        } else {
            vec![]
        }
    }

    /// Submits `job` to the stream `handle` (with implicit legacy-stream ordering).
    fn submit(&self, cx: &Cx, handle: u64, job: crate::exec::Job) -> CuResult<Fence> {
        let mut st = self.st();
        let s = self.stream(&mut st, cx, handle)?;
        let deps = self.implicit_deps(&st, &s);
        let job = self.timed(&st, &s, job);
        drop(st);
        Ok(s.submit(deps, job))
    }

    /// `job`, counting the time it runs as busy time of its stream's device (its load).
    fn timed(&self, st: &State, s: &Stream, job: crate::exec::Job) -> crate::exec::Job {
        let Some(dev) = st
            .contexts
            .get(&s.ctx)
            .and_then(|c| self.devices.get(c.device as usize))
            .cloned()
        else {
            return job;
        };
        Box::new(move || {
            let t0 = Instant::now();
            job();
            dev.add_busy(t0.elapsed());
        })
    }

    /// Whether stream `handle` (as `cx` sees it) has nothing pending.
    pub fn stream_idle(&self, cx: &Cx, handle: u64) -> bool {
        let mut st = self.st();
        let Ok(s) = self.stream(&mut st, cx, handle) else {
            return false;
        };
        let deps = self.implicit_deps(&st, &s);
        s.tail().is_done() && deps.iter().all(|d| d.is_done())
    }

    /// Runs `job` in stream order and waits for it. When the stream has nothing pending, the job
    /// runs right here (no hand-off to the stream's thread and back: the latency of synchronous
    /// calls matters).
    fn submit_wait(&self, cx: &Cx, handle: u64, job: crate::exec::Job) -> CuResult<()> {
        let mut st = self.st();
        let s = self.stream(&mut st, cx, handle)?;
        let deps = self.implicit_deps(&st, &s);
        let job = self.timed(&st, &s, job);
        drop(st);
        if s.tail().is_done() && deps.iter().all(|d| d.is_done()) {
            job();
        } else {
            s.submit(deps, job).wait();
        }
        Ok(())
    }

    /// Runs `job` in stream order, waiting for it when `wait`.
    fn submit_maybe_wait(
        &self,
        cx: &Cx,
        handle: u64,
        job: crate::exec::Job,
        wait: bool,
    ) -> CuResult<()> {
        if wait {
            self.submit_wait(cx, handle, job)
        } else {
            self.submit(cx, handle, job).map(|_| ())
        }
    }

    /// The memory at `[ptr, ptr+len)`: an allocation of any of the session's devices (unified
    /// addressing: a copy may name another device's memory, as peer copies do).
    fn region(&self, cx: &Cx, ptr: u64, len: u64) -> CuResult<Region> {
        let st = self.st();
        self.ctx(&st, cx)?;
        let (_, a) = st
            .allocs
            .range(..=ptr)
            .next_back()
            .ok_or(CuError::INVALID_VALUE)?;
        let device = self.devices[a.device as usize].clone();
        drop(st);
        // The device checks that the range lies inside that allocation.
        device.region(ptr, len.max(1)).map(|mut r| {
            if len == 0 {
                r.offset = r.offset.min(r.buf.len());
            }
            r
        })
    }

    fn copy_h2d(
        &self,
        cx: &Cx,
        dst: u64,
        data: Vec<u8>,
        n: u64,
        stream: u64,
        wait: bool,
    ) -> CuResult<()> {
        if data.len() as u64 != n {
            return Err(CuError::INVALID_VALUE);
        }
        if n == 0 {
            return Ok(());
        }
        let r = self.region(cx, dst, n)?;
        if wait {
            let job: crate::exec::Job = Box::new(move || r.buf.write(r.offset, &data));
            return self.submit_wait(cx, stream, job);
        }
        // Queued bytes are counted until the stream runs the copy; past the limit the call
        // waits for it, which holds back the client's connection (and so the client).
        let counter = self.inflight.clone();
        let queued = counter.fetch_add(n, Ordering::AcqRel) + n;
        let job: crate::exec::Job = Box::new(move || {
            r.buf.write(r.offset, &data);
            counter.fetch_sub(n, Ordering::AcqRel);
        });
        let fence = match self.submit(cx, stream, job) {
            Ok(f) => f,
            Err(e) => {
                self.inflight.fetch_sub(n, Ordering::AcqRel);
                return Err(e);
            }
        };
        if queued > self.limits().inflight_bytes {
            block_in_place(|| fence.wait());
        }
        Ok(())
    }

    /// Bytes of asynchronous host-to-device copies queued now.
    pub fn inflight_bytes(&self) -> u64 {
        self.inflight.load(Ordering::Acquire)
    }

    fn copy_d2h(&self, cx: &Cx, src: u64, n: u64, stream: u64) -> CuResult<Vec<u8>> {
        if n == 0 {
            return Ok(vec![]);
        }
        let r = self.region(cx, src, n)?;
        let out = Arc::new(Mutex::new(Vec::new()));
        let o = out.clone();
        self.submit_wait(
            cx,
            stream,
            Box::new(move || {
                let mut v = vec![0u8; n as usize];
                r.buf.read(r.offset, &mut v);
                *o.lock().unwrap_or_else(|e| e.into_inner()) = v;
            }),
        )?;
        let v = std::mem::take(&mut *out.lock().unwrap_or_else(|e| e.into_inner()));
        Ok(v)
    }

    fn copy_d2d(
        &self,
        cx: &Cx,
        dst: u64,
        src: u64,
        n: u64,
        stream: u64,
        wait: bool,
    ) -> CuResult<()> {
        if n == 0 {
            return Ok(());
        }
        let d = self.region(cx, dst, n)?;
        let s = self.region(cx, src, n)?;
        let job: crate::exec::Job =
            Box::new(move || d.buf.copy_from(d.offset, &s.buf, s.offset, n as usize));
        self.submit_maybe_wait(cx, stream, job, wait)?;
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn memset2d(
        &self,
        cx: &Cx,
        dst: u64,
        pitch: u64,
        pattern: Vec<u8>,
        width: u64,
        height: u64,
        stream: u64,
        wait: bool,
    ) -> CuResult<()> {
        let es = pattern.len() as u64;
        if !dst.is_multiple_of(es)
            || (height > 1 && (pitch < width * es || !pitch.is_multiple_of(es)))
        {
            return Err(CuError::INVALID_VALUE);
        }
        if width == 0 || height == 0 {
            return Ok(());
        }
        let span = (height - 1)
            .checked_mul(pitch)
            .and_then(|v| v.checked_add(width * es))
            .ok_or(CuError::INVALID_VALUE)?;
        let r = self.region(cx, dst, span)?;
        let job: crate::exec::Job = Box::new(move || {
            for row in 0..height {
                r.buf
                    .fill(r.offset + (row * pitch) as usize, &pattern, width as usize);
            }
        });
        self.submit_maybe_wait(cx, stream, job, wait)?;
        Ok(())
    }

    fn event(&self, st: &State, handle: u64) -> CuResult<Arc<Event>> {
        st.events
            .get(&handle)
            .cloned()
            .ok_or(CuError::INVALID_HANDLE)
    }

    fn record(&self, cx: &Cx, event: u64, stream: u64) -> CuResult<()> {
        let ev = self.event(&self.st(), event)?;
        let time = Arc::new(Mutex::new(None));
        let t = time.clone();
        let fence = self.submit(
            cx,
            stream,
            Box::new(move || {
                *t.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
            }),
        )?;
        *ev.record.lock().unwrap_or_else(|e| e.into_inner()) = Some(Record { fence, time });
        Ok(())
    }

    fn sync_ctx(&self, handle: u64) -> CuResult<()> {
        let st = self.st();
        let ctx = self.ctx_of(&st, handle)?;
        let mut fences = vec![ctx.null_stream.tail()];
        fences.extend(
            st.streams
                .values()
                .chain(st.per_thread.values())
                .filter(|s| s.ctx == handle)
                .map(|s| s.tail()),
        );
        fences.extend(
            st.retired
                .iter()
                .filter(|(c, _, _)| *c == handle)
                .map(|(_, _, t)| t.clone()),
        );
        drop(st);
        for f in fences {
            f.wait();
        }
        Ok(())
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let mut st = self.st();
        let handles: Vec<u64> = st.contexts.keys().copied().collect();
        for h in handles {
            self.teardown_ctx(&mut st, h);
        }
        for (b, a) in std::mem::take(&mut st.allocs) {
            let _ = self.devices[a.device as usize].free(b);
        }
    }
}

fn bytes_of(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

/// Runs `f`, which may wait for device work, without stalling other tasks of a multi-threaded
/// tokio runtime that called it (elsewhere it simply runs).
fn block_in_place<R>(f: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

/// Failures of pipelined calls, per client thread, until that thread's next waiting call reports
/// them (the first failure wins). Shared by both backends.
#[derive(Default)]
struct Deferred(Mutex<HashMap<u64, CuError>>);

impl Deferred {
    fn lock(&self) -> MutexGuard<'_, HashMap<u64, CuError>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn defer(&self, thread: u64, e: CuError) {
        self.lock().entry(thread).or_insert(e);
    }

    fn take(&self, thread: u64) -> Option<CuError> {
        self.lock().remove(&thread)
    }

    /// Forgets every pending failure (a reset: they belonged to the old context).
    fn clear(&self) {
        self.lock().clear();
    }
}

/// The client's shared-memory segment for bulk copies, once attached; unmapped on drop.
/// Shared by both backends.
#[derive(Default)]
struct ShmSegment(Mutex<Option<(usize, usize)>>);

impl ShmSegment {
    /// Maps segment `name` of `size` bytes for session `sid` (once per session).
    fn attach(&self, sid: u64, name: &str, size: u64) -> CuResult<()> {
        let mut g = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if g.is_some() {
            return Err(CuError::INVALID_VALUE);
        }
        *g = Some(map_shm(name, size)?);
        tracing::info!(
            "session {sid}: shared-memory bulk path attached ({} MiB)",
            size >> 20
        );
        Ok(())
    }

    /// Where the segment is mapped and how large it is, once attached.
    fn mapping(&self) -> Option<(usize, usize)> {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The segment's bytes `[off, off+len)`, as an address.
    fn range(&self, off: u64, len: u64) -> CuResult<usize> {
        let (base, size) = self
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .ok_or(CuError::INVALID_VALUE)?;
        if off.checked_add(len).is_none_or(|e| e > size as u64) {
            return Err(CuError::INVALID_VALUE);
        }
        Ok(base + off as usize)
    }
}

impl Drop for ShmSegment {
    fn drop(&mut self) {
        if let Some((base, size)) = self.0.get_mut().unwrap_or_else(|e| e.into_inner()).take() {
            // SAFETY: mapped by `attach` with this size; the session owning it has ended.
            unsafe { libc::munmap(base as *mut libc::c_void, size) };
        }
    }
}

/// Maps the client's shared-memory segment `name` (`/rgpu-<hex>`, at most 4 GiB): (address, size).
fn map_shm(name: &str, size: u64) -> CuResult<(usize, usize)> {
    let valid_name = name.strip_prefix("/rgpu-").is_some_and(|r| {
        !r.is_empty() && r.len() < 64 && r.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
    });
    if !valid_name || size == 0 || size > (4 << 30) {
        return Err(CuError::NOT_SUPPORTED);
    }
    let cname = std::ffi::CString::new(name).map_err(|_| CuError::INVALID_VALUE)?;
    // SAFETY: POSIX calls on a validated name; the mapping's size is checked against the file.
    unsafe {
        let fd = libc::shm_open(cname.as_ptr(), libc::O_RDWR, 0);
        if fd < 0 {
            return Err(CuError::NOT_SUPPORTED);
        }
        let mut st: libc::stat = std::mem::zeroed();
        let ok = libc::fstat(fd, &mut st) == 0 && st.st_size as u64 >= size;
        let p = if ok {
            libc::mmap(
                std::ptr::null_mut(),
                size as usize,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd,
                0,
            )
        } else {
            libc::MAP_FAILED
        };
        libc::close(fd);
        if p == libc::MAP_FAILED {
            return Err(CuError::NOT_SUPPORTED);
        }
        Ok((p as usize, size as usize))
    }
}

impl Handler for Session {
    type Cx = Cx;

    fn module_load(&self, cx: &Cx, req: ModuleLoadReq) -> CuResult<ModuleLoadRep> {
        self.k_module_load(cx, req)
    }
    fn module_unload(&self, cx: &Cx, req: ModuleUnloadReq) -> CuResult<ModuleUnloadRep> {
        self.k_module_unload(cx, req)
    }
    fn module_get_function(
        &self,
        cx: &Cx,
        req: ModuleGetFunctionReq,
    ) -> CuResult<ModuleGetFunctionRep> {
        self.k_module_get_function(cx, req)
    }
    fn module_get_global(&self, cx: &Cx, req: ModuleGetGlobalReq) -> CuResult<ModuleGetGlobalRep> {
        self.k_module_get_global(cx, req)
    }
    fn func_get_attribute(
        &self,
        cx: &Cx,
        req: FuncGetAttributeReq,
    ) -> CuResult<FuncGetAttributeRep> {
        self.k_func_get_attribute(cx, req)
    }
    fn func_set_attribute(
        &self,
        cx: &Cx,
        req: FuncSetAttributeReq,
    ) -> CuResult<FuncSetAttributeRep> {
        self.k_func_set_attribute(cx, req)
    }
    fn func_get_param_info(
        &self,
        cx: &Cx,
        req: FuncGetParamInfoReq,
    ) -> CuResult<FuncGetParamInfoRep> {
        self.k_func_get_param_info(cx, req)
    }
    fn func_get_param_count(
        &self,
        cx: &Cx,
        req: FuncGetParamCountReq,
    ) -> CuResult<FuncGetParamCountRep> {
        self.k_func_get_param_count(cx, req)
    }
    fn func_get_module(&self, cx: &Cx, req: FuncGetModuleReq) -> CuResult<FuncGetModuleRep> {
        self.k_func_get_module(cx, req)
    }
    fn func_layout(&self, cx: &Cx, req: FuncLayoutReq) -> CuResult<FuncLayoutRep> {
        self.k_func_layout(cx, req)
    }
    fn func_set_cache_config(
        &self,
        cx: &Cx,
        req: FuncSetCacheConfigReq,
    ) -> CuResult<FuncSetCacheConfigRep> {
        self.k_func_set_cache_config(cx, req)
    }
    fn func_name(&self, cx: &Cx, req: FuncNameReq) -> CuResult<FuncNameRep> {
        self.k_func_name(cx, req)
    }
    fn launch_kernel(&self, cx: &Cx, req: LaunchKernelReq) -> CuResult<LaunchKernelRep> {
        self.k_launch_kernel(cx, req)
    }
    fn occupancy_max_active_blocks(
        &self,
        cx: &Cx,
        req: OccupancyMaxActiveBlocksReq,
    ) -> CuResult<OccupancyMaxActiveBlocksRep> {
        self.k_occupancy(cx, req.func, req.block_size, req.dynamic_smem)
            .map(|n| OccupancyMaxActiveBlocksRep { num_blocks: n })
    }
    fn occupancy_max_active_blocks_with_flags(
        &self,
        cx: &Cx,
        req: OccupancyMaxActiveBlocksWithFlagsReq,
    ) -> CuResult<OccupancyMaxActiveBlocksWithFlagsRep> {
        if req.flags > 1 {
            return Err(CuError::INVALID_VALUE);
        }
        self.k_occupancy(cx, req.func, req.block_size, req.dynamic_smem)
            .map(|n| OccupancyMaxActiveBlocksWithFlagsRep { num_blocks: n })
    }
    fn occupancy_available_dynamic_s_mem(
        &self,
        cx: &Cx,
        req: OccupancyAvailableDynamicSMemReq,
    ) -> CuResult<OccupancyAvailableDynamicSMemRep> {
        self.k_available_smem(cx, req)
    }

    fn init(&self, _cx: &Cx, req: InitReq) -> CuResult<InitRep> {
        if req.flags != 0 {
            return Err(CuError::INVALID_VALUE);
        }
        if self.devices.is_empty() {
            return Err(CuError::NO_DEVICE);
        }
        Ok(InitRep {
            driver_version: DRIVER_VERSION,
        })
    }

    fn device_get_count(&self, _cx: &Cx, _req: DeviceGetCountReq) -> CuResult<DeviceGetCountRep> {
        Ok(DeviceGetCountRep {
            count: self.devices.len() as i32,
        })
    }

    fn device_get(&self, _cx: &Cx, req: DeviceGetReq) -> CuResult<DeviceGetRep> {
        self.device(req.ordinal)?;
        Ok(DeviceGetRep {
            device: req.ordinal,
        })
    }

    fn device_get_name(&self, _cx: &Cx, req: DeviceGetNameReq) -> CuResult<DeviceGetNameRep> {
        if req.len <= 0 {
            return Err(CuError::INVALID_VALUE);
        }
        Ok(DeviceGetNameRep {
            name: bytes_of(&self.device(req.dev)?.name()),
        })
    }

    fn device_summary(&self, _cx: &Cx, req: DeviceSummaryReq) -> CuResult<DeviceSummaryRep> {
        let d = self.device(req.dev)?;
        let max = DEVICE_ATTRIBUTES
            .iter()
            .map(|(v, _)| *v)
            .max()
            .unwrap_or(0)
            .max(0) as usize;
        let attributes = (0..=max as i32)
            .map(|a| d.attribute(a).unwrap_or(i32::MIN))
            .collect();
        Ok(DeviceSummaryRep {
            attributes,
            name: d.name(),
            uuid: d.uuid().to_vec(),
            total_mem: d.total_mem(),
        })
    }

    fn device_get_uuid(&self, _cx: &Cx, req: DeviceGetUuidReq) -> CuResult<DeviceGetUuidRep> {
        Ok(DeviceGetUuidRep {
            uuid: self.device(req.dev)?.uuid().to_vec(),
        })
    }

    fn device_total_mem(&self, _cx: &Cx, req: DeviceTotalMemReq) -> CuResult<DeviceTotalMemRep> {
        Ok(DeviceTotalMemRep {
            bytes: self.device(req.dev)?.total_mem(),
        })
    }

    fn device_get_attribute(
        &self,
        _cx: &Cx,
        req: DeviceGetAttributeReq,
    ) -> CuResult<DeviceGetAttributeRep> {
        let d = self.device(req.dev)?;
        Ok(DeviceGetAttributeRep {
            value: d.attribute(req.attrib)?,
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
            pci_bus_id: bytes_of(&self.device(req.dev)?.pci_bus_id()),
        })
    }

    fn device_get_by_pci_bus_id(
        &self,
        _cx: &Cx,
        req: DeviceGetByPciBusIdReq,
    ) -> CuResult<DeviceGetByPciBusIdRep> {
        let want = req.pci_bus_id.trim().to_ascii_lowercase();
        for (i, d) in self.devices.iter().enumerate() {
            let id = d.pci_bus_id().to_ascii_lowercase();
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
        let d = self.device(req.dev)?;
        Ok(DeviceComputeCapabilityRep {
            major: d.attribute(75)?,
            minor: d.attribute(76)?,
        })
    }

    fn device_can_access_peer(
        &self,
        _cx: &Cx,
        req: DeviceCanAccessPeerReq,
    ) -> CuResult<DeviceCanAccessPeerRep> {
        self.device(req.dev)?;
        self.device(req.peer_dev)?;
        Ok(DeviceCanAccessPeerRep { can_access: 0 })
    }

    fn device_get_p2p_attribute(
        &self,
        _cx: &Cx,
        req: DeviceGetP2pAttributeReq,
    ) -> CuResult<DeviceGetP2pAttributeRep> {
        self.device(req.src)?;
        self.device(req.dst)?;
        if req.src == req.dst || !(1..=5).contains(&req.attrib) {
            return Err(CuError::INVALID_VALUE);
        }
        Ok(DeviceGetP2pAttributeRep { value: 0 })
    }

    fn device_get_texture1d_linear_max_width(
        &self,
        _cx: &Cx,
        req: DeviceGetTexture1dLinearMaxWidthReq,
    ) -> CuResult<DeviceGetTexture1dLinearMaxWidthRep> {
        self.device(req.dev)?;
        if !matches!(req.num_channels, 1 | 2 | 4) {
            return Err(CuError::INVALID_VALUE);
        }
        Ok(DeviceGetTexture1dLinearMaxWidthRep { max_width: 1 << 28 })
    }

    fn device_get_properties(
        &self,
        _cx: &Cx,
        req: DeviceGetPropertiesReq,
    ) -> CuResult<DeviceGetPropertiesRep> {
        let d = self.device(req.dev)?;
        let a = |n: i32| d.attribute(n);
        Ok(DeviceGetPropertiesRep {
            props: vec![
                a(1)?,
                a(2)?,
                a(3)?,
                a(4)?,
                a(5)?,
                a(6)?,
                a(7)?,
                a(8)?,
                a(9)?,
                a(10)?,
                a(11)?,
                a(12)?,
                a(13)?,
                a(14)?,
            ],
        })
    }

    fn device_primary_ctx_retain(
        &self,
        _cx: &Cx,
        req: DevicePrimaryCtxRetainReq,
    ) -> CuResult<DevicePrimaryCtxRetainRep> {
        self.device(req.dev)?;
        let mut st = self.st();
        let (handle, refs, flags) = {
            let p = st.primaries.entry(req.dev, self.ns());
            p.refs += 1;
            (p.handle, p.refs, p.flags)
        };
        // The context may also be missing after a reset that left retains outstanding.
        if refs == 1 || !st.contexts.contains_key(&handle) {
            self.new_ctx(&mut st, req.dev, flags, true, handle);
        }
        Ok(DevicePrimaryCtxRetainRep { ctx: handle })
    }

    fn device_primary_ctx_release(
        &self,
        _cx: &Cx,
        req: DevicePrimaryCtxReleaseReq,
    ) -> CuResult<DevicePrimaryCtxReleaseRep> {
        self.device(req.dev)?;
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
        self.device(req.dev)?;
        let mut st = self.st();
        // Resetting does not release: the retains stay outstanding and each may still be
        // released afterwards; the next retain creates a fresh context.
        if let Some(h) = st.primaries.reset(req.dev) {
            self.teardown_ctx(&mut st, h);
        }
        self.reinit_library_globals(&st, req.dev);
        // Errors of pipelined calls in the old context must not surface in the new one.
        self.deferred.clear();
        Ok(DevicePrimaryCtxResetRep {})
    }

    fn device_primary_ctx_get_state(
        &self,
        _cx: &Cx,
        req: DevicePrimaryCtxGetStateReq,
    ) -> CuResult<DevicePrimaryCtxGetStateRep> {
        self.device(req.dev)?;
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
        self.device(req.dev)?;
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

    fn ctx_create(&self, _cx: &Cx, req: CtxCreateReq) -> CuResult<CtxCreateRep> {
        self.device(req.dev)?;
        if !ctx_flags_ok(req.flags) {
            return Err(CuError::INVALID_VALUE);
        }
        let handle = new_handle(self.ns());
        let mut st = self.st();
        self.new_ctx(&mut st, req.dev, req.flags, false, handle);
        Ok(CtxCreateRep { ctx: handle })
    }

    fn ctx_destroy(&self, _cx: &Cx, req: CtxDestroyReq) -> CuResult<CtxDestroyRep> {
        let mut st = self.st();
        let c = self.ctx_of(&st, req.ctx)?;
        if c.primary {
            return Err(CuError::INVALID_CONTEXT);
        }
        self.teardown_ctx(&mut st, req.ctx);
        Ok(CtxDestroyRep {})
    }

    fn device_primary_ctx_handle(
        &self,
        _cx: &Cx,
        req: DevicePrimaryCtxHandleReq,
    ) -> CuResult<DevicePrimaryCtxHandleRep> {
        self.device(req.dev)?;
        let mut st = self.st();
        let p = st.primaries.entry(req.dev, self.ns());
        Ok(DevicePrimaryCtxHandleRep { ctx: p.handle })
    }

    fn ctx_info(&self, _cx: &Cx, req: CtxInfoReq) -> CuResult<CtxInfoRep> {
        let st = self.st();
        // An inactive primary context is still a valid handle (cudart makes it current, then
        // retains it).
        if !st.contexts.contains_key(&req.ctx) {
            if let Some((device, flags)) = st.primaries.find(req.ctx) {
                return Ok(CtxInfoRep {
                    device,
                    flags,
                    id: 0,
                    api_version: 3020,
                });
            }
        }
        let c = self.ctx_of(&st, req.ctx)?;
        Ok(CtxInfoRep {
            device: c.device,
            flags: c.flags,
            id: c.id,
            api_version: 3020,
        })
    }

    fn ctx_synchronize(&self, _cx: &Cx, req: CtxSynchronizeReq) -> CuResult<CtxSynchronizeRep> {
        self.sync_ctx(req.ctx)?;
        Ok(CtxSynchronizeRep {})
    }

    fn ctx_set_flags(&self, cx: &Cx, req: CtxSetFlagsReq) -> CuResult<CtxSetFlagsRep> {
        if !ctx_flags_ok(req.flags) {
            return Err(CuError::INVALID_VALUE);
        }
        let mut st = self.st();
        self.ctx(&st, cx)?;
        st.contexts.get_mut(&cx.ctx).expect("checked").flags = req.flags;
        Ok(CtxSetFlagsRep {})
    }

    fn ctx_get_limit(&self, cx: &Cx, req: CtxGetLimitReq) -> CuResult<CtxGetLimitRep> {
        let st = self.st();
        let c = self.ctx(&st, cx)?;
        let v = c.limits.get(&req.limit).ok_or(CuError::UNSUPPORTED_LIMIT)?;
        Ok(CtxGetLimitRep { value: *v })
    }

    fn ctx_set_limit(&self, cx: &Cx, req: CtxSetLimitReq) -> CuResult<CtxSetLimitRep> {
        let mut st = self.st();
        self.ctx(&st, cx)?;
        let c = st.contexts.get_mut(&cx.ctx).expect("checked");
        if !c.limits.contains_key(&req.limit) {
            return Err(CuError::UNSUPPORTED_LIMIT);
        }
        c.limits.insert(req.limit, req.value);
        Ok(CtxSetLimitRep {})
    }

    fn ctx_get_cache_config(
        &self,
        cx: &Cx,
        _req: CtxGetCacheConfigReq,
    ) -> CuResult<CtxGetCacheConfigRep> {
        let st = self.st();
        Ok(CtxGetCacheConfigRep {
            config: self.ctx(&st, cx)?.cache_config,
        })
    }

    fn ctx_set_cache_config(
        &self,
        cx: &Cx,
        req: CtxSetCacheConfigReq,
    ) -> CuResult<CtxSetCacheConfigRep> {
        if !(0..=3).contains(&req.config) {
            return Err(CuError::INVALID_VALUE);
        }
        let mut st = self.st();
        self.ctx(&st, cx)?;
        st.contexts.get_mut(&cx.ctx).expect("checked").cache_config = req.config;
        Ok(CtxSetCacheConfigRep {})
    }

    fn ctx_get_stream_priority_range(
        &self,
        cx: &Cx,
        _req: CtxGetStreamPriorityRangeReq,
    ) -> CuResult<CtxGetStreamPriorityRangeRep> {
        let st = self.st();
        self.ctx(&st, cx)?;
        Ok(CtxGetStreamPriorityRangeRep {
            least: 0,
            greatest: -5,
        })
    }

    fn ctx_get_shared_mem_config(
        &self,
        cx: &Cx,
        _req: CtxGetSharedMemConfigReq,
    ) -> CuResult<CtxGetSharedMemConfigRep> {
        let st = self.st();
        Ok(CtxGetSharedMemConfigRep {
            config: self.ctx(&st, cx)?.shmem_config,
        })
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
        self.ctx(&st, cx)?;
        st.contexts.get_mut(&cx.ctx).expect("checked").shmem_config = req.config;
        Ok(CtxSetSharedMemConfigRep {})
    }

    fn ctx_enable_peer_access(
        &self,
        cx: &Cx,
        req: CtxEnablePeerAccessReq,
    ) -> CuResult<CtxEnablePeerAccessRep> {
        if req.flags != 0 {
            return Err(CuError::INVALID_VALUE);
        }
        let st = self.st();
        self.ctx(&st, cx)?;
        if !st.contexts.contains_key(&req.peer_ctx) {
            return Err(CuError::INVALID_CONTEXT);
        }
        // CPU devices report no peer access (cuDeviceCanAccessPeer says 0); copies between
        // them work without it.
        Err(CuError::PEER_ACCESS_UNSUPPORTED)
    }

    fn ctx_disable_peer_access(
        &self,
        cx: &Cx,
        req: CtxDisablePeerAccessReq,
    ) -> CuResult<CtxDisablePeerAccessRep> {
        let st = self.st();
        self.ctx(&st, cx)?;
        if !st.contexts.contains_key(&req.peer_ctx) {
            return Err(CuError::INVALID_CONTEXT);
        }
        Err(CuError::PEER_ACCESS_NOT_ENABLED)
    }

    fn mem_alloc(&self, cx: &Cx, req: MemAllocReq) -> CuResult<MemAllocRep> {
        let mut st = self.st();
        let dev = self.ctx(&st, cx)?.device;
        let quota = *self.quota.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(q) = quota {
            if self.held_bytes(&st).saturating_add(req.bytesize) > q {
                return Err(CuError::OUT_OF_MEMORY);
            }
        }
        let ptr = self.devices[dev as usize].alloc(req.bytesize, self.ns())?;
        st.allocs.insert(
            ptr,
            Alloc {
                ctx: cx.ctx,
                device: dev,
            },
        );
        Ok(MemAllocRep { dptr: ptr })
    }

    fn mem_free(&self, cx: &Cx, req: MemFreeReq) -> CuResult<MemFreeRep> {
        let mut st = self.st();
        self.ctx(&st, cx)?;
        if req.dptr == 0 {
            return Ok(MemFreeRep {});
        }
        let a = st.allocs.remove(&req.dptr).ok_or(CuError::INVALID_VALUE)?;
        let dev = self.devices[a.device as usize].clone();
        // Freeing waits for work already queued on the context (like the driver does).
        let ctx = st.contexts.get(&a.ctx).map(|c| c.null_stream.clone());
        drop(st);
        if let Some(s) = ctx {
            s.tail().wait();
        }
        dev.free(req.dptr)?;
        Ok(MemFreeRep {})
    }

    fn mem_get_info(&self, cx: &Cx, _req: MemGetInfoReq) -> CuResult<MemGetInfoRep> {
        let st = self.st();
        let d = &self.devices[self.ctx(&st, cx)?.device as usize];
        let total = d.total_mem();
        Ok(MemGetInfoRep {
            free: total.saturating_sub(d.used_mem()),
            total,
        })
    }

    fn shm_attach(&self, _cx: &Cx, req: ShmAttachReq) -> CuResult<ShmAttachRep> {
        if !self.local.load(Ordering::Relaxed) {
            return Err(CuError::NOT_SUPPORTED);
        }
        self.shm.attach(self.id, &req.name, req.size)?;
        Ok(ShmAttachRep {})
    }

    fn memcpy_hto_d_shm(&self, cx: &Cx, req: MemcpyHtoDShmReq) -> CuResult<MemcpyHtoDShmRep> {
        let n = req.byte_count;
        let src = self.shm.range(req.offset, n)?;
        if n == 0 {
            return Ok(MemcpyHtoDShmRep {});
        }
        let r = self.region(cx, req.dst, n)?;
        if req.is_async {
            // The client reuses the segment after the reply: take the bytes now.
            // SAFETY: ShmSegment::range checked the range lies in the mapped segment.
            let data = unsafe { std::slice::from_raw_parts(src as *const u8, n as usize) }.to_vec();
            self.submit(
                cx,
                req.stream,
                Box::new(move || r.buf.write(r.offset, &data)),
            )?;
        } else {
            self.submit_wait(
                cx,
                req.stream,
                Box::new(move || {
                    // SAFETY: the segment stays mapped while this call waits for the job.
                    let data = unsafe { std::slice::from_raw_parts(src as *const u8, n as usize) };
                    r.buf.write(r.offset, data)
                }),
            )?;
        }
        Ok(MemcpyHtoDShmRep {})
    }

    fn memcpy_dto_h_shm(&self, cx: &Cx, req: MemcpyDtoHShmReq) -> CuResult<MemcpyDtoHShmRep> {
        let n = req.byte_count;
        let dst = self.shm.range(req.offset, n)?;
        if n == 0 {
            return Ok(MemcpyDtoHShmRep {});
        }
        let r = self.region(cx, req.src, n)?;
        self.submit_wait(
            cx,
            req.stream,
            Box::new(move || {
                // SAFETY: the segment stays mapped while this call waits for the job.
                let out = unsafe { std::slice::from_raw_parts_mut(dst as *mut u8, n as usize) };
                r.buf.read(r.offset, out)
            }),
        )?;
        Ok(MemcpyDtoHShmRep {})
    }

    fn pointer_info(&self, _cx: &Cx, req: PointerInfoReq) -> CuResult<PointerInfoRep> {
        let st = self.st();
        let Some((&base, a)) = st.allocs.range(..=req.ptr).next_back() else {
            return Ok(PointerInfoRep::default());
        };
        let Ok(r) = self.devices[a.device as usize].region(base, 1) else {
            return Ok(PointerInfoRep::default());
        };
        let size = r.buf.len() as u64;
        if req.ptr >= base + size {
            return Ok(PointerInfoRep::default());
        }
        Ok(PointerInfoRep {
            found: true,
            base,
            size,
            ctx: a.ctx,
            device: a.device,
        })
    }

    fn mem_alloc_async(&self, cx: &Cx, req: MemAllocAsyncReq) -> CuResult<MemAllocAsyncRep> {
        // The stream must exist; the memory is usable at once, which stream order allows.
        self.stream(&mut self.st(), cx, req.stream)?;
        let r = self.mem_alloc(
            cx,
            MemAllocReq {
                bytesize: req.bytesize,
            },
        )?;
        Ok(MemAllocAsyncRep { dptr: r.dptr })
    }

    fn mem_free_async(&self, cx: &Cx, req: MemFreeAsyncReq) -> CuResult<MemFreeAsyncRep> {
        self.stream(&mut self.st(), cx, req.stream)?;
        if req.dptr == 0 {
            return Err(CuError::INVALID_VALUE);
        }
        let mut st = self.st();
        let a = st.allocs.remove(&req.dptr).ok_or(CuError::INVALID_VALUE)?;
        // Work already queued holds its own reference to the memory; the address is released now.
        let _ = self.devices[a.device as usize].free(req.dptr);
        Ok(MemFreeAsyncRep {})
    }

    fn mem_get_address_range(
        &self,
        cx: &Cx,
        req: MemGetAddressRangeReq,
    ) -> CuResult<MemGetAddressRangeRep> {
        let st = self.st();
        self.ctx(&st, cx)?;
        let (&base, a) = st
            .allocs
            .range(..=req.dptr)
            .next_back()
            .ok_or(CuError::NOT_FOUND)?;
        let dev = self.devices[a.device as usize].clone();
        drop(st);
        let r = dev.region(base, 1).map_err(|_| CuError::NOT_FOUND)?;
        let size = r.buf.len() as u64;
        if req.dptr >= base + size {
            return Err(CuError::NOT_FOUND);
        }
        Ok(MemGetAddressRangeRep { base, size })
    }

    fn mem_alloc_pitch(&self, cx: &Cx, req: MemAllocPitchReq) -> CuResult<MemAllocPitchRep> {
        if !matches!(req.element_size, 4 | 8 | 16) || req.width == 0 || req.height == 0 {
            return Err(CuError::INVALID_VALUE);
        }
        let pitch = req.width.div_ceil(512) * 512;
        let size = pitch
            .checked_mul(req.height)
            .ok_or(CuError::OUT_OF_MEMORY)?;
        let r = self.mem_alloc(cx, MemAllocReq { bytesize: size })?;
        Ok(MemAllocPitchRep {
            dptr: r.dptr,
            pitch,
        })
    }

    fn memcpy_hto_d(&self, cx: &Cx, req: MemcpyHtoDReq) -> CuResult<MemcpyHtoDRep> {
        self.copy_h2d(cx, req.dst, req.src, req.byte_count, 0, true)?;
        Ok(MemcpyHtoDRep {})
    }

    fn memcpy_dto_h(&self, cx: &Cx, req: MemcpyDtoHReq) -> CuResult<MemcpyDtoHRep> {
        Ok(MemcpyDtoHRep {
            dst: self.copy_d2h(cx, req.src, req.byte_count, 0)?,
        })
    }

    fn memcpy_dto_d(&self, cx: &Cx, req: MemcpyDtoDReq) -> CuResult<MemcpyDtoDRep> {
        self.copy_d2d(cx, req.dst, req.src, req.byte_count, 0, true)?;
        Ok(MemcpyDtoDRep {})
    }

    fn memcpy_hto_d_async(&self, cx: &Cx, req: MemcpyHtoDAsyncReq) -> CuResult<MemcpyHtoDAsyncRep> {
        self.copy_h2d(cx, req.dst, req.src, req.byte_count, req.stream, false)?;
        Ok(MemcpyHtoDAsyncRep {})
    }

    fn memcpy_dto_h_async(&self, cx: &Cx, req: MemcpyDtoHAsyncReq) -> CuResult<MemcpyDtoHAsyncRep> {
        Ok(MemcpyDtoHAsyncRep {
            dst: self.copy_d2h(cx, req.src, req.byte_count, req.stream)?,
        })
    }

    fn memcpy_dto_d_async(&self, cx: &Cx, req: MemcpyDtoDAsyncReq) -> CuResult<MemcpyDtoDAsyncRep> {
        self.copy_d2d(cx, req.dst, req.src, req.byte_count, req.stream, false)?;
        Ok(MemcpyDtoDAsyncRep {})
    }

    fn memcpy2d(&self, cx: &Cx, req: Memcpy2DReq) -> CuResult<Memcpy2DRep> {
        let (w, h) = (req.width, req.height);
        let span = |pitch: u64| {
            (h - 1)
                .checked_mul(pitch)
                .and_then(|v| v.checked_add(w))
                .ok_or(CuError::INVALID_VALUE)
        };
        if w == 0 || h == 0 {
            return Ok(Memcpy2DRep::default());
        }
        let stream = if req.is_async { req.stream } else { 0 };
        match req.mode {
            0 => {
                if req.data.len() as u64 != w * h {
                    return Err(CuError::INVALID_VALUE);
                }
                let d = self.region(cx, req.dst, span(req.dst_pitch)?)?;
                let (pitch, data) = (req.dst_pitch as usize, req.data);
                let f = self.submit(
                    cx,
                    stream,
                    Box::new(move || {
                        for row in 0..h as usize {
                            d.buf.write(
                                d.offset + row * pitch,
                                &data[row * w as usize..(row + 1) * w as usize],
                            );
                        }
                    }),
                )?;
                if !req.is_async {
                    f.wait();
                }
                Ok(Memcpy2DRep::default())
            }
            1 => {
                let s = self.region(cx, req.src, span(req.src_pitch)?)?;
                let out = Arc::new(Mutex::new(Vec::new()));
                let o = out.clone();
                let pitch = req.src_pitch as usize;
                let f = self.submit(
                    cx,
                    stream,
                    Box::new(move || {
                        let mut v = vec![0u8; (w * h) as usize];
                        for row in 0..h as usize {
                            s.buf.read(
                                s.offset + row * pitch,
                                &mut v[row * w as usize..(row + 1) * w as usize],
                            );
                        }
                        *o.lock().unwrap_or_else(|e| e.into_inner()) = v;
                    }),
                )?;
                f.wait();
                let data = std::mem::take(&mut *out.lock().unwrap_or_else(|e| e.into_inner()));
                Ok(Memcpy2DRep { data })
            }
            2 => {
                let s = self.region(cx, req.src, span(req.src_pitch)?)?;
                let d = self.region(cx, req.dst, span(req.dst_pitch)?)?;
                let (sp, dp) = (req.src_pitch as usize, req.dst_pitch as usize);
                let f = self.submit(
                    cx,
                    stream,
                    Box::new(move || {
                        for row in 0..h as usize {
                            d.buf.copy_from(
                                d.offset + row * dp,
                                &s.buf,
                                s.offset + row * sp,
                                w as usize,
                            );
                        }
                    }),
                )?;
                if !req.is_async {
                    f.wait();
                }
                Ok(Memcpy2DRep::default())
            }
            _ => Err(CuError::INVALID_VALUE),
        }
    }

    fn memset_d8(&self, cx: &Cx, r: MemsetD8Req) -> CuResult<MemsetD8Rep> {
        self.memset2d(cx, r.dst, 0, vec![r.value], r.count, 1, 0, true)?;
        Ok(MemsetD8Rep {})
    }

    fn memset_d16(&self, cx: &Cx, r: MemsetD16Req) -> CuResult<MemsetD16Rep> {
        self.memset2d(
            cx,
            r.dst,
            0,
            r.value.to_le_bytes().to_vec(),
            r.count,
            1,
            0,
            true,
        )?;
        Ok(MemsetD16Rep {})
    }

    fn memset_d32(&self, cx: &Cx, r: MemsetD32Req) -> CuResult<MemsetD32Rep> {
        self.memset2d(
            cx,
            r.dst,
            0,
            r.value.to_le_bytes().to_vec(),
            r.count,
            1,
            0,
            true,
        )?;
        Ok(MemsetD32Rep {})
    }

    fn memset_d8_async(&self, cx: &Cx, r: MemsetD8AsyncReq) -> CuResult<MemsetD8AsyncRep> {
        self.memset2d(cx, r.dst, 0, vec![r.value], r.count, 1, r.stream, false)?;
        Ok(MemsetD8AsyncRep {})
    }

    fn memset_d16_async(&self, cx: &Cx, r: MemsetD16AsyncReq) -> CuResult<MemsetD16AsyncRep> {
        self.memset2d(
            cx,
            r.dst,
            0,
            r.value.to_le_bytes().to_vec(),
            r.count,
            1,
            r.stream,
            false,
        )?;
        Ok(MemsetD16AsyncRep {})
    }

    fn memset_d32_async(&self, cx: &Cx, r: MemsetD32AsyncReq) -> CuResult<MemsetD32AsyncRep> {
        self.memset2d(
            cx,
            r.dst,
            0,
            r.value.to_le_bytes().to_vec(),
            r.count,
            1,
            r.stream,
            false,
        )?;
        Ok(MemsetD32AsyncRep {})
    }

    fn memset_d2d8(&self, cx: &Cx, r: MemsetD2D8Req) -> CuResult<MemsetD2D8Rep> {
        self.memset2d(
            cx,
            r.dst,
            r.pitch,
            vec![r.value],
            r.width,
            r.height,
            0,
            true,
        )?;
        Ok(MemsetD2D8Rep {})
    }

    fn memset_d2d16(&self, cx: &Cx, r: MemsetD2D16Req) -> CuResult<MemsetD2D16Rep> {
        self.memset2d(
            cx,
            r.dst,
            r.pitch,
            r.value.to_le_bytes().to_vec(),
            r.width,
            r.height,
            0,
            true,
        )?;
        Ok(MemsetD2D16Rep {})
    }

    fn memset_d2d32(&self, cx: &Cx, r: MemsetD2D32Req) -> CuResult<MemsetD2D32Rep> {
        self.memset2d(
            cx,
            r.dst,
            r.pitch,
            r.value.to_le_bytes().to_vec(),
            r.width,
            r.height,
            0,
            true,
        )?;
        Ok(MemsetD2D32Rep {})
    }

    fn memset_d2d8_async(&self, cx: &Cx, r: MemsetD2D8AsyncReq) -> CuResult<MemsetD2D8AsyncRep> {
        self.memset2d(
            cx,
            r.dst,
            r.pitch,
            vec![r.value],
            r.width,
            r.height,
            r.stream,
            false,
        )?;
        Ok(MemsetD2D8AsyncRep {})
    }

    fn memset_d2d16_async(&self, cx: &Cx, r: MemsetD2D16AsyncReq) -> CuResult<MemsetD2D16AsyncRep> {
        self.memset2d(
            cx,
            r.dst,
            r.pitch,
            r.value.to_le_bytes().to_vec(),
            r.width,
            r.height,
            r.stream,
            false,
        )?;
        Ok(MemsetD2D16AsyncRep {})
    }

    fn memset_d2d32_async(&self, cx: &Cx, r: MemsetD2D32AsyncReq) -> CuResult<MemsetD2D32AsyncRep> {
        self.memset2d(
            cx,
            r.dst,
            r.pitch,
            r.value.to_le_bytes().to_vec(),
            r.width,
            r.height,
            r.stream,
            false,
        )?;
        Ok(MemsetD2D32AsyncRep {})
    }

    fn stream_create(&self, cx: &Cx, req: StreamCreateReq) -> CuResult<StreamCreateRep> {
        self.stream_create_with_priority(
            cx,
            StreamCreateWithPriorityReq {
                flags: req.flags,
                priority: 0,
            },
        )
        .map(|r| StreamCreateRep { stream: r.stream })
    }

    fn stream_create_with_priority(
        &self,
        cx: &Cx,
        req: StreamCreateWithPriorityReq,
    ) -> CuResult<StreamCreateWithPriorityRep> {
        if req.flags & !STREAM_NON_BLOCKING != 0 {
            return Err(CuError::INVALID_VALUE);
        }
        let mut st = self.st();
        self.ctx(&st, cx)?;
        if st.streams.len() >= self.limits().streams {
            return Err(CuError::OUT_OF_MEMORY);
        }
        let h = new_handle(self.ns());
        st.streams.insert(
            h,
            Stream::new(h, cx.ctx, req.flags, req.priority.clamp(-5, 0)),
        );
        Ok(StreamCreateWithPriorityRep { stream: h })
    }

    fn stream_destroy(&self, _cx: &Cx, req: StreamDestroyReq) -> CuResult<StreamDestroyRep> {
        let mut st = self.st();
        let s = st
            .streams
            .remove(&req.stream)
            .ok_or(CuError::INVALID_HANDLE)?;
        // Work already queued still completes; the worker exits afterwards. Until then the
        // context (cuCtxSynchronize, the legacy stream) still waits for it.
        st.retired.retain(|(_, _, t)| !t.is_done());
        let tail = s.tail();
        if !tail.is_done() {
            st.retired.push((s.ctx, s.flags, tail));
        }
        drop(st);
        s.close();
        Ok(StreamDestroyRep {})
    }

    fn stream_query(&self, cx: &Cx, req: StreamQueryReq) -> CuResult<StreamQueryRep> {
        let s = self.stream(&mut self.st(), cx, req.stream)?;
        if s.tail().is_done() {
            Ok(StreamQueryRep {})
        } else {
            Err(CuError::NOT_READY)
        }
    }

    fn stream_synchronize(
        &self,
        cx: &Cx,
        req: StreamSynchronizeReq,
    ) -> CuResult<StreamSynchronizeRep> {
        let s = self.stream(&mut self.st(), cx, req.stream)?;
        s.tail().wait();
        Ok(StreamSynchronizeRep {})
    }

    fn stream_wait_event(&self, cx: &Cx, req: StreamWaitEventReq) -> CuResult<StreamWaitEventRep> {
        if req.flags & !1 != 0 {
            return Err(CuError::INVALID_VALUE);
        }
        let ev = self.event(&self.st(), req.event)?;
        let rec = ev.record.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let fence = rec.map(|r| r.fence);
        self.submit(
            cx,
            req.stream,
            Box::new(move || {
                if let Some(f) = fence {
                    f.wait();
                }
            }),
        )?;
        Ok(StreamWaitEventRep {})
    }

    fn stream_get_flags(&self, cx: &Cx, req: StreamGetFlagsReq) -> CuResult<StreamGetFlagsRep> {
        let s = self.stream(&mut self.st(), cx, req.stream)?;
        Ok(StreamGetFlagsRep { flags: s.flags })
    }

    fn stream_get_priority(
        &self,
        cx: &Cx,
        req: StreamGetPriorityReq,
    ) -> CuResult<StreamGetPriorityRep> {
        let s = self.stream(&mut self.st(), cx, req.stream)?;
        Ok(StreamGetPriorityRep {
            priority: s.priority,
        })
    }

    fn stream_get_ctx(&self, cx: &Cx, req: StreamGetCtxReq) -> CuResult<StreamGetCtxRep> {
        let s = self.stream(&mut self.st(), cx, req.stream)?;
        Ok(StreamGetCtxRep { ctx: s.ctx })
    }

    fn stream_get_id(&self, cx: &Cx, req: StreamGetIdReq) -> CuResult<StreamGetIdRep> {
        let s = self.stream(&mut self.st(), cx, req.stream)?;
        Ok(StreamGetIdRep { id: s.id })
    }

    fn stream_get_device(&self, cx: &Cx, req: StreamGetDeviceReq) -> CuResult<StreamGetDeviceRep> {
        let mut st = self.st();
        let s = self.stream(&mut st, cx, req.stream)?;
        Ok(StreamGetDeviceRep {
            device: self.ctx_of(&st, s.ctx)?.device,
        })
    }

    fn event_create(&self, cx: &Cx, req: EventCreateReq) -> CuResult<EventCreateRep> {
        let all = EVENT_BLOCKING_SYNC | EVENT_DISABLE_TIMING | EVENT_INTERPROCESS;
        if req.flags & !all != 0
            || (req.flags & EVENT_INTERPROCESS != 0 && req.flags & EVENT_DISABLE_TIMING == 0)
        {
            return Err(CuError::INVALID_VALUE);
        }
        let mut st = self.st();
        self.ctx(&st, cx)?;
        if st.events.len() >= self.limits().events {
            return Err(CuError::OUT_OF_MEMORY);
        }
        let h = new_handle(self.ns());
        st.events.insert(
            h,
            Arc::new(Event {
                handle: h,
                ctx: cx.ctx,
                flags: req.flags,
                record: Mutex::new(None),
            }),
        );
        Ok(EventCreateRep { event: h })
    }

    fn event_destroy(&self, _cx: &Cx, req: EventDestroyReq) -> CuResult<EventDestroyRep> {
        self.st()
            .events
            .remove(&req.event)
            .ok_or(CuError::INVALID_HANDLE)?;
        Ok(EventDestroyRep {})
    }

    fn event_record(&self, cx: &Cx, req: EventRecordReq) -> CuResult<EventRecordRep> {
        self.record(cx, req.event, req.stream)?;
        Ok(EventRecordRep {})
    }

    fn event_record_with_flags(
        &self,
        cx: &Cx,
        req: EventRecordWithFlagsReq,
    ) -> CuResult<EventRecordWithFlagsRep> {
        if req.flags & !1 != 0 {
            return Err(CuError::INVALID_VALUE);
        }
        self.record(cx, req.event, req.stream)?;
        Ok(EventRecordWithFlagsRep {})
    }

    fn event_query(&self, _cx: &Cx, req: EventQueryReq) -> CuResult<EventQueryRep> {
        let ev = self.event(&self.st(), req.event)?;
        let rec = ev.record.lock().unwrap_or_else(|e| e.into_inner()).clone();
        match rec {
            Some(r) if !r.fence.is_done() => Err(CuError::NOT_READY),
            _ => Ok(EventQueryRep {}),
        }
    }

    fn event_synchronize(
        &self,
        _cx: &Cx,
        req: EventSynchronizeReq,
    ) -> CuResult<EventSynchronizeRep> {
        let ev = self.event(&self.st(), req.event)?;
        let rec = ev.record.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some(r) = rec {
            r.fence.wait();
        }
        Ok(EventSynchronizeRep {})
    }

    fn event_elapsed_time(
        &self,
        _cx: &Cx,
        req: EventElapsedTimeReq,
    ) -> CuResult<EventElapsedTimeRep> {
        let st = self.st();
        let (a, b) = (self.event(&st, req.start)?, self.event(&st, req.end)?);
        drop(st);
        if a.flags & EVENT_DISABLE_TIMING != 0 || b.flags & EVENT_DISABLE_TIMING != 0 {
            return Err(CuError::INVALID_HANDLE);
        }
        let ra = a.record.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let rb = b.record.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let (Some(ra), Some(rb)) = (ra, rb) else {
            return Err(CuError::INVALID_HANDLE);
        };
        if !ra.fence.is_done() || !rb.fence.is_done() {
            return Err(CuError::NOT_READY);
        }
        let ta = ra
            .time
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .ok_or(CuError::NOT_READY)?;
        let tb = rb
            .time
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .ok_or(CuError::NOT_READY)?;
        let ms = if tb >= ta {
            (tb - ta).as_secs_f64() * 1e3
        } else {
            -((ta - tb).as_secs_f64() * 1e3)
        };
        Ok(EventElapsedTimeRep { ms: ms as f32 })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::cpu::CpuDevice;
    use std::sync::Condvar;
    use std::time::Duration;

    #[test]
    fn queued_async_uploads_are_bounded_by_waiting_for_the_stream() {
        let dev: Arc<dyn Device> = Arc::new(CpuDevice::new(0, 64 << 20, "t"));
        let s = Arc::new(Session::new(1, Arc::new(vec![dev])));
        s.set_limits(Limits {
            inflight_bytes: 1 << 20,
            ..Default::default()
        });
        let cx0 = Cx {
            thread: 1,
            ctx: 0,
            per_thread: false,
        };
        s.init(&cx0, InitReq { flags: 0 }).unwrap();
        let ctx = s
            .device_primary_ctx_retain(&cx0, DevicePrimaryCtxRetainReq { dev: 0 })
            .unwrap()
            .ctx;
        let cx = Cx { ctx, ..cx0 };
        let stream = s
            .stream_create(&cx, StreamCreateReq { flags: 0 })
            .unwrap()
            .stream;
        let dst = s
            .mem_alloc(&cx, MemAllocReq { bytesize: 4 << 20 })
            .unwrap()
            .dptr;
        // Hold the stream with a job that waits for a gate.
        let gate = Arc::new((Mutex::new(false), Condvar::new()));
        let g = gate.clone();
        s.submit(
            &cx,
            stream,
            Box::new(move || {
                let (m, c) = &*g;
                let mut open = m.lock().unwrap();
                while !*open {
                    open = c.wait(open).unwrap();
                }
            }),
        )
        .unwrap();
        let chunk = 512u64 << 10;
        let done = Arc::new(AtomicU64::new(0));
        let (s2, d2) = (s.clone(), done.clone());
        let uploader = std::thread::spawn(move || {
            for i in 0..8u64 {
                s2.memcpy_hto_d_async(
                    &cx,
                    MemcpyHtoDAsyncReq {
                        dst: dst + i * chunk,
                        src: vec![i as u8 + 1; chunk as usize],
                        byte_count: chunk,
                        stream,
                    },
                )
                .unwrap();
                d2.fetch_add(1, Ordering::SeqCst);
            }
        });
        std::thread::sleep(Duration::from_millis(300));
        // Two 512 KiB copies fit in the 1 MiB limit; the third waits for its stream.
        assert_eq!(done.load(Ordering::SeqCst), 2);
        assert_eq!(s.inflight_bytes(), 3 * chunk);
        *gate.0.lock().unwrap() = true;
        gate.1.notify_all();
        uploader.join().unwrap();
        assert_eq!(done.load(Ordering::SeqCst), 8);
        s.stream_synchronize(&cx, StreamSynchronizeReq { stream })
            .unwrap();
        assert_eq!(s.inflight_bytes(), 0);
        let out = s
            .memcpy_dto_h(
                &cx,
                MemcpyDtoHReq {
                    src: dst,
                    byte_count: 8 * chunk,
                },
            )
            .unwrap()
            .dst;
        for i in 0..8usize {
            let c = i * chunk as usize;
            assert!(out[c..c + chunk as usize].iter().all(|&b| b == i as u8 + 1));
        }
    }
}
