//! rgpu-bench: rgpu's figures next to the transport floors measured in the same run.
//!
//! Floors: raw loopback TCP, Unix-socket and quinn round trips and bulk bandwidth. Then, over each
//! path the server offers (its local Unix socket, QUIC): a synchronous call's latency (p50/p99),
//! a synchronous 4-byte device-to-host copy, the pipelined launch rate, and host<->device
//! bandwidth from 4 KiB to 256 MiB. With `--program` (bench/programs/bandwidth.c, built), the
//! same copies as a CUDA program sees them through the shim, pageable and pinned, and with
//! `--native` without rgpu (on a GPU machine). Prints tables with ratios to the floors and
//! writes a PNG chart. Against an embedded server on the CPU device, or any server with
//! `--connection-file`.

use anyhow::{bail, Result};
use clap::Parser;
use rgpu_protocol::client::{Client, ClientConfig, TransportChoice};
use rgpu_protocol::connfile::ConnectionFile;
use rgpu_protocol::messages::*;
use rgpu_protocol::wire::CallHeader;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

mod chart;
mod vm;

#[derive(Parser)]
#[command(
    name = "rgpu-bench",
    about = "Measure rgpu against the transport floor"
)]
struct Args {
    /// Server to measure (default: an embedded server on the CPU device).
    #[arg(long)]
    connection_file: Option<PathBuf>,
    /// Round trips per latency measurement.
    #[arg(long, default_value_t = 2000)]
    iters: usize,
    /// Bytes per bulk transfer.
    #[arg(long, default_value_t = 64 << 20)]
    bulk: usize,
    /// Only the CPU device's interpreter benchmarks (no network).
    #[arg(long)]
    vm_only: bool,
    /// Compress payloads (LZ4) as `RGPU_COMPRESS=lz4` does; the bulk payload is compressible.
    #[arg(long)]
    compress: bool,
    /// Largest copy of the bandwidth sweep (4 KiB, then ×4 up to this), e.g. 256M.
    #[arg(long, default_value = "256M", value_parser = parse_size)]
    sweep_max: usize,
    /// Where to write the bandwidth chart (PNG).
    #[arg(long, default_value = "rgpu-bench.png")]
    chart: PathBuf,
    /// bench/programs/bandwidth.c, built: run it through the shim (and with --native without).
    #[arg(long)]
    program: Option<PathBuf>,
    /// Also run --program against the machine's own libcuda (a GPU machine).
    #[arg(long)]
    native: bool,
    /// Also measure QUIC with this many bulk lanes (extra connections for large copies).
    #[arg(long, default_value_t = 0)]
    lanes: usize,
    /// The `rgpu` binary that runs --program through the shim (default: next to this one).
    #[arg(long)]
    rgpu: Option<PathBuf>,
    /// bench/programs/peer_copy.c, built: device-to-device copies between two devices of one
    /// embedded server, and between devices of two embedded servers (staged through the client),
    /// over the local socket and over QUIC.
    #[arg(long)]
    peer_program: Option<PathBuf>,
}

