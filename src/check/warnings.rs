//! Warnings: what a valid cell declares or computes without using.
//!
//! Enters: the lowered graph and what lowering read. Leaves: warnings on the
//! checker (unused parameters and inputs, values that reach no result).
//! Exists apart from the errors because a warning never stops a check.

use super::Checker;
use crate::diagnostic::Diagnostic;
use crate::graph::Builder;
use crate::syntax::ast::{Equation, StateInit};

impl Checker {
    pub(super) fn warn_unused(&mut self, eqs: &[&Equation], b: &Builder) {
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
}
