//! Ad-hoc timings of the kernels on the products of an LSTM step:
//! `cargo run --release -p cellc-rt --example kernels_bench`. Prints, per shape and rows,
//! µs per product, GFLOP/s, and GB/s of weights streamed (4H×H weights once
//! per product, as a GEMV on weights in L2 reads them).

use cellc_rt::kernels::{Float, Packed, Path, cellc_gemm_f32, cellc_gemm_f64};
use std::hint::black_box;
use std::time::Instant;

/// Seconds per call of `f`, the best of five timed batches (the machine is shared).
fn time(mut f: impl FnMut(), flops: f64) -> f64 {
    for _ in 0..20 {
        f();
    }
    let reps = ((2e8 / flops) as usize).clamp(10, 200_000);
    let mut best = f64::INFINITY;
    for _ in 0..5 {
        let t = Instant::now();
        for _ in 0..reps {
            f();
        }
        best = best.min(t.elapsed().as_secs_f64() / reps as f64);
    }
    best
}

trait Bench: Float {
    const NAME: &'static str;
    fn of(x: f64) -> Self;
    /// `Y[rows×m] = X[rows×k] · Wᵀ` with the gemm entry point.
    unsafe fn gemm_xwt(
        rows: usize,
        m: usize,
        k: usize,
        x: *const Self,
        w: *const Self,
        y: *mut Self,
    );
    /// `Y[rows×m] = X[rows×k] · B` with `B [k×m]` row-major, with the gemm entry point.
    unsafe fn gemm_xb(
        rows: usize,
        m: usize,
        k: usize,
        x: *const Self,
        b: *const Self,
        y: *mut Self,
    );
    /// `Y = X · Wᵀ` with the `gemm` crate directly (no small-row kernels).
    unsafe fn crate_xwt(
        rows: usize,
        m: usize,
        k: usize,
        x: *const Self,
        w: *const Self,
        y: *mut Self,
    ) {
        unsafe {
            gemm::gemm(
                rows,
                m,
                k,
                y,
                1,
                m as isize,
                false,
                x,
                1,
                k as isize,
                w,
                k as isize,
                1,
                Self::ZERO,
                Self::of(1.0),
                false,
                false,
                false,
                gemm::Parallelism::None,
            )
        }
    }
}

impl Bench for f32 {
    const NAME: &'static str = "f32";
    fn of(x: f64) -> Self {
        x as f32
    }
    unsafe fn gemm_xwt(rows: usize, m: usize, k: usize, x: *const f32, w: *const f32, y: *mut f32) {
        unsafe { cellc_gemm_f32(rows, m, k, x, k, 1, w, 1, k, y, m, 1, 0) }
    }
    unsafe fn gemm_xb(rows: usize, m: usize, k: usize, x: *const f32, b: *const f32, y: *mut f32) {
        unsafe { cellc_gemm_f32(rows, m, k, x, k, 1, b, m, 1, y, m, 1, 0) }
    }
}

impl Bench for f64 {
    const NAME: &'static str = "f64";
    fn of(x: f64) -> Self {
        x
    }
    unsafe fn gemm_xwt(rows: usize, m: usize, k: usize, x: *const f64, w: *const f64, y: *mut f64) {
        unsafe { cellc_gemm_f64(rows, m, k, x, k, 1, w, 1, k, y, m, 1, 0) }
    }
    unsafe fn gemm_xb(rows: usize, m: usize, k: usize, x: *const f64, b: *const f64, y: *mut f64) {
        unsafe { cellc_gemm_f64(rows, m, k, x, k, 1, b, m, 1, y, m, 1, 0) }
    }
}

fn report(what: &str, f: &str, h: usize, rows: usize, bytes: f64, flops: f64, t: f64) {
    println!(
        "{what:<16} {f}  H={h:<4} rows={rows:<3} {:>9.2} µs {:>7.1} GFLOP/s {:>7.1} GB/s",
        t * 1e6,
        flops / t / 1e9,
        bytes / t / 1e9
    );
}

fn bench<F: Bench>(h: usize, rows_list: &[usize]) {
    let (m, k) = (4 * h, h);
    let w: Vec<F> = (0..m * k)
        .map(|i| F::of(((i * 7919) % 1000) as f64 / 1000.0 - 0.5))
        .collect();
    let x: Vec<F> = (0..64 * m)
        .map(|i| F::of(((i * 104729) % 1000) as f64 / 1000.0 - 0.5))
        .collect();
    let mut y = vec![F::ZERO; 64 * m];
    let bytes = (m * k * std::mem::size_of::<F>()) as f64;
    for &rows in rows_list {
        let flops = 2.0 * (m * k * rows) as f64;
        for path in Path::available() {
            let p = unsafe { Packed::pack_with(path, m, k, w.as_ptr(), k) };
            let t = time(
                || unsafe { p.apply(rows, black_box(x.as_ptr()), k, y.as_mut_ptr(), m, false) },
                flops,
            );
            report(
                &format!("apply {path:?}"),
                F::NAME,
                h,
                rows,
                bytes,
                flops,
                t,
            );
            let t = time(
                || unsafe { p.apply_t(rows, black_box(x.as_ptr()), m, y.as_mut_ptr(), k, false) },
                flops,
            );
            report(
                &format!("apply_t {path:?}"),
                F::NAME,
                h,
                rows,
                bytes,
                flops,
                t,
            );
        }
        let t = time(
            || unsafe {
                F::gemm_xwt(
                    rows,
                    m,
                    k,
                    black_box(x.as_ptr()),
                    w.as_ptr(),
                    y.as_mut_ptr(),
                )
            },
            flops,
        );
        report("cellc_gemm X·Wᵀ", F::NAME, h, rows, bytes, flops, t);
        let t = time(
            || unsafe {
                F::gemm_xb(
                    rows,
                    m,
                    k,
                    black_box(x.as_ptr()),
                    w.as_ptr(),
                    y.as_mut_ptr(),
                )
            },
            flops,
        );
        report("cellc_gemm X·B", F::NAME, h, rows, bytes, flops, t);
        let t = time(
            || unsafe {
                F::crate_xwt(
                    rows,
                    m,
                    k,
                    black_box(x.as_ptr()),
                    w.as_ptr(),
                    y.as_mut_ptr(),
                )
            },
            flops,
        );
        report("gemm crate X·Wᵀ", F::NAME, h, rows, bytes, flops, t);
    }
}

fn main() {
    let rows: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let rows = if rows.is_empty() {
        vec![1, 2, 4, 8, 16, 32, 64]
    } else {
        rows
    };
    for h in [64, 128, 256] {
        bench::<f32>(h, &rows);
    }
    for h in [128, 256] {
        bench::<f64>(h, &rows);
    }
}
