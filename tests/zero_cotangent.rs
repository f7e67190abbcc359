//! Zero means zero: an output outside the loss (no cotangent, or an all-zero
//! one) adds nothing to the gradient, even where its value is infinite; and
//! `cellc run` / `cellc grad` name any array that holds NaN or Inf.

mod common;

use cellc::data::{ArrayData, read_npz, write_npz};
use cellc::pipeline::{differentiate_step, differentiate_step_for};
use cellc::runtime::backward::backward;
use cellc::runtime::kernel::KernelError;
use common::{assert_close, cellc, load, model_path, problem, scratch, stderr};
use ndarray::{ArrayD, IxDyn};
use std::path::Path;

/// `h` is well behaved; `y = exp(100000 · V·h)` overflows to inf in f32 and
/// f64 alike.
const BLOWUP: &str = "cell blowup(x: [X]) {
    state h: [H] = 0
    param W, V
    h_t = tanh(W · [h_{t-1}; x_t])
    y_t = exp(100000 ∘ (V · h_t))
    output h, y
}";

/// The same cell without `y`.
const PLAIN: &str = "cell blowup(x: [X]) {
    state h: [H] = 0
    param W
    h_t = tanh(W · [h_{t-1}; x_t])
    output h
}";

const T: usize = 6;
const B: usize = 2;
const X: usize = 3;
const H: usize = 4;
const Y: usize = 3;

fn det(shape: &[usize], seed: f64) -> ArrayD<f64> {
    let mut k = 0.0;
    ArrayD::from_shape_simple_fn(IxDyn(shape), || {
        k += 1.0;
        (seed * k).sin()
    })
}

fn npz(path: &Path, arrays: &[(&str, ArrayD<f64>)]) {
    let arrays: Vec<(String, ArrayData)> = arrays
        .iter()
        .map(|(n, a)| (n.to_string(), ArrayData::F64(a.clone())))
        .collect();
    write_npz(path, &arrays).unwrap();
}

fn f64s(a: &ArrayData) -> ArrayD<f64> {
    match a {
        ArrayData::F64(x) => x.clone(),
        ArrayData::F32(x) => x.mapv(|v| v as f64),
        _ => panic!("a float array"),
    }
}

/// Writes both cells, their parameters, an input and cotangent files for `h`
/// alone and for `h` with an all-zero `y`.
fn files(dir: &Path) {
    std::fs::write(dir.join("blowup.cell"), BLOWUP).unwrap();
    std::fs::write(dir.join("plain.cell"), PLAIN).unwrap();
    let w = det(&[H, H + X], 0.7);
    npz(
        &dir.join("p.npz"),
        &[("W", w.clone()), ("V", det(&[Y, H], 1.3))],
    );
    npz(&dir.join("plain.npz"), &[("W", w)]);
    npz(&dir.join("x.npz"), &[("x", det(&[T, B, X], 0.3))]);
    let dh = det(&[T, B, H], 2.1);
    npz(&dir.join("dh.npz"), &[("h", dh.clone())]);
    npz(
        &dir.join("dh_y0.npz"),
        &[("h", dh), ("y", ArrayD::zeros(IxDyn(&[T, B, Y])))],
    );
}

