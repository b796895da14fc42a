//! Tests for `alu`: exact bit patterns for edge cases, plus randomized checks against
//! independent oracles (exact f64 arithmetic, error-free transformations, bit-by-bit reference
//! implementations of the ISA pseudo-code).

use super::*;

const MODES: [Rounding; 5] = [
    Rounding::Rn,
    Rounding::Rz,
    Rounding::Rm,
    Rounding::Rp,
    Rounding::Rna,
];
const DIRS: [Rounding; 4] = [Rounding::Rn, Rounding::Rz, Rounding::Rm, Rounding::Rp];

/// xorshift64* — deterministic test randomness.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    /// An f32 drawn from several regimes (random bits, moderate exponents, subnormals).
    fn f32(&mut self) -> f32 {
        loop {
            let r = self.next();
            let x = match r % 4 {
                0 => f32::from_bits(r as u32 ^ (r >> 32) as u32),
                1 => {
                    let e = (self.below(60) as i32) - 30;
                    let m = 1.0 + (self.next() >> 40) as f32 / (1u64 << 24) as f32;
                    let s = if r & 0x100 != 0 { -1.0 } else { 1.0 };
                    s * m * 2f32.powi(e)
                }
                2 => f32::from_bits(((r >> 8) as u32) & 0x807f_ffff),
                _ => {
                    let e = (self.below(254) as u32 + 1) << 23;
                    f32::from_bits(e | ((r >> 16) as u32 & 0x807f_ffff))
                }
            };
            if x.is_finite() {
                return x;
            }
        }
    }
    /// A finite f64 with a random exponent in [-lim, lim] (plus random sign and mantissa).
    fn f64_exp(&mut self, lim: i32) -> f64 {
        let e = (self.below(2 * lim as u64 + 1) as i32 - lim + 1023) as u64;
        let r = self.next();
        f64::from_bits((r & 0x800f_ffff_ffff_ffff) | (e << 52))
    }
    /// Any finite f64 (random bits), subnormals included.
    fn f64_any(&mut self) -> f64 {
        loop {
            let r = self.next();
            let x = match r % 3 {
                0 => f64::from_bits(r.rotate_left(17) ^ self.next()),
                1 => f64::from_bits(self.next() & 0x800f_ffff_ffff_ffff),
                _ => self.f64_exp(60),
            };
            if x.is_finite() {
                return x;
            }
        }
    }
}

fn b32(x: f32) -> u32 {
    x.to_bits()
}

fn f(b: u32) -> f32 {
    f32::from_bits(b)
}

fn d(b: u64) -> f64 {
    f64::from_bits(b)
}

/// Distance in ulps between two finite f32 (ordered integer representation).
fn ulp_dist32(a: f32, b: f32) -> u64 {
    let key = |x: f32| {
        let i = x.to_bits() as i32;
        if i < 0 {
            i64::from(i32::MIN) - i64::from(i)
        } else {
            i64::from(i)
        }
    };
    (key(a) - key(b)).unsigned_abs()
}

fn next_up64(x: f64) -> f64 {
    let b = x.to_bits();
    if x == 0.0 {
        f64::from_bits(1)
    } else if b >> 63 == 0 {
        f64::from_bits(b + 1)
    } else {
        f64::from_bits(b - 1)
    }
}

fn next_down64(x: f64) -> f64 {
    -next_up64(-x)
}

/// TwoSum: `a + b = s + e` exactly.
fn two_sum(a: f64, b: f64) -> (f64, f64) {
    let s = a + b;
    let bb = s - a;
    let e = (a - (s - bb)) + (b - bb);
    (s, e)
}

/// Sign of the exact sum of `terms` (Shewchuk's grow-expansion; no underflow/overflow assumed).
fn exact_sign(terms: &[f64]) -> i32 {
    let mut exp: Vec<f64> = Vec::new();
    for &t in terms {
        let mut q = t;
        let mut next = Vec::new();
        for &h in &exp {
            let (s, e) = two_sum(q, h);
            if e != 0.0 {
                next.push(e);
            }
            q = s;
        }
        if q != 0.0 {
            next.push(q);
        }
        exp = next;
    }
    match exp.last() {
        Some(&x) if x > 0.0 => 1,
        Some(&x) if x < 0.0 => -1,
        _ => 0,
    }
}

/// A target format's grid for rounding checks.
struct Grid {
    decode: fn(u64) -> f64,
    sign: u64,
    /// Value that +Inf stands for when computing midpoints (2^(emax+1)).
    over: f64,
}

fn ext(g: &Grid, b: u64) -> f64 {
    let v = (g.decode)(b);
    if v.is_infinite() {
        v.signum() * g.over
    } else {
        v
    }
}

fn grid_next_up(g: &Grid, b: u64) -> u64 {
    if b == g.sign {
        1
    } else if b & g.sign != 0 {
        b - 1
    } else {
        b + 1
    }
}

const G16: Grid = Grid {
    decode: |b| f16_bits_to_f32(b as u16) as f64,
    sign: 0x8000,
    over: 65536.0,
};
const GBF16: Grid = Grid {
    decode: |b| bf16_bits_to_f32(b as u16) as f64,
    sign: 0x8000,
    over: 3.402_823_669_209_385e38,
};
const G32: Grid = Grid {
    decode: |b| f32::from_bits(b as u32) as f64,
    sign: 0x8000_0000,
    over: 3.402_823_669_209_385e38,
};

/// Checks that `got(mode)` is the correctly rounded value of the exact non-zero `x` in every mode.
fn check_modes(x: f64, g: &Grid, got: impl Fn(Rounding) -> u64) {
    assert!(x != 0.0 && x.is_finite());
    let (rm, rp) = (got(Rounding::Rm), got(Rounding::Rp));
    if x.abs() >= g.over {
        // Beyond the overflow threshold: Inf or the largest finite value, by direction.
        let (inf, max) = if x > 0.0 { (rp, rm) } else { (rm, rp) };
        assert!(
            (g.decode)(inf).is_infinite() && (g.decode)(max).is_finite(),
            "x={x:e}"
        );
        assert_eq!(ext(g, inf).abs(), g.over);
        assert_eq!(got(Rounding::Rz), max, "x={x:e}");
        assert_eq!(got(Rounding::Rn), inf, "x={x:e}");
        assert_eq!(got(Rounding::Rna), inf, "x={x:e}");
        return;
    }
    let (vm, vp) = (ext(g, rm), ext(g, rp));
    assert!(vm <= x && x <= vp, "x={x:e} rm={rm:#x} rp={rp:#x}");
    if rm == rp {
        assert_eq!(vm, x, "x={x:e} not exact but rm == rp = {rm:#x}");
        for m in MODES {
            assert_eq!(got(m), rm, "x={x:e} mode={m:?}");
        }
        return;
    }
    assert_eq!(
        rp,
        grid_next_up(g, rm),
        "x={x:e} rm={rm:#x} rp={rp:#x} not adjacent"
    );
    let (toward0, away) = if x > 0.0 { (rm, rp) } else { (rp, rm) };
    assert_eq!(got(Rounding::Rz), toward0, "x={x:e} rz");
    let mid = (vm + vp) / 2.0;
    let (rn, rna) = if x < mid {
        (rm, rm)
    } else if x > mid {
        (rp, rp)
    } else if rm & 1 == 0 {
        (rm, away)
    } else {
        (rp, away)
    };
    assert_eq!(got(Rounding::Rn), rn, "x={x:e} rn (rm={rm:#x} rp={rp:#x})");
    assert_eq!(got(Rounding::Rna), rna, "x={x:e} rna");
}

// ------------------------------------------------------------------------------------------------
// Parsing
// ------------------------------------------------------------------------------------------------

#[test]
fn alu_parse_modifiers() {
    assert_eq!(Rounding::parse("rn"), Some(Rounding::Rn));
    assert_eq!(Rounding::parse(".rzi"), Some(Rounding::Rzi));
    assert_eq!(Rounding::parse("rna"), Some(Rounding::Rna));
    assert_eq!(Rounding::parse("rpi"), Some(Rounding::Rpi));
    assert_eq!(Rounding::parse("ftz"), None);
    assert_eq!(Rounding::Rmi.direction(), Rounding::Rm);
    assert!(Rounding::Rni.is_integer() && !Rounding::Rn.is_integer());
    for (s, op) in [
        ("eq", CmpOp::Eq),
        ("ne", CmpOp::Ne),
        ("lt", CmpOp::Lt),
        ("le", CmpOp::Le),
        ("gt", CmpOp::Gt),
        ("ge", CmpOp::Ge),
        ("lo", CmpOp::Lo),
        ("ls", CmpOp::Ls),
        ("hi", CmpOp::Hi),
        ("hs", CmpOp::Hs),
        ("equ", CmpOp::Equ),
        ("neu", CmpOp::Neu),
        ("ltu", CmpOp::Ltu),
        ("leu", CmpOp::Leu),
        ("gtu", CmpOp::Gtu),
        ("geu", CmpOp::Geu),
        ("num", CmpOp::Num),
        ("nan", CmpOp::Nan),
    ] {
        assert_eq!(CmpOp::parse(s), Some(op));
    }
    assert_eq!(CmpOp::parse("f32"), None);
    assert_eq!(ShflMode::parse("bfly"), Some(ShflMode::Bfly));
    assert_eq!(PrmtMode::parse("rc16"), Some(PrmtMode::Rc16));
    assert_eq!(TestpOp::parse("notanumber"), Some(TestpOp::NotANumber));
}

// ------------------------------------------------------------------------------------------------
// Narrowing conversions
// ------------------------------------------------------------------------------------------------

#[test]
fn alu_f32_to_f16_edge_cases() {
    use Rounding::*;
    let h = |x: f32, r| f32_to_f16_bits(x, r);
    assert_eq!(h(1.0, Rn), 0x3c00);
    assert_eq!(h(-2.0, Rn), 0xc000);
    assert_eq!(h(65504.0, Rn), 0x7bff);
    // 65520 is the midpoint between 65504 and 2^16: ties-to-even overflows.
    assert_eq!(h(65520.0, Rn), 0x7c00);
    assert_eq!(h(65520.0, Rz), 0x7bff);
    assert_eq!(h(65519.0, Rn), 0x7bff);
    assert_eq!(h(1e6, Rz), 0x7bff);
    assert_eq!(h(1e6, Rm), 0x7bff);
    assert_eq!(h(1e6, Rp), 0x7c00);
    assert_eq!(h(-1e6, Rm), 0xfc00);
    assert_eq!(h(-1e6, Rp), 0xfbff);
    assert_eq!(h(-1e6, Rz), 0xfbff);
    assert_eq!(h(f32::INFINITY, Rz), 0x7c00);
    assert_eq!(h(f32::NEG_INFINITY, Rn), 0xfc00);
    assert_eq!(h(f32::NAN, Rn), 0x7fff);
    assert_eq!(h(-0.0, Rn), 0x8000);
    // Subnormal f16: 2^-24 is the smallest; 2^-25 is a tie between 0 and 2^-24.
    assert_eq!(h(2f32.powi(-24), Rn), 0x0001);
    assert_eq!(h(2f32.powi(-25), Rn), 0x0000);
    assert_eq!(h(2f32.powi(-25), Rna), 0x0001);
    assert_eq!(h(2f32.powi(-25), Rp), 0x0001);
    assert_eq!(h(2f32.powi(-25), Rz), 0x0000);
    assert_eq!(h(-(2f32.powi(-25)), Rn), 0x8000);
    assert_eq!(h(-(2f32.powi(-25)), Rm), 0x8001);
    assert_eq!(h(3.0 * 2f32.powi(-25), Rn), 0x0002);
    assert_eq!(h(1e-8, Rp), 0x0001);
    assert_eq!(h(1e-8, Rm), 0x0000);
    assert_eq!(h(1e-8, Rn), 0x0000);
    // 1023.5 * 2^-24 ties to the even 1024 * 2^-24 = smallest normal (carry into the exponent).
    assert_eq!(h(1023.5 * 2f32.powi(-24), Rn), 0x0400);
    // Ties in the normal range.
    assert_eq!(h(1.0 + 2f32.powi(-11), Rn), 0x3c00);
    assert_eq!(h(1.0 + 2f32.powi(-11), Rna), 0x3c01);
    assert_eq!(h(1.0 + 3.0 * 2f32.powi(-11), Rn), 0x3c02);
    assert_eq!(h(1.0 + 2f32.powi(-11), Rp), 0x3c01);
    assert_eq!(h(-1.0 - 2f32.powi(-11), Rm), 0xbc01);
    assert_eq!(h(-1.0 - 2f32.powi(-11), Rp), 0xbc00);
    // Integer variants act as their direction.
    assert_eq!(h(1.0 + 2f32.powi(-11), Rpi), 0x3c01);
}

#[test]
fn alu_f16_round_trip_exhaustive() {
    for hb in 0..=0xffffu16 {
        let x = f16_bits_to_f32(hb);
        if x.is_nan() {
            assert_eq!(x.to_bits(), NAN32);
            continue;
        }
        for m in MODES {
            assert_eq!(f32_to_f16_bits(x, m), hb, "{hb:#x} {m:?}");
        }
        // Through cvt as well, both directions.
        assert_eq!(
            cvt(hb as u64, Type::F32, Type::F16, None, false, false),
            x.to_bits() as u64
        );
        assert_eq!(
            cvt(
                x.to_bits() as u64,
                Type::F16,
                Type::F32,
                Some(Rounding::Rn),
                false,
                false
            ),
            hb as u64
        );
    }
}

#[test]
fn alu_f32_to_f16_and_bf16_random_all_modes() {
    let mut rng = Rng(0x1234_5678_9abc_def1);
    for _ in 0..40_000 {
        let x = rng.f32();
        if x == 0.0 {
            continue;
        }
        check_modes(x as f64, &G16, |m| f32_to_f16_bits(x, m) as u64);
        check_modes(x as f64, &GBF16, |m| f32_to_bf16_bits(x, m) as u64);
    }
    // Values near the f16 range: 2^-26..2^17.
    for _ in 0..40_000 {
        let e = rng.below(44) as i32 - 26;
        let x = (1.0 + (rng.next() >> 41) as f32 / (1u64 << 23) as f32) * 2f32.powi(e);
        let x = if rng.next() & 1 == 0 { x } else { -x };
        check_modes(x as f64, &G16, |m| f32_to_f16_bits(x, m) as u64);
    }
}

