//! The blocking client. Over QUIC, a background thread runs a single-threaded tokio runtime that
//! owns the connection; callers on any thread hand it encoded frames and block on a condition
//! variable until their reply arrives. To a server on the same machine that offers a Unix socket,
//! callers write their frames to the socket themselves and a plain reader thread hands replies
//! back (no runtime, no TLS: the shortest path to the server). No tokio state is touched on the
//! calling threads, so the client is safe to use from C threads, at exit, and (after
//! re-creation) in a forked child.

use crate::connfile::ConnectionFile;
use crate::error::CuError;
use crate::messages::{Reply, Request, SPEC_HASH};
use crate::transport::{self, FrameError};
use crate::wire::{self, kind, CallHeader, HandshakeReply, Hello, ReplyHeader, Welcome};
use std::collections::{HashMap, VecDeque};
use std::io::{Read, Write};
use std::net::ToSocketAddrs;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Where kernel output (device printf, fault messages) goes: (1 = stdout / 2 = stderr, bytes).
#[derive(Clone)]
pub struct OutputSink(pub Arc<OutputFn>);

/// The function behind an [`OutputSink`].
pub type OutputFn = dyn Fn(u8, &[u8]) + Send + Sync;

impl std::fmt::Debug for OutputSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OutputSink")
    }
}

impl Default for OutputSink {
    fn default() -> Self {
        OutputSink(Arc::new(|stream, data| {
            use std::io::Write;
            if stream == 2 {
                let _ = std::io::stderr().write_all(data);
            } else {
                let mut o = std::io::stdout().lock();
                let _ = o.write_all(data);
                let _ = o.flush();
            }
        }))
    }
}

/// Client settings.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Where kernel output goes.
    pub output: OutputSink,
    /// Where and whom to connect to.
    pub conn: ConnectionFile,
    /// How long to wait for the connection and handshake.
    pub connect_timeout: Duration,
    /// Silence after which the connection counts as dead (keep-alives are sent meanwhile).
    pub idle_timeout: Duration,
    /// Protocol version announced in the handshake (tests use this to provoke a mismatch).
    pub protocol_version: u32,
    /// Largest accepted frame.
    pub max_frame: u32,
    /// Compress large payloads both ways (LZ4), for slow links; off by default.
    pub compress: bool,
    /// Which path to the server to use.
    pub transport: TransportChoice,
    /// After losing a QUIC connection, how long to keep trying to take the session up again
    /// (bounded by what the server offers; zero: never).
    pub resume_window: Duration,
    /// Extra QUIC connections (each with its own I/O thread) that carry the chunks of large
    /// copies beside the main one, when one core's packet and crypto work is the limit.
    pub bulk_lanes: usize,
    /// This server's number among the client's servers (`Hello::namespace`; 0: the only one).
    pub namespace: u8,
}

/// Which path a client takes to its server (`RGPU_TRANSPORT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TransportChoice {
    /// The server's Unix socket when the connection file names one on this machine, else QUIC.
    #[default]
    Auto,
    /// QUIC only.
    Quic,
    /// The Unix socket only (an error when there is none).
    Local,
}

impl std::str::FromStr for TransportChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "" | "auto" => Ok(TransportChoice::Auto),
            "quic" => Ok(TransportChoice::Quic),
            "local" | "unix" => Ok(TransportChoice::Local),
            other => Err(format!(
                "transport `{other}` is not understood (use auto, quic or local)"
            )),
        }
    }
}

impl ClientConfig {
    /// Defaults for `conn`.
    pub fn new(conn: ConnectionFile) -> Self {
        ClientConfig {
            output: OutputSink::default(),
            conn,
            connect_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(10),
            protocol_version: wire::PROTOCOL_VERSION,
            max_frame: wire::DEFAULT_MAX_FRAME,
            compress: false,
            transport: TransportChoice::Auto,
            resume_window: Duration::from_secs(20),
            bulk_lanes: 0,
            namespace: 0,
        }
    }
}

/// Why a call or connection failed.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum ClientError {
    /// The server executed the call and it failed.
    #[error("{0}")]
    Cuda(CuError),
    /// The server refused the connection.
    #[error("server refused the connection: {0}")]
    Refused(String),
    /// Transport-level failure (connect, TLS, lost connection).
    #[error("{0}")]
    Transport(String),
}

type Outcome = Result<(ReplyHeader, Vec<u8>), String>;

struct Slot {
    done: Mutex<Option<Outcome>>,
    cv: Condvar,
}

#[derive(Default)]
struct Shared {
    pending: Mutex<HashMap<u64, Arc<Slot>>>,
    /// How many times the session was taken up again after a lost connection.
    resumes: std::sync::atomic::AtomicU32,
    dead: Mutex<Option<String>>,
    closed: Mutex<bool>,
    closed_cv: Condvar,
}

impl Shared {
    /// Fails the call `id` alone.
    fn fail_one(&self, id: u64, why: String) {
        let slot = self
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
        if let Some(slot) = slot {
            *slot.done.lock().unwrap_or_else(|e| e.into_inner()) = Some(Err(why));
            slot.cv.notify_all();
        }
    }

    fn fail_all(&self, why: String) {
        let mut d = self.dead.lock().unwrap_or_else(|e| e.into_inner());
        if d.is_none() {
            *d = Some(why.clone());
        }
        drop(d);
        let pending: Vec<_> = self
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain()
            .collect();
        for (_, slot) in pending {
            *slot.done.lock().unwrap_or_else(|e| e.into_inner()) = Some(Err(why.clone()));
            slot.cv.notify_all();
        }
    }
}

/// How frames reach the server.
enum Link {
    /// Through the I/O thread's channel (an empty frame asks it to close).
    Quic(tokio::sync::mpsc::UnboundedSender<Vec<u8>>),
    /// Written and read by the calling threads themselves.
    Unix(UnixLink),
}

