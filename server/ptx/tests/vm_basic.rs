//! Runs small kernels through parser → decoder → interpreter with host-side memory.

use rgpu_ptx::{decode, parser, vm};
use std::collections::HashMap;
use std::sync::Mutex;

/// Device memory for tests: a list of host buffers at fake device addresses.
pub struct Mem {
    bufs: Mutex<Vec<(u64, Vec<u8>)>>,
}

impl Default for Mem {
    fn default() -> Self {
        Self::new()
    }
}

impl Mem {
    pub fn new() -> Mem {
        Mem {
            bufs: Mutex::new(vec![]),
        }
    }
    pub fn alloc(&self, data: Vec<u8>) -> u64 {
        let mut b = self.bufs.lock().unwrap();
        let base = 0x1000_0000 + (b.len() as u64) * 0x100_0000;
        b.push((base, data));
        base
    }
    pub fn read(&self, addr: u64) -> Vec<u8> {
        self.bufs
            .lock()
            .unwrap()
            .iter()
            .find(|(b, _)| *b == addr)
            .unwrap()
            .1
            .clone()
    }
}

impl vm::Memory for Mem {
    fn region(&self, addr: u64) -> Option<(u64, u64, *mut u8)> {
        let mut b = self.bufs.lock().unwrap();
        b.iter_mut()
            .find(|(base, d)| addr >= *base && addr < *base + d.len() as u64)
            .map(|(base, d)| (*base, d.len() as u64, d.as_mut_ptr()))
    }
}

pub fn f32s(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

pub fn to_f32s(b: &[u8]) -> Vec<f32> {
    b.chunks(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

const SCALE: &str = r#"
.version 9.5
.target sm_75
.address_size 64
.visible .entry scale(.param .u64 p0, .param .f32 p1, .param .u32 p2)
{
    .reg .pred %p<3>;
    .reg .f32 %f<4>;
    .reg .b32 %r<12>;
    .reg .b64 %rd<6>;
    ld.param.u64 %rd2, [p0];
    ld.param.f32 %f1, [p1];
    ld.param.u32 %r6, [p2];
    mov.u32 %r7, %ctaid.x;
    mov.u32 %r1, %ntid.x;
    mov.u32 %r8, %tid.x;
    mad.lo.s32 %r11, %r7, %r1, %r8;
    setp.ge.s32 %p1, %r11, %r6;
    @%p1 bra $L__BB1_3;
    mov.u32 %r9, %nctaid.x;
    mul.lo.s32 %r3, %r1, %r9;
    cvta.to.global.u64 %rd1, %rd2;
$L__BB1_2:
    mul.wide.s32 %rd3, %r11, 4;
    add.s64 %rd4, %rd1, %rd3;
    ld.global.f32 %f2, [%rd4];
    mul.f32 %f3, %f1, %f2;
    st.global.f32 [%rd4], %f3;
    add.s32 %r11, %r11, %r3;
    setp.lt.s32 %p2, %r11, %r6;
    @%p2 bra $L__BB1_2;
$L__BB1_3:
    ret;
}
"#;

#[test]
fn grid_stride_loop_with_divergent_exits() {
    let m = parser::parse(SCALE).unwrap();
    let prog = decode::decode(&m, &HashMap::new()).unwrap();
    let mem = Mem::new();
    let n = 1000usize;
    let x: Vec<f32> = (0..n).map(|i| i as f32).collect();
    let a = mem.alloc(f32s(&x));
    let mut params = a.to_le_bytes().to_vec();
    params.extend(2.5f32.to_le_bytes());
    params.extend((n as u32).to_le_bytes());
    let l = vm::Launch {
        grid: [3, 1, 1],
        block: [100, 1, 1],
        dyn_smem: 0,
        params: &params,
        workers: 2,
    };
    let out = vm::launch(&prog, 0, &l, &mem);
    out.result.unwrap();
    let y = to_f32s(&mem.read(a));
    for (i, v) in y.iter().enumerate() {
        assert_eq!(*v, 2.5 * i as f32, "element {i}");
    }
}

#[test]
fn nvcc_vadd_partial_last_block() {
    let Ok(text) = std::fs::read_to_string("/tmp/vadd.ptx") else {
        return;
    };
    let m = parser::parse(&text).unwrap();
    let prog = decode::decode(&m, &HashMap::new()).unwrap();
    let mem = Mem::new();
    let n = 100000usize;
    let a = mem.alloc(f32s(&vec![1.0; n]));
    let b = mem.alloc(f32s(&vec![2.0; n]));
    let c = mem.alloc(f32s(&vec![0.0; n]));
    let mut params = vec![];
    for p in [a, b, c] {
        params.extend(p.to_le_bytes());
    }
    params.extend((n as u32).to_le_bytes());
    let l = vm::Launch {
        grid: [391, 1, 1],
        block: [256, 1, 1],
        dyn_smem: 0,
        params: &params,
        workers: 2,
    };
    let f = prog.find("vadd").unwrap();
    let out = vm::launch(&prog, f, &l, &mem);
    out.result.unwrap();
    assert!(to_f32s(&mem.read(c)).iter().all(|&v| v == 3.0));
}

#[test]
fn warp_sz_and_bmsk() {
    let ptx = r#"
.version 9.5
.target sm_75
.address_size 64
.visible .entry k(.param .u64 out)
{
    .reg .b32 %r<6>;
    .reg .b64 %rd<3>;
    ld.param.u64 %rd1, [out];
    mov.u32 %r1, WARP_SZ;
    bmsk.clamp.b32 %r2, 4, 8;
    bmsk.wrap.b32 %r3, 36, 3;
    st.global.u32 [%rd1], %r1;
    st.global.u32 [%rd1+4], %r2;
    st.global.u32 [%rd1+8], %r3;
    ret;
}
"#;
    let m = parser::parse(ptx).unwrap();
    let prog = decode::decode(&m, &HashMap::new()).unwrap();
    let mem = Mem::new();
    let out = mem.alloc(vec![0u8; 12]);
    let params = out.to_le_bytes().to_vec();
    let l = vm::Launch {
        grid: [1, 1, 1],
        block: [1, 1, 1],
        dyn_smem: 0,
        params: &params,
        workers: 1,
    };
    vm::launch(&prog, 0, &l, &mem).result.unwrap();
    let b = mem.read(out);
    let w = |i: usize| u32::from_le_bytes(b[i * 4..i * 4 + 4].try_into().unwrap());
    assert_eq!(w(0), 32);
    assert_eq!(w(1), 0xff0);
    assert_eq!(w(2), 0x70);
}
