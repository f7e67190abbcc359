//! The verifier: the invariants every stage relies on, checked after each pass.
//!
//! What enters is any [`Graph`], however it was made (a pass, the reader);
//! what leaves is `Ok` or the first broken invariant as a [`VerifyError`], one
//! variant per invariant. Each has a filetest in `tests/filetests/verify/`.

use super::dim::Type;
use super::op::{Op, ShapeError, Strict};
use super::{Graph, NodeId};
use petgraph::Direction;
use petgraph::visit::EdgeRef;

/// Why a graph is not one the stages can take, and at which node.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum VerifyError {
    #[error("invalid graph at %{node}: operand %{operand} is not before it")]
    OperandNotBefore { node: usize, operand: usize },
    #[error("invalid graph at %{node}: operand positions {positions:?} are not 0..n")]
    OperandPositions { node: usize, positions: Vec<u32> },
    #[error("invalid graph at %{node}: an argument has operands")]
    ArgumentWithOperands { node: usize },
    #[error("invalid graph at %{node}: argument {arg} does not exist")]
    MissingArgument { node: usize, arg: usize },
    /// The op's shape rule rejects the operands' types.
    #[error("invalid graph at %{node}: {source}")]
    Shape { node: usize, source: ShapeError },
    #[error("invalid graph at %{node}: has type {declared} but its op gives {rule}")]
    TypeMismatch {
        node: usize,
        declared: Type,
        rule: Type,
    },
    #[error("invalid graph at %{node}: type {ty} has an unresolved size")]
    UnresolvedSize { node: usize, ty: Type },
    #[error("invalid graph at %{node}: result {name} names a missing node")]
    MissingResultNode { node: usize, name: String },
}

impl VerifyError {
    /// The node the error is at (for a missing result node, the number named).
    pub fn node(&self) -> usize {
        match self {
            VerifyError::OperandNotBefore { node, .. }
            | VerifyError::OperandPositions { node, .. }
            | VerifyError::ArgumentWithOperands { node }
            | VerifyError::MissingArgument { node, .. }
            | VerifyError::Shape { node, .. }
            | VerifyError::TypeMismatch { node, .. }
            | VerifyError::UnresolvedSize { node, .. }
            | VerifyError::MissingResultNode { node, .. } => *node,
        }
    }
}

impl Graph {
    /// Checks the invariants every stage relies on: topological order, operand
    /// positions, arities and shape rules, argument and result references.
    pub fn verify(&self) -> Result<(), VerifyError> {
        for n in self.node_ids() {
            let node = self.node(n);
            let at = n.index();
            let mut positions: Vec<u32> = Vec::new();
            for e in self.dag.edges_directed(n, Direction::Incoming) {
                if e.source().index() >= at {
                    return Err(VerifyError::OperandNotBefore {
                        node: at,
                        operand: e.source().index(),
                    });
                }
                positions.push(*e.weight());
            }
            positions.sort();
            if positions.iter().enumerate().any(|(i, &p)| p as usize != i) {
                return Err(VerifyError::OperandPositions {
                    node: at,
                    positions,
                });
            }
            let ty = match &node.op {
                Op::Arg(i) => match self.args.get(*i) {
                    Some(a) if positions.is_empty() => a.ty.clone(),
                    Some(_) => return Err(VerifyError::ArgumentWithOperands { node: at }),
                    None => return Err(VerifyError::MissingArgument { node: at, arg: *i }),
                },
                op => {
                    let operands: Vec<NodeId> = self.operands(n);
                    let types: Vec<&Type> = operands.iter().map(|o| &self.node(*o).ty).collect();
                    op.result_type(&types, &mut Strict)
                        .map_err(|source| VerifyError::Shape { node: at, source })?
                }
            };
            if ty != node.ty {
                return Err(VerifyError::TypeMismatch {
                    node: at,
                    declared: node.ty.clone(),
                    rule: ty,
                });
            }
            if ty.dims.iter().any(|d| d.has_vars()) {
                return Err(VerifyError::UnresolvedSize { node: at, ty });
            }
        }
        for r in &self.results {
            if r.node.index() >= self.len() {
                return Err(VerifyError::MissingResultNode {
                    node: r.node.index(),
                    name: r.name.clone(),
                });
            }
        }
        Ok(())
    }
}
