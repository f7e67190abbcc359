//! Generated data, for trying a cell without files: whatever parameters or
//! inputs were not given are drawn from one seeded [`SplitMix64`], parameters
//! first, then inputs, so a seed always gives the same arrays.
//!
//! The initialisation policy: each parameter is uniform in `±1/√fan`, with
//! `fan` its last axis (the length of the vector it multiplies); inputs are
//! standard normal, `[T, B, n]`. Generating needs every dimension bound up
//! front, from `-D` and from the arrays that were given.

use super::bind::{self, BindError, Constraint};
use super::matching::Named;
use crate::graph::dim::Bindings;
use crate::graph::op::{Op, Real};
use crate::graph::step::StepGraph;
use crate::rng::SplitMix64;
use crate::runtime::memory::bytes;
use crate::runtime::types::size;

/// Generated arrays are for trying a cell: more bytes than this (4.3 GB) are
/// refused before any is drawn, rather than filling the memory for minutes.
/// Whether the whole run fits the memory is `runtime::memory`'s estimate.
const LIMIT: u128 = 1 << 32;

#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum GenerateError {
    #[error(
        "to generate random {what}, bind every dimension: missing {}",
        missing.iter().map(|m| format!("-D {m}=SIZE")).collect::<Vec<_>>().join(" ")
    )]
    Unbound {
        /// `"parameters"` or `"inputs"`: what is being generated.
        what: &'static str,
        missing: Vec<String>,
    },
    #[error(
        "the generated data would take {} (more than the {} generated data may take); choose smaller sizes",
        bytes(*total),
        bytes(LIMIT)
    )]
    TooLarge { total: u128 },
    #[error("{what} would be 0 ({flag} 0): sizes are at least 1")]
    NotPositive {
        /// `"the sequence length"` or `"the batch"`.
        what: &'static str,
        flag: &'static str,
    },
    #[error(transparent)]
    Bind(#[from] BindError),
}

/// How much input to generate, and from which seed.
#[derive(Clone, Copy, Debug)]
pub struct Generate {
    pub steps: usize,
    pub batch: usize,
    pub seed: u64,
}

/// The parameters and inputs of a run: those given, and the rest generated.
pub fn fill_missing<F: Real>(
    step: &StepGraph,
    defines: &Bindings,
    params: Option<Named<F>>,
    inputs: Option<Named<F>>,
    how: Generate,
) -> Result<(Named<F>, Named<F>), GenerateError> {
    let mut rng = SplitMix64::new(how.seed);
    let bindings = if params.is_none() || inputs.is_none() {
        generation_bindings(step, defines, params.as_ref(), inputs.as_ref())?
    } else {
        Bindings::new()
    };
    // Parameters and inputs together, before either is drawn.
    let mut counts: Vec<u128> = Vec::new();
    if params.is_none() {
        counts.extend(param_counts(step, &bindings));
    }
    if inputs.is_none() {
        counts.extend(input_counts(step, &bindings, how.steps, how.batch));
    }
    check_size::<F>(counts.into_iter())?;
    let params = match params {
        Some(p) => p,
        None => random_params(step, &bindings, &mut rng)?,
    };
    let inputs = match inputs {
        Some(x) => x,
        None => random_inputs(step, &bindings, how.steps, how.batch, &mut rng)?,
    };
    Ok((params, inputs))
}

