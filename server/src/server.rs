//! The QUIC listener: accepts connections, performs the handshake (protocol version, API hash,
//! token), runs one session per connection and releases it when the connection ends.

use crate::device::gpu;
use crate::device::{cpu::CpuDevice, Device};
use crate::session::{Backend, Cx, GpuSession, Session};
use rgpu_protocol::connfile::ConnectionFile;
use rgpu_protocol::messages::{dispatch, Request, SPEC_HASH};
use rgpu_protocol::transport::{self, Identity};
use rgpu_protocol::wire::{self, kind, CallHeader, HandshakeReply, Hello, ReplyHeader, Welcome};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Which backend serves the devices.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
pub enum DeviceKind {
    /// The built-in CPU device.
    Cpu,
    /// NVIDIA GPUs through the real driver.
    Gpu,
    /// GPUs if present, else the CPU device.
    Auto,
    /// The GPUs, and CPU devices beside them (a session uses one kind or the other).
    #[value(name = "gpu+cpu")]
    GpuCpu,
}

/// Server settings.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// UDP address to listen on.
    pub listen: SocketAddr,
    /// Where the key pair, certificate and tokens live.
    pub state_dir: PathBuf,
    /// Where to write the connection file (default: `<state_dir>/connection.json`).
    pub connection_file: Option<PathBuf>,
    /// Accept any client without a token and let clients skip pinning.
    pub insecure: bool,
    /// Backend.
    pub device: DeviceKind,
    /// Number of CPU devices to offer.
    pub cpu_devices: u32,
    /// Memory of each CPU device.
    pub cpu_memory: u64,
    /// A silent client's session is released after this long.
    pub idle_timeout: Duration,
    /// Largest accepted frame.
    pub max_frame: u32,
    /// Most client sessions at once; further clients are refused with a clear message.
    pub max_sessions: usize,
    /// Device memory one session may hold (`None`: no limit besides the device's).
    pub session_memory: Option<u64>,
    /// The NVIDIA driver file to load (default: `RGPU_CUDA_DRIVER`, else a search).
    pub cuda_driver: Option<PathBuf>,
    /// Where sessions run (`None`: in worker processes on GPUs, in the server on the CPU device).
    pub isolation: Option<Isolation>,
    /// The program run as `PROGRAM worker` for each session in process isolation (the `rgpu`
    /// binary); without it sessions run inside the server.
    pub worker_exe: Option<PathBuf>,
    /// Limits on each session's streams, events and modules.
    pub limits: crate::session::Limits,
    /// Devices that serve one session at a time.
    pub exclusive: Exclusive,
    /// How long a session waits for an exclusive device held by another before it is refused.
    pub exclusive_wait: Duration,
    /// Unix socket for clients on this machine (calls skip QUIC and TLS; owner-only, token
    /// still checked); `None`: QUIC only.
    pub local_socket: Option<PathBuf>,
    /// How long a session whose QUIC connection was lost waits for its client to come back
    /// (zero: it ends with its connection).
    pub resume_window: Duration,
    /// The pool this server belongs to: it registers there and serves pool allocations only.
    pub pool: Option<PoolConfig>,
    /// Seed of the CPU devices' identities (set by `start` from the server's certificate).
    pub(crate) seed: String,
}

/// Membership of a pool on etcd.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// The registry.
    pub registry: crate::pool::RegistryUrl,
    /// This server's id in the pool.
    pub id: String,
    /// `host:port` clients reach this server at (default: the listen address).
    pub advertise: Option<String>,
    /// Seconds the server's registration outlives it.
    pub ttl: i64,
}

/// Which devices are exclusive (one session at a time).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exclusive {
    /// All devices are shared.
    None,
    /// Every device is exclusive.
    All,
    /// These server indices are exclusive.
    Some(Vec<usize>),
}

impl Exclusive {
    /// Whether device `d` is exclusive.
    pub fn contains(&self, d: usize) -> bool {
        match self {
            Exclusive::None => false,
            Exclusive::All => true,
            Exclusive::Some(v) => v.contains(&d),
        }
    }
}

impl std::str::FromStr for Exclusive {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "" | "none" => Ok(Exclusive::None),
            "all" => Ok(Exclusive::All),
            list => list
                .split(',')
                .map(|x| {
                    x.trim().parse::<usize>().map_err(|_| {
                        format!("`{x}` is not a device index (use all, none or e.g. 0,2)")
                    })
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Exclusive::Some),
        }
    }
}

/// Where client sessions run.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
pub enum Isolation {
    /// Each session in its own worker process: a crash, a sticky GPU error or a leak stays
    /// there, and the process's exit returns all of its GPU memory.
    Process,
    /// Sessions as threads of the server process (lowest latency).
    Thread,
}

impl ServerConfig {
    /// The isolation used for sessions on `devices`.
    pub fn isolation_for(&self, devices: &Devices) -> Isolation {
        match (self.isolation, devices) {
            (Some(i), _) => i,
            (None, Devices::Gpu(_) | Devices::Mixed { .. }) if self.worker_exe.is_some() => {
                Isolation::Process
            }
            (None, _) => Isolation::Thread,
        }
    }
}

impl ServerConfig {
    /// Defaults for a server keeping its state in `state_dir`.
    pub fn new(state_dir: PathBuf) -> Self {
        ServerConfig {
            listen: "127.0.0.1:7600".parse().expect("literal"),
            local_socket: Some(state_dir.join("rgpu.sock")),
            resume_window: Duration::from_secs(30),
            pool: None,
            state_dir,
            connection_file: None,
            insecure: false,
            device: DeviceKind::Auto,
            cpu_devices: 1,
            cpu_memory: 4 << 30,
            max_sessions: 256,
            session_memory: None,
            cuda_driver: None,
            isolation: None,
            worker_exe: None,
            seed: String::new(),
            exclusive: Exclusive::None,
            limits: crate::session::Limits::default(),
            exclusive_wait: Duration::ZERO,
            idle_timeout: Duration::from_secs(3),
            max_frame: wire::DEFAULT_MAX_FRAME,
        }
    }
}

