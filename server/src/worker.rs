//! Session worker processes. In process isolation the server (the supervisor) keeps the QUIC
//! connection and the handshake, and runs each session in a child `rgpu worker`: a crash, a
//! sticky GPU error or a leak stays in that process, and its exit returns all of its GPU memory.
//!
//! The child gets one end of a Unix socket as its standard input and speaks the connection's
//! own frames on it, so the supervisor only relays bytes. Before any frame the child sends one
//! status frame (JSON: `{"ok":true,"driver_version":N}` or `{"ok":false,"error":"…"}`). What
//! the child writes to its standard output (device `printf` of a real GPU) is captured inside
//! the child and sent to the client as output frames.

use crate::device::cpu::CpuDevice;
use crate::device::gpu;
use crate::server::{
    finish_writer, new_session, notify_to, read_local_frame, serve_calls, write_frames, DeviceKind,
    Devices, Frames, ServerConfig, SessionSpec,
};
use serde::{Deserialize, Serialize};
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// Environment variable carrying the worker's configuration.
pub const CONFIG_ENV: &str = "RGPU_WORKER_CONFIG";

/// QUIC close code: the session's worker process died.
pub const CLOSE_WORKER_DIED: u32 = 4;

/// Exit status of a worker whose client sent a malformed frame.
const EXIT_PROTOCOL: i32 = 3;

#[derive(Serialize, Deserialize)]
struct WorkerConfig {
    spec: SessionSpec,
    device: DeviceKind,
    cpu_memory: u64,
    seed: String,
    cuda_driver: Option<PathBuf>,
    /// The session's devices: driver ordinals of GPUs, or ordinals of CPU devices.
    ordinals: Vec<i32>,
    /// The client's local socket is descriptor 3: the worker serves it directly.
    #[serde(default)]
    client_socket: bool,
}

/// Descriptor number of the client's socket in a worker serving a local client.
const CLIENT_FD: i32 = 3;

#[derive(Serialize, Deserialize)]
struct Status {
    ok: bool,
    #[serde(default)]
    driver_version: i32,
    #[serde(default)]
    error: String,
}

/// A running session worker, seen from the supervisor.
pub struct Worker {
    child: tokio::process::Child,
    sock: tokio::net::UnixStream,
    sid: u64,
    /// Driver version the session reports.
    pub driver_version: i32,
}

fn frame(payload: &[u8]) -> Vec<u8> {
    let mut f = (payload.len() as u32).to_le_bytes().to_vec();
    f.extend_from_slice(payload);
    f
}

