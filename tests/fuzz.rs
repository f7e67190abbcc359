//! No input, however malformed, makes the compiler panic (the language
//! contract, "What a bad file gets").
//!
//! Properties of `check_source` over generated text:
//! - random bytes (read as lossy UTF-8) and random token soup: no panic; a
//!   failure has diagnostics, each span inside the source and on character
//!   boundaries, and renders;
//! - the models of `models/` mutated a little (a range deleted, a significant
//!   character inserted, two characters swapped, a line duplicated or deleted):
//!   no panic, and the text either passes or fails with a located error;
//! - brackets, calls, accents and operators nested 10 000 deep: an error, not a
//!   stack overflow;
//! - generated cells whose declarations agree and whose equations read
//!   declared names at plausible times, so that name resolution, ordering,
//!   shape inference and `chunk` are reached: no panic, located errors.
//!
//! In every case, the words of every diagnostic (its message, labels and
//! notes, outside the source quoted in backticks) hold no internal name: no
//! unknown of shape inference (`?0`), no IR node (`%12`), no Rust `Debug`
//! output, no "internal".
//!
//! Each property runs 512 cases, so that the file runs in seconds in a debug
//! build; `PROPTEST_CASES=50000 cargo test --test fuzz` hunts longer. A panic
//! found is a compiler bug: keep its minimal input here as a plain `#[test]`
//! with a comment saying so; it stays in the suite and passes once fixed.

mod common;

use cellc::check::check_source;
use cellc::diagnostic::Diagnostic;
use cellc::syntax::ast::Span;
use proptest::prelude::*;
use proptest::sample::{Index, select};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::LazyLock;

// ---------------------------------------------------------------------------
// The oracle

/// Checks `text` and verifies what came back: no panic; on failure at least
/// one diagnostic, the first an error, every span inside the normalised source
/// and on character boundaries, and a rendering naming the file; on success
/// the same for the warnings. Returns a description of what went wrong.
fn verify(text: &str) -> Result<(), String> {
    let outcome = catch_unwind(AssertUnwindSafe(|| check_source(text))).map_err(|p| {
        format!(
            "check_source panicked: {}\ninput: {text:?}",
            panic_message(&*p)
        )
    })?;
    let (source, diagnostics, failed) = match &outcome {
        Ok(checked) => (
            cellc::syntax::normalize_source(text),
            checked.warnings.clone(),
            false,
        ),
        Err(f) => (f.source.clone(), f.diagnostics.clone(), true),
    };
    if failed {
        match diagnostics.first() {
            None => return Err(format!("failed without a diagnostic\ninput: {text:?}")),
            Some(d) if !d.is_error() => {
                return Err(format!(
                    "failed, but the first diagnostic is not an error: {d:?}\ninput: {text:?}"
                ));
            }
            Some(_) => {}
        }
    }
    for d in &diagnostics {
        for span in spans_of(d) {
            if let Some(why) = bad_span(&source, span) {
                return Err(format!("{why}: {span:?} in {d:?}\ninput: {text:?}"));
            }
        }
        for words in words_of(d) {
            if let Some(what) = internal_name(words) {
                return Err(format!(
                    "a diagnostic shows {what}: {words:?}\n{}\ninput: {text:?}",
                    d.render("fuzz.cell", &source)
                ));
            }
        }
    }
    let rendered = catch_unwind(AssertUnwindSafe(|| {
        cellc::diagnostic::render_all(&diagnostics, "fuzz.cell", &source)
    }))
    .map_err(|p| {
        format!(
            "rendering panicked: {}\ninput: {text:?}",
            panic_message(&*p)
        )
    })?;
    if !diagnostics.is_empty() && !rendered.contains("--> fuzz.cell:") {
        return Err(format!(
            "the rendering names no place:\n{rendered}\ninput: {text:?}"
        ));
    }
    if let Err(f) = &outcome {
        let r = catch_unwind(AssertUnwindSafe(|| f.render("fuzz.cell"))).map_err(|p| {
            format!(
                "Failed::render panicked: {}\ninput: {text:?}",
                panic_message(&*p)
            )
        })?;
        if !r.starts_with("error: ") {
            return Err(format!(
                "the rendering does not start with `error: `:\n{r}\ninput: {text:?}"
            ));
        }
    }
    Ok(())
}

