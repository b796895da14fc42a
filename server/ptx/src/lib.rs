//! rgpu-ptx owns executing PTX on a CPU: parsing nvcc's PTX text into a syntax tree, lowering it
//! to a compact pre-decoded form, and running kernels warp by warp (32 lanes per dispatch) with
//! CUDA's block, barrier, shuffle and memory semantics. It must not know about sessions, sockets or
//! CUDA handles: memory arrives through the `Memory` trait, and every fault is reported as an error,
//! never a panic or an out-of-bounds host access.

pub mod alu;
pub mod ast;
pub mod decode;
pub mod ir;
pub mod parser;
pub mod vm;

/// Parses and decodes arbitrary PTX text as the server does for a client's module (globals at
/// made-up addresses); must return, never panic. The fuzz target `ptx` and the corpus replay
/// test call it.
pub fn fuzz_module(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(m) = parser::parse(text) else {
        return;
    };
    let Ok(plans) = decode::plan_globals(&m) else {
        return;
    };
    let addrs = plans
        .iter()
        .enumerate()
        .map(|(i, g)| (g.name.clone(), 0x1000_0000 + (i as u64) * 0x10_0000))
        .collect();
    let _ = decode::decode(&m, &addrs);
}
