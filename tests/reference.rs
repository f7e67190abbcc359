//! The interpreter's time loop (`runtime::forward`) against computations that
//! share nothing with cellc's graphs.
//!
//! (a) The LSTM, GRU and Elman RNN of the seed notes (`models/lstm.cell`,
//!     `gru.cell`, `elman.cell`) and the PyTorch-layout `torch_lstm.cell` and
//!     `torch_gru.cell`, written out again here with ndarray dots from the
//!     models' formulas, driven by a loop written from the CLI contract's
//!     sequence semantics (lengths, reverse, supplied initial states). Random
//!     data, B = 3, T = 5; f64 within 1e-12 and f32 within 1e-5, relative to
//!     the largest magnitude of the reference array.
//! (b) Numbers NumPy computed in float64 (`tests/data/reference/*.npz`, made by
//!     `make_reference.py` there): PyTorch-layout LSTM and GRU, a tanh RNN from
//!     an initial state shared by the batch, with lengths and reverse; and the
//!     ONNX LSTM, GRU (linear_before_reset = 1, direction reverse) and RNN in
//!     ONNX layout, whose weights are permuted here into the models' names.

mod common;

use cellc::check::check_source;
use cellc::data::matching::prepare;
use cellc::data::{ArrayData, read_npz};
use cellc::graph::dim::Bindings;
use cellc::graph::op::Real;
use cellc::graph::step::StepGraph;
use cellc::rng::SplitMix64;
use cellc::runtime::forward::forward;
use common::{assert_close, random};
use ndarray::{Array1, Array2, Array3, ArrayD, ArrayView1, ArrayView2, Axis, Ix1, Ix2, IxDyn, s};
use std::collections::HashMap;
use std::path::Path;

// ---------------------------------------------------------------------------
// Helpers

fn load_model(file: &str) -> StepGraph {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("models")
        .join(file);
    let text = std::fs::read_to_string(&path).expect("a readable model");
    match check_source(&text) {
        Ok(c) => c.step,
        Err(f) => panic!("{file} does not check:\n{}", f.render(file)),
    }
}

fn to_f32(a: &ArrayD<f64>) -> ArrayD<f32> {
    a.mapv(|v| v as f32)
}

fn to_f64<F: Real>(a: &ArrayD<F>) -> ArrayD<f64> {
    a.mapv(|v| v.to_f64().expect("a float"))
}

/// The arrays of a run, by name, as the CLI would load them.
#[derive(Clone, Default)]
struct RunData {
    params: Vec<(String, ArrayD<f64>)>,
    inputs: Vec<(String, ArrayD<f64>)>,
    init: Vec<(String, ArrayD<f64>)>,
    lengths: Option<Vec<i64>>,
    reverse: bool,
}

/// What `forward` gives, in f64: outputs by output `[T, B, n]`, last states `[B, n]`.
struct Run {
    outputs: Vec<ArrayD<f64>>,
    last: Vec<ArrayD<f64>>,
}

/// Runs cellc's time loop in the float type `F`, binding dimensions from
/// `defines` and the arrays.
fn run_cellc<F: Real>(step: &StepGraph, data: &RunData, defines: &Bindings) -> Run {
    let conv = |named: &[(String, ArrayD<f64>)]| -> Vec<(String, ArrayD<F>)> {
        named
            .iter()
            .map(|(n, a)| (n.clone(), a.mapv(|v| F::from_f64(v).expect("a float"))))
            .collect()
    };
    let seq = prepare(
        step,
        conv(&data.params),
        conv(&data.inputs),
        conv(&data.init),
        data.lengths.clone(),
        defines,
        data.reverse,
    )
    .unwrap_or_else(|e| panic!("{}: prepare: {e}", step.name));
    let traj = forward(step, &seq).unwrap_or_else(|e| panic!("{}: forward: {e}", step.name));
    Run {
        outputs: traj.outputs.iter().map(to_f64).collect(),
        last: traj
            .last
            .iter()
            .map(|a| to_f64(&a.clone().into_dyn()))
            .collect(),
    }
}

