//! The server as a whole: refusals (token, certificate, protocol version), several clients at
//! once, release of a SIGKILLed client's memory, malformed frames, and the shim's exported surface.

mod common;

use common::{free_memory, start_server as start};

use rgpu_protocol::client::{Client, ClientConfig, ClientError};
use rgpu_protocol::connfile::ConnectionFile;
use rgpu_protocol::messages::*;
use rgpu_protocol::wire::CallHeader;
use rgpu_server::server::{self, DeviceKind, ServerConfig};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn connect(cf: &ConnectionFile) -> Result<Client, ClientError> {
    Client::connect(ClientConfig::new(cf.clone()))
}

#[test]
fn a_good_client_is_accepted_and_served() {
    let t = start(|_| {});
    let c = connect(&t.srv.connection).unwrap();
    assert!(c.welcome().session > 0);
    let Reply::DeviceGetCount(n) = c
        .call(
            CallHeader::default(),
            &Request::DeviceGetCount(DeviceGetCountReq {}),
        )
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(n.count, 1);
}

#[test]
fn wrong_token_is_refused_with_a_clear_message() {
    let t = start(|_| {});
    let mut cf = t.srv.connection.clone();
    cf.token = "0".repeat(64);
    match connect(&cf) {
        Err(ClientError::Refused(why)) => assert!(why.contains("invalid access token"), "{why}"),
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("a wrong token was accepted"),
    }
}

#[test]
fn wrong_certificate_is_refused() {
    let t = start(|_| {});
    let mut cf = t.srv.connection.clone();
    cf.fingerprint = format!("sha256:{}", "ab".repeat(32));
    match connect(&cf) {
        Err(ClientError::Transport(why)) => {
            assert!(
                why.contains("does not match the pinned fingerprint"),
                "{why}"
            )
        }
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("an unpinned certificate was accepted"),
    }
}

#[test]
fn protocol_version_mismatch_is_refused_both_ways() {
    let t = start(|_| {});
    let mut cfg = ClientConfig::new(t.srv.connection.clone());
    cfg.protocol_version = 999;
    match Client::connect(cfg) {
        Err(ClientError::Refused(why)) => {
            assert!(why.contains("protocol version mismatch"), "{why}");
            assert!(why.contains("999"), "{why}");
        }
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("a mismatched protocol version was accepted"),
    }
}

#[test]
fn insecure_mode_only_when_asked_for() {
    let t = start(|c| c.insecure = true);
    assert!(t.srv.connection.insecure);
    assert!(t.srv.connection.fingerprint.is_empty());
    connect(&t.srv.connection).unwrap();
    // A secure server never writes an insecure connection file.
    let s = start(|_| {});
    assert!(!s.srv.connection.insecure);
    let mut cf = s.srv.connection.clone();
    cf.token.clear();
    assert!(connect(&cf).is_err());
}

#[test]
fn connection_file_is_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let t = start(|_| {});
    let mode = std::fs::metadata(&t.srv.connection_path)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn shim_reports_refusal_to_the_program() {
    let t = start(|_| {});
    let dir = tempfile::tempdir().unwrap();
    let mut cf = t.srv.connection.clone();
    cf.token = "f".repeat(64);
    let bad = dir.path().join("bad.json");
    cf.write(&bad).unwrap();
    let exe = common::c_program("demo_driver_api");
    let mut cmd = Command::new(&exe);
    common::shim_env(&mut cmd, &bad);
    let out = cmd.output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("invalid access token"),
        "{}",
        common::show(&out)
    );
}