/// A local-socket connection. Callers write whole frames under `writer`. There is no reader
/// thread: a thread waiting for a reply takes the `reading` token and reads frames itself,
/// handing other threads' replies to them, until its own reply is in; then it passes the token
/// on. The kernel wakes the waiting thread directly: one thread switch per reply, no more.
struct UnixLink {
    writer: Arc<Mutex<UnixStream>>,
    /// Pipelined frames not yet written (lock order: `writer`, then `outbox`). A flusher thread
    /// writes them in batches; a call that waits writes them first, then its own frame.
    outbox: Arc<Outbox>,
    reader: Mutex<UnixStream>,
    reading: std::sync::atomic::AtomicBool,
    /// When the server was last heard from, and whether we asked it whether it lives.
    heard: Mutex<(Instant, bool)>,
    idle: Duration,
    max: u32,
    output: OutputSink,
}

/// An extra QUIC connection of the session for the chunks of large copies.
struct Lane {
    tx: tokio::sync::mpsc::UnboundedSender<Vec<u8>>,
    /// Calls sent on it whose reply has not come yet (failed if the lane dies).
    ids: Arc<Mutex<std::collections::HashSet<u64>>>,
    dead: Arc<std::sync::atomic::AtomicBool>,
}

/// A connected client.
pub struct Client {
    link: Link,
    lanes: Vec<Lane>,
    shared: Arc<Shared>,
    next_id: AtomicU64,
    welcome: Welcome,
    compress: bool,
}

impl Client {
    /// Connects and performs the handshake: over the server's Unix socket when it is on this
    /// machine (see [`TransportChoice`]), else over QUIC. Starts one background thread.
    pub fn connect(cfg: ClientConfig) -> Result<Client, ClientError> {
        if cfg.transport != TransportChoice::Quic {
            match local_socket(&cfg) {
                Some(path) => match connect_unix(&cfg, &path) {
                    Ok(c) => return Ok(c),
                    // The server answered: its verdict stands.
                    Err(e @ ClientError::Refused(_)) => return Err(e),
                    Err(e) if cfg.transport == TransportChoice::Local => return Err(e),
                    Err(e) => {
                        tracing::debug!("local socket {path} unusable ({e}); using QUIC")
                    }
                },
                None if cfg.transport == TransportChoice::Local => {
                    return Err(ClientError::Transport(
                        "RGPU_TRANSPORT=local, but the connection file names no Unix socket on this machine".into(),
                    ))
                }
                None => {}
            }
        }
        Self::connect_quic(cfg)
    }

    fn connect_quic(cfg: ClientConfig) -> Result<Client, ClientError> {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Vec<u8>>();
        let shared = Arc::new(Shared::default());
        let sh = shared.clone();
        let timeout = cfg.connect_timeout;
        let compress = cfg.compress;
        let lanes_wanted = cfg.bulk_lanes.min(16);
        let lane_cfg = cfg.clone();
        let fail = ready_tx.clone();
        io_thread(
            "rgpu-io",
            move |e| {
                let _ = fail.send(Err(e));
            },
            move || run(cfg, rx, sh, ready_tx),
        )?;
        let welcome = ready_rx
            .recv_timeout(timeout + Duration::from_secs(1))
            .map_err(|_| {
                ClientError::Transport("timed out connecting to the rgpu server".into())
            })??;
        let (session, welcome_secret) = (welcome.session, welcome.resume_secret.clone());
        let mut client = Client {
            link: Link::Quic(tx),
            lanes: Vec::new(),
            shared,
            next_id: AtomicU64::new(1),
            welcome,
            compress,
        };
        if !welcome_secret.is_empty() {
            for n in 0..lanes_wanted {
                match open_lane(&lane_cfg, session, &welcome_secret, client.shared.clone()) {
                    Ok(l) => client.lanes.push(l),
                    Err(e) => {
                        tracing::warn!("bulk lane {n}: {e}; large copies use the main connection");
                        break;
                    }
                }
            }
        }
        Ok(client)
    }

    /// How many times the session was taken up again after losing its connection.
    pub fn resumes(&self) -> u32 {
        self.shared.resumes.load(Ordering::Relaxed)
    }

    /// Whether the connection is the server's local Unix socket.
    pub fn is_local_socket(&self) -> bool {
        matches!(self.link, Link::Unix(_))
    }

    /// What the server said when it accepted us.
    pub fn welcome(&self) -> &Welcome {
        &self.welcome
    }

