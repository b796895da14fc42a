//! Per-lane arithmetic with the exact semantics of the PTX ISA (9.x).
//!
//! Every function here is pure and total: no panics, no host-dependent behaviour. The
//! interpreter calls them once per active lane, so the common paths (round-to-nearest float
//! arithmetic, integer helpers) are small and `#[inline]`.
//!
//! # Conventions
//!
//! * **Raw bits.** Values travel as raw bits in a `u64`: narrower types live in the low bits
//!   (f32 = low 32 bits, f16/bf16 = low 16 bits). Functions that take a `bits` width only look at
//!   the low `bits` bits of their inputs.
//! * **Results are masked to the destination width.** A signed result narrower than 64 bits is
//!   returned zero-extended in its own width (`cvt.s8` of -1 gives `0xff`, not
//!   `0xffff_ffff_ffff_ffff`); the caller widens it when the destination register is wider.
//! * **NaN.** Single-precision operations that produce a NaN return the canonical NaN
//!   `0x7fffffff` (CUDA Programming Guide, "Floating-point standard"). For the other formats this
//!   module also returns one canonical quiet NaN per format, all payload bits set and the sign
//!   clear: f16 and bf16 `0x7fff`, f64 `0x7fff_ffff_ffff_ffff`. Payloads are never propagated, so
//!   results do not depend on the host CPU's NaN rules.
//! * **Rounding.** `.rn` float arithmetic uses the host's IEEE operations (correctly rounded).
//!   `.rz/.rm/.rp` arithmetic, and every narrowing conversion, go through a small exact
//!   soft-float core ([`FOp`] operands are unpacked to integers, the exact result is formed with a
//!   sticky bit and rounded once), so all rounding modes are correctly rounded for f16, bf16, f32
//!   and f64, subnormals included.
//! * **Approximate instructions** (`ex2.approx`, `sin.approx`, ...) return a value at least as
//!   accurate as PTX documents, computed with the pure-Rust `libm` crate so the bits are the same
//!   on every host. They are not bit-identical to NVIDIA hardware (nothing documented is).

use crate::ast::Type;

// ------------------------------------------------------------------------------------------------
// Modifier enums
// ------------------------------------------------------------------------------------------------

/// Rounding modifiers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rounding {
    /// `.rn`: to nearest, ties to even.
    Rn,
    /// `.rz`: toward zero.
    Rz,
    /// `.rm`: toward minus infinity.
    Rm,
    /// `.rp`: toward plus infinity.
    Rp,
    /// `.rna` (`cvt` only): to nearest, ties away from zero.
    Rna,
    /// `.rni`: to the nearest integer, ties to even (float→int, and float→float integer rounding).
    Rni,
    /// `.rzi`: to an integer toward zero.
    Rzi,
    /// `.rmi`: to an integer toward minus infinity.
    Rmi,
    /// `.rpi`: to an integer toward plus infinity.
    Rpi,
}

impl Rounding {
    /// Parses a modifier without or with its leading dot (`"rn"`, `".rzi"`), or `None`.
    pub fn parse(s: &str) -> Option<Rounding> {
        Some(match s.strip_prefix('.').unwrap_or(s) {
            "rn" => Rounding::Rn,
            "rz" => Rounding::Rz,
            "rm" => Rounding::Rm,
            "rp" => Rounding::Rp,
            "rna" => Rounding::Rna,
            "rni" => Rounding::Rni,
            "rzi" => Rounding::Rzi,
            "rmi" => Rounding::Rmi,
            "rpi" => Rounding::Rpi,
            _ => return None,
        })
    }

    /// The rounding direction: the integer variants map to their float counterparts
    /// (`Rni`→`Rn`, `Rzi`→`Rz`, `Rmi`→`Rm`, `Rpi`→`Rp`); the others are returned unchanged.
    #[inline]
    pub fn direction(self) -> Rounding {
        match self {
            Rounding::Rni => Rounding::Rn,
            Rounding::Rzi => Rounding::Rz,
            Rounding::Rmi => Rounding::Rm,
            Rounding::Rpi => Rounding::Rp,
            r => r,
        }
    }

    /// True for the integer-rounding modifiers `.rni .rzi .rmi .rpi`.
    #[inline]
    pub fn is_integer(self) -> bool {
        matches!(
            self,
            Rounding::Rni | Rounding::Rzi | Rounding::Rmi | Rounding::Rpi
        )
    }
}

/// Comparison operators of `setp`, `set` and `slct`-style selection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    /// Unsigned `<` (integers).
    Lo,
    /// Unsigned `<=` (integers).
    Ls,
    /// Unsigned `>` (integers).
    Hi,
    /// Unsigned `>=` (integers).
    Hs,
    Equ,
    Neu,
    Ltu,
    Leu,
    Gtu,
    Geu,
    /// Neither operand is NaN.
    Num,
    /// Either operand is NaN.
    Nan,
}

impl CmpOp {
    /// Parses a comparison modifier without or with its leading dot (`"lt"`, `".neu"`).
    pub fn parse(s: &str) -> Option<CmpOp> {
        Some(match s.strip_prefix('.').unwrap_or(s) {
            "eq" => CmpOp::Eq,
            "ne" => CmpOp::Ne,
            "lt" => CmpOp::Lt,
            "le" => CmpOp::Le,
            "gt" => CmpOp::Gt,
            "ge" => CmpOp::Ge,
            "lo" => CmpOp::Lo,
            "ls" => CmpOp::Ls,
            "hi" => CmpOp::Hi,
            "hs" => CmpOp::Hs,
            "equ" => CmpOp::Equ,
            "neu" => CmpOp::Neu,
            "ltu" => CmpOp::Ltu,
            "leu" => CmpOp::Leu,
            "gtu" => CmpOp::Gtu,
            "geu" => CmpOp::Geu,
            "num" => CmpOp::Num,
            "nan" => CmpOp::Nan,
            _ => return None,
        })
    }
}

/// Floating-point operations with an explicit rounding mode (see [`f32_op`], [`f64_op`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FOp {
    /// `a + b`
    Add,
    /// `a - b`
    Sub,
    /// `a * b`
    Mul,
    /// `a * b + c`, one rounding.
    Fma,
    /// `a / b`
    Div,
    /// `sqrt(a)`
    Sqrt,
    /// `1 / a`
    Rcp,
}

/// `shfl.sync` modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum ShflMode {
    Up,
    Down,
    Bfly,
    Idx,
}

impl ShflMode {
    /// Parses `"up" "down" "bfly" "idx"` (optionally with a leading dot).
    pub fn parse(s: &str) -> Option<ShflMode> {
        Some(match s.strip_prefix('.').unwrap_or(s) {
            "up" => ShflMode::Up,
            "down" => ShflMode::Down,
            "bfly" => ShflMode::Bfly,
            "idx" => ShflMode::Idx,
            _ => return None,
        })
    }
}

/// `prmt.b32` modes (`None`-mode is [`PrmtMode::Generic`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PrmtMode {
    /// No mode: four 4-bit selectors in `c[15:0]`.
    Generic,
    /// `.f4e` forward 4-byte extract.
    F4e,
    /// `.b4e` backward 4-byte extract.
    B4e,
    /// `.rc8` replicate byte.
    Rc8,
    /// `.ecl` edge clamp left.
    Ecl,
    /// `.ecr` edge clamp right.
    Ecr,
    /// `.rc16` replicate half-word.
    Rc16,
}

impl PrmtMode {
    /// Parses a mode name (`"f4e"`, ...; optionally with a leading dot). Unknown names → `None`.
    pub fn parse(s: &str) -> Option<PrmtMode> {
        Some(match s.strip_prefix('.').unwrap_or(s) {
            "f4e" => PrmtMode::F4e,
            "b4e" => PrmtMode::B4e,
            "rc8" => PrmtMode::Rc8,
            "ecl" => PrmtMode::Ecl,
            "ecr" => PrmtMode::Ecr,
            "rc16" => PrmtMode::Rc16,
            _ => return None,
        })
    }
}

/// `testp` properties.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum TestpOp {
    Finite,
    Infinite,
    Number,
    NotANumber,
    Normal,
    Subnormal,
}

impl TestpOp {
    /// Parses `finite infinite number notanumber normal subnormal` (optionally with a dot).
    pub fn parse(s: &str) -> Option<TestpOp> {
        Some(match s.strip_prefix('.').unwrap_or(s) {
            "finite" => TestpOp::Finite,
            "infinite" => TestpOp::Infinite,
            "number" => TestpOp::Number,
            "notanumber" => TestpOp::NotANumber,
            "normal" => TestpOp::Normal,
            "subnormal" => TestpOp::Subnormal,
            _ => return None,
        })
    }
}

// ------------------------------------------------------------------------------------------------
// Small float helpers
// ------------------------------------------------------------------------------------------------

/// The canonical f32 NaN produced by single-precision operations (`0x7fffffff`).
pub const NAN32: u32 = 0x7fff_ffff;
/// The canonical f64 NaN returned by this module (`0x7fff_ffff_ffff_ffff`).
pub const NAN64: u64 = 0x7fff_ffff_ffff_ffff;
/// The canonical f16 / bf16 NaN (`0x7fff`).
pub const NAN16: u16 = 0x7fff;

