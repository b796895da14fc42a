//! The blocking client: a background thread runs a single-threaded tokio runtime that owns the
//! QUIC connection; callers on any thread hand it encoded frames and block on a condition
//! variable until their reply arrives. No tokio state is touched on the calling threads, so the
//! client is safe to use from C threads, at exit, and (after re-creation) in a forked child.

use crate::connfile::ConnectionFile;
use crate::error::CuError;
use crate::messages::{Reply, Request, SPEC_HASH};
use crate::transport::{self, FrameError};
use crate::wire::{self, kind, CallHeader, HandshakeReply, Hello, ReplyHeader, Welcome};
use std::collections::HashMap;
use std::net::ToSocketAddrs;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

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

struct Shared {
    pending: Mutex<HashMap<u64, Arc<Slot>>>,
    dead: Mutex<Option<String>>,
    closed: Mutex<bool>,
    closed_cv: Condvar,
}

impl Shared {
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

/// A connected client.
pub struct Client {
    tx: tokio::sync::mpsc::UnboundedSender<Vec<u8>>,
    shared: Arc<Shared>,
    next_id: AtomicU64,
    welcome: Welcome,
    compress: bool,
}

impl Client {
    /// Connects and performs the handshake. Starts one background thread.
    pub fn connect(cfg: ClientConfig) -> Result<Client, ClientError> {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Vec<u8>>();
        let shared = Arc::new(Shared {
            pending: Mutex::new(HashMap::new()),
            dead: Mutex::new(None),
            closed: Mutex::new(false),
            closed_cv: Condvar::new(),
        });
        let sh = shared.clone();
        let timeout = cfg.connect_timeout;
        let compress = cfg.compress;
        std::thread::Builder::new()
            .name("rgpu-io".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(ClientError::Transport(format!(
                            "cannot start the I/O runtime: {e}"
                        ))));
                        return;
                    }
                };
                rt.block_on(run(cfg, rx, sh, ready_tx));
                // The runtime is dropped here, on its own thread, after the connection ended.
            })
            .map_err(|e| ClientError::Transport(format!("cannot start the I/O thread: {e}")))?;
        let welcome = ready_rx
            .recv_timeout(timeout + Duration::from_secs(1))
            .map_err(|_| {
                ClientError::Transport("timed out connecting to the rgpu server".into())
            })??;
        Ok(Client {
            tx,
            shared,
            next_id: AtomicU64::new(1),
            welcome,
            compress,
        })
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
        if self.tx.send(Vec::new()).is_err() {
            return;
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
        self.tx.send(frame).map_err(|_| {
            ClientError::Transport(
                self.dead_reason()
                    .unwrap_or_else(|| "connection closed".into()),
            )
        })
    }

    /// Sends a call and waits for its reply.
    pub fn call(&self, hdr: CallHeader, req: &Request) -> Result<Reply, ClientError> {
        let slot = self.submit(hdr, req)?;
        Self::wait(&slot, req)
    }

    /// Sends several calls at once and waits for all their replies (in the same order); the
    /// first failure is returned. The server may run them concurrently: use this only for calls
    /// that do not depend on each other (e.g. the chunks of one large download).
    pub fn call_batch(&self, hdr: CallHeader, reqs: &[Request]) -> Result<Vec<Reply>, ClientError> {
        let slots = reqs
            .iter()
            .map(|r| self.submit(hdr, r))
            .collect::<Result<Vec<_>, _>>()?;
        slots
            .iter()
            .zip(reqs)
            .map(|(slot, req)| Self::wait(slot, req))
            .collect()
    }

    /// Sends a call whose reply the returned slot receives.
    fn submit(&self, mut hdr: CallHeader, req: &Request) -> Result<Arc<Slot>, ClientError> {
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
        if self.tx.send(frame).is_err() {
            self.shared
                .pending
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&hdr.id);
            return Err(ClientError::Transport(
                self.dead_reason()
                    .unwrap_or_else(|| "connection closed".into()),
            ));
        }
        // A connection that died between the check above and the insert must not leave us waiting.
        if let Some(why) = self.dead_reason() {
            self.shared.fail_all(why);
        }
        Ok(slot)
    }

    /// Waits for the reply of `req` in `slot`.
    fn wait(slot: &Slot, req: &Request) -> Result<Reply, ClientError> {
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

async fn run(
    cfg: ClientConfig,
    mut rx: tokio::sync::mpsc::UnboundedReceiver<Vec<u8>>,
    shared: Arc<Shared>,
    ready: std::sync::mpsc::Sender<Result<Welcome, ClientError>>,
) {
    let (conn, mut send, mut recv) =
        match tokio::time::timeout(cfg.connect_timeout, connect(&cfg)).await {
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
    let (_endpoint, conn, welcome) = conn;
    let _ = ready.send(Ok(welcome));
    let writer = async {
        while let Some(frame) = rx.recv().await {
            if frame.is_empty() {
                break; // shutdown()
            }
            if let Err(e) = send.write_all(&frame).await {
                return format!("lost connection to the rgpu server: {e}");
            }
        }
        let _ = send.finish();
        "client closed".to_string()
    };
    let sh = shared.clone();
    let max = cfg.max_frame;
    let output = cfg.output.clone();
    let reader = async move {
        loop {
            let p = match transport::read_frame(&mut recv, max).await {
                Ok(p) => p,
                Err(FrameError::Closed) => {
                    return "the rgpu server closed the connection".to_string()
                }
                Err(e) => return format!("lost connection to the rgpu server: {e}"),
            };
            if p.first() == Some(&kind::OUTPUT) && p.len() >= 2 {
                (output.0)(p[1], &p[2..]);
                continue;
            }
            if p.first() == Some(&kind::NOTICE) {
                let msg = String::from_utf8_lossy(&p[1..]).to_string();
                tracing::warn!("rgpu server: {msg}");
                continue;
            }
            match ReplyHeader::parse(&p) {
                Ok((h, body)) => {
                    let body = match wire::body(h.flags, body, max) {
                        Ok(b) => b,
                        Err(e) => return format!("malformed frame from the rgpu server: {e}"),
                    };
                    let slot = sh
                        .pending
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .remove(&h.id);
                    if let Some(slot) = slot {
                        *slot.done.lock().unwrap_or_else(|e| e.into_inner()) =
                            Some(Ok((h, body.into_owned())));
                        slot.cv.notify_all();
                    }
                }
                Err(e) => return format!("malformed frame from the rgpu server: {e}"),
            }
        }
    };
    let why = tokio::select! {
        w = writer => w,
        r = reader => r,
    };
    conn.close(0u32.into(), b"bye");
    shared.fail_all(why);
    // Let the CONNECTION_CLOSE reach the server so it releases the session now, not at timeout.
    let _ = tokio::time::timeout(Duration::from_millis(200), _endpoint.wait_idle()).await;
    *shared.closed.lock().unwrap_or_else(|e| e.into_inner()) = true;
    shared.closed_cv.notify_all();
}

type Connected = (
    (quinn::Endpoint, quinn::Connection, Welcome),
    quinn::SendStream,
    quinn::RecvStream,
);

async fn connect(cfg: &ClientConfig) -> Result<Connected, ClientError> {
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
    let hello = Hello {
        spec_hash: SPEC_HASH,
        token: cfg.conn.token.clone(),
        pid: std::process::id(),
        host: hostname(),
        client_version: crate::VERSION.to_string(),
        visible_devices: std::env::var("RGPU_VISIBLE_DEVICES").ok(),
        compress: cfg.compress,
    };
    send.write_all(&wire::handshake_frame(
        kind::HELLO,
        cfg.protocol_version,
        &hello,
    ))
    .await
    .map_err(|e| t(format!("handshake: {e}")))?;
    let p = transport::read_frame(&mut recv, 1 << 20)
        .await
        .map_err(|e| match e {
            FrameError::Closed => t("the server closed the connection during the handshake".into()),
            e => t(format!("handshake: {e}")),
        })?;
    let (version, body) =
        wire::parse_handshake(kind::WELCOME, &p).map_err(|e| t(format!("handshake: {e}")))?;
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
        HandshakeReply::Welcome(w) => Ok(((ep, conn, w), send, recv)),
        HandshakeReply::Refused(why) => Err(ClientError::Refused(why)),
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}
