//! Snapshots of what autodiff derives for every model: the forward step with
//! the residuals it saves, the adjoint step (with its node-count ratio to the
//! step in the title), and the backward equations `cellc bptt` prints.

use cellc::check::check_source;
use cellc::derivation::{Style, bptt_equations};
use cellc::graph::print;
use cellc::pipeline::differentiate_step;

#[test]
fn adjoint_snapshots() {
    insta::glob!("../models", "*.cell", |path| {
        let text = std::fs::read_to_string(path).unwrap();
        let step = check_source(&text).unwrap().step;
        let adj = differentiate_step(&step).unwrap();
        let ratio = adj.ratio(&step);
        assert!(
            ratio <= 3.0,
            "{}: adjoint/step ratio {ratio:.2}",
            path.display()
        );
        let mut out = format!(
            "adjoint step: {} ops, step: {} ops, ratio {ratio:.2}; {} residuals saved per step ({} numbers per sequence)\n\n",
            adj.backward.op_count(),
            step.graph.op_count(),
            adj.n_residuals,
            adj.saved_per_step(&step)
        );
        out.push_str(&print::text(
            &adj.forward,
            &format!("forward step {}", step.name),
        ));
        out.push('\n');
        out.push_str(&print::text(
            &adj.backward,
            &format!("adjoint step {}", step.name),
        ));
        insta::assert_snapshot!("adjoint", out);
        insta::assert_snapshot!("bptt", bptt_equations(&step, &adj, Style::Text));
    });
}

/// A cell whose own names look like the names `cellc bptt` makes up (`s1`,
/// `s2` for saved values; `g1`, `g2` for shared ones; `s_1`, `g_1` print as
/// `s_{1,t}`, `g_{1}` in LaTeX), and the same cell with plain names.
const LOOKALIKE: &str = "cell lookalike(x: [X]) {
    state h: [H] = 0
    param W, g2, g_1
    s1_t = σ(W · [h_{t-1}; x_t])
    s_1_t = tanh(g2 · [s1_t ∘ h_{t-1}; x_t])
    s2_t = s_1_t ∘ s_1_t
    g1_t = g_1 · s2_t
    h_t = (1 - s1_t) ∘ h_{t-1} + s1_t ∘ g1_t
    output h
}";

fn plain_names(cell: &str) -> String {
    [
        ("s_1_t", "ub_t"),
        ("s1_t", "ua_t"),
        ("s2_t", "uc_t"),
        ("g1_t", "ud_t"),
        ("g2", "pa"),
        ("g_1", "pb"),
    ]
    .iter()
    .fold(cell.to_string(), |c, (from, to)| c.replace(from, to))
}

/// The equations as tokens, every name one token: in text a run of letters,
/// digits and `_`; in LaTeX also a name's `\mathit{..}`/`\tilde{..}` and its
/// `_{..}` subscript (`s_{1,t}`, `\mathit{s1}_{t}`, `h_{t-1}`).
fn tokens(s: &str, style: Style) -> Vec<String> {
    let c: Vec<char> = s.chars().collect();
    let word = |ch: char| ch.is_alphanumeric() || ch == '_';
    // The end of the braced group opening at `i`.
    let group = |mut i: usize| {
        let mut depth = 0;
        loop {
            match c[i] {
                '{' => depth += 1,
                '}' => depth -= 1,
                _ => {}
            }
            i += 1;
            if depth == 0 {
                return i;
            }
        }
    };
    let mut out = Vec::new();
    let mut i = 0;
    while i < c.len() {
        let start = i;
        if style == Style::Text {
            while i < c.len() && word(c[i]) {
                i += 1;
            }
        } else {
            if c[i] == '\\' {
                i += 1;
                while i < c.len() && c[i].is_ascii_alphabetic() {
                    i += 1;
                }
                let command: String = c[start + 1..i].iter().collect();
                if ["mathit", "tilde", "hat", "bar"].contains(&command.as_str()) {
                    i = group(i);
                }
            } else {
                while i < c.len() && c[i].is_ascii_alphanumeric() {
                    i += 1;
                }
            }
            if i > start && i + 1 < c.len() && c[i] == '_' && c[i + 1] == '{' {
                i = group(i + 1);
            }
        }
        if i == start {
            i += 1;
        }
        out.push(c[start..i].iter().collect());
    }
    out
}

#[test]
fn bptt_names_never_collide_with_the_cells_own_names() {
    let lookalike = check_source(LOOKALIKE).unwrap().step;
    let plain = check_source(&plain_names(LOOKALIKE)).unwrap().step;
    for style in [Style::Text, Style::Latex] {
        let got = bptt_equations(&lookalike, &differentiate_step(&lookalike).unwrap(), style);
        let want = bptt_equations(&plain, &differentiate_step(&plain).unwrap(), style);
        let (a, b) = (tokens(&want, style), tokens(&got, style));
        assert_eq!(a.len(), b.len(), "{want}\n{got}");
        // The same equations, every name renamed one to one: the derivation
        // is the plain cell's, and no two names print alike.
        let mut there = std::collections::HashMap::new();
        let mut back = std::collections::HashMap::new();
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(there.entry(x).or_insert(y), &y, "{want}\n{got}");
            assert_eq!(
                back.entry(y).or_insert(x),
                &x,
                "`{y}` names two values:\n{got}"
            );
        }
    }
}

#[test]
fn a_long_chain_derives_every_step_in_lines_of_bounded_length() {
    let n = 3000;
    let mut cell =
        String::from("cell chain(x: [H]) {\n  state h: [H] = 0\n  a0_t = tanh(h_{t-1} + x_t)\n");
    for i in 1..n {
        cell.push_str(&format!("  a{i}_t = tanh(a{}_t)\n", i - 1));
    }
    cell.push_str(&format!("  h_t = a{}_t\n  output h\n}}\n", n - 1));
    let step = check_source(&cell).unwrap().step;
    let adj = differentiate_step(&step).unwrap();
    let text = bptt_equations(&step, &adj, Style::Text);
    // One saved `1 - a∘a` per tanh, each defined once and multiplied in once.
    let saved: Vec<&str> = text
        .lines()
        .filter(|l| l.contains(" = 1 - a"))
        .map(|l| l.trim().split(' ').next().unwrap())
        .collect();
    assert_eq!(saved.len(), n, "{text}");
    let mut count = std::collections::HashMap::new();
    for t in tokens(&text, Style::Text) {
        *count.entry(t).or_insert(0) += 1;
    }
    for s in saved {
        assert_eq!(count[s], 2, "{s}");
    }
    let longest = text.lines().map(|l| l.chars().count()).max().unwrap();
    assert!(longest < 2000, "a line of {longest} characters");
}
