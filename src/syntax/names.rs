//! Spellings of names: from what is written to the one canonical ASCII name.
//!
//! A name may be written in ASCII (`C_tilde`, `h_hat`, `alpha`), in Unicode
//! (`C̃`, `ĥ`, `α`) or in LaTeX (`\tilde{C}`, `\hat{h}`, `\alpha`); all spellings
//! of one name give the same canonical spelling, the one used in files and on
//! the command line. The grammar splits a name into its pieces; this module
//! spells each piece.

use unicode_normalization::char::decompose_canonical;

/// U+0303 COMBINING TILDE: `C̃` is `C_tilde`.
const COMBINING_TILDE: char = '\u{303}';
/// U+0302 COMBINING CIRCUMFLEX ACCENT: `ĥ` is `h_hat`.
const COMBINING_HAT: char = '\u{302}';

/// The ASCII spelling of a run of letters and digits as written (a name's base
/// or one of its subscripts): ASCII letters and digits as they are, a Greek
/// letter by its name (`α` → `alpha`), and a tilde or hat accent, combining or
/// precomposed, as a `_tilde` / `_hat` suffix after the run (`C̃` → `C_tilde`,
/// `ĥ` → `h_hat`).
///
/// Returns the first character that has no ASCII spelling as the error.
pub(crate) fn ascii_word(text: &str) -> Result<String, char> {
    let mut out = String::with_capacity(text.len());
    let mut suffixes = String::new();
    for written in text.chars() {
        // Decompose one character at a time, so that an error names the
        // character as it was written (`é`, not a bare combining accent).
        let mut parts = Vec::with_capacity(2);
        decompose_canonical(written, |c| parts.push(c));
        for c in parts {
            match c {
                COMBINING_TILDE => suffixes.push_str("_tilde"),
                COMBINING_HAT => suffixes.push_str("_hat"),
                c if c.is_ascii_alphanumeric() => out.push(c),
                c => match greek_letter_name(c) {
                    Some(name) => out.push_str(name),
                    None => return Err(written),
                },
            }
        }
    }
    out.push_str(&suffixes);
    Ok(out)
}

/// The ASCII name of a Greek letter written in Unicode, as LaTeX spells it
/// (`α` → `alpha`). Letter variants are one letter (`ε` and `ϵ` are both
/// `epsilon`); capitals that look like Latin letters have no name here.
pub(crate) fn greek_letter_name(c: char) -> Option<&'static str> {
    Some(match c {
        'α' => "alpha",
        'β' => "beta",
        'γ' => "gamma",
        'δ' => "delta",
        'ε' | 'ϵ' => "epsilon",
        'ζ' => "zeta",
        'η' => "eta",
        'θ' | 'ϑ' => "theta",
        'ι' => "iota",
        'κ' => "kappa",
        'λ' => "lambda",
        'μ' | 'µ' => "mu",
        'ν' => "nu",
        'ξ' => "xi",
        'π' => "pi",
        'ρ' | 'ϱ' => "rho",
        'σ' | 'ς' => "sigma",
        'τ' => "tau",
        'υ' => "upsilon",
        'φ' | 'ϕ' => "phi",
        'χ' => "chi",
        'ψ' => "psi",
        'ω' => "omega",
        'Γ' => "Gamma",
        'Δ' => "Delta",
        'Θ' => "Theta",
        'Λ' => "Lambda",
        'Ξ' => "Xi",
        'Π' => "Pi",
        'Σ' => "Sigma",
        'Υ' => "Upsilon",
        'Φ' => "Phi",
        'Ψ' => "Psi",
        'Ω' => "Omega",
        _ => return None,
    })
}

/// The ASCII name of a LaTeX Greek letter command (`\varepsilon` → `epsilon`),
/// given without its backslash; the same names as [`greek_letter_name`].
pub(crate) fn greek_command_name(command: &str) -> &str {
    match command {
        "varepsilon" => "epsilon",
        "vartheta" => "theta",
        "varrho" => "rho",
        "varphi" => "phi",
        other => other,
    }
}

/// The suffix a LaTeX accent command gives: `\tilde{C}` is `C_tilde`.
pub(crate) fn accent_suffix(command: &str) -> &'static str {
    match command {
        "\\tilde" | "\\widetilde" => "_tilde",
        _ => "_hat",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accents_become_suffixes() {
        assert_eq!(ascii_word("C\u{303}").unwrap(), "C_tilde");
        assert_eq!(ascii_word("\u{125}").unwrap(), "h_hat");
        assert_eq!(ascii_word("h\u{302}").unwrap(), "h_hat");
        assert_eq!(ascii_word("α1").unwrap(), "alpha1");
        assert_eq!(ascii_word("é"), Err('é'));
    }
}
