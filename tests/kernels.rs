//! The kernels against a naive triple loop accumulated in f64: every entry
//! point, odd sizes, strides, transposed operands, accumulate on and off, each
//! kernel path this machine runs, f32 and f64.

use cellc_rt::kernels::{
    FlushDenormals, Packed, Path, cellc_gemm_f32, cellc_gemm_f64, cellc_packed_apply_f32,
    cellc_packed_apply_f64, cellc_packed_apply_range_f32, cellc_packed_apply_t_f32,
    cellc_packed_apply_t_f64,
};

const SIZES: &[usize] = &[1, 2, 3, 5, 7, 16, 17, 33, 67, 129];

/// f32 or f64, seen from the tests.
trait T: cellc_rt::kernels::Float {
    /// Relative tolerance against the sum of |terms|.
    const TOL: f64;
    fn of(x: f64) -> Self;
    fn f64(self) -> f64;
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
        c_cs: usize,
        acc: u32,
    );
}

impl T for f32 {
    const TOL: f64 = 2e-6;
    fn of(x: f64) -> Self {
        x as f32
    }
    fn f64(self) -> f64 {
        self as f64
    }
    unsafe fn gemm(
        m: usize,
        n: usize,
        k: usize,
        a: *const f32,
        a_rs: usize,
        a_cs: usize,
        b: *const f32,
        b_rs: usize,
        b_cs: usize,
        c: *mut f32,
        c_rs: usize,
        c_cs: usize,
        acc: u32,
    ) {
        unsafe { cellc_gemm_f32(m, n, k, a, a_rs, a_cs, b, b_rs, b_cs, c, c_rs, c_cs, acc) }
    }
}

impl T for f64 {
    const TOL: f64 = 1e-14;
    fn of(x: f64) -> Self {
        x
    }
    fn f64(self) -> f64 {
        self
    }
    unsafe fn gemm(
        m: usize,
        n: usize,
        k: usize,
        a: *const f64,
        a_rs: usize,
        a_cs: usize,
        b: *const f64,
        b_rs: usize,
        b_cs: usize,
        c: *mut f64,
        c_rs: usize,
        c_cs: usize,
        acc: u32,
    ) {
        unsafe { cellc_gemm_f64(m, n, k, a, a_rs, a_cs, b, b_rs, b_cs, c, c_rs, c_cs, acc) }
    }
}

/// Deterministic values in [-1, 1) (xorshift), with NaN nowhere.
struct Gen(u64);

impl Gen {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 52) as f64 - 1.0
    }
    fn vec<F: T>(&mut self, len: usize) -> Vec<F> {
        (0..len).map(|_| F::of(self.next())).collect()
    }
}

/// How a matrix sits in memory: (row stride, column stride) for `rows × cols`.
#[derive(Debug, Clone, Copy)]
enum Layout {
    Rows,
    Cols,
    /// Row-major with padded rows and every second column.
    Spread,
}

impl Layout {
    fn strides(self, rows: usize, cols: usize) -> (usize, usize, usize) {
        match self {
            Layout::Rows => (cols, 1, rows * cols),
            Layout::Cols => (1, rows, rows * cols),
            Layout::Spread => (2 * cols + 3, 2, rows * (2 * cols + 3)),
        }
    }
}

/// Whether `got` is within tolerance of the f64 sum `want`, scaled by the sum
/// of the terms' magnitudes.
fn close<F: T>(got: F, want: f64, scale: f64) -> bool {
    (got.f64() - want).abs() <= F::TOL * (scale + 1.0) * 4.0
}