/// Every dimension's size for generating: from `-D`, from the arrays given,
/// and 1 for a free size that only unused parameters have (nothing fixes it).
pub fn generation_bindings<F: Real>(
    step: &StepGraph,
    defines: &Bindings,
    params: Option<&Named<F>>,
    inputs: Option<&Named<F>>,
) -> Result<Bindings, GenerateError> {
    let mut defs = defines.clone();
    for dim in step
        .dims
        .iter()
        .filter(|x| x.free && !defines.contains_key(&x.name))
    {
        let only_unused = step.params.iter().enumerate().all(|(p, sig)| {
            !sig.dims.iter().any(|x| x.symbols().any(|s| s == dim.name)) || !param_used(step, p)
        });
        if only_unused {
            defs.insert(dim.name.clone(), 1);
        }
    }
    let mut constraints = Vec::new();
    for (name, a) in params.into_iter().flatten() {
        if let Some(p) = step.param_index(name)
            && a.ndim() == step.params[p].dims.len()
        {
            for (axis, x) in step.params[p].dims.iter().enumerate() {
                constraints.push(Constraint {
                    expr: x.clone(),
                    actual: a.shape()[axis],
                    source: format!("parameter `{name}`"),
                });
            }
        }
    }
    for (name, a) in inputs.into_iter().flatten() {
        if let (Some(i), Some(&n)) = (
            step.inputs.iter().position(|s| s.name == *name),
            a.shape().last(),
        ) {
            constraints.push(Constraint {
                expr: step.inputs[i].size.clone(),
                actual: n,
                source: format!("input `{name}`"),
            });
        }
    }
    let b = bind::bind_step(step, &defs, &constraints, false)?;
    let missing: Vec<String> = step
        .dims
        .iter()
        .filter(|x| !b.contains_key(&x.name))
        .map(|x| x.name.clone())
        .collect();
    if !missing.is_empty() {
        return Err(GenerateError::Unbound {
            what: if params.is_none() {
                "parameters"
            } else {
                "inputs"
            },
            missing,
        });
    }
    Ok(b)
}

/// Every parameter, uniform in `±1/√fan` with `fan` its last axis.
pub fn random_params<F: Real>(
    step: &StepGraph,
    bindings: &Bindings,
    rng: &mut SplitMix64,
) -> Result<Named<F>, GenerateError> {
    check_size::<F>(param_counts(step, bindings))?;
    Ok(step
        .params
        .iter()
        .map(|p| {
            let shape: Vec<usize> = p.dims.iter().map(|x| size(x, bindings)).collect();
            let fan = shape.last().copied().unwrap_or(1).max(1) as f64;
            let k = 1.0 / fan.sqrt();
            (p.name.clone(), rng.uniform::<F>(&shape, k))
        })
        .collect())
}

/// Every input, standard normal, `[steps, batch, n]`.
pub fn random_inputs<F: Real>(
    step: &StepGraph,
    bindings: &Bindings,
    steps: usize,
    batch: usize,
    rng: &mut SplitMix64,
) -> Result<Named<F>, GenerateError> {
    // As `-D H=0` is refused: an empty run is never what was meant.
    if steps == 0 {
        return Err(GenerateError::NotPositive {
            what: "the sequence length",
            flag: "--seq",
        });
    }
    if batch == 0 {
        return Err(GenerateError::NotPositive {
            what: "the batch",
            flag: "--batch",
        });
    }
    check_size::<F>(input_counts(step, bindings, steps, batch))?;
    Ok(step
        .inputs
        .iter()
        .map(|i| {
            let shape = [steps, batch, size(&i.size, bindings)];
            (i.name.clone(), rng.normal::<F>(&shape))
        })
        .collect())
}

/// Refuses arrays of `counts` numbers of `F` that would take more than [`LIMIT`]
/// bytes; the arithmetic saturates, so a size too large to count is refused too.
fn check_size<F>(counts: impl Iterator<Item = u128>) -> Result<(), GenerateError> {
    let numbers = counts.fold(0u128, |a, c| a.saturating_add(c));
    let total = numbers.saturating_mul(std::mem::size_of::<F>() as u128);
    if total > LIMIT {
        return Err(GenerateError::TooLarge { total });
    }
    Ok(())
}

/// How many numbers each parameter holds.
fn param_counts(step: &StepGraph, bindings: &Bindings) -> impl Iterator<Item = u128> {
    step.params.iter().map(move |p| {
        p.dims
            .iter()
            .fold(1u128, |a, x| a.saturating_mul(size(x, bindings) as u128))
    })
}

/// How many numbers each input of `steps` × `batch` holds.
fn input_counts(
    step: &StepGraph,
    bindings: &Bindings,
    steps: usize,
    batch: usize,
) -> impl Iterator<Item = u128> {
    step.inputs.iter().map(move |i| {
        (steps as u128 * batch as u128).saturating_mul(size(&i.size, bindings) as u128)
    })
}

/// Whether the step reads parameter `p`.
fn param_used(step: &StepGraph, p: usize) -> bool {
    let arg = step.param_arg(p);
    step.graph.node_ids().any(|n| {
        step.graph.node(n).op == Op::Arg(arg)
            && step
                .graph
                .dag
                .neighbors_directed(n, petgraph::Direction::Outgoing)
                .next()
                .is_some()
    })
}
