//! The routines generated code calls for a plan's calls: everything that is
//! not a fused elementwise loop. Each is an `extern "C"` function taking raw
//! pointers, sizes and row strides (in elements), registered with the JIT by
//! name ([`symbols`]) and exported under the same names from `libcellc_rt.a`,
//! which objects from `cellc compile` link. Generated code calls them only with sizes and pointers
//! the code generator derived from checked shapes, so they do not check again.
//!
//! A row stride of 0 reads an unbatched operand once for every row.
//!
//! Semantics are the interpreter's (`graph::op::Op::eval`), including the
//! first-largest rule of `max` (a NaN wins where it first appears).

use crate::kernels::Packed;
use num_traits::Float;

/// The float types with a tuned product (`kernels::cellc_gemm_*`).
pub trait Gemm: Float {
    /// `C[m×n] = A[m×k]·B[k×n]` (overwriting), BLIS strides, unit column
    /// stride in C.
    ///
    /// # Safety
    /// Every pointer covers the elements its sizes and strides reach; C does
    /// not overlap A or B.
    #[allow(clippy::too_many_arguments)]
    unsafe fn gemm(
        m: usize,
        n: usize,
        k: usize,
        a: *const Self,
        a_rs: usize,
        a_cs: usize,
        b: *const Self,
        b_rs: usize,
        b_cs: usize,
        c: *mut Self,
        c_rs: usize,
    );
}

macro_rules! gemm_of {
    ($f:ty, $entry:path) => {
        impl Gemm for $f {
            unsafe fn gemm(
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
            ) {
                // A stride of 0 (an operand repeated) is given as 1 over a
                // length of 1, which reads the same element.
                let fix = |s: usize| s.max(1);
                // SAFETY: as the caller promises.
                unsafe {
                    $entry(
                        m,
                        n,
                        k,
                        a,
                        fix(a_rs),
                        fix(a_cs),
                        b,
                        fix(b_rs),
                        fix(b_cs),
                        c,
                        fix(c_rs),
                        1,
                        0,
                    )
                }
            }
        }
    };
}
gemm_of!(f32, crate::kernels::cellc_gemm_f32);
gemm_of!(f64, crate::kernels::cellc_gemm_f64);

/// `C[m×n] = A[m×k]·B[k×n]` (overwriting), BLIS strides.
///
/// # Safety
/// As [`Gemm::gemm`].
#[allow(clippy::too_many_arguments)]
unsafe fn gemm<F: Gemm>(
    m: usize,
    n: usize,
    k: usize,
    a: *const F,
    a_rs: usize,
    a_cs: usize,
    b: *const F,
    b_rs: usize,
    b_cs: usize,
    c: *mut F,
    c_rs: usize,
) {
    unsafe { F::gemm(m, n, k, a, a_rs, a_cs, b, b_rs, b_cs, c, c_rs) }
}

/// `W·v` (or `Wᵀ·v`) for `rows` rows: `W` is `[m, n]`, row `r` at `w + r·w_rs`;
/// `v` row `r` at `v + r·v_rs`; the result `[rows, m]` (or `[rows, n]`)
/// contiguous.
///
/// # Safety
/// As [`gemm`].
#[allow(clippy::too_many_arguments)]
unsafe fn matvec<F: Gemm>(
    rows: usize,
    m: usize,
    n: usize,
    w: *const F,
    w_rs: usize,
    v: *const F,
    v_rs: usize,
    out: *mut F,
    transpose: bool,
) {
    let (len_in, len_out) = if transpose { (m, n) } else { (n, m) };
    // W's element (i, j) of the product's [len_in × len_out] right operand.
    let (b_rs, b_cs) = if transpose { (n, 1) } else { (1, n) };
    unsafe {
        if w_rs == 0 {
            // One matrix for every row: one product of all rows.
            gemm(
                rows, len_out, len_in, v, v_rs, 1, w, b_rs, b_cs, out, len_out,
            );
        } else {
            for r in 0..rows {
                gemm(
                    1,
                    len_out,
                    len_in,
                    v.add(r * v_rs),
                    v_rs,
                    1,
                    w.add(r * w_rs),
                    b_rs,
                    b_cs,
                    out.add(r * len_out),
                    len_out,
                );
            }
        }
    }
}