fn parse_size(s: &str) -> Result<usize, String> {
    let s = s.trim();
    let (num, mul) = match s.chars().last() {
        Some('K' | 'k') => (&s[..s.len() - 1], 1usize << 10),
        Some('M' | 'm') => (&s[..s.len() - 1], 1 << 20),
        Some('G' | 'g') => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    num.parse::<usize>()
        .map(|n| n * mul)
        .map_err(|e| format!("`{s}`: {e}"))
}

fn percentiles(mut v: Vec<Duration>) -> (f64, f64) {
    v.sort();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    (us(v[v.len() / 2]), us(v[v.len() * 99 / 100]))
}

/// The same path over raw quinn, with rgpu's TLS and transport settings but no rgpu framing,
/// sessions or client threads: a 64-byte echo (p50, p99 in µs) and a bulk transfer (GB/s).
fn quinn_floor(
    rt: &tokio::runtime::Runtime,
    dir: &std::path::Path,
    iters: usize,
    bulk: usize,
) -> Result<((f64, f64), f64)> {
    use rgpu_protocol::transport;
    let id = transport::Identity::load_or_create(dir)?;
    let idle = Duration::from_secs(10);
    rt.block_on(async {
        let server =
            quinn::Endpoint::server(transport::server_config(&id, idle)?, "127.0.0.1:0".parse()?)?;
        let addr = server.local_addr()?;
        tokio::spawn(async move {
            let Some(inc) = server.accept().await else {
                return;
            };
            let Ok(conn) = inc.await else { return };
            let Ok((mut s, mut r)) = conn.accept_bi().await else {
                return;
            };
            let mut buf = vec![0u8; 1 << 20];
            // Echo 64-byte messages; a 0 byte starts the bulk phase (read all, answer 1 byte).
            loop {
                let mut m = [0u8; 64];
                if r.read_exact(&mut m).await.is_err() {
                    return;
                }
                if m[0] == 0 {
                    let mut left = u64::from_le_bytes(m[1..9].try_into().expect("8 bytes"));
                    while left > 0 {
                        let n = (left as usize).min(buf.len());
                        if r.read_exact(&mut buf[..n]).await.is_err() {
                            return;
                        }
                        left -= n as u64;
                    }
                    let _ = s.write_all(&[1]).await;
                    continue;
                }
                if s.write_all(&m).await.is_err() {
                    return;
                }
            }
        });
        let mut client = quinn::Endpoint::client("127.0.0.1:0".parse()?)?;
        client.set_default_client_config(transport::client_config(Some(&id.fingerprint()), idle)?);
        let conn = client.connect(addr, transport::SERVER_NAME)?.await?;
        let (mut s, mut r) = conn.open_bi().await?;
        let mut v = Vec::with_capacity(iters);
        let mut m = [7u8; 64];
        for _ in 0..iters {
            let t = Instant::now();
            s.write_all(&m).await?;
            r.read_exact(&mut m).await?;
            v.push(t.elapsed());
        }
        let mut best = f64::MAX;
        let payload = vec![3u8; bulk];
        for _ in 0..3 {
            let mut hdr = [0u8; 64];
            hdr[1..9].copy_from_slice(&(bulk as u64).to_le_bytes());
            let t = Instant::now();
            s.write_all(&hdr).await?;
            s.write_all(&payload).await?;
            let mut ack = [0u8; 1];
            r.read_exact(&mut ack).await?;
            best = best.min(t.elapsed().as_secs_f64());
        }
        conn.close(0u32.into(), b"done");
        Ok::<_, anyhow::Error>((percentiles(v), bulk as f64 / best / 1e9))
    })
}

/// Blocking loopback TCP (NODELAY): 64-byte round trip (p50, p99 in µs) and bulk GB/s.
fn tcp_floor(iters: usize, bulk: usize) -> Result<((f64, f64), f64)> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = l.local_addr()?;
    let srv = std::thread::spawn(move || -> std::io::Result<()> {
        let (s, _) = l.accept()?;
        s.set_nodelay(true)?;
        echo_server(s)
    });
    let c = std::net::TcpStream::connect(addr)?;
    c.set_nodelay(true)?;
    let r = echo_client(c, iters, bulk)?;
    let _ = srv.join();
    Ok(r)
}

/// Blocking Unix socket: 64-byte round trip (p50, p99 in µs) and bulk GB/s.
fn uds_floor(dir: &std::path::Path, iters: usize, bulk: usize) -> Result<((f64, f64), f64)> {
    let path = dir.join("floor.sock");
    let l = std::os::unix::net::UnixListener::bind(&path)?;
    let srv = std::thread::spawn(move || -> std::io::Result<()> {
        let (s, _) = l.accept()?;
        echo_server(s)
    });
    let c = std::os::unix::net::UnixStream::connect(&path)?;
    let r = echo_client(c, iters, bulk)?;
    let _ = srv.join();
    Ok(r)
}

