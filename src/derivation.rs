//! Shows the backward equations the compiler derived, in the cell's own names:
//! the δ recurrence of every state and the parameter-gradient sums, as text or
//! LaTeX (`cellc bptt`). It prints the adjoint step graph as equations; a value
//! used once is written inline, a value used more than once (or nested too
//! deep to read inline) gets a name `g_k`, and a saved value the cell did not
//! name is `s_k`. A made-up name is never one the cell's own names print as,
//! in either style. Printing is linear in the size of the graph.

use crate::autodiff::{ResidualName, StepAdjoint};
use crate::graph::op::{Binary, Op, Unary};
use crate::graph::step::{ArgKind, StepGraph};
use crate::graph::{Graph, NodeId};
use std::collections::{HashMap, HashSet};
use std::fmt::Write;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    Text,
    Latex,
}

/// How to write each kind of name in a style.
#[derive(Clone, Copy)]
struct Names {
    style: Style,
}

impl Names {
    /// A name with an optional time subscript: `f_t`, `h_{t-1}`, `\tilde{C}_{t}`.
    fn var(&self, name: &str, time: Option<&str>) -> String {
        match self.style {
            Style::Text => match time {
                Some(t) if t.len() == 1 => format!("{name}_{t}"),
                Some(t) => format!("{name}_{{{t}}}"),
                None => name.to_string(),
            },
            Style::Latex => {
                let (base, mut subs) = latex_base(name);
                if let Some(t) = time {
                    subs.push(t.to_string());
                }
                if subs.is_empty() {
                    base
                } else {
                    format!("{base}_{{{}}}", subs.join(","))
                }
            }
        }
    }
    fn delta(&self, name: &str, time: &str) -> String {
        match self.style {
            Style::Text => format!("δ{}", self.var(name, Some(time))),
            Style::Latex => format!("\\delta {}", self.var(name, Some(time))),
        }
    }
    fn bar(&self, name: &str) -> String {
        match self.style {
            Style::Text => format!("ȳ[{name}]_t"),
            Style::Latex => {
                let (base, mut subs) = latex_base(name);
                subs.push("t".into());
                format!("\\bar{{{base}}}_{{{}}}", subs.join(","))
            }
        }
    }
    fn grad(&self, name: &str, time: Option<&str>) -> String {
        match self.style {
            Style::Text => format!("∂L/∂{}", self.var(name, time)),
            Style::Latex => format!(
                "\\frac{{\\partial L}}{{\\partial {}}}",
                self.var(name, time)
            ),
        }
    }
}

/// `C_tilde` → `\tilde{C}`, `W_xh` → `W` with subscript `xh`.
fn latex_base(name: &str) -> (String, Vec<String>) {
    let mut parts: Vec<&str> = name.split('_').collect();
    let mut base = parts.remove(0).to_string();
    if base.chars().count() > 1 {
        base = format!("\\mathit{{{base}}}");
    }
    let mut subs = Vec::new();
    for p in parts {
        match p {
            "tilde" => base = format!("\\tilde{{{base}}}"),
            "hat" => base = format!("\\hat{{{base}}}"),
            "bar" => base = format!("\\bar{{{base}}}"),
            _ => subs.push(p.to_string()),
        }
    }
    (base, subs)
}

/// Precedence of an op when printed: higher binds tighter.
fn prec(op: &Op) -> u8 {
    match op {
        Op::Binary(Binary::Add | Binary::Sub) => 1,
        Op::Binary(Binary::Mul | Binary::Div) => 2,
        Op::MatVec | Op::MatTVec | Op::Outer => 3,
        Op::OuterSum => 2,
        Op::Unary(Unary::Neg) => 4,
        // Every other op prints as a function call, a bracket or a leaf.
        Op::Unary(_)
        | Op::Arg(_)
        | Op::Const(_)
        | Op::DimSize(_)
        | Op::Zeros(_)
        | Op::Concat
        | Op::Slice { .. }
        | Op::Sum
        | Op::Max
        | Op::ArgMaxMask
        | Op::Broadcast(_)
        | Op::BatchSum
        | Op::StopGradient => 5,
    }
}

