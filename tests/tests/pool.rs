//! A pool of servers on a real etcd (started by the test on loopback, random ports, temporary
//! data directory): registration, allocation and a program on two devices, the race for the
//! last device, waiting, quotas, a killed client, `rgpu release`, a killed server, an etcd
//! restart, and fencing of sessions without an allocation.
//!
//! Needs etcd (Debian's `etcd-server`; `cargo xtask test` installs it) or `RGPU_ETCD=PATH`.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An etcd on loopback; killed on drop.
struct Etcd {
    child: Child,
    data: PathBuf,
    client: u16,
    peer: u16,
    url: String,
    /// Certificate and key files when clients must use TLS.
    tls: Option<(PathBuf, PathBuf)>,
}

impl Etcd {
    fn start(dir: &Path) -> Etcd {
        Self::start_with(dir, None)
    }

    fn start_with(dir: &Path, tls: Option<(PathBuf, PathBuf)>) -> Etcd {
        let (client, peer) = (free_port(), free_port());
        let mut e = Etcd {
            child: Command::new("true").spawn().unwrap(),
            data: dir.join("etcd"),
            client,
            peer,
            url: format!("etcd://127.0.0.1:{client}"),
            tls,
        };
        e.spawn();
        e
    }

    fn spawn(&mut self) {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let c = format!("{scheme}://127.0.0.1:{}", self.client);
        let p = format!("http://127.0.0.1:{}", self.peer);
        let mut cmd = etcd_member("t", &self.data, &c, &p, &format!("t={p}"));
        if let Some((cert, key)) = &self.tls {
            cmd.arg("--cert-file").arg(cert).arg("--key-file").arg(key);
        }
        self.child = spawn_etcd(&mut cmd);
        let t0 = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.client)).is_err() {
            assert!(t0.elapsed() < Duration::from_secs(15), "etcd did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The command line of etcd member `name` (data in `data`, serving clients at `client` and peers
/// at `peer`) of the cluster `initial` (`name=peer-url,…`).
fn etcd_member(name: &str, data: &Path, client: &str, peer: &str, initial: &str) -> Command {
    let bin = std::env::var("RGPU_ETCD").unwrap_or_else(|_| "etcd".into());
    let mut cmd = Command::new(bin);
    cmd.args(["--name", name, "--data-dir"])
        .arg(data)
        .args([
            "--listen-client-urls",
            client,
            "--advertise-client-urls",
            client,
        ])
        .args([
            "--listen-peer-urls",
            peer,
            "--initial-advertise-peer-urls",
            peer,
        ])
        .args([
            "--initial-cluster",
            initial,
            "--initial-cluster-state",
            "new",
        ])
        .args(["--log-level", "error"])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd
}

fn spawn_etcd(cmd: &mut Command) -> Child {
    cmd.spawn().unwrap_or_else(|e| {
        panic!(
            "cannot start {:?} ({e}): install Debian's etcd-server or set RGPU_ETCD",
            cmd.get_program()
        )
    })
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A pool server with `cpus` CPU devices; killed on drop.
struct PoolServer(Child);

impl Drop for PoolServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn pool_server(dir: &Path, etcd: &Etcd, id: &str, cpus: u32) -> (PoolServer, PathBuf) {
    pool_server_at(dir, &etcd.url, id, cpus)
}

fn pool_server_at(dir: &Path, url: &str, id: &str, cpus: u32) -> (PoolServer, PathBuf) {
    let d = dir.join(id);
    std::fs::create_dir_all(&d).unwrap();
    let (child, conn) = common::spawn_server(
        &d,
        &[
            "--cpu-devices",
            &cpus.to_string(),
            "--cpu-memory",
            "256M",
            "--registry",
            url,
            "--server-id",
            id,
            "--registry-ttl",
            "2",
            "--no-local-socket",
        ],
    );
    (PoolServer(child), conn)
}

fn status(etcd: &Etcd) -> serde_json::Value {
    status_at(&etcd.url)
}

fn status_at(url: &str) -> serde_json::Value {
    let out = Command::new(common::rgpu())
        .args(["status", "--json", "--registry", url])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", common::show(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn wait_until(what: &str, secs: u64, mut cond: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !cond() {
        assert!(
            t0.elapsed() < Duration::from_secs(secs),
            "timed out: {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn devices_in(etcd: &Etcd) -> usize {
    status(etcd)["devices"].as_array().unwrap().len()
}

/// `rgpu run --registry URL ARGS -- pool_client DEVICES SECONDS`.
fn run_cmd(url: &str, args: &[&str], devices: usize, secs: f64) -> Command {
    let mut cmd = Command::new(common::rgpu());
    cmd.args(["run", "--registry", url])
        .args(args)
        .arg("--")
        .arg(common::c_program("pool_client"))
        .args([devices.to_string(), secs.to_string()])
        .env("RGPU_LOG", "warn")
        .env("RGPU_TIMEOUT", "2")
        .env("RGPU_RESUME_WINDOW", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// Spawns a run and waits for its READY line.
fn start_ready(
    url: &str,
    args: &[&str],
    devices: usize,
    secs: f64,
) -> (Child, BufReader<std::process::ChildStdout>) {
    let mut child = run_cmd(url, args, devices, secs).spawn().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert!(line.starts_with("READY"), "expected READY, got `{line}`");
    (child, out)
}

fn rest(
    mut child: Child,
    mut out: BufReader<std::process::ChildStdout>,
) -> (std::process::ExitStatus, String) {
    let mut s = String::new();
    let _ = std::io::Read::read_to_string(&mut out, &mut s);
    (child.wait().unwrap(), s)
}

fn show(o: &Output) -> String {
    common::show(o)
}

#[test]
fn programs_run_on_devices_of_one_or_several_servers_and_allocations_end_with_them() {
    let dir = tempfile::tempdir().unwrap();
    let etcd = Etcd::start(dir.path());
    let (_a, _) = pool_server(dir.path(), &etcd, "a", 1);
    let (_b, _) = pool_server(dir.path(), &etcd, "b", 1);
    let (_c, _) = pool_server(dir.path(), &etcd, "c", 2);
    wait_until("4 devices registered", 15, || devices_in(&etcd) == 4);
    let s = status(&etcd);
    assert_eq!(s["servers"].as_array().unwrap().len(), 3);
    assert_eq!(s["devices"][0]["name"], "rgpu CPU device");
    assert_eq!(s["devices"][0]["memory"], 256u64 << 20);
    assert!(s["devices"][0]["free"].as_u64().is_some(), "{s}");

    // Two devices: the server that has both.
    let out = run_cmd(&etcd.url, &["--gpus", "2"], 2, 0.3)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("READY 2") && stdout.contains("DONE"),
        "{}",
        show(&out)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("server c ("),
        "{}",
        show(&out)
    );
    wait_until("the allocation is gone", 5, || {
        status(&etcd)["allocations"].as_array().unwrap().is_empty()
    });

    // A program keeping a device busy (128 MiB memsets) shows as load in the pool.
    let mut busy = run_cmd(&etcd.url, &[], 1, 3.0);
    busy.arg("128");
    let mut busy = busy.spawn().unwrap();
    let mut busy_out = BufReader::new(busy.stdout.take().unwrap());
    let mut line = String::new();
    busy_out.read_line(&mut line).unwrap();
    assert!(line.starts_with("READY"), "{line}");
    wait_until("the busy device shows load", 10, || {
        status(&etcd)["devices"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["load"].as_u64().is_some_and(|l| l > 0))
    });
    let (st, text) = rest(busy, busy_out);
    assert!(st.success() && text.contains("DONE"), "{text}");
    wait_until("the allocation is gone", 5, || {
        status(&etcd)["allocations"].as_array().unwrap().is_empty()
    });

    // While another program holds server c's devices alone, two devices come from a and b:
    // one process, two servers, a real CUDA program (kernels on each device, peer copies
    // between the servers staged through the client, events, unified addresses).
    let (holder, holder_out) = start_ready(&etcd.url, &["--gpus", "2", "--exclusive"], 2, 3.0);
    let multi = |n: &str, args: &[&str]| {
        Command::new(common::rgpu())
            .args(["run", "--registry", &etcd.url])
            .args(args)
            .arg("--")
            .arg(common::cuda_program(
                "multi_device",
                common::Runtime::Cuda13,
            ))
            .arg(n)
            .env("RGPU_LOG", "warn")
            .output()
            .unwrap()
    };
    let out = multi("2", &["--gpus", "2", "--exclusive"]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        out.status.success() && stdout.contains("devices 2") && stdout.contains("PASSED"),
        "{}",
        show(&out)
    );
    assert!(
        stderr.contains("server a (") && stderr.contains("server b ("),
        "{}",
        show(&out)
    );
    // --same-server: no server has two idle devices now; a clear error, nothing allocated.
    let out = run_cmd(
        &etcd.url,
        &["--gpus", "2", "--exclusive", "--same-server"],
        2,
        0.1,
    )
    .output()
    .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no server has 2 free device(s)"),
        "{}",
        show(&out)
    );
    let (st, text) = rest(holder, holder_out);
    assert!(st.success() && text.contains("DONE"), "{text}");
    wait_until("the allocations are gone", 5, || {
        status(&etcd)["allocations"].as_array().unwrap().is_empty()
    });

    // All four devices of the three servers in one program.
    let out = multi("4", &["--gpus", "4"]);
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("devices 4"),
        "{}",
        show(&out)
    );
    // A quota from the allocation is enforced by the server.
    let out = run_cmd(&etcd.url, &["--memory-quota", "512K"], 1, 0.1)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("OUT_OF_MEMORY"),
        "{}",
        show(&out)
    );
}

#[test]
fn two_clients_race_for_the_last_device_and_exactly_one_wins_shared_ones_share() {
    let dir = tempfile::tempdir().unwrap();
    let etcd = Etcd::start(dir.path());
    let (_a, _) = pool_server(dir.path(), &etcd, "a", 1);
    wait_until("1 device registered", 15, || devices_in(&etcd) == 1);
    for _ in 0..3 {
        let racers: Vec<Child> = (0..2)
            .map(|_| run_cmd(&etcd.url, &[], 1, 1.0).spawn().unwrap())
            .collect();
        let outs: Vec<Output> = racers
            .into_iter()
            .map(|c| c.wait_with_output().unwrap())
            .collect();
        let won = outs.iter().filter(|o| o.status.success()).count();
        assert_eq!(won, 1, "{}\n{}", show(&outs[0]), show(&outs[1]));
        let lost = outs.iter().find(|o| !o.status.success()).unwrap();
        assert!(
            String::from_utf8_lossy(&lost.stderr).contains("fewer than 1 free device(s) matching"),
            "{}",
            show(lost)
        );
        wait_until("released", 5, || {
            status(&etcd)["allocations"].as_array().unwrap().is_empty()
        });
    }
    // With --wait the second one runs after the first.
    let (first, out1) = start_ready(&etcd.url, &["--exclusive"], 1, 1.0);
    let second = run_cmd(&etcd.url, &["--wait", "20"], 1, 0.1)
        .output()
        .unwrap();
    let (st, _) = rest(first, out1);
    assert!(st.success());
    assert!(second.status.success(), "{}", show(&second));

    // Shared allocations (--shared) share the device; an exclusive one (the default) must wait
    // for them, and a shared one for an exclusive holder.
    let (first, out1) = start_ready(&etcd.url, &["--shared"], 1, 2.0);
    let (second, out2) = start_ready(&etcd.url, &["--shared"], 1, 1.5);
    let s = status(&etcd);
    assert_eq!(
        s["devices"][0]["holders"].as_array().unwrap().len(),
        2,
        "{s}"
    );
    assert_eq!(s["allocations"][0]["exclusive"], false);
    let alone = run_cmd(&etcd.url, &["--exclusive"], 1, 0.1)
        .output()
        .unwrap();
    assert!(!alone.status.success(), "{}", show(&alone));
    assert!(
        String::from_utf8_lossy(&alone.stderr).contains("0 free"),
        "{}",
        show(&alone)
    );
    for (c, o) in [(first, out1), (second, out2)] {
        let (st, text) = rest(c, o);
        assert!(st.success() && text.contains("DONE"), "{text}");
    }
    wait_until("released", 5, || {
        status(&etcd)["allocations"].as_array().unwrap().is_empty()
    });
    let (first, out1) = start_ready(&etcd.url, &[], 1, 1.0);
    let shared = run_cmd(&etcd.url, &["--shared"], 1, 0.1).output().unwrap();
    assert!(!shared.status.success(), "{}", show(&shared));
    let (st, _) = rest(first, out1);
    assert!(st.success());
}

#[test]
fn a_killed_client_or_rgpu_release_ends_the_allocation_and_the_server_ends_the_session() {
    let dir = tempfile::tempdir().unwrap();
    let etcd = Etcd::start(dir.path());
    let (_a, conn) = pool_server(dir.path(), &etcd, "a", 1);
    wait_until("registered", 15, || devices_in(&etcd) == 1);

    // Without an allocation the pool server refuses.
    let out = Command::new(common::rgpu())
        .args(["run", "--connection-file"])
        .arg(&conn)
        .arg("--")
        .arg(common::c_program("pool_client"))
        .args(["1", "0.1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("belongs to a pool"),
        "{}",
        show(&out)
    );

    // rgpu release: the server ends the session, the program sees an error.
    let (child, out) = start_ready(&etcd.url, &[], 1, 60.0);
    let s = status(&etcd);
    let id = s["allocations"][0]["id"].as_str().unwrap().to_string();
    assert!(s["allocations"][0]["user"].is_string());
    let t0 = Instant::now();
    let rel = Command::new(common::rgpu())
        .args(["release", "--registry", &etcd.url, &id])
        .output()
        .unwrap();
    assert!(rel.status.success(), "{}", show(&rel));
    let (st, text) = rest(child, out);
    assert_eq!(st.code(), Some(3), "{text}");
    assert!(text.contains("LOST"), "{text}");
    assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());

    // SIGKILL of `rgpu run`: its lease expires, the allocation goes, the session is ended.
    let (mut child, mut out) = start_ready(&etcd.url, &["--lease-ttl", "2"], 1, 60.0);
    // SAFETY: signalling our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    let _ = child.wait();
    wait_until("the killed client's allocation expires", 10, || {
        status(&etcd)["allocations"].as_array().unwrap().is_empty()
    });
    // The orphaned program loses its session.
    let mut line = String::new();
    let t0 = Instant::now();
    while !line.contains("LOST") && t0.elapsed() < Duration::from_secs(10) {
        line.clear();
        if out.read_line(&mut line).unwrap_or(0) == 0 {
            break;
        }
    }
    assert!(
        line.contains("LOST"),
        "the program kept its session: `{line}`"
    );
    // The device is free again.
    let out = run_cmd(&etcd.url, &[], 1, 0.1).output().unwrap();
    assert!(out.status.success(), "{}", show(&out));
}

#[test]
fn a_dead_server_leaves_the_pool_and_an_etcd_restart_is_recovered() {
    let dir = tempfile::tempdir().unwrap();
    let mut etcd = Etcd::start(dir.path());
    let (a, _) = pool_server(dir.path(), &etcd, "a", 1);
    let (_b, _) = pool_server(dir.path(), &etcd, "b", 1);
    wait_until("registered", 15, || devices_in(&etcd) == 2);

    // etcd goes away: a running program goes on, a new allocation fails clearly; when etcd
    // is back, servers register again by themselves.
    let (running, running_out) = start_ready(&etcd.url, &[], 1, 3.0);
    etcd.kill();
    let out = run_cmd(&etcd.url, &[], 1, 0.1).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot reach the registry") || err.contains("does not answer"),
        "{}",
        show(&out)
    );
    std::thread::sleep(Duration::from_millis(500));
    etcd.spawn();
    let (st, text) = rest(running, running_out);
    assert!(st.success() && text.contains("DONE"), "{text}");
    wait_until("both servers back after the etcd restart", 20, || {
        let s = status(&etcd);
        s["servers"].as_array().unwrap().len() == 2 && s["devices"].as_array().unwrap().len() == 2
    });

    // A server dies: its program errors, its allocation shows lost, its device leaves.
    let (child, out) = start_ready(&etcd.url, &[], 1, 60.0);
    let s = status(&etcd);
    let on = s["allocations"][0]["devices"][0][0]
        .as_str()
        .unwrap()
        .to_string();
    drop(if on == "a" { a } else { _b });
    let t0 = Instant::now();
    let (st, text) = rest(child, out);
    assert!(!st.success(), "{text}");
    assert!(t0.elapsed() < Duration::from_secs(20), "{:?}", t0.elapsed());
    wait_until("the dead server's device leaves the pool", 10, || {
        let s = status(&etcd);
        s["servers"].as_array().unwrap().len() == 1
    });
    // New allocations go to the other server.
    let out = run_cmd(&etcd.url, &[], 1, 0.1).output().unwrap();
    assert!(out.status.success(), "{}", show(&out));
}

#[test]
fn per_user_quotas_hold_even_when_the_user_races_itself() {
    let dir = tempfile::tempdir().unwrap();
    let etcd = Etcd::start(dir.path());
    let (_a, _) = pool_server(dir.path(), &etcd, "a", 3);
    wait_until("registered", 15, || devices_in(&etcd) == 3);
    let quota = Command::new(common::rgpu())
        .args(["quota", "--registry", &etcd.url, "quser", "--gpus", "1"])
        .output()
        .unwrap();
    assert!(quota.status.success(), "{}", show(&quota));
    assert_eq!(status(&etcd)["quotas"]["quser"]["gpus"], 1);
    let as_user = |args: &[&str], devices: usize, secs: f64| {
        let mut c = run_cmd(&etcd.url, args, devices, secs);
        c.env("USER", "quser");
        c
    };
    // Two at once: one runs, the other is told about the quota (devices are free).
    for _ in 0..2 {
        let racers: Vec<Child> = (0..2)
            .map(|_| as_user(&[], 1, 1.0).spawn().unwrap())
            .collect();
        let outs: Vec<Output> = racers
            .into_iter()
            .map(|c| c.wait_with_output().unwrap())
            .collect();
        assert_eq!(
            outs.iter().filter(|o| o.status.success()).count(),
            1,
            "{}\n{}",
            show(&outs[0]),
            show(&outs[1])
        );
        let lost = outs.iter().find(|o| !o.status.success()).unwrap();
        assert!(
            String::from_utf8_lossy(&lost.stderr).contains("quota of 1"),
            "{}",
            show(lost)
        );
        wait_until("released", 5, || {
            status(&etcd)["allocations"].as_array().unwrap().is_empty()
        });
    }
    // Another user is not limited; removing the quota lifts it.
    let (first, out1) = start_ready(&etcd.url, &[], 1, 1.0);
    let other = run_cmd(&etcd.url, &[], 1, 0.1)
        .env("USER", "other")
        .output()
        .unwrap();
    assert!(other.status.success(), "{}", show(&other));
    let _ = rest(first, out1);
    let rm = Command::new(common::rgpu())
        .args(["quota", "--registry", &etcd.url, "quser", "--remove"])
        .output()
        .unwrap();
    assert!(rm.status.success(), "{}", show(&rm));
    let two = as_user(&["--gpus", "2"], 2, 0.1).output().unwrap();
    assert!(two.status.success(), "{}", show(&two));
}

#[test]
fn with_etcd_authentication_the_pool_needs_its_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let etcd = Etcd::start(dir.path());
    // Turn etcd's authentication on (the root user holds the pool).
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let mut c =
                etcd_client::Client::connect([format!("http://127.0.0.1:{}", etcd.client)], None)
                    .await
                    .unwrap();
            c.user_add("root", "rootpw", None).await.unwrap();
            c.user_grant_role("root", "root").await.unwrap();
            c.auth_enable().await.unwrap();
        });
    let authed = format!("etcd://root:rootpw@127.0.0.1:{}", etcd.client);
    let (_a, _) = pool_server_at(dir.path(), &authed, "a", 1);
    wait_until("registered with credentials", 15, || {
        status_at(&authed)["devices"].as_array().unwrap().len() == 1
    });
    // Without the credentials nothing can be read (tokens included) or allocated.
    let out = Command::new(common::rgpu())
        .args(["status", "--registry", &etcd.url])
        .output()
        .unwrap();
    assert!(!out.status.success(), "{}", show(&out));
    let out = run_cmd(&etcd.url, &[], 1, 0.1).output().unwrap();
    assert!(!out.status.success(), "{}", show(&out));
    // With them, a program runs.
    let out = run_cmd(&authed, &[], 1, 0.1).output().unwrap();
    assert!(out.status.success(), "{}", show(&out));
}