#[test]
fn alu_bf16_edge_cases() {
    use Rounding::*;
    assert_eq!(f32_to_bf16_bits(1.0, Rn), 0x3f80);
    assert_eq!(f32_to_bf16_bits(f(0x3f80_8000), Rn), 0x3f80); // tie → even
    assert_eq!(f32_to_bf16_bits(f(0x3f81_8000), Rn), 0x3f82); // tie → even
    assert_eq!(f32_to_bf16_bits(f(0x3f80_8000), Rna), 0x3f81);
    assert_eq!(f32_to_bf16_bits(f(0x3f81_ffff), Rz), 0x3f81);
    assert_eq!(f32_to_bf16_bits(f(0x3f81_0001), Rp), 0x3f82);
    assert_eq!(f32_to_bf16_bits(f(0xbf81_0001), Rm), 0xbf82);
    assert_eq!(f32_to_bf16_bits(f32::MAX, Rn), 0x7f80);
    assert_eq!(f32_to_bf16_bits(f32::MAX, Rz), 0x7f7f);
    assert_eq!(f32_to_bf16_bits(f32::NAN, Rn), 0x7fff);
    assert_eq!(f32_to_bf16_bits(f(0xffc0_0001), Rz), 0x7fff);
    assert_eq!(f32_to_bf16_bits(f(0x0000_0001), Rp), 0x0001);
    assert_eq!(f32_to_bf16_bits(f(0x0000_8000), Rn), 0x0000);
    assert_eq!(f32_to_bf16_bits(f(0x0001_8000), Rn), 0x0002);
    assert_eq!(bf16_bits_to_f32(0x3f81).to_bits(), 0x3f81_0000);
    assert_eq!(bf16_bits_to_f32(0xff80), f32::NEG_INFINITY);
    assert_eq!(bf16_bits_to_f32(0x7fc1).to_bits(), NAN32);
}

#[test]
fn alu_f64_to_f32_directed() {
    use Rounding::*;
    let third = 1.0f64 / 3.0;
    assert_eq!(b32(f64_to_f32_rounded(third, Rn)), 0x3eaa_aaab);
    assert_eq!(b32(f64_to_f32_rounded(third, Rz)), 0x3eaa_aaaa);
    assert_eq!(b32(f64_to_f32_rounded(third, Rm)), 0x3eaa_aaaa);
    assert_eq!(b32(f64_to_f32_rounded(third, Rp)), 0x3eaa_aaab);
    assert_eq!(b32(f64_to_f32_rounded(-third, Rm)), 0xbeaa_aaab);
    assert_eq!(b32(f64_to_f32_rounded(-third, Rz)), 0xbeaa_aaaa);
    assert_eq!(b32(f64_to_f32_rounded(1e300, Rn)), 0x7f80_0000);
    assert_eq!(b32(f64_to_f32_rounded(1e300, Rz)), 0x7f7f_ffff);
    assert_eq!(b32(f64_to_f32_rounded(-1e300, Rp)), 0xff7f_ffff);
    assert_eq!(b32(f64_to_f32_rounded(-1e300, Rm)), 0xff80_0000);
    assert_eq!(b32(f64_to_f32_rounded(1e-50, Rn)), 0);
    assert_eq!(b32(f64_to_f32_rounded(1e-50, Rp)), 1);
    assert_eq!(b32(f64_to_f32_rounded(-1e-50, Rm)), 0x8000_0001);
    assert_eq!(b32(f64_to_f32_rounded(-1e-50, Rz)), 0x8000_0000);
    assert_eq!(b32(f64_to_f32_rounded(1.5 * 2f64.powi(-149), Rn)), 2);
    assert_eq!(b32(f64_to_f32_rounded(1.5 * 2f64.powi(-149), Rz)), 1);
    assert_eq!(b32(f64_to_f32_rounded(f64::NAN, Rz)), NAN32);
    // The overflow threshold MAX + half ulp: ties-to-even overflows, .rz does not.
    let thr = f32::MAX as f64 + 2f64.powi(103);
    assert_eq!(b32(f64_to_f32_rounded(thr, Rn)), 0x7f80_0000);
    assert_eq!(b32(f64_to_f32_rounded(thr, Rz)), 0x7f7f_ffff);
    assert_eq!(b32(f64_to_f32_rounded(next_down64(thr), Rn)), 0x7f7f_ffff);

    let mut rng = Rng(77);
    for i in 0..60_000 {
        let x = if i % 2 == 0 {
            rng.f64_exp(160)
        } else {
            rng.f32() as f64 * (1.0 + 2f64.powi(-30))
        };
        if x == 0.0 {
            continue;
        }
        check_modes(x, &G32, |m| b32(f64_to_f32_rounded(x, m)) as u64);
    }
}

// ------------------------------------------------------------------------------------------------
// f32 arithmetic with rounding modes
// ------------------------------------------------------------------------------------------------

#[test]
fn alu_f32_op_edge_cases() {
    use FOp::*;
    use Rounding::*;
    let op = |o, a: f32, b: f32, r| b32(f32_op(o, a, b, 0.0, r, false));
    let h = 2f32.powi(-24);
    assert_eq!(op(Add, 1.0, h, Rn), 0x3f80_0000);
    assert_eq!(op(Add, 1.0, h, Rz), 0x3f80_0000);
    assert_eq!(op(Add, 1.0, h, Rm), 0x3f80_0000);
    assert_eq!(op(Add, 1.0, h, Rp), 0x3f80_0001);
    assert_eq!(op(Add, 1.0, h, Rna), 0x3f80_0001);
    assert_eq!(op(Sub, -1.0, h, Rm), 0xbf80_0001);
    assert_eq!(op(Sub, -1.0, h, Rp), 0xbf80_0000);
    assert_eq!(op(Sub, -1.0, h, Rz), 0xbf80_0000);
    // Far-apart operands: only the sticky bit of the small one survives.
    let tiny = 2f32.powi(-100);
    assert_eq!(op(Add, 1.0, tiny, Rp), 0x3f80_0001);
    assert_eq!(op(Add, 1.0, tiny, Rm), 0x3f80_0000);
    assert_eq!(op(Sub, 1.0, tiny, Rm), 0x3f7f_ffff);
    assert_eq!(op(Sub, 1.0, tiny, Rz), 0x3f7f_ffff);
    assert_eq!(op(Sub, 1.0, tiny, Rn), 0x3f80_0000);
    assert_eq!(op(Sub, 1.0, tiny, Rp), 0x3f80_0000);
    // Overflow.
    assert_eq!(op(Mul, f32::MAX, 2.0, Rn), 0x7f80_0000);
    assert_eq!(op(Mul, f32::MAX, 2.0, Rz), 0x7f7f_ffff);
    assert_eq!(op(Mul, f32::MAX, 2.0, Rm), 0x7f7f_ffff);
    assert_eq!(op(Mul, f32::MAX, 2.0, Rp), 0x7f80_0000);
    assert_eq!(op(Mul, -f32::MAX, 2.0, Rm), 0xff80_0000);
    assert_eq!(op(Mul, -f32::MAX, 2.0, Rp), 0xff7f_ffff);
    assert_eq!(op(Add, f32::MAX, f32::MAX, Rz), 0x7f7f_ffff);
    // Subnormal results.
    let min = f(1);
    assert_eq!(op(Mul, min, 0.5, Rn), 0);
    assert_eq!(op(Mul, min, 0.5, Rp), 1);
    assert_eq!(op(Mul, min, 0.5, Rz), 0);
    assert_eq!(op(Mul, min, 0.5, Rm), 0);
    assert_eq!(op(Mul, -min, 0.5, Rm), 0x8000_0001);
    assert_eq!(op(Mul, -min, 0.5, Rn), 0x8000_0000);
    assert_eq!(op(Mul, f(3), 0.5, Rn), 2);
    assert_eq!(op(Mul, f(3), 0.5, Rz), 1);
    assert_eq!(op(Mul, f(3), 0.5, Rp), 2);
    assert_eq!(op(Mul, f(3), 0.5, Rm), 1);
    assert_eq!(op(Mul, f(0x0080_0000), 0.5, Rn), 0x0040_0000);
    // .ftz flushes subnormal inputs and results.
    for r in DIRS {
        assert_eq!(b32(f32_op(Mul, min, 0.5, 0.0, r, true)), 0);
        assert_eq!(b32(f32_op(Mul, -min, 4.0, 0.0, r, true)), 0x8000_0000);
        assert_eq!(b32(f32_op(Mul, f(0x0080_0000), 0.5, 0.0, r, true)), 0);
        assert_eq!(
            b32(f32_op(Mul, f(0x8080_0000), 0.5, 0.0, r, true)),
            0x8000_0000
        );
        assert_eq!(
            b32(f32_op(Add, f(0x0040_0000), 1.0, 0.0, r, true)),
            0x3f80_0000
        );
    }
    assert_eq!(b32(f32_op(Mul, f(3), 0.5, 0.0, Rn, false)), 2);
    // Exact zero sums: +0, except -0 under .rm; -0 + -0 = -0.
    for r in DIRS {
        let z = op(Add, 1.0, -1.0, r);
        assert_eq!(z, if r == Rm { 0x8000_0000 } else { 0 }, "{r:?}");
        assert_eq!(op(Add, -0.0, -0.0, r), 0x8000_0000);
        assert_eq!(op(Add, 0.0, -0.0, r), if r == Rm { 0x8000_0000 } else { 0 });
        assert_eq!(op(Sub, 0.0, 0.0, r), if r == Rm { 0x8000_0000 } else { 0 });
        assert_eq!(op(Mul, -0.0, 5.0, r), 0x8000_0000);
    }
    // Division and square root.
    assert_eq!(op(Div, 1.0, 3.0, Rn), 0x3eaa_aaab);
    assert_eq!(op(Div, 1.0, 3.0, Rz), 0x3eaa_aaaa);
    assert_eq!(op(Div, 1.0, 3.0, Rm), 0x3eaa_aaaa);
    assert_eq!(op(Div, 1.0, 3.0, Rp), 0x3eaa_aaab);
    assert_eq!(op(Div, -1.0, 3.0, Rm), 0xbeaa_aaab);
    assert_eq!(op(Div, -1.0, 3.0, Rp), 0xbeaa_aaaa);
    assert_eq!(op(Div, 1.0, 0.0, Rz), 0x7f80_0000);
    assert_eq!(op(Div, -1.0, 0.0, Rz), 0xff80_0000);
    assert_eq!(op(Div, 0.0, 0.0, Rp), NAN32);
    assert_eq!(op(Div, 6.0, 3.0, Rm), 0x4000_0000);
    assert_eq!(b32(f32_op(Rcp, 3.0, 0.0, 0.0, Rz, false)), 0x3eaa_aaaa);
    assert_eq!(b32(f32_op(Rcp, -0.0, 0.0, 0.0, Rz, false)), 0xff80_0000);
    let sq = |x: f32, r| b32(f32_op(Sqrt, x, 0.0, 0.0, r, false));
    assert_eq!(sq(2.0, Rn), 0x3fb5_04f3);
    assert_eq!(sq(2.0, Rz), 0x3fb5_04f3);
    assert_eq!(sq(2.0, Rm), 0x3fb5_04f3);
    assert_eq!(sq(2.0, Rp), 0x3fb5_04f4);
    assert_eq!(sq(4.0, Rp), 0x4000_0000);
    assert_eq!(sq(-0.0, Rp), 0x8000_0000);
    assert_eq!(sq(-1.0, Rz), NAN32);
    assert_eq!(sq(f32::INFINITY, Rm), 0x7f80_0000);
    assert_eq!(sq(min, Rn), b32((2f64.powi(-149)).sqrt() as f32));
    // Fused multiply-add: a single rounding.
    let e = 2f32.powi(-23);
    let fma = |a: f32, b: f32, c: f32, r| b32(f32_op(Fma, a, b, c, r, false));
    assert_eq!(fma(1.0 + e, 1.0 - e, -1.0, Rm), 0xa880_0000); // -2^-46 exactly
    assert_eq!(fma(1.0 + e, 1.0 + e, 0.0, Rn), 0x3f80_0002);
    assert_eq!(fma(1.0 + e, 1.0 + e, 0.0, Rp), 0x3f80_0003);
    assert_eq!(fma(1.0 + e, 1.0 + e, 0.0, Rz), 0x3f80_0002);
    assert_eq!(fma(1.0, 1.0, -1.0, Rm), 0x8000_0000);
    assert_eq!(fma(1.0, 1.0, -1.0, Rp), 0);
    assert_eq!(fma(0.0, 5.0, -0.0, Rn), 0);
    assert_eq!(fma(-0.0, 5.0, -0.0, Rp), 0x8000_0000);
    assert_eq!(fma(f32::INFINITY, 0.0, 1.0, Rm), NAN32);
    assert_eq!(fma(tiny, tiny, 1.0, Rp), 0x3f80_0001);
    assert_eq!(fma(-tiny, tiny, 1.0, Rm), 0x3f7f_ffff);
    assert_eq!(fma(-tiny, tiny, 1.0, Rn), 0x3f80_0000);
    // NaN results are canonical.
    assert_eq!(op(Add, f(0xffc0_1234), 1.0, Rn), NAN32);
    assert_eq!(op(Add, f(0x7f80_0001), 1.0, Rz), NAN32);
    assert_eq!(op(Add, f32::INFINITY, f32::NEG_INFINITY, Rn), NAN32);
}