/// The floors' server side: echoes 64-byte messages; one starting with 0xff announces a bulk
/// payload (8-byte length, then the bytes), answered with one byte.
fn echo_server(mut s: impl Read + Write) -> std::io::Result<()> {
    let mut b = [0u8; 64];
    loop {
        if s.read_exact(&mut b).is_err() {
            break;
        }
        if b[0] == 0xff {
            // bulk: 8-byte length then payload, answered with one byte
            let mut len = [0u8; 8];
            s.read_exact(&mut len)?;
            let mut left = u64::from_le_bytes(len) as usize;
            let mut buf = vec![0u8; 1 << 20];
            while left > 0 {
                let n = s.read(&mut buf[..left.min(1 << 20)])?;
                left -= n;
            }
            s.write_all(&[1])?;
        } else {
            s.write_all(&b)?;
        }
    }
    Ok(())
}

/// The floors' client side: `iters` echoes, then the best of three bulk transfers.
fn echo_client(mut c: impl Read + Write, iters: usize, bulk: usize) -> Result<((f64, f64), f64)> {
    let mut b = [1u8; 64];
    let mut lat = Vec::with_capacity(iters);
    for _ in 0..iters {
        let t = Instant::now();
        c.write_all(&b)?;
        c.read_exact(&mut b)?;
        lat.push(t.elapsed());
    }
    let payload = vec![7u8; bulk];
    let mut best = f64::MAX;
    for _ in 0..3 {
        let t = Instant::now();
        let mut hdr = [0u8; 64];
        hdr[0] = 0xff;
        c.write_all(&hdr)?;
        c.write_all(&(bulk as u64).to_le_bytes())?;
        c.write_all(&payload)?;
        let mut ack = [0u8; 1];
        c.read_exact(&mut ack)?;
        best = best.min(t.elapsed().as_secs_f64());
    }
    Ok((percentiles(lat), bulk as f64 / best / 1e9))
}

/// rgpu's figures over one path to the server.
struct PathFigures {
    name: String,
    call: (f64, f64),
    d2h4: (f64, f64),
    launches: f64,
    /// (bytes, HtoD GB/s, DtoH GB/s)
    sweep: Vec<(usize, f64, f64)>,
}

/// Copies larger than this travel as several calls of this size (as the shim sends them).
const CHUNK: usize = 4 << 20;

fn sweep_sizes(max: usize) -> Vec<usize> {
    std::iter::successors(Some(4096usize), |s| Some(s * 4))
        .take_while(|&s| s <= max)
        .collect()
}

