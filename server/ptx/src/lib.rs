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
