//! Developer tasks for the rgpu workspace.
//!
//! `cargo xtask codegen [--check]` regenerates the checked-in sources from `protocol/api/driver.api`;
//! `cargo xtask import-header [INCLUDE_DIR]` refreshes the facts taken from the pinned `cuda.h`;
//! `cargo xtask setup-cuda` installs the pinned CUDA compiler wheels into `.cuda/venv`;
//! `cargo xtask demo` builds everything and runs a CUDA program through the shim;
//! `cargo xtask test` runs the whole test suite (what CI runs);
//! `cargo xtask fuzz [SECONDS]` runs every fuzz target of `protocol/fuzz` for SECONDS (default 60).
//! This crate is a development tool: no product crate depends on it.

mod emit;
mod header;
mod spec;

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The pinned CUDA wheels: the test corpus is compiled with exactly these.
const CUDA_WHEELS: &[&str] = &[
    "nvidia-cuda-nvcc==13.5.37",
    "nvidia-cuda-runtime==13.5.37",
    "nvidia-cuda-crt==13.5.37",
    "nvidia-cuda-cccl==13.3.5.0.6",
    // The CUDA 12 runtime (static cudart 12.9) for the 12.x half of the runtime-program corpus.
    "nvidia-cuda-runtime-cu12==12.9.79",
];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("codegen") => codegen(args.iter().any(|a| a == "--check")),
        Some("import-header") => import_header(args.get(1).map(PathBuf::from)),
        Some("setup-cuda") => setup_cuda().map(|p| println!("{}", p.display())),
        Some("demo") => demo(),
        Some("test") => test(),
        Some("gpu-bin") => gpu_bin(),
        Some("fuzz") => fuzz(
            args.get(1)
                .map(|s| s.parse().context("SECONDS must be a number"))
                .transpose()?
                .unwrap_or(60),
        ),
        _ => {
            eprintln!(
                "usage: cargo xtask <codegen [--check] | import-header [INCLUDE_DIR] | setup-cuda | demo | test | fuzz [SECONDS] | gpu-bin>"
            );
            std::process::exit(2)
        }
    }
}

/// Release binaries for `bench/gpu-check.sh` on a GPU machine without Rust: `rgpu`, the shim and
/// `rgpu-bench`, stripped, in `.gpu-bin/` (send it along with the device run's `carry`).
fn gpu_bin() -> Result<()> {
    run(cargo().args([
        "build",
        "--release",
        "-p",
        "rgpu-server",
        "-p",
        "rgpu-shim",
        "-p",
        "rgpu-bench",
    ]))?;
    let out = root().join(".gpu-bin");
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out)?;
    for f in ["rgpu", "rgpu-bench", "libcuda.so"] {
        let dst = out.join(f);
        std::fs::copy(root().join("target/release").join(f), &dst)
            .with_context(|| format!("copying {f}"))?;
        run(Command::new("strip").arg(&dst))?;
    }
    println!("{}", out.display());
    Ok(())
}

fn facts_path() -> PathBuf {
    root().join("protocol/api/cuda-13.5.txt")
}

fn import_header(dir: Option<PathBuf>) -> Result<()> {
    let dir = match dir {
        Some(d) => d,
        None => setup_cuda()?.join("include"),
    };
    let mut out = String::from(
        "# Facts imported from the pinned CUDA 13.5 headers by `cargo xtask import-header`.\n\
         # Function names: cuda.h preprocessed with __CUDA_API_VERSION_INTERNAL.\n\
         # Proc versions: the PFN_<name>_v<version>[_ptds|_ptsz] typedefs of cudaTypedefs.h.\n\n[functions]\n",
    );
    for f in header::function_names(&dir)? {
        out.push_str(&f);
        out.push('\n');
    }
    out.push_str("\n[proc-versions]\n");
    for p in header::proc_versions(&dir)? {
        out.push_str(&format!("{} {} {}\n", p.base, p.version, p.stream).replace("  \n", "\n"));
    }
    for (tag, title) in [
        ("cudaError_enum", "CUresult"),
        ("CUdevice_attribute_enum", "CUdevice_attribute"),
    ] {
        out.push_str(&format!("\n[enum {title}]\n"));
        for (n, v) in header::enum_members(&dir, tag)? {
            out.push_str(&format!("{n} {v}\n"));
        }
    }
    let out = out
        .lines()
        .map(str::trim_end)
        .collect::<Vec<_>>()
        .join("\n")
        + "\n";
    std::fs::write(facts_path(), out)?;
    println!("wrote {}", facts_path().display());
    Ok(())
}