#[test]
fn alu_f32_op_random_against_exact_f64() {
    let mut rng = Rng(0xdead_beef);
    let mut checked = [0u32; 5];
    for _ in 0..30_000 {
        let (a, b, c) = (rng.f32(), rng.f32(), rng.f32());
        // mul: exact in f64.
        let x = a as f64 * b as f64;
        if x != 0.0 && x.is_finite() && x.abs() < 3.4e38 {
            check_modes(x, &G32, |m| {
                b32(f32_op(FOp::Mul, a, b, 0.0, m, false)) as u64
            });
            checked[0] += 1;
        }
        // add / sub: exact when TwoSum has no error.
        for (o, bb) in [(FOp::Add, b), (FOp::Sub, -b)] {
            let (s, e) = two_sum(a as f64, bb as f64);
            if e == 0.0 && s != 0.0 && s.abs() < 3.4e38 {
                check_modes(s, &G32, |m| b32(f32_op(o, a, b, 0.0, m, false)) as u64);
                checked[1] += 1;
            }
        }
        // fma: exact when p + c has no error in f64.
        let (s, e) = two_sum(a as f64 * b as f64, c as f64);
        if e == 0.0 && s != 0.0 && s.abs() < 3.4e38 {
            check_modes(s, &G32, |m| b32(f32_op(FOp::Fma, a, b, c, m, false)) as u64);
            checked[2] += 1;
        }
        // div / sqrt: the f64 result rounds like the exact one unless it sits on an f32
        // boundary (grid point or midpoint), which this test then skips unless exact.
        let boundary = |q: f64| q.to_bits() & ((1 << 28) - 1) == 0;
        if b != 0.0 && a != 0.0 {
            let q = a as f64 / b as f64;
            let exact = (-q).mul_add(b as f64, a as f64) == 0.0;
            if q.abs() < 3.4e38 && q.abs() > 1e-44 && (exact || !boundary(q)) {
                check_modes(q, &G32, |m| {
                    b32(f32_op(FOp::Div, a, b, 0.0, m, false)) as u64
                });
                checked[3] += 1;
            }
        }
        if a > 0.0 {
            let q = (a as f64).sqrt();
            let exact = (-q).mul_add(q, a as f64) == 0.0;
            if exact || !boundary(q) {
                check_modes(q, &G32, |m| {
                    b32(f32_op(FOp::Sqrt, a, 0.0, 0.0, m, false)) as u64
                });
                checked[4] += 1;
            }
        }
    }
    assert!(checked.iter().all(|&n| n > 2000), "{checked:?}");
}

#[test]
fn alu_soft_core_matches_native_rn() {
    // The soft-float core in round-to-nearest mode must agree bit for bit with the host's IEEE
    // operations: this exercises its alignment, sticky, carry, subnormal and overflow logic.
    let mut rng = Rng(42);
    let canon = |x: f64| canon64(x).to_bits();
    for i in 0..60_000 {
        let (a, b, c) = (rng.f64_any(), rng.f64_any(), rng.f64_any());
        // Near-cancelling fma inputs every few rounds.
        let c = if i % 4 == 0 {
            -(a * b) * (1.0 + (rng.below(8) as f64) * 2f64.powi(-52))
        } else {
            c
        };
        let c = if c.is_finite() { c } else { 1.0 };
        let rn = Rounding::Rn;
        assert_eq!(
            soft(FOp::Add, a, b, 0.0, F64, rn),
            canon(a + b),
            "{a:e}+{b:e}"
        );
        assert_eq!(
            soft(FOp::Sub, a, b, 0.0, F64, rn),
            canon(a - b),
            "{a:e}-{b:e}"
        );
        assert_eq!(
            soft(FOp::Mul, a, b, 0.0, F64, rn),
            canon(a * b),
            "{a:e}*{b:e}"
        );
        assert_eq!(
            soft(FOp::Fma, a, b, c, F64, rn),
            canon(a.mul_add(b, c)),
            "fma({a:e},{b:e},{c:e})"
        );
        assert_eq!(
            soft(FOp::Div, a, b, 0.0, F64, rn),
            canon(a / b),
            "{a:e}/{b:e}"
        );
        assert_eq!(
            soft(FOp::Sqrt, a.abs(), 0.0, 0.0, F64, rn),
            canon(a.abs().sqrt()),
            "sqrt {a:e}"
        );
        assert_eq!(
            soft(FOp::Rcp, a, 0.0, 0.0, F64, rn),
            canon(1.0 / a),
            "rcp {a:e}"
        );
        // f32 operands, f32 results.
        let (x, y, z) = (rng.f32(), rng.f32(), rng.f32());
        let z = if i % 4 == 0 { -(x * y) } else { z };
        let z = if z.is_finite() { z } else { 1.0 };
        let s32 = |o, p: f32, q: f32, r: f32| soft(o, p as f64, q as f64, r as f64, F32, rn) as u32;
        let c32 = |v: f32| canon32(v).to_bits();
        assert_eq!(s32(FOp::Add, x, y, 0.0), c32(x + y));
        assert_eq!(s32(FOp::Mul, x, y, 0.0), c32(x * y));
        assert_eq!(
            s32(FOp::Fma, x, y, z),
            c32(x.mul_add(y, z)),
            "fma({x:e},{y:e},{z:e})"
        );
        assert_eq!(s32(FOp::Div, x, y, 0.0), c32(x / y));
        assert_eq!(s32(FOp::Sqrt, x.abs(), 0.0, 0.0), c32(x.abs().sqrt()));
    }
}

// ------------------------------------------------------------------------------------------------
// f64 arithmetic with rounding modes
// ------------------------------------------------------------------------------------------------

/// Checks f64 results of all directions given the round-to-nearest result and the sign of
/// (exact - rn).
fn check_dirs64(rn: f64, err: i32, got: impl Fn(Rounding) -> f64, what: &str) {
    let (rm, rp) = match err {
        0 => (rn, rn),
        e if e > 0 => (rn, next_up64(rn)),
        _ => (next_down64(rn), rn),
    };
    let rz = if rm > 0.0 || (rm == 0.0 && rp > 0.0) {
        rm
    } else {
        rp
    };
    let rz = if err == 0 { rn } else { rz };
    assert_eq!(got(Rounding::Rn).to_bits(), rn.to_bits(), "{what} rn");
    assert_eq!(got(Rounding::Rm).to_bits(), rm.to_bits(), "{what} rm");
    assert_eq!(got(Rounding::Rp).to_bits(), rp.to_bits(), "{what} rp");
    assert_eq!(got(Rounding::Rz).to_bits(), rz.to_bits(), "{what} rz");
}

#[test]
fn alu_f64_op_random_against_eft() {
    let mut rng = Rng(0x5eed);
    for _ in 0..25_000 {
        let (a, b, c) = (rng.f64_exp(300), rng.f64_exp(300), rng.f64_exp(300));
        let sign = |x: f64| {
            if x > 0.0 {
                1
            } else if x < 0.0 {
                -1
            } else {
                0
            }
        };
        // add / sub: TwoSum.
        for bb in [b, -b, -a * (1.0 + 2f64.powi(-40))] {
            let (s, e) = two_sum(a, bb);
            if s.is_finite() && s != 0.0 {
                check_dirs64(
                    s,
                    sign(e),
                    |m| f64_op(FOp::Add, a, bb, 0.0, m),
                    &format!("{a:e}+{bb:e}"),
                );
            }
        }
        // mul: TwoProd via fma (exact: no underflow in this exponent range).
        let p = a * b;
        let e = a.mul_add(b, -p);
        check_dirs64(
            p,
            sign(e),
            |m| f64_op(FOp::Mul, a, b, 0.0, m),
            &format!("{a:e}*{b:e}"),
        );
        // fma: sign of (p + e + c - r), summed exactly.
        for cc in [c, -p, -p * (1.0 + 2f64.powi(-50)), p * 2f64.powi(-60)] {
            let r = a.mul_add(b, cc);
            if r != 0.0 {
                let s = exact_sign(&[p, e, cc, -r]);
                check_dirs64(
                    r,
                    s,
                    |m| f64_op(FOp::Fma, a, b, cc, m),
                    &format!("fma({a:e},{b:e},{cc:e})"),
                );
            }
        }
        // div: remainder a - q*b is exact.
        let q = a / b;
        let r = (-q).mul_add(b, a);
        check_dirs64(
            q,
            sign(r) * sign(b),
            |m| f64_op(FOp::Div, a, b, 0.0, m),
            &format!("{a:e}/{b:e}"),
        );
        let q = 1.0 / b;
        let r = (-q).mul_add(b, 1.0);
        check_dirs64(
            q,
            sign(r) * sign(b),
            |m| f64_op(FOp::Rcp, b, 0.0, 0.0, m),
            &format!("rcp {b:e}"),
        );
        // sqrt: residual a - q^2 is exact.
        let x = a.abs();
        let q = x.sqrt();
        let r = (-q).mul_add(q, x);
        check_dirs64(
            q,
            sign(r),
            |m| f64_op(FOp::Sqrt, x, 0.0, 0.0, m),
            &format!("sqrt {x:e}"),
        );
    }
}

#[test]
fn alu_f64_op_edge_cases() {
    use FOp::*;
    use Rounding::*;
    let op = |o, a: f64, b: f64, c: f64, r| f64_op(o, a, b, c, r).to_bits();
    let t = 2f64.powi(-60);
    assert_eq!(op(Add, 1.0, t, 0.0, Rp), 0x3ff0_0000_0000_0001);
    assert_eq!(op(Add, 1.0, t, 0.0, Rm), 0x3ff0_0000_0000_0000);
    assert_eq!(op(Add, 1.0, t, 0.0, Rn), 0x3ff0_0000_0000_0000);
    assert_eq!(op(Sub, 1.0, t, 0.0, Rm), 0x3fef_ffff_ffff_ffff);
    assert_eq!(op(Sub, 1.0, t, 0.0, Rz), 0x3fef_ffff_ffff_ffff);
    assert_eq!(op(Sub, 1.0, t, 0.0, Rp), 0x3ff0_0000_0000_0000);
    assert_eq!(op(Add, -1.0, -t, 0.0, Rm), 0xbff0_0000_0000_0001);
    assert_eq!(op(Add, -1.0, -t, 0.0, Rz), 0xbff0_0000_0000_0000);
    // Tie at 1 + 2^-53.
    assert_eq!(op(Add, 1.0, 2f64.powi(-53), 0.0, Rn), 0x3ff0_0000_0000_0000);
    assert_eq!(op(Add, 1.0, 2f64.powi(-53), 0.0, Rp), 0x3ff0_0000_0000_0001);
    // Subnormal results.
    let min = d(1);
    assert_eq!(op(Mul, min, 0.5, 0.0, Rn), 0);
    assert_eq!(op(Mul, min, 0.5, 0.0, Rp), 1);
    assert_eq!(op(Mul, min, 0.5, 0.0, Rz), 0);
    assert_eq!(op(Mul, -min, 0.5, 0.0, Rm), 0x8000_0000_0000_0001);
    assert_eq!(op(Mul, -min, 0.5, 0.0, Rn), 0x8000_0000_0000_0000);
    assert_eq!(op(Mul, d(3), 0.5, 0.0, Rn), 2);
    assert_eq!(op(Mul, d(3), 0.5, 0.0, Rz), 1);
    assert_eq!(op(Mul, 2f64.powi(-540), 2f64.powi(-540), 0.0, Rp), 1);
    assert_eq!(op(Mul, 2f64.powi(-540), 2f64.powi(-540), 0.0, Rn), 0);
    assert_eq!(op(Mul, 2f64.powi(-537), 2f64.powi(-537), 0.0, Rn), 1); // 2^-1074 exactly
    assert_eq!(op(Div, min, 3.0, 0.0, Rp), 1);
    assert_eq!(op(Div, min, 3.0, 0.0, Rm), 0);
    assert_eq!(
        op(Div, d(0x000f_ffff_ffff_ffff), 1.0 + 2f64.powi(-52), 0.0, Rn),
        0x000f_ffff_ffff_fffe
    );
    assert_eq!(op(Sqrt, min, 0.0, 0.0, Rn), (2f64.powi(-537)).to_bits());
    // fma with a subnormal result and a tiny product.
    assert_eq!(op(Fma, 2f64.powi(-540), 2f64.powi(-540), min, Rn), 1);
    assert_eq!(op(Fma, 2f64.powi(-540), 2f64.powi(-540), min, Rp), 2);
    assert_eq!(op(Fma, -(2f64.powi(-540)), 2f64.powi(-540), min, Rm), 0);
    assert_eq!(op(Fma, -(2f64.powi(-540)), 2f64.powi(-540), min, Rn), 1);
    // Overflow.
    let max = f64::MAX;
    assert_eq!(op(Mul, max, 2.0, 0.0, Rn), 0x7ff0_0000_0000_0000);
    assert_eq!(op(Mul, max, 2.0, 0.0, Rz), 0x7fef_ffff_ffff_ffff);
    assert_eq!(op(Mul, max, 2.0, 0.0, Rm), 0x7fef_ffff_ffff_ffff);
    assert_eq!(op(Mul, -max, 2.0, 0.0, Rp), 0xffef_ffff_ffff_ffff);
    assert_eq!(op(Mul, -max, 2.0, 0.0, Rm), 0xfff0_0000_0000_0000);
    assert_eq!(op(Add, max, 2f64.powi(970), 0.0, Rn), 0x7ff0_0000_0000_0000);
    assert_eq!(op(Add, max, 2f64.powi(970), 0.0, Rz), 0x7fef_ffff_ffff_ffff);
    assert_eq!(op(Add, max, 2f64.powi(969), 0.0, Rp), 0x7ff0_0000_0000_0000);
    assert_eq!(op(Add, max, 2f64.powi(969), 0.0, Rn), 0x7fef_ffff_ffff_ffff);
    assert_eq!(op(Div, max, 0.5, 0.0, Rz), 0x7fef_ffff_ffff_ffff);
    assert_eq!(op(Fma, max, 2.0, -max, Rz), 0x7fef_ffff_ffff_ffff);
    assert_eq!(op(Fma, max, 2.0, -max, Rn), 0x7fef_ffff_ffff_ffff);
    assert_eq!(op(Fma, max, 3.0, -max, Rn), 0x7ff0_0000_0000_0000);
    // Exact quotients / roots, and inexact ones.
    assert_eq!(op(Div, 1.0, 3.0, 0.0, Rn), 0x3fd5_5555_5555_5555);
    assert_eq!(op(Div, 1.0, 3.0, 0.0, Rz), 0x3fd5_5555_5555_5555);
    assert_eq!(op(Div, 1.0, 3.0, 0.0, Rp), 0x3fd5_5555_5555_5556);
    assert_eq!(op(Div, -1.0, 3.0, 0.0, Rm), 0xbfd5_5555_5555_5556);
    assert_eq!(op(Rcp, 3.0, 0.0, 0.0, Rp), 0x3fd5_5555_5555_5556);
    assert_eq!(op(Rcp, 4.0, 0.0, 0.0, Rp), 0x3fd0_0000_0000_0000);
    assert_eq!(op(Sqrt, 2.0, 0.0, 0.0, Rn), 0x3ff6_a09e_667f_3bcd);
    assert_eq!(op(Sqrt, 2.0, 0.0, 0.0, Rp), 0x3ff6_a09e_667f_3bcd);
    assert_eq!(op(Sqrt, 2.0, 0.0, 0.0, Rz), 0x3ff6_a09e_667f_3bcc);
    assert_eq!(op(Sqrt, 2.0, 0.0, 0.0, Rm), 0x3ff6_a09e_667f_3bcc);
    assert_eq!(op(Sqrt, 9.0, 0.0, 0.0, Rm), 3f64.to_bits());
    assert_eq!(op(Sqrt, -0.0, 0.0, 0.0, Rm), 0x8000_0000_0000_0000);
    assert_eq!(op(Sqrt, -4.0, 0.0, 0.0, Rm), NAN64);
    // fma: one rounding.
    let e = 2f64.powi(-52);
    assert_eq!(op(Fma, 1.0 + e, 1.0 + e, 0.0, Rn), 0x3ff0_0000_0000_0002);
    assert_eq!(op(Fma, 1.0 + e, 1.0 + e, 0.0, Rp), 0x3ff0_0000_0000_0003);
    assert_eq!(op(Fma, 1.0 + e, 1.0 - e, -1.0, Rz), 0xb970_0000_0000_0000); // -2^-104
    assert_eq!(
        op(Fma, 2f64.powi(-600), 2f64.powi(-600), 1.0, Rp),
        0x3ff0_0000_0000_0001
    );
    assert_eq!(
        op(Fma, 2f64.powi(-600), 2f64.powi(-600), 1.0, Rm),
        0x3ff0_0000_0000_0000
    );
    assert_eq!(
        op(Fma, -(2f64.powi(-600)), 2f64.powi(-600), 1.0, Rm),
        0x3fef_ffff_ffff_ffff
    );
    assert_eq!(
        op(Fma, -(2f64.powi(-600)), 2f64.powi(-600), 1.0, Rz),
        0x3fef_ffff_ffff_ffff
    );
    assert_eq!(
        op(Fma, -(2f64.powi(-600)), 2f64.powi(-600), 1.0, Rn),
        0x3ff0_0000_0000_0000
    );
    assert_eq!(op(Fma, 1.0, 1.0, -1.0, Rm), 0x8000_0000_0000_0000);
    assert_eq!(op(Fma, 1.0, 1.0, -1.0, Rz), 0);
    assert_eq!(
        op(Fma, 1e300, 1e300, f64::NEG_INFINITY, Rz),
        0xfff0_0000_0000_0000
    );
    // Exact zero sums and NaN.
    assert_eq!(op(Add, 1.0, -1.0, 0.0, Rm), 0x8000_0000_0000_0000);
    assert_eq!(op(Add, 1.0, -1.0, 0.0, Rp), 0);
    assert_eq!(op(Add, -0.0, -0.0, 0.0, Rp), 0x8000_0000_0000_0000);
    assert_eq!(op(Add, f64::INFINITY, f64::NEG_INFINITY, 0.0, Rn), NAN64);
    assert_eq!(op(Mul, d(0xfff8_0000_0000_0001), 1.0, 0.0, Rn), NAN64);
    assert_eq!(op(Div, 0.0, 0.0, 0.0, Rz), NAN64);
}

