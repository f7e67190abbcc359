//! C identifiers for the cell's names: a cell's names may be any Unicode
//! identifier (`C̃`, `h′`), C's are ASCII letters, digits and `_`, and some
//! words are taken by C and C++.

use std::collections::BTreeSet;

const RESERVED: &[&str] = &[
    "auto",
    "break",
    "case",
    "char",
    "const",
    "continue",
    "default",
    "do",
    "double",
    "else",
    "enum",
    "extern",
    "float",
    "for",
    "goto",
    "if",
    "inline",
    "int",
    "long",
    "register",
    "restrict",
    "return",
    "short",
    "signed",
    "sizeof",
    "static",
    "struct",
    "switch",
    "typedef",
    "union",
    "unsigned",
    "void",
    "volatile",
    "while",
    "bool",
    "true",
    "false",
    "class",
    "delete",
    "new",
    "this",
    "template",
    "typename",
    "namespace",
    "private",
    "public",
    "protected",
    "virtual",
    "operator",
    "friend",
    "explicit",
    "mutable",
    "try",
    "catch",
    "throw",
    "using",
    "and",
    "or",
    "not",
    "xor",
    "asm",
    "export",
    "concept",
    "requires",
    "unused_",
];

/// `name` as a C identifier: ASCII letters, digits and `_` kept, every other
/// character written as `_uXXXX` (its code point), a leading digit or a
/// reserved word given a trailing `_`.
pub fn c_identifier(name: &str) -> String {
    let mut out = String::new();
    for ch in name.chars() {
        if ch.is_ascii_alphanumeric() || ch == '_' {
            out.push(ch);
        } else {
            out.push_str(&format!("_u{:04X}", ch as u32));
        }
    }
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    if RESERVED.contains(&out.as_str()) {
        out.push('_');
    }
    out
}

/// C identifiers for names that must stay apart (the fields of one struct):
/// [`c_identifier`], then `_2`, `_3`, ... on a collision.
pub fn distinct(names: &[&str]) -> Vec<String> {
    let mut taken = BTreeSet::new();
    names
        .iter()
        .map(|n| {
            let base = c_identifier(n);
            let mut id = base.clone();
            let mut k = 2;
            while !taken.insert(id.clone()) {
                id = format!("{base}_{k}");
                k += 1;
            }
            id
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_become_distinct_c_identifiers() {
        assert_eq!(c_identifier("W_f"), "W_f");
        assert_eq!(c_identifier("C\u{303}"), "C_u0303");
        assert_eq!(c_identifier("float"), "float_");
        assert_eq!(c_identifier("2x"), "_2x");
        assert_eq!(
            distinct(&["a.b", "a_u002Eb"]),
            vec!["a_u002Eb", "a_u002Eb_2"]
        );
    }
}
