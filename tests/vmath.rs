//! The inline vector math of `codegen::vmath`, JIT-compiled and swept.
//!
//! For each op and each of f32x4 and f64x2, a loop `fn(bytes, src, dst)` is
//! compiled for three instruction sets: the host's (cranelift-native: AVX-512
//! here), AVX2 + FMA without AVX-512, and SSE4.2 without FMA (fma by libm
//! call), so that the code lowers and agrees on an x86-64-v2/v3 machine too.
//! Inputs: random bit patterns (every finite exponent, denormals included),
//! a log-uniform spread over ±[1e-30, 1e4] (f64: ±[1e-300, 1e3]), the f32s of
//! [−1, 1] at a stride (f64: uniform there), a dense linear sweep over the
//! op's interesting range, and the special values.
//!
//! f32 results are compared with the f64 definition of `cellc::scalar` (its
//! own error is ~1e-16, negligible); f64 results with the same definition in
//! f64, i.e. with glibc's libm, so the f64 figure is the distance to libm (which
//! is itself within 1–2 ulp of the truth). Asserted: every error ≤
//! `max_ulp(op, ty)`, NaN exactly for NaN (and log of a negative), and a
//! finite result for every finite input except exp where eˣ overflows.

use cellc::codegen::vmath;
use cellc::rng::SplitMix64;
use cellc::scalar::Unary;
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{AbiParam, InstBuilder, MemFlagsData, Type, Value, types};
use cranelift_codegen::isa::OwnedTargetIsa;
use cranelift_codegen::settings::{self, Configurable};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::{Linkage, Module, default_libcall_names};

type Emit = fn(&mut FunctionBuilder, Type, Value) -> Value;

fn emitter(op: Unary) -> Emit {
    match op {
        Unary::Exp => vmath::exp,
        Unary::Log => vmath::log,
        Unary::Tanh => vmath::tanh,
        Unary::Sigmoid => vmath::sigmoid,
        Unary::Softplus => vmath::softplus,
        _ => unreachable!(),
    }
}

/// The host's ISA, and two older x86-64 levels built by hand.
fn isas() -> Vec<(&'static str, OwnedTargetIsa)> {
    let flags = || {
        let mut f = settings::builder();
        f.set(
            "opt_level",
            &std::env::var("VMATH_OPT").unwrap_or("speed".into()),
        )
        .unwrap();
        f.set("is_pic", "false").unwrap();
        settings::Flags::new(f)
    };
    let host = cranelift_native::builder()
        .unwrap()
        .finish(flags())
        .unwrap();
    let level = |features: &[&str]| {
        let mut b = cranelift_codegen::isa::lookup_by_name("x86_64-unknown-linux-gnu").unwrap();
        for f in features {
            b.enable(f).unwrap();
        }
        b.finish(flags()).unwrap()
    };
    let v2 = [
        "has_sse3",
        "has_ssse3",
        "has_sse41",
        "has_sse42",
        "has_popcnt",
    ];
    let mut v3 = v2.to_vec();
    v3.extend([
        "has_avx",
        "has_avx2",
        "has_fma",
        "has_bmi1",
        "has_bmi2",
        "has_lzcnt",
    ]);
    vec![
        ("host", host),
        ("avx2+fma", level(&v3)),
        ("sse4.2", level(&v2)),
    ]
}

