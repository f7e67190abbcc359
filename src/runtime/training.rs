//! What training needs on top of BPTT: gradient clipping and truncated BPTT.
//!
//! An RNN unrolled over `T` steps is a `T`-layer network whose layers share the
//! recurrent weights, so its gradients can explode (the seed notes, "梯度爆炸的
//! 解决方法": 梯度截断). Two remedies live here:
//!
//! * **Clipping** bounds the step an optimiser takes: [`clip_by_global_norm`]
//!   rescales all parameter gradients together (their direction is kept),
//!   [`clip_by_value`] clamps each element.
//! * **Truncated BPTT** ([`truncated_bptt`]) runs the sequence in chunks of `k`
//!   steps. The forward pass is the full one (each chunk starts from the state
//!   the previous chunk ended in), but no gradient crosses a chunk boundary: the
//!   state a chunk starts from is treated as a constant. This bounds how many
//!   Jacobians are multiplied together (and how many residuals are kept at
//!   once) to `k`, at the price of a biased gradient that ignores dependencies
//!   longer than a chunk.
//!
//! Only *parameter* gradients are clipped: input and initial-state gradients
//! are not something an optimiser steps along, and are left untouched (as
//! PyTorch's `clip_grad_norm_` and `clip_grad_value_`, which take parameters).

use super::backward::{Cotangents, Gradients, backward_from};
use super::forward::{history_depth, initial_history};
use super::types::{Sequences, size};
use crate::autodiff::StepAdjoint;
use crate::graph::op::Real;
use crate::graph::step::StepGraph;
use crate::interp::EvalError;
use ndarray::{Array2, ArrayD, ArrayViewD, Axis, Ix3, IxDyn};

/// Scales all parameter gradients by `max_norm / norm` when their global norm
/// (the 2-norm of all parameter gradient elements taken together) exceeds
/// `max_norm`; returns the norm before clipping.
///
/// * Covered: `g.params` only (a learned initial state `NAME_0` is a parameter
///   and counts). `g.inputs` and `g.init` are neither counted nor scaled.
/// * The scale is exactly `max_norm / norm` (PyTorch divides by `norm + 1e-6`),
///   so the clipped norm equals `max_norm` up to rounding.
/// * The norm is accumulated with a running scale (as LAPACK's `nrm2`), so it
///   does not overflow when the squares would — in `f32` a gradient of 1e20 is
///   enough, and exploding gradients are what this is for.
/// * Non-finite gradients are not hidden: if any element is NaN the norm is
///   NaN, else if any is infinite it is infinite, and in both cases nothing is
///   scaled — the gradients keep their NaN/infinite elements and the caller
///   sees the non-finite norm (and should skip the update). PyTorch by default
///   multiplies by the then meaningless factor, turning every element into NaN
///   or 0; here the finite elements are left as they were.
///
/// Panics if `max_norm` is negative or NaN.
pub fn clip_by_global_norm<F: Real>(g: &mut Gradients<F>, max_norm: F) -> F {
    assert!(
        max_norm >= F::zero(),
        "clip_by_global_norm: max_norm must be >= 0, got {max_norm}"
    );
    // norm = scale · √ssq, with scale the largest |x| seen so far.
    let (mut scale, mut ssq) = (F::zero(), F::one());
    let (mut nan, mut inf) = (false, false);
    for x in g.params.iter().flat_map(|p| p.iter()) {
        let a = x.abs();
        if a.is_nan() {
            nan = true;
        } else if a.is_infinite() {
            inf = true;
        } else if a > F::zero() {
            if scale < a {
                let r = scale / a;
                ssq = F::one() + ssq * r * r;
                scale = a;
            } else {
                let r = a / scale;
                ssq += r * r;
            }
        }
    }
    if nan {
        return F::nan();
    }
    if inf {
        return F::infinity();
    }
    // May overflow to infinity while every element is finite; the factor below
    // is then still exact.
    let norm = scale * ssq.sqrt();
    if norm > max_norm {
        let factor = max_norm / scale / ssq.sqrt();
        for p in &mut g.params {
            p.mapv_inplace(|x| x * factor);
        }
    }
    norm
}

/// Clamps every parameter gradient element into `[-limit, limit]`.
///
/// Input and initial-state gradients are left untouched. Infinities are
/// clamped to `±limit`; NaN elements stay NaN (not hidden). Panics if `limit`
/// is negative or NaN.
pub fn clip_by_value<F: Real>(g: &mut Gradients<F>, limit: F) {
    assert!(
        limit >= F::zero(),
        "clip_by_value: limit must be >= 0, got {limit}"
    );
    for p in &mut g.params {
        p.mapv_inplace(|x| {
            if x > limit {
                limit
            } else if x < -limit {
                -limit
            } else {
                x
            }
        });
    }
}

