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
    Iteration, gather_rows, history_depth, initial_history, input_scratch, input_view, run_forward,
    step_args,
};
use super::kernel::{KernelError, StepKernel, interpreted_bptt};
use super::memory::{MemoryError, zeros};
pub use super::types::{Cotangents, Gradients};
use super::types::{Sequences, Trajectory, output_buffers};
use crate::autodiff::StepAdjoint;
use crate::graph::op::Real;
use crate::graph::step::{ArgKind, Init, StepGraph};
use ndarray::{Array3, ArrayD, ArrayView3, ArrayViewD, ArrayViewMutD, Axis, Ix2, IxDyn};

/// Keep only the rows of valid sequences; zero the others.
fn mask_rows<F: Real>(a: &mut ArrayD<F>, it: &Iteration) {
    for (b, mut row) in a.outer_iter_mut().enumerate() {
        if !it.valid(b) {
            row.fill(F::zero());
        }
    }
}

/// Refuses cotangents for an output that `adj` was derived without
/// ([`crate::pipeline::differentiate_step_for`]).
pub fn check_cotangents<F>(
    step: &StepGraph,
    adj: &StepAdjoint,
    cot: &Cotangents<F>,
) -> Result<(), KernelError> {
    let given: Vec<bool> = cot.outputs.iter().map(Option::is_some).collect();
    match adj.ignored_cotangent(&given) {
        Some(o) => Err(KernelError::IgnoredCotangent {
            output: step.outputs[o].name.clone(),
        }),
        None => Ok(()),
    }
}

/// BPTT with the interpreter.
pub fn backward<F: Real>(
    step: &StepGraph,
    adj: &StepAdjoint,
    seq: &Sequences<F>,
    cot: &Cotangents<F>,
) -> Result<Gradients<F>, KernelError> {
    Ok(backward_from(step, adj, seq, cot, initial_history(step, seq))?.1)
}

/// BPTT with the interpreter, starting from a given state history (per state
/// `[K, B, n]`, the values before the first iteration), for runs cut into
/// chunks; also returns the forward trajectory. See [`run_backward`].
pub fn backward_from<F: Real>(
    step: &StepGraph,
    adj: &StepAdjoint,
    seq: &Sequences<F>,
    cot: &Cotangents<F>,
    history: Vec<Array3<F>>,
) -> Result<(Trajectory<F>, Gradients<F>), KernelError> {
    check_cotangents(step, adj, cot)?;
    let (mut forward, mut adjoint) = interpreted_bptt(adj, &seq.bindings, seq.batch)?;
    run_backward(step, &mut forward, &mut adjoint, seq, cot, history)
}