/// `.ftz` on one f32 value: a subnormal becomes a zero of the same sign; anything else is kept.
#[inline]
pub fn ftz32(x: f32) -> f32 {
    let b = x.to_bits();
    if b & 0x7f80_0000 == 0 {
        f32::from_bits(b & 0x8000_0000)
    } else {
        x
    }
}

#[inline]
fn ftz_if(x: f32, ftz: bool) -> f32 {
    if ftz {
        ftz32(x)
    } else {
        x
    }
}

/// Replaces any f32 NaN by the canonical NaN `0x7fffffff`.
#[inline]
pub fn canon32(x: f32) -> f32 {
    if x.is_nan() {
        f32::from_bits(NAN32)
    } else {
        x
    }
}

/// Replaces any f64 NaN by the canonical NaN [`NAN64`].
#[inline]
pub fn canon64(x: f64) -> f64 {
    if x.is_nan() {
        f64::from_bits(NAN64)
    } else {
        x
    }
}

/// `copysign.f32 d, a, b` in PTX operand order: `b` with the sign of `a` (bitwise, NaN included).
#[inline]
pub fn copysign32(a: f32, b: f32) -> f32 {
    f32::from_bits((b.to_bits() & 0x7fff_ffff) | (a.to_bits() & 0x8000_0000))
}

/// `copysign.f64 d, a, b` in PTX operand order: `b` with the sign of `a` (bitwise, NaN included).
#[inline]
pub fn copysign64(a: f64, b: f64) -> f64 {
    f64::from_bits((b.to_bits() & !(1u64 << 63)) | (a.to_bits() & (1u64 << 63)))
}

// ------------------------------------------------------------------------------------------------
// Soft-float core: formats, unpacking, one correct rounding
// ------------------------------------------------------------------------------------------------

/// A binary interchange format: `mant` stored fraction bits, `exp_bits` exponent bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Fmt {
    mant: u32,
    exp_bits: u32,
}

const F16: Fmt = Fmt {
    mant: 10,
    exp_bits: 5,
};
const BF16: Fmt = Fmt {
    mant: 7,
    exp_bits: 8,
};
const F32: Fmt = Fmt {
    mant: 23,
    exp_bits: 8,
};
const F64: Fmt = Fmt {
    mant: 52,
    exp_bits: 11,
};

impl Fmt {
    #[inline]
    const fn bias(self) -> i32 {
        (1 << (self.exp_bits - 1)) - 1
    }
    #[inline]
    const fn exp_ones(self) -> u64 {
        (1u64 << self.exp_bits) - 1
    }
    #[inline]
    const fn sign_bit(self) -> u64 {
        1u64 << (self.mant + self.exp_bits)
    }
    #[inline]
    const fn frac_mask(self) -> u64 {
        (1u64 << self.mant) - 1
    }
    #[inline]
    const fn inf(self) -> u64 {
        self.exp_ones() << self.mant
    }
    #[inline]
    const fn max_finite(self) -> u64 {
        ((self.exp_ones() - 1) << self.mant) | self.frac_mask()
    }
    /// Canonical NaN: every bit but the sign.
    #[inline]
    const fn nan(self) -> u64 {
        self.sign_bit() - 1
    }
    /// Exponent of the least significant bit of a subnormal (`2^min_exp` is the smallest value).
    #[inline]
    const fn min_exp(self) -> i32 {
        1 - self.bias() - self.mant as i32
    }
    #[inline]
    const fn width_mask(self) -> u64 {
        (self.sign_bit() << 1).wrapping_sub(1)
    }
}

/// `2^k` for `k` in the normal f64 exponent range.
#[inline]
fn pow2(k: i32) -> f64 {
    f64::from_bits(((k + 1023) as u64) << 52)
}

/// Exact value of `bits` in format `f` as an f64 (every f16/bf16/f32 value is an f64 value).
#[inline]
fn decode(bits: u64, f: Fmt) -> f64 {
    if f == F64 {
        return f64::from_bits(bits);
    }
    if f == F32 {
        return f32::from_bits(bits as u32) as f64;
    }
    if f == BF16 {
        return f32::from_bits((bits as u32 & 0xffff) << 16) as f64;
    }
    let neg = bits & f.sign_bit() != 0;
    let e = (bits >> f.mant) & f.exp_ones();
    let m = bits & f.frac_mask();
    let mag = if e == f.exp_ones() {
        if m == 0 {
            f64::INFINITY
        } else {
            f64::NAN
        }
    } else if e == 0 {
        m as f64 * pow2(f.min_exp())
    } else {
        (m | (1u64 << f.mant)) as f64 * pow2(e as i32 - f.bias() - f.mant as i32)
    };
    if neg {
        -mag
    } else {
        mag
    }
}

/// A finite non-zero f64 as (negative, significand, exponent): value = ±sig · 2^exp.
#[inline]
fn unpack64(x: f64) -> (bool, u64, i32) {
    let b = x.to_bits();
    let neg = b >> 63 != 0;
    let e = ((b >> 52) & 0x7ff) as i32;
    let m = b & ((1u64 << 52) - 1);
    if e == 0 {
        (neg, m, -1074)
    } else {
        (neg, m | (1u64 << 52), e - 1075)
    }
}

/// The result of an overflow in format `f` under `rnd`: infinity or the largest finite value.
#[inline]
fn overflow(neg: bool, f: Fmt, rnd: Rounding) -> u64 {
    let to_inf = match rnd.direction() {
        Rounding::Rz => false,
        Rounding::Rp => !neg,
        Rounding::Rm => neg,
        _ => true,
    };
    let sign = if neg { f.sign_bit() } else { 0 };
    sign | if to_inf { f.inf() } else { f.max_finite() }
}

/// Rounds the exact value `±(sig + ε) · 2^exp` to format `f`, where `ε` is 0 when `sticky` is
/// false and some value strictly between 0 and 1 when it is true. Handles subnormal results and
/// overflow. `sig == 0` (only legal with `sticky == false`) gives a signed zero.
fn round_pack(neg: bool, sig: u128, exp: i32, sticky: bool, f: Fmt, rnd: Rounding) -> u64 {
    let sign = if neg { f.sign_bit() } else { 0 };
    if sig == 0 {
        return sign;
    }
    let p = f.mant as i32 + 1;
    let nbits = 128 - sig.leading_zeros() as i32;
    // Exponent of the result's least significant bit.
    let mut lsb = (exp + nbits - p).max(f.min_exp());
    let shift = lsb - exp;
    // Position of the discarded part: 0 exact, 1 below half, 2 exactly half, 3 above half.
    let (mut q, class) = if shift <= 0 {
        (sig << (-shift) as u32, if sticky { 1 } else { 0 })
    } else if shift > 128 {
        (0u128, 1)
    } else {
        let (q, rem) = if shift == 128 {
            (0, sig)
        } else {
            (sig >> shift, sig & ((1u128 << shift) - 1))
        };
        let half = 1u128 << (shift - 1);
        let class = if rem > half || (rem == half && sticky) {
            3
        } else if rem == half {
            2
        } else if rem != 0 || sticky {
            1
        } else {
            0
        };
        (q, class)
    };
    let up = match rnd.direction() {
        Rounding::Rn => class == 3 || (class == 2 && q & 1 == 1),
        Rounding::Rna => class >= 2,
        Rounding::Rp => class != 0 && !neg,
        Rounding::Rm => class != 0 && neg,
        _ => false,
    };
    if up {
        q += 1;
        if q >> p != 0 {
            q >>= 1;
            lsb += 1;
        }
    }
    let implicit = 1u128 << f.mant;
    let biased = if q & implicit != 0 {
        lsb as i64 + f.mant as i64 + f.bias() as i64
    } else {
        0
    };
    if biased >= f.exp_ones() as i64 {
        return overflow(neg, f, rnd);
    }
    sign | ((biased as u64) << f.mant) | (q as u64 & f.frac_mask())
}

/// Rounds an f64 value (exact input) to format `f`.
#[inline]
fn encode(x: f64, f: Fmt, rnd: Rounding) -> u64 {
    if x.is_nan() {
        return f.nan();
    }
    if f == F64 {
        return x.to_bits();
    }
    if f == F32 && rnd.direction() == Rounding::Rn {
        return (x as f32).to_bits() as u64;
    }
    let sign = if x.is_sign_negative() {
        f.sign_bit()
    } else {
        0
    };
    if x.is_infinite() {
        return sign | f.inf();
    }
    if x == 0.0 {
        return sign;
    }
    let (neg, sig, exp) = unpack64(x);
    round_pack(neg, sig as u128, exp, false, f, rnd)
}

/// Sign of an exact zero sum `x + y` of two values of signs `xn`, `yn` (IEEE 754 §6.3).
#[inline]
fn zero_sum(xn: bool, yn: bool, f: Fmt, rnd: Rounding) -> u64 {
    let neg = if xn == yn {
        xn
    } else {
        rnd.direction() == Rounding::Rm
    };
    if neg {
        f.sign_bit()
    } else {
        0
    }
}

