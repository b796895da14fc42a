//! The interpreter: runs a kernel's blocks on a pool of OS threads; inside a block, one thread runs
//! all warps round robin. A warp executes one decoded instruction for all its lanes that sit at the
//! same program counter (lowest PC first, which reconverges structured divergence), so every
//! dispatch does up to 32 lanes of work.

use crate::alu;
use crate::ir::*;
use std::sync::atomic::{
    AtomicBool, AtomicU16, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering,
};
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

/// Device memory as the kernel sees it.
pub trait Memory: Sync {
    /// The allocation containing `addr`: (base address, length, host pointer to its first byte).
    /// The host memory must stay valid for the whole launch.
    fn region(&self, addr: u64) -> Option<(u64, u64, *mut u8)>;
}

/// Why a launch failed (each maps to a CUDA error).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Fault {
    /// An access outside every allocation (`CUDA_ERROR_ILLEGAL_ADDRESS`).
    #[error("illegal address {addr:#x} ({what}) in {kernel} at PTX line {line}, block {block:?} thread {thread:?}")]
    IllegalAddress {
        /// Faulting address.
        addr: u64,
        /// Access kind.
        what: String,
        /// Kernel name.
        kernel: String,
        /// PTX line.
        line: u32,
        /// Block index.
        block: [u32; 3],
        /// Thread index.
        thread: [u32; 3],
    },
    /// A misaligned access (`CUDA_ERROR_MISALIGNED_ADDRESS`).
    #[error("misaligned address {addr:#x} in {kernel} at PTX line {line}")]
    Misaligned {
        /// Address.
        addr: u64,
        /// Kernel.
        kernel: String,
        /// Line.
        line: u32,
    },
    /// `trap`/`brkpt` (`CUDA_ERROR_LAUNCH_FAILED`).
    #[error("trap in {kernel} at PTX line {line}")]
    Trap {
        /// Kernel.
        kernel: String,
        /// Line.
        line: u32,
    },
    /// Device-side assert (`CUDA_ERROR_ASSERT`).
    #[error("{0}")]
    Assert(String),
    /// Every warp waits and no barrier can complete.
    #[error("deadlock: barrier can never complete in {kernel} (block {block:?})")]
    Deadlock {
        /// Kernel.
        kernel: String,
        /// Block.
        block: [u32; 3],
    },
    /// Local memory (call stack) exhausted (`CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES` on a GPU).
    #[error("stack overflow in {kernel}")]
    StackOverflow {
        /// Kernel.
        kernel: String,
    },
    /// Something the interpreter cannot do at run time (e.g. divergent indirect call).
    #[error("{0}")]
    Unsupported(String),
}

/// Launch configuration.
pub struct Launch<'a> {
    /// Grid dimensions.
    pub grid: [u32; 3],
    /// Block dimensions.
    pub block: [u32; 3],
    /// Dynamic shared memory bytes.
    pub dyn_smem: u32,
    /// Kernel parameter buffer (laid out as the kernel's `kparams`).
    pub params: &'a [u8],
    /// OS threads to run blocks on.
    pub workers: usize,
}

/// Result of a launch: device printf output (in block order) and the outcome.
pub struct Outcome {
    /// Text the kernel printed.
    pub output: Vec<u8>,
    /// Success or the first fault.
    pub result: Result<(), Fault>,
    /// Thread-instructions executed (for benchmarks).
    pub thread_instructions: u64,
}

const LOCAL_LIMIT: u64 = 1 << 20;
const QUANTUM: u32 = 4096;

fn epoch() -> Instant {
    static E: OnceLock<Instant> = OnceLock::new();
    *E.get_or_init(Instant::now)
}

/// Runs kernel `func` of `prog`.
pub fn launch(prog: &Program, func: usize, l: &Launch, mem: &dyn Memory) -> Outcome {
    let nblocks = l.grid.iter().map(|&g| g as u64).product::<u64>();
    let next = AtomicU64::new(0);
    let abort = AtomicBool::new(false);
    let results: Mutex<Vec<(u64, Vec<u8>)>> = Mutex::new(vec![]);
    let fault: Mutex<Option<(u64, Fault)>> = Mutex::new(None);
    let count = AtomicU64::new(0);
    let workers = l.workers.clamp(1, 64).min(nblocks.max(1) as usize);
    let _ = epoch();
    std::thread::scope(|s| {
        for k in 0..workers {
            let work = || {
                let mut b = BlockRunner::new(prog, func, l, mem);
                loop {
                    if abort.load(Ordering::Relaxed) {
                        break;
                    }
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= nblocks {
                        break;
                    }
                    let ctaid = [
                        (i % l.grid[0] as u64) as u32,
                        ((i / l.grid[0] as u64) % l.grid[1] as u64) as u32,
                        (i / (l.grid[0] as u64 * l.grid[1] as u64)) as u32,
                    ];
                    let r = b.run(ctaid);
                    let out = std::mem::take(&mut b.out);
                    if !out.is_empty() {
                        results
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push((i, out));
                    }
                    if let Err(f) = r {
                        let mut g = fault.lock().unwrap_or_else(|e| e.into_inner());
                        if g.as_ref().is_none_or(|(j, _)| i < *j) {
                            *g = Some((i, f));
                        }
                        abort.store(true, Ordering::Relaxed);
                    }
                }
                count.fetch_add(b.executed, Ordering::Relaxed);
            };
            // The calling thread is one of the workers: small launches start no thread at all.
            if k + 1 == workers {
                work();
            } else {
                s.spawn(work);
            }
        }
    });
    let mut outs = results.into_inner().unwrap_or_else(|e| e.into_inner());
    outs.sort_by_key(|(i, _)| *i);
    let output = outs.into_iter().flat_map(|(_, o)| o).collect();
    let result = match fault.into_inner().unwrap_or_else(|e| e.into_inner()) {
        Some((_, f)) => Err(f),
        None => Ok(()),
    };
    Outcome {
        output,
        result,
        thread_instructions: count.load(Ordering::Relaxed),
    }
}

struct Frame {
    func: u32,
    pcs: [u32; 32],
    uniform: Option<u32>,
    live: u32,
    returned: u32,
    reg_base: usize,
    pred_base: usize,
    local_base: u64,
    /// Caller's call instruction pc and return variables (caller frame offsets).
    call: Option<(u32, Vec<(u64, u32)>)>,
}

struct Warp {
    id: u32,
    valid: u32,
    exited: u32,
    waiting: u32,
    /// Barrier each waiting lane waits at.
    bar_of: [u8; 32],
    /// Lanes waiting at a warp barrier (`bar.warp.sync`) for the other lanes of its mask.
    wsync: u32,
    /// The union of the masks the `wsync` lanes wait for.
    wsync_mask: u32,
    frames: Vec<Frame>,
    regs: Vec<[u64; 32]>,
    preds: Vec<u32>,
    carry: u32,
    local: Vec<Vec<u8>>,
}

/// One of the block's 16 hardware barriers.
#[derive(Debug, Clone, Copy, Default)]
struct Barrier {
    /// Threads that arrived (`bar.arrive`) or wait (`bar.sync`, `bar.red`) in this instance.
    arrived: u32,
    /// The instance's thread count (0: every thread of the block that has not exited).
    expected: u32,
}

struct BlockRunner<'a> {
    prog: &'a Program,
    func: usize,
    l: &'a Launch<'a>,
    mem: &'a dyn Memory,
    shared: Vec<u8>,
    out: Vec<u8>,
    ctaid: [u32; 3],
    nthreads: u32,
    cache: Option<(u64, u64, usize)>,
    executed: u64,
    warps: Vec<Warp>,
    bars: [Barrier; 16],
}

