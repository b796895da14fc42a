//! Compiles the CUDA sources under `tests/data/` with the pinned nvcc at test time and checks that
//! the parser reads the resulting PTX (plain `-O3`, `-lineinfo`, `-G` debug sections, sm_90).
//!
//! nvcc is found through `RGPU_CUDA_HOME` (its `bin/nvcc`), else the workspace's pinned toolkit
//! under `.cuda/venv/lib/python3*/site-packages/nvidia/cu13`.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use rgpu_ptx::ast::{Function, Init, Module, Operand, RegName, Space, Statement, Type};
use rgpu_ptx::parser::parse;

fn cuda_home() -> PathBuf {
    if let Some(home) = std::env::var_os("RGPU_CUDA_HOME") {
        let home = PathBuf::from(home);
        assert!(
            home.join("bin/nvcc").exists(),
            "RGPU_CUDA_HOME={} has no bin/nvcc",
            home.display()
        );
        return home;
    }
    let lib = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.cuda/venv/lib");
    if let Ok(entries) = std::fs::read_dir(&lib) {
        let mut found: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().starts_with("python3"))
            .map(|e| e.path().join("site-packages/nvidia/cu13"))
            .filter(|p| p.join("bin/nvcc").exists())
            .collect();
        found.sort();
        if let Some(p) = found.pop() {
            return p;
        }
    }
    panic!(
        "nvcc not found: set RGPU_CUDA_HOME to a CUDA toolkit (with bin/nvcc), or install the pinned \
         toolkit under {}/python3*/site-packages/nvidia/cu13",
        lib.display()
    );
}

/// Compiles `tests/data/<name>.cu` to PTX with the given extra flags and returns the text.
fn compile(name: &str, tag: &str, flags: &[&str]) -> String {
    let home = cuda_home();
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(format!("{name}.cu"));
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("rgpu-ptx-parse-nvcc");
    std::fs::create_dir_all(&dir).expect("create output directory");
    let out = dir.join(format!("{name}-{tag}.ptx"));
    let result = Command::new(home.join("bin/nvcc"))
        .args(flags)
        .arg("-ptx")
        .arg(&src)
        .arg("-o")
        .arg(&out)
        .output()
        .expect("run nvcc");
    assert!(
        result.status.success(),
        "nvcc failed on {}:\n{}",
        src.display(),
        String::from_utf8_lossy(&result.stderr)
    );
    std::fs::read_to_string(&out).expect("read PTX output")
}

fn compile_and_parse(name: &str, tag: &str, flags: &[&str]) -> Module {
    let text = compile(name, tag, flags);
    match parse(&text) {
        Ok(m) => {
            check_consistency(&m, &format!("{name}-{tag}"));
            m
        }
        Err(e) => panic!("{name}-{tag}.ptx: {e}"),
    }
}

const O3_SM75: &[&str] = &["-O3", "-arch=sm_75"];

fn func<'m>(m: &'m Module, name: &str) -> &'m Function {
    m.functions
        .iter()
        .find(|f| f.name == name)
        .unwrap_or_else(|| panic!("function {name} not found"))
}

fn global<'m>(m: &'m Module, name: &str) -> &'m rgpu_ptx::ast::Variable {
    m.globals
        .iter()
        .find(|v| v.name == name)
        .unwrap_or_else(|| panic!("global {name} not found"))
}

fn walk<'s>(stmts: &'s [Statement], f: &mut impl FnMut(&'s Statement)) {
    for s in stmts {
        f(s);
        if let Statement::Block(b) = s {
            walk(b, f);
        }
    }
}

fn instrs(f: &Function) -> Vec<&rgpu_ptx::ast::Instruction> {
    let mut out = Vec::new();
    if let Some(b) = &f.body {
        walk(b, &mut |s| {
            if let Statement::Instr(i) = s {
                out.push(i);
            }
        });
    }
    out
}