#[allow(clippy::too_many_arguments)]
fn check_gemm<F: T>(
    g: &mut Gen,
    m: usize,
    n: usize,
    k: usize,
    la: Layout,
    lb: Layout,
    lc: Layout,
    acc: bool,
) {
    let (a_rs, a_cs, a_len) = la.strides(m, k);
    let (b_rs, b_cs, b_len) = lb.strides(k, n);
    let (c_rs, c_cs, c_len) = lc.strides(m, n);
    let a = g.vec::<F>(a_len);
    let b = g.vec::<F>(b_len);
    let mut c = g.vec::<F>(c_len);
    let before = c.clone();
    unsafe {
        F::gemm(
            m,
            n,
            k,
            a.as_ptr(),
            a_rs,
            a_cs,
            b.as_ptr(),
            b_rs,
            b_cs,
            c.as_mut_ptr(),
            c_rs,
            c_cs,
            acc as u32,
        )
    };
    let mut touched = vec![false; c_len];
    for i in 0..m {
        for j in 0..n {
            let (mut want, mut scale) = (0.0, 0.0);
            if acc {
                want = before[i * c_rs + j * c_cs].f64();
                scale = want.abs();
            }
            for p in 0..k {
                let t = a[i * a_rs + p * a_cs].f64() * b[p * b_rs + j * b_cs].f64();
                want += t;
                scale += t.abs();
            }
            let got = c[i * c_rs + j * c_cs];
            touched[i * c_rs + j * c_cs] = true;
            assert!(
                close(got, want, scale),
                "gemm {m}×{n}×{k} {la:?}/{lb:?}/{lc:?} acc={acc}: C[{i},{j}] = {got:?}, want {want}"
            );
        }
    }
    for (idx, t) in touched.iter().enumerate() {
        assert!(*t || c[idx] == before[idx], "gemm wrote outside C at {idx}");
    }
}

fn gemm_all_sizes<F: T>() {
    let mut g = Gen(0x9e3779b97f4a7c15);
    for &m in SIZES {
        for &n in SIZES {
            for &k in SIZES {
                check_gemm::<F>(
                    &mut g,
                    m,
                    n,
                    k,
                    Layout::Rows,
                    Layout::Rows,
                    Layout::Rows,
                    (m + n + k) % 2 == 0,
                );
            }
        }
    }
    // h·Wᵀ with W row-major (B's columns contiguous): the small-row kernel's layout.
    for &m in &[1, 2, 3, 4, 5, 7, 16, 17] {
        for &n in SIZES {
            for &k in SIZES {
                check_gemm::<F>(
                    &mut g,
                    m,
                    n,
                    k,
                    Layout::Rows,
                    Layout::Cols,
                    Layout::Rows,
                    (m + n + k) % 2 == 1,
                );
            }
        }
    }
    let layouts = [Layout::Rows, Layout::Cols, Layout::Spread];
    for &(m, n, k) in &[
        (1, 67, 33),
        (3, 17, 129),
        (17, 5, 7),
        (33, 129, 16),
        (4, 64, 64),
        (2, 1, 1),
    ] {
        for la in layouts {
            for lb in layouts {
                for lc in layouts {
                    for acc in [false, true] {
                        check_gemm::<F>(&mut g, m, n, k, la, lb, lc, acc);
                    }
                }
            }
        }
    }
}

#[test]
fn gemm_f32_matches_naive_product() {
    gemm_all_sizes::<f32>();
}

#[test]
fn gemm_f64_matches_naive_product() {
    gemm_all_sizes::<f64>();
}

#[test]
fn gemm_with_k_zero_zeroes_or_keeps_c() {
    let mut c = [5.0f32; 6];
    unsafe {
        cellc_gemm_f32(
            2,
            3,
            0,
            [].as_ptr(),
            1,
            1,
            [].as_ptr(),
            1,
            1,
            c.as_mut_ptr(),
            3,
            1,
            1,
        )
    };
    assert_eq!(c, [5.0; 6]);
    unsafe {
        cellc_gemm_f32(
            2,
            3,
            0,
            [].as_ptr(),
            1,
            1,
            [].as_ptr(),
            1,
            1,
            c.as_mut_ptr(),
            3,
            1,
            0,
        )
    };
    assert_eq!(c, [0.0; 6]);
}

/// `W [m×k]` with row stride `k + 1`, packed for `path`.
fn packed<F: T>(g: &mut Gen, path: Path, m: usize, k: usize) -> (Vec<F>, usize, Packed<F>) {
    let w_rs = k + 1;
    let w = g.vec::<F>(m * w_rs);
    let p = unsafe { Packed::pack_with(path, m, k, w.as_ptr(), w_rs) };
    assert_eq!(p.path(), path);
    (w, w_rs, p)
}

