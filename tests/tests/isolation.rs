//! Process isolation on the CPU device, through the same worker machinery GPU sessions use:
//! one worker process per client, a dead client's worker exits (returning its memory), a
//! crashed worker fails only its own client, quotas apply inside workers, and device output
//! captured in a worker reaches the client.

mod common;

use common::TestServer;

use rgpu_protocol::client::{Client, ClientConfig};
use rgpu_protocol::messages::*;
use rgpu_protocol::wire::CallHeader;
use rgpu_server::server::{self, DeviceKind, Isolation, ServerConfig};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn start(configure: impl FnOnce(&mut ServerConfig)) -> TestServer {
    common::start_server(|cfg| {
        cfg.isolation = Some(Isolation::Process);
        cfg.worker_exe = Some(common::rgpu());
        configure(cfg);
    })
}

fn alive(pid: u32) -> bool {
    // A reaped process has no /proc entry; a zombie counts as gone.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| !s.contains(") Z "))
        .unwrap_or(false)
}

fn wait_until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) -> Duration {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < limit, "{what}: not after {limit:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    t0.elapsed()
}

fn spawn_holder(t: &TestServer, mib: &str) -> std::process::Child {
    let exe = common::c_program("hold_memory");
    let mut cmd = Command::new(&exe);
    cmd.arg(mib).stdout(Stdio::piped()).stderr(Stdio::piped());
    common::shim_env(&mut cmd, &t.srv.connection_path);
    cmd.spawn().unwrap()
}

#[test]
fn each_client_gets_its_own_worker_which_exits_when_the_client_dies() {
    let t = start(|c| c.idle_timeout = Duration::from_millis(600));
    let mut holder = spawn_holder(&t, "64");
    common::wait_ready(&mut holder, "the holder allocated its memory");
    let pids = t.srv.worker_pids();
    assert_eq!(pids.len(), 1, "one worker for the one client: {pids:?}");
    let pid = pids[0];
    assert!(alive(pid) && pid != std::process::id());
    // Another client at the same time gets another worker and is served.
    let demo = common::c_program("demo_driver_api");
    let mut cmd = Command::new(&demo);
    common::shim_env(&mut cmd, &t.srv.connection_path);
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", common::show(&out));
    // SIGKILL the holder: its worker (and with it all of its memory) goes away.
    holder.kill().unwrap();
    holder.wait().unwrap();
    let took = wait_until(
        "worker of the killed client exits",
        Duration::from_secs(10),
        || !alive(pid),
    );
    eprintln!("worker gone {took:?} after SIGKILL of its client");
    wait_until("server forgets the worker", Duration::from_secs(5), || {
        t.srv.worker_pids().is_empty()
    });
}

#[test]
fn a_crashed_worker_fails_only_its_own_client_quickly() {
    let t = start(|_| {});
    let c = Client::connect(ClientConfig::new(t.srv.connection.clone())).unwrap();
    let h = CallHeader::default();
    c.call(h, &Request::Init(InitReq { flags: 0 })).unwrap();
    let pid = t.srv.worker_pids()[0];
    // SAFETY: signalling our own test's child process.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    let t0 = Instant::now();
    let r = c.call(h, &Request::DeviceGetCount(DeviceGetCountReq {}));
    assert!(r.is_err(), "a call on a dead worker must fail: {r:?}");
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "failing took {:?}",
        t0.elapsed()
    );
    // The server survives and serves the next client in a fresh worker.
    let c2 = Client::connect(ClientConfig::new(t.srv.connection.clone())).unwrap();
    c2.call(h, &Request::Init(InitReq { flags: 0 })).unwrap();
    let Reply::DeviceGetCount(n) = c2
        .call(h, &Request::DeviceGetCount(DeviceGetCountReq {}))
        .unwrap()
    else {
        panic!("unexpected reply")
    };
    assert_eq!(n.count, 1);
}

#[test]
fn the_memory_quota_applies_inside_workers() {
    let t = start(|c| c.session_memory = Some(32 << 20));
    let out = {
        let exe = common::c_program("hold_memory");
        let mut cmd = Command::new(&exe);
        cmd.arg("64");
        common::shim_env(&mut cmd, &t.srv.connection_path);
        cmd.output().unwrap()
    };
    assert!(!out.status.success(), "{}", common::show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("OUT_OF_MEMORY"),
        "{}",
        common::show(&out)
    );
    let mut ok = spawn_holder(&t, "16");
    common::wait_ready(&mut ok, "an allocation within the quota succeeds");
    ok.kill().unwrap();
    ok.wait().unwrap();
}

#[test]
fn kernel_output_from_a_worker_reaches_the_client() {
    let module = common::kernel_module("device_printf", "ptx");
    let exe = common::c_program("device_printf");
    let run = |t: &TestServer| {
        let mut cmd = Command::new(&exe);
        cmd.arg(&module);
        common::shim_env(&mut cmd, &t.srv.connection_path);
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{}", common::show(&out));
        let mut lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect();
        lines.sort();
        lines
    };
    let in_worker = run(&start(|_| {}));
    let in_server = run(&start(|c| c.isolation = Some(Isolation::Thread)));
    assert!(in_worker.len() > 40, "{in_worker:?}");
    assert!(in_worker.iter().any(|l| l == "device_printf: PASSED"));
    assert_eq!(in_worker, in_server);
}