/// How a lane's value is read.
#[inline(always)]
fn lane_iter(mut m: u32) -> impl Iterator<Item = usize> {
    std::iter::from_fn(move || {
        if m == 0 {
            None
        } else {
            let l = m.trailing_zeros() as usize;
            m &= m - 1;
            Some(l)
        }
    })
}

impl<'a> BlockRunner<'a> {
    fn new(prog: &'a Program, func: usize, l: &'a Launch<'a>, mem: &'a dyn Memory) -> Self {
        BlockRunner {
            prog,
            func,
            l,
            mem,
            shared: vec![],
            out: vec![],
            ctaid: [0; 3],
            nthreads: l.block.iter().product(),
            cache: None,
            executed: 0,
            warps: vec![],
            bars: [Barrier::default(); 16],
        }
    }

    fn kname(&self) -> String {
        self.prog.funcs[self.func].name.clone()
    }

    fn run(&mut self, ctaid: [u32; 3]) -> Result<(), Fault> {
        self.ctaid = ctaid;
        let f = &self.prog.funcs[self.func];
        let smem = f.static_smem as usize + self.l.dyn_smem as usize;
        self.shared.clear();
        self.shared.resize(smem, 0);
        self.bars = [Barrier::default(); 16];
        let nwarps = self.nthreads.div_ceil(32);
        // Reuse warp allocations across blocks.
        self.warps.truncate(nwarps as usize);
        for w in 0..nwarps {
            let valid = if (w + 1) * 32 <= self.nthreads {
                u32::MAX
            } else {
                (1u32 << (self.nthreads - w * 32)) - 1
            };
            let frame = Frame {
                func: self.func as u32,
                pcs: [0; 32],
                uniform: Some(0),
                live: valid,
                returned: 0,
                reg_base: 0,
                pred_base: 0,
                local_base: 0,
                call: None,
            };
            if (w as usize) < self.warps.len() {
                let wp = &mut self.warps[w as usize];
                wp.valid = valid;
                wp.exited = 0;
                wp.waiting = 0;
                wp.wsync = 0;
                wp.wsync_mask = 0;
                wp.carry = 0;
                wp.frames.clear();
                wp.frames.push(frame);
                wp.regs.clear();
                wp.regs.resize(f.nregs as usize, [0; 32]);
                wp.preds.clear();
                wp.preds.resize(f.npreds as usize, 0);
                for lm in &mut wp.local {
                    lm.clear();
                    lm.resize(f.local_size as usize, 0);
                }
            } else {
                self.warps.push(Warp {
                    id: w,
                    valid,
                    exited: 0,
                    waiting: 0,
                    bar_of: [0; 32],
                    wsync: 0,
                    wsync_mask: 0,
                    frames: vec![frame],
                    regs: vec![[0; 32]; f.nregs as usize],
                    preds: vec![0; f.npreds as usize],
                    carry: 0,
                    local: (0..32).map(|_| vec![0u8; f.local_size as usize]).collect(),
                });
            }
        }
        let mut warps = std::mem::take(&mut self.warps);
        let r = self.schedule(&mut warps);
        self.warps = warps;
        r
    }

    fn schedule(&mut self, warps: &mut [Warp]) -> Result<(), Fault> {
        loop {
            let mut progress = false;
            let mut all_done = true;
            for w in warps.iter_mut() {
                if w.exited == w.valid {
                    continue;
                }
                all_done = false;
                let mut n = 0;
                while n < QUANTUM {
                    if !self.step(w)? {
                        break;
                    }
                    n += 1;
                }
                if n > 0 {
                    progress = true;
                }
            }
            if all_done {
                return Ok(());
            }
            // A barrier completes when its thread count (by default every thread of the block
            // that has not exited) has arrived at it or waits at it.
            let live: u32 = warps
                .iter()
                .map(|w| (w.valid & !w.exited).count_ones())
                .sum();
            for id in 0..self.bars.len() {
                let b = self.bars[id];
                let expected = if b.expected != 0 { b.expected } else { live };
                if b.arrived > 0 && b.arrived >= expected {
                    self.release(warps, id as u8)?;
                    progress = true;
                }
            }
            if !progress {
                return Err(Fault::Deadlock {
                    kernel: self.kname(),
                    block: self.ctaid,
                });
            }
        }
    }

    /// Releases completed barrier `id`: computes `bar.red` results and moves the lanes waiting
    /// at it on.
    fn release(&mut self, warps: &mut [Warp], id: u8) -> Result<(), Fault> {
        self.bars[id as usize] = Barrier::default();
        let at = |w: &Warp| {
            lane_iter(w.waiting)
                .filter(|&l| w.bar_of[l] == id)
                .fold(0u32, |m, l| m | 1 << l)
        };
        let mut popc = 0u32;
        let mut all = true;
        let mut any = false;
        for w in warps.iter() {
            let lanes = at(w);
            if lanes == 0 {
                continue;
            }
            let f = w.frames.last().expect("frame");
            let pc = f
                .uniform
                .unwrap_or_else(|| f.pcs[lanes.trailing_zeros() as usize]);
            let inst = &self.prog.funcs[f.func as usize].code[pc as usize];
            if let Op::Bar { red: Some(red), .. } = &inst.op {
                let (p, neg) = match red {
                    BarRed::Popc { p, .. } | BarRed::Pred { p, .. } => *p,
                };
                let v = w.preds[f.pred_base + p as usize];
                let v = if neg { !v } else { v } & lanes;
                popc += v.count_ones();
                all &= v == lanes;
                any |= v != 0;
            }
        }
        for w in warps.iter_mut() {
            let lanes = at(w);
            if lanes == 0 {
                continue;
            }
            let fi = w.frames.len() - 1;
            let (func, pred_base, reg_base) = {
                let f = &w.frames[fi];
                (f.func, f.pred_base, f.reg_base)
            };
            let pc = {
                let f = &w.frames[fi];
                f.uniform
                    .unwrap_or_else(|| f.pcs[lanes.trailing_zeros() as usize])
            };
            let inst = &self.prog.funcs[func as usize].code[pc as usize];
            if let Op::Bar { red: Some(red), .. } = &inst.op {
                match red {
                    BarRed::Popc { d, .. } => {
                        for l in lane_iter(lanes) {
                            w.regs[reg_base + *d as usize][l] = popc as u64;
                        }
                    }
                    BarRed::Pred { d, op, .. } => {
                        let v = match op {
                            BoolOp::And => all,
                            _ => any,
                        };
                        let slot = &mut w.preds[pred_base + *d as usize];
                        *slot = if v { *slot | lanes } else { *slot & !lanes };
                    }
                }
            }
            w.waiting &= !lanes;
            advance(&mut w.frames[fi], lanes, pc + 1);
        }
        Ok(())
    }

    #[inline]
    fn val(&self, w: &Warp, rb: usize, s: Src, l: usize) -> u64 {
        match s {
            Src::R(r) => w.regs[rb + r as usize][l],
            Src::I(v) => v,
            Src::Sp(sp) => self.special(w, sp, l),
        }
    }

