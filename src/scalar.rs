//! The unary primitive ops of the IR, as a foundation below every stage.
//!
//! Enters: one number. Leaves: the op applied to it. This file defines the
//! closed set [`Unary`], which the IR's `Op::Unary` carries (`graph::op`
//! re-exports it) and the language's function table (`syntax::functions`)
//! lowers to, and the one scalar definition of each op, [`Unary::apply`]:
//! the reference evaluation (`Op::eval`) maps it over arrays, constant folding
//! (`opt`) applies it to constants, and codegen's folding will too, so that a
//! folded constant is always what evaluation would have computed.
//!
//! It sits below every stage so that the table read by the parser can name
//! ops without the parser importing the IR.

use num_traits::Float;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Unary {
    Neg,
    Exp,
    Log,
    Tanh,
    Sigmoid,
    Relu,
    Abs,
    Sqrt,
    /// log(1 + eᵃ)
    Softplus,
    /// 1 where a > 0, else 0 (the derivative of relu, with relu'(0) = 0).
    Step,
    /// -1, 0 or 1 (the derivative of abs, with abs'(0) = 0).
    Sign,
}

impl Unary {
    /// Every unary op, for readers that look one up by name (the IR reader).
    pub const ALL: [Unary; 11] = [
        Unary::Neg,
        Unary::Exp,
        Unary::Log,
        Unary::Tanh,
        Unary::Sigmoid,
        Unary::Relu,
        Unary::Abs,
        Unary::Sqrt,
        Unary::Softplus,
        Unary::Step,
        Unary::Sign,
    ];
}

/// Does not compile when a unary op is added, so that it is added to
/// [`Unary::ALL`] too.
#[allow(dead_code)]
fn every_unary_is_listed(u: Unary) {
    use Unary::*;
    match u {
        Neg | Exp | Log | Tanh | Sigmoid | Relu | Abs | Sqrt | Softplus | Step | Sign => {}
    }
}

impl Unary {
    /// The op on one number, in any float type (the interpreter runs in f32
    /// and f64; folding in f64).
    pub fn apply<F: Float>(self, x: F) -> F {
        match self {
            Unary::Neg => -x,
            Unary::Exp => x.exp(),
            Unary::Log => x.ln(),
            Unary::Tanh => x.tanh(),
            Unary::Sigmoid => sigmoid(x),
            Unary::Relu => relu(x),
            Unary::Abs => x.abs(),
            Unary::Sqrt => x.sqrt(),
            Unary::Softplus => softplus(x),
            Unary::Step => step(x),
            Unary::Sign => sign(x),
        }
    }
}

/// 1 / (1 + e⁻ˣ), never overflowing: for x < 0 it is computed as eˣ / (1 + eˣ).
pub fn sigmoid<F: Float>(x: F) -> F {
    if x >= F::zero() {
        F::one() / (F::one() + (-x).exp())
    } else {
        let e = x.exp();
        e / (F::one() + e)
    }
}

/// max(x, 0); NaN propagates (`x <= 0` is false for it).
pub fn relu<F: Float>(x: F) -> F {
    if x <= F::zero() { F::zero() } else { x }
}

/// log(1 + eˣ) = max(x, 0) + log(1 + e^-|x|), exact and overflow-free.
pub fn softplus<F: Float>(x: F) -> F {
    x.max(F::zero()) + (-x.abs()).exp().ln_1p()
}

/// 1 where x > 0, 0 where x ≤ 0, NaN for NaN (relu's derivative, relu'(0) = 0).
pub fn step<F: Float>(x: F) -> F {
    if x > F::zero() {
        F::one()
    } else if x <= F::zero() {
        F::zero()
    } else {
        x
    }
}

/// -1, 0 or 1; keeps ±0 and NaN (abs's derivative, abs'(0) = 0).
pub fn sign<F: Float>(x: F) -> F {
    if x > F::zero() {
        F::one()
    } else if x < F::zero() {
        -F::one()
    } else {
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sigmoid_is_exact_at_both_ends_and_symmetric() {
        assert_eq!(sigmoid(0.0_f64), 0.5);
        assert_eq!(sigmoid(-800.0_f64), 0.0);
        assert_eq!(sigmoid(800.0_f64), 1.0);
        for x in [0.1_f64, 1.0, 3.0, 20.0] {
            assert!((sigmoid(x) + sigmoid(-x) - 1.0).abs() < 1e-15);
        }
    }

    #[test]
    fn the_derivative_ops_keep_nan_and_signed_zero() {
        assert!(step(f64::NAN).is_nan() && sign(f64::NAN).is_nan() && relu(f64::NAN).is_nan());
        assert_eq!(step(0.0_f64), 0.0);
        assert!(sign(-0.0_f64).is_sign_negative() && sign(-0.0_f64) == 0.0);
        assert_eq!(sign(-2.0_f32), -1.0);
    }
}