/// Errors starting the server.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// Transport setup.
    #[error(transparent)]
    Transport(#[from] transport::TransportError),
    /// I/O.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// Connection file.
    #[error(transparent)]
    ConnFile(#[from] rgpu_protocol::connfile::ConnFileError),
    /// Device selection.
    #[error("{0}")]
    Device(String),
}

/// A running server.
pub struct Server {
    /// Bound address.
    pub addr: SocketAddr,
    /// What clients need to connect.
    pub connection: ConnectionFile,
    /// Where the connection file was written.
    pub connection_path: PathBuf,
    endpoint: quinn::Endpoint,
    /// The Unix socket for local clients, if one is offered.
    pub local_socket: Option<PathBuf>,
    /// The devices offered.
    pub devices: Devices,
    live: Arc<Live>,
}

/// Server-wide session bookkeeping.
#[derive(Default)]
struct Live {
    sessions: std::sync::atomic::AtomicUsize,
    draining: std::sync::atomic::AtomicBool,
    /// Process ids of the running session workers.
    workers: std::sync::Mutex<Vec<u32>>,
    /// Which sessions use which devices.
    placement: Arc<crate::placement::Placement>,
    /// The sockets of sessions on the local socket (a duplicate of each), to end them at
    /// shutdown.
    local: Table<Arc<OwnedFd>>,
    /// QUIC sessions that a client may take up again after losing its connection.
    resumable: crate::resume::Registry,
    /// Pool sessions: session → (allocation, how to end the session).
    fenced: Table<(String, Ender)>,
    /// The pool registry client, once connected.
    pool_client: tokio::sync::Mutex<Option<etcd_client::Client>>,
    /// Set at shutdown: sessions waiting for their client stop waiting.
    closing: tokio::sync::watch::Sender<bool>,
    /// Background tasks (pool registration, fencing), stopped at shutdown.
    tasks: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl Live {
    /// Stops the background tasks (the pool registration lapses with its lease).
    fn stop_tasks(&self) {
        for t in self
            .tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            t.abort();
        }
    }

    /// Ends every session on the local socket (its client sees the connection close).
    fn end_local_sessions(&self) {
        for fd in self
            .local
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
        {
            shut(fd);
        }
    }
}

/// Ends a session from outside (its connection is closed).
type Ender = Arc<dyn Fn() + Send + Sync>;

impl Live {
    /// A connected registry client (made on first use; `None` when unreachable).
    async fn pool_client(&self, cfg: &PoolConfig) -> Option<etcd_client::Client> {
        let mut g = self.pool_client.lock().await;
        if g.is_none() {
            *g = crate::pool::connect(&cfg.registry).await.ok();
        }
        g.clone()
    }
}

/// Every second: ends the sessions whose allocation has gone from the registry (released, or
/// its client's lease expired). When the registry cannot be asked, sessions go on.
async fn fence(live: Arc<Live>, cfg: PoolConfig) {
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let sessions: Vec<(u64, String, Ender)> = live
            .fenced
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(sid, (a, e))| (*sid, a.clone(), e.clone()))
            .collect();
        if sessions.is_empty() {
            continue;
        }
        let Some(mut c) = live.pool_client(&cfg).await else {
            continue;
        };
        let Some(alive) = crate::pool::live_allocations(&mut c).await else {
            // Reconnect next time.
            *live.pool_client.lock().await = None;
            continue;
        };
        for (sid, alloc, end) in sessions {
            if !alive.contains(&alloc) {
                tracing::warn!(
                    "session {sid}: allocation {alloc} is gone from the pool; ending the session"
                );
                end();
                live.fenced
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&sid);
            }
        }
    }
}

/// The pool's view of this server's devices now.
fn device_records(
    devices: &Devices,
    cfg: &ServerConfig,
    live: &Live,
    id: &str,
) -> Vec<crate::pool::DeviceRecord> {
    // `GPU-…` of each device, as published and as NVML knows GPUs.
    let uuids: Vec<String> = devices
        .uuids()
        .iter()
        .map(crate::placement::uuid_string)
        .collect();
    let uuid = |index: usize| {
        uuids
            .get(index)
            .cloned()
            .unwrap_or_else(|| crate::placement::uuid_string(&[0; 16]))
    };
    let mut out = Vec::new();
    let mut add = |index: usize,
                   name: String,
                   kind: &str,
                   memory: u64,
                   free: Option<u64>,
                   load: Option<u32>,
                   cc: String,
                   driver_version: i32| {
        out.push(crate::pool::DeviceRecord {
            server: id.to_string(),
            index: index as u32,
            name,
            kind: kind.into(),
            memory,
            free,
            cc,
            mode: if cfg.exclusive.contains(index) {
                "exclusive"
            } else {
                "shared"
            }
            .into(),
            driver_version,
            sessions: live.placement.users(index),
            load,
            uuid: uuid(index),
        });
    };
    let gpu_driver = gpu::loaded();
    let gpus: &[i32] = match devices {
        Devices::Gpu(o) => o,
        Devices::Mixed { gpus, .. } => gpus,
        Devices::Cpu(_) => &[],
    };
    for (i, &ord) in gpus.iter().enumerate() {
        if let Some(g) = gpu_driver.and_then(|d| d.gpus.iter().find(|g| g.ordinal == ord)) {
            let attr = |a: usize| g.attributes.get(a).copied().unwrap_or(0);
            let (free, load) = crate::device::nvml::usage(&uuid(i));
            add(
                i,
                g.name.clone(),
                "gpu",
                g.total_mem,
                free,
                load,
                format!("{}.{}", attr(75), attr(76)),
                gpu_driver.map_or(0, |d| d.version),
            );
        }
    }
    let cpus = match devices {
        Devices::Cpu(c) => Some(c),
        Devices::Mixed { cpus, .. } => Some(cpus),
        Devices::Gpu(_) => None,
    };
    if let Some(cpus) = cpus {
        for (k, d) in cpus.iter().enumerate() {
            let cc = format!(
                "{}.{}",
                d.attribute(75).unwrap_or(7),
                d.attribute(76).unwrap_or(5)
            );
            add(
                gpus.len() + k,
                d.name(),
                "cpu",
                d.total_mem(),
                Some(d.total_mem().saturating_sub(d.used_mem())),
                Some(d.load_since_last()),
                cc,
                crate::session::DRIVER_VERSION,
            );
        }
    }
    out
}

/// Shuts a socket both ways (every process holding it sees the end).
fn shut(fd: &OwnedFd) {
    // SAFETY: shutdown on a descriptor we own; it does not close it.
    unsafe { libc::shutdown(fd.as_raw_fd(), libc::SHUT_RDWR) };
}

/// QUIC application close code: the server is shutting down.
pub const CLOSE_SHUTDOWN: u32 = 3;

/// QUIC application close code: the session's pool allocation was released or expired.
pub const CLOSE_RELEASED: u32 = 7;

impl Server {
    /// Number of client sessions open now.
    pub fn sessions(&self) -> usize {
        self.live.sessions.load(Ordering::SeqCst)
    }