/// `a ⊗ v` per row: `[rows, m, n]` contiguous.
///
/// # Safety
/// As [`gemm`].
#[allow(clippy::too_many_arguments)]
unsafe fn outer<F: Float>(
    rows: usize,
    m: usize,
    n: usize,
    a: *const F,
    a_rs: usize,
    v: *const F,
    v_rs: usize,
    out: *mut F,
) {
    for r in 0..rows {
        for i in 0..m {
            unsafe {
                let ai = *a.add(r * a_rs + i);
                for j in 0..n {
                    *out.add((r * m + i) * n + j) = ai * *v.add(r * v_rs + j);
                }
            }
        }
    }
}

/// `Σ_r a_r ⊗ v_r`, `[m, n]` contiguous: one product over the rows.
///
/// # Safety
/// As [`gemm`].
#[allow(clippy::too_many_arguments)]
unsafe fn outer_sum<F: Gemm>(
    rows: usize,
    m: usize,
    n: usize,
    a: *const F,
    a_rs: usize,
    v: *const F,
    v_rs: usize,
    out: *mut F,
) {
    if a_rs == 0 || v_rs == 0 {
        // An unbatched operand repeated over the rows: the product's strides
        // cannot say it; summed plainly.
        for i in 0..m {
            for j in 0..n {
                let mut s = F::zero();
                for r in 0..rows {
                    unsafe { s = s + *a.add(r * a_rs + i) * *v.add(r * v_rs + j) };
                }
                unsafe { *out.add(i * n + j) = s };
            }
        }
        return;
    }
    unsafe { gemm(m, n, rows, a, 1, a_rs, v, v_rs, 1, out, n) }
}

/// Copies `rows × n` elements between row strides (`src_rs = 0` repeats one row).
///
/// # Safety
/// As [`gemm`].
unsafe fn copy<F: Float>(
    rows: usize,
    n: usize,
    src: *const F,
    src_rs: usize,
    dst: *mut F,
    dst_rs: usize,
) {
    for r in 0..rows {
        unsafe { std::ptr::copy_nonoverlapping(src.add(r * src_rs), dst.add(r * dst_rs), n) };
    }
}

/// The reductions of a row: sum, max, and the one-hot of the first maximum.
#[derive(Clone, Copy)]
#[repr(u32)]
enum Reduce {
    Sum = 0,
    Max = 1,
    ArgMaxMask = 2,
}

/// The first largest element of a row, a NaN winning where it first appears.
fn first_max<F: Float>(row: &[F]) -> usize {
    let mut best = 0;
    for (i, &x) in row.iter().enumerate() {
        if x.is_nan() {
            return i;
        }
        if x > row[best] {
            best = i;
        }
    }
    best
}

/// One reduction per row of `[rows, n]`; the result `[rows]` (sum, max) or
/// `[rows, n]` (mask), contiguous.
///
/// # Safety
/// As [`gemm`].
unsafe fn reduce<F: Float>(
    kind: Reduce,
    rows: usize,
    n: usize,
    src: *const F,
    src_rs: usize,
    dst: *mut F,
) {
    for r in 0..rows {
        // SAFETY: the row is `n` elements of the source.
        let row = unsafe { std::slice::from_raw_parts(src.add(r * src_rs), n) };
        unsafe {
            match kind {
                Reduce::Sum => *dst.add(r) = row.iter().fold(F::zero(), |s, &x| s + x),
                Reduce::Max => *dst.add(r) = row[first_max(row)],
                Reduce::ArgMaxMask => {
                    let out = std::slice::from_raw_parts_mut(dst.add(r * n), n);
                    out.fill(F::zero());
                    out[first_max(row)] = F::one();
                }
            }
        }
    }
}

