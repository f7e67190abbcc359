//! The general strided product, `C = (acc ? C : 0) + A·B`, on the `gemm` crate.

use gemm::Parallelism;

use super::small::{SMALL_M, Small, small_f32, small_f64};

macro_rules! gemm_entry {
    ($name:ident, $f:ty, $small:ident) => {
        /// `C[m×n] = (accumulate ? C : 0) + A[m×k] · B[k×n]`, every matrix given
        /// by a pointer and (row stride, column stride) in elements, as BLIS does;
        /// strides may be any positive value (a transposed operand is just swapped
        /// strides). `m`, `n` or `k` may be 1 (or 0). Single-threaded.
        ///
        /// # Safety
        ///
        /// `a` valid for reads of `A[i, p]` at `a + i·a_rs + p·a_cs` for `i < m`,
        /// `p < k`; likewise `b` for `k×n`; `c` valid for reads and writes of
        /// `m×n`, each element once (no two `(i, j)` at one address) and not
        /// overlapping `A` or `B`.
        #[unsafe(no_mangle)]
        #[allow(clippy::too_many_arguments)]
        pub unsafe extern "C" fn $name(
            m: usize,
            n: usize,
            k: usize,
            a: *const $f,
            a_rs: usize,
            a_cs: usize,
            b: *const $f,
            b_rs: usize,
            b_cs: usize,
            c: *mut $f,
            c_rs: usize,
            c_cs: usize,
            accumulate: u32,
        ) {
            debug_assert!(a_rs > 0 && a_cs > 0 && b_rs > 0 && b_cs > 0 && c_rs > 0 && c_cs > 0);
            if m == 0 || n == 0 {
                return;
            }
            if k == 0 {
                // An empty sum: C stays, or becomes zero.
                if accumulate == 0 {
                    for i in 0..m {
                        for j in 0..n {
                            // SAFETY: inside C by the caller's contract.
                            unsafe { *c.add(i * c_rs + j * c_cs) = 0.0 };
                        }
                    }
                }
                return;
            }
            if (2..=SMALL_M).contains(&m) {
                let s = Small {
                    m,
                    n,
                    k,
                    a,
                    a_rs,
                    a_cs,
                    b,
                    b_rs,
                    b_cs,
                    c,
                    c_rs,
                    c_cs,
                    accumulate: accumulate != 0,
                };
                // SAFETY: the caller's contract.
                if unsafe { $small(&s) } {
                    return;
                }
            }
            // SAFETY: the caller's contract is gemm's; strides fit isize because the
            // matrices are inside one allocation. gemm computes
            // dst = alpha·dst + beta·lhs·rhs, reading dst only when asked.
            unsafe {
                gemm::gemm(
                    m,
                    n,
                    k,
                    c,
                    c_cs as isize,
                    c_rs as isize,
                    accumulate != 0,
                    a,
                    a_cs as isize,
                    a_rs as isize,
                    b,
                    b_cs as isize,
                    b_rs as isize,
                    1.0,
                    1.0,
                    false,
                    false,
                    false,
                    Parallelism::None,
                )
            }
        }
    };
}

gemm_entry!(cellc_gemm_f32, f32, small_f32);
gemm_entry!(cellc_gemm_f64, f64, small_f64);