#[test]
fn visible_devices_and_exclusive_devices() {
    let t = start(|c| {
        c.cpu_devices = 3;
        c.exclusive = server::Exclusive::Some(vec![1]);
        c.isolation = Some(Isolation::Thread);
    });
    let listing = |visible: &str| {
        let out = Command::new(common::rgpu())
            .args(["devices", "--json", "--connection-file"])
            .arg(&t.srv.connection_path)
            .env("RGPU_VISIBLE_DEVICES", visible)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", common::show(&out));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .map(|d| {
                (
                    d["server_index"].as_u64().unwrap(),
                    d["policy"].as_str().unwrap().to_string(),
                )
            })
            .collect::<Vec<_>>()
    };
    // CUDA_VISIBLE_DEVICES rules, applied to the server's list.
    assert_eq!(
        listing("2,0"),
        vec![(2, "shared".into()), (0, "shared".into())]
    );
    assert_eq!(listing("1,9,0"), vec![(1, "exclusive".into())]);
    // An exclusive device serves one session; another gets DEVICE_UNAVAILABLE at once.
    wait_until("listing sessions end", Duration::from_secs(5), || {
        t.srv.sessions() == 0
    });
    let mut holder = {
        let exe = common::c_program("hold_memory");
        let mut cmd = Command::new(&exe);
        cmd.arg("8").stdout(Stdio::piped());
        common::shim_env(&mut cmd, &t.srv.connection_path);
        cmd.env("RGPU_VISIBLE_DEVICES", "1");
        cmd.spawn().unwrap()
    };
    common::wait_ready(&mut holder, "the holder allocated its memory");
    let demo = |visible: &str| {
        let mut cmd = Command::new(common::c_program("demo_driver_api"));
        common::shim_env(&mut cmd, &t.srv.connection_path);
        cmd.env("RGPU_VISIBLE_DEVICES", visible);
        cmd.output().unwrap()
    };
    let busy = demo("1");
    assert!(!busy.status.success());
    assert!(
        String::from_utf8_lossy(&busy.stderr).contains("CUDA_ERROR_DEVICE_UNAVAILABLE"),
        "{}",
        common::show(&busy)
    );
    let shared = demo("0");
    assert!(shared.status.success(), "{}", common::show(&shared));
    holder.kill().unwrap();
    holder.wait().unwrap();
}

/// GPU tests: run where `rgpu server --device gpu` can start (an NVIDIA driver and GPU, and a
/// driver at least as new as the pinned toolkit that builds the test programs); elsewhere they
/// print why they were skipped. `bench/gpu-check.sh` is the fuller check on GPU machines.
fn gpu_server() -> Option<TestServer> {
    gpu_server_with(DeviceKind::Gpu)
}

fn gpu_server_with(kind: DeviceKind) -> Option<TestServer> {
    let driver = match rgpu_server::device::gpu::load(None) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("SKIPPED (no GPU): {e}");
            return None;
        }
    };
    if driver.version < 13050 {
        eprintln!(
            "SKIPPED: the GPU's driver is CUDA {}.{}, older than the toolkit that builds the tests (13.5)",
            driver.version / 1000,
            driver.version % 1000 / 10
        );
        return None;
    }
    Some(start(|c| {
        c.device = kind;
        c.isolation = Some(Isolation::Process);
    }))
}

#[test]
fn gpu_runs_driver_programs_and_returns_a_killed_clients_memory() {
    let Some(t) = gpu_server() else { return };
    let module = common::kernel_module("vadd", "ptx");
    let mut cmd = Command::new(common::c_program("launch_vadd"));
    cmd.arg(&module);
    common::shim_env(&mut cmd, &t.srv.connection_path);
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", common::show(&out));
    let mut holder = spawn_holder(&t, "1024");
    common::wait_ready(&mut holder, "the holder allocated its memory");
    let pid = t.srv.worker_pids()[0];
    holder.kill().unwrap();
    holder.wait().unwrap();
    let took = wait_until("the GPU worker exits", Duration::from_secs(5), || {
        !alive(pid)
    });
    eprintln!("GPU worker (and its memory) gone {took:?} after SIGKILL");
}

#[test]
fn gpu_server_offers_cpu_devices_beside_its_gpus() {
    let Some(t) = gpu_server_with(DeviceKind::GpuCpu) else {
        return;
    };
    let gpus = rgpu_server::device::gpu::loaded().unwrap().gpus.len();
    let demo = |visible: Option<String>| {
        let mut cmd = Command::new(common::c_program("demo_driver_api"));
        common::shim_env(&mut cmd, &t.srv.connection_path);
        if let Some(v) = visible {
            cmd.env("RGPU_VISIBLE_DEVICES", v);
        }
        cmd.output().unwrap()
    };
    // By default a client gets the GPUs; the CPU device (index G) when it asks for it.
    let gpu = demo(None);
    assert!(gpu.status.success(), "{}", common::show(&gpu));
    assert!(!String::from_utf8_lossy(&gpu.stdout).contains("rgpu CPU device"));
    let cpu = demo(Some(gpus.to_string()));
    assert!(cpu.status.success(), "{}", common::show(&cpu));
    assert!(String::from_utf8_lossy(&cpu.stdout).contains("rgpu CPU device"));
    // Both kinds at once are refused with the reason.
    let both = demo(Some(format!("0,{gpus}")));
    assert!(!both.status.success());
    assert!(
        String::from_utf8_lossy(&both.stderr).contains("one kind"),
        "{}",
        common::show(&both)
    );
}
