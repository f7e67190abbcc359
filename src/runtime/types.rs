//! The runtime's own types: what a run over sequences takes (checked
//! sequences), what the forward pass gives (a trajectory), and what BPTT takes
//! and gives (cotangents, gradients). The time-loop drivers and the kernels
//! read these; loading (`data`) and commands (`cli`) build them.

use super::memory::{MemoryError, zeros};
use crate::graph::dim::{Bindings, Dim};
use crate::graph::step::StepGraph;
use ndarray::{Array2, Array3, ArrayD, ArrayView2, Axis, IxDyn};

/// Everything a run over sequences needs, checked against the cell.
#[derive(Clone, Debug)]
pub struct Sequences<F> {
    /// By parameter index.
    pub params: Vec<ArrayD<F>>,
    /// By input index, `[T, B, n]`.
    pub inputs: Vec<Array3<F>>,
    /// By state index: an initial value given at run time, `[B, n]`.
    pub init: Vec<Option<Array2<F>>>,
    /// Each sequence's length; `None` means all are `T` long.
    pub lengths: Option<Vec<usize>>,
    pub reverse: bool,
    pub bindings: Bindings,
    pub steps: usize,
    pub batch: usize,
    /// By input: the row a sequence past its length reads, when not zeros (a
    /// hoisted value's, which is what the step computes from a zero input);
    /// empty when every input reads zeros there.
    pub fill: Vec<Option<ndarray::Array1<F>>>,
}

impl<F> Sequences<F> {
    pub fn length(&self, b: usize) -> usize {
        self.lengths.as_ref().map_or(self.steps, |l| l[b])
    }
}

/// A dimension's value under the bindings. Every size of the cell is bound
/// and checked (at least 1, within 64 bits) by `data::prepare` before a run;
/// the 0 for a size that is not is never reached, and would show as an
/// empty array rather than a crash.
pub fn size(d: &Dim, bindings: &Bindings) -> usize {
    d.eval(bindings).map_or(0, |v| v.max(0) as usize)
}

/// Output `o`'s shape with `leading` axes before it: `[T, B, ...]` for a
/// whole run (`leading = [T, B]`), `[B, ...]` for one step.
pub fn output_shape(
    step: &StepGraph,
    o: usize,
    leading: &[usize],
    bindings: &Bindings,
) -> Vec<usize> {
    let mut shape = leading.to_vec();
    shape.extend(step.outputs[o].ty.dims.iter().map(|d| size(d, bindings)));
    shape
}

/// A zero buffer per output, of [`output_shape`].
pub fn output_buffers<F: Clone + num_traits::Zero>(
    step: &StepGraph,
    leading: &[usize],
    bindings: &Bindings,
) -> Result<Vec<ArrayD<F>>, MemoryError> {
    (0..step.outputs.len())
        .map(|o| {
            let shape = output_shape(step, o, leading, bindings);
            zeros(IxDyn(&shape), &format!("output `{}`", step.outputs[o].name))
        })
        .collect()
}

/// By residual (an extra result of the forward step, which BPTT's adjoint
/// step reads back): its value at every iteration, `[T, ...]`.
pub type Residuals<F> = Vec<ArrayD<F>>;

/// What a forward run produces.
#[derive(Clone, Debug)]
pub struct Trajectory<F> {
    /// By output: `[T, B, ...]` at each step's own time position.
    pub outputs: Vec<ArrayD<F>>,
    /// By state: the value after the last valid step, `[B, n]`.
    pub last: Vec<Array2<F>>,
    /// By state, `[K + T, B, n]` with `K = max(1, max lag)`: at `K + i` the
    /// value after iteration `i`; at `K - 1` the initial value, and below it
    /// zeros (or, for a run continuing an earlier one, what it ended with).
    pub history: Vec<Array3<F>>,
}

impl<F> Trajectory<F> {
    /// The value of state `s` that iteration `i` reads `lag` steps back.
    pub fn read(&self, s: usize, i: usize, lag: u32, k: usize) -> ArrayView2<'_, F> {
        self.history[s].index_axis(Axis(0), k + i - lag as usize)
    }
}

/// Cotangents of what a run produced: per output `[T, B, ...]`, per state its
/// final value `[B, n]`; `None` is zero.
#[derive(Clone, Debug)]
pub struct Cotangents<F> {
    pub outputs: Vec<Option<ArrayD<F>>>,
    pub last: Vec<Option<Array2<F>>>,
}

/// Gradients of the loss `Σ ⟨cotangent, value⟩`.
#[derive(Clone, Debug)]
pub struct Gradients<F> {
    /// By parameter (a learned initial state `NAME_0` among them).
    pub params: Vec<ArrayD<F>>,
    /// By input, `[T, B, n]`.
    pub inputs: Vec<Array3<F>>,
    /// By state: the gradient of its initial value, `[B, n]`.
    pub init: Vec<Array2<F>>,
}
