//! The time loop: runs a step kernel over sequences, forward in time.
//!
//! Iteration `i` processes, for sequence `b`, time position `i` (or
//! `L[b]-1-i` with `--reverse`) while `i < L[b]`; past its length a sequence's
//! states stay as they are and its outputs are zero. A state read `k` steps back
//! reads the value `k` iterations earlier: the initial value for `k` = iteration
//! + 1, zeros before it.

use super::kernel::{Interpreted, KernelError, StepKernel};
use super::memory::{MemoryError, zeros};
pub use super::types::{Residuals, Trajectory};
use super::types::{Sequences, output_buffers, size};
use crate::graph::op::Real;
use crate::graph::step::{ArgKind, Init, StepGraph};
use ndarray::{
    Array2, Array3, ArrayD, ArrayView3, ArrayViewD, ArrayViewMut3, ArrayViewMutD, Axis, Ix3, IxDyn,
    s,
};

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

/// Where every sequence is at one iteration.
pub struct Iteration {
    /// By sequence: the time position it processes, if any.
    pub positions: Vec<Option<usize>>,
    /// The position all sequences process, when they all process the same
    /// one: then inputs and cotangents are read in place, without gathering.
    pub uniform: Option<usize>,
}

impl Iteration {
    pub fn new<F>(seq: &Sequences<F>, it: usize) -> Iteration {
        let positions: Vec<Option<usize>> = (0..seq.batch).map(|b| position(seq, b, it)).collect();
        let uniform = match positions.first() {
            Some(&Some(p)) if positions.iter().all(|q| *q == Some(p)) => Some(p),
            _ => None,
        };
        Iteration { positions, uniform }
    }

    pub fn valid(&self, b: usize) -> bool {
        self.positions[b].is_some()
    }
}

/// Gathers the rows of `x` (`[T, B, n]`) that iteration `it` reads into
/// `out` (`[B, n]`): each valid sequence's row at its position, zeros for the
/// others.
pub fn gather_rows<F: Real>(x: ArrayViewD<'_, F>, it: &Iteration, out: &mut ArrayD<F>) {
    for (b, mut row) in out.outer_iter_mut().enumerate() {
        match it.positions[b] {
            Some(pos) => row.assign(&x.index_axis(Axis(0), pos).index_axis(Axis(0), b)),
            None => row.fill(F::zero()),
        }
    }
}

/// Input `i` as iteration `it` reads it: in place when every sequence is at
/// the same position, else gathered into `scratch`.
pub fn input_view<'a, F: Real>(
    seq: &'a Sequences<F>,
    i: usize,
    it: &Iteration,
    scratch: &'a mut ArrayD<F>,
) -> ArrayViewD<'a, F> {
    let x = seq.inputs[i].view().into_dyn();
    match it.uniform {
        Some(pos) => x.index_axis_move(Axis(0), pos),
        None => {
            gather_rows(x, it, scratch);
            if let Some(Some(fill)) = seq.fill.get(i) {
                for (b, mut row) in scratch.outer_iter_mut().enumerate() {
                    if !it.valid(b) {
                        row.assign(fill);
                    }
                }
            }
            scratch.view()
        }
    }
}

/// The position sequence `b` processes at iteration `it`, if any.
pub fn position<F>(seq: &Sequences<F>, b: usize, it: usize) -> Option<usize> {
    let len = seq.length(b);
    (it < len).then(|| if seq.reverse { len - 1 - it } else { it })
}

/// Runs the step graph over the sequences with the interpreter.
pub fn forward<F: Real>(
    step: &StepGraph,
    seq: &Sequences<F>,
) -> Result<Trajectory<F>, KernelError> {
    let mut kernel = Interpreted::new(&step.graph, &seq.bindings, seq.batch)?;
    Ok(run_forward(step, &mut kernel, seq, initial_history(step, seq))?.0)
}

/// The state history before the first iteration: per state `[K, B, n]`,
/// `K - 1` zeros then the initial value (see [`Trajectory::history`]).
pub fn initial_history<F: Real>(step: &StepGraph, seq: &Sequences<F>) -> Vec<Array3<F>> {
    let k = history_depth(step);
    initial_states(step, seq)
        .into_iter()
        .map(|init| {
            let (b, n) = init.dim();
            let mut h = Array3::zeros((k, b, n));
            h.index_axis_mut(Axis(0), k - 1).assign(&init);
            h
        })
        .collect()
}

/// Scratch buffers for the inputs, `[B, n]` each, for iterations whose
/// sequences are at different positions.
pub fn input_scratch<F: Real>(seq: &Sequences<F>) -> Vec<ArrayD<F>> {
    seq.inputs
        .iter()
        .map(|x| ArrayD::zeros(IxDyn(&[seq.batch, x.dim().2])))
        .collect()
}

/// The step's arguments at iteration `it`: parameters from the sequences,
/// inputs as [`input_view`] gives them, states read from `history` (per
/// state, at least its first `K + it` values), all in place.
pub fn step_args<'a, F: Real>(
    step: &StepGraph,
    seq: &'a Sequences<F>,
    inputs: &[ArrayViewD<'a, F>],
    history: &[ArrayView3<'a, F>],
    k: usize,
    it: usize,
) -> Vec<ArrayViewD<'a, F>> {
    step.arg_kinds
        .iter()
        .map(|kind| match *kind {
            ArgKind::Param(p) => seq.params[p].view(),
            ArgKind::Input(i) => inputs[i].clone(),
            ArgKind::State { state, lag } => history[state]
                .index_axis_move(Axis(0), k + it - lag as usize)
                .into_dyn(),
        })
        .collect()
}

