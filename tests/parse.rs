//! The IR reader is the printer's inverse, and never panics.
//!
//! - For every model of `models/`: its step graph, the graph unrolled for T = 2
//!   and the forward and adjoint graphs of autodiff, printed, read back and
//!   printed again, give the same text; and the graph read back is the graph
//!   printed (same arguments, nodes, edges and results), not merely one that
//!   prints alike.
//! - The printed graphs mutated a little (a range deleted, a significant
//!   character inserted, two characters swapped, a line duplicated or deleted,
//!   a digit changed): reading never panics, and a graph read verifies or
//!   fails to without panicking, and prints.

use cellc::check::check_source;
use cellc::graph::parse::{parse, parse_titled};
use cellc::graph::{Graph, print};
use cellc::pipeline::differentiate_step;
use cellc::unroll::unroll;
use petgraph::visit::EdgeRef;
use proptest::prelude::*;
use proptest::sample::{Index, select};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::LazyLock;

/// Every graph the snapshot tests print, with its title, for every model.
fn printed_graphs() -> Vec<(String, Graph)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("models/ exists")
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "cell"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no models in {}", dir.display());
    let mut out = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path).expect("a readable model");
        let step = check_source(&text)
            .unwrap_or_else(|_| panic!("{} checks", path.display()))
            .step;
        let adj = differentiate_step(&step).expect("differentiates");
        let unrolled = unroll(&step, 2).expect("unrolls");
        out.push((format!("step {}", step.name), step.graph.clone()));
        out.push((format!("unrolled {} T=2", step.name), unrolled));
        out.push((format!("forward step {}", step.name), adj.forward));
        out.push((format!("adjoint step {}", step.name), adj.backward));
    }
    out
}

static GRAPHS: LazyLock<Vec<(String, Graph)>> = LazyLock::new(printed_graphs);

/// What makes two graphs the same graph: arguments, nodes (op, type, label),
/// edges with their positions, results.
fn assert_same_graph(what: &str, got: &Graph, want: &Graph) {
    assert_eq!(got.args, want.args, "{what}: arguments");
    assert_eq!(got.results, want.results, "{what}: results");
    assert_eq!(got.len(), want.len(), "{what}: node count");
    for n in want.node_ids() {
        assert_eq!(got.node(n), want.node(n), "{what}: node %{}", n.index());
        let edges = |g: &Graph| {
            let mut e: Vec<(u32, usize)> = g
                .dag
                .edges_directed(n, petgraph::Direction::Incoming)
                .map(|e| (*e.weight(), e.source().index()))
                .collect();
            e.sort();
            e
        };
        assert_eq!(
            edges(got),
            edges(want),
            "{what}: operands of %{}",
            n.index()
        );
    }
}

#[test]
fn every_printed_model_graph_reads_back_to_itself() {
    for (title, g) in GRAPHS.iter() {
        let text = print::text(g, title);
        let (read_title, read) =
            parse_titled(&text).unwrap_or_else(|e| panic!("{title}: {e}\n{text}"));
        assert_eq!(&read_title, title);
        assert_eq!(print::text(&read, title), text, "{title}: printed again");
        assert_same_graph(title, &read, g);
        read.verify()
            .unwrap_or_else(|e| panic!("{title}: read back, it does not verify: {e}"));
    }
}

/// Reads `text`; whatever comes back must verify or fail to, and print, without
/// a panic.
fn read_without_panic(text: &str) -> Result<(), String> {
    catch_unwind(AssertUnwindSafe(|| {
        if let Ok(g) = parse(text) {
            let _ = g.verify();
            let _ = print::text(&g, "g");
            let _ = print::dot(&g, "g");
        }
    }))
    .map_err(|_| format!("panicked on:\n{text}"))
}

#[derive(Clone, Debug)]
enum Mutation {
    Delete(Index, usize),
    Insert(Index, char),
    Swap(Index, Index),
    DuplicateLine(Index),
    DeleteLine(Index),
    Digit(Index, char),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    // The characters that mean something in the text form.
    let significant = select(vec![
        '%', '=', ':', ',', '[', ']', ';', '#', '@', '+', '-', '*', '?', ' ', '\n', 'B', '0', '9',
        'é',
    ]);
    prop_oneof![
        (any::<Index>(), 1usize..6).prop_map(|(i, n)| Mutation::Delete(i, n)),
        (any::<Index>(), significant).prop_map(|(i, c)| Mutation::Insert(i, c)),
        (any::<Index>(), any::<Index>()).prop_map(|(a, b)| Mutation::Swap(a, b)),
        any::<Index>().prop_map(Mutation::DuplicateLine),
        any::<Index>().prop_map(Mutation::DeleteLine),
        (any::<Index>(), select(vec!['0', '1', '7', '9'])).prop_map(|(i, c)| Mutation::Digit(i, c)),
    ]
}

fn apply(text: &str, m: &Mutation) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    let mut lines: Vec<&str> = text.lines().collect();
    match m {
        Mutation::Delete(i, n) => {
            let at = i.index(chars.len());
            let end = (at + n).min(chars.len());
            chars.drain(at..end);
        }
        Mutation::Insert(i, c) => chars.insert(i.index(chars.len() + 1), *c),
        Mutation::Swap(a, b) => {
            let (a, b) = (a.index(chars.len()), b.index(chars.len()));
            chars.swap(a, b);
        }
        Mutation::DuplicateLine(i) => {
            let at = i.index(lines.len());
            lines.insert(at, lines[at]);
            return lines.join("\n");
        }
        Mutation::DeleteLine(i) => {
            lines.remove(i.index(lines.len()));
            return lines.join("\n");
        }
        Mutation::Digit(i, c) => {
            let digits: Vec<usize> = (0..chars.len())
                .filter(|k| chars[*k].is_ascii_digit())
                .collect();
            if !digits.is_empty() {
                chars[digits[i.index(digits.len())]] = *c;
            }
        }
    }
    chars.into_iter().collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn mutated_graph_text_never_panics(
        which in any::<Index>(),
        mutations in proptest::collection::vec(mutation(), 1..4),
    ) {
        let (title, g) = &GRAPHS[which.index(GRAPHS.len())];
        let mut text = print::text(g, title);
        for m in &mutations {
            text = apply(&text, m);
        }
        prop_assert!(read_without_panic(&text).is_ok(), "{}", read_without_panic(&text).unwrap_err());
    }

    #[test]
    fn random_text_never_panics(text in "[%=:,\\[\\]; #@+*?B0-9a-z\\n-]{0,200}") {
        prop_assert!(read_without_panic(&text).is_ok(), "panicked on {text:?}");
    }
}
