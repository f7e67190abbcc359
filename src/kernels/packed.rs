//! The recurrent product on weights packed once per run.
//!
//! Layout: the `m` outputs (rows of `W`) are cut into panels of `P` (the
//! path's vector width: 16 f32 with AVX-512); panel `p` stores, for each
//! `kk` in `0..k`, the `P` weights `W[p·P .. p·P+P, kk]` next to each other,
//! the last panel padded with zeros. A step of `y = W·x` then reads each
//! panel front to back, one vector per `kk`, multiplied by the broadcast
//! `x[kk]`: the whole of `W` streams contiguously from L2 once per four rows
//! of `x`. The transposed product `z = Wᵀ·y` (backward) reads the same panels
//! as `[k × P]` blocks and reduces across lanes at the end.
//!
//! Summation order, per output, depends only on the path: `y[j]` sums
//! `kk = 0, 1, …, k-1` in one chain, then adds the old `y[j]` when
//! accumulating; so splitting the outputs over threads with
//! [`Packed::apply_range`] or the rows over calls gives the same bits.

use super::lanes::{Lanes, Portable};
use super::{Float, Path};

/// Rows of `x` per register block (each weight vector loaded is used this often).
const ROWS: usize = 4;

/// Weights `W [m×k]` (row-major, row stride `w_rs`) packed for repeated
/// products `y = W·x` over many steps.
///
/// Packing copies `W`; later changes to the original are not seen (repack
/// after an optimiser step).
pub struct Packed<F: Float> {
    m: usize,
    k: usize,
    path: Path,
    kernels: Kernels<F>,
    /// The panels, 64-byte aligned, starting at `offset`.
    data: Vec<F>,
    offset: usize,
}

/// A path's kernels for one float type, chosen once at pack time.
pub struct Kernels<F> {
    lanes: usize,
    apply: unsafe fn(&ApplyJob<F>),
    apply_t: unsafe fn(&ApplyTJob<F>),
}

/// `Y[rows, lo..hi] = (acc ? Y : 0) + X · Wᵀ` on the panels.
pub struct ApplyJob<F> {
    panels: *const F,
    k: usize,
    rows: usize,
    lo: usize,
    hi: usize,
    x: *const F,
    x_rs: usize,
    y: *mut F,
    y_rs: usize,
    accumulate: bool,
}

/// `Z[rows×k] = (acc ? Z : 0) + Y · W` on the panels.
pub struct ApplyTJob<F> {
    panels: *const F,
    m: usize,
    k: usize,
    rows: usize,
    y: *const F,
    y_rs: usize,
    z: *mut F,
    z_rs: usize,
    accumulate: bool,
}

impl<F: Float> Packed<F> {
    /// Packs `W [m×k]` for the fastest path of this machine.
    ///
    /// # Safety
    ///
    /// `w` must be valid for reads of `W[i, j]` at `w + i·w_rs + j` for
    /// `i < m`, `j < k`.
    pub unsafe fn pack(m: usize, k: usize, w: *const F, w_rs: usize) -> Packed<F> {
        // SAFETY: forwarded contract; the best path is available.
        unsafe { Self::pack_with(Path::best(), m, k, w, w_rs) }
    }

    /// Packs for a given path (tests force each one).
    ///
    /// # Safety
    ///
    /// As [`Packed::pack`].
    ///
    /// # Panics
    ///
    /// If this machine cannot run `path` ([`Path::is_available`]).
    pub unsafe fn pack_with(path: Path, m: usize, k: usize, w: *const F, w_rs: usize) -> Packed<F> {
        assert!(
            path.is_available(),
            "kernel path {path:?} is not available on this machine"
        );
        let kernels = F::kernels(path);
        let p = kernels.lanes;
        let panels = m.div_ceil(p);
        let len = panels * k * p;
        let align = 64 / std::mem::size_of::<F>();
        let mut data = vec![F::ZERO; len + align];
        let offset = data.as_ptr().align_offset(64).min(align);
        let dst = &mut data[offset..offset + len];
        for i in 0..m {
            let (panel, lane) = (i / p, i % p);
            for kk in 0..k {
                // SAFETY: i < m, kk < k: inside W by the caller's contract.
                dst[(panel * k + kk) * p + lane] = unsafe { *w.add(i * w_rs + kk) };
            }
        }
        Packed {
            m,
            k,
            path,
            kernels,
            data,
            offset,
        }
    }

    /// Outputs (rows of `W`).
    pub fn m(&self) -> usize {
        self.m
    }

    /// Inputs (columns of `W`).
    pub fn k(&self) -> usize {
        self.k
    }

    /// The kernel path the weights were packed for.
    pub fn path(&self) -> Path {
        self.path
    }

    fn panels(&self) -> *const F {
        self.data[self.offset..].as_ptr()
    }

