//! A process whose devices live on several servers (a `{"servers": […]}` connection set, which
//! `rgpu run --registry` writes for an allocation that spans servers). This module decides which
//! server each call goes to, renumbers devices (the program sees the first server's devices
//! first, then the second's, …), remembers which server owns each device address, keeps
//! context-independent libraries loaded on every server, and stages device-to-device copies
//! between servers through this process.
//!
//! Each server puts the session's handles in the client's number for it (the top byte, see
//! `Hello::namespace`), so a handle names its server. Device addresses name theirs through the
//! allocation map kept here (CPU devices also place each client number's allocations in their
//! own address range). A process with one server never comes here.

use crate::rt;
use rgpu_protocol::client::Client;
use rgpu_protocol::error::{CuError, CuResult};
use rgpu_protocol::messages::*;
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

/// Staged cross-server copies move at most this much per round (device → here → device).
const STAGE: usize = 64 << 20;
/// … in requests of this size.
const STAGE_CHUNK: usize = 4 << 20;

/// One server of the process.
pub struct Server {
    /// Its connection.
    pub client: Arc<Client>,
    /// The program's ordinal of its first device.
    pub first: i32,
    /// How many of its devices the session sees.
    pub count: i32,
}

/// The servers of the process, in the order of its connection set.
pub struct Servers {
    /// One entry per server.
    pub list: Vec<Server>,
    /// Devices in all.
    pub total: i32,
}

impl Servers {
    /// The servers behind `clients`, numbering their devices one after the other.
    pub fn new(clients: Vec<Arc<Client>>) -> Servers {
        let mut first = 0;
        let list = clients
            .into_iter()
            .map(|client| {
                let count = client.welcome().devices.len() as i32;
                let s = Server {
                    client,
                    first,
                    count,
                };
                first += count;
                s
            })
            .collect();
        Servers { list, total: first }
    }

    /// Whether the process uses more than one server.
    pub fn is_multi(&self) -> bool {
        self.list.len() > 1
    }

    /// (server, its ordinal) of the program's device `dev`.
    fn locate(&self, dev: i32) -> Option<(usize, i32)> {
        self.list
            .iter()
            .position(|s| dev >= s.first && dev < s.first + s.count)
            .map(|k| (k, dev - self.list[k].first))
    }

    /// The server whose handle `h` is (the top byte is its number), if any.
    fn of_handle(&self, h: u64) -> Option<usize> {
        let ns = (h >> 56) as usize;
        (ns >= 1 && ns <= self.list.len()).then(|| ns - 1)
    }
}

