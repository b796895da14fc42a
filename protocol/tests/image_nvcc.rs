//! Module images produced by the pinned nvcc: recognition, sizing and PTX extraction.
//!
//! The CUDA toolkit is found through `RGPU_CUDA_HOME`, else under
//! `.cuda/venv/lib/python3*/site-packages/nvidia/cu13` of the workspace.

use std::path::{Path, PathBuf};
use std::process::Command;

use rgpu_protocol::image::{
    self, extract_ptx, fatbin_entries, image_size, Compression, EntryKind, ImageError, ImageKind,
};

const KERNEL: &str = "vec_add_kernel";

const SOURCE: &str = r#"
extern "C" __global__ void vec_add_kernel(const float *a, const float *b, float *c, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) c[i] = a[i] + b[i];
}

int main() { return 0; }
"#;

fn cuda_home() -> PathBuf {
    if let Some(home) = std::env::var_os("RGPU_CUDA_HOME") {
        return PathBuf::from(home);
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let lib = workspace.join(".cuda/venv/lib");
    let found = std::fs::read_dir(&lib).ok().and_then(|dir| {
        dir.filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().starts_with("python3"))
            .map(|e| e.path().join("site-packages/nvidia/cu13"))
            .find(|p| p.join("bin/nvcc").is_file())
    });
    found.unwrap_or_else(|| {
        panic!(
            "no CUDA toolkit: set RGPU_CUDA_HOME, or install the pinned nvcc so that {}/python3*/\
             site-packages/nvidia/cu13/bin/nvcc exists",
            lib.display()
        )
    })
}