struct Printer<'a> {
    g: &'a Graph,
    names: Names,
    /// Nodes written by name rather than inline.
    bound: HashMap<NodeId, String>,
}

impl Printer<'_> {
    fn expr(&self, n: NodeId) -> String {
        if let Some(name) = self.bound.get(&n) {
            return name.clone();
        }
        self.define(n)
    }

    fn wrap(&self, n: NodeId, min: u8) -> String {
        let s = self.expr(n);
        if !self.bound.contains_key(&n) && prec(&self.g.node(n).op) < min {
            match self.names.style {
                Style::Text => format!("({s})"),
                Style::Latex => format!("\\left({s}\\right)"),
            }
        } else {
            s
        }
    }

    /// The node's own expression, its operands by name or inline.
    fn define(&self, n: NodeId) -> String {
        let node = self.g.node(n);
        let ops = self.g.operands(n);
        let latex = self.names.style == Style::Latex;
        let f = |name: &str, tex: &str, a: String| {
            if latex {
                format!("{tex}\\left({a}\\right)")
            } else {
                format!("{name}({a})")
            }
        };
        match &node.op {
            Op::Arg(_) => self.bound.get(&n).cloned().unwrap_or_else(|| "?".into()),
            Op::Const(c) => {
                if *c == c.trunc() && c.abs() < 1e6 {
                    format!("{}", *c as i64)
                } else {
                    format!("{c}")
                }
            }
            // A size such as `4*H` reads as one value.
            Op::DimSize(d) if d.terms.len() + usize::from(d.konst != 0) > 1 => format!("({d})"),
            Op::DimSize(d) if d.terms.values().any(|c| *c != 1) => format!("({d})"),
            Op::DimSize(d) => d.to_string(),
            Op::Zeros(_) => "0".into(),
            Op::Unary(u) => {
                // Each operand is printed once: printing it twice would double
                // the work at every level of a nested expression.
                let a = || self.expr(ops[0]);
                match u {
                    Unary::Neg => format!("-{}", self.wrap(ops[0], 4)),
                    Unary::Exp => f("exp", "\\exp", a()),
                    Unary::Log => f("log", "\\log", a()),
                    Unary::Tanh => f("tanh", "\\tanh", a()),
                    Unary::Sigmoid => f("σ", "\\sigma", a()),
                    Unary::Relu => f("relu", "\\operatorname{relu}", a()),
                    Unary::Abs => {
                        let a = a();
                        if latex {
                            format!("\\left|{a}\\right|")
                        } else {
                            format!("|{a}|")
                        }
                    }
                    Unary::Sqrt => {
                        let a = a();
                        if latex {
                            format!("\\sqrt{{{a}}}")
                        } else {
                            format!("sqrt({a})")
                        }
                    }
                    Unary::Softplus => f("softplus", "\\operatorname{softplus}", a()),
                    Unary::Step => {
                        let a = a();
                        if latex {
                            format!("\\mathbb{{1}}\\left[{a} > 0\\right]")
                        } else {
                            format!("1[{a} > 0]")
                        }
                    }
                    Unary::Sign => f("sign", "\\operatorname{sign}", a()),
                }
            }
            // LaTeX's fraction needs no brackets around its parts.
            Op::Binary(Binary::Div) if latex => {
                format!("\\frac{{{}}}{{{}}}", self.expr(ops[0]), self.expr(ops[1]))
            }
            Op::Binary(b) => {
                let p = prec(&node.op);
                let l = self.wrap(ops[0], p);
                let r = self.wrap(ops[1], p + 1);
                let scalar =
                    self.g.node(ops[0]).ty.rank() == 0 || self.g.node(ops[1]).ty.rank() == 0;
                match (b, latex) {
                    (Binary::Add, _) => format!("{l} + {r}"),
                    (Binary::Sub, _) => format!("{l} - {r}"),
                    (Binary::Mul, false) if scalar => format!("{l}·{r}"),
                    (Binary::Mul, false) => format!("{l} ∘ {r}"),
                    (Binary::Mul, true) if scalar => format!("{l}\\,{r}"),
                    (Binary::Mul, true) => format!("{l} \\circ {r}"),
                    (Binary::Div, _) => format!("{l} / {r}"),
                }
            }
            Op::MatVec => {
                let (m, v) = (self.wrap(ops[0], 4), self.wrap(ops[1], 4));
                if latex {
                    format!("{m} {v}")
                } else {
                    format!("{m} · {v}")
                }
            }
            Op::MatTVec => {
                let (m, v) = (self.wrap(ops[0], 4), self.wrap(ops[1], 4));
                if latex {
                    format!("{m}^\\top {v}")
                } else {
                    format!("{m}ᵀ · {v}")
                }
            }
            Op::OuterSum => {
                let (a, b) = (self.wrap(ops[0], 4), self.wrap(ops[1], 4));
                if latex {
                    format!("\\sum_b {a}\\, {b}^\\top")
                } else {
                    format!("Σ_b {a} ⊗ {b}")
                }
            }
            Op::Outer => {
                let (a, b) = (self.wrap(ops[0], 4), self.wrap(ops[1], 4));
                if latex {
                    format!("{a}\\, {b}^\\top")
                } else {
                    format!("{a} ⊗ {b}")
                }
            }
            Op::Concat => {
                let parts: Vec<String> = ops.iter().map(|o| self.expr(*o)).collect();
                if latex {
                    format!("\\begin{{bmatrix}}{}\\end{{bmatrix}}", parts.join(" \\\\ "))
                } else {
                    format!("[{}]", parts.join("; "))
                }
            }
            Op::Slice { start, len } => {
                let end = start
                    .add(len)
                    .map_or_else(|_| format!("{start}+{len}"), |e| e.to_string());
                let a = self.wrap(ops[0], 5);
                if latex {
                    format!("{{{a}}}_{{[{start}:{end}]}}")
                } else {
                    format!("{a}[{start}:{end}]")
                }
            }
            Op::Sum => f("sum", "\\operatorname{sum}", self.expr(ops[0])),
            Op::StopGradient => self.expr(ops[0]),
            Op::Max => f("max", "\\max", self.expr(ops[0])),
            Op::ArgMaxMask => f(
                "onehot_argmax",
                "\\operatorname{onehot}\\operatorname{argmax}",
                self.expr(ops[0]),
            ),
            Op::Broadcast(_) => {
                let a = self.wrap(ops[0], 5);
                if latex {
                    format!("{a}\\,\\mathbf{{1}}")
                } else {
                    format!("{a}·1")
                }
            }
            Op::BatchSum => {
                let a = self.wrap(ops[0], 2);
                if latex {
                    format!("\\sum_b {a}")
                } else {
                    format!("Σ_b {a}")
                }
            }
        }
    }
}