fn codegen(check: bool) -> Result<()> {
    let r = root();
    let spec_text = std::fs::read_to_string(r.join("protocol/api/driver.api"))?;
    let spec = spec::parse(&spec_text)?;
    let facts = emit::HeaderFacts::parse(&std::fs::read_to_string(facts_path())?)?;
    let outputs = [
        (
            r.join("protocol/src/generated/messages.rs"),
            emit::protocol(&spec, &spec_text, &facts),
        ),
        (
            r.join("shim/src/generated/exports.rs"),
            emit::shim(&spec, &facts)?,
        ),
    ];
    let mut stale = vec![];
    for (path, text) in outputs {
        let text = rustfmt(&text)?;
        let old = std::fs::read_to_string(&path).unwrap_or_default();
        if old != text {
            if check {
                stale.push(path.display().to_string());
            } else {
                std::fs::create_dir_all(path.parent().unwrap())?;
                std::fs::write(&path, text)?;
                println!("wrote {}", path.display());
            }
        }
    }
    if !stale.is_empty() {
        bail!(
            "generated code is out of date, run `cargo xtask codegen`: {}",
            stale.join(", ")
        );
    }
    Ok(())
}

fn rustfmt(text: &str) -> Result<String> {
    use std::io::Write;
    let mut child = Command::new("rustfmt")
        .args(["--edition", "2021", "--emit", "stdout"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("running rustfmt")?;
    child.stdin.take().unwrap().write_all(text.as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!("rustfmt failed on generated code");
    }
    Ok(String::from_utf8(out.stdout)?)
}

fn run(cmd: &mut Command) -> Result<()> {
    eprintln!("+ {cmd:?}");
    let st = cmd.status().with_context(|| format!("starting {cmd:?}"))?;
    if !st.success() {
        bail!("{cmd:?} failed: {st}");
    }
    Ok(())
}

/// Installs the pinned CUDA wheels into `.cuda/venv` (once) and returns the CUDA home
/// (the directory holding `bin/nvcc` and `include/cuda.h`).
fn setup_cuda() -> Result<PathBuf> {
    let venv = root().join(".cuda/venv");
    let stamp = venv.join("rgpu-wheels.txt");
    let want = CUDA_WHEELS.join("\n");
    if std::fs::read_to_string(&stamp).ok().as_deref() != Some(want.as_str()) {
        run(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
        run(Command::new(venv.join("bin/python"))
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .args(CUDA_WHEELS))?;
        std::fs::write(&stamp, want)?;
    }
    let home = cuda_home(&venv).context("nvidia/cu13 not found in .cuda/venv")?;
    // nvcc looks for its host compiler and ptxas/cicc next to itself; the wheels ship them.
    Ok(home)
}

fn cuda_home(venv: &Path) -> Option<PathBuf> {
    let lib = venv.join("lib");
    for e in std::fs::read_dir(&lib).ok()? {
        let p = e.ok()?.path().join("site-packages/nvidia/cu13");
        if p.join("include/cuda.h").exists() {
            return Some(p);
        }
    }
    None
}

fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root());
    // The etcd client's build compiles protobuf files: use the protoc that ships in a crate
    // unless one is configured.
    if std::env::var_os("PROTOC").is_none() {
        if let Ok(p) = protoc_bin_vendored::protoc_bin_path() {
            c.env("PROTOC", p);
        }
    }
    c
}

/// The pool tests start a real etcd: install Debian's `etcd-server` when it is missing and we
/// may (root with apt-get); otherwise say what to do.
fn ensure_etcd() -> Result<()> {
    let found = |name: &str| {
        std::env::var_os("PATH")
            .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(name).exists()))
    };
    if std::env::var_os("RGPU_ETCD").is_some() || found("etcd") {
        return Ok(());
    }
    // Our user id, from /proc.
    let root = std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false);
    if !(root && found("apt-get")) {
        bail!("the pool tests need etcd: install Debian's etcd-server (or set RGPU_ETCD to an etcd binary)");
    }
    eprintln!("+ apt-get install etcd-server (for the pool tests)");
    let quiet = |c: &mut Command| {
        c.env("DEBIAN_FRONTEND", "noninteractive");
    };
    let mut update = Command::new("apt-get");
    update.args(["update", "-qq"]);
    quiet(&mut update);
    run(&mut update)?;
    let mut install = Command::new("apt-get");
    install.args([
        "install",
        "-y",
        "-qq",
        "--no-install-recommends",
        "etcd-server",
    ]);
    quiet(&mut install);
    run(&mut install)
}

fn demo() -> Result<()> {
    let home = setup_cuda()?;
    run(cargo().args(["build", "--workspace"]))?;
    let out = root().join("target/demo");
    std::fs::create_dir_all(&out)?;
    let exe = out.join("vector_driver_api");
    run(
        Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()))
            .arg("-O2")
            .arg("-I")
            .arg(home.join("include"))
            .arg(root().join("tests/programs/c/demo_driver_api.c"))
            .arg("-o")
            .arg(&exe)
            .arg(format!("-L{}", root().join("target/debug").display()))
            .arg("-lcuda"),
    )?;
    println!(
        "\nRunning {} through `rgpu run` (embedded local server on the default device):\n",
        exe.display()
    );
    run(Command::new(root().join("target/debug/rgpu"))
        .args(["run", "--"])
        .arg(&exe))?;
    // An unmodified nvcc-built program (static cudart, a kernel run by the CPU device).
    let cuda_exe = out.join("vector_add");
    run(Command::new(home.join("bin/nvcc"))
        .arg(root().join("tests/programs/cuda/vector_add.cu"))
        .arg("-o")
        .arg(&cuda_exe))?;
    println!(
        "\nRunning {} (built by nvcc, static cudart) through `rgpu run`:\n",
        cuda_exe.display()
    );
    run(Command::new(root().join("target/debug/rgpu"))
        .args(["run", "--"])
        .arg(&cuda_exe))
}