    fn special(&self, w: &Warp, sp: Special, l: usize) -> u64 {
        let lin = w.id * 32 + l as u32;
        let b = self.l.block;
        match sp {
            Special::Tid(0) => (lin % b[0]) as u64,
            Special::Tid(1) => ((lin / b[0]) % b[1]) as u64,
            Special::Tid(_) => (lin / (b[0] * b[1])) as u64,
            Special::Ntid(c) => b[c as usize] as u64,
            Special::Ctaid(c) => self.ctaid[c as usize] as u64,
            Special::Nctaid(c) => self.l.grid[c as usize] as u64,
            Special::LaneId => l as u64,
            Special::WarpId => w.id as u64,
            Special::NWarpId => 32,
            Special::SmId => 0,
            Special::NSmId => 40,
            Special::GridId => 1,
            Special::Clock => (epoch().elapsed().as_nanos() as u64) & 0xffff_ffff,
            Special::Clock64 | Special::GlobalTimer => epoch().elapsed().as_nanos() as u64,
            Special::LanemaskEq => 1u64 << l,
            Special::LanemaskLt => (1u64 << l) - 1,
            Special::LanemaskLe => (1u64 << (l + 1)) - 1,
            Special::LanemaskGt => !((1u64 << (l + 1)) - 1) & 0xffff_ffff,
            Special::LanemaskGe => !((1u64 << l) - 1) & 0xffff_ffff,
            Special::DynSmem => self.l.dyn_smem as u64,
            Special::TotalSmem => self.shared.len() as u64,
            Special::Zero => 0,
        }
    }

    fn addr(&self, w: &Warp, rb: usize, a: &Addr, l: usize) -> u64 {
        let base = match a.base {
            Base::Reg(r) => w.regs[rb + r as usize][l],
            Base::Abs(v) => v,
            Base::Frame(o) => w.frames.last().expect("frame").local_base + o,
        };
        base.wrapping_add(a.off as u64)
    }

    fn illegal(&self, w: &Warp, l: usize, addr: u64, what: &str, line: u32) -> Fault {
        let lin = w.id * 32 + l as u32;
        let b = self.l.block;
        Fault::IllegalAddress {
            addr,
            what: what.into(),
            kernel: self.kname(),
            line,
            block: self.ctaid,
            thread: [lin % b[0], (lin / b[0]) % b[1], lin / (b[0] * b[1])],
        }
    }

    /// Resolves an access of `len` bytes to a host pointer and whether it is device (shared
    /// between OS threads) memory.
    #[allow(clippy::too_many_arguments)]
    fn resolve(
        &mut self,
        w: &mut Warp,
        space: MemSpace,
        addr: u64,
        len: usize,
        l: usize,
        line: u32,
        write: bool,
    ) -> Result<(*mut u8, bool), Fault> {
        let (space, addr) = match space {
            MemSpace::Generic => {
                if (SHARED_WINDOW..SHARED_WINDOW + WINDOW_SIZE).contains(&addr) {
                    (MemSpace::Shared, addr - SHARED_WINDOW)
                } else if (LOCAL_WINDOW..LOCAL_WINDOW + WINDOW_SIZE).contains(&addr) {
                    (MemSpace::Local, addr - LOCAL_WINDOW)
                } else {
                    (MemSpace::Global, addr)
                }
            }
            s => (s, addr),
        };
        if len > 1 && addr % (len.min(16) as u64) != 0 {
            return Err(Fault::Misaligned {
                addr,
                kernel: self.kname(),
                line,
            });
        }
        match space {
            MemSpace::Global => {
                if let Some((b, n, p)) = self.cache {
                    if addr >= b && addr.wrapping_sub(b).saturating_add(len as u64) <= n {
                        return Ok(((p + (addr - b) as usize) as *mut u8, true));
                    }
                }
                match self.mem.region(addr) {
                    Some((b, n, p)) if addr - b + len as u64 <= n => {
                        self.cache = Some((b, n, p as usize));
                        // SAFETY: addr - b + len <= n, inside the allocation the memory reported.
                        Ok((unsafe { p.add((addr - b) as usize) }, true))
                    }
                    _ => Err(self.illegal(w, l, addr, "global", line)),
                }
            }
            MemSpace::Shared => {
                if addr.saturating_add(len as u64) > self.shared.len() as u64 {
                    return Err(self.illegal(w, l, addr, "shared", line));
                }
                // SAFETY: bounds checked against the block's shared buffer.
                Ok((
                    unsafe { self.shared.as_mut_ptr().add(addr as usize) },
                    false,
                ))
            }
            MemSpace::Local => {
                if addr.saturating_add(len as u64) > w.local[l].len() as u64 {
                    return Err(self.illegal(w, l, addr, "local", line));
                }
                // SAFETY: bounds checked against the lane's local memory.
                Ok((unsafe { w.local[l].as_mut_ptr().add(addr as usize) }, false))
            }
            MemSpace::KParam => {
                if write || addr.saturating_add(len as u64) > self.l.params.len() as u64 {
                    return Err(self.illegal(w, l, addr, "param", line));
                }
                Ok((
                    (self.l.params.as_ptr() as usize + addr as usize) as *mut u8,
                    false,
                ))
            }
            MemSpace::Generic => unreachable!("resolved above"),
        }
    }