    /// Whether the connection is gone, and why.
    pub fn dead_reason(&self) -> Option<String> {
        self.shared
            .dead
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Closes the connection so the server releases the session at once, waiting at most
    /// `wait` for the close to be sent. Later calls fail.
    pub fn shutdown(&self, wait: Duration) {
        for l in &self.lanes {
            let _ = l.tx.send(Vec::new());
        }
        match &self.link {
            Link::Quic(tx) => {
                if tx.send(Vec::new()).is_err() {
                    return;
                }
            }
            Link::Unix(u) => {
                let _ = u.write_through(&[]);
                u.outbox.closed.store(true, Ordering::Release);
                u.outbox.cv.notify_all();
                let _ = u
                    .writer
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .shutdown(std::net::Shutdown::Write);
                // Read what the server still sends (kernel output) until it closes its end.
                let deadline = Instant::now() + wait;
                if u.take_token() {
                    while Instant::now() < deadline {
                        if let Err(why) = u.read_one(&self.shared) {
                            self.shared.fail_all(why);
                            break;
                        }
                    }
                    u.reading.store(false, Ordering::Release);
                }
                return;
            }
        }
        let deadline = std::time::Instant::now() + wait;
        let mut g = self.shared.closed.lock().unwrap_or_else(|e| e.into_inner());
        while !*g {
            let now = std::time::Instant::now();
            if now >= deadline {
                return;
            }
            g = self
                .shared
                .closed_cv
                .wait_timeout(g, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Encodes a call frame, compressing a large body when compression is on.
    fn frame(&self, hdr: &mut CallHeader, req: &Request) -> Result<Vec<u8>, ClientError> {
        let mut body = req
            .encode_body(Vec::new())
            .map_err(|e| ClientError::Transport(format!("cannot encode {}: {e}", req.name())))?;
        if self.compress {
            if let Some(c) = wire::compress(&body) {
                body = c;
                hdr.flags |= wire::flags::COMPRESSED;
            }
        }
        let mut frame = hdr.frame(body.len());
        frame.extend_from_slice(&body);
        Ok(frame)
    }

    /// Sends a call without waiting (the server sends no reply; a failure is reported by this
    /// thread's next call that waits).
    pub fn send(&self, mut hdr: CallHeader, req: &Request) -> Result<(), ClientError> {
        if let Some(why) = self.dead_reason() {
            return Err(ClientError::Transport(why));
        }
        hdr.id = self.next_id.fetch_add(1, Ordering::Relaxed);
        hdr.opcode = req.opcode();
        hdr.flags |= wire::flags::NO_REPLY;
        let frame = self.frame(&mut hdr, req)?;
        self.transmit(frame, true)
    }

    /// Hands one whole frame to the connection (`queue`: a pipelined frame, which may be
    /// batched with others).
    fn transmit(&self, frame: Vec<u8>, queue: bool) -> Result<(), ClientError> {
        let closed = || {
            ClientError::Transport(
                self.dead_reason()
                    .unwrap_or_else(|| "connection closed".into()),
            )
        };
        match &self.link {
            Link::Quic(tx) => tx.send(frame).map_err(|_| closed()),
            Link::Unix(u) => {
                let r = if queue {
                    u.queue(&frame)
                } else {
                    u.write_through(&frame)
                };
                if let Err(e) = r {
                    u.fail(
                        &self.shared,
                        format!("lost connection to the rgpu server: {e}"),
                    );
                    return Err(closed());
                }
                Ok(())
            }
        }
    }

    /// In a forked child: lets go of the parent's socket without touching the parent's session
    /// (the descriptor is closed, nothing is sent). The client must not be used afterwards.
    pub fn abandon_after_fork(&self) {
        if let Link::Unix(u) = &self.link {
            for s in [&u.writer, &u.reader] {
                let Ok(s) = s.try_lock() else { continue };
                // SAFETY: dup2 of /dev/null onto our own descriptor only replaces what the child's
                // copy refers to; the parent's socket stays open in the parent.
                unsafe {
                    let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC);
                    if null >= 0 {
                        libc::dup2(null, std::os::fd::AsRawFd::as_raw_fd(&*s));
                        libc::close(null);
                    }
                }
            }
        }
    }

    /// Sends a call and waits for its reply.
    pub fn call(&self, hdr: CallHeader, req: &Request) -> Result<Reply, ClientError> {
        let slot = self.submit(hdr, req, None)?;
        self.wait(&slot, req)
    }

    /// Sends several calls at once and waits for all their replies (in the same order); the
    /// first failure is returned. The server may run them concurrently: use this only for calls
    /// that do not depend on each other (e.g. the chunks of one large download).
    pub fn call_batch(&self, hdr: CallHeader, reqs: &[Request]) -> Result<Vec<Reply>, ClientError> {
        let lanes: Vec<&Lane> = self
            .lanes
            .iter()
            .filter(|l| !l.dead.load(Ordering::Relaxed))
            .collect();
        if lanes.is_empty() || reqs.len() < 2 {
            let slots = reqs
                .iter()
                .map(|r| self.submit(hdr, r, None))
                .collect::<Result<Vec<_>, _>>()?;
            return slots
                .iter()
                .zip(reqs)
                .map(|(slot, req)| self.wait(slot, req))
                .collect();
        }
        // The first call goes on the main connection and is waited for: its reply proves the
        // server has read (and queued in order) everything this client sent before, which frames
        // on other connections could otherwise overtake. The rest are spread over all lanes.
        let mut out = vec![self.call(hdr, &reqs[0])?];
        let slots = reqs[1..]
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let k = i % (lanes.len() + 1);
                self.submit(hdr, r, (k > 0).then(|| lanes[k - 1]))
            })
            .collect::<Result<Vec<_>, _>>()?;
        for (slot, req) in slots.iter().zip(&reqs[1..]) {
            out.push(self.wait(slot, req)?);
        }
        Ok(out)
    }

    /// How many bulk lanes are open.
    pub fn bulk_lanes(&self) -> usize {
        self.lanes
            .iter()
            .filter(|l| !l.dead.load(Ordering::Relaxed))
            .count()
    }

    /// Sends a call whose reply the returned slot receives.
    fn submit(
        &self,
        mut hdr: CallHeader,
        req: &Request,
        lane: Option<&Lane>,
    ) -> Result<Arc<Slot>, ClientError> {
        if let Some(why) = self.dead_reason() {
            return Err(ClientError::Transport(why));
        }
        hdr.id = self.next_id.fetch_add(1, Ordering::Relaxed);
        hdr.opcode = req.opcode();
        let frame = self.frame(&mut hdr, req)?;
        let slot = Arc::new(Slot {
            done: Mutex::new(None),
            cv: Condvar::new(),
        });
        self.shared
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(hdr.id, slot.clone());
        let sent = match lane {
            Some(l) => {
                l.ids
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(hdr.id);
                l.tx.send(frame).map_err(|_| {
                    ClientError::Transport("a bulk lane of the connection has closed".into())
                })
            }
            None => self.transmit(frame, false),
        };
        if let Err(e) = sent {
            self.shared
                .pending
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&hdr.id);
            return Err(e);
        }
        // A connection that died between the check above and the insert must not leave us waiting.
        if let Some(why) = self.dead_reason() {
            self.shared.fail_all(why);
        }
        Ok(slot)
    }

