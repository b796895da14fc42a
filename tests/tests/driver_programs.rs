//! C driver-API programs compiled against the pinned cuda.h, each run as its own process through
//! `rgpu run` on the embedded default (a local server on the CPU device). Each program checks its
//! results against a CPU reference or CUDA's documented behaviour and prints "<name>: PASSED".

mod common;

fn run_program(name: &str) {
    let exe = common::c_program(name);
    let out = common::rgpu_run(&exe, &[]);
    let text = common::show(&out);
    assert!(out.status.success(), "{name} failed\n{text}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&format!("{name}: PASSED")),
        "{name} did not report success\n{text}"
    );
}

#[test]
fn demo_vector_copies() {
    let exe = common::c_program("demo_driver_api");
    let out = common::rgpu_run(&exe, &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", common::show(&out));
    assert!(stdout.contains("rgpu CPU device"), "{}", common::show(&out));
    assert!(
        stdout.contains("correct (0 mismatches)"),
        "{}",
        common::show(&out)
    );
}

#[test]
fn devices() {
    run_program("devices");
}

#[test]
fn contexts() {
    run_program("contexts");
}

#[test]
fn memory() {
    run_program("memory");
}

#[test]
fn streams_events() {
    run_program("streams_events");
}

#[test]
fn threads() {
    run_program("threads");
}

#[test]
fn fork() {
    run_program("fork");
}

/// A Rust program using cudarc's driver API (tests/programs/cudarc), loaded through the shim by
/// cudarc's own dynamic loading of `libcuda.so`.
#[test]
fn cudarc_driver_api() {
    let exe = common::target_dir().join("cudarc_driver");
    assert!(
        exe.exists(),
        "{} missing: run `cargo build --workspace` first",
        exe.display()
    );
    let out = common::rgpu_run(&exe, &[]);
    assert!(out.status.success(), "{}", common::show(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("cudarc_driver: PASSED"),
        "{}",
        common::show(&out)
    );
}

#[test]
fn pointers() {
    run_program("pointers");
}

/// Large copies, through the shared-memory bulk path (local server) and, with it disabled,
/// through the connection.
#[test]
fn big_copies_both_paths() {
    let exe = common::c_program("big_copies");
    let out = std::process::Command::new(common::rgpu())
        .args(["run", "--"])
        .arg(&exe)
        .env("RGPU_TRACE", "1")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", common::show(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("big_copies: PASSED"));
    let trace = String::from_utf8_lossy(&out.stderr);
    assert!(
        trace.contains("MemcpyHtoDShm") && trace.contains("MemcpyDtoHShm"),
        "shared memory not used"
    );
    let out = std::process::Command::new(common::rgpu())
        .args(["run", "--"])
        .arg(&exe)
        .env("RGPU_SHM", "0")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", common::show(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("big_copies: PASSED"));
}

#[test]
fn stream_capture_queries_report_no_capture() {
    run_program("capture_queries");
}
