//! The language's functions: one table, one row per function.
//!
//! Enters: nothing (a constant). Leaves: for each function its canonical name,
//! every spelling the language accepts for it, what the checker lowers it to
//! and how it treats shapes. The parser reads the spellings (to give a call its
//! canonical name, to hint at `σ W` without parentheses, to know LaTeX
//! commands), the checker reads the lowering and shape rule, the error help and
//! "did you mean" read the names, and the tests' random-cell generator reads
//! the spellings. It exists so that adding a function is one row here (plus its
//! lowering, if it is new sugar), not an edit of four lists.
//!
//! The grammar (`grammar/cell.pest`, rule `latex_function`) must still list the
//! LaTeX operator names among the spellings, as keywords; a test parses every
//! spelling of every row, so a row the grammar cannot read fails it.

use crate::scalar::Unary;

/// One function of the language.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Function {
    /// The canonical name: what the AST carries after parsing, and the ASCII
    /// spelling.
    pub name: &'static str,
    /// Other ASCII spellings of a call (`ReLU`), compared with the canonical
    /// spelling of the name as written.
    pub ascii: &'static [&'static str],
    /// Unicode spellings (`σ`), compared with the name exactly as written.
    pub unicode: &'static [&'static str],
    /// LaTeX spellings (`\sigma`, `\tanh`), compared as written.
    pub latex: &'static [&'static str],
    pub lowering: Lowering,
    pub shape: ShapeRule,
}

/// What the checker turns a call into.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lowering {
    /// The IR's elementwise op.
    Unary(Unary),
    /// The IR's `Sum` (Σ over a vector).
    Sum,
    /// The IR's `Max` (over a vector).
    Max,
    /// Sugar: `sum(a) / n`.
    Mean,
    /// Sugar: `exp(a - max a) / Σ exp(a - max a)`, the shift held constant.
    Softmax,
    /// Sugar of a whole equation (`[a_t; b_t] = chunk(z_t, 2)`): slices.
    Chunk,
}

/// How a function treats the shape of its argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShapeRule {
    /// Any shape to the same shape, element by element.
    Elementwise,
    /// A vector to a scalar (`mean` also takes a scalar).
    Reduction,
    /// A vector to a vector of the same size, mixing its elements.
    VectorToVector,
    /// A vector into equal parts.
    Split,
}

use Lowering as L;
use ShapeRule as S;

const fn unary(
    name: &'static str,
    ascii: &'static [&'static str],
    unicode: &'static [&'static str],
    latex: &'static [&'static str],
    op: Unary,
) -> Function {
    Function {
        name,
        ascii,
        unicode,
        latex,
        lowering: L::Unary(op),
        shape: S::Elementwise,
    }
}

const fn other(
    name: &'static str,
    latex: &'static [&'static str],
    lowering: Lowering,
    shape: ShapeRule,
) -> Function {
    Function {
        name,
        ascii: &[],
        unicode: &[],
        latex,
        lowering,
        shape,
    }
}

/// Every function of the language, in the order the help text lists them.
pub static FUNCTIONS: &[Function] = &[
    unary("sigmoid", &[], &["σ", "ς"], &["\\sigma"], Unary::Sigmoid),
    unary("tanh", &[], &[], &["\\tanh"], Unary::Tanh),
    unary("relu", &["ReLU"], &[], &[], Unary::Relu),
    unary("exp", &[], &[], &["\\exp"], Unary::Exp),
    unary("log", &[], &[], &["\\log", "\\ln"], Unary::Log),
    unary("softplus", &[], &[], &[], Unary::Softplus),
    unary("abs", &[], &[], &[], Unary::Abs),
    unary("sqrt", &[], &[], &["\\sqrt"], Unary::Sqrt),
    other("softmax", &[], L::Softmax, S::VectorToVector),
    other("sum", &[], L::Sum, S::Reduction),
    other("mean", &[], L::Mean, S::Reduction),
    other("max", &["\\max"], L::Max, S::Reduction),
    other("chunk", &[], L::Chunk, S::Split),
];

/// The function with this canonical name.
pub fn lookup(name: &str) -> Option<&'static Function> {
    FUNCTIONS.iter().find(|f| f.name == name)
}