fn spans_of(d: &Diagnostic) -> impl Iterator<Item = Span> + '_ {
    std::iter::once(d.span).chain(d.secondary.iter().map(|l| l.span))
}

/// What the compiler wrote in a diagnostic: its message, labels and notes.
fn words_of(d: &Diagnostic) -> impl Iterator<Item = &str> + '_ {
    [d.message.as_str(), d.label.as_str()]
        .into_iter()
        .chain(d.secondary.iter().map(|l| l.message.as_str()))
        .chain(d.notes.iter().map(String::as_str))
}

/// The internal name `words` shows, if any, outside `backticks` (which quote
/// the user's own text, where `%1` or `{ ` may well be written).
fn internal_name(words: &str) -> Option<&'static str> {
    let prose: String = words.split('`').step_by(2).collect::<Vec<_>>().join(" ");
    let followed_by_digit = |mark: char| {
        prose
            .match_indices(mark)
            .any(|(i, _)| prose[i + 1..].starts_with(|c: char| c.is_ascii_digit()))
    };
    if followed_by_digit('?') {
        Some("an unknown of shape inference (`?N`)")
    } else if followed_by_digit('%') {
        Some("an IR node (`%N`)")
    } else if ["Some(", "None", "::", "{ ", "Var(", "Sym("]
        .iter()
        .any(|debug| prose.contains(debug))
    {
        Some("Rust Debug output")
    } else if prose.to_lowercase().contains("internal") {
        Some("the word \"internal\"")
    } else {
        None
    }
}

/// Why a span cannot point into `source`, if it cannot.
fn bad_span(source: &str, span: Span) -> Option<&'static str> {
    if span.start > span.end {
        Some("a span that ends before it starts")
    } else if span.end > source.len() {
        Some("a span beyond the end of the source")
    } else if !source.is_char_boundary(span.start) || !source.is_char_boundary(span.end) {
        Some("a span off a character boundary")
    } else {
        None
    }
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(a panic without a message)".into())
}

// ---------------------------------------------------------------------------
// Inputs

/// The text of every model in `models/`, by file name.
static MODELS: LazyLock<Vec<(String, String)>> = LazyLock::new(|| {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
    let mut models: Vec<(String, String)> = std::fs::read_dir(&dir)
        .expect("models/ exists")
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "cell"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("a model reads");
            (p.file_name().unwrap().to_string_lossy().into_owned(), text)
        })
        .collect();
    models.sort();
    assert!(!models.is_empty(), "no models in {}", dir.display());
    models
});

/// Characters that mean something to the grammar.
const SIGNIFICANT: &[char] = &[
    '(', ')', '[', ']', '{', '}', ';', '=', '_', ',', '@', '*', '+', '-', '/', 'σ', '·', '∘', '\\',
    ':', '&', '#', '%', 't', '1', '0', '.', 'e', '\n', ' ', '\u{303}', '−', '⊙',
];

/// Tokens of the language, and a few near misses, for token soup.
#[rustfmt::skip]
const TOKENS: &[&str] = &[
    "cell", "state", "param", "output", "c", "x", "h", "W", "b", "z_t", "x_t", "h_t", "h_{t-1}",
    "h[t-1]", "h_{t-2}", "h_{t+1}", "h_0", "C̃_t", "\\tilde{C}_t", "W_{xh}", "X", "H", "4*H", "H+X",
    "(", ")", "[", "]", "{", "}", ";", ",", ":", "=", "&=", "\\\\", "+", "-", "*", "/", "@", "·",
    "∘", "σ", "\\cdot", "\\circ", "\\sigma", "\\tanh", "\\frac", "\\sqrt", "\\left(", "\\right)",
    "\\begin{aligned}", "\\end{aligned}", "tanh", "sigmoid", "softmax", "mean", "chunk", "sum",
    "max", "relu", "0", "1", "2", "4", "0.5", "1e-5", "9999999999999999999999", "param", "\n",
    "# c\n", "// c\n", "% c\n", "\\alpha", "\\hat{h}", "ĥ",
];

