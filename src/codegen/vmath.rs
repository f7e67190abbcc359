//! Inline vector approximations of the transcendental unary ops.
//!
//! Enters: a `FunctionBuilder` positioned inside a block and a vector value of
//! type `f32x4` or `f64x2`. Leaves: the op applied lanewise, as straight-line
//! code (no new blocks), so that the code generator can put it in any loop
//! body. It exists because a libm call per element costs more than the whole
//! fused element-wise pass around it, and Cranelift has no vector libm.
//!
//! Only float arithmetic (`fadd`, `fmul`, `fdiv`, `fma`, `fabs`, `floor`,
//! `nearest`), `fcmp` + `bitselect`, same-width `bitcast`s and the SSE2
//! integer ops `iadd`, `band`, `ishl_imm_u`, `ushr_imm_u` are used. There is
//! no float↔int conversion and no arithmetic shift, because on `i64x2`
//! Cranelift 0.135's x64 back end has no rule for `fcvt_to_sint_sat` from
//! `f64x2`, converts `i64x2` to `f64x2` lane by lane through general
//! registers, and has a one-instruction `sshr` only with AVX-512; integers are
//! moved in and out of floats by the "shifter" trick instead (adding 1.5·2^52
//! puts an integer in the low mantissa bits).
//! Clamps are written `bitselect(fcmp(lt, hi, x), hi, x)`, which lowers to one
//! `minps`/`maxps` whose operand order returns `x` when `x` is NaN.
//! The target needs `has_sse41` (`floor`, `nearest` are one `roundps`) and
//! should have `has_fma` (otherwise every `fma` is a libm call).
//!
//! # Algorithms
//!
//! Coefficients are Taylor coefficients (1/k!, 2/(2k+1)) rounded to the lane
//! type, with the degree chosen so that the truncation error is far below
//! half an ulp on the reduced range; no minimax fit is needed at these degrees.
//!
//! - **exp**: x is clamped to [-104, 89] (f32) / [-746, 710] (f64), just past
//!   where the true result underflows to 0 or overflows, so that the clamped
//!   value gives the same rounded result. n = nearest(x·log₂e),
//!   r = x − n·ln2 by Cody–Waite with `fma` (the first step is exact),
//!   |r| ≤ ln2/2. eʳ = 1 + r·P(r) with P of degree 6 (f32) / 12 (f64), the
//!   last step one `fma`. The scale 2ⁿ is applied as two factors
//!   2^⌊n/2⌋ · 2^(n−⌊n/2⌋), each a normal number, so results near overflow
//!   are finite and overflow to +inf exactly where eˣ does (x > 88.72 /
//!   709.78), and denormal results are rounded once, gradually (not flushed).
//! - **log**: denormal x is first scaled by 2^24 / 2^54. x = 2ᵉ·m with
//!   m ∈ [√½, √2) from the bits; with f = m − 1 (exact) and s = f/(2+f),
//!   log(1+f) = f − (f²/2 − s·(f²/2 + R(s²))), R = Σ 2s^2k/(2k+1) to
//!   k = 5 (f32) / 12 (f64), so the big term f carries no rounding error.
//!   Then e·ln2 is added with a two-part ln2. log(0) = −inf, log(x<0) = NaN,
//!   log(+inf) = +inf, NaN → NaN.
//! - **tanh**: tanh|x| = E/(E+2) with E = expm1(2|x|). Here the reduction
//!   rounds down, n = ⌊2|x|·log₂e⌋ and r ∈ [0, ln2), so that in
//!   E = 2ⁿ·q + (2ⁿ−1), q = r + r²·Q(r) (Taylor to degree 9 / 17), every term
//!   is positive: no cancellation, and tanh x = x exactly for tiny x. One
//!   correction step, t += (E − t·d − t·δ)/d with δ the rounding error of
//!   d = E + 2, removes the roundings of the sum and the division. |x| is
//!   clamped at 9.5 / 20, where E/(E+2) already rounds to 1; the sign is
//!   copied from x, so tanh(−0) = −0.
//! - **sigmoid**: with e = exp(−|x|), 1/(1+e) for x ≥ 0 and e/(1+e) for x < 0
//!   (one division): never overflows, exactly 1 and 0 (by underflow, with
//!   gradual denormals) in saturation.
//! - **softplus**: max(x, 0) + log1p(e), e = exp(−|x|) ∈ [0, 1]; log1p(e)
//!   uses log's polynomial on f = e (e < ½) or f = (e − 1)/2 plus ln2
//!   (e ≥ ½, exact by Sterbenz). softplus(x) = x for large x, ≈ eˣ for very
//!   negative x (0 only by underflow).
//!
//! # Accuracy
//!
//! [`max_ulp`] gives the bound asserted by `tests/vmath.rs`, in ulp of the
//! result type (the ulp of a denormal result is the smallest denormal). f32 is
//! measured against the f64 definition in `scalar`; f64 against the f64 libm
//! (glibc documents 1–2 ulp for exp, log, log1p and tanh), so for f64
//! the error to the true value may exceed the bound by libm's own error (at
//! the worst f64 points found, a 60-digit evaluation put ours within 1.2 ulp
//! and libm's tanh 1.9 ulp off, the other way).
//! The measured maxima are in `docs/architecture.md`, "Vector math".