// ------------------------------------------------------------------------------------------------
// min / max
// ------------------------------------------------------------------------------------------------

#[test]
fn alu_float_min_max() {
    let nan = f32::NAN;
    assert_eq!(fmin32(1.0, 2.0, false), 1.0);
    assert_eq!(fmax32(1.0, 2.0, false), 2.0);
    assert_eq!(fmin32(nan, 2.0, false), 2.0);
    assert_eq!(fmin32(2.0, nan, false), 2.0);
    assert_eq!(fmax32(nan, -2.0, false), -2.0);
    assert_eq!(b32(fmin32(nan, nan, false)), NAN32);
    assert_eq!(b32(fmax32(f(0xffc0_0001), nan, false)), NAN32);
    assert_eq!(b32(fmin32(0.0, -0.0, false)), 0x8000_0000);
    assert_eq!(b32(fmin32(-0.0, 0.0, false)), 0x8000_0000);
    assert_eq!(b32(fmax32(0.0, -0.0, false)), 0);
    assert_eq!(b32(fmax32(-0.0, 0.0, false)), 0);
    assert_eq!(fmin32(f32::NEG_INFINITY, 0.0, false), f32::NEG_INFINITY);
    // .ftz: subnormals become signed zeros before comparing.
    assert_eq!(b32(fmin32(f(1), f(2), false)), 1);
    assert_eq!(b32(fmin32(f(1), f(2), true)), 0);
    assert_eq!(b32(fmin32(f(0x8000_0001), f(2), true)), 0x8000_0000);
    assert_eq!(b32(fmax32(f(0x8000_0005), -1.0, true)), 0x8000_0000);
    assert_eq!(fmin64(f64::NAN, 3.0), 3.0);
    assert_eq!(fmax64(3.0, f64::NAN), 3.0);
    assert_eq!(fmin64(f64::NAN, f64::NAN).to_bits(), NAN64);
    assert_eq!(fmin64(0.0, -0.0).to_bits(), 0x8000_0000_0000_0000);
    assert_eq!(fmax64(-0.0, 0.0).to_bits(), 0);
    assert_eq!(fmax64(-1.0, -2.0), -1.0);
    assert_eq!(fmin64(d(1), 0.0).to_bits(), 0);
}

// ------------------------------------------------------------------------------------------------
// Approximate instructions
// ------------------------------------------------------------------------------------------------

#[test]
fn alu_approx_special_values() {
    let inf = f32::INFINITY;
    let ninf = f32::NEG_INFINITY;
    let nan = f32::NAN;
    for ftz in [false, true] {
        assert_eq!(b32(ex2_approx_f32(ninf, ftz)), 0);
        assert_eq!(ex2_approx_f32(inf, ftz), inf);
        assert_eq!(ex2_approx_f32(0.0, ftz), 1.0);
        assert_eq!(ex2_approx_f32(-0.0, ftz), 1.0);
        assert_eq!(b32(ex2_approx_f32(nan, ftz)), NAN32);
        assert_eq!(ex2_approx_f32(10.0, ftz), 1024.0);
        assert_eq!(ex2_approx_f32(128.0, ftz), inf);
        assert_eq!(lg2_approx_f32(0.0, ftz), ninf);
        assert_eq!(lg2_approx_f32(-0.0, ftz), ninf);
        assert_eq!(lg2_approx_f32(inf, ftz), inf);
        assert_eq!(b32(lg2_approx_f32(ninf, ftz)), NAN32);
        assert_eq!(b32(lg2_approx_f32(-1.0, ftz)), NAN32);
        assert_eq!(lg2_approx_f32(1024.0, ftz), 10.0);
        assert_eq!(lg2_approx_f32(1.0, ftz), 0.0);
        assert_eq!(b32(sin_approx_f32(inf, ftz)), NAN32);
        assert_eq!(b32(cos_approx_f32(ninf, ftz)), NAN32);
        assert_eq!(b32(sin_approx_f32(-0.0, ftz)), 0x8000_0000);
        assert_eq!(cos_approx_f32(0.0, ftz), 1.0);
        assert_eq!(rsqrt_approx_f32(0.0, ftz), inf);
        assert_eq!(rsqrt_approx_f32(-0.0, ftz), ninf);
        assert_eq!(b32(rsqrt_approx_f32(inf, ftz)), 0);
        assert_eq!(b32(rsqrt_approx_f32(-4.0, ftz)), NAN32);
        assert_eq!(b32(rsqrt_approx_f32(ninf, ftz)), NAN32);
        assert_eq!(rsqrt_approx_f32(4.0, ftz), 0.5);
        assert_eq!(rcp_approx_f32(0.0, ftz), inf);
        assert_eq!(rcp_approx_f32(-0.0, ftz), ninf);
        assert_eq!(b32(rcp_approx_f32(ninf, ftz)), 0x8000_0000);
        assert_eq!(rcp_approx_f32(4.0, ftz), 0.25);
        assert_eq!(b32(sqrt_approx_f32(-0.0, ftz)), 0x8000_0000);
        assert_eq!(b32(sqrt_approx_f32(-1.0, ftz)), NAN32);
        assert_eq!(sqrt_approx_f32(inf, ftz), inf);
        assert_eq!(tanh_approx_f32(inf, ftz), 1.0);
        assert_eq!(tanh_approx_f32(ninf, ftz), -1.0);
        assert_eq!(b32(tanh_approx_f32(-0.0, ftz)), 0x8000_0000);
        assert_eq!(b32(tanh_approx_f32(nan, ftz)), NAN32);
        assert_eq!(b32(div_full_f32(0.0, 0.0, ftz)), NAN32);
        assert_eq!(div_full_f32(1.0, 0.0, ftz), inf);
        assert_eq!(div_approx_f32(-1.0, 0.0, ftz), ninf);
        assert_eq!(div_approx_f32(6.0, 3.0, ftz), 2.0);
    }
    // Subnormals: kept without .ftz, flushed with it.
    let sub = f(0x0000_1000);
    assert_eq!(lg2_approx_f32(sub, true), ninf);
    assert_eq!(lg2_approx_f32(sub, false), -137.0);
    assert_eq!(b32(lg2_approx_f32(-sub, false)), NAN32);
    assert_eq!(lg2_approx_f32(-sub, true), ninf);
    assert_eq!(rsqrt_approx_f32(sub, true), inf);
    assert_eq!(
        rsqrt_approx_f32(sub, false),
        2f32.powi(68) * std::f32::consts::SQRT_2
    );
    assert_eq!(rcp_approx_f32(f(0x8000_0001), true), ninf);
    assert_eq!(b32(rcp_approx_f32(2f32.powi(127), true)), 0);
    assert_eq!(b32(rcp_approx_f32(2f32.powi(127), false)), 0x0040_0000);
    assert_eq!(b32(tanh_approx_f32(sub, false)), b32(sub));
    assert_eq!(b32(tanh_approx_f32(sub, true)), 0);
    assert_eq!(b32(ex2_approx_f32(-140.0, false)), 0x0000_0200);
    assert_eq!(b32(ex2_approx_f32(-140.0, true)), 0);
    assert_eq!(b32(sin_approx_f32(sub, false)), b32(sub));
    assert_eq!(b32(sqrt_approx_f32(f(0x8000_0001), true)), 0x8000_0000);
    // div.approx: |b| in (2^126, 2^128) → 0, or NaN for an infinite dividend.
    let big = 2f32.powi(127);
    assert_eq!(b32(div_approx_f32(1.0, big, false)), 0);
    assert_eq!(b32(div_approx_f32(-1.0, big, false)), 0x8000_0000);
    assert_eq!(b32(div_approx_f32(1.0, -big, false)), 0x8000_0000);
    assert_eq!(b32(div_approx_f32(inf, big, false)), NAN32);
    assert_eq!(div_approx_f32(big, 2f32.powi(126), false), 2.0);
    assert_eq!(div_full_f32(big, 2f32.powi(127), false), 1.0);
    assert_eq!(b32(div_full_f32(1.0, big, false)), 0x0040_0000);
    assert_eq!(b32(div_full_f32(1.0, big, true)), 0);
}

