//! Cranelift code generation for step schedules; vmath: inline vector
//! approximations of the transcendental ops.
//!
//! So far only [`vmath`]: straight-line Cranelift IR for exp, log, tanh,
//! sigmoid and softplus on `f32x4` / `f64x2`, which the code generator places
//! inside its fused element-wise loops instead of calling libm per element.

pub mod vmath;