#[test]
fn killed_client_memory_comes_back_while_others_keep_working() {
    let t = start(|c| c.idle_timeout = Duration::from_secs(1));
    let observer = connect(&t.srv.connection).unwrap();
    let before = free_memory(&observer);
    let exe = common::c_program("hold_memory");
    let mut cmd = Command::new(&exe);
    cmd.arg("256").stdout(Stdio::piped());
    common::shim_env(&mut cmd, &t.srv.connection_path);
    let mut child = cmd.spawn().unwrap();
    common::wait_ready(&mut child, "the holder allocated its memory");
    let during = free_memory(&observer);
    assert_eq!(
        before - during,
        256 << 20,
        "the second client's allocation is visible"
    );
    // A third client works at the same time.
    let demo = common::c_program("demo_driver_api");
    let mut cmd = Command::new(&demo);
    common::shim_env(&mut cmd, &t.srv.connection_path);
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", common::show(&out));

    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let t0 = Instant::now();
    loop {
        let now = free_memory(&observer);
        if now == before {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "memory of the killed client not released after {:?}",
            t0.elapsed()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("released {:?} after SIGKILL", t0.elapsed());
}

#[test]
fn malformed_frames_close_only_that_connection() {
    let t = start(|_| {});
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let cf = t.srv.connection.clone();
    rt.block_on(async {
        let mut ep = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
        ep.set_default_client_config(
            rgpu_protocol::transport::client_config(Some(&cf.fingerprint), Duration::from_secs(5))
                .unwrap(),
        );
        for garbage in [
            vec![0xff; 16],                                  // bad length prefix (too large)
            vec![5, 0, 0, 0, 1, 2, 3, 4, 5],                 // short hello
            [&40u32.to_le_bytes()[..], &[1u8; 40]].concat(), // a call before any hello
        ] {
            let conn = ep
                .connect(t.srv.addr, &cf.server_name)
                .unwrap()
                .await
                .unwrap();
            let (mut s, mut r) = conn.open_bi().await.unwrap();
            s.write_all(&garbage).await.unwrap();
            let _ = s.finish();
            // The server answers with a refusal or closes; it must not hang or crash.
            let res = tokio::time::timeout(Duration::from_secs(5), r.read_to_end(1 << 20)).await;
            assert!(res.is_ok(), "server hung on malformed input");
        }
    });
    // Everyone else is still served.
    let c = connect(&t.srv.connection).unwrap();
    assert!(free_memory(&c) > 0);
}

#[test]
fn shim_exports_every_cuda_h_function_with_the_driver_soname() {
    let shim = common::shim();
    let out = Command::new("nm")
        .args(["-D", "--defined-only"])
        .arg(&shim)
        .output()
        .unwrap();
    assert!(out.status.success());
    let syms: std::collections::HashSet<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2).map(str::to_string))
        .collect();
    let missing: Vec<_> = CUDA_H_FUNCTIONS
        .iter()
        .filter(|f| !syms.contains(**f))
        .collect();
    assert!(missing.is_empty(), "not exported: {missing:?}");
    assert!(CUDA_H_FUNCTIONS.len() > 600);
    let out = Command::new("readelf")
        .arg("-d")
        .arg(&shim)
        .output()
        .unwrap();
    let dyn_section = String::from_utf8_lossy(&out.stdout);
    assert!(
        dyn_section.contains("Library soname: [libcuda.so.1]"),
        "{dyn_section}"
    );
}

#[test]
fn without_a_server_the_program_gets_an_error_not_a_hang() {
    let exe = common::c_program("demo_driver_api");
    let out = Command::new(&exe)
        .env("LD_PRELOAD", common::shim())
        .env_remove("RGPU_CONNECTION_FILE")
        .env_remove("RGPU_SERVER")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no rgpu server configured"),
        "{}",
        common::show(&out)
    );
}

