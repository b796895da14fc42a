//! Load: many client processes at once against one standalone server, each allocating, copying,
//! launching and checking results in a loop. Every client must finish correctly with fair
//! progress, and afterwards the server's device memory and resident memory must be back to
//! their baselines (no leaks).
//!
//! CI runs a short form (8 clients, 4 s). The full soak (docs/reliability.md):
//! `RGPU_SOAK_CLIENTS=32 RGPU_SOAK_SECONDS=60 cargo test -p rgpu-tests --release --test soak -- --nocapture`
//! (`RGPU_SOAK_ISOLATION=process` runs each session in its own worker process). Every other client
//! uses QUIC, the rest the server's local socket.

mod common;

use rgpu_protocol::client::{Client, ClientConfig};
use rgpu_protocol::connfile::ConnectionFile;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Free device memory as a fresh client sees it (its own session holds nothing).
fn free_memory(cf: &ConnectionFile) -> u64 {
    common::free_memory(&Client::connect(ClientConfig::new(cf.clone())).unwrap())
}

#[test]
fn many_clients_copy_and_launch_without_errors_or_leaks() {
    let clients = env_num("RGPU_SOAK_CLIENTS", 8) as usize;
    let seconds = env_num("RGPU_SOAK_SECONDS", 4);
    let isolation = std::env::var("RGPU_SOAK_ISOLATION").unwrap_or_else(|_| "thread".into());
    let dir = tempfile::tempdir().unwrap();
    let (mut server, conn) = common::spawn_server(
        dir.path(),
        &["--cpu-memory", "2G", "--isolation", &isolation],
    );
    let cf = ConnectionFile::read(&conn).unwrap();
    let module = common::kernel_module("vadd", "ptx");
    let exe = common::c_program("soak");
    let run = |n: usize, secs: u64| -> Vec<std::process::Child> {
        (0..n)
            .map(|i| {
                let mut cmd = Command::new(&exe);
                cmd.arg(&module).arg(secs.to_string());
                cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
                common::shim_env(&mut cmd, &conn);
                cmd.env("RGPU_TRANSPORT", if i % 2 == 0 { "quic" } else { "local" });
                cmd.spawn().unwrap()
            })
            .collect()
    };
    // Warm-up, then the baselines.
    for c in run(2, 1) {
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", common::show(&out));
    }
    std::thread::sleep(Duration::from_millis(300));
    let free_before = free_memory(&cf);
    let rss_before = rss_kib(server.id());

    let t0 = Instant::now();
    let mut iterations = vec![];
    for c in run(clients, seconds) {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "a soak client failed\n{}",
            common::show(&out)
        );
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(text.contains("soak: PASSED"), "{}", common::show(&out));
        let n: u64 = text
            .lines()
            .find_map(|l| l.strip_prefix("soak: ")?.strip_suffix(" iterations"))
            .and_then(|v| v.parse().ok())
            .unwrap();
        iterations.push(n);
    }
    let took = t0.elapsed();
    iterations.sort();
    let (min, median, max) = (
        iterations[0],
        iterations[iterations.len() / 2],
        iterations[iterations.len() - 1],
    );
    let total: u64 = iterations.iter().sum();
    eprintln!(
        "soak: {clients} clients x {seconds} s ({isolation}) in {took:?}: {total} iterations \
         (per client min {min}, median {median}, max {max})"
    );
    // Fair progress: nobody starves.
    assert!(
        min > 0 && min * 5 >= median,
        "unfair progress: {iterations:?}"
    );

    // Everything released: device memory exactly, server memory within allocator slack.
    let t1 = Instant::now();
    loop {
        let free = free_memory(&cf);
        if free == free_before {
            break;
        }
        assert!(
            t1.elapsed() < Duration::from_secs(10),
            "device memory not back: {free} free, {free_before} before"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(300));
    let rss_after = rss_kib(server.id());
    eprintln!("server RSS: {rss_before} KiB before, {rss_after} KiB after");
    assert!(
        rss_after <= rss_before + 96 * 1024,
        "server memory grew from {rss_before} KiB to {rss_after} KiB"
    );
    // SAFETY: signalling our own child.
    unsafe { libc::kill(server.id() as i32, libc::SIGTERM) };
    let status = server.wait().unwrap();
    assert!(status.success(), "server exit: {status:?}");
}