fn measure(
    cf: &ConnectionFile,
    transport: TransportChoice,
    lanes: usize,
    args: &Args,
) -> Result<PathFigures> {
    let mut ccfg = ClientConfig::new(cf.clone());
    ccfg.compress = args.compress;
    ccfg.transport = transport;
    ccfg.bulk_lanes = lanes;
    let c = Client::connect(ccfg)?;
    let name = if c.is_local_socket() {
        "local socket".to_string()
    } else if c.bulk_lanes() > 0 {
        format!("QUIC + {} lanes", c.bulk_lanes())
    } else {
        "QUIC".to_string()
    };
    let h0 = CallHeader::default();
    c.call(h0, &Request::Init(InitReq { flags: 0 }))?;
    let Reply::DevicePrimaryCtxRetain(ctx) = c.call(
        h0,
        &Request::DevicePrimaryCtxRetain(DevicePrimaryCtxRetainReq { dev: 0 }),
    )?
    else {
        bail!("unexpected reply");
    };
    let h = CallHeader { ctx: ctx.ctx, ..h0 };
    let time = |f: &dyn Fn() -> Result<()>| -> Result<(f64, f64)> {
        let mut v = Vec::with_capacity(args.iters);
        for _ in 0..args.iters {
            let t = Instant::now();
            f()?;
            v.push(t.elapsed());
        }
        Ok(percentiles(v))
    };
    let call = time(&|| {
        c.call(h, &Request::DeviceGetCount(DeviceGetCountReq {}))?;
        Ok(())
    })?;
    let sizes = sweep_sizes(args.sweep_max);
    let top = sizes.last().copied().unwrap_or(4096);
    let Reply::MemAlloc(buf) = c.call(
        h,
        &Request::MemAlloc(MemAllocReq {
            bytesize: top as u64,
        }),
    )?
    else {
        bail!("unexpected reply");
    };
    let d2h4 = time(&|| {
        c.call(
            h,
            &Request::MemcpyDtoH(MemcpyDtoHReq {
                src: buf.dptr,
                byte_count: 4,
            }),
        )?;
        Ok(())
    })?;
    let payload = vec![3u8; top];
    let mut sweep = Vec::new();
    for &n in &sizes {
        let reps = if n < 1 << 20 {
            50
        } else if n < 16 << 20 {
            10
        } else {
            3
        };
        let (mut up, mut down) = (f64::MAX, f64::MAX);
        for _ in 0..reps {
            let ups: Vec<Request> = (0..n)
                .step_by(CHUNK)
                .map(|off| {
                    let len = CHUNK.min(n - off);
                    Request::MemcpyHtoD(MemcpyHtoDReq {
                        dst: buf.dptr + off as u64,
                        src: payload[off..off + len].to_vec(),
                        byte_count: len as u64,
                    })
                })
                .collect();
            let t = Instant::now();
            c.call_batch(h, &ups)?;
            up = up.min(t.elapsed().as_secs_f64());
            let downs: Vec<Request> = (0..n)
                .step_by(CHUNK)
                .map(|off| {
                    Request::MemcpyDtoH(MemcpyDtoHReq {
                        src: buf.dptr + off as u64,
                        byte_count: CHUNK.min(n - off) as u64,
                    })
                })
                .collect();
            let t = Instant::now();
            c.call_batch(h, &downs)?;
            down = down.min(t.elapsed().as_secs_f64());
        }
        sweep.push((n, n as f64 / up / 1e9, n as f64 / down / 1e9));
    }
    c.call(h, &Request::MemFree(MemFreeReq { dptr: buf.dptr }))?;
    // Pipelined launch rate: launches sent without waiting, then one synchronisation.
    let image = vm::PTX.as_bytes().to_vec();
    let Reply::ModuleLoad(m) = c.call(
        h,
        &Request::ModuleLoad(ModuleLoadReq {
            hash: rgpu_protocol::image::content_hash(&image),
            image,
            library: false,
        }),
    )?
    else {
        bail!("unexpected reply");
    };
    if m.error != 0 {
        bail!("loading the benchmark module: {}", m.log);
    }
    let Reply::ModuleGetFunction(f) = c.call(
        h,
        &Request::ModuleGetFunction(ModuleGetFunctionReq {
            module: m.module,
            name: "empty".into(),
        }),
    )?
    else {
        bail!("unexpected reply");
    };
    let launches = 20_000;
    let launch = Request::LaunchKernel(LaunchKernelReq {
        func: f.func,
        grid_x: 1,
        grid_y: 1,
        grid_z: 1,
        block_x: 32,
        block_y: 1,
        block_z: 1,
        shared_mem: 0,
        stream: 0,
        params: vec![0; 4],
        cooperative: false,
    });
    let t = Instant::now();
    for _ in 0..launches {
        c.send(h, &launch)?;
    }
    c.call(
        h,
        &Request::StreamSynchronize(StreamSynchronizeReq { stream: 0 }),
    )?;
    let launch_rate = launches as f64 / t.elapsed().as_secs_f64();
    c.shutdown(Duration::from_millis(500));
    Ok(PathFigures {
        name,
        call,
        d2h4,
        launches: launch_rate,
        sweep,
    })
}

/// What bench/programs/bandwidth.c printed.
struct ProgramFigures {
    d2h4_p50: f64,
    tcp_p50: f64,
    stream_calls: f64,
    /// (bytes, [pageable HtoD, pageable DtoH, pinned HtoD, pinned DtoH] GB/s)
    sweep: Vec<(usize, [f64; 4])>,
}

