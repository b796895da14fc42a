//! The `rgpu` command: `rgpu server`, `rgpu run -- PROGRAM`, `rgpu devices`.

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use rgpu_protocol::client::{Client, ClientConfig};
use rgpu_protocol::connfile::ConnectionFile;
use rgpu_protocol::messages::*;
use rgpu_protocol::wire::CallHeader;
use rgpu_server::server::{self, DeviceKind, ServerConfig};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "rgpu",
    version,
    about = "Run CUDA programs on remote GPUs (or the built-in CPU device)"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(clap::Args, Clone)]
struct DeviceArgs {
    /// Device backend.
    #[arg(long, value_enum, default_value = "auto", env = "RGPU_DEVICE")]
    device: DeviceKind,
    /// Number of CPU devices to offer.
    #[arg(long, default_value_t = 1)]
    cpu_devices: u32,
    /// Memory of each CPU device, e.g. 4G, 512M.
    #[arg(long, default_value = "4G", value_parser = parse_size)]
    cpu_memory: u64,
    /// NVIDIA driver library to load for GPUs (default: search LD_LIBRARY_PATH and the usual
    /// system directories for libcuda.so.1; the rgpu shim is never taken).
    #[arg(long, env = "RGPU_CUDA_DRIVER")]
    cuda_driver: Option<PathBuf>,
    /// Where sessions run: `process` (one worker process per client: crashes, sticky GPU errors
    /// and leaks stay there) or `thread` (inside the server). Default: process on GPUs, thread
    /// on the CPU device.
    #[arg(long, value_enum, env = "RGPU_ISOLATION")]
    isolation: Option<server::Isolation>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Serve devices to rgpu clients.
    Server {
        /// UDP address to listen on.
        #[arg(long, default_value = "127.0.0.1:7600", env = "RGPU_LISTEN")]
        listen: SocketAddr,
        /// Directory for the key pair, certificate, tokens and connection file.
        #[arg(long, env = "RGPU_STATE_DIR")]
        state_dir: Option<PathBuf>,
        /// Where to write the connection file (default: STATE_DIR/connection.json).
        #[arg(long)]
        connection_file: Option<PathBuf>,
        /// Accept clients without token or certificate pinning. Only for trusted, isolated networks.
        #[arg(long)]
        insecure: bool,
        /// Unix socket for clients on this machine, which then skip QUIC and TLS (owner-only;
        /// tokens and the pinned certificate are still checked). Default: STATE_DIR/rgpu.sock.
        #[arg(long, env = "RGPU_LOCAL_SOCKET")]
        local_socket: Option<PathBuf>,
        /// Offer no local socket: every client uses QUIC.
        #[arg(long, conflicts_with = "local_socket")]
        no_local_socket: bool,
        /// Seconds a session whose QUIC connection was lost (network blip) waits for its client
        /// to reconnect and take it up again; 0 ends sessions with their connection.
        #[arg(long, default_value_t = 30.0)]
        resume_window: f64,
        /// Seconds of silence after which a client counts as dead and its resources are released.
        #[arg(long, default_value_t = 3.0)]
        idle_timeout: f64,
        /// Most client sessions at once.
        #[arg(long, default_value_t = 256)]
        max_sessions: usize,
        /// Device memory one session may hold, e.g. 2G (default: no limit).
        #[arg(long, value_parser = parse_size)]
        session_memory: Option<u64>,
        /// Streams one session may have at once.
        #[arg(long, default_value_t = 4096)]
        max_streams: usize,
        /// Events one session may have at once.
        #[arg(long, default_value_t = 65536)]
        max_events: usize,
        /// Modules (and libraries) one session may have loaded at once.
        #[arg(long, default_value_t = 4096)]
        max_modules: usize,
        /// Bytes of asynchronous host-to-device copies one session may have queued; past it the
        /// session waits for its streams (back-pressure), e.g. 256M.
        #[arg(long, default_value = "256M", value_parser = parse_size)]
        max_inflight: u64,
        /// Devices that serve one session at a time: `all`, `none`, or indices such as `0,2`.
        #[arg(long, default_value = "none", env = "RGPU_EXCLUSIVE")]
        exclusive: server::Exclusive,
        /// Seconds a client waits for an exclusive device in use before it is refused
        /// (the program then gets CUDA_ERROR_DEVICE_UNAVAILABLE).
        #[arg(long, default_value_t = 0.0)]
        exclusive_wait: f64,
        /// On SIGTERM/Ctrl-C, seconds open sessions get to finish before they are closed.
        #[arg(long, default_value_t = 10.0)]
        shutdown_grace: f64,
        /// Join a pool: register this server and its devices in etcd
        /// (etcd://[USER:PASSWORD@]HOST:PORT[,HOST:PORT…]) and serve pool allocations only.
        #[arg(long, env = "RGPU_REGISTRY")]
        registry: Option<rgpu_server::pool::RegistryUrl>,
        /// host:port clients of the pool reach this server at (default: --listen).
        #[arg(long)]
        advertise: Option<String>,
        /// This server's id in the pool (default: HOSTNAME-PORT).
        #[arg(long)]
        server_id: Option<String>,
        /// Seconds the registration outlives this server (its lease's time to live).
        #[arg(long, default_value_t = 5)]
        registry_ttl: i64,
        #[command(flatten)]
        dev: DeviceArgs,
    },
    /// Run a program with the rgpu shim in place of libcuda. Without a connection file, an
    /// embedded local server runs for the program's lifetime.
    Run {
        /// Connection file of the server to use, or a set of servers (`{"servers": [connection
        /// file, …]}`) whose devices the program sees together, the first server's first.
        #[arg(long, env = "RGPU_CONNECTION_FILE")]
        connection_file: Option<PathBuf>,
        #[command(flatten)]
        dev: DeviceArgs,
        #[command(flatten)]
        alloc: AllocArgs,
        /// The program and its arguments.
        #[arg(trailing_var_arg = true, required = true, num_args = 1..)]
        program: Vec<String>,
    },
    /// Show a pool: servers, devices, memory, load and allocations.
    Status {
        /// The pool's registry.
        #[arg(long, env = "RGPU_REGISTRY")]
        registry: rgpu_server::pool::RegistryUrl,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// End an allocation of a pool (its servers end its sessions).
    Release {
        /// The pool's registry.
        #[arg(long, env = "RGPU_REGISTRY")]
        registry: rgpu_server::pool::RegistryUrl,
        /// The allocation id (from `rgpu status`).
        allocation: String,
    },
    /// Set (or remove) what one user may hold in a pool at once.
    Quota {
        /// The pool's registry.
        #[arg(long, env = "RGPU_REGISTRY")]
        registry: rgpu_server::pool::RegistryUrl,
        /// The user (as `rgpu run` reports it: $USER).
        user: String,
        /// Most devices at once.
        #[arg(long)]
        gpus: Option<u32>,
        /// Most total device memory at once, e.g. 64G.
        #[arg(long, value_parser = parse_size)]
        memory: Option<u64>,
        /// Remove the user's quota.
        #[arg(long, conflicts_with_all = ["gpus", "memory"])]
        remove: bool,
    },
    /// Runs one client session for `rgpu server` (started by the server, not by hand).
    #[command(hide = true)]
    Worker,
    /// List the devices a server offers.
    Devices {
        /// Connection file of the server.
        #[arg(long, env = "RGPU_CONNECTION_FILE")]
        connection_file: Option<PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Allocating devices from a pool (`rgpu run --registry`).
#[derive(clap::Args)]
struct AllocArgs {
    /// Allocate the devices from this pool (etcd://HOST:PORT) instead of using a connection file.
    #[arg(long, env = "RGPU_REGISTRY", conflicts_with = "connection_file")]
    registry: Option<rgpu_server::pool::RegistryUrl>,
    /// Number of devices; the program sees them as devices 0..N-1. They come from one server
    /// when one has them all, else from several (see --same-server).
    #[arg(long, default_value_t = 1)]
    gpus: usize,
    /// Take all devices from one server or none (peer access, no copies staged between servers).
    #[arg(long)]
    same_server: bool,
    /// Hold the devices alone: the default, stated explicitly.
    #[arg(long, conflicts_with = "shared")]
    exclusive: bool,
    /// Share the devices with other shared allocations (idle devices first); devices of servers
    /// that serve one session at a time are still held alone.
    #[arg(long)]
    shared: bool,
    /// Least memory of each device, e.g. 16G.
    #[arg(long, value_parser = parse_size)]
    min_memory: Option<u64>,
    /// Least compute capability, e.g. 8.0.
    #[arg(long)]
    min_cc: Option<String>,
    /// Prefer the devices with the most free memory (default: the best fit, keeping large
    /// devices free).
    #[arg(long)]
    spread: bool,
    /// Device memory the program may hold on each server, e.g. 8G (enforced by the server).
    #[arg(long, value_parser = parse_size)]
    memory_quota: Option<u64>,
    /// Seconds to wait for devices to become free (default: fail at once).
    #[arg(long, default_value_t = 0.0)]
    wait: f64,
    /// Seconds the allocation outlives this process if it dies without releasing it.
    #[arg(long, default_value_t = 5)]
    lease_ttl: i64,
}

fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, mul) = match s.chars().last() {
        Some('K' | 'k') => (&s[..s.len() - 1], 1u64 << 10),
        Some('M' | 'm') => (&s[..s.len() - 1], 1 << 20),
        Some('G' | 'g') => (&s[..s.len() - 1], 1 << 30),
        Some('T' | 't') => (&s[..s.len() - 1], 1 << 40),
        _ => (s, 1),
    };
    num.parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mul))
        .filter(|&n| n > 0)
        .ok_or_else(|| format!("invalid size `{s}` (examples: 4G, 512M)"))
}

