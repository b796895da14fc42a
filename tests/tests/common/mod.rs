//! Shared helpers: locating the built binaries and the CUDA headers, compiling test programs.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// `target/<profile>` of the running test binary.
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().to_path_buf()
}

pub fn rgpu() -> PathBuf {
    let p = target_dir().join("rgpu");
    assert!(
        p.exists(),
        "{} missing: run `cargo build --workspace` first (`cargo xtask test` does)",
        p.display()
    );
    p
}

pub fn shim() -> PathBuf {
    let p = target_dir().join("libcuda.so");
    assert!(
        p.exists(),
        "{} missing: run `cargo build --workspace` first (`cargo xtask test` does)",
        p.display()
    );
    p
}

/// The pinned CUDA toolkit: `RGPU_CUDA_HOME`, else `.cuda/venv` made by `cargo xtask setup-cuda`.
pub fn cuda_home() -> PathBuf {
    if let Some(p) = std::env::var_os("RGPU_CUDA_HOME") {
        return PathBuf::from(p);
    }
    let lib = root().join(".cuda/venv/lib");
    if let Ok(rd) = std::fs::read_dir(&lib) {
        for e in rd.flatten() {
            let p = e.path().join("site-packages/nvidia/cu13");
            if p.join("include/cuda.h").exists() {
                return p;
            }
        }
    }
    panic!("CUDA headers not found: run `cargo xtask setup-cuda` (or `cargo xtask test`), or set RGPU_CUDA_HOME");
}

static BUILD_LOCK: Mutex<()> = Mutex::new(());

/// Compiles `tests/programs/c/<name>.c` (once per test run) and returns the executable.
pub fn c_program(name: &str) -> PathBuf {
    let _g = BUILD_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let out_dir = target_dir().join("rgpu-test-programs");
    std::fs::create_dir_all(&out_dir).unwrap();
    let exe = out_dir.join(name);
    let src = root().join(format!("tests/programs/c/{name}.c"));
    let out = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()))
        .args(["-O1", "-Wall", "-Werror", "-I"])
        .arg(cuda_home().join("include"))
        .arg(&src)
        .arg("-o")
        .arg(&exe)
        .arg(format!("-L{}", target_dir().display()))
        .args(["-lcuda", "-lpthread", "-lm"])
        .output()
        .expect("running the C compiler");
    assert!(
        out.status.success(),
        "compiling {}:\n{}",
        src.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    exe
}

/// Runs `exe` through `rgpu run` on the embedded server. The programs' expectations are the
/// CPU device's (its name, compute capability 7.5, …), so the embedded server uses the CPU device
/// even on a machine with a GPU, unless `RGPU_TEST_DEVICE` says otherwise.
pub fn rgpu_run(exe: &Path, args: &[&str]) -> Output {
    let _ = shim();
    Command::new(rgpu())
        .args(["run", "--"])
        .arg(exe)
        .args(args)
        .env(
            "RGPU_DEVICE",
            std::env::var("RGPU_TEST_DEVICE").unwrap_or_else(|_| "cpu".into()),
        )
        .env("RGPU_LOG", "warn")
        .output()
        .expect("running rgpu")
}

/// Environment that makes a program use the shim against the server of `conn_file`.
pub fn shim_env(cmd: &mut Command, conn_file: &Path) {
    let dir = shim().parent().unwrap().to_path_buf();
    cmd.env("LD_PRELOAD", shim())
        .env("LD_LIBRARY_PATH", dir)
        .env("RGPU_CONNECTION_FILE", conn_file)
        .env("RGPU_LOG", "warn");
}

