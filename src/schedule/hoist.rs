//! Hoisting: the step's work that reads inputs but no state, computed for all
//! T·B rows at once before the time loop.
//!
//! A value is hoisted when it depends on inputs (and parameters) only, some
//! node that reads a state uses it, it is a batched vector, and a matrix
//! product is among what it is computed from (hoisting a bias add alone would
//! only cost memory). The step splits in two:
//!
//! - **pre**, a graph whose arguments are the step's parameters and inputs and
//!   whose results are the hoisted values. Its batch is every row of the
//!   sequence (T·B): a per-step product `U·x_t` becomes one product of `U`
//!   with all T·B inputs (one GEMM, the first idea of every fast RNN);
//! - **the loop step**, the step graph with each hoisted value an input of its
//!   own (after the cell's inputs), read at every step like `x_t`.
//!
//! Backward, the loop step's BPTT gives the gradient of each hoisted value at
//! every step as an input gradient; the adjoint of `pre`, run once over all
//! rows, turns it into parameter gradients (`Σ_t g_t ⊗ x_t` as one GEMM
//! after the loop) and input gradients (one GEMM for all steps).
//!
//! Always done when something qualifies: hoisting costs T·B·n numbers per
//! hoisted value and saves the per-step product at every batch size; at
//! large batch the per-step product would be efficient too, but the hoisted
//! one is never slower (the same FLOPs in one larger GEMM).

use super::classify::{TimeDependence, classify};
use crate::graph::dim::Type;
use crate::graph::op::{Op, ShapeError};
use crate::graph::step::{ArgKind, InputSig, StepGraph};
use crate::graph::{Arg, Builder, Graph, NodeId, Output};
use crate::span::Span;

/// A step split into work before the loop and the loop's step.
#[derive(Clone, Debug)]
pub struct Hoisted {
    /// Arguments: the step's parameters, then its inputs (in the step's
    /// argument order); results: the hoisted values.
    pub pre: Graph,
    /// For each argument of `pre`, the step's argument it is.
    pub pre_args: Vec<ArgKind>,
    /// The step with the hoisted values as inputs `inputs.len()..` of its own.
    pub step: StepGraph,
    /// How many inputs the original step has (the loop step's first ones).
    pub own_inputs: usize,
}

fn is_product(op: &Op) -> bool {
    matches!(op, Op::MatVec | Op::MatTVec | Op::Outer)
}