/// `fn(bytes, src, dst)`: dst[i] = op(src[i]), 16 bytes at a time.
fn compile(isa: OwnedTargetIsa, op: Unary, ty: Type) -> (JITModule, *const u8) {
    let mut module = JITModule::new(JITBuilder::with_isa(isa, default_libcall_names()));
    let mut ctx = module.make_context();
    for _ in 0..3 {
        ctx.func.signature.params.push(AbiParam::new(types::I64));
    }
    let frontend = module.isa().frontend_config();
    let mut fctx = FunctionBuilderContext::new();
    let mut b = FunctionBuilder::new(&mut ctx.func, &mut fctx);
    let (entry, head, body, exit) = (
        b.create_block(),
        b.create_block(),
        b.create_block(),
        b.create_block(),
    );
    b.append_block_params_for_function_params(entry);
    let i = b.append_block_param(head, types::I64);
    b.switch_to_block(entry);
    let [n, src, dst] = b.block_params(entry).try_into().unwrap();
    let zero = b.ins().iconst(types::I64, 0);
    b.ins().jump(head, &[zero.into()]);
    b.switch_to_block(head);
    let more = b.ins().icmp(IntCC::UnsignedLessThan, i, n);
    b.ins().brif(more, body, &[], exit, &[]);
    b.switch_to_block(body);
    let at = b.ins().iadd(src, i);
    let x = b.ins().load(ty, MemFlagsData::trusted(), at, 0);
    let y = emitter(op)(&mut b, ty, x);
    let at = b.ins().iadd(dst, i);
    b.ins().store(MemFlagsData::trusted(), y, at, 0);
    let next = b.ins().iadd_imm_s(i, 16);
    b.ins().jump(head, &[next.into()]);
    b.switch_to_block(exit);
    b.ins().return_(&[]);
    b.seal_all_blocks();
    b.finalize(frontend);
    let id = module
        .declare_function(&format!("{op:?}"), Linkage::Local, &ctx.func.signature)
        .unwrap();
    ctx.set_disasm(std::env::var_os("VMATH_DISASM").is_some());
    module.define_function(id, &mut ctx).unwrap();
    if let Some(text) = ctx.compiled_code().and_then(|c| c.vcode.as_ref()) {
        eprintln!("{op:?} {ty}:\n{text}");
    }
    module.finalize_definitions().unwrap();
    let code = module.get_finalized_function(id);
    (module, code)
}

fn reference(op: Unary, x: f64) -> f64 {
    op.apply(x)
}

/// The inputs, as f64 (exact for the f32 sweep).
fn inputs(op: Unary, f32: bool) -> Vec<f64> {
    let mut rng = SplitMix64::new(0x5eed ^ op as u64);
    let mut xs = Vec::new();
    // Random finite bit patterns: every exponent equally often.
    while xs.len() < 1_000_000 {
        let x = if f32 {
            f32::from_bits(rng.next_u64() as u32) as f64
        } else {
            f64::from_bits(rng.next_u64())
        };
        if x.is_finite() {
            xs.push(x);
        }
    }
    let (lo, hi): (f64, f64) = if f32 { (1e-30, 1e4) } else { (1e-300, 1e3) };
    for k in 0..1_000_000 {
        let x = (lo.ln() + rng.unit() * (hi / lo).ln()).exp();
        xs.push(if k % 2 == 0 { x } else { -x });
    }
    if f32 {
        for bits in (0..=1.0_f32.to_bits()).step_by(1009) {
            let x = f32::from_bits(bits) as f64;
            xs.extend([x, -x]);
        }
    } else {
        xs.extend((0..1_000_000).map(|_| rng.symmetric()));
    }
    let (a, b) = match (op, f32) {
        (Unary::Exp, true) => (-110.0, 92.0),
        (Unary::Exp, false) => (-750.0, 712.0),
        (Unary::Log, _) => (0.0, 4.0),
        _ => (-40.0, 40.0),
    };
    let n = 1_000_000;
    xs.extend((0..=n).map(|k| a + (b - a) * k as f64 / n as f64));
    let specials: &[f64] = if f32 {
        &[
            f32::MAX as f64,
            f32::MIN_POSITIVE as f64,
            1e-45,
            1e-40,
            88.72,
            88.7228,
            -87.33,
            -103.97,
            -104.0,
        ]
    } else {
        &[f64::MAX, f64::MIN_POSITIVE, 5e-324, 1e-310, 709.78, -745.13]
    };
    for &s in specials {
        xs.extend([s, -s]);
    }
    xs.extend([0.0, -0.0, f64::INFINITY, f64::NEG_INFINITY, f64::NAN]);
    if f32 {
        for x in &mut xs {
            *x = *x as f32 as f64;
        }
    }
    while xs.len() % 4 != 0 {
        xs.push(0.0);
    }
    xs
}

