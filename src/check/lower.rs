//! Lowering: each equation's expression → nodes of the step graph.
//!
//! Enters: resolved, ordered equations. Leaves: nodes in the graph
//! [`Builder`], with their spans; the language's sugar (`softmax`, `mean`,
//! `chunk`) becomes primitive ops here, so that no later stage knows it.
//! Shapes are checked as each node is built, by the op's shape rule and the
//! unifier.

use super::error::CheckError;
use super::{Checker, Entity};
use crate::diagnostic::closest;
use crate::graph::op::{Binary, Op, ShapeError, Unary};
use crate::graph::step::ArgKind;
use crate::graph::{Builder, NodeId};
use crate::syntax::ast::{self, BinOp, Equation, Expr, ExprKind};
use crate::syntax::functions::{self, FUNCTIONS, Lowering};

impl Checker {
    pub(super) fn lower_equation(
        &mut self,
        b: &mut Builder,
        e: usize,
        eq: &Equation,
    ) -> Result<(), CheckError> {
        let is_chunk = matches!(&eq.rhs.kind, ExprKind::Call { func, .. } if func.name == "chunk");
        if eq.destructuring || is_chunk {
            let (ExprKind::Call { args, .. }, true) = (&eq.rhs.kind, is_chunk) else {
                return Err(CheckError::Invalid {
                    message: "a bracketed left side needs `chunk(...)` on the right".into(),
                    span: eq.rhs.span,
                    label: "write `[a_t; b_t] = chunk(z_t, 2)`".into(),
                });
            };
            if !eq.destructuring {
                return Err(CheckError::Invalid {
                    message: "`chunk` splits a vector into named parts".into(),
                    span: eq.rhs.span,
                    label: "write `[a_t; b_t] = chunk(z_t, 2)`".into(),
                });
            }
            let n = eq.targets.len();
            let count = match args.as_slice() {
                [
                    _,
                    Expr {
                        kind: ExprKind::Number(k),
                        ..
                    },
                ] if *k >= 1.0 && k.fract() == 0.0 && *k < 1e6 => *k as usize,
                _ => {
                    return Err(CheckError::Invalid {
                        message: "`chunk` takes a vector and a whole number of parts".into(),
                        span: eq.rhs.span,
                        label: format!("write `chunk(z_t, {n})`"),
                    });
                }
            };
            if count != n {
                return Err(CheckError::Invalid {
                    message: format!(
                        "`chunk(…, {count})` gives {count} parts but the left side names {n}"
                    ),
                    span: eq.span,
                    label: "these must agree".into(),
                });
            }
            let z = self.lower(b, &args[0])?;
            let zt = b.ty(z).clone();
            if zt.rank() != 1 {
                return Err(self.rank_error("`chunk` splits a vector", &args[0], &zt));
            }
            let first = &eq.targets[0].name.name;
            let Some(part) = self
                .unifier
                .divide(&zt.dims[0], n as i64, format!("{first}_len"))
            else {
                if self.unifier.overflowed {
                    return Err(size_overflow(&self.show(&zt), eq.rhs.span));
                }
                return Err(CheckError::Shape {
                    message: format!("cannot split {} into {n} equal parts", self.show(&zt)),
                    span: eq.rhs.span,
                    label: format!("{} is not a multiple of {n}", self.show(&zt)),
                    labels: vec![],
                    notes: vec![],
                });
            };
            for (p, t) in eq.targets.iter().enumerate() {
                let start = part
                    .scale(p as i64)
                    .map_err(|_| size_overflow(&self.show(&zt), eq.rhs.span))?;
                let op = Op::Slice {
                    start,
                    len: part.clone(),
                };
                let id = self.node(b, op, &[z], &eq.rhs)?;
                b.set_label(id, t.name.name.clone());
                self.spans.insert(id, t.name.span);
                self.values.insert((e, p), id);
            }
            return Ok(());
        }
        let id = self.lower(b, &eq.rhs)?;
        // An equation that only renames a value (`h_t = a_t`) shares its node.
        if b.graph.node(id).label.is_none() && !matches!(b.graph.node(id).op, Op::Arg(_)) {
            b.set_label(id, eq.targets[0].name.name.clone());
        }
        self.values.insert((e, 0), id);
        Ok(())
    }

    pub(super) fn node(
        &mut self,
        b: &mut Builder,
        op: Op,
        args: &[NodeId],
        at: &Expr,
    ) -> Result<NodeId, CheckError> {
        let id = b.node_with(op, args, &mut self.unifier).map_err(|e| {
            if self.unifier.overflowed || matches!(e, ShapeError::Overflow { .. }) {
                let shapes: Vec<String> = args.iter().map(|a| self.show(b.ty(*a))).collect();
                size_overflow(&shapes.join(" and "), at.span)
            } else {
                self.shape_error_nodes(e, at, args, b)
            }
        })?;
        self.spans.insert(id, at.span);
        Ok(id)
    }