    /// `Y[rows×m] = (accumulate ? Y : 0) + X[rows×k] · Wᵀ`, `X` with row stride
    /// `x_rs`, `Y` with row stride `y_rs` (columns contiguous in both).
    ///
    /// # Safety
    ///
    /// `x` valid for reads of `rows` rows of `k`, `y` valid for reads and
    /// writes of `rows` rows of `m`, at the given strides; `Y` must not overlap
    /// `X`.
    pub unsafe fn apply(
        &self,
        rows: usize,
        x: *const F,
        x_rs: usize,
        y: *mut F,
        y_rs: usize,
        accumulate: bool,
    ) {
        // SAFETY: forwarded contract.
        unsafe { self.apply_range(rows, 0, self.m, x, x_rs, y, y_rs, accumulate) }
    }

    /// As [`Packed::apply`], computing only outputs `lo..hi` (columns of `Y`;
    /// the others are neither read nor written). For splitting the `m`
    /// outputs over threads: each output's bits do not depend on the split.
    ///
    /// # Safety
    ///
    /// As [`Packed::apply`], with `lo <= hi <= m` (only columns `lo..hi` of `Y`
    /// need be valid).
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn apply_range(
        &self,
        rows: usize,
        lo: usize,
        hi: usize,
        x: *const F,
        x_rs: usize,
        y: *mut F,
        y_rs: usize,
        accumulate: bool,
    ) {
        debug_assert!(
            lo <= hi && hi <= self.m,
            "output range {lo}..{hi} outside 0..{}",
            self.m
        );
        if rows == 0 || lo >= hi {
            return;
        }
        let job = ApplyJob {
            panels: self.panels(),
            k: self.k,
            rows,
            lo,
            hi,
            x,
            x_rs,
            y,
            y_rs,
            accumulate,
        };
        // SAFETY: the path was checked available at pack time; the job's pointers
        // are valid by the caller's contract and the panels are ours.
        unsafe { (self.kernels.apply)(&job) }
    }

    /// The transposed product used by backward:
    /// `Z[rows×k] = (accumulate ? Z : 0) + Y[rows×m] · W`.
    ///
    /// # Safety
    ///
    /// `y` valid for reads of `rows` rows of `m`, `z` valid for reads and
    /// writes of `rows` rows of `k`, at the given strides; no overlap.
    pub unsafe fn apply_t(
        &self,
        rows: usize,
        y: *const F,
        y_rs: usize,
        z: *mut F,
        z_rs: usize,
        accumulate: bool,
    ) {
        if rows == 0 || self.k == 0 {
            return;
        }
        let job = ApplyTJob {
            panels: self.panels(),
            m: self.m,
            k: self.k,
            rows,
            y,
            y_rs,
            z,
            z_rs,
            accumulate,
        };
        // SAFETY: as in `apply_range`.
        unsafe { (self.kernels.apply_t)(&job) }
    }
}

/// `y = W·x` for rows of `x`, panels `lo/P .. ceil(hi/P)` in groups of `NP`
/// (one accumulator per row per panel).
#[inline(always)]
unsafe fn apply_generic<V: Lanes, const NP: usize>(j: &ApplyJob<V::F>) {
    let p = V::N;
    let end = j.hi.div_ceil(p);
    let mut panel = j.lo / p;
    // Panel groups outside, rows inside: a group of panels stays in L1/L2 while
    // every row block reads it.
    while panel < end {
        let group = if panel + NP <= end { NP } else { 1 };
        let mut r0 = 0;
        while r0 < j.rows {
            let rr = (j.rows - r0).min(ROWS);
            // SAFETY: rows r0..r0+rr and the panels exist (caller's job contract).
            unsafe {
                match (rr, group == NP) {
                    (1, true) => block::<V, 1, NP>(j, r0, panel),
                    (2, true) => block::<V, 2, NP>(j, r0, panel),
                    (3, true) => block::<V, 3, NP>(j, r0, panel),
                    (_, true) => block::<V, 4, NP>(j, r0, panel),
                    (1, false) => block::<V, 1, 1>(j, r0, panel),
                    (2, false) => block::<V, 2, 1>(j, r0, panel),
                    (3, false) => block::<V, 3, 1>(j, r0, panel),
                    (_, false) => block::<V, 4, 1>(j, r0, panel),
                }
            }
            r0 += rr;
        }
        panel += group;
    }
}