impl Function {
    /// Every spelling of a call: the name first, then ASCII, Unicode, LaTeX.
    pub fn spellings(&self) -> impl Iterator<Item = &'static str> + use<> {
        let f = *self;
        std::iter::once(f.name)
            .chain(f.ascii.iter().copied())
            .chain(f.unicode.iter().copied())
            .chain(f.latex.iter().copied())
    }
}

/// The canonical name of a called function, from the name as written (`raw`,
/// the source text of the call's head) and its canonical spelling as a name:
/// a Unicode or LaTeX spelling is matched as written (`σ`, `\ln`), an ASCII one
/// as canonical (`ReLU`). Any other name stays as it is, for the checker to
/// report as unknown.
pub(crate) fn function_name(raw: &str, canonical: &str) -> String {
    let known = FUNCTIONS.iter().find(|f| {
        f.unicode.contains(&raw) || f.latex.contains(&raw) || f.ascii.contains(&canonical)
    });
    known.map_or(canonical, |f| f.name).to_string()
}

/// Whether a bare name (canonical) is a spelling of a function, for the hint
/// that its argument is missing its parentheses (`σ W` is the name `sigma`,
/// `\ln x` the name `ln`).
pub(crate) fn is_function_word(name: &str) -> bool {
    FUNCTIONS.iter().any(|f| {
        f.name == name || f.ascii.contains(&name) || f.latex.iter().any(|l| &l[1..] == name)
    })
}

/// Whether `command` (`\tanh`) is the LaTeX spelling of a function.
pub(crate) fn is_latex_function(command: &str) -> bool {
    FUNCTIONS.iter().any(|f| f.latex.contains(&command))
}

/// The functions for a help text: `sigmoid (σ), tanh, ..., max and chunk`.
pub fn help_list() -> String {
    let items: Vec<String> = FUNCTIONS
        .iter()
        .map(|f| match f.unicode.first() {
            Some(u) => format!("{} ({u})", f.name),
            None => f.name.to_string(),
        })
        .collect();
    match items.split_last() {
        Some((last, [])) => last.clone(),
        Some((last, init)) => format!("{} and {last}", init.join(", ")),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::syntax::ast::{ExprKind, Item};

    /// The grammar keeps the LaTeX operator names as keywords: every spelling
    /// of every row must parse, as a call and with `\left( \right)`, to a call
    /// of the row's canonical name.
    #[test]
    fn every_spelling_of_every_function_parses_to_its_name() {
        for f in FUNCTIONS {
            for spelling in f.spellings() {
                for call in [
                    format!("{spelling}(x_t)"),
                    format!("{spelling}\\left(x_t\\right)"),
                ] {
                    let text = format!("cell c(x: [X]) {{\n y_t = {call}\n output y\n}}\n");
                    let source = crate::syntax::normalize_source(&text);
                    let cell = crate::syntax::parse(&source)
                        .unwrap_or_else(|d| panic!("`{call}` does not parse: {}", d.message));
                    let Some(Item::Equation(eq)) = cell.items.first() else {
                        panic!("`{call}`: no equation");
                    };
                    let ExprKind::Call { func, .. } = &eq.rhs.kind else {
                        panic!("`{call}` is not a call");
                    };
                    assert_eq!(func.name, f.name, "`{call}`");
                }
            }
        }
    }

    #[test]
    fn names_and_spellings_are_unique() {
        let mut seen = std::collections::BTreeSet::new();
        for f in FUNCTIONS {
            for s in f.spellings() {
                assert!(seen.insert(s), "`{s}` names two functions");
            }
        }
    }

    #[test]
    fn help_lists_every_function_in_order() {
        let help = help_list();
        assert!(help.starts_with("sigmoid (σ), tanh, relu, "), "{help}");
        let last = FUNCTIONS.last().expect("functions").name;
        assert!(help.ends_with(&format!(" and {last}")), "{help}");
        let mut at = 0;
        for f in FUNCTIONS {
            at += help[at..]
                .find(f.name)
                .unwrap_or_else(|| panic!("{} missing", f.name));
        }
    }
}
