//! A checked cell: its signature, and the graph of one step.
//!
//! The step graph's arguments are, in order, every parameter, every input at
//! step `t`, and every state read `h_{t-k}` the equations make; its results are
//! every state's new value (in state order) followed by every output.

use super::Graph;
use super::dim::{Bindings, Dim, Type};
use crate::span::Span;

#[derive(Clone, Debug, PartialEq)]
pub struct InputSig {
    pub name: String,
    pub size: Dim,
    /// Where the input is declared, for a message about its size.
    pub span: Span,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Init {
    Zero,
    /// Learned: parameter number `param` (named `NAME_0`).
    Param(usize),
}

#[derive(Clone, Debug, PartialEq)]
pub struct StateSig {
    pub name: String,
    pub size: Dim,
    pub init: Init,
    /// How many steps back the cell reads it (0 when it only reads `h_t`).
    pub max_lag: u32,
    /// Where the state is declared.
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ParamSig {
    pub name: String,
    pub dims: Vec<Dim>,
    /// Whether the shape was written (`param W: [H, X]`) or inferred from use.
    pub declared: bool,
    /// Where the parameter is declared.
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct OutputSig {
    pub name: String,
    pub ty: Type,
}

/// A dimension name the cell's sizes use.
#[derive(Clone, Debug, PartialEq)]
pub struct DimSig {
    pub name: String,
    /// Named by the user (`H`), or a size that use left open and inference
    /// named (`V_rows`): bound by `-D` or by the arrays given at run time.
    pub free: bool,
    /// For a free dimension, where it comes from, in words.
    pub origin: String,
}

/// A size of the cell with no valid value under the bindings: it overflows,
/// or it is zero or negative.
#[derive(Clone, Debug, PartialEq)]
pub struct BadSize {
    /// Whose size, in words: ``state `h` ``, ``parameter `W`, axis 0``.
    pub what: String,
    pub size: Dim,
    /// Its value, or `None` when it does not fit in 64 bits.
    pub value: Option<i64>,
    /// The declaration it belongs to, for a size of the signature.
    pub span: Option<Span>,
}

/// What a step-graph argument stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ArgKind {
    Param(usize),
    Input(usize),
    /// `state` read `lag` steps back (`lag >= 1`).
    State {
        state: usize,
        lag: u32,
    },
}

#[derive(Clone, Debug)]
pub struct StepGraph {
    pub name: String,
    pub inputs: Vec<InputSig>,
    pub states: Vec<StateSig>,
    pub params: Vec<ParamSig>,
    pub outputs: Vec<OutputSig>,
    pub dims: Vec<DimSig>,
    pub arg_kinds: Vec<ArgKind>,
    pub graph: Graph,
}

impl StepGraph {
    pub fn param_arg(&self, p: usize) -> usize {
        self.arg_kinds
            .iter()
            .position(|k| *k == ArgKind::Param(p))
            .expect("every parameter is an argument")
    }
    /// Index of the result giving state `s`'s new value.
    pub fn state_result(&self, s: usize) -> usize {
        s
    }
    /// Index of the result giving output `o`.
    pub fn output_result(&self, o: usize) -> usize {
        self.states.len() + o
    }
    pub fn max_lag(&self) -> u32 {
        self.states.iter().map(|s| s.max_lag).max().unwrap_or(0)
    }
    pub fn param_index(&self, name: &str) -> Option<usize> {
        self.params.iter().position(|p| p.name == name)
    }
    pub fn param_type(&self, p: usize) -> Type {
        Type::new(false, self.params[p].dims.clone())
    }
    pub fn state_type(&self, s: usize) -> Type {
        Type::vector(true, self.states[s].size.clone())
    }
    pub fn input_type(&self, i: usize) -> Type {
        Type::vector(true, self.inputs[i].size.clone())
    }

    /// The first size that is not a count of elements under `bindings`: the
    /// signature's first (the sizes the user wrote or sees), then those the
    /// step computes (a concatenation's length). A size with a name left
    /// unbound is skipped; every name bound is checked, so the runtime can
    /// take each size's value as valid.
    pub fn bad_size(&self, bindings: &Bindings) -> Option<BadSize> {
        let mut sizes: Vec<(String, &Dim, Option<Span>)> = Vec::new();
        for i in &self.inputs {
            sizes.push((format!("input `{}`", i.name), &i.size, Some(i.span)));
        }
        for s in &self.states {
            sizes.push((format!("state `{}`", s.name), &s.size, Some(s.span)));
        }
        for p in &self.params {
            for (axis, d) in p.dims.iter().enumerate() {
                let what = match p.dims.len() {
                    1 => format!("parameter `{}`", p.name),
                    _ => format!("parameter `{}`, axis {axis}", p.name),
                };
                sizes.push((what, d, Some(p.span)));
            }
        }
        for o in &self.outputs {
            for d in &o.ty.dims {
                sizes.push((format!("output `{}`", o.name), d, None));
            }
        }
        for n in self.graph.node_ids() {
            let node = self.graph.node(n);
            for d in &node.ty.dims {
                let what = match &node.label {
                    Some(l) => format!("`{l}`"),
                    None => format!("a value the step computes (`{}`)", node.op.name()),
                };
                sizes.push((what, d, None));
            }
        }
        sizes.into_iter().find_map(|(what, d, span)| {
            let value = match d.value(bindings) {
                Ok(Some(v)) if v >= 1 => return None,
                Ok(None) => return None,
                Ok(Some(v)) => Some(v),
                Err(_) => None,
            };
            Some(BadSize {
                what,
                size: d.clone(),
                value,
                span,
            })
        })
    }
}
