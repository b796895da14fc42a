//! Network blips: a UDP proxy between client and server drops every packet for longer than the
//! idle timeout, so the QUIC connection dies while both processes live. The client reconnects
//! and takes its session up again: nothing is lost, nothing runs twice. Past the server's
//! resume window the session is gone and the client gets a clear error.

mod common;

use common::start_server as start;
use rgpu_protocol::client::{Client, ClientConfig, ClientError, TransportChoice};
use rgpu_protocol::messages::*;
use rgpu_protocol::wire::CallHeader;
use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A UDP relay that can cut the path both ways.
struct Proxy {
    addr: SocketAddr,
    blocked: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn proxy(server: SocketAddr) -> Proxy {
    let front = Arc::new(UdpSocket::bind("127.0.0.1:0").unwrap());
    front
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let addr = front.local_addr().unwrap();
    let blocked = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let (b, st) = (blocked.clone(), stop.clone());
    std::thread::spawn(move || {
        let upstreams: Mutex<HashMap<SocketAddr, Arc<UdpSocket>>> = Mutex::new(HashMap::new());
        let mut buf = vec![0u8; 65536];
        while !st.load(Ordering::SeqCst) {
            let Ok((n, client)) = front.recv_from(&mut buf) else {
                continue;
            };
            if b.load(Ordering::SeqCst) {
                continue;
            }
            let up = upstreams
                .lock()
                .unwrap()
                .entry(client)
                .or_insert_with(|| {
                    // A new client address (a reconnect): its own upstream socket and relay.
                    let up = Arc::new(UdpSocket::bind("127.0.0.1:0").unwrap());
                    up.connect(server).unwrap();
                    up.set_read_timeout(Some(Duration::from_millis(50)))
                        .unwrap();
                    let (up2, front2, b2, st2) = (up.clone(), front.clone(), b.clone(), st.clone());
                    std::thread::spawn(move || {
                        let mut buf = vec![0u8; 65536];
                        while !st2.load(Ordering::SeqCst) {
                            if let Ok(n) = up2.recv(&mut buf) {
                                if !b2.load(Ordering::SeqCst) {
                                    let _ = front2.send_to(&buf[..n], client);
                                }
                            }
                        }
                    });
                    up
                })
                .clone();
            let _ = up.send(&buf[..n]);
        }
    });
    Proxy {
        addr,
        blocked,
        stop,
    }
}

/// Each launch adds 1 to the counter at `p`.
const INC_PTX: &str = r#"
.version 8.0
.target sm_75
.address_size 64
.visible .entry inc(.param .u64 p)
{
    .reg .b64 %rd<2>;
    .reg .b32 %r<2>;
    ld.param.u64 %rd1, [p];
    atom.global.add.u32 %r1, [%rd1], 1;
    ret;
}
"#;

struct Counter {
    h: CallHeader,
    func: u64,
    dptr: u64,
}

fn setup(c: &Client) -> Counter {
    let h = common::primary(c);
    let image = INC_PTX.as_bytes().to_vec();
    let Reply::ModuleLoad(m) = c
        .call(
            h,
            &Request::ModuleLoad(ModuleLoadReq {
                hash: rgpu_protocol::image::content_hash(&image),
                image,
                library: false,
            }),
        )
        .unwrap()
    else {
        panic!("unexpected reply")
    };
    assert_eq!(m.error, 0, "{}", m.log);
    let Reply::ModuleGetFunction(f) = c
        .call(
            h,
            &Request::ModuleGetFunction(ModuleGetFunctionReq {
                module: m.module,
                name: "inc".into(),
            }),
        )
        .unwrap()
    else {
        panic!("unexpected reply")
    };
    let Reply::MemAlloc(a) = c
        .call(h, &Request::MemAlloc(MemAllocReq { bytesize: 4 }))
        .unwrap()
    else {
        panic!("unexpected reply")
    };
    c.call(
        h,
        &Request::MemsetD32(MemsetD32Req {
            dst: a.dptr,
            value: 0,
            count: 1,
        }),
    )
    .unwrap();
    Counter {
        h,
        func: f.func,
        dptr: a.dptr,
    }
}

fn launch(c: &Client, k: &Counter, n: usize) {
    let req = Request::LaunchKernel(LaunchKernelReq {
        func: k.func,
        grid_x: 1,
        grid_y: 1,
        grid_z: 1,
        block_x: 1,
        block_y: 1,
        block_z: 1,
        shared_mem: 0,
        stream: 0,
        params: k.dptr.to_le_bytes().to_vec(),
        cooperative: false,
    });
    for _ in 0..n {
        c.send(k.h, &req).unwrap();
    }
}

fn read_counter(c: &Client, k: &Counter) -> Result<u32, ClientError> {
    match c.call(
        k.h,
        &Request::MemcpyDtoH(MemcpyDtoHReq {
            src: k.dptr,
            byte_count: 4,
        }),
    )? {
        Reply::MemcpyDtoH(r) => Ok(u32::from_le_bytes(r.dst[..4].try_into().unwrap())),
        other => panic!("unexpected reply {other:?}"),
    }
}

fn client_via(t: &common::TestServer, p: &Proxy) -> Client {
    let mut cf = t.srv.connection.clone();
    cf.address = p.addr.to_string();
    let mut cfg = ClientConfig::new(cf);
    cfg.transport = TransportChoice::Quic;
    cfg.idle_timeout = Duration::from_millis(1500);
    cfg.connect_timeout = Duration::from_secs(5);
    cfg.resume_window = Duration::from_secs(20);
    Client::connect(cfg).unwrap()
}

#[test]
fn a_blip_longer_than_the_idle_timeout_is_survived_without_losing_or_repeating_calls() {
    blip(start(|c| {
        c.idle_timeout = Duration::from_millis(1500);
        c.resume_window = Duration::from_secs(30);
    }));
}

#[test]
fn a_session_in_a_worker_process_survives_a_blip_too() {
    blip(start(|c| {
        c.idle_timeout = Duration::from_millis(1500);
        c.resume_window = Duration::from_secs(30);
        c.isolation = Some(rgpu_server::server::Isolation::Process);
        c.worker_exe = Some(common::rgpu());
    }));
}

fn blip(t: common::TestServer) {
    let p = proxy(t.srv.addr);
    let c = Arc::new(client_via(&t, &p));
    let k = Arc::new(setup(&c));
    launch(&c, &k, 200);
    assert_eq!(read_counter(&c, &k).unwrap(), 200);
    let session = c.welcome().session;

    // Cut the path; calls made meanwhile wait for the new connection.
    p.blocked.store(true, Ordering::SeqCst);
    launch(&c, &k, 300);
    let (c2, k2) = (c.clone(), k.clone());
    let waiter = std::thread::spawn(move || read_counter(&c2, &k2));
    std::thread::sleep(Duration::from_secs(4));
    assert!(!waiter.is_finished(), "the call must wait for the path");
    p.blocked.store(false, Ordering::SeqCst);
    let t0 = Instant::now();
    let got = waiter.join().unwrap().expect("the call survives the blip");
    assert_eq!(got, 500, "every launch ran exactly once");
    assert!(t0.elapsed() < Duration::from_secs(15), "{:?}", t0.elapsed());
    assert!(c.resumes() >= 1, "the connection was lost and resumed");
    assert_eq!(c.welcome().session, session);
    // The session goes on as before.
    launch(&c, &k, 7);
    assert_eq!(read_counter(&c, &k).unwrap(), 507);
    assert_eq!(t.srv.sessions(), 1, "no second session was opened");
}

#[test]
fn past_the_resume_window_the_client_gets_a_clear_error() {
    let t = start(|c| {
        c.idle_timeout = Duration::from_millis(1500);
        c.resume_window = Duration::from_millis(500);
    });
    let p = proxy(t.srv.addr);
    let c = client_via(&t, &p);
    let k = setup(&c);
    p.blocked.store(true, Ordering::SeqCst);
    std::thread::sleep(Duration::from_secs(4));
    p.blocked.store(false, Ordering::SeqCst);
    let t0 = Instant::now();
    match read_counter(&c, &k) {
        // The client stops trying when the server's window (which it learnt at the
        // handshake) has passed; a server asked later refuses the claim.
        Err(ClientError::Transport(why)) => assert!(
            why.contains("could not resume the session within")
                || why.contains("cannot be resumed"),
            "{why}"
        ),
        other => panic!("unexpected: {other:?}"),
    }
    assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
    // The server released the session.
    let deadline = Instant::now() + Duration::from_secs(5);
    while t.srv.sessions() > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(t.srv.sessions(), 0);
}