// ---------------------------------------------------------------------------
// (a) The models' formulas, written out with ndarray

/// Parameters by name.
struct Params(HashMap<String, ArrayD<f64>>);

impl Params {
    fn m(&self, name: &str) -> ArrayView2<'_, f64> {
        self.0[name]
            .view()
            .into_dimensionality::<Ix2>()
            .expect("a matrix")
    }
    fn v(&self, name: &str) -> ArrayView1<'_, f64> {
        self.0[name]
            .view()
            .into_dimensionality::<Ix1>()
            .expect("a vector")
    }
}

type Vector = Array1<f64>;

fn sigmoid(v: &Vector) -> Vector {
    v.mapv(|a| 1.0 / (1.0 + (-a).exp()))
}

fn tanh(v: &Vector) -> Vector {
    v.mapv(f64::tanh)
}

/// `[a; b]`
fn cat(a: &Vector, b: &Vector) -> Vector {
    a.iter().chain(b.iter()).copied().collect()
}

/// Rows `k*h .. (k+1)*h` of a stacked vector.
fn block(v: &Vector, k: usize, h: usize) -> Vector {
    v.slice(s![k * h..(k + 1) * h]).to_owned()
}

/// One step for one sequence: inputs and states (in the cell's order) in,
/// new states and outputs (in the cell's order) out.
type StepFn = fn(&Params, &[Vector], &[Vector]) -> (Vec<Vector>, Vec<Vector>);

/// models/lstm.cell
fn lstm_step(p: &Params, x: &[Vector], s: &[Vector]) -> (Vec<Vector>, Vec<Vector>) {
    let (h, c) = (&s[0], &s[1]);
    let hx = cat(h, &x[0]);
    let f = sigmoid(&(p.m("W_f").dot(&hx) + p.v("b_f")));
    let i = sigmoid(&(p.m("W_i").dot(&hx) + p.v("b_i")));
    let c_tilde = tanh(&(p.m("W_C").dot(&hx) + p.v("b_C")));
    let c = &f * c + &i * &c_tilde;
    let o = sigmoid(&(p.m("W_o").dot(&hx) + p.v("b_o")));
    let h = &o * &tanh(&c);
    (vec![h.clone(), c], vec![h])
}

/// models/gru.cell (the seed's convention: z_t weighs the candidate).
fn gru_step(p: &Params, x: &[Vector], s: &[Vector]) -> (Vec<Vector>, Vec<Vector>) {
    let h = &s[0];
    let hx = cat(h, &x[0]);
    let z = sigmoid(&p.m("W_z").dot(&hx));
    let r = sigmoid(&p.m("W_r").dot(&hx));
    let h_tilde = tanh(&p.m("W_h").dot(&cat(&(&r * h), &x[0])));
    let h = (1.0 - &z) * h + &z * &h_tilde;
    (vec![h.clone()], vec![h])
}

/// models/elman.cell: outputs y (softmax read-out) and h.
fn elman_step(p: &Params, x: &[Vector], s: &[Vector]) -> (Vec<Vector>, Vec<Vector>) {
    let a = p.m("U").dot(&x[0]) + p.m("W").dot(&s[0]);
    let h = tanh(&a);
    let v = p.m("V").dot(&h);
    let e = v.mapv(f64::exp);
    let y = &e / e.sum();
    (vec![h.clone()], vec![y, h])
}

/// models/torch_lstm.cell: blocks i, f, g, o.
fn torch_lstm_step(p: &Params, x: &[Vector], s: &[Vector]) -> (Vec<Vector>, Vec<Vector>) {
    let (h, c) = (&s[0], &s[1]);
    let n = h.len();
    let z = p.m("weight_ih_l0").dot(&x[0])
        + p.v("bias_ih_l0")
        + p.m("weight_hh_l0").dot(h)
        + p.v("bias_hh_l0");
    let (i, f, g, o) = (
        block(&z, 0, n),
        block(&z, 1, n),
        block(&z, 2, n),
        block(&z, 3, n),
    );
    let c = sigmoid(&f) * c + sigmoid(&i) * tanh(&g);
    let h = sigmoid(&o) * tanh(&c);
    (vec![h.clone(), c], vec![h])
}

