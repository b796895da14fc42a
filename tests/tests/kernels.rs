//! Kernels on the CPU device: CUDA C++ under tests/kernels compiled by the pinned nvcc to PTX,
//! fatbins and cubins during the test run, loaded and launched by C driver-API programs through
//! `rgpu run`, each checked against a CPU reference.

mod common;

fn run_with_module(program: &str, kernels: &str, kind: &str) -> std::process::Output {
    let module = common::kernel_module(kernels, kind);
    let exe = common::c_program(program);
    common::rgpu_run(&exe, &[module.to_str().unwrap()])
}

fn expect_pass(program: &str, kernels: &str, kind: &str) {
    let out = run_with_module(program, kernels, kind);
    assert!(out.status.success(), "{program} with {kernels}.{kind}\n{}", common::show(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&format!("{program}: PASSED")),
        "{}",
        common::show(&out)
    );
}

#[test]
fn vadd_from_ptx() {
    expect_pass("launch_vadd", "vadd", "ptx");
}

#[test]
fn vadd_from_fatbin() {
    expect_pass("launch_vadd", "vadd", "fatbin");
}

#[test]
fn sass_only_cubin_is_refused_with_a_reason() {
    let out = run_with_module("launch_vadd", "vadd", "cubin");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("CUDA_ERROR_NO_BINARY_FOR_GPU"), "{}", common::show(&out));
    assert!(err.contains("no PTX"), "{}", common::show(&out));
}

/// The second process to load an image only sends its hash: the server's image cache answers.
#[test]
fn images_are_uploaded_once_per_server() {
    use std::process::Command;
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let mut cfg = rgpu_server::server::ServerConfig::new(dir.path().join("state"));
    cfg.listen = "127.0.0.1:0".parse().unwrap();
    cfg.device = rgpu_server::server::DeviceKind::Cpu;
    let srv = rt.block_on(rgpu_server::server::start(cfg)).unwrap();
    let module = common::kernel_module("vadd", "fatbin");
    let exe = common::c_program("launch_vadd");
    let run = || {
        let mut cmd = Command::new(&exe);
        cmd.arg(&module);
        common::shim_env(&mut cmd, &srv.connection_path);
        cmd.env("RGPU_TRACE", "1");
        cmd.output().unwrap()
    };
    let first = run();
    assert!(first.status.success(), "{}", common::show(&first));
    let t1 = String::from_utf8_lossy(&first.stderr).to_string();
    assert!(t1.contains("error: 4294967295"), "first load must ship the image:\n{t1}");
    let second = run();
    assert!(second.status.success(), "{}", common::show(&second));
    let t2 = String::from_utf8_lossy(&second.stderr).to_string();
    assert!(!t2.contains("error: 4294967295"), "second load must hit the cache:\n{t2}");
    assert!(t2.contains("image: []"), "{t2}");
}
