//! Reverse-mode differentiation: a graph → its adjoint graph, in the same IR.
//!
//! [`adjoint`] differentiates any graph: it copies the forward nodes, then walks
//! them from the last to the first, asking each op for its vector–Jacobian
//! product ([`crate::graph::op::Op::vjp`]) and summing the cotangents a value
//! receives from each of its uses (a state read by several equations collects
//! gradient from each). The result takes the forward arguments plus one
//! cotangent per forward result, and returns one cotangent per forward argument.
//!
//! [`split_step`] takes the adjoint of a cell's step graph, for
//! backpropagation through time, and splits it in two:
//!
//! * the **forward step** (the step graph plus *residuals*: the forward values
//!   the backward step needs, as extra results), run by the forward pass;
//! * the **adjoint step**, which takes the step's arguments, that step's saved
//!   residuals and the cotangents of the step's results (new states, outputs) and
//!   yields the cotangents of parameters, inputs and every state read `h_{t-k}`.
//!   The BPTT driver runs it from the last step to the first.
//!
//! Storing residuals rather than recomputing the forward step inside the
//! adjoint trades memory for time: per step it keeps Σ residual sizes × B
//! numbers (listed by `cellc graph --grad`), and the backward pass does no
//! forward work again.

use crate::graph::dim::Type;
use crate::graph::op::{Op, ShapeError};
use crate::graph::step::StepGraph;
use crate::graph::{Arg, Builder, Graph, NodeId, Output};
use std::collections::{HashMap, HashSet};

/// The adjoint of `g`: arguments are `g`'s arguments, then a cotangent for each
/// of `g`'s results (of type `cotangent_types[i]`, which may add a batch axis to
/// an unbatched result); results are the cotangents of `g`'s arguments, in order.
pub fn adjoint(g: &Graph, cotangent_types: &[Type]) -> Result<Graph, ShapeError> {
    adjoint_seeded(g, cotangent_types, &vec![true; g.results.len()])
}

/// [`adjoint`] with only the results marked in `seeded` differentiated: the
/// others keep their cotangent argument but nothing reads it, so a result
/// outside the loss adds exactly nothing, even where its value is infinite
/// (where multiplying a zero cotangent in would make `0 · inf = NaN`).
pub fn adjoint_seeded(
    g: &Graph,
    cotangent_types: &[Type],
    seeded: &[bool],
) -> Result<Graph, ShapeError> {
    let mut args = g.args.clone();
    for (r, ty) in g.results.iter().zip(cotangent_types) {
        args.push(Arg {
            name: format!("d{}", r.name),
            ty: ty.clone(),
        });
    }
    let mut b = Builder::new(args);
    let arg_nodes: Vec<NodeId> = (0..g.args.len()).map(|i| b.arg(i)).collect();
    let cot_nodes: Vec<NodeId> = (0..g.results.len())
        .map(|i| b.arg(g.args.len() + i))
        .collect();
    let map = g.inline_into(&mut b, &arg_nodes, "")?;

    // adj[n]: the cotangent of forward node n, summed over its uses so far.
    let mut adj: HashMap<usize, NodeId> = HashMap::new();
    fn accumulate(
        adj: &mut HashMap<usize, NodeId>,
        b: &mut Builder,
        n: usize,
        c: NodeId,
    ) -> Result<(), ShapeError> {
        let sum = match adj.get(&n) {
            Some(&prev) => b.binary(crate::graph::op::Binary::Add, prev, c)?,
            None => c,
        };
        adj.insert(n, sum);
        Ok(())
    }
    for ((r, &c), _) in g
        .results
        .iter()
        .zip(&cot_nodes)
        .zip(seeded)
        .filter(|(_, s)| **s)
    {
        let c = b.unbroadcast(c, map[r.node.index()])?;
        accumulate(&mut adj, &mut b, r.node.index(), c)?;
    }
    for n in g.node_ids().collect::<Vec<_>>().into_iter().rev() {
        let Some(&gn) = adj.get(&n.index()) else {
            continue;
        };
        let node = g.node(n);
        if node.op.is_leaf() {
            continue;
        }
        let operands: Vec<NodeId> = g.operands(n);
        let mapped: Vec<NodeId> = operands.iter().map(|o| map[o.index()]).collect();
        let cots = node.op.vjp(&mut b, map[n.index()], &mapped, gn)?;
        for (o, c) in operands.iter().zip(cots) {
            if let Some(c) = c {
                accumulate(&mut adj, &mut b, o.index(), c)?;
            }
        }
    }
    // Where each argument is read (found in one pass, for graphs with many).
    let mut read_at: Vec<Option<NodeId>> = vec![None; g.args.len()];
    for n in g.node_ids() {
        if let Op::Arg(i) = g.node(n).op
            && read_at[i].is_none()
        {
            read_at[i] = Some(n);
        }
    }
    let mut results = Vec::new();
    for (i, a) in g.args.iter().enumerate() {
        let node = match read_at[i].and_then(|n| adj.get(&n.index()).copied()) {
            Some(c) => c,
            None => b.leaf(Op::Zeros(a.ty.clone()))?,
        };
        results.push(Output {
            name: format!("d{}", a.name),
            node,
        });
    }
    b.graph.results = results;
    Ok(b.finish())
}