fn default_state_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("XDG_STATE_HOME") {
        return PathBuf::from(d).join("rgpu");
    }
    if let Some(h) = std::env::var_os("HOME") {
        return PathBuf::from(h).join(".local/state/rgpu");
    }
    PathBuf::from("/var/lib/rgpu")
}

fn main() {
    // `rgpu run` shares the program's terminal: only warnings unless asked for more.
    let is_run = std::env::args().nth(1).as_deref() == Some("run");
    let default = if is_run { "warn" } else { "info" };
    let filter = std::env::var("RGPU_LOG").unwrap_or_else(|_| default.into());
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let code = match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("rgpu: {e:#}");
            1
        }
    };
    std::process::exit(code);
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn server_config(state_dir: PathBuf, dev: &DeviceArgs) -> ServerConfig {
    let mut cfg = ServerConfig::new(state_dir);
    cfg.device = dev.device;
    cfg.cpu_devices = dev.cpu_devices;
    cfg.cpu_memory = dev.cpu_memory;
    cfg.cuda_driver = dev.cuda_driver.clone();
    cfg.isolation = dev.isolation;
    cfg.worker_exe = std::env::current_exe().ok();
    cfg
}

fn run(cli: Cli) -> Result<i32> {
    match cli.cmd {
        Cmd::Server {
            listen,
            state_dir,
            connection_file,
            insecure,
            local_socket,
            no_local_socket,
            resume_window,
            registry,
            advertise,
            server_id,
            registry_ttl,
            idle_timeout,
            max_sessions,
            session_memory,
            exclusive,
            exclusive_wait,
            max_streams,
            max_events,
            max_modules,
            max_inflight,
            shutdown_grace,
            dev,
        } => {
            let mut cfg = server_config(state_dir.unwrap_or_else(default_state_dir), &dev);
            cfg.listen = listen;
            cfg.connection_file = connection_file;
            cfg.resume_window = Duration::from_secs_f64(resume_window.clamp(0.0, 86400.0));
            if let Some(registry) = registry {
                let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                    .map(|h| h.trim().to_string())
                    .unwrap_or_else(|_| "server".into());
                cfg.pool = Some(server::PoolConfig {
                    registry,
                    id: server_id.unwrap_or_else(|| format!("{host}-{}", listen.port())),
                    advertise,
                    ttl: registry_ttl.clamp(2, 3600),
                });
            }
            if no_local_socket {
                cfg.local_socket = None;
            } else if let Some(p) = local_socket {
                cfg.local_socket = Some(p);
            }
            cfg.insecure = insecure;
            cfg.idle_timeout = Duration::from_secs_f64(idle_timeout.clamp(0.5, 3600.0));
            cfg.max_sessions = max_sessions.max(1);
            cfg.session_memory = session_memory;
            cfg.exclusive = exclusive;
            cfg.limits = rgpu_server::session::Limits {
                streams: max_streams.max(1),
                events: max_events.max(1),
                modules: max_modules.max(1),
                inflight_bytes: max_inflight,
            };
            cfg.exclusive_wait = Duration::from_secs_f64(exclusive_wait.clamp(0.0, 86400.0));
            let rt = runtime()?;
            rt.block_on(async {
                let srv = server::start(cfg).await?;
                eprintln!(
                    "rgpu server on {} — connection file: {}",
                    srv.addr,
                    srv.connection_path.display()
                );
                shutdown_signal().await;
                tracing::info!("shutting down: no new sessions; {} open", srv.sessions());
                srv.shutdown(Duration::from_secs_f64(shutdown_grace.clamp(0.0, 3600.0)))
                    .await;
                Ok::<_, anyhow::Error>(())
            })?;
            Ok(0)
        }
        Cmd::Run {
            connection_file,
            dev,
            alloc,
            program,
        } => match alloc.registry.clone() {
            Some(registry) => run_in_pool(registry, &alloc, &program),
            None => run_program(connection_file, &dev, &program),
        },
        Cmd::Status { registry, json } => pool_status(registry, json),
        Cmd::Quota {
            registry,
            user,
            gpus,
            memory,
            remove,
        } => {
            if !remove && gpus.is_none() && memory.is_none() {
                bail!("give --gpus and/or --memory, or --remove");
            }
            let q = (!remove).then_some(rgpu_server::pool::Quota { gpus, memory });
            runtime()?.block_on(rgpu_server::pool::set_quota(&registry, &user, q))?;
            Ok(0)
        }
        Cmd::Release {
            registry,
            allocation,
        } => {
            runtime()?.block_on(rgpu_server::pool::release(&registry, &allocation))?;
            eprintln!("released allocation {allocation}");
            Ok(0)
        }
        Cmd::Worker => Ok(rgpu_server::worker::worker_main()),
        Cmd::Devices {
            connection_file,
            json,
        } => devices(connection_file, json),
    }
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// Finds the shim (`libcuda.so` built next to this binary, or `RGPU_SHIM`).
fn shim_path() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("RGPU_SHIM") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe().context("locating the rgpu binary")?;
    let dir = exe.parent().context("rgpu binary has no directory")?;
    for c in [dir.join("libcuda.so"), dir.join("../lib/rgpu/libcuda.so")] {
        if c.exists() {
            return Ok(c.canonicalize()?);
        }
    }
    bail!(
        "cannot find the rgpu shim (libcuda.so) next to {}; build the workspace or set RGPU_SHIM",
        exe.display()
    )
}

