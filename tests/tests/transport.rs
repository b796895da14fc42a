//! The two paths to a server: its local Unix socket (clients on the same machine; no TLS, the
//! kernel vouches for the peer, the token and the pinned certificate are still checked) and
//! QUIC. Both serve the same calls; the local one is taken by default where it exists.

mod common;

use common::start_server as start;
use rgpu_protocol::client::{Client, ClientConfig, ClientError, TransportChoice};
use rgpu_protocol::connfile::ConnectionFile;
use rgpu_protocol::messages::*;
use rgpu_protocol::wire::{self, kind, CallHeader, HandshakeReply, Hello, Welcome};
use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::time::{Duration, Instant};

fn connect_via(cf: &ConnectionFile, t: TransportChoice) -> Result<Client, ClientError> {
    let mut cfg = ClientConfig::new(cf.clone());
    cfg.transport = t;
    Client::connect(cfg)
}

/// Uploads a pattern, runs pipelined memsets over part of it, and reads it back.
fn round_trip(c: &Client) {
    let h = common::primary(c);
    let Reply::MemAlloc(m) = c
        .call(h, &Request::MemAlloc(MemAllocReq { bytesize: 1 << 20 }))
        .unwrap()
    else {
        panic!("unexpected reply")
    };
    let data: Vec<u8> = (0..1u32 << 20).map(|i| (i * 7 % 251) as u8).collect();
    c.call(
        h,
        &Request::MemcpyHtoD(MemcpyHtoDReq {
            dst: m.dptr,
            src: data.clone(),
            byte_count: data.len() as u64,
        }),
    )
    .unwrap();
    for i in 0..100u64 {
        c.send(
            h,
            &Request::MemsetD8Async(MemsetD8AsyncReq {
                dst: m.dptr + i * 16,
                value: i as u8,
                count: 16,
                stream: 0,
            }),
        )
        .unwrap();
    }
    let Reply::MemcpyDtoH(r) = c
        .call(
            h,
            &Request::MemcpyDtoH(MemcpyDtoHReq {
                src: m.dptr,
                byte_count: data.len() as u64,
            }),
        )
        .unwrap()
    else {
        panic!("unexpected reply")
    };
    let mut want = data;
    for i in 0..100usize {
        want[i * 16..i * 16 + 16].fill(i as u8);
    }
    assert!(r.dst == want, "the data read back differs");
}

#[test]
fn the_local_socket_is_owner_only_taken_by_default_and_quic_still_works() {
    use std::os::unix::fs::PermissionsExt;
    let t = start(|_| {});
    let path = t
        .srv
        .local_socket
        .clone()
        .expect("a local socket is offered");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "socket mode {mode:o}");
    assert_eq!(
        t.srv.connection.local_socket.as_deref(),
        Some(path.to_str().unwrap())
    );
    let local = connect_via(&t.srv.connection, TransportChoice::Auto).unwrap();
    assert!(local.is_local_socket());
    let quic = connect_via(&t.srv.connection, TransportChoice::Quic).unwrap();
    assert!(!quic.is_local_socket());
    round_trip(&local);
    round_trip(&quic);
    assert_ne!(local.welcome().session, quic.welcome().session);
}

#[test]
fn the_local_socket_checks_the_token_and_the_pinned_certificate() {
    let t = start(|_| {});
    let mut cf = t.srv.connection.clone();
    cf.token = "0".repeat(64);
    match connect_via(&cf, TransportChoice::Local) {
        Err(ClientError::Refused(why)) => assert!(why.contains("invalid access token"), "{why}"),
        other => panic!("a wrong token was not refused: {:?}", other.map(|_| ())),
    }
    let mut cf = t.srv.connection.clone();
    cf.fingerprint = format!("sha256:{}", "ab".repeat(32));
    match connect_via(&cf, TransportChoice::Local) {
        Err(ClientError::Transport(why)) => {
            assert!(
                why.contains("does not match the pinned fingerprint"),
                "{why}"
            )
        }
        other => panic!("a wrong pin was accepted: {:?}", other.map(|_| ())),
    }
}

#[test]
fn asking_for_the_local_socket_where_there_is_none_is_a_clear_error() {
    let t = start(|c| c.local_socket = None);
    assert!(t.srv.connection.local_socket.is_none());
    match connect_via(&t.srv.connection, TransportChoice::Local) {
        Err(ClientError::Transport(why)) => assert!(why.contains("no Unix socket"), "{why}"),
        other => panic!("unexpected: {:?}", other.map(|_| ())),
    }
    // Auto falls back to QUIC.
    let c = connect_via(&t.srv.connection, TransportChoice::Auto).unwrap();
    assert!(!c.is_local_socket());
}

#[test]
fn a_malformed_frame_on_the_local_socket_closes_only_that_connection() {
    let t = start(|_| {});
    let good = connect_via(&t.srv.connection, TransportChoice::Local).unwrap();
    common::primary(&good);
    let mut raw = UnixStream::connect(t.srv.local_socket.as_ref().unwrap()).unwrap();
    let hello = Hello {
        spec_hash: SPEC_HASH,
        token: t.srv.connection.token.clone(),
        ..Default::default()
    };
    raw.write_all(&wire::handshake_frame(
        kind::HELLO,
        wire::PROTOCOL_VERSION,
        &hello,
    ))
    .unwrap();
    let mut len = [0u8; 4];
    raw.read_exact(&mut len).unwrap();
    let mut welcome = vec![0u8; u32::from_le_bytes(len) as usize];
    raw.read_exact(&mut welcome).unwrap();
    raw.write_all(&[6, 0, 0, 0, kind::CALL, 0xde, 0xad, 0xbe, 0xef, 0])
        .unwrap();
    raw.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut rest = Vec::new();
    assert!(
        raw.read_to_end(&mut rest).is_ok(),
        "the server must close the connection"
    );
    // The other client is unaffected.
    round_trip(&good);
}

