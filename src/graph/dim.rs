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
    pub fn add(&self, other: &Dim) -> Result<Dim, Overflow> {
        self.combine(other, 1)
    }
    pub fn sub(&self, other: &Dim) -> Result<Dim, Overflow> {
        self.combine(other, -1)
    }
    fn combine(&self, other: &Dim, sign: i64) -> Result<Dim, Overflow> {
        // Add or subtract directly: negating first would overflow on i64::MIN.
        let op = |x: i64, y: i64| {
            if sign > 0 {
                x.checked_add(y)
            } else {
                x.checked_sub(y)
            }
            .ok_or(Overflow)
        };
        let mut out = self.clone();
        out.konst = op(out.konst, other.konst)?;
        for (a, c) in &other.terms {
            let e = out.terms.entry(a.clone()).or_insert(0);
            *e = op(*e, *c)?;
            if *e == 0 {
                out.terms.remove(a);
            }
        }
        Ok(out)
    }
    pub fn scale(&self, k: i64) -> Result<Dim, Overflow> {
        if k == 0 {
            return Ok(Dim::konst(0));
        }
        Ok(Dim {
            konst: self.konst.checked_mul(k).ok_or(Overflow)?,
            terms: self
                .terms
                .iter()
                .map(|(a, c)| Ok((a.clone(), c.checked_mul(k).ok_or(Overflow)?)))
                .collect::<Result<_, Overflow>>()?,
        })
    }
    /// `self / n` when every coefficient is divisible by `n`.
    pub fn div_exact(&self, n: i64) -> Option<Dim> {
        // `checked_rem` also refuses `i64::MIN % -1`, whose quotient overflows.
        let divides = |c: i64| c.checked_rem(n) == Some(0);
        if !divides(self.konst) || !self.terms.values().all(|c| divides(*c)) {
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
    pub fn substitute(&self, f: &mut impl FnMut(&Atom) -> Option<Dim>) -> Result<Dim, Overflow> {
        self.try_substitute(&mut |a| Ok(f(a)))
    }
    /// Replaces atoms by sizes that may themselves fail to compute.
    pub fn try_substitute(
        &self,
        f: &mut impl FnMut(&Atom) -> Result<Option<Dim>, Overflow>,
    ) -> Result<Dim, Overflow> {
        let mut out = Dim::konst(self.konst);
        for (a, c) in &self.terms {
            let d = f(a)?.unwrap_or_else(|| Dim::atom(a.clone()));
            out = out.add(&d.scale(*c)?)?;
        }
        Ok(out)
    }
    /// The size's value once every name is bound.
    pub fn eval(&self, bindings: &Bindings) -> Result<i64, String> {
        match self.value(bindings) {
            Ok(Some(v)) => Ok(v),
            Ok(None) => Err(
                match self.terms.keys().find(|a| match a {
                    Atom::Sym(s) => !bindings.contains_key(s),
                    Atom::Var(_) => true,
                }) {
                    Some(Atom::Sym(s)) => format!("dimension `{s}` is not bound"),
                    _ => "an unresolved size".into(),
                },
            ),
            Err(Overflow) => Err(format!("size {self} overflows under the bindings")),
        }
    }
    /// The size's value under `bindings`; `None` while a name is unbound (or
    /// an unknown unresolved). Computed exactly, so a sum like `H-X` whose
    /// partial sums leave 64 bits is still right; only a value outside i64
    /// is an [`Overflow`].
    pub fn value(&self, bindings: &Bindings) -> Result<Option<i64>, Overflow> {
        let mut v = i128::from(self.konst);
        for (a, c) in &self.terms {
            let n = match a {
                Atom::Sym(s) => match bindings.get(s) {
                    Some(n) => i128::try_from(*n).map_err(|_| Overflow)?,
                    None => return Ok(None),
                },
                Atom::Var(_) => return Ok(None),
            };
            let t = i128::from(*c).checked_mul(n).ok_or(Overflow)?;
            v = v.checked_add(t).ok_or(Overflow)?;
        }
        i64::try_from(v).map(Some).map_err(|_| Overflow)
    }
}

/// Size arithmetic whose result does not fit in the 64 bits sizes are
/// computed in. Sizes never wrap or saturate: a result that would is this.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("sizes are at most {MAX_SIZE} (2^63-1)")]
pub struct Overflow;

/// The largest size, and so the largest value `-D` may give a dimension: the
/// largest that size arithmetic (in i64) can hold.
pub const MAX_SIZE: u64 = i64::MAX as u64;

/// Dimension names bound to sizes.
pub type Bindings = HashMap<String, usize>;

impl Dim {
    /// The size with each bound name replaced by its value (`H-X` under
    /// H=1, X=3 is `1-3`): how a message shows the arithmetic it did.
    pub fn with_values(&self, bindings: &Bindings) -> String {
        let mut out = String::new();
        let _ = self.write_with(&mut out, &mut |a| match a {
            Atom::Sym(s) => bindings.get(s).map_or_else(|| s.clone(), |v| v.to_string()),
            Atom::Var(v) => format!("?{v}"),
        });
        out
    }

    fn write_with(
        &self,
        f: &mut impl fmt::Write,
        name_of: &mut impl FnMut(&Atom) -> String,
    ) -> fmt::Result {
        let mut first = true;
        for (a, c) in &self.terms {
            let name = name_of(a);
            // `unsigned_abs`: `-c` would overflow on i64::MIN.
            let (sign, mag) = if *c < 0 {
                ("-", c.unsigned_abs())
            } else {
                ("+", c.unsigned_abs())
            };
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
            write!(f, "-{}", self.konst.unsigned_abs())
        } else {
            Ok(())
        }
    }
}

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_with(f, &mut |a| match a {
            Atom::Sym(s) => s.clone(),
            Atom::Var(v) => format!("?{v}"),
        })
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
    pub fn try_map_dims<E>(&self, f: &mut impl FnMut(&Dim) -> Result<Dim, E>) -> Result<Type, E> {
        Ok(Type::new(
            self.batched,
            self.dims.iter().map(f).collect::<Result<_, E>>()?,
        ))
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
        assert_eq!(x.add(&h).unwrap().to_string(), "H+X");
        assert_eq!(h.scale(4).unwrap().to_string(), "4*H");
        assert_eq!(h.sub(&Dim::konst(1)).unwrap().to_string(), "H-1");
        assert_eq!(Dim::konst(3).add(&Dim::konst(7)).unwrap().to_string(), "10");
        assert_eq!(h.scale(4).unwrap().div_exact(4), Some(h.clone()));
        assert_eq!(h.add(&x).unwrap().div_exact(2), None);
        assert_eq!(Dim::konst(i64::MIN).to_string(), "-9223372036854775808");
        let min_h = Dim::sym("H").scale(i64::MIN).unwrap();
        assert_eq!(min_h.to_string(), "-9223372036854775808*H");
    }

    #[test]
    fn size_arithmetic_past_64_bits_is_an_overflow() {
        let max = Dim::konst(i64::MAX);
        assert_eq!(max.scale(2), Err(Overflow));
        assert_eq!(max.add(&Dim::konst(1)), Err(Overflow));
        assert_eq!(Dim::konst(-2).sub(&max), Err(Overflow));
        assert_eq!(
            Dim::sym("H").scale(i64::MAX).unwrap().scale(2),
            Err(Overflow)
        );
        // Subtracting i64::MIN from a negative number fits; negating it would not.
        assert_eq!(
            Dim::konst(-1).sub(&Dim::konst(i64::MIN)),
            Ok(Dim::konst(i64::MAX))
        );
        assert_eq!(Dim::konst(i64::MIN).div_exact(-1), None);
    }

    #[test]
    fn values_are_exact_or_an_overflow() {
        let b: Bindings = [("H".to_string(), usize::MAX), ("X".to_string(), 3)].into();
        let h_minus = Dim::sym("H").sub(&Dim::sym("X")).unwrap();
        assert_eq!(h_minus.value(&b), Err(Overflow));
        let b: Bindings = [("H".to_string(), i64::MAX as usize), ("X".to_string(), 3)].into();
        // 2*H overflows on the way, but 2*H-2*H-X is -3.
        let d = Dim::sym("H").scale(2).unwrap();
        assert_eq!(d.value(&b), Err(Overflow));
        let back = Dim::sym("H").sub(&Dim::sym("X")).unwrap();
        assert_eq!(back.value(&b), Ok(Some(i64::MAX - 3)));
        let cancel = Dim::sym("X").scale(-1).unwrap().add(&d).unwrap();
        let cancel = cancel.sub(&Dim::sym("H").scale(2).unwrap()).unwrap();
        assert_eq!(cancel.value(&b), Ok(Some(-3)));
        assert_eq!(Dim::sym("Y").value(&b), Ok(None));
    }

    /// A size expression as a tree, for the property below.
    #[derive(Clone, Debug)]
    enum Expr {
        Konst(i64),
        Name(usize),
        Add(Box<Expr>, Box<Expr>),
        Sub(Box<Expr>, Box<Expr>),
        Scale(Box<Expr>, i64),
    }

    const NAMES: [&str; 3] = ["A", "B", "C"];

    fn edge_i64() -> impl proptest::strategy::Strategy<Value = i64> {
        use proptest::prelude::*;
        prop_oneof![
            -4i64..=4,
            any::<i64>(),
            Just(i64::MAX),
            Just(i64::MIN),
            (0u32..63).prop_map(|k| 1i64 << k),
            (0u32..63).prop_map(|k| -(1i64 << k)),
        ]
    }

    fn expr() -> impl proptest::strategy::Strategy<Value = Expr> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            edge_i64().prop_map(Expr::Konst),
            (0..NAMES.len()).prop_map(Expr::Name)
        ];
        leaf.prop_recursive(5, 32, 2, |inner| {
            prop_oneof![
                (inner.clone(), inner.clone()).prop_map(|(a, b)| Expr::Add(a.into(), b.into())),
                (inner.clone(), inner.clone()).prop_map(|(a, b)| Expr::Sub(a.into(), b.into())),
                (inner, edge_i64()).prop_map(|(a, k)| Expr::Scale(a.into(), k)),
            ]
        })
    }

    /// The expression's coefficients (constant, A, B, C) in i128, or `None`
    /// when any step leaves i64.
    fn reference(e: &Expr) -> Option<[i128; 4]> {
        let fits = |v: [i128; 4]| v.iter().all(|c| i64::try_from(*c).is_ok()).then_some(v);
        let out = match e {
            Expr::Konst(k) => [i128::from(*k), 0, 0, 0],
            Expr::Name(i) => {
                let mut v = [0; 4];
                v[i + 1] = 1;
                v
            }
            Expr::Add(a, b) | Expr::Sub(a, b) => {
                let (a, b) = (reference(a)?, reference(b)?);
                let sign = if matches!(e, Expr::Add(..)) { 1 } else { -1 };
                std::array::from_fn(|i| a[i] + sign * b[i])
            }
            Expr::Scale(a, k) => reference(a)?.map(|c| c * i128::from(*k)),
        };
        fits(out)
    }

    fn build(e: &Expr) -> Result<Dim, Overflow> {
        match e {
            Expr::Konst(k) => Ok(Dim::konst(*k)),
            Expr::Name(i) => Ok(Dim::sym(NAMES[*i])),
            Expr::Add(a, b) => build(a)?.add(&build(b)?),
            Expr::Sub(a, b) => build(a)?.sub(&build(b)?),
            Expr::Scale(a, k) => build(a)?.scale(*k),
        }
    }

    proptest::proptest! {
        /// Size arithmetic and evaluation never wrap or saturate: a result is
        /// the exact one, and where the exact one does not fit in i64, an
        /// overflow is reported instead.
        #[test]
        fn size_arithmetic_is_exact_or_an_overflow(
            e in expr(),
            values in proptest::array::uniform3(proptest::prop_oneof![
                1usize..=5,
                proptest::prelude::any::<usize>(),
                proptest::prelude::Just(i64::MAX as usize),
            ]),
        ) {
            let want = reference(&e);
            let got = build(&e);
            proptest::prop_assert_eq!(got.is_ok(), want.is_some());
            let (Ok(d), Some(want)) = (got, want) else { return Ok(()) };
            proptest::prop_assert_eq!(i128::from(d.konst), want[0]);
            for (i, name) in NAMES.iter().enumerate() {
                let c = d.terms.get(&Atom::Sym(name.to_string())).copied().unwrap_or(0);
                proptest::prop_assert_eq!(i128::from(c), want[i + 1]);
            }
            let b: Bindings = NAMES.iter().map(|n| n.to_string()).zip(values).collect();
            let exact = (0..3).try_fold(want[0], |acc, i| {
                acc.checked_add(want[i + 1].checked_mul(values[i] as i128)?)
            });
            match (d.value(&b), exact) {
                (Ok(Some(v)), Some(x)) => proptest::prop_assert_eq!(i128::from(v), x),
                (Ok(Some(v)), None) => proptest::prop_assert!(false, "{v} from an overflow"),
                (Ok(None), _) => proptest::prop_assert!(false, "every name is bound"),
                (Err(Overflow), Some(x)) => {
                    proptest::prop_assert!(i64::try_from(x).is_err(), "{x} fits but overflowed")
                }
                (Err(Overflow), None) => {}
            }
        }
    }
}
