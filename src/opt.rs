//! Simplification passes: small named rewrites that never make a graph worse.
//!
//! One pass, [`simplify`], rebuilds the graph node by node in topological
//! order; each node first has its operands replaced by their rebuilt versions,
//! then the rules below are tried in turn, and what is left is shared with an
//! identical earlier node if there is one (common-subexpression elimination).
//! Nodes that reach no result are never rebuilt (dead-code elimination).
//! Arguments are all kept, so argument numbers do not change.
//!
//! The rules matter most for gradients: reverse mode produces many zeros (the
//! cotangent of a value a result does not depend on), slices of concatenations
//! (the adjoint of `[h; x]`) and concatenations of slices (the adjoint of
//! `chunk`); folding them keeps the adjoint graph close to what one would write
//! by hand.

use crate::graph::dim::{Dim, Type};
use crate::graph::op::{Binary, Op, ShapeError, Unary};
use crate::graph::{Builder, Graph, NodeId, Output};
use std::collections::HashMap;

/// What a rule decided for a node.
enum Rewrite {
    /// Use this (already rebuilt) node instead.
    Use(NodeId),
    /// Build this op over these (rebuilt) operands instead.
    Build(Op, Vec<NodeId>),
}

pub fn simplify(g: &Graph) -> Result<Graph, ShapeError> {
    rebuild(g, true)
}

/// Only what is exact for every value, NaN and infinity included: shared
/// subexpressions and dead code, no rule (`x·0 → 0` is not exact for NaN).
/// What the native back end compiles `run`'s step graph with, so that it
/// propagates NaN as the interpreter does.
pub fn share(g: &Graph) -> Result<Graph, ShapeError> {
    rebuild(g, false)
}

fn rebuild(g: &Graph, rules: bool) -> Result<Graph, ShapeError> {
    let live = live_nodes(g);
    let mut b = Builder::new(g.args.clone());
    let mut cse: HashMap<String, NodeId> = HashMap::new();
    let mut map: Vec<Option<NodeId>> = vec![None; g.len()];
    for n in g.node_ids() {
        let node = g.node(n);
        if !live[n.index()] && !matches!(node.op, Op::Arg(_)) {
            continue;
        }
        let operands: Vec<NodeId> = g
            .operands(n)
            .iter()
            .map(|o| map[o.index()].expect("operands of a live node are live"))
            .collect();
        let mut op = node.op.clone();
        let mut args = operands;
        // Rules may chain (a fold can enable another), so apply until none fires.
        let new = loop {
            let r = if rules {
                rewrite(&mut b, &op, &args, &node.ty)?
            } else {
                None
            };
            match r {
                Some(Rewrite::Use(id)) => break id,
                Some(Rewrite::Build(o, a)) => {
                    op = o;
                    args = a;
                }
                None => break build_shared(&mut b, &mut cse, op, &args)?,
            }
        };
        if let Some(l) = &node.label
            && b.graph.node(new).label.is_none()
        {
            b.set_label(new, l.clone());
        }
        map[n.index()] = Some(new);
    }
    b.graph.results = g
        .results
        .iter()
        .map(|r| Output {
            name: r.name.clone(),
            node: map[r.node.index()].expect("results are live"),
        })
        .collect();
    // The pipeline verifies what every pass leaves.
    Ok(b.finish())
}

/// Which nodes some result depends on.
pub fn live_nodes(g: &Graph) -> Vec<bool> {
    let mut live = vec![false; g.len()];
    for r in &g.results {
        live[r.node.index()] = true;
    }
    for n in g.node_ids().collect::<Vec<_>>().into_iter().rev() {
        if live[n.index()] {
            for o in g.operands(n) {
                live[o.index()] = true;
            }
        }
    }
    live
}

/// Adds `op(args)` unless the same node exists already. Arguments are never
/// merged: each stands for a different value.
fn build_shared(
    b: &mut Builder,
    cse: &mut HashMap<String, NodeId>,
    op: Op,
    args: &[NodeId],
) -> Result<NodeId, ShapeError> {
    if let Op::Arg(i) = op {
        return Ok(b.arg(i));
    }
    let key = format!("{op:?}{args:?}");
    if let Some(&id) = cse.get(&key) {
        return Ok(id);
    }
    let id = b.node(op, args)?;
    cse.insert(key, id);
    Ok(id)
}

fn is_zero(b: &Builder, n: NodeId) -> bool {
    matches!(b.graph.node(n).op, Op::Zeros(_)) || const_of(b, n) == Some(0.0)
}

