//! The executable form of a PTX module: functions as arrays of pre-decoded instructions with
//! registers resolved to dense slots, symbols to addresses, labels to instruction indices, and the
//! per-type semantics chosen once (function pointers), so the interpreter's loop never parses.

use crate::alu::{CmpOp, Rounding};
use crate::ast::Type;

/// Base of the generic-address window that maps to the block's shared memory.
pub const SHARED_WINDOW: u64 = 0x0001_0000_0000_0000;
/// Base of the generic-address window that maps to the thread's local memory.
pub const LOCAL_WINDOW: u64 = 0x0001_8000_0000_0000;
/// Size of each window.
pub const WINDOW_SIZE: u64 = 1 << 32;
/// Generic "addresses" of functions (for indirect calls and function-pointer initialisers).
pub const FUNC_WINDOW: u64 = 0x0001_c000_0000_0000;

/// An operand value source.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Src {
    /// Register slot.
    R(u16),
    /// Immediate bits.
    I(u64),
    /// Special register.
    Sp(Special),
}

/// Special registers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Special {
    Tid(u8),
    Ntid(u8),
    Ctaid(u8),
    Nctaid(u8),
    LaneId,
    WarpId,
    NWarpId,
    SmId,
    NSmId,
    GridId,
    Clock,
    Clock64,
    GlobalTimer,
    LanemaskEq,
    LanemaskLt,
    LanemaskLe,
    LanemaskGt,
    LanemaskGe,
    DynSmem,
    TotalSmem,
    Zero,
}

/// Memory state spaces as the interpreter sees them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemSpace {
    /// Device memory (also `.const`, which lives in device memory).
    Global,
    /// The block's shared memory (32-bit offsets).
    Shared,
    /// The thread's local memory (offsets in its local stack).
    Local,
    /// The kernel parameter buffer.
    KParam,
    /// Generic addresses, resolved by window.
    Generic,
}

/// Base of an address operand.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Base {
    /// Register value.
    Reg(u16),
    /// Absolute address in the instruction's space.
    Abs(u64),
    /// Current frame's local base plus this offset (local-space symbol).
    Frame(u64),
}

/// `[base + off]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Addr {
    /// Base.
    pub base: Base,
    /// Offset.
    pub off: i64,
}

/// Binary function on raw bits.
pub type F2 = fn(u64, u64) -> u64;
/// Unary function on raw bits.
pub type F1 = fn(u64) -> u64;
/// Ternary function on raw bits.
pub type F3 = fn(u64, u64, u64) -> u64;

/// Atomic operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum AtomOp {
    Add,
    Min,
    Max,
    Inc,
    Dec,
    And,
    Or,
    Xor,
    Exch,
    Cas,
}

/// Boolean combiners of `setp`/`bar.red`/`vote`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum BoolOp {
    And,
    Or,
    Xor,
}

/// `shfl` modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Shfl {
    Up,
    Down,
    Bfly,
    Idx,
}

/// `vote` modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Vote {
    All,
    Any,
    Uni,
    Ballot,
}

/// A pre-decoded instruction.
#[derive(Debug, Clone)]
pub struct Inst {
    /// Guard predicate slot and negation.
    pub guard: Option<(u16, bool)>,
    /// Operation.
    pub op: Op,
    /// PTX source line (errors and traces).
    pub line: u32,
}

