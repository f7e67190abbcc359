//! The size solver: unknown sizes of undeclared parameters, solved as uses
//! constrain them.
//!
//! Enters: equations between affine sizes (`3*H + X = W_cols`) from the ops'
//! own shape rules, through [`DimEq`]. Leaves: a substitution of unknowns by
//! sizes, in whole numbers (Euclid's algorithm where no unit coefficient exists).
//! Exists because the IR's shape rules are written once, in `graph::op`, and
//! inference runs them with this unifier instead of a second set of rules.

use super::Checker;
use crate::graph::dim::{Atom, Dim, Overflow, Type};
use crate::graph::op::DimEq;
use std::collections::HashMap;

#[derive(Clone, Default)]
pub(super) struct Unifier {
    pub(super) subst: HashMap<u32, Dim>,
    pub(super) origins: Vec<String>,
    /// (unknown, the unknown a Euclid step replaced it with), in order.
    pub(super) euclid: Vec<(u32, u32)>,
    /// Set when solving needed a size beyond 64 bits: the failed equation is
    /// then reported as an overflow, not as a mismatch.
    pub(super) overflowed: bool,
}

impl Unifier {
    pub(super) fn fresh(&mut self, origin: String) -> Dim {
        self.origins.push(origin);
        Dim::var(self.origins.len() as u32 - 1)
    }
    pub(super) fn resolve(&self, d: &Dim) -> Result<Dim, Overflow> {
        d.try_substitute(&mut |a| match a {
            Atom::Var(v) => self.subst.get(v).map(|e| self.resolve(e)).transpose(),
            Atom::Sym(_) => Ok(None),
        })
    }
    /// `d` resolved, with remaining unknowns shown by their origin names (for
    /// messages: a size that overflows is shown as it stands).
    pub(super) fn named(&self, d: &Dim) -> Dim {
        let d = self.resolve(d).unwrap_or_else(|_| d.clone());
        d.substitute(&mut |a| match a {
            Atom::Var(v) => Some(Dim::sym(self.origins[*v as usize].clone())),
            Atom::Sym(_) => None,
        })
        .unwrap_or(d)
    }
    /// `d / n` as a size, introducing an unknown when `d` is still open.
    pub(super) fn divide(&mut self, d: &Dim, n: i64, origin: String) -> Option<Dim> {
        let Ok(d) = self.resolve(d) else {
            self.overflowed = true;
            return None;
        };
        if let Some(q) = d.div_exact(n) {
            return Some(q);
        }
        if !d.has_vars() {
            return None;
        }
        let q = self.fresh(origin);
        let Ok(qn) = q.scale(n) else {
            self.overflowed = true;
            return None;
        };
        self.equate(&d, &qn).then_some(q)
    }
}

impl DimEq for Unifier {
    /// Makes `a = b` hold by solving for unknowns, in whole numbers.
    fn equate(&mut self, a: &Dim, b: &Dim) -> bool {
        match self.solve(a, b) {
            Ok(holds) => holds,
            Err(Overflow) => {
                self.overflowed = true;
                false
            }
        }
    }
}

impl Unifier {
    fn solve(&mut self, a: &Dim, b: &Dim) -> Result<bool, Overflow> {
        let mut d = self.resolve(a)?.sub(&self.resolve(b)?)?;
        loop {
            let vars: Vec<(u32, i64)> = d
                .terms
                .iter()
                .filter_map(|(a, c)| match a {
                    Atom::Var(v) => Some((*v, *c)),
                    Atom::Sym(_) => None,
                })
                .collect();
            if vars.is_empty() {
                return Ok(d == Dim::konst(0));
            }
            // Solve for the newest unknown with a unit coefficient, so that
            // older unknowns (and their names) survive; else for one that
            // divides the rest evenly.
            let exact = vars
                .iter()
                .rev()
                .find(|(_, c)| c.unsigned_abs() == 1)
                .or_else(|| {
                    vars.iter().rev().find(|(v, c)| {
                        let mut rest = d.clone();
                        rest.terms.remove(&Atom::Var(*v));
                        rest.div_exact(*c).is_some()
                    })
                });
            if let Some(&(v, c)) = exact {
                let mut rest = d.clone();
                rest.terms.remove(&Atom::Var(v));
                // c·v + rest = 0  ⇒  v = -rest / c
                let val = rest.scale(-1)?.div_exact(c).ok_or(Overflow)?;
                self.subst.insert(v, val);
                return Ok(true);
            }
            if vars.len() == 1 {
                // c·v = -rest with rest not a multiple of c: no whole solution.
                return Ok(false);
            }
            // A step of Euclid's algorithm (as for any linear equation in
            // whole numbers): with c the smallest coefficient, write
            // v = w - Σ ⌊cᵢ/c⌋·aᵢ for a new unknown w; the equation becomes
            // c·w + Σ (cᵢ mod c)·aᵢ = 0, whose coefficients are smaller.
            let &(v, c) = vars
                .iter()
                .rev()
                .min_by_key(|(_, c)| c.unsigned_abs())
                .expect("two or more unknowns");
            let w = self.fresh(self.origins[v as usize].clone());
            if let Atom::Var(wi) = w.terms.keys().next().expect("a fresh unknown") {
                self.euclid.push((v, *wi));
            }
            let mut quotient = Dim::konst(d.konst.checked_div_euclid(c).ok_or(Overflow)?);
            for (atom, ci) in &d.terms {
                if *atom != Atom::Var(v) {
                    let mut t = Dim::konst(0);
                    t.terms
                        .insert(atom.clone(), ci.checked_div_euclid(c).ok_or(Overflow)?);
                    quotient = quotient.add(&t)?;
                }
            }
            self.subst.insert(v, w.sub(&quotient)?);
            d = self.resolve(&d)?;
        }
    }
}

impl Checker {
    /// Whether a value of type `a` can be stored where `b` is expected (an
    /// unbatched value is repeated over the batch).
    pub(super) fn types_unify(&mut self, a: &Type, b: &Type) -> bool {
        (a.batched == b.batched || !a.batched)
            && a.rank() == b.rank()
            && a.dims
                .iter()
                .zip(&b.dims)
                .all(|(x, y)| self.unifier.equate(x, y))
    }

    /// A type for a message: unknowns are shown by the name they would get
    /// as free sizes (`W_rows`), never as internal numbers.
    pub(super) fn show(&self, t: &Type) -> String {
        t.map_dims(&mut |d| self.unifier.named(d)).shape_string()
    }
}