/// models/torch_gru.cell: blocks r, z, n, reset after the product.
fn torch_gru_step(p: &Params, x: &[Vector], s: &[Vector]) -> (Vec<Vector>, Vec<Vector>) {
    let h = &s[0];
    let n = h.len();
    let gi = p.m("weight_ih_l0").dot(&x[0]) + p.v("bias_ih_l0");
    let gh = p.m("weight_hh_l0").dot(h) + p.v("bias_hh_l0");
    let r = sigmoid(&(block(&gi, 0, n) + block(&gh, 0, n)));
    let z = sigmoid(&(block(&gi, 1, n) + block(&gh, 1, n)));
    let cand = tanh(&(block(&gi, 2, n) + &r * &block(&gh, 2, n)));
    let h = (1.0 - &z) * &cand + &z * h;
    (vec![h.clone()], vec![h])
}

/// The CLI contract's sequence semantics, one sequence at a time: sequence
/// `b` runs over time positions `0..L[b]` (backwards with `reverse`), each
/// step's outputs land at its own position, positions past `L[b]` stay zero,
/// and the last states are the states after the last valid step (the initial
/// ones when `L[b] = 0`).
fn reference_run(
    cell: StepFn,
    p: &Params,
    inputs: &[Array3<f64>],
    init: &[Array2<f64>],
    output_sizes: &[usize],
    lengths: &[usize],
    reverse: bool,
) -> Run {
    let (steps, batch, _) = inputs[0].dim();
    let mut outputs: Vec<Array3<f64>> = output_sizes
        .iter()
        .map(|&n| Array3::zeros((steps, batch, n)))
        .collect();
    let mut last: Vec<Array2<f64>> = init.to_vec();
    assert_eq!(lengths.len(), batch, "one length per sequence");
    for (b, &len) in lengths.iter().enumerate() {
        let mut states: Vec<Vector> = init.iter().map(|s| s.row(b).to_owned()).collect();
        let order: Vec<usize> = if reverse {
            (0..len).rev().collect()
        } else {
            (0..len).collect()
        };
        for t in order {
            let xs: Vec<Vector> = inputs
                .iter()
                .map(|x| x.slice(s![t, b, ..]).to_owned())
                .collect();
            let (new, outs) = cell(p, &xs, &states);
            for (o, v) in outs.iter().enumerate() {
                outputs[o].slice_mut(s![t, b, ..]).assign(v);
            }
            states = new;
        }
        for (s, v) in states.iter().enumerate() {
            last[s].row_mut(b).assign(v);
        }
    }
    Run {
        outputs: outputs.into_iter().map(|a| a.into_dyn()).collect(),
        last: last.into_iter().map(|a| a.into_dyn()).collect(),
    }
}

const T: usize = 5;
const B: usize = 3;

/// Every combination of lengths, direction and initial state, for one model,
/// in f64 and f32.
fn check_model_against_formulas(file: &str, cell: StepFn, seed: u64) {
    let step = load_model(file);
    let mut bindings = Bindings::new();
    for d in &step.dims {
        let v = match d.name.as_str() {
            "X" => 3,
            "H" => 5,
            _ => 7,
        };
        bindings.insert(d.name.clone(), v);
    }
    let size = |d: &cellc::graph::dim::Dim| random::size(d, &bindings);
    let mut rng = SplitMix64::from_state(seed);
    let params = random::params(&step, &bindings, &mut rng, 0.7);
    let inputs = random::inputs(&step, &bindings, &mut rng, T, B);
    let supplied = random::states(&step, &bindings, &mut rng, B, 0.9);
    let output_sizes: Vec<usize> = step
        .outputs
        .iter()
        .map(|o| {
            assert_eq!(o.ty.rank(), 1, "{file}: output {} is a vector", o.name);
            size(&o.ty.dims[0])
        })
        .collect();

    let length_cases: [Option<Vec<i64>>; 3] = [None, Some(vec![5, 2, 0]), Some(vec![3, 5, 1])];
    for lengths in &length_cases {
        for reverse in [false, true] {
            for with_init in [false, true] {
                let data = RunData {
                    params: params.clone(),
                    inputs: inputs.clone(),
                    init: if with_init {
                        supplied.clone()
                    } else {
                        Vec::new()
                    },
                    lengths: lengths.clone(),
                    reverse,
                };
                let case = format!(
                    "{file}, lengths {lengths:?}, reverse {reverse}, supplied init {with_init}"
                );
                check_case(&step, cell, &data, &bindings, &output_sizes, &case);
            }
        }
    }
}

