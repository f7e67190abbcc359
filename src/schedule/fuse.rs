//! Fusion: one step graph → a list of loops and calls, the plan the code
//! generator follows for one step.
//!
//! Elementwise nodes (unary and binary ops, broadcasts, zeros, stop-gradient)
//! are grouped into **loops**: one pass over an iteration space (a type: batched
//! or not, and its dimensions), computing every member in registers and
//! storing only the members something outside the loop reads. Every other
//! node is a **call** (a matrix product, a reduction, a concatenation), whose
//! operands and result live in memory. Slices cost nothing: a slice of a
//! vector in memory is a **view** of it (an offset, same row stride).
//! Constants and sizes are **immediates**, folded into the code that reads them.
//!
//! Grouping, by levels: arguments and immediates are at level 0; a call is
//! one level above its highest operand; an elementwise node is at the level
//! of its highest operand, one above when it reads that operand from memory
//! (an operand of another space, or a view). Items run in level order: the
//! calls of a level, then its loops, one per space. A loop reads from memory
//! only what earlier levels wrote, so the loops of one level are independent,
//! and every call of a level sees its operands written. Calls as early as
//! their operands allow is what puts an LSTM's four gate products before one
//! loop over all of its elementwise work.

use crate::graph::dim::{Dim, Type};
use crate::graph::op::Op;
use crate::graph::{Graph, NodeId};
use std::collections::BTreeMap;
use std::fmt::Write;

/// Where a node's value is while the step runs.
#[derive(Clone, Debug, PartialEq)]
pub enum Home {
    /// The graph's argument `i`, in the caller's memory.
    Arg(usize),
    /// A buffer of its own (the code generator places it in scratch memory or
    /// in a result's buffer).
    Buffer,
    /// Only in registers, inside its loop.
    Register,
    /// `start` elements into the rows of another node's memory.
    View { of: NodeId, start: Dim },
    /// A constant (or a size), folded into its users.
    Immediate,
}

