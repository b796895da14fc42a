//! The shim's runtime: the guard around every export, lazy per-process connection, the
//! per-thread context stack, tracing, and helpers the generated code uses.

use crate::multi::{self, Servers};
use rgpu_protocol::client::{Client, ClientConfig, ClientError, OutputSink};
use rgpu_protocol::connfile::{ConnectionFile, ServerSet};
use rgpu_protocol::error::{CuError, CuResult};
use rgpu_protocol::messages::{Reply, Request};
use rgpu_protocol::wire::{flags, CallHeader};
use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::ffi::{c_char, c_void, CStr};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

static INITIALIZED: AtomicBool = AtomicBool::new(false);
/// This process's id, kept by [`pid`] (0: not known yet).
static PID: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

extern "C" fn forked_child() {
    // SAFETY: getpid has no preconditions and is async-signal-safe.
    PID.store(unsafe { libc::getpid() } as u32, Ordering::Relaxed);
}

/// This process's id without a system call per use (the per-process caches check it on every
/// call): read once, and renewed in a forked child by a `pthread_atfork` handler.
pub fn pid() -> u32 {
    let p = PID.load(Ordering::Relaxed);
    if p != 0 {
        return p;
    }
    static ATFORK: std::sync::Once = std::sync::Once::new();
    ATFORK.call_once(|| {
        // SAFETY: registers a plain extern "C" fn that only stores an atomic.
        unsafe { libc::pthread_atfork(None, None, Some(forked_child)) };
    });
    let p = std::process::id();
    PID.store(p, Ordering::Relaxed);
    p
}
static SHUTTING_DOWN: AtomicBool = AtomicBool::new(false);
static NEXT_THREAD: AtomicU64 = AtomicU64::new(1);

thread_local! {
    static THREAD_ID: Cell<u64> = const { Cell::new(0) };
    static PTDS: Cell<bool> = const { Cell::new(false) };
    /// (pid that built the stack, stack of context handles; last = current)
    static CTX_STACK: RefCell<(u32, Vec<u64>)> = const { RefCell::new((0, Vec::new())) };
}

struct Connection {
    pid: u32,
    result: Result<Arc<Servers>, String>,
}

static CONN: Mutex<Option<Connection>> = Mutex::new(None);

fn logging() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let filter = std::env::var("RGPU_LOG").unwrap_or_else(|_| "warn".into());
        let trace = std::env::var("RGPU_TRACE").is_ok_and(|v| !v.is_empty() && v != "0");
        let filter = if trace {
            format!("{filter},rgpu_trace=info")
        } else {
            filter
        };
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(std::io::stderr)
            .with_target(false)
            .try_init();
    });
}

fn tracing_calls() -> bool {
    static T: OnceLock<bool> = OnceLock::new();
    *T.get_or_init(|| std::env::var("RGPU_TRACE").is_ok_and(|v| !v.is_empty() && v != "0"))
}

/// Wraps every exported function: initialisation check, panic barrier, tracing.
pub fn export(
    name: &'static str,
    needs_init: bool,
    ptds: bool,
    f: impl FnOnce() -> CuResult<()>,
) -> u32 {
    if SHUTTING_DOWN.load(Ordering::Relaxed)
        && name != "cuGetErrorString"
        && name != "cuGetErrorName"
    {
        return CuError::DEINITIALIZED.raw();
    }
    if needs_init && !INITIALIZED.load(Ordering::Acquire) {
        return CuError::NOT_INITIALIZED.raw();
    }
    let prev = PTDS.with(|p| p.replace(ptds));
    let r = std::panic::catch_unwind(AssertUnwindSafe(f));
    PTDS.with(|p| p.set(prev));
    let code = match r {
        Ok(r) => CuError::to_raw(r),
        Err(_) => {
            logging();
            tracing::error!("rgpu: internal error (panic) in {name}; returning CUDA_ERROR_UNKNOWN");
            CuError::UNKNOWN.raw()
        }
    };
    if tracing_calls() {
        logging();
        tracing::info!(target: "rgpu_trace", "{name} -> {}", CuError::name_of(code).unwrap_or("?"));
    }
    code
}

/// Formats a C string argument for traces (NULL-safe).
pub struct CStrDbg(pub *const c_char);

