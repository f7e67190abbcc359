//! Gradient clipping (`cellc::train::clip`) and truncated BPTT
//! (`cellc::runtime::truncated`).
//!
//! Truncated BPTT is checked three ways: with `k >= T` against the full
//! `backward`; its forward results against `forward`; and its gradient against
//! central finite differences of the *truncated loss*, in which the state a
//! chunk starts from is a constant. That loss is computed independently of the
//! module: by running `forward` chunk by chunk with the carried state supplied
//! as the initial value (cells reading one step back), by a plain loop over
//! the step graph that reads frozen values across chunk boundaries (every
//! cell, `h_{t-2}` included), and, for `k = 1`, as a sum of one-step losses.

mod common;

use cellc::graph::step::{ArgKind, Init, StepGraph};
use cellc::interp;
use cellc::pipeline::differentiate_step;
use cellc::runtime::backward::{Cotangents, Gradients, backward};
use cellc::runtime::forward::forward;
use cellc::runtime::truncated::truncated_bptt;
use cellc::runtime::types::{Sequences, size};
use cellc::train::clip::{clip_by_global_norm, clip_by_value};
use common::{Problem, close, problem};
use ndarray::{Array2, Array3, ArrayD, Axis, IxDyn, s};

fn load(model: &str) -> StepGraph {
    common::load(&common::model_path(model))
}

const MODELS: [&str; 4] = ["lstm", "gru", "irnn", "higher_order_rnn"];

/// Configurations: (lengths, reverse, supply initial states).
fn configs(t: usize) -> Vec<(Option<Vec<i64>>, bool, bool)> {
    let t = t as i64;
    vec![
        (None, false, false),
        (None, false, true),
        (None, true, true),
        (Some(vec![t, 2, 0]), false, true),
        (Some(vec![t - 1, t, 1]), true, true),
    ]
}

fn assert_all_close<'a>(
    a: impl IntoIterator<Item = &'a f64>,
    b: impl IntoIterator<Item = &'a f64>,
    rel: f64,
    what: &str,
) {
    let (a, b): (Vec<f64>, Vec<f64>) = (
        a.into_iter().copied().collect(),
        b.into_iter().copied().collect(),
    );
    assert_eq!(a.len(), b.len(), "{what}: sizes");
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        assert!(close(*x, *y, rel, 1e-8), "{what} [{i}]: {x} vs {y}");
    }
}

fn assert_same_gradients(a: &Gradients<f64>, b: &Gradients<f64>, what: &str) {
    for (k, (x, y)) in a.params.iter().zip(&b.params).enumerate() {
        assert_eq!(x.shape(), y.shape());
        assert_all_close(x, y, 1e-12, &format!("{what}: param {k}"));
    }
    for (k, (x, y)) in a.inputs.iter().zip(&b.inputs).enumerate() {
        assert_eq!(x.shape(), y.shape());
        assert_all_close(x, y, 1e-12, &format!("{what}: input {k}"));
    }
    for (k, (x, y)) in a.init.iter().zip(&b.init).enumerate() {
        assert_eq!(x.shape(), y.shape());
        assert_all_close(x, y, 1e-12, &format!("{what}: init {k}"));
    }
}

fn length(seq: &Sequences<f64>, b: usize) -> usize {
    seq.lengths.as_ref().map_or(seq.steps, |l| l[b])
}

/// The chunk of `k`-step truncation that holds sequence `b`'s last step.
fn end_chunk(seq: &Sequences<f64>, b: usize, k: usize) -> usize {
    length(seq, b).saturating_sub(1) / k
}

// ---------------------------------------------------------------------------
// An independent time loop over the bare step graph.

/// A plain forward loop over `step.graph` (same conventions as the runtime:
/// iteration `it` processes position `it`, or `L-1-it` reversed; a sequence
/// past its length keeps its state and outputs zeros). With `cut = Some((k,
/// frozen))`, a state read that reaches back before the current `k`-step chunk
/// reads `frozen` (the history of an unperturbed run) instead: the truncated
/// model, in which a chunk's starting history is a constant.
struct Run {
    /// `history[s][D + it]`: the value after iteration `it`; `D = max(1, max lag)`.
    history: Vec<Vec<Array2<f64>>>,
    outputs: Vec<ArrayD<f64>>,
    last: Vec<Array2<f64>>,
}