fn check_apply<F: T>(g: &mut Gen, path: Path, m: usize, k: usize, rows: usize, acc: bool) {
    let (w, w_rs, p) = packed::<F>(g, path, m, k);
    let (x_rs, y_rs) = (k + 2, m + 3);
    let x = g.vec::<F>(rows * x_rs);
    let mut y = g.vec::<F>(rows * y_rs);
    let before = y.clone();
    unsafe { p.apply(rows, x.as_ptr(), x_rs, y.as_mut_ptr(), y_rs, acc) };
    for r in 0..rows {
        for j in 0..y_rs {
            let got = y[r * y_rs + j];
            if j >= m {
                assert_eq!(got, before[r * y_rs + j], "apply wrote past m");
                continue;
            }
            let (mut want, mut scale) = if acc {
                (before[r * y_rs + j].f64(), before[r * y_rs + j].f64().abs())
            } else {
                (0.0, 0.0)
            };
            for kk in 0..k {
                let t = w[j * w_rs + kk].f64() * x[r * x_rs + kk].f64();
                want += t;
                scale += t.abs();
            }
            assert!(
                close(got, want, scale),
                "{path:?} apply m={m} k={k} rows={rows} acc={acc}: y[{r},{j}] = {got:?}, want {want}"
            );
        }
    }
    // Each row alone gives the same bits as the block (row blocking does not
    // change a sum), and so does the output range split anywhere.
    let mut one = before.clone();
    for r in 0..rows {
        unsafe {
            p.apply(
                1,
                x[r * x_rs..].as_ptr(),
                x_rs,
                one[r * y_rs..].as_mut_ptr(),
                y_rs,
                acc,
            )
        };
    }
    assert!(
        one == y,
        "{path:?} m={m} k={k} rows={rows}: row by row differs from the block"
    );
    let cut = (m * 5 / 7).min(m);
    let mut split = before.clone();
    unsafe {
        p.apply_range(
            rows,
            cut,
            m,
            x.as_ptr(),
            x_rs,
            split.as_mut_ptr(),
            y_rs,
            acc,
        );
        p.apply_range(
            rows,
            0,
            cut,
            x.as_ptr(),
            x_rs,
            split.as_mut_ptr(),
            y_rs,
            acc,
        );
    }
    assert!(
        split == y,
        "{path:?} m={m} k={k} rows={rows}: split at {cut} differs"
    );
}

fn check_apply_range<F: T>(g: &mut Gen, path: Path, m: usize, k: usize, rows: usize) {
    let (_, _, p) = packed::<F>(g, path, m, k);
    let x = g.vec::<F>(rows * k);
    let mut full = g.vec::<F>(rows * m);
    let init = full.clone();
    unsafe { p.apply(rows, x.as_ptr(), k, full.as_mut_ptr(), m, true) };
    for (lo, hi) in [
        (0, m),
        (1, m),
        (0, m / 2),
        (m / 3, m / 3 + 1),
        (m / 2, m / 2),
        (m.saturating_sub(5), m),
    ] {
        let (lo, hi) = (lo.min(m), hi.min(m));
        let mut y = init.clone();
        unsafe { p.apply_range(rows, lo, hi, x.as_ptr(), k, y.as_mut_ptr(), m, true) };
        for r in 0..rows {
            for j in 0..m {
                let want = if (lo..hi).contains(&j) {
                    full[r * m + j]
                } else {
                    init[r * m + j]
                };
                assert!(
                    y[r * m + j] == want,
                    "{path:?} range {lo}..{hi} m={m}: y[{r},{j}]"
                );
            }
        }
    }
}

fn check_apply_t<F: T>(g: &mut Gen, path: Path, m: usize, k: usize, rows: usize, acc: bool) {
    let (w, w_rs, p) = packed::<F>(g, path, m, k);
    let (y_rs, z_rs) = (m + 1, k + 4);
    let y = g.vec::<F>(rows * y_rs);
    let mut z = g.vec::<F>(rows * z_rs);
    let before = z.clone();
    unsafe { p.apply_t(rows, y.as_ptr(), y_rs, z.as_mut_ptr(), z_rs, acc) };
    for r in 0..rows {
        for kk in 0..z_rs {
            let got = z[r * z_rs + kk];
            if kk >= k {
                assert_eq!(got, before[r * z_rs + kk], "apply_t wrote past k");
                continue;
            }
            let (mut want, mut scale) = if acc {
                (
                    before[r * z_rs + kk].f64(),
                    before[r * z_rs + kk].f64().abs(),
                )
            } else {
                (0.0, 0.0)
            };
            for j in 0..m {
                let t = w[j * w_rs + kk].f64() * y[r * y_rs + j].f64();
                want += t;
                scale += t.abs();
            }
            assert!(
                close(got, want, scale),
                "{path:?} apply_t m={m} k={k} rows={rows} acc={acc}: z[{r},{kk}] = {got:?}, want {want}"
            );
        }
    }
}