/// A cell frame around a body of tokens, so that soup reaches the checker.
fn framed(body: &str) -> String {
    format!("cell c(x: [X]) {{\n    state h: [H] = 0\n    param W, b\n{body}\n    output h\n}}\n")
}

#[derive(Clone, Debug)]
enum Mutation {
    /// Deletes `len` characters from `at`.
    Delete {
        at: Index,
        len: usize,
    },
    Insert {
        at: Index,
        ch: char,
    },
    Swap {
        a: Index,
        b: Index,
    },
    DuplicateLine {
        line: Index,
    },
    DeleteLine {
        line: Index,
    },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<Index>(), 1..12usize).prop_map(|(at, len)| Mutation::Delete { at, len }),
        (any::<Index>(), select(SIGNIFICANT)).prop_map(|(at, ch)| Mutation::Insert { at, ch }),
        (any::<Index>(), any::<Index>()).prop_map(|(a, b)| Mutation::Swap { a, b }),
        any::<Index>().prop_map(|line| Mutation::DuplicateLine { line }),
        any::<Index>().prop_map(|line| Mutation::DeleteLine { line }),
    ]
}

fn apply(text: &str, m: &Mutation) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    match m {
        Mutation::Delete { at, len } if !chars.is_empty() => {
            let start = at.index(chars.len());
            let end = (start + len).min(chars.len());
            chars.drain(start..end);
        }
        Mutation::Insert { at, ch } => {
            let i = at.index(chars.len() + 1);
            chars.insert(i, *ch);
        }
        Mutation::Swap { a, b } if !chars.is_empty() => {
            let n = chars.len();
            chars.swap(a.index(n), b.index(n));
        }
        Mutation::DuplicateLine { line } | Mutation::DeleteLine { line } => {
            let mut lines: Vec<&str> = text.split_inclusive('\n').collect();
            if lines.is_empty() {
                return text.to_string();
            }
            let i = line.index(lines.len());
            if matches!(m, Mutation::DuplicateLine { .. }) {
                lines.insert(i, lines[i]);
            } else {
                lines.remove(i);
            }
            return lines.concat();
        }
        _ => {}
    }
    chars.into_iter().collect()
}

// ---------------------------------------------------------------------------
// (a) random text

proptest! {
    #![proptest_config(common::proptest_config(512))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let text = String::from_utf8_lossy(&bytes);
        if let Err(why) = verify(&text) {
            return Err(TestCaseError::fail(why));
        }
    }

    #[test]
    fn random_text_after_cell_never_panics(
        s in "cell [a-z]{0,3}\\(x: \\[[A-Z0-9+*()\\-]{0,6}\\]\\) \\{[\\PC\n]{0,80}"
    ) {
        if let Err(why) = verify(&s) {
            return Err(TestCaseError::fail(why));
        }
    }

    #[test]
    fn token_soup_never_panics(tokens in proptest::collection::vec(select(TOKENS), 0..40), glue in any::<bool>()) {
        let body = tokens.join(if glue { "" } else { " " });
        for text in [body.clone(), framed(&body)] {
            if let Err(why) = verify(&text) {
                return Err(TestCaseError::fail(why));
            }
        }
    }
}

// ---------------------------------------------------------------------------
// (b) the models, mutated