/// Rows `r0..r0+R` × panels `panel..panel+NP` of `y = W·x`.
#[inline(always)]
unsafe fn block<V: Lanes, const R: usize, const NP: usize>(
    j: &ApplyJob<V::F>,
    r0: usize,
    panel: usize,
) {
    let p = V::N;
    let stride = j.k * p;
    // SAFETY (whole body): pointers stay inside the rows and panels of the job.
    unsafe {
        let w = j.panels.add(panel * stride);
        let x: [*const V::F; R] = core::array::from_fn(|r| j.x.add((r0 + r) * j.x_rs));
        let mut acc = [[V::zero(); NP]; R];
        for kk in 0..j.k {
            let wv: [V; NP] = core::array::from_fn(|q| V::load(w.add(q * stride + kk * p)));
            for r in 0..R {
                let xv = V::splat(*x[r].add(kk));
                for q in 0..NP {
                    acc[r][q] = V::mul_add(wv[q], xv, acc[r][q]);
                }
            }
        }
        for q in 0..NP {
            let j0 = (panel + q) * p;
            let a = j.lo.max(j0) - j0;
            let b = j.hi.min(j0 + p) - j0;
            for (r, acc_r) in acc.iter().enumerate() {
                let dst = j.y.add((r0 + r) * j.y_rs + j0);
                if a == 0 && b == p {
                    let v = if j.accumulate {
                        V::add(V::load(dst), acc_r[q])
                    } else {
                        acc_r[q]
                    };
                    v.store(dst);
                } else {
                    // A panel cut by the range or by m: the lanes inside, one by one,
                    // with the same addition as the full store.
                    let mut tmp = [V::F::ZERO; 16];
                    acc_r[q].store(tmp.as_mut_ptr());
                    for (i, t) in tmp.iter().enumerate().take(b).skip(a) {
                        let out = dst.add(i);
                        *out = if j.accumulate { *out + *t } else { *t };
                    }
                }
            }
        }
    }
}

/// `z = Wᵀ·y` for rows of `y`, `kk` in blocks of `KB`.
#[inline(always)]
unsafe fn apply_t_generic<V: Lanes, const KB: usize>(j: &ApplyTJob<V::F>) {
    let mut r0 = 0;
    while r0 < j.rows {
        let rr = (j.rows - r0).min(ROWS);
        let mut kk = 0;
        while kk < j.k {
            let wide = kk + KB <= j.k;
            // SAFETY: rows r0..r0+rr and columns kk.. exist (caller's job contract).
            unsafe {
                match (rr, wide) {
                    (1, true) => block_t::<V, 1, KB>(j, r0, kk),
                    (2, true) => block_t::<V, 2, KB>(j, r0, kk),
                    (3, true) => block_t::<V, 3, KB>(j, r0, kk),
                    (_, true) => block_t::<V, 4, KB>(j, r0, kk),
                    (1, false) => block_t::<V, 1, 1>(j, r0, kk),
                    (2, false) => block_t::<V, 2, 1>(j, r0, kk),
                    (3, false) => block_t::<V, 3, 1>(j, r0, kk),
                    (_, false) => block_t::<V, 4, 1>(j, r0, kk),
                }
            }
            kk += if wide { KB } else { 1 };
        }
        r0 += rr;
    }
}

/// Rows `r0..r0+R` × inputs `kk0..kk0+KB` of `z = Wᵀ·y`: lane-wise partial
/// sums over the panels, reduced across lanes at the end.
#[inline(always)]
unsafe fn block_t<V: Lanes, const R: usize, const KB: usize>(
    j: &ApplyTJob<V::F>,
    r0: usize,
    kk0: usize,
) {
    let p = V::N;
    let full = j.m / p;
    let panels = j.m.div_ceil(p);
    // SAFETY (whole body): pointers stay inside the rows and panels of the job; the
    // last, partial panel's `y` is loaded with zeros past `m`.
    unsafe {
        let y: [*const V::F; R] = core::array::from_fn(|r| j.y.add((r0 + r) * j.y_rs));
        let mut acc = [[V::zero(); KB]; R];
        for panel in 0..panels {
            let yv: [V; R] = if panel < full {
                core::array::from_fn(|r| V::load(y[r].add(panel * p)))
            } else {
                core::array::from_fn(|r| V::load_partial(y[r].add(panel * p), j.m - panel * p))
            };
            let w = j.panels.add((panel * j.k + kk0) * p);
            for c in 0..KB {
                let wv = V::load(w.add(c * p));
                for r in 0..R {
                    acc[r][c] = V::mul_add(wv, yv[r], acc[r][c]);
                }
            }
        }
        for (r, acc_r) in acc.iter().enumerate() {
            let dst = j.z.add((r0 + r) * j.z_rs + kk0);
            for (c, a) in acc_r.iter().enumerate() {
                let s = a.sum();
                let out = dst.add(c);
                *out = if j.accumulate { *out + s } else { s };
            }
        }
    }
}

