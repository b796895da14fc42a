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
    assert!(
        out.status.success(),
        "{program} with {kernels}.{kind}\n{}",
        common::show(&out)
    );
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
    assert!(
        err.contains("CUDA_ERROR_NO_BINARY_FOR_GPU"),
        "{}",
        common::show(&out)
    );
    assert!(err.contains("no PTX"), "{}", common::show(&out));
}

/// The second process to load an image only sends its hash: the server's image cache answers.
#[test]
fn images_are_uploaded_once_per_server() {
    use std::process::Command;
    let t = common::start_server(|_| {});
    let srv = &t.srv;
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
    assert!(
        t1.contains("error: 4294967295"),
        "first load must ship the image:\n{t1}"
    );
    let second = run();
    assert!(second.status.success(), "{}", common::show(&second));
    let t2 = String::from_utf8_lossy(&second.stderr).to_string();
    assert!(
        !t2.contains("error: 4294967295"),
        "second load must hit the cache:\n{t2}"
    );
    assert!(t2.contains("image: []"), "{t2}");
}

// ---------------------------------------------------------------------------------------------
// The kernel corpus: one program per area, each checking every result against a CPU reference
// computed in the C program (tests/programs/c/<program>.c, kernels in tests/kernels/<name>.cu).
// ---------------------------------------------------------------------------------------------

#[test]
fn integer_arithmetic_and_bit_operations() {
    expect_pass("int_ops", "int_ops", "ptx");
}

#[test]
fn floating_point_rounding_conversions_and_math() {
    expect_pass("float_ops", "float_ops", "ptx");
}

#[test]
fn floating_point_from_fatbin() {
    expect_pass("float_ops", "float_ops", "fatbin");
}

#[test]
fn shared_memory_and_barriers() {
    expect_pass("shared_mem", "shared_mem", "ptx");
}

#[test]
fn warp_shuffles_votes_and_divergence() {
    expect_pass("warp_ops", "warp_ops", "ptx");
}

#[test]
fn warp_primitives_from_fatbin() {
    expect_pass("warp_ops", "warp_ops", "fatbin");
}

#[test]
fn atomics_under_contention() {
    expect_pass("atomics", "atomics", "ptx");
}

#[test]
fn local_arrays_structs_recursion_and_indirect_calls() {
    expect_pass("calls", "calls", "ptx");
}

#[test]
fn calls_from_fatbin() {
    expect_pass("calls", "calls", "fatbin");
}

#[test]
fn module_globals_and_constants() {
    expect_pass("globals", "globals", "ptx");
}

#[test]
fn globals_from_fatbin() {
    expect_pass("globals", "globals", "fatbin");
}

#[test]
fn grids_and_blocks_in_three_dimensions() {
    expect_pass("grid3d", "grid3d", "ptx");
}

#[test]
fn device_printf_reaches_stdout() {
    let out = run_with_module("device_printf", "device_printf", "ptx");
    assert!(out.status.success(), "{}", common::show(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("device_printf: PASSED"),
        "{}",
        common::show(&out)
    );
    let mut want: Vec<String> = [
        "[0.0] int 100 neg -100 unsigned 4000000000 hex beef00 HEX ABC ll 1234567890123",
        "[0.0] float 0.000000  1.25 1.250e+03 0.5 |   1.250|-1.25   | double 3.1415926536",
        "[0.0] str [hello] [    zero] [ab    ] char Ax % done",
        "[1.0] int 101 neg -100 unsigned 4000000001 hex beef00 HEX ABC ll 2469135780246",
        "[1.0] float 1.250000  1.25 1.250e+03 0.5 |   1.250|-1.25   | double 1.5707963268",
        "[1.0] str [hello] [     one] [ab    ] char Bx % done",
        "[2.0] int 102 neg -100 unsigned 4000000002 hex beef00 HEX ABC ll 3703703670369",
        "[2.0] float 2.500000  1.25 1.250e+03 0.5 |   1.250|-1.25   | double 1.0471975512",
        "[2.0] str [hello] [     two] [ab    ] char Cx % done",
        "[2.37] int 102 neg -137 unsigned 4000000002 hex beef25 HEX ABC ll 3703703670369",
        "[2.37] float 2.500000 38.25 1.250e+03 0.5 |   1.250|-1.25   | double 1.0471975512",
        "[2.37] str [hello] [     two] [ab    ] char Cx % done",
        "[3.0] int 103 neg -100 unsigned 4000000003 hex beef00 HEX ABC ll 4938271560492",
        "[3.0] float 3.750000  1.25 1.250e+03 0.5 |   1.250|-1.25   | double 0.7853981634",
        "[3.0] str [hello] [   three] [ab    ] char Dx % done",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    want.extend((0..32).map(|l| format!("lane {l:02} of 32: {}", l * 3)));
    want.push(
        "specials: inf nan -0.000000e+00 [abc0]    42|-42  |003.1 z 18446744073709551615 -1 \
         +1.23e+04 0xff 010"
            .to_string(),
    );
    want.sort();
    let mut got: Vec<String> = stdout
        .lines()
        .filter(|l| l.starts_with('[') || l.starts_with("lane ") || l.starts_with("specials:"))
        .map(str::to_string)
        .collect();
    got.sort();
    assert_eq!(got, want, "{}", common::show(&out));
}

#[test]
fn kernel_faults_are_sticky_until_reset_and_bad_ptx_is_rejected() {
    let module = common::kernel_module("errors", "ptx");
    let exe = common::c_program("kernel_errors");
    // Hand-written PTX, used from the source tree as it is.
    let bad = common::root().join("tests/kernels/unsupported_tex.ptx");
    let out = common::rgpu_run(&exe, &[module.to_str().unwrap(), bad.to_str().unwrap()]);
    assert!(out.status.success(), "{}", common::show(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stdout.contains("kernel_errors: PASSED"),
        "{}",
        common::show(&out)
    );
    for k in [
        "oob_write",
        "misaligned",
        "shared_oob",
        "check_values",
        "trap_kernel",
    ] {
        assert!(
            stderr.contains(&format!("rgpu: kernel {k} failed")),
            "{k}\n{}",
            common::show(&out)
        );
    }
    assert!(
        stdout.contains("Assertion `x[i] < 100` failed"),
        "{}",
        common::show(&out)
    );
    assert!(
        stdout.contains("PTX line 22: unsupported instruction `tex.1d.v4.f32.s32`"),
        "{}",
        common::show(&out)
    );
}

#[test]
fn sorting_scans_stencils_softmax_and_cooperative_groups() {
    expect_pass("algorithms", "algorithms", "ptx");
}
