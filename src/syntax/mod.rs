//! Stage 1, syntax: `.cell` text → [`ast::CellDef`].
//!
//! The pest grammar in `grammar/cell.pest` accepts every spelling of the language
//! (ASCII, Unicode, LaTeX, a pasted `aligned` body); this module turns its parse
//! tree into an AST whose names and operators are already canonical, so that no
//! later stage knows about spellings.

pub mod ast;
