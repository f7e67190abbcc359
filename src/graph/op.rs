//! The closed set of primitive operations of the IR.
//!
//! Everything the language can say is lowered to these by the checker (softmax,
//! mean, chunk and concatenation are sugar over them). For each op, one `match`
//! arm in each of three functions says all there is to know about it:
//!
//! * [`Op::result_type`] — its shape rule;
//! * [`Op::eval`] — its reference semantics on ndarray, the oracle of every back end;
//! * [`Op::vjp`] — its reverse-mode rule, building the cotangents of its operands
//!   as new nodes of the same IR.
//!
//! Values with a batch axis carry it first: a batched vector is `[B, n]`.
//! Elementwise ops broadcast a scalar over a vector or matrix, and an unbatched
//! value over the batch.

use super::dim::{Bindings, Dim, Type};
use super::{Builder, NodeId};
use ndarray::{ArrayD, ArrayViewD, Axis, IxDyn, Slice};
use std::fmt;

/// Defined with the scalar semantics, below every stage, so that the language's
/// function table (in `syntax`) can name the ops it lowers to.
pub use crate::scalar::Unary;

/// The float types the interpreter evaluates in.
pub trait Real:
    num_traits::Float
    + num_traits::FromPrimitive
    + num_traits::NumAssign
    + ndarray::LinalgScalar
    + ndarray::ScalarOperand
    + fmt::Debug
    + fmt::Display
    + Send
    + Sync
    + 'static
{
}
impl Real for f32 {}
impl Real for f64 {}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Binary {
    Add,
    Sub,
    Mul,
    Div,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// The graph's argument number `i` (a parameter, an input, a state read...).
    Arg(usize),
    /// An unbatched scalar constant.
    Const(f64),
    /// An unbatched scalar: the value of a size (the `n` of `mean`).
    DimSize(Dim),
    /// Zeros of the given type.
    Zeros(Type),
    Unary(Unary),
    /// Elementwise, with broadcasting of scalars and of unbatched values.
    Binary(Binary),
    /// `[m, n] · [n] → [m]`
    MatVec,
    /// `[m, n]ᵀ · [m] → [n]`
    MatTVec,
    /// `[m] ⊗ [n] → [m, n]`
    Outer,
    /// `Σ_b a_b ⊗ c_b`: two batches of vectors → one unbatched matrix (the
    /// gradient of a shared matrix; one GEMM rather than B outer products).
    OuterSum,
    /// Vectors end to end.
    Concat,
    /// `len` elements of a vector from `start`.
    Slice {
        start: Dim,
        len: Dim,
    },
    /// Sum of all elements → scalar.
    Sum,
    /// Largest element → scalar.
    Max,
    /// One-hot of the first largest element (the derivative of `Max`).
    ArgMaxMask,
    /// A scalar repeated to the given shape.
    Broadcast(Vec<Dim>),
    /// Sum over the batch axis: batched → unbatched.
    BatchSum,
    /// The value itself, with no derivative: for a shift that provably does
    /// not change the result (softmax's `max`), so that its gradient, zero in
    /// exact arithmetic, is not computed as rounding noise.
    StopGradient,
}

/// Why an op cannot take operands of these types.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ShapeError {
    #[error("`{op}` takes {expected} operand(s), found {found}")]
    Arity {
        op: String,
        expected: String,
        found: usize,
    },
    #[error("`{op}` needs {expected}, found {found}")]
    Rank {
        op: String,
        expected: String,
        found: Type,
    },
    #[error("{what}: {left} and {right} do not match")]
    Mismatch {
        what: String,
        left: Type,
        right: Type,
    },
    /// An argument's type is the graph's, not an op's.
    #[error("arguments are typed by the graph")]
    ArgumentType,
    #[error("`{op}` takes {expected}")]
    Batch {
        op: &'static str,
        expected: &'static str,
    },
    /// A size the op computes does not fit in 64 bits.
    #[error("the size {size} overflows: {}", super::dim::Overflow)]
    Overflow { size: String },
}