/// One run in f64 and in f32 against the formulas. The f32 run is compared
/// with the formulas evaluated in f64 on the same f32-rounded data.
fn check_case(
    step: &StepGraph,
    cell: StepFn,
    data: &RunData,
    bindings: &Bindings,
    output_sizes: &[usize],
    case: &str,
) {
    let rounded = |named: &[(String, ArrayD<f64>)]| -> Vec<(String, ArrayD<f64>)> {
        named
            .iter()
            .map(|(n, a)| (n.clone(), to_f64(&to_f32(a))))
            .collect()
    };
    let data32 = RunData {
        params: rounded(&data.params),
        inputs: rounded(&data.inputs),
        init: rounded(&data.init),
        lengths: data.lengths.clone(),
        reverse: data.reverse,
    };
    for (data, rtol, float) in [(data, 1e-12, "f64"), (&data32, 1e-5, "f32")] {
        let want = formulas(step, cell, data, bindings, output_sizes);
        let got = if float == "f64" {
            run_cellc::<f64>(step, data, bindings)
        } else {
            run_cellc::<f32>(step, data, bindings)
        };
        for (o, sig) in step.outputs.iter().enumerate() {
            let what = format!("{case}, {float}: output {}", sig.name);
            assert_close(&what, &got.outputs[o], &want.outputs[o], rtol);
        }
        for (s, sig) in step.states.iter().enumerate() {
            let what = format!("{case}, {float}: {}.last", sig.name);
            assert_close(&what, &got.last[s], &want.last[s], rtol);
        }
        // The contract's edge cases hold exactly, not just within tolerance.
        let lengths: Vec<usize> = match &data.lengths {
            Some(l) => l.iter().map(|&v| v as usize).collect(),
            None => vec![T; B],
        };
        for (b, &len) in lengths.iter().enumerate() {
            for out in &got.outputs {
                for t in len..T {
                    let row = out.index_axis(Axis(0), t);
                    assert!(
                        row.index_axis(Axis(0), b).iter().all(|&v| v == 0.0),
                        "{case}, {float}: output of sequence {b} at {t} (past its length {len}) is not zero"
                    );
                }
            }
            if len == 0 {
                for (s, sig) in step.states.iter().enumerate() {
                    assert_eq!(
                        got.last[s].index_axis(Axis(0), b),
                        want.last[s].index_axis(Axis(0), b),
                        "{case}, {float}: {}.last of an empty sequence is not its initial state",
                        sig.name
                    );
                }
            }
        }
    }
}

