//! Random valid cells, written as `.cell` text over the whole op set, and
//! their gradients checked three ways (as `tests/gradients.rs` does for the
//! bundled models):
//!
//! * (a) every generated cell checks (`check_source`);
//! * (b) the BPTT loop (`differentiate_step` + `backward`) equals reverse mode
//!   on the unrolled graph (`unroll`, `adjoint`, `opt::simplify`,
//!   `interp::eval`) for T = 3, to 1e-9 relative;
//! * (c) both equal central finite differences in f64, to 1e-6 relative;
//! * (d) with per-sequence lengths and `reverse`, BPTT still equals finite
//!   differences;
//! * (e) the adjoint step's node-count ratio is recorded and printed (a report
//!   item, not a failure);
//! * (f) the native back end (`--backend jit`) gives what the interpreter
//!   gives, forward and gradients, with lengths and `reverse`, to 1e-12,
//!   step by step and with input-only work hoisted out of the loop.
//!
//! ## The generator
//!
//! A cell is generated from streams of small integers (decisions). Every
//! decision maps 0 to the simplest choice (a leaf, no optional feature, the
//! ASCII spelling, the first candidate), and a stream that runs out reads as
//! zeros, so when proptest shrinks a failing stream towards zeros the cell it
//! describes gets simpler: the minimal failing cell is printed as `.cell` text.
//!
//! The generator keeps a model of every value's size (affine sums of `X`, `U`,
//! `H`, `K` and the free size `R`) and builds only well-shaped expressions:
//! inputs `x: [X]`, `u: [U]`; 1–3 states of size `H` or `K` (initial value
//! omitted, `= 0` or `= param`); parameters declared with their shape or left
//! to inference (scalars are always declared `[]`, since inference makes an
//! undeclared parameter a vector), shared between uses now and then; up to 8
//! equations in a random dependency order (each reads inputs, parameters,
//! states at `t-1`/`t-2` (now and then `t-3`), earlier values, the `_t` value
//! of states whose equation came earlier, and now and then a learned initial
//! state's parameter `h_0`) printed in a random order, in ASCII, Unicode or
//! LaTeX spellings (also as a LaTeX `aligned` body); `chunk` destructuring;
//! outputs among states and values (scalars included).
//!
//! Sizes: X=2, U=3, H=3, K=2, R in 2..=4, B=2, T=3. Each parameter array is
//! made with the shape the generator meant, and the free dimensions inference
//! named are left to `prepare` to solve from the arrays, as for a user (a
//! free dimension may stand for a combination such as `3*q - H`, so arbitrary
//! values would not do).
//!
//! Tolerances: (b) |a - b| ≤ 1e-9·max(|a|, |b|, s) with s the case's largest
//! gradient entry (at least 1), since an entry that is zero up to rounding can
//! come out 1e-17 one way and 0 the other; (c), (d) eps = 1e-6 and
//! |fd - g| ≤ 1e-6·max(|fd|, |g|) + 1e-9·Σ|cotangent·value| + 1e-9, the middle
//! term bounding the rounding error of the two losses. Scaling the gradients
//! by 1 + 1e-5 makes (b), (c) and (d) fail; by 1 + 1e-6, (b).
//!
//! Cases: 1024 for (a) alone, 64 for (b)+(c), 32 for (d), about a second in
//! all. RANDOM_CELLS_CASES=k multiplies them, RANDOM_CELLS_SEED=n changes the
//! seed, and `show_cells` (ignored) prints a sample.
//!
//! Domains are kept safe by construction: `exp` only of arguments bounded
//! above (`tanh`, `σ`, `-softplus`, `-(a*a)`, `-abs`, `-relu`, `softmax`),
//! `log` and `sqrt` and every denominator only of expressions bounded below by
//! a positive constant (`1 + a*a`, `2 + tanh(a)`, `sqrt(a*a + 1)`, ...).
//!
//! ## Kinks
//!
//! `relu`, `abs` and `max` are generated freely. With continuous random data a
//! kink argument lands within `eps` of its kink with probability ~1e-6 per
//! evaluation; the structural exact zeros and ties the generator can make (a
//! zero initial state read through `relu`, `a - a`, `max([a; a])`) either do
//! not move under any perturbation or move on both sides of the tie together,
//! so finite differences are still the derivative there. For the rare real
//! coincidence, a finite-difference mismatch in a cell that uses a kink op is
//! re-examined: if the one-sided differences disagree (the loss is not
//! differentiable within `eps` of the point), the entry is skipped and
//! counted; a wrong rule with a smooth loss is still reported.

use cellc::autodiff::adjoint;
use cellc::check::check_source;
use cellc::data::matching::prepare;
use cellc::graph::dim::{Bindings, Type};
use cellc::graph::step::{Init, StepGraph};
use cellc::interp;
use cellc::pipeline::differentiate_step;
use cellc::rng::SplitMix64;
use cellc::runtime::backward::{Cotangents, Gradients, backward};
use cellc::runtime::forward::{forward, initial_states};
use cellc::runtime::types::{Sequences, size};
use cellc::syntax::functions;
use ndarray::{ArrayD, Axis};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::Instant;

// ---------------------------------------------------------------------------
// Decisions.

/// Each decision is below this (divisible by every count the generator asks
/// for, and small so that shrinking an element takes few steps).
const DECISION_RANGE: u32 = 240;
/// Decision streams of a cell: the header (inputs, states, how many
/// equations, their order), one per equation (three states, five more), and
/// the tail (outputs, layout), each of this length; the generator rarely uses
/// them all. Separate streams keep one equation's decisions from shifting
/// another's when proptest shrinks.
const STREAMS: usize = 10;
const STREAM_LEN: usize = 40;

struct Src<'a> {
    d: &'a [u32],
    i: usize,
}

impl Src<'_> {
    fn raw(&mut self) -> u32 {
        let v = self.d.get(self.i).copied().unwrap_or(0);
        self.i += 1;
        v
    }
    /// `raw` scaled to 0..n: monotone, so that shrinking a decision towards 0
    /// moves the choice towards the first (simplest) one.
    fn scaled(&mut self, n: u32) -> u32 {
        (u64::from(self.raw()) * u64::from(n) / u64::from(DECISION_RANGE)) as u32
    }
    /// 0..n; 0 for a run-out stream.
    fn below(&mut self, n: usize) -> usize {
        if n <= 1 {
            return 0;
        }
        self.scaled(n as u32) as usize
    }
    /// True with probability `pct`% (a multiple of 5); false for a zero.
    fn chance(&mut self, pct: u32) -> bool {
        self.scaled(20) >= 20 - pct / 5
    }
    /// An index with the given weights; zero picks the first nonzero weight.
    fn weighted(&mut self, w: &[u32]) -> usize {
        let total: u32 = w.iter().sum();
        let mut r = self.scaled(total);
        for (i, &x) in w.iter().enumerate() {
            if r < x {
                return i;
            }
            r -= x;
        }
        unreachable!("r < total")
    }
}

// ---------------------------------------------------------------------------
// The model of a cell.

/// A size: Σ coefficient × dimension name.
type Size = BTreeMap<&'static str, i64>;

fn sz(name: &'static str) -> Size {
    Size::from([(name, 1)])
}

fn sz_scale(s: &Size, k: i64) -> Size {
    s.iter().map(|(a, c)| (*a, c * k)).collect()
}

fn sz_add(a: &Size, b: &Size) -> Size {
    let mut out = a.clone();
    for (k, c) in b {
        *out.entry(k).or_insert(0) += c;
    }
    out
}

fn sz_total(s: &Size) -> i64 {
    s.values().sum()
}

#[derive(Clone, Debug, PartialEq)]
enum Ty {
    Scalar,
    Vector(Size),
}

#[derive(Clone, Debug, PartialEq)]
enum Shape {
    Scalar,
    Vector(Size),
    Matrix(Size, Size),
}

#[derive(Clone, Debug)]
struct Param {
    /// `W`, `b` or `gamma`.
    base: &'static str,
    num: usize,
    shape: Shape,
    declared: bool,
}

#[derive(Clone, Debug)]
struct StateDef {
    name: &'static str,
    size: Size,
    /// 0: `= INIT` left out, 1: `= 0`, 2: `= param`.
    init: u8,
}

#[derive(Clone, Debug)]
struct ValueDef {
    /// Index into [`NAMES`].
    name: usize,
    ty: Ty,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Bop {
    Add,
    Sub,
    Mul,
    Div,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Fun {
    Sigmoid,
    Tanh,
    Relu,
    Exp,
    Log,
    Softplus,
    Abs,
    Sqrt,
    Softmax,
    Sum,
    Mean,
    Max,
}

impl Fun {
    /// The function's canonical name, a row of the language's table.
    fn name(self) -> &'static str {
        match self {
            Fun::Sigmoid => "sigmoid",
            Fun::Tanh => "tanh",
            Fun::Relu => "relu",
            Fun::Exp => "exp",
            Fun::Log => "log",
            Fun::Softplus => "softplus",
            Fun::Abs => "abs",
            Fun::Sqrt => "sqrt",
            Fun::Softmax => "softmax",
            Fun::Sum => "sum",
            Fun::Mean => "mean",
            Fun::Max => "max",
        }
    }
    /// Every spelling the language accepts, read from its table.
    fn spellings(self) -> Vec<&'static str> {
        functions::lookup(self.name())
            .expect("a function of the language")
            .spellings()
            .collect()
    }
    fn kink(self) -> bool {
        matches!(self, Fun::Relu | Fun::Abs | Fun::Max)
    }
}

