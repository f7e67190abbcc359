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
//!
//! Enters: a parsed [`CellDef`] (or source text, for [`check_source`]).
//! Leaves: a [`Checked`] step graph with its warnings, or diagnostics.
//! This file is the driver ([`Checker::run`]); the steps live beside it:
//! `resolve` (names, time indices), `order` (equation order, cycles), `lower`
//! (expressions and sugar → ops), `infer` (the size solver), `finish` (free
//! sizes, signatures), `warnings`, `error` (the wording of every error) and
//! `walk` (AST walkers they share).

mod error;
mod finish;
mod infer;
mod lower;
mod order;
mod resolve;
mod walk;
mod warnings;

pub use error::CheckError;

use crate::diagnostic::Diagnostic;
use crate::graph::dim::{Dim, Type};
use crate::graph::step::{ArgKind, StepGraph};
use crate::graph::{Arg, Builder, NodeId, Output};
use crate::syntax::ast::{CellDef, Equation, Item, Span, StateInit};
use infer::Unifier;
use std::collections::{BTreeSet, HashMap};
use walk::{collect_state_reads, param_ranks};

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
    pub(super) fn run(&mut self, cell: &CellDef) -> Result<StepGraph, CheckError> {
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
                    notes: vec![],
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
