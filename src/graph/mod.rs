//! The IR: a petgraph graph of primitive ops with a type on every node.
//!
//! One [`Graph`] type serves every stage: the step graph of a cell, the unrolled
//! graph of `T` steps and the adjoint step graph are all graphs with numbered
//! arguments and named results; what the arguments *mean* (a parameter, an input,
//! a state read `k` steps back) is said by the structure that owns the graph
//! ([`step::StepGraph`]). Nodes are kept in topological order (every edge goes
//! from a lower to a higher index), which the verifier checks and evaluation
//! relies on. Edge weights give the operand position.

pub mod dim;
pub mod flops;
pub mod op;
pub mod parse;
pub mod print;
pub mod step;
pub mod verify;

pub use verify::VerifyError;

use dim::Type;
use op::{DimEq, Op, ShapeError, Strict};
use petgraph::Direction;
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::EdgeRef;

pub type NodeId = NodeIndex<u32>;

#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub op: Op,
    pub ty: Type,
    /// The source name of the value, when it has one (`f_t` → `f`).
    pub label: Option<String>,
}

/// A named, typed argument of a graph.
#[derive(Clone, Debug, PartialEq)]
pub struct Arg {
    pub name: String,
    pub ty: Type,
}

/// A named result of a graph.
#[derive(Clone, Debug, PartialEq)]
pub struct Output {
    pub name: String,
    pub node: NodeId,
}

#[derive(Clone, Debug, Default)]
pub struct Graph {
    pub dag: DiGraph<Node, u32>,
    pub args: Vec<Arg>,
    pub results: Vec<Output>,
}

impl Graph {
    pub fn new(args: Vec<Arg>) -> Graph {
        Graph {
            dag: DiGraph::new(),
            args,
            results: Vec::new(),
        }
    }
    pub fn len(&self) -> usize {
        self.dag.node_count()
    }
    pub fn is_empty(&self) -> bool {
        self.dag.node_count() == 0
    }
    pub fn node(&self, n: NodeId) -> &Node {
        &self.dag[n]
    }
    /// The nodes in topological (index) order.
    pub fn node_ids(&self) -> impl Iterator<Item = NodeId> + use<> {
        (0..self.dag.node_count()).map(NodeIndex::new)
    }
    /// A node's operands, in position order.
    pub fn operands(&self, n: NodeId) -> Vec<NodeId> {
        let mut edges: Vec<(u32, NodeId)> = self
            .dag
            .edges_directed(n, Direction::Incoming)
            .map(|e| (*e.weight(), e.source()))
            .collect();
        edges.sort();
        edges.into_iter().map(|(_, s)| s).collect()
    }
    /// Copies every node of `self` into `b`, with argument `i` replaced by
    /// `args[i]`. Returns where each node of `self` went.
    pub fn inline_into(
        &self,
        b: &mut Builder,
        args: &[NodeId],
        label_suffix: &str,
    ) -> Result<Vec<NodeId>, ShapeError> {
        let mut map = Vec::with_capacity(self.len());
        for n in self.node_ids() {
            let node = self.node(n);
            let new = match node.op {
                Op::Arg(i) => args[i],
                _ => {
                    let ops: Vec<NodeId> =
                        self.operands(n).iter().map(|o| map[o.index()]).collect();
                    let id = b.node(node.op.clone(), &ops)?;
                    if let Some(l) = &node.label {
                        b.set_label(id, format!("{l}{label_suffix}"));
                    }
                    id
                }
            };
            map.push(new);
        }
        Ok(map)
    }

    /// Nodes other than arguments: what the node-count ratio of an adjoint counts.
    pub fn op_count(&self) -> usize {
        self.node_ids()
            .filter(|n| !matches!(self.node(*n).op, Op::Arg(_)))
            .count()
    }
}

/// Adds nodes to a graph, typing each by its op's shape rule.
pub struct Builder {
    pub graph: Graph,
}

impl Builder {
    pub fn new(args: Vec<Arg>) -> Builder {
        Builder {
            graph: Graph::new(args),
        }
    }
    pub fn ty(&self, n: NodeId) -> &Type {
        &self.graph.dag[n].ty
    }
    pub fn set_label(&mut self, n: NodeId, label: impl Into<String>) {
        self.graph.dag[n].label = Some(label.into());
    }
    pub fn arg(&mut self, i: usize) -> NodeId {
        let ty = self.graph.args[i].ty.clone();
        self.push(Op::Arg(i), ty, &[])
    }
    /// Adds `op(args)`, comparing sizes strictly.
    pub fn node(&mut self, op: Op, args: &[NodeId]) -> Result<NodeId, ShapeError> {
        self.node_with(op, args, &mut Strict)
    }
    /// Adds `op(args)`, comparing sizes with `eq` (the checker unifies unknowns).
    pub fn node_with(
        &mut self,
        op: Op,
        args: &[NodeId],
        eq: &mut dyn DimEq,
    ) -> Result<NodeId, ShapeError> {
        let types: Vec<&Type> = args.iter().map(|a| self.ty(*a)).collect();
        let ty = op.result_type(&types, eq)?;
        Ok(self.push(op, ty, args))
    }
    pub fn leaf(&mut self, op: Op) -> Result<NodeId, ShapeError> {
        self.node(op, &[])
    }
    pub fn unary(&mut self, u: op::Unary, a: NodeId) -> Result<NodeId, ShapeError> {
        self.node(Op::Unary(u), &[a])
    }
    pub fn binary(&mut self, b: op::Binary, l: NodeId, r: NodeId) -> Result<NodeId, ShapeError> {
        self.node(Op::Binary(b), &[l, r])
    }
    /// Reduces a cotangent to the type of the value it is for, summing over
    /// what broadcasting repeated (elements for a scalar, the batch for an
    /// unbatched value).
    pub fn unbroadcast(&mut self, g: NodeId, like: NodeId) -> Result<NodeId, ShapeError> {
        let to = self.ty(like).clone();
        let mut g = g;
        if self.ty(g).rank() > to.rank() {
            g = self.node(Op::Sum, &[g])?;
        }
        if self.ty(g).batched && !to.batched {
            g = self.node(Op::BatchSum, &[g])?;
        }
        if !self.ty(g).batched && to.batched {
            // An unbatched cotangent of a batched value (a constant's): repeat it.
            let z = self.leaf(Op::Zeros(to))?;
            g = self.binary(op::Binary::Add, z, g)?;
        }
        Ok(g)
    }
    fn push(&mut self, op: Op, ty: Type, args: &[NodeId]) -> NodeId {
        let id = self.graph.dag.add_node(Node {
            op,
            ty,
            label: None,
        });
        for (i, a) in args.iter().enumerate() {
            self.graph.dag.add_edge(*a, id, i as u32);
        }
        id
    }
    pub fn finish(self) -> Graph {
        self.graph
    }
}