/// How a shape rule compares sizes: the verifier asks for equality, the checker
/// unifies unknowns. Returns false when the two cannot be equal.
pub trait DimEq {
    fn equate(&mut self, a: &Dim, b: &Dim) -> bool;
}

/// Sizes are equal only when they are the same expression.
pub struct Strict;
impl DimEq for Strict {
    fn equate(&mut self, a: &Dim, b: &Dim) -> bool {
        a == b
    }
}

/// What evaluation needs besides the operands.
pub struct EvalCtx<'a> {
    pub bindings: &'a Bindings,
    pub batch: usize,
}

impl Op {
    pub fn name(&self) -> String {
        match self {
            Op::Arg(i) => format!("arg{i}"),
            Op::Const(c) => format!("const {}", fmt_num(*c)),
            Op::DimSize(d) => format!("size {d}"),
            Op::Zeros(_) => "zeros".into(),
            Op::Unary(u) => format!("{u:?}").to_lowercase(),
            Op::Binary(b) => format!("{b:?}").to_lowercase(),
            Op::MatVec => "matvec".into(),
            Op::MatTVec => "matTvec".into(),
            Op::Outer => "outer".into(),
            Op::OuterSum => "outer_sum".into(),
            Op::Concat => "concat".into(),
            Op::Slice { start, len } => format!("slice[{start}; {len}]"),
            Op::Sum => "sum".into(),
            Op::Max => "max".into(),
            Op::ArgMaxMask => "argmax_mask".into(),
            Op::Broadcast(d) => format!("broadcast{}", super::dim::shape_string(d)),
            Op::BatchSum => "batch_sum".into(),
            Op::StopGradient => "stop_gradient".into(),
        }
    }

    /// The same op with every size in it mapped (used when inference resolves
    /// unknowns).
    pub fn map_dims(&self, f: &mut impl FnMut(&Dim) -> Dim) -> Op {
        match self {
            Op::DimSize(d) => Op::DimSize(f(d)),
            Op::Zeros(t) => Op::Zeros(t.map_dims(f)),
            Op::Slice { start, len } => Op::Slice {
                start: f(start),
                len: f(len),
            },
            Op::Broadcast(ds) => Op::Broadcast(ds.iter().map(f).collect()),
            // Every op listed, so that a new op holding a size cannot be missed.
            Op::Arg(_)
            | Op::Const(_)
            | Op::Unary(_)
            | Op::Binary(_)
            | Op::MatVec
            | Op::MatTVec
            | Op::Outer
            | Op::OuterSum
            | Op::Concat
            | Op::Sum
            | Op::Max
            | Op::ArgMaxMask
            | Op::BatchSum
            | Op::StopGradient => self.clone(),
        }
    }

    /// Leaves have no operands and carry or look up their own type.
    pub fn is_leaf(&self) -> bool {
        match self {
            Op::Arg(_) | Op::Const(_) | Op::DimSize(_) | Op::Zeros(_) => true,
            Op::Unary(_)
            | Op::Binary(_)
            | Op::MatVec
            | Op::MatTVec
            | Op::Outer
            | Op::OuterSum
            | Op::Concat
            | Op::Slice { .. }
            | Op::Sum
            | Op::Max
            | Op::ArgMaxMask
            | Op::Broadcast(_)
            | Op::BatchSum
            | Op::StopGradient => false,
        }
    }