    /// Waits for the reply of `req` in `slot`.
    fn wait(&self, slot: &Slot, req: &Request) -> Result<Reply, ClientError> {
        if let Link::Unix(u) = &self.link {
            u.wait(&self.shared, slot);
        }
        let mut g = slot.done.lock().unwrap_or_else(|e| e.into_inner());
        while g.is_none() {
            g = slot.cv.wait(g).unwrap_or_else(|e| e.into_inner());
        }
        let (rh, body) = g.take().expect("checked").map_err(ClientError::Transport)?;
        if let Some(e) = CuError::from_raw(rh.status) {
            return Err(ClientError::Cuda(e));
        }
        Reply::decode(rh.opcode, &body)
            .map_err(|e| ClientError::Transport(format!("malformed reply to {}: {e}", req.name())))
    }
}

/// Hands one frame from the server to whoever waits for it; returns the id of a reply.
fn deliver(sh: &Shared, output: &OutputSink, max: u32, p: &[u8]) -> Result<Option<u64>, String> {
    match p.first() {
        Some(&kind::OUTPUT) if p.len() >= 2 => {
            (output.0)(p[1], &p[2..]);
            return Ok(None);
        }
        Some(&kind::NOTICE) => {
            tracing::warn!("rgpu server: {}", String::from_utf8_lossy(&p[1..]));
            return Ok(None);
        }
        Some(&kind::PONG) => return Ok(None),
        _ => {}
    }
    let (h, body) =
        ReplyHeader::parse(p).map_err(|e| format!("malformed frame from the rgpu server: {e}"))?;
    let body = wire::body(h.flags, body, max)
        .map_err(|e| format!("malformed frame from the rgpu server: {e}"))?;
    let slot = sh
        .pending
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&h.id);
    if let Some(slot) = slot {
        *slot.done.lock().unwrap_or_else(|e| e.into_inner()) = Some(Ok((h, body.into_owned())));
        slot.cv.notify_all();
    }
    Ok(Some(h.id))
}

/// The Unix socket to use for `cfg`, if its server is on this machine and offers one.
fn local_socket(cfg: &ClientConfig) -> Option<String> {
    let path = cfg.conn.local_socket.clone()?;
    (cfg.conn.host == hostname() && std::path::Path::new(&path).exists()).then_some(path)
}

/// Why [`read_blocking_frame`] returned no frame.
#[derive(Debug)]
enum ReadEnd {
    /// The read timeout passed before the first byte of a frame (try again).
    Idle,
    /// The peer closed the connection between frames.
    Closed,
    /// Anything else.
    Failed(String),
}

/// Reads one length-prefixed frame from a blocking socket. A read timeout only ends the read
/// before a frame's first byte; inside a frame the read goes on, for at most `stall` of silence.
fn read_blocking_frame(r: &mut impl Read, max: u32, stall: Duration) -> Result<Vec<u8>, ReadEnd> {
    fn fill(
        r: &mut impl Read,
        buf: &mut [u8],
        first: bool,
        stall: Duration,
    ) -> Result<(), ReadEnd> {
        let mut got = 0;
        let mut quiet = Instant::now();
        while got < buf.len() {
            match r.read(&mut buf[got..]) {
                Ok(0) if got == 0 && first => return Err(ReadEnd::Closed),
                Ok(0) => return Err(ReadEnd::Failed("connection closed inside a frame".into())),
                Ok(n) => {
                    got += n;
                    quiet = Instant::now();
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    if got == 0 && first {
                        return Err(ReadEnd::Idle);
                    }
                    if quiet.elapsed() > stall {
                        return Err(ReadEnd::Failed(format!(
                            "the server stopped inside a frame for {:.1} s",
                            stall.as_secs_f64()
                        )));
                    }
                }
                Err(e) => return Err(ReadEnd::Failed(e.to_string())),
            }
        }
        Ok(())
    }
    let mut len = [0u8; 4];
    fill(r, &mut len, true, stall)?;
    let n = wire::check_len(u32::from_le_bytes(len), max)
        .map_err(|e| ReadEnd::Failed(e.to_string()))?;
    let mut buf = vec![0u8; n];
    fill(r, &mut buf, false, stall)?;
    Ok(buf)
}

/// Connects over the server's Unix socket at `path` and starts the reader thread.
fn connect_unix(cfg: &ClientConfig, path: &str) -> Result<Client, ClientError> {
    let t = ClientError::Transport;
    let mut s =
        UnixStream::connect(path).map_err(|e| t(format!("cannot connect to {path}: {e}")))?;
    s.set_read_timeout(Some(cfg.connect_timeout))
        .and_then(|_| s.set_write_timeout(Some(cfg.connect_timeout)))
        .map_err(|e| t(e.to_string()))?;
    // No TLS here: the kernel tells who the server is (our own user, or root), before it
    // sees our token; then it states its certificate, which must be the pinned one.
    let peer = peer_uid(&s).map_err(|e| t(format!("{path}: {e}")))?;
    // SAFETY: getuid has no preconditions.
    let me = unsafe { libc::getuid() };
    if peer != me && peer != 0 {
        return Err(t(format!(
            "{path} belongs to another user (uid {peer}); not trusting it"
        )));
    }
    s.write_all(&wire::handshake_frame(
        kind::HELLO,
        cfg.protocol_version,
        &hello(cfg, None),
    ))
    .map_err(|e| t(format!("handshake: {e}")))?;
    let p = read_blocking_frame(&mut s, 1 << 20, cfg.connect_timeout).map_err(|e| match e {
        ReadEnd::Closed => t("the server closed the connection during the handshake".into()),
        ReadEnd::Idle => t(format!(
            "no answer from the server's socket {path} within {:?}",
            cfg.connect_timeout
        )),
        ReadEnd::Failed(e) => t(format!("handshake: {e}")),
    })?;
    let welcome = handshake_reply(cfg, &p)?;
    if !cfg.conn.insecure && welcome.fingerprint != cfg.conn.fingerprint {
        return Err(t(format!(
            "the server on {path} has certificate {}, which does not match the pinned fingerprint {}",
            welcome.fingerprint, cfg.conn.fingerprint
        )));
    }
    s.set_write_timeout(None).map_err(|e| t(e.to_string()))?;
    // A reading caller wakes up at least this often to check that the server still answers.
    let tick = (cfg.idle_timeout / 4).max(Duration::from_millis(50));
    s.set_read_timeout(Some(tick))
        .map_err(|e| t(e.to_string()))?;
    let reader = s.try_clone().map_err(|e| t(e.to_string()))?;
    let flusher_sock = s.try_clone().map_err(|e| t(e.to_string()))?;
    let outbox = Arc::new(Outbox::default());
    let shared = Arc::new(Shared::default());
    let writer = Arc::new(Mutex::new(s));
    {
        let (outbox, writer, sh) = (outbox.clone(), writer.clone(), shared.clone());
        std::thread::Builder::new()
            .name("rgpu-flush".into())
            .spawn(move || flush_loop(&outbox, &writer, &sh, flusher_sock))
            .map_err(|e| t(format!("cannot start the I/O thread: {e}")))?;
    }
    Ok(Client {
        lanes: Vec::new(),
        link: Link::Unix(UnixLink {
            outbox,
            writer,
            reader: Mutex::new(reader),
            reading: std::sync::atomic::AtomicBool::new(false),
            heard: Mutex::new((Instant::now(), false)),
            idle: cfg.idle_timeout,
            max: cfg.max_frame,
            output: cfg.output.clone(),
        }),
        shared,
        next_id: AtomicU64::new(1),
        welcome,
        compress: cfg.compress,
    })
}