/// The name of a residual. Kept apart from its spelling so that a reader
/// (`cellc bptt`) knows which names were generated without guessing from it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ResidualName {
    /// A value the cell named (`f` for `f_t`).
    Label(String),
    /// A value the cell did not name, numbered from 1 (`s1`, `s2`, ...).
    Numbered(usize),
}

impl std::fmt::Display for ResidualName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ResidualName::Label(l) => f.write_str(l),
            ResidualName::Numbered(k) => write!(f, "s{k}"),
        }
    }
}

/// A step graph's forward and adjoint steps, for BPTT.
#[derive(Clone, Debug)]
pub struct StepAdjoint {
    /// The step graph's arguments; results: the step's results, then the residuals.
    pub forward: Graph,
    /// Arguments: the step's arguments, the residuals, then the cotangents of the
    /// step's results (new states, outputs). Results: the cotangent of each of
    /// the step's arguments.
    pub backward: Graph,
    pub n_residuals: usize,
    /// What each residual is called, in order: the cell's own name for a value
    /// it named, a number for one it did not.
    pub residual_names: Vec<ResidualName>,
    /// By output: whether the loss reads it. The adjoint step ignores the
    /// cotangent of an output outside the loss (see [`adjoint_seeded`]).
    pub outputs_in_loss: Vec<bool>,
    /// The adjoint before the split (forward and backward in one graph), for
    /// showing and for checking.
    pub combined: Graph,
}

impl StepAdjoint {
    /// The first output given a cotangent that this adjoint ignores: running
    /// it with that cotangent would silently drop a part of the loss.
    pub fn ignored_cotangent(&self, given: &[bool]) -> Option<usize> {
        given
            .iter()
            .zip(&self.outputs_in_loss)
            .position(|(given, read)| *given && !*read)
    }

    /// How many numbers the forward pass saves per step and sequence (the
    /// memory cost of storing residuals rather than recomputing them).
    pub fn saved_per_step(&self, step: &StepGraph) -> String {
        let n = step.graph.results.len();
        let mut total = crate::graph::dim::Dim::konst(0);
        let mut matrices = Vec::new();
        for r in &self.forward.results[n..] {
            let ty = &self.forward.node(r.node).ty;
            let one = crate::graph::dim::Dim::konst(1);
            let d = match ty.dims.as_slice() {
                [] => &one,
                [d] => d,
                dims => {
                    matrices.push(crate::graph::dim::shape_string(dims));
                    continue;
                }
            };
            // A vector whose size would overflow the sum is listed on its own.
            match total.add(d) {
                Ok(t) => total = t,
                Err(_) => matrices.push(format!("[{d}]")),
            }
        }
        let mut out = total.to_string();
        for m in matrices {
            out.push_str(&format!(" + {m}"));
        }
        out
    }

    /// Node-count ratio of the adjoint step to the step (arguments not counted).
    pub fn ratio(&self, step: &StepGraph) -> f64 {
        self.backward.op_count() as f64 / step.graph.op_count().max(1) as f64
    }
}

/// Cotangent types for `g`'s results, every one batched: what the runtime
/// hands a step graph's results in BPTT.
pub fn batched_cotangent_types(g: &Graph) -> Vec<Type> {
    g.results
        .iter()
        .map(|r| Type::new(true, g.node(r.node).ty.dims.clone()))
        .collect()
}