proptest! {
    #![proptest_config(common::proptest_config(512))]

    #[test]
    fn mutated_models_pass_or_fail_with_a_located_error(
        model in any::<Index>(),
        mutations in proptest::collection::vec(mutation(), 1..4),
    ) {
        let (name, text) = &MODELS[model.index(MODELS.len())];
        let mut mutated = text.clone();
        for m in &mutations {
            mutated = apply(&mutated, m);
        }
        if let Err(why) = verify(&mutated) {
            return Err(TestCaseError::fail(format!("{name} mutated by {mutations:?}: {why}")));
        }
    }

    /// A body equation of a model replaced by token soup: reaches the checker
    /// with a valid frame around it more often than mutation does.
    #[test]
    fn models_with_a_soup_line_never_panic(
        model in any::<Index>(),
        line in any::<Index>(),
        tokens in proptest::collection::vec(select(TOKENS), 1..12),
    ) {
        let (name, text) = &MODELS[model.index(MODELS.len())];
        let mut lines: Vec<String> = text.lines().map(String::from).collect();
        let i = line.index(lines.len());
        lines[i] = tokens.join(" ");
        let mutated = lines.join("\n");
        if let Err(why) = verify(&mutated) {
            return Err(TestCaseError::fail(format!("{name}, line {} replaced: {why}", i + 1)));
        }
    }
}

/// Found by `generated_cells_never_panic` once diagnostics were searched for
/// internal names: `[W] · x_t` said "needs a matrix on the left, but found a
/// vector [?0]", the unknown length of `W` unsolved.
#[test]
fn concat_on_the_left_of_dot_gives_its_length_by_name() {
    let text = "cell g(x: [X]) {\n    state h: [H]\n    param W\n    h_t = x_t\n    \
                [y_t; y1_t; y2_t] = chunk([W] · x_t, 3)\n    output y\n}\n";
    let Err(f) = check_source(text) else {
        panic!("checked");
    };
    let first = &f.diagnostics[0];
    assert_eq!(
        first.message,
        "`·` needs a matrix on the left, but found a vector [W_len]"
    );
    assert!(verify(text).is_ok(), "{:?}", verify(text));
}

#[test]
fn every_model_passes_unmutated() {
    for (name, text) in MODELS.iter() {
        if let Err(f) = check_source(text) {
            panic!("{name} does not check:\n{}", f.render(name));
        }
    }
}

// ---------------------------------------------------------------------------
// Generated cells: declarations that agree with each other and equations that
// read declared names at plausible times, so that most cases reach name
// resolution, ordering and shape inference, and some pass.

const SIZES: &[&str] = &["H", "2*H", "H+X", "X", "4", "4*H", "K", "1", "2*(H+X)"];
const FUNCTIONS: &[&str] = &[
    "tanh", "sigmoid", "σ", "relu", "exp", "log", "softplus", "abs", "sqrt", "softmax", "sum",
    "mean", "max", "\\tanh", "chunk",
];
const OPERATORS: &[&str] = &[" + ", " - ", " ∘ ", " · ", " / ", " @ ", " * ", " \\cdot "];

/// An expression over `reads` (names as they may be read, numbers).
fn expression(reads: Vec<String>) -> impl Strategy<Value = String> {
    select(reads).prop_recursive(4, 24, 3, |inner| {
        prop_oneof![
            3 => (inner.clone(), select(OPERATORS), inner.clone())
                .prop_map(|(a, op, b)| format!("{a}{op}{b}")),
            1 => inner.clone().prop_map(|a| format!("-{a}")),
            1 => inner.clone().prop_map(|a| format!("({a})")),
            2 => (select(FUNCTIONS), inner.clone()).prop_map(|(f, a)| format!("{f}({a})")),
            1 => (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("\\frac{{{a}}}{{{b}}}")),
            2 => proptest::collection::vec(inner, 1..4)
                .prop_map(|ps| format!("[{}]", ps.join("; "))),
        ]
    })
}

