//! The one printer of the IR: a stable text form (what the snapshot tests
//! record and `cellc graph` shows) and Graphviz dot.

use super::op::Op;
use super::{Graph, NodeId};
use petgraph::Direction;
use petgraph::visit::EdgeRef;
use std::fmt::Write;

/// One line per node: `%6 = matvec %0, %5 : [B, H]  # f`, then the results.
/// [`super::parse::parse`] reads it back. An argument is written by name; by
/// number (`arg7`, the op's own name) only in a graph the verifier rejects,
/// where it does not exist or has operands; so are operand positions (`%3@2`)
/// that are not `0..n`.
pub fn text(g: &Graph, title: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{title}");
    for n in g.node_ids() {
        let node = g.node(n);
        let _ = write!(out, "  %{} = {}", n.index(), describe(g, n));
        let _ = write!(out, " : {}", node.ty);
        if let Some(l) = &node.label {
            let _ = write!(out, "  # {l}");
        }
        out.push('\n');
    }
    for r in &g.results {
        let _ = writeln!(out, "  result {} = %{}", r.name, r.node.index());
    }
    out
}

fn describe(g: &Graph, n: NodeId) -> String {
    let node = g.node(n);
    let mut edges: Vec<(u32, usize)> = g
        .dag
        .edges_directed(n, Direction::Incoming)
        .map(|e| (*e.weight(), e.source().index()))
        .collect();
    edges.sort();
    if let Op::Arg(i) = node.op
        && let Some(a) = g.args.get(i)
        && edges.is_empty()
    {
        return format!("arg {}", a.name);
    }
    // Positions are written only when they are not 0..n, which the verifier rejects.
    let in_order = edges.iter().enumerate().all(|(k, (p, _))| *p as usize == k);
    let operands: Vec<String> = edges
        .iter()
        .map(|(p, o)| {
            if in_order {
                format!("%{o}")
            } else {
                format!("%{o}@{p}")
            }
        })
        .collect();
    if operands.is_empty() {
        node.op.name()
    } else {
        format!("{} {}", node.op.name(), operands.join(", "))
    }
}

/// Graphviz: one box per node, arguments and results highlighted.
pub fn dot(g: &Graph, title: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "digraph \"{}\" {{", escape(title));
    let _ = writeln!(
        out,
        "  rankdir=TB;\n  node [shape=box, fontname=\"monospace\"];"
    );
    for n in g.node_ids() {
        let node = g.node(n);
        let mut label = format!(
            "%{}: {}\\n{}",
            n.index(),
            escape(&describe_op(g, n)),
            node.ty
        );
        if let Some(l) = &node.label {
            label.push_str(&format!("\\n{}", escape(l)));
        }
        let style = if matches!(node.op, Op::Arg(_)) {
            ", style=filled, fillcolor=\"#dde8ff\""
        } else {
            ""
        };
        let _ = writeln!(out, "  n{} [label=\"{}\"{}];", n.index(), label, style);
    }
    for n in g.node_ids() {
        for (i, o) in g.operands(n).iter().enumerate() {
            let _ = writeln!(out, "  n{} -> n{} [label=\"{}\"];", o.index(), n.index(), i);
        }
    }
    for (i, r) in g.results.iter().enumerate() {
        let _ = writeln!(
            out,
            "  r{i} [label=\"{}\", shape=ellipse, style=filled, fillcolor=\"#ffe8cc\"];\n  n{} -> r{i};",
            escape(&r.name),
            r.node.index()
        );
    }
    out.push_str("}\n");
    out
}

fn describe_op(g: &Graph, n: NodeId) -> String {
    match g.node(n).op {
        Op::Arg(i) if i < g.args.len() => format!("arg {}", g.args[i].name),
        ref op => op.name(),
    }
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}