/// A temporary folder whose `lib/` holds the shim under the driver's names: (folder, lib/).
fn shim_dir() -> Result<(tempfile::TempDir, PathBuf)> {
    let shim = shim_path()?;
    let tmp = tempfile::Builder::new().prefix("rgpu-run-").tempdir()?;
    let libdir = tmp.path().join("lib");
    std::fs::create_dir_all(&libdir)?;
    for name in ["libcuda.so.1", "libcuda.so"] {
        std::os::unix::fs::symlink(&shim, libdir.join(name))?;
    }
    Ok((tmp, libdir))
}

fn run_program(conn: Option<PathBuf>, dev: &DeviceArgs, program: &[String]) -> Result<i32> {
    let (tmp, libdir) = shim_dir()?;
    let rt = runtime()?;
    let (conn_path, _server) = match conn {
        Some(p) => {
            // A connection file, or a set of servers whose devices the program uses together.
            rgpu_protocol::connfile::ServerSet::read(&p)?;
            (p, None)
        }
        None => {
            let mut cfg = server_config(tmp.path().join("server"), dev);
            cfg.listen = "127.0.0.1:0".parse().expect("literal");
            let srv = rt.block_on(server::start(cfg))?;
            (srv.connection_path.clone(), Some(srv))
        }
    };
    launch(&libdir, &conn_path, &[], program)
}

