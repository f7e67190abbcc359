//! Choosing a back end: the kernels of a step graph, native or interpreted,
//! behind the one [`StepKernel`] interface the drivers call.

use super::kernel::{Interpreted, KernelError, StepKernel};
use super::native::Native;
use crate::autodiff::StepAdjoint;
use crate::graph::Graph;
use crate::graph::dim::Bindings;
use crate::graph::op::Real;

/// How a step runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Backend {
    /// Native code compiled with Cranelift (`runtime::native`).
    #[default]
    Jit,
    /// The reference interpreter, one op at a time.
    Interp,
}

/// A kernel of `graph` on the chosen back end.
pub fn kernel<'g, F: Real>(
    backend: Backend,
    graph: &'g Graph,
    bindings: &Bindings,
    batch: usize,
) -> Result<Box<dyn StepKernel<F> + 'g>, KernelError> {
    Ok(match backend {
        Backend::Jit => Box::new(Native::<F>::new(graph, bindings, batch)?),
        Backend::Interp => Box::new(Interpreted::new(graph, bindings, batch)?),
    })
}

/// The kernels of BPTT's forward step and adjoint step on the chosen back end.
#[allow(clippy::type_complexity)]
pub fn bptt_kernels<'g, F: Real>(
    backend: Backend,
    adj: &'g StepAdjoint,
    bindings: &Bindings,
    batch: usize,
) -> Result<(Box<dyn StepKernel<F> + 'g>, Box<dyn StepKernel<F> + 'g>), KernelError> {
    Ok((
        kernel(backend, &adj.forward, bindings, batch)?,
        kernel(backend, &adj.backward, bindings, batch)?,
    ))
}