/// `v >> d` and whether any one bit was shifted out.
#[inline]
fn shr_sticky(v: u128, d: u32) -> (u128, bool) {
    if d == 0 {
        (v, false)
    } else if d >= 128 {
        (0, v != 0)
    } else {
        (v >> d, v & ((1u128 << d) - 1) != 0)
    }
}

/// Adds two values whose wide significands share one exponent after alignment: `x` has the larger
/// magnitude. Returns the rounded sum.
#[allow(clippy::too_many_arguments)]
fn add_aligned(
    xn: bool,
    xs: u128,
    xe: i32,
    yn: bool,
    ys: u128,
    ye: i32,
    f: Fmt,
    rnd: Rounding,
) -> u64 {
    let (ysh, sticky) = shr_sticky(ys, (xe - ye) as u32);
    let sum = if xn == yn {
        xs + ysh
    } else {
        // The discarded part of y makes the true difference slightly smaller: borrow one unit
        // and let the sticky bit stand for the remainder.
        xs - ysh - sticky as u128
    };
    if sum == 0 && !sticky {
        return zero_sum(xn, yn, f, rnd);
    }
    round_pack(xn, sum, xe, sticky, f, rnd)
}

fn soft_add(a: f64, b: f64, f: Fmt, rnd: Rounding) -> u64 {
    if !a.is_finite() || !b.is_finite() {
        return encode(a + b, f, rnd);
    }
    if a == 0.0 && b == 0.0 {
        return zero_sum(a.is_sign_negative(), b.is_sign_negative(), f, rnd);
    }
    if a == 0.0 {
        return encode(b, f, rnd);
    }
    if b == 0.0 {
        return encode(a, f, rnd);
    }
    let (x, y) = if a.abs() >= b.abs() { (a, b) } else { (b, a) };
    let (xn, xs, xe) = unpack64(x);
    let (yn, ys, ye) = unpack64(y);
    // 64 guard bits: an exact alignment whenever the exponents are within 64, and otherwise y is
    // far below x's rounding position so the sticky bit is all that matters.
    add_aligned(
        xn,
        (xs as u128) << 64,
        xe - 64,
        yn,
        (ys as u128) << 64,
        ye - 64,
        f,
        rnd,
    )
}

fn soft_mul(a: f64, b: f64, f: Fmt, rnd: Rounding) -> u64 {
    if !a.is_finite() || !b.is_finite() || a == 0.0 || b == 0.0 {
        return encode(a * b, f, rnd);
    }
    let (an, asig, ae) = unpack64(a);
    let (bn, bsig, be) = unpack64(b);
    round_pack(an ^ bn, asig as u128 * bsig as u128, ae + be, false, f, rnd)
}

fn soft_fma(a: f64, b: f64, c: f64, f: Fmt, rnd: Rounding) -> u64 {
    if !a.is_finite() || !b.is_finite() || !c.is_finite() {
        return encode(a.mul_add(b, c), f, rnd);
    }
    if a == 0.0 || b == 0.0 {
        let pn = a.is_sign_negative() ^ b.is_sign_negative();
        if c == 0.0 {
            return zero_sum(pn, c.is_sign_negative(), f, rnd);
        }
        return encode(c, f, rnd);
    }
    if c == 0.0 {
        return soft_mul(a, b, f, rnd);
    }
    let (an, asig, ae) = unpack64(a);
    let (bn, bsig, be) = unpack64(b);
    let (cn, csig, ce) = unpack64(c);
    // Normalise the exact product (<= 106 bits) and the addend to their top bit at bit 125.
    let p = asig as u128 * bsig as u128;
    let sp = p.leading_zeros() - 2;
    let (p, pe) = (p << sp, ae + be - sp as i32);
    let cw = csig as u128;
    let sc = cw.leading_zeros() - 2;
    let (cw, cexp) = (cw << sc, ce - sc as i32);
    if (pe, p) >= (cexp, cw) {
        add_aligned(an ^ bn, p, pe, cn, cw, cexp, f, rnd)
    } else {
        add_aligned(cn, cw, cexp, an ^ bn, p, pe, f, rnd)
    }
}

fn soft_div(a: f64, b: f64, f: Fmt, rnd: Rounding) -> u64 {
    if !a.is_finite() || !b.is_finite() || a == 0.0 || b == 0.0 {
        return encode(a / b, f, rnd);
    }
    let (an, asig, ae) = unpack64(a);
    let (bn, bsig, be) = unpack64(b);
    let sa = asig.leading_zeros();
    let sb = bsig.leading_zeros();
    let num = ((asig << sa) as u128) << 64;
    let den = (bsig << sb) as u128;
    // A quotient of 64 or 65 bits plus a sticky remainder.
    let (q, r) = (num / den, num % den);
    let exp = (ae - sa as i32) - (be - sb as i32) - 64;
    round_pack(an ^ bn, q, exp, r != 0, f, rnd)
}

/// Floor of the square root of `m` (`m < 2^126`).
fn isqrt(m: u128) -> u128 {
    let mut r = (m as f64).sqrt() as u128;
    if r > 0 {
        r = (r + m / r) / 2;
    }
    while r * r > m {
        r -= 1;
    }
    while (r + 1) * (r + 1) <= m {
        r += 1;
    }
    r
}

fn soft_sqrt(a: f64, f: Fmt, rnd: Rounding) -> u64 {
    if a.is_nan() || a < 0.0 {
        return f.nan();
    }
    if a == 0.0 || a.is_infinite() {
        return encode(a, f, rnd);
    }
    let (_, s, e) = unpack64(a);
    // Shift the significand up to a 125/126-bit integer with an even exponent.
    let msb = 127 - (s as u128).leading_zeros() as i32;
    let mut k = 124 - msb;
    if (e - k) & 1 != 0 {
        k += 1;
    }
    let m = (s as u128) << k;
    let r = isqrt(m);
    round_pack(false, r, (e - k) / 2, r * r != m, f, rnd)
}

/// One correctly rounded operation on exact f64 operands, rounded once into format `f`.
fn soft(op: FOp, a: f64, b: f64, c: f64, f: Fmt, rnd: Rounding) -> u64 {
    match op {
        FOp::Add => soft_add(a, b, f, rnd),
        FOp::Sub => soft_add(a, -b, f, rnd),
        FOp::Mul => soft_mul(a, b, f, rnd),
        FOp::Fma => soft_fma(a, b, c, f, rnd),
        FOp::Div => soft_div(a, b, f, rnd),
        FOp::Sqrt => soft_sqrt(a, f, rnd),
        FOp::Rcp => soft_div(1.0, a, f, rnd),
    }
}

// ------------------------------------------------------------------------------------------------
// Float arithmetic with rounding modes
// ------------------------------------------------------------------------------------------------

/// `add/sub/mul/fma/div/sqrt/rcp{.rnd}{.ftz}.f32`. Operands not used by `op` are ignored
/// (`b`, `c` for sqrt/rcp; `c` except for fma).
///
/// Every mode is correctly rounded: `.rn` uses the host's IEEE f32 operations; `.rz/.rm/.rp`
/// add/sub/mul/fma use exact f64 arithmetic plus TwoSum to find the rounding direction, and
/// div/sqrt/rcp (and `.rna`, which PTX arithmetic does not have) use the exact soft-float core.
/// `.ftz` flushes
/// subnormal inputs before, and subnormal results after, the operation. NaN results are the
/// canonical `0x7fffffff`. Integer-rounding variants are treated as their float direction.
#[inline]
pub fn f32_op(op: FOp, a: f32, b: f32, c: f32, rnd: Rounding, ftz: bool) -> f32 {
    let (a, b, c) = if ftz {
        (ftz32(a), ftz32(b), ftz32(c))
    } else {
        (a, b, c)
    };
    let r = if rnd.direction() == Rounding::Rn {
        match op {
            FOp::Add => a + b,
            FOp::Sub => a - b,
            FOp::Mul => a * b,
            FOp::Fma => a.mul_add(b, c),
            FOp::Div => a / b,
            FOp::Sqrt => a.sqrt(),
            FOp::Rcp => 1.0 / a,
        }
    } else if let Some(r) = f32_directed(op, a, b, c, rnd) {
        r
    } else {
        f32::from_bits(soft(op, a as f64, b as f64, c as f64, F32, rnd) as u32)
    };
    ftz_if(canon32(r), ftz)
}

/// The next f32 toward +Inf (`-0` and `+0` both step to the smallest positive subnormal).
#[inline]
fn next_up32(x: f32) -> f32 {
    let b = x.to_bits();
    if x == 0.0 {
        f32::from_bits(1)
    } else if b >> 31 == 0 {
        f32::from_bits(b + 1)
    } else {
        f32::from_bits(b - 1)
    }
}

/// The next f32 toward -Inf.
#[inline]
fn next_down32(x: f32) -> f32 {
    -next_up32(-x)
}