/// The formulas on `data`, with the initial states the contract gives (the
/// supplied ones, else zero: these models have no learned initial state).
fn formulas(
    step: &StepGraph,
    cell: StepFn,
    data: &RunData,
    bindings: &Bindings,
    output_sizes: &[usize],
) -> Run {
    let p = Params(data.params.iter().cloned().collect());
    let inputs: Vec<Array3<f64>> = step
        .inputs
        .iter()
        .map(|sig| {
            let (_, a) = data
                .inputs
                .iter()
                .find(|(n, _)| *n == sig.name)
                .expect("given");
            a.clone().into_dimensionality().expect("[T, B, n]")
        })
        .collect();
    let init: Vec<Array2<f64>> = step
        .states
        .iter()
        .map(|sig| match data.init.iter().find(|(n, _)| *n == sig.name) {
            Some((_, a)) => a.clone().into_dimensionality().expect("[B, n]"),
            None => Array2::zeros((B, sig.size.eval(bindings).unwrap() as usize)),
        })
        .collect();
    let lengths: Vec<usize> = match &data.lengths {
        Some(l) => l.iter().map(|&v| v as usize).collect(),
        None => vec![T; B],
    };
    reference_run(
        cell,
        &p,
        &inputs,
        &init,
        output_sizes,
        &lengths,
        data.reverse,
    )
}

#[test]
fn lstm_matches_its_formulas() {
    check_model_against_formulas("lstm.cell", lstm_step, 11);
}

#[test]
fn gru_matches_its_formulas() {
    check_model_against_formulas("gru.cell", gru_step, 12);
}

#[test]
fn elman_matches_its_formulas() {
    check_model_against_formulas("elman.cell", elman_step, 13);
}

#[test]
fn torch_lstm_matches_its_formulas() {
    check_model_against_formulas("torch_lstm.cell", torch_lstm_step, 14);
}

#[test]
fn torch_gru_matches_its_formulas() {
    check_model_against_formulas("torch_gru.cell", torch_gru_step, 15);
}

/// Reverse on a full-length batch is the forward run on the time-reversed
/// input, with the outputs reversed back: checked on cellc alone, so that a
/// bug shared by the formulas' driver and the runtime would still show.
#[test]
fn reverse_is_forward_on_reversed_time() {
    let step = load_model("torch_gru.cell");
    let mut rng = SplitMix64::from_state(21);
    let (h, x) = (4, 3);
    let data = RunData {
        params: vec![
            ("weight_ih_l0".into(), rng.uniform(&[3 * h, x], 0.7)),
            ("weight_hh_l0".into(), rng.uniform(&[3 * h, h], 0.7)),
            ("bias_ih_l0".into(), rng.uniform(&[3 * h], 0.7)),
            ("bias_hh_l0".into(), rng.uniform(&[3 * h], 0.7)),
        ],
        inputs: vec![("x".into(), rng.uniform(&[T, B, x], 1.0))],
        init: vec![("h".into(), rng.uniform(&[B, h], 1.0))],
        lengths: None,
        reverse: true,
    };
    let reversed = run_cellc::<f64>(&step, &data, &Bindings::new());
    let mut flipped = data.clone();
    flipped.reverse = false;
    flipped.inputs[0].1.invert_axis(Axis(0));
    let mut forward = run_cellc::<f64>(&step, &flipped, &Bindings::new());
    forward.outputs[0].invert_axis(Axis(0));
    assert_eq!(reversed.outputs[0], forward.outputs[0]);
    assert_eq!(reversed.last[0], forward.last[0]);
}

// ---------------------------------------------------------------------------
// (b) Reference numbers from NumPy

/// The float arrays and the integer arrays of one reference file.
struct Reference {
    floats: HashMap<String, ArrayD<f64>>,
    ints: HashMap<String, Vec<i64>>,
}

impl Reference {
    fn read(name: &str) -> Reference {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/reference")
            .join(name);
        let mut floats = HashMap::new();
        let mut ints = HashMap::new();
        for (n, a) in read_npz(&path).unwrap_or_else(|e| panic!("{name}: {e}")) {
            match a.data {
                ArrayData::F64(v) => {
                    floats.insert(n, v);
                }
                ArrayData::Int(v) => {
                    ints.insert(n, v.iter().copied().collect());
                }
                other => panic!("{name}: `{n}` is {}", other.dtype_name()),
            }
        }
        Reference { floats, ints }
    }
    fn f(&self, name: &str) -> ArrayD<f64> {
        self.floats
            .get(name)
            .unwrap_or_else(|| panic!("the reference has no `{name}`"))
            .clone()
    }
    fn named(&self, names: &[&str]) -> Vec<(String, ArrayD<f64>)> {
        names.iter().map(|n| (n.to_string(), self.f(n))).collect()
    }
}

