//! The work hoisted out of the time loop (`schedule::hoist`), run for all
//! T·B rows at once: before the loop, the hoisted values (`U·x_t` for every
//! step, one product); after BPTT, the gradients through them (parameter
//! gradients summed over all rows in one product, input gradients in
//! another).
//!
//! A kernel of the pre graph is made for a batch of T·B: an input `[T, B, n]`
//! is read as `[T·B, n]`, and each hoisted value comes back as `[T·B, m]`,
//! read by the loop's step as an input `[T, B, m]`.

use super::backend::{Backend, kernel};
use super::kernel::{KernelError, StepKernel};
use super::memory::zeros;
use super::types::{Gradients, Sequences};
use crate::graph::op::Real;
use crate::graph::step::{ArgKind, StepGraph};
use crate::schedule::Hoisted;
use ndarray::{Array3, ArrayD, ArrayViewD, Axis, Ix3, IxDyn};
use std::borrow::Cow;

/// Rows per call of a pre graph's kernel: its scratch holds this many rows of
/// every intermediate value, not T·B, and products of this many rows run at
/// full GEMM speed.
pub const CHUNK_ROWS: usize = 4096;

/// A graph's kernels over `rows` rows, called on at most [`CHUNK_ROWS`] at a
/// time (one kernel for whole chunks, one for the rest).
pub struct Chunked<'a, F> {
    full: Box<dyn StepKernel<F> + 'a>,
    rest: Option<Box<dyn StepKernel<F> + 'a>>,
    chunk: usize,
    rows: usize,
}

impl<'a, F: Real> Chunked<'a, F> {
    pub fn new(
        backend: Backend,
        g: &'a crate::graph::Graph,
        bindings: &crate::graph::dim::Bindings,
        rows: usize,
    ) -> Result<Chunked<'a, F>, KernelError> {
        let chunk = rows.clamp(1, CHUNK_ROWS);
        let rest = rows % chunk;
        Ok(Chunked {
            full: kernel(backend, g, bindings, chunk)?,
            rest: match rest {
                0 => None,
                r => Some(kernel(backend, g, bindings, r)?),
            },
            chunk,
            rows,
        })
    }

    /// The chunks: (first row, rows).
    fn chunks(&self) -> Vec<(usize, usize)> {
        (0..self.rows)
            .step_by(self.chunk)
            .map(|r0| (r0, self.chunk.min(self.rows - r0)))
            .collect()
    }

    /// As [`StepKernel::parameters_changed`], for both kernels.
    fn parameters_changed(&mut self) {
        self.full.parameters_changed();
        if let Some(rest) = &mut self.rest {
            rest.parameters_changed();
        }
    }

    /// The kernel for a chunk of `n` rows.
    fn for_rows(&mut self, n: usize) -> &mut (dyn StepKernel<F> + 'a) {
        if n == self.chunk {
            self.full.as_mut()
        } else {
            self.rest.as_mut().expect("a kernel for the rest").as_mut()
        }
    }
}

/// Rows `r0..r0 + n` of a `[rows, ...]` view (a batched argument), or the
/// whole view (an unbatched one).
fn rows_of<'v, F>(v: &ArrayViewD<'v, F>, batched: bool, r0: usize, n: usize) -> ArrayViewD<'v, F> {
    if batched {
        v.clone().slice_axis_move(Axis(0), (r0..r0 + n).into())
    } else {
        v.clone()
    }
}

/// The step the time loop runs, and the sequences it runs on: with a split
/// (`h`), the loop's step, over `seq` and every hoisted value computed for
/// all rows on `backend`; without, `step` over `seq`.
pub fn loop_of<'a, F: Real>(
    backend: Backend,
    step: &'a StepGraph,
    h: Option<&'a Hoisted>,
    seq: &'a Sequences<F>,
) -> Result<(&'a StepGraph, Cow<'a, Sequences<F>>), KernelError> {
    match h {
        Some(h) => {
            let mut pre = Chunked::new(backend, &h.pre, &seq.bindings, seq.steps * seq.batch)?;
            Ok((&h.step, Cow::Owned(with_hoisted(h, &mut pre, seq)?)))
        }
        None => Ok((step, Cow::Borrowed(seq))),
    }
}

