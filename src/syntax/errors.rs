//! A pest parse failure, told in words a user of the language understands.
//!
//! pest reports the furthest position it reached and the rules it tried there.
//! Rules are named after the grammar's structure (`close_cell`, `matmul`), so
//! each is described here in the language's terms ("`}` closing the cell", "an
//! operator"), several rules sharing one description, and the message says what
//! was found instead.

use super::ast::Span;
use super::functions;
use super::grammar::Rule;
use crate::diagnostic::Diagnostic;
use pest::error::{Error, ErrorVariant, InputLocation};

/// Converts a pest error on `source` into a [`Diagnostic`].
pub(crate) fn from_pest(error: Error<Rule>, source: &str) -> Diagnostic {
    let pos = match error.location {
        InputLocation::Pos(p) => p,
        InputLocation::Span((start, _)) => start,
    };
    let pos = floor_boundary(source, pos);
    let found = found_token(source, pos);
    let span = Span::new(pos, pos + found.len());
    let found_text = match found {
        "" => "the end of the file".to_string(),
        "\n" | "\r" | "\r\n" => "the end of the line".to_string(),
        _ => format!("`{found}`"),
    };

    let positives = match error.variant {
        ErrorVariant::ParsingError { positives, .. } => positives,
        ErrorVariant::CustomError { message } => {
            // pest's own limits ("stack limit reached"); the nesting check of the
            // parser should make these unreachable.
            return Diagnostic::error(
                format!("the file is too complex to parse ({message})"),
                span,
            )
            .with_label("here");
        }
    };

    // Causes that pest reports later than they are, or in its own terms.
    if let Some(d) = point_number(source, pos, &positives)
        .or_else(|| unclosed_subscript(source, pos))
        .or_else(|| unclosed_bracket(source, pos))
    {
        return d;
    }

    let mut expected: Vec<&str> = Vec::new();
    for describer in [describe, describe_quiet] {
        for rule in &positives {
            if let Some(d) = describer(*rule)
                && !expected.contains(&d)
            {
                expected.push(d);
            }
        }
        if !expected.is_empty() {
            break;
        }
    }
    // A name is one kind of expression.
    if expected.contains(&EXPRESSION) {
        expected.retain(|d| *d != NAME);
    }
    // What continues the current construct first, what ends it last.
    expected.sort_by_key(|d| match *d {
        OPERATOR => 0,
        EXPRESSION => 1,
        STATEMENT => 3,
        CLOSE_CELL => 4,
        END_OF_FILE => 5,
        _ => 2,
    });

    // At the end of the file, what is missing is almost always the `}`.
    let at_end = found.is_empty();
    if at_end && expected.contains(&CLOSE_CELL) {
        expected = vec![CLOSE_CELL];
    }

    let message = if expected.is_empty() {
        format!("unexpected {found_text}")
    } else if is_latex_command(found)
        && !KNOWN_COMMANDS.contains(&found)
        && !functions::is_latex_function(found)
    {
        format!("unknown LaTeX command {found_text}")
    } else {
        format!("expected {}, found {found_text}", join_or(&expected))
    };
    let label = if expected.is_empty() {
        "unexpected here".to_string()
    } else {
        format!("expected {}", join_or(&expected))
    };
    let mut diagnostic = Diagnostic::error(message, span).with_label(label);

    if at_end
        && expected == [CLOSE_CELL]
        && let Some(open) = body_open(source)
    {
        diagnostic = diagnostic.with_secondary(Span::new(open, open + 1), "the cell opens here");
    }
    if let Some(help) = hint(found, &positives) {
        diagnostic = diagnostic.with_note(help);
    }
    diagnostic
}

const OPERATOR: &str = "an operator";
const EXPRESSION: &str = "an expression";
const STATEMENT: &str = "a statement";
const NAME: &str = "a name";
const CLOSE_CELL: &str = "`}` closing the cell";
const END_OF_FILE: &str = "the end of the file (a file holds one cell)";

