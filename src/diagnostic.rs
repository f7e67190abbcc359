//! Diagnostics shared by every stage that reports on a `.cell` file, and their
//! rendering in the style of rustc: `error: ...`, a `--> FILE:LINE:COLUMN` line,
//! the source line and carets under the span.
//!
//! Stages keep their own thiserror enums; each converts to a [`Diagnostic`] for
//! display, so that there is one renderer and one look.

use crate::span::Span;
use std::fmt::Write;
use unicode_normalization::char::is_combining_mark;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

/// A secondary place the message points at, with what it says there.
#[derive(Clone, Debug, PartialEq)]
pub struct Label {
    pub span: Span,
    pub message: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub message: String,
    pub span: Span,
    /// Said under the carets of the main span.
    pub label: String,
    pub secondary: Vec<Label>,
    /// `= help: ...` / `= note: ...` lines at the end.
    pub notes: Vec<String>,
}

impl Diagnostic {
    pub fn error(message: impl Into<String>, span: Span) -> Diagnostic {
        Diagnostic {
            severity: Severity::Error,
            message: message.into(),
            span,
            label: String::new(),
            secondary: Vec::new(),
            notes: Vec::new(),
        }
    }
    pub fn warning(message: impl Into<String>, span: Span) -> Diagnostic {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(message, span)
        }
    }
    pub fn with_label(mut self, label: impl Into<String>) -> Diagnostic {
        self.label = label.into();
        self
    }
    pub fn with_secondary(mut self, span: Span, message: impl Into<String>) -> Diagnostic {
        self.secondary.push(Label {
            span,
            message: message.into(),
        });
        self
    }
    pub fn with_note(mut self, note: impl Into<String>) -> Diagnostic {
        self.notes.push(note.into());
        self
    }
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// Renders the diagnostic against the source it was made from.
    pub fn render(&self, file: &str, source: &str) -> String {
        let mut out = String::new();
        let kind = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let _ = writeln!(out, "{kind}: {}", escape_controls(&self.message));
        let (line, col) = line_col(source, self.span.start);
        let mut places: Vec<(&Span, &str, char)> = vec![(&self.span, &self.label, '^')];
        for l in &self.secondary {
            places.push((&l.span, &l.message, '-'));
        }
        let width = places
            .iter()
            .map(|(s, _, _)| line_col(source, s.start).0.to_string().len())
            .max()
            .unwrap_or(1);
        let pad = " ".repeat(width);
        let _ = writeln!(out, "{pad}--> {file}:{line}:{col}");
        let _ = writeln!(out, "{pad} |");
        // Places in source order; the main one first among equals.
        places.sort_by_key(|(s, _, c)| (s.start, *c != '^'));
        // Each place as (line, first column, end column), 0-based columns in
        // characters, end exclusive.
        let located: Vec<(usize, usize, usize)> = places
            .iter()
            .map(|(span, _, _)| {
                let (l, c) = line_col(source, span.start);
                let end = if span.end > span.start {
                    let (el, ec) = line_col(source, span.end);
                    if el == l {
                        ec
                    } else {
                        line_text(source, l).chars().count() + 1
                    }
                } else {
                    c + 1
                };
                (l, c - 1, end.max(c + 1) - 1)
            })
            .collect();
        let mut last_line = 0;
        let mut window = (0, usize::MAX);
        for ((_, message, mark), &(l, c, end)) in places.iter().zip(&located) {
            let text: Vec<char> = line_text(source, l).chars().collect();
            // Several places on one line share the printed source line.
            if l != last_line {
                let on_line = located.iter().filter(|p| p.0 == l);
                let lo = on_line.clone().map(|p| p.1).min().unwrap_or(c);
                let hi = on_line.map(|p| p.2).max().unwrap_or(end);
                window = shown_columns(text.len(), lo, hi);
                let (from, to) = window;
                let shown: String = text[from..to.min(text.len())].iter().collect();
                let _ = writeln!(
                    out,
                    "{:>width$} | {}{}{}",
                    l,
                    if from > 0 { "…" } else { "" },
                    visible(shown.trim_end()),
                    if to < text.len() { "…" } else { "" },
                );
                last_line = l;
            }
            let (from, to) = window;
            // Tabs in the padding keep the carets under the text they mark;
            // combining marks take no column of their own.
            let mut indent: String = if from > 0 { " ".into() } else { String::new() };
            indent.extend(
                text[from.min(c)..c.min(text.len())]
                    .iter()
                    .filter(|ch| !is_combining_mark(**ch))
                    .map(|ch| if *ch == '\t' { '\t' } else { ' ' }),
            );
            indent.extend(std::iter::repeat_n(
                ' ',
                c.saturating_sub(text.len().max(from)),
            ));
            let carets = (c..end.min(to.max(c + 1)))
                .filter(|i| text.get(*i).is_none_or(|ch| !is_combining_mark(*ch)))
                .count()
                .max(1);
            let _ = writeln!(
                out,
                "{pad} | {indent}{} {}",
                mark.to_string().repeat(carets),
                escape_controls(message)
            );
        }
        for note in &self.notes {
            let _ = writeln!(out, "{pad} = {}", escape_controls(note));
        }
        out.lines()
            .map(|l| l.trim_end())
            .collect::<Vec<_>>()
            .join("\n")
            + "\n"
    }
}