    /// Process ids of the session workers running now (process isolation).
    pub fn worker_pids(&self) -> Vec<u32> {
        self.live
            .workers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Graceful shutdown: stop accepting, let open sessions finish for up to `grace`, then close
    /// the remaining connections (their programs get `CUDA_ERROR_DEVICE_UNAVAILABLE`).
    pub async fn shutdown(&self, grace: Duration) {
        self.live.draining.store(true, Ordering::SeqCst);
        self.endpoint.set_server_config(None);
        let deadline = tokio::time::Instant::now() + grace;
        while self.sessions() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if self.sessions() > 0 {
            tracing::warn!(
                "closing {} session(s) still open after {grace:?}",
                self.sessions()
            );
        }
        let _ = self.live.closing.send(true);
        self.live.stop_tasks();
        self.endpoint
            .close(CLOSE_SHUTDOWN.into(), b"server shutting down");
        self.live.end_local_sessions();
        self.remove_socket();
        let _ = tokio::time::timeout(Duration::from_secs(2), self.endpoint.wait_idle()).await;
    }

    /// Stops accepting and closes every connection.
    pub fn close(&self) {
        self.live.draining.store(true, Ordering::SeqCst);
        let _ = self.live.closing.send(true);
        self.live.stop_tasks();
        self.endpoint.close(1u32.into(), b"server shutting down");
        self.live.end_local_sessions();
        self.remove_socket();
    }

    fn remove_socket(&self) {
        if let Some(p) = &self.local_socket {
            let _ = std::fs::remove_file(p);
        }
    }
}

fn tokens_path(cfg: &ServerConfig) -> PathBuf {
    cfg.state_dir.join("tokens")
}

/// Reads the accepted tokens (one per line). Re-read at every handshake, so tokens can be
/// rotated by editing the file while the server runs.
fn accepted_tokens(cfg: &ServerConfig) -> Vec<String> {
    std::fs::read_to_string(tokens_path(cfg))
        .unwrap_or_default()
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect()
}

pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The devices a server offers.
#[derive(Clone)]
pub enum Devices {
    /// Built-in CPU devices.
    Cpu(Arc<Vec<Arc<dyn Device>>>),
    /// GPUs of the loaded NVIDIA driver (driver ordinals).
    Gpu(Vec<i32>),
    /// GPUs (server indices 0..G) and CPU devices after them (`--device gpu+cpu`).
    Mixed {
        /// Driver ordinals of the GPUs.
        gpus: Vec<i32>,
        /// The CPU devices.
        cpus: Arc<Vec<Arc<dyn Device>>>,
    },
}

impl Devices {
    /// Number of devices.
    pub fn len(&self) -> usize {
        match self {
            Devices::Cpu(d) => d.len(),
            Devices::Gpu(g) => g.len(),
            Devices::Mixed { gpus, cpus } => gpus.len() + cpus.len(),
        }
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// What a client sees without `RGPU_VISIBLE_DEVICES`: everything, except that beside GPUs
    /// the CPU devices are only used when asked for.
    pub fn default_visible(&self) -> Vec<usize> {
        match self {
            Devices::Mixed { gpus, .. } => (0..gpus.len()).collect(),
            _ => (0..self.len()).collect(),
        }
    }

    /// The devices at `indices`, in that order. One session uses one kind of device: GPUs and
    /// CPU devices together are refused with the reason.
    pub fn select(&self, indices: &[usize]) -> Result<Devices, String> {
        let cpu = |d: &Arc<Vec<Arc<dyn Device>>>, idx: &mut dyn Iterator<Item = usize>| {
            Devices::Cpu(Arc::new(idx.filter_map(|i| d.get(i).cloned()).collect()))
        };
        Ok(match self {
            Devices::Cpu(d) => cpu(d, &mut indices.iter().copied()),
            Devices::Gpu(g) => {
                Devices::Gpu(indices.iter().filter_map(|&i| g.get(i).copied()).collect())
            }
            Devices::Mixed { gpus, cpus } => {
                let n = gpus.len();
                if indices.iter().all(|&i| i < n) {
                    Devices::Gpu(
                        indices
                            .iter()
                            .filter_map(|&i| gpus.get(i).copied())
                            .collect(),
                    )
                } else if indices.iter().all(|&i| i >= n) {
                    cpu(cpus, &mut indices.iter().map(|&i| i - n))
                } else {
                    return Err(format!(
                        "the devices asked for mix GPUs (0..{n}) and CPU devices ({n}..): a \
                         session uses one kind; choose with RGPU_VISIBLE_DEVICES"
                    ));
                }
            }
        })
    }

    /// Each device's UUID.
    pub fn uuids(&self) -> Vec<[u8; 16]> {
        let gpu_uuid = |o: &i32| {
            gpu::loaded()
                .and_then(|d| d.gpus.iter().find(|x| x.ordinal == *o))
                .map(|x| x.uuid)
                .unwrap_or_default()
        };
        match self {
            Devices::Cpu(d) => d.iter().map(|d| d.uuid()).collect(),
            Devices::Gpu(g) => g.iter().map(gpu_uuid).collect(),
            Devices::Mixed { gpus, cpus } => gpus
                .iter()
                .map(gpu_uuid)
                .chain(cpus.iter().map(|d| d.uuid()))
                .collect(),
        }
    }

    /// "cpu", "gpu" or "gpu+cpu".
    pub fn kind(&self) -> &'static str {
        match self {
            Devices::Cpu(_) => "cpu",
            Devices::Gpu(_) => "gpu",
            Devices::Mixed { .. } => "gpu+cpu",
        }
    }
}

/// Builds the devices for `cfg`: `--device gpu` fails with the reason when no usable NVIDIA
/// driver and GPU are found; `--device auto` then falls back to the CPU device.
pub fn make_devices(cfg: &ServerConfig, seed: &str) -> Result<Devices, ServerError> {
    let cpu = || {
        Devices::Cpu(Arc::new(
            (0..cfg.cpu_devices.max(1))
                .map(|i| {
                    Arc::new(CpuDevice::new(i as i32, cfg.cpu_memory, seed)) as Arc<dyn Device>
                })
                .collect(),
        ))
    };
    let gpus = || {
        gpu::load(cfg.cuda_driver.as_deref()).map(|d| d.gpus.iter().map(|g| g.ordinal).collect())
    };
    Ok(match cfg.device {
        DeviceKind::Cpu => cpu(),
        DeviceKind::Gpu => {
            Devices::Gpu(gpus().map_err(|e| ServerError::Device(format!("--device gpu: {e}")))?)
        }
        DeviceKind::Auto => match gpus() {
            Ok(g) => Devices::Gpu(g),
            Err(e) => {
                tracing::info!("--device auto: using the CPU device ({e})");
                cpu()
            }
        },
        DeviceKind::GpuCpu => {
            let gpus = gpus().map_err(|e| ServerError::Device(format!("--device gpu+cpu: {e}")))?;
            let Devices::Cpu(cpus) = cpu() else {
                unreachable!("cpu() builds CPU devices")
            };
            Devices::Mixed { gpus, cpus }
        }
    })
}

/// Starts the server on the current tokio runtime.
pub async fn start(cfg: ServerConfig) -> Result<Server, ServerError> {
    let id = Identity::load_or_create(&cfg.state_dir)?;
    if !cfg.insecure && accepted_tokens(&cfg).is_empty() {
        transport::write_private(
            &tokens_path(&cfg),
            format!("{}\n", transport::random_token()).as_bytes(),
        )?;
    }
    let mut cfg = cfg;
    cfg.seed = id.fingerprint();
    let devices = make_devices(&cfg, &cfg.seed)?;
    let sc = transport::server_config(&id, cfg.idle_timeout)?;
    let endpoint = quinn::Endpoint::server(sc, cfg.listen)?;
    let addr = endpoint.local_addr()?;
    let listener = cfg.local_socket.as_deref().and_then(bind_local_socket);
    let local_socket = listener.as_ref().and(cfg.local_socket.clone());
    let connection = ConnectionFile {
        address: addr.to_string(),
        server_name: transport::SERVER_NAME.into(),
        fingerprint: if cfg.insecure {
            String::new()
        } else {
            id.fingerprint()
        },
        token: accepted_tokens(&cfg).into_iter().next().unwrap_or_default(),
        insecure: cfg.insecure,
        local_socket: local_socket.as_ref().map(|p| p.display().to_string()),
        host: if local_socket.is_some() {
            this_host()
        } else {
            String::new()
        },
        visible_devices: None,
    };
    let connection_path = cfg
        .connection_file
        .clone()
        .unwrap_or_else(|| cfg.state_dir.join("connection.json"));
    connection.write(&connection_path)?;
    tracing::info!(
        "rgpu server listening on {addr} ({} {} device(s)); connection file {}",
        devices.len(),
        devices.kind(),
        connection_path.display()
    );
    if cfg.insecure {
        tracing::warn!("insecure mode: clients are not authenticated");
    }
    let ep = endpoint.clone();
    let devs = devices.clone();
    let cfg = Arc::new(cfg);
    let live = Arc::new(Live::default());
    let (lv, quic_cfg) = (live.clone(), cfg.clone());
    tokio::spawn(async move {
        let cfg = quic_cfg;
        while let Some(inc) = ep.accept().await {
            if lv.draining.load(Ordering::SeqCst) {
                inc.refuse();
                continue;
            }
            let (devs, cfg, lv) = (devs.clone(), cfg.clone(), lv.clone());
            tokio::spawn(async move {
                let remote = inc.remote_address();
                if let Err(e) = serve_connection(inc, devs, cfg, lv).await {
                    tracing::info!("connection from {remote} ended: {e}");
                }
            });
        }
    });
    if let Some(pc) = cfg.pool.clone() {
        let reg = crate::pool::Registration {
            server: crate::pool::ServerRecord {
                id: pc.id.clone(),
                advertise: pc.advertise.clone().unwrap_or_else(|| addr.to_string()),
                server_name: transport::SERVER_NAME.into(),
                fingerprint: connection.fingerprint.clone(),
                host: this_host(),
                version: rgpu_protocol::VERSION.into(),
                since: std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0),
            },
            token: connection.token.clone(),
            ttl: pc.ttl,
        };
        let (devs, c2, lv) = (devices.clone(), cfg.clone(), live.clone());
        let id = pc.id.clone();
        live.tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(tokio::spawn(crate::pool::keep_registered(
                pc.registry.clone(),
                reg,
                move || device_records(&devs, &c2, &lv, &id),
            )));
        live.tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(tokio::spawn(fence(live.clone(), pc)));
    }
    if let Some(listener) = listener {
        let (devs, cfg, lv) = (devices.clone(), cfg.clone(), live.clone());
        tokio::spawn(async move {
            loop {
                let stream = match listener.accept().await {
                    Ok((s, _)) => s,
                    Err(e) => {
                        tracing::warn!("local socket: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                if lv.draining.load(Ordering::SeqCst) {
                    continue; // dropped: the client sees the connection close
                }
                let (devs, cfg, lv) = (devs.clone(), cfg.clone(), lv.clone());
                tokio::spawn(async move {
                    if let Err(e) = serve_local(stream, devs, cfg, lv).await {
                        tracing::info!("local connection ended: {e}");
                    }
                });
            }
        });
    }
    Ok(Server {
        addr,
        connection,
        connection_path,
        endpoint,
        local_socket,
        devices,
        live,
    })
}

/// Binds the Unix socket for local clients at `path`, owner-only. A socket file left by a
/// server that is gone is replaced; one that a live server answers on is left alone. Failures
/// are logged, not fatal: clients then use QUIC.
fn bind_local_socket(path: &Path) -> Option<tokio::net::UnixListener> {
    use std::os::unix::fs::PermissionsExt;
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            tracing::warn!(
                "{} is in use by another server; offering no local socket",
                path.display()
            );
            return None;
        }
        let _ = std::fs::remove_file(path);
    }
    let bound = tokio::net::UnixListener::bind(path).and_then(|l| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        Ok(l)
    });
    match bound {
        Ok(l) => Some(l),
        Err(e) => {
            tracing::warn!(
                "cannot offer the local socket {}: {e}; local clients use QUIC",
                path.display()
            );
            None
        }
    }
}