/// The words for what a rule starts, or `None` for a rule that is only ever
/// tried as a detail of another one.
fn describe(rule: Rule) -> Option<&'static str> {
    use Rule::*;
    Some(match rule {
        add | sub | matmul | mul | div | missing_operator => OPERATOR,
        expr | group | frac | sqrt | call | concat | number | var | neg => EXPRESSION,
        state_decl | param_decl | output_decl | equation => STATEMENT,
        // A keyword is reported alone when the statement failed right at it.
        kw_state | kw_param | kw_output => STATEMENT,
        name => NAME,
        input => "an input such as `x: [X]`",
        size | size_operand => "a size",
        shape => "a shape such as `[H, X]`",
        param_item => "a parameter name",
        state_init => "`0` or `param`",
        kw_cell => "`cell`",
        open_paren => "`(`",
        close_paren => "`)`",
        left_paren => "`\\left(`",
        right_paren => "`\\right)`",
        open_bracket => "`[`",
        close_bracket => "`]`",
        left_bracket => "`\\left[`",
        right_bracket => "`\\right]`",
        open_body => "`{` opening the cell's body",
        close_cell => CLOSE_CELL,
        open_brace => "`{`",
        close_brace => "`}`",
        comma => "`,`",
        semicolon => "`;`",
        colon => "`:`",
        equals | assign => "`=`",
        EOI => END_OF_FILE,
        _ => return None,
    })
}

/// Descriptions for rules that are reported only when nothing else was tried.
fn describe_quiet(rule: Rule) -> Option<&'static str> {
    use Rule::*;
    Some(match rule {
        arguments => "`(` and the function's arguments",
        function_name => "a function name",
        subscript | braced_subscript | subscript_word => "a subscript",
        time | time_bracket => "a time index `t` or `t-k`",
        time_amount => "a number of steps",
        _ => return None,
    })
}

/// A note for a few likely mistakes, recognised by what was found.
fn hint(found: &str, positives: &[Rule]) -> Option<String> {
    let help = match found {
        "," if positives.contains(&Rule::semicolon) => {
            "help: the parts of a concatenation are separated by `;`: `[h_{t-1}; x_t]`"
        }
        "×" | "\\times" => {
            "help: write `·` (or `@`) for a matrix product, `∘` (or `*`) for an elementwise one"
        }
        "^" => "help: powers are not part of the language; write `a * a`, `exp`, `sqrt`",
        ":=" | ":" if positives.contains(&Rule::assign) => {
            "help: an equation is written `h_t = ...`"
        }
        _ if found.starts_with('_') && positives.contains(&Rule::close_brace) => {
            "help: subscripts go after the accent or font command: `\\tilde{h}_t`"
        }
        // `\sqrt{a}` is right too, so it gets no such hint.
        _ if functions::is_latex_function(found) && found != "\\sqrt" => {
            "help: LaTeX functions take their argument in parentheses: `\\tanh(a)`"
        }
        _ => return None,
    };
    Some(help.to_string())
}

/// `.5` where an expression was expected: a number starts with a digit.
fn point_number(source: &str, pos: usize, positives: &[Rule]) -> Option<Diagnostic> {
    let rest = &source[pos..];
    let digits = rest.strip_prefix('.')?;
    let len = digits
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(digits.len());
    if len == 0 || !positives.iter().any(|r| describe(*r) == Some(EXPRESSION)) {
        return None;
    }
    let written = &rest[..1 + len];
    Some(
        Diagnostic::error(
            format!("a number starts with a digit: write `0{written}`, not `{written}`"),
            Span::new(pos, pos + 1 + len),
        )
        .with_label(format!("write `0{written}`")),
    )
}