    /// The shape rule. `Arg` is typed by the graph's argument list, so it is
    /// not handled here.
    pub fn result_type(&self, args: &[&Type], eq: &mut dyn DimEq) -> Result<Type, ShapeError> {
        let arity = |n: usize| -> Result<(), ShapeError> {
            if args.len() == n {
                Ok(())
            } else {
                Err(ShapeError::Arity {
                    op: self.name(),
                    expected: n.to_string(),
                    found: args.len(),
                })
            }
        };
        let rank = |t: &Type, r: usize, what: &str| -> Result<(), ShapeError> {
            if t.rank() == r {
                Ok(())
            } else {
                Err(ShapeError::Rank {
                    op: self.name(),
                    expected: what.into(),
                    found: t.clone(),
                })
            }
        };
        let mut same = |a: &Dim, b: &Dim, what: &str, l: &Type, r: &Type| {
            if eq.equate(a, b) {
                Ok(())
            } else {
                Err(ShapeError::Mismatch {
                    what: what.into(),
                    left: l.clone(),
                    right: r.clone(),
                })
            }
        };
        Ok(match self {
            Op::Arg(_) => return Err(ShapeError::ArgumentType),
            Op::Const(_) | Op::DimSize(_) => {
                arity(0)?;
                Type::scalar(false)
            }
            Op::Zeros(t) => {
                arity(0)?;
                t.clone()
            }
            Op::Unary(_) => {
                arity(1)?;
                args[0].clone()
            }
            Op::Binary(b) => {
                arity(2)?;
                let (l, r) = (args[0], args[1]);
                let batched = l.batched || r.batched;
                let dims = if l.rank() == 0 {
                    r.dims.clone()
                } else if r.rank() == 0 {
                    l.dims.clone()
                } else {
                    if l.rank() != r.rank() {
                        return Err(ShapeError::Mismatch {
                            what: format!("`{}` of a vector and a matrix", binary_symbol(*b)),
                            left: l.clone(),
                            right: r.clone(),
                        });
                    }
                    for (a, c) in l.dims.iter().zip(&r.dims) {
                        same(a, c, &format!("elementwise `{}`", binary_symbol(*b)), l, r)?;
                    }
                    l.dims.clone()
                };
                Type::new(batched, dims)
            }
            Op::MatVec | Op::MatTVec => {
                arity(2)?;
                let (m, v) = (args[0], args[1]);
                rank(m, 2, "a matrix on the left")?;
                rank(v, 1, "a vector on the right")?;
                let (inner, outer) = if *self == Op::MatVec {
                    (&m.dims[1], &m.dims[0])
                } else {
                    (&m.dims[0], &m.dims[1])
                };
                same(inner, &v.dims[0], "matrix · vector", m, v)?;
                Type::vector(m.batched || v.batched, outer.clone())
            }
            Op::Outer => {
                arity(2)?;
                rank(args[0], 1, "a vector")?;
                rank(args[1], 1, "a vector")?;
                Type::new(
                    args[0].batched || args[1].batched,
                    vec![args[0].dims[0].clone(), args[1].dims[0].clone()],
                )
            }
            Op::OuterSum => {
                arity(2)?;
                rank(args[0], 1, "a vector")?;
                rank(args[1], 1, "a vector")?;
                if !(args[0].batched && args[1].batched) {
                    return Err(ShapeError::Batch {
                        op: "outer_sum",
                        expected: "two batches of vectors",
                    });
                }
                Type::new(
                    false,
                    vec![args[0].dims[0].clone(), args[1].dims[0].clone()],
                )
            }
            Op::Concat => {
                if args.is_empty() {
                    return Err(ShapeError::Arity {
                        op: self.name(),
                        expected: "one or more".into(),
                        found: 0,
                    });
                }
                let mut n = Dim::konst(0);
                for a in args {
                    rank(a, 1, "vectors")?;
                }
                for a in args {
                    n = n.add(&a.dims[0]).map_err(|_| ShapeError::Overflow {
                        size: args
                            .iter()
                            .map(|a| a.dims[0].to_string())
                            .collect::<Vec<_>>()
                            .join("+"),
                    })?;
                }
                Type::vector(args.iter().any(|a| a.batched), n)
            }
            Op::Slice { len, .. } => {
                arity(1)?;
                rank(args[0], 1, "a vector")?;
                Type::vector(args[0].batched, len.clone())
            }
            Op::Sum | Op::Max => {
                arity(1)?;
                Type::scalar(args[0].batched)
            }
            Op::ArgMaxMask | Op::StopGradient => {
                arity(1)?;
                args[0].clone()
            }
            Op::Broadcast(dims) => {
                arity(1)?;
                rank(args[0], 0, "a scalar")?;
                Type::new(args[0].batched, dims.clone())
            }
            Op::BatchSum => {
                arity(1)?;
                if !args[0].batched {
                    return Err(ShapeError::Batch {
                        op: "batch_sum",
                        expected: "a batched value",
                    });
                }
                Type::new(false, args[0].dims.clone())
            }
        })
    }