/// Fast path of [`f32_op`] for `.rz/.rm/.rp` add, sub, mul and fma: the exact result is `s + e`
/// with `s` its f64 rounding and `e` the error (zero for products of two f32, TwoSum otherwise).
/// Since every f32 is an f64, the exact value lies in the same f32 interval as `s` unless `s`
/// itself is an f32, and then the sign of `e` picks the side. `None` for special or zero results
/// and for the other operations (the soft-float core handles them).
#[inline]
fn f32_directed(op: FOp, a: f32, b: f32, c: f32, rnd: Rounding) -> Option<f32> {
    let rnd = rnd.direction();
    if !matches!(rnd, Rounding::Rz | Rounding::Rm | Rounding::Rp) {
        return None;
    }
    let (s, e) = match op {
        FOp::Add => two_sum(a as f64, b as f64),
        FOp::Sub => two_sum(a as f64, -(b as f64)),
        FOp::Mul => (a as f64 * b as f64, 0.0),
        FOp::Fma => two_sum(a as f64 * b as f64, c as f64),
        _ => return None,
    };
    if !s.is_finite() || s == 0.0 {
        return None;
    }
    let r = s as f32;
    let rs = r as f64;
    let above = if rs == s {
        if e == 0.0 {
            return Some(r);
        }
        e > 0.0
    } else {
        rs < s
    };
    let (lo, hi) = if above {
        (r, next_up32(r))
    } else {
        (next_down32(r), r)
    };
    Some(match rnd {
        Rounding::Rm => lo,
        Rounding::Rp => hi,
        _ => {
            if s > 0.0 {
                lo
            } else {
                hi
            }
        }
    })
}

/// TwoSum: `a + b == s + e` exactly, `s = a + b` rounded (finite inputs, no overflow).
#[inline]
fn two_sum(a: f64, b: f64) -> (f64, f64) {
    let s = a + b;
    let bb = s - a;
    (s, (a - (s - bb)) + (b - bb))
}

/// `add/sub/mul/fma/div/sqrt/rcp{.rnd}.f64`, correctly rounded in every mode (`.rn` via the host's
/// IEEE operations, `mul_add` for fma; `.rz/.rm/.rp` via the exact soft-float path, subnormal
/// results included). No flushing: `.ftz` does not apply to f64. NaN results are [`NAN64`].
#[inline]
pub fn f64_op(op: FOp, a: f64, b: f64, c: f64, rnd: Rounding) -> f64 {
    let r = if rnd.direction() == Rounding::Rn {
        match op {
            FOp::Add => a + b,
            FOp::Sub => a - b,
            FOp::Mul => a * b,
            FOp::Fma => a.mul_add(b, c),
            FOp::Div => a / b,
            FOp::Sqrt => a.sqrt(),
            FOp::Rcp => 1.0 / a,
        }
    } else {
        f64::from_bits(soft(op, a, b, c, F64, rnd))
    };
    canon64(r)
}

/// PTX `min`/`max` rule shared by both widths: a NaN operand yields the other operand, two NaNs
/// the canonical NaN, and otherwise `a` when `a_wins(a, b)` (which orders -0 before +0).
#[inline(always)]
fn min_max<T: Copy>(a: T, b: T, nan: T, is_nan: fn(T) -> bool, a_wins: impl Fn(T, T) -> bool) -> T {
    match (is_nan(a), is_nan(b)) {
        (true, true) => nan,
        (true, false) => b,
        (false, true) => a,
        _ if a_wins(a, b) => a,
        _ => b,
    }
}

/// `min{.ftz}.f32`: a NaN operand is ignored unless both are NaN (then the canonical NaN);
/// `-0.0` is smaller than `+0.0`. `.ftz` flushes subnormal inputs first.
#[inline]
pub fn fmin32(a: f32, b: f32, ftz: bool) -> f32 {
    let (a, b) = (ftz_if(a, ftz), ftz_if(b, ftz));
    min_max(a, b, f32::from_bits(NAN32), f32::is_nan, |a, b| {
        a < b || (a == b && a.is_sign_negative())
    })
}

/// `max{.ftz}.f32`: a NaN operand is ignored unless both are NaN (then the canonical NaN);
/// `+0.0` is larger than `-0.0`. `.ftz` flushes subnormal inputs first.
#[inline]
pub fn fmax32(a: f32, b: f32, ftz: bool) -> f32 {
    let (a, b) = (ftz_if(a, ftz), ftz_if(b, ftz));
    min_max(a, b, f32::from_bits(NAN32), f32::is_nan, |a, b| {
        a > b || (a == b && a.is_sign_positive())
    })
}

/// `min.f64`: NaN rules as [`fmin32`] (both NaN → [`NAN64`]); `-0.0 < +0.0`.
#[inline]
pub fn fmin64(a: f64, b: f64) -> f64 {
    min_max(a, b, f64::from_bits(NAN64), f64::is_nan, |a, b| {
        a < b || (a == b && a.is_sign_negative())
    })
}

/// `max.f64`: NaN rules as [`fmax32`] (both NaN → [`NAN64`]); `+0.0 > -0.0`.
#[inline]
pub fn fmax64(a: f64, b: f64) -> f64 {
    min_max(a, b, f64::from_bits(NAN64), f64::is_nan, |a, b| {
        a > b || (a == b && a.is_sign_positive())
    })
}

// ------------------------------------------------------------------------------------------------
// Approximate instructions
// ------------------------------------------------------------------------------------------------

/// `ex2.approx{.ftz}.f32`: 2^a (documented: ≤ 2 ulp). Returns the correctly rounded value of the
/// f64 `exp2`. `ex2(-Inf) = +0`, `ex2(±0) = 1`, `ex2(+Inf) = +Inf`, NaN → canonical NaN.
#[inline]
pub fn ex2_approx_f32(a: f32, ftz: bool) -> f32 {
    let a = ftz_if(a, ftz);
    if a.is_nan() {
        return f32::from_bits(NAN32);
    }
    ftz_if(libm::exp2(a as f64) as f32, ftz)
}

/// `lg2.approx{.ftz}.f32`: log2(a) (documented: 2^-22 absolute on (0.5, 2), 2^-22 relative
/// elsewhere). `lg2(±0) = -Inf`, `lg2(+Inf) = +Inf`, negative or NaN → canonical NaN. With `.ftz`
/// a subnormal input counts as zero (→ -Inf, whatever its sign).
#[inline]
pub fn lg2_approx_f32(a: f32, ftz: bool) -> f32 {
    let a = ftz_if(a, ftz);
    if a.is_nan() || a < 0.0 {
        return f32::from_bits(NAN32);
    }
    libm::log2(a as f64) as f32
}

/// `sin.approx{.ftz}.f32` (documented: 2^-20.5 absolute on [-2π, 2π]). Returns the correctly
/// rounded sine for every finite input; `sin(±Inf)` and NaN → canonical NaN; `sin(-0) = -0`.
#[inline]
pub fn sin_approx_f32(a: f32, ftz: bool) -> f32 {
    let a = ftz_if(a, ftz);
    if !a.is_finite() {
        return f32::from_bits(NAN32);
    }
    ftz_if(libm::sin(a as f64) as f32, ftz)
}

/// `cos.approx{.ftz}.f32` (documented: 2^-20.5 absolute on [-2π, 2π]). Returns the correctly
/// rounded cosine for every finite input; `cos(±Inf)` and NaN → canonical NaN.
#[inline]
pub fn cos_approx_f32(a: f32, ftz: bool) -> f32 {
    let a = ftz_if(a, ftz);
    if !a.is_finite() {
        return f32::from_bits(NAN32);
    }
    ftz_if(libm::cos(a as f64) as f32, ftz)
}

/// `rsqrt.approx{.ftz}.f32`: 1/sqrt(a) (documented: 2^-22.9 relative). `rsqrt(±0) = ±Inf`,
/// `rsqrt(+Inf) = +0`, negative or NaN → canonical NaN.
#[inline]
pub fn rsqrt_approx_f32(a: f32, ftz: bool) -> f32 {
    let a = ftz_if(a, ftz);
    if a.is_nan() || a < 0.0 {
        return f32::from_bits(NAN32);
    }
    if a == 0.0 {
        return copysign32(a, f32::INFINITY);
    }
    ftz_if((1.0 / (a as f64).sqrt()) as f32, ftz)
}

/// `rcp.approx{.ftz}.f32`: 1/a (documented: ≤ 1 ulp); returns the correctly rounded reciprocal.
/// `rcp(±0) = ±Inf`, `rcp(±Inf) = ±0`. With `.ftz`, a subnormal input gives ±Inf and a subnormal
/// result (|a| > 2^126) gives ±0.
#[inline]
pub fn rcp_approx_f32(a: f32, ftz: bool) -> f32 {
    let a = ftz_if(a, ftz);
    ftz_if(canon32(1.0 / a), ftz)
}

/// `sqrt.approx{.ftz}.f32` (documented: 2^-23 relative); returns the correctly rounded square
/// root. `sqrt(-0) = -0`, negative or NaN → canonical NaN.
#[inline]
pub fn sqrt_approx_f32(a: f32, ftz: bool) -> f32 {
    let a = ftz_if(a, ftz);
    ftz_if(canon32(a.sqrt()), ftz)
}

/// `tanh.approx.f32` (documented: 2^-11 relative; subnormals pass through). Returns the correctly
/// rounded tanh: `tanh(±Inf) = ±1`, `tanh(±0) = ±0`, NaN → canonical NaN. PTX has no `.ftz`
/// variant; `ftz = true` flushes the input and result anyway.
#[inline]
pub fn tanh_approx_f32(a: f32, ftz: bool) -> f32 {
    let a = ftz_if(a, ftz);
    if a.is_nan() {
        return f32::from_bits(NAN32);
    }
    ftz_if(libm::tanh(a as f64) as f32, ftz)
}