static SESSIONS: AtomicU64 = AtomicU64::new(1);

/// Executes one call and encodes its reply frame.
fn answer(s: &dyn Backend, hdr: CallHeader, cx: Cx, req: Request, compress: bool) -> Vec<u8> {
    // After a kernel fault the context is unusable, as on a GPU: calls fail with the
    // sticky error, also a synchronising call that waited for the faulting kernel.
    let run = || {
        let exempt = sticky_exempt(&req);
        if let Some(e) = s.sticky_error(cx.ctx).filter(|_| !exempt) {
            return Err(e);
        }
        let r = dispatch(s, &cx, req);
        let deferred = if exempt {
            None
        } else {
            s.take_deferred_error(cx.thread)
        };
        match s.sticky_error(cx.ctx).filter(|_| !exempt).or(deferred) {
            Some(e) if r.is_ok() => Err(e),
            _ => r,
        }
    };
    let frame = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)) {
        Ok(Ok(rep)) => match rep.encode_body(Vec::new()) {
            Ok(body) => {
                let (flags, body) = match wire::compress(&body).filter(|_| compress) {
                    Some(c) => (wire::flags::COMPRESSED, c),
                    None => (0, body),
                };
                let mut f = ReplyHeader {
                    flags,
                    status: 0,
                    id: hdr.id,
                    opcode: rep.opcode(),
                }
                .frame(body.len());
                f.extend_from_slice(&body);
                f
            }
            Err(_) => ReplyHeader {
                flags: 0,
                status: 999,
                id: hdr.id,
                opcode: 0,
            }
            .frame(0),
        },
        Ok(Err(e)) => ReplyHeader {
            flags: 0,
            status: e.raw(),
            id: hdr.id,
            opcode: 0,
        }
        .frame(0),
        Err(_) => {
            tracing::error!("session {}: internal error handling a call", s.session_id());
            ReplyHeader {
                flags: 0,
                status: 999,
                id: hdr.id,
                opcode: 0,
            }
            .frame(0)
        }
    };

    frame
}

/// Whether a call may wait for device work (then it must not run on the connection's task).
fn may_block(req: &Request) -> bool {
    matches!(
        req,
        Request::StreamSynchronize(_)
            | Request::CtxSynchronize(_)
            | Request::EventSynchronize(_)
            | Request::MemFree(_)
            | Request::ModuleLoad(_)
            | Request::MemcpyHtoD(_)
            | Request::MemcpyDtoH(_)
            | Request::MemcpyDtoD(_)
            | Request::MemcpyDtoHAsync(_)
            | Request::Memcpy2D(_)
            | Request::MemcpyHtoDShm(_)
            | Request::MemcpyDtoHShm(_)
            | Request::MemsetD8(_)
            | Request::MemsetD16(_)
            | Request::MemsetD32(_)
            | Request::MemsetD2D8(_)
            | Request::MemsetD2D16(_)
            | Request::MemsetD2D32(_)
    )
}

/// A small synchronous copy whose stream is idle completes at once: run it in place.
fn quick_copy(s: &dyn Backend, cx: &Cx, req: &Request) -> bool {
    let small = match req {
        Request::MemcpyDtoH(r) => r.byte_count <= 64 << 10,
        Request::MemcpyHtoD(r) => r.byte_count <= 64 << 10,
        _ => false,
    };
    small && s.stream_idle(cx, 0)
}

/// Calls that still work in a context with a sticky error (to inspect or tear it down).
fn sticky_exempt(req: &Request) -> bool {
    matches!(
        req,
        Request::Init(_)
            | Request::CtxDestroy(_)
            | Request::CtxInfo(_)
            | Request::DevicePrimaryCtxRelease(_)
            | Request::DevicePrimaryCtxReset(_)
            | Request::DevicePrimaryCtxRetain(_)
            | Request::DevicePrimaryCtxGetState(_)
            | Request::DevicePrimaryCtxHandle(_)
            | Request::DeviceSummary(_)
            | Request::DeviceGetCount(_)
            | Request::DeviceGet(_)
            | Request::DeviceGetAttribute(_)
            | Request::DeviceGetName(_)
    )
}

/// A client's connection: QUIC (any client), or the local Unix socket (clients on this machine).
enum Link {
    Quic {
        conn: quinn::Connection,
        send: quinn::SendStream,
        recv: quinn::RecvStream,
    },
    Unix(tokio::net::UnixStream),
}