impl std::fmt::Debug for CStrDbg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.is_null() {
            return f.write_str("NULL");
        }
        // SAFETY: only used in trace mode on arguments the CUDA API defines as C strings.
        let s = unsafe { CStr::from_ptr(self.0) };
        write!(f, "{:?}", s.to_string_lossy())
    }
}

/// In trace mode, logs a hand-written export's arguments (forwarded calls log their request).
#[inline]
pub fn trace_args(name: &str, args: impl FnOnce() -> String) {
    if tracing_calls() {
        logging();
        tracing::info!(target: "rgpu_trace", "{name}({})", args());
    }
}

/// The body of every function that is not forwarded yet.
pub fn not_supported(name: &'static str) -> u32 {
    static SEEN: Mutex<Option<HashSet<&'static str>>> = Mutex::new(None);
    let r = std::panic::catch_unwind(|| {
        let mut g = SEEN.lock().unwrap_or_else(|e| e.into_inner());
        if g.get_or_insert_with(HashSet::new).insert(name) {
            logging();
            tracing::warn!(
                "rgpu: {name} is not supported yet (returning CUDA_ERROR_NOT_SUPPORTED)"
            );
        }
    });
    let _ = r;
    CuError::NOT_SUPPORTED.raw()
}

/// Marks the process as initialised (after a successful `cuInit`).
pub fn set_initialized() {
    INITIALIZED.store(true, Ordering::Release);
}

/// Whether a reply had the wrong type (a client/server mismatch that the handshake should prevent).
pub fn mismatch(name: &str) -> CuError {
    tracing::error!("rgpu: the server answered {name} with an unexpected reply");
    CuError::UNKNOWN
}

extern "C" fn at_exit() {
    SHUTTING_DOWN.store(true, Ordering::Relaxed);
    // Close our connection so the server frees this process's resources immediately. Never
    // block on a lock another thread may hold at exit.
    let _ = std::panic::catch_unwind(|| {
        let servers = match CONN.try_lock() {
            Ok(g) => g
                .as_ref()
                .filter(|c| c.pid == pid())
                .and_then(|c| c.result.clone().ok()),
            Err(_) => None,
        };
        for s in servers.iter().flat_map(|s| s.list.iter()) {
            s.client.shutdown(std::time::Duration::from_millis(250));
        }
    });
}

/// The servers this process uses: the connection file (or server set) named by
/// `RGPU_CONNECTION_FILE`, else the one server of `RGPU_SERVER`.
fn connection_files() -> Result<Vec<ConnectionFile>, String> {
    let conn = if let Ok(path) = std::env::var("RGPU_CONNECTION_FILE") {
        return ServerSet::read(std::path::Path::new(&path)).map_err(|e| e.to_string());
    } else if let Ok(addr) = std::env::var("RGPU_SERVER") {
        let insecure = std::env::var("RGPU_INSECURE").is_ok_and(|v| v == "1");
        let cf = ConnectionFile {
            address: addr,
            server_name: rgpu_protocol::transport::SERVER_NAME.into(),
            fingerprint: std::env::var("RGPU_FINGERPRINT").unwrap_or_default(),
            token: std::env::var("RGPU_TOKEN").unwrap_or_default(),
            insecure,
            local_socket: None,
            host: String::new(),
            visible_devices: None,
        };
        cf.validate().map_err(|e| {
            format!("RGPU_SERVER/RGPU_TOKEN/RGPU_FINGERPRINT: {e} (set RGPU_INSECURE=1 only for a server started with --insecure)")
        })?;
        cf
    } else {
        return Err("no rgpu server configured: run the program with `rgpu run -- PROGRAM`, or set RGPU_CONNECTION_FILE".into());
    };
    Ok(vec![conn])
}