fn const_of(b: &Builder, n: NodeId) -> Option<f64> {
    match b.graph.node(n).op {
        Op::Const(c) => Some(c),
        _ => None,
    }
}

fn zeros(ty: &Type) -> Option<Rewrite> {
    Some(Rewrite::Build(Op::Zeros(ty.clone()), vec![]))
}

/// The rules. `ty` is the node's type, which every rewrite must keep.
fn rewrite(
    b: &mut Builder,
    op: &Op,
    args: &[NodeId],
    ty: &Type,
) -> Result<Option<Rewrite>, ShapeError> {
    use Binary::*;
    let same_type = |b: &Builder, n: NodeId| b.ty(n) == ty;
    Ok(match op {
        // A zeros of a scalar, unbatched type is the constant 0.
        Op::Zeros(t) if *t == Type::scalar(false) => Some(Rewrite::Build(Op::Const(0.0), vec![])),
        // fold: an op of constants is a constant.
        Op::Unary(u) if const_of(b, args[0]).is_some() => {
            let a = const_of(b, args[0]).expect("checked");
            // The scalar definition evaluation uses, so folding never changes a value.
            let v = u.apply(a);
            Some(Rewrite::Build(Op::Const(v), vec![]))
        }
        Op::Binary(op) if const_of(b, args[0]).is_some() && const_of(b, args[1]).is_some() => {
            let (x, y) = (
                const_of(b, args[0]).expect("c"),
                const_of(b, args[1]).expect("c"),
            );
            let v = match op {
                Add => x + y,
                Sub => x - y,
                Mul => x * y,
                Div => x / y,
            };
            Some(Rewrite::Build(Op::Const(v), vec![]))
        }
        // x + 0 = x, 0 + x = x
        Op::Binary(Add) if is_zero(b, args[1]) && same_type(b, args[0]) => {
            Some(Rewrite::Use(args[0]))
        }
        Op::Binary(Add) if is_zero(b, args[0]) && same_type(b, args[1]) => {
            Some(Rewrite::Use(args[1]))
        }
        // x - 0 = x;  0 - x = -x
        Op::Binary(Sub) if is_zero(b, args[1]) && same_type(b, args[0]) => {
            Some(Rewrite::Use(args[0]))
        }
        Op::Binary(Sub) if is_zero(b, args[0]) && same_type(b, args[1]) => {
            Some(Rewrite::Build(Op::Unary(Unary::Neg), vec![args[1]]))
        }
        // x·0 = 0·x = 0/x = 0: a zero cotangent stays zero (as in JAX's
        // symbolic zeros, a NaN elsewhere is not propagated through it).
        Op::Binary(Mul) if is_zero(b, args[0]) || is_zero(b, args[1]) => zeros(ty),
        Op::Binary(Div) if is_zero(b, args[0]) => zeros(ty),
        // x·1 = 1·x = x/1 = x
        Op::Binary(Mul | Div) if const_of(b, args[1]) == Some(1.0) && same_type(b, args[0]) => {
            Some(Rewrite::Use(args[0]))
        }
        Op::Binary(Mul) if const_of(b, args[0]) == Some(1.0) && same_type(b, args[1]) => {
            Some(Rewrite::Use(args[1]))
        }
        // x·(-1) = -x
        Op::Binary(Mul) if const_of(b, args[1]) == Some(-1.0) && same_type(b, args[0]) => {
            Some(Rewrite::Build(Op::Unary(Unary::Neg), vec![args[0]]))
        }
        // -(-x) = x;  -0 = 0
        Op::Unary(Unary::Neg) if matches!(b.graph.node(args[0]).op, Op::Unary(Unary::Neg)) => {
            Some(Rewrite::Use(b.graph.operands(args[0])[0]))
        }
        Op::Unary(Unary::Neg) if is_zero(b, args[0]) => zeros(ty),
        // x + (-y) = x - y;  (-x) + y = y - x
        Op::Binary(Add) if matches!(b.graph.node(args[1]).op, Op::Unary(Unary::Neg)) => {
            let y = b.graph.operands(args[1])[0];
            Some(Rewrite::Build(Op::Binary(Sub), vec![args[0], y]))
        }
        Op::Binary(Add) if matches!(b.graph.node(args[0]).op, Op::Unary(Unary::Neg)) => {
            let x = b.graph.operands(args[0])[0];
            Some(Rewrite::Build(Op::Binary(Sub), vec![args[1], x]))
        }
        // Linear ops of zeros are zeros.
        Op::MatVec | Op::MatTVec | Op::Outer | Op::OuterSum
            if args.iter().any(|a| is_zero(b, *a)) =>
        {
            zeros(ty)
        }
        Op::Sum | Op::BatchSum | Op::Broadcast(_) | Op::Slice { .. } if is_zero(b, args[0]) => {
            zeros(ty)
        }
        Op::Concat if args.iter().all(|a| is_zero(b, *a)) => zeros(ty),
        // A slice of the whole vector is the vector.
        Op::Slice { start, len } if *start == Dim::konst(0) && b.ty(args[0]).dims[0] == *len => {
            Some(Rewrite::Use(args[0]))
        }
        // A slice of a concatenation that is exactly one of its parts is that part.
        Op::Slice { start, len } if matches!(b.graph.node(args[0]).op, Op::Concat) => {
            let parts = b.graph.operands(args[0]);
            let mut at = Dim::konst(0);
            let mut found = None;
            for p in parts {
                let n = b.ty(p).dims[0].clone();
                if at == *start && n == *len && same_type(b, p) {
                    found = Some(p);
                }
                // Sizes past 64 bits: leave the slice as it is.
                let Ok(next) = at.add(&n) else {
                    return Ok(None);
                };
                at = next;
            }
            found.map(Rewrite::Use)
        }
        // Concatenations add part by part, after cutting zero parts where the
        // other side has a boundary; with the zeros that the adjoints of
        // `chunk` and `[a; b]` produce, this makes their sum one concat.
        Op::Binary(Add)
            if matches!(b.graph.node(args[0]).op, Op::Concat)
                && matches!(b.graph.node(args[1]).op, Op::Concat)
                && same_type(b, args[0])
                && same_type(b, args[1]) =>
        {
            let l = b.graph.operands(args[0]);
            let r = b.graph.operands(args[1]);
            match common_cuts(b, &l, &r) {
                Some(pairs) => {
                    let mut parts = Vec::new();
                    // Zeros are made only for a piece zero on both sides, so
                    // that the rule leaves no unused node behind.
                    for (len, x, y) in pairs {
                        parts.push(match (x, y) {
                            (Some(x), Some(y)) => b.binary(Binary::Add, x, y)?,
                            (Some(x), None) | (None, Some(x)) => x,
                            (None, None) => b.leaf(Op::Zeros(Type::vector(ty.batched, len)))?,
                        });
                    }
                    Some(Rewrite::Build(Op::Concat, parts))
                }
                None => None,
            }
        }
        _ => None,
    })
}

