//! The kernel interface: one step of a cell, compiled for fixed sizes and a
//! batch, that reads its arguments from views and writes its results into
//! buffers the caller allocated. The time-loop drivers (`forward`, `backward`,
//! `truncated`) only ever call kernels, so the interpreter and the native back
//! end plug in the same way and are tested against each other.
//!
//! Calling convention, for the graph a kernel was made from: `args` in the
//! graph's argument order, each of the shape [`StepKernel::arg_shapes`] gives;
//! `results` in its result order, of the shapes [`StepKernel::result_shapes`]
//! gives (unbatched results have no batch axis). Every result buffer is
//! overwritten; a kernel keeps no values from one call to the next, but may
//! keep a packed copy of a parameter matrix until
//! [`StepKernel::parameters_changed`]: every driver calls it before its first
//! step, and holds the parameters fixed until its last.

use crate::graph::Graph;
use crate::graph::dim::{Bindings, Type};
use crate::graph::op::Real;
use crate::interp::{self, EvalError};
use ndarray::{ArrayViewD, ArrayViewMutD};

/// Why a kernel could not be made or run.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum KernelError {
    #[error(transparent)]
    Eval(#[from] EvalError),
    #[error("the new value of state `{state}` has shape {found:?}, the state {expected:?}")]
    StateShape {
        state: String,
        found: Vec<usize>,
        expected: Vec<usize>,
    },
    #[error("the size of `{name}` cannot be computed: {message}")]
    Size { name: String, message: String },
    #[error(
        "a cotangent is given for output `{output}`, but the adjoint was derived for a loss without it"
    )]
    IgnoredCotangent { output: String },
    #[error(transparent)]
    Memory(#[from] super::memory::MemoryError),
    /// The native back end could not compile or run the step.
    #[error("native code: {0}")]
    Native(String),
}

impl<F: Real, K: StepKernel<F> + ?Sized> StepKernel<F> for Box<K> {
    fn arg_shapes(&self) -> &[Vec<usize>] {
        (**self).arg_shapes()
    }
    fn result_shapes(&self) -> &[Vec<usize>] {
        (**self).result_shapes()
    }
    fn run(
        &mut self,
        args: &[ArrayViewD<'_, F>],
        results: &mut [ArrayViewMutD<'_, F>],
    ) -> Result<(), KernelError> {
        (**self).run(args, results)
    }

    fn parameters_changed(&mut self) {
        (**self).parameters_changed()
    }
}

/// One compiled step.
pub trait StepKernel<F: Real> {
    /// The shape of each argument, in order.
    fn arg_shapes(&self) -> &[Vec<usize>];
    /// The shape of each result, in order.
    fn result_shapes(&self) -> &[Vec<usize>];
    /// Runs the step once.
    fn run(
        &mut self,
        args: &[ArrayViewD<'_, F>],
        results: &mut [ArrayViewMutD<'_, F>],
    ) -> Result<(), KernelError>;
    /// The parameters may hold other values from the next call on: a kernel
    /// that keeps a packed copy of one drops it.
    fn parameters_changed(&mut self) {}
}

/// The reference implementation: the interpreter, one op at a time.
pub struct Interpreted<'g> {
    graph: &'g Graph,
    bindings: Bindings,
    batch: usize,
    arg_shapes: Vec<Vec<usize>>,
    result_shapes: Vec<Vec<usize>>,
}

impl<'g> Interpreted<'g> {
    pub fn new(
        graph: &'g Graph,
        bindings: &Bindings,
        batch: usize,
    ) -> Result<Interpreted<'g>, KernelError> {
        let (arg_shapes, result_shapes) = shapes(graph, bindings, batch)?;
        Ok(Interpreted {
            graph,
            bindings: bindings.clone(),
            batch,
            arg_shapes,
            result_shapes,
        })
    }
}

/// The shape of every argument and result of `graph` for the bindings and
/// batch: what a kernel of it is made for.
#[allow(clippy::type_complexity)]
pub fn shapes(
    graph: &Graph,
    bindings: &Bindings,
    batch: usize,
) -> Result<(Vec<Vec<usize>>, Vec<Vec<usize>>), KernelError> {
    let shape_of = |name: &str, ty: &Type| {
        ty.array_shape(batch, bindings)
            .map_err(|message| KernelError::Size {
                name: name.to_string(),
                message,
            })
    };
    let args = graph
        .args
        .iter()
        .map(|a| shape_of(&a.name, &a.ty))
        .collect::<Result<_, _>>()?;
    let results = graph
        .results
        .iter()
        .map(|r| shape_of(&r.name, &graph.node(r.node).ty))
        .collect::<Result<_, _>>()?;
    Ok((args, results))
}

/// The interpreter's kernels of BPTT's forward step and adjoint step.
pub fn interpreted_bptt<'g>(
    adj: &'g crate::autodiff::StepAdjoint,
    bindings: &Bindings,
    batch: usize,
) -> Result<(Interpreted<'g>, Interpreted<'g>), KernelError> {
    Ok((
        Interpreted::new(&adj.forward, bindings, batch)?,
        Interpreted::new(&adj.backward, bindings, batch)?,
    ))
}

impl<F: Real> StepKernel<F> for Interpreted<'_> {
    fn arg_shapes(&self) -> &[Vec<usize>] {
        &self.arg_shapes
    }

    fn result_shapes(&self) -> &[Vec<usize>] {
        &self.result_shapes
    }

    fn run(
        &mut self,
        args: &[ArrayViewD<'_, F>],
        results: &mut [ArrayViewMutD<'_, F>],
    ) -> Result<(), KernelError> {
        interp::eval_into(self.graph, args, results, &self.bindings, self.batch)?;
        Ok(())
    }
}
