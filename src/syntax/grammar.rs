//! The pest parser generated from `grammar/cell.pest`: its `Rule`s are the
//! vocabulary both the AST builder (`parser`) and the error wording (`errors`)
//! speak, so they live here, below both, and data flows one way:
//! grammar → errors → parser.

#[derive(pest_derive::Parser)]
#[grammar = "../grammar/cell.pest"]
pub(crate) struct CellGrammar;
