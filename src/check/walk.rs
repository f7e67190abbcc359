//! Walks over the AST that several check steps share.
//!
//! Enters: expressions. Leaves: every sub-expression visited, the states read at
//! earlier steps, the rank (vector or matrix) each undeclared parameter's uses
//! imply. Exists so that the check steps do not each write their own recursion.

use super::Entity;
use crate::syntax::ast::{BinOp, Equation, Expr, ExprKind, Span};
use crate::syntax::functions::{self, ShapeRule};
use std::collections::{BTreeSet, HashMap};

/// Calls `f` on every sub-expression, outermost first.
pub(super) fn visit(e: &Expr, f: &mut impl FnMut(&Expr)) {
    f(e);
    match &e.kind {
        ExprKind::Number(_) | ExprKind::Var { .. } => {}
        ExprKind::Neg(a) => visit(a, f),
        ExprKind::Binary { lhs, rhs, .. } => {
            visit(lhs, f);
            visit(rhs, f);
        }
        ExprKind::Call { args, .. } => args.iter().for_each(|a| visit(a, f)),
        ExprKind::Concat(ps) => ps.iter().for_each(|a| visit(a, f)),
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
    fn walk(
        e: &Expr,
        matrix: bool,
        names: &HashMap<String, (Entity, Span)>,
        out: &mut HashMap<usize, usize>,
    ) {
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
            ExprKind::Neg(a) => walk(a, matrix, names, out),
            ExprKind::Binary { op, lhs, rhs, .. } => {
                let left_matrix = matrix || *op == BinOp::MatMul;
                walk(lhs, left_matrix, names, out);
                walk(rhs, matrix && *op != BinOp::MatMul, names, out);
            }
            ExprKind::Call { func, args } => {
                // An unknown function is reported later; here it keeps shapes.
                let keeps_shape =
                    functions::lookup(&func.name).is_none_or(|f| f.shape == ShapeRule::Elementwise);
                for a in args {
                    walk(a, matrix && keeps_shape, names, out);
                }
            }
            ExprKind::Concat(ps) => ps.iter().for_each(|p| walk(p, false, names, out)),
        }
    }
    let mut out = HashMap::new();
    for e in eqs {
        walk(&e.rhs, false, names, &mut out);
    }
    out
}