fn reference_run(
    step: &StepGraph,
    seq: &Sequences<f64>,
    cut: Option<(usize, &[Vec<Array2<f64>>])>,
) -> Run {
    let depth = step.max_lag().max(1) as usize;
    let batch = seq.batch;
    let pos = |b: usize, it: usize| {
        let l = length(seq, b);
        (it < l).then(|| if seq.reverse { l - 1 - it } else { it })
    };
    let mut history: Vec<Vec<Array2<f64>>> = step
        .states
        .iter()
        .enumerate()
        .map(|(s, sig)| {
            let n = size(&sig.size, &seq.bindings);
            let init = match (&seq.init[s], sig.init) {
                (Some(a), _) => a.clone(),
                (None, Init::Param(p)) => {
                    let v = seq.params[p].clone().into_shape_with_order(n).unwrap();
                    Array2::from_shape_fn((batch, n), |(_, j)| v[j])
                }
                (None, Init::Zero) => Array2::zeros((batch, n)),
            };
            let mut h = vec![Array2::zeros((batch, n)); depth - 1];
            h.push(init);
            h
        })
        .collect();
    let mut outputs: Vec<ArrayD<f64>> = step
        .outputs
        .iter()
        .map(|o| {
            let mut shape = vec![seq.steps, batch];
            shape.extend(o.ty.dims.iter().map(|d| size(d, &seq.bindings)));
            ArrayD::zeros(IxDyn(&shape))
        })
        .collect();
    for it in 0..seq.steps {
        let args: Vec<ArrayD<f64>> = step
            .arg_kinds
            .iter()
            .map(|kind| match *kind {
                ArgKind::Param(p) => seq.params[p].clone(),
                ArgKind::Input(i) => {
                    let x = &seq.inputs[i];
                    let mut a = Array2::zeros((batch, x.dim().2));
                    for b in 0..batch {
                        if let Some(p) = pos(b, it) {
                            a.row_mut(b).assign(&x.slice(s![p, b, ..]));
                        }
                    }
                    a.into_dyn()
                }
                ArgKind::State { state, lag } => {
                    let lag = lag as usize;
                    let src = match cut {
                        // The first chunk reads the initial values, which are no carried state.
                        Some((k, frozen)) if it >= k && it < it / k * k + lag => &frozen[state],
                        _ => &history[state],
                    };
                    src[depth + it - lag].clone().into_dyn()
                }
            })
            .collect();
        let refs: Vec<&ArrayD<f64>> = args.iter().collect();
        let res = interp::eval(&step.graph, &refs, &seq.bindings, batch).unwrap();
        for (st, h) in history.iter_mut().enumerate() {
            let mut next = h.last().unwrap().clone();
            let new = res[step.state_result(st)]
                .broadcast(next.dim())
                .unwrap()
                .to_owned();
            for b in 0..batch {
                if pos(b, it).is_some() {
                    next.row_mut(b).assign(&new.index_axis(Axis(0), b));
                }
            }
            h.push(next);
        }
        for (o, out) in outputs.iter_mut().enumerate() {
            let v = &res[step.output_result(o)];
            for b in 0..batch {
                if let Some(p) = pos(b, it) {
                    let row = if step.outputs[o].ty.batched {
                        v.index_axis(Axis(0), b)
                    } else {
                        v.view()
                    };
                    out.index_axis_mut(Axis(0), p)
                        .index_axis_mut(Axis(0), b)
                        .assign(&row);
                }
            }
        }
    }
    let last = history.iter().map(|h| h.last().unwrap().clone()).collect();
    Run {
        history,
        outputs,
        last,
    }
}

/// Σ ⟨cotangent, value⟩ over outputs and final states.
fn loss_of(cot: &Cotangents<f64>, outputs: &[ArrayD<f64>], last: &[Array2<f64>]) -> f64 {
    let mut l = 0.0;
    for (o, c) in cot.outputs.iter().enumerate() {
        l += (&outputs[o] * c.as_ref().unwrap()).sum();
    }
    for (s, c) in cot.last.iter().enumerate() {
        l += (&last[s] * c.as_ref().unwrap()).sum();
    }
    l
}