/// Pipelined frames waiting to be written.
#[derive(Default)]
struct Outbox {
    bytes: Mutex<Vec<u8>>,
    cv: Condvar,
    closed: std::sync::atomic::AtomicBool,
}

/// Past this many queued bytes a pipelining thread writes the batch itself.
const OUTBOX_LIMIT: usize = 1 << 20;

/// The flusher thread: writes queued pipelined frames, in batches, until the link closes.
fn flush_loop(outbox: &Outbox, writer: &Mutex<UnixStream>, sh: &Shared, sock: UnixStream) {
    loop {
        {
            let mut q = outbox.bytes.lock().unwrap_or_else(|e| e.into_inner());
            while q.is_empty() && !outbox.closed.load(Ordering::Acquire) {
                q = outbox.cv.wait(q).unwrap_or_else(|e| e.into_inner());
            }
            if q.is_empty() {
                return;
            }
        }
        let mut w = writer.lock().unwrap_or_else(|e| e.into_inner());
        let batch = std::mem::take(&mut *outbox.bytes.lock().unwrap_or_else(|e| e.into_inner()));
        if let Err(e) = w.write_all(&batch) {
            let _ = sock.shutdown(std::net::Shutdown::Both);
            drop(w);
            outbox.closed.store(true, Ordering::Release);
            sh.fail_all(format!("lost connection to the rgpu server: {e}"));
            return;
        }
    }
}

impl UnixLink {
    /// Writes the queued pipelined frames, then `frame`, as one write.
    fn write_through(&self, frame: &[u8]) -> std::io::Result<()> {
        let mut w = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let mut queued =
            std::mem::take(&mut *self.outbox.bytes.lock().unwrap_or_else(|e| e.into_inner()));
        if queued.is_empty() {
            return w.write_all(frame);
        }
        queued.extend_from_slice(frame);
        w.write_all(&queued)
    }

    /// Queues a pipelined frame for the flusher.
    fn queue(&self, frame: &[u8]) -> std::io::Result<()> {
        let mut q = self.outbox.bytes.lock().unwrap_or_else(|e| e.into_inner());
        let was_empty = q.is_empty();
        q.extend_from_slice(frame);
        let full = q.len() >= OUTBOX_LIMIT;
        drop(q);
        if full {
            return self.write_through(&[]);
        }
        if was_empty {
            self.outbox.cv.notify_one();
        }
        Ok(())
    }

    /// Takes the reading token if no other thread holds it.
    fn take_token(&self) -> bool {
        self.reading
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }

    /// Returns once `slot` has its outcome: reading the socket while no other thread does,
    /// else sleeping until the reading thread hands over the reply or the token.
    fn wait(&self, sh: &Shared, slot: &Slot) {
        loop {
            {
                let mut g = slot.done.lock().unwrap_or_else(|e| e.into_inner());
                // The token is checked under the slot's lock, and released threads notify
                // under it: a release cannot slip between the check and the sleep.
                while g.is_none() && self.reading.load(Ordering::Acquire) {
                    g = slot.cv.wait(g).unwrap_or_else(|e| e.into_inner());
                }
                if g.is_some() {
                    return;
                }
            }
            if !self.take_token() {
                continue;
            }
            // Silence counts from now: before this call nobody was waiting for the server.
            *self.heard.lock().unwrap_or_else(|e| e.into_inner()) = (Instant::now(), false);
            while slot
                .done
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .is_none()
            {
                if let Err(why) = self.read_one(sh) {
                    self.fail(sh, why);
                }
            }
            self.reading.store(false, Ordering::Release);
            // Whoever still waits may take the token now.
            let waiting: Vec<_> = sh
                .pending
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .values()
                .cloned()
                .collect();
            for other in waiting {
                let _g = other.done.lock().unwrap_or_else(|e| e.into_inner());
                other.cv.notify_all();
            }
            return;
        }
    }

    /// Ends the connection after a failure: nothing may follow a partly written frame.
    fn fail(&self, sh: &Shared, why: String) {
        if let Ok(r) = self.reader.try_lock() {
            let _ = r.shutdown(std::net::Shutdown::Both);
        } else if let Ok(w) = self.writer.try_lock() {
            let _ = w.shutdown(std::net::Shutdown::Both);
        }
        self.outbox.closed.store(true, Ordering::Release);
        self.outbox.cv.notify_all();
        sh.fail_all(why);
    }

