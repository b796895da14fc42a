//! Interpreter speed of the CPU device, measured without the network: thread-instructions per
//! second on a compute-bound and a memory-bound kernel, and a 1M-element vector add.

use rgpu_ptx::{decode, parser, vm};
use std::collections::HashMap;
use std::time::Instant;

/// Host buffers standing in for device memory.
struct Mem(Vec<(u64, Vec<u8>)>);

impl vm::Memory for Mem {
    fn region(&self, addr: u64) -> Option<(u64, u64, *mut u8)> {
        self.0
            .iter()
            .find(|(b, d)| addr >= *b && addr < *b + d.len() as u64)
            .map(|(b, d)| (*b, d.len() as u64, d.as_ptr() as *mut u8))
    }
}

/// Kernels used by the benchmarks (also loaded into the server for the launch-rate figure).
pub const PTX: &str = r#"
.version 8.0
.target sm_75
.address_size 64
.visible .entry empty(.param .u32 x)
{
    ret;
}
.visible .entry compute(.param .u64 out, .param .u32 iters)
{
    .reg .pred %p<2>;
    .reg .f32 %f<6>;
    .reg .b32 %r<8>;
    .reg .b64 %rd<4>;
    ld.param.u64 %rd1, [out];
    ld.param.u32 %r1, [iters];
    mov.u32 %r2, %tid.x;
    mov.u32 %r3, %ctaid.x;
    mov.u32 %r4, %ntid.x;
    mad.lo.s32 %r5, %r3, %r4, %r2;
    cvt.rn.f32.s32 %f1, %r5;
    mov.f32 %f2, 0f3F800000;
    mov.u32 %r6, 0;
$LOOP:
    fma.rn.f32 %f2, %f2, 0f3F7FFFEF, %f1;
    mul.f32 %f3, %f2, 0f3F000000;
    add.f32 %f2, %f2, %f3;
    xor.b32 %r7, %r6, %r5;
    add.s32 %r6, %r6, 1;
    setp.lt.u32 %p1, %r6, %r1;
    @%p1 bra $LOOP;
    cvta.to.global.u64 %rd2, %rd1;
    mul.wide.s32 %rd3, %r5, 4;
    add.s64 %rd2, %rd2, %rd3;
    st.global.f32 [%rd2], %f2;
    ret;
}
.visible .entry vadd(.param .u64 a, .param .u64 b, .param .u64 c, .param .u32 n)
{
    .reg .pred %p<2>;
    .reg .f32 %f<4>;
    .reg .b32 %r<6>;
    .reg .b64 %rd<11>;
    ld.param.u64 %rd1, [a];
    ld.param.u64 %rd2, [b];
    ld.param.u64 %rd3, [c];
    ld.param.u32 %r2, [n];
    mov.u32 %r3, %ctaid.x;
    mov.u32 %r4, %ntid.x;
    mov.u32 %r5, %tid.x;
    mad.lo.s32 %r1, %r3, %r4, %r5;
    setp.ge.s32 %p1, %r1, %r2;
    @%p1 bra $DONE;
    cvta.to.global.u64 %rd4, %rd1;
    mul.wide.s32 %rd5, %r1, 4;
    add.s64 %rd6, %rd4, %rd5;
    cvta.to.global.u64 %rd7, %rd2;
    add.s64 %rd8, %rd7, %rd5;
    ld.global.f32 %f1, [%rd8];
    ld.global.f32 %f2, [%rd6];
    add.f32 %f3, %f2, %f1;
    cvta.to.global.u64 %rd9, %rd3;
    add.s64 %rd10, %rd9, %rd5;
    st.global.f32 [%rd10], %f3;
$DONE:
    ret;
}
"#;

/// One measurement row: (what, value, unit).
pub type Row = (String, f64, &'static str);

/// Runs the interpreter benchmarks on `workers` OS threads.
pub fn run(workers: usize) -> Vec<Row> {
    let m = parser::parse(PTX).expect("bench PTX parses");
    let prog = decode::decode(&m, &HashMap::new()).expect("bench PTX decodes");
    let mut rows = vec![];
    // Compute-bound: 64 blocks x 256 threads x 2000 iterations of 7 instructions.
    let n = 64 * 256;
    let mem = Mem(vec![(0x1000_0000, vec![0u8; n * 4])]);
    let mut params = 0x1000_0000u64.to_le_bytes().to_vec();
    params.extend(2000u32.to_le_bytes());
    let l = vm::Launch {
        grid: [64, 1, 1],
        block: [256, 1, 1],
        dyn_smem: 0,
        params: &params,
        workers,
    };
    let f = prog.find("compute").expect("kernel");
    let t = Instant::now();
    let o = vm::launch(&prog, f, &l, &mem);
    let s = t.elapsed().as_secs_f64();
    o.result.expect("compute kernel runs");
    rows.push((
        format!("interpreter, compute-bound, {workers} thread(s)"),
        o.thread_instructions as f64 / s / workers as f64 / 1e6,
        "M thread-instr/s per core",
    ));
    // Memory-bound and the 1M-element vector add.
    let n = 1 << 20;
    let a: Vec<u8> = (0..n).flat_map(|i| (i as f32).to_le_bytes()).collect();
    let mem = Mem(vec![
        (0x1000_0000, a.clone()),
        (0x2000_0000, a),
        (0x3000_0000, vec![0u8; n * 4]),
    ]);
    let mut params = vec![];
    for p in [0x1000_0000u64, 0x2000_0000, 0x3000_0000] {
        params.extend(p.to_le_bytes());
    }
    params.extend((n as u32).to_le_bytes());
    let l = vm::Launch {
        grid: [(n / 256) as u32, 1, 1],
        block: [256, 1, 1],
        dyn_smem: 0,
        params: &params,
        workers,
    };
    let f = prog.find("vadd").expect("kernel");
    let t = Instant::now();
    let o = vm::launch(&prog, f, &l, &mem);
    let s = t.elapsed().as_secs_f64();
    o.result.expect("vadd runs");
    rows.push((
        format!("interpreter, memory-bound (vadd), {workers} thread(s)"),
        o.thread_instructions as f64 / s / workers as f64 / 1e6,
        "M thread-instr/s per core",
    ));
    rows.push(("1M-element vector add (kernel only)".into(), s * 1e3, "ms"));
    rows
}
