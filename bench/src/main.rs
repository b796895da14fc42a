//! rgpu-bench: rgpu's figures next to the transport floor measured in the same run.
//!
//! Measures the raw loopback TCP round trip and bulk bandwidth (the floor), then through rgpu: a
//! synchronous call's latency (p50/p99), a synchronous 4-byte device-to-host copy, and 64 MiB
//! host-to-device / device-to-host bandwidth. Against an embedded server on the CPU device, or a
//! remote one with `--connection-file`.

use anyhow::{bail, Result};
use clap::Parser;
use rgpu_protocol::client::{Client, ClientConfig};
use rgpu_protocol::connfile::ConnectionFile;
use rgpu_protocol::messages::*;
use rgpu_protocol::wire::CallHeader;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

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

fn tcp_floor(iters: usize, bulk: usize) -> Result<((f64, f64), f64)> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = l.local_addr()?;
    let srv = std::thread::spawn(move || -> std::io::Result<()> {
        let (mut s, _) = l.accept()?;
        s.set_nodelay(true)?;
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
    });
    let mut c = std::net::TcpStream::connect(addr)?;
    c.set_nodelay(true)?;
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
    drop(c);
    let _ = srv.join();
    Ok((percentiles(lat), bulk as f64 / best / 1e9))
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
    let (cf, _srv) = match &args.connection_file {
        Some(p) => (ConnectionFile::read(p)?, None),
        None => {
            let mut cfg = rgpu_server::server::ServerConfig::new(tmp.path().join("state"));
            cfg.listen = "127.0.0.1:0".parse()?;
            cfg.device = rgpu_server::server::DeviceKind::Cpu;
            let srv = rt.block_on(rgpu_server::server::start(cfg))?;
            (srv.connection.clone(), Some(srv))
        }
    };
    let ((tcp50, tcp99), tcp_bw) = tcp_floor(args.iters, args.bulk)?;
    let ((q50, q99), q_bw) = quinn_floor(&rt, &tmp.path().join("floor"), args.iters, args.bulk)?;

    let mut ccfg = ClientConfig::new(cf);
    ccfg.compress = args.compress;
    let c = Client::connect(ccfg)?;
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
    let (call50, call99) = time(&|| {
        c.call(h, &Request::DeviceGetCount(DeviceGetCountReq {}))?;
        Ok(())
    })?;
    let Reply::MemAlloc(buf) = c.call(
        h,
        &Request::MemAlloc(MemAllocReq {
            bytesize: args.bulk as u64,
        }),
    )?
    else {
        bail!("unexpected reply");
    };
    let (d2h50, d2h99) = time(&|| {
        c.call(
            h,
            &Request::MemcpyDtoH(MemcpyDtoHReq {
                src: buf.dptr,
                byte_count: 4,
            }),
        )?;
        Ok(())
    })?;
    let payload = vec![3u8; args.bulk];
    let mut h2d = f64::MAX;
    let mut d2h = f64::MAX;
    for _ in 0..3 {
        let t = Instant::now();
        c.call(
            h,
            &Request::MemcpyHtoD(MemcpyHtoDReq {
                dst: buf.dptr,
                src: payload.clone(),
                byte_count: args.bulk as u64,
            }),
        )?;
        h2d = h2d.min(t.elapsed().as_secs_f64());
        let t = Instant::now();
        c.call(
            h,
            &Request::MemcpyDtoH(MemcpyDtoHReq {
                src: buf.dptr,
                byte_count: args.bulk as u64,
            }),
        )?;
        d2h = d2h.min(t.elapsed().as_secs_f64());
    }
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
    let gb = |s: f64| args.bulk as f64 / s / 1e9;
    println!("| measurement | p50 | p99 | ratio to floor (p50) |");
    println!("|---|---|---|---|");
    println!("| floor: blocking TCP 64 B round trip | {tcp50:.1} µs | {tcp99:.1} µs | 1.0 |");
    println!(
        "| floor: quinn 64 B echo (tokio, same TLS) | {q50:.1} µs | {q99:.1} µs | {:.2} |",
        q50 / tcp50
    );
    println!(
        "| rgpu sync call (cuDeviceGetCount) | {call50:.1} µs | {call99:.1} µs | {:.2} |",
        call50 / tcp50
    );
    println!(
        "| rgpu sync 4-byte DtoH copy | {d2h50:.1} µs | {d2h99:.1} µs | {:.2} ({:.2}× quinn) |",
        d2h50 / tcp50,
        d2h50 / q50
    );
    println!(
        "| rgpu pipelined kernel launches (empty kernel, CPU device) | {launch_rate:.0} /s | | |"
    );
    println!(
        "| floor: TCP bulk {} MiB | {tcp_bw:.2} GB/s | | 1.0 |",
        args.bulk >> 20
    );
    println!(
        "| floor: quinn bulk {} MiB (same TLS) | {q_bw:.2} GB/s | | {:.2} |",
        args.bulk >> 20,
        q_bw / tcp_bw
    );
    println!(
        "| rgpu HtoD {} MiB (pageable) | {:.2} GB/s | | {:.2} |",
        args.bulk >> 20,
        gb(h2d),
        gb(h2d) / tcp_bw
    );
    println!(
        "| rgpu DtoH {} MiB (pageable) | {:.2} GB/s | | {:.2} |",
        args.bulk >> 20,
        gb(d2h),
        gb(d2h) / tcp_bw
    );
    Ok(())
}