/// An expression; each `u8` is a spelling choice (0: ASCII).
#[derive(Clone, Debug)]
enum E {
    Num(&'static str),
    Input(usize, u8),
    /// State, lag (0: this step's value), spelling.
    State(usize, u32, u8),
    Value(usize, u8),
    Param(usize, u8),
    /// The parameter `NAME_0` of a state with a learned initial value.
    InitParam(usize, u8),
    Neg(Box<E>, u8),
    Bin(Bop, Box<E>, Box<E>, u8),
    /// Matrix parameter, its spelling, the vector, the operator's spelling.
    MatVec(usize, u8, Box<E>, u8),
    Concat(Vec<E>, u8),
    Call(Fun, Box<E>, u8),
}

fn bin(op: Bop, l: E, r: E, sp: u8) -> E {
    E::Bin(op, Box::new(l), Box::new(r), sp)
}

fn call(f: Fun, a: E, sp: u8) -> E {
    E::Call(f, Box::new(a), sp)
}

fn neg(a: E, sp: u8) -> E {
    E::Neg(Box::new(a), sp)
}

#[derive(Clone, Debug)]
enum Target {
    Value(usize),
    State(usize),
}

#[derive(Clone, Debug)]
struct Equation {
    targets: Vec<Target>,
    /// For a `chunk` equation, the argument of `chunk`.
    rhs: E,
    chunk: bool,
    /// Spelling of each target's time index.
    lhs_sp: Vec<u8>,
}

/// Intermediate names: canonical, then other spellings.
const NAMES: &[&[&str]] = &[
    &["a"],
    &["z"],
    &["C_tilde", "C\u{303}", "\\tilde{C}"],
    &["h_hat", "\u{125}", "h\u{302}", "\\hat{h}"],
    &["alpha", "α", "\\alpha"],
    &["n"],
    &["r"],
    &["beta", "β", "\\beta"],
    &["m"],
    &["v"],
    &["o"],
    &["y"],
    &["k"],
    &["d"],
    &["f"],
    &["g"],
    &["p"],
    &["q"],
    &["w"],
    &["j"],
];

const NUMBERS: &[&str] = &["1", "0.5", "2", "0.25", "1.5", "3", "5e-1", "2.0"];

#[derive(Clone, Debug)]
struct Cell {
    fancy: bool,
    tight: bool,
    aligned: bool,
    inputs: Vec<(&'static str, Size)>,
    states: Vec<StateDef>,
    params: Vec<Param>,
    values: Vec<ValueDef>,
    /// In generation (dependency) order.
    equations: Vec<Equation>,
    /// The order the equations are written in.
    text_order: Vec<usize>,
    outputs: Vec<(Target, u8)>,
    comments: Vec<u8>,
    /// Spelling of each parameter in its declaration.
    decl_sp: Vec<u8>,
    /// How the parameter declarations are grouped: a new `param` line before
    /// parameter i, a continuation on the next line, or on the same line.
    decl_break: Vec<u8>,
}

// ---------------------------------------------------------------------------
// The generator.

struct Gen<'a> {
    src: Src<'a>,
    fancy: bool,
    inputs: Vec<(&'static str, Size)>,
    states: Vec<StateDef>,
    state_done: Vec<bool>,
    params: Vec<Param>,
    values: Vec<ValueDef>,
}

/// What a leaf may be, before its spelling is drawn.
enum Leaf {
    State(usize, u32),
    Input(usize),
    Value(usize),
    Param(usize),
    InitParam(usize),
    NewParam,
    MatVec,
    Concat,
}

impl Gen<'_> {
    fn sp(&mut self, n: usize) -> u8 {
        if self.fancy {
            self.src.below(n) as u8
        } else {
            0
        }
    }

    /// A size among those of inputs and states (the sizes that have batched leaves).
    fn base_size(&mut self) -> Size {
        let mut pool: Vec<Size> = Vec::new();
        for s in self
            .states
            .iter()
            .map(|s| s.size.clone())
            .chain(self.inputs.iter().map(|i| i.1.clone()))
        {
            if !pool.contains(&s) {
                pool.push(s);
            }
        }
        let i = self.src.below(pool.len());
        pool[i].clone()
    }

    /// The size of a value: a base size, or now and then `H`, `K` or the free `R`.
    fn value_size(&mut self) -> Size {
        match self.src.weighted(&[8, 1, 1, 2]) {
            0 => self.base_size(),
            1 => sz("H"),
            2 => sz("K"),
            _ => sz("R"),
        }
    }

    /// The columns of a matrix: a base size or a sum of two or three.
    fn col_size(&mut self) -> Size {
        match self.src.weighted(&[5, 3, 1]) {
            0 => self.base_size(),
            1 => {
                let a = self.base_size();
                let b = self.base_size();
                sz_add(&a, &b)
            }
            _ => {
                let a = self.base_size();
                let b = self.base_size();
                let c = self.base_size();
                sz_add(&sz_add(&a, &b), &c)
            }
        }
    }

    fn new_param(&mut self, shape: Shape) -> usize {
        let base = match shape {
            Shape::Scalar => "gamma",
            Shape::Vector(_) => "b",
            Shape::Matrix(..) => "W",
        };
        let num = 1 + self.params.iter().filter(|p| p.base == base).count();
        // Scalars must be declared: inference makes an undeclared parameter a vector.
        let declared = shape == Shape::Scalar || self.src.chance(50);
        self.params.push(Param {
            base,
            num,
            shape,
            declared,
        });
        self.params.len() - 1
    }

    /// A parameter of this shape: an existing one now and then, else a new one.
    fn param(&mut self, shape: Shape) -> usize {
        let existing: Vec<usize> = (0..self.params.len())
            .filter(|&p| self.params[p].shape == shape)
            .collect();
        if !existing.is_empty() && self.src.chance(30) {
            let i = self.src.below(existing.len());
            return existing[i];
        }
        self.new_param(shape)
    }

    fn param_expr(&mut self, p: usize) -> E {
        let sp = self.sp(3);
        E::Param(p, sp)
    }

    fn leaf_vec(&mut self, s: &Size) -> E {
        let mut cands: Vec<Leaf> = Vec::new();
        for (i, st) in self.states.iter().enumerate() {
            if st.size == *s {
                cands.push(Leaf::State(i, 1));
            }
        }
        for (i, inp) in self.inputs.iter().enumerate() {
            if inp.1 == *s {
                cands.push(Leaf::Input(i));
            }
        }
        for (i, v) in self.values.iter().enumerate() {
            if v.ty == Ty::Vector(s.clone()) {
                cands.push(Leaf::Value(i));
            }
        }
        for (i, st) in self.states.iter().enumerate() {
            if st.size == *s && self.state_done[i] {
                cands.push(Leaf::State(i, 0));
            }
        }
        for (i, st) in self.states.iter().enumerate() {
            if st.size == *s {
                cands.push(Leaf::State(i, 2));
            }
        }
        for (i, st) in self.states.iter().enumerate() {
            if st.size == *s {
                cands.push(Leaf::State(i, 3));
            }
        }
        for (i, p) in self.params.iter().enumerate() {
            if p.shape == Shape::Vector(s.clone()) {
                cands.push(Leaf::Param(i));
            }
        }
        for (i, st) in self.states.iter().enumerate() {
            if st.size == *s && st.init == 2 {
                cands.push(Leaf::InitParam(i));
            }
        }
        cands.push(Leaf::NewParam);
        cands.push(Leaf::MatVec);
        if sz_total(s) >= 2 {
            cands.push(Leaf::Concat);
        }
        // Batched reads (states, inputs, values) are likelier than parameters.
        let weights: Vec<u32> = cands
            .iter()
            .map(|c| match c {
                Leaf::State(_, 3) => 1,
                Leaf::State(..) | Leaf::Input(_) => 6,
                Leaf::Value(_) => 4,
                Leaf::Param(_) | Leaf::NewParam | Leaf::InitParam(_) => 1,
                Leaf::MatVec => 2,
                Leaf::Concat => 3,
            })
            .collect();
        let pick = self.src.weighted(&weights);
        match cands.swap_remove(pick) {
            Leaf::State(i, lag) => {
                let sp = self.sp(4);
                E::State(i, lag, sp)
            }
            Leaf::Input(i) => {
                let sp = self.sp(4);
                E::Input(i, sp)
            }
            Leaf::Value(i) => {
                let sp = self.sp(12);
                E::Value(i, sp)
            }
            Leaf::Param(p) => self.param_expr(p),
            Leaf::InitParam(i) => {
                let sp = self.sp(2);
                E::InitParam(i, sp)
            }
            Leaf::NewParam => {
                let p = self.new_param(Shape::Vector(s.clone()));
                self.param_expr(p)
            }
            Leaf::MatVec => {
                let cols = self.base_size();
                let v = self.leaf_vec(&cols);
                self.matvec(s, cols, v)
            }
            Leaf::Concat => self.concat(s, 0),
        }
    }

    fn matvec(&mut self, rows: &Size, cols: Size, v: E) -> E {
        let w = self.param(Shape::Matrix(rows.clone(), cols));
        let wsp = self.sp(3);
        let sp = self.sp(4);
        E::MatVec(w, wsp, Box::new(v), sp)
    }

