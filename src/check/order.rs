//! Equation order within one step.
//!
//! Enters: the resolved equations. Leaves: an order in which each equation comes
//! after those it reads at step `t` (the file's order wherever possible), or the
//! cycle as an error that names its equations.
//! Exists because a cell's equations may be written in any order, and reads at
//! `t-k` do not constrain it.

use super::error::CheckError;
use super::walk::visit;
use super::{Checker, Entity};
use crate::syntax::ast::{Equation, Expr, ExprKind};
use petgraph::graph::DiGraph;

impl Checker {
    /// Orders the equations so that each comes after those it reads at step `t`.
    pub(super) fn order_equations(&self, eqs: &[&Equation]) -> Result<Vec<usize>, CheckError> {
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
    pub(super) fn current_deps(&self, e: &Expr) -> Vec<usize> {
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
}