/// A subscript's `{` with no `}` before the end of the subscript (`h_{t-1)`):
/// pest reports the `{`, as the start of a subscript it could not read.
fn unclosed_subscript(source: &str, pos: usize) -> Option<Diagnostic> {
    if !source[..pos].ends_with('_') || !source[pos..].starts_with('{') {
        return None;
    }
    let inside = &source[pos + 1..];
    // The first character that ends the subscript, brackets inside it skipped.
    let mut depth = 0usize;
    let stop = inside
        .find(|c: char| match c {
            '(' | '[' => {
                depth += 1;
                false
            }
            ')' | ']' if depth > 0 => {
                depth -= 1;
                false
            }
            _ => matches!(c, '}' | '{' | ')' | ']' | ';' | ',' | '=' | '\n'),
        })
        .unwrap_or(inside.len());
    if inside[stop..].starts_with('}') {
        // Closed: what is inside is wrong, and the general message says so.
        return None;
    }
    let content = inside[..stop].trim_end();
    let end = pos + 1 + content.len();
    let next = &inside[stop..];
    let (at, label) = match next.chars().next() {
        Some(c @ (')' | ']' | ';' | ',' | '=' | '{')) => (
            Span::new(pos + 1 + stop, pos + 1 + stop + c.len_utf8()),
            format!("expected `}}` before this `{c}`"),
        ),
        _ => (Span::new(end, end), "expected `}` here".to_string()),
    };
    Some(
        Diagnostic::error("unclosed `{` in a subscript", Span::new(pos, pos + 1))
            .with_label("this `{` is never closed")
            .with_secondary(at, label)
            .with_note(format!("help: close the subscript: `_{{{content}}}`")),
    )
}

/// A `(` or `[` left open at the end of an equation: pest reports the next
/// statement (or the end of the file), where the `)` was due; the cause is the
/// opening bracket, on an earlier line.
fn unclosed_bracket(source: &str, pos: usize) -> Option<Diagnostic> {
    let (open, bracket) = innermost_open(source, pos)?;
    let (close, what) = match bracket {
        '(' => (')', "`(`"),
        '[' => (']', "`[`"),
        _ => return None,
    };
    let line_start = source[..pos].rfind('\n').map_or(0, |i| i + 1);
    let at_end = source[pos..].trim().is_empty();
    // A bracket of another kind closes first (`[a; b)`): the open one is
    // never closed, wherever it is.
    let wrong_close = source[pos..]
        .chars()
        .next()
        .filter(|c| matches!(c, ')' | ']') && *c != close);
    let (at, label) = if let Some(c) = wrong_close {
        (
            Span::new(pos, pos + 1),
            format!("expected `{close}` before this `{c}`"),
        )
    } else if !at_end && (open >= line_start || !starts_statement(&source[line_start..])) {
        // Still open in the middle of its own equation: not yet the cause.
        return None;
    } else if at_end {
        (
            Span::new(pos, pos),
            format!("expected `{close}` before the end of the file"),
        )
    } else {
        let first =
            line_start + (source[line_start..].len() - source[line_start..].trim_start().len());
        let word = found_token(source, first);
        (
            Span::new(first, first + word.len().max(1)),
            format!("expected `{close}` before this statement"),
        )
    };
    Some(
        Diagnostic::error(format!("unclosed {what}"), Span::new(open, open + 1))
            .with_label(format!("this {what} is never closed"))
            .with_secondary(at, label)
            .with_note(format!("help: add `{close}` where what it encloses ends")),
    )
}

/// The innermost bracket (`(`, `[`, `{`) still open at `pos`, outside comments.
fn innermost_open(source: &str, pos: usize) -> Option<(usize, char)> {
    let mut open: Vec<(usize, char)> = Vec::new();
    let mut chars = source[..pos].char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '#' | '%' => while chars.next_if(|&(_, c)| c != '\n').is_some() {},
            '/' if chars.peek().is_some_and(|&(_, c)| c == '/') => {
                while chars.next_if(|&(_, c)| c != '\n').is_some() {}
            }
            '(' | '[' | '{' => open.push((i, c)),
            ')' | ']' | '}' => {
                open.pop();
            }
            _ => {}
        }
    }
    open.pop()
}

