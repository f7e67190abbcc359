//! Binding a cell's dimension names to sizes, from `-D NAME=SIZE` and from the
//! shapes of the arrays given, and checking every array against its type.
//!
//! Each array axis is an equation `size expression = length` (`H+X = 30`).
//! Equations with one unknown name are solved in turn; an equation whose names
//! are all known is a check. A contradiction names both of its sources.

use crate::graph::dim::{Atom, Bindings, Dim, MAX_SIZE};
use crate::graph::step::{BadSize, StepGraph};
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
    #[error("{source_} has length {actual}, expected {expected}")]
    Length {
        source_: String,
        actual: usize,
        expected: i64,
    },
    #[error("dimension `{dim}` would be {value} ({source_}): sizes are at least 1")]
    NotPositive {
        dim: String,
        value: i64,
        source_: String,
    },
    #[error("size {dim} overflows ({source_}): sizes are at most {MAX_SIZE} (2^63-1)")]
    TooLarge { dim: String, source_: String },
    #[error("-D {dim}={value} is too large: a dimension is at most {MAX_SIZE} (2^63-1)")]
    DefineTooLarge { dim: String, value: usize },
    #[error(
        "size of {} is {} = {shown} = {value} under {bound}; every size must be at least 1",
        bad.what,
        bad.size
    )]
    SizeNotPositive {
        /// The size, whose it is, and the declaration it belongs to.
        bad: Box<BadSize>,
        /// The size with the values put in: `1-3`.
        shown: String,
        value: i64,
        bound: String,
    },
    #[error(
        "size of {} is {} = {shown}, which overflows under {bound}: sizes are at most {MAX_SIZE} (2^63-1)",
        bad.what,
        bad.size
    )]
    SizeOverflow {
        bad: Box<BadSize>,
        shown: String,
        bound: String,
    },
    #[error("-D {dim} is given twice ({a} and {b})")]
    TwiceDefined { dim: String, a: usize, b: usize },
    #[error("dimension `{dim}` is not bound: give -D {dim}=SIZE or an array that fixes it")]
    Unbound { dim: String },
    #[error("-D {name}: the cell has no dimension `{name}` ({known})")]
    UnknownDefine { name: String, known: String },
}

impl BindError {
    /// The size of the cell the error is about, if it is about one (its
    /// declaration is where the message points).
    pub fn bad_size(&self) -> Option<&BadSize> {
        match self {
            BindError::SizeNotPositive { bad, .. } | BindError::SizeOverflow { bad, .. } => {
                Some(bad)
            }
            _ => None,
        }
    }
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
    let bound = bind_partial(dims, defines, constraints)?;
    for d in dims {
        if !bound.contains_key(d) {
            return Err(BindError::Unbound { dim: d.clone() });
        }
    }
    Ok(bound)
}

/// Collects `-D NAME=SIZE` flags; the same name twice with two sizes is an error.
pub fn defines(flags: &[(String, usize)]) -> Result<Bindings, BindError> {
    let mut out = Bindings::new();
    for (name, v) in flags {
        if let Some(prev) = out.insert(name.clone(), *v)
            && prev != *v
        {
            return Err(BindError::TwiceDefined {
                dim: name.clone(),
                a: prev,
                b: *v,
            });
        }
    }
    Ok(out)
}

/// Like [`bind`], but leaves unbound what nothing fixes.
pub fn bind_partial(
    dims: &[String],
    defines: &Bindings,
    constraints: &[Constraint],
) -> Result<Bindings, BindError> {
    Ok(solve(dims, defines, constraints)?.0)
}

