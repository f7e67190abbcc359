//! Stage 1, syntax: `.cell` text → [`ast::CellDef`].
//!
//! The pest grammar in `grammar/cell.pest` accepts every spelling of the language
//! (ASCII, Unicode, LaTeX, a pasted `aligned` body); this module turns its parse
//! tree into an AST whose names and operators are already canonical, so that no
//! later stage knows about spellings.
//!
//! - [`normalize_source`]: the text as the language reads it (Unicode NFC); all
//!   spans are byte offsets into this normalised text.
//! - [`parse`]: one normalised file → its cell, or the first syntax error.
//! - [`canonical_name`]: one name as written → its ASCII spelling and time lag.
//!
//! Inside: `grammar` is the pest parser of `grammar/cell.pest`, `parser` builds
//! the AST (precedence by a Pratt parser, names through `names`), `errors` words
//! pest's failures for a user; `parser` imports `errors`, never the reverse.
//! [`functions`] is the table of the language's functions, public because the
//! checker and the tests read it too.

pub mod ast;
mod errors;
pub mod functions;
mod grammar;
mod names;
mod parser;

use crate::diagnostic::Diagnostic;
use unicode_normalization::UnicodeNormalization;

/// NFC-normalises the whole source text (the language reads text in Unicode
/// NFC, so that `ĥ` precomposed and `h` + combining circumflex are one
/// spelling); spans refer to this normalised text.
pub fn normalize_source(text: &str) -> String {
    text.nfc().collect()
}

/// Parses one normalised `.cell` file.
///
/// Never panics, whatever the input: malformed text, brackets nested more than
/// 200 deep and expressions nested more than 256 deep all give an error (a
/// flat chain `a + b + c + ...` is not nesting, whatever its length).
pub fn parse(source: &str) -> Result<ast::CellDef, Diagnostic> {
    parser::parse_cell(source)
}

/// The canonical ASCII spelling of a name as written, and its time index if the
/// last subscript is `t` or `t-k` (also `[t]`, `[t-k]` glued to the name).
///
/// Accents become suffixes and braces only group, so all spellings of a name
/// agree:
///
/// | written | result |
/// |---|---|
/// | `x_t` | `("x", Some(0))` |
/// | `h_{t-1}`, `h[t-1]` | `("h", Some(1))` |
/// | `C̃_t`, `\tilde{C}_t`, `C_tilde_t` | `("C_tilde", Some(0))` |
/// | `ĥ`, `\hat{h}`, `h_hat` | `("h_hat", None)` |
/// | `W_{xh}` | `("W_xh", None)` |
/// | `weight_ih_l0`, `h_0` | unchanged, `None` |
/// | `α`, `\alpha` | `("alpha", None)` |
///
/// The text is NFC-normalised first. Text that is not one name of the language
/// (`h_{t+1}`, `2x`, an empty string) is returned unchanged, with `None`.
pub fn canonical_name(raw: &str) -> (String, Option<u32>) {
    let normalized = normalize_source(raw);
    parser::parse_lone_name(&normalized).unwrap_or_else(|| (raw.to_string(), None))
}