/// Whether a line starts a statement: a keyword, `}`, or a left side and `=`.
fn starts_statement(line: &str) -> bool {
    let line = line.trim_start();
    let first = found_token(line, 0);
    if matches!(first, "state" | "param" | "output" | "}") {
        return true;
    }
    let line = line.lines().next().unwrap_or("");
    match line.find('=') {
        Some(eq) => {
            let lhs = line[..eq].trim_end().trim_end_matches('&');
            !lhs.trim().is_empty()
                && !lhs.contains(['(', ')', '+', '-', '*', '/', '·', '∘', '@', '−'])
        }
        None => false,
    }
}

/// LaTeX commands the grammar knows somewhere besides the functions' own
/// spellings (in [`functions::FUNCTIONS`]); any other is "unknown".
const KNOWN_COMMANDS: &[&str] = &[
    "\\cdot",
    "\\circ",
    "\\odot",
    "\\frac",
    "\\dfrac",
    "\\tfrac",
    "\\sqrt",
    "\\left",
    "\\right",
    "\\tilde",
    "\\hat",
    "\\widetilde",
    "\\widehat",
    "\\mathbf",
    "\\mathrm",
    "\\mathit",
    "\\boldsymbol",
    "\\bm",
    "\\operatorname",
    "\\text",
    "\\begin",
    "\\end",
    "\\quad",
    "\\qquad",
    "\\alpha",
    "\\beta",
    "\\gamma",
    "\\delta",
    "\\epsilon",
    "\\varepsilon",
    "\\zeta",
    "\\eta",
    "\\theta",
    "\\vartheta",
    "\\iota",
    "\\kappa",
    "\\lambda",
    "\\mu",
    "\\nu",
    "\\xi",
    "\\pi",
    "\\rho",
    "\\varrho",
    "\\sigma",
    "\\tau",
    "\\upsilon",
    "\\phi",
    "\\varphi",
    "\\chi",
    "\\psi",
    "\\omega",
    "\\Gamma",
    "\\Delta",
    "\\Theta",
    "\\Lambda",
    "\\Xi",
    "\\Pi",
    "\\Sigma",
    "\\Upsilon",
    "\\Phi",
    "\\Psi",
    "\\Omega",
];

fn is_latex_command(token: &str) -> bool {
    token.len() > 1
        && token.starts_with('\\')
        && token[1..].bytes().all(|b| b.is_ascii_alphabetic())
}

/// The token at `pos`, for "found ...": a LaTeX command, a word or number, a
/// two-character operator, or one character; empty at the end.
fn found_token(source: &str, pos: usize) -> &str {
    let rest = &source[pos..];
    let mut chars = rest.char_indices();
    let Some((_, first)) = chars.next() else {
        return "";
    };
    let end = if first == '\\' {
        let letters = rest[1..]
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(rest.len() - 1);
        if letters == 0 {
            // `\\` or `\,`: a backslash and the character after it.
            1 + rest[1..].chars().next().map_or(0, char::len_utf8)
        } else {
            1 + letters
        }
    } else if first.is_alphanumeric() || first == '_' {
        rest.find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(rest.len())
    } else if rest.starts_with(":=") || rest.starts_with("\r\n") {
        2
    } else {
        first.len_utf8()
    };
    &rest[..end]
}

/// Where the cell's body opens: the first `{` outside a comment.
fn body_open(source: &str) -> Option<usize> {
    let mut in_comment = false;
    let mut prev = '\0';
    for (i, c) in source.char_indices() {
        match c {
            '\n' => in_comment = false,
            _ if in_comment => {}
            '#' | '%' => in_comment = true,
            '/' if prev == '/' => in_comment = true,
            '{' => return Some(i),
            _ => {}
        }
        prev = c;
    }
    None
}

fn floor_boundary(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// `a`, `a or b`, `a, b or c`.
fn join_or(items: &[&str]) -> String {
    match items {
        [] => String::new(),
        [one] => one.to_string(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}
