//! Random data for a checked cell: parameters, input sequences and states, with
//! the shapes a binding of the cell's dimensions gives. Callers draw them in
//! that order from one generator, so that a seed names one whole problem.

use cellc::graph::dim::{Bindings, Dim};
use cellc::graph::step::StepGraph;
use cellc::rng::SplitMix64;
use ndarray::ArrayD;

pub type Named = Vec<(String, ArrayD<f64>)>;

/// The sizes of `dims` under `b`; every dimension must be bound.
pub fn shape(dims: &[Dim], b: &Bindings) -> Vec<usize> {
    dims.iter().map(|d| size(d, b)).collect()
}

pub fn size(d: &Dim, b: &Bindings) -> usize {
    d.eval(b).expect("every dimension is bound") as usize
}

/// Every parameter, uniform in [-scale, scale).
pub fn params(step: &StepGraph, b: &Bindings, rng: &mut SplitMix64, scale: f64) -> Named {
    step.params
        .iter()
        .map(|p| (p.name.clone(), rng.uniform(&shape(&p.dims, b), scale)))
        .collect()
}

/// Every input as a `[t, batch, n]` sequence, uniform in [-1, 1).
pub fn inputs(
    step: &StepGraph,
    b: &Bindings,
    rng: &mut SplitMix64,
    t: usize,
    batch: usize,
) -> Named {
    step.inputs
        .iter()
        .map(|i| {
            (
                i.name.clone(),
                rng.uniform(&[t, batch, size(&i.size, b)], 1.0),
            )
        })
        .collect()
}

/// A `[batch, n]` value for every state, uniform in [-scale, scale).
pub fn states(
    step: &StepGraph,
    b: &Bindings,
    rng: &mut SplitMix64,
    batch: usize,
    scale: f64,
) -> Named {
    step.states
        .iter()
        .map(|s| {
            (
                s.name.clone(),
                rng.uniform(&[batch, size(&s.size, b)], scale),
            )
        })
        .collect()
}
