//! Name resolution: every declared name, every equation's targets and every
//! read with its time index.
//!
//! Enters: the AST's declarations, equations and `output` lines. Leaves: the
//! checker's name table (inputs, states, parameters, computed values), the
//! equation giving each state, the outputs, or the first error.
//! Exists so that lowering can assume every name it meets exists and is read at
//! a valid time.

use super::error::CheckError;
use super::walk::visit;
use super::{Checker, Entity, OutputRef};
use crate::diagnostic::closest;
use crate::graph::dim::{Dim, Overflow};
use crate::syntax::ast::{
    self, CellDef, Equation, Expr, ExprKind, Item, SizeExpr, SizeKind, Span, StateInit,
};
use std::collections::HashMap;

impl Checker {
    pub(super) fn declare_name(
        &mut self,
        name: &str,
        e: Entity,
        span: Span,
    ) -> Result<(), CheckError> {
        if let Some((existing, first)) = self.names.get(name) {
            return Err(CheckError::Duplicate {
                name: name.into(),
                span,
                first: *first,
                learned_init: self.learned_inits.contains(name),
                both_params: matches!((existing, e), (Entity::Param(_), Entity::Param(_))),
            });
        }
        self.names.insert(name.into(), (e, span));
        Ok(())
    }

    pub(super) fn declare(&mut self, cell: &CellDef) -> Result<(), CheckError> {
        for i in &cell.inputs {
            let size = size_dim(&i.size)?;
            self.declare_name(&i.name.name, Entity::Input(self.inputs.len()), i.name.span)?;
            self.inputs.push((i.name.name.clone(), i.name.span, size));
        }
        for item in &cell.items {
            match item {
                Item::State(s) => {
                    let size = size_dim(&s.size)?;
                    self.declare_name(&s.name.name, Entity::State(self.states.len()), s.name.span)?;
                    self.states
                        .push((s.name.name.clone(), s.name.span, size.clone(), s.init));
                    if s.init == StateInit::Param {
                        let p = format!("{}_0", s.name.name);
                        self.learned_inits.insert(p.clone());
                        self.declare_name(&p, Entity::Param(self.params.len()), s.span)?;
                        self.params.push((p, s.span, Some(vec![size])));
                    }
                }
                Item::Params(ps) => {
                    for p in ps {
                        let shape = match &p.shape {
                            Some(dims) => {
                                Some(dims.iter().map(size_dim).collect::<Result<Vec<_>, _>>()?)
                            }
                            None => None,
                        };
                        if shape.as_ref().is_some_and(|s| s.len() > 2) {
                            return Err(CheckError::Invalid {
                                message: format!("parameter `{}` has more than two axes", p.name.name),
                                span: p.span,
                                label: "parameters are scalars `[]`, vectors `[n]` or matrices `[m, n]`".into(),
                            });
                        }
                        self.declare_name(
                            &p.name.name,
                            Entity::Param(self.params.len()),
                            p.name.span,
                        )?;
                        self.params.push((p.name.name.clone(), p.name.span, shape));
                    }
                }
                Item::Equation(_) | Item::Output(_) => {}
            }
        }
        Ok(())
    }

    pub(super) fn declare_equations(&mut self, eqs: &[&Equation]) -> Result<(), CheckError> {
        let mut value_eq: HashMap<String, Span> = HashMap::new();
        for (e, eq) in eqs.iter().enumerate() {
            let mut names = Vec::new();
            for (part, t) in eq.targets.iter().enumerate() {
                let name = &t.name.name;
                if let Some(ti) = t.time
                    && ti.lag > 0
                {
                    return Err(CheckError::AssignToPast {
                        name: name.clone(),
                        lag: ti.lag,
                        span: t.name.span.to(ti.span),
                    });
                }
                match self.names.get(name).copied() {
                    Some((Entity::State(s), _)) => {
                        if let Some(first) = value_eq.get(name) {
                            return Err(CheckError::SecondEquation {
                                name: name.clone(),
                                span: t.name.span,
                                first: *first,
                            });
                        }
                        value_eq.insert(name.clone(), t.name.span);
                        self.state_eq.insert(s, (e, part));
                    }
                    Some((Entity::Value(..), first)) => {
                        return Err(CheckError::SecondEquation {
                            name: name.clone(),
                            span: t.name.span,
                            first,
                        });
                    }
                    Some((ent, _)) => {
                        return Err(CheckError::AssignToNonValue {
                            name: name.clone(),
                            what: ent.what(),
                            span: t.name.span,
                        });
                    }
                    None => {
                        self.names
                            .insert(name.clone(), (Entity::Value(e, part), t.name.span));
                    }
                }
                names.push(name.clone());
            }
            self.equations.push((names, eq.span));
        }
        for (s, (name, span, _, _)) in self.states.iter().enumerate() {
            if !self.state_eq.contains_key(&s) {
                return Err(CheckError::MissingStateEquation {
                    name: name.clone(),
                    span: *span,
                });
            }
        }
        // Every name the equations read must exist and be read at a valid time.
        for eq in eqs {
            self.check_reads(&eq.rhs)?;
        }
        Ok(())
    }

    pub(super) fn check_reads(&self, e: &Expr) -> Result<(), CheckError> {
        let mut err = None;
        visit(e, &mut |e| {
            if err.is_some() {
                return;
            }
            if let ExprKind::Var { name, time } = &e.kind {
                err = self.check_read(&name.name, name.span, *time).err();
            }
        });
        err.map_or(Ok(()), Err)
    }

