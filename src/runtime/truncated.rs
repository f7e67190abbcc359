//! What training needs on top of BPTT: truncated BPTT.
//!
//! An RNN unrolled over `T` steps is a `T`-layer network whose layers share the
//! recurrent weights, so its gradients can explode (the seed notes, "梯度爆炸的
//! 解决方法": 梯度截断). **Truncated BPTT** ([`truncated_bptt`]) runs the
//! sequence in chunks of `k` steps. The forward pass is the full one (each chunk
//! starts from the state the previous chunk ended in), but no gradient crosses a
//! chunk boundary: the state a chunk starts from is treated as a constant. This
//! bounds how many Jacobians are multiplied together (and how many residuals are
//! kept at once) to `k`, at the price of a biased gradient that ignores
//! dependencies longer than a chunk. Clipping, the other remedy, is optimiser
//! policy and lives in `train::clip`.

use super::backward::{Cotangents, Gradients, run_backward};
use super::forward::{history_depth, initial_history};
use super::kernel::{KernelError, StepKernel, interpreted_bptt};
use super::memory::{MemoryError, zeros};
use super::types::{Sequences, output_buffers};
use crate::autodiff::StepAdjoint;
use crate::graph::op::Real;
use crate::graph::step::StepGraph;
use ndarray::{Array2, Array3, ArrayD, ArrayViewD, Axis, Ix3, IxDyn, s};

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
/// BPTT ([`run_backward`]) starting from that history.
///
/// With `k >= T` the result equals a full [`backward`]. Panics if `k == 0`.
/// Runs the interpreter; [`run_truncated`] takes any kernels.
pub fn truncated_bptt<F: Real>(
    step: &StepGraph,
    adj: &StepAdjoint,
    seq: &Sequences<F>,
    cot: &Cotangents<F>,
    k: usize,
) -> Result<TruncatedGradients<F>, KernelError> {
    super::backward::check_cotangents(step, adj, cot)?;
    let (mut forward, mut adjoint) = interpreted_bptt(adj, &seq.bindings, seq.batch)?;
    run_truncated(step, &mut forward, &mut adjoint, seq, cot, k)
}

/// [`truncated_bptt`] with the kernels of BPTT's forward and adjoint steps.
pub fn run_truncated<F: Real>(
    step: &StepGraph,
    forward: &mut dyn StepKernel<F>,
    adjoint: &mut dyn StepKernel<F>,
    seq: &Sequences<F>,
    cot: &Cotangents<F>,
    k: usize,
) -> Result<TruncatedGradients<F>, KernelError> {
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
    let mut carry: Vec<Array3<F>> = initial_history(step, seq);
    let mut params: Vec<ArrayD<F>> = seq
        .params
        .iter()
        .zip(&step.params)
        .map(|(p, sig)| zeros(p.raw_dim(), &format!("the gradient of `{}`", sig.name)))
        .collect::<Result<_, MemoryError>>()?;
    let mut inputs: Vec<ArrayD<F>> = seq
        .inputs
        .iter()
        .zip(&step.inputs)
        .map(|(x, sig)| {
            let what = format!("the gradient of input `{}`", sig.name);
            zeros(IxDyn(x.shape()), &what)
        })
        .collect::<Result<_, MemoryError>>()?;
    let mut init = Vec::new();
    let mut outputs: Vec<ArrayD<F>> = output_buffers(step, &[t_len, batch], &seq.bindings)?;

    // The parameters are copied once and moved from chunk to chunk.
    let mut chunk_params = seq.params.clone();
    for c in 0..chunks {
        let map = ChunkMap::new(seq, c * k, k.min(t_len - c * k));
        let chunk = Sequences {
            params: std::mem::take(&mut chunk_params),
            inputs: seq
                .inputs
                .iter()
                .map(|x| {
                    let x = map.gather(x.view().into_dyn(), "a chunk of the inputs")?;
                    Ok(x.into_dimensionality::<Ix3>().expect("[T, B, n]"))
                })
                .collect::<Result<_, MemoryError>>()?,
            // The first chunk starts as the whole run does (supplied, learned
            // or zero); the others from the carried state.
            init: if c == 0 {
                seq.init.clone()
            } else {
                carry
                    .iter()
                    .map(|h| Some(h.index_axis(Axis(0), depth - 1).to_owned()))
                    .collect()
            },
            lengths: seq.lengths.as_ref().map(|_| map.lengths.clone()),
            reverse: seq.reverse,
            bindings: seq.bindings.clone(),
            steps: map.len,
            batch,
            fill: seq.fill.clone(),
        };
        let ends_here: Vec<bool> = end_chunk.iter().map(|&e| e == c).collect();
        let chunk_cot = Cotangents {
            outputs: cot
                .outputs
                .iter()
                .map(|o| {
                    o.as_ref()
                        .map(|o| map.gather(o.view(), "a chunk of the cotangents"))
                        .transpose()
                })
                .collect::<Result<_, MemoryError>>()?,
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

        let run = run_backward(step, forward, adjoint, &chunk, &chunk_cot, carry);
        chunk_params = chunk.params;
        let (traj, g) = run?;

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
            .iter()
            .map(|h| h.slice(s![h.len_of(Axis(0)) - depth.., .., ..]).to_owned())
            .collect();
    }
    let last = carry
        .iter()
        .map(|h| h.index_axis(Axis(0), depth - 1).to_owned())
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
    fn gather<F: Real>(&self, whole: ArrayViewD<F>, what: &str) -> Result<ArrayD<F>, MemoryError> {
        let mut shape = whole.shape().to_vec();
        shape[0] = self.len;
        let mut out = zeros(IxDyn(&shape), what)?;
        for (b, (&l, &o)) in self.lengths.iter().zip(&self.offset).enumerate() {
            for p in 0..l {
                out.index_axis_mut(Axis(0), p)
                    .index_axis_mut(Axis(0), b)
                    .assign(&whole.index_axis(Axis(0), o + p).index_axis(Axis(0), b));
            }
        }
        Ok(out)
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