    /// Reads and delivers one frame, or notices (at a read timeout) that the server has been
    /// silent too long: silent for `idle` while calls wait, it is asked whether it lives (PING);
    /// silent for another `idle`, it counts as dead.
    fn read_one(&self, sh: &Shared) -> Result<(), String> {
        let mut r = self.reader.lock().unwrap_or_else(|e| e.into_inner());
        match read_blocking_frame(&mut *r, self.max, self.idle * 2) {
            Ok(p) => {
                *self.heard.lock().unwrap_or_else(|e| e.into_inner()) = (Instant::now(), false);
                deliver(sh, &self.output, self.max, &p).map(|_| ())
            }
            Err(ReadEnd::Closed) => Err("the rgpu server closed the connection".into()),
            Err(ReadEnd::Failed(e)) => Err(format!("lost connection to the rgpu server: {e}")),
            Err(ReadEnd::Idle) => {
                let mut h = self.heard.lock().unwrap_or_else(|e| e.into_inner());
                let quiet = h.0.elapsed();
                if quiet >= self.idle * 2 {
                    return Err(format!(
                        "the rgpu server stopped answering (nothing heard for {:.1} s)",
                        quiet.as_secs_f64()
                    ));
                }
                if quiet >= self.idle && !h.1 {
                    // Frames are written whole under the writers' lock; a caller holding it is
                    // itself waiting for the server to take its frame.
                    if let Ok(mut w) = self.writer.try_lock() {
                        if w.write_all(&[1, 0, 0, 0, kind::PING]).is_err() {
                            return Err("lost connection to the rgpu server".into());
                        }
                        h.1 = true;
                    }
                }
                Ok(())
            }
        }
    }
}

/// The user id of the process at the other end of `s`.
fn peer_uid(s: &UnixStream) -> std::io::Result<u32> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: SO_PEERCRED writes at most `len` bytes into `cred`, a properly sized ucred.
    let r = unsafe {
        libc::getsockopt(
            std::os::fd::AsRawFd::as_raw_fd(s),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            &mut cred as *mut libc::ucred as *mut libc::c_void,
            &mut len,
        )
    };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(cred.uid)
}

/// Starts a thread named `name` that runs the future `make` builds on its own single-threaded
/// tokio runtime (the runtime is dropped on that thread when the future ends); `fail` hears why
/// the runtime could not start.
fn io_thread<F: std::future::Future<Output = ()>>(
    name: &str,
    fail: impl FnOnce(ClientError) + Send + 'static,
    make: impl FnOnce() -> F + Send + 'static,
) -> Result<(), ClientError> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt.block_on(make()),
                Err(e) => fail(ClientError::Transport(format!(
                    "cannot start the I/O runtime: {e}"
                ))),
            }
        })
        .map(|_| ())
        .map_err(|e| ClientError::Transport(format!("cannot start the I/O thread: {e}")))
}

/// Opens a bulk lane: its own QUIC connection, claimed for `session` with its secret, driven by
/// its own I/O thread; replies on it go to the same waiting callers as the main connection's.
fn open_lane(
    cfg: &ClientConfig,
    session: u64,
    secret: &str,
    shared: Arc<Shared>,
) -> Result<Lane, ClientError> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Vec<u8>>();
    let ids: Arc<Mutex<std::collections::HashSet<u64>>> = Default::default();
    let dead = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let claim = wire::Resume {
        session,
        secret: secret.to_string(),
        waiting: Vec::new(),
        lane: true,
    };
    let (cfg, lane_ids, lane_dead) = (cfg.clone(), ids.clone(), dead.clone());
    let fail = ready_tx.clone();
    io_thread(
        "rgpu-lane",
        move |e| {
            let _ = fail.send(Err(e));
        },
        move || async move {
            {
                let connected =
                    tokio::time::timeout(cfg.connect_timeout, connect(&cfg, Some(claim))).await;
                let ((ep, conn, _), mut send, mut recv) = match connected {
                    Ok(Ok(v)) => v,
                    Ok(Err(e)) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                    Err(_) => {
                        let _ = ready_tx.send(Err(ClientError::Transport(
                            "timed out opening a bulk lane".into(),
                        )));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(()));
                let writer = async {
                    while let Some(f) = rx.recv().await {
                        if f.is_empty() || send.write_all(&f).await.is_err() {
                            break; // empty: the client shuts down
                        }
                    }
                    let _ = send.finish();
                };
                let reader = async {
                    while let Ok(p) = transport::read_frame(&mut recv, cfg.max_frame).await {
                        match deliver(&shared, &cfg.output, cfg.max_frame, &p) {
                            Ok(Some(id)) => {
                                lane_ids
                                    .lock()
                                    .unwrap_or_else(|e| e.into_inner())
                                    .remove(&id);
                            }
                            Ok(None) => {}
                            Err(_) => break,
                        }
                    }
                };
                tokio::select! {
                    _ = writer => {},
                    _ = reader => {},
                }
                lane_dead.store(true, Ordering::Relaxed);
                // Calls in flight on this lane fail; later large copies use the main connection.
                let stranded: Vec<u64> = lane_ids
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .drain()
                    .collect();
                for id in stranded {
                    shared.fail_one(id, "a bulk lane of the connection was lost".into());
                }
                conn.close(0u32.into(), b"bye");
                let _ = tokio::time::timeout(Duration::from_millis(200), ep.wait_idle()).await;
            }
        },
    )?;
    ready_rx
        .recv_timeout(Duration::from_secs(30))
        .map_err(|_| ClientError::Transport("timed out opening a bulk lane".into()))??;
    Ok(Lane { tx, ids, dead })
}