fn is_special_register(name: &str) -> bool {
    let base = name.split('.').next().unwrap_or(name);
    const SPECIAL: &[&str] = &[
        "%tid",
        "%ntid",
        "%ctaid",
        "%nctaid",
        "%laneid",
        "%warpid",
        "%nwarpid",
        "%smid",
        "%nsmid",
        "%gridid",
        "%clock",
        "%clock64",
        "%clock_hi",
        "%globaltimer",
        "%globaltimer_lo",
        "%globaltimer_hi",
        "%lanemask_eq",
        "%lanemask_le",
        "%lanemask_lt",
        "%lanemask_ge",
        "%lanemask_gt",
        "%dynamic_smem_size",
        "%total_smem_size",
        "%cluster_ctarank",
        "%cluster_nctarank",
        "%clusterid",
        "%nclusterid",
        "%cluster_ctaid",
        "%cluster_nctaid",
        "%is_explicit_cluster",
        "%aggr_smem_size",
    ];
    SPECIAL.contains(&base) || base.starts_with("%envreg") || base.starts_with("%pm")
}

/// Cross-checks a parsed module: every register operand is declared (or special), every branch
/// target is a label of its function, every call target is a known function or a register, and
/// every non-register address base is a declared variable or parameter.
fn check_consistency(m: &Module, what: &str) {
    let functions: HashSet<&str> = m.functions.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        functions.len(),
        m.functions.len(),
        "{what}: duplicate functions"
    );
    let globals: HashSet<&str> = m.globals.iter().map(|v| v.name.as_str()).collect();
    for f in &m.functions {
        let Some(body) = &f.body else {
            assert!(
                f.is_extern || m.functions.iter().any(|g| g.name == f.name),
                "{what}"
            );
            continue;
        };
        let mut labels = HashSet::new();
        let mut singles = HashSet::new();
        let mut ranges = Vec::new();
        let mut vars: HashSet<&str> = f
            .params
            .iter()
            .chain(f.returns.iter())
            .map(|v| v.name.as_str())
            .collect();
        let mut prototypes = HashSet::new();
        walk(body, &mut |s| match s {
            Statement::Label(l) => {
                labels.insert(l.as_str());
            }
            Statement::Reg { names, .. } => {
                for n in names {
                    match n {
                        RegName::Single(s) => {
                            singles.insert(s.as_str());
                        }
                        RegName::Range(p, n) => ranges.push((p.as_str(), *n)),
                    }
                }
            }
            Statement::Var(v) => {
                vars.insert(v.name.as_str());
            }
            Statement::Prototype(p) => {
                prototypes.insert(p.as_str());
            }
            _ => {}
        });
        let reg_ok = |r: &str| {
            singles.contains(r)
                || is_special_register(r)
                || ranges.iter().any(|(p, n)| {
                    r.strip_prefix(p)
                        .and_then(|d| d.parse::<u32>().ok())
                        .is_some_and(|i| i < *n)
                })
        };
        let sym_ok = |s: &str| {
            s == "_"
                || labels.contains(s)
                || vars.contains(s)
                || globals.contains(s)
                || functions.contains(s)
                || prototypes.contains(s)
                || singles.contains(s)
        };
        for i in instrs(f) {
            let ctx = format!("{what}: {} line {}", f.name, i.line);
            assert!(!i.op.is_empty(), "{ctx}");
            if let Some((g, _)) = &i.guard {
                assert!(reg_ok(g), "{ctx}: undeclared guard {g}");
            }
            let mut stack: Vec<&Operand> = i.operands.iter().collect();
            while let Some(o) = stack.pop() {
                match o {
                    Operand::Reg(r) | Operand::Not(r) => {
                        assert!(reg_ok(r), "{ctx}: undeclared {r}")
                    }
                    Operand::Pair(a, b) => {
                        assert!(reg_ok(a) && reg_ok(b), "{ctx}: undeclared {a}|{b}")
                    }
                    Operand::Symbol(s) => assert!(sym_ok(s), "{ctx}: unknown symbol {s}"),
                    Operand::Address { base, .. } => {
                        if base.starts_with('%') {
                            assert!(reg_ok(base), "{ctx}: undeclared {base}");
                        } else if !base.is_empty() {
                            assert!(sym_ok(base), "{ctx}: unknown address base {base}");
                        }
                    }
                    Operand::Vector(v) | Operand::List(v) => stack.extend(v.iter()),
                    Operand::Neg(o) => stack.push(o),
                    Operand::Imm(_) | Operand::F32(_) | Operand::F64(_) => {}
                }
            }
            if i.op == "bra" {
                match i.operands.first() {
                    Some(Operand::Symbol(l)) => {
                        assert!(labels.contains(l.as_str()), "{ctx}: no label {l}")
                    }
                    o => panic!("{ctx}: bad branch operand {o:?}"),
                }
            }
            if i.op == "call" {
                let target = i.operands.iter().find(|o| !matches!(o, Operand::List(_)));
                match target {
                    Some(Operand::Symbol(s)) => {
                        assert!(functions.contains(s.as_str()), "{ctx}: no function {s}")
                    }
                    Some(Operand::Reg(_)) => {}
                    o => panic!("{ctx}: bad call target {o:?}"),
                }
            }
        }
    }
}

