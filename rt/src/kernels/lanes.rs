//! One SIMD register's worth of floats, as the packed kernels see it: the only
//! file with intrinsics. Each kernel path is one implementation of [`Lanes`];
//! the loops in `packed.rs` are written once over the trait and instantiated
//! inside a `#[target_feature]` function per path, so everything inlines into
//! code compiled for that instruction set.

use super::Float;

/// A vector of `N` lanes of `F`.
///
/// # Safety
///
/// Every method requires the instruction set of the implementation (AVX-512F,
/// AVX2 + FMA, or nothing for the portable one) to be available, and pointers
/// valid for `N` elements (unaligned is fine).
pub(super) unsafe trait Lanes: Copy {
    type F: Float;
    /// Lanes per vector; also the panel width of the packed layout.
    const N: usize;
    unsafe fn zero() -> Self;
    unsafe fn load(p: *const Self::F) -> Self;
    unsafe fn splat(x: Self::F) -> Self;
    /// `a · b + c`, fused where the path has FMA.
    unsafe fn mul_add(a: Self, b: Self, c: Self) -> Self;
    unsafe fn add(a: Self, b: Self) -> Self;
    unsafe fn store(self, p: *mut Self::F);
    /// The sum of the lanes, in a fixed order.
    unsafe fn sum(self) -> Self::F;

    /// Loads `n < N` elements, the other lanes zero (a NaN past the end of a
    /// row must not reach a padded weight of zero).
    #[inline(always)]
    unsafe fn load_partial(p: *const Self::F, n: usize) -> Self {
        let mut tmp = [Self::F::ZERO; 16];
        // SAFETY: the caller guarantees `p` is valid for `n` elements; `tmp` holds N ≤ 16.
        unsafe {
            core::ptr::copy_nonoverlapping(p, tmp.as_mut_ptr(), n);
            Self::load(tmp.as_ptr())
        }
    }
}

/// The portable path: plain arrays the compiler vectorises for the baseline
/// target (SSE2 on x86-64). No FMA: `a * b + c` rounds twice.
#[derive(Clone, Copy)]
pub(super) struct Portable<F, const N: usize>([F; N]);

// SAFETY: no instruction set is required; pointers are valid for N elements by the
// trait's contract.
unsafe impl<F: Float, const N: usize> Lanes for Portable<F, N> {
    type F = F;
    const N: usize = N;
    #[inline(always)]
    unsafe fn zero() -> Self {
        Portable([F::ZERO; N])
    }
    #[inline(always)]
    unsafe fn load(p: *const F) -> Self {
        // SAFETY: `p` is valid for N elements (trait contract).
        Portable(unsafe { core::ptr::read_unaligned(p as *const [F; N]) })
    }
    #[inline(always)]
    unsafe fn splat(x: F) -> Self {
        Portable([x; N])
    }
    #[inline(always)]
    unsafe fn mul_add(a: Self, b: Self, c: Self) -> Self {
        Portable(core::array::from_fn(|i| a.0[i] * b.0[i] + c.0[i]))
    }
    #[inline(always)]
    unsafe fn add(a: Self, b: Self) -> Self {
        Portable(core::array::from_fn(|i| a.0[i] + b.0[i]))
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut F) {
        // SAFETY: `p` is valid for N elements (trait contract).
        unsafe { core::ptr::write_unaligned(p as *mut [F; N], self.0) }
    }
    #[inline(always)]
    unsafe fn sum(self) -> F {
        // Pairwise halving, the same tree as the SIMD reductions.
        let mut v = self.0;
        let mut n = N;
        while n > 1 {
            n /= 2;
            for i in 0..n {
                v[i] = v[i] + v[i + n];
            }
        }
        v[0]
    }
}