/// Call frames written to the current QUIC connection that the server may not have read yet,
/// kept so that they can be sent again on a new connection after a loss.
#[derive(Default)]
struct Retained {
    /// (sequence number, frame), oldest first.
    frames: VecDeque<(u64, Arc<Vec<u8>>)>,
    bytes: usize,
    next_seq: u64,
    /// Sequence numbers of the calls that wait for a reply.
    seq_of: HashMap<u64, u64>,
    /// Frames below this sequence number were dropped for space: a resume that needs them fails.
    lost_below: u64,
}

/// Most bytes of call frames kept for a resume; older pipelined frames are dropped beyond it.
const RETAIN_BYTES: usize = 256 << 20;

impl Retained {
    fn push(&mut self, frame: &Arc<Vec<u8>>) {
        let seq = self.next_seq;
        self.next_seq += 1;
        if let Ok((h, _)) = CallHeader::parse(&frame[4..]) {
            if h.flags & wire::flags::NO_REPLY == 0 {
                self.seq_of.insert(h.id, seq);
            }
        }
        self.bytes += frame.len();
        self.frames.push_back((seq, frame.clone()));
        while self.bytes > RETAIN_BYTES {
            let Some((s, f)) = self.frames.pop_front() else {
                break;
            };
            self.bytes -= f.len();
            self.lost_below = s + 1;
        }
    }

    /// The server answered call `id`: it has read every frame up to that call's.
    fn answered(&mut self, id: u64) {
        if let Some(seq) = self.seq_of.remove(&id) {
            self.read_up_to(seq + 1);
        }
    }

    /// Forgets frames below sequence number `n` (the server has read them).
    fn read_up_to(&mut self, n: u64) {
        while self.frames.front().is_some_and(|(s, _)| *s < n) {
            let (_, f) = self.frames.pop_front().expect("checked");
            self.bytes -= f.len();
        }
    }
}

/// Why a QUIC connection's traffic stopped.
enum Stop {
    /// We closed it (shutdown or the client dropped).
    Closed(String),
    /// The server closed it, or broke the protocol: final.
    Final(String),
    /// The path failed (timeout, reset): the session may be taken up again.
    Lost(String),
}

/// Whether a connection error means the path failed rather than a peer closing on purpose.
fn path_failed(conn: &quinn::Connection) -> bool {
    matches!(
        conn.close_reason(),
        Some(quinn::ConnectionError::TimedOut) | Some(quinn::ConnectionError::Reset)
    )
}

async fn run(
    cfg: ClientConfig,
    mut rx: tokio::sync::mpsc::UnboundedReceiver<Vec<u8>>,
    shared: Arc<Shared>,
    ready: std::sync::mpsc::Sender<Result<Welcome, ClientError>>,
) {
    let (conn, mut send, mut recv) =
        match tokio::time::timeout(cfg.connect_timeout, connect(&cfg, None)).await {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => {
                let _ = ready.send(Err(e));
                return;
            }
            Err(_) => {
                let _ = ready.send(Err(ClientError::Transport(format!(
                    "timed out connecting to {}",
                    cfg.conn.address
                ))));
                return;
            }
        };
    let (mut endpoint, mut conn, welcome) = conn;
    let session = welcome.session;
    let secret = welcome.resume_secret.clone();
    let window = cfg
        .resume_window
        .min(Duration::from_millis(welcome.resume_window_ms));
    let _ = ready.send(Ok(welcome));
    let retained = std::cell::RefCell::new(Retained::default());
    let max = cfg.max_frame;
    let why = loop {
        let writer = async {
            while let Some(frame) = rx.recv().await {
                if frame.is_empty() {
                    let _ = send.finish();
                    return Stop::Closed("client closed".into());
                }
                let frame = Arc::new(frame);
                retained.borrow_mut().push(&frame);
                if let Err(e) = send.write_all(&frame).await {
                    return Stop::Lost(format!("lost connection to the rgpu server: {e}"));
                }
            }
            let _ = send.finish();
            Stop::Closed("client closed".into())
        };
        let reader = async {
            loop {
                let p = match transport::read_frame(&mut recv, max).await {
                    Ok(p) => p,
                    Err(FrameError::Closed) => {
                        return Stop::Final("the rgpu server closed the connection".into())
                    }
                    Err(e) => {
                        return Stop::Lost(format!("lost connection to the rgpu server: {e}"))
                    }
                };
                match deliver(&shared, &cfg.output, max, &p) {
                    Ok(Some(id)) => retained.borrow_mut().answered(id),
                    Ok(None) => {}
                    Err(e) => return Stop::Final(e),
                }
            }
        };
        let stop = tokio::select! {
            w = writer => w,
            r = reader => r,
        };
        let why = match stop {
            Stop::Lost(why) if path_failed(&conn) && !secret.is_empty() && !window.is_zero() => why,
            Stop::Lost(why) | Stop::Final(why) | Stop::Closed(why) => break why,
        };
        tracing::warn!("{why}; reconnecting to resume the session (for up to {window:?})");
        match resume(&cfg, session, &secret, window, &shared, &retained).await {
            Ok((ep, c, s, r)) => {
                (endpoint, conn, send, recv) = (ep, c, s, r);
                shared.resumes.fetch_add(1, Ordering::Relaxed);
                tracing::info!("session {session} resumed");
            }
            Err(e) => break format!("{why}; {e}"),
        }
    };
    conn.close(0u32.into(), b"bye");
    shared.fail_all(why);
    // Let the CONNECTION_CLOSE reach the server so it releases the session now, not at timeout.
    let _ = tokio::time::timeout(Duration::from_millis(200), endpoint.wait_idle()).await;
    *shared.closed.lock().unwrap_or_else(|e| e.into_inner()) = true;
    shared.closed_cv.notify_all();
}

/// Reconnects within `window` and takes session `session` up again: the calls the server did
/// not read are sent again in order; calls whose reply the server can no longer give fail.
async fn resume(
    cfg: &ClientConfig,
    session: u64,
    secret: &str,
    window: Duration,
    shared: &Shared,
    retained: &std::cell::RefCell<Retained>,
) -> Result<
    (
        quinn::Endpoint,
        quinn::Connection,
        quinn::SendStream,
        quinn::RecvStream,
    ),
    String,