#[test]
fn vadd_kernels() {
    let m = compile_and_parse("vadd", "o3", O3_SM75);
    assert_eq!(m.version, "9.5");
    assert_eq!(m.target, vec!["sm_75"]);
    assert_eq!(m.address_size, 64);
    assert!(m.globals.is_empty());
    assert_eq!(m.functions.len(), 4);
    assert!(m.functions.iter().all(|f| f.is_entry && f.body.is_some()));

    let f = func(&m, "_Z4vaddPKfS0_Pfi");
    assert_eq!(f.params.len(), 4);
    let types: Vec<Type> = f.params.iter().map(|p| p.ty).collect();
    assert_eq!(types, vec![Type::U64, Type::U64, Type::U64, Type::U32]);
    assert!(f.params.iter().all(|p| p.space == Space::Param));
    assert_eq!(f.params[3].name, "_Z4vaddPKfS0_Pfi_param_3");
    let ins = instrs(f);
    assert!(ins.iter().any(|i| i.op == "mad" && i.mods == ["lo", "s32"]));
    assert!(ins
        .iter()
        .any(|i| i.op == "ld" && i.mods == ["global", "f32"]));
    assert!(ins
        .iter()
        .any(|i| i.op == "bra" && i.guard.as_ref().is_some_and(|(_, neg)| !neg)));
    assert!(ins
        .iter()
        .any(|i| i.operands.contains(&Operand::Reg("%ctaid.x".into()))));
    assert_eq!(ins.last().map(|i| i.op.as_str()), Some("ret"));

    let f = func(&m, "_Z5saxpyfPKfPfi");
    assert_eq!(f.params.len(), 4);
    assert_eq!(f.params[0].ty, Type::F32);
    assert!(instrs(f)
        .iter()
        .any(|i| i.operands.contains(&Operand::Reg("%nctaid.x".into()))));

    let f = func(&m, "_Z8vec4copyPK6float4PS_x");
    assert_eq!(f.params.len(), 3);
    assert!(instrs(f).iter().any(|i| i.mods.contains(&"v4".to_string())
        && i.operands
            .iter()
            .any(|o| matches!(o, Operand::Vector(v) if v.len() == 4))));

    let f = func(&m, "c_kernel");
    let types: Vec<Type> = f.params.iter().map(|p| p.ty).collect();
    assert_eq!(types, vec![Type::U64, Type::U16, Type::F64]);
}