/// `div.approx{.ftz}.f32`: computed as documented, `a * (1/b)`, with the reciprocal correctly
/// rounded (≤ 2 ulp for |b| in [2^-126, 2^126]). For 2^126 < |b| < 2^128 the reciprocal is
/// flushed to zero, so the result is ±0, or NaN when `a` is infinite (as the ISA documents).
#[inline]
pub fn div_approx_f32(a: f32, b: f32, ftz: bool) -> f32 {
    let (a, b) = (ftz_if(a, ftz), ftz_if(b, ftz));
    let r = if b.is_finite() && b.abs() > f32::from_bits(0x7e80_0000) {
        copysign32(b, 0.0)
    } else {
        1.0 / b
    };
    if r.is_infinite() && b != 0.0 && a.is_finite() {
        // 1/b overflows for divisors below 2^-128: the hardware scales instead; so do we.
        return ftz_if(canon32((a as f64 / b as f64) as f32), ftz);
    }
    ftz_if(canon32(a * r), ftz)
}

/// `div.full{.ftz}.f32` (documented: ≤ 2 ulp over the full range); returns the correctly rounded
/// quotient.
#[inline]
pub fn div_full_f32(a: f32, b: f32, ftz: bool) -> f32 {
    let (a, b) = (ftz_if(a, ftz), ftz_if(b, ftz));
    ftz_if(canon32(a / b), ftz)
}

/// Rounds a finite positive-exponent f64 to the "1.11.20" format of the f64 approximations:
/// the upper 32 bits, rounded to nearest, lower 32 bits zero.
#[inline]
fn round_hi32(x: f64) -> f64 {
    let b = x.to_bits();
    f64::from_bits(b.wrapping_add(0x8000_0000) & 0xffff_ffff_0000_0000)
}

/// `rcp.approx.ftz.f64`: the documented "gross approximation": only `a[63:32]` (sign, exponent,
/// 20 fraction bits) is used, the reciprocal of that is rounded to nearest in the same 1.11.20
/// format, and `d[31:0] = 0`. Subnormal inputs count as zero (→ ±Inf) and subnormal results are
/// flushed to ±0; `rcp(±Inf) = ±0`; NaN → `0x7fffffff_00000000`.
#[inline]
pub fn rcp_approx_ftz_f64(a: f64) -> f64 {
    if a.is_nan() {
        return f64::from_bits(0x7fff_ffff_0000_0000);
    }
    if a.is_subnormal() || a == 0.0 {
        return copysign64(a, f64::INFINITY);
    }
    let hi = f64::from_bits(a.to_bits() & 0xffff_ffff_0000_0000);
    let r = 1.0 / hi;
    if r.abs() < f64::MIN_POSITIVE {
        return copysign64(a, 0.0);
    }
    round_hi32(r)
}

/// `rsqrt.approx.f64`: 1/sqrt(a) to within an ulp (computed as `1 / sqrt(a)` in f64).
/// `rsqrt(±0) = ±Inf`, `rsqrt(+Inf) = +0`, negative or NaN → [`NAN64`]. Subnormal inputs are
/// honoured. (`rsqrt.approx.ftz.f64` callers may flush subnormal inputs to zero first.)
#[inline]
pub fn rsqrt_approx_f64(a: f64) -> f64 {
    if a.is_nan() || a < 0.0 {
        return f64::from_bits(NAN64);
    }
    if a == 0.0 {
        return copysign64(a, f64::INFINITY);
    }
    1.0 / a.sqrt()
}

// ------------------------------------------------------------------------------------------------
// Half-precision and narrowing conversions
// ------------------------------------------------------------------------------------------------

/// f32 → f16 bits with rounding mode `rnd` (integer variants use their direction); overflow
/// follows the mode (`.rn` → Inf, `.rz` → 65504, ...), subnormal f16 results are kept.
/// NaN → `0x7fff`.
#[inline]
pub fn f32_to_f16_bits(x: f32, rnd: Rounding) -> u16 {
    if rnd.direction() == Rounding::Rn {
        return f32_to_f16_rn(x);
    }
    encode(x as f64, F16, rnd) as u16
}

/// f32 → f16, round to nearest even, on the bits.
#[inline]
fn f32_to_f16_rn(x: f32) -> u16 {
    let b = x.to_bits();
    let sign = ((b >> 16) & 0x8000) as u16;
    let a = b & 0x7fff_ffff;
    if a > 0x7f80_0000 {
        return NAN16;
    }
    if a >= 0x477f_f000 {
        // >= 65520 (the midpoint between 65504 and 2^16), Inf included.
        return sign | 0x7c00;
    }
    if a >= 0x3880_0000 {
        // Normal f16: round the fraction at bit 13 (a carry may bump the exponent), rebias.
        let r = a + 0xfff + ((a >> 13) & 1);
        return sign | ((r >> 13) - (112 << 10)) as u16;
    }
    if a <= 0x3300_0000 {
        // <= 2^-25: rounds to zero (2^-25 itself is a tie to the even zero).
        return sign;
    }
    // Subnormal f16: units of 2^-24.
    let m = (a & 0x007f_ffff) | 0x0080_0000;
    let shift = 126 - (a >> 23);
    let q = m >> shift;
    let rem = m & ((1 << shift) - 1);
    let half = 1 << (shift - 1);
    let up = rem > half || (rem == half && q & 1 == 1);
    sign | (q + up as u32) as u16
}

/// f16 bits → f32 (exact). NaN → the canonical f32 NaN.
#[inline]
pub fn f16_bits_to_f32(h: u16) -> f32 {
    canon32(decode(h as u64, F16) as f32)
}

/// f32 → bf16 bits with rounding mode `rnd`. NaN → `0x7fff`.
#[inline]
pub fn f32_to_bf16_bits(x: f32, rnd: Rounding) -> u16 {
    if rnd.direction() == Rounding::Rn && !x.is_nan() {
        // Round to nearest even on the upper half; carries into the exponent (and up to Inf)
        // are exactly IEEE rounding.
        let b = x.to_bits();
        return (b.wrapping_add(0x7fff + ((b >> 16) & 1)) >> 16) as u16;
    }
    encode(x as f64, BF16, rnd) as u16
}

/// bf16 bits → f32 (exact). NaN → the canonical f32 NaN.
#[inline]
pub fn bf16_bits_to_f32(h: u16) -> f32 {
    canon32(f32::from_bits((h as u32) << 16))
}

/// f64 → f32 with rounding mode `rnd` (`cvt.rz.f32.f64` etc.), correctly rounded, subnormal
/// results kept (no flushing). NaN → canonical f32 NaN.
#[inline]
pub fn f64_to_f32_rounded(x: f64, rnd: Rounding) -> f32 {
    if rnd.direction() == Rounding::Rn {
        return canon32(x as f32);
    }
    f32::from_bits(encode(x, F32, rnd) as u32)
}

// ------------------------------------------------------------------------------------------------
// Type classification, compare, cvt, testp
// ------------------------------------------------------------------------------------------------

#[derive(Clone, Copy)]
enum Kind {
    Int { signed: bool, bits: u32 },
    Float(Fmt),
}

/// How a type behaves arithmetically. `.pred` is a 1-bit unsigned integer, `.b128` is treated as
/// a 64-bit unsigned integer (the value is a u64), `.f16x2`/`.bf16x2` as their low half.
#[inline]
fn kind(ty: Type) -> Kind {
    match ty {
        Type::Pred => Kind::Int {
            signed: false,
            bits: 1,
        },
        Type::B8 | Type::U8 => Kind::Int {
            signed: false,
            bits: 8,
        },
        Type::B16 | Type::U16 => Kind::Int {
            signed: false,
            bits: 16,
        },
        Type::B32 | Type::U32 => Kind::Int {
            signed: false,
            bits: 32,
        },
        Type::B64 | Type::U64 | Type::B128 => Kind::Int {
            signed: false,
            bits: 64,
        },
        Type::S8 => Kind::Int {
            signed: true,
            bits: 8,
        },
        Type::S16 => Kind::Int {
            signed: true,
            bits: 16,
        },
        Type::S32 => Kind::Int {
            signed: true,
            bits: 32,
        },
        Type::S64 => Kind::Int {
            signed: true,
            bits: 64,
        },
        Type::F16 | Type::F16x2 => Kind::Float(F16),
        Type::Bf16 | Type::Bf16x2 => Kind::Float(BF16),
        Type::F32 => Kind::Float(F32),
        Type::F64 => Kind::Float(F64),
    }
}

#[inline]
fn fcmp<T: PartialOrd + Copy>(op: CmpOp, a: T, b: T) -> bool {
    #[allow(clippy::eq_op)]
    let unord = a != a || b != b;
    match op {
        CmpOp::Eq => a == b,
        CmpOp::Ne => !unord && a != b,
        CmpOp::Lt | CmpOp::Lo => a < b,
        CmpOp::Le | CmpOp::Ls => a <= b,
        CmpOp::Gt | CmpOp::Hi => a > b,
        CmpOp::Ge | CmpOp::Hs => a >= b,
        CmpOp::Equ => unord || a == b,
        CmpOp::Neu => unord || a != b,
        CmpOp::Ltu => unord || a < b,
        CmpOp::Leu => unord || a <= b,
        CmpOp::Gtu => unord || a > b,
        CmpOp::Geu => unord || a >= b,
        CmpOp::Num => !unord,
        CmpOp::Nan => unord,
    }
}