/// Binds the dimensions of `step` (all of them when `complete`, else those
/// something fixes) and checks every size of the cell under them: a derived
/// size such as `H-X` must come out at least 1 and fit in 64 bits. The error
/// names the size, its arithmetic and where each value came from.
pub fn bind_step(
    step: &StepGraph,
    defines: &Bindings,
    constraints: &[Constraint],
    complete: bool,
) -> Result<Bindings, BindError> {
    let dims: Vec<String> = step.dims.iter().map(|d| d.name.clone()).collect();
    let (bound, source) = solve(&dims, defines, constraints)?;
    if let Some(bad) = step.bad_size(&bound) {
        let flags: Vec<String> = bad
            .size
            .symbols()
            .map(|s| match source.get(s) {
                Some(from) if from.starts_with("-D ") => from.clone(),
                Some(from) => format!("{s}={} (from {from})", bound[s]),
                None => format!("{s}={}", bound[s]),
            })
            .collect();
        let all_flags = flags.iter().all(|f| f.starts_with("-D "));
        let bound_text = flags.join(if all_flags { " " } else { ", " });
        let shown = bad.size.with_values(&bound);
        return Err(match bad.value {
            Some(value) => BindError::SizeNotPositive {
                bad: Box::new(bad),
                shown,
                value,
                bound: bound_text,
            },
            None => BindError::SizeOverflow {
                bad: Box::new(bad),
                shown,
                bound: bound_text,
            },
        });
    }
    if complete && let Some(d) = dims.iter().find(|d| !bound.contains_key(*d)) {
        return Err(BindError::Unbound { dim: d.clone() });
    }
    Ok(bound)
}

/// The bindings, and for each name where its value came from (`-D H=16`,
/// an array's axis).
fn solve(
    dims: &[String],
    defines: &Bindings,
    constraints: &[Constraint],
) -> Result<(Bindings, HashMap<String, String>), BindError> {
    let mut bound: Bindings = Bindings::new();
    let mut source: HashMap<String, String> = HashMap::new();
    for (name, v) in defines {
        if !dims.iter().any(|d| d == name) {
            return Err(BindError::UnknownDefine {
                name: name.clone(),
                known: if dims.is_empty() {
                    "it has none: all its sizes are numbers".into()
                } else {
                    format!("its dimensions: {}", dims.join(", "))
                },
            });
        }
        if *v == 0 {
            return Err(BindError::NotPositive {
                dim: name.clone(),
                value: 0,
                source_: format!("-D {name}=0"),
            });
        }
        if *v as u64 > MAX_SIZE {
            return Err(BindError::DefineTooLarge {
                dim: name.clone(),
                value: *v,
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
            // The value of the bound part of the expression, exact (i128 holds
            // any coefficient times any value); None only past i128.
            let known_part = |b: &Bindings| -> Option<i128> {
                let mut v = i128::from(c.expr.konst);
                for (a, k) in &c.expr.terms {
                    if let Atom::Sym(s) = a
                        && let Some(n) = b.get(s)
                    {
                        let n = i128::try_from(*n).ok()?;
                        v = v.checked_add(i128::from(*k).checked_mul(n)?)?;
                    }
                }
                Some(v)
            };
            let too_large = |dim: String| BindError::TooLarge {
                dim,
                source_: c.source.clone(),
            };
            let actual = c.actual as i128;
            match unknown.as_slice() {
                [] => {
                    let expected = known_part(&bound)
                        .and_then(|v| i64::try_from(v).ok())
                        .ok_or_else(|| too_large(c.expr.to_string()))?;
                    if i128::from(expected) != actual {
                        return Err(conflict(c, expected, &bound, &source));
                    }
                    done[i] = true;
                    progress = true;
                }
                [(name, k)] => {
                    let rest = known_part(&bound)
                        .and_then(|v| actual.checked_sub(v))
                        .ok_or_else(|| too_large(c.expr.to_string()))?;
                    let k = i128::from(*k);
                    if rest % k != 0 || rest / k < 0 {
                        return Err(BindError::Unsolvable {
                            source_: c.source.clone(),
                            expr: c.expr.to_string(),
                            actual: c.actual,
                        });
                    }
                    let value = rest / k;
                    if value == 0 {
                        return Err(BindError::NotPositive {
                            dim: name.to_string(),
                            value: 0,
                            source_: c.source.clone(),
                        });
                    }
                    if value > i128::from(MAX_SIZE) {
                        return Err(too_large(format!("`{name}` = {value}")));
                    }
                    bound.insert(name.to_string(), value as usize);
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
    Ok((bound, source))
}

/// The clearest account of a failed check: when the expression is one name,
/// the two sources of that name's value; otherwise the equation.
fn conflict(
    c: &Constraint,
    expected: i64,
    bound: &Bindings,
    source: &HashMap<String, String>,
) -> BindError {
    if c.expr.terms.is_empty() {
        return BindError::Length {
            source_: c.source.clone(),
            actual: c.actual,
            expected,
        };
    }
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