/// |got − want| in ulp of the result type at `want` (the ulp of a denormal
/// is the smallest denormal); an infinity counts as the next power of two
/// after the largest finite value.
fn ulp_error(got: f64, want: f64, f32: bool) -> f64 {
    if want.is_nan() || got.is_nan() {
        return if want.is_nan() && got.is_nan() {
            0.0
        } else {
            f64::INFINITY
        };
    }
    let (p, emin, emax) = if f32 {
        (23, -126, 127)
    } else {
        (52, -1022, 1023)
    };
    let top = 2f64.powi(emax) * 2.0; // inf for f64; handled below
    let cap = |v: f64| {
        if v.is_infinite() {
            top.copysign(v)
        } else {
            v.clamp(-top, top)
        }
    };
    let (g, w) = (cap(got), cap(want));
    let e = (((w.abs().to_bits() >> 52) & 0x7ff) as i32 - 1023).clamp(emin, emax);
    // In two factors: 2^(e−p) alone would underflow in powi's reciprocal.
    let ulp = 2f64.powi(e) * 2f64.powi(-p);
    if g.is_infinite() || w.is_infinite() {
        // f64 only: one side at ±inf.
        if g == w {
            return 0.0;
        }
        let finite = if g.is_infinite() { w } else { g };
        return (f64::MAX - finite.abs()) / ulp + 1.0;
    }
    (g - w).abs() / ulp
}

struct Worst {
    ulp: f64,
    at: f64,
    got: f64,
}

fn check(op: Unary, ty: Type) {
    let f32 = ty == types::F32X4;
    let bound = vmath::max_ulp(op, ty).unwrap();
    let xs = inputs(op, f32);
    let want: Vec<f64> = xs.iter().map(|&x| reference(op, x)).collect();
    let mut report = Vec::new();
    for (name, isa) in isas() {
        let (module, code) = compile(isa, op, ty);
        let got: Vec<f64> = if f32 {
            let src: Vec<f32> = xs.iter().map(|&x| x as f32).collect();
            let mut dst = vec![0f32; src.len()];
            let f: extern "C" fn(i64, *const f32, *mut f32) = unsafe { std::mem::transmute(code) };
            f((src.len() * 4) as i64, src.as_ptr(), dst.as_mut_ptr());
            dst.iter().map(|&y| y as f64).collect()
        } else {
            let mut dst = vec![0f64; xs.len()];
            let f: extern "C" fn(i64, *const f64, *mut f64) = unsafe { std::mem::transmute(code) };
            f((xs.len() * 8) as i64, xs.as_ptr(), dst.as_mut_ptr());
            dst
        };
        drop(module);
        let max = if f32 { f32::MAX as f64 } else { f64::MAX };
        let mut worst = Worst {
            ulp: 0.0,
            at: 0.0,
            got: 0.0,
        };
        for ((&x, &w), &g) in xs.iter().zip(&want).zip(&got) {
            let overflows = op == Unary::Exp && (w > max || (f32 && (w as f32).is_infinite()));
            assert!(
                !x.is_finite()
                    || !w.is_finite()
                    || g.is_finite()
                    || (overflows && g == f64::INFINITY),
                "{op:?} {ty} [{name}]: {g} at finite {x:e} (want {w:e})"
            );
            let e = ulp_error(g, w, f32);
            if e > worst.ulp {
                worst = Worst {
                    ulp: e,
                    at: x,
                    got: g,
                };
            }
        }
        report.push(format!(
            "{op:?} {ty} [{name}]: max {:.3} ulp at x = {:e} (got {:e}, want {:e})",
            worst.ulp,
            worst.at,
            worst.got,
            reference(op, worst.at)
        ));
        assert!(
            worst.ulp <= bound,
            "{}\nbound {bound} ulp",
            report.last().unwrap()
        );
    }
    eprintln!("{}", report.join("\n"));
}

