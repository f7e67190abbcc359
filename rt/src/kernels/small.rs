//! `C = (acc ? C : 0) + A·B` for a few rows of `A`, without packing: the
//! recurrent product at small batch when the weights are not packed,
//! `C[rows×m] = h·Wᵀ` with `W [m×k]` row-major, so `B`'s columns are
//! contiguous (`b_rs == 1`) and, with `a_cs == 1`, every output is a dot
//! product of two contiguous rows (vectors along `k`, reduced across lanes at
//! the end). At 2–8 rows the `gemm` crate measured 1.4–4.4× slower on this
//! layout (docs/performance.md, "Recurrent kernel"); at one row it is as fast
//! as this and keeps the call. Other layouts go to the crate: a
//! vector-along-`n` kernel on an unpacked row-major `B` measured slower than
//! it (rows of `B` a power of two apart defeat the caches; packing is what
//! [`super::Packed`] is for).

use super::lanes::Lanes;
use super::{Float, Path};

/// Rows of `A` that take the small kernel: 2..=SMALL_M (measured against the
/// crate at 1, 4, 8, 16, 32 rows, H = 128 and 256: faster at 4 and 8
/// rows (1.4–4.4×), f32 and f64; at 16 faster or slower by the shape, at 32 slower).
pub(super) const SMALL_M: usize = 8;

/// Rows of `A` per register block.
const ROWS: usize = 4;

pub(super) struct Small<F> {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub a: *const F,
    pub a_rs: usize,
    pub a_cs: usize,
    pub b: *const F,
    pub b_rs: usize,
    pub b_cs: usize,
    pub c: *mut F,
    pub c_rs: usize,
    pub c_cs: usize,
    pub accumulate: bool,
}

/// Writes `v` to `C[r, j]` (adding the old value when accumulating).
#[inline(always)]
unsafe fn put<F: Float>(s: &Small<F>, r: usize, j: usize, v: F) {
    // SAFETY: r < m, j < n: inside C (caller's contract).
    unsafe {
        let out = s.c.add(r * s.c_rs + j * s.c_cs);
        *out = if s.accumulate { *out + v } else { v };
    }
}

/// `b_rs == 1`, `a_cs == 1`: dot products of `A`'s rows with `B`'s columns.
#[inline(always)]
unsafe fn cols_of_b<V: Lanes>(s: &Small<V::F>) {
    let mut r0 = 0;
    while r0 < s.m {
        let rr = (s.m - r0).min(ROWS);
        let mut j0 = 0;
        // One row: eight columns at a time, for eight independent FMA chains.
        let width = if rr == 1 { 8 } else { 4 };
        while j0 < s.n {
            let wide = j0 + width <= s.n;
            // SAFETY: rows r0..r0+rr, columns j0.. inside the operands.
            unsafe {
                match (rr, wide) {
                    (1, true) => dot::<V, 1, 8>(s, r0, j0),
                    (2, true) => dot::<V, 2, 4>(s, r0, j0),
                    (3, true) => dot::<V, 3, 4>(s, r0, j0),
                    (_, true) => dot::<V, 4, 4>(s, r0, j0),
                    (1, false) => dot::<V, 1, 1>(s, r0, j0),
                    (2, false) => dot::<V, 2, 1>(s, r0, j0),
                    (3, false) => dot::<V, 3, 1>(s, r0, j0),
                    (_, false) => dot::<V, 4, 1>(s, r0, j0),
                }
            }
            j0 += if wide { width } else { 1 };
        }
        r0 += rr;
    }
}

#[inline(always)]
unsafe fn dot<V: Lanes, const R: usize, const NC: usize>(s: &Small<V::F>, r0: usize, j0: usize) {
    let p = V::N;
    // SAFETY (whole body): pointers inside the operands; the tail of `k` is
    // loaded partially, zeros past the end.
    unsafe {
        let a: [*const V::F; R] = core::array::from_fn(|r| s.a.add((r0 + r) * s.a_rs));
        let b: [*const V::F; NC] = core::array::from_fn(|c| s.b.add((j0 + c) * s.b_cs));
        let mut acc = [[V::zero(); NC]; R];
        let mut kk = 0;
        while kk < s.k {
            let n = (s.k - kk).min(p);
            let load = |ptr: *const V::F| {
                if n == p {
                    V::load(ptr)
                } else {
                    V::load_partial(ptr, n)
                }
            };
            let bv: [V; NC] = core::array::from_fn(|c| load(b[c].add(kk)));
            for r in 0..R {
                let av = load(a[r].add(kk));
                for c in 0..NC {
                    acc[r][c] = V::mul_add(av, bv[c], acc[r][c]);
                }
            }
            kk += p;
        }
        for (r, acc_r) in acc.iter().enumerate() {
            for (c, v) in acc_r.iter().enumerate() {
                put(s, r0 + r, j0 + c, v.sum());
            }
        }
    }
}

/// Runs the product if a small kernel fits the layout; false if not.
#[inline(always)]
unsafe fn run<V: Lanes>(s: &Small<V::F>) -> bool {
    // SAFETY: forwarded contract.
    unsafe {
        if s.b_rs == 1 && s.a_cs == 1 {
            cols_of_b::<V>(s);
        } else {
            return false;
        }
    }
    true
}