use cranelift_codegen::ir::condcodes::FloatCC;
use cranelift_codegen::ir::{InstBuilder, MemFlagsData, Type, Value, types};
use cranelift_frontend::FunctionBuilder;

use crate::scalar::Unary;

/// The documented maximum error of each op, in ulp of the result type, as
/// tested by `tests/vmath.rs`; `None` for ops that are not approximated here.
pub fn max_ulp(op: Unary, ty: Type) -> Option<f64> {
    let f32 = ty == types::F32X4;
    // [f32, f64]; f64 is the distance to glibc's libm (see the module doc).
    let bound = match op {
        Unary::Exp => [1.0, 1.0],
        Unary::Log => [1.0, 1.0],
        Unary::Tanh => [1.5, 3.0],
        Unary::Sigmoid => [2.5, 2.0],
        Unary::Softplus => [2.0, 2.0],
        _ => return None,
    };
    Some(if f32 { bound[0] } else { bound[1] })
}

/// The lane type's constants, and a builder that splats them.
struct Lanes<'a, 'b> {
    b: &'a mut FunctionBuilder<'b>,
    ty: Type,
    int: Type,
    f32: bool,
}

impl<'a, 'b> Lanes<'a, 'b> {
    fn new(b: &'a mut FunctionBuilder<'b>, ty: Type) -> Self {
        let f32 = match ty {
            types::F32X4 => true,
            types::F64X2 => false,
            _ => panic!("vmath takes f32x4 or f64x2, not {ty}"),
        };
        let int = if f32 { types::I32X4 } else { types::I64X2 };
        Lanes { b, ty, int, f32 }
    }

    /// `c` rounded to the lane type, in every lane.
    fn c(&mut self, c: f64) -> Value {
        let s = if self.f32 {
            self.b.ins().f32const(c as f32)
        } else {
            self.b.ins().f64const(c)
        };
        self.b.ins().splat(self.ty, s)
    }

    /// The integer `bits` in every lane of the integer vector type.
    fn i(&mut self, bits: u64) -> Value {
        let s = if self.f32 {
            self.b.ins().iconst(types::I32, bits as u32 as i64)
        } else {
            self.b.ins().iconst(types::I64, bits as i64)
        };
        self.b.ins().splat(self.int, s)
    }

    fn as_int(&mut self, x: Value) -> Value {
        self.b.ins().bitcast(self.int, MemFlagsData::new(), x)
    }

    fn as_float(&mut self, x: Value) -> Value {
        self.b.ins().bitcast(self.ty, MemFlagsData::new(), x)
    }

    /// The bits of `c` rounded to the lane type.
    fn bits_of(&self, c: f64) -> u64 {
        if self.f32 {
            (c as f32).to_bits() as u64
        } else {
            c.to_bits()
        }
    }

    /// An `fcmp` mask as a float vector, as `bitselect` wants it.
    fn cmp(&mut self, cc: FloatCC, x: Value, y: Value) -> Value {
        let m = self.b.ins().fcmp(cc, x, y);
        self.as_float(m)
    }

    /// `if cond { yes } else { no }` lanewise; `cond` from [`Lanes::cmp`].
    fn select(&mut self, cond: Value, yes: Value, no: Value) -> Value {
        self.b.ins().bitselect(cond, yes, no)
    }

    /// min(x, hi), keeping NaN: one `minps hi, x` (returns `x` if unordered).
    fn at_most(&mut self, x: Value, hi: f64) -> Value {
        let hi = self.c(hi);
        let c = self.cmp(FloatCC::LessThan, hi, x);
        self.select(c, hi, x)
    }