#[test]
fn exp_f32_is_within_its_bound() {
    check(Unary::Exp, types::F32X4);
}
#[test]
fn exp_f64_is_within_its_bound() {
    check(Unary::Exp, types::F64X2);
}
#[test]
fn log_f32_is_within_its_bound() {
    check(Unary::Log, types::F32X4);
}
#[test]
fn log_f64_is_within_its_bound() {
    check(Unary::Log, types::F64X2);
}
#[test]
fn tanh_f32_is_within_its_bound() {
    check(Unary::Tanh, types::F32X4);
}
#[test]
fn tanh_f64_is_within_its_bound() {
    check(Unary::Tanh, types::F64X2);
}
#[test]
fn sigmoid_f32_is_within_its_bound() {
    check(Unary::Sigmoid, types::F32X4);
}
#[test]
fn sigmoid_f64_is_within_its_bound() {
    check(Unary::Sigmoid, types::F64X2);
}
#[test]
fn softplus_f32_is_within_its_bound() {
    check(Unary::Softplus, types::F32X4);
}
#[test]
fn softplus_f64_is_within_its_bound() {
    check(Unary::Softplus, types::F64X2);
}

/// The op on `xs` (a multiple of the lane count) on the host's ISA.
fn run(op: Unary, ty: Type, xs: &[f64]) -> Vec<f64> {
    let (_, isa) = isas().swap_remove(0);
    let (module, code) = compile(isa, op, ty);
    let out = if ty == types::F32X4 {
        let src: Vec<f32> = xs.iter().map(|&x| x as f32).collect();
        let mut dst = vec![0f32; src.len()];
        let f: extern "C" fn(i64, *const f32, *mut f32) = unsafe { std::mem::transmute(code) };
        f((src.len() * 4) as i64, src.as_ptr(), dst.as_mut_ptr());
        dst.iter().map(|&y| y as f64).collect()
    } else {
        let mut dst = vec![0f64; xs.len()];
        let f: extern "C" fn(i64, *const f64, *mut f64) = unsafe { std::mem::transmute(code) };
        f((xs.len() * 8) as i64, xs.as_ptr(), dst.as_mut_ptr());
        dst
    };
    drop(module);
    out
}

#[test]
fn saturation_is_exact_and_tiny_inputs_keep_their_value() {
    for ty in [types::F32X4, types::F64X2] {
        let big = [50.0, 1e5, 3e38, f64::INFINITY];
        let neg: Vec<f64> = big.iter().map(|x| -x).collect();
        let tiny = [1e-30, -1e-30, 1e-40, -0.0];
        let f = |op, xs: &[f64]| run(op, ty, xs);
        assert_eq!(f(Unary::Sigmoid, &big), [1.0; 4], "{ty}");
        assert_eq!(
            f(Unary::Sigmoid, &[-200.0, -1e5, -3e38, -f64::INFINITY])[1..],
            [0.0; 3]
        );
        assert_eq!(f(Unary::Tanh, &big), [1.0; 4], "{ty}");
        assert_eq!(f(Unary::Tanh, &neg), [-1.0; 4], "{ty}");
        // The inputs as the lane type holds them.
        let exact = |xs: &[f64]| -> Vec<f64> {
            xs.iter()
                .map(|&x| {
                    if ty == types::F32X4 {
                        x as f32 as f64
                    } else {
                        x
                    }
                })
                .collect()
        };
        let t = f(Unary::Tanh, &tiny);
        assert_eq!(t, exact(&tiny), "{ty}: tanh x = x for tiny x");
        assert!(t[3].is_sign_negative(), "tanh(-0) = -0");
        assert_eq!(
            f(Unary::Softplus, &big),
            exact(&big),
            "{ty}: softplus x = x"
        );
        let s = f(Unary::Softplus, &[-50.0, -1e5, -3e38, -f64::INFINITY]);
        assert!(s[0] > 0.0 && s[1..] == [0.0; 3], "{ty}: {s:?}");
        assert_eq!(
            f(Unary::Exp, &[-f64::INFINITY, f64::INFINITY, 1e5, -1e5]),
            [0.0, f64::INFINITY, f64::INFINITY, 0.0]
        );
        let l = f(Unary::Log, &[0.0, -0.0, -1.0, f64::INFINITY]);
        assert!(
            l[0] == f64::NEG_INFINITY
                && l[1] == f64::NEG_INFINITY
                && l[2].is_nan()
                && l[3] == f64::INFINITY,
            "{ty}: {l:?}"
        );
    }
}