/// Lines longer than this (in characters) are shown only around what they
/// point at, `…` standing for the rest.
const LONG_LINE: usize = 120;
/// How many columns of a long line are shown.
const SHOWN_COLUMNS: usize = 80;

/// The text of 1-based line `l`, without its line break.
fn line_text(source: &str, l: usize) -> &str {
    source.lines().nth(l - 1).unwrap_or("")
}

/// The columns `[from, to)` of a line of `len` characters to show, so that
/// columns `[lo, hi)` are in view: the whole line unless it is long.
fn shown_columns(len: usize, lo: usize, hi: usize) -> (usize, usize) {
    if len <= LONG_LINE {
        return (0, len);
    }
    let lo = lo.min(len);
    let hi = hi.clamp(lo, len);
    let span = hi - lo;
    if span >= SHOWN_COLUMNS {
        // Wider than the window: all of it, with a little on each side.
        return (lo.saturating_sub(8), (hi + 8).min(len));
    }
    let from = lo.saturating_sub((SHOWN_COLUMNS - span) / 2);
    let to = (from + SHOWN_COLUMNS).min(len);
    (to.saturating_sub(SHOWN_COLUMNS).min(from), to)
}

/// Characters that must not reach a terminal as they are: controls (but tab)
/// and the bidirectional overrides that would reorder the rest of the line.
fn is_hidden(c: char) -> bool {
    (c.is_control() && c != '\t') || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// A source line for display: each hidden character shown as `�`, one column
/// like the character it replaces, so carets stay aligned.
fn visible(line: &str) -> String {
    line.chars()
        .map(|c| if is_hidden(c) { '\u{FFFD}' } else { c })
        .collect()
}

/// A message for display: hidden characters written as `\u{..}` escapes.
fn escape_controls(text: &str) -> String {
    text.chars()
        .map(|c| {
            if is_hidden(c) {
                c.escape_unicode().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// 1-based line and column (in characters) of a byte offset.
pub fn line_col(source: &str, offset: usize) -> (usize, usize) {
    let offset = floor_char_boundary(source, offset.min(source.len()));
    let before = &source[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    let col = source[line_start..offset].chars().count() + 1;
    (line, col)
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// Renders every diagnostic, errors and warnings in the order given.
pub fn render_all(diags: &[Diagnostic], file: &str, source: &str) -> String {
    diags
        .iter()
        .map(|d| d.render(file, source))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The closest of `candidates` to `name`, if it is close enough to suggest.
pub fn closest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let mut best: Option<(usize, &str)> = None;
    for c in candidates {
        let d = edit_distance(name, c);
        let longest = name.chars().count().max(c.chars().count());
        // Close enough: at most half the letters differ, and not all of them
        // (so `b` does not suggest `W`).
        let close = d <= (longest / 2).max(1) && d < longest;
        // Ties go to the alphabetically first, so the answer never depends
        // on the order the candidates come in.
        if close && best.is_none_or(|(bd, bc)| d < bd || (d == bd && c < bc)) {
            best = Some((d, c));
        }
    }
    best.map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for i in 1..=a.len() {
        let mut cur = vec![i; b.len() + 1];
        for j in 1..=b.len() {
            let cost = usize::from(!a[i - 1].eq_ignore_ascii_case(&b[j - 1]));
            cur[j] = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
        }
        prev = cur;
    }
    prev[b.len()]
}