#[test]
fn alu_approx_within_documented_bounds() {
    let mut rng = Rng(9);
    for _ in 0..20_000 {
        let x = rng.f32();
        // ex2: ≤ 2 ulp (we are correctly rounded from an f64 exp2: ≤ 1).
        let t = (x as f64).clamp(-160.0, 130.0) as f32;
        let r = ex2_approx_f32(t, false);
        let want = (t as f64).exp2() as f32;
        assert!(
            ulp_dist32(r, want) <= 1,
            "ex2({t:e}) = {r:e}, want {want:e}"
        );
        // lg2: 2^-22 absolute on (0.5, 2), relative elsewhere.
        let a = x.abs();
        if a > 0.0 && a.is_finite() {
            let r = lg2_approx_f32(a, false) as f64;
            let want = (a as f64).log2();
            if a > 0.5 && a < 2.0 {
                assert!((r - want).abs() <= 2f64.powi(-22), "lg2({a:e})");
            } else {
                assert!(
                    (r - want).abs() <= 2f64.powi(-22) * want.abs(),
                    "lg2({a:e})"
                );
            }
            // rsqrt: 2^-22.9 relative; sqrt: 2^-23 relative; rcp: ≤ 1 ulp.
            let r = rsqrt_approx_f32(a, false) as f64;
            let want = 1.0 / (a as f64).sqrt();
            assert!(
                ((r - want) / want).abs() <= 2f64.powf(-22.9),
                "rsqrt({a:e})"
            );
            let r = sqrt_approx_f32(a, false) as f64;
            let want = (a as f64).sqrt();
            assert!(((r - want) / want).abs() <= 2f64.powi(-23), "sqrt({a:e})");
            let r = rcp_approx_f32(x, false);
            let want = (1.0 / x as f64) as f32;
            if want.is_finite() && want != 0.0 {
                assert!(ulp_dist32(r, want) <= 1, "rcp({x:e})");
            }
        }
        // sin / cos: 2^-20.5 absolute on [-2π, 2π]; 2^-14.7 on [-100π, 100π].
        let s =
            ((rng.next() >> 11) as f64 / (1u64 << 53) as f64 * 4.0 - 2.0) * std::f64::consts::PI;
        let s32 = s as f32;
        assert!((sin_approx_f32(s32, false) as f64 - (s32 as f64).sin()).abs() <= 2f64.powf(-20.5));
        assert!((cos_approx_f32(s32, false) as f64 - (s32 as f64).cos()).abs() <= 2f64.powf(-20.5));
        let w = (s * 50.0) as f32;
        assert!((sin_approx_f32(w, false) as f64 - (w as f64).sin()).abs() <= 2f64.powf(-14.7));
        assert!((cos_approx_f32(w, false) as f64 - (w as f64).cos()).abs() <= 2f64.powf(-14.7));
        // tanh: 2^-11 relative.
        let t = x.clamp(-20.0, 20.0);
        if t != 0.0 {
            let r = tanh_approx_f32(t, false) as f64;
            let want = (t as f64).tanh();
            assert!(((r - want) / want).abs() <= 2f64.powi(-11), "tanh({t:e})");
        }
        // div.approx: ≤ 2 ulp for |b| in [2^-126, 2^126]; div.full: ≤ 2 ulp everywhere.
        let (a, b) = (rng.f32(), rng.f32());
        let want = (a as f64 / b as f64) as f32;
        if want.is_finite() && want.abs() >= f32::MIN_POSITIVE {
            assert!(
                ulp_dist32(div_full_f32(a, b, false), want) <= 2,
                "div.full {a:e}/{b:e}"
            );
            if b.abs() >= f32::MIN_POSITIVE && b.abs() <= 2f32.powi(126) {
                assert!(
                    ulp_dist32(div_approx_f32(a, b, false), want) <= 2,
                    "div.approx {a:e}/{b:e}"
                );
            }
        }
    }
}

#[test]
fn alu_approx_f64() {
    // rcp.approx.ftz.f64: 1.11.20 result, low word zero, ~2^-20 relative error.
    let mut rng = Rng(31);
    for _ in 0..20_000 {
        let x = rng.f64_exp(1000);
        let r = rcp_approx_ftz_f64(x);
        assert_eq!(r.to_bits() & 0xffff_ffff, 0);
        let want = 1.0 / x;
        assert!(
            ((r - want) / want).abs() <= 2f64.powi(-19),
            "rcp.approx.ftz.f64({x:e}) = {r:e}"
        );
        let a = x.abs();
        let r = rsqrt_approx_f64(a);
        let want = 1.0 / a.sqrt();
        assert!(
            ((r - want) / want).abs() <= 2f64.powi(-51),
            "rsqrt.approx.f64({a:e})"
        );
    }
    assert_eq!(rcp_approx_ftz_f64(2.0), 0.5);
    assert_eq!(rcp_approx_ftz_f64(-4.0), -0.25);
    assert_eq!(rcp_approx_ftz_f64(0.0), f64::INFINITY);
    assert_eq!(rcp_approx_ftz_f64(-0.0), f64::NEG_INFINITY);
    assert_eq!(rcp_approx_ftz_f64(d(1)), f64::INFINITY);
    assert_eq!(
        rcp_approx_ftz_f64(d(0x8000_0000_0000_0001)),
        f64::NEG_INFINITY
    );
    assert_eq!(rcp_approx_ftz_f64(f64::INFINITY).to_bits(), 0);
    assert_eq!(
        rcp_approx_ftz_f64(f64::NEG_INFINITY).to_bits(),
        0x8000_0000_0000_0000
    );
    assert_eq!(rcp_approx_ftz_f64(2f64.powi(1023)).to_bits(), 0); // subnormal result flushed
    assert_eq!(
        rcp_approx_ftz_f64(f64::NAN).to_bits(),
        0x7fff_ffff_0000_0000
    );
    assert_eq!(rsqrt_approx_f64(4.0), 0.5);
    assert_eq!(rsqrt_approx_f64(0.0), f64::INFINITY);
    assert_eq!(rsqrt_approx_f64(-0.0), f64::NEG_INFINITY);
    assert_eq!(rsqrt_approx_f64(f64::INFINITY), 0.0);
    assert_eq!(rsqrt_approx_f64(-1.0).to_bits(), NAN64);
    assert_eq!(rsqrt_approx_f64(d(4)), 2f64.powi(536));
}

// ------------------------------------------------------------------------------------------------
// compare / testp
// ------------------------------------------------------------------------------------------------

#[test]
fn alu_compare_floats() {
    use CmpOp::*;
    let nan = f32::NAN.to_bits() as u64;
    let one = 1f32.to_bits() as u64;
    let two = 2f32.to_bits() as u64;
    for op in [Eq, Ne, Lt, Le, Gt, Ge] {
        assert!(!compare(op, Type::F32, nan, one), "{op:?}");
        assert!(!compare(op, Type::F32, one, nan), "{op:?}");
        assert!(
            !compare(op, Type::F64, f64::NAN.to_bits(), 1f64.to_bits()),
            "{op:?}"
        );
    }
    for op in [Equ, Neu, Ltu, Leu, Gtu, Geu, Nan] {
        assert!(compare(op, Type::F32, nan, one), "{op:?}");
        assert!(compare(op, Type::F32, nan, nan), "{op:?}");
    }
    assert!(!compare(Num, Type::F32, nan, one));
    assert!(compare(Num, Type::F32, one, two));
    assert!(!compare(Nan, Type::F32, one, two));
    assert!(compare(Lt, Type::F32, one, two));
    assert!(compare(Ne, Type::F32, one, two));
    assert!(compare(Neu, Type::F32, one, two));
    assert!(!compare(Equ, Type::F32, one, two));
    assert!(compare(Ltu, Type::F32, one, two));
    assert!(!compare(Gtu, Type::F32, one, two));
    assert!(compare(Ge, Type::F32, two, two));
    // -0 == +0.
    assert!(compare(Eq, Type::F32, 0x8000_0000, 0));
    assert!(!compare(Ne, Type::F32, 0x8000_0000, 0));
    assert!(compare(Eq, Type::F64, 0x8000_0000_0000_0000, 0));
    // Upper register bits are ignored for f32.
    assert!(compare(Eq, Type::F32, 0xdead_0000_3f80_0000, one));
    // f16 / bf16.
    assert!(compare(Lt, Type::F16, 0x3c00, 0x4000));
    assert!(compare(Gt, Type::F16, 0x3c00, 0xc000));
    assert!(!compare(Ne, Type::F16, 0x7e00, 0x3c00));
    assert!(compare(Neu, Type::F16, 0x7e00, 0x3c00));
    assert!(compare(Eq, Type::F16, 0x8000, 0x0000));
    assert!(compare(Lt, Type::F16, 0x0001, 0x0002));
    assert!(compare(Lt, Type::Bf16, 0x3f80, 0x4000));
    assert!(compare(Nan, Type::Bf16, 0x7fc0, 0x4000));
    assert!(compare(
        Lt,
        Type::F64,
        (-1f64).to_bits(),
        f64::INFINITY.to_bits()
    ));
}

#[test]
fn alu_compare_ints() {
    use CmpOp::*;
    let m1 = 0xffff_ffffu64;
    assert!(compare(Lt, Type::S32, m1, 1));
    assert!(!compare(Lt, Type::U32, m1, 1));
    assert!(!compare(Lt, Type::B32, m1, 1));
    assert!(!compare(Lo, Type::S32, m1, 1));
    assert!(compare(Hi, Type::S32, m1, 1));
    assert!(compare(Hs, Type::U32, 1, 1));
    assert!(compare(Ls, Type::U32, 1, 1));
    assert!(compare(Ge, Type::S32, 1, m1));
    assert!(compare(Le, Type::S64, u64::MAX, 0));
    assert!(!compare(Le, Type::U64, u64::MAX, 0));
    assert!(compare(Eq, Type::U32, 0x1_0000_0005, 5));
    assert!(compare(Ne, Type::B16, 0x1_0005, 6));
    assert!(compare(Lt, Type::S8, 0x80, 0x7f));
    assert!(compare(Gt, Type::S16, 0x7fff, 0x8000));
    assert!(compare(Gt, Type::U16, 0x8000, 0x7fff));
    assert!(compare(Equ, Type::S32, 3, 3));
    assert!(compare(Num, Type::S32, 3, 4));
    assert!(!compare(Nan, Type::S32, 3, 4));
    assert!(compare(Eq, Type::Pred, 1, 3));
}

#[test]
fn alu_testp() {
    let t32 = |op, x: f32| testp(op, Type::F32, x.to_bits() as u64);
    assert!(t32("finite", 1.0) && t32("normal", 1.0) && t32("number", 1.0));
    assert!(!t32("infinite", 1.0) && !t32("subnormal", 1.0) && !t32("notanumber", 1.0));
    assert!(t32("normal", 0.0) && t32("normal", -0.0)); // documented special case
    assert!(!t32("subnormal", 0.0));
    assert!(t32("subnormal", f(1)) && !t32("normal", f(1)) && t32("finite", f(1)));
    assert!(t32("subnormal", f(0x807f_ffff)));
    assert!(t32("infinite", f32::NEG_INFINITY) && !t32("finite", f32::INFINITY));
    assert!(t32("number", f32::INFINITY) && !t32("normal", f32::INFINITY));
    assert!(t32("notanumber", f32::NAN) && !t32("number", f32::NAN) && !t32("infinite", f32::NAN));
    assert!(!t32("finite", f32::NAN) && !t32("normal", f32::NAN));
    assert!(!t32("bogus", 1.0));
    let t64 = |op, x: f64| testp(op, Type::F64, x.to_bits());
    assert!(t64("subnormal", d(1)) && !t64("normal", d(1)));
    assert!(t64("normal", f64::MIN_POSITIVE) && t64("normal", 0.0));
    assert!(t64("notanumber", f64::NAN) && t64("infinite", f64::INFINITY));
    assert!(t64("finite", f64::MAX));
    assert!(testp_op(
        TestpOp::Subnormal,
        Type::F32,
        0xffff_ffff_0000_0001
    ));
}

// ------------------------------------------------------------------------------------------------
// cvt
// ------------------------------------------------------------------------------------------------

#[test]
fn alu_cvt_int_to_int() {
    use Type::*;
    let c = |v: u64, dst, src, sat| cvt(v, dst, src, None, false, sat);
    assert_eq!(c(0x80, S32, S8, false), 0xffff_ff80);
    assert_eq!(c(0x80, U32, S8, false), 0xffff_ff80);
    assert_eq!(c(0x80, U32, U8, false), 0x80);
    assert_eq!(c(0x8000_0000, S64, S32, false), 0xffff_ffff_8000_0000);
    assert_eq!(c(0x8000_0000, U64, S32, false), 0xffff_ffff_8000_0000);
    assert_eq!(c(0x8000_0000, S64, U32, false), 0x8000_0000);
    assert_eq!(c(u64::MAX, U64, U32, false), 0xffff_ffff);
    assert_eq!(c(0x1_2345, U16, U32, false), 0x2345);
    assert_eq!(c(0x17f, S8, S32, false), 0x7f);
    assert_eq!(c(0x180, S8, S32, false), 0x80);
    assert_eq!(c(0xffff, S16, S16, false), 0xffff);
    assert_eq!(c(0x1234, B32, B16, false), 0x1234);
    assert_eq!(c(0xabcd_1234, U8, B32, false), 0x34);
    // .sat clamps to the destination range.
    assert_eq!(c((-5i64) as u64, U8, S32, true), 0);
    assert_eq!(c(300, S8, S32, true), 0x7f);
    assert_eq!(c((-300i64) as u64 & 0xffff_ffff, S8, S32, true), 0x80);
    assert_eq!(c(u64::MAX, U32, S64, true), 0);
    assert_eq!(c(0xffff_ffff, S32, U32, true), 0x7fff_ffff);
    assert_eq!(c(1 << 40, U16, U64, true), 0xffff);
    assert_eq!(c(u64::MAX, S64, U64, true), 0x7fff_ffff_ffff_ffff);
    assert_eq!(c(0x8000_0000_0000_0000, U64, S64, true), 0);
    assert_eq!(c(100, S8, U32, true), 100);
    assert_eq!(c(0x80, U32, S8, true), 0);
}