/// The pre graph's arguments: parameters as they are, inputs as `[T·B, n]`.
fn pre_args<'a, F: Real>(
    h: &Hoisted,
    seq: &'a Sequences<F>,
    inputs: &'a [Array3<F>],
) -> Vec<ArrayViewD<'a, F>> {
    h.pre_args
        .iter()
        .map(|k| match *k {
            ArgKind::Param(p) => seq.params[p].view(),
            ArgKind::Input(i) => {
                let x = &inputs[i];
                let (t, b, n) = x.dim();
                x.view()
                    .into_shape_with_order((t * b, n))
                    .expect("inputs are contiguous")
                    .into_dyn()
            }
            ArgKind::State { .. } => unreachable!("the pre graph reads no state"),
        })
        .collect()
}

/// `seq` with every hoisted value, for every step, as an input after the
/// cell's own: what the loop's step (`h.step`) runs on.
pub fn with_hoisted<F: Real>(
    h: &Hoisted,
    pre: &mut Chunked<'_, F>,
    seq: &Sequences<F>,
) -> Result<Sequences<F>, KernelError> {
    pre.parameters_changed();
    let (t, b) = (seq.steps, seq.batch);
    let mut values: Vec<ArrayD<F>> = h
        .pre
        .results
        .iter()
        .map(|r| {
            let m = super::types::size(&h.pre.node(r.node).ty.dims[0], &seq.bindings);
            zeros(IxDyn(&[t * b, m]), &format!("hoisted value `{}`", r.name))
        })
        .collect::<Result<_, _>>()?;
    {
        let args = pre_args(h, seq, &seq.inputs);
        let batched: Vec<bool> = h.pre.args.iter().map(|a| a.ty.batched).collect();
        for (r0, n) in pre.chunks() {
            let chunk_args: Vec<_> = args
                .iter()
                .zip(&batched)
                .map(|(a, &bt)| rows_of(a, bt, r0, n))
                .collect();
            let mut res: Vec<_> = values
                .iter_mut()
                .map(|v| v.slice_axis_mut(Axis(0), (r0..r0 + n).into()))
                .collect();
            pre.for_rows(n).run(&chunk_args, &mut res)?;
        }
    }
    // A sequence past its length reads zeros for its inputs, so the step
    // computes a hoisted value from zero inputs there: so must the loop's
    // step read (a `1 + (U·x)²` is 1 there, not 0). One row, for all.
    let mut fill = vec![None; seq.inputs.len()];
    if seq
        .lengths
        .as_ref()
        .is_some_and(|l| l.iter().any(|&l| l < t))
    {
        let zero_inputs: Vec<Array3<F>> = seq
            .inputs
            .iter()
            .map(|x| Array3::zeros((1, 1, x.dim().2)))
            .collect();
        let mut one = kernel::<F>(Backend::Interp, &h.pre, &seq.bindings, 1)?;
        let mut rows: Vec<ArrayD<F>> = one
            .result_shapes()
            .iter()
            .map(|sh| ArrayD::zeros(IxDyn(sh)))
            .collect();
        let args = pre_args(h, seq, &zero_inputs);
        let mut res: Vec<_> = rows.iter_mut().map(|v| v.view_mut()).collect();
        one.run(&args, &mut res)?;
        drop(res);
        for r in rows {
            let n = r.len();
            fill.push(Some(r.into_shape_with_order(n).expect("one row")));
        }
    }
    let mut inputs = seq.inputs.clone();
    for v in values {
        let m = v.shape()[1];
        inputs.push(
            v.into_shape_with_order(IxDyn(&[t, b, m]))
                .expect("T·B rows")
                .into_dimensionality::<Ix3>()
                .expect("three axes"),
        );
    }
    Ok(Sequences {
        inputs,
        fill,
        ..seq.clone()
    })
}