    fn step(&mut self, w: &mut Warp) -> Result<bool, Fault> {
        let fi = w.frames.len() - 1;
        let avail = w.frames[fi].live & !w.waiting & !w.exited & !w.wsync;
        if avail == 0 {
            return Ok(false);
        }
        let (pc, active) = {
            let f = &w.frames[fi];
            match f.uniform {
                Some(pc) => (pc, avail),
                None => {
                    let mut min = u32::MAX;
                    for l in lane_iter(avail) {
                        min = min.min(f.pcs[l]);
                    }
                    let mut m = 0;
                    for l in lane_iter(avail) {
                        if f.pcs[l] == min {
                            m |= 1 << l;
                        }
                    }
                    (min, m)
                }
            }
        };
        let func = &self.prog.funcs[w.frames[fi].func as usize];
        let Some(inst) = func.code.get(pc as usize) else {
            return Err(Fault::Unsupported(format!(
                "{}: program counter out of range",
                func.name
            )));
        };
        let rb = w.frames[fi].reg_base;
        let pb = w.frames[fi].pred_base;
        let eff = match inst.guard {
            None => active,
            Some((p, neg)) => {
                let v = w.preds[pb + p as usize];
                (if neg { !v } else { v }) & active
            }
        };
        self.executed += eff.count_ones() as u64;
        let line = inst.line;
        let next = pc + 1;
        match &inst.op {
            Op::Nop | Op::Sleep => {}
            Op::WarpSync { mask } => {
                if eff != 0 {
                    let m = self.val(w, rb, *mask, eff.trailing_zeros() as usize) as u32;
                    // The lanes it waits for: named, present, not exited, and in this call frame
                    // (lanes elsewhere in the call stack cannot reach it while this frame runs).
                    let need = m & w.valid & !w.exited & w.frames[fi].live;
                    if need & !(eff | w.wsync) != 0 {
                        // Divergent lanes synchronise at different warp barriers: wait for the
                        // rest, which run on (lowest PC first) until they reach one.
                        w.wsync |= eff;
                        w.wsync_mask |= m;
                        let rest = active & !eff;
                        let f = &mut w.frames[fi];
                        if rest != 0 {
                            advance(f, rest, next);
                        }
                        return Ok(true);
                    }
                    // Complete: the waiting lanes move past their own warp barriers.
                    release_warp_sync(w, true);
                }
            }
            Op::Mov { d, a, mask } => {
                for l in lane_iter(eff) {
                    let v = self.val(w, rb, *a, l) & mask;
                    w.regs[rb + *d as usize][l] = v;
                }
            }
            Op::MovFrame { d, off } => {
                let v = w.frames[fi].local_base + off;
                for l in lane_iter(eff) {
                    w.regs[rb + *d as usize][l] = v;
                }
            }
            Op::Un { d, a, f } => {
                for l in lane_iter(eff) {
                    let v = f(self.val(w, rb, *a, l));
                    w.regs[rb + *d as usize][l] = v;
                }
            }
            Op::Bin { d, a, b, f } => {
                if eff == u32::MAX {
                    if let (Src::R(ra), Src::R(rbb)) = (a, b) {
                        let (x, y) = (w.regs[rb + *ra as usize], w.regs[rb + *rbb as usize]);
                        let dst = &mut w.regs[rb + *d as usize];
                        for l in 0..32 {
                            dst[l] = f(x[l], y[l]);
                        }
                        w.frames[fi].uniform = Some(next);
                        return Ok(true);
                    }
                }
                for l in lane_iter(eff) {
                    let v = f(self.val(w, rb, *a, l), self.val(w, rb, *b, l));
                    w.regs[rb + *d as usize][l] = v;
                }
            }
            Op::Tern { d, a, b, c, f } => {
                if eff == u32::MAX {
                    if let (Src::R(ra), Src::R(rbb)) = (a, b) {
                        let (x, y) = (w.regs[rb + *ra as usize], w.regs[rb + *rbb as usize]);
                        let z: [u64; 32] = match c {
                            Src::R(rc) => w.regs[rb + *rc as usize],
                            Src::I(v) => [*v; 32],
                            Src::Sp(_) => std::array::from_fn(|l| self.val(w, rb, *c, l)),
                        };
                        let dst = &mut w.regs[rb + *d as usize];
                        for l in 0..32 {
                            dst[l] = f(x[l], y[l], z[l]);
                        }
                        w.frames[fi].uniform = Some(next);
                        return Ok(true);
                    }
                }
                for l in lane_iter(eff) {
                    let v = f(
                        self.val(w, rb, *a, l),
                        self.val(w, rb, *b, l),
                        self.val(w, rb, *c, l),
                    );
                    w.regs[rb + *d as usize][l] = v;
                }
            }
            Op::Carry {
                d,
                a,
                b,
                bits,
                sub,
                cin,
                cout,
            } => {
                let mask = if *bits == 64 {
                    u64::MAX
                } else {
                    (1u64 << bits) - 1
                };
                for l in lane_iter(eff) {
                    let x = self.val(w, rb, *a, l) as u128 & mask as u128;
                    let y = self.val(w, rb, *b, l) as u128 & mask as u128;
                    let c = if *cin {
                        ((w.carry >> l) & 1) as u128
                    } else {
                        0
                    };
                    let (v, carry) = if *sub {
                        // PTX: sub.cc sets CC.CF to the borrow-out.
                        let r = x.wrapping_sub(y).wrapping_sub(c);
                        (r as u64 & mask, x < y + c)
                    } else {
                        let r = x + y + c;
                        (r as u64 & mask, r > mask as u128)
                    };
                    w.regs[rb + *d as usize][l] = v;
                    if *cout {
                        if carry {
                            w.carry |= 1 << l;
                        } else {
                            w.carry &= !(1 << l);
                        }
                    }
                }
            }
            Op::MadCarry {
                d,
                a,
                b,
                c,
                hi,
                bits,
                cin,
                cout,
            } => {
                let mask = if *bits == 64 {
                    u64::MAX
                } else {
                    (1u64 << bits) - 1
                };
                for l in lane_iter(eff) {
                    let x = self.val(w, rb, *a, l) & mask;
                    let y = self.val(w, rb, *b, l) & mask;
                    let p = x as u128 * y as u128;
                    let part = if *hi { (p >> bits) as u64 } else { p as u64 } & mask;
                    let cc = if *cin {
                        ((w.carry >> l) & 1) as u128
                    } else {
                        0
                    };
                    let r = part as u128 + (self.val(w, rb, *c, l) & mask) as u128 + cc;
                    w.regs[rb + *d as usize][l] = r as u64 & mask;
                    if *cout {
                        if r > mask as u128 {
                            w.carry |= 1 << l;
                        } else {
                            w.carry &= !(1 << l);
                        }
                    }
                }
            }
            Op::Cvt {
                d,
                a,
                dst,
                src,
                rnd,
                ftz,
                sat,
            } => {
                for l in lane_iter(eff) {
                    let v = alu::cvt(self.val(w, rb, *a, l), *dst, *src, *rnd, *ftz, *sat);
                    w.regs[rb + *d as usize][l] = v;
                }
            }
            Op::Setp {
                p,
                q,
                a,
                b,
                cmp,
                ty,
                comb,
            } => {
                let mut m = 0u32;
                for l in lane_iter(eff) {
                    if alu::compare(*cmp, *ty, self.val(w, rb, *a, l), self.val(w, rb, *b, l)) {
                        m |= 1 << l;
                    }
                }
                let (pv, qv) = match comb {
                    None => (m, !m),
                    Some((op, c, neg)) => {
                        let cv = w.preds[pb + *c as usize];
                        let cv = if *neg { !cv } else { cv };
                        let f = |x: u32| match op {
                            BoolOp::And => x & cv,
                            BoolOp::Or => x | cv,
                            BoolOp::Xor => x ^ cv,
                        };
                        (f(m), f(!m))
                    }
                };
                let s = &mut w.preds[pb + *p as usize];
                *s = (*s & !eff) | (pv & eff);
                if let Some(q) = q {
                    let s = &mut w.preds[pb + *q as usize];
                    *s = (*s & !eff) | (qv & eff);
                }
            }
            Op::Set {
                d,
                a,
                b,
                cmp,
                ty,
                dty,
            } => {
                for l in lane_iter(eff) {
                    let t = alu::compare(*cmp, *ty, self.val(w, rb, *a, l), self.val(w, rb, *b, l));
                    let v = match (t, dty) {
                        (false, _) => 0,
                        (true, crate::ast::Type::F32) => 1.0f32.to_bits() as u64,
                        (true, _) => 0xffff_ffff,
                    };
                    w.regs[rb + *d as usize][l] = v;
                }
            }
            Op::Selp { d, a, b, p, neg } => {
                let pv = w.preds[pb + *p as usize];
                let pv = if *neg { !pv } else { pv };
                for l in lane_iter(eff) {
                    let v = if pv >> l & 1 != 0 {
                        self.val(w, rb, *a, l)
                    } else {
                        self.val(w, rb, *b, l)
                    };
                    w.regs[rb + *d as usize][l] = v;
                }
            }
            Op::Slct { d, a, b, c, float } => {
                for l in lane_iter(eff) {
                    let cv = self.val(w, rb, *c, l);
                    let ge = if *float {
                        f32::from_bits(cv as u32) >= 0.0
                    } else {
                        cv as u32 as i32 >= 0
                    };
                    let v = if ge {
                        self.val(w, rb, *a, l)
                    } else {
                        self.val(w, rb, *b, l)
                    };
                    w.regs[rb + *d as usize][l] = v;
                }
            }
            Op::PredOp { d, a, b, op } => {
                let av = w.preds[pb + a.0 as usize];
                let av = if a.1 { !av } else { av };
                let v = match b {
                    None => av,
                    Some((bp, bn)) => {
                        let bv = w.preds[pb + *bp as usize];
                        let bv = if *bn { !bv } else { bv };
                        match op {
                            BoolOp::And => av & bv,
                            BoolOp::Or => av | bv,
                            BoolOp::Xor => av ^ bv,
                        }
                    }
                };
                let s = &mut w.preds[pb + *d as usize];
                *s = (*s & !eff) | (v & eff);
            }
            Op::PredSet { d, v } => {
                let s = &mut w.preds[pb + *d as usize];
                *s = if *v { *s | eff } else { *s & !eff };
            }
            Op::Pack { d, parts, bits } => {
                let mask = if *bits == 64 {
                    u64::MAX
                } else {
                    (1u64 << bits) - 1
                };
                for l in lane_iter(eff) {
                    let mut v = 0u64;
                    for (k, p) in parts.iter().enumerate() {
                        v |= (self.val(w, rb, *p, l) & mask) << (k as u32 * bits);
                    }
                    w.regs[rb + *d as usize][l] = v;
                }
            }
            Op::Unpack { ds, a, bits } => {
                let mask = if *bits == 64 {
                    u64::MAX
                } else {
                    (1u64 << bits) - 1
                };
                for l in lane_iter(eff) {
                    let v = self.val(w, rb, *a, l);
                    for (k, d) in ds.iter().enumerate() {
                        if let Some(d) = d {
                            w.regs[rb + *d as usize][l] = (v >> (k as u32 * bits)) & mask;
                        }
                    }
                }
            }
            Op::Ld {
                space,
                addr,
                size,
                sext_to,
                ds,
            } => {
                let sz = *size as usize;
                for l in lane_iter(eff) {
                    let base = self.addr(w, rb, addr, l);
                    for (k, d) in ds.iter().enumerate() {
                        let a = base.wrapping_add((k * sz) as u64);
                        let (p, dev) = self.resolve(w, *space, a, sz, l, line, false)?;
                        let mut v = load(p, sz, dev);
                        if *sext_to != 0 && sz < 8 {
                            let sh = 64 - sz as u32 * 8;
                            v = (((v << sh) as i64) >> sh) as u64;
                            if *sext_to < 64 {
                                v &= (1u64 << sext_to) - 1;
                            }
                        }
                        w.regs[rb + *d as usize][l] = v;
                    }
                }
            }
            Op::St {
                space,
                addr,
                size,
                srcs,
            } => {
                let sz = *size as usize;
                for l in lane_iter(eff) {
                    let base = self.addr(w, rb, addr, l);
                    for (k, s) in srcs.iter().enumerate() {
                        let a = base.wrapping_add((k * sz) as u64);
                        let v = self.val(w, rb, *s, l);
                        let (p, dev) = self.resolve(w, *space, a, sz, l, line, true)?;
                        store(p, sz, dev, v);
                    }
                }
            }
            Op::Atom {
                space,
                addr,
                op,
                ty,
                d,
                b,
                c,
            } => {
                let sz = ty.size() as usize;
                for l in lane_iter(eff) {
                    let a = self.addr(w, rb, addr, l);
                    let bv = self.val(w, rb, *b, l);
                    let cv = c.map(|c| self.val(w, rb, c, l)).unwrap_or(0);
                    let (p, _) = self.resolve(w, *space, a, sz, l, line, true)?;
                    let old = atomic(p, sz, *op, *ty, bv, cv);
                    if let Some(d) = d {
                        w.regs[rb + *d as usize][l] = old;
                    }
                }
            }
            Op::Cvta {
                d,
                a,
                space,
                to_generic,
            } => {
                for l in lane_iter(eff) {
                    let v = self.val(w, rb, *a, l);
                    let r = match (space, to_generic) {
                        (MemSpace::Shared, true) => SHARED_WINDOW + (v & 0xffff_ffff),
                        (MemSpace::Local, true) => LOCAL_WINDOW + (v & 0xffff_ffff),
                        (MemSpace::Shared, false) => v.wrapping_sub(SHARED_WINDOW),
                        (MemSpace::Local, false) => v.wrapping_sub(LOCAL_WINDOW),
                        _ => v,
                    };
                    w.regs[rb + *d as usize][l] = r;
                }
            }
            Op::Isspacep { p, a, space } => {
                let mut m = 0;
                for l in lane_iter(eff) {
                    let v = self.val(w, rb, *a, l);
                    let sh = (SHARED_WINDOW..SHARED_WINDOW + WINDOW_SIZE).contains(&v);
                    let lo = (LOCAL_WINDOW..LOCAL_WINDOW + WINDOW_SIZE).contains(&v);
                    let t = match space {
                        MemSpace::Shared => sh,
                        MemSpace::Local => lo,
                        _ => !sh && !lo,
                    };
                    if t {
                        m |= 1 << l;
                    }
                }
                let s = &mut w.preds[pb + *p as usize];
                *s = (*s & !eff) | (m & eff);
            }
            Op::Bra { target } => {
                let f = &mut w.frames[fi];
                if eff == active {
                    jump(f, active, *target);
                } else {
                    if eff != 0 {
                        jump(f, eff, *target);
                    }
                    advance(f, active & !eff, next);
                }
                return Ok(true);
            }
            Op::Exit => {
                w.exited |= eff;
                for f in &mut w.frames {
                    f.live &= !eff;
                }
                // Lanes that did not exit stay in this frame, so it cannot be popped below.
                if active & !eff != 0 {
                    advance(&mut w.frames[fi], active & !eff, next);
                }
                self.pop_finished(w);
                release_warp_sync(w, false);
                return Ok(true);
            }
            Op::Ret => {
                if fi == 0 {
                    // Returning from the kernel ends the thread.
                    w.exited |= eff;
                    w.frames[0].live &= !eff;
                } else {
                    let f = &mut w.frames[fi];
                    f.live &= !eff;
                    f.returned |= eff;
                }
                let rest = active & !eff;
                if rest != 0 {
                    advance(&mut w.frames[fi], rest, next);
                }
                self.pop_finished(w);
                release_warp_sync(w, false);
                return Ok(true);
            }
            Op::Call { target, args, rets } => {
                if eff == 0 {
                    advance(&mut w.frames[fi], active, next);
                    return Ok(true);
                }
                // `calling`: the lanes that enter the callee now. An indirect call whose lanes hold
                // different targets calls one target at a time: the other lanes stay at the call
                // and make it again once this callee has returned.
                let (callee, calling) = match target {
                    CallTarget::Direct(i) => (*i, eff),
                    CallTarget::Indirect(r) => {
                        let first = eff.trailing_zeros() as usize;
                        let v = w.regs[rb + *r as usize][first];
                        let calling = lane_iter(eff)
                            .filter(|&l| w.regs[rb + *r as usize][l] == v)
                            .fold(0u32, |m, l| m | 1 << l);
                        if v < FUNC_WINDOW || v - FUNC_WINDOW >= self.prog.funcs.len() as u64 {
                            return Err(self.illegal(
                                w,
                                eff.trailing_zeros() as usize,
                                v,
                                "indirect call target",
                                line,
                            ));
                        }
                        ((v - FUNC_WINDOW) as u32, calling)
                    }
                };
                let cf = &self.prog.funcs[callee as usize];
                if cf.is_entry || cf.params.len() != args.len() {
                    return Err(Fault::Unsupported(format!(
                        "call to {} with {} arguments at PTX line {line}",
                        cf.name,
                        args.len()
                    )));
                }
                let caller_base = w.frames[fi].local_base;
                let new_base = (caller_base + func.local_size).div_ceil(16) * 16;
                let need = new_base + cf.local_size;
                if need > LOCAL_LIMIT {
                    return Err(Fault::StackOverflow {
                        kernel: self.kname(),
                    });
                }
                for l in lane_iter(calling) {
                    let lm = &mut w.local[l];
                    if (lm.len() as u64) < need {
                        lm.resize(need as usize, 0);
                    }
                    for ((coff, csize), (poff, psize)) in args.iter().zip(&cf.params) {
                        let n = (*csize).min(*psize) as usize;
                        let (s, d) = ((caller_base + coff) as usize, (new_base + poff) as usize);
                        lm.copy_within(s..s + n, d);
                    }
                }
                let rest = active & !eff;
                if rest != 0 {
                    advance(&mut w.frames[fi], rest, next);
                }
                // The calling lanes stay at the call until the callee returns.
                let reg_base = w.regs.len();
                let pred_base = w.preds.len();
                w.regs.resize(reg_base + cf.nregs as usize, [0; 32]);
                w.preds.resize(pred_base + cf.npreds as usize, 0);
                w.frames.push(Frame {
                    func: callee,
                    pcs: [0; 32],
                    uniform: Some(0),
                    live: calling,
                    returned: 0,
                    reg_base,
                    pred_base,
                    local_base: new_base,
                    call: Some((pc, rets.clone())),
                });
                let caller = &mut w.frames[fi];
                if caller.uniform.is_some() && rest != 0 {
                    materialize(caller);
                }
                return Ok(true);
            }
            Op::Bar {
                id, count, arrive, ..
            } => {
                if eff != 0 {
                    // Barrier ids are 0..15; the thread count (if any) is the same for the
                    // instance's every thread.
                    let first = eff.trailing_zeros() as usize;
                    let bid = (self.val(w, rb, *id, first) & 15) as usize;
                    let expected = count.map(|c| self.val(w, rb, c, first) as u32);
                    let b = &mut self.bars[bid];
                    b.arrived += eff.count_ones();
                    if let Some(e) = expected {
                        b.expected = e;
                    }
                    if !*arrive {
                        for l in lane_iter(eff) {
                            w.bar_of[l] = bid as u8;
                        }
                    }
                }
                if *arrive {
                    // bar.arrive does not wait.
                } else {
                    w.waiting |= eff;
                    let rest = active & !eff;
                    if rest != 0 {
                        advance(&mut w.frames[fi], rest, next);
                    }
                    if eff != 0 && w.frames[fi].uniform.is_some() && rest != 0 {
                        materialize(&mut w.frames[fi]);
                    }
                    return Ok(true);
                }
            }
            Op::Shfl {
                d,
                p,
                a,
                b,
                c,
                mode,
            } => {
                let mut av = [0u64; 32];
                for (l, v) in av.iter_mut().enumerate() {
                    *v = self.val(w, rb, *a, l);
                }
                let mut pm = 0u32;
                for l in lane_iter(eff) {
                    let bv = self.val(w, rb, *b, l) as u32;
                    let cv = self.val(w, rb, *c, l) as u32;
                    let m = match mode {
                        Shfl::Up => alu::ShflMode::Up,
                        Shfl::Down => alu::ShflMode::Down,
                        Shfl::Bfly => alu::ShflMode::Bfly,
                        Shfl::Idx => alu::ShflMode::Idx,
                    };
                    let (j, ok) = alu::shfl_source(m, l as u32, bv, cv);
                    let src = if ok { j as usize & 31 } else { l };
                    // A lane that is not taking part (inactive or exited) yields 0, as GPUs do in
                    // practice (PTX leaves the value undefined).
                    w.regs[rb + *d as usize][l] = if active >> src & 1 != 0 { av[src] } else { 0 };
                    if ok {
                        pm |= 1 << l;
                    }
                }
                if let Some(p) = p {
                    let s = &mut w.preds[pb + *p as usize];
                    *s = (*s & !eff) | (pm & eff);
                }
            }
            Op::Vote { mode, d, p, a } => {
                let pv = w.preds[pb + a.0 as usize];
                let pv = (if a.1 { !pv } else { pv }) & eff;
                match mode {
                    Vote::Ballot => {
                        if let Some(d) = d {
                            for l in lane_iter(eff) {
                                w.regs[rb + *d as usize][l] = pv as u64;
                            }
                        }
                    }
                    _ => {
                        let r = match mode {
                            Vote::All => pv == eff,
                            Vote::Any => pv != 0,
                            _ => pv == eff || pv == 0,
                        };
                        if let Some(p) = p {
                            let s = &mut w.preds[pb + *p as usize];
                            *s = if r { *s | eff } else { *s & !eff };
                        }
                    }
                }
            }
            Op::Activemask { d } => {
                for l in lane_iter(eff) {
                    w.regs[rb + *d as usize][l] = active as u64;
                }
            }
            Op::Match { d, p, a, all, bits } => {
                let mask = if *bits == 64 { u64::MAX } else { 0xffff_ffff };
                let mut vals = [0u64; 32];
                for l in lane_iter(eff) {
                    vals[l] = self.val(w, rb, *a, l) & mask;
                }
                let first = vals[eff.trailing_zeros().min(31) as usize];
                let same = lane_iter(eff).all(|l| vals[l] == first);
                for l in lane_iter(eff) {
                    let m = if *all {
                        if same {
                            eff
                        } else {
                            0
                        }
                    } else {
                        lane_iter(eff)
                            .filter(|&j| vals[j] == vals[l])
                            .fold(0u32, |m, j| m | 1 << j)
                    };
                    w.regs[rb + *d as usize][l] = m as u64;
                }
                if let Some(p) = p {
                    let s = &mut w.preds[pb + *p as usize];
                    *s = if same { *s | eff } else { *s & !eff };
                }
            }
            Op::Trap => {
                if eff != 0 {
                    return Err(Fault::Trap {
                        kernel: self.kname(),
                        line,
                    });
                }
            }
            Op::Vprintf { fmt, args, ret } => {
                let base = w.frames[fi].local_base;
                for l in lane_iter(eff) {
                    let f = read_local_u64(w, l, base + fmt.0);
                    let ap = read_local_u64(w, l, base + args.0);
                    let text = self.format(w, l, f, ap, line)?;
                    self.out.extend_from_slice(&text);
                    if let Some((roff, rsize)) = ret {
                        let n = (text.len() as u32).to_le_bytes();
                        let lm = &mut w.local[l];
                        let s = (base + roff) as usize;
                        let k = (*rsize as usize).min(4);
                        if s + k <= lm.len() {
                            lm[s..s + k].copy_from_slice(&n[..k]);
                        }
                    }
                }
            }
            Op::AssertFail { args } => {
                if eff != 0 {
                    let l = eff.trailing_zeros() as usize;
                    let base = w.frames[fi].local_base;
                    let get = |w: &Warp, i: usize| {
                        args.get(i)
                            .map(|(o, _)| read_local_u64(w, l, base + o))
                            .unwrap_or(0)
                    };
                    let (msg, file, ln, fun) = (get(w, 0), get(w, 1), get(w, 2) as u32, get(w, 3));
                    let msg = self.c_string(w, l, msg, line)?;
                    let file = self.c_string(w, l, file, line)?;
                    let fun = self.c_string(w, l, fun, line)?;
                    let lin = w.id * 32 + l as u32;
                    let b = self.l.block;
                    let text = format!(
                        "{}:{}: {}: block: [{},{},{}], thread: [{},{},{}] Assertion `{}` failed.\n",
                        String::from_utf8_lossy(&file),
                        ln,
                        String::from_utf8_lossy(&fun),
                        self.ctaid[0],
                        self.ctaid[1],
                        self.ctaid[2],
                        lin % b[0],
                        (lin / b[0]) % b[1],
                        lin / (b[0] * b[1]),
                        String::from_utf8_lossy(&msg)
                    );
                    self.out.extend_from_slice(text.as_bytes());
                    return Err(Fault::Assert(text.trim_end().to_string()));
                }
            }
        }
        advance(&mut w.frames[fi], active, next);
        Ok(true)
    }