#[test]
fn alu_cvt_int_to_float() {
    use Rounding::*;
    use Type::*;
    let c = |v: u64, dst, src, r| cvt(v, dst, src, Some(r), false, false);
    assert_eq!(c(u64::MAX, F32, U64, Rn), 0x5f80_0000);
    assert_eq!(c(u64::MAX, F32, U64, Rz), 0x5f7f_ffff);
    assert_eq!(c(u64::MAX, F32, U64, Rm), 0x5f7f_ffff);
    assert_eq!(c(16_777_217, F32, S32, Rn), 0x4b80_0000);
    assert_eq!(c(16_777_217, F32, S32, Rna), 0x4b80_0001);
    assert_eq!(c(16_777_217, F32, S32, Rp), 0x4b80_0001);
    assert_eq!(c((-16_777_217i64) as u64, F32, S32, Rn), 0xcb80_0000);
    assert_eq!(c((-16_777_217i64) as u64, F32, S32, Rm), 0xcb80_0001);
    assert_eq!(c((-16_777_217i64) as u64, F32, S32, Rz), 0xcb80_0000);
    assert_eq!(c(0xffff_ffff, F32, S32, Rn), 0xbf80_0000);
    assert_eq!(c(0xffff_ffff, F32, U32, Rn), 0x4f80_0000);
    assert_eq!(
        c(0x8000_0000_0000_0000, F64, S64, Rn),
        0xc3e0_0000_0000_0000
    );
    assert_eq!(c(u64::MAX, F64, U64, Rn), 0x43f0_0000_0000_0000);
    assert_eq!(c(u64::MAX, F64, U64, Rz), 0x43ef_ffff_ffff_ffff);
    assert_eq!(c((1 << 53) + 1, F64, U64, Rn), 0x4340_0000_0000_0000);
    assert_eq!(c((1 << 53) + 1, F64, U64, Rp), 0x4340_0000_0000_0001);
    assert_eq!(c(0, F32, S32, Rm), 0);
    assert_eq!(c(65535, F16, U32, Rn), 0x7c00);
    assert_eq!(c(65535, F16, U32, Rz), 0x7bff);
    assert_eq!(c(2049, F16, U32, Rn), 0x6800);
    assert_eq!(c(2049, F16, U32, Rp), 0x6801);
    assert_eq!(c(0xff, F16, S8, Rn), 0xbc00);
    assert_eq!(c(257, Bf16, S32, Rn), 0x4380);
    assert_eq!(c(257, Bf16, S32, Rp), 0x4381);
    assert_eq!(c(u64::MAX, Bf16, U64, Rz), 0x5f7f);
    assert_eq!(cvt(7, F32, U32, None, false, false), 7f32.to_bits() as u64);
    assert_eq!(
        cvt(0x1_0000_0007, F32, U32, None, false, false),
        7f32.to_bits() as u64
    );
    // .sat clamps to [0, 1].
    assert_eq!(cvt(5, F32, S32, Some(Rn), false, true), 0x3f80_0000);
    assert_eq!(cvt(0xffff_fffd, F32, S32, Some(Rn), false, true), 0);
    assert_eq!(cvt(1, F16, U8, Some(Rn), false, true), 0x3c00);
}

#[test]
fn alu_cvt_float_to_int() {
    use Rounding::*;
    use Type::*;
    let c = |x: f32, dst, r| cvt(x.to_bits() as u64, dst, F32, Some(r), false, false);
    assert_eq!(c(2.5, S32, Rni), 2);
    assert_eq!(c(3.5, S32, Rni), 4);
    assert_eq!(c(-2.5, S32, Rni), 0xffff_fffe);
    assert_eq!(c(-0.5, S32, Rni), 0);
    assert_eq!(c(2.5, S32, Rn), 2); // .rn acts as .rni
    assert_eq!(c(2.5, S32, Rna), 3);
    assert_eq!(c(-2.5, S32, Rna), 0xffff_fffd);
    assert_eq!(c(-2.7, S32, Rzi), 0xffff_fffe);
    assert_eq!(c(-2.1, S32, Rmi), 0xffff_fffd);
    assert_eq!(c(2.1, S32, Rpi), 3);
    assert_eq!(c(2.1, S32, Rp), 3);
    assert_eq!(c(-1.0, U32, Rzi), 0);
    assert_eq!(c(-0.5, U32, Rmi), 0);
    assert_eq!(c(-0.0, U32, Rzi), 0);
    assert_eq!(c(3e9, S32, Rzi), 0x7fff_ffff);
    assert_eq!(c(-3e9, S32, Rzi), 0x8000_0000);
    assert_eq!(c(3e9, U32, Rzi), 3_000_000_000);
    assert_eq!(c(5e9, U32, Rzi), 0xffff_ffff);
    assert_eq!(c(f32::INFINITY, S32, Rzi), 0x7fff_ffff);
    assert_eq!(c(f32::NEG_INFINITY, S32, Rzi), 0x8000_0000);
    assert_eq!(c(f32::NEG_INFINITY, U64, Rzi), 0);
    assert_eq!(c(f32::INFINITY, U64, Rzi), u64::MAX);
    assert_eq!(c(300.0, U8, Rni), 0xff);
    assert_eq!(c(-200.0, S8, Rni), 0x80);
    assert_eq!(c(-1.0, S8, Rni), 0xff);
    assert_eq!(c(-1.0, S16, Rni), 0xffff);
    assert_eq!(c(2147483520.0, S32, Rni), 2_147_483_520);
    assert_eq!(c(-2147483648.0, S32, Rni), 0x8000_0000);
    assert_eq!(c(2147483648.0, S32, Rni), 0x7fff_ffff);
    // Default (None) truncates.
    assert_eq!(
        cvt(2.7f32.to_bits() as u64, S32, F32, None, false, false),
        2
    );
    // f64 sources and 64-bit destinations.
    let c64 = |x: f64, dst, r| cvt(x.to_bits(), dst, F64, Some(r), false, false);
    assert_eq!(c64(18446744073709551616.0, U64, Rzi), u64::MAX);
    assert_eq!(
        c64(18446744073709549568.0, U64, Rzi),
        18_446_744_073_709_549_568
    );
    assert_eq!(c64(9.3e18, S64, Rzi), 0x7fff_ffff_ffff_ffff);
    assert_eq!(c64(-9.3e18, S64, Rzi), 0x8000_0000_0000_0000);
    assert_eq!(c64(-9223372036854775808.0, S64, Rzi), 0x8000_0000_0000_0000);
    assert_eq!(c64(-2.5, S64, Rmi), (-3i64) as u64);
    assert_eq!(c64(4294967295.7, U32, Rni), 0xffff_ffff);
    assert_eq!(c64(4294967295.2, U32, Rni), 0xffff_ffff);
    assert_eq!(c64(-0.9, U32, Rzi), 0);
    // NaN: 0, unless the source is f64 or the destination is 64-bit (then 1 << (N-1)).
    let nan32 = f32::NAN.to_bits() as u64;
    assert_eq!(cvt(nan32, S32, F32, Some(Rzi), false, false), 0);
    assert_eq!(cvt(nan32, U32, F32, Some(Rni), false, true), 0);
    assert_eq!(
        cvt(nan32, U64, F32, Some(Rzi), false, false),
        0x8000_0000_0000_0000
    );
    assert_eq!(
        cvt(nan32, S64, F32, Some(Rzi), false, false),
        0x8000_0000_0000_0000
    );
    assert_eq!(
        cvt(f64::NAN.to_bits(), S32, F64, Some(Rzi), false, false),
        0x8000_0000
    );
    assert_eq!(
        cvt(f64::NAN.to_bits(), U16, F64, Some(Rzi), false, false),
        0x8000
    );
    assert_eq!(
        cvt(f64::NAN.to_bits(), S64, F64, Some(Rzi), false, false),
        0x8000_0000_0000_0000
    );
    assert_eq!(cvt(0x7e00, S16, F16, Some(Rzi), false, false), 0);
    // .ftz flushes an f32 subnormal source (matters for .rpi/.rmi).
    let sub = 1e-40f32.to_bits() as u64;
    assert_eq!(cvt(sub, S32, F32, Some(Rpi), false, false), 1);
    assert_eq!(cvt(sub, S32, F32, Some(Rpi), true, false), 0);
    assert_eq!(
        cvt(sub | 0x8000_0000, S32, F32, Some(Rmi), false, false),
        0xffff_ffff
    );
    assert_eq!(cvt(sub | 0x8000_0000, S32, F32, Some(Rmi), true, false), 0);
    // f16 / bf16 sources.
    assert_eq!(cvt(0x3e00, S32, F16, Some(Rni), false, false), 2); // 1.5
    assert_eq!(cvt(0xbe00, S32, F16, Some(Rzi), false, false), 0xffff_ffff); // -1.5
    assert_eq!(cvt(0x7c00, U16, F16, Some(Rzi), false, false), 0xffff);
    assert_eq!(cvt(0x4049, S32, Bf16, Some(Rzi), false, false), 3);
    assert_eq!(cvt(0x0001, S32, F16, Some(Rpi), true, false), 1); // f16 is never flushed
}

#[test]
fn alu_cvt_float_to_float() {
    use Rounding::*;
    use Type::*;
    let third = (1.0f64 / 3.0).to_bits();
    assert_eq!(cvt(third, F32, F64, Some(Rn), false, false), 0x3eaa_aaab);
    assert_eq!(cvt(third, F32, F64, Some(Rz), false, false), 0x3eaa_aaaa);
    assert_eq!(cvt(third, F32, F64, None, false, false), 0x3eaa_aaab);
    assert_eq!(
        cvt(1e300f64.to_bits(), F32, F64, Some(Rn), false, false),
        0x7f80_0000
    );
    assert_eq!(
        cvt(1e300f64.to_bits(), F32, F64, Some(Rz), false, false),
        0x7f7f_ffff
    );
    assert_eq!(cvt(1e-50f64.to_bits(), F32, F64, Some(Rp), false, false), 1);
    assert_eq!(cvt(1e-50f64.to_bits(), F32, F64, Some(Rp), true, false), 0);
    assert_eq!(
        cvt((-1e-50f64).to_bits(), F32, F64, Some(Rm), true, false),
        0x8000_0000
    );
    assert_eq!(
        cvt(
            (1.5 * 2f64.powi(-149)).to_bits(),
            F32,
            F64,
            Some(Rn),
            false,
            false
        ),
        2
    );
    assert_eq!(
        cvt(f64::NAN.to_bits(), F32, F64, Some(Rn), false, false),
        NAN32 as u64
    );
    assert_eq!(
        cvt(f64::NAN.to_bits(), F16, F64, Some(Rn), false, false),
        0x7fff
    );
    assert_eq!(
        cvt(f32::NAN.to_bits() as u64, F64, F32, None, false, false),
        NAN64
    );
    // Widening is exact; .ftz flushes an f32 source, never an f16 one.
    assert_eq!(
        cvt(0x3eaa_aaab, F64, F32, None, false, false),
        0x3fd5_5555_6000_0000
    );
    assert_eq!(cvt(1, F64, F32, None, false, false), 0x36a0_0000_0000_0000);
    assert_eq!(cvt(1, F64, F32, None, true, false), 0);
    assert_eq!(
        cvt(0x8000_0001, F64, F32, None, true, false),
        0x8000_0000_0000_0000
    );
    assert_eq!(cvt(0x0001, F32, F16, None, true, false), 0x3380_0000);
    assert_eq!(
        cvt(0x3c00, F64, F16, None, false, false),
        0x3ff0_0000_0000_0000
    );
    assert_eq!(cvt(0x3f81, F32, Bf16, None, false, false), 0x3f81_0000);
    assert_eq!(cvt(0xfc00, F32, F16, None, false, false), 0xff80_0000);
    // f32 → f16 with .ftz: a subnormal f32 is flushed before a directed rounding sees it.
    assert_eq!(cvt(1, F16, F32, Some(Rp), false, false), 1);
    assert_eq!(cvt(1, F16, F32, Some(Rp), true, false), 0);
    // f64 → f16 is rounded once (double rounding through f32 would give 0x3c00).
    let x = 1.0 + 2f64.powi(-11) + 2f64.powi(-40);
    assert_eq!(cvt(x.to_bits(), F16, F64, Some(Rn), false, false), 0x3c01);
    assert_eq!(
        cvt(65520f64.to_bits(), F16, F64, Some(Rz), false, false),
        0x7bff
    );
    // Between half formats.
    assert_eq!(cvt(0x3c00, Bf16, F16, Some(Rn), false, false), 0x3f80);
    assert_eq!(cvt(0x7f7f, F16, Bf16, Some(Rn), false, false), 0x7c00);
    assert_eq!(cvt(0x7f7f, F16, Bf16, Some(Rz), false, false), 0x7bff);
    assert_eq!(cvt(0x3c01, Bf16, F16, Some(Rz), false, false), 0x3f80);
    assert_eq!(cvt(0x3c01, Bf16, F16, Some(Rp), false, false), 0x3f81);
    // Integer rounding in the same type.
    let c = |x: f32, r| cvt(x.to_bits() as u64, F32, F32, Some(r), false, false);
    assert_eq!(c(2.5, Rni), 2f32.to_bits() as u64);
    assert_eq!(c(3.5, Rni), 4f32.to_bits() as u64);
    assert_eq!(c(-2.7, Rzi), (-2f32).to_bits() as u64);
    assert_eq!(c(-0.5, Rmi), (-1f32).to_bits() as u64);
    assert_eq!(c(-0.5, Rpi), 0x8000_0000);
    assert_eq!(c(-0.4, Rni), 0x8000_0000);
    assert_eq!(c(1e30, Rni), 1e30f32.to_bits() as u64);
    assert_eq!(c(f32::NAN, Rni), NAN32 as u64);
    assert_eq!(c(f32::NEG_INFINITY, Rzi), 0xff80_0000);
    assert_eq!(cvt(0x3e00, F16, F16, Some(Rni), false, false), 0x4000); // 1.5 → 2.0
    assert_eq!(
        cvt(2.5f64.to_bits(), F64, F64, Some(Rni), false, false),
        2f64.to_bits()
    );
    assert_eq!(
        cvt(2.5f64.to_bits(), F32, F64, Some(Rpi), false, false),
        3f32.to_bits() as u64
    );
    // .ftz on f32 → f32.
    assert_eq!(cvt(0x8000_0001, F32, F32, None, true, false), 0x8000_0000);
    assert_eq!(cvt(0x0000_0001, F32, F32, None, false, false), 1);
    // .sat: [0, 1], NaN and -0 → +0.
    let s = |x: f32| cvt(x.to_bits() as u64, F32, F32, None, false, true);
    assert_eq!(s(1.5), 0x3f80_0000);
    assert_eq!(s(-0.5), 0);
    assert_eq!(s(-0.0), 0);
    assert_eq!(s(f32::NAN), 0);
    assert_eq!(s(0.5), 0x3f00_0000);
    assert_eq!(s(f32::INFINITY), 0x3f80_0000);
    assert_eq!(
        cvt(2f32.to_bits() as u64, F16, F32, Some(Rn), false, true),
        0x3c00
    );
    assert_eq!(
        cvt(0.25f64.to_bits(), F32, F64, Some(Rn), false, true),
        0.25f32.to_bits() as u64
    );
    assert_eq!(cvt((-3f64).to_bits(), F64, F64, None, false, true), 0);
}

