//! Stage 2, check: AST → typed [`StepGraph`].
//!
//! Resolves every name (inputs, states, parameters, intermediates) and time
//! index, orders the equations by their dependencies within one step (a cycle is
//! an error), infers the shapes of parameters that were not declared, and lowers
//! the language's sugar (`softmax`, `mean`, `chunk`, `·` on a concatenation...)
//! to the IR's primitive ops. Shapes are inferred by the ops' own shape rules
//! (see [`crate::graph::op::Op::result_type`]) run with a unifier: an undeclared
//! parameter's sizes start as unknowns and are solved as uses constrain them;
//! sizes no use fixes become free dimensions with names of their own.

use crate::diagnostic::{Diagnostic, closest};
use crate::graph::dim::{Atom, Dim, Type};
use crate::graph::op::{Binary, DimEq, Op, ShapeError, Unary};
use crate::graph::step::{
    ArgKind, DimSig, Init, InputSig, OutputSig, ParamSig, StateSig, StepGraph,
};
use crate::graph::{Arg, Builder, NodeId, Output};
use crate::syntax::ast::{
    self, BinOp, CellDef, Equation, Expr, ExprKind, Item, SizeExpr, SizeKind, Span, StateInit,
};
use petgraph::graph::DiGraph;
use std::collections::{BTreeSet, HashMap};

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
            } => did_you_mean(Diagnostic::error(msg, *span), suggestion).with_note(
                "help: the functions are sigmoid (σ), tanh, relu, exp, log, softplus, abs, sqrt, softmax, sum, mean, max and chunk",
            ),
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
                ..
            } => {
                let mut d = Diagnostic::error(msg, *span).with_label(label.clone());
                for (s, l) in labels {
                    d = d.with_secondary(*s, l.clone());
                }
                d
            }
            CheckError::Invalid { span, label, .. } => {
                Diagnostic::error(msg, *span).with_label(label.clone())
            }
        }
    }
}

/// A checked cell with the warnings its check raised.
#[derive(Debug)]
pub struct Checked {
    pub step: StepGraph,
    pub warnings: Vec<Diagnostic>,
}