    /// Pops frames whose lanes have all returned or exited, copying return values.
    fn pop_finished(&mut self, w: &mut Warp) {
        while w.frames.len() > 1 && w.frames.last().is_some_and(|f| f.live == 0) {
            let f = w.frames.pop().expect("checked");
            let callee = &self.prog.funcs[f.func as usize];
            let caller = w.frames.last_mut().expect("caller");
            if let Some((call_pc, rets)) = &f.call {
                for l in lane_iter(f.returned) {
                    let lm = &mut w.local[l];
                    for ((coff, csize), (roff, rsize)) in rets.iter().zip(&callee.rets) {
                        let n = (*csize).min(*rsize) as usize;
                        let (s, d) = (
                            (f.local_base + roff) as usize,
                            (caller.local_base + coff) as usize,
                        );
                        if s + n <= lm.len() && d + n <= lm.len() {
                            lm.copy_within(s..s + n, d);
                        }
                    }
                }
                if f.returned != 0 {
                    advance(caller, f.returned, call_pc + 1);
                }
            }
            w.regs.truncate(f.reg_base);
            w.preds.truncate(f.pred_base);
        }
    }

    fn read_bytes(
        &mut self,
        w: &mut Warp,
        l: usize,
        addr: u64,
        n: usize,
        line: u32,
    ) -> Result<Vec<u8>, Fault> {
        let mut v = Vec::with_capacity(n);
        for i in 0..n as u64 {
            let (p, dev) = self.resolve(w, MemSpace::Generic, addr + i, 1, l, line, false)?;
            v.push(load(p, 1, dev) as u8);
        }
        Ok(v)
    }