    /// `[a; b; ...]` of total size `s` (which has two or more units).
    fn concat(&mut self, s: &Size, depth: u32) -> E {
        let mut units: Vec<&'static str> = Vec::new();
        for (a, c) in s {
            for _ in 0..*c {
                units.push(a);
            }
        }
        let parts: Vec<Size> = if units.len() > 2 && self.src.chance(50) {
            // One unit, then the rest.
            let first = self.src.below(units.len());
            let u = units.remove(first);
            let mut rest = Size::new();
            for r in units {
                *rest.entry(r).or_insert(0) += 1;
            }
            vec![sz(u), rest]
        } else {
            let start = self.src.below(units.len());
            units.rotate_left(start);
            units.into_iter().map(sz).collect()
        };
        let es = parts.iter().map(|p| self.vec(p, depth)).collect();
        let sp = self.sp(2);
        E::Concat(es, sp)
    }

    fn leaf_scalar(&mut self) -> E {
        let vals: Vec<usize> = (0..self.values.len())
            .filter(|&v| self.values[v].ty == Ty::Scalar)
            .collect();
        let params: Vec<usize> = (0..self.params.len())
            .filter(|&p| self.params[p].shape == Shape::Scalar)
            .collect();
        let n = vals.len() + 1 + params.len() + 1;
        let pick = self.src.below(n);
        if pick < vals.len() {
            let sp = self.sp(12);
            return E::Value(vals[pick], sp);
        }
        let pick = pick - vals.len();
        if pick == 0 {
            let f = [Fun::Sum, Fun::Mean, Fun::Max][self.src.below(3)];
            let s = self.base_size();
            let a = self.leaf_vec(&s);
            let sp = self.sp(4);
            return call(f, a, sp);
        }
        let pick = pick - 1;
        let p = if pick < params.len() {
            params[pick]
        } else {
            self.new_param(Shape::Scalar)
        };
        self.param_expr(p)
    }

    fn num(&mut self) -> E {
        E::Num(NUMBERS[self.src.below(NUMBERS.len())])
    }

    fn typed(&mut self, ty: &Ty, depth: u32) -> E {
        match ty {
            Ty::Scalar => self.scalar(depth),
            Ty::Vector(s) => self.vec(s, depth),
        }
    }

    fn vec(&mut self, s: &Size, depth: u32) -> E {
        if depth == 0 {
            return self.leaf_vec(s);
        }
        let d = depth - 1;
        let splittable = sz_total(s) >= 2;
        let w = [
            3,                              // leaf
            4,                              // + - * of vectors
            3,                              // with a number or a scalar
            4,                              // matrix · vector
            3,                              // σ tanh softplus
            1,                              // relu abs
            1,                              // exp
            1,                              // log
            1,                              // sqrt
            2,                              // division
            1,                              // negation
            1,                              // softmax
            1,                              // layer normalisation
            if splittable { 8 } else { 0 }, // concatenation
        ];
        match self.src.weighted(&w) {
            0 => self.leaf_vec(s),
            1 => {
                let op = [Bop::Add, Bop::Sub, Bop::Mul][self.src.below(3)];
                let l = self.vec(s, d);
                let r = self.vec(s, d);
                let sp = self.sp(10);
                bin(op, l, r, sp)
            }
            2 => {
                let op = [Bop::Add, Bop::Sub, Bop::Mul][self.src.below(3)];
                let v = self.vec(s, d);
                let k = if self.src.chance(50) {
                    self.scalar(d)
                } else {
                    self.num()
                };
                let sp = self.sp(10);
                if self.src.chance(50) {
                    bin(op, v, k, sp)
                } else {
                    bin(op, k, v, sp)
                }
            }
            3 => {
                let cols = self.col_size();
                let v = self.vec(&cols, d);
                self.matvec(s, cols, v)
            }
            4 => {
                let f = [Fun::Sigmoid, Fun::Tanh, Fun::Softplus][self.src.below(3)];
                let a = self.vec(s, d);
                let sp = self.sp(12);
                call(f, a, sp)
            }
            5 => {
                let f = [Fun::Relu, Fun::Abs][self.src.below(2)];
                let a = self.vec(s, d);
                let sp = self.sp(12);
                call(f, a, sp)
            }
            6 => {
                let a = self.bounded(&Ty::Vector(s.clone()), d);
                let sp = self.sp(12);
                call(Fun::Exp, a, sp)
            }
            7 => {
                let a = self.positive(&Ty::Vector(s.clone()), d);
                let sp = self.sp(12);
                call(Fun::Log, a, sp)
            }
            8 => {
                let a = self.positive(&Ty::Vector(s.clone()), d);
                let sp = self.sp(12);
                call(Fun::Sqrt, a, sp)
            }
            9 => {
                let top = if self.src.chance(20) {
                    self.num()
                } else {
                    self.vec(s, d)
                };
                // A number over a scalar would be a scalar: then divide by a vector.
                let den_ty = if !matches!(top, E::Num(_)) && self.src.chance(30) {
                    Ty::Scalar
                } else {
                    Ty::Vector(s.clone())
                };
                let den = self.positive(&den_ty, d);
                let sp = self.sp(3);
                bin(Bop::Div, top, den, sp)
            }
            10 => {
                let a = self.vec(s, d);
                let sp = self.sp(2);
                neg(a, sp)
            }
            11 => {
                let a = self.vec(s, d);
                let sp = self.sp(4);
                call(Fun::Softmax, a, sp)
            }
            12 => self.layer_norm(s, d),
            _ => self.concat(s, d),
        }
    }

    /// `(a - mean(a)) / sqrt(mean((a - mean(a)) * (a - mean(a))) + eps)`, with a
    /// moderate `eps` so that finite differences stay well conditioned.
    fn layer_norm(&mut self, s: &Size, d: u32) -> E {
        let a = if self.src.chance(25) {
            self.vec(s, d.min(1))
        } else {
            self.leaf_vec(s)
        };
        let sp = self.sp(10);
        let m = call(Fun::Mean, a.clone(), sp);
        let c = bin(Bop::Sub, a, m, sp);
        let var = call(Fun::Mean, bin(Bop::Mul, c.clone(), c.clone(), sp), sp);
        let eps = E::Num(["1", "0.1"][self.src.below(2)]);
        let den = call(Fun::Sqrt, bin(Bop::Add, var, eps, sp), sp);
        bin(Bop::Div, c, den, sp)
    }

    fn scalar(&mut self, depth: u32) -> E {
        if depth == 0 {
            return self.leaf_scalar();
        }
        let d = depth - 1;
        match self.src.weighted(&[3, 4, 2, 1, 2, 1, 1, 1, 1]) {
            0 => self.leaf_scalar(),
            1 => {
                let f = [Fun::Sum, Fun::Mean, Fun::Max][self.src.below(3)];
                let s = if self.src.chance(20) {
                    self.col_size()
                } else {
                    self.value_size()
                };
                let a = self.vec(&s, d);
                let sp = self.sp(4);
                call(f, a, sp)
            }
            2 => {
                let op = [Bop::Add, Bop::Sub, Bop::Mul][self.src.below(3)];
                let l = self.scalar(d);
                let r = self.scalar(d);
                let sp = self.sp(10);
                bin(op, l, r, sp)
            }
            3 => {
                let op = [Bop::Add, Bop::Sub, Bop::Mul][self.src.below(3)];
                let a = self.scalar(d);
                let k = self.num();
                let sp = self.sp(10);
                if self.src.chance(50) {
                    bin(op, a, k, sp)
                } else {
                    bin(op, k, a, sp)
                }
            }
            4 => {
                let f = [Fun::Sigmoid, Fun::Tanh, Fun::Softplus][self.src.below(3)];
                let a = self.scalar(d);
                let sp = self.sp(12);
                call(f, a, sp)
            }
            5 => {
                let top = self.scalar(d);
                let den = self.positive(&Ty::Scalar, d);
                let sp = self.sp(3);
                bin(Bop::Div, top, den, sp)
            }
            6 => {
                let sp = self.sp(12);
                match self.src.below(3) {
                    0 => {
                        let a = self.bounded(&Ty::Scalar, d);
                        call(Fun::Exp, a, sp)
                    }
                    1 => {
                        let a = self.positive(&Ty::Scalar, d);
                        call(Fun::Log, a, sp)
                    }
                    _ => {
                        let a = self.positive(&Ty::Scalar, d);
                        call(Fun::Sqrt, a, sp)
                    }
                }
            }
            7 => {
                let a = self.scalar(d);
                let sp = self.sp(2);
                neg(a, sp)
            }
            _ => {
                let f = [Fun::Relu, Fun::Abs][self.src.below(2)];
                let a = self.scalar(d);
                let sp = self.sp(12);
                call(f, a, sp)
            }
        }
    }

    /// An expression bounded above (for `exp`).
    fn bounded(&mut self, ty: &Ty, d: u32) -> E {
        let n = if *ty == Ty::Scalar { 7 } else { 8 };
        let kind = self.src.below(n);
        let a = self.typed(ty, d);
        let sp = self.sp(12);
        match kind {
            0 => call(Fun::Tanh, a, sp),
            1 => call(Fun::Sigmoid, a, sp),
            2 => neg(call(Fun::Softplus, a, sp), sp),
            3 => neg(bin(Bop::Mul, a.clone(), a, sp), sp),
            4 => bin(Bop::Mul, E::Num("0.5"), call(Fun::Tanh, a, sp), sp),
            5 => neg(call(Fun::Abs, a, sp), sp),
            6 => neg(call(Fun::Relu, a, sp), sp),
            _ => call(Fun::Softmax, a, sp),
        }
    }

