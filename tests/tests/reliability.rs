//! Reliability and limits: a dead server gives errors in bounded time, graceful shutdown, session
//! limits, memory quotas, token rotation without restart.

mod common;

use common::{primary, start_server as start};

use rgpu_protocol::client::{Client, ClientConfig, ClientError};
use rgpu_protocol::messages::*;
use rgpu_protocol::wire::CallHeader;
use std::io::{BufRead, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn alloc(c: &Client, h: CallHeader, n: u64) -> Result<u64, ClientError> {
    match c.call(h, &Request::MemAlloc(MemAllocReq { bytesize: n }))? {
        Reply::MemAlloc(r) => Ok(r.dptr),
        _ => panic!(),
    }
}

#[test]
fn per_session_memory_quota() {
    let t = start(|c| c.session_memory = Some(64 << 20));
    let c = Client::connect(ClientConfig::new(t.srv.connection.clone())).unwrap();
    let h = primary(&c);
    let a = alloc(&c, h, 48 << 20).unwrap();
    let err = alloc(&c, h, 32 << 20).unwrap_err();
    assert_eq!(
        err,
        ClientError::Cuda(rgpu_protocol::error::CuError::OUT_OF_MEMORY)
    );
    c.call(h, &Request::MemFree(MemFreeReq { dptr: a }))
        .unwrap();
    alloc(&c, h, 32 << 20).unwrap();
    // Another session has its own quota.
    let c2 = Client::connect(ClientConfig::new(t.srv.connection.clone())).unwrap();
    let h2 = primary(&c2);
    alloc(&c2, h2, 60 << 20).unwrap();
}

#[test]
fn per_session_limits_on_streams_events_and_modules() {
    let t = start(|c| {
        c.limits = rgpu_server::session::Limits {
            streams: 2,
            events: 1,
            modules: 1,
            ..Default::default()
        }
    });
    let c = Client::connect(ClientConfig::new(t.srv.connection.clone())).unwrap();
    let h = primary(&c);
    let oom = ClientError::Cuda(rgpu_protocol::error::CuError::OUT_OF_MEMORY);
    let stream = || c.call(h, &Request::StreamCreate(StreamCreateReq { flags: 0 }));
    let Reply::StreamCreate(s1) = stream().unwrap() else {
        panic!()
    };
    stream().unwrap();
    assert_eq!(stream().unwrap_err(), oom);
    c.call(
        h,
        &Request::StreamDestroy(StreamDestroyReq { stream: s1.stream }),
    )
    .unwrap();
    stream().expect("a destroyed stream frees its place");
    let event = || c.call(h, &Request::EventCreate(EventCreateReq { flags: 0 }));
    event().unwrap();
    assert_eq!(event().unwrap_err(), oom);
    let ptx = b".version 8.0\n.target sm_75\n.address_size 64\n.visible .entry k()\n{\n ret;\n}\n"
        .to_vec();
    let load = |img: &[u8]| {
        let Reply::ModuleLoad(r) = c
            .call(
                h,
                &Request::ModuleLoad(ModuleLoadReq {
                    hash: rgpu_protocol::image::content_hash(img),
                    image: img.to_vec(),
                    library: false,
                }),
            )
            .unwrap()
        else {
            panic!()
        };
        r
    };
    assert_eq!(load(&ptx).error, 0);
    let second = load(&ptx);
    assert_eq!(second.error, 2, "CUDA_ERROR_OUT_OF_MEMORY: {}", second.log);
    assert!(second.log.contains("limit"), "{}", second.log);
}

#[test]
fn session_limit_refuses_with_a_clear_message() {
    let t = start(|c| c.max_sessions = 1);
    let first = Client::connect(ClientConfig::new(t.srv.connection.clone())).unwrap();
    match Client::connect(ClientConfig::new(t.srv.connection.clone())) {
        Err(ClientError::Refused(why)) => assert!(why.contains("limit of 1 sessions"), "{why}"),
        other => panic!("expected a refusal, got {:?}", other.map(|_| ())),
    }
    drop(first);
}

#[test]
fn tokens_rotate_without_restart() {
    let t = start(|_| {});
    let old = t.srv.connection.clone();
    Client::connect(ClientConfig::new(old.clone())).unwrap();
    let new_token = "a1".repeat(32);
    std::fs::write(t.dir.path().join("state/tokens"), format!("{new_token}\n")).unwrap();
    let mut cf = old.clone();
    cf.token = new_token;
    Client::connect(ClientConfig::new(cf)).unwrap();
    match Client::connect(ClientConfig::new(old)) {
        Err(ClientError::Refused(why)) => assert!(why.contains("invalid access token")),
        other => panic!("the revoked token was accepted: {:?}", other.map(|_| ())),
    }
}

#[test]
fn graceful_shutdown_stops_accepting_and_tells_clients() {
    let t = start(|_| {});
    let c = Client::connect(ClientConfig::new(t.srv.connection.clone())).unwrap();
    let h = primary(&c);
    assert_eq!(t.srv.sessions(), 1);
    let t0 = Instant::now();
    t.rt.block_on(t.srv.shutdown(Duration::from_millis(300)));
    assert!(t0.elapsed() < Duration::from_secs(5));
    // The open session was closed: its next call fails instead of hanging.
    let e = c
        .call(h, &Request::DeviceGetCount(DeviceGetCountReq {}))
        .unwrap_err();
    assert!(matches!(e, ClientError::Transport(_)), "{e:?}");
    // Nobody new gets in.
    let mut cfg = ClientConfig::new(t.srv.connection.clone());
    cfg.connect_timeout = Duration::from_secs(2);
    assert!(Client::connect(cfg).is_err());
}

/// A program whose server dies (SIGKILL) gets a CUDA error within RGPU_TIMEOUT, not a hang,
/// and later calls fail fast.
#[test]
fn dead_server_gives_errors_in_bounded_time() {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, conn) = common::spawn_server(dir.path(), &[]);
    let exe = common::c_program("wait_then_copy");
    let mut cmd = Command::new(&exe);
    common::shim_env(&mut cmd, &conn);
    cmd.env("RGPU_TIMEOUT", "2")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    let mut prog = cmd.spawn().unwrap();
    let mut out = std::io::BufReader::new(prog.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "READY");
    server.kill().unwrap();
    server.wait().unwrap();
    let t0 = Instant::now();
    prog.stdin.take().unwrap().write_all(b"go\n").unwrap();
    let status = prog.wait().unwrap();
    let elapsed = t0.elapsed();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    assert!(status.success(), "{rest}");
    assert!(
        rest.contains("RESULT CUDA_ERROR_DEVICE_UNAVAILABLE"),
        "{rest}"
    );
    assert!(
        rest.contains("AFTER CUDA_ERROR_DEVICE_UNAVAILABLE"),
        "{rest}"
    );
    assert!(elapsed < Duration::from_secs(6), "took {elapsed:?}");
}

