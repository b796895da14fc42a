//! The QUIC path: an I/O thread with its own single-threaded runtime owns the connection, takes
//! the session up again after a lost connection (resume), and opens bulk lanes.

use super::*;

/// Starts a thread named `name` that runs the future `make` builds on its own single-threaded
/// tokio runtime (the runtime is dropped on that thread when the future ends); `fail` hears why
/// the runtime could not start.
pub(super) fn io_thread<F: std::future::Future<Output = ()>>(
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
pub(super) fn open_lane(
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
pub(super) struct Retained {
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
pub(super) const RETAIN_BYTES: usize = 256 << 20;

impl Retained {
    pub(super) fn push(&mut self, frame: &Arc<Vec<u8>>) {
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
    pub(super) fn answered(&mut self, id: u64) {
        if let Some(seq) = self.seq_of.remove(&id) {
            self.read_up_to(seq + 1);
        }
    }

    /// Forgets frames below sequence number `n` (the server has read them).
    pub(super) fn read_up_to(&mut self, n: u64) {
        while self.frames.front().is_some_and(|(s, _)| *s < n) {
            let (_, f) = self.frames.pop_front().expect("checked");
            self.bytes -= f.len();
        }
    }
}

/// Why a QUIC connection's traffic stopped.
pub(super) enum Stop {
    /// We closed it (shutdown or the client dropped).
    Closed(String),
    /// The server closed it, or broke the protocol: final.
    Final(String),
    /// The path failed (timeout, reset): the session may be taken up again.
    Lost(String),
}

/// Whether a connection error means the path failed rather than a peer closing on purpose.
pub(super) fn path_failed(conn: &quinn::Connection) -> bool {
    matches!(
        conn.close_reason(),
        Some(quinn::ConnectionError::TimedOut) | Some(quinn::ConnectionError::Reset)
    )
}

pub(super) async fn run(
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
pub(super) async fn resume(
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

pub(super) type Connected = (
    (quinn::Endpoint, quinn::Connection, Welcome),
    quinn::SendStream,
    quinn::RecvStream,
);

pub(super) async fn connect(
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