pub fn show(o: &Output) -> String {
    format!(
        "exit: {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Compiles `tests/kernels/<name>.cu` with the pinned nvcc into `kind` ("ptx", "fatbin", "cubin")
/// for sm_75 and returns the file.
pub fn kernel_module(name: &str, kind: &str) -> PathBuf {
    let _g = BUILD_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let out_dir = target_dir().join("rgpu-test-programs");
    std::fs::create_dir_all(&out_dir).unwrap();
    let out = out_dir.join(format!("{name}.{kind}"));
    let src = root().join(format!("tests/kernels/{name}.cu"));
    let o = Command::new(cuda_home().join("bin/nvcc"))
        .arg(format!("-{kind}"))
        .args(["-O3", "-arch=sm_75"])
        .arg(&src)
        .arg("-o")
        .arg(&out)
        .output()
        .expect("running nvcc");
    assert!(
        o.status.success(),
        "nvcc {}:\n{}",
        src.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    out
}

/// Which static cudart a runtime-API test program links.
#[derive(Clone, Copy, Debug)]
pub enum Runtime {
    /// nvcc 13.5 with its own static cudart 13.5 (nvcc's default).
    Cuda13,
    /// Objects from nvcc 13.5 linked by g++ against static cudart 12.9.
    Cuda12,
}

/// Builds `tests/programs/cuda/<name>.cu` (default nvcc flags: static cudart, default
/// architectures plus PTX) for `rt` and returns the executable.
pub fn cuda_program(name: &str, rt: Runtime) -> PathBuf {
    let _g = BUILD_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let out_dir = target_dir().join("rgpu-test-programs");
    std::fs::create_dir_all(&out_dir).unwrap();
    let src = root().join(format!("tests/programs/cuda/{name}.cu"));
    let nvcc = cuda_home().join("bin/nvcc");
    let run = |c: &mut Command, what: &str| {
        let o = c.output().unwrap_or_else(|e| panic!("{what}: {e}"));
        assert!(
            o.status.success(),
            "{what} {}:\n{}",
            src.display(),
            String::from_utf8_lossy(&o.stderr)
        );
    };
    match rt {
        Runtime::Cuda13 => {
            let exe = out_dir.join(format!("{name}-cuda13"));
            run(Command::new(&nvcc).arg(&src).arg("-o").arg(&exe), "nvcc");
            exe
        }
        Runtime::Cuda12 => {
            let obj = out_dir.join(format!("{name}-cuda12.o"));
            let exe = out_dir.join(format!("{name}-cuda12"));
            run(
                Command::new(&nvcc).arg("-c").arg(&src).arg("-o").arg(&obj),
                "nvcc -c",
            );
            let cu12 = cuda_home().parent().unwrap().join("cuda_runtime/lib");
            assert!(
                cu12.join("libcudart_static.a").exists(),
                "static cudart 12 missing in {}: run `cargo xtask setup-cuda`",
                cu12.display()
            );
            run(
                Command::new("g++")
                    .arg(&obj)
                    .arg(format!("-L{}", cu12.display()))
                    .args(["-lcudart_static", "-lpthread", "-ldl", "-lrt", "-o"])
                    .arg(&exe),
                "g++",
            );
            exe
        }
    }
}

/// A server running in the test process, with its runtime and state directory.
pub struct TestServer {
    pub srv: rgpu_server::server::Server,
    pub rt: tokio::runtime::Runtime,
    pub dir: tempfile::TempDir,
}

/// Starts a server on loopback with one 1 GiB CPU device, after `configure` adjusts the settings.
pub fn start_server(configure: impl FnOnce(&mut rgpu_server::server::ServerConfig)) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut cfg = rgpu_server::server::ServerConfig::new(dir.path().join("state"));
    cfg.listen = "127.0.0.1:0".parse().unwrap();
    cfg.device = rgpu_server::server::DeviceKind::Cpu;
    cfg.cpu_memory = 1 << 30;
    configure(&mut cfg);
    let srv = rt.block_on(rgpu_server::server::start(cfg)).unwrap();
    TestServer { srv, rt, dir }
}

/// Initialises `c` and retains device 0's primary context: the header for calls in it.
pub fn primary(c: &rgpu_protocol::client::Client) -> rgpu_protocol::wire::CallHeader {
    use rgpu_protocol::messages::*;
    let h = rgpu_protocol::wire::CallHeader::default();
    c.call(h, &Request::Init(InitReq { flags: 0 })).unwrap();
    let Reply::DevicePrimaryCtxRetain(r) = c
        .call(
            h,
            &Request::DevicePrimaryCtxRetain(DevicePrimaryCtxRetainReq { dev: 0 }),
        )
        .unwrap()
    else {
        panic!("unexpected reply")
    };
    rgpu_protocol::wire::CallHeader { ctx: r.ctx, ..h }
}

/// Free memory of device 0 as `c` sees it.
pub fn free_memory(c: &rgpu_protocol::client::Client) -> u64 {
    use rgpu_protocol::messages::*;
    let h = primary(c);
    let Reply::MemGetInfo(m) = c.call(h, &Request::MemGetInfo(MemGetInfoReq {})).unwrap() else {
        panic!("unexpected reply")
    };
    m.free
}

/// Starts `rgpu server` as its own process on loopback with the CPU device, state under `dir`
/// and the flags `extra`, and waits for its connection file: (process, connection file path).
pub fn spawn_server(dir: &Path, extra: &[&str]) -> (std::process::Child, PathBuf) {
    let conn = dir.join("conn.json");
    let server = Command::new(rgpu())
        .args(["server", "--listen", "127.0.0.1:0", "--device", "cpu"])
        .args(extra)
        .arg("--state-dir")
        .arg(dir.join("state"))
        .arg("--connection-file")
        .arg(&conn)
        .env("RGPU_LOG", "warn")
        .spawn()
        .unwrap();
    let t0 = std::time::Instant::now();
    while !conn.exists() {
        assert!(
            t0.elapsed() < std::time::Duration::from_secs(10),
            "server did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    std::thread::sleep(std::time::Duration::from_millis(100));
    (server, conn)
}

/// Waits for `child` (e.g. `hold_memory`) to print its first line and checks that it is READY;
/// `what` says what the line shows.
pub fn wait_ready(child: &mut std::process::Child, what: &str) {
    use std::io::BufRead;
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().expect("stdout piped"))
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "READY", "{what}");
}
