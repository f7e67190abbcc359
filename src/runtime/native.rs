//! The native kernel: a step graph compiled by `codegen` for the run's sizes,
//! behind the same [`StepKernel`] interface as the interpreter.
//!
//! Arguments and results are passed to the compiled code by pointer. Views
//! that are not contiguous (never made by the drivers, but allowed by the
//! interface) go through copies; so do results that overlap an argument,
//! since the compiled code may write a result before it has read every
//! argument.

use super::kernel::{KernelError, StepKernel};
use crate::codegen::{self, CodegenError, CompiledStep, Precision};
use crate::graph::Graph;
use crate::graph::dim::Bindings;
use crate::graph::op::Real;
use ndarray::{ArrayD, ArrayViewD, ArrayViewMutD};
use std::any::TypeId;

impl From<CodegenError> for KernelError {
    fn from(e: CodegenError) -> KernelError {
        KernelError::Native(e.to_string())
    }
}

/// The precision code is generated in for `F`.
pub fn precision<F: 'static>() -> Precision {
    if TypeId::of::<F>() == TypeId::of::<f64>() {
        codegen::F64
    } else {
        codegen::F32
    }
}

/// One compiled step graph.
pub struct Native<F> {
    code: CompiledStep,
    arg_shapes: Vec<Vec<usize>>,
    result_shapes: Vec<Vec<usize>>,
    scratch: Vec<F>,
}

impl<F: Real> Native<F> {
    pub fn new(graph: &Graph, bindings: &Bindings, batch: usize) -> Result<Native<F>, KernelError> {
        let (arg_shapes, result_shapes) = super::kernel::shapes(graph, bindings, batch)?;
        let code = codegen::compile(graph, bindings, batch, precision::<F>())?;
        let scratch = super::memory::zeros(ndarray::Ix1(code.scratch_len), "kernel scratch")?
            .into_raw_vec_and_offset()
            .0;
        Ok(Native {
            code,
            arg_shapes,
            result_shapes,
            scratch,
        })
    }

    /// Cranelift instructions in the compiled step.
    pub fn instructions(&self) -> usize {
        self.code.instructions
    }
}

/// The bytes a view spans.
fn span<F>(ptr: *const F, len: usize) -> (usize, usize) {
    let start = ptr as usize;
    (start, start + len * std::mem::size_of::<F>())
}

impl<F: Real> StepKernel<F> for Native<F> {
    fn arg_shapes(&self) -> &[Vec<usize>] {
        &self.arg_shapes
    }

    fn result_shapes(&self) -> &[Vec<usize>] {
        &self.result_shapes
    }

    fn parameters_changed(&mut self) {
        self.code.forget_packed();
    }

    fn run(
        &mut self,
        args: &[ArrayViewD<'_, F>],
        results: &mut [ArrayViewMutD<'_, F>],
    ) -> Result<(), KernelError> {
        for (a, shape) in args.iter().zip(&self.arg_shapes) {
            if a.shape() != shape.as_slice() {
                return Err(KernelError::Native(format!(
                    "an argument has shape {:?}, the kernel was compiled for {shape:?}",
                    a.shape()
                )));
            }
        }
        // Contiguous copies of arguments that are not.
        let owned: Vec<Option<ArrayD<F>>> = args
            .iter()
            .map(|a| (!a.is_standard_layout()).then(|| a.as_standard_layout().into_owned()))
            .collect();
        let arg_ptrs: Vec<*const u8> = args
            .iter()
            .zip(&owned)
            .map(|(a, o)| o.as_ref().map_or(a.as_ptr(), |o| o.as_ptr()) as *const u8)
            .collect();
        let arg_spans: Vec<(usize, usize)> = args
            .iter()
            .zip(&owned)
            .map(|(a, o)| span(o.as_ref().map_or(a.as_ptr(), |o| o.as_ptr()), a.len()))
            .collect();
        // Results written in place when contiguous and apart from every
        // argument; else into a buffer copied out after the call.
        let mut temps: Vec<Option<ArrayD<F>>> = Vec::with_capacity(results.len());
        for (r, shape) in results.iter().zip(&self.result_shapes) {
            if r.shape() != shape.as_slice() {
                return Err(KernelError::Native(format!(
                    "a result has shape {:?}, the kernel was compiled for {shape:?}",
                    r.shape()
                )));
            }
            let (s, e) = span(r.as_ptr(), r.len());
            let overlaps = arg_spans.iter().any(|&(a, b)| s < b && a < e);
            temps.push((overlaps || !r.is_standard_layout()).then(|| ArrayD::zeros(r.raw_dim())));
        }
        let res_ptrs: Vec<*mut u8> = results
            .iter_mut()
            .zip(temps.iter_mut())
            .map(|(r, t)| match t {
                Some(t) => t.as_mut_ptr() as *mut u8,
                None => r.as_mut_ptr() as *mut u8,
            })
            .collect();
        // SAFETY: shapes, float type and contiguity checked above; results
        // apart from arguments; the scratch is the compiled size.
        unsafe {
            self.code
                .call(&arg_ptrs, &res_ptrs, self.scratch.as_mut_ptr() as *mut u8)
        };
        for (r, t) in results.iter_mut().zip(temps) {
            if let Some(t) = t {
                r.assign(&t);
            }
        }
        Ok(())
    }
}