    /// Reference semantics. `out` is the node's type; each operand comes with
    /// its type so that broadcasting is explicit. `Arg` is looked up by the
    /// evaluator, not here.
    pub fn eval<F: Real>(
        &self,
        out: &Type,
        args: &[(&ArrayViewD<'_, F>, &Type)],
        ctx: &EvalCtx,
    ) -> Result<ArrayD<F>, String> {
        let shape = out.array_shape(ctx.batch, ctx.bindings)?;
        let c = |v: f64| F::from_f64(v).unwrap_or_else(F::nan);
        Ok(match self {
            Op::Arg(_) => return Err("arguments are evaluated by the graph".into()),
            Op::Const(v) => ArrayD::from_elem(IxDyn(&[]), c(*v)),
            Op::DimSize(d) => ArrayD::from_elem(IxDyn(&[]), c(d.eval(ctx.bindings)? as f64)),
            Op::Zeros(_) => ArrayD::zeros(IxDyn(&shape)),
            Op::Unary(u) => {
                let u = *u;
                args[0].0.mapv(|x| u.apply(x))
            }
            Op::Binary(b) => {
                let l = align(args[0].0, args[0].1, out);
                let r = align(args[1].0, args[1].1, out);
                let v = match b {
                    Binary::Add => &l + &r,
                    Binary::Sub => &l - &r,
                    Binary::Mul => &l * &r,
                    Binary::Div => &l / &r,
                };
                v.into_dyn()
            }
            Op::MatVec | Op::MatTVec => {
                let transpose = *self == Op::MatTVec;
                matvec(args[0], args[1], out, &shape, transpose)
            }
            Op::Outer => {
                // a[..., :, None] * v[..., None, :], batch axes lined up.
                let a = lift(args[0], out.batched, 1);
                let v = lift(args[1], out.batched, 0);
                (&a * &v).into_dyn()
            }
            Op::OuterSum => {
                use ndarray::Ix2;
                let a = args[0]
                    .0
                    .view()
                    .into_dimensionality::<Ix2>()
                    .map_err(|e| e.to_string())?;
                let v = args[1]
                    .0
                    .view()
                    .into_dimensionality::<Ix2>()
                    .map_err(|e| e.to_string())?;
                a.t().dot(&v).into_dyn()
            }
            Op::Concat => {
                let parts: Vec<ArrayD<F>> = args
                    .iter()
                    .map(|(a, t)| {
                        let mut s = shape.clone();
                        *s.last_mut().expect("concat is of vectors") =
                            *a.shape().last().expect("vector");
                        align(a, t, out)
                            .broadcast(IxDyn(&s))
                            .map(|v| v.to_owned())
                            .ok_or_else(|| "concat: operands do not line up".to_string())
                    })
                    .collect::<Result<_, _>>()?;
                let views: Vec<_> = parts.iter().map(|p| p.view()).collect();
                ndarray::concatenate(Axis(shape.len() - 1), &views).map_err(|e| e.to_string())?
            }
            Op::Slice { start, len } => {
                let a = args[0].0;
                let s = start.eval(ctx.bindings)?;
                let n = len.eval(ctx.bindings)?;
                let have = *a.shape().last().expect("vector") as i64;
                if s < 0 || n < 0 || s.checked_add(n).is_none_or(|end| end > have) {
                    return Err(format!(
                        "slice of {n} elements from {s} does not fit a vector of {have}"
                    ));
                }
                let last = Axis(a.ndim() - 1);
                a.slice_axis(last, Slice::from(s as usize..(s + n) as usize))
                    .to_owned()
            }
            Op::Sum | Op::Max | Op::ArgMaxMask => {
                let (a, t) = args[0];
                let mut res = ArrayD::zeros(IxDyn(&shape));
                let rows: Vec<ArrayD<F>> = if t.batched {
                    a.outer_iter().map(|r| r.to_owned()).collect()
                } else {
                    vec![a.to_owned()]
                };
                for (b, r) in rows.iter().enumerate() {
                    let flat: Vec<F> = r.iter().copied().collect();
                    let idx = |res: &mut ArrayD<F>, v: F| {
                        if t.batched { res[[b]] = v } else { res[[]] = v }
                    };
                    match self {
                        Op::Sum => idx(&mut res, flat.iter().fold(F::zero(), |s, &x| s + x)),
                        Op::Max => idx(&mut res, first_max(&flat).map_or(F::nan(), |i| flat[i])),
                        Op::ArgMaxMask => {
                            if let Some(i) = first_max(&flat) {
                                let mut dst = if t.batched {
                                    res.index_axis_mut(Axis(0), b)
                                } else {
                                    res.view_mut()
                                };
                                let flat_dst = dst.as_slice_mut().expect("fresh array");
                                flat_dst[i] = F::one();
                            }
                        }
                        other => unreachable!("{other:?} is not a reduction"),
                    }
                }
                res
            }
            Op::Broadcast(_) => align(args[0].0, args[0].1, out)
                .broadcast(IxDyn(&shape))
                .ok_or("broadcast: shapes do not line up")?
                .to_owned(),
            Op::BatchSum => args[0].0.sum_axis(Axis(0)),
            Op::StopGradient => args[0].0.to_owned(),
        })
    }

    /// The reverse-mode rule: given the node `y = op(args)` and the cotangent `g`
    /// of `y`, adds to `b` the nodes computing each operand's cotangent, already
    /// reduced to the operand's type (`None`: no dependence, e.g. a step function).
    pub fn vjp(
        &self,
        b: &mut Builder,
        y: NodeId,
        args: &[NodeId],
        g: NodeId,
    ) -> Result<Vec<Option<NodeId>>, ShapeError> {
        use Binary::*;
        let one = || Op::Const(1.0);
        Ok(match self {
            Op::Arg(_) | Op::Const(_) | Op::DimSize(_) | Op::Zeros(_) => vec![],
            Op::Unary(u) => {
                let a = args[0];
                let d = match u {
                    Unary::Neg => b.unary(Unary::Neg, g)?,
                    Unary::Exp => b.binary(Mul, g, y)?,
                    Unary::Log => b.binary(Div, g, a)?,
                    // tanh' = 1 - tanh², reusing the forward value.
                    Unary::Tanh => {
                        let yy = b.binary(Mul, y, y)?;
                        let k = b.leaf(one())?;
                        let d = b.binary(Sub, k, yy)?;
                        b.binary(Mul, g, d)?
                    }
                    // σ' = σ(1 - σ), reusing the forward value.
                    Unary::Sigmoid => {
                        let k = b.leaf(one())?;
                        let d = b.binary(Sub, k, y)?;
                        let d = b.binary(Mul, y, d)?;
                        b.binary(Mul, g, d)?
                    }
                    Unary::Relu => {
                        let s = b.unary(Unary::Step, a)?;
                        b.binary(Mul, g, s)?
                    }
                    Unary::Abs => {
                        let s = b.unary(Unary::Sign, a)?;
                        b.binary(Mul, g, s)?
                    }
                    // (√a)' = 1 / (2√a)
                    Unary::Sqrt => {
                        let q = b.binary(Div, g, y)?;
                        let h = b.leaf(Op::Const(0.5))?;
                        b.binary(Mul, q, h)?
                    }
                    Unary::Softplus => {
                        let s = b.unary(Unary::Sigmoid, a)?;
                        b.binary(Mul, g, s)?
                    }
                    Unary::Step | Unary::Sign => return Ok(vec![None]),
                };
                vec![Some(d)]
            }
            Op::Binary(op) => {
                let (l, r) = (args[0], args[1]);
                let (gl, gr) = match op {
                    Add => (g, g),
                    Sub => (g, b.unary(Unary::Neg, g)?),
                    Mul => (b.binary(Mul, g, r)?, b.binary(Mul, g, l)?),
                    // d(l/r)/dr = -l/r² = -y/r
                    Div => {
                        let gl = b.binary(Div, g, r)?;
                        let gy = b.binary(Mul, g, y)?;
                        let q = b.binary(Div, gy, r)?;
                        (gl, b.unary(Unary::Neg, q)?)
                    }
                };
                vec![Some(b.unbroadcast(gl, l)?), Some(b.unbroadcast(gr, r)?)]
            }
            Op::MatVec => {
                let (m, v) = (args[0], args[1]);
                let gm = outer_for(b, m, g, v)?;
                let gv = b.node(Op::MatTVec, &[m, g])?;
                vec![Some(b.unbroadcast(gm, m)?), Some(b.unbroadcast(gv, v)?)]
            }
            Op::MatTVec => {
                let (m, u) = (args[0], args[1]);
                let gm = outer_for(b, m, u, g)?;
                let gu = b.node(Op::MatVec, &[m, g])?;
                vec![Some(b.unbroadcast(gm, m)?), Some(b.unbroadcast(gu, u)?)]
            }
            Op::Outer | Op::OuterSum => {
                let (u, v) = (args[0], args[1]);
                let gu = b.node(Op::MatVec, &[g, v])?;
                let gv = b.node(Op::MatTVec, &[g, u])?;
                vec![Some(b.unbroadcast(gu, u)?), Some(b.unbroadcast(gv, v)?)]
            }
            Op::Concat => {
                let mut start = Dim::konst(0);
                let mut out = Vec::new();
                for &a in args {
                    let len = b.ty(a).dims[0].clone();
                    let s = b.node(
                        Op::Slice {
                            start: start.clone(),
                            len: len.clone(),
                        },
                        &[g],
                    )?;
                    out.push(Some(b.unbroadcast(s, a)?));
                    start = start.add(&len).map_err(|_| ShapeError::Overflow {
                        size: format!("{start}+{len}"),
                    })?;
                }
                out
            }
            // The cotangent of a slice is the cotangent placed back among zeros.
            Op::Slice { start, len } => {
                let a = args[0];
                let n = b.ty(a).dims[0].clone();
                let batched = b.ty(g).batched;
                let rest =
                    n.sub(start)
                        .and_then(|r| r.sub(len))
                        .map_err(|_| ShapeError::Overflow {
                            size: format!("{n}-{start}-{len}"),
                        })?;
                let mut parts = Vec::new();
                for d in [start.clone(), Dim::konst(-1), rest] {
                    if d == Dim::konst(-1) {
                        parts.push(g);
                    } else if d != Dim::konst(0) {
                        parts.push(b.leaf(Op::Zeros(Type::vector(batched, d)))?);
                    }
                }
                let ga = if parts.len() == 1 {
                    g
                } else {
                    b.node(Op::Concat, &parts)?
                };
                vec![Some(b.unbroadcast(ga, a)?)]
            }
            Op::Sum => {
                let dims = b.ty(args[0]).dims.clone();
                let ga = if dims.is_empty() {
                    g
                } else {
                    b.node(Op::Broadcast(dims), &[g])?
                };
                vec![Some(b.unbroadcast(ga, args[0])?)]
            }
            // The gradient of max goes to the first largest element.
            Op::Max => {
                let m = b.node(Op::ArgMaxMask, &[args[0]])?;
                let ga = b.binary(Mul, m, g)?;
                vec![Some(b.unbroadcast(ga, args[0])?)]
            }
            Op::ArgMaxMask | Op::StopGradient => vec![None],
            Op::Broadcast(_) => {
                let s = b.node(Op::Sum, &[g])?;
                vec![Some(b.unbroadcast(s, args[0])?)]
            }
            Op::BatchSum => {
                let t = b.ty(args[0]).clone();
                let z = b.leaf(Op::Zeros(t))?;
                vec![Some(b.binary(Add, z, g)?)]
            }
        })
    }
}

/// `a ⊗ c` as the cotangent of matrix `m`: summed over the batch in one op
/// when `m` is shared by the batch and both vectors are batched.
fn outer_for(b: &mut Builder, m: NodeId, a: NodeId, c: NodeId) -> Result<NodeId, ShapeError> {
    if !b.ty(m).batched && b.ty(a).batched && b.ty(c).batched {
        return b.node(Op::OuterSum, &[a, c]);
    }
    let o = b.node(Op::Outer, &[a, c])?;
    b.unbroadcast(o, m)
}

pub fn binary_symbol(b: Binary) -> &'static str {
    match b {
        Binary::Add => "+",
        Binary::Sub => "-",
        Binary::Mul => "*",
        Binary::Div => "/",
    }
}

pub(crate) fn fmt_num(v: f64) -> String {
    if v == v.trunc() && v.abs() < 1e15 {
        format!("{v:.1}")
    } else {
        format!("{v:e}")
    }
}

fn first_max<F: Real>(v: &[F]) -> Option<usize> {
    let mut best: Option<usize> = None;
    for (i, &x) in v.iter().enumerate() {
        if x.is_nan() {
            return Some(i);
        }
        if best.is_none_or(|b| x > v[b]) {
            best = Some(i);
        }
    }
    best
}

/// A view of an operand with axes inserted so that ndarray's broadcasting lines
/// it up with the result: a batch axis of length 1 for an unbatched operand of a
/// batched result, trailing axes of length 1 for a scalar.
fn align<'a, F: Real>(
    a: &'a ArrayViewD<'_, F>,
    t: &Type,
    out: &Type,
) -> ndarray::ArrayViewD<'a, F> {
    let mut v = a.view();
    if out.batched && !t.batched {
        v.insert_axis_inplace(Axis(0));
    }
    for _ in t.rank()..out.rank() {
        let n = v.ndim();
        v.insert_axis_inplace(Axis(n));
    }
    v
}