/// The client settings for `conn`, from the environment.
fn client_config(conn: ConnectionFile) -> Result<ClientConfig, String> {
    let mut cfg = ClientConfig::new(conn);
    cfg.output = OutputSink(Arc::new(c_stdio_output));
    if let Some(t) = std::env::var("RGPU_TIMEOUT")
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
    {
        if t > 0.0 {
            cfg.connect_timeout = std::time::Duration::from_secs_f64(t);
            cfg.idle_timeout = std::time::Duration::from_secs_f64(t);
        }
    }
    if let Ok(w) = std::env::var("RGPU_RESUME_WINDOW") {
        let secs = w
            .parse::<f64>()
            .ok()
            .filter(|s| s.is_finite() && *s >= 0.0)
            .ok_or_else(|| format!("RGPU_RESUME_WINDOW={w} is not a number of seconds"))?;
        cfg.resume_window = std::time::Duration::from_secs_f64(secs.min(86400.0));
    }
    if let Ok(n) = std::env::var("RGPU_BULK_LANES") {
        cfg.bulk_lanes = n
            .parse::<usize>()
            .ok()
            .filter(|n| *n <= 16)
            .ok_or_else(|| format!("RGPU_BULK_LANES={n} is not a number from 0 to 16"))?;
    }
    if let Ok(t) = std::env::var("RGPU_TRANSPORT") {
        cfg.transport = t.parse().map_err(|e| format!("RGPU_TRANSPORT: {e}"))?;
    }
    match std::env::var("RGPU_COMPRESS").as_deref() {
        Ok("lz4") | Ok("1") => cfg.compress = true,
        Ok("") | Ok("0") | Ok("none") | Err(_) => {}
        Ok(other) => {
            return Err(format!(
                "RGPU_COMPRESS={other} is not understood (use lz4, or none)"
            ))
        }
    }
    Ok(cfg)
}

extern "C" {
    static mut stdout: *mut libc::FILE;
    static mut stderr: *mut libc::FILE;
}

/// Writes kernel output through the program's own C `stdout`/`stderr` streams, so it interleaves
/// with the program's printf output in order (device printf appears at synchronisation points).
fn c_stdio_output(stream: u8, data: &[u8]) {
    // SAFETY: glibc's stdout/stderr are valid FILE pointers for the life of the process; fwrite
    // locks the stream internally; `data` is a valid buffer of `data.len()` bytes.
    unsafe {
        let f = if stream == 2 { stderr } else { stdout };
        libc::fwrite(data.as_ptr() as *const libc::c_void, 1, data.len(), f);
        if stream == 2 {
            libc::fflush(f);
        }
    }
}

/// Whether the server of this process's connection is on this machine (loopback address); false
/// for a process with several servers.
pub fn server_is_local() -> bool {
    let Ok(files) = connection_files() else {
        return false;
    };
    let [conn] = files.as_slice() else {
        return false;
    };
    if let Ok(c) = client() {
        if c.is_local_socket() {
            return true;
        }
    }
    use std::net::ToSocketAddrs;
    conn.address
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .is_some_and(|a| a.ip().is_loopback())
}

/// The connection of this process (its first server's when it has several).
pub fn client() -> CuResult<Arc<Client>> {
    servers().map(|s| s.list[0].client.clone())
}

/// The oldest driver version among this process's servers (`None` without a connection).
pub fn server_driver_version() -> Option<i32> {
    let s = servers().ok()?;
    s.list
        .iter()
        .map(|s| s.client.welcome().driver_version)
        .min()
}

/// The servers of this process when it has more than one.
pub fn multi() -> CuResult<Option<Arc<Servers>>> {
    servers().map(|s| s.is_multi().then_some(s))
}

/// The connections of this process, made on first use. A forked child gets its own: the
/// parent's clients (whose I/O threads do not exist in the child) are leaked, never dropped.
fn servers() -> CuResult<Arc<Servers>> {
    let pid = pid();
    let mut g = CONN.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(c) = g.as_ref() {
        if c.pid == pid {
            return c.result.clone().map_err(|e| connect_error(&e));
        }
        // Forked child: forget the parent's connection without running its destructors (a
        // local socket is let go of, so it cannot be written to by mistake).
        if let Some(old) = g.take() {
            if let Ok(s) = &old.result {
                for s in &s.list {
                    s.client.abandon_after_fork();
                }
            }
            std::mem::forget(old);
        }
    }
    logging();
    static ATEXIT: OnceLock<()> = OnceLock::new();
    ATEXIT.get_or_init(|| {
        // SAFETY: registering a plain extern "C" fn with no captured state.
        unsafe { libc::atexit(at_exit) };
    });
    let result = connection_files().and_then(|files| {
        let n = files.len();
        let mut clients = Vec::with_capacity(n);
        for (i, conn) in files.into_iter().enumerate() {
            let mut cfg = client_config(conn)?;
            // Several servers: each puts this session's handles in its own number's space.
            cfg.namespace = if n > 1 { i as u8 + 1 } else { 0 };
            let addr = cfg.conn.address.clone();
            let c = Client::connect(cfg)
                .map_err(|e| format!("cannot use the rgpu server at {addr}: {e}"))?;
            clients.push(Arc::new(c));
        }
        Ok(Arc::new(Servers::new(clients)))
    });
    if let Err(e) = &result {
        eprintln!("rgpu: {e}");
    }
    let out = result.clone().map_err(|e| connect_error(&e));
    *g = Some(Connection { pid, result });
    out
}

