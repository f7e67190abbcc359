//! Gradient clipping: bounds the step an optimiser takes, a remedy for
//! exploding gradients (an RNN unrolled over `T` steps is a `T`-layer network
//! whose layers share the recurrent weights). [`clip_by_global_norm`] rescales
//! all parameter gradients together (their direction is kept),
//! [`clip_by_value`] clamps each element.
//!
//! Only *parameter* gradients are clipped: input and initial-state gradients
//! are not something an optimiser steps along, and are left untouched (as
//! PyTorch's `clip_grad_norm_` and `clip_grad_value_`, which take parameters).

use crate::graph::op::Real;
use crate::runtime::types::Gradients;

/// Scales all parameter gradients by `max_norm / norm` when their global norm
/// (the 2-norm of all parameter gradient elements taken together) exceeds
/// `max_norm`; returns the norm before clipping.
///
/// * Covered: `g.params` only (a learned initial state `NAME_0` is a parameter
///   and counts). `g.inputs` and `g.init` are neither counted nor scaled.
/// * The scale is exactly `max_norm / norm` (PyTorch divides by `norm + 1e-6`),
///   so the clipped norm equals `max_norm` up to rounding.
/// * The norm is accumulated with a running scale (as LAPACK's `nrm2`), so it
///   does not overflow when the squares would — in `f32` a gradient of 1e20 is
///   enough, and exploding gradients are what this is for.
/// * Non-finite gradients are not hidden: if any element is NaN the norm is
///   NaN, else if any is infinite it is infinite, and in both cases nothing is
///   scaled — the gradients keep their NaN/infinite elements and the caller
///   sees the non-finite norm (and should skip the update). PyTorch by default
///   multiplies by the then meaningless factor, turning every element into NaN
///   or 0; here the finite elements are left as they were.
///
/// Panics if `max_norm` is negative or NaN.
pub fn clip_by_global_norm<F: Real>(g: &mut Gradients<F>, max_norm: F) -> F {
    assert!(
        max_norm >= F::zero(),
        "clip_by_global_norm: max_norm must be >= 0, got {max_norm}"
    );
    // norm = scale · √ssq, with scale the largest |x| seen so far.
    let (mut scale, mut ssq) = (F::zero(), F::one());
    let (mut nan, mut inf) = (false, false);
    for x in g.params.iter().flat_map(|p| p.iter()) {
        let a = x.abs();
        if a.is_nan() {
            nan = true;
        } else if a.is_infinite() {
            inf = true;
        } else if a > F::zero() {
            if scale < a {
                let r = scale / a;
                ssq = F::one() + ssq * r * r;
                scale = a;
            } else {
                let r = a / scale;
                ssq += r * r;
            }
        }
    }
    if nan {
        return F::nan();
    }
    if inf {
        return F::infinity();
    }
    // May overflow to infinity while every element is finite; the factor below
    // is then still exact.
    let norm = scale * ssq.sqrt();
    if norm > max_norm {
        let factor = max_norm / scale / ssq.sqrt();
        for p in &mut g.params {
            p.mapv_inplace(|x| x * factor);
        }
    }
    norm
}

/// Clamps every parameter gradient element into `[-limit, limit]`.
///
/// Input and initial-state gradients are left untouched. Infinities are
/// clamped to `±limit`; NaN elements stay NaN (not hidden). Panics if `limit`
/// is negative or NaN.
pub fn clip_by_value<F: Real>(g: &mut Gradients<F>, limit: F) {
    assert!(
        limit >= F::zero(),
        "clip_by_value: limit must be >= 0, got {limit}"
    );
    for p in &mut g.params {
        p.mapv_inplace(|x| {
            if x > limit {
                limit
            } else if x < -limit {
                -limit
            } else {
                x
            }
        });
    }
}