    /// max(x, lo), keeping NaN: one `maxps lo, x`.
    fn at_least(&mut self, x: Value, lo: f64) -> Value {
        let lo = self.c(lo);
        let c = self.cmp(FloatCC::LessThan, x, lo);
        self.select(c, lo, x)
    }

    fn add(&mut self, x: Value, y: Value) -> Value {
        self.b.ins().fadd(x, y)
    }
    fn sub(&mut self, x: Value, y: Value) -> Value {
        self.b.ins().fsub(x, y)
    }
    fn mul(&mut self, x: Value, y: Value) -> Value {
        self.b.ins().fmul(x, y)
    }
    fn div(&mut self, x: Value, y: Value) -> Value {
        self.b.ins().fdiv(x, y)
    }
    fn fma(&mut self, x: Value, y: Value, z: Value) -> Value {
        self.b.ins().fma(x, y, z)
    }

    /// Horner's scheme: c[0] + x·(c[1] + x·(...)).
    fn horner(&mut self, x: Value, c: &[f64]) -> Value {
        let mut acc = self.c(c[c.len() - 1]);
        for &k in c[..c.len() - 1].iter().rev() {
            let k = self.c(k);
            acc = self.fma(acc, x, k);
        }
        acc
    }

    /// Mantissa bits, exponent bias.
    fn format(&self) -> (i64, u64) {
        if self.f32 { (23, 127) } else { (52, 1023) }
    }

    /// 2ᵏ for an integer-valued float k with 2ᵏ normal. Adding 1.5·2^p puts
    /// k (two's complement) in the low mantissa bits; shifting them up to
    /// the exponent field and adding the bias gives 2ᵏ's bits.
    fn pow2(&mut self, k: Value) -> Value {
        let (p, bias) = self.format();
        let shifter = self.c(1.5 * (p as f64).exp2());
        let t = self.add(k, shifter);
        let t = self.as_int(t);
        let t = self.b.ins().ishl_imm_u(t, p);
        let bias = self.i(bias << p);
        let t = self.b.ins().iadd(t, bias);
        self.as_float(t)
    }

    /// x = n·ln2 + r with n integer-valued and |r| ≤ ln2/2 (plus rounding).
    fn reduce(&mut self, x: Value) -> (Value, Value) {
        self.reduce_by(x, false)
    }

    /// As [`Lanes::reduce`], or with r ∈ [0, ln2) when `down` (n = ⌊x·log₂e⌋).
    fn reduce_by(&mut self, x: Value, down: bool) -> (Value, Value) {
        let (hi, lo) = ln2_parts(self.f32);
        let log2e = self.c(std::f64::consts::LOG2_E);
        let n = self.mul(x, log2e);
        let n = if down {
            self.b.ins().floor(n)
        } else {
            self.b.ins().nearest(n)
        };
        let minus_n = self.b.ins().fneg(n);
        // Exact: n·hi is exact inside the fma and x − n·hi fits the format.
        let hi = self.c(hi);
        let r = self.fma(minus_n, hi, x);
        let lo = self.c(lo);
        let r = self.fma(minus_n, lo, r);
        (n, r)
    }

    /// P with eʳ = 1 + r·P(r): Taylor coefficients 1/(k+1)!.
    fn exp_poly(&mut self, r: Value) -> Value {
        let degree = if self.f32 { 6 } else { 12 };
        let mut c = Vec::with_capacity(degree + 1);
        let mut fact = 1.0_f64;
        for k in 0..=degree {
            fact *= (k + 1) as f64;
            c.push(1.0 / fact);
        }
        self.horner(r, &c)
    }

    fn exp(&mut self, x: Value) -> Value {
        let (lo, hi) = if self.f32 {
            (-104.0, 89.0)
        } else {
            (-746.0, 710.0)
        };
        let x = self.at_least(x, lo);
        let x = self.at_most(x, hi);
        let (n, r) = self.reduce(x);
        let p = self.exp_poly(r);
        let one = self.c(1.0);
        let e = self.fma(r, p, one);
        // Two normal factors: n reaches 128 / 1024 and −150 / −1076.
        let half = self.c(0.5);
        let k1 = self.mul(n, half);
        let k1 = self.b.ins().floor(k1);
        let k2 = self.sub(n, k1);
        let s1 = self.pow2(k1);
        let s2 = self.pow2(k2);
        let e = self.mul(e, s1);
        self.mul(e, s2)
    }

