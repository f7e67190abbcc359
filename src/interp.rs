//! The reference evaluator: runs any graph of the IR on ndarray values, in f32
//! or f64, one op at a time by [`Op::eval`]. It is the oracle every other
//! execution path (unrolled graphs, adjoints, native code) is tested against, so
//! it favours plain, checkable code over speed.

use crate::graph::dim::{Bindings, Type};
use crate::graph::op::{EvalCtx, Op, Real};
use crate::graph::{Graph, NodeId};
use ndarray::{ArrayD, ArrayViewD, ArrayViewMutD};

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
    #[error("{count} result buffers given, the graph has {expected} results")]
    ResultCount { count: usize, expected: usize },
    #[error("result {index} has shape {expected:?}, its buffer {found:?}")]
    ResultShape {
        index: usize,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    #[error("evaluating %{node} ({op}): {message}")]
    Op {
        node: usize,
        op: String,
        message: String,
    },
}

/// The value of every node of `g` but its arguments, by node index
/// (`None` at arguments, which are read in place from `args`).
pub fn eval_nodes<F: Real>(
    g: &Graph,
    args: &[ArrayViewD<'_, F>],
    bindings: &Bindings,
    batch: usize,
) -> Result<Vec<Option<ArrayD<F>>>, EvalError> {
    if args.len() != g.args.len() {
        return Err(EvalError::ArgCount {
            count: args.len(),
            expected: g.args.len(),
        });
    }
    let ctx = EvalCtx { bindings, batch };
    let mut values: Vec<Option<ArrayD<F>>> = Vec::with_capacity(g.len());
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
                None
            }
            ref op => {
                let operands: Vec<ArrayViewD<F>> = g
                    .operands(n)
                    .iter()
                    .map(|o| value(g, &values, args, *o))
                    .collect();
                let ins: Vec<(&ArrayViewD<F>, &Type)> = operands
                    .iter()
                    .zip(g.operands(n))
                    .map(|(v, o)| (v, &g.node(o).ty))
                    .collect();
                Some(op.eval(&node.ty, &ins, &ctx).map_err(op_err)?)
            }
        };
        values.push(v);
    }
    Ok(values)
}

/// Node `n`'s value: computed, or the argument it reads.
fn value<'a, F: Real>(
    g: &Graph,
    values: &'a [Option<ArrayD<F>>],
    args: &'a [ArrayViewD<'_, F>],
    n: NodeId,
) -> ArrayViewD<'a, F> {
    match (&values[n.index()], &g.node(n).op) {
        (Some(v), _) => v.view(),
        (None, Op::Arg(i)) => args[*i].view(),
        (None, op) => unreachable!("node {} ({}) has no value", n.index(), op.name()),
    }
}

/// The values of `g`'s results, in order, from arguments given as views.
pub fn eval_views<F: Real>(
    g: &Graph,
    args: &[ArrayViewD<'_, F>],
    bindings: &Bindings,
    batch: usize,
) -> Result<Vec<ArrayD<F>>, EvalError> {
    let values = eval_nodes(g, args, bindings, batch)?;
    Ok(g.results
        .iter()
        .map(|r| value(g, &values, args, r.node).to_owned())
        .collect())
}

/// Evaluates `g` and writes its results into `results`, which must have the
/// results' shapes.
pub fn eval_into<F: Real>(
    g: &Graph,
    args: &[ArrayViewD<'_, F>],
    results: &mut [ArrayViewMutD<'_, F>],
    bindings: &Bindings,
    batch: usize,
) -> Result<(), EvalError> {
    if results.len() != g.results.len() {
        return Err(EvalError::ResultCount {
            count: results.len(),
            expected: g.results.len(),
        });
    }
    let values = eval_nodes(g, args, bindings, batch)?;
    for (i, (r, out)) in g.results.iter().zip(results.iter_mut()).enumerate() {
        let v = value(g, &values, args, r.node);
        if v.shape() != out.shape() {
            return Err(EvalError::ResultShape {
                index: i,
                expected: v.shape().to_vec(),
                found: out.shape().to_vec(),
            });
        }
        out.assign(&v);
    }
    Ok(())
}

/// The values of `g`'s results, in order.
pub fn eval<F: Real>(
    g: &Graph,
    args: &[&ArrayD<F>],
    bindings: &Bindings,
    batch: usize,
) -> Result<Vec<ArrayD<F>>, EvalError> {
    let views: Vec<ArrayViewD<F>> = args.iter().map(|a| a.view()).collect();
    eval_views(g, &views, bindings, batch)
}