    pub(super) fn check_read(
        &self,
        name: &str,
        span: Span,
        time: Option<ast::TimeIndex>,
    ) -> Result<(), CheckError> {
        if let Some(t) = time
            && t.lag > MAX_LAG
        {
            return Err(CheckError::Invalid {
                message: format!(
                    "`{name}` is read {} steps back; at most {MAX_LAG} are supported",
                    t.lag
                ),
                span: span.to(t.span),
                label: "the runtime keeps this many past values of every state".into(),
            });
        }
        let Some((ent, _)) = self.names.get(name) else {
            return Err(CheckError::UnknownName {
                name: name.into(),
                span,
                suggestion: closest(name, self.names.keys().map(|s| s.as_str())).map(String::from),
            });
        };
        let full = match time {
            Some(t) => span.to(t.span),
            None => span,
        };
        match (ent, time) {
            (Entity::State(_), None) => Err(CheckError::StateWithoutTime {
                name: name.into(),
                span,
            }),
            (Entity::Param(_), Some(_)) => Err(CheckError::TimedParam {
                name: name.into(),
                span: full,
            }),
            (Entity::Input(_) | Entity::Value(..), Some(t)) if t.lag > 0 => {
                Err(CheckError::PastOfNonState {
                    name: name.into(),
                    what: ent.what(),
                    lag: t.lag,
                    span: full,
                })
            }
            _ => Ok(()),
        }
    }

    pub(super) fn resolve_outputs(&self, cell: &CellDef) -> Result<Vec<OutputRef>, CheckError> {
        let mut out = Vec::new();
        for item in &cell.items {
            if let Item::Output(names) = item {
                for n in names {
                    let key = match self.names.get(&n.name) {
                        Some((Entity::State(s), _)) => self.state_eq[s],
                        Some((Entity::Value(e, p), _)) => (*e, *p),
                        Some((ent, _)) => {
                            return Err(CheckError::BadOutput {
                                name: n.name.clone(),
                                what: ent.what(),
                                span: n.span,
                            });
                        }
                        None => {
                            return Err(CheckError::UndefinedOutput {
                                name: n.name.clone(),
                                span: n.span,
                                suggestion: closest(
                                    &n.name,
                                    self.names
                                        .iter()
                                        .filter(|(_, (e, _))| {
                                            matches!(e, Entity::State(_) | Entity::Value(..))
                                        })
                                        .map(|(k, _)| k.as_str()),
                                )
                                .map(String::from),
                            });
                        }
                    };
                    if out.iter().any(|(name, _)| name == &n.name) {
                        return Err(CheckError::Invalid {
                            message: format!("output `{}` is listed twice", n.name),
                            span: n.span,
                            label: "listed again here".into(),
                        });
                    }
                    out.push((n.name.clone(), key));
                }
            }
        }
        if out.is_empty() {
            return Err(CheckError::NoOutput {
                span: cell.name.span,
            });
        }
        Ok(out)
    }
}

/// How far back a state may be read: the runtime keeps that many past values.
pub(super) const MAX_LAG: u32 = 1 << 16;

/// A size as written, which must be able to be positive.
pub(super) fn size_dim(s: &SizeExpr) -> Result<Dim, CheckError> {
    let d = size_expr(s)?;
    // Positive for some binding of its names: a positive constant, or a
    // positive coefficient on some name.
    let can_be_positive = d.konst > 0 || d.terms.values().any(|c| *c > 0);
    if !can_be_positive {
        return Err(CheckError::Invalid {
            message: format!("the size `{d}` is never positive"),
            span: s.span,
            label: "a size counts elements: it must be at least 1".into(),
        });
    }
    Ok(d)
}

pub(super) fn size_expr(s: &SizeExpr) -> Result<Dim, CheckError> {
    let invalid = |label: &str| CheckError::Invalid {
        message: "a size is a sum of names and integers, or a name times an integer".into(),
        span: s.span,
        label: label.into(),
    };
    // Sizes never wrap or saturate: a sum or product past 64 bits is refused
    // where it is written.
    let overflow = |_| CheckError::Invalid {
        message: format!("size `{}` overflows: {Overflow}", written(s)),
        span: s.span,
        label: "more than 64 bits can hold".into(),
    };
    Ok(match &s.kind {
        SizeKind::Int(n) => Dim::konst(*n),
        SizeKind::Name(n) => Dim::sym(n.clone()),
        SizeKind::Add(a, b) => size_expr(a)?.add(&size_expr(b)?).map_err(overflow)?,
        SizeKind::Sub(a, b) => size_expr(a)?.sub(&size_expr(b)?).map_err(overflow)?,
        SizeKind::Mul(a, b) => {
            let (a, b) = (size_expr(a)?, size_expr(b)?);
            match (a.as_const(), b.as_const()) {
                (Some(k), _) => b.scale(k).map_err(overflow)?,
                (_, Some(k)) => a.scale(k).map_err(overflow)?,
                _ => return Err(invalid("a product of two names is not a size")),
            }
        }
    })
}

/// A size as the user wrote it, up to spacing (the folded form would hide
/// the arithmetic that overflowed).
fn written(s: &SizeExpr) -> String {
    let operand = |x: &SizeExpr, tight: bool| match &x.kind {
        SizeKind::Add(..) | SizeKind::Sub(..) if tight => format!("({})", written(x)),
        _ => written(x),
    };
    match &s.kind {
        SizeKind::Int(n) => n.to_string(),
        SizeKind::Name(n) => n.clone(),
        SizeKind::Add(a, b) => format!("{}+{}", written(a), written(b)),
        SizeKind::Sub(a, b) => format!("{}-{}", written(a), operand(b, true)),
        SizeKind::Mul(a, b) => format!("{}*{}", operand(a, true), operand(b, true)),
    }
}
