//! Where in a `.cell` text something was written.
//!
//! A foundation: every stage (syntax, check, diagnostics) points at source text
//! with a [`Span`], and none of them owns it, so it lives below all of them and
//! imports nothing of the crate.

/// A byte range `[start, end)` in the NFC-normalised source text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

impl Span {
    pub fn new(start: usize, end: usize) -> Span {
        Span { start, end }
    }
    /// The smallest span covering both.
    pub fn to(self, other: Span) -> Span {
        Span::new(self.start.min(other.start), self.end.max(other.end))
    }
}
