//! The shared contracts beside the checkout (`../shared/spec/…`).
//!
//! A developer's checkout may not have them, so a test that needs one says it
//! was skipped; under CI (`CI` set) a missing contract fails instead, because
//! there a skip would let the test pass without checking anything.

use std::path::PathBuf;

/// The text of `../shared/RELATIVE`, or `None` after printing that the caller
/// was skipped. Panics under CI.
pub fn shared_file(relative: &str) -> Option<String> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../shared")
        .join(relative);
    match std::fs::read_to_string(&path) {
        Ok(text) => Some(text),
        Err(e) if std::env::var_os("CI").is_some() => {
            panic!(
                "{} is needed under CI and could not be read: {e}",
                path.display()
            )
        }
        Err(e) => {
            eprintln!("skipped: {} could not be read: {e}", path.display());
            None
        }
    }
}

/// The fenced code blocks of a Markdown text, in order, without the fences.
pub fn code_blocks(text: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            match current.take() {
                Some(block) => blocks.push(block),
                None => current = Some(String::new()),
            }
        } else if let Some(block) = current.as_mut() {
            block.push_str(line);
            block.push('\n');
        }
    }
    blocks
}

/// The language contract's code blocks (`None`: skipped, see `shared_file`).
pub fn language_examples() -> Option<Vec<String>> {
    shared_file("spec/cell-language.md").map(|t| code_blocks(&t))
}
