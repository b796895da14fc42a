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

mod quic;
mod unix;
use quic::*;
use unix::*;

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
                u.outbox.close();
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
