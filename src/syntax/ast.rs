//! The abstract syntax tree of a `.cell` file, as the parser produces it.
//!
//! Every name is already in its canonical ASCII spelling (`C̃`, `\tilde{C}` and
//! `C_tilde` all arrive as `C_tilde`), every operator spelling is already one
//! operator, and every node keeps the byte span of the (NFC-normalised) source it
//! came from, so that later stages can point at it.

pub use crate::span::Span;

/// A name in its canonical ASCII spelling, with where it was written.
#[derive(Clone, Debug, PartialEq)]
pub struct Ident {
    pub name: String,
    pub span: Span,
}

/// A whole file: exactly one cell.
#[derive(Clone, Debug, PartialEq)]
pub struct CellDef {
    pub name: Ident,
    pub inputs: Vec<InputDecl>,
    pub items: Vec<Item>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct InputDecl {
    pub name: Ident,
    /// The vector size `[X]`.
    pub size: SizeExpr,
    pub span: Span,
}

/// One line (or one logical statement) of a cell body, in source order.
#[derive(Clone, Debug, PartialEq)]
pub enum Item {
    State(StateDecl),
    /// One `param` line: one or more parameters.
    Params(Vec<ParamDecl>),
    Equation(Equation),
    /// One `output` line: one or more names.
    Output(Vec<Ident>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct StateDecl {
    pub name: Ident,
    pub size: SizeExpr,
    pub init: StateInit,
    pub span: Span,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StateInit {
    /// `= 0`, or no `= ...` at all.
    Zero,
    /// `= param`: a learnable initial value, the parameter `NAME_0`.
    Param,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ParamDecl {
    pub name: Ident,
    /// `None` when no shape is written (it is inferred from use); `Some(vec![])`
    /// for a written scalar `[]`, one entry per axis otherwise.
    pub shape: Option<Vec<SizeExpr>>,
    pub span: Span,
}

/// A size as written: `X`, `4*H`, `H+X`, `3+7`.
#[derive(Clone, Debug, PartialEq)]
pub struct SizeExpr {
    pub kind: SizeKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum SizeKind {
    Int(i64),
    Name(String),
    Add(Box<SizeExpr>, Box<SizeExpr>),
    Sub(Box<SizeExpr>, Box<SizeExpr>),
    Mul(Box<SizeExpr>, Box<SizeExpr>),
}

/// `NAME_t = EXPR`, or `[a_t; b_t; ...] = chunk(z_t, n)` (several targets).
#[derive(Clone, Debug, PartialEq)]
pub struct Equation {
    /// One target, or several for a destructuring `[a; b; c] = ...`.
    pub targets: Vec<Target>,
    /// True when the left side was written in brackets (`[a] = ...` is a
    /// destructuring of one part, not a plain equation).
    pub destructuring: bool,
    pub rhs: Expr,
    pub span: Span,
}

/// A name on the left side of an equation.
#[derive(Clone, Debug, PartialEq)]
pub struct Target {
    pub name: Ident,
    /// The time index as written; `None` for a bare name.
    pub time: Option<TimeIndex>,
}

/// A time subscript: `t` is `lag == 0`, `t-k` is `lag == k`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeIndex {
    pub lag: u32,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ExprKind {
    Number(f64),
    /// A name, with its time subscript if it had one (`h_{t-1}`, `x_t`, `h[t-1]`).
    Var {
        name: Ident,
        time: Option<TimeIndex>,
    },
    Neg(Box<Expr>),
    Binary {
        op: BinOp,
        op_span: Span,
        lhs: Box<Expr>,
        rhs: Box<Expr>,
    },
    /// `f(a, ...)`. The function name is canonical when it is a known spelling
    /// (`σ`, `\sigma` → `sigmoid`; `ReLU` → `relu`; `\tanh` → `tanh`; `\exp`,
    /// `\log`, `\sqrt{}` → `exp`, `log`, `sqrt`), and as written otherwise, so that
    /// the checker can report an unknown function by its own name.
    Call {
        func: Ident,
        args: Vec<Expr>,
    },
    /// `[a; b; c]`
    Concat(Vec<Expr>),
}

/// Dropped with a stack of its own: a flat sum of thousands of terms is a
/// tree as deep as it is long, which the derived drop would recurse down.
impl Drop for Expr {
    fn drop(&mut self) {
        if matches!(self.kind, ExprKind::Number(_) | ExprKind::Var { .. }) {
            return;
        }
        let mut stack = Vec::new();
        take_children(&mut self.kind, &mut stack);
        while let Some(mut e) = stack.pop() {
            // Emptied here, `e` drops without recursing.
            take_children(&mut e.kind, &mut stack);
        }
    }
}

fn take_children(kind: &mut ExprKind, out: &mut Vec<Expr>) {
    match std::mem::replace(kind, ExprKind::Number(0.0)) {
        ExprKind::Number(_) | ExprKind::Var { .. } => {}
        ExprKind::Neg(a) => out.push(*a),
        ExprKind::Binary { lhs, rhs, .. } => {
            out.push(*lhs);
            out.push(*rhs);
        }
        ExprKind::Call { args, .. } => out.extend(args),
        ExprKind::Concat(ps) => out.extend(ps),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinOp {
    Add,
    Sub,
    /// `@`, `·`, `⋅`, `\cdot`
    MatMul,
    /// `*`, `∘`, `⊙`, `\circ`, `\odot`
    Mul,
    /// `/`, `\frac{a}{b}`
    Div,
}

impl BinOp {
    pub fn symbol(self) -> &'static str {
        match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::MatMul => "@",
            BinOp::Mul => "*",
            BinOp::Div => "/",
        }
    }
}
