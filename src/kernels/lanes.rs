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
         $fma:ident, $add:ident, $store:ident) => {
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
        _mm512_storeu_ps
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
        _mm512_storeu_pd
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
        _mm256_storeu_ps
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
        _mm256_storeu_pd
    );
}