macro_rules! small_path {
    ($name:ident, $V:ty, $feat:literal) => {
        #[target_feature(enable = $feat)]
        unsafe fn $name(s: &Small<<$V as Lanes>::F>) -> bool {
            // SAFETY: the caller checked the instruction set.
            unsafe { run::<$V>(s) }
        }
    };
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::*;
    use crate::kernels::lanes::{Avx2F32, Avx2F64, Avx512F32, Avx512F64};
    small_path!(avx512_f32, Avx512F32, "avx512f");
    small_path!(avx512_f64, Avx512F64, "avx512f");
    small_path!(avx2_f32, Avx2F32, "avx2,fma");
    small_path!(avx2_f64, Avx2F64, "avx2,fma");

    /// # Safety
    ///
    /// `path` is available; the operands as `cellc_gemm_f32` requires.
    pub(in crate::kernels) unsafe fn f32(path: Path, s: &Small<f32>) -> bool {
        // SAFETY: the caller checked the path; the operands are valid.
        unsafe {
            match path {
                Path::Avx512 => avx512_f32(s),
                Path::Avx2 => avx2_f32(s),
                Path::Portable => false,
            }
        }
    }

    /// # Safety
    ///
    /// As for `f32` above.
    pub(in crate::kernels) unsafe fn f64(path: Path, s: &Small<f64>) -> bool {
        // SAFETY: as above.
        unsafe {
            match path {
                Path::Avx512 => avx512_f64(s),
                Path::Avx2 => avx2_f64(s),
                Path::Portable => false,
            }
        }
    }
}

/// The small-row product for f32 on the best path, if this machine and layout
/// have one (false: nothing was written).
///
/// # Safety
///
/// The operands are valid as `cellc_gemm_f32` requires.
pub(super) unsafe fn small_f32(s: &Small<f32>) -> bool {
    // SAFETY: the best path is available; forwarded contract.
    unsafe { small_f32_on(Path::best(), s) }
}

/// As [`small_f32`], for f64.
///
/// # Safety
///
/// As [`small_f32`].
pub(super) unsafe fn small_f64(s: &Small<f64>) -> bool {
    // SAFETY: as above.
    unsafe { small_f64_on(Path::best(), s) }
}

/// # Safety
///
/// `path` is available; the operands as for [`small_f32`].
unsafe fn small_f32_on(path: Path, s: &Small<f32>) -> bool {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: forwarded contract.
    return unsafe { x86::f32(path, s) };
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (path, s);
        false
    }
}

/// # Safety
///
/// As [`small_f32_on`].
unsafe fn small_f64_on(path: Path, s: &Small<f64>) -> bool {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: forwarded contract.
    return unsafe { x86::f64(path, s) };
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (path, s);
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every path's small kernel against a naive f64 sum (the integration tests
    /// reach only the best path through `cellc_gemm`).
    #[test]
    fn small_kernels_match_a_naive_product_on_every_path() {
        let value = |i: usize| ((i * 7919) % 997) as f64 / 997.0 - 0.5;
        for path in Path::available() {
            for m in 2..=SMALL_M {
                for n in [1, 3, 5, 8, 9, 17, 33] {
                    for k in [1, 7, 8, 16, 17, 67] {
                        let (a_rs, b_cs, c_rs) = (k + 1, k + 2, n + 3);
                        let a: Vec<f64> = (0..m * a_rs).map(value).collect();
                        let b: Vec<f64> = (0..n * b_cs).map(|i| value(i + 5)).collect();
                        let c0: Vec<f64> = (0..m * c_rs).map(|i| value(i + 11)).collect();
                        let a32: Vec<f32> = a.iter().map(|&v| v as f32).collect();
                        let b32: Vec<f32> = b.iter().map(|&v| v as f32).collect();
                        for accumulate in [false, true] {
                            let mut c = c0.clone();
                            let mut c32: Vec<f32> = c0.iter().map(|&v| v as f32).collect();
                            let (a_cs, b_rs, c_cs) = (1, 1, 1);
                            let s64 = Small {
                                m,
                                n,
                                k,
                                a: a.as_ptr(),
                                a_rs,
                                a_cs,
                                b: b.as_ptr(),
                                b_rs,
                                b_cs,
                                c: c.as_mut_ptr(),
                                c_rs,
                                c_cs,
                                accumulate,
                            };
                            let s32 = Small {
                                m,
                                n,
                                k,
                                a: a32.as_ptr(),
                                a_rs,
                                a_cs,
                                b: b32.as_ptr(),
                                b_rs,
                                b_cs,
                                c: c32.as_mut_ptr(),
                                c_rs,
                                c_cs,
                                accumulate,
                            };
                            // SAFETY: the path is available; the buffers hold the strided operands.
                            let ran =
                                unsafe { (small_f64_on(path, &s64), small_f32_on(path, &s32)) };
                            assert_eq!(ran.0, path != Path::Portable);
                            assert_eq!(ran.1, path != Path::Portable);
                            if !ran.0 {
                                continue;
                            }
                            for i in 0..m {
                                for j in 0..n {
                                    let mut want = if accumulate { c0[i * c_rs + j] } else { 0.0 };
                                    for p in 0..k {
                                        want += a[i * a_rs + p] * b[j * b_cs + p];
                                    }
                                    let got = c[i * c_rs + j];
                                    assert!(
                                        (got - want).abs() < 1e-12,
                                        "{path:?} f64 {m}×{n}×{k}: {got} vs {want}"
                                    );
                                    let got = c32[i * c_rs + j] as f64;
                                    assert!(
                                        (got - want).abs() < 1e-4,
                                        "{path:?} f32 {m}×{n}×{k}: {got} vs {want}"
                                    );
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