/// The gradients of the cell from those of its loop's step (`g`, whose
/// inputs past the cell's own are the gradients of the hoisted values): the
/// adjoint of the pre graph, run once over all rows, adds what flows through
/// the hoisted values to the parameters' and inputs' gradients.
pub fn through_hoisted<F: Real>(
    h: &Hoisted,
    pre_adjoint: &mut Chunked<'_, F>,
    seq: &Sequences<F>,
    mut g: Gradients<F>,
) -> Result<Gradients<F>, KernelError> {
    pre_adjoint.parameters_changed();
    let (t, b) = (seq.steps, seq.batch);
    // Rows past a sequence's length have a zero cotangent; their inputs are
    // zeroed too, so that no `0·inf` there reaches a parameter's gradient
    // (the loop never reads them).
    let masked: Option<Vec<Array3<F>>> = seq.lengths.as_ref().map(|lengths| {
        seq.inputs
            .iter()
            .map(|x| {
                let mut x = x.clone();
                for (bi, &len) in lengths.iter().enumerate() {
                    for ti in len..t {
                        x.index_axis_mut(Axis(0), ti)
                            .index_axis_mut(Axis(0), bi)
                            .fill(F::zero());
                    }
                }
                x
            })
            .collect()
    });
    let own = h.own_inputs;
    let hoisted_grads = g.inputs.split_off(own);
    // Per pre argument: a parameter's gradient summed over the chunks, an
    // input's `[T·B, n]` written chunk by chunk.
    let rows = t * b;
    let mut res: Vec<ArrayD<F>> = h
        .pre_args
        .iter()
        .zip(&h.pre.args)
        .map(|(k, a)| {
            let mut shape =
                a.ty.array_shape(rows, &seq.bindings)
                    .map_err(|message| KernelError::Size {
                        name: a.name.clone(),
                        message,
                    })?;
            if matches!(k, ArgKind::Param(_)) {
                shape = a.ty.array_shape(1, &seq.bindings).unwrap_or(shape);
            }
            Ok(zeros(
                IxDyn(&shape),
                "gradients through the hoisted values",
            )?)
        })
        .collect::<Result<_, KernelError>>()?;
    {
        let inputs = masked.as_deref().unwrap_or(&seq.inputs);
        let mut args = pre_args(h, seq, inputs);
        let mut batched: Vec<bool> = h.pre.args.iter().map(|a| a.ty.batched).collect();
        for gh in &hoisted_grads {
            let m = gh.dim().2;
            args.push(
                gh.view()
                    .into_shape_with_order((t * b, m))
                    .expect("contiguous")
                    .into_dyn(),
            );
            batched.push(true);
        }
        let is_param: Vec<bool> = h
            .pre_args
            .iter()
            .map(|k| matches!(k, ArgKind::Param(_)))
            .collect();
        let mut sums: Vec<ArrayD<F>> = res
            .iter()
            .zip(&is_param)
            .filter(|(_, p)| **p)
            .map(|(r, _)| ArrayD::zeros(r.raw_dim()))
            .collect();
        for (r0, n) in pre_adjoint.chunks() {
            let chunk_args: Vec<_> = args
                .iter()
                .zip(&batched)
                .map(|(a, &bt)| rows_of(a, bt, r0, n))
                .collect();
            {
                let mut sum_iter = sums.iter_mut();
                let mut views: Vec<_> = res
                    .iter_mut()
                    .zip(&is_param)
                    .map(|(r, &p)| {
                        if p {
                            sum_iter.next().expect("one per parameter").view_mut()
                        } else {
                            r.slice_axis_mut(Axis(0), (r0..r0 + n).into())
                        }
                    })
                    .collect();
                pre_adjoint.for_rows(n).run(&chunk_args, &mut views)?;
            }
            // Chunk sums added in order: the same result for any chunking
            // of the same rows is not promised, for one chunk size it is.
            let mut sum_iter = sums.iter();
            for (r, &p) in res.iter_mut().zip(&is_param) {
                if p {
                    *r += sum_iter.next().expect("one per parameter");
                }
            }
        }
    }
    for (k, r) in h.pre_args.iter().zip(res) {
        match *k {
            ArgKind::Param(p) => g.params[p] += &r,
            ArgKind::Input(i) => {
                let n = r.shape()[1];
                let r = r
                    .into_shape_with_order(IxDyn(&[t, b, n]))
                    .expect("T·B rows")
                    .into_dimensionality::<Ix3>()
                    .expect("three axes");
                g.inputs[i] += &r;
            }
            ArgKind::State { .. } => {}
        }
    }
    Ok(g)
}