// ------------------------------------------------------------------------------------------------
// Integer helpers
// ------------------------------------------------------------------------------------------------

#[test]
fn alu_mul_div_rem() {
    assert_eq!(mul_hi(0xffff_ffff, 0xffff_ffff, false, 32), 0xffff_fffe);
    assert_eq!(mul_hi(0xffff_ffff, 0xffff_ffff, true, 32), 0);
    assert_eq!(mul_hi(0x8000_0000, 2, true, 32), 0xffff_ffff);
    assert_eq!(mul_hi(0x8000_0000, 0x8000_0000, true, 32), 0x4000_0000);
    assert_eq!(mul_hi(u64::MAX, u64::MAX, false, 64), 0xffff_ffff_ffff_fffe);
    assert_eq!(mul_hi(u64::MAX, 2, true, 64), u64::MAX);
    assert_eq!(mul_hi(0xffff, 0xffff, false, 16), 0xfffe);
    assert_eq!(mul_hi(0x1_ffff, 0xffff, true, 16), 0);
    assert_eq!(mul_wide(0xffff_ffff, 0xffff_ffff, true, 32), 1);
    assert_eq!(
        mul_wide(0xffff_ffff, 0xffff_ffff, false, 32),
        0xffff_fffe_0000_0001
    );
    assert_eq!(mul_wide(0xffff_ffff, 2, true, 32), (-2i64) as u64);
    assert_eq!(mul_wide(0x8000, 0x8000, true, 16), 0x4000_0000);
    assert_eq!(mul_wide(0xffff, 2, true, 16), 0xffff_fffe);
    assert_eq!(mul_wide(0xffff, 0xffff, false, 16), 0xfffe_0001);
    for signed in [false, true] {
        assert_eq!(div_int(7, 0, signed, 32), 0xffff_ffff);
        assert_eq!(div_int(7, 0, signed, 64), u64::MAX);
        assert_eq!(div_int(7, 0x1_0000_0000, signed, 32), 0xffff_ffff);
        assert_eq!(div_int(7, 0, signed, 16), 0xffff);
        assert_eq!(rem_int(7, 0, signed, 32), 7);
        assert_eq!(rem_int(0x1_0000_0007, 0, signed, 32), 7);
    }
    assert_eq!(div_int(0x8000_0000, 0xffff_ffff, true, 32), 0x8000_0000);
    assert_eq!(div_int(1 << 63, u64::MAX, true, 64), 1 << 63);
    assert_eq!(div_int(0x8000, 0xffff, true, 16), 0x8000);
    assert_eq!(rem_int(0x8000_0000, 0xffff_ffff, true, 32), 0);
    assert_eq!(rem_int(1 << 63, u64::MAX, true, 64), 0);
    assert_eq!(div_int((-7i64) as u64, 2, true, 64), (-3i64) as u64);
    assert_eq!(div_int(0xffff_fff9, 2, true, 32), 0xffff_fffd);
    assert_eq!(div_int(7, 0xffff_fffe, true, 32), 0xffff_fffd);
    assert_eq!(div_int(0xffff_ffff, 2, false, 32), 0x7fff_ffff);
    assert_eq!(rem_int(0xffff_fff9, 2, true, 32), 0xffff_ffff);
    assert_eq!(rem_int(7, 0xffff_fffe, true, 32), 1);
    assert_eq!(rem_int(0xffff_ffff, 10, false, 32), 5);
    assert_eq!(add_sat_s32(i32::MAX, 1), i32::MAX);
    assert_eq!(add_sat_s32(i32::MIN, -1), i32::MIN);
    assert_eq!(add_sat_s32(5, -7), -2);
    assert_eq!(sub_sat_s32(i32::MIN, 1), i32::MIN);
    assert_eq!(sub_sat_s32(i32::MAX, -1), i32::MAX);
    assert_eq!(sub_sat_s32(0, i32::MIN), i32::MAX);
}

#[test]
fn alu_shifts() {
    assert_eq!(shl(1, 31, 32), 0x8000_0000);
    assert_eq!(shl(1, 32, 32), 0);
    assert_eq!(shl(1, 33, 32), 0);
    assert_eq!(shl(1, u64::MAX, 32), 0);
    assert_eq!(shl(0xffff_ffff, 4, 32), 0xffff_fff0);
    assert_eq!(shl(1, 63, 64), 1 << 63);
    assert_eq!(shl(1, 64, 64), 0);
    assert_eq!(shl(0x8001, 1, 16), 2);
    assert_eq!(shl(0x81, 1, 8), 2);
    assert_eq!(shr(0x8000_0000, 31, 32, true), 0xffff_ffff);
    assert_eq!(shr(0x8000_0000, 32, 32, true), 0xffff_ffff);
    assert_eq!(shr(0x8000_0000, 1000, 32, true), 0xffff_ffff);
    assert_eq!(shr(0x7fff_ffff, 40, 32, true), 0);
    assert_eq!(shr(0x8000_0000, 4, 32, true), 0xf800_0000);
    assert_eq!(shr(0x8000_0000, 4, 32, false), 0x0800_0000);
    assert_eq!(shr(0x8000_0000, 32, 32, false), 0);
    assert_eq!(shr(0xffff_ffff_8000_0000, 0, 32, false), 0x8000_0000);
    assert_eq!(shr(1 << 63, 64, 64, true), u64::MAX);
    assert_eq!(shr(1 << 63, 63, 64, false), 1);
    assert_eq!(shr(1 << 63, 64, 64, false), 0);
    assert_eq!(shr(0x8000, 15, 16, true), 0xffff);
    assert_eq!(shr(0x8000, 16, 16, true), 0xffff);
    assert_eq!(shr(0x8000, 16, 16, false), 0);
    assert_eq!(shf(0x1234_5678, 0x9abc_def0, 8, true, true), 0xbcde_f012);
    assert_eq!(shf(0x1234_5678, 0x9abc_def0, 8, false, true), 0xf012_3456);
    assert_eq!(shf(0x1234_5678, 0x9abc_def0, 40, true, true), 0xbcde_f012);
    assert_eq!(shf(0x1234_5678, 0x9abc_def0, 40, true, false), 0x1234_5678);
    assert_eq!(shf(0x1234_5678, 0x9abc_def0, 40, false, false), 0x9abc_def0);
    assert_eq!(shf(0x1234_5678, 0x9abc_def0, 32, true, true), 0x9abc_def0);
    assert_eq!(shf(0x1234_5678, 0x9abc_def0, 32, false, false), 0x9abc_def0);
    assert_eq!(shf(0x1234_5678, 0x9abc_def0, 0, true, false), 0x9abc_def0);
    assert_eq!(shf(0x1234_5678, 0x9abc_def0, 0, false, false), 0x1234_5678);
    assert_eq!(shf(0x8000_0000, 0, 1, true, true), 1);
    assert_eq!(shf(0, 1, 1, false, true), 0x8000_0000);
}

/// Bit-by-bit reference of the ISA pseudo-code for bfe.
fn bfe_ref(a: u64, pos: u32, len: u32, signed: bool, bits: u32) -> u64 {
    let (pos, len) = ((pos & 0xff) as u64, (len & 0xff) as u64);
    let msb = bits as u64 - 1;
    let bit = |i: u64| (a >> i) & 1;
    let sbit = if !signed || len == 0 {
        0
    } else {
        bit((pos + len - 1).min(msb))
    };
    let mut d = 0u64;
    for i in 0..bits as u64 {
        let v = if i < len && pos + i <= msb {
            bit(pos + i)
        } else {
            sbit
        };
        d |= v << i;
    }
    d
}

/// Bit-by-bit reference of the ISA pseudo-code for bfi.
fn bfi_ref(a: u64, b: u64, pos: u32, len: u32, bits: u32) -> u64 {
    let (pos, len) = ((pos & 0xff) as u64, (len & 0xff) as u64);
    let msb = bits as u64 - 1;
    let mut f = b & if bits == 64 {
        u64::MAX
    } else {
        (1 << bits) - 1
    };
    let mut i = 0;
    while i < len && pos + i <= msb {
        f = (f & !(1 << (pos + i))) | (((a >> i) & 1) << (pos + i));
        i += 1;
    }
    f
}

#[test]
fn alu_bitfields() {
    assert_eq!(bfe(0x1234_5678, 4, 8, false, 32), 0x67);
    assert_eq!(bfe(0x1234_5678, 4, 8, true, 32), 0x67);
    assert_eq!(bfe(0x0000_f000, 12, 4, true, 32), 0xffff_ffff);
    assert_eq!(bfe(0x0000_f000, 12, 4, false, 32), 0xf);
    assert_eq!(bfe(0x8000_0000, 31, 1, true, 32), 0xffff_ffff);
    assert_eq!(bfe(0x8000_0000, 31, 5, true, 32), 0xffff_ffff);
    assert_eq!(bfe(0x8000_0000, 31, 5, false, 32), 1);
    assert_eq!(bfe(0xffff_ffff, 0, 0, true, 32), 0);
    assert_eq!(bfe(0xffff_ffff, 5, 0x100, true, 32), 0); // len uses 8 bits → 0
    assert_eq!(bfe(0x8000_0000, 40, 5, true, 32), 0xffff_ffff); // pos past msb: all sign
    assert_eq!(bfe(0x7fff_ffff, 40, 5, true, 32), 0);
    assert_eq!(bfe(0x8000_0000, 40, 5, false, 32), 0);
    assert_eq!(bfe(0xf0, 0x104, 300, false, 32), 0xf); // pos 4, len 44
    assert_eq!(bfe(0xf0, 4, 255, true, 32), 0xf);
    assert_eq!(bfe(1 << 63, 60, 10, true, 64), 0xffff_ffff_ffff_fff8);
    assert_eq!(bfe(0xf << 60, 60, 10, true, 64), u64::MAX);
    assert_eq!(bfe(0xdead_beef_0000_0000, 32, 16, false, 64), 0xbeef);
    assert_eq!(
        bfe(0xdead_beef_0000_0000, 32, 16, true, 64),
        0xffff_ffff_ffff_beef
    );
    assert_eq!(bfi(0xff, 0, 8, 4, 32), 0xf00);
    assert_eq!(bfi(0xffff_ffff, 0, 28, 8, 32), 0xf000_0000);
    assert_eq!(bfi(0xf, 0x1234_5678, 40, 4, 32), 0x1234_5678);
    assert_eq!(bfi(1, 0xffff_ffff, 0, 0, 32), 0xffff_ffff);
    assert_eq!(bfi(0, 0xffff_ffff, 0x104, 0x104, 32), 0xffff_ff0f);
    assert_eq!(bfi(0xabcd, 0, 48, 32, 64), 0xabcd_0000_0000_0000);
    assert_eq!(bfi(u64::MAX, 0, 0, 64, 64), u64::MAX);
    let mut rng = Rng(5);
    for _ in 0..20_000 {
        let (a, b) = (rng.next(), rng.next());
        let pos = if rng.next() & 1 == 0 {
            rng.below(80) as u32
        } else {
            rng.next() as u32
        };
        let len = if rng.next() & 1 == 0 {
            rng.below(80) as u32
        } else {
            rng.next() as u32
        };
        for bits in [32, 64] {
            let m = if bits == 64 { u64::MAX } else { 0xffff_ffff };
            for s in [false, true] {
                assert_eq!(
                    bfe(a, pos, len, s, bits),
                    bfe_ref(a & m, pos, len, s, bits),
                    "{a:#x} {pos} {len} {s} {bits}"
                );
            }
            assert_eq!(
                bfi(a, b, pos, len, bits),
                bfi_ref(a, b, pos, len, bits),
                "{a:#x} {b:#x} {pos} {len} {bits}"
            );
        }
    }
}

#[test]
fn alu_bit_counting() {
    assert_eq!(bfind(0, false, 32, false), 0xffff_ffff);
    assert_eq!(bfind(0, false, 32, true), 0xffff_ffff);
    assert_eq!(bfind(1, false, 32, false), 0);
    assert_eq!(bfind(1, false, 32, true), 31);
    assert_eq!(bfind(0x8000_0000, false, 32, false), 31);
    assert_eq!(bfind(0x8000_0000, false, 32, true), 0);
    assert_eq!(bfind(0x1_0000_0000, false, 32, false), 0xffff_ffff);
    assert_eq!(bfind(0xffff_ffff, true, 32, false), 0xffff_ffff);
    assert_eq!(bfind(0, true, 32, false), 0xffff_ffff);
    assert_eq!(bfind(0x8000_0000, true, 32, false), 30);
    assert_eq!(bfind(0xffff_fffe, true, 32, false), 0);
    assert_eq!(bfind(0x4000_0000, true, 32, false), 30);
    assert_eq!(bfind(0x4000_0000, true, 32, true), 1);
    assert_eq!(bfind(1 << 40, false, 64, false), 40);
    assert_eq!(bfind(1 << 40, false, 64, true), 23);
    assert_eq!(bfind(u64::MAX, true, 64, false), 0xffff_ffff);
    assert_eq!(bfind(1 << 63, true, 64, false), 62);
    // __ffs pattern: brev + bfind.shiftamt.
    assert_eq!(bfind(brev(0b1000, 32), false, 32, true), 3);
    assert_eq!(popc(0x00ff_00ff), 16);
    assert_eq!(popc(u64::MAX), 64);
    assert_eq!(popc(0), 0);
    assert_eq!(clz(0, 32), 32);
    assert_eq!(clz(1, 32), 31);
    assert_eq!(clz(0x8000_0000, 32), 0);
    assert_eq!(clz(0x1_0000_0000, 32), 32);
    assert_eq!(clz(1, 64), 63);
    assert_eq!(clz(0, 64), 64);
    assert_eq!(brev(1, 32), 0x8000_0000);
    assert_eq!(brev(0x1234_5678, 32), 0x1e6a_2c48);
    assert_eq!(brev(0xffff_ffff_0000_0001, 32), 0x8000_0000);
    assert_eq!(brev(1, 64), 1 << 63);
    assert_eq!(brev(0x0123_4567_89ab_cdef, 64), 0xf7b3_d591_e6a2_c480);
}

