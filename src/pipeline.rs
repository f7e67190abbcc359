//! The passes in order, and the verifier after each one, as Cranelift's
//! `Context` runs its passes: a stage transforms a graph and returns it; only
//! this module decides what runs after what, and it checks every graph a pass
//! leaves, so that a broken invariant is reported by the pass that broke it.
//!
//! ```text
//! text ─ check ─→ step graph ─┬─ unroll ─→ unrolled graph ─ adjoint ─ simplify
//!                             └─ adjoint ─ simplify ─ split ─┬─ simplify ─→ forward step
//!                                                            └─ simplify ─→ adjoint step
//! ```
//!
//! The step graph that `run` executes is the checked one, unsimplified: a
//! rewrite such as `x·0 → 0` is exact for numbers but not for NaN, and `run`
//! promises to propagate NaN (the native back end compiles it with
//! `opt::share`, which is exact). [`hoisting`] splits a step for the native
//! back end: work over all T·B rows before the loop, and the loop's step.
//!
//! Enters: source text or a checked step graph. Leaves: verified graphs, or a
//! [`PassError`] naming the pass.

use crate::autodiff::{self, StepAdjoint};
use crate::graph::op::ShapeError;
use crate::graph::step::StepGraph;
use crate::graph::{Graph, VerifyError};
use crate::{opt, unroll};
use std::fmt;

pub use crate::check::{Checked, Failed, check_source};

/// The graph passes, by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pass {
    Unroll,
    Adjoint,
    Simplify,
    Split,
    Hoist,
}

impl fmt::Display for Pass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Pass::Unroll => "unroll",
            Pass::Adjoint => "adjoint",
            Pass::Simplify => "simplify",
            Pass::Split => "split",
            Pass::Hoist => "hoist",
        })
    }
}

/// Why a pass failed: an op's shape rule refused what the pass built, or the
/// graph it left breaks an invariant of the IR. Either is a compiler bug for
/// a checked cell, and says where it is.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum PassError {
    #[error("{pass}: {source}")]
    Shape {
        pass: Pass,
        #[source]
        source: ShapeError,
    },
    #[error("{pass} left an invalid graph: {source}")]
    Invalid {
        pass: Pass,
        #[source]
        source: VerifyError,
    },
}

fn verified(pass: Pass, g: Graph) -> Result<Graph, PassError> {
    g.verify()
        .map_err(|source| PassError::Invalid { pass, source })?;
    Ok(g)
}

fn shape(pass: Pass) -> impl Fn(ShapeError) -> PassError {
    move |source| PassError::Shape { pass, source }
}

/// The simplification passes.
pub fn simplify(g: &Graph) -> Result<Graph, PassError> {
    verified(
        Pass::Simplify,
        opt::simplify(g).map_err(shape(Pass::Simplify))?,
    )
}

/// The step graph unrolled over `steps` steps.
pub fn unrolled(step: &StepGraph, steps: usize) -> Result<Graph, PassError> {
    verified(
        Pass::Unroll,
        unroll::unroll(step, steps).map_err(shape(Pass::Unroll))?,
    )
}

/// The simplified adjoint of any graph, every result's cotangent batched.
pub fn adjoint_of(g: &Graph) -> Result<Graph, PassError> {
    let cotangent_types = autodiff::batched_cotangent_types(g);
    let adj = verified(
        Pass::Adjoint,
        autodiff::adjoint(g, &cotangent_types).map_err(shape(Pass::Adjoint))?,
    )?;
    simplify(&adj)
}

/// BPTT's two kernels for a step graph: adjoint, simplify, split into a
/// forward step that saves residuals and an adjoint step that reads them,
/// then simplify each.
pub fn differentiate_step(step: &StepGraph) -> Result<StepAdjoint, PassError> {
    differentiate_step_for(step, &vec![true; step.outputs.len()])
}

/// [`differentiate_step`] for a loss that reads only the outputs marked in
/// `outputs_in_loss` (every state's cotangent is always carried): the others
/// contribute nothing to the gradient, not even `0 · inf`.
pub fn differentiate_step_for(
    step: &StepGraph,
    outputs_in_loss: &[bool],
) -> Result<StepAdjoint, PassError> {
    let cotangent_types = autodiff::batched_cotangent_types(&step.graph);
    // The step's results are its new states, then its outputs.
    let mut seeded = vec![true; step.states.len()];
    seeded.extend_from_slice(outputs_in_loss);
    let adj = verified(
        Pass::Adjoint,
        autodiff::adjoint_seeded(&step.graph, &cotangent_types, &seeded)
            .map_err(shape(Pass::Adjoint))?,
    )?;
    let combined = simplify(&adj)?;
    let split = autodiff::split_step(step, combined).map_err(shape(Pass::Split))?;
    let forward = simplify(&verified(Pass::Split, split.forward)?)?;
    let backward = simplify(&verified(Pass::Split, split.backward)?)?;
    Ok(StepAdjoint {
        forward,
        backward,
        outputs_in_loss: outputs_in_loss.to_vec(),
        ..split
    })
}

/// The native back end's split of a step (`schedule::hoist`), with the
/// adjoint of its pre graph (for `grad`).
#[derive(Clone, Debug)]
pub struct Hoisting {
    pub split: crate::schedule::Hoisted,
    /// Arguments: the pre graph's, then a cotangent of each hoisted value;
    /// results: the cotangent of each of the pre graph's arguments.
    pub pre_adjoint: Graph,
}

/// [`Hoisting`] of `step`, or `None` when nothing is worth hoisting.
pub fn hoisting(step: &StepGraph) -> Result<Option<Hoisting>, PassError> {
    let Some(mut split) = crate::schedule::hoist(step).map_err(shape(Pass::Hoist))? else {
        return Ok(None);
    };
    split.pre = verified(Pass::Hoist, split.pre)?;
    split.step.graph = verified(Pass::Hoist, split.step.graph)?;
    let cotangent_types: Vec<_> = split
        .pre
        .results
        .iter()
        .map(|r| split.pre.node(r.node).ty.clone())
        .collect();
    let adj = verified(
        Pass::Adjoint,
        autodiff::adjoint(&split.pre, &cotangent_types).map_err(shape(Pass::Adjoint))?,
    )?;
    let pre_adjoint = simplify(&adj)?;
    Ok(Some(Hoisting { split, pre_adjoint }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::{NodeId, Output};

    #[test]
    fn an_invalid_graph_is_reported_by_the_pass_that_left_it() {
        let mut g = Graph::new(vec![]);
        g.results.push(Output {
            name: "y".into(),
            node: NodeId::new(3),
        });
        let e = verified(Pass::Split, g).unwrap_err();
        assert!(
            matches!(
                e,
                PassError::Invalid {
                    pass: Pass::Split,
                    ..
                }
            ),
            "{e:?}"
        );
        assert_eq!(
            e.to_string(),
            "split left an invalid graph: invalid graph at %3: result y names a missing node"
        );
    }

    #[test]
    fn bptt_kernels_are_verified_and_simplified() {
        let cell = "cell rnn(x: [X]) {
            state h: [H]
            param W, U, b
            h_t = tanh(W @ h[t-1] + U @ x + b)
            output h
        }";
        let step = check_source(cell).unwrap().step;
        let adj = differentiate_step(&step).unwrap();
        for g in [&adj.forward, &adj.backward, &adj.combined] {
            g.verify().unwrap();
            // Simplification has nothing left to do.
            let again = opt::simplify(g).unwrap();
            assert_eq!(again.op_count(), g.op_count());
        }
    }
}