#[test]
fn calls_printf_assert_and_indirect() {
    let m = compile_and_parse("calls", "o3", O3_SM75);
    let names: Vec<&str> = m.functions.iter().map(|f| f.name.as_str()).collect();
    for n in [
        "vprintf",
        "__assertfail",
        "_Z5twicei",
        "_Z3inci",
        "_Z2mk4Pairi",
        "_Z4facti",
        "_Z5callsP4Pairi",
        "_Z8indirectPii",
    ] {
        assert!(names.contains(&n), "{n} missing from {names:?}");
    }
    let vprintf = func(&m, "vprintf");
    assert!(vprintf.is_extern && vprintf.body.is_none() && !vprintf.is_entry);
    assert_eq!((vprintf.returns.len(), vprintf.params.len()), (1, 2));
    let af = func(&m, "__assertfail");
    assert!(af.is_extern && af.returns.is_empty());
    assert_eq!(af.params.len(), 5);
    // Forward-declared device functions are merged with their definitions.
    let twice = func(&m, "_Z5twicei");
    assert!(twice.body.is_some() && !twice.is_extern);

    let mk = func(&m, "_Z2mk4Pairi");
    assert_eq!(mk.params.len(), 2);
    assert_eq!(mk.params[0].dims, vec![16]);
    assert_eq!(mk.params[0].align, Some(8));
    assert_eq!(mk.returns.len(), 1);

    let k = func(&m, "_Z5callsP4Pairi");
    let calls: Vec<_> = instrs(k).into_iter().filter(|i| i.op == "call").collect();
    let targets: Vec<&Operand> = calls
        .iter()
        .filter_map(|c| c.operands.iter().find(|o| matches!(o, Operand::Symbol(_))))
        .collect();
    for t in ["vprintf", "__assertfail", "_Z2mk4Pairi"] {
        assert!(
            targets.contains(&&Operand::Symbol(t.into())),
            "no call to {t}: {targets:?}"
        );
    }
    let vp = calls
        .iter()
        .find(|c| c.operands.get(1) == Some(&Operand::Symbol("vprintf".into())))
        .expect("call to vprintf");
    assert_eq!(vp.mods, vec!["uni"]);
    assert!(matches!(&vp.operands[0], Operand::List(v) if v.len() == 1));
    assert!(matches!(&vp.operands[2], Operand::List(v) if v.len() == 2));
    let mut blocks = 0;
    walk(k.body.as_ref().unwrap(), &mut |s| {
        if matches!(s, Statement::Block(_)) {
            blocks += 1;
        }
    });
    assert!(blocks >= 3, "callseq blocks: {blocks}");

    let ind = func(&m, "_Z8indirectPii");
    let mut protos = Vec::new();
    walk(ind.body.as_ref().unwrap(), &mut |s| {
        if let Statement::Prototype(p) = s {
            protos.push(p.clone());
        }
    });
    assert_eq!(protos.len(), 1);
    let call = instrs(ind)
        .into_iter()
        .find(|i| i.op == "call")
        .expect("indirect call");
    assert!(matches!(call.operands.get(1), Some(Operand::Reg(_))));
    assert_eq!(
        call.operands.get(3),
        Some(&Operand::Symbol(protos[0].clone()))
    );

    let table = global(&m, "table");
    assert_eq!(table.dims, vec![2]);
    assert_eq!(
        table.init,
        vec![
            Init::Symbol("_Z5twicei".into(), 0),
            Init::Symbol("_Z3inci".into(), 0)
        ]
    );
    let s = global(&m, "$str");
    assert_eq!(s.ty, Type::B8);
    assert_eq!(s.init.first(), Some(&Init::Int(u64::from(b't'))));
}

#[test]
fn calls_with_debug_info() {
    // Own output name: tests run concurrently and must not share a PTX file.
    let plain = compile_and_parse("calls", "o3-plain", O3_SM75);
    let names = |m: &Module| {
        let mut v: Vec<String> = m.functions.iter().map(|f| f.name.clone()).collect();
        v.sort();
        v
    };
    let lineinfo = compile_and_parse("calls", "lineinfo", &["-O3", "-arch=sm_75", "-lineinfo"]);
    assert_eq!(names(&plain), names(&lineinfo));
    assert_eq!(plain.globals.len(), lineinfo.globals.len());
    // Same code, so the same instruction stream (lines differ).
    let ops = |m: &Module| -> Vec<(String, Vec<String>)> {
        m.functions
            .iter()
            .flat_map(|f| {
                instrs(f)
                    .into_iter()
                    .map(|i| (i.op.clone(), i.mods.clone()))
            })
            .collect()
    };
    assert_eq!(ops(&plain), ops(&lineinfo));
    let debug = compile_and_parse("calls", "g", &["-G", "-arch=sm_75"]);
    assert!(debug.target.contains(&"debug".to_string()));
    assert!(names(&debug).contains(&"_Z5callsP4Pairi".to_string()));
}

