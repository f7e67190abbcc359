//! The unary primitive ops of the IR, as a foundation below every stage.
//!
//! Enters and leaves nothing: it defines the closed set [`Unary`], which the
//! IR's `Op::Unary` carries (`graph::op` re-exports it) and the language's
//! function table (`syntax::functions`) lowers to. It exists so that the table
//! read by the parser can name ops without the parser importing the IR.

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
