//! The reference evaluator: runs any graph of the IR on ndarray values, in f32
//! or f64, one op at a time by [`Op::eval`]. It is the oracle every other
//! execution path (unrolled graphs, adjoints, native code) is tested against, so
//! it favours plain, checkable code over speed.

use crate::graph::dim::Bindings;
use crate::graph::op::{EvalCtx, Op, Real};
use crate::graph::{Graph, NodeId};
use ndarray::ArrayD;

#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum EvalError {
    #[error("argument `{name}` should have shape {expected:?}, found {found:?}")]
    ArgShape {
        name: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    #[error("{count} arguments given, the graph takes {expected}")]
    ArgCount { count: usize, expected: usize },
    #[error("evaluating %{node} ({op}): {message}")]
    Op {
        node: usize,
        op: String,
        message: String,
    },
}

/// The value of every node of `g`, by node index.
pub fn eval_nodes<F: Real>(
    g: &Graph,
    args: &[&ArrayD<F>],
    bindings: &Bindings,
    batch: usize,
) -> Result<Vec<ArrayD<F>>, EvalError> {
    if args.len() != g.args.len() {
        return Err(EvalError::ArgCount {
            count: args.len(),
            expected: g.args.len(),
        });
    }
    let ctx = EvalCtx { bindings, batch };
    let mut values: Vec<ArrayD<F>> = Vec::with_capacity(g.len());
    for n in g.node_ids() {
        let node = g.node(n);
        let op_err = |message: String| EvalError::Op {
            node: n.index(),
            op: node.op.name(),
            message,
        };
        let v = match node.op {
            Op::Arg(i) => {
                let expected = node.ty.array_shape(batch, bindings).map_err(op_err)?;
                if args[i].shape() != expected.as_slice() {
                    return Err(EvalError::ArgShape {
                        name: g.args[i].name.clone(),
                        expected,
                        found: args[i].shape().to_vec(),
                    });
                }
                args[i].clone()
            }
            ref op => {
                let operands: Vec<NodeId> = g.operands(n);
                let ins: Vec<(&ArrayD<F>, &crate::graph::dim::Type)> = operands
                    .iter()
                    .map(|o| (&values[o.index()], &g.node(*o).ty))
                    .collect();
                op.eval(&node.ty, &ins, &ctx).map_err(op_err)?
            }
        };
        values.push(v);
    }
    Ok(values)
}

/// The values of `g`'s results, in order.
pub fn eval<F: Real>(
    g: &Graph,
    args: &[&ArrayD<F>],
    bindings: &Bindings,
    batch: usize,
) -> Result<Vec<ArrayD<F>>, EvalError> {
    let values = eval_nodes(g, args, bindings, batch)?;
    Ok(g.results
        .iter()
        .map(|r| values[r.node.index()].clone())
        .collect())
}