fn run_program(mut cmd: std::process::Command, what: &str) -> Result<ProgramFigures> {
    let out = cmd.output()?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    if !out.status.success() {
        bail!(
            "{what} failed ({}): {}{}",
            out.status,
            text,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let num_after = |line: &str, key: &str| -> Option<f64> {
        let rest = &line[line.find(key)? + key.len()..];
        rest.split_whitespace().next()?.parse().ok()
    };
    let mut f = ProgramFigures {
        d2h4_p50: f64::NAN,
        tcp_p50: f64::NAN,
        stream_calls: f64::NAN,
        sweep: Vec::new(),
    };
    for line in text.lines() {
        if line.starts_with("4-byte DtoH") {
            f.d2h4_p50 = num_after(line, "DtoH p50").unwrap_or(f64::NAN);
            f.tcp_p50 = num_after(line, "ping-pong p50").unwrap_or(f64::NAN);
        } else if line.starts_with("async memset") {
            f.stream_calls = num_after(line, "record:").unwrap_or(f64::NAN);
        } else if let Some((kib, rest)) = line.split_once(" KiB |") {
            let v: Vec<f64> = rest
                .split('|')
                .filter_map(|x| x.trim().parse().ok())
                .collect();
            if let (Ok(k), [a, b, c, d]) = (kib.trim().parse::<usize>(), v.as_slice()) {
                f.sweep.push((k << 10, [*a, *b, *c, *d]));
            }
        }
    }
    Ok(f)
}

fn main() -> Result<()> {
    let args = Args::parse();
    println!("| CPU-device interpreter | value | unit |");
    println!("|---|---|---|");
    for w in [1, rgpu_ptx::vm::default_workers()] {
        for (what, v, unit) in vm::run(w) {
            println!("| {what} | {v:.1} | {unit} |");
        }
    }
    println!();
    if args.vm_only {
        return Ok(());
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let tmp = tempfile::tempdir()?;
    let (cf, conn_path, _srv) = match &args.connection_file {
        Some(p) => (ConnectionFile::read(p)?, p.clone(), None),
        None => {
            let mut cfg = rgpu_server::server::ServerConfig::new(tmp.path().join("state"));
            cfg.listen = "127.0.0.1:0".parse()?;
            cfg.device = rgpu_server::server::DeviceKind::Cpu;
            let srv = rt.block_on(rgpu_server::server::start(cfg))?;
            (
                srv.connection.clone(),
                srv.connection_path.clone(),
                Some(srv),
            )
        }
    };
    let bulk = args.bulk;
    let ((tcp50, tcp99), tcp_bw) = tcp_floor(args.iters, bulk)?;
    let ((uds50, uds99), uds_bw) = uds_floor(tmp.path(), args.iters, bulk)?;
    let ((q50, q99), q_bw) = quinn_floor(&rt, &tmp.path().join("floor"), args.iters, bulk)?;
    let mut paths = Vec::new();
    if cf.local_socket.is_some() {
        match measure(&cf, TransportChoice::Local, 0, &args) {
            Ok(p) => paths.push(p),
            Err(e) => eprintln!("rgpu-bench: the local socket is not usable from here: {e}"),
        }
    }
    paths.push(measure(&cf, TransportChoice::Quic, 0, &args)?);
    if args.lanes > 0 {
        paths.push(measure(&cf, TransportChoice::Quic, args.lanes, &args)?);
    }

    println!("Floors (same run):\n");
    println!(
        "| floor | 64 B round trip p50 | p99 | bulk {} MiB |",
        bulk >> 20
    );
    println!("|---|---|---|---|");
    println!("| blocking TCP (loopback) | {tcp50:.1} µs | {tcp99:.1} µs | {tcp_bw:.2} GB/s |");
    println!("| blocking Unix socket | {uds50:.1} µs | {uds99:.1} µs | {uds_bw:.2} GB/s |");
    println!("| quinn (tokio, rgpu's TLS settings) | {q50:.1} µs | {q99:.1} µs | {q_bw:.2} GB/s |");
    println!();
    println!("rgpu (protocol level; ratios to blocking TCP, and to quinn for QUIC):\n");
    println!("| path | sync call p50 / p99 | 4-byte DtoH p50 / p99 | DtoH ratio to TCP | to quinn | pipelined launches |");
    println!("|---|---|---|---|---|---|");
    for p in &paths {
        println!(
            "| {} | {:.1} / {:.1} µs | {:.1} / {:.1} µs | {:.2} | {:.2} | {:.0} /s |",
            p.name,
            p.call.0,
            p.call.1,
            p.d2h4.0,
            p.d2h4.1,
            p.d2h4.0 / tcp50,
            p.d2h4.0 / q50,
            p.launches
        );
    }
    println!();
    print!("| size |");
    for p in &paths {
        print!(" {} HtoD | DtoH |", p.name);
    }
    println!(" ratio of best HtoD to TCP bulk |");
    print!("|---|");
    for _ in &paths {
        print!("---|---|");
    }
    println!("---|");
    for (i, &n) in sweep_sizes(args.sweep_max).iter().enumerate() {
        print!("| {} |", chart_size(n));
        let mut best: f64 = 0.0;
        for p in &paths {
            let (_, u, d) = p.sweep[i];
            best = best.max(u);
            print!(" {u:.2} | {d:.2} |");
        }
        println!(" {:.2} |", best / tcp_bw);
    }
    println!();
    let mut series: Vec<chart::Series> = paths
        .iter()
        .map(|p| chart::Series {
            name: format!("rgpu protocol, {}", p.name),
            h2d: p.sweep.iter().map(|&(n, u, _)| (n, u)).collect(),
            d2h: p.sweep.iter().map(|&(n, _, d)| (n, d)).collect(),
        })
        .collect();
    if let Some(prog) = &args.program {
        let mib = (args.sweep_max >> 20).max(1).to_string();
        let rgpu = match &args.rgpu {
            Some(p) => p.clone(),
            None => std::env::current_exe()?.with_file_name("rgpu"),
        };
        let mut runs = Vec::new();
        let mut cmd = std::process::Command::new(&rgpu);
        cmd.arg("run")
            .arg("--connection-file")
            .arg(&conn_path)
            .arg("--")
            .arg(prog)
            .args([mib.as_str(), "sweep"]);
        runs.push((
            "through rgpu",
            run_program(cmd, "the program through rgpu")?,
        ));
        if args.native {
            let mut cmd = std::process::Command::new(prog);
            cmd.args([mib.as_str(), "sweep"]);
            runs.push((
                "native",
                run_program(cmd, "the program on the native driver")?,
            ));
        }
        println!("A CUDA program (bench/programs/bandwidth.c):\n");
        println!("| run | 4-byte cuMemcpyDtoH p50 | TCP ping-pong in the same process | ratio | pipelined stream calls |");
        println!("|---|---|---|---|---|");
        for (what, f) in &runs {
            println!(
                "| {what} | {:.1} µs | {:.1} µs | {:.2} | {:.0} /s |",
                f.d2h4_p50,
                f.tcp_p50,
                f.d2h4_p50 / f.tcp_p50,
                f.stream_calls
            );
        }
        println!();
        print!("| size |");
        for (what, _) in &runs {
            print!(" {what}: pageable HtoD | DtoH | pinned HtoD | DtoH |");
        }
        println!();
        print!("|---|");
        for _ in &runs {
            print!("---|---|---|---|");
        }
        println!();
        let n = runs.iter().map(|r| r.1.sweep.len()).min().unwrap_or(0);
        for i in 0..n {
            print!("| {} |", chart_size(runs[0].1.sweep[i].0));
            for (_, f) in &runs {
                let v = f.sweep[i].1;
                print!(" {:.2} | {:.2} | {:.2} | {:.2} |", v[0], v[1], v[2], v[3]);
            }
            println!();
        }
        println!();
        for (what, f) in &runs {
            for (k, kind) in [(0, "pageable"), (2, "pinned")] {
                series.push(chart::Series {
                    name: format!("CUDA program {what}, {kind}"),
                    h2d: f.sweep.iter().map(|(n, v)| (*n, v[k])).collect(),
                    d2h: f.sweep.iter().map(|(n, v)| (*n, v[k + 1])).collect(),
                });
            }
        }
    }
    if let Some(prog) = &args.peer_program {
        peer_copies(&rt, &args, prog, tmp.path(), &paths)?;
    }
    let title = format!(
        "rgpu host<->device bandwidth ({}; TCP floor {tcp_bw:.2} GB/s)",
        if args.connection_file.is_some() {
            "server from the connection file"
        } else {
            "embedded server, CPU device"
        }
    );
    match chart::write(&args.chart, &title, &series) {
        Ok(None) => println!("chart: {}", args.chart.display()),
        Ok(Some(legend)) => println!("chart: {} (no text)\n{legend}", args.chart.display()),
        Err(e) => eprintln!("rgpu-bench: no chart written: {e}"),
    }
    Ok(())
}

/// Device-to-device copies (`peer_copy`) on two devices of one embedded server and across two
/// embedded servers (a server set), against the floor of a staged copy: one download then one
/// upload at the rates the protocol sweep measured over QUIC in this run.
fn peer_copies(
    rt: &tokio::runtime::Runtime,
    args: &Args,
    prog: &std::path::Path,
    dir: &std::path::Path,
    paths: &[PathFigures],
) -> Result<()> {
    let server = |name: &str, devices: u32| {
        let mut cfg = rgpu_server::server::ServerConfig::new(dir.join(name));
        cfg.listen = "127.0.0.1:0".parse().expect("literal");
        cfg.device = rgpu_server::server::DeviceKind::Cpu;
        cfg.cpu_devices = devices;
        rt.block_on(rgpu_server::server::start(cfg))
    };
    let one = server("peer-one", 2)?;
    let (a, b) = (server("peer-a", 1)?, server("peer-b", 1)?);
    let set = dir.join("peer-set.json");
    rgpu_protocol::connfile::ServerSet {
        servers: vec![a.connection.clone(), b.connection.clone()],
    }
    .write(&set)?;
    let rgpu = match &args.rgpu {
        Some(p) => p.clone(),
        None => std::env::current_exe()?.with_file_name("rgpu"),
    };
    let mib = (args.sweep_max >> 20).clamp(1, 256).to_string();
    let run = |conn: &std::path::Path, transport: &str| -> Result<Vec<(usize, f64)>> {
        let out = std::process::Command::new(&rgpu)
            .arg("run")
            .arg("--connection-file")
            .arg(conn)
            .arg("--")
            .arg(prog)
            .arg(&mib)
            .env("RGPU_TRANSPORT", transport)
            .output()?;
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        if !out.status.success() {
            bail!(
                "peer_copy failed ({}): {text}{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(text
            .lines()
            .filter_map(|l| {
                let (k, v) = l.strip_prefix("peer ")?.split_once(" KiB |")?;
                Some((
                    k.trim().parse::<usize>().ok()? << 10,
                    v.trim().parse().ok()?,
                ))
            })
            .collect())
    };
    let runs = [
        ("one server, 2 devices", run(&one.connection_path, "auto")?),
        ("2 servers, local sockets", run(&set, "auto")?),
        ("2 servers, QUIC", run(&set, "quic")?),
    ];
    let quic = paths.iter().find(|p| p.name == "QUIC");
    println!("Device-to-device copies (cuMemcpyPeer, bench/programs/peer_copy.c; GB/s):\n");
    print!("| size |");
    for (what, _) in &runs {
        print!(" {what} |");
    }
    println!(" staged floor (QUIC DtoH then HtoD) | QUIC across servers / floor |");
    print!("|---|");
    for _ in &runs {
        print!("---|");
    }
    println!("---|---|");
    for (i, &(n, _)) in runs[0].1.iter().enumerate() {
        print!("| {} |", chart_size(n));
        for (_, r) in &runs {
            match r.get(i) {
                Some((_, v)) => print!(" {v:.2} |"),
                None => print!(" – |"),
            }
        }
        let floor = quic
            .and_then(|p| p.sweep.iter().find(|s| s.0 == n))
            .map(|&(_, u, d)| 1.0 / (1.0 / u + 1.0 / d));
        match (floor, runs[2].1.get(i)) {
            (Some(f), Some((_, v))) => println!(" {f:.2} | {:.2} |", v / f),
            (Some(f), None) => println!(" {f:.2} | – |"),
            _ => println!(" – | – |"),
        }
    }
    println!();
    Ok(())
}

fn chart_size(n: usize) -> String {
    if n >= 1 << 20 {
        format!("{} MiB", n >> 20)
    } else {
        format!("{} KiB", n >> 10)
    }
}
