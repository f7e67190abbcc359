//! Sizes and shapes of the IR.
//!
//! A size is an affine expression over named dimensions: `H`, `H+X`, `4*H`, `3`.
//! That is exactly what the language lets a user write, and it is closed under
//! what the ops need (concatenation adds sizes, `chunk` divides by an integer).
//! While the checker infers shapes, sizes may also contain unknowns
//! ([`Atom::Var`]); a finished graph has none.

use std::collections::BTreeMap;
use std::collections::HashMap;
use std::fmt;

/// A dimension name, or an unknown of shape inference.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Atom {
    Sym(String),
    Var(u32),
}

/// `konst + Σ coeff·atom`, kept canonical (atoms sorted, no zero coefficients)
/// so that structural equality is equality of sizes.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct Dim {
    pub konst: i64,
    pub terms: BTreeMap<Atom, i64>,
}

impl Dim {
    pub fn konst(n: i64) -> Dim {
        Dim {
            konst: n,
            terms: BTreeMap::new(),
        }
    }
    pub fn sym(name: impl Into<String>) -> Dim {
        Dim::atom(Atom::Sym(name.into()))
    }
    pub fn var(v: u32) -> Dim {
        Dim::atom(Atom::Var(v))
    }
    fn atom(a: Atom) -> Dim {
        let mut terms = BTreeMap::new();
        terms.insert(a, 1);
        Dim { konst: 0, terms }
    }
    pub fn as_const(&self) -> Option<i64> {
        self.terms.is_empty().then_some(self.konst)
    }
    pub fn has_vars(&self) -> bool {
        self.terms.keys().any(|a| matches!(a, Atom::Var(_)))
    }
    pub fn add(&self, other: &Dim) -> Dim {
        self.combine(other, 1)
    }
    pub fn sub(&self, other: &Dim) -> Dim {
        self.combine(other, -1)
    }
    fn combine(&self, other: &Dim, sign: i64) -> Dim {
        let mut out = self.clone();
        out.konst = out.konst.saturating_add(sign.saturating_mul(other.konst));
        for (a, c) in &other.terms {
            let e = out.terms.entry(a.clone()).or_insert(0);
            *e = e.saturating_add(sign.saturating_mul(*c));
            if *e == 0 {
                out.terms.remove(a);
            }
        }
        out
    }
    pub fn scale(&self, k: i64) -> Dim {
        if k == 0 {
            return Dim::konst(0);
        }
        Dim {
            konst: self.konst.saturating_mul(k),
            terms: self
                .terms
                .iter()
                .map(|(a, c)| (a.clone(), c.saturating_mul(k)))
                .collect(),
        }
    }
    /// `self / n` when every coefficient is divisible by `n`.
    pub fn div_exact(&self, n: i64) -> Option<Dim> {
        if n == 0 || self.konst % n != 0 || self.terms.values().any(|c| c % n != 0) {
            return None;
        }
        Some(Dim {
            konst: self.konst / n,
            terms: self.terms.iter().map(|(a, c)| (a.clone(), c / n)).collect(),
        })
    }
    /// The names this size mentions.
    pub fn symbols(&self) -> impl Iterator<Item = &str> {
        self.terms.keys().filter_map(|a| match a {
            Atom::Sym(s) => Some(s.as_str()),
            Atom::Var(_) => None,
        })
    }
    /// Replaces atoms by sizes.
    pub fn substitute(&self, f: &mut impl FnMut(&Atom) -> Option<Dim>) -> Dim {
        let mut out = Dim::konst(self.konst);
        for (a, c) in &self.terms {
            let d = f(a).unwrap_or_else(|| Dim::atom(a.clone()));
            out = out.add(&d.scale(*c));
        }
        out
    }
    /// The size's value once every name is bound.
    pub fn eval(&self, bindings: &Bindings) -> Result<i64, String> {
        let mut v = self.konst;
        for (a, c) in &self.terms {
            match a {
                Atom::Sym(s) => match bindings.get(s) {
                    Some(n) => {
                        v = i64::try_from(*n)
                            .ok()
                            .and_then(|n| c.checked_mul(n))
                            .and_then(|t| v.checked_add(t))
                            .ok_or_else(|| format!("size {self} is too large"))?
                    }
                    None => return Err(format!("dimension `{s}` is not bound")),
                },
                Atom::Var(_) => return Err("an unresolved size".into()),
            }
        }
        Ok(v)
    }
}