impl Link {
    /// The handshake frame.
    async fn read_hello(&mut self) -> Result<Vec<u8>, String> {
        let max = 64 << 10;
        match self {
            Link::Quic { recv, .. } => transport::read_frame(recv, max)
                .await
                .map_err(|e| e.to_string()),
            Link::Unix(s) => read_local_frame(s, max)
                .await?
                .ok_or_else(|| "closed before the handshake".to_string()),
        }
    }

    async fn write(&mut self, f: &[u8]) -> Result<(), String> {
        use tokio::io::AsyncWriteExt;
        match self {
            Link::Quic { send, .. } => send.write_all(f).await.map_err(|e| e.to_string()),
            Link::Unix(s) => s.write_all(f).await.map_err(|e| e.to_string()),
        }
    }
}

async fn refuse(link: &mut Link, why: String) -> String {
    let f = wire::handshake_frame(
        kind::WELCOME,
        wire::PROTOCOL_VERSION,
        &HandshakeReply::Refused(why.clone()),
    );
    let _ = link.write(&f).await;
    match link {
        Link::Quic { send, .. } => {
            let _ = send.finish();
            // Give the refusal time to reach the client before the connection is dropped.
            let _ = tokio::time::timeout(Duration::from_secs(2), send.stopped()).await;
        }
        Link::Unix(s) => {
            use tokio::io::AsyncWriteExt;
            let _ = s.shutdown().await;
        }
    }
    why
}

/// Counts a session for as long as it lives.
struct SessionSlot(Arc<Live>);