/// `Σ_r src_r`, `[n]`, summed in row order.
///
/// # Safety
/// As [`gemm`].
unsafe fn batch_sum<F: Float>(rows: usize, n: usize, src: *const F, src_rs: usize, dst: *mut F) {
    unsafe {
        for j in 0..n {
            *dst.add(j) = F::zero();
        }
        for r in 0..rows {
            for j in 0..n {
                *dst.add(j) = *dst.add(j) + *src.add(r * src_rs + j);
            }
        }
    }
}

/// `n` copies of `value`.
///
/// # Safety
/// As [`gemm`].
unsafe fn fill<F: Float>(n: usize, value: F, dst: *mut F) {
    for j in 0..n {
        unsafe { *dst.add(j) = value };
    }
}

/// The packed weights of a kernel's products with a parameter matrix: one
/// slot per product, packed (`kernels::Packed`) on the first call and again
/// whenever the matrix is at another address or the table was cleared (the
/// drivers clear it before a run: parameters change between runs, in place).
#[derive(Default)]
pub struct PackTable {
    f32: Vec<Option<(usize, Packed<f32>)>>,
    f64: Vec<Option<(usize, Packed<f64>)>>,
}

impl PackTable {
    pub fn new(slots: usize) -> PackTable {
        PackTable {
            f32: (0..slots).map(|_| None).collect(),
            f64: (0..slots).map(|_| None).collect(),
        }
    }

    /// Forgets every packed matrix.
    pub fn clear(&mut self) {
        self.f32.iter_mut().for_each(|e| *e = None);
        self.f64.iter_mut().for_each(|e| *e = None);
    }
}