/// Operations.
#[derive(Debug, Clone)]
#[allow(missing_docs)]
pub enum Op {
    Nop,
    /// d = a (masked to `mask`).
    Mov {
        d: u16,
        a: Src,
        mask: u64,
    },
    /// d = address of a frame-local variable.
    MovFrame {
        d: u16,
        off: u64,
    },
    Un {
        d: u16,
        a: Src,
        f: F1,
    },
    Bin {
        d: u16,
        a: Src,
        b: Src,
        f: F2,
    },
    Tern {
        d: u16,
        a: Src,
        b: Src,
        c: Src,
        f: F3,
    },
    /// add/sub with carry in/out (`add.cc`, `addc`, `addc.cc`, `sub.cc`, …).
    Carry {
        d: u16,
        a: Src,
        b: Src,
        bits: u32,
        sub: bool,
        cin: bool,
        cout: bool,
    },
    /// mad.lo/hi/wide with carry-less semantics via two steps is not needed: `madc` etc.
    MadCarry {
        d: u16,
        a: Src,
        b: Src,
        c: Src,
        hi: bool,
        bits: u32,
        cin: bool,
        cout: bool,
    },
    Cvt {
        d: u16,
        a: Src,
        dst: Type,
        src: Type,
        rnd: Option<Rounding>,
        ftz: bool,
        sat: bool,
    },
    Setp {
        p: u16,
        q: Option<u16>,
        a: Src,
        b: Src,
        cmp: CmpOp,
        ty: Type,
        comb: Option<(BoolOp, u16, bool)>,
    },
    /// `set`: d = cmp ? (float? 1.0 : all ones) : 0
    Set {
        d: u16,
        a: Src,
        b: Src,
        cmp: CmpOp,
        ty: Type,
        dty: Type,
    },
    Selp {
        d: u16,
        a: Src,
        b: Src,
        p: u16,
        neg: bool,
    },
    /// slct: d = c >= 0 ? a : b (c signed int or float)
    Slct {
        d: u16,
        a: Src,
        b: Src,
        c: Src,
        float: bool,
    },
    /// Predicate logic: d = a op b (pred registers), with optional negations; `not`/`mov` on preds.
    PredOp {
        d: u16,
        a: (u16, bool),
        b: Option<(u16, bool)>,
        op: BoolOp,
    },
    /// d = constant predicate (setp with immediate folding) or mov.pred from imm.
    PredSet {
        d: u16,
        v: bool,
    },
    /// Moves a 32/64-bit value into a predicate (cvt to pred is not PTX; used for `mov.pred %p, 1`).
    /// pack: d = concat(parts) little-endian, each `bits` wide.
    Pack {
        d: u16,
        parts: Vec<Src>,
        bits: u32,
    },
    /// unpack: parts[i] = (a >> (i*bits)) & mask.
    Unpack {
        ds: Vec<Option<u16>>,
        a: Src,
        bits: u32,
    },
    Ld {
        space: MemSpace,
        addr: Addr,
        size: u8,
        sext_to: u8,
        ds: Vec<u16>,
    },
    St {
        space: MemSpace,
        addr: Addr,
        size: u8,
        srcs: Vec<Src>,
    },
    Atom {
        space: MemSpace,
        addr: Addr,
        op: AtomOp,
        ty: Type,
        d: Option<u16>,
        b: Src,
        c: Option<Src>,
    },
    /// cvta: to_generic (space→generic) or generic→space.
    Cvta {
        d: u16,
        a: Src,
        space: MemSpace,
        to_generic: bool,
    },
    /// isspacep.space p, a
    Isspacep {
        p: u16,
        a: Src,
        space: MemSpace,
    },
    Bra {
        target: u32,
    },
    /// Direct or indirect call. `args`/`rets`: (frame offset in caller, size).
    Call {
        target: CallTarget,
        args: Vec<(u64, u32)>,
        rets: Vec<(u64, u32)>,
    },
    Ret,
    Exit,
    /// bar.sync / barrier.sync / bar.arrive / bar.red.
    Bar {
        id: Src,
        count: Option<Src>,
        arrive: bool,
        red: Option<BarRed>,
    },
    /// bar.warp.sync mask (a convergence point; no-op for lanes already together).
    WarpSync {
        mask: Src,
    },
    Shfl {
        d: u16,
        p: Option<u16>,
        a: Src,
        b: Src,
        c: Src,
        mode: Shfl,
    },
    Vote {
        mode: Vote,
        d: Option<u16>,
        p: Option<u16>,
        a: (u16, bool),
    },
    Activemask {
        d: u16,
    },
    /// match.any/all: d = mask of lanes with equal value; p for .all.
    Match {
        d: u16,
        p: Option<u16>,
        a: Src,
        all: bool,
        bits: u32,
    },
    /// redux.sync (sm_80+; kept for completeness).
    Trap,
    /// nanosleep: no-op yield.
    Sleep,
    /// Host printf: fmt and args frame offsets of the callseq params; ret frame offset.
    Vprintf {
        fmt: (u64, u32),
        args: (u64, u32),
        ret: Option<(u64, u32)>,
    },
    /// __assertfail(msg, file, line, func, charsize)
    AssertFail {
        args: Vec<(u64, u32)>,
    },
}

/// Reduction of `bar.red`.
#[derive(Debug, Clone, Copy)]
pub enum BarRed {
    /// bar.red.popc.u32 d, id, {count,} p
    Popc { d: u16, p: (u16, bool) },
    /// bar.red.and/or.pred d, id, {count,} p
    Pred { d: u16, p: (u16, bool), op: BoolOp },
}

/// Call targets.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CallTarget {
    /// Function index.
    Direct(u32),
    /// Register holding a function window address.
    Indirect(u16),
}

/// A decoded function.
#[derive(Debug, Clone)]
pub struct Func {
    /// Name.
    pub name: String,
    /// Kernel entry.
    pub is_entry: bool,
    /// Instructions.
    pub code: Vec<Inst>,
    /// Number of value register slots.
    pub nregs: u32,
    /// Number of predicate slots.
    pub npreds: u32,
    /// Bytes of local memory per thread (params, returns, `.local` and callseq `.param`s).
    pub local_size: u64,
    /// For device functions: (frame offset, size) of each parameter.
    pub params: Vec<(u64, u32)>,
    /// For device functions: (frame offset, size) of each return value.
    pub rets: Vec<(u64, u32)>,
    /// For kernels: (offset, size, align) of each parameter in the parameter buffer.
    pub kparams: Vec<(u32, u32, u32)>,
    /// Size of the kernel parameter buffer.
    pub kparam_size: u32,
    /// Static shared memory used by this kernel (module statics + its own).
    pub static_smem: u32,
    /// Static shared memory this kernel itself uses (`CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES`; the
    /// interpreter allocates `static_smem`, the module-wide layout).
    pub shared_bytes: u32,
    /// Declared `.reqntid`/`.maxntid` (0 if absent).
    pub max_threads: u32,
}

/// A decoded module.
#[derive(Debug, Clone, Default)]
pub struct Program {
    /// Functions (kernels and device functions).
    pub funcs: Vec<Func>,
    /// Bytes of module-scope static shared memory (`.extern .shared` starts after it).
    pub static_smem: u32,
}

impl Program {
    /// Index of the function `name`.
    pub fn find(&self, name: &str) -> Option<usize> {
        self.funcs.iter().position(|f| f.name == name)
    }
}