/// A device allocation of one server.
#[derive(Clone, Copy)]
struct Owner {
    end: u64,
    server: usize,
    /// The context current when it was made (calls routed by the address run there).
    ctx: u64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// What this module remembers about the process's sessions; a forked child (which gets
/// sessions of its own) starts afresh.
#[derive(Default)]
struct Book {
    pid: u32,
    /// Device allocations by base address.
    owners: BTreeMap<u64, Owner>,
    /// Handles the program holds for something loaded on every server: its handle (the first
    /// server's) → each server's handle.
    replicas: HashMap<u64, Vec<u64>>,
}

static BOOK: Mutex<Option<Book>> = Mutex::new(None);

/// The book of this process.
fn book<R>(f: impl FnOnce(&mut Book) -> R) -> R {
    let mut g = lock(&BOOK);
    let pid = crate::rt::pid();
    let b = g.get_or_insert_with(Book::default);
    if b.pid != pid {
        *b = Book {
            pid,
            ..Book::default()
        };
    }
    f(b)
}

thread_local! {
    /// (pid, the context this thread last used on each server): calls that go to a server
    /// other than the one of the current context run there.
    static LAST_CTX: RefCell<(u32, Vec<u64>)> = const { RefCell::new((0, Vec::new())) };
}

fn with_last_ctx<R>(f: impl FnOnce(&mut Vec<u64>) -> R) -> R {
    LAST_CTX.with(|l| {
        let mut l = l.borrow_mut();
        let pid = crate::rt::pid();
        if l.0 != pid {
            *l = (pid, Vec::new());
        }
        f(&mut l.1)
    })
}

fn last_ctx(server: usize) -> u64 {
    with_last_ctx(|l| l.get(server).copied().unwrap_or(0))
}

fn set_last_ctx(server: usize, ctx: u64) {
    with_last_ctx(|l| {
        if l.len() <= server {
            l.resize(server + 1, 0);
        }
        l[server] = ctx;
    })
}

/// (server, context) of the allocation holding device address `p`, if this process made it.
fn owner(p: u64) -> Option<(usize, u64)> {
    book(|b| {
        let (_, o) = b.owners.range(..=p).next_back()?;
        (p < o.end).then_some((o.server, o.ctx))
    })
}

/// Registers a group of handles, one per server; the program gets the first.
pub fn add_replicas(handles: Vec<u64>) -> u64 {
    let h = handles[0];
    book(|b| b.replicas.insert(h, handles));
    h
}

fn replicas(h: u64) -> Option<Vec<u64>> {
    book(|b| b.replicas.get(&h).cloned())
}

/// Whether `h` stands for a handle on every server.
fn is_replicated(h: u64) -> bool {
    book(|b| b.replicas.contains_key(&h))
}

/// Server `server`'s copy of replicated handle `h`.
fn replica_on(h: u64, server: usize) -> Option<u64> {
    book(|b| b.replicas.get(&h).map(|r| r[server]))
}

fn drop_replicas(h: u64) {
    book(|b| b.replicas.remove(&h));
}

/// Where a call goes.
pub enum Route {
    /// To server `server`, with `ctx` as the calling thread's current context there.
    To {
        /// Index in [`Servers::list`].
        server: usize,
        /// The context the server runs the call in (0: none there).
        ctx: u64,
    },
    /// Answered here.
    Answer(Reply),
    /// A device-to-device copy between two servers.
    Cross,
    /// A stream on one server waits for an event on another.
    CrossWait {
        /// The event's server.
        server: usize,
    },
}

/// Chooses the server of `req` (made in current context `ctx`) and rewrites it for that server:
/// device ordinals become the server's, replicated handles become the server's copy.
pub fn route(s: &Servers, req: &mut Request, ctx: u64) -> CuResult<Route> {
    match req {
        Request::DeviceGetCount(_) => {
            return Ok(Route::Answer(Reply::DeviceGetCount(DeviceGetCountRep {
                count: s.total,
            })))
        }
        Request::DeviceGet(r) => {
            if r.ordinal < 0 || r.ordinal >= s.total {
                return Err(CuError::INVALID_DEVICE);
            }
            return Ok(Route::Answer(Reply::DeviceGet(DeviceGetRep {
                device: r.ordinal,
            })));
        }
        Request::DeviceGetByPciBusId(r) => {
            // The domain the program saw names the server (see `shown_domain`).
            let (domain, rest) = r
                .pci_bus_id
                .split_once(':')
                .and_then(|(d, rest)| Some((u32::from_str_radix(d, 16).ok()?, rest)))
                .ok_or(CuError::INVALID_VALUE)?;
            let k = (domain >> 8) as usize;
            if k == 0 || k > s.list.len() {
                return Err(CuError::INVALID_DEVICE);
            }
            r.pci_bus_id = format!("{:04x}:{rest}", domain & 0xff);
            return Ok(Route::To {
                server: k - 1,
                ctx: last_ctx(k - 1),
            });
        }
        _ => {}
    }
    let ctx_server = s.of_handle(ctx);
    if let Some(k) = ctx_server {
        set_last_ctx(k, ctx);
    }
    // Peer access between contexts of different servers does not exist (cuDeviceCanAccessPeer
    // says 0 for them); copies between them are staged instead.
    match req {
        Request::CtxEnablePeerAccess(r) if s.of_handle(r.peer_ctx) != ctx_server => {
            return Err(CuError::PEER_ACCESS_UNSUPPORTED)
        }
        Request::CtxDisablePeerAccess(r) if s.of_handle(r.peer_ctx) != ctx_server => {
            return Err(CuError::PEER_ACCESS_NOT_ENABLED)
        }
        _ => {}
    }
    let mut target: Option<(usize, Option<u64>)> = None;
    let (mut dev_servers, mut ptr_servers, mut handle_servers) = (vec![], vec![], vec![]);
    let mut replicated = false;
    for key in req.route_keys() {
        match key {
            rgpu_protocol::messages::RouteKey::Device(d) => {
                let (k, local) = s.locate(*d).ok_or(CuError::INVALID_DEVICE)?;
                *d = local;
                dev_servers.push(k);
                target.get_or_insert((k, None));
            }
            rgpu_protocol::messages::RouteKey::Handle(h) => {
                if is_replicated(*h) {
                    replicated = true;
                } else if let Some(k) = s.of_handle(*h) {
                    handle_servers.push(k);
                    target.get_or_insert((k, None));
                } else if *h >> 56 != 0 {
                    // A handle of no server of this process.
                    return Err(CuError::INVALID_HANDLE);
                }
            }
            rgpu_protocol::messages::RouteKey::Ptr(p) => {
                if let Some((k, c)) = owner(p) {
                    ptr_servers.push(k);
                    target.get_or_insert((k, Some(c)));
                }
            }
        }
    }
    let differ = |v: &[usize]| v.windows(2).any(|w| w[0] != w[1]);
    if differ(&dev_servers) {
        return match req {
            Request::DeviceCanAccessPeer(_) => Ok(Route::Answer(Reply::DeviceCanAccessPeer(
                DeviceCanAccessPeerRep { can_access: 0 },
            ))),
            Request::DeviceGetP2pAttribute(_) => Ok(Route::Answer(Reply::DeviceGetP2pAttribute(
                DeviceGetP2pAttributeRep { value: 0 },
            ))),
            _ => Err(CuError::INVALID_DEVICE),
        };
    }
    if differ(&ptr_servers) {
        return match req {
            Request::MemcpyDtoD(_) | Request::MemcpyDtoDAsync(_) => Ok(Route::Cross),
            Request::Memcpy2D(r) if r.mode == 2 => Ok(Route::Cross),
            _ => {
                tracing::warn!(
                    "rgpu: {} names device memory on two servers; only copies may",
                    req.name()
                );
                Err(CuError::INVALID_VALUE)
            }
        };
    }
    if differ(&handle_servers) {
        return match req {
            Request::StreamWaitEvent(_) => Ok(Route::CrossWait {
                server: handle_servers[1],
            }),
            _ => {
                tracing::warn!(
                    "rgpu: {} mixes handles of two servers (devices on different machines)",
                    req.name()
                );
                Err(CuError::INVALID_HANDLE)
            }
        };
    }
    let (server, ctx_there) = match target {
        Some((k, c)) => (k, c),
        None => (ctx_server.unwrap_or(0), None),
    };
    if replicated {
        for key in req.route_keys() {
            if let rgpu_protocol::messages::RouteKey::Handle(h) = key {
                if let Some(copy) = replica_on(*h, server) {
                    *h = copy;
                }
            }
        }
    }
    // The current context when it is on that server (as with one server); else the context
    // the address was allocated in, else the one this thread last used there.
    let ctx = if ctx_server == Some(server) {
        ctx
    } else {
        ctx_there.unwrap_or_else(|| last_ctx(server))
    };
    Ok(Route::To { server, ctx })
}

/// Book-keeping after a call `req` that server `server` answered with `rep`: device ordinals
/// become the program's, new allocations are remembered (and checked against the other
/// servers'), freed ones forgotten, unloaded replicated libraries dropped.
pub fn after(s: &Servers, server: usize, ctx: u64, req: &Request, rep: &mut Reply) -> CuResult<()> {
    for d in rep.devices_mut() {
        *d += s.list[server].first;
    }
    // Devices of different servers must not share a PCI bus id (programs tell devices apart by
    // it, and two machines often have a GPU at the same address).
    match (req, &mut *rep) {
        (Request::DeviceGetPciBusId(_), Reply::DeviceGetPciBusId(r)) => {
            show_bus_id(server, &mut r.pci_bus_id)
        }
        (Request::DeviceSummary(_), Reply::DeviceSummary(r)) => {
            if let Some(d) = r.attributes.get_mut(ATTR_PCI_DOMAIN_ID) {
                *d = shown_domain(server, *d as u32) as i32;
            }
        }
        (Request::DeviceGetAttribute(q), Reply::DeviceGetAttribute(r))
            if q.attrib == ATTR_PCI_DOMAIN_ID as i32 =>
        {
            r.value = shown_domain(server, r.value as u32) as i32;
        }
        _ => {}
    }
    let made = match (req, &*rep) {
        (Request::MemAlloc(q), Reply::MemAlloc(r)) => Some((r.dptr, q.bytesize)),
        (Request::MemAllocAsync(q), Reply::MemAllocAsync(r)) => Some((r.dptr, q.bytesize)),
        (Request::MemAllocPitch(q), Reply::MemAllocPitch(r)) => {
            Some((r.dptr, r.pitch.saturating_mul(q.height)))
        }
        (Request::ModuleGetGlobal(_), Reply::ModuleGetGlobal(r)) => Some((r.dptr, r.bytes)),
        (Request::MemFree(MemFreeReq { dptr }), _)
        | (Request::MemFreeAsync(MemFreeAsyncReq { dptr, .. }), _) => {
            book(|b| b.owners.remove(dptr));
            None
        }
        (Request::CtxDestroy(q), _) => {
            // Its memory went with it.
            book(|b| {
                b.owners
                    .retain(|_, o| !(o.server == server && o.ctx == q.ctx))
            });
            None
        }
        _ => None,
    };
    if let Some((base, size)) = made {
        record(s, server, ctx, base, size.max(1), req)?;
    }
    Ok(())
}

/// `CU_DEVICE_ATTRIBUTE_PCI_DOMAIN_ID`.
const ATTR_PCI_DOMAIN_ID: usize = 50;

/// The PCI domain a device of server `k` shows the program: the server's number (from 1) above
/// the low byte of the device's own domain.
fn shown_domain(k: usize, domain: u32) -> u32 {
    ((k as u32 + 1) << 8) | (domain & 0xff)
}

/// Rewrites the domain of a `dddd:bb:dd.f` bus id (as the server wrote it) for server `k`.
fn show_bus_id(k: usize, id: &mut Vec<u8>) {
    let text = String::from_utf8_lossy(id).into_owned();
    let Some((dom, rest)) = text.split_once(':') else {
        return;
    };
    let Ok(d) = u32::from_str_radix(dom, 16) else {
        return;
    };
    let shown = format!("{:04x}:{rest}", shown_domain(k, d));
    if shown.len() == text.len() {
        *id = shown.into_bytes();
    }
}

/// The remembered allocation that `[base, end)` of `server` overlaps, other than itself. The
/// remembered ranges never overlap one another, so only the last one starting before `end` can.
fn clash(
    owners: &BTreeMap<u64, Owner>,
    base: u64,
    end: u64,
    server: usize,
) -> Option<(u64, Owner)> {
    owners
        .range(..end)
        .next_back()
        .filter(|(&b, o)| o.end > base && !(b == base && o.server == server))
        .map(|(&b, o)| (b, *o))
}

/// Remembers allocation `[base, base+size)` of `server`. Two servers' allocations must never
/// overlap (the program could not tell them apart): GPUs choose their own addresses, so an
/// overlap with a live allocation of another server fails the allocation.
fn record(
    s: &Servers,
    server: usize,
    ctx: u64,
    base: u64,
    size: u64,
    req: &Request,
) -> CuResult<()> {
    let end = base.saturating_add(size);
    loop {
        let clash = book(|bk| clash(&bk.owners, base, end, server));
        let Some((b, o)) = clash else { break };
        if o.server == server {
            // The server reused the range: the old allocation is gone.
            book(|bk| bk.owners.remove(&b));
            continue;
        }
        // Still allocated on the other server? (Its context may have been destroyed since.)
        let alive = matches!(
            call_on(s, o.server, o.ctx, &Request::MemGetAddressRange(MemGetAddressRangeReq { dptr: b })),
            Ok(Reply::MemGetAddressRange(r)) if r.base == b
        );
        if !alive {
            book(|bk| bk.owners.remove(&b));
            continue;
        }
        if matches!(
            req,
            Request::MemAlloc(_) | Request::MemAllocPitch(_) | Request::MemAllocAsync(_)
        ) {
            let _ = call_on(s, server, ctx, &Request::MemFree(MemFreeReq { dptr: base }));
        }
        tracing::error!(
            "rgpu: device address {base:#x} of server {} overlaps an allocation of server {}; \
             this process cannot use both (report it: GPUs on different servers chose the same addresses)",
            server + 1,
            o.server + 1
        );
        return Err(CuError::OUT_OF_MEMORY);
    }
    book(|b| b.owners.insert(base, Owner { end, server, ctx }));
    Ok(())
}

/// Sends `req` to server `server` in context `ctx` and waits, with the book-keeping of
/// [`after`].
pub fn call_on(s: &Servers, server: usize, ctx: u64, req: &Request) -> CuResult<Reply> {
    let mut rep = rt::call_client(&s.list[server].client, ctx, req)?;
    after(s, server, ctx, req, &mut rep)?;
    if let Request::ModuleUnload(q) = req {
        drop_replicas(q.module);
    }
    Ok(rep)
}

/// Loads a context-independent library on every server; the program gets one handle that
/// stands for all the copies (`load` loads it on one server).
pub fn load_everywhere(
    s: &Servers,
    load: impl Fn(usize) -> Result<u64, (CuError, String)>,
) -> Result<u64, (CuError, String)> {
    let mut handles = Vec::with_capacity(s.list.len());
    for k in 0..s.list.len() {
        match load(k) {
            Ok(h) => handles.push(h),
            Err(e) => {
                for (k, &h) in handles.iter().enumerate() {
                    let _ = call_on(
                        s,
                        k,
                        0,
                        &Request::ModuleUnload(ModuleUnloadReq { module: h }),
                    );
                }
                return Err(e);
            }
        }
    }
    Ok(add_replicas(handles))
}

/// Calls done on every server: initialisation, and those that take a replicated handle and make
/// one per server (a library's kernels) or end them all (unloading it).
pub fn on_every_copy(s: &Servers, req: &Request) -> Option<CuResult<Reply>> {
    match req {
        Request::Init(_) => {
            let mut first = None;
            for k in 0..s.list.len() {
                match call_on(s, k, 0, req) {
                    Ok(r) => {
                        first.get_or_insert(r);
                    }
                    Err(e) => return Some(Err(e)),
                }
            }
            first.map(Ok)
        }
        Request::ModuleGetFunction(q) => {
            let mods = replicas(q.module)?;
            let mut funcs = Vec::with_capacity(mods.len());
            for (k, m) in mods.iter().enumerate() {
                let mut r = q.clone();
                r.module = *m;
                match call_on(s, k, last_ctx(k), &Request::ModuleGetFunction(r)) {
                    Ok(Reply::ModuleGetFunction(f)) => funcs.push(f.func),
                    Ok(_) => return Some(Err(rt::mismatch("cuModuleGetFunction"))),
                    Err(e) => return Some(Err(e)),
                }
            }
            Some(Ok(Reply::ModuleGetFunction(ModuleGetFunctionRep {
                func: add_replicas(funcs),
            })))
        }
        Request::ModuleUnload(q) => {
            let mods = replicas(q.module)?;
            let mut result = Ok(Reply::ModuleUnload(ModuleUnloadRep {}));
            for (k, m) in mods.iter().enumerate() {
                let r = call_on(
                    s,
                    k,
                    0,
                    &Request::ModuleUnload(ModuleUnloadReq { module: *m }),
                );
                if let (Err(e), Ok(_)) = (&r, &result) {
                    result = Err(*e);
                }
            }
            drop_replicas(q.module);
            Some(result)
        }
        _ => None,
    }
}

/// A device-to-device copy between two servers, staged through this process: the source is
/// read in rounds of up to 64 MiB, each written to the destination while the next is read. An asynchronous copy first
/// waits for its stream; the copy itself is synchronous (allowed: it only orders more strictly).
pub fn cross_copy(s: &Servers, req: &Request) -> CuResult<Reply> {
    if let Request::Memcpy2D(r) = req {
        return cross_copy_2d(s, r);
    }
    let (dst, src, n, stream) = match req {
        Request::MemcpyDtoD(r) => (r.dst, r.src, r.byte_count, None),
        Request::MemcpyDtoDAsync(r) => (r.dst, r.src, r.byte_count, Some(r.stream)),
        _ => return Err(CuError::INVALID_VALUE),
    };
    let ((ks, cs), (kd, cd)) = (
        owner(src).ok_or(CuError::INVALID_VALUE)?,
        owner(dst).ok_or(CuError::INVALID_VALUE)?,
    );
    if let Some(st) = stream {
        wait_stream(s, st)?;
    }
    let n = usize::try_from(n).map_err(|_| CuError::INVALID_VALUE)?;
    let mut off = 0usize;
    while off < n {
        let round = STAGE.min(n - off);
        let reqs: Vec<Request> = (0..round)
            .step_by(STAGE_CHUNK)
            .map(|o| {
                Request::MemcpyDtoH(MemcpyDtoHReq {
                    src: src + (off + o) as u64,
                    byte_count: STAGE_CHUNK.min(round - o) as u64,
                })
            })
            .collect();
        // Reading round k+1 overlaps writing round k: every chunk but the very last is written
        // without waiting, and the last waits, so a failure of any is reported here.
        let reps = rt::call_client_batch(&s.list[ks].client, cs, &reqs)?;
        let count = reps.len();
        for (i, rep) in reps.into_iter().enumerate() {
            let Reply::MemcpyDtoH(r) = rep else {
                return Err(rt::mismatch("cuMemcpyPeer"));
            };
            let at = dst + (off + i * STAGE_CHUNK) as u64;
            let len = r.dst.len() as u64;
            if off + round == n && i + 1 == count {
                call_on(
                    s,
                    kd,
                    cd,
                    &Request::MemcpyHtoD(MemcpyHtoDReq {
                        dst: at,
                        src: r.dst,
                        byte_count: len,
                    }),
                )?;
            } else {
                rt::send_client(
                    &s.list[kd].client,
                    cd,
                    &Request::MemcpyHtoDAsync(MemcpyHtoDAsyncReq {
                        dst: at,
                        src: r.dst,
                        byte_count: len,
                        stream: 0,
                    }),
                )?;
            }
        }
        off += round;
    }
    Ok(match req {
        Request::MemcpyDtoDAsync(_) => Reply::MemcpyDtoDAsync(MemcpyDtoDAsyncRep {}),
        _ => Reply::MemcpyDtoD(MemcpyDtoDRep {}),
    })
}

/// Waits for the work queued on stream `stream` of its server (a server's own stream; the
/// default streams, which name no server, are left alone).
fn wait_stream(s: &Servers, stream: u64) -> CuResult<()> {
    if stream >> 56 == 0 {
        return Ok(());
    }
    let k = s.of_handle(stream).ok_or(CuError::INVALID_HANDLE)?;
    call_on(
        s,
        k,
        last_ctx(k),
        &Request::StreamSynchronize(StreamSynchronizeReq { stream }),
    )?;
    Ok(())
}

/// A 2D device-to-device copy between two servers: the rows are read from the source (packed)
/// and written to the destination at its pitch; an asynchronous one first waits for its stream.
fn cross_copy_2d(s: &Servers, r: &Memcpy2DReq) -> CuResult<Reply> {
    let ((ks, cs), (kd, cd)) = (
        owner(r.src).ok_or(CuError::INVALID_VALUE)?,
        owner(r.dst).ok_or(CuError::INVALID_VALUE)?,
    );
    if r.is_async {
        wait_stream(s, r.stream)?;
    }
    let rows = call_on(
        s,
        ks,
        cs,
        &Request::Memcpy2D(Memcpy2DReq {
            mode: 1,
            dst: 0,
            dst_pitch: 0,
            stream: 0,
            is_async: false,
            data: Vec::new(),
            ..r.clone()
        }),
    )?;
    let Reply::Memcpy2D(rows) = rows else {
        return Err(rt::mismatch("cuMemcpy2D"));
    };
    call_on(
        s,
        kd,
        cd,
        &Request::Memcpy2D(Memcpy2DReq {
            mode: 0,
            src: 0,
            src_pitch: 0,
            stream: 0,
            is_async: false,
            data: rows.data,
            ..r.clone()
        }),
    )?;
    Ok(Reply::Memcpy2D(Memcpy2DRep::default()))
}

/// A stream on one server waits for an event on another: this thread waits for the event
/// (stronger than CUDA requires, never weaker).
pub fn cross_wait(s: &Servers, server: usize, req: &Request) -> CuResult<Reply> {
    let Request::StreamWaitEvent(r) = req else {
        return Err(CuError::INVALID_VALUE);
    };
    call_on(
        s,
        server,
        last_ctx(server),
        &Request::EventSynchronize(EventSynchronizeReq { event: r.event }),
    )?;
    Ok(Reply::StreamWaitEvent(StreamWaitEventRep {}))
}

/// Sends `req` in current context `ctx` to the server it belongs to, and waits.
pub fn call(s: &Servers, ctx: u64, mut req: Request) -> CuResult<Reply> {
    if let Some(r) = on_every_copy(s, &req) {
        return r;
    }
    match route(s, &mut req, ctx)? {
        Route::Answer(r) => Ok(r),
        Route::Cross => cross_copy(s, &req),
        Route::CrossWait { server } => cross_wait(s, server, &req),
        Route::To { server, ctx } => call_on(s, server, ctx, &req),
    }
}

/// Like [`call`] without waiting (pipelined), where the route allows.
pub fn send(s: &Servers, ctx: u64, mut req: Request) -> CuResult<()> {
    match route(s, &mut req, ctx)? {
        Route::Answer(_) => Ok(()),
        Route::Cross => cross_copy(s, &req).map(drop),
        Route::CrossWait { server } => cross_wait(s, server, &req).map(drop),
        Route::To { server, ctx } => rt::send_client(&s.list[server].client, ctx, &req),
    }
}

/// Like [`call`] for independent requests that all go where the first goes.
pub fn call_batch(s: &Servers, ctx: u64, reqs: &[Request]) -> CuResult<Vec<Reply>> {
    let Some(first) = reqs.first() else {
        return Ok(Vec::new());
    };
    let mut probe = first.clone();
    let Route::To { server, ctx } = route(s, &mut probe, ctx)? else {
        return reqs.iter().map(|r| call(s, ctx, r.clone())).collect();
    };
    let mut reps = rt::call_client_batch(&s.list[server].client, ctx, reqs)?;
    for (q, r) in reqs.iter().zip(reps.iter_mut()) {
        after(s, server, ctx, q, r)?;
    }
    Ok(reps)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlaps_between_allocations_are_found() {
        let mut m = BTreeMap::new();
        let o = |end, server| Owner {
            end,
            server,
            ctx: 0,
        };
        m.insert(0x1000, o(0x2000, 0));
        m.insert(0x3000, o(0x4000, 1));
        // Touching ranges do not overlap.
        assert!(clash(&m, 0x2000, 0x3000, 1).is_none());
        assert!(clash(&m, 0x4000, 0x5000, 0).is_none());
        // The same allocation recorded again is not a clash.
        assert!(clash(&m, 0x1000, 0x2000, 0).is_none());
        // The same range from another server is.
        assert_eq!(clash(&m, 0x1000, 0x2000, 1).map(|c| c.0), Some(0x1000));
        // Any overlap, from either side.
        assert_eq!(clash(&m, 0x0800, 0x1001, 1).map(|c| c.0), Some(0x1000));
        assert_eq!(
            clash(&m, 0x3fff, 0x9000, 0).map(|c| (c.0, c.1.server)),
            Some((0x3000, 1))
        );
        assert_eq!(clash(&m, 0x1800, 0x3800, 2).map(|c| c.0), Some(0x3000));
    }

    #[test]
    fn bus_ids_name_their_server() {
        let mut id = b"0000:c0:00.0".to_vec();
        show_bus_id(2, &mut id);
        assert_eq!(id, b"0300:c0:00.0");
        let mut short = b"00".to_vec();
        show_bus_id(0, &mut short);
        assert_eq!(short, b"00");
        assert_eq!(shown_domain(0, 0x12), 0x112);
    }
}