#[test]
fn a_server_that_stops_answering_on_the_local_socket_fails_calls_in_bounded_time() {
    // A fake server that completes the handshake, then reads calls and never answers.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("silent.sock");
    let listener = UnixListener::bind(&path).unwrap();
    std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut len = [0u8; 4];
        s.read_exact(&mut len).unwrap();
        let mut hello = vec![0u8; u32::from_le_bytes(len) as usize];
        s.read_exact(&mut hello).unwrap();
        let w = Welcome {
            session: 1,
            server_version: "silent".into(),
            driver_version: 13000,
            devices: vec![],
            fingerprint: String::new(),
            ..Default::default()
        };
        s.write_all(&wire::handshake_frame(
            kind::WELCOME,
            wire::PROTOCOL_VERSION,
            &HandshakeReply::Welcome(w),
        ))
        .unwrap();
        let mut sink = vec![0u8; 1 << 16];
        while matches!(s.read(&mut sink), Ok(n) if n > 0) {}
    });
    let cf = ConnectionFile {
        address: "127.0.0.1:9".into(),
        server_name: "rgpu-server".into(),
        fingerprint: String::new(),
        token: String::new(),
        insecure: true,
        local_socket: Some(path.display().to_string()),
        host: std::fs::read_to_string("/proc/sys/kernel/hostname")
            .unwrap()
            .trim()
            .to_string(),
        visible_devices: None,
    };
    let mut cfg = ClientConfig::new(cf);
    cfg.transport = TransportChoice::Local;
    cfg.idle_timeout = Duration::from_millis(300);
    let c = std::sync::Arc::new(Client::connect(cfg).unwrap());
    let t0 = Instant::now();
    let (tx, rx) = std::sync::mpsc::channel();
    let c2 = c.clone();
    std::thread::spawn(move || {
        let _ = tx.send(c2.call(
            CallHeader::default(),
            &Request::DeviceGetCount(DeviceGetCountReq {}),
        ));
    });
    let r = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("the call hangs on a silent server");
    match r {
        Err(ClientError::Transport(why)) => assert!(why.contains("stopped answering"), "{why}"),
        other => panic!("unexpected: {other:?}"),
    }
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
    // Later calls fail at once.
    let t1 = Instant::now();
    assert!(c
        .call(
            CallHeader::default(),
            &Request::DeviceGetCount(DeviceGetCountReq {})
        )
        .is_err());
    assert!(t1.elapsed() < Duration::from_millis(200));
}

#[test]
fn a_cuda_program_runs_the_same_over_quic_and_the_local_socket() {
    let exe = common::c_program("demo_driver_api");
    let mut outs = Vec::new();
    for transport in ["quic", "local"] {
        let out = std::process::Command::new(common::rgpu())
            .args(["run", "--device", "cpu", "--"])
            .arg(&exe)
            .env("RGPU_TRANSPORT", transport)
            .env("RGPU_LOG", "warn")
            .output()
            .unwrap();
        assert!(out.status.success(), "{transport}: {}", common::show(&out));
        outs.push(String::from_utf8_lossy(&out.stdout).to_string());
    }
    assert_eq!(outs[0], outs[1]);
    assert!(!outs[0].is_empty());
}

#[test]
fn large_copies_spread_over_bulk_lanes_keep_their_data_and_their_order() {
    let t = start(|_| {});
    let mut cfg = ClientConfig::new(t.srv.connection.clone());
    cfg.transport = TransportChoice::Quic;
    cfg.bulk_lanes = 2;
    let c = Client::connect(cfg).unwrap();
    assert_eq!(c.bulk_lanes(), 2);
    let h = common::primary(&c);
    const CHUNK: usize = 1 << 20;
    let n = 9 * CHUNK;
    let Reply::MemAlloc(m) = c
        .call(h, &Request::MemAlloc(MemAllocReq { bytesize: n as u64 }))
        .unwrap()
    else {
        panic!("unexpected reply")
    };
    let data: Vec<u8> = (0..n).map(|i| (i * 13 % 253) as u8).collect();
    let ups: Vec<Request> = (0..n)
        .step_by(CHUNK)
        .map(|off| {
            Request::MemcpyHtoD(MemcpyHtoDReq {
                dst: m.dptr + off as u64,
                src: data[off..off + CHUNK].to_vec(),
                byte_count: CHUNK as u64,
            })
        })
        .collect();
    c.call_batch(h, &ups).unwrap();
    // Pipelined work on the main connection, then a batched download over the lanes: the
    // download must see it.
    c.send(
        h,
        &Request::MemsetD8Async(MemsetD8AsyncReq {
            dst: m.dptr + 5 * CHUNK as u64,
            value: 0xee,
            count: 100,
            stream: 0,
        }),
    )
    .unwrap();
    let downs: Vec<Request> = (0..n)
        .step_by(CHUNK)
        .map(|off| {
            Request::MemcpyDtoH(MemcpyDtoHReq {
                src: m.dptr + off as u64,
                byte_count: CHUNK as u64,
            })
        })
        .collect();
    let mut got = Vec::new();
    for r in c.call_batch(h, &downs).unwrap() {
        let Reply::MemcpyDtoH(r) = r else {
            panic!("unexpected reply")
        };
        got.extend(r.dst);
    }
    let mut want = data;
    want[5 * CHUNK..5 * CHUNK + 100].fill(0xee);
    assert!(got == want, "data differs after the lanes");
    assert_eq!(c.bulk_lanes(), 2, "the lanes are still open");
}