#[test]
fn the_registry_can_be_reached_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    // A CA and an etcd certificate for 127.0.0.1 signed by it.
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    let (ca_pem, cert_pem, key_pem) = (
        dir.path().join("ca.pem"),
        dir.path().join("etcd.pem"),
        dir.path().join("etcd.key"),
    );
    std::fs::write(&ca_pem, ca_cert.pem()).unwrap();
    std::fs::write(&cert_pem, cert.pem()).unwrap();
    std::fs::write(&key_pem, key.serialize_pem()).unwrap();
    let etcd = Etcd::start_with(dir.path(), Some((cert_pem, key_pem)));
    let tls = format!("etcds://127.0.0.1:{}?ca={}", etcd.client, ca_pem.display());
    let (_a, _) = pool_server_at(dir.path(), &tls, "a", 1);
    wait_until("registered over TLS", 20, || {
        status_at(&tls)["devices"].as_array().unwrap().len() == 1
    });
    // Plain HTTP to a TLS etcd fails.
    let out = Command::new(common::rgpu())
        .args(["status", "--registry", &etcd.url])
        .output()
        .unwrap();
    assert!(!out.status.success(), "{}", show(&out));
    // A program allocated over TLS runs.
    let out = run_cmd(&tls, &[], 1, 0.1).output().unwrap();
    assert!(out.status.success(), "{}", show(&out));
}