fn test() -> Result<()> {
    let home = setup_cuda()?;
    ensure_etcd()?;
    run(cargo().args(["fmt", "--all", "--check"]))?;
    codegen(true)?;
    run(cargo().args(["build", "--workspace", "--all-targets"]))?;
    run(cargo().args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    run(cargo()
        .args(["test", "--workspace", "--all-targets"])
        .env("RGPU_CUDA_HOME", &home))?;
    // The GPU check script runs on GPU machines only; a short dry run on the CPU device keeps it
    // working (argument handling, corpus build, server start, comparison, report).
    let out = tempfile_dir("gpu-check")?;
    run(Command::new("bash")
        .arg(root().join("bench/gpu-check.sh"))
        .args([
            "--bin",
            "target/debug",
            "--device",
            "cpu",
            "--no-native",
            "--budget",
            "120",
        ])
        .args([
            "--only",
            "^(vector_add|launch_vadd.ptx|device_printf)$",
            "--out",
        ])
        .arg(&out)
        .env("NVCC", home.join("bin/nvcc"))
        .current_dir(root()))?;
    let report = std::fs::read_to_string(out.join("gpu-check.md"))?;
    if !report.contains("**3 pass**") {
        bail!("bench/gpu-check.sh dry run did not pass its 3 programs:\n{report}");
    }
    if !report.contains("(`multi_device 2`): PASS") {
        bail!("bench/gpu-check.sh dry run: the two-server check did not pass:\n{report}");
    }
    // Every decoder of untrusted bytes, fuzzed for a bounded time.
    fuzz(20)
}

const FUZZ_TARGETS: &[&str] = &[
    "call_frame",
    "reply_frame",
    "handshake",
    "connection_file",
    "module_image",
    "ptx",
];
const CARGO_FUZZ_VERSION: &str = "0.13.2";

/// Runs each fuzz target for `seconds` from a copy of its kept corpus. A crash fails the step;
/// libFuzzer leaves the reproducer in `protocol/fuzz/artifacts/<target>/` (keep it: the corpus
/// replay test runs it on every build once it is fixed).
fn fuzz(seconds: u64) -> Result<()> {
    let has = Command::new(cargo_bin("cargo-fuzz"))
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains(CARGO_FUZZ_VERSION))
        .unwrap_or(false);
    if !has {
        run(cargo().args([
            "install",
            "--locked",
            "cargo-fuzz",
            "--version",
            CARGO_FUZZ_VERSION,
        ]))?;
    }
    let dir = root().join("protocol");
    // cargo fuzz needs sanitizer flags that stable rustc accepts only as a bootstrap compiler.
    let fuzz_cmd = || {
        let mut c = cargo();
        c.arg("fuzz").current_dir(&dir).env("RUSTC_BOOTSTRAP", "1");
        c
    };
    run(fuzz_cmd().args(["build", "-O"]))?;
    let work = tempfile_dir("fuzz-corpus")?;
    for t in FUZZ_TARGETS {
        let corpus = work.join(t);
        std::fs::create_dir_all(&corpus)?;
        for e in std::fs::read_dir(dir.join("fuzz/corpus").join(t))?.flatten() {
            std::fs::copy(e.path(), corpus.join(e.file_name()))?;
        }
        // libFuzzer reports every new input: keep that in a log and print a summary.
        let out = work.join(format!("{t}.log"));
        let st = fuzz_cmd()
            .args(["run", "-O", t])
            .arg(&corpus)
            .args([
                "--",
                &format!("-max_total_time={seconds}"),
                "-rss_limit_mb=2048",
                "-print_final_stats=1",
            ])
            .stdout(std::fs::File::create(work.join(format!("{t}.out")))?)
            .stderr(std::fs::File::create(&out)?)
            .status()?;
        let text = std::fs::read_to_string(&out).unwrap_or_default();
        let runs = text
            .lines()
            .find_map(|l| l.strip_prefix("stat::number_of_executed_units:"))
            .map(str::trim)
            .unwrap_or("?")
            .to_string();
        if !st.success() {
            let tail: Vec<&str> = text.lines().rev().take(60).collect();
            for l in tail.into_iter().rev() {
                eprintln!("{l}");
            }
            bail!(
                "fuzz target {t} failed ({st}); the reproducer is in protocol/fuzz/artifacts/{t}"
            );
        }
        eprintln!("fuzz {t}: {runs} inputs in {seconds} s, no crash");
    }
    Ok(())
}

/// A cargo-installed binary, by name.
fn cargo_bin(name: &str) -> PathBuf {
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .unwrap_or_default();
    home.join("bin").join(name)
}

/// A fresh directory under target/ for a step's output.
fn tempfile_dir(name: &str) -> Result<PathBuf> {
    let d = root().join("target").join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d)?;
    Ok(d)
}