    /// An expression bounded below by a positive constant (for `log`, `sqrt`
    /// and denominators).
    fn positive(&mut self, ty: &Ty, d: u32) -> E {
        let n = if *ty == Ty::Scalar { 9 } else { 8 };
        let kind = self.src.below(n);
        let sp = self.sp(12);
        let one = E::Num("1");
        if kind == 8 {
            // 1 + mean(v ∘ v) for a vector v.
            let s = self.base_size();
            let v = self.vec(&s, d);
            return bin(
                Bop::Add,
                one,
                call(Fun::Mean, bin(Bop::Mul, v.clone(), v, sp), sp),
                sp,
            );
        }
        let a = self.typed(ty, d);
        match kind {
            0 => bin(Bop::Add, one, bin(Bop::Mul, a.clone(), a, sp), sp),
            1 => bin(Bop::Add, bin(Bop::Mul, a.clone(), a, sp), one, sp),
            2 => bin(Bop::Add, E::Num("2"), call(Fun::Tanh, a, sp), sp),
            3 => {
                let f = [Fun::Tanh, Fun::Sigmoid][self.src.below(2)];
                bin(Bop::Add, one, call(Fun::Exp, call(f, a, sp), sp), sp)
            }
            4 => call(
                Fun::Sqrt,
                bin(Bop::Add, bin(Bop::Mul, a.clone(), a, sp), one, sp),
                sp,
            ),
            5 => bin(Bop::Add, call(Fun::Softplus, a, sp), one, sp),
            6 => call(Fun::Exp, call(Fun::Tanh, a, sp), sp),
            _ => bin(Bop::Add, call(Fun::Sigmoid, a, sp), E::Num("0.5"), sp),
        }
    }
}

fn generate(streams: &[Vec<u32>]) -> Cell {
    let stream = |k: usize| Src {
        d: streams.get(k).map_or(&[][..], |v| v.as_slice()),
        i: 0,
    };
    let mut g = Gen {
        src: stream(0),
        fancy: false,
        inputs: Vec::new(),
        states: Vec::new(),
        state_done: Vec::new(),
        params: Vec::new(),
        values: Vec::new(),
    };
    g.fancy = g.src.chance(60);
    let tight = g.fancy && g.src.chance(30);
    let aligned = g.fancy && g.src.chance(25);
    g.inputs.push(("x", sz("X")));
    if g.src.chance(50) {
        g.inputs.push(("u", sz("U")));
    }
    let n_states = 1 + g.src.below(3);
    for (i, name) in ["h", "c", "s"].into_iter().take(n_states).enumerate() {
        let size = if i == 0 || !g.src.chance(50) {
            sz("H")
        } else {
            sz("K")
        };
        let init = g.src.weighted(&[4, 3, 3]) as u8;
        g.states.push(StateDef { name, size, init });
    }
    g.state_done = vec![false; n_states];
    let n_extra = g.src.below(6).min(8 - n_states);
    // Generation slots: states and extra equations, in a random order.
    let mut slots: Vec<Option<usize>> = (0..n_states).map(Some).collect();
    slots.extend((0..n_extra).map(|_| None));
    for i in (1..slots.len()).rev() {
        let j = g.src.below(i + 1);
        slots.swap(i, j);
    }
    let mut equations = Vec::new();
    let header = std::mem::replace(&mut g.src, stream(0));
    let mut extra = 0;
    for slot in slots {
        // States' equations read streams 1..=3, the others 4..=8.
        g.src = match slot {
            Some(s) => stream(1 + s),
            None => {
                extra += 1;
                stream(3 + extra)
            }
        };
        let depth = g.src.below(4) as u32;
        match slot {
            Some(s) => {
                let size = g.states[s].size.clone();
                let rhs = g.vec(&size, depth);
                g.state_done[s] = true;
                let sp = g.sp(3);
                equations.push(Equation {
                    targets: vec![Target::State(s)],
                    rhs,
                    chunk: false,
                    lhs_sp: vec![sp],
                });
            }
            None => {
                if g.values.len() + 3 <= NAMES.len() && g.src.chance(20) {
                    // [p; q; ...] = chunk(z, n)
                    let n = 2 + g.src.below(2);
                    let part = g.value_size();
                    let whole = sz_scale(&part, n as i64);
                    let rhs = g.vec(&whole, depth.max(1));
                    let mut targets = Vec::new();
                    let mut lhs_sp = Vec::new();
                    for _ in 0..n {
                        g.values.push(ValueDef {
                            name: g.values.len(),
                            ty: Ty::Vector(part.clone()),
                        });
                        targets.push(Target::Value(g.values.len() - 1));
                        lhs_sp.push(g.sp(12));
                    }
                    equations.push(Equation {
                        targets,
                        rhs,
                        chunk: true,
                        lhs_sp,
                    });
                } else {
                    let ty = if g.src.chance(20) {
                        Ty::Scalar
                    } else {
                        Ty::Vector(g.value_size())
                    };
                    let rhs = g.typed(&ty, depth);
                    g.values.push(ValueDef {
                        name: g.values.len(),
                        ty,
                    });
                    let sp = g.sp(12);
                    equations.push(Equation {
                        targets: vec![Target::Value(g.values.len() - 1)],
                        rhs,
                        chunk: false,
                        lhs_sp: vec![sp],
                    });
                }
            }
        }
    }
    g.src = header;
    let mut text_order: Vec<usize> = (0..equations.len()).collect();
    if g.src.chance(50) {
        for i in (1..text_order.len()).rev() {
            let j = g.src.below(i + 1);
            text_order.swap(i, j);
        }
    }
    g.src = stream(9);
    let mut cands: Vec<Target> = (0..n_states).map(Target::State).collect();
    cands.extend((0..g.values.len()).map(Target::Value));
    let n_out = 1 + g.src.below(2);
    let mut outputs = Vec::new();
    for _ in 0..n_out.min(cands.len()) {
        let i = g.src.below(cands.len());
        let sp = g.sp(4);
        outputs.push((cands.remove(i), sp));
    }
    let comments = (0..equations.len() + 2)
        .map(|_| if g.fancy { g.src.below(6) as u8 } else { 0 })
        .collect();
    let decl_sp = (0..g.params.len()).map(|_| g.sp(3)).collect();
    let decl_break = (0..g.params.len()).map(|_| g.src.below(3) as u8).collect();
    Cell {
        fancy: g.fancy,
        tight,
        aligned,
        inputs: g.inputs,
        states: g.states,
        params: g.params,
        values: g.values,
        equations,
        text_order,
        outputs,
        comments,
        decl_sp,
        decl_break,
    }
}

// ---------------------------------------------------------------------------
// Printing a cell as `.cell` text.

fn size_text(s: &Size, v: u8) -> String {
    let mut terms: Vec<String> = s
        .iter()
        .map(|(a, c)| match (c, v % 2) {
            (1, _) => a.to_string(),
            (c, 0) => format!("{c}*{a}"),
            (c, _) => format!("{a}*{c}"),
        })
        .collect();
    if v / 2 % 2 == 1 {
        terms.reverse();
    }
    terms.join("+")
}

fn shape_text(shape: &Shape, v: u8) -> String {
    match shape {
        Shape::Scalar => "[]".into(),
        Shape::Vector(s) => format!("[{}]", size_text(s, v)),
        Shape::Matrix(r, c) => format!("[{}, {}]", size_text(r, v), size_text(c, v)),
    }
}

impl Cell {
    fn param_name(&self, p: usize, sp: u8) -> String {
        let Param { base, num, .. } = &self.params[p];
        match (*base, sp % 3) {
            ("W", 1) => format!("W_{{{num}}}"),
            ("W", 2) => format!("\\mathbf{{W}}_{num}"),
            ("gamma", 1) => format!("γ_{num}"),
            ("gamma", 2) => format!("\\gamma_{{{num}}}"),
            ("b", 1) => format!("b_{{{num}}}"),
            (base, _) => format!("{base}_{num}"),
        }
    }

    fn value_name(&self, v: usize, sp: u8) -> String {
        let spellings = NAMES[self.values[v].name];
        spellings[sp as usize % spellings.len()].to_string()
    }

    fn state_now(&self, s: usize, sp: u8) -> String {
        let name = self.states[s].name;
        match sp % 3 {
            0 => format!("{name}_t"),
            1 => format!("{name}[t]"),
            _ => format!("{name}_{{t}}"),
        }
    }

    fn level(e: &E) -> u8 {
        match e {
            E::Bin(Bop::Add | Bop::Sub, ..) => 1,
            E::Bin(Bop::Div, _, _, sp) if sp % 3 == 2 => 5,
            E::Bin(..) => 2,
            E::MatVec(..) => 3,
            E::Neg(..) => 4,
            _ => 5,
        }
    }

    fn op(&self, sym: &str) -> String {
        if self.tight && !sym.starts_with('\\') && sym != "+" && sym != "-" && sym != "−" {
            sym.to_string()
        } else {
            format!(" {sym} ")
        }
    }

    /// `e`, in parentheses when it binds less tightly than `min`.
    fn expr(&self, e: &E, min: u8) -> String {
        let s = self.expr_raw(e);
        if Self::level(e) < min {
            if self.fancy && s.len().is_multiple_of(3) {
                format!("\\left({s}\\right)")
            } else {
                format!("({s})")
            }
        } else {
            s
        }
    }