/// `setp`/`set` comparison of two values of type `ty`.
///
/// * Floats (f16, bf16, f32, f64): ordered operators (`eq ne lt le gt ge`) are false when either
///   operand is NaN (`ne` included); the `u` variants are true; `num`/`nan` test NaN-ness;
///   `-0.0 == +0.0`. (`lo ls hi hs` are not legal on floats and act as `lt le gt ge`.) Callers of
///   `setp.ftz.f32` flush the operands with [`ftz32`] first.
/// * Integers: `lt le gt ge` are signed for `.sN` and unsigned for `.uN`/`.bN`; `lo ls hi hs` are
///   always unsigned; `eq ne` compare the low `N` bits. The `u` variants act as the ordered ones,
///   `num` is true and `nan` false.
#[inline]
pub fn compare(op: CmpOp, ty: Type, a: u64, b: u64) -> bool {
    match kind(ty) {
        Kind::Float(f) if f == F32 => fcmp(op, f32::from_bits(a as u32), f32::from_bits(b as u32)),
        Kind::Float(f) if f == F64 => fcmp(op, f64::from_bits(a), f64::from_bits(b)),
        Kind::Float(f) => fcmp(
            op,
            decode(a & f.width_mask(), f),
            decode(b & f.width_mask(), f),
        ),
        Kind::Int { signed, bits } => {
            let (ua, ub) = (a & mask(bits), b & mask(bits));
            let (sa, sb) = (sext(a, bits), sext(b, bits));
            match op {
                CmpOp::Eq | CmpOp::Equ => ua == ub,
                CmpOp::Ne | CmpOp::Neu => ua != ub,
                CmpOp::Lo => ua < ub,
                CmpOp::Ls => ua <= ub,
                CmpOp::Hi => ua > ub,
                CmpOp::Hs => ua >= ub,
                CmpOp::Lt | CmpOp::Ltu => {
                    if signed {
                        sa < sb
                    } else {
                        ua < ub
                    }
                }
                CmpOp::Le | CmpOp::Leu => {
                    if signed {
                        sa <= sb
                    } else {
                        ua <= ub
                    }
                }
                CmpOp::Gt | CmpOp::Gtu => {
                    if signed {
                        sa > sb
                    } else {
                        ua > ub
                    }
                }
                CmpOp::Ge | CmpOp::Geu => {
                    if signed {
                        sa >= sb
                    } else {
                        ua >= ub
                    }
                }
                CmpOp::Num => true,
                CmpOp::Nan => false,
            }
        }
    }
}

/// Rounds an f64 to an integral value with the direction of `rnd`.
#[inline]
fn round_integral(x: f64, rnd: Rounding) -> f64 {
    match rnd.direction() {
        Rounding::Rn => x.round_ties_even(),
        Rounding::Rz => x.trunc(),
        Rounding::Rm => x.floor(),
        Rounding::Rp => x.ceil(),
        _ => x.round(), // Rna: ties away from zero
    }
}

/// `cvt{.rnd}{.ftz}{.sat}.dst.src` for every pair of `u8..u64`, `s8..s64`, `b8..b64`, f16, bf16,
/// f32 and f64. `value` holds the source bits (extra high bits are ignored); the result holds the
/// destination bits **masked to the destination width** (a signed result narrower than 64 bits
/// is returned zero-extended in its width; the caller sign-extends for a wider register).
///
/// * **int → int**: the source is sign-extended (signed source) or zero-extended to infinite
///   width, then truncated to the destination; with `.sat` it is clamped to the destination range
///   first (e.g. `cvt.sat.u8.s32` of -5 → 0).
/// * **int → float**: rounded with `rnd` (default `.rn`; integer variants use their direction;
///   `.rna` supported). `.sat` clamps the result to [0, 1].
/// * **float → int**: rounded to an integer with `rnd` (`Rn/Rz/Rm/Rp` act as `.rni/.rzi/.rmi/.rpi`;
///   `.rna` rounds ties away; `None`, which is not legal PTX, truncates like a C cast) and always
///   clamped to the destination range (`.sat` is implied). NaN gives 0, except when the source is
///   f64 or the destination is 64 bits wide, where it gives `1 << (N-1)` (`N` = destination
///   width). `.ftz` flushes a subnormal f32 source to zero first (matters for `.rpi/.rmi`).
/// * **float → float**: narrowing is rounded once with `rnd` (default `.rn`), overflow and
///   subnormal results per IEEE for that mode; widening is exact. An integer-rounding modifier
///   rounds the value to an integral value first (`cvt.rni.f32.f32`). `.ftz` flushes an f32
///   source and an f32 result (never f16/bf16/f64 ones). `.sat` clamps the result to [0.0, 1.0]
///   with NaN and -0.0 → +0.0. NaN results are the destination's canonical NaN.
pub fn cvt(value: u64, dst: Type, src: Type, rnd: Option<Rounding>, ftz: bool, sat: bool) -> u64 {
    match (kind(src), kind(dst)) {
        (
            Kind::Int {
                signed: ss,
                bits: sb,
            },
            Kind::Int {
                signed: ds,
                bits: db,
            },
        ) => {
            let v: i128 = if ss {
                sext(value, sb) as i128
            } else {
                (value & mask(sb)) as i128
            };
            let v = if sat {
                v.clamp(int_min(ds, db), int_max(ds, db))
            } else {
                v
            };
            (v as u64) & mask(db)
        }
        (
            Kind::Int {
                signed: ss,
                bits: sb,
            },
            Kind::Float(df),
        ) => {
            let v: i128 = if ss {
                sext(value, sb) as i128
            } else {
                (value & mask(sb)) as i128
            };
            let rnd = rnd.unwrap_or(Rounding::Rn);
            let bits = if v == 0 {
                0
            } else if rnd.direction() == Rounding::Rn && df == F32 {
                (if v < 0 {
                    v as i64 as f32
                } else {
                    v as u64 as f32
                })
                .to_bits() as u64
            } else if rnd.direction() == Rounding::Rn && df == F64 {
                (if v < 0 {
                    v as i64 as f64
                } else {
                    v as u64 as f64
                })
                .to_bits()
            } else {
                round_pack(v < 0, v.unsigned_abs(), 0, false, df, rnd)
            };
            if sat {
                saturate_bits(bits, df)
            } else {
                bits
            }
        }
        (
            Kind::Float(sf),
            Kind::Int {
                signed: ds,
                bits: db,
            },
        ) => {
            if sf == F32 && db >= 32 {
                // Fast path: f32 → 32/64-bit integers, rounded in i64 arithmetic.
                let x = f32::from_bits(value as u32);
                let x = if ftz { ftz32(x) } else { x };
                if x.is_nan() {
                    return if db == 64 { 1 << 63 } else { 0 };
                }
                let r = f32_to_i64_rounded(x, rnd.unwrap_or(Rounding::Rzi));
                return match (ds, db) {
                    (true, 32) => r.clamp(i32::MIN as i64, i32::MAX as i64) as u32 as u64,
                    (false, 32) => r.clamp(0, u32::MAX as i64) as u64,
                    (true, _) => r as u64,
                    // At or above 2^62 the value is integral: the saturating cast is exact.
                    (false, _) if x >= 4_611_686_018_427_387_904.0 => x as u64,
                    (false, _) => r.max(0) as u64,
                };
            }
            let mut x = decode(value & sf.width_mask(), sf);
            if ftz && sf == F32 {
                x = ftz32(x as f32) as f64;
            }
            if x.is_nan() {
                return if sf == F64 || db == 64 {
                    1u64 << (db - 1)
                } else {
                    0
                };
            }
            let r = round_integral(x, rnd.unwrap_or(Rounding::Rzi));
            let v: i128 = if ds {
                let lim = pow2(db as i32 - 1);
                if r >= lim {
                    int_max(true, db)
                } else if r < -lim {
                    int_min(true, db)
                } else {
                    r as i64 as i128
                }
            } else if r >= pow2(db as i32) {
                int_max(false, db)
            } else if r < 0.0 {
                0
            } else {
                r as u64 as i128
            };
            (v as u64) & mask(db)
        }
        (Kind::Float(sf), Kind::Float(df)) => {
            let mut x = decode(value & sf.width_mask(), sf);
            if ftz && sf == F32 {
                x = ftz32(x as f32) as f64;
            }
            let rnd = match rnd {
                Some(r) if r.is_integer() => {
                    x = round_integral(x, r);
                    Rounding::Rn
                }
                Some(r) => r,
                None => Rounding::Rn,
            };
            let mut bits = if sf == F32 && df == F16 && rnd.direction() == Rounding::Rn {
                f32_to_f16_rn(x as f32) as u64
            } else {
                encode(x, df, rnd)
            };
            if ftz && df == F32 {
                bits = ftz32(f32::from_bits(bits as u32)).to_bits() as u64;
            }
            if sat {
                saturate_bits(bits, df)
            } else {
                bits
            }
        }
    }
}