/// An etcd cluster on loopback; killed on drop.
struct Cluster {
    members: Vec<Child>,
    clients: Vec<u16>,
    url: String,
}

impl Cluster {
    fn start(dir: &Path, members: usize) -> Cluster {
        let ports: Vec<(u16, u16)> = (0..members).map(|_| (free_port(), free_port())).collect();
        let initial = ports
            .iter()
            .enumerate()
            .map(|(i, (_, p))| format!("m{i}=http://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",");
        let members = ports
            .iter()
            .enumerate()
            .map(|(i, (c, p))| {
                let (c, p) = (
                    format!("http://127.0.0.1:{c}"),
                    format!("http://127.0.0.1:{p}"),
                );
                let name = format!("m{i}");
                spawn_etcd(&mut etcd_member(&name, &dir.join(&name), &c, &p, &initial))
            })
            .collect();
        let clients: Vec<u16> = ports.iter().map(|(c, _)| *c).collect();
        let url = format!(
            "etcd://{}",
            clients
                .iter()
                .map(|c| format!("127.0.0.1:{c}"))
                .collect::<Vec<_>>()
                .join(",")
        );
        let c = Cluster {
            members,
            clients,
            url,
        };
        wait_until("the etcd cluster elects a leader", 20, || {
            c.leader().is_some()
        });
        c
    }

    /// The index of the current leader, as the members that answer see it.
    fn leader(&self) -> Option<usize> {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async {
                let mut ids = vec![None; self.clients.len()];
                let mut leader = None;
                for (i, port) in self.clients.iter().enumerate() {
                    let url = format!("http://127.0.0.1:{port}");
                    let Ok(Ok(mut c)) = tokio::time::timeout(
                        Duration::from_secs(1),
                        etcd_client::Client::connect([url], None),
                    )
                    .await
                    else {
                        continue;
                    };
                    if let Ok(Ok(st)) =
                        tokio::time::timeout(Duration::from_secs(1), c.status()).await
                    {
                        ids[i] = st.header().map(|h| h.member_id());
                        if st.leader() != 0 {
                            leader = Some(st.leader());
                        }
                    }
                }
                let leader = leader?;
                ids.iter().position(|id| *id == Some(leader))
            })
    }

    fn kill(&mut self, i: usize) {
        let _ = self.members[i].kill();
        let _ = self.members[i].wait();
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
    }
}

/// The member of `clients` (client ports) that process `pid` holds a TCP connection to.
fn member_used_by(pid: u32, clients: &[u16]) -> Option<usize> {
    let inodes: std::collections::HashSet<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()?
        .flatten()
        .filter_map(|e| {
            let l = std::fs::read_link(e.path()).ok()?;
            let l = l.to_str()?;
            Some(l.strip_prefix("socket:[")?.strip_suffix(']')?.to_string())
        })
        .collect();
    let tcp = std::fs::read_to_string("/proc/net/tcp").ok()?;
    tcp.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 10 || !inodes.contains(f[9]) {
            return None;
        }
        let port = u16::from_str_radix(f[2].split(':').nth(1)?, 16).ok()?;
        clients.iter().position(|c| *c == port)
    })
}