// ---------------------------------------------------------------------------
// The truncated loss by `forward`, chunk by chunk.

/// The chunk of iterations `start .. start + len` as sequences of its own, and
/// the time position its position 0 is (all sequences alike: no reverse with
/// lengths here).
fn slice_chunk(
    seq: &Sequences<f64>,
    start: usize,
    len: usize,
    init: Vec<Option<Array2<f64>>>,
) -> (Sequences<f64>, usize) {
    assert!(!(seq.reverse && seq.lengths.is_some()));
    let lo = if seq.reverse {
        seq.steps - start - len
    } else {
        start
    };
    let chunk = Sequences {
        params: seq.params.clone(),
        inputs: seq
            .inputs
            .iter()
            .map(|x| x.slice(s![lo..lo + len, .., ..]).to_owned())
            .collect(),
        init,
        lengths: seq.lengths.as_ref().map(|l| {
            l.iter()
                .map(|&l| l.saturating_sub(start).min(len))
                .collect()
        }),
        reverse: seq.reverse,
        bindings: seq.bindings.clone(),
        steps: len,
        batch: seq.batch,
        fill: seq.fill.clone(),
    };
    (chunk, lo)
}

/// The truncated loss computed with `forward` run chunk by chunk, each chunk
/// after the first starting from `carried[c]` supplied as its initial state.
/// With `carried = None`, the carried states are those of this very run (the
/// unperturbed values to freeze); they are returned.
fn loss_by_forward_chunks(
    step: &StepGraph,
    p: &Problem,
    k: usize,
    carried: Option<&[Vec<Array2<f64>>]>,
) -> (f64, Vec<Vec<Array2<f64>>>) {
    let seq = &p.seq;
    // seen[c]: the states chunk c starts from (none for the first chunk).
    let mut seen: Vec<Vec<Array2<f64>>> = vec![vec![]];
    let mut l = 0.0;
    for c in 0..seq.steps.div_ceil(k) {
        let start = c * k;
        let len = k.min(seq.steps - start);
        let init = if c == 0 {
            seq.init.clone()
        } else {
            let from = carried.map_or_else(|| seen[c].clone(), |v| v[c].clone());
            from.into_iter().map(Some).collect()
        };
        let (chunk, lo) = slice_chunk(seq, start, len, init);
        let traj = forward(step, &chunk).unwrap();
        for (o, cot) in p.cot.outputs.iter().enumerate() {
            let cot = cot
                .as_ref()
                .unwrap()
                .slice_axis(Axis(0), (lo..lo + len).into());
            l += (&traj.outputs[o] * &cot).sum();
        }
        for (st, cot) in p.cot.last.iter().enumerate() {
            for b in 0..seq.batch {
                if end_chunk(seq, b, k) == c {
                    l += (&traj.last[st].row(b) * &cot.as_ref().unwrap().row(b)).sum();
                }
            }
        }
        seen.push(traj.last);
    }
    (l, seen)
}

// ---------------------------------------------------------------------------
// Finite differences.

/// Central differences of `loss` at a few entries of every parameter, input
/// and supplied initial state, against `g`.
fn check_fd(
    what: &str,
    step: &StepGraph,
    p: &mut Problem,
    g: &Gradients<f64>,
    loss: &dyn Fn(&Problem) -> f64,
) {
    let eps = 1e-6;
    let picks = |len: usize| -> Vec<usize> {
        if len <= 4 {
            (0..len).collect()
        } else {
            vec![0, len / 3, len / 2, len - 1]
        }
    };
    let mut checked = 0;
    let mut probe =
        |p: &mut Problem, get: &dyn Fn(&mut Problem) -> &mut [f64], grad: &[f64], name: String| {
            for i in picks(grad.len()) {
                let orig = get(p)[i];
                get(p)[i] = orig + eps;
                let up = loss(p);
                get(p)[i] = orig - eps;
                let down = loss(p);
                get(p)[i] = orig;
                let fd = (up - down) / (2.0 * eps);
                let an = grad[i];
                assert!(
                    close(fd, an, 1e-6, 1e-2),
                    "{what}: d{name} [{i}]: finite differences {fd}, truncated BPTT {an}"
                );
                checked += 1;
            }
        };
    for k in 0..step.params.len() {
        probe(
            p,
            &|p| p.seq.params[k].as_slice_mut().unwrap(),
            g.params[k].as_slice().unwrap(),
            step.params[k].name.clone(),
        );
    }
    for k in 0..step.inputs.len() {
        probe(
            p,
            &|p| p.seq.inputs[k].as_slice_mut().unwrap(),
            g.inputs[k].as_slice().unwrap(),
            step.inputs[k].name.clone(),
        );
    }
    for k in 0..step.states.len() {
        if p.seq.init[k].is_some() {
            probe(
                p,
                &|p| p.seq.init[k].as_mut().unwrap().as_slice_mut().unwrap(),
                g.init[k].as_slice().unwrap(),
                format!("{}.init", step.states[k].name),
            );
        }
    }
    assert!(checked > 0);
}