fn check_apply_t_split<F: T>(g: &mut Gen, path: Path, m: usize, k: usize, rows: usize) {
    let (_, _, p) = packed::<F>(g, path, m, k);
    let y = g.vec::<F>(rows * m);
    let mut whole = g.vec::<F>(rows * k);
    let mut split = whole.clone();
    let cut = k / 3;
    unsafe {
        p.apply_t(rows, y.as_ptr(), m, whole.as_mut_ptr(), k, true);
        p.apply_t_range(rows, cut, k, y.as_ptr(), m, split.as_mut_ptr(), k, true);
        p.apply_t_range(rows, 0, cut, y.as_ptr(), m, split.as_mut_ptr(), k, true);
    }
    assert!(
        whole == split,
        "{path:?} apply_t m={m} k={k}: split at {cut} differs"
    );
}

fn packed_all<F: T>() {
    let mut g = Gen(0x2545f4914f6cdd1d);
    for path in Path::available() {
        for &m in SIZES {
            for &k in SIZES {
                for &rows in &[1, 2, 3, 4, 5, 7, 9, 17] {
                    let acc = (m + k + rows) % 2 == 1;
                    check_apply::<F>(&mut g, path, m, k, rows, acc);
                    check_apply_t::<F>(&mut g, path, m, k, rows, !acc);
                }
            }
        }
        for &(m, k, rows) in &[(512, 128, 1), (64, 16, 33), (129, 33, 6), (17, 7, 3)] {
            check_apply_range::<F>(&mut g, path, m, k, rows);
            check_apply_t_split::<F>(&mut g, path, m, k, rows);
            check_apply::<F>(&mut g, path, m, k, rows, true);
            check_apply_t::<F>(&mut g, path, m, k, rows, false);
        }
    }
}

#[test]
fn packed_f32_matches_naive_product_on_every_path() {
    packed_all::<f32>();
}

#[test]
fn packed_f64_matches_naive_product_on_every_path() {
    packed_all::<f64>();
}

#[test]
fn packed_weights_can_be_shared_between_threads() {
    fn shared<X: Send + Sync>() {}
    shared::<Packed<f32>>();
    shared::<Packed<f64>>();
}

#[test]
fn packed_with_zero_sizes_is_harmless() {
    let w = [1.0f32; 4];
    for path in Path::available() {
        let p = unsafe { Packed::pack_with(path, 0, 4, w.as_ptr(), 4) };
        let mut z = [3.0f32; 4];
        unsafe { p.apply_t(1, [].as_ptr(), 0, z.as_mut_ptr(), 4, false) };
        assert_eq!(z, [0.0; 4], "an empty sum over m is zero");
        let p = unsafe { Packed::pack_with(path, 4, 0, w.as_ptr(), 0) };
        let mut y = [3.0f32; 4];
        unsafe { p.apply(1, [].as_ptr(), 0, y.as_mut_ptr(), 4, false) };
        assert_eq!(y, [0.0; 4]);
    }
}

