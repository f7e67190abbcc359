//! The recurrent product on weights packed once per run.
//!
//! Layout: the `m` outputs (rows of `W`) are cut into panels of `P` (the
//! path's vector width: 16 f32 with AVX-512), and `NP1` panels (8 with
//! AVX-512) are interleaved into one wide panel: for each `kk` in `0..k`, the
//! `NP1·P` weights `W[g·NP1·P ..][kk]` next to each other, the last wide panel
//! padded with zeros. A step of `y = W·x` at one row reads a wide panel front
//! to back, `NP1` vectors per `kk` (independent FMA chains), each times the
//! broadcast `x[kk]`: one contiguous stream, which the prefetcher follows
//! (separate panels `k·P` apart, read side by side, ran 1.2–1.8× slower at one
//! row). Several rows read `NP ≤ NP1` sub-panels at once, four rows per
//! block, so each weight vector loaded serves four rows.
//!
//! The transposed product `z = Wᵀ·y` (backward) runs the same kernel on `Wᵀ`
//! packed the same way, made on its first use: reading `W`'s panels across
//! (one short block per panel, panels `k·P` apart) ran 3–4× slower, the large
//! power-of-two strides defeating the caches and the prefetcher.
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
    w: Panels<F>,
    /// `Wᵀ [k×m]` in the same layout, for `apply_t`; packed on first use, so a
    /// forward-only run keeps one copy.
    wt: std::sync::OnceLock<Panels<F>>,
}

/// A matrix in panels of `width` rows (see the module's doc), 64-byte aligned.
struct Panels<F> {
    data: Vec<F>,
    offset: usize,
}

impl<F: Float> Panels<F> {
    /// Packs `rows × cols` with `get(i, kk)` the element at row `i`, column `kk`.
    fn new(width: usize, rows: usize, cols: usize, get: impl Fn(usize, usize) -> F) -> Panels<F> {
        let len = rows.div_ceil(width) * cols * width;
        let align = 64 / std::mem::size_of::<F>();
        let mut data = vec![F::ZERO; len + align];
        let offset = data.as_ptr().align_offset(64).min(align);
        let dst = &mut data[offset..offset + len];
        for i in 0..rows {
            let (panel, lane) = (i / width, i % width);
            for kk in 0..cols {
                dst[(panel * cols + kk) * width + lane] = get(i, kk);
            }
        }
        Panels { data, offset }
    }

    fn get(&self, width: usize, cols: usize, i: usize, kk: usize) -> F {
        self.data[self.offset + ((i / width) * cols + kk) * width + i % width]
    }

    fn ptr(&self) -> *const F {
        self.data[self.offset..].as_ptr()
    }
}

/// A path's kernels for one float type, chosen once at pack time.
pub struct Kernels<F> {
    /// Outputs per wide panel: lanes × panels a one-row block reads at once.
    wide: usize,
    apply: unsafe fn(&ApplyJob<F>),
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
        // SAFETY: i < m, kk < k: inside W by the caller's contract.
        let w = Panels::new(kernels.wide, m, k, |i, kk| unsafe { *w.add(i * w_rs + kk) });
        Packed {
            m,
            k,
            path,
            kernels,
            w,
            wt: std::sync::OnceLock::new(),
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
            panels: self.w.ptr(),
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
    /// The first call packs `Wᵀ` (as long as a [`Packed::pack`]); later ones,
    /// from any thread, reuse it.
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
        // SAFETY: forwarded contract.
        unsafe { self.apply_t_range(rows, 0, self.k, y, y_rs, z, z_rs, accumulate) }
    }

    /// As [`Packed::apply_t`], computing only outputs `lo..hi` (columns of `Z`).
    ///
    /// # Safety
    ///
    /// As [`Packed::apply_t`], with `lo <= hi <= k`.
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn apply_t_range(
        &self,
        rows: usize,
        lo: usize,
        hi: usize,
        y: *const F,
        y_rs: usize,
        z: *mut F,
        z_rs: usize,
        accumulate: bool,
    ) {
        debug_assert!(
            lo <= hi && hi <= self.k,
            "output range {lo}..{hi} outside 0..{}",
            self.k
        );
        if rows == 0 || lo >= hi {
            return;
        }
        let (width, k) = (self.kernels.wide, self.k);
        let wt = self
            .wt
            .get_or_init(|| Panels::new(width, k, self.m, |kk, j| self.w.get(width, k, j, kk)));
        let job = ApplyJob {
            panels: wt.ptr(),
            k: self.m,
            rows,
            lo,
            hi,
            x: y,
            x_rs: y_rs,
            y: z,
            y_rs: z_rs,
            accumulate,
        };
        // SAFETY: as in `apply_range`, with Wᵀ's panels.
        unsafe { (self.kernels.apply)(&job) }
    }
}