#[test]
fn memory_spaces() {
    let m = compile_and_parse("memory", "o3", O3_SM75);
    let c = global(&m, "counter");
    assert_eq!(
        (c.space, c.ty, c.align),
        (Space::Global, Type::U32, Some(4))
    );
    let w = global(&m, "weights");
    assert_eq!((w.ty, w.dims.clone()), (Type::B8, vec![16]));
    assert_eq!(
        &w.init[..4],
        &[Init::Int(0), Init::Int(0), Init::Int(128), Init::Int(63)]
    );
    let lut = global(&m, "lut");
    assert_eq!(lut.space, Space::Const);
    assert_eq!(lut.dims, vec![24]);
    assert_eq!(lut.init.first(), Some(&Init::Int(1)));
    assert_eq!(
        global(&m, "counter_ptr").init,
        vec![Init::Symbol("counter".into(), 0)]
    );
    assert_eq!(
        global(&m, "scale").init,
        vec![Init::FloatBits(0x4009_1EB8_51EB_851F)]
    );
    assert_eq!(
        global(&m, "big").init,
        vec![Init::Int(0xFFFF_FFFF_0000_0001)]
    );
    assert_eq!(global(&m, "managed_value").ty, Type::U32);
    let d = global(&m, "dynamic_smem");
    assert_eq!(
        (d.space, d.is_extern, d.dims.clone()),
        (Space::Shared, true, vec![0])
    );

    let r = func(&m, "_Z6reducePKfPfi");
    assert_eq!(r.params.len(), 3);
    let mut shared = Vec::new();
    walk(r.body.as_ref().unwrap(), &mut |s| {
        if let Statement::Var(v) = s {
            if v.space == Space::Shared {
                shared.push(v.clone());
            }
        }
    });
    assert_eq!(shared.len(), 1, "demoted __shared__ tile");
    assert_eq!(shared[0].dims, vec![1024]);
    let ins = instrs(r);
    assert!(ins.iter().any(|i| i.op == "shfl"
        && i.mods == ["sync", "down", "b32"]
        && matches!(i.operands.first(), Some(Operand::Pair(..)))));
    assert!(ins
        .iter()
        .any(|i| i.op == "atom" && i.mods.contains(&"add".to_string())));
    assert!(ins.iter().any(|i| i.op == "bar" && i.mods == ["sync"]));

    let d = func(&m, "_Z3dynPii");
    let mut locals = 0;
    walk(d.body.as_ref().unwrap(), &mut |s| {
        if matches!(s, Statement::Var(v) if v.space == Space::Local) {
            locals += 1;
        }
    });
    assert_eq!(locals, 1, "local depot");
    let ins = instrs(d);
    assert!(ins
        .iter()
        .any(|i| i.op == "atom" && i.mods.contains(&"cas".to_string())));
    assert!(ins.iter().any(|i| i.op == "vote" || i.op == "popc"));
    assert!(ins
        .iter()
        .any(|i| i.operands.contains(&Operand::Symbol("dynamic_smem".into()))));
}

#[test]
fn math_and_half() {
    let m = compile_and_parse("math", "o3", O3_SM75);
    let pow: Vec<&Function> = m
        .functions
        .iter()
        .filter(|f| f.name == "__internal_accurate_pow")
        .collect();
    assert_eq!(pow.len(), 1);
    assert!(pow[0].body.is_some());
    let dm = func(&m, "_Z5dmathPdi");
    let ins = instrs(dm);
    assert!(ins
        .iter()
        .any(|i| i.operands.iter().any(|o| matches!(o, Operand::F64(_)))));
    assert!(ins.iter().any(|i| i.op == "fma" && i.mods == ["rn", "f64"]));
    // `mov.b64 {%temp, %rN}, %fdM` inside a nested block.
    assert!(ins
        .iter()
        .any(|i| i.op == "mov"
            && matches!(i.operands.first(), Some(Operand::Vector(v)) if v.len() == 2)));
    let fm = func(&m, "_Z5fmathPfi");
    assert!(instrs(fm)
        .iter()
        .any(|i| i.operands.iter().any(|o| matches!(o, Operand::F32(_)))));
    let h = func(&m, "_Z6halvesP6__halfP7__half2");
    assert!(instrs(h)
        .iter()
        .any(|i| i.mods.iter().any(|m| m == "f16" || m == "f16x2")));
    let sp = func(&m, "_Z8specialsPj");
    let ins = instrs(sp);
    for r in [
        "%laneid",
        "%warpid",
        "%lanemask_lt",
        "%globaltimer",
        "%tid.y",
        "%ctaid.z",
        "%nctaid.y",
    ] {
        assert!(
            ins.iter()
                .any(|i| i.operands.contains(&Operand::Reg(r.into()))),
            "{r} not read"
        );
    }
    assert!(ins.iter().any(|i| i.guard == Some(("p".to_string(), true))));
}

#[test]
fn sm90_output_parses() {
    for name in ["vadd", "calls", "memory", "math"] {
        let m = compile_and_parse(name, "sm90", &["-O3", "-arch=sm_90"]);
        assert_eq!(m.target, vec!["sm_90"]);
        assert!(!m.functions.is_empty());
    }
}