/// Checks a parsed cell. On failure, the first error (and any warnings found
/// before it) as diagnostics.
pub fn check(cell: &CellDef) -> Result<Checked, Vec<Diagnostic>> {
    let mut c = Checker::default();
    match c.run(cell) {
        Ok(step) => Ok(Checked {
            step,
            warnings: c.warnings,
        }),
        Err(e) => {
            let mut out = vec![e.to_diagnostic()];
            out.extend(c.warnings);
            Err(out)
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Entity {
    Input(usize),
    State(usize),
    Param(usize),
    /// A value computed in the step: equation number, part number.
    Value(usize, usize),
}

impl Entity {
    fn what(self) -> &'static str {
        match self {
            Entity::Input(_) => "an input",
            Entity::State(_) => "a state",
            Entity::Param(_) => "a parameter",
            Entity::Value(..) => "a value computed in the step",
        }
    }
}

#[derive(Default)]
struct Unifier {
    subst: HashMap<u32, Dim>,
    origins: Vec<String>,
    /// (unknown, the unknown a Euclid step replaced it with), in order.
    euclid: Vec<(u32, u32)>,
}

impl Unifier {
    fn fresh(&mut self, origin: String) -> Dim {
        self.origins.push(origin);
        Dim::var(self.origins.len() as u32 - 1)
    }
    fn resolve(&self, d: &Dim) -> Dim {
        d.substitute(&mut |a| match a {
            Atom::Var(v) => self.subst.get(v).map(|e| self.resolve(e)),
            Atom::Sym(_) => None,
        })
    }
    /// `d` resolved, with remaining unknowns shown by their origin names.
    fn named(&self, d: &Dim) -> Dim {
        self.resolve(d).substitute(&mut |a| match a {
            Atom::Var(v) => Some(Dim::sym(self.origins[*v as usize].clone())),
            Atom::Sym(_) => None,
        })
    }
    fn resolve_type(&self, t: &Type) -> Type {
        t.map_dims(&mut |d| self.resolve(d))
    }
    /// `d / n` as a size, introducing an unknown when `d` is still open.
    fn divide(&mut self, d: &Dim, n: i64, origin: String) -> Option<Dim> {
        let d = self.resolve(d);
        if let Some(q) = d.div_exact(n) {
            return Some(q);
        }
        if !d.has_vars() {
            return None;
        }
        let q = self.fresh(origin);
        self.equate(&d, &q.scale(n)).then_some(q)
    }
}

impl DimEq for Unifier {
    /// Makes `a = b` hold by solving for unknowns, in whole numbers.
    fn equate(&mut self, a: &Dim, b: &Dim) -> bool {
        let mut d = self.resolve(a).sub(&self.resolve(b));
        loop {
            let vars: Vec<(u32, i64)> = d
                .terms
                .iter()
                .filter_map(|(a, c)| match a {
                    Atom::Var(v) => Some((*v, *c)),
                    Atom::Sym(_) => None,
                })
                .collect();
            if vars.is_empty() {
                return d == Dim::konst(0);
            }
            // Solve for the newest unknown with a unit coefficient, so that
            // older unknowns (and their names) survive; else for one that
            // divides the rest evenly.
            let exact = vars.iter().rev().find(|(_, c)| c.abs() == 1).or_else(|| {
                vars.iter().rev().find(|(v, c)| {
                    let mut rest = d.clone();
                    rest.terms.remove(&Atom::Var(*v));
                    rest.div_exact(*c).is_some()
                })
            });
            if let Some(&(v, c)) = exact {
                let mut rest = d.clone();
                rest.terms.remove(&Atom::Var(v));
                // c·v + rest = 0  ⇒  v = -rest / c
                let val = rest.scale(-1).div_exact(c).expect("divisible by choice");
                self.subst.insert(v, val);
                return true;
            }
            if vars.len() == 1 {
                // c·v = -rest with rest not a multiple of c: no whole solution.
                return false;
            }
            // A step of Euclid's algorithm (as for any linear equation in
            // whole numbers): with c the smallest coefficient, write
            // v = w - Σ ⌊cᵢ/c⌋·aᵢ for a new unknown w; the equation becomes
            // c·w + Σ (cᵢ mod c)·aᵢ = 0, whose coefficients are smaller.
            let &(v, c) = vars
                .iter()
                .rev()
                .min_by_key(|(_, c)| c.abs())
                .expect("two or more unknowns");
            let w = self.fresh(self.origins[v as usize].clone());
            if let Atom::Var(wi) = w.terms.keys().next().expect("a fresh unknown") {
                self.euclid.push((v, *wi));
            }
            let mut quotient = Dim::konst(d.konst.div_euclid(c));
            for (atom, ci) in &d.terms {
                if *atom != Atom::Var(v) {
                    let mut t = Dim::konst(0);
                    t.terms.insert(atom.clone(), ci.div_euclid(c));
                    quotient = quotient.add(&t);
                }
            }
            self.subst.insert(v, w.sub(&quotient));
            d = self.resolve(&d);
        }
    }
}

/// An output's name and the value it emits (equation, part).
type OutputRef = (String, (usize, usize));

#[derive(Default)]
struct Checker {
    warnings: Vec<Diagnostic>,
    names: HashMap<String, (Entity, Span)>,
    inputs: Vec<(String, Span, Dim)>,
    states: Vec<(String, Span, Dim, StateInit)>,
    params: Vec<(String, Span, Option<Vec<Dim>>)>,
    /// For each equation, its targets' names.
    equations: Vec<(Vec<String>, Span)>,
    /// Where each state's new value is given: equation, part.
    state_eq: HashMap<usize, (usize, usize)>,
    unifier: Unifier,
    /// The source span each node was lowered from, for messages.
    spans: HashMap<NodeId, Span>,
    /// For each equation, the node of each of its targets once lowered.
    values: HashMap<(usize, usize), NodeId>,
    /// Step-graph argument of each param, input and state read.
    arg_nodes: HashMap<ArgKind, NodeId>,
    used_params: BTreeSet<usize>,
    /// `NAME_0` for every state with `= param`.
    learned_inits: BTreeSet<String>,
    used_inputs: BTreeSet<usize>,
}

impl Checker {
    fn run(&mut self, cell: &CellDef) -> Result<StepGraph, CheckError> {
        self.declare(cell)?;
        let eqs: Vec<&Equation> = cell
            .items
            .iter()
            .filter_map(|i| match i {
                Item::Equation(e) => Some(e),
                _ => None,
            })
            .collect();
        self.declare_equations(&eqs)?;
        let order = self.order_equations(&eqs)?;
        let outputs = self.resolve_outputs(cell)?;
        let ranks = param_ranks(&eqs, &self.names);

        // Unknown parameter sizes become unknowns of inference.
        let mut param_dims: Vec<Vec<Dim>> = Vec::new();
        for (i, (name, _, shape)) in self.params.clone().iter().enumerate() {
            param_dims.push(match shape {
                Some(d) => d.clone(),
                None => match ranks.get(&i).copied().unwrap_or(1) {
                    2 => vec![
                        self.unifier.fresh(format!("{name}_rows")),
                        self.unifier.fresh(format!("{name}_cols")),
                    ],
                    _ => vec![self.unifier.fresh(format!("{name}_len"))],
                },
            });
        }

        // Arguments: parameters, inputs, then the state reads the equations make.
        let mut reads: BTreeSet<(usize, u32)> = BTreeSet::new();
        for e in &eqs {
            collect_state_reads(&e.rhs, &self.names, &mut reads);
        }
        let mut kinds: Vec<ArgKind> = Vec::new();
        let mut args: Vec<Arg> = Vec::new();
        for (i, (name, _, _)) in self.params.iter().enumerate() {
            kinds.push(ArgKind::Param(i));
            args.push(Arg {
                name: name.clone(),
                ty: Type::new(false, param_dims[i].clone()),
            });
        }
        for (i, (name, _, size)) in self.inputs.iter().enumerate() {
            kinds.push(ArgKind::Input(i));
            args.push(Arg {
                name: format!("{name}[t]"),
                ty: Type::vector(true, size.clone()),
            });
        }
        for &(s, lag) in &reads {
            kinds.push(ArgKind::State { state: s, lag });
            args.push(Arg {
                name: format!("{}[t-{lag}]", self.states[s].0),
                ty: Type::vector(true, self.states[s].2.clone()),
            });
        }
        let mut b = Builder::new(args);
        for (i, k) in kinds.iter().enumerate() {
            let id = b.arg(i);
            self.arg_nodes.insert(*k, id);
        }

        for &e in &order {
            self.lower_equation(&mut b, e, eqs[e])?;
        }

        // Results: each state's new value, then each output.
        let mut results = Vec::new();
        for (s, (name, _, size, _)) in self.states.clone().iter().enumerate() {
            let node = self.values[&self.state_eq[&s]];
            let ty = b.ty(node).clone();
            let want = Type::vector(true, size.clone());
            if !self.types_unify(&ty, &want) {
                // Point at the state's own equation (the value may be shared
                // with another name, whose span the node keeps).
                let span = self.equations[self.state_eq[&s].0].1;
                return Err(CheckError::Shape {
                    message: format!(
                        "the new value of state `{name}` is {}, but the state is declared {}",
                        self.show(&ty),
                        self.show(&want)
                    ),
                    span,
                    label: format!("this is {}", self.show(&ty)),
                    labels: vec![(self.states[s].1, format!("declared {}", self.show(&want)))],
                });
            }
            results.push(Output {
                name: format!("{name}[t]"),
                node,
            });
        }
        let mut output_sigs = Vec::new();
        for (name, node) in &outputs {
            let node = self.values[node];
            results.push(Output {
                name: format!("out {name}"),
                node,
            });
            output_sigs.push((name.clone(), node));
        }
        b.graph.results = results;
        self.warn_unused(&eqs, &b);
        self.finish(cell, b, kinds, param_dims, output_sigs, &reads)
    }

    /// Whether a value of type `a` can be stored where `b` is expected (an
    /// unbatched value is repeated over the batch).
    fn types_unify(&mut self, a: &Type, b: &Type) -> bool {
        (a.batched == b.batched || !a.batched)
            && a.rank() == b.rank()
            && a.dims
                .iter()
                .zip(&b.dims)
                .all(|(x, y)| self.unifier.equate(x, y))
    }

    /// A type for a message: unknowns are shown by the name they would get
    /// as free sizes (`W_rows`), never as internal numbers.
    fn show(&self, t: &Type) -> String {
        self.unifier
            .resolve_type(t)
            .map_dims(&mut |d| self.unifier.named(d))
            .shape_string()
    }

    fn declare_name(&mut self, name: &str, e: Entity, span: Span) -> Result<(), CheckError> {
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

    fn declare(&mut self, cell: &CellDef) -> Result<(), CheckError> {
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

    fn declare_equations(&mut self, eqs: &[&Equation]) -> Result<(), CheckError> {
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

    fn check_reads(&self, e: &Expr) -> Result<(), CheckError> {
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

    fn check_read(
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

    /// Orders the equations so that each comes after those it reads at step `t`.
    fn order_equations(&self, eqs: &[&Equation]) -> Result<Vec<usize>, CheckError> {
        let mut g: DiGraph<usize, ()> = DiGraph::new();
        let nodes: Vec<_> = (0..eqs.len()).map(|i| g.add_node(i)).collect();
        for (e, eq) in eqs.iter().enumerate() {
            for dep in self.current_deps(&eq.rhs) {
                g.update_edge(nodes[dep], nodes[e], ());
            }
        }
        // Kahn's algorithm taking the earliest equation first, so that the
        // graph follows the file's order wherever dependencies allow.
        let mut indegree: Vec<usize> = nodes
            .iter()
            .map(|n| {
                g.neighbors_directed(*n, petgraph::Direction::Incoming)
                    .count()
            })
            .collect();
        let mut ready: std::collections::BTreeSet<usize> =
            (0..eqs.len()).filter(|e| indegree[*e] == 0).collect();
        let mut order = Vec::with_capacity(eqs.len());
        while let Some(e) = ready.pop_first() {
            order.push(e);
            for next in g.neighbors_directed(nodes[e], petgraph::Direction::Outgoing) {
                let n = g[next];
                indegree[n] -= 1;
                if indegree[n] == 0 {
                    ready.insert(n);
                }
            }
        }
        match (order.len() == eqs.len()).then_some(order).ok_or(()) {
            Ok(order) => Ok(order),
            Err(()) => {
                let scc = petgraph::algo::tarjan_scc(&g)
                    .into_iter()
                    .find(|c| c.len() > 1 || g.contains_edge(c[0], c[0]))
                    .unwrap_or_default();
                let members: std::collections::BTreeSet<usize> =
                    scc.iter().map(|n| g[*n]).collect();
                // Walk the cycle along "reads" from the earliest equation in it.
                let start = *members.first().expect("a cycle has members");
                let reads = |e: usize| -> Vec<usize> {
                    let mut r: Vec<usize> = g
                        .neighbors_directed(nodes[e], petgraph::Direction::Incoming)
                        .map(|n| g[n])
                        .filter(|d| members.contains(d))
                        .collect();
                    r.sort();
                    r
                };
                let mut path = vec![start];
                let mut seen = std::collections::BTreeSet::from([start]);
                let mut at = start;
                loop {
                    let next = reads(at);
                    if next.contains(&start) && (path.len() > 1 || at == start) {
                        break;
                    }
                    match next.into_iter().find(|n| !seen.contains(n)) {
                        Some(n) => {
                            path.push(n);
                            seen.insert(n);
                            at = n;
                        }
                        None => break,
                    }
                }
                let name = |e: usize| format!("`{}`", self.equations[e].0.join(", "));
                let mut text = name(start);
                for &e in &path[1..] {
                    text.push_str(&format!(" reads {}, which", name(e)));
                }
                text.push_str(&format!(" reads {}", name(start)));
                let text = text
                    .replacen(" reads", " needs", 1)
                    .replace(", which reads", ", which needs");
                Err(CheckError::Cycle {
                    path: text,
                    span: self.equations[start].1,
                    others: path[1..].iter().map(|m| self.equations[*m].1).collect(),
                })
            }
        }
    }

    /// The equations an expression reads at the current step.
    fn current_deps(&self, e: &Expr) -> Vec<usize> {
        let mut out = Vec::new();
        visit(e, &mut |e| {
            if let ExprKind::Var { name, time } = &e.kind {
                match self.names.get(&name.name) {
                    Some((Entity::Value(eq, _), _)) => out.push(*eq),
                    Some((Entity::State(s), _)) if time.is_some_and(|t| t.lag == 0) => {
                        out.push(self.state_eq[s].0)
                    }
                    _ => {}
                }
            }
        });
        out
    }

    fn resolve_outputs(&self, cell: &CellDef) -> Result<Vec<OutputRef>, CheckError> {
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

    fn lower_equation(
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
                return Err(CheckError::Shape {
                    message: format!("cannot split {} into {n} equal parts", self.show(&zt)),
                    span: eq.rhs.span,
                    label: format!("{} is not a multiple of {n}", self.show(&zt)),
                    labels: vec![],
                });
            };
            for (p, t) in eq.targets.iter().enumerate() {
                let op = Op::Slice {
                    start: part.scale(p as i64),
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

    fn node(
        &mut self,
        b: &mut Builder,
        op: Op,
        args: &[NodeId],
        at: &Expr,
    ) -> Result<NodeId, CheckError> {
        let id = b
            .node_with(op, args, &mut self.unifier)
            .map_err(|e| self.shape_error_nodes(e, at, args, b))?;
        self.spans.insert(id, at.span);
        Ok(id)
    }

    fn lower(&mut self, b: &mut Builder, e: &Expr) -> Result<NodeId, CheckError> {
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
            ExprKind::Binary { op, lhs, rhs, .. } => {
                let l = self.lower(b, lhs)?;
                let r = self.lower(b, rhs)?;
                let op = match op {
                    BinOp::Add => Op::Binary(Binary::Add),
                    BinOp::Sub => Op::Binary(Binary::Sub),
                    BinOp::Mul => Op::Binary(Binary::Mul),
                    BinOp::Div => Op::Binary(Binary::Div),
                    BinOp::MatMul => Op::MatVec,
                };
                self.node(b, op, &[l, r], e)
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

    fn lower_call(
        &mut self,
        b: &mut Builder,
        e: &Expr,
        func: &ast::Ident,
        args: &[Expr],
    ) -> Result<NodeId, CheckError> {
        const FUNCS: [&str; 13] = [
            "sigmoid", "tanh", "relu", "exp", "log", "softplus", "abs", "sqrt", "softmax", "sum",
            "mean", "max", "chunk",
        ];
        let name = func.name.as_str();
        if !FUNCS.contains(&name) {
            return Err(CheckError::UnknownFunction {
                name: name.into(),
                span: func.span,
                suggestion: closest(name, FUNCS).map(String::from),
            });
        }
        if name == "chunk" {
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
        let unary = |u| Op::Unary(u);
        match name {
            "sigmoid" => self.node(b, unary(Unary::Sigmoid), &[a], e),
            "tanh" => self.node(b, unary(Unary::Tanh), &[a], e),
            "relu" => self.node(b, unary(Unary::Relu), &[a], e),
            "exp" => self.node(b, unary(Unary::Exp), &[a], e),
            "log" => self.node(b, unary(Unary::Log), &[a], e),
            "softplus" => self.node(b, unary(Unary::Softplus), &[a], e),
            "abs" => self.node(b, unary(Unary::Abs), &[a], e),
            "sqrt" => self.node(b, unary(Unary::Sqrt), &[a], e),
            "sum" => self.node(b, Op::Sum, &[a], e),
            "max" => self.node(b, Op::Max, &[a], e),
            "mean" => {
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
            "softmax" => {
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
                let x = self.node(b, unary(Unary::Exp), &[s], e)?;
                let z = self.node(b, Op::Sum, &[x], e)?;
                self.node(b, Op::Binary(Binary::Div), &[x, z], e)
            }
            _ => unreachable!("every function is handled"),
        }
    }

    fn rank_error(&self, what: &str, at: &Expr, t: &Type) -> CheckError {
        CheckError::Shape {
            message: format!("{what}, but this is {}", kind_of(t)),
            span: at.span,
            label: format!("this is {}", self.show(t)),
            labels: vec![],
        }
    }

    /// A shape rule's complaint, in the language's words, with each operand's
    /// shape and where it comes from.
    fn shape_error_nodes(
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
                format!("{verb} needs {expected}, but found {}", kind_of(found))
            }
            other => other.to_string(),
        };
        let mut labels = Vec::new();
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
                if *decl != x.span && !matches!(ent, Entity::Value(..)) {
                    labels.push((*decl, format!("`{}` declared here", name.name)));
                }
            }
            labels.push((x.span, l));
        }
        CheckError::Shape {
            message,
            span,
            label: String::new(),
            labels,
        }
    }

    fn warn_unused(&mut self, eqs: &[&Equation], b: &Builder) {
        for (p, (name, span, _)) in self.params.iter().enumerate() {
            let learned_init = self
                .states
                .iter()
                .any(|(s, _, _, init)| *init == StateInit::Param && format!("{s}_0") == *name);
            if !self.used_params.contains(&p) && !learned_init {
                self.warnings.push(
                    Diagnostic::warning(format!("parameter `{name}` is never used"), *span)
                        .with_label("declared here"),
                );
            }
        }
        for (i, (name, span, _)) in self.inputs.iter().enumerate() {
            if !self.used_inputs.contains(&i) {
                self.warnings.push(
                    Diagnostic::warning(format!("input `{name}` is never used"), *span)
                        .with_label("declared here"),
                );
            }
        }
        // A computed value that reaches no state and no output.
        let mut live = vec![false; b.graph.len()];
        for r in &b.graph.results {
            live[r.node.index()] = true;
        }
        for n in b.graph.node_ids().collect::<Vec<_>>().into_iter().rev() {
            if live[n.index()] {
                for o in b.graph.operands(n) {
                    live[o.index()] = true;
                }
            }
        }
        for (e, eq) in eqs.iter().enumerate() {
            for (p, t) in eq.targets.iter().enumerate() {
                if let Some(id) = self.values.get(&(e, p))
                    && !live[id.index()]
                {
                    self.warnings.push(
                        Diagnostic::warning(
                            format!("`{}` is computed but never used", t.name.name),
                            t.name.span,
                        )
                        .with_label("reaches no state and no output"),
                    );
                }
            }
        }
    }

    fn finish(
        &mut self,
        cell: &CellDef,
        b: Builder,
        kinds: Vec<ArgKind>,
        param_dims: Vec<Vec<Dim>>,
        outputs: Vec<(String, NodeId)>,
        reads: &BTreeSet<(usize, u32)>,
    ) -> Result<StepGraph, CheckError> {
        let mut graph = b.finish();
        // An unknown brought in by a step of Euclid's algorithm may stand in
        // the unknown it replaced with a minus sign (`-3*w-2*K`); then its
        // negation is used instead, so that the size grows with it and the
        // values that fit an array are positive.
        for (v, w) in self.unifier.euclid.clone() {
            let replaced = self.unifier.resolve(&Dim::var(v));
            let sign = replaced.terms.get(&Atom::Var(w)).copied().unwrap_or(0);
            if sign < 0 && !self.unifier.subst.contains_key(&w) {
                let flipped = self.unifier.fresh(self.unifier.origins[w as usize].clone());
                self.unifier.subst.insert(w, flipped.scale(-1));
            }
        }
        // Name the sizes no use fixed, in order of appearance.
        let mut used_syms: BTreeSet<String> = BTreeSet::new();
        let mut declared: Vec<String> = Vec::new();
        let note_syms = |d: &Dim, into: &mut Vec<String>| {
            for s in d.symbols() {
                if !into.iter().any(|x| x == s) {
                    into.push(s.to_string());
                }
            }
        };
        for (_, _, d) in &self.inputs {
            note_syms(d, &mut declared);
        }
        for (_, _, d, _) in &self.states {
            note_syms(d, &mut declared);
        }
        for (_, _, shape) in &self.params {
            for d in shape.iter().flatten() {
                note_syms(d, &mut declared);
            }
        }
        used_syms.extend(declared.iter().cloned());
        let mut free: Vec<(u32, String)> = Vec::new();
        let mut name_vars = |d: &Dim, u: &Unifier, free: &mut Vec<(u32, String)>| {
            for a in u.resolve(d).terms.keys() {
                if let Atom::Var(v) = a
                    && !free.iter().any(|(x, _)| x == v)
                {
                    let mut name = u.origins[*v as usize].clone();
                    while used_syms.contains(&name) {
                        name.push('_');
                    }
                    used_syms.insert(name.clone());
                    free.push((*v, name));
                }
            }
        };
        for dims in &param_dims {
            for d in dims {
                name_vars(d, &self.unifier, &mut free);
            }
        }
        for n in graph.node_ids() {
            for d in &graph.node(n).ty.dims {
                name_vars(d, &self.unifier, &mut free);
            }
        }
        let unifier = &self.unifier;
        let mut fix = |d: &Dim| {
            unifier.resolve(d).substitute(&mut |a| match a {
                Atom::Var(v) => free
                    .iter()
                    .find(|(x, _)| x == v)
                    .map(|(_, n)| Dim::sym(n.clone())),
                Atom::Sym(_) => None,
            })
        };
        for n in graph.node_ids() {
            let node = &mut graph.dag[n];
            node.ty = node.ty.map_dims(&mut fix);
            node.op = node.op.map_dims(&mut fix);
        }
        for a in &mut graph.args {
            a.ty = a.ty.map_dims(&mut fix);
        }
        let params: Vec<ParamSig> = self
            .params
            .iter()
            .zip(&param_dims)
            .map(|((name, _, shape), dims)| ParamSig {
                name: name.clone(),
                dims: dims.iter().map(&mut fix).collect(),
                declared: shape.is_some(),
            })
            .collect();
        let outputs: Vec<OutputSig> = outputs
            .into_iter()
            .map(|(name, node)| OutputSig {
                name,
                ty: graph.node(node).ty.clone(),
            })
            .collect();
        let mut dims: Vec<DimSig> = declared
            .into_iter()
            .map(|name| DimSig {
                name,
                free: false,
                origin: String::new(),
            })
            .collect();
        for (v, name) in &free {
            dims.push(DimSig {
                name: name.clone(),
                free: true,
                origin: free_origin(&self.unifier.origins[*v as usize]),
            });
        }
        let states = self
            .states
            .iter()
            .enumerate()
            .map(|(s, (name, _, size, init))| StateSig {
                name: name.clone(),
                size: size.clone(),
                init: match init {
                    StateInit::Zero => Init::Zero,
                    StateInit::Param => Init::Param(
                        self.params
                            .iter()
                            .position(|(p, _, _)| *p == format!("{name}_0"))
                            .expect("declared with the state"),
                    ),
                },
                max_lag: reads
                    .iter()
                    .filter(|(st, _)| *st == s)
                    .map(|(_, l)| *l)
                    .max()
                    .unwrap_or(0),
            })
            .collect();
        let step = StepGraph {
            name: cell.name.name.clone(),
            inputs: self
                .inputs
                .iter()
                .map(|(name, _, size)| InputSig {
                    name: name.clone(),
                    size: size.clone(),
                })
                .collect(),
            states,
            params,
            outputs,
            dims,
            arg_kinds: kinds,
            graph,
        };
        step.graph.verify().map_err(|e| CheckError::Invalid {
            message: format!("internal error: the step graph is invalid: {e}"),
            span: cell.name.span,
            label: "in this cell".into(),
        })?;
        Ok(step)
    }
}

fn free_origin(origin: &str) -> String {
    if let Some(p) = origin.strip_suffix("_rows") {
        format!("the rows of `{p}`, left open by its uses")
    } else if let Some(p) = origin.strip_suffix("_cols") {
        format!("the columns of `{p}`, left open by its uses")
    } else if let Some(p) = origin.strip_suffix("_len") {
        format!("the length of `{p}`, left open by its uses")
    } else {
        format!("`{origin}`, left open by its uses")
    }
}

fn kind_of(t: &Type) -> String {
    match t.rank() {
        0 => "a scalar".into(),
        1 => format!("a vector {}", t.shape_string()),
        _ => format!("a matrix {}", t.shape_string()),
    }
}

fn op_symbol(op: BinOp) -> &'static str {
    match op {
        BinOp::MatMul => "·",
        BinOp::Mul => "∘",
        o => o.symbol(),
    }
}

/// How far back a state may be read: the runtime keeps that many past values.
const MAX_LAG: u32 = 1 << 16;

/// A size as written, which must be able to be positive.
fn size_dim(s: &SizeExpr) -> Result<Dim, CheckError> {
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

fn size_expr(s: &SizeExpr) -> Result<Dim, CheckError> {
    let invalid = |label: &str| CheckError::Invalid {
        message: "a size is a sum of names and integers, or a name times an integer".into(),
        span: s.span,
        label: label.into(),
    };
    Ok(match &s.kind {
        SizeKind::Int(n) => Dim::konst(*n),
        SizeKind::Name(n) => Dim::sym(n.clone()),
        SizeKind::Add(a, b) => size_expr(a)?.add(&size_expr(b)?),
        SizeKind::Sub(a, b) => size_expr(a)?.sub(&size_expr(b)?),
        SizeKind::Mul(a, b) => {
            let (a, b) = (size_expr(a)?, size_expr(b)?);
            match (a.as_const(), b.as_const()) {
                (Some(k), _) => b.scale(k),
                (_, Some(k)) => a.scale(k),
                _ => return Err(invalid("a product of two names is not a size")),
            }
        }
    })
}

/// Calls `f` on every sub-expression, outermost first.
fn visit(e: &Expr, f: &mut impl FnMut(&Expr)) {
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

fn collect_state_reads(
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
fn param_ranks(
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
                let keeps_shape = !matches!(
                    func.name.as_str(),
                    "sum" | "mean" | "max" | "softmax" | "chunk"
                );
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

/// A file that did not pass: its diagnostics, with the normalised text their
/// spans refer to.
#[derive(Debug)]
pub struct Failed {
    pub source: String,
    pub diagnostics: Vec<Diagnostic>,
}

impl Failed {
    pub fn render(&self, file: &str) -> String {
        crate::diagnostic::render_all(&self.diagnostics, file, &self.source)
    }
}

/// Syntax and check in one call: source text (normalised here) → checked cell.
pub fn check_source(text: &str) -> Result<Checked, Failed> {
    let source = crate::syntax::normalize_source(text);
    let ast = match crate::syntax::parse(&source) {
        Ok(a) => a,
        Err(d) => {
            return Err(Failed {
                source,
                diagnostics: vec![d],
            });
        }
    };
    check(&ast).map_err(|diagnostics| Failed {
        source,
        diagnostics,
    })
}
