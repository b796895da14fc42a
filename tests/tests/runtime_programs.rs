//! Unmodified runtime-API programs (tests/programs/cuda), built by nvcc with default flags for
//! the CUDA 13 and CUDA 12 static runtimes, run through `rgpu run` on the embedded default.
//! Each prints "<name>: PASSED" after checking its results against a CPU reference.

mod common;
use common::Runtime;

fn run(name: &str, rt: Runtime) -> std::process::Output {
    let exe = common::cuda_program(name, rt);
    common::rgpu_run(&exe, &[])
}

fn expect_pass(name: &str, rt: Runtime) {
    let out = run(name, rt);
    assert!(out.status.success(), "{name} ({rt:?})\n{}", common::show(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&format!("{name}: PASSED")),
        "{name} ({rt:?})\n{}",
        common::show(&out)
    );
}

macro_rules! both_runtimes {
    ($($name:ident),* $(,)?) => {
        mod cuda13 {
            $(#[test] fn $name() { super::expect_pass(stringify!($name), super::Runtime::Cuda13); })*
        }
        mod cuda12 {
            $(#[test] fn $name() { super::expect_pass(stringify!($name), super::Runtime::Cuda12); })*
        }
    };
}

both_runtimes!(vector_add);