    fn expr_raw(&self, e: &E) -> String {
        match e {
            E::Num(n) => n.to_string(),
            E::Input(i, sp) => {
                let name = self.inputs[*i].0;
                match sp % 4 {
                    0 => format!("{name}_t"),
                    1 => name.to_string(),
                    2 => format!("{name}[t]"),
                    _ => format!("{name}_{{t}}"),
                }
            }
            E::State(s, 0, sp) => self.state_now(*s, *sp),
            E::State(s, lag, sp) => {
                let name = self.states[*s].name;
                match sp % 4 {
                    0 => format!("{name}_{{t-{lag}}}"),
                    1 => format!("{name}[t-{lag}]"),
                    2 => format!("{name}_{{t - {lag}}}"),
                    _ => format!("{name}[t − {lag}]"),
                }
            }
            E::Value(v, sp) => {
                let name = self.value_name(*v, *sp);
                match sp / 3 % 4 {
                    0 => format!("{name}_t"),
                    1 => name,
                    2 => format!("{name}[t]"),
                    _ => format!("{name}_{{t}}"),
                }
            }
            E::Param(p, sp) => self.param_name(*p, *sp),
            E::InitParam(s, sp) => {
                let name = self.states[*s].name;
                if sp % 2 == 0 {
                    format!("{name}_0")
                } else {
                    format!("{name}_{{0}}")
                }
            }
            E::Neg(a, sp) => format!("{}{}", ["-", "−"][*sp as usize % 2], self.expr(a, 5)),
            E::Bin(op, l, r, sp) => {
                let sp = *sp as usize;
                let (sym, lvl) = match op {
                    Bop::Add => ("+", 1),
                    Bop::Sub => (["-", "−"][sp % 2], 1),
                    Bop::Mul => (["*", "∘", "⊙", "\\circ", "\\odot"][sp % 5], 2),
                    Bop::Div if sp % 3 == 2 => {
                        return format!("\\frac{{{}}}{{{}}}", self.expr(l, 0), self.expr(r, 0));
                    }
                    Bop::Div => ("/", 2),
                };
                format!(
                    "{}{}{}",
                    self.expr(l, lvl),
                    self.op(sym),
                    self.expr(r, lvl + 1)
                )
            }
            E::MatVec(w, wsp, v, sp) => {
                let sym = ["@", "·", "⋅", "\\cdot"][*sp as usize % 4];
                format!(
                    "{}{}{}",
                    self.param_name(*w, *wsp),
                    self.op(sym),
                    self.expr(v, 4)
                )
            }
            E::Concat(parts, sp) => {
                let inner: Vec<String> = parts.iter().map(|p| self.expr(p, 0)).collect();
                if sp % 2 == 1 {
                    format!("\\left[{}\\right]", inner.join("; "))
                } else {
                    format!("[{}]", inner.join("; "))
                }
            }
            E::Call(f, a, sp) => {
                let names = f.spellings();
                let name = names[*sp as usize % names.len()];
                let arg = self.expr(a, 0);
                if name == "\\sqrt" {
                    format!("\\sqrt{{{arg}}}")
                } else if (*sp as usize / names.len()) % 2 == 1 {
                    format!("{name}\\left({arg}\\right)")
                } else {
                    format!("{name}({arg})")
                }
            }
        }
    }

    fn target_text(&self, t: &Target, sp: u8) -> String {
        match t {
            Target::State(s) => self.state_now(*s, sp),
            Target::Value(v) => {
                let name = self.value_name(*v, sp);
                match sp / 3 % 3 {
                    0 => format!("{name}_t"),
                    1 => name,
                    _ => format!("{name}[t]"),
                }
            }
        }
    }

    fn comment(&self, k: usize) -> &'static str {
        match self.comments.get(k).copied().unwrap_or(0) {
            4 => "  # a comment",
            5 => "  // another comment",
            _ => "",
        }
    }

    fn text(&self) -> String {
        let mut out = String::new();
        if self.fancy {
            out.push_str("# A random cell.\n");
        }
        let inputs: Vec<String> = self
            .inputs
            .iter()
            .map(|(n, s)| format!("{n}: [{}]", size_text(s, 0)))
            .collect();
        out.push_str(&format!("cell random_cell({}) {{\n", inputs.join(", ")));
        for s in &self.states {
            let init = ["", " = 0", " = param"][s.init as usize];
            out.push_str(&format!(
                "    state {}: [{}]{init}\n",
                s.name,
                size_text(&s.size, 0)
            ));
        }
        for (p, param) in self.params.iter().enumerate() {
            let brk = if p == 0 { 0 } else { self.decl_break[p] };
            match brk {
                0 => {
                    if p > 0 {
                        out.push('\n');
                    }
                    out.push_str("    param ");
                }
                1 => out.push_str(",\n        "),
                _ => out.push_str(", "),
            }
            out.push_str(&self.param_name(p, self.decl_sp[p]));
            if param.declared {
                out.push_str(": ");
                out.push_str(&shape_text(&param.shape, self.decl_sp[p]));
            }
        }
        if !self.params.is_empty() {
            out.push('\n');
        }
        out.push_str(self.comment(0));
        if !self.comment(0).is_empty() {
            out.push('\n');
        }
        if self.aligned {
            out.push_str("    \\begin{aligned}\n");
        }
        let assign = if self.aligned { " &= " } else { " = " };
        for (k, &e) in self.text_order.iter().enumerate() {
            let eq = &self.equations[e];
            let lhs: Vec<String> = eq
                .targets
                .iter()
                .zip(&eq.lhs_sp)
                .map(|(t, sp)| self.target_text(t, *sp))
                .collect();
            let lhs = if eq.chunk {
                format!("[{}]", lhs.join("; "))
            } else {
                lhs[0].clone()
            };
            let rhs = if eq.chunk {
                format!("chunk({}, {})", self.expr(&eq.rhs, 0), eq.targets.len())
            } else {
                self.expr(&eq.rhs, 0)
            };
            let end = if self.aligned && k + 1 < self.text_order.len() {
                " \\\\"
            } else {
                ""
            };
            out.push_str(&format!(
                "    {lhs}{assign}{rhs}{end}{}\n",
                self.comment(k + 1)
            ));
        }
        if self.aligned {
            out.push_str("    \\end{aligned}\n");
        }
        let outs: Vec<String> = self
            .outputs
            .iter()
            .map(|(t, sp)| match t {
                Target::State(s) => self.states[*s].name.to_string(),
                Target::Value(v) => self.value_name(*v, *sp),
            })
            .collect();
        out.push_str(&format!("    output {}\n}}\n", outs.join(", ")));
        out
    }

    /// Whether the cell uses an op with a kink (relu, abs, max).
    fn has_kink(&self) -> bool {
        let mut found = false;
        for eq in &self.equations {
            walk(&eq.rhs, &mut |e| {
                if let E::Call(f, ..) = e
                    && f.kink()
                {
                    found = true;
                }
            });
        }
        found
    }

    /// What the cell exercises, for the coverage summary.
    fn features(&self, step: &StepGraph) -> BTreeSet<String> {
        let mut f = BTreeSet::new();
        let text = self.text();
        for eq in &self.equations {
            walk(&eq.rhs, &mut |e| {
                let name = match e {
                    E::Num(_) => "number".to_string(),
                    E::Input(..) => "input".into(),
                    E::State(_, lag, _) => format!("state read t-{lag}"),
                    E::Value(..) => "value read".into(),
                    E::Param(..) => "parameter (vector/scalar)".into(),
                    E::InitParam(..) => "learned initial state NAME_0 read in an equation".into(),
                    E::Neg(..) => "unary minus".into(),
                    E::Bin(op, l, r, _) => {
                        let scalar = |x: &E| {
                            matches!(x, E::Num(_))
                                || matches!(x, E::Call(Fun::Sum | Fun::Mean | Fun::Max, ..))
                        };
                        if scalar(l) || scalar(r) {
                            f.insert("broadcast number/scalar".into());
                        }
                        format!("{op:?}")
                    }
                    E::MatVec(..) => "matvec".into(),
                    E::Concat(..) => "concat".into(),
                    E::Call(fun, ..) => format!("{fun:?}"),
                };
                f.insert(name);
            });
            if eq.chunk {
                f.insert("chunk".into());
            }
        }
        for p in &self.params {
            f.insert(match (&p.shape, p.declared) {
                (Shape::Scalar, _) => "param scalar []".into(),
                (_, true) => "param declared".into(),
                (_, false) => "param inferred".into(),
            });
        }
        for s in &self.states {
            f.insert(format!(
                "state init {}",
                ["omitted", "= 0", "= param"][s.init as usize]
            ));
        }
        if self.states.iter().any(|s| s.size == sz("K")) {
            f.insert("state of size K".into());
        }
        if self.states.len() > 1 {
            f.insert("several states".into());
        }
        if self.inputs.len() > 1 {
            f.insert("two inputs".into());
        }
        if self.fancy {
            f.insert("mixed spellings".into());
        }
        if self.aligned {
            f.insert("LaTeX aligned body".into());
        }
        if self.text_order.windows(2).any(|w| w[0] > w[1]) {
            f.insert("equations out of dependency order".into());
        }
        if step.dims.iter().any(|d| d.free) {
            f.insert("free dimension".into());
        }
        if step.outputs.iter().any(|o| o.ty.rank() == 0) {
            f.insert("scalar output".into());
        }
        if step
            .graph
            .results
            .iter()
            .any(|r| !step.graph.node(r.node).ty.batched)
        {
            f.insert("unbatched result".into());
        }
        for (k, needle) in [
            ("spelling σ", "σ("),
            ("spelling \\sigma", "\\sigma"),
            ("spelling \\frac", "\\frac"),
            ("spelling \\sqrt{}", "\\sqrt{"),
            ("spelling \\left(", "\\left("),
            ("spelling ·/⋅/\\cdot", "·"),
            ("spelling ∘/⊙/\\circ/\\odot", "∘"),
            ("spelling Unicode minus", "−"),
            ("spelling h[t-k]", "[t-"),
            ("spelling accented/Greek name", "\\tilde"),
        ] {
            if text.contains(needle) {
                f.insert(k.into());
            }
        }
        f
    }
}