/// Splits `combined`, the (simplified) adjoint of a cell's step graph with
/// [`batched_cotangent_types`], into a forward step that saves residuals and an
/// adjoint step that reads them. The two are left unsimplified: the pipeline
/// (`crate::pipeline::differentiate_step`) runs the passes around this one.
pub fn split_step(step: &StepGraph, combined: Graph) -> Result<StepAdjoint, ShapeError> {
    let g = &step.graph;
    let n_args = g.args.len();

    // A node is on the backward side if it depends on a cotangent argument.
    let mut backward_side = vec![false; combined.len()];
    for n in combined.node_ids() {
        backward_side[n.index()] = match combined.node(n).op {
            Op::Arg(i) => i >= n_args,
            _ => combined
                .operands(n)
                .iter()
                .any(|o| backward_side[o.index()]),
        };
    }
    // Residuals: forward-side values (not arguments, not constants) that the
    // backward side reads. A flag per node keeps this linear in the graph.
    let mut is_residual = vec![false; combined.len()];
    let mut mark = |o: NodeId| {
        if !backward_side[o.index()] && !combined.node(o).op.is_leaf() {
            is_residual[o.index()] = true;
        }
    };
    for n in combined.node_ids() {
        if backward_side[n.index()] {
            for o in combined.operands(n) {
                mark(o);
            }
        }
    }
    for r in &combined.results {
        mark(r.node);
    }
    let residuals: Vec<NodeId> = combined
        .node_ids()
        .filter(|n| is_residual[n.index()])
        .collect();
    // Residuals without a name of their own are numbered s1, s2, ... in order,
    // skipping any number whose spelling is already a name in the cell, so a
    // generated name never reads as one of the cell's values.
    let mut taken: HashSet<&str> = g.args.iter().map(|a| a.name.as_str()).collect();
    taken.extend(
        combined
            .node_ids()
            .filter_map(|n| combined.node(n).label.as_deref()),
    );
    let mut unnamed = 0;
    let residual_names: Vec<ResidualName> = residuals
        .iter()
        .map(|&n| match &combined.node(n).label {
            Some(l) => ResidualName::Label(l.clone()),
            None => loop {
                unnamed += 1;
                let name = ResidualName::Numbered(unnamed);
                if !taken.contains(name.to_string().as_str()) {
                    break name;
                }
            },
        })
        .collect();
    let residual_name = |k: usize| residual_names[k].to_string();

    // The forward step: the step graph with the residuals as extra results.
    // The combined graph's forward side is the step graph rebuilt, so the
    // residuals are computed there from the step's own arguments.
    let mut fb = Builder::new(g.args.clone());
    let fargs: Vec<NodeId> = (0..n_args).map(|i| fb.arg(i)).collect();
    let mut fmap: HashMap<usize, NodeId> = HashMap::new();
    for n in combined.node_ids() {
        if backward_side[n.index()] {
            continue;
        }
        let node = combined.node(n);
        let id = match node.op {
            Op::Arg(i) => fargs[i],
            ref op => {
                let ops: Vec<NodeId> = combined
                    .operands(n)
                    .iter()
                    .map(|o| fmap[&o.index()])
                    .collect();
                let id = fb.node(op.clone(), &ops)?;
                if let Some(l) = &node.label {
                    fb.set_label(id, l.clone());
                }
                id
            }
        };
        fmap.insert(n.index(), id);
    }
    // The step's own results are recomputed by inlining the step graph, so that
    // the forward pass gives exactly what the plain step gives.
    let step_results = g.inline_into(&mut fb, &fargs, "")?;
    let mut fresults: Vec<Output> = g
        .results
        .iter()
        .map(|r| Output {
            name: r.name.clone(),
            node: step_results[r.node.index()],
        })
        .collect();
    for (k, &r) in residuals.iter().enumerate() {
        fresults.push(Output {
            name: format!("save {}", residual_name(k)),
            node: fmap[&r.index()],
        });
    }
    fb.graph.results = fresults;
    let forward = fb.finish();

    // The adjoint step: the backward side, reading residuals as arguments.
    let mut bargs: Vec<Arg> = g.args.clone();
    for (k, &r) in residuals.iter().enumerate() {
        bargs.push(Arg {
            name: format!("saved {}", residual_name(k)),
            ty: combined.node(r).ty.clone(),
        });
    }
    for i in n_args..combined.args.len() {
        bargs.push(combined.args[i].clone());
    }
    let mut bb = Builder::new(bargs);
    let all_args: Vec<NodeId> = (0..bb.graph.args.len()).map(|i| bb.arg(i)).collect();
    let mut bmap: HashMap<usize, NodeId> = HashMap::new();
    for (k, &r) in residuals.iter().enumerate() {
        bmap.insert(r.index(), all_args[n_args + k]);
    }
    for n in combined.node_ids() {
        let node = combined.node(n);
        if bmap.contains_key(&n.index()) {
            continue;
        }
        let id = match node.op {
            Op::Arg(i) if i < n_args => all_args[i],
            Op::Arg(i) => all_args[residuals.len() + i],
            ref op if backward_side[n.index()] || op.is_leaf() => {
                let ops: Vec<NodeId> = combined
                    .operands(n)
                    .iter()
                    .map(|o| bmap[&o.index()])
                    .collect();
                let id = bb.node(op.clone(), &ops)?;
                if let Some(l) = &node.label {
                    bb.set_label(id, l.clone());
                }
                id
            }
            _ => continue,
        };
        bmap.insert(n.index(), id);
    }
    bb.graph.results = combined
        .results
        .iter()
        .map(|r| Output {
            name: r.name.clone(),
            node: bmap[&r.node.index()],
        })
        .collect();
    let backward = bb.finish();
    Ok(StepAdjoint {
        forward,
        backward,
        n_residuals: residuals.len(),
        residual_names,
        outputs_in_loss: vec![true; step.outputs.len()],
        combined,
    })
}