/// Throughput, printed, not asserted (the machines are shared and noisy):
/// `cargo test --release --test vmath -- --ignored --nocapture`
/// (`VMATH_OPT=none` for Cranelift's other opt level, `VMATH_DISASM=1` to
/// print each compiled loop).
#[test]
#[ignore]
fn print_throughput() {
    const N: usize = 4096; // in L1: the code generator's fused passes are too
    const REPS: usize = 20_000;
    for ty in [types::F32X4, types::F64X2] {
        for op in [
            Unary::Exp,
            Unary::Log,
            Unary::Tanh,
            Unary::Sigmoid,
            Unary::Softplus,
        ] {
            let (_, isa) = isas().swap_remove(0);
            let (module, code) = compile(isa, op, ty);
            let mut rng = SplitMix64::new(7);
            let xs: Vec<f64> = (0..N)
                .map(|_| match op {
                    Unary::Log => 0.01 + 10.0 * rng.unit(),
                    _ => 8.0 * rng.symmetric(),
                })
                .collect();
            let (ours, libm) = if ty == types::F32X4 {
                let src: Vec<f32> = xs.iter().map(|&x| x as f32).collect();
                let mut dst = vec![0f32; N];
                let f: extern "C" fn(i64, *const f32, *mut f32) =
                    unsafe { std::mem::transmute(code) };
                let t = std::time::Instant::now();
                for _ in 0..REPS {
                    f((N * 4) as i64, src.as_ptr(), dst.as_mut_ptr());
                    std::hint::black_box(&mut dst);
                }
                let ours = t.elapsed();
                let t = std::time::Instant::now();
                for _ in 0..REPS / 10 {
                    for (d, &s) in dst.iter_mut().zip(&src) {
                        *d = op.apply(s);
                    }
                    std::hint::black_box(&mut dst);
                }
                (ours, t.elapsed() * 10)
            } else {
                let mut dst = vec![0f64; N];
                let f: extern "C" fn(i64, *const f64, *mut f64) =
                    unsafe { std::mem::transmute(code) };
                let t = std::time::Instant::now();
                for _ in 0..REPS {
                    f((N * 8) as i64, xs.as_ptr(), dst.as_mut_ptr());
                    std::hint::black_box(&mut dst);
                }
                let ours = t.elapsed();
                let t = std::time::Instant::now();
                for _ in 0..REPS / 10 {
                    for (d, &s) in dst.iter_mut().zip(&xs) {
                        *d = op.apply(s);
                    }
                    std::hint::black_box(&mut dst);
                }
                (ours, t.elapsed() * 10)
            };
            drop(module);
            let rate = |t: std::time::Duration| (N * REPS) as f64 / t.as_secs_f64() / 1e9;
            eprintln!(
                "{op:?} {ty}: {:.2} G elements/s inline, {:.2} scalar std/libm",
                rate(ours),
                rate(libm)
            );
        }
    }
}