/// Runs `program` with the shim from `libdir`, the server of `conn_path`, and `env`; returns its
/// exit status (128+signal when killed).
fn launch(
    libdir: &Path,
    conn_path: &Path,
    env: &[(&str, String)],
    program: &[String],
) -> Result<i32> {
    let prepend = |var: &str, first: &Path| {
        let mut v = first.as_os_str().to_owned();
        if let Some(old) = std::env::var_os(var).filter(|o| !o.is_empty()) {
            v.push(if var == "LD_PRELOAD" { " " } else { ":" });
            v.push(old);
        }
        v
    };
    let status = std::process::Command::new(&program[0])
        .args(&program[1..])
        .envs(env.iter().map(|(k, v)| (*k, v)))
        .env("RGPU_CONNECTION_FILE", conn_path)
        .env("LD_LIBRARY_PATH", prepend("LD_LIBRARY_PATH", libdir))
        .env(
            "LD_PRELOAD",
            prepend("LD_PRELOAD", &libdir.join("libcuda.so.1")),
        )
        .status()
        .with_context(|| format!("cannot run {}", program[0]))?;
    use std::os::unix::process::ExitStatusExt;
    Ok(status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)))
}

/// `rgpu run --registry`: allocates devices from the pool, runs the program on them (it sees
/// them as devices 0..N-1), and ends the allocation when the program exits.
fn run_in_pool(
    registry: rgpu_server::pool::RegistryUrl,
    a: &AllocArgs,
    program: &[String],
) -> Result<i32> {
    use rgpu_server::pool;
    if a.gpus == 0 {
        bail!("--gpus must be at least 1");
    }
    let min_cc = match &a.min_cc {
        None => (0, 0),
        Some(s) => {
            let (x, y) = s.split_once('.').unwrap_or((s, "0"));
            (
                x.parse()
                    .with_context(|| format!("--min-cc {s}: use X.Y"))?,
                y.parse()
                    .with_context(|| format!("--min-cc {s}: use X.Y"))?,
            )
        }
    };
    let req = pool::Request {
        gpus: a.gpus,
        min_memory: a.min_memory.unwrap_or(0),
        min_cc,
        spread: a.spread,
        memory_quota: a.memory_quota,
        same_server: a.same_server,
        exclusive: !a.shared,
    };
    let who = (
        std::env::var("USER")
            .or_else(|_| std::env::var("LOGNAME"))
            // SAFETY: getuid has no preconditions.
            .unwrap_or_else(|_| format!("uid{}", unsafe { libc::getuid() }))
            .replace('/', "_"),
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_default(),
        std::process::id(),
    );
    let rt = runtime()?;
    let wait = Duration::from_secs_f64(a.wait.clamp(0.0, 86400.0));
    let alloc = rt.block_on(pool::allocate(
        &registry,
        &req,
        wait,
        a.lease_ttl.clamp(2, 3600),
        who,
    ))?;
    let on = |id: &str| {
        alloc
            .record
            .devices
            .iter()
            .filter(|(s, _)| s == id)
            .map(|(_, i)| i.to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    eprintln!(
        "rgpu: allocation {}: {}",
        alloc.record.id,
        alloc
            .servers
            .iter()
            .map(|(s, _)| format!("server {} ({}) device(s) {}", s.id, s.advertise, on(&s.id)))
            .collect::<Vec<_>>()
            .join("; ")
    );
    let result = (|| {
        let (tmp, libdir) = shim_dir()?;
        let files: Vec<ConnectionFile> = alloc
            .servers
            .iter()
            .map(|(s, token)| ConnectionFile {
                address: s.advertise.clone(),
                server_name: s.server_name.clone(),
                fingerprint: s.fingerprint.clone(),
                token: token.clone(),
                insecure: s.fingerprint.is_empty(),
                local_socket: None,
                host: String::new(),
                // Each server's session sees exactly the allocation's devices there.
                visible_devices: Some(on(&s.id)),
            })
            .collect();
        let conn_path = tmp.path().join("connection.json");
        match files.as_slice() {
            [one] => one.write(&conn_path)?,
            _ => rgpu_protocol::connfile::ServerSet { servers: files }.write(&conn_path)?,
        }
        launch(
            &libdir,
            &conn_path,
            &[("RGPU_ALLOCATION", alloc.record.id.clone())],
            program,
        )
    })();
    rt.block_on(alloc.release());
    result
}

/// `rgpu status --registry`: the pool like nvidia-smi shows one machine.
fn pool_status(registry: rgpu_server::pool::RegistryUrl, json: bool) -> Result<i32> {
    use rgpu_server::pool;
    let snap = runtime()?.block_on(async {
        let mut c = pool::connect(&registry).await?;
        pool::snapshot(&mut c).await
    })?;
    // Allocations whose server is gone are lost.
    let lost: Vec<&String> = snap
        .allocations
        .values()
        .filter(|a| a.devices.iter().any(|(s, _)| !snap.servers.contains_key(s)))
        .map(|a| &a.id)
        .collect();
    if json {
        let v = serde_json::json!({
            "revision": snap.revision,
            "servers": snap.servers.values().collect::<Vec<_>>(),
            "devices": snap.devices.values().map(|d| {
                let mut v = serde_json::to_value(d).unwrap_or_default();
                v["holders"] = serde_json::json!(snap.held.get(&(d.server.clone(), d.index)).cloned().unwrap_or_default());
                v
            }).collect::<Vec<_>>(),
            "quotas": snap.quotas,
            "allocations": snap.allocations.values().map(|a| {
                let mut v = serde_json::to_value(a).unwrap_or_default();
                v["lost"] = serde_json::json!(lost.contains(&&a.id));
                v
            }).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(0);
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let age = |since: u64| {
        let a = now.saturating_sub(since);
        if a < 120 {
            format!("{a}s")
        } else if a < 7200 {
            format!("{}m", a / 60)
        } else if a < 172800 {
            format!("{}h", a / 3600)
        } else {
            format!("{}d", a / 86400)
        }
    };
    println!("SERVERS");
    println!(
        "{:<24} {:<24} {:<16} {:>7} VERSION",
        "ID", "ADDRESS", "HOST", "UP"
    );
    for s in snap.servers.values() {
        println!(
            "{:<24} {:<24} {:<16} {:>7} {}",
            s.id,
            s.advertise,
            s.host,
            age(s.since),
            s.version
        );
    }
    println!("\nDEVICES");
    println!(
        "{:<24} {:>3} {:<24} {:>18} {:>4} {:>8} {:>5} {:<9} ALLOCATIONS",
        "SERVER", "IDX", "NAME", "MEMORY USED/TOTAL", "CC", "SESSIONS", "LOAD", "MODE"
    );
    for d in snap.devices.values() {
        let used = d.free.map_or("?".to_string(), |f| {
            format!("{}", d.memory.saturating_sub(f) >> 20)
        });
        let holders = snap
            .held
            .get(&(d.server.clone(), d.index))
            .map(|h| {
                h.iter()
                    .map(|h| {
                        if h.exclusive {
                            format!("{} (alone)", h.allocation)
                        } else {
                            h.allocation.clone()
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "-".into());
        println!(
            "{:<24} {:>3} {:<24} {:>8}/{:>5} MiB {:>4} {:>8} {:>5} {:<9} {}",
            d.server,
            d.index,
            d.name,
            used,
            d.memory >> 20,
            d.cc,
            d.sessions,
            d.load.map_or("?".to_string(), |l| format!("{l}%")),
            d.mode,
            holders
        );
    }
    if !snap.quotas.is_empty() {
        println!("\nQUOTAS");
        println!("{:<16} {:>12} {:>16}", "USER", "DEVICES", "MEMORY");
        for (u, q) in &snap.quotas {
            let (n, mem) = snap.held_by(u);
            println!(
                "{:<16} {:>12} {:>16}",
                u,
                format!("{n}/{}", q.gpus.map_or("-".into(), |g| g.to_string())),
                format!(
                    "{}/{} MiB",
                    mem >> 20,
                    q.memory.map_or("-".into(), |m| (m >> 20).to_string())
                )
            );
        }
    }
    println!("\nALLOCATIONS");
    println!(
        "{:<18} {:<12} {:<16} {:>8} {:>9} {:<10} {:<12} {:<24} STATE",
        "ID", "USER", "HOST", "PID", "AGE", "MODE", "QUOTA", "DEVICES"
    );
    for a in snap.allocations.values() {
        println!(
            "{:<18} {:<12} {:<16} {:>8} {:>9} {:<10} {:<12} {:<24} {}",
            a.id,
            a.user,
            a.host,
            a.pid,
            age(a.since),
            if a.exclusive { "exclusive" } else { "shared" },
            a.memory_quota
                .map_or("-".to_string(), |q| format!("{} MiB", q >> 20)),
            a.devices
                .iter()
                .map(|(s, i)| format!("{s}:{i}"))
                .collect::<Vec<_>>()
                .join(","),
            if lost.contains(&&a.id) {
                "LOST (server gone)"
            } else {
                "active"
            }
        );
    }
    Ok(0)
}

/// The devices one server offers this client, as `rgpu devices` lists them.
fn device_rows(client: &Client) -> Result<Vec<serde_json::Value>> {
    let call = |r: Request| client.call(CallHeader::default(), &r);
    call(Request::Init(InitReq { flags: 0 }))?;
    let Reply::DeviceGetCount(n) = call(Request::DeviceGetCount(DeviceGetCountReq {}))? else {
        bail!("unexpected reply");
    };
    let loads = client.welcome().devices.clone();
    let mut rows = vec![];
    for d in 0..n.count {
        let Reply::DeviceSummary(sum) = call(Request::DeviceSummary(DeviceSummaryReq { dev: d }))?
        else {
            bail!("unexpected reply");
        };
        let attr = |i: usize| sum.attributes.get(i).copied().unwrap_or(0);
        let uuid: [u8; 16] = sum.uuid.as_slice().try_into().unwrap_or_default();
        let load = loads.get(d as usize).cloned().unwrap_or_default();
        // Free memory as the device reports it now (on a GPU: all of its users).
        let free = match call(Request::DevicePrimaryCtxRetain(DevicePrimaryCtxRetainReq {
            dev: d,
        })) {
            Ok(Reply::DevicePrimaryCtxRetain(r)) => {
                let h = CallHeader {
                    ctx: r.ctx,
                    ..Default::default()
                };
                let f = match client.call(h, &Request::MemGetInfo(MemGetInfoReq {})) {
                    Ok(Reply::MemGetInfo(m)) => Some(m.free),
                    _ => None,
                };
                let _ = call(Request::DevicePrimaryCtxRelease(
                    DevicePrimaryCtxReleaseReq { dev: d },
                ));
                f
            }
            _ => None,
        };
        rows.push(serde_json::json!({
            "free_bytes": free,
            "index": d,
            "server_index": load.server_index,
            "name": sum.name,
            "uuid": rgpu_server::placement::uuid_string(&uuid),
            "memory_bytes": sum.total_mem,
            "compute_capability": format!("{}.{}", attr(75), attr(76)),
            "multiprocessors": attr(16),
            "sessions": load.sessions,
            "policy": if load.exclusive { "exclusive" } else { "shared" },
        }));
    }
    Ok(rows)
}

fn devices(conn: Option<PathBuf>, json: bool) -> Result<i32> {
    let path = conn
        .or_else(|| {
            let p = default_state_dir().join("connection.json");
            p.exists().then_some(p)
        })
        .context("no connection file: pass --connection-file or set RGPU_CONNECTION_FILE")?;
    // One server, or each server of a set (the program's device numbers run across them).
    let servers = rgpu_protocol::connfile::ServerSet::read(&path)?;
    let several = servers.len() > 1;
    let mut rows = vec![];
    for cf in servers {
        let address = cf.address.clone();
        let client = Client::connect(ClientConfig::new(cf))
            .with_context(|| format!("the server at {address}"))?;
        for mut r in device_rows(&client)? {
            r["index"] = serde_json::json!(rows.len());
            r["server"] = serde_json::json!(address);
            rows.push(r);
        }
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        if several {
            print!("{:<6} {:<22} ", "DEVICE", "SERVER");
        }
        println!(
            "{:<5} {:<28} {:>12} {:>12} {:>4} {:>4} {:>8} {:<9} UUID",
            "INDEX", "NAME", "MEMORY", "FREE", "CC", "SMS", "SESSIONS", "POLICY"
        );
        for r in rows {
            if several {
                print!(
                    "{:<6} {:<22} ",
                    r["index"].as_u64().unwrap_or(0),
                    r["server"].as_str().unwrap_or("")
                );
            }
            println!(
                "{:<5} {:<28} {:>8} MiB {:>12} {:>4} {:>4} {:>8} {:<9} {}",
                r["server_index"].as_u64().unwrap_or(0),
                r["name"].as_str().unwrap_or(""),
                r["memory_bytes"].as_u64().unwrap_or(0) >> 20,
                r["free_bytes"]
                    .as_u64()
                    .map_or("?".to_string(), |f| format!("{} MiB", f >> 20)),
                r["compute_capability"].as_str().unwrap_or(""),
                r["multiprocessors"].as_i64().unwrap_or(0),
                r["sessions"].as_u64().unwrap_or(0),
                r["policy"].as_str().unwrap_or(""),
                r["uuid"].as_str().unwrap_or("")
            );
        }
    }
    Ok(0)
}