    /// (f, c) with log(1+f) = f − c, for f ∈ [−0.3, 0.5]: the term f is
    /// exact, so the roundings are all in the small correction c.
    fn log1p_parts(&mut self, f: Value) -> (Value, Value) {
        let two = self.c(2.0);
        let d = self.add(two, f);
        let s = self.div(f, d);
        let z = self.mul(s, s);
        let terms = if self.f32 { 5 } else { 12 };
        let c: Vec<f64> = (1..=terms).map(|k| 2.0 / (2 * k + 1) as f64).collect();
        let r = self.horner(z, &c);
        let r = self.mul(r, z);
        let half = self.c(0.5);
        let hf = self.mul(f, half);
        let hfsq = self.mul(hf, f);
        let t = self.add(hfsq, r);
        let t = self.mul(s, t);
        let c = self.sub(hfsq, t);
        (f, c)
    }

    /// k·ln2 + f − c, with k·ln2 in two parts (k integer-valued).
    fn combine(&mut self, k: Value, f: Value, c: Value) -> Value {
        let (hi, lo) = ln2_parts(self.f32);
        let lo = self.c(lo);
        let nc = self.b.ins().fneg(c);
        let low = self.fma(k, lo, nc);
        let low = self.add(f, low);
        let hi = self.c(hi);
        self.fma(k, hi, low)
    }

    fn log(&mut self, x: Value) -> Value {
        let (p, _) = self.format();
        let (min_positive, scale) = if self.f32 {
            (f32::MIN_POSITIVE as f64, 24)
        } else {
            (f64::MIN_POSITIVE, 54)
        };
        // Denormals: scale into the normal range, take it off the exponent.
        let minp = self.c(min_positive);
        let tiny = self.cmp(FloatCC::LessThan, x, minp);
        let up = self.c((scale as f64).exp2());
        let scaled = self.mul(x, up);
        let xs = self.select(tiny, scaled, x);
        let shift = self.c(scale as f64);
        let zero = self.c(0.0);
        let shift = self.select(tiny, shift, zero);

        // bits − bits(√½) has the exponent of x relative to m ∈ [√½, √2) in
        // its top bits; an offset of 2^(w−2) keeps it positive for `ushr`.
        let (sqrt_half, offset, mask) = if self.f32 {
            (
                (std::f32::consts::FRAC_1_SQRT_2).to_bits() as u64,
                1u64 << 30,
                (1u64 << 23) - 1,
            )
        } else {
            (
                std::f64::consts::FRAC_1_SQRT_2.to_bits(),
                1u64 << 62,
                (1u64 << 52) - 1,
            )
        };
        let bits = self.as_int(xs);
        let off = self.i(offset.wrapping_sub(sqrt_half));
        let ix = self.b.ins().iadd(bits, off);
        // e + offset as a float: or-ing a small integer into 2^p's mantissa.
        let e = self.b.ins().ushr_imm_u(ix, p);
        let two_p = self.i(self.bits_of((p as f64).exp2()));
        let e = self.b.ins().iadd(e, two_p);
        let e = self.as_float(e);
        let bias = (p as f64).exp2() + (offset >> p) as f64;
        let bias = self.c(bias);
        let e = self.sub(e, bias);
        let e = self.sub(e, shift);
        let mask = self.i(mask);
        let m = self.b.ins().band(ix, mask);
        let base = self.i(sqrt_half);
        let m = self.b.ins().iadd(m, base);
        let m = self.as_float(m);
        let one = self.c(1.0);
        let f = self.sub(m, one);
        let (f, c) = self.log1p_parts(f);
        let y = self.combine(e, f, c);

        let minus_inf = self.c(f64::NEG_INFINITY);
        let is_zero = self.cmp(FloatCC::Equal, x, zero);
        let y = self.select(is_zero, minus_inf, y);
        let nan = self.c(f64::NAN);
        let negative_or_nan = self.cmp(FloatCC::UnorderedOrLessThan, x, zero);
        let y = self.select(negative_or_nan, nan, y);
        let inf = self.c(f64::INFINITY);
        let is_inf = self.cmp(FloatCC::Equal, x, inf);
        self.select(is_inf, inf, y)
    }

    /// log(1 + u) for u ∈ [0, 1].
    fn log1p_unit(&mut self, u: Value) -> Value {
        let half = self.c(0.5);
        let big = self.cmp(FloatCC::LessThanOrEqual, half, u);
        let one = self.c(1.0);
        // 1 + u = 2·(1 + (u − 1)/2); u − 1 is exact for u ≥ ½.
        let g = self.sub(u, one);
        let g = self.mul(g, half);
        let f = self.select(big, g, u);
        let zero = self.c(0.0);
        let k = self.select(big, one, zero);
        let (f, c) = self.log1p_parts(f);
        self.combine(k, f, c)
    }

