//! One process using devices on several servers at once (a `{"servers": […]}` connection set):
//! device numbering across servers, kernels on each device, peer copies between servers staged
//! through the client, streams waiting for another server's events, both static runtimes, the
//! local socket and QUIC side by side, and a clear failure when one server of the set is down.

mod common;

use common::Runtime;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};

/// Servers killed on drop.
struct Servers(Vec<Child>);

impl Drop for Servers {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Starts one server per entry of `devices` (how many CPU devices each offers; the second uses
/// QUIC only, the others also their local socket) and writes their set: (servers, set file).
fn start(dir: &Path, devices: &[u32]) -> (Servers, PathBuf) {
    let mut children = Vec::new();
    let mut files = Vec::new();
    for (i, n) in devices.iter().enumerate() {
        let d = dir.join(format!("s{i}"));
        std::fs::create_dir_all(&d).unwrap();
        let n = n.to_string();
        let mut args = vec!["--cpu-devices", &n, "--cpu-memory", "256M"];
        if i == 1 {
            args.push("--no-local-socket");
        }
        let (child, conn) = common::spawn_server(&d, &args);
        children.push(child);
        files.push(rgpu_protocol::connfile::ConnectionFile::read(&conn).unwrap());
    }
    let set = dir.join("servers.json");
    rgpu_protocol::connfile::ServerSet { servers: files }
        .write(&set)
        .unwrap();
    (Servers(children), set)
}

fn run(exe: &Path, args: &[&str], set: &Path) -> Output {
    let mut cmd = Command::new(exe);
    cmd.args(args);
    common::shim_env(&mut cmd, set);
    cmd.env("RGPU_TIMEOUT", "5").output().unwrap()
}

#[test]
fn one_process_uses_four_devices_on_three_servers() {
    let dir = tempfile::tempdir().unwrap();
    let (_servers, set) = start(dir.path(), &[2, 1, 1]);
    for rt in [Runtime::Cuda13, Runtime::Cuda12] {
        let exe = common::cuda_program("multi_device", rt);
        let out = run(&exe, &["4"], &set);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("devices 4") && stdout.contains("PASSED"),
            "{}",
            common::show(&out)
        );
    }
    // The driver API: a context per device, memory on each, work on each in turn.
    let out = run(&common::c_program("pool_client"), &["4", "0.3"], &set);
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("DONE"),
        "{}",
        common::show(&out)
    );
}

#[test]
fn a_set_restricts_each_server_to_its_devices() {
    let dir = tempfile::tempdir().unwrap();
    let (_servers, set) = start(dir.path(), &[2, 2]);
    // Only device 1 of the first server and device 0 of the second.
    let mut s: serde_json::Value = serde_json::from_slice(&std::fs::read(&set).unwrap()).unwrap();
    s["servers"][0]["visible_devices"] = "1".into();
    s["servers"][1]["visible_devices"] = "0".into();
    std::fs::write(&set, serde_json::to_vec(&s).unwrap()).unwrap();
    // `rgpu devices` lists them as the program will number them.
    let out = Command::new(common::rgpu())
        .args(["devices", "--json", "--connection-file"])
        .arg(&set)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", common::show(&out));
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(
        (rows[0]["index"].as_u64(), rows[1]["index"].as_u64()),
        (Some(0), Some(1))
    );
    assert_eq!(rows[0]["server_index"], 1);
    assert_eq!(rows[1]["server_index"], 0);
    assert_ne!(rows[0]["server"], rows[1]["server"]);
    let exe = common::cuda_program("multi_device", Runtime::Cuda13);
    let out = run(&exe, &["2"], &set);
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("devices 2"),
        "{}",
        common::show(&out)
    );
}

#[test]
fn a_server_of_the_set_that_is_down_fails_the_program_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let (mut servers, set) = start(dir.path(), &[1, 1]);
    let _ = servers.0[1].kill();
    let _ = servers.0[1].wait();
    let t0 = std::time::Instant::now();
    let out = run(&common::c_program("pool_client"), &["2", "0.1"], &set);
    assert!(!out.status.success(), "{}", common::show(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot use the rgpu server at"),
        "{}",
        common::show(&out)
    );
    assert!(
        t0.elapsed() < std::time::Duration::from_secs(30),
        "took {:?}",
        t0.elapsed()
    );
}

#[test]
fn programs_written_for_one_device_behave_the_same_on_a_server_set() {
    // The routing must not change what a program sees of its device 0: context rules, errors,
    // unified addresses, fork, threads and streams, as the driver-API corpus checks them.
    let dir = tempfile::tempdir().unwrap();
    let (_servers, set) = start(dir.path(), &[1, 1]);
    for p in [
        "contexts",
        "memory",
        "pointers",
        "fork",
        "threads",
        "streams_events",
    ] {
        let out = run(&common::c_program(p), &[], &set);
        assert!(
            out.status.success()
                && String::from_utf8_lossy(&out.stdout).contains(&format!("{p}: PASSED")),
            "{p}: {}",
            common::show(&out)
        );
    }
}
