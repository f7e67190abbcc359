//! The matrix products the generated code calls.
//!
//! What enters: raw pointers, sizes and strides the compiler has already
//! checked. What leaves: the products, written in place. The native back end
//! does not emit matrix products itself (Cranelift does not vectorise, and its
//! vectors are 128 bits): it calls these through registered symbols with the
//! C ABI, so every entry point the generated code calls is an `extern "C" fn`.
//!
//! - [`cellc_gemm_f32`] / [`cellc_gemm_f64`]: a general strided product, for
//!   the hoisted input products over all T·B rows and the per-step products at
//!   larger batch; the `gemm` crate does the work, single-threaded (threads
//!   are the runtime's, designed separately), except `h·Wᵀ` at 2–8 rows with
//!   `W` row-major, where the crate is slow and a dot-product kernel is used.
//! - [`Packed`]: the recurrent product `y = W·x`, repeated every step on the
//!   same `W`, on weights packed once per run into panels a GEMV streams
//!   contiguously from L2 — the product no crate offers (at one row a general
//!   GEMM repacks or strides through `W` on every call).
//! - [`FlushDenormals`]: the kernels run with denormals flushed to zero; a
//!   saturated tanh RNN must not slow down.
//!
//! The kernel path (AVX-512, AVX2 + FMA, portable) is chosen once, when the
//! weights are packed ([`Path::best`]); tests force each path with
//! [`Packed::pack_with`].
//!
//! This module depends on nothing else in the crate.

mod denormals;
mod gemm;
mod lanes;
mod packed;
mod small;

pub use denormals::FlushDenormals;
pub use gemm::{cellc_gemm_f32, cellc_gemm_f64};
pub use packed::{
    Packed, cellc_packed_apply_f32, cellc_packed_apply_f64, cellc_packed_apply_range_f32,
    cellc_packed_apply_range_f64, cellc_packed_apply_t_f32, cellc_packed_apply_t_f64,
};

use std::ops::{Add, Mul};

/// The element types the kernels compute in: `f32` and `f64` (sealed). Sums
/// are accumulated in the precision of the type.
pub trait Float:
    sealed::Sealed
    + Copy
    + Default
    + PartialEq
    + Send
    + Sync
    + std::fmt::Debug
    + 'static
    + Add<Output = Self>
    + Mul<Output = Self>
{
    const ZERO: Self;
}

impl Float for f32 {
    const ZERO: Self = 0.0;
}

impl Float for f64 {
    const ZERO: Self = 0.0;
}

pub(crate) mod sealed {
    /// Implemented for `f32` and `f64` only; carries each type's kernel table.
    pub trait Sealed: Sized {
        fn kernels(path: super::Path) -> super::packed::Kernels<Self>;
    }
}

/// An instruction-set path of the packed kernels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Path {
    /// AVX-512F: 16 f32 (8 f64) outputs per panel, fused multiply-add.
    Avx512,
    /// AVX2 with FMA: 8 f32 (4 f64) outputs per panel.
    Avx2,
    /// Plain Rust loops the compiler vectorises for the baseline target; no
    /// fused multiply-add, so its results differ from the others in the last bits.
    Portable,
}

impl Path {
    /// Whether this machine can run the path.
    pub fn is_available(self) -> bool {
        match self {
            #[cfg(target_arch = "x86_64")]
            Path::Avx512 => std::arch::is_x86_feature_detected!("avx512f"),
            #[cfg(target_arch = "x86_64")]
            Path::Avx2 => {
                std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
            }
            Path::Portable => true,
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// The paths this machine can run, fastest first.
    pub fn available() -> Vec<Path> {
        [Path::Avx512, Path::Avx2, Path::Portable]
            .into_iter()
            .filter(|p| p.is_available())
            .collect()
    }

    /// The fastest path this machine can run.
    pub fn best() -> Path {
        // No allocation: `cellc_gemm` asks on every call (std caches the detection).
        [Path::Avx512, Path::Avx2]
            .into_iter()
            .find(|p| p.is_available())
            .unwrap_or(Path::Portable)
    }
}