#[test]
fn extern_wrappers_call_the_packed_kernels() {
    let mut g = Gen(7);
    let (m, k) = (37, 21);
    let w32 = g.vec::<f32>(m * k);
    let w64: Vec<f64> = w32.iter().map(|&v| v as f64).collect();
    let x32 = g.vec::<f32>(m.max(k));
    let x64: Vec<f64> = x32.iter().map(|&v| v as f64).collect();
    let p32 = unsafe { Packed::pack(m, k, w32.as_ptr(), k) };
    let p64 = unsafe { Packed::pack(m, k, w64.as_ptr(), k) };
    let (mut a, mut b) = (vec![0f32; m], vec![0f32; m]);
    unsafe {
        p32.apply(1, x32.as_ptr(), k, a.as_mut_ptr(), m, false);
        cellc_packed_apply_f32(&p32, 1, x32.as_ptr(), k, b.as_mut_ptr(), m, 0);
    }
    assert_eq!(a, b);
    let mut c = vec![1f32; m];
    unsafe { cellc_packed_apply_range_f32(&p32, 1, 0, m, x32.as_ptr(), k, c.as_mut_ptr(), m, 1) };
    assert!(c.iter().zip(&a).all(|(c, a)| *c == 1.0 + *a));
    let (mut a, mut b) = (vec![0f32; k], vec![0f32; k]);
    unsafe {
        p32.apply_t(1, x32.as_ptr(), m, a.as_mut_ptr(), k, false);
        cellc_packed_apply_t_f32(&p32, 1, x32.as_ptr(), m, b.as_mut_ptr(), k, 0);
    }
    assert_eq!(a, b);
    let (mut a, mut b) = (vec![0f64; m], vec![0f64; m]);
    unsafe {
        p64.apply(1, x64.as_ptr(), k, a.as_mut_ptr(), m, false);
        cellc_packed_apply_f64(&p64, 1, x64.as_ptr(), k, b.as_mut_ptr(), m, 0);
    }
    assert_eq!(a, b);
    let (mut a, mut b) = (vec![0f64; k], vec![0f64; k]);
    unsafe {
        p64.apply_t(1, x64.as_ptr(), m, a.as_mut_ptr(), k, false);
        cellc_packed_apply_t_f64(&p64, 1, x64.as_ptr(), m, b.as_mut_ptr(), k, 0);
    }
    assert_eq!(a, b);
}

#[test]
fn flush_denormals_flushes_inside_the_guard_only() {
    use std::hint::black_box;
    let tiny = black_box(1e-30f32);
    let product = || black_box(black_box(tiny) * black_box(1e-10f32));
    let denormal = black_box(1e-40f32);
    assert!(
        product() != 0.0 && product().is_subnormal(),
        "a denormal product before the guard"
    );
    {
        let _guard = FlushDenormals::new();
        assert_eq!(product(), 0.0, "FTZ: a denormal result becomes zero");
        assert_eq!(
            black_box(denormal) * black_box(1.0f32),
            0.0,
            "DAZ: a denormal input reads as zero"
        );
        {
            let _inner = FlushDenormals::new();
            assert_eq!(product(), 0.0);
        }
        assert_eq!(product(), 0.0, "an inner guard restores the outer state");
    }
    assert!(product().is_subnormal(), "denormals again after the guard");
}

#[test]
fn without_accumulate_the_output_is_never_read() {
    // Generated code passes fresh buffers: NaN there must not leak into the result.
    let mut g = Gen(11);
    for (m, n, k) in [(1, 33, 17), (3, 33, 17), (8, 64, 16), (40, 67, 33)] {
        let a = g.vec::<f32>(m * k);
        let b = g.vec::<f32>(k * n);
        for (b_rs, b_cs) in [(n, 1), (1, k)] {
            let mut c = vec![f32::NAN; m * n];
            unsafe {
                cellc_gemm_f32(
                    m,
                    n,
                    k,
                    a.as_ptr(),
                    k,
                    1,
                    b.as_ptr(),
                    b_rs,
                    b_cs,
                    c.as_mut_ptr(),
                    n,
                    1,
                    0,
                )
            };
            assert!(c.iter().all(|v| v.is_finite()), "gemm {m}×{n}×{k} read C");
        }
        for path in Path::available() {
            let p = unsafe { Packed::pack_with(path, n, k, b.as_ptr(), k) };
            let mut y = vec![f32::NAN; m * n];
            unsafe { p.apply(m, a.as_ptr(), k, y.as_mut_ptr(), n, false) };
            assert!(y.iter().all(|v| v.is_finite()), "{path:?} apply read Y");
            let mut z = vec![f32::NAN; m * k];
            unsafe { p.apply_t(m, y.as_ptr(), n, z.as_mut_ptr(), k, false) };
            assert!(z.iter().all(|v| v.is_finite()), "{path:?} apply_t read Z");
        }
    }
}