    fn c_string(&self, w: &Warp, l: usize, addr: u64, line: u32) -> Result<Vec<u8>, Fault> {
        // Strings live in global memory (format strings, assert messages) or local memory.
        let mut v = vec![];
        for i in 0..65536u64 {
            let a = addr + i;
            let byte = if (LOCAL_WINDOW..LOCAL_WINDOW + WINDOW_SIZE).contains(&a) {
                let off = (a - LOCAL_WINDOW) as usize;
                *w.local[l]
                    .get(off)
                    .ok_or_else(|| self.illegal(w, l, a, "string", line))?
            } else if (SHARED_WINDOW..SHARED_WINDOW + WINDOW_SIZE).contains(&a) {
                *self
                    .shared
                    .get((a - SHARED_WINDOW) as usize)
                    .ok_or_else(|| self.illegal(w, l, a, "string", line))?
            } else {
                match self.mem.region(a) {
                    // SAFETY: a lies inside the allocation the memory reported.
                    Some((b, n, p)) if a - b < n => unsafe { *p.add((a - b) as usize) },
                    _ => return Err(self.illegal(w, l, a, "string", line)),
                }
            };
            if byte == 0 {
                break;
            }
            v.push(byte);
        }
        Ok(v)
    }

    /// Formats one device printf call (C format semantics, arguments packed as nvcc lays them out).
    fn format(
        &mut self,
        w: &mut Warp,
        l: usize,
        fmt: u64,
        args: u64,
        line: u32,
    ) -> Result<Vec<u8>, Fault> {
        let f = self.c_string(w, l, fmt, line)?;
        let mut out = Vec::new();
        let mut off = 0u64;
        let mut i = 0;
        while i < f.len() {
            if f[i] != b'%' {
                out.push(f[i]);
                i += 1;
                continue;
            }
            if f.get(i + 1) == Some(&b'%') {
                out.push(b'%');
                i += 2;
                continue;
            }
            let start = i;
            i += 1;
            while i < f.len() && b"-+ #0123456789.".contains(&f[i]) {
                i += 1;
            }
            let mut long = false;
            let mut short = 0u8;
            while i < f.len() && b"hlLzjt".contains(&f[i]) {
                if matches!(f[i], b'l' | b'L' | b'z' | b'j' | b't') {
                    long = true;
                } else if f[i] == b'h' {
                    short += 1;
                }
                i += 1;
            }
            let Some(&conv) = f.get(i) else { break };
            i += 1;
            let spec: String = String::from_utf8_lossy(&f[start..i]).into();
            let mut arg = |size: u64, w: &mut Warp, this: &mut Self| -> Result<u64, Fault> {
                off = off.div_ceil(size) * size;
                let b = this.read_bytes(w, l, args + off, size as usize, line)?;
                off += size;
                let mut x = [0u8; 8];
                x[..size as usize].copy_from_slice(&b);
                Ok(u64::from_le_bytes(x))
            };
            let piece = match conv {
                b'd' | b'i' | b'u' | b'x' | b'X' | b'o' | b'c' => {
                    let v = if long {
                        arg(8, w, self)?
                    } else {
                        arg(4, w, self)?
                    };
                    c_format_int(&spec, conv, v, long, short)
                }
                b'f' | b'F' | b'e' | b'E' | b'g' | b'G' | b'a' | b'A' => {
                    c_format_float(&spec, f64::from_bits(arg(8, w, self)?))
                }
                b'p' => format!("0x{:x}", arg(8, w, self)?),
                b's' => {
                    let p = arg(8, w, self)?;
                    let s = if p == 0 {
                        b"(null)".to_vec()
                    } else {
                        self.c_string(w, l, p, line)?
                    };
                    c_format_str(&spec, &s)
                }
                _ => spec.clone(),
            };
            out.extend_from_slice(piece.as_bytes());
        }
        Ok(out)
    }
}