/// One path's instantiation of the generic loops, compiled for its
/// instruction set.
macro_rules! path {
    ($module:ident, $V:ty, $np:literal $(, #[$attr:meta])?) => {
        mod $module {
            use super::*;
            type F = <$V as Lanes>::F;
            $(#[$attr])?
            pub(super) unsafe fn apply(job: &ApplyJob<F>) {
                // SAFETY: the path is available (checked at pack time), so is `$V`'s set.
                unsafe { apply_generic::<$V, $np>(job) }
            }
            $(#[$attr])?
            pub(super) unsafe fn apply_t(job: &ApplyTJob<F>) {
                // SAFETY: as above.
                unsafe { apply_t_generic::<$V, $np>(job) }
            }
            pub(super) fn kernels() -> Kernels<F> {
                Kernels { lanes: <$V as Lanes>::N, apply, apply_t }
            }
        }
    };
}

// NP: panels per register block. AVX-512 has 32 registers (4 rows × 4 panels of
// accumulators), AVX2 16 (4 × 2), the portable arrays take two SSE registers each.
#[cfg(target_arch = "x86_64")]
path!(avx512_f32, super::super::lanes::Avx512F32, 4, #[target_feature(enable = "avx512f")]);
#[cfg(target_arch = "x86_64")]
path!(avx512_f64, super::super::lanes::Avx512F64, 4, #[target_feature(enable = "avx512f")]);
#[cfg(target_arch = "x86_64")]
path!(avx2_f32, super::super::lanes::Avx2F32, 2, #[target_feature(enable = "avx2,fma")]);
#[cfg(target_arch = "x86_64")]
path!(avx2_f64, super::super::lanes::Avx2F64, 2, #[target_feature(enable = "avx2,fma")]);
path!(portable_f32, Portable<f32, 8>, 1);
path!(portable_f64, Portable<f64, 4>, 1);

impl super::sealed::Sealed for f32 {
    fn kernels(path: Path) -> Kernels<f32> {
        match path {
            #[cfg(target_arch = "x86_64")]
            Path::Avx512 => avx512_f32::kernels(),
            #[cfg(target_arch = "x86_64")]
            Path::Avx2 => avx2_f32::kernels(),
            _ => portable_f32::kernels(),
        }
    }
}

impl super::sealed::Sealed for f64 {
    fn kernels(path: Path) -> Kernels<f64> {
        match path {
            #[cfg(target_arch = "x86_64")]
            Path::Avx512 => avx512_f64::kernels(),
            #[cfg(target_arch = "x86_64")]
            Path::Avx2 => avx2_f64::kernels(),
            _ => portable_f64::kernels(),
        }
    }
}

macro_rules! extern_wrappers {
    ($f:ty, $apply:ident, $range:ident, $apply_t:ident) => {
        /// [`Packed::apply`] for generated code (`accumulate` nonzero to add).
        ///
        /// # Safety
        ///
        /// `packed` points to a live [`Packed`]; the rest as [`Packed::apply`].
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $apply(
            packed: *const Packed<$f>,
            rows: usize,
            x: *const $f,
            x_rs: usize,
            y: *mut $f,
            y_rs: usize,
            accumulate: u32,
        ) {
            // SAFETY: forwarded contract.
            unsafe { (*packed).apply(rows, x, x_rs, y, y_rs, accumulate != 0) }
        }

        /// [`Packed::apply_range`] for generated code.
        ///
        /// # Safety
        ///
        /// `packed` points to a live [`Packed`]; the rest as [`Packed::apply_range`].
        #[unsafe(no_mangle)]
        #[allow(clippy::too_many_arguments)]
        pub unsafe extern "C" fn $range(
            packed: *const Packed<$f>,
            rows: usize,
            lo: usize,
            hi: usize,
            x: *const $f,
            x_rs: usize,
            y: *mut $f,
            y_rs: usize,
            accumulate: u32,
        ) {
            // SAFETY: forwarded contract.
            unsafe { (*packed).apply_range(rows, lo, hi, x, x_rs, y, y_rs, accumulate != 0) }
        }

        /// [`Packed::apply_t`] for generated code.
        ///
        /// # Safety
        ///
        /// `packed` points to a live [`Packed`]; the rest as [`Packed::apply_t`].
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $apply_t(
            packed: *const Packed<$f>,
            rows: usize,
            y: *const $f,
            y_rs: usize,
            z: *mut $f,
            z_rs: usize,
            accumulate: u32,
        ) {
            // SAFETY: forwarded contract.
            unsafe { (*packed).apply_t(rows, y, y_rs, z, z_rs, accumulate != 0) }
        }
    };
}

extern_wrappers!(
    f32,
    cellc_packed_apply_f32,
    cellc_packed_apply_range_f32,
    cellc_packed_apply_t_f32
);
extern_wrappers!(
    f64,
    cellc_packed_apply_f64,
    cellc_packed_apply_range_f64,
    cellc_packed_apply_t_f64
);