/// `y = W·x` for rows of `x`, panels `lo/P .. ceil(hi/P)` in groups of `NP`
/// (one accumulator per row per panel), or `NP1` for a single row (more
/// independent chains to cover the FMA latency).
#[inline(always)]
unsafe fn apply_generic<V: Lanes, const NP: usize, const NP1: usize>(j: &ApplyJob<V::F>) {
    let p = V::N;
    let end = j.hi.div_ceil(p);
    let mut panel = j.lo / p;
    if j.rows == 1 {
        while panel < end {
            let sub = panel % NP1;
            // SAFETY: row 0 and the panels exist (caller's job contract); a block
            // stays inside one wide panel.
            unsafe {
                if sub == 0 && panel + NP1 <= end {
                    block::<V, 1, NP1, NP1>(j, 0, panel);
                    panel += NP1;
                } else if sub + NP <= NP1 && panel + NP <= end {
                    block::<V, 1, NP, NP1>(j, 0, panel);
                    panel += NP;
                } else {
                    block::<V, 1, 1, NP1>(j, 0, panel);
                    panel += 1;
                }
            }
        }
        return;
    }
    // Panel groups outside, rows inside: a group of panels stays in L1/L2 while
    // every row block reads it.
    while panel < end {
        let fits = panel % NP1 + NP <= NP1 && panel + NP <= end;
        let group = if fits { NP } else { 1 };
        let mut r0 = 0;
        while r0 < j.rows {
            let rr = (j.rows - r0).min(ROWS);
            // SAFETY: rows r0..r0+rr and the panels exist (caller's job contract).
            unsafe {
                match (rr, group == NP) {
                    (1, true) => block::<V, 1, NP, NP1>(j, r0, panel),
                    (2, true) => block::<V, 2, NP, NP1>(j, r0, panel),
                    (3, true) => block::<V, 3, NP, NP1>(j, r0, panel),
                    (_, true) => block::<V, 4, NP, NP1>(j, r0, panel),
                    (1, false) => block::<V, 1, 1, NP1>(j, r0, panel),
                    (2, false) => block::<V, 2, 1, NP1>(j, r0, panel),
                    (3, false) => block::<V, 3, 1, NP1>(j, r0, panel),
                    (_, false) => block::<V, 4, 1, NP1>(j, r0, panel),
                }
            }
            r0 += rr;
        }
        panel += group;
    }
}

/// Rows `r0..r0+R` × panels `panel..panel+NP` of `y = W·x`.
#[inline(always)]
unsafe fn block<V: Lanes, const R: usize, const NP: usize, const NP1: usize>(
    j: &ApplyJob<V::F>,
    r0: usize,
    panel: usize,
) {
    let p = V::N;
    // Panel `panel` is sub-panel `panel % NP1` of wide panel `panel / NP1`.
    let wide = NP1 * p;
    // SAFETY (whole body): pointers stay inside the rows and panels of the job.
    unsafe {
        let w = j.panels.add((panel / NP1) * j.k * wide + (panel % NP1) * p);
        let x: [*const V::F; R] = core::array::from_fn(|r| j.x.add((r0 + r) * j.x_rs));
        let mut acc = [[V::zero(); NP]; R];
        for kk in 0..j.k {
            let wv: [V; NP] = core::array::from_fn(|q| V::load(w.add(q * p + kk * wide)));
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
                // Wrapping: a cut panel's start may lie before column `lo`, outside
                // what the caller guarantees; only lanes a..b are touched.
                let dst = j.y.wrapping_add((r0 + r) * j.y_rs + j0);
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

/// One path's instantiation of the generic loops, compiled for its
/// instruction set.
macro_rules! path {
    ($module:ident, $V:ty, $np:literal, $np1:literal $(, #[$attr:meta])?) => {
        mod $module {
            use super::*;
            type F = <$V as Lanes>::F;
            $(#[$attr])?
            pub(super) unsafe fn apply(job: &ApplyJob<F>) {
                // SAFETY: the path is available (checked at pack time), so is `$V`'s set.
                unsafe { apply_generic::<$V, $np, $np1>(job) }
            }
            pub(super) fn kernels() -> Kernels<F> {
                Kernels { wide: <$V as Lanes>::N * $np1, apply }
            }
        }
    };
}

// NP, NP1: panels per register block for several rows and for one. AVX-512 has 32
// registers (4 rows × 4 panels of accumulators), AVX2 16 (4 × 2), the portable arrays
// take two SSE registers each.
#[cfg(target_arch = "x86_64")]
path!(avx512_f32, super::super::lanes::Avx512F32, 4, 8, #[target_feature(enable = "avx512f")]);
#[cfg(target_arch = "x86_64")]
path!(avx512_f64, super::super::lanes::Avx512F64, 4, 8, #[target_feature(enable = "avx512f")]);
#[cfg(target_arch = "x86_64")]
path!(avx2_f32, super::super::lanes::Avx2F32, 2, 4, #[target_feature(enable = "avx2,fma")]);
#[cfg(target_arch = "x86_64")]
path!(avx2_f64, super::super::lanes::Avx2F64, 2, 4, #[target_feature(enable = "avx2,fma")]);
path!(portable_f32, Portable<f32, 8>, 1, 2);
path!(portable_f64, Portable<f64, 4>, 1, 2);

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