// ---------------------------------------------------------------------------
// Clipping.

fn gradients(params: &[&[f64]]) -> Gradients<f64> {
    Gradients {
        params: params
            .iter()
            .map(|p| ArrayD::from_shape_vec(IxDyn(&[p.len()]), p.to_vec()).unwrap())
            .collect(),
        inputs: vec![Array3::from_elem((2, 3, 4), 100.0)],
        init: vec![Array2::from_elem((3, 4), -100.0)],
    }
}

fn global_norm(g: &Gradients<f64>) -> f64 {
    g.params
        .iter()
        .flat_map(|p| p.iter())
        .map(|x| x * x)
        .sum::<f64>()
        .sqrt()
}

#[test]
fn clip_by_global_norm_scales_exactly_to_the_max_norm() {
    let mut g = gradients(&[&[3.0, 0.0, -4.0], &[12.0]]);
    let before = g.clone();
    let norm = clip_by_global_norm(&mut g, 6.5);
    assert_eq!(norm, 13.0);
    assert!(
        (global_norm(&g) - 6.5).abs() <= 1e-12 * 6.5,
        "{}",
        global_norm(&g)
    );
    // Every parameter scaled by the same factor: the direction is kept.
    for (a, b) in g
        .params
        .iter()
        .flat_map(|p| p.iter())
        .zip(before.params.iter().flat_map(|p| p.iter()))
    {
        assert!((a - b * 0.5).abs() <= 1e-15, "{a} vs {b} / 2");
    }
    // Input and initial-state gradients are neither counted nor scaled.
    assert_eq!(g.inputs, before.inputs);
    assert_eq!(g.init, before.init);
}

#[test]
fn clip_by_global_norm_leaves_small_gradients_alone() {
    for max in [13.0, 13.5, 1e9] {
        let mut g = gradients(&[&[3.0, 0.0, -4.0], &[12.0]]);
        let before = g.clone();
        assert_eq!(clip_by_global_norm(&mut g, max), 13.0);
        assert_eq!(g.params, before.params, "max_norm {max}");
    }
    let mut zero = gradients(&[&[0.0, 0.0], &[]]);
    assert_eq!(clip_by_global_norm(&mut zero, 0.0), 0.0);
    assert!(zero.params[0].iter().all(|x| *x == 0.0));
}

#[test]
fn clip_by_global_norm_does_not_hide_nan_or_infinity() {
    let mut g = gradients(&[&[3.0, f64::NAN], &[f64::INFINITY, 1e3]]);
    let norm = clip_by_global_norm(&mut g, 1.0);
    assert!(norm.is_nan());
    assert!(g.params[0][1].is_nan());
    assert_eq!(g.params[0][0], 3.0);
    assert_eq!(g.params[1][0], f64::INFINITY);
    assert_eq!(g.params[1][1], 1e3);

    let mut g = gradients(&[&[3.0, f64::NEG_INFINITY]]);
    assert_eq!(clip_by_global_norm(&mut g, 1.0), f64::INFINITY);
    assert_eq!(g.params[0][0], 3.0);
    assert_eq!(g.params[0][1], f64::NEG_INFINITY);
}

