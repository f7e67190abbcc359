//! The step graph's final form: free sizes named, signatures assembled.
//!
//! Enters: the built graph, the unifier's solution and the declarations.
//! Leaves: the [`StepGraph`], with every unknown size left open by its uses
//! replaced by a free dimension with a name of its own (`W_rows`), verified.
//! Exists because the unifier's internal unknowns must never leave the checker.

use super::Checker;
use super::error::CheckError;
use super::infer::Unifier;
use crate::graph::dim::{Atom, Dim, Overflow};
use crate::graph::step::{
    ArgKind, DimSig, Init, InputSig, OutputSig, ParamSig, StateSig, StepGraph,
};
use crate::graph::{Builder, NodeId};
use crate::syntax::ast::{CellDef, StateInit};
use std::collections::BTreeSet;

impl Checker {
    pub(super) fn finish(
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
            let replaced = self.unifier.resolve(&Dim::var(v)).map_err(overflow(cell))?;
            let sign = replaced.terms.get(&Atom::Var(w)).copied().unwrap_or(0);
            if sign < 0 && !self.unifier.subst.contains_key(&w) {
                let flipped = self.unifier.fresh(self.unifier.origins[w as usize].clone());
                let negated = flipped.scale(-1).map_err(overflow(cell))?;
                self.unifier.subst.insert(w, negated);
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
            for a in u.resolve(d).unwrap_or_else(|_| d.clone()).terms.keys() {
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
        // Set when a size overflows; reported once all sizes are fixed.
        let overflowed = std::cell::Cell::new(false);
        let mut fix = |d: &Dim| {
            unifier
                .resolve(d)
                .and_then(|r| {
                    r.substitute(&mut |a| match a {
                        Atom::Var(v) => free
                            .iter()
                            .find(|(x, _)| x == v)
                            .map(|(_, n)| Dim::sym(n.clone())),
                        Atom::Sym(_) => None,
                    })
                })
                .unwrap_or_else(|_| {
                    overflowed.set(true);
                    d.clone()
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
            .map(|((name, span, shape), dims)| ParamSig {
                name: name.clone(),
                dims: dims.iter().map(&mut fix).collect(),
                declared: shape.is_some(),
                span: *span,
            })
            .collect();
        if overflowed.get() {
            return Err(overflow(cell)(Overflow));
        }
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
            .map(|(s, (name, span, size, init))| StateSig {
                name: name.clone(),
                size: size.clone(),
                span: *span,
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
                .map(|(name, span, size)| InputSig {
                    name: name.clone(),
                    size: size.clone(),
                    span: *span,
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

/// An inferred size beyond 64 bits; the sizes as written were checked one
/// by one, so only their combination is left to blame.
fn overflow(cell: &CellDef) -> impl Fn(Overflow) -> CheckError + '_ {
    move |e| CheckError::Invalid {
        message: format!("the sizes this cell's shapes combine to overflow: {e}"),
        span: cell.name.span,
        label: "in this cell".into(),
    }
}

pub(super) fn free_origin(origin: &str) -> String {
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
