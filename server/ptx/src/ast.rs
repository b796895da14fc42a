//! Syntax tree of a PTX module, as written by nvcc (PTX ISA up to 9.x). The parser produces it;
//! the decoder (`decode.rs`) lowers it to the executable form. Names are kept as written.

/// A parsed module.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Module {
    /// `.version` (e.g. "9.5").
    pub version: String,
    /// `.target` entries (e.g. ["sm_75"]).
    pub target: Vec<String>,
    /// `.address_size` (64 unless stated).
    pub address_size: u32,
    /// Module-scope variables (`.global`, `.const`, `.shared`, including `.extern .shared`).
    pub globals: Vec<Variable>,
    /// Entries (`.entry`) and device functions (`.func`), including `.extern .func` declarations.
    pub functions: Vec<Function>,
}

/// State spaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Space {
    /// `.reg`
    Reg,
    /// `.global`
    Global,
    /// `.shared`
    Shared,
    /// `.local`
    Local,
    /// `.const`
    Const,
    /// `.param`
    Param,
}

/// Scalar types (`.pred` included).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum Type {
    Pred,
    B8,
    B16,
    B32,
    B64,
    B128,
    U8,
    U16,
    U32,
    U64,
    S8,
    S16,
    S32,
    S64,
    F16,
    F16x2,
    Bf16,
    Bf16x2,
    F32,
    F64,
}

impl Type {
    /// Size in bytes (`.pred`: 1).
    pub fn size(self) -> u32 {
        use Type::*;
        match self {
            Pred | B8 | U8 | S8 => 1,
            B16 | U16 | S16 | F16 | Bf16 => 2,
            B32 | U32 | S32 | F32 | F16x2 | Bf16x2 => 4,
            B64 | U64 | S64 | F64 => 8,
            B128 => 16,
        }
    }

    /// Parses a type suffix without the dot (`"u32"`), or `None`.
    pub fn from_suffix(s: &str) -> Option<Type> {
        use Type::*;
        Some(match s {
            "pred" => Pred,
            "b8" => B8,
            "b16" => B16,
            "b32" => B32,
            "b64" => B64,
            "b128" => B128,
            "u8" => U8,
            "u16" => U16,
            "u32" => U32,
            "u64" => U64,
            "s8" => S8,
            "s16" => S16,
            "s32" => S32,
            "s64" => S64,
            "f16" => F16,
            "f16x2" => F16x2,
            "bf16" => Bf16,
            "bf16x2" => Bf16x2,
            "f32" => F32,
            "f64" => F64,
            _ => return None,
        })
    }
}

/// A variable declaration (module scope, or `.local`/`.shared`/`.param` inside a function body).
#[derive(Debug, Clone, PartialEq)]
pub struct Variable {
    /// State space.
    pub space: Space,
    /// Name.
    pub name: String,
    /// Element type.
    pub ty: Type,
    /// `.align N` (None: natural alignment of `ty`).
    pub align: Option<u32>,
    /// Array dimensions as written (`x[4][8]` → [4, 8]); empty for a scalar; a `0` entry stands for
    /// an unsized dimension (`.extern .shared .b8 x[]`).
    pub dims: Vec<u64>,
    /// Declared `.extern`.
    pub is_extern: bool,
    /// Initialiser, flattened in element order (shorter than the array: the rest is zero).
    pub init: Vec<Init>,
    /// Source line (1-based).
    pub line: u32,
}

/// One element of an initialiser.
#[derive(Debug, Clone, PartialEq)]
pub enum Init {
    /// Integer literal (two's complement bits for negative values).
    Int(u64),
    /// Float literal: value as f64 (the element type says how to store it).
    Float(f64),
    /// Float literal given as raw bits (`0fXXXXXXXX` → 32 bits, `0dXXXXXXXXXXXXXXXX` → 64 bits).
    FloatBits(u64),
    /// Address of a variable or function, plus a byte offset (`sym`, `sym+8`, `generic(sym)`).
    Symbol(String, i64),
}

