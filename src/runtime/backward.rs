//! Backpropagation through time: the forward pass saves each step's residuals,
//! then the adjoint step runs from the last iteration to the first.
//!
//! The cotangent of every state value in the history is kept (`hbar`), so a
//! read `k` steps back sends its cotangent `k` iterations down, and a value read
//! by several later steps sums what each sends. Past a sequence's length its
//! state is carried unchanged, so there its cotangent passes straight through;
//! the adjoint step sees zero cotangents for such rows and, being linear in
//! them, adds nothing to any gradient.

use super::forward::{
    Trajectory, forward_with, history_depth, initial_history, position, step_args,
};
use super::types::Sequences;
pub use super::types::{Cotangents, Gradients};
use crate::autodiff::StepAdjoint;
use crate::graph::op::Real;
use crate::graph::step::{ArgKind, Init, StepGraph};
use crate::interp::{self, EvalError};
use ndarray::{Array2, Array3, ArrayD, Axis, Ix2, IxDyn};

/// Keep only the rows of valid sequences; zero the others.
fn mask_rows<F: Real>(a: &mut ArrayD<F>, valid: &[bool]) {
    for (b, mut row) in a.outer_iter_mut().enumerate() {
        if !valid[b] {
            row.fill(F::zero());
        }
    }
}

pub fn backward<F: Real>(
    step: &StepGraph,
    adj: &StepAdjoint,
    seq: &Sequences<F>,
    cot: &Cotangents<F>,
) -> Result<Gradients<F>, EvalError> {
    Ok(backward_from(step, adj, seq, cot, initial_history(step, seq))?.1)
}

/// BPTT starting from a given state history (per state, the `K` values before
/// the first iteration), for runs cut into chunks. Also returns the forward
/// trajectory. The gradient of the history's values is returned for its
/// latest value only (`init`); a learned initial state collects it when
/// `seq.init` gives no value in its place.
pub fn backward_from<F: Real>(
    step: &StepGraph,
    adj: &StepAdjoint,
    seq: &Sequences<F>,
    cot: &Cotangents<F>,
    history: Vec<Vec<Array2<F>>>,
) -> Result<(Trajectory<F>, Gradients<F>), EvalError> {
    let (traj, saved) = forward_with(step, &adj.forward, seq, history)?;
    let k = history_depth(step);
    let t_len = seq.steps;
    let batch = seq.batch;
    let mut hbar: Vec<Vec<Array2<F>>> = traj
        .history
        .iter()
        .map(|h| h.iter().map(|v| Array2::zeros(v.dim())).collect())
        .collect();
    for (s, c) in cot.last.iter().enumerate() {
        if let Some(c) = c {
            hbar[s][k + t_len - 1] += c;
        }
    }
    // With T = 0 the final value is the initial one.
    let mut params: Vec<ArrayD<F>> = seq
        .params
        .iter()
        .map(|p| ArrayD::zeros(p.raw_dim()))
        .collect();
    let mut inputs: Vec<Array3<F>> = seq
        .inputs
        .iter()
        .map(|x| Array3::zeros(x.raw_dim()))
        .collect();
    for it in (0..t_len).rev() {
        let valid: Vec<bool> = (0..batch).map(|b| position(seq, b, it).is_some()).collect();
        let mut args = step_args(step, seq, &traj.history, it);
        args.extend(saved[it].iter().cloned());
        for h in &hbar {
            let mut c = h[k + it].clone().into_dyn();
            mask_rows(&mut c, &valid);
            args.push(c);
        }
        for (o, sig) in step.outputs.iter().enumerate() {
            let mut shape = vec![batch];
            shape.extend(
                sig.ty
                    .dims
                    .iter()
                    .map(|d| super::types::size(d, &seq.bindings)),
            );
            let mut c = ArrayD::zeros(IxDyn(&shape));
            if let Some(all) = &cot.outputs[o] {
                for b in 0..batch {
                    if let Some(pos) = position(seq, b, it) {
                        c.index_axis_mut(Axis(0), b)
                            .assign(&all.index_axis(Axis(0), pos).index_axis(Axis(0), b));
                    }
                }
            }
            args.push(c);
        }
        let refs: Vec<&ArrayD<F>> = args.iter().collect();
        let res = interp::eval(&adj.backward, &refs, &seq.bindings, batch)?;
        for (a, kind) in step.arg_kinds.iter().enumerate() {
            match *kind {
                ArgKind::Param(p) => params[p] += &res[a],
                ArgKind::Input(i) => {
                    for b in 0..batch {
                        if let Some(pos) = position(seq, b, it) {
                            let mut dst = inputs[i].index_axis_mut(Axis(0), pos);
                            let mut dst = dst.index_axis_mut(Axis(0), b);
                            dst += &res[a].index_axis(Axis(0), b);
                        }
                    }
                }
                ArgKind::State { state, lag } => {
                    let g = res[a]
                        .view()
                        .into_dimensionality::<Ix2>()
                        .expect("a state's cotangent is [B, n]");
                    hbar[state][k + it - lag as usize] += &g;
                }
            }
        }
        // Rows past their length carried the state unchanged.
        for h in hbar.iter_mut() {
            let (lower, upper) = h.split_at_mut(k + it);
            for (b, _) in valid.iter().enumerate().filter(|(_, v)| !**v) {
                {
                    let up = upper[0].row(b).to_owned();
                    let mut low = lower[k + it - 1].row_mut(b);
                    low += &up;
                }
            }
        }
    }
    let init: Vec<Array2<F>> = hbar.iter().map(|h| h[k - 1].clone()).collect();
    // A learned initial value collects its state's gradient over the batch,
    // unless a value was given at run time in its place.
    for (s, sig) in step.states.iter().enumerate() {
        if let Init::Param(p) = sig.init
            && seq.init[s].is_none()
        {
            let g = init[s].sum_axis(Axis(0));
            params[p] += &g.into_dyn();
        }
    }
    Ok((
        traj,
        Gradients {
            params,
            inputs,
            init,
        },
    ))
}