/// Splits `step`, or `None` when nothing is worth hoisting.
pub fn hoist(step: &StepGraph) -> Result<Option<Hoisted>, ShapeError> {
    let g = &step.graph;
    let classes = classify(step);
    let dep = |n: NodeId| classes.dependence[n.index()];
    // Whether a product of inputs is among what an input-only node is made of.
    let mut has_product = vec![false; g.len()];
    for n in g.node_ids() {
        if dep(n) != TimeDependence::Input {
            continue;
        }
        has_product[n.index()] =
            is_product(&g.node(n).op) || g.operands(n).iter().any(|o| has_product[o.index()]);
    }
    let hoisted: Vec<NodeId> = g
        .node_ids()
        .filter(|&n| {
            let node = g.node(n);
            dep(n) == TimeDependence::Input
                && has_product[n.index()]
                && node.ty.batched
                && node.ty.rank() == 1
                && g.dag
                    .neighbors_directed(n, petgraph::Direction::Outgoing)
                    .any(|u| dep(u) == TimeDependence::State)
        })
        .collect();
    if hoisted.is_empty() {
        return Ok(None);
    }

    // pre: parameters and inputs, then the hoisted values' cones.
    let pre_args: Vec<ArgKind> = step
        .arg_kinds
        .iter()
        .copied()
        .filter(|k| !matches!(k, ArgKind::State { .. }))
        .collect();
    let mut b = Builder::new(
        pre_args
            .iter()
            .map(|k| {
                let a = step.arg_kinds.iter().position(|x| x == k).expect("an arg");
                g.args[a].clone()
            })
            .collect(),
    );
    let mut map: Vec<Option<NodeId>> = vec![None; g.len()];
    for n in g.node_ids() {
        let node = g.node(n);
        if dep(n) == TimeDependence::State {
            continue;
        }
        let id = match node.op {
            Op::Arg(a) => {
                let i = pre_args
                    .iter()
                    .position(|k| *k == step.arg_kinds[a])
                    .expect("not a state");
                b.arg(i)
            }
            _ => copy_node(g, n, &mut b, &map)?,
        };
        map[n.index()] = Some(id);
    }
    let names: Vec<String> = hoisted
        .iter()
        .enumerate()
        .map(|(k, n)| match &g.node(*n).label {
            Some(l) => format!("{l}~pre"),
            None => format!("pre{k}"),
        })
        .collect();
    let mut pre = b.finish();
    pre.results = hoisted
        .iter()
        .zip(&names)
        .map(|(n, name)| Output {
            name: name.clone(),
            node: map[n.index()].expect("hoisted nodes are input-only"),
        })
        .collect();

    // The loop step: arguments as before, with the hoisted values as inputs
    // after the cell's own.
    let own_inputs = step.inputs.len();
    let first_state = step
        .arg_kinds
        .iter()
        .position(|k| matches!(k, ArgKind::State { .. }))
        .unwrap_or(step.arg_kinds.len());
    let mut arg_kinds = step.arg_kinds[..first_state].to_vec();
    let mut args: Vec<Arg> = g.args[..first_state].to_vec();
    let mut inputs = step.inputs.clone();
    for (k, (n, name)) in hoisted.iter().zip(&names).enumerate() {
        let ty = &g.node(*n).ty;
        arg_kinds.push(ArgKind::Input(own_inputs + k));
        args.push(Arg {
            name: format!("{name}[t]"),
            ty: ty.clone(),
        });
        inputs.push(InputSig {
            name: name.clone(),
            size: ty.dims[0].clone(),
            span: Span { start: 0, end: 0 },
        });
    }
    arg_kinds.extend_from_slice(&step.arg_kinds[first_state..]);
    args.extend_from_slice(&g.args[first_state..]);
    let shift = hoisted.len();
    let mut b = Builder::new(args);
    let mut map: Vec<Option<NodeId>> = vec![None; g.len()];
    for n in g.node_ids() {
        let node = g.node(n);
        let id = if let Some(k) = hoisted.iter().position(|h| *h == n) {
            b.arg(first_state + k)
        } else if let Op::Arg(a) = node.op {
            b.arg(if a >= first_state { a + shift } else { a })
        } else {
            // Everything else as it was: input-only work left in the loop, and
            // the hoisted values' cones, dead now, for simplification to drop.
            copy_node(g, n, &mut b, &map)?
        };
        map[n.index()] = Some(id);
    }
    let mut loop_graph = b.finish();
    loop_graph.results = g
        .results
        .iter()
        .map(|r| Output {
            name: r.name.clone(),
            node: map[r.node.index()].expect("every node mapped"),
        })
        .collect();
    let loop_step = StepGraph {
        inputs,
        arg_kinds,
        graph: loop_graph,
        ..step.clone()
    };
    Ok(Some(Hoisted {
        pre,
        pre_args,
        step: loop_step,
        own_inputs,
    }))
}

/// Node `n` of `g` added to `b` over its operands' copies (`map`), label kept.
fn copy_node(
    g: &Graph,
    n: NodeId,
    b: &mut Builder,
    map: &[Option<NodeId>],
) -> Result<NodeId, ShapeError> {
    let node = g.node(n);
    let ops: Vec<NodeId> = g
        .operands(n)
        .iter()
        .map(|o| map[o.index()].expect("operands come first"))
        .collect();
    let id = b.node(node.op.clone(), &ops)?;
    if let Some(l) = &node.label {
        b.set_label(id, l.clone());
    }
    Ok(id)
}

/// The type of a hoisted value's gradient (as BPTT gives an input's).
pub fn hoisted_type(h: &Hoisted, k: usize) -> Type {
    h.pre.node(h.pre.results[k].node).ty.clone()
}