/// Compiles [`SOURCE`] with `args`, returning the output file's bytes.
fn nvcc(out_name: &str, args: &[&str]) -> Vec<u8> {
    let home = cuda_home();
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("k.cu");
    std::fs::write(&src, SOURCE).unwrap();
    let out = dir.path().join(out_name);
    let path = format!(
        "{}:{}",
        home.join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let result = Command::new(home.join("bin/nvcc"))
        .env("PATH", path)
        .args(args)
        .arg("-o")
        .arg(&out)
        .arg(&src)
        .output()
        .unwrap_or_else(|e| panic!("cannot run nvcc from {}: {e}", home.display()));
    assert!(
        result.status.success(),
        "nvcc {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&result.stdout),
        String::from_utf8_lossy(&result.stderr)
    );
    std::fs::read(&out).unwrap()
}

fn size(buf: &[u8], max: usize) -> Result<(ImageKind, usize), ImageError> {
    // SAFETY: `max` never exceeds the buffer length, so nothing outside `buf` is read.
    unsafe { image_size(buf.as_ptr(), max.min(buf.len())) }
}

/// Checks a fatbin holding PTX for sm_`arch`: kind, size, and the extracted text.
fn check_ptx_fatbin(fb: &[u8], arch: u32) -> String {
    assert_eq!(image::kind(fb), Some(ImageKind::Fatbin));
    assert_eq!(size(fb, usize::MAX).unwrap(), (ImageKind::Fatbin, fb.len()));
    let ptx = extract_ptx(fb).unwrap();
    assert!(ptx.contains(".entry"), "{ptx}");
    assert!(ptx.contains(KERNEL), "{ptx}");
    assert!(ptx.contains(&format!(".target sm_{arch}")), "{ptx}");
    assert!(!ptx.ends_with('\0'));
    ptx
}

#[test]
fn sass_and_ptx_fatbin() {
    let fb = nvcc("x.fatbin", &["-fatbin", "-arch=sm_75"]);
    check_ptx_fatbin(&fb, 75);
    let entries = fatbin_entries(&fb).unwrap();
    let kinds: Vec<_> = entries.iter().map(|e| (e.kind, e.arch)).collect();
    assert!(kinds.contains(&(EntryKind::Ptx, 75)), "{entries:?}");
    assert!(kinds.contains(&(EntryKind::Elf, 75)), "{entries:?}");
    // A `max` below the image size is refused.
    assert!(matches!(
        size(&fb, fb.len() - 1),
        Err(ImageError::TooLarge { .. })
    ));
    // Trailing bytes after the image do not change its size.
    let mut longer = fb.clone();
    longer.extend_from_slice(&[0x5a; 64]);
    assert_eq!(
        size(&longer, usize::MAX).unwrap(),
        (ImageKind::Fatbin, fb.len())
    );
}

#[test]
fn ptx_only_fatbin() {
    let fb = nvcc(
        "p.fatbin",
        &["-fatbin", "-gencode", "arch=compute_75,code=compute_75"],
    );
    check_ptx_fatbin(&fb, 75);
    let entries = fatbin_entries(&fb).unwrap();
    assert!(
        entries.iter().all(|e| e.kind == EntryKind::Ptx),
        "{entries:?}"
    );
}

#[test]
fn compressed_fatbins() {
    // `speed` is LZ4, `default`/`size`/`balance` are zstd in this nvcc.
    for (mode, want) in [
        ("speed", Compression::Lz4),
        ("default", Compression::Zstd),
        ("size", Compression::Zstd),
    ] {
        let fb = nvcc(
            "c.fatbin",
            &[
                "-fatbin",
                "-arch=sm_75",
                "-Xfatbin=-compress-all",
                &format!("--compress-mode={mode}"),
            ],
        );
        check_ptx_fatbin(&fb, 75);
        let entries = fatbin_entries(&fb).unwrap();
        assert!(
            entries.iter().all(|e| e.compression == want),
            "{mode}: {entries:?}"
        );
        let ptx = entries.iter().find(|e| e.kind == EntryKind::Ptx).unwrap();
        assert!(ptx.uncompressed_size > 0 && ptx.compressed_size > 0);
    }
    // Plain -Xfatbin=-compress-all, whatever its default algorithm.
    let fb = nvcc(
        "c.fatbin",
        &["-fatbin", "-arch=sm_75", "-Xfatbin=-compress-all"],
    );
    check_ptx_fatbin(&fb, 75);
    let entries = fatbin_entries(&fb).unwrap();
    assert!(entries.iter().all(|e| e.compression != Compression::None));
}

#[test]
fn concatenated_multi_arch_fatbins() {
    let multi = [
        "-gencode",
        "arch=compute_75,code=[sm_75,compute_75]",
        "-gencode",
        "arch=compute_80,code=[sm_80,compute_80]",
        "-gencode",
        "arch=compute_90,code=[sm_90,compute_90]",
    ];
    for extra in [
        &["--concat"][..],
        &["--concat", "--compress-mode=speed", "-G"][..],
        &[][..],
    ] {
        let mut args = vec!["-fatbin"];
        args.extend_from_slice(&multi);
        args.extend_from_slice(extra);
        let fb = nvcc("m.fatbin", &args);
        check_ptx_fatbin(&fb, 75);
        let entries = fatbin_entries(&fb).unwrap();
        for arch in [75, 80, 90] {
            for kind in [EntryKind::Ptx, EntryKind::Elf] {
                assert!(
                    entries.iter().any(|e| e.kind == kind && e.arch == arch),
                    "{extra:?}: {kind:?} {arch} missing from {entries:?}"
                );
            }
        }
        if extra.contains(&"--concat") {
            assert!(entries.iter().all(|e| e.in_group.is_some()), "{entries:?}");
        }
    }
    // Without an arch <= 75, the highest PTX is chosen.
    let fb = nvcc(
        "h.fatbin",
        &[
            "-fatbin",
            "-gencode",
            "arch=compute_80,code=compute_80",
            "-gencode",
            "arch=compute_90,code=compute_90",
        ],
    );
    check_ptx_fatbin(&fb, 90);
}

#[test]
fn sass_only_images_have_no_ptx() {
    let fb = nvcc(
        "s.fatbin",
        &["-fatbin", "-gencode", "arch=compute_75,code=sm_75"],
    );
    assert_eq!(image::kind(&fb), Some(ImageKind::Fatbin));
    assert_eq!(
        size(&fb, usize::MAX).unwrap(),
        (ImageKind::Fatbin, fb.len())
    );
    match extract_ptx(&fb) {
        Err(e @ ImageError::NoPtx { .. }) => {
            assert!(e.to_string().contains("sm_75"), "{e}");
            assert!(matches!(e, ImageError::NoPtx { archs } if archs == [75]));
        }
        other => panic!("{other:?}"),
    }

    let cubin = nvcc("k.cubin", &["-cubin", "-arch=sm_75"]);
    assert_eq!(image::kind(&cubin), Some(ImageKind::Elf));
    assert_eq!(
        size(&cubin, usize::MAX).unwrap(),
        (ImageKind::Elf, cubin.len())
    );
    assert!(matches!(
        size(&cubin, cubin.len() - 1),
        Err(ImageError::TooLarge { .. })
    ));
    assert!(matches!(extract_ptx(&cubin), Err(ImageError::NoPtx { archs }) if archs == [75]));
}

#[test]
fn ptx_text() {
    let mut ptx = nvcc("k.ptx", &["-ptx", "-arch=sm_75"]);
    let text = String::from_utf8(ptx.clone()).unwrap();
    assert!(!ptx.contains(&0));
    ptx.push(0);
    ptx.extend_from_slice(b"bytes after the NUL");
    assert_eq!(image::kind(&ptx), Some(ImageKind::Ptx));
    assert_eq!(
        size(&ptx, usize::MAX).unwrap(),
        (ImageKind::Ptx, text.len() + 1)
    );
    let got = extract_ptx(&ptx).unwrap();
    assert_eq!(got, text);
    assert!(got.contains(".entry") && got.contains(KERNEL));
}

#[test]
fn host_object_holds_the_fatbin() {
    let obj = nvcc("k.o", &["-c", "-arch=sm_75"]);
    assert_eq!(image::kind(&obj), Some(ImageKind::Elf));
    assert_eq!(size(&obj, usize::MAX).unwrap(), (ImageKind::Elf, obj.len()));
    let ptx = extract_ptx(&obj).unwrap();
    assert!(ptx.contains(".entry") && ptx.contains(KERNEL), "{ptx}");
}

/// A small deterministic generator, so failures reproduce.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn mutated_nvcc_images_never_panic() {
    let images = [
        nvcc(
            "g.fatbin",
            &[
                "-fatbin",
                "-gencode",
                "arch=compute_75,code=[sm_75,compute_75]",
                "-gencode",
                "arch=compute_80,code=[sm_80,compute_80]",
                "--concat",
                "--compress-mode=speed",
                "-G",
            ],
        ),
        nvcc(
            "z.fatbin",
            &["-fatbin", "-arch=sm_75", "-Xfatbin=-compress-all"],
        ),
        nvcc("k.cubin", &["-cubin", "-arch=sm_75"]),
        nvcc("k.o", &["-c", "-arch=sm_75"]),
    ];
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    for round in 0..4000 {
        let mut buf = images[round % images.len()].clone();
        // Mostly hit the headers, where the structure lives.
        for _ in 0..1 + rng.below(3) {
            let i = if rng.below(2) == 0 {
                rng.below(buf.len().min(512))
            } else {
                rng.below(buf.len())
            };
            buf[i] = rng.next() as u8;
        }
        if rng.below(8) == 0 {
            let n = rng.below(buf.len());
            buf.truncate(n);
        }
        let _ = image::kind(&buf);
        let _ = extract_ptx(&buf);
        let _ = fatbin_entries(&buf);
        let _ = size(&buf, buf.len());
    }
}