impl Drop for SessionSlot {
    fn drop(&mut self) {
        self.0.sessions.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn serve_connection(
    inc: quinn::Incoming,
    devices: Devices,
    cfg: Arc<ServerConfig>,
    live: Arc<Live>,
) -> Result<(), String> {
    let remote = inc.remote_address();
    let conn = inc.await.map_err(|e| format!("handshake failed: {e}"))?;
    let (send, recv) = tokio::time::timeout(Duration::from_secs(10), conn.accept_bi())
        .await
        .map_err(|_| "no stream opened".to_string())?
        .map_err(|e| e.to_string())?;
    let link = Link::Quic { conn, send, recv };
    let local = remote.ip().is_loopback();
    serve_link(link, remote.to_string(), local, None, devices, cfg, live).await
}

/// Serves a client on the local Unix socket.
async fn serve_local(
    stream: tokio::net::UnixStream,
    devices: Devices,
    cfg: Arc<ServerConfig>,
    live: Arc<Live>,
) -> Result<(), String> {
    // The kernel vouches for the peer's process id.
    let pid = stream
        .peer_cred()
        .ok()
        .and_then(|c| c.pid())
        .map(|p| p as u32);
    let remote = format!("local socket (pid {})", pid.unwrap_or(0));
    let link = Link::Unix(stream);
    tokio::time::timeout(
        Duration::from_secs(3600 * 24 * 365),
        serve_link(link, remote, true, pid, devices, cfg, live),
    )
    .await
    .unwrap_or_else(|_| Err("session too old".into()))
}

/// Handshake, session and calls on one client connection. `peer_pid`: the client's process id
/// when the kernel told us (local socket).
async fn serve_link(
    mut link: Link,
    remote: String,
    local: bool,
    peer_pid: Option<u32>,
    devices: Devices,
    cfg: Arc<ServerConfig>,
    live: Arc<Live>,
) -> Result<(), String> {
    let p = tokio::time::timeout(Duration::from_secs(10), link.read_hello())
        .await
        .map_err(|_| "no handshake within 10 s".to_string())??;
    let (version, body) = match wire::parse_handshake(kind::HELLO, &p) {
        Ok(v) => v,
        Err(e) => {
            let why = refuse(&mut link, format!("malformed handshake: {e}")).await;
            tracing::warn!("refused {remote}: {why}");
            return Err(why);
        }
    };
    if version != wire::PROTOCOL_VERSION {
        let why = refuse(
            &mut link,
            format!(
                "protocol version mismatch: server speaks {}, client speaks {version}; use the same rgpu release on both sides",
                wire::PROTOCOL_VERSION
            ),
        )
        .await;
        tracing::warn!("refused {remote}: {why}");
        return Err(why);
    }
    let hello: Hello = match wire::body_from(body) {
        Ok(h) => h,
        Err(e) => {
            let why = refuse(&mut link, format!("malformed handshake: {e}")).await;
            tracing::warn!("refused {remote}: {why}");
            return Err(why);
        }
    };
    if hello.spec_hash != SPEC_HASH {
        let why = refuse(&mut link, format!("API declaration mismatch (client {:#x}, server {SPEC_HASH:#x}): client and server come from different rgpu builds", hello.spec_hash)).await;
        tracing::warn!("refused {remote}: {why}");
        return Err(why);
    }
    if !cfg.insecure
        && !accepted_tokens(&cfg)
            .iter()
            .any(|t| constant_time_eq(t.as_bytes(), hello.token.as_bytes()))
    {
        let why = refuse(&mut link, "invalid access token".into()).await;
        tracing::warn!(
            "refused {remote} (pid {} on {}): invalid access token",
            hello.pid,
            hello.host
        );
        return Err(why);
    }
    if let Some(r) = hello.resume.clone() {
        return take_up(link, r, &remote, &live).await;
    }
    if live.sessions.fetch_add(1, Ordering::SeqCst) >= cfg.max_sessions {
        live.sessions.fetch_sub(1, Ordering::SeqCst);
        let why = refuse(
            &mut link,
            format!(
                "the server is at its limit of {} sessions; try again later",
                cfg.max_sessions
            ),
        )
        .await;
        tracing::warn!("refused {remote}: {why}");
        return Err(why);
    }
    let _slot = SessionSlot(live.clone());
    let sid = SESSIONS.fetch_add(1, Ordering::Relaxed);
    let visible = match hello.visible_devices.as_deref() {
        None => devices.default_visible(),
        v => crate::placement::visible_indices(v, &devices.uuids()),
    };
    let chosen = match devices.select(&visible) {
        Ok(c) => c,
        Err(why) => {
            let why = refuse(&mut link, why).await;
            tracing::warn!("refused {remote}: {why}");
            return Err(why);
        }
    };
    // A pool server serves allocations only (fencing).
    let mut pool_quota = None;
    if let Some(pc) = &cfg.pool {
        let checked = match (&hello.allocation, live.pool_client(pc).await) {
            (None, _) => Err(
                "this server belongs to a pool: allocate its devices with `rgpu run --registry …`"
                    .to_string(),
            ),
            (Some(_), None) => {
                Err("the pool registry is unreachable; new sessions cannot be checked".to_string())
            }
            (Some(a), Some(mut c)) => {
                crate::pool::check_allocation(&mut c, a, &pc.id, &visible).await
            }
        };
        match checked {
            Ok(rec) => pool_quota = rec.memory_quota,
            Err(why) => {
                let why = refuse(&mut link, why).await;
                tracing::warn!("refused {remote}: {why}");
                return Err(why);
            }
        }
    }
    let claim = live
        .placement
        .claim(
            sid,
            &visible,
            |d| cfg.exclusive.contains(d),
            cfg.exclusive_wait,
        )
        .await;
    let (_claim, loads) = match claim {
        Ok(c) => c,
        Err(why) => {
            let why = refuse(&mut link, why).await;
            tracing::warn!("refused {remote}: {why}");
            return Err(why);
        }
    };
    let spec = SessionSpec {
        id: sid,
        quota: match (cfg.session_memory, pool_quota) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        },
        local,
        max_frame: cfg.max_frame,
        devices: visible,
        limits: cfg.limits,
        compress: hello.compress,
        namespace: hello.namespace,
    };
    let who = format!("client pid {} on {} from {remote}", hello.pid, hello.host);
    // On the local socket, a duplicate of the socket lets the server end the session from
    // outside (client process gone, shutdown) whoever serves it.
    let unix_fd = match &link {
        Link::Unix(s) => Some(Arc::new(
            dup_fd(s.as_raw_fd()).map_err(|e| format!("session {sid}: {e}"))?,
        )),
        Link::Quic { .. } => None,
    };
    let _registered = unix_fd
        .clone()
        .map(|fd| TableEntry::new(&live, |l| &l.local, sid, fd));
    // A client process on this machine is watched directly: when it dies (even by SIGKILL) its
    // session ends at once instead of after the idle timeout.
    let gone = Arc::new(tokio::sync::Notify::new());
    let _watch = match (&link, &unix_fd) {
        (Link::Quic { conn, .. }, _) if local && hello.host == this_host() => {
            let (conn, gone) = (conn.clone(), gone.clone());
            Some(watch_client(hello.pid, sid, move || {
                conn.close(5u32.into(), b"client process exited");
                gone.notify_one();
            }))
        }
        (Link::Unix(_), Some(fd)) => {
            let fd = fd.clone();
            peer_pid.map(|pid| watch_client(pid, sid, move || shut(&fd)))
        }
        _ => None,
    };
    let (reattach_tx, reattach_rx) = tokio::sync::mpsc::unbounded_channel();
    let (lanes_tx, lanes_rx) = tokio::sync::mpsc::unbounded_channel();
    // QUIC sessions get a secret: for bulk lanes, and for resuming when the window is not zero.
    let resumable = matches!(link, Link::Quic { .. });
    let secret = if resumable {
        transport::random_token()
    } else {
        String::new()
    };
    let doors = crate::resume::Doors {
        resume: reattach_tx,
        lanes: lanes_tx,
    };
    let _registered = resumable
        .then(|| crate::resume::Registered::new(&live.resumable, sid, secret.clone(), doors));
    let mut qs = QuicSession {
        info: SessionInfo {
            sid,
            cfg: cfg.clone(),
            secret: secret.clone(),
            driver_version: 0,
        },
        waits: crate::resume::Waits {
            reattach: reattach_rx,
            gone: gone.clone(),
            closing: live.closing.subscribe(),
        },
        lanes: Some(lanes_rx),
    };
    let _fenced = match (&cfg.pool, &hello.allocation) {
        (Some(_), Some(alloc)) => {
            let end: Ender = match (&link, &unix_fd) {
                (Link::Quic { conn, .. }, _) => {
                    let (conn, gone) = (conn.clone(), gone.clone());
                    Arc::new(move || {
                        conn.close(CLOSE_RELEASED.into(), b"allocation released");
                        gone.notify_one();
                    })
                }
                (_, Some(fd)) => {
                    let fd = fd.clone();
                    Arc::new(move || shut(&fd))
                }
                _ => Arc::new(|| {}),
            };
            Some(TableEntry::new(
                &live,
                |l| &l.fenced,
                sid,
                (alloc.clone(), end),
            ))
        }
        _ => None,
    };
    if cfg.isolation_for(&devices) == Isolation::Process {
        let Some(exe) = cfg.worker_exe.clone() else {
            let why = refuse(
                &mut link,
                "the server has no worker program configured".into(),
            )
            .await;
            return Err(why);
        };
        // A local client's socket goes to the worker, which serves it directly.
        let client_fd = unix_fd.as_deref();
        let worker = crate::worker::Worker::spawn(&exe, &cfg, &chosen, &spec, client_fd).await;
        let worker = match worker {
            Ok(w) => w,
            Err(e) => {
                let why = refuse(&mut link, format!("cannot start a session: {e}")).await;
                tracing::warn!("refused {remote}: {why}");
                return Err(why);
            }
        };
        let pid = worker.pid();
        let lock = || live.workers.lock().unwrap_or_else(|e| e.into_inner());
        lock().push(pid);
        qs.info.driver_version = worker.driver_version;
        if let Err(e) = welcome(&mut link, &qs.info, loads, None).await {
            lock().retain(|&p| p != pid);
            return Err(e);
        }
        tracing::info!("session {sid}: {who} (worker pid {pid})");
        let r = match link {
            Link::Quic { conn, send, recv } => {
                let (process, to_worker, from_worker) = worker.bridge(cfg.max_frame);
                let mut pump = crate::resume::Pump::new(to_worker, from_worker, cfg.max_frame);
                let (end, conn) = quic_session(&mut pump, &mut qs, (conn, send, recv)).await;
                drop(pump);
                process.finish(conn, end).await
            }
            // The worker serves the socket itself; ours is dropped so that the client sees the
            // end of the connection when the worker ends.
            Link::Unix(s) => {
                drop(s);
                let r = worker.wait().await;
                if let Some(fd) = &unix_fd {
                    shut(fd);
                }
                r
            }
        };
        lock().retain(|&p| p != pid);
        return r;
    }
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Vec<u8>>();
    let (session, driver_version) = match new_session(&chosen, &spec, notify_to(tx.clone())) {
        Ok(v) => v,
        Err(e) => {
            let why = refuse(&mut link, e).await;
            return Err(why);
        }
    };
    qs.info.driver_version = driver_version;
    welcome(&mut link, &qs.info, loads, None).await?;
    tracing::info!("session {sid}: {who}");
    match link {
        Link::Quic { conn, send, recv } => {
            let (to_session, from_client) = tokio::sync::mpsc::unbounded_channel();
            let calls = tokio::spawn(serve_calls(
                session,
                sid,
                Frames::Chan(from_client),
                tx,
                cfg.max_frame,
                spec.compress,
            ));
            let mut pump = crate::resume::Pump::new(to_session, rx, cfg.max_frame);
            let (end, conn) = quic_session(&mut pump, &mut qs, (conn, send, recv)).await;
            // Dropping the pump ends the session's frames: it releases its resources.
            drop(pump);
            let result = calls
                .await
                .unwrap_or_else(|e| Err(format!("session {sid}: {e}")));
            let result = match (result, end) {
                (Err(e), _) | (Ok(()), crate::resume::End::Malformed(e)) => Err(e),
                (Ok(()), _) => Ok(()),
            };
            if let Err(e) = &result {
                tracing::warn!("{e}; closing the connection");
                conn.close(2u32.into(), b"protocol error");
            }
            result
        }
        Link::Unix(s) => {
            let (r, w) = s.into_split();
            let writer = tokio::spawn(write_frames(rx, w));
            let result = serve_calls(
                session,
                sid,
                Frames::local(r),
                tx,
                cfg.max_frame,
                spec.compress,
            )
            .await;
            finish_writer(sid, writer).await;
            if let Err(e) = &result {
                tracing::warn!("{e}; closing the connection");
                if let Some(fd) = &unix_fd {
                    shut(fd);
                }
            }
            result
        }
    }
}

/// What a WELCOME frame says about a session.
#[derive(Clone)]
pub(crate) struct SessionInfo {
    sid: u64,
    cfg: Arc<ServerConfig>,
    /// The client's proof when it comes back (empty: no resuming).
    secret: String,
    driver_version: i32,
}

/// What a QUIC session needs to outlive a lost connection.
pub(crate) struct QuicSession {
    info: SessionInfo,
    waits: crate::resume::Waits,
    /// Bulk lanes the client opens.
    lanes: Option<tokio::sync::mpsc::UnboundedReceiver<crate::resume::Reattach>>,
}

/// Runs a QUIC session's traffic over its connections until the last one ends.
async fn quic_session(
    pump: &mut crate::resume::Pump,
    qs: &mut QuicSession,
    link: (quinn::Connection, quinn::SendStream, quinn::RecvStream),
) -> (crate::resume::End, quinn::Connection) {
    let info = qs.info.clone();
    let _lanes = qs.lanes.take().map(|doors| {
        AbortOnDrop(tokio::spawn(crate::resume::accept_lanes(
            doors,
            pump.lane_ctx(),
            info.sid,
            Arc::new(welcome_frame(&info, Vec::new(), None)),
        )))
    });
    let window = if info.secret.is_empty() {
        Duration::ZERO
    } else {
        info.cfg.resume_window
    };
    crate::resume::drive(pump, info.sid, link, &mut qs.waits, window, |resumed| {
        welcome_frame(&info, Vec::new(), Some(resumed))
    })
    .await
}

/// One of the server's per-session tables (local sockets, fenced pool sessions).
type Table<V> = std::sync::Mutex<HashMap<u64, V>>;

/// A session's entry in one of the server's tables, removed when dropped.
struct TableEntry<V: 'static> {
    live: Arc<Live>,
    sid: u64,
    table: fn(&Live) -> &Table<V>,
}