/// An optional shape for a parameter.
fn shape() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => Just(String::new()),
        1 => select(SIZES).prop_map(|s| format!(": [{s}]")),
        2 => (select(SIZES), select(SIZES)).prop_map(|(a, b)| format!(": [{a}, {b}]")),
        1 => Just(": []".to_string()),
    ]
}

/// The outline of a generated cell: which names exist.
#[derive(Clone, Debug)]
struct Outline {
    inputs: &'static str,
    h: (&'static str, &'static str),
    s: Option<(&'static str, &'static str)>,
    /// Intermediates, each `(name, parts of its chunk, or 0 for a plain equation)`.
    values: Vec<(&'static str, usize)>,
    shapes: [String; 4],
}

fn outline() -> impl Strategy<Value = Outline> {
    let init = select(&["", " = 0", " = param"][..]);
    let state = (select(SIZES), init);
    (
        select(&["x: [X]", "x: [X], c: [K]", "x: [X], u: [4]"][..]),
        state.clone(),
        proptest::option::of(state),
        proptest::collection::vec(
            (
                select(&["a", "z", "y", "g"][..]),
                prop_oneof![4 => Just(0usize), 1 => 2..5usize],
            ),
            0..4,
        ),
        [shape(), shape(), shape(), shape()],
    )
        .prop_map(|(inputs, h, s, mut values, shapes)| {
            let mut seen = Vec::new();
            values.retain(|(n, _)| {
                let fresh = !seen.contains(n);
                seen.push(*n);
                fresh
            });
            Outline {
                inputs,
                h,
                s,
                values,
                shapes,
            }
        })
}

impl Outline {
    /// What equation number `i` of [`Outline::equations`] may read: inputs,
    /// states at past steps, parameters, and the values of the equations
    /// before it (so that, in this order, there is no cycle). With `mistakes`,
    /// also reads the checker must refuse.
    fn reads(&self, i: usize, mistakes: bool) -> Vec<String> {
        let mut r: Vec<String> = [
            "x_t", "x", "h_{t-1}", "h[t-1]", "h_{t-2}", "W", "U", "b", "V", "1", "0.5",
        ]
        .map(String::from)
        .to_vec();
        if mistakes {
            r.extend(["x_{t-1}", "h", "q_t", "W_t"].map(String::from));
        }
        if self.inputs.contains("c:") {
            r.push("c_t".into());
        }
        if self.inputs.contains("u:") {
            r.push("u".into());
        }
        if self.s.is_some() {
            r.push("s_{t-1}".into());
        }
        if self.h.1 == " = param" {
            r.push("h_0".into());
        }
        for (targets, _) in self
            .equations()
            .iter()
            .take(if mistakes { usize::MAX } else { i })
        {
            r.extend(targets.iter().cloned());
        }
        r
    }

    /// The names each equation gives, as `(targets, chunk parts)`.
    fn equations(&self) -> Vec<(Vec<String>, usize)> {
        let mut out = vec![(vec!["h_t".to_string()], 0)];
        if self.s.is_some() {
            out.push((vec!["s_t".to_string()], 0));
        }
        for (name, parts) in &self.values {
            let mut targets = vec![format!("{name}_t")];
            for k in 1..*parts {
                targets.push(format!("{name}{k}_t"));
            }
            out.push((targets, *parts));
        }
        out
    }