const TORCH_PARAMS: [&str; 4] = ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"];

/// Runs `data` in f64 (1e-12) and f32 (1e-5) and compares the output `h`
/// (`[T, B, H]`) and the last states with the expected arrays. Every size is
/// bound from the arrays.
fn check_against_numpy(
    file: &str,
    step: &StepGraph,
    data: &RunData,
    h: &ArrayD<f64>,
    last: &[ArrayD<f64>],
) {
    let out = step
        .outputs
        .iter()
        .position(|o| o.name == "h")
        .expect("an output h");
    let data32 = RunData {
        params: data
            .params
            .iter()
            .map(|(n, a)| (n.clone(), to_f64(&to_f32(a))))
            .collect(),
        inputs: data
            .inputs
            .iter()
            .map(|(n, a)| (n.clone(), to_f64(&to_f32(a))))
            .collect(),
        init: data
            .init
            .iter()
            .map(|(n, a)| (n.clone(), to_f64(&to_f32(a))))
            .collect(),
        ..data.clone()
    };
    let runs = [
        (run_cellc::<f64>(step, data, &Bindings::new()), 1e-12, "f64"),
        (
            run_cellc::<f32>(step, &data32, &Bindings::new()),
            1e-5,
            "f32",
        ),
    ];
    for (got, rtol, float) in runs {
        assert_close(&format!("{file} ({float}): h"), &got.outputs[out], h, rtol);
        for (s, want) in last.iter().enumerate() {
            let what = format!("{file} ({float}): {}.last", step.states[s].name);
            assert_close(&what, &got.last[s], want, rtol);
        }
    }
}

#[test]
fn torch_lstm_matches_numpy() {
    let r = Reference::read("torch_lstm.npz");
    let data = RunData {
        params: r.named(&TORCH_PARAMS),
        inputs: r.named(&["x"]),
        ..Default::default()
    };
    let step = load_model("torch_lstm.cell");
    check_against_numpy(
        "torch_lstm.npz",
        &step,
        &data,
        &r.f("h"),
        &[r.f("h_last"), r.f("c_last")],
    );
}

#[test]
fn torch_lstm_with_lengths_and_initial_state_matches_numpy() {
    let r = Reference::read("torch_lstm_lengths.npz");
    let data = RunData {
        params: r.named(&TORCH_PARAMS),
        inputs: r.named(&["x"]),
        init: vec![("h".into(), r.f("h_init")), ("c".into(), r.f("c_init"))],
        lengths: Some(r.ints["lengths"].clone()),
        reverse: false,
    };
    let step = load_model("torch_lstm.cell");
    check_against_numpy(
        "torch_lstm_lengths.npz",
        &step,
        &data,
        &r.f("h"),
        &[r.f("h_last"), r.f("c_last")],
    );
}

#[test]
fn torch_gru_matches_numpy() {
    let r = Reference::read("torch_gru.npz");
    let data = RunData {
        params: r.named(&TORCH_PARAMS),
        inputs: r.named(&["x"]),
        ..Default::default()
    };
    let step = load_model("torch_gru.cell");
    check_against_numpy("torch_gru.npz", &step, &data, &r.f("h"), &[r.f("h_last")]);
}

#[test]
fn torch_gru_reverse_matches_numpy() {
    let r = Reference::read("torch_gru_reverse.npz");
    let data = RunData {
        params: r.named(&TORCH_PARAMS),
        inputs: r.named(&["x"]),
        reverse: true,
        ..Default::default()
    };
    let step = load_model("torch_gru.cell");
    check_against_numpy(
        "torch_gru_reverse.npz",
        &step,
        &data,
        &r.f("h"),
        &[r.f("h_last")],
    );
}