/// An outer product's operand with a batch axis when the result has one, and
/// a new axis of length 1 at `axis` (counted after the batch axis).
fn lift<'a, F: Real>(
    x: (&'a ArrayViewD<'_, F>, &Type),
    batched: bool,
    axis: usize,
) -> ndarray::ArrayViewD<'a, F> {
    let mut v = x.0.view();
    if batched && !x.1.batched {
        v.insert_axis_inplace(Axis(0));
    }
    v.insert_axis(Axis(axis + usize::from(batched)))
}

/// Row `b` of a possibly batched operand.
fn row<'a, F: Real>(a: (&'a ArrayViewD<'_, F>, &Type), b: usize) -> ndarray::ArrayViewD<'a, F> {
    if a.1.batched {
        a.0.index_axis(Axis(0), b)
    } else {
        a.0.view()
    }
}

/// Calls `f(b, row_b_of_result)` for each batch row (once for an unbatched result).
fn for_batch<F: Real>(
    out: &Type,
    res: &mut ArrayD<F>,
    mut f: impl FnMut(usize, ndarray::ArrayViewMutD<F>),
) {
    if out.batched {
        for (b, r) in res.outer_iter_mut().enumerate() {
            f(b, r);
        }
    } else {
        f(0, res.view_mut());
    }
}