#[test]
fn a_dead_etcd_member_and_a_leader_change_are_survived_without_operator_action() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::start(dir.path(), 5);
    let url = cluster.url.clone();
    let (_a, _) = pool_server_at(dir.path(), &url, "a", 1);
    let (_b, _) = pool_server_at(dir.path(), &url, "b", 1);
    wait_until("registered in the cluster", 20, || {
        status_at(&url)["devices"].as_array().unwrap().len() == 2
    });
    // A program runs through it all; its allocation's lease (2 s) must be kept alive through
    // another member once `rgpu run`'s member is gone, or its server would end the session.
    let (running, running_out) = start_ready(&url, &["--lease-ttl", "2"], 1, 8.0);
    let used = member_used_by(running.id(), &cluster.clients).expect("rgpu run's etcd member");
    let leader = cluster.leader().expect("a leader");
    cluster.kill(used);
    if leader != used {
        cluster.kill(leader);
    }
    wait_until("a new leader", 20, || {
        cluster.leader().is_some_and(|l| l != leader)
    });
    let (st, text) = rest(running, running_out);
    assert!(st.success() && text.contains("DONE"), "{text}");
    // Servers stay registered (or register again by themselves) and new allocations work.
    wait_until(
        "both servers registered after the leader change",
        20,
        || {
            Command::new(common::rgpu())
                .args(["status", "--json", "--registry", &url])
                .output()
                .ok()
                .filter(|o| o.status.success())
                .and_then(|o| serde_json::from_slice::<serde_json::Value>(&o.stdout).ok())
                .is_some_and(|s| s["devices"].as_array().is_some_and(|d| d.len() == 2))
        },
    );
    let out = run_cmd(&url, &["--gpus", "2"], 2, 0.1).output().unwrap();
    assert!(out.status.success(), "{}", show(&out));
}