#[cfg(target_arch = "x86_64")]
pub(super) use x86::{Avx2F32, Avx2F64, Avx512F32, Avx512F64};

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::Lanes;
    use core::arch::x86_64::*;

    /// Implements [`Lanes`] for one register type from its intrinsics.
    macro_rules! lanes {
        ($name:ident, $reg:ty, $f:ty, $n:literal, $zero:ident, $load:ident, $splat:ident,
         $fma:ident, $add:ident, $store:ident, $sum:expr) => {
            #[derive(Clone, Copy)]
            pub(in crate::kernels) struct $name($reg);

            // SAFETY: the caller guarantees the instruction set (trait contract); each
            // method is the one intrinsic of that set it names.
            unsafe impl Lanes for $name {
                type F = $f;
                const N: usize = $n;
                #[inline(always)]
                unsafe fn zero() -> Self {
                    // SAFETY: instruction set guaranteed by the caller.
                    $name(unsafe { $zero() })
                }
                #[inline(always)]
                unsafe fn load(p: *const $f) -> Self {
                    // SAFETY: `p` valid for N elements; unaligned load.
                    $name(unsafe { $load(p as _) })
                }
                #[inline(always)]
                unsafe fn splat(x: $f) -> Self {
                    // SAFETY: instruction set guaranteed by the caller.
                    $name(unsafe { $splat(x) })
                }
                #[inline(always)]
                unsafe fn mul_add(a: Self, b: Self, c: Self) -> Self {
                    // SAFETY: instruction set guaranteed by the caller.
                    $name(unsafe { $fma(a.0, b.0, c.0) })
                }
                #[inline(always)]
                unsafe fn add(a: Self, b: Self) -> Self {
                    // SAFETY: instruction set guaranteed by the caller.
                    $name(unsafe { $add(a.0, b.0) })
                }
                #[inline(always)]
                unsafe fn store(self, p: *mut $f) {
                    // SAFETY: `p` valid for N elements; unaligned store.
                    unsafe { $store(p as _, self.0) }
                }
                #[inline(always)]
                unsafe fn sum(self) -> $f {
                    let f: unsafe fn($reg) -> $f = $sum;
                    // SAFETY: instruction set guaranteed by the caller.
                    unsafe { f(self.0) }
                }
            }
        };
    }

    lanes!(
        Avx512F32,
        __m512,
        f32,
        16,
        _mm512_setzero_ps,
        _mm512_loadu_ps,
        _mm512_set1_ps,
        _mm512_fmadd_ps,
        _mm512_add_ps,
        _mm512_storeu_ps,
        sum512_f32
    );
    lanes!(
        Avx512F64,
        __m512d,
        f64,
        8,
        _mm512_setzero_pd,
        _mm512_loadu_pd,
        _mm512_set1_pd,
        _mm512_fmadd_pd,
        _mm512_add_pd,
        _mm512_storeu_pd,
        sum512_f64
    );
    lanes!(
        Avx2F32,
        __m256,
        f32,
        8,
        _mm256_setzero_ps,
        _mm256_loadu_ps,
        _mm256_set1_ps,
        _mm256_fmadd_ps,
        _mm256_add_ps,
        _mm256_storeu_ps,
        sum256_f32
    );
    lanes!(
        Avx2F64,
        __m256d,
        f64,
        4,
        _mm256_setzero_pd,
        _mm256_loadu_pd,
        _mm256_set1_pd,
        _mm256_fmadd_pd,
        _mm256_add_pd,
        _mm256_storeu_pd,
        sum256_f64
    );

    // The horizontal sums halve the vector until one lane is left (the tree the
    // portable path uses too).

    #[inline(always)]
    unsafe fn sum256_f32(v: __m256) -> f32 {
        // SAFETY: AVX available (caller); lane shuffles only.
        unsafe {
            let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
            let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
            let s = _mm_add_ss(s, _mm_shuffle_ps::<1>(s, s));
            _mm_cvtss_f32(s)
        }
    }

    #[inline(always)]
    unsafe fn sum256_f64(v: __m256d) -> f64 {
        // SAFETY: AVX available (caller); lane shuffles only.
        unsafe {
            let s = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd::<1>(v));
            let s = _mm_add_sd(s, _mm_unpackhi_pd(s, s));
            _mm_cvtsd_f64(s)
        }
    }

    #[inline(always)]
    unsafe fn sum512_f32(v: __m512) -> f32 {
        // SAFETY: AVX-512F available (caller); lane shuffles only.
        unsafe {
            let lo = _mm512_castps512_ps256(v);
            let hi = _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(v)));
            sum256_f32(_mm256_add_ps(lo, hi))
        }
    }

    #[inline(always)]
    unsafe fn sum512_f64(v: __m512d) -> f64 {
        // SAFETY: AVX-512F available (caller); lane shuffles only.
        unsafe {
            let s = _mm256_add_pd(_mm512_castpd512_pd256(v), _mm512_extractf64x4_pd::<1>(v));
            sum256_f64(s)
        }
    }
}
