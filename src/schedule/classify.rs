//! Time dependence: for every node of a step graph, what it reads (nothing
//! that changes over time, the step's inputs, or a state) and whether any
//! state's next value needs it. From the two follows its phase:
//!
//! - **once**: parameters and constants only; computed once per call;
//! - **before the loop**: inputs (and parameters) but no state, so it can be
//!   computed for all T·B rows at once before the time loop (the hoisted
//!   input projection `W·x_t` of every fast RNN);
//! - **in the loop**: reads a state and feeds one: the recurrence itself;
//! - **after the loop**: reads a state but feeds no state, only outputs, so it
//!   can run over all T·B rows after the loop, from the saved history (an
//!   output projection `V·h_t`).

use crate::graph::NodeId;
use crate::graph::op::Op;
use crate::graph::step::{ArgKind, StepGraph};
use petgraph::Direction;
use petgraph::algo::toposort;

/// What a node reads, the most time-dependent of its operands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TimeDependence {
    /// Parameters and constants only.
    Invariant,
    /// The step's inputs, and no state.
    Input,
    /// A state read `h_{t-k}`.
    State,
}

/// When a node can be computed, relative to the time loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Phase {
    Once,
    BeforeLoop,
    InLoop,
    AfterLoop,
}

/// The classes of every node of one step graph, indexed by node.
#[derive(Clone, Debug)]
pub struct Classes {
    pub dependence: Vec<TimeDependence>,
    /// Whether some state's next value depends on the node.
    pub feeds_state: Vec<bool>,
}

impl Classes {
    pub fn phase(&self, n: NodeId) -> Phase {
        let i = n.index();
        match (self.dependence[i], self.feeds_state[i]) {
            (TimeDependence::Invariant, _) => Phase::Once,
            (TimeDependence::Input, _) => Phase::BeforeLoop,
            (TimeDependence::State, true) => Phase::InLoop,
            (TimeDependence::State, false) => Phase::AfterLoop,
        }
    }
}

/// Classifies every node of `step`'s graph. The step graph's results are its
/// states' next values (in state order), then its outputs.
pub fn classify(step: &StepGraph) -> Classes {
    let g = &step.graph;
    let n = g.dag.node_count();
    // A verified step graph is acyclic; were it not, nothing would be hoisted.
    let order: Vec<NodeId> = toposort(&g.dag, None).unwrap_or_else(|_| g.node_ids().collect());
    let mut dependence = vec![TimeDependence::Invariant; n];
    for &id in &order {
        let own = match g.node(id).op {
            Op::Arg(a) => match step.arg_kinds[a] {
                ArgKind::Param(_) => TimeDependence::Invariant,
                ArgKind::Input(_) => TimeDependence::Input,
                ArgKind::State { .. } => TimeDependence::State,
            },
            _ => TimeDependence::Invariant,
        };
        let read = g
            .operands(id)
            .into_iter()
            .map(|o| dependence[o.index()])
            .max()
            .unwrap_or(TimeDependence::Invariant);
        dependence[id.index()] = own.max(read);
    }
    let mut feeds_state = vec![false; n];
    for r in &g.results[..step.states.len()] {
        feeds_state[r.node.index()] = true;
    }
    for &id in order.iter().rev() {
        if feeds_state[id.index()] {
            continue;
        }
        feeds_state[id.index()] = g
            .dag
            .neighbors_directed(id, Direction::Outgoing)
            .any(|user| feeds_state[user.index()]);
    }
    Classes {
        dependence,
        feeds_state,
    }
}