/// Rounds a non-NaN f32 to an integer with the direction of `rnd`, saturated to the i64 range
/// (values beyond ±2^62 are already integral and only need saturation).
#[inline]
fn f32_to_i64_rounded(x: f32, rnd: Rounding) -> i64 {
    let xd = x as f64;
    if xd.abs() >= 4_611_686_018_427_387_904.0 {
        return xd as i64; // saturating cast: ±Inf and huge values clamp
    }
    let t = xd as i64; // truncation toward zero
    match rnd.direction() {
        Rounding::Rz => t,
        Rounding::Rm => t - (xd < t as f64) as i64,
        Rounding::Rp => t + (xd > t as f64) as i64,
        Rounding::Rn => {
            // Below 2^52, adding and subtracting 2^52 rounds to an integer, ties to even.
            const M: f64 = 4_503_599_627_370_496.0;
            if xd.abs() < M {
                ((xd.abs() + M) - M).copysign(xd) as i64
            } else {
                t
            }
        }
        _ => (xd + 0.5f64.copysign(xd)) as i64, // .rna: ties away (exact in f64)
    }
}

/// `.sat` on a float result: clamp to [0.0, 1.0]; NaN and -0.0 → +0.0.
#[inline]
fn saturate_bits(bits: u64, f: Fmt) -> u64 {
    let x = decode(bits, f);
    if x.is_nan() || x <= 0.0 {
        0
    } else if x >= 1.0 {
        encode(1.0, f, Rounding::Rn)
    } else {
        bits
    }
}

/// `testp.op.type a` for f32 and f64 (f16/bf16 also accepted). `finite`: not Inf/NaN;
/// `infinite`: ±Inf; `number`: not NaN; `notanumber`: NaN; `normal`: finite and not subnormal
/// (as documented, ±0 counts as normal); `subnormal`: non-zero with a zero exponent field.
/// Unknown `op` strings give `false`.
#[inline]
pub fn testp(op: &str, ty: Type, a: u64) -> bool {
    match TestpOp::parse(op) {
        Some(t) => testp_op(t, ty, a),
        None => false,
    }
}

/// [`testp`] with a pre-parsed operator.
#[inline]
pub fn testp_op(op: TestpOp, ty: Type, a: u64) -> bool {
    let f = match kind(ty) {
        Kind::Float(f) => f,
        Kind::Int { bits: 64, .. } => F64,
        Kind::Int { .. } => F32,
    };
    let e = (a >> f.mant) & f.exp_ones();
    let m = a & f.frac_mask();
    let special = e == f.exp_ones();
    match op {
        TestpOp::Finite => !special,
        TestpOp::Infinite => special && m == 0,
        TestpOp::Number => !(special && m != 0),
        TestpOp::NotANumber => special && m != 0,
        TestpOp::Normal => !(special || (e == 0 && m != 0)),
        TestpOp::Subnormal => e == 0 && m != 0,
    }
}

// ------------------------------------------------------------------------------------------------
// Integer helpers
// ------------------------------------------------------------------------------------------------

/// Low-`bits` mask (`bits` outside 1..=64 counts as 64).
#[inline]
fn mask(bits: u32) -> u64 {
    if bits == 0 || bits >= 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    }
}

/// Sign-extends the low `bits` bits of `a` (`bits` outside 1..=64 counts as 64).
#[inline]
fn sext(a: u64, bits: u32) -> i64 {
    if bits == 0 || bits >= 64 {
        a as i64
    } else {
        ((a << (64 - bits)) as i64) >> (64 - bits)
    }
}

#[inline]
fn width(bits: u32) -> u32 {
    if bits == 0 || bits > 64 {
        64
    } else {
        bits
    }
}

#[inline]
fn int_min(signed: bool, bits: u32) -> i128 {
    if signed {
        -(1i128 << (width(bits) - 1))
    } else {
        0
    }
}

#[inline]
fn int_max(signed: bool, bits: u32) -> i128 {
    if signed {
        (1i128 << (width(bits) - 1)) - 1
    } else {
        (1i128 << width(bits)) - 1
    }
}

/// `mul.hi.{s,u}{16,32,64}`: the high `bits` bits of the 2·`bits`-bit product, masked to `bits`.
#[inline]
pub fn mul_hi(a: u64, b: u64, signed: bool, bits: u32) -> u64 {
    let bits = width(bits);
    let p = if signed {
        ((sext(a, bits) as i128 * sext(b, bits) as i128) >> bits) as u64
    } else {
        (((a & mask(bits)) as u128 * (b & mask(bits)) as u128) >> bits) as u64
    };
    p & mask(bits)
}

/// `mul.wide.{s,u}{16,32}`: the full 2·`bits`-bit product of the low `bits` bits, masked to
/// 2·`bits` (bits = 32 → 64-bit result; 16 → 32-bit). With `bits = 64` the low 64 bits of the
/// product are returned.
#[inline]
pub fn mul_wide(a: u64, b: u64, signed: bool, bits: u32) -> u64 {
    let bits = width(bits);
    let p = if signed {
        (sext(a, bits) as i128 * sext(b, bits) as i128) as u64
    } else {
        ((a & mask(bits)) as u128 * (b & mask(bits)) as u128) as u64
    };
    if bits >= 32 {
        p
    } else {
        p & mask(2 * bits)
    }
}

/// `div.{s,u}N`, truncating toward zero, masked to `bits`. Division by zero is "unspecified,
/// machine-specific" in PTX; here it returns all ones (unsigned `MAX`, signed -1).
/// `INT_MIN / -1` wraps to `INT_MIN`. Never panics.
#[inline]
pub fn div_int(a: u64, b: u64, signed: bool, bits: u32) -> u64 {
    let m = mask(bits);
    if b & m == 0 {
        return m;
    }
    if signed {
        (sext(a, bits).wrapping_div(sext(b, bits)) as u64) & m
    } else {
        (a & m) / (b & m)
    }
}

/// `rem.{s,u}N` (C semantics: the sign follows the dividend), masked to `bits`. Remainder by
/// zero returns `a` (masked); `INT_MIN % -1` is 0. Never panics.
#[inline]
pub fn rem_int(a: u64, b: u64, signed: bool, bits: u32) -> u64 {
    let m = mask(bits);
    if b & m == 0 {
        return a & m;
    }
    if signed {
        (sext(a, bits).wrapping_rem(sext(b, bits)) as u64) & m
    } else {
        (a & m) % (b & m)
    }
}

/// `shl.bN`: shift amounts ≥ `bits` give 0. Masked to `bits`.
#[inline]
pub fn shl(a: u64, n: u64, bits: u32) -> u64 {
    if n >= width(bits) as u64 {
        0
    } else {
        (a << n) & mask(bits)
    }
}

/// `shr.{s,u,b}N`: shift amounts ≥ `bits` give 0 (unsigned) or the sign fill (signed).
/// Masked to `bits`.
#[inline]
pub fn shr(a: u64, n: u64, bits: u32, signed: bool) -> u64 {
    let w = width(bits) as u64;
    if signed {
        let s = sext(a, bits);
        let n = if n >= w { 63 } else { n };
        ((s >> n) as u64) & mask(bits)
    } else if n >= w {
        0
    } else {
        (a & mask(bits)) >> n
    }
}

/// `bfe.{s,u}{32,64} d, a, pos, len`: `pos = pos & 0xff`, `len = len & 0xff`; bit `i` of the
/// result is `a[pos+i]` for `i < len && pos+i <= msb`, otherwise the sign bit, which is 0 for
/// unsigned or `len == 0` and `a[min(pos+len-1, msb)]` for signed.
#[inline]
pub fn bfe(a: u64, pos: u32, len: u32, signed: bool, bits: u32) -> u64 {
    let w = width(bits);
    let m = mask(w);
    let a = a & m;
    let (pos, len) = (pos & 0xff, len & 0xff);
    if len == 0 {
        return 0;
    }
    let eff = if pos >= w { 0 } else { len.min(w - pos) };
    let field = if eff == 0 { 0 } else { (a >> pos) & mask(eff) };
    if signed {
        let sbit_pos = (pos + len - 1).min(w - 1);
        if (a >> sbit_pos) & 1 == 1 {
            let fill = if eff == 0 { m } else { m & !mask(eff) };
            return field | if eff >= w { 0 } else { fill };
        }
    }
    field
}

/// `bfi.b{32,64} d, f, b, pos, len` (PTX operands `a, b, c, d` = field `f`, base `b`, `pos`,
/// `len`): `b` with bits `[pos, pos+len)` (stopping at the msb) replaced by the low bits of `f`.
/// `pos` and `len` use their low 8 bits. Masked to `bits`.
#[inline]
pub fn bfi(f: u64, b: u64, pos: u32, len: u32, bits: u32) -> u64 {
    let w = width(bits);
    let m = mask(w);
    let (pos, len) = (pos & 0xff, len & 0xff);
    if pos >= w || len == 0 {
        return b & m;
    }
    let eff = len.min(w - pos);
    let fm = mask(eff) << pos;
    ((b & !fm) | ((f << pos) & fm)) & m
}