/// The tanh RNN with PyTorch's two biases, as `learned_init_rnn.cell`: its
/// learned `h_0` is NumPy's initial state (no state is supplied at run time).
#[test]
fn tanh_rnn_from_learned_initial_state_matches_numpy() {
    let r = Reference::read("rnn.npz");
    let data = RunData {
        params: vec![
            ("h_0".into(), r.f("h0")),
            ("U".into(), r.f("weight_ih_l0")),
            ("W".into(), r.f("weight_hh_l0")),
            ("b".into(), r.f("bias_ih_l0") + r.f("bias_hh_l0")),
        ],
        inputs: r.named(&["x"]),
        ..Default::default()
    };
    let step = load_model("learned_init_rnn.cell");
    check_against_numpy("rnn.npz", &step, &data, &r.f("h"), &[r.f("h_last")]);
}

/// The same data with lengths [0, 5, 3]: the expected values follow from the
/// full-length NumPy run (a sequence's first L steps do not depend on the
/// rest); the empty sequence's last state is the learned `h_0`.
#[test]
fn tanh_rnn_with_lengths_from_learned_initial_state_matches_numpy() {
    let r = Reference::read("rnn.npz");
    let lengths = [0usize, 5, 3];
    let data = RunData {
        params: vec![
            ("h_0".into(), r.f("h0")),
            ("U".into(), r.f("weight_ih_l0")),
            ("W".into(), r.f("weight_hh_l0")),
            ("b".into(), r.f("bias_ih_l0") + r.f("bias_hh_l0")),
        ],
        inputs: r.named(&["x"]),
        lengths: Some(lengths.iter().map(|&l| l as i64).collect()),
        ..Default::default()
    };
    let full = r.f("h");
    let mut h = ArrayD::zeros(full.raw_dim());
    let mut last = ArrayD::zeros(IxDyn(&[lengths.len(), full.shape()[2]]));
    for (b, &len) in lengths.iter().enumerate() {
        for t in 0..len {
            h.slice_mut(s![t, b, ..]).assign(&full.slice(s![t, b, ..]));
        }
        let row = if len == 0 {
            r.f("h0")
        } else {
            full.slice(s![len - 1, b, ..]).to_owned().into_dyn()
        };
        last.slice_mut(s![b, ..]).assign(&row);
    }
    let step = load_model("learned_init_rnn.cell");
    check_against_numpy("rnn.npz with lengths", &step, &data, &h, &[last]);
}

/// Rows of `a` (axis 0 after dropping ONNX's leading direction axis, if
/// `a` has one) in blocks of `h`, taken in `order`.
fn reorder_blocks(a: &ArrayD<f64>, h: usize, order: &[usize]) -> ArrayD<f64> {
    let views: Vec<_> = order
        .iter()
        .map(|&k| a.slice_axis(Axis(0), (k * h..(k + 1) * h).into()))
        .collect();
    ndarray::concatenate(Axis(0), &views).expect("blocks line up")
}

/// ONNX's W [1, G*H, I], R [1, G*H, H], B [1, 2*G*H] as PyTorch's four arrays,
/// with PyTorch's block `k` taken from ONNX's block `order[k]`.
fn onnx_to_torch(r: &Reference, gates: usize, order: &[usize]) -> Vec<(String, ArrayD<f64>)> {
    let w = r.f("W").index_axis_move(Axis(0), 0);
    let u = r.f("R").index_axis_move(Axis(0), 0);
    let bias = r.f("B").index_axis_move(Axis(0), 0);
    let h = u.shape()[1];
    let wb = bias.slice_axis(Axis(0), (0..gates * h).into()).to_owned();
    let rb = bias
        .slice_axis(Axis(0), (gates * h..2 * gates * h).into())
        .to_owned();
    vec![
        ("weight_ih_l0".into(), reorder_blocks(&w, h, order)),
        ("weight_hh_l0".into(), reorder_blocks(&u, h, order)),
        ("bias_ih_l0".into(), reorder_blocks(&wb, h, order)),
        ("bias_hh_l0".into(), reorder_blocks(&rb, h, order)),
    ]
}

