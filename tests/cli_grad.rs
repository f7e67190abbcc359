//! `cellc grad`, `cellc graph --grad` and `cellc bptt` as the command-line
//! contract describes them: the arrays `G.npz` holds, their agreement with the
//! library's BPTT, the cotangent file's rules, and its errors.

mod common;

use cellc::check::check_source;
use cellc::data::matching::prepare;
use cellc::data::{ArrayData, read_npz, write_npy, write_npz};
use cellc::pipeline::differentiate_step;
use cellc::runtime::backward::{Cotangents, backward};
use common::errors::{assert_error_cases, fails};
use common::{cellc, scratch};
use ndarray::{ArrayD, Dimension, IxDyn};
use std::path::Path;
use std::process::Output;

/// `cellc grad CELL --params p.npz --input x.npy --cotangent COT REST...` in `dir`.
fn grad(dir: &Path, cell: &str, cotangent: &str, rest: &[&str]) -> Output {
    let mut args = vec![
        "grad",
        cell,
        "--params",
        "p.npz",
        "--input",
        "x.npy",
        "--cotangent",
        cotangent,
    ];
    args.extend_from_slice(rest);
    cellc(dir, &args)
}

fn model(name: &str) -> String {
    common::model_path(name)
}

fn det(shape: &[usize], seed: usize) -> ArrayD<f64> {
    ArrayD::from_shape_fn(IxDyn(shape), |i| {
        let k = i.as_array_view().iter().fold(seed, |a, &x| a * 31 + x + 7);
        ((k * 2654435761) % 1000) as f64 / 1000.0 - 0.5
    })
}

fn f64s(a: &ArrayData) -> ArrayD<f64> {
    match a {
        ArrayData::F64(x) => x.clone(),
        ArrayData::F32(x) => x.mapv(|v| v as f64),
        _ => panic!("a float array"),
    }
}

/// Writes params, input and cotangents for `name` with T=4, B=3 (X=3, H=4),
/// returns the arrays as the library sees them.
struct Files {
    params: Vec<(String, ArrayD<f64>)>,
    x: ArrayD<f64>,
    dy: Vec<(String, ArrayD<f64>)>,
}

fn write_files(dir: &Path, name: &str, with_last: bool) -> Files {
    let step = check_source(&std::fs::read_to_string(model(name)).unwrap())
        .unwrap()
        .step;
    let b: cellc::graph::dim::Bindings = [("X".to_string(), 3), ("H".to_string(), 4)].into();
    let params: Vec<(String, ArrayD<f64>)> = step
        .params
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let shape: Vec<usize> = p
                .dims
                .iter()
                .map(|d| d.eval(&b).unwrap() as usize)
                .collect();
            (p.name.clone(), det(&shape, i + 1))
        })
        .collect();
    let x = det(&[4, 3, 3], 99);
    let mut dy: Vec<(String, ArrayD<f64>)> = step
        .outputs
        .iter()
        .map(|o| (o.name.clone(), det(&[4, 3, 4], 50)))
        .collect();
    if with_last {
        for s in &step.states {
            dy.push((format!("{}.last", s.name), det(&[3, 4], 60)));
        }
    }
    let to_data = |v: &[(String, ArrayD<f64>)]| -> Vec<(String, ArrayData)> {
        v.iter()
            .map(|(n, a)| (n.clone(), ArrayData::F64(a.clone())))
            .collect()
    };
    write_npz(&dir.join("p.npz"), &to_data(&params)).unwrap();
    write_npy(&dir.join("x.npy"), &ArrayData::F64(x.clone())).unwrap();
    write_npz(&dir.join("dy.npz"), &to_data(&dy)).unwrap();
    Files { params, x, dy }
}