impl<V: 'static> TableEntry<V> {
    fn new(live: &Arc<Live>, table: fn(&Live) -> &Table<V>, sid: u64, v: V) -> Self {
        table(live)
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(sid, v);
        TableEntry {
            live: live.clone(),
            sid,
            table,
        }
    }
}

impl<V: 'static> Drop for TableEntry<V> {
    fn drop(&mut self) {
        (self.table)(&self.live)
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.sid);
    }
}

/// A new descriptor for the socket behind `fd` (close-on-exec).
fn dup_fd(fd: std::os::fd::RawFd) -> std::io::Result<OwnedFd> {
    // SAFETY: fcntl(F_DUPFD_CLOEXEC) returns a new descriptor that nothing else owns, or -1.
    let n = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `n` is a fresh descriptor owned by nothing else.
    Ok(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(n) })
}

fn this_host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// Aborts its task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs `on_exit` when process `pid` of this machine exits (through a pidfd; nothing is watched
/// where pidfds are unavailable).
fn watch_client(pid: u32, sid: u64, on_exit: impl FnOnce() + Send + 'static) -> AbortOnDrop {
    AbortOnDrop(tokio::spawn(async move {
        // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
        if fd < 0 {
            return;
        }
        // SAFETY: a fresh descriptor owned by nothing else.
        let fd =
            unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd as i32) };
        // SAFETY: the descriptor is owned by the AsyncFd for its whole life and never closed
        // behind its back.
        let Ok(afd) = (unsafe { tokio::io::unix::AsyncFd::register(fd) }) else {
            return;
        };
        if afd.readable().await.is_ok() {
            tracing::info!("session {sid}: client process {pid} exited; ending its session");
            on_exit();
        }
    }))
}

/// What a new session needs to know.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SessionSpec {
    /// Session id.
    pub id: u64,
    /// Device memory it may hold.
    pub quota: Option<u64>,
    /// Whether the client is on this machine (shared-memory bulk path).
    pub local: bool,
    /// Largest accepted frame.
    pub max_frame: u32,
    /// The server's devices this session sees (indices into the server's list, in order).
    pub devices: Vec<usize>,
    /// Limits on streams, events and modules.
    pub limits: crate::session::Limits,
    /// Compress large reply bodies (the client asked for it).
    pub compress: bool,
    /// The client's number for this server (`Hello::namespace`).
    pub namespace: u8,
}

/// A notify callback that sends output frames into `tx`.
pub(crate) fn notify_to(tx: tokio::sync::mpsc::UnboundedSender<Vec<u8>>) -> crate::session::Notify {
    Arc::new(move |stream, data| {
        let _ = tx.send(wire::output_frame(stream, &data));
    })
}

/// Creates the session for `spec` on `devices` (those it sees, of one kind): (session, driver
/// version to report).
pub(crate) fn new_session(
    devices: &Devices,
    spec: &SessionSpec,
    notify: crate::session::Notify,
) -> Result<(Arc<dyn Backend>, i32), String> {
    Ok(match devices {
        Devices::Cpu(d) => {
            let s = Session::with_notify(spec.id, d.clone(), notify);
            s.set_namespace(spec.namespace);
            s.set_memory_quota(spec.quota);
            s.set_limits(spec.limits);
            s.set_local(spec.local);
            (Arc::new(s), crate::session::DRIVER_VERSION)
        }
        Devices::Gpu(ords) => {
            let s = GpuSession::new(spec.id, ords, notify)
                .map_err(|e| format!("the server's GPUs are unavailable: {e}"))?;
            s.set_namespace(spec.namespace);
            s.set_memory_quota(spec.quota);
            s.set_limits(spec.limits);
            s.set_local(spec.local);
            let v = s.driver_version();
            (Arc::new(s), v)
        }
        Devices::Mixed { .. } => return Err("a session uses GPUs or CPU devices, not both".into()),
    })
}

/// The WELCOME frame for `qs`'s session (`resumed`: a connection taking it up again).
fn welcome_frame(
    qs: &SessionInfo,
    devices: Vec<wire::DeviceLoad>,
    resumed: Option<wire::Resumed>,
) -> Vec<u8> {
    let w = Welcome {
        fingerprint: qs.cfg.seed.clone(),
        session: qs.sid,
        server_version: rgpu_protocol::VERSION.into(),
        driver_version: qs.driver_version,
        devices,
        resume_secret: qs.secret.clone(),
        resume_window_ms: qs.cfg.resume_window.as_millis() as u64,
        resumed,
    };
    wire::handshake_frame(
        kind::WELCOME,
        wire::PROTOCOL_VERSION,
        &HandshakeReply::Welcome(w),
    )
}

async fn welcome(
    link: &mut Link,
    qs: &SessionInfo,
    devices: Vec<wire::DeviceLoad>,
    resumed: Option<wire::Resumed>,
) -> Result<(), String> {
    link.write(&welcome_frame(qs, devices, resumed)).await
}

/// A connection that claims an existing session (`Hello.resume`): handed to that session, or
/// refused when the session is gone or the secret is wrong.
async fn take_up(mut link: Link, r: wire::Resume, remote: &str, live: &Live) -> Result<(), String> {
    let Link::Quic { conn, send, recv } = link else {
        return Err(refuse(&mut link, "sessions are resumed over QUIC only".into()).await);
    };
    let re = crate::resume::Reattach {
        conn,
        send,
        recv,
        waiting: r.waiting,
        lane: r.lane,
    };
    match live.resumable.reattach(r.session, &r.secret, re) {
        Ok(()) => {
            tracing::info!("{remote} takes up session {}", r.session);
            Ok(())
        }
        Err(re) => {
            let mut link = Link::Quic {
                conn: re.conn,
                send: re.send,
                recv: re.recv,
            };
            let why = format!(
                "{}session {} cannot be resumed: it has ended (its resume window passed, or the server restarted)",
                wire::REFUSED_RESUME,
                r.session
            );
            Err(refuse(&mut link, why).await)
        }
    }
}