fn read_local_u64(w: &Warp, l: usize, off: u64) -> u64 {
    let lm = &w.local[l];
    let o = off as usize;
    if o + 8 <= lm.len() {
        u64::from_le_bytes(lm[o..o + 8].try_into().expect("8 bytes"))
    } else {
        0
    }
}

/// Formats one integer conversion; `long` for `l`/`ll`/`z`/`j`/`t` arguments (8 bytes), `short`
/// the number of `h` modifiers (`%hd` and `%hhd` convert the int argument to short or char, as C
/// does).
fn c_format_int(spec: &str, conv: u8, v: u64, long: bool, short: u8) -> String {
    // Strip length modifiers and format through the C library for exact semantics.
    let body: String = spec.chars().filter(|c| !"hlLzjt".contains(*c)).collect();
    let body = &body[..body.len() - 1];
    let fmtstr = format!("{body}ll{}", conv as char);
    let signed = conv == b'd' || conv == b'i';
    let v = match (long, short, signed) {
        (true, _, _) => v,
        (_, 0, true) => v as u32 as i32 as i64 as u64,
        (_, 0, false) => v as u32 as u64,
        (_, 1, true) => v as u16 as i16 as i64 as u64,
        (_, 1, false) => v as u16 as u64,
        (_, _, true) => v as u8 as i8 as i64 as u64,
        (_, _, false) => v as u8 as u64,
    };
    if conv == b'c' {
        return snprintf_i(&format!("{body}c"), v as i64);
    }
    snprintf_i(&fmtstr, v as i64)
}

fn snprintf_i(fmt: &str, v: i64) -> String {
    let Ok(c) = std::ffi::CString::new(fmt) else {
        return String::new();
    };
    let mut buf = vec![0u8; 512];
    // SAFETY: the format has exactly one integer conversion taking a long long (or int for %c,
    // which a long long argument satisfies on x86-64's register ABI); the buffer size is passed.
    let n = unsafe {
        libc::snprintf(
            buf.as_mut_ptr() as *mut libc::c_char,
            buf.len(),
            c.as_ptr(),
            v,
        )
    };
    buf.truncate((n.max(0) as usize).min(511));
    String::from_utf8_lossy(&buf).into()
}