/// How deep an expression may nest inline before its value gets a name: a
/// long chain (20,000 equations of `tanh`) then prints as lines of bounded
/// length, and printing recurses a bounded depth.
const MAX_INLINE_DEPTH: usize = 64;

/// Every name the equations print for the cell's own values, in `names`' style:
/// a generated name must be none of these.
fn cell_names(step: &StepGraph, adj: &StepAdjoint, names: Names) -> HashSet<String> {
    let mut taken = HashSet::new();
    let mut add = |name: &str| {
        taken.insert(names.var(name, None));
        taken.insert(names.var(name, Some("t")));
    };
    step.params.iter().for_each(|p| add(&p.name));
    step.inputs.iter().for_each(|i| add(&i.name));
    step.states.iter().for_each(|s| add(&s.name));
    step.outputs.iter().for_each(|o| add(&o.name));
    for g in [&adj.forward, &adj.backward] {
        for n in g.node_ids() {
            if let Some(l) = &g.node(n).label {
                add(l);
            }
        }
    }
    for r in &adj.residual_names {
        if let ResidualName::Label(l) = r {
            add(l);
        }
    }
    for s in &step.states {
        for lag in 1..=s.max_lag {
            taken.insert(names.var(&s.name, Some(&format!("t-{lag}"))));
        }
    }
    taken
}