/// Runs `kernel` — made from the step graph, or from a graph with the step
/// graph's arguments and results followed by extra results (BPTT's forward
/// step) — over the sequences, starting from `history` (per state `[K, B, n]`,
/// the values before the first iteration: what [`initial_history`] gives, or
/// what an earlier chunk of a sequence ended with). Returns the trajectory and
/// the extra results of every iteration (the residuals BPTT saves).
///
/// The history and residuals are flat buffers allocated once; a new state is
/// written straight into its history slot when every sequence takes the step.
pub fn run_forward<F: Real>(
    step: &StepGraph,
    kernel: &mut dyn StepKernel<F>,
    seq: &Sequences<F>,
    history: Vec<Array3<F>>,
) -> Result<(Trajectory<F>, Residuals<F>), KernelError> {
    kernel.parameters_changed();
    let k = history_depth(step);
    let (t_len, batch) = (seq.steps, seq.batch);
    let n_results = step.graph.results.len();
    let shapes = kernel.result_shapes().to_vec();
    // The buffers that grow with the sequence are allocated fallibly: a run
    // too long for the memory is an error, not an abort.
    let mut hist: Vec<Array3<F>> = history
        .into_iter()
        .zip(&step.states)
        .map(|(h0, sig)| {
            let (_, b, n) = h0.dim();
            let what = format!("the history of state `{}`", sig.name);
            let mut h = zeros(Ix3(k + t_len, b, n), &what)?;
            h.slice_mut(s![..k, .., ..]).assign(&h0);
            Ok(h)
        })
        .collect::<Result<_, MemoryError>>()?;
    let mut residuals: Residuals<F> = shapes[n_results..]
        .iter()
        .map(|sh| {
            let mut full = vec![t_len];
            full.extend(sh);
            zeros(IxDyn(&full), "the residuals BPTT saves")
        })
        .collect::<Result<_, MemoryError>>()?;
    let mut scratch: Vec<ArrayD<F>> = shapes[..n_results]
        .iter()
        .map(|sh| ArrayD::zeros(IxDyn(sh)))
        .collect();
    let mut in_scratch = input_scratch(seq);
    let mut outputs: Vec<ArrayD<F>> = output_buffers(step, &[t_len, batch], &seq.bindings)?;
    // A state result written straight into the history has the slot's shape.
    let slot_shaped: Vec<bool> = (0..step.states.len())
        .map(|st| shapes[step.state_result(st)].as_slice() == &hist[st].shape()[1..])
        .collect();

    for it in 0..t_len {
        let iter = Iteration::new(seq, it);
        let all_valid = (0..batch).all(|b| iter.valid(b));
        let (mut lower, mut upper): (Vec<ArrayViewMut3<F>>, Vec<ArrayViewMut3<F>>) = hist
            .iter_mut()
            .map(|h| h.view_mut().split_at(Axis(0), k + it))
            .unzip();
        let direct: Vec<bool> = slot_shaped.iter().map(|&d| d && all_valid).collect();
        {
            let inputs: Vec<ArrayViewD<F>> = in_scratch
                .iter_mut()
                .enumerate()
                .map(|(i, sc)| input_view(seq, i, &iter, sc))
                .collect();
            let below: Vec<ArrayView3<F>> = lower.iter().map(|l| l.view()).collect();
            let args = step_args(step, seq, &inputs, &below, k, it);
            let mut slots: Vec<Option<ArrayViewMutD<F>>> = (0..n_results).map(|_| None).collect();
            for (st, up) in upper.iter_mut().enumerate() {
                if direct[st] {
                    slots[step.state_result(st)] = Some(up.index_axis_mut(Axis(0), 0).into_dyn());
                }
            }
            let mut results: Vec<ArrayViewMutD<F>> = slots
                .into_iter()
                .zip(scratch.iter_mut())
                .map(|(slot, sc)| slot.unwrap_or_else(|| sc.view_mut()))
                .collect();
            results.extend(residuals.iter_mut().map(|r| r.index_axis_mut(Axis(0), it)));
            kernel.run(&args, &mut results)?;
        }
        // A sequence past its length keeps its state; an unbatched new value
        // (one that depends on no input or state) is the same for every row.
        for (st, (lo, up)) in lower.iter_mut().zip(upper.iter_mut()).enumerate() {
            if direct[st] {
                continue;
            }
            let prev = lo.index_axis(Axis(0), k + it - 1);
            let mut next = up.index_axis_mut(Axis(0), 0);
            let new = &scratch[step.state_result(st)];
            let new = new
                .broadcast(next.raw_dim())
                .ok_or_else(|| KernelError::StateShape {
                    state: step.states[st].name.clone(),
                    found: new.shape().to_vec(),
                    expected: next.shape().to_vec(),
                })?;
            for b in 0..batch {
                let src = if iter.valid(b) {
                    new.row(b)
                } else {
                    prev.row(b)
                };
                next.row_mut(b).assign(&src);
            }
        }
        for (o, out) in outputs.iter_mut().enumerate() {
            let v = &scratch[step.output_result(o)];
            let batched = step.outputs[o].ty.batched;
            for b in 0..batch {
                if let Some(pos) = iter.positions[b] {
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
    let last = hist
        .iter()
        .map(|h| h.index_axis(Axis(0), k + t_len - 1).to_owned())
        .collect();
    Ok((
        Trajectory {
            outputs,
            last,
            history: hist,
        },
        residuals,
    ))
}
