//! Stage: the step graph × T → one graph of `T` steps.
//!
//! For analysis, tests and teaching: the unrolled graph shows exactly which value
//! each step reads, and evaluating it must give what the step loop gives. The
//! runtime never executes it; it runs the step graph in a loop.
//!
//! Arguments: every parameter, then each input at each step (`x[0]`, `x[1]`, …),
//! then each state's initial value (`h[-1]`, batched). Reads further back than
//! the initial state (`h[-2]`, …) are zeros. Results: each output at each step
//! (`y[0]`, …), then each state's final value (`h.last`).

use crate::graph::dim::Type;
use crate::graph::op::{Op, ShapeError};
use crate::graph::step::{ArgKind, StepGraph};
use crate::graph::{Arg, Builder, Graph, NodeId, Output};

pub fn unroll(step: &StepGraph, steps: usize) -> Result<Graph, ShapeError> {
    let mut args = Vec::new();
    for (p, sig) in step.params.iter().enumerate() {
        args.push(Arg {
            name: sig.name.clone(),
            ty: step.param_type(p),
        });
    }
    for t in 0..steps {
        for (i, sig) in step.inputs.iter().enumerate() {
            args.push(Arg {
                name: format!("{}[{t}]", sig.name),
                ty: step.input_type(i),
            });
        }
    }
    for (s, sig) in step.states.iter().enumerate() {
        args.push(Arg {
            name: format!("{}[-1]", sig.name),
            ty: step.state_type(s),
        });
    }
    let n_params = step.params.len();
    let n_inputs = step.inputs.len();
    let mut b = Builder::new(args);
    let arg_nodes: Vec<NodeId> = (0..b.graph.args.len()).map(|i| b.arg(i)).collect();
    // history[s][j]: state s after step j-1 (j = 0 is the initial value).
    let mut history: Vec<Vec<NodeId>> = (0..step.states.len())
        .map(|s| vec![arg_nodes[n_params + steps * n_inputs + s]])
        .collect();
    let mut results = Vec::new();
    for t in 0..steps {
        let mut call_args = Vec::new();
        for kind in &step.arg_kinds {
            call_args.push(match *kind {
                ArgKind::Param(p) => arg_nodes[p],
                ArgKind::Input(i) => arg_nodes[n_params + t * n_inputs + i],
                ArgKind::State { state, lag } => {
                    // Step t reads the value after step t-lag; before the
                    // initial value, zeros.
                    let j = t as i64 + 1 - lag as i64;
                    if j >= 0 {
                        history[state][j as usize]
                    } else {
                        let ty: Type = step.state_type(state);
                        b.leaf(Op::Zeros(ty))?
                    }
                }
            });
        }
        let map = step
            .graph
            .inline_into(&mut b, &call_args, &format!("@{t}"))?;
        for (s, h) in history.iter_mut().enumerate() {
            h.push(map[step.graph.results[step.state_result(s)].node.index()]);
        }
        for (o, sig) in step.outputs.iter().enumerate() {
            results.push(Output {
                name: format!("{}[{t}]", sig.name),
                node: map[step.graph.results[step.output_result(o)].node.index()],
            });
        }
    }
    for (s, sig) in step.states.iter().enumerate() {
        results.push(Output {
            name: format!("{}.last", sig.name),
            node: *history[s].last().expect("initial value"),
        });
    }
    b.graph.results = results;
    // The pipeline verifies what every pass leaves.
    Ok(b.finish())
}