/// What [`truncated_bptt`] produces.
#[derive(Clone, Debug)]
pub struct TruncatedGradients<F> {
    /// Gradients of the truncated loss: parameters summed over the chunks;
    /// inputs at every position (each from the chunk that processed it);
    /// initial states from the first chunk, the only one that sees them.
    pub gradients: Gradients<F>,
    /// By output, `[T, B, ...]`: exactly what a full [`forward`] gives.
    pub outputs: Vec<ArrayD<F>>,
    /// By state, the final value `[B, n]`: exactly what a full [`forward`] gives.
    pub last: Vec<Array2<F>>,
    /// How many chunks were run (`⌈T / k⌉`, and 1 when `T = 0`).
    pub chunks: usize,
}

/// Truncated BPTT with chunks of `k` steps (the last may be shorter).
///
/// Chunks cut the *iterations* of the time loop: chunk `c` runs iterations
/// `c·k .. min((c+1)·k, T)`, so with `reverse` they follow the processing
/// order (the first chunk holds the end of each sequence), and with lengths
/// each sequence runs `clamp(L[b] − c·k, 0, k)` steps of a chunk, at its own
/// time positions — `reverse` together with lengths is supported.
///
/// The forward pass equals a full one: each chunk starts from the state
/// history the previous chunk ended with. The gradient is that of the
/// *truncated loss*, in which everything a chunk reads from before its first
/// iteration is a constant:
///
/// * output cotangents apply in the chunk that produced the output;
/// * the cotangent of a final state `NAME.last` applies, for sequence `b`, in
///   the chunk that holds its last step (the last chunk when all sequences are
///   `T` long; the first one when `L[b] = 0`, where the final state is the
///   initial one). Applied in a later chunk it would only reach a carried
///   constant and be lost;
/// * the initial states (supplied or learned, `Init::Param`) are read by the
///   first chunk only, so only it contributes to their gradients.
///
/// Reads deeper than one step (`h_{t-2}`): a chunk needs the last `max_lag`
/// values of each state, not just the latest. These are carried across
/// boundaries (as constants), and each chunk runs through the runtime's own
/// BPTT ([`backward_from`]) starting from that history.
///
/// With `k >= T` the result equals a full [`backward`]. Panics if `k == 0`.
pub fn truncated_bptt<F: Real>(
    step: &StepGraph,
    adj: &StepAdjoint,
    seq: &Sequences<F>,
    cot: &Cotangents<F>,
    k: usize,
) -> Result<TruncatedGradients<F>, EvalError> {
    assert!(
        k > 0,
        "truncated_bptt: chunks must be at least one step long (k = 0)"
    );
    let depth = history_depth(step);
    let t_len = seq.steps;
    let batch = seq.batch;
    let chunks = t_len.div_ceil(k).max(1);
    // The chunk whose final states are sequence b's final states.
    let end_chunk: Vec<usize> = (0..batch)
        .map(|b| seq.length(b).saturating_sub(1) / k)
        .collect();

    // The state history before the current chunk: the last `depth` values of
    // each state, oldest first (initially: zeros, then the initial value).
    let mut carry: Vec<Vec<Array2<F>>> = initial_history(step, seq);
    let mut params: Vec<ArrayD<F>> = seq
        .params
        .iter()
        .map(|p| ArrayD::zeros(p.raw_dim()))
        .collect();
    let mut inputs: Vec<ArrayD<F>> = seq
        .inputs
        .iter()
        .map(|x| ArrayD::zeros(x.shape()))
        .collect();
    let mut init = Vec::new();
    let mut outputs: Vec<ArrayD<F>> = step
        .outputs
        .iter()
        .map(|o| {
            let mut shape = vec![t_len, batch];
            shape.extend(o.ty.dims.iter().map(|d| size(d, &seq.bindings)));
            ArrayD::zeros(IxDyn(&shape))
        })
        .collect();

    for c in 0..chunks {
        let map = ChunkMap::new(seq, c * k, k.min(t_len - c * k));
        let chunk = Sequences {
            params: seq.params.clone(),
            inputs: seq
                .inputs
                .iter()
                .map(|x| {
                    map.gather(x.view().into_dyn())
                        .into_dimensionality::<Ix3>()
                        .expect("[T, B, n]")
                })
                .collect(),
            // The first chunk starts as the whole run does (supplied, learned
            // or zero); the others from the carried state.
            init: if c == 0 {
                seq.init.clone()
            } else {
                carry.iter().map(|h| h.last().cloned()).collect()
            },
            lengths: seq.lengths.as_ref().map(|_| map.lengths.clone()),
            reverse: seq.reverse,
            bindings: seq.bindings.clone(),
            steps: map.len,
            batch,
        };
        let ends_here: Vec<bool> = end_chunk.iter().map(|&e| e == c).collect();
        let chunk_cot = Cotangents {
            outputs: cot
                .outputs
                .iter()
                .map(|o| o.as_ref().map(|o| map.gather(o.view())))
                .collect(),
            last: cot
                .last
                .iter()
                .map(|l| {
                    let l = l.as_ref()?;
                    ends_here.iter().any(|&e| e).then(|| {
                        let mut l = l.clone();
                        for (b, mut row) in l.outer_iter_mut().enumerate() {
                            if !ends_here[b] {
                                row.fill(F::zero());
                            }
                        }
                        l
                    })
                })
                .collect(),
        };

        let (traj, g) = backward_from(step, adj, &chunk, &chunk_cot, carry)?;

        for (acc, g) in params.iter_mut().zip(&g.params) {
            *acc += g;
        }
        for (acc, g) in inputs.iter_mut().zip(&g.inputs) {
            map.scatter(g.view().into_dyn(), acc);
        }
        for (acc, o) in outputs.iter_mut().zip(&traj.outputs) {
            map.scatter(o.view(), acc);
        }
        if c == 0 {
            init = g.init;
        }
        carry = traj
            .history
            .into_iter()
            .map(|mut h| h.split_off(h.len() - depth))
            .collect();
    }
    let last = carry
        .into_iter()
        .map(|mut h| h.pop().expect("the latest value"))
        .collect();
    Ok(TruncatedGradients {
        gradients: Gradients {
            params,
            inputs: inputs
                .into_iter()
                .map(|x| x.into_dimensionality::<Ix3>().expect("[T, B, n]"))
                .collect(),
            init,
        },
        outputs,
        last,
        chunks,
    })
}