/// The CUDA error a failed connection means to the program: devices held exclusively by other
/// sessions are unavailable; anything else leaves the program without a device.
fn connect_error(why: &str) -> CuError {
    if why.contains(rgpu_protocol::wire::REFUSED_BUSY) {
        CuError::DEVICE_UNAVAILABLE
    } else {
        CuError::NO_DEVICE
    }
}

fn thread_id() -> u64 {
    THREAD_ID.with(|t| {
        if t.get() == 0 {
            t.set(NEXT_THREAD.fetch_add(1, Ordering::Relaxed));
        }
        t.get()
    })
}

/// Runs `f` on this thread's context stack (reset if it was inherited across fork).
pub fn with_ctx_stack<R>(f: impl FnOnce(&mut Vec<u64>) -> R) -> R {
    let pid = pid();
    CTX_STACK.with(|s| {
        let mut s = s.borrow_mut();
        if s.0 != pid {
            *s = (pid, Vec::new());
        }
        f(&mut s.1)
    })
}

/// This thread's current context handle (0: none).
pub fn current_ctx() -> u64 {
    with_ctx_stack(|s| s.last().copied().unwrap_or(0))
}

/// Sends a request on behalf of the calling thread and waits for the reply.
pub fn call(req: Request) -> CuResult<Reply> {
    call_in(current_ctx(), req)
}

/// Sends a request without waiting for a reply (pipelined). The server reports a failure at this
/// thread's next call that waits.
pub fn call_async(req: Request) -> CuResult<()> {
    crate::custom::precheck(&req)?;
    let s = servers()?;
    if s.is_multi() {
        return multi::send(&s, current_ctx(), req);
    }
    send_client(&s.list[0].client, current_ctx(), &req)
}

/// Sends `req` on `client` in context `ctx` without waiting.
pub fn send_client(client: &Client, ctx: u64, req: &Request) -> CuResult<()> {
    let hdr = header(ctx);
    if tracing_calls() {
        tracing::info!(target: "rgpu_trace", "  {:?} ctx={:#x} (pipelined)", TraceReq(req), hdr.ctx);
    }
    client.send(hdr, req).map_err(cuda_error)
}

/// Sends independent requests of the calling thread at once and waits for all replies.
pub fn call_batch(reqs: &[Request]) -> CuResult<Vec<Reply>> {
    let s = servers()?;
    if s.is_multi() {
        return multi::call_batch(&s, current_ctx(), reqs);
    }
    call_client_batch(&s.list[0].client, current_ctx(), reqs)
}

/// [`call_batch`] on `client` in context `ctx`.
pub fn call_client_batch(client: &Client, ctx: u64, reqs: &[Request]) -> CuResult<Vec<Reply>> {
    let hdr = header(ctx);
    if tracing_calls() {
        tracing::info!(target: "rgpu_trace", "  {} calls at once, first {:?}", reqs.len(), reqs.first().map(TraceReq));
    }
    client.call_batch(hdr, reqs).map_err(cuda_error)
}

/// Like [`call`], with an explicit context.
pub fn call_in(ctx: u64, req: Request) -> CuResult<Reply> {
    let s = servers()?;
    if s.is_multi() {
        return multi::call(&s, ctx, req);
    }
    call_client(&s.list[0].client, ctx, &req)
}