/// ONNX's `[1, B, H]` initial and final states and `[T, 1, B, H]` output,
/// without the direction axis.
fn drop_direction(a: ArrayD<f64>, axis: usize) -> ArrayD<f64> {
    assert_eq!(a.shape()[axis], 1, "one direction");
    a.index_axis_move(Axis(axis), 0)
}

/// ONNX LSTM gates are i, o, f, c; PyTorch's i, f, g, o. So PyTorch's blocks
/// are ONNX's 0 (i), 2 (f), 3 (c = g), 1 (o).
#[test]
fn onnx_lstm_in_torch_layout_matches_numpy() {
    let r = Reference::read("onnx_lstm.npz");
    let data = RunData {
        params: onnx_to_torch(&r, 4, &[0, 2, 3, 1]),
        inputs: vec![("x".into(), r.f("X"))],
        init: vec![
            ("h".into(), drop_direction(r.f("initial_h"), 0)),
            ("c".into(), drop_direction(r.f("initial_c"), 0)),
        ],
        lengths: Some(r.ints["sequence_lens"].clone()),
        reverse: false,
    };
    let step = load_model("torch_lstm.cell");
    check_against_numpy(
        "onnx_lstm.npz",
        &step,
        &data,
        &drop_direction(r.f("Y"), 1),
        &[drop_direction(r.f("Y_h"), 0), drop_direction(r.f("Y_c"), 0)],
    );
}

/// ONNX GRU gates are z, r, h; PyTorch's r, z, n. So PyTorch's blocks are
/// ONNX's 1 (r), 0 (z), 2 (h = n). With linear_before_reset = 1 the two are
/// the same cell; direction "reverse" is `--reverse`.
#[test]
fn onnx_gru_reverse_in_torch_layout_matches_numpy() {
    let r = Reference::read("onnx_gru.npz");
    let data = RunData {
        params: onnx_to_torch(&r, 3, &[1, 0, 2]),
        inputs: vec![("x".into(), r.f("X"))],
        init: vec![("h".into(), drop_direction(r.f("initial_h"), 0))],
        lengths: Some(r.ints["sequence_lens"].clone()),
        reverse: true,
    };
    let step = load_model("torch_gru.cell");
    check_against_numpy(
        "onnx_gru.npz",
        &step,
        &data,
        &drop_direction(r.f("Y"), 1),
        &[drop_direction(r.f("Y_h"), 0)],
    );
}

/// ONNX RNN as `learned_init_rnn.cell` with its two biases summed; the
/// supplied initial state overrides the learned `h_0` (set to something else).
#[test]
fn onnx_rnn_with_supplied_initial_state_matches_numpy() {
    let r = Reference::read("onnx_rnn.npz");
    let torch = onnx_to_torch(&r, 1, &[0]);
    let h = torch[1].1.shape()[0];
    let data = RunData {
        params: vec![
            ("h_0".into(), ArrayD::from_elem(IxDyn(&[h]), 0.5)),
            ("U".into(), torch[0].1.clone()),
            ("W".into(), torch[1].1.clone()),
            ("b".into(), &torch[2].1 + &torch[3].1),
        ],
        inputs: vec![("x".into(), r.f("X"))],
        init: vec![("h".into(), drop_direction(r.f("initial_h"), 0))],
        ..Default::default()
    };
    let step = load_model("learned_init_rnn.cell");
    check_against_numpy(
        "onnx_rnn.npz",
        &step,
        &data,
        &drop_direction(r.f("Y"), 1),
        &[drop_direction(r.f("Y_h"), 0)],
    );
}

/// The reference files stay small and hold what the tests expect.
#[test]
fn reference_files_are_small() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/reference");
    let mut count = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "npz") {
            let len = std::fs::metadata(&p).unwrap().len();
            assert!(len < 8192, "{} is {len} bytes", p.display());
            count += 1;
        }
    }
    assert_eq!(count, 9, "reference files in {}", dir.display());
}