fn walk(e: &E, f: &mut impl FnMut(&E)) {
    f(e);
    match e {
        E::Neg(a, _) | E::Call(_, a, _) | E::MatVec(_, _, a, _) => walk(a, f),
        E::Bin(_, l, r, _) => {
            walk(l, f);
            walk(r, f);
        }
        E::Concat(ps, _) => ps.iter().for_each(|p| walk(p, f)),
        _ => {}
    }
}

// ---------------------------------------------------------------------------
// Running a cell (the helpers follow tests/gradients.rs).

const T: usize = 3;
const BATCH: usize = 2;

/// The sizes of the named dimensions: X=2, U=3, H=3, K=2 and R in 2..=4.
fn dim_values(seed: u64) -> BTreeMap<&'static str, usize> {
    let mut rng = SplitMix64::from_state(seed ^ 0x5151);
    let r = 2 + ((rng.symmetric() + 1.0) * 1.5) as usize % 3;
    BTreeMap::from([("X", 2), ("U", 3), ("H", 3), ("K", 2), ("R", r)])
}

fn size_value(s: &Size, dims: &BTreeMap<&'static str, usize>) -> usize {
    s.iter().map(|(a, c)| dims[a] * *c as usize).sum()
}

/// Each parameter's array shape as the generator meant it (a learned initial
/// state `NAME_0` has its state's size). The free dimensions that inference
/// named are left to `prepare` to solve from these shapes, as for a user who
/// gives arrays: a generated cell whose arrays do not bind is a failure.
fn param_shapes(
    cell: &Cell,
    step: &StepGraph,
    dims: &BTreeMap<&'static str, usize>,
) -> Result<Vec<Vec<usize>>, String> {
    step.params
        .iter()
        .map(|sig| {
            if let Some(p) = cell
                .params
                .iter()
                .position(|p| format!("{}_{}", p.base, p.num) == sig.name)
            {
                return Ok(match &cell.params[p].shape {
                    Shape::Scalar => vec![],
                    Shape::Vector(s) => vec![size_value(s, dims)],
                    Shape::Matrix(r, c) => vec![size_value(r, dims), size_value(c, dims)],
                });
            }
            if let Some(s) = cell
                .states
                .iter()
                .find(|s| format!("{}_0", s.name) == sig.name)
            {
                return Ok(vec![size_value(&s.size, dims)]);
            }
            Err(format!(
                "the checked cell has a parameter `{}` the generator did not make",
                sig.name
            ))
        })
        .collect()
}

/// `-D` for the named dimensions the cell uses.
fn defines(step: &StepGraph, dims: &BTreeMap<&'static str, usize>) -> Bindings {
    step.dims
        .iter()
        .filter(|d| !d.free)
        .filter_map(|d| dims.get(d.name.as_str()).map(|v| (d.name.clone(), *v)))
        .collect()
}

struct Problem {
    seq: Sequences<f64>,
    cot: Cotangents<f64>,
}

fn problem(
    cell: &Cell,
    step: &StepGraph,
    lengths: Option<Vec<i64>>,
    reverse: bool,
    give_init: bool,
    seed: u64,
) -> Result<Problem, String> {
    let dims = dim_values(seed);
    let b = &defines(step, &dims);
    let shapes = param_shapes(cell, step, &dims)?;
    let mut rng = SplitMix64::from_state(seed);
    let params = step
        .params
        .iter()
        .zip(&shapes)
        .map(|(p, shape)| (p.name.clone(), rng.uniform(shape, 0.8)))
        .collect();
    // Inputs and initial states have named sizes only, bound by `defines`.
    let inputs = step
        .inputs
        .iter()
        .map(|i| {
            (
                i.name.clone(),
                rng.uniform(&[T, BATCH, size(&i.size, b)], 1.0),
            )
        })
        .collect();
    let init = if give_init {
        step.states
            .iter()
            .map(|s| (s.name.clone(), rng.uniform(&[BATCH, size(&s.size, b)], 0.5)))
            .collect()
    } else {
        vec![]
    };
    let seq = prepare(step, params, inputs, init, lengths, b, reverse)
        .map_err(|e| format!("prepare: {e}"))?;
    let b = &seq.bindings;
    let cot = Cotangents {
        outputs: step
            .outputs
            .iter()
            .map(|o| {
                let mut shape = vec![T, BATCH];
                shape.extend(o.ty.dims.iter().map(|d| size(d, b)));
                Some(rng.uniform(&shape, 1.0))
            })
            .collect(),
        last: step
            .states
            .iter()
            .map(|s| {
                let a = rng.uniform(&[BATCH, size(&s.size, b)], 1.0);
                Some(a.into_dimensionality().unwrap())
            })
            .collect(),
    };
    Ok(Problem { seq, cot })
}

/// Σ ⟨cotangent, value⟩ over outputs and final states, and Σ |cotangent·value|
/// (the scale of the rounding error in the loss).
fn loss(step: &StepGraph, p: &Problem) -> Result<(f64, f64), String> {
    let traj = forward(step, &p.seq).map_err(|e| format!("forward: {e}"))?;
    let (mut l, mut abs) = (0.0, 0.0);
    for (o, c) in p.cot.outputs.iter().enumerate() {
        let prod = &traj.outputs[o] * c.as_ref().unwrap();
        l += prod.sum();
        abs += prod.iter().map(|v| v.abs()).sum::<f64>();
    }
    for (s, c) in p.cot.last.iter().enumerate() {
        let prod = &traj.last[s] * c.as_ref().unwrap();
        l += prod.sum();
        abs += prod.iter().map(|v| v.abs()).sum::<f64>();
    }
    if !l.is_finite() {
        return Err(format!("the loss is not finite: {l}"));
    }
    Ok((l, abs))
}

/// (b): the BPTT gradients equal reverse mode on the unrolled graph.
fn compare_unrolled(step: &StepGraph, p: &Problem, g: &Gradients<f64>) -> Result<(), String> {
    let unrolled = cellc::unroll::unroll(step, T).map_err(|e| format!("unroll: {e}"))?;
    let cot_types: Vec<Type> = unrolled
        .results
        .iter()
        .map(|r| Type::new(true, unrolled.node(r.node).ty.dims.clone()))
        .collect();
    let adj = adjoint(&unrolled, &cot_types)
        .map_err(|e| format!("adjoint of the unrolled graph: {e}"))?;
    let ug = cellc::opt::simplify(&adj).map_err(|e| format!("simplify: {e}"))?;
    // Arguments: params, inputs per step, initial states, then cotangents of
    // outputs per step and of final states.
    let init_values = initial_states(step, &p.seq);
    let mut args: Vec<ArrayD<f64>> = p.seq.params.clone();
    for s in 0..T {
        for x in &p.seq.inputs {
            args.push(x.index_axis(Axis(0), s).to_owned().into_dyn());
        }
    }
    for v in &init_values {
        args.push(v.clone().into_dyn());
    }
    for s in 0..T {
        for c in &p.cot.outputs {
            args.push(c.as_ref().unwrap().index_axis(Axis(0), s).to_owned());
        }
    }
    for c in &p.cot.last {
        args.push(c.clone().unwrap().into_dyn());
    }
    let refs: Vec<&ArrayD<f64>> = args.iter().collect();
    let res = interp::eval(&ug, &refs, &p.seq.bindings, p.seq.batch)
        .map_err(|e| format!("eval of the unrolled adjoint: {e}"))?;
    // Relative to 1e-9 of the larger value, with the case's largest gradient
    // entry (at least 1) as the floor: an entry that is zero up to rounding
    // may come out as 1e-17 one way and 0 the other.
    let mut scale: f64 = 1.0;
    let all = g
        .params
        .iter()
        .flatten()
        .chain(g.inputs.iter().flatten())
        .chain(g.init.iter().flatten());
    for v in all {
        scale = scale.max(v.abs());
    }
    let same = |a: &ArrayD<f64>, b: &ArrayD<f64>, what: &str| -> Result<(), String> {
        if a.shape() != b.shape() {
            return Err(format!(
                "(b) {what}: unrolled shape {:?}, BPTT shape {:?}",
                a.shape(),
                b.shape()
            ));
        }
        for (i, (x, y)) in a.iter().zip(b.iter()).enumerate() {
            if (x - y).abs() > 1e-9 * x.abs().max(y.abs()).max(scale) || x.is_nan() != y.is_nan() {
                return Err(format!(
                    "(b) d{what} [{i}]: unrolled reverse mode {x}, BPTT {y}"
                ));
            }
        }
        Ok(())
    };
    let np = step.params.len();
    let ni = step.inputs.len();
    for k in 0..np {
        let mut want = res[k].clone();
        // A learned initial state's gradient flows through h[-1] in the
        // unrolled graph (when no initial value is given in its place).
        for (s, sig) in step.states.iter().enumerate() {
            if sig.init == Init::Param(k) && p.seq.init[s].is_none() {
                want = want + res[np + T * ni + s].sum_axis(Axis(0));
            }
        }
        same(&want, &g.params[k], &step.params[k].name)?;
    }
    for s in 0..T {
        for (i, sig) in step.inputs.iter().enumerate() {
            let u = &res[np + s * ni + i];
            same(
                u,
                &g.inputs[i].index_axis(Axis(0), s).to_owned().into_dyn(),
                &format!("{}[{s}]", sig.name),
            )?;
        }
    }
    for (k, sig) in step.states.iter().enumerate() {
        let u = &res[np + T * ni + k];
        same(
            u,
            &g.init[k].clone().into_dyn(),
            &format!("{}.init", sig.name),
        )?;
    }
    Ok(())
}