    fn outputs(&self) -> Vec<String> {
        let mut out = vec!["h".to_string()];
        out.extend(self.values.iter().map(|(n, _)| n.to_string()));
        out
    }
}

#[derive(Debug)]
struct GeneratedCell(String);

fn generated_cell() -> impl Strategy<Value = GeneratedCell> {
    (outline(), proptest::bool::weighted(0.2)).prop_flat_map(|(o, mistakes)| {
        let eqs = o.equations();
        let rhs: Vec<_> = (0..eqs.len())
            .map(|i| expression(o.reads(i, mistakes)))
            .collect();
        let outputs = proptest::sample::subsequence(o.outputs(), 1..=o.outputs().len());
        (Just(o), rhs, any::<Index>(), outputs, any::<bool>()).prop_map(
            |(o, rhs, order, outputs, off_by_one)| {
                let [w, u, b, v] = &o.shapes;
                let mut text = format!(
                    "cell g({}) {{\n    state h: [{}]{}\n",
                    o.inputs, o.h.0, o.h.1
                );
                if let Some((size, init)) = o.s {
                    text += &format!("    state s: [{size}]{init}\n");
                }
                text += &format!("    param W{w}, U{u},\n          b{b}, V{v}\n");
                let mut equations: Vec<String> = o
                    .equations()
                    .into_iter()
                    .zip(rhs)
                    .map(|((targets, parts), e)| {
                        if parts == 0 {
                            format!("    {} = {e}\n", targets[0])
                        } else {
                            let n = parts + usize::from(off_by_one && parts == 3);
                            format!("    [{}] = chunk({e}, {n})\n", targets.join("; "))
                        }
                    })
                    .collect();
                // Equations may come in any order: ordering is the checker's job.
                let k = order.index(equations.len());
                equations.rotate_left(k);
                text += &equations.concat();
                if !outputs.is_empty() {
                    text += &format!("    output {}\n", outputs.join(", "));
                }
                text += "}\n";
                GeneratedCell(text)
            },
        )
    })
}

proptest! {
    #![proptest_config(common::proptest_config(512))]

    #[test]
    fn generated_cells_never_panic(cell in generated_cell()) {
        if let Err(why) = verify(&cell.0) {
            return Err(TestCaseError::fail(why));
        }
    }
}

// ---------------------------------------------------------------------------
// (c) deep nesting

const DEPTH: usize = 10_000;

/// Checks `text` on a thread with the default stack of a spawned thread (2 MiB,
/// as test threads have), named so that a stack overflow, which aborts the
/// process, says which input caused it. The text must fail with a located
/// error.
fn deep_fails_with_an_error(what: &str, text: String) {
    let name = format!("deep nesting: {what}");
    let result = std::thread::Builder::new()
        .name(name.clone())
        .stack_size(2 << 20)
        .spawn(move || match verify(&text) {
            Err(why) => Err(why),
            Ok(()) => match check_source(&text) {
                Ok(_) => Err("checked without an error".to_string()),
                Err(f) => Ok(f.render("deep.cell")),
            },
        })
        .expect("a thread starts")
        .join()
        .unwrap_or_else(|_| Err("the thread panicked".to_string()));
    match result {
        Ok(rendered) => {
            assert!(
                rendered.starts_with("error: ") && rendered.contains("--> deep.cell:"),
                "{name}:\n{rendered}"
            )
        }
        Err(why) => {
            let shown: String = why.chars().take(2_000).collect();
            panic!("{name}: {shown}")
        }
    }
}

/// A cell whose only equation has `rhs` on its right side.
fn with_rhs(rhs: &str) -> String {
    framed(&format!("    h_t = {rhs}"))
}

fn nested(open: &str, inner: &str, close: &str) -> String {
    format!("{}{inner}{}", open.repeat(DEPTH), close.repeat(DEPTH))
}

#[test]
fn deep_parentheses_give_an_error() {
    deep_fails_with_an_error("parentheses", with_rhs(&nested("(", "h_{t-1}", ")")));
}

#[test]
fn deep_brackets_give_an_error() {
    deep_fails_with_an_error("brackets", with_rhs(&nested("[", "h_{t-1}", "]")));
}

#[test]
fn deep_unclosed_brackets_give_an_error() {
    deep_fails_with_an_error("unclosed", with_rhs(&"([".repeat(DEPTH)));
}

#[test]
fn deep_calls_give_an_error() {
    deep_fails_with_an_error("calls", with_rhs(&nested("tanh(", "h_{t-1}", ")")));
}

#[test]
fn deep_latex_groups_give_an_error() {
    deep_fails_with_an_error(
        "\\left( \\right)",
        with_rhs(&nested("\\left(", "h_{t-1}", "\\right)")),
    );
    deep_fails_with_an_error("\\sqrt{}", with_rhs(&nested("\\sqrt{", "h_{t-1}", "}")));
    deep_fails_with_an_error(
        "\\frac{}{}",
        with_rhs(&nested("\\frac{1}{", "h_{t-1}", "}")),
    );
}

#[test]
fn deep_accents_give_an_error() {
    deep_fails_with_an_error("\\tilde{}", with_rhs(&nested("\\tilde{", "h", "}_{t-1}")));
}

#[test]
fn deep_size_groups_give_an_error() {
    let size = nested("(", "H", ")");
    let text = format!(
        "cell c(x: [{size}]) {{\n    state h: [H]\n    h_t = h_{{t-1}}\n    output h\n}}\n"
    );
    deep_fails_with_an_error("size parentheses", text);
}

#[test]
fn long_chains_of_operators_give_an_error() {
    deep_fails_with_an_error(
        "unary minus",
        with_rhs(&format!("{}h_{{t-1}}", "- ".repeat(DEPTH))),
    );
    deep_fails_with_an_error(
        "unary minus, glued",
        with_rhs(&format!("{}h_{{t-1}}", "-".repeat(DEPTH))),
    );
    deep_fails_with_an_error(
        "size sums",
        format!(
            "cell c(x: [{}]) {{\n    state h: [H]\n    h_t = h_{{t-1}}\n    output h\n}}\n",
            vec!["X"; DEPTH].join("+")
        ),
    );
}

/// A chain of operators is not nesting: a flat sum of 10 000 terms checks, on
/// a 2 MiB stack (it was "too deep" past 256 terms; every stage must walk
/// such a chain without recursing once per term).
#[test]
fn long_flat_chains_check() {
    for (what, op) in [("sum", " + "), ("product", " ∘ "), ("difference", " - ")] {
        let text = with_rhs(&vec!["h_{t-1}"; DEPTH].join(op));
        let name = format!("a flat {what} of {DEPTH} terms");
        let outcome = std::thread::Builder::new()
            .name(name.clone())
            .stack_size(2 << 20)
            .spawn(move || {
                check_source(&text)
                    .map(|c| c.step.graph.len())
                    .map_err(|f| f.render("long.cell"))
            })
            .expect("a thread starts")
            .join()
            .unwrap_or_else(|_| Err("the thread panicked".to_string()));
        match outcome {
            Ok(nodes) => assert!(nodes >= DEPTH - 1, "{name}: only {nodes} nodes"),
            Err(why) => panic!("{name}: {why}"),
        }
    }
}

#[test]
fn deep_nesting_around_a_comment_is_still_refused() {
    // The nesting guard skips comments: closing brackets in a comment in the
    // middle of the nesting must not make it look shallow.
    let half = DEPTH / 2;
    let rhs = format!(
        "{} # {}\n{}h_{{t-1}}{}",
        "(".repeat(half),
        ")".repeat(half),
        "(".repeat(half),
        ")".repeat(DEPTH)
    );
    deep_fails_with_an_error("around a comment", with_rhs(&rhs));
}

#[test]
fn deep_stray_brackets_behind_a_comment_character_give_an_error() {
    // A bracket glued to a name (`x[...]`) is read as one token up to its
    // matching `]`, whatever it holds, `#` and `%` included; the nesting guard
    // skips the rest of a line after `#` or `%`.
    for mark in ["#", "%", "//"] {
        let rhs = format!("x[{mark} {}", nested("[", "", "]"));
        deep_fails_with_an_error(
            &format!("stray bracket after `{mark}`"),
            with_rhs(&format!("{rhs}]")),
        );
    }
}
