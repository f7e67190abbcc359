//! Walks over the AST that several check steps share.
//!
//! Enters: expressions. Leaves: every sub-expression visited, the states read at
//! earlier steps, the rank (vector or matrix) each undeclared parameter's uses
//! imply. Exists so that the check steps do not each write their own recursion.

use super::Entity;
use crate::syntax::ast::{BinOp, Equation, Expr, ExprKind, Span};
use crate::syntax::functions::{self, ShapeRule};
use std::collections::{BTreeSet, HashMap};

/// Calls `f` on every sub-expression, outermost first, left to right.
///
/// With a stack of its own rather than by recursion: a flat sum of thousands
/// of terms is a tree as deep as it is long.
pub(super) fn visit(e: &Expr, f: &mut impl FnMut(&Expr)) {
    let mut stack = vec![e];
    while let Some(e) = stack.pop() {
        f(e);
        match &e.kind {
            ExprKind::Number(_) | ExprKind::Var { .. } => {}
            ExprKind::Neg(a) => stack.push(a),
            ExprKind::Binary { lhs, rhs, .. } => {
                stack.push(rhs);
                stack.push(lhs);
            }
            ExprKind::Call { args, .. } => stack.extend(args.iter().rev()),
            ExprKind::Concat(ps) => stack.extend(ps.iter().rev()),
        }
    }
}

pub(super) fn collect_state_reads(
    e: &Expr,
    names: &HashMap<String, (Entity, Span)>,
    out: &mut BTreeSet<(usize, u32)>,
) {
    visit(e, &mut |e| {
        if let ExprKind::Var {
            name,
            time: Some(t),
        } = &e.kind
            && t.lag > 0
            && let Some((Entity::State(s), _)) = names.get(&name.name)
        {
            out.insert((*s, t.lag));
        }
    });
}

/// Which undeclared parameters are matrices: those used on the left of `·`
/// (directly, or inside elementwise arithmetic there). All others are vectors.
pub(super) fn param_ranks(
    eqs: &[&Equation],
    names: &HashMap<String, (Entity, Span)>,
) -> HashMap<usize, usize> {
    // `(expression, whether it is on the left of a product)`, on a stack of
    // its own, as in `visit`.
    fn walk(e: &Expr, names: &HashMap<String, (Entity, Span)>, out: &mut HashMap<usize, usize>) {
        let mut stack = vec![(e, false)];
        while let Some((e, matrix)) = stack.pop() {
            match &e.kind {
                ExprKind::Var { name, .. } => {
                    if let Some((Entity::Param(p), _)) = names.get(&name.name) {
                        let r = out.entry(*p).or_insert(1);
                        if matrix {
                            *r = 2;
                        }
                    }
                }
                ExprKind::Number(_) => {}
                ExprKind::Neg(a) => stack.push((a, matrix)),
                ExprKind::Binary { op, lhs, rhs, .. } => {
                    stack.push((lhs, matrix || *op == BinOp::MatMul));
                    stack.push((rhs, matrix && *op != BinOp::MatMul));
                }
                ExprKind::Call { func, args } => {
                    // An unknown function is reported later; here it keeps shapes.
                    let keeps_shape = functions::lookup(&func.name)
                        .is_none_or(|f| f.shape == ShapeRule::Elementwise);
                    stack.extend(args.iter().map(|a| (a, matrix && keeps_shape)));
                }
                ExprKind::Concat(ps) => stack.extend(ps.iter().map(|p| (p, false))),
            }
        }
    }
    let mut out = HashMap::new();
    for e in eqs {
        walk(&e.rhs, names, &mut out);
    }
    out
}