#[test]
fn clip_by_global_norm_does_not_overflow_in_f32() {
    // The squares (1e60) overflow f32; the norm (2e30) does not.
    let mut g = Gradients::<f32> {
        params: vec![ArrayD::from_elem(IxDyn(&[4]), 1e30f32)],
        inputs: vec![],
        init: vec![],
    };
    let norm = clip_by_global_norm(&mut g, 1.0);
    assert!((norm - 2e30).abs() <= 1e-6 * 2e30, "{norm}");
    for x in g.params[0].iter() {
        assert!((x - 0.5).abs() <= 1e-6, "{x}");
    }
}

#[test]
fn clip_by_global_norm_tames_an_exploding_irnn_gradient() {
    // IRNN with recurrent weights 1.2·I, positive inputs and bias: relu stays
    // active and the gradient grows like 1.2^T (the seed notes' W^t).
    let step = load("irnn");
    let adj = differentiate_step(&step).unwrap();
    let mut p = problem(&step, 40, None, false, false, 5);
    for (k, sig) in step.params.iter().enumerate() {
        let a = &mut p.seq.params[k];
        match sig.name.as_str() {
            "W" => {
                a.fill(0.0);
                for i in 0..a.shape()[0] {
                    a[[i, i]] = 1.2;
                }
            }
            _ => a.mapv_inplace(f64::abs),
        }
    }
    p.seq.inputs[0].mapv_inplace(f64::abs);
    p.cot.outputs[0].as_mut().unwrap().fill(1.0);
    let mut g = backward(&step, &adj, &p.seq, &p.cot).unwrap();
    let before = g.clone();
    let norm = clip_by_global_norm(&mut g, 1.0);
    assert!(norm > 1e4, "expected an exploding gradient, norm {norm}");
    assert!((norm - global_norm(&before)).abs() <= 1e-12 * norm);
    assert!((global_norm(&g) - 1.0).abs() <= 1e-12);
    for (a, b) in g
        .params
        .iter()
        .flat_map(|p| p.iter())
        .zip(before.params.iter().flat_map(|p| p.iter()))
    {
        assert!((a - b / norm).abs() <= 1e-12 * (b / norm).abs().max(1e-300));
    }
    // Truncation removes the products of more than 5 Jacobians, but not the
    // growth of the states themselves (h_t ~ 1.2^t multiplies every ∂/∂W term):
    // smaller, yet still far above 1 — clipping is what bounds the step.
    let t = truncated_bptt(&step, &adj, &p.seq, &p.cot, 5).unwrap();
    let tn = global_norm(&t.gradients);
    assert!(tn < norm / 5.0 && tn > 1e4, "full {norm}, truncated {tn}");
}

#[test]
fn clip_by_value_clamps_each_parameter_element() {
    let mut g = gradients(&[
        &[3.0, -0.5, -4.0, f64::INFINITY],
        &[f64::NAN, 1.0, f64::NEG_INFINITY],
    ]);
    let before = g.clone();
    clip_by_value(&mut g, 1.0);
    assert_eq!(g.params[0].as_slice().unwrap(), &[1.0, -0.5, -1.0, 1.0]);
    assert!(g.params[1][0].is_nan(), "NaN stays NaN");
    assert_eq!(&g.params[1].as_slice().unwrap()[1..], &[1.0, -1.0]);
    assert_eq!(g.inputs, before.inputs);
    assert_eq!(g.init, before.init);
    clip_by_value(&mut g, 0.0);
    assert_eq!(g.params[0].as_slice().unwrap(), &[0.0, 0.0, 0.0, 0.0]);
}

// ---------------------------------------------------------------------------
// Truncated BPTT.

#[test]
fn truncated_bptt_with_k_at_least_t_is_full_bptt() {
    let t = 5;
    for model in MODELS.iter().chain(&["learned_init_rnn"]) {
        let step = load(model);
        let adj = differentiate_step(&step).unwrap();
        for (lengths, reverse, give_init) in configs(t) {
            let what = format!("{model} lengths {lengths:?} reverse {reverse} init {give_init}");
            let p = problem(&step, t, lengths, reverse, give_init, 13);
            let full = backward(&step, &adj, &p.seq, &p.cot).unwrap();
            for k in [t, t + 1, 100] {
                let tr = truncated_bptt(&step, &adj, &p.seq, &p.cot, k).unwrap();
                assert_eq!(tr.chunks, 1);
                assert_same_gradients(&tr.gradients, &full, &format!("{what} k {k}"));
            }
        }
        // No steps at all: one empty chunk; final states are the initial ones.
        let p = problem(&step, 0, None, false, true, 13);
        let full = backward(&step, &adj, &p.seq, &p.cot).unwrap();
        let tr = truncated_bptt(&step, &adj, &p.seq, &p.cot, 3).unwrap();
        assert_eq!(tr.chunks, 1);
        assert_same_gradients(&tr.gradients, &full, &format!("{model} T = 0"));
        assert_eq!(tr.last, forward(&step, &p.seq).unwrap().last);
    }
}