/// Dimension names bound to sizes.
pub type Bindings = HashMap<String, usize>;

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (a, c) in &self.terms {
            let name = match a {
                Atom::Sym(s) => s.clone(),
                Atom::Var(v) => format!("?{v}"),
            };
            let (sign, mag) = if *c < 0 { ("-", -c) } else { ("+", *c) };
            if first {
                if sign == "-" {
                    write!(f, "-")?;
                }
            } else {
                write!(f, "{sign}")?;
            }
            if mag == 1 {
                write!(f, "{name}")?;
            } else {
                write!(f, "{mag}*{name}")?;
            }
            first = false;
        }
        if first {
            write!(f, "{}", self.konst)
        } else if self.konst > 0 {
            write!(f, "+{}", self.konst)
        } else if self.konst < 0 {
            write!(f, "-{}", -self.konst)
        } else {
            Ok(())
        }
    }
}

/// The type of a value in the IR: its shape per batch element, and whether it
/// has a batch axis at all (inputs and states do; parameters and constants do
/// not). Rank 0 is a scalar, 1 a vector, 2 a matrix.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Type {
    pub batched: bool,
    pub dims: Vec<Dim>,
}

impl Type {
    pub fn new(batched: bool, dims: Vec<Dim>) -> Type {
        Type { batched, dims }
    }
    pub fn scalar(batched: bool) -> Type {
        Type::new(batched, vec![])
    }
    pub fn vector(batched: bool, n: Dim) -> Type {
        Type::new(batched, vec![n])
    }
    pub fn rank(&self) -> usize {
        self.dims.len()
    }
    /// The shape without the batch axis, as written in the language: `[H, H+X]`.
    pub fn shape_string(&self) -> String {
        shape_string(&self.dims)
    }
    pub fn map_dims(&self, f: &mut impl FnMut(&Dim) -> Dim) -> Type {
        Type::new(self.batched, self.dims.iter().map(f).collect())
    }
    /// The concrete array shape (batch axis first) under `bindings`.
    pub fn array_shape(&self, batch: usize, bindings: &Bindings) -> Result<Vec<usize>, String> {
        let mut out = Vec::with_capacity(self.dims.len() + 1);
        if self.batched {
            out.push(batch);
        }
        for d in &self.dims {
            let v = d.eval(bindings)?;
            if v < 0 {
                return Err(format!("size {d} is negative ({v})"));
            }
            out.push(v as usize);
        }
        Ok(out)
    }
}

pub fn shape_string(dims: &[Dim]) -> String {
    let parts: Vec<String> = dims.iter().map(|d| d.to_string()).collect();
    format!("[{}]", parts.join(", "))
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts: Vec<String> = Vec::new();
        if self.batched {
            parts.push("B".into());
        }
        parts.extend(self.dims.iter().map(|d| d.to_string()));
        write!(f, "[{}]", parts.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_print_canonically() {
        let h = Dim::sym("H");
        let x = Dim::sym("X");
        assert_eq!(x.add(&h).to_string(), "H+X");
        assert_eq!(h.scale(4).to_string(), "4*H");
        assert_eq!(h.sub(&Dim::konst(1)).to_string(), "H-1");
        assert_eq!(Dim::konst(3).add(&Dim::konst(7)).to_string(), "10");
        assert_eq!(h.scale(4).div_exact(4), Some(h.clone()));
        assert_eq!(h.add(&x).div_exact(2), None);
    }
}