fn matvec<F: Real>(
    m: (&ArrayViewD<'_, F>, &Type),
    v: (&ArrayViewD<'_, F>, &Type),
    out: &Type,
    shape: &[usize],
    transpose: bool,
) -> ArrayD<F> {
    use ndarray::Ix2;
    // The common case, an unbatched matrix against a batch of vectors, is one GEMM.
    if !m.1.batched {
        let w = m.0.view().into_dimensionality::<Ix2>().expect("matrix");
        let w = if transpose { w.reversed_axes() } else { w };
        if v.1.batched {
            let x =
                v.0.view()
                    .into_dimensionality::<Ix2>()
                    .expect("batch of vectors");
            return x.dot(&w.t()).into_dyn();
        }
        let x =
            v.0.view()
                .into_dimensionality::<ndarray::Ix1>()
                .expect("vector");
        return w.dot(&x).into_dyn();
    }
    let mut res = ArrayD::zeros(IxDyn(shape));
    for_batch(out, &mut res, |b, mut dst| {
        let w = row(m, b).into_dimensionality::<Ix2>().expect("matrix");
        let w = if transpose { w.reversed_axes() } else { w };
        let x = row(v, b)
            .into_dimensionality::<ndarray::Ix1>()
            .expect("vector");
        dst.assign(&w.dot(&x));
    });
    res
}