#[test]
fn truncated_forward_results_equal_a_full_forward_pass() {
    let t = 7;
    for model in MODELS.iter().chain(&["learned_init_rnn"]) {
        let step = load(model);
        let adj = differentiate_step(&step).unwrap();
        for (lengths, reverse, give_init) in configs(t) {
            let p = problem(&step, t, lengths.clone(), reverse, give_init, 17);
            let full = forward(&step, &p.seq).unwrap();
            // The oracle loop agrees with the runtime.
            let r = reference_run(&step, &p.seq, None);
            for (a, b) in r.outputs.iter().zip(&full.outputs) {
                assert_all_close(a, b, 1e-12, &format!("{model}: reference loop"));
            }
            for k in 1..=t + 1 {
                let what =
                    format!("{model} lengths {lengths:?} reverse {reverse} init {give_init} k {k}");
                let tr = truncated_bptt(&step, &adj, &p.seq, &p.cot, k).unwrap();
                assert_eq!(tr.chunks, t.div_ceil(k), "{what}");
                assert_eq!(tr.outputs.len(), full.outputs.len());
                for (a, b) in tr.outputs.iter().zip(&full.outputs) {
                    assert_eq!(a.shape(), b.shape(), "{what}");
                    assert_all_close(a, b, 1e-12, &format!("{what}: outputs"));
                }
                for (a, b) in tr.last.iter().zip(&full.last) {
                    assert_all_close(a, b, 1e-12, &format!("{what}: last"));
                }
            }
        }
    }
}

#[test]
fn truncation_changes_the_gradient_when_k_is_below_t() {
    // A sanity check that chunks do cut something: the LSTM's recurrent
    // weights get gradient through h_{t-1} across boundaries only in full BPTT.
    let step = load("lstm");
    let adj = differentiate_step(&step).unwrap();
    let p = problem(&step, 6, None, false, true, 3);
    let full = backward(&step, &adj, &p.seq, &p.cot).unwrap();
    let tr = truncated_bptt(&step, &adj, &p.seq, &p.cot, 2).unwrap();
    let diff: f64 = full
        .params
        .iter()
        .zip(&tr.gradients.params)
        .map(|(a, b)| (a - b).mapv(f64::abs).sum())
        .sum();
    assert!(diff > 1e-3, "{diff}");
    // The input gradient of the last chunk's steps is the same: nothing after
    // them is cut. Earlier steps lose what later chunks would have sent.
    let x_full = &full.inputs[0];
    let x_tr = &tr.gradients.inputs[0];
    assert_all_close(
        x_tr.slice(s![4.., .., ..]).iter(),
        x_full.slice(s![4.., .., ..]).iter(),
        1e-12,
        "last chunk",
    );
}