/// The parts of two concatenations of one length lined up on common cuts:
/// `(length, left part, right part)`, `None` for a piece of a zero part. Only
/// zero parts are cut; `None` when a non-zero part would have to be.
type Pieces = Vec<(Dim, Option<NodeId>, Option<NodeId>)>;

fn common_cuts(b: &Builder, l: &[NodeId], r: &[NodeId]) -> Option<Pieces> {
    // (remaining length, node or None for zeros) of each side's current part.
    let part = |n: NodeId| (b.ty(n).dims[0].clone(), (!is_zero(b, n)).then_some(n));
    let (mut li, mut ri) = (l.iter(), r.iter());
    let (mut lc, mut rc) = (li.next().map(|n| part(*n)), ri.next().map(|n| part(*n)));
    let mut out = Vec::new();
    // Whether `a - c` is a positive size (every size is at least 1).
    let longer = |a: &Dim, c: &Dim| {
        a.sub(c)
            .is_ok_and(|d| d != Dim::konst(0) && d.konst >= 0 && d.terms.values().all(|k| *k >= 0))
    };
    while let (Some((llen, lnode)), Some((rlen, rnode))) = (lc.clone(), rc.clone()) {
        if llen == rlen {
            out.push((llen, lnode, rnode));
            lc = li.next().map(|n| part(*n));
            rc = ri.next().map(|n| part(*n));
        } else if lnode.is_none() && longer(&llen, &rlen) {
            out.push((rlen.clone(), None, rnode));
            lc = Some((llen.sub(&rlen).ok()?, None));
            rc = ri.next().map(|n| part(*n));
        } else if rnode.is_none() && longer(&rlen, &llen) {
            out.push((llen.clone(), lnode, None));
            rc = Some((rlen.sub(&llen).ok()?, None));
            lc = li.next().map(|n| part(*n));
        } else {
            return None;
        }
    }
    (lc.is_none() && rc.is_none()).then_some(out)
}