#[derive(Default)]
struct FdCount {
    probes: usize,
    kink_skips: usize,
}

/// (c)/(d): a few entries of every gradient against central differences.
fn check_fd(
    step: &StepGraph,
    p: &mut Problem,
    g: &Gradients<f64>,
    kinky: bool,
    count: &mut FdCount,
) -> Result<(), String> {
    let eps = 1e-6;
    let (base, abs) = loss(step, p)?;
    // Central differences are exact to O(eps²); the rounding error of the two
    // losses is about ε·Σ|c·v| / eps ≈ 2e-10·Σ|c·v|: allow five times that.
    let floor = 1e-9 * abs + 1e-9;
    let picks = |len: usize| -> Vec<usize> {
        if len <= 3 {
            (0..len).collect()
        } else {
            vec![0, len / 3, 2 * len / 3, len - 1]
        }
    };
    let mut probe = |p: &mut Problem,
                     set: &mut dyn FnMut(&mut Problem, f64),
                     orig: f64,
                     an: f64,
                     what: String|
     -> Result<(), String> {
        set(p, orig + eps);
        let up = loss(step, p)?.0;
        set(p, orig - eps);
        let down = loss(step, p)?.0;
        set(p, orig);
        let fd = (up - down) / (2.0 * eps);
        count.probes += 1;
        if (fd - an).abs() <= 1e-6 * fd.abs().max(an.abs()) + floor {
            return Ok(());
        }
        let (right, left) = ((up - base) / eps, (base - down) / eps);
        if kinky && (right - left).abs() > 1e-3 * right.abs().max(left.abs()).max(1.0) {
            count.kink_skips += 1;
            return Ok(());
        }
        Err(format!(
            "{what}: finite differences {fd}, BPTT {an} (one-sided: {left} / {right}; loss {base}, tolerance floor {floor:e})"
        ))
    };
    for k in 0..step.params.len() {
        for i in picks(p.seq.params[k].len()) {
            let orig = p.seq.params[k].as_slice().unwrap()[i];
            let an = g.params[k].as_slice().unwrap()[i];
            let mut set = |p: &mut Problem, v: f64| p.seq.params[k].as_slice_mut().unwrap()[i] = v;
            probe(
                p,
                &mut set,
                orig,
                an,
                format!("d{} [{i}]", step.params[k].name),
            )?;
        }
    }
    for k in 0..step.inputs.len() {
        for i in picks(p.seq.inputs[k].len()) {
            let orig = p.seq.inputs[k].as_slice().unwrap()[i];
            let an = g.inputs[k].as_slice().unwrap()[i];
            let mut set = |p: &mut Problem, v: f64| p.seq.inputs[k].as_slice_mut().unwrap()[i] = v;
            probe(
                p,
                &mut set,
                orig,
                an,
                format!("d{} [{i}] (of [T, B, n])", step.inputs[k].name),
            )?;
        }
    }
    for k in 0..step.states.len() {
        let Some(len) = p.seq.init[k].as_ref().map(|a| a.len()) else {
            continue;
        };
        for i in picks(len) {
            let orig = p.seq.init[k].as_ref().unwrap().as_slice().unwrap()[i];
            let an = g.init[k].as_slice().unwrap()[i];
            let mut set = |p: &mut Problem, v: f64| {
                p.seq.init[k].as_mut().unwrap().as_slice_mut().unwrap()[i] = v
            };
            probe(
                p,
                &mut set,
                orig,
                an,
                format!("d{}.init [{i}]", step.states[k].name),
            )?;
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// The properties.

#[derive(Clone, Debug)]
struct Case {
    decisions: Vec<Vec<u32>>,
    seed: u64,
    give_init: bool,
    lengths: Vec<i64>,
    reverse: bool,
}

fn cases() -> impl Strategy<Value = Case> {
    (
        prop::collection::vec(
            prop::collection::vec(0..DECISION_RANGE, STREAM_LEN),
            STREAMS,
        ),
        any::<u64>(),
        any::<bool>(),
        prop::collection::vec(0..=T as i64, BATCH),
        any::<bool>(),
    )
        .prop_map(|(decisions, seed, give_init, lengths, reverse)| Case {
            decisions,
            seed,
            give_init,
            lengths,
            reverse,
        })
}

#[derive(Default)]
struct Stats {
    cases: usize,
    max_ratio: f64,
    max_ratio_cell: String,
    /// The same over step graphs of 10 ops or more.
    max_ratio_big: f64,
    max_ratio_big_cell: String,
    over_three: usize,
    fd: FdCount,
    features: BTreeMap<String, usize>,
    equations: usize,
    params: usize,
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// (a) only.
    Check,
    /// (a), (b), (c), (e).
    Unrolled,
    /// (a), (d), (e).
    Lengths,
    /// (a), (f).
    Native,
}

/// Why a case did not pass.
enum Outcome {
    Fail(String),
}

impl From<String> for Outcome {
    fn from(s: String) -> Outcome {
        Outcome::Fail(s)
    }
}

fn run_case(case: &Case, mode: Mode, stats: &Mutex<Stats>) -> Result<(), Outcome> {
    let cell = generate(&case.decisions);
    let text = cell.text();
    let checked = match check_source(&text) {
        Ok(c) => c,
        Err(f) => {
            let rendered = f.render("random.cell");
            return Err(Outcome::Fail(format!(
                "(a) the cell does not check:\n{rendered}"
            )));
        }
    };
    let step = checked.step;
    {
        let mut st = stats.lock().unwrap();
        st.cases += 1;
        st.equations += cell.equations.len();
        st.params += step.params.len();
        for f in cell.features(&step) {
            *st.features.entry(f).or_insert(0) += 1;
        }
    }
    if mode == Mode::Check {
        return Ok(());
    }
    let adj = differentiate_step(&step).map_err(|e| format!("differentiate_step: {e}"))?;
    let ratio = adj.ratio(&step);
    {
        let mut st = stats.lock().unwrap();
        if ratio > 3.0 {
            st.over_three += 1;
        }
        if ratio > st.max_ratio {
            st.max_ratio = ratio;
            st.max_ratio_cell = text.clone();
        }
        if step.graph.op_count() >= 10 && ratio > st.max_ratio_big {
            st.max_ratio_big = ratio;
            st.max_ratio_big_cell = text.clone();
        }
    }
    let (lengths, reverse) = match mode {
        Mode::Lengths | Mode::Native => (Some(case.lengths.clone()), case.reverse),
        _ => (None, false),
    };
    let mut p = problem(&cell, &step, lengths, reverse, case.give_init, case.seed)?;
    if mode == Mode::Native {
        return native_equals_interpreter(&step, &adj, &p);
    }
    let g = backward(&step, &adj, &p.seq, &p.cot).map_err(|e| format!("backward: {e}"))?;
    if mode == Mode::Unrolled {
        compare_unrolled(&step, &p, &g)?;
    }
    let mut count = FdCount::default();
    let what = if mode == Mode::Lengths {
        format!("(d) lengths {:?}, reverse {}, ", case.lengths, case.reverse)
    } else {
        "(c) ".to_string()
    };
    check_fd(&step, &mut p, &g, cell.has_kink(), &mut count).map_err(|e| format!("{what}{e}"))?;
    let mut st = stats.lock().unwrap();
    st.fd.probes += count.probes;
    st.fd.kink_skips += count.kink_skips;
    Ok(())
}

/// (f) The native back end computes what the interpreter does: outputs,
/// final states and every gradient, to 1e-12 of each array's largest entry
/// or of 1 if that is larger (they differ in summation order only),
/// non-finite entries alike.
fn native_equals_interpreter(
    step: &StepGraph,
    adj: &cellc::autodiff::StepAdjoint,
    p: &Problem,
) -> Result<(), Outcome> {
    use cellc::runtime::backend::{Backend, bptt_kernels, kernel};
    use cellc::runtime::backward::run_backward;
    use cellc::runtime::forward::{initial_history, run_forward};
    let seq = &p.seq;
    let run = |backend: Backend, hoist: bool| -> Result<Vec<(String, ArrayD<f64>)>, String> {
        let hoisting = if hoist {
            cellc::pipeline::hoisting(step).map_err(|e| format!("hoisting: {e}"))?
        } else {
            None
        };
        let split = hoisting.as_ref().map(|h| &h.split);
        let (ls, lseq) = cellc::runtime::hoisted::loop_of(backend, step, split, seq)
            .map_err(|e| format!("{backend:?} hoisted values: {e}"))?;
        let loop_adj;
        let adj = match &hoisting {
            Some(_) => {
                loop_adj = differentiate_step(ls).map_err(|e| format!("loop BPTT: {e}"))?;
                &loop_adj
            }
            None => adj,
        };
        let mut k = kernel::<f64>(backend, &ls.graph, &seq.bindings, seq.batch)
            .map_err(|e| format!("{backend:?} kernel: {e}"))?;
        let traj = run_forward(ls, &mut k, &lseq, initial_history(ls, &lseq))
            .map_err(|e| format!("{backend:?} forward: {e}"))?
            .0;
        let (mut f, mut b) = bptt_kernels::<f64>(backend, adj, &seq.bindings, seq.batch)
            .map_err(|e| format!("{backend:?} BPTT kernels: {e}"))?;
        let g = run_backward(
            ls,
            &mut f,
            &mut b,
            &lseq,
            &p.cot,
            initial_history(ls, &lseq),
        )
        .map_err(|e| format!("{backend:?} backward: {e}"))?
        .1;
        let g = match &hoisting {
            Some(h) => {
                let mut pre = cellc::runtime::hoisted::Chunked::<f64>::new(
                    backend,
                    &h.pre_adjoint,
                    &seq.bindings,
                    seq.steps * seq.batch,
                )
                .map_err(|e| format!("pre adjoint kernel: {e}"))?;
                cellc::runtime::hoisted::through_hoisted(&h.split, &mut pre, seq, g)
                    .map_err(|e| format!("through the hoisted values: {e}"))?
            }
            None => g,
        };
        let mut all: Vec<(String, ArrayD<f64>)> = Vec::new();
        all.extend(
            traj.outputs
                .into_iter()
                .enumerate()
                .map(|(i, a)| (format!("output {i}"), a)),
        );
        all.extend(
            traj.last
                .into_iter()
                .enumerate()
                .map(|(i, a)| (format!("last {i}"), a.into_dyn())),
        );
        all.extend(
            g.params
                .into_iter()
                .enumerate()
                .map(|(i, a)| (format!("dparam {i}"), a)),
        );
        all.extend(
            g.inputs
                .into_iter()
                .enumerate()
                .map(|(i, a)| (format!("dinput {i}"), a.into_dyn())),
        );
        all.extend(
            g.init
                .into_iter()
                .enumerate()
                .map(|(i, a)| (format!("dinit {i}"), a.into_dyn())),
        );
        Ok(all)
    };
    let want = run(Backend::Interp, false)?;
    for hoist in [false, true] {
        let got = run(Backend::Jit, hoist)?;
        for ((what, w), (_, g)) in want.iter().zip(&got) {
            // At least 1, as in (b): an array that is rounding noise (a
            // cancellation to 1e-17) is compared at the scale of the data.
            let scale = w
                .iter()
                .filter(|v| v.is_finite())
                .fold(1.0f64, |m, v| m.max(v.abs()));
            for (a, b) in w.iter().zip(g.iter()) {
                let same = if a.is_finite() && b.is_finite() {
                    (a - b).abs() <= 1e-12 * scale
                } else {
                    a == b || (a.is_nan() && b.is_nan())
                };
                if !same {
                    return Err(Outcome::Fail(format!(
                        "(f) {what}: the JIT (hoisted: {hoist}) gives {b:e} where the interpreter gives {a:e} (largest entry {scale:e})"
                    )));
                }
            }
        }
    }
    Ok(())
}

/// Runs a property over `n` cases with a fixed seed (set RANDOM_CELLS_SEED to
/// explore others, RANDOM_CELLS_CASES to multiply `n`), without writing
/// regression files; on failure, panics with the minimal cell's text.
fn property(name: &str, n: u32, mode: Mode) {
    let seed: u64 = std::env::var("RANDOM_CELLS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x00C0_FFEE);
    let mut seed_bytes = [0u8; 32];
    seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
    seed_bytes[8..16].copy_from_slice(&(mode as u64).to_le_bytes());
    // RANDOM_CELLS_CASES=k runs k times as many cases.
    let times: u32 = std::env::var("RANDOM_CELLS_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let config = Config {
        cases: n * times,
        failure_persistence: None,
        max_shrink_iters: 4000,
        max_global_rejects: 1_000_000,
        max_local_rejects: 1_000_000,
        max_shrink_time: 120_000,
        ..Config::default()
    };
    let mut runner = TestRunner::new_with_rng(
        config,
        TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes),
    );
    let stats = Mutex::new(Stats::default());
    let start = Instant::now();
    let result = runner.run(&cases(), |case| match run_case(&case, mode, &stats) {
        Ok(()) => Ok(()),
        Err(Outcome::Fail(e)) => Err(TestCaseError::fail(e)),
    });
    let elapsed = start.elapsed();
    let st = stats.lock().unwrap();
    eprintln!(
        "{name}: {} cells ({} equations, {} parameters in all) in {:.1?}",
        st.cases, st.equations, st.params, elapsed
    );
    if mode != Mode::Check {
        eprintln!(
            "{name}: {} finite-difference probes, {} skipped at a kink; max adjoint/step node-count ratio {:.2} ({} cells above 3), for:\n{}",
            st.fd.probes, st.fd.kink_skips, st.max_ratio, st.over_three, st.max_ratio_cell
        );
        eprintln!(
            "{name}: max ratio over step graphs of 10 ops or more: {:.2}, for:\n{}",
            st.max_ratio_big, st.max_ratio_big_cell
        );
    } else {
        let cov: Vec<String> = st
            .features
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect();
        eprintln!(
            "{name}: coverage (cells using each feature):\n  {}",
            cov.join("\n  ")
        );
    }
    match result {
        Ok(()) => {}
        Err(TestError::Fail(reason, case)) => {
            let cell = generate(&case.decisions);
            panic!(
                "{name}: minimal failing cell (data seed {}, initial states given: {}, lengths {:?}, reverse {}):\n{}\n{reason}",
                case.seed,
                case.give_init,
                case.lengths,
                case.reverse,
                cell.text()
            );
        }
        Err(e) => panic!("{name}: {e}"),
    }
}

#[test]
fn random_cells_check() {
    property("(a) random cells check", 1024, Mode::Check);
}

#[test]
fn random_cells_bptt_equals_unrolled_and_finite_differences() {
    property(
        "(b)+(c) BPTT = unrolled = finite differences",
        64,
        Mode::Unrolled,
    );
}

#[test]
fn random_cells_with_lengths_and_reverse_match_finite_differences() {
    property("(d) lengths and reverse", 32, Mode::Lengths);
}

#[test]
fn random_cells_native_equals_interpreter() {
    property("(f) JIT = interpreter", 64, Mode::Native);
}

/// A sample of generated cells, for reading: `cargo test --test random_cells
/// -- --ignored --nocapture show_cells`.
#[test]
#[ignore]
fn show_cells() {
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::deterministic_rng(RngAlgorithm::ChaCha),
    );
    for _ in 0..12 {
        let case = cases().new_tree(&mut runner).unwrap().current();
        println!("{}", generate(&case.decisions).text());
    }
}

// ---------------------------------------------------------------------------
// Minimal cells of compiler bugs this test found, kept as regression tests.

/// `[W·x; W·x; h]` has size `2·?w + K`; splitting it in three asks inference
/// to solve `2·?w + K = 3·?q`, where no unknown has a unit coefficient and
/// neither divides out, so the checker reports "cannot split [K+2*?0] into 3
/// equal parts" (showing the internal unknown `?0`). The cell is valid:
/// `W: [K, X]` (or `K + 3m` rows) solves it, and with `param W: [K, X]`
/// written it checks.
#[test]
fn inference_solves_a_chunk_of_a_repeated_unknown() {
    let text = "cell c(x: [X]) {
    state h: [K]
    param W
    [p_t; q_t; r_t] = chunk([W · x_t; W · x_t; h_{t-1}], 3)
    h_t = r_t
    output h
}
";
    if let Err(f) = check_source(text) {
        panic!("{}", f.render("known_issue.cell"));
    }
}

/// The same incompleteness after the unifier has committed to a substitution:
/// `chunk(V·x, 2)` gives parts `[?a]`, `h_t = W·x` is `[?w]`, and splitting
/// `[h_t; a_t; a_t]` in three solves `?w + 2·?a = 3·?q` as `?w := 3·?q - 2·?a`;
/// the state's declared size then asks for `3·?q - 2·?a = K`, which it cannot
/// solve ("the new value of state `h` is [-2*?4+3*?5], but the state is
/// declared [K]"). `?a = ?q = K` (`V: [2*K, X]`, `W: [K, X]`) is a solution,
/// and with `param V: [2*K, X]` written the cell checks.
#[test]
fn inference_solves_a_state_size_after_two_chunks() {
    let text = "cell c(x: [X]) {
    state h: [K]
    param V, W
    [a_t; z_t] = chunk(V · x_t, 2)
    h_t = W · x_t
    [p_t; q_t; r_t] = chunk([h_t; a_t; a_t], 3)
    output h, p
}
";
    if let Err(f) = check_source(text) {
        panic!("{}", f.render("known_issue.cell"));
    }
}