#[test]
fn k1_parameter_gradient_is_the_sum_of_one_step_gradients() {
    // With k = 1 each step is its own chunk: the gradient is Σ_t ∂ℓ_t/∂θ, with
    // ℓ_t the step's own loss at fixed incoming states. Computed here by central
    // differences of one evaluation of the bare step graph per step, for every
    // parameter element.
    let t = 4;
    for model in MODELS {
        let step = load(model);
        let adj = differentiate_step(&step).unwrap();
        for reverse in [false, true] {
            let p = problem(&step, t, None, reverse, true, 23);
            let tr = truncated_bptt(&step, &adj, &p.seq, &p.cot, 1).unwrap();
            let depth = step.max_lag().max(1) as usize;
            let frozen = reference_run(&step, &p.seq, None).history;
            let one_step_loss = |params: &[ArrayD<f64>], it: usize| -> f64 {
                let pos = if reverse { t - 1 - it } else { it };
                let args: Vec<ArrayD<f64>> = step
                    .arg_kinds
                    .iter()
                    .map(|kind| match *kind {
                        ArgKind::Param(k) => params[k].clone(),
                        ArgKind::Input(i) => p.seq.inputs[i]
                            .index_axis(Axis(0), pos)
                            .to_owned()
                            .into_dyn(),
                        ArgKind::State { state, lag } => {
                            frozen[state][depth + it - lag as usize].clone().into_dyn()
                        }
                    })
                    .collect();
                let refs: Vec<&ArrayD<f64>> = args.iter().collect();
                let res = interp::eval(&step.graph, &refs, &p.seq.bindings, p.seq.batch).unwrap();
                let mut l = 0.0;
                for (o, c) in p.cot.outputs.iter().enumerate() {
                    l += (&res[step.output_result(o)]
                        * &c.as_ref().unwrap().index_axis(Axis(0), pos))
                        .sum();
                }
                if it == t - 1 {
                    for (st, c) in p.cot.last.iter().enumerate() {
                        l += (&res[step.state_result(st)] * c.as_ref().unwrap()).sum();
                    }
                }
                l
            };
            let eps = 1e-6;
            let mut params = p.seq.params.clone();
            for k in 0..params.len() {
                for i in 0..params[k].len() {
                    let mut sum = 0.0;
                    for it in 0..t {
                        let orig = params[k].as_slice().unwrap()[i];
                        params[k].as_slice_mut().unwrap()[i] = orig + eps;
                        let up = one_step_loss(&params, it);
                        params[k].as_slice_mut().unwrap()[i] = orig - eps;
                        let down = one_step_loss(&params, it);
                        params[k].as_slice_mut().unwrap()[i] = orig;
                        sum += (up - down) / (2.0 * eps);
                    }
                    let an = tr.gradients.params[k].as_slice().unwrap()[i];
                    assert!(
                        close(sum, an, 1e-6, 1e-2),
                        "{model} reverse {reverse}: d{} [{i}]: Σ one-step differences {sum}, truncated BPTT {an}",
                        step.params[k].name
                    );
                }
            }
        }
    }
}

#[test]
fn truncated_gradient_matches_finite_differences_of_the_chunked_forward_loss() {
    // The truncated loss as the brief defines it: `forward` run chunk by chunk,
    // the carried state supplied as each chunk's initial value and held at its
    // unperturbed value. Cells reading one step back (their whole carried
    // state fits `Sequences::init`), without reverse+lengths (per-sequence
    // chunk positions; covered by the next test).
    let t = 5;
    for model in ["lstm", "gru", "irnn"] {
        let step = load(model);
        assert_eq!(step.max_lag(), 1);
        let adj = differentiate_step(&step).unwrap();
        for (lengths, reverse, give_init) in configs(t) {
            if reverse && lengths.is_some() {
                continue;
            }
            for k in [1, 2, 3] {
                let what =
                    format!("{model} lengths {lengths:?} reverse {reverse} init {give_init} k {k}");
                let mut p = problem(&step, t, lengths.clone(), reverse, give_init, 29);
                let tr = truncated_bptt(&step, &adj, &p.seq, &p.cot, k).unwrap();
                let (l0, carried) = loss_by_forward_chunks(&step, &p, k, None);
                // At the unperturbed point the truncated loss is the full loss.
                let full = forward(&step, &p.seq).unwrap();
                assert!(
                    close(l0, loss_of(&p.cot, &full.outputs, &full.last), 1e-12, 1e-8),
                    "{what}"
                );
                let loss = |p: &Problem| loss_by_forward_chunks(&step, p, k, Some(&carried)).0;
                check_fd(&what, &step, &mut p, &tr.gradients, &loss);
            }
        }
    }
}

