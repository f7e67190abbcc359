//! Why a cell is invalid, in the language's words.
//!
//! Enters: what a check step found wrong (a name, a span, the shapes involved).
//! Leaves: a [`CheckError`], and its [`Diagnostic`] with labels and help notes.
//! Exists so that every message of the checker is worded in one place, apart
//! from the logic that detects it; shape-rule complaints from `graph::op` are
//! translated here into `·`, `∘` and "a vector [H]".

use super::{Checker, Entity};
use crate::diagnostic::Diagnostic;
use crate::graph::dim::Type;
use crate::graph::op::{DimEq, ShapeError};
use crate::graph::{Builder, NodeId};
use crate::syntax::ast::{BinOp, Expr, ExprKind, Span};
use crate::syntax::functions;

/// Everything that makes a cell invalid.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum CheckError {
    #[error("unknown name `{name}`")]
    UnknownName {
        name: String,
        span: Span,
        suggestion: Option<String>,
    },
    #[error("unknown function `{name}`")]
    UnknownFunction {
        name: String,
        span: Span,
        suggestion: Option<String>,
    },
    #[error("`{name}` is declared twice")]
    Duplicate {
        name: String,
        span: Span,
        first: Span,
        /// The name is also a state's learned initial value (`NAME_0`), and
        /// both declarations are parameters.
        learned_init: bool,
        both_params: bool,
    },
    #[error("state `{name}` is read without a time index")]
    StateWithoutTime { name: String, span: Span },
    #[error(
        "`{name}` is {what} and cannot be read at t-{lag}: only states can be read at earlier steps"
    )]
    PastOfNonState {
        name: String,
        what: &'static str,
        lag: u32,
        span: Span,
    },
    #[error("parameter `{name}` does not change with time: write it without a time index")]
    TimedParam { name: String, span: Span },
    #[error("state `{name}` has no equation giving its new value")]
    MissingStateEquation { name: String, span: Span },
    #[error("`{name}` is given by a second equation")]
    SecondEquation {
        name: String,
        span: Span,
        first: Span,
    },
    #[error("`{name}` is {what}: it cannot be the left side of an equation")]
    AssignToNonValue {
        name: String,
        what: &'static str,
        span: Span,
    },
    #[error(
        "the left side of an equation is this step's value: write `{name}_t`, not `{name}_{{t-{lag}}}`"
    )]
    AssignToPast { name: String, lag: u32, span: Span },
    #[error("cycle within one step: {path}")]
    Cycle {
        path: String,
        span: Span,
        others: Vec<Span>,
    },
    #[error("output `{name}` is not defined")]
    UndefinedOutput {
        name: String,
        span: Span,
        suggestion: Option<String>,
    },
    #[error("`{name}` is {what}; outputs are states or values computed in the step")]
    BadOutput {
        name: String,
        what: &'static str,
        span: Span,
    },
    #[error("the cell has no `output` line")]
    NoOutput { span: Span },
    #[error("{message}")]
    Shape {
        message: String,
        span: Span,
        label: String,
        labels: Vec<(Span, String)>,
        /// `help:` lines.
        notes: Vec<String>,
    },
    #[error("{message}")]
    Invalid {
        message: String,
        span: Span,
        label: String,
    },
}

impl CheckError {
    pub fn to_diagnostic(&self) -> Diagnostic {
        let msg = self.to_string();
        let did_you_mean = |d: Diagnostic, s: &Option<String>| match s {
            Some(s) => d.with_label(format!("did you mean `{s}`?")),
            None => d,
        };
        match self {
            CheckError::UnknownName {
                span, suggestion, ..
            } => did_you_mean(
                Diagnostic::error(msg, *span).with_label("not an input, state, parameter or equation"),
                suggestion,
            ),
            CheckError::UnknownFunction {
                span, suggestion, ..
            } => did_you_mean(Diagnostic::error(msg, *span), suggestion)
                .with_note(format!("help: the functions are {}", functions::help_list())),
            CheckError::Duplicate {
                name,
                span,
                first,
                learned_init,
                both_params,
            } => {
                let d = Diagnostic::error(msg, *span)
                    .with_label("declared again here")
                    .with_secondary(*first, "first declared here");
                match name.strip_suffix("_0").filter(|_| *learned_init) {
                    Some(state) => d.with_note(format!(
                        "note: `state {state}: [...] = param` declares the parameter `{name}` (its learned initial value){}",
                        if *both_params {
                            format!("; remove `{name}` from the `param` line")
                        } else {
                            ", so no other declaration may take that name".to_string()
                        }
                    )),
                    None => d,
                }
            }
            CheckError::StateWithoutTime { name, span } => Diagnostic::error(msg, *span)
                .with_label(format!(
                    "write `{name}_t` for this step's new value or `{name}_{{t-1}}` for the previous step's"
                )),
            CheckError::MissingStateEquation { name, span } => Diagnostic::error(msg, *span)
                .with_label("declared here")
                .with_note(format!("help: add an equation `{name}_t = ...` giving its value after each step")),
            CheckError::PastOfNonState { span, .. }
            | CheckError::TimedParam { span, .. }
            | CheckError::AssignToNonValue { span, .. }
            | CheckError::AssignToPast { span, .. }
            | CheckError::BadOutput { span, .. }
            | CheckError::NoOutput { span } => Diagnostic::error(msg, *span),
            CheckError::SecondEquation { span, first, .. } => Diagnostic::error(msg, *span)
                .with_label("second equation")
                .with_secondary(*first, "first equation"),
            CheckError::Cycle { span, others, .. } => {
                let mut d = Diagnostic::error(msg, *span).with_label("this equation depends on itself through the cycle");
                for o in others {
                    d = d.with_secondary(*o, "part of the cycle");
                }
                d.with_note("help: a value of this step can only depend on earlier steps' states (`h_{t-1}`) in a loop")
            }
            CheckError::UndefinedOutput {
                span, suggestion, ..
            } => did_you_mean(Diagnostic::error(msg, *span), suggestion),
            CheckError::Shape {
                span,
                label,
                labels,
                notes,
                ..
            } => {
                let mut d = Diagnostic::error(msg, *span).with_label(label.clone());
                for (s, l) in labels {
                    d = d.with_secondary(*s, l.clone());
                }
                for n in notes {
                    d = d.with_note(n.clone());
                }
                d
            }
            CheckError::Invalid { span, label, .. } => {
                Diagnostic::error(msg, *span).with_label(label.clone())
            }
        }
    }
}