/// The first spelling `spell(k)`, for k = `from`, `from + 1`, ..., that is not
/// taken, and its k; it is taken from then on.
fn fresh(
    taken: &mut HashSet<String>,
    from: usize,
    spell: impl Fn(usize) -> String,
) -> (String, usize) {
    let mut k = from;
    loop {
        let name = spell(k);
        if taken.insert(name.clone()) {
            return (name, k);
        }
        k += 1;
    }
}

/// The backward equations of a cell, as `cellc bptt` prints them.
pub fn bptt_equations(step: &StepGraph, adj: &StepAdjoint, style: Style) -> String {
    let names = Names { style };
    let fwd = &adj.forward;
    let g = &adj.backward;
    let n_args = step.arg_kinds.len();
    let n_res = adj.n_residuals;
    let n_step_results = step.graph.results.len();
    let mut taken = cell_names(step, adj, names);
    let saved_spelling = |k: usize| match style {
        Style::Text => format!("s{k}_t"),
        Style::Latex => format!("s_{{{k},t}}"),
    };
    // A generated residual keeps autodiff's number (as `cellc graph --grad`
    // shows it) unless the cell prints that name; then it gets one past all of
    // autodiff's numbers.
    let mut spare = 1 + adj
        .residual_names
        .iter()
        .filter_map(|r| match r {
            ResidualName::Numbered(k) => Some(*k),
            ResidualName::Label(_) => None,
        })
        .max()
        .unwrap_or(0);

    // Forward names: arguments and labelled values, for saved values' definitions.
    let arg_name = |k: &ArgKind| match *k {
        ArgKind::Param(p) => names.var(&step.params[p].name, None),
        ArgKind::Input(i) => names.var(&step.inputs[i].name, Some("t")),
        ArgKind::State { state, lag } => {
            names.var(&step.states[state].name, Some(&format!("t-{lag}")))
        }
    };
    let mut fwd_bound: HashMap<NodeId, String> = HashMap::new();
    for n in fwd.node_ids() {
        match fwd.node(n).op {
            Op::Arg(i) => {
                fwd_bound.insert(n, arg_name(&step.arg_kinds[i]));
            }
            _ => {
                if let Some(l) = &fwd.node(n).label {
                    fwd_bound.insert(n, names.var(l, Some("t")));
                }
            }
        }
    }
    // One printer for every saved value's definition (never a copy per value).
    let fp = Printer {
        g: fwd,
        names,
        bound: fwd_bound,
    };

    let mut p = Printer {
        g,
        names,
        bound: HashMap::new(),
    };
    let mut saved_lines: Vec<String> = Vec::new();
    for n in g.node_ids() {
        let Op::Arg(i) = g.node(n).op else { continue };
        let name = if i < n_args {
            arg_name(&step.arg_kinds[i])
        } else if i < n_args + n_res {
            let k = i - n_args;
            match &adj.residual_names[k] {
                ResidualName::Label(l) => names.var(l, Some("t")),
                ResidualName::Numbered(number) => {
                    let name = if taken.insert(saved_spelling(*number)) {
                        saved_spelling(*number)
                    } else {
                        let (name, k) = fresh(&mut taken, spare, saved_spelling);
                        spare = k + 1;
                        name
                    };
                    let fnode = fwd.results[n_step_results + k].node;
                    saved_lines.push(format!("{name} = {}", fp.define(fnode)));
                    name
                }
            }
        } else {
            let r = i - n_args - n_res;
            if r < step.states.len() {
                names.delta(&step.states[r].name, "t")
            } else {
                names.bar(&step.outputs[r - step.states.len()].name)
            }
        };
        p.bound.insert(n, name);
    }
    // Values used more than once get a name, and so does a value whose
    // expression would nest deeper than MAX_INLINE_DEPTH.
    let mut uses: Vec<usize> = vec![0; g.len()];
    for n in g.node_ids() {
        for o in g.operands(n) {
            uses[o.index()] += 1;
        }
    }
    for r in &g.results {
        uses[r.node.index()] += 1;
    }
    let mut depth: Vec<usize> = vec![0; g.len()];
    let mut lines: Vec<(String, String)> = Vec::new();
    let mut next_g = 1;
    let g_spelling = |k: usize| match style {
        Style::Text => format!("g{k}"),
        Style::Latex => format!("g_{{{k}}}"),
    };
    for n in g.node_ids() {
        let node = g.node(n);
        if node.op.is_leaf() {
            continue;
        }
        let d = 1 + g
            .operands(n)
            .iter()
            .map(|o| depth[o.index()])
            .max()
            .unwrap_or(0);
        if uses[n.index()] < 2 && d <= MAX_INLINE_DEPTH {
            depth[n.index()] = d;
            continue;
        }
        let (name, k) = fresh(&mut taken, next_g, g_spelling);
        next_g = k + 1;
        lines.push((name.clone(), p.define(n)));
        p.bound.insert(n, name);
    }
    let mut updates: Vec<(String, &str, String)> = Vec::new();
    let mut params: Vec<(String, &str, String)> = Vec::new();
    for (i, kind) in step.arg_kinds.iter().enumerate() {
        let r = g.results[i].node;
        if matches!(g.node(r).op, Op::Zeros(_)) {
            continue;
        }
        let e = p.expr(r);
        match *kind {
            ArgKind::Param(pi) => params.push((names.grad(&step.params[pi].name, None), "+=", e)),
            ArgKind::Input(ii) => {
                updates.push((names.grad(&step.inputs[ii].name, Some("t")), "=", e))
            }
            ArgKind::State { state, lag } => updates.push((
                names.delta(&step.states[state].name, &format!("t-{lag}")),
                "+=",
                e,
            )),
        }
    }

    let mut out = String::new();
    let states: Vec<String> = step
        .states
        .iter()
        .map(|s| names.delta(&s.name, "t"))
        .collect();
    match style {
        Style::Text => {
            let _ = writeln!(out, "# BPTT for cell `{}`, as derived by cellc", step.name);
            let _ = writeln!(
                out,
                "# {}: gradient of the loss L with respect to each state's value after step t,",
                states.join(", ")
            );
            let _ = writeln!(
                out,
                "#   summed over all its uses; before the last step it holds ∂L/∂NAME.last."
            );
            for o in &step.outputs {
                let _ = writeln!(
                    out,
                    "# {}: gradient of L with respect to output `{}` at step t.",
                    names.bar(&o.name),
                    o.name
                );
            }
            let _ = writeln!(
                out,
                "# Σ_b sums over the batch; ⊗ is the outer product; 1[a > 0] is relu's derivative."
            );
            if !saved_lines.is_empty() {
                let _ = writeln!(out, "saved by the forward pass:");
                for l in &saved_lines {
                    let _ = writeln!(out, "  {l}");
                }
            }
            let _ = writeln!(out, "for t = T-1 down to 0:");
            for (name, e) in &lines {
                let _ = writeln!(out, "  {name} = {e}");
            }
            for (name, op, e) in updates.iter().chain(&params) {
                let _ = writeln!(out, "  {name} {op} {e}");
            }
        }
        Style::Latex => {
            let _ = writeln!(
                out,
                "% BPTT for cell `{}`, as derived by cellc; t runs from T-1 down to 0.",
                step.name
            );
            let _ = writeln!(out, "\\begin{{aligned}}");
            let mut rows: Vec<String> = Vec::new();
            for l in &saved_lines {
                let (a, b) = l.split_once(" = ").expect("a definition");
                rows.push(format!("{a} &= {b}"));
            }
            for (name, e) in &lines {
                rows.push(format!("{name} &= {e}"));
            }
            for (name, op, e) in updates.iter().chain(&params) {
                let op = if *op == "+=" { "\\mathrel{+}=" } else { "=" };
                rows.push(format!("{name} &{op} {e}"));
            }
            let _ = writeln!(out, "{}", rows.join(" \\\\\n"));
            let _ = writeln!(out, "\\end{{aligned}}");
        }
    }
    out
}