#[test]
fn truncated_gradient_matches_finite_differences_with_frozen_history() {
    // The truncated loss by the oracle loop: reads across a chunk boundary see
    // the unperturbed history. Every cell (h_{t-2} included: both values it
    // reads across a boundary are held), every configuration (reverse with
    // lengths included), a learned initial state (first chunk only).
    let t = 5;
    for model in MODELS.iter().chain(&["learned_init_rnn"]) {
        let step = load(model);
        let adj = differentiate_step(&step).unwrap();
        for (lengths, reverse, give_init) in configs(t) {
            for k in [1, 2, 3] {
                let what =
                    format!("{model} lengths {lengths:?} reverse {reverse} init {give_init} k {k}");
                let mut p = problem(&step, t, lengths.clone(), reverse, give_init, 31);
                let tr = truncated_bptt(&step, &adj, &p.seq, &p.cot, k).unwrap();
                let frozen = reference_run(&step, &p.seq, None).history;
                let loss = |p: &Problem| {
                    let r = reference_run(&step, &p.seq, Some((k, &frozen)));
                    loss_of(&p.cot, &r.outputs, &r.last)
                };
                check_fd(&what, &step, &mut p, &tr.gradients, &loss);
            }
        }
    }
}

#[test]
fn second_order_reads_carry_two_values_across_a_boundary() {
    // h_{t-2} at the first step of a chunk is the value before the previous
    // chunk's last step. Were only the latest state carried, the forward pass
    // would already go wrong at the second chunk.
    let step = load("higher_order_rnn");
    assert_eq!(step.max_lag(), 2);
    let adj = differentiate_step(&step).unwrap();
    let p = problem(&step, 6, None, false, true, 37);
    let full = forward(&step, &p.seq).unwrap();
    for k in [1, 2, 4] {
        let tr = truncated_bptt(&step, &adj, &p.seq, &p.cot, k).unwrap();
        assert_all_close(&tr.outputs[0], &full.outputs[0], 1e-12, &format!("k {k}"));
    }
    // And the gradient is cut there too (that it is cut exactly right, both
    // carried values held, is checked by finite differences above).
    let full_g = backward(&step, &adj, &p.seq, &p.cot).unwrap();
    let tr = truncated_bptt(&step, &adj, &p.seq, &p.cot, 2).unwrap();
    let diff: f64 = full_g
        .params
        .iter()
        .zip(&tr.gradients.params)
        .map(|(a, b)| (a - b).mapv(f64::abs).sum())
        .sum();
    assert!(diff > 1e-3, "{diff}");
}

#[test]
fn learned_initial_state_gets_gradient_from_the_first_chunk_only() {
    let step = load("learned_init_rnn");
    let Init::Param(h0) = step.states[0].init else {
        panic!("a learned initial state")
    };
    let adj = differentiate_step(&step).unwrap();
    let p = problem(&step, 6, Some(vec![6, 1, 4]), false, false, 41);
    for k in [1, 2, 4] {
        let tr = truncated_bptt(&step, &adj, &p.seq, &p.cot, k).unwrap();
        // The first chunk's initial-state gradient, summed over the batch.
        assert_all_close(
            &tr.gradients.params[h0],
            &tr.gradients.init[0].sum_axis(Axis(0)).into_dyn(),
            1e-12,
            &format!("k {k}"),
        );
        // Equal to full BPTT of the first chunk alone plus the final-state
        // cotangent of sequence 1 (length 1), which ends in the first chunk.
        let (first, _) = slice_chunk(&p.seq, 0, k, p.seq.init.clone());
        let mut cot = Cotangents {
            outputs: vec![Some(
                p.cot.outputs[0]
                    .as_ref()
                    .unwrap()
                    .slice(s![0..k, .., ..])
                    .to_owned()
                    .into_dyn(),
            )],
            last: vec![p.cot.last[0].clone()],
        };
        for b in 0..p.seq.batch {
            if end_chunk(&p.seq, b, k) != 0 {
                cot.last[0].as_mut().unwrap().row_mut(b).fill(0.0);
            }
        }
        let g = backward(&step, &adj, &first, &cot).unwrap();
        assert_all_close(
            &tr.gradients.init[0],
            &g.init[0],
            1e-12,
            &format!("k {k}: init"),
        );
    }
}

#[test]
#[should_panic(expected = "k = 0")]
fn truncated_bptt_rejects_empty_chunks() {
    let step = load("irnn");
    let adj = differentiate_step(&step).unwrap();
    let p = problem(&step, 3, None, false, false, 1);
    let _ = truncated_bptt(&step, &adj, &p.seq, &p.cot, 0);
}