/// Sends `req` on `client` in context `ctx` and waits for the reply.
pub fn call_client(client: &Client, ctx: u64, req: &Request) -> CuResult<Reply> {
    let hdr = header(ctx);
    if tracing_calls() {
        tracing::info!(target: "rgpu_trace", "  {:?} ctx={ctx:#x}", TraceReq(req));
    }
    match client.call(hdr, req) {
        Ok(r) => {
            if tracing_calls() {
                tracing::info!(target: "rgpu_trace", "  = {:?}", TraceReply(&r));
            }
            Ok(r)
        }
        Err(e) => Err(cuda_error(e)),
    }
}

/// The header of a call of this thread in context `ctx`.
fn header(ctx: u64) -> CallHeader {
    CallHeader {
        flags: if PTDS.with(|p| p.get()) {
            flags::PER_THREAD_STREAM
        } else {
            0
        },
        thread: thread_id(),
        ctx,
        ..Default::default()
    }
}

/// The CUDA error a failed call means to the program: the server's own error, or, when the
/// connection failed, `CUDA_ERROR_DEVICE_UNAVAILABLE` (the reason is printed once).
fn cuda_error(e: ClientError) -> CuError {
    match e {
        ClientError::Cuda(e) => e,
        e => {
            static ONCE: AtomicBool = AtomicBool::new(false);
            if !ONCE.swap(true, Ordering::Relaxed) {
                eprintln!("rgpu: {e}");
            }
            CuError::DEVICE_UNAVAILABLE
        }
    }
}

/// Debug output of requests with large byte payloads abbreviated.
struct TraceReq<'a>(&'a Request);
impl std::fmt::Debug for TraceReq<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = format!("{:?}", self.0);
        if s.len() > 300 {
            write!(f, "{}…", &s[..s.floor_char_boundary(300)])
        } else {
            f.write_str(&s)
        }
    }
}
struct TraceReply<'a>(&'a Reply);
impl std::fmt::Debug for TraceReply<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = format!("{:?}", self.0);
        if s.len() > 300 {
            write!(f, "{}…", &s[..s.floor_char_boundary(300)])
        } else {
            f.write_str(&s)
        }
    }
}

/// Borrows `len` bytes at `p` (empty when `len` is 0, whatever `p` is).
///
/// # Safety
/// `p` must be valid for reads of `len` bytes when `len > 0`.
pub unsafe fn bytes_in<'a>(p: *const c_void, len: usize) -> &'a [u8] {
    if len == 0 || p.is_null() {
        return &[];
    }
    // SAFETY: guaranteed by the caller.
    unsafe { std::slice::from_raw_parts(p as *const u8, len) }
}

/// Reads a NUL-terminated string.
///
/// # Safety
/// `p` must point to a NUL-terminated string.
pub unsafe fn cstr_in(p: *const c_char) -> CuResult<String> {
    // SAFETY: guaranteed by the caller.
    let s = unsafe { CStr::from_ptr(p) };
    s.to_str()
        .map(str::to_string)
        .map_err(|_| CuError::INVALID_VALUE)
}

/// Copies a reply's bytes to `len` bytes at `p`; the reply must have exactly `len` bytes.
///
/// # Safety
/// `p` must be valid for writes of `len` bytes when `len > 0`.
pub unsafe fn bytes_out(p: *mut c_void, len: usize, data: &[u8]) -> CuResult<()> {
    if data.len() != len {
        tracing::error!("rgpu: server returned {} bytes, expected {len}", data.len());
        return Err(CuError::UNKNOWN);
    }
    if len > 0 {
        // SAFETY: guaranteed by the caller; `data` is a distinct allocation.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), p as *mut u8, len) };
    }
    Ok(())
}

/// Writes a string reply into a C buffer of `len` bytes, truncating and NUL-terminating.
///
/// # Safety
/// `p` must be valid for writes of `len` bytes when `len > 0`.
pub unsafe fn str_out(p: *mut c_char, len: i64, data: &[u8]) {
    if len <= 0 || p.is_null() {
        return;
    }
    let n = data.len().min(len as usize - 1);
    // SAFETY: n + 1 <= len bytes are writable, guaranteed by the caller.
    unsafe {
        std::ptr::copy_nonoverlapping(data.as_ptr(), p as *mut u8, n);
        *p.add(n) = 0;
    }
}