fn c_format_float(spec: &str, v: f64) -> String {
    let body: String = spec.chars().filter(|c| !"hlLzjt".contains(*c)).collect();
    let Ok(c) = std::ffi::CString::new(body) else {
        return String::new();
    };
    let mut buf = vec![0u8; 512];
    // SAFETY: exactly one floating conversion taking a double; the buffer size is passed.
    let n = unsafe {
        libc::snprintf(
            buf.as_mut_ptr() as *mut libc::c_char,
            buf.len(),
            c.as_ptr(),
            v,
        )
    };
    buf.truncate((n.max(0) as usize).min(511));
    String::from_utf8_lossy(&buf).into()
}

fn c_format_str(spec: &str, s: &[u8]) -> String {
    let Ok(c) = std::ffi::CString::new(spec) else {
        return String::new();
    };
    let arg = std::ffi::CString::new(s.iter().copied().filter(|&b| b != 0).collect::<Vec<u8>>())
        .unwrap_or_default();
    let mut buf = vec![0u8; s.len() + 512];
    let len = buf.len();
    // SAFETY: exactly one %s conversion with a NUL-terminated string; the buffer size is passed.
    let n = unsafe {
        libc::snprintf(
            buf.as_mut_ptr() as *mut libc::c_char,
            len,
            c.as_ptr(),
            arg.as_ptr(),
        )
    };
    buf.truncate((n.max(0) as usize).min(len - 1));
    String::from_utf8_lossy(&buf).into()
}

/// Moves the lanes of the top frame that wait at warp barriers past them, when every lane they
/// wait for has arrived (`arrived`: the running lanes reached one too) or has exited or returned.
fn release_warp_sync(w: &mut Warp, arrived: bool) {
    let Some(f) = w.frames.last_mut() else {
        return;
    };
    let waiting = w.wsync & f.live;
    if waiting == 0 {
        return;
    }
    if !arrived {
        let need = w.wsync_mask & w.valid & !w.exited & f.live;
        if need & !waiting != 0 {
            return;
        }
    }
    w.wsync &= !waiting;
    if w.wsync == 0 {
        w.wsync_mask = 0;
    }
    materialize(f);
    for l in lane_iter(waiting) {
        f.pcs[l] += 1;
    }
    reconverge(f);
}

fn materialize(f: &mut Frame) {
    if let Some(u) = f.uniform.take() {
        f.pcs = [u; 32];
    }
}

/// Moves `lanes` of frame `f` to `pc`.
#[inline]
fn advance(f: &mut Frame, lanes: u32, pc: u32) {
    if lanes == 0 {
        return;
    }
    match f.uniform {
        Some(_) if lanes & f.live == f.live => f.uniform = Some(pc),
        _ => {
            materialize(f);
            for l in lane_iter(lanes) {
                f.pcs[l] = pc;
            }
            reconverge(f);
        }
    }
}

fn jump(f: &mut Frame, lanes: u32, pc: u32) {
    advance(f, lanes, pc);
}

fn reconverge(f: &mut Frame) {
    if f.uniform.is_some() || f.live == 0 {
        return;
    }
    let first = f.pcs[f.live.trailing_zeros() as usize];
    if lane_iter(f.live).all(|l| f.pcs[l] == first) {
        f.uniform = Some(first);
    }
}

#[inline]
fn load(p: *mut u8, size: usize, device: bool) -> u64 {
    // SAFETY: `p` was bounds- and alignment-checked by `resolve` for `size` bytes. Device memory
    // is shared between OS threads, so it is accessed atomically (relaxed = plain moves).
    unsafe {
        if device {
            match size {
                1 => AtomicU8::from_ptr(p).load(Ordering::Relaxed) as u64,
                2 => AtomicU16::from_ptr(p as *mut u16).load(Ordering::Relaxed) as u64,
                4 => AtomicU32::from_ptr(p as *mut u32).load(Ordering::Relaxed) as u64,
                _ => AtomicU64::from_ptr(p as *mut u64).load(Ordering::Relaxed),
            }
        } else {
            match size {
                1 => *p as u64,
                2 => (p as *const u16).read_unaligned() as u64,
                4 => (p as *const u32).read_unaligned() as u64,
                _ => (p as *const u64).read_unaligned(),
            }
        }
    }
}

#[inline]
fn store(p: *mut u8, size: usize, device: bool, v: u64) {
    // SAFETY: as in `load`.
    unsafe {
        if device {
            match size {
                1 => AtomicU8::from_ptr(p).store(v as u8, Ordering::Relaxed),
                2 => AtomicU16::from_ptr(p as *mut u16).store(v as u16, Ordering::Relaxed),
                4 => AtomicU32::from_ptr(p as *mut u32).store(v as u32, Ordering::Relaxed),
                _ => AtomicU64::from_ptr(p as *mut u64).store(v, Ordering::Relaxed),
            }
        } else {
            match size {
                1 => *p = v as u8,
                2 => (p as *mut u16).write_unaligned(v as u16),
                4 => (p as *mut u32).write_unaligned(v as u32),
                _ => (p as *mut u64).write_unaligned(v),
            }
        }
    }
}

fn atomic(p: *mut u8, size: usize, op: AtomOp, ty: crate::ast::Type, b: u64, c: u64) -> u64 {
    use crate::ast::Type;
    let signed = matches!(ty, Type::S32 | Type::S64);
    let float = matches!(ty, Type::F32 | Type::F64);
    let bits = size as u32 * 8;
    let f = |old: u64| -> u64 {
        match op {
            AtomOp::Add if float && size == 4 => {
                (f32::from_bits(old as u32) + f32::from_bits(b as u32)).to_bits() as u64
            }
            AtomOp::Add if float => (f64::from_bits(old) + f64::from_bits(b)).to_bits(),
            AtomOp::Add => old.wrapping_add(b),
            AtomOp::Min if float && size == 4 => {
                alu::fmin32(f32::from_bits(old as u32), f32::from_bits(b as u32), false).to_bits()
                    as u64
            }
            AtomOp::Max if float && size == 4 => {
                alu::fmax32(f32::from_bits(old as u32), f32::from_bits(b as u32), false).to_bits()
                    as u64
            }
            AtomOp::Min => alu::min_int(old, b, signed, bits),
            AtomOp::Max => alu::max_int(old, b, signed, bits),
            AtomOp::Inc => alu::atom_inc(old as u32, b as u32) as u64,
            AtomOp::Dec => alu::atom_dec(old as u32, b as u32) as u64,
            AtomOp::And => old & b,
            AtomOp::Or => old | b,
            AtomOp::Xor => old ^ b,
            AtomOp::Exch => b,
            AtomOp::Cas => {
                if old == b {
                    c
                } else {
                    old
                }
            }
        }
    };
    // SAFETY: `p` is bounds- and alignment-checked for `size` bytes by `resolve`; shared and local
    // memory are only touched by this OS thread, so atomics there are merely unnecessary.
    unsafe {
        if size == 8 {
            let a = AtomicU64::from_ptr(p as *mut u64);
            let mut old = a.load(Ordering::Relaxed);
            loop {
                match a.compare_exchange_weak(old, f(old), Ordering::AcqRel, Ordering::Relaxed) {
                    Ok(_) => return old,
                    Err(x) => old = x,
                }
            }
        } else {
            let a = AtomicU32::from_ptr(p as *mut u32);
            let mut old = a.load(Ordering::Relaxed) as u64;
            loop {
                let new = f(old) as u32;
                match a.compare_exchange_weak(old as u32, new, Ordering::AcqRel, Ordering::Relaxed)
                {
                    Ok(_) => return old,
                    Err(x) => old = x as u64,
                }
            }
        }
    }
}

/// Number of OS threads a launch uses by default.
pub fn default_workers() -> usize {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.load(Ordering::Relaxed);
    if n != 0 {
        return n;
    }
    let n = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    N.store(n, Ordering::Relaxed);
    n
}