impl Worker {
    /// Starts `exe worker` for the session `spec` and waits for its status.
    pub async fn spawn(
        exe: &Path,
        cfg: &ServerConfig,
        devices: &Devices,
        spec: &SessionSpec,
        client: Option<&OwnedFd>,
    ) -> Result<Worker, String> {
        let (ours, theirs) = std::os::unix::net::UnixStream::pair().map_err(|e| e.to_string())?;
        let wc = WorkerConfig {
            spec: spec.clone(),
            device: match devices {
                Devices::Cpu(_) => DeviceKind::Cpu,
                _ => DeviceKind::Gpu,
            },
            cpu_memory: cfg.cpu_memory,
            seed: cfg.seed.clone(),
            cuda_driver: gpu::loaded().map(|d| d.path.clone()),
            ordinals: match devices {
                Devices::Gpu(o) => o.clone(),
                Devices::Cpu(d) => d.iter().map(|d| d.ordinal()).collect(),
                Devices::Mixed { .. } => return Err("a session uses one kind of device".into()),
            },
            client_socket: client.is_some(),
        };
        let json = serde_json::to_string(&wc).map_err(|e| e.to_string())?;
        let mut cmd = tokio::process::Command::new(exe);
        cmd.arg("worker")
            .env(CONFIG_ENV, json)
            .stdin(Stdio::from(OwnedFd::from(theirs)))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        if let Some(fd) = client {
            use std::os::fd::AsRawFd;
            let raw = fd.as_raw_fd();
            // SAFETY: between fork and exec only dup2/fcntl run (async-signal-safe); they make
            // the client's socket descriptor 3 of the worker, without close-on-exec (dup2 onto
            // itself would leave the flag, so that case clears it directly).
            unsafe {
                cmd.pre_exec(move || {
                    let r = if raw == CLIENT_FD {
                        libc::fcntl(raw, libc::F_SETFD, 0)
                    } else {
                        libc::dup2(raw, CLIENT_FD)
                    };
                    if r < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot start the worker {}: {e}", exe.display()))?;
        ours.set_nonblocking(true).map_err(|e| e.to_string())?;
        let mut sock = tokio::net::UnixStream::from_std(ours).map_err(|e| e.to_string())?;
        let status = tokio::time::timeout(
            Duration::from_secs(60),
            read_local_frame(&mut sock, 64 << 10),
        )
        .await
        .map_err(|_| "the session worker did not start within 60 s".to_string())??
        .ok_or_else(|| "the session worker exited before it was ready".to_string())?;
        let st: Status = serde_json::from_slice(&status).map_err(|e| e.to_string())?;
        if !st.ok {
            return Err(st.error);
        }
        Ok(Worker {
            child,
            sock,
            sid: spec.id,
            driver_version: st.driver_version,
        })
    }

    /// The worker's process id.
    pub fn pid(&self) -> u32 {
        self.child.id().unwrap_or(0)
    }

    /// Connects the worker's socket to channels: call frames (payloads) in, whole frames out.
    pub(crate) fn bridge(
        self,
        max_frame: u32,
    ) -> (
        WorkerProcess,
        tokio::sync::mpsc::UnboundedSender<crate::resume::Inbound>,
        tokio::sync::mpsc::UnboundedReceiver<Vec<u8>>,
    ) {
        let (to_worker, mut calls) =
            tokio::sync::mpsc::unbounded_channel::<crate::resume::Inbound>();
        let (out, from_worker) = tokio::sync::mpsc::unbounded_channel();
        let (mut wr, mut ww) = self.sock.into_split();
        tokio::spawn(async move {
            // A frame's share of the inbound budget is returned once the worker's socket took it.
            while let Some((p, _permit)) = calls.recv().await {
                if ww.write_all(&frame(&p)).await.is_err() {
                    break;
                }
            }
            let _ = ww.shutdown().await;
        });
        tokio::spawn(async move {
            while let Ok(Some(p)) = read_local_frame(&mut wr, max_frame.saturating_add(64)).await {
                if out.send(frame(&p)).is_err() {
                    break;
                }
            }
        });
        (
            WorkerProcess {
                child: self.child,
                sid: self.sid,
            },
            to_worker,
            from_worker,
        )
    }

    /// For a worker serving a local client's socket itself: waits until it ends.
    pub async fn wait(mut self) -> Result<(), String> {
        let status = self.child.wait().await.ok();
        outcome(self.sid, status)
    }
}

/// A session worker whose traffic goes through channels ([`Worker::bridge`]).
pub(crate) struct WorkerProcess {
    child: tokio::process::Child,
    sid: u64,
}

impl WorkerProcess {
    /// After the session's last connection ended: reaps the worker and closes `conn` with a
    /// code that says why.
    pub(crate) async fn finish(
        mut self,
        conn: quinn::Connection,
        end: crate::resume::End,
    ) -> Result<(), String> {
        let sid = self.sid;
        let status = reap(&mut self.child, sid, Duration::from_secs(5)).await;
        let r = outcome(sid, status);
        match (status, end) {
            (_, crate::resume::End::Malformed(e)) => {
                conn.close(2u32.into(), b"protocol error");
                return Err(format!(
                    "session {sid}: malformed input from the client: {e}"
                ));
            }
            (Some(s), _) if s.success() => {}
            (Some(s), _) if s.code() == Some(EXIT_PROTOCOL) => {
                conn.close(2u32.into(), b"protocol error")
            }
            _ => conn.close(CLOSE_WORKER_DIED.into(), b"session worker died"),
        }
        r
    }
}

/// A worker's exit status, killing it if it is still running after `grace`.
async fn reap(
    child: &mut tokio::process::Child,
    sid: u64,
    grace: Duration,
) -> Option<std::process::ExitStatus> {
    match tokio::time::timeout(grace, child.wait()).await {
        Ok(s) => s.ok(),
        Err(_) => {
            tracing::warn!(
                "session {sid}: worker still running {grace:?} after its session ended; killing it"
            );
            let _ = child.kill().await;
            None
        }
    }
}

/// What a worker's exit means for its session.
fn outcome(sid: u64, status: Option<std::process::ExitStatus>) -> Result<(), String> {
    use std::os::unix::process::ExitStatusExt;
    match status {
        Some(s) if s.success() => {
            tracing::info!("session {sid}: worker exited");
            Ok(())
        }
        Some(s) if s.code() == Some(EXIT_PROTOCOL) => {
            Err(format!("session {sid}: malformed input from the client"))
        }
        other => {
            let why = match other.and_then(|s| s.signal()) {
                Some(sig) => format!("killed by signal {sig}"),
                None => format!("exit status {:?}", other.and_then(|s| s.code())),
            };
            tracing::error!("session {sid}: worker died ({why}); closing the connection");
            Err(format!("session {sid}: worker died ({why})"))
        }
    }
}

extern "C" {
    static mut stdout: *mut libc::FILE;
}

/// Sends what this process writes to its standard output to `tx` as output frames, from a
/// thread; returns the thread, which ends once standard output is closed.
fn capture_stdout(
    tx: tokio::sync::mpsc::UnboundedSender<Vec<u8>>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let mut fds = [0i32; 2];
    // SAFETY: plain POSIX calls; fd 1 is replaced by the pipe's write end, and C's stdout is
    // made unbuffered so that device printf reaches the pipe when the driver writes it.
    let read = unsafe {
        if libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        if libc::dup2(fds[1], 1) < 0 {
            return Err(std::io::Error::last_os_error());
        }
        libc::close(fds[1]);
        libc::setvbuf(stdout, std::ptr::null_mut(), libc::_IONBF, 0);
        std::fs::File::from_raw_fd(fds[0])
    };
    std::thread::Builder::new()
        .name("rgpu-stdout".into())
        .spawn(move || {
            use std::io::Read;
            let mut read = read;
            let mut buf = vec![0u8; 64 << 10];
            while let Ok(n) = read.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let _ = tx.send(rgpu_protocol::wire::output_frame(1, &buf[..n]));
            }
        })
}

/// Closes this process's standard output so the capture thread ends.
fn close_stdout() {
    // SAFETY: flushes C's streams and points fd 1 at /dev/null.
    unsafe {
        libc::fflush(std::ptr::null_mut());
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_WRONLY);
        if null >= 0 {
            libc::dup2(null, 1);
            libc::close(null);
        }
    }
}

/// `rgpu worker`: runs one session on the socket at standard input. Returns the exit status.
pub fn worker_main() -> i32 {
    // SAFETY: asks the kernel to kill this process when the supervisor dies.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
    let Some(json) = std::env::var_os(CONFIG_ENV) else {
        eprintln!("rgpu worker is started by `rgpu server`, not by hand");
        return 2;
    };
    let wc: WorkerConfig = match serde_json::from_str(&json.to_string_lossy()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("rgpu worker: bad configuration: {e}");
            return 2;
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("rgpu worker: {e}");
            return 2;
        }
    };
    rt.block_on(run_worker(wc))
}

async fn run_worker(wc: WorkerConfig) -> i32 {
    let sid = wc.spec.id;
    // SAFETY: fd 0 is the socket the supervisor passed; nothing else owns it.
    let std_sock = unsafe { std::os::unix::net::UnixStream::from_raw_fd(0) };
    if std_sock.set_nonblocking(true).is_err() {
        return 2;
    }
    let Ok(sock) = tokio::net::UnixStream::from_std(std_sock) else {
        return 2;
    };
    let (r, mut w) = sock.into_split();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Vec<u8>>();
    let capture = match capture_stdout(tx.clone()) {
        Ok(t) => Some(t),
        Err(e) => {
            tracing::warn!("session {sid}: device output is not captured: {e}");
            None
        }
    };
    let devices = match wc.device {
        DeviceKind::Gpu => gpu::load(wc.cuda_driver.as_deref()).map(|_| Devices::Gpu(wc.ordinals)),
        _ => Ok(Devices::Cpu(std::sync::Arc::new(
            wc.ordinals
                .iter()
                .map(|&i| {
                    std::sync::Arc::new(CpuDevice::new(i, wc.cpu_memory, &wc.seed))
                        as std::sync::Arc<dyn crate::device::Device>
                })
                .collect(),
        ))),
    };
    let created = devices.and_then(|d| new_session(&d, &wc.spec, notify_to(tx.clone())));
    let status = match &created {
        Ok((_, v)) => Status {
            ok: true,
            driver_version: *v,
            error: String::new(),
        },
        Err(e) => Status {
            ok: false,
            driver_version: 0,
            error: e.clone(),
        },
    };
    let body = serde_json::to_vec(&status).unwrap_or_default();
    if w.write_all(&frame(&body)).await.is_err() {
        return 2;
    }
    let Ok((session, _)) = created else {
        return 1;
    };
    let (r, w) = if wc.client_socket {
        // The client's own socket: the supervisor's is not needed any more.
        drop((r, w));
        // SAFETY: descriptor 3 is the client socket the supervisor placed there; nothing else
        // in this process owns it.
        let std_sock = unsafe { std::os::unix::net::UnixStream::from_raw_fd(CLIENT_FD) };
        let sock = std_sock
            .set_nonblocking(true)
            .and_then(|_| tokio::net::UnixStream::from_std(std_sock));
        match sock {
            Ok(s) => s.into_split(),
            Err(e) => {
                tracing::error!("session {sid}: the client socket is unusable: {e}");
                return 2;
            }
        }
    } else {
        (r, w)
    };
    let writer = tokio::spawn(write_frames(rx, w));
    let result = serve_calls(
        session,
        sid,
        Frames::local(r),
        tx,
        wc.spec.max_frame,
        wc.spec.compress,
    )
    .await;
    close_stdout();
    if let Some(t) = capture {
        let _ = tokio::task::spawn_blocking(move || t.join()).await;
    }
    finish_writer(sid, writer).await;
    match result {
        Ok(()) => 0,
        Err(e) => {
            tracing::warn!("{e}");
            EXIT_PROTOCOL
        }
    }
}