> {
    let deadline = tokio::time::Instant::now() + window;
    let mut last = String::from("no attempt");
    'attempt: loop {
        if tokio::time::Instant::now() >= deadline {
            return Err(format!(
                "could not resume the session within {window:?} ({last})"
            ));
        }
        let waiting: Vec<u64> = shared
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .copied()
            .collect();
        let claim = wire::Resume {
            session,
            secret: secret.to_string(),
            waiting: waiting.clone(),
            lane: false,
        };
        let left = deadline - tokio::time::Instant::now();
        let attempt =
            tokio::time::timeout(cfg.connect_timeout.min(left), connect(cfg, Some(claim))).await;
        let ((ep, conn, w), mut send, recv) = match attempt {
            Ok(Ok(v)) => v,
            Ok(Err(ClientError::Refused(why))) => return Err(why),
            Ok(Err(e)) => {
                last = e.to_string();
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            Err(_) => {
                last = "connection attempt timed out".into();
                continue;
            }
        };
        let Some(resumed) = w.resumed else {
            return Err("the server started a new session instead of resuming".into());
        };
        let frames = {
            let mut r = retained.borrow_mut();
            if resumed.frames_read < r.lost_below {
                return Err(format!(
                    "cannot resume: more than {} MiB of pipelined calls were sent while the connection was down",
                    RETAIN_BYTES >> 20
                ));
            }
            r.read_up_to(resumed.frames_read);
            // Calls the server read but can no longer answer.
            for id in waiting {
                let read = r.seq_of.get(&id).is_some_and(|&s| s < resumed.frames_read);
                if read && !resumed.answering.contains(&id) {
                    r.seq_of.remove(&id);
                    shared.fail_one(
                        id,
                        "the reply to this call was lost with the connection".into(),
                    );
                }
            }
            r.frames.iter().map(|(_, f)| f.clone()).collect::<Vec<_>>()
        };
        for f in frames {
            if let Err(e) = send.write_all(&f).await {
                last = e.to_string();
                continue 'attempt;
            }
        }
        return Ok((ep, conn, send, recv));
    }
}

type Connected = (
    (quinn::Endpoint, quinn::Connection, Welcome),
    quinn::SendStream,
    quinn::RecvStream,
);

async fn connect(
    cfg: &ClientConfig,
    resume: Option<wire::Resume>,
) -> Result<Connected, ClientError> {
    let t = |e: String| ClientError::Transport(e);
    let addr = cfg
        .conn
        .address
        .to_socket_addrs()
        .map_err(|e| t(format!("cannot resolve {}: {e}", cfg.conn.address)))?
        .next()
        .ok_or_else(|| t(format!("{} resolves to no address", cfg.conn.address)))?;
    let bind: std::net::SocketAddr = if addr.is_ipv6() {
        "[::]:0".parse().expect("literal")
    } else {
        "0.0.0.0:0".parse().expect("literal")
    };
    let mut ep =
        quinn::Endpoint::client(bind).map_err(|e| t(format!("cannot open a UDP socket: {e}")))?;
    let pin = if cfg.conn.insecure {
        None
    } else {
        Some(cfg.conn.fingerprint.as_str())
    };
    ep.set_default_client_config(
        transport::client_config(pin, cfg.idle_timeout).map_err(|e| t(e.to_string()))?,
    );
    let conn = ep
        .connect(addr, &cfg.conn.server_name)
        .map_err(|e| t(format!("cannot connect to {addr}: {e}")))?
        .await
        .map_err(|e| t(format!("cannot connect to the rgpu server at {addr}: {e}")))?;
    let (mut send, mut recv) = conn
        .open_bi()
        .await
        .map_err(|e| t(format!("cannot open a stream: {e}")))?;
    send.write_all(&wire::handshake_frame(
        kind::HELLO,
        cfg.protocol_version,
        &hello(cfg, resume),
    ))
    .await
    .map_err(|e| t(format!("handshake: {e}")))?;
    let p = transport::read_frame(&mut recv, 1 << 20)
        .await
        .map_err(|e| match e {
            FrameError::Closed => t("the server closed the connection during the handshake".into()),
            e => t(format!("handshake: {e}")),
        })?;
    let w = handshake_reply(cfg, &p)?;
    Ok(((ep, conn, w), send, recv))
}

/// The first frame's body.
fn hello(cfg: &ClientConfig, resume: Option<wire::Resume>) -> Hello {
    Hello {
        spec_hash: SPEC_HASH,
        token: cfg.conn.token.clone(),
        pid: std::process::id(),
        host: hostname(),
        client_version: crate::VERSION.to_string(),
        visible_devices: cfg
            .conn
            .visible_devices
            .clone()
            .or_else(|| std::env::var("RGPU_VISIBLE_DEVICES").ok()),
        compress: cfg.compress,
        resume,
        allocation: std::env::var("RGPU_ALLOCATION")
            .ok()
            .filter(|a| !a.is_empty()),
        namespace: cfg.namespace,
    }
}

/// The server's answer to our HELLO.
fn handshake_reply(cfg: &ClientConfig, p: &[u8]) -> Result<Welcome, ClientError> {
    let t = |e: String| ClientError::Transport(e);
    let (version, body) =
        wire::parse_handshake(kind::WELCOME, p).map_err(|e| t(format!("handshake: {e}")))?;
    let reply: HandshakeReply = match wire::body_from(body) {
        Ok(r) => r,
        Err(_) if version != cfg.protocol_version => {
            return Err(ClientError::Refused(format!(
                "protocol version mismatch: server speaks {version}, client speaks {}",
                cfg.protocol_version
            )))
        }
        Err(e) => return Err(t(format!("handshake: {e}"))),
    };
    match reply {
        HandshakeReply::Welcome(w) => Ok(w),
        HandshakeReply::Refused(why) => Err(ClientError::Refused(why)),
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}
