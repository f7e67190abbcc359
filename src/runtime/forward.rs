//! The time loop: runs the step graph over sequences with the interpreter.
//!
//! Iteration `i` processes, for sequence `b`, time position `i` (or
//! `L[b]-1-i` with `--reverse`) while `i < L[b]`; past its length a sequence's
//! states stay as they are and its outputs are zero. A state read `k` steps back
//! reads the value `k` iterations earlier: the initial value for `k` = iteration
//! + 1, zeros before it.

pub use super::types::{Saved, Trajectory};
use super::types::{Sequences, size};
use crate::graph::op::Real;
use crate::graph::step::{ArgKind, Init, StepGraph};
use crate::interp::{self, EvalError};
use ndarray::{Array2, ArrayD, Axis, IxDyn};

/// How far back the history goes: at least the initial value.
pub fn history_depth(step: &StepGraph) -> usize {
    step.max_lag().max(1) as usize
}

/// The initial value of every state: given, learned (broadcast over the batch)
/// or zero.
pub fn initial_states<F: Real>(step: &StepGraph, seq: &Sequences<F>) -> Vec<Array2<F>> {
    step.states
        .iter()
        .enumerate()
        .map(|(s, sig)| {
            let n = size(&sig.size, &seq.bindings);
            match (&seq.init[s], sig.init) {
                (Some(a), _) => a.clone(),
                (None, Init::Param(p)) => {
                    let v = seq.params[p]
                        .view()
                        .into_shape_with_order(n)
                        .expect("a vector");
                    v.broadcast((seq.batch, n))
                        .expect("vector over batch")
                        .to_owned()
                }
                (None, Init::Zero) => Array2::zeros((seq.batch, n)),
            }
        })
        .collect()
}

/// Gathers input `i` for iteration `it`: each valid sequence's row at its time
/// position, zeros for the others.
pub fn gather_input<F: Real>(seq: &Sequences<F>, input: usize, it: usize) -> ArrayD<F> {
    let x = &seq.inputs[input];
    let n = x.dim().2;
    let mut out = Array2::zeros((seq.batch, n));
    for b in 0..seq.batch {
        if let Some(pos) = position(seq, b, it) {
            out.row_mut(b).assign(&x.slice(ndarray::s![pos, b, ..]));
        }
    }
    out.into_dyn()
}

/// The time position sequence `b` processes at iteration `it`, if any.
pub fn position<F>(seq: &Sequences<F>, b: usize, it: usize) -> Option<usize> {
    let len = seq.length(b);
    (it < len).then(|| if seq.reverse { len - 1 - it } else { it })
}

pub fn forward<F: Real>(step: &StepGraph, seq: &Sequences<F>) -> Result<Trajectory<F>, EvalError> {
    Ok(forward_with(step, &step.graph, seq, initial_history(step, seq))?.0)
}

/// The state history before the first iteration: per state, `K - 1` zeros
/// then the initial value (see [`Trajectory::history`]).
pub fn initial_history<F: Real>(step: &StepGraph, seq: &Sequences<F>) -> Vec<Vec<Array2<F>>> {
    let k = history_depth(step);
    initial_states(step, seq)
        .into_iter()
        .map(|init| {
            let mut h = vec![Array2::zeros(init.dim()); k - 1];
            h.push(init);
            h
        })
        .collect()
}

/// The arguments of the step graph at iteration `it`.
pub fn step_args<F: Real>(
    step: &StepGraph,
    seq: &Sequences<F>,
    history: &[Vec<Array2<F>>],
    it: usize,
) -> Vec<ArrayD<F>> {
    let k = history_depth(step);
    step.arg_kinds
        .iter()
        .map(|kind| match *kind {
            ArgKind::Param(p) => seq.params[p].clone(),
            ArgKind::Input(i) => gather_input(seq, i, it),
            ArgKind::State { state, lag } => {
                history[state][k + it - lag as usize].clone().into_dyn()
            }
        })
        .collect()
}

/// Runs `graph` — the step graph, or a graph with the step graph's arguments
/// and results followed by extra results — over the sequences, starting from
/// `history` (per state, the `K` values before the first iteration: what
/// [`initial_history`] gives, or what an earlier chunk of a sequence ended
/// with). Returns the trajectory and, for each iteration, the values of the
/// extra results (the residuals BPTT saves).
pub fn forward_with<F: Real>(
    step: &StepGraph,
    graph: &crate::graph::Graph,
    seq: &Sequences<F>,
    history: Vec<Vec<Array2<F>>>,
) -> Result<(Trajectory<F>, Saved<F>), EvalError> {
    let n_results = step.graph.results.len();
    let mut saved = Vec::new();
    let mut history = history;
    let mut outputs: Vec<ArrayD<F>> = Vec::new();
    for o in &step.outputs {
        let mut shape = vec![seq.steps, seq.batch];
        for d in &o.ty.dims {
            shape.push(size(d, &seq.bindings));
        }
        outputs.push(ArrayD::zeros(IxDyn(&shape)));
    }
    for it in 0..seq.steps {
        let args = step_args(step, seq, &history, it);
        let refs: Vec<&ArrayD<F>> = args.iter().collect();
        let mut results = interp::eval(graph, &refs, &seq.bindings, seq.batch)?;
        saved.push(results.split_off(n_results));
        for (s, h) in history.iter_mut().enumerate() {
            let prev = h.last().expect("initial value").clone();
            // An unbatched new value (one that depends on no input or state) is
            // the same for every sequence.
            let new = results[step.state_result(s)]
                .broadcast(prev.dim())
                .map(|v| v.to_owned())
                .unwrap_or_else(|| prev.clone());
            let mut next = prev;
            for b in 0..seq.batch {
                if position(seq, b, it).is_some() {
                    next.row_mut(b).assign(&new.row(b));
                }
            }
            h.push(next);
        }
        for (o, out) in outputs.iter_mut().enumerate() {
            let v = &results[step.output_result(o)];
            let batched = step.outputs[o].ty.batched;
            for b in 0..seq.batch {
                if let Some(pos) = position(seq, b, it) {
                    let row = if batched {
                        v.index_axis(Axis(0), b)
                    } else {
                        v.view()
                    };
                    out.index_axis_mut(Axis(0), pos)
                        .index_axis_mut(Axis(0), b)
                        .assign(&row);
                }
            }
        }
    }
    let last = history
        .iter()
        .map(|h| h.last().expect("initial value").clone())
        .collect();
    Ok((
        Trajectory {
            outputs,
            last,
            history,
        },
        saved,
    ))
}
