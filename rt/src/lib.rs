//! cellc's runtime: what compiled cells call, with nothing of the compiler.
//!
//! - [`kernels`]: the matrix products (strided GEMM, packed recurrent
//!   products) and denormal flushing.
//! - [`helpers`]: the C-ABI routines generated code calls by symbol name
//!   (`cellc_matvec_f32`, ...): the JIT registers them in process, an object
//!   from `cellc compile` links them from `libcellc_rt.a`.
//! - [`driver`]: the time loop of an object from `cellc compile` over flat
//!   buffers the caller allocates, forward and BPTT, behind its C entry points.

pub mod driver;
pub mod helpers;
pub mod kernels;
