//! The local-socket path: a client on the server's machine writes its frames to the server's
//! Unix socket itself and reads replies as the leader among its waiting threads.

use super::*;

/// The Unix socket to use for `cfg`, if its server is on this machine and offers one.
pub(super) fn local_socket(cfg: &ClientConfig) -> Option<String> {
    let path = cfg.conn.local_socket.clone()?;
    (cfg.conn.host == hostname() && std::path::Path::new(&path).exists()).then_some(path)
}

/// Why [`read_blocking_frame`] returned no frame.
#[derive(Debug)]
pub(super) enum ReadEnd {
    /// The read timeout passed before the first byte of a frame (try again).
    Idle,
    /// The peer closed the connection between frames.
    Closed,
    /// Anything else.
    Failed(String),
}

/// Reads one length-prefixed frame from a blocking socket. A read timeout only ends the read
/// before a frame's first byte; inside a frame the read goes on, for at most `stall` of silence.
pub(super) fn read_blocking_frame(
    r: &mut impl Read,
    max: u32,
    stall: Duration,
) -> Result<Vec<u8>, ReadEnd> {
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
pub(super) fn connect_unix(cfg: &ClientConfig, path: &str) -> Result<Client, ClientError> {
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
pub(super) struct Outbox {
    bytes: Mutex<Vec<u8>>,
    cv: Condvar,
    closed: std::sync::atomic::AtomicBool,
}

impl Outbox {
    /// Stops the flusher thread (after it writes what is queued).
    pub(super) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.cv.notify_all();
    }
}

/// Past this many queued bytes a pipelining thread writes the batch itself.
pub(super) const OUTBOX_LIMIT: usize = 1 << 20;

/// The flusher thread: writes queued pipelined frames, in batches, until the link closes.
pub(super) fn flush_loop(
    outbox: &Outbox,
    writer: &Mutex<UnixStream>,
    sh: &Shared,
    sock: UnixStream,
) {
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
    pub(super) fn write_through(&self, frame: &[u8]) -> std::io::Result<()> {
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
    pub(super) fn queue(&self, frame: &[u8]) -> std::io::Result<()> {
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
    pub(super) fn take_token(&self) -> bool {
        self.reading
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }

    /// Returns once `slot` has its outcome: reading the socket while no other thread does,
    /// else sleeping until the reading thread hands over the reply or the token.
    pub(super) fn wait(&self, sh: &Shared, slot: &Slot) {
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
    pub(super) fn fail(&self, sh: &Shared, why: String) {
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
    pub(super) fn read_one(&self, sh: &Shared) -> Result<(), String> {
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
pub(super) fn peer_uid(s: &UnixStream) -> std::io::Result<u32> {
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