    pub(super) fn lower(&mut self, b: &mut Builder, e: &Expr) -> Result<NodeId, CheckError> {
        match &e.kind {
            ExprKind::Number(v) => {
                let id = b.leaf(Op::Const(*v)).expect("a constant has a type");
                self.spans.insert(id, e.span);
                Ok(id)
            }
            ExprKind::Var { name, time } => {
                let (ent, _) = self.names[&name.name];
                let lag = time.map_or(0, |t| t.lag);
                let id = match ent {
                    Entity::Param(p) => {
                        self.used_params.insert(p);
                        self.arg_nodes[&ArgKind::Param(p)]
                    }
                    Entity::Input(i) => {
                        self.used_inputs.insert(i);
                        self.arg_nodes[&ArgKind::Input(i)]
                    }
                    Entity::State(s) if lag > 0 => {
                        self.arg_nodes[&ArgKind::State { state: s, lag }]
                    }
                    Entity::State(s) => self.values[&self.state_eq[&s]],
                    Entity::Value(eq, part) => self.values[&(eq, part)],
                };
                self.spans.entry(id).or_insert(e.span);
                Ok(id)
            }
            ExprKind::Neg(a) => {
                let a = self.lower(b, a)?;
                self.node(b, Op::Unary(Unary::Neg), &[a], e)
            }
            ExprKind::Binary { .. } => {
                // A chain `a + b - c + ...` leans left, as deep as it is long;
                // it is lowered by a loop down its left side, in the order the
                // recursion would take (left operand, then right), so that a
                // sum of thousands of terms does not recurse once per term.
                let mut spine = vec![e];
                let mut first = e;
                while let ExprKind::Binary { lhs, .. } = &first.kind {
                    first = lhs;
                    spine.push(first);
                }
                spine.pop();
                let mut acc = self.lower(b, first)?;
                for at in spine.into_iter().rev() {
                    let ExprKind::Binary { op, rhs, .. } = &at.kind else {
                        unreachable!("the spine holds binary operations only");
                    };
                    let r = self.lower(b, rhs)?;
                    let op = match op {
                        BinOp::Add => Op::Binary(Binary::Add),
                        BinOp::Sub => Op::Binary(Binary::Sub),
                        BinOp::Mul => Op::Binary(Binary::Mul),
                        BinOp::Div => Op::Binary(Binary::Div),
                        BinOp::MatMul => Op::MatVec,
                    };
                    acc = self.node(b, op, &[acc, r], at)?;
                }
                Ok(acc)
            }
            ExprKind::Concat(parts) => {
                let mut ids = Vec::new();
                for p in parts {
                    ids.push(self.lower(b, p)?);
                }
                for (p, id) in parts.iter().zip(&ids) {
                    let t = b.ty(*id).clone();
                    if t.rank() != 1 {
                        return Err(self.rank_error("`[a; b]` stacks vectors", p, &t));
                    }
                }
                self.node(b, Op::Concat, &ids, e)
            }
            ExprKind::Call { func, args } => self.lower_call(b, e, func, args),
        }
    }

    pub(super) fn lower_call(
        &mut self,
        b: &mut Builder,
        e: &Expr,
        func: &ast::Ident,
        args: &[Expr],
    ) -> Result<NodeId, CheckError> {
        let name = func.name.as_str();
        let Some(function) = functions::lookup(name) else {
            return Err(CheckError::UnknownFunction {
                name: name.into(),
                span: func.span,
                suggestion: closest(name, FUNCTIONS.iter().map(|f| f.name)).map(String::from),
            });
        };
        if function.lowering == Lowering::Chunk {
            return Err(CheckError::Invalid {
                message: "`chunk` splits a vector into named parts".into(),
                span: e.span,
                label: "write `[a_t; b_t] = chunk(z_t, 2)` as a whole equation".into(),
            });
        }
        if args.len() != 1 {
            return Err(CheckError::Invalid {
                message: format!("`{name}` takes one argument, found {}", args.len()),
                span: e.span,
                label: format!("write `{name}(a)`"),
            });
        }
        let a = self.lower(b, &args[0])?;
        match function.lowering {
            Lowering::Unary(u) => self.node(b, Op::Unary(u), &[a], e),
            Lowering::Sum => self.node(b, Op::Sum, &[a], e),
            Lowering::Max => self.node(b, Op::Max, &[a], e),
            Lowering::Mean => {
                let t = b.ty(a).clone();
                match t.rank() {
                    0 => Ok(a),
                    1 => {
                        let s = self.node(b, Op::Sum, &[a], e)?;
                        let n = self.node(b, Op::DimSize(t.dims[0].clone()), &[], e)?;
                        self.node(b, Op::Binary(Binary::Div), &[s, n], e)
                    }
                    _ => Err(self.rank_error("`mean` averages a vector", &args[0], &t)),
                }
            }
            Lowering::Softmax => {
                let t = b.ty(a).clone();
                if t.rank() != 1 {
                    return Err(self.rank_error("`softmax` is over a vector", &args[0], &t));
                }
                // softmax(a) = exp(a - max a) / Σ exp(a - max a): the shift keeps
                // exp from overflowing and changes nothing else, so it has no
                // derivative (stop_gradient).
                let m = self.node(b, Op::Max, &[a], e)?;
                let m = self.node(b, Op::StopGradient, &[m], e)?;
                let s = self.node(b, Op::Binary(Binary::Sub), &[a, m], e)?;
                let x = self.node(b, Op::Unary(Unary::Exp), &[s], e)?;
                let z = self.node(b, Op::Sum, &[x], e)?;
                self.node(b, Op::Binary(Binary::Div), &[x, z], e)
            }
            Lowering::Chunk => unreachable!("refused above"),
        }
    }
}

/// Sizes that combine to more than 64 bits hold (a concatenation's sum, a
/// solved parameter size): an error at the expression, never a wrapped size.
fn size_overflow(what: &str, span: crate::span::Span) -> CheckError {
    CheckError::Invalid {
        message: format!(
            "the sizes of {what} overflow: {}",
            crate::graph::dim::Overflow
        ),
        span,
        label: "sizes computed here".into(),
    }
}