/// BPTT: `forward` (the kernel of BPTT's forward step, which saves residuals)
/// runs over the sequences from `history`, then `adjoint` (the kernel of the
/// adjoint step) from the last iteration to the first. The gradient of the
/// history's values is returned for its latest value only (`init`); a learned
/// initial state collects it when `seq.init` gives no value in its place.
pub fn run_backward<F: Real>(
    step: &StepGraph,
    forward: &mut dyn StepKernel<F>,
    adjoint: &mut dyn StepKernel<F>,
    seq: &Sequences<F>,
    cot: &Cotangents<F>,
    history: Vec<Array3<F>>,
) -> Result<(Trajectory<F>, Gradients<F>), KernelError> {
    let (traj, residuals) = run_forward(step, forward, seq, history)?;
    adjoint.parameters_changed();
    let k = history_depth(step);
    let (t_len, batch) = (seq.steps, seq.batch);
    let mut hbar: Vec<Array3<F>> = traj
        .history
        .iter()
        .zip(&step.states)
        .map(|(h, sig)| {
            zeros(
                h.raw_dim(),
                &format!("the cotangents of state `{}`", sig.name),
            )
        })
        .collect::<Result<_, MemoryError>>()?;
    // With T = 0 the final value is the initial one.
    for (s, c) in cot.last.iter().enumerate() {
        if let Some(c) = c {
            let mut slot = hbar[s].index_axis_mut(Axis(0), k + t_len - 1);
            slot += c;
        }
    }
    let mut params: Vec<ArrayD<F>> = seq
        .params
        .iter()
        .zip(&step.params)
        .map(|(p, sig)| zeros(p.raw_dim(), &format!("the gradient of `{}`", sig.name)))
        .collect::<Result<_, MemoryError>>()?;
    let mut inputs: Vec<Array3<F>> = seq
        .inputs
        .iter()
        .zip(&step.inputs)
        .map(|(x, sig)| {
            zeros(
                x.raw_dim(),
                &format!("the gradient of input `{}`", sig.name),
            )
        })
        .collect::<Result<_, MemoryError>>()?;
    let mut cotangents: Vec<ArrayD<F>> = adjoint
        .result_shapes()
        .iter()
        .map(|sh| zeros(IxDyn(sh), "one step's cotangents"))
        .collect::<Result<_, MemoryError>>()?;
    let mut in_scratch = input_scratch(seq);
    let mut state_scratch: Vec<ArrayD<F>> = hbar
        .iter()
        .map(|h| ArrayD::zeros(IxDyn(&h.shape()[1..])))
        .collect();
    let mut output_scratch: Vec<ArrayD<F>> = output_buffers(step, &[batch], &seq.bindings)?;
    let history: Vec<ArrayView3<F>> = traj.history.iter().map(|h| h.view()).collect();

    for it in (0..t_len).rev() {
        let iter = Iteration::new(seq, it);
        let all_valid = (0..batch).all(|b| iter.valid(b));
        {
            let inputs: Vec<ArrayViewD<F>> = in_scratch
                .iter_mut()
                .enumerate()
                .map(|(i, sc)| input_view(seq, i, &iter, sc))
                .collect();
            let mut args = step_args(step, seq, &inputs, &history, k, it);
            args.extend(residuals.iter().map(|r| r.index_axis(Axis(0), it)));
            // Rows past their length get no cotangent: they took no step.
            for (h, sc) in hbar.iter().zip(state_scratch.iter_mut()) {
                let c = h.index_axis(Axis(0), k + it);
                if all_valid {
                    args.push(c.into_dyn());
                } else {
                    sc.assign(&c);
                    mask_rows(sc, &iter);
                    let sc: &ArrayD<F> = sc;
                    args.push(sc.view());
                }
            }
            for (o, sc) in output_scratch.iter_mut().enumerate() {
                match (&cot.outputs[o], iter.uniform) {
                    (Some(all), Some(pos)) => args.push(all.index_axis(Axis(0), pos)),
                    (Some(all), None) => {
                        gather_rows(all.view(), &iter, sc);
                        let sc: &ArrayD<F> = sc;
                        args.push(sc.view());
                    }
                    // Stays zero: nothing is ever gathered into it.
                    (None, _) => {
                        let sc: &ArrayD<F> = sc;
                        args.push(sc.view());
                    }
                }
            }
            let mut results: Vec<ArrayViewMutD<F>> =
                cotangents.iter_mut().map(|c| c.view_mut()).collect();
            adjoint.run(&args, &mut results)?;
        }
        for (a, kind) in step.arg_kinds.iter().enumerate() {
            let g = &cotangents[a];
            match *kind {
                ArgKind::Param(p) => params[p] += g,
                ArgKind::Input(i) => {
                    for b in 0..batch {
                        if let Some(pos) = iter.positions[b] {
                            let mut dst = inputs[i].index_axis_mut(Axis(0), pos);
                            let mut dst = dst.index_axis_mut(Axis(0), b);
                            dst += &g.index_axis(Axis(0), b);
                        }
                    }
                }
                ArgKind::State { state, lag } => {
                    let g = g.view().into_dimensionality::<Ix2>().map_err(|_| {
                        KernelError::StateShape {
                            state: step.states[state].name.clone(),
                            found: g.shape().to_vec(),
                            expected: hbar[state].shape()[1..].to_vec(),
                        }
                    })?;
                    let mut slot = hbar[state].index_axis_mut(Axis(0), k + it - lag as usize);
                    slot += &g;
                }
            }
        }
        // Rows past their length carried the state unchanged.
        if !all_valid {
            for h in hbar.iter_mut() {
                let (mut lower, upper) = h.view_mut().split_at(Axis(0), k + it);
                let mut low = lower.index_axis_mut(Axis(0), k + it - 1);
                let up = upper.index_axis(Axis(0), 0);
                for b in (0..batch).filter(|&b| !iter.valid(b)) {
                    let mut row = low.row_mut(b);
                    row += &up.row(b);
                }
            }
        }
    }
    let init: Vec<_> = hbar
        .iter()
        .map(|h| h.index_axis(Axis(0), k - 1).to_owned())
        .collect();
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