fn grad(dir: &Path, cell: &str, params: &str, cot: &str, dtype: &str, out: &str) -> String {
    let o = cellc(
        dir,
        &[
            "grad",
            cell,
            "--params",
            params,
            "--inputs",
            "x.npz",
            "--cotangent",
            cot,
            "--dtype",
            dtype,
            "-o",
            out,
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    stderr(&o)
}

#[test]
fn an_output_outside_the_loss_adds_nothing_even_where_it_is_infinite() {
    let dir = scratch("zero-cotangent");
    files(&dir.0);
    for dtype in ["f32", "f64"] {
        grad(
            &dir.0,
            "plain.cell",
            "plain.npz",
            "dh.npz",
            dtype,
            "want.npz",
        );
        let want = read_npz(&dir.0.join("want.npz")).unwrap();
        for cot in ["dh.npz", "dh_y0.npz"] {
            let err = grad(&dir.0, "blowup.cell", "p.npz", cot, dtype, "got.npz");
            // The infinite output is named; the gradients are all finite.
            assert!(
                err.contains("warning: output `y` holds"),
                "{dtype} {cot}: {err}"
            );
            assert!(!err.contains("warning: gradient"), "{dtype} {cot}: {err}");
            let got = read_npz(&dir.0.join("got.npz")).unwrap();
            for (name, w) in &want {
                let (_, g) = got.iter().find(|(n, _)| n == name).unwrap();
                // Exactly the gradient of the cell without `y`.
                assert_eq!(f64s(&g.data), f64s(&w.data), "{dtype} {cot}: {name}");
            }
            let (_, v) = got.iter().find(|(n, _)| n == "V").unwrap();
            assert!(f64s(&v.data).iter().all(|v| *v == 0.0), "{dtype} {cot}");
        }
    }
}

#[test]
fn a_nonzero_cotangent_at_an_infinite_output_is_named_in_the_gradients() {
    let dir = scratch("inf-cotangent");
    files(&dir.0);
    npz(
        &dir.0.join("dy.npz"),
        &[("y", ArrayD::from_elem(IxDyn(&[T, B, Y]), 1.0))],
    );
    let err = grad(&dir.0, "blowup.cell", "p.npz", "dy.npz", "f64", "g.npz");
    assert!(err.contains("warning: output `y` holds"), "{err}");
    assert!(err.contains("warning: gradient `W` holds"), "{err}");
    // One line per array, each naming it.
    assert!(
        err.lines()
            .filter(|l| l.starts_with("warning:"))
            .all(|l| l.contains(" holds ") && l.contains("(first at [")),
        "{err}"
    );
}

#[test]
fn run_names_an_infinite_output_and_a_nan_cotangent_is_named() {
    let dir = scratch("inf-run");
    files(&dir.0);
    let o = cellc(
        &dir.0,
        &[
            "run",
            "blowup.cell",
            "--params",
            "p.npz",
            "--inputs",
            "x.npz",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    let warnings: Vec<&str> = err.lines().filter(|l| l.starts_with("warning:")).collect();
    assert_eq!(warnings.len(), 1, "{err}");
    assert!(
        warnings[0].starts_with("warning: output `y` holds ")
            && warnings[0].contains(" Inf values (first at [0, "),
        "{err}"
    );
    let mut dh = det(&[T, B, H], 2.1);
    dh[[1, 0, 2]] = f64::NAN;
    npz(&dir.0.join("nan.npz"), &[("h", dh)]);
    let err = grad(&dir.0, "plain.cell", "plain.npz", "nan.npz", "f64", "g.npz");
    assert!(
        err.contains("warning: cotangent `h` holds 1 NaN value (first at [1, 0, 2])"),
        "{err}"
    );
}

#[test]
fn normal_runs_and_gradients_warn_about_nothing() {
    let dir = scratch("no-warning");
    for args in [
        vec!["run", "-D", "X=3", "-D", "H=4"],
        vec!["grad", "-D", "X=3", "-D", "H=4"],
    ] {
        for m in ["lstm", "torch_gru", "gru"] {
            let path = model_path(m);
            let mut args = args.clone();
            args.insert(1, &path);
            let o = cellc(&dir.0, &args);
            assert!(o.status.success(), "{m}: {}", stderr(&o));
            assert!(!stderr(&o).contains("warning"), "{m}: {}", stderr(&o));
        }
    }
}

#[test]
fn an_adjoint_without_an_output_equals_a_zero_cotangent_for_it_and_refuses_one() {
    // With finite values, leaving an output out of the loss is the same as a
    // zero cotangent for it.
    let step = load(&model_path("elman"));
    let mut p = problem(&step, 5, None, false, true, 7);
    let y = step.outputs.iter().position(|o| o.name == "y").unwrap();
    p.cot.outputs[y] = None;
    let full = backward(&step, &differentiate_step(&step).unwrap(), &p.seq, &p.cot).unwrap();
    let mut in_loss = vec![true; step.outputs.len()];
    in_loss[y] = false;
    let adj = differentiate_step_for(&step, &in_loss).unwrap();
    let part = backward(&step, &adj, &p.seq, &p.cot).unwrap();
    for (i, (a, b)) in part.params.iter().zip(&full.params).enumerate() {
        assert_close(&step.params[i].name, a, b, 1e-12);
    }
    for (a, b) in part.inputs.iter().zip(&full.inputs) {
        assert_close("x", &a.clone().into_dyn(), &b.clone().into_dyn(), 1e-12);
    }
    // A cotangent the adjoint would ignore is an error, not a silent loss.
    let q = problem(&step, 5, None, false, true, 7);
    assert_eq!(
        backward(&step, &adj, &q.seq, &q.cot).unwrap_err(),
        KernelError::IgnoredCotangent { output: "y".into() }
    );
}
