//! Binding a cell's dimension names to sizes, from `-D NAME=SIZE` and from the
//! shapes of the arrays given, and checking every array against its type.
//!
//! Each array axis is an equation `size expression = length` (`H+X = 30`).
//! Equations with one unknown name are solved in turn; an equation whose names
//! are all known is a check. A contradiction names both of its sources.

use crate::graph::dim::{Atom, Bindings, Dim};
use std::collections::HashMap;

#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum BindError {
    #[error("dimension `{dim}` is {a} from {a_source}, but {b_source} needs {b}")]
    Conflict {
        dim: String,
        a: i64,
        a_source: String,
        b: i64,
        b_source: String,
    },
    #[error("{source_} has length {actual} where {expr} = {expected} (with {bound})")]
    Mismatch {
        source_: String,
        expr: String,
        actual: usize,
        expected: i64,
        bound: String,
    },
    #[error(
        "{source_} has length {actual}, which {expr} cannot equal with whole non-negative sizes"
    )]
    Unsolvable {
        source_: String,
        expr: String,
        actual: usize,
    },
    #[error("dimension `{dim}` is not bound: give -D {dim}=SIZE or an array that fixes it")]
    Unbound { dim: String },
    #[error("-D {name}: the cell has no dimension `{name}` (its dimensions: {known})")]
    UnknownDefine { name: String, known: String },
}

/// One axis of one array: `expr` must equal `actual`; `source` says which
/// array and axis, in words (`parameter W_f, axis 1 ([H, H+X])`).
pub struct Constraint {
    pub expr: Dim,
    pub actual: usize,
    pub source: String,
}

/// Solves for every name in `dims`. `defines` are `-D` bindings.
pub fn bind(
    dims: &[String],
    defines: &Bindings,
    constraints: &[Constraint],
) -> Result<Bindings, BindError> {
    let mut bound: Bindings = Bindings::new();
    let mut source: HashMap<String, String> = HashMap::new();
    for (name, v) in defines {
        if !dims.iter().any(|d| d == name) {
            return Err(BindError::UnknownDefine {
                name: name.clone(),
                known: dims.join(", "),
            });
        }
        bound.insert(name.clone(), *v);
        source.insert(name.clone(), format!("-D {name}={v}"));
    }
    let mut done = vec![false; constraints.len()];
    loop {
        let mut progress = false;
        for (i, c) in constraints.iter().enumerate() {
            if done[i] {
                continue;
            }
            let unknown: Vec<(&str, i64)> = c
                .expr
                .terms
                .iter()
                .filter_map(|(a, k)| match a {
                    Atom::Sym(s) if !bound.contains_key(s) => Some((s.as_str(), *k)),
                    _ => None,
                })
                .collect();
            let known_part = |b: &Bindings| {
                c.expr.konst
                    + c.expr
                        .terms
                        .iter()
                        .filter_map(|(a, k)| match a {
                            Atom::Sym(s) => b.get(s).map(|v| k * *v as i64),
                            Atom::Var(_) => None,
                        })
                        .sum::<i64>()
            };
            match unknown.as_slice() {
                [] => {
                    let expected = known_part(&bound);
                    if expected != c.actual as i64 {
                        return Err(conflict(c, expected, &bound, &source));
                    }
                    done[i] = true;
                    progress = true;
                }
                [(name, k)] => {
                    let rest = c.actual as i64 - known_part(&bound);
                    if rest % k != 0 || rest / k < 0 {
                        return Err(BindError::Unsolvable {
                            source_: c.source.clone(),
                            expr: c.expr.to_string(),
                            actual: c.actual,
                        });
                    }
                    bound.insert(name.to_string(), (rest / k) as usize);
                    source.insert(name.to_string(), c.source.clone());
                    done[i] = true;
                    progress = true;
                }
                _ => {}
            }
        }
        if !progress {
            break;
        }
    }
    for d in dims {
        if !bound.contains_key(d) {
            return Err(BindError::Unbound { dim: d.clone() });
        }
    }
    Ok(bound)
}

/// The clearest account of a failed check: when the expression is one name,
/// the two sources of that name's value; otherwise the equation.
fn conflict(
    c: &Constraint,
    expected: i64,
    bound: &Bindings,
    source: &HashMap<String, String>,
) -> BindError {
    if c.expr.konst == 0 && c.expr.terms.len() == 1 {
        let (a, k) = c.expr.terms.iter().next().expect("one term");
        if let (Atom::Sym(name), 1) = (a, *k) {
            return BindError::Conflict {
                dim: name.clone(),
                a: expected,
                a_source: source.get(name).cloned().unwrap_or_default(),
                b: c.actual as i64,
                b_source: c.source.clone(),
            };
        }
    }
    let names: Vec<String> = c
        .expr
        .symbols()
        .map(|s| {
            format!(
                "{s}={} from {}",
                bound.get(s).copied().unwrap_or(0),
                source.get(s).cloned().unwrap_or_default()
            )
        })
        .collect();
    BindError::Mismatch {
        source_: c.source.clone(),
        expr: c.expr.to_string(),
        actual: c.actual,
        expected,
        bound: names.join(", "),
    }
}