/// One pass over `space`, computing `nodes` in order.
#[derive(Clone, Debug, PartialEq)]
pub struct Loop {
    pub space: Type,
    pub nodes: Vec<NodeId>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Item {
    Loop(Loop),
    /// A node computed by a runtime routine, into its buffer.
    Call(NodeId),
}

/// The plan of one step graph.
#[derive(Clone, Debug, PartialEq)]
pub struct Fused {
    /// By node.
    pub homes: Vec<Home>,
    pub items: Vec<Item>,
}

/// Whether `op` is computed inside a loop.
pub fn is_elementwise(op: &Op) -> bool {
    matches!(
        op,
        Op::Unary(_) | Op::Binary(_) | Op::Broadcast(_) | Op::Zeros(_) | Op::StopGradient
    )
}

/// Fuses `g` into loops and calls.
pub fn fuse(g: &Graph) -> Fused {
    let n = g.len();
    let mut homes = vec![Home::Register; n];
    let mut level = vec![0usize; n];
    // The level after which a node's value is in memory, for views and for
    // loops of another space.
    let mut in_memory = vec![0usize; n];
    // Loop members: (level, space) of their loop.
    let mut loop_of: Vec<Option<(usize, String)>> = vec![None; n];
    let mut calls: BTreeMap<usize, Vec<NodeId>> = BTreeMap::new();
    let mut loops: BTreeMap<(usize, String), Loop> = BTreeMap::new();
    for id in g.node_ids() {
        let i = id.index();
        let node = g.node(id);
        let ops = g.operands(id);
        match &node.op {
            Op::Arg(a) => homes[i] = Home::Arg(*a),
            Op::Const(_) | Op::DimSize(_) => homes[i] = Home::Immediate,
            Op::Slice { start, .. } => {
                let of = ops[0];
                level[i] = in_memory[of.index()];
                in_memory[i] = in_memory[of.index()];
                homes[i] = match &homes[of.index()] {
                    Home::View {
                        of: root,
                        start: s0,
                    } => Home::View {
                        of: *root,
                        // Sizes were checked with the cell; a sum that
                        // overflowed would have been refused there.
                        start: s0.add(start).unwrap_or_else(|_| start.clone()),
                    },
                    _ => Home::View {
                        of,
                        start: start.clone(),
                    },
                };
            }
            op if is_elementwise(op) => {
                let space = node.ty.to_string();
                let l = ops
                    .iter()
                    .map(|o| match &loop_of[o.index()] {
                        Some((lo, sp)) if *sp == space => *lo,
                        _ => in_memory[o.index()],
                    })
                    .max()
                    .unwrap_or(0);
                level[i] = l;
                in_memory[i] = l + 1;
                loops
                    .entry((l, space.clone()))
                    .or_insert_with(|| Loop {
                        space: node.ty.clone(),
                        nodes: Vec::new(),
                    })
                    .nodes
                    .push(id);
                loop_of[i] = Some((l, space));
            }
            _ => {
                let l = 1 + ops.iter().map(|o| in_memory[o.index()]).max().unwrap_or(0);
                level[i] = l;
                in_memory[i] = l;
                homes[i] = Home::Buffer;
                calls.entry(l).or_default().push(id);
            }
        }
    }
    // A loop member read outside its loop (by a call, a view, another loop or
    // as a result) is stored.
    let mut store = vec![false; n];
    for id in g.node_ids() {
        for o in g.operands(id) {
            if loop_of[o.index()].is_some() && loop_of[o.index()] != loop_of[id.index()] {
                store[o.index()] = true;
            }
        }
    }
    for r in &g.results {
        store[r.node.index()] = true;
    }
    for (i, s) in store.iter().enumerate() {
        if *s && loop_of[i].is_some() {
            homes[i] = Home::Buffer;
        }
    }
    let top = level.iter().copied().max().unwrap_or(0);
    let mut items = Vec::new();
    for l in 0..=top {
        for &c in calls.get(&l).into_iter().flatten() {
            items.push(Item::Call(c));
        }
        // Loops of one level are independent; listed by their first node.
        let mut here: Vec<&Loop> = loops
            .range((l, String::new())..)
            .take_while(|((lv, _), _)| *lv == l)
            .map(|(_, lp)| lp)
            .collect();
        here.sort_by_key(|lp| lp.nodes[0].index());
        items.extend(here.into_iter().map(|lp| Item::Loop(lp.clone())));
    }
    Fused { homes, items }
}

impl Fused {
    /// The plan as text: calls and loops in order, each node with its op, its
    /// operands and where its value goes.
    pub fn print(&self, g: &Graph, title: &str) -> String {
        let mut out = format!("{title}\n");
        for id in g.node_ids() {
            if let Op::Arg(a) = g.node(id).op {
                let _ = writeln!(
                    out,
                    "  %{} = arg {} : {}",
                    id.index(),
                    g.args[a].name,
                    g.node(id).ty
                );
            }
        }
        let node_text = |id: NodeId, ty: bool, extra: &str| {
            let node = g.node(id);
            let ops: Vec<String> = g
                .operands(id)
                .iter()
                .map(|o| operand_text(g, &self.homes, *o))
                .collect();
            let mut s = format!("%{} = {}", id.index(), node.op.name());
            if !ops.is_empty() {
                s.push(' ');
                s.push_str(&ops.join(", "));
            }
            if ty {
                let _ = write!(s, " : {}", node.ty);
            }
            s.push_str(extra);
            if let Some(l) = &node.label {
                let _ = write!(s, "  # {l}");
            }
            s
        };
        let stored = |id: NodeId| match self.homes[id.index()] {
            Home::Buffer => " → memory",
            _ => "",
        };
        for item in &self.items {
            match item {
                Item::Call(id) => {
                    let _ = writeln!(out, "  call {}", node_text(*id, true, ""));
                }
                Item::Loop(l) => {
                    let _ = writeln!(out, "  loop over {}", l.space);
                    for &id in &l.nodes {
                        let _ = writeln!(out, "    {}", node_text(id, false, stored(id)));
                    }
                }
            }
        }
        for r in &g.results {
            let _ = writeln!(
                out,
                "  result {} = {}",
                r.name,
                operand_text(g, &self.homes, r.node)
            );
        }
        out
    }
}

/// An operand as the plan reads it: a node, a view into one, or a constant.
fn operand_text(g: &Graph, homes: &[Home], id: NodeId) -> String {
    match &homes[id.index()] {
        Home::View { of, start } => {
            let len = g.node(id).ty.dims.last().cloned().unwrap_or(Dim::konst(1));
            format!("%{}[{start}; {len}]", of.index())
        }
        Home::Immediate => match &g.node(id).op {
            Op::Const(c) => crate::graph::op::fmt_num(*c),
            Op::DimSize(d) => format!("size {d}"),
            _ => format!("%{}", id.index()),
        },
        _ => format!("%{}", id.index()),
    }
}
