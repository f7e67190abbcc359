//! Cells in ONNX's layout against reference outputs of ONNX's LSTM, GRU and RNN
//! operators (computed with NumPy from the operator definitions by
//! `tests/data/reference/make_reference.py`; cross-checked once against
//! onnxruntime). The operator's W, R and B load by name, without the
//! num_directions axis.

use cellc::check::check_source;
use cellc::data::matching::prepare;
use cellc::data::{ArrayData, read_npz};
use cellc::runtime::forward::forward;
use ndarray::{ArrayD, Axis};

/// ONNX's default GRU (linear_before_reset = 0): the reset gate applies to h
/// before R's h block. One R·(r∘h) product is taken whole and two of its
/// blocks are not used, which the checker points out.
const ONNX_GRU: &str = "
cell onnx_gru(x: [X]) {
    state h: [H] = 0
    param W: [3*H, X], R: [3*H, H], B: [6*H]
    [Wb; Rb] = chunk(B, 2)
    [bz; br; bh] = chunk(Rb, 3)
    [xz; xr; xh] = chunk(W · x_t + Wb, 3)
    [hz; hr; hh] = chunk(R · h_{t-1} + Rb, 3)
    z_t = σ(xz + hz)
    r_t = σ(xr + hr)
    [u1; u2; rh] = chunk(R · (r_t ∘ h_{t-1}), 3)
    h̃_t = tanh(xh + rh + bh)
    h_t = (1 - z_t) ∘ h̃_t + z_t ∘ h_{t-1}
    output h
}";

fn reference(file: &str) -> Vec<(String, ArrayData)> {
    let path = format!("{}/tests/data/reference/{file}", env!("CARGO_MANIFEST_DIR"));
    read_npz(std::path::Path::new(&path))
        .unwrap()
        .into_iter()
        .map(|(n, a)| (n, a.data))
        .collect()
}

fn f64s(r: &[(String, ArrayData)], name: &str) -> ArrayD<f64> {
    match &r.iter().find(|(n, _)| n == name).unwrap().1 {
        ArrayData::F64(a) => a.clone(),
        other => panic!("{name}: {other:?}"),
    }
}

fn ints(r: &[(String, ArrayData)], name: &str) -> Option<Vec<i64>> {
    r.iter().find(|(n, _)| n == name).map(|(_, a)| match a {
        ArrayData::Int(a) => a.iter().copied().collect(),
        other => panic!("{name}: {other:?}"),
    })
}

fn check(cell: &str, file: &str, states: &[&str]) {
    let step = check_source(cell).unwrap().step;
    let r = reference(file);
    let first = |name: &str| f64s(&r, name).index_axis_move(Axis(0), 0);
    let params = ["W", "R", "B"]
        .iter()
        .map(|n| (n.to_string(), first(n)))
        .collect();
    let init = states
        .iter()
        .map(|s| (s.to_string(), first(&format!("initial_{s}"))))
        .collect();
    let seq = prepare(
        &step,
        params,
        vec![("x".into(), f64s(&r, "X"))],
        init,
        ints(&r, "sequence_lens"),
        &Default::default(),
        false,
    )
    .unwrap();
    let traj = forward(&step, &seq).unwrap();
    let close = |a: &ArrayD<f64>, b: &ArrayD<f64>, what: &str| {
        assert_eq!(a.shape(), b.shape(), "{file}: {what}");
        for (x, y) in a.iter().zip(b.iter()) {
            assert!(
                (x - y).abs() <= 1e-12 * (1.0 + y.abs()),
                "{file}: {what}: {x} vs {y}"
            );
        }
    };
    close(
        &traj.outputs[0],
        &f64s(&r, "Y").index_axis_move(Axis(1), 0),
        "Y",
    );
    for (s, name) in states.iter().enumerate() {
        let want = first(&format!("Y_{name}"));
        close(
            &traj.last[s].clone().into_dyn(),
            &want,
            &format!("Y_{name}"),
        );
    }
}

fn model(name: &str) -> String {
    std::fs::read_to_string(format!("{}/models/{name}.cell", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

#[test]
fn onnx_lstm_cell_matches_the_operator() {
    check(&model("onnx_lstm"), "onnx_lstm.npz", &["h", "c"]);
}

#[test]
fn onnx_rnn_cell_matches_the_operator() {
    check(&model("onnx_rnn"), "onnx_rnn.npz", &["h"]);
}

#[test]
fn onnx_default_gru_matches_the_operator() {
    check(ONNX_GRU, "onnx_gru_defaults.npz", &["h"]);
}