#[test]
fn a_client_that_exits_without_freeing_is_released_at_once() {
    // Idle timeout far above the bound checked: the release must come from the client's close.
    let t = start(|c| c.idle_timeout = Duration::from_secs(60));
    let observer = connect(&t.srv.connection).unwrap();
    let before = free_memory(&observer);
    let exe = common::c_program("leak_and_exit");
    let mut cmd = Command::new(&exe);
    common::shim_env(&mut cmd, &t.srv.connection_path);
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", common::show(&out));
    let t0 = Instant::now();
    while free_memory(&observer) != before {
        assert!(
            t0.elapsed() < Duration::from_secs(2),
            "not released after a normal exit"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn device_gpu_without_a_driver_fails_clearly_and_auto_falls_back_to_the_cpu() {
    // Point the driver at the rgpu shim itself: the server must recognise and refuse it.
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let mut cfg = ServerConfig::new(dir.path().join("state"));
    cfg.listen = "127.0.0.1:0".parse().unwrap();
    cfg.device = DeviceKind::Gpu;
    cfg.cuda_driver = Some(common::shim());
    let e = rt
        .block_on(server::start(cfg.clone()))
        .err()
        .expect("must fail");
    let msg = e.to_string();
    assert!(
        msg.contains("--device gpu") && msg.contains("rgpu shim"),
        "{msg}"
    );
    // The same through the command line: a clear message and a failing exit status.
    let out = Command::new(common::rgpu())
        .args([
            "server",
            "--device",
            "gpu",
            "--listen",
            "127.0.0.1:0",
            "--state-dir",
        ])
        .arg(dir.path().join("cli"))
        .arg("--cuda-driver")
        .arg(common::shim())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("rgpu shim"),
        "{}",
        common::show(&out)
    );
    // GPUs with CPU devices beside them need the GPUs too.
    cfg.device = DeviceKind::GpuCpu;
    let e = rt
        .block_on(server::start(cfg.clone()))
        .err()
        .expect("must fail");
    assert!(e.to_string().contains("--device gpu+cpu"), "{e}");
    // `auto` serves the CPU device instead, and clients get it.
    cfg.device = DeviceKind::Auto;
    let srv = rt.block_on(server::start(cfg)).unwrap();
    assert_eq!(srv.devices.kind(), "cpu");
    let c = connect(&srv.connection).unwrap();
    assert!(free_memory(&c) > 0);
}

#[test]
fn compressed_payloads_round_trip_through_the_shim_and_the_client() {
    let t = start(|_| {});
    // Protocol level: a compressible 8 MiB upload and its download.
    let mut cfg = ClientConfig::new(t.srv.connection.clone());
    cfg.compress = true;
    let c = Client::connect(cfg).unwrap();
    let h = common::primary(&c);
    let n = 8usize << 20;
    let Reply::MemAlloc(a) = c
        .call(h, &Request::MemAlloc(MemAllocReq { bytesize: n as u64 }))
        .unwrap()
    else {
        panic!()
    };
    let data: Vec<u8> = (0..n).map(|i| (i / 4096) as u8).collect();
    c.call(
        h,
        &Request::MemcpyHtoD(MemcpyHtoDReq {
            dst: a.dptr,
            src: data.clone(),
            byte_count: n as u64,
        }),
    )
    .unwrap();
    let Reply::MemcpyDtoH(back) = c
        .call(
            h,
            &Request::MemcpyDtoH(MemcpyDtoHReq {
                src: a.dptr,
                byte_count: n as u64,
            }),
        )
        .unwrap()
    else {
        panic!()
    };
    assert!(back.dst == data, "data changed on the way");
    // Through the shim, without the shared-memory path, and with a bad setting refused.
    let exe = common::c_program("big_copies");
    let mut cmd = Command::new(&exe);
    common::shim_env(&mut cmd, &t.srv.connection_path);
    let out = cmd
        .env("RGPU_COMPRESS", "lz4")
        .env("RGPU_SHM", "0")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", common::show(&out));
    let mut cmd = Command::new(&exe);
    common::shim_env(&mut cmd, &t.srv.connection_path);
    let out = cmd.env("RGPU_COMPRESS", "zip").output().unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("RGPU_COMPRESS=zip"),
        "{}",
        common::show(&out)
    );
}