impl Checker {
    pub(super) fn rank_error(&self, what: &str, at: &Expr, t: &Type) -> CheckError {
        CheckError::Shape {
            message: format!("{what}, but this is {}", self.kind_of(t)),
            span: at.span,
            label: format!("this is {}", self.show(t)),
            labels: vec![],
            notes: vec![],
        }
    }

    /// A shape rule's complaint, in the language's words, with each operand's
    /// shape and where it comes from.
    pub(super) fn shape_error_nodes(
        &self,
        e: ShapeError,
        at: &Expr,
        args: &[NodeId],
        b: &Builder,
    ) -> CheckError {
        let (span, verb) = match &at.kind {
            ExprKind::Binary { op, op_span, .. } => (*op_span, format!("`{}`", op_symbol(*op))),
            _ => (at.span, "this".to_string()),
        };
        let message = match &e {
            ShapeError::Mismatch { left, right, .. } => match &at.kind {
                ExprKind::Binary {
                    op: BinOp::MatMul, ..
                } => format!(
                    "matrix · vector: the matrix has {} columns but the vector has {} rows",
                    self.unifier.named(&left.dims[1]),
                    self.unifier.named(&right.dims[0])
                ),
                _ => format!(
                    "shape mismatch: {verb} cannot combine {} and {}",
                    self.show(left),
                    self.show(right)
                ),
            },
            ShapeError::Rank {
                expected, found, ..
            } => {
                format!("{verb} needs {expected}, but found {}", self.kind_of(found))
            }
            other => other.to_string(),
        };
        let mut notes = Vec::new();
        if let ExprKind::Binary {
            op: BinOp::MatMul, ..
        } = &at.kind
            && let [l, r] = args
            && self.could_be_same_vector(b.ty(*l), b.ty(*r))
        {
            notes.push(
                "help: `·` is the product of a matrix and a vector; for the elementwise \
                 product of two vectors write `∘` (or `*`), and `sum(a ∘ b)` for their dot \
                 product"
                    .to_string(),
            );
        }
        let mut labels: Vec<(Span, String)> = Vec::new();
        let operand_exprs: Vec<&Expr> = match &at.kind {
            ExprKind::Binary { lhs, rhs, .. } => vec![lhs, rhs],
            ExprKind::Neg(a) => vec![a],
            ExprKind::Concat(ps) => ps.iter().collect(),
            ExprKind::Call { args, .. } => args.iter().collect(),
            _ => vec![],
        };
        for (x, id) in operand_exprs.iter().zip(args) {
            let t = b.ty(*id);
            let mut l = format!("this is {}", self.show(t));
            if let ExprKind::Var { name, .. } = &x.kind
                && let Some((ent, decl)) = self.names.get(&name.name)
            {
                let how = match ent {
                    Entity::Param(p) if self.params[*p].2.is_none() => " (inferred from its uses)",
                    _ => "",
                };
                l = format!("`{}` is {}{how}", name.name, self.show(t));
                let declared = (*decl, format!("`{}` declared here", name.name));
                // `W · W` reads one name twice: its declaration is shown once.
                if *decl != x.span
                    && !matches!(ent, Entity::Value(..))
                    && !labels.contains(&declared)
                {
                    labels.push(declared);
                }
            }
            labels.push((x.span, l));
        }
        CheckError::Shape {
            message,
            span,
            label: String::new(),
            labels,
            notes,
        }
    }

    /// "a scalar", "a vector [H]", "a matrix [H, X]", with sizes as far as
    /// they are solved and open ones by their names, never as unknowns.
    pub(super) fn kind_of(&self, t: &Type) -> String {
        match t.rank() {
            0 => "a scalar".into(),
            1 => format!("a vector {}", self.show(t)),
            _ => format!("a matrix {}", self.show(t)),
        }
    }

    /// Whether `a` and `b` are vectors whose lengths are, or may still become,
    /// equal: then `a · b` was most likely meant as `a ∘ b`. Tried on a copy of
    /// the unifier, so that asking solves nothing.
    fn could_be_same_vector(&self, a: &Type, b: &Type) -> bool {
        a.rank() == 1 && b.rank() == 1 && self.unifier.clone().equate(&a.dims[0], &b.dims[0])
    }
}

pub(super) fn op_symbol(op: BinOp) -> &'static str {
    match op {
        BinOp::MatMul => "·",
        BinOp::Mul => "∘",
        o => o.symbol(),
    }
}