/// Writes queued frames until every sender is gone or the peer stops reading.
pub(crate) async fn write_frames<W: tokio::io::AsyncWrite + Unpin>(
    mut rx: tokio::sync::mpsc::UnboundedReceiver<Vec<u8>>,
    mut send: W,
) {
    use tokio::io::AsyncWriteExt;
    while let Some(f) = rx.recv().await {
        if send.write_all(&f).await.is_err() {
            break;
        }
    }
    let _ = send.shutdown().await;
}

/// Where a session's call frames come from.
pub(crate) enum Frames {
    /// Frames a QUIC client sent, through the session's [`crate::resume::Pump`].
    Chan(tokio::sync::mpsc::UnboundedReceiver<crate::resume::Inbound>),
    /// A local socket: the client's, or the supervisor's (a session worker).
    Local(tokio::io::BufReader<tokio::net::unix::OwnedReadHalf>),
}

impl Frames {
    /// Frames from a local socket, read in large pieces (pipelined calls arrive in batches).
    pub(crate) fn local(r: tokio::net::unix::OwnedReadHalf) -> Self {
        Frames::Local(tokio::io::BufReader::with_capacity(256 << 10, r))
    }

    /// The next frame; `Ok(None)` when the peer closed cleanly.
    async fn next(&mut self, max: u32) -> Result<Option<Vec<u8>>, String> {
        match self {
            // The pump checked the size; the frame's share of the budget is returned here.
            Frames::Chan(r) => Ok(r.recv().await.map(|(p, _permit)| p)),
            Frames::Local(r) => read_local_frame(r, max).await,
        }
    }
}

/// Reads one length-prefixed frame from a local socket; `Ok(None)` at a clean end.
pub(crate) async fn read_local_frame<R: tokio::io::AsyncRead + Unpin>(
    r: &mut R,
    max: u32,
) -> Result<Option<Vec<u8>>, String> {
    use tokio::io::AsyncReadExt;
    let mut len = [0u8; 4];
    match r.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.to_string()),
    }
    let n = wire::check_len(u32::from_le_bytes(len), max).map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; n];
    r.read_exact(&mut buf).await.map_err(|e| e.to_string())?;
    Ok(Some(buf))
}

/// Runs calls from `frames` on `session` until the peer closes (Ok) or sends garbage (Err),
/// then releases the session and lets `writer` flush the last replies.
pub(crate) async fn serve_calls(
    session: Arc<dyn Backend>,
    sid: u64,
    mut frames: Frames,
    tx: tokio::sync::mpsc::UnboundedSender<Vec<u8>>,
    max_frame: u32,
    compress: bool,
) -> Result<(), String> {
    let result = loop {
        let p = match frames.next(max_frame).await {
            Ok(Some(p)) => p,
            Ok(None) => break Ok(()),
            Err(e) => break Err(format!("session {sid}: {e}")),
        };
        if p.first() == Some(&kind::PING) {
            let _ = tx.send(vec![1, 0, 0, 0, kind::PONG]);
            continue;
        }
        let (hdr, body) = match CallHeader::parse(&p) {
            Ok(v) => v,
            Err(e) => break Err(format!("session {sid}: malformed frame: {e}")),
        };
        let body = match wire::body(hdr.flags, body, max_frame) {
            Ok(b) => b,
            Err(e) => break Err(format!("session {sid}: malformed frame: {e}")),
        };
        let req = match Request::decode(hdr.opcode, &body) {
            Ok(r) => r,
            Err(e) => {
                break Err(format!(
                    "session {sid}: malformed call (opcode {}): {e}",
                    hdr.opcode
                ))
            }
        };
        let cx = Cx {
            thread: hdr.thread,
            ctx: hdr.ctx,
            per_thread: hdr.flags & wire::flags::PER_THREAD_STREAM != 0,
        };
        if hdr.flags & wire::flags::NO_REPLY != 0 {
            // Pipelined calls only queue work, so they run right here, in arrival order: any call
            // that arrives later (from any client thread) sees their effects. A failure is kept
            // and reported by the thread's next call that waits for a reply.
            let s = session.clone();
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                if s.sticky_error(cx.ctx).is_some() {
                    // The context already failed; its next waiting call reports that.
                    return Ok(());
                }
                dispatch(&*s, &cx, req).map(|_| ())
            }));
            match r {
                Ok(Ok(())) => {}
                Ok(Err(e)) => s.defer_error(cx.thread, e),
                Err(_) => s.defer_error(cx.thread, rgpu_protocol::error::CuError::UNKNOWN),
            }
            continue;
        }
        // Calls that cannot block run right here (no thread hand-off: latency of small calls);
        // anything that may wait for device work runs on the blocking pool.
        let quick = !may_block(&req) || quick_copy(&*session, &cx, &req);
        if quick {
            let frame = answer(&*session, hdr, cx, req, compress);
            let _ = tx.send(frame);
            continue;
        }
        let (s, tx) = (session.clone(), tx.clone());
        tokio::task::spawn_blocking(move || {
            let frame = answer(&*s, hdr, cx, req, compress);
            let _ = tx.send(frame);
        });
    };
    drop(tx);
    // Release the session first: it holds a sender of the writer's channel (kernel output), so
    // the writer only finishes once the session (and any call still running on it) is gone.
    tracing::info!("session {sid} ended; releasing its resources");
    drop(session);
    result
}

/// Waits (bounded) for a session's writer to send its last frames.
pub(crate) async fn finish_writer(sid: u64, writer: tokio::task::JoinHandle<()>) {
    if tokio::time::timeout(Duration::from_secs(5), writer)
        .await
        .is_err()
    {
        tracing::warn!("session {sid}: writer did not finish after the session ended");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mixed() -> Devices {
        let cpus: Vec<Arc<dyn Device>> = (0..2)
            .map(|i| Arc::new(CpuDevice::new(i, 1 << 20, "seed")) as Arc<dyn Device>)
            .collect();
        Devices::Mixed {
            gpus: vec![0, 1],
            cpus: Arc::new(cpus),
        }
    }

    #[test]
    fn gpus_and_cpu_devices_side_by_side_one_kind_per_session() {
        let d = mixed();
        assert_eq!((d.len(), d.kind()), (4, "gpu+cpu"));
        // Without RGPU_VISIBLE_DEVICES a client gets the GPUs only.
        assert_eq!(d.default_visible(), vec![0, 1]);
        match d.select(&[1, 0]).unwrap() {
            Devices::Gpu(g) => assert_eq!(g, vec![1, 0]),
            _ => panic!("expected GPUs"),
        }
        // CPU devices when asked for, keeping their identities.
        match d.select(&[3]).unwrap() {
            Devices::Cpu(c) => {
                assert_eq!(c.len(), 1);
                assert_eq!(c[0].ordinal(), 1);
                assert_eq!(c[0].uuid(), d.uuids()[3]);
            }
            _ => panic!("expected a CPU device"),
        }
        // Both kinds in one session are refused with the reason.
        let e = d.select(&[0, 2]).err().unwrap();
        assert!(e.contains("one kind"), "{e}");
    }
}
