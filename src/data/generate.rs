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
use crate::runtime::types::size;

/// Generated arrays are for trying a cell: sizes that cannot be allocated are
/// refused rather than aborting.
const LIMIT: usize = 1 << 30;

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
        "the generated data would hold {total} numbers (more than {LIMIT}); choose smaller sizes"
    )]
    TooLarge { total: usize },
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
    check_size(
        step.params
            .iter()
            .map(|p| p.dims.iter().map(|x| size(x, bindings)).product()),
    )?;
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
    check_size(step.inputs.iter().map(|i| {
        steps
            .saturating_mul(batch)
            .saturating_mul(size(&i.size, bindings))
    }))?;
    Ok(step
        .inputs
        .iter()
        .map(|i| {
            let shape = [steps, batch, size(&i.size, bindings)];
            (i.name.clone(), rng.normal::<F>(&shape))
        })
        .collect())
}

fn check_size(counts: impl Iterator<Item = usize>) -> Result<(), GenerateError> {
    let total = counts.fold(0usize, |a, c| a.saturating_add(c));
    if total > LIMIT {
        return Err(GenerateError::TooLarge { total });
    }
    Ok(())
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