/// The command line end to end: a standalone server, `rgpu devices`, `rgpu run
/// --connection-file`, and SIGTERM shutting the server down cleanly.
#[test]
fn standalone_server_devices_run_and_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, conn) = common::spawn_server(
        dir.path(),
        &[
            "--cpu-devices",
            "2",
            "--cpu-memory",
            "512M",
            "--shutdown-grace",
            "1",
        ],
    );
    let out = Command::new(common::rgpu())
        .args(["devices", "--json", "--connection-file"])
        .arg(&conn)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", common::show(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 2);
    assert_eq!(v[1]["name"], "rgpu CPU device");
    assert_eq!(v[0]["memory_bytes"], 512u64 << 20);
    assert_eq!(v[0]["free_bytes"], 512u64 << 20, "nothing allocated yet");
    assert_eq!(v[0]["compute_capability"], "7.5");
    let demo = common::c_program("demo_driver_api");
    let out = Command::new(common::rgpu())
        .args(["run", "--connection-file"])
        .arg(&conn)
        .arg("--")
        .arg(&demo)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", common::show(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("2 device(s)"),
        "{}",
        common::show(&out)
    );
    // SAFETY: sending SIGTERM to our own child process.
    unsafe { libc::kill(server.id() as i32, libc::SIGTERM) };
    let t0 = Instant::now();
    let status = server.wait().unwrap();
    assert!(status.success(), "server exit: {status:?}");
    assert!(t0.elapsed() < Duration::from_secs(5));
}