#[test]
fn alu_prmt() {
    let (a, b) = (0x4433_2211, 0x8877_6655);
    assert_eq!(prmt(a, b, 0x3210, None), a);
    assert_eq!(prmt(a, b, 0x7654, None), b);
    assert_eq!(prmt(a, b, 0x0123, None), 0x1122_3344);
    assert_eq!(prmt(a, b, 0x5410, None), 0x6655_2211);
    assert_eq!(prmt(a, b, 21520, None), 0x6655_2211); // __byte_perm(x, y, 0x5410)
    assert_eq!(prmt(a, b, 0x000f, None), 0x1111_11ff);
    assert_eq!(prmt(a, b, 0x8888, None), 0);
    assert_eq!(prmt(a, b, 0xffff_3210, None), a); // only c[15:0] is used
    assert_eq!(prmt(0x0000_0080, 0, 0x8888, None), 0xffff_ffff);
    let table: [(&str, [u32; 4]); 6] = [
        ("f4e", [0x4433_2211, 0x5544_3322, 0x6655_4433, 0x7766_5544]),
        ("b4e", [0x6677_8811, 0x7788_1122, 0x8811_2233, 0x1122_3344]),
        ("rc8", [0x1111_1111, 0x2222_2222, 0x3333_3333, 0x4444_4444]),
        ("ecl", [0x4433_2211, 0x4433_2222, 0x4433_3333, 0x4444_4444]),
        ("ecr", [0x1111_1111, 0x2222_2211, 0x3333_2211, 0x4433_2211]),
        ("rc16", [0x2211_2211, 0x4433_4433, 0x2211_2211, 0x4433_4433]),
    ];
    for (mode, want) in table {
        for (s, w) in want.iter().enumerate() {
            assert_eq!(prmt(a, b, s as u32, Some(mode)), *w, "{mode} {s}");
            // Only c[1:0] matters in the specialised modes (and no sign replication).
            assert_eq!(
                prmt(a, b, 0xffff_fff8 | s as u32, Some(mode)),
                *w,
                "{mode} {s} high bits"
            );
            assert_eq!(
                prmt_mode(a, b, s as u32, PrmtMode::parse(mode).unwrap()),
                *w
            );
        }
    }
}

#[test]
fn alu_lop3() {
    let mut rng = Rng(3);
    for _ in 0..2_000 {
        let (a, b, c) = (rng.next() as u32, rng.next() as u32, rng.next() as u32);
        assert_eq!(lop3(a, b, c, 0xF0), a);
        assert_eq!(lop3(a, b, c, 0xCC), b);
        assert_eq!(lop3(a, b, c, 0xAA), c);
        assert_eq!(lop3(a, b, c, 0x96), a ^ b ^ c);
        assert_eq!(lop3(a, b, c, 0xE8), (a & b) | (a & c) | (b & c));
        assert_eq!(lop3(a, b, c, 0xF8), a | (b & c));
        assert_eq!(lop3(a, b, c, 0x80), a & b & c);
        assert_eq!(lop3(a, b, c, 0xFE), a | b | c);
        assert_eq!(lop3(a, b, c, 0x3C), a ^ b);
        assert_eq!(lop3(a, b, c, 0xCA), (a & b) | (!a & c));
        assert_eq!(lop3(a, b, c, 0x40), a & b & !c);
        assert_eq!(lop3(a, b, c, 0x00), 0);
        assert_eq!(lop3(a, b, c, 0xFF), u32::MAX);
        // Any LUT: F(0xF0, 0xCC, 0xAA) == lut, evaluated per bit.
        let lut = rng.next() as u8;
        assert_eq!(lop3(0xF0, 0xCC, 0xAA, lut) & 0xff, lut as u32);
        let r = lop3(a, b, c, lut);
        for i in 0..32 {
            let idx = ((a >> i) & 1) << 2 | ((b >> i) & 1) << 1 | ((c >> i) & 1);
            assert_eq!((r >> i) & 1, (lut as u32 >> idx) & 1);
        }
    }
}

#[test]
fn alu_misc_int() {
    assert_eq!(sad(1, 5, 10, false, 32), 14);
    assert_eq!(sad(0xffff_ffff, 1, 0, true, 32), 2);
    assert_eq!(sad(0xffff_ffff, 1, 0, false, 32), 0xffff_fffe);
    assert_eq!(sad(0x8000_0000, 0x7fff_ffff, 0, true, 32), 0xffff_ffff);
    assert_eq!(sad(0x8000_0000, 0x7fff_ffff, 1, true, 32), 0);
    assert_eq!(sad(1 << 63, (1 << 63) - 1, 0, true, 64), u64::MAX);
    assert_eq!(sad(3, 10, 5, true, 64), 12);
    assert_eq!(min_int(0xffff_ffff, 1, true, 32), 0xffff_ffff);
    assert_eq!(min_int(0xffff_ffff, 1, false, 32), 1);
    assert_eq!(max_int(0xffff_ffff, 1, true, 32), 1);
    assert_eq!(max_int(0xffff_ffff, 1, false, 32), 0xffff_ffff);
    assert_eq!(min_int(u64::MAX, 0, true, 64), u64::MAX);
    assert_eq!(max_int(u64::MAX, 0, false, 64), u64::MAX);
    assert_eq!(min_int(0x1_0005, 0x2_0003, false, 16), 3);
    assert_eq!(max_int(0x8000, 0x7fff, true, 16), 0x7fff);
    assert_eq!(abs_int(0x8000_0000, 32), 0x8000_0000);
    assert_eq!(abs_int(0xffff_ffff, 32), 1);
    assert_eq!(abs_int(5, 32), 5);
    assert_eq!(abs_int(0x8000, 16), 0x8000);
    assert_eq!(abs_int(1 << 63, 64), 1 << 63);
    assert_eq!(neg_int(1, 32), 0xffff_ffff);
    assert_eq!(neg_int(0x8000_0000, 32), 0x8000_0000);
    assert_eq!(neg_int(0, 64), 0);
    assert_eq!(neg_int(1, 16), 0xffff);
    assert_eq!(copysign32(-1.0, 2.0), -2.0);
    assert_eq!(copysign32(1.0, -2.0), 2.0);
    assert_eq!(b32(copysign32(-0.0, 0.0)), 0x8000_0000);
    assert_eq!(b32(copysign32(-1.0, f(0x7fc0_0000))), 0xffc0_0000);
    assert_eq!(copysign64(-1.0, 3.0), -3.0);
    assert_eq!(copysign64(1.0, f64::NEG_INFINITY), f64::INFINITY);
    assert_eq!(atom_inc(0, 5), 1);
    assert_eq!(atom_inc(4, 5), 5);
    assert_eq!(atom_inc(5, 5), 0);
    assert_eq!(atom_inc(6, 5), 0);
    assert_eq!(atom_inc(3, 0), 0);
    assert_eq!(atom_inc(u32::MAX - 1, u32::MAX), u32::MAX);
    assert_eq!(atom_dec(0, 5), 5);
    assert_eq!(atom_dec(6, 5), 5);
    assert_eq!(atom_dec(3, 5), 2);
    assert_eq!(atom_dec(5, 5), 4);
    assert_eq!(atom_dec(1, 0), 0);
    assert_eq!(atom_dec(0, 0), 0);
}

#[test]
fn alu_shfl_source() {
    use ShflMode::*;
    // Width 32: down/bfly use c = 31, up uses c = 0.
    assert_eq!(shfl_source(Down, 27, 4, 31), (31, true));
    assert_eq!(shfl_source(Down, 30, 4, 31), (30, false));
    assert_eq!(shfl_source(Down, 0, 16, 31), (16, true));
    assert_eq!(shfl_source(Bfly, 5, 16, 31), (21, true));
    assert_eq!(shfl_source(Bfly, 31, 1, 31), (30, true));
    assert_eq!(shfl_source(Up, 2, 3, 0), (2, false));
    assert_eq!(shfl_source(Up, 5, 3, 0), (2, true));
    assert_eq!(shfl_source(Up, 3, 3, 0), (0, true));
    assert_eq!(shfl_source(Idx, 7, 20, 31), (20, true));
    assert_eq!(shfl_source(Idx, 7, 40, 31), (8, true)); // b uses 5 bits
                                                        // __shfl_sync(m, x, 3, 8) → c = 0x181f: lane 3 of each group of 8.
    for lane in 0..32 {
        assert_eq!(shfl_source(Idx, lane, 3, 0x181f), ((lane & !7) | 3, true));
        assert_eq!(shfl_source(Idx, lane, 11, 0x181f), ((lane & !7) | 3, true));
    }
    assert_eq!(shfl_source(Idx, 13, 3, 6175), (11, true));
    // Width 8 for up (c = 0x1800) and down/bfly (c = 0x181f).
    assert_eq!(shfl_source(Up, 9, 1, 0x1800), (8, true));
    assert_eq!(shfl_source(Up, 8, 1, 0x1800), (8, false));
    assert_eq!(shfl_source(Down, 6, 1, 0x181f), (7, true));
    assert_eq!(shfl_source(Down, 7, 1, 0x181f), (7, false));
    assert_eq!(shfl_source(Down, 15, 1, 0x181f), (15, false));
    assert_eq!(shfl_source(Bfly, 5, 2, 0x181f), (7, true));
    assert_eq!(shfl_source(Bfly, 5, 16, 0x181f), (5, false)); // later group: own value
    assert_eq!(shfl_source(Bfly, 21, 16, 0x181f), (5, true)); // earlier group: allowed
}

// ------------------------------------------------------------------------------------------------
// Fast paths agree with the generic soft-float core
// ------------------------------------------------------------------------------------------------

#[test]
fn alu_f32_directed_fast_path_matches_soft() {
    let mut rng = Rng(0xfa57);
    let specials = [
        0.0,
        -0.0,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        f32::MAX,
        -f32::MAX,
        f(1),
        f(0x8000_0001),
        f32::MIN_POSITIVE,
        1.0,
        -1.0,
    ];
    for i in 0..60_000 {
        let mut v = [rng.f32(), rng.f32(), rng.f32()];
        if i % 5 == 0 {
            v[rng.below(3) as usize] = specials[rng.below(specials.len() as u64) as usize];
        }
        if i % 7 == 0 {
            v[2] = -(v[0] * v[1]); // near-exact cancellation in fma
        }
        let [a, b, c] = v;
        for op in [FOp::Add, FOp::Sub, FOp::Mul, FOp::Fma] {
            for r in [Rounding::Rz, Rounding::Rm, Rounding::Rp] {
                let want = soft(op, a as f64, b as f64, c as f64, F32, r) as u32;
                let got = b32(f32_op(op, a, b, c, r, false));
                assert_eq!(got, want, "{op:?} {r:?} {a:e} {b:e} {c:e}");
                if let Some(x) = f32_directed(op, a, b, c, r) {
                    assert_eq!(b32(x), want, "fast {op:?} {r:?} {a:e} {b:e} {c:e}");
                }
            }
        }
    }
}

#[test]
fn alu_f32_to_f16_fast_path_matches_soft() {
    let mut rng = Rng(0xf16);
    let check = |x: f32| {
        assert_eq!(
            f32_to_f16_rn(x),
            encode(x as f64, F16, Rounding::Rn) as u16,
            "{x:e} {:#x}",
            b32(x)
        );
    };
    for _ in 0..200_000 {
        check(rng.f32());
        check(f(rng.next() as u32));
        // Dense around the f16 range: exponents 2^-27 .. 2^17.
        check(f(
            (((rng.below(45) + 100) as u32) << 23) | (rng.next() as u32 & 0x807f_ffff)
        ));
    }
    for b in [
        0x477f_efffu32,
        0x477f_f000,
        0x3880_0000,
        0x387f_ffff,
        0x3300_0000,
        0x3300_0001,
        0x7f80_0000,
    ] {
        check(f(b));
        check(f(b | 0x8000_0000));
    }
}

#[test]
#[ignore = "exhaustive over all 2^32 f32 values; run in release"]
fn alu_f32_to_f16_fast_path_exhaustive() {
    for b in 0..=u32::MAX {
        let x = f(b);
        assert_eq!(
            f32_to_f16_rn(x),
            encode(x as f64, F16, Rounding::Rn) as u16,
            "{b:#x}"
        );
    }
}

#[test]
fn alu_cvt_f32_to_int_fast_path_matches_f64_path() {
    use Type::*;
    let mut rng = Rng(0xc47);
    let mut edges = vec![f32::INFINITY, f32::NEG_INFINITY, f32::MAX, f(1), 0.0, -0.0];
    for e in [0, 1, 22, 23, 24, 30, 31, 32, 33, 52, 53, 61, 62, 63, 64, 65] {
        let p = 2f32.powi(e);
        for v in [
            p,
            next_up32(p),
            next_down32(p),
            p + 0.5,
            p - 0.5,
            p * 1.5,
            0.5 * p,
        ] {
            edges.push(v);
            edges.push(-v);
        }
    }
    let n = edges.len();
    for i in 0..50_000 + n {
        let x = match edges.get(i) {
            Some(&e) => e,
            None => match i % 3 {
                0 => rng.f32(),
                1 => f(rng.next() as u32),
                _ => (rng.next() as i64 as f32) * 2f32.powi(-(rng.below(70) as i32)),
            },
        };
        if x.is_nan() {
            continue;
        }
        let (fb, db) = (b32(x) as u64, (x as f64).to_bits());
        for dst in [S32, U32, S64, U64] {
            for r in [
                Rounding::Rni,
                Rounding::Rzi,
                Rounding::Rmi,
                Rounding::Rpi,
                Rounding::Rna,
            ] {
                assert_eq!(
                    cvt(fb, dst, F32, Some(r), false, false),
                    cvt(db, dst, F64, Some(r), false, false),
                    "{x:e} {dst:?} {r:?}"
                );
            }
        }
    }
}