/// `bfind{.shiftamt}.{s,u}{32,64}`: position of the most significant 1 bit (unsigned) or of the
/// most significant bit that differs from the sign (signed); `0xffffffff` when there is none.
/// `.shiftamt` returns `bits-1-pos` instead (still `0xffffffff` when not found).
#[inline]
pub fn bfind(a: u64, signed: bool, bits: u32, shiftamt: bool) -> u32 {
    let w = width(bits);
    let m = mask(w);
    let mut x = a & m;
    if signed && (x >> (w - 1)) & 1 == 1 {
        x = !x & m;
    }
    if x == 0 {
        return 0xffff_ffff;
    }
    let pos = 63 - x.leading_zeros();
    if shiftamt {
        w - 1 - pos
    } else {
        pos
    }
}

/// `prmt.b32{.mode} d, a, b, c` with the mode as a string (`None` = generic; `"f4e" "b4e" "rc8"
/// "ecl" "ecr" "rc16"`, unknown names act as generic). Hot loops should pre-parse with
/// [`PrmtMode::parse`] and call [`prmt_mode`].
#[inline]
pub fn prmt(a: u32, b: u32, c: u32, mode: Option<&str>) -> u32 {
    let m = mode.and_then(PrmtMode::parse).unwrap_or(PrmtMode::Generic);
    prmt_mode(a, b, c, m)
}

/// `prmt.b32{.mode}`: bytes `{b, a}` are numbered b7..b0 (`a` holds b3..b0). Generic mode: result
/// byte `i` is selected by `c[4i+3:4i]`: bits 2:0 pick a source byte, bit 3 replicates its sign
/// bit. The other modes use `c[1:0]` only (f4e: bytes `s+i`; b4e: `s-i` mod 8; rc8: byte `s`;
/// ecl: `max(i, s)`; ecr: `min(i, s)`; rc16: half-word `s & 1` twice).
#[inline]
pub fn prmt_mode(a: u32, b: u32, c: u32, mode: PrmtMode) -> u32 {
    let src = ((b as u64) << 32) | a as u64;
    let s = c & 3;
    let mut out = 0u32;
    for i in 0..4u32 {
        let sel = match mode {
            PrmtMode::Generic => (c >> (4 * i)) & 0xf,
            PrmtMode::F4e => (s + i) & 7,
            PrmtMode::B4e => (s + 8 - i) & 7,
            PrmtMode::Rc8 => s,
            PrmtMode::Ecl => i.max(s),
            PrmtMode::Ecr => i.min(s),
            PrmtMode::Rc16 => ((s & 1) << 1) | (i & 1),
        };
        let mut byte = ((src >> ((sel & 7) * 8)) & 0xff) as u32;
        if sel & 8 != 0 {
            byte = if byte & 0x80 != 0 { 0xff } else { 0 };
        }
        out |= byte << (8 * i);
    }
    out
}

/// `shf.{l,r}.{wrap,clamp}.b32 d, a, b, n`: funnel shift of the 64-bit value `b:a`. The amount
/// is `n & 31` (wrap) or `min(n, 32)` (clamp); `.l` returns the high word of `(b:a) << n`, `.r`
/// the low word of `(b:a) >> n`.
#[inline]
pub fn shf(a: u32, b: u32, n: u32, left: bool, wrap: bool) -> u32 {
    let n = if wrap { n & 31 } else { n.min(32) };
    let x = ((b as u64) << 32) | a as u64;
    if left {
        ((x << n) >> 32) as u32
    } else {
        (x >> n) as u32
    }
}

/// `lop3.b32 d, a, b, c, lut`: bit `i` of the result is `lut[a_i·4 + b_i·2 + c_i]`
/// (so `lut` = `F(0xF0, 0xCC, 0xAA)`).
#[inline]
pub fn lop3(a: u32, b: u32, c: u32, lut: u8) -> u32 {
    let mut r = 0u32;
    for i in 0..8u32 {
        if (lut >> i) & 1 != 0 {
            let ta = if i & 4 != 0 { a } else { !a };
            let tb = if i & 2 != 0 { b } else { !b };
            let tc = if i & 1 != 0 { c } else { !c };
            r |= ta & tb & tc;
        }
    }
    r
}

/// `popc.b{32,64}`: number of one bits (pass a masked value for `.b32`).
#[inline]
pub fn popc(a: u64) -> u32 {
    a.count_ones()
}

/// `clz.b{32,64}`: leading zeros of the low `bits` bits (`bits` when zero).
#[inline]
pub fn clz(a: u64, bits: u32) -> u32 {
    let w = width(bits);
    (a & mask(w)).leading_zeros() - (64 - w)
}

/// `brev.b{32,64}`: reverses the low `bits` bits.
#[inline]
pub fn brev(a: u64, bits: u32) -> u64 {
    let w = width(bits);
    (a & mask(w)).reverse_bits() >> (64 - w)
}

/// `sad.{s,u}N d, a, b, c`: `c + |a - b|` (the difference taken exactly), masked to `bits`.
#[inline]
pub fn sad(a: u64, b: u64, c: u64, signed: bool, bits: u32) -> u64 {
    let diff = if signed {
        (sext(a, bits) as i128 - sext(b, bits) as i128).unsigned_abs() as u64
    } else {
        (a & mask(bits)).abs_diff(b & mask(bits))
    };
    c.wrapping_add(diff) & mask(bits)
}

/// `min.{s,u}N`, masked to `bits`.
#[inline]
pub fn min_int(a: u64, b: u64, signed: bool, bits: u32) -> u64 {
    let pick_a = if signed {
        sext(a, bits) <= sext(b, bits)
    } else {
        a & mask(bits) <= b & mask(bits)
    };
    (if pick_a { a } else { b }) & mask(bits)
}

/// `max.{s,u}N`, masked to `bits`.
#[inline]
pub fn max_int(a: u64, b: u64, signed: bool, bits: u32) -> u64 {
    let pick_a = if signed {
        sext(a, bits) >= sext(b, bits)
    } else {
        a & mask(bits) >= b & mask(bits)
    };
    (if pick_a { a } else { b }) & mask(bits)
}

/// `abs.sN`, masked to `bits`; `abs(INT_MIN) = INT_MIN`.
#[inline]
pub fn abs_int(a: u64, bits: u32) -> u64 {
    (sext(a, bits).wrapping_abs() as u64) & mask(bits)
}

/// `neg.sN`, masked to `bits`; `neg(INT_MIN) = INT_MIN`.
#[inline]
pub fn neg_int(a: u64, bits: u32) -> u64 {
    a.wrapping_neg() & mask(bits)
}

/// `add.sat.s32`: clamps to `[INT_MIN, INT_MAX]`.
#[inline]
pub fn add_sat_s32(a: i32, b: i32) -> i32 {
    a.saturating_add(b)
}

/// `sub.sat.s32`: clamps to `[INT_MIN, INT_MAX]`.
#[inline]
pub fn sub_sat_s32(a: i32, b: i32) -> i32 {
    a.saturating_sub(b)
}

/// `atom.inc.u32`: the new value `r >= s ? 0 : r + 1` for old value `r` and operand `s`.
#[inline]
pub fn atom_inc(r: u32, s: u32) -> u32 {
    if r >= s {
        0
    } else {
        r + 1
    }
}

/// `atom.dec.u32`: the new value `(r == 0 || r > s) ? s : r - 1`.
#[inline]
pub fn atom_dec(r: u32, s: u32) -> u32 {
    if r == 0 || r > s {
        s
    } else {
        r - 1
    }
}

/// `shfl.sync` lane selection for lane `lane` with operands `b` (lane/offset) and `c` (clamp in
/// bits 4:0, segment mask in bits 12:8). Returns `(source lane, valid)`: when the computed source
/// is out of range, `(lane, false)` — the lane keeps its own value and `|p` receives false.
///
/// ```text
/// bval=b&31; cval=c&31; seg=(c>>8)&31; maxLane=(lane&seg)|(cval&~seg); minLane=lane&seg
/// up: j=lane-bval, p=j>=maxLane   down: j=lane+bval, p=j<=maxLane
/// bfly: j=lane^bval, p=j<=maxLane idx: j=minLane|(bval&~seg), p=j<=maxLane
/// ```
#[inline]
pub fn shfl_source(mode: ShflMode, lane: u32, b: u32, c: u32) -> (u32, bool) {
    let lane = lane & 31;
    let bval = b & 31;
    let cval = c & 31;
    let seg = (c >> 8) & 31;
    let max_lane = (lane & seg) | (cval & !seg);
    let min_lane = lane & seg;
    let (j, p) = match mode {
        ShflMode::Up => {
            let j = lane as i32 - bval as i32;
            (j, j >= max_lane as i32)
        }
        ShflMode::Down => {
            let j = lane + bval;
            (j as i32, j <= max_lane)
        }
        ShflMode::Bfly => {
            let j = lane ^ bval;
            (j as i32, j <= max_lane)
        }
        ShflMode::Idx => {
            let j = min_lane | (bval & !seg);
            (j as i32, j <= max_lane)
        }
    };
    if p {
        (j as u32, true)
    } else {
        (lane, false)
    }
}

#[cfg(test)]
mod tests;