fn library_grads(
    name: &str,
    f: &Files,
    lengths: Option<Vec<i64>>,
    reverse: bool,
) -> cellc::runtime::backward::Gradients<f64> {
    let step = check_source(&std::fs::read_to_string(model(name)).unwrap())
        .unwrap()
        .step;
    let adj = differentiate_step(&step).unwrap();
    let seq = prepare(
        &step,
        f.params.clone(),
        vec![("x".into(), f.x.clone())],
        vec![],
        lengths,
        &Default::default(),
        reverse,
    )
    .unwrap();
    let cot = cellc::data::matching::cotangents(&step, &seq, f.dy.clone()).unwrap();
    let _: &Cotangents<f64> = &cot;
    backward(&step, &adj, &seq, &cot).unwrap()
}

#[test]
fn grad_writes_every_parameter_input_and_initial_state_gradient() {
    let dir = scratch("lstm");
    let f = write_files(&dir.0, "lstm", true);
    let out = grad(
        &dir.0,
        &model("lstm"),
        "dy.npz",
        &["--dtype", "f64", "-o", "g.npz"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let g = read_npz(&dir.0.join("g.npz")).unwrap();
    let names: Vec<&str> = g.iter().map(|(n, _)| n.as_str()).collect();
    for want in [
        "W_f", "W_i", "W_C", "W_o", "b_f", "b_i", "b_C", "b_o", "x", "h.init", "C.init",
    ] {
        assert!(names.contains(&want), "G.npz lacks {want}: {names:?}");
    }
    let lib = library_grads("lstm", &f, None, false);
    for (i, (name, _)) in f.params.iter().enumerate() {
        let got = f64s(&g.iter().find(|(n, _)| n == name).unwrap().1.data);
        assert_eq!(got.shape(), lib.params[i].shape());
        for (a, b) in got.iter().zip(lib.params[i].iter()) {
            assert!(
                (a - b).abs() <= 1e-12 * (1.0 + b.abs()),
                "{name}: {a} vs {b}"
            );
        }
    }
    let gx = f64s(&g.iter().find(|(n, _)| n == "x").unwrap().1.data);
    assert_eq!(gx.shape(), &[4, 3, 3]);
    let gh = f64s(&g.iter().find(|(n, _)| n == "h.init").unwrap().1.data);
    assert_eq!(gh.shape(), &[3, 4]);
    // float32 by default.
    let out = grad(&dir.0, &model("lstm"), "dy.npz", &["-o", "g32.npz"]);
    assert!(out.status.success());
    let g32 = read_npz(&dir.0.join("g32.npz")).unwrap();
    assert!(matches!(g32[0].1.data, ArrayData::F32(_)));
}

#[test]
fn grad_with_lengths_and_reverse_matches_the_library() {
    let dir = scratch("hornn");
    let f = write_files(&dir.0, "higher_order_rnn", false);
    write_npy(
        &dir.0.join("l.npy"),
        &ArrayData::Int(ndarray::arr1(&[4i64, 2, 0]).into_dyn()),
    )
    .unwrap();
    let out = grad(
        &dir.0,
        &model("higher_order_rnn"),
        "dy.npz",
        &[
            "--lengths",
            "l.npy",
            "--reverse",
            "--dtype",
            "f64",
            "-o",
            "g.npz",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let g = read_npz(&dir.0.join("g.npz")).unwrap();
    let lib = library_grads("higher_order_rnn", &f, Some(vec![4, 2, 0]), true);
    let gx = f64s(&g.iter().find(|(n, _)| n == "x").unwrap().1.data);
    for (a, b) in gx.iter().zip(lib.inputs[0].iter()) {
        assert!((a - b).abs() <= 1e-12 * (1.0 + b.abs()));
    }
    // A length-0 sequence contributes nothing to the input gradient.
    assert!(gx.slice(ndarray::s![.., 2, ..]).iter().all(|v| *v == 0.0));
}

#[test]
fn learned_initial_state_gradient_is_the_batch_sum_unless_supplied() {
    let dir = scratch("learned");
    write_files(&dir.0, "learned_init_rnn", false);
    let cell = model("learned_init_rnn");
    let run = |extra: &[&str], out: &str| {
        let mut rest = vec!["--dtype", "f64", "-o", out];
        rest.extend_from_slice(extra);
        let o = grad(&dir.0, &cell, "dy.npz", &rest);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        read_npz(&dir.0.join(out)).unwrap()
    };
    let g = run(&[], "g.npz");
    let h0 = f64s(&g.iter().find(|(n, _)| n == "h_0").unwrap().1.data);
    let init = f64s(&g.iter().find(|(n, _)| n == "h.init").unwrap().1.data);
    let sum = init.sum_axis(ndarray::Axis(0));
    for (a, b) in h0.iter().zip(sum.iter()) {
        assert!((a - b).abs() < 1e-12);
    }
    write_npz(
        &dir.0.join("s.npz"),
        &[("h".into(), ArrayData::F64(det(&[3, 4], 5)))],
    )
    .unwrap();
    let g = run(&["--init", "s.npz"], "g2.npz");
    let h0 = f64s(&g.iter().find(|(n, _)| n == "h_0").unwrap().1.data);
    assert!(h0.iter().all(|v| *v == 0.0));
}

#[test]
fn cotangent_errors_name_the_array_and_leave_no_file() {
    let lstm = model("lstm");
    let args = [
        "grad",
        lstm.as_str(),
        "--params",
        "p.npz",
        "--input",
        "x.npy",
        "--cotangent",
        "bad.npz",
        "-o",
        "g.npz",
    ];
    // The cotangent file holds one array, `name` of `shape`.
    let cotangent = |what: &str, needle: &str, name: &'static str, shape: &'static [usize]| {
        fails(what, &args, &[needle]).with(move |dir| {
            write_npz(
                &dir.join("bad.npz"),
                &[(name.into(), ArrayData::F64(det(shape, 1)))],
            )
            .unwrap()
        })
    };
    assert_error_cases(
        |dir| {
            write_files(dir, "lstm", false);
        },
        vec![
            cotangent("an array of no output's name", "`y`", "y", &[4, 3, 4]),
            cotangent("a state's name, which is no output", "`C`", "C", &[4, 3, 4]),
            cotangent(
                "an output's cotangent of the wrong shape",
                "`h`",
                "h",
                &[4, 3, 5],
            ),
            cotangent(
                "a final state's cotangent of the wrong shape",
                "`h.last`",
                "h.last",
                &[3, 5],
            ),
        ],
    );
}

#[test]
fn an_output_left_out_of_the_cotangent_file_has_a_zero_cotangent() {
    let dir = scratch("zero-cotangent");
    write_files(&dir.0, "lstm", false);
    // A file with only `C.last` is fine.
    write_npz(
        &dir.0.join("c.npz"),
        &[("C.last".into(), ArrayData::F64(det(&[3, 4], 2)))],
    )
    .unwrap();
    let out = grad(&dir.0, &model("lstm"), "c.npz", &["-o", "g.npz"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn gradient_graph_and_derivation_print() {
    let dir = scratch("print");
    let out = cellc(&dir.0, &["graph", "--grad", &model("gru")]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(text.contains("forward step gru") && text.contains("adjoint step gru"));
    assert!(text.contains("result dW_z"));
    let out = cellc(
        &dir.0,
        &["graph", "--grad", "--format", "dot", &model("gru")],
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("digraph"));
    let out = cellc(
        &dir.0,
        &["graph", "--grad", "--unroll", "2", &model("irnn")],
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("result dh[-1]"));
    let out = cellc(&dir.0, &["bptt", &model("elman")]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("δh_{t-1} += Wᵀ ·"), "{text}");
    let out = cellc(&dir.0, &["bptt", "--format", "latex", &model("lstm")]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("\\begin{aligned}") && text.contains("\\delta C_{t-1}"),
        "{text}"
    );
}