/// A kernel or device function.
#[derive(Debug, Clone, PartialEq)]
pub struct Function {
    /// Name.
    pub name: String,
    /// `.entry` (kernel) rather than `.func`.
    pub is_entry: bool,
    /// `.extern` declaration without a body (e.g. `vprintf`).
    pub is_extern: bool,
    /// Return parameters (`.func (.param .b32 r) f(...)`).
    pub returns: Vec<Variable>,
    /// Parameters, in order (space `Param`, or `Reg` for old-style `.reg` params).
    pub params: Vec<Variable>,
    /// Body; `None` for declarations.
    pub body: Option<Vec<Statement>>,
    /// Source line of the declaration.
    pub line: u32,
    /// Threads per block allowed by `.maxntid`/`.reqntid` (product of the dimensions; 0: none).
    pub max_threads: u32,
}

/// A register declaration name.
#[derive(Debug, Clone, PartialEq)]
pub enum RegName {
    /// `%r1`
    Single(String),
    /// `%r<6>` declares `%r0` … `%r5`.
    Range(String, u32),
}

/// A statement of a function body.
#[derive(Debug, Clone, PartialEq)]
pub enum Statement {
    /// `name:`
    Label(String),
    /// An instruction.
    Instr(Instruction),
    /// `.reg .ty names;`
    Reg {
        /// Type.
        ty: Type,
        /// Declared names.
        names: Vec<RegName>,
    },
    /// `.local`, `.shared` or `.param` variable declared in the body.
    Var(Variable),
    /// `{ … }` — a nested scope (callseq blocks, inline asm); registers declared inside shadow
    /// outer ones.
    Block(Vec<Statement>),
    /// `name: .callprototype …;` (indirect-call signature; kept by name only).
    Prototype(String),
}

/// An instruction.
#[derive(Debug, Clone, PartialEq)]
pub struct Instruction {
    /// `@%p` / `@!%p` guard: (predicate register, negated).
    pub guard: Option<(String, bool)>,
    /// Opcode without modifiers (`"ld"`, `"setp"`, `"mad"`).
    pub op: String,
    /// Dot-separated modifiers in order, without dots (`ld.global.nc.v4.f32` →
    /// `["global", "nc", "v4", "f32"]`; `shfl.sync.down.b32` → `["sync", "down", "b32"]`).
    pub mods: Vec<String>,
    /// Operands in order.
    pub operands: Vec<Operand>,
    /// Source line.
    pub line: u32,
}

/// An operand.
#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    /// A register (`%r1`, `%tid.x` and other special registers included, with their component).
    Reg(String),
    /// Integer immediate (two's complement bits).
    Imm(u64),
    /// `0fXXXXXXXX`: f32 bits.
    F32(u32),
    /// `0dXXXXXXXXXXXXXXXX`: f64 bits; decimal float literals are converted to this.
    F64(u64),
    /// A symbol: variable, function or label name (for `bra`, `call`, `mov %rd, sym`).
    Symbol(String),
    /// `[base+offset]`: base is a register or symbol (empty string base + offset for `[imm]`).
    Address {
        /// Register or symbol name.
        base: String,
        /// Byte offset.
        offset: i64,
    },
    /// `{%r1, %r2, …}` vector operand (`_` allowed as an element name, as `Symbol("_")`).
    Vector(Vec<Operand>),
    /// `%r|%p` (e.g. `shfl.sync … %r14|%p8`, `setp … %p1|%p2`).
    Pair(String, String),
    /// `!%p` (negated predicate source).
    Not(String),
    /// `(a, b, …)` list in `call`.
    List(Vec<Operand>),
    /// `-%r1`? PTX has no negated register operands except via `neg`; kept for completeness.
    Neg(Box<Operand>),
}

/// A parse error, with its line.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("PTX line {line}: {msg}")]
pub struct ParseError {
    /// 1-based line.
    pub line: u32,
    /// What went wrong.
    pub msg: String,
}