/// Where a chunk's time positions lie in the whole sequence: for sequence `b`,
/// chunk position `p < lengths[b]` is position `offset[b] + p`.
struct ChunkMap {
    len: usize,
    lengths: Vec<usize>,
    offset: Vec<usize>,
}

impl ChunkMap {
    /// The chunk of `len` iterations from iteration `start`. Forward, iteration
    /// `start + j` is position `start + j`. Reversed, it is `L − 1 − start − j`,
    /// which the chunk (itself reversed, with length `l`) calls `l − 1 − j`: the
    /// chunk covers positions `L − start − l .. L − start`.
    fn new<F>(seq: &Sequences<F>, start: usize, len: usize) -> Self {
        let mut lengths = Vec::with_capacity(seq.batch);
        let mut offset = Vec::with_capacity(seq.batch);
        for b in 0..seq.batch {
            let full = seq.length(b);
            let l = full.saturating_sub(start).min(len);
            lengths.push(l);
            offset.push(if seq.reverse {
                full.saturating_sub(start + l)
            } else {
                start
            });
        }
        ChunkMap {
            len,
            lengths,
            offset,
        }
    }

    /// The chunk's part of a `[T, B, ...]` array; zeros where a sequence has
    /// ended.
    fn gather<F: Real>(&self, whole: ArrayViewD<F>) -> ArrayD<F> {
        let mut shape = whole.shape().to_vec();
        shape[0] = self.len;
        let mut out = ArrayD::zeros(IxDyn(&shape));
        for (b, (&l, &o)) in self.lengths.iter().zip(&self.offset).enumerate() {
            for p in 0..l {
                out.index_axis_mut(Axis(0), p)
                    .index_axis_mut(Axis(0), b)
                    .assign(&whole.index_axis(Axis(0), o + p).index_axis(Axis(0), b));
            }
        }
        out
    }

    /// Writes a chunk's `[len, B, ...]` array into the whole `[T, B, ...]` one.
    fn scatter<F: Real>(&self, chunk: ArrayViewD<F>, whole: &mut ArrayD<F>) {
        for (b, (&l, &o)) in self.lengths.iter().zip(&self.offset).enumerate() {
            for p in 0..l {
                whole
                    .index_axis_mut(Axis(0), o + p)
                    .index_axis_mut(Axis(0), b)
                    .assign(&chunk.index_axis(Axis(0), p).index_axis(Axis(0), b));
            }
        }
    }
}