    /// q = eʳ − 1 = r + r²·Q(r) for r ∈ [0, ln2) (Taylor, Q from 1/2!): the
    /// big term r is exact, so q has one rounding plus a small one in r²Q.
    fn expm1_poly(&mut self, r: Value) -> Value {
        let degree = if self.f32 { 9 } else { 17 };
        let mut c = Vec::with_capacity(degree);
        let mut fact = 1.0_f64;
        for k in 2..=degree {
            fact *= k as f64;
            c.push(1.0 / fact);
        }
        let q = self.horner(r, &c);
        let r2 = self.mul(r, r);
        self.fma(r2, q, r)
    }

    fn tanh(&mut self, x: Value) -> Value {
        let a = self.b.ins().fabs(x);
        let a = self.at_most(a, if self.f32 { 9.5 } else { 20.0 });
        let y = self.add(a, a);
        // r ≥ 0 and n ≥ 0: every term of E below is positive, no cancellation.
        let (n, r) = self.reduce_by(y, true);
        let q = self.expm1_poly(r);
        let s = self.pow2(n);
        let one = self.c(1.0);
        let sm1 = self.sub(s, one);
        // E = expm1(2a) = 2ⁿ·q + (2ⁿ − 1), one rounding.
        let e = self.fma(s, q, sm1);
        let two = self.c(2.0);
        let d = self.add(e, two);
        let t = self.div(e, d);
        // One correction step removes the roundings of d and of the division:
        // E/(d + δ) ≈ t + (E − t·d − t·δ)/d, δ = (E + 2) − d exactly (E ≤ 2
        // where it matters, so d − 2 and E − (d − 2) are exact).
        let dm2 = self.sub(d, two);
        let delta = self.sub(e, dm2);
        let nt = self.b.ins().fneg(t);
        let res = self.fma(nt, d, e);
        let res = self.fma(nt, delta, res);
        let corr = self.div(res, d);
        let t = self.add(t, corr);
        let sign = self.c(-0.0);
        self.select(sign, x, t)
    }

    fn sigmoid(&mut self, x: Value) -> Value {
        let a = self.b.ins().fabs(x);
        let na = self.b.ins().fneg(a);
        let e = self.exp(na);
        let one = self.c(1.0);
        let zero = self.c(0.0);
        let negative = self.cmp(FloatCC::LessThan, x, zero);
        let num = self.select(negative, e, one);
        let d = self.add(one, e);
        self.div(num, d)
    }

    fn softplus(&mut self, x: Value) -> Value {
        let a = self.b.ins().fabs(x);
        let na = self.b.ins().fneg(a);
        let e = self.exp(na);
        let l = self.log1p_unit(e);
        let m = self.at_least(x, 0.0);
        self.add(m, l)
    }
}

/// ln2 = hi + lo with hi the lane type's nearest value.
fn ln2_parts(f32: bool) -> (f64, f64) {
    use std::f64::consts::LN_2;
    if f32 {
        let hi = LN_2 as f32 as f64;
        (hi, LN_2 - hi)
    } else {
        // ln2 − LN_2, from ln2 = 0.693147180559945309417232121458176568...
        (LN_2, 2.319_046_813_846_299_6e-17)
    }
}

/// eˣ lanewise.
pub fn exp(b: &mut FunctionBuilder, ty: Type, x: Value) -> Value {
    Lanes::new(b, ty).exp(x)
}

/// The natural logarithm lanewise.
pub fn log(b: &mut FunctionBuilder, ty: Type, x: Value) -> Value {
    Lanes::new(b, ty).log(x)
}

/// tanh lanewise.
pub fn tanh(b: &mut FunctionBuilder, ty: Type, x: Value) -> Value {
    Lanes::new(b, ty).tanh(x)
}

/// 1 / (1 + e⁻ˣ) lanewise.
pub fn sigmoid(b: &mut FunctionBuilder, ty: Type, x: Value) -> Value {
    Lanes::new(b, ty).sigmoid(x)
}

/// log(1 + eˣ) lanewise.
pub fn softplus(b: &mut FunctionBuilder, ty: Type, x: Value) -> Value {
    Lanes::new(b, ty).softplus(x)
}