/// The C-ABI entry points of one float type, named `cellc_<routine>_<type>`.
macro_rules! entry_points {
    ($f:ty, $suffix:literal, $module:ident, $field:ident) => {
        mod $module {
            use super::*;
            /// `W·v` (or `Wᵀ·v`) on the packed `W` of `slot`, packed from `w`
            /// (`[m, n]`, contiguous) when the slot holds another address.
            #[allow(clippy::too_many_arguments)]
            #[unsafe(export_name = concat!("cellc_packed_matvec_", $suffix))]
            pub(super) extern "C" fn packed_matvec(
                table: *mut PackTable,
                slot: usize,
                rows: usize,
                m: usize,
                n: usize,
                w: *const $f,
                v: *const $f,
                v_rs: usize,
                out: *mut $f,
                transpose: u32,
            ) {
                // SAFETY: the table is the compiled step's own, called by one
                // thread at a time; pointers and sizes are from checked shapes.
                unsafe {
                    let table = &mut *table;
                    let entry = &mut table.$field[slot];
                    if entry.as_ref().is_none_or(|(at, _)| *at != w as usize) {
                        *entry = Some((w as usize, Packed::pack(m, n, w, n)));
                    }
                    let p = &entry.as_ref().expect("packed").1;
                    // A stride of 0 (one vector for every row) is one row.
                    let (rows_in, v_rs) = if v_rs == 0 {
                        (1, n.max(m))
                    } else {
                        (rows, v_rs)
                    };
                    if transpose != 0 {
                        p.apply_t(rows_in, v, v_rs, out, n, false);
                    } else {
                        p.apply(rows_in, v, v_rs, out, m, false);
                    }
                }
            }
            #[unsafe(export_name = concat!("cellc_matvec_", $suffix))]
            pub(super) extern "C" fn matvec(
                rows: usize,
                m: usize,
                n: usize,
                w: *const $f,
                w_rs: usize,
                v: *const $f,
                v_rs: usize,
                out: *mut $f,
                transpose: u32,
            ) {
                // SAFETY: called by generated code with checked shapes.
                unsafe { super::matvec(rows, m, n, w, w_rs, v, v_rs, out, transpose != 0) }
            }
            #[unsafe(export_name = concat!("cellc_outer_", $suffix))]
            pub(super) extern "C" fn outer(
                rows: usize,
                m: usize,
                n: usize,
                a: *const $f,
                a_rs: usize,
                v: *const $f,
                v_rs: usize,
                out: *mut $f,
            ) {
                // SAFETY: as above.
                unsafe { super::outer(rows, m, n, a, a_rs, v, v_rs, out) }
            }
            #[unsafe(export_name = concat!("cellc_outer_sum_", $suffix))]
            pub(super) extern "C" fn outer_sum(
                rows: usize,
                m: usize,
                n: usize,
                a: *const $f,
                a_rs: usize,
                v: *const $f,
                v_rs: usize,
                out: *mut $f,
            ) {
                // SAFETY: as above.
                unsafe { super::outer_sum(rows, m, n, a, a_rs, v, v_rs, out) }
            }
            #[unsafe(export_name = concat!("cellc_copy_", $suffix))]
            pub(super) extern "C" fn copy(
                rows: usize,
                n: usize,
                src: *const $f,
                src_rs: usize,
                dst: *mut $f,
                dst_rs: usize,
            ) {
                // SAFETY: as above.
                unsafe { super::copy(rows, n, src, src_rs, dst, dst_rs) }
            }
            #[unsafe(export_name = concat!("cellc_reduce_", $suffix))]
            pub(super) extern "C" fn reduce(
                kind: u32,
                rows: usize,
                n: usize,
                src: *const $f,
                src_rs: usize,
                dst: *mut $f,
            ) {
                let kind = match kind {
                    0 => Reduce::Sum,
                    1 => Reduce::Max,
                    _ => Reduce::ArgMaxMask,
                };
                // SAFETY: as above.
                unsafe { super::reduce(kind, rows, n, src, src_rs, dst) }
            }
            #[unsafe(export_name = concat!("cellc_batch_sum_", $suffix))]
            pub(super) extern "C" fn batch_sum(
                rows: usize,
                n: usize,
                src: *const $f,
                src_rs: usize,
                dst: *mut $f,
            ) {
                // SAFETY: as above.
                unsafe { super::batch_sum(rows, n, src, src_rs, dst) }
            }
            #[unsafe(export_name = concat!("cellc_fill_", $suffix))]
            pub(super) extern "C" fn fill(n: usize, value: $f, dst: *mut $f) {
                // SAFETY: as above.
                unsafe { super::fill(n, value, dst) }
            }
            /// Every routine by its symbol name.
            pub(super) fn symbols() -> Vec<(String, *const u8)> {
                vec![
                    (format!("cellc_matvec_{}", $suffix), matvec as *const u8),
                    (format!("cellc_outer_{}", $suffix), outer as *const u8),
                    (
                        format!("cellc_outer_sum_{}", $suffix),
                        outer_sum as *const u8,
                    ),
                    (format!("cellc_copy_{}", $suffix), copy as *const u8),
                    (format!("cellc_reduce_{}", $suffix), reduce as *const u8),
                    (
                        format!("cellc_batch_sum_{}", $suffix),
                        batch_sum as *const u8,
                    ),
                    (format!("cellc_fill_{}", $suffix), fill as *const u8),
                    (
                        format!("cellc_packed_matvec_{}", $suffix),
                        packed_matvec as *const u8,
                    ),
                ]
            }
        }
    };
}

entry_points!(f32, "f32", f32_entry, f32);
entry_points!(f64, "f64", f64_entry, f64);

/// Reduction kinds as generated code passes them.
pub const REDUCE_SUM: i64 = Reduce::Sum as i64;
pub const REDUCE_MAX: i64 = Reduce::Max as i64;
pub const REDUCE_ARGMAX_MASK: i64 = Reduce::ArgMaxMask as i64;

/// Every routine of both float types, by symbol name.
pub fn symbols() -> Vec<(String, *const u8)> {
    let mut all = f32_entry::symbols();
    all.extend(f64_entry::symbols());
    all
}
