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
